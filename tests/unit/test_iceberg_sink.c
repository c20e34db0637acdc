/* test_iceberg_sink.c - the Iceberg sink end to end through our own scan:
 * append, upsert (last event per key by LSN, deletes, restart rebuilds the
 * key index), offsets read back, schema evolution, partitions, time travel,
 * and a writer killed at random instants that resumes exactly once.
 *
 * With CF_ICEBERG_TEST_DIR set the tables are kept there (append/, upsert/,
 * partitioned/, evolve/, crash/) for tests/integration/test_iceberg.py,
 * which reads them with pyiceberg and DuckDB and recomputes the expected
 * rows from the same event formula (see make_event). */
#include "cf_test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "table/iceberg/iceberg_cmd.h"
#include "iceberg_util.h"
#include "table/iceberg/iceberg_int.h"
#include "table/table.h"
#include "sink_util.h"

#define NKEYS 50
#define TOPIC "postgres.public.customers"

static char root[256];
static bool keep;

static void setup_root(void)
{
    const char *d = getenv("CF_ICEBERG_TEST_DIR");
    if (root[0])
        return;
    if (d && *d) {
        snprintf(root, sizeof root, "%s", d);
        keep = true;
        char cmd[400];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", root);
        CHECK(system(cmd) == 0);
    } else {
        snprintf(root, sizeof root, "/tmp/cf_ice_sink_XXXXXX");
        CHECK(mkdtemp(root) != NULL);
    }
}

