/* kmap.c - the byte-key hash map behind the Iceberg primary-key index. */
#include "table/iceberg/iceberg_int.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    uint64_t h;          /* 0 = empty */
    uint64_t koff;
    uint32_t klen;
    int32_t  a;
    int64_t  b;
} slot;

struct cf_ice_kmap {
    slot   *s;
    size_t  cap;         /* power of two */
    size_t  used;        /* occupied slots, removed included */
    size_t  live;
    cf_buf  keys;
};

/* FNV-1a then a final mix; never 0 so 0 can mark empty slots. */
static uint64_t hash_bytes(const void *p, size_t n)
{
    const uint8_t *q = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= q[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

cf_ice_kmap *cf_ice_kmap_new(size_t max_key_bytes)
{
    cf_ice_kmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 1024;
    if (!(m->s = calloc(m->cap, sizeof *m->s))) {
        free(m);
        return NULL;
    }
    cf_buf_init(&m->keys, max_key_bytes);
    return m;
}

void cf_ice_kmap_free(cf_ice_kmap *m)
{
    if (!m)
        return;
    free(m->s);
    cf_buf_free(&m->keys);
    free(m);
}

static slot *find(const cf_ice_kmap *m, uint64_t h, const void *k, size_t n)
{
    size_t i = h & (m->cap - 1);
    for (;;) {
        slot *s = &m->s[i];
        if (s->h == 0)
            return s;
        if (s->h == h && s->klen == n && (n == 0 || !memcmp(m->keys.data + s->koff, k, n)))
            return s;
        i = (i + 1) & (m->cap - 1);
    }
}

static int grow(cf_ice_kmap *m, cf_err *err)
{
    size_t ncap = m->cap * 2;
    slot *ns = calloc(ncap, sizeof *ns), *old = m->s;
    size_t ocap = m->cap;

    if (!ns)
        return cf_err_set(err, CF_E_NOMEM, "out of memory growing the key index");
    m->s = ns;
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].h) {
            size_t j = old[i].h & (ncap - 1);
            while (ns[j].h)
                j = (j + 1) & (ncap - 1);
            ns[j] = old[i];
        }
    }
    free(old);
    return 0;
}

int cf_ice_kmap_put(cf_ice_kmap *m, const void *k, size_t n, int32_t a, int64_t b, cf_err *err)
{
    uint64_t h = hash_bytes(k, n);
    slot *s;

    if ((m->used + 1) * 10 > m->cap * 7 && grow(m, err))
        return -1;
    s = find(m, h, k, n);
    if (s->h == 0) {
        if (n > UINT32_MAX)
            return cf_err_set(err, CF_E_TOOBIG, "key of %zu bytes", n);
        s->koff = m->keys.len;
        if (cf_buf_append(&m->keys, k, n, err))
            return -1;
        s->h = h;
        s->klen = (uint32_t)n;
        s->a = -1;
        m->used++;
    }
    if (s->a < 0)
        m->live++;
    s->a = a;
    s->b = b;
    return 0;
}

bool cf_ice_kmap_get(const cf_ice_kmap *m, const void *k, size_t n, int32_t *a, int64_t *b)
{
    slot *s = find(m, hash_bytes(k, n), k, n);
    if (s->h == 0 || s->a < 0)
        return false;
    *a = s->a;
    *b = s->b;
    return true;
}

void cf_ice_kmap_del(cf_ice_kmap *m, const void *k, size_t n)
{
    slot *s = find(m, hash_bytes(k, n), k, n);
    if (s->h && s->a >= 0) {
        s->a = -1;
        m->live--;
    }
}

size_t cf_ice_kmap_live(const cf_ice_kmap *m) { return m->live; }

int cf_ice_key_of(const cf_batch *b, const int *cols, int n, size_t row, cf_buf *out, cf_err *err)
{
    for (int j = 0; j < n; j++) {
        const cf_column *c = &b->cols[cols[j]];
        uint8_t tag, v[8];
        int64_t x;
        if (!cf_col_valid(c, row)) {
            if (cf_buf_putc(out, 0, err))
                return -1;
            continue;
        }
        if (cf_type_is_varlen(c->type)) {
            size_t len;
            const uint8_t *p = cf_col_bytes(c, row, &len);
            uint8_t l4[4] = { (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24) };
            tag = 2;
            if (cf_buf_putc(out, tag, err) || cf_buf_append(out, l4, 4, err) ||
                cf_buf_append(out, p, len, err))
                return -1;
            continue;
        }
        switch (c->type.id) {
        case CF_T_BOOL: x = cf_col_bool(c, row); break;
        case CF_T_INT32:
        case CF_T_DATE: x = cf_col_i32(c, row); break;
        case CF_T_FLOAT: {
            double d = cf_col_f32(c, row);
            memcpy(&x, &d, 8);
            break;
        }
        case CF_T_DOUBLE: {
            double d = cf_col_f64(c, row);
            memcpy(&x, &d, 8);
            break;
        }
        default: x = cf_col_i64(c, row); break;
        }
        for (int i = 0; i < 8; i++)
            v[i] = (uint8_t)((uint64_t)x >> (8 * i));
        tag = 1;
        if (cf_buf_putc(out, tag, err) || cf_buf_append(out, v, 8, err))
            return -1;
    }
    return 0;
}
