/* kafka.c - the Kafka source: a librdkafka high-level consumer that starts
 * every assigned partition at the offset the table says it has committed.
 *
 * Progress truth lives in the table, never in the consumer group: auto
 * commit and auto offset store are off, and group offsets are committed only
 * so that lag tools (kafka-consumer-groups, Burrow) see where we are.
 *
 * Rebalances: the rebalance callback runs inside cf_source_poll().  On
 * assignment it asks the owner for the table's offsets (read again each time,
 * since another process of the group may have committed meanwhile) and seeks
 * there, or to the earliest offset.  On revocation it asks the owner to
 * commit the batch it holds before the partitions go away: the batch still
 * belongs to us until the callback returns, so committing it then is safe
 * and wastes no work.  If that commit fails the owner drops the batch; the
 * partitions we keep (cooperative protocol) are rewound to the table. */
#include "source/source_int.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define MAX_PARTS 100000
#define WAKE_TIMEOUT_MS      200     /* a wake-up request; its answer does not matter */
#define WATERMARK_TIMEOUT_MS 10000

typedef struct kpart {
    char    topic[256];
    int32_t partition;
    bool    assigned;
    bool    eof;        /* reached the end at least once since assignment */
    int64_t next;       /* next offset we will hand out, -1 unknown */
    int64_t from;       /* cf_msg.from of the next message, -1 unknown */
    int64_t target;     /* available-now: high watermark at start, -1 none */
} kpart;

typedef struct kafka_src {
    cf_source          *owner;
    rd_kafka_t         *rk;
    rd_kafka_message_t *cur;         /* handed out, freed at the next poll */
    kpart              *parts;
    int                 nparts, aparts;
    char              **topics;
    int                 ntopics;
    cf_offsets          seek_to;     /* from cf_source_seek(), used without an assign hook */
    bool                available_now;
    bool                bounded;     /* a memory bound keeps the fetch queues small */
    int                 wake_next;   /* partition to wake the fetcher of next (round robin) */
    bool                assigned_once;
    bool                failed;
    cf_err              fail;        /* why, when failed */
} kafka_src;

static kpart *part_get(kafka_src *k, const char *topic, int32_t partition, bool create)
{
    for (int i = 0; i < k->nparts; i++)
        if (k->parts[i].partition == partition && !strcmp(k->parts[i].topic, topic))
            return &k->parts[i];
    if (!create || strlen(topic) >= sizeof k->parts->topic)
        return NULL;
    if (k->nparts == k->aparts) {
        int na = k->aparts ? k->aparts * 2 : 16;
        kpart *nv;
        if (na > MAX_PARTS || !(nv = realloc(k->parts, (size_t)na * sizeof *nv)))
            return NULL;
        k->parts = nv;
        k->aparts = na;
    }
    kpart *p = &k->parts[k->nparts++];
    memset(p, 0, sizeof *p);
    strcpy(p->topic, topic);
    p->partition = partition;
    p->next = -1;
    p->from = -1;
    p->target = -1;
    return p;
}

static void fail(kafka_src *k, const cf_err *e)
{
    if (k->failed)
        return;
    k->failed = true;
    k->fail = *e;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    cf_log_level l = level <= 3 ? CF_LOG_ERROR : level == 4 ? CF_LOG_WARN
                   : level <= 6 ? CF_LOG_INFO : CF_LOG_DEBUG;
    /* Group offsets only feed lag tools; one refused during a rebalance is
     * expected and harmless, so it is no warning. */
    if (!strcmp(fac, "COMMITFAIL") && l < CF_LOG_DEBUG)
        l = CF_LOG_DEBUG;
    cf_log(l, "kafka", "%s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    kafka_src *k = opaque;
    char fatal[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        cf_err e = { 0 };
        rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        cf_err_set(&e, CF_E_KAFKA, "fatal consumer error: %s", fatal);
        fail(k, &e);
        return;
    }
    /* Broker down, transport errors: librdkafka retries by itself. */
    cf_log(CF_LOG_WARN, "kafka", "%s: %s", rd_kafka_err2name(err), reason);
}

/* Available-now: remember the high watermark of a partition once. */
static void set_target(kafka_src *k, kpart *p)
{
    int64_t lo = -1, hi = -1;
    rd_kafka_resp_err_t e;

    if (p->target >= 0)
        return;
    e = rd_kafka_query_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi,
                                         WATERMARK_TIMEOUT_MS);
    if (e) {
        cf_err ce = { 0 };
        cf_err_set(&ce, CF_E_KAFKA, "available-now: watermarks of %s[%d]: %s",
                   p->topic, p->partition, rd_kafka_err2str(e));
        fail(k, &ce);
        return;
    }
    p->target = hi;
    if (p->next < 0 || p->next < lo)
        p->next = lo;
}

