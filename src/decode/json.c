/* json.c - validating pull scanner for JSON over a byte span. */
#include "decode/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cf_json_init(cf_json *j, const void *p, size_t n, const char *what, cf_err *err)
{
    j->beg = j->p = p;
    j->end = j->beg + n;
    j->depth = 0;
    j->what = what ? what : "json";
    j->err = err;
}

int cf_json_fail(cf_json *j, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cf_err_setpos(j->err, CF_E_PARSE, cf_json_pos(j), "%s: %s at byte %ld",
                         j->what, msg, cf_json_pos(j));
}

static int fail_eof_or(cf_json *j, const char *expected)
{
    if (j->p >= j->end)
        return cf_json_fail(j, "unexpected end of input (truncated?), expected %s", expected);
    if (*j->p >= 0x20 && *j->p < 0x7f)
        return cf_json_fail(j, "unexpected '%c', expected %s", *j->p, expected);
    return cf_json_fail(j, "unexpected byte 0x%02x, expected %s", *j->p, expected);
}

/* ---- UTF-8 ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if bad.
 * Rejects overlong forms, surrogates and code points past U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0;                       /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0;                       /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0;                       /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0;                       /* past U+10FFFF */
        return 4;
    }
    return 0;
}

size_t cf_json_utf8_check(const uint8_t *p, size_t n)
{
    size_t i = 0, k;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!(k = utf8_seq(p + i, n - i)))
            return i;
        i += k;
    }
    return n;
}

/* ---- strings ---------------------------------------------------------- */

/* Bytes that end the fast scan inside a string: quote, backslash, control
 * bytes (invalid raw) and non-ASCII (to validate UTF-8). */
static const uint8_t str_stop[256] = {
    [0x00 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};

#define ONES 0x0101010101010101ull
static inline uint64_t has_zero(uint64_t x) { return (x - ONES) & ~x; }

static int hex4(const uint8_t *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

int cf_json_string(cf_json *j, cf_json_str *out)
{
    const uint8_t *p, *end = j->end;
    bool esc = false;

    if (cf_json_peek(j) != '"')
        return fail_eof_or(j, "a string");
    p = ++j->p;
    for (;;) {
        /* Eight bytes at a time while none is a quote, backslash, control
         * byte or non-ASCII (the usual bit tricks; exact for "any such
         * byte in the word", which is all we ask). */
        while (p + 8 <= end) {
            uint64_t x, t;
            memcpy(&x, p, 8);
            t = has_zero(x ^ (ONES * '"')) | has_zero(x ^ (ONES * '\\')) |
                ((x - ONES * 0x20) & ~x) | x;
            if (t & (ONES * 0x80))
                break;
            p += 8;
        }
        while (p < end && !str_stop[*p])
            p++;
        if (p >= end) {
            j->p = p;
            return cf_json_fail(j, "unterminated string (truncated?)");
        }
        if (*p == '"')
            break;
        if (*p == '\\') {
            esc = true;
            if (p + 1 >= end) {
                j->p = p + 1;
                return cf_json_fail(j, "unterminated string (truncated?)");
            }
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u': {
                unsigned u, lo;
                if (p + 6 > end || hex4(p + 2, &u)) {
                    j->p = p;
                    return cf_json_fail(j, "bad \\u escape");
                }
                if (u >= 0xdc00 && u <= 0xdfff) {
                    j->p = p;
                    return cf_json_fail(j, "lone low surrogate \\u%04x", u);
                }
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (p + 12 > end || p[6] != '\\' || p[7] != 'u' || hex4(p + 8, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        j->p = p;
                        return cf_json_fail(j, "high surrogate \\u%04x without its low half", u);
                    }
                    p += 12;
                } else {
                    p += 6;
                }
                break;
            }
            default:
                j->p = p;
                return cf_json_fail(j, "bad escape '\\%c'", p[1] >= 0x20 && p[1] < 0x7f ? p[1] : '?');
            }
            continue;
        }
        if (*p < 0x20) {
            j->p = p;
            return cf_json_fail(j, "raw control byte 0x%02x in a string", *p);
        }
        {
            size_t k = utf8_seq(p, (size_t)(end - p));
            if (!k) {
                j->p = p;
                return cf_json_fail(j, "invalid UTF-8");
            }
            p += k;
        }
    }
    out->s = (const char *)j->p;
    out->n = (size_t)(p - j->p);
    out->esc = esc;
    j->p = p + 1;
    return 0;
}

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t cf_json_unescape(const cf_json_str *s, char *dst)
{
    const uint8_t *p = (const uint8_t *)s->s, *end = p + s->n;
    char *d = dst;

    if (!s->esc) {
        memcpy(dst, s->s, s->n);
        return s->n;
    }
    while (p < end) {
        const uint8_t *q = memchr(p, '\\', (size_t)(end - p));
        size_t run = q ? (size_t)(q - p) : (size_t)(end - p);
        memcpy(d, p, run);
        d += run;
        p += run;
        if (p >= end)
            break;
        switch (p[1]) {            /* validated by cf_json_string */
        case 'b': *d++ = '\b'; p += 2; break;
        case 'f': *d++ = '\f'; p += 2; break;
        case 'n': *d++ = '\n'; p += 2; break;
        case 'r': *d++ = '\r'; p += 2; break;
        case 't': *d++ = '\t'; p += 2; break;
        case 'u': {
            unsigned u = 0, lo = 0;
            hex4(p + 2, &u);
            p += 6;
            if (u >= 0xd800 && u <= 0xdbff) {
                hex4(p + 2, &lo);
                p += 6;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            }
            d += put_utf8(d, u);
            break;
        }
        default: *d++ = (char)p[1]; p += 2; break;
        }
    }
    return (size_t)(d - dst);
}

