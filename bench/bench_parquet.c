/* bench_parquet.c - Parquet throughput and a fixture tool for interop tests.
 *
 *   bench_parquet bench ROWS DIR [codec] write ROWS customers rows (ZSTD) to
 *                                       DIR/cdcflow.parquet, read them back,
 *                                       print rows/s and MB/s
 *   bench_parquet write PATH ROWS KIND [codec] [dict|plain] [rg_bytes] [page_bytes]
 *                                       KIND: customers | types | checkpoint;
 *                                       prints the rows written as JSON lines
 *   bench_parquet dump PATH             every row of a flat file as JSON lines
 *   bench_parquet leaf PATH DOTTED      a leaf: one JSON line per level entry
 *   bench_parquet info PATH             schema, row groups, kv as JSON
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "format/parquet/parquet.h"
#include "local_store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: the machine is shared, wall time is noisy. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void die(const char *what, const cf_err *err)
{
    fprintf(stderr, "bench_parquet: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* ---- customers (SYSTEM.md's transformed schema) ---------------------- */

static const char *firsts[] = { "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael",
    "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica",
    "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew",
    "Betty", "Anthony", "Margaret", "Mark", "Sandra", "Donald", "Ashley", "Steven", "Kimberly",
    "Paul", "Emily", "Andrew", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
    "Brian", "Dorothy", "George", "Melissa", "Timothy", "Deborah" };
static const char *lasts[] = { "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller",
    "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
    "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts" };
static const char *cities[] = { "New York, NY, USA", "Los Angeles, CA, USA", "Chicago, IL, USA",
    "Houston, TX, USA", "Phoenix, AZ, USA", "Philadelphia, PA, USA", "San Antonio, TX, USA",
    "San Diego, CA, USA", "Dallas, TX, USA", "Austin, TX, USA", "Toronto, ON, Canada",
    "Vancouver, BC, Canada", "Seattle, WA, USA", "Denver, CO, USA", "Boston, MA, USA",
    "Portland, OR, USA", "Miami, FL, USA", "Atlanta, GA, USA", "Montreal, QC, Canada",
    "Minneapolis, MN, USA" };
static const char *domains[] = { "gmail.com", "yahoo.com", "outlook.com", "example.com", "corp.io" };
static const char *tiers[] = { "bronze", "silver", "gold", "platinum" };

#define NELEM(a) ((int)(sizeof(a) / sizeof *(a)))

static cf_schema *customers_schema(void)
{
    static const struct { const char *n; cf_type_id t; } f[] = {
        { "customer_id", CF_T_INT64 }, { "email", CF_T_STRING }, { "full_name", CF_T_STRING },
        { "location", CF_T_STRING }, { "customer_tier", CF_T_STRING },
        { "lifetime_value", CF_T_DOUBLE }, { "registration_date", CF_T_TIMESTAMP },
        { "is_active", CF_T_BOOL }, { "total_orders", CF_T_INT32 },
        { "_ingestion_timestamp", CF_T_TIMESTAMP }, { "_source_system", CF_T_STRING },
        { "_cdc_operation", CF_T_STRING }, { "_pipeline_id", CF_T_STRING },
        { "_processed_timestamp", CF_T_TIMESTAMP }, { "_event_timestamp_ms", CF_T_INT64 },
        { "_source_lsn", CF_T_INT64 }, { "_kafka_timestamp", CF_T_TIMESTAMP },
    };
    cf_schema *s = cf_schema_new();
    for (int i = 0; i < NELEM(f); i++)
        cf_schema_add(s, f[i].n, (cf_type){ f[i].t, 0, 0 }, true, 0, NULL);
    return s;
}

static int64_t lsn = 23000000, ts_base = 1732406400000000LL;   /* 2024-11-24 */

