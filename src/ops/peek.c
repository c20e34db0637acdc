/* peek.c - `cdcflow peek`: list the CDC topics with their message counts, or
 * print a topic's events one per line (librdkafka). */
#include "ops/ops.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cli/commands.h"

#define DEFAULT_BOOTSTRAP "127.0.0.1:9092"
#define LINE_CAP          (64u << 20)   /* one printed message; Kafka's default max is 1 MB */
#define MAX_PARTITIONS    4096

/* ------------------------------------------------------------- options */

void cf_ops_peek_defaults(cf_ops_peek_opts *o)
{
    memset(o, 0, sizeof *o);
    o->bootstrap = cf_ops_env("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP);
    o->prefix = "postgres.";
    o->n = 10;
    o->timeout_s = 10;
}

int cf_ops_peek_parse(int argc, char **argv, cf_ops_peek_opts *o, cf_err *err)
{
    const char *v;
    int r;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = true;
            continue;
        }
        if (!strcmp(a, "--from-beginning")) {
            o->from_beginning = true;
            continue;
        }
        if (!strcmp(a, "--raw")) {
            o->raw = true;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--bootstrap", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->bootstrap = v;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--prefix", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->prefix = v;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "-n", &v, err)) != 0) {
            if (r < 0 || cf_ops_parse_i64(v, "-n", 0, INT64_MAX / 2, &o->n, err) < 0)
                return -1;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--timeout", &v, err)) != 0) {
            if (r < 0 || cf_ops_parse_double(v, "--timeout", 0.1, 86400, &o->timeout_s, err) < 0)
                return -1;
            continue;
        }
        if (a[0] == '-' && a[1])
            return cf_err_set(err, CF_E_ARG, "unknown option '%s'", a);
        if (o->topic)
            return cf_err_set(err, CF_E_ARG, "one topic at a time ('%s' and '%s')", o->topic, a);
        o->topic = a;
    }
    return 0;
}

/* ---------------------------------------------------------- formatting */

/* Offset just past the JSON value starting at p[i]; the input has already
 * been validated by jansson, so only nesting and strings matter here. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
    int depth = 0;

    while (i < n) {
        char c = p[i];
        if (c == '"') {
            for (i++; i < n && p[i] != '"'; i++)
                if (p[i] == '\\')
                    i++;
            i++;
        } else if (c == '{' || c == '[') {
            depth++, i++;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            depth--, i++;
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
            return i;
        } else {
            i++;
        }
        if (depth == 0 && (c == '"' || c == '}' || c == ']'))
            return i;
    }
    return i;
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

/* Finds the bytes of top-level member `key` of a (valid) JSON object, so it
 * can be printed exactly as Kafka Connect wrote it: re-encoding would turn
 * 1.1 into 1.1000000000000001. */
static bool member_span(const char *p, size_t n, const char *key, size_t *off, size_t *len)
{
    size_t kl = strlen(key), i = skip_ws(p, n, 0);

    if (i >= n || p[i] != '{')
        return false;
    i = skip_ws(p, n, i + 1);
    while (i < n && p[i] == '"') {
        size_t ks = i + 1, ke = skip_value(p, n, i) - 1, vs, ve;
        i = skip_ws(p, n, ke + 1);
        if (i >= n || p[i] != ':')
            return false;
        vs = skip_ws(p, n, i + 1);
        ve = skip_value(p, n, vs);
        if (ke - ks == kl && !memcmp(p + ks, key, kl)) {
            *off = vs;
            *len = ve - vs;
            return true;
        }
        i = skip_ws(p, n, ve);
        if (i >= n || p[i] != ',')
            return false;
        i = skip_ws(p, n, i + 1);
    }
    return false;
}

