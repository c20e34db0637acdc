/* test_parquet.c - Parquet writer/reader round trips: every type, null
 * patterns, encodings, codecs, row groups, pages, statistics, nested
 * leaves and corrupt input. */
#include "cf_test.h"
#include "format/parquet/parquet.h"
#include "local_store.h"
#include "format/parquet/parquet_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char p[256];
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/cf_pq_test_XXXXXX");
        if (!mkdtemp(tmpdir))
            abort();
    }
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    unlink(p);
    return p;
}

enum { C_BOOL, C_I32, C_I64, C_F32, C_F64, C_STR, C_BIN, C_DATE, C_TS, C_TSNTZ, C_TIME,
       C_DEC9, C_DEC18, C_DEC38, C_UUID, NCOLS };

static cf_schema *all_types_schema(bool nullable)
{
    static const char *names[NCOLS] = { "b", "i32", "i64", "f32", "f64", "s", "bin", "d", "ts",
                                        "tsntz", "t", "dec9", "dec18", "dec38", "u" };
    cf_type types[NCOLS] = {
        { CF_T_BOOL, 0, 0 }, { CF_T_INT32, 0, 0 }, { CF_T_INT64, 0, 0 }, { CF_T_FLOAT, 0, 0 },
        { CF_T_DOUBLE, 0, 0 }, { CF_T_STRING, 0, 0 }, { CF_T_BINARY, 0, 0 }, { CF_T_DATE, 0, 0 },
        { CF_T_TIMESTAMP, 0, 0 }, { CF_T_TIMESTAMP_NTZ, 0, 0 }, { CF_T_TIME, 0, 0 },
        { CF_T_DECIMAL, 9, 2 }, { CF_T_DECIMAL, 18, 4 }, { CF_T_DECIMAL, 38, 10 }, { CF_T_UUID, 0, 0 },
    };
    cf_schema *s = cf_schema_new();
    for (int i = 0; i < NCOLS; i++)
        cf_schema_add(s, names[i], types[i], nullable, 0, NULL);
    return s;
}

/* null_mode: 0 none, 1 all, 2 every third row */
static void fill_row(cf_batch *b, size_t r, int null_mode, int card)
{
    char s[96];
    size_t v = card ? r % (size_t)card : r;
    for (int c = 0; c < NCOLS; c++) {
        cf_column *col = &b->cols[c];
        if (null_mode == 1 || (null_mode == 2 && (r + (size_t)c) % 3 == 0)) {
            cf_col_set_null(col, r, NULL);
            continue;
        }
        switch (c) {
        case C_BOOL: cf_col_set_bool(col, r, v % 2, NULL); break;
        case C_I32: cf_col_set_i64(col, r, (int64_t)v * 7 - 1000, NULL); break;
        case C_I64: cf_col_set_i64(col, r, (int64_t)v * 1000003 - 5000000000LL, NULL); break;
        case C_F32: cf_col_set_f64(col, r, (double)v * 0.5f - 3, NULL); break;
        case C_F64: cf_col_set_f64(col, r, (double)v * 1.25 - 7.5, NULL); break;
        case C_STR:
            snprintf(s, sizeof s, "user%zu@example.com", v);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        case C_BIN:
            s[0] = (char)v; s[1] = 0; s[2] = (char)(v >> 8);
            cf_col_set_bytes(col, r, s, v % 4, NULL);
            break;
        case C_DATE: cf_col_set_i64(col, r, (int64_t)v - 100, NULL); break;
        case C_TS: cf_col_set_i64(col, r, 1700000000000000LL + (int64_t)v * 1000001, NULL); break;
        case C_TSNTZ: cf_col_set_i64(col, r, -86400000000LL + (int64_t)v, NULL); break;
        case C_TIME: cf_col_set_i64(col, r, ((int64_t)v * 1000003) % 86400000000LL, NULL); break;
        case C_DEC9: cf_col_set_i64(col, r, (int64_t)v * 101 - 99999, NULL); break;
        case C_DEC18: cf_col_set_i64(col, r, (int64_t)v * 123456789 - 99999999999LL, NULL); break;
        case C_DEC38:
            snprintf(s, sizeof s, "%s%zu2345678901234567890.%010zu", v % 2 ? "-" : "", v + 1, v * 7);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        case C_UUID:
            snprintf(s, sizeof s, "%08zx-1234-5678-9abc-%012zx", v, v * 31);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        }
    }
    cf_batch_end_row(b, NULL);
}

static bool cols_equal(const cf_column *a, size_t ra, const cf_column *b, size_t rb)
{
    if (a->valid[ra] != b->valid[rb])
        return false;
    if (!a->valid[ra])
        return true;
    if (a->offs) {
        size_t na, nb;
        const uint8_t *pa = cf_col_bytes(a, ra, &na), *pb = cf_col_bytes(b, rb, &nb);
        return na == nb && (na == 0 || memcmp(pa, pb, na) == 0);
    }
    size_t w = cf_col_width(a);
    return memcmp((const char *)a->vals + ra * w, (const char *)b->vals + rb * w, w) == 0;
}

