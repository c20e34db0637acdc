/* avro_dec.c - Debezium change events in Avro (Kafka Connect's AvroConverter
 * behind a schema registry) -> cf_event, the same events the JSON path gives.
 *
 * A writer schema is compiled once per schema id into a plan: a flat array
 * of typed steps (children of a step are contiguous), each row column with
 * the same cf type and encoding the JSON path derives from the Connect
 * schema (cf_dec_map_connect), so both wire formats intern the same table
 * versions.  Decoding a datum walks the plan: no schema lookup, no
 * per-message parsing; every read is bounds-checked (cf_avro_read_*). */
#include "decode/debezium_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "decode/convert.h"
#include "format/avro/avro.h"
#include "util/buf.h"
#include "util/log.h"

#define MAX_STEPS   65536       /* steps of one plan: a hostile schema stays small */
#define MAX_DEPTH   32          /* plan nesting (a recursive schema stops here) */
#define MAX_PLANS   MAX_VERSIONS

enum kind {
    K_NULL, K_BOOL, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BYTES, K_STRING, K_FIXED, K_ENUM,
    K_RECORD, K_ARRAY, K_MAP, K_UNION
};

/* Roles of envelope fields. */
enum { R_SKIP, R_BEFORE, R_AFTER, R_SOURCE, R_OP, R_TS };
/* Roles of source fields: the index of cf_dec_source_str's strings, or a number. */
enum { SR_SKIP = -1, SR_DB = 0, SR_SCHEMA, SR_TABLE, SR_SNAPSHOT, SR_TS, SR_LSN, SR_TXID };

typedef struct step {
    uint8_t  kind;
    int8_t   role;              /* envelope or source field role */
    uint32_t n;                 /* record fields, union branches, fixed size, enum symbols */
    uint32_t sub;               /* first child step (record fields, union branches, item) */
    const cf_avro_node *node;   /* field names, enum symbols (rendering) */
} step;

typedef struct avro_plan {
    int64_t  id;
    bool     key;
    step    *steps;             /* [0] is the root */
    uint32_t nsteps, asteps;
    cf_avro_schema *sch;        /* owns the nodes steps point to */
    rowdesc *rd;                /* the row's table version; NULL for keys, heartbeats, truncates */
    bool     has_op;            /* a change event (else a heartbeat or other record) */
    /* keys: column names */
    int      nkey;
    char   **keys;
    size_t  *keylens;
} avro_plan;

struct cf_dec_avro {
    avro_plan **plans;
    int         n, a;
    cf_buf      raw;            /* rendering of struct/array/map columns */
};

/* ---- plans ------------------------------------------------------------- */

static void plan_free(avro_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nkey; i++)
        free(p->keys[i]);
    free(p->keys);
    free(p->keylens);
    free(p->steps);
    cf_avro_schema_free(p->sch);
    free(p);
}

void cf_dec_avro_free(cf_decoder *d)
{
    if (!d->avro)
        return;
    for (int i = 0; i < d->avro->n; i++)
        plan_free(d->avro->plans[i]);
    free(d->avro->plans);
    cf_buf_free(&d->avro->raw);
    free(d->avro);
    d->avro = NULL;
}

