/* test_runtime_pipeline.c - the micro-batch loop against a recording sink:
 * batches cover the right offsets, resume from the sink's offsets, dead
 * letters with reasons while good events flow, --dlq off stops without
 * committing, SIGTERM finishes the batch in flight, available-now on the
 * Kafka mock cluster exits and resumes exactly once. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cf_test.h"
#include "cli/commands.h"
#include "runtime/pipeline.h"
#include "runtime/signals.h"
#include "source/source_int.h"
#include "table/table_int.h"
#include "util/log.h"

#define TOPIC "pg.public.customers"
#define MAXC 64

/* ---- a sink that records commits in memory ---- */

typedef struct rec {
    cf_offsets table;          /* what the "table" holds */
    int        commits;
    size_t     rows[MAXC];
    int64_t    next[MAXC];     /* covered next offset of TOPIC[0] per commit */
    int64_t    ids;            /* sum of customer_id over every committed row */
    int        ops_delete;
    int        sigterm_at;     /* raise SIGTERM inside commit #n (1-based), 0 = never */
    int        fail_at;        /* fail commit #n */
    const char *dlq_path;      /* dead-letter file, to look at during commits */
    /* Commit #1 waits (up to 5 s) until *wait_on reaches wait_for: the
     * pipeline thread must be reading on while the commit thread commits. */
    const int *wait_on;
    int        wait_for;
    bool       waited;         /* it did */
    int        dlq_lines[MAXC];/* its lines when commit #n began */
} rec;

