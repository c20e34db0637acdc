/* pipeline.c - the micro-batch loop: source -> decode -> transform -> batch
 * -> table commit with the offsets it covers, for one table or one table per
 * topic (a "lane" each); see pipeline.h.
 *
 * Two threads.  The pipeline thread polls, decodes and transforms into the
 * filling batch of each table; at a cut it hands the batches to the commit
 * thread and goes on filling the next ones while those are committed.  One
 * batch is in flight at a time and its outcome is taken (on the pipeline
 * thread) before the next is handed over, so commits land in order and a
 * failed one stops the ones after it.  Everything but the sink commit itself
 * stays on the pipeline thread: the source, the dead-letter target, the
 * rewinds of a fenced batch, the reading of offsets at an assignment. */
#include "runtime/pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/route.h"
#include "runtime/signals.h"
#include "state/enrich.h"
#include "util/log.h"

#define POLL_SLICE_MS     200     /* longest wait, so stop requests are seen soon */
#define DLQ_LOG_PER_BATCH 10      /* then only at debug level */
#define COMMIT_POLL_MS    5       /* wait slice while a due batch waits for the commit */
#define COMMIT_WAKE_MS    20      /* longest wait while a commit runs */
/* Rows are copied out of the decoder's arena into the batch, so the arena
 * is reset between messages once it holds this much: it stays small
 * however large a batch grows. */
#define DECODER_SLACK     ((size_t)1 << 20)
/* How --max-memory is shared.  librdkafka may queue a 64th per partition
 * in fetches of a 128th (kafka.c).  Two batches live at once, one filling and one
 * committing, each cut when its values reach BATCH_SHARE-th of the bound;
 * their buffers grow by doubling, so each may hold up to twice that.  The
 * commit's encoding of a batch (pages, compression, the key index) and the
 * process itself take the rest. */
#define BATCH_SHARE       8
#define MIN_BATCH_BYTES   ((size_t)16 << 10)

enum { K_C, K_U, K_D, K_R, K_T, NKINDS };

/* One table's batch and the commit value built beside it.  A table has two:
 * one filling on the pipeline thread, one handed to the commit thread. */
typedef struct work {
    cf_batch     *batch;              /* NULL until the first good event */
    const cf_schema *out_schema;
    int           key[CF_MAX_KEY_COLS];   /* key columns of out_schema */
    int           nkey;
    char         *ops;                /* per row: 'c', 'u', 'd', 'r' */
    int64_t      *lsns;               /* per row: source LSN, -1 unknown */
    size_t        arows;              /* room in ops and lsns */
    cf_cells      ua;                 /* unchanged-TOAST cells */
    cf_offsets    start;              /* per topic-partition: where the batch starts */
    cf_offsets    covered;            /* next offsets of everything consumed in the batch */
    uint64_t      nmsg;               /* messages in the batch */
    uint64_t      kinds[NKINDS], dlq_n, tomb_n;
    double        batch_start;        /* monotonic seconds */
    size_t        bytes;              /* cf_batch_bytes() after the last row */
    cf_commit     cv;                 /* the commit value, made at hand-off */
    /* The commit's outcome, written by the commit thread: */
    int           rc;                 /* 0 committed, -1 failed (err), 1 not tried */
    int64_t       version;
    double        t0, t1;             /* the commit's start and end */
    cf_err        err;
} work;

/* One table: its sink, transform and batches.  Offsets of a topic-partition
 * belong to the one table its topic resolves to. */
typedef struct lane {
    char          location[CF_ROUTE_PATH_MAX];
    char          name[512];          /* for log lines */
    cf_sink      *sink;
    cf_transform *xf;
    bool          owned;              /* sink and xf opened here (route) */
    cf_sink_config sc;                /* the route's config, location/name ours */
    const char *const *pk;            /* primary key override, 0 columns = source key */
    int           npk;
    const cf_schema *src_ptr;         /* last source schema seen (fast path) */
    work          w[2];
    work         *cur;                /* filling */
    work         *fly;                /* handed to the commit thread (nmsg > 0) or idle */
    cf_enrich    *enrich;             /* total_orders state (borrowed), or NULL */
} lane;

/* The commit thread and the one batch (over one or more tables) it holds. */
typedef struct committer {
    pthread_t       thr;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            started;
    bool            quit;
    bool            busy;             /* handed over, outcome not taken yet */
    bool            finished;         /* the commit thread is done with it */
    lane          **q;                /* its tables, in commit order */
    int             nq;
} committer;