/* Read every row group of path into a batch of the file schema. */
static cf_batch *read_all(const char *path, cf_pq_reader **rp)
{
    cf_err err = { 0 };
    cf_pq_reader *r = cf_pq_reader_open(local_store(), path, &err);
    cf_batch *b;
    if (!r) {
        fprintf(stderr, "  open: %s\n", err.msg);
        return NULL;
    }
    b = cf_batch_new(cf_pq_reader_schema(r), &err);
    for (int g = 0; g < cf_pq_reader_num_row_groups(r); g++)
        if (cf_pq_reader_read(r, g, NULL, 0, b, &err)) {
            fprintf(stderr, "  read: %s\n", err.msg);
            cf_batch_free(b);
            cf_pq_reader_close(r);
            return NULL;
        }
    *rp = r;
    return b;
}

static void roundtrip(cf_codec codec, bool dict, int null_mode, int card, size_t nrows,
                      size_t rg_bytes, size_t page_bytes, int expect_min_rgs)
{
    cf_err err = { 0 };
    cf_schema *s = all_types_schema(true);
    cf_batch *b = cf_batch_new(s, &err), *got;
    cf_pq_options o;
    cf_pq_writer *w;
    cf_pq_reader *r = NULL;
    cf_pq_file_info fi;
    const char *path = tmp_path("rt.parquet");

    for (size_t i = 0; i < nrows; i++)
        fill_row(b, i, null_mode, card);
    cf_pq_options_default(&o);
    o.codec = codec;
    o.dictionary = dict;
    if (rg_bytes) o.row_group_bytes = rg_bytes;
    if (page_bytes) o.page_bytes = page_bytes;
    w = cf_pq_writer_open(local_store(), path, s, &o, &err);
    CHECK(w != NULL);
    if (!w)
        goto out;
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
    if (err.code)
        fprintf(stderr, "  write: %s\n", err.msg);
    CHECK_EQ_INT(fi.num_rows, (long long)nrows);
    got = read_all(path, &r);
    CHECK(got != NULL);
    if (got) {
        CHECK(cf_schema_equal(cf_pq_reader_schema(r), s));
        CHECK(cf_pq_reader_num_row_groups(r) >= expect_min_rgs);
        CHECK_EQ_INT(got->nrows, nrows);
        int bad = 0;
        for (size_t i = 0; i < nrows && got->nrows == nrows && bad < 5; i++)
            for (int c = 0; c < NCOLS; c++)
                if (!cols_equal(&b->cols[c], i, &got->cols[c], i)) {
                    fprintf(stderr, "  row %zu col %s differs\n", i, s->fields[c].name);
                    bad++;
                }
        CHECK_EQ_INT(bad, 0);
        cf_batch_free(got);
    }
    cf_pq_reader_close(r);
    cf_pq_file_info_free(&fi);
out:
    cf_batch_free(b);
    cf_schema_free(s);
}

static void test_types_zstd_dict(void) { roundtrip(CF_CODEC_ZSTD, true, 2, 50, 1000, 0, 0, 1); }
static void test_types_zstd_plain(void) { roundtrip(CF_CODEC_ZSTD, false, 2, 0, 1000, 0, 0, 1); }
static void test_types_snappy(void) { roundtrip(CF_CODEC_SNAPPY, true, 2, 0, 1000, 0, 0, 1); }
static void test_types_none(void) { roundtrip(CF_CODEC_NONE, true, 2, 7, 1000, 0, 0, 1); }
static void test_no_nulls(void) { roundtrip(CF_CODEC_ZSTD, true, 0, 13, 777, 0, 0, 1); }
static void test_all_nulls(void) { roundtrip(CF_CODEC_ZSTD, true, 1, 0, 555, 0, 0, 1); }
static void test_row_groups_and_pages(void)
{
    roundtrip(CF_CODEC_ZSTD, true, 2, 0, 60000, 256 << 10, 8 << 10, 3);
    roundtrip(CF_CODEC_SNAPPY, false, 0, 100, 30000, 128 << 10, 4 << 10, 2);
}

static void test_empty_file(void)
{
    cf_err err = { 0 };
    cf_schema *s = all_types_schema(true);
    const char *path = tmp_path("empty.parquet");
    cf_pq_writer *w = cf_pq_writer_open(local_store(), path, s, NULL, &err);
    cf_pq_reader *r;
    CHECK(w != NULL);
    CHECK_EQ_INT(cf_pq_writer_close(w, NULL, &err), 0);
    r = cf_pq_reader_open(local_store(), path, &err);
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ_INT(cf_pq_reader_num_rows(r), 0);
        CHECK_EQ_INT(cf_pq_reader_num_row_groups(r), 0);
        CHECK(cf_schema_equal(cf_pq_reader_schema(r), s));
    }
    cf_pq_reader_close(r);
    cf_schema_free(s);
}

