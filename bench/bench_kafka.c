/* bench_kafka.c - the Kafka side of bench/kafka.sh: make a topic of
 * Debezium customers events shaped like the stack's own, time a bare
 * librdkafka consumer reading it to the end, and delete the topic.
 *
 *   bench_kafka create TOPIC PARTITIONS BOOTSTRAP
 *   bench_kafka produce N TOPIC BOOTSTRAP EVENT_FIXTURE KEY_FIXTURE
 *   bench_kafka produce-avro N TOPIC BOOTSTRAP SCHEMA_ID [KEY_SCHEMA_ID]
 *   bench_kafka consume TOPIC BOOTSTRAP GROUP
 *   bench_kafka delete TOPIC BOOTSTRAP
 *
 * produce copies the schema block of a real event of the stack's
 * postgres.public.customers topic (the fixtures, bench/customers_event*.json)
 * into every message and varies the payload: keys 1..min(N/10, 100000) are
 * created, then updated (90%) and deleted (10%, each delete followed by its
 * tombstone, as Debezium does), with REPLICA IDENTITY FULL before images as
 * the stack's tables have.  N counts every message, tombstones too.
 *
 * produce-avro makes the same sequence of changes (same keys, ops and
 * tombstones) as Kafka Connect's AvroConverter would write them: Confluent
 * framing with SCHEMA_ID (tests/data/avro/2.avsc, registered by the caller)
 * and the datum of bench/avro_events.h, full before images; keys framed
 * with KEY_SCHEMA_ID (1.avsc), or JSON {"customer_id":N} without it.  It
 * prints "MESSAGES TOMBSTONES VALUE_BYTES KEY_BYTES".
 *
 * consume is the reference cdcflow is measured against: a consumer in a new
 * group (so it pays the same group join), librdkafka's defaults, every
 * message fetched and its bytes touched, nothing else.  It prints
 * "MESSAGES BYTES" once every partition is read to the end offset it had
 * at the start. */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_events.h"

#define ROW_MAX  2048
#define KEYS     100000

static volatile unsigned long long touched;   /* keeps the consumer's reads */

/* ---- fixtures ---- */

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *p = NULL;
    long len;

    if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
        !(p = malloc((size_t)len + 1)) || fread(p, 1, (size_t)len, f) != (size_t)len) {
        fprintf(stderr, "bench_kafka: cannot read %s\n", path);
        free(p);
        if (f)
            fclose(f);
        return NULL;
    }
    fclose(f);
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' || p[len - 1] == ' '))
        len--;
    p[len] = '\0';
    *n = (size_t)len;
    return p;
}

/* The bytes of S in a {"schema":S,"payload":...} message, as Kafka
 * Connect's JsonConverter writes it (schema first, no blanks). */
static int schema_span(const char *msg, const char **s, size_t *n)
{
    const char *end = strstr(msg, ",\"payload\":");

    if (strncmp(msg, "{\"schema\":{", 11) != 0 || !end)
        return -1;
    *s = msg + 10;
    *n = (size_t)(end - *s);
    return 0;
}

/* ---- payloads ---- */

static const char *const firsts[] = { "Ann", "Bob", "Grace", "Zoë", "Ahmed", "Li", "María", "O'Neil" };
static const char *const lasts[] = { "Doe", "Smith", "García", "Nguyen", "Müller", "Kowalski", "Okafor" };
static const char *const cities[] = { "Austin", "Paris", "Osaka", "Lagos", "Lima", "Springfield" };
static const char *const states[] = { "TX", "IDF", "27", "LA", "LIM", "IL" };
static const char *const countries[] = { "USA", "France", "Japan", "Nigeria", "Peru", "USA" };
static const char *const tiers[] = { "bronze", "silver", "gold", "platinum" };

/* Base64 of the 4-byte big-endian two's complement of v >= 0 (a Connect
 * Decimal's unscaled value). */
static void b64_u32(uint32_t v, char out[9])
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    uint32_t a = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];

    out[0] = al[a >> 18];
    out[1] = al[(a >> 12) & 63];
    out[2] = al[(a >> 6) & 63];
    out[3] = al[a & 63];
    out[4] = al[b[3] >> 2];
    out[5] = al[(b[3] & 3) << 4];
    out[6] = '=';
    out[7] = '=';
    out[8] = '\0';
}

