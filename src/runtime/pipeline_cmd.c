/* pipeline_cmd.c - `cdcflow delta` and `cdcflow iceberg`: the two Spark jobs
 * of SYSTEM.md as one process each.  Same environment variables and
 * defaults; flags override them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "runtime/dlq.h"
#include "runtime/metrics.h"
#include "runtime/pipeline.h"
#include "runtime/signals.h"
#include "util/log.h"

extern char **environ;

#define MAX_LIST 64
#define ENV_PROP_PREFIX "CDCFLOW_KAFKA_"

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
    int64_t trigger_ms, max_offsets;
    const char *source;
    bool available_now;
    const char *dlq;
    const char *group_id;
    list props;
    int metrics_port;
    const char *log_level;
    const char *pipeline_id;
    size_t max_msg;
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

/* "a,b,c" -> three entries. */
static int list_add_csv(list *l, const char *csv)
{
    const char *p = csv;
    while (*p) {
        size_t n = strcspn(p, ",");
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

static void list_free(list *l)
{
    for (int i = 0; i < l->nowned; i++)
        free(l->owned[i]);
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
        if (list_add(props, s, true)) {
            free(s);
            return -1;
        }
    }
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
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
            "                             e.g. CDCFLOW_KAFKA_SECURITY_PROTOCOL=SSL\n"
            "  --max-message-bytes N      bigger messages go to the dead-letter target   [16777216]\n"
            "\n"
            "Table:\n",
            cmd, iceberg ? "an Apache Iceberg v2 table" : "a Delta Lake table (with Change Data Feed)", cmd);
    if (iceberg)
        fprintf(f,
                "  --warehouse DIR            Hadoop-catalog warehouse   [env ICEBERG_WAREHOUSE, /tmp/iceberg-warehouse]\n"
                "  --namespace NS             [env ICEBERG_NAMESPACE, analytics]\n"
                "  --table NAME               [env ICEBERG_TABLE, customers_analytics]\n"
                "                             the table lives in WAREHOUSE/NS/NAME\n"
                "  --catalog NAME             catalog name, for logs   [env ICEBERG_CATALOG, iceberg]\n");
    else
        fprintf(f,
                "  --table-path DIR           [env DELTA_TABLE_PATH, /tmp/delta-cdc/customers]\n");
    fprintf(f,
            "  --mode append|upsert       append: one row per event (as SYSTEM.md); upsert: mirror by key   [append]\n"
            "  --deletes hard|soft        upsert: remove deleted rows or mark them   [hard]\n"
            "  --partition-by COL         partition column, repeatable\n"
            "  --pipeline-id ID           value of _pipeline_id   [postgres_to_%s]\n"
            "\n"
            "Batches:\n"
            "  --trigger-interval D       commit every D (10s, 500ms, 1m)   [1s; SYSTEM.md used 10 s]\n"
            "  --max-offsets-per-trigger N  at most N messages per commit   [100000; SYSTEM.md used 1000]\n"
            "  --available-now            process what is available at start, commit, exit 0\n"
            "\n"
            "Operations:\n"
            "  --dlq kafka[:TOPIC]|file:PATH|off  dead-letter target for bad events\n"
            "                             [kafka source: kafka (= <topic>.dlq);\n"
            "                              file source: file:CHECKPOINT_LOCATION/dead-letter.jsonl]\n"
            "                             off: a bad event stops the pipeline, batch not committed\n"
            "  --checkpoint-location DIR  state dir (file-source dead letters); progress itself is\n"
            "                             kept in the table   [env CHECKPOINT_LOCATION,\n"
            "                             /tmp/spark-checkpoints/kafka-to-%s]\n"
            "  --metrics-port N           Prometheus /metrics and /healthz on 127.0.0.1:N, 0 = off   [%d]\n"
            "  --log-level L              error|warn|info|debug (to stderr)   [info]\n"
            "  -h, --help                 this help\n"
            "\n"
            "SIGTERM/SIGINT finish and commit the batch in flight, then exit 0; a second\n"
            "signal exits at once.  Exit status: 0 clean stop, 1 error, 2 bad usage.\n",
            cmd, cmd, iceberg ? 9465 : 9464);
}

