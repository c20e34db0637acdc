/* bench_decode.c - decode + transform throughput of generated Debezium
 * customers events, with and without the schema envelope: events/s on one
 * core and peak RSS.  Prints figures; asserts nothing about speed.
 *
 * usage: bench_decode [events_bare [events_envelope [events_avro]]]   (defaults 2M, 1M, 2M)
 * The Avro runs encode the same events as Kafka Connect's AvroConverter
 * does (Confluent framing; writer schemas tests/data/avro/1.avsc, 2.avsc,
 * given to the registry up front: no server), so run it from the
 * repository root.
 * A pool of distinct events (inserts, updates, key-only deletes; varying
 * names, NULLs, escapes, decimals) is generated first and cycled through,
 * so the figures measure the decoder, not the generator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "decode/debezium.h"
#include "format/avro/avro.h"
#include "transform/transform.h"
#include "util/buf.h"

#include "avro_events.h"

#define POOL       8192
#define BATCH_ROWS 10000

static const char *schema_json =
    "{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"struct\",\"fields\":%s,\"optional\":true,\"name\":\"postgres.public.customers.Value\",\"field\":\"before\"},"
    "{\"type\":\"struct\",\"fields\":%s,\"optional\":true,\"name\":\"postgres.public.customers.Value\",\"field\":\"after\"},"
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"version\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"connector\"},{\"type\":\"string\",\"optional\":false,\"field\":\"name\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"},{\"type\":\"string\",\"optional\":true,\"name\":\"io.debezium.data.Enum\","
    "\"version\":1,\"parameters\":{\"allowed\":\"true,first,last,false,incremental\"},"
    "\"default\":\"false\",\"field\":\"snapshot\"},{\"type\":\"string\",\"optional\":false,\"field\":\"db\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"sequence\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"},{\"type\":\"string\",\"optional\":false,\"field\":\"schema\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"table\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"txId\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"lsn\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"xmin\"}],"
    "\"optional\":false,\"name\":\"io.debezium.connector.postgresql.Source\",\"field\":\"source\"},"
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},"
    "{\"type\":\"int64\",\"optional\":false,\"field\":\"total_order\"},{\"type\":\"int64\",\"optional\":false,"
    "\"field\":\"data_collection_order\"}],\"optional\":true,\"name\":\"event.block\",\"version\":1,\"field\":\"transaction\"},"
    "{\"type\":\"string\",\"optional\":false,\"field\":\"op\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ms\"},"
    "{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_us\"},{\"type\":\"int64\",\"optional\":true,\"field\":\"ts_ns\"}],"
    "\"optional\":false,\"name\":\"postgres.public.customers.Envelope\",\"version\":2}";

static const char *row_fields =
    "[{\"type\":\"int32\",\"optional\":false,\"default\":0,\"field\":\"customer_id\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"email\"},{\"type\":\"string\",\"optional\":true,\"field\":\"first_name\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"last_name\"},{\"type\":\"string\",\"optional\":true,\"field\":\"phone\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"address_line1\"},{\"type\":\"string\",\"optional\":true,\"field\":\"city\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"state\"},{\"type\":\"string\",\"optional\":true,\"field\":\"postal_code\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"country\"},"
    "{\"type\":\"int64\",\"optional\":true,\"name\":\"io.debezium.time.MicroTimestamp\",\"version\":1,\"field\":\"registration_date\"},"
    "{\"type\":\"int64\",\"optional\":true,\"name\":\"io.debezium.time.MicroTimestamp\",\"version\":1,\"field\":\"last_updated\"},"
    "{\"type\":\"boolean\",\"optional\":true,\"field\":\"is_active\"},{\"type\":\"string\",\"optional\":true,\"field\":\"customer_tier\"},"
    "{\"type\":\"bytes\",\"optional\":true,\"name\":\"org.apache.kafka.connect.data.Decimal\",\"version\":1,"
    "\"parameters\":{\"scale\":\"2\",\"connect.decimal.precision\":\"10\"},\"field\":\"lifetime_value\"}]";

static void b64(uint32_t v, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t b[4] = { 0, (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    /* 4-byte two's complement (positive, top byte 0), base64 of 4 bytes. */
    uint32_t a = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
    out[0] = al[a >> 18];
    out[1] = al[(a >> 12) & 63];
    out[2] = al[(a >> 6) & 63];
    out[3] = al[a & 63];
    out[4] = al[b[3] >> 2];
    out[5] = al[(b[3] & 3) << 4];
    out[6] = '=';
    out[7] = '=';
    out[8] = '\0';
}

