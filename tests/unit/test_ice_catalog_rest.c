/* test_ice_catalog_rest.c - the REST catalog behind the catalog seam, against
 * the real server (Apache Iceberg's RESTCatalogServer, scripts/catalog.sh) and
 * the stack's S3: the sink creates a table with the ids the catalog gave it,
 * commits, reloads and is fenced through the catalog; two writers on one base
 * (one CONFLICT, leaving its state at the base, then success); a commit that
 * lands twice (its answer lost) is success, not a second snapshot; time
 * travel by metadata version; property and snapshot removal updates.
 *
 * Prints "skipped: no catalog at URI" and passes when nothing answers at
 * ICEBERG_CATALOG_URI (default http://127.0.0.1:8181).  S3: S3_ENDPOINT
 * (default http://127.0.0.1:9400), bucket S3_BUCKET (cdcflow), the stack's
 * keys. */
#include "cf_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/iceberg/iceberg_int.h"
#include "table/table.h"
#include "util/id.h"
#include "sink_util.h"

#define TOPIC "postgres.public.customers"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static cf_catalog_config catcfg;
static cf_store_config s3cfg;
static cf_store *st;
static char root[300];          /* s3://BUCKET/unit-UUID/wh */
static int state;               /* 0 unknown, 1 up, -1 down */

static bool up(void)
{
    cf_ice_catalog *c;
    cf_err e = { 0 };
    char id[37], loc[400];

    if (state)
        return state > 0;
    catcfg.uri = env_or("ICEBERG_CATALOG_URI", "http://127.0.0.1:8181");
    s3cfg.endpoint = env_or("S3_ENDPOINT", "http://127.0.0.1:9400");
    s3cfg.access_key = env_or("AWS_ACCESS_KEY_ID", "cdcflow");
    s3cfg.secret_key = env_or("AWS_SECRET_ACCESS_KEY", "cdcflow-secret");
    s3cfg.region = "us-east-1";
    s3cfg.path_style = 1;
    cf_uuid(id);
    snprintf(root, sizeof root, "s3://%s/unit-%s/wh", env_or("S3_BUCKET", "cdcflow"), id);
    if (!(st = cf_store_open(root, &s3cfg, &e))) {
        fprintf(stderr, "  store: %s\n", e.msg);
        state = -1;
        return false;
    }
    snprintf(loc, sizeof loc, "%s/probe/t", root);
    if (!(c = cf_ice_catalog_open(&catcfg, loc, NULL, st, &e))) {
        state = -1;
        if (e.code == CF_E_IO)
            printf("skipped: no catalog at %s (scripts/stack.sh start)\n", catcfg.uri);
        else
            fprintf(stderr, "  catalog: %s\n", e.msg), cf_test_failed_checks++;
        return false;
    }
    cf_ice_catalog_close(c);
    state = 1;
    return true;
}

/* A fresh table location under root, namespace unique to the run. */
static void table_loc(char *out, size_t n, const char *name)
{
    char id[37];
    cf_uuid(id);
    /* namespaces are identifiers: no '-' */
    for (char *p = id; *p; p++)
        if (*p == '-')
            *p = '_';
    snprintf(out, n, "%s/ns_%.12s/%s", root, id, name);
}

