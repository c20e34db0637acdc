/* test_ops_peek.c - `cdcflow peek` against librdkafka's in-process mock
 * cluster: topic listing with counts, last N / first N, several partitions,
 * tombstones.  (The mock creates any topic asked for, so "no such topic" is
 * tested against the real broker in tests/integration/test_ops.py.) */
#include "cf_test.h"

#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "ops/ops.h"

static rd_kafka_t *producer;
static const char *bootstrap;
static char *peek_text;        /* output of the last peek() */

/* A producer whose own mock cluster plays the broker; NULL on failure. */
static int mock_up(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    if (rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr)) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!producer)
        return -1;
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(producer);
    if (!mc)
        return -1;
    bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "postgres.public.customers", 1, 1);
    rd_kafka_mock_topic_create(mc, "postgres.public.orders", 3, 1);
    rd_kafka_mock_topic_create(mc, "other.topic", 1, 1);
    return 0;
}

static void produce(const char *topic, int32_t part, const char *key, const char *val)
{
    rd_kafka_resp_err_t e = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
        RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)val, val ? strlen(val) : 0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    CHECK_EQ_INT(e, 0);
}

/* Runs peek; returns its output (peek_text) or NULL on error. */
static char *peek(const char *topic, int64_t n, bool from_beginning)
{
    size_t len;
    cf_ops_peek_opts o;
    cf_err e;
    FILE *f;
    int rc;

    free(peek_text);
    peek_text = NULL;
    f = open_memstream(&peek_text, &len);
    cf_ops_peek_defaults(&o);
    o.bootstrap = bootstrap;
    o.topic = topic;
    o.n = n;
    o.from_beginning = from_beginning;
    o.timeout_s = 15;
    rc = cf_ops_peek_run(&o, f, &e);
    fclose(f);
    if (rc < 0) {
        fprintf(stderr, "  peek: %s\n", e.msg);
        return NULL;
    }
    return peek_text;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void setup_data(void)
{
    char key[64], val[256];

    CHECK(mock_up() == 0);
    if (!producer)
        return;
    for (int i = 1; i <= 12; i++) {
        snprintf(key, sizeof key, "{\"schema\":{},\"payload\":{\"customer_id\":%d}}", i);
        snprintf(val, sizeof val, "{\"schema\":{},\"payload\":{\"before\":null,\"after\":{\"customer_id\":%d},"
                 "\"op\":\"%s\"}}", i, i % 4 == 0 ? "u" : "c");
        produce("postgres.public.customers", 0, key, val);
    }
    produce("postgres.public.customers", 0, "{\"schema\":{},\"payload\":{\"customer_id\":3}}", NULL); /* tombstone */
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 4 + p; i++) {
            snprintf(key, sizeof key, "{\"order_id\":%d}", p * 100 + i);
            snprintf(val, sizeof val, "{\"op\":\"c\",\"after\":{\"order_id\":%d}}", p * 100 + i);
            produce("postgres.public.orders", p, key, val);
        }
    produce("other.topic", 0, "k", "v");
    CHECK_EQ_INT(rd_kafka_flush(producer, 10000), 0);
}

static void lists_topics_with_counts(void)
{
    cf_ops_peek_opts o;
    cf_err e;
    char *text = NULL;
    size_t len;
    FILE *f = open_memstream(&text, &len);

    cf_ops_peek_defaults(&o);
    o.bootstrap = bootstrap;
    CHECK(cf_ops_peek_run(&o, f, &e) == 0);
    fclose(f);
    CHECK(text && strstr(text, "TOPIC") == text);
    CHECK(text && strstr(text, "postgres.public.customers                                 1           13\n"));
    CHECK(text && strstr(text, "postgres.public.orders                                    3           15\n"));
    CHECK(text && !strstr(text, "other.topic"));                /* not under the prefix */
    free(text);

    text = NULL;
    f = open_memstream(&text, &len);
    o.prefix = "nothing.";
    CHECK(cf_ops_peek_run(&o, f, &e) == 0);
    fclose(f);
    CHECK(text && strstr(text, "no topics starting with 'nothing.'"));
    free(text);
}

static void prints_last_and_first_n(void)
{
    char *t = peek("postgres.public.customers", 3, false);
    CHECK_EQ_INT(count_lines(t), 3);
    CHECK(t && strstr(t, "0@10 key={\"customer_id\":11} op=c value={\"before\":null,\"after\":"
                         "{\"customer_id\":11},\"op\":\"c\"}\n") == t);
    CHECK(t && strstr(t, "0@11 key={\"customer_id\":12} op=u "));
    CHECK(t && strstr(t, "0@12 key={\"customer_id\":3} op=tombstone value=null\n"));

    t = peek("postgres.public.customers", 2, true);
    CHECK_EQ_INT(count_lines(t), 2);
    CHECK(t && strstr(t, "0@0 key={\"customer_id\":1} op=c ") == t);
    CHECK(t && strstr(t, "\n0@1 key={\"customer_id\":2} op=c "));

    t = peek("postgres.public.customers", 0, false);            /* all */
    CHECK_EQ_INT(count_lines(t), 13);
    t = peek("postgres.public.customers", 100, false);          /* more than there are */
    CHECK_EQ_INT(count_lines(t), 13);
}

static void reads_every_partition(void)
{
    /* Last 2 per partition (4, 5 and 6 messages), at most 2 in all. */
    char *t = peek("postgres.public.orders", 2, false);
    CHECK_EQ_INT(count_lines(t), 2);
    t = peek("postgres.public.orders", 0, true);
    CHECK_EQ_INT(count_lines(t), 15);
    CHECK(t && strstr(t, "0@3 key={\"order_id\":3} op=c"));
    CHECK(t && strstr(t, "1@4 key={\"order_id\":104} op=c"));
    CHECK(t && strstr(t, "2@5 key={\"order_id\":205} op=c"));
}

static void teardown(void)
{
    rd_kafka_destroy(producer);
    producer = NULL;
    free(peek_text);
    peek_text = NULL;
}

CF_TEST_MAIN("ops_peek", T(setup_data), T(lists_topics_with_counts), T(prints_last_and_first_n),
             T(reads_every_partition), T(teardown))