static void row(cf_buf *b, int id, unsigned r)
{
    const char *fn = ev_first[r % 7], *city = ev_cities[(r / 7) % 6];
    char ltv[16];

    b64((r * 7919u) % 99999999u, ltv);
    cf_buf_printf(b, NULL, "{\"customer_id\":%d,\"email\":\"user%d@example.com\",", id, id);
    if (fn)
        cf_buf_printf(b, NULL, "\"first_name\":\"%s\",", fn);
    else
        cf_buf_printf(b, NULL, "\"first_name\":null,");
    cf_buf_printf(b, NULL, "\"last_name\":\"%s\",\"phone\":\"+1-555-%04u\",\"address_line1\":\"%u Main St\",",
                  ev_last[r % 6], r % 10000, r % 900 + 1);
    if (city)
        cf_buf_printf(b, NULL, "\"city\":\"%s\",", city);
    else
        cf_buf_printf(b, NULL, "\"city\":null,");
    cf_buf_printf(b, NULL, "\"state\":%s,\"postal_code\":\"%05u\",\"country\":\"USA\","
                  "\"registration_date\":%lld,\"last_updated\":%lld,\"is_active\":%s,"
                  "\"customer_tier\":\"%s\",\"lifetime_value\":\"%s\"}",
                  r % 3 ? "\"TX\"" : "null", r % 99999, 1704103200000000LL + r * 1000003LL,
                  1732439999000000LL + r * 17LL, r % 5 ? "true" : "false", ev_tiers[r % 4], ltv);
}

static void key_only(cf_buf *b, int id)
{
    cf_buf_printf(b, NULL, "{\"customer_id\":%d,\"email\":null,\"first_name\":null,\"last_name\":null,"
                  "\"phone\":null,\"address_line1\":null,\"city\":null,\"state\":null,\"postal_code\":null,"
                  "\"country\":null,\"registration_date\":null,\"last_updated\":null,\"is_active\":null,"
                  "\"customer_tier\":null,\"lifetime_value\":null}", id);
}

static void payload(cf_buf *b, unsigned r)
{
    int id = (int)(r % 100000) + 1;
    char op = r % 10 < 6 ? 'c' : r % 10 < 9 ? 'u' : 'd';
    long long lsn = 24000000LL + r * 120LL;

    cf_buf_printf(b, NULL, "{\"before\":");
    if (op == 'd')
        key_only(b, id);
    else
        cf_buf_printf(b, NULL, "null");
    cf_buf_printf(b, NULL, ",\"after\":");
    if (op == 'd')
        cf_buf_printf(b, NULL, "null");
    else
        row(b, id, r);
    cf_buf_printf(b, NULL, ",\"source\":{\"version\":\"2.7.4.Final\",\"connector\":\"postgresql\","
                  "\"name\":\"postgres\",\"ts_ms\":%lld,\"snapshot\":\"false\",\"db\":\"cdcdb\","
                  "\"sequence\":\"[\\\"%lld\\\",\\\"%lld\\\"]\",\"ts_us\":%lld,\"ts_ns\":%lld,"
                  "\"schema\":\"public\",\"table\":\"customers\",\"txId\":%u,\"lsn\":%lld,\"xmin\":null},"
                  "\"transaction\":null,\"op\":\"%c\",\"ts_ms\":%lld,\"ts_us\":%lld,\"ts_ns\":%lld}",
                  1732440000000LL + r, lsn - 56, lsn, (1732440000000LL + r) * 1000,
                  (1732440000000LL + r) * 1000000, 700 + r / 3, lsn, op, 1732440000100LL + r,
                  (1732440000100LL + r) * 1000, (1732440000100LL + r) * 1000000);
}

