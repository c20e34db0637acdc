/* store.c - opens the backend a location names and checks what every
 * backend would otherwise check itself. */
#include "store/store_int.h"
#include "util/id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cf_store_is_remote(const char *location)
{
    return location && (!strncmp(location, "s3://", 5) || !strncmp(location, "s3a://", 6));
}

const char *cf_store_local_path(const char *location)
{
    if (!location || cf_store_is_remote(location))
        return NULL;
    if (!strncmp(location, "file://", 7))
        return location + 7;            /* file:///x -> /x */
    if (!strncmp(location, "file:", 5))
        return location + 5;            /* file:/x -> /x */
    return location;
}

static const char *env2(const char *a, const char *b)
{
    const char *v = getenv(a);
    if ((!v || !*v) && b)
        v = getenv(b);
    return v && *v ? v : NULL;
}

void cf_store_config_from_env(cf_store_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->endpoint = env2("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
    cfg->region = env2("AWS_REGION", "AWS_DEFAULT_REGION");
    cfg->access_key = env2("AWS_ACCESS_KEY_ID", NULL);
    cfg->secret_key = env2("AWS_SECRET_ACCESS_KEY", NULL);
    cfg->session_token = env2("AWS_SESSION_TOKEN", NULL);
    cfg->path_style = -1;
}

cf_store *cf_store_open(const char *location, const cf_store_config *cfg, cf_err *err)
{
    cf_store_config env;

    if (!location || !*location)
        return cf_err_set(err, CF_E_ARG, "no table location"), NULL;
    if (cf_store_is_remote(location)) {
        if (!cfg) {
            cf_store_config_from_env(&env);
            cfg = &env;
        }
        return cf_store_s3_open(cfg, err);
    }
    if (strstr(location, "://") && strncmp(location, "file://", 7))
        return cf_err_set(err, CF_E_ARG, "%.*s: unknown storage scheme (use a path, file://, or s3://)",
                          (int)(strstr(location, "://") - location), location), NULL;
    return cf_store_local_open(err);
}

void cf_store_close(cf_store *st)
{
    if (st)
        st->ops->close(st);
}

const char *cf_store_name(const cf_store *st) { return st->ops->name; }
bool cf_store_is_local(const cf_store *st) { return !strcmp(st->ops->name, "local"); }

int cf_store_head(cf_store *st, const char *path, cf_store_stat *out, cf_err *err)
{
    cf_store_stat tmp;
    return st->ops->head(st, path, out ? out : &tmp, err);
}

bool cf_store_exists(cf_store *st, const char *path)
{
    cf_store_stat s;
    return st->ops->head(st, path, &s, NULL) == 0;
}

int cf_store_get(cf_store *st, const char *path, cf_buf *out, cf_err *err)
{
    return st->ops->get(st, path, out, err);
}

int cf_store_get_range(cf_store *st, const char *path, uint64_t off, size_t n, void *dst,
                       cf_err *err)
{
    if (n == 0)
        return 0;
    return st->ops->get_range(st, path, off, n, dst, err);
}

int cf_store_put(cf_store *st, const char *path, const void *p, size_t n, cf_err *err)
{
    return st->ops->put(st, path, p, n, false, -1, err);
}

int cf_store_put_if_absent(cf_store *st, const char *path, const void *p, size_t n, cf_err *err)
{
    return st->ops->put(st, path, p, n, true, -1, err);
}

int cf_store_put_if_absent_at(cf_store *st, const char *path, const void *p, size_t n,
                              int64_t mtime_ms, cf_err *err)
{
    return st->ops->put(st, path, p, n, true, mtime_ms, err);
}

int cf_store_delete(cf_store *st, const char *path, cf_err *err)
{
    return st->ops->del(st, path, err);
}

int cf_store_list(cf_store *st, const char *dir, int flags, cf_store_list_fn fn, void *ctx,
                  cf_err *err)
{
    return st->ops->list(st, dir, flags, fn, ctx, err);
}

int cf_store_sync(cf_store *st, const char *root, char *const *paths, size_t n, cf_err *err)
{
    return n ? st->ops->sync(st, root, paths, n, err) : 0;
}

int cf_store_check_atomic(cf_store *st, const char *dir, cf_err *err)
{
    char id[37], path[4096];
    cf_err e2 = {0};
    int rc;

    cf_uuid(id);
    snprintf(path, sizeof path, "%s%s.cdcflow-probe-%s", dir,
             *dir && dir[strlen(dir) - 1] == '/' ? "" : "/", id);
    if (cf_store_put_if_absent(st, path, "1", 1, err))
        return cf_err_wrap(err, "conditional write probe");
    rc = cf_store_put_if_absent(st, path, "2", 1, &e2);
    cf_store_delete(st, path, NULL);
    if (rc == 0)
        return cf_err_set(err, CF_E_UNSUPPORTED,
                          "%s: the %s store accepted a second If-None-Match: * write of one "
                          "object, so it does not enforce conditional writes and concurrent "
                          "commits could overwrite each other; use a store that does "
                          "(AWS S3, MinIO, moto)", dir, cf_store_name(st));
    if (e2.code != CF_E_CONFLICT) {
        if (err)
            *err = e2;
        return cf_err_wrap(err, "conditional write probe");
    }
    return 0;
}

cf_store_file *cf_store_file_create(cf_store *st, const char *path, cf_err *err)
{
    return st->ops->create(st, path, err);
}

int cf_store_file_write(cf_store_file *f, const void *p, size_t n, cf_err *err)
{
    if (n == 0)
        return 0;
    if (f->st->ops->write(f, p, n, err))
        return -1;
    f->size += (int64_t)n;
    return 0;
}

int64_t cf_store_file_size(const cf_store_file *f) { return f->size; }
const char *cf_store_file_path(const cf_store_file *f) { return f->path; }

int cf_store_file_finish(cf_store_file *f, cf_err *err)
{
    return f->st->ops->finish(f, err);
}

void cf_store_file_discard(cf_store_file *f)
{
    if (f)
        f->st->ops->discard(f);
}
