/* pipeline.c - the micro-batch loop: source -> decode -> transform -> batch
 * -> table commit with the offsets it covers; see pipeline.h. */
#include "runtime/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/signals.h"
#include "util/log.h"

#define POLL_SLICE_MS     200     /* longest wait, so stop requests are seen soon */
#define COMMIT_RETRIES    3
#define DLQ_LOG_PER_BATCH 10      /* then only at debug level */

enum { K_C, K_U, K_D, K_R, K_T, NKINDS };

typedef struct pipe {
    const cf_pipeline_config *cfg;
    cf_pipeline_stats *st;
    int64_t   trigger_ms, max_offsets;
    size_t    max_msg;
    cf_batch *batch;            /* NULL until the first good event */
    const cf_schema *out_schema;
    const cf_schema *src_ptr;   /* last source schema seen (fast path) */
    cf_offsets covered;         /* next offsets of everything consumed in the batch */
    uint64_t  nmsg;             /* messages in the batch */
    uint64_t  kinds[NKINDS], dlq_n, tomb_n;
    double    batch_start;      /* monotonic seconds */
    int64_t   processed_us;     /* _processed_timestamp of the batch's rows */
    /* progress line */
    double    hb_last;          /* last metrics heartbeat */
    double    prog_last;
    uint64_t  prog_events;
} pipe_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void progress_clear(void)
{
    fputs("\r\033[K", stderr);
}

static void progress(pipe_t *p, bool force)
{
    double now = mono_s();
    int64_t lag;

    if (!p->cfg->progress || (!force && now - p->prog_last < 1.0))
        return;
    lag = cf_source_lag(p->cfg->source);
    fprintf(stderr, "\r\033[K%s: %.0f events/s, %llu events, lag %lld, version %lld, dead-letter %llu",
            p->cfg->table_name ? p->cfg->table_name : "table",
            p->prog_last > 0 ? (double)(p->st->events - p->prog_events) / (now - p->prog_last) : 0.0,
            (unsigned long long)p->st->events, (long long)lag, (long long)p->st->version,
            (unsigned long long)p->st->dead_letter);
    p->prog_last = now;
    p->prog_events = p->st->events;
}

static bool is_fatal_code(cf_code c)
{
    /* Bad input never is; a broken machine or table is. */
    return c == CF_E_NOMEM || c == CF_E_IO || c == CF_E_CORRUPT || c == CF_E_KAFKA
        || c == CF_E_CONFLICT || c == CF_E_STOPPED;
}

static void reset_batch(pipe_t *p)
{
    if (p->batch)
        cf_batch_reset(p->batch);
    cf_offsets_clear(&p->covered);
    p->nmsg = 0;
    p->dlq_n = p->tomb_n = 0;
    memset(p->kinds, 0, sizeof p->kinds);
}

static void log_batch(pipe_t *p, int64_t version, double dur, double commit_dur)
{
    char offs[512];
    size_t n = 0;

    offs[0] = '\0';
    for (int i = 0; i < p->covered.n && n < sizeof offs - 64; i++)
        n += (size_t)snprintf(offs + n, sizeof offs - n, "%s%s[%d]=%lld", i ? " " : "",
                              p->covered.v[i].topic, p->covered.v[i].partition,
                              (long long)p->covered.v[i].next_offset);
    cf_log(CF_LOG_INFO, "pipeline",
           "%s: batch: %llu events (c=%llu u=%llu d=%llu r=%llu t=%llu), %llu dead-letter, %llu tombstones, "
           "next offsets %s, version %lld, %.1f ms (commit %.1f ms)",
           p->cfg->table_name ? p->cfg->table_name : "table",
           (unsigned long long)(p->kinds[K_C] + p->kinds[K_U] + p->kinds[K_D] + p->kinds[K_R]),
           (unsigned long long)p->kinds[K_C], (unsigned long long)p->kinds[K_U],
           (unsigned long long)p->kinds[K_D], (unsigned long long)p->kinds[K_R],
           (unsigned long long)p->kinds[K_T], (unsigned long long)p->dlq_n,
           (unsigned long long)p->tomb_n, offs, (long long)version, dur * 1e3, commit_dur * 1e3);
}

/* Commit the batch and the offsets it covers.  `keep_decoder`: an event of
 * the decoder is still in use (a schema change cut the batch), so its
 * memory must not be released yet. */