static int file_lines(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    int n = 0, c;
    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int r_open(cf_sink *s, cf_err *err) { return 0; }

static int r_offsets(cf_sink *s, cf_offsets *out, cf_err *err)
{
    rec *r = s->impl;
    return cf_offsets_copy(out, &r->table, err);
}

/* The fence, as a table applies it. */
static int r_stage(cf_sink *s, const cf_commit *c, cf_err *err)
{
    rec *r = s->impl;
    return cf_commit_fence(c, &r->table, "recording", err);
}

static int r_commit(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err)
{
    rec *r = s->impl;
    int n = r->commits;
    const cf_batch *rows = c->rows;
    const cf_offsets *covered = c->end;

    if (r->fail_at && n + 1 == r->fail_at)
        return cf_err_set(err, CF_E_IO, "disk full (test)");
    if (r->wait_on && n == 0) {
        for (int i = 0; i < 5000 && __atomic_load_n(r->wait_on, __ATOMIC_ACQUIRE) < r->wait_for; i++)
            usleep(1000);
        r->waited = __atomic_load_n(r->wait_on, __ATOMIC_ACQUIRE) >= r->wait_for;
    }
    if (n < MAXC) {
        r->dlq_lines[n] = file_lines(r->dlq_path);
        r->rows[n] = rows ? rows->nrows : 0;
        r->next[n] = cf_offsets_get(covered, TOPIC, 0);
    }
    if (rows && rows->nrows) {
        int id = cf_schema_find(rows->schema, "customer_id");
        int op = cf_schema_find(rows->schema, "_cdc_operation");
        for (size_t i = 0; id >= 0 && i < rows->nrows; i++) {
            const cf_column *col = &rows->cols[id];
            r->ids += col->type.id == CF_T_INT32 ? cf_col_i32(col, i) : cf_col_i64(col, i);
        }
        for (size_t i = 0; i < rows->nrows; i++) {
            size_t len;
            const uint8_t *p = op >= 0 ? cf_col_bytes(&rows->cols[op], i, &len) : NULL;
            /* the commit's op and the row's _cdc_operation agree */
            if (c->ops[i] == 'd')
                r->ops_delete++;
            if (p && (c->ops[i] == 'd') != (len == 6 && !memcmp(p, "DELETE", 6)))
                r->ops_delete += 1000;
        }
    }
    for (int i = 0; i < covered->n; i++)
        cf_offsets_put(&r->table, covered->v[i].topic, covered->v[i].partition, covered->v[i].next_offset, NULL);
    *version = r->commits++;
    if (r->sigterm_at && r->commits == r->sigterm_at)
        raise(SIGTERM);
    return 0;
}

static void r_abort(cf_sink *s) {}
static void r_close(cf_sink *s) {}

static const cf_sink_ops rec_ops = { "recording", r_open, r_offsets, r_stage, r_commit, r_abort, r_close };

/* ---- fixtures ---- */

static int event_line(char *buf, size_t cap, char op, int id)
{
    char row[512];
    snprintf(row, sizeof row,
             "{\"customer_id\":%d,\"email\":\"u%d@example.com\",\"first_name\":\"Ann\",\"last_name\":\"Lee\","
             "\"city\":\"Springfield\",\"state\":\"IL\",\"country\":\"USA\",\"is_active\":true,"
             "\"customer_tier\":\"gold\"}", id, id);
    return snprintf(buf, cap,
                    "{\"before\":%s,\"after\":%s,\"source\":{\"version\":\"2.7.0.Final\",\"connector\":\"postgresql\","
                    "\"name\":\"pg\",\"ts_ms\":1700000000000,\"db\":\"cdcdb\",\"schema\":\"public\","
                    "\"table\":\"customers\",\"lsn\":%d},\"op\":\"%c\",\"ts_ms\":1700000000001}",
                    op == 'd' ? row : "null", op == 'd' ? "null" : row, 1000 + id, op);
}

/* Lines: 'c'/'u'/'d' = event with id = line number + 1; 'n' = tombstone;
 * 'b' = broken JSON; 'x' = unknown op; 'k' = upsert event without key;
 * 'B' = big (over a 2000-byte cap). */
static char *write_events(const char *name, const char *kinds)
{
    static char path[256];
    char line[4096];
    FILE *f;

    snprintf(path, sizeof path, "/tmp/cf_test_pipe_%d_%s.jsonl", (int)getpid(), name);
    f = fopen(path, "w");
    for (int i = 0; kinds[i]; i++) {
        switch (kinds[i]) {
        case 'n': fputs("null\n", f); break;
        case 'b': fputs("{\"before\":null,\"after\":{\"customer_id\":\n", f); break;
        case 'x': event_line(line, sizeof line, 'z', i + 1); fprintf(f, "%s\n", line); break;
        case 'k':
            fputs("{\"before\":null,\"after\":{\"customer_id\":null,\"email\":\"x\"},\"source\":{\"table\":\"customers\","
                  "\"schema\":\"public\",\"db\":\"cdcdb\",\"lsn\":1},\"op\":\"c\",\"ts_ms\":1}\n", f);
            break;
        case 'B':
            event_line(line, sizeof line, 'c', i + 1);
            line[strlen(line) - 1] = '\0';           /* reopen the object to pad it */
            fprintf(f, "%s,\"pad\":\"%02500d\"}\n", line, 0);
            break;
        default: event_line(line, sizeof line, kinds[i], i + 1); fprintf(f, "%s\n", line); break;
        }
    }
    fclose(f);
    return path;
}

typedef struct rig {
    rec          r;
    cf_sink      sink;
    cf_source   *src;
    cf_decoder  *dec;
    cf_transform *xf;
    cf_dlq      *dlq;
    cf_metrics  *met;
    cf_pipeline_config pc;
    char         dlq_path[256];
} rig;

static int rig_open(rig *g, const char *events_path, const char *dlq_spec, size_t cap)
{
    char spec[300];
    const char *topics[1] = { TOPIC };
    cf_err err = { 0 };

    memset(&g->sink, 0, sizeof g->sink);
    g->sink.ops = &rec_ops;
    g->sink.impl = &g->r;
    snprintf(spec, sizeof spec, "file:%s", events_path);
    g->src = cf_source_open(&(cf_source_config){ .spec = spec, .topics = topics, .ntopics = 1,
                                                 .max_message_bytes = cap }, &err);
    snprintf(g->dlq_path, sizeof g->dlq_path, "/tmp/cf_test_pipe_%d_dlq.jsonl", (int)getpid());
    unlink(g->dlq_path);
    if (dlq_spec && !strcmp(dlq_spec, "file")) {
        snprintf(spec, sizeof spec, "file:%s", g->dlq_path);
        dlq_spec = spec;
    }
    g->dlq = cf_dlq_open(&(cf_dlq_config){ .spec = dlq_spec }, &err);
    g->dec = cf_decoder_new(&(cf_decoder_config){ 0 }, &err);
    g->xf = cf_transform_new(&(cf_transform_config){ .pipeline_id = "postgres_to_delta" }, &err);
    g->met = cf_metrics_new("customers", "postgres_to_delta");
    if (!g->src || !g->dlq || !g->dec || !g->xf || !g->met) {
        fprintf(stderr, "  rig: %s\n", err.msg);
        return -1;
    }
    g->pc = (cf_pipeline_config){ .source = g->src, .sink = &g->sink, .decoder = g->dec, .transform = g->xf,
                                  .dlq = g->dlq, .metrics = g->met, .table_name = "customers",
                                  .trigger_ms = 60000, .max_message_bytes = cap };
    return 0;
}

static void rig_close(rig *g)
{
    cf_source_close(g->src);
    cf_dlq_close(g->dlq);
    cf_decoder_free(g->dec);
    cf_transform_free(g->xf);
    cf_metrics_free(g->met);
    cf_offsets_free(&g->r.table);
    unlink(g->dlq_path);
    g->src = NULL;
    g->dlq = NULL;
    g->dec = NULL;
    g->xf = NULL;
    g->met = NULL;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 1 << 20);
    if (f) {
        size_t n = fread(s, 1, (1 << 20) - 1, f);
        s[n] = 0;
        fclose(f);
    }
    return s;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- cases ---- */

static void test_batches_cover_offsets(void)
{
    /* 12 messages: 9 good, a tombstone, a broken one, an unknown op. */
    char *path = write_events("cover", "cccnccbccxcd");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.r.dlq_path = g.dlq_path;
    g.pc.max_offsets = 5;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(g.r.commits, 3);
    CHECK_EQ_INT(g.r.next[0], 5);
    CHECK_EQ_INT(g.r.next[1], 10);
    CHECK_EQ_INT(g.r.next[2], 12);           /* the last batch covers the tail */
    CHECK_EQ_INT(g.r.rows[0], 4);            /* lines 0-4 minus the tombstone */
    CHECK_EQ_INT(g.r.rows[1], 3);            /* 5-9 minus broken (6) and unknown op (9) */
    CHECK_EQ_INT(g.r.rows[2], 2);
    /* Dead letters are durable before the commit that covers them. */
    CHECK_EQ_INT(g.r.dlq_lines[0], 0);
    CHECK_EQ_INT(g.r.dlq_lines[1], 2);
    CHECK_EQ_INT(g.r.ids, 1 + 2 + 3 + 5 + 6 + 8 + 9 + 11 + 12);
    CHECK_EQ_INT(g.r.ops_delete, 1);
    CHECK_EQ_INT(st.messages, 12);
    CHECK_EQ_INT(st.events, 9);
    CHECK_EQ_INT(st.tombstones, 1);
    CHECK_EQ_INT(st.dead_letter, 2);
    CHECK_EQ_INT(st.version, 2);
    CHECK_EQ_INT(cf_metrics_dead_letter_total(g.met), 2);
    CHECK_EQ_INT(cf_metrics_events_total(g.met), 9);
    CHECK_EQ_INT(cf_metrics_batches_total(g.met), 3);
    {
        char *d = slurp(g.dlq_path);
        CHECK_EQ_INT(count_lines(d), 2);
        CHECK(strstr(d, "\"offset\":6") && strstr(d, "\"offset\":9"));
        CHECK(strstr(d, "\"code\":\"parse\"") != NULL);
        CHECK(strstr(d, "unknown op") != NULL);
        free(d);
    }
    rig_close(&g);
    unlink(path);
}

static void test_resume_from_sink_offsets(void)
{
    char *path = write_events("resume", "cccccccccc");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    cf_offsets_put(&g.r.table, TOPIC, 0, 7, &err);          /* the table has 0..6 */
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(g.r.commits, 1);
    CHECK_EQ_INT(g.r.rows[0], 3);
    CHECK_EQ_INT(g.r.ids, 8 + 9 + 10);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 10);
    /* A second run finds nothing new: no commit, nothing twice. */
    cf_source_close(g.src);
    {
        char spec[300];
        const char *topics[1] = { TOPIC };
        snprintf(spec, sizeof spec, "file:%s", path);
        g.src = cf_source_open(&(cf_source_config){ .spec = spec, .topics = topics, .ntopics = 1 }, &err);
        g.pc.source = g.src;
    }
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(g.r.commits, 1);
    CHECK_EQ_INT(st.messages, 0);
    rig_close(&g);
    unlink(path);
}

