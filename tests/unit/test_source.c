/* test_source.c - the file source, the offsets map and the Kafka source
 * against librdkafka's mock cluster. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cf_test.h"
#include "source/source.h"
#include "util/log.h"

static char *write_tmp(const char *name, const char *content)
{
    static char path[256];
    FILE *f;
    snprintf(path, sizeof path, "/tmp/cf_test_source_%d_%s", (int)getpid(), name);
    f = fopen(path, "w");
    fputs(content, f);
    fclose(f);
    return path;
}

static void test_offsets_map(void)
{
    cf_offsets o = { 0 };
    cf_err err = { 0 };
    CHECK_EQ_INT(cf_offsets_put(&o, "t", 0, 5, &err), 0);
    CHECK_EQ_INT(cf_offsets_put(&o, "t", 1, 7, &err), 0);
    CHECK_EQ_INT(cf_offsets_put(&o, "t", 0, 3, &err), 0);     /* never goes back */
    CHECK_EQ_INT(cf_offsets_put(&o, "u", 0, 9, &err), 0);
    CHECK_EQ_INT(o.n, 3);
    CHECK_EQ_INT(cf_offsets_get(&o, "t", 0), 5);
    CHECK_EQ_INT(cf_offsets_get(&o, "t", 1), 7);
    CHECK_EQ_INT(cf_offsets_get(&o, "u", 0), 9);
    CHECK_EQ_INT(cf_offsets_get(&o, "u", 1), -1);
    {
        char big[300];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        CHECK_EQ_INT(cf_offsets_put(&o, big, 0, 1, &err), -1);
        CHECK_EQ_INT(err.code, CF_E_ARG);
    }
    cf_offsets_clear(&o);
    CHECK_EQ_INT(cf_offsets_get(&o, "t", 0), -1);
    cf_offsets_free(&o);
    cf_offsets_free(&o);
}

static cf_source *open_file(const char *path, const char *topic, size_t cap)
{
    const char *topics[1] = { topic };
    char spec[300];
    cf_err err = { 0 };
    cf_source_config cfg = { .spec = spec, .topics = topics, .ntopics = topic ? 1 : 0,
                             .max_message_bytes = cap };
    cf_source *s;
    snprintf(spec, sizeof spec, "file:%s", path);
    s = cf_source_open(&cfg, &err);
    if (!s)
        fprintf(stderr, "  open: %s\n", err.msg);
    return s;
}

static void test_file_lines(void)
{
    char *path = write_tmp("lines.jsonl", "{\"a\":1}\nnull\n\n{\"b\":2}\r\n{\"c\":3}");
    cf_source *s = open_file(path, NULL, 0);
    cf_msg m;
    cf_err err = { 0 };

    CHECK(s != NULL);
    if (!s)
        return;
    CHECK_EQ_STR(cf_source_kind(s), "file");
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_INT(m.offset, 0);
    CHECK_EQ_INT(m.partition, 0);
    CHECK(m.value_len == 7 && !memcmp(m.value, "{\"a\":1}", 7));
    /* topic from the file name, without its extension */
    {
        char want[256];
        snprintf(want, sizeof want, "cf_test_source_%d_lines", (int)getpid());
        CHECK_EQ_STR(m.topic, want);
    }
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_INT(m.offset, 1);
    CHECK(m.value == NULL);                      /* tombstone */
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_INT(m.offset, 3);                   /* blank line 2 skipped, still counted */
    CHECK(m.value_len == 7 && !memcmp(m.value, "{\"b\":2}", 7));   /* CR stripped */
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_INT(m.offset, 4);
    CHECK(m.value_len == 7 && !memcmp(m.value, "{\"c\":3}", 7));   /* no final newline */
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 2);
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 2);
    CHECK_EQ_INT(cf_source_lag(s), 0);
    cf_source_close(s);
    unlink(path);
}