static void customers_row(cf_batch *b, int64_t id)
{
    char buf[128];
    size_t r = b->nrows;
    const char *fn = firsts[rnd() % NELEM(firsts)], *ln = lasts[rnd() % NELEM(lasts)];
    int64_t ing = ts_base + id * 97 + (int64_t)(rnd() % 50);
    uint64_t op = rnd() % 100;

    cf_col_set_i64(&b->cols[0], r, id, NULL);
    int n = snprintf(buf, sizeof buf, "%c%s.%s%" PRId64 "@%s", fn[0] | 0x20, fn + 1, ln, id % 9973,
                     domains[rnd() % NELEM(domains)]);
    for (int i = 0; i < n; i++)
        if (buf[i] >= 'A' && buf[i] <= 'Z')
            buf[i] |= 0x20;
    cf_col_set_bytes(&b->cols[1], r, buf, (size_t)n, NULL);
    n = snprintf(buf, sizeof buf, "%s %s", fn, ln);
    cf_col_set_bytes(&b->cols[2], r, buf, (size_t)n, NULL);
    const char *c = cities[rnd() % NELEM(cities)];
    cf_col_set_bytes(&b->cols[3], r, c, strlen(c), NULL);
    const char *t = tiers[(rnd() % 100) < 60 ? 0 : (rnd() % NELEM(tiers))];
    cf_col_set_bytes(&b->cols[4], r, t, strlen(t), NULL);
    cf_col_set_f64(&b->cols[5], r, (double)(rnd() % 5000000) / 100.0, NULL);
    cf_col_set_i64(&b->cols[6], r, 1420070400000000LL + (int64_t)(rnd() % 315360000) * 1000000, NULL);
    cf_col_set_bool(&b->cols[7], r, rnd() % 100 < 85, NULL);
    cf_col_set_null(&b->cols[8], r, NULL);
    cf_col_set_i64(&b->cols[9], r, ing, NULL);
    cf_col_set_bytes(&b->cols[10], r, "postgres", 8, NULL);
    const char *o = op < 70 ? "INSERT" : op < 95 ? "UPDATE" : "DELETE";
    cf_col_set_bytes(&b->cols[11], r, o, strlen(o), NULL);
    cf_col_set_bytes(&b->cols[12], r, "kafka-to-delta-cdc", 18, NULL);
    cf_col_set_i64(&b->cols[13], r, ing + 1500 + (int64_t)(rnd() % 1000), NULL);
    cf_col_set_i64(&b->cols[14], r, ing / 1000 - 200 - (int64_t)(rnd() % 100), NULL);
    lsn += 100 + (int64_t)(rnd() % 900);
    cf_col_set_i64(&b->cols[15], r, lsn, NULL);
    cf_col_set_i64(&b->cols[16], r, ing - 50000 + (int64_t)(rnd() % 1000), NULL);
    cf_batch_end_row(b, NULL);
}

/* ---- types fixture --------------------------------------------------- */

static cf_schema *types_schema(void)
{
    static const struct { const char *n; cf_type t; bool nullable; } f[] = {
        { "b", { CF_T_BOOL, 0, 0 }, true }, { "i32", { CF_T_INT32, 0, 0 }, true },
        { "i64", { CF_T_INT64, 0, 0 }, false }, { "f32", { CF_T_FLOAT, 0, 0 }, true },
        { "f64", { CF_T_DOUBLE, 0, 0 }, true }, { "s", { CF_T_STRING, 0, 0 }, true },
        { "bin", { CF_T_BINARY, 0, 0 }, true }, { "d", { CF_T_DATE, 0, 0 }, true },
        { "ts", { CF_T_TIMESTAMP, 0, 0 }, true }, { "tsntz", { CF_T_TIMESTAMP_NTZ, 0, 0 }, true },
        { "t", { CF_T_TIME, 0, 0 }, true }, { "dec9", { CF_T_DECIMAL, 9, 2 }, true },
        { "dec18", { CF_T_DECIMAL, 18, 4 }, true }, { "dec38", { CF_T_DECIMAL, 38, 10 }, true },
        { "u", { CF_T_UUID, 0, 0 }, true }, { "allnull", { CF_T_STRING, 0, 0 }, true },
    };
    cf_schema *s = cf_schema_new();
    for (int i = 0; i < NELEM(f); i++)
        cf_schema_add(s, f[i].n, f[i].t, f[i].nullable, 100 + i, NULL);
    return s;
}

