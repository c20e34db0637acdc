/* test_dlq.c - the dead-letter target's Kafka producer configuration: which
 * properties it takes, and that its errors never show a property's value. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cf_test.h"
#include "runtime/dlq.h"
#include "util/log.h"

/* Everything written to stderr while capturing, as a string (caller frees). */
static int saved_fd = -1;
static char cap_path[128];

static void capture_start(void)
{
    int fd;

    snprintf(cap_path, sizeof cap_path, "/tmp/cf_test_dlq_%d.err", (int)getpid());
    fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    fd = open(cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static char *capture_end(void)
{
    FILE *f;
    char *s = calloc(1, 1 << 16);

    fflush(stderr);
    dup2(saved_fd, STDERR_FILENO);
    close(saved_fd);
    if ((f = fopen(cap_path, "r"))) {
        size_t n = fread(s, 1, (1 << 16) - 1, f);
        s[n] = '\0';
        fclose(f);
    }
    unlink(cap_path);
    return s;
}

/* The consumer's properties reach the producer only when they apply to a
 * producer: no "consumer property ... ignored" warning at every start. */
static void test_consumer_props_are_not_handed_to_the_producer(void)
{
    const char *props[] = {
        "group.id=g", "fetch.min.bytes=1", "enable.partition.eof=true", "session.timeout.ms=10000",
        "auto.offset.reset=earliest", "max.poll.interval.ms=300000", "fetch.message.max.bytes=2097152",
        "isolation.level=read_committed", "security.protocol=sasl_plaintext", "sasl.mechanism=PLAIN",
        "client.id=cf-test", "message.max.bytes=5000",
        "socket.keepalive.enable=true", "sasl.username=u", "sasl.password=hunter2",
    };
    cf_dlq_config c = { .spec = "kafka:cf-test.dlq", .bootstrap = "127.0.0.1:9", .props = props,
                        .nprops = (int)(sizeof props / sizeof *props) };
    cf_err err = { 0 };
    cf_dlq *d;
    char *out;

    cf_log_set_level(CF_LOG_DEBUG);
    capture_start();
    d = cf_dlq_open(&c, &err);
    cf_dlq_close(d);
    out = capture_end();
    cf_log_set_level(CF_LOG_INFO);
    CHECK(d != NULL);
    CHECK(strstr(out, "consumer property") == NULL);
    CHECK(strstr(out, "CONFWARN") == NULL);
    CHECK(strstr(out, "hunter2") == NULL);
    if (strstr(out, "consumer property"))
        fprintf(stderr, "  captured: %.2000s\n", out);
    free(out);
}

/* --dlq-kafka-prop: for the producer only, taken as given; a refusal names
 * the key, never the value. */
static void test_producer_props_are_applied_and_errors_hide_values(void)
{
    char longkey[400];
    const char *ok[] = { "linger.ms=20", "compression.type=lz4" };
    const char *bad[][1] = { { "no.such.property=hunter2" }, { longkey }, { "linger.ms:hunter2" } };
    cf_dlq_config c = { .spec = "kafka", .bootstrap = "127.0.0.1:9", .producer_props = ok, .nproducer_props = 2 };
    cf_err err = { 0 };
    cf_dlq *d = cf_dlq_open(&c, &err);

    CHECK(d != NULL);
    cf_dlq_close(d);
    memset(longkey, 'k', 300);
    snprintf(longkey + 300, sizeof longkey - 300, "=hunter2");
    for (int i = 0; i < 3; i++) {
        c.producer_props = bad[i];
        c.nproducer_props = 1;
        memset(&err, 0, sizeof err);
        d = cf_dlq_open(&c, &err);
        CHECK(d == NULL);
        CHECK_EQ_INT(err.code, CF_E_ARG);
        CHECK(strstr(err.msg, "hunter2") == NULL);
        cf_dlq_close(d);
    }
    CHECK(strstr(err.msg, "no.such") == NULL);          /* the last one had no key at all */
}

CF_TEST_MAIN("dlq",
             T(test_consumer_props_are_not_handed_to_the_producer),
             T(test_producer_props_are_applied_and_errors_hide_values))
