/* event.h - one decoded Debezium change event: op, before/after row images,
 * the source block and the Kafka coordinates.  Everything an event points to
 * lives in the decoder's per-batch arena (strings are copied out of the
 * message): valid until the decoder is reset.  The schema lives until the
 * decoder is freed. */
#ifndef CF_EVENT_H
#define CF_EVENT_H

#include <stdbool.h>
#include <stdint.h>
#include "batch/batch.h"

typedef enum {
    CF_V_NULL = 0,      /* SQL NULL */
    CF_V_UNAVAILABLE,   /* Debezium's unchanged-TOAST placeholder: keep the old value */
    CF_V_BOOL,
    CF_V_INT,           /* i: integers, DATE days, TIMESTAMP/TIME micros, DECIMAL unscaled */
    CF_V_DOUBLE,        /* d */
    CF_V_STRING,        /* s, n: UTF-8 text, JSON text, UUID text, wide decimal text;
                         * s is NUL-terminated (not counted in n) */
    CF_V_BYTES,         /* s, n: raw bytes */
} cf_vkind;

/* Which kind a column of each type holds (besides NULL/UNAVAILABLE):
 * BOOL -> CF_V_BOOL; INT32, INT64, DATE, TIME, TIMESTAMP, TIMESTAMP_NTZ and
 * DECIMAL with precision <= 18 (unscaled) -> CF_V_INT; FLOAT, DOUBLE ->
 * CF_V_DOUBLE; STRING, UUID, wider DECIMAL (text with exactly `scale`
 * fraction digits) -> CF_V_STRING; BINARY -> CF_V_BYTES. */

typedef struct cf_value {
    cf_vkind kind;
    union {
        bool    b;
        int64_t i;
        double  d;
        struct { const char *s; size_t n; };
    };
} cf_value;

/* A row image: values parallel to the fields of `schema`. */
typedef struct cf_row {
    bool            present;   /* false when the image is null/absent */
    const cf_value *vals;      /* schema->nfields entries */
} cf_row;

typedef struct cf_source_info {
    int64_t     ts_ms;
    int64_t     lsn;           /* -1 if absent */
    int64_t     txid;          /* -1 if absent */
    const char *db, *schema, *table;   /* NUL-terminated, never NULL ("" if absent) */
    const char *snapshot;      /* "true", "last", "false", "incremental", "" */
} cf_source_info;

typedef struct cf_event {
    char            op;        /* 'c','u','d','r','t'; 0 for a tombstone */
    int64_t         ts_ms;     /* envelope ts_ms, -1 if absent */
    cf_source_info  src;
    /* The source table's row schema (column types, pk from the message
     * key).  NULL only for tombstones and truncates of a table not seen
     * before. */
    const cf_schema *schema;
    /* c, r: after only; u: after, and before with REPLICA IDENTITY FULL
     * (absent with DEFAULT); d: before (key columns only with DEFAULT,
     * others null); t and tombstones: neither. */
    cf_row          before, after;
    /* Kafka coordinates */
    const char     *topic;
    int32_t         partition;
    int64_t         offset;
    int64_t         kafka_ts_ms;
} cf_event;

#endif
