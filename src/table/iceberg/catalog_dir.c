/* catalog_dir.c - the directory catalog (Hadoop layout): version N of a
 * table is <location>/metadata/vN.metadata.json, written by put-if-absent
 * so that of two writers of N exactly one wins; version-hint.text names the
 * newest as a shortcut that readers verify by probing past it. */
#include "table/iceberg/catalog_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define MAX_HINT_BYTES 64

static char *meta_path(const char *location, int64_t v)
{
    size_t n = strlen(location) + 64;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/metadata/v%lld.metadata.json", location, (long long)v);
    return p;
}

/* N of a name "vN.metadata.json", 0 if it is not one. */
static int64_t version_of(const char *name)
{
    char *end;
    long long v;

    if (name[0] != 'v' || name[1] < '0' || name[1] > '9')
        return 0;
    v = strtoll(name + 1, &end, 10);
    return !strcmp(end, ".metadata.json") && v > 0 && v < INT64_MAX ? v : 0;
}

/* The version version-hint.text names, 0 if none or unreadable (it is only
 * a shortcut). */
static int64_t read_hint(cf_store *st, const char *location)
{
    char path[4096];
    cf_buf b;
    int64_t v = 0;

    snprintf(path, sizeof path, "%s/metadata/version-hint.text", location);
    cf_buf_init(&b, MAX_HINT_BYTES);
    if (cf_store_get(st, path, &b, NULL) == 0 && cf_buf_cstr(&b, NULL))
        v = strtoll((const char *)b.data, NULL, 10);
    cf_buf_free(&b);
    return v > 0 ? v : 0;
}

static int max_version_fn(void *ctx, const char *path, const cf_store_stat *sb)
{
    int64_t *best = ctx, v;
    const char *base = strrchr(path, '/');

    (void)sb;
    v = version_of(base ? base + 1 : path);
    if (v > *best)
        *best = v;
    return 0;
}

/* Highest vN.metadata.json in metadata/ (when the hint is missing). */
static int scan_versions(cf_store *st, const char *location, int64_t *best, cf_err *err)
{
    char dir[4096];

    *best = 0;
    snprintf(dir, sizeof dir, "%s/metadata", location);
    return cf_store_list(st, dir, CF_STORE_FLAT, max_version_fn, best, err);
}

static bool version_exists(cf_store *st, const char *location, int64_t v)
{
    char *p = meta_path(location, v);
    bool yes = p && cf_store_exists(st, p);
    free(p);
    return yes;
}

static int d_load_version(cf_ice_catalog *c, int64_t v, cf_ice_table *t, cf_err *err)
{
    if (!(t->meta_location = meta_path(c->location, v)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (!(t->meta = cf_ice_meta_read(c->st, t->meta_location, err)))
        return -1;
    t->version = v;
    return 0;
}

static int d_load(cf_ice_catalog *c, cf_ice_table *t, cf_err *err)
{
    int64_t v = read_hint(c->st, c->location);

    /* A hint naming a version that is gone (hand-cleaned) is ignored. */
    if (v > 0 && !version_exists(c->st, c->location, v))
        v = 0;
    if (v == 0 && scan_versions(c->st, c->location, &v, err))
        return -1;
    if (v == 0)
        return 0;                       /* no table yet */
    /* The hint is written after the version it names; a crash between the
     * two leaves it one behind, and another writer may have moved on. */
    while (version_exists(c->st, c->location, v + 1))
        v++;
    return d_load_version(c, v, t, err);
}

static int d_changed(cf_ice_catalog *c, const cf_ice_table *t, bool *changed, cf_err *err)
{
    (void)err;
    *changed = version_exists(c->st, c->location, t->version + 1);
    return 0;
}

/* The hint is only a shortcut (readers probe past it), so a failure to
 * write it does not undo the commit. */
static void write_hint(cf_store *st, const char *location, int64_t v)
{
    char path[4096], num[32];

    snprintf(path, sizeof path, "%s/metadata/version-hint.text", location);
    snprintf(num, sizeof num, "%lld", (long long)v);
    cf_store_put(st, path, num, strlen(num), NULL);
}

static int d_commit(cf_ice_catalog *c, cf_ice_table *t, json_t *meta, const cf_ice_change *chg,
                    cf_err *err)
{
    int64_t v = t->version + 1;
    char *text = json_dumps(meta, JSON_INDENT(2) | JSON_PRESERVE_ORDER), *target = meta_path(c->location, v);
    int rc = -1;

    (void)chg;
    if (!text || !target) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    /* Put-if-absent is the whole commit protocol: the version exists once,
     * written whole by whoever got there first. */
    if (cf_store_put_if_absent(c->st, target, text, strlen(text), err)) {
        if (err && err->code == CF_E_CONFLICT) {
            cf_err_set(err, CF_E_CONFLICT, "metadata version %lld was committed by another writer",
                       (long long)v);
            err->retriable = true;
        }
        goto out;
    }
    /* Published: readers see it now.  A failed directory fsync cannot take
     * that back, and reporting it would have the caller retry a commit
     * that landed. */
    cf_store_sync(c->st, c->location, &target, 1, NULL);
    json_decref(t->meta);
    free(t->meta_location);
    t->meta = meta;
    t->meta_location = target;
    t->version = v;
    meta = NULL;
    target = NULL;
    write_hint(c->st, c->location, v);
    rc = 0;
out:
    json_decref(meta);
    free(text);
    free(target);
    return rc;
}

static const cf_ice_catalog_ops dir_ops = {
    .name = "directory",
    .load = d_load,
    .load_version = d_load_version,
    .changed = d_changed,
    .commit = d_commit,
};

int cf_ice_dir_catalog_init(cf_ice_catalog *c, cf_err *err)
{
    (void)err;
    c->ops = &dir_ops;
    return 0;
}

static int any_version_fn(void *ctx, const char *path, const cf_store_stat *sb)
{
    const char *base = strrchr(path, '/');

    (void)ctx;
    (void)sb;
    base = base ? base + 1 : path;
    return !strcmp(base, "version-hint.text") || version_of(base) > 0;
}

bool cf_ice_dir_is_table(cf_store *st, const char *location)
{
    char dir[4096];

    snprintf(dir, sizeof dir, "%s/metadata", location);
    return cf_store_list(st, dir, CF_STORE_FLAT, any_version_fn, NULL, NULL) > 0;
}