/* The row of customer `id` as of change `ver` (0 = as created). */
static int row(char *buf, size_t cap, long id, long ver)
{
    unsigned r = (unsigned)(id * 2654435761u), c = (unsigned)(r / 8) % 6;
    char ltv[9];

    b64_u32((uint32_t)((r % 5000000) + (uint32_t)ver * 1999), ltv);
    return snprintf(buf, cap,
                    "{\"customer_id\":%ld,\"email\":\"customer%ld@example.com\",\"first_name\":\"%s\","
                    "\"last_name\":\"%s\",\"phone\":\"+1-555-%04ld\",\"address_line1\":\"%ld Main Street\","
                    "\"city\":\"%s\",\"state\":\"%s\",\"postal_code\":\"%05u\",\"country\":\"%s\","
                    "\"registration_date\":%lld,\"last_updated\":%lld,\"is_active\":%s,"
                    "\"customer_tier\":\"%s\",\"lifetime_value\":\"%s\"}",
                    id, id, firsts[r % 8], lasts[(r / 64) % 7], id % 10000, id % 9000 + 1, cities[c],
                    states[c], r % 99999, countries[c], 1700000000000000LL + (long long)id * 1000003LL,
                    1796358031385471LL + (long long)ver * 1000000LL + id, ver % 7 ? "true" : "false",
                    tiers[(r + (unsigned)ver) % 4], ltv);
}

/* The changes: keys 1..keys created in order, then a walk over the keys
 * again and again, each change an update, except every 20th a delete
 * followed by its tombstone; a deleted key comes back as an insert. */
typedef struct gen {
    long     keys, i, last_delete;
    uint8_t *dead;          /* keys + 1 flags */
} gen;

/* The next message's op ('c', 'u', 'd', or 0 for a tombstone) and key. */
static char gen_next(gen *g, long *id)
{
    long i = g->i++, j = i - g->keys;
    char op;

    if (i < g->keys) {
        *id = i + 1;
        return 'c';
    }
    if (j % 20 == 19 && g->last_delete) {
        *id = g->last_delete;
        g->last_delete = 0;
        return 0;
    }
    *id = j % g->keys + 1;
    if (g->dead[*id])
        op = 'c';
    else if (j % 20 == 18)
        op = 'd';
    else
        op = 'u';
    g->dead[*id] = op == 'd';
    g->last_delete = op == 'd' ? *id : 0;
    return op;
}

/* Message i's value after {"schema":...,"payload": (0 bytes for a tombstone). */
static int payload(char *buf, size_t cap, long i, long keys, char op, long id)
{
    char before[ROW_MAX], after[ROW_MAX];
    long ver = i / keys;
    long long ts = 1796358031385LL + i, lsn = 39231392LL + (long long)i * 232;

    if (op == 0)
        return 0;
    if (op == 'u' || op == 'd')
        row(before, sizeof before, id, ver > 0 ? ver - 1 : 0);
    if (op != 'd')
        row(after, sizeof after, id, ver);
    return snprintf(buf, cap,
                    "{\"before\":%s,\"after\":%s,\"source\":{\"version\":\"2.7.4.Final\",\"connector\":\"postgresql\","
                    "\"name\":\"postgres\",\"ts_ms\":%lld,\"snapshot\":\"false\",\"db\":\"cdcdb\","
                    "\"sequence\":\"[\\\"%lld\\\",\\\"%lld\\\"]\",\"ts_us\":%lld,\"ts_ns\":%lld,"
                    "\"schema\":\"public\",\"table\":\"customers\",\"txId\":%lld,\"lsn\":%lld,\"xmin\":null},"
                    "\"transaction\":null,\"op\":\"%c\",\"ts_ms\":%lld,\"ts_us\":%lld,\"ts_ns\":%lld}",
                    op == 'c' ? "null" : before, op == 'd' ? "null" : after, ts, lsn - 232, lsn, ts * 1000,
                    ts * 1000000, 5168 + (long long)i, lsn, op, ts + 256, (ts + 256) * 1000,
                    (ts + 256) * 1000000);
}