static void test_dlq_off_stops_without_commit(void)
{
    char *path = write_events("off", "cccbcc");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "off", 0), 0);
    g.pc.max_offsets = 2;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), -1);
    CHECK_EQ_INT(g.r.commits, 1);                          /* lines 0-1 only */
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 2);
    CHECK(strstr(err.msg, TOPIC "[0] offset 3") != NULL);  /* names where */
    CHECK(strstr(err.msg, "parse") != NULL);               /* and why */
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    {
        char why[256];
        CHECK(!cf_metrics_healthy(g.met, why, sizeof why));
        CHECK(strstr(why, "failed") != NULL);
    }
    rig_close(&g);
    unlink(path);
}

static void test_size_cap_and_upsert_key(void)
{
    char *path = write_events("cap", "ccBkc");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "file", 2000), 0);
    g.pc.mode = CF_MODE_UPSERT;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(st.dead_letter, 2);
    CHECK_EQ_INT(st.events, 3);
    CHECK_EQ_INT(g.r.ids, 1 + 2 + 5);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 5);
    {
        char *d = slurp(g.dlq_path);
        CHECK(strstr(d, "\"code\":\"toobig\"") && strstr(d, "\"offset\":2"));
        CHECK(strstr(d, "primary key") && strstr(d, "\"offset\":3"));
        free(d);
    }
    rig_close(&g);
    unlink(path);
}

/* The batch holds copies of its rows, so the decoder's memory is reset
 * between messages: a small arena neither fails a message nor cuts the
 * batch. */
static void test_small_arena_is_enough(void)
{
    char kinds[601];
    char *path;
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    memset(kinds, 'c', sizeof kinds - 1);
    kinds[sizeof kinds - 1] = '\0';
    path = write_events("arena", kinds);
    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    cf_decoder_free(g.dec);
    /* one 64 KiB block: a few hundred events */
    g.pc.decoder = g.dec = cf_decoder_new(&(cf_decoder_config){ .max_batch_bytes = 64 << 10 }, &err);
    g.pc.max_offsets = 100000;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(st.dead_letter, 0);
    CHECK_EQ_INT(st.events, 600);
    CHECK_EQ_INT(g.r.commits, 1);
    CHECK_EQ_INT(g.r.ids, 600 * 601 / 2);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 600);
    rig_close(&g);
    unlink(path);
}

