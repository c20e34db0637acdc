/* metrics.c - Prometheus counters and the /metrics, /healthz endpoint. */
#include "runtime/metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBUCKETS 13
static const double bucket_le[NBUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

enum { OP_INSERT, OP_UPDATE, OP_DELETE, OP_READ, OP_TRUNCATE, OP_TOMBSTONE, NOPS };
static const char *const op_names[NOPS] = { "insert", "update", "delete", "read", "truncate", "tombstone" };

typedef struct histo {
    uint64_t buckets[NBUCKETS];  /* non-cumulative; summed when rendered */
    uint64_t count;
    double   sum;
} histo;

/* One table of a routed pipeline (one table per topic). */
typedef struct table_stat {
    char     *name;
    uint64_t  events[NOPS];
    uint64_t  batches;
    int64_t   version;
} table_stat;

struct cf_metrics {
    pthread_mutex_t mu;
    table_stat *tables;          /* empty unless the pipeline routes to several tables */
    int       ntables;
    char     *table, *pipeline_id;
    struct MHD_Daemon *httpd;
    int       port;
    uint64_t  events[NOPS];
    uint64_t  dead_letter;
    uint64_t  fenced;        /* batches dropped: another writer owned their partitions */
    uint64_t  conflicts;     /* commit attempts lost to another writer, then retried */
    uint64_t  batches;
    histo     batch_dur, commit_dur;
    double    last_commit_s;     /* duration of the last commit */
    uint64_t  cut_msgs, cut_rows, cut_bytes;   /* the last batch handed to the commit */
    uint64_t  mem_bytes, mem_limit;
    uint64_t  pauses;
    double    paused_s;
    int64_t   lag;
    int64_t   version;
    double    last_commit;       /* unix seconds, 0 = never */
    double    start;
    double    heartbeat;
    bool      idle;
    bool      up;
    char      down_why[256];
    double    max_commit_age, max_stall;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void histo_add(histo *h, double v)
{
    int i = 0;
    while (i < NBUCKETS && v > bucket_le[i])
        i++;
    if (i < NBUCKETS)
        h->buckets[i]++;
    h->count++;
    h->sum += v;
}

cf_metrics *cf_metrics_new(const char *table, const char *pipeline_id)
{
    cf_metrics *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    if (!(m->table = strdup(table ? table : "")) || !(m->pipeline_id = strdup(pipeline_id ? pipeline_id : ""))) {
        free(m->table);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->mu, NULL);
    m->lag = -1;
    m->version = -1;
    m->start = m->heartbeat = now_s();
    m->idle = true;
    m->max_commit_age = 300;
    m->max_stall = 60;
    return m;
}

void cf_metrics_free(cf_metrics *m)
{
    if (!m)
        return;
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    pthread_mutex_destroy(&m->mu);
    for (int i = 0; i < m->ntables; i++)
        free(m->tables[i].name);
    free(m->tables);
    free(m->table);
    free(m->pipeline_id);
    free(m);
}

#define LOCKED(m, stmt) do { pthread_mutex_lock(&(m)->mu); stmt; pthread_mutex_unlock(&(m)->mu); } while (0)

void cf_metrics_add_events(cf_metrics *m, char op, uint64_t n)
{
    int i = op == 'c' ? OP_INSERT : op == 'u' ? OP_UPDATE : op == 'd' ? OP_DELETE
          : op == 'r' ? OP_READ : op == 't' ? OP_TRUNCATE : OP_TOMBSTONE;
    if (m)
        LOCKED(m, m->events[i] += n);
}

static int op_index(char op)
{
    return op == 'c' ? OP_INSERT : op == 'u' ? OP_UPDATE : op == 'd' ? OP_DELETE
         : op == 'r' ? OP_READ : op == 't' ? OP_TRUNCATE : OP_TOMBSTONE;
}

/* The entry of `table`, added on first sight; NULL at the cap or on OOM
 * (the table's series are then missing, the totals still count). */
static table_stat *table_locked(cf_metrics *m, const char *table)
{
    table_stat *t;

    for (int i = 0; i < m->ntables; i++)
        if (!strcmp(m->tables[i].name, table))
            return &m->tables[i];
    if (m->ntables == CF_METRICS_MAX_TABLES)
        return NULL;
    if (!(t = realloc(m->tables, (size_t)(m->ntables + 1) * sizeof *t)))
        return NULL;
    m->tables = t;
    t = &m->tables[m->ntables];
    memset(t, 0, sizeof *t);
    t->version = -1;
    if (!(t->name = strdup(table)))
        return NULL;
    m->ntables++;
    return t;
}

void cf_metrics_table_commit(cf_metrics *m, const char *table, const uint64_t by_op[6], int64_t version)
{
    table_stat *t;

    if (!m || !table)
        return;
    pthread_mutex_lock(&m->mu);
    if ((t = table_locked(m, table))) {
        static const char ops[6] = { 'c', 'u', 'd', 'r', 't', 0 };
        for (int i = 0; i < 6; i++)
            t->events[op_index(ops[i])] += by_op[i];
        t->batches++;
        if (version >= 0)
            t->version = version;
    }
    pthread_mutex_unlock(&m->mu);
}

void cf_metrics_add_fenced(cf_metrics *m)
{
    if (m)
        LOCKED(m, m->fenced++);
}

void cf_metrics_add_conflicts(cf_metrics *m, uint64_t n)
{
    if (m && n)
        LOCKED(m, m->conflicts += n);
}

void cf_metrics_add_dead_letter(cf_metrics *m, uint64_t n)
{
    if (m)
        LOCKED(m, m->dead_letter += n);
}

void cf_metrics_batch_done(cf_metrics *m, double batch_s, double commit_s, int64_t version)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->batches++;
    histo_add(&m->batch_dur, batch_s);
    histo_add(&m->commit_dur, commit_s);
    m->last_commit_s = commit_s;
    if (version >= 0)
        m->version = version;
    m->last_commit = now_s();
    pthread_mutex_unlock(&m->mu);
}

void cf_metrics_batch_cut(cf_metrics *m, uint64_t messages, uint64_t rows, uint64_t bytes)
{
    if (m)
        LOCKED(m, m->cut_msgs = messages; m->cut_rows = rows; m->cut_bytes = bytes);
}

void cf_metrics_set_memory(cf_metrics *m, uint64_t bytes, uint64_t limit)
{
    if (m)
        LOCKED(m, m->mem_bytes = bytes; m->mem_limit = limit);
}

void cf_metrics_add_paused(cf_metrics *m, double seconds)
{
    if (m)
        LOCKED(m, m->pauses++; m->paused_s += seconds);
}

void cf_metrics_set_lag(cf_metrics *m, int64_t lag)
{
    if (m)
        LOCKED(m, m->lag = lag);
}

void cf_metrics_set_version(cf_metrics *m, int64_t version)
{
    if (m)
        LOCKED(m, m->version = version);
}

void cf_metrics_heartbeat(cf_metrics *m, bool idle)
{
    if (m)
        LOCKED(m, m->heartbeat = now_s(); m->idle = idle);
}

void cf_metrics_set_up(cf_metrics *m, bool up, const char *why_down)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->up = up;
    snprintf(m->down_why, sizeof m->down_why, "%s", why_down ? why_down : "stopped");
    pthread_mutex_unlock(&m->mu);
}