/* ---- Kafka ---- */

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap, const char *group)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, why, sizeof why) ||
        (type == RD_KAFKA_PRODUCER &&
         (rd_kafka_conf_set(conf, "linger.ms", "20", why, sizeof why) ||
          rd_kafka_conf_set(conf, "compression.type", "lz4", why, sizeof why))) ||
        (group && (rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) ||
                   rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", why, sizeof why) ||
                   rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) ||
                   rd_kafka_conf_set(conf, "enable.partition.eof", "true", why, sizeof why)))) {
        fprintf(stderr, "bench_kafka: %s\n", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (!(rk = rd_kafka_new(type, conf, why, sizeof why)))
        fprintf(stderr, "bench_kafka: %s\n", why);
    return rk;
}

/* Create or delete a topic and wait for the broker's answer. */
static int admin(const char *topic, int partitions, const char *bootstrap)
{
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, bootstrap, NULL);
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    char why[512];
    int rc = 1;

    if (!rk)
        return 1;
    q = rd_kafka_queue_new(rk);
    if (partitions > 0) {
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, 1, why, sizeof why);
        if (!nt) {
            fprintf(stderr, "bench_kafka: %s\n", why);
            goto out;
        }
        rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
        rd_kafka_NewTopic_destroy(nt);
    } else {
        rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
        rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
        rd_kafka_DeleteTopic_destroy(dt);
    }
    if (!(ev = rd_kafka_queue_poll(q, 60000))) {
        fprintf(stderr, "bench_kafka: no answer from %s\n", bootstrap);
        goto out;
    }
    {
        const rd_kafka_topic_result_t **res;
        size_t n = 0;
        if (partitions > 0)
            res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        else
            res = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        if (rd_kafka_event_error(ev))
            fprintf(stderr, "bench_kafka: %s\n", rd_kafka_event_error_string(ev));
        else if (n == 1 && rd_kafka_topic_result_error(res[0]))
            fprintf(stderr, "bench_kafka: %s: %s\n", topic, rd_kafka_topic_result_error_string(res[0]));
        else
            rc = 0;
    }
    rd_kafka_event_destroy(ev);
out:
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

static int produce(long n, const char *topic, const char *bootstrap, const char *vpath, const char *kpath)
{
    size_t vn, kn, sn, ksn;
    char *vfix = slurp(vpath, &vn), *kfix = slurp(kpath, &kn);
    const char *s, *ks;
    char *val = NULL, key[1024];
    size_t cap;
    gen g = { .keys = n / 10 < 1 ? 1 : n / 10 > KEYS ? KEYS : n / 10 };
    rd_kafka_t *rk = NULL;
    int rc = 1;

    if (!vfix || !kfix)
        goto out;
    if (schema_span(vfix, &s, &sn) || schema_span(kfix, &ks, &ksn) || ksn > 800) {
        fprintf(stderr, "bench_kafka: the fixtures are not {\"schema\":...,\"payload\":...} events\n");
        goto out;
    }
    cap = sn + 3 * ROW_MAX;
    if (!(g.dead = calloc((size_t)g.keys + 1, 1)) || !(val = malloc(cap)) || !(rk = client(RD_KAFKA_PRODUCER, bootstrap, NULL)))
        goto out;
    memcpy(val, "{\"schema\":", 10);
    memcpy(val + 10, s, sn);
    memcpy(val + 10 + sn, ",\"payload\":", 11);
    for (long i = 0; i < n; i++) {
        size_t head = 10 + sn + 11;
        long id;
        char op = gen_next(&g, &id);
        int pn = payload(val + head, cap - head - 1, i, g.keys, op, id);
        int kl = snprintf(key, sizeof key, "{\"schema\":%.*s,\"payload\":{\"customer_id\":%ld}}", (int)ksn, ks, id);
        rd_kafka_resp_err_t e;

        val[head + (size_t)pn] = '}';
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY(key, (size_t)kl),
                                      RD_KAFKA_V_VALUE(op ? val : NULL, op ? head + (size_t)pn + 1 : 0),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 50);
        if (e) {
            fprintf(stderr, "bench_kafka: produce: %s\n", rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000)) {
        fprintf(stderr, "bench_kafka: messages left unsent after 120 s\n");
        goto out;
    }
    rc = 0;
out:
    if (rk)
        rd_kafka_destroy(rk);
    free(g.dead);
    free(val);
    free(vfix);
    free(kfix);
    return rc;
}

