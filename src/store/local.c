/* local.c - the store on a POSIX filesystem: put-if-absent by link(2),
 * fsync of files and of the directories that name them. */
#include "store/store_int.h"
#include "util/fs.h"
#include "util/id.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct lfile {
    cf_store_file base;
    int           fd;
} lfile;

static const char *lpath(const char *path)
{
    const char *p = cf_store_local_path(path);
    return p ? p : path;
}

static int io_err(cf_err *err, const char *what, const char *path, int e)
{
    return cf_err_set(err, e == ENOENT ? CF_E_NOTFOUND : CF_E_IO, "%s %s: %s", what, path,
                      strerror(e));
}

/* mkdir -p of the directory holding path */
static int make_parent(const char *path, cf_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;

    if (n == 0)
        return 0;
    if (n >= sizeof dir)
        return cf_err_set(err, CF_E_ARG, "path too long: %s", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    return cf_fs_mkdirs(dir, err);
}

static int write_all(int fd, const void *p, size_t n, const char *path, cf_err *err)
{
    return cf_fs_write_all(fd, p, n) ? io_err(err, "write", path, errno) : 0;
}

static int l_head(cf_store *st, const char *path, cf_store_stat *out, cf_err *err)
{
    struct stat sb;
    const char *p = lpath(path);

    (void)st;
    if (stat(p, &sb))
        return io_err(err, "stat", p, errno);
    if (!S_ISREG(sb.st_mode))
        return cf_err_set(err, CF_E_NOTFOUND, "%s: not a file", p);
    out->size = (int64_t)sb.st_size;
    out->mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    return 0;
}

static int l_get(cf_store *st, const char *path, cf_buf *out, cf_err *err)
{
    const char *p = lpath(path);
    struct stat sb;
    int fd, rc = 0;

    (void)st;
    if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
        return io_err(err, "open", p, errno);
    if (fstat(fd, &sb) == 0 && sb.st_size > 0 && cf_buf_reserve(out, (size_t)sb.st_size, err)) {
        close(fd);
        return cf_err_wrap(err, "%s", p);
    }
    for (;;) {
        size_t want = 65536;
        ssize_t k;
        if (out->cap && out->cap - out->len < want)
            want = out->cap - out->len + 1;     /* one byte past the cap tells TOOBIG */
        if (cf_buf_reserve(out, want, err)) {
            rc = cf_err_wrap(err, "%s", p);
            break;
        }
        k = read(fd, out->data + out->len, out->alloc - out->len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = io_err(err, "read", p, errno);
            break;
        }
        if (k == 0)
            break;
        if (out->cap && out->len + (size_t)k > out->cap) {
            rc = cf_err_set(err, CF_E_TOOBIG, "%s: larger than %zu bytes", p, out->cap);
            break;
        }
        out->len += (size_t)k;
    }
    close(fd);
    return rc;
}

static int l_get_range(cf_store *st, const char *path, uint64_t off, size_t n, void *dst,
                       cf_err *err)
{
    const char *p = lpath(path);
    size_t got = 0;
    int fd;

    (void)st;
    if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
        return io_err(err, "open", p, errno);
    while (got < n) {
        ssize_t k = pread(fd, (uint8_t *)dst + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = errno;
            close(fd);
            if (k == 0)
                return cf_err_set(err, CF_E_PARSE, "%s: shorter than %llu bytes", p,
                                  (unsigned long long)(off + n));
            return io_err(err, "read", p, e);
        }
        got += (size_t)k;
    }
    close(fd);
    return 0;
}

static int l_put(cf_store *st, const char *path, const void *data, size_t n, bool if_absent,
                 int64_t mtime_ms, cf_err *err)
{
    const char *p = lpath(path);
    const char *slash = strrchr(p, '/');
    char tmp[PATH_MAX + 64], id[37];
    int fd, e;

    (void)st;
    if (make_parent(p, err))
        return -1;
    cf_uuid(id);
    /* A dot name in the same directory: table readers skip it, and a crash
     * leaves only this orphan, never a half-written object. */
    if (slash)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.%s.tmp", (int)(slash - p), p, slash + 1, id);
    else
        snprintf(tmp, sizeof tmp, ".%s.%s.tmp", p, id);
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return io_err(err, "create", tmp, errno);
    if (write_all(fd, data, n, tmp, err))
        goto fail;
    if (fsync(fd)) {
        io_err(err, "fsync", tmp, errno);
        goto fail;
    }
    if (mtime_ms >= 0) {
        struct timespec ts[2] = {
            { .tv_nsec = UTIME_OMIT },
            { .tv_sec = mtime_ms / 1000, .tv_nsec = (long)(mtime_ms % 1000) * 1000000L },
        };
        futimens(fd, ts);
    }
    if (close(fd)) {
        fd = -1;
        io_err(err, "close", tmp, errno);
        goto fail;
    }
    fd = -1;
    /* link(2) fails with EEXIST if the target exists: put-if-absent.
     * rename(2) would silently replace another writer's object. */
    if (if_absent ? link(tmp, p) : rename(tmp, p)) {
        e = errno;
        unlink(tmp);
        if (e == EEXIST) {
            cf_err_set(err, CF_E_CONFLICT, "%s was written by another writer", p);
            if (err)
                err->retriable = true;
            return -1;
        }
        return io_err(err, if_absent ? "link" : "rename", p, e);
    }
    if (if_absent)
        unlink(tmp);
    cf_fs_fsync_parent(p, NULL);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

static int l_del(cf_store *st, const char *path, cf_err *err)
{
    const char *p = lpath(path);

    (void)st;
    if (unlink(p) && errno != ENOENT)
        return io_err(err, "unlink", p, errno);
    return 0;
}

static int walk(char *dir, size_t dl, int flags, cf_store_list_fn fn, void *ctx, cf_err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int rc = 0;

    if (!d)
        return errno == ENOENT || errno == ENOTDIR ? 0 : io_err(err, "opendir", dir, errno);
    while (rc == 0 && (de = readdir(d))) {
        struct stat sb;
        size_t nl = strlen(de->d_name);
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (dl + 1 + nl >= PATH_MAX) {
            rc = cf_err_set(err, CF_E_ARG, "path too long under %s", dir);
            break;
        }
        dir[dl] = '/';
        memcpy(dir + dl + 1, de->d_name, nl + 1);
        if (lstat(dir, &sb) == 0) {
            if (S_ISREG(sb.st_mode)) {
                cf_store_stat s = {
                    .size = (int64_t)sb.st_size,
                    .mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000,
                };
                rc = fn(ctx, dir, &s);
            } else if (S_ISDIR(sb.st_mode) && !(flags & CF_STORE_FLAT))
                rc = walk(dir, dl + 1 + nl, flags, fn, ctx, err);
            else if (S_ISDIR(sb.st_mode) && (flags & CF_STORE_DIRS) && dl + 2 + nl < PATH_MAX) {
                cf_store_stat s = { .size = -1, .mtime_ms = -1 };
                memcpy(dir + dl + 1 + nl, "/", 2);
                rc = fn(ctx, dir, &s);
            }
        }
        dir[dl] = '\0';
    }
    closedir(d);
    return rc;
}

static int l_list(cf_store *st, const char *dir, int flags, cf_store_list_fn fn, void *ctx,
                  cf_err *err)
{
    char buf[PATH_MAX];
    const char *p = lpath(dir);
    size_t n = strlen(p);

    (void)st;
    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n >= sizeof buf)
        return cf_err_set(err, CF_E_ARG, "path too long: %s", p);
    memcpy(buf, p, n);
    buf[n] = '\0';
    return walk(buf, n, flags, fn, ctx, err);
}

static int l_sync(cf_store *st, const char *root, char *const *paths, size_t n, cf_err *err)
{
    char **lp = malloc(n * sizeof *lp);
    int rc;

    (void)st;
    if (!lp)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        lp[i] = (char *)lpath(paths[i]);
    rc = cf_fs_fsync_dirs_up_to(lpath(root), lp, n, err);
    free(lp);
    return rc;
}

static cf_store_file *l_create(cf_store *st, const char *path, cf_err *err)
{
    const char *p = lpath(path);
    lfile *f;

    if (make_parent(p, err))
        return NULL;
    if (!(f = calloc(1, sizeof *f)) || !(f->base.path = strdup(path))) {
        free(f);
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    }
    f->base.st = st;
    if ((f->fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        int e = errno;
        cf_err_set(err, e == EEXIST ? CF_E_CONFLICT : CF_E_IO, "create %s: %s", p, strerror(e));
        free(f->base.path);
        free(f);
        return NULL;
    }
    return &f->base;
}

static int l_write(cf_store_file *base, const void *p, size_t n, cf_err *err)
{
    lfile *f = (lfile *)base;
    return write_all(f->fd, p, n, lpath(base->path), err);
}

static void l_free(lfile *f, bool remove)
{
    if (f->fd >= 0)
        close(f->fd);
    if (remove)
        unlink(lpath(f->base.path));
    free(f->base.path);
    free(f);
}

static int l_finish(cf_store_file *base, cf_err *err)
{
    lfile *f = (lfile *)base;
    const char *p = lpath(base->path);

    if (fsync(f->fd)) {
        io_err(err, "fsync", p, errno);
        l_free(f, true);
        return -1;
    }
    if (close(f->fd)) {
        f->fd = -1;
        io_err(err, "close", p, errno);
        l_free(f, true);
        return -1;
    }
    f->fd = -1;
    l_free(f, false);
    return 0;
}

static void l_discard(cf_store_file *base)
{
    l_free((lfile *)base, true);
}

static void l_close(cf_store *st)
{
    free(st);
}

static const cf_store_ops local_ops = {
    .name = "local",
    .head = l_head,
    .get = l_get,
    .get_range = l_get_range,
    .put = l_put,
    .del = l_del,
    .list = l_list,
    .sync = l_sync,
    .create = l_create,
    .write = l_write,
    .finish = l_finish,
    .discard = l_discard,
    .close = l_close,
};

cf_store *cf_store_local_open(cf_err *err)
{
    cf_store *st = calloc(1, sizeof *st);

    if (!st)
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    st->ops = &local_ops;
    return st;
}