static bool is_coop(kafka_src *k)
{
    /* NULL until the consumer has joined a group (and with no group at all). */
    const char *proto = rd_kafka_rebalance_protocol(k->rk);
    return proto && !strcmp(proto, "COOPERATIVE");
}

/* Seek the assigned partitions in `parts` back to the table's offsets. */
static void rewind_to_table(kafka_src *k, rd_kafka_topic_partition_list_t *keep)
{
    cf_offsets table = { 0 };
    cf_err e = { 0 };
    rd_kafka_error_t *re;

    if (!keep->cnt)
        return;
    if (k->owner->assign && k->owner->assign(k->owner->hook_opaque, &table, &e)) {
        fail(k, &e);
        return;
    }
    for (int i = 0; i < keep->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &keep->elems[i];
        int64_t off = cf_offsets_get(&table, tp->topic, tp->partition);
        kpart *p = part_get(k, tp->topic, tp->partition, false);
        tp->offset = off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
        if (p) {
            p->next = p->from = off;
            p->eof = false;
        }
    }
    if ((re = rd_kafka_seek_partitions(k->rk, keep, WATERMARK_TIMEOUT_MS))) {
        cf_err_set(&e, CF_E_KAFKA, "rewind after a dropped batch: %s", rd_kafka_error_string(re));
        rd_kafka_error_destroy(re);
        fail(k, &e);
    }
    cf_offsets_free(&table);
}

