/* dlq.c - dead-letter targets: a Kafka topic (headers carry the reason) or a
 * JSON-lines file; see dlq.h. */
#include "runtime/dlq.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fs.h"
#include "util/id.h"
#include "util/log.h"

#define FLUSH_TIMEOUT_MS 60000
#define FILE_PENDING_MAX ((size_t)64 << 20)   /* write out early past this */
/* The largest dead letter sent (key + value + headers + framing), the
 * producer's message.max.bytes and the max.message.bytes of a dead-letter
 * topic cdcflow creates: the broker's usual default, so that the topic
 * looks like any other.  --dlq-kafka-prop message.max.bytes=N changes all
 * three. */
#define DLQ_MAX_BYTES "1048576"
/* Room left for the record batch header (61 bytes), the record's own
 * varints and each header's two length varints. */
#define RECORD_OVERHEAD 512
#define HEADER_OVERHEAD 16
#define MAX_KNOWN_TOPICS 256
#define ADMIN_TIMEOUT_MS 15000

typedef enum { DLQ_OFF, DLQ_KAFKA, DLQ_FILE } dlq_kind;

struct cf_dlq {
    dlq_kind    kind;
    char        desc[512];
    uint64_t    count;
    /* kafka */
    rd_kafka_t *rk;
    char       *topic;          /* NULL: "<source topic>.dlq" */
    _Atomic long failed;        /* delivery failures since the last flush */
    char        fail_msg[256];  /* first failure, written by the delivery callback */
    size_t      max_bytes;      /* the producer's message.max.bytes */
    struct known_topic {        /* dead-letter topics seen to exist */
        char   *name;
        size_t  limit;          /* what one batch to it may hold: min(its max.message.bytes, max_bytes) */
        size_t  unflushed;      /* bytes produced to it since the last flush */
    } known[MAX_KNOWN_TOPICS], overflow;    /* overflow: sized each time, not remembered */
    int         nknown;
    /* file: one local file appended to, or objects under a remote prefix */
    char       *path;
    int         fd;
    cf_store   *st;             /* remote prefix only */
    cf_buf      pending;
};

static void reason_text(char *dst, size_t cap, const cf_err *why)
{
    /* The byte position travels on its own (header / field): decoder
     * messages often name it already. */
    if (!why)
        snprintf(dst, cap, "unknown");
    else
        snprintf(dst, cap, "%s: %s", cf_code_name(why->code), why->msg);
}

/* ---- Kafka ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    cf_dlq *d = opaque;
    if (!m->err)
        return;
    /* Only the first failure's text is kept; the flush reports it. */
    if (atomic_fetch_add(&d->failed, 1) == 0)
        snprintf(d->fail_msg, sizeof d->fail_msg, "%s", rd_kafka_err2str(m->err));
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    cf_log(level <= 3 ? CF_LOG_ERROR : level == 4 ? CF_LOG_WARN : CF_LOG_DEBUG, "dlq", "%s: %s", fac, buf);
}

/* Whether a property of the source is one the dead-letter producer takes
 * too: the scope "*" ones of librdkafka's CONFIGURATION.md that say how to
 * reach and authenticate to the brokers, or how to debug.  The others are
 * consumer-only (a producer warns about each at every start: group.id,
 * fetch.*, isolation.level, ...) or size the consumer's reads
 * (message.max.bytes, receive.message.max.bytes): those would change what
 * the dead-letter topic must accept.  --dlq-kafka-prop sets them. */
static bool shared_with_producer(const char *key)
{
    static const char *const prefixes[] = {
        "sasl.", "ssl.", "ssl_", "socket.", "broker.", "reconnect.backoff", "api.version.", "metadata.",
        "topic.metadata.", "retry.backoff", "https.", "log.",
    };
    static const char *const names[] = {
        "bootstrap.servers", "client.id", "client.rack", "security.protocol", "enable.ssl.certificate.verification",
        "connections.max.idle.ms", "resolve.canonical.bootstrap.servers.only", "client.dns.lookup", "debug",
        "log_level", "statistics.interval.ms", "enable.sasl.oauthbearer.unsecure.jwt", "plugin.library.paths",
    };

    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (!strncmp(key, prefixes[i], strlen(prefixes[i])))
            return true;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(key, names[i]))
            return true;
    return false;
}

