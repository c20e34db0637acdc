/* test_delta_checkpoint.c - cdcflow reads Delta checkpoints back: every
 * action kind round-trips through our writer, and a table whose JSON
 * commits the checkpoint covers were deleted (log retention by other tools)
 * still resumes at the right offsets and scans the same rows. */
#include "cf_test.h"
#include "util/fs.h"
#include "util/id.h"
#include "sink_util.h"

#include <inttypes.h>
#include <limits.h>
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

static const char *SCHEMA_STR =
    "{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}},"
    "{\\\"name\\\":\\\"c\\\",\\\"type\\\":\\\"string\\\",\\\"nullable\\\":true,\\\"metadata\\\":{}}]}";

static void test_roundtrip(void)
{
    char dir[] = "/tmp/cf_delta_ckpt_XXXXXX", text[4096], log[PATH_MAX];
    cf_err e;
    int64_t now = cf_now_ms();
    CHECK(mkdtemp(dir) != NULL);
    snprintf(log, sizeof log, "%s/_delta_log", dir);
    CHECK_EQ_INT(cf_fs_mkdirs(log, &e), 0);

    snprintf(text, sizeof text,
             "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":4}}\n"
             "{\"metaData\":{\"id\":\"tid\",\"name\":\"nm\",\"format\":{\"provider\":\"parquet\",\"options\":{}},"
             "\"schemaString\":\"%s\",\"partitionColumns\":[\"c\"],"
             "\"configuration\":{\"delta.enableChangeDataFeed\":\"true\",\"delta.checkpointInterval\":\"7\"},"
             "\"createdTime\":123}}\n"
             "{\"add\":{\"path\":\"c=a/f1.parquet\",\"partitionValues\":{\"c\":\"a\"},\"size\":10,"
             "\"modificationTime\":1,\"dataChange\":true,\"stats\":\"{\\\"numRecords\\\":7}\"}}\n"
             "{\"add\":{\"path\":\"c=__HIVE_DEFAULT_PARTITION__/f2.parquet\",\"partitionValues\":{\"c\":null},"
             "\"size\":20,\"modificationTime\":2,\"dataChange\":true}}\n"
             "{\"add\":{\"path\":\"c=b/gone.parquet\",\"partitionValues\":{\"c\":\"b\"},\"size\":30,"
             "\"modificationTime\":3,\"dataChange\":true}}\n"
             "{\"txn\":{\"appId\":\"app-orders-0\",\"version\":100,\"lastUpdated\":1}}\n"
             "{\"txn\":{\"appId\":\"app-my-topic-3\",\"version\":7,\"lastUpdated\":2}}\n",
             SCHEMA_STR);
    cf_delta_snap *s = cf_delta_snap_new(NULL, dir, &e);
    CHECK_EQ_INT(cf_delta_snap_apply(s, text, strlen(text), 0, &e), 0);
    snprintf(text, sizeof text,
             "{\"remove\":{\"path\":\"c=b/gone.parquet\",\"deletionTimestamp\":%" PRId64 ",\"dataChange\":true}}\n",
             now);
    CHECK_EQ_INT(cf_delta_snap_apply(s, text, strlen(text), 1, &e), 0);
    CHECK_EQ_INT(cf_delta_checkpoint_write(s, &e), 0);
    CHECK_EQ_INT(cf_delta_log_last_checkpoint(test_store(), dir, -1), 1);

    cf_delta_snap *r = cf_delta_snap_new(NULL, dir, &e);
    CHECK_EQ_INT(cf_delta_checkpoint_read(r, 1, &e), 0);
    CHECK_EQ_INT(r->version, 1);
    CHECK_EQ_INT(r->min_reader, 1);
    CHECK_EQ_INT(r->min_writer, 4);
    CHECK(r->cdf_enabled);
    CHECK_EQ_INT(r->checkpoint_interval, 7);
    CHECK_EQ_INT(r->npart, 1);
    CHECK_EQ_STR(r->part_cols[0], "c");
    CHECK_EQ_STR(json_string_value(json_object_get(r->metadata, "id")), "tid");
    CHECK_EQ_STR(json_string_value(json_object_get(r->metadata, "name")), "nm");
    CHECK_EQ_INT(json_integer_value(json_object_get(r->metadata, "createdTime")), 123);
    CHECK_EQ_INT(r->schema->nfields, 2);
    CHECK_EQ_INT(r->nlive, 2);
    cf_delta_file *f1 = cf_delta_snap_file(r, "c=a/f1.parquet");
    cf_delta_file *f2 = cf_delta_snap_file(r, "c=__HIVE_DEFAULT_PARTITION__/f2.parquet");
    CHECK(f1 && f2);
    CHECK(!cf_delta_snap_file(r, "c=b/gone.parquet"));
    if (f1 && f2) {
        bool present;
        CHECK_EQ_STR(cf_delta_pv_get(&f1->pv, "c", &present), "a");
        CHECK(present);
        CHECK(cf_delta_pv_get(&f2->pv, "c", &present) == NULL);
        CHECK(present);
        CHECK_EQ_INT(f1->size, 10);
        CHECK_EQ_INT(f2->mtime, 2);
        CHECK_EQ_INT(f1->num_records, 7);
        CHECK(f1->data_change);
    }
    CHECK_EQ_INT(cf_delta_snap_txn(r, "app-orders-0"), 100);
    CHECK_EQ_INT(cf_delta_snap_txn(r, "app-my-topic-3"), 7);
    /* the tombstone is carried on, with its deletion time */
    int tomb = 0;
    for (size_t i = 0; i < r->nfiles; i++)
        if (!r->files[i].live && !strcmp(r->files[i].path, "c=b/gone.parquet")) {
            tomb++;
            CHECK_EQ_INT(r->files[i].deleted_at, now);
            CHECK_EQ_INT(r->files[i].size, 30);
        }
    CHECK_EQ_INT(tomb, 1);

    /* a multi-part name for the same file is found and read too */
    char a[PATH_MAX + 64], b[PATH_MAX + 64];
    snprintf(a, sizeof a, "%s/%020d.checkpoint.parquet", log, 1);
    snprintf(b, sizeof b, "%s/%020d.checkpoint.0000000001.0000000001.parquet", log, 3);
    CHECK_EQ_INT(link(a, b), 0);
    CHECK_EQ_INT(cf_delta_log_last_checkpoint(test_store(), dir, -1), 3);
    cf_delta_snap *m = cf_delta_snap_new(NULL, dir, &e);
    CHECK_EQ_INT(cf_delta_checkpoint_read(m, 3, &e), 0);
    CHECK_EQ_INT(m->nlive, 2);
    /* an incomplete multi-part set is no checkpoint */
    snprintf(b, sizeof b, "%s/%020d.checkpoint.0000000001.0000000002.parquet", log, 4);
    CHECK_EQ_INT(link(a, b), 0);
    cf_delta_snap *inc = cf_delta_snap_new(NULL, dir, &e);
    CHECK_EQ_INT(cf_delta_checkpoint_read(inc, 4, &e), -1);

    /* a tombstone the replay refuses (empty path) fails the read cleanly */
    for (size_t i = 0; i < s->nfiles; i++)
        if (!s->files[i].live) {
            free(s->files[i].path);
            s->files[i].path = strdup("");
        }
    s->version = 7;
    CHECK_EQ_INT(cf_delta_checkpoint_write(s, &e), 0);
    cf_delta_snap *bad = cf_delta_snap_new(NULL, dir, &e);
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_checkpoint_read(bad, 7, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    cf_delta_snap_free(bad);

    /* garbage bytes fail cleanly */
    e.code = CF_OK;
    CHECK_EQ_INT(cf_delta_checkpoint_read_mem(inc, "PAR1xxxxPAR1", 12, &e), -1);
    CHECK(e.code != CF_OK);

    cf_delta_snap_free(inc);
    cf_delta_snap_free(m);
    cf_delta_snap_free(r);
    cf_delta_snap_free(s);
    rmtree(dir);
}