static int kafka_rewind(cf_source *s, const cf_offsets *to, cf_err *err)
{
    kafka_src *k = s->impl;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(to->n ? to->n : 1);
    rd_kafka_error_t *re = NULL;
    int rc = 0;

    for (int i = 0; i < to->n; i++) {
        kpart *p = part_get(k, to->v[i].topic, to->v[i].partition, false);
        int64_t off = to->v[i].next_offset;
        if (!p || !p->assigned)
            continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
            off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
        p->next = p->from = off;
        p->eof = false;
        cf_log(CF_LOG_INFO, "kafka", "rewound %s[%d] to %s %lld", p->topic, p->partition,
               off >= 0 ? "table offset" : "the earliest offset", (long long)off);
    }
    if (l->cnt && (re = rd_kafka_seek_partitions(k->rk, l, WATERMARK_TIMEOUT_MS))) {
        rc = cf_err_set(err, CF_E_KAFKA, "rewind: %s", rd_kafka_error_string(re));
        rd_kafka_error_destroy(re);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static void on_assign(kafka_src *k, rd_kafka_topic_partition_list_t *parts)
{
    cf_offsets table = { 0 };
    const cf_offsets *from = &k->seek_to;
    cf_err e = { 0 };
    rd_kafka_error_t *re = NULL;
    rd_kafka_resp_err_t rerr = 0;

    if (k->owner->assign) {
        if (k->owner->assign(k->owner->hook_opaque, &table, &e)) {
            /* Without the table's offsets we cannot consume safely. */
            cf_err_wrap(&e, "reading the table's offsets at assignment");
            fail(k, &e);
            parts = NULL;
        }
        from = &table;
    }
    for (int i = 0; parts && i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t off = cf_offsets_get(from, tp->topic, tp->partition);
        kpart *p = part_get(k, tp->topic, tp->partition, true);

        tp->offset = off >= 0 ? off : RD_KAFKA_OFFSET_BEGINNING;
        if (!p) {
            cf_err_set(&e, CF_E_TOOBIG, "too many partitions");
            fail(k, &e);
            continue;
        }
        p->assigned = true;
        p->eof = false;
        p->next = p->from = off;
        if (k->available_now)
            set_target(k, p);
        if (off >= 0)
            cf_log(CF_LOG_INFO, "kafka", "assigned %s[%d] from table offset %lld", tp->topic, tp->partition,
                   (long long)off);
        else
            cf_log(CF_LOG_INFO, "kafka", "assigned %s[%d] from the earliest offset", tp->topic, tp->partition);
    }
    if (!parts) {
        /* Complete the rebalance with nothing assigned; poll reports the failure. */
        if (!is_coop(k))
            rerr = rd_kafka_assign(k->rk, NULL);
    } else if (is_coop(k)) {
        re = rd_kafka_incremental_assign(k->rk, parts);
    } else {
        rerr = rd_kafka_assign(k->rk, parts);
    }
    if (re || rerr) {
        cf_err_set(&e, CF_E_KAFKA, "assign: %s", re ? rd_kafka_error_string(re) : rd_kafka_err2str(rerr));
        fail(k, &e);
        if (re)
            rd_kafka_error_destroy(re);
    }
    k->assigned_once = true;
    cf_offsets_free(&table);
}

static void on_revoke(kafka_src *k, rd_kafka_topic_partition_list_t *parts)
{
    cf_offsets revoked = { 0 };
    cf_err e = { 0 };
    bool coop = is_coop(k), lost = rd_kafka_assignment_lost(k->rk);
    int rc = 0;

    for (int i = 0; i < parts->cnt; i++) {
        kpart *p = part_get(k, parts->elems[i].topic, parts->elems[i].partition, false);
        cf_offsets_put(&revoked, parts->elems[i].topic, parts->elems[i].partition,
                       p ? p->next : -1, NULL);
    }
    /* The message handed out last belongs to the batch being committed. */
    if (k->owner->revoke)
        rc = k->owner->revoke(k->owner->hook_opaque, &revoked, lost);
    for (int i = 0; i < parts->cnt; i++) {
        kpart *p = part_get(k, parts->elems[i].topic, parts->elems[i].partition, false);
        if (p) {
            p->assigned = false;
            p->eof = false;
        }
        cf_log(CF_LOG_INFO, "kafka", "%s %s[%d]", lost ? "lost" : "revoked", parts->elems[i].topic,
               parts->elems[i].partition);
    }
    if (coop) {
        rd_kafka_error_t *re = rd_kafka_incremental_unassign(k->rk, parts);
        if (re) {
            cf_err_set(&e, CF_E_KAFKA, "unassign: %s", rd_kafka_error_string(re));
            rd_kafka_error_destroy(re);
            fail(k, &e);
        }
        if (rc) {
            /* The dropped batch also held rows of partitions we keep. */
            rd_kafka_topic_partition_list_t *keep = rd_kafka_topic_partition_list_new(8);
            for (int i = 0; i < k->nparts; i++)
                if (k->parts[i].assigned)
                    rd_kafka_topic_partition_list_add(keep, k->parts[i].topic, k->parts[i].partition);
            rewind_to_table(k, keep);
            rd_kafka_topic_partition_list_destroy(keep);
        }
    } else {
        rd_kafka_assign(k->rk, NULL);
    }
    cf_offsets_free(&revoked);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_src *k = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(k, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(k, parts);
    } else {
        cf_log(CF_LOG_WARN, "kafka", "rebalance failed: %s", rd_kafka_err2str(err));
        if (!is_coop(k))
            rd_kafka_assign(rk, NULL);
    }
}

/* Every assigned partition reached the high watermark seen at start. */
static bool caught_up(kafka_src *k)
{
    if (!k->available_now || !k->assigned_once)
        return false;
    for (int i = 0; i < k->nparts; i++) {
        kpart *p = &k->parts[i];
        if (!p->assigned)
            continue;
        if (p->target < 0 || p->next < 0 || p->next < p->target)
            return false;
    }
    return true;
}

/* librdkafka 2.0 stops fetching a partition whose queue is over
 * queued.max.messages.kbytes and looks again only when the broker thread
 * next wakes, up to a second later (2.1 added fetch.queue.backoff.ms for
 * it).  Under a memory bound the queues are small and fill often, so when
 * they run dry while the broker holds more, a request to the broker of a
 * partition with lag (the watermarks: cheap) wakes its thread at once. */
static void wake_fetcher(kafka_src *k)
{
    for (int n = 0; n < k->nparts; n++) {
        kpart *p = &k->parts[(k->wake_next + n) % k->nparts];
        int64_t lo = -1, hi = -1;
        if (!p->assigned || p->next < 0
            || rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) || hi <= p->next)
            continue;
        rd_kafka_query_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi, WAKE_TIMEOUT_MS);
        k->wake_next = (k->wake_next + n + 1) % k->nparts;
        return;
    }
}

