/* arena.c - bump allocator with block reuse. */
#include "util/arena.h"

#include <stdlib.h>
#include <string.h>

typedef struct block {
    struct block *next;
    size_t size, used;
    max_align_t data[];          /* aligned start of the payload */
} block;

struct cf_arena {
    block *head;                 /* current block */
    block *spare;                /* emptied blocks kept for reuse */
    size_t cap, total, used;
};

cf_arena *cf_arena_new(size_t cap)
{
    cf_arena *a = calloc(1, sizeof *a);
    if (a)
        a->cap = cap;
    return a;
}

static void free_list(block *b)
{
    while (b) {
        block *n = b->next;
        free(b);
        b = n;
    }
}

void cf_arena_free(cf_arena *a)
{
    if (!a)
        return;
    free_list(a->head);
    free_list(a->spare);
    free(a);
}

void cf_arena_reset(cf_arena *a)
{
    block *b = a->head;
    while (b) {
        block *n = b->next;
        b->used = 0;
        b->next = a->spare;
        a->spare = b;
        b = n;
    }
    a->head = NULL;
    a->used = 0;
}

void *cf_arena_alloc(cf_arena *a, size_t n, cf_err *err)
{
    block *b = a->head, **pp;
    size_t want;

    n = (n + 7) & ~(size_t)7;
    if (b && b->size - b->used >= n) {
        void *p = (char *)b->data + b->used;
        b->used += n;
        a->used += n;
        return p;
    }
    /* Reuse a spare block big enough, else allocate a new one. */
    for (pp = &a->spare; *pp; pp = &(*pp)->next)
        if ((*pp)->size >= n)
            break;
    if (*pp) {
        b = *pp;
        *pp = b->next;
    } else {
        want = n > 64 * 1024 ? n : 64 * 1024;
        if (a->cap && a->total + want > a->cap) {
            cf_err_set(err, CF_E_TOOBIG, "arena over its cap of %zu bytes", a->cap);
            return NULL;
        }
        b = malloc(sizeof *b + want);
        if (!b) {
            cf_err_set(err, CF_E_NOMEM, "out of memory (arena block of %zu bytes)", want);
            return NULL;
        }
        b->size = want;
        a->total += want;
    }
    b->used = n;
    b->next = a->head;
    a->head = b;
    a->used += n;
    return b->data;
}

char *cf_arena_strndup(cf_arena *a, const char *p, size_t n, cf_err *err)
{
    char *s = cf_arena_alloc(a, n + 1, err);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

size_t cf_arena_used(const cf_arena *a) { return a->used; }
