/* batch.h - table schemas and columnar row batches: the data plane shared by
 * the decoder, the transforms, the Parquet writer and the table sinks.
 *
 * The column struct is public on purpose (like Arrow's C data interface): the
 * hot paths write and read values directly.  Invariants:
 *   - every column of a batch holds exactly `b->nrows` values once
 *     cf_batch_end_row() has run; values are appended in row order;
 *   - `valid[i]` is 1 for a value, 0 for null;
 *   - fixed-width values live in `vals` (int32/int64/float/double/bool as
 *     uint8); variable-width (STRING, BINARY) as `offs[i]..offs[i+1]` into
 *     `data`;
 *   - DECIMAL with precision <= 18 is stored as int64 unscaled; wider
 *     decimals are stored as their decimal string (type.id stays DECIMAL and
 *     cf_col_is_varlen() says so);
 *   - DATE is int32 days since 1970-01-01; TIMESTAMP and TIMESTAMP_NTZ are
 *     int64 microseconds since the epoch; TIME is int64 microseconds of day. */
#ifndef CF_BATCH_H
#define CF_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "util/buf.h"
#include "util/err.h"

typedef enum {
    CF_T_BOOL = 1,
    CF_T_INT32,
    CF_T_INT64,
    CF_T_FLOAT,
    CF_T_DOUBLE,
    CF_T_STRING,
    CF_T_BINARY,
    CF_T_DATE,
    CF_T_TIMESTAMP,      /* UTC-adjusted microseconds */
    CF_T_TIMESTAMP_NTZ,  /* wall-clock microseconds, no zone */
    CF_T_DECIMAL,
    CF_T_TIME,
    CF_T_UUID,           /* stored as its 36-char string */
} cf_type_id;

typedef struct cf_type {
    cf_type_id id;
    int precision;       /* DECIMAL only */
    int scale;           /* DECIMAL only */
} cf_type;

typedef struct cf_field {
    char   *name;        /* owned by the schema */
    cf_type type;
    bool    nullable;
    int     field_id;    /* Iceberg/Parquet field id, 0 = unassigned */
} cf_field;

/* A schema owns its fields and names.  `pk` lists primary-key field indexes
 * (npk may be 0).  Schemas are immutable once shared; cf_schema_clone to
 * change one. */
typedef struct cf_schema {
    int       nfields;
    cf_field *fields;
    int       npk;
    int      *pk;
} cf_schema;

cf_schema *cf_schema_new(void);
void       cf_schema_free(cf_schema *s);                  /* NULL-safe */
cf_schema *cf_schema_clone(const cf_schema *s);           /* NULL on OOM */
/* Appends a field; returns its index or -1. Assigns field_id = index+1 when
 * field_id is 0. */
int        cf_schema_add(cf_schema *s, const char *name, cf_type type, bool nullable,
                         int field_id, cf_err *err);
int        cf_schema_find(const cf_schema *s, const char *name);   /* -1 if absent */
int        cf_schema_set_pk(cf_schema *s, const char *const *names, int n, cf_err *err);
bool       cf_schema_equal(const cf_schema *a, const cf_schema *b);
const char *cf_type_name(cf_type_id id);                  /* "int64", ... */
/* Parse "int64", "string", "decimal(10,2)", "timestamp", ... */
int        cf_type_parse(const char *s, cf_type *out, cf_err *err);
bool       cf_type_is_varlen(cf_type t);

typedef struct cf_column {
    cf_type   type;
    size_t    n;          /* values appended so far */
    size_t    alloc;      /* capacity of valid/vals/offs in values */
    uint8_t  *valid;
    void     *vals;       /* fixed-width values */
    uint32_t *offs;       /* varlen: n+1 offsets into data */
    cf_buf    data;       /* varlen bytes */
} cf_column;

typedef struct cf_batch {
    const cf_schema *schema;   /* borrowed; must outlive the batch */
    size_t     nrows;
    int        ncols;
    cf_column *cols;
    size_t     max_bytes;      /* cap on varlen bytes per column, 0 = none */
} cf_batch;

cf_batch *cf_batch_new(const cf_schema *s, cf_err *err);
void      cf_batch_free(cf_batch *b);                     /* NULL-safe */
/* Drop all rows, keep memory. */
void      cf_batch_reset(cf_batch *b);
/* Switch to another schema (drops rows; keeps memory where types match). */
int       cf_batch_rebind(cf_batch *b, const cf_schema *s, cf_err *err);
/* Bytes the batch's values take: validity, fixed-width values, offsets and
 * varlen bytes of its rows.  O(columns); b may be NULL (0). */
size_t    cf_batch_bytes(const cf_batch *b);

/* Row building: set some columns of row b->nrows (any order, at most once
 * each), then cf_batch_end_row() pads unset columns with null and counts the
 * row.  cf_batch_abort_row() drops a partly built row. */
int  cf_col_set_null(cf_column *c, size_t row, cf_err *err);
int  cf_col_set_i64(cf_column *c, size_t row, int64_t v, cf_err *err); /* INT32/DATE take low 32 bits */
int  cf_col_set_f64(cf_column *c, size_t row, double v, cf_err *err);  /* FLOAT/DOUBLE */
int  cf_col_set_bool(cf_column *c, size_t row, bool v, cf_err *err);
int  cf_col_set_bytes(cf_column *c, size_t row, const void *p, size_t n, cf_err *err);
int  cf_batch_end_row(cf_batch *b, cf_err *err);
void cf_batch_abort_row(cf_batch *b);