static int kafka_poll(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err)
{
    kafka_src *k = s->impl;
    rd_kafka_message_t *rm;
    kpart *p;

    if (k->cur) {
        rd_kafka_message_destroy(k->cur);
        k->cur = NULL;
    }
    for (;;) {
        if (k->failed) {
            if (err)
                *err = k->fail;
            return -1;
        }
        if (caught_up(k))
            return 2;
        rm = rd_kafka_consumer_poll(k->rk, k->bounded && timeout_ms ? 0 : timeout_ms);
        if (!rm && k->bounded && timeout_ms) {
            wake_fetcher(k);
            rm = rd_kafka_consumer_poll(k->rk, timeout_ms);
        }
        if (k->failed) {
            if (rm)
                rd_kafka_message_destroy(rm);
            continue;
        }
        if (!rm)
            return caught_up(k) ? 2 : 0;
        if (!rm->err)
            break;
        if (rm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            const char *t = rm->rkt ? rd_kafka_topic_name(rm->rkt) : "";
            if ((p = part_get(k, t, rm->partition, false))) {
                p->eof = true;
                if (rm->offset > p->next)
                    p->next = rm->offset;
            }
            rd_kafka_message_destroy(rm);
            if (caught_up(k))
                return 2;
            return 0;
        }
        if (rm->err == RD_KAFKA_RESP_ERR__FATAL) {
            char why[512];
            rd_kafka_fatal_error(k->rk, why, sizeof why);
            rd_kafka_message_destroy(rm);
            return cf_err_set(err, CF_E_KAFKA, "fatal consumer error: %s", why);
        }
        /* Unknown topic (Debezium has not created it yet), transport trouble:
         * say so and keep polling; librdkafka retries on its own. */
        cf_log(CF_LOG_WARN, "kafka", "%s%s%s", rm->rkt ? rd_kafka_topic_name(rm->rkt) : "",
               rm->rkt ? ": " : "", rd_kafka_message_errstr(rm));
        rd_kafka_message_destroy(rm);
        return 0;
    }
    memset(m, 0, sizeof *m);
    m->topic = rd_kafka_topic_name(rm->rkt);
    m->partition = rm->partition;
    m->offset = rm->offset;
    m->from = rm->offset;
    m->timestamp_ms = rd_kafka_message_timestamp(rm, NULL);
    m->key = rm->key;
    m->key_len = rm->key_len;
    m->value = rm->payload;
    m->value_len = rm->payload ? rm->len : 0;
    if ((p = part_get(k, m->topic, m->partition, true))) {
        if (p->from >= 0 && p->from <= m->offset)
            m->from = p->from;
        p->from = m->offset + 1;
        if (m->offset + 1 > p->next)
            p->next = m->offset + 1;
    }
    k->cur = rm;
    return 1;
}

static int kafka_seek(cf_source *s, const cf_offsets *o, cf_err *err)
{
    kafka_src *k = s->impl;
    return cf_offsets_copy(&k->seek_to, o, err);
}

