/* snapshot.c - the state of a Delta table at a version, replayed from the
 * newest checkpoint plus the JSON commits after it: protocol, metadata,
 * live files and txn (application transaction) versions. */
#include "table/delta/delta_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

cf_delta_snap *cf_delta_snap_new(cf_store *st, const char *root, cf_err *err)
{
    cf_delta_snap *s = calloc(1, sizeof *s);
    size_t n = strlen(root);

    /* "s3://b/t/" and "s3://b/t" are one table: paths join with one '/' */
    while (n > 1 && root[n - 1] == '/')
        n--;
    if (!s || !(s->root = strndup(root, n)) || !(s->by_path = cf_delta_map_new())) {
        if (s) {
            free(s->root);
            free(s);
        }
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    s->st = st;
    if (!st) {
        if (!(s->st = cf_store_open(s->root, NULL, err))) {
            cf_delta_map_free(s->by_path);
            free(s->root);
            free(s);
            return NULL;
        }
        s->own_st = true;
    }
    s->version = -1;
    s->ckpt_version = -1;
    s->last_ts = -1;
    s->checkpoint_interval = 10;
    return s;
}

void cf_delta_pv_free(cf_delta_pv *pv)
{
    for (int i = 0; i < pv->n; i++) {
        free(pv->keys[i]);
        free(pv->vals[i]);
    }
    free(pv->keys);
    free(pv->vals);
    memset(pv, 0, sizeof *pv);
}

static void file_free(cf_delta_file *f)
{
    free(f->path);
    free(f->stats);
    cf_delta_pv_free(&f->pv);
    cf_delta_dv_free(&f->dv);
    memset(f, 0, sizeof *f);
}

static void meta_clear(cf_delta_snap *s)
{
    json_decref(s->metadata);
    s->metadata = NULL;
    cf_schema_free(s->schema);
    s->schema = NULL;
    for (int i = 0; i < s->npart; i++)
        free(s->part_cols[i]);
    free(s->part_cols);
    s->part_cols = NULL;
    s->npart = 0;
}

void cf_delta_snap_free(cf_delta_snap *s)
{
    if (!s)
        return;
    meta_clear(s);
    json_decref(s->protocol);
    for (size_t i = 0; i < s->nfiles; i++)
        file_free(&s->files[i]);
    free(s->files);
    cf_delta_map_free(s->by_path);
    for (int i = 0; i < s->ntxns; i++)
        free(s->txns[i].app_id);
    free(s->txns);
    free(s->root);
    if (s->own_st)
        cf_store_close(s->st);
    free(s);
}

const char *cf_delta_pv_get(const cf_delta_pv *pv, const char *col, bool *present)
{
    for (int i = 0; i < pv->n; i++)
        if (!strcmp(pv->keys[i], col)) {
            if (present)
                *present = true;
            return pv->vals[i];
        }
    if (present)
        *present = false;
    return NULL;
}

cf_delta_file *cf_delta_snap_file(const cf_delta_snap *s, const char *path)
{
    int64_t slot;
    if (!cf_delta_map_get(s->by_path, path, strlen(path), &slot))
        return NULL;
    return &s->files[slot];
}

int64_t cf_delta_snap_txn(const cf_delta_snap *s, const char *app_id)
{
    for (int i = 0; i < s->ntxns; i++)
        if (!strcmp(s->txns[i].app_id, app_id))
            return s->txns[i].version;
    return -1;
}

/* ---- actions ----------------------------------------------------------- */

static int parse_pv(json_t *obj, cf_delta_pv *pv, cf_err *err)
{
    const char *k;
    json_t *v;
    size_t n;

    memset(pv, 0, sizeof *pv);
    if (!obj || json_is_null(obj))
        return 0;
    if (!json_is_object(obj))
        return cf_err_set(err, CF_E_CORRUPT, "partitionValues is not an object");
    n = json_object_size(obj);
    if (!n)
        return 0;
    pv->keys = calloc(n, sizeof *pv->keys);
    pv->vals = calloc(n, sizeof *pv->vals);
    if (!pv->keys || !pv->vals)
        goto oom;
    json_object_foreach(obj, k, v) {
        if (!json_is_string(v) && !json_is_null(v)) {
            cf_delta_pv_free(pv);
            return cf_err_set(err, CF_E_CORRUPT, "partition value of '%s' is not a string", k);
        }
        if (!(pv->keys[pv->n] = strdup(k)))
            goto oom;
        if (json_is_string(v) && !(pv->vals[pv->n] = strdup(json_string_value(v)))) {
            free(pv->keys[pv->n]);
            goto oom;
        }
        pv->n++;
    }
    return 0;
oom:
    cf_delta_pv_free(pv);
    return cf_err_set(err, CF_E_NOMEM, "out of memory");
}

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int apply_protocol(cf_delta_snap *s, json_t *p, cf_err *err)
{
    int r = (int)jint(p, "minReaderVersion", -1), w = (int)jint(p, "minWriterVersion", -1);
    json_t *feats = json_object_get(p, "readerFeatures");

    if (r < 1 || w < 1)
        return cf_err_set(err, CF_E_CORRUPT, "protocol action without reader/writer versions");
    /* Reader 2 means column mapping; reader 3 lists features: we read plain
     * files only, so accept just the features that change nothing for us. */
    if (r == 2)
        return cf_err_set(err, CF_E_UNSUPPORTED, "table needs reader version 2 (column mapping)");
    if (r > 3)
        return cf_err_set(err, CF_E_UNSUPPORTED, "table needs reader version %d", r);
    if (r == 3 && json_is_array(feats)) {
        size_t i;
        json_t *f;
        json_array_foreach(feats, i, f) {
            const char *name = json_string_value(f);
            /* typeWidening: old files hold narrower values, which the
             * reader widens by column (cf_col_copy); deletionVectors: every
             * read of a file skips the rows its vector deletes */
            if (!name || (strcmp(name, "timestampNtz") && strcmp(name, "vacuumProtocolCheck") &&
                          strcmp(name, "typeWidening") && strcmp(name, "deletionVectors")))
                return cf_err_set(err, CF_E_UNSUPPORTED, "table needs reader feature '%s'",
                                  name ? name : "?");
        }
    }
    s->min_reader = r;
    s->min_writer = w;
    json_decref(s->protocol);
    if (!(s->protocol = json_deep_copy(p)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    return 0;
}

int cf_delta_snap_writable(const cf_delta_snap *s, bool removes, cf_err *err)
{
    /* What our commits honour: writer 2 appendOnly/invariants (we add no
     * invariants and check below), 3 CHECK constraints (refused below),
     * 4 change data feed and generated columns (refused below). */
    /* deletionVectors: a remove names the vector of the file it retires,
     * rewrites drop the rows it deletes, and adds keep numRecords exact.
     * checkConstraints and generatedColumns: listed by every upgrade from
     * writer 3 or 4 to 7; a table that uses them is refused below.
     * timestampNtz: zone-less values are written as they are. */
    static const char *const ok_features[] = { "appendOnly", "invariants", "changeDataFeed", "typeWidening",
                                               "deletionVectors", "checkConstraints", "generatedColumns",
                                               "timestampNtz", NULL };
    json_t *conf = s->metadata ? json_object_get(s->metadata, "configuration") : NULL;
    const char *k;
    json_t *v;

    if (s->version < 0)
        return 0;
    if (s->min_writer > 4 && s->min_writer != 7)
        return cf_err_set(err, CF_E_UNSUPPORTED, "%s needs writer version %d (cdcflow writes 4)", s->root,
                          s->min_writer);
    if (s->min_writer == 7) {
        json_t *feats = json_object_get(s->protocol, "writerFeatures");
        size_t i;
        json_t *f;
        json_array_foreach(feats, i, f) {
            const char *name = json_string_value(f);
            bool ok = false;
            for (int q = 0; name && ok_features[q] && !ok; q++)
                ok = !strcmp(name, ok_features[q]);
            if (!ok)
                return cf_err_set(err, CF_E_UNSUPPORTED, "%s needs writer feature '%s'", s->root,
                                  name ? name : "?");
        }
    }
    json_object_foreach(conf, k, v) {
        if (!strncmp(k, "delta.constraints.", 18))
            return cf_err_set(err, CF_E_UNSUPPORTED, "%s has CHECK constraint %s, which cdcflow does not "
                              "evaluate", s->root, k + 18);
        if (removes && !strcmp(k, "delta.appendOnly") && json_is_string(v) && !strcmp(json_string_value(v), "true"))
            return cf_err_set(err, CF_E_UNSUPPORTED, "%s is append-only (delta.appendOnly): upsert mode "
                              "would remove rows", s->root);
    }
    if (s->metadata) {
        const char *ss = json_string_value(json_object_get(s->metadata, "schemaString"));
        if (ss && (strstr(ss, "delta.generationExpression") || strstr(ss, "delta.identity")))
            return cf_err_set(err, CF_E_UNSUPPORTED, "%s has generated or identity columns, which cdcflow "
                              "does not compute", s->root);
        if (ss && strstr(ss, "delta.invariants"))
            return cf_err_set(err, CF_E_UNSUPPORTED, "%s has column invariants, which cdcflow does not "
                              "evaluate", s->root);
    }
    return 0;
}

static int apply_metadata(cf_delta_snap *s, json_t *m, cf_err *err)
{
    const char *ss = jstr(m, "schemaString");
    json_t *pc = json_object_get(m, "partitionColumns"), *conf = json_object_get(m, "configuration");
    cf_schema *schema;
    size_t i;
    json_t *v;

    if (!ss)
        return cf_err_set(err, CF_E_CORRUPT, "metaData action without schemaString");
    if (!(schema = cf_delta_schema_parse(ss, err)))
        return cf_err_wrap(err, "metaData schemaString");
    meta_clear(s);
    s->schema = schema;
    s->metadata = json_deep_copy(m);
    if (!s->metadata)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (json_is_array(pc) && json_array_size(pc)) {
        if (!(s->part_cols = calloc(json_array_size(pc), sizeof *s->part_cols)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        json_array_foreach(pc, i, v) {
            if (!json_is_string(v))
                return cf_err_set(err, CF_E_CORRUPT, "partitionColumns entry is not a string");
            if (cf_schema_find(schema, json_string_value(v)) < 0)
                return cf_err_set(err, CF_E_CORRUPT, "partition column '%s' is not in the schema",
                                  json_string_value(v));
            if (!(s->part_cols[s->npart] = strdup(json_string_value(v))))
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            s->npart++;
        }
    }
    s->cdf_enabled = false;
    s->checkpoint_interval = 10;
    if (json_is_object(conf)) {
        const char *cdf = jstr(conf, "delta.enableChangeDataFeed");
        const char *ci = jstr(conf, "delta.checkpointInterval");
        s->cdf_enabled = cdf && !strcmp(cdf, "true");
        if (ci && atoi(ci) > 0)
            s->checkpoint_interval = atoi(ci);
    }
    return 0;
}

static int apply_add(cf_delta_snap *s, json_t *a, cf_err *err)
{
    const char *path = jstr(a, "path"), *stats = jstr(a, "stats");
    cf_delta_file f = { 0 };
    int64_t slot;

    if (!path || !*path)
        return cf_err_set(err, CF_E_CORRUPT, "add action without a path");
    if (cf_delta_dv_parse(json_object_get(a, "deletionVector"), &f.dv, err))
        return cf_err_wrap(err, "%s", path);
    if (parse_pv(json_object_get(a, "partitionValues"), &f.pv, err)) {
        file_free(&f);
        return -1;
    }
    f.size = jint(a, "size", 0);
    f.mtime = jint(a, "modificationTime", 0);
    f.data_change = json_is_true(json_object_get(a, "dataChange"));
    f.live = true;
    f.num_records = stats ? cf_delta_stats_num_records(stats) : -1;
    if (!(f.path = strdup(path)) || (stats && !(f.stats = strdup(stats))))
        goto oom;
    if (cf_delta_map_get(s->by_path, path, strlen(path), &slot)) {
        /* Re-adding a live path replaces it (the protocol's reconciliation).
         * With another deletion vector it is another logical file: the old
         * one dies in its slot and the new one takes a slot of its own, so
         * whoever tracks slots (the key index) sees the rows change. */
        if (cf_delta_dv_same(&s->files[slot].dv, &f.dv)) {
            file_free(&s->files[slot]);
            s->files[slot] = f;
            return 0;
        }
        s->files[slot].live = false;
        s->files[slot].deleted_at = f.mtime;
        free(s->files[slot].stats);
        s->files[slot].stats = NULL;
        cf_delta_map_del(s->by_path, path, strlen(path));
        s->nlive--;
    }
    if (s->nfiles == s->afiles) {
        size_t na = s->afiles ? s->afiles * 2 : 64;
        cf_delta_file *nf = realloc(s->files, na * sizeof *nf);
        if (!nf)
            goto oom;
        s->files = nf;
        s->afiles = na;
    }
    if (cf_delta_map_put(s->by_path, path, strlen(path), (int64_t)s->nfiles))
        goto oom;
    s->files[s->nfiles++] = f;
    s->nlive++;
    return 0;
oom:
    file_free(&f);
    return cf_err_set(err, CF_E_NOMEM, "out of memory");
}

static int apply_remove(cf_delta_snap *s, json_t *r, cf_err *err)
{
    const char *path = jstr(r, "path");
    cf_delta_dv dv;
    int64_t slot;
    bool same;

    if (!path)
        return cf_err_set(err, CF_E_CORRUPT, "remove action without a path");
    if (!cf_delta_map_get(s->by_path, path, strlen(path), &slot))
        return 0;   /* removing what is not there is a no-op (tombstone) */
    /* A logical file is (path, deletion vector): removing the file with
     * the old vector leaves the one with the new vector the same commit
     * adds (actions in a commit come in any order). */
    if (cf_delta_dv_parse(json_object_get(r, "deletionVector"), &dv, err))
        return cf_err_wrap(err, "%s", path);
    same = cf_delta_dv_same(&s->files[slot].dv, &dv);
    cf_delta_dv_free(&dv);
    if (!same)
        return 0;
    cf_delta_map_del(s->by_path, path, strlen(path));
    s->files[slot].live = false;
    s->files[slot].deleted_at = jint(r, "deletionTimestamp", 0);
    free(s->files[slot].stats);
    s->files[slot].stats = NULL;
    s->nlive--;
    return 0;
}

static int apply_txn(cf_delta_snap *s, json_t *t, cf_err *err)
{
    const char *app = jstr(t, "appId");
    json_t *v = json_object_get(t, "version");

    if (!app || !json_is_integer(v))
        return cf_err_set(err, CF_E_CORRUPT, "txn action without appId/version");
    for (int i = 0; i < s->ntxns; i++)
        if (!strcmp(s->txns[i].app_id, app)) {
            s->txns[i].version = json_integer_value(v);
            s->txns[i].last_updated = jint(t, "lastUpdated", 0);
            return 0;
        }
    cf_delta_txn *nt = realloc(s->txns, sizeof *nt * (size_t)(s->ntxns + 1));
    if (!nt)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    s->txns = nt;
    if (!(nt[s->ntxns].app_id = strdup(app)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    nt[s->ntxns].version = json_integer_value(v);
    nt[s->ntxns].last_updated = jint(t, "lastUpdated", 0);
    s->ntxns++;
    return 0;
}

int cf_delta_snap_meta_view(const cf_delta_snap *s, json_t *meta, cf_delta_snap *view, cf_err *err)
{
    *view = *s;
    view->metadata = NULL;
    view->schema = NULL;
    view->part_cols = NULL;
    view->npart = 0;
    if (apply_metadata(view, meta, err)) {
        cf_delta_snap_view_free(view);
        return -1;
    }
    return 0;
}

void cf_delta_snap_view_free(cf_delta_snap *view)
{
    if (view)
        meta_clear(view);
}

int cf_delta_snap_apply_action(cf_delta_snap *s, json_t *action, cf_err *err)
{
    const char *k;
    json_t *v;

    if (!json_is_object(action))
        return cf_err_set(err, CF_E_CORRUPT, "log line is not a JSON object");
    json_object_foreach(action, k, v) {
        int rc = 0;
        if (!json_is_object(v)) {
            if (json_is_null(v))
                continue;   /* checkpoint rows carry null columns */
            return cf_err_set(err, CF_E_CORRUPT, "action '%s' is not an object", k);
        }
        if (!strcmp(k, "add"))
            rc = apply_add(s, v, err);
        else if (!strcmp(k, "remove"))
            rc = apply_remove(s, v, err);
        else if (!strcmp(k, "txn"))
            rc = apply_txn(s, v, err);
        else if (!strcmp(k, "metaData"))
            rc = apply_metadata(s, v, err);
        else if (!strcmp(k, "protocol"))
            rc = apply_protocol(s, v, err);
        else if (!strcmp(k, "commitInfo")) {
            int64_t ts = jint(v, "inCommitTimestamp", -1);
            s->last_ts = ts >= 0 ? ts : jint(v, "timestamp", -1);
        }
        /* cdc, domainMetadata, sidecar...: no effect on the live state */
        if (rc)
            return -1;
    }
    return 0;
}

int cf_delta_snap_apply(cf_delta_snap *s, const char *text, size_t len, int64_t version,
                        cf_err *err)
{
    size_t i = 0;
    long line = 0;

    s->last_ts = -1;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        line++;
        size_t k = i;
        while (k < j && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r'))
            k++;
        if (k < j) {
            json_error_t je;
            json_t *a = json_loadb(text + i, j - i, JSON_REJECT_DUPLICATES, &je);
            if (!a)
                return cf_err_setpos(err, CF_E_PARSE, (long)i, "commit %" PRId64 " line %ld: %s",
                                     version, line, je.text);
            int rc = cf_delta_snap_apply_action(s, a, err);
            json_decref(a);
            if (rc)
                return cf_err_wrap(err, "commit %" PRId64 " line %ld", version, line);
        }
        i = j + 1;
    }
    s->version = version;
    return 0;
}

static int apply_range(cf_delta_snap *s, const int64_t *v, size_t n, int64_t upto, cf_err *err)
{
    cf_buf b;
    int applied = 0;

    cf_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        if (v[i] <= s->version)
            continue;
        if (upto >= 0 && v[i] > upto)
            break;
        if (v[i] != s->version + 1) {
            cf_buf_free(&b);
            return cf_err_set(err, CF_E_CORRUPT, "%s: log has no commit %" PRId64 " (next is %" PRId64 ")",
                              s->root, s->version + 1, v[i]);
        }
        if (cf_delta_log_read(s->st, s->root, v[i], &b, err) ||
            cf_delta_snap_apply(s, (const char *)b.data, b.len, v[i], err)) {
            cf_buf_free(&b);
            return -1;
        }
        applied++;
    }
    cf_buf_free(&b);
    return applied;
}

/* Back to the empty state (version -1), keeping root and store: a
 * checkpoint that could not be read leaves a partial state behind. */
static int restart(cf_delta_snap *s, cf_err *err)
{
    cf_delta_snap *fresh = cf_delta_snap_new(s->st, s->root, err);
    cf_delta_snap old;

    if (!fresh)
        return -1;
    /* swap the contents, so the caller's pointer stays valid */
    old = *s;
    *s = *fresh;
    s->own_st = old.own_st;
    *fresh = old;
    fresh->own_st = false;
    cf_delta_snap_free(fresh);
    return 0;
}

cf_delta_snap *cf_delta_snap_load(cf_store *st, const char *root, int64_t version, cf_err *err)
{
    cf_delta_snap *s = cf_delta_snap_new(st, root, err);
    int64_t *v = NULL, ck;
    size_t n = 0;

    if (!s)
        return NULL;
    root = s->root;
    if (cf_delta_log_versions(s->st, root, &v, &n, err))
        goto fail;
    ck = cf_delta_log_last_checkpoint(s->st, root, version);
    if (ck >= 0) {
        cf_err e2;
        if (cf_delta_checkpoint_read(s, ck, &e2) == 0) {
            s->ckpt_version = ck;
        } else if (n == 0 || v[0] != 0) {
            /* JSON commits from 0 would do too; without them we are stuck. */
            cf_err_set(err, CF_E_UNSUPPORTED,
                       "%s: the log before version %" PRId64 " was cleaned up and checkpoint %" PRId64
                       " cannot be read: %s", root, n ? v[0] : ck + 1, ck, e2.msg);
            goto fail;
        } else {
            /* start over from version 0 */
            if (restart(s, err))
                goto fail;
            root = s->root;
        }
    }
    if (ck < 0 && n && v[0] > 0 && (version < 0 || version >= v[0])) {
        cf_err_set(err, CF_E_CORRUPT, "%s: the log starts at version %" PRId64 " (older commits were removed) "
                   "and no checkpoint holds the state before it", root, v[0]);
        goto fail;
    }
    if (version >= 0 && s->version < 0 && (n == 0 || v[0] > version)) {
        if (n && v[0] > 0)
            cf_err_set(err, CF_E_ARG, "%s has no version %" PRId64 " any more: the log starts at %" PRId64
                       " (older commits were removed by log retention)", root, version, v[0]);
        else
            cf_err_set(err, CF_E_ARG, "%s has no version %" PRId64, root, version);
        goto fail;
    }
    if (apply_range(s, v, n, version, err) < 0)
        goto fail;
    if (version >= 0 && s->version != version) {
        cf_err_set(err, CF_E_ARG, "%s has no version %" PRId64 " (latest is %" PRId64 ")", root,
                   version, s->version);
        goto fail;
    }
    if (s->version >= 0 && (!s->metadata || s->min_reader == 0)) {
        cf_err_set(err, CF_E_CORRUPT, "%s: log has no %s action", root,
                   s->metadata ? "protocol" : "metaData");
        goto fail;
    }
    free(v);
    return s;
fail:
    free(v);
    cf_delta_snap_free(s);
    return NULL;
}

int cf_delta_snap_catch_up(cf_delta_snap *s, cf_err *err)
{
    cf_buf b;
    cf_err e;
    int applied = 0;

    /* Ask for the next version instead of listing the log: a long-lived
     * table's _delta_log holds many thousand files.  Not found is the end. */
    cf_buf_init(&b, 0);
    for (;;) {
        if (cf_delta_log_read(s->st, s->root, s->version + 1, &b, &e)) {
            if (e.code == CF_E_NOTFOUND)
                break;
            if (err)
                *err = e;
            cf_buf_free(&b);
            return -1;
        }
        if (cf_delta_snap_apply(s, (const char *)b.data, b.len, s->version + 1, err)) {
            cf_buf_free(&b);
            return -1;
        }
        applied++;
    }
    cf_buf_free(&b);
    return applied;
}
