/* bench_delta.c - drive the Delta sink without Kafka: `gen` times synthetic
 * append/upsert streams (events/s, peak RSS); `apply` commits change events
 * from a JSON-lines file, resuming from the offsets in the table, so tests
 * can write tables, kill the writer and restart it. */
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "table/delta/delta_int.h"
#include "table/table.h"
#include "sink_util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void usage(FILE *o)
{
    fputs("Usage: bench_delta gen   --out DIR [--mode append|upsert] [--events N] [--batch N]\n"
          "                         [--keys N] [--partition-by COL]\n"
          "       bench_delta apply --out DIR --input FILE --schema 'id:int64,name:string,...'\n"
          "                         [--pk COL,...] [--mode append|upsert] [--batch N] [--soft-deletes]\n"
          "                         [--partition-by COL,...] [--checkpoint-interval N] [--app-id ID]\n"
          "                         [--target-file-bytes N] [--delta-deletes auto|dv|rewrite]\n"
          "       bench_delta update --out DIR --keys K [--events N] [--rounds R]\n"
          "                         [--delta-deletes auto|dv|rewrite]\n"
          "\n"
          "apply: each input line is {\"op\":\"c|u|d|r\",\"lsn\":N,\"row\":{...}} and optionally\n"
          "\"topic\", \"partition\", \"offset\" (default: topic \"events\", partition 0, offset =\n"
          "line number from 0).  Rows get _cdc_operation and _source_lsn columns.  Lines\n"
          "below the offsets already in the table are skipped (exactly once on restart).\n"
          "update: R commits of N updates each (default 1000000 -> pass --events) to random keys\n"
          "1..K of a table `gen --mode upsert` made; prints each commit's time and bytes.\n", o);
}

static int split(char *s, const char **out, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        out[n++] = t;
    return n;
}

static int set_json_value(cf_column *c, size_t row, json_t *v, cf_err *err)
{
    if (!v || json_is_null(v))
        return cf_col_set_null(c, row, err);
    switch (c->type.id) {
    case CF_T_BOOL:
        return cf_col_set_bool(c, row, json_is_true(v), err);
    case CF_T_FLOAT:
    case CF_T_DOUBLE:
        return cf_col_set_f64(c, row, json_number_value(v), err);
    case CF_T_DATE:
        if (json_is_string(v)) {
            int32_t d;
            if (cf_delta_parse_date(json_string_value(v), &d))
                return cf_err_set(err, CF_E_PARSE, "bad date %s", json_string_value(v));
            return cf_col_set_i64(c, row, d, err);
        }
        return cf_col_set_i64(c, row, json_integer_value(v), err);
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
        if (json_is_string(v)) {
            int64_t us;
            if (cf_delta_parse_ts(json_string_value(v), &us))
                return cf_err_set(err, CF_E_PARSE, "bad timestamp %s", json_string_value(v));
            return cf_col_set_i64(c, row, us, err);
        }
        return cf_col_set_i64(c, row, json_integer_value(v), err);
    default:
        if (cf_type_is_varlen(c->type)) {
            if (json_is_string(v))
                return cf_col_set_bytes(c, row, json_string_value(v), json_string_length(v), err);
            char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            int rc = cf_col_set_bytes(c, row, s, strlen(s), err);
            free(s);
            return rc;
        }
        if (c->type.id == CF_T_DECIMAL && json_is_real(v))
            return cf_col_set_i64(c, row, (int64_t)(json_real_value(v) * 100 + (json_real_value(v) < 0 ? -0.5 : 0.5)), err);
        return cf_col_set_i64(c, row, json_integer_value(v), err);
    }
}

static int commit(cf_sink *sink, cf_batch *b, cf_offsets *cov, int64_t *events, cf_err *e)
{
    int64_t v;
    if (commit_b(sink, b, NULL, cov, &v, e))
        return -1;
    *events += (int64_t)b->nrows;
    cf_batch_reset(b);
    return 0;
}

