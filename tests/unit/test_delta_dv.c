/* test_delta_dv.c - deletion vectors: the protocol's own examples (Z85,
 * inline bitmap, file location), every roaring container kind, .bin files
 * with their checksums, replay of (path, vector) logical files, and the
 * sink on a table whose files carry vectors another writer added. */
#include "cf_test.h"
#include "sink_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table/delta/delta_int.h"

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* An inline vector (Z85 of the bitmap in the log) of rows 3, 4, 7, 11, 18,
 * 29, the set of PROTOCOL.md's inline example. */
static void test_inline_vector(void)
{
    static const uint64_t want[] = { 3, 4, 7, 11, 18, 29 };
    cf_rowset in = { (uint64_t *)want, 6, 6 }, s = { 0 };
    cf_buf enc, z;
    cf_err e;

    cf_buf_init(&enc, 0);
    cf_buf_init(&z, 0);
    CHECK_EQ_INT(cf_delta_dv_encode(&in, &enc, &e), 0);
    CHECK_EQ_INT(enc.len, 44);   /* magic, bucket count and key, 32-bit header, 6 values */
    CHECK_EQ_INT(cf_delta_z85_encode(enc.data, enc.len, &z, &e), 0);
    CHECK_EQ_INT(z.len, 55);
    CHECK_EQ_INT(cf_buf_putc(&z, 0, &e), 0);
    cf_delta_dv dv = { .type = 'i', .path = (char *)z.data, .size = 44, .cardinality = 6 };
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), "/nowhere", &dv, &s, &e), 0);
    CHECK(s.n == 6 && !memcmp(s.v, want, sizeof want));
    CHECK(cf_rowset_has(&s, 11) && !cf_rowset_has(&s, 12) && !cf_rowset_has(&s, 0));

    /* a wrong cardinality is corruption, not a smaller set */
    dv.cardinality = 5;
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), "/nowhere", &dv, &s, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    /* a character outside Z85 too */
    z.data[3] = '~';
    dv.cardinality = 6;
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), "/nowhere", &dv, &s, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    cf_buf_free(&enc);
    cf_buf_free(&z);
    cf_rowset_free(&s);
}

/* The older "native" RoaringBitmapArray (magic 1681511376) Delta still
 * reads: a u32 count of bitmaps, each with its size; bitmap i holds the
 * rows whose high 32 bits are i. */
static void test_native_format(void)
{
    static const uint8_t bytes[] = {
        0xd0, 0xd3, 0x39, 0x64,                  /* magic 1681511376 */
        2, 0, 0, 0,                              /* two bitmaps */
        18, 0, 0, 0,                             /* bitmap 0: 18 bytes */
        0x3a, 0x30, 0, 0, 1, 0, 0, 0,            /* cookie 12346, 1 container */
        0, 0, 0, 0, 16, 0, 0, 0,                 /* key 0, 1 value; offset 16 */
        7, 0,                                    /* row 7 */
        18, 0, 0, 0,                             /* bitmap 1 */
        0x3a, 0x30, 0, 0, 1, 0, 0, 0,
        0, 0, 0, 0, 16, 0, 0, 0,
        9, 0,                                    /* row 2^32 + 9 */
    };
    cf_rowset s = { 0 };
    cf_err e;

    CHECK_EQ_INT(cf_delta_dv_decode(bytes, sizeof bytes, &s, &e), 0);
    CHECK(s.n == 2 && s.v[0] == 7 && s.v[1] == (1ull << 32) + 9);
    cf_rowset_free(&s);
}

/* PROTOCOL.md, "JSON Example 1": the file of a 'u' vector with a prefix. */
static void test_protocol_path_example(void)
{
    cf_delta_dv dv = { .type = 'u', .path = (char *)"ab^-aqEH.-t@S}K{vb[*k^", .has_offset = true, .offset = 4,
                       .size = 40, .cardinality = 6 };
    cf_err e;
    char *loc = cf_delta_dv_location("s3://mytable", &dv, &e);

    CHECK_EQ_STR(loc, "s3://mytable/ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin");
    free(loc);
    dv.type = 'i';
    CHECK(cf_delta_dv_location("s3://mytable", &dv, &e) == NULL);
}