static void test_file_seek_and_topic(void)
{
    char *path = write_tmp("seek.txt", "l0\nl1\nl2\nl3\n");
    cf_source *s = open_file(path, "my.topic", 0);
    cf_offsets o = { 0 };
    cf_msg m;
    cf_err err = { 0 };

    CHECK(s != NULL);
    if (!s)
        return;
    cf_offsets_put(&o, "my.topic", 0, 2, &err);
    CHECK_EQ_INT(cf_source_seek(s, &o, &err), 0);
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_STR(m.topic, "my.topic");
    CHECK_EQ_INT(m.offset, 2);
    CHECK(m.value_len == 2 && !memcmp(m.value, "l2", 2));
    /* seeking back rewinds */
    cf_offsets_clear(&o);
    cf_offsets_put(&o, "my.topic", 0, 1, &err);
    CHECK_EQ_INT(cf_source_seek(s, &o, &err), 0);
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
    CHECK_EQ_INT(m.offset, 1);
    /* a table ahead of the file: nothing left */
    cf_offsets_clear(&o);
    cf_offsets_put(&o, "my.topic", 0, 99, &err);
    CHECK_EQ_INT(cf_source_seek(s, &o, &err), 0);
    CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 2);
    cf_offsets_free(&o);
    cf_source_close(s);
    unlink(path);
}

static void test_file_cap_and_long_lines(void)
{
    /* Lines longer than the 1 MiB read chunk take the slow path. */
    size_t big = (1u << 20) + 4096;
    char *content = malloc(big + 64);
    char *path;
    cf_source *s;
    cf_msg m;
    cf_err err = { 0 };

    memset(content, 'a', big);
    strcpy(content + big, "\nshort\n");
    path = write_tmp("big.jsonl", content);
    s = open_file(path, "t", 100);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
        CHECK_EQ_INT(m.offset, 0);
        CHECK_EQ_INT(m.value_len, 101);          /* cut at cap + 1: the caller sees it is too big */
        CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
        CHECK_EQ_INT(m.offset, 1);
        CHECK(m.value_len == 5 && !memcmp(m.value, "short", 5));
        cf_source_close(s);
    }
    s = open_file(path, "t", 0);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(cf_source_poll(s, &m, 0, &err), 1);
        CHECK_EQ_INT(m.value_len, big);          /* whole line under the default cap */
        cf_source_close(s);
    }
    free(content);
    unlink(path);
}

static void test_file_missing(void)
{
    cf_source_config cfg = { .spec = "file:/nonexistent/x.jsonl" };
    cf_err err = { 0 };
    CHECK(cf_source_open(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_IO);
    cfg.spec = "bogus";
    CHECK(cf_source_open(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
}

/* ---- Kafka against the mock cluster ---- */

typedef struct mock {
    rd_kafka_t *prod;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
} mock;

static int mock_start(mock *mk, const char *topic, int partitions)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    mk->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!mk->prod)
        return -1;
    mk->mc = rd_kafka_handle_mock_cluster(mk->prod);
    mk->bootstraps = rd_kafka_mock_cluster_bootstraps(mk->mc);
    return rd_kafka_mock_topic_create(mk->mc, topic, partitions, 1) ? -1 : 0;
}

static void mock_produce(mock *mk, const char *topic, int32_t part, const char *value)
{
    rd_kafka_producev(mk->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                      RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0), RD_KAFKA_V_END);
}

static void mock_stop(mock *mk)
{
    if (mk->prod)
        rd_kafka_destroy(mk->prod);
}

typedef struct hooks {
    cf_offsets table;
    int assigns, revokes;
} hooks;

static int h_assign(void *opaque, cf_offsets *out, cf_err *err)
{
    hooks *h = opaque;
    h->assigns++;
    return cf_offsets_copy(out, &h->table, err);
}

static int h_revoke(void *opaque, const cf_offsets *revoked, bool lost)
{
    hooks *h = opaque;
    h->revokes++;
    return 0;
}

static cf_source *open_kafka(mock *mk, const char *topic, const char *group)
{
    const char *topics[1] = { topic };
    const char *props[] = { "log_level=3", "session.timeout.ms=6000", "heartbeat.interval.ms=500" };
    cf_source_config cfg = { .spec = "kafka", .bootstrap = mk->bootstraps, .topics = topics, .ntopics = 1,
                             .group_id = group, .props = props, .nprops = 3 };
    cf_err err = { 0 };
    cf_source *s = cf_source_open(&cfg, &err);
    if (!s)
        fprintf(stderr, "  kafka open: %s\n", err.msg);
    return s;
}