/* A dictionary that outgrows dict_max_bytes falls back to PLAIN mid-chunk. */
static void test_dict_fallback(void)
{
    cf_err err = { 0 };
    cf_schema *s = cf_schema_new();
    cf_batch *b, *got;
    cf_pq_options o;
    cf_pq_writer *w;
    cf_pq_reader *r = NULL;
    const char *path = tmp_path("fallback.parquet");
    char buf[64];
    int bad = 0;

    cf_schema_add(s, "s", (cf_type){ CF_T_STRING, 0, 0 }, true, 0, NULL);
    cf_schema_add(s, "i", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    b = cf_batch_new(s, &err);
    for (int i = 0; i < 20000; i++) {
        snprintf(buf, sizeof buf, "value-%d", i < 5000 ? i % 10 : i);
        cf_col_set_bytes(&b->cols[0], (size_t)i, buf, strlen(buf), NULL);
        cf_col_set_i64(&b->cols[1], (size_t)i, i < 5000 ? i % 3 : i, NULL);
        cf_batch_end_row(b, NULL);
    }
    cf_pq_options_default(&o);
    o.dict_max_bytes = 4096;
    w = cf_pq_writer_open(local_store(), path, s, &o, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, NULL, &err), 0);
    got = read_all(path, &r);
    CHECK(got && got->nrows == 20000);
    for (size_t i = 0; got && i < 20000; i++)
        bad += !cols_equal(&b->cols[0], i, &got->cols[0], i) || !cols_equal(&b->cols[1], i, &got->cols[1], i);
    CHECK_EQ_INT(bad, 0);
    cf_batch_free(got);
    cf_pq_reader_close(r);
    cf_batch_free(b);
    cf_schema_free(s);
}