static void roundtrip(const uint64_t *v, size_t n)
{
    cf_rowset in = { (uint64_t *)v, n, n }, out = { 0 };
    static const uint64_t none[1];
    if (!v)
        in.v = (uint64_t *)none;
    cf_buf b;
    cf_err e;

    cf_buf_init(&b, 0);
    CHECK_EQ_INT(cf_delta_dv_encode(&in, &b, &e), 0);
    CHECK_EQ_INT(cf_delta_dv_decode(b.data, b.len, &out, &e), 0);
    CHECK_EQ_INT(out.n, n);
    CHECK(out.n == n && (!n || !memcmp(out.v, v, n * sizeof *v)));
    /* every cut of the bytes is refused, never read past */
    for (size_t cut = 0; cut < b.len; cut += 1 + b.len / 64) {
        cf_rowset t = { 0 };
        if (cf_delta_dv_decode(b.data, cut, &t, &e) == 0)
            CHECK(t.n < n || cut == b.len);
        cf_rowset_free(&t);
    }
    cf_rowset_free(&out);
    cf_buf_free(&b);
}

/* Arrays, a bitmap container (over 4096 rows in 64K), and rows past 2^32
 * (a second bucket). */
static void test_containers_roundtrip(void)
{
    size_t n = 0;
    uint64_t *v = malloc(sizeof *v * 20000);

    if (!v)
        return;
    roundtrip(NULL, 0);
    for (uint64_t r = 0; r < 10000; r += 2)          /* 5000 rows in container 0: a bitmap */
        v[n++] = r;
    for (uint64_t r = 70000; r < 70100; r++)         /* container 1: an array */
        v[n++] = r;
    v[n++] = 1ull << 20;
    v[n++] = (1ull << 32) + 5;                        /* bucket 1 */
    v[n++] = (3ull << 32) + 65536 * 7 + 9;            /* bucket 3, container 7 */
    roundtrip(v, n);
    free(v);
}

/* A run container (Spark writes them after runOptimize): rows 10..14 and
 * 100..101 in one container. */
static void test_run_container(void)
{
    static const uint8_t bytes[] = {
        0xd1, 0xd3, 0x39, 0x64,                  /* magic 1681511377 */
        1, 0, 0, 0, 0, 0, 0, 0,                  /* one bucket */
        0, 0, 0, 0,                              /* key 0 */
        0x3b, 0x30, 0, 0,                        /* cookie 12347, 1 container */
        0x01,                                    /* container 0 is a run container */
        0, 0, 6, 0,                              /* key 0, cardinality 7 */
        2, 0, 10, 0, 4, 0, 100, 0, 1, 0,         /* 2 runs: 10+4, 100+1 */
    };
    static const uint64_t want[] = { 10, 11, 12, 13, 14, 100, 101 };
    cf_rowset s = { 0 };
    cf_err e;

    CHECK_EQ_INT(cf_delta_dv_decode(bytes, sizeof bytes, &s, &e), 0);
    CHECK_EQ_INT(s.n, 7);
    CHECK(s.n == 7 && !memcmp(s.v, want, sizeof want));
    cf_rowset_free(&s);
}

/* A .bin file of two vectors: each read back at its offset; a flipped
 * byte fails the checksum. */
static void test_dv_file(void)
{
    char tmpl[] = "/tmp/cf_dv_XXXXXX", *dir = mkdtemp(tmpl), path[256];
    uint64_t a[] = { 1, 2, 3 }, b[] = { 0, 65535, 65536, 1u << 31 };
    cf_rowset sa = { a, 3, 3 }, sb = { b, 4, 4 }, got = { 0 };
    const cf_rowset *sets[2] = { &sa, &sb };
    int64_t off[2];
    int32_t size[2];
    cf_buf f, z;
    cf_err e;

    CHECK(dir != NULL);
    if (!dir)
        return;
    cf_buf_init(&f, 0);
    cf_buf_init(&z, 0);
    CHECK_EQ_INT(cf_delta_dv_file(sets, 2, &f, off, size, &e), 0);
    CHECK_EQ_INT(f.data[0], 1);
    CHECK_EQ_INT(off[0], 1);
    /* a 'u' vector named by the Z85 of a UUID, no prefix */
    static const uint8_t uuid[16] = { 0xd2, 0xc6, 0x39, 0xaa, 0x88, 0x16, 0x43, 0x1a,
                                      0xaa, 0xf6, 0xd3, 0xfe, 0x25, 0x12, 0xff, 0x61 };
    CHECK_EQ_INT(cf_delta_z85_encode(uuid, 16, &z, &e), 0);
    CHECK_EQ_INT(cf_buf_putc(&z, 0, &e), 0);
    snprintf(path, sizeof path, "%s/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin", dir);
    CHECK_EQ_INT(cf_store_put(test_store(), path, f.data, f.len, &e), 0);
    cf_delta_dv dv = { .type = 'u', .path = (char *)z.data, .has_offset = true, .offset = off[1],
                       .size = size[1], .cardinality = 4 };
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), dir, &dv, &got, &e), 0);
    CHECK(got.n == 4 && !memcmp(got.v, b, sizeof b));
    dv.offset = off[0];
    dv.size = size[0];
    dv.cardinality = 3;
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), dir, &dv, &got, &e), 0);
    CHECK(got.n == 3 && !memcmp(got.v, a, sizeof a));
    f.data[off[0] + 10] ^= 0x40;
    CHECK_EQ_INT(cf_store_put(test_store(), path, f.data, f.len, &e), 0);
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_dv_read(test_store(), dir, &dv, &got, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    CHECK(strstr(e.msg, "checksum") != NULL);
    cf_rowset_free(&got);
    cf_buf_free(&f);
    cf_buf_free(&z);
    rmtree(dir);
}

