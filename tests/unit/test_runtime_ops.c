/* test_runtime_ops.c - dead-letter targets (file, Kafka mock cluster), the
 * metrics endpoint and the `cdcflow health` probe. */
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cf_test.h"
#include "cli/commands.h"
#include "runtime/dlq.h"
#include "runtime/metrics.h"
#include "util/buf.h"
#include "util/log.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s;
    long n;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = calloc(1, (size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    return s;
}

static void test_dlq_file(void)
{
    char path[256], spec[300];
    cf_err err = { 0 }, why = { 0 };
    cf_dlq *d;
    cf_msg m = { .topic = "pg.public.t", .partition = 2, .offset = 41, .timestamp_ms = 1700000000000LL,
                 .key = "k1", .key_len = 2, .value = "{bad\"\n", .value_len = 6 };
    char *text;

    snprintf(path, sizeof path, "/tmp/cf_test_dlq_%d.jsonl", (int)getpid());
    unlink(path);
    snprintf(spec, sizeof spec, "file:%s", path);
    d = cf_dlq_open(&(cf_dlq_config){ .spec = spec }, &err);
    CHECK(d != NULL);
    if (!d)
        return;
    CHECK(cf_dlq_enabled(d));
    cf_err_setpos(&why, CF_E_PARSE, 4, "expected ':' after \"bad\"");
    CHECK_EQ_INT(cf_dlq_put(d, &m, &why, &err), 0);
    m.offset = 42;
    m.key = NULL;
    cf_err_set(&why, CF_E_TOOBIG, "message too big");
    why.pos = -1;
    CHECK_EQ_INT(cf_dlq_put(d, &m, &why, &err), 0);
    CHECK_EQ_INT(cf_dlq_count(d), 2);
    /* Nothing durable before the flush (the pipeline flushes before it commits). */
    text = slurp(path);
    CHECK(text && !text[0]);
    free(text);
    CHECK_EQ_INT(cf_dlq_flush(d, &err), 0);
    text = slurp(path);
    CHECK(text != NULL);
    if (text) {
        char *second = strchr(text, '\n');
        CHECK(second && strchr(second + 1, '\n'));     /* exactly two lines */
        CHECK(strstr(text, "\"reason\":\"parse: expected ':' after \\\"bad\\\"\"") != NULL);
        CHECK(strstr(text, "\"code\":\"parse\",\"pos\":4,\"topic\":\"pg.public.t\",\"partition\":2,\"offset\":41") != NULL);
        CHECK(strstr(text, "\"key_base64\":\"azE=\"") != NULL);             /* "k1" */
        CHECK(strstr(text, "\"value_base64\":\"e2JhZCIK\"") != NULL);       /* "{bad\"\n" */
        CHECK(second && strstr(second, "\"offset\":42") && strstr(second, "\"key_base64\":null")
              && strstr(second, "\"code\":\"toobig\""));
    }
    free(text);
    cf_dlq_close(d);
    unlink(path);
}

static void test_dlq_off_and_bad_spec(void)
{
    cf_err err = { 0 }, why = { 0 };
    cf_dlq *d = cf_dlq_open(&(cf_dlq_config){ .spec = "off" }, &err);
    cf_msg m = { .topic = "t" };

    CHECK(d != NULL);
    CHECK(!cf_dlq_enabled(d));
    CHECK_EQ_INT(cf_dlq_put(d, &m, &why, &err), -1);
    CHECK_EQ_INT(cf_dlq_flush(d, &err), 0);
    CHECK_EQ_STR(cf_dlq_describe(d), "off");
    cf_dlq_close(d);
    CHECK(cf_dlq_open(&(cf_dlq_config){ .spec = "s3:x" }, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
}

static void test_dlq_kafka(void)
{
    char why_s[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *anchor;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;
    cf_err err = { 0 }, why = { 0 };
    cf_dlq *d;
    cf_msg m = { .topic = "pg.public.customers", .partition = 1, .offset = 7,
                 .key = "{\"id\":1}", .key_len = 8, .value = "not json", .value_len = 8 };

    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why_s, sizeof why_s);
    rd_kafka_conf_set(conf, "log_level", "3", why_s, sizeof why_s);
    anchor = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why_s, sizeof why_s);
    CHECK(anchor != NULL);
    if (!anchor)
        return;
    mc = rd_kafka_handle_mock_cluster(anchor);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    /* No dead-letter topic yet: the target makes sure it exists. */
    {
        const char *props[] = { "log_level=3" };
        d = cf_dlq_open(&(cf_dlq_config){ .spec = "kafka", .bootstrap = boot, .props = props, .nprops = 1 }, &err);
    }
    CHECK(d != NULL);
    if (!d) {
        rd_kafka_destroy(anchor);
        return;
    }
    CHECK_EQ_STR(cf_dlq_describe(d), "kafka:<topic>.dlq");
    cf_err_setpos(&why, CF_E_PARSE, 0, "invalid JSON");
    CHECK_EQ_INT(cf_dlq_put(d, &m, &why, &err), 0);
    CHECK_EQ_INT(cf_dlq_flush(d, &err), 0);

    /* Read it back with a plain consumer. */
    {
        rd_kafka_conf_t *cc = rd_kafka_conf_new();
        rd_kafka_t *c;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_message_t *rm = NULL;
        time_t t0 = time(NULL);

        rd_kafka_conf_set(cc, "bootstrap.servers", boot, why_s, sizeof why_s);
        rd_kafka_conf_set(cc, "group.id", "reader", why_s, sizeof why_s);
        rd_kafka_conf_set(cc, "log_level", "3", why_s, sizeof why_s);
        rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", why_s, sizeof why_s);
        c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, why_s, sizeof why_s);
        rd_kafka_poll_set_consumer(c);
        /* Whatever partition the record landed in. */
        rd_kafka_topic_partition_list_add(l, "pg.public.customers.dlq", RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(c, l);
        while (time(NULL) - t0 < 20) {
            rm = rd_kafka_consumer_poll(c, 200);
            if (rm && !rm->err)
                break;
            if (rm)
                rd_kafka_message_destroy(rm);
            rm = NULL;
        }
        CHECK(rm != NULL);
        if (rm) {
            rd_kafka_headers_t *h = NULL;
            const void *v;
            size_t n;
            CHECK(rm->len == 8 && !memcmp(rm->payload, "not json", 8));
            CHECK(rm->key_len == 8 && !memcmp(rm->key, "{\"id\":1}", 8));
            CHECK_EQ_INT(rd_kafka_message_headers(rm, &h), 0);
            CHECK_EQ_INT(rd_kafka_header_get_last(h, "cdcflow.error.reason", &v, &n), 0);
            CHECK(n == strlen("parse: invalid JSON") && !memcmp(v, "parse: invalid JSON", n));
            CHECK_EQ_INT(rd_kafka_header_get_last(h, "cdcflow.error.position", &v, &n), 0);
            CHECK(n == 1 && !memcmp(v, "0", 1));
            CHECK_EQ_INT(rd_kafka_header_get_last(h, "cdcflow.error.topic", &v, &n), 0);
            CHECK(n == 19 && !memcmp(v, "pg.public.customers", 19));
            CHECK_EQ_INT(rd_kafka_header_get_last(h, "cdcflow.error.partition", &v, &n), 0);
            CHECK(n == 1 && !memcmp(v, "1", 1));
            CHECK_EQ_INT(rd_kafka_header_get_last(h, "cdcflow.error.offset", &v, &n), 0);
            CHECK(n == 1 && !memcmp(v, "7", 1));
            rd_kafka_message_destroy(rm);
        }
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    cf_dlq_close(d);
    rd_kafka_destroy(anchor);
}

static void test_metrics_render(void)
{
    cf_metrics *m = cf_metrics_new("cust\"omers", "postgres_to_delta");
    cf_buf b;
    const char *t;

    CHECK(m != NULL);
    if (!m)
        return;
    cf_buf_init(&b, 0);
    cf_metrics_set_up(m, true, NULL);
    cf_metrics_add_events(m, 'c', 5);
    cf_metrics_add_events(m, 'u', 2);
    cf_metrics_add_events(m, 0, 1);
    cf_metrics_add_dead_letter(m, 3);
    cf_metrics_batch_done(m, 0.2, 0.03, 7);
    cf_metrics_batch_done(m, 2.0, 0.5, 8);
    cf_metrics_set_lag(m, 12);
    CHECK_EQ_INT(cf_metrics_render(m, &b, NULL), 0);
    t = cf_buf_cstr(&b, NULL);
    CHECK(strstr(t, "cdcflow_events_total{table=\"cust\\\"omers\",op=\"insert\"} 5\n") != NULL);
    CHECK(strstr(t, "op=\"update\"} 2\n") != NULL);
    CHECK(strstr(t, "op=\"tombstone\"} 1\n") != NULL);
    CHECK(strstr(t, "\ncdcflow_dead_letter_total 3\n") != NULL);
    CHECK(strstr(t, "\ncdcflow_batches_total 2\n") != NULL);
    CHECK(strstr(t, "cdcflow_batch_duration_seconds_bucket{le=\"0.25\"} 1\n") != NULL);
    CHECK(strstr(t, "cdcflow_batch_duration_seconds_bucket{le=\"2.5\"} 2\n") != NULL);
    CHECK(strstr(t, "cdcflow_batch_duration_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
    CHECK(strstr(t, "cdcflow_commit_duration_seconds_count 2\n") != NULL);
    CHECK(strstr(t, "\ncdcflow_consumer_lag 12\n") != NULL);
    CHECK(strstr(t, "\ncdcflow_table_version 8\n") != NULL);
    CHECK(strstr(t, "\ncdcflow_up 1\n") != NULL);
    CHECK(strstr(t, "\nprocess_start_time_seconds ") != NULL);
    CHECK(strstr(t, "\ncdcflow_last_commit_timestamp_seconds 0.000\n") == NULL);
    CHECK_EQ_INT(cf_metrics_events_total(m), 7);
    CHECK_EQ_INT(cf_metrics_dead_letter_total(m), 3);
    cf_buf_free(&b);
    cf_metrics_free(m);
}

static void test_metrics_health_verdict(void)
{
    cf_metrics *m = cf_metrics_new("t", "p");
    char why[256];

    CHECK(!cf_metrics_healthy(m, why, sizeof why));        /* not started */
    CHECK(strstr(why, "down") != NULL);
    cf_metrics_set_up(m, true, NULL);
    CHECK(cf_metrics_healthy(m, why, sizeof why));
    CHECK_EQ_STR(why, "ok");
    /* Input waits and nothing was committed for longer than allowed. */
    cf_metrics_set_health_limits(m, 0, 60);
    cf_metrics_heartbeat(m, false);
    usleep(20000);
    CHECK(!cf_metrics_healthy(m, why, sizeof why));
    CHECK(strstr(why, "no commit") != NULL);
    /* Idle (no input): healthy however old the last commit. */
    cf_metrics_heartbeat(m, true);
    CHECK(cf_metrics_healthy(m, why, sizeof why));
    /* A loop that stopped turning. */
    cf_metrics_set_health_limits(m, 300, 0);
    usleep(20000);
    CHECK(!cf_metrics_healthy(m, why, sizeof why));
    CHECK(strstr(why, "stalled") != NULL);
    cf_metrics_free(m);
}

static size_t sink_body(char *p, size_t s, size_t n, void *o)
{
    return cf_buf_append(o, p, s * n, NULL) ? 0 : s * n;
}

static long get(const char *url, cf_buf *b)
{
    CURL *c = curl_easy_init();
    long status = -1;
    cf_buf_reset(b);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static int health_cmd(const char *url, const char *extra1, const char *extra2)
{
    char *argv[6] = { "health", "--url", (char *)url, (char *)extra1, (char *)extra2, NULL };
    int argc = extra1 ? (extra2 ? 5 : 4) : 3;
    int rc;
    /* The command prints one line on stdout; keep the test output tidy. */
    fflush(stdout);
    rc = cf_cmd_health(argc, argv);
    fflush(stdout);
    return rc;
}

static void test_metrics_http_and_health_cmd(void)
{
    cf_metrics *m = cf_metrics_new("customers", "postgres_to_delta");
    cf_err err = { 0 };
    cf_buf b;
    char url[128], base[64];

    cf_buf_init(&b, 0);
    CHECK_EQ_INT(cf_metrics_serve(m, 0, &err), 0);
    CHECK(cf_metrics_port(m) > 0);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", cf_metrics_port(m));
    cf_metrics_set_up(m, true, NULL);
    cf_metrics_add_events(m, 'c', 3);
    cf_metrics_batch_done(m, 0.1, 0.01, 1);
    cf_metrics_set_lag(m, 50);

    snprintf(url, sizeof url, "%s/metrics", base);
    CHECK_EQ_INT(get(url, &b), 200);
    CHECK(strstr(cf_buf_cstr(&b, NULL), "op=\"insert\"} 3\n") != NULL);
    snprintf(url, sizeof url, "%s/healthz", base);
    CHECK_EQ_INT(get(url, &b), 200);
    CHECK_EQ_STR(cf_buf_cstr(&b, NULL), "ok\n");
    snprintf(url, sizeof url, "%s/nope", base);
    CHECK_EQ_INT(get(url, &b), 404);

    CHECK_EQ_INT(health_cmd(base, NULL, NULL), 0);
    CHECK_EQ_INT(health_cmd(base, "--max-lag", "100"), 0);
    CHECK_EQ_INT(health_cmd(base, "--max-lag", "10"), 1);          /* lag 50 > 10 */
    cf_metrics_set_up(m, false, "failed: table commit");
    snprintf(url, sizeof url, "%s/healthz", base);
    CHECK_EQ_INT(get(url, &b), 503);
    CHECK(strstr(cf_buf_cstr(&b, NULL), "table commit") != NULL);
    CHECK_EQ_INT(health_cmd(base, NULL, NULL), 1);
    cf_metrics_free(m);                                            /* stops the server */
    CHECK_EQ_INT(health_cmd(base, NULL, NULL), 2);                 /* unreachable */
    cf_buf_free(&b);
}

__attribute__((constructor)) static void quiet(void)
{
    cf_log_set_level(getenv("CF_TEST_VERBOSE") ? CF_LOG_DEBUG : CF_LOG_ERROR);
}

CF_TEST_MAIN("runtime_ops",
             T(test_dlq_file), T(test_dlq_off_and_bad_spec), T(test_dlq_kafka), T(test_metrics_render),
             T(test_metrics_health_verdict), T(test_metrics_http_and_health_cmd))
