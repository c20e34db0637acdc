/* test_table_shared.c - the commit contract when a table is shared, on both
 * formats: the fence refuses a batch whose start is not the table's offset
 * (a zombie, a lost partition), offsets survive snapshots of writers that
 * carry none, the key index sees rows other writers committed, and unchanged
 * TOAST cells keep the value the table holds. */
#include "cf_test.h"
#include "sink_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/delta/delta_int.h"
#include "iceberg_util.h"
#include "table/iceberg/iceberg_int.h"

#define TOPIC "pg.public.t"

static const char *kinds[] = { "delta", "iceberg" };

static char *mktable(const char *kind)
{
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/cf_shared_%s_XXXXXX", kind);
    return mkdtemp(dir);
}

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
    const char *pk = "id";
    cf_schema_add(s, "id", ti, false, 0, &e);
    cf_schema_add(s, "name", ts, true, 0, &e);
    cf_schema_add(s, "note", ts, true, 0, &e);
    cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    cf_schema_add(s, "_source_lsn", ti, true, 0, &e);
    cf_schema_set_pk(s, &pk, 1, &e);
    return s;
}

/* note NULL: the cell is left null (an unavailable TOAST value, say) */
static void row(cf_batch *b, int64_t id, const char *name, const char *note, const char *op, int64_t lsn)
{
    cf_err e;
    size_t r = b->nrows;
    cf_col_set_i64(&b->cols[0], r, id, &e);
    cf_col_set_bytes(&b->cols[1], r, name, strlen(name), &e);
    if (note)
        cf_col_set_bytes(&b->cols[2], r, note, strlen(note), &e);
    cf_col_set_bytes(&b->cols[3], r, op, strlen(op), &e);
    cf_col_set_i64(&b->cols[4], r, lsn, &e);
    cf_batch_end_row(b, &e);
}

static cf_offsets at(int32_t part, int64_t off)
{
    cf_offsets o = { 0 };
    cf_offsets_put(&o, TOPIC, part, off, NULL);
    return o;
}

static cf_sink *open_sink(const char *kind, const char *dir, const char *app)
{
    cf_err e = { 0 };
    cf_sink_config cfg = { .kind = kind, .location = dir, .app_id = app, .mode = CF_MODE_UPSERT };
    cf_sink *k = cf_sink_open(&cfg, &e);
    if (!k)
        fprintf(stderr, "  open %s: %s\n", dir, e.msg);
    return k;
}

/* Live rows of the table: how many have id `id`, and the name and note of
 * the last one seen (caller frees). */
typedef struct found { int n; char *name, *note; } found;

static void note_row(found *f, const cf_batch *b, size_t r, int64_t id)
{
    size_t len;
    const uint8_t *p;
    if (cf_col_i64(&b->cols[0], r) != id)
        return;
    f->n++;
    free(f->name);
    free(f->note);
    p = cf_col_bytes(&b->cols[1], r, &len);
    f->name = strndup((const char *)p, len);
    f->note = NULL;
    if (cf_col_valid(&b->cols[2], r)) {
        p = cf_col_bytes(&b->cols[2], r, &len);
        f->note = strndup((const char *)p, len);
    }
}

typedef struct ictx { found *f; int64_t id; } ictx;

static int ice_row_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    ictx *c = ctx;
    for (size_t r = 0; r < rows->nrows; r++)
        note_row(c->f, rows, r, c->id);
    return 0;
}

static found lookup(const char *kind, const char *dir, int64_t id)
{
    found f = { 0 };
    cf_err e = { 0 };

    if (!strcmp(kind, "delta")) {
        cf_delta_snap *s = cf_delta_snap_load(NULL, dir, -1, &e);
        cf_batch *b = s ? cf_batch_new(s->schema, &e) : NULL;
        for (size_t i = 0; b && i < s->nfiles; i++)
            if (s->files[i].live)
                cf_delta_read_file(test_store(), dir, s->files[i].path, &s->files[i].pv, &s->files[i].dv, s->schema, b, &e);
        for (size_t r = 0; b && r < b->nrows; r++)
            note_row(&f, b, r, id);
        cf_batch_free(b);
        cf_delta_snap_free(s);
    } else {
        cf_ice_table t;
        cf_schema *s = NULL;
        ictx c = { &f, id };
        if (ice_load(dir, &t, &e) == 0 && t.meta && (s = cf_ice_schema_from_json(t.meta, -1, &e)))
            cf_ice_scan(local_store(), cf_ice_snapshot(t.meta, -1), s, NULL, 0, ice_row_fn, &c, &e);
        cf_schema_free(s);
        cf_ice_table_free(&t);
    }
    return f;
}