/* Bytes as a JSON string; invalid UTF-8 bytes are shown as \u00XX. */
static int put_json_string(cf_buf *out, const uint8_t *p, size_t n, cf_err *err)
{
    json_t *s = json_stringn(n ? (const char *)p : "", n);
    if (s) {
        char *t = json_dumps(s, JSON_ENCODE_ANY);
        json_decref(s);
        if (!t)
            return cf_err_set(err, CF_E_NOMEM, "out of memory formatting a message");
        int rc = cf_buf_append(out, t, strlen(t), err);
        free(t);
        return rc;
    }
    if (cf_buf_putc(out, '"', err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        int rc;
        if (c == '"' || c == '\\')
            rc = cf_buf_printf(out, err, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            rc = cf_buf_printf(out, err, "\\u%04x", c);
        else
            rc = cf_buf_putc(out, c, err);
        if (rc < 0)
            return -1;
    }
    return cf_buf_putc(out, '"', err);
}

/* Appends a key or value: the Connect envelope's payload unless raw; sets
 * *doc to the decoded payload (caller json_decref()s) when it is JSON. */
static int put_part(cf_buf *out, const void *data, size_t len, bool raw, json_t **doc, cf_err *err)
{
    json_t *root, *payload;
    size_t off = 0, plen = len;

    *doc = NULL;
    if (!data)
        return cf_buf_append(out, "null", 4, err);
    root = json_loadb(data, len, JSON_DECODE_ANY, NULL);
    if (!root)
        return put_json_string(out, data, len, err);
    payload = json_object_get(root, "payload");
    if (!raw && payload && json_object_get(root, "schema") &&
        member_span(data, len, "payload", &off, &plen)) {
        *doc = json_incref(payload);
        json_decref(root);
    } else {
        *doc = root;
        /* Trim surrounding whitespace so one message stays one line. */
        while (plen && (((const char *)data)[off] == ' ' || ((const char *)data)[off] == '\n'))
            off++, plen--;
        while (plen && (((const char *)data)[off + plen - 1] == '\n' ||
                        ((const char *)data)[off + plen - 1] == ' ' ||
                        ((const char *)data)[off + plen - 1] == '\r'))
            plen--;
    }
    if (memchr((const char *)data + off, '\n', plen)) {
        /* Pretty-printed input: re-encode compactly to keep one line. */
        char *t = json_dumps(*doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        int rc;
        if (!t)
            return cf_err_set(err, CF_E_NOMEM, "out of memory formatting a message");
        rc = cf_buf_append(out, t, strlen(t), err);
        free(t);
        return rc;
    }
    return cf_buf_append(out, (const char *)data + off, plen, err);
}

/* Debezium's op is one letter; anything that is not a short plain word
 * (a newline, a space) would break the line format, so it shows as "?". */
static bool plain_word(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 32 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                         (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
            return false;
    return n > 0;
}

int cf_ops_peek_format(cf_buf *out, int32_t partition, int64_t offset,
                       const void *key, size_t klen, const void *val, size_t vlen,
                       bool raw, cf_err *err)
{
    json_t *kdoc = NULL, *vdoc = NULL;
    const char *op = "-";
    cf_buf vb;
    int rc = -1;

    cf_buf_init(&vb, out->cap);
    if (val && put_part(&vb, val, vlen, raw, &vdoc, err) < 0)
        goto done;
    if (!val)
        op = "tombstone";
    else if (json_is_object(vdoc)) {
        json_t *o = json_object_get(vdoc, "op");
        if (!o && json_is_object(json_object_get(vdoc, "payload")))
            o = json_object_get(json_object_get(vdoc, "payload"), "op");   /* --raw */
        if (json_is_string(o))
            op = plain_word(json_string_value(o)) ? json_string_value(o) : "?";
    }
    if (cf_buf_printf(out, err, "%" PRId32 "@%" PRId64 " key=", partition, offset) < 0 ||
        put_part(out, key, klen, raw, &kdoc, err) < 0 ||
        cf_buf_printf(out, err, " op=%s value=", op) < 0 ||
        (val ? cf_buf_append(out, vb.data, vb.len, err) : cf_buf_append(out, "null", 4, err)) < 0 ||
        cf_buf_putc(out, '\n', err) < 0)
        goto done;
    rc = 0;
done:
    json_decref(kdoc);
    json_decref(vdoc);
    cf_buf_free(&vb);
    return rc;
}

/* ---------------------------------------------------------------- Kafka */

typedef struct kctx {
    char last_error[512];
} kctx;

/* librdkafka's own logging would flood the terminal with reconnect attempts;
 * keep the last word and report it once if we fail. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kctx *k = rd_kafka_opaque(rk);
    if (k && level <= 4)
        snprintf(k->last_error, sizeof k->last_error, "%s", buf);
}

static void on_error(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    kctx *k = opaque;
    if (k)
        snprintf(k->last_error, sizeof k->last_error, "%s", reason);
}

static rd_kafka_t *kafka_open(const cf_ops_peek_opts *o, kctx *k, cf_err *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[512];
    rd_kafka_t *rk;
    static const char *const kv[][2] = {
        { "enable.auto.commit", "false" },
        { "enable.auto.offset.store", "false" },
        { "enable.partition.eof", "true" },
        { "allow.auto.create.topics", "false" },
        { "log.connection.close", "false" },
        { "client.id", "cdcflow-peek" },
        /* librdkafka's assign() wants a group id; peek never subscribes or
         * commits, so this group gets no members and no offsets. */
        { "group.id", "cdcflow-peek" },
    };

    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->bootstrap, errstr, sizeof errstr)) {
        rd_kafka_conf_destroy(conf);
        cf_err_set(err, CF_E_ARG, "--bootstrap: %s", errstr);
        return NULL;
    }
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr)) {
            rd_kafka_conf_destroy(conf);
            cf_err_set(err, CF_E_KAFKA, "%s: %s", kv[i][0], errstr);
            return NULL;
        }
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        cf_err_set(err, CF_E_KAFKA, "creating the Kafka client: %s", errstr);
        return NULL;
    }
    return rk;
}

