/* dlq.h - the dead-letter target: events we cannot apply go there with their
 * original bytes, key, coordinates and the reason, so that the stream goes on
 * and nothing is dropped silently.
 *
 *   kafka        to "<source topic>.dlq" (per message)
 *   kafka:TOPIC  to TOPIC; headers cdcflow.error.reason/.code/.topic/
 *                .partition/.offset, value = original bytes, key = original key;
 *                a record bigger than the topic takes (its max.message.bytes,
 *                at most the producer's message.max.bytes) keeps the head
 *                that fits and gets header cdcflow.error.truncated=true
 *   file:PATH    one JSON object per line, original bytes in base64
 *   file:s3://BUCKET/PREFIX  the same lines, as one object per flush:
 *                PREFIX/dead-letter-<ms since epoch>-<uuid>.jsonl (S3 has
 *                no append)
 *   off          no target: bad input stops the pipeline
 *
 * Records become durable at cf_dlq_flush(), which the pipeline calls before
 * the table commit that covers their offsets. */
#ifndef CF_DLQ_H
#define CF_DLQ_H

#include <stdbool.h>
#include <stdint.h>
#include "source/source.h"
#include "store/store.h"
#include "util/err.h"

typedef struct cf_dlq cf_dlq;

typedef struct cf_dlq_config {
    const char *spec;              /* see above; NULL = "off" */
    const char *bootstrap;         /* Kafka targets */
    /* The source's librdkafka properties "key=value": only those that apply
     * to a producer as well (connection, security, client.id, debug, ...;
     * see dlq.c) are used, the consumer-only ones are left out. */
    const char *const *props;
    int         nprops;
    /* Properties for the dead-letter producer only (--dlq-kafka-prop),
     * applied last and as given.  message.max.bytes here also sets the
     * largest dead letter sent (see cf_dlq_put). */
    const char *const *producer_props;
    int         nproducer_props;
    const cf_store_config *store;  /* file:s3://... targets; NULL: from the environment */
} cf_dlq_config;

/* Returns NULL with *err set on failure. */
cf_dlq  *cf_dlq_open(const cf_dlq_config *cfg, cf_err *err);
/* Flushes what is pending (errors are logged) and frees.  NULL-safe. */
void     cf_dlq_close(cf_dlq *d);
/* False for "off". */
bool     cf_dlq_enabled(const cf_dlq *d);
/* Queue message `m` with the reason in `why` (code, message, byte position),
 * cut to fit the target topic (Kafka; see above).  Creates a missing Kafka
 * target topic first.  Copies what it needs: m may be released afterwards.
 * -1 with *err set if the record could not even be queued. */
int      cf_dlq_put(cf_dlq *d, const cf_msg *m, const cf_err *why, cf_err *err);
/* Make every queued record durable (Kafka: acknowledged by the brokers;
 * file: written and fsynced).  -1 if any record could not be stored. */
int      cf_dlq_flush(cf_dlq *d, cf_err *err);
/* Records accepted by cf_dlq_put() so far. */
uint64_t cf_dlq_count(const cf_dlq *d);
/* Human-readable target, e.g. "kafka:<topic>.dlq", "file:/x", "off". */
const char *cf_dlq_describe(const cf_dlq *d);

#endif
