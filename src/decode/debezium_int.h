/* debezium_int.h - the decoder's internals shared by its JSON and Avro
 * paths (debezium.c, avro_dec.c): table versions, topics, and the helpers
 * that make both paths yield the same cf_schema pointers and cf_values.
 * Not for use outside src/decode/. */
#ifndef CF_DEBEZIUM_INT_H
#define CF_DEBEZIUM_INT_H

#include "decode/debezium.h"
#include "util/arena.h"

#define DEFAULT_MAX_MESSAGE  (16u << 20)
#define DEFAULT_MAX_BATCH    (256u << 20)
#define MAX_SCHEMA_CACHE     (1u << 20)   /* raw envelope schema bytes kept per topic */
#define MAX_COLUMNS          4096
#define MAX_TOPICS           10000
#define MAX_VERSIONS         10000        /* distinct table versions kept */
#define MAX_KEY_COLUMNS      32
#define MAX_DECIMAL_BYTES    1024         /* ~2466 digits: beyond any sane NUMERIC */
#define MAX_DIGITS           2600
#define DEFAULT_PLACEHOLDER  "__debezium_unavailable_value"

/* How a column's JSON value is encoded. */
enum enc {
    E_BOOL = 1,
    E_INT32,        /* int8/int16/int32: range-checked */
    E_INT64,
    E_FLOAT,        /* float32/float64; "NaN", "Infinity" strings too */
    E_STRING,
    E_BYTES,        /* base64 */
    E_DEC_B64,      /* connect Decimal: base64 two's complement, fixed scale */
    E_DEC_ANY,      /* envelope-less decimal: base64, JSON number or decimal text */
    E_VSDEC,        /* VariableScaleDecimal {scale, value} -> text */
    E_DATE,         /* days (or "YYYY-MM-DD") */
    E_TIME_MS,
    E_TIME_US,
    E_TIME_NS,
    E_TS_MS,
    E_TS_US,        /* micros, or an ISO-8601 string (ZonedTimestamp) */
    E_TS_NS,
    E_RAW,          /* struct/array/map: the JSON text itself */
};

typedef struct colenc {
    uint8_t  enc;
    bool     qok;        /* name is plain: the quoted-key fast path applies */
    int16_t  scale;      /* decimals */
    uint32_t namelen;
    uint32_t qoff;       /* "name" (with quotes) at rowdesc.qbuf + qoff */
} colenc;

/* A table version: its row schema plus how each column is encoded. */
typedef struct rowdesc {
    cf_schema      *schema;
    colenc         *enc;
    char           *qbuf;        /* quoted column names */
    char           *table;       /* "" when unknown */
    struct rowdesc *next;        /* registry list */
} rowdesc;

typedef struct topic {
    char    *name;
    uint8_t *vraw;               /* last envelope value schema bytes */
    size_t   vraw_len;
    rowdesc *vrd;                /* ... and the row description they gave */
    uint8_t *kraw;               /* last envelope key schema bytes */
    size_t   kraw_len;
    char   **pk;                 /* key column names from the last key */
    int      npk;
    bool     pk_set;
    rowdesc *base;               /* last table version seen on this topic */
    rowdesc *cur;                /* base with the key's primary key applied */
    /* db, schema, table, snapshot of the last event: arena copies that
     * the next events of the same batch (generation) share. */
    const char *src_str[4];
    size_t   src_len[4];
    unsigned src_gen;
    /* Avro: the last value and key schema ids and what they gave */
    bool     av_vset, av_kset;
    int64_t  av_vid, av_kid;
    const struct avro_plan *av_vplan;
} topic;