/* ---- numbers and literals -------------------------------------------- */

static inline bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

int cf_json_number(cf_json *j, cf_json_num *out)
{
    const uint8_t *p, *s, *end = j->end;
    bool is_int = true;

    if (cf_json_peek(j) < 0)
        return fail_eof_or(j, "a number");
    p = s = j->p;
    if (*p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return fail_eof_or(j, "a number");
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p)) {
            j->p = p;
            return cf_json_fail(j, "leading zero in a number");
        }
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && *p == '.') {
        is_int = false;
        p++;
        if (p >= end || !is_digit(*p)) {
            j->p = p;
            return cf_json_fail(j, "digit expected after '.'");
        }
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = false;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p)) {
            j->p = p;
            return cf_json_fail(j, "digit expected in exponent");
        }
        while (p < end && is_digit(*p))
            p++;
    }
    out->s = (const char *)s;
    out->n = (size_t)(p - s);
    out->is_int = is_int;
    j->p = p;
    return 0;
}

int cf_json_num_i64(const cf_json_num *n, int64_t *out)
{
    const char *p = n->s, *end = n->s + n->n;
    bool neg = false;
    uint64_t v = 0, lim;

    if (!n->is_int)
        return -1;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (end - p <= 18) {        /* cannot overflow: no checks per digit */
        for (; p < end; p++)
            v = v * 10 + (unsigned)(*p - '0');
        *out = neg ? (int64_t)(0 - v) : (int64_t)v;
        return 0;
    }
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (lim - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int cf_json_num_f64(const cf_json_num *n, double *out)
{
    char tmp[128];
    char *e;
    int64_t i;

    /* Integers that a double holds exactly skip strtod. */
    if (n->is_int && n->n <= 15 && cf_json_num_i64(n, &i) == 0) {
        *out = (double)i;
        return 0;
    }
    if (n->n >= sizeof tmp)
        return -1;
    memcpy(tmp, n->s, n->n);
    tmp[n->n] = '\0';
    errno = 0;
    *out = strtod(tmp, &e);
    return e == tmp + n->n ? 0 : -1;
}

static int literal(cf_json *j, const char *lit, size_t n)
{
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return fail_eof_or(j, "a value");
    j->p += n;
    return 0;
}

int cf_json_null(cf_json *j)
{
    if (cf_json_peek(j) != 'n')
        return 0;
    return literal(j, "null", 4) ? -1 : 1;
}

int cf_json_bool(cf_json *j, bool *out)
{
    int c = cf_json_peek(j);
    if (c == 't') {
        *out = true;
        return literal(j, "true", 4);
    }
    if (c == 'f') {
        *out = false;
        return literal(j, "false", 5);
    }
    return fail_eof_or(j, "true or false");
}

/* ---- containers ------------------------------------------------------- */

static int open_container(cf_json *j, char c, const char *name)
{
    if (cf_json_peek(j) != c)
        return fail_eof_or(j, name);
    if (j->depth >= CF_JSON_MAX_DEPTH)
        return cf_json_fail(j, "nesting deeper than %d", CF_JSON_MAX_DEPTH);
    j->depth++;
    j->p++;
    return 0;
}

int cf_json_obj_begin(cf_json *j) { return open_container(j, '{', "an object"); }
int cf_json_arr_begin(cf_json *j) { return open_container(j, '[', "an array"); }

int cf_json_obj_next(cf_json *j, int *count, cf_json_str *key)
{
    int c = cf_json_peek(j);

    if (c == '}') {
        j->p++;
        j->depth--;
        return 0;
    }
    if (*count > 0) {
        if (c != ',')
            return fail_eof_or(j, "',' or '}'");
        j->p++;
    }
    if (cf_json_string(j, key))
        return -1;
    if (key->esc && key->n <= sizeof j->keybuf) {
        key->n = cf_json_unescape(key, j->keybuf);
        key->s = j->keybuf;
        key->esc = false;
    }
    if (cf_json_peek(j) != ':')
        return fail_eof_or(j, "':'");
    j->p++;
    (*count)++;
    return 1;
}

static inline const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* memcmp(a, b, n) == 0 for the short keys of events, without a call:
 * two overlapping word loads cover 8..16 bytes. */
static inline bool eq_short(const void *a, const void *b, size_t n)
{
    uint64_t x1, x2, y1, y2;
    uint32_t u1, u2, v1, v2;

    if (n >= 8 && n <= 16) {
        memcpy(&x1, a, 8);
        memcpy(&y1, b, 8);
        memcpy(&x2, (const char *)a + n - 8, 8);
        memcpy(&y2, (const char *)b + n - 8, 8);
        return ((x1 ^ y1) | (x2 ^ y2)) == 0;
    }
    if (n >= 4 && n < 8) {
        memcpy(&u1, a, 4);
        memcpy(&v1, b, 4);
        memcpy(&u2, (const char *)a + n - 4, 4);
        memcpy(&v2, (const char *)b + n - 4, 4);
        return ((u1 ^ v1) | (u2 ^ v2)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

int cf_json_obj_next_is(cf_json *j, int *count, const char *qkey, size_t qn)
{
    const uint8_t *p = skip_ws(j->p, j->end), *end = j->end;

    if (*count > 0) {
        if (p >= end || *p != ',')
            return 0;
        p = skip_ws(p + 1, end);
    }
    if ((size_t)(end - p) < qn + 1 || !eq_short(p, qkey, qn))
        return 0;
    p += qn;
    if (*p != ':') {
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return 0;
    }
    j->p = p + 1;
    (*count)++;
    return 1;
}

/* All 8 bytes of x are ASCII digits: each high nibble is 3, and stays 3
 * after adding 6 (which pushes ':'..'?' to 0x4_). */
static inline bool eight_digits(uint64_t x)
{
    return ((x & 0xF0F0F0F0F0F0F0F0ull) |
            (((x + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) == 0x3333333333333333ull;
}

/* Value of 8 ASCII digits (first digit in the lowest byte): pairs, then
 * quads, then the whole, each step one multiply. */
static inline uint64_t eight_digits_value(uint64_t x)
{
    x -= 0x3030303030303030ull;
    x = x * 10 + (x >> 8);                                  /* 2-digit values in bytes 0,2,4,6 */
    return (((x & 0x000000FF000000FFull) * (100 + (1000000ull << 32))) +
            (((x >> 16) & 0x000000FF000000FFull) * (1 + (10000ull << 32)))) >> 32;
}

int cf_json_small_int(cf_json *j, int64_t *out)
{
    const uint8_t *p = j->p, *end = j->end, *d;
    bool neg = false;
    int64_t v = 0;
    uint64_t x;

    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    d = p;
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
        return 0;
    /* Timestamps have 13-16 digits: take them 8 at a time. */
    if (end - p >= 8 && (memcpy(&x, p, 8), eight_digits(x))) {
        v = (int64_t)eight_digits_value(x);
        p += 8;
        if (end - p >= 8 && (memcpy(&x, p, 8), eight_digits(x))) {
            v = v * 100000000 + (int64_t)eight_digits_value(x);
            p += 8;
        }
    }
    while (p < end && *p >= '0' && *p <= '9' && p - d < 18)   /* 18 digits never overflow */
        v = v * 10 + (*p++ - '0');
    if (p >= end || *p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9'))
        return 0;       /* longer, fractional, or at the end of input: the slow path judges */
    *out = neg ? -v : v;
    j->p = p;
    return 1;
}

int cf_json_arr_next(cf_json *j, int *count)
{
    int c = cf_json_peek(j);

    if (c == ']') {
        j->p++;
        j->depth--;
        return 0;
    }
    if (*count > 0) {
        if (c != ',')
            return fail_eof_or(j, "',' or ']'");
        j->p++;
    }
    (*count)++;
    return 1;
}

int cf_json_skip(cf_json *j)
{
    cf_json_str s;
    cf_json_num n;
    bool b;
    int k = 0, r;

    switch (cf_json_peek(j)) {
    case '{':
        if (cf_json_obj_begin(j))
            return -1;
        while ((r = cf_json_obj_next(j, &k, &s)) == 1)
            if (cf_json_skip(j))
                return -1;
        return r;
    case '[':
        if (cf_json_arr_begin(j))
            return -1;
        while ((r = cf_json_arr_next(j, &k)) == 1)
            if (cf_json_skip(j))
                return -1;
        return r;
    case '"':
        return cf_json_string(j, &s);
    case 'n':
        return cf_json_null(j) == 1 ? 0 : -1;
    case 't':
    case 'f':
        return cf_json_bool(j, &b);
    default:
        return cf_json_number(j, &n);
    }
}