static int cmd_apply(cf_sink_config *cfg, const char *input, const char *schema_spec, const char *pk,
                     int batch)
{
    cf_err e = { 0 };
    cf_schema *s = cf_schema_new();
    char *spec = strdup(schema_spec), *pkc = pk ? strdup(pk) : NULL;
    const char *parts[256], *pks[16];
    int np = split(spec, parts, 256), npk = pkc ? split(pkc, pks, 16) : 0, rc = 1;
    cf_offsets have = { 0 }, cov = { 0 };
    cf_sink *sink = NULL;
    cf_batch *b = NULL;
    FILE *in = NULL;
    char *line = NULL;
    size_t cap = 0;
    int64_t lineno = 0, events = 0, skipped = 0;

    for (int i = 0; i < np; i++) {
        char *colon = strchr(parts[i], ':');
        cf_type t;
        if (!colon || cf_type_parse(colon + 1, &t, &e)) {
            fprintf(stderr, "bench_delta: bad schema entry '%s'\n", parts[i]);
            goto out;
        }
        *colon = 0;
        cf_schema_add(s, parts[i], t, true, 0, &e);
    }
    cf_type ts = { CF_T_STRING }, tl = { CF_T_INT64 };
    int opc = cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    int lsnc = cf_schema_add(s, "_source_lsn", tl, true, 0, &e);
    if (npk && cf_schema_set_pk(s, pks, npk, &e))
        goto fail;
    if (!(sink = cf_sink_open(cfg, &e)) || cf_sink_offsets(sink, &have, &e) || !(b = cf_batch_new(s, &e)))
        goto fail;
    if (!(in = fopen(input, "r"))) {
        fprintf(stderr, "bench_delta: cannot open %s\n", input);
        goto out;
    }
    for (ssize_t n; (n = getline(&line, &cap, in)) > 0; lineno++) {
        json_error_t je;
        json_t *ev = json_loadb(line, (size_t)n, 0, &je);
        if (!ev) {
            fprintf(stderr, "bench_delta: line %" PRId64 ": %s\n", lineno + 1, je.text);
            goto out;
        }
        const char *topic = json_string_value(json_object_get(ev, "topic"));
        json_t *jp = json_object_get(ev, "partition"), *jo = json_object_get(ev, "offset");
        int32_t part = json_is_integer(jp) ? (int32_t)json_integer_value(jp) : 0;
        int64_t off = json_is_integer(jo) ? json_integer_value(jo) : lineno;
        if (!topic)
            topic = "events";
        if (off < cf_offsets_get(&have, topic, part)) {
            skipped++;
            json_decref(ev);
            continue;
        }
        const char *op = json_string_value(json_object_get(ev, "op"));
        const char *opname = !op ? "INSERT" : *op == 'u' ? "UPDATE" : *op == 'd' ? "DELETE" : *op == 'r' ? "READ" : "INSERT";
        json_t *row = json_object_get(ev, "row");
        for (int i = 0; i < opc; i++)
            if (set_json_value(&b->cols[i], b->nrows, json_object_get(row, s->fields[i].name), &e)) {
                json_decref(ev);
                goto fail;
            }
        cf_col_set_bytes(&b->cols[opc], b->nrows, opname, strlen(opname), &e);
        cf_col_set_i64(&b->cols[lsnc], b->nrows, json_integer_value(json_object_get(ev, "lsn")), &e);
        json_decref(ev);
        if (cf_batch_end_row(b, &e) || cf_delta_offsets_put(&cov, topic, part, off + 1, &e))
            goto fail;
        if ((int)b->nrows >= batch) {
            if (commit(sink, b, &cov, &events, &e))
                goto fail;
        }
    }
    if (b->nrows && commit(sink, b, &cov, &events, &e))
        goto fail;
    printf("applied %" PRId64 " events, skipped %" PRId64 " already in the table\n", events, skipped);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "bench_delta: %s\n", e.msg);
out:
    if (in)
        fclose(in);
    free(line);
    cf_batch_free(b);
    cf_sink_close(sink);
    cf_schema_free(s);
    free(have.v);
    free(cov.v);
    free(spec);
    free(pkc);
    return rc;
}

/* The customers output rows of SYSTEM.md, as the synthetic events use them. */
static cf_schema *customers_schema(void)
{
    cf_err e = { 0 };
    cf_schema *s = cf_schema_new();
    cf_type ti = { CF_T_INT64 }, ts = { CF_T_STRING }, td = { CF_T_DOUBLE }, tt = { CF_T_TIMESTAMP },
            tb = { CF_T_BOOL };
    cf_schema_add(s, "customer_id", ti, false, 0, &e);
    cf_schema_add(s, "email", ts, true, 0, &e);
    cf_schema_add(s, "full_name", ts, true, 0, &e);
    cf_schema_add(s, "location", ts, true, 0, &e);
    cf_schema_add(s, "customer_tier", ts, true, 0, &e);
    cf_schema_add(s, "lifetime_value", td, true, 0, &e);
    cf_schema_add(s, "registration_date", tt, true, 0, &e);
    cf_schema_add(s, "is_active", tb, true, 0, &e);
    cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    cf_schema_add(s, "_source_lsn", ti, true, 0, &e);
    cf_schema_add(s, "_kafka_timestamp", tt, true, 0, &e);
    const char *pk = "customer_id";
    cf_schema_set_pk(s, &pk, 1, &e);
    return s;
}