static void table_dir(char *out, size_t n, const char *name)
{
    char cmd[600];
    setup_root();
    snprintf(out, n, "%s/%s", root, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    CHECK(system(cmd) == 0);
}

static cf_schema *customers_schema(bool with_extra)
{
    cf_schema *s = cf_schema_new();
    const char *pk[] = { "customer_id" };
    cf_schema_add(s, "customer_id", (cf_type){ .id = CF_T_INT64 }, false, 0, NULL);
    cf_schema_add(s, "email", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "full_name", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "lifetime_value", (cf_type){ .id = CF_T_DOUBLE }, true, 0, NULL);
    cf_schema_add(s, "registration_date", (cf_type){ .id = CF_T_TIMESTAMP }, true, 0, NULL);
    cf_schema_add(s, "is_active", (cf_type){ .id = CF_T_BOOL }, true, 0, NULL);
    cf_schema_add(s, "total_orders", (cf_type){ .id = CF_T_INT32 }, true, 0, NULL);
    cf_schema_add(s, "_cdc_operation", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "_source_lsn", (cf_type){ .id = CF_T_INT64 }, true, 0, NULL);
    if (with_extra)
        cf_schema_add(s, "loyalty_tier", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_set_pk(s, pk, 1, NULL);
    return s;
}

/* Event i.  The integration test mirrors this formula in Python. */
static void make_event(cf_batch *b, int64_t i, bool extra)
{
    char buf[64];
    int64_t key = (i * 7919) % NKEYS;
    const char *op = i % 9 == 8 ? "DELETE" : i < NKEYS ? "INSERT" : "UPDATE";

    cf_col_set_i64(&b->cols[0], b->nrows, key, NULL);
    snprintf(buf, sizeof buf, "user%lld@example.com", (long long)key);
    cf_col_set_bytes(&b->cols[1], b->nrows, buf, strlen(buf), NULL);
    if (i % 13 == 0)
        cf_col_set_null(&b->cols[2], b->nrows, NULL);
    else {
        snprintf(buf, sizeof buf, "name %lld", (long long)i);
        cf_col_set_bytes(&b->cols[2], b->nrows, buf, strlen(buf), NULL);
    }
    cf_col_set_f64(&b->cols[3], b->nrows, (double)i * 0.25, NULL);
    cf_col_set_i64(&b->cols[4], b->nrows, 1700000000000000LL + i * 3600000000LL, NULL);
    cf_col_set_bool(&b->cols[5], b->nrows, i % 2 == 0, NULL);
    cf_col_set_i64(&b->cols[6], b->nrows, i % 5, NULL);
    cf_col_set_bytes(&b->cols[7], b->nrows, op, strlen(op), NULL);
    cf_col_set_i64(&b->cols[8], b->nrows, 1000 + i, NULL);
    if (extra) {
        snprintf(buf, sizeof buf, "tier%lld", (long long)(i % 3));
        cf_col_set_bytes(&b->cols[9], b->nrows, buf, strlen(buf), NULL);
    }
    cf_batch_end_row(b, NULL);
}

/* Events [from, to) in one batch; odd batches in reverse order so that the
 * last row of a key is not always its latest LSN. */
static void fill(cf_batch *b, int64_t from, int64_t to, bool extra)
{
    cf_batch_reset(b);
    if ((from / (to - from > 0 ? to - from : 1)) % 2)
        for (int64_t i = to - 1; i >= from; i--)
            make_event(b, i, extra);
    else
        for (int64_t i = from; i < to; i++)
            make_event(b, i, extra);
}

static cf_sink *open_sink(const char *dir, cf_mode mode, const char *const *parts, int nparts)
{
    cf_sink_config cfg = { .kind = "iceberg", .location = dir, .table_name = "customers",
                           .mode = mode, .partition_by = parts, .npartition_by = nparts,
                           .codec = CF_CODEC_ZSTD };
    cf_err err = { 0 };
    cf_sink *s = cf_sink_open(&cfg, &err);
    if (!s)
        fprintf(stderr, "  open %s: %s\n", dir, err.msg);
    return s;
}

static int commit_range(cf_sink *s, cf_batch *b, int64_t from, int64_t to, bool extra)
{
    cf_offsets off = { 0 };
    cf_err err = { 0 };
    int64_t v;
    int rc;
    fill(b, from, to, extra);
    cf_offsets_put(&off, TOPIC, 0, to, NULL);
    rc = commit_b(s, b, NULL, &off, &v, &err);
    if (rc)
        fprintf(stderr, "  commit [%lld,%lld): %s\n", (long long)from, (long long)to, err.msg);
    cf_offsets_free(&off);
    return rc;
}

/* ---- reading back ------------------------------------------------------ */

typedef struct seen {
    int64_t rows;
    int64_t lsn_by_key[NKEYS];    /* latest row's LSN per key, 0 if none */
    int     count_by_key[NKEYS];
    int64_t nulls_extra;
} seen;

static int collect_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    seen *sn = ctx;
    int kc = cf_schema_find(rows->schema, "customer_id");
    int lc = cf_schema_find(rows->schema, "_source_lsn");
    int xc = cf_schema_find(rows->schema, "loyalty_tier");
    for (size_t i = 0; i < rows->nrows; i++) {
        int64_t k = cf_col_i64(&rows->cols[kc], i);
        sn->rows++;
        if (k >= 0 && k < NKEYS) {
            sn->count_by_key[k]++;
            sn->lsn_by_key[k] = cf_col_i64(&rows->cols[lc], i);
        }
        if (xc >= 0 && !cf_col_valid(&rows->cols[xc], i))
            sn->nulls_extra++;
    }
    return 0;
}

static int scan_table(const char *dir, int64_t snapshot_id, seen *sn)
{
    cf_ice_table t;
    cf_err err = { 0 };
    cf_schema *s;
    int rc = -1;

    memset(sn, 0, sizeof *sn);
    if (ice_load(dir, &t, &err) || !t.meta) {
        fprintf(stderr, "  load %s: %s\n", dir, err.msg);
        cf_ice_table_free(&t);
        return -1;
    }
    if ((s = cf_ice_schema_from_json(t.meta, -1, &err))) {
        rc = cf_ice_scan(local_store(), cf_ice_snapshot(t.meta, snapshot_id), s, NULL, 0, collect_fn, sn, &err);
        if (rc)
            fprintf(stderr, "  scan: %s\n", err.msg);
        cf_schema_free(s);
    }
    cf_ice_table_free(&t);
    return rc;
}

/* Expected upsert state after events [0, n): key -> latest LSN, 0 if deleted/absent. */
static void expect_upsert(int64_t n, int64_t *lsn_by_key)
{
    memset(lsn_by_key, 0, sizeof(int64_t) * NKEYS);
    for (int64_t i = 0; i < n; i++) {
        int64_t key = (i * 7919) % NKEYS;
        lsn_by_key[key] = i % 9 == 8 ? 0 : 1000 + i;
    }
}

static void check_upsert_state(const char *dir, int64_t n)
{
    seen sn;
    int64_t want[NKEYS];
    int64_t live = 0;
    CHECK(scan_table(dir, -1, &sn) == 0);
    expect_upsert(n, want);
    for (int k = 0; k < NKEYS; k++) {
        if (want[k]) {
            live++;
            CHECK_EQ_INT(sn.count_by_key[k], 1);
            CHECK_EQ_INT(sn.lsn_by_key[k], want[k]);
        } else
            CHECK_EQ_INT(sn.count_by_key[k], 0);
    }
    CHECK_EQ_INT(sn.rows, live);
}

static int64_t table_offset(const char *dir, cf_mode mode)
{
    cf_sink *s = open_sink(dir, mode, NULL, 0);
    cf_offsets off = { 0 };
    cf_err err = { 0 };
    int64_t v = -1;
    if (!s)
        return -2;
    if (cf_sink_offsets(s, &off, &err) == 0)
        v = cf_offsets_get(&off, TOPIC, 0);
    cf_offsets_free(&off);
    cf_sink_close(s);
    return v;
}

/* ---- tests --------------------------------------------------------------- */

static void test_append(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s;
    seen sn;

    table_dir(dir, sizeof dir, "append");
    s = open_sink(dir, CF_MODE_APPEND, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 100, false) == 0);
    CHECK(commit_range(s, b, 100, 250, false) == 0);
    cf_sink_close(s);
    s = open_sink(dir, CF_MODE_APPEND, NULL, 0);
    CHECK(commit_range(s, b, 250, 300, false) == 0);
    /* A batch with nothing new and the same offsets commits nothing. */
    {
        cf_offsets off = { 0 };
        cf_err err = { 0 };
        int64_t v1 = 0, v2 = 0;
        cf_offsets_put(&off, TOPIC, 0, 300, NULL);
        cf_batch_reset(b);
        CHECK(commit_b(s, b, NULL, &off, &v1, &err) == 0);
        CHECK(commit_b(s, b, NULL, &off, &v2, &err) == 0);
        CHECK_EQ_INT(v1, v2);
        cf_offsets_free(&off);
    }
    cf_sink_close(s);
    CHECK(scan_table(dir, -1, &sn) == 0);
    CHECK_EQ_INT(sn.rows, 300);
    CHECK_EQ_INT(table_offset(dir, CF_MODE_APPEND), 300);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

static void test_upsert(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s;

    table_dir(dir, sizeof dir, "upsert");
    s = open_sink(dir, CF_MODE_UPSERT, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 120, false) == 0);
    check_upsert_state(dir, 120);
    CHECK(commit_range(s, b, 120, 240, false) == 0);
    check_upsert_state(dir, 240);
    cf_sink_close(s);
    /* Restart: the key index comes back from the table. */
    s = open_sink(dir, CF_MODE_UPSERT, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 240, 400, false) == 0);
    CHECK(commit_range(s, b, 400, 410, false) == 0);
    cf_sink_close(s);
    check_upsert_state(dir, 410);
    CHECK_EQ_INT(table_offset(dir, CF_MODE_UPSERT), 410);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

