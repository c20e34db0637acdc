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
#include <string.h>
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
    CF_AV_RECORD, CF_AV_ARRAY, CF_AV_MAP,
    CF_AV_UNION              /* schema nodes only; values take their branch's kind */
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

/* ---- schemas and binary primitives, for decoders of single datums ---- */

/* A parsed Avro schema: a graph of nodes (named types referenced again
 * share their node).  Nodes keep their JSON attributes, such as Kafka
 * Connect's "connect.name" and "connect.parameters". */
typedef struct cf_avro_schema cf_avro_schema;
typedef struct cf_avro_node cf_avro_node;

/* Parse schema JSON (len bytes, need not be NUL-terminated).  Returns a
 * schema owned by the caller (cf_avro_schema_free), or NULL with *err set
 * (CF_E_PARSE, CF_E_TOOBIG past 4096 nodes or nesting deeper than 32). */
cf_avro_schema *cf_avro_schema_parse(const char *json, size_t len, cf_err *err);
void cf_avro_schema_free(cf_avro_schema *s);                   /* NULL-safe */
const cf_avro_node *cf_avro_schema_root(const cf_avro_schema *s);
/* Accessors; nodes and strings live as long as their schema. */
cf_avro_kind cf_avro_node_kind(const cf_avro_node *n);
/* RECORD fields, UNION branches, ENUM symbols; 1 for ARRAY/MAP; else 0. */
int          cf_avro_node_count(const cf_avro_node *n);
/* RECORD field i's type, UNION branch i, ARRAY/MAP item type (i = 0). */
const cf_avro_node *cf_avro_node_child(const cf_avro_node *n, int i);
const char  *cf_avro_node_field(const cf_avro_node *n, int i);  /* RECORD field name */
const char  *cf_avro_node_name(const cf_avro_node *n);          /* named types, else NULL */
size_t       cf_avro_node_size(const cf_avro_node *n);          /* FIXED */
const char  *cf_avro_node_symbol(const cf_avro_node *n, int i); /* ENUM, NULL if out of range */
/* String attribute `key` of the node's schema object (with `sub`: member
 * `sub` of the object attribute `key`, e.g. "connect.parameters", "scale");
 * NULL when absent or not a string. */
const char  *cf_avro_node_attr(const cf_avro_node *n, const char *key, const char *sub);
/* Integer attribute within +-100000; -1 when absent or not such an integer. */
int          cf_avro_node_attr_int(const cf_avro_node *n, const char *key, long *out);

/* A read position in untrusted bytes: every read checks the end first and
 * fails with CF_E_PARSE and the byte offset from `start`. */
typedef struct cf_avro_cur {
    const uint8_t *p, *end, *start;
} cf_avro_cur;

int cf_avro_read_long_slow(cf_avro_cur *c, int64_t *out, cf_err *err);
int cf_avro_read_fail(cf_avro_cur *c, const char *what, cf_err *err);

/* Zig-zag varint (int and long alike). */
static inline int cf_avro_read_long(cf_avro_cur *c, int64_t *out, cf_err *err)
{
    if (c->p < c->end && !(*c->p & 0x80)) {     /* one byte: -64..63 */
        uint8_t b = *c->p++;
        *out = (int64_t)(b >> 1) ^ -(int64_t)(b & 1);
        return 0;
    }
    if (c->end - c->p >= 10) {                  /* room for any varint: no check per byte */
        uint64_t z = 0;
        for (int shift = 0; shift < 63; shift += 7) {
            uint8_t b = *c->p++;
            z |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80)) {
                *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
                return 0;
            }
        }
        c->p -= 9;                              /* the tenth byte: let the careful path judge */
    }
    *out = 0;
    return cf_avro_read_long_slow(c, out, err);
}

/* n bytes in place. */
static inline int cf_avro_read_fixed(cf_avro_cur *c, size_t n, const uint8_t **p, cf_err *err)
{
    if (n > (size_t)(c->end - c->p)) {
        *p = NULL;
        return cf_avro_read_fail(c, "truncated data", err);
    }
    *p = c->p;
    c->p += n;
    return 0;
}

/* The length prefix of bytes or string: 0 <= n <= the bytes left. */
static inline int cf_avro_read_len(cf_avro_cur *c, size_t *out, cf_err *err)
{
    int64_t n;
    *out = 0;
    if (cf_avro_read_long(c, &n, err))
        return -1;
    if (n < 0 || (uint64_t)n > (uint64_t)(c->end - c->p))
        return cf_avro_read_fail(c, n < 0 ? "negative length" : "length past the end of the data", err);
    *out = (size_t)n;
    return 0;
}

/* Little-endian IEEE 754. */
static inline int cf_avro_read_double(cf_avro_cur *c, double *out, cf_err *err)
{
    const uint8_t *p;
    uint64_t u = 0;
    if (cf_avro_read_fixed(c, 8, &p, err))
        return -1;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    memcpy(out, &u, 8);
    return 0;
}

static inline int cf_avro_read_float(cf_avro_cur *c, float *out, cf_err *err)
{
    const uint8_t *p;
    uint32_t u = 0;
    if (cf_avro_read_fixed(c, 4, &p, err))
        return -1;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)p[i] << (8 * i);
    memcpy(out, &u, 4);
    return 0;
}

#endif
