/* catalog_rest.c - the Iceberg REST catalog behind the catalog seam: the
 * table at WAREHOUSE/NAMESPACE/TABLE is NAMESPACE.TABLE in the catalog, and
 * a commit is requirements (the base's table uuid and main's snapshot) plus
 * the updates that turn the base document into the new one (rest.h).
 *
 * Versions.  The server names each metadata file it writes; Apache
 * Iceberg's (and the catalogs built on its TableOperations) count them,
 * NNNNN-UUID.metadata.json from 00000 up, one per commit.  t->version is
 * that count plus one, so the first is 1 as in the directory catalog and
 * every commit adds one; a server that names files otherwise gets the
 * length of the metadata-log plus one (it stops growing at the log's cap,
 * write.metadata.previous-versions-max).  Old versions are read back by
 * their file in the metadata-log (time travel by --version). */
#include "table/iceberg/catalog_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/iceberg/iceberg_int.h"
#include "table/iceberg/rest.h"
#include "util/buf.h"
#include "util/log.h"


typedef struct rcat {
    cf_ice_rest *rest;
    char        *ns;        /* "db" or "db.schema" */
    char        *name;
} rcat;

/* ---- names and versions ------------------------------------------------- */

/* The namespace (second-to-last path component) and table (last) of an
 * absolute location without a trailing '/'.  CF_E_ARG when the path has
 * fewer than two components after the scheme and bucket. */
