/* transform.c - decoded events -> output rows: SYSTEM.md's customers
 * transform, the pass-through for other tables, and the metadata columns. */
#include "transform/transform.h"

#include <stdlib.h>
#include <string.h>

#include "decode/convert.h"
#include "util/buf.h"

#define MAX_MAPS     4096         /* source table versions one transform serves */
#define SCRATCH_CAP  (64u << 20)  /* full_name / location assembly */

/* Source columns the customers transform reads. */
enum { I_ID, I_EMAIL, I_FIRST, I_LAST, I_CITY, I_STATE, I_COUNTRY, I_TIER, I_LTV, I_REG,
       I_ACTIVE, NIN };
static const char *const in_names[NIN] = {
    "customer_id", "email", "first_name", "last_name", "city", "state", "country",
    "customer_tier", "lifetime_value", "registration_date", "is_active",
};

/* Output columns of the customers transform, SYSTEM.md's order. */
enum { O_ID, O_EMAIL, O_FULL, O_LOC, O_TIER, O_LTV, O_REG, O_ACTIVE, O_ORDERS, NOUT };

typedef struct map {
    const cf_schema *src;
    bool             customers;
    cf_schema       *out;       /* owned unless customers (then t->cust_out) */
    int              idx[NIN];  /* customers: source column of each input, -1 if absent */
    int              meta;      /* index of the first metadata column */
} map;

struct cf_transform {
    cf_xf_kind      kind;
    char           *pipeline_id;
    size_t          pipeline_id_len;
    cf_schema      *cust_out;
    map            *maps;
    int             nmaps;
    int             last;
    cf_buf          scratch;
    cf_cells       *ua;         /* apply's caller's set of unavailable cells, or NULL */
};

static int add_meta(cf_schema *s, cf_err *err)
{
    static const struct { const char *name; cf_type_id id; } meta[CF_XF_NMETA] = {
        { "_ingestion_timestamp", CF_T_TIMESTAMP }, { "_source_system", CF_T_STRING },
        { "_cdc_operation", CF_T_STRING }, { "_pipeline_id", CF_T_STRING },
        { "_processed_timestamp", CF_T_TIMESTAMP }, { "_event_timestamp_ms", CF_T_INT64 },
        { "_source_lsn", CF_T_INT64 }, { "_kafka_timestamp", CF_T_TIMESTAMP },
    };
    for (int i = 0; i < CF_XF_NMETA; i++) {
        if (cf_schema_find(s, meta[i].name) >= 0)
            return cf_err_set(err, CF_E_UNSUPPORTED,
                              "source column '%s' clashes with a metadata column", meta[i].name);
        if (cf_schema_add(s, meta[i].name, (cf_type){ meta[i].id, 0, 0 }, true, 0, err) < 0)
            return -1;
    }
    return 0;
}

static cf_schema *customers_schema(cf_err *err)
{
    static const struct { const char *name; cf_type_id id; } cols[NOUT] = {
        { "customer_id", CF_T_INT64 }, { "email", CF_T_STRING }, { "full_name", CF_T_STRING },
        { "location", CF_T_STRING }, { "customer_tier", CF_T_STRING },
        { "lifetime_value", CF_T_DOUBLE }, { "registration_date", CF_T_TIMESTAMP },
        { "is_active", CF_T_BOOL }, { "total_orders", CF_T_INT32 },
    };
    static const char *const pk[] = { "customer_id" };
    cf_schema *s = cf_schema_new();

    if (!s) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < NOUT; i++)
        if (cf_schema_add(s, cols[i].name, (cf_type){ cols[i].id, 0, 0 }, i != O_ID, 0, err) < 0)
            goto fail;
    if (add_meta(s, err) || cf_schema_set_pk(s, pk, 1, err))
        goto fail;
    return s;
fail:
    cf_schema_free(s);
    return NULL;
}

cf_transform *cf_transform_new(const cf_transform_config *cfg, cf_err *err)
{
    cf_transform *t = calloc(1, sizeof *t);

    if (!t) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    t->kind = cfg ? cfg->kind : CF_XF_AUTO;
    t->last = -1;
    cf_buf_init(&t->scratch, SCRATCH_CAP);
    if (!(t->pipeline_id = strdup(cfg && cfg->pipeline_id ? cfg->pipeline_id : "cdcflow"))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    t->pipeline_id_len = strlen(t->pipeline_id);
    if (!(t->cust_out = customers_schema(err)))
        goto fail;
    return t;
fail:
    cf_transform_free(t);
    return NULL;
}

void cf_transform_free(cf_transform *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->nmaps; i++)
        if (!t->maps[i].customers)
            cf_schema_free(t->maps[i].out);
    free(t->maps);
    cf_schema_free(t->cust_out);
    free(t->pipeline_id);
    cf_buf_free(&t->scratch);
    free(t);
}

