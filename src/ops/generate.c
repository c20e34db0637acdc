/* generate.c - `cdcflow generate`: run the seeded plan of gen_plan.c against
 * PostgreSQL (libpq, prepared statements, pipelined multi-row transactions),
 * or print it as SQL with --dry-run. */
#include "ops/ops.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "cli/commands.h"

#define EXISTING_CAP  1000000   /* newest rows per table loaded as update/delete targets */
#define SYNC_EVERY    256       /* statements in flight before reading results */
#define QUEUE_LEN     (SYNC_EVERY + 4)
#define PROGRESS_EVERY 10.0     /* seconds between progress notes on stderr */

/* ------------------------------------------------------------- options */

void cf_ops_gen_defaults(cf_ops_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->customers = 100;
    o->products = 20;
    o->orders = 200;
    o->updates = (cf_ops_count){ 50, false };
    o->deletes = (cf_ops_count){ 10, false };
    o->seed = 42;
    o->batch = 100;
}

static int parse_count(const char *v, const char *what, cf_ops_count *c, cf_err *err)
{
    size_t n = strlen(v);
    char tmp[64];

    if (n && v[n - 1] == '%') {
        if (n >= sizeof tmp)
            return cf_err_set(err, CF_E_ARG, "%s: '%s' is not a count", what, v);
        memcpy(tmp, v, n - 1);
        tmp[n - 1] = '\0';
        c->percent = true;
        return cf_ops_parse_double(tmp, what, 0, 1000, &c->value, err);
    }
    int64_t x;
    if (cf_ops_parse_i64(v, what, 0, 100000000, &x, err) < 0)
        return -1;
    c->percent = false;
    c->value = (double)x;
    return 0;
}

int cf_ops_gen_parse(int argc, char **argv, cf_ops_gen_opts *o, cf_err *err)
{
    const char *v;
    int r;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = true;
            continue;
        }
        if (!strcmp(a, "--dry-run")) {
            o->dry_run = true;
            continue;
        }
        if (!strcmp(a, "--json")) {
            o->json = true;
            continue;
        }
        if (!strcmp(a, "--new-rows-only")) {
            o->new_rows_only = true;
            continue;
        }
#define I64_OPT(flag, field, lo, hi) \
        if ((r = cf_ops_opt(argc, argv, &i, flag, &v, err)) != 0) { \
            if (r < 0 || cf_ops_parse_i64(v, flag, lo, hi, &o->field, err) < 0) return -1; \
            continue; }
        I64_OPT("--customers", customers, 0, 10000000)
        I64_OPT("--orders", orders, 0, 10000000)
        I64_OPT("--products", products, 0, 10000000)
        I64_OPT("--batch", batch, 1, 100000)
#undef I64_OPT
        if ((r = cf_ops_opt(argc, argv, &i, "--updates", &v, err)) != 0) {
            if (r < 0 || parse_count(v, "--updates", &o->updates, err) < 0)
                return -1;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--deletes", &v, err)) != 0) {
            if (r < 0 || parse_count(v, "--deletes", &o->deletes, err) < 0)
                return -1;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--rate", &v, err)) != 0) {
            if (r < 0 || cf_ops_parse_double(v, "--rate", 0, 1e9, &o->rate, err) < 0)
                return -1;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--seed", &v, err)) != 0) {
            char *end;
            if (r < 0)
                return -1;
            o->seed = strtoull(v, &end, 0);
            if (!*v || *end || *v == '-')
                return cf_err_set(err, CF_E_ARG, "--seed: '%s' is not an unsigned integer", v);
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--dsn", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->dsn = v;
            continue;
        }
        return cf_err_set(err, CF_E_ARG, "%s '%s'", a[0] == '-' ? "unknown option" : "unexpected argument", a);
    }
    return 0;
}

/* ------------------------------------------------------------- running */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct qitem { int8_t table, kind; } qitem;   /* table -1: BEGIN/COMMIT */

typedef struct runner {
    const cf_ops_gen_opts *o;
    cf_ops_gen *g;
    PGconn     *c;              /* NULL in --dry-run */
    cf_buf      sql;            /* --dry-run output */
    qitem       q[QUEUE_LEN];   /* statements sent since the last sync */
    int         nq;
    bool        in_tx;
    int64_t     tx_stmts;
    int64_t     tx_rows[CF_GEN_NTABLES][CF_GEN_NKINDS];   /* uncommitted */
    int64_t     rows[CF_GEN_NTABLES][CF_GEN_NKINDS];      /* committed */
    int64_t     stmts;
    int64_t     next_dry_id[CF_GEN_NTABLES];
} runner;

