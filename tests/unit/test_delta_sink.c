/* test_delta_sink.c - the Delta sink end to end on a temp table: commits
 * with offsets, upsert by key with change data, concurrent writers
 * (put-if-absent retry, txn ownership), schema evolution and its limits. */
#include "cf_test.h"
#include "sink_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table/delta/delta_int.h"
#include "util/id.h"
#include "table/table_int.h"      /* stage and publish apart, to lose a race on purpose */

static char *mktable(void)
{
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/cf_delta_sink_XXXXXX");
    return mkdtemp(dir);
}

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}


static cf_offsets at(const char *topic, int32_t part, int64_t next)
{
    cf_offsets o = { 0 };
    cf_delta_offsets_put(&o, topic, part, next, NULL);
    return o;
}

/* name of id in the table, or NULL; count of rows in *n */
static char *lookup(const char *root, int64_t id, size_t *n)
{
    cf_err e;
    cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &e);
    char *found = NULL;
    *n = 0;
    if (!s)
        return NULL;
    cf_batch *b = cf_batch_new(s->schema, &e);
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].live)
            cf_delta_read_file(test_store(), root, s->files[i].path, &s->files[i].pv, &s->files[i].dv, s->schema, b, &e);
    *n = b->nrows;
    for (size_t r = 0; r < b->nrows; r++)
        if (cf_col_i64(&b->cols[0], r) == id) {
            size_t len;
            const uint8_t *p = cf_col_bytes(&b->cols[1], r, &len);
            free(found);
            found = strndup((const char *)p, len);
        }
    cf_batch_free(b);
    cf_delta_snap_free(s);
    return found;
}

