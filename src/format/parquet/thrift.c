/* thrift.c - the Thrift compact protocol, as much as Parquet metadata needs:
 * a writer into a cf_buf and a bounds-checked reader with generic skip. */
#include "format/parquet/parquet_int.h"

#include <string.h>

/* ---- writer ---------------------------------------------------------- */

void cf_tw_init(cf_tw *w, cf_buf *out)
{
    memset(w, 0, sizeof *w);
    w->out = out;
}

static void put(cf_tw *w, const void *p, size_t n)
{
    if (n && !w->failed && cf_buf_append(w->out, p, n, NULL))
        w->failed = 1;
}

void cf_tw_raw_varint(cf_tw *w, uint64_t v)
{
    uint8_t b[10];
    int n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    put(w, b, (size_t)n);
}

void cf_tw_raw_zigzag(cf_tw *w, int64_t v)
{
    cf_tw_raw_varint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void cf_tw_raw_bin(cf_tw *w, const void *p, size_t n)
{
    cf_tw_raw_varint(w, n);
    put(w, p, n);
}

void cf_tw_field(cf_tw *w, int16_t id, int type)
{
    int16_t delta = (int16_t)(id - w->last[w->depth]);
    if (delta > 0 && delta <= 15) {
        uint8_t b = (uint8_t)((delta << 4) | type);
        put(w, &b, 1);
    } else {
        uint8_t b = (uint8_t)type;
        put(w, &b, 1);
        cf_tw_raw_zigzag(w, id);
    }
    w->last[w->depth] = id;
}

void cf_tw_i32(cf_tw *w, int16_t id, int32_t v) { cf_tw_field(w, id, TC_I32); cf_tw_raw_zigzag(w, v); }
void cf_tw_i64(cf_tw *w, int16_t id, int64_t v) { cf_tw_field(w, id, TC_I64); cf_tw_raw_zigzag(w, v); }
void cf_tw_bool(cf_tw *w, int16_t id, bool v) { cf_tw_field(w, id, v ? TC_TRUE : TC_FALSE); }

void cf_tw_i8(cf_tw *w, int16_t id, int8_t v)
{
    uint8_t b = (uint8_t)v;
    cf_tw_field(w, id, TC_BYTE);
    put(w, &b, 1);
}

void cf_tw_bin(cf_tw *w, int16_t id, const void *p, size_t n)
{
    cf_tw_field(w, id, TC_BINARY);
    cf_tw_raw_bin(w, p, n);
}

void cf_tw_str(cf_tw *w, int16_t id, const char *s) { cf_tw_bin(w, id, s, strlen(s)); }

void cf_tw_begin(cf_tw *w, int16_t id)
{
    if (id > 0)
        cf_tw_field(w, id, TC_STRUCT);
    if (w->depth + 1 >= CF_TW_DEPTH) {
        w->failed = 1;
        return;
    }
    w->last[++w->depth] = 0;
}

void cf_tw_end(cf_tw *w)
{
    uint8_t b = TC_STOP;
    put(w, &b, 1);
    if (w->depth > 0)
        w->depth--;
}

void cf_tw_list(cf_tw *w, int16_t id, int elem_type, size_t n)
{
    cf_tw_field(w, id, TC_LIST);
    if (n < 15) {
        uint8_t b = (uint8_t)((n << 4) | (size_t)elem_type);
        put(w, &b, 1);
    } else {
        uint8_t b = (uint8_t)(0xF0 | elem_type);
        put(w, &b, 1);
        cf_tw_raw_varint(w, n);
    }
}

/* ---- reader ---------------------------------------------------------- */

void cf_tr_init(cf_tr *r, const void *p, size_t n)
{
    memset(r, 0, sizeof *r);
    r->p = r->start = p;
    r->end = r->p + n;
}

void cf_tr_fail(cf_tr *r, const char *why)
{
    if (!r->bad) {
        r->bad = true;
        r->why = why;
    }
    r->p = r->end;
}

static uint8_t get_byte(cf_tr *r)
{
    if (r->p >= r->end) {
        cf_tr_fail(r, "truncated thrift data");
        return 0;
    }
    return *r->p++;
}

static uint64_t get_varint(cf_tr *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        uint8_t b = get_byte(r);
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    cf_tr_fail(r, "thrift varint too long");
    return 0;
}

static int64_t get_zigzag(cf_tr *r)
{
    uint64_t v = get_varint(r);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

bool cf_tr_field(cf_tr *r, int16_t *id, int *type)
{
    uint8_t b;
    int16_t delta;

    if (r->bad)
        return false;
    b = get_byte(r);
    if (r->bad || b == TC_STOP)
        return false;
    *type = b & 0x0f;
    delta = (int16_t)(b >> 4);
    if (delta)
        *id = (int16_t)(r->last[r->depth] + delta);
    else
        *id = (int16_t)get_zigzag(r);
    r->last[r->depth] = *id;
    return !r->bad;
}

void cf_tr_struct_begin(cf_tr *r)
{
    if (r->depth >= CF_TW_DEPTH) {
        cf_tr_fail(r, "thrift structs nested too deep");
        return;
    }
    r->last[++r->depth] = 0;
}

void cf_tr_struct_end(cf_tr *r)
{
    if (r->depth > 0)
        r->depth--;
}

int64_t cf_tr_int(cf_tr *r, int type)
{
    switch (type) {
    case TC_BYTE:
        return (int8_t)get_byte(r);
    case TC_I16:
    case TC_I32:
    case TC_I64:
        return get_zigzag(r);
    default:
        cf_tr_fail(r, "thrift field has an unexpected type");
        return 0;
    }
}

bool cf_tr_bool(cf_tr *r, int type)
{
    if (type == TC_TRUE)
        return true;
    if (type != TC_FALSE)
        cf_tr_fail(r, "thrift field is not a bool");
    return false;
}

const uint8_t *cf_tr_bin(cf_tr *r, size_t *n)
{
    uint64_t len = get_varint(r);
    const uint8_t *p = r->p;

    if (r->bad || len > (uint64_t)(r->end - r->p)) {
        cf_tr_fail(r, "thrift binary runs past the end");
        *n = 0;
        return NULL;
    }
    r->p += len;
    *n = (size_t)len;
    return p;
}

size_t cf_tr_list(cf_tr *r, int *elem_type)
{
    uint8_t b = get_byte(r);
    uint64_t n = b >> 4;

    *elem_type = b & 0x0f;
    if (n == 15)
        n = get_varint(r);
    /* Each element takes at least one byte except bools packed... which
     * also take one byte in lists, so this bounds allocations. */
    if (n > (uint64_t)(r->end - r->p)) {
        cf_tr_fail(r, "thrift list longer than its data");
        return 0;
    }
    return (size_t)n;
}

void cf_tr_skip(cf_tr *r, int type)
{
    size_t n;
    int et;

    switch (type) {
    case TC_TRUE:
    case TC_FALSE:
        break;
    case TC_BYTE:
        get_byte(r);
        break;
    case TC_I16:
    case TC_I32:
    case TC_I64:
        get_varint(r);
        break;
    case TC_DOUBLE:
        if (r->end - r->p < 8)
            cf_tr_fail(r, "truncated thrift double");
        else
            r->p += 8;
        break;
    case TC_BINARY:
        cf_tr_bin(r, &n);
        break;
    case TC_LIST:
    case TC_SET:
        n = cf_tr_list(r, &et);
        if (r->depth >= CF_TW_DEPTH) {
            cf_tr_fail(r, "thrift nested too deep");
            break;
        }
        r->depth++;   /* depth guard for recursion only */
        r->last[r->depth] = 0;
        for (size_t i = 0; i < n && !r->bad; i++) {
            if (et == TC_TRUE || et == TC_FALSE)
                get_byte(r);
            else
                cf_tr_skip(r, et);
        }
        r->depth--;
        break;
    case TC_MAP: {
        uint64_t m = get_varint(r);
        uint8_t kv;
        if (m == 0)
            break;
        kv = get_byte(r);
        if (m > (uint64_t)(r->end - r->p)) {
            cf_tr_fail(r, "thrift map longer than its data");
            break;
        }
        if (r->depth >= CF_TW_DEPTH) {
            cf_tr_fail(r, "thrift nested too deep");
            break;
        }
        r->depth++;
        r->last[r->depth] = 0;
        for (uint64_t i = 0; i < m && !r->bad; i++) {
            cf_tr_skip(r, kv >> 4);
            cf_tr_skip(r, kv & 0x0f);
        }
        r->depth--;
        break;
    }
    case TC_STRUCT: {
        int16_t id;
        int t;
        cf_tr_struct_begin(r);
        while (cf_tr_field(r, &id, &t))
            cf_tr_skip(r, t);
        cf_tr_struct_end(r);
        break;
    }
    default:
        cf_tr_fail(r, "unknown thrift type");
    }
}
