/* buf.c - growable byte buffer with a size cap. */
#include "util/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cf_buf_init(cf_buf *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
}

void cf_buf_free(cf_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

int cf_buf_reserve(cf_buf *b, size_t n, cf_err *err)
{
    size_t need, na;
    uint8_t *p;

    if (n > SIZE_MAX - b->len - 1)
        return cf_err_set(err, CF_E_TOOBIG, "buffer size overflow");
    need = b->len + n + 1;                   /* +1 keeps room for cf_buf_cstr */
    if (need <= b->alloc)
        return 0;
    if (b->cap && need > b->cap + 1)
        return cf_err_set(err, CF_E_TOOBIG, "buffer over its cap of %zu bytes", b->cap);
    na = b->alloc ? b->alloc : 256;
    while (na < need)
        na = na > SIZE_MAX / 2 ? need : na * 2;
    if (b->cap && na > b->cap + 1)
        na = b->cap + 1;
    p = realloc(b->data, na);
    if (!p)
        return cf_err_set(err, CF_E_NOMEM, "out of memory growing a buffer to %zu bytes", na);
    b->data = p;
    b->alloc = na;
    return 0;
}

int cf_buf_append(cf_buf *b, const void *p, size_t n, cf_err *err)
{
    if (n == 0)
        return 0;
    if (cf_buf_reserve(b, n, err))
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int cf_buf_putc(cf_buf *b, uint8_t c, cf_err *err)
{
    if (b->len + 1 >= b->alloc && cf_buf_reserve(b, 1, err))
        return -1;
    b->data[b->len++] = c;
    return 0;
}

int cf_buf_printf(cf_buf *b, cf_err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return cf_err_set(err, CF_E_ARG, "bad format string");
    if (cf_buf_reserve(b, (size_t)n, err))
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *cf_buf_cstr(cf_buf *b, cf_err *err)
{
    if (cf_buf_reserve(b, 0, err))
        return NULL;
    b->data[b->len] = '\0';
    return (const char *)b->data;
}

uint8_t *cf_buf_steal(cf_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}
