/* log.c - the Delta transaction log on a local filesystem: numbered JSON
 * commits created put-if-absent, listing, _last_checkpoint, paths, ids. */
#include "table/delta/delta_int.h"
#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* list_versions suffix that matches the first part of multi-part checkpoints */
#define MULTIPART_SUFFIX "*multipart*"

void cf_delta_commit_path(const char *root, int64_t version, char *buf, size_t n)
{
    snprintf(buf, n, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".json", root, version);
}

void cf_delta_uuid(char out[37])
{
    uint8_t b[16];
    size_t got = 0;

    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r <= 0) {   /* no entropy source: fall back to time and pid, still unique enough */
            uint64_t t = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)clock();
            for (size_t i = got; i < sizeof b; i++, t = t * 6364136223846793005ULL + 1)
                b[i] = (uint8_t)(t >> 56);
            break;
        }
        got += (size_t)r;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

int64_t cf_delta_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cf_delta_log_put(const char *root, int64_t version, const void *data, size_t len,
                     cf_err *err)
{
    return cf_delta_log_put_at(root, version, data, len, -1, err);
}

int cf_delta_log_put_at(const char *root, int64_t version, const void *data, size_t len,
                        int64_t mtime_ms, cf_err *err)
{
    char dir[PATH_MAX], final[PATH_MAX], tmp[PATH_MAX + 128], id[37];
    const uint8_t *p = data;
    int fd;

    snprintf(dir, sizeof dir, "%s/" CF_DELTA_LOG_DIR, root);
    if (cf_fs_mkdirs(dir, err))
        return -1;
    cf_delta_commit_path(root, version, final, sizeof final);
    cf_delta_uuid(id);
    /* A dot name: readers listing the log skip it, and a crash leaves only
     * this orphan, never a half-written version. */
    snprintf(tmp, sizeof tmp, "%s/.%020" PRId64 ".json.%s.tmp", dir, version, id);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return cf_err_set(err, CF_E_IO, "create %s: %s", tmp, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            cf_err_set(err, CF_E_IO, "write %s: %s", tmp, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd)) {
        cf_err_set(err, CF_E_IO, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (mtime_ms >= 0) {
        /* Readers differ on where a commit's time comes from (Spark and
         * delta-rs: commitInfo or the file's modification time); make
         * them one. */
        struct timespec ts[2] = {
            { .tv_nsec = UTIME_OMIT },
            { .tv_sec = mtime_ms / 1000, .tv_nsec = (long)(mtime_ms % 1000) * 1000000L },
        };
        futimens(fd, ts);
    }
    close(fd);
    fd = -1;
    /* link(2) fails with EEXIST if the version exists: put-if-absent. */
    if (link(tmp, final)) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST) {
            cf_err_set(err, CF_E_CONFLICT, "version %" PRId64 " of %s was committed by another writer",
                       version, root);
            if (err)
                err->retriable = true;
            return -1;
        }
        return cf_err_set(err, CF_E_IO, "link %s: %s", final, strerror(e));
    }
    unlink(tmp);
    cf_fs_fsync_dir(dir, NULL);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

static int read_file(const char *path, cf_buf *out, size_t cap, cf_err *err)
{
    FILE *f = fopen(path, "rb");
    char chunk[65536];
    size_t n;

    cf_buf_reset(out);
    if (!f)
        return cf_err_set(err, CF_E_IO, "open %s: %s", path, strerror(errno));
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (out->len + n > cap) {
            fclose(f);
            return cf_err_set(err, CF_E_TOOBIG, "%s is over %zu bytes", path, cap);
        }
        if (cf_buf_append(out, chunk, n, err)) {
            fclose(f);
            return -1;
        }
    }
    if (ferror(f)) {
        fclose(f);
        return cf_err_set(err, CF_E_IO, "read %s: %s", path, strerror(errno));
    }
    fclose(f);
    return 0;
}

int cf_delta_log_read(const char *root, int64_t version, cf_buf *out, cf_err *err)
{
    char path[PATH_MAX];
    cf_delta_commit_path(root, version, path, sizeof path);
    return read_file(path, out, CF_DELTA_MAX_COMMIT, err);
}