static cf_schema *people_schema(bool tier)
{
    cf_schema *s = cf_schema_new();
    const char *pk[] = { "id" };
    cf_schema_add(s, "id", (cf_type){ .id = CF_T_INT64 }, false, 0, NULL);
    cf_schema_add(s, "name", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "_cdc_operation", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "_source_lsn", (cf_type){ .id = CF_T_INT64 }, true, 0, NULL);
    if (tier)
        cf_schema_add(s, "tier", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_set_pk(s, pk, 1, NULL);
    return s;
}

/* Rows [from, to): id i % 5, name "n<i>", inserts then updates. */
static void fill(cf_batch *b, int64_t from, int64_t to)
{
    char buf[32];
    cf_batch_reset(b);
    for (int64_t i = from; i < to; i++) {
        const char *op = i < 5 ? "INSERT" : "UPDATE";
        snprintf(buf, sizeof buf, "n%lld", (long long)i);
        cf_col_set_i64(&b->cols[0], b->nrows, i % 5, NULL);
        cf_col_set_bytes(&b->cols[1], b->nrows, buf, strlen(buf), NULL);
        cf_col_set_bytes(&b->cols[2], b->nrows, op, strlen(op), NULL);
        cf_col_set_i64(&b->cols[3], b->nrows, 100 + i, NULL);
        if (b->ncols > 4)
            cf_col_set_bytes(&b->cols[4], b->nrows, "gold", 4, NULL);
        cf_batch_end_row(b, NULL);
    }
}

static cf_sink *open_sink(const char *loc, cf_mode mode, cf_err *e)
{
    cf_sink_config cfg = { .kind = "iceberg", .location = loc, .table_name = "t", .mode = mode,
                           .codec = CF_CODEC_ZSTD, .store = &s3cfg, .catalog = &catcfg };
    return cf_sink_open(&cfg, e);
}

/* Commit rows [from, to) as offsets [start, to) of partition 0 (start -1:
 * wherever the table is). */
static int commit_range(cf_sink *k, cf_batch *b, int64_t start, int64_t from, int64_t to, int64_t *v, cf_err *e)
{
    cf_offsets s = { 0 }, end = { 0 };
    int rc;

    fill(b, from, to);
    cf_offsets_put(&end, TOPIC, 0, to, NULL);
    if (start >= 0)
        cf_offsets_put(&s, TOPIC, 0, start, NULL);
    rc = commit_b(k, b, start >= 0 ? &s : NULL, &end, v, e);
    cf_offsets_free(&s);
    cf_offsets_free(&end);
    return rc;
}

typedef struct rows_ctx { int64_t n, id_sum, lsn_sum; int nulls; } rows_ctx;

static int rows_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    rows_ctx *r = ctx;
    (void)file;
    (void)pos;
    (void)err;
    for (size_t i = 0; i < rows->nrows; i++) {
        r->n++;
        if (!cf_col_valid(&rows->cols[0], i) || !cf_col_valid(&rows->cols[3], i)) {
            r->nulls++;
            continue;
        }
        r->id_sum += cf_col_i64(&rows->cols[0], i);
        r->lsn_sum += cf_col_i64(&rows->cols[3], i);
    }
    return 0;
}

/* The live rows of the table's current snapshot, read by field id. */
static int scan_table(cf_ice_table *t, rows_ctx *r, cf_err *e)
{
    cf_schema *s = cf_ice_schema_from_json(t->meta, -1, e);
    int rc = s ? cf_ice_scan(st, cf_ice_snapshot(t->meta, -1), s, NULL, 0, rows_fn, r, e) : -1;
    cf_schema_free(s);
    return rc;
}

static int64_t field_id(json_t *meta, const char *name)
{
    cf_schema *s = cf_ice_schema_from_json(meta, -1, NULL);
    int k = s ? cf_schema_find(s, name) : -1;
    int64_t id = k >= 0 ? s->fields[k].field_id : -1;
    cf_schema_free(s);
    return id;
}

static cf_ice_catalog *open_cat(const char *loc)
{
    cf_err e = { 0 };
    cf_ice_catalog *c = cf_ice_catalog_open(&catcfg, loc, NULL, st, &e);
    if (!c)
        fprintf(stderr, "  open catalog %s: %s\n", loc, e.msg);
    return c;
}

/* ---- the sink through the catalog -------------------------------------- */