static const char *const pk_col[CF_GEN_NTABLES] = {
    "customer_id", "product_id", "inventory_id", "order_id"
};

static int dry_ids(void *ctx, cf_gen_table t, int64_t *ids, int64_t n, cf_err *err)
{
    runner *r = ctx;
    for (int64_t i = 0; i < n; i++)
        ids[i] = ++r->next_dry_id[t];
    return 0;
}

/* Draws n values from the table's own sequence, as DEFAULT would. */
static int db_ids(void *ctx, cf_gen_table t, int64_t *ids, int64_t n, cf_err *err)
{
    runner *r = ctx;
    char count[32];
    const char *params[3] = { cf_ops_gen_table_name(t), pk_col[t], count };
    PGresult *res;

    snprintf(count, sizeof count, "%" PRId64, n);
    res = PQexecParams(r->c, "SELECT nextval(pg_get_serial_sequence($1, $2)) "
                       "FROM generate_series(1, $3::bigint)", 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != n) {
        cf_err_set(err, CF_E_DB, "reserving %s ids: %s", cf_ops_gen_table_name(t),
                   PQresultErrorMessage(res));
        PQclear(res);
        return -1;
    }
    if (n > 0 && PQgetisnull(res, 0, 0)) {
        PQclear(res);
        return cf_err_set(err, CF_E_DB, "%s.%s has no sequence (SERIAL expected, as in "
                          "deploy/postgres/schema.sql)", cf_ops_gen_table_name(t), pk_col[t]);
    }
    for (int64_t i = 0; i < n; i++)
        ids[i] = strtoll(PQgetvalue(res, (int)i, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* The newest rows of each table become update/delete targets.  Ordered, so
 * the same database and seed give the same plan. */
static int load_existing(runner *r, cf_err *err)
{
    static const char *const q[CF_GEN_NTABLES] = {
        "SELECT customer_id, 0, NULL FROM customers ORDER BY customer_id DESC LIMIT %d",
        "SELECT product_id, 0, NULL FROM products ORDER BY product_id DESC LIMIT %d",
        "SELECT inventory_id, product_id, NULL FROM inventory ORDER BY inventory_id DESC LIMIT %d",
        "SELECT order_id, customer_id, status FROM orders ORDER BY order_id DESC LIMIT %d",
    };
    char sql[256];

    for (int t = 0; t < CF_GEN_NTABLES; t++) {
        snprintf(sql, sizeof sql, q[t], EXISTING_CAP);
        PGresult *res = PQexec(r->c, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cf_err_set(err, CF_E_DB, "reading %s: %s(is deploy/postgres/schema.sql loaded?)",
                       cf_ops_gen_table_name((cf_gen_table)t), PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        for (int i = 0; i < PQntuples(res); i++) {
            int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
            int64_t parent = strtoll(PQgetvalue(res, i, 1), NULL, 10);
            int state = PQgetisnull(res, i, 2) ? 0 : cf_ops_gen_order_state(PQgetvalue(res, i, 2));
            if (cf_ops_gen_add_existing(r->g, (cf_gen_table)t, id, parent, state, err) < 0) {
                PQclear(res);
                return -1;
            }
        }
        PQclear(res);
    }
    return 0;
}

static int prepare_all(runner *r, cf_err *err)
{
    int n;
    const cf_ops_gen_sql *s = cf_ops_gen_statements(&n);

    for (int i = 0; i < n; i++) {
        PGresult *res = PQprepare(r->c, s[i].name, s[i].sql, s[i].nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            cf_err_set(err, CF_E_DB, "preparing %s: %s", s[i].name, PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

/* Ends the pipeline segment and reads one result per queued statement.
 * Row counts go to tx_rows until the COMMIT is confirmed. */
static int sync_and_read(runner *r, cf_err *err)
{
    bool failed = false;
    PGresult *res;

    if (!PQpipelineSync(r->c))
        return cf_err_set(err, CF_E_DB, "pipeline sync: %s", PQerrorMessage(r->c));
    for (int i = 0; i < r->nq; i++) {
        res = PQgetResult(r->c);
        if (!res) {
            cf_err_set(err, CF_E_DB, "lost a pipeline result: %s", PQerrorMessage(r->c));
            return -1;
        }
        ExecStatusType s = PQresultStatus(res);
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            if (r->q[i].table >= 0)
                r->tx_rows[r->q[i].table][r->q[i].kind] += strtoll(PQcmdTuples(res), NULL, 10);
        } else if (!failed) {
            /* The first error explains; the rest are PGRES_PIPELINE_ABORTED. */
            cf_err_set(err, CF_E_DB, "%s", s == PGRES_PIPELINE_ABORTED ? "pipeline aborted"
                                                                       : PQresultErrorMessage(res));
            failed = true;
        }
        PQclear(res);
        res = PQgetResult(r->c);        /* NULL ends each statement's results */
        if (res)
            PQclear(res);
    }
    res = PQgetResult(r->c);
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && !failed) {
        cf_err_set(err, CF_E_DB, "pipeline out of step: %s", PQresStatus(PQresultStatus(res)));
        failed = true;
    }
    PQclear(res);
    r->nq = 0;
    return failed ? -1 : 0;
}

static int send_cmd(runner *r, const char *sql, cf_err *err)
{
    if (r->o->dry_run) {
        if (cf_buf_printf(&r->sql, err, "%s;\n", sql) < 0)
            return -1;
        return 0;
    }
    if (r->nq >= QUEUE_LEN)
        return cf_err_set(err, CF_E_DB, "internal: pipeline queue full");
    if (!PQsendQueryParams(r->c, sql, 0, NULL, NULL, NULL, NULL, 0))
        return cf_err_set(err, CF_E_DB, "%s: %s", sql, PQerrorMessage(r->c));
    r->q[r->nq++] = (qitem){ -1, -1 };
    return 0;
}

static int flush_dry(runner *r, cf_err *err)
{
    if (r->sql.len && fwrite(r->sql.data, 1, r->sql.len, stdout) != r->sql.len)
        return cf_err_set(err, CF_E_IO, "writing SQL to stdout failed");
    cf_buf_reset(&r->sql);
    return 0;
}

static int commit_tx(runner *r, cf_err *err)
{
    if (!r->in_tx)
        return 0;
    if (send_cmd(r, "COMMIT", err) < 0)
        return -1;
    if (r->o->dry_run) {
        if (flush_dry(r, err) < 0)
            return -1;
    } else if (sync_and_read(r, err) < 0) {
        return cf_err_wrap(err, "transaction rolled back");
    }
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        for (int k = 0; k < CF_GEN_NKINDS; k++) {
            r->rows[t][k] += r->tx_rows[t][k];
            r->tx_rows[t][k] = 0;
        }
    r->in_tx = false;
    r->tx_stmts = 0;
    return 0;
}

static int64_t total_rows(const runner *r);

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

static int run_plan(runner *r, double t0, cf_err *err)
{
    const cf_ops_gen_sql *sql;
    cf_ops_gen_stmt st;
    double last_note = t0;
    int n, rc;

    sql = cf_ops_gen_statements(&n);
    while (!stop_requested) {
        if (!r->o->dry_run && cf_ops_now() - last_note >= PROGRESS_EVERY) {
            /* A long (rate-limited) run shows it is alive. */
            last_note = cf_ops_now();
            fprintf(stderr, "generate: %.0f s, %" PRId64 " statements, %" PRId64 " rows committed\n",
                    last_note - t0, r->stmts, total_rows(r));
        }
        rc = cf_ops_gen_next(r->g, &st, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (r->o->rate > 0 && !r->o->dry_run) {
            double due = t0 + (double)r->stmts / r->o->rate, now = cf_ops_now();
            if (due > now) {
                /* Commit before idling so what was written shows up now. */
                if (commit_tx(r, err) < 0)
                    return -1;
                sleep_s(due - now);
            }
        }
        if (!r->in_tx) {
            if (send_cmd(r, "BEGIN", err) < 0)
                return -1;
            r->in_tx = true;
        }
        if (r->o->dry_run) {
            if (cf_ops_gen_render(&r->sql, sql[st.stmt].sql, st.nparams, st.params, err) < 0)
                return -1;
            /* Without a database the plan's expectation is the count. */
            r->tx_rows[st.table][st.kind] += st.expect_rows;
        } else {
            if (r->nq >= QUEUE_LEN)
                return cf_err_set(err, CF_E_DB, "internal: pipeline queue full");
            if (!PQsendQueryPrepared(r->c, sql[st.stmt].name, st.nparams, st.params, NULL, NULL, 0))
                return cf_err_set(err, CF_E_DB, "sending %s: %s", sql[st.stmt].name,
                                  PQerrorMessage(r->c));
            r->q[r->nq++] = (qitem){ (int8_t)st.table, (int8_t)st.kind };
            if (r->nq >= SYNC_EVERY && sync_and_read(r, err) < 0)
                return cf_err_wrap(err, "transaction rolled back");
        }
        r->stmts++;
        if (++r->tx_stmts >= r->o->batch && commit_tx(r, err) < 0)
            return -1;
    }
    return commit_tx(r, err);
}

static PGconn *db_connect(const cf_ops_gen_opts *o, cf_err *err)
{
    PGconn *c;

    if (o->dsn) {
        const char *keys[] = { "application_name", "dbname", NULL };
        const char *vals[] = { "cdcflow-generate", o->dsn, NULL };
        c = PQconnectdbParams(keys, vals, 1);
    } else {
        const char *keys[] = { "host", "port", "user", "password", "dbname", "application_name",
                               "connect_timeout", NULL };
        const char *vals[] = { cf_ops_env("PGHOST", "127.0.0.1"), cf_ops_env("PGPORT", "5432"),
                               cf_ops_env("PGUSER", "cdcuser"), cf_ops_env("PGPASSWORD", "cdcpass"),
                               cf_ops_env("PGDATABASE", "cdcdb"), "cdcflow-generate", "10", NULL };
        c = PQconnectdbParams(keys, vals, 0);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        cf_err_set(err, CF_E_DB, "cannot connect to PostgreSQL: %s"
                   "(is the stack running? `scripts/stack.sh start`)", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* --------------------------------------------------------------- report */

static int64_t total_rows(const runner *r)
{
    int64_t n = 0;
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        for (int k = 0; k < CF_GEN_NKINDS; k++)
            n += r->rows[t][k];
    return n;
}

static void report(FILE *f, const runner *r, double setup_s, double write_s, bool interrupted,
                   bool failed)
{
    const cf_ops_gen_opts *o = r->o;
    int64_t rows = total_rows(r);
    double rate = write_s > 0 ? (double)rows / write_s : 0;

    if (o->json) {
        fprintf(f, "{\"seed\": %" PRIu64 ", \"dry_run\": %s, \"interrupted\": %s, \"failed\": %s, "
                "\"batch\": %" PRId64
                ", \"statements\": %" PRId64 ", \"rows\": %" PRId64 ", \"setup_s\": %.3f"
                ", \"elapsed_s\": %.3f, \"rows_per_s\": %.0f, \"tables\": {",
                o->seed, o->dry_run ? "true" : "false", interrupted ? "true" : "false",
                failed ? "true" : "false", o->batch,
                r->stmts, rows, setup_s, write_s, rate);
        for (int t = 0; t < CF_GEN_NTABLES; t++)
            fprintf(f, "%s\"%s\": {\"insert\": %" PRId64 ", \"update\": %" PRId64
                    ", \"delete\": %" PRId64 "}", t ? ", " : "", cf_ops_gen_table_name((cf_gen_table)t),
                    r->rows[t][CF_GEN_INSERT], r->rows[t][CF_GEN_UPDATE], r->rows[t][CF_GEN_DELETE]);
        fprintf(f, "}}\n");
        return;
    }
    fprintf(f, "generate%s: seed %" PRIu64 ", %" PRId64 " statements, %" PRId64
            " rows changed in %.3f s (%.0f rows/s, batch %" PRId64 "%s)%s\n",
            o->dry_run ? " --dry-run" : "", o->seed, r->stmts, rows, write_s, rate, o->batch,
            o->rate > 0 && !o->dry_run ? ", rate-limited" : "",
            failed ? " - stopped by an error; the open transaction was rolled back"
                   : interrupted ? " - interrupted" : "");
    fprintf(f, "  %-10s %10s %10s %10s\n", "table", "inserted", "updated", "deleted");
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        fprintf(f, "  %-10s %10" PRId64 " %10" PRId64 " %10" PRId64 "\n",
                cf_ops_gen_table_name((cf_gen_table)t), r->rows[t][CF_GEN_INSERT],
                r->rows[t][CF_GEN_UPDATE], r->rows[t][CF_GEN_DELETE]);
    if (!o->dry_run)
        fprintf(f, "  (setup: loading targets and reserving ids took %.3f s)\n", setup_s);
}

static void usage(FILE *f)
{
    fputs("Usage: cdcflow generate [options]\n"
          "\n"
          "Write seeded, reproducible inserts, updates and deletes into the source tables\n"
          "(customers, products, inventory, orders; deploy/postgres/schema.sql) so that\n"
          "Debezium has changes to capture.  Each product comes with one inventory row.\n"
          "Deleting a customer deletes its orders first; deleting a product, its inventory.\n"
          "\n"
          "Options:\n"
          "  --customers N     customers to insert (default 100)\n"
          "  --products N      products to insert, each with an inventory row (default 20)\n"
          "  --orders N        orders to insert, for random customers (default 200)\n"
          "  --updates N|P%    updates across the four tables (default 50); P% is a share\n"
          "                    of the rows this run inserts (or of existing rows if none)\n"
          "  --deletes N|P%    deletes of orders, customers or products (default 10)\n"
          "  --rate R          statements per second, 0 = as fast as possible (default 0);\n"
          "                    each changes one row, except deleting a customer's orders\n"
          "                    or a product's inventory\n"
          "  --batch N         statements per transaction (default 100)\n"
          "  --seed S          PRNG seed (default 42): the same seed, options and starting\n"
          "                    database give the same statements\n"
          "  --dsn DSN         libpq connection string; default from PGHOST PGPORT PGUSER\n"
          "                    PGPASSWORD PGDATABASE, else 127.0.0.1 5432 cdcuser cdcpass cdcdb\n"
          "  --new-rows-only   updates and deletes touch only rows this run inserts, never\n"
          "                    rows already there (the statements then depend on the seed\n"
          "                    and options alone, ids aside)\n"
          "  --dry-run         print the SQL (ids counting from 1 as in empty tables) and\n"
          "                    touch no database; the summary goes to stderr\n"
          "  --json            print the summary as one JSON object\n"
          "  -h, --help        this help\n"
          "\n"
          "Counts printed are rows PostgreSQL reports changed (deletes include the\n"
          "orders / inventory rows removed with their customer / product).\n", f);
}

int cf_cmd_generate(int argc, char **argv)
{
    cf_ops_gen_opts o;
    cf_err err = { 0 };
    runner r;
    struct sigaction sa, old_int, old_term;
    double t0, t1 = 0, t2;
    int rc = -1;

    cf_ops_gen_defaults(&o);
    if (cf_ops_gen_parse(argc, argv, &o, &err) < 0) {
        fprintf(stderr, "cdcflow generate: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    memset(&r, 0, sizeof r);
    r.o = &o;
    cf_buf_init(&r.sql, 0);
    t0 = cf_ops_now();
    if (!(r.g = cf_ops_gen_new(&o, &err)))
        goto out;
    if (!o.dry_run) {
        if (!(r.c = db_connect(&o, &err)) || (!o.new_rows_only && load_existing(&r, &err) < 0) ||
            cf_ops_gen_reserve_ids(r.g, db_ids, &r, &err) < 0 || prepare_all(&r, &err) < 0)
            goto out;
        if (!PQenterPipelineMode(r.c)) {
            cf_err_set(&err, CF_E_DB, "pipeline mode: %s", PQerrorMessage(r.c));
            goto out;
        }
    } else if (cf_ops_gen_reserve_ids(r.g, dry_ids, &r, &err) < 0) {
        goto out;
    }

    /* Ctrl-C finishes the open transaction and prints what was done. */
    stop_requested = 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    t1 = cf_ops_now();
    rc = run_plan(&r, t1, &err);
    t2 = cf_ops_now();
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    fflush(stdout);
    report(o.dry_run ? stderr : stdout, &r, t1 - t0, t2 - t1, stop_requested != 0, rc < 0);
out:
    if (rc < 0)
        fprintf(stderr, "cdcflow generate: %s\n", err.msg);
    if (r.c)
        PQfinish(r.c);
    cf_ops_gen_free(r.g);
    cf_buf_free(&r.sql);
    return rc < 0 ? 1 : stop_requested ? 130 : 0;
}