static void found_free(found *f)
{
    free(f->name);
    free(f->note);
}

static int64_t table_offset(cf_sink *k, int32_t part)
{
    cf_offsets o = { 0 };
    cf_err e = { 0 };
    int64_t v = cf_sink_offsets(k, &o, &e) ? -2 : cf_offsets_get(&o, TOPIC, part);
    cf_offsets_free(&o);
    return v;
}

/* A paused process (A) wakes up after the group gave its partition to B
 * and B committed: A's batch starts where the table no longer is. */
static void zombie_is_fenced(const char *kind)
{
    char *dir = mktable(kind);
    cf_schema *s = schema();
    cf_err e = { 0 };
    cf_batch *b = cf_batch_new(s, &e);
    cf_sink *a = open_sink(kind, dir, "cdcflow"), *bb;
    cf_offsets s0 = at(0, 0), e1 = at(0, 1), e2 = at(0, 2), s1 = at(0, 1);
    int64_t v;

    row(b, 1, "first", "n", "INSERT", 10);
    CHECK_EQ_INT(commit_b(a, b, &s0, &e1, &v, &e), 0);
    bb = open_sink(kind, dir, "cdcflow");
    cf_batch_reset(b);
    row(b, 1, "by-b", "n", "UPDATE", 11);
    CHECK_EQ_INT(commit_b(bb, b, &s1, &e2, &v, &e), 0);         /* B owns partition 0 now */
    cf_batch_reset(b);
    row(b, 1, "zombie", "n", "UPDATE", 11);
    e.code = CF_OK;
    CHECK_EQ_INT(commit_b(a, b, &s1, &e2, &v, &e), -1);          /* A's view: table at 1 */
    CHECK_EQ_INT(e.code, CF_E_FENCED);
    CHECK(strstr(e.msg, "another writer owns the partition") != NULL);
    CHECK_EQ_INT(table_offset(a, 0), 2);                          /* A re-reads and re-seeks */
    {
        found f = lookup(kind, dir, 1);
        CHECK_EQ_INT(f.n, 1);
        CHECK_EQ_STR(f.name, "by-b");
        found_free(&f);
    }
    /* A batch from the table's offset on applies: the fence is exact. */
    cf_offsets e3 = at(0, 3);
    cf_batch_reset(b);
    row(b, 1, "again", "n", "UPDATE", 12);
    CHECK_EQ_INT(commit_b(a, b, &e2, &e3, &v, &e), 0);
    {
        found f = lookup(kind, dir, 1);
        CHECK_EQ_INT(f.n, 1);
        CHECK_EQ_STR(f.name, "again");
        found_free(&f);
    }
    cf_sink_close(a);
    cf_sink_close(bb);
    cf_offsets_free(&s0);
    cf_offsets_free(&s1);
    cf_offsets_free(&e1);
    cf_offsets_free(&e2);
    cf_offsets_free(&e3);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_zombie_is_fenced(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        zombie_is_fenced(kinds[i]);
}

/* Another writer (here: one with its own offsets prefix, as another engine
 * or pipeline is) commits between our commits.  Our offsets survive its
 * snapshots, and the rows it wrote for a key are retired by our update of
 * that key: the key index saw them, though our sink was open all along. */
static void foreign_writer(const char *kind)
{
    char *dir = mktable(kind);
    cf_schema *s = schema();
    cf_err e = { 0 };
    cf_batch *b = cf_batch_new(s, &e);
    cf_sink *ours = open_sink(kind, dir, "cdcflow"), *other;
    cf_offsets e1 = at(0, 1), e2 = at(0, 2), o1 = at(7, 1);
    int64_t v;

    row(b, 1, "ours", "n", "INSERT", 10);
    CHECK_EQ_INT(commit_b(ours, b, NULL, &e1, &v, &e), 0);
    CHECK_EQ_INT(table_offset(ours, 0), 1);                       /* the index is built */
    other = open_sink(kind, dir, "other");
    cf_batch_reset(b);
    row(b, 2, "theirs", "n", "INSERT", 20);
    CHECK_EQ_INT(commit_b(other, b, NULL, &o1, &v, &e), 0);
    cf_sink_close(other);
    CHECK_EQ_INT(table_offset(ours, 0), 1);                       /* across their snapshot */
    cf_batch_reset(b);
    row(b, 2, "updated-by-us", "n", "UPDATE", 21);
    CHECK_EQ_INT(commit_b(ours, b, NULL, &e2, &v, &e), 0);
    {
        found f = lookup(kind, dir, 2);
        CHECK_EQ_INT(f.n, 1);
        CHECK_EQ_STR(f.name, "updated-by-us");
        found_free(&f);
    }
    cf_sink_close(ours);
    ours = open_sink(kind, dir, "cdcflow");
    CHECK_EQ_INT(table_offset(ours, 0), 2);
    cf_sink_close(ours);
    cf_offsets_free(&e1);
    cf_offsets_free(&e2);
    cf_offsets_free(&o1);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_foreign_writer(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        foreign_writer(kinds[i]);
}

/* REPLICA IDENTITY DEFAULT: an update that leaves a TOAST column alone
 * carries a placeholder; the table keeps the value it holds. */
static void toast_kept(const char *kind)
{
    char *dir = mktable(kind);
    cf_schema *s = schema();
    cf_err e = { 0 };
    cf_batch *b = cf_batch_new(s, &e);
    cf_sink *k = open_sink(kind, dir, "cdcflow");
    cf_offsets e1 = at(0, 1), e2 = at(0, 3);
    cf_cells ua = { 0 };
    static char big[12801];
    int64_t v;

    memset(big, 'x', sizeof big - 1);
    row(b, 1, "a", big, "INSERT", 10);
    CHECK_EQ_INT(commit_b(k, b, NULL, &e1, &v, &e), 0);
    cf_batch_reset(b);
    row(b, 1, "renamed", NULL, "UPDATE", 11);       /* note unchanged: unavailable */
    row(b, 2, "new", NULL, "INSERT", 12);           /* unavailable, but nothing to keep */
    row(b, 3, "ins", "short", "INSERT", 13);        /* inserted and updated in one batch: */
    row(b, 3, "upd", NULL, "UPDATE", 14);           /* the batch's earlier row has the value */
    cf_cells_add(&ua, 0, 2, &e);
    cf_cells_add(&ua, 1, 2, &e);
    cf_cells_add(&ua, 3, 2, &e);
    {
        /* commit_b with the cells: build the value by hand */
        char ops[4] = { 'u', 'c', 'c', 'u' };
        int64_t lsns[4] = { 11, 12, 13, 14 };
        cf_commit c = { .rows = b, .ops = ops, .lsns = lsns, .key = s->pk, .nkey = s->npk,
                        .unavail = &ua, .start = &e1, .end = &e2 };
        CHECK_EQ_INT(cf_sink_commit(k, &c, &v, &e), 0);
    }
    {
        found f = lookup(kind, dir, 1);
        CHECK_EQ_INT(f.n, 1);
        CHECK_EQ_STR(f.name, "renamed");
        CHECK(f.note && strlen(f.note) == sizeof big - 1);
        found_free(&f);
        f = lookup(kind, dir, 2);
        CHECK_EQ_INT(f.n, 1);
        CHECK(f.note == NULL);
        found_free(&f);
        f = lookup(kind, dir, 3);
        CHECK_EQ_INT(f.n, 1);
        CHECK_EQ_STR(f.name, "upd");
        CHECK_EQ_STR(f.note, "short");
        found_free(&f);
    }
    cf_sink_close(k);
    cf_cells_free(&ua);
    cf_offsets_free(&e1);
    cf_offsets_free(&e2);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

static void test_toast_kept(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        toast_kept(kinds[i]);
}

/* id int64 key, n of type `nt` */
static cf_schema *nschema(cf_type_id nt)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    const char *pk = "id";
    cf_schema_add(s, "id", (cf_type){ CF_T_INT64 }, false, 0, &e);
    cf_schema_add(s, "n", (cf_type){ nt }, true, 0, &e);
    cf_schema_set_pk(s, &pk, 1, &e);
    return s;
}

static int commit_n(cf_sink *k, const cf_schema *s, int64_t id, int64_t n, int64_t end, cf_err *e)
{
    cf_batch *b = cf_batch_new(s, e);
    cf_offsets o = at(0, end);
    int64_t v;
    int rc;
    cf_col_set_i64(&b->cols[0], 0, id, e);
    cf_col_set_i64(&b->cols[1], 0, n, e);
    cf_batch_end_row(b, e);
    rc = commit_b(k, b, NULL, &o, &v, e);
    cf_offsets_free(&o);
    cf_batch_free(b);
    return rc;
}

/* Sum of n over the live rows, read by the table's own reader. */
static int ice_sum_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    int64_t *sum = ctx;
    int c = cf_schema_find(rows->schema, "n");
    for (size_t r = 0; r < rows->nrows; r++)
        *sum += cf_col_i64(&rows->cols[c], r);
    return 0;
}

static int64_t sum_n(const char *kind, const char *dir, char *type, size_t tn)
{
    cf_err e = { 0 };
    int64_t sum = 0;
    if (!strcmp(kind, "delta")) {
        cf_delta_snap *s = cf_delta_snap_load(NULL, dir, -1, &e);
        cf_batch *b = s ? cf_batch_new(s->schema, &e) : NULL;
        for (size_t i = 0; b && i < s->nfiles; i++)
            if (s->files[i].live)
                cf_delta_read_file(test_store(), dir, s->files[i].path, &s->files[i].pv, &s->files[i].dv, s->schema, b, &e);
        for (size_t r = 0; b && r < b->nrows; r++)
            sum += cf_col_i64(&b->cols[1], r);
        if (s)
            snprintf(type, tn, "%s", cf_type_name(s->schema->fields[1].type.id));
        cf_batch_free(b);
        cf_delta_snap_free(s);
    } else {
        cf_ice_table t;
        cf_schema *s = NULL;
        if (ice_load(dir, &t, &e) == 0 && t.meta && (s = cf_ice_schema_from_json(t.meta, -1, &e))) {
            cf_ice_scan(local_store(), cf_ice_snapshot(t.meta, -1), s, NULL, 0, ice_sum_fn, &sum, &e);
            snprintf(type, tn, "%s", cf_type_name(s->fields[cf_schema_find(s, "n")].type.id));
        }
        cf_schema_free(s);
        cf_ice_table_free(&t);
    }
    return sum;
}

/* int -> bigint at the source: Iceberg promotes the column; Delta widens
 * it only where asked (typeWidening), and says how otherwise. */
static void test_type_widening(void)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        const char *kind = kinds[i];
        char *dir = mktable(kind), type[32] = "";
        cf_schema *narrow = nschema(CF_T_INT32), *wide = nschema(CF_T_INT64);
        cf_err e = { 0 };
        cf_sink *k = open_sink(kind, dir, "cdcflow");
        bool delta = !strcmp(kind, "delta");

        CHECK_EQ_INT(commit_n(k, narrow, 1, 7, 1, &e), 0);
        if (delta) {
            e.code = CF_OK;
            CHECK_EQ_INT(commit_n(k, wide, 2, 1LL << 40, 2, &e), -1);
            CHECK_EQ_INT(e.code, CF_E_UNSUPPORTED);
            CHECK(strstr(e.msg, "'n' changed type from integer to long") && strstr(e.msg, "enableTypeWidening"));
            cf_sink_close(k);
            cf_sink_config cfg = { .kind = kind, .location = dir, .app_id = "cdcflow", .mode = CF_MODE_UPSERT,
                                   .type_widening = true };
            k = cf_sink_open(&cfg, &e);
        }
        CHECK_EQ_INT(commit_n(k, wide, 2, 1LL << 40, 2, &e), 0);
        CHECK_EQ_INT(commit_n(k, wide, 1, 8, 3, &e), 0);          /* an old row updated */
        CHECK_EQ_INT(sum_n(kind, dir, type, sizeof type), (1LL << 40) + 8);
        CHECK_EQ_STR(type, "int64");
        cf_sink_close(k);
        if (delta) {
            cf_delta_snap *sn = cf_delta_snap_load(NULL, dir, -1, &e);
            const char *ss = sn ? json_string_value(json_object_get(sn->metadata, "schemaString")) : NULL;
            CHECK(sn && sn->min_reader == 3 && sn->min_writer == 7);
            CHECK(ss && strstr(ss, "\"delta.typeChanges\":[{\"fromType\":\"integer\",\"toType\":\"long\"}]"));
            cf_delta_snap_free(sn);
        }
        cf_schema_free(narrow);
        cf_schema_free(wide);
        rmtree(dir);
    }
}