/* Row of customer `id` for event i (lsn i + 1). */
static int customer_row(cf_batch *b, int64_t id, int64_t i, const char *op, uint64_t rng, cf_err *e)
{
    static const char *const tiers[] = { "bronze", "silver", "gold", "platinum" };
    static const char *const countries[] = { "US", "DE", "FR", "JP", "BR" };
    size_t row = b->nrows;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "user%" PRId64 "@example.com", id);

    cf_col_set_i64(&b->cols[0], row, id, e);
    cf_col_set_bytes(&b->cols[1], row, buf, (size_t)n, e);
    n = snprintf(buf, sizeof buf, "First%" PRId64 " Last%" PRId64, id % 997, id % 991);
    cf_col_set_bytes(&b->cols[2], row, buf, (size_t)n, e);
    n = snprintf(buf, sizeof buf, "City%d, ST, %s", (int)(id % 50), countries[id % 5]);
    cf_col_set_bytes(&b->cols[3], row, buf, (size_t)n, e);
    cf_col_set_bytes(&b->cols[4], row, tiers[i % 4], strlen(tiers[i % 4]), e);
    cf_col_set_f64(&b->cols[5], row, (double)(rng % 100000) / 100.0, e);
    cf_col_set_i64(&b->cols[6], row, 1600000000000000LL + id * 1000000, e);
    cf_col_set_bool(&b->cols[7], row, (rng >> 7) & 1, e);
    cf_col_set_bytes(&b->cols[8], row, op, strlen(op), e);
    cf_col_set_i64(&b->cols[9], row, i + 1, e);
    cf_col_set_i64(&b->cols[10], row, 1700000000000000LL + i, e);
    return cf_batch_end_row(b, e);
}

/* Synthetic events shaped like SYSTEM.md's customers output rows. */
static int cmd_gen(cf_sink_config *cfg, int64_t nevents, int batch, int64_t keys)
{
    cf_err e = { 0 };
    cf_schema *s = customers_schema();
    cf_sink *sink = cf_sink_open(cfg, &e);
    cf_batch *b = sink ? cf_batch_new(s, &e) : NULL;
    cf_offsets cov = { 0 };
    uint64_t rng = 42;
    int64_t next_id = 1, events = 0, commits = 0;
    bool upsert = cfg->mode == CF_MODE_UPSERT;
    int rc = 1;
    double t0 = now_s();

    if (!b)
        goto fail;
    for (int64_t i = 0; i < nevents; i++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned r = (unsigned)(rng >> 33) % 100;
        int64_t id;
        const char *op = "INSERT";
        if (upsert && next_id > 1 && r < 15) {
            id = 1 + (int64_t)((rng >> 13) % (uint64_t)(next_id - 1));
            op = r < 5 ? "DELETE" : "UPDATE";
        } else {
            id = keys > 0 ? 1 + (next_id - 1) % keys : next_id;
            next_id++;
        }
        if (customer_row(b, id, i, op, rng, &e))
            goto fail;
        if ((int)b->nrows >= batch || i + 1 == nevents) {
            int64_t v;
            cf_delta_offsets_put(&cov, "postgres.public.customers", 0, i + 1, &e);
            if (commit_b(sink, b, NULL, &cov, &v, &e))
                goto fail;
            events += (int64_t)b->nrows;
            commits++;
            cf_batch_reset(b);
        }
    }
    double dt = now_s() - t0;
    printf("%s: %" PRId64 " events in %" PRId64 " commits, %.2f s, %.0f events/s, peak RSS %ld MiB\n",
           upsert ? "upsert" : "append", events, commits, dt, (double)events / dt, peak_rss_kb() / 1024);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "bench_delta: %s\n", e.msg);
out:
    cf_batch_free(b);
    cf_sink_close(sink);
    cf_schema_free(s);
    free(cov.v);
    return rc;
}

static int64_t tree_bytes;
static int add_size(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p;
    (void)ftw;
    if (flag == FTW_F)
        tree_bytes += st->st_size;
    return 0;
}

/* Bytes of every file under dir. */
static int64_t dir_bytes(const char *dir)
{
    tree_bytes = 0;
    nftw(dir, add_size, 16, FTW_PHYS);
    return tree_bytes;
}

/* Rounds of `n` updates of random existing keys (1..keys) in one commit
 * each, on a table `gen` made: the first round pays for the key index, the
 * others show what a commit costs at this table size. */