static void test_sink_create_commit_reload(void)
{
    char loc[400];
    cf_schema *sch;
    cf_batch *b;
    cf_sink *k, *k2;
    cf_offsets have = { 0 };
    cf_ice_catalog *c;
    cf_ice_table t = { 0 };
    cf_err e = { 0 };
    int64_t v = 0;
    rows_ctx r = { 0 };

    if (!up())
        return;
    table_loc(loc, sizeof loc, "people");
    sch = people_schema(false);
    b = cf_batch_new(sch, NULL);
    if (!(k = open_sink(loc, CF_MODE_UPSERT, &e))) {
        fprintf(stderr, "  open sink: %s\n", e.msg);
        CHECK(0);
        goto out;
    }
    CHECK(cf_sink_offsets(k, &have, &e) == 0 && have.n == 0);
    /* Created (version 1, no snapshot), then the first snapshot (2). */
    CHECK(commit_range(k, b, -1, 0, 5, &v, &e) == 0);
    CHECK_EQ_INT(v, 2);
    CHECK(commit_range(k, b, -1, 5, 8, &v, &e) == 0);
    CHECK_EQ_INT(v, 3);
    if (e.code)
        fprintf(stderr, "  %s\n", e.msg);
    cf_sink_close(k);

    /* Another process: offsets and rows come back through the catalog. */
    if (!(k2 = open_sink(loc, CF_MODE_UPSERT, &e)) || cf_sink_offsets(k2, &have, &e)) {
        fprintf(stderr, "  reopen: %s\n", e.msg);
        CHECK(0);
        cf_sink_close(k2);
        goto out;
    }
    CHECK_EQ_INT(cf_offsets_get(&have, TOPIC, 0), 8);
    /* The fence holds through the catalog: a batch from offset 5 again is refused. */
    CHECK(commit_range(k2, b, 5, 5, 8, &v, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_FENCED);
    cf_err_clear(&e);
    CHECK(commit_range(k2, b, 8, 8, 10, &v, &e) == 0);
    CHECK_EQ_INT(v, 4);
    cf_sink_close(k2);

    /* The ids the data files were written with are the table's: read by
     * field id, every row has its key and LSN (upsert: ids 0..4, the last
     * event of each, LSNs 105..109). */
    if (!(c = open_cat(loc))) {
        CHECK(0);
        goto out;
    }
    CHECK(cf_ice_catalog_load(c, &t, &e) == 0 && t.meta);
    if (t.meta) {
        CHECK_EQ_INT(t.version, 4);
        CHECK_EQ_INT(field_id(t.meta, "id"), 1);
        CHECK_EQ_INT(field_id(t.meta, "_source_lsn"), 4);
        CHECK(scan_table(&t, &r, &e) == 0);
        CHECK_EQ_INT(r.n, 5);
        CHECK_EQ_INT(r.nulls, 0);
        CHECK_EQ_INT(r.id_sum, 0 + 1 + 2 + 3 + 4);
        CHECK_EQ_INT(r.lsn_sum, 105 + 106 + 107 + 108 + 109);
        CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(t.meta, "properties"), "cdcflow.mode")),
                     "upsert");
        /* Time travel by version: 1 is the empty table, 2 the first snapshot. */
        cf_ice_table_free(&t);
        CHECK(cf_ice_catalog_load_version(c, 1, &t, &e) == 0 && t.meta);
        CHECK(t.meta && cf_ice_current_snapshot_id(t.meta) < 0);
        cf_ice_table_free(&t);
        CHECK(cf_ice_catalog_load_version(c, 2, &t, &e) == 0 && t.meta);
        CHECK(t.meta && json_array_size(json_object_get(t.meta, "snapshots")) == 1);
        cf_ice_table_free(&t);
        CHECK(cf_ice_catalog_load_version(c, 99, &t, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    }
    if (e.code && e.code != CF_E_NOTFOUND)
        fprintf(stderr, "  %s\n", e.msg);
    cf_ice_table_free(&t);
    cf_ice_catalog_close(c);
out:
    cf_offsets_free(&have);
    cf_batch_free(b);
    cf_schema_free(sch);
}

/* A column added by the rows: add-schema + set-current-schema through the
 * catalog, the new field id after the old ones, old rows reading null. */
