/* test_delta_log.c - the Delta log side: actions replayed into a snapshot,
 * txn read-back as offsets, put-if-absent, schema and stats JSON. */
#include "cf_test.h"
#include "sink_util.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table/delta/delta_int.h"

static char *mktable(void)
{
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/cf_delta_test_XXXXXX");
    return mkdtemp(dir);
}

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static const char *V0 =
    "{\"commitInfo\":{\"timestamp\":1700000000000,\"operation\":\"WRITE\"}}\n"
    "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":4}}\n"
    "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
    "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}},"
    "{\\\"name\\\":\\\"c\\\",\\\"type\\\":\\\"string\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}}]}\","
    "\"partitionColumns\":[\"c\"],\"configuration\":{\"delta.enableChangeDataFeed\":\"true\",\"delta.checkpointInterval\":\"5\"},\"createdTime\":1}}\n"
    "{\"add\":{\"path\":\"c=a/f1.parquet\",\"partitionValues\":{\"c\":\"a\"},\"size\":10,\"modificationTime\":1,\"dataChange\":true,\"stats\":\"{\\\"numRecords\\\":7}\"}}\n"
    "{\"add\":{\"path\":\"c=__HIVE_DEFAULT_PARTITION__/f2.parquet\",\"partitionValues\":{\"c\":null},\"size\":20,\"modificationTime\":1,\"dataChange\":true}}\n"
    "{\"txn\":{\"appId\":\"app-orders-0\",\"version\":100,\"lastUpdated\":1}}\n";

static const char *V1 =
    "{\"commitInfo\":{\"timestamp\":1700000001000,\"operation\":\"MERGE\"}}\n"
    "{\"remove\":{\"path\":\"c=a/f1.parquet\",\"deletionTimestamp\":2,\"dataChange\":true}}\n"
    "{\"add\":{\"path\":\"c=a/f3.parquet\",\"partitionValues\":{\"c\":\"a\"},\"size\":30,\"modificationTime\":2,\"dataChange\":true}}\n"
    "{\"cdc\":{\"path\":\"_change_data/c=a/x.parquet\",\"partitionValues\":{\"c\":\"a\"},\"size\":5,\"dataChange\":false}}\n"
    "{\"txn\":{\"appId\":\"app-orders-0\",\"version\":150,\"lastUpdated\":2}}\n"
    "{\"txn\":{\"appId\":\"app-my-topic-with-dashes-3\",\"version\":7,\"lastUpdated\":2}}\n";

static void test_replay(void)
{
    cf_err e;
    cf_delta_snap *s = cf_delta_snap_new(NULL, "/nonexistent", &e);
    CHECK(s != NULL);
    CHECK_EQ_INT(cf_delta_snap_apply(s, V0, strlen(V0), 0, &e), 0);
    CHECK_EQ_INT(s->version, 0);
    CHECK_EQ_INT(s->min_writer, 4);
    CHECK(s->cdf_enabled);
    CHECK_EQ_INT(s->checkpoint_interval, 5);
    CHECK_EQ_INT(s->npart, 1);
    CHECK_EQ_INT(s->nlive, 2);
    CHECK_EQ_INT(s->schema->nfields, 2);
    CHECK_EQ_INT(s->schema->fields[0].type.id, CF_T_INT64);
    CHECK_EQ_INT(cf_delta_snap_txn(s, "app-orders-0"), 100);
    CHECK_EQ_INT(s->last_ts, 1700000000000LL);
    cf_delta_file *f = cf_delta_snap_file(s, "c=a/f1.parquet");
    CHECK(f && f->num_records == 7 && f->size == 10);
    f = cf_delta_snap_file(s, "c=__HIVE_DEFAULT_PARTITION__/f2.parquet");
    bool present = false;
    CHECK(f && cf_delta_pv_get(&f->pv, "c", &present) == NULL && present);

    CHECK_EQ_INT(cf_delta_snap_apply(s, V1, strlen(V1), 1, &e), 0);
    CHECK_EQ_INT(s->nlive, 2);
    CHECK(cf_delta_snap_file(s, "c=a/f1.parquet") == NULL);
    CHECK(cf_delta_snap_file(s, "c=a/f3.parquet") != NULL);
    CHECK_EQ_INT(cf_delta_snap_txn(s, "app-orders-0"), 150);
    CHECK_EQ_INT(cf_delta_snap_txn(s, "nobody"), -1);
    cf_delta_snap_free(s);
}