/* 20 digits then `suffix` exactly; -1 otherwise. */
static int64_t name_version(const char *name, const char *suffix)
{
    int64_t v = 0;
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

static int list_versions(const char *root, const char *suffix, int64_t **out, size_t *n,
                         cf_err *err)
{
    char dir[PATH_MAX];
    DIR *d;
    struct dirent *e;
    int64_t *v = NULL;
    size_t nv = 0, av = 0;

    *out = NULL;
    *n = 0;
    snprintf(dir, sizeof dir, "%s/" CF_DELTA_LOG_DIR, root);
    if (!(d = opendir(dir))) {
        if (errno == ENOENT)
            return 0;
        return cf_err_set(err, CF_E_IO, "opendir %s: %s", dir, strerror(errno));
    }
    while ((e = readdir(d))) {
        int64_t ver = strlen(e->d_name) > 20 ? name_version(e->d_name, suffix) : -1;
        if (ver < 0)
            continue;
        if (nv == av) {
            size_t na = av ? av * 2 : 64;
            int64_t *nvp = realloc(v, na * sizeof *v);
            if (!nvp) {
                free(v);
                closedir(d);
                return cf_err_set(err, CF_E_NOMEM, "out of memory listing %s", dir);
            }
            v = nvp;
            av = na;
        }
        v[nv++] = ver;
    }
    closedir(d);
    if (nv)
        qsort(v, nv, sizeof *v, cmp_i64);
    *out = v;
    *n = nv;
    return 0;
}

int cf_delta_log_versions(const char *root, int64_t **out, size_t *n, cf_err *err)
{
    return list_versions(root, ".json", out, n, err);
}

int64_t cf_delta_log_last_checkpoint(const char *root, int64_t at_most)
{
    char path[PATH_MAX];
    int64_t *v = NULL, best = -1;
    size_t n = 0;
    cf_buf b;

    /* _last_checkpoint is a hint; trust it only when the file it names is
     * there, else list (a crash can leave the hint behind the checkpoint). */
    cf_buf_init(&b, 1 << 20);
    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/_last_checkpoint", root);
    if (at_most < 0 && read_file(path, &b, 1 << 20, NULL) == 0) {
        json_t *j = json_loadb((const char *)b.data, b.len, 0, NULL);
        json_t *jv = j ? json_object_get(j, "version") : NULL;
        if (json_is_integer(jv)) {
            struct stat st;
            char cp[PATH_MAX];
            snprintf(cp, sizeof cp, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.parquet", root,
                     (int64_t)json_integer_value(jv));
            if (stat(cp, &st) == 0)
                best = json_integer_value(jv);
        }
        json_decref(j);
    }
    cf_buf_free(&b);
    for (int pass = 0; pass < 2; pass++) {
        if (list_versions(root, pass ? MULTIPART_SUFFIX : ".checkpoint.parquet", &v, &n, NULL))
            continue;
        for (size_t i = 0; i < n; i++)
            if ((at_most < 0 || v[i] <= at_most) && v[i] > best)
                best = v[i];
        free(v);
    }
    return best;
}

int64_t cf_delta_log_commit_ts(const char *root, int64_t version)
{
    char path[PATH_MAX];
    FILE *f;
    char line[65536];
    int64_t ts = -1;
    struct stat st;

    cf_delta_commit_path(root, version, path, sizeof path);
    if (!(f = fopen(path, "rb")))
        return -1;
    /* commitInfo is the first line when we write it; look a few lines in for
     * other writers. */
    for (int i = 0; i < 8 && ts < 0 && fgets(line, sizeof line, f); i++) {
        if (!strstr(line, "\"commitInfo\""))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        json_t *t = json_object_get(json_object_get(j, "commitInfo"), "inCommitTimestamp");
        if (!json_is_integer(t))
            t = json_object_get(json_object_get(j, "commitInfo"), "timestamp");
        if (json_is_integer(t))
            ts = json_integer_value(t);
        json_decref(j);
    }
    fclose(f);
    if (ts < 0 && stat(path, &st) == 0)
        ts = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    return ts;
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
