/* store_int.h - what a storage backend implements (see store.h for the
 * contract of each operation; store.c checks arguments and dispatches). */
#ifndef CF_STORE_INT_H
#define CF_STORE_INT_H

#include "store/store.h"

typedef struct cf_store_ops {
    const char *name;
    int  (*head)(cf_store *st, const char *path, cf_store_stat *out, cf_err *err);
    int  (*get)(cf_store *st, const char *path, cf_buf *out, cf_err *err);
    int  (*get_range)(cf_store *st, const char *path, uint64_t off, size_t n, void *dst,
                      cf_err *err);
    /* mtime_ms < 0: leave the time alone */
    int  (*put)(cf_store *st, const char *path, const void *p, size_t n, bool if_absent,
                int64_t mtime_ms, cf_err *err);
    int  (*del)(cf_store *st, const char *path, cf_err *err);
    int  (*list)(cf_store *st, const char *dir, int flags, cf_store_list_fn fn, void *ctx,
                 cf_err *err);
    int  (*sync)(cf_store *st, const char *root, char *const *paths, size_t n, cf_err *err);
    /* streamed files: create returns the backend's handle, which embeds
     * struct cf_store_file first */
    cf_store_file *(*create)(cf_store *st, const char *path, cf_err *err);
    int  (*write)(cf_store_file *f, const void *p, size_t n, cf_err *err);
    int  (*finish)(cf_store_file *f, cf_err *err);      /* frees f */
    void (*discard)(cf_store_file *f);                  /* frees f */
    void (*close)(cf_store *st);                        /* frees st */
} cf_store_ops;

struct cf_store {
    const cf_store_ops *ops;
};

struct cf_store_file {
    cf_store *st;
    char     *path;
    int64_t   size;
};

cf_store *cf_store_local_open(cf_err *err);
cf_store *cf_store_s3_open(const cf_store_config *cfg, cf_err *err);

#endif