static int kafka_commit(cf_source *s, const cf_offsets *o, cf_err *err)
{
    kafka_src *k = s->impl;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(o->n ? o->n : 1);
    rd_kafka_resp_err_t e = 0;

    for (int i = 0; i < o->n; i++) {
        kpart *p = part_get(k, o->v[i].topic, o->v[i].partition, false);
        if (!p || !p->assigned || o->v[i].next_offset < 0)
            continue;   /* a partition we no longer own is not ours to report */
        rd_kafka_topic_partition_list_add(l, o->v[i].topic, o->v[i].partition)->offset =
            o->v[i].next_offset;
    }
    /* Asynchronous: group offsets only feed lag monitoring. */
    if (l->cnt)
        e = rd_kafka_commit(k->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        cf_log(CF_LOG_DEBUG, "kafka", "group offset commit: %s", rd_kafka_err2str(e));
    return 0;
}

static int64_t kafka_lag(cf_source *s)
{
    kafka_src *k = s->impl;
    int64_t sum = 0;
    bool known = false;

    for (int i = 0; i < k->nparts; i++) {
        kpart *p = &k->parts[i];
        int64_t lo = -1, hi = -1;
        if (!p->assigned || p->next < 0)
            continue;
        /* Cached from the last fetch response: no broker round trip. */
        if (rd_kafka_get_watermark_offsets(k->rk, p->topic, p->partition, &lo, &hi) || hi < 0)
            continue;
        sum += hi > p->next ? hi - p->next : 0;
        known = true;
    }
    return known ? sum : -1;
}

static int kafka_available_now(cf_source *s, cf_err *err)
{
    kafka_src *k = s->impl;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e;

    k->available_now = true;
    /* Remember the high watermarks now, before anything is assigned, so that
     * what arrives while we run is left for the next run.  Regex
     * subscriptions get theirs at assignment. */
    for (int t = 0; t < k->ntopics; t++) {
        rd_kafka_topic_t *rkt;
        if (k->topics[t][0] == '^')
            continue;
        rkt = rd_kafka_topic_new(k->rk, k->topics[t], NULL);
        if (!rkt)
            return cf_err_set(err, CF_E_KAFKA, "topic %s: %s", k->topics[t],
                              rd_kafka_err2str(rd_kafka_last_error()));
        e = rd_kafka_metadata(k->rk, 0, rkt, &md, WATERMARK_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (e)
            return cf_err_set(err, CF_E_KAFKA, "metadata of %s: %s", k->topics[t], rd_kafka_err2str(e));
        for (int i = 0; i < md->topic_cnt; i++) {
            if (md->topics[i].err) {
                /* A topic that does not exist has nothing available now. */
                cf_log(CF_LOG_WARN, "kafka", "available-now: %s: %s", md->topics[i].topic,
                       rd_kafka_err2str(md->topics[i].err));
                continue;
            }
            for (int j = 0; j < md->topics[i].partition_cnt; j++) {
                kpart *p = part_get(k, md->topics[i].topic, md->topics[i].partitions[j].id, true);
                if (!p) {
                    rd_kafka_metadata_destroy(md);
                    return cf_err_set(err, CF_E_TOOBIG, "too many partitions");
                }
                p->next = -1;
                set_target(k, p);
                p->next = -1;   /* the real start comes with the assignment */
                if (k->failed) {
                    rd_kafka_metadata_destroy(md);
                    if (err)
                        *err = k->fail;
                    return -1;
                }
            }
        }
        rd_kafka_metadata_destroy(md);
        md = NULL;
    }
    return 0;
}

static void kafka_close(cf_source *s)
{
    kafka_src *k = s->impl;

    if (!k)
        return;
    /* The owner may be gone already: closing must not call back into it. */
    s->assign = NULL;
    s->revoke = NULL;
    if (k->cur)
        rd_kafka_message_destroy(k->cur);
    if (k->rk) {
        rd_kafka_consumer_close(k->rk);
        rd_kafka_destroy(k->rk);
    }
    for (int i = 0; i < k->ntopics; i++)
        free(k->topics[i]);
    free(k->topics);
    free(k->parts);
    cf_offsets_free(&k->seek_to);
    free(k);
}

/* Pausing discards what the fetcher queued for the partitions; resuming
 * fetches at once from the position of the last message handed out.  (In
 * librdkafka 2.0 a queue left full instead stalls fetching for about a
 * second after it drains.) */
static int kafka_pause(cf_source *s, bool pause, cf_err *err)
{
    kafka_src *k = s->impl;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t e;

    if ((e = rd_kafka_assignment(k->rk, &l)))
        return cf_err_set(err, CF_E_KAFKA, "assignment: %s", rd_kafka_err2str(e));
    if (l->cnt)
        e = pause ? rd_kafka_pause_partitions(k->rk, l) : rd_kafka_resume_partitions(k->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return cf_err_set(err, CF_E_KAFKA, "%s: %s", pause ? "pause" : "resume", rd_kafka_err2str(e));
    return 0;
}

static const cf_source_backend kafka_backend = {
    "kafka", kafka_seek, kafka_rewind, kafka_poll, kafka_commit, kafka_lag, kafka_available_now, kafka_close,
    kafka_pause,
};

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, cf_err *err)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, val, why, sizeof why) != RD_KAFKA_CONF_OK)
        return cf_err_set(err, CF_E_ARG, "kafka property %s: %s", key, why);
    return 0;
}

/* librdkafka prefetches per partition up to queued.max.messages.kbytes
 * (default 64 MiB), in fetches of up to fetch.max.bytes (50 MiB) per broker
 * and max.partition.fetch.bytes (1 MiB) per partition; a queued message
 * keeps the whole fetch response it came in alive.  Under a memory bound M:
 * a sixty-fourth of M queued per partition (the number of partitions is not
 * known yet: 16 of them take a quarter) and a 128th per fetch, at least
 * 1 MiB each (measured on 4 partitions at M = 128 MiB: fetches of M/16 held
 * 158 MB, of M/128 86 MB).  A bigger message still comes through: these are
 * soft for a single message.  Set before the caller's properties, which
 * win. */
