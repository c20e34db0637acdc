/* avro.h - Avro object container files (Avro 1.11 spec): the writer and the
 * reader of Iceberg's manifest lists and manifests.
 *
 * Writer: the caller encodes each record's datum with the cf_avro_put_*
 * helpers (binary encoding) and appends it; the writer groups records into
 * blocks, compresses them (null or deflate codec) and adds sync markers.
 * The schema JSON goes into the header byte for byte as given, so extra
 * attributes such as Iceberg's "field-id" stay intact.
 *
 * Reader: parses the header and the writer schema from untrusted bytes
 * (codecs null, deflate, snappy, zstandard) and
 * decodes each record into a generic value tree (cf_avro_value) that lives
 * in the reader's arena until the next cf_avro_reader_next() call.  Every
 * length, count and nesting depth is checked against the input and caps. */
#ifndef CF_AVRO_H
#define CF_AVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/store.h"
#include "util/buf.h"
#include "util/err.h"

typedef enum { CF_AVRO_NULL_CODEC = 0, CF_AVRO_DEFLATE } cf_avro_codec;

/* ---- binary encoding helpers (append to a caller buffer) ------------- */

int cf_avro_put_long(cf_buf *b, int64_t v, cf_err *err);      /* zigzag varint; int too */
int cf_avro_put_bool(cf_buf *b, bool v, cf_err *err);
int cf_avro_put_double(cf_buf *b, double v, cf_err *err);
int cf_avro_put_float(cf_buf *b, float v, cf_err *err);
int cf_avro_put_bytes(cf_buf *b, const void *p, size_t n, cf_err *err); /* also string */
int cf_avro_put_str(cf_buf *b, const char *s, cf_err *err);
/* A union branch index; follow with the branch's value (nothing for null). */
static inline int cf_avro_put_branch(cf_buf *b, int branch, cf_err *err)
{ return cf_avro_put_long(b, branch, err); }

/* ---- writer ---------------------------------------------------------- */

typedef struct cf_avro_writer cf_avro_writer;

/* schema_json is checked (it must parse as an Avro schema) and copied.
 * meta: nmeta extra header pairs (e.g. Iceberg's "format-version"); the
 * writer adds avro.schema and avro.codec itself.  Returns NULL on error. */
cf_avro_writer *cf_avro_writer_new(const char *schema_json, const char *const *meta_keys,
                                   const char *const *meta_vals, int nmeta,
                                   cf_avro_codec codec, cf_err *err);
void cf_avro_writer_free(cf_avro_writer *w);                   /* NULL-safe */
/* Append one encoded datum of the schema's type. */
int  cf_avro_writer_append(cf_avro_writer *w, const void *datum, size_t len, cf_err *err);
/* Flush the last block and hand the whole file's bytes to `out` (appended).
 * The writer can not be used afterwards except for cf_avro_writer_free. */
int  cf_avro_writer_finish(cf_avro_writer *w, cf_buf *out, cf_err *err);
int64_t cf_avro_writer_count(const cf_avro_writer *w);         /* records appended */

/* ---- generic values (reader) ----------------------------------------- */

typedef enum {
    CF_AV_NULL = 0, CF_AV_BOOL, CF_AV_INT, CF_AV_LONG, CF_AV_FLOAT, CF_AV_DOUBLE,
    CF_AV_BYTES, CF_AV_STRING, CF_AV_FIXED, CF_AV_ENUM,
    CF_AV_RECORD, CF_AV_ARRAY, CF_AV_MAP
} cf_avro_kind;

typedef struct cf_avro_value cf_avro_value;
struct cf_avro_value {
    cf_avro_kind kind;
    int64_t  i;              /* BOOL, INT, LONG, ENUM (symbol index) */
    double   d;              /* FLOAT, DOUBLE */
    const uint8_t *p;        /* BYTES, STRING, FIXED (not NUL-terminated) */
    size_t   n;              /* byte length, or item/field count */
    cf_avro_value *items;    /* RECORD fields, ARRAY items, MAP values */
    const char *const *names;/* RECORD field names; MAP keys are in keys */
    const cf_avro_value *keys;   /* MAP keys (STRING values) */
    int     *field_ids;      /* RECORD: "field-id" of each field, -1 if none */
};

/* Field of a record by name; NULL if v is not a record or has no such field. */
const cf_avro_value *cf_avro_get(const cf_avro_value *v, const char *name);
/* Convenience: integer of a field (INT/LONG/BOOL), `dflt` when null/absent. */
int64_t cf_avro_get_long(const cf_avro_value *v, const char *name, int64_t dflt);
/* String of a field as a NUL-terminated copy in buf (truncated to bufsz);
 * returns NULL when absent or null. */
const char *cf_avro_get_str(const cf_avro_value *v, const char *name, char *buf, size_t bufsz);

/* ---- reader ---------------------------------------------------------- */

typedef struct cf_avro_reader cf_avro_reader;

/* Reads from memory; data must stay valid while the reader lives.
 * Returns NULL with *err set (CF_E_PARSE, CF_E_UNSUPPORTED, CF_E_TOOBIG). */
cf_avro_reader *cf_avro_reader_open_mem(const void *data, size_t len, cf_err *err);
/* Reads the whole file from store st into memory (capped at 256 MiB). */
cf_avro_reader *cf_avro_reader_open_file(cf_store *st, const char *path, cf_err *err);
void cf_avro_reader_free(cf_avro_reader *r);                   /* NULL-safe */
/* Header metadata value (NUL-terminated copy owned by the reader), NULL if
 * absent.  "avro.schema" gives the schema JSON exactly as stored. */
const char *cf_avro_reader_meta(const cf_avro_reader *r, const char *key);
/* Decode the next record: 1 with *out set (valid until the next call),
 * 0 at the end, -1 on malformed input. */
int cf_avro_reader_next(cf_avro_reader *r, const cf_avro_value **out, cf_err *err);

/* Write bytes to a new file in store st (cf_store_file_create: locally
 * CF_E_CONFLICT if `path` exists).  Durable when it returns 0. */
int cf_avro_write_file(cf_store *st, const char *path, const void *p, size_t n, cf_err *err);

#endif
