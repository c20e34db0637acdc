/* json.h - a small validating pull scanner for JSON (RFC 8259) over a byte
 * span: the decoder's hot path walks objects key by key and reads values in
 * place, without building a tree and without allocating.
 *
 * Every function that fails fills the scanner's error (code CF_E_PARSE with
 * the byte position of the fault, relative to the start of the span) and
 * returns -1.  Strings are validated (escapes, UTF-8, no raw control bytes)
 * when scanned; cf_json_unescape() then cannot fail.  Nesting deeper than
 * CF_JSON_MAX_DEPTH is an error, so no input can exhaust the stack. */
#ifndef CF_JSON_H
#define CF_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "util/err.h"

#define CF_JSON_MAX_DEPTH 64

typedef struct cf_json {
    const uint8_t *beg;     /* start of the span (positions are relative to it) */
    const uint8_t *p;       /* cursor */
    const uint8_t *end;
    int            depth;   /* open containers */
    const char    *what;    /* context for messages: "value", "key" */
    cf_err        *err;
    char           keybuf[256]; /* object keys with escapes are decoded here */
} cf_json;

/* A scanned string: the raw bytes between the quotes. */
typedef struct cf_json_str {
    const char *s;
    size_t      n;
    bool        esc;        /* contains backslash escapes: unescape before use */
} cf_json_str;

/* A scanned number: its text, and whether it is an integer (no '.', 'e'). */
typedef struct cf_json_num {
    const char *s;
    size_t      n;
    bool        is_int;
} cf_json_num;

void cf_json_init(cf_json *j, const void *p, size_t n, const char *what, cf_err *err);

/* Skip whitespace; return the next byte, or -1 at the end of the span. */
static inline int cf_json_peek(cf_json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
    return j->p < j->end ? *j->p : -1;
}

static inline long cf_json_pos(const cf_json *j) { return (long)(j->p - j->beg); }

/* Fill the error at the cursor; always -1. */
int cf_json_fail(cf_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Objects: cf_json_obj_begin() consumes '{'; then call cf_json_obj_next()
 * with a counter that starts at 0: it returns 1 with the key read and the
 * ':' consumed (the cursor is at the value), 0 once '}' is consumed, -1 on
 * error.  A key with escapes of up to 256 bytes comes back decoded (in
 * j->keybuf, valid until the next key); a longer one keeps esc set.  Arrays likewise: cf_json_arr_next() returns 1 at an element. */
int cf_json_obj_begin(cf_json *j);
int cf_json_obj_next(cf_json *j, int *count, cf_json_str *key);
int cf_json_arr_begin(cf_json *j);
/* Fast path for the key a caller expects next (Debezium writes members in
 * a fixed order): if the next member's key is exactly the quoted literal
 * `qkey` (with its quotes; plain ASCII without quote, backslash or control
 * bytes), consume separator, key and ':' and return 1.  Otherwise consume
 * nothing and return 0: the caller falls back to cf_json_obj_next(), which
 * also handles the end of the object and every error. */
int cf_json_obj_next_is(cf_json *j, int *count, const char *qkey, size_t qn);
/* Integer fast path: an integer of at most 18 digits at the cursor is
 * read into *out (returns 1); anything else returns 0 with nothing read. */
int cf_json_small_int(cf_json *j, int64_t *out);
int cf_json_arr_next(cf_json *j, int *count);

/* Read a string / number / literal at the cursor. */
int cf_json_string(cf_json *j, cf_json_str *out);
int cf_json_number(cf_json *j, cf_json_num *out);
/* Consume `null` if it is next: 1 if consumed, 0 if something else is next. */
int cf_json_null(cf_json *j);
/* true/false: 0 with *out set, -1 if the next value is not a boolean. */
int cf_json_bool(cf_json *j, bool *out);
/* Skip one whole value, validating it. */
int cf_json_skip(cf_json *j);

/* Decode a scanned string into dst, which must hold s->n bytes (decoded
 * text is never longer than its escaped form).  Returns the decoded length. */
size_t cf_json_unescape(const cf_json_str *s, char *dst);

/* Exact integer parse of an integer number's text; -1 on overflow. */
int cf_json_num_i64(const cf_json_num *n, int64_t *out);
/* Double value of a number's text (correctly rounded via strtod). */
int cf_json_num_f64(const cf_json_num *n, double *out);

/* true when the raw string equals the C string lit (no escapes). */
static inline bool cf_json_str_eq(const cf_json_str *s, const char *lit, size_t litn)
{
    return !s->esc && s->n == litn && memcmp(s->s, lit, litn) == 0;
}
#define CF_JSON_IS(str, lit) cf_json_str_eq((str), lit, sizeof(lit) - 1)

/* Validate UTF-8; returns the offset of the first bad byte or n if valid. */
size_t cf_json_utf8_check(const uint8_t *p, size_t n);

#endif
