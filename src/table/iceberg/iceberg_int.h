/* iceberg_int.h - internals of the Iceberg v2 table support shared by the
 * sink and the table commands: table metadata documents, manifests and
 * manifest lists, partition transforms, scans (catalogs: catalog.h). */
#ifndef CF_ICEBERG_INT_H
#define CF_ICEBERG_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "batch/batch.h"
#include "store/store.h"
#include "table/iceberg/catalog.h"
#include "util/err.h"
#include "util/id.h"

#define CF_ICE_POS_FILE_PATH_ID 2147483546   /* reserved ids of position delete files */
#define CF_ICE_POS_POS_ID       2147483545

/* ---- table metadata ---------------------------------------------------- */

/* Tables (cf_ice_table) are loaded and committed through their catalog
 * (catalog.h). */

/* Append a snapshot to `meta` (summary reference stolen) and make it the
 * current one on main; then cf_ice_log_metadata. */
void cf_ice_add_snapshot(const cf_ice_table *t, json_t *meta, int64_t sid, int64_t parent_id,
                         int64_t seq, int64_t now_ms, const char *mlist, json_t *summary);
/* Record t's current metadata file in the metadata-log (trimmed to
 * write.metadata.previous-versions-max) and stamp last-updated-ms. */
void cf_ice_log_metadata(const cf_ice_table *t, json_t *meta, int64_t now_ms);

/* Bounded history: when the table property history.expire.max-snapshot-age-ms
 * is set, drop from `meta` the snapshots committed more than that before
 * now_ms, keeping the current one, any other ref's, and the
 * history.expire.min-snapshots-to-keep newest (default 1); their
 * snapshot-log entries go too.  Files stay (expire-snapshots removes them
 * once no kept snapshot refers to them).  Returns the number dropped. */
int  cf_ice_expire_history(json_t *meta, int64_t now_ms);

/* Snapshot by id (borrowed), NULL if none.  id < 0: the current one. */
json_t *cf_ice_snapshot(json_t *meta, int64_t id);
int64_t cf_ice_current_snapshot_id(json_t *meta);   /* -1 if none */

/* Schema of metadata by schema-id (-1: current) as a cf_schema with field
 * ids (owned by caller), primary key from identifier-field-ids. */
cf_schema *cf_ice_schema_from_json(json_t *meta, int schema_id, cf_err *err);
/* Iceberg type string of a cdcflow type, NULL if not mappable. */
const char *cf_ice_type_name(cf_type t, char *buf, size_t n);

/* ---- partition specs ------------------------------------------------- */

typedef enum {
    CF_ICE_IDENTITY = 0, CF_ICE_DAY, CF_ICE_BUCKET, CF_ICE_YEAR, CF_ICE_MONTH, CF_ICE_HOUR,
    CF_ICE_TRUNCATE
} cf_ice_xform;

typedef struct cf_ice_pfield {
    char         name[128];
    cf_ice_xform xf;
    int          n;              /* bucket count, truncate width */
    int          source_id;      /* table field id */
    int          field_id;       /* 1000, 1001, ... */
    cf_type      result;         /* type of the partition value */
} cf_ice_pfield;

typedef struct cf_ice_spec {
    int spec_id;
    int nfields;
    cf_ice_pfield f[16];
} cf_ice_spec;

/* Parse "col", "year(col)", "month(col)", "day(col)", "hour(col)",
 * "bucket(N,col)" / "bucket[N](col)", "truncate(W,col)" / "truncate[W](col)"
 * against a schema whose field ids are assigned. */
int cf_ice_spec_parse(const char *const *exprs, int n, const cf_schema *s,
                      cf_ice_spec *out, cf_err *err);
/* The default spec of a metadata document. */
int cf_ice_spec_from_json(json_t *meta, const cf_schema *s, cf_ice_spec *out, cf_err *err);
json_t *cf_ice_spec_to_json(const cf_ice_spec *sp);

/* 36-char UUID text (either case) to its 16 bytes; -1 if malformed. */
int cf_ice_uuid_parse(const void *text, size_t n, uint8_t out[16]);

/* murmur3_x86_32 with seed 0, as the Iceberg spec's bucket transform uses. */
uint32_t cf_ice_murmur3(const void *p, size_t n);
/* Bucket of a value of column `c` row `i` ((hash & INT_MAX) % n). */
int32_t  cf_ice_bucket_value(const cf_column *c, size_t i, int n);

/* A partition value: null, an integer, or bytes (owned). */
typedef struct cf_ice_pval {
    bool     null;
    int64_t  i;
    double   d;
    char    *s;
    size_t   n;
} cf_ice_pval;

/* Compute the partition tuple of row `row` (values[nfields]); strings are
 * malloc'd (cf_ice_pvals_clear). */
int  cf_ice_partition_of(const cf_ice_spec *sp, const cf_batch *b, const int *src_col,
                         size_t row, cf_ice_pval *vals, cf_err *err);
