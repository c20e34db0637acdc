/* parquet.h - Parquet writer and reader for cdcflow's data files, Delta
 * checkpoints and Iceberg data files.  Written from parquet.thrift and the
 * encodings spec: data page v1, PLAIN and RLE_DICTIONARY, ZSTD / SNAPPY /
 * uncompressed, statistics, field ids, key-value metadata.  The reader
 * also takes data page v2, the DELTA_* encodings and GZIP (files from
 * others).
 * docs/parquet.md has the details.
 *
 * Two writer APIs:
 *   - flat: a cf_schema and cf_batch rows (data files);
 *   - tree: a nested schema (struct/list/map) with leaf columns fed as
 *     definition/repetition levels plus values (Delta checkpoints). */
#ifndef CF_PARQUET_H
#define CF_PARQUET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "batch/batch.h"
#include "store/store.h"
#include "table/table.h"      /* cf_codec */
#include "util/err.h"

typedef struct cf_pq_options {
    cf_codec    codec;             /* default ZSTD */
    int         zstd_level;        /* default 3 */
    size_t      row_group_bytes;   /* target uncompressed row group size, default 128 MiB */
    size_t      page_bytes;        /* target page size, default 1 MiB */
    bool        dictionary;        /* try RLE_DICTIONARY, default true */
    size_t      dict_max_bytes;    /* fall back to PLAIN past this, default 1 MiB */
    bool        write_field_ids;   /* default true */
    int         nkv;               /* key-value metadata */
    const char *const *kv_keys;
    const char *const *kv_vals;
} cf_pq_options;

/* Fills the defaults above.  Zero sizes and level in a hand-made struct
 * also mean "default". */
void cf_pq_options_default(cf_pq_options *o);

/* Per-column statistics of a written file, in the column's own type:
 * ints/dates/timestamps/decimals in i_*, floats in d_*, bool in i_* (0/1),
 * strings/binary in s_* (owned, not NUL-terminated: s_*_len). */
typedef struct cf_pq_stats {
    int64_t null_count;
    int64_t value_count;           /* non-null values */
    bool    has_minmax;
    int64_t i_min, i_max;
    double  d_min, d_max;
    char   *s_min, *s_max;
    size_t  s_min_len, s_max_len;
    int64_t nan_count;             /* FLOAT/DOUBLE: NaN values (Iceberg nan_value_counts) */
    int64_t compressed_bytes;      /* the column's chunks on disk (Iceberg column_sizes) */
} cf_pq_stats;

/* Wide decimals (precision > 18) give s_* as decimal strings, UUIDs as
 * 36-char text.  Float columns holding a NaN have has_minmax false. */
typedef struct cf_pq_file_info {
    int64_t      num_rows;
    int64_t      file_bytes;
    int          ncols;
    cf_pq_stats *cols;             /* one per schema field (flat API), per leaf (tree) */
} cf_pq_file_info;

void cf_pq_file_info_free(cf_pq_file_info *fi);    /* frees members; NULL-safe */

/* ---- flat writer ----------------------------------------------------- */

typedef struct cf_pq_writer cf_pq_writer;

/* Create `path` in store st (CF_E_CONFLICT if a local file exists; on S3
 * the object appears whole at close).  `st` and `s` must outlive the
 * writer.  The writer is freed by cf_pq_writer_close or
 * cf_pq_writer_abort. */
cf_pq_writer *cf_pq_writer_open(cf_store *st, const char *path, const cf_schema *s,
                                const cf_pq_options *o, cf_err *err);
/* Append all rows of b (bound to the writer's schema).  Rows are buffered up
 * to a row group, then compressed and written: memory stays bounded.
 * After any write failure the writer is unusable: cf_pq_writer_abort it. */
int cf_pq_writer_write(cf_pq_writer *w, const cf_batch *b, cf_err *err);
/* Append only rows[0..n) of b, in that order. */
int cf_pq_writer_write_rows(cf_pq_writer *w, const cf_batch *b, const uint32_t *rows,
                            size_t n, cf_err *err);
/* Flush, write the footer and finish the file durably (cf_store_file_finish).  On success fills *info (may be
 * NULL) which the caller frees with cf_pq_file_info_free.  Frees w in every
 * case; on failure the partial file is removed. */
int cf_pq_writer_close(cf_pq_writer *w, cf_pq_file_info *info, cf_err *err);
/* Abandon: free w and remove the partial file.  NULL-safe. */
void cf_pq_writer_abort(cf_pq_writer *w);

/* ---- reader ---------------------------------------------------------- */

typedef struct cf_pq_reader cf_pq_reader;

/* Returns a reader the caller frees with cf_pq_reader_close (NULL and *err
 * on failure).  Untrusted input: every length and offset is checked,
 * allocations are bounded by the file size (a decompressed page by what its
 * codec's header states or its ratio allows), corrupt input fails with
 * CF_E_PARSE and a message; how many rows to hold is the caller's call
 * (cf_pq_reader_row_group_rows tells before reading).
 * Reads data page v1 and v2; PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY, RLE
 * booleans, DELTA_BINARY_PACKED, DELTA_LENGTH_BYTE_ARRAY, DELTA_BYTE_ARRAY,
 * BYTE_STREAM_SPLIT; ZSTD, SNAPPY, GZIP, uncompressed.  Other codecs and
 * encrypted files fail with CF_E_UNSUPPORTED. */