/* Backpressure: while paused nothing arrives however long the poll; after
 * resume reading goes on at the next offset, nothing skipped or repeated,
 * although the fetched queue was dropped at the pause.  And a memory bound
 * small enough to matter still delivers every message. */
static void test_kafka_pause_resume(void)
{
    mock mk = { 0 };
    hooks h = { 0 };
    const char *topics[1] = { "cdc.p" };
    const char *props[] = { "log_level=3" };
    cf_source_config cfg = { .spec = "kafka", .topics = topics, .ntopics = 1, .group_id = "gp",
                             .props = props, .nprops = 1, .max_memory = (size_t)16 << 20 };
    cf_source *s;
    cf_msg m;
    cf_err err = { 0 };
    int64_t next = 0;
    int r, n = 0;
    char v[32];

    CHECK_EQ_INT(mock_start(&mk, "cdc.p", 1), 0);
    for (int i = 0; i < 200; i++) {
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        mock_produce(&mk, "cdc.p", 0, v);
    }
    CHECK_EQ_INT(rd_kafka_flush(mk.prod, 5000), 0);
    cfg.bootstrap = mk.bootstraps;
    s = cf_source_open(&cfg, &err);
    CHECK(s != NULL);
    if (!s) {
        mock_stop(&mk);
        return;
    }
    cf_source_set_hooks(s, h_assign, h_revoke, &h);
    CHECK_EQ_INT(cf_source_set_available_now(s, &err), 0);
    for (time_t t0 = time(NULL); n < 50 && time(NULL) - t0 < 30;)
        if ((r = cf_source_poll(s, &m, 200, &err)) == 1) {
            CHECK_EQ_INT(m.offset, next);
            next = m.offset + 1;
            n++;
        }
    CHECK_EQ_INT(n, 50);
    CHECK_EQ_INT(cf_source_pause(s, true, &err), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(cf_source_poll(s, &m, 100, &err), 0);
    CHECK_EQ_INT(cf_source_pause(s, false, &err), 0);
    for (time_t t0 = time(NULL); (r = cf_source_poll(s, &m, 200, &err)) != 2 && time(NULL) - t0 < 30;) {
        CHECK(r >= 0);
        if (r != 1)
            continue;
        CHECK_EQ_INT(m.offset, next);
        next = m.offset + 1;
        n++;
    }
    CHECK_EQ_INT(r, 2);
    CHECK_EQ_INT(n, 200);
    cf_source_close(s);
    cf_offsets_free(&h.table);
    mock_stop(&mk);
}

static void test_kafka_resume_and_available_now(void)
{
    mock mk = { 0 };
    hooks h = { 0 };
    cf_source *s;
    cf_msg m;
    cf_err err = { 0 };
    int got[2] = { 0, 0 }, r;
    int64_t first[2] = { -1, -1 };
    char v[32];

    CHECK_EQ_INT(mock_start(&mk, "cdc.t", 2), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(v, sizeof v, "{\"i\":%d}", i);
        mock_produce(&mk, "cdc.t", i % 2, v);
    }
    mock_produce(&mk, "cdc.t", 0, NULL);           /* tombstone at p0 offset 5 */
    CHECK_EQ_INT(rd_kafka_flush(mk.prod, 5000), 0);

    s = open_kafka(&mk, "cdc.t", "g1");
    CHECK(s != NULL);
    if (!s) {
        mock_stop(&mk);
        return;
    }
    /* The table has p0 up to offset 3 (next 3); p1 unknown -> earliest. */
    cf_offsets_put(&h.table, "cdc.t", 0, 3, &err);
    cf_source_set_hooks(s, h_assign, h_revoke, &h);
    CHECK_EQ_INT(cf_source_set_available_now(s, &err), 0);
    time_t t0 = time(NULL);
    bool saw_tomb = false;
    while ((r = cf_source_poll(s, &m, 200, &err)) != 2 && time(NULL) - t0 < 30) {
        CHECK(r >= 0);
        if (r != 1)
            continue;
        CHECK_EQ_STR(m.topic, "cdc.t");
        if (first[m.partition] < 0)
            first[m.partition] = m.offset;
        got[m.partition]++;
        if (!m.value)
            saw_tomb = true;
    }
    CHECK_EQ_INT(r, 2);
    CHECK_EQ_INT(h.assigns, 1);
    CHECK_EQ_INT(first[0], 3);
    CHECK_EQ_INT(first[1], 0);
    CHECK_EQ_INT(got[0], 3);                      /* offsets 3, 4 and the tombstone */
    CHECK_EQ_INT(got[1], 5);
    CHECK(saw_tomb);
    CHECK_EQ_INT(cf_source_lag(s), 0);
    /* Group offsets (lag only) are accepted. */
    {
        cf_offsets c = { 0 };
        cf_offsets_put(&c, "cdc.t", 0, 6, &err);
        CHECK_EQ_INT(cf_source_commit(s, &c, &err), 0);
        cf_offsets_free(&c);
    }
    cf_source_close(s);
    cf_offsets_free(&h.table);
    mock_stop(&mk);
}

static void test_kafka_revoke_on_rebalance(void)
{
    mock mk = { 0 };
    hooks ha = { 0 }, hb = { 0 };
    cf_source *a, *b;
    cf_msg m;
    cf_err err = { 0 };
    time_t t0;

    CHECK_EQ_INT(mock_start(&mk, "cdc.r", 2), 0);
    for (int i = 0; i < 4; i++)
        mock_produce(&mk, "cdc.r", i % 2, "{}");
    rd_kafka_flush(mk.prod, 5000);
    a = open_kafka(&mk, "cdc.r", "g2");
    CHECK(a != NULL);
    if (!a) {
        mock_stop(&mk);
        return;
    }
    cf_source_set_hooks(a, h_assign, h_revoke, &ha);
    t0 = time(NULL);
    while (ha.assigns == 0 && time(NULL) - t0 < 30)
        cf_source_poll(a, &m, 200, &err);
    CHECK_EQ_INT(ha.assigns, 1);
    /* A second member joins: the first must give partitions back through the hook. */
    b = open_kafka(&mk, "cdc.r", "g2");
    CHECK(b != NULL);
    if (b) {
        cf_source_set_hooks(b, h_assign, h_revoke, &hb);
        t0 = time(NULL);
        while ((ha.revokes == 0 || hb.assigns == 0) && time(NULL) - t0 < 40) {
            cf_source_poll(a, &m, 100, &err);
            cf_source_poll(b, &m, 100, &err);
        }
        CHECK(ha.revokes >= 1);
        CHECK(hb.assigns >= 1);
        cf_source_close(b);
    }
    cf_source_close(a);
    mock_stop(&mk);
}

static void test_kafka_config_errors(void)
{
    const char *topics[1] = { "t" };
    const char *props[] = { "no.such.property=1" };
    cf_source_config cfg = { .spec = "kafka", .bootstrap = "127.0.0.1:1", .topics = topics, .ntopics = 1,
                             .props = props, .nprops = 1 };
    cf_err err = { 0 };
    CHECK(cf_source_open(&cfg, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
    cfg.ntopics = 0;
    cfg.nprops = 0;
    CHECK(cf_source_open(&cfg, &err) == NULL);
}

/* Quiet librdkafka's and our own info lines unless asked. */
__attribute__((constructor)) static void quiet(void)
{
    cf_log_set_level(getenv("CF_TEST_VERBOSE") ? CF_LOG_DEBUG : CF_LOG_ERROR);
}

CF_TEST_MAIN("source",
             T(test_offsets_map), T(test_file_lines), T(test_file_seek_and_topic),
             T(test_file_cap_and_long_lines), T(test_file_missing), T(test_kafka_config_errors),
             T(test_kafka_pause_resume), T(test_kafka_resume_and_available_now), T(test_kafka_revoke_on_rebalance))
