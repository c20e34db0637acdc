/* pkindex.c - byte-keyed open-addressing hash map: the primary-key index
 * (encoded key -> file slot) of upsert tables and the path index of a
 * snapshot. */
#include "table/delta/delta_int.h"

#include <stdlib.h>
#include <string.h>

#define INLINE_KEY 16   /* keys this short live in the slot: no malloc, no pointer chase */

typedef struct slot {
    uint64_t hash;     /* 0 = empty, 1 = deleted */
    int64_t  val;
    uint32_t n;
    union {
        uint8_t *p;    /* n > INLINE_KEY: owned bytes */
        uint8_t  b[INLINE_KEY];
    } k;
} slot;

static inline const uint8_t *key_of(const slot *e) { return e->n > INLINE_KEY ? e->k.p : e->k.b; }

struct cf_delta_map {
    slot  *s;
    size_t cap;        /* power of two */
    size_t count;
    size_t used;       /* live + deleted slots */
};

static uint64_t hash_bytes(const void *k, size_t n)
{
    const uint8_t *p = k;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 29;
    return h < 2 ? h + 2 : h;   /* 0 and 1 mark empty/deleted */
}

cf_delta_map *cf_delta_map_new(void)
{
    cf_delta_map *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cap = 64;
    if (!(m->s = calloc(m->cap, sizeof *m->s))) {
        free(m);
        return NULL;
    }
    return m;
}

void cf_delta_map_free(cf_delta_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->s[i].hash > 1 && m->s[i].n > INLINE_KEY)
            free(m->s[i].k.p);
    free(m->s);
    free(m);
}

static slot *find(const cf_delta_map *m, uint64_t h, const void *k, size_t n)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *e = &m->s[i];
        if (e->hash == 0)
            return NULL;
        if (e->hash == h && e->n == n && memcmp(key_of(e), k, n) == 0)
            return e;
    }
}

static int grow(cf_delta_map *m)
{
    size_t ncap = m->count * 4 > m->cap ? m->cap * 2 : m->cap;  /* else just purge tombstones */
    slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < m->cap; i++) {
        slot *e = &m->s[i];
        if (e->hash < 2)
            continue;
        size_t j = e->hash & (ncap - 1);
        while (ns[j].hash)
            j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    free(m->s);
    m->s = ns;
    m->cap = ncap;
    m->used = m->count;
    return 0;
}

int cf_delta_map_put(cf_delta_map *m, const void *k, size_t n, int64_t v)
{
    uint64_t h = hash_bytes(k, n);
    slot *e = find(m, h, k, n);
    size_t mask, i;

    if (e) {
        e->val = v;
        return 0;
    }
    if ((m->used + 1) * 4 > m->cap * 3 && grow(m))
        return -1;
    mask = m->cap - 1;
    for (i = h & mask; m->s[i].hash > 1; i = (i + 1) & mask)
        ;
    if (n > UINT32_MAX)
        return -1;
    slot ne = { .hash = h, .val = v, .n = (uint32_t)n };
    if (n > INLINE_KEY) {
        if (!(ne.k.p = malloc(n)))
            return -1;
        memcpy(ne.k.p, k, n);
    } else {
        memcpy(ne.k.b, k, n);
    }
    if (m->s[i].hash == 0)
        m->used++;
    m->s[i] = ne;
    m->count++;
    return 0;
}

int cf_delta_map_get(const cf_delta_map *m, const void *k, size_t n, int64_t *v)
{
    slot *e = find(m, hash_bytes(k, n), k, n);
    if (!e)
        return 0;
    if (v)
        *v = e->val;
    return 1;
}

int cf_delta_map_del(cf_delta_map *m, const void *k, size_t n)
{
    slot *e = find(m, hash_bytes(k, n), k, n);
    if (!e)
        return 0;
    if (e->n > INLINE_KEY)
        free(e->k.p);
    e->n = 0;
    e->hash = 1;
    m->count--;
    return 1;
}

size_t cf_delta_map_count(const cf_delta_map *m) { return m->count; }
