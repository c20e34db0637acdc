/* pipeline_cmd.c - `cdcflow delta` and `cdcflow iceberg`: the two Spark jobs
 * of SYSTEM.md as one process each.  Same environment variables and
 * defaults; flags override them. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "runtime/dlq.h"
#include "runtime/metrics.h"
#include "runtime/pipeline.h"
#include "runtime/route.h"
#include "state/enrich.h"
#include "runtime/signals.h"
#include "util/fs.h"
#include "util/log.h"

extern char **environ;

#define MAX_LIST 64
#define RUN_MAX_TABLES 64
#define ENV_PROP_PREFIX "CDCFLOW_KAFKA_"
#define PROP_KEY_MAX 200         /* below the key buffers of the Kafka clients */

/* ---- input formats: JSON, or Avro through a schema registry ----------
 * Flags, their environment defaults (CDCFLOW_VALUE_FORMAT, CDCFLOW_KEY_FORMAT,
 * CDCFLOW_REGISTRY_URL, CDCFLOW_REGISTRY_FRAMING, CDCFLOW_REGISTRY_AUTH,
 * CDCFLOW_REGISTRY_CA) and run-file lines alike. */

enum { O_VALUE_FORMAT = 512, O_KEY_FORMAT, O_REGISTRY, O_REG_FRAMING, O_REG_AUTH, O_REG_CA };

#define INPUT_LOPTS \
    { "value-format", required_argument, 0, O_VALUE_FORMAT }, \
    { "key-format", required_argument, 0, O_KEY_FORMAT }, \
    { "schema-registry", required_argument, 0, O_REGISTRY }, \
    { "registry-framing", required_argument, 0, O_REG_FRAMING }, \
    { "registry-auth", required_argument, 0, O_REG_AUTH }, \
    { "registry-ca", required_argument, 0, O_REG_CA },

typedef struct input_opts {
    const char *vfmt, *kfmt;     /* "json" | "avro"; the key follows the value by default */
    const char *url, *framing, *auth, *ca;
} input_opts;

static const char INPUT_USAGE[] =
    "Input format:\n"
    "  --value-format json|avro   message values: Kafka Connect's JsonConverter (with or\n"
    "                             without schemas) or Avro in a schema registry's framing\n"
    "                             [env CDCFLOW_VALUE_FORMAT, json]\n"
    "  --key-format json|avro     message keys   [env CDCFLOW_KEY_FORMAT, the value format]\n"
    "  --schema-registry URL      registry of the Avro writer schemas, e.g. http://HOST:8081 or\n"
    "                             Apicurio's http://HOST:8080/apis/ccompat/v7 (confluent framing)\n"
    "                             or http://HOST:8080/apis/registry/v2 (apicurio framing)\n"
    "                             [env CDCFLOW_REGISTRY_URL]\n"
    "  --registry-framing confluent|apicurio  magic byte 0 + a 4-byte schema id (Confluent, and\n"
    "                             Apicurio's ccompat) or + an 8-byte global id (Apicurio)\n"
    "                             [env CDCFLOW_REGISTRY_FRAMING, confluent]\n"
    "  --registry-auth basic:USER:PASS|bearer:TOKEN  [env CDCFLOW_REGISTRY_AUTH; give secrets\n"
    "                             that way: `ps` shows flags]\n"
    "  --registry-ca FILE         CA bundle for an https registry   [env CDCFLOW_REGISTRY_CA]\n"
    "                             Schemas are fetched once per id; a registry that does not\n"
    "                             answer is waited out (120 s, then the pipeline stops without\n"
    "                             committing); an unknown id goes to the dead-letter target.\n"
    "\n";

static const char *env_or(const char *name, const char *def);

static void input_from_env(input_opts *in)
{
    in->vfmt = env_or("CDCFLOW_VALUE_FORMAT", "json");
    in->kfmt = env_or("CDCFLOW_KEY_FORMAT", NULL);
    in->url = env_or("CDCFLOW_REGISTRY_URL", NULL);
    in->framing = env_or("CDCFLOW_REGISTRY_FRAMING", "confluent");
    in->auth = env_or("CDCFLOW_REGISTRY_AUTH", NULL);
    in->ca = env_or("CDCFLOW_REGISTRY_CA", NULL);
}

/* One of the flags above: 0 taken, 1 not an input flag. */
static int input_opt(input_opts *in, int c, const char *arg)
{
    switch (c) {
    case O_VALUE_FORMAT: in->vfmt = arg; return 0;
    case O_KEY_FORMAT: in->kfmt = arg; return 0;
    case O_REGISTRY: in->url = arg; return 0;
    case O_REG_FRAMING: in->framing = arg; return 0;
    case O_REG_AUTH: in->auth = arg; return 0;
    case O_REG_CA: in->ca = arg; return 0;
    default: return 1;
    }
}

static int format_parse(const char *what, const char *s, cf_dec_format *out)
{
    if (!strcmp(s, "json"))
        *out = CF_DEC_JSON;
    else if (!strcmp(s, "avro"))
        *out = CF_DEC_AVRO;
    else {
        fprintf(stderr, "cdcflow: %s '%s': expected json or avro\n", what, s);
        return -1;
    }
    return 0;
}

/* Formats and the registry into the decoder's configuration; *reg (free
 * with cf_registry_free after the decoder) is NULL for JSON.  -1 on bad
 * usage, said on stderr. */
static int input_open(const input_opts *in, cf_decoder_config *dc, cf_registry **reg)
{
    cf_registry_config rc = { .url = in->url, .auth = in->auth, .ca_path = in->ca };
    cf_err err;

    *reg = NULL;
    if (format_parse("--value-format", in->vfmt, &dc->value_format) ||
        format_parse("--key-format", in->kfmt ? in->kfmt : in->vfmt, &dc->key_format))
        return -1;
    if (dc->value_format == CF_DEC_JSON && dc->key_format == CF_DEC_JSON)
        return 0;
    if (!in->url) {
        fprintf(stderr, "cdcflow: the avro format needs --schema-registry URL (or CDCFLOW_REGISTRY_URL)\n");
        return -1;
    }
    if (cf_registry_parse_framing(in->framing, &rc.framing, &err) || !(*reg = cf_registry_new(&rc, &err))) {
        fprintf(stderr, "cdcflow: %s\n", err.msg);
        return -1;
    }
    dc->registry = *reg;
    dc->stop = cf_signals_stop_requested;
    return 0;
}

/* ---- end of input formats ---- */

typedef struct list {
    const char *v[MAX_LIST];
    int n;
    char *owned[MAX_LIST];   /* strings we allocated, freed at exit */
    int nowned;
} list;

