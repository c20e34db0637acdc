/* i64map.c - open-addressing int64 -> int64 hash map; see i64map.h. */
#include "state/i64map.h"

#include <stdlib.h>

#define EMPTY    INT64_MIN
#define MIN_CAP  16

/* splitmix64's finalizer: keys are often dense (serial ids), so they need
 * a real mix before the mask. */
static size_t slot_of(int64_t key, size_t cap)
{
    uint64_t x = (uint64_t)key;

    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x & (cap - 1);
}

void cf_i64map_free(cf_i64map *m)
{
    if (!m)
        return;
    free(m->keys);
    free(m->vals);
    *m = (cf_i64map){ 0 };
}

void cf_i64map_clear(cf_i64map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        m->keys[i] = EMPTY;
    m->n = 0;
    m->has_min = false;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find(const cf_i64map *m, int64_t key)
{
    size_t i = slot_of(key, m->cap);

    while (m->keys[i] != EMPTY && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

bool cf_i64map_get(const cf_i64map *m, int64_t key, int64_t *val)
{
    size_t i;

    if (key == EMPTY) {
        if (m->has_min && val)
            *val = m->min_val;
        return m->has_min;
    }
    if (!m->cap)
        return false;
    i = find(m, key);
    if (m->keys[i] == EMPTY)
        return false;
    if (val)
        *val = m->vals[i];
    return true;
}

static int rehash(cf_i64map *m, size_t ncap, cf_err *err)
{
    int64_t *nk = malloc(ncap * sizeof *nk), *nv = malloc(ncap * sizeof *nv);
    cf_i64map old = *m;

    if (!nk || !nv || ncap < m->cap) {
        free(nk);
        free(nv);
        return cf_err_set(err, CF_E_NOMEM, "out of memory (state map of %zu keys)", m->n);
    }
    for (size_t i = 0; i < ncap; i++)
        nk[i] = EMPTY;
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i] != EMPTY) {
            size_t j = find(m, old.keys[i]);
            m->keys[j] = old.keys[i];
            m->vals[j] = old.vals[i];
        }
    }
    free(old.keys);
    free(old.vals);
    return 0;
}

static int grow(cf_i64map *m, cf_err *err)
{
    return rehash(m, m->cap ? m->cap * 2 : MIN_CAP, err);
}

int cf_i64map_reserve(cf_i64map *m, size_t n, cf_err *err)
{
    size_t cap = m->cap ? m->cap : MIN_CAP;

    while (n * 10 > cap * 7) {
        if (cap > SIZE_MAX / 4)
            return cf_err_set(err, CF_E_NOMEM, "state map of %zu keys", n);
        cap *= 2;
    }
    return cap == m->cap ? 0 : rehash(m, cap, err);
}

int cf_i64map_put(cf_i64map *m, int64_t key, int64_t val, cf_err *err)
{
    size_t i;

    if (key == EMPTY) {
        m->n += !m->has_min;
        m->has_min = true;
        m->min_val = val;
        return 0;
    }
    /* Grow before the insert that would pass 70%: the map stays as it was on failure. */
    if ((m->n + 1) * 10 > m->cap * 7 && grow(m, err))
        return -1;
    i = find(m, key);
    if (m->keys[i] == EMPTY) {
        m->keys[i] = key;
        m->n++;
    }
    m->vals[i] = val;
    return 0;
}

bool cf_i64map_del(cf_i64map *m, int64_t key)
{
    size_t i, j, mask = m->cap - 1;

    if (key == EMPTY) {
        bool had = m->has_min;
        m->n -= had;
        m->has_min = false;
        return had;
    }
    if (!m->cap || m->keys[i = find(m, key)] == EMPTY)
        return false;
    /* Backward shift: pull later members of the probe run into the hole
     * when their home slot does not lie (cyclically) after the hole. */
    for (j = (i + 1) & mask; m->keys[j] != EMPTY; j = (j + 1) & mask) {
        size_t home = slot_of(m->keys[j], m->cap);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->keys[i] = EMPTY;
    m->n--;
    return true;
}

bool cf_i64map_next(const cf_i64map *m, size_t *it, int64_t *key, int64_t *val)
{
    /* *it: 0 = the INT64_MIN key, then slot (*it - 1). */
    if (*it == 0) {
        *it = 1;
        if (m->has_min) {
            *key = EMPTY;
            *val = m->min_val;
            return true;
        }
    }
    for (size_t i = *it - 1; i < m->cap; i++) {
        if (m->keys[i] != EMPTY) {
            *it = i + 2;
            *key = m->keys[i];
            *val = m->vals[i];
            return true;
        }
    }
    *it = m->cap + 1;
    return false;
}

size_t cf_i64map_bytes(const cf_i64map *m)
{
    return m->cap * 2 * sizeof(int64_t);
}
