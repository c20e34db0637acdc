/* delta_int.h - internals shared by the Delta Lake sink, its checkpoints and
 * the table commands: the log (actions, put-if-absent commits), the table
 * state replayed from it (snapshot), stats and schema JSON, a byte-keyed hash
 * map (primary-key index, path index) and reading table rows back.
 *
 * Written from delta-io/delta PROTOCOL.md.  Writer protocol: minReaderVersion
 * 1, minWriterVersion 4 (change data feed), no column mapping, classic
 * single-file Parquet checkpoints (any V1 checkpoint read).  Deletion
 * vectors other writers added are honoured everywhere rows are read. */
#ifndef CF_DELTA_INT_H
#define CF_DELTA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "batch/batch.h"
#include "format/parquet/parquet.h"
#include "store/store.h"
#include "table/table.h"
#include "util/buf.h"
#include "util/err.h"

#define CF_DELTA_LOG_DIR       "_delta_log"
#define CF_DELTA_CDC_DIR       "_change_data"
#define CF_DELTA_NULL_PART     "__HIVE_DEFAULT_PARTITION__"
#define CF_DELTA_MAX_COMMIT    (256u << 20)   /* cap on one commit file we read */

/* ---- byte-keyed hash map (keys copied, values int64) ----------------- */

typedef struct cf_delta_map cf_delta_map;

/* Returns NULL on out of memory. */
cf_delta_map *cf_delta_map_new(void);
void          cf_delta_map_free(cf_delta_map *m);          /* NULL-safe */
/* Insert or overwrite.  -1 on out of memory. */
int           cf_delta_map_put(cf_delta_map *m, const void *k, size_t n, int64_t v);
/* 1 and *v when present, 0 when absent. */
int           cf_delta_map_get(const cf_delta_map *m, const void *k, size_t n, int64_t *v);
/* 1 when removed, 0 when absent. */
int           cf_delta_map_del(cf_delta_map *m, const void *k, size_t n);
size_t        cf_delta_map_count(const cf_delta_map *m);

/* ---- deletion vectors (dv.c) ------------------------------------------ */

/* A deletion vector descriptor as an add or remove action carries it. */
typedef struct cf_delta_dv {
    char    type;                 /* 'u' relative file, 'p' absolute file, 'i' inline; 0 none */
    char   *path;                 /* pathOrInlineDv */
    bool    has_offset;
    int64_t offset;               /* in its file; absent for inline */
    int32_t size;                 /* sizeInBytes of the bitmap */
    int64_t cardinality;          /* rows it deletes */
} cf_delta_dv;

/* Distinct row positions of one data file, ascending. */
typedef struct cf_rowset {
    uint64_t *v;
    size_t    n, cap;
} cf_rowset;

void    cf_delta_dv_free(cf_delta_dv *dv);
int     cf_delta_dv_copy(cf_delta_dv *dst, const cf_delta_dv *src, cf_err *err);
/* A descriptor from an action's "deletionVector" (NULL or null: none). */
int     cf_delta_dv_parse(json_t *o, cf_delta_dv *out, cf_err *err);
/* The descriptor as JSON (json null for none); a new reference. */
json_t *cf_delta_dv_json(const cf_delta_dv *dv);
/* Same uniqueId (storage type, path or inline bytes, offset)? */
bool    cf_delta_dv_same(const cf_delta_dv *a, const cf_delta_dv *b);
/* Location of a DV's file (root-relative 'u' or absolute 'p'); NULL for
 * inline ones (CF_E_CORRUPT) or OOM.  Caller frees. */
char   *cf_delta_dv_location(const char *root, const cf_delta_dv *dv, cf_err *err);
/* The rows a DV deletes (none for type 0), checked against its checksum
 * and cardinality. */
int     cf_delta_dv_read(cf_store *st, const char *root, const cf_delta_dv *dv, cf_rowset *out,
                         cf_err *err);
/* RoaringBitmapArray (magic + 64-bit portable roaring) <-> row set. */
int     cf_delta_dv_decode(const void *data, size_t n, cf_rowset *out, cf_err *err);
int     cf_delta_dv_encode(const cf_rowset *s, cf_buf *out, cf_err *err);
/* A DV file holding sets[0..n): out is reset; offsets[i]/sizes[i] get
 * what each descriptor records. */