typedef struct opts {
    bool iceberg;
    const char *bootstrap;
    list topics;
    const char *table_path;                          /* delta */
    const char *catalog, *warehouse, *ns, *table;    /* iceberg */
    const char *checkpoint;
    const char *mode, *deletes;
    list partition_by;
    list primary_key;
    const char *total_orders_from;   /* orders topic of the total_orders enrichment */
    int64_t trigger_ms, max_offsets;
    int64_t target_file_bytes;
    int     checkpoint_interval;
    bool    type_widening;
    cf_delta_deletes delta_deletes;
    bool    delta_timestamp_utc;
    const char *source;
    bool available_now;
    const char *dlq;
    const char *group_id;
    list props;
    list dlq_props;              /* --dlq-kafka-prop: dead-letter producer only */
    int metrics_port;
    const char *log_level;
    const char *pipeline_id;
    size_t max_msg;
    input_opts in;               /* --value-format, --schema-registry, ... */
    size_t max_memory;           /* --max-memory / CDCFLOW_MAX_MEMORY */
    cf_store_config store;       /* AWS_* environment, then --s3-* flags */
    cf_catalog_config cat;       /* ICEBERG_CATALOG_* environment, then --catalog-* flags */
} opts;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

static int list_add(list *l, const char *s, bool own)
{
    if (l->n == MAX_LIST) {
        fprintf(stderr, "cdcflow: too many values (max %d)\n", MAX_LIST);
        return -1;
    }
    l->v[l->n++] = s;
    if (own)
        l->owned[l->nowned++] = (char *)s;
    return 0;
}

/* Length of the next comma-separated item: commas inside (...) or [...]
 * belong to the item, so "bucket(16, id)" stays whole. */
static size_t item_len(const char *p)
{
    size_t n = 0;
    int depth = 0;

    for (; p[n] && (depth > 0 || p[n] != ','); n++) {
        if (p[n] == '(' || p[n] == '[')
            depth++;
        else if ((p[n] == ')' || p[n] == ']') && depth > 0)
            depth--;
    }
    return n;
}