static int commit_batch(pipe_t *p, bool keep_decoder, cf_err *err)
{
    const cf_pipeline_config *cfg = p->cfg;
    int64_t version = -1;
    double t0, t1;
    int rc = -1;

    if (!p->nmsg)
        return 0;
    t0 = mono_s();
    /* The dead letters of this batch must be safe before the table says
     * their offsets are done, or a crash in between would lose them. */
    if (cf_dlq_flush(cfg->dlq, err))
        return cf_err_wrap(err, "not committing the batch");
    for (int attempt = 1; attempt <= COMMIT_RETRIES; attempt++) {
        cf_err e = { 0 };
        rc = cf_sink_commit(cfg->sink, p->batch,
                            &p->covered, &version, &e);
        if (!rc)
            break;
        if (!e.retriable || attempt == COMMIT_RETRIES) {
            if (err)
                *err = e;
            return cf_err_wrap(err, "table commit");
        }
        cf_log(CF_LOG_WARN, "pipeline", "table commit failed (%s), retrying (%d/%d)", e.msg, attempt,
               COMMIT_RETRIES);
        usleep((useconds_t)(100000 * attempt));
    }
    t1 = mono_s();
    {
        cf_err e = { 0 };
        if (cf_source_commit(cfg->source, &p->covered, &e))
            cf_log(CF_LOG_WARN, "pipeline", "group offsets (lag only): %s", e.msg);
    }
    p->st->batches++;
    if (version >= 0)
        p->st->version = version;
    if (cfg->metrics) {
        cf_metrics_add_events(cfg->metrics, 'c', p->kinds[K_C]);
        cf_metrics_add_events(cfg->metrics, 'u', p->kinds[K_U]);
        cf_metrics_add_events(cfg->metrics, 'd', p->kinds[K_D]);
        cf_metrics_add_events(cfg->metrics, 'r', p->kinds[K_R]);
        cf_metrics_add_events(cfg->metrics, 't', p->kinds[K_T]);
        cf_metrics_add_events(cfg->metrics, 0, p->tomb_n);
        cf_metrics_add_dead_letter(cfg->metrics, p->dlq_n);
        cf_metrics_batch_done(cfg->metrics, t1 - p->batch_start, t1 - t0, version);
        cf_metrics_set_lag(cfg->metrics, cf_source_lag(cfg->source));
    }
    log_batch(p, version, t1 - p->batch_start, t1 - t0);
    reset_batch(p);
    if (!keep_decoder)
        cf_decoder_reset(cfg->decoder);
    return 0;
}

/* Bad input: to the dead-letter target, or stop. */
static int bad_event(pipe_t *p, const cf_msg *m, const cf_err *why, cf_err *err)
{
    if (!cf_dlq_enabled(p->cfg->dlq))
        return cf_err_setpos(err, why->code, why->pos, "bad event at %s[%d] offset %lld: %s: %.300s "
                             "(dead-letter is off: stopping without committing the batch)",
                             m->topic, m->partition, (long long)m->offset, cf_code_name(why->code), why->msg);
    if (cf_dlq_put(p->cfg->dlq, m, why, err))
        return cf_err_wrap(err, "dead-letter");
    p->dlq_n++;
    p->st->dead_letter++;
    cf_log(p->dlq_n <= DLQ_LOG_PER_BATCH ? CF_LOG_WARN : CF_LOG_DEBUG, "pipeline",
           "dead-letter %s[%d] offset %lld: %s: %s", m->topic, m->partition, (long long)m->offset,
           cf_code_name(why->code), why->msg);
    return 0;
}

/* Upsert needs the key of the row image that carries it. */
static bool has_key(const cf_event *ev)
{
    const cf_row *r = ev->op == 'd' ? &ev->before : &ev->after;

    if (!ev->schema || ev->schema->npk == 0 || !r->present)
        return false;
    for (int i = 0; i < ev->schema->npk; i++) {
        cf_vkind k = r->vals[ev->schema->pk[i]].kind;
        if (k == CF_V_NULL || k == CF_V_UNAVAILABLE)
            return false;
    }
    return true;
}

/* A new source schema cuts the batch: rows of one batch share one schema.
 * The decoder keeps one schema object per table version for its lifetime,
 * so a new pointer is a real change. */
static int check_schema(pipe_t *p, const cf_event *ev, cf_err *err)
{
    if (ev->schema == p->src_ptr)
        return 0;
    if (p->batch && p->batch->nrows) {
        cf_log(CF_LOG_INFO, "pipeline", "source schema changed: committing the current batch first");
        if (commit_batch(p, true, err))
            return -1;
    }
    p->src_ptr = ev->schema;
    return 0;
}