struct cf_decoder {
    cf_dec_format vfmt, kfmt;    /* wire formats of values and keys */
    cf_registry *reg;            /* Avro: writer schemas by id (borrowed) */
    unsigned    reg_wait_s;      /* how long a decode waits out a registry that is down */
    bool      (*stop)(void);     /* ... unless this says to stop */
    struct cf_dec_avro *avro;    /* Avro plans by schema id (avro_dec.c) */
    cf_arena  *arena;            /* per batch */
    cf_arena  *scratch;          /* per schema parse */
    size_t     max_msg;
    rowdesc   *registry;         /* every table version; freed with the decoder */
    int        nversions;
    rowdesc  **known;            /* envelope-less schemas by table name */
    int        nknown;
    rowdesc   *customers;
    topic    **topics;
    int        ntopics;
    topic     *last_topic;
    char      *ph;               /* unavailable placeholder */
    size_t     ph_len;
    char      *ph_b64;           /* ... as bytes columns carry it */
    size_t     ph_b64_len;
    unsigned   gen;              /* arena generation: +1 per reset */
    uint64_t   schema_parses;    /* envelope value schemas parsed (cache misses) */
};

extern const char cf_dec_empty[];

/* Arena allocation; a full per-batch arena is CF_E_FULL (not the event's fault). */
void *cf_dec_alloc(cf_arena *a, size_t n, cf_err *err);
/* CF_E_TYPE "<what>: column '<col>': <msg> at byte <pos>". Returns -1. */
int cf_dec_col_fail(cf_err *err, long pos, const char *what, const char *col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The registered table version equal to (s, enc, table), or a new one.
 * Takes ownership of s and enc either way.  NULL on error. */
rowdesc *cf_dec_intern(cf_decoder *d, cf_schema *s, colenc *enc, const char *table, cf_err *err);
topic   *cf_dec_topic(cf_decoder *d, const char *name, cf_err *err);
/* Make `base` the topic's current table version (with the key's pk). */
int      cf_dec_topic_set_base(cf_decoder *d, topic *t, rowdesc *base, cf_err *err);
/* Record the key's column names as the topic's primary key. */
int      cf_dec_topic_set_pk(cf_decoder *d, topic *t, const char *const *names, const size_t *lens,
                             int n, cf_err *err);
/* Map a Connect field (type "int32", ..., semantic name or NULL, Decimal
 * scale/precision when has_*) to a cf type and encoding.  -1 for an
 * unknown type or a scale out of range, with the reason in why. */
int      cf_dec_map_connect(const char *type, size_t tn, const char *name, size_t nn,
                            bool has_scale, long scale, bool has_prec, long prec,
                            cf_type *t, colenc *e, char *why, size_t whysz);
/* "srv.public.customers.Value" -> "customers". */
void     cf_dec_table_from_struct(const char *name, char *out, size_t cap);
/* Two's complement big-endian decimal bytes with `scale` into v, for
 * column fld; errors name `what` and byte pos. */
int      cf_dec_decimal(cf_decoder *d, const cf_field *fld, const uint8_t *b, size_t n, int scale,
                        cf_value *v, cf_err *err, long pos, const char *what);
/* A source string (k: 0 db, 1 schema, 2 table, 3 snapshot): the topic's copy
 * from the previous event of the batch when equal, else an arena copy. */
const char *cf_dec_source_str(cf_decoder *d, topic *t, int k, const char *p, size_t n, cf_err *err);
void     cf_dec_event_init(cf_event *ev, const cf_msg *m, topic *t);

/* The key's column names become the topic's primary key: JSON keys
 * (debezium.c), registry-framed Avro keys (avro_dec.c). */
int      cf_dec_json_key(cf_decoder *d, topic *t, const void *key, size_t n, cf_err *err);
int      cf_dec_avro_key(cf_decoder *d, topic *t, const void *key, size_t n, cf_err *err);
/* avro_dec.c: decode the (non-null) registry-framed Avro value of m into
 * *ev, whose Kafka coordinates cf_dec_event_init set; free the plans. */
int      cf_dec_avro_value(cf_decoder *d, topic *t, const cf_msg *m, cf_event *ev, cf_err *err);
void     cf_dec_avro_free(cf_decoder *d);

#endif