static void test_bad_lines(void)
{
    static const char *bad[] = {
        "{\"add\":{\"size\":1}}\n",                         /* no path */
        "{\"add\":[]}\n",                                   /* not an object */
        "[1,2]\n",                                          /* not an object */
        "{\"txn\":{\"appId\":\"a\"}}\n",                    /* no version */
        "{\"metaData\":{\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"a\\\",\\\"type\\\":{\\\"type\\\":\\\"array\\\"}}]}\"}}\n",
        "{\"protocol\":{\"minReaderVersion\":2,\"minWriterVersion\":5}}\n",   /* column mapping */
        "{\"add\":{\"path\":\"p\",\"deletionVector\":{\"storageType\":\"u\"}}}\n",
        "{\"add\":{\"path\":\"p\"}\n",                      /* truncated JSON */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cf_err e;
        cf_delta_snap *s = cf_delta_snap_new(NULL, "/x", &e);
        e.code = CF_OK;
        int rc = cf_delta_snap_apply(s, bad[i], strlen(bad[i]), 0, &e);
        if (rc != -1 || e.code == CF_OK)
            fprintf(stderr, "  bad line %zu accepted\n", i);
        CHECK_EQ_INT(rc, -1);
        cf_delta_snap_free(s);
    }
}

static void test_put_if_absent(void)
{
    char *dir = mktable();
    cf_err e;
    cf_buf b;

    CHECK(dir != NULL);
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, V0, strlen(V0), -1, &e), 0);
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, V1, strlen(V1), -1, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(e.retriable);
    cf_buf_init(&b, 0);
    CHECK_EQ_INT(cf_delta_log_read(test_store(), dir, 0, &b, &e), 0);
    CHECK(b.len == strlen(V0) && memcmp(b.data, V0, b.len) == 0);   /* not overwritten */
    cf_buf_free(&b);
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 1, V1, strlen(V1), -1, &e), 0);

    int64_t *v = NULL;
    size_t n = 0;
    CHECK_EQ_INT(cf_delta_log_versions(test_store(), dir, &v, &n, &e), 0);
    CHECK_EQ_INT(n, 2);   /* temp files are not versions */
    free(v);

    cf_delta_snap *s = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(s && s->version == 1 && s->nlive == 2);
    cf_delta_snap_free(s);
    s = cf_delta_snap_load(NULL, dir, 0, &e);   /* time travel */
    CHECK(s && s->version == 0 && cf_delta_snap_file(s, "c=a/f1.parquet"));
    cf_delta_snap_free(s);
    CHECK_EQ_INT(cf_delta_log_commit_ts(test_store(), dir, 1), 1700000001000LL);

    /* a gap in the log is corruption, not a shorter table */
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 3, V1, strlen(V1), -1, &e), 0);
    e.code = CF_OK;
    s = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(s == NULL);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    rmtree(dir);
}

static void test_offsets_readback(void)
{
    char *dir = mktable();
    cf_err e;
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "app" };
    cf_offsets o = { 0 };

    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, V0, strlen(V0), -1, &e), 0);
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 1, V1, strlen(V1), -1, &e), 0);
    cf_sink *s = cf_sink_open(&cfg, &e);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(cf_sink_offsets(s, &o, &e), 0);
        CHECK_EQ_INT(o.n, 2);
        bool saw_orders = false, saw_dash = false;
        for (int i = 0; i < o.n; i++) {
            if (!strcmp(o.v[i].topic, "orders") && o.v[i].partition == 0 && o.v[i].next_offset == 150)
                saw_orders = true;
            if (!strcmp(o.v[i].topic, "my-topic-with-dashes") && o.v[i].partition == 3 &&
                o.v[i].next_offset == 7)
                saw_dash = true;
        }
        CHECK(saw_orders);
        CHECK(saw_dash);
        cf_sink_close(s);
    }
    free(o.v);
    rmtree(dir);
}

