/* log.c - the Delta transaction log on a store: numbered JSON commits
 * created put-if-absent, listing, _last_checkpoint, paths. */
#include "table/delta/delta_int.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* list_versions suffix that matches the first part of multi-part checkpoints */
#define MULTIPART_SUFFIX "*multipart*"
/* commitInfo is the first line when we write it; other writers put it a
 * few lines in, well within this much of the commit */
#define COMMIT_HEAD_BYTES 65536

void cf_delta_commit_path(const char *root, int64_t version, char *buf, size_t n)
{
    snprintf(buf, n, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".json", root, version);
}

int cf_delta_log_put_at(cf_store *st, const char *root, int64_t version, const void *data, size_t len,
                        int64_t mtime_ms, cf_err *err)
{
    char path[PATH_MAX];

    cf_delta_commit_path(root, version, path, sizeof path);
    /* Readers differ on where a commit's time comes from (Spark and
     * delta-rs: commitInfo or the file's modification time); the store
     * makes them one where it can. */
    if (cf_store_put_if_absent_at(st, path, data, len, mtime_ms, err) == 0)
        return 0;
    if (err && err->code == CF_E_CONFLICT) {
        cf_err_set(err, CF_E_CONFLICT, "version %" PRId64 " of %s was committed by another writer",
                   version, root);
        err->retriable = true;
    }
    return -1;
}

/* Whole object at path into out (reset first), at most cap bytes. */
static int get_capped(cf_store *st, const char *path, cf_buf *out, size_t cap, cf_err *err)
{
    size_t keep = out->cap;
    int rc;

    cf_buf_reset(out);
    /* the buffer's own cap, or ours if that is tighter or unset */
    if (!keep || keep > cap)
        out->cap = cap;
    rc = cf_store_get(st, path, out, err);
    out->cap = keep;
    return rc;
}

int cf_delta_log_read(cf_store *st, const char *root, int64_t version, cf_buf *out, cf_err *err)
{
    char path[PATH_MAX];
    cf_delta_commit_path(root, version, path, sizeof path);
    return get_capped(st, path, out, CF_DELTA_MAX_COMMIT, err);
}

/* 20 digits then `suffix` exactly; -1 otherwise. */
static int64_t name_version(const char *name, const char *suffix)
{
    int64_t v = 0;
    if (strlen(name) <= 20)
        return -1;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    if (!strcmp(suffix, MULTIPART_SUFFIX)) {
        /* first part of a multi-part checkpoint: .checkpoint.0000000001.NNNNNNNNNN.parquet */
        const char *t = name + 20;
        if (strncmp(t, ".checkpoint.0000000001.", 23) || strlen(t) != 23 + 10 + 8 ||
            strcmp(t + 33, ".parquet"))
            return -1;
        for (int i = 23; i < 33; i++)
            if (t[i] < '0' || t[i] > '9')
                return -1;
        return v;
    }
    return strcmp(name + 20, suffix) == 0 ? v : -1;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* What one listing of _delta_log collects: the versions whose object names
 * end in one of the suffixes (a temp file's dot name never matches). */
typedef struct vlist {
    const char *const *suffix;
    int64_t *v;
    size_t   n, alloc;
    bool     nomem;
} vlist;

static int vlist_add(void *ctx, const char *path, const cf_store_stat *stat)
{
    vlist *l = ctx;
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    int64_t ver = -1;

    (void)stat;
    for (int i = 0; ver < 0 && l->suffix[i]; i++)
        ver = name_version(name, l->suffix[i]);
    if (ver < 0)
        return 0;
    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 64;
        int64_t *nv = realloc(l->v, na * sizeof *nv);
        if (!nv) {
            l->nomem = true;
            return 1;
        }
        l->v = nv;
        l->alloc = na;
    }
    l->v[l->n++] = ver;
    return 0;
}

/* Sorted versions of the log objects named <20 digits><suffix> for any of
 * the NULL-terminated suffixes (the store lists in no particular order). */
static int list_versions(cf_store *st, const char *root, const char *const *suffix, int64_t **out,
                         size_t *n, cf_err *err)
{
    char dir[PATH_MAX];
    vlist l = { .suffix = suffix };

    *out = NULL;
    *n = 0;
    snprintf(dir, sizeof dir, "%s/" CF_DELTA_LOG_DIR, root);
    if (cf_store_list(st, dir, CF_STORE_FLAT, vlist_add, &l, err) || l.nomem) {
        free(l.v);
        if (l.nomem)
            return cf_err_set(err, CF_E_NOMEM, "out of memory listing %s", dir);
        return cf_err_wrap(err, "listing %s", dir);
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_i64);
    *out = l.v;
    *n = l.n;
    return 0;
}

int cf_delta_log_versions(cf_store *st, const char *root, int64_t **out, size_t *n, cf_err *err)
{
    static const char *const json[] = { ".json", NULL };
    return list_versions(st, root, json, out, n, err);
}

/* The version _last_checkpoint names, if that checkpoint is there; -1. */
static int64_t hinted_checkpoint(cf_store *st, const char *root)
{
    char path[PATH_MAX];
    int64_t best = -1;
    cf_buf b;

    /* _last_checkpoint is a hint; trust it only when the file it names is
     * there (a crash can leave the hint behind the checkpoint). */
    cf_buf_init(&b, 1 << 20);
    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/_last_checkpoint", root);
    if (cf_store_get(st, path, &b, NULL) == 0) {
        json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
        json_t *jv = j ? json_object_get(j, "version") : NULL;
        if (json_is_integer(jv)) {
            snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.parquet", root,
                     (int64_t)json_integer_value(jv));
            if (cf_store_exists(st, path))
                best = json_integer_value(jv);
        }
        json_decref(j);
    }
    cf_buf_free(&b);
    return best;
}