/* Apply "key=value" properties to conf.  shared: the source's properties,
 * of which only those shared_with_producer() are taken; else all, as
 * given.  Returns 0, or -1 with *err naming the key (never the value: it
 * may be a secret). */
static int apply_props(rd_kafka_conf_t *conf, const char *const *props, int n, bool shared, cf_err *err)
{
    const char *what = shared ? "kafka property" : "dead-letter producer property";

    for (int i = 0; i < n; i++) {
        const char *eq = strchr(props[i], '=');
        char key[256], why[512];
        rd_kafka_conf_res_t r;

        if (!eq || eq == props[i] || (size_t)(eq - props[i]) >= sizeof key)
            return cf_err_set(err, CF_E_ARG, "%s #%d: expected key=value (not shown: it may hold a secret)",
                              what, i + 1);
        memcpy(key, props[i], (size_t)(eq - props[i]));
        key[eq - props[i]] = '\0';
        if (shared && !shared_with_producer(key)) {
            cf_log(CF_LOG_DEBUG, "dlq", "%s %s is not for a producer: not used by the dead-letter producer",
                   what, key);
            continue;
        }
        r = rd_kafka_conf_set(conf, key, eq + 1, why, sizeof why);
        if (r == RD_KAFKA_CONF_OK)
            continue;
        if (eq[1] && strstr(why, eq + 1))
            snprintf(why, sizeof why, "invalid value (not shown)");
        return cf_err_set(err, CF_E_ARG, "%s %s: %s", what, key, why);
    }
    return 0;
}

static int kafka_open(cf_dlq *d, const cf_dlq_config *cfg, cf_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[512];
    static const char *const defaults[][2] = {
        { "enable.idempotence", "true" },   /* no duplicates from producer retries */
        { "acks", "all" },
        { "linger.ms", "5" },
        { "message.timeout.ms", "60000" },
        { "message.max.bytes", DLQ_MAX_BYTES },
        { "client.id", "cdcflow-dlq" },
        /* cdcflow creates the topic itself, with a size limit that fits
         * what it sends (ensure_topic); the broker's default would not. */
        { "allow.auto.create.topics", "false" },
    };
    char mmb[32];
    size_t mmb_len = sizeof mmb;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap ? cfg->bootstrap : "localhost:9092",
                          why, sizeof why) != RD_KAFKA_CONF_OK)
        goto bad;
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], why, sizeof why) != RD_KAFKA_CONF_OK)
            goto bad;
    if (apply_props(conf, cfg->props, cfg->nprops, true, err)
        || apply_props(conf, cfg->producer_props, cfg->nproducer_props, false, err)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    if (rd_kafka_conf_get(conf, "message.max.bytes", mmb, &mmb_len) != RD_KAFKA_CONF_OK
        || (d->max_bytes = strtoull(mmb, NULL, 10)) == 0)
        d->max_bytes = strtoull(DLQ_MAX_BYTES, NULL, 10);
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    if (!(d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        rd_kafka_conf_destroy(conf);
        return cf_err_set(err, CF_E_KAFKA, "dead-letter producer: %s", why);
    }
    return 0;
bad:
    rd_kafka_conf_destroy(conf);
    return cf_err_set(err, CF_E_ARG, "dead-letter producer property: %s", why);
}

/* max.message.bytes of an existing topic, 0 if it cannot be read (no
 * DescribeConfigs right, broker down).  Cannot fail otherwise. */
static size_t topic_max_bytes(cf_dlq *d, const char *topic)
{
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(d->rk);
    rd_kafka_event_t *ev = NULL;
    size_t limit = 0;

    if (cr && q) {
        rd_kafka_DescribeConfigs(d->rk, &cr, 1, NULL, q);
        ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS);
    }
    if (ev && !rd_kafka_event_error(ev)) {
        const rd_kafka_DescribeConfigs_result_t *res = rd_kafka_event_DescribeConfigs_result(ev);
        size_t n = 0, ne = 0;
        const rd_kafka_ConfigResource_t **rs = res ? rd_kafka_DescribeConfigs_result_resources(res, &n) : NULL;
        const rd_kafka_ConfigEntry_t **es = n == 1 && !rd_kafka_ConfigResource_error(rs[0])
                                            ? rd_kafka_ConfigResource_configs(rs[0], &ne) : NULL;
        for (size_t i = 0; i < ne; i++)
            if (!strcmp(rd_kafka_ConfigEntry_name(es[i]), "max.message.bytes") && rd_kafka_ConfigEntry_value(es[i]))
                limit = strtoull(rd_kafka_ConfigEntry_value(es[i]), NULL, 10);
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (cr)
        rd_kafka_ConfigResource_destroy(cr);
    return limit;
}

/* Ask the brokers to create `topic` with max.message.bytes = d->max_bytes.
 * Returns the broker's answer (0 = created). */
static rd_kafka_resp_err_t create_topic(cf_dlq *d, const char *topic)
{
    char why[256], limit[32];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, -1, why, sizeof why);
    rd_kafka_queue_t *q = rd_kafka_queue_new(d->rk);
    rd_kafka_event_t *ev;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL;

    snprintf(limit, sizeof limit, "%zu", d->max_bytes);
    if (nt && q && !rd_kafka_NewTopic_set_config(nt, "max.message.bytes", limit)) {
        rd_kafka_CreateTopics(d->rk, &nt, 1, NULL, q);
        if ((ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS))) {
            const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
            size_t n = 0;
            const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
            e = rd_kafka_event_error(ev);
            if (!e && n == 1)
                e = rd_kafka_topic_result_error(tr[0]);
            rd_kafka_event_destroy(ev);
        } else {
            e = RD_KAFKA_RESP_ERR__TIMED_OUT;
        }
    }
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    if (q)
        rd_kafka_queue_destroy(q);
    return e;
}