static void test_schema_json(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type t;
    cf_type_parse("int64", &t, &e);
    cf_schema_add(s, "id", t, false, 0, &e);
    cf_type_parse("decimal(10,2)", &t, &e);
    cf_schema_add(s, "amount", t, true, 0, &e);
    cf_type_parse("timestamp_ntz", &t, &e);
    cf_schema_add(s, "ts", t, true, 0, &e);
    cf_type_parse("date", &t, &e);
    cf_schema_add(s, "d", t, true, 0, &e);
    cf_type_parse("int32", &t, &e);
    cf_schema_add(s, "n", t, true, 0, &e);
    char *js = cf_delta_schema_json(s, &e);
    CHECK(js != NULL);
    CHECK(js && strstr(js, "\"type\":\"decimal(10,2)\""));
    CHECK(js && strstr(js, "{\"name\":\"ts\",\"type\":\"timestamp_ntz\""));   /* zone-less */
    CHECK(js && strstr(js, "\"type\":\"integer\""));
    cf_schema *back = js ? cf_delta_schema_parse(js, &e) : NULL;
    CHECK(back && back->nfields == 5);
    if (back) {
        CHECK_EQ_INT(back->fields[1].type.id, CF_T_DECIMAL);
        CHECK_EQ_INT(back->fields[1].type.precision, 10);
        CHECK_EQ_INT(back->fields[2].type.id, CF_T_TIMESTAMP_NTZ);
        CHECK(back->fields[0].nullable == false);
    }
    free(js);
    cf_schema_free(back);
    cf_schema_free(s);
}

static void test_stats_json(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type ti = { CF_T_INT64 }, ts = { CF_T_TIMESTAMP }, st = { CF_T_STRING }, td = { CF_T_DATE };
    cf_type tn = { CF_T_TIMESTAMP_NTZ };
    cf_schema_add(s, "id", ti, true, 0, &e);
    cf_schema_add(s, "at", ts, true, 0, &e);
    cf_schema_add(s, "name", st, true, 0, &e);
    cf_schema_add(s, "day", td, true, 0, &e);
    cf_schema_add(s, "wall", tn, true, 0, &e);
    cf_pq_stats cols[5] = { 0 };
    cols[0] = (cf_pq_stats){ .null_count = 1, .has_minmax = true, .i_min = -5, .i_max = 42 };
    /* 2023-11-14T22:13:20.000123Z .. 2023-11-14T22:13:20.999001Z */
    cols[1] = (cf_pq_stats){ .has_minmax = true, .i_min = 1700000000000123LL, .i_max = 1700000000999001LL };
    char longs[40];
    memset(longs, 'z', sizeof longs);
    cols[2] = (cf_pq_stats){ .null_count = 3, .has_minmax = true, .s_min = "abc", .s_min_len = 3,
                             .s_max = longs, .s_max_len = sizeof longs };
    cols[3] = (cf_pq_stats){ .has_minmax = true, .i_min = 0, .i_max = 19675 };
    cols[4] = cols[1];
    cf_pq_file_info fi = { .num_rows = 10, .ncols = 5, .cols = cols };
    char *j = cf_delta_stats_json(s, &fi, &e);
    CHECK(j != NULL);
    if (j) {
        CHECK(strstr(j, "\"numRecords\":10") != NULL);
        CHECK(strstr(j, "\"id\":-5") != NULL);
        CHECK(strstr(j, "\"at\":\"2023-11-14T22:13:20.000Z\"") != NULL);
        CHECK(strstr(j, "\"at\":\"2023-11-14T22:13:21.000Z\"") != NULL);   /* max rounded up */
        CHECK(strstr(j, "\"name\":\"abc\"") != NULL);
        CHECK(strstr(j, "zzzz\"") == NULL);                                  /* long max left out */
        CHECK(strstr(j, "\"day\":\"1970-01-01\"") != NULL);
        CHECK(strstr(j, "\"day\":\"2023-11-14\"") != NULL);
        /* a zone-less value has no zone in its statistics, as Spark writes them */
        CHECK(strstr(j, "\"wall\":\"2023-11-14T22:13:20.000\"") != NULL);
        CHECK(strstr(j, "\"wall\":\"2023-11-14T22:13:21.000\"") != NULL);
        CHECK(strstr(j, "\"nullCount\":{\"id\":1,\"at\":0,\"name\":3,\"day\":0,\"wall\":0}") != NULL);
        CHECK_EQ_INT(cf_delta_stats_num_records(j), 10);
    }
    free(j);
    cf_schema_free(s);
}