static void test_append_offsets_and_replay_guard(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "t" };
    cf_sink *k = cf_sink_open(&cfg, &e);
    cf_batch *b = cf_batch_new(s, &e);
    int64_t v = -2;

    kv_row(b, 1, "a", "INSERT", 10);
    kv_row(b, 2, "b", "INSERT", 11);
    cf_offsets o = at("topic-x", 2, 2);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 0);
    cf_sink_close(k);

    /* reopen: offsets come back from the txn action */
    k = cf_sink_open(&cfg, &e);
    cf_offsets back = { 0 };
    CHECK_EQ_INT(cf_sink_offsets(k, &back, &e), 0);
    CHECK_EQ_INT(cf_offsets_get(&back, "topic-x", 2), 2);
    /* the same batch again (it starts at 0, the table is at 2): fenced,
     * nothing written twice */
    e.code = CF_OK;
    cf_offsets o0 = at("topic-x", 2, 0);
    CHECK_EQ_INT(commit_b(k, b, &o0, &o, &v, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_FENCED);
    free(o0.v);
    size_t n;
    free(lookup(dir, 1, &n));
    CHECK_EQ_INT(n, 2);
    /* an empty batch that moves offsets (tombstones only) still commits them */
    cf_batch_reset(b);
    cf_offsets o2 = at("topic-x", 2, 5);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o2, &v, &e), 0);
    CHECK_EQ_INT(v, 1);
    cf_sink_close(k);
    free(back.v);
    free(o.v);
    free(o2.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_upsert_and_change_data(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .mode = CF_MODE_UPSERT };
    cf_sink *k = cf_sink_open(&cfg, &e);
    cf_batch *b = cf_batch_new(s, &e);
    int64_t v;
    size_t n;

    for (int i = 1; i <= 5; i++)
        kv_row(b, i, "v0", "INSERT", i);
    cf_offsets o = at("t", 0, 5);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_batch_reset(b);
    kv_row(b, 2, "v1", "UPDATE", 20);
    kv_row(b, 3, "gone", "DELETE", 21);
    kv_row(b, 2, "stale", "UPDATE", 19);       /* lower LSN: loses to v1 */
    kv_row(b, 6, "new", "INSERT", 22);
    free(o.v);
    o = at("t", 0, 9);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 1);
    char *name = lookup(dir, 2, &n);
    CHECK_EQ_STR(name, "v1");
    free(name);
    CHECK_EQ_INT(n, 5);                     /* 5 - 1 deleted + 1 new */
    name = lookup(dir, 3, &n);
    CHECK(name == NULL);
    free(name);

    /* version 1 has cdc actions: update pre/post for 2, delete 3, insert 6 */
    cf_buf lg;
    cf_buf_init(&lg, 0);
    CHECK_EQ_INT(cf_delta_log_read(test_store(), dir, 1, &lg, &e), 0);
    const char *t = cf_buf_cstr(&lg, &e);
    CHECK(t && strstr(t, "{\"cdc\":{\"path\":\"_change_data/cdc-00000-") != NULL);
    CHECK(t && strstr(t, "{\"remove\":") != NULL);
    CHECK(t && strstr(t, "\"numTargetRowsUpdated\":\"1\"") && strstr(t, "\"numTargetRowsDeleted\":\"1\"") &&
          strstr(t, "\"numTargetRowsInserted\":\"1\""));
    cf_buf_free(&lg);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    cf_schema *cs = cf_schema_clone(sn->schema);
    cf_type tstr = { CF_T_STRING };
    cf_schema_add(cs, "_change_type", tstr, true, 0, &e);
    cf_batch *cb = cf_batch_new(cs, &e);
    /* find the cdc file path in the log and read it */
    cf_buf_init(&lg, 0);
    cf_delta_log_read(test_store(), dir, 1, &lg, &e);
    char *p = strstr(cf_buf_cstr(&lg, &e), "\"cdc\":{\"path\":\"");
    char path[512] = "";
    if (p) {
        p += strlen("\"cdc\":{\"path\":\"");
        snprintf(path, sizeof path, "%.*s", (int)(strchr(p, '"') - p), p);
    }
    cf_delta_pv nopv = { 0 };
    CHECK_EQ_INT(cf_delta_read_file(test_store(), dir, path, &nopv, NULL, cs, cb, &e), 0);
    int pre = 0, post = 0, del = 0, ins = 0;
    for (size_t r = 0; r < cb->nrows; r++) {
        size_t len;
        const char *ct = (const char *)cf_col_bytes(&cb->cols[cs->nfields - 1], r, &len);
        int64_t id = cf_col_i64(&cb->cols[0], r);
        if (len == 15 && !memcmp(ct, "update_preimage", 15) && id == 2) pre++;
        if (len == 16 && !memcmp(ct, "update_postimage", 16) && id == 2) post++;
        if (len == 6 && !memcmp(ct, "delete", 6) && id == 3) del++;
        if (len == 6 && !memcmp(ct, "insert", 6) && id == 6) ins++;
    }
    CHECK_EQ_INT(cb->nrows, 4);
    CHECK(pre == 1 && post == 1 && del == 1 && ins == 1);
    cf_buf_free(&lg);
    cf_batch_free(cb);
    cf_schema_free(cs);
    cf_delta_snap_free(sn);

    /* a new process rebuilds the key index from the files */
    cf_sink_close(k);
    k = cf_sink_open(&cfg, &e);
    cf_batch_reset(b);
    kv_row(b, 6, "v2", "UPDATE", 30);
    free(o.v);
    o = at("t", 0, 10);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    name = lookup(dir, 6, &n);
    CHECK_EQ_STR(name, "v2");
    free(name);
    CHECK_EQ_INT(n, 5);
    cf_sink_close(k);
    free(o.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_concurrent_writers(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "w" };
    cf_batch *b = cf_batch_new(s, &e);
    int64_t v;

    cf_sink *a = cf_sink_open(&cfg, &e);
    kv_row(b, 1, "a", "INSERT", 1);
    cf_offsets oa = at("t", 0, 1), ob = at("t", 1, 1);
    CHECK_EQ_INT(commit_b(a, b, NULL, &oa, &v, &e), 0);   /* creates the table */
    cf_sink *bb = cf_sink_open(&cfg, &e);                   /* both at version 0 now */
    free(oa.v);
    oa = at("t", 0, 2);
    CHECK_EQ_INT(commit_b(a, b, NULL, &oa, &v, &e), 0);
    CHECK_EQ_INT(v, 1);
    /* b's next version (1) is taken: it sees a commit of another partition
     * and retries as 2 */
    CHECK_EQ_INT(commit_b(bb, b, NULL, &ob, &v, &e), 0);
    CHECK_EQ_INT(v, 2);
    /* b now commits offsets of partition 0, which a owns and moved past */
    cf_offsets stale = at("t", 0, 2), from = at("t", 0, 1);
    e.code = CF_OK;
    CHECK_EQ_INT(commit_b(bb, b, &from, &stale, &v, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_FENCED);
    free(from.v);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->version == 2 && sn->nlive == 3);
    cf_delta_snap_free(sn);
    cf_sink_close(a);
    cf_sink_close(bb);
    free(oa.v);
    free(ob.v);
    free(stale.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_schema_evolution(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s1 = kv_schema(false), *s2 = kv_schema(true);
    cf_sink_config cfg = { .kind = "delta", .location = dir };
    cf_sink *k = cf_sink_open(&cfg, &e);
    cf_batch *b1 = cf_batch_new(s1, &e), *b2 = cf_batch_new(s2, &e);
    int64_t v;

    kv_row(b1, 1, "a", "INSERT", 1);
    cf_offsets o = at("t", 0, 1);
    CHECK_EQ_INT(commit_b(k, b1, NULL, &o, &v, &e), 0);
    kv_row(b2, 2, "b", "INSERT", 2);
    cf_col_set_bytes(&b2->cols[4], 0, "gold", 4, &e);
    free(o.v);
    o = at("t", 0, 2);
    CHECK_EQ_INT(commit_b(k, b2, NULL, &o, &v, &e), 0);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->schema->nfields == 5 && cf_schema_find(sn->schema, "tier") == 4);
    cf_delta_snap_free(sn);
    /* the old schema again: a dropped column is refused */
    free(o.v);
    o = at("t", 0, 3);
    e.code = CF_OK;
    CHECK_EQ_INT(commit_b(k, b1, NULL, &o, &v, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_UNSUPPORTED);
    CHECK(strstr(e.msg, "'tier'") != NULL);
    cf_sink_close(k);
    free(o.v);
    cf_batch_free(b1);
    cf_batch_free(b2);
    cf_schema_free(s1);
    cf_schema_free(s2);
    rmtree(dir);
}

/* The key-value table with a zone-less timestamp column `at` (and with
 * `later`, a second one). */
static cf_schema *ntz_schema(bool later)
{
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_type tn = { CF_T_TIMESTAMP_NTZ };
    cf_schema_add(s, "at", tn, true, 0, &e);
    if (later)
        cf_schema_add(s, "later", tn, true, 0, &e);
    return s;
}

static bool lists(const cf_delta_snap *sn, const char *which, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(sn->protocol, which), i, f)
        if (!strcmp(json_string_value(f), name))
            return true;
    return false;
}

/* One commit of rows id..id+n-1 of ntz_schema(later) at `at` us. */
static int commit_ntz(cf_sink *k, bool later, int64_t id, int64_t at_us, int64_t next)
{
    cf_err e;
    cf_schema *s = ntz_schema(later);
    cf_batch *b = cf_batch_new(s, &e);
    cf_offsets o = at("t", 0, next);
    int64_t v;
    size_t r = b->nrows;
    cf_col_set_i64(&b->cols[4], r, at_us, &e);
    if (later)
        cf_col_set_i64(&b->cols[5], r, at_us + 1, &e);
    kv_row(b, id, "x", "INSERT", id);
    int rc = commit_b(k, b, NULL, &o, &v, &e);
    if (rc)
        fprintf(stderr, "  commit: %s\n", e.msg);
    free(o.v);
    cf_batch_free(b);
    cf_schema_free(s);
    return rc;
}

/* PostgreSQL `timestamp` (no zone) lands in a new Delta table as
 * timestamp_ntz with the timestampNtz feature, its statistics without a
 * zone; --delta-timestamp utc keeps plain timestamps; an older table's
 * `timestamp` column keeps its type, and a zone-less column added to that
 * table upgrades its protocol to 3/7 with the feature beside CDF. */
static void test_timestamp_ntz(void)
{
    cf_err e;
    const int64_t t0 = 1735689799000000LL;         /* 2025-01-01 00:03:19 */
    char *dir = mktable();
    cf_sink_config cfg = { .kind = "delta", .location = dir };
    cf_sink *k = cf_sink_open(&cfg, &e);
    CHECK_EQ_INT(commit_ntz(k, false, 1, t0, 1), 0);
    cf_sink_close(k);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->schema->fields[4].type.id == CF_T_TIMESTAMP_NTZ);
    CHECK(sn && sn->min_reader == 3 && sn->min_writer == 7);
    CHECK(sn && lists(sn, "readerFeatures", "timestampNtz") && lists(sn, "writerFeatures", "timestampNtz"));
    CHECK(sn && lists(sn, "writerFeatures", "changeDataFeed"));
    CHECK(sn && sn->nfiles == 1 && sn->files[0].stats &&
          strstr(sn->files[0].stats, "\"at\":\"2025-01-01T00:03:19.000\"") != NULL);
    cf_delta_snap_free(sn);
    rmtree(dir);

    dir = mktable();
    cfg.location = dir;
    cfg.delta_timestamp_utc = true;
    k = cf_sink_open(&cfg, &e);
    CHECK_EQ_INT(commit_ntz(k, false, 1, t0, 1), 0);
    cf_sink_close(k);
    cfg.delta_timestamp_utc = false;                /* the default again, on the older table */
    k = cf_sink_open(&cfg, &e);
    CHECK_EQ_INT(commit_ntz(k, false, 2, t0, 2), 0);
    sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->schema->fields[4].type.id == CF_T_TIMESTAMP);
    CHECK(sn && sn->min_reader == 1 && sn->min_writer == 4);
    cf_delta_snap_free(sn);
    CHECK_EQ_INT(commit_ntz(k, true, 3, t0, 3), 0);
    cf_sink_close(k);
    sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->schema->nfields == 6);
    CHECK(sn && sn->schema->fields[4].type.id == CF_T_TIMESTAMP &&
          sn->schema->fields[5].type.id == CF_T_TIMESTAMP_NTZ);
    CHECK(sn && sn->min_reader == 3 && sn->min_writer == 7);
    CHECK(sn && lists(sn, "readerFeatures", "timestampNtz") && lists(sn, "writerFeatures", "changeDataFeed"));
    if (sn) {   /* every value reads back as written */
        cf_batch *b = cf_batch_new(sn->schema, &e);
        for (size_t i = 0; i < sn->nfiles; i++)
            if (sn->files[i].live)
                CHECK_EQ_INT(cf_delta_read_file(test_store(), dir, sn->files[i].path, &sn->files[i].pv,
                                                &sn->files[i].dv, sn->schema, b, &e), 0);
        CHECK_EQ_INT(b->nrows, 3);
        for (size_t r = 0; r < b->nrows; r++) {
            CHECK(cf_col_i64(&b->cols[4], r) == t0);
            if (cf_col_i64(&b->cols[0], r) == 3)
                CHECK(cf_col_valid(&b->cols[5], r) && cf_col_i64(&b->cols[5], r) == t0 + 1);
        }
        cf_batch_free(b);
    }
    cf_delta_snap_free(sn);
    rmtree(dir);
}