static void types_row(cf_batch *b, int64_t i)
{
    char s[96];
    size_t r = b->nrows;
    int64_t v = i % 7 == 3 ? i : i % 50;        /* repeats for dictionaries */
    for (int c = 0; c < b->ncols; c++) {
        cf_column *col = &b->cols[c];
        if (c == 15 || (c != 2 && (i + c) % 5 == 0)) {
            cf_col_set_null(col, r, NULL);
            continue;
        }
        switch (c) {
        case 0: cf_col_set_bool(col, r, v % 3 == 0, NULL); break;
        case 1: cf_col_set_i64(col, r, v * 1000 - 25000 + (v == 1 ? INT32_MIN + 25000 - 1000 : 0), NULL); break;
        case 2: cf_col_set_i64(col, r, i == 1 ? INT64_MAX : i * 3000000007LL - 1, NULL); break;
        case 3: cf_col_set_f64(col, r, (double)v / 8 - 2, NULL); break;
        case 4: cf_col_set_f64(col, r, v == 4 ? -0.0 : (double)v * 3.14159 - 50, NULL); break;
        case 5:
            snprintf(s, sizeof s, v % 4 == 0 ? "caf\xc3\xa9 %" PRId64 : "row-%" PRId64, v);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        case 6:
            for (int k = 0; k < 5; k++)
                s[k] = (char)(v * 37 + k * 255);
            cf_col_set_bytes(col, r, s, (size_t)(v % 6), NULL);
            break;
        case 7: cf_col_set_i64(col, r, v * 400 - 10000, NULL); break;
        case 8: cf_col_set_i64(col, r, 1700000000123456LL + v * 86400000001LL - 3000000000000000LL, NULL); break;
        case 9: cf_col_set_i64(col, r, 1600000000654321LL + v * 1000, NULL); break;
        case 10: cf_col_set_i64(col, r, (v * 1234567891LL) % 86400000000LL, NULL); break;
        case 11: cf_col_set_i64(col, r, v * 12345 - 300000, NULL); break;
        case 12: cf_col_set_i64(col, r, v * 1234567890123LL - 999999999999999LL, NULL); break;
        case 13:
            snprintf(s, sizeof s, "%s%" PRId64 "234567890123456789012345.%010" PRId64, v % 2 ? "-" : "",
                     v + 1, v * 77);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        case 14:
            snprintf(s, sizeof s, "%08" PRIx64 "-abcd-4ef0-8123-%012" PRIx64, ((uint64_t)v * 2654435761u) & 0xffffffffu,
                     (uint64_t)v * 40503);
            cf_col_set_bytes(col, r, s, strlen(s), NULL);
            break;
        }
    }
    cf_batch_end_row(b, NULL);
}

/* ---- JSON output ----------------------------------------------------- */

