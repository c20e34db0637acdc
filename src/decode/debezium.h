/* debezium.h - decoder for Debezium change events (JsonConverter, with or
 * without the schema envelope) into cf_event.
 *
 * The decoder owns a per-batch arena: events it returns stay valid until
 * cf_decoder_reset().  Decoding allocates nothing per event once warm. */
#ifndef CF_DEBEZIUM_H
#define CF_DEBEZIUM_H

#include "decode/event.h"
#include "source/source.h"
#include "util/err.h"

typedef struct cf_decoder cf_decoder;

typedef struct cf_decoder_config {
    /* Schemas for envelope-less events, by table name; the built-in
     * customers schema of SYSTEM.md is always known.  May be NULL/0. */
    const cf_schema *const *known;
    int              nknown;
    size_t           max_message_bytes;   /* 0 = 16 MiB */
} cf_decoder_config;

cf_decoder *cf_decoder_new(const cf_decoder_config *cfg, cf_err *err);
void        cf_decoder_free(cf_decoder *d);           /* NULL-safe */
/* Decode message `m` into *ev.  Returns 0 on success, -1 for a bad event
 * with *err saying why (code CF_E_PARSE, CF_E_TYPE, CF_E_TOOBIG, ...; pos is
 * the byte offset in the value).  A tombstone (m->value == NULL) decodes to
 * op 0. */
int         cf_decoder_decode(cf_decoder *d, const cf_msg *m, cf_event *ev, cf_err *err);
/* Release everything the events of the last batch pointed to. */
void        cf_decoder_reset(cf_decoder *d);

#endif