void cf_metrics_set_health_limits(cf_metrics *m, double max_commit_age_s, double max_stall_s)
{
    if (m)
        LOCKED(m, m->max_commit_age = max_commit_age_s; m->max_stall = max_stall_s);
}

uint64_t cf_metrics_events_total(cf_metrics *m)
{
    uint64_t n = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < NOPS; i++)
        if (i != OP_TOMBSTONE)
            n += m->events[i];
    pthread_mutex_unlock(&m->mu);
    return n;
}

uint64_t cf_metrics_dead_letter_total(cf_metrics *m)
{
    uint64_t n;
    LOCKED(m, n = m->dead_letter);
    return n;
}

uint64_t cf_metrics_batches_total(cf_metrics *m)
{
    uint64_t n;
    LOCKED(m, n = m->batches);
    return n;
}

/* Label values are table and pipeline names: escape \, " and newline. */
static int put_label(cf_buf *b, const char *s, cf_err *err)
{
    for (; *s; s++) {
        int rc = *s == '\\' ? cf_buf_printf(b, err, "\\\\")
               : *s == '"' ? cf_buf_printf(b, err, "\\\"")
               : *s == '\n' ? cf_buf_printf(b, err, "\\n")
               : cf_buf_putc(b, (uint8_t)*s, err);
        if (rc)
            return -1;
    }
    return 0;
}

static int render_histo(cf_buf *b, const char *name, const char *help, const histo *h, cf_err *err)
{
    uint64_t cum = 0;
    if (cf_buf_printf(b, err, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name))
        return -1;
    for (int i = 0; i < NBUCKETS; i++) {
        cum += h->buckets[i];
        if (cf_buf_printf(b, err, "%s_bucket{le=\"%g\"} %llu\n", name, bucket_le[i], (unsigned long long)cum))
            return -1;
    }
    return cf_buf_printf(b, err, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                         name, (unsigned long long)h->count, name, h->sum, name,
                         (unsigned long long)h->count);
}

