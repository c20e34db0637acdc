/* avro_events.h - generated Debezium customers events in Avro, as Kafka
 * Connect's AvroConverter writes them behind a schema registry: Confluent
 * framing (magic byte 0, 4-byte big-endian schema id) and the Avro datum in
 * the field order of the writer schemas tests/data/avro/2.avsc (the
 * Envelope) and 1.avsc (the Key).  Shared by bench_decode.c and
 * bench_kafka.c; static functions, include it once per program.
 *
 * ev_first / ev_last / ev_cities / ev_tiers are also the word lists of
 * bench_decode.c's JSON events, so both formats carry the same rows. */
#ifndef CDCFLOW_BENCH_AVRO_EVENTS_H
#define CDCFLOW_BENCH_AVRO_EVENTS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "format/avro/avro.h"
#include "util/buf.h"

/* NULL entries are NULL column values; the JSON escape is undone for Avro. */
static const char *const ev_first[] = { "John", "Mary", "Zoë", "Ahmed", "Li", "O\\\"Neil", NULL };
static const char *const ev_last[] = { "Doe", "Smith", "García", "Nguyen", "Müller", "Kowalski" };
static const char *const ev_cities[] = { "Austin", "Paris", "Osaka", "Lagos", "Lima", NULL };
static const char *const ev_tiers[] = { "bronze", "silver", "gold", "platinum" };

static inline void a_str(cf_buf *b, const char *s) { cf_avro_put_str(b, s, NULL); }
static inline void a_ostr(cf_buf *b, const char *s)    /* ["null", "string"] */
{
    cf_avro_put_branch(b, s ? 1 : 0, NULL);
    if (s)
        a_str(b, s);
}
static inline void a_olong(cf_buf *b, long long v)     /* ["null", "long"] */
{
    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_long(b, v, NULL);
}

/* The JSON fixtures' names carry JSON escapes; the Avro ones the text. */
static inline const char *unescaped(const char *s) { return s && !strcmp(s, "O\\\"Neil") ? "O\"Neil" : s; }

/* The Confluent frame: magic byte 0, then the schema id, big-endian. */
static inline void avro_frame(cf_buf *b, uint32_t schema_id)
{
    uint8_t f[5] = { 0, (uint8_t)(schema_id >> 24), (uint8_t)(schema_id >> 16), (uint8_t)(schema_id >> 8),
                     (uint8_t)schema_id };
    cf_buf_append(b, f, sizeof f, NULL);
}

/* A framed postgres.public.customers.Key {customer_id: id} (1.avsc). */
static inline void avro_key(cf_buf *b, uint32_t schema_id, int id)
{
    avro_frame(b, schema_id);
    cf_avro_put_long(b, id, NULL);
}

/* ["null", Value] holding customer `id`'s row for seed r. */
static void avro_row(cf_buf *b, int id, unsigned r)
{
    char t[64];
    uint32_t v = (r * 7919u) % 99999999u;
    uint8_t ltv[4] = { 0, (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_long(b, id, NULL);
    snprintf(t, sizeof t, "user%d@example.com", id);
    a_ostr(b, t);
    a_ostr(b, unescaped(ev_first[r % 7]));
    a_ostr(b, ev_last[r % 6]);
    snprintf(t, sizeof t, "+1-555-%04u", r % 10000);
    a_ostr(b, t);
    snprintf(t, sizeof t, "%u Main St", r % 900 + 1);
    a_ostr(b, t);
    a_ostr(b, ev_cities[(r / 7) % 6]);
    a_ostr(b, r % 3 ? "TX" : NULL);
    snprintf(t, sizeof t, "%05u", r % 99999);
    a_ostr(b, t);
    a_ostr(b, "USA");
    a_olong(b, 1704103200000000LL + r * 1000003LL);
    a_olong(b, 1732439999000000LL + r * 17LL);
    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_bool(b, r % 5 != 0, NULL);
    a_ostr(b, ev_tiers[r % 4]);
    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_bytes(b, ltv, 4, NULL);
}

/* ["null", Value] holding only the key column (REPLICA IDENTITY DEFAULT's delete). */
static void avro_key_only(cf_buf *b, int id)
{
    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_long(b, id, NULL);
    for (int i = 0; i < 14; i++)
        cf_avro_put_branch(b, 0, NULL);
}

/* A framed Envelope (2.avsc) of op 'c', 'u' or 'd' on customer `id`, its
 * fields seeded by r.  full_before: updates and deletes carry the whole old
 * row (seed r - 1) as REPLICA IDENTITY FULL gives; else updates have no
 * before and deletes a key-only one. */
static void avro_event(cf_buf *b, uint32_t schema_id, unsigned r, int id, char op, int full_before)
{
    char t[64], ops[2] = { op, 0 };
    long long lsn = 24000000LL + r * 120LL;

    avro_frame(b, schema_id);
    if (full_before && op != 'c')
        avro_row(b, id, r - 1);
    else if (op == 'd')
        avro_key_only(b, id);
    else
        cf_avro_put_branch(b, 0, NULL);
    if (op == 'd')
        cf_avro_put_branch(b, 0, NULL);
    else
        avro_row(b, id, r);
    a_str(b, "2.7.4.Final");
    a_str(b, "postgresql");
    a_str(b, "postgres");
    cf_avro_put_long(b, 1732440000000LL + r, NULL);
    cf_avro_put_branch(b, 0, NULL);                         /* [string, null] */
    a_str(b, "false");
    a_str(b, "cdcdb");
    snprintf(t, sizeof t, "[\"%lld\",\"%lld\"]", lsn - 56, lsn);
    a_ostr(b, t);
    a_olong(b, (1732440000000LL + r) * 1000);
    a_olong(b, (1732440000000LL + r) * 1000000);
    a_str(b, "public");
    a_str(b, "customers");
    a_olong(b, 700 + r / 3);
    a_olong(b, lsn);
    cf_avro_put_branch(b, 0, NULL);                         /* xmin */
    cf_avro_put_branch(b, 0, NULL);                         /* transaction */
    a_str(b, ops);
    a_olong(b, 1732440000100LL + r);
    a_olong(b, (1732440000100LL + r) * 1000);
    a_olong(b, (1732440000100LL + r) * 1000000);
}

/* bench_decode's event r: customer r % 100000 + 1, 60% creates, 30%
 * updates, 10% key-only deletes. */
static inline void avro_payload(cf_buf *b, uint32_t schema_id, unsigned r)
{
    avro_event(b, schema_id, r, (int)(r % 100000) + 1, r % 10 < 6 ? 'c' : r % 10 < 9 ? 'u' : 'd', 0);
}

#endif