/* Point the batch at the transform's output schema `out`. */
static int bind_batch(pipe_t *p, const cf_event *ev, const cf_schema *out, cf_err *err)
{
    if (out == p->out_schema && p->batch)
        return 0;
    if (p->batch && p->batch->nrows && commit_batch(p, true, err))
        return -1;
    if (p->cfg->mode == CF_MODE_UPSERT && out->npk == 0)
        return cf_err_set(err, CF_E_ARG, "upsert mode needs a primary key, table %s.%s has none",
                          ev->src.schema, ev->src.table);
    if (!p->batch) {
        if (!(p->batch = cf_batch_new(out, err)))
            return -1;
    } else if (cf_batch_rebind(p->batch, out, err)) {
        return -1;
    }
    p->out_schema = out;
    return 0;
}

/* One message into the batch.  The covered offsets move only after the
 * message is handled, so a batch cut by a schema change ends before it. */
static int handle(pipe_t *p, const cf_msg *m, cf_err *err)
{
    const cf_pipeline_config *cfg = p->cfg;
    cf_event ev;
    cf_err why = { 0 };

    if (!p->nmsg) {
        p->batch_start = mono_s();
        p->processed_us = wall_us();
    }
    if (m->value && m->value_len > p->max_msg) {
        cf_err_set(&why, CF_E_TOOBIG, "message of %zu bytes over the cap of %zu", m->value_len, p->max_msg);
        why.pos = -1;
        if (bad_event(p, m, &why, err))
            return -1;
        goto covered;
    }
    why.pos = -1;
    if (cf_decoder_decode(cfg->decoder, m, &ev, &why)) {
        if (is_fatal_code(why.code)) {
            if (err)
                *err = why;
            return -1;
        }
        if (bad_event(p, m, &why, err))
            return -1;
        goto covered;
    }
    if (ev.op == 0) {
        p->tomb_n++;
        p->st->tombstones++;
        goto covered;
    }
    if (ev.op == 't') {
        /* Nothing to write: the table keeps its history (as the seed did). */
        p->kinds[K_T]++;
        goto covered;
    }
    {
        if (!strchr("cudr", ev.op)) {
            cf_err_set(&why, CF_E_PARSE, "unknown op '%c'", ev.op);
            why.pos = -1;
            if (bad_event(p, m, &why, err))
                return -1;
            goto covered;
        }
        if (cfg->mode == CF_MODE_UPSERT && !has_key(&ev)) {
            cf_err_set(&why, CF_E_PARSE, "no primary key value in the %s image (upsert mode)",
                       ev.op == 'd' ? "before" : "after");
            why.pos = -1;
            if (bad_event(p, m, &why, err))
                return -1;
            goto covered;
        }
    }
    if (check_schema(p, &ev, err))
        return -1;
    {
        const cf_schema *out = cf_transform_schema(cfg->transform, &ev, &why);
        if (!out) {
            /* e.g. a source column named like a metadata column */
            if (is_fatal_code(why.code)) {
                if (err)
                    *err = why;
                return -1;
            }
            if (bad_event(p, m, &why, err))
                return -1;
            goto covered;
        }
        if (bind_batch(p, &ev, out, err))
            return -1;
    }
    if (!p->nmsg) {
        /* A schema change just committed the batch: this message opens the next one. */
        p->batch_start = mono_s();
        p->processed_us = wall_us();
    }
    {
        size_t before = p->batch->nrows;
        if (cf_transform_apply(cfg->transform, &ev, p->batch, p->processed_us, &why)) {
            cf_batch_abort_row(p->batch);
            if (is_fatal_code(why.code)) {
                if (err)
                    *err = why;
                return -1;
            }
            if (bad_event(p, m, &why, err))
                return -1;
            goto covered;
        }
        p->st->events += p->batch->nrows - before;
    }
    p->kinds[ev.op == 'c' ? K_C : ev.op == 'u' ? K_U : ev.op == 'd' ? K_D : ev.op == 'r' ? K_R : K_T]++;
covered:
    p->nmsg++;
    p->st->messages++;
    return cf_offsets_put(&p->covered, m->topic, m->partition, m->offset + 1, err);
}

/* ---- source hooks (called inside cf_source_poll) ---- */

static int on_assign(void *opaque, cf_offsets *out, cf_err *err)
{
    pipe_t *p = opaque;
    return cf_sink_offsets(p->cfg->sink, out, err);
}