/* The dead-letter topic, created when missing (the producer does not let
 * the broker auto-create it with the broker's size limit), with the size a
 * batch to it may have.  Failures are only logged: the flush reports what
 * really matters.  Never NULL. */
static struct known_topic *ensure_topic(cf_dlq *d, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t e;
    bool exists = false;
    size_t limit = d->max_bytes, theirs = 0;
    struct known_topic *k;

    for (int i = 0; i < d->nknown; i++)
        if (!strcmp(d->known[i].name, topic))
            return &d->known[i];
    if ((rkt = rd_kafka_topic_new(d->rk, topic, NULL))) {
        e = rd_kafka_metadata(d->rk, 0, rkt, &md, ADMIN_TIMEOUT_MS);
        exists = !e && md->topic_cnt == 1 && !md->topics[0].err;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    if (!exists) {
        e = create_topic(d, topic);
        if (!e)
            cf_log(CF_LOG_INFO, "dlq", "created dead-letter topic %s (max.message.bytes %zu)", topic, d->max_bytes);
        else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            cf_log(CF_LOG_WARN, "dlq", "cannot create dead-letter topic %s: %s", topic, rd_kafka_err2str(e));
        exists = e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
    }
    /* Somebody else's topic may take less than we send. */
    if (exists && (theirs = topic_max_bytes(d, topic)) && theirs < limit) {
        cf_log(CF_LOG_INFO, "dlq", "dead-letter topic %s takes at most %zu bytes per record batch: bigger "
               "dead letters are cut to fit", topic, theirs);
        limit = theirs;
    }
    if (d->nknown < MAX_KNOWN_TOPICS && (d->known[d->nknown].name = strdup(topic)))
        k = &d->known[d->nknown++];
    else
        k = &d->overflow;
    k->limit = limit;
    k->unflushed = 0;
    return k;
}

/* Wait for every record in flight; what failed is counted for the next
 * cf_dlq_flush() to report. */
static void drain(cf_dlq *d)
{
    rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
    for (int i = 0; i < d->nknown; i++)
        d->known[i].unflushed = 0;
}

static int kafka_put(cf_dlq *d, const cf_msg *m, const char *reason, const cf_err *why, cf_err *err)
{
    char topic[300], part[16], off[24], pos[24];
    const char *code = cf_code_name(why ? why->code : CF_E_PARSE), *src = m->topic ? m->topic : "";
    rd_kafka_resp_err_t e;
    rd_kafka_headers_t *h;
    struct known_topic *k;
    size_t vlen = m->value ? m->value_len : 0, klen = m->key ? m->key_len : 0, hdrs, budget, rec;
    bool truncated = false;

    if (d->topic)
        snprintf(topic, sizeof topic, "%s", d->topic);
    else
        snprintf(topic, sizeof topic, "%s.dlq", m->topic ? m->topic : "cdcflow");
    k = ensure_topic(d, topic);
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    snprintf(pos, sizeof pos, "%ld", why ? why->pos : -1L);

    /* Cut the record to what the topic takes: the head of the value (and of
     * a huge key), marked, so that the stream goes on. */
    hdrs = 7 * HEADER_OVERHEAD + sizeof "cdcflow.error.reason" + strlen(reason) + sizeof "cdcflow.error.code"
           + strlen(code) + sizeof "cdcflow.error.topic" + strlen(src) + sizeof "cdcflow.error.partition"
           + strlen(part) + sizeof "cdcflow.error.offset" + strlen(off) + sizeof "cdcflow.error.position"
           + strlen(pos) + sizeof "cdcflow.error.truncated" + sizeof "true";
    budget = k->limit > RECORD_OVERHEAD + hdrs ? k->limit - RECORD_OVERHEAD - hdrs : 0;
    if (klen + vlen > budget) {
        truncated = true;
        if (klen > budget / 2)
            klen = budget / 2;
        vlen = vlen < budget - klen ? vlen : budget - klen;
    }
    rec = RECORD_OVERHEAD + hdrs + klen + vlen;
    /* Records produced between two flushes may share one batch, and the
     * broker checks the limit per batch. */
    if (k->unflushed + rec > k->limit)
        drain(d);

    h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "cdcflow.error.reason", -1, reason, -1);
    rd_kafka_header_add(h, "cdcflow.error.code", -1, code, -1);
    rd_kafka_header_add(h, "cdcflow.error.topic", -1, src, -1);
    rd_kafka_header_add(h, "cdcflow.error.partition", -1, part, -1);
    rd_kafka_header_add(h, "cdcflow.error.offset", -1, off, -1);
    if (why && why->pos >= 0)
        rd_kafka_header_add(h, "cdcflow.error.position", -1, pos, -1);
    if (truncated)
        rd_kafka_header_add(h, "cdcflow.error.truncated", -1, "true", -1);
    for (;;) {
        e = rd_kafka_producev(d->rk,
                              RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(m->key, klen),
                              RD_KAFKA_V_VALUE((void *)m->value, vlen),
                              RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(d->rk, 100);      /* let deliveries drain the queue */
    }
    if (e) {
        rd_kafka_headers_destroy(h);    /* not taken on failure */
        return cf_err_set(err, CF_E_KAFKA, "dead-letter to %s: %s", topic, rd_kafka_err2str(e));
    }
    k->unflushed += rec;
    if (truncated)
        cf_log(CF_LOG_INFO, "dlq", "dead letter of %s[%d] offset %lld cut to %zu of %zu bytes to fit %s", src,
               (int)m->partition, (long long)m->offset, klen + vlen,
               (m->value ? m->value_len : 0) + (m->key ? m->key_len : 0), topic);
    return 0;
}

static int kafka_flush(cf_dlq *d, cf_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
    long failed = atomic_exchange(&d->failed, 0);

    for (int i = 0; i < d->nknown; i++)
        d->known[i].unflushed = 0;
    if (e || rd_kafka_outq_len(d->rk) > 0)
        return cf_err_set(err, CF_E_KAFKA, "dead-letter flush: %d records not acknowledged in %d s",
                          rd_kafka_outq_len(d->rk), FLUSH_TIMEOUT_MS / 1000);
    if (failed)
        return cf_err_set(err, CF_E_KAFKA, "dead-letter: %ld records not stored: %s", failed, d->fail_msg);
    return 0;
}

/* ---- file ---- */

static int put_json_str(cf_buf *b, const char *s, size_t n, cf_err *err)
{
    if (cf_buf_putc(b, '"', err))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"' || c == '\\')
            rc = cf_buf_putc(b, '\\', err) || cf_buf_putc(b, c, err);
        else if (c < 0x20 || c >= 0x7f)
            /* Reasons may quote input bytes: keep the line plain ASCII JSON. */
            rc = cf_buf_printf(b, err, "\\u%04x", c);
        else
            rc = cf_buf_putc(b, c, err);
        if (rc)
            return -1;
    }
    return cf_buf_putc(b, '"', err);
}

