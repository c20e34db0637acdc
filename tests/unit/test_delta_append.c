/* test_delta_append.c - append mode cuts a partition's rows into files of
 * about cfg.target_file_bytes; without a target it writes one file per
 * partition per commit.  No row is lost or written twice either way. */
#include "cf_test.h"
#include "sink_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/delta/delta_int.h"

#define NROWS 6000

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static cf_schema *schema(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type ti = { CF_T_INT64 }, ts = { CF_T_STRING };
    cf_schema_add(s, "id", ti, false, 0, &e);
    cf_schema_add(s, "note", ts, true, 0, &e);
    cf_schema_add(s, "region", ts, true, 0, &e);
    cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    cf_schema_add(s, "_source_lsn", ti, true, 0, &e);
    return s;
}

/* Append NROWS rows in one commit to a fresh table; fills the count of live
 * files per region (eu, us), the largest file and whether each id is there once. */
static void append(int64_t target, size_t *files_eu, size_t *files_us, int64_t *max_size, int *ids_ok)
{
    char dir[] = "/tmp/cf_delta_append_XXXXXX", note[80];
    const char *part[] = { "region" };
    cf_err e;
    int64_t v = -1;
    CHECK(mkdtemp(dir) != NULL);
    cf_schema *s = schema();
    cf_sink_config cfg = { .kind = "delta", .location = dir, .app_id = "t", .mode = CF_MODE_APPEND,
                           .partition_by = part, .npartition_by = 1, .target_file_bytes = target };
    cf_sink *k = cf_sink_open(&cfg, &e);
    CHECK(k != NULL);
    cf_batch *b = cf_batch_new(s, &e);
    unsigned x = 12345;
    for (int i = 0; i < NROWS; i++) {
        size_t r = b->nrows;
        /* text that does not compress to nothing */
        for (int c = 0; c < 40; c++) {
            x = x * 1103515245u + 12345u;
            note[c] = (char)('a' + (x >> 16) % 26);
        }
        const char *reg = i % 3 ? "eu" : "us";
        cf_col_set_i64(&b->cols[0], r, i, &e);
        cf_col_set_bytes(&b->cols[1], r, note, 40, &e);
        cf_col_set_bytes(&b->cols[2], r, reg, 2, &e);
        cf_col_set_bytes(&b->cols[3], r, "INSERT", 6, &e);
        cf_col_set_i64(&b->cols[4], r, i, &e);
        cf_batch_end_row(b, &e);
    }
    cf_offsets o = { 0 };
    cf_delta_offsets_put(&o, "db.t", 0, NROWS, &e);
    CHECK_EQ_INT(commit_b(k, b, NULL, &o, &v, &e), 0);
    CHECK_EQ_INT(v, 0);
    free(o.v);
    cf_sink_close(k);

    *files_eu = *files_us = 0;
    *max_size = 0;
    *ids_ok = 0;
    cf_delta_snap *snap = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(snap != NULL);
    if (snap) {
        static unsigned char seen[NROWS];
        memset(seen, 0, sizeof seen);
        cf_batch *rb = cf_batch_new(snap->schema, &e);
        for (size_t i = 0; i < snap->nfiles; i++) {
            cf_delta_file *f = &snap->files[i];
            bool present;
            if (!f->live)
                continue;
            const char *reg = cf_delta_pv_get(&f->pv, "region", &present);
            if (reg && !strcmp(reg, "eu"))
                (*files_eu)++;
            else if (reg && !strcmp(reg, "us"))
                (*files_us)++;
            if (f->size > *max_size)
                *max_size = f->size;
            cf_batch_reset(rb);
            CHECK_EQ_INT(cf_delta_read_file(test_store(), dir, f->path, &f->pv, &f->dv, snap->schema, rb, &e), 0);
            CHECK_EQ_INT(f->num_records, rb->nrows);
            for (size_t r = 0; r < rb->nrows; r++) {
                int64_t id = cf_col_i64(&rb->cols[0], r);
                size_t len;
                const uint8_t *rg = cf_col_bytes(&rb->cols[2], r, &len);
                /* the row sits in its own partition's file */
                CHECK(len == 2 && !memcmp(rg, id % 3 ? "eu" : "us", 2));
                if (id >= 0 && id < NROWS && seen[id] < 255)
                    seen[id]++;
            }
        }
        *ids_ok = 1;
        for (int i = 0; i < NROWS; i++)
            if (seen[i] != 1)
                *ids_ok = 0;
        cf_batch_free(rb);
        cf_delta_snap_free(snap);
    }
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_default_one_file_per_partition(void)
{
    size_t eu, us;
    int64_t max;
    int ok;
    append(0, &eu, &us, &max, &ok);
    CHECK_EQ_INT(eu, 1);
    CHECK_EQ_INT(us, 1);
    CHECK(ok);
}

static void test_target_cuts_files(void)
{
    size_t eu, us;
    int64_t max, target = 24 << 10;
    int ok;
    append(target, &eu, &us, &max, &ok);
    CHECK(ok);
    /* eu holds 4000 rows of ~60 bytes (~240 KB raw): several files */
    CHECK(eu >= 3);
    CHECK(us >= 2);
    CHECK(eu > us);
    /* sizes are estimated, so allow slack, but no file is far over the target */
    CHECK(max <= 2 * target);
    /* and a target far above the data changes nothing */
    append(1LL << 30, &eu, &us, &max, &ok);
    CHECK_EQ_INT(eu, 1);
    CHECK_EQ_INT(us, 1);
    CHECK(ok);
}

CF_TEST_MAIN("delta_append", T(test_default_one_file_per_partition), T(test_target_cuts_files))
