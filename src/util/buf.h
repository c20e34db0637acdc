/* buf.h - growable byte buffer with a size cap (after curl's dynbuf).
 *
 * A cf_buf owns its bytes.  Every append either succeeds or leaves the
 * buffer as it was and returns -1 (CF_E_TOOBIG past the cap, CF_E_NOMEM when
 * malloc fails).  A zeroed cf_buf with cap 0 is valid and unbounded. */
#ifndef CF_BUF_H
#define CF_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef struct cf_buf {
    uint8_t *data;
    size_t   len;
    size_t   alloc;
    size_t   cap;       /* 0 = no cap */
} cf_buf;

void cf_buf_init(cf_buf *b, size_t cap);
/* Frees the bytes; the buffer is empty and reusable afterwards. NULL-safe. */
void cf_buf_free(cf_buf *b);
/* Keeps the allocation, forgets the contents. */
static inline void cf_buf_reset(cf_buf *b) { b->len = 0; }
/* Make room for `n` more bytes. */
int  cf_buf_reserve(cf_buf *b, size_t n, cf_err *err);
int  cf_buf_append(cf_buf *b, const void *p, size_t n, cf_err *err);
int  cf_buf_putc(cf_buf *b, uint8_t c, cf_err *err);
int  cf_buf_printf(cf_buf *b, cf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends a NUL that is not counted in len; returns data as a C string. */
const char *cf_buf_cstr(cf_buf *b, cf_err *err);
/* Hands the bytes to the caller (free() them); the buffer is left empty. */
uint8_t *cf_buf_steal(cf_buf *b, size_t *len);

#endif