/* Reserve n consecutive steps; returns the first index or -1. */
static long reserve(avro_plan *p, uint32_t n, cf_err *err)
{
    uint32_t at = p->nsteps;

    if (n > MAX_STEPS - p->nsteps)
        return cf_err_set(err, CF_E_TOOBIG, "avro schema: plan over %d steps", MAX_STEPS);
    if (p->nsteps + n > p->asteps) {
        uint32_t na = p->asteps ? p->asteps : 64;
        step *ns;
        while (na < p->nsteps + n)
            na *= 2;
        if (!(ns = realloc(p->steps, sizeof *ns * na)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory compiling an avro schema");
        p->steps = ns;
        p->asteps = na;
    }
    memset(p->steps + at, 0, sizeof *p->steps * n);
    p->nsteps += n;
    return at;
}

static int compile(avro_plan *p, const cf_avro_node *n, uint32_t at, int depth, cf_err *err)
{
    static const uint8_t K[] = {
        [CF_AV_NULL] = K_NULL, [CF_AV_BOOL] = K_BOOL, [CF_AV_INT] = K_INT, [CF_AV_LONG] = K_LONG,
        [CF_AV_FLOAT] = K_FLOAT, [CF_AV_DOUBLE] = K_DOUBLE, [CF_AV_BYTES] = K_BYTES,
        [CF_AV_STRING] = K_STRING, [CF_AV_FIXED] = K_FIXED, [CF_AV_ENUM] = K_ENUM,
        [CF_AV_RECORD] = K_RECORD, [CF_AV_ARRAY] = K_ARRAY, [CF_AV_MAP] = K_MAP,
        [CF_AV_UNION] = K_UNION,
    };
    cf_avro_kind ak = cf_avro_node_kind(n);
    uint32_t cnt = 0;
    long base = 0;

    if (depth > MAX_DEPTH)
        return cf_err_set(err, CF_E_TOOBIG, "avro schema nested deeper than %d (recursive?)", MAX_DEPTH);
    p->steps[at].kind = K[ak];
    p->steps[at].node = n;
    p->steps[at].role = R_SKIP;
    switch (ak) {
    case CF_AV_FIXED:
        p->steps[at].n = (uint32_t)cf_avro_node_size(n);
        return 0;
    case CF_AV_ENUM:
        p->steps[at].n = (uint32_t)cf_avro_node_count(n);
        return 0;
    case CF_AV_RECORD:
    case CF_AV_UNION:
    case CF_AV_ARRAY:
    case CF_AV_MAP:
        cnt = (uint32_t)cf_avro_node_count(n);
        break;
    default:
        return 0;
    }
    if ((base = reserve(p, cnt, err)) < 0)
        return -1;
    p->steps[at].n = cnt;
    p->steps[at].sub = (uint32_t)base;
    for (uint32_t i = 0; i < cnt; i++)
        if (compile(p, cf_avro_node_child(n, (int)i), (uint32_t)base + i, depth + 1, err))
            return -1;
    return 0;
}

/* T of a union [null, T] (or [T, null]); n itself otherwise.  *optional
 * says whether null was a branch.  NULL for other unions. */
static const cf_avro_node *unwrap(const cf_avro_node *n, bool *optional)
{
    *optional = false;
    if (cf_avro_node_kind(n) != CF_AV_UNION)
        return n;
    if (cf_avro_node_count(n) != 2)
        return NULL;
    for (int i = 0; i < 2; i++)
        if (cf_avro_node_kind(cf_avro_node_child(n, i)) == CF_AV_NULL) {
            *optional = true;
            return cf_avro_node_child(n, 1 - i);
        }
    return NULL;
}

/* Connect's type name of an Avro node, as the JSON converter names it. */
static const char *connect_type(const cf_avro_node *n)
{
    const char *ct = cf_avro_node_attr(n, "connect.type", NULL);

    switch (cf_avro_node_kind(n)) {
    case CF_AV_BOOL: return "boolean";
    case CF_AV_INT: return ct && (!strcmp(ct, "int8") || !strcmp(ct, "int16")) ? ct : "int32";
    case CF_AV_LONG: return "int64";
    case CF_AV_FLOAT: return "float32";
    case CF_AV_DOUBLE: return "float64";
    case CF_AV_BYTES:
    case CF_AV_FIXED: return "bytes";
    case CF_AV_STRING:
    case CF_AV_ENUM: return "string";
    case CF_AV_RECORD: return "struct";
    case CF_AV_ARRAY: return "array";
    case CF_AV_MAP: return "map";
    default: return NULL;
    }
}

static bool param(const cf_avro_node *n, const char *cp, const char *plain, long *out)
{
    const char *s = cf_avro_node_attr(n, "connect.parameters", cp);
    char *e;

    if (s) {
        long v = strtol(s, &e, 10);
        if (*s && !*e && v >= -100000 && v <= 100000) {
            *out = v;
            return true;
        }
        return false;
    }
    return cf_avro_node_attr_int(n, plain, out) == 0;
}

/* Connect's name for an Avro logical type, for writers other than Kafka
 * Connect's converters (which name the Connect type themselves). */
static const char *logical_name(const char *lt)
{
    static const char *const M[][2] = {
        { "decimal", "org.apache.kafka.connect.data.Decimal" },
        { "date", "org.apache.kafka.connect.data.Date" },
        { "time-millis", "org.apache.kafka.connect.data.Time" },
        { "time-micros", "io.debezium.time.MicroTime" },
        { "timestamp-millis", "org.apache.kafka.connect.data.Timestamp" },
        { "timestamp-micros", "io.debezium.time.MicroTimestamp" },
        { "uuid", "io.debezium.data.Uuid" },
    };
    for (size_t i = 0; lt && i < sizeof M / sizeof *M; i++)
        if (!strcmp(lt, M[i][0]))
            return M[i][1];
    return NULL;
}

/* Whether the Avro type can carry the column's encoding. */
static bool enc_fits(uint8_t enc, cf_avro_kind k)
{
    switch (enc) {
    case E_BOOL: return k == CF_AV_BOOL;
    case E_INT32:
    case E_DATE:
    case E_TIME_MS: return k == CF_AV_INT;
    case E_INT64:
    case E_TIME_US:
    case E_TIME_NS:
    case E_TS_MS:
    case E_TS_NS: return k == CF_AV_LONG || k == CF_AV_INT;
    case E_TS_US: return k == CF_AV_LONG || k == CF_AV_STRING;    /* ZonedTimestamp: ISO text */
    case E_FLOAT: return k == CF_AV_FLOAT || k == CF_AV_DOUBLE;
    case E_STRING: return k == CF_AV_STRING || k == CF_AV_ENUM;
    case E_BYTES:
    case E_DEC_B64: return k == CF_AV_BYTES || k == CF_AV_FIXED;
    case E_VSDEC: return k == CF_AV_RECORD;
    case E_RAW: return true;
    default: return false;
    }
}

/* The Connect name of a record ("srv.public.customers.Value"): the
 * converter's "connect.name", else namespace.name. */
static const char *row_name(const cf_avro_node *rec, char *buf, size_t cap)
{
    const char *cn = cf_avro_node_attr(rec, "connect.name", NULL);
    const char *ns = cf_avro_node_attr(rec, "namespace", NULL), *nm = cf_avro_node_name(rec);

    if (cn)
        return cn;
    if (!nm)
        return "";
    if (!ns || strchr(nm, '.'))
        return nm;
    snprintf(buf, cap, "%s.%s", ns, nm);
    return buf;
}

/* The row record (Debezium's <table>.Value) -> a registered table version. */
static rowdesc *row_version(cf_decoder *d, const cf_avro_node *rec, cf_err *err)
{
    int nf = cf_avro_node_count(rec);
    cf_schema *s = cf_schema_new();
    colenc *enc = calloc((size_t)(nf ? nf : 1), sizeof *enc);
    char table[256], full[512];

    if (!s || !enc) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (nf > MAX_COLUMNS) {
        cf_err_set(err, CF_E_TOOBIG, "value: more than %d columns", MAX_COLUMNS);
        goto fail;
    }
    for (int i = 0; i < nf; i++) {
        const char *col = cf_avro_node_field(rec, i), *cn, *ty;
        bool optional;
        const cf_avro_node *n = unwrap(cf_avro_node_child(rec, i), &optional);
        long scale = 0, prec = 0;
        bool has_scale, has_prec;
        char why[160];
        cf_type t;

        if (!n || !(ty = connect_type(n))) {
            cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: column '%s': unsupported type", col);
            goto fail;
        }
        cn = cf_avro_node_attr(n, "connect.name", NULL);
        if (!cn && cf_avro_node_kind(n) == CF_AV_RECORD)
            cn = cf_avro_node_name(n);      /* VariableScaleDecimal, Geometry, ... */
        if (!cn)
            cn = logical_name(cf_avro_node_attr(n, "logicalType", NULL));
        has_scale = param(n, "scale", "scale", &scale);
        has_prec = param(n, "connect.decimal.precision", "precision", &prec);
        if (cf_dec_map_connect(ty, strlen(ty), cn, cn ? strlen(cn) : 0, has_scale, scale, has_prec,
                               prec, &t, &enc[i], why, sizeof why)) {
            cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: column '%s': %s", col, why);
            goto fail;
        }
        if (!enc_fits(enc[i].enc, cf_avro_node_kind(n))) {
            cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: column '%s': Connect type %s%s%s in an "
                       "avro %s", col, ty, cn ? " " : "", cn ? cn : "", connect_type(n));
            goto fail;
        }
        if (cf_schema_find(s, col) >= 0) {
            cf_err_set(err, CF_E_PARSE, "avro schema: duplicate column '%s'", col);
            goto fail;
        }
        if (cf_schema_add(s, col, t, optional, 0, err) < 0)
            goto fail;
    }
    cf_dec_table_from_struct(row_name(rec, full, sizeof full), table, sizeof table);
    return cf_dec_intern(d, s, enc, table, err);
fail:
    cf_schema_free(s);
    free(enc);
    return NULL;
}

static int8_t source_role(const char *f)
{
    static const struct { const char *name; int8_t role; } R[] = {
        { "ts_ms", SR_TS }, { "lsn", SR_LSN }, { "txId", SR_TXID }, { "db", SR_DB },
        { "schema", SR_SCHEMA }, { "table", SR_TABLE }, { "snapshot", SR_SNAPSHOT },
    };
    for (size_t i = 0; i < sizeof R / sizeof *R; i++)
        if (!strcmp(f, R[i].name))
            return R[i].role;
    return SR_SKIP;
}

/* Roles for an Envelope record: before/after rows, source, op, ts_ms. */
static int envelope_roles(cf_decoder *d, avro_plan *p, cf_err *err)
{
    const cf_avro_node *root = cf_avro_schema_root(p->sch);
    const step *r = &p->steps[0];

    for (uint32_t i = 0; i < r->n; i++) {
        const char *f = cf_avro_node_field(root, (int)i);
        step *st = &p->steps[r->sub + i];
        bool opt;
        const cf_avro_node *n = unwrap(cf_avro_node_child(root, (int)i), &opt);
        int8_t role = !strcmp(f, "before") ? R_BEFORE : !strcmp(f, "after") ? R_AFTER :
                      !strcmp(f, "source") ? R_SOURCE : !strcmp(f, "op") ? R_OP :
                      !strcmp(f, "ts_ms") ? R_TS : R_SKIP;

        if (role == R_SKIP)
            continue;
        if (!n)
            return cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: envelope field '%s': a union "
                              "other than [null, T]", f);
        if ((role == R_BEFORE || role == R_AFTER) && cf_avro_node_kind(n) == CF_AV_RECORD) {
            rowdesc *rd = row_version(d, n, err);
            if (!rd)
                return -1;
            if (p->rd && p->rd != rd)
                return cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: before and after differ");
            p->rd = rd;
        } else if ((role == R_BEFORE || role == R_AFTER) ||
                   (role == R_SOURCE && cf_avro_node_kind(n) != CF_AV_RECORD) ||
                   (role == R_OP && cf_avro_node_kind(n) != CF_AV_STRING) ||
                   (role == R_TS && cf_avro_node_kind(n) != CF_AV_LONG)) {
            return cf_err_set(err, CF_E_UNSUPPORTED, "avro schema: envelope field '%s' of an "
                              "unexpected type", f);
        }
        st->role = role;
        if (role == R_OP)
            p->has_op = true;
        if (role == R_SOURCE) {
            /* The record step sits at st itself, or at the non-null branch. */
            step *rec = st;
            if (st->kind == K_UNION)
                for (uint32_t b = 0; b < 2; b++)
                    if (p->steps[st->sub + b].kind == K_RECORD)
                        rec = &p->steps[st->sub + b];
            for (uint32_t k = 0; k < rec->n; k++)
                p->steps[rec->sub + k].role = source_role(cf_avro_node_field(rec->node, (int)k));
        }
    }
    return 0;
}