int64_t cf_delta_log_last_checkpoint(cf_store *st, const char *root, int64_t at_most)
{
    static const char *const ckpt[] = { ".checkpoint.parquet", MULTIPART_SUFFIX, NULL };
    int64_t *v = NULL, best = at_most < 0 ? hinted_checkpoint(st, root) : -1;
    size_t n = 0;

    /* The listing still decides: a newer checkpoint than the hint says may
     * be there. */
    if (list_versions(st, root, ckpt, &v, &n, NULL))
        return best;
    for (size_t i = 0; i < n; i++)
        if ((at_most < 0 || v[i] <= at_most) && v[i] > best)
            best = v[i];
    free(v);
    return best;
}

static int any_version(void *ctx, const char *path, const cf_store_stat *stat)
{
    static const char *const kinds[] = { ".json", ".checkpoint.parquet", MULTIPART_SUFFIX, NULL };
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;

    (void)ctx;
    (void)stat;
    for (int i = 0; kinds[i]; i++)
        if (name_version(name, kinds[i]) >= 0)
            return 1;    /* found one: stop the listing */
    return 0;
}

bool cf_delta_log_exists(cf_store *st, const char *root)
{
    char dir[PATH_MAX];

    snprintf(dir, sizeof dir, "%s/" CF_DELTA_LOG_DIR, root);
    return cf_store_list(st, dir, CF_STORE_FLAT, any_version, NULL, NULL) == 1;
}

/* The commitInfo timestamp in the first lines of text, -1 if none. */
static int64_t commit_info_ts(const char *text, size_t len)
{
    int64_t ts = -1;

    for (size_t off = 0, i = 0; i < 8 && ts < 0 && off < len; i++) {
        const char *ln = text + off, *nl = memchr(ln, '\n', len - off);
        size_t ll = nl ? (size_t)(nl - ln) : len - off;
        off += ll + 1;
        if (!memmem(ln, ll, "\"commitInfo\"", 12))
            continue;
        json_t *j = json_loadb(ln, ll, 0, NULL);
        json_t *t = json_object_get(json_object_get(j, "commitInfo"), "inCommitTimestamp");
        if (!json_is_integer(t))
            t = json_object_get(json_object_get(j, "commitInfo"), "timestamp");
        if (json_is_integer(t))
            ts = json_integer_value(t);
        json_decref(j);
    }
    return ts;
}

int64_t cf_delta_log_commit_ts(cf_store *st, const char *root, int64_t version)
{
    char path[PATH_MAX];
    cf_store_stat ss;
    char *head;
    int64_t ts;
    size_t n;

    cf_delta_commit_path(root, version, path, sizeof path);
    if (cf_store_head(st, path, &ss, NULL))
        return -1;
    /* Only the head of the commit: history and time travel ask this of
     * every version, and a commit can be large. */
    n = ss.size < COMMIT_HEAD_BYTES ? (size_t)ss.size : COMMIT_HEAD_BYTES;
    if (!(head = malloc(n + 1)))
        return -1;
    ts = cf_store_get_range(st, path, 0, n, head, NULL) == 0 ? commit_info_ts(head, n) : -1;
    free(head);
    return ts >= 0 ? ts : ss.mtime_ms;
}