static bool is_customers(const cf_transform *t, const cf_event *ev)
{
    size_t n;

    if (t->kind != CF_XF_AUTO)
        return t->kind == CF_XF_CUSTOMERS;
    if (ev->src.table && *ev->src.table)
        return strcmp(ev->src.table, "customers") == 0;
    /* No source block: go by the topic name ("<prefix>.public.customers"). */
    if (!ev->topic)
        return false;
    n = strlen(ev->topic);
    return (n >= 9 && strcmp(ev->topic + n - 9, "customers") == 0 &&
            (n == 9 || ev->topic[n - 10] == '.'));
}

static map *find_map(cf_transform *t, const cf_event *ev, cf_err *err)
{
    bool cust;
    map *m, *nm;

    if (!ev->schema) {
        cf_err_set(err, CF_E_ARG, "event without a row schema (op '%c')", ev->op ? ev->op : '0');
        return NULL;
    }
    cust = is_customers(t, ev);
    if (t->last >= 0 && t->maps[t->last].src == ev->schema && t->maps[t->last].customers == cust)
        return &t->maps[t->last];
    for (int i = 0; i < t->nmaps; i++)
        if (t->maps[i].src == ev->schema && t->maps[i].customers == cust) {
            t->last = i;
            return &t->maps[i];
        }
    if (t->nmaps >= MAX_MAPS) {
        cf_err_set(err, CF_E_TOOBIG, "more than %d source schema versions", MAX_MAPS);
        return NULL;
    }
    if (!(nm = realloc(t->maps, sizeof *nm * (size_t)(t->nmaps + 1)))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    t->maps = nm;
    m = &t->maps[t->nmaps];
    memset(m, 0, sizeof *m);
    m->src = ev->schema;
    m->customers = cust;
    if (cust) {
        m->out = t->cust_out;
        m->meta = NOUT;
        for (int i = 0; i < NIN; i++)
            m->idx[i] = cf_schema_find(ev->schema, in_names[i]);
        if (m->idx[I_ID] < 0) {
            cf_err_set(err, CF_E_TYPE, "customers table without a customer_id column");
            return NULL;
        }
    } else {
        cf_schema *s = cf_schema_new();
        const cf_schema *src = ev->schema;
        if (!s) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        for (int i = 0; i < src->nfields; i++)
            if (cf_schema_add(s, src->fields[i].name, src->fields[i].type, src->fields[i].nullable,
                              0, err) < 0)
                goto fail;
        m->meta = src->nfields;
        if (add_meta(s, err))
            goto fail;
        if (src->npk) {
            if (!(s->pk = malloc(sizeof(int) * (size_t)src->npk))) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto fail;
            }
            memcpy(s->pk, src->pk, sizeof(int) * (size_t)src->npk);
            s->npk = src->npk;
        }
        m->out = s;
        goto done;
fail:
        cf_schema_free(s);
        return NULL;
    }
done:
    t->last = t->nmaps++;
    return m;
}

const cf_schema *cf_transform_schema(cf_transform *t, const cf_event *ev, cf_err *err)
{
    map *m = find_map(t, ev, err);
    return m ? m->out : NULL;
}

const cf_schema *cf_transform_customers_schema(const cf_transform *t)
{
    return t ? t->cust_out : NULL;
}

/* ---- unavailable cells ------------------------------------------------ */

static int ua_add(cf_transform *t, size_t row, int col, cf_err *err)
{
    return t->ua ? cf_cells_add(t->ua, row, col, err) : 0;
}

/* ---- values ----------------------------------------------------------- */

static const int64_t pow10_i[19] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
    10000000000, 100000000000, 1000000000000, 10000000000000, 100000000000000,
    1000000000000000, 10000000000000000, 100000000000000000, 1000000000000000000,
};

/* Store v (of source type st) into column c, converting to the column's
 * type where the transform changes it (decimal -> double, int32 -> int64,
 * timestamp_ntz -> timestamp, ...). */
