/* enrich.c - the total_orders enrichment join and its exactly-once state;
 * see enrich.h. */
#include "state/enrich.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "state/i64map.h"
#include "util/buf.h"
#include "util/log.h"

#define MAGIC        "CFSTATE1"
#define KIND_FULL    1u     /* the whole state */
#define KIND_DELTA   2u     /* the keys one commit changed, over a parent file */
/* A full state is written again when the deltas since the last one add
 * up to more than it (a load then reads at most twice its size), or
 * after this many deltas. */
#define CHAIN_MAX    256
#define PATH_MAX_    4608
#define STATE_CAP    ((size_t)1 << 34)    /* 16 GiB: a state file larger is refused */

/* One buffered order event.  op 'c' (create, read, update: the order now
 * names `cust`, or none), 'd' (delete), 't' (truncate). */
typedef struct order_ev {
    int64_t  lsn, order, cust, ts_ms, kafka_ts;
    uint32_t seq;
    char     op;
    bool     has_cust;
} order_ev;

/* The old value of one key, to undo a commit that did not land. */
typedef struct undo {
    int64_t key, old;
    uint8_t map;              /* 0 customers, 1 orders */
    bool    had;
} undo;

/* A customer whose count the batch changed (upsert): what its winning row
 * carries so far, and the newest event that touched it. */
typedef struct dirty {
    int64_t cust, carried, lsn, ts_ms, kafka_ts;
} dirty;

typedef struct row_at { int64_t lsn; size_t row; } row_at;

struct cf_enrich {
    char      *orders_topic, *fk, *key, *count, *location;
    cf_mode    mode;
    cf_store  *st;
    cf_i64map  cust;          /* customer -> count << 1 | exists */
    cf_i64map  orders;        /* order -> the customer it names */
    cf_offsets at;            /* the table offsets the state goes with */
    bool       synced;
    /* The files the state of `at` is made of, oldest first: a full state,
     * then deltas (names under LOCATION/_cdcflow_state/). */
    char     **chain;
    int        nchain, achain;
    size_t     base_bytes, delta_bytes;
    cf_i64map  seen[2];       /* per map: keys of the batch's changes seen */
    int64_t   *chg[4];        /* the changes: customers (key, value) put, keys gone; the same for orders */
    size_t     nchg[4], achg[4];
    /* the batch */
    order_ev  *ev;
    size_t     nev, aev;
    undo      *undo;
    size_t     nundo, aundo;
    cf_i64map  dmap;          /* customer -> index into dirty */
    dirty     *dirty;
    size_t     ndirty, adirty;
    char      *ops;           /* the commit's ops and lsns, with the count updates */
    int64_t   *lsns;
    size_t     arows;
    cf_batch  *own;           /* count updates when the batch has no rows */
    int        own_key;
    cf_offsets next;          /* `at` after the commit */
    char       next_name[64];
    bool       next_full;
    size_t     next_bytes;
};