static bool healthy_locked(cf_metrics *m, double now, char *why, size_t cap)
{
    double since_commit = now - (m->last_commit > 0 ? m->last_commit : m->start);

    if (!m->up) {
        snprintf(why, cap, "down: %s", m->down_why);
        return false;
    }
    if (now - m->heartbeat > m->max_stall) {
        snprintf(why, cap, "loop stalled for %.0f s", now - m->heartbeat);
        return false;
    }
    if (!m->idle && since_commit > m->max_commit_age) {
        snprintf(why, cap, "no commit for %.0f s with input waiting (lag %lld)", since_commit, (long long)m->lag);
        return false;
    }
    snprintf(why, cap, "ok");
    return true;
}

bool cf_metrics_healthy(cf_metrics *m, char *why, size_t cap)
{
    bool ok;
    LOCKED(m, ok = healthy_locked(m, now_s(), why, cap));
    return ok;
}

int cf_metrics_render(cf_metrics *m, cf_buf *b, cf_err *err)
{
    int rc = -1;

    pthread_mutex_lock(&m->mu);
    if (cf_buf_printf(b, err, "# HELP cdcflow_events_total Change events committed to the table, by operation.\n"
                              "# TYPE cdcflow_events_total counter\n"))
        goto out;
    /* A routed pipeline reports each table under its own label instead. */
    for (int i = 0; !m->ntables && i < NOPS; i++) {
        if (cf_buf_printf(b, err, "cdcflow_events_total{table=\"") || put_label(b, m->table, err)
            || cf_buf_printf(b, err, "\",op=\"%s\"} %llu\n", op_names[i], (unsigned long long)m->events[i]))
            goto out;
    }
    for (int t = 0; t < m->ntables; t++)
        for (int i = 0; i < NOPS; i++)
            if (cf_buf_printf(b, err, "cdcflow_events_total{table=\"") || put_label(b, m->tables[t].name, err)
                || cf_buf_printf(b, err, "\",op=\"%s\"} %llu\n", op_names[i],
                                 (unsigned long long)m->tables[t].events[i]))
                goto out;
    if (m->ntables && cf_buf_printf(b, err, "# HELP cdcflow_table_batches_total Batches committed, by table.\n"
                                             "# TYPE cdcflow_table_batches_total counter\n"))
        goto out;
    for (int t = 0; t < m->ntables; t++)
        if (cf_buf_printf(b, err, "cdcflow_table_batches_total{table=\"") || put_label(b, m->tables[t].name, err)
            || cf_buf_printf(b, err, "\"} %llu\n", (unsigned long long)m->tables[t].batches))
            goto out;
    if (m->ntables && cf_buf_printf(b, err, "# HELP cdcflow_table_last_version Last version committed, by table.\n"
                                             "# TYPE cdcflow_table_last_version gauge\n"))
        goto out;
    for (int t = 0; t < m->ntables; t++)
        if (cf_buf_printf(b, err, "cdcflow_table_last_version{table=\"") || put_label(b, m->tables[t].name, err)
            || cf_buf_printf(b, err, "\"} %lld\n", (long long)m->tables[t].version))
            goto out;
    if (cf_buf_printf(b, err,
                      "# HELP cdcflow_dead_letter_total Events sent to the dead-letter target.\n"
                      "# TYPE cdcflow_dead_letter_total counter\ncdcflow_dead_letter_total %llu\n"
                      "# HELP cdcflow_batches_total Batches committed to the table.\n"
                      "# TYPE cdcflow_batches_total counter\ncdcflow_batches_total %llu\n"
                      "# HELP cdcflow_batches_fenced_total Batches dropped because the table had moved past "
                      "their start (another process of the group owned their partitions).\n"
                      "# TYPE cdcflow_batches_fenced_total counter\ncdcflow_batches_fenced_total %llu\n"
                      "# HELP cdcflow_commit_conflicts_total Commit attempts lost to another writer of the "
                      "table and made again.\n"
                      "# TYPE cdcflow_commit_conflicts_total counter\ncdcflow_commit_conflicts_total %llu\n",
                      (unsigned long long)m->dead_letter, (unsigned long long)m->batches,
                      (unsigned long long)m->fenced, (unsigned long long)m->conflicts))
        goto out;
    if (render_histo(b, "cdcflow_batch_duration_seconds", "From a batch's first message to its commit.",
                     &m->batch_dur, err)
        || render_histo(b, "cdcflow_commit_duration_seconds", "Table commit time (files and log entry).",
                        &m->commit_dur, err))
        goto out;
    if (cf_buf_printf(b, err,
                      "# HELP cdcflow_last_commit_seconds Duration of the last table commit.\n"
                      "# TYPE cdcflow_last_commit_seconds gauge\ncdcflow_last_commit_seconds %.6f\n"
                      "# HELP cdcflow_batch_messages Messages in the last batch handed to the commit.\n"
                      "# TYPE cdcflow_batch_messages gauge\ncdcflow_batch_messages %llu\n"
                      "# HELP cdcflow_batch_rows Rows in the last batch handed to the commit.\n"
                      "# TYPE cdcflow_batch_rows gauge\ncdcflow_batch_rows %llu\n"
                      "# HELP cdcflow_batch_bytes Bytes of the last batch handed to the commit.\n"
                      "# TYPE cdcflow_batch_bytes gauge\ncdcflow_batch_bytes %llu\n"
                      "# HELP cdcflow_memory_bytes Bytes the batches hold (the one filling and the one committing).\n"
                      "# TYPE cdcflow_memory_bytes gauge\ncdcflow_memory_bytes %llu\n"
                      "# HELP cdcflow_memory_limit_bytes The memory bound (--max-memory).\n"
                      "# TYPE cdcflow_memory_limit_bytes gauge\ncdcflow_memory_limit_bytes %llu\n"
                      "# HELP cdcflow_paused_seconds_total Time consumption was paused waiting for a commit.\n"
                      "# TYPE cdcflow_paused_seconds_total counter\ncdcflow_paused_seconds_total %.6f\n"
                      "# HELP cdcflow_pauses_total Times consumption was paused waiting for a commit.\n"
                      "# TYPE cdcflow_pauses_total counter\ncdcflow_pauses_total %llu\n",
                      m->last_commit_s, (unsigned long long)m->cut_msgs, (unsigned long long)m->cut_rows,
                      (unsigned long long)m->cut_bytes, (unsigned long long)m->mem_bytes,
                      (unsigned long long)m->mem_limit, m->paused_s, (unsigned long long)m->pauses))
        goto out;
    if (cf_buf_printf(b, err,
                      "# HELP cdcflow_consumer_lag Messages behind the high watermark, summed over assigned partitions (-1 unknown).\n"
                      "# TYPE cdcflow_consumer_lag gauge\ncdcflow_consumer_lag %lld\n"
                      "# HELP cdcflow_table_version Last table version (Delta version / Iceberg sequence number) written or found.\n"
                      "# TYPE cdcflow_table_version gauge\ncdcflow_table_version %lld\n"
                      "# HELP cdcflow_last_commit_timestamp_seconds Unix time of the last commit (0 = none yet).\n"
                      "# TYPE cdcflow_last_commit_timestamp_seconds gauge\ncdcflow_last_commit_timestamp_seconds %.3f\n"
                      "# HELP cdcflow_up 1 while the pipeline loop runs.\n"
                      "# TYPE cdcflow_up gauge\ncdcflow_up %d\n"
                      "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                      "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
                      (long long)m->lag, (long long)m->version, m->last_commit,
                      m->up ? 1 : 0, m->start))
        goto out;
    if (cf_buf_printf(b, err, "# HELP cdcflow_info Pipeline identity.\n# TYPE cdcflow_info gauge\n"
                              "cdcflow_info{pipeline_id=\"")
        || put_label(b, m->pipeline_id, err) || cf_buf_printf(b, err, "\",table=\"")
        || put_label(b, m->table, err) || cf_buf_printf(b, err, "\"} 1\n"))
        goto out;
    rc = 0;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    enum MHD_Result rc;
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    cf_metrics *m = cls;

    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, 405, "text/plain", "method not allowed\n", 19, MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/metrics")) {
        cf_buf b;
        size_t len;
        uint8_t *p;
        cf_buf_init(&b, (size_t)4 << 20);
        if (cf_metrics_render(m, &b, NULL)) {
            cf_buf_free(&b);
            return reply(c, 500, "text/plain", "render failed\n", 14, MHD_RESPMEM_PERSISTENT);
        }
        p = cf_buf_steal(&b, &len);
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", p, len, MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/healthz")) {
        char why[300], body[320];
        bool ok = cf_metrics_healthy(m, why, sizeof why);
        int n = snprintf(body, sizeof body, "%s\n", why);
        return reply(c, ok ? 200 : 503, "text/plain", body, (size_t)n, MHD_RESPMEM_MUST_COPY);
    }
    return reply(c, 404, "text/plain", "not found: try /metrics or /healthz\n", 36, MHD_RESPMEM_PERSISTENT);
}

int cf_metrics_serve(cf_metrics *m, int port, cf_err *err)
{
    struct sockaddr_in sin;
    const union MHD_DaemonInfo *info;

    if (port < 0 || port > 65535)
        return cf_err_set(err, CF_E_ARG, "metrics port %d out of range", port);
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                                handle, m,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                MHD_OPTION_END);
    if (!m->httpd)
        return cf_err_set(err, CF_E_IO, "metrics: cannot listen on 127.0.0.1:%d (port in use?)", port);
    info = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : port;
    return 0;
}

int cf_metrics_port(const cf_metrics *m)
{
    return m->port;
}