typedef struct pool {
    char  *data;
    size_t off[POOL + 1];
    char   keys[POOL][256];
    size_t klen[POOL];
} pool;

enum { BARE, ENVELOPE, AVRO };

static void build_pool(pool *p, int envelope)
{
    cf_buf b, sch;

    cf_buf_init(&b, 0);
    cf_buf_init(&sch, 0);
    cf_buf_printf(&sch, NULL, schema_json, row_fields, row_fields);
    for (unsigned r = 0; r < POOL; r++) {
        int id = (int)(r % 100000) + 1;
        p->off[r] = b.len;
        if (envelope == AVRO) {
            cf_buf kb;
            cf_buf_init(&kb, 0);
            avro_payload(&b, 2, r);                     /* 2.avsc, 1.avsc as ids 2, 1 */
            avro_key(&kb, 1, id);
            memcpy(p->keys[r], kb.data, kb.len);
            p->klen[r] = kb.len;
            cf_buf_free(&kb);
            continue;
        }
        if (envelope) {
            cf_buf_printf(&b, NULL, "{\"schema\":%.*s,\"payload\":", (int)sch.len, (const char *)sch.data);
            payload(&b, r);
            cf_buf_putc(&b, '}', NULL);
            snprintf(p->keys[r], sizeof p->keys[r],
                     "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int32\",\"optional\":false,"
                     "\"default\":0,\"field\":\"customer_id\"}],\"optional\":false,"
                     "\"name\":\"postgres.public.customers.Key\"},\"payload\":{\"customer_id\":%d}}", id);
        } else {
            payload(&b, r);
            snprintf(p->keys[r], sizeof p->keys[r], "{\"customer_id\":%d}", id);
        }
        p->klen[r] = strlen(p->keys[r]);
    }
    p->off[POOL] = b.len;
    p->data = (char *)b.data;
    cf_buf_free(&sch);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    long len;

    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (s = malloc((size_t)len)) && fread(s, 1, (size_t)len, f) == (size_t)len)
        *n = (size_t)len;
    else {
        free(s);
        s = NULL;
        fprintf(stderr, "bench_decode: cannot read %s (run from the repository root)\n", path);
    }
    if (f)
        fclose(f);
    return s;
}

/* An offline registry holding the customers key and value schemas. */
static cf_registry *avro_registry(void)
{
    cf_registry *r = cf_registry_new(&(cf_registry_config){ 0 }, NULL);
    for (int id = 1; r && id <= 2; id++) {
        char path[64], *s;
        size_t n = 0;
        snprintf(path, sizeof path, "tests/data/avro/%d.avsc", id);
        if (!(s = slurp(path, &n)) || cf_registry_put(r, id, s, n, NULL)) {
            free(s);
            cf_registry_free(r);
            return NULL;
        }
        free(s);
    }
    return r;
}

/* events per CPU second of each run, for the ratios */
static double rate[3][2];