static void test_time_travel(void)
{
    char dir[400];
    cf_ice_table t;
    cf_err err = { 0 };
    seen sn;
    json_t *snaps;
    int64_t first;

    table_dir(dir, sizeof dir, "upsert");   /* rebuilt here so the test stands alone */
    {
        cf_schema *sc = customers_schema(false);
        cf_batch *b = cf_batch_new(sc, NULL);
        cf_sink *s = open_sink(dir, CF_MODE_UPSERT, NULL, 0);
        CHECK(s && commit_range(s, b, 0, 120, false) == 0);
        CHECK(s && commit_range(s, b, 120, 240, false) == 0);
        CHECK(s && commit_range(s, b, 240, 400, false) == 0);
        CHECK(s && commit_range(s, b, 400, 410, false) == 0);
        cf_sink_close(s);
        cf_batch_free(b);
        cf_schema_free(sc);
    }
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    if (!t.meta)
        return;
    snaps = json_object_get(t.meta, "snapshots");
    CHECK_EQ_INT(json_array_size(snaps), 4);
    first = json_integer_value(json_object_get(json_array_get(snaps, 0), "snapshot-id"));
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(json_array_get(snaps, 0), "summary"),
                                                   "cdcflow.offsets." TOPIC ".0")), "120");
    CHECK(scan_table(dir, first, &sn) == 0);
    {
        int64_t want[NKEYS], live = 0;
        expect_upsert(120, want);
        for (int k = 0; k < NKEYS; k++)
            live += want[k] != 0;
        CHECK_EQ_INT(sn.rows, live);
    }
    cf_ice_table_free(&t);
}

