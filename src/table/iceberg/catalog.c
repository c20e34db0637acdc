/* catalog.c - picks the catalog of an Iceberg table (directory or REST) and
 * dispatches to it; the refusal of a directory catalog on object storage
 * lives here, once. */
#include "table/iceberg/catalog_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

void cf_ice_table_free(cf_ice_table *t)
{
    if (!t)
        return;
    free(t->location);
    free(t->meta_location);
    json_decref(t->meta);
    memset(t, 0, sizeof *t);
}

/* The location as metadata records it: a relative path made absolute
 * against the working directory (not realpath: a symlinked table keeps
 * the name it was given); URLs as they are.  Trailing '/' dropped. */
static char *abs_location(const char *location, cf_err *err)
{
    char cwd[PATH_MAX];
    bool rel = location[0] != '/' && cf_store_local_path(location) == location &&
               !strstr(location, "://");
    size_t n;
    char *s;

    if (rel && !getcwd(cwd, sizeof cwd))
        return cf_err_set(err, CF_E_IO, "getcwd: %s", strerror(errno)), NULL;
    n = (rel ? strlen(cwd) + 1 : 0) + strlen(location) + 1;
    if (!(s = malloc(n)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    snprintf(s, n, "%s%s%s", rel ? cwd : "", rel ? "/" : "", location);
    n = strlen(s);
    /* "/" and "scheme://" keep theirs */
    while (n > 1 && s[n - 1] == '/' && s[n - 2] != '/' && s[n - 2] != ':')
        s[--n] = 0;
    return s;
}

cf_ice_catalog *cf_ice_catalog_open(const cf_catalog_config *cfg, const char *location,
                                    const char *name, cf_store *st, cf_err *err)
{
    cf_catalog_config envc;
    cf_ice_catalog *c;
    bool rest;

    if (!location || !*location)
        return cf_err_set(err, CF_E_ARG, "iceberg: no table location"), NULL;
    if (!cfg) {
        cf_catalog_config_from_env(&envc);
        cfg = &envc;
    }
    rest = cfg->uri && *cfg->uri;
    if (!rest && cf_store_is_remote(location))
        return cf_err_set(err, CF_E_ARG, "%s: Iceberg on object storage needs a REST catalog "
                          "(--catalog-uri or ICEBERG_CATALOG_URI): a directory catalog is not "
                          "safe there, since S3 has no atomic rename and version-hint.text is "
                          "last-writer-wins", location), NULL;
    if (!(c = calloc(1, sizeof *c)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    c->st = st;
    if (!(c->location = abs_location(location, err)) ||
        (name && !(c->name = strdup(name)) && cf_err_set(err, CF_E_NOMEM, "out of memory")) ||
        (rest ? cf_ice_rest_catalog_init(c, cfg, err) : cf_ice_dir_catalog_init(c, err))) {
        free(c->location);
        free(c->name);
        free(c);
        return NULL;
    }
    return c;
}

void cf_ice_catalog_close(cf_ice_catalog *c)
{
    if (!c)
        return;
    if (c->ops && c->ops->close)
        c->ops->close(c);
    free(c->location);
    free(c->name);
    free(c);
}

/* Every table state names its location, even a failed load's: the
 * sink builds paths from it. */
static int start_table(cf_ice_catalog *c, cf_ice_table *t, cf_err *err)
{
    memset(t, 0, sizeof *t);
    if (!(t->location = strdup(c->location)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    return 0;
}

int cf_ice_catalog_load(cf_ice_catalog *c, cf_ice_table *t, cf_err *err)
{
    if (start_table(c, t, err))
        return -1;
    return c->ops->load(c, t, err);
}

int cf_ice_catalog_load_version(cf_ice_catalog *c, int64_t version, cf_ice_table *t,
                                cf_err *err)
{
    if (start_table(c, t, err))
        return -1;
    if (!c->ops->load_version)
        return cf_err_set(err, CF_E_UNSUPPORTED, "%s: the %s catalog has no numbered metadata "
                          "versions", c->location, c->ops->name);
    return c->ops->load_version(c, version, t, err);
}

int cf_ice_catalog_refresh(cf_ice_catalog *c, cf_ice_table *t, bool *changed, cf_err *err)
{
    bool ch = true;

    if (t->meta && c->ops->changed && c->ops->changed(c, t, &ch, err))
        return -1;
    if (changed)
        *changed = ch;
    if (!ch)
        return 0;
    cf_ice_table_free(t);
    return cf_ice_catalog_load(c, t, err);
}

int cf_ice_catalog_create(cf_ice_catalog *c, cf_ice_table *t, const json_t *meta, cf_err *err)
{
    if (!c->ops->create)
        return 0;
    return c->ops->create(c, t, meta, err);
}

int cf_ice_catalog_commit(cf_ice_catalog *c, cf_ice_table *t, json_t *meta,
                          const cf_ice_change *chg, cf_err *err)
{
    if (!meta)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    return c->ops->commit(c, t, meta, chg, err);
}

#define MAX_META_BYTES ((size_t)256 << 20)   /* about 300 000 snapshots of ours */

json_t *cf_ice_meta_read(cf_store *st, const char *path, cf_err *err)
{
    json_error_t je;
    json_t *j;
    cf_buf b;

    cf_buf_init(&b, MAX_META_BYTES);
    if (cf_store_get(st, path, &b, err)) {
        cf_buf_free(&b);
        return NULL;
    }
    j = json_loadb((const char *)b.data, b.len, 0, &je);
    cf_buf_free(&b);
    if (!j)
        return cf_err_set(err, CF_E_PARSE, "%s: %s (line %d)", path, je.text, je.line), NULL;
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "format-version")) < 1) {
        json_decref(j);
        return cf_err_set(err, CF_E_PARSE, "%s: not Iceberg table metadata", path), NULL;
    }
    return j;
}