static int key_names(avro_plan *p, cf_err *err)
{
    const cf_avro_node *root = cf_avro_schema_root(p->sch);
    int n = cf_avro_node_kind(root) == CF_AV_RECORD ? cf_avro_node_count(root) : 0;

    if (n > MAX_KEY_COLUMNS)
        n = MAX_KEY_COLUMNS;
    if (n && (!(p->keys = calloc((size_t)n, sizeof *p->keys)) ||
              !(p->keylens = calloc((size_t)n, sizeof *p->keylens))))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if (!(p->keys[i] = strdup(cf_avro_node_field(root, i))))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        p->keylens[i] = strlen(p->keys[i]);
        p->nkey = i + 1;
    }
    return 0;
}

static avro_plan *plan_compile(cf_decoder *d, int64_t id, bool key, const char *json, size_t len,
                               cf_err *err)
{
    avro_plan *p = calloc(1, sizeof *p);

    if (!p) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    p->id = id;
    p->key = key;
    if (!(p->sch = cf_avro_schema_parse(json, len, err)) || reserve(p, 1, err) < 0 ||
        compile(p, cf_avro_schema_root(p->sch), 0, 0, err))
        goto fail;
    if (key ? key_names(p, err)
            : p->steps[0].kind == K_RECORD && envelope_roles(d, p, err))
        goto fail;
    return p;
fail:
    cf_err_wrap(err, "%s schema id %lld", key ? "key" : "value", (long long)id);
    plan_free(p);
    return NULL;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The writer schema of id, waiting out a registry that does not answer. */
static int schema_wait(cf_decoder *d, int64_t id, const char **json, size_t *len, cf_err *err)
{
    double deadline = mono_s() + d->reg_wait_s;
    unsigned pause_ms = 200;

    for (;;) {
        if (cf_registry_schema(d->reg, id, json, len, err) == 0) {
            cf_err_clear(err);      /* a failed try before must not read as this decode's error */
            return 0;
        }
        if (!err->retriable)
            return -1;
        if (d->stop && d->stop()) {
            cf_err_set(err, CF_E_STOPPED, "stopped while waiting for the schema registry");
            return -1;
        }
        if (mono_s() >= deadline) {
            cf_err_wrap(err, "schema registry unavailable for %u s", d->reg_wait_s);
            err->retriable = false;
            err->fatal = true;      /* the message is fine: stop rather than dead-letter it */
            return -1;
        }
        cf_log(CF_LOG_WARN, "decode", "%s: retrying in %u ms", err->msg, pause_ms);
        nanosleep(&(struct timespec){ pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L }, NULL);
        if ((pause_ms *= 2) > 5000)
            pause_ms = 5000;
    }
}

/* The plan of a schema id: compiled once per decoder. */
static const avro_plan *plan_get(cf_decoder *d, int64_t id, bool key, cf_err *err)
{
    struct cf_dec_avro *a = d->avro;
    const char *json;
    size_t len;
    avro_plan *p;

    if (!a) {
        if (!(a = d->avro = calloc(1, sizeof *a))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        cf_buf_init(&a->raw, d->max_msg * 2 + 1024);
    }
    for (int i = 0; i < a->n; i++)
        if (a->plans[i]->id == id && a->plans[i]->key == key)
            return a->plans[i];
    if (a->n >= MAX_PLANS) {
        cf_err_set(err, CF_E_TOOBIG, "more than %d schema ids", MAX_PLANS);
        return NULL;
    }
    if (a->n == a->a) {
        int na = a->a ? a->a * 2 : 16;
        avro_plan **np = realloc(a->plans, sizeof *np * (size_t)na);
        if (!np) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        a->plans = np;
        a->a = na;
    }
    if (schema_wait(d, id, &json, &len, err) || !(p = plan_compile(d, id, key, json, len, err)))
        return NULL;
    if (!key)
        d->schema_parses++;
    a->plans[a->n++] = p;
    return p;
}

/* ---- datums ------------------------------------------------------------ */

typedef struct ctx {
    cf_decoder *d;
    const avro_plan *p;
    cf_avro_cur c;
    cf_err *err;
    const char *what;           /* "value" or "key" */
    /* Copies of the datum's strings: one arena block per message, as large
     * as the datum, which is enough: a string of n bytes takes at least
     * n + 1 there (with its length prefix), n + 1 here (with its NUL). */
    char *sp, *se;
} ctx;

static long pos(const ctx *x) { return (long)(x->c.p - x->c.start); }

static int bad_branch(ctx *x, int64_t b) __attribute__((noinline, cold));

static int bad_branch(ctx *x, int64_t b)
{
    return cf_err_setpos(x->err, CF_E_PARSE, pos(x), "%s: union branch %lld out of range at byte %ld",
                         x->what, (long long)b, pos(x));
}

/* The step a union's branch selects (st itself when not a union). */
static inline int branch(ctx *x, const step **st)
{
    int64_t b;

    if ((*st)->kind != K_UNION)
        return 0;
    if (cf_avro_read_long(&x->c, &b, x->err))
        return -1;
    if (b < 0 || b >= (*st)->n)
        return bad_branch(x, b);
    *st = &x->p->steps[(*st)->sub + b];
    return 0;
}

/* The bytes of a string, bytes or fixed value, in place. */
static inline int read_bytes(ctx *x, const step *st, const uint8_t **p, size_t *n)
{
    if (st->kind == K_FIXED)
        return cf_avro_read_fixed(&x->c, *n = st->n, p, x->err);
    if (cf_avro_read_len(&x->c, n, x->err))       /* checks that n bytes follow */
        return -1;
    *p = x->c.p;
    x->c.p += *n;
    return 0;
}

static int skip(ctx *x, const step *st);

/* Array and map blocks: count, [byte size when negative], items; map keys
 * are skipped.  Each item is `item` (or skipped when NULL). */
static int blocks(ctx *x, const step *st, int (*item)(ctx *, const step *, void *), void *ud)
{
    for (;;) {
        int64_t cnt, bytes;
        if (cf_avro_read_long(&x->c, &cnt, x->err))
            return -1;
        if (cnt == 0)
            return 0;
        if (cnt < 0) {
            if (cnt == INT64_MIN || cf_avro_read_long(&x->c, &bytes, x->err))
                return cf_avro_read_fail(&x->c, "bad block count", x->err);
            cnt = -cnt;
        }
        /* Items of a null type take no bytes: the cap keeps a tiny input
         * from asking for billions of them. */
        if ((uint64_t)cnt > (uint64_t)(x->c.end - x->c.p) + 1024)
            return cf_avro_read_fail(&x->c, "array or map block past the data", x->err);
        for (int64_t i = 0; i < cnt; i++) {
            if (st->kind == K_MAP) {
                size_t kl;
                const uint8_t *kp;
                if (cf_avro_read_len(&x->c, &kl, x->err) || cf_avro_read_fixed(&x->c, kl, &kp, x->err))
                    return -1;
            }
            if (item ? item(x, &x->p->steps[st->sub], ud) : skip(x, &x->p->steps[st->sub]))
                return -1;
        }
    }
}

/* Skip the common primitives here, the rest through skip(). */
static inline int skip_fast(ctx *x, const step *st)
{
    int64_t v;
    size_t n;

    if (branch(x, &st))
        return -1;
    switch (st->kind) {
    case K_NULL: return 0;
    case K_INT:
    case K_LONG: return cf_avro_read_long(&x->c, &v, x->err);
    case K_STRING:
        if (cf_avro_read_len(&x->c, &n, x->err))
            return -1;
        x->c.p += n;
        return 0;
    default: return skip(x, st);
    }
}

static int skip(ctx *x, const step *st)
{
    const uint8_t *p;
    size_t n;
    int64_t v;

    if (branch(x, &st))
        return -1;
    switch (st->kind) {
    case K_NULL: return 0;
    case K_BOOL: return cf_avro_read_fixed(&x->c, 1, &p, x->err);
    case K_INT:
    case K_LONG:
    case K_ENUM: return cf_avro_read_long(&x->c, &v, x->err);
    case K_FLOAT: return cf_avro_read_fixed(&x->c, 4, &p, x->err);
    case K_DOUBLE: return cf_avro_read_fixed(&x->c, 8, &p, x->err);
    case K_BYTES:
    case K_STRING:
    case K_FIXED: return read_bytes(x, st, &p, &n);
    case K_RECORD:
        for (uint32_t i = 0; i < st->n; i++)
            if (skip_fast(x, &x->p->steps[st->sub + i]))
                return -1;
        return 0;
    case K_ARRAY:
    case K_MAP: return blocks(x, st, NULL, NULL);
    default: return cf_avro_read_fail(&x->c, "bad plan step", x->err);
    }
}

/* ---- struct/array/map columns as JSON text (what JsonConverter writes) -- */

static int render(ctx *x, const step *st);

static int put_json_str(cf_buf *b, const uint8_t *s, size_t n, cf_err *err)
{
    static const char hex[] = "0123456789abcdef";

    if (cf_buf_putc(b, '"', err))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            if (cf_buf_putc(b, '\\', err) || cf_buf_putc(b, c, err))
                return -1;
        } else if (c < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            if (cf_buf_append(b, e, 6, err))
                return -1;
        } else if (cf_buf_putc(b, c, err)) {
            return -1;
        }
    }
    return cf_buf_putc(b, '"', err);
}