static void test_partitioned(void)
{
    char dir[400];
    const char *parts[] = { "day(registration_date)", "bucket(4, customer_id)" };
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s;
    seen sn;
    cf_ice_file *files = NULL;
    int nfiles = 0;
    cf_ice_table t;
    cf_err err = { 0 };

    table_dir(dir, sizeof dir, "partitioned");
    s = open_sink(dir, CF_MODE_UPSERT, parts, 2);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 100, false) == 0);
    CHECK(commit_range(s, b, 100, 200, false) == 0);
    cf_sink_close(s);
    check_upsert_state(dir, 200);
    CHECK(scan_table(dir, -1, &sn) == 0);
    CHECK(ice_load(dir, &t, &err) == 0);
    CHECK(cf_ice_snapshot_files(local_store(), cf_ice_snapshot(t.meta, -1), &files, &nfiles, &err) == 0);
    /* 200 hourly events span 9 days; 4 buckets: many partitions. */
    CHECK(nfiles > 9);
    for (int i = 0; i < nfiles; i++)
        if (files[i].content == 0) {
            CHECK_EQ_INT(files[i].npart, 2);
            CHECK(files[i].part[1].i >= 0 && files[i].part[1].i < 4);
            CHECK(strstr(files[i].path, "registration_date_day=2023-11-") != NULL);
        }
    cf_ice_files_free(files, nfiles);
    cf_ice_table_free(&t);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

static void test_schema_evolution(void)
{
    char dir[400];
    cf_schema *s1 = customers_schema(false), *s2 = customers_schema(true);
    cf_batch *b1 = cf_batch_new(s1, NULL), *b2 = cf_batch_new(s2, NULL);
    cf_sink *s;
    seen sn;
    cf_ice_table t;
    cf_err err = { 0 };

    table_dir(dir, sizeof dir, "evolve");
    s = open_sink(dir, CF_MODE_APPEND, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b1, 0, 40, false) == 0);
    CHECK(commit_range(s, b2, 40, 100, true) == 0);
    cf_sink_close(s);
    CHECK(scan_table(dir, -1, &sn) == 0);
    CHECK_EQ_INT(sn.rows, 100);
    CHECK_EQ_INT(sn.nulls_extra, 40);
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    if (t.meta) {
        cf_schema *cur = cf_ice_schema_from_json(t.meta, -1, &err);
        CHECK_EQ_INT(json_array_size(json_object_get(t.meta, "schemas")), 2);
        CHECK(cur && cur->nfields == 10 && cur->fields[9].field_id == 10);
        CHECK_EQ_INT(json_integer_value(json_object_get(t.meta, "last-column-id")), 10);
        cf_schema_free(cur);
    }
    cf_ice_table_free(&t);
out:
    cf_batch_free(b1);
    cf_batch_free(b2);
    cf_schema_free(s1);
    cf_schema_free(s2);
}

/* A writer that commits batch after batch, resuming from the table's
 * offsets, killed at a random instant; repeated, then finished. */
static void crash_writer(const char *dir, cf_mode mode, int64_t total, int64_t step)
{
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s = open_sink(dir, mode, NULL, 0);
    cf_offsets off = { 0 };
    cf_err err = { 0 };
    int64_t next;

    if (!s || cf_sink_offsets(s, &off, &err))
        _exit(2);
    next = cf_offsets_get(&off, TOPIC, 0);
    if (next < 0)
        next = 0;
    while (next < total) {
        int64_t to = next + step < total ? next + step : total;
        if (commit_range(s, b, next, to, false))
            _exit(3);
        next = to;
    }
    cf_sink_close(s);
    _exit(0);
}

