/* test_iceberg_types.c - Iceberg tables with uuid, wide and narrow decimal,
 * NaN-holding double, date and timestamp columns: declared types, column
 * bounds, NaN counts and column sizes in manifests, and the year, month,
 * hour, truncate and uuid identity partition transforms; the bounded
 * snapshot history (history.expire.* properties) the sink applies.
 *
 * With CF_ICEBERG_TEST_DIR set the tables are kept there (types/,
 * part_time/, part_hour/, part_trunc/, part_uuid/, history/) for
 * tests/integration/test_iceberg_types.py, which reads them with pyiceberg,
 * DuckDB and fastavro and recomputes the rows from the same formula
 * (see make_row). */
#include "cf_test.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "iceberg_util.h"
#include "table/iceberg/iceberg_int.h"
#include "table/table.h"
#include "sink_util.h"

#define TOPIC "postgres.public.things"

static char root[256];
static bool keep;

static void table_dir(char *out, size_t n, const char *name)
{
    char cmd[600];
    if (!root[0]) {
        const char *d = getenv("CF_ICEBERG_TEST_DIR");
        if (d && *d) {
            snprintf(root, sizeof root, "%s", d);
            keep = true;
        } else {
            snprintf(root, sizeof root, "/tmp/cf_ice_types_XXXXXX");
            CHECK(mkdtemp(root) != NULL);
        }
    }
    snprintf(out, n, "%s/%s", root, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, root);
    CHECK(system(cmd) == 0);
}

static cf_schema *things_schema(void)
{
    cf_schema *s = cf_schema_new();
    const char *pk[] = { "id" };
    cf_schema_add(s, "id", (cf_type){ .id = CF_T_INT64 }, false, 0, NULL);
    cf_schema_add(s, "u", (cf_type){ .id = CF_T_UUID }, true, 0, NULL);
    cf_schema_add(s, "big", (cf_type){ CF_T_DECIMAL, 30, 4 }, true, 0, NULL);
    cf_schema_add(s, "small", (cf_type){ CF_T_DECIMAL, 10, 2 }, true, 0, NULL);
    cf_schema_add(s, "f", (cf_type){ .id = CF_T_DOUBLE }, true, 0, NULL);
    cf_schema_add(s, "ts", (cf_type){ .id = CF_T_TIMESTAMP }, true, 0, NULL);
    cf_schema_add(s, "d", (cf_type){ .id = CF_T_DATE }, true, 0, NULL);
    cf_schema_add(s, "name", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "_cdc_operation", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "_source_lsn", (cf_type){ .id = CF_T_INT64 }, true, 0, NULL);
    cf_schema_set_pk(s, pk, 1, NULL);
    return s;
}

/* Row i of generation gen (a later generation updates the same keys).  The
 * integration test mirrors this formula in Python. */
static void make_row(cf_batch *b, int64_t i, int gen)
{
    static const char *const names[] = { "alpha", "\xc3\xa9mile", "gamma" };
    char buf[96];
    size_t r = b->nrows;
    int n;

    cf_col_set_i64(&b->cols[0], r, i, NULL);
    n = snprintf(buf, sizeof buf, "%08x-%04x-4000-8000-%012llx", (unsigned)((uint32_t)i * 2654435761u),
                 (unsigned)i, (unsigned long long)(i * 7919));
    cf_col_set_bytes(&b->cols[1], r, buf, (size_t)n, NULL);
    n = snprintf(buf, sizeof buf, "%s%lld.%04lld", i < 60 ? "-" : "",
                 (long long)((i < 60 ? 60 - i : i - 60) * 123456789012345678LL), (long long)((i * 37) % 10000));
    cf_col_set_bytes(&b->cols[2], r, buf, (size_t)n, NULL);
    cf_col_set_i64(&b->cols[3], r, (i - 60) * 12345, NULL);
    if (i % 23 == 0)
        cf_col_set_null(&b->cols[4], r, NULL);
    else
        cf_col_set_f64(&b->cols[4], r, i % 17 == 0 ? NAN : (double)i * 0.5, NULL);
    cf_col_set_i64(&b->cols[5], r, 1500000000000000LL + i * (11LL * 86400 + 5 * 3600) * 1000000LL, NULL);
    cf_col_set_i64(&b->cols[6], r, 17000 + i * 13, NULL);
    n = snprintf(buf, sizeof buf, "%s%lld", names[i % 3], (long long)i);
    cf_col_set_bytes(&b->cols[7], r, buf, (size_t)n, NULL);
    cf_col_set_bytes(&b->cols[8], r, gen ? "UPDATE" : "INSERT", 6, NULL);
    cf_col_set_i64(&b->cols[9], r, 1000 + i + gen * 10000, NULL);
    cf_batch_end_row(b, NULL);
}