static void test_partition_values(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type td = { CF_T_DATE }, ts = { CF_T_TIMESTAMP }, dec = { CF_T_DECIMAL, 10, 2 };
    cf_schema_add(s, "d", td, true, 0, &e);
    cf_schema_add(s, "t", ts, true, 0, &e);
    cf_schema_add(s, "m", dec, true, 0, &e);
    cf_batch *b = cf_batch_new(s, &e);
    cf_col_set_i64(&b->cols[0], 0, 19675, &e);
    cf_col_set_i64(&b->cols[1], 0, -1, &e);        /* one microsecond before the epoch */
    cf_col_set_i64(&b->cols[2], 0, -5, &e);        /* -0.05 */
    cf_batch_end_row(b, &e);
    cf_batch_end_row(b, &e);                       /* all null */
    const char *want[] = { "2023-11-14", "1969-12-31 23:59:59.999999", "-0.05" };
    for (int c = 0; c < 3; c++) {
        cf_buf o;
        bool isnull;
        cf_buf_init(&o, 0);
        CHECK_EQ_INT(cf_delta_pv_format(&b->cols[c], 0, &o, &isnull, &e), 0);
        CHECK(!isnull);
        CHECK_EQ_STR(cf_buf_cstr(&o, &e), want[c]);
        cf_buf_reset(&o);
        CHECK_EQ_INT(cf_delta_pv_format(&b->cols[c], 1, &o, &isnull, &e), 0);
        CHECK(isnull);
        cf_buf_free(&o);
    }
    cf_batch *r = cf_batch_new(s, &e);
    for (int c = 0; c < 3; c++)
        CHECK_EQ_INT(cf_delta_pv_parse(&r->cols[c], 0, want[c], &e), 0);
    cf_batch_end_row(r, &e);
    CHECK_EQ_INT(cf_col_i32(&r->cols[0], 0), 19675);
    CHECK_EQ_INT(cf_col_i64(&r->cols[1], 0), -1);
    CHECK_EQ_INT(cf_col_i64(&r->cols[2], 0), -5);
    CHECK_EQ_INT(cf_delta_pv_parse(&r->cols[0], 1, "not-a-date", &e), -1);
    cf_batch_free(r);
    cf_batch_free(b);
    cf_schema_free(s);

    cf_buf o;
    cf_buf_init(&o, 0);
    cf_delta_path_escape("a/b=c %", &o, &e);
    CHECK_EQ_STR(cf_buf_cstr(&o, &e), "a%2Fb%3Dc%20%25");
    cf_buf_reset(&o);
    cf_delta_path_encode("x=a%2Fb/part 1.parquet", &o, &e);
    CHECK_EQ_STR(cf_buf_cstr(&o, &e), "x=a%252Fb/part%201.parquet");
    char *d = cf_delta_path_decode((const char *)o.data);
    CHECK_EQ_STR(d, "x=a%2Fb/part 1.parquet");
    free(d);
    cf_buf_free(&o);
}