static void test_stats(void)
{
    cf_err err = { 0 };
    cf_schema *s = all_types_schema(true);
    cf_batch *b = cf_batch_new(s, &err);
    cf_pq_options o;
    cf_pq_writer *w;
    cf_pq_file_info fi;
    const char *path = tmp_path("stats.parquet");

    for (size_t i = 0; i < 300; i++)
        fill_row(b, i, 2, 0);
    cf_pq_options_default(&o);
    o.row_group_bytes = 4096;     /* several row groups: stats merge across them */
    w = cf_pq_writer_open(local_store(), path, s, &o, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
    CHECK_EQ_INT(fi.ncols, NCOLS);
    /* every third row (offset by column) is null */
    CHECK_EQ_INT(fi.cols[C_I64].null_count, 100);
    CHECK_EQ_INT(fi.cols[C_I64].value_count, 200);
    CHECK(fi.cols[C_I64].has_minmax);
    /* column c is null where (r + c) % 3 == 0: rows 0 and 299 hold i64 */
    CHECK_EQ_INT(fi.cols[C_I64].i_min, -5000000000LL);
    CHECK_EQ_INT(fi.cols[C_I64].i_max, 299LL * 1000003 - 5000000000LL);
    CHECK(fi.cols[C_F64].has_minmax && fi.cols[C_F64].d_min == -7.5);
    /* strings compare as unsigned bytes: '@' > '9', so "user9@..." is the max */
    CHECK(fi.cols[C_STR].has_minmax);
    CHECK(fi.cols[C_STR].s_min && strcmp(fi.cols[C_STR].s_min, "user0@example.com") == 0);
    CHECK(fi.cols[C_STR].s_max && strcmp(fi.cols[C_STR].s_max, "user9@example.com") == 0);
    CHECK(fi.cols[C_UUID].has_minmax && fi.cols[C_UUID].s_min_len == 36);
    CHECK(fi.cols[C_DEC38].has_minmax && fi.cols[C_DEC38].s_min &&
          fi.cols[C_DEC38].s_min[0] == '-');
    CHECK(fi.cols[C_DEC9].has_minmax && fi.cols[C_DEC9].i_min == -99999);
    CHECK(fi.cols[C_BOOL].has_minmax && fi.cols[C_BOOL].i_min == 0 && fi.cols[C_BOOL].i_max == 1);
    cf_pq_file_info_free(&fi);

    /* a NaN removes min/max but keeps counts */
    cf_schema *s2 = cf_schema_new();
    cf_batch *b2;
    cf_schema_add(s2, "x", (cf_type){ CF_T_DOUBLE, 0, 0 }, true, 0, NULL);
    b2 = cf_batch_new(s2, &err);
    cf_col_set_f64(&b2->cols[0], 0, 1.0, NULL); cf_batch_end_row(b2, NULL);
    cf_col_set_f64(&b2->cols[0], 1, NAN, NULL); cf_batch_end_row(b2, NULL);
    cf_col_set_null(&b2->cols[0], 2, NULL); cf_batch_end_row(b2, NULL);
    /* the same NaN again: one dictionary entry, but every row counts */
    cf_col_set_f64(&b2->cols[0], 3, NAN, NULL); cf_batch_end_row(b2, NULL);
    cf_col_set_f64(&b2->cols[0], 4, NAN, NULL); cf_batch_end_row(b2, NULL);
    w = cf_pq_writer_open(local_store(), tmp_path("nan.parquet"), s2, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b2, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
    CHECK(!fi.cols[0].has_minmax);
    CHECK_EQ_INT(fi.cols[0].nan_count, 3);
    CHECK(fi.cols[0].compressed_bytes > 0 && fi.cols[0].compressed_bytes < fi.file_bytes);
    CHECK_EQ_INT(fi.cols[0].null_count, 1);
    CHECK_EQ_INT(fi.cols[0].value_count, 4);
    cf_pq_file_info_free(&fi);
    cf_batch_free(b2);
    cf_schema_free(s2);
    cf_batch_free(b);
    cf_schema_free(s);
}

static void test_projection_rows_kv_errors(void)
{
    cf_err err = { 0 };
    cf_schema *s = all_types_schema(false), *ps = cf_schema_new();
    cf_batch *b = cf_batch_new(s, &err), *pb;
    cf_pq_options o;
    cf_pq_writer *w;
    cf_pq_reader *r;
    const char *path = tmp_path("proj.parquet");
    const char *keys[] = { "k1", "cdcflow.version" }, *vals[] = { "v1", "1" };
    uint32_t rows[] = { 9, 3, 3, 0 };
    int cols[] = { C_STR, C_I64 };

    for (size_t i = 0; i < 10; i++)
        fill_row(b, i, 0, 0);
    cf_pq_options_default(&o);
    o.nkv = 2;
    o.kv_keys = keys;
    o.kv_vals = vals;
    w = cf_pq_writer_open(local_store(), path, s, &o, &err);
    CHECK_EQ_INT(cf_pq_writer_write_rows(w, b, rows, 4, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, NULL, &err), 0);
    /* created exclusively: never overwrite */
    CHECK(cf_pq_writer_open(local_store(), path, s, &o, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_CONFLICT);

    r = cf_pq_reader_open(local_store(), path, &err);
    CHECK(r != NULL);
    if (!r)
        goto out;
    CHECK_EQ_STR(cf_pq_reader_kv(r, "k1"), "v1");
    CHECK(cf_pq_reader_kv(r, "nope") == NULL);
    CHECK(!cf_pq_reader_schema(r)->fields[0].nullable);
    cf_schema_add(ps, "s", (cf_type){ CF_T_STRING, 0, 0 }, false, 0, NULL);
    cf_schema_add(ps, "i64", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    pb = cf_batch_new(ps, &err);
    CHECK_EQ_INT(cf_pq_reader_read(r, 0, cols, 2, pb, &err), 0);
    CHECK_EQ_INT(pb->nrows, 4);
    for (size_t i = 0; i < 4 && pb->nrows == 4; i++) {
        CHECK(cols_equal(&b->cols[C_STR], rows[i], &pb->cols[0], i));
        CHECK(cols_equal(&b->cols[C_I64], rows[i], &pb->cols[1], i));
    }
    /* wrong batch types are refused */
    cf_batch_reset(pb);
    int wrong[] = { C_I64, C_STR };
    CHECK_EQ_INT(cf_pq_reader_read(r, 0, wrong, 2, pb, &err), -1);
    CHECK_EQ_INT(err.code, CF_E_TYPE);
    cf_batch_free(pb);
    cf_pq_reader_close(r);
out:
    /* null in a required column */
    cf_batch_reset(b);
    fill_row(b, 0, 1, 0);
    w = cf_pq_writer_open(local_store(), tmp_path("req.parquet"), s, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), -1);
    CHECK_EQ_INT(err.code, CF_E_TYPE);
    cf_pq_writer_abort(w);
    CHECK(access(tmp_path("req.parquet"), F_OK) != 0);
    /* bad decimal text / uuid text */
    cf_batch_reset(b);
    fill_row(b, 0, 0, 0);
    cf_batch_reset(b);
    cf_schema_free(ps);
    cf_batch_free(b);
    cf_schema_free(s);
}

static void test_bad_values(void)
{
    cf_err err = { 0 };
    cf_schema *s = cf_schema_new();
    cf_batch *b;
    cf_pq_writer *w;
    cf_schema_add(s, "u", (cf_type){ CF_T_UUID, 0, 0 }, true, 0, NULL);
    cf_schema_add(s, "d", (cf_type){ CF_T_DECIMAL, 20, 2 }, true, 0, NULL);
    b = cf_batch_new(s, &err);
    cf_col_set_bytes(&b->cols[0], 0, "not-a-uuid", 10, NULL);
    cf_batch_end_row(b, NULL);
    w = cf_pq_writer_open(local_store(), tmp_path("bad.parquet"), s, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), -1);
    CHECK_EQ_INT(err.code, CF_E_TYPE);
    cf_pq_writer_abort(w);
    cf_batch_reset(b);
    cf_col_set_bytes(&b->cols[1], 0, "1.234", 5, NULL);   /* scale 2: would round */
    cf_batch_end_row(b, NULL);
    w = cf_pq_writer_open(local_store(), tmp_path("bad.parquet"), s, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), -1);
    CHECK_EQ_INT(err.code, CF_E_TYPE);
    cf_pq_writer_abort(w);
    cf_batch_free(b);
    cf_schema_free(s);
}

/* Delta-checkpoint-shaped nested file: add{path, size, partitionValues
 * map<string,string>}, txn{appId, version}; leaves read back with levels. */
static void test_tree_checkpoint(void)
{
    static const cf_pq_node kv[] = {
        { .name = "key", .rep = CF_PQ_REQUIRED, .type = { CF_T_STRING, 0, 0 } },
        { .name = "value", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
    };
    static const cf_pq_node kvg[] = {
        { .name = "key_value", .rep = CF_PQ_REPEATED, .nchildren = 2, .children = kv },
    };
    static const cf_pq_node add[] = {
        { .name = "path", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
        { .name = "size", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
        { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = kvg,
          .logical = "map" },
    };
    static const cf_pq_node txn[] = {
        { .name = "appId", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
        { .name = "version", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
    };
    static const cf_pq_node top[] = {
        { .name = "txn", .rep = CF_PQ_OPTIONAL, .nchildren = 2, .children = txn },
        { .name = "add", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = add },
    };
    static const cf_pq_node root = { .name = "spark_schema", .nchildren = 2, .children = top };
    cf_err err = { 0 };
    const char *path = tmp_path("checkpoint.parquet");
    cf_pq_writer *w = cf_pq_writer_open_tree(local_store(), path, &root, NULL, &err);
    cf_schema *ss = cf_schema_new();
    cf_batch *vb;
    cf_pq_reader *r;
    cf_pq_leaf_data ld = { 0 };

    CHECK(w != NULL);
    if (!w) {
        fprintf(stderr, "  %s\n", err.msg);
        cf_schema_free(ss);
        return;
    }
    /* rows: 0 = txn(app-1, 41); 1 = add(a.parquet, 10, {p: x, q: null});
     *       2 = add(b.parquet, 20, {}) */
    cf_schema_add(ss, "s", (cf_type){ CF_T_STRING, 0, 0 }, true, 0, NULL);
    cf_schema_add(ss, "i", (cf_type){ CF_T_INT64, 0, 0 }, true, 0, NULL);
    vb = cf_batch_new(ss, &err);
    cf_col_set_bytes(&vb->cols[0], 0, "app-1", 5, NULL);
    cf_col_set_i64(&vb->cols[1], 0, 41, NULL);
    cf_batch_end_row(vb, NULL);
    int16_t d_txn[] = { 2, 0, 0 };
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 0, d_txn, NULL, 3, &vb->cols[0], &err), 0);
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 1, d_txn, NULL, 3, &vb->cols[1], &err), 0);
    cf_batch_reset(vb);
    cf_col_set_bytes(&vb->cols[0], 0, "a.parquet", 9, NULL);
    cf_col_set_i64(&vb->cols[1], 0, 10, NULL);
    cf_batch_end_row(vb, NULL);
    cf_col_set_bytes(&vb->cols[0], 1, "b.parquet", 9, NULL);
    cf_col_set_i64(&vb->cols[1], 1, 20, NULL);
    cf_batch_end_row(vb, NULL);
    int16_t d_add[] = { 0, 2, 2 };
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 2, d_add, NULL, 3, &vb->cols[0], &err), 0);
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 3, d_add, NULL, 3, &vb->cols[1], &err), 0);
    /* map: add max_def for key = add(1)+pv(1)+kv(1) = 3, value = 4 */
    cf_batch_reset(vb);
    cf_col_set_bytes(&vb->cols[0], 0, "p", 1, NULL); cf_batch_end_row(vb, NULL);
    cf_col_set_bytes(&vb->cols[0], 1, "q", 1, NULL); cf_batch_end_row(vb, NULL);
    int16_t dk[] = { 0, 3, 3, 2 }, rk[] = { 0, 0, 1, 0 };
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 4, dk, rk, 4, &vb->cols[0], &err), 0);
    cf_batch_reset(vb);
    cf_col_set_bytes(&vb->cols[0], 0, "x", 1, NULL); cf_batch_end_row(vb, NULL);
    int16_t dv[] = { 0, 4, 3, 2 };
    CHECK_EQ_INT(cf_pq_writer_write_leaf(w, 5, dv, rk, 4, &vb->cols[0], &err), 0);
    CHECK_EQ_INT(cf_pq_writer_end_row_group(w, 4, &err), -1);   /* leaves hold 3 records */
    CHECK_EQ_INT(err.code, CF_E_ARG);
    cf_err_clear(&err);
    CHECK_EQ_INT(cf_pq_writer_end_row_group(w, 3, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, NULL, &err), 0);
    if (err.code)
        fprintf(stderr, "  %s\n", err.msg);

    r = cf_pq_reader_open(local_store(), path, &err);
    CHECK(r != NULL);
    if (r) {
        CHECK_EQ_INT(cf_pq_reader_num_leaves(r), 6);
        CHECK_EQ_INT(cf_pq_reader_schema(r)->nfields, 0);   /* no top-level primitives */
        int lp = cf_pq_reader_find_leaf(r, "add.path");
        int lv = cf_pq_reader_find_leaf(r, "txn.version");
        int lk = cf_pq_reader_find_leaf(r, "add.partitionValues.key_value.key");
        CHECK_EQ_INT(lp, 2);
        CHECK_EQ_INT(lv, 1);
        CHECK_EQ_INT(lk, 4);
        CHECK_EQ_INT(cf_pq_reader_read_leaf(r, 0, lp, &ld, &err), 0);
        CHECK_EQ_INT(ld.n, 3);
        CHECK_EQ_INT(ld.max_def, 2);
        if (ld.n == 3) {
            size_t n;
            const uint8_t *p = cf_col_bytes(&ld.vals, 1, &n);
            CHECK(!ld.vals.valid[0] && ld.vals.valid[1] && n == 9 && memcmp(p, "a.parquet", 9) == 0);
            CHECK_EQ_INT(ld.def[0], 0);
        }
        CHECK_EQ_INT(cf_pq_reader_read_leaf(r, 0, lv, &ld, &err), 0);
        CHECK(ld.n == 3 && ld.vals.valid[0] && cf_col_i64(&ld.vals, 0) == 41 && !ld.vals.valid[1]);
        CHECK_EQ_INT(cf_pq_reader_read_leaf(r, 0, lk, &ld, &err), 0);
        CHECK_EQ_INT(ld.n, 4);
        CHECK_EQ_INT(ld.max_rep, 1);
        if (ld.n == 4) {
            CHECK(ld.rep[2] == 1 && ld.def[3] == 2 && ld.vals.valid[1] && ld.vals.valid[2]);
        }
        cf_pq_leaf_data_free(&ld);
    }
    cf_pq_reader_close(r);
    cf_batch_free(vb);
    cf_schema_free(ss);
}

