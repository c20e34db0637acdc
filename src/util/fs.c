/* fs.c - mkdir -p and directory fsync. */
#include "util/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cf_fs_mkdirs(const char *path, cf_err *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);

    if (n >= sizeof tmp)
        return cf_err_set(err, CF_E_ARG, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) && errno != EEXIST)
            return cf_err_set(err, CF_E_IO, "mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST)
        return cf_err_set(err, CF_E_IO, "mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

int cf_fs_fsync_dir(const char *dir, cf_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY), rc;

    if (fd < 0)
        return cf_err_set(err, CF_E_IO, "open %s: %s", dir, strerror(errno));
    rc = fsync(fd);
    close(fd);
    if (rc)
        return cf_err_set(err, CF_E_IO, "fsync %s: %s", dir, strerror(errno));
    return 0;
}

int cf_fs_fsync_parent(const char *path, cf_err *err)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;

    if (n >= sizeof dir)
        return cf_err_set(err, CF_E_ARG, "path too long: %s", path);
    if (!slash)
        memcpy(dir, ".", 2);
    else if (n == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    return cf_fs_fsync_dir(dir, err);
}

int cf_fs_fsync_dirs_up_to(const char *root, char *const *paths, size_t n, cf_err *err)
{
    char (*done)[PATH_MAX] = NULL;
    size_t ndone = 0, rl = strlen(root), cap = 0;
    int rc = 0;

    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char dir[PATH_MAX];
        const char *slash = strrchr(paths[i], '/');
        size_t dl = slash ? (size_t)(slash - paths[i]) : 0;
        if (!slash || dl >= sizeof dir)
            continue;
        memcpy(dir, paths[i], dl);
        dir[dl] = '\0';
        for (;;) {
            bool seen = false;
            for (size_t k = 0; k < ndone && !seen; k++)
                seen = !strcmp(done[k], dir);
            if (!seen) {
                if (ndone == cap) {
                    size_t nc = cap ? cap * 2 : 8;
                    char (*nd)[PATH_MAX] = realloc(done, nc * sizeof *nd);
                    if (!nd) {
                        rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
                        break;
                    }
                    done = nd;
                    cap = nc;
                }
                memcpy(done[ndone++], dir, strlen(dir) + 1);
                if ((rc = cf_fs_fsync_dir(dir, err)))
                    break;
            }
            /* up one, while still below root */
            if (strlen(dir) <= rl || strncmp(dir, root, rl) || dir[rl] != '/' || !(slash = strrchr(dir, '/')))
                break;
            dir[slash - dir] = '\0';
            if (strlen(dir) < rl)
                break;
        }
    }
    free(done);
    return rc;
}

int cf_fs_write_all(int fd, const void *p, size_t n)
{
    const unsigned char *b = p;

    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += k;
        n -= (size_t)k;
    }
    return 0;
}