static int produce_avro(long n, const char *topic, const char *bootstrap, uint32_t sid, uint32_t ksid)
{
    gen g = { .keys = n / 10 < 1 ? 1 : n / 10 > KEYS ? KEYS : n / 10 };
    rd_kafka_t *rk = NULL;
    cf_buf val, key;
    unsigned long long vbytes = 0, kbytes = 0;
    long tombs = 0;
    int rc = 1;

    cf_buf_init(&val, 0);
    cf_buf_init(&key, 0);
    if (!(g.dead = calloc((size_t)g.keys + 1, 1)) || !(rk = client(RD_KAFKA_PRODUCER, bootstrap, NULL)))
        goto out;
    for (long i = 0; i < n; i++) {
        long id;
        char op = gen_next(&g, &id);
        rd_kafka_resp_err_t e;

        cf_buf_reset(&val);
        cf_buf_reset(&key);
        if (op)
            avro_event(&val, sid, (unsigned)i, (int)id, op, 1);
        else
            tombs++;
        if (ksid)
            avro_key(&key, ksid, (int)id);
        else
            cf_buf_printf(&key, NULL, "{\"customer_id\":%ld}", id);
        vbytes += val.len;
        kbytes += key.len;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                      RD_KAFKA_V_KEY(key.data, key.len),
                                      RD_KAFKA_V_VALUE(op ? val.data : NULL, op ? val.len : 0),
                                      RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 50);
        if (e) {
            fprintf(stderr, "bench_kafka: produce: %s\n", rd_kafka_err2str(e));
            goto out;
        }
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000)) {
        fprintf(stderr, "bench_kafka: messages left unsent after 120 s\n");
        goto out;
    }
    printf("%ld %ld %llu %llu\n", n, tombs, vbytes, kbytes);
    rc = 0;
out:
    if (rk)
        rd_kafka_destroy(rk);
    free(g.dead);
    cf_buf_free(&val);
    cf_buf_free(&key);
    return rc;
}

/* Read the topic from the start to the end offsets it had when we began,
 * as cdcflow --available-now does: a partition is done at its last message
 * (or at an EOF event, which only comes after an empty fetch has waited
 * fetch.wait.max.ms, so it is the backstop, not the rule). */
static int consume(const char *topic, const char *bootstrap, const char *group)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, bootstrap, group);
    rd_kafka_topic_partition_list_t *sub;
    const rd_kafka_metadata_t *md;
    unsigned long long msgs = 0, bytes = 0, sum = 0;
    int64_t *end = NULL;
    int parts = 0, done = 0, rc = 1;
    char *fin = NULL;

    if (!rk)
        return 1;
    {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        if (rkt && rd_kafka_metadata(rk, 0, rkt, &md, 10000) == 0) {
            if (md->topic_cnt == 1 && !md->topics[0].err)
                parts = md->topics[0].partition_cnt;
            rd_kafka_metadata_destroy(md);
        }
        if (rkt)
            rd_kafka_topic_destroy(rkt);
    }
    if (parts <= 0 || !(end = calloc((size_t)parts, sizeof *end)) || !(fin = calloc((size_t)parts, 1))) {
        fprintf(stderr, "bench_kafka: topic %s has no partitions\n", topic);
        goto out;
    }
    for (int p = 0; p < parts; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000)) {
            fprintf(stderr, "bench_kafka: no watermarks for %s[%d]\n", topic, p);
            goto out;
        }
        end[p] = hi;
        if (hi <= lo) {
            fin[p] = 1;
            done++;
        }
    }
    rd_kafka_poll_set_consumer(rk);
    sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    while (done < parts) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        int p;
        if (!m)
            continue;
        p = m->partition;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "bench_kafka: consume: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        if (!m->err) {
            /* Touch the bytes, as any reader must. */
            const unsigned char *b = m->payload;
            for (size_t i = 0; i < m->len; i += 64)
                sum += b[i];
            msgs++;
            bytes += m->len + m->key_len;
        }
        if (p >= 0 && p < parts && !fin[p] && (m->err || m->offset + 1 >= end[p])) {
            fin[p] = 1;
            done++;
        }
        rd_kafka_message_destroy(m);
    }
    touched = sum;
    printf("%llu %llu\n", msgs, bytes);
    rc = 0;
out:
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    free(end);
    free(fin);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "create"))
        return admin(argv[2], atoi(argv[3]) > 0 ? atoi(argv[3]) : 1, argv[4]);
    if (argc == 4 && !strcmp(argv[1], "delete"))
        return admin(argv[2], 0, argv[3]);
    if (argc == 7 && !strcmp(argv[1], "produce"))
        return produce(atol(argv[2]), argv[3], argv[4], argv[5], argv[6]);
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "produce-avro"))
        return produce_avro(atol(argv[2]), argv[3], argv[4], (uint32_t)strtoul(argv[5], NULL, 10),
                            argc == 7 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0);
    if (argc == 5 && !strcmp(argv[1], "consume"))
        return consume(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: bench_kafka create TOPIC PARTITIONS BOOTSTRAP | delete TOPIC BOOTSTRAP |\n"
                    "       produce N TOPIC BOOTSTRAP EVENT_FIXTURE KEY_FIXTURE |\n"
                    "       produce-avro N TOPIC BOOTSTRAP SCHEMA_ID [KEY_SCHEMA_ID] | consume TOPIC BOOTSTRAP GROUP\n");
    return 2;
}