void cf_ice_pvals_clear(cf_ice_pval *v, int n);
/* Copy of a value's bytes (n of them, NUL-terminated; they may hold NULs,
 * as uuid values do); NULL on OOM. */
char *cf_ice_pval_dup(const cf_ice_pval *v);
bool cf_ice_pvals_equal(const cf_ice_pval *a, const cf_ice_pval *b, int n);
/* "col_day=2024-01-01/id_bucket=3" for paths (appended to out). */
int  cf_ice_partition_path(const cf_ice_spec *sp, const cf_ice_pval *v, char *out, size_t n);

/* Iceberg single-value binary serialization of a value (bounds, partition
 * summaries): integers in iv, floats in dv, the rest as bytes s/sn (UUIDs
 * as 16 raw bytes or 36-char text, wide decimals as decimal text).  Returns
 * bytes written, -1 if not serializable.  out must hold 16 bytes for
 * fixed-width types. */
int cf_ice_single_value(const cf_type *t, int64_t iv, double dv, const void *s, size_t sn,
                        uint8_t *out, size_t outsz);

/* ---- data files, manifests, manifest lists ---------------------------- */

typedef struct cf_ice_metric {
    int      id;
    int64_t  values, nulls;
    int64_t  sizes;              /* bytes of the column's chunks, -1 if unknown */
    int64_t  nans;               /* NaN values (float/double only), -1 if unknown */
    uint8_t *lower, *upper;      /* owned, NULL if unknown */
    size_t   lower_n, upper_n;
} cf_ice_metric;

typedef struct cf_ice_file {
    int      status;             /* manifest entry status: 0 existing, 1 added, 2 deleted */
    int      content;            /* 0 data, 1 position deletes */
    char    *path;               /* owned */
    int64_t  records, bytes;
    int64_t  snapshot_id;        /* snapshot that added it */
    int64_t  seq;                /* data sequence number, -1 = inherit */
    int64_t  file_seq;
    int      spec_id;
    int      npart;
    cf_ice_pval part[16];
    int      nmetrics;
    cf_ice_metric *metrics;      /* owned */
} cf_ice_file;

void cf_ice_file_clear(cf_ice_file *f);

/* Summary of one partition field over a manifest's files (manifest list
 * field 507): bounds in single-value form, left out past 64 bytes. */
typedef struct cf_ice_psum {
    bool    contains_null;
    bool    has_bounds;
    uint8_t lo_n, hi_n;
    uint8_t lo[64], hi[64];
} cf_ice_psum;

/* An entry of a manifest list. */
typedef struct cf_ice_mfile {
    char    *path;               /* owned */
    int64_t  length;
    int      spec_id;
    int      content;            /* 0 data, 1 deletes */
    int64_t  seq, min_seq;
    int64_t  added_snapshot_id;
    int32_t  added_files, existing_files, deleted_files;
    int64_t  added_rows, existing_rows, deleted_rows;
    int      npsum;              /* 0: no partition summaries */
    cf_ice_psum psum[16];
} cf_ice_mfile;

typedef struct cf_ice_mlist {
    int n, alloc;
    cf_ice_mfile *v;
} cf_ice_mlist;

void cf_ice_mlist_free(cf_ice_mlist *l);
int  cf_ice_mlist_add(cf_ice_mlist *l, const cf_ice_mfile *m, cf_err *err);  /* copies path */

/* Every file below is read from or written to store st, at the location
 * metadata names (a path, file: or s3:// URL), as it is. */

/* Read a manifest list file (ours or another writer's) into *out, which the
 * caller frees with cf_ice_mlist_free (also on failure: left empty). */
int cf_ice_read_mlist(cf_store *st, const char *path, cf_ice_mlist *out, cf_err *err);
/* Write a manifest list at `path` (a new name: it must not exist). */
int cf_ice_write_mlist(cf_store *st, const char *path, const cf_ice_mlist *l, int64_t snapshot_id,
                       int64_t parent_id, int64_t seq, cf_err *err);

/* Write a manifest of `files` (all of one content kind and spec) at `path`
 * (must not exist) and fill *mf for the manifest list; mf->path borrows
 * `path` (cf_ice_mlist_add copies it).  `seq`/`snapshot_id`: of the
 * snapshot being committed (for min_sequence_number). */
int cf_ice_write_manifest(cf_store *st, const char *path, const cf_ice_file *files, int nfiles,
                          const cf_ice_spec *sp, json_t *schema_json, int schema_id,
                          int64_t snapshot_id, int64_t seq, cf_ice_mfile *mf, cf_err *err);
/* Read a manifest's entries, appending to *files (grown with realloc; each
 * owned).  Entries whose seq is null inherit `mf`'s sequence number. */
int cf_ice_read_manifest(cf_store *st, const cf_ice_mfile *mf, cf_ice_file **files, int *nfiles,
                         cf_err *err);

/* All live files (status != deleted) of a snapshot: data files then delete
 * files, each owned by the caller (cf_ice_files_free). */