/* Reads `path` from store st (which must outlive the reader) with ranged
 * gets: the footer in one, then each column chunk it reads. */
cf_pq_reader *cf_pq_reader_open(cf_store *st, const char *path, cf_err *err);
/* Same over bytes in memory (borrowed: must outlive the reader). */
cf_pq_reader *cf_pq_reader_open_mem(const void *data, size_t len, cf_err *err);
void          cf_pq_reader_close(cf_pq_reader *r);         /* NULL-safe */
/* The file's flat schema (top-level primitive columns, field ids kept).
 * Owned by the reader. */
const cf_schema *cf_pq_reader_schema(const cf_pq_reader *r);
int64_t       cf_pq_reader_num_rows(const cf_pq_reader *r);
int           cf_pq_reader_num_row_groups(const cf_pq_reader *r);
/* Key-value metadata value for key, NULL if absent. */
const char   *cf_pq_reader_kv(const cf_pq_reader *r, const char *key);
int64_t       cf_pq_reader_row_group_rows(const cf_pq_reader *r, int rg);
/* Read row group rg, columns cols[0..ncols) (indexes into the reader
 * schema; NULL = all), appending rows to `out`, which must be bound to a
 * schema whose fields are those columns in that order. */
int           cf_pq_reader_read(cf_pq_reader *r, int rg, const int *cols, int ncols,
                                cf_batch *out, cf_err *err);

/* Types read back: INT32 (plain/INTEGER) -> INT32, DATE -> DATE, INT64 ->
 * INT64, TIMESTAMP(any unit, UTC) -> TIMESTAMP and (not UTC) ->
 * TIMESTAMP_NTZ in microseconds, TIME -> TIME (us), INT96 -> TIMESTAMP,
 * DECIMAL (INT32/INT64/BYTE_ARRAY/FLBA) -> DECIMAL (int64 when p <= 18,
 * else its decimal string), STRING/ENUM/JSON -> STRING, other BYTE_ARRAY
 * and FLBA -> BINARY, UUID -> UUID (36-char text), UINT_32 -> INT64. */

/* ---- nested reading: one leaf column with its levels ------------------
 * Leaves are the primitive columns of the full schema, depth-first, named
 * by their dotted path from the root's children: "add.path",
 * "add.partitionValues.key_value.key", "txn.version".  Reading a leaf gives
 * one entry per level entry: def[i]/rep[i] and vals entry i, valid exactly
 * when def[i] == max_def.  Without repeated ancestors (max_rep == 0) entry i
 * is row i of the row group, so a Delta checkpoint's add.path of row i is
 * vals[i] when valid. */
int         cf_pq_reader_num_leaves(const cf_pq_reader *r);
const char *cf_pq_reader_leaf_path(const cf_pq_reader *r, int leaf);   /* owned by r */
int         cf_pq_reader_find_leaf(const cf_pq_reader *r, const char *dotted);  /* -1 */

typedef struct cf_pq_leaf_data {
    size_t    n;              /* level entries */
    int16_t   max_def, max_rep;
    int16_t  *def;            /* n entries; NULL when max_def == 0 */
    int16_t  *rep;            /* n entries; NULL when max_rep == 0 */
    cf_column vals;           /* n entries */
} cf_pq_leaf_data;

/* Read leaf `leaf` of row group rg into *out (zero it first; the previous
 * contents are freed).  Free with cf_pq_leaf_data_free. */
int  cf_pq_reader_read_leaf(cf_pq_reader *r, int rg, int leaf, cf_pq_leaf_data *out,
                            cf_err *err);
void cf_pq_leaf_data_free(cf_pq_leaf_data *d);             /* NULL-safe, reusable */

/* ---- tree writer (nested: Delta checkpoints) ------------------------- */

typedef enum { CF_PQ_REQUIRED = 0, CF_PQ_OPTIONAL, CF_PQ_REPEATED } cf_pq_rep;

/* A schema node.  Groups have children; leaves have a type.  `logical`
 * marks LIST or MAP groups ("list", "map", NULL). */
typedef struct cf_pq_node {
    const char *name;
    cf_pq_rep   rep;
    int         nchildren;                 /* 0 for a leaf */
    const struct cf_pq_node *children;
    cf_type     type;                      /* leaf only */
    const char *logical;                   /* group only: "list" / "map" / NULL */
    int         field_id;
} cf_pq_node;

/* Open a writer for a nested schema rooted at `root` (a group; its name is
 * the schema name).  Leaves are numbered depth-first from 0. */
cf_pq_writer *cf_pq_writer_open_tree(cf_store *st, const char *path, const cf_pq_node *root,
                                     const cf_pq_options *o, cf_err *err);
/* Append `nlevels` level entries to leaf column `leaf`: def[i] and rep[i]
 * (rep may be NULL when the leaf has no repeated ancestor); the values of
 * the entries whose def equals the leaf's max definition level are taken in
 * order from `vals` (a column of the leaf's type, starting at value 0). */
int cf_pq_writer_write_leaf(cf_pq_writer *w, int leaf, const int16_t *def,
                            const int16_t *rep, size_t nlevels, const cf_column *vals,
                            cf_err *err);
/* Mark the end of a row group after every leaf got the same rows
 * (`nrows` top-level records).  CF_E_ARG when some leaf's entries with
 * rep == 0 do not number `nrows`. */
int cf_pq_writer_end_row_group(cf_pq_writer *w, int64_t nrows, cf_err *err);

#endif