enum {
    O_BOOTSTRAP = 256, O_TOPIC, O_TABLE_PATH, O_WAREHOUSE, O_NAMESPACE, O_TABLE, O_CATALOG,
    O_MODE, O_DELETES, O_PARTITION_BY, O_TRIGGER, O_MAX_OFFSETS, O_SOURCE, O_AVAILABLE_NOW,
    O_DLQ, O_GROUP_ID, O_KAFKA_PROP, O_METRICS_PORT, O_LOG_LEVEL, O_PIPELINE_ID, O_CHECKPOINT,
    O_MAX_MSG,
};

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
        { "metrics-port", required_argument, 0, O_METRICS_PORT },
        { "log-level", required_argument, 0, O_LOG_LEVEL },
        { "pipeline-id", required_argument, 0, O_PIPELINE_ID },
        { "checkpoint-location", required_argument, 0, O_CHECKPOINT },
        { "max-message-bytes", required_argument, 0, O_MAX_MSG },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    bool topic_flag = false;
    int c;
    char *end;

    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case O_BOOTSTRAP: o->bootstrap = optarg; break;
        case O_TOPIC:
            if (!topic_flag) {
                o->topics.n = 0;    /* flags replace the environment's topic */
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
        case O_SOURCE: o->source = optarg; break;
        case O_AVAILABLE_NOW: o->available_now = true; break;
        case O_DLQ: o->dlq = optarg; break;
        case O_GROUP_ID: o->group_id = optarg; break;
        case O_KAFKA_PROP:
            if (!strchr(optarg, '=')) {
                fprintf(stderr, "cdcflow: --kafka-prop '%s': expected KEY=VALUE\n", optarg);
                return -1;
            }
            if (list_add(&o->props, optarg, false))
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
        case 'h': usage(stdout, o->iceberg); return 1;
        default: return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cdcflow: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int run(int argc, char **argv, bool iceberg)
{
    opts o;
    cf_err err = { 0 };
    cf_source *src = NULL;
    cf_sink *sink = NULL;
    cf_decoder *dec = NULL;
    cf_transform *xf = NULL;
    cf_dlq *dlq = NULL;
    cf_metrics *met = NULL;
    cf_pipeline_stats st;
    char location[4096], table_name[512], dlq_default[4200];
    int rc = 1, lvl;

    memset(&o, 0, sizeof o);
    o.iceberg = iceberg;
    o.bootstrap = env_or("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092");
    o.table_path = env_or("DELTA_TABLE_PATH", "/tmp/delta-cdc/customers");
    o.catalog = env_or("ICEBERG_CATALOG", "iceberg");
    o.warehouse = env_or("ICEBERG_WAREHOUSE", "/tmp/iceberg-warehouse");
    o.ns = env_or("ICEBERG_NAMESPACE", "analytics");
    o.table = env_or("ICEBERG_TABLE", "customers_analytics");
    o.checkpoint = env_or("CHECKPOINT_LOCATION", iceberg ? "/tmp/spark-checkpoints/kafka-to-iceberg"
                                                         : "/tmp/spark-checkpoints/kafka-to-delta");
    o.mode = "append";
    o.deletes = "hard";
    o.source = "kafka";
    o.group_id = iceberg ? "cdcflow-iceberg" : "cdcflow-delta";
    o.metrics_port = iceberg ? 9465 : 9464;
    o.log_level = "info";
    o.pipeline_id = iceberg ? "postgres_to_iceberg" : "postgres_to_delta";
    if (list_add_csv(&o.topics, env_or("KAFKA_TOPIC", "postgres.public.customers")) || env_props(&o.props))
        goto usage_fail;
    switch (parse(&o, argc, argv)) {
    case 0: break;
    case 1: rc = 0; goto out;
    default: goto usage_fail;
    }
    if ((lvl = cf_log_level_parse(o.log_level)) < 0) {
        fprintf(stderr, "cdcflow: --log-level '%s': expected error, warn, info or debug\n", o.log_level);
        goto usage_fail;
    }
    cf_log_set_level((cf_log_level)lvl);
    if (strcmp(o.mode, "append") && strcmp(o.mode, "upsert")) {
        fprintf(stderr, "cdcflow: --mode '%s': expected append or upsert\n", o.mode);
        goto usage_fail;
    }
    if (strcmp(o.deletes, "hard") && strcmp(o.deletes, "soft")) {
        fprintf(stderr, "cdcflow: --deletes '%s': expected hard or soft\n", o.deletes);
        goto usage_fail;
    }
    if (!o.topics.n) {
        fprintf(stderr, "cdcflow: no topic (set KAFKA_TOPIC or --topic)\n");
        goto usage_fail;
    }
    if (iceberg) {
        snprintf(location, sizeof location, "%s/%s/%s", o.warehouse, o.ns, o.table);
        snprintf(table_name, sizeof table_name, "%s.%s.%s", o.catalog, o.ns, o.table);
    } else {
        snprintf(location, sizeof location, "%s", o.table_path);
        const char *b = strrchr(o.table_path, '/');
        snprintf(table_name, sizeof table_name, "%s", b && b[1] ? b + 1 : o.table_path);
    }
    if (!o.dlq) {
        if (!strncmp(o.source, "file:", 5)) {
            if (mkdir_p(o.checkpoint)) {
                fprintf(stderr, "cdcflow: cannot create %s: %s\n", o.checkpoint, strerror(errno));
                goto out;
            }
            snprintf(dlq_default, sizeof dlq_default, "file:%s/dead-letter.jsonl", o.checkpoint);
            o.dlq = dlq_default;
        } else {
            o.dlq = "kafka";
        }
    }

    cf_signals_install();
    {
        cf_sink_config sc = {
            .kind = iceberg ? "iceberg" : "delta",
            .location = location,
            .table_name = table_name,
            .mode = strcmp(o.mode, "upsert") ? CF_MODE_APPEND : CF_MODE_UPSERT,
            .soft_deletes = !strcmp(o.deletes, "soft"),
            .partition_by = o.partition_by.v,
            .npartition_by = o.partition_by.n,
            /* Fixed, so that renaming the pipeline does not lose its place. */
            .app_id = "cdcflow",
            .codec = CF_CODEC_ZSTD,
        };
        cf_source_config srcc = {
            .spec = o.source,
            .bootstrap = o.bootstrap,
            .topics = o.topics.v,
            .ntopics = o.topics.n,
            .group_id = o.group_id,
            .props = o.props.v,
            .nprops = o.props.n,
            .max_message_bytes = o.max_msg,
        };
        cf_dlq_config dc = { .spec = o.dlq, .bootstrap = o.bootstrap, .props = o.props.v, .nprops = o.props.n };
        cf_decoder_config decc = { .max_message_bytes = o.max_msg };
        cf_transform_config xc = { .kind = CF_XF_AUTO, .pipeline_id = o.pipeline_id };

        if (!(sink = cf_sink_open(&sc, &err)) || !(src = cf_source_open(&srcc, &err))
            || !(dlq = cf_dlq_open(&dc, &err)) || !(dec = cf_decoder_new(&decc, &err))
            || !(xf = cf_transform_new(&xc, &err)))
            goto fail;
        if (o.metrics_port) {
            if (!(met = cf_metrics_new(table_name, o.pipeline_id))) {
                cf_err_set(&err, CF_E_NOMEM, "out of memory");
                goto fail;
            }
            /* Healthy means committing within a few triggers when input waits. */
            {
                double trig = (o.trigger_ms ? o.trigger_ms : CF_PIPELINE_DEFAULT_TRIGGER_MS) / 1e3;
                cf_metrics_set_health_limits(met, trig * 10 > 120 ? trig * 10 : 120, 60 + trig);
            }
            if (cf_metrics_serve(met, o.metrics_port, &err))
                goto fail;
        }
        cf_log(CF_LOG_INFO, "cdcflow", "%s: %s (%s) -> %s %s, mode %s, dead-letter %s%s", o.pipeline_id,
               o.source, o.topics.v[0], iceberg ? "iceberg" : "delta", location, o.mode,
               cf_dlq_describe(dlq), met ? "" : ", metrics off");
        if (met)
            cf_log(CF_LOG_INFO, "cdcflow", "metrics on http://127.0.0.1:%d/metrics", cf_metrics_port(met));

        cf_pipeline_config pc = {
            .source = src,
            .sink = sink,
            .decoder = dec,
            .transform = xf,
            .dlq = dlq,
            .metrics = met,
            .table_name = table_name,
            .mode = sc.mode,
            .trigger_ms = o.trigger_ms,
            .max_offsets = o.max_offsets,
            .max_message_bytes = o.max_msg,
            .available_now = o.available_now,
            .progress = isatty(STDERR_FILENO),
        };
        if (cf_pipeline_run(&pc, &st, &err))
            goto fail;
        cf_log(CF_LOG_INFO, "cdcflow", "stopped cleanly: %llu messages, %llu events, %llu dead-letter, "
               "%llu commits, table version %lld",
               (unsigned long long)st.messages, (unsigned long long)st.events,
               (unsigned long long)st.dead_letter, (unsigned long long)st.batches, (long long)st.version);
        rc = 0;
        goto out;
    }
fail:
    cf_log(CF_LOG_ERROR, "cdcflow", "%s: %s", cf_code_name(err.code), err.msg);
    rc = 1;
    goto out;
usage_fail:
    rc = 2;
out:
    cf_source_close(src);
    cf_dlq_close(dlq);
    cf_sink_close(sink);
    cf_transform_free(xf);
    cf_decoder_free(dec);
    cf_metrics_free(met);
    list_free(&o.topics);
    list_free(&o.partition_by);
    list_free(&o.props);
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

int cf_cmd_run(int argc, char **argv)
{
    fputs("cdcflow: run: multi-table config files are not implemented yet; "
          "run one `cdcflow delta` or `cdcflow iceberg` per table\n", stderr);
    return 3;
}