static int split_location(const char *loc, char **ns, char **name, cf_err *err)
{
    const char *path = strstr(loc, "://"), *last, *prev;

    /* s3://bucket/a/b: the path starts after the bucket. */
    path = path ? strchr(path + 3, '/') : loc;
    if (!path || !(last = strrchr(path, '/')) || last == path || !last[1])
        goto bad;
    for (prev = last - 1; prev > path && *prev != '/'; prev--)
        ;
    if (*prev != '/' || prev + 1 == last)
        goto bad;
    *ns = strndup(prev + 1, (size_t)(last - prev - 1));
    *name = strdup(last + 1);
    if (!*ns || !*name) {
        free(*ns);
        free(*name);
        *ns = *name = NULL;
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    return 0;
bad:
    return cf_err_set(err, CF_E_ARG, "%s: a table of a REST catalog is named by its location, "
                      "WAREHOUSE/NAMESPACE/TABLE, and this one has no NAMESPACE/TABLE part", loc);
}

/* The version a metadata file name says (see the top of the file), -1 when
 * it says none. */
static int64_t version_of_file(const char *file)
{
    const char *b = file ? strrchr(file, '/') : NULL;
    char *end;
    long long v;

    b = b ? b + 1 : file;
    if (!b)
        return -1;
    errno = 0;
    if (b[0] >= '0' && b[0] <= '9') {
        v = strtoll(b, &end, 10);
        return *end == '-' && !errno && v >= 0 && v < INT64_MAX ? v + 1 : -1;
    }
    if (b[0] == 'v' && b[1] >= '0' && b[1] <= '9') {
        v = strtoll(b + 1, &end, 10);
        return *end == '.' && !errno && v > 0 ? v : -1;
    }
    return -1;
}

static int64_t version_of(const char *meta_location, json_t *meta)
{
    int64_t v = version_of_file(meta_location);

    return v > 0 ? v : (int64_t)json_array_size(json_object_get(meta, "metadata-log")) + 1;
}

/* The table's location as its metadata records it, without a trailing '/'. */
static bool same_location(const char *ours, const char *theirs)
{
    size_t n = theirs ? strlen(theirs) : 0;

    while (n > 1 && theirs[n - 1] == '/')
        n--;
    return theirs && strlen(ours) == n && !strncmp(ours, theirs, n);
}

/* Make *t the table the catalog returned (rt's members stolen, also on
 * failure).  The sink writes its files under c->location, so a table the
 * catalog keeps elsewhere is refused rather than written around. */
static int adopt(cf_ice_catalog *c, cf_ice_table *t, cf_ice_rest_table *rt, cf_err *err)
{
    rcat *r = c->impl;
    const char *loc = json_string_value(json_object_get(rt->metadata, "location"));

    if (!same_location(c->location, loc)) {
        cf_err_set(err, CF_E_ARG, "%s: the catalog's table %s.%s is at %s, not here", c->location,
                   r->ns, r->name, loc ? loc : "(no location)");
        cf_ice_rest_table_free(rt);
        return -1;
    }
    json_decref(t->meta);
    free(t->meta_location);
    t->meta = rt->metadata;
    t->meta_location = rt->metadata_location;
    t->version = version_of(t->meta_location, t->meta);
    rt->metadata = NULL;
    rt->metadata_location = NULL;
    cf_ice_rest_table_free(rt);
    return 0;
}

/* ---- load --------------------------------------------------------------- */

static int r_load(cf_ice_catalog *c, cf_ice_table *t, cf_err *err)
{
    rcat *r = c->impl;
    cf_ice_rest_table rt = { 0 };
    cf_err e = { 0 };

    if (cf_ice_rest_load_table(r->rest, r->ns, r->name, &rt, &e)) {
        if (e.code == CF_E_NOTFOUND)
            return 0;                   /* no table (or namespace) yet: version 0 */
        if (err)
            *err = e;
        return cf_err_wrap(err, "%s", c->location);
    }
    return adopt(c, t, &rt, err);
}

/* Version v: the current one, or an older one the metadata-log names. */
static int r_load_version(cf_ice_catalog *c, int64_t v, cf_ice_table *t, cf_err *err)
{
    rcat *r = c->impl;
    json_t *e, *old;
    int64_t lo = -1;
    size_t i;

    if (r_load(c, t, err))
        return -1;
    if (!t->meta)
        return cf_err_set(err, CF_E_NOTFOUND, "%s: no table %s.%s in the catalog", c->location,
                          r->ns, r->name);
    if (t->version == v)
        return 0;
    json_array_foreach(json_object_get(t->meta, "metadata-log"), i, e) {
        const char *f = json_string_value(json_object_get(e, "metadata-file"));
        int64_t fv = version_of_file(f);
        if (fv > 0 && (lo < 0 || fv < lo))
            lo = fv;
        if (fv != v)
            continue;
        char *path = strdup(f);       /* f lives in t->meta, replaced below */
        if (!path)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        if (!(old = cf_ice_meta_read(c->st, path, err))) {
            free(path);
            return -1;
        }
        json_decref(t->meta);
        free(t->meta_location);
        t->meta = old;
        t->meta_location = path;
        t->version = v;
        return 0;
    }
    if (lo < 0)
        return cf_err_set(err, CF_E_NOTFOUND, "%s: metadata version %lld is not in the table's "
                          "metadata-log (the current version is %lld)", c->location, (long long)v,
                          (long long)t->version);
    return cf_err_set(err, CF_E_NOTFOUND, "%s: metadata version %lld is not in the table's "
                      "metadata-log (it has versions %lld to %lld)", c->location, (long long)v,
                      (long long)lo, (long long)t->version);
}

/* ---- create ------------------------------------------------------------- */

/* The element of meta[list] whose id_key equals meta[current_key]: the
 * current schema, the default spec. */
static json_t *current_of(const json_t *meta, const char *list, const char *id_key,
                          const char *current_key)
{
    json_int_t id = json_integer_value(json_object_get(meta, current_key));
    json_t *s;
    size_t i;

    json_array_foreach(json_object_get(meta, list), i, s)
        if (json_integer_value(json_object_get(s, id_key)) == id)
            return s;
    return NULL;
}

static json_t *current_schema(const json_t *meta)
{
    return current_of(meta, "schemas", "schema-id", "current-schema-id");
}

static json_t *default_spec(const json_t *meta)
{
    return current_of(meta, "partition-specs", "spec-id", "default-spec-id");
}

static json_t *field_named(const json_t *schema, const char *name)
{
    json_t *f;
    size_t i;

    json_array_foreach(json_object_get(schema, "fields"), i, f)
    {
        const char *fn = json_string_value(json_object_get(f, "name"));
        if (fn && !strcmp(fn, name))
            return f;
    }
    return NULL;
}

/* Two arrays of integers, a missing one as empty. */
static bool same_ints(const json_t *a, const json_t *b)
{
    if (json_array_size(a) != json_array_size(b))
        return false;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (json_integer_value(json_array_get(a, i)) != json_integer_value(json_array_get(b, i)))
            return false;
    return true;
}

static const char *name_of(const json_t *f)
{
    const char *n = json_string_value(json_object_get(f, "name"));
    return n ? n : "?";
}

/* Whether the catalog kept the ids of `want` (the document files were
 * written for) in `got` (the table it created): columns, identifier fields
 * and the default partition spec.  false with the first difference in why. */
static bool same_ids(const json_t *want, const json_t *got, char *why, size_t n)
{
    const json_t *ws = current_schema(want), *gs = current_schema(got);
    const json_t *wp = default_spec(want), *gp = default_spec(got);
    json_t *f, *g;
    size_t i;

    if (!ws || !gs) {
        snprintf(why, n, "%s has no current schema", ws ? "the catalog's table" : "the document");
        return false;
    }
    if (json_array_size(json_object_get(ws, "fields")) != json_array_size(json_object_get(gs, "fields"))) {
        snprintf(why, n, "%zu columns here, %zu in the catalog", json_array_size(json_object_get(ws, "fields")),
                 json_array_size(json_object_get(gs, "fields")));
        return false;
    }
    json_array_foreach(json_object_get(ws, "fields"), i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_int_t a = json_integer_value(json_object_get(f, "id"));
        if (!name || !(g = field_named(gs, name))) {
            snprintf(why, n, "column %s is missing in the catalog", name ? name : "?");
            return false;
        }
        if (json_integer_value(json_object_get(g, "id")) != a) {
            snprintf(why, n, "column %s has field id %lld here, %lld in the catalog", name, (long long)a,
                     (long long)json_integer_value(json_object_get(g, "id")));
            return false;
        }
    }
    if (!same_ints(json_object_get(ws, "identifier-field-ids"), json_object_get(gs, "identifier-field-ids"))) {
        snprintf(why, n, "the identifier field ids differ");
        return false;
    }
    if (json_integer_value(json_object_get(want, "default-spec-id")) !=
        json_integer_value(json_object_get(got, "default-spec-id"))) {
        snprintf(why, n, "partition spec id %lld here, %lld in the catalog",
                 (long long)json_integer_value(json_object_get(want, "default-spec-id")),
                 (long long)json_integer_value(json_object_get(got, "default-spec-id")));
        return false;
    }
    if (json_array_size(json_object_get(wp, "fields")) != json_array_size(json_object_get(gp, "fields"))) {
        snprintf(why, n, "%zu partition fields here, %zu in the catalog",
                 json_array_size(json_object_get(wp, "fields")), json_array_size(json_object_get(gp, "fields")));
        return false;
    }
    json_array_foreach(json_object_get(wp, "fields"), i, f) {
        g = json_array_get(json_object_get(gp, "fields"), i);
        static const char *const keys[] = { "source-id", "field-id" };
        for (int k = 0; k < 2; k++)
            if (json_integer_value(json_object_get(f, keys[k])) != json_integer_value(json_object_get(g, keys[k]))) {
                snprintf(why, n, "partition field %s has %s %lld here, %lld in the catalog",
                         name_of(f), keys[k],
                         (long long)json_integer_value(json_object_get(f, keys[k])),
                         (long long)json_integer_value(json_object_get(g, keys[k])));
                return false;
            }
        if (!json_equal(json_object_get(f, "transform"), json_object_get(g, "transform"))) {
            snprintf(why, n, "partition field %s has another transform in the catalog",
                     name_of(f));
            return false;
        }
    }
    return true;
}

/* Create the namespace (one that exists is fine) and the table from meta's
 * schema, spec and properties at c->location; *rt the table as created.
 * A table that exists already is loaded into *rt instead. */
static int create_table(cf_ice_catalog *c, const json_t *meta, cf_ice_rest_table *rt, cf_err *err)
{
    rcat *r = c->impl;
    cf_ice_rest_create spec = {
        .schema = current_schema(meta),
        .partition_spec = default_spec(meta),
        .properties = json_object_get(meta, "properties"),
        .location = c->location,
    };
    cf_err e = { 0 };

    if (!spec.schema)
        return cf_err_set(err, CF_E_ARG, "%s: creating %s.%s: the document has no current schema",
                          c->location, r->ns, r->name);
    if (cf_ice_rest_create_namespace(r->rest, r->ns, NULL, err) ||
        (cf_ice_rest_create_table(r->rest, r->ns, r->name, &spec, rt, &e) && e.code != CF_E_CONFLICT)) {
        if (e.code && err)
            *err = e;
        return cf_err_wrap(err, "%s", c->location);
    }
    if (e.code == CF_E_CONFLICT) {
        /* Another writer created it first (or our earlier attempt did). */
        cf_err_clear(&e);
        if (cf_ice_rest_load_table(r->rest, r->ns, r->name, rt, err))
            return cf_err_wrap(err, "%s", c->location);
    }
    return 0;
}

static int r_create(cf_ice_catalog *c, cf_ice_table *t, const json_t *meta, cf_err *err)
{
    cf_ice_rest_table rt = { 0 };

    if (t->meta)
        return 0;
    if (create_table(c, meta, &rt, err))
        return -1;
    return adopt(c, t, &rt, err);
}

/* ---- commit ------------------------------------------------------------- */

/* Whether snapshot sid is main's or one of its ancestors in meta. */
static bool in_main_history(json_t *meta, int64_t sid)
{
    int64_t id = cf_ice_current_snapshot_id(meta);

    for (int guard = 0; id >= 0 && guard < 1000000; guard++) {
        json_t *sn = cf_ice_snapshot(meta, id), *pid;
        if (id == sid)
            return true;
        if (!sn)
            return false;
        pid = json_object_get(sn, "parent-snapshot-id");
        id = json_is_integer(pid) ? json_integer_value(pid) : -1;
    }
    return false;
}

static int append(json_t *arr, json_t *item)
{
    return item ? json_array_append_new(arr, item) : -1;
}

/* set-properties / remove-properties taking base's properties to meta's
 * (removals only when `remove`: a table the catalog just created carries
 * defaults of its own, which the document does not know). */
static int property_updates(const json_t *base, const json_t *meta, bool remove, json_t *upd)
{
    json_t *bp = json_object_get(base, "properties"), *mp = json_object_get(meta, "properties");
    json_t *set = json_object(), *gone = json_array(), *v;
    const char *k;
    int rc = -1;

    if (!set || !gone)
        goto out;
    json_object_foreach(mp, k, v)
        if (json_is_string(v) && !json_equal(v, json_object_get(bp, k)) && json_object_set(set, k, v))
            goto out;
    json_object_foreach(bp, k, v)
        if (remove && !json_object_get(mp, k) && json_array_append_new(gone, json_string(k)))
            goto out;
    /* The builders steal their argument, also when they fail. */
    if (json_object_size(set)) {
        json_t *u = cf_ice_rest_upd_set_properties(set);
        set = NULL;
        if (append(upd, u))
            goto out;
    }
    if (json_array_size(gone)) {
        json_t *u = cf_ice_rest_upd_remove_properties(gone);
        gone = NULL;
        if (append(upd, u))
            goto out;
    }
    rc = 0;
out:
    json_decref(set);
    json_decref(gone);
    return rc;
}

/* remove-snapshots for the snapshots of base that meta no longer has. */
static int removed_snapshots(const json_t *base, json_t *meta, json_t *upd)
{
    json_t *ids = json_array(), *sn;
    size_t i;

    if (!ids)
        return -1;
    json_array_foreach(json_object_get(base, "snapshots"), i, sn) {
        json_int_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
        if (!cf_ice_snapshot(meta, id) && json_array_append_new(ids, json_integer(id))) {
            json_decref(ids);
            return -1;
        }
    }
    if (!json_array_size(ids)) {
        json_decref(ids);
        return 0;
    }
    return append(upd, json_pack("{s:s,s:o}", "action", "remove-snapshots", "snapshot-ids", ids));
}

/* The requirements and updates of a commit of meta on base (see catalog.h's
 * cf_ice_change), or -1 out of memory. */
static int build_commit(const json_t *base, json_t *meta, const cf_ice_change *chg, bool created,
                        json_t **req, json_t **upd)
{
    const char *uuid = json_string_value(json_object_get(base, "table-uuid"));

    *req = json_array();
    *upd = json_array();
    if (!*req || !*upd)
        return -1;
    if ((uuid && append(*req, cf_ice_rest_req_table_uuid(uuid))) ||
        append(*req, cf_ice_rest_req_ref_snapshot("main", chg->base_snapshot_id)))
        return -1;
    if (chg->schema_added) {
        json_t *s = current_schema(meta);
        json_t *lc = json_object_get(meta, "last-column-id");
        if (!s || append(*upd, cf_ice_rest_upd_add_schema(json_deep_copy(s), lc ? (int)json_integer_value(lc) : -1)) ||
            append(*upd, cf_ice_rest_upd_set_current_schema(-1)))
            return -1;
    }
    if (chg->snapshot_id >= 0) {
        json_t *sn = cf_ice_snapshot(meta, chg->snapshot_id);
        if (!sn || append(*upd, cf_ice_rest_upd_add_snapshot(json_deep_copy(sn))) ||
            append(*upd, cf_ice_rest_upd_set_branch("main", chg->snapshot_id)))
            return -1;
    }
    if (chg->properties_changed && property_updates(base, meta, !created, *upd))
        return -1;
    if (chg->snapshots_removed && removed_snapshots(base, meta, *upd))
        return -1;
    return 0;
}

/* After a failed commit that added snapshot sid: reload, and if main's
 * history has sid the commit landed (its answer was lost, or a retry of
 * it lost to itself): *t becomes the table and 1 is returned.  0: it did
 * not land (or the reload failed: the first error stands). */
static int landed(cf_ice_catalog *c, cf_ice_table *t, int64_t sid)
{
    cf_ice_table now = { 0 };
    cf_err ignore = { 0 };
    int yes = 0;

    if (sid < 0 || !(now.location = strdup(t->location)))
        return 0;
    if (r_load(c, &now, &ignore) == 0 && now.meta && in_main_history(now.meta, sid)) {
        cf_ice_table_free(t);
        *t = now;
        cf_log(CF_LOG_INFO, "iceberg", "%s: the answer to the commit of snapshot %lld was lost; "
               "the catalog has it", t->location, (long long)sid);
        return 1;
    }
    cf_ice_table_free(&now);
    return yes;
}

static int r_commit(cf_ice_catalog *c, cf_ice_table *t, json_t *meta, const cf_ice_change *chg,
                    cf_err *err)
{
    rcat *r = c->impl;
    cf_ice_rest_table created = { 0 }, rt = { 0 };
    json_t *req = NULL, *upd = NULL;
    const json_t *base = t->meta;
    char why[300];
    cf_err e = { 0 };
    int rc = -1;

    if (!chg) {
        json_decref(meta);
        return cf_err_set(err, CF_E_ARG, "%s: a REST catalog commit needs its change", c->location);
    }
    if (!base) {
        /* Create, then check that the files written for meta fit the table
         * the catalog made, then commit the first snapshot on it. */
        if (create_table(c, meta, &created, err))
            goto out;
        if (!same_ids(meta, created.metadata, why, sizeof why)) {
            cf_err_set(err, CF_E_CORRUPT, "%s: the catalog created %s.%s with other ids than the files "
                       "were written with (%s)", c->location, r->ns, r->name, why);
            goto out;
        }
        base = created.metadata;
    }
    if (build_commit(base, meta, chg, created.metadata != NULL, &req, &upd)) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    if (!json_array_size(upd)) {
        /* Nothing to change (a commit that only re-stated the base): the
         * table is the base, or the one just created. */
        rc = created.metadata ? adopt(c, t, &created, err) : 0;
        goto out;
    }
    rc = cf_ice_rest_commit(r->rest, r->ns, r->name, req, upd, &rt, &e);
    req = upd = NULL;
    if (rc == 0) {
        rc = adopt(c, t, &rt, err);
        goto out;
    }
    if ((e.code == CF_E_CONFLICT || e.code == CF_E_HTTP || e.code == CF_E_IO) &&
        landed(c, t, chg->snapshot_id)) {
        rc = 0;
        goto out;
    }
    if (err)
        *err = e;
    cf_err_wrap(err, "%s", c->location);
    if (e.code == CF_E_CONFLICT && err)
        err->retriable = true;
out:
    json_decref(req);
    json_decref(upd);
    json_decref(meta);
    cf_ice_rest_table_free(&created);
    return rc;
}

/* ---- open and close ----------------------------------------------------- */

static void r_close(cf_ice_catalog *c)
{
    rcat *r = c->impl;

    if (!r)
        return;
    cf_ice_rest_close(r->rest);
    free(r->ns);
    free(r->name);
    free(r);
    c->impl = NULL;
}

static const cf_ice_catalog_ops rest_ops = {
    .name = "REST",
    .load = r_load,
    .load_version = r_load_version,
    .changed = NULL,                /* asking costs a load: refresh loads */
    .create = r_create,
    .commit = r_commit,
    .close = r_close,
};

int cf_ice_rest_catalog_init(cf_ice_catalog *c, const cf_catalog_config *cfg, cf_err *err)
{
    cf_ice_rest_config rc = {
        .uri = cfg->uri,
        .warehouse = cfg->warehouse,
        .credential = cfg->credential,
        .token = cfg->token,
        .oauth2_server_uri = cfg->oauth2_server_uri,
        .scope = cfg->scope,
    };
    rcat *r = calloc(1, sizeof *r);

    if (!r)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (split_location(c->location, &r->ns, &r->name, err))
        goto fail;
    if (!(r->rest = cf_ice_rest_open(&rc, err))) {
        cf_err_wrap(err, "%s: Iceberg REST catalog %s", c->location, cfg->uri);
        goto fail;
    }
    c->impl = r;
    c->ops = &rest_ops;
    return 0;
fail:
    free(r->ns);
    free(r->name);
    free(r);
    return -1;
}