static int put_base64(cf_buf *b, const uint8_t *p, size_t n, cf_err *err)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char q[4];

    if (cf_buf_putc(b, '"', err) || cf_buf_reserve(b, (n + 2) / 3 * 4 + 1, err))
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        if (cf_buf_append(b, q, 4, err))
            return -1;
    }
    return cf_buf_putc(b, '"', err);
}


/* Object storage has no append: each write-out is an object of its own,
 * named so that a listing sorts them by time. */
static int object_write_pending(cf_dlq *d, cf_err *err)
{
    char key[4200], id[37];

    cf_uuid(id);
    snprintf(key, sizeof key, "%s%sdead-letter-%013lld-%s.jsonl", d->path,
             d->path[strlen(d->path) - 1] == '/' ? "" : "/", (long long)cf_now_ms(), id);
    if (cf_store_put(d->st, key, d->pending.data, d->pending.len, err))
        return cf_err_wrap(err, "dead-letter %s", d->path);
    cf_buf_reset(&d->pending);
    return 0;
}

static int file_write_pending(cf_dlq *d, cf_err *err)
{
    if (d->st)
        return d->pending.len ? object_write_pending(d, err) : 0;
    if (d->pending.len && cf_fs_write_all(d->fd, d->pending.data, d->pending.len))
        return cf_err_set(err, CF_E_IO, "dead-letter %s: write: %s", d->path, strerror(errno));
    cf_buf_reset(&d->pending);
    return 0;
}