/* An offset property that is not a plain count is a corrupt table, not
 * offset 0 (which would replay the topic from its start). */
static void test_iceberg_corrupt_offset_is_an_error(void)
{
    char *dir = mktable("iceberg");
    cf_schema *s = schema();
    cf_err e = { 0 };
    cf_batch *b = cf_batch_new(s, &e);
    cf_sink *k = open_sink("iceberg", dir, "cdcflow");
    cf_offsets e1 = at(0, 41);
    cf_offsets back = { 0 };
    cf_ice_table t;
    int64_t v;

    row(b, 1, "a", "n", "INSERT", 10);
    CHECK_EQ_INT(commit_b(k, b, NULL, &e1, &v, &e), 0);
    cf_sink_close(k);
    CHECK_EQ_INT(ice_load(dir, &t, &e), 0);
    if (t.meta) {
        /* the current snapshot's offset, as a careless tool might write it */
        json_t *sum = json_object_get(cf_ice_snapshot(t.meta, -1), "summary");
        json_object_set_new(sum, "cdcflow.offsets." TOPIC ".0", json_string("41x"));
        CHECK_EQ_INT(ice_commit(dir, &t, json_incref(t.meta), &e), 0);
    }
    cf_ice_table_free(&t);
    k = open_sink("iceberg", dir, "cdcflow");
    e.code = CF_OK;
    CHECK(k && cf_sink_offsets(k, &back, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    CHECK(strstr(e.msg, "bad offset property") != NULL);
    cf_sink_close(k);
    cf_offsets_free(&back);
    cf_offsets_free(&e1);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

/* Another engine committed on top and the snapshots that carried our
 * offsets were expired (Spark's rewrite_data_files, then
 * expire_snapshots(retain_last=1)): the offsets are still known. */
static void test_iceberg_offsets_outlive_expired_snapshots(void)
{
    char *dir = mktable("iceberg");
    cf_schema *s = schema();
    cf_err e = { 0 };
    cf_batch *b = cf_batch_new(s, &e);
    cf_sink *k = open_sink("iceberg", dir, "cdcflow"), *other;
    cf_offsets e1 = at(0, 41), o1 = at(5, 3);
    cf_ice_table t;
    int64_t v;

    row(b, 1, "a", "n", "INSERT", 10);
    CHECK_EQ_INT(commit_b(k, b, NULL, &e1, &v, &e), 0);
    cf_sink_close(k);
    other = open_sink("iceberg", dir, "other");
    cf_batch_reset(b);
    row(b, 2, "b", "n", "INSERT", 11);
    CHECK_EQ_INT(commit_b(other, b, NULL, &o1, &v, &e), 0);
    cf_sink_close(other);
    CHECK_EQ_INT(ice_load(dir, &t, &e), 0);
    if (t.meta) {
        /* keep only the current (foreign) snapshot */
        json_t *snaps = json_object_get(t.meta, "snapshots"), *cur = cf_ice_snapshot(t.meta, -1);
        json_t *keep = json_array();
        json_array_append(keep, cur);
        json_object_del(cur, "parent-snapshot-id");
        json_object_set_new(t.meta, "snapshots", keep);
        json_object_set_new(t.meta, "snapshot-log", json_array());
        (void)snaps;
        CHECK_EQ_INT(ice_commit(dir, &t, json_incref(t.meta), &e), 0);
    }
    cf_ice_table_free(&t);
    k = open_sink("iceberg", dir, "cdcflow");
    CHECK_EQ_INT(table_offset(k, 0), 41);
    cf_sink_close(k);
    cf_offsets_free(&e1);
    cf_offsets_free(&o1);
    cf_batch_free(b);
    cf_schema_free(s);
    rmtree(dir);
}

CF_TEST_MAIN("table_shared", T(test_iceberg_corrupt_offset_is_an_error),
             T(test_iceberg_offsets_outlive_expired_snapshots), T(test_zombie_is_fenced), T(test_foreign_writer), T(test_toast_kept),
             T(test_type_widening))