static void test_sink_schema_evolution(void)
{
    char loc[400];
    cf_schema *s1 = people_schema(false), *s2 = people_schema(true);
    cf_batch *b1 = cf_batch_new(s1, NULL), *b2 = cf_batch_new(s2, NULL);
    cf_ice_catalog *c = NULL;
    cf_ice_table t = { 0 };
    cf_sink *k;
    cf_err e = { 0 };
    int64_t v = 0;

    if (!up())
        goto out;
    table_loc(loc, sizeof loc, "evolve");
    if (!(k = open_sink(loc, CF_MODE_APPEND, &e))) {
        fprintf(stderr, "  open sink: %s\n", e.msg);
        CHECK(0);
        goto out;
    }
    CHECK(commit_range(k, b1, -1, 0, 3, &v, &e) == 0);
    CHECK(commit_range(k, b2, -1, 3, 6, &v, &e) == 0);
    if (e.code)
        fprintf(stderr, "  %s\n", e.msg);
    CHECK_EQ_INT(v, 3);
    cf_sink_close(k);
    if (!(c = open_cat(loc)) || cf_ice_catalog_load(c, &t, &e) || !t.meta) {
        CHECK(0);
        goto out;
    }
    CHECK_EQ_INT(json_integer_value(json_object_get(t.meta, "current-schema-id")), 1);
    CHECK_EQ_INT(field_id(t.meta, "tier"), 5);
    CHECK_EQ_INT(json_integer_value(json_object_get(t.meta, "last-column-id")), 5);
    {
        rows_ctx r = { 0 };
        CHECK(scan_table(&t, &r, &e) == 0);
        CHECK_EQ_INT(r.n, 6);
        CHECK_EQ_INT(r.nulls, 0);
        CHECK_EQ_INT(r.lsn_sum, 100 + 101 + 102 + 103 + 104 + 105);
    }
out:
    cf_ice_table_free(&t);
    cf_ice_catalog_close(c);
    cf_batch_free(b1);
    cf_batch_free(b2);
    cf_schema_free(s1);
    cf_schema_free(s2);
}

/* ---- the catalog seam directly ------------------------------------------- */

/* A table document as the sink makes one (ids from `first_id`). */
static json_t *doc(const char *loc, int first_id)
{
    return json_pack("{s:i, s:s, s:i, s:[{s:s, s:i, s:[i], s:[{s:i, s:s, s:b, s:s}, {s:i, s:s, s:b, s:s}]}],"
                     " s:i, s:[{s:i, s:[]}], s:{s:s}, s:[], s:[], s:[]}",
                     "format-version", 2, "location", loc, "current-schema-id", 0,
                     "schemas", "type", "struct", "schema-id", 0, "identifier-field-ids", first_id,
                     "fields", "id", first_id, "name", "id", "required", 1, "type", "long",
                     "id", first_id + 1, "name", "v", "required", 0, "type", "string",
                     "default-spec-id", 0, "partition-specs", "spec-id", 0, "fields",
                     "properties", "keep", "1",
                     "snapshots", "snapshot-log", "metadata-log");
}

/* Commit snapshot sid on t (its manifest list need not exist: the catalog
 * does not read it). */
static int add_snapshot(cf_ice_catalog *c, cf_ice_table *t, int64_t sid, cf_err *e)
{
    json_t *meta = json_deep_copy(t->meta);
    int64_t parent = cf_ice_current_snapshot_id(meta);
    int64_t seq = json_integer_value(json_object_get(meta, "last-sequence-number")) + 1;
    cf_ice_change chg = { .base_snapshot_id = parent, .snapshot_id = sid };
    char ml[600];

    snprintf(ml, sizeof ml, "%s/metadata/snap-%lld-unit.avro", t->location, (long long)sid);
    cf_ice_add_snapshot(t, meta, sid, parent, seq, cf_now_ms(), ml,
                        json_pack("{s:s}", "operation", "append"));
    return cf_ice_catalog_commit(c, t, meta, &chg, e);
}