static void test_partitioned_paths(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    const char *parts[] = { "name" };
    cf_sink_config cfg = { .kind = "delta", .location = dir, .partition_by = parts, .npartition_by = 1 };
    cf_sink *k = cf_sink_open(&cfg, &e);
    cf_batch *b = cf_batch_new(s, &e);
    int64_t v;

    kv_row(b, 1, "a/b c", "INSERT", 1);
    kv_row(b, 2, "x", "INSERT", 2);
    cf_col_set_i64(&b->cols[0], 2, 3, &e);
    cf_col_set_null(&b->cols[1], 2, &e);      /* null partition value */
    cf_batch_end_row(b, &e);
    cf_offsets o = at("t", 0, 3);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->nlive == 3 && sn->npart == 1);
    int seen = 0;
    for (size_t i = 0; sn && i < sn->nfiles; i++) {
        const char *p = sn->files[i].path;
        bool present;
        const char *val = cf_delta_pv_get(&sn->files[i].pv, "name", &present);
        CHECK(present);
        if (!strncmp(p, "name=a%252Fb%2520c/", 19) && val && !strcmp(val, "a/b c"))
            seen |= 1;
        if (!strncmp(p, "name=x/", 7))
            seen |= 2;
        if (!strncmp(p, "name=__HIVE_DEFAULT_PARTITION__/", 32) && !val)
            seen |= 4;
        /* the file is where the decoded log path says */
        char *rel = cf_delta_path_decode(p), full[600];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        CHECK(stat(full, &st) == 0);
        CHECK_EQ_INT(st.st_size, sn->files[i].size);   /* the size the log records is the file's */
        free(rel);
    }
    CHECK_EQ_INT(seen, 7);
    cf_delta_snap_free(sn);
    cf_sink_close(k);
    free(o.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

/* Two processes commit to one table at once, each for its own partition:
 * versions collide and the losers retry; every commit must land once. */
static void race(cf_mode mode)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    enum { COMMITS = 25 };

    /* create the table first so both start from version 0 */
    {
        cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "race", .mode = mode };
        cf_sink *k = cf_sink_open(&cfg, &e);
        cf_batch *b = cf_batch_new(s, &e);
        int64_t v;
        kv_row(b, 0, "seed", "INSERT", 0);
        cf_offsets o = at("seed", 0, 1);
        CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
        free(o.v);
        cf_batch_free(b);
        cf_sink_close(k);
    }
    pid_t kids[2];
    for (int p = 0; p < 2; p++) {
        if ((kids[p] = fork()) == 0) {
            cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "race", .mode = mode };
            cf_sink *k = cf_sink_open(&cfg, &e);
            cf_batch *b = cf_batch_new(s, &e);
            int bad = !k || !b;
            for (int i = 0; i < COMMITS && !bad; i++) {
                int64_t v;
                cf_batch_reset(b);
                kv_row(b, p * 1000 + i, "r", "INSERT", i);
                if (mode == CF_MODE_UPSERT && i > 0)   /* and rename the previous key */
                    kv_row(b, p * 1000 + i - 1, "renamed", "UPDATE", i);
                cf_offsets o = at("t", p, i + 1);
                bad = commit_b(k, b, NULL, &o, &v, &e) != 0;
                if (bad)
                    fprintf(stderr, "  writer %d commit %d: %s\n", p, i, e.msg);
                free(o.v);
            }
            cf_batch_free(b);
            cf_sink_close(k);
            _exit(bad);
        }
    }
    for (int p = 0; p < 2; p++) {
        int st = 0;
        waitpid(kids[p], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn != NULL);
    if (sn) {
        CHECK_EQ_INT(sn->version, 2 * COMMITS);
        if (mode == CF_MODE_APPEND)
            CHECK_EQ_INT(sn->nlive, 2 * COMMITS + 1);
        CHECK_EQ_INT(cf_delta_snap_txn(sn, "race-t-0"), COMMITS);
        CHECK_EQ_INT(cf_delta_snap_txn(sn, "race-t-1"), COMMITS);
    }
    cf_delta_snap_free(sn);
    size_t n;
    char *name = lookup(dir, 1000 + COMMITS - 2, &n);
    /* upsert: writer 0's first key is the seed's key, so one row fewer */
    CHECK_EQ_INT(n, 2 * COMMITS + (mode == CF_MODE_APPEND));
    CHECK_EQ_STR(name, mode == CF_MODE_UPSERT ? "renamed" : "r");
    free(name);
    name = lookup(dir, COMMITS - 1, &n);
    CHECK_EQ_STR(name, "r");
    free(name);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_racing_processes(void) { race(CF_MODE_APPEND); }
static void test_racing_upserts(void) { race(CF_MODE_UPSERT); }

/* Another writer's commit lands between our stage and publish: the
 * put-if-absent of our version fails with a retriable conflict, and the
 * next publish lands on top of theirs with both commits' rows. */
static void test_lost_race_through_store(void)
{
    char *dir = mktable();
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "w" };
    cf_batch *b = cf_batch_new(s, &e);
    cf_offsets o1 = at("t", 0, 1), o2 = at("t", 0, 2), here = { 0 };
    int64_t v = -1;
    char foreign[512];

    kv_row(b, 1, "a", "INSERT", 1);
    cf_sink *k = cf_sink_open(&cfg, &e);
    CHECK(k != NULL);
    if (!k)
        return;
    CHECK_EQ_INT(commit_b(k, b, NULL, &o1, &v, &e), 0);         /* version 0 */
    CHECK_EQ_INT(cf_sink_offsets(k, &here, &e), 0);
    cf_commit c = { .rows = b, .start = &here, .end = &o2 };
    CHECK_EQ_INT(k->ops->stage(k, &c, &e), 0);                   /* built on version 0 */
    snprintf(foreign, sizeof foreign,
             "{\"commitInfo\":{\"timestamp\":%lld,\"operation\":\"WRITE\"}}\n"
             "{\"txn\":{\"appId\":\"other-t-5\",\"version\":9,\"lastUpdated\":1}}\n", (long long)cf_now_ms());
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 1, foreign, strlen(foreign), -1, &e), 0);
    e.code = CF_OK;
    CHECK_EQ_INT(k->ops->publish(k, &c, &v, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(e.retriable);
    CHECK_EQ_INT(k->ops->publish(k, &c, &v, &e), 0);
    CHECK_EQ_INT(v, 2);
    cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(sn && sn->version == 2 && sn->nlive == 2);
    CHECK(sn && cf_delta_snap_txn(sn, "other-t-5") == 9 && cf_delta_snap_txn(sn, "w-t-0") == 2);
    cf_delta_snap_free(sn);
    cf_sink_close(k);
    cf_offsets_free(&here);
    free(o1.v);
    free(o2.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

/* An aborted stage leaves no file behind: what it wrote is deleted
 * through the store. */
static void test_abort_removes_files(void)
{
    char *dir = mktable(), cmd[256], out[64] = "";
    cf_err e;
    cf_schema *s = kv_schema(false);
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "w" };
    cf_batch *b = cf_batch_new(s, &e);
    cf_offsets o1 = at("t", 0, 1), here = { 0 };
    FILE *p;

    kv_row(b, 1, "a", "INSERT", 1);
    cf_sink *k = cf_sink_open(&cfg, &e);
    CHECK(k != NULL);
    if (!k)
        return;
    CHECK_EQ_INT(cf_sink_offsets(k, &here, &e), 0);
    cf_commit c = { .rows = b, .start = &here, .end = &o1 };
    CHECK_EQ_INT(k->ops->stage(k, &c, &e), 0);
    k->ops->abort(k);
    snprintf(cmd, sizeof cmd, "find '%s' -name '*.parquet' | wc -l", dir);
    CHECK((p = popen(cmd, "r")) != NULL);
    if (p) {
        CHECK(fgets(out, sizeof out, p) != NULL);
        pclose(p);
    }
    CHECK_EQ_INT(atoi(out), 0);
    cf_sink_close(k);
    cf_offsets_free(&here);
    free(o1.v);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

CF_TEST_MAIN("delta_sink", T(test_append_offsets_and_replay_guard), T(test_upsert_and_change_data),
             T(test_concurrent_writers), T(test_schema_evolution), T(test_timestamp_ntz), T(test_partitioned_paths),
             T(test_racing_processes), T(test_racing_upserts), T(test_lost_race_through_store),
             T(test_abort_removes_files))