int     cf_delta_dv_file(const cf_rowset *const *sets, size_t n, cf_buf *out, int64_t *offsets,
                         int32_t *sizes, cf_err *err);
int     cf_delta_z85_decode(const char *s, size_t n, cf_buf *out, cf_err *err);
int     cf_delta_z85_encode(const void *data, size_t n, cf_buf *out, cf_err *err);
bool    cf_rowset_has(const cf_rowset *s, uint64_t row);
/* Append row v, which must be above the last one (CF_E_CORRUPT if not). */
int     cf_rowset_add(cf_rowset *s, uint64_t v, cf_err *err);
void    cf_rowset_free(cf_rowset *s);

/* ---- table state ----------------------------------------------------- */

typedef struct cf_delta_pv {      /* partition values of one file */
    int    n;
    char **keys;
    char **vals;                  /* NULL entry = null value */
} cf_delta_pv;

typedef struct cf_delta_file {
    char       *path;             /* as in the log: relative and URL-encoded */
    cf_delta_pv pv;
    int64_t     size;
    int64_t     mtime;
    int64_t     num_records;      /* from stats, -1 when unknown */
    char       *stats;            /* stats JSON text or NULL */
    bool        data_change;
    cf_delta_dv dv;               /* rows of the file deleted (type 0: none) */
    bool        live;             /* false once removed; slots are never reused */
    int64_t     deleted_at;       /* removed: deletionTimestamp (ms), for checkpoint tombstones */
} cf_delta_file;

typedef struct cf_delta_txn {
    char   *app_id;
    int64_t version;
    int64_t last_updated;
} cf_delta_txn;

typedef struct cf_delta_snap {
    char          *root;          /* table location (path, file: or s3:// URL), no trailing '/' */
    cf_store      *st;            /* where root lives */
    bool           own_st;        /* st was opened for this snapshot: closed with it */
    int64_t        version;       /* -1: the table has no commit yet */
    int            min_reader, min_writer;
    json_t        *protocol;      /* body of the live protocol action */
    json_t        *metadata;      /* body of the live metaData action */
    cf_schema     *schema;        /* parsed schemaString; NULL before metaData */
    int            npart;
    char         **part_cols;
    bool           cdf_enabled;
    int            checkpoint_interval;
    cf_delta_file *files;         /* slots, live or not */
    size_t         nfiles, afiles, nlive;
    cf_delta_map  *by_path;       /* path -> slot of live files */
    cf_delta_txn  *txns;
    int            ntxns;
    int64_t        ckpt_version;  /* checkpoint the replay started from, -1 */
    int64_t        last_ts;       /* commitInfo timestamp of `version` (ms), -1 */
} cf_delta_snap;

/* An empty state for the table at `root` (version -1) in store st, which
 * must outlive the snapshot; st NULL: the snapshot opens the store of root
 * itself and closes it when freed.  NULL on OOM or a store that cannot be
 * opened. */
cf_delta_snap *cf_delta_snap_new(cf_store *st, const char *root, cf_err *err);
/* Replay the log of `root` up to `version` (-1 = latest), starting from the
 * newest usable checkpoint.  A location without a log gives version -1.
 * st as for cf_delta_snap_new.  Caller frees with cf_delta_snap_free. */
cf_delta_snap *cf_delta_snap_load(cf_store *st, const char *root, int64_t version, cf_err *err);
void           cf_delta_snap_free(cf_delta_snap *s);      /* NULL-safe */
/* Apply the newline-delimited actions of commit `version` (untrusted text). */
int            cf_delta_snap_apply(cf_delta_snap *s, const char *text, size_t len,
                                   int64_t version, cf_err *err);
/* Apply one parsed action object ({"add":{...}} ...). */
int            cf_delta_snap_apply_action(cf_delta_snap *s, json_t *action, cf_err *err);
/* A view of `s` with metaData `meta` in force: the view shares s's files,
 * txns and protocol and owns only the metadata-derived fields, so a commit
 * can be staged against a new schema while `s` stays what the table says.
 * Free with cf_delta_snap_view_free() (only what the view owns); the view is
 * valid while `s` is unchanged. */
