/* test_state_pipeline.c - the total_orders enrichment through the whole
 * pipeline: Debezium events of two topics on the Kafka mock cluster, the
 * decoder, the customers transform and a real Delta table; orders that
 * arrive before their customer, re-assignments and deletes; a second run
 * resumes from the state file the table's offsets name. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cf_test.h"
#include "sink_util.h"
#include "runtime/pipeline.h"
#include "state/enrich.h"
#include "table/delta/delta_int.h"
#include "util/log.h"

#define CUST   "pg.public.customers"
#define ORDERS "pg.public.orders"

static void produce_customer(rd_kafka_t *p, char op, int id, int lsn)
{
    char row[256], line[1024];

    snprintf(row, sizeof row, "{\"customer_id\":%d,\"email\":\"u%d@example.com\",\"first_name\":\"Ann\","
             "\"last_name\":\"Lee\",\"customer_tier\":\"gold\"}", id, id);
    snprintf(line, sizeof line, "{\"before\":%s,\"after\":%s,\"source\":{\"db\":\"cdcdb\",\"schema\":\"public\","
             "\"table\":\"customers\",\"lsn\":%d,\"ts_ms\":1},\"op\":\"%c\",\"ts_ms\":2}",
             op == 'd' ? row : "null", op == 'd' ? "null" : row, lsn, op);
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CUST), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_VALUE(line, strlen(line)), RD_KAFKA_V_END);
}

/* Orders events carry their schema (the envelope), as Debezium's do. */
#define ORDER_ROW "{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,\"field\":\"order_id\"}," \
    "{\"type\":\"int32\",\"optional\":false,\"field\":\"customer_id\"}],\"optional\":true," \
    "\"name\":\"pg.public.orders.Value\",\"field\":\"%s\"}"
#define ORDER_SCHEMA "{\"type\":\"struct\",\"fields\":[" ORDER_ROW "," ORDER_ROW "," \
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"db\"}," \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},{\"type\":\"string\",\"optional\":false," \
    "\"field\":\"table\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},{\"type\":\"int64\"," \
    "\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,\"field\":\"source\"}," \
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},{\"type\":\"int64\",\"optional\":true," \
    "\"field\":\"ts_ms\"}],\"optional\":false,\"name\":\"pg.public.orders.Envelope\"}"

static void produce_order(rd_kafka_t *p, char op, int id, int cust, int lsn)
{
    char row[256], line[4096];

    snprintf(row, sizeof row, "{\"order_id\":%d,\"customer_id\":%d}", id, cust);
    snprintf(line, sizeof line, "{\"schema\":" ORDER_SCHEMA ",\"payload\":{\"before\":%s,\"after\":%s,"
             "\"source\":{\"db\":\"cdcdb\",\"schema\":\"public\",\"table\":\"orders\",\"lsn\":%d,\"ts_ms\":1},"
             "\"op\":\"%c\",\"ts_ms\":2}}", "before", "after",
             op == 'd' ? row : "null", op == 'd' ? "null" : row, lsn, op);
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(ORDERS), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_VALUE(line, strlen(line)), RD_KAFKA_V_END);
}

/* customer_id -> total_orders of the live rows (-1: no row, -2: null). */
static void table_counts(const char *root, int64_t *out, int n, const char *email_of_1)
{
    cf_err e = { 0 };
    cf_delta_snap *s = cf_delta_snap_load(NULL, root, -1, &e);
    cf_batch *b;
    int kc, cc, ec;

    for (int i = 0; i < n; i++)
        out[i] = -1;
    CHECK(s != NULL && s->schema != NULL);
    if (!s || !s->schema) {
        cf_delta_snap_free(s);
        return;
    }
    b = cf_batch_new(s->schema, &e);
    for (size_t i = 0; i < s->nfiles; i++)
        if (s->files[i].live)
            CHECK_EQ_INT(cf_delta_read_file(test_store(), root, s->files[i].path, &s->files[i].pv,
                                            &s->files[i].dv, s->schema, b, &e), 0);
    kc = cf_schema_find(s->schema, "customer_id");
    cc = cf_schema_find(s->schema, "total_orders");
    ec = cf_schema_find(s->schema, "email");
    for (size_t r = 0; r < b->nrows; r++) {
        int64_t id = cf_col_i64(&b->cols[kc], r);
        CHECK(id >= 0 && id < n && out[id] == -1);      /* once each */
        if (id < 0 || id >= n)
            continue;
        out[id] = cf_col_valid(&b->cols[cc], r) ? cf_col_i32(&b->cols[cc], r) : -2;
        if (id == 1) {  /* an update of the count alone keeps the customer's other cells */
            size_t len;
            const uint8_t *p = cf_col_bytes(&b->cols[ec], r, &len);
            CHECK(len == strlen(email_of_1) && !memcmp(p, email_of_1, len));
        }
    }
    cf_batch_free(b);
    cf_delta_snap_free(s);
}