/* Java's Double.toString digits for the common range: the shortest text
 * that reads back to the same double, with ".0" on integral values. */
static int put_double(cf_buf *b, double v, cf_err *err)
{
    char t[40];

    if (isnan(v) || isinf(v))
        return cf_buf_printf(b, err, "\"%s\"", isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    if (!strpbrk(t, ".e"))
        strcat(t, ".0");
    return cf_buf_append(b, t, strlen(t), err);
}

static int render_item(ctx *x, const step *st, void *ud)
{
    int *first = ud;

    if (!*first && cf_buf_putc(&x->d->avro->raw, ',', x->err))
        return -1;
    *first = 0;
    return render(x, st);
}

static int render(ctx *x, const step *st)
{
    cf_buf *b = &x->d->avro->raw;
    const uint8_t *p;
    size_t n;
    int64_t v;
    int first = 1;

    if (branch(x, &st))
        return -1;
    switch (st->kind) {
    case K_NULL: return cf_buf_append(b, "null", 4, x->err);
    case K_BOOL:
        if (cf_avro_read_fixed(&x->c, 1, &p, x->err))
            return -1;
        return p[0] ? cf_buf_append(b, "true", 4, x->err) : cf_buf_append(b, "false", 5, x->err);
    case K_INT:
    case K_LONG:
        return cf_avro_read_long(&x->c, &v, x->err) ? -1 : cf_buf_printf(b, x->err, "%lld", (long long)v);
    case K_ENUM: {
        const char *sym;
        if (cf_avro_read_long(&x->c, &v, x->err))
            return -1;
        if (v < 0 || v >= st->n || !(sym = cf_avro_node_symbol(st->node, (int)v)))
            return cf_avro_read_fail(&x->c, "enum index out of range", x->err);
        return put_json_str(b, (const uint8_t *)sym, strlen(sym), x->err);
    }
    case K_FLOAT: {
        float f;
        return cf_avro_read_float(&x->c, &f, x->err) ? -1 : put_double(b, f, x->err);
    }
    case K_DOUBLE: {
        double dv;
        return cf_avro_read_double(&x->c, &dv, x->err) ? -1 : put_double(b, dv, x->err);
    }
    case K_STRING:
        if (cf_avro_read_len(&x->c, &n, x->err) || cf_avro_read_fixed(&x->c, n, &p, x->err))
            return -1;
        return put_json_str(b, p, n, x->err);
    case K_BYTES:
    case K_FIXED: {
        char *t;
        if (st->kind == K_BYTES ? cf_avro_read_len(&x->c, &n, x->err) : (n = st->n, 0))
            return -1;
        if (cf_avro_read_fixed(&x->c, n, &p, x->err) || cf_buf_reserve(b, n / 3 * 4 + 8, x->err))
            return -1;
        t = (char *)b->data + b->len;
        t[0] = '"';
        cf_conv_base64_encode(p, n, t + 1);
        b->len += strlen(t + 1) + 1;
        return cf_buf_putc(b, '"', x->err);
    }
    case K_RECORD:
        if (cf_buf_putc(b, '{', x->err))
            return -1;
        for (uint32_t i = 0; i < st->n; i++) {
            const char *f = cf_avro_node_field(st->node, (int)i);
            if ((i && cf_buf_putc(b, ',', x->err)) || put_json_str(b, (const uint8_t *)f, strlen(f), x->err) ||
                cf_buf_putc(b, ':', x->err) || render(x, &x->p->steps[st->sub + i]))
                return -1;
        }
        return cf_buf_putc(b, '}', x->err);
    case K_ARRAY:
        if (cf_buf_putc(b, '[', x->err) || blocks(x, st, render_item, &first))
            return -1;
        return cf_buf_putc(b, ']', x->err);
    case K_MAP:
        /* Keys need the bytes blocks() skips over: walk the blocks here. */
        if (cf_buf_putc(b, '{', x->err))
            return -1;
        for (;;) {
            int64_t cnt, bytes;
            if (cf_avro_read_long(&x->c, &cnt, x->err))
                return -1;
            if (cnt == 0)
                break;
            if (cnt < 0) {
                if (cnt == INT64_MIN || cf_avro_read_long(&x->c, &bytes, x->err))
                    return cf_avro_read_fail(&x->c, "bad block count", x->err);
                cnt = -cnt;
            }
            if ((uint64_t)cnt > (uint64_t)(x->c.end - x->c.p))    /* a key takes a byte */
                return cf_avro_read_fail(&x->c, "map block past the data", x->err);
            for (int64_t i = 0; i < cnt; i++, first = 0)
                if ((!first && cf_buf_putc(b, ',', x->err)) || cf_avro_read_len(&x->c, &n, x->err) ||
                    cf_avro_read_fixed(&x->c, n, &p, x->err) || put_json_str(b, p, n, x->err) ||
                    cf_buf_putc(b, ':', x->err) || render(x, &x->p->steps[st->sub]))
                    return -1;
        }
        return cf_buf_putc(b, '}', x->err);
    default:
        return cf_avro_read_fail(&x->c, "bad plan step", x->err);
    }
}

/* ---- row images -------------------------------------------------------- */

static int col_fail(ctx *x, const cf_field *f, const char *msg)
{
    return cf_dec_col_fail(x->err, pos(x), x->what, f->name, "%s", msg);
}

static int arena_copy(ctx *x, const uint8_t *p, size_t n, cf_value *v, cf_vkind kind)
{
    char *s = cf_dec_alloc(x->d->arena, n + 1, x->err);

    if (!s)
        return -1;
    memcpy(s, p, n);
    s[n] = '\0';
    v->kind = kind;
    v->s = s;
    v->n = n;
    return 0;
}

/* A string of the datum (just read, at p) into the message's string block
 * (fixed-size values have no length prefix: they may find it full). */
static inline int datum_copy(ctx *x, const uint8_t *p, size_t n, cf_value *v, cf_vkind kind)
{
    char *s = x->sp;

    if ((size_t)(x->se - s) < n + 1)
        return arena_copy(x, p, n, v, kind);
    memcpy(s, p, n);
    s[n] = '\0';
    x->sp += n + 1;
    v->kind = kind;
    v->s = s;
    v->n = n;
    return 0;
}

/* io.debezium.data.VariableScaleDecimal: record {scale: int, value: bytes}. */
static int vsdec(ctx *x, const step *st, const cf_field *f, cf_value *v)
{
    int64_t scale = 0;
    const uint8_t *b = NULL;
    size_t n = 0;
    bool have = false;

    for (uint32_t i = 0; i < st->n; i++) {
        const step *fs = &x->p->steps[st->sub + i];
        const char *name = cf_avro_node_field(st->node, (int)i);
        if (branch(x, &fs))
            return -1;
        if (!strcmp(name, "scale") && fs->kind == K_INT) {
            if (cf_avro_read_long(&x->c, &scale, x->err))
                return -1;
        } else if (!strcmp(name, "value") && fs->kind == K_BYTES) {
            if (read_bytes(x, fs, &b, &n))
                return -1;
            have = true;
        } else if (skip(x, fs)) {
            return -1;
        }
    }
    if (!have || scale < -1000 || scale > 1000)
        return col_fail(x, f, "VariableScaleDecimal without a value or with a bad scale");
    return cf_dec_decimal(x->d, f, b, n, (int)scale, v, x->err, pos(x), x->what);
}

static int scaled(ctx *x, const cf_field *f, int64_t mul, int64_t div, cf_value *v)
{
    int64_t t;

    if (cf_avro_read_long(&x->c, &t, x->err))
        return -1;
    if (mul > 1) {
        if (t > INT64_MAX / mul || t < INT64_MIN / mul)
            return col_fail(x, f, "time value out of range");
        t *= mul;
    }
    if (div > 1)
        t = cf_conv_floordiv(t, div);
    v->kind = CF_V_INT;
    v->i = t;
    return 0;
}

static inline int value(ctx *x, const step *st, const colenc *e, const cf_field *f, cf_value *v)
{
    cf_decoder *d = x->d;
    const uint8_t *p;
    size_t n;

    if (branch(x, &st))
        return -1;
    if (st->kind == K_NULL) {
        v->kind = CF_V_NULL;
        return 0;
    }
    switch (e->enc) {
    case E_BOOL:
        if (cf_avro_read_fixed(&x->c, 1, &p, x->err))
            return -1;
        v->kind = CF_V_BOOL;
        v->b = p[0] != 0;
        return 0;
    case E_INT32:
    case E_INT64:
    case E_DATE:
        if (cf_avro_read_long(&x->c, &v->i, x->err))
            return -1;
        if (st->kind == K_INT && (v->i < INT32_MIN || v->i > INT32_MAX))
            return col_fail(x, f, "integer out of int32 range");
        v->kind = CF_V_INT;
        return 0;
    case E_FLOAT:
        v->kind = CF_V_DOUBLE;
        if (st->kind == K_FLOAT) {
            float fl;
            if (cf_avro_read_float(&x->c, &fl, x->err))
                return -1;
            v->d = fl;
            return 0;
        }
        return cf_avro_read_double(&x->c, &v->d, x->err);
    case E_STRING:
        if (st->kind == K_ENUM) {
            int64_t i;
            const char *sym;
            if (cf_avro_read_long(&x->c, &i, x->err))
                return -1;
            if (i < 0 || i >= st->n || !(sym = cf_avro_node_symbol(st->node, (int)i)))
                return col_fail(x, f, "enum index out of range");
            v->kind = CF_V_STRING;
            v->s = sym;             /* lives with the plan, past the batch */
            v->n = strlen(sym);
            return 0;
        }
        if (read_bytes(x, st, &p, &n))
            return -1;
        if (n == d->ph_len && memcmp(p, d->ph, n) == 0) {
            v->kind = CF_V_UNAVAILABLE;
            return 0;
        }
        return datum_copy(x, p, n, v, CF_V_STRING);
    case E_BYTES:
        if (read_bytes(x, st, &p, &n))
            return -1;
        if (n == d->ph_len && memcmp(p, d->ph, n) == 0) {
            v->kind = CF_V_UNAVAILABLE;
            return 0;
        }
        return datum_copy(x, p, n, v, CF_V_BYTES);
    case E_DEC_B64:
        if (read_bytes(x, st, &p, &n))
            return -1;
        return cf_dec_decimal(d, f, p, n, e->scale, v, x->err, pos(x), x->what);
    case E_VSDEC:
        return vsdec(x, st, f, v);
    case E_TIME_MS:
    case E_TS_MS:
        return scaled(x, f, 1000, 1, v);
    case E_TIME_US:
        return scaled(x, f, 1, 1, v);
    case E_TIME_NS:
    case E_TS_NS:
        return scaled(x, f, 1, 1000, v);
    case E_TS_US: {
        bool zone;
        if (st->kind != K_STRING)
            return scaled(x, f, 1, 1, v);
        if (read_bytes(x, st, &p, &n))
            return -1;
        if (cf_conv_iso_ts((const char *)p, n, &v->i, &zone))
            return col_fail(x, f, "bad ISO-8601 timestamp");
        v->kind = CF_V_INT;
        return 0;
    }
    case E_RAW: {
        cf_buf *b = &d->avro->raw;
        cf_buf_reset(b);
        if (render(x, st))
            return -1;
        /* An unchanged TOASTed array comes as ["<placeholder>"]. */
        if (b->len == d->ph_len + 4 && b->data[0] == '[' && b->data[1] == '"' &&
            memcmp(b->data + 2, d->ph, d->ph_len) == 0 && b->data[d->ph_len + 2] == '"') {
            v->kind = CF_V_UNAVAILABLE;
            return 0;
        }
        return arena_copy(x, b->data, b->len, v, CF_V_STRING);
    }
    default:
        return col_fail(x, f, "unsupported encoding");
    }
}

/* A before/after field: null, or the row record. */
static int image(ctx *x, const step *st, const rowdesc *rd, cf_row *row)
{
    const cf_schema *s = rd->schema;
    cf_value *vals;

    if (branch(x, &st))
        return -1;
    if (st->kind == K_NULL) {
        row->present = false;
        return 0;
    }
    if (!(vals = cf_dec_alloc(x->d->arena, sizeof *vals * (size_t)(s->nfields ? s->nfields : 1), x->err)))
        return -1;
    for (uint32_t i = 0; i < st->n; i++)
        if (value(x, &x->p->steps[st->sub + i], &rd->enc[i], &s->fields[i], &vals[i]))
            return -1;
    row->present = true;
    row->vals = vals;
    return 0;
}

static int source(ctx *x, topic *t, const step *st, cf_source_info *src)
{
    if (branch(x, &st))
        return -1;
    if (st->kind == K_NULL)
        return 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const step *fs = &x->p->steps[st->sub + i];
        int role = fs->role;
        const uint8_t *p;
        size_t n;
        int64_t *iv;

        if (role == SR_SKIP) {
            if (skip_fast(x, fs))
                return -1;
            continue;
        }
        if (branch(x, &fs))
            return -1;
        if (fs->kind == K_NULL)
            continue;
        iv = role == SR_TS ? &src->ts_ms : role == SR_LSN ? &src->lsn : role == SR_TXID ? &src->txid : NULL;
        if (iv && (fs->kind == K_LONG || fs->kind == K_INT)) {
            if (cf_avro_read_long(&x->c, iv, x->err))
                return -1;
        } else if (!iv && fs->kind == K_STRING) {
            const char **sv = role == SR_DB ? &src->db : role == SR_SCHEMA ? &src->schema :
                              role == SR_TABLE ? &src->table : &src->snapshot;
            if (cf_avro_read_len(&x->c, &n, x->err) || cf_avro_read_fixed(&x->c, n, &p, x->err) ||
                !(*sv = cf_dec_source_str(x->d, t, role, (const char *)p, n, x->err)))
                return -1;
        } else if (role == SR_SNAPSHOT && fs->kind == K_BOOL) {   /* Debezium 1.x */
            if (cf_avro_read_fixed(&x->c, 1, &p, x->err))
                return -1;
            src->snapshot = p[0] ? "true" : "false";
        } else if (skip(x, fs)) {
            return -1;
        }
    }
    return 0;
}