static int file_put(cf_dlq *d, const cf_msg *m, const char *reason, const cf_err *why, cf_err *err)
{
    cf_buf *b = &d->pending;
    size_t mark = b->len;
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (cf_buf_printf(b, err, "{\"time_ms\":%lld,\"reason\":",
                      (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000)
        || put_json_str(b, reason, strlen(reason), err)
        || cf_buf_printf(b, err, ",\"code\":\"%s\",\"pos\":%ld,\"topic\":",
                         cf_code_name(why ? why->code : CF_E_PARSE), why ? why->pos : -1L)
        || put_json_str(b, m->topic ? m->topic : "", m->topic ? strlen(m->topic) : 0, err)
        || cf_buf_printf(b, err, ",\"partition\":%d,\"offset\":%lld,\"timestamp_ms\":%lld,\"key_base64\":",
                         (int)m->partition, (long long)m->offset, (long long)m->timestamp_ms))
        goto fail;
    if (m->key ? put_base64(b, m->key, m->key_len, err) : cf_buf_printf(b, err, "null"))
        goto fail;
    if (cf_buf_printf(b, err, ",\"value_base64\":"))
        goto fail;
    if (m->value ? put_base64(b, m->value, m->value_len, err) : cf_buf_printf(b, err, "null"))
        goto fail;
    if (cf_buf_printf(b, err, "}\n"))
        goto fail;
    if (b->len > FILE_PENDING_MAX)
        return file_write_pending(d, err);
    return 0;
fail:
    b->len = mark;
    return -1;
}

static int file_flush(cf_dlq *d, cf_err *err)
{
    if (file_write_pending(d, err))
        return -1;
    if (!d->st && fsync(d->fd))
        return cf_err_set(err, CF_E_IO, "dead-letter %s: fsync: %s", d->path, strerror(errno));
    return 0;
}

/* ---- common ---- */

cf_dlq *cf_dlq_open(const cf_dlq_config *cfg, cf_err *err)
{
    const char *spec = cfg->spec && cfg->spec[0] ? cfg->spec : "off";
    cf_dlq *d = calloc(1, sizeof *d);

    if (!d) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    d->fd = -1;
    cf_buf_init(&d->pending, 0);
    if (!strcmp(spec, "off")) {
        d->kind = DLQ_OFF;
        snprintf(d->desc, sizeof d->desc, "off");
    } else if (!strcmp(spec, "kafka") || !strncmp(spec, "kafka:", 6)) {
        d->kind = DLQ_KAFKA;
        if (spec[5] == ':' && spec[6] && !(d->topic = strdup(spec + 6)))
            goto nomem;
        snprintf(d->desc, sizeof d->desc, "kafka:%s", d->topic ? d->topic : "<topic>.dlq");
        if (kafka_open(d, cfg, err))
            goto fail;
    } else if (!strncmp(spec, "file:", 5) && spec[5]) {
        d->kind = DLQ_FILE;
        if (!(d->path = strdup(spec + 5)))
            goto nomem;
        snprintf(d->desc, sizeof d->desc, "file:%s", d->path);
        if (cf_store_is_remote(d->path)) {
            if (!(d->st = cf_store_open(d->path, cfg->store, err)))
                goto fail;
            return d;
        }
        d->fd = open(d->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (d->fd < 0) {
            cf_err_set(err, CF_E_IO, "dead-letter file %s: %s", d->path, strerror(errno));
            goto fail;
        }
    } else {
        cf_err_set(err, CF_E_ARG, "unknown dead-letter target '%s' (kafka[:TOPIC], file:PATH or off)", spec);
        goto fail;
    }
    return d;
nomem:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
fail:
    cf_dlq_close(d);
    return NULL;
}

void cf_dlq_close(cf_dlq *d)
{
    cf_err e = { 0 };

    if (!d)
        return;
    if ((d->rk || d->fd >= 0 || d->st) && cf_dlq_flush(d, &e))
        cf_log(CF_LOG_ERROR, "dlq", "closing: %s", e.msg);
    if (d->rk)
        rd_kafka_destroy(d->rk);
    if (d->fd >= 0)
        close(d->fd);
    cf_store_close(d->st);
    cf_buf_free(&d->pending);
    for (int i = 0; i < d->nknown; i++)
        free(d->known[i].name);
    free(d->topic);
    free(d->path);
    free(d);
}

bool cf_dlq_enabled(const cf_dlq *d)
{
    return d && d->kind != DLQ_OFF;
}

int cf_dlq_put(cf_dlq *d, const cf_msg *m, const cf_err *why, cf_err *err)
{
    char reason[700];
    int rc;

    if (!cf_dlq_enabled(d))
        return cf_err_set(err, CF_E_ARG, "no dead-letter target");
    reason_text(reason, sizeof reason, why);
    rc = d->kind == DLQ_KAFKA ? kafka_put(d, m, reason, why, err) : file_put(d, m, reason, why, err);
    if (!rc)
        d->count++;
    return rc;
}

int cf_dlq_flush(cf_dlq *d, cf_err *err)
{
    if (!d || d->kind == DLQ_OFF)
        return 0;
    return d->kind == DLQ_KAFKA ? kafka_flush(d, err) : file_flush(d, err);
}

uint64_t cf_dlq_count(const cf_dlq *d)
{
    return d ? d->count : 0;
}

const char *cf_dlq_describe(const cf_dlq *d)
{
    return d ? d->desc : "off";
}