static int commit_rows(cf_sink *s, cf_batch *b, int64_t from, int64_t to, int gen)
{
    cf_offsets off = { 0 };
    cf_err err = { 0 };
    int64_t v;
    int rc;
    cf_batch_reset(b);
    for (int64_t i = from; i < to; i++)
        make_row(b, i, gen);
    cf_offsets_put(&off, TOPIC, 0, to + gen * 1000, NULL);
    rc = commit_b(s, b, NULL, &off, &v, &err);
    if (rc)
        fprintf(stderr, "  commit [%lld,%lld): %s\n", (long long)from, (long long)to, err.msg);
    cf_offsets_free(&off);
    return rc;
}

/* Write table `name` with rows [0, n) (gens generations) partitioned by parts. */
static int write_table(const char *name, cf_mode mode, const char *const *parts, int nparts,
                       int64_t n, int commits, int gens, char *dir, size_t dirn)
{
    cf_schema *sc = things_schema();
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink_config cfg = { .kind = "iceberg", .table_name = "things", .mode = mode,
                           .partition_by = parts, .npartition_by = nparts, .codec = CF_CODEC_ZSTD };
    cf_err err = { 0 };
    cf_sink *s;
    int rc = 0;

    table_dir(dir, dirn, name);
    cfg.location = dir;
    if (!(s = cf_sink_open(&cfg, &err))) {
        fprintf(stderr, "  open %s: %s\n", dir, err.msg);
        rc = -1;
    }
    for (int g = 0; s && !rc && g < gens; g++)
        for (int c = 0; !rc && c < commits; c++)
            rc = commit_rows(s, b, n * c / commits, n * (c + 1) / commits, g);
    cf_sink_close(s);
    cf_batch_free(b);
    cf_schema_free(sc);
    return rc;
}

typedef struct count { int64_t rows, lsn_sum; } count;

static int count_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    count *c = ctx;
    int lc = cf_schema_find(rows->schema, "_source_lsn");
    (void)file, (void)pos, (void)err;
    for (size_t i = 0; i < rows->nrows; i++)
        c->lsn_sum += cf_col_i64(&rows->cols[lc], i);
    c->rows += (int64_t)rows->nrows;
    return 0;
}

/* Load dir; fill its live files, schema and a scan count. */
static int load(const char *dir, cf_ice_table *t, cf_ice_file **files, int *nfiles, cf_schema **s,
                count *c)
{
    cf_err err = { 0 };
    memset(c, 0, sizeof *c);
    if (ice_load(dir, t, &err) || !t->meta || !(*s = cf_ice_schema_from_json(t->meta, -1, &err)) ||
        cf_ice_snapshot_files(local_store(), cf_ice_snapshot(t->meta, -1), files, nfiles, &err) ||
        cf_ice_scan(local_store(), cf_ice_snapshot(t->meta, -1), *s, NULL, 0, count_fn, c, &err)) {
        fprintf(stderr, "  %s: %s\n", dir, err.msg);
        return -1;
    }
    return 0;
}

static const cf_ice_metric *metric(const cf_ice_file *f, int id)
{
    for (int i = 0; i < f->nmetrics; i++)
        if (f->metrics[i].id == id)
            return &f->metrics[i];
    return NULL;
}