/* ---- a sink table whose early JSON commits were cleaned up ------------ */

static cf_schema *schema(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type ti = { CF_T_INT64 }, ts = { CF_T_STRING };
    cf_schema_add(s, "id", ti, false, 0, &e);
    cf_schema_add(s, "name", ts, true, 0, &e);
    cf_schema_add(s, "region", ts, true, 0, &e);
    cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    cf_schema_add(s, "_source_lsn", ti, true, 0, &e);
    const char *pk = "id";
    cf_schema_set_pk(s, &pk, 1, &e);
    return s;
}

static void row(cf_batch *b, int64_t id, const char *name, const char *region, const char *op, int64_t lsn)
{
    cf_err e;
    size_t r = b->nrows;
    cf_col_set_i64(&b->cols[0], r, id, &e);
    cf_col_set_bytes(&b->cols[1], r, name, strlen(name), &e);
    cf_col_set_bytes(&b->cols[2], r, region, strlen(region), &e);
    cf_col_set_bytes(&b->cols[3], r, op, strlen(op), &e);
    cf_col_set_i64(&b->cols[4], r, lsn, &e);
    cf_batch_end_row(b, &e);
}

/* "id=name" of every live row, sorted by id, as one string (caller frees) */
static char *table_rows(const char *root)
{
    cf_err e;
    cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &e);
    if (!s) {
        fprintf(stderr, "load %s: %s\n", root, e.msg);
        return NULL;
    }
    cf_batch *b = cf_batch_new(s->schema, &e);
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].live && cf_delta_read_file(test_store(), root, s->files[i].path, &s->files[i].pv, &s->files[i].dv, s->schema, b, &e))
            fprintf(stderr, "read %s: %s\n", s->files[i].path, e.msg);
    /* ids are small: bucket them */
    static char names[64][16];
    memset(names, 0, sizeof names);
    for (size_t r = 0; r < b->nrows; r++) {
        int64_t id = cf_col_i64(&b->cols[0], r);
        size_t len;
        const uint8_t *p = cf_col_bytes(&b->cols[1], r, &len);
        if (id >= 0 && id < 64 && len < 15) {
            if (names[id][0])
                snprintf(names[id], sizeof names[id], "DUP");
            else
                memcpy(names[id], p, len);
        }
    }
    char *out = calloc(1, 64 * 40);
    for (int id = 0; id < 64 && out; id++)
        if (names[id][0]) {
            char one[40];
            snprintf(one, sizeof one, "%d=%.15s;", id, names[id]);
            strcat(out, one);
        }
    cf_batch_free(b);
    cf_delta_snap_free(s);
    return out;
}