/* Truncations and byte flips of a valid file fail cleanly (ASan watches). */
static void test_corrupt(void)
{
    cf_err err = { 0 };
    cf_schema *s = all_types_schema(true);
    cf_batch *b = cf_batch_new(s, &err);
    const char *path = tmp_path("c.parquet");
    cf_pq_writer *w;
    FILE *f;
    uint8_t *data;
    long n;
    int opened = 0, failed = 0;

    for (size_t i = 0; i < 50; i++)
        fill_row(b, i, 2, 5);
    w = cf_pq_writer_open(local_store(), path, s, NULL, &err);
    cf_pq_writer_write(w, b, &err);
    cf_pq_writer_close(w, NULL, &err);
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)n);
    CHECK(fread(data, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    unsigned seed = 1;
    for (int round = 0; round < 3000; round++) {
        uint8_t *copy = malloc((size_t)n);
        size_t len = (size_t)n;
        memcpy(copy, data, len);
        if (round < 200) {
            len = (size_t)(rand_r(&seed) % n);
        } else {
            for (int k = 0; k < 1 + round % 4; k++)
                copy[rand_r(&seed) % n] ^= (uint8_t)(1 + rand_r(&seed) % 255);
        }
        cf_pq_reader *r = cf_pq_reader_open_mem(copy, len, &err);
        if (r) {
            const cf_schema *rs = cf_pq_reader_schema(r);
            cf_batch *rb = cf_batch_new(rs, &err);
            opened++;
            for (int g = 0; g < cf_pq_reader_num_row_groups(r); g++)
                if (cf_pq_reader_row_group_rows(r, g) < 100000 &&
                    cf_pq_reader_read(r, g, NULL, 0, rb, &err))
                    failed++;
            cf_batch_free(rb);
            cf_pq_reader_close(r);
        } else {
            failed++;
            CHECK(err.msg[0] != '\0');
        }
        free(copy);
    }
    CHECK(failed > 100);   /* corruption is noticed, not only survived */
    free(data);
    cf_batch_free(b);
    cf_schema_free(s);
}

/* Wide decimals: extremes round-trip exactly, leading zeros and trailing
 * zero fraction digits are accepted, values over the precision refused. */
static void test_wide_decimals(void)
{
    static const struct { const char *in, *out; int ok; } cases[] = {
        { "99999999999999999999999999999999999999", "99999999999999999999999999999999999999", 1 },
        { "-99999999999999999999999999999999999999", "-99999999999999999999999999999999999999", 1 },
        { "000123.000", "123", 1 },
        { "000123.4000", NULL, 0 },                               /* would round */
        { "0", "0", 1 },
        { "-0.0", "0", 1 },
        { "170141183460469231731687303715884105727", NULL, 0 },   /* 39 digits */
        { "12.5", NULL, 0 },                                       /* scale 0: would round */
        { "1e5", NULL, 0 },
        { "", NULL, 0 },
    };
    cf_type t = { CF_T_DECIMAL, 38, 0 };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        cf_err err = { 0 };
        cf_schema *s = cf_schema_new();
        cf_batch *b, *got;
        cf_pq_writer *w;
        cf_pq_reader *r = NULL;
        const char *path = tmp_path("dec.parquet");
        int rc;

        cf_schema_add(s, "d", t, true, 0, NULL);
        b = cf_batch_new(s, &err);
        cf_col_set_bytes(&b->cols[0], 0, cases[k].in, strlen(cases[k].in), NULL);
        cf_batch_end_row(b, NULL);
        w = cf_pq_writer_open(local_store(), path, s, NULL, &err);
        rc = cf_pq_writer_write(w, b, &err);
        CHECK_EQ_INT(rc, cases[k].ok ? 0 : -1);
        if (rc) {
            CHECK_EQ_INT(err.code, CF_E_TYPE);
            cf_pq_writer_abort(w);
        } else {
            CHECK_EQ_INT(cf_pq_writer_close(w, NULL, &err), 0);
            got = read_all(path, &r);
            CHECK(got && got->nrows == 1);
            if (got && got->nrows == 1) {
                size_t n;
                const uint8_t *p = cf_col_bytes(&got->cols[0], 0, &n);
                CHECK(n == strlen(cases[k].out) && memcmp(p, cases[k].out, n) == 0);
            }
            cf_batch_free(got);
            cf_pq_reader_close(r);
        }
        cf_batch_free(b);
        cf_schema_free(s);
    }
}