static int unreachable(const cf_ops_peek_opts *o, const kctx *k, rd_kafka_resp_err_t e, cf_err *err)
{
    return cf_err_set(err, CF_E_KAFKA, "Kafka at %s: %s%s%s; is the stack running? "
                      "Start it with `scripts/stack.sh start`", o->bootstrap, rd_kafka_err2str(e),
                      k->last_error[0] ? " - " : "", k->last_error);
}

static int cmp_topic(const void *a, const void *b)
{
    const rd_kafka_metadata_topic_t *x = *(rd_kafka_metadata_topic_t *const *)a;
    const rd_kafka_metadata_topic_t *y = *(rd_kafka_metadata_topic_t *const *)b;
    return strcmp(x->topic, y->topic);
}

static int list_topics(rd_kafka_t *rk, const cf_ops_peek_opts *o, kctx *k, FILE *out, cf_err *err)
{
    const struct rd_kafka_metadata *md;
    const rd_kafka_metadata_topic_t **sel;
    int timeout_ms = (int)(o->timeout_s * 1000), nsel = 0, rc = 0;
    size_t pl = strlen(o->prefix);
    rd_kafka_resp_err_t e;

    e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    if (e)
        return unreachable(o, k, e, err);
    sel = calloc((size_t)md->topic_cnt + 1, sizeof *sel);
    if (!sel) {
        rd_kafka_metadata_destroy(md);
        return cf_err_set(err, CF_E_NOMEM, "out of memory listing topics");
    }
    for (int i = 0; i < md->topic_cnt; i++)
        if (!strncmp(md->topics[i].topic, o->prefix, pl))
            sel[nsel++] = &md->topics[i];
    qsort(sel, (size_t)nsel, sizeof *sel, cmp_topic);
    if (nsel == 0)
        fprintf(out, "no topics starting with '%s' at %s\n", o->prefix, o->bootstrap);
    else
        fprintf(out, "%-48s %10s %12s\n", "TOPIC", "PARTITIONS", "MESSAGES");
    for (int i = 0; i < nsel && rc == 0; i++) {
        int64_t total = 0;
        for (int p = 0; p < sel[i]->partition_cnt; p++) {
            int64_t lo, hi;
            e = rd_kafka_query_watermark_offsets(rk, sel[i]->topic, sel[i]->partitions[p].id,
                                                 &lo, &hi, timeout_ms);
            if (e) {
                rc = cf_err_set(err, CF_E_KAFKA, "watermarks of %s[%d]: %s", sel[i]->topic,
                                sel[i]->partitions[p].id, rd_kafka_err2str(e));
                break;
            }
            total += hi - lo;
        }
        if (rc == 0)
            fprintf(out, "%-48s %10d %12" PRId64 "\n", sel[i]->topic, sel[i]->partition_cnt, total);
    }
    free(sel);
    rd_kafka_metadata_destroy(md);
    return rc;
}