static void json_str(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_value(FILE *f, const cf_column *c, size_t i)
{
    if (!c->valid[i]) {
        fputs("null", f);
        return;
    }
    switch (c->type.id) {
    case CF_T_BOOL: fputs(cf_col_bool(c, i) ? "true" : "false", f); break;
    case CF_T_INT32:
    case CF_T_DATE: fprintf(f, "%" PRId32, cf_col_i32(c, i)); break;
    case CF_T_FLOAT: {
        float x = cf_col_f32(c, i);
        if (isnan(x)) fputs("\"NaN\"", f); else fprintf(f, "%.17g", (double)x);
        break;
    }
    case CF_T_DOUBLE: {
        double x = cf_col_f64(c, i);
        if (isnan(x)) fputs("\"NaN\"", f);
        else if (x == 0 && signbit(x)) fputs("-0.0", f);
        else fprintf(f, "%.17g", x);
        break;
    }
    case CF_T_STRING:
    case CF_T_UUID: {
        size_t n;
        const uint8_t *p = cf_col_bytes(c, i, &n);
        json_str(f, p, n);
        break;
    }
    case CF_T_BINARY: {
        size_t n;
        const uint8_t *p = cf_col_bytes(c, i, &n);
        fputc('"', f);
        for (size_t k = 0; k < n; k++)
            fprintf(f, "%02x", p[k]);
        fputc('"', f);
        break;
    }
    case CF_T_DECIMAL:
        if (cf_type_is_varlen(c->type)) {
            size_t n;
            const uint8_t *p = cf_col_bytes(c, i, &n);
            json_str(f, p, n);
        } else {
            /* unscaled int64 -> "123.45" */
            int64_t v = cf_col_i64(c, i);
            uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            char d[32];
            int n = snprintf(d, sizeof d, "%0*" PRIu64, c->type.scale + 1, u);
            fprintf(f, "\"%s%.*s%s%s\"", v < 0 ? "-" : "", n - c->type.scale, d,
                    c->type.scale ? "." : "", d + n - c->type.scale);
        }
        break;
    default: fprintf(f, "%" PRId64, cf_col_i64(c, i)); break;
    }
}

static void json_rows(FILE *f, const cf_batch *b)
{
    for (size_t i = 0; i < b->nrows; i++) {
        fputc('{', f);
        for (int c = 0; c < b->ncols; c++) {
            if (c)
                fputc(',', f);
            fprintf(f, "\"%s\":", b->schema->fields[c].name);
            json_value(f, &b->cols[c], i);
        }
        fputs("}\n", f);
    }
}

/* ---- modes ----------------------------------------------------------- */

static int parse_codec(const char *s, cf_codec *c)
{
    if (!strcmp(s, "zstd")) *c = CF_CODEC_ZSTD;
    else if (!strcmp(s, "snappy")) *c = CF_CODEC_SNAPPY;
    else if (!strcmp(s, "none")) *c = CF_CODEC_NONE;
    else return -1;
    return 0;
}

static int write_checkpoint(const char *path, int64_t rows, const cf_pq_options *o);

static int mode_write(int argc, char **argv)
{
    const char *path = argv[2], *kind = argv[4];
    int64_t rows = atoll(argv[3]);
    cf_pq_options o;
    cf_err err = { 0 };
    cf_schema *s;
    cf_batch *b;
    cf_pq_writer *w;
    const char *keys[] = { "cdcflow.fixture" }, *vals[] = { kind };

    cf_pq_options_default(&o);
    if (argc > 5 && parse_codec(argv[5], &o.codec))
        die("unknown codec", NULL);
    if (argc > 6)
        o.dictionary = strcmp(argv[6], "plain") != 0;
    if (argc > 7)
        o.row_group_bytes = (size_t)atoll(argv[7]);
    if (argc > 8)
        o.page_bytes = (size_t)atoll(argv[8]);
    o.nkv = 1;
    o.kv_keys = keys;
    o.kv_vals = vals;
    if (!strcmp(kind, "checkpoint"))
        return write_checkpoint(path, rows, &o);
    s = !strcmp(kind, "types") ? types_schema() : customers_schema();
    b = cf_batch_new(s, &err);
    if (!(w = cf_pq_writer_open(local_store(), path, s, &o, &err)))
        die("open", &err);
    for (int64_t i = 0; i < rows; i++) {
        if (!strcmp(kind, "types"))
            types_row(b, i);
        else
            customers_row(b, i + 1);
        if (b->nrows == 4096 || i + 1 == rows) {
            if (cf_pq_writer_write(w, b, &err))
                die("write", &err);
            json_rows(stdout, b);
            cf_batch_reset(b);
        }
    }
    if (cf_pq_writer_close(w, NULL, &err))
        die("close", &err);
    cf_batch_free(b);
    cf_schema_free(s);
    return 0;
}

/* Delta checkpoint shape: txn{appId, version, lastUpdated}, add{path,
 * partitionValues map, size, modificationTime, dataChange, stats, tags map},
 * remove{path, deletionTimestamp, dataChange}, metaData{id, partitionColumns
 * list<string>, configuration map}, protocol{minReaderVersion,
 * minWriterVersion}.  Row 0 protocol, row 1 metaData, rows 2.. txn / add /
 * remove in turn.  Printed as JSON (one object per row) for pyarrow. */
static const cf_pq_node kv_str[] = {
    { .name = "key", .rep = CF_PQ_REQUIRED, .type = { CF_T_STRING, 0, 0 } },
    { .name = "value", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
};
static const cf_pq_node map_kv[] = {
    { .name = "key_value", .rep = CF_PQ_REPEATED, .nchildren = 2, .children = kv_str },
};
static const cf_pq_node list_elem[] = {
    { .name = "element", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
};
static const cf_pq_node list_grp[] = {
    { .name = "list", .rep = CF_PQ_REPEATED, .nchildren = 1, .children = list_elem },
};
static const cf_pq_node txn_f[] = {
    { .name = "appId", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
    { .name = "version", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
    { .name = "lastUpdated", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
};
static const cf_pq_node add_f[] = {
    { .name = "path", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
    { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = map_kv, .logical = "map" },
    { .name = "size", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
    { .name = "modificationTime", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
    { .name = "dataChange", .rep = CF_PQ_OPTIONAL, .type = { CF_T_BOOL, 0, 0 } },
    { .name = "stats", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
};
static const cf_pq_node remove_f[] = {
    { .name = "path", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
    { .name = "deletionTimestamp", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT64, 0, 0 } },
    { .name = "dataChange", .rep = CF_PQ_OPTIONAL, .type = { CF_T_BOOL, 0, 0 } },
};
static const cf_pq_node meta_f[] = {
    { .name = "id", .rep = CF_PQ_OPTIONAL, .type = { CF_T_STRING, 0, 0 } },
    { .name = "partitionColumns", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = list_grp, .logical = "list" },
    { .name = "configuration", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = map_kv, .logical = "map" },
};
static const cf_pq_node proto_f[] = {
    { .name = "minReaderVersion", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT32, 0, 0 } },
    { .name = "minWriterVersion", .rep = CF_PQ_OPTIONAL, .type = { CF_T_INT32, 0, 0 } },
};
static const cf_pq_node cp_top[] = {
    { .name = "txn", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = txn_f },
    { .name = "add", .rep = CF_PQ_OPTIONAL, .nchildren = 6, .children = add_f },
    { .name = "remove", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = remove_f },
    { .name = "metaData", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = meta_f },
    { .name = "protocol", .rep = CF_PQ_OPTIONAL, .nchildren = 2, .children = proto_f },
};
static const cf_pq_node cp_root = { .name = "spark_schema", .nchildren = 5, .children = cp_top };

/* Leaf numbering (depth first): txn 0-2; add.path 3, pv key 4, pv value 5,
 * size 6, modificationTime 7, dataChange 8, stats 9; remove 10-12;
 * metaData.id 13, partitionColumns element 14, configuration key 15,
 * value 16; protocol 17-18. */
enum { NLEAF = 19 };

typedef struct leafbuf {
    int16_t *def, *rep;
    size_t   n, alloc;
    cf_schema *s;
    cf_batch *b;
} leafbuf;

static void lb_put(leafbuf *l, int16_t d, int16_t r)
{
    if (l->n == l->alloc) {
        l->alloc = l->alloc ? l->alloc * 2 : 256;
        l->def = realloc(l->def, l->alloc * sizeof *l->def);
        l->rep = realloc(l->rep, l->alloc * sizeof *l->rep);
    }
    l->def[l->n] = d;
    l->rep[l->n++] = r;
}

static void lb_str(leafbuf *l, int16_t d, int16_t r, const char *v)
{
    if (v) {
        cf_col_set_bytes(&l->b->cols[0], l->b->nrows, v, strlen(v), NULL);
        cf_batch_end_row(l->b, NULL);
    }
    lb_put(l, d, r);
}

static void lb_i64(leafbuf *l, int16_t d, int16_t r, int64_t v, bool has)
{
    if (has) {
        cf_col_set_i64(&l->b->cols[0], l->b->nrows, v, NULL);
        cf_batch_end_row(l->b, NULL);
    }
    lb_put(l, d, r);
}

static int write_checkpoint(const char *path, int64_t rows, const cf_pq_options *o)
{
    static const cf_type_id lt[NLEAF] = {
        CF_T_STRING, CF_T_INT64, CF_T_INT64, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT64,
        CF_T_INT64, CF_T_BOOL, CF_T_STRING, CF_T_STRING, CF_T_INT64, CF_T_BOOL, CF_T_STRING,
        CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT32, CF_T_INT32 };
    leafbuf L[NLEAF] = { { 0 } };
    cf_err err = { 0 };
    cf_pq_writer *w = cf_pq_writer_open_tree(local_store(), path, &cp_root, o, &err);
    char buf[256];

    if (!w)
        die("open", &err);
    for (int i = 0; i < NLEAF; i++) {
        L[i].s = cf_schema_new();
        cf_schema_add(L[i].s, "v", (cf_type){ lt[i], 0, 0 }, true, 0, NULL);
        L[i].b = cf_batch_new(L[i].s, &err);
    }
    for (int64_t row = 0; row < rows; row++) {
        int kind = row == 0 ? 4 : row == 1 ? 3 : (int)(row % 3);   /* 0 txn 1 add 2 remove */
        bool t = kind == 0, a = kind == 1, rm = kind == 2, m = kind == 3, p = kind == 4;
        /* txn */
        snprintf(buf, sizeof buf, "cdcflow-topic-%" PRId64, row % 4);
        lb_str(&L[0], t ? 2 : 0, 0, t ? buf : NULL);
        lb_i64(&L[1], t ? 2 : 0, 0, row * 10, t);
        lb_i64(&L[2], t ? 2 : 0, 0, 1700000000000 + row, t);
        /* add */
        snprintf(buf, sizeof buf, "part-%05" PRId64 ".parquet", row);
        lb_str(&L[3], a ? 2 : 0, 0, a ? buf : NULL);
        if (a && row % 2) {          /* two partition values, the second null */
            lb_str(&L[4], 3, 0, "region");
            lb_str(&L[4], 3, 1, "day");
            lb_str(&L[5], 4, 0, "eu");
            lb_str(&L[5], 3, 1, NULL);
        } else {                     /* empty map, or no add */
            lb_str(&L[4], a ? 2 : 0, 0, NULL);
            lb_str(&L[5], a ? 2 : 0, 0, NULL);
        }
        lb_i64(&L[6], a ? 2 : 0, 0, 1000 + row, a);
        lb_i64(&L[7], a ? 2 : 0, 0, 1700000000000 + row, a);
        if (a) {
            cf_col_set_bool(&L[8].b->cols[0], L[8].b->nrows, row % 4 == 1, NULL);
            cf_batch_end_row(L[8].b, NULL);
        }
        lb_put(&L[8], a ? 2 : 0, 0);
        snprintf(buf, sizeof buf, "{\"numRecords\":%" PRId64 "}", row);
        lb_str(&L[9], a ? 2 : 0, 0, a ? buf : NULL);
        /* remove */
        snprintf(buf, sizeof buf, "old-%05" PRId64 ".parquet", row);
        lb_str(&L[10], rm ? 2 : 0, 0, rm ? buf : NULL);
        lb_i64(&L[11], rm ? 2 : 0, 0, 1600000000000 + row, rm);
        if (rm) {
            cf_col_set_bool(&L[12].b->cols[0], L[12].b->nrows, false, NULL);
            cf_batch_end_row(L[12].b, NULL);
        }
        lb_put(&L[12], rm ? 2 : 0, 0);
        /* metaData */
        lb_str(&L[13], m ? 2 : 0, 0, m ? "6ba7b810-9dad-11d1-80b4-00c04fd430c8" : NULL);
        if (m) {
            lb_str(&L[14], 4, 0, "region");
            lb_str(&L[14], 4, 1, "day");
            lb_str(&L[15], 3, 0, "delta.enableChangeDataFeed");
            lb_str(&L[16], 4, 0, "true");
        } else {
            lb_str(&L[14], 0, 0, NULL);
            lb_str(&L[15], 0, 0, NULL);
            lb_str(&L[16], 0, 0, NULL);
        }
        /* protocol */
        lb_i64(&L[17], p ? 2 : 0, 0, 1, p);
        lb_i64(&L[18], p ? 2 : 0, 0, 4, p);

        printf("{\"kind\":%d,\"row\":%" PRId64 "}\n", kind, row);
    }
    for (int i = 0; i < NLEAF; i++)
        if (cf_pq_writer_write_leaf(w, i, L[i].def, L[i].rep, L[i].n, &L[i].b->cols[0], &err))
            die("write_leaf", &err);
    if (cf_pq_writer_end_row_group(w, rows, &err) || cf_pq_writer_close(w, NULL, &err))
        die("close", &err);
    for (int i = 0; i < NLEAF; i++) {
        free(L[i].def);
        free(L[i].rep);
        cf_batch_free(L[i].b);
        cf_schema_free(L[i].s);
    }
    return 0;
}

static int mode_dump(const char *path)
{
    cf_err err = { 0 };
    cf_pq_reader *r = cf_pq_reader_open(local_store(), path, &err);
    cf_batch *b;

    if (!r)
        die("open", &err);
    b = cf_batch_new(cf_pq_reader_schema(r), &err);
    for (int g = 0; g < cf_pq_reader_num_row_groups(r); g++) {
        if (cf_pq_reader_read(r, g, NULL, 0, b, &err))
            die("read", &err);
        json_rows(stdout, b);
        cf_batch_reset(b);
    }
    cf_batch_free(b);
    cf_pq_reader_close(r);
    return 0;
}

static int mode_leaf(const char *path, const char *dotted)
{
    cf_err err = { 0 };
    cf_pq_reader *r = cf_pq_reader_open(local_store(), path, &err);
    cf_pq_leaf_data d = { 0 };
    int li;

    if (!r)
        die("open", &err);
    if ((li = cf_pq_reader_find_leaf(r, dotted)) < 0)
        die("no such leaf", NULL);
    for (int g = 0; g < cf_pq_reader_num_row_groups(r); g++) {
        if (cf_pq_reader_read_leaf(r, g, li, &d, &err))
            die("read_leaf", &err);
        for (size_t i = 0; i < d.n; i++) {
            printf("{\"def\":%d,\"rep\":%d,\"v\":", d.def ? d.def[i] : 0, d.rep ? d.rep[i] : 0);
            json_value(stdout, &d.vals, i);
            puts("}");
        }
    }
    cf_pq_leaf_data_free(&d);
    cf_pq_reader_close(r);
    return 0;
}

static int mode_info(const char *path)
{
    cf_err err = { 0 };
    cf_pq_reader *r = cf_pq_reader_open(local_store(), path, &err);
    const cf_schema *s;

    if (!r)
        die("open", &err);
    s = cf_pq_reader_schema(r);
    printf("{\"num_rows\":%" PRId64 ",\"row_groups\":%d,\"fields\":[", cf_pq_reader_num_rows(r),
           cf_pq_reader_num_row_groups(r));
    for (int i = 0; i < s->nfields; i++)
        printf("%s{\"name\":\"%s\",\"type\":\"%s\",\"nullable\":%s,\"field_id\":%d}", i ? "," : "",
               s->fields[i].name, cf_type_name(s->fields[i].type.id),
               s->fields[i].nullable ? "true" : "false", s->fields[i].field_id);
    printf("],\"leaves\":[");
    for (int i = 0; i < cf_pq_reader_num_leaves(r); i++)
        printf("%s\"%s\"", i ? "," : "", cf_pq_reader_leaf_path(r, i));
    printf("]}\n");
    cf_pq_reader_close(r);
    return 0;
}

/* ---- benchmark ------------------------------------------------------- */

static int parse_codec(const char *s, cf_codec *c);

static int mode_bench(int64_t rows, const char *dir, const char *codec)
{
    char path[1024];
    cf_err err = { 0 };
    cf_schema *s = customers_schema();
    cf_batch *b = cf_batch_new(s, &err);
    cf_pq_writer *w;
    cf_pq_reader *r;
    cf_pq_file_info fi;
    double t_write = 0, t0, c0, c_write = 0, raw_bytes = 0;
    int64_t read_rows = 0;

    cf_pq_options o;
    cf_pq_options_default(&o);
    if (codec && parse_codec(codec, &o.codec))
        die("unknown codec", NULL);
    snprintf(path, sizeof path, "%s/cdcflow.parquet", dir);
    remove(path);
    if (!(w = cf_pq_writer_open(local_store(), path, s, &o, &err)))
        die("open", &err);
    for (int64_t i = 0; i < rows;) {
        cf_batch_reset(b);
        for (int k = 0; k < 65536 && i < rows; k++, i++)
            customers_row(b, i + 1);
        for (int c = 0; c < b->ncols; c++)   /* in-memory size: values + string bytes */
            raw_bytes += (double)(b->cols[c].data.len + b->nrows * (cf_col_width(&b->cols[c]) +
                                  (b->cols[c].offs ? 4 : 0)));
        t0 = now_s();
        c0 = cpu_s();
        if (cf_pq_writer_write(w, b, &err))
            die("write", &err);
        t_write += now_s() - t0;
        c_write += cpu_s() - c0;
    }
    t0 = now_s();
    c0 = cpu_s();
    if (cf_pq_writer_close(w, &fi, &err))
        die("close", &err);
    t_write += now_s() - t0;
    c_write += cpu_s() - c0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss_write_kb = ru.ru_maxrss;   /* generator batch + writer buffers */

    t0 = now_s();
    c0 = cpu_s();
    if (!(r = cf_pq_reader_open(local_store(), path, &err)))
        die("reopen", &err);
    cf_batch *rb = cf_batch_new(cf_pq_reader_schema(r), &err);
    for (int g = 0; g < cf_pq_reader_num_row_groups(r); g++) {
        cf_batch_reset(rb);
        if (cf_pq_reader_read(r, g, NULL, 0, rb, &err))
            die("read", &err);
        read_rows += (int64_t)rb->nrows;
    }
    double t_read = now_s() - t0, c_read = cpu_s() - c0;
    int rgs = cf_pq_reader_num_row_groups(r);
    int64_t rg0 = cf_pq_reader_row_group_rows(r, 0);
    cf_pq_reader_close(r);
    if (read_rows != rows)
        die("read back a different row count", NULL);

    printf("cdcflow parquet: %" PRId64 " rows, 17 columns, %s, %d row groups (%" PRId64 " rows in the first)\n",
           rows, codec ? codec : "zstd(3)", rgs, rg0);
    printf("  write: %.2f s cpu (%.2f s wall, with fsync)  %.2f M rows/s  %.1f MB/s of %.0f MB in memory\n",
           c_write, t_write, rows / c_write / 1e6, raw_bytes / c_write / 1e6, raw_bytes / 1e6);
    printf("  read:  %.2f s cpu (%.2f s wall)  %.2f M rows/s  %.1f MB/s\n", c_read, t_read,
           rows / c_read / 1e6, raw_bytes / c_read / 1e6);
    printf("  file:  %.1f MB;  peak RSS while writing %.0f MB (batches of 65536 rows)\n",
           (double)fi.file_bytes / 1e6, rss_write_kb / 1024.0);
    printf("RESULT cdcflow write_cpu_s=%.3f read_cpu_s=%.3f write_s=%.3f read_s=%.3f bytes=%" PRId64
           " rows=%" PRId64 " rg_rows=%" PRId64 " raw_bytes=%.0f\n", c_write, c_read, t_write, t_read,
           fi.file_bytes, rows, rg0, raw_bytes);
    cf_pq_file_info_free(&fi);
    cf_batch_free(rb);
    cf_batch_free(b);
    cf_schema_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "bench"))
        return mode_bench(atoll(argv[2]), argv[3], argc > 4 ? argv[4] : NULL);
    if (argc >= 5 && !strcmp(argv[1], "write"))
        return mode_write(argc, argv);
    if (argc == 3 && !strcmp(argv[1], "dump"))
        return mode_dump(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "leaf"))
        return mode_leaf(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "info"))
        return mode_info(argv[2]);
    fprintf(stderr, "usage: bench_parquet bench ROWS DIR | write PATH ROWS customers|types|checkpoint "
                    "[zstd|snappy|none] [dict|plain] [rg_bytes] [page_bytes] | dump PATH | "
                    "leaf PATH DOTTED | info PATH\n");
    return 2;
}