/* ---- a table another writer put vectors on ---------------------------- */


/* Sum of ids and row count of the table as a reader sees it. */
static int64_t id_sum(const char *root, size_t *n)
{
    cf_err e;
    cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &e);
    int64_t sum = 0;

    *n = 0;
    if (!s)
        return -1;
    cf_batch *b = cf_batch_new(s->schema, &e);
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].live)
            CHECK_EQ_INT(cf_delta_read_file(test_store(), root, s->files[i].path, &s->files[i].pv, &s->files[i].dv,
                                            s->schema, b, &e), 0);
    for (size_t r = 0; r < b->nrows; r++)
        sum += cf_col_i64(&b->cols[0], r);
    *n = b->nrows;
    cf_batch_free(b);
    cf_delta_snap_free(s);
    return sum;
}

/* What a DELETE with deletion vectors commits (as Spark does): the file
 * is removed with its old vector and added again with the new one.  The
 * order of the two actions must not matter. */
static void put_dv_commit(const char *dir, int64_t version, const cf_delta_file *f, const uint64_t *rows, size_t n,
                          bool add_first)
{
    cf_rowset s = { (uint64_t *)rows, n, n };
    cf_buf bits, z, log;
    cf_err e;
    json_t *dv;
    char *dvs;

    cf_buf_init(&bits, 0);
    cf_buf_init(&z, 0);
    cf_buf_init(&log, 0);
    CHECK_EQ_INT(cf_delta_dv_encode(&s, &bits, &e), 0);
    CHECK_EQ_INT(cf_delta_z85_encode(bits.data, bits.len, &z, &e), 0);
    CHECK_EQ_INT(cf_buf_putc(&z, 0, &e), 0);
    cf_delta_dv d = { .type = 'i', .path = (char *)z.data, .size = (int32_t)bits.len, .cardinality = (int64_t)n };
    dv = cf_delta_dv_json(&d);
    dvs = json_dumps(dv, JSON_COMPACT);
    json_t *oldj = cf_delta_dv_json(&f->dv);
    char *old = f->dv.type ? json_dumps(oldj, JSON_COMPACT) : NULL;
    json_decref(oldj);
    const char *add_fmt = "{\"add\":{\"path\":\"%s\",\"partitionValues\":{},\"size\":%lld,\"modificationTime\":1,"
                          "\"dataChange\":true,\"stats\":\"{\\\"numRecords\\\":%lld}\",\"deletionVector\":%s}}\n";
    const char *rm_fmt = "{\"remove\":{\"path\":\"%s\",\"deletionTimestamp\":1,\"dataChange\":true%s%s}}\n";
    cf_buf_printf(&log, &e, "{\"commitInfo\":{\"timestamp\":1,\"operation\":\"DELETE\"}}\n");
    for (int k = 0; k < 2; k++) {
        if ((k == 0) == add_first)
            cf_buf_printf(&log, &e, add_fmt, f->path, (long long)f->size, (long long)f->num_records, dvs);
        else
            cf_buf_printf(&log, &e, rm_fmt, f->path, old ? ",\"deletionVector\":" : "", old ? old : "");
    }
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, version, log.data, log.len, -1, &e), 0);
    free(old);
    free(dvs);
    json_decref(dv);
    cf_buf_free(&bits);
    cf_buf_free(&z);
    cf_buf_free(&log);
}