static int cmd_update(cf_sink_config *cfg, int64_t n, int64_t keys, int rounds)
{
    cf_err e = { 0 };
    cf_schema *s = customers_schema();
    cf_offsets have = { 0 }, cov = { 0 };
    cf_sink *sink = NULL;
    cf_batch *b = NULL;
    uint64_t rng = 7;
    int rc = 1;
    double t0 = now_s();

    if (keys <= 0) {
        fprintf(stderr, "bench_delta update: --keys N (the keys the table holds) is needed\n");
        goto out;
    }
    if (!(sink = cf_sink_open(cfg, &e)) || cf_sink_offsets(sink, &have, &e) || !(b = cf_batch_new(s, &e)))
        goto fail;
    int64_t base = cf_offsets_get(&have, "postgres.public.customers", 0);
    printf("update: open %.3f s\n", now_s() - t0);
    for (int r = 0; r < rounds; r++) {
        int64_t before = dir_bytes(cfg->location), v;
        for (int64_t i = 0; i < n; i++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            if (customer_row(b, 1 + (int64_t)((rng >> 13) % (uint64_t)keys), base + i, "UPDATE", rng, &e))
                goto fail;
        }
        base += n;
        cf_delta_offsets_put(&cov, "postgres.public.customers", 0, base, &e);
        double t = now_s();
        if (commit_b(sink, b, NULL, &cov, &v, &e))
            goto fail;
        double dt = now_s() - t;
        printf("update: round %d: %" PRId64 " updates in %.3f s, %.2f MB written, peak RSS %ld MiB\n", r + 1, n, dt,
               (double)(dir_bytes(cfg->location) - before) / 1e6, peak_rss_kb() / 1024);
        cf_batch_reset(b);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "bench_delta: %s\n", e.msg);
out:
    cf_batch_free(b);
    cf_sink_close(sink);
    cf_schema_free(s);
    free(have.v);
    free(cov.v);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "out", required_argument, 0, 'o' }, { "mode", required_argument, 0, 'm' },
        { "events", required_argument, 0, 'n' }, { "batch", required_argument, 0, 'b' },
        { "keys", required_argument, 0, 'k' }, { "partition-by", required_argument, 0, 'p' },
        { "input", required_argument, 0, 'i' }, { "schema", required_argument, 0, 's' },
        { "pk", required_argument, 0, 'K' }, { "soft-deletes", no_argument, 0, 'S' },
        { "checkpoint-interval", required_argument, 0, 'c' }, { "app-id", required_argument, 0, 'a' },
        { "target-file-bytes", required_argument, 0, 'T' }, { "delta-deletes", required_argument, 0, 'D' },
        { "rounds", required_argument, 0, 'R' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    cf_sink_config cfg = { .kind = "delta", .table_name = "customers", .app_id = "cdcflow" };
    const char *input = NULL, *schema = NULL, *pk = NULL;
    const char *parts[16];
    char *pb = NULL;
    int64_t nevents = 1000000, keys = 0;
    int batch = 100000, rounds = 3, c;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': cfg.location = optarg; break;
        case 'm': cfg.mode = !strcmp(optarg, "upsert") ? CF_MODE_UPSERT : CF_MODE_APPEND; break;
        case 'n': nevents = atoll(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'k': keys = atoll(optarg); break;
        case 'p':
            pb = strdup(optarg);
            cfg.npartition_by = split(pb, parts, 16);
            cfg.partition_by = parts;
            break;
        case 'i': input = optarg; break;
        case 's': schema = optarg; break;
        case 'K': pk = optarg; break;
        case 'S': cfg.soft_deletes = true; break;
        case 'c': cfg.checkpoint_interval = atoi(optarg); break;
        case 'a': cfg.app_id = optarg; break;
        case 'T': cfg.target_file_bytes = atoll(optarg); break;
        case 'R': rounds = atoi(optarg); break;
        case 'D':
            cfg.delta_deletes = !strcmp(optarg, "dv") ? CF_DELTA_DELETES_DV
                              : !strcmp(optarg, "rewrite") ? CF_DELTA_DELETES_REWRITE : CF_DELTA_DELETES_AUTO;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!cfg.location || batch <= 0) {
        usage(stderr);
        return 2;
    }
    int rc;
    if (!strcmp(cmd, "gen"))
        rc = cmd_gen(&cfg, nevents, batch, keys);
    else if (!strcmp(cmd, "update"))
        rc = cmd_update(&cfg, nevents, keys, rounds);
    else if (!strcmp(cmd, "apply") && input && schema)
        rc = cmd_apply(&cfg, input, schema, pk, batch);
    else {
        usage(stderr);
        rc = 2;
    }
    free(pb);
    return rc;
}