/* A set of (row, column) cells of a batch, appended in row order: the
 * unchanged-TOAST placeholders of a batch, for example. */
typedef struct cf_cell { uint32_t row; int32_t col; } cf_cell;
typedef struct cf_cells {
    size_t   n, alloc;
    cf_cell *v;
} cf_cells;

int  cf_cells_add(cf_cells *c, size_t row, int col, cf_err *err);
/* Drop cells of rows >= row (a row given up half-built). */
void cf_cells_truncate(cf_cells *c, size_t row);
bool cf_cells_has(const cf_cells *c, size_t row, int col);   /* c may be NULL */
void cf_cells_free(cf_cells *c);          /* NULL-safe; *c is empty and reusable */

/* Set value `dst_row` of dst from value `row` of src (null stays null):
 * columns of one kind (varlen, integer, float), widths may differ. */
int  cf_col_copy(cf_column *dst, size_t dst_row, const cf_column *src, size_t row, cf_err *err);

/* Copy row `row` of `src` (same schema) to the end of `dst`. */
int  cf_batch_copy_row(cf_batch *dst, const cf_batch *src, size_t row, cf_err *err);

static inline bool cf_col_valid(const cf_column *c, size_t i) { return c->valid[i] != 0; }
static inline int64_t cf_col_i64(const cf_column *c, size_t i) { return ((const int64_t *)c->vals)[i]; }
static inline int32_t cf_col_i32(const cf_column *c, size_t i) { return ((const int32_t *)c->vals)[i]; }
static inline double  cf_col_f64(const cf_column *c, size_t i) { return ((const double *)c->vals)[i]; }
static inline float   cf_col_f32(const cf_column *c, size_t i) { return ((const float *)c->vals)[i]; }
static inline bool    cf_col_bool(const cf_column *c, size_t i) { return ((const uint8_t *)c->vals)[i] != 0; }
static inline const uint8_t *cf_col_bytes(const cf_column *c, size_t i, size_t *len)
{
    *len = c->offs[i + 1] - c->offs[i];
    /* A column of only empty strings has no byte buffer at all. */
    return c->data.data ? c->data.data + c->offs[i] : (const uint8_t *)"";
}
/* Make room for at least `n` values in total (and `bytes` more varlen
 * bytes), so bulk writers (the Parquet reader) can fill valid/vals/offs
 * directly and then set c->n. */
int    cf_col_reserve(cf_column *c, size_t n, size_t bytes, cf_err *err);
/* Size in bytes of one fixed-width value of this column (0 for varlen). */
size_t cf_col_width(const cf_column *c);

/* Inline forms of the setters for a row-at-a-time writer (the transforms):
 * the same contract and the same result as cf_col_set_i64 / _f64 / _bool /
 * _bytes, without a call in the common case, the next value of a column
 * with room left.  Anything else (padding, growth, a wrong type, a cap)
 * takes the function, which decides.  Keep each in step with its function. */
static inline int cf_col_put_i64(cf_column *c, size_t row, int64_t v, cf_err *err)
{
    if (c->n == row && row < c->alloc && c->vals &&
        (c->type.id == CF_T_INT64 || c->type.id == CF_T_TIMESTAMP ||
         c->type.id == CF_T_TIMESTAMP_NTZ || c->type.id == CF_T_TIME)) {
        ((int64_t *)c->vals)[row] = v;
        c->valid[row] = 1;
        c->n = row + 1;
        return 0;
    }
    return cf_col_set_i64(c, row, v, err);
}

static inline int cf_col_put_f64(cf_column *c, size_t row, double v, cf_err *err)
{
    if (c->n == row && row < c->alloc && c->vals && c->type.id == CF_T_DOUBLE) {
        ((double *)c->vals)[row] = v;
        c->valid[row] = 1;
        c->n = row + 1;
        return 0;
    }
    return cf_col_set_f64(c, row, v, err);
}

static inline int cf_col_put_bool(cf_column *c, size_t row, bool v, cf_err *err)
{
    if (c->n == row && row < c->alloc && c->vals && c->type.id == CF_T_BOOL) {
        ((uint8_t *)c->vals)[row] = v;
        c->valid[row] = 1;
        c->n = row + 1;
        return 0;
    }
    return cf_col_set_bool(c, row, v, err);
}

static inline int cf_col_put_bytes(cf_column *c, size_t row, const void *p, size_t n, cf_err *err)
{
    /* data.alloc never exceeds the byte cap, so room here is within it;
     * the +1 is the NUL room cf_buf keeps. */
    if (c->offs && c->n == row && row < c->alloc && n && c->data.len + n < c->data.alloc &&
        c->data.len + n <= UINT32_MAX) {
        memcpy(c->data.data + c->data.len, p, n);
        c->data.len += n;
        c->offs[row + 1] = (uint32_t)c->data.len;
        c->valid[row] = 1;
        c->n = row + 1;
        return 0;
    }
    return cf_col_set_bytes(c, row, p, n, err);
}

#endif