/* The memory bound cuts a batch early, never fails it: every row lands,
 * in batches that end where the next begins. */
static void test_memory_bound_cuts_batch(void)
{
    char kinds[601];
    char *path;
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    cf_buf text;
    const char *txt;
    int sum = 0;

    memset(kinds, 'c', sizeof kinds - 1);
    kinds[sizeof kinds - 1] = '\0';
    path = write_events("membound", kinds);
    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.pc.max_offsets = 100000;
    g.pc.max_memory = 256 << 10;         /* batches cut at 32 KiB of values */
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK_EQ_INT(st.dead_letter, 0);
    CHECK_EQ_INT(st.events, 600);
    CHECK(g.r.commits >= 3 && g.r.commits <= MAXC);
    for (int i = 0; i < g.r.commits && i < MAXC; i++) {
        CHECK(g.r.rows[i] > 0 && g.r.rows[i] < 600);
        sum += (int)g.r.rows[i];
        CHECK_EQ_INT(g.r.next[i], sum);
    }
    CHECK_EQ_INT(g.r.ids, 600 * 601 / 2);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 600);
    /* the metrics say so */
    cf_buf_init(&text, 0);
    CHECK_EQ_INT(cf_metrics_render(g.met, &text, &err), 0);
    txt = cf_buf_cstr(&text, &err);
    CHECK(txt && strstr(txt, "cdcflow_memory_limit_bytes 262144\n") != NULL);
    CHECK(txt && strstr(txt, "cdcflow_batch_rows ") != NULL);
    CHECK(txt && strstr(txt, "cdcflow_batch_bytes ") != NULL);
    CHECK(txt && strstr(txt, "cdcflow_paused_seconds_total ") != NULL);
    cf_buf_free(&text);
    rig_close(&g);
    unlink(path);
}

static void test_commit_failure_is_an_error(void)
{
    char *path = write_events("fail", "cccc");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.r.fail_at = 1;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), -1);
    CHECK_EQ_INT(g.r.commits, 0);
    CHECK(strstr(err.msg, "disk full") != NULL);
    rig_close(&g);
    unlink(path);
}

/* Batches are committed while the next fills; a failed commit stops the
 * ones after it, although they were read already. */
static void test_failed_commit_stops_later_batches(void)
{
    char *path = write_events("fail2", "cccccccc");
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.pc.max_offsets = 1;
    g.r.fail_at = 2;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), -1);
    CHECK(strstr(err.msg, "disk full") != NULL);
    CHECK_EQ_INT(g.r.commits, 1);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 1);
    CHECK_EQ_INT(g.r.ids, 1);
    rig_close(&g);
    unlink(path);
}


/* A source that raises SIGTERM after handing out message `raise_after`. */
typedef struct tsrc {
    char    lines[10][1024];
    int     n, next, raise_after;
    int     paused, resumed;
} tsrc;

static int t_seek(cf_source *s, const cf_offsets *o, cf_err *err)
{
    tsrc *t = s->impl;
    int64_t off = cf_offsets_get(o, TOPIC, 0);
    t->next = off > 0 ? (int)off : 0;
    return 0;
}

static int t_poll(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err)
{
    tsrc *t = s->impl;
    if (t->next >= t->n)
        return 2;
    memset(m, 0, sizeof *m);
    m->topic = TOPIC;
    m->offset = m->from = t->next;
    m->value = t->lines[t->next];
    m->value_len = strlen(t->lines[t->next]);
    m->timestamp_ms = -1;
    if (__atomic_fetch_add(&t->next, 1, __ATOMIC_RELEASE) == t->raise_after)
        raise(SIGTERM);
    return 1;
}

static int t_commit(cf_source *s, const cf_offsets *o, cf_err *err) { return 0; }
static int64_t t_lag(cf_source *s) { tsrc *t = s->impl; return t->n - t->next; }
static int t_avail(cf_source *s, cf_err *err) { return 0; }
static void t_close(cf_source *s) {}
static int t_pause(cf_source *s, bool pause, cf_err *err)
{
    tsrc *t = s->impl;
    if (pause)
        t->paused++;
    else
        t->resumed++;
    return 0;
}

static const cf_source_backend tsrc_backend = { "test", t_seek, NULL, t_poll, t_commit, t_lag, t_avail, t_close,
                                                t_pause };

/* The pipeline thread reads the next batch while the commit thread commits
 * the one before, and pauses the source once that batch is full too. */