int            cf_delta_snap_meta_view(const cf_delta_snap *s, json_t *meta, cf_delta_snap *view,
                                       cf_err *err);
void           cf_delta_snap_view_free(cf_delta_snap *view);
/* Read and apply commits after s->version until the newest; returns how many. */
int            cf_delta_snap_catch_up(cf_delta_snap *s, cf_err *err);
/* The txn version recorded for appId, -1 if none. */
int64_t        cf_delta_snap_txn(const cf_delta_snap *s, const char *app_id);
/* Live file by log path, NULL if absent. */
cf_delta_file *cf_delta_snap_file(const cf_delta_snap *s, const char *path);
/* Whether cdcflow may write to this table: protocol versions and features
 * it honours, no CHECK constraints or generated columns; append-only tables
 * only in append mode.  -1 with CF_E_UNSUPPORTED otherwise. */
int            cf_delta_snap_writable(const cf_delta_snap *s, bool removes, cf_err *err);
/* Partition value of file f for column `col`; *is_null set; NULL if absent. */
const char    *cf_delta_pv_get(const cf_delta_pv *pv, const char *col, bool *present);
void           cf_delta_pv_free(cf_delta_pv *pv);

/* ---- the log ------------------------------------------------------- */

/* Every function here reads and writes through store st, in which root is
 * a location (see store.h). */

/* "<root>/_delta_log/<20 digits>.json" into buf (size >= PATH_MAX). */
void cf_delta_commit_path(const char *root, int64_t version, char *buf, size_t n);
/* Atomically create commit `version` with `len` bytes (put-if-absent), so
 * a version is never overwritten and a reader never sees half a commit;
 * the local file's modification time is set to mtime_ms (the commitInfo
 * timestamp, -1: now) so every reader sees one commit time.
 * CF_E_CONFLICT (retriable) when the version exists. */
int  cf_delta_log_put_at(cf_store *st, const char *root, int64_t version, const void *data,
                         size_t len, int64_t mtime_ms, cf_err *err);
/* Read commit `version` into out (reset first; capped at
 * CF_DELTA_MAX_COMMIT).  CF_E_NOTFOUND when absent. */
int  cf_delta_log_read(cf_store *st, const char *root, int64_t version, cf_buf *out, cf_err *err);
/* Sorted list of commit versions present as JSON (malloc'd; caller frees). */
int  cf_delta_log_versions(cf_store *st, const char *root, int64_t **out, size_t *n, cf_err *err);
/* Checkpoint version named by _last_checkpoint, or found by listing; -1 if none. */
int64_t cf_delta_log_last_checkpoint(cf_store *st, const char *root, int64_t at_most);
/* Commit timestamp (ms) of `version`: commitInfo.timestamp, else the
 * object's modification time; -1. */
int64_t cf_delta_log_commit_ts(cf_store *st, const char *root, int64_t version);
/* Whether root's _delta_log holds a commit or a checkpoint. */
bool cf_delta_log_exists(cf_store *st, const char *root);

/* ---- JSON helpers: schema, stats, partition values, paths ------------ */

/* Spark StructType JSON for a cf_schema.  Caller frees (free()). */
char      *cf_delta_schema_json(const cf_schema *s, cf_err *err);
/* The cf type a Delta type name reads back as (TIME -> INT64, UUID ->
 * STRING, TIMESTAMP_NTZ -> TIMESTAMP, ...). */
int        cf_delta_schema_type(cf_type t, cf_type *out);
/* cf_schema from a schemaString; caller frees with cf_schema_free. */
cf_schema *cf_delta_schema_parse(const char *json, cf_err *err);
/* Delta type name of a cf type ("long", "decimal(10,2)"); buf >= 32. */
const char *cf_delta_type_name(cf_type t, char *buf, size_t n);
/* Stats JSON ({"numRecords":..,"minValues":..}) of a written file whose
 * columns are the fields of s (the file's schema).  Caller frees. */