static void crash_and_resume(const char *name, cf_mode mode)
{
    char dir[400];
    const int64_t total = 600, step = 7;
    int kills = 0, finished = 0;

    table_dir(dir, sizeof dir, name);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int round = 0; round < 40 && !finished; round++) {
        int st;
        pid_t pid = fork();
        if (pid == 0)
            crash_writer(dir, mode, total, step);
        usleep((useconds_t)(rand() % 40000));
        if (round < 12) {
            kill(pid, SIGKILL);
            kills++;
        }
        waitpid(pid, &st, 0);
        if (WIFEXITED(st)) {
            CHECK_EQ_INT(WEXITSTATUS(st), 0);
            finished = WEXITSTATUS(st) == 0;
        }
    }
    CHECK(finished);
    CHECK(kills > 0);
    CHECK_EQ_INT(table_offset(dir, mode), total);
    if (mode == CF_MODE_UPSERT)
        check_upsert_state(dir, total);
    else {
        seen sn;
        CHECK(scan_table(dir, -1, &sn) == 0);
        CHECK_EQ_INT(sn.rows, total);
        /* every key appears exactly as often as the events say */
        for (int k = 0; k < NKEYS; k++)
            CHECK_EQ_INT(sn.count_by_key[k], total / NKEYS);
    }
}

static void test_crash_append(void) { crash_and_resume("crash", CF_MODE_APPEND); }
static void test_crash_upsert(void) { crash_and_resume("crash_upsert", CF_MODE_UPSERT); }

/* Two writers, one per Kafka partition (keys split by parity), commit at
 * the same time: every commit lands (retrying after lost races), and the
 * current snapshot holds both partitions' offsets. */
static void concurrent_writer(const char *dir, cf_mode mode, int part, int64_t total)
{
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL), *all = cf_batch_new(sc, NULL);
    cf_sink *s = open_sink(dir, mode, NULL, 0);
    cf_err err = { 0 };

    if (!s)
        _exit(2);
    for (int64_t from = 0; from < total; from += 10) {
        cf_offsets off = { 0 };
        int64_t v;
        fill(all, from, from + 10, false);
        cf_batch_reset(b);
        for (size_t r = 0; r < all->nrows; r++)
            if (cf_col_i64(&all->cols[0], r) % 2 == part)
                cf_batch_copy_row(b, all, r, NULL);
        cf_offsets_put(&off, TOPIC, part, from + 10, NULL);
        if (commit_b(s, b, NULL, &off, &v, &err)) {
            fprintf(stderr, "  writer %d: %s\n", part, err.msg);
            _exit(3);
        }
        cf_offsets_free(&off);
    }
    cf_sink_close(s);
    _exit(0);
}