static void test_overlap_and_backpressure(void)
{
    rig g = { 0 };
    tsrc t = { .n = 10, .raise_after = -1 };
    cf_source ts = { .be = &tsrc_backend, .impl = &t };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    char *path = write_events("overlap", "c");

    for (int i = 0; i < t.n; i++)
        event_line(t.lines[i], sizeof t.lines[i], 'c', i + 1);
    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.pc.source = &ts;
    g.pc.max_offsets = 2;
    g.r.wait_on = &t.next;
    g.r.wait_for = 4;               /* commit #1 (messages 0-1) lasts until 2-3 are read */
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK(g.r.waited);
    CHECK(t.paused >= 1);           /* 2-3 made a full batch while #1 was still committing */
    CHECK_EQ_INT(t.resumed, t.paused);
    CHECK_EQ_INT(g.r.commits, 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(g.r.next[i], 2 * (i + 1));
    CHECK_EQ_INT(g.r.ids, 10 * 11 / 2);
    rig_close(&g);
    unlink(path);
}


static void test_sigterm_commits_batch_in_flight(void)
{
    rig g = { 0 };
    tsrc t = { .n = 10, .raise_after = 4 };
    cf_source ts = { .be = &tsrc_backend, .impl = &t };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    char *path = write_events("sig", "c");

    for (int i = 0; i < t.n; i++)
        event_line(t.lines[i], sizeof t.lines[i], 'c', i + 1);
    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.pc.source = &ts;
    cf_signals_reset();
    cf_signals_install();
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK(cf_signals_stop_requested());
    CHECK_EQ_INT(cf_signals_which(), SIGTERM);
    CHECK_EQ_INT(g.r.commits, 1);
    CHECK_EQ_INT(g.r.rows[0], 5);                           /* messages 0..4, all committed */
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 5);
    CHECK_EQ_INT(t.next, 5);                                /* nothing read past the signal */

    /* A signal during a commit: that batch lands, and what was read while
     * it was committed lands after it; then the loop stops, having read
     * nothing it did not commit. */
    cf_signals_reset();
    t.raise_after = -1;
    g.r.sigterm_at = g.r.commits + 1;
    g.pc.max_offsets = 2;
    CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
    CHECK(g.r.commits >= 2 && g.r.commits <= 3);
    CHECK_EQ_INT(g.r.next[1], 7);
    CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), t.next);
    CHECK(t.next < t.n);
    cf_signals_reset();
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    cf_source_close(g.src);
    g.src = NULL;
    rig_close(&g);
    unlink(path);
}

static void test_available_now_kafka(void)
{
    char why[256], line[2048];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    const char *topics[1] = { TOPIC };
    const char *props[] = { "log_level=3" };
    char *path = write_events("an", "c");
    int id = 0;

    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, TOPIC, 2, 1);
    for (; id < 6; id++) {
        event_line(line, sizeof line, 'c', id + 1);
        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(id % 2),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(line, strlen(line)),
                          RD_KAFKA_V_END);
    }
    rd_kafka_flush(prod, 5000);

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    for (int run = 0; run < 3; run++) {
        /* A new group each run: progress comes from the table, not the group
         * (and the mock cluster is slow to forget a member that left). */
        char group[32];
        snprintf(group, sizeof group, "t-an-%d", run);
        cf_source_close(g.src);
        g.src = cf_source_open(&(cf_source_config){ .spec = "kafka", .bootstrap = boot, .topics = topics,
                                                    .ntopics = 1, .group_id = group, .props = props,
                                                    .nprops = 1 }, &err);
        CHECK(g.src != NULL);
        if (!g.src)
            break;
        g.pc.source = g.src;
        g.pc.available_now = true;
        g.pc.trigger_ms = 200;
        CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
        if (run == 0) {
            CHECK_EQ_INT(st.events, 6);
            CHECK_EQ_INT(g.r.ids, 21);
            CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 3);
            CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 1), 3);
        } else if (run == 1) {
            CHECK_EQ_INT(st.events, 0);                     /* resumed from the table: nothing twice */
            for (; id < 8; id++) {
                event_line(line, sizeof line, 'c', id + 1);
                rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(line, strlen(line)),
                                  RD_KAFKA_V_END);
            }
            rd_kafka_flush(prod, 5000);
        } else {
            CHECK_EQ_INT(st.events, 2);
            CHECK_EQ_INT(g.r.ids, 21 + 7 + 8);
            CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 5);
        }
    }
    rig_close(&g);
    rd_kafka_destroy(prod);
    unlink(path);
}

/* ---- a rebalance in the middle of a batch ---- */

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;

static int l_offsets(cf_sink *s, cf_offsets *out, cf_err *err)
{
    int rc;
    pthread_mutex_lock(&rec_mu);
    rc = r_offsets(s, out, err);
    pthread_mutex_unlock(&rec_mu);
    return rc;
}

static int l_stage(cf_sink *s, const cf_commit *c, cf_err *err)
{
    int rc;
    pthread_mutex_lock(&rec_mu);
    rc = r_stage(s, c, err);
    pthread_mutex_unlock(&rec_mu);
    return rc;
}

static int l_commit(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err)
{
    int rc;
    pthread_mutex_lock(&rec_mu);
    rc = r_commit(s, c, version, err);
    pthread_mutex_unlock(&rec_mu);
    return rc;
}

