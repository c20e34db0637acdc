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
#include "util/log.h"

#define FLUSH_TIMEOUT_MS 60000
#define FILE_PENDING_MAX ((size_t)64 << 20)   /* write out early past this */
#define PRODUCER_MAX_MSG "100000000"
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
    char       *known[MAX_KNOWN_TOPICS];   /* dead-letter topics seen to exist */
    int         nknown;
    /* file */
    char       *path;
    int         fd;
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
        { "message.max.bytes", PRODUCER_MAX_MSG },
        { "client.id", "cdcflow-dlq" },
    };

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

/* Create the dead-letter topic when the broker does not auto-create it, so
 * that the first bad event does not turn into a delivery timeout.  A failure
 * here is only logged: the flush reports what really matters. */
static void ensure_topic(cf_dlq *d, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    rd_kafka_resp_err_t e;
    bool exists = false;

    for (int i = 0; i < d->nknown; i++)
        if (!strcmp(d->known[i], topic))
            return;
    if ((rkt = rd_kafka_topic_new(d->rk, topic, NULL))) {
        e = rd_kafka_metadata(d->rk, 0, rkt, &md, ADMIN_TIMEOUT_MS);
        exists = !e && md->topic_cnt == 1 && !md->topics[0].err;
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    if (!exists) {
        char why[256];
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, -1, why, sizeof why);
        rd_kafka_queue_t *q = rd_kafka_queue_new(d->rk);
        rd_kafka_event_t *ev;

        if (nt && q) {
            rd_kafka_CreateTopics(d->rk, &nt, 1, NULL, q);
            if ((ev = rd_kafka_queue_poll(q, ADMIN_TIMEOUT_MS))) {
                const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
                size_t n = 0;
                const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
                e = rd_kafka_event_error(ev);
                if (!e && n == 1)
                    e = rd_kafka_topic_result_error(tr[0]);
                if (!e)
                    cf_log(CF_LOG_INFO, "dlq", "created dead-letter topic %s", topic);
                else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                    cf_log(CF_LOG_WARN, "dlq", "cannot create dead-letter topic %s: %s", topic, rd_kafka_err2str(e));
                rd_kafka_event_destroy(ev);
            }
        }
        if (nt)
            rd_kafka_NewTopic_destroy(nt);
        if (q)
            rd_kafka_queue_destroy(q);
    }
    if (d->nknown < MAX_KNOWN_TOPICS && (d->known[d->nknown] = strdup(topic)))
        d->nknown++;
}

static int kafka_put(cf_dlq *d, const cf_msg *m, const char *reason, const cf_err *why, cf_err *err)
{
    char topic[300], part[16], off[24], pos[24];
    rd_kafka_resp_err_t e;
    rd_kafka_headers_t *h;
    size_t vlen = m->value ? m->value_len : 0;
    bool truncated = false;

    if (d->topic)
        snprintf(topic, sizeof topic, "%s", d->topic);
    else
        snprintf(topic, sizeof topic, "%s.dlq", m->topic ? m->topic : "cdcflow");
    ensure_topic(d, topic);
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    snprintf(pos, sizeof pos, "%ld", why ? why->pos : -1L);
    for (int attempt = 0; attempt < 2; attempt++) {
        h = rd_kafka_headers_new(8);
        rd_kafka_header_add(h, "cdcflow.error.reason", -1, reason, -1);
        rd_kafka_header_add(h, "cdcflow.error.code", -1, cf_code_name(why ? why->code : CF_E_PARSE), -1);
        rd_kafka_header_add(h, "cdcflow.error.topic", -1, m->topic ? m->topic : "", -1);
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
                                  RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
                                  RD_KAFKA_V_VALUE((void *)m->value, vlen),
                                  RD_KAFKA_V_HEADERS(h),
                                  RD_KAFKA_V_END);
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            rd_kafka_poll(d->rk, 100);      /* let deliveries drain the queue */
        }
        if (!e)
            return 0;
        rd_kafka_headers_destroy(h);        /* not taken on failure */
        if (e != RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || truncated)
            break;
        /* Bigger than any producer allows: keep the head and say so. */
        truncated = true;
        vlen = 1 << 20;
    }
    return cf_err_set(err, CF_E_KAFKA, "dead-letter to %s: %s", topic, rd_kafka_err2str(e));
}

static int kafka_flush(cf_dlq *d, cf_err *err)
{
    rd_kafka_resp_err_t e = rd_kafka_flush(d->rk, FLUSH_TIMEOUT_MS);
    long failed = atomic_exchange(&d->failed, 0);

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

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int file_write_pending(cf_dlq *d, cf_err *err)
{
    if (d->pending.len && write_all(d->fd, d->pending.data, d->pending.len))
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
    if (fsync(d->fd))
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
    if ((d->rk || d->fd >= 0) && cf_dlq_flush(d, &e))
        cf_log(CF_LOG_ERROR, "dlq", "closing: %s", e.msg);
    if (d->rk)
        rd_kafka_destroy(d->rk);
    if (d->fd >= 0)
        close(d->fd);
    cf_buf_free(&d->pending);
    for (int i = 0; i < d->nknown; i++)
        free(d->known[i]);
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