static void test_resume_after_log_cleanup(void)
{
    char dir[] = "/tmp/cf_delta_ckpt_XXXXXX", path[PATH_MAX + 64];
    const char *part[] = { "region" };
    cf_err e;
    int64_t v = -1;
    CHECK(mkdtemp(dir) != NULL);
    cf_schema *s = schema();
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "t", .mode = CF_MODE_UPSERT,
                           .checkpoint_interval = 5, .partition_by = part, .npartition_by = 1 };
    cf_sink *k = cf_sink_open(&cfg, &e);
    CHECK(k != NULL);
    cf_batch *b = cf_batch_new(s, &e);
    /* 12 commits (versions 0..11): checkpoints at 5 and 10 */
    for (int c = 0; c < 12; c++) {
        char nm[16];
        cf_batch_reset(b);
        snprintf(nm, sizeof nm, "n%d", c);
        row(b, c, nm, c % 2 ? "eu" : "us", "INSERT", 100 + c);
        if (c > 2)
            row(b, c - 3, nm, (c - 3) % 2 ? "eu" : "us", "UPDATE", 100 + c);
        if (c == 7)
            row(b, 1, "", "eu", "DELETE", 100 + c);
        cf_offsets o = { 0 };
        cf_delta_offsets_put(&o, "db.customers", 0, 10 * (c + 1), &e);
        cf_delta_offsets_put(&o, "db.customers", 1, 5 * (c + 1), &e);
        CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
        free(o.v);
    }
    CHECK_EQ_INT(v, 11);
    cf_sink_close(k);
    char *before = table_rows(dir);
    CHECK(before != NULL && strlen(before) > 0);

    /* log retention: the JSON commits the checkpoint covers are gone */
    CHECK_EQ_INT(cf_delta_log_last_checkpoint(test_store(), dir, -1), 10);
    for (int i = 0; i <= 10; i++) {
        snprintf(path, sizeof path, "%s/_delta_log/%020d.json", dir, i);
        CHECK_EQ_INT(unlink(path), 0);
    }
    snprintf(path, sizeof path, "%s/_delta_log/%020d.checkpoint.parquet", dir, 5);
    CHECK_EQ_INT(unlink(path), 0);

    /* (b) the same rows */
    char *after = table_rows(dir);
    CHECK(after != NULL);
    if (before && after)
        CHECK_EQ_STR(after, before);
    cf_delta_snap *snap = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(snap != NULL);
    if (snap) {
        CHECK_EQ_INT(snap->version, 11);
        CHECK_EQ_INT(snap->ckpt_version, 10);
        cf_delta_snap_free(snap);
    }
    /* time travel to a version whose commit is gone is refused */
    e.code = CF_OK;
    CHECK(cf_delta_snap_load(NULL, dir, 3, &e) == NULL);
    CHECK(e.code != CF_OK);

    /* (a) the sink resumes from the offsets of the last commit */
    k = cf_sink_open(&cfg, &e);
    CHECK(k != NULL);
    cf_offsets back = { 0 };
    CHECK_EQ_INT(cf_sink_offsets(k, &back, &e), 0);
    CHECK_EQ_INT(cf_offsets_get(&back, "db.customers", 0), 120);
    CHECK_EQ_INT(cf_offsets_get(&back, "db.customers", 1), 60);
    /* and keeps upserting by key into the files the checkpoint lists */
    cf_batch_reset(b);
    row(b, 0, "zero", "us", "UPDATE", 500);
    row(b, 40, "new", "eu", "INSERT", 501);
    cf_offsets o = { 0 };
    cf_delta_offsets_put(&o, "db.customers", 0, 130, &e);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 12);
    free(o.v);
    free(back.v);
    cf_sink_close(k);
    char *last = table_rows(dir);
    CHECK(last != NULL);
    if (last) {
        CHECK(strstr(last, "0=zero;") != NULL);
        CHECK(strstr(last, "40=new;") != NULL);
        CHECK(strstr(last, "DUP") == NULL);
    }

    /* without the checkpoint either, the error says what happened */
    snprintf(path, sizeof path, "%s/_delta_log/%020d.checkpoint.parquet", dir, 10);
    CHECK_EQ_INT(unlink(path), 0);
    snprintf(path, sizeof path, "%s/_delta_log/_last_checkpoint", dir);
    unlink(path);
    e.code = CF_OK;
    CHECK(cf_delta_snap_load(NULL, dir, -1, &e) == NULL);
    CHECK(e.code != CF_OK);

    free(before);
    free(after);
    free(last);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

CF_TEST_MAIN("delta_checkpoint", T(test_roundtrip), T(test_resume_after_log_cleanup))