/* DELTA_BINARY_PACKED: the two examples of Encodings.md, a truncated
 * input, and a header that claims fewer values than needed. */
static void test_delta_binary_packed(void)
{
    static const uint8_t ex1[] = { 0x80, 0x01, 0x04, 0x05, 0x02, 0x02, 0, 0, 0, 0 };
    static const uint8_t ex2[] = { 0x80, 0x01, 0x04, 0x08, 0x0e, 0x03, 0x02, 0, 0, 0,
                                   0xc0, 0xff, 0, 0, 0, 0, 0, 0 };
    static const int64_t want1[] = { 1, 2, 3, 4, 5 }, want2[] = { 7, 5, 3, 1, 2, 3, 4, 5 };
    cf_buf out;
    const uint8_t *p;
    int64_t v[8];

    cf_buf_init(&out, 0);
    p = ex1;
    CHECK_EQ_INT(cf_pq_delta_binary(&p, ex1 + sizeof ex1, 8, 5, &out, NULL), 0);
    CHECK(out.len == 40 && memcmp(out.data, want1, 40) == 0);
    out.len = 0;
    p = ex2;
    CHECK_EQ_INT(cf_pq_delta_binary(&p, ex2 + sizeof ex2, 8, 8, &out, NULL), 0);
    memcpy(v, out.data, sizeof v);
    CHECK(out.len == 64 && memcmp(v, want2, 64) == 0);
    CHECK(p == ex2 + sizeof ex2);
    out.len = 0;
    p = ex2;
    CHECK_EQ_INT(cf_pq_delta_binary(&p, ex2 + sizeof ex2 - 3, 8, 8, &out, NULL), -1);
    out.len = 0;
    p = ex1;
    CHECK_EQ_INT(cf_pq_delta_binary(&p, ex1 + sizeof ex1, 8, 6, &out, NULL), -1);
    cf_buf_free(&out);
}