typedef struct part {
    int32_t id;
    int64_t start, end;         /* read [start, end): end is the high watermark at start */
    bool    done;
} part;

static int print_topic(rd_kafka_t *rk, const cf_ops_peek_opts *o, kctx *k, FILE *out, cf_err *err)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    rd_kafka_topic_partition_list_t *assign = NULL;
    int timeout_ms = (int)(o->timeout_s * 1000), nparts = 0, open = 0, rc = -1;
    int64_t printed = 0;
    bool empty = false;
    part *parts = NULL;
    cf_buf line;
    rd_kafka_resp_err_t e;
    double deadline;

    cf_buf_init(&line, LINE_CAP);
    if (!rkt)
        return cf_err_set(err, CF_E_KAFKA, "topic %s: %s", o->topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
    e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e)
        return unreachable(o, k, e, err);
    if (md->topic_cnt != 1 || md->topics[0].err) {
        cf_err_set(err, CF_E_KAFKA, "topic %s: %s (list topics with `cdcflow peek`)", o->topic,
                   md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
        rd_kafka_metadata_destroy(md);
        return -1;
    }
    nparts = md->topics[0].partition_cnt;
    if (nparts > MAX_PARTITIONS)
        nparts = MAX_PARTITIONS;
    parts = calloc((size_t)nparts + 1, sizeof *parts);
    assign = rd_kafka_topic_partition_list_new(nparts);
    if (!parts || !assign) {
        cf_err_set(err, CF_E_NOMEM, "out of memory reading %s", o->topic);
        goto out;
    }
    for (int p = 0; p < nparts; p++) {
        int64_t lo, hi;
        parts[p].id = md->topics[0].partitions[p].id;
        e = rd_kafka_query_watermark_offsets(rk, o->topic, parts[p].id, &lo, &hi, timeout_ms);
        if (e) {
            cf_err_set(err, CF_E_KAFKA, "watermarks of %s[%d]: %s", o->topic, parts[p].id,
                       rd_kafka_err2str(e));
            goto out;
        }
        /* The tail is the last n per partition; with one partition (what
         * Debezium creates) that is the last n of the topic. */
        parts[p].start = (o->from_beginning || o->n == 0 || hi - lo <= o->n) ? lo : hi - o->n;
        parts[p].end = hi;
        parts[p].done = parts[p].start >= hi;
        if (!parts[p].done) {
            rd_kafka_topic_partition_list_add(assign, o->topic, parts[p].id)->offset = parts[p].start;
            open++;
        }
    }
    empty = open == 0;
    if (open && (e = rd_kafka_assign(rk, assign)) != 0) {
        cf_err_set(err, CF_E_KAFKA, "assigning %s: %s", o->topic, rd_kafka_err2str(e));
        goto out;
    }
    deadline = cf_ops_now() + o->timeout_s;
    while (open > 0 && (o->n == 0 || printed < o->n)) {
        rd_kafka_message_t *m;
        double left = deadline - cf_ops_now();
        if (left <= 0) {
            fprintf(stderr, "cdcflow peek: timed out after %.1f s with %" PRId64 " message(s) printed\n",
                    o->timeout_s, printed);
            break;
        }
        m = rd_kafka_consumer_poll(rk, left > 0.2 ? 200 : (int)(left * 1000) + 1);
        if (!m)
            continue;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            cf_err_set(err, CF_E_KAFKA, "reading %s: %s", o->topic, rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto out;
        }
        for (int p = 0; p < nparts; p++) {
            if (parts[p].id != m->partition || parts[p].done)
                continue;
            if (!m->err && m->offset < parts[p].end) {
                cf_buf_reset(&line);
                if (cf_ops_peek_format(&line, m->partition, m->offset, m->key, m->key_len,
                                       m->payload, m->len, o->raw, err) < 0) {
                    rd_kafka_message_destroy(m);
                    goto out;
                }
                fwrite(line.data, 1, line.len, out);
                printed++;
            }
            /* Done at the last offset we meant to read, or at the partition's
             * end: the last offsets may hold transaction markers that are
             * never delivered as messages. */
            if (m->err || m->offset + 1 >= parts[p].end) {
                parts[p].done = true;
                open--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (empty)
        fprintf(stderr, "cdcflow peek: %s has no messages\n", o->topic);
    rc = 0;
out:
    if (assign)
        rd_kafka_topic_partition_list_destroy(assign);
    free(parts);
    rd_kafka_metadata_destroy(md);
    cf_buf_free(&line);
    return rc;
}

static void usage(FILE *f)
{
    fputs("Usage: cdcflow peek [--bootstrap HOST:PORT] [TOPIC] [-n N] [--from-beginning]\n"
          "                    [--timeout S] [--prefix P] [--raw]\n"
          "\n"
          "Without TOPIC: list topics starting with the prefix, with partition and\n"
          "message counts (high - low watermark).  With TOPIC: print N messages, one per\n"
          "line: PARTITION@OFFSET key=KEY op=OP value=VALUE.\n"
          "\n"
          "Options:\n"
          "  --bootstrap HOST:PORT   Kafka (env KAFKA_BOOTSTRAP_SERVERS, default " DEFAULT_BOOTSTRAP ")\n"
          "  --prefix P              topic prefix when listing (default postgres.)\n"
          "  -n N                    messages to print (default 10, 0 = all there are)\n"
          "  --from-beginning        the first N messages instead of the last N\n"
          "  --timeout S             give up after S seconds (default 10)\n"
          "  --raw                   print key and value as received (default: the\n"
          "                          payload of Kafka Connect's schema envelope)\n"
          "  -h, --help              this help\n"
          "\n"
          "Peek joins no consumer group and commits nothing.\n", f);
}

int cf_ops_peek_run(const cf_ops_peek_opts *o, FILE *out, cf_err *err)
{
    kctx k = { "" };
    rd_kafka_t *rk = kafka_open(o, &k, err);
    int rc;

    if (!rk)
        return -1;
    rc = o->topic ? print_topic(rk, o, &k, out, err) : list_topics(rk, o, &k, out, err);
    fflush(out);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

int cf_cmd_peek(int argc, char **argv)
{
    cf_ops_peek_opts o;
    cf_err err = { 0 };

    cf_ops_peek_defaults(&o);
    if (cf_ops_peek_parse(argc, argv, &o, &err) < 0) {
        fprintf(stderr, "cdcflow peek: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    if (cf_ops_peek_run(&o, stdout, &err) < 0) {
        fprintf(stderr, "cdcflow peek: %s\n", err.msg);
        return 1;
    }
    return 0;
}
