/* debezium.c - Debezium change events (Kafka Connect JsonConverter, with or
 * without the {"schema","payload"} envelope) -> cf_event.
 *
 * Hot path: one pass of the pull scanner over the message, values written
 * straight into arena-allocated row images.  The envelope's schema part is
 * the same bytes for every event of a table version, so it is compared
 * against the last one seen on the topic and parsed only when it differs. */
#include "decode/debezium_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/convert.h"
#include "decode/json.h"

const char cf_dec_empty[] = "";

/* ---- errors ----------------------------------------------------------- */

int cf_dec_col_fail(cf_err *err, long pos, const char *what, const char *col, const char *fmt, ...)
{
    char msg[300];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cf_err_setpos(err, CF_E_TYPE, pos, "%s: column '%s': %s at byte %ld", what, col, msg, pos);
}

#define type_fail(j, col, ...) cf_dec_col_fail((j)->err, cf_json_pos(j), (j)->what, col, __VA_ARGS__)

/* ---- small helpers ---------------------------------------------------- */

static char *xstrndup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Arena allocation.  The per-batch arena running full is not the event's
 * fault: say CF_E_FULL, so that no good event is taken for a bad one; the
 * caller commits the batch, resets the decoder and decodes it again. */
void *cf_dec_alloc(cf_arena *a, size_t n, cf_err *err)
{
    void *p = cf_arena_alloc(a, n, err);
    if (!p && err && err->code == CF_E_TOOBIG) {
        err->code = CF_E_FULL;
        err->fatal = false;
        err->pos = -1;
        cf_err_wrap(err, "decoder batch arena full");
    }
    return p;
}

/* Arena copy of a scanned string, unescaped and NUL-terminated. */
static const char *str_dup(cf_arena *a, const cf_json_str *s, size_t *len, cf_err *err)
{
    char *d = cf_dec_alloc(a, s->n + 1, err);
    size_t n;

    if (!d)
        return NULL;
    n = cf_json_unescape(s, d);
    d[n] = '\0';
    if (len)
        *len = n;
    return d;
}

/* ---- row descriptions ------------------------------------------------- */

static void rowdesc_free(rowdesc *r)
{
    if (!r)
        return;
    cf_schema_free(r->schema);
    free(r->enc);
    free(r->qbuf);
    free(r->table);
    free(r);
}

static bool rowdesc_same(const rowdesc *r, const cf_schema *s, const colenc *enc, const char *table)
{
    if (strcmp(r->table, table) || !cf_schema_equal(r->schema, s) || r->schema->npk != s->npk)
        return false;
    for (int i = 0; i < s->npk; i++)
        if (r->schema->pk[i] != s->pk[i])
            return false;
    for (int i = 0; i < s->nfields; i++)
        if (r->enc[i].enc != enc[i].enc || r->enc[i].scale != enc[i].scale)
            return false;
    return true;
}

/* Find the registered table version equal to (s, enc, table), or register
 * one.  Takes ownership of s and enc either way.  NULL on out of memory. */
rowdesc *cf_dec_intern(cf_decoder *d, cf_schema *s, colenc *enc, const char *table, cf_err *err)
{
    rowdesc *r;

    for (r = d->registry; r; r = r->next)
        if (rowdesc_same(r, s, enc, table)) {
            cf_schema_free(s);
            free(enc);
            return r;
        }
    if (d->nversions >= MAX_VERSIONS) {
        /* Bounded memory even for a stream of ever-different schemas. */
        cf_schema_free(s);
        free(enc);
        cf_err_set(err, CF_E_TOOBIG, "more than %d distinct table versions", MAX_VERSIONS);
        return NULL;
    }
    d->nversions++;
    {
        size_t qlen = 1;
        for (int i = 0; i < s->nfields; i++)
            qlen += strlen(s->fields[i].name) + 2;
        if (!(r = calloc(1, sizeof *r)) || !(r->table = strdup(table)) || !(r->qbuf = malloc(qlen))) {
            if (r)
                free(r->table);
            free(r);
            cf_schema_free(s);
            free(enc);
            cf_err_set(err, CF_E_NOMEM, "out of memory registering a schema");
            return NULL;
        }
    }
    for (int i = 0, off = 0; i < s->nfields; i++) {
        const char *nm = s->fields[i].name;
        enc[i].namelen = (uint32_t)strlen(nm);
        enc[i].qoff = (uint32_t)off;
        enc[i].qok = true;
        for (const char *c = nm; *c; c++)
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                enc[i].qok = false;
        r->qbuf[off++] = '"';
        memcpy(r->qbuf + off, nm, enc[i].namelen);
        off += (int)enc[i].namelen;
        r->qbuf[off++] = '"';
    }
    r->schema = s;
    r->enc = enc;
    r->next = d->registry;
    d->registry = r;
    return r;
}

/* Encoding of an envelope-less column, from its type alone. */
static uint8_t enc_for_type(cf_type t)
{
    switch (t.id) {
    case CF_T_BOOL: return E_BOOL;
    case CF_T_INT32: return E_INT32;
    case CF_T_INT64: return E_INT64;
    case CF_T_FLOAT:
    case CF_T_DOUBLE: return E_FLOAT;
    case CF_T_BINARY: return E_BYTES;
    case CF_T_DATE: return E_DATE;
    case CF_T_TIME: return E_TIME_US;
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ: return E_TS_US;
    case CF_T_DECIMAL: return E_DEC_ANY;
    default: return E_STRING;
    }
}

static rowdesc *rowdesc_from_schema(cf_decoder *d, const cf_schema *src, const char *table,
                                    cf_err *err)
{
    cf_schema *s = cf_schema_clone(src);
    colenc *enc = calloc((size_t)(src->nfields ? src->nfields : 1), sizeof *enc);

    if (!s || !enc) {
        cf_schema_free(s);
        free(enc);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < s->nfields; i++) {
        enc[i].enc = enc_for_type(s->fields[i].type);
        enc[i].scale = (int16_t)s->fields[i].type.scale;
    }
    return cf_dec_intern(d, s, enc, table, err);
}

static rowdesc *build_customers(cf_decoder *d, cf_err *err)
{
    static const struct { const char *name; cf_type_id id; bool nullable; } cols[] = {
        { "customer_id", CF_T_INT32, false },   /* SERIAL: int4, as Debezium sends it */
        { "email", CF_T_STRING, true },
        { "first_name", CF_T_STRING, true },
        { "last_name", CF_T_STRING, true },
        { "phone", CF_T_STRING, true },
        { "address_line1", CF_T_STRING, true },
        { "city", CF_T_STRING, true },
        { "state", CF_T_STRING, true },
        { "postal_code", CF_T_STRING, true },
        { "country", CF_T_STRING, true },
        { "registration_date", CF_T_TIMESTAMP_NTZ, true },
        { "last_updated", CF_T_TIMESTAMP_NTZ, true },
        { "is_active", CF_T_BOOL, true },
        { "customer_tier", CF_T_STRING, true },
        { "lifetime_value", CF_T_DECIMAL, true },
    };
    static const char *const pk[] = { "customer_id" };
    cf_schema *s = cf_schema_new();
    rowdesc *r = NULL;

    if (!s) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < sizeof cols / sizeof *cols; i++) {
        cf_type t = { cols[i].id, 0, 0 };
        if (t.id == CF_T_DECIMAL)
            t = (cf_type){ CF_T_DECIMAL, 10, 2 };
        if (cf_schema_add(s, cols[i].name, t, cols[i].nullable, 0, err) < 0)
            goto out;
    }
    if (cf_schema_set_pk(s, pk, 1, err))
        goto out;
    r = rowdesc_from_schema(d, s, "customers", err);
out:
    cf_schema_free(s);
    return r;
}

static rowdesc *known_by_table(cf_decoder *d, const char *table, size_t n)
{
    for (int i = 0; i < d->nknown; i++)
        if (strlen(d->known[i]->table) == n && memcmp(d->known[i]->table, table, n) == 0)
            return d->known[i];
    if (n == 9 && memcmp(table, "customers", 9) == 0)
        return d->customers;
    return NULL;
}

/* The table version with the topic's key columns as primary key (or, while
 * no key was seen, the primary key of the known table of that name). */
