/* i64map.h - an open-addressing hash map from int64 keys to int64 values:
 * the state of stateful transforms (a count per customer, a customer per
 * order), 16 bytes per slot and nothing per key besides.
 *
 * Linear probing with backward-shift deletion (no tombstones, so a map
 * that churns never fills up with dead slots), at most 70% full: between
 * 23 and 46 bytes per live key.  Every key is allowed, INT64_MIN too (it is
 * the empty-slot mark, so it is kept beside the table). */
#ifndef CF_I64MAP_H
#define CF_I64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef struct cf_i64map {
    int64_t *keys;          /* cap slots, INT64_MIN = empty */
    int64_t *vals;
    size_t   cap;           /* 0 or a power of two */
    size_t   n;             /* live keys, the INT64_MIN key included */
    bool     has_min;       /* the key INT64_MIN is present ... */
    int64_t  min_val;       /* ... with this value */
} cf_i64map;

/* A zeroed cf_i64map is an empty map. */
void   cf_i64map_free(cf_i64map *m);          /* NULL-safe; *m is empty and reusable */
void   cf_i64map_clear(cf_i64map *m);         /* drop every key, keep the memory */
/* true and *val (may be NULL) set when key is present. */
bool   cf_i64map_get(const cf_i64map *m, int64_t key, int64_t *val);
/* Insert or replace.  0, or -1 with CF_E_NOMEM (the map is unchanged). */
int    cf_i64map_put(cf_i64map *m, int64_t key, int64_t val, cf_err *err);
/* Room for n keys in all without growing.  Fill a map with the keys of
 * another in its walk order only after this: they come in hash order, and
 * into a smaller table that order piles them into one long probe run. */
int    cf_i64map_reserve(cf_i64map *m, size_t n, cf_err *err);
/* Remove key; whether it was there.  Never fails. */
bool   cf_i64map_del(cf_i64map *m, int64_t key);
/* Walk: start with *it = 0; each call gives the next key and value and
 * returns true, false at the end.  The map must not change during a walk
 * (except by cf_i64map_put of a key that is present). */
bool   cf_i64map_next(const cf_i64map *m, size_t *it, int64_t *key, int64_t *val);
/* Bytes the map holds on the heap. */
size_t cf_i64map_bytes(const cf_i64map *m);

#endif
