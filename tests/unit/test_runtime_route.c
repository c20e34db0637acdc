/* test_runtime_route.c - one pipeline, one table per topic: template checks,
 * hostile topic names stay under the template's parent, routing of several
 * topics into their own Delta tables through the Kafka mock cluster, resume
 * of every table from its own offsets (and not from a neighbour's), per-table
 * metrics, run-file table lines and their errors by FILE:LINE. */
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cf_test.h"
#include "cli/commands.h"
#include "runtime/metrics.h"
#include "runtime/route.h"
#include "runtime/signals.h"
#include "table/delta/delta_int.h"
#include "table/table.h"
#include "util/log.h"

static bool safe_name(const char *s)
{
    if (!*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'
              || *s == '-'))
            return false;
    return true;
}

static void test_placeholders(void)
{
    char out[CF_ROUTE_PATH_MAX];
    cf_err err = { 0 };

    CHECK_EQ_INT(cf_route_expand("/d/{table}", "pg.public.orders", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/orders");
    CHECK_EQ_INT(cf_route_expand("/d/{schema}_{table}", "pg.inventory.orders", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/inventory_orders");
    CHECK_EQ_INT(cf_route_expand("/d/t-{topic}", "pg.public.orders", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/t-pg_public_orders");
    CHECK_EQ_INT(cf_route_expand("/d/{table}", "orders", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/orders");
    /* No schema part: an empty value, which becomes "_". */
    CHECK_EQ_INT(cf_route_expand("/d/{schema}", "orders", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/_");
    CHECK(!cf_route_is_template("/d/customers"));
    CHECK(cf_route_is_template("/d/{table}"));
    /* Parent matching for the resume scan. */
    CHECK(cf_route_entry_matches("/d/cdc_{table}", "cdc_orders"));
    CHECK(!cf_route_entry_matches("/d/cdc_{table}", "orders"));
    CHECK(!cf_route_entry_matches("/d/cdc_{table}", "cdc_"));
    CHECK(cf_route_entry_matches("/d/{table}", "orders"));
    CHECK(!cf_route_entry_matches("/d/{table}", "a b"));
    CHECK_EQ_INT(cf_route_parent("/d/x/{table}", out, sizeof out), 0);
    CHECK_EQ_STR(out, "/d/x");
}

static void test_bad_templates(void)
{
    cf_err err = { 0 };

    CHECK_EQ_INT(cf_route_check("/d/{tabel}", &err), -1);
    CHECK(strstr(err.msg, "unknown placeholder") != NULL);
    CHECK_EQ_INT(cf_route_check("/d/{table}/data", &err), -1);
    CHECK(strstr(err.msg, "last path component") != NULL);
    CHECK_EQ_INT(cf_route_check("{table}", &err), -1);
    CHECK_EQ_INT(cf_route_check("/{table}", &err), -1);
    CHECK_EQ_INT(cf_route_check("/d/x}", &err), 0);      /* no '{': not a template */
    CHECK_EQ_INT(cf_route_check("/d/{table}}", &err), -1);
    CHECK_EQ_INT(cf_route_check("/d/{table}", &err), 0);
}

static void test_hostile_names(void)
{
    static const char *topics[] = {
        "../../etc", "a/b", "pg.public...", "pg.public..", "pg.public.", "..", ".", "/", "pg.public.caf\xc3\xa9",
        "pg.public.a b\tc\n", "pg.public.$(rm -rf /)", "pg.public.%2e%2e", "pg.\xff\xfe.x",
    };
    char out[CF_ROUTE_PATH_MAX], big[301], big2[301];
    cf_err err = { 0 };

    for (size_t i = 0; i < sizeof topics / sizeof *topics; i++) {
        for (int t = 0; t < 3; t++) {
            const char *tmpl = t == 0 ? "/data/delta/{table}" : t == 1 ? "/data/delta/{schema}.{topic}"
                                                                         : "/data/delta/{topic}";
            CHECK_EQ_INT(cf_route_expand(tmpl, topics[i], out, sizeof out, &err), 0);
            CHECK(!strncmp(out, "/data/delta/", 12));
            /* one component, made of safe characters (the template's own '.' aside) */
            CHECK(strchr(out + 12, '/') == NULL);
            if (t != 1)
                CHECK(safe_name(out + 12));
            CHECK(strcmp(out + 12, ".") && strcmp(out + 12, ".."));
        }
    }
    CHECK_EQ_INT(cf_route_expand("/d/{table}", "pg.public.caf\xc3\xa9", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/caf__");
    CHECK_EQ_INT(cf_route_expand("/d/{table}", "a/b", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/a_b");
    CHECK_EQ_INT(cf_route_expand("/d/{table}", "../../etc", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/_etc");
    CHECK_EQ_INT(cf_route_expand("/d/{topic}", "..", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/__");
    CHECK_EQ_INT(cf_route_expand("/d/{table}", "pg.public.", out, sizeof out, &err), 0);
    CHECK_EQ_STR(out, "/d/_");
    /* 300 characters: cut to the cap, and two that differ only at the end stay apart. */
    memset(big, 'x', 300);
    big[300] = '\0';
    memcpy(big2, big, sizeof big);
    big2[299] = 'y';
    {
        char a[CF_ROUTE_PATH_MAX];
        CHECK_EQ_INT(cf_route_expand("/d/{table}", big, a, sizeof a, &err), 0);
        CHECK_EQ_INT(cf_route_expand("/d/{table}", big2, out, sizeof out, &err), 0);
        CHECK_EQ_INT(strlen(a), 3 + CF_ROUTE_VALUE_MAX);
        CHECK(safe_name(a + 3));
        CHECK(strcmp(a, out) != 0);
    }
}

/* ---- routing through the Kafka mock cluster into real Delta tables ---- */

/* A Debezium JSON envelope with its schema, so any table name decodes. */
static void produce(rd_kafka_t *prod, const char *topic, const char *table, const char *pkcol, int id)
{
    char row[256], line[2048];
    int n;

    snprintf(row, sizeof row,
             "{\"type\":\"struct\",\"optional\":true,\"fields\":[{\"type\":\"int32\",\"optional\":false,"
             "\"field\":\"%s\"},{\"type\":\"string\",\"optional\":true,\"field\":\"name\"}]", pkcol);
    n = snprintf(line, sizeof line,
                 "{\"schema\":{\"type\":\"struct\",\"fields\":[%s,\"field\":\"before\"},%s,\"field\":\"after\"},"
                 "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"field\":\"schema\"},{\"type\":\"string\","
                 "\"field\":\"table\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"}],\"field\":\"source\"},"
                 "{\"type\":\"string\",\"field\":\"op\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"}]},"
                 "\"payload\":{\"before\":null,\"after\":{\"%s\":%d,\"name\":\"n%d\"},\"source\":{\"version\":"
                 "\"2.7.0.Final\",\"connector\":\"postgresql\",\"name\":\"pg\",\"ts_ms\":1700000000000,\"db\":\"cdcdb\","
                 "\"schema\":\"public\",\"table\":\"%s\",\"lsn\":%d},\"op\":\"c\",\"ts_ms\":1700000000001}}",
                 row, row, pkcol, id, id, table, 1000 + id);
    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_VALUE(line, (size_t)n), RD_KAFKA_V_END);
}

static int64_t table_rows(const char *root)
{
    cf_err err = { 0 };
    cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &err);
    int64_t n = 0;

    if (!s)
        return -1;
    if (s->version < 0)
        n = -1;
    for (size_t i = 0; n >= 0 && i < s->nfiles; i++)
        if (s->files[i].live)
            n += s->files[i].num_records;
    cf_delta_snap_free(s);
    return n;
}

static int64_t table_offset(const char *root, const char *topic)
{
    cf_err err = { 0 };
    cf_sink_config sc = { .kind = "delta", .location = root, .table_name = "t", .app_id = "cdcflow" };
    cf_sink *s = cf_sink_open(&sc, &err);
    cf_offsets o = { 0 };
    int64_t v = -2;

    if (s && cf_sink_offsets(s, &o, &err) == 0)
        v = cf_offsets_get(&o, topic, 0);
    cf_offsets_free(&o);
    cf_sink_close(s);
    return v;
}

static int run_delta_opt(const char *boot, const char *tmpl, const char *group, const char *opt, const char *val)
{
    char *argv[] = { "delta", "--bootstrap", (char *)boot, "--topic", "^pg\\.public\\..*",
                     "--table-path", (char *)tmpl, "--available-now", "--metrics-port", "0", "--dlq", "off",
                     "--group-id", (char *)group, "--kafka-prop", "log_level=3", "--log-level", "error",
                     (char *)opt, (char *)val, NULL };
    int rc;

    cf_signals_reset();
    rc = cf_cmd_delta((int)(sizeof argv / sizeof *argv) - (opt ? 1 : 3), argv);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    return rc;
}

static int run_delta(const char *boot, const char *tmpl, const char *group)
{
    return run_delta_opt(boot, tmpl, group, NULL, NULL);
}

static void test_topics_to_tables_and_resume(void)
{
    char why[256], dir[128], tmpl[200], p[300], cmd[400];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;

    snprintf(dir, sizeof dir, "/tmp/cf_test_route_%d", (int)getpid());
    snprintf(tmpl, sizeof tmpl, "%s/{table}", dir);
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "pg.public.customers", 1, 1);
    rd_kafka_mock_topic_create(mc, "pg.public.orders", 1, 1);
    rd_kafka_mock_topic_create(mc, "pg.public.products", 1, 1);
    for (int i = 0; i < 3; i++)
        produce(prod, "pg.public.customers", "customers", "customer_id", i + 1);
    for (int i = 0; i < 2; i++)
        produce(prod, "pg.public.orders", "orders", "order_id", 10 + i);
    produce(prod, "pg.public.products", "products", "product_id", 20);
    rd_kafka_flush(prod, 5000);

    CHECK_EQ_INT(run_delta(boot, tmpl, "t-route-1"), 0);
    snprintf(p, sizeof p, "%s/customers", dir);
    CHECK_EQ_INT(table_rows(p), 3);
    CHECK_EQ_INT(table_offset(p, "pg.public.customers"), 3);
    CHECK_EQ_INT(table_offset(p, "pg.public.orders"), -1);      /* each table holds its topic's offsets */
    snprintf(p, sizeof p, "%s/orders", dir);
    CHECK_EQ_INT(table_rows(p), 2);
    CHECK_EQ_INT(table_offset(p, "pg.public.orders"), 2);
    CHECK_EQ_INT(table_offset(p, "pg.public.customers"), -1);
    snprintf(p, sizeof p, "%s/products", dir);
    CHECK_EQ_INT(table_rows(p), 1);

    /* More input on two topics; a new consumer group, so only the tables
     * can say where each topic stopped: every row once. */
    produce(prod, "pg.public.customers", "customers", "customer_id", 4);
    produce(prod, "pg.public.orders", "orders", "order_id", 12);
    produce(prod, "pg.public.orders", "orders", "order_id", 13);
    rd_kafka_flush(prod, 5000);
    CHECK_EQ_INT(run_delta(boot, tmpl, "t-route-2"), 0);
    snprintf(p, sizeof p, "%s/customers", dir);
    CHECK_EQ_INT(table_rows(p), 4);
    CHECK_EQ_INT(table_offset(p, "pg.public.customers"), 4);
    snprintf(p, sizeof p, "%s/orders", dir);
    CHECK_EQ_INT(table_rows(p), 4);
    CHECK_EQ_INT(table_offset(p, "pg.public.orders"), 4);
    snprintf(p, sizeof p, "%s/products", dir);
    CHECK_EQ_INT(table_rows(p), 1);
    /* A third run with nothing new writes nothing. */
    CHECK_EQ_INT(run_delta(boot, tmpl, "t-route-3"), 0);
    snprintf(p, sizeof p, "%s/orders", dir);
    CHECK_EQ_INT(table_rows(p), 4);

    rd_kafka_destroy(prod);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* A table under the template's parent holding offsets of a topic that
 * resolves elsewhere (written by a fixed-path pipeline, partitioned unlike
 * the routed tables) neither moves that topic's start nor stops the start. */
static void test_foreign_offsets_ignored(void)
{
    char why[256], dir[128], tmpl[200], fixed[200], p[300], cmd[400];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;

    snprintf(dir, sizeof dir, "/tmp/cf_test_route_fo_%d", (int)getpid());
    snprintf(tmpl, sizeof tmpl, "%s/{table}", dir);
    snprintf(fixed, sizeof fixed, "%s/orders", dir);
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "pg.public.customers", 1, 1);
    for (int i = 0; i < 3; i++)
        produce(prod, "pg.public.customers", "customers", "customer_id", i + 1);
    rd_kafka_flush(prod, 5000);
    /* customers' events into a table named orders, the fixed way */
    CHECK_EQ_INT(run_delta(boot, fixed, "t-fo-1"), 0);
    CHECK_EQ_INT(table_rows(fixed), 3);
    CHECK_EQ_INT(table_offset(fixed, "pg.public.customers"), 3);
    /* routed: customers starts from the earliest offset all the same */
    CHECK_EQ_INT(run_delta_opt(boot, tmpl, "t-fo-2", "--partition-by", "email"), 0);
    snprintf(p, sizeof p, "%s/customers", dir);
    CHECK_EQ_INT(table_rows(p), 3);
    CHECK_EQ_INT(table_rows(fixed), 3);
    rd_kafka_destroy(prod);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* A hostile topic name through the whole command (the file source takes any
 * --topic): the table lands under the template's parent, nowhere else. */
static void test_hostile_topic_end_to_end(void)
{
    char dir[128], ev[200], src[220], tmpl[200], p[300], cmd[400];
    FILE *f;

    snprintf(dir, sizeof dir, "/tmp/cf_test_route_h_%d", (int)getpid());
    snprintf(ev, sizeof ev, "/tmp/cf_test_route_h_%d.jsonl", (int)getpid());
    snprintf(src, sizeof src, "file:%s", ev);
    mkdir(dir, 0755);
    f = fopen(ev, "w");
    fputs("{\"before\":null,\"after\":{\"customer_id\":1,\"email\":\"a@b\"},\"source\":{\"schema\":\"public\","
          "\"table\":\"customers\",\"db\":\"cdcdb\",\"lsn\":1},\"op\":\"c\",\"ts_ms\":1}\n", f);
    fclose(f);
    for (int t = 0; t < 2; t++) {
        char *argv[] = { "delta", "--source", src, "--topic", "../../cf_route_escape/y", "--table-path", tmpl,
                         "--metrics-port", "0", "--dlq", "off", "--log-level", "error", NULL };
        snprintf(tmpl, sizeof tmpl, "%s/%s", dir, t == 0 ? "{topic}" : "{table}");
        cf_signals_reset();
        CHECK_EQ_INT(cf_cmd_delta(13, argv), 0);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        snprintf(p, sizeof p, "%s/%s", dir, t == 0 ? "______cf_route_escape_y" : "_cf_route_escape_y");
        CHECK_EQ_INT(table_rows(p), 1);
    }
    CHECK(access("/tmp/cf_route_escape", F_OK) != 0);
    snprintf(p, sizeof p, "%s/../cf_route_escape", dir);
    CHECK(access(p, F_OK) != 0);
    snprintf(cmd, sizeof cmd, "ls '%s' | wc -l | grep -qx 2", dir);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, ev);
    CHECK_EQ_INT(system(cmd), 0);
}

/* --primary-key on one fixed table: rows are keyed by the named column, not
 * by the source key (here: two customers sharing an email are one row). */
static void test_primary_key_override_single_table(void)
{
    char dir[128], ev[200], src[220], cmd[400];
    FILE *f;
    char *argv[] = { "delta", "--source", src, "--topic", "pg.public.customers", "--table-path", dir,
                     "--mode", "upsert", "--primary-key", "email", "--metrics-port", "0", "--dlq", "off",
                     "--log-level", "error", NULL };

    snprintf(dir, sizeof dir, "/tmp/cf_test_route_pk_%d", (int)getpid());
    snprintf(ev, sizeof ev, "/tmp/cf_test_route_pk_%d.jsonl", (int)getpid());
    snprintf(src, sizeof src, "file:%s", ev);
    f = fopen(ev, "w");
    for (int i = 1; i <= 3; i++)
        fprintf(f, "{\"before\":null,\"after\":{\"customer_id\":%d,\"email\":\"%s\"},\"source\":{\"schema\":"
                "\"public\",\"table\":\"customers\",\"db\":\"cdcdb\",\"lsn\":%d},\"op\":\"c\",\"ts_ms\":1}\n",
                i, i == 3 ? "b@x" : "a@x", i);
    fclose(f);
    cf_signals_reset();
    CHECK_EQ_INT(cf_cmd_delta(17, argv), 0);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    CHECK_EQ_INT(table_rows(dir), 2);
    /* a key column the output does not have stops the pipeline: bad usage */
    argv[10] = "no_such_column";
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
    cf_signals_reset();
    CHECK_EQ_INT(cf_cmd_delta(17, argv), 2);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, ev);
    CHECK_EQ_INT(system(cmd), 0);
}

/* Each table of a routed pipeline has its own series, labelled by name. */
static void test_metrics_by_table(void)
{
    cf_metrics *m = cf_metrics_new("/d/{table}", "postgres_to_delta");
    uint64_t a[6] = { 3, 1, 0, 0, 0, 0 }, b[6] = { 0, 0, 2, 0, 0, 1 };
    cf_buf out = { 0 };
    cf_err err = { 0 };

    cf_metrics_table_commit(m, "orders", a, 7);
    cf_metrics_table_commit(m, "customers", b, 2);
    cf_metrics_table_commit(m, "orders", a, 8);
    CHECK_EQ_INT(cf_metrics_render(m, &out, &err), 0);
    CHECK(cf_buf_putc(&out, '\0', &err) == 0);
    CHECK(strstr((char *)out.data, "cdcflow_events_total{table=\"orders\",op=\"insert\"} 6\n") != NULL);
    CHECK(strstr((char *)out.data, "cdcflow_events_total{table=\"orders\",op=\"update\"} 2\n") != NULL);
    CHECK(strstr((char *)out.data, "cdcflow_events_total{table=\"customers\",op=\"delete\"} 2\n") != NULL);
    CHECK(strstr((char *)out.data, "cdcflow_events_total{table=\"customers\",op=\"tombstone\"} 1\n") != NULL);
    CHECK(strstr((char *)out.data, "cdcflow_table_batches_total{table=\"orders\"} 2\n") != NULL);
    CHECK(strstr((char *)out.data, "cdcflow_table_last_version{table=\"orders\"} 8\n") != NULL);
    CHECK(strstr((char *)out.data, "{table=\"/d/{table}\",op=") == NULL);
    cf_buf_free(&out);
    cf_metrics_free(m);
}

/* Run `cdcflow run FILE` with `text` as FILE; stderr into *errout (caller frees). */
static int run_file(const char *text, char **errout)
{
    char conf[128], errp[128];
    char *argv[3] = { "run", conf, NULL };
    FILE *f;
    int rc, saved, fd;

    snprintf(conf, sizeof conf, "/tmp/cf_test_route_%d.conf", (int)getpid());
    snprintf(errp, sizeof errp, "/tmp/cf_test_route_%d.err", (int)getpid());
    f = fopen(conf, "w");
    fputs(text, f);
    fclose(f);
    fflush(stderr);
    saved = dup(2);
    fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    close(fd);
    cf_signals_reset();
    rc = cf_cmd_run(2, argv);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (errout) {
        FILE *e = fopen(errp, "r");
        *errout = calloc(1, 65536);
        if (e) {
            size_t n = fread(*errout, 1, 65535, e);
            (*errout)[n] = '\0';
            fclose(e);
        }
    }
    unlink(conf);
    unlink(errp);
    return rc;
}

static void test_run_file_errors_name_the_line(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "# x\ntable orders --mode upsert\n", ".conf:2: a table line needs a pipeline line" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/fixed --metrics-port 0\n"
          "table orders --mode upsert\n", ".conf:2: a table line belongs under a pipeline line" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\n\n"
          "table orders --mode sideways\n", ".conf:3: --mode 'sideways'" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\n"
          "table orders --colour blue\n", ".conf:2: table line: unknown option '--colour'" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\n"
          "table orders --partition-by\n", ".conf:2: --partition-by needs a value" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\n"
          "table ../etc --mode upsert\n", ".conf:2: table name '../etc' can never match" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\n"
          "table orders --mode upsert\ntable orders --mode append\n", ".conf:3: table 'orders' already has a line" },
        { "delta --source file:/dev/null --table-path /tmp/cf_t_x/{table} --metrics-port 0\ntable\n",
          ".conf:2: expected table NAME" },
        { "\n\n\ndelta --source file:/dev/null --table-path '/tmp/cf_t_x/{tabel}' --metrics-port 0\n",
          ".conf:4: pipeline not started" },
        { "spark --topic x\n", ".conf:1: expected delta, iceberg or table" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *e = NULL;
        CHECK_EQ_INT(run_file(cases[i].text, &e), 2);
        if (!strstr(e, cases[i].want))
            fprintf(stderr, "  case %zu: stderr was: %s\n", i, e);
        CHECK(strstr(e, cases[i].want) != NULL);
        free(e);
    }
    CHECK_EQ_INT(system("rm -rf /tmp/cf_t_x"), 0);
}

/* One run-file line serves three topics; table lines give orders an upsert
 * key of its own and products a partition column. */
static void test_run_file_table_overrides(void)
{
    char why[256], dir[128], text[2048], p[300], cmd[400];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;
    char *e = NULL;

    snprintf(dir, sizeof dir, "/tmp/cf_test_route_ov_%d", (int)getpid());
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "pg.public.customers", 1, 1);
    rd_kafka_mock_topic_create(mc, "pg.public.orders", 1, 1);
    rd_kafka_mock_topic_create(mc, "pg.public.products", 1, 1);
    produce(prod, "pg.public.customers", "customers", "customer_id", 1);
    produce(prod, "pg.public.customers", "customers", "customer_id", 1);
    produce(prod, "pg.public.orders", "orders", "order_id", 10);
    produce(prod, "pg.public.orders", "orders", "order_id", 10);   /* same key: one row in upsert */
    produce(prod, "pg.public.orders", "orders", "order_id", 11);
    produce(prod, "pg.public.products", "products", "product_id", 20);
    produce(prod, "pg.public.products", "products", "product_id", 21);
    rd_kafka_flush(prod, 5000);

    snprintf(text, sizeof text,
             "# all tables, one consumer\n"
             "delta --bootstrap %s --topic '^pg\\.public\\..*' --table-path %s/{table} --available-now "
             "--metrics-port 0 --dlq off --group-id t-ov --kafka-prop log_level=3 --log-level error\n"
             "table orders --mode upsert --primary-key order_id   # the events carry no key\n"
             "table products --partition-by name\n",
             boot, dir);
    CHECK_EQ_INT(run_file(text, &e), 0);
    free(e);
    snprintf(p, sizeof p, "%s/customers", dir);
    CHECK_EQ_INT(table_rows(p), 2);                 /* append */
    snprintf(p, sizeof p, "%s/orders", dir);
    CHECK_EQ_INT(table_rows(p), 2);                 /* upsert by order_id */
    snprintf(p, sizeof p, "%s/products", dir);
    CHECK_EQ_INT(table_rows(p), 2);
    {
        cf_err err = { 0 };
        cf_delta_snap *s = cf_delta_snap_load(NULL, p, -1, &err);
        CHECK(s != NULL);
        if (s) {
            CHECK_EQ_INT(s->npart, 1);
            if (s->npart == 1)
                CHECK_EQ_STR(s->part_cols[0], "name");
            cf_delta_snap_free(s);
        }
    }
    rd_kafka_destroy(prod);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* A bad template is a usage error before anything starts. */
static void test_bad_template_is_usage_error(void)
{
    char *argv[] = { "delta", "--table-path", "/tmp/x/{tabel}", "--source", "file:/dev/null",
                     "--metrics-port", "0", NULL };
    char *argv2[] = { "iceberg", "--table", "{table}/x", "--source", "file:/dev/null", "--metrics-port", "0",
                      NULL };
    CHECK_EQ_INT(cf_cmd_delta(7, argv), 2);
    CHECK_EQ_INT(cf_cmd_iceberg(7, argv2), 2);
}

__attribute__((constructor)) static void quiet(void)
{
    cf_log_set_level(getenv("CF_TEST_VERBOSE") ? CF_LOG_DEBUG : CF_LOG_ERROR);
}

CF_TEST_MAIN("runtime_route",
             T(test_placeholders), T(test_bad_templates), T(test_hostile_names),
             T(test_topics_to_tables_and_resume), T(test_metrics_by_table),
             T(test_foreign_offsets_ignored), T(test_primary_key_override_single_table), T(test_hostile_topic_end_to_end),
             T(test_run_file_errors_name_the_line), T(test_run_file_table_overrides), T(test_bad_template_is_usage_error))