static int put(cf_column *c, size_t row, const cf_value *v, cf_type st, const char *name,
               cf_err *err)
{
    cf_type_id ct = c->type.id;

    switch (v->kind) {
    case CF_V_NULL:
    case CF_V_UNAVAILABLE:
        return 0;               /* cf_batch_end_row pads with null */
    case CF_V_BOOL:
        if (ct == CF_T_BOOL)
            return cf_col_put_bool(c, row, v->b, err);
        break;
    case CF_V_INT:
        if (ct == CF_T_DOUBLE || ct == CF_T_FLOAT) {
            double x = (double)v->i;
            if (st.id == CF_T_DECIMAL && st.scale > 0 && st.scale <= 18)
                x = (double)v->i / (double)pow10_i[st.scale];
            return cf_col_put_f64(c, row, x, err);
        }
        if (ct == CF_T_TIMESTAMP && st.id == CF_T_DATE)
            return cf_col_put_i64(c, row, v->i * 86400000000LL, err);
        if (ct == CF_T_BOOL)
            return cf_col_put_bool(c, row, v->i != 0, err);
        if (!cf_type_is_varlen(c->type))
            return cf_col_put_i64(c, row, v->i, err);
        break;
    case CF_V_DOUBLE:
        if (ct == CF_T_DOUBLE || ct == CF_T_FLOAT)
            return cf_col_put_f64(c, row, v->d, err);
        break;
    case CF_V_STRING:
    case CF_V_BYTES:
        if (cf_type_is_varlen(c->type))
            return cf_col_put_bytes(c, row, v->s, v->n, err);
        if ((ct == CF_T_DOUBLE || ct == CF_T_FLOAT) && v->kind == CF_V_STRING) {
            char *e;
            double x = strtod(v->s, &e);   /* wide decimal text; s is NUL-terminated */
            if (e != v->s)
                return cf_col_put_f64(c, row, x, err);
        }
        if (ct == CF_T_TIMESTAMP && v->kind == CF_V_STRING) {
            int64_t us;
            bool zone;
            if (cf_conv_iso_ts(v->s, v->n, &us, &zone) == 0)
                return cf_col_put_i64(c, row, us, err);
        }
        break;
    }
    return cf_err_set(err, CF_E_TYPE, "column '%s': cannot store a %s value in a %s column",
                      name, cf_type_name(st.id), cf_type_name(ct));
}

/* Spark's concat_ws: join the non-null inputs with sep; all null -> "". */
static int concat_ws(cf_transform *t, const char *sep, size_t sepn, const cf_value *const *in,
                     int n, bool *unavailable, cf_err *err)
{
    bool first = true;

    cf_buf_reset(&t->scratch);
    *unavailable = false;
    for (int i = 0; i < n; i++) {
        const cf_value *v = in[i];
        if (!v || v->kind == CF_V_NULL)
            continue;
        if (v->kind == CF_V_UNAVAILABLE) {
            *unavailable = true;
            continue;
        }
        if (v->kind != CF_V_STRING)
            return cf_err_set(err, CF_E_TYPE, "concat of a non-string value");
        if (!first && cf_buf_append(&t->scratch, sep, sepn, err))
            return -1;
        if (cf_buf_append(&t->scratch, v->s, v->n, err))
            return -1;
        first = false;
    }
    return 0;
}


static int put_meta(cf_transform *t, const cf_event *ev, cf_batch *out, int m, size_t row,
                    int64_t processed_ts_us, cf_err *err)
{
    const char *op = ev->op == 'u' ? "UPDATE" : ev->op == 'd' ? "DELETE" : "INSERT";
    int64_t ets = ev->ts_ms >= 0 ? ev->ts_ms : ev->src.ts_ms;
    cf_column *c = out->cols + m;

    if (cf_col_put_i64(&c[0], row, processed_ts_us, err) ||
        cf_col_put_bytes(&c[1], row, "postgres_cdc", 12, err) ||
        cf_col_put_bytes(&c[2], row, op, 6, err) ||
        cf_col_put_bytes(&c[3], row, t->pipeline_id, t->pipeline_id_len, err) ||
        cf_col_put_i64(&c[4], row, processed_ts_us, err))
        return -1;
    if (ets >= 0 && cf_col_put_i64(&c[5], row, ets, err))
        return -1;
    if (ev->src.lsn >= 0 && cf_col_put_i64(&c[6], row, ev->src.lsn, err))
        return -1;
    if (ev->kafka_ts_ms >= 0 && cf_col_put_i64(&c[7], row, ev->kafka_ts_ms * 1000, err))
        return -1;
    return 0;
}

/* Value `i` of the row image, with Debezium's unchanged-TOAST placeholder
 * resolved from the before image when the event carries a full one
 * (REPLICA IDENTITY FULL): the old value is the value. */
static const cf_value *image_value(const cf_event *ev, const cf_row *img, int i)
{
    const cf_value *v = &img->vals[i];

    if (v->kind == CF_V_UNAVAILABLE && img == &ev->after && ev->before.present &&
        ev->before.vals[i].kind != CF_V_UNAVAILABLE)
        v = &ev->before.vals[i];
    return v;
}