static void test_types_and_metrics(void)
{
    char dir[400];
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0, nans = 0;
    cf_schema *s = NULL;
    count c;
    json_t *fields;

    CHECK(write_table("types", CF_MODE_APPEND, NULL, 0, 120, 2, 1, dir, sizeof dir) == 0);
    if (load(dir, &t, &files, &nfiles, &s, &c)) {
        CHECK(0);
        goto out;
    }
    CHECK_EQ_INT(c.rows, 120);
    CHECK_EQ_INT(nfiles, 2);
    fields = json_object_get(json_array_get(json_object_get(t.meta, "schemas"), 0), "fields");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(fields, 1), "type")), "uuid");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(fields, 2), "type")), "decimal(30, 4)");
    CHECK_EQ_INT(s->fields[1].type.id, CF_T_UUID);
    CHECK_EQ_INT(s->fields[2].type.precision, 30);
    for (int i = 0; i < nfiles; i++) {
        const cf_ice_file *f = &files[i];
        const cf_ice_metric *mu = metric(f, 2), *mb = metric(f, 3), *mf = metric(f, 5);
        int64_t sizes = 0;
        CHECK(mu && mb && mf);
        if (!mu || !mb || !mf)
            continue;
        CHECK_EQ_INT(mu->lower_n, 16);
        CHECK_EQ_INT(mu->upper_n, 16);
        CHECK(memcmp(mu->lower, mu->upper, 16) < 0);
        /* rows [0,60) are all negative, [60,120) all positive: sign byte */
        {
            bool negative_half = metric(f, 1)->lower[0] == 0;     /* ids from 0 */
            CHECK(mb->lower_n >= 1 && mb->lower_n <= 16 && mb->upper_n >= 1 && mb->upper_n <= 16);
            CHECK(((mb->lower[0] & 0x80) != 0) == negative_half);
            CHECK(((mb->upper[0] & 0x80) != 0) == negative_half);
        }
        nans += (int)mf->nans;
        CHECK_EQ_INT(metric(f, 1)->nans, -1);       /* not a float column */
        for (int k = 0; k < f->nmetrics; k++) {
            CHECK(f->metrics[k].sizes > 0);
            sizes += f->metrics[k].sizes;
        }
        CHECK(sizes < f->bytes);
    }
    /* NaN at i % 17 == 0 unless null (i % 23 == 0): 17 34 51 68 85 102 119 */
    CHECK_EQ_INT(nans, 7);
out:
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
}

/* Partition values of every file against the formula's own transform. */
static void test_time_and_truncate_partitions(void)
{
    static const char *const time_parts[] = { "year(ts)", "month(d)" };
    static const char *const hour_parts[] = { "hour(ts)" };
    static const char *const trunc_parts[] = { "truncate(10, id)", "truncate[2](name)" };
    char dir[400];
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0, ndata = 0;
    cf_schema *s = NULL;
    count c;

    CHECK(write_table("part_time", CF_MODE_APPEND, time_parts, 2, 120, 1, 1, dir, sizeof dir) == 0);
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 120);
        for (int i = 0; i < nfiles; i++) {
            CHECK_EQ_INT(files[i].npart, 2);
            CHECK(files[i].part[0].i >= 47 && files[i].part[0].i <= 53);   /* 2017 .. 2023 */
            CHECK(strstr(files[i].path, "/ts_year=20") && strstr(files[i].path, "/d_month=20"));
        }
        CHECK(nfiles > 7);
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
    files = NULL, nfiles = 0, s = NULL;

    CHECK(write_table("part_hour", CF_MODE_APPEND, hour_parts, 1, 40, 1, 1, dir, sizeof dir) == 0);
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 40);
        CHECK_EQ_INT(nfiles, 40);                  /* every row in its own hour */
        for (int i = 0; i < nfiles; i++)
            CHECK((files[i].part[0].i - 1500000000LL / 3600) % (11 * 24 + 5) == 0);
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
    files = NULL, nfiles = 0, s = NULL;

    CHECK(write_table("part_trunc", CF_MODE_APPEND, trunc_parts, 2, 120, 1, 1, dir, sizeof dir) == 0);
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 120);
        CHECK_EQ_INT(nfiles, 36);                  /* 12 groups of ten ids x 3 prefixes */
        for (int i = 0; i < nfiles; i++) {
            const cf_ice_pval *p = files[i].part;
            CHECK(p[0].i % 10 == 0);
            CHECK((p[1].n == 2 && (!memcmp(p[1].s, "al", 2) || !memcmp(p[1].s, "ga", 2))) ||
                  (p[1].n == 3 && !memcmp(p[1].s, "\xc3\xa9m", 3)));
            ndata += files[i].records == 3 || files[i].records == 4;
        }
        CHECK_EQ_INT(ndata, 36);
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
}

/* Identity partitions on a uuid column hold 16 bytes; upserts retire rows
 * with delete files carrying the same values. */