static int mem_props(rd_kafka_conf_t *conf, size_t max_memory, cf_err *err)
{
    size_t q = max_memory / 64 < ((size_t)1 << 20) ? (size_t)1 << 20 : max_memory / 64;
    size_t fetch = max_memory / 128 < ((size_t)1 << 20) ? (size_t)1 << 20 : max_memory / 128;
    char kb[32], fb[32];

    if (!max_memory)
        return 0;
    if (fetch > ((size_t)50 << 20))
        fetch = (size_t)50 << 20;
    snprintf(kb, sizeof kb, "%zu", q >> 10);
    snprintf(fb, sizeof fb, "%zu", fetch);
    return conf_set(conf, "queued.max.messages.kbytes", kb, err) || conf_set(conf, "fetch.max.bytes", fb, err)
           ? -1 : 0;
}

int cf_source_kafka_open(cf_source *s, const cf_source_config *cfg, cf_err *err)
{
    kafka_src *k = calloc(1, sizeof *k);
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *sub = NULL;
    rd_kafka_resp_err_t e;
    char why[512];

    s->be = &kafka_backend;
    s->impl = k;
    if (!k)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    k->owner = s;
    if (cfg->ntopics < 1)
        goto arg_fail;
    if (!(k->topics = calloc((size_t)cfg->ntopics, sizeof *k->topics)))
        goto nomem;
    for (int i = 0; i < cfg->ntopics; i++) {
        if (!(k->topics[i] = strdup(cfg->topics[i])))
            goto nomem;
        k->ntopics++;
    }
    conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", cfg->bootstrap ? cfg->bootstrap : "localhost:9092", err)
        || conf_set(conf, "group.id", cfg->group_id ? cfg->group_id : "cdcflow", err)
        || conf_set(conf, "auto.offset.reset", "earliest", err)
        || conf_set(conf, "enable.partition.eof", "true", err)
        || conf_set(conf, "client.id", "cdcflow", err))
        goto fail;
    if (mem_props(conf, cfg->max_memory, err))
        goto fail;
    k->bounded = cfg->max_memory > 0;
    for (int i = 0; i < cfg->nprops; i++) {
        const char *eq = strchr(cfg->props[i], '=');
        char key[256];
        if (!eq || eq == cfg->props[i] || (size_t)(eq - cfg->props[i]) >= sizeof key) {
            /* never the text itself: it may be a secret */
            cf_err_set(err, CF_E_ARG, "kafka property #%d: expected key=value", i + 1);
            goto fail;
        }
        memcpy(key, cfg->props[i], (size_t)(eq - cfg->props[i]));
        key[eq - cfg->props[i]] = '\0';
        if ((!strcmp(key, "enable.auto.commit") || !strcmp(key, "enable.auto.offset.store"))
            && strcmp(eq + 1, "false"))
            cf_log(CF_LOG_WARN, "kafka", "ignoring %s=%s: progress is kept in the table", key, eq + 1);
        else if (conf_set(conf, key, eq + 1, err))
            goto fail;
    }
    /* Set last so that no property can turn them back on. */
    if (conf_set(conf, "enable.auto.commit", "false", err)
        || conf_set(conf, "enable.auto.offset.store", "false", err))
        goto fail;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    if (!(k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why))) {
        cf_err_set(err, CF_E_KAFKA, "creating the consumer: %s", why);
        goto fail;
    }
    conf = NULL;    /* owned by rk now */
    rd_kafka_poll_set_consumer(k->rk);
    sub = rd_kafka_topic_partition_list_new(cfg->ntopics);
    for (int i = 0; i < cfg->ntopics; i++)
        rd_kafka_topic_partition_list_add(sub, cfg->topics[i], RD_KAFKA_PARTITION_UA);
    if ((e = rd_kafka_subscribe(k->rk, sub))) {
        cf_err_set(err, CF_E_KAFKA, "subscribe: %s", rd_kafka_err2str(e));
        goto fail;
    }
    rd_kafka_topic_partition_list_destroy(sub);
    return 0;

arg_fail:
    cf_err_set(err, CF_E_ARG, "the kafka source needs at least one topic");
    goto fail;
nomem:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
fail:
    if (sub)
        rd_kafka_topic_partition_list_destroy(sub);
    if (conf)
        rd_kafka_conf_destroy(conf);
    kafka_close(s);
    s->impl = NULL;
    return -1;
}