static int grow(void **p, size_t *alloc, size_t need, size_t size, cf_err *err)
{
    size_t na;
    void *np;

    if (need <= *alloc)
        return 0;
    na = *alloc ? *alloc : 256;
    while (na < need)
        na *= 2;
    if (!(np = realloc(*p, na * size)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory (total_orders state)");
    *p = np;
    *alloc = na;
    return 0;
}

cf_enrich *cf_enrich_new(const cf_enrich_config *cfg, cf_err *err)
{
    cf_enrich *e = calloc(1, sizeof *e);

    if (!e || !cfg->orders_topic || !cfg->location) {
        free(e);
        cf_err_set(err, e ? CF_E_ARG : CF_E_NOMEM, e ? "enrichment needs an orders topic and a location"
                                                     : "out of memory");
        return NULL;
    }
    e->mode = cfg->mode;
    if (!(e->orders_topic = strdup(cfg->orders_topic)) ||
        !(e->fk = strdup(cfg->fk_column ? cfg->fk_column : "customer_id")) ||
        !(e->key = strdup(cfg->key_column ? cfg->key_column : "customer_id")) ||
        !(e->count = strdup(cfg->count_column ? cfg->count_column : "total_orders")) ||
        !(e->location = strdup(cfg->location))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (!(e->st = cf_store_open(cfg->location, cfg->store, err)))
        goto fail;
    return e;
fail:
    cf_enrich_free(e);
    return NULL;
}

void cf_enrich_free(cf_enrich *e)
{
    if (!e)
        return;
    cf_store_close(e->st);
    cf_i64map_free(&e->cust);
    cf_i64map_free(&e->orders);
    cf_i64map_free(&e->dmap);
    for (int i = 0; i < 4; i++)
        free(e->chg[i]);
    cf_i64map_free(&e->seen[0]);
    cf_i64map_free(&e->seen[1]);
    for (int i = 0; i < e->nchain; i++)
        free(e->chain[i]);
    free(e->chain);
    cf_offsets_free(&e->at);
    cf_offsets_free(&e->next);
    cf_batch_free(e->own);
    free(e->ev);
    free(e->undo);
    free(e->dirty);
    free(e->ops);
    free(e->lsns);
    free(e->orders_topic);
    free(e->fk);
    free(e->key);
    free(e->count);
    free(e->location);
    free(e);
}

bool cf_enrich_takes(const cf_enrich *e, const char *topic)
{
    return e && topic && !strcmp(topic, e->orders_topic);
}

/* ---- the state ---------------------------------------------------------- */

static void cust_get(const cf_enrich *e, int64_t c, int64_t *count, bool *exists)
{
    int64_t v = 0;

    cf_i64map_get(&e->cust, c, &v);
    *count = v >> 1;
    *exists = v & 1;
}

int64_t cf_enrich_count(const cf_enrich *e, int64_t customer)
{
    int64_t n;
    bool ex;

    cust_get(e, customer, &n, &ex);
    return n;
}

void cf_enrich_size(const cf_enrich *e, size_t *customers, size_t *orders, size_t *bytes)
{
    if (customers)
        *customers = e->cust.n;
    if (orders)
        *orders = e->orders.n;
    if (bytes)
        *bytes = cf_i64map_bytes(&e->cust) + cf_i64map_bytes(&e->orders);
}

static int remember(cf_enrich *e, uint8_t map, int64_t key, cf_err *err)
{
    undo *u;

    if (grow((void **)&e->undo, &e->aundo, e->nundo + 1, sizeof *e->undo, err))
        return -1;
    u = &e->undo[e->nundo++];
    u->map = map;
    u->key = key;
    u->had = cf_i64map_get(map ? &e->orders : &e->cust, key, &u->old);
    return 0;
}

/* A customer with no order and no row is forgotten: the map holds only
 * customers that exist or are named by an order. */
static int cust_set(cf_enrich *e, int64_t c, int64_t count, bool exists, cf_err *err)
{
    if (remember(e, 0, c, err))
        return -1;
    if (count == 0 && !exists) {
        cf_i64map_del(&e->cust, c);
        return 0;
    }
    return cf_i64map_put(&e->cust, c, count * 2 + exists, err);
}

static int mark_dirty(cf_enrich *e, int64_t c, int64_t before, const order_ev *o, cf_err *err)
{
    int64_t i;
    dirty *d;

    if (e->mode != CF_MODE_UPSERT)
        return 0;
    if (!cf_i64map_get(&e->dmap, c, &i)) {
        if (grow((void **)&e->dirty, &e->adirty, e->ndirty + 1, sizeof *e->dirty, err) ||
            cf_i64map_put(&e->dmap, c, (int64_t)e->ndirty, err))
            return -1;
        i = (int64_t)e->ndirty++;
        e->dirty[i] = (dirty){ .cust = c, .carried = before };
    }
    d = &e->dirty[i];
    d->lsn = o->lsn;
    d->ts_ms = o->ts_ms;
    d->kafka_ts = o->kafka_ts;
    return 0;
}

static int count_add(cf_enrich *e, int64_t c, int64_t delta, const order_ev *o, cf_err *err)
{
    int64_t n;
    bool ex;

    cust_get(e, c, &n, &ex);
    if (n + delta < 0) {
        cf_log(CF_LOG_WARN, "enrich", "count of customer %" PRId64 " would go below 0: kept at 0", c);
        delta = -n;
    }
    if (!delta)
        return 0;
    return mark_dirty(e, c, n, o, err) || cust_set(e, c, n + delta, ex, err) ? -1 : 0;
}

static int order_set(cf_enrich *e, int64_t order, bool has, int64_t cust, cf_err *err)
{
    if (remember(e, 1, order, err))
        return -1;
    if (!has) {
        cf_i64map_del(&e->orders, order);
        return 0;
    }
    return cf_i64map_put(&e->orders, order, cust, err);
}

/* Every order gone: each count drops to 0. */
static int truncate_all(cf_enrich *e, const order_ev *o, cf_err *err)
{
    int64_t *keys = malloc((e->orders.n + e->cust.n + 1) * sizeof *keys), k, v;
    size_t nk = 0, it = 0;
    int rc = -1;

    if (!keys)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    while (cf_i64map_next(&e->orders, &it, &k, &v))
        keys[nk++] = k;
    for (size_t i = 0; i < nk; i++)
        if (order_set(e, keys[i], false, 0, err))
            goto out;
    nk = 0;
    it = 0;
    while (cf_i64map_next(&e->cust, &it, &k, &v))
        if (v >> 1)
            keys[nk++] = k;
    for (size_t i = 0; i < nk; i++) {
        int64_t n;
        bool ex;
        cust_get(e, keys[i], &n, &ex);
        if (count_add(e, keys[i], -n, o, err))
            goto out;
    }
    rc = 0;
out:
    free(keys);
    return rc;
}

static int apply_order(cf_enrich *e, const order_ev *o, cf_err *err)
{
    int64_t old;
    bool had;

    if (o->op == 't')
        return truncate_all(e, o, err);
    had = cf_i64map_get(&e->orders, o->order, &old);
    if (o->op != 'd' && had && o->has_cust && old == o->cust)
        return 0;                       /* same customer: nothing moves */
    if (had && count_add(e, old, -1, o, err))
        return -1;
    if (o->op != 'd' && o->has_cust && count_add(e, o->cust, 1, o, err))
        return -1;
    if (!had && (o->op == 'd' || !o->has_cust))
        return 0;
    return order_set(e, o->order, o->op != 'd' && o->has_cust, o->cust, err);
}

static void rollback(cf_enrich *e)
{
    while (e->nundo) {
        const undo *u = &e->undo[--e->nundo];
        cf_i64map *m = u->map ? &e->orders : &e->cust;
        if (u->had)
            cf_i64map_put(m, u->key, u->old, NULL);   /* the slot is there: cannot fail */
        else
            cf_i64map_del(m, u->key);
    }
}

/* ---- order events -------------------------------------------------------- */

static int int_value(const cf_value *v, int64_t *out)
{
    if (v->kind != CF_V_INT)
        return -1;
    *out = v->i;
    return 0;
}

int cf_enrich_order(cf_enrich *e, const cf_event *ev, cf_err *err)
{
    order_ev o = { .lsn = ev->src.lsn, .ts_ms = ev->ts_ms >= 0 ? ev->ts_ms : ev->src.ts_ms,
                   .kafka_ts = ev->kafka_ts_ms, .seq = (uint32_t)e->nev, .op = 'c' };
    const cf_row *img;
    int fk, kc;

    if (ev->op == 0)
        return 0;
    if (ev->op == 't') {
        o.op = 't';
        goto add;
    }
    img = ev->op == 'd' ? &ev->before : &ev->after;
    if (!ev->schema || !img->present)
        return cf_err_set(err, CF_E_PARSE, "order event '%c' without its row image", ev->op);
    /* The key Debezium sends; without one (schemaless JSON), order_id. */
    kc = ev->schema->npk == 1 ? ev->schema->pk[0] : ev->schema->npk ? -1 : cf_schema_find(ev->schema, "order_id");
    if (kc < 0 || int_value(&img->vals[kc], &o.order))
        return cf_err_set(err, CF_E_PARSE, "order event without a key of one integer column");
    if (ev->op == 'd') {
        o.op = 'd';
        goto add;
    }
    if ((fk = cf_schema_find(ev->schema, e->fk)) < 0)
        return cf_err_set(err, CF_E_PARSE, "order event without a '%s' column", e->fk);
    if (img->vals[fk].kind == CF_V_UNAVAILABLE)
        return 0;                       /* unchanged: the order keeps its customer */
    o.has_cust = int_value(&img->vals[fk], &o.cust) == 0;
    if (!o.has_cust && img->vals[fk].kind != CF_V_NULL)
        return cf_err_set(err, CF_E_PARSE, "order column '%s' is not an integer", e->fk);
add:
    if (grow((void **)&e->ev, &e->aev, e->nev + 1, sizeof *e->ev, err))
        return -1;
    e->ev[e->nev++] = o;
    return 0;
}

static int cmp_ev(const void *a, const void *b)
{
    const order_ev *x = a, *y = b;
    if (x->lsn != y->lsn)
        return x->lsn < y->lsn ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_row(const void *a, const void *b)
{
    const row_at *x = a, *y = b;
    if (x->lsn != y->lsn)
        return x->lsn < y->lsn ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

/* ---- offsets and file names ---------------------------------------------- */

static int cmp_off(const void *a, const void *b)
{
    const cf_offset *x = *(const cf_offset *const *)a, *y = *(const cf_offset *const *)b;
    int c = strcmp(x->topic, y->topic);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

/* The offsets in a fixed order (the table lists them in any). */
static const cf_offset **sorted(const cf_offsets *o, cf_err *err)
{
    const cf_offset **v = malloc(sizeof *v * (size_t)(o->n + 1));

    if (!v) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < o->n; i++)
        v[i] = &o->v[i];
    qsort(v, (size_t)o->n, sizeof *v, cmp_off);
    return v;
}

/* total_orders-<FNV-1a of the offsets>.state.  The file holds the offsets
 * as well, so a collision is caught on load. */
static int state_name(const cf_offsets *o, char *out, size_t cap, cf_err *err)
{
    const cf_offset **v = sorted(o, err);
    uint64_t h = 1469598103934665603ULL;

    if (!v)
        return -1;
    for (int i = 0; i < o->n; i++) {
        char num[48];
        int n = snprintf(num, sizeof num, "\n%" PRId32 "\n%" PRId64 "\n", v[i]->partition, v[i]->next_offset);
        for (const char *s = v[i]->topic; *s; s++)
            h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        for (int k = 0; k < n; k++)
            h = (h ^ (uint8_t)num[k]) * 1099511628211ULL;
    }
    free(v);
    snprintf(out, cap, "total_orders-%016" PRIx64 ".state", h);
    return 0;
}

static void file_path(const cf_enrich *e, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s", e->location, CF_ENRICH_DIR, name);
}

static bool same_offsets(const cf_offsets *a, const cf_offsets *b)
{
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++)
        if (cf_offsets_get(b, a->v[i].topic, a->v[i].partition) != a->v[i].next_offset)
            return false;
    return true;
}

/* ---- the state file ------------------------------------------------------- */

static int put_le(cf_buf *b, uint64_t v, int bytes, cf_err *err)
{
    uint8_t x[8];

    for (int i = 0; i < bytes; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    return cf_buf_append(b, x, (size_t)bytes, err);
}

static int put_map(cf_buf *b, const cf_i64map *m, cf_err *err)
{
    size_t it = 0;
    int64_t k, v;

    if (put_le(b, m->n, 8, err) || cf_buf_reserve(b, m->n * 16, err))
        return -1;
    while (cf_i64map_next(m, &it, &k, &v))
        if (put_le(b, (uint64_t)k, 8, err) || put_le(b, (uint64_t)v, 8, err))
            return -1;
    return 0;
}

static int put_head(cf_buf *out, uint32_t kind, const cf_offsets *offsets, cf_err *err)
{
    const cf_offset **v = sorted(offsets, err);
    int rc = -1;

    if (!v)
        return -1;
    if (cf_buf_append(out, MAGIC, 8, err) || put_le(out, kind, 4, err) || put_le(out, (uint64_t)offsets->n, 4, err))
        goto out;
    for (int i = 0; i < offsets->n; i++) {
        size_t tl = strlen(v[i]->topic);
        if (put_le(out, tl, 2, err) || cf_buf_append(out, v[i]->topic, tl, err) ||
            put_le(out, (uint32_t)v[i]->partition, 4, err) || put_le(out, (uint64_t)v[i]->next_offset, 8, err))
            goto out;
    }
    rc = 0;
out:
    free(v);
    return rc;
}

static int put_crc(cf_buf *out, size_t start, cf_err *err)
{
    return put_le(out, crc32(0, out->data + start, (uInt)(out->len - start)), 4, err);
}

int cf_enrich_encode(const cf_enrich *e, const cf_offsets *offsets, cf_buf *out, cf_err *err)
{
    size_t start = out->len;

    return put_head(out, KIND_FULL, offsets, err) || put_map(out, &e->cust, err) || put_map(out, &e->orders, err)
           || put_crc(out, start, err) ? -1 : 0;
}

/* The keys the batch changed, each once (the undo log names them, some
 * more than once), into chg[]: per map, the ones present and the ones gone.
 * Returns the size of the maps part of their delta. */
static int collect_changes(cf_enrich *e, size_t *bytes, cf_err *err)
{
    for (int i = 0; i < 4; i++)
        e->nchg[i] = 0;
    cf_i64map_clear(&e->seen[0]);
    cf_i64map_clear(&e->seen[1]);
    for (size_t i = 0; i < e->nundo; i++) {
        const undo *u = &e->undo[i];
        int64_t v;
        int l;
        if (cf_i64map_get(&e->seen[u->map], u->key, NULL))
            continue;
        l = u->map * 2 + !cf_i64map_get(u->map ? &e->orders : &e->cust, u->key, &v);
        if (cf_i64map_put(&e->seen[u->map], u->key, 0, err) ||
            grow((void **)&e->chg[l], &e->achg[l], e->nchg[l] + 2, sizeof *e->chg[l], err))
            return -1;
        e->chg[l][e->nchg[l]++] = u->key;
        if (!(l & 1))
            e->chg[l][e->nchg[l]++] = v;
    }
    *bytes = 32 + (e->nchg[0] + e->nchg[2]) * 8 + (e->nchg[1] + e->nchg[3]) * 8;
    return 0;
}

static int put_changes(cf_enrich *e, cf_buf *out, cf_err *err)
{
    for (int l = 0; l < 4; l++) {
        /* puts hold (key, value) pairs: their count is half the array */
        if (put_le(out, l & 1 ? e->nchg[l] : e->nchg[l] / 2, 8, err) ||
            cf_buf_reserve(out, e->nchg[l] * 8, err))
            return -1;
        for (size_t i = 0; i < e->nchg[l]; i++)
            if (put_le(out, (uint64_t)e->chg[l][i], 8, err))
                return -1;
    }
    return 0;
}

static int encode_delta(cf_enrich *e, const cf_offsets *offsets, const char *parent, cf_buf *out, cf_err *err)
{
    size_t start = out->len, pl = strlen(parent);

    return put_head(out, KIND_DELTA, offsets, err) || put_le(out, pl, 2, err) ||
           cf_buf_append(out, parent, pl, err) || put_changes(e, out, err) || put_crc(out, start, err) ? -1 : 0;
}

typedef struct rd { const uint8_t *p; size_t n, pos; } rd;

static int get_le(rd *r, int bytes, uint64_t *v, cf_err *err)
{
    *v = 0;
    if (r->n - r->pos < (size_t)bytes)
        return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: truncated");
    for (int i = 0; i < bytes; i++)
        *v |= (uint64_t)r->p[r->pos + (size_t)i] << (8 * i);
    r->pos += (size_t)bytes;
    return 0;
}

static int get_map(rd *r, cf_i64map *m, cf_err *err)
{
    uint64_t n, k, v;

    if (get_le(r, 8, &n, err))
        return -1;
    if (n > (r->n - r->pos) / 16)
        return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: %" PRIu64 " keys do not fit", n);
    if (cf_i64map_reserve(m, (size_t)n, err))
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (get_le(r, 8, &k, err) || get_le(r, 8, &v, err) || cf_i64map_put(m, (int64_t)k, (int64_t)v, err))
            return -1;
    return 0;
}

static int get_keys(rd *r, cf_i64map *m, bool dels, cf_err *err)
{
    uint64_t n, k, v;

    if (get_le(r, 8, &n, err))
        return -1;
    if (n > (r->n - r->pos) / (dels ? 8 : 16))
        return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: %" PRIu64 " keys do not fit", n);
    for (uint64_t i = 0; i < n; i++) {
        if (get_le(r, 8, &k, err))
            return -1;
        if (dels)
            cf_i64map_del(m, (int64_t)k);
        else if (get_le(r, 8, &v, err) || cf_i64map_put(m, (int64_t)k, (int64_t)v, err))
            return -1;
    }
    return 0;
}

/* Check a state file and read its head: kind and offsets, and for a delta
 * its parent's name (cap bytes).  r is then at the maps. */
static int open_file(rd *r, const void *p, size_t n, uint64_t *kind, cf_offsets *offsets, char *parent,
                     size_t cap, cf_err *err)
{
    uint64_t noff, crc;

    *r = (rd){ p, n, 0 };
    cf_offsets_clear(offsets);
    if (n < 20 || memcmp(p, MAGIC, 8))
        return cf_err_setpos(err, CF_E_PARSE, 0, "not a cdcflow state file");
    r->pos = n - 4;
    if (get_le(r, 4, &crc, err))
        return -1;
    if (crc != crc32(0, p, (uInt)(n - 4)))
        return cf_err_setpos(err, CF_E_CORRUPT, (long)(n - 4), "state file: checksum mismatch");
    r->n = n - 4;
    r->pos = 8;
    if (get_le(r, 4, kind, err) || get_le(r, 4, &noff, err))
        return -1;
    if (*kind != KIND_FULL && *kind != KIND_DELTA)
        return cf_err_setpos(err, CF_E_UNSUPPORTED, 8, "state file of kind %" PRIu64, *kind);
    for (uint64_t i = 0; i < noff; i++) {
        uint64_t tl, part, next;
        char topic[256];
        if (get_le(r, 2, &tl, err))
            return -1;
        if (tl >= sizeof topic || tl > r->n - r->pos)
            return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: bad topic length %" PRIu64, tl);
        memcpy(topic, r->p + r->pos, tl);
        topic[tl] = '\0';
        r->pos += tl;
        if (get_le(r, 4, &part, err) || get_le(r, 8, &next, err) ||
            cf_offsets_put(offsets, topic, (int32_t)(uint32_t)part, (int64_t)next, err))
            return -1;
    }
    if (*kind == KIND_DELTA) {
        uint64_t pl;
        if (get_le(r, 2, &pl, err))
            return -1;
        if (pl >= cap || pl > r->n - r->pos || memchr(r->p + r->pos, '/', pl) || memchr(r->p + r->pos, 0, pl))
            return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: bad parent name");
        memcpy(parent, r->p + r->pos, pl);
        parent[pl] = '\0';
        r->pos += pl;
    }
    return 0;
}

/* Apply the maps of an opened file: a full one replaces the state, a
 * delta changes it. */
static int apply_file(cf_enrich *e, rd *r, uint64_t kind, cf_err *err)
{
    if (kind == KIND_FULL) {
        cf_i64map_clear(&e->cust);
        cf_i64map_clear(&e->orders);
        if (get_map(r, &e->cust, err) || get_map(r, &e->orders, err))
            return -1;
    } else if (get_keys(r, &e->cust, false, err) || get_keys(r, &e->cust, true, err) ||
               get_keys(r, &e->orders, false, err) || get_keys(r, &e->orders, true, err)) {
        return -1;
    }
    if (r->pos != r->n)
        return cf_err_setpos(err, CF_E_PARSE, (long)r->pos, "state file: %zu bytes after the end", r->n - r->pos);
    return 0;
}

int cf_enrich_decode(cf_enrich *e, const void *p, size_t n, cf_offsets *offsets, cf_err *err)
{
    rd r;
    uint64_t kind;
    char parent[64];

    cf_i64map_clear(&e->cust);
    cf_i64map_clear(&e->orders);
    if (open_file(&r, p, n, &kind, offsets, parent, sizeof parent, err))
        return -1;
    if (kind != KIND_FULL)
        return cf_err_setpos(err, CF_E_UNSUPPORTED, 8, "a delta state file: load it with cf_enrich_sync");
    return apply_file(e, &r, kind, err);
}

/* ---- sync with the table -------------------------------------------------- */

static void chain_clear(cf_enrich *e)
{
    for (int i = 0; i < e->nchain; i++)
        free(e->chain[i]);
    e->nchain = 0;
    e->base_bytes = e->delta_bytes = 0;
}

static int chain_push(cf_enrich *e, const char *name, cf_err *err)
{
    size_t a = (size_t)e->achain;

    if (grow((void **)&e->chain, &a, (size_t)e->nchain + 1, sizeof *e->chain, err))
        return -1;
    e->achain = (int)a;
    if (!(e->chain[e->nchain] = strdup(name)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    e->nchain++;
    return 0;
}

static bool in_chain(const cf_enrich *e, const char *name)
{
    for (int i = 0; i < e->nchain; i++)
        if (!strcmp(e->chain[i], name))
            return true;
    return false;
}

static void remove_file(cf_enrich *e, const char *path)
{
    cf_err err = { 0 };

    if (cf_store_delete(e->st, path, &err))
        cf_log(CF_LOG_WARN, "enrich", "removing an old state file: %s", err.msg);
}

/* Files of commits that never landed (a crash between the state and the
 * table), or of chains a full state replaced: no table offsets name them. */
static int sweep_one(void *ctx, const char *path, const cf_store_stat *sb)
{
    cf_enrich *e = ctx;
    const char *base = strrchr(path, '/');

    (void)sb;
    base = base ? base + 1 : path;
    if (!strncmp(base, "total_orders-", 13) && !in_chain(e, base))
        remove_file(e, path);
    return 0;
}

static int missing(cf_err *err, const char *path, bool first)
{
    cf_err_set(err, CF_E_CORRUPT, first ? "no total_orders state for the table's offsets (%s): a table written "
               "without --total-orders-from cannot be enriched, start a new one"
               : "the total_orders state file %s is missing", path);
    if (err)
        err->fatal = true;
    return -1;
}

int cf_enrich_sync(cf_enrich *e, const cf_offsets *table, cf_err *err)
{
    char name[64], path[PATH_MAX_];
    cf_buf *bufs = NULL;         /* the files read, newest first */
    cf_offsets got = { 0 };
    int nb = 0, rc = -1;

    if (e->synced && same_offsets(&e->at, table))
        return 0;
    e->synced = false;
    cf_i64map_clear(&e->cust);
    cf_i64map_clear(&e->orders);
    chain_clear(e);
    if (!table->n) {
        cf_offsets_clear(&e->at);
        e->synced = true;
        return 0;
    }
    if (state_name(table, name, sizeof name, err))
        return -1;
    if (!(bufs = calloc(CHAIN_MAX + 2, sizeof *bufs)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    /* Back from the file the offsets name to the full state it builds on. */
    for (;;) {
        char parent[64];
        uint64_t kind;
        rd r;

        if (nb > CHAIN_MAX) {
            cf_err_set(err, CF_E_CORRUPT, "total_orders state: a chain of more than %d files", CHAIN_MAX);
            goto out;
        }
        file_path(e, name, path, sizeof path);
        cf_buf_init(&bufs[nb], STATE_CAP);
        if (cf_store_get(e->st, path, &bufs[nb++], err)) {
            if (err && err->code == CF_E_NOTFOUND)
                missing(err, path, nb == 1);
            goto out;
        }
        if (open_file(&r, bufs[nb - 1].data, bufs[nb - 1].len, &kind, &got, parent, sizeof parent, err)) {
            cf_err_wrap(err, "%s", path);
            goto out;
        }
        if (nb == 1 && !same_offsets(&got, table)) {
            cf_err_set(err, CF_E_CORRUPT, "%s holds the state of other offsets than the table's", path);
            err->fatal = true;
            goto out;
        }
        if (chain_push(e, name, err))
            goto out;
        if (kind == KIND_FULL) {
            if (apply_file(e, &r, kind, err)) {
                cf_err_wrap(err, "%s", path);
                goto out;
            }
            e->base_bytes = bufs[nb - 1].len;
            break;
        }
        e->delta_bytes += bufs[nb - 1].len;
        snprintf(name, sizeof name, "%s", parent);
    }
    /* Then the deltas, oldest first. */
    for (int i = nb - 2; i >= 0; i--) {
        char parent[64];
        uint64_t kind;
        rd r;
        if (open_file(&r, bufs[i].data, bufs[i].len, &kind, &got, parent, sizeof parent, err) ||
            apply_file(e, &r, kind, err)) {
            cf_err_wrap(err, "%s/%s/%s", e->location, CF_ENRICH_DIR, e->chain[i]);
            goto out;
        }
    }
    for (int i = 0; i < e->nchain / 2; i++) {
        char *t = e->chain[i];
        e->chain[i] = e->chain[e->nchain - 1 - i];
        e->chain[e->nchain - 1 - i] = t;
    }
    if (cf_offsets_copy(&e->at, table, err))
        goto out;
    e->synced = true;
    cf_log(CF_LOG_INFO, "enrich", "total_orders state loaded: %zu customers, %zu orders from %d file%s (%s/%s)",
           e->cust.n, e->orders.n, e->nchain, e->nchain == 1 ? "" : "s", CF_ENRICH_DIR, e->chain[e->nchain - 1]);
    snprintf(path, sizeof path, "%s/%s", e->location, CF_ENRICH_DIR);
    cf_store_list(e->st, path, CF_STORE_FLAT, sweep_one, e, NULL);
    rc = 0;
out:
    if (rc) {
        cf_i64map_clear(&e->cust);
        cf_i64map_clear(&e->orders);
        chain_clear(e);
    }
    for (int i = 0; i < nb; i++)
        cf_buf_free(&bufs[i]);
    free(bufs);
    cf_offsets_free(&got);
    return rc;
}

/* The state file's name must survive a power loss as the commit naming
 * it does (local: fsync of the directories; S3: nothing to do). */
static int sync_path(cf_enrich *e, const char *path, cf_err *err)
{
    char *paths[1] = { (char *)path };
    return cf_store_sync(e->st, e->location, paths, 1, err);
}

/* ---- the commit ------------------------------------------------------------ */

/* Forget what the prepared commit changed (its undo log and dirty keys). */
static void clear_batch(cf_enrich *e)
{
    e->nundo = 0;
    e->ndirty = 0;
    cf_i64map_clear(&e->dmap);
}

void cf_enrich_drop(cf_enrich *e)
{
    if (e) {
        e->nev = 0;
        clear_batch(e);
    }
}

static int set_count(cf_column *c, size_t row, int64_t v)
{
    if (v > INT32_MAX && c->type.id == CF_T_INT32)
        v = INT32_MAX;
    if (c->type.id == CF_T_INT32)
        ((int32_t *)c->vals)[row] = (int32_t)v;
    else
        ((int64_t *)c->vals)[row] = v;
    c->valid[row] = 1;
    return 0;
}

/* A customers row of the batch, in LSN order: it carries the count as of
 * now, and says whether the customer exists. */
static int take_row(cf_enrich *e, cf_batch *rows, size_t r, char op, int kc, int cc, cf_err *err)
{
    int64_t c, n, i;
    bool ex;

    if (!cf_col_valid(&rows->cols[kc], r))
        return cf_err_set(err, CF_E_ARG, "enrichment: a row without %s", e->key);
    c = cf_col_i64(&rows->cols[kc], r);
    cust_get(e, c, &n, &ex);
    set_count(&rows->cols[cc], r, n);
    if (ex != (op != 'd') && cust_set(e, c, n, op != 'd', err))
        return -1;
    if (cf_i64map_get(&e->dmap, c, &i))
        e->dirty[i].carried = n;
    return 0;
}

static int merge(cf_enrich *e, cf_batch *rows, const char *ops, const int64_t *lsns, int kc, int cc,
                 cf_err *err)
{
    size_t n = rows ? rows->nrows : 0, k = 0, i = 0;
    row_at *ra = malloc(sizeof *ra * (n + 1));
    int rc = -1;

    if (!ra)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (size_t r = 0; r < n; r++)
        ra[r] = (row_at){ lsns ? lsns[r] : -1, r };
    if (n)
        qsort(ra, n, sizeof *ra, cmp_row);
    if (e->nev)
        qsort(e->ev, e->nev, sizeof *e->ev, cmp_ev);
    /* An order event and a customers row at one LSN: the order first (a
     * row includes the order events up to its own LSN). */
    while (i < e->nev || k < n) {
        if (i < e->nev && (k == n || e->ev[i].lsn <= ra[k].lsn)) {
            if (apply_order(e, &e->ev[i++], err))
                goto out;
        } else {
            size_t r = ra[k++].row;
            if (take_row(e, rows, r, ops ? ops[r] : 'c', kc, cc, err))
                goto out;
        }
    }
    rc = 0;
out:
    free(ra);
    return rc;
}

/* Room for n rows in the commit's ops and lsns. */
static int room(cf_enrich *e, size_t n, cf_err *err)
{
    size_t a = e->arows;
    int64_t *nl;

    if (n <= e->arows)
        return 0;
    if (grow((void **)&e->ops, &a, n, 1, err))
        return -1;
    if (!(nl = realloc(e->lsns, a * sizeof *nl)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    e->lsns = nl;
    e->arows = a;
    return 0;
}

static int put_meta(cf_batch *b, size_t row, int c, int64_t v, cf_err *err)
{
    return c < 0 || v < 0 ? 0 : cf_col_set_i64(&b->cols[c], row, v, err);
}

/* One update row per customer whose count the batch changed and whose
 * winning row does not carry it: key, count and the metadata of the order
 * event behind it; every other cell unavailable (the table's value). */
static int append_updates(cf_enrich *e, cf_batch *b, cf_cells *ua, int kc, int cc,
                          int64_t now_us, cf_err *err)
{
    const cf_schema *s = b->schema;
    int op = cf_schema_find(s, "_cdc_operation"), lsn = cf_schema_find(s, "_source_lsn"),
        ets = cf_schema_find(s, "_event_timestamp_ms"), kts = cf_schema_find(s, "_kafka_timestamp"),
        its = cf_schema_find(s, "_ingestion_timestamp"), pts = cf_schema_find(s, "_processed_timestamp");
    size_t row;

    for (size_t d = 0; d < e->ndirty; d++) {
        const dirty *x = &e->dirty[d];
        int64_t n;
        bool ex;
        cust_get(e, x->cust, &n, &ex);
        if (!ex || n == x->carried)
            continue;
        row = b->nrows;
        if (room(e, row + 1, err))
            return -1;
        if (cf_col_set_i64(&b->cols[kc], row, x->cust, err) || cf_col_set_i64(&b->cols[cc], row, n, err) ||
            (op >= 0 && cf_col_set_bytes(&b->cols[op], row, "UPDATE", 6, err)) ||
            put_meta(b, row, lsn, x->lsn, err) || put_meta(b, row, ets, x->ts_ms, err) ||
            put_meta(b, row, kts, x->kafka_ts >= 0 ? x->kafka_ts * 1000 : -1, err) ||
            put_meta(b, row, its, now_us, err) || put_meta(b, row, pts, now_us, err))
            goto fail;
        for (int c = 0; c < b->ncols; c++) {
            if (b->cols[c].n > row)
                continue;               /* set above */
            if (ua && cf_cells_add(ua, row, c, err))
                goto fail;
        }
        if (cf_batch_end_row(b, err))
            goto fail;
        e->ops[row] = 'u';
        e->lsns[row] = x->lsn;
    }
    return 0;
fail:
    cf_batch_abort_row(b);
    if (ua)
        cf_cells_truncate(ua, b->nrows);
    return -1;
}

int cf_enrich_prepare(cf_enrich *e, cf_batch *rows, const cf_schema *schema, cf_cells *ua, cf_commit *c,
                      int64_t now_us, cf_err *err)
{
    const cf_schema *s = rows ? rows->schema : schema;
    size_t n = rows ? rows->nrows : 0;
    char path[PATH_MAX_];
    cf_buf b;
    int kc, cc, rc = -1;

    if (!e->synced)
        return cf_err_set(err, CF_E_ARG, "enrichment: the state was not loaded from the table");
    if (!s || (kc = cf_schema_find(s, e->key)) < 0 || (cc = cf_schema_find(s, e->count)) < 0 ||
        (s->fields[cc].type.id != CF_T_INT32 && s->fields[cc].type.id != CF_T_INT64) ||
        s->fields[kc].type.id != CF_T_INT64)
        return cf_err_set(err, CF_E_ARG, "enrichment: the rows need an int64 '%s' and an integer '%s' column "
                          "(the customers transform writes them)", e->key, e->count);
    cf_buf_init(&b, STATE_CAP);
    if (merge(e, rows, c->ops, c->lsns, kc, cc, err))
        goto out;
    /* The state the commit's offsets will name, written before the commit. */
    if (cf_offsets_copy(&e->next, &e->at, err))
        goto out;
    for (int i = 0; c->end && i < c->end->n; i++)
        if (cf_offsets_put(&e->next, c->end->v[i].topic, c->end->v[i].partition, c->end->v[i].next_offset, err))
            goto out;
    if (state_name(&e->next, e->next_name, sizeof e->next_name, err))
        goto out;
    /* A delta over the last file, unless the deltas would outweigh a full state. */
    e->next_full = e->nchain == 0 || e->nchain >= CHAIN_MAX;
    if (!e->next_full) {
        size_t dbytes;
        if (collect_changes(e, &dbytes, err))
            goto out;
        e->next_full = e->delta_bytes + dbytes > e->base_bytes;
        if (!e->next_full && encode_delta(e, &e->next, e->chain[e->nchain - 1], &b, err))
            goto out;
    }
    file_path(e, e->next_name, path, sizeof path);
    if ((e->next_full && cf_enrich_encode(e, &e->next, &b, err)) || cf_store_put(e->st, path, b.data, b.len, err)
        || sync_path(e, path, err)) {
        cf_err_wrap(err, "total_orders state");
        goto out;
    }
    e->next_bytes = b.len;
    /* The commit's ops and lsns, with room for the count updates. */
    if (room(e, n + e->ndirty + 1, err))
        goto out;
    for (size_t r = 0; r < n; r++) {
        e->ops[r] = c->ops ? c->ops[r] : 'c';
        e->lsns[r] = c->lsns ? c->lsns[r] : -1;
    }
    if (e->ndirty && !rows) {
        if (!e->own && !(e->own = cf_batch_new(s, err)))
            goto out;
        if (e->own->schema != s && cf_batch_rebind(e->own, s, err))
            goto out;
        cf_batch_reset(e->own);
        rows = e->own;
        e->own_key = kc;
        c->key = &e->own_key;
        c->nkey = 1;
        c->unavail = ua;
    }
    if (rows && append_updates(e, rows, ua, kc, cc, now_us, err))
        goto out;
    c->rows = rows;
    c->ops = e->ops;
    c->lsns = e->lsns;
    /* The buffered events are in the state now: what arrives while this
     * commit is in flight is the next batch's. */
    e->nev = 0;
    rc = 0;
out:
    if (rc) {
        rollback(e);
        e->nev = 0;
        clear_batch(e);
    }
    cf_buf_free(&b);
    return rc;
}

void cf_enrich_done(cf_enrich *e, bool committed)
{
    if (committed) {
        if (e->next_full) {
            /* The chain before this full state is named by no offsets now. */
            for (int i = 0; i < e->nchain; i++) {
                if (strcmp(e->chain[i], e->next_name)) {
                    char path[PATH_MAX_];
                    file_path(e, e->chain[i], path, sizeof path);
                    remove_file(e, path);
                }
            }
            chain_clear(e);
            e->base_bytes = e->next_bytes;
        } else {
            e->delta_bytes += e->next_bytes;
        }
        /* Both only fail for want of memory; then load anew. */
        if (chain_push(e, e->next_name, NULL) || cf_offsets_copy(&e->at, &e->next, NULL))
            e->synced = false;
    } else {
        rollback(e);
    }
    clear_batch(e);
}