char      *cf_delta_stats_json(const cf_schema *s, const cf_pq_file_info *fi, cf_err *err);
/* "YYYY-MM-DD" -> days; "YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z]" -> micros. */
int        cf_delta_parse_date(const char *s, int32_t *out);
/* "YYYY-MM-DD HH:MM:SS.mmm" (UTC) of epoch milliseconds; buf >= 32. */
void       cf_delta_fmt_ts_ms(int64_t ms, char *buf, size_t n);
int        cf_delta_parse_ts(const char *s, int64_t *out);
/* numRecords of a stats text, -1 when absent or unreadable. */
int64_t    cf_delta_stats_num_records(const char *stats);
/* The partition value string of row `row` of column c, appended to out
 * (nothing appended for null: *is_null = true). */
int        cf_delta_pv_format(const cf_column *c, size_t row, cf_buf *out, bool *is_null,
                              cf_err *err);
/* Hive-style escape of a partition value for a directory name. */
int        cf_delta_path_escape(const char *s, cf_buf *out, cf_err *err);
/* Percent-decode a log path into a filesystem path relative to the root.
 * Caller frees. */
char      *cf_delta_path_decode(const char *logpath);
/* The location of the file a log path names: relative paths (the usual,
 * percent-encoded) joined onto root with '/', absolute ones ("s3://...",
 * "file:/...", "/...", which other writers may log) as they are, decoded.
 * Caller frees; NULL on OOM. */
char      *cf_delta_path_full(const char *root, const char *logpath);
/* The path of location `loc` relative to root ("a=1/part-0.parquet"),
 * pointing into loc; NULL when loc is not under root.  "file:" forms and
 * plain paths of one local file compare equal. */
const char *cf_delta_path_rel(const char *root, const char *loc);
/* URL-encode a relative filesystem path for the log ('%' and unsafe bytes). */
int        cf_delta_path_encode(const char *fspath, cf_buf *out, cf_err *err);

/* ---- reading rows back ---------------------------------------------- */

/* Append the rows of data file `logpath` of the table at root in store st
 * (with partition values pv) to out,
 * which is bound to `tschema` (the table schema, maybe with extra trailing
 * columns such as _change_type): columns are matched by name, columns the
 * file lacks read as null, partition columns come from pv.  Rows deletion
 * vector dv (NULL or type 0: none) deletes are skipped. */
int cf_delta_read_file(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                       const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, cf_err *err);
/* The same for row group `only_rg` alone (all when < 0); *nrg (may be
 * NULL) gets the file's row group count, so big files can be read one row
 * group at a time. */
int cf_delta_read_file_rg(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                          const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, int only_rg,
                          int *nrg, cf_err *err);
/* cf_delta_read_file_rg that also appends to pos (when not NULL) the
 * position in the file of each row read, ascending: what a deletion
 * vector of the rows names. */
int cf_delta_read_file_pos(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                           const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, int only_rg,
                           int *nrg, cf_rowset *pos, cf_err *err);
/* The rows of the file outside row set `set` or, when `only`, inside it
 * (the rows one deletion vector adds to another). */
int cf_delta_read_file_set(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                           const cf_rowset *set, bool only, const cf_schema *tschema, cf_batch *out,
                           cf_err *err);
/* Parse a partition value string into column c at row (types as the table). */
int cf_delta_pv_parse(cf_column *c, size_t row, const char *v, cf_err *err);

/* ---- checkpoints ----------------------------------------------------- */

/* Write <version>.checkpoint.parquet for snapshot s and _last_checkpoint,
 * each replacing atomically whatever was there (cf_store_put). */
int cf_delta_checkpoint_write(const cf_delta_snap *s, cf_err *err);
/* Apply every action of checkpoint `version` to s (s->version becomes it). */
int cf_delta_checkpoint_read(cf_delta_snap *s, int64_t version, cf_err *err);
/* The same for one checkpoint file's bytes (untrusted; the fuzz target). */
int cf_delta_checkpoint_read_mem(cf_delta_snap *s, const void *data, size_t len, cf_err *err);

/* ---- offsets -------------------------------------------------------- */

/* Set (or raise) the next offset of topic/partition in o. */
int cf_delta_offsets_put(cf_offsets *o, const char *topic, int32_t partition, int64_t next,
                         cf_err *err);

#endif