int  cf_ice_snapshot_files(cf_store *st, json_t *snap, cf_ice_file **files, int *nfiles,
                           cf_err *err);
void cf_ice_files_free(cf_ice_file *files, int n);

/* Column metrics (value/null counts, bounds in single-value form) of a
 * Parquet file written with schema ws, into f->metrics (owned by f).
 * tt: the same columns with the table's types (NULL = ws's); max_bound:
 * longest string bound kept (0 = no limit; longer minimums are cut at a
 * character boundary, longer maximums left out). */
struct cf_pq_file_info;
int cf_ice_file_metrics(const cf_schema *ws, const cf_schema *tt, size_t max_bound,
                        const struct cf_pq_file_info *info, cf_ice_file *f, cf_err *err);

/* Add the NaN values of float/double columns among rows[0..n) of b (all
 * rows when rows is NULL) to nans[column].  The Parquet writer's statistics
 * count a NaN once per dictionary entry, not once per row, so manifests'
 * nan_value_counts come from here. */
void cf_ice_count_nans(const cf_batch *b, const uint32_t *rows, size_t n, int64_t *nans);
/* Replace the NaN counts of f's metrics (one per column, in order). */
void cf_ice_set_nans(cf_ice_file *f, const cf_schema *s, const int64_t *nans);

/* ---- scans ----------------------------------------------------------- */

/* Called with batches of rows of the table schema `s` (projected: columns
 * missing in a file are null), in file order.  `file`/`first_pos` say where
 * the rows came from (pos of each row in its file is given by `positions`). */
typedef int (*cf_ice_scan_fn)(void *ctx, const cf_batch *rows, const char *file,
                              const int64_t *positions, cf_err *err);

/* Scan the live rows of snapshot `snap` (position deletes applied),
 * projected onto schema `s`.  cols: indexes of s to read (NULL = all); the
 * batch passed to fn is bound to a schema of exactly those columns. */
int cf_ice_scan(cf_store *st, json_t *snap, const cf_schema *s, const int *cols, int ncols,
                cf_ice_scan_fn fn, void *ctx, cf_err *err);

/* The same over a list of files (data and position delete files). */
int cf_ice_scan_files(cf_store *st, const cf_ice_file *files, int nfiles, const cf_schema *s,
                      const int *cols, int ncols, cf_ice_scan_fn fn, void *ctx, cf_err *err);

/* Time for --timestamp / --older-than: epoch milliseconds, ISO-8601
 * ("2026-01-31", "2026-01-31T12:00:00Z"), or a duration before now_ms
 * ("7d", "12h", "30m", "45s"). */
int cf_ice_parse_time(const char *s, int64_t now_ms, int64_t *ms);
/* "2026-01-31T12:00:00.000Z" */
void cf_ice_format_time(int64_t ms, char *out, size_t n);

/* A new snapshot id: positive, random. */
int64_t cf_ice_new_snapshot_id(void);

/* ---- table commands ---------------------------------------------------- */

/* A table opened by a table command: the store of its location (opened
 * for the command), its catalog, and its metadata. */
typedef struct cf_ice_cmd_table {
    cf_store       *st;
    cf_ice_catalog *cat;
    cf_ice_table    t;
} cf_ice_cmd_table;

/* Open `location` and load its current metadata (or metadata version
 * `version` when > 0).  0, or -1 after printing "cdcflow CMD: why" on
 * stderr (a location without a table is one); *ct is then closed. */
int  cf_ice_cmd_open(const char *cmd, const char *location, int64_t version, cf_ice_cmd_table *ct);
void cf_ice_cmd_close(cf_ice_cmd_table *ct);             /* NULL-safe, idempotent */

/* ---- key index: bytes -> (int32 a, int64 b) --------------------------- */

/* Open-addressing hash map used for the primary-key index (key -> data
 * file number, row position) and for interning file paths.  Removing a key
 * keeps its slot with a = -1 so lookups stay simple; keys live in one pool. */
typedef struct cf_ice_kmap cf_ice_kmap;

cf_ice_kmap *cf_ice_kmap_new(size_t max_key_bytes);    /* NULL on OOM */
void         cf_ice_kmap_free(cf_ice_kmap *m);          /* NULL-safe */
/* Insert or overwrite.  CF_E_TOOBIG past the key-pool cap. */
int          cf_ice_kmap_put(cf_ice_kmap *m, const void *k, size_t n, int32_t a, int64_t b,
                             cf_err *err);
/* true with *a and *b set when present and not removed. */
bool         cf_ice_kmap_get(const cf_ice_kmap *m, const void *k, size_t n, int32_t *a, int64_t *b);
void         cf_ice_kmap_del(cf_ice_kmap *m, const void *k, size_t n);
size_t       cf_ice_kmap_live(const cf_ice_kmap *m);

/* Key bytes of row `row` over columns cols[0..n) of b (appended to out);
 * integers are widened so int and long columns give the same key. */
int cf_ice_key_of(const cf_batch *b, const int *cols, int n, size_t row, cf_buf *out, cf_err *err);

#endif