typedef struct pipe {
    const cf_pipeline_config *cfg;
    cf_pipeline_stats *st;
    int64_t   trigger_ms, max_offsets;
    size_t    max_msg;
    size_t    max_memory, batch_cap;
    lane    **lanes;
    int       nlanes, max_lanes;
    char      last_topic[256];  /* fast path: topic -> lane of the last message */
    lane     *last_lane;
    uint64_t  nmsg;             /* messages held in filling batches, over every lane */
    size_t    bytes;            /* their bytes */
    size_t    fly_bytes;        /* bytes of the batch being committed */
    double    batch_start;      /* monotonic seconds, first held message */
    int64_t   processed_us;     /* _processed_timestamp of the batch's rows */
    cf_offsets rewound;         /* partitions a dropped batch rewound during handle() */
    committer c;
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

static const char *table_label(const pipe_t *p, const lane *l)
{
    if (l && l->name[0])
        return l->name;
    return p->cfg->table_name ? p->cfg->table_name : "table";
}

static void reset_work(work *w)
{
    if (w->batch)
        cf_batch_reset(w->batch);
    cf_offsets_clear(&w->covered);
    cf_offsets_clear(&w->start);
    w->ua.n = 0;
    w->nmsg = 0;
    w->bytes = 0;
    w->dlq_n = w->tomb_n = 0;
    memset(w->kinds, 0, sizeof w->kinds);
}

static void free_work(work *w)
{
    cf_offsets_free(&w->covered);
    cf_offsets_free(&w->start);
    cf_batch_free(w->batch);
    cf_cells_free(&w->ua);
    free(w->ops);
    free(w->lsns);
}

static lane *new_lane(void)
{
    lane *l = calloc(1, sizeof *l);

    if (l) {
        l->cur = &l->w[0];
        l->fly = &l->w[1];
    }
    return l;
}

static void free_lane(lane *l)
{
    if (!l)
        return;
    if (l->owned) {
        cf_sink_close(l->sink);
        cf_transform_free(l->xf);
    }
    free_work(&l->w[0]);
    free_work(&l->w[1]);
    free(l);
}

static void log_batch(pipe_t *p, const lane *l, const work *w)
{
    char offs[512];
    size_t n = 0;

    offs[0] = '\0';
    for (int i = 0; i < w->covered.n && n < sizeof offs - 64; i++)
        n += (size_t)snprintf(offs + n, sizeof offs - n, "%s%s[%d]=%lld", i ? " " : "",
                              w->covered.v[i].topic, w->covered.v[i].partition,
                              (long long)w->covered.v[i].next_offset);
    cf_log(CF_LOG_INFO, "pipeline",
           "%s: batch: %llu events (c=%llu u=%llu d=%llu r=%llu t=%llu), %llu dead-letter, %llu tombstones, "
           "next offsets %s, version %lld, %.1f ms (commit %.1f ms), %.1f MiB",
           table_label(p, l),
           (unsigned long long)(w->kinds[K_C] + w->kinds[K_U] + w->kinds[K_D] + w->kinds[K_R]),
           (unsigned long long)w->kinds[K_C], (unsigned long long)w->kinds[K_U],
           (unsigned long long)w->kinds[K_D], (unsigned long long)w->kinds[K_R],
           (unsigned long long)w->kinds[K_T], (unsigned long long)w->dlq_n,
           (unsigned long long)w->tomb_n, offs, (long long)w->version, (w->t1 - w->batch_start) * 1e3,
           (w->t1 - w->t0) * 1e3, w->bytes / 1048576.0);
}

static void set_memory(pipe_t *p)
{
    cf_metrics_set_memory(p->cfg->metrics, p->bytes + p->fly_bytes, p->max_memory);
}

static int lane_offsets(pipe_t *p, lane *l, cf_offsets *out, int *kept, cf_err *err);

/* The table refused the batch in flight: another process of the group owns
 * (some of) its partitions now, or owned them while we were paused.  Drop
 * it and the batch filling behind it, which starts where it ends, and move
 * our reading of their partitions back to where the table is; the
 * rebalance that follows sorts out who reads what. */
static int drop_fenced(pipe_t *p, lane *l, const cf_err *why, cf_err *err)
{
    cf_offsets table = { 0 }, to = { 0 };
    int kept, rc = -1;

    cf_log(CF_LOG_WARN, "pipeline", "%s: batch of %llu messages dropped (and %llu read after it): %s",
           table_label(p, l), (unsigned long long)l->fly->nmsg, (unsigned long long)l->cur->nmsg, why->msg);
    p->st->fenced++;
    cf_metrics_add_fenced(p->cfg->metrics);
    if (lane_offsets(p, l, &table, &kept, err))
        goto out;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < l->w[k].covered.n; i++) {
            const cf_offset *o = &l->w[k].covered.v[i];
            if (cf_offsets_put(&to, o->topic, o->partition, cf_offsets_get(&table, o->topic, o->partition), err))
                goto out;
        }
    p->nmsg -= l->cur->nmsg;
    p->bytes -= l->cur->bytes;
    reset_work(l->cur);
    reset_work(l->fly);
    cf_enrich_drop(l->enrich);
    for (int i = 0; i < to.n; i++)
        if (cf_offsets_put(&p->rewound, to.v[i].topic, to.v[i].partition, 0, err))
            goto out;
    rc = cf_source_rewind(p->cfg->source, &to, err);
out:
    cf_offsets_free(&table);
    cf_offsets_free(&to);
    return rc;
}

/* How long a commit waits out storage or a catalog that does not answer
 * (after the store's and the catalog client's own retries) before the
 * pipeline gives up: long enough for a restart or a failover of the
 * server, short enough that a real outage stops the process. */
#define UNAVAILABLE_WAIT_S 300

/* Whether a failed commit may succeed if made again as a whole: the
 * storage or catalog server was unreachable or overloaded. */
static bool unavailable(const cf_err *e)
{
    return e->retriable && (e->code == CF_E_IO || e->code == CF_E_HTTP);
}

/* Commit through cf_sink_commit, waiting out an unavailable server (on the
 * commit thread).  Making the commit again is safe: a commit that landed
 * although its answer was lost is caught by the fence (the table then
 * holds the batch's end, not its start) and the batch is dropped, not
 * doubled. */
static int sink_commit(pipe_t *p, lane *l, const cf_commit *c, int64_t *version, cf_err *e)
{
    double deadline = mono_s() + UNAVAILABLE_WAIT_S;
    unsigned pause_ms = 500;

    for (;;) {
        uint64_t lost = cf_sink_conflicts(l->sink);
        int rc;

        cf_err_clear(e);
        rc = cf_sink_commit(l->sink, c, version, e);
        if ((lost = cf_sink_conflicts(l->sink) - lost)) {
            cf_metrics_add_conflicts(p->cfg->metrics, lost);
            cf_log(CF_LOG_INFO, "pipeline", "%s: %llu commit attempt(s) lost to another writer, made again",
                   table_label(p, l), (unsigned long long)lost);
        }
        if (rc == 0)
            return 0;
        if (!unavailable(e) || mono_s() > deadline || cf_signals_stop_requested())
            return -1;
        cf_log(CF_LOG_WARN, "pipeline", "%s: commit: %s; retrying in %.1f s", table_label(p, l), e->msg,
               pause_ms / 1e3);
        for (unsigned waited = 0; waited < pause_ms && !cf_signals_stop_requested(); waited += 100)
            usleep(100 * 1000);
        pause_ms = pause_ms * 2 > 8000 ? 8000 : pause_ms * 2;
    }
}