static void test_uuid_partitions_upsert(void)
{
    static const char *const parts[] = { "u" };
    char dir[400];
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0, ndel = 0;
    cf_schema *s = NULL;
    count c;

    CHECK(write_table("part_uuid", CF_MODE_UPSERT, parts, 1, 16, 1, 2, dir, sizeof dir) == 0);
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 16);
        /* generation 1 won everywhere: LSNs 11000 + i */
        CHECK_EQ_INT(c.lsn_sum, 16 * 11000 + 120);
        for (int i = 0; i < nfiles; i++) {
            const uint8_t *u = (const uint8_t *)files[i].part[0].s;
            char want[64];
            CHECK_EQ_INT(files[i].part[0].n, 16);
            if (files[i].part[0].n != 16)
                continue;
            /* the bytes read back from the manifest name a data file's directory */
            snprintf(want, sizeof want, "/u=%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x/",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                     u[14], u[15]);
            CHECK(files[i].content == 1 || strstr(files[i].path, want) != NULL);
            ndel += files[i].content == 1;
        }
        CHECK_EQ_INT(ndel, 16);
        CHECK_EQ_INT(nfiles, 48);        /* both generations' data files, one delete file each */
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
}

/* cf_ice_expire_history on a made-up document: off without the property,
 * then by age, keeping the current snapshot, other refs and the newest N. */
static void test_expire_history_rules(void)
{
    json_t *meta = json_pack("{s:{}, s:I, s:{s:{s:I, s:s}, s:{s:I, s:s}}, s:[], s:[]}", "properties",
                             "current-snapshot-id", (json_int_t)5, "refs", "main", "snapshot-id",
                             (json_int_t)5, "type", "branch", "keep", "snapshot-id", (json_int_t)2,
                             "type", "tag", "snapshots", "snapshot-log");
    json_t *props = json_object_get(meta, "properties");
    for (int i = 1; i <= 5; i++) {
        json_array_append_new(json_object_get(meta, "snapshots"),
                              json_pack("{s:i, s:I}", "snapshot-id", i, "timestamp-ms", (json_int_t)(i * 1000)));
        json_array_append_new(json_object_get(meta, "snapshot-log"),
                              json_pack("{s:i, s:I}", "snapshot-id", i, "timestamp-ms", (json_int_t)(i * 1000)));
    }
    CHECK_EQ_INT(cf_ice_expire_history(meta, 100000), 0);             /* no property: off */
    json_object_set_new(props, "history.expire.max-snapshot-age-ms", json_string("bogus"));
    CHECK_EQ_INT(cf_ice_expire_history(meta, 100000), 0);             /* unreadable: off */
    json_object_set_new(props, "history.expire.max-snapshot-age-ms", json_string("3500"));
    /* now 6000: age limit keeps ts >= 2500 (3, 4, 5); tag keeps 2; 1 goes */
    CHECK_EQ_INT(cf_ice_expire_history(meta, 6000), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(meta, "snapshots")), 4);
    CHECK_EQ_INT(json_array_size(json_object_get(meta, "snapshot-log")), 4);
    CHECK(cf_ice_snapshot(meta, 1) == NULL && cf_ice_snapshot(meta, 2) != NULL);
    json_object_set_new(props, "history.expire.max-snapshot-age-ms", json_string("0"));
    json_object_set_new(props, "history.expire.min-snapshots-to-keep", json_string("2"));
    /* everything is old: the tagged 2 and the newest two (4, 5) stay */
    CHECK_EQ_INT(cf_ice_expire_history(meta, 6000), 1);
    CHECK(cf_ice_snapshot(meta, 3) == NULL && cf_ice_snapshot(meta, 4) != NULL);
    json_object_del(json_object_get(meta, "refs"), "keep");
    json_object_set_new(props, "history.expire.min-snapshots-to-keep", json_string("0"));  /* means 1 */
    CHECK_EQ_INT(cf_ice_expire_history(meta, 6000), 2);
    CHECK_EQ_INT(json_array_size(json_object_get(meta, "snapshots")), 1);
    CHECK(cf_ice_snapshot(meta, 5) != NULL);
    CHECK_EQ_INT(json_array_size(json_object_get(meta, "snapshot-log")), 1);
    json_decref(meta);
}

/* A long stream with the policy set keeps a bounded metadata file and
 * still reads every row and resumes from its offsets. */