static void concurrent(const char *name, cf_mode mode)
{
    char dir[400];
    const int64_t total = 300;
    pid_t pid[2];
    cf_sink *s;
    cf_offsets off = { 0 };
    cf_err err = { 0 };

    table_dir(dir, sizeof dir, name);
    for (int p = 0; p < 2; p++)
        if ((pid[p] = fork()) == 0)
            concurrent_writer(dir, mode, p, total);
    for (int p = 0; p < 2; p++) {
        int st;
        waitpid(pid[p], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    s = open_sink(dir, mode, NULL, 0);
    CHECK(s && cf_sink_offsets(s, &off, &err) == 0);
    CHECK_EQ_INT(cf_offsets_get(&off, TOPIC, 0), total);
    CHECK_EQ_INT(cf_offsets_get(&off, TOPIC, 1), total);
    cf_offsets_free(&off);
    cf_sink_close(s);
    if (mode == CF_MODE_UPSERT)
        check_upsert_state(dir, total);
    else {
        seen sn;
        CHECK(scan_table(dir, -1, &sn) == 0);
        CHECK_EQ_INT(sn.rows, total);
    }
}

static void test_concurrent_append(void) { concurrent("concurrent", CF_MODE_APPEND); }
static void test_concurrent_upsert(void) { concurrent("concurrent_upsert", CF_MODE_UPSERT); }

/* Soft deletes keep the deleted key's last row, marked DELETE. */
static void test_soft_deletes(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink_config cfg = { .kind = "iceberg", .location = dir, .mode = CF_MODE_UPSERT,
                           .soft_deletes = true, .codec = CF_CODEC_ZSTD };
    cf_err err = { 0 };
    cf_sink *s;
    seen sn;
    int64_t want[NKEYS];

    table_dir(dir, sizeof dir, "soft");
    s = cf_sink_open(&cfg, &err);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 100, false) == 0);
    CHECK(commit_range(s, b, 100, 200, false) == 0);
    cf_sink_close(s);
    CHECK(scan_table(dir, -1, &sn) == 0);
    /* Every key is present once, with its latest event, deletes included. */
    for (int64_t i = 0; i < 200; i++)
        want[(i * 7919) % NKEYS] = 1000 + i;
    CHECK_EQ_INT(sn.rows, NKEYS);
    for (int k = 0; k < NKEYS; k++) {
        CHECK_EQ_INT(sn.count_by_key[k], 1);
        CHECK_EQ_INT(sn.lsn_by_key[k], want[k]);
    }
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

/* Many small commits: past 100 manifests of a kind the sink folds them into
 * one, so the manifest list stays short and the rows stay right. */
static void test_manifest_merge(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s;
    cf_ice_table t;
    cf_ice_mlist ml = { 0 };
    cf_err err = { 0 };
    const int64_t total = 390;

    table_dir(dir, sizeof dir, "many_commits");
    s = open_sink(dir, CF_MODE_UPSERT, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    for (int64_t from = 0; from < total; from += 3)
        if (commit_range(s, b, from, from + 3, false)) {
            CHECK(0);
            break;
        }
    cf_sink_close(s);
    check_upsert_state(dir, total);
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    if (t.meta) {
        json_t *snap = cf_ice_snapshot(t.meta, -1);
        CHECK_EQ_INT(json_array_size(json_object_get(t.meta, "snapshots")), total / 3);
        CHECK(cf_ice_read_mlist(local_store(), json_string_value(json_object_get(snap, "manifest-list")), &ml, &err) == 0);
        CHECK(ml.n > 0 && ml.n < 100);
        cf_ice_mlist_free(&ml);
    }
    cf_ice_table_free(&t);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

/* An int column written into a long field (promotion) keeps 8-byte bounds;
 * a long string keeps a cut lower bound and no upper bound. */
static void test_promotion_and_long_bounds(void)
{
    char dir[400], big[200];
    cf_schema *s1 = cf_schema_new(), *s2 = cf_schema_new();
    cf_batch *b1, *b2;
    cf_sink *s;
    cf_offsets off = { 0 };
    cf_err err = { 0 };
    int64_t v;
    cf_ice_table t;
    cf_ice_file *files = NULL;
    int nfiles = 0;

    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cf_schema_add(s1, "n", (cf_type){ .id = CF_T_INT64 }, true, 0, NULL);
    cf_schema_add(s1, "txt", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s2, "n", (cf_type){ .id = CF_T_INT32 }, true, 0, NULL);
    cf_schema_add(s2, "txt", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    b1 = cf_batch_new(s1, NULL);
    b2 = cf_batch_new(s2, NULL);
    table_dir(dir, sizeof dir, "promote");
    s = open_sink(dir, CF_MODE_APPEND, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    cf_col_set_i64(&b1->cols[0], 0, 5000000000LL, NULL);
    cf_col_set_bytes(&b1->cols[1], 0, "a", 1, NULL);
    cf_batch_end_row(b1, NULL);
    cf_offsets_put(&off, TOPIC, 0, 1, NULL);
    CHECK(commit_b(s, b1, NULL, &off, &v, &err) == 0);
    cf_col_set_i64(&b2->cols[0], 0, 7, NULL);
    cf_col_set_bytes(&b2->cols[1], 0, big, strlen(big), NULL);
    cf_batch_end_row(b2, NULL);
    cf_offsets_put(&off, TOPIC, 0, 2, NULL);
    CHECK(commit_b(s, b2, NULL, &off, &v, &err) == 0);
    cf_sink_close(s);
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    CHECK(t.meta && cf_ice_snapshot_files(local_store(), cf_ice_snapshot(t.meta, -1), &files, &nfiles, &err) == 0);
    CHECK_EQ_INT(nfiles, 2);
    for (int i = 0; i < nfiles; i++) {
        CHECK_EQ_INT(files[i].nmetrics, 2);
        if (files[i].nmetrics != 2)
            continue;
        CHECK_EQ_INT(files[i].metrics[0].lower_n, 8);
        if (files[i].records == 1 && files[i].metrics[1].lower_n > 1) {
            CHECK_EQ_INT(files[i].metrics[1].lower_n, 64);
            CHECK(files[i].metrics[1].upper == NULL);
        }
    }
    cf_ice_files_free(files, nfiles);
    cf_ice_table_free(&t);
out:
    cf_offsets_free(&off);
    cf_batch_free(b1);
    cf_batch_free(b2);
    cf_schema_free(s1);
    cf_schema_free(s2);
}

/* optimize rewrites the files a running upsert sink's index points into:
 * the sink notices on its next commit, rebuilds the index and re-plans. */
static void test_optimize_under_running_sink(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink *s;
    char *argv[] = { "optimize", dir, NULL };

    table_dir(dir, sizeof dir, "optimize_live");
    s = open_sink(dir, CF_MODE_UPSERT, NULL, 0);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 100, false) == 0);
    CHECK(commit_range(s, b, 100, 150, false) == 0);
    fflush(stdout);
    CHECK_EQ_INT(cf_iceberg_cmd_optimize(2, argv), 0);
    CHECK(commit_range(s, b, 150, 260, false) == 0);
    CHECK(commit_range(s, b, 260, 300, false) == 0);
    cf_sink_close(s);
    check_upsert_state(dir, 300);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

/* target_file_bytes cuts a batch into several files; the key index must
 * point at the right file and position in each. */
static void test_target_file_size(void)
{
    char dir[400];
    cf_schema *sc = customers_schema(false);
    cf_batch *b = cf_batch_new(sc, NULL);
    cf_sink_config cfg = { .kind = "iceberg", .location = dir, .mode = CF_MODE_UPSERT,
                           .codec = CF_CODEC_ZSTD, .target_file_bytes = 1500 };
    cf_err err = { 0 };
    cf_sink *s;
    cf_ice_table t;
    cf_ice_file *files = NULL;
    int nfiles = 0, ndata = 0;

    table_dir(dir, sizeof dir, "small_files");
    s = cf_sink_open(&cfg, &err);
    CHECK(s != NULL);
    if (!s)
        goto out;
    CHECK(commit_range(s, b, 0, 100, false) == 0);
    CHECK(commit_range(s, b, 100, 250, false) == 0);
    cf_sink_close(s);
    check_upsert_state(dir, 250);
    CHECK(ice_load(dir, &t, &err) == 0 && t.meta);
    CHECK(t.meta && cf_ice_snapshot_files(local_store(), cf_ice_snapshot(t.meta, -1), &files, &nfiles, &err) == 0);
    for (int i = 0; i < nfiles; i++)
        ndata += files[i].content == 0;
    CHECK(ndata >= 4);
    cf_ice_files_free(files, nfiles);
    cf_ice_table_free(&t);
out:
    cf_batch_free(b);
    cf_schema_free(sc);
}

static void test_cleanup(void)
{
    char cmd[400];
    if (keep)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

CF_TEST_MAIN("iceberg_sink", T(test_append), T(test_upsert), T(test_partitioned),
             T(test_schema_evolution), T(test_crash_append), T(test_crash_upsert),
             T(test_time_travel), T(test_concurrent_append), T(test_concurrent_upsert),
             T(test_soft_deletes), T(test_manifest_merge),
             T(test_promotion_and_long_bounds), T(test_optimize_under_running_sink),
             T(test_target_file_size), T(test_cleanup))