static rowdesc *with_pk(cf_decoder *d, topic *t, rowdesc *base, cf_err *err)
{
    int idx[MAX_KEY_COLUMNS], n = 0;
    bool same;
    cf_schema *s;
    colenc *enc;

    if (!base)
        return base;
    if (t->pk_set) {
        for (int i = 0; i < t->npk; i++) {
            int k = cf_schema_find(base->schema, t->pk[i]);
            if (k >= 0)
                idx[n++] = k;
        }
    } else {
        rowdesc *kn = known_by_table(d, base->table, strlen(base->table));
        if (!kn || kn == base)
            return base;
        for (int i = 0; i < kn->schema->npk && n < MAX_KEY_COLUMNS; i++) {
            int k = cf_schema_find(base->schema, kn->schema->fields[kn->schema->pk[i]].name);
            if (k < 0)
                return base;
            idx[n++] = k;
        }
    }
    if (n == 0)
        return base;
    same = n == base->schema->npk;
    for (int i = 0; same && i < n; i++)
        same = base->schema->pk[i] == idx[i];
    if (same)
        return base;
    if (!(s = cf_schema_clone(base->schema)) ||
        !(enc = malloc(sizeof *enc * (size_t)(s->nfields ? s->nfields : 1)))) {
        cf_schema_free(s);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(enc, base->enc, sizeof *enc * (size_t)s->nfields);
    free(s->pk);
    if (!(s->pk = malloc(sizeof(int) * (size_t)n))) {
        s->npk = 0;
        cf_schema_free(s);
        free(enc);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(s->pk, idx, sizeof(int) * (size_t)n);
    s->npk = n;
    for (int i = 0; i < n; i++)
        s->fields[idx[i]].nullable = false;
    return cf_dec_intern(d, s, enc, base->table, err);
}

int cf_dec_topic_set_base(cf_decoder *d, topic *t, rowdesc *base, cf_err *err)
{
    rowdesc *cur;

    if (base == t->base && t->cur)
        return 0;
    if (!(cur = with_pk(d, t, base, err)))
        return base ? -1 : 0;
    t->base = base;
    t->cur = cur;
    return 0;
}

/* ---- topics ----------------------------------------------------------- */

static void topic_free(topic *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->npk; i++)
        free(t->pk[i]);
    free(t->pk);
    free(t->vraw);
    free(t->kraw);
    free(t->name);
    free(t);
}

topic *cf_dec_topic(cf_decoder *d, const char *name, cf_err *err)
{
    topic *t, **nt;

    if (!name)
        name = cf_dec_empty;
    if (d->last_topic && strcmp(d->last_topic->name, name) == 0)
        return d->last_topic;
    for (int i = 0; i < d->ntopics; i++)
        if (strcmp(d->topics[i]->name, name) == 0)
            return d->last_topic = d->topics[i];
    if (d->ntopics >= MAX_TOPICS) {
        cf_err_set(err, CF_E_TOOBIG, "more than %d topics", MAX_TOPICS);
        return NULL;
    }
    if (!(nt = realloc(d->topics, sizeof *nt * (size_t)(d->ntopics + 1)))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    d->topics = nt;
    if (!(t = calloc(1, sizeof *t)) || !(t->name = strdup(name))) {
        free(t);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    d->topics[d->ntopics++] = t;
    return d->last_topic = t;
}

/* Last dot-separated part of a topic name ("postgres.public.customers"). */
static const char *topic_table(const char *name, size_t *n)
{
    const char *dot = strrchr(name, '.');
    const char *s = dot ? dot + 1 : name;
    *n = strlen(s);
    return s;
}

/* Record key column names; recompute the topic's current version if they
 * changed. */
int cf_dec_topic_set_pk(cf_decoder *d, topic *t, const char *const *names, const size_t *lens,
                        int n, cf_err *err)
{
    char **pk;
    rowdesc *cur;

    if (t->pk_set && t->npk == n) {
        int i;
        for (i = 0; i < n; i++)
            if (strlen(t->pk[i]) != lens[i] || memcmp(t->pk[i], names[i], lens[i]))
                break;
        if (i == n)
            return 0;
    }
    if (n < 0 || n > MAX_KEY_COLUMNS)
        return cf_err_set(err, CF_E_TOOBIG, "key: %d columns", n);
    if (!(pk = calloc((size_t)(n ? n : 1), sizeof *pk)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        if (!(pk[i] = xstrndup(names[i], lens[i]))) {
            for (int k = 0; k < i; k++)
                free(pk[k]);
            free(pk);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
    for (int i = 0; i < t->npk; i++)
        free(t->pk[i]);
    free(t->pk);
    t->pk = pk;
    t->npk = n;
    t->pk_set = true;
    if (t->base) {
        if (!(cur = with_pk(d, t, t->base, err)))
            return -1;
        t->cur = cur;
    }
    return 0;
}

/* ---- Connect schemas -------------------------------------------------- */

/* One field of a Connect struct schema. */
typedef struct conn_field {
    cf_json_str type, name, field;
    bool        optional;
    bool        has_scale, has_prec;
    long        scale, prec;
    const uint8_t *fields_at;    /* the "fields" array of a struct, or NULL */
} conn_field;

static int param_long(cf_json *j, long *out)
{
    cf_json_str s;
    cf_json_num n;
    int64_t v;
    char tmp[24];

    if (cf_json_peek(j) == '"') {
        if (cf_json_string(j, &s))
            return -1;
        if (s.esc || s.n == 0 || s.n >= sizeof tmp)
            return cf_json_fail(j, "bad numeric schema parameter");
        memcpy(tmp, s.s, s.n);
        tmp[s.n] = '\0';
        char *e;
        *out = strtol(tmp, &e, 10);
        if (*e || *out < -100000 || *out > 100000)
            return cf_json_fail(j, "bad numeric schema parameter '%s'", tmp);
        return 0;
    }
    if (cf_json_number(j, &n) || cf_json_num_i64(&n, &v) || v < -100000 || v > 100000)
        return cf_json_fail(j, "bad numeric schema parameter");
    *out = (long)v;
    return 0;
}

static int parse_conn_field(cf_json *j, conn_field *f)
{
    cf_json_str k;
    int cnt = 0, r;

    memset(f, 0, sizeof *f);
    f->optional = true;
    if (cf_json_obj_begin(j))
        return -1;
    while ((r = cf_json_obj_next(j, &cnt, &k)) == 1) {
        if (CF_JSON_IS(&k, "type")) {
            if (cf_json_string(j, &f->type))
                return -1;
        } else if (CF_JSON_IS(&k, "name")) {
            if (cf_json_null(j) == 0 && cf_json_string(j, &f->name))
                return -1;
        } else if (CF_JSON_IS(&k, "field")) {
            if (cf_json_string(j, &f->field))
                return -1;
        } else if (CF_JSON_IS(&k, "optional")) {
            if (cf_json_bool(j, &f->optional))
                return -1;
        } else if (CF_JSON_IS(&k, "fields")) {
            f->fields_at = j->p;
            if (cf_json_skip(j))
                return -1;
        } else if (CF_JSON_IS(&k, "parameters")) {
            cf_json_str pk;
            int pc = 0, pr;
            if (cf_json_null(j) == 1)
                continue;
            if (cf_json_obj_begin(j))
                return -1;
            while ((pr = cf_json_obj_next(j, &pc, &pk)) == 1) {
                if (CF_JSON_IS(&pk, "scale")) {
                    if (param_long(j, &f->scale))
                        return -1;
                    f->has_scale = true;
                } else if (CF_JSON_IS(&pk, "connect.decimal.precision")) {
                    if (param_long(j, &f->prec))
                        return -1;
                    f->has_prec = true;
                } else if (cf_json_skip(j)) {
                    return -1;
                }
            }
            if (pr < 0)
                return -1;
        } else if (cf_json_skip(j)) {
            return -1;
        }
    }
    return r;
}

static bool is(const char *s, size_t n, const char *lit)
{
    return s && strlen(lit) == n && memcmp(s, lit, n) == 0;
}

#define TY_IS(lit) is(type, tn, lit)
#define NM_IS(lit) is(name, nn, lit)

/* One mapping of Connect's types to cf types for both wire formats: the
 * Avro converter writes the same type names and semantic names (as
 * "connect.name") that the JSON converter writes. */
int cf_dec_map_connect(const char *type, size_t tn, const char *name, size_t nn,
                       bool has_scale, long scale, bool has_prec, long prec,
                       cf_type *t, colenc *e, char *why, size_t whysz)
{
    bool named = name != NULL;

    memset(t, 0, sizeof *t);
    memset(e, 0, sizeof *e);
    if (named && NM_IS("org.apache.kafka.connect.data.Decimal")) {
        if (!has_scale)
            scale = 0;
        if (!has_prec)
            prec = 0;
        if (scale < -1000 || scale > 1000) {
            snprintf(why, whysz, "decimal scale %ld out of range", scale);
            return -1;
        }
        e->enc = E_DEC_B64;
        e->scale = (int16_t)scale;
        if (prec >= 1 && prec <= 38 && scale >= 0 && scale <= prec)
            *t = (cf_type){ CF_T_DECIMAL, (int)prec, (int)scale };
        else
            t->id = CF_T_STRING;      /* unbounded NUMERIC: exact decimal text */
        return 0;
    }
    if (named && NM_IS("io.debezium.data.VariableScaleDecimal")) {
        e->enc = E_VSDEC;
        t->id = CF_T_STRING;
        return 0;
    }
    if (named && (NM_IS("io.debezium.time.Date") ||
                  NM_IS("org.apache.kafka.connect.data.Date"))) {
        e->enc = E_DATE;
        t->id = CF_T_DATE;
        return 0;
    }
    if (named && (NM_IS("io.debezium.time.Time") ||
                  NM_IS("org.apache.kafka.connect.data.Time"))) {
        e->enc = E_TIME_MS;
        t->id = CF_T_TIME;
        return 0;
    }
    if (named && NM_IS("io.debezium.time.MicroTime")) {
        e->enc = E_TIME_US;
        t->id = CF_T_TIME;
        return 0;
    }
    if (named && NM_IS("io.debezium.time.NanoTime")) {
        e->enc = E_TIME_NS;
        t->id = CF_T_TIME;
        return 0;
    }
    if (named && (NM_IS("io.debezium.time.Timestamp") ||
                  NM_IS("org.apache.kafka.connect.data.Timestamp"))) {
        e->enc = E_TS_MS;
        t->id = CF_T_TIMESTAMP_NTZ;
        return 0;
    }
    if (named && NM_IS("io.debezium.time.MicroTimestamp")) {
        e->enc = E_TS_US;
        t->id = CF_T_TIMESTAMP_NTZ;
        return 0;
    }
    if (named && NM_IS("io.debezium.time.NanoTimestamp")) {
        e->enc = E_TS_NS;
        t->id = CF_T_TIMESTAMP_NTZ;
        return 0;
    }
    if (named && NM_IS("io.debezium.time.ZonedTimestamp")) {
        e->enc = E_TS_US;
        t->id = CF_T_TIMESTAMP;
        return 0;
    }
    if (named && NM_IS("io.debezium.data.Uuid")) {
        e->enc = E_STRING;
        t->id = CF_T_UUID;
        return 0;
    }
    /* Json, Xml, Enum, EnumSet, ZonedTime, Interval, Ltree, ...: by base type. */
    if (TY_IS("int8") || TY_IS("int16") || TY_IS("int32")) {
        e->enc = E_INT32;
        t->id = CF_T_INT32;
    } else if (TY_IS("int64")) {
        e->enc = E_INT64;
        t->id = CF_T_INT64;
    } else if (TY_IS("float") || TY_IS("float32")) {
        /* Kafka Connect's JsonConverter names FLOAT32/FLOAT64 "float" and
         * "double"; the schema type names are accepted too. */
        e->enc = E_FLOAT;
        t->id = CF_T_FLOAT;
    } else if (TY_IS("double") || TY_IS("float64")) {
        e->enc = E_FLOAT;
        t->id = CF_T_DOUBLE;
    } else if (TY_IS("boolean")) {
        e->enc = E_BOOL;
        t->id = CF_T_BOOL;
    } else if (TY_IS("string")) {
        e->enc = E_STRING;
        t->id = CF_T_STRING;
    } else if (TY_IS("bytes")) {
        e->enc = E_BYTES;
        t->id = CF_T_BINARY;
    } else if (TY_IS("struct") || TY_IS("array") || TY_IS("map")) {
        e->enc = E_RAW;             /* geometry, arrays, ...: kept as JSON text */
        t->id = CF_T_STRING;
    } else {
        snprintf(why, whysz, "unknown Connect type '%.*s'", (int)(tn < 40 ? tn : 40), type ? type : "");
        return -1;
    }
    return 0;
}

static int map_conn_field(cf_json *j, const conn_field *f, cf_type *t, colenc *e)
{
    char why[128];

    if (cf_dec_map_connect(f->type.s, f->type.n, f->name.s, f->name.n, f->has_scale, f->scale,
                           f->has_prec, f->prec, t, e, why, sizeof why))
        return cf_json_fail(j, "%s", why);
    return 0;
}

/* Table name from a Value struct name: "srv.public.customers.Value" -> "customers". */
void cf_dec_table_from_struct(const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    const char *end, *beg;

    out[0] = '\0';
    if (n > 6 && strcmp(name + n - 6, ".Value") == 0)
        n -= 6;
    end = name + n;
    beg = end;
    while (beg > name && beg[-1] != '.')
        beg--;
    if ((size_t)(end - beg) < cap) {
        memcpy(out, beg, (size_t)(end - beg));
        out[end - beg] = '\0';
    }
}

/* Parse the "fields" array of a row struct at j into a registered row
 * description. */
static rowdesc *parse_row_struct(cf_decoder *d, cf_json *j, const char *struct_name, cf_err *err)
{
    cf_schema *s = cf_schema_new();
    colenc *enc = NULL;
    size_t enc_alloc = 0;
    conn_field f;
    int cnt = 0, r;
    char table[256];

    if (!s) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    if (cf_json_arr_begin(j))
        goto fail;
    while ((r = cf_json_arr_next(j, &cnt)) == 1) {
        cf_type t;
        colenc e;
        char *name;
        long at = cf_json_pos(j);

        if (parse_conn_field(j, &f))
            goto fail;
        if (!f.field.s || !f.type.s) {
            j->p = j->beg + at;
            cf_json_fail(j, "schema field without \"field\" or \"type\"");
            goto fail;
        }
        if (map_conn_field(j, &f, &t, &e))
            goto fail;
        if (s->nfields >= MAX_COLUMNS) {
            cf_err_setpos(err, CF_E_TOOBIG, at, "value: more than %d columns", MAX_COLUMNS);
            goto fail;
        }
        if (!(name = (char *)str_dup(d->scratch, &f.field, NULL, err)))
            goto fail;
        if (cf_schema_find(s, name) >= 0) {
            j->p = j->beg + at;
            cf_json_fail(j, "duplicate column '%s' in schema", name);
            goto fail;
        }
        if ((size_t)s->nfields >= enc_alloc) {
            size_t na = enc_alloc ? enc_alloc * 2 : 32;
            colenc *ne = realloc(enc, sizeof *ne * na);
            if (!ne) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto fail;
            }
            enc = ne;
            enc_alloc = na;
        }
        enc[s->nfields] = e;
        if (cf_schema_add(s, name, t, f.optional, 0, err) < 0)
            goto fail;
    }
    if (r < 0)
        goto fail;
    if (!enc && !(enc = calloc(1, sizeof *enc))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    cf_dec_table_from_struct(struct_name, table, sizeof table);
    return cf_dec_intern(d, s, enc, table, err);
fail:
    cf_schema_free(s);
    free(enc);
    return NULL;
}

/* Parse an Envelope schema: find the before/after struct and describe it.
 * *out is NULL when the envelope has no row struct (truncate events). */
static int parse_envelope_schema(cf_decoder *d, cf_json *j, rowdesc **out, cf_err *err)
{
    cf_json_str k;
    conn_field f;
    int cnt = 0, r;
    const uint8_t *row_fields = NULL, *after;
    char *sname = NULL;

    *out = NULL;
    cf_arena_reset(d->scratch);
    if (cf_json_obj_begin(j))
        return -1;
    while ((r = cf_json_obj_next(j, &cnt, &k)) == 1) {
        if (CF_JSON_IS(&k, "fields")) {
            int fc = 0, fr;
            if (cf_json_arr_begin(j))
                return -1;
            while ((fr = cf_json_arr_next(j, &fc)) == 1) {
                if (parse_conn_field(j, &f))
                    return -1;
                if ((CF_JSON_IS(&f.field, "after") || CF_JSON_IS(&f.field, "before")) &&
                    CF_JSON_IS(&f.type, "struct") && f.fields_at && !row_fields) {
                    row_fields = f.fields_at;
                    if (f.name.s && !(sname = (char *)str_dup(d->scratch, &f.name, NULL, err)))
                        return -1;
                }
            }
            if (fr < 0)
                return -1;
        } else if (cf_json_skip(j)) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    if (!row_fields)
        return 0;
    after = j->p;
    j->p = row_fields;
    j->depth += 3;      /* the row struct sits 3 containers down; keep the cap honest */
    *out = parse_row_struct(d, j, sname ? sname : cf_dec_empty, err);
    j->depth -= 3;
    j->p = after;
    return *out ? 0 : -1;
}

/* The "schema" member of an envelope at j: reuse the topic's cached row
 * description when the bytes are the same, else parse and cache.
 *
 * Debezium repeats the same schema (~3.5 KB for a table of 15 columns, most
 * of the message) in every event of a table version, so the hit path is the
 * one that counts.  The cached bytes are one complete JSON value, validated
 * when they were parsed, and a JSON value delimits itself: if the input
 * starts with those bytes, the value here is exactly that one and ends where
 * they end.  So no scan is needed to find its end, and one memcmp (each byte
 * read once, vectorised) both finds and proves the match.  Locating the span
 * first with a bracket-matching scan (which must track strings and escapes)
 * and hashing it would read the bytes twice, byte by byte, and still need
 * the compare to be sure.  Any difference, even one byte of whitespace or
 * of a "doc", is a miss: the value is parsed in full, and as parsed schemas
 * are interned an unchanged table still gets its old cf_schema pointer.
 * What follows the value is checked by the caller either way. */
static int envelope_schema(cf_decoder *d, topic *t, cf_json *j, rowdesc **out, cf_err *err)
{
    const uint8_t *start;
    size_t len;

    if (cf_json_peek(j) < 0)
        return cf_json_fail(j, "unexpected end of input (truncated?), expected a value");
    start = j->p;
    if (t->vraw && (size_t)(j->end - start) >= t->vraw_len &&
        memcmp(start, t->vraw, t->vraw_len) == 0) {
        j->p += t->vraw_len;
        *out = t->vrd;
        return 0;
    }
    if (cf_json_null(j) == 1) {
        *out = NULL;
        return 0;
    }
    d->schema_parses++;
    if (parse_envelope_schema(d, j, out, err))
        return -1;
    len = (size_t)(j->p - start);
    if (len <= MAX_SCHEMA_CACHE) {
        uint8_t *raw = malloc(len);
        if (raw) {              /* no copy only means no cache hit next time */
            memcpy(raw, start, len);
            free(t->vraw);
            t->vraw = raw;
            t->vraw_len = len;
            t->vrd = *out;
        }
    }
    return 0;
}

/* ---- keys ------------------------------------------------------------- */

/* Column names of a key: {"schema":{..."fields":[{"field":...}]},...} or
 * a bare {"col":value,...}.  Keys that are not JSON objects carry no
 * column names and are ignored; malformed JSON is an error. */
int cf_dec_json_key(cf_decoder *d, topic *t, const void *key, size_t n, cf_err *err)
{
    cf_json j;
    cf_json_str k;
    const char *names[MAX_KEY_COLUMNS];
    size_t lens[MAX_KEY_COLUMNS];
    char buf[MAX_KEY_COLUMNS * 64];
    size_t used = 0;
    int cnt = 0, r, nn = 0;
    bool envelope = false, have_names = false;

    if (n > d->max_msg)
        return cf_err_setpos(err, CF_E_TOOBIG, 0, "key: %zu bytes over the cap of %zu", n, d->max_msg);
    cf_json_init(&j, key, n, "key", err);
    if (cf_json_peek(&j) != '{')
        return 0;       /* not a JSON object (other key converter): no names */
    if (cf_json_obj_begin(&j))
        return -1;
    while ((r = cf_json_obj_next(&j, &cnt, &k)) == 1) {
        if (cnt == 1 && (CF_JSON_IS(&k, "schema") || CF_JSON_IS(&k, "payload")))
            envelope = true;
        if (envelope && CF_JSON_IS(&k, "schema") && cf_json_peek(&j) == '{') {
            const uint8_t *start = j.p;
            int kc = 0, kr;
            cf_json_str kk;
            if (t->kraw && (size_t)(j.end - start) >= t->kraw_len &&
                memcmp(start, t->kraw, t->kraw_len) == 0) {
                j.p += t->kraw_len;
                continue;       /* same key schema: same names */
            }
            if (cf_json_obj_begin(&j))
                return -1;
            while ((kr = cf_json_obj_next(&j, &kc, &kk)) == 1) {
                conn_field f;
                int fc = 0, fr;
                if (!CF_JSON_IS(&kk, "fields")) {
                    if (cf_json_skip(&j))
                        return -1;
                    continue;
                }
                if (cf_json_arr_begin(&j))
                    return -1;
                while ((fr = cf_json_arr_next(&j, &fc)) == 1) {
                    if (parse_conn_field(&j, &f))
                        return -1;
                    if (f.field.s && nn < MAX_KEY_COLUMNS && !f.field.esc &&
                        used + f.field.n <= sizeof buf) {
                        memcpy(buf + used, f.field.s, f.field.n);
                        names[nn] = buf + used;
                        lens[nn++] = f.field.n;
                        used += f.field.n;
                    }
                }
                if (fr < 0)
                    return -1;
                have_names = true;
            }
            if (kr < 0)
                return -1;
            if ((size_t)(j.p - start) <= MAX_SCHEMA_CACHE) {
                uint8_t *raw = malloc((size_t)(j.p - start));
                if (raw) {
                    memcpy(raw, start, (size_t)(j.p - start));
                    free(t->kraw);
                    t->kraw = raw;
                    t->kraw_len = (size_t)(j.p - start);
                }
            }
            continue;
        }
        if (!envelope && nn < MAX_KEY_COLUMNS && !k.esc && used + k.n <= sizeof buf) {
            memcpy(buf + used, k.s, k.n);
            names[nn] = buf + used;
            lens[nn++] = k.n;
            used += k.n;
            have_names = true;
        }
        if (cf_json_skip(&j))
            return -1;
    }
    if (r < 0)
        return -1;
    if (cf_json_peek(&j) >= 0)
        return cf_json_fail(&j, "trailing bytes after the key");
    if (!have_names || nn == 0)
        return 0;
    return cf_dec_topic_set_pk(d, t, names, lens, nn, err);
}

/* ---- values ----------------------------------------------------------- */

/* The decimal helpers serve both wire formats: errors name the input
 * (`what`) and the byte position `pos` the caller gives. */
#define DEC_FAIL(...) cf_dec_col_fail(err, pos, what, fld->name, __VA_ARGS__)
#define AT(j) (j)->err, cf_json_pos(j), (j)->what

static int set_decimal(cf_decoder *d, const cf_field *fld, bool neg, const char *digits, int nd,
                       int scale, cf_value *v, cf_err *err, long pos, const char *what)
{
    cf_type t = fld->type;

    if (t.id == CF_T_DECIMAL && t.precision >= 1 && t.precision <= 18) {
        if (nd > t.precision && !(nd == 1 && digits[0] == '0'))
            return DEC_FAIL("value has more digits than decimal(%d,%d)", t.precision, t.scale);
        v->kind = CF_V_INT;
        return cf_conv_digits_i64(digits, nd, neg, &v->i) ? DEC_FAIL("decimal overflow") : 0;
    }
    if (t.id == CF_T_DOUBLE || t.id == CF_T_FLOAT) {
        char txt[MAX_DIGITS + 8];
        size_t n = cf_conv_digits_text(digits, nd, neg, scale, txt);
        txt[n] = '\0';
        v->kind = CF_V_DOUBLE;
        v->d = strtod(txt, NULL);
        return 0;
    }
    if (t.id == CF_T_DECIMAL && t.precision > 0 && nd > t.precision && !(nd == 1 && digits[0] == '0'))
        return DEC_FAIL("value has more digits than decimal(%d,%d)", t.precision, t.scale);
    {
        char *txt = cf_dec_alloc(d->arena, (size_t)nd + (size_t)(scale > 0 ? scale : -scale) + 4, err);
        if (!txt)
            return -1;
        v->kind = CF_V_STRING;
        v->n = cf_conv_digits_text(digits, nd, neg, scale, txt);
        txt[v->n] = '\0';
        v->s = txt;
    }
    return 0;
}

/* Two's complement big-endian bytes with scale -> value. */
int cf_dec_decimal(cf_decoder *d, const cf_field *fld, const uint8_t *b, size_t n, int scale,
                   cf_value *v, cf_err *err, long pos, const char *what)
{
    cf_type t = fld->type;
    char *txt, digits[MAX_DIGITS];
    size_t tn;
    int nd;

    if (n > MAX_DECIMAL_BYTES)
        return cf_err_setpos(err, CF_E_TOOBIG, pos, "%s: column '%s': decimal of %zu bytes over the cap",
                             what, fld->name, n);
    if (t.id == CF_T_DECIMAL && t.precision >= 1 && t.precision <= 18 && scale == t.scale) {
        static const int64_t p10[19] = { 1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
            100000000, 1000000000, 10000000000, 100000000000, 1000000000000, 10000000000000,
            100000000000000, 1000000000000000, 10000000000000000, 100000000000000000,
            1000000000000000000 };
        int64_t x;
        if (cf_conv_be_i64(b, n, &x) || x <= -p10[t.precision] || x >= p10[t.precision])
            return DEC_FAIL("value has more digits than decimal(%d,%d)", t.precision, t.scale);
        v->kind = CF_V_INT;
        v->i = x;
        return 0;
    }
    /* Go through text: wide decimals, a scale change, or a double column. */
    txt = cf_dec_alloc(d->arena, cf_conv_dec_text_max(n, scale < 0 ? -scale : scale), err);
    if (!txt)
        return -1;
    tn = cf_conv_be_dec_text(b, n, scale, txt);
    if (t.id == CF_T_STRING) {
        txt[tn] = '\0';
        v->kind = CF_V_STRING;
        v->s = txt;
        v->n = tn;
        return 0;
    }
    bool neg;
    nd = cf_conv_dec_parse(txt, tn, t.scale, &neg, digits, sizeof digits);
    if (nd < 0)
        return DEC_FAIL("decimal does not fit");
    return set_decimal(d, fld, neg, digits, nd, t.scale, v, err, pos, what);
}

/* io.debezium.data.VariableScaleDecimal: {"scale": 2, "value": "base64"}. */
static int decode_vsdec(cf_decoder *d, cf_json *j, const cf_field *fld, cf_value *v)
{
    cf_json_str k, val = { 0 };
    cf_json_num num;
    int64_t scale = 0;
    int cnt = 0, r;
    bool have_val = false;
    uint8_t *b;
    long bn;

    if (cf_json_obj_begin(j))
        return -1;
    while ((r = cf_json_obj_next(j, &cnt, &k)) == 1) {
        if (CF_JSON_IS(&k, "scale")) {
            if (cf_json_number(j, &num) || cf_json_num_i64(&num, &scale) || scale < -1000 || scale > 1000)
                return type_fail(j, fld->name, "bad VariableScaleDecimal scale");
        } else if (CF_JSON_IS(&k, "value")) {
            if (cf_json_string(j, &val))
                return -1;
            have_val = true;
        } else if (cf_json_skip(j)) {
            return -1;
        }
    }
    if (r < 0)
        return -1;
    if (!have_val || val.esc)
        return type_fail(j, fld->name, "VariableScaleDecimal without a base64 value");
    if (!(b = cf_dec_alloc(d->arena, val.n * 3 / 4 + 3, j->err)))
        return -1;
    if ((bn = cf_conv_base64(val.s, val.n, b)) < 0)
        return type_fail(j, fld->name, "bad base64");
    return cf_dec_decimal(d, fld, b, (size_t)bn, (int)scale, v, AT(j));
}

static bool looks_decimal_text(const cf_json_str *s)
{
    /* Debezium's string mode always has a '.' when scale > 0 and a '-' for
     * negatives; standard base64 has neither, and its length is a multiple
     * of 4.  What is left ("1234") is read as base64, the default mode. */
    if (s->n % 4)
        return true;
    return memchr(s->s, '.', s->n) != NULL || memchr(s->s, '-', s->n) != NULL;
}

static int num_to_i64(cf_json *j, const cf_field *fld, int64_t *out)
{
    cf_json_num n;

    if (cf_json_small_int(j, out))
        return 0;
    if (cf_json_peek(j) == '"' || cf_json_peek(j) == '{' || cf_json_peek(j) == '[' ||
        cf_json_peek(j) == 't' || cf_json_peek(j) == 'f')
        return type_fail(j, fld->name, "integer expected");
    if (cf_json_number(j, &n))
        return -1;
    if (!n.is_int)
        return type_fail(j, fld->name, "integer expected, got %.*s", (int)(n.n < 30 ? n.n : 30), n.s);
    if (cf_json_num_i64(&n, out))
        return type_fail(j, fld->name, "integer out of int64 range");
    return 0;
}

static int scaled_time(cf_json *j, const cf_field *fld, int64_t mul, int64_t div, cf_value *v)
{
    int64_t x;

    if (num_to_i64(j, fld, &x))
        return -1;
    if (mul > 1) {
        if (x > INT64_MAX / mul || x < INT64_MIN / mul)
            return type_fail(j, fld->name, "time value out of range");
        x *= mul;
    }
    if (div > 1)
        x = cf_conv_floordiv(x, div);
    v->kind = CF_V_INT;
    v->i = x;
    return 0;
}

static int decode_value(cf_decoder *d, cf_json *j, const colenc *e, const cf_field *fld, cf_value *v)
{
    int c = cf_json_peek(j);
    cf_json_str s;

    if (c == 'n') {
        v->kind = CF_V_NULL;
        return cf_json_null(j) == 1 ? 0 : -1;
    }
    if (c == '"') {
        if (cf_json_string(j, &s))
            return -1;
        if ((s.n == d->ph_len && !s.esc && memcmp(s.s, d->ph, s.n) == 0) ||
            (e->enc == E_BYTES && s.n == d->ph_b64_len && memcmp(s.s, d->ph_b64, s.n) == 0)) {
            v->kind = CF_V_UNAVAILABLE;
            return 0;
        }
        switch (e->enc) {
        case E_STRING:
            v->kind = CF_V_STRING;
            return (v->s = str_dup(d->arena, &s, &v->n, j->err)) ? 0 : -1;
        case E_RAW:
            break;          /* a JSON string is JSON text too: keep it quoted */
        case E_BYTES:
        case E_DEC_B64: {
            uint8_t *b;
            long bn;
            if (s.esc)
                return type_fail(j, fld->name, "escapes in base64");
            if (!(b = cf_dec_alloc(d->arena, s.n * 3 / 4 + 4, j->err)))
                return -1;
            if ((bn = cf_conv_base64(s.s, s.n, b)) < 0)
                return type_fail(j, fld->name, "bad base64");
            if (e->enc == E_DEC_B64)
                return cf_dec_decimal(d, fld, b, (size_t)bn, e->scale, v, AT(j));
            v->kind = CF_V_BYTES;
            v->s = (const char *)b;
            v->n = (size_t)bn;
            return 0;
        }
        case E_DEC_ANY: {
            char digits[MAX_DIGITS];
            bool neg;
            int nd;
            if (s.esc)
                return type_fail(j, fld->name, "escapes in a decimal");
            if (!looks_decimal_text(&s)) {
                uint8_t *b;
                long bn;
                if (!(b = cf_dec_alloc(d->arena, s.n * 3 / 4 + 4, j->err)))
                    return -1;
                if ((bn = cf_conv_base64(s.s, s.n, b)) < 0)
                    return type_fail(j, fld->name, "bad base64");
                return cf_dec_decimal(d, fld, b, (size_t)bn, fld->type.scale, v, AT(j));
            }
            nd = cf_conv_dec_parse(s.s, s.n, fld->type.scale, &neg, digits, sizeof digits);
            if (nd < 0)
                return type_fail(j, fld->name, "not a decimal number");
            return set_decimal(d, fld, neg, digits, nd, fld->type.scale, v, AT(j));
        }
        case E_FLOAT:
            if (CF_JSON_IS(&s, "NaN"))
                v->d = NAN;
            else if (CF_JSON_IS(&s, "Infinity"))
                v->d = INFINITY;
            else if (CF_JSON_IS(&s, "-Infinity"))
                v->d = -INFINITY;
            else
                return type_fail(j, fld->name, "number expected");
            v->kind = CF_V_DOUBLE;
            return 0;
        case E_VSDEC: {
            char digits[MAX_DIGITS];
            bool neg;
            int nd;
            if (s.esc)
                return type_fail(j, fld->name, "escapes in a decimal");
            nd = cf_conv_dec_parse(s.s, s.n, 0, &neg, digits, sizeof digits);
            if (nd < 0)
                return type_fail(j, fld->name, "not a decimal number");
            v->kind = CF_V_STRING;
            return (v->s = str_dup(d->arena, &s, &v->n, j->err)) ? 0 : -1;
        }
        case E_DATE: {
            int64_t days;
            if (s.esc || cf_conv_iso_date(s.s, s.n, &days))
                return type_fail(j, fld->name, "bad date");
            v->kind = CF_V_INT;
            v->i = days;
            return 0;
        }
        case E_TS_US: {
            int64_t us;
            bool zone;
            if (s.esc || cf_conv_iso_ts(s.s, s.n, &us, &zone))
                return type_fail(j, fld->name, "bad ISO-8601 timestamp");
            v->kind = CF_V_INT;
            v->i = us;
            return 0;
        }
        default:
            return type_fail(j, fld->name, "string not expected");
        }
        j->p = (const uint8_t *)s.s - 1;    /* back to the quote for E_RAW */
    }
    switch (e->enc) {
    case E_BOOL:
        v->kind = CF_V_BOOL;
        if (c != 't' && c != 'f')
            return type_fail(j, fld->name, "boolean expected");
        return cf_json_bool(j, &v->b);
    case E_INT32:
    case E_INT64:
        if (num_to_i64(j, fld, &v->i))
            return -1;
        if (e->enc == E_INT32 && (v->i < INT32_MIN || v->i > INT32_MAX))
            return type_fail(j, fld->name, "integer out of int32 range");
        v->kind = CF_V_INT;
        return 0;
    case E_FLOAT: {
        cf_json_num n;
        if (c == '{' || c == '[' || c == 't' || c == 'f')
            return type_fail(j, fld->name, "number expected");
        if (cf_json_number(j, &n))
            return -1;
        if (cf_json_num_f64(&n, &v->d))
            return type_fail(j, fld->name, "bad number");
        v->kind = CF_V_DOUBLE;
        return 0;
    }
    case E_DEC_ANY: {
        cf_json_num n;
        char digits[MAX_DIGITS];
        bool neg;
        int nd;
        if (c == '{')
            return decode_vsdec(d, j, fld, v);
        if (c == '[' || c == 't' || c == 'f')
            return type_fail(j, fld->name, "decimal expected");
        if (cf_json_number(j, &n))
            return -1;
        nd = cf_conv_dec_parse(n.s, n.n, fld->type.scale, &neg, digits, sizeof digits);
        if (nd < 0)
            return type_fail(j, fld->name, "decimal does not fit");
        return set_decimal(d, fld, neg, digits, nd, fld->type.scale, v, AT(j));
    }
    case E_VSDEC:
        if (c == '{')
            return decode_vsdec(d, j, fld, v);
        return type_fail(j, fld->name, "VariableScaleDecimal object expected");
    case E_DATE:
        return scaled_time(j, fld, 1, 1, v);
    case E_TIME_MS:
    case E_TS_MS:
        return scaled_time(j, fld, 1000, 1, v);
    case E_TIME_US:
    case E_TS_US:
        return scaled_time(j, fld, 1, 1, v);
    case E_TIME_NS:
    case E_TS_NS:
        return scaled_time(j, fld, 1, 1000, v);
    case E_RAW: {
        const uint8_t *start = j->p;
        char *txt;
        if (cf_json_skip(j))
            return -1;
        if (!(txt = cf_dec_alloc(d->arena, (size_t)(j->p - start) + 1, j->err)))
            return -1;
        memcpy(txt, start, (size_t)(j->p - start));
        txt[j->p - start] = '\0';
        /* An unchanged TOASTed array comes as ["<placeholder>"]. */
        if ((size_t)(j->p - start) == d->ph_len + 4 && txt[0] == '[' && txt[1] == '"' &&
            memcmp(txt + 2, d->ph, d->ph_len) == 0 && txt[d->ph_len + 2] == '"') {
            v->kind = CF_V_UNAVAILABLE;
            return 0;
        }
        v->kind = CF_V_STRING;
        v->s = txt;
        v->n = (size_t)(j->p - start);
        return 0;
    }
    default:
        return type_fail(j, fld->name, "%s expected",
                         e->enc == E_STRING ? "string" : e->enc == E_BYTES ? "base64 string" : "value");
    }
}

/* Decode a row object at j with table version r into arena values. */
static int decode_row(cf_decoder *d, cf_json *j, const rowdesc *r, cf_row *row)
{
    const cf_schema *s = r->schema;
    cf_value *vals;
    cf_json_str k;
    int cnt = 0, rc, guess = 0, nf = s->nfields;

    if (cf_json_peek(j) != '{')
        return cf_json_fail(j, "row image must be an object or null");
    if (!(vals = cf_dec_alloc(d->arena, sizeof *vals * (size_t)(nf ? nf : 1), j->err)))
        return -1;
    memset(vals, 0, sizeof *vals * (size_t)nf);
    if (cf_json_obj_begin(j))
        return -1;
    for (;;) {
        int idx = -1;
        /* Debezium writes columns in schema order: try the next one first,
         * comparing the raw "name": bytes without scanning the key. */
        if (guess < nf && r->enc[guess].qok &&
            cf_json_obj_next_is(j, &cnt, r->qbuf + r->enc[guess].qoff, r->enc[guess].namelen + 2)) {
            idx = guess;
            goto value;
        }
        if ((rc = cf_json_obj_next(j, &cnt, &k)) != 1)
            break;
        if (guess < nf && r->enc[guess].namelen == k.n && !k.esc &&
            memcmp(s->fields[guess].name, k.s, k.n) == 0) {
            idx = guess;
        } else if (!k.esc) {
            for (int i = 0; i < nf; i++)
                if (r->enc[i].namelen == k.n && memcmp(s->fields[i].name, k.s, k.n) == 0) {
                    idx = i;
                    break;
                }
        }
        if (idx < 0)
            return cf_err_setpos(j->err, CF_E_TYPE, cf_json_pos(j),
                                 "%s: column '%.*s' is not in the schema of table '%s' at byte %ld",
                                 j->what, (int)(k.n < 64 ? k.n : 64), k.s, r->table, cf_json_pos(j));
value:
        guess = idx + 1;
        if (decode_value(d, j, &r->enc[idx], &s->fields[idx], &vals[idx]))
            return -1;
    }
    if (rc < 0)
        return -1;
    row->present = true;
    row->vals = vals;
    return 0;
}

/* ---- payload ---------------------------------------------------------- */

typedef struct pstate {
    cf_event      *ev;
    topic         *t;
    rowdesc       *rd;          /* version the rows were decoded with */
    bool           envelope;    /* rd comes from the envelope schema */
    const uint8_t *before_at, *after_at;
    bool           guess_failed; /* rows did not fit the guessed version */
    bool           have_op, have_source, have_row, have_ts;
    long           op_pos;
} pstate;

/* Source block members in the order Debezium 2.x writes them. */
enum { S_SKIP, S_TS, S_LSN, S_TXID, S_DB, S_SCHEMA, S_TABLE, S_SNAPSHOT };
#define Q(s) "\"" s "\"", sizeof(s) + 1
static const struct { const char *q; size_t qn; uint8_t what; } src_keys[] = {
    { Q("version"), S_SKIP }, { Q("connector"), S_SKIP }, { Q("name"), S_SKIP },
    { Q("ts_ms"), S_TS }, { Q("snapshot"), S_SNAPSHOT }, { Q("db"), S_DB },
    { Q("sequence"), S_SKIP }, { Q("ts_us"), S_SKIP }, { Q("ts_ns"), S_SKIP },
    { Q("schema"), S_SCHEMA }, { Q("table"), S_TABLE }, { Q("txId"), S_TXID },
    { Q("lsn"), S_LSN }, { Q("xmin"), S_SKIP },
};
#define NSRC_KEYS ((int)(sizeof src_keys / sizeof *src_keys))

const char *cf_dec_source_str(cf_decoder *d, topic *t, int k, const char *p, size_t n, cf_err *err)
{
    char *c;

    if (t->src_gen != d->gen) {
        memset(t->src_str, 0, sizeof t->src_str);
        t->src_gen = d->gen;
    }
    if (t->src_str[k] && t->src_len[k] == n && memcmp(t->src_str[k], p, n) == 0)
        return t->src_str[k];
    if (!(c = cf_dec_alloc(d->arena, n + 1, err)))
        return NULL;
    memcpy(c, p, n);
    c[n] = '\0';
    t->src_len[k] = n;
    return t->src_str[k] = c;
}

/* A scanned source string: unescaped first when it has escapes. */
static const char *source_str(cf_decoder *d, topic *t, int k, const cf_json_str *s, cf_err *err)
{
    char *u;
    size_t n;

    if (!s->esc)
        return cf_dec_source_str(d, t, k, s->s, s->n, err);
    if (!(u = cf_dec_alloc(d->arena, s->n + 1, err)))
        return NULL;
    n = cf_json_unescape(s, u);
    return cf_dec_source_str(d, t, k, u, n, err);
}

static int parse_source(cf_decoder *d, topic *t, cf_json *j, cf_source_info *src)
{
    cf_json_str k, s;
    cf_json_num n;
    int cnt = 0, r = 0, g = 0;

    if (cf_json_null(j) == 1)
        return 0;
    if (cf_json_peek(j) != '{')
        return cf_json_fail(j, "source must be an object");
    if (cf_json_obj_begin(j))
        return -1;
    for (;;) {
        int what = S_SKIP;
        int64_t *iv = NULL;
        const char **sv = NULL;
        int sk = 0;

        if (g < NSRC_KEYS && cf_json_obj_next_is(j, &cnt, src_keys[g].q, src_keys[g].qn)) {
            what = src_keys[g++].what;
        } else {
            if ((r = cf_json_obj_next(j, &cnt, &k)) != 1)
                break;
            for (int i = 0; i < NSRC_KEYS; i++)
                if (!k.esc && k.n + 2 == src_keys[i].qn && memcmp(k.s, src_keys[i].q + 1, k.n) == 0) {
                    what = src_keys[i].what;
                    g = i + 1;
                    break;
                }
        }
        switch (what) {
        case S_TS: iv = &src->ts_ms; break;
        case S_LSN: iv = &src->lsn; break;
        case S_TXID: iv = &src->txid; break;
        case S_DB: sv = &src->db; sk = 0; break;
        case S_SCHEMA: sv = &src->schema; sk = 1; break;
        case S_TABLE: sv = &src->table; sk = 2; break;
        case S_SNAPSHOT: sv = &src->snapshot; sk = 3; break;
        default: break;
        }
        if (iv) {
            if (cf_json_small_int(j, iv))
                continue;
            if (cf_json_null(j) == 1)
                continue;
            if (cf_json_number(j, &n))
                return -1;
            if (cf_json_num_i64(&n, iv))
                return cf_err_setpos(j->err, CF_E_TYPE, cf_json_pos(j),
                                     "value: a source number is not an int64 at byte %ld",
                                     cf_json_pos(j));
        } else if (sv) {
            int c = cf_json_peek(j);
            if (c == 'n') {
                if (cf_json_null(j) != 1)
                    return -1;
            } else if (c == 't' || c == 'f') {     /* snapshot was boolean in Debezium 1.x */
                bool b;
                if (cf_json_bool(j, &b))
                    return -1;
                *sv = b ? "true" : "false";
            } else {
                if (cf_json_string(j, &s))
                    return -1;
                if (!(*sv = source_str(d, t, sk, &s, j->err)))
                    return -1;
            }
        } else if (cf_json_skip(j)) {
            return -1;
        }
    }
    return r;
}

/* Guess the table version of an envelope-less event before its source
 * block is read: the topic's last version, else a known table named like
 * the topic's last part. */
static rowdesc *bare_guess(cf_decoder *d, topic *t, cf_err *err)
{
    size_t n;
    const char *tb;
    rowdesc *r;

    if (t->cur)
        return t->cur;
    tb = topic_table(t->name, &n);
    if (!(r = known_by_table(d, tb, n)))
        return NULL;
    if (cf_dec_topic_set_base(d, t, r, err))
        return NULL;
    return t->cur;
}

/* The table version of an envelope-less event once source.table is known. */
static int bare_resolve(cf_decoder *d, topic *t, const char *table, rowdesc **out, cf_err *err)
{
    rowdesc *r = NULL;

    if (table && *table) {
        if (t->base && strcmp(t->base->table, table) == 0)
            r = t->base;
        else if (!(r = known_by_table(d, table, strlen(table))) && t->base && !*t->base->table)
            r = t->base;    /* envelope schema without a struct name: trust the topic */
    } else if (t->base) {
        r = t->base;
    } else {
        size_t n;
        const char *tb = topic_table(t->name, &n);
        r = known_by_table(d, tb, n);
    }
    if (r && cf_dec_topic_set_base(d, t, r, err))
        return -1;
    *out = r ? t->cur : NULL;
    return 0;
}

/* Payload members, in the order Debezium writes them. */
enum { P_BEFORE, P_AFTER, P_SOURCE, P_TX, P_OP, P_TS_MS, P_TS_US, P_TS_NS, P_OTHER };
static const struct { const char *q; size_t qn; } pay_keys[] = {
    { Q("before") }, { Q("after") }, { Q("source") }, { Q("transaction") }, { Q("op") },
    { Q("ts_ms") }, { Q("ts_us") }, { Q("ts_ns") },
};
#define NPAY_KEYS ((int)(sizeof pay_keys / sizeof *pay_keys))

static int payload_key_id(const cf_json_str *k)
{
    for (int i = 0; i < NPAY_KEYS; i++)
        if (!k->esc && k->n + 2 == pay_keys[i].qn && memcmp(k->s, pay_keys[i].q + 1, k->n) == 0)
            return i;
    return P_OTHER;
}

static int payload_member(cf_decoder *d, cf_json *j, int which, pstate *ps)
{
    cf_event *ev = ps->ev;

    if (which == P_BEFORE || which == P_AFTER) {
        bool after = which == P_AFTER;
        ps->have_row = true;
        cf_row *row = after ? &ev->after : &ev->before;
        int nr = cf_json_null(j);
        if (nr < 0)
            return -1;
        if (nr == 1) {
            row->present = false;
            (after ? &ps->after_at : &ps->before_at)[0] = NULL;
            return 0;
        }
        (after ? &ps->after_at : &ps->before_at)[0] = j->p;
        if (ps->rd && ps->envelope)
            return decode_row(d, j, ps->rd, row);
        if (ps->rd && !ps->guess_failed) {
            /* A guessed version may be the wrong table: on failure, try
             * again once source.table is known. */
            const uint8_t *at = j->p;
            int depth = j->depth;
            cf_err scratch, *caller = j->err;
            j->err = &scratch;
            if (decode_row(d, j, ps->rd, row) == 0) {
                j->err = caller;
                return 0;
            }
            j->err = caller;
            j->p = at;
            j->depth = depth;
            ps->guess_failed = true;
        }
        return cf_json_skip(j);     /* decoded once the table is known */
    }
    if (which == P_OP) {
        cf_json_str s;
        ps->op_pos = cf_json_pos(j);
        if (cf_json_peek(j) != '"')
            return cf_json_fail(j, "op must be a string");
        if (cf_json_string(j, &s))
            return -1;
        if (s.esc || s.n != 1 || !strchr("cudrt", s.s[0])) {
            j->p = j->beg + ps->op_pos;
            return cf_json_fail(j, "unknown op \"%.*s\"", (int)(s.n < 20 ? s.n : 20), s.s);
        }
        ev->op = s.s[0];
        ps->have_op = true;
        return 0;
    }
    if (which == P_SOURCE) {
        ps->have_source = true;
        return parse_source(d, ps->t, j, &ev->src);
    }
    if (which == P_TS_MS) {
        cf_json_num n;
        ps->have_ts = true;
        if (cf_json_small_int(j, &ev->ts_ms))
            return 0;
        if (cf_json_null(j) == 1)
            return 0;
        if (cf_json_number(j, &n))
            return -1;
        if (cf_json_num_i64(&n, &ev->ts_ms))
            return cf_json_fail(j, "ts_ms is not an int64");
        return 0;
    }
    return cf_json_skip(j);     /* transaction, ts_us, ts_ns, future fields */
}

/* After the payload object: settle the table version, (re)decode rows that
 * need it, check the op's invariants. */
static int payload_finish(cf_decoder *d, cf_json *j, pstate *ps, long payload_pos)
{
    cf_event *ev = ps->ev;
    rowdesc *rd = ps->rd;

    if (!ps->have_op) {
        if (ps->have_ts && !ps->have_row && !ps->have_source) {
            /* A Debezium heartbeat ({"ts_ms":...}): no row change, like a
             * tombstone; nothing to dead-letter. */
            ev->op = 0;
            ev->schema = ps->t->cur ? ps->t->cur->schema : NULL;
            return 0;
        }
        j->p = j->beg + payload_pos;
        return cf_json_fail(j, "missing \"op\" (not a Debezium change event)");
    }
    if (!ps->envelope) {
        if (bare_resolve(d, ps->t, ev->src.table, &rd, j->err))
            return -1;
    }
    if (rd != ps->rd || !rd || ps->guess_failed) {
        for (int i = 0; i < 2; i++) {
            const uint8_t *at = i ? ps->after_at : ps->before_at;
            cf_row *row = i ? &ev->after : &ev->before;
            if (!at)
                continue;
            if (!rd) {
                j->p = at;
                return cf_err_setpos(j->err, CF_E_UNSUPPORTED, cf_json_pos(j),
                                     "value: no schema for table '%s' (topic '%s'): enable the "
                                     "envelope or configure the table at byte %ld",
                                     ev->src.table, ps->t->name, cf_json_pos(j));
            }
            j->p = at;
            if (decode_row(d, j, rd, row))
                return -1;
        }
    }
    ev->schema = rd ? rd->schema : (ps->t->cur ? ps->t->cur->schema : NULL);
    switch (ev->op) {
    case 'c':
    case 'r':
    case 'u':
        if (!ev->after.present) {
            j->p = j->beg + ps->op_pos;
            return cf_json_fail(j, "op '%c' without an \"after\" image", ev->op);
        }
        break;
    case 'd':
        if (!ev->before.present) {
            j->p = j->beg + ps->op_pos;
            return cf_json_fail(j, "op 'd' without a \"before\" image");
        }
        break;
    default:
        break;
    }
    return 0;
}

/* The remaining members of a payload object whose '{' the caller consumed;
 * g is the index in pay_keys of the member expected next. */
static int payload_members(cf_decoder *d, cf_json *j, pstate *ps, int *cnt, int g)
{
    cf_json_str k;
    int r, which;

    for (;;) {
        if (g < NPAY_KEYS && cf_json_obj_next_is(j, cnt, pay_keys[g].q, pay_keys[g].qn)) {
            which = g++;
        } else {
            if ((r = cf_json_obj_next(j, cnt, &k)) != 1)
                return r;
            which = payload_key_id(&k);
            g = NPAY_KEYS;      /* out of the usual order: stay on the slow path */
        }
        if (payload_member(d, j, which, ps))
            return -1;
    }
}

static int decode_payload_at(cf_decoder *d, cf_json *j, pstate *ps)
{
    int cnt = 0;
    long pos = cf_json_pos(j);

    if (cf_json_peek(j) != '{')
        return cf_json_fail(j, "payload must be an object");
    if (cf_json_obj_begin(j))
        return -1;
    if (payload_members(d, j, ps, &cnt, 0))
        return -1;
    return payload_finish(d, j, ps, pos);
}

/* ---- public ----------------------------------------------------------- */

cf_decoder *cf_decoder_new(const cf_decoder_config *cfg, cf_err *err)
{
    static const cf_decoder_config defaults = { 0 };
    cf_decoder *d = calloc(1, sizeof *d);
    const char *ph;

    if (!cfg)
        cfg = &defaults;
    if (!d) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    d->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : DEFAULT_MAX_MESSAGE;
    ph = cfg->unavailable_placeholder ? cfg->unavailable_placeholder : DEFAULT_PLACEHOLDER;
    d->ph_len = strlen(ph);
    d->gen = 1;         /* topics start at 0: nothing cached */
    if (!(d->arena = cf_arena_new(cfg->max_batch_bytes ? cfg->max_batch_bytes : DEFAULT_MAX_BATCH)) ||
        !(d->scratch = cf_arena_new(64u << 20)) || !(d->ph = strdup(ph)) ||
        !(d->ph_b64 = malloc(d->ph_len * 4 / 3 + 8))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    cf_conv_base64_encode((const uint8_t *)ph, d->ph_len, d->ph_b64);
    d->vfmt = cfg->value_format;
    d->kfmt = cfg->key_format;
    d->reg = cfg->registry;
    d->reg_wait_s = cfg->registry_wait_s ? cfg->registry_wait_s : 120;
    d->stop = cfg->stop;
    if ((d->vfmt == CF_DEC_AVRO || d->kfmt == CF_DEC_AVRO) && !d->reg) {
        cf_err_set(err, CF_E_ARG, "the avro format needs a schema registry");
        goto fail;
    }
    d->ph_b64_len = strlen(d->ph_b64);
    if (!(d->customers = build_customers(d, err)))
        goto fail;
    if (cfg->nknown > 0) {
        if (!(d->known = calloc((size_t)cfg->nknown, sizeof *d->known))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < cfg->nknown; i++) {
            const char *name = cfg->known_tables ? cfg->known_tables[i] : NULL;
            if (!cfg->known[i] || !name) {
                cf_err_set(err, CF_E_ARG, "known schema %d has no table name", i);
                goto fail;
            }
            if (!(d->known[i] = rowdesc_from_schema(d, cfg->known[i], name, err)))
                goto fail;
            d->nknown++;
        }
    }
    return d;
fail:
    cf_decoder_free(d);
    return NULL;
}

void cf_decoder_free(cf_decoder *d)
{
    if (!d)
        return;
    for (rowdesc *r = d->registry, *n; r; r = n) {
        n = r->next;
        rowdesc_free(r);
    }
    cf_dec_avro_free(d);
    for (int i = 0; i < d->ntopics; i++)
        topic_free(d->topics[i]);
    free(d->topics);
    free(d->known);
    free(d->ph);
    free(d->ph_b64);
    cf_arena_free(d->arena);
    cf_arena_free(d->scratch);
    free(d);
}

void cf_decoder_reset(cf_decoder *d)
{
    cf_arena_reset(d->arena);
    d->gen++;       /* arena copies cached in topics are gone */
}

size_t cf_decoder_arena_used(const cf_decoder *d) { return cf_arena_used(d->arena); }

uint64_t cf_decoder_schema_parses(const cf_decoder *d) { return d->schema_parses; }

const cf_schema *cf_decoder_customers_schema(cf_decoder *d) { return d->customers->schema; }

void cf_dec_event_init(cf_event *ev, const cf_msg *m, topic *t)
{
    memset(ev, 0, sizeof *ev);
    ev->ts_ms = -1;
    ev->src.ts_ms = -1;
    ev->src.lsn = -1;
    ev->src.txid = -1;
    ev->src.db = ev->src.schema = ev->src.table = ev->src.snapshot = cf_dec_empty;
    ev->topic = t->name;
    ev->partition = m->partition;
    ev->offset = m->offset;
    ev->kafka_ts_ms = m->timestamp_ms;
}

int cf_decoder_decode(cf_decoder *d, const cf_msg *m, cf_event *ev, cf_err *err)
{
    cf_json j;
    cf_json_str k;
    topic *t;
    pstate ps;
    int cnt = 0, r;
    const uint8_t *payload_at = NULL;
    bool have_payload = false, payload_null = false, have_schema = false;
    rowdesc *env_rd = NULL;
    cf_err local;

    if (!err)
        err = &local;   /* the guessed-schema retry saves and restores *err */
    if (!(t = cf_dec_topic(d, m->topic, err)))
        return -1;
    cf_dec_event_init(ev, m, t);
    if (m->key && m->key_len &&
        (d->kfmt == CF_DEC_AVRO ? cf_dec_avro_key(d, t, m->key, m->key_len, err)
                                : cf_dec_json_key(d, t, m->key, m->key_len, err)))
        return -1;
    if (!m->value) {
        ev->schema = t->cur ? t->cur->schema : NULL;
        return 0;
    }
    if (d->vfmt == CF_DEC_AVRO)
        return cf_dec_avro_value(d, t, m, ev, err);
    if (m->value_len > d->max_msg)
        return cf_err_setpos(err, CF_E_TOOBIG, 0, "value: %zu bytes over the cap of %zu",
                             m->value_len, d->max_msg);
    cf_json_init(&j, m->value, m->value_len, "value", err);
    memset(&ps, 0, sizeof ps);
    ps.ev = ev;
    ps.t = t;

    if (cf_json_peek(&j) == 'n') {          /* a JSON null value: a tombstone */
        if (cf_json_null(&j) != 1)
            return -1;
        if (cf_json_peek(&j) >= 0)
            return cf_json_fail(&j, "trailing bytes after the event");
        ev->schema = t->cur ? t->cur->schema : NULL;
        return 0;
    }
    if (cf_json_peek(&j) != '{')
        return cf_json_fail(&j, "an event must be a JSON object");
    if (cf_json_obj_begin(&j))
        return -1;
    r = cf_json_obj_next(&j, &cnt, &k);
    if (r == 0)
        return cf_json_fail(&j, "empty object: missing \"payload\" or \"op\"");
    if (r < 0)
        return -1;

    if (CF_JSON_IS(&k, "schema") || CF_JSON_IS(&k, "payload")) {
        /* JsonConverter envelope. */
        do {
            if (CF_JSON_IS(&k, "schema")) {
                if (envelope_schema(d, t, &j, &env_rd, err))
                    return -1;
                have_schema = true;
            } else if (CF_JSON_IS(&k, "payload")) {
                have_payload = true;
                if ((r = cf_json_null(&j)) < 0)
                    return -1;
                if (r == 1) {
                    payload_null = true;
                } else if (have_schema) {
                    payload_at = NULL;
                    goto decode_now;
                } else {
                    payload_at = j.p;   /* schema may follow: decode after */
                    if (cf_json_skip(&j))
                        return -1;
                }
            } else if (cf_json_skip(&j)) {
                return -1;
            }
            continue;
decode_now:
            if (env_rd && cf_dec_topic_set_base(d, t, env_rd, err))
                return -1;
            ps.envelope = env_rd != NULL;
            ps.rd = env_rd ? t->cur : bare_guess(d, t, err);
            if (decode_payload_at(d, &j, &ps))
                return -1;
        } while ((r = cf_json_obj_next(&j, &cnt, &k)) == 1);
        if (r < 0)
            return -1;
        if (cf_json_peek(&j) >= 0)
            return cf_json_fail(&j, "trailing bytes after the event");
        if (!have_payload) {
            j.p = j.beg;
            return cf_json_fail(&j, "envelope without \"payload\"");
        }
        if (payload_null) {
            ev->schema = t->cur ? t->cur->schema : NULL;
            return 0;
        }
        if (payload_at) {
            cf_json pj = j;
            pj.p = payload_at;
            pj.depth = 1;
            if (env_rd && cf_dec_topic_set_base(d, t, env_rd, err))
                return -1;
            ps.envelope = env_rd != NULL;
            ps.rd = env_rd ? t->cur : bare_guess(d, t, err);
            return decode_payload_at(d, &pj, &ps);
        }
        return 0;
    }

    /* No envelope: the object is the payload itself. */
    ps.rd = bare_guess(d, t, err);
    r = payload_key_id(&k);
    if (payload_member(d, &j, r, &ps) ||
        payload_members(d, &j, &ps, &cnt, r == P_BEFORE ? 1 : NPAY_KEYS))
        return -1;
    if (cf_json_peek(&j) >= 0)
        return cf_json_fail(&j, "trailing bytes after the event");
    return payload_finish(d, &j, &ps, 0);
}