/* A string over 4 KiB keeps min/max out of the footer (but in file info). */
static void test_long_string_stats(void)
{
    cf_err err = { 0 };
    cf_schema *s = cf_schema_new();
    cf_batch *b;
    cf_pq_writer *w;
    cf_pq_file_info fi;
    const char *path = tmp_path("long.parquet");
    char *big = malloc(10000);
    FILE *f;
    long size_big, size_small;

    memset(big, 'x', 10000);
    cf_schema_add(s, "s", (cf_type){ CF_T_STRING, 0, 0 }, true, 0, NULL);
    b = cf_batch_new(s, &err);
    cf_col_set_bytes(&b->cols[0], 0, big, 10000, NULL);
    cf_batch_end_row(b, NULL);
    w = cf_pq_writer_open(local_store(), path, s, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
    CHECK(fi.cols[0].has_minmax && fi.cols[0].s_max_len == 10000);
    size_big = fi.file_bytes;
    cf_pq_file_info_free(&fi);
    f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    CHECK(ftell(f) == size_big);
    fclose(f);
    /* the file is the value (compressed) plus a small footer, not 2 more copies */
    cf_batch_reset(b);
    cf_col_set_bytes(&b->cols[0], 0, big, 100, NULL);
    cf_batch_end_row(b, NULL);
    w = cf_pq_writer_open(local_store(), tmp_path("short.parquet"), s, NULL, &err);
    CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
    CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
    size_small = fi.file_bytes;
    CHECK(size_big < size_small + 1000);
    cf_pq_file_info_free(&fi);
    free(big);
    cf_batch_free(b);
    cf_schema_free(s);
}

/* Columns of empty strings have no data bytes at all: still fine. */
static void test_empty_strings(void)
{
    for (int dict = 0; dict < 2; dict++) {
        cf_err err = { 0 };
        cf_schema *s = cf_schema_new();
        cf_batch *b, *got;
        cf_pq_options o;
        cf_pq_writer *w;
        cf_pq_reader *r = NULL;
        cf_pq_file_info fi;
        const char *path = tmp_path("empty_strings.parquet");

        cf_schema_add(s, "s", (cf_type){ CF_T_STRING, 0, 0 }, true, 0, NULL);
        cf_schema_add(s, "b", (cf_type){ CF_T_BINARY, 0, 0 }, false, 0, NULL);
        b = cf_batch_new(s, &err);
        for (size_t i = 0; i < 100; i++) {
            if (i % 3)
                cf_col_set_bytes(&b->cols[0], i, "", 0, NULL);
            cf_col_set_bytes(&b->cols[1], i, "", 0, NULL);
            cf_batch_end_row(b, NULL);
        }
        cf_pq_options_default(&o);
        o.dictionary = dict;
        w = cf_pq_writer_open(local_store(), path, s, &o, &err);
        CHECK_EQ_INT(cf_pq_writer_write(w, b, &err), 0);
        CHECK_EQ_INT(cf_pq_writer_close(w, &fi, &err), 0);
        CHECK(fi.cols[0].has_minmax && fi.cols[0].s_min_len == 0 && fi.cols[0].null_count == 34);
        got = read_all(path, &r);
        CHECK(got && got->nrows == 100);
        for (size_t i = 0; got && i < 100; i++)
            CHECK(cols_equal(&b->cols[0], i, &got->cols[0], i) && cols_equal(&b->cols[1], i, &got->cols[1], i));
        cf_pq_file_info_free(&fi);
        cf_batch_free(got);
        cf_pq_reader_close(r);
        cf_batch_free(b);
        cf_schema_free(s);
    }
}

/* The RLE/bit-packed hybrid round-trips every bit width, with runs,
 * literals and run/literal boundaries at every offset mod 8. */
static void test_rle_hybrid(void)
{
    unsigned seed = 7;
    for (int bw = 1; bw <= 32; bw++) {
        for (int shape = 0; shape < 4; shape++) {
            size_t n = 1 + (size_t)(rand_r(&seed) % 3000);
            uint32_t *v = malloc(n * sizeof *v), *got = malloc(n * sizeof *got);
            uint64_t mask = bw == 32 ? 0xffffffffu : ((1u << bw) - 1);
            cf_buf out;
            cf_rle_dec d;
            cf_buf_init(&out, 0);
            for (size_t i = 0; i < n; i++) {
                if (shape == 0)
                    v[i] = (uint32_t)(rand_r(&seed) & mask);
                else if (shape == 1)
                    v[i] = (uint32_t)((i / (1 + rand_r(&seed) % 20)) & mask);
                else if (shape == 2)
                    v[i] = (uint32_t)(mask);
                else
                    v[i] = (i % 13 < 9) ? 1 : (uint32_t)(rand_r(&seed) & mask);
            }
            CHECK_EQ_INT(cf_pq_rle_encode(&out, v, n, bw, NULL), 0);
            cf_rle_init(&d, out.data, out.len, bw);
            CHECK_EQ_INT(cf_rle_get(&d, got, n), 0);
            CHECK(memcmp(v, got, n * sizeof *v) == 0);
            /* asking for more than was written fails instead of inventing values */
            cf_rle_init(&d, out.data, out.len, bw);
            uint32_t *more = malloc((n + 64) * sizeof *more);
            CHECK_EQ_INT(cf_rle_get(&d, more, n + 64), -1);
            free(more);
            cf_buf_free(&out);
            free(v);
            free(got);
        }
    }
}

CF_TEST_MAIN("parquet",
    T(test_rle_hybrid), T(test_empty_strings), T(test_wide_decimals), T(test_long_string_stats), T(test_delta_binary_packed),
    T(test_types_zstd_dict), T(test_types_zstd_plain), T(test_types_snappy), T(test_types_none),
    T(test_no_nulls), T(test_all_nulls), T(test_row_groups_and_pages), T(test_empty_file),
    T(test_dict_fallback), T(test_stats), T(test_projection_rows_kv_errors), T(test_bad_values),
    T(test_tree_checkpoint), T(test_corrupt))