static int run(const char *label, int envelope, int transform, long n)
{
    static pool p;
    cf_registry *reg = envelope == AVRO ? avro_registry() : NULL;
    cf_decoder_config dc = { .value_format = reg ? CF_DEC_AVRO : CF_DEC_JSON,
                             .key_format = reg ? CF_DEC_AVRO : CF_DEC_JSON, .registry = reg };
    cf_decoder *d = envelope == AVRO && !reg ? NULL : cf_decoder_new(&dc, NULL);
    cf_transform_config tc = { .pipeline_id = "postgres_to_delta" };
    cf_transform *t = cf_transform_new(&tc, NULL);
    cf_batch *out = NULL;
    cf_event ev;
    cf_err err;
    double t0, c0, wall, cpu;
    size_t bytes = 0;
    long rows = 0;

    if (!d)
        return 1;
    memset(&p, 0, sizeof p);
    build_pool(&p, envelope);
    t0 = now_s();
    c0 = cpu_s();
    for (long i = 0; i < n; i++) {
        unsigned r = (unsigned)(i % POOL);
        cf_msg m = { .topic = "postgres.public.customers", .partition = 0, .offset = i,
                     .timestamp_ms = 1732440000999, .key = p.keys[r], .key_len = p.klen[r],
                     .value = p.data + p.off[r], .value_len = p.off[r + 1] - p.off[r] };
        const cf_schema *s;
        if (cf_decoder_decode(d, &m, &ev, &err)) {
            fprintf(stderr, "decode failed at %ld: %s\n", i, err.msg);
            return 1;
        }
        bytes += m.value_len + m.key_len;
        if (!transform) {
            if (++rows % BATCH_ROWS == 0)
                cf_decoder_reset(d);
            continue;
        }
        if (!(s = cf_transform_schema(t, &ev, &err))) {
            fprintf(stderr, "transform schema: %s\n", err.msg);
            return 1;
        }
        if (!out && !(out = cf_batch_new(s, &err)))
            return 1;
        if (out->schema != s && cf_batch_rebind(out, s, &err))
            return 1;
        if (cf_transform_apply(t, &ev, out, NULL, 1732450000000000LL, &err)) {
            fprintf(stderr, "apply failed: %s\n", err.msg);
            return 1;
        }
        if (out->nrows >= BATCH_ROWS) {
            rows += (long)out->nrows;
            cf_batch_reset(out);
            cf_decoder_reset(d);
        }
    }
    if (out)
        rows += (long)out->nrows;
    wall = now_s() - t0;
    cpu = cpu_s() - c0;
    printf("%-26s events=%ld rows=%ld avg_event_bytes=%zu  %.0f events/s/core  %.0f MB/s  %.0f ns/event  (wall %.2fs, cpu %.2fs)\n",
           label, n, rows, bytes / (size_t)n, (double)n / cpu, (double)bytes / cpu / 1e6,
           cpu * 1e9 / (double)n, wall, cpu);
    rate[envelope][transform] = (double)n / cpu;
    cf_batch_free(out);
    cf_transform_free(t);
    cf_decoder_free(d);
    cf_registry_free(reg);
    free(p.data);
    return 0;
}

int main(int argc, char **argv)
{
    long nb = argc > 1 ? atol(argv[1]) : 2000000, ne = argc > 2 ? atol(argv[2]) : 1000000;
    long na = argc > 3 ? atol(argv[3]) : 2000000;
    struct rusage ru;

    if (nb > 0 && (run("decode only, bare", BARE, 0, nb) || run("decode+transform bare", BARE, 1, nb)))
        return 1;
    if (ne > 0 && (run("decode only, envelope", ENVELOPE, 0, ne) ||
                   run("decode+transform envelope", ENVELOPE, 1, ne)))
        return 1;
    if (na > 0 && (run("decode only, avro", AVRO, 0, na) || run("decode+transform avro", AVRO, 1, na)))
        return 1;
    for (int t = 0; t < 2; t++)
        if (rate[AVRO][t] > 0 && rate[ENVELOPE][t] > 0 && rate[BARE][t] > 0)
            printf("avro / json %s: %.2fx the envelope rate, %.2fx the bare rate\n",
                   t ? "decode+transform" : "decode only", rate[AVRO][t] / rate[ENVELOPE][t],
                   rate[AVRO][t] / rate[BARE][t]);
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS %ld KiB (ru_maxrss)\n", ru.ru_maxrss);
    return 0;
}