static const cf_sink_ops locked_ops = { "locked", r_open, l_offsets, l_stage, l_commit, r_abort, r_close };

typedef struct member_a {
    rig *g;
    cf_pipeline_stats st;
    int rc;
} member_a;

static void *run_a(void *opaque)
{
    member_a *a = opaque;
    cf_err err = { 0 };
    a->rc = cf_pipeline_run(&a->g->pc, &a->st, &err);
    return NULL;
}

/* The second member reads the table's offsets through the same sink. */
static int b_assign(void *opaque, cf_offsets *out, cf_err *err)
{
    return l_offsets(opaque, out, err);
}

static int b_revoke(void *opaque, const cf_offsets *revoked, bool lost) { return 0; }

static void produce_events(rd_kafka_t *prod, int first_id, int n)
{
    char line[2048];
    for (int i = 0; i < n; i++) {
        event_line(line, sizeof line, 'c', first_id + i);
        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(i % 2),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_VALUE(line, strlen(line)),
                          RD_KAFKA_V_END);
    }
    rd_kafka_flush(prod, 5000);
}

static void test_revoke_commits_batch_in_flight(void)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    const char *boot;
    const char *topics[1] = { TOPIC };
    /* The mock coordinator waits a session timeout for members to rejoin. */
    const char *props[] = { getenv("CF_TEST_KAFKA_DEBUG") ? "debug=cgrp" : "log_level=3",
                            "session.timeout.ms=6000", "heartbeat.interval.ms=500" };
    rig g = { 0 };
    member_a a = { .g = &g };
    pthread_t th;
    cf_source *b;
    cf_msg m;
    cf_err err = { 0 };
    char *path = write_events("rb", "c");
    int64_t first_b[2] = { -1, -1 };
    time_t t0;

    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    boot = rd_kafka_mock_cluster_bootstraps(rd_kafka_handle_mock_cluster(prod));
    rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(prod), TOPIC, 2, 1);
    produce_events(prod, 1, 10);

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    g.sink.ops = &locked_ops;
    cf_source_close(g.src);
    g.src = cf_source_open(&(cf_source_config){ .spec = "kafka", .bootstrap = boot, .topics = topics, .ntopics = 1,
                                                .group_id = "t-rb", .props = props, .nprops = 3 }, &err);
    g.pc.source = g.src;
    g.pc.trigger_ms = 600000;          /* only the rebalance (or the stop) commits */
    cf_signals_reset();
    pthread_create(&th, NULL, run_a, &a);
    t0 = time(NULL);
    while (__atomic_load_n(&a.st.messages, __ATOMIC_RELAXED) < 10 && time(NULL) - t0 < 30)
        usleep(50000);
    CHECK_EQ_INT(__atomic_load_n(&a.st.messages, __ATOMIC_RELAXED), 10);

    /* Member B joins: A must commit its 10 rows before giving partitions away. */
    b = cf_source_open(&(cf_source_config){ .spec = "kafka", .bootstrap = boot, .topics = topics, .ntopics = 1,
                                            .group_id = "t-rb", .props = props, .nprops = 3 }, &err);
    CHECK(b != NULL);
    if (b) {
        int commits;
        cf_source_set_hooks(b, b_assign, b_revoke, &g.sink);
        t0 = time(NULL);
        do {
            cf_source_poll(b, &m, 100, &err);
            pthread_mutex_lock(&rec_mu);
            commits = g.r.commits;
            pthread_mutex_unlock(&rec_mu);
        } while (commits == 0 && time(NULL) - t0 < 40);
        pthread_mutex_lock(&rec_mu);
        CHECK_EQ_INT(g.r.commits, 1);
        CHECK_EQ_INT(g.r.rows[0], 10);
        CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 0), 5);
        CHECK_EQ_INT(cf_offsets_get(&g.r.table, TOPIC, 1), 5);
        pthread_mutex_unlock(&rec_mu);

        /* B resumes where the table says, not where the group says. */
        produce_events(prod, 11, 4);
        t0 = time(NULL);
        /* The group settles within the mock's rebalance delays; B gets one partition. */
        while (first_b[0] < 0 && first_b[1] < 0 && time(NULL) - t0 < 40) {
            if (cf_source_poll(b, &m, 100, &err) == 1 && first_b[m.partition] < 0)
                first_b[m.partition] = m.offset;
        }
        CHECK(first_b[0] == 5 || first_b[1] == 5);
        CHECK(first_b[0] != 0 && first_b[1] != 0);          /* never from the start */
        cf_source_close(b);
    }
    cf_signals_request_stop();
    pthread_join(th, NULL);
    CHECK_EQ_INT(a.rc, 0);
    cf_signals_reset();
    /* A's later commits only move forward from the revoke commit. */
    CHECK(cf_offsets_get(&g.r.table, TOPIC, 0) >= 5 && cf_offsets_get(&g.r.table, TOPIC, 1) >= 5);
    rig_close(&g);
    rd_kafka_destroy(prod);
    unlink(path);
}