/* ---- paths ----------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *cf_delta_path_decode(const char *logpath)
{
    size_t n = strlen(logpath);
    char *o = malloc(n + 1), *q = o;

    if (!o)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (logpath[i] == '%' && i + 2 < n && (h = hexval(logpath[i + 1])) >= 0 &&
            (l = hexval(logpath[i + 2])) >= 0) {
            *q++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *q++ = logpath[i];
        }
    }
    *q = 0;
    return o;
}

/* A URI with a scheme ("s3://", "file:/") or an absolute path.  Judged on
 * the log's (encoded) form: there a relative path's ':' is always %3A. */
static bool is_absolute(const char *logpath)
{
    const char *p = logpath;

    if (*p == '/')
        return true;
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        return false;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
           *p == '+' || *p == '-' || *p == '.')
        p++;
    return *p == ':';
}

char *cf_delta_path_full(const char *root, const char *logpath)
{
    char *rel = cf_delta_path_decode(logpath), *full;
    size_t n;

    if (!rel || is_absolute(logpath))
        return rel;
    n = strlen(root) + 1 + strlen(rel) + 1;
    if ((full = malloc(n)))
        snprintf(full, n, "%s/%s", root, rel);
    free(rel);
    return full;
}

/* loc past "prefix/", or NULL */
static const char *under(const char *prefix, const char *loc)
{
    size_t n = strlen(prefix);

    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (strncmp(loc, prefix, n) || loc[n] != '/')
        return NULL;
    while (loc[n] == '/')
        n++;
    return loc + n;
}

const char *cf_delta_path_rel(const char *root, const char *loc)
{
    const char *r = under(root, loc), *lr, *ll;

    /* A local store lists plain paths even for a file: root, and a log may
     * name a file of a plain root as file:/... */
    if (!r && (lr = cf_store_local_path(root)) && (ll = cf_store_local_path(loc)))
        r = under(lr, ll);
    return r && *r ? r : NULL;
}

static bool path_safe(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '/' || c == '=' || c == '~';
}

int cf_delta_path_encode(const char *fspath, cf_buf *out, cf_err *err)
{
    for (const unsigned char *p = (const unsigned char *)fspath; *p; p++) {
        int rc = path_safe(*p) ? cf_buf_putc(out, *p, err) : cf_buf_printf(out, err, "%%%02X", *p);
        if (rc)
            return -1;
    }
    return 0;
}

int cf_delta_path_escape(const char *s, cf_buf *out, cf_err *err)
{
    /* Stricter than Hive's set: every byte outside [A-Za-z0-9._-] is %XX, so
     * no value can make a '/', '=' or a hidden name; the true value is in
     * partitionValues anyway. */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  *p == '-' || *p == '_' || (*p == '.' && p != (const unsigned char *)s);
        int rc = ok ? cf_buf_putc(out, *p, err) : cf_buf_printf(out, err, "%%%02X", *p);
        if (rc)
            return -1;
    }
    return 0;
}


int cf_delta_offsets_put(cf_offsets *o, const char *topic, int32_t partition, int64_t next,
                         cf_err *err)
{
    for (int i = 0; i < o->n; i++)
        if (o->v[i].partition == partition && !strcmp(o->v[i].topic, topic)) {
            if (next > o->v[i].next_offset)
                o->v[i].next_offset = next;
            return 0;
        }
    if (strlen(topic) >= sizeof o->v[0].topic)
        return cf_err_set(err, CF_E_ARG, "topic name too long: %s", topic);
    if (o->n == o->alloc) {
        int na = o->alloc ? o->alloc * 2 : 8;
        cf_offset *nv = realloc(o->v, sizeof *nv * (size_t)na);
        if (!nv)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        o->v = nv;
        o->alloc = na;
    }
    memset(&o->v[o->n], 0, sizeof o->v[o->n]);
    strcpy(o->v[o->n].topic, topic);
    o->v[o->n].partition = partition;
    o->v[o->n].next_offset = next;
    o->n++;
    return 0;
}