/* "a,b,c" -> three entries. */
static int list_add_csv(list *l, const char *csv)
{
    const char *p = csv;
    while (*p) {
        size_t n = item_len(p);
        if (n) {
            char *s = strndup(p, n);
            if (!s || list_add(l, s, true)) {
                free(s);
                return -1;
            }
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Free the strings the list owns.  The list stays usable, empty. */
static void list_free(list *l)
{
    for (int i = 0; i < l->nowned; i++)
        free(l->owned[i]);
    l->n = l->nowned = 0;
}

/* "10s", "500ms", "1m", "2.5" (seconds) -> milliseconds; -1 if bad. */
static int64_t parse_duration_ms(const char *s)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    if (!strcmp(end, "") || !strcmp(end, "s") || !strncmp(end, "sec", 3))
        return (int64_t)(v * 1000);
    if (!strcmp(end, "ms"))
        return (int64_t)v;
    if (!strcmp(end, "m") || !strncmp(end, "min", 3))
        return (int64_t)(v * 60000);
    return -1;
}

/* "134217728", "128M", "1.5G", "512k" -> bytes; -1 if bad or over 1e15. */
static int64_t parse_bytes(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    int64_t mul = *end == 'k' || *end == 'K' ? 1024 : *end == 'M' ? 1 << 20 : *end == 'G' ? (int64_t)1 << 30 : 1;

    if (end == s)
        return -1;
    if (mul > 1)
        end++;
    if (*end || v < 0 || v * (double)mul > 1e15)
        return -1;
    return (int64_t)(v * (double)mul);
}

/* "key=value" with a librdkafka-like key: 1..PROP_KEY_MAX characters of
 * [A-Za-z0-9._-].  The value is not looked at. */
static bool prop_ok(const char *kv)
{
    const char *eq = strchr(kv, '=');

    if (!eq || eq == kv || eq - kv > PROP_KEY_MAX)
        return false;
    for (const char *p = kv; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
              || *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* Say a property was refused without echoing it: its value may be a
 * password, and a typo (':' for '=') would put it in the log. */
static void prop_refused(const char *where)
{
    fprintf(stderr, "cdcflow: %s: expected KEY=VALUE, KEY a property name of at most %d characters "
            "[A-Za-z0-9._-] (the argument is not shown: it may hold a secret)\n", where, PROP_KEY_MAX);
}

/* CDCFLOW_KAFKA_SECURITY_PROTOCOL=SSL -> "security.protocol=SSL". */
static int env_props(list *props)
{
    size_t plen = strlen(ENV_PROP_PREFIX);

    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, ENV_PROP_PREFIX, plen) || !eq || eq == *e + plen)
            continue;
        size_t klen = (size_t)(eq - *e) - plen;
        char *s = malloc(klen + strlen(eq) + 1);
        if (!s)
            return -1;
        for (size_t i = 0; i < klen; i++) {
            char c = (*e)[plen + i];
            s[i] = c == '_' ? '.' : (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        strcpy(s + klen, eq);
        if (!prop_ok(s)) {
            free(s);
            prop_refused("environment " ENV_PROP_PREFIX "*");
            return -1;
        }
        if (list_add(props, s, true)) {
            free(s);
            return -1;
        }
    }
    return 0;
}

static void usage(FILE *f, bool iceberg)
{
    const char *cmd = iceberg ? "iceberg" : "delta";
    fprintf(f,
            "Usage: cdcflow %s [options]\n"
            "\n"
            "Consume Debezium change events from Kafka and keep %s up to date,\n"
            "exactly once: each commit carries the Kafka offsets it covers and a restart\n"
            "resumes from the offsets read back from the table.\n"
            "\n"
            "Source:\n"
            "  --bootstrap HOSTS          Kafka bootstrap servers   [env KAFKA_BOOTSTRAP_SERVERS, localhost:9092]\n"
            "  --topic T                  topic(s), repeatable or comma list; ^regex allowed\n"
            "                                                       [env KAFKA_TOPIC, postgres.public.customers]\n"
            "  --source kafka|file:PATH   where messages come from (file: one message value per line,\n"
            "                             `null` = tombstone, offset = line number)   [kafka]\n"
            "  --group-id ID              consumer group (lag monitoring only)   [cdcflow-%s]\n"
            "  --kafka-prop KEY=VALUE     any librdkafka property (TLS, SASL, ...), repeatable;\n"
            "                             also from env CDCFLOW_KAFKA_<KEY with _ for .>,\n"
            "                             e.g. CDCFLOW_KAFKA_SECURITY_PROTOCOL=SSL; give secrets\n"
            "                             (CDCFLOW_KAFKA_SASL_PASSWORD=...) that way: `ps` shows flags\n"
            "  --max-message-bytes N      bigger messages go to the dead-letter target   [16777216]\n"
            "  --max-memory N             bound on what batches and Kafka prefetch hold (k/M/G):\n"
            "                             a batch is committed early at an eighth of it, and\n"
            "                             consumption pauses while a full batch waits for the\n"
            "                             commit before it   [env CDCFLOW_MAX_MEMORY, 128M]\n"
            "\n",
            cmd, iceberg ? "an Apache Iceberg v2 table" : "a Delta Lake table (with Change Data Feed)", cmd);
    fputs(INPUT_USAGE, f);
    fputs("Table:\n", f);
    if (iceberg)
        fprintf(f,
                "  --warehouse DIR            where tables live: a directory or s3://BUCKET/PREFIX\n"
                "                                                       [env ICEBERG_WAREHOUSE, /tmp/iceberg-warehouse]\n"
                "  --namespace NS             [env ICEBERG_NAMESPACE, analytics]\n"
                "  --table NAME               [env ICEBERG_TABLE, customers_analytics]\n"
                "                             the table lives in WAREHOUSE/NS/NAME; with {table}, {schema}\n"
                "                             or {topic} in NAME each topic gets its own table (see below)\n"
                "  --catalog NAME             catalog name, for logs   [env ICEBERG_CATALOG, iceberg]\n"
                "  --catalog-uri URI          an Iceberg REST catalog (Polaris, Nessie, Lakekeeper, Glue, ...)\n"
                "                             orders the commits; the table is NS.NAME there, created at\n"
                "                             WAREHOUSE/NS/NAME   [env ICEBERG_CATALOG_URI; none: the\n"
                "                             directory catalog, local disk only]\n"
                "  --catalog-warehouse W      the catalog's warehouse   [env ICEBERG_CATALOG_WAREHOUSE]\n"
                "  --catalog-oauth2-uri URI   OAuth2 token endpoint   [URI/v1/oauth/tokens]\n"
                "  --catalog-scope S          OAuth2 scope   [catalog]\n"
                "                             secrets from the environment only: ICEBERG_CATALOG_CREDENTIAL\n"
                "                             (client_id:client_secret) or ICEBERG_CATALOG_TOKEN\n");
    else
        fprintf(f,
                "  --table-path DIR           [env DELTA_TABLE_PATH, /tmp/delta-cdc/customers]\n"
                "                             with {table}, {schema} or {topic} in the last path part\n"
                "                             each topic gets its own table (see below)\n");
    fprintf(f,
            "  --mode append|upsert       append: one row per event (as SYSTEM.md); upsert: mirror by key   [append]\n"
            "  --deletes hard|soft        upsert: remove deleted rows or mark them   [hard]\n"
            "  --partition-by COL         partition column, repeatable; Iceberg also takes transforms:\n"
            "                             year(c) month(c) day(c) hour(c) bucket[N](c) truncate[W](c)\n"
            "  --target-file-size N       cut data files at about N bytes (k/M/G suffixes)   [0: one file\n"
            "                             per partition per commit]\n"
            "  --primary-key COL[,COL]    key columns of the output instead of the source table's key\n"
            "  --total-orders-from TOPIC  customers table: total_orders = live orders of TOPIC per customer_id,\n"
            "                             kept exactly once with the table (docs/enrichment.md)\n"
            "  --pipeline-id ID           value of _pipeline_id   [postgres_to_%s]\n"
            "\n"
            "Batches:\n"
            "  --trigger-interval D       commit every D (10s, 500ms, 1m)   [1s; SYSTEM.md used 10 s]\n"
            "  --max-offsets-per-trigger N  at most N messages per commit   [100000; SYSTEM.md used 1000]\n"
            "  --available-now            process what is available at start, commit, exit 0\n"
            "  --checkpoint-interval N    Delta: write a Parquet checkpoint every N commits   [10]\n"
            "  --type-widening            Delta: a column that widens (int -> bigint, float -> double,\n"
            "                             a wider decimal) widens the table with the typeWidening\n"
            "                             feature, as delta.enableTypeWidening=true does; readers must\n"
            "                             know the feature (docs/delta.md).  Iceberg always promotes.\n"
            "  --delta-deletes auto|dv|rewrite  Delta upsert: retire rows with deletion vectors (dv;\n"
            "                             turns them on for the table), by rewriting their files\n"
            "                             (rewrite), or as the table says (auto: vectors when\n"
            "                             delta.enableDeletionVectors=true)   [env DELTA_DELETES; auto]\n"
            "  --delta-timestamp ntz|utc  Delta: a new column of PostgreSQL `timestamp` (no zone) as\n"
            "                             timestamp_ntz (timestampNtz feature: reads the same in every\n"
            "                             session time zone, like Iceberg's timestamp), or as a UTC\n"
            "                             timestamp for readers without the feature; existing columns\n"
            "                             keep their type   [env DELTA_TIMESTAMP; ntz]\n"
            "\n"
            "Object storage (table locations s3://BUCKET/PREFIX/...; credentials from the\n"
            "environment only: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN):\n"
            "  --s3-endpoint URL          S3-compatible server (MinIO, Ceph, R2, ...)\n"
            "                                                       [env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL;\n"
            "                                                        AWS: https://s3.REGION.amazonaws.com]\n"
            "  --s3-region R              [env AWS_REGION, AWS_DEFAULT_REGION, us-east-1]\n"
            "  --s3-addressing path|virtual|auto  bucket in the path or in the host name\n"
            "                             [auto: path with --s3-endpoint, else virtual]\n"
            "\n"
            "Operations:\n"
            "  --dlq kafka[:TOPIC]|file:PATH|off  dead-letter target for bad events\n"
            "                             (file:s3://BUCKET/PREFIX: one object per commit under PREFIX)\n"
            "                             [kafka source: kafka (= <topic>.dlq);\n"
            "                              file source: file:CHECKPOINT_LOCATION/dead-letter.jsonl]\n"
            "                             off: a bad event stops the pipeline, batch not committed\n"
            "  --dlq-kafka-prop KEY=VALUE librdkafka property of the dead-letter producer only,\n"
            "                             repeatable (acks, linger.ms, message.max.bytes, ...); of\n"
            "                             --kafka-prop it takes only connection and security ones\n"
            "                             (bootstrap.servers, security.protocol, sasl.*, ssl.*, client.id, ...)\n"
            "  --checkpoint-location DIR  state dir (file-source dead letters); progress itself is\n"
            "                             kept in the table   [env CHECKPOINT_LOCATION,\n"
            "                             /tmp/spark-checkpoints/kafka-to-%s]\n"
            "  --metrics-port N           Prometheus /metrics and /healthz on 127.0.0.1:N, 0 = off   [%d]\n"
            "  --log-level L              error|warn|info|debug (to stderr)   [info]\n"
            "  -h, --help                 this help\n"
            "\n"
            "One table per topic: {topic} is the topic, {table} its last dot-separated part,\n"
            "{schema} the part before (Debezium names topics PREFIX.SCHEMA.TABLE).  Values are\n"
            "cut to [A-Za-z0-9_-]; tables open on their first event; on start each table\n"
            "found under the template's directory gives the offsets of its topics.\n"
            "\n"
            "SIGTERM/SIGINT finish and commit the batch in flight, then exit 0; a second\n"
            "signal exits at once.  Exit status: 0 clean stop, 1 error, 2 bad usage (also a\n"
            "configuration the data refutes, such as --mode upsert on events without a key).\n",
            cmd, cmd, iceberg ? 9465 : 9464);
}

enum {
    O_BOOTSTRAP = 256, O_TOPIC, O_TABLE_PATH, O_WAREHOUSE, O_NAMESPACE, O_TABLE, O_CATALOG,
    O_MODE, O_DELETES, O_PARTITION_BY, O_TRIGGER, O_MAX_OFFSETS, O_SOURCE, O_AVAILABLE_NOW,
    O_DLQ, O_GROUP_ID, O_KAFKA_PROP, O_METRICS_PORT, O_LOG_LEVEL, O_PIPELINE_ID, O_CHECKPOINT,
    O_MAX_MSG, O_PRIMARY_KEY, O_TARGET_FILE, O_CKPT_INTERVAL, O_DLQ_KAFKA_PROP, O_TYPE_WIDENING, O_DELTA_DELETES, O_DELTA_TIMESTAMP,
    O_S3_ENDPOINT, O_S3_REGION, O_S3_ADDRESSING, O_CAT_URI, O_CAT_WAREHOUSE, O_CAT_OAUTH2, O_CAT_SCOPE,
    O_TOTAL_ORDERS, O_MAX_MEMORY,
};

static int parse_delta_timestamp(const char *v, bool *utc)
{
    if (strcmp(v, "ntz") && strcmp(v, "utc"))
        return -1;
    *utc = !strcmp(v, "utc");
    return 0;
}

/* The memory bound: at least 16 MiB (librdkafka's and the batches' least
 * shares), "128M" style. */
#define MIN_MAX_MEMORY ((int64_t)16 << 20)

static int set_max_memory(opts *o, const char *v, const char *where)
{
    int64_t n = parse_bytes(v);

    if (n < MIN_MAX_MEMORY) {
        fprintf(stderr, "cdcflow: %s '%s': expected bytes of at least 16M, e.g. 128M or 1G\n", where, v);
        return -1;
    }
    o->max_memory = (size_t)n;
    return 0;
}

static int parse_delta_deletes(const char *v, cf_delta_deletes *out)
{
    if (!strcmp(v, "auto"))
        *out = CF_DELTA_DELETES_AUTO;
    else if (!strcmp(v, "dv"))
        *out = CF_DELTA_DELETES_DV;
    else if (!strcmp(v, "rewrite"))
        *out = CF_DELTA_DELETES_REWRITE;
    else
        return -1;
    return 0;
}

static int parse(opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        { "bootstrap", required_argument, 0, O_BOOTSTRAP },
        { "topic", required_argument, 0, O_TOPIC },
        { "table-path", required_argument, 0, O_TABLE_PATH },
        { "warehouse", required_argument, 0, O_WAREHOUSE },
        { "namespace", required_argument, 0, O_NAMESPACE },
        { "table", required_argument, 0, O_TABLE },
        { "catalog", required_argument, 0, O_CATALOG },
        { "mode", required_argument, 0, O_MODE },
        { "deletes", required_argument, 0, O_DELETES },
        { "partition-by", required_argument, 0, O_PARTITION_BY },
        { "trigger-interval", required_argument, 0, O_TRIGGER },
        { "max-offsets-per-trigger", required_argument, 0, O_MAX_OFFSETS },
        { "source", required_argument, 0, O_SOURCE },
        { "available-now", no_argument, 0, O_AVAILABLE_NOW },
        { "dlq", required_argument, 0, O_DLQ },
        { "group-id", required_argument, 0, O_GROUP_ID },
        { "kafka-prop", required_argument, 0, O_KAFKA_PROP },
        { "dlq-kafka-prop", required_argument, 0, O_DLQ_KAFKA_PROP },
        { "metrics-port", required_argument, 0, O_METRICS_PORT },
        { "log-level", required_argument, 0, O_LOG_LEVEL },
        { "pipeline-id", required_argument, 0, O_PIPELINE_ID },
        { "checkpoint-location", required_argument, 0, O_CHECKPOINT },
        { "max-message-bytes", required_argument, 0, O_MAX_MSG },
        { "primary-key", required_argument, 0, O_PRIMARY_KEY },
        { "target-file-size", required_argument, 0, O_TARGET_FILE },
        { "checkpoint-interval", required_argument, 0, O_CKPT_INTERVAL },
        { "type-widening", no_argument, 0, O_TYPE_WIDENING },
        { "delta-deletes", required_argument, 0, O_DELTA_DELETES },
        { "delta-timestamp", required_argument, 0, O_DELTA_TIMESTAMP },
        { "s3-endpoint", required_argument, 0, O_S3_ENDPOINT },
        { "s3-region", required_argument, 0, O_S3_REGION },
        { "s3-addressing", required_argument, 0, O_S3_ADDRESSING },
        { "catalog-uri", required_argument, 0, O_CAT_URI },
        { "catalog-warehouse", required_argument, 0, O_CAT_WAREHOUSE },
        { "catalog-oauth2-uri", required_argument, 0, O_CAT_OAUTH2 },
        { "catalog-scope", required_argument, 0, O_CAT_SCOPE },
        INPUT_LOPTS
        { "total-orders-from", required_argument, 0, O_TOTAL_ORDERS },
        { "max-memory", required_argument, 0, O_MAX_MEMORY },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    bool topic_flag = false;
    int c;
    char *end;

    optind = 0;     /* 0: glibc starts afresh on a new argv (cdcflow run parses many) */
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_BOOTSTRAP: o->bootstrap = optarg; break;
        case O_TOPIC:
            if (!topic_flag) {
                list_free(&o->topics);      /* flags replace the environment's topic */
                topic_flag = true;
            }
            if (list_add_csv(&o->topics, optarg))
                return -1;
            break;
        case O_TABLE_PATH: o->table_path = optarg; break;
        case O_WAREHOUSE: o->warehouse = optarg; break;
        case O_NAMESPACE: o->ns = optarg; break;
        case O_TABLE: o->table = optarg; break;
        case O_CATALOG: o->catalog = optarg; break;
        case O_MODE: o->mode = optarg; break;
        case O_DELETES: o->deletes = optarg; break;
        case O_PARTITION_BY:
            if (list_add_csv(&o->partition_by, optarg))
                return -1;
            break;
        case O_PRIMARY_KEY:
            if (list_add_csv(&o->primary_key, optarg))
                return -1;
            break;
        case O_TRIGGER:
            if ((o->trigger_ms = parse_duration_ms(optarg)) <= 0) {
                fprintf(stderr, "cdcflow: --trigger-interval '%s': expected e.g. 10s, 500ms, 1m\n", optarg);
                return -1;
            }
            break;
        case O_MAX_OFFSETS:
            o->max_offsets = strtoll(optarg, &end, 10);
            if (*end || o->max_offsets <= 0) {
                fprintf(stderr, "cdcflow: --max-offsets-per-trigger '%s': expected a positive number\n", optarg);
                return -1;
            }
            break;
        case O_TARGET_FILE:
            if ((o->target_file_bytes = parse_bytes(optarg)) < 0) {
                fprintf(stderr, "cdcflow: --target-file-size '%s': expected bytes, e.g. 134217728 or 128M\n", optarg);
                return -1;
            }
            break;
        case O_CKPT_INTERVAL:
            o->checkpoint_interval = (int)strtol(optarg, &end, 10);
            if (*end || o->checkpoint_interval <= 0) {
                fprintf(stderr, "cdcflow: --checkpoint-interval '%s': expected a positive number\n", optarg);
                return -1;
            }
            break;
        case O_TYPE_WIDENING: o->type_widening = true; break;
        case O_DELTA_DELETES:
            if (parse_delta_deletes(optarg, &o->delta_deletes)) {
                fprintf(stderr, "cdcflow: --delta-deletes '%s': expected auto, dv or rewrite\n", optarg);
                return -1;
            }
            break;
        case O_DELTA_TIMESTAMP:
            if (parse_delta_timestamp(optarg, &o->delta_timestamp_utc)) {
                fprintf(stderr, "cdcflow: --delta-timestamp '%s': expected ntz or utc\n", optarg);
                return -1;
            }
            break;
        case O_S3_ENDPOINT: o->store.endpoint = optarg; break;
        case O_CAT_URI: o->cat.uri = optarg; break;
        case O_CAT_WAREHOUSE: o->cat.warehouse = optarg; break;
        case O_CAT_OAUTH2: o->cat.oauth2_server_uri = optarg; break;
        case O_CAT_SCOPE: o->cat.scope = optarg; break;
        case O_TOTAL_ORDERS: o->total_orders_from = optarg; break;
        case O_S3_REGION: o->store.region = optarg; break;
        case O_S3_ADDRESSING:
            if (!strcmp(optarg, "path"))
                o->store.path_style = 1;
            else if (!strcmp(optarg, "virtual"))
                o->store.path_style = 0;
            else if (!strcmp(optarg, "auto"))
                o->store.path_style = -1;
            else {
                fprintf(stderr, "cdcflow: --s3-addressing '%s': expected path, virtual or auto\n", optarg);
                return -1;
            }
            break;
        case O_SOURCE: o->source = optarg; break;
        case O_AVAILABLE_NOW: o->available_now = true; break;
        case O_DLQ: o->dlq = optarg; break;
        case O_GROUP_ID: o->group_id = optarg; break;
        case O_KAFKA_PROP:
            if (!prop_ok(optarg)) {
                prop_refused("--kafka-prop");
                return -1;
            }
            if (list_add(&o->props, optarg, false))
                return -1;
            break;
        case O_DLQ_KAFKA_PROP:
            if (!prop_ok(optarg)) {
                prop_refused("--dlq-kafka-prop");
                return -1;
            }
            if (list_add(&o->dlq_props, optarg, false))
                return -1;
            break;
        case O_METRICS_PORT:
            o->metrics_port = (int)strtol(optarg, &end, 10);
            if (*end || o->metrics_port < 0 || o->metrics_port > 65535) {
                fprintf(stderr, "cdcflow: --metrics-port '%s': expected 0..65535\n", optarg);
                return -1;
            }
            break;
        case O_LOG_LEVEL: o->log_level = optarg; break;
        case O_PIPELINE_ID: o->pipeline_id = optarg; break;
        case O_CHECKPOINT: o->checkpoint = optarg; break;
        case O_MAX_MSG:
            o->max_msg = (size_t)strtoull(optarg, &end, 10);
            if (*end || !o->max_msg) {
                fprintf(stderr, "cdcflow: --max-message-bytes '%s': expected a positive number\n", optarg);
                return -1;
            }
            break;
        /* memory bound */
        case O_MAX_MEMORY:
            if (set_max_memory(o, optarg, "--max-memory"))
                return -1;
            break;
        case 'h': usage(stdout, o->iceberg); return 1;
        default:
            if (input_opt(&o->in, c, optarg) == 0)
                break;
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cdcflow: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* One pipeline: options parsed, every stage open, ready to run. */
typedef struct job {
    opts          o;
    cf_source    *src;
    cf_sink      *sink;
    cf_decoder   *dec;
    cf_registry  *reg;                /* Avro input: the decoder's schema registry */
    cf_transform *xf;
    cf_enrich    *enrich;             /* --total-orders-from */
    cf_dlq       *dlq;
    cf_metrics   *met;
    char          location[4096], table_name[512], dlq_default[4200], name_prefix[600];
    cf_pipeline_route route;          /* used when the location is a template */
    cf_pipeline_table tables[RUN_MAX_TABLES];   /* `table` lines of a run file */
    list          tparts[RUN_MAX_TABLES], tpks[RUN_MAX_TABLES];
    int           ntables;
    cf_pipeline_config pc;
    cf_pipeline_stats  st;
    cf_err        err;
    int           rc;
} job;

static void job_free(job *j)
{
    if (!j)
        return;
    cf_source_close(j->src);
    cf_dlq_close(j->dlq);
    cf_sink_close(j->sink);
    cf_transform_free(j->xf);
    cf_enrich_free(j->enrich);
    cf_decoder_free(j->dec);
    cf_registry_free(j->reg);
    cf_metrics_free(j->met);
    list_free(&j->o.topics);
    list_free(&j->o.partition_by);
    list_free(&j->o.primary_key);
    list_free(&j->o.props);
    list_free(&j->o.dlq_props);
    for (int i = 0; i < j->ntables; i++) {
        list_free(&j->tparts[i]);
        list_free(&j->tpks[i]);
    }
    free(j);
}

/* Parse argv (argv[0] = "delta" or "iceberg") over the environment's
 * defaults and open every stage.  Returns the job (free with job_free), or
 * NULL with *exit_code set: 0 after --help, 2 on bad usage, 1 on failure. */
static job *job_prepare(int argc, char **argv, bool iceberg, bool set_log_level, int *exit_code)
{
    job *j = calloc(1, sizeof *j);
    opts *o;
    int lvl;

    *exit_code = 1;
    if (!j) {
        fprintf(stderr, "cdcflow: out of memory\n");
        return NULL;
    }
    o = &j->o;
    o->iceberg = iceberg;
    o->bootstrap = env_or("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092");
    o->table_path = env_or("DELTA_TABLE_PATH", "/tmp/delta-cdc/customers");
    o->catalog = env_or("ICEBERG_CATALOG", "iceberg");
    o->warehouse = env_or("ICEBERG_WAREHOUSE", "/tmp/iceberg-warehouse");
    o->ns = env_or("ICEBERG_NAMESPACE", "analytics");
    cf_store_config_from_env(&o->store);
    cf_catalog_config_from_env(&o->cat);
    input_from_env(&o->in);
    o->table = env_or("ICEBERG_TABLE", "customers_analytics");
    o->checkpoint = env_or("CHECKPOINT_LOCATION", iceberg ? "/tmp/spark-checkpoints/kafka-to-iceberg"
                                                          : "/tmp/spark-checkpoints/kafka-to-delta");
    o->mode = "append";
    o->deletes = "hard";
    if (getenv("DELTA_DELETES") && parse_delta_deletes(getenv("DELTA_DELETES"), &o->delta_deletes)) {
        fprintf(stderr, "cdcflow: DELTA_DELETES='%s': expected auto, dv or rewrite\n", getenv("DELTA_DELETES"));
        *exit_code = 2;
        free(j);
        return NULL;
    }
    if (getenv("DELTA_TIMESTAMP") && parse_delta_timestamp(getenv("DELTA_TIMESTAMP"), &o->delta_timestamp_utc)) {
        fprintf(stderr, "cdcflow: DELTA_TIMESTAMP='%s': expected ntz or utc\n", getenv("DELTA_TIMESTAMP"));
        *exit_code = 2;
        free(j);
        return NULL;
    }
    o->source = "kafka";
    o->group_id = iceberg ? "cdcflow-iceberg" : "cdcflow-delta";
    o->metrics_port = iceberg ? 9465 : 9464;
    o->log_level = "info";
    o->pipeline_id = iceberg ? "postgres_to_iceberg" : "postgres_to_delta";
    if (list_add_csv(&o->topics, env_or("KAFKA_TOPIC", "postgres.public.customers")) || env_props(&o->props))
        goto usage_fail;
    o->max_memory = CF_PIPELINE_DEFAULT_MAX_MEMORY;
    if (getenv("CDCFLOW_MAX_MEMORY") && set_max_memory(o, getenv("CDCFLOW_MAX_MEMORY"), "CDCFLOW_MAX_MEMORY"))
        goto usage_fail;
    switch (parse(o, argc, argv)) {
    case 0: break;
    case 1: *exit_code = 0; goto fail;
    default: goto usage_fail;
    }
    if ((lvl = cf_log_level_parse(o->log_level)) < 0) {
        fprintf(stderr, "cdcflow: --log-level '%s': expected error, warn, info or debug\n", o->log_level);
        goto usage_fail;
    }
    if (set_log_level)
        cf_log_set_level((cf_log_level)lvl);
    if (strcmp(o->mode, "append") && strcmp(o->mode, "upsert")) {
        fprintf(stderr, "cdcflow: --mode '%s': expected append or upsert\n", o->mode);
        goto usage_fail;
    }
    if (strcmp(o->deletes, "hard") && strcmp(o->deletes, "soft")) {
        fprintf(stderr, "cdcflow: --deletes '%s': expected hard or soft\n", o->deletes);
        goto usage_fail;
    }
    if (!o->topics.n) {
        fprintf(stderr, "cdcflow: no topic (set KAFKA_TOPIC or --topic)\n");
        goto usage_fail;
    }
    if (o->total_orders_from) {
        /* The customers pipeline reads the orders topic too: its offsets
         * are committed with the customers table, beside the state. */
        if (!*o->total_orders_from || o->total_orders_from[0] == '^') {
            fprintf(stderr, "cdcflow: --total-orders-from '%s': expected a topic name\n", o->total_orders_from);
            goto usage_fail;
        }
        if (list_add(&o->topics, o->total_orders_from, false))
            goto usage_fail;
    }
    if (iceberg) {
        snprintf(j->location, sizeof j->location, "%s/%s/%s", o->warehouse, o->ns, o->table);
        snprintf(j->table_name, sizeof j->table_name, "%s.%s.%s", o->catalog, o->ns, o->table);
    } else {
        const char *b = strrchr(o->table_path, '/');
        snprintf(j->location, sizeof j->location, "%s", o->table_path);
        snprintf(j->table_name, sizeof j->table_name, "%s", b && b[1] ? b + 1 : o->table_path);
    }
    if (!o->dlq) {
        if (!strncmp(o->source, "file:", 5)) {
            if (cf_fs_mkdirs(o->checkpoint, NULL)) {
                fprintf(stderr, "cdcflow: cannot create %s: %s\n", o->checkpoint, strerror(errno));
                goto fail;
            }
            snprintf(j->dlq_default, sizeof j->dlq_default, "file:%s/dead-letter.jsonl", o->checkpoint);
            o->dlq = j->dlq_default;
        } else {
            o->dlq = "kafka";
        }
    }
    {
        cf_sink_config sc = {
            .kind = iceberg ? "iceberg" : "delta",
            .location = j->location,
            .table_name = j->table_name,
            .mode = strcmp(o->mode, "upsert") ? CF_MODE_APPEND : CF_MODE_UPSERT,
            .soft_deletes = !strcmp(o->deletes, "soft"),
            .partition_by = o->partition_by.v,
            .npartition_by = o->partition_by.n,
            /* Fixed, so that renaming the pipeline does not lose its place. */
            .app_id = "cdcflow",
            .checkpoint_interval = o->checkpoint_interval,
            .codec = CF_CODEC_ZSTD,
            .target_file_bytes = o->target_file_bytes,
            .type_widening = o->type_widening,
            .delta_deletes = o->delta_deletes,
            .delta_timestamp_utc = o->delta_timestamp_utc,
            .store = &o->store,
            .catalog = &o->cat,
        };
        cf_source_config srcc = {
            .spec = o->source,
            .bootstrap = o->bootstrap,
            .topics = o->topics.v,
            .ntopics = o->topics.n,
            .group_id = o->group_id,
            .props = o->props.v,
            .nprops = o->props.n,
            .max_message_bytes = o->max_msg,
            .max_memory = o->max_memory,
        };
        cf_dlq_config dc = {
            .spec = o->dlq,
            .bootstrap = o->bootstrap,
            .props = o->props.v,
            .nprops = o->props.n,
            .producer_props = o->dlq_props.v,
            .nproducer_props = o->dlq_props.n,
            .store = &o->store,
        };
        cf_decoder_config decc = { .max_message_bytes = o->max_msg };
        cf_transform_config xc = { .kind = CF_XF_AUTO, .pipeline_id = o->pipeline_id };
        bool routed = cf_route_is_template(j->location);
        cf_enrich_config ec = {
            .orders_topic = o->total_orders_from,
            .location = j->location,
            .store = &o->store,
            .mode = sc.mode,
        };

        if (input_open(&o->in, &decc, &j->reg))
            goto usage_fail;

        if (routed && o->total_orders_from) {
            fprintf(stderr, "cdcflow: --total-orders-from needs one fixed table, not a location template\n");
            goto usage_fail;
        }
        if (routed) {
            /* One table per topic, opened as its topics show up. */
            if (cf_route_check(j->location, &j->err)) {
                fprintf(stderr, "cdcflow: %s\n", j->err.msg);
                goto usage_fail;
            }
            if (iceberg)
                snprintf(j->name_prefix, sizeof j->name_prefix, "%s.%s.", o->catalog, o->ns);
            j->route = (cf_pipeline_route){
                .location_tmpl = j->location,
                .name_prefix = j->name_prefix,
                .sink = sc,
                .transform = xc,
            };
            j->route.sink.location = NULL;
            j->route.sink.table_name = NULL;
        }
        if ((!routed && !(j->sink = cf_sink_open(&sc, &j->err))) || !(j->src = cf_source_open(&srcc, &j->err))
            || !(j->dlq = cf_dlq_open(&dc, &j->err)) || !(j->dec = cf_decoder_new(&decc, &j->err))
            || (!routed && !(j->xf = cf_transform_new(&xc, &j->err)))
            || (o->total_orders_from && !(j->enrich = cf_enrich_new(&ec, &j->err))))
            goto open_fail;
        if (o->metrics_port) {
            double trig = (o->trigger_ms ? o->trigger_ms : CF_PIPELINE_DEFAULT_TRIGGER_MS) / 1e3;
            if (!(j->met = cf_metrics_new(j->table_name, o->pipeline_id))) {
                cf_err_set(&j->err, CF_E_NOMEM, "out of memory");
                goto open_fail;
            }
            /* Healthy means committing within a few triggers when input waits. */
            cf_metrics_set_health_limits(j->met, trig * 10 > 120 ? trig * 10 : 120, 60 + trig);
            if (cf_metrics_serve(j->met, o->metrics_port, &j->err))
                goto open_fail;
        }
        j->pc = (cf_pipeline_config){
            .source = j->src,
            .sink = j->sink,
            .decoder = j->dec,
            .transform = j->xf,
            .route = routed ? &j->route : NULL,
            .enrich = j->enrich,
            .dlq = j->dlq,
            .metrics = j->met,
            .table_name = j->table_name,
            .mode = sc.mode,
            .primary_key = o->primary_key.v,
            .nprimary_key = o->primary_key.n,
            .trigger_ms = o->trigger_ms,
            .max_offsets = o->max_offsets,
            .max_message_bytes = o->max_msg,
            .max_memory = o->max_memory,
            .available_now = o->available_now,
        };
    }
    *exit_code = 0;
    return j;
open_fail:
    cf_log(CF_LOG_ERROR, "cdcflow", "%s: %s", cf_code_name(j->err.code), j->err.msg);
    goto fail;
usage_fail:
    *exit_code = 2;
fail:
    job_free(j);
    return NULL;
}

/* Run the pipeline to its end; returns the exit code. */
static int job_execute(job *j)
{
    const opts *o = &j->o;

    cf_log(CF_LOG_INFO, "cdcflow", "%s: %s (%s) -> %s %s, mode %s, dead-letter %s%s", o->pipeline_id,
           o->source, o->topics.v[0], o->iceberg ? "iceberg" : "delta", j->location, o->mode,
           cf_dlq_describe(j->dlq), j->met ? "" : ", metrics off");
    if (j->met)
        cf_log(CF_LOG_INFO, "cdcflow", "%s: metrics on http://127.0.0.1:%d/metrics", o->pipeline_id,
               cf_metrics_port(j->met));
    if (cf_pipeline_run(&j->pc, &j->st, &j->err)) {
        cf_log(CF_LOG_ERROR, "cdcflow", "%s: %s: %s", o->pipeline_id, cf_code_name(j->err.code), j->err.msg);
        /* A configuration the data refutes (upsert without a key, a key or
         * partition column that is not a column) is a usage error too. */
        return j->err.code == CF_E_ARG ? 2 : 1;
    }
    cf_log(CF_LOG_INFO, "cdcflow", "%s: stopped cleanly: %llu messages, %llu events, %llu dead-letter, "
           "%llu commits, %d table%s, last table version %lld", o->pipeline_id,
           (unsigned long long)j->st.messages, (unsigned long long)j->st.events,
           (unsigned long long)j->st.dead_letter, (unsigned long long)j->st.batches, j->st.tables,
           j->st.tables == 1 ? "" : "s", (long long)j->st.version);
    return 0;
}

static int run(int argc, char **argv, bool iceberg)
{
    int rc;
    job *j;

    /* Before the table opens: opening reads the table (on object storage,
     * seconds for a large one) and a SIGTERM meanwhile must still end in a
     * clean stop, not the default action. */
    cf_signals_install();
    if (!(j = job_prepare(argc, argv, iceberg, true, &rc)))
        return rc;
    j->pc.progress = isatty(STDERR_FILENO);
    rc = job_execute(j);
    job_free(j);
    return rc;
}

int cf_cmd_delta(int argc, char **argv)
{
    return run(argc, argv, false);
}

int cf_cmd_iceberg(int argc, char **argv)
{
    return run(argc, argv, true);
}

/* ---- cdcflow run FILE: several pipelines in one process ---- */

#define RUN_MAX_JOBS 32
#define RUN_MAX_ARGS 128
#define RUN_MAX_LINE 8192

typedef struct line_args {
    int   argc;
    char *argv[RUN_MAX_ARGS + 1];
} line_args;

/* Double the array of kept lines (*cap grows).  Returns the new array, or
 * NULL when out of memory (the old one is then still valid, owned by the
 * caller). */
static line_args **grow_lines(line_args **lines, int *cap)
{
    int ncap = *cap ? *cap * 2 : 64;
    line_args **n = realloc(lines, (size_t)ncap * sizeof *n);

    if (n)
        *cap = ncap;
    return n;
}

/* Split a line into words: blanks separate, '...' and "..." quote (no
 * escapes), # starts a comment.  Returns the number of words, -1 if bad. */
static int split_line(const char *line, line_args *la)
{
    const char *p = line;

    la->argc = 0;
    for (;;) {
        char word[RUN_MAX_LINE];
        size_t n = 0;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        if (!*p || *p == '#')
            break;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                while (*p && *p != q && n < sizeof word - 1)
                    word[n++] = *p++;
                if (*p != q)
                    return -1;
                p++;
            } else if (n < sizeof word - 1) {
                word[n++] = *p++;
            } else {
                return -1;
            }
        }
        word[n] = '\0';
        if (la->argc == RUN_MAX_ARGS || !(la->argv[la->argc] = strdup(word)))
            return -1;
        la->argc++;
    }
    la->argv[la->argc] = NULL;
    return la->argc;
}

static void run_usage(FILE *f)
{
    fprintf(f,
            "Usage: cdcflow run FILE\n"
            "\n"
            "Run several pipelines in one process, one per line of FILE:\n"
            "\n"
            "  # table               options, exactly as for `cdcflow delta` / `cdcflow iceberg`\n"
            "  delta   --topic postgres.public.customers --table-path /data/customers --metrics-port 9464\n"
            "  delta   --topic postgres.public.orders --table-path /data/orders --mode upsert --metrics-port 9466\n"
            "  iceberg --topic postgres.public.products --table products --metrics-port 9465\n"
            "\n"
            "One line can serve many topics, one table each, with a template; `table`\n"
            "lines below it override options for one of its tables (by resolved name):\n"
            "\n"
            "  delta --topic '^postgres\\.public\\..*' --table-path /data/delta/{table} --mode upsert\n"
            "  table orders   --partition-by status --primary-key order_id\n"
            "  table products --mode append\n"
            "\n"
            "A table line takes --mode, --deletes, --partition-by, --primary-key.\n"
            "Words are separated by blanks, '...' and \"...\" quote, # starts a comment.  The\n"
            "environment variables of the single commands apply to every line; give each\n"
            "line its own --metrics-port (or 0) and, for different tables, its own\n"
            "--group-id or table location.  SIGTERM/SIGINT stop every pipeline gracefully;\n"
            "if one fails the others are stopped too, gracefully (that is not a signal: the\n"
            "first SIGTERM after it still lets them commit, a second one exits at once).\n"
            "--log-level is taken from the first line.\n"
            "Exit status: 0 all stopped cleanly, 1 a pipeline failed, 2 bad usage (FILE:LINE said).\n");
}

/* "table NAME --mode M ..." after a templated pipeline line.  Returns 0, or
 * -1 after printing FILE:LINE and the reason. */
static int table_line(job *j, const line_args *la, const char *file, int lineno)
{
    cf_pipeline_table *t;
    int i = j->ntables;
    char clean[CF_ROUTE_VALUE_MAX + 1];

    if (!j->route.location_tmpl) {
        fprintf(stderr, "cdcflow: run: %s:%d: a table line belongs under a pipeline line whose table "
                "location has a {table}, {schema} or {topic} template\n", file, lineno);
        return -1;
    }
    if (la->argc < 2 || la->argv[1][0] == '-') {
        fprintf(stderr, "cdcflow: run: %s:%d: expected table NAME [options]\n", file, lineno);
        return -1;
    }
    cf_route_sanitize(la->argv[1], clean, sizeof clean);
    if (strcmp(clean, la->argv[1])) {
        fprintf(stderr, "cdcflow: run: %s:%d: table name '%s' can never match: resolved names use only "
                "A-Z a-z 0-9 _ - (did you mean '%s'?)\n", file, lineno, la->argv[1], clean);
        return -1;
    }
    for (int k = 0; k < j->ntables; k++)
        if (!strcmp(j->tables[k].name, la->argv[1])) {
            fprintf(stderr, "cdcflow: run: %s:%d: table '%s' already has a line\n", file, lineno, la->argv[1]);
            return -1;
        }
    if (i == RUN_MAX_TABLES) {
        fprintf(stderr, "cdcflow: run: %s:%d: more than %d table lines for one pipeline\n", file, lineno,
                RUN_MAX_TABLES);
        return -1;
    }
    t = &j->tables[i];
    memset(t, 0, sizeof *t);
    t->name = la->argv[1];
    j->ntables++;
    for (int k = 2; k < la->argc; k += 2) {
        const char *opt = la->argv[k], *val = k + 1 < la->argc ? la->argv[k + 1] : NULL;
        if (!val) {
            fprintf(stderr, "cdcflow: run: %s:%d: %s needs a value\n", file, lineno, opt);
            return -1;
        }
        if (!strcmp(opt, "--mode")) {
            if (strcmp(val, "append") && strcmp(val, "upsert")) {
                fprintf(stderr, "cdcflow: run: %s:%d: --mode '%s': expected append or upsert\n", file, lineno, val);
                return -1;
            }
            t->set_mode = true;
            t->mode = strcmp(val, "upsert") ? CF_MODE_APPEND : CF_MODE_UPSERT;
        } else if (!strcmp(opt, "--deletes")) {
            if (strcmp(val, "hard") && strcmp(val, "soft")) {
                fprintf(stderr, "cdcflow: run: %s:%d: --deletes '%s': expected hard or soft\n", file, lineno, val);
                return -1;
            }
            t->set_deletes = true;
            t->soft_deletes = !strcmp(val, "soft");
        } else if (!strcmp(opt, "--partition-by")) {
            if (list_add_csv(&j->tparts[i], val))
                return -1;
            t->set_partition_by = true;
        } else if (!strcmp(opt, "--primary-key")) {
            if (list_add_csv(&j->tpks[i], val) || !j->tpks[i].n) {
                fprintf(stderr, "cdcflow: run: %s:%d: --primary-key needs a column\n", file, lineno);
                return -1;
            }
        } else {
            fprintf(stderr, "cdcflow: run: %s:%d: table line: unknown option '%s' "
                    "(expected --mode, --deletes, --partition-by, --primary-key)\n", file, lineno, opt);
            return -1;
        }
    }
    t->partition_by = j->tparts[i].v;
    t->npartition_by = j->tparts[i].n;
    t->primary_key = j->tpks[i].v;
    t->nprimary_key = j->tpks[i].n;
    j->route.tables = j->tables;
    j->route.ntables = j->ntables;
    return 0;
}

typedef struct run_slot {
    job      *j;
    pthread_t th;
    int       rc;
} run_slot;

static void *run_thread(void *opaque)
{
    run_slot *r = opaque;
    r->rc = job_execute(r->j);
    if (r->rc)
        cf_signals_request_stop();      /* one down: stop the others cleanly */
    return NULL;
}

/* Free a run file's kept lines.  NULL-safe. */
static void free_lines(line_args **lines, int nlines)
{
    for (int i = 0; i < nlines; i++) {
        for (int k = 0; k < lines[i]->argc; k++)
            free(lines[i]->argv[k]);
        free(lines[i]);
    }
    free(lines);
}

int cf_cmd_run(int argc, char **argv)
{
    /* Pipeline and table lines are kept to the end (option strings point
     * into them); blank and comment lines are not, and are not counted. */
    line_args **lines = NULL;
    run_slot slots[RUN_MAX_JOBS];
    int nlines = 0, caplines = 0, njobs = 0, rc = 0, lineno = 0;
    char buf[RUN_MAX_LINE];
    FILE *f;

    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        run_usage(stdout);
        return 0;
    }
    if (argc != 2) {
        run_usage(stderr);
        return 2;
    }
    if (!(f = fopen(argv[1], "r"))) {
        fprintf(stderr, "cdcflow: run: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    memset(slots, 0, sizeof slots);
    cf_signals_install();        /* before the tables open, as in run() */
    while (fgets(buf, sizeof buf, f)) {
        line_args *la = malloc(sizeof *la), **grown = lines;
        int n;

        lineno++;
        if (la && nlines == caplines)
            grown = grow_lines(lines, &caplines);
        if (!la || !grown) {
            free(la);
            fprintf(stderr, "cdcflow: run: out of memory\n");
            rc = 1;
            break;
        }
        lines = grown;
        lines[nlines++] = la;           /* freed with the others from here on */
        if ((n = split_line(buf, la)) < 0) {
            fprintf(stderr, "cdcflow: run: %s:%d: unbalanced quote or line too long\n", argv[1], lineno);
            rc = 2;
            break;
        }
        if (n == 0) {
            free(la);
            nlines--;
            continue;
        }
        if (!strcmp(la->argv[0], "table")) {
            if (!njobs) {
                fprintf(stderr, "cdcflow: run: %s:%d: a table line needs a pipeline line above it\n", argv[1],
                        lineno);
                rc = 2;
                break;
            }
            if (table_line(slots[njobs - 1].j, la, argv[1], lineno)) {
                rc = 2;
                break;
            }
            continue;
        }
        if (strcmp(la->argv[0], "delta") && strcmp(la->argv[0], "iceberg")) {
            fprintf(stderr, "cdcflow: run: %s:%d: expected delta, iceberg or table, got '%s'\n", argv[1], lineno,
                    la->argv[0]);
            rc = 2;
            break;
        }
        if (njobs == RUN_MAX_JOBS) {
            fprintf(stderr, "cdcflow: run: %s:%d: more than %d pipelines\n", argv[1], lineno, RUN_MAX_JOBS);
            rc = 2;
            break;
        }
        slots[njobs].j = job_prepare(la->argc, la->argv, !strcmp(la->argv[0], "iceberg"), njobs == 0, &rc);
        if (!slots[njobs].j) {
            fprintf(stderr, "cdcflow: run: %s:%d: pipeline not started\n", argv[1], lineno);
            if (!rc)
                rc = 2;     /* --help inside a file is a mistake */
            break;
        }
        njobs++;
    }
    fclose(f);
    if (!rc && !njobs) {
        fprintf(stderr, "cdcflow: run: %s: no pipeline\n", argv[1]);
        rc = 2;
    }
    if (!rc) {
        for (int i = 0; i < njobs; i++)
            if (pthread_create(&slots[i].th, NULL, run_thread, &slots[i])) {
                fprintf(stderr, "cdcflow: run: cannot start a thread\n");
                cf_signals_request_stop();
                njobs = i;
                rc = 1;
                break;
            }
        for (int i = 0; i < njobs; i++) {
            pthread_join(slots[i].th, NULL);
            if (slots[i].rc)
                rc = 1;
        }
    }
    for (int i = 0; i < RUN_MAX_JOBS; i++)
        job_free(slots[i].j);
    free_lines(lines, nlines);
    return rc;
}