static int run_once(const char *boot, const char *root)
{
    const char *topics[2] = { CUST, ORDERS };
    const char *props[] = { "log_level=3" };
    cf_err err = { 0 };
    cf_sink_config sc = { .kind = "delta", .location = root, .table_name = "customers", .mode = CF_MODE_UPSERT,
                          .app_id = "cdcflow" };
    cf_enrich_config ec = { .orders_topic = ORDERS, .location = root, .mode = CF_MODE_UPSERT };
    cf_sink *sink = cf_sink_open(&sc, &err);
    cf_source *src = cf_source_open(&(cf_source_config){ .spec = "kafka", .bootstrap = boot, .topics = topics,
                                                         .ntopics = 2, .group_id = "t-enrich", .props = props,
                                                         .nprops = 1 }, &err);
    cf_decoder *dec = cf_decoder_new(&(cf_decoder_config){ 0 }, &err);
    cf_transform *xf = cf_transform_new(&(cf_transform_config){ .pipeline_id = "postgres_to_delta" }, &err);
    cf_dlq *dlq = cf_dlq_open(&(cf_dlq_config){ .spec = "off" }, &err);
    cf_enrich *en = cf_enrich_new(&ec, &err);
    cf_pipeline_stats st;
    int rc = -1;

    if (sink && src && dec && xf && dlq && en) {
        cf_pipeline_config pc = { .source = src, .sink = sink, .decoder = dec, .transform = xf, .dlq = dlq,
                                  .enrich = en, .table_name = "customers", .mode = CF_MODE_UPSERT,
                                  .trigger_ms = 60000, .max_offsets = 4, .available_now = true };
        rc = cf_pipeline_run(&pc, &st, &err);
    }
    if (rc)
        fprintf(stderr, "  run: %s\n", err.msg);
    cf_enrich_free(en);
    cf_dlq_close(dlq);
    cf_transform_free(xf);
    cf_decoder_free(dec);
    cf_source_close(src);
    cf_sink_close(sink);
    return rc;
}

static void test_counts_through_the_pipeline(void)
{
    char why[256], root[64] = "/tmp/cf-enrich-pipe-XXXXXX", cmd[128];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *boot;
    int64_t got[8];

    CHECK(mkdtemp(root) != NULL);
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, CUST, 1, 1);
    rd_kafka_mock_topic_create(mc, ORDERS, 1, 1);

    /* Orders first (their customers come later in the stream), max 4
     * messages per batch so that counts and customers meet across commits. */
    produce_order(prod, 'c', 10, 1, 110);
    produce_order(prod, 'c', 11, 1, 111);
    produce_order(prod, 'c', 12, 2, 112);
    produce_order(prod, 'c', 13, 3, 113);
    produce_order(prod, 'c', 14, 3, 114);
    produce_customer(prod, 'c', 1, 100);
    produce_customer(prod, 'c', 2, 101);
    produce_customer(prod, 'c', 3, 102);
    produce_customer(prod, 'c', 4, 103);
    rd_kafka_flush(prod, 5000);
    CHECK_EQ_INT(run_once(boot, root), 0);
    table_counts(root, got, 8, "u1@example.com");
    CHECK_EQ_INT(got[1], 2);
    CHECK_EQ_INT(got[2], 1);
    CHECK_EQ_INT(got[3], 2);
    CHECK_EQ_INT(got[4], 0);
    CHECK_EQ_INT(got[5], -1);

    /* Second run: re-assign, delete, a new order; the counts carry on from
     * the state the table's offsets name. */
    produce_order(prod, 'u', 13, 1, 120);
    produce_order(prod, 'd', 10, 1, 121);
    produce_order(prod, 'c', 15, 4, 122);
    produce_order(prod, 'c', 16, 2, 123);
    produce_order(prod, 'u', 16, 4, 124);
    produce_customer(prod, 'd', 2, 125);
    rd_kafka_flush(prod, 5000);
    CHECK_EQ_INT(run_once(boot, root), 0);
    table_counts(root, got, 8, "u1@example.com");
    CHECK_EQ_INT(got[1], 2);        /* 11, 13 */
    CHECK_EQ_INT(got[2], -1);       /* deleted */
    CHECK_EQ_INT(got[3], 1);        /* 14 */
    CHECK_EQ_INT(got[4], 2);        /* 15, 16 */
    /* nothing new: a run commits nothing and the counts stay */
    CHECK_EQ_INT(run_once(boot, root), 0);
    table_counts(root, got, 8, "u1@example.com");
    CHECK_EQ_INT(got[4], 2);
    rd_kafka_destroy(prod);
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0);
}

__attribute__((constructor)) static void quiet(void)
{
    cf_log_set_level(CF_LOG_WARN);
}

CF_TEST_MAIN("state_pipeline", T(test_counts_through_the_pipeline))
