/* debezium.h - decoder for Debezium change events (JsonConverter, with or
 * without the schema envelope) into cf_event.
 *
 * The decoder owns a per-batch arena: events it returns stay valid until
 * cf_decoder_reset().  Decoding allocates nothing per event once warm.
 *
 * Row schemas (cf_event.schema) are owned by the decoder and live until
 * cf_decoder_free(): one cf_schema per distinct table version, so a new
 * pointer means the table's columns (or primary key) changed.  See
 * docs/decoding.md for how each Debezium encoding maps to cf types. */
#ifndef CF_DEBEZIUM_H
#define CF_DEBEZIUM_H

#include "decode/event.h"
#include "decode/registry.h"
#include "source/source.h"
#include "util/err.h"

typedef struct cf_decoder cf_decoder;

/* Wire format of message values or keys. */
typedef enum {
    CF_DEC_JSON = 0,   /* Kafka Connect's JsonConverter, with or without the envelope */
    CF_DEC_AVRO,       /* Avro binary in a schema registry's framing (decode/registry.h) */
} cf_dec_format;

typedef struct cf_decoder_config {
    /* Schemas for envelope-less events, by table name (known_tables[i]
     * names known[i]; a NULL known_tables names none).  SYSTEM.md's
     * customers table is built in; a known "customers" overrides it.
     * Encodings are inferred from the types (docs/decoding.md).  Copied:
     * the caller keeps ownership.  May be NULL/0. */
    const cf_schema *const *known;
    const char *const *known_tables;
    int              nknown;
    size_t           max_message_bytes;   /* 0 = 16 MiB; key and value each */
    size_t           max_batch_bytes;     /* arena cap between resets; 0 = 256 MiB */
    /* Debezium's unavailable.value.placeholder; NULL = the default
     * "__debezium_unavailable_value". */
    const char      *unavailable_placeholder;
    /* Wire formats (JSON by default).  Avro needs `registry` (borrowed: it
     * must outlive the decoder), which resolves the writer schema of each
     * message's schema id; keys may stay JSON while values are Avro and
     * the other way round. */
    cf_dec_format    value_format, key_format;
    cf_registry     *registry;
    /* How long one decode waits out a registry that does not answer (with
     * backoff) before it gives up with a fatal error: 0 = 120 s.  `stop`,
     * when set, ends the wait early (a signal). */
    unsigned         registry_wait_s;
    bool           (*stop)(void);
} cf_decoder_config;

/* Returns a decoder (free with cf_decoder_free) or NULL with *err set. */
cf_decoder *cf_decoder_new(const cf_decoder_config *cfg, cf_err *err);
void        cf_decoder_free(cf_decoder *d);           /* NULL-safe */
/* Decode message `m` into *ev.  Returns 0 on success, -1 for a bad event
 * with *err saying why (code CF_E_PARSE, CF_E_TYPE, CF_E_TOOBIG,
 * CF_E_UNSUPPORTED; pos is the byte offset in the value, or in the key
 * when the message starts with "key:"; for Avro the offset in the message,
 * framing included; CF_E_NOTFOUND: an unknown schema id).  CF_E_FULL: the per-batch arena
 * is full; the event is fine: reset the decoder and decode it again.  A tombstone (m->value == NULL, or
 * a JSON null / {"schema":null,"payload":null} value) decodes to op 0.
 * Avro: a registry that does not answer is waited out (registry_wait_s);
 * past that the error is fatal (stop; the message is not bad).
 * On failure *ev is unspecified. */
int         cf_decoder_decode(cf_decoder *d, const cf_msg *m, cf_event *ev, cf_err *err);
/* Release everything the events of the last batch pointed to (schemas
 * excepted: they live until cf_decoder_free). */
void        cf_decoder_reset(cf_decoder *d);
/* Bytes held by the per-batch arena now (for metrics and tests). */
size_t      cf_decoder_arena_used(const cf_decoder *d);
/* Envelope value schemas parsed so far: one per message whose schema bytes
 * differ from the last ones of its topic (the rest are recognised by their
 * bytes and skipped); for Avro, one per value schema id compiled.  For
 * metrics and tests. */
uint64_t    cf_decoder_schema_parses(const cf_decoder *d);

/* The built-in customers row schema (SYSTEM.md's DDL as Debezium encodes
 * it: customer_id int32, lifetime_value decimal(10,2), timestamps as
 * timestamp_ntz micros); owned by the decoder. */
const cf_schema *cf_decoder_customers_schema(cf_decoder *d);

#endif