static void test_race_and_lost_answer(void)
{
    char loc[400];
    cf_ice_catalog *a = NULL, *b = NULL;
    cf_ice_table ta = { 0 }, tb = { 0 };
    cf_err e = { 0 };
    json_t *d;
    int64_t base_v;

    if (!up())
        return;
    table_loc(loc, sizeof loc, "race");
    if (!(a = open_cat(loc)) || !(b = open_cat(loc))) {
        CHECK(0);
        goto out;
    }
    CHECK(cf_ice_catalog_load(a, &ta, &e) == 0 && !ta.meta && ta.version == 0);
    d = doc(loc, 1);
    CHECK(cf_ice_catalog_create(a, &ta, d, &e) == 0 && ta.meta);
    json_decref(d);
    if (!ta.meta) {
        fprintf(stderr, "  create: %s\n", e.msg);
        goto out;
    }
    CHECK_EQ_INT(ta.version, 1);
    CHECK(cf_ice_catalog_load(b, &tb, &e) == 0 && tb.meta);
    base_v = tb.version;

    /* Two writers on one base: the first wins... */
    CHECK(add_snapshot(a, &ta, 1001, &e) == 0);
    CHECK_EQ_INT(ta.version, 2);
    CHECK_EQ_INT(cf_ice_current_snapshot_id(ta.meta), 1001);
    /* ...the second is a retriable conflict and keeps its base. */
    CHECK(add_snapshot(b, &tb, 2002, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(e.retriable);
    CHECK_EQ_INT(tb.version, base_v);
    CHECK(tb.meta && cf_ice_current_snapshot_id(tb.meta) < 0);
    cf_err_clear(&e);
    /* Reloaded, it commits on the winner. */
    cf_ice_table_free(&tb);
    CHECK(cf_ice_catalog_refresh(b, &tb, NULL, &e) == 0 && tb.meta);
    CHECK(add_snapshot(b, &tb, 2002, &e) == 0);
    CHECK_EQ_INT(tb.version, 3);
    CHECK(tb.meta && cf_ice_snapshot(tb.meta, 2002) &&
          json_integer_value(json_object_get(cf_ice_snapshot(tb.meta, 2002), "parent-snapshot-id")) == 1001);

    /* A commit whose answer was lost: it landed, and its retry (on the
     * same, now stale base) is refused by the server.  a still holds the
     * base that commit was built on: the same snapshot again is success,
     * with the catalog's table, not an error nor a second snapshot. */
    CHECK(add_snapshot(a, &ta, 2002, &e) == 0);
    if (e.code)
        fprintf(stderr, "  lost answer: %s\n", e.msg);
    CHECK_EQ_INT(ta.version, 3);
    CHECK(ta.meta && cf_ice_current_snapshot_id(ta.meta) == 2002);
    CHECK(ta.meta && json_array_size(json_object_get(ta.meta, "snapshots")) == 2);
    /* Not ours: still a conflict. */
    cf_ice_table_free(&ta);
    CHECK(cf_ice_catalog_load(a, &ta, &e) == 0);
    cf_ice_table_free(&tb);
    CHECK(cf_ice_catalog_load(b, &tb, &e) == 0);
    CHECK(add_snapshot(a, &ta, 3003, &e) == 0);
    CHECK(add_snapshot(b, &tb, 4004, &e) == -1 && e.code == CF_E_CONFLICT);
    cf_err_clear(&e);
out:
    cf_ice_table_free(&ta);
    cf_ice_table_free(&tb);
    cf_ice_catalog_close(a);
    cf_ice_catalog_close(b);
}

/* set/remove-properties and remove-snapshots travel as updates. */
static void test_properties_and_expiry(void)
{
    char loc[400];
    cf_ice_catalog *c = NULL;
    cf_ice_table t = { 0 };
    cf_ice_change chg = { .snapshot_id = -1, .properties_changed = true };
    cf_err e = { 0 };
    json_t *meta, *props, *d = NULL;

    if (!up())
        return;
    table_loc(loc, sizeof loc, "props");
    if (!(c = open_cat(loc)) || cf_ice_catalog_load(c, &t, &e) || !(d = doc(loc, 1)) ||
        cf_ice_catalog_create(c, &t, d, &e) || !t.meta || add_snapshot(c, &t, 11, &e) ||
        add_snapshot(c, &t, 12, &e)) {
        fprintf(stderr, "  setup: %s\n", e.msg);
        CHECK(0);
        goto out;
    }
    meta = json_deep_copy(t.meta);
    props = json_object_get(meta, "properties");
    json_object_del(props, "keep");
    json_object_set_new(props, "added", json_string("yes"));
    chg.base_snapshot_id = cf_ice_current_snapshot_id(meta);
    CHECK(cf_ice_catalog_commit(c, &t, meta, &chg, &e) == 0);
    cf_ice_table_free(&t);
    CHECK(cf_ice_catalog_load(c, &t, &e) == 0 && t.meta);
    props = json_object_get(t.meta, "properties");
    CHECK(!json_object_get(props, "keep"));
    CHECK_EQ_STR(json_string_value(json_object_get(props, "added")), "yes");

    /* Expire snapshot 11. */
    meta = json_deep_copy(t.meta);
    {
        json_t *snaps = json_object_get(meta, "snapshots"), *sn;
        size_t i;
        json_array_foreach(snaps, i, sn)
            if (json_integer_value(json_object_get(sn, "snapshot-id")) == 11) {
                json_array_remove(snaps, i);
                break;
            }
    }
    chg = (cf_ice_change){ .base_snapshot_id = 12, .snapshot_id = -1, .snapshots_removed = true };
    CHECK(cf_ice_catalog_commit(c, &t, meta, &chg, &e) == 0);
    cf_ice_table_free(&t);
    CHECK(cf_ice_catalog_load(c, &t, &e) == 0 && t.meta);
    CHECK(t.meta && !cf_ice_snapshot(t.meta, 11) && cf_ice_snapshot(t.meta, 12));
out:
    if (e.code)
        fprintf(stderr, "  %s\n", e.msg);
    json_decref(d);
    cf_ice_table_free(&t);
    cf_ice_catalog_close(c);
}

/* Creating by a commit: files written with ids the catalog does not keep
 * (it numbers from 1) are refused as corrupt, naming the column. */
static void test_create_renumbered_is_refused(void)
{
    char loc[400];
    cf_ice_catalog *c;
    cf_ice_table t = { 0 };
    cf_ice_change chg = { .base_snapshot_id = -1, .snapshot_id = -1, .properties_changed = true };
    cf_err e = { 0 };

    if (!up())
        return;
    table_loc(loc, sizeof loc, "renumbered");
    if (!(c = open_cat(loc))) {
        CHECK(0);
        return;
    }
    CHECK(cf_ice_catalog_load(c, &t, &e) == 0 && !t.meta);
    CHECK(cf_ice_catalog_commit(c, &t, doc(loc, 5), &chg, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CORRUPT);
    CHECK(strstr(e.msg, "column id has field id 5 here, 1 in the catalog") != NULL);
    if (!strstr(e.msg, "field id 5"))
        fprintf(stderr, "  %s\n", e.msg);
    cf_ice_table_free(&t);
    cf_err_clear(&e);
    /* With the catalog's own ids, a create by commit goes through: the
     * table (version 1), then its first snapshot on it (2). */
    table_loc(loc, sizeof loc, "bycommit");
    cf_ice_catalog_close(c);
    if (!(c = open_cat(loc))) {
        CHECK(0);
        return;
    }
    CHECK(cf_ice_catalog_load(c, &t, &e) == 0 && !t.meta);
    {
        json_t *meta = doc(loc, 1);
        char ml[600];
        snprintf(ml, sizeof ml, "%s/metadata/snap-77-unit.avro", loc);
        cf_ice_add_snapshot(&t, meta, 77, -1, 1, cf_now_ms(), ml, json_pack("{s:s}", "operation", "append"));
        chg.snapshot_id = 77;
        CHECK(cf_ice_catalog_commit(c, &t, meta, &chg, &e) == 0);
    }
    if (e.code)
        fprintf(stderr, "  %s\n", e.msg);
    CHECK(t.meta && t.version == 2 && cf_ice_current_snapshot_id(t.meta) == 77);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(t.meta, "properties"), "keep")), "1");
    cf_ice_table_free(&t);
    cf_ice_catalog_close(c);
}

static void test_names_from_location(void)
{
    cf_err e = { 0 };
    cf_catalog_config cfg = { .uri = "http://127.0.0.1:1" };

    /* No namespace part: refused before the catalog is asked. */
    CHECK(cf_ice_catalog_open(&cfg, "s3://bucket/t", NULL, test_store(), &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    cf_err_clear(&e);
    CHECK(cf_ice_catalog_open(&cfg, "s3://bucket", NULL, test_store(), &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    cf_err_clear(&e);
    /* A catalog that does not answer: one line naming it. */
    CHECK(cf_ice_catalog_open(&cfg, "s3://bucket/wh/ns/t", NULL, test_store(), &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_IO);
    CHECK(strstr(e.msg, "http://127.0.0.1:1") && !strchr(e.msg, '\n'));
}

CF_TEST_MAIN("ice_catalog_rest", T(test_names_from_location), T(test_sink_create_commit_reload),
             T(test_sink_schema_evolution),
             T(test_race_and_lost_answer), T(test_properties_and_expiry), T(test_create_renumbered_is_refused))