static void test_map(void)
{
    cf_delta_map *m = cf_delta_map_new();
    int64_t v;
    for (int64_t i = 0; i < 100000; i++)
        CHECK_EQ_INT(cf_delta_map_put(m, &i, sizeof i, i * 3), 0);
    CHECK_EQ_INT(cf_delta_map_count(m), 100000);
    for (int64_t i = 0; i < 100000; i += 2)
        CHECK_EQ_INT(cf_delta_map_del(m, &i, sizeof i), 1);
    CHECK_EQ_INT(cf_delta_map_count(m), 50000);
    int bad = 0;
    for (int64_t i = 0; i < 100000; i++) {
        int got = cf_delta_map_get(m, &i, sizeof i, &v);
        if (got != (i & 1) || (got && v != i * 3))
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (int64_t i = 0; i < 100000; i += 2)   /* reuse of deleted slots */
        cf_delta_map_put(m, &i, sizeof i, -i);
    CHECK(cf_delta_map_get(m, &(int64_t){ 4 }, sizeof(int64_t), &v) && v == -4);
    CHECK_EQ_INT(cf_delta_map_count(m), 100000);
    cf_delta_map_free(m);
}

/* Tables other writers made with features cdcflow does not honour are
 * refused for writing, with the reason. */
static void test_foreign_tables(void)
{
    static const struct { const char *protocol, *conf, *extra_field; bool upsert; const char *why; } cases[] = {
        { "{\"minReaderVersion\":3,\"minWriterVersion\":7,\"readerFeatures\":[],\"writerFeatures\":[\"rowTracking\"]}",
          "{}", "", false, "rowTracking" },
        { "{\"minReaderVersion\":1,\"minWriterVersion\":5}", "{}", "", false, "writer version 5" },
        { "{\"minReaderVersion\":1,\"minWriterVersion\":3}", "{\"delta.constraints.pos\":\"id > 0\"}", "",
          false, "CHECK constraint pos" },
        { "{\"minReaderVersion\":1,\"minWriterVersion\":2}", "{\"delta.appendOnly\":\"true\"}", "", true,
          "append-only" },
        { "{\"minReaderVersion\":1,\"minWriterVersion\":4}", "{}",
          ",{\\\"name\\\":\\\"g\\\",\\\"type\\\":\\\"long\\\",\\\"nullable\\\":true,"
          "\\\"metadata\\\":{\\\"delta.generationExpression\\\":\\\"id + 1\\\"}}", false, "generated" },
        { "{\"minReaderVersion\":1,\"minWriterVersion\":2}", "{\"delta.appendOnly\":\"true\"}", "", false, NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *dir = mktable(), log[2048];
        cf_err e;
        snprintf(log, sizeof log,
                 "{\"protocol\":%s}\n"
                 "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
                 "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\","
                 "\\\"type\\\":\\\"long\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}}%s]}\","
                 "\"partitionColumns\":[],\"configuration\":%s}}\n",
                 cases[i].protocol, cases[i].extra_field, cases[i].conf);
        CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, log, strlen(log), -1, &e), 0);
        cf_sink_config cfg = { .kind = "delta", .location = dir,
                               .mode = cases[i].upsert ? CF_MODE_UPSERT : CF_MODE_APPEND };
        e.code = CF_OK;
        cf_sink *k = cf_sink_open(&cfg, &e);
        if (cases[i].why) {
            CHECK(k == NULL);
            CHECK_EQ_INT(e.code, CF_E_UNSUPPORTED);
            if (!strstr(e.msg, cases[i].why))
                fprintf(stderr, "  case %zu: '%s' lacks '%s'\n", i, e.msg, cases[i].why);
            CHECK(strstr(e.msg, cases[i].why) != NULL);
        } else {
            CHECK(k != NULL);
        }
        cf_sink_close(k);
        rmtree(dir);
    }
}

/* Write `text` to dir/name as a plain file (what a crashed writer or
 * another tool may leave in the log). */
static void drop_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof path, "%s/_delta_log/%s", dir, name);
    CHECK((f = fopen(path, "w")) != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The log is read by listing _delta_log through the store: the dot-named
 * temp files of writers that died mid-put (commits, checkpoints,
 * _last_checkpoint) and other names are not versions, for every form of
 * a local location. */
static void test_listing_skips_temp_files(void)
{
    char *dir = mktable(), url[PATH_MAX];
    cf_err e;
    int64_t *v = NULL;
    size_t n = 0;

    CHECK(dir != NULL);
    CHECK(!cf_delta_log_exists(test_store(), dir));       /* an empty directory is no table */
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, V0, strlen(V0), -1, &e), 0);
    drop_file(dir, ".00000000000000000001.json.3f1e.tmp", "{\"garbage\":");
    drop_file(dir, ".00000000000000000000.checkpoint.77.parquet.tmp", "PAR1");
    drop_file(dir, "._last_checkpoint.9.tmp", "{\"version\":0}");
    drop_file(dir, "00000000000000000001.json.crc", "x");
    drop_file(dir, "00000000000000000001.crc", "x");
    for (int form = 0; form < 3; form++) {
        const char *root = dir;
        if (form)
            snprintf(url, sizeof url, form == 1 ? "file://%s" : "file:%s/", dir);
        if (form)
            root = url;
        CHECK(cf_delta_log_exists(test_store(), root));
        CHECK_EQ_INT(cf_delta_log_versions(test_store(), root, &v, &n, &e), 0);
        CHECK(n == 1 && v && v[0] == 0);
        free(v);
        CHECK_EQ_INT(cf_delta_log_last_checkpoint(test_store(), root, -1), -1);
        cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &e);
        CHECK(s && s->version == 0 && s->nlive == 2);
        cf_delta_snap_free(s);
    }
    /* only temp files: still no table */
    char other[PATH_MAX], cmd[PATH_MAX + 64];
    snprintf(other, sizeof other, "%s/empty", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/_delta_log'", other);
    CHECK_EQ_INT(system(cmd), 0);
    drop_file(other, ".00000000000000000000.json.1.tmp", "{}");
    CHECK(!cf_delta_log_exists(test_store(), other));
    cf_delta_snap *s = cf_delta_snap_load(NULL, other, -1, &e);
    CHECK(s && s->version == -1);
    cf_delta_snap_free(s);
    rmtree(dir);
}