static void test_two_topics_available_now(void)
{
    char why[256], line[2048];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *topics[2] = { TOPIC, "pg2.public.customers" };
    const char *props[] = { "log_level=3" };
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    char *path = write_events("two", "c");

    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    rd_kafka_mock_topic_create(mc, topics[0], 1, 1);
    rd_kafka_mock_topic_create(mc, topics[1], 1, 1);
    rd_kafka_mock_topic_create(mc, "pg2.public.customers.dlq", 1, 1);
    for (int i = 0; i < 3; i++) {
        event_line(line, sizeof line, 'c', i + 1);
        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topics[0]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE(line, strlen(line)), RD_KAFKA_V_END);
        event_line(line, sizeof line, 'c', 100 + i);
        if (i == 1)
            strcpy(line, "{oops");          /* the bad one, on the second topic */
        rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topics[1]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_VALUE(line, strlen(line)), RD_KAFKA_V_END);
    }
    rd_kafka_flush(prod, 5000);

    CHECK_EQ_INT(rig_open(&g, path, "off", 0), 0);
    cf_dlq_close(g.dlq);
    g.dlq = cf_dlq_open(&(cf_dlq_config){ .spec = "kafka", .bootstrap = rd_kafka_mock_cluster_bootstraps(mc),
                                          .props = props, .nprops = 1 }, &err);
    CHECK(g.dlq != NULL);
    cf_source_close(g.src);
    g.src = cf_source_open(&(cf_source_config){ .spec = "kafka", .bootstrap = rd_kafka_mock_cluster_bootstraps(mc),
                                                .topics = topics, .ntopics = 2, .group_id = "t-two",
                                                .props = props, .nprops = 1 }, &err);
    CHECK(g.src != NULL);
    if (g.src && g.dlq) {
        g.pc.source = g.src;
        g.pc.dlq = g.dlq;
        g.pc.available_now = true;
        CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
        CHECK_EQ_INT(st.messages, 6);
        CHECK_EQ_INT(st.events, 5);
        CHECK_EQ_INT(st.dead_letter, 1);
        CHECK_EQ_INT(g.r.ids, 1 + 2 + 3 + 100 + 102);
        /* One commit covers both topics, the dead letter's offset included. */
        CHECK_EQ_INT(cf_offsets_get(&g.r.table, topics[0], 0), 3);
        CHECK_EQ_INT(cf_offsets_get(&g.r.table, topics[1], 0), 3);
        CHECK_EQ_STR(cf_dlq_describe(g.dlq), "kafka:<topic>.dlq");
    }
    rig_close(&g);
    rd_kafka_destroy(prod);
    unlink(path);
}

/* Rows of one commit share one schema: a change of source table (or of its
 * columns) commits what came before. */
static void test_schema_change_cuts_batch(void)
{
    char path[256], line[2048];
    FILE *f;
    rig g = { 0 };
    cf_pipeline_stats st;
    cf_err err = { 0 };
    cf_schema *orders = cf_schema_new();
    const cf_schema *known[1] = { orders };
    const char *known_tables[1] = { "orders" };
    const char *pk[1] = { "order_id" };
    static const char order_fmt[] =
        "{\"before\":null,\"after\":{\"order_id\":%d,\"customer_id\":%d,\"status\":\"new\"},"
        "\"source\":{\"db\":\"cdcdb\",\"schema\":\"public\",\"table\":\"orders\",\"lsn\":%d},"
        "\"op\":\"c\",\"ts_ms\":1}\n";

    cf_schema_add(orders, "order_id", (cf_type){ CF_T_INT32, 0, 0 }, false, 0, &err);
    cf_schema_add(orders, "customer_id", (cf_type){ CF_T_INT32, 0, 0 }, true, 0, &err);
    cf_schema_add(orders, "status", (cf_type){ CF_T_STRING, 0, 0 }, true, 0, &err);
    cf_schema_set_pk(orders, pk, 1, &err);

    snprintf(path, sizeof path, "/tmp/cf_test_pipe_%d_schema.jsonl", (int)getpid());
    f = fopen(path, "w");
    event_line(line, sizeof line, 'c', 1);
    fprintf(f, "%s\n", line);
    event_line(line, sizeof line, 'c', 2);
    fprintf(f, "%s\n", line);
    fprintf(f, order_fmt, 7, 1000, 5000);
    fprintf(f, order_fmt, 8, 2000, 5001);
    event_line(line, sizeof line, 'c', 3);
    fprintf(f, "%s\n", line);
    fclose(f);

    CHECK_EQ_INT(rig_open(&g, path, "file", 0), 0);
    cf_decoder_free(g.dec);
    g.dec = cf_decoder_new(&(cf_decoder_config){ .known = known, .known_tables = known_tables, .nknown = 1 }, &err);
    CHECK(g.dec != NULL);
    if (g.dec) {
        g.pc.decoder = g.dec;
        CHECK_EQ_INT(cf_pipeline_run(&g.pc, &st, &err), 0);
        CHECK_EQ_INT(g.r.commits, 3);
        CHECK_EQ_INT(g.r.rows[0], 2);
        CHECK_EQ_INT(g.r.next[0], 2);             /* ends before the first orders event */
        CHECK_EQ_INT(g.r.rows[1], 2);
        CHECK_EQ_INT(g.r.next[1], 4);
        CHECK_EQ_INT(g.r.rows[2], 1);
        CHECK_EQ_INT(g.r.next[2], 5);
        CHECK_EQ_INT(g.r.ids, 1 + 2 + 1000 + 2000 + 3);
        CHECK_EQ_INT(st.events, 5);
    } else {
        fprintf(stderr, "  decoder: %s\n", err.msg);
    }
    rig_close(&g);
    cf_schema_free(orders);
    unlink(path);
}

