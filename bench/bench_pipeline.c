/* bench_pipeline.c - throughput of the runtime loop: file source -> Debezium
 * decode -> customers transform -> batch -> a sink that drops the rows.
 * Prints events/s and peak RSS; never asserts on time.
 *
 *   bench_pipeline run N          generate N events in a temp file, run, print
 *   bench_pipeline gen N PATH     write N events to PATH (for bench/pipeline.sh)
 *   bench_pipeline produce N TOPIC BOOTSTRAP   produce N events to Kafka */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "runtime/pipeline.h"
#include "table/table_int.h"      /* a sink of our own that keeps nothing */
#include "util/log.h"

static int event_json(char *buf, size_t cap, long i)
{
    long id = i % 100000 + 1;
    char op = i < 100000 ? 'c' : (i % 10 == 9 ? 'd' : 'u');
    char row[768];

    snprintf(row, sizeof row,
             "{\"customer_id\":%ld,\"email\":\"customer%ld@example.com\",\"first_name\":\"Jane\","
             "\"last_name\":\"Doe%ld\",\"phone\":\"+1-555-%04ld\",\"address_line1\":\"%ld Main Street\","
             "\"city\":\"Springfield\",\"state\":\"IL\",\"postal_code\":\"62701\",\"country\":\"USA\","
             "\"registration_date\":1699000000000000,\"last_updated\":%ld,\"is_active\":true,"
             "\"customer_tier\":\"gold\",\"lifetime_value\":\"AYag\"}",
             id, id, id, id % 10000, id, 1699000000000000L + i);
    return snprintf(buf, cap,
                    "{\"before\":%s,\"after\":%s,\"source\":{\"version\":\"2.7.4.Final\",\"connector\":\"postgresql\","
                    "\"name\":\"postgres\",\"ts_ms\":%ld,\"snapshot\":\"false\",\"db\":\"cdcdb\",\"schema\":\"public\","
                    "\"table\":\"customers\",\"txId\":%ld,\"lsn\":%ld},\"op\":\"%c\",\"ts_ms\":%ld}",
                    op == 'd' ? row : "null", op == 'd' ? "null" : row, 1699000000000L + i, 1000 + i,
                    100000 + i * 64, op, 1699000000000L + i);
}

static int gen(long n, const char *path)
{
    FILE *f = fopen(path, "w");
    char line[2048];
    if (!f) {
        perror(path);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        event_json(line, sizeof line, i);
        fputs(line, f);
        fputc('\n', f);
    }
    return fclose(f) ? 1 : 0;
}

static int produce(long n, const char *topic, const char *bootstrap)
{
    char why[256], line[2048];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, why, sizeof why);
    rd_kafka_conf_set(conf, "linger.ms", "20", why, sizeof why);
    rd_kafka_conf_set(conf, "compression.type", "lz4", why, sizeof why);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why))) {
        fprintf(stderr, "producer: %s\n", why);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        int len = event_json(line, sizeof line, i);
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_VALUE(line, (size_t)len), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 50);
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- a sink that keeps nothing ---- */
static int64_t null_version = -1;
static uint64_t null_rows;
static int n_open(cf_sink *s, cf_err *err) { return 0; }
static int n_offsets(cf_sink *s, cf_offsets *out, cf_err *err) { cf_offsets_clear(out); return 0; }
static int n_stage(cf_sink *s, const cf_commit *c, cf_err *err)
{
    null_rows += c->rows ? c->rows->nrows : 0;
    return 0;
}
static int n_publish(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err)
{
    *version = ++null_version;
    return 0;
}
static void n_abort(cf_sink *s) {}
static void n_close(cf_sink *s) {}
static const cf_sink_ops null_ops = {
    .name = "null", .open = n_open, .offsets = n_offsets, .stage = n_stage, .publish = n_publish,
    .abort = n_abort, .close = n_close,
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int run(long n)
{
    char path[] = "/tmp/cdcflow-bench-XXXXXX";
    char spec[64];
    const char *topics[1] = { "postgres.public.customers" };
    cf_err err = { 0 };
    cf_sink sink = { .ops = &null_ops };
    cf_pipeline_stats st;
    struct rusage ru;
    double t0, t1;
    long bytes;
    int fd = mkstemp(path), rc = 1;

    if (fd < 0)
        return 1;
    close(fd);
    if (gen(n, path))
        goto out;
    {
        FILE *f = fopen(path, "r");
        fseek(f, 0, SEEK_END);
        bytes = ftell(f);
        fclose(f);
    }
    snprintf(spec, sizeof spec, "file:%s", path);
    cf_source *src = cf_source_open(&(cf_source_config){ .spec = spec, .topics = topics, .ntopics = 1 }, &err);
    cf_decoder *dec = cf_decoder_new(&(cf_decoder_config){ 0 }, &err);
    cf_transform *xf = cf_transform_new(&(cf_transform_config){ .pipeline_id = "postgres_to_delta" }, &err);
    cf_dlq *dlq = cf_dlq_open(&(cf_dlq_config){ .spec = "off" }, &err);
    if (!src || !dec || !xf || !dlq) {
        fprintf(stderr, "bench: %s\n", err.msg);
        goto out;
    }
    cf_pipeline_config pc = { .source = src, .sink = &sink, .decoder = dec, .transform = xf, .dlq = dlq,
                              .table_name = "customers", .trigger_ms = 1000 };
    t0 = now_s();
    if (cf_pipeline_run(&pc, &st, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        goto out;
    }
    t1 = now_s();
    getrusage(RUSAGE_SELF, &ru);
    printf("pipeline file->decode->transform->null: %ld events (%.1f MB) in %.2f s = %.0f events/s, %.1f MB/s, "
           "%llu batches, peak RSS %.1f MB\n",
           (long)st.events, bytes / 1e6, t1 - t0, st.events / (t1 - t0), bytes / 1e6 / (t1 - t0),
           (unsigned long long)st.batches, ru.ru_maxrss / 1024.0);
    rc = st.events == (uint64_t)n && null_rows == (uint64_t)n ? 0 : 1;
    cf_source_close(src);
    cf_decoder_free(dec);
    cf_transform_free(xf);
    cf_dlq_close(dlq);
out:
    unlink(path);
    return rc;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 1000000;

    cf_log_set_level(CF_LOG_WARN);
    if (argc > 1 && !strcmp(argv[1], "gen") && argc == 4)
        return gen(n, argv[3]);
    if (argc > 1 && !strcmp(argv[1], "produce") && argc == 5)
        return produce(n, argv[3], argv[4]);
    if (argc <= 2 || !strcmp(argv[1], "run"))
        return run(n);
    fprintf(stderr, "usage: bench_pipeline run [N] | gen N PATH | produce N TOPIC BOOTSTRAP\n");
    return 2;
}