static int envelope(ctx *x, topic *t, cf_event *ev)
{
    const step *root = &x->p->steps[0];
    const rowdesc *rd = x->p->rd;
    long op_pos = -1;

    if (root->kind != K_RECORD)
        return skip(x, root);
    for (uint32_t i = 0; i < root->n; i++) {
        const step *st = &x->p->steps[root->sub + i];
        switch (st->role) {
        case R_BEFORE:
        case R_AFTER:
            if (image(x, st, rd, st->role == R_AFTER ? &ev->after : &ev->before))
                return -1;
            break;
        case R_SOURCE:
            if (source(x, t, st, &ev->src))
                return -1;
            break;
        case R_OP: {
            const uint8_t *p;
            size_t n;
            if (branch(x, &st))
                return -1;
            if (st->kind == K_NULL)
                break;
            op_pos = pos(x);
            if (cf_avro_read_len(&x->c, &n, x->err) || cf_avro_read_fixed(&x->c, n, &p, x->err))
                return -1;
            if (n != 1 || !strchr("cudrt", p[0]) || !p[0])
                return cf_err_setpos(x->err, CF_E_PARSE, op_pos, "value: unknown op \"%.*s\" at byte %ld",
                                     (int)(n < 20 ? n : 20), (const char *)p, op_pos);
            ev->op = (char)p[0];
            break;
        }
        case R_TS:
            if (branch(x, &st))
                return -1;
            if (st->kind != K_NULL && cf_avro_read_long(&x->c, &ev->ts_ms, x->err))
                return -1;
            break;
        default:
            if (skip_fast(x, st))
                return -1;
        }
    }
    if (!ev->op) {
        if (x->p->has_op)
            return cf_err_setpos(x->err, CF_E_PARSE, pos(x), "value: op is null");
        return 0;       /* a heartbeat or another record without op: nothing to apply */
    }
    if (strchr("cru", ev->op) && !ev->after.present)
        return cf_err_setpos(x->err, CF_E_PARSE, op_pos, "value: op '%c' without an \"after\" image", ev->op);
    if (ev->op == 'd' && !ev->before.present)
        return cf_err_setpos(x->err, CF_E_PARSE, op_pos, "value: op 'd' without a \"before\" image");
    return 0;
}