/* The commit thread: commit the tables of the batch handed over, in order,
 * stopping at the first that fails (a fenced one is no failure: the
 * pipeline thread drops it and goes on). */
static void *commit_main(void *arg)
{
    pipe_t *p = arg;
    committer *c = &p->c;

    pthread_mutex_lock(&c->mu);
    for (;;) {
        bool failed = false;

        while (!c->quit && (!c->busy || c->finished))
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->quit)
            break;
        pthread_mutex_unlock(&c->mu);
        for (int i = 0; i < c->nq; i++) {
            lane *l = c->q[i];
            work *w = l->fly;
            w->rc = 1;
            w->version = -1;
            cf_err_clear(&w->err);
            if (failed)
                continue;
            w->t0 = mono_s();
            w->rc = sink_commit(p, l, &w->cv, &w->version, &w->err);
            w->t1 = mono_s();
            failed = w->rc && w->err.code != CF_E_FENCED;
        }
        pthread_mutex_lock(&c->mu);
        c->finished = true;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Wait until the commit thread is done with the batch handed over. */
static void wait_finished(pipe_t *p)
{
    committer *c = &p->c;

    pthread_mutex_lock(&c->mu);
    while (c->busy && !c->finished)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static int start_committer(pipe_t *p, cf_err *err)
{
    committer *c = &p->c;

    if (!(c->q = calloc((size_t)p->max_lanes, sizeof *c->q)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (pthread_mutex_init(&c->mu, NULL) || pthread_cond_init(&c->cv, NULL)
        || pthread_create(&c->thr, NULL, commit_main, p))
        return cf_err_set(err, CF_E_NOMEM, "cannot start the commit thread");
    c->started = true;
    return 0;
}

/* Wait for the batch in flight (its outcome is left untaken), then end the
 * commit thread.  Safe to call when it never started. */
static void stop_committer(pipe_t *p)
{
    committer *c = &p->c;

    if (c->started) {
        wait_finished(p);
        pthread_mutex_lock(&c->mu);
        c->quit = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thr, NULL);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        c->started = false;
    }
    free(c->q);
    c->q = NULL;
}

static bool commit_running(pipe_t *p)
{
    bool r;

    if (!p->c.busy)
        return false;
    pthread_mutex_lock(&p->c.mu);
    r = !p->c.finished;
    pthread_mutex_unlock(&p->c.mu);
    return r;
}

/* A table's batch reached the table: tell the source (lag), count, log. */
static void committed(pipe_t *p, lane *l)
{
    const cf_pipeline_config *cfg = p->cfg;
    work *w = l->fly;
    cf_err e = { 0 };

    if (cf_source_commit(cfg->source, &w->covered, &e))
        cf_log(CF_LOG_WARN, "pipeline", "group offsets (lag only): %s", e.msg);
    p->st->batches++;
    if (w->version >= 0)
        p->st->version = w->version;
    if (cfg->metrics) {
        cf_metrics_add_events(cfg->metrics, 'c', w->kinds[K_C]);
        cf_metrics_add_events(cfg->metrics, 'u', w->kinds[K_U]);
        cf_metrics_add_events(cfg->metrics, 'd', w->kinds[K_D]);
        cf_metrics_add_events(cfg->metrics, 'r', w->kinds[K_R]);
        cf_metrics_add_events(cfg->metrics, 't', w->kinds[K_T]);
        cf_metrics_add_events(cfg->metrics, 0, w->tomb_n);
        cf_metrics_add_dead_letter(cfg->metrics, w->dlq_n);
        cf_metrics_batch_done(cfg->metrics, w->t1 - w->batch_start, w->t1 - w->t0, w->version);
        if (cfg->route) {
            uint64_t by_op[6] = { w->kinds[K_C], w->kinds[K_U], w->kinds[K_D], w->kinds[K_R], w->kinds[K_T],
                                  w->tomb_n };
            cf_metrics_table_commit(cfg->metrics, l->name, by_op, w->version);
        }
        cf_metrics_set_lag(cfg->metrics, cf_source_lag(cfg->source));
    }
    log_batch(p, l, w);
    reset_work(w);
}

/* Take the outcome of the batch handed to the commit thread, waiting for
 * it (`wait`) or only if it is there.  Returns 0, also while it is still
 * being committed; -1 with *err set when a commit failed (nothing after it
 * was committed, and the rest of it is forgotten). */
static int collect(pipe_t *p, bool wait, cf_err *err)
{
    committer *c = &p->c;
    int rc = 0;

    if (!c->busy)
        return 0;
    if (wait)
        wait_finished(p);
    else if (commit_running(p))
        return 0;
    c->busy = false;
    for (int i = 0; i < c->nq; i++) {
        lane *l = c->q[i];
        work *w = l->fly;
        if (l->enrich)   /* before drop_fenced reloads the state the table names */
            cf_enrich_done(l->enrich, !rc && w->rc == 0);
        if (rc) {
            reset_work(w);
        } else if (w->rc == 0) {
            committed(p, l);
        } else if (w->err.code == CF_E_FENCED) {
            rc = drop_fenced(p, l, &w->err, err);
        } else {
            if (err)
                *err = w->err;
            rc = cf_err_wrap(err, "table %s: commit", table_label(p, l));
            reset_work(w);
        }
    }
    c->nq = 0;
    p->fly_bytes = 0;
    set_memory(p);
    return rc;
}

/* Hand the filling batch of table `only` (NULL: of every table) to the
 * commit thread, after the one before it is committed.  The batch's dead
 * letters are made safe first: the table must not say their offsets are
 * done before they are. */
static int hand_off(pipe_t *p, lane *only, cf_err *err)
{
    committer *c = &p->c;
    uint64_t msgs = 0, rows = 0;

    if (!(only ? only->cur->nmsg : p->nmsg))
        return 0;
    if (collect(p, true, err))
        return -1;
    if (cf_dlq_flush(p->cfg->dlq, err))
        return cf_err_wrap(err, "not committing the batch");
    for (int i = 0; i < p->nlanes; i++) {
        lane *l = p->lanes[i];
        work *t = l->fly, *w = l->cur;
        if ((only && l != only) || !w->nmsg)
            continue;
        w->cv = (cf_commit){
            .rows = w->batch, .ops = w->ops, .lsns = w->lsns, .key = w->key, .nkey = w->nkey,
            .unavail = &w->ua, .start = &w->start, .end = &w->covered,
        };
        /* total_orders: counts into the rows, count updates, the state file
         * for the offsets this commit leaves; all before the table commit,
         * and before the next batch's order events are folded in */
        if (l->enrich && cf_enrich_prepare(l->enrich, w->batch, cf_transform_customers_schema(l->xf), &w->ua,
                                           &w->cv, p->processed_us, err))
            return cf_err_wrap(err, "table %s", table_label(p, l));
        l->fly = w;
        l->cur = t;
        c->q[c->nq++] = l;
        msgs += w->nmsg;
        rows += w->cv.rows ? w->cv.rows->nrows : 0;
        p->nmsg -= l->fly->nmsg;
        p->bytes -= l->fly->bytes;
        p->fly_bytes += l->fly->bytes;
    }
    if (!c->nq)
        return 0;
    cf_metrics_batch_cut(p->cfg->metrics, msgs, rows, p->fly_bytes);
    set_memory(p);
    pthread_mutex_lock(&c->mu);
    c->busy = true;
    c->finished = false;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Commit what is held, every table, and wait until it is in. */
static int commit_all(pipe_t *p, cf_err *err)
{
    return hand_off(p, NULL, err) || collect(p, true, err) ? -1 : 0;
}

/* Backpressure: the filling batch is full and the one before is still
 * being committed.  Stop fetching rather than let librdkafka's queue fill
 * (see kafka_pause) until that commit is in.  Fetching resumes before its
 * outcome is taken, so that the rewinds of a fenced batch apply to
 * partitions that fetch. */
static int wait_commit(pipe_t *p, cf_err *err)
{
    double t0 = mono_s();
    cf_err e = { 0 };

    if (cf_source_pause(p->cfg->source, true, &e))
        return cf_err_set(err, e.code, "backpressure: %s", e.msg);
    wait_finished(p);
    if (cf_source_pause(p->cfg->source, false, &e))
        return cf_err_set(err, e.code, "backpressure: %s", e.msg);
    cf_metrics_add_paused(p->cfg->metrics, mono_s() - t0);
    return collect(p, true, err);
}
/* ---- tables ---- */

static lane *find_lane(pipe_t *p, const char *location)
{
    for (int i = 0; i < p->nlanes; i++)
        if (!strcmp(p->lanes[i]->location, location))
            return p->lanes[i];
    return NULL;
}

/* Open the table at `location` (route mode). */
static lane *open_lane(pipe_t *p, const char *location, cf_err *err)
{
    const cf_pipeline_route *r = p->cfg->route;
    const char *base = strrchr(location, '/');
    lane *l;

    if (p->nlanes == p->max_lanes) {
        cf_err_set(err, CF_E_NOMEM, "more than %d tables in one pipeline (table %s)", p->max_lanes, location);
        return NULL;
    }
    if (!(l = new_lane())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    base = base ? base + 1 : location;
    snprintf(l->location, sizeof l->location, "%s", location);
    snprintf(l->name, sizeof l->name, "%s%s", r->name_prefix ? r->name_prefix : "", base);
    l->sc = r->sink;
    l->sc.location = l->location;
    l->sc.table_name = l->name;
    l->pk = p->cfg->primary_key;
    l->npk = p->cfg->nprimary_key;
    for (int i = 0; i < r->ntables; i++) {
        const cf_pipeline_table *t = &r->tables[i];
        if (strcmp(t->name, base))
            continue;
        if (t->set_mode)
            l->sc.mode = t->mode;
        if (t->set_deletes)
            l->sc.soft_deletes = t->soft_deletes;
        if (t->set_partition_by) {
            l->sc.partition_by = t->partition_by;
            l->sc.npartition_by = t->npartition_by;
        }
        if (t->nprimary_key) {
            l->pk = t->primary_key;
            l->npk = t->nprimary_key;
        }
    }
    l->owned = true;
    if (!(l->sink = cf_sink_open(&l->sc, err)) || !(l->xf = cf_transform_new(&r->transform, err))) {
        cf_err_wrap(err, "table %s", l->name);
        free_lane(l);
        return NULL;
    }
    p->lanes[p->nlanes++] = l;
    cf_log(CF_LOG_INFO, "pipeline", "%s: table open at %s", l->name, l->location);
    return l;
}

/* The table of a topic: the single one, or the one its name resolves to. */
static lane *lane_for(pipe_t *p, const char *topic, cf_err *err)
{
    char loc[CF_ROUTE_PATH_MAX];
    lane *l;

    if (!p->cfg->route)
        return p->lanes[0];
    if (p->last_lane && !strcmp(p->last_topic, topic))
        return p->last_lane;
    if (cf_route_expand(p->cfg->route->location_tmpl, topic, loc, sizeof loc, err))
        return NULL;
    if (!(l = find_lane(p, loc)) && !(l = open_lane(p, loc, err)))
        return NULL;
    p->last_lane = l;
    snprintf(p->last_topic, sizeof p->last_topic, "%s", topic);
    return l;
}

/* Offsets of the table at `location` that belong to it: in route mode only
 * the topics that resolve to this table count (a table may hold offsets of
 * topics routed elsewhere since, or be another pipeline's). */
static int table_offsets(pipe_t *p, cf_sink *sink, const char *location, const char *name, cf_offsets *out,
                         int *kept, cf_err *err)
{
    cf_offsets all = { 0 };
    int rc = -1;

    *kept = 0;
    if (cf_sink_offsets(sink, &all, err)) {
        cf_err_wrap(err, "table %s: reading its offsets", name);
        goto out;
    }
    for (int i = 0; i < all.n; i++) {
        if (p->cfg->route) {
            char loc[CF_ROUTE_PATH_MAX];
            cf_err e = { 0 };
            if (cf_route_expand(p->cfg->route->location_tmpl, all.v[i].topic, loc, sizeof loc, &e)
                || strcmp(loc, location))
                continue;
        }
        if (cf_offsets_put(out, all.v[i].topic, all.v[i].partition, all.v[i].next_offset, err))
            goto out;
        (*kept)++;
    }
    rc = 0;
out:
    cf_offsets_free(&all);
    return rc;
}

static int lane_offsets(pipe_t *p, lane *l, cf_offsets *out, int *kept, cf_err *err)
{
    if (table_offsets(p, l->sink, l->location, table_label(p, l), out, kept, err))
        return -1;
    /* The total_orders state is the one the table's offsets name. */
    return l->enrich ? cf_enrich_sync(l->enrich, out, err) : 0;
}

/* Whether dir holds a table of this kind: its log (Delta) or metadata
 * (Iceberg) directory lists anything. */
static int any_object(void *ctx, const char *path, const cf_store_stat *st)
{
    (void)ctx, (void)path, (void)st;
    return 1;
}

static bool is_table_dir(cf_store *st, const char *kind, const char *dir)
{
    char path[CF_ROUTE_PATH_MAX + 512];

    snprintf(path, sizeof path, "%s/%s", dir, kind && !strcmp(kind, "iceberg") ? "metadata" : "_delta_log");
    return cf_store_list(st, path, CF_STORE_FLAT, any_object, NULL, NULL) == 1;
}

typedef struct scan {
    pipe_t     *p;
    cf_store   *st;
    const char *parent;
    cf_err     *err;
} scan;

/* One entry under the template's parent: a table of ours? */
static int scan_entry(void *ctx, const char *path, const cf_store_stat *sb)
{
    scan *sc = ctx;
    pipe_t *p = sc->p;
    const cf_pipeline_route *r = p->cfg->route;
    char name[CF_ROUTE_PATH_MAX], loc[CF_ROUTE_PATH_MAX + 256];
    size_t pl = strlen(sc->parent), nl;
    cf_sink_config probe = r->sink;
    cf_offsets tmp = { 0 };
    cf_sink *s;
    int kept = 0, rc;

    (void)sb;
    /* path is PARENT/NAME/ */
    if (strncmp(path, sc->parent, pl) || path[pl] != '/')
        return 0;
    nl = strlen(path + pl + 1);
    if (nl < 2 || path[pl + nl] != '/' || nl > sizeof name)
        return 0;
    memcpy(name, path + pl + 1, nl - 1);
    name[nl - 1] = '\0';
    if (name[0] == '.' || !cf_route_entry_matches(r->location_tmpl, name))
        return 0;
    snprintf(loc, sizeof loc, "%s/%s", sc->parent, name);
    if (find_lane(p, loc) || !is_table_dir(sc->st, r->sink.kind, loc))
        return 0;
    /* A plain look at the offsets first: a neighbour table with other
     * options (partitioning, mode) is none of our business. */
    probe.location = loc;
    probe.table_name = name;
    probe.mode = CF_MODE_APPEND;
    probe.soft_deletes = false;
    probe.partition_by = NULL;
    probe.npartition_by = 0;
    if (!(s = cf_sink_open(&probe, sc->err)))
        return cf_err_wrap(sc->err, "table %s (under the template's directory)", loc);
    rc = table_offsets(p, s, loc, name, &tmp, &kept, sc->err);
    cf_sink_close(s);
    cf_offsets_free(&tmp);
    if (rc == 0 && kept && !open_lane(p, loc, sc->err))
        rc = -1;
    return rc;
}

/* Route mode: open every table that exists under the template's parent
 * directory and could be one of ours, so its offsets are known before any
 * message of its topics arrives.  Tables without offsets of topics that
 * resolve to them are not kept open. */
static int scan_tables(pipe_t *p, cf_err *err)
{
    const cf_pipeline_route *r = p->cfg->route;
    char parent[CF_ROUTE_PATH_MAX];
    scan sc = { .p = p, .parent = parent, .err = err };
    int rc;

    if (cf_route_parent(r->location_tmpl, parent, sizeof parent))
        return 0;       /* no parent: no table yet */
    if (!(sc.st = cf_store_open(parent, r->sink.store, err)))
        return -1;
    rc = cf_store_list(sc.st, parent, CF_STORE_FLAT | CF_STORE_DIRS, scan_entry, &sc, err);
    cf_store_close(sc.st);
    return rc;
}

/* The resume point: every open table's offsets (after a scan for tables
 * that exist but are not open yet). */
static int all_offsets(pipe_t *p, cf_offsets *out, cf_err *err)
{
    if (p->cfg->route && scan_tables(p, err))
        return -1;
    p->last_lane = NULL;
    for (int i = 0; i < p->nlanes; i++) {
        int kept;
        if (lane_offsets(p, p->lanes[i], out, &kept, err))
            return -1;
    }
    return 0;
}

/* Bad input: to the dead-letter target, or stop. */
static int bad_event(pipe_t *p, lane *l, const cf_msg *m, const cf_err *why, cf_err *err)
{
    if (!cf_dlq_enabled(p->cfg->dlq))
        return cf_err_setpos(err, why->code, why->pos, "%s: bad event at %s[%d] offset %lld: %s: %.300s "
                             "(dead-letter is off: stopping without committing the batch)", table_label(p, l),
                             m->topic, m->partition, (long long)m->offset, cf_code_name(why->code), why->msg);
    if (cf_dlq_put(p->cfg->dlq, m, why, err))
        return cf_err_wrap(err, "dead-letter");
    l->cur->dlq_n++;
    p->st->dead_letter++;
    cf_log(l->cur->dlq_n <= DLQ_LOG_PER_BATCH ? CF_LOG_WARN : CF_LOG_DEBUG, "pipeline",
           "%s: dead-letter %s[%d] offset %lld: %s: %s", table_label(p, l), m->topic, m->partition,
           (long long)m->offset, cf_code_name(why->code), why->msg);
    return 0;
}

/* Upsert needs the key of the row image that carries it: the source key,
 * or the override's columns when they are source columns (derived ones
 * are checked by the sink). */
static bool has_key(const lane *l, const cf_event *ev)
{
    const cf_row *r = ev->op == 'd' ? &ev->before : &ev->after;

    if (!ev->schema || !r->present)
        return false;
    if (l->npk) {
        for (int i = 0; i < l->npk; i++) {
            int c = cf_schema_find(ev->schema, l->pk[i]);
            if (c >= 0 && (r->vals[c].kind == CF_V_NULL || r->vals[c].kind == CF_V_UNAVAILABLE))
                return false;
        }
        return true;
    }
    if (ev->schema->npk == 0)
        return false;
    for (int i = 0; i < ev->schema->npk; i++) {
        cf_vkind k = r->vals[ev->schema->pk[i]].kind;
        if (k == CF_V_NULL || k == CF_V_UNAVAILABLE)
            return false;
    }
    return true;
}

/* A new source schema cuts the table's batch: rows of one batch share one
 * schema.  The decoder keeps one schema object per table version for its
 * lifetime, so a new pointer is a real change. */
static int check_schema(pipe_t *p, lane *l, const cf_event *ev, cf_err *err)
{
    if (ev->schema == l->src_ptr)
        return 0;
    if (l->cur->batch && l->cur->batch->nrows) {
        cf_log(CF_LOG_INFO, "pipeline", "%s: source schema changed: committing the current batch first",
               table_label(p, l));
        if (hand_off(p, l, err))
            return -1;
    }
    l->src_ptr = ev->schema;
    return 0;
}

/* Point the table's batch at the transform's output schema `out`. */
static int bind_batch(pipe_t *p, lane *l, const cf_event *ev, const cf_schema *out, cf_err *err)
{
    work *w;

    if (out == l->cur->out_schema && l->cur->batch)
        return 0;
    if (l->cur->batch && l->cur->batch->nrows && hand_off(p, l, err))
        return -1;
    w = l->cur;
    if (l->sc.mode == CF_MODE_UPSERT && out->npk == 0 && !l->npk)
        return cf_err_set(err, CF_E_ARG, "upsert mode needs a primary key, table %s.%s has none "
                          "(the events carry no key schema): name it with --primary-key",
                          ev->src.schema, ev->src.table);
    /* The key of the commit: the override's columns, or the source key. */
    w->nkey = 0;
    if (l->npk) {
        if (l->npk > CF_MAX_KEY_COLS)
            return cf_err_set(err, CF_E_ARG, "%s: --primary-key names %d columns (at most %d)",
                              table_label(p, l), l->npk, CF_MAX_KEY_COLS);
        for (int i = 0; i < l->npk; i++) {
            int k = cf_schema_find(out, l->pk[i]);
            if (k < 0)
                return cf_err_set(err, CF_E_ARG, "%s: --primary-key: no column '%s' in the output",
                                  table_label(p, l), l->pk[i]);
            w->key[w->nkey++] = k;
        }
    } else {
        if (out->npk > CF_MAX_KEY_COLS)
            return cf_err_set(err, CF_E_UNSUPPORTED, "table %s.%s has a key of %d columns (at most %d)",
                              ev->src.schema, ev->src.table, out->npk, CF_MAX_KEY_COLS);
        for (int i = 0; i < out->npk; i++)
            w->key[w->nkey++] = out->pk[i];
    }
    if (!w->batch) {
        if (!(w->batch = cf_batch_new(out, err)))
            return -1;
    } else if (cf_batch_rebind(w->batch, out, err)) {
        return -1;
    }
    w->out_schema = out;
    return 0;
}

/* A commit made while handling m (a schema change, a full arena) was
 * fenced and moved m's partition back: m comes again, it is taken then. */
static bool rewound(const pipe_t *p, const cf_msg *m)
{
    for (int i = 0; i < p->rewound.n; i++)
        if (p->rewound.v[i].partition == m->partition && !strcmp(p->rewound.v[i].topic, m->topic))
            return true;
    return false;
}

/* One message into its table's batch.  The covered offsets move only after
 * the message is handled, so a batch cut by a schema change ends before it. */
static int handle(pipe_t *p, const cf_msg *m, cf_err *err)
{
    const cf_pipeline_config *cfg = p->cfg;
    cf_event ev;
    cf_err why = { 0 };
    lane *l = lane_for(p, m->topic, err);
    work *w;
    size_t bytes;

    if (!l)
        return -1;
    cf_offsets_clear(&p->rewound);
    if (!p->nmsg) {
        p->batch_start = mono_s();
        p->processed_us = wall_us();
    }
    if (!l->cur->nmsg)
        l->cur->batch_start = mono_s();
    if (m->value && m->value_len > p->max_msg) {
        cf_err_set(&why, CF_E_TOOBIG, "message of %zu bytes over the cap of %zu", m->value_len, p->max_msg);
        why.pos = -1;
        if (bad_event(p, l, m, &why, err))
            return -1;
        goto covered;
    }
    why.pos = -1;
    if (cf_decoder_decode(cfg->decoder, m, &ev, &why) && why.code == CF_E_FULL
        && cf_decoder_arena_used(cfg->decoder) > 0) {
        /* The batch holds copies of its rows: the decoder's memory is free
         * to go (the pipeline resets it between messages past a slack). */
        cf_decoder_reset(cfg->decoder);
        cf_err_clear(&why);
        why.pos = -1;
        if (!cf_decoder_decode(cfg->decoder, m, &ev, &why))
            goto decoded;
    }
    if (why.code != CF_OK) {
        if (why.code == CF_E_FULL)
            cf_err_wrap(&why, "one message needs more than the decoder's %s", "per-batch memory");
        if (why.fatal) {
            if (err)
                *err = why;
            return -1;
        }
        if (bad_event(p, l, m, &why, err))
            return -1;
        goto covered;
    }
decoded:
    if (cf_enrich_takes(l->enrich, m->topic)) {
        /* Order events feed the total_orders state; they are no rows. */
        if (cf_enrich_order(l->enrich, &ev, &why)) {
            if (why.code != CF_E_PARSE) {
                if (err)
                    *err = why;
                return -1;
            }
            why.pos = -1;
            if (bad_event(p, l, m, &why, err))
                return -1;
        }
        goto covered;
    }
    if (ev.op == 0) {
        l->cur->tomb_n++;
        p->st->tombstones++;
        goto covered;
    }
    if (ev.op == 't') {
        /* Nothing to write: the table keeps its history (as the seed did). */
        l->cur->kinds[K_T]++;
        goto covered;
    }
    {
        if (!strchr("cudr", ev.op)) {
            cf_err_set(&why, CF_E_PARSE, "unknown op '%c'", ev.op);
            why.pos = -1;
            if (bad_event(p, l, m, &why, err))
                return -1;
            goto covered;
        }
        if (l->sc.mode == CF_MODE_UPSERT && ev.schema && ev.schema->npk == 0 && !l->npk)
            return cf_err_set(err, CF_E_ARG, "upsert mode needs a primary key, table %s.%s has none "
                              "(the events carry no key schema): name it with --primary-key",
                              ev.src.schema, ev.src.table);
        if (l->sc.mode == CF_MODE_UPSERT && !has_key(l, &ev)) {
            cf_err_set(&why, CF_E_PARSE, "no primary key value in the %s image (upsert mode)",
                       ev.op == 'd' ? "before" : "after");
            why.pos = -1;
            if (bad_event(p, l, m, &why, err))
                return -1;
            goto covered;
        }
    }
    if (check_schema(p, l, &ev, err))
        return -1;
    if (rewound(p, m))
        return 0;
    {
        const cf_schema *out = cf_transform_schema(l->xf, &ev, &why);
        if (!out) {
            /* e.g. a source column named like a metadata column */
            if (why.fatal) {
                if (err)
                    *err = why;
                return -1;
            }
            if (bad_event(p, l, m, &why, err))
                return -1;
            goto covered;
        }
        if (bind_batch(p, l, &ev, out, err))
            return -1;
        if (rewound(p, m))
            return 0;
    }
    if (!p->nmsg) {
        /* A schema change just committed the batch: this message opens the next one. */
        p->batch_start = mono_s();
        p->processed_us = wall_us();
    }
    w = l->cur;
    if (!w->nmsg)
        w->batch_start = mono_s();
    {
        size_t before = w->batch->nrows;
        if (before + 1 > w->arows) {
            size_t na = w->arows ? w->arows * 2 : 1024;
            char *no = realloc(w->ops, na);
            int64_t *nl;
            if (no)
                w->ops = no;
            if (!no || !(nl = realloc(w->lsns, na * sizeof *nl)))
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            w->lsns = nl;
            w->arows = na;
        }
        if (cf_transform_apply(l->xf, &ev, w->batch, &w->ua, p->processed_us, &why)) {
            cf_batch_abort_row(w->batch);
            if (why.fatal) {
                if (err)
                    *err = why;
                return -1;
            }
            if (bad_event(p, l, m, &why, err))
                return -1;
            goto covered;
        }
        p->st->events += w->batch->nrows - before;
        if (w->batch->nrows > before) {
            w->ops[before] = ev.op;
            w->lsns[before] = ev.src.lsn;
        }
    }
    w->kinds[ev.op == 'c' ? K_C : ev.op == 'u' ? K_U : ev.op == 'd' ? K_D : ev.op == 'r' ? K_R : K_T]++;
covered:
    w = l->cur;
    w->nmsg++;
    p->nmsg++;
    p->st->messages++;
    /* What the batch holds: its values and the commit value beside them.
     * Rows are only added to a filling batch, so this only grows. */
    bytes = cf_batch_bytes(w->batch) + (w->batch ? w->batch->nrows : 0) * (sizeof *w->ops + sizeof *w->lsns);
    p->bytes += bytes - w->bytes;
    w->bytes = bytes;
    if (cf_offsets_get(&w->start, m->topic, m->partition) < 0 &&
        cf_offsets_put(&w->start, m->topic, m->partition, m->from, err))
        return -1;
    return cf_offsets_put(&w->covered, m->topic, m->partition, m->offset + 1, err);
}

/* ---- source hooks (called inside cf_source_poll) ---- */

/* The table's offsets must include the batch being committed. */
static int on_assign(void *opaque, cf_offsets *out, cf_err *err)
{
    pipe_t *p = opaque;
    return collect(p, true, err) || all_offsets(p, out, err) ? -1 : 0;
}

static void drop_filling(pipe_t *p)
{
    for (int i = 0; i < p->nlanes; i++) {
        reset_work(p->lanes[i]->cur);
        cf_enrich_drop(p->lanes[i]->enrich);
    }
    p->nmsg = 0;
    p->bytes = 0;
    set_memory(p);
}

static int on_revoke(void *opaque, const cf_offsets *revoked, bool lost)
{
    pipe_t *p = opaque;
    cf_err e = { 0 };

    (void)revoked;
    /* The commit thread cannot be stopped halfway: let it finish.  What it
     * commits after the partitions are gone is refused by the fence if
     * another consumer wrote first, or fences that consumer's commit. */
    if (collect(p, true, &e)) {
        cf_log(CF_LOG_ERROR, "pipeline", "commit before revoke failed: %s", e.msg);
        goto drop;
    }
    if (!p->nmsg)
        return 0;
    if (lost) {
        /* Another consumer may own them already and be committing: ours
         * would be refused by the fence anyway, so do not even try. */
        cf_log(CF_LOG_WARN, "pipeline", "partitions lost (session timed out): dropping the batch in flight");
        goto drop;
    }
    cf_log(CF_LOG_INFO, "pipeline", "partitions revoked: committing the batch in flight");
    if (commit_all(p, &e) == 0)
        return 0;
    /* Nothing of it reached the table: whoever owns the partitions next reads
     * them again from the table's offsets. */
    cf_log(CF_LOG_ERROR, "pipeline", "commit at revoke failed, batch dropped: %s", e.msg);
drop:
    drop_filling(p);
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
    p.max_memory = cfg->max_memory ? cfg->max_memory : CF_PIPELINE_DEFAULT_MAX_MEMORY;
    p.batch_cap = p.max_memory / BATCH_SHARE < MIN_BATCH_BYTES ? MIN_BATCH_BYTES : p.max_memory / BATCH_SHARE;
    p.max_lanes = cfg->route ? (cfg->route->max_tables > 0 ? cfg->route->max_tables
                                                           : CF_PIPELINE_DEFAULT_MAX_TABLES) : 1;
    if (!(p.lanes = calloc((size_t)p.max_lanes, sizeof *p.lanes))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    if (cfg->route) {
        if (cfg->enrich) {
            cf_err_set(err, CF_E_ARG, "total_orders enrichment needs one fixed table, not a location template");
            goto out;
        }
        if (cf_route_check(cfg->route->location_tmpl, err))
            goto out;
    } else {
        lane *l = new_lane();
        if (!l) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        l->sink = cfg->sink;
        l->xf = cfg->transform;
        l->sc.mode = cfg->mode;
        l->pk = cfg->primary_key;
        l->npk = cfg->nprimary_key;
        l->enrich = cfg->enrich;
        p.lanes[p.nlanes++] = l;
    }

    /* Exactly once: the tables say where we are. */
    if (all_offsets(&p, &start, err)) {
        cf_err_wrap(err, "reading the table's offsets");
        goto out;
    }
    for (int i = 0; i < start.n; i++) {
        lane *l = cfg->route ? lane_for(&p, start.v[i].topic, NULL) : p.lanes[0];
        cf_log(CF_LOG_INFO, "pipeline", "%s: resume %s[%d] at offset %lld", table_label(&p, l),
               start.v[i].topic, start.v[i].partition, (long long)start.v[i].next_offset);
    }
    if (!start.n)
        cf_log(CF_LOG_INFO, "pipeline", "%s: no offsets in the table%s: starting from the earliest",
               cfg->route ? cfg->route->location_tmpl : table_label(&p, NULL), cfg->route ? "s" : "");
    if (cf_source_seek(cfg->source, &start, err))
        goto out;
    cf_source_set_hooks(cfg->source, on_assign, on_revoke, &p);
    if (cfg->available_now && cf_source_set_available_now(cfg->source, err))
        goto out;
    if (cfg->progress)
        cf_log_set_pre_hook(progress_clear);
    if (start_committer(&p, err))
        goto out;
    set_memory(&p);
    cf_metrics_set_up(cfg->metrics, true, NULL);

    while (!done) {
        cf_msg m;
        int r, timeout = POLL_SLICE_MS;
        bool full, due;

        if (cf_signals_stop_requested()) {
            cf_log(CF_LOG_INFO, "pipeline", "stop requested: committing the batch in flight");
            break;
        }
        if (p.nmsg) {
            double left_ms = (p.batch_start + p.trigger_ms / 1e3 - mono_s()) * 1e3;
            timeout = left_ms <= 0 ? 0 : left_ms < POLL_SLICE_MS ? (int)left_ms : POLL_SLICE_MS;
            if (timeout < COMMIT_POLL_MS && p.c.busy)
                timeout = COMMIT_POLL_MS;   /* due, but waiting for the commit */
        }
        /* A commit that is in gets its group offsets, metrics and log line
         * soon even when no message comes. */
        if (p.c.busy && timeout > COMMIT_WAKE_MS)
            timeout = COMMIT_WAKE_MS;
        r = cf_source_poll(cfg->source, &m, timeout, err);
        if (r < 0) {
            cf_err_wrap(err, "source");
            goto out;
        }
        if (r == 2) {
            cf_log(CF_LOG_INFO, "pipeline", "%s", cfg->available_now ? "caught up with what was available at start"
                                                                    : "end of input");
            done = true;
        } else if (r == 1) {
            if (handle(&p, &m, err))
                goto out;
            if (cf_decoder_arena_used(cfg->decoder) > DECODER_SLACK)
                cf_decoder_reset(cfg->decoder);
        }
        if (collect(&p, false, err))
            goto out;
        /* A batch is cut when full (messages, bytes) or at the trigger.  At
         * the trigger with the commit before still running it keeps
         * filling instead, so batches grow as commits slow down; once full
         * it waits, with consumption paused. */
        full = (int64_t)p.nmsg >= p.max_offsets || p.bytes >= p.batch_cap;
        due = p.nmsg && (done || full || mono_s() - p.batch_start >= p.trigger_ms / 1e3);
        if (due && (done || full || !commit_running(&p))) {
            if (full && !done && commit_running(&p) && wait_commit(&p, err))
                goto out;
            if (hand_off(&p, NULL, err))
                goto out;
        }
        /* Lag walks the partitions and takes librdkafka locks: not per message. */
        if (cfg->metrics && (r != 1 || mono_s() - p.hb_last >= 0.1)) {
            int64_t lag = cf_source_lag(cfg->source);
            p.hb_last = mono_s();
            cf_metrics_set_lag(cfg->metrics, lag);
            set_memory(&p);
            cf_metrics_heartbeat(cfg->metrics, p.nmsg == 0 && !p.c.busy && lag <= 0);
        }
        progress(&p, false);
    }
    if (commit_all(&p, err))
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
    stop_committer(&p);
    cf_source_set_hooks(cfg->source, NULL, NULL, NULL);
    cf_offsets_free(&start);
    cf_offsets_free(&p.rewound);
    p.st->tables = p.nlanes;
    for (int i = 0; i < p.nlanes; i++)
        free_lane(p.lanes[i]);
    free(p.lanes);
    return rc;
}