static int on_revoke(void *opaque, const cf_offsets *revoked)
{
    pipe_t *p = opaque;
    cf_err e = { 0 };

    if (!p->nmsg)
        return 0;
    cf_log(CF_LOG_INFO, "pipeline", "partitions revoked: committing the batch in flight");
    if (commit_batch(p, false, &e) == 0)
        return 0;
    /* Nothing of it reached the table: whoever owns the partitions next reads
     * them again from the table's offsets. */
    cf_log(CF_LOG_ERROR, "pipeline", "commit at revoke failed, batch dropped: %s", e.msg);
    reset_batch(p);
    cf_decoder_reset(p->cfg->decoder);
    return -1;
}

int cf_pipeline_run(const cf_pipeline_config *cfg, cf_pipeline_stats *stats, cf_err *err)
{
    cf_pipeline_stats local;
    pipe_t p;
    cf_offsets start = { 0 };
    int rc = -1;
    bool done = false;
    char why_down[256] = "stopped";

    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.st = stats ? stats : &local;
    memset(p.st, 0, sizeof *p.st);
    p.st->version = -1;
    p.trigger_ms = cfg->trigger_ms > 0 ? cfg->trigger_ms : CF_PIPELINE_DEFAULT_TRIGGER_MS;
    p.max_offsets = cfg->max_offsets > 0 ? cfg->max_offsets : CF_PIPELINE_DEFAULT_MAX_OFFSETS;
    p.max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : CF_PIPELINE_DEFAULT_MAX_MSG;

    /* Exactly once: the table says where we are. */
    if (cf_sink_offsets(cfg->sink, &start, err)) {
        cf_err_wrap(err, "reading the table's offsets");
        goto out;
    }
    for (int i = 0; i < start.n; i++)
        cf_log(CF_LOG_INFO, "pipeline", "%s: resume %s[%d] at offset %lld",
               cfg->table_name ? cfg->table_name : "table", start.v[i].topic,
               start.v[i].partition, (long long)start.v[i].next_offset);
    if (!start.n)
        cf_log(CF_LOG_INFO, "pipeline", "%s: no offsets in the table: starting from the earliest",
               cfg->table_name ? cfg->table_name : "table");
    if (cf_source_seek(cfg->source, &start, err))
        goto out;
    cf_source_set_hooks(cfg->source, on_assign, on_revoke, &p);
    if (cfg->available_now && cf_source_set_available_now(cfg->source, err))
        goto out;
    if (cfg->progress)
        cf_log_set_pre_hook(progress_clear);
    cf_metrics_set_up(cfg->metrics, true, NULL);

    while (!done) {
        cf_msg m;
        int r, timeout = POLL_SLICE_MS;

        if (cf_signals_stop_requested()) {
            cf_log(CF_LOG_INFO, "pipeline", "stop requested: committing the batch in flight");
            break;
        }
        if (p.nmsg) {
            double left_ms = (p.batch_start + p.trigger_ms / 1e3 - mono_s()) * 1e3;
            timeout = left_ms <= 0 ? 0 : left_ms < POLL_SLICE_MS ? (int)left_ms : POLL_SLICE_MS;
        }
        r = cf_source_poll(cfg->source, &m, timeout, err);
        if (r < 0) {
            cf_err_wrap(err, "source");
            goto out;
        }
        if (r == 2) {
            cf_log(CF_LOG_INFO, "pipeline", "%s", cfg->available_now ? "caught up with what was available at start"
                                                                    : "end of input");
            done = true;
        } else if (r == 1 && handle(&p, &m, err)) {
            goto out;
        }
        if (p.nmsg && (done || (int64_t)p.nmsg >= p.max_offsets
                       || mono_s() - p.batch_start >= p.trigger_ms / 1e3)) {
            if (commit_batch(&p, false, err))
                goto out;
        }
        /* Lag walks the partitions and takes librdkafka locks: not per message. */
        if (cfg->metrics && (r != 1 || mono_s() - p.hb_last >= 0.1)) {
            int64_t lag = cf_source_lag(cfg->source);
            p.hb_last = mono_s();
            cf_metrics_set_lag(cfg->metrics, lag);
            cf_metrics_heartbeat(cfg->metrics, p.nmsg == 0 && lag <= 0);
        }
        progress(&p, false);
    }
    if (commit_batch(&p, false, err))
        goto out;
    rc = 0;
out:
    if (rc)
        snprintf(why_down, sizeof why_down, "failed: %.200s", err ? err->msg : "error");
    cf_metrics_set_up(cfg->metrics, false, why_down);
    if (cfg->progress) {
        progress(&p, true);
        fputc('\n', stderr);
        cf_log_set_pre_hook(NULL);
    }
    cf_source_set_hooks(cfg->source, NULL, NULL, NULL);
    cf_offsets_free(&start);
    cf_offsets_free(&p.covered);
    cf_batch_free(p.batch);
    return rc;
}