static int apply_customers(cf_transform *t, const map *m, const cf_event *ev, const cf_row *img,
                           cf_batch *out, size_t row, cf_err *err)
{
    static const cf_value null_value = { .kind = CF_V_NULL };
    const cf_schema *src = ev->schema;
    const cf_value *in[NIN];
    cf_type ty[NIN];
    bool ua;

    for (int i = 0; i < NIN; i++) {
        in[i] = m->idx[i] >= 0 ? image_value(ev, img, m->idx[i]) : &null_value;
        ty[i] = m->idx[i] >= 0 ? src->fields[m->idx[i]].type : (cf_type){ CF_T_STRING, 0, 0 };
    }
    if (in[I_ID]->kind != CF_V_INT)
        return cf_err_set(err, CF_E_TYPE, "customer_id is %s", in[I_ID]->kind == CF_V_NULL ? "null" :
                          in[I_ID]->kind == CF_V_UNAVAILABLE ? "unavailable" : "not an integer");
    if (cf_col_put_i64(&out->cols[O_ID], row, in[I_ID]->i, err))
        return -1;
    {
        static const struct { int in, out; } direct[] = {
            { I_EMAIL, O_EMAIL }, { I_TIER, O_TIER }, { I_LTV, O_LTV }, { I_REG, O_REG },
            { I_ACTIVE, O_ACTIVE },
        };
        for (size_t i = 0; i < sizeof direct / sizeof *direct; i++) {
            const cf_value *v = in[direct[i].in];
            if (put(&out->cols[direct[i].out], row, v, ty[direct[i].in], in_names[direct[i].in], err))
                return -1;
            if (v->kind == CF_V_UNAVAILABLE && ua_add(t, row, direct[i].out, err))
                return -1;
        }
    }
    {
        const cf_value *name[2] = { in[I_FIRST], in[I_LAST] };
        if (concat_ws(t, " ", 1, name, 2, &ua, err))
            return -1;
        if (ua) {
            if (ua_add(t, row, O_FULL, err))
                return -1;
        } else if (cf_col_put_bytes(&out->cols[O_FULL], row, t->scratch.data, t->scratch.len, err)) {
            return -1;
        }
    }
    {
        const cf_value *loc[3] = { in[I_CITY], in[I_STATE], in[I_COUNTRY] };
        if (concat_ws(t, ", ", 2, loc, 3, &ua, err))
            return -1;
        if (ua) {
            if (ua_add(t, row, O_LOC, err))
                return -1;
        } else if (cf_col_put_bytes(&out->cols[O_LOC], row, t->scratch.data, t->scratch.len, err)) {
            return -1;
        }
    }
    return 0;   /* total_orders: null, or set by the enrichment at the commit (state/enrich.h) */
}

static int apply_passthrough(cf_transform *t, const cf_event *ev, const cf_row *img,
                             cf_batch *out, size_t row, cf_err *err)
{
    const cf_schema *src = ev->schema;

    for (int i = 0; i < src->nfields; i++) {
        const cf_value *v = image_value(ev, img, i);
        if (put(&out->cols[i], row, v, src->fields[i].type, src->fields[i].name, err))
            return -1;
        if (v->kind == CF_V_UNAVAILABLE && ua_add(t, row, i, err))
            return -1;
    }
    return 0;
}

int cf_transform_apply(cf_transform *t, const cf_event *ev, cf_batch *out, cf_cells *unavail,
                       int64_t processed_ts_us, cf_err *err)
{
    const cf_row *img;
    map *m;
    size_t row = out->nrows;

    if (ev->op == 0 || ev->op == 't')
        return 0;
    img = ev->op == 'd' ? &ev->before : &ev->after;
    if (!img->present)
        return cf_err_set(err, CF_E_ARG, "op '%c' without its %s image", ev->op,
                          ev->op == 'd' ? "before" : "after");
    if (!(m = find_map(t, ev, err)))
        return -1;
    if (out->schema != m->out)
        return cf_err_set(err, CF_E_ARG, "output batch is bound to another schema");
    t->ua = unavail;
    if ((m->customers ? apply_customers(t, m, ev, img, out, row, err)
                      : apply_passthrough(t, ev, img, out, row, err)) ||
        put_meta(t, ev, out, m->meta, row, processed_ts_us, err) ||
        cf_batch_end_row(out, err)) {
        cf_batch_abort_row(out);
        if (unavail)
            cf_cells_truncate(unavail, row);
        t->ua = NULL;
        return -1;
    }
    t->ua = NULL;
    return 0;
}