static void test_sink_bounds_history(void)
{
    char dir[400];
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0;
    cf_schema *s = NULL;
    cf_err err = { 0 };
    count c;
    json_t *meta;

    /* commit 1, then the policy, then 19 more commits by a new writer */
    CHECK(write_table("history", CF_MODE_APPEND, NULL, 0, 6, 1, 1, dir, sizeof dir) == 0);
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    if (!t.meta)
        return;
    meta = json_deep_copy(t.meta);
    json_object_set_new(json_object_get(meta, "properties"), "history.expire.max-snapshot-age-ms",
                        json_string("0"));
    json_object_set_new(json_object_get(meta, "properties"), "history.expire.min-snapshots-to-keep",
                        json_string("3"));
    CHECK(ice_commit(dir, &t, meta, &err) == 0);
    cf_ice_table_free(&t);
    {
        cf_schema *sc = things_schema();
        cf_batch *b = cf_batch_new(sc, NULL);
        cf_sink_config cfg = { .kind = "iceberg", .location = dir, .table_name = "things",
                               .mode = CF_MODE_APPEND, .codec = CF_CODEC_ZSTD };
        cf_sink *sk = cf_sink_open(&cfg, &err);
        cf_offsets off = { 0 };
        CHECK(sk != NULL);
        for (int64_t k = 1; sk && k < 20; k++)
            CHECK(commit_rows(sk, b, k * 6, k * 6 + 6, 0) == 0);
        CHECK(sk && cf_sink_offsets(sk, &off, &err) == 0);
        CHECK_EQ_INT(cf_offsets_get(&off, TOPIC, 0), 120);
        cf_offsets_free(&off);
        cf_sink_close(sk);
        cf_batch_free(b);
        cf_schema_free(sc);
    }
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 120);
        CHECK_EQ_INT(nfiles, 20);
        CHECK_EQ_INT(json_array_size(json_object_get(t.meta, "snapshots")), 3);
        CHECK_EQ_INT(json_array_size(json_object_get(t.meta, "snapshot-log")), 3);
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
}

/* A table whose uuid and wide decimal columns were declared `string` (as
 * before they had their own types) keeps taking them, as text. */
static void test_string_declared_columns_stay_strings(void)
{
    char dir[400];
    cf_schema *old = things_schema(), *now = things_schema();
    cf_batch *b;
    cf_sink_config cfg = { .kind = "iceberg", .table_name = "things", .mode = CF_MODE_APPEND,
                           .codec = CF_CODEC_ZSTD };
    cf_err err = { 0 };
    cf_sink *sk;
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0;
    cf_schema *s = NULL;
    count c;

    old->fields[1].type = (cf_type){ .id = CF_T_STRING };
    old->fields[2].type = (cf_type){ .id = CF_T_STRING };
    table_dir(dir, sizeof dir, "string_declared");
    cfg.location = dir;
    for (int round = 0; round < 2; round++) {
        b = cf_batch_new(round ? now : old, NULL);
        CHECK((sk = cf_sink_open(&cfg, &err)) != NULL);
        CHECK(sk && commit_rows(sk, b, round * 10, round * 10 + 10, 0) == 0);
        cf_sink_close(sk);
        cf_batch_free(b);
    }
    if (load(dir, &t, &files, &nfiles, &s, &c) == 0) {
        CHECK_EQ_INT(c.rows, 20);
        CHECK_EQ_INT(s->fields[1].type.id, CF_T_STRING);
        CHECK_EQ_INT(s->fields[2].type.id, CF_T_STRING);
        for (int i = 0; i < nfiles; i++) {
            const cf_ice_metric *m = metric(&files[i], 2);
            CHECK(m && m->lower_n == 36);          /* text bounds, as the column says */
        }
    }
    cf_ice_files_free(files, nfiles);
    cf_schema_free(s);
    cf_ice_table_free(&t);
    cf_schema_free(old);
    cf_schema_free(now);
}

static void test_cleanup(void)
{
    char cmd[400];
    if (keep || !root[0])
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

CF_TEST_MAIN("iceberg_types", T(test_types_and_metrics), T(test_time_and_truncate_partitions),
             T(test_uuid_partitions_upsert), T(test_expire_history_rules), T(test_sink_bounds_history),
             T(test_string_declared_columns_stay_strings), T(test_cleanup))