/* A second signal does not wait for the batch: the process exits at once. */
static void test_second_signal_exits_at_once(void)
{
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        cf_signals_reset();
        cf_signals_install();
        raise(SIGTERM);                     /* asks for a graceful stop */
        if (!cf_signals_stop_requested())
            _exit(3);
        raise(SIGINT);                      /* exits with 128 + SIGINT */
        _exit(4);
    }
    CHECK(pid > 0);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ_INT(WEXITSTATUS(status), 128 + SIGINT);
}

/* `cdcflow run FILE`: two pipelines in one process, each into its own table. */
static void test_run_config_file(void)
{
    char dir[128], conf[256], ev1[256], ev2[256], check[300];
    char line[2048];
    FILE *f;
    char *argv[3] = { "run", conf, NULL };

    snprintf(dir, sizeof dir, "/tmp/cf_test_run_%d", (int)getpid());
    snprintf(ev1, sizeof ev1, "%s.a.jsonl", dir);
    snprintf(ev2, sizeof ev2, "%s.b.jsonl", dir);
    snprintf(conf, sizeof conf, "%s.conf", dir);
    f = fopen(ev1, "w");
    for (int i = 0; i < 3; i++) {
        event_line(line, sizeof line, 'c', i + 1);
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    f = fopen(ev2, "w");
    event_line(line, sizeof line, 'c', 9);
    fprintf(f, "%s\nnot json\n", line);
    fclose(f);
    f = fopen(conf, "w");
    fprintf(f, "# two tables\n\n"
               "delta --source file:%s --table-path %s/a --metrics-port 0 --checkpoint-location %s/s1\n"
               "delta --source 'file:%s' --table-path \"%s/b\" --metrics-port 0 --checkpoint-location %s/s2 # x\n",
            ev1, dir, dir, ev2, dir, dir);
    fclose(f);
    cf_signals_reset();
    CHECK_EQ_INT(cf_cmd_run(2, argv), 0);
    snprintf(check, sizeof check, "%s/a/_delta_log/00000000000000000000.json", dir);
    CHECK(access(check, F_OK) == 0);
    snprintf(check, sizeof check, "%s/b/_delta_log/00000000000000000000.json", dir);
    CHECK(access(check, F_OK) == 0);
    snprintf(check, sizeof check, "%s/s2/dead-letter.jsonl", dir);
    {
        char *d = slurp(check);
        CHECK_EQ_INT(count_lines(d), 1);
        free(d);
    }
    /* Bad files are usage errors; nothing starts. */
    f = fopen(conf, "w");
    fputs("delta --mode sideways\n", f);
    fclose(f);
    CHECK_EQ_INT(cf_cmd_run(2, argv), 2);
    f = fopen(conf, "w");
    fputs("spark --topic x\n", f);
    fclose(f);
    CHECK_EQ_INT(cf_cmd_run(2, argv), 2);
    f = fopen(conf, "w");
    fputs("delta --topic 'unterminated\n", f);
    fclose(f);
    CHECK_EQ_INT(cf_cmd_run(2, argv), 2);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    {
        char rm[1024];
        snprintf(rm, sizeof rm, "rm -rf '%s' '%s' '%s' '%s'", dir, ev1, ev2, conf);
        CHECK_EQ_INT(system(rm), 0);
    }
}

__attribute__((constructor)) static void quiet(void)
{
    cf_log_set_level(getenv("CF_TEST_VERBOSE") ? CF_LOG_DEBUG : CF_LOG_ERROR);
}

CF_TEST_MAIN("runtime_pipeline",
             T(test_batches_cover_offsets), T(test_resume_from_sink_offsets), T(test_dlq_off_stops_without_commit),
             T(test_size_cap_and_upsert_key), T(test_small_arena_is_enough), T(test_memory_bound_cuts_batch),
             T(test_commit_failure_is_an_error), T(test_failed_commit_stops_later_batches),
             T(test_overlap_and_backpressure),
             T(test_sigterm_commits_batch_in_flight), T(test_available_now_kafka),
             T(test_revoke_commits_batch_in_flight), T(test_two_topics_available_now),
             T(test_schema_change_cuts_batch), T(test_second_signal_exits_at_once),
             T(test_run_config_file))
