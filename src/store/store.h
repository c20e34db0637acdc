/* store.h - where table bytes live: a local directory tree or an S3 bucket.
 *
 * Every reader and writer of table files (Parquet, Avro, the Delta log,
 * checkpoints, Iceberg metadata, change-data and dead-letter files) goes
 * through a cf_store.  A store is opened for one location and serves every
 * path of its scheme:
 *
 *   /data/t/_delta_log/00000000000000000000.json     local
 *   file:///data/t/part-0.parquet                     local
 *   s3://bucket/prefix/t/_delta_log/...               s3 (also s3a://)
 *
 * Paths are always full locations, so what a table log or an Iceberg
 * manifest names can be handed to the store as it is.
 *
 * Semantics every backend keeps:
 *   - put and finish are durable when they return 0 (local: fsync of the
 *     file; the directory entries are made durable by cf_store_sync).
 *   - put_if_absent is atomic: of two racing writers of one path exactly one
 *     gets 0, the other CF_E_CONFLICT, and a reader never sees a partial
 *     object.  Local uses link(2); S3 a conditional PUT (If-None-Match: *),
 *     which cf_store_check_atomic() proves the server enforces.
 *   - a missing object is CF_E_NOTFOUND for get/head; delete of a missing
 *     object is not an error.
 *   - parent "directories" are made as needed; there is no mkdir.
 *
 * Errors name the path (and for S3 the bucket, key and HTTP status).
 * Credentials are never part of a message. */
#ifndef CF_STORE_H
#define CF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

typedef struct cf_store cf_store;

/* S3 settings; ignored by the local backend.  NULL/0 fields take the
 * defaults documented beside them.  The strings are not copied past
 * cf_store_open (which keeps its own copies). */
typedef struct cf_store_config {
    const char *endpoint;       /* AWS_ENDPOINT_URL[_S3]; NULL: AWS,
                                 * https://<bucket>.s3.<region>.amazonaws.com */
    const char *region;         /* AWS_REGION, AWS_DEFAULT_REGION; default us-east-1 */
    const char *access_key;     /* AWS_ACCESS_KEY_ID */
    const char *secret_key;     /* AWS_SECRET_ACCESS_KEY */
    const char *session_token;  /* AWS_SESSION_TOKEN, optional */
    int         path_style;     /* 1 path-style, 0 virtual-hosted, -1 (default):
                                 * path-style when an endpoint is set */
    int         retries;        /* attempts after the first on 5xx/429/timeouts; default 6,
                                 * -1 none */
    long        timeout_ms;     /* per request; default 30000 */
    size_t      part_size;      /* multipart part size; default 8 MiB, at least 5 MiB
                                 * (S3's minimum for all parts but the last) */
} cf_store_config;

/* Fill *cfg from the AWS_* environment variables (over zeroes).  The
 * strings point into the environment. */
void cf_store_config_from_env(cf_store_config *cfg);

/* Open the store that serves `location` (a table path or warehouse):
 * local for plain paths and file: URLs, s3 for s3:// and s3a://.  cfg may
 * be NULL (from the environment).  NULL with CF_E_ARG for an unknown scheme
 * or missing S3 credentials.  Free with cf_store_close. */
cf_store *cf_store_open(const char *location, const cf_store_config *cfg, cf_err *err);
void      cf_store_close(cf_store *st);                       /* NULL-safe */

/* "local" or "s3". */
const char *cf_store_name(const cf_store *st);
bool        cf_store_is_local(const cf_store *st);

/* Whether `location` names object storage (s3://, s3a://). */
bool cf_store_is_remote(const char *location);

/* The local filesystem path of a local location (drops "file:" and
 * "file://"), pointing into `location`.  NULL for remote locations. */
const char *cf_store_local_path(const char *location);

typedef struct cf_store_stat {
    int64_t size;
    int64_t mtime_ms;           /* last modified, ms since the epoch */
} cf_store_stat;

/* Size and modification time of the object at path.  CF_E_NOTFOUND if
 * there is none. */
int cf_store_head(cf_store *st, const char *path, cf_store_stat *out, cf_err *err);
/* Whether an object exists at path (false also on errors). */
bool cf_store_exists(cf_store *st, const char *path);

/* Append the whole object to *out (its cap applies: CF_E_TOOBIG).
 * CF_E_NOTFOUND if there is none. */
int cf_store_get(cf_store *st, const char *path, cf_buf *out, cf_err *err);
/* Read exactly n bytes at offset off into dst.  CF_E_PARSE if the object
 * is shorter. */
int cf_store_get_range(cf_store *st, const char *path, uint64_t off, size_t n, void *dst,
                       cf_err *err);

/* Write the object whole, replacing any there.  Readers see the old object
 * or the new one, never a mix. */
int cf_store_put(cf_store *st, const char *path, const void *p, size_t n, cf_err *err);
/* Write the object only if none exists: CF_E_CONFLICT (retriable) if one
 * does. */
int cf_store_put_if_absent(cf_store *st, const char *path, const void *p, size_t n, cf_err *err);
/* The same, and the local file's modification time set to mtime_ms (so
 * that readers taking a commit's time from the file agree with the time it
 * records).  Object stores keep their own time; there it is ignored. */
int cf_store_put_if_absent_at(cf_store *st, const char *path, const void *p, size_t n,
                              int64_t mtime_ms, cf_err *err);

/* Remove the object; 0 if there was none. */
int cf_store_delete(cf_store *st, const char *path, cf_err *err);

/* Listing.  The callback gets each object's full path (valid during the
 * call) and its stat; returning non-zero stops the walk and is returned.
 * Order is unspecified.  CF_STORE_FLAT lists only the objects directly
 * under dir (S3: delimiter "/"), else the walk is recursive.  A missing
 * dir lists nothing. */
enum {
    CF_STORE_FLAT = 1,
    /* with FLAT: also report the sub-directories (S3: common prefixes),
     * as paths ending in "/" with size and mtime -1 */
    CF_STORE_DIRS = 2,
};
typedef int (*cf_store_list_fn)(void *ctx, const char *path, const cf_store_stat *st);
int cf_store_list(cf_store *st, const char *dir, int flags, cf_store_list_fn fn, void *ctx,
                  cf_err *err);

/* Make the names of new objects durable: local fsyncs every directory from
 * each path's parent up to and including root (each once); S3 does nothing
 * (its PUTs are durable when they return). */
int cf_store_sync(cf_store *st, const char *root, char *const *paths, size_t n, cf_err *err);

/* Prove that put_if_absent is enforced at dir: write a probe object twice
 * and expect the second to fail, then delete it.  CF_E_UNSUPPORTED naming
 * the server if it accepted both (a table log there would be unsafe). */
int cf_store_check_atomic(cf_store *st, const char *dir, cf_err *err);

/* A new object written as a stream: data files.  It appears whole at
 * cf_store_file_finish and not before on S3 (single PUT, or multipart above
 * part_size); locally it is written in place, created exclusively, and is
 * not named by any table until its commit.  cf_store_file_discard removes
 * whatever was written.  Both free the handle. */
typedef struct cf_store_file cf_store_file;

/* CF_E_CONFLICT if the local file exists. */
cf_store_file *cf_store_file_create(cf_store *st, const char *path, cf_err *err);
int     cf_store_file_write(cf_store_file *f, const void *p, size_t n, cf_err *err);
int64_t cf_store_file_size(const cf_store_file *f);            /* bytes written so far */
const char *cf_store_file_path(const cf_store_file *f);
int     cf_store_file_finish(cf_store_file *f, cf_err *err);
void    cf_store_file_discard(cf_store_file *f);               /* NULL-safe */

#endif