/* Two writers with their own store handles race for one version: exactly
 * one commit lands, the other is a retriable conflict naming the version,
 * and the winner's file carries the commit time it was given. */
static void test_commit_conflict_through_store(void)
{
    char *dir = mktable();
    cf_err e1 = { 0 }, e2 = { 0 };
    cf_store *a = cf_store_open(dir, NULL, &e1), *b = cf_store_open(dir, NULL, &e2);
    cf_store_stat st;
    char path[PATH_MAX];
    cf_buf got;

    CHECK(a && b);
    if (!a || !b)
        return;
    CHECK_EQ_INT(cf_delta_log_put_at(a, dir, 0, V0, strlen(V0), 1700000000000LL, &e1), 0);
    CHECK_EQ_INT(cf_delta_log_put_at(b, dir, 0, V1, strlen(V1), 1700000001000LL, &e2), -1);
    CHECK_EQ_INT(e2.code, CF_E_CONFLICT);
    CHECK(e2.retriable);
    CHECK(strstr(e2.msg, "version 0") != NULL);
    cf_delta_commit_path(dir, 0, path, sizeof path);
    CHECK_EQ_INT(cf_store_head(b, path, &st, &e2), 0);
    CHECK_EQ_INT(st.mtime_ms, 1700000000000LL);
    CHECK_EQ_INT(cf_delta_log_commit_ts(b, dir, 0), 1700000000000LL);
    cf_buf_init(&got, 0);
    CHECK_EQ_INT(cf_delta_log_read(b, dir, 0, &got, &e2), 0);
    CHECK(got.len == strlen(V0) && !memcmp(got.data, V0, got.len));
    /* a missing version is "not found", which catch-up takes as the end */
    e2.code = CF_OK;
    CHECK_EQ_INT(cf_delta_log_read(b, dir, 1, &got, &e2), -1);
    CHECK_EQ_INT(e2.code, CF_E_NOTFOUND);
    cf_buf_free(&got);
    cf_store_close(a);
    cf_store_close(b);
    rmtree(dir);
}

/* Log paths join onto the root; absolute ones (other writers) stay. */
static void test_log_paths(void)
{
    char *p;

    CHECK_EQ_STR(p = cf_delta_path_full("s3://b/t", "c=a%20b/part-0.parquet"), "s3://b/t/c=a b/part-0.parquet");
    free(p);
    CHECK_EQ_STR(p = cf_delta_path_full("/d/t", "s3://other/x%2Fy.parquet"), "s3://other/x/y.parquet");
    free(p);
    CHECK_EQ_STR(p = cf_delta_path_full("/d/t", "file:/d/t/p.parquet"), "file:/d/t/p.parquet");
    free(p);
    CHECK_EQ_STR(p = cf_delta_path_full("/d/t", "/d/t/p.parquet"), "/d/t/p.parquet");
    free(p);
    /* a relative path whose first name has a ':' is encoded, so not a scheme */
    CHECK_EQ_STR(p = cf_delta_path_full("/d/t", "a%3Ab=1/p.parquet"), "/d/t/a:b=1/p.parquet");
    free(p);
    CHECK_EQ_STR(cf_delta_path_rel("s3://b/t", "s3://b/t/x/p.parquet"), "x/p.parquet");
    CHECK_EQ_STR(cf_delta_path_rel("file:///d/t/", "/d/t/p.parquet"), "p.parquet");
    CHECK_EQ_STR(cf_delta_path_rel("/d/t", "file:/d/t/p.parquet"), "p.parquet");
    CHECK(cf_delta_path_rel("/d/t", "/d/tt/p.parquet") == NULL);
    CHECK(cf_delta_path_rel("s3://b/t", "s3://b/other/p.parquet") == NULL);
}

CF_TEST_MAIN("delta_log", T(test_replay), T(test_bad_lines), T(test_put_if_absent),
             T(test_offsets_readback), T(test_schema_json), T(test_stats_json),
             T(test_partition_values), T(test_map), T(test_foreign_tables),
             T(test_listing_skips_temp_files), T(test_commit_conflict_through_store), T(test_log_paths))
