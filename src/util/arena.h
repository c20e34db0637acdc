/* arena.h - bump allocator for per-batch memory: many small allocations,
 * one reset.  Blocks are kept across resets so a steady stream allocates
 * nothing once warm.  A cap bounds the total. */
#ifndef CF_ARENA_H
#define CF_ARENA_H

#include <stddef.h>
#include "util/err.h"

typedef struct cf_arena cf_arena;

/* cap = 0: unbounded.  Returns NULL on out of memory. */
cf_arena *cf_arena_new(size_t cap);
/* NULL-safe. */
void      cf_arena_free(cf_arena *a);
/* Forget every allocation; memory is kept for reuse. */
void      cf_arena_reset(cf_arena *a);
/* 8-byte aligned; NULL with *err set past the cap or on out of memory.
 * The memory lives until the next reset or free. */
void     *cf_arena_alloc(cf_arena *a, size_t n, cf_err *err);
/* Copy of [p, p+n) with a terminating NUL. */
char     *cf_arena_strndup(cf_arena *a, const char *p, size_t n, cf_err *err);
size_t    cf_arena_used(const cf_arena *a);

#endif