static void test_upsert_over_vectors(void)
{
    char tmpl[] = "/tmp/cf_dv_table_XXXXXX", *dir = mkdtemp(tmpl);
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .mode = CF_MODE_UPSERT };
    cf_sink *k;
    cf_batch *b = cf_batch_new(s, &e);
    cf_offsets o = { 0 };
    int64_t v;
    size_t n;

    CHECK(dir != NULL);
    if (!dir)
        return;
    /* ids 1..10 in one file; the table turns on deletion vectors */
    CHECK((k = cf_sink_open(&cfg, &e)) != NULL);
    for (int i = 1; i <= 10; i++)
        kv_row(b, i, "v0", "INSERT", i);
    cf_delta_offsets_put(&o, "t", 0, 10, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_sink_close(k);
    CHECK_EQ_INT(id_sum(dir, &n), 55);

    /* another writer deletes rows 2 and 5 (ids 3, 6), then row 0 as well
     * (id 1), each time replacing the file's vector */
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->nlive == 1);
    if (!sn)
        return;
    cf_delta_file *f = NULL;
    for (size_t i = 0; i < sn->nfiles; i++)
        if (sn->files[i].live)
            f = &sn->files[i];
    put_dv_commit(dir, 1, f, (const uint64_t[]){ 2, 5 }, 2, true);
    cf_delta_snap_free(sn);
    CHECK_EQ_INT(id_sum(dir, &n), 55 - 3 - 6);
    CHECK_EQ_INT(n, 8);
    sn = cf_delta_snap_load(NULL, dir, -1, &e);
    f = NULL;
    for (size_t i = 0; sn && i < sn->nfiles; i++)
        if (sn->files[i].live)
            f = &sn->files[i];
    CHECK(sn && sn->nlive == 1 && f && f->dv.type == 'i');
    if (!f)
        return;
    put_dv_commit(dir, 2, f, (const uint64_t[]){ 0, 2, 5 }, 3, false);
    cf_delta_snap_free(sn);
    CHECK_EQ_INT(id_sum(dir, &n), 55 - 1 - 3 - 6);
    CHECK_EQ_INT(n, 7);

    /* the sink picks the table up again: an update of id 3 (deleted by the
     * vector) is an insert, an update of id 4 a real update; the rewrite
     * keeps the deleted rows deleted */
    CHECK((k = cf_sink_open(&cfg, &e)) != NULL);
    cf_batch_reset(b);
    kv_row(b, 3, "back", "UPDATE", 30);
    kv_row(b, 4, "v1", "UPDATE", 31);
    free(o.v);
    o = (cf_offsets){ 0 };
    cf_delta_offsets_put(&o, "t", 0, 12, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 3);
    cf_sink_close(k);
    CHECK_EQ_INT(id_sum(dir, &n), 55 - 1 - 6);
    CHECK_EQ_INT(n, 8);
    cf_buf lg;
    cf_buf_init(&lg, 0);
    CHECK_EQ_INT(cf_delta_log_read(test_store(), dir, 3, &lg, &e), 0);
    const char *t = cf_buf_cstr(&lg, &e);
    /* the remove names the vector of the file it retires */
    CHECK(t && strstr(t, "\"remove\":") && strstr(t, "\"deletionVector\":{\"storageType\":\"i\""));
    CHECK(t && strstr(t, "\"numTargetRowsUpdated\":\"1\"") && strstr(t, "\"numTargetRowsInserted\":\"1\""));
    cf_buf_free(&lg);

    /* a checkpoint keeps the vectors: write one at a vector-carrying state */
    sn = cf_delta_snap_load(NULL, dir, 2, &e);
    CHECK(sn != NULL);
    if (sn) {
        /* as if the table had been upgraded to name its features */
        json_t *pa = json_loads("{\"protocol\":{\"minReaderVersion\":3,\"minWriterVersion\":7,"
                                "\"readerFeatures\":[\"deletionVectors\"],"
                                "\"writerFeatures\":[\"deletionVectors\",\"changeDataFeed\"]}}", 0, NULL);
        CHECK_EQ_INT(cf_delta_snap_apply_action(sn, pa, &e), 0);
        json_decref(pa);
        CHECK_EQ_INT(cf_delta_checkpoint_write(sn, &e), 0);
        cf_delta_snap *c = cf_delta_snap_new(NULL, dir, &e);
        CHECK_EQ_INT(cf_delta_checkpoint_read(c, 2, &e), 0);
        CHECK_EQ_INT(c->nlive, 1);
        /* reader 3 / writer 7 keep their feature lists (Spark refuses a
         * checkpoint whose versions and lists disagree) */
        CHECK(c->min_reader == 3 && c->min_writer == 7);
        CHECK(json_equal(json_object_get(c->protocol, "readerFeatures"), json_object_get(sn->protocol, "readerFeatures")));
        CHECK(json_equal(json_object_get(c->protocol, "writerFeatures"), json_object_get(sn->protocol, "writerFeatures")));
        for (size_t i = 0; i < c->nfiles; i++)
            if (c->files[i].live) {
                CHECK(c->files[i].dv.type == 'i' && c->files[i].dv.cardinality == 3);
                CHECK(cf_delta_dv_same(&c->files[i].dv, &cf_delta_snap_file(sn, c->files[i].path)->dv));
            }
        cf_delta_snap_free(c);
        cf_delta_snap_free(sn);
    }
    free(o.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

/* --delta-deletes dv: a new table has the feature; updates and deletes
 * mark rows in vectors (the file stays, one .bin per commit), a file whose
 * rows are all gone is removed; rows read back are the upsert's. */
static void test_upsert_writes_vectors(void)
{
    char tmpl[] = "/tmp/cf_dv_write_XXXXXX", *dir = mkdtemp(tmpl);
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .mode = CF_MODE_UPSERT,
                           .delta_deletes = CF_DELTA_DELETES_DV };
    cf_sink *k;
    cf_batch *b = cf_batch_new(s, &e);
    cf_offsets o = { 0 };
    int64_t v;
    size_t n;

    CHECK(dir != NULL);
    if (!dir)
        return;
    CHECK((k = cf_sink_open(&cfg, &e)) != NULL);
    for (int i = 1; i <= 10; i++)
        kv_row(b, i, "v0", "INSERT", i);
    cf_delta_offsets_put(&o, "t", 0, 10, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_batch_reset(b);
    kv_row(b, 11, "a", "INSERT", 11);                  /* a second file: ids 11, 12 */
    kv_row(b, 12, "a", "INSERT", 12);
    cf_delta_offsets_put(&o, "t", 0, 12, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_batch_reset(b);
    kv_row(b, 3, "v1", "UPDATE", 20);                  /* file 1: marked */
    kv_row(b, 7, "x", "DELETE", 21);
    kv_row(b, 11, "x", "DELETE", 22);                  /* file 2: every row gone */
    kv_row(b, 12, "x", "DELETE", 23);
    cf_delta_offsets_put(&o, "t", 0, 16, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 2);
    /* again on the file that has a vector now: the vectors add up */
    cf_batch_reset(b);
    kv_row(b, 4, "x", "DELETE", 30);
    kv_row(b, 3, "v2", "UPDATE", 31);
    cf_delta_offsets_put(&o, "t", 0, 18, NULL);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_sink_close(k);
    CHECK_EQ_INT(id_sum(dir, &n), 55 - 7 - 4);
    CHECK_EQ_INT(n, 8);

    cf_buf lg;
    cf_buf_init(&lg, 0);
    CHECK_EQ_INT(cf_delta_log_read(test_store(), dir, 0, &lg, &e), 0);
    const char *t = cf_buf_cstr(&lg, &e);
    CHECK(t && strstr(t, "\"readerFeatures\":[\"deletionVectors\"]") &&
          strstr(t, "\"delta.enableDeletionVectors\":\"true\""));
    cf_buf_reset(&lg);
    CHECK_EQ_INT(cf_delta_log_read(test_store(), dir, 2, &lg, &e), 0);
    t = cf_buf_cstr(&lg, &e);
    CHECK(t && strstr(t, "\"numDeletionVectorsAdded\":\"1\"") && strstr(t, "\"numRemovedFiles\":\"1\""));
    cf_buf_free(&lg);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn != NULL);
    int with_dv = 0;
    for (size_t i = 0; sn && i < sn->nfiles; i++)
        if (sn->files[i].live && sn->files[i].dv.type) {
            with_dv++;
            CHECK(sn->files[i].dv.type == 'u' && sn->files[i].dv.cardinality == 3);   /* rows of 3, 7, 4 */
            CHECK_EQ_INT(cf_delta_stats_num_records(sn->files[i].stats), 10);
        }
    CHECK_EQ_INT(with_dv, 1);
    cf_delta_snap_free(sn);
    free(o.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

CF_TEST_MAIN("delta_dv", T(test_inline_vector), T(test_native_format), T(test_protocol_path_example),
             T(test_containers_roundtrip), T(test_run_container), T(test_dv_file), T(test_upsert_over_vectors),
             T(test_upsert_writes_vectors))