/* ---- messages ---------------------------------------------------------- */

static int frame(cf_decoder *d, const void *buf, size_t n, const char *what, int64_t *id, ctx *x,
                 cf_err *err)
{
    size_t hdr;

    if (n > d->max_msg)
        return cf_err_setpos(err, CF_E_TOOBIG, 0, "%s: %zu bytes over the cap of %zu", what, n, d->max_msg);
    if (cf_registry_frame(cf_registry_framing(d->reg), buf, n, id, &hdr, err))
        return cf_err_wrap(err, "%s", what);
    x->d = d;
    x->err = err;
    x->what = what;
    x->c.start = buf;
    x->c.p = x->c.start + hdr;
    x->c.end = x->c.start + n;
    return 0;
}

static int trailing(ctx *x)
{
    if (x->c.p != x->c.end)
        return cf_err_setpos(x->err, CF_E_PARSE, pos(x), "%s: %ld trailing bytes after the avro datum",
                             x->what, (long)(x->c.end - x->c.p));
    return 0;
}

int cf_dec_avro_key(cf_decoder *d, topic *t, const void *key, size_t n, cf_err *err)
{
    ctx x;
    int64_t id;

    if (frame(d, key, n, "key", &id, &x, err))
        return -1;
    if (!(x.p = plan_get(d, id, true, err)))
        return cf_err_wrap(err, "key");
    if (skip(&x, &x.p->steps[0]) || trailing(&x))
        return -1;
    if (t->av_kset && t->av_kid == id)
        return 0;
    if (x.p->nkey && cf_dec_topic_set_pk(d, t, (const char *const *)x.p->keys, x.p->keylens,
                                         x.p->nkey, err))
        return -1;
    t->av_kset = true;
    t->av_kid = id;
    return 0;
}

int cf_dec_avro_value(cf_decoder *d, topic *t, const cf_msg *m, cf_event *ev, cf_err *err)
{
    ctx x;
    int64_t id;

    if (frame(d, m->value, m->value_len, "value", &id, &x, err))
        return -1;
    if (t->av_vset && t->av_vid == id) {
        x.p = t->av_vplan;
    } else {
        if (!(x.p = plan_get(d, id, false, err)))
            return cf_err_wrap(err, "value");
        t->av_vset = true;
        t->av_vid = id;
        t->av_vplan = x.p;
    }
    if (x.p->rd && cf_dec_topic_set_base(d, t, x.p->rd, err))
        return -1;
    if (!(x.sp = cf_dec_alloc(d->arena, (size_t)(x.c.end - x.c.p) + 1, err)))
        return -1;
    x.se = x.sp + (x.c.end - x.c.p) + 1;
    if (envelope(&x, t, ev) || trailing(&x))
        return -1;
    ev->schema = t->cur ? t->cur->schema : NULL;
    return 0;
}
