/* transforms.c - Iceberg partition transforms (identity, year, month, day,
 * hour, bucket with murmur3_x86_32, truncate) and the single-value binary
 * serialization of bounds. */
#include "table/iceberg/iceberg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

uint32_t cf_ice_murmur3(const void *data, size_t len)
{
    const uint8_t *p = data;
    const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t h = 0, k;
    size_t nblocks = len / 4;

    for (size_t i = 0; i < nblocks; i++) {
        k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
            (uint32_t)p[4 * i + 3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    k = 0;
    switch (len & 3) {
    case 3: k ^= (uint32_t)p[nblocks * 4 + 2] << 16; /* fall through */
    case 2: k ^= (uint32_t)p[nblocks * 4 + 1] << 8;  /* fall through */
    case 1:
        k ^= p[nblocks * 4];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

static uint32_t hash_long(int64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    return cf_ice_murmur3(b, 8);
}

/* The spec hashes ints, dates, times and timestamps as 8-byte longs so that
 * promoting int to long keeps every bucket. */
int32_t cf_ice_bucket_value(const cf_column *c, size_t i, int n)
{
    uint32_t h;
    switch (c->type.id) {
    case CF_T_INT32:
    case CF_T_DATE:
        h = hash_long(cf_col_i32(c, i));
        break;
    case CF_T_INT64:
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
    case CF_T_TIME:
        h = hash_long(cf_col_i64(c, i));
        break;
    default: {
        size_t len;
        const uint8_t *p = cf_col_bytes(c, i, &len);
        h = cf_ice_murmur3(p, len);
    }
    }
    return (int32_t)((h & 0x7fffffffu) % (uint32_t)n);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d);

/* Days since 1970-01-01 of a date or timestamp value. */
static int64_t days_of(const cf_column *c, size_t row)
{
    return c->type.id == CF_T_DATE ? cf_col_i32(c, row) : floor_div(cf_col_i64(c, row), 86400000000LL);
}

/* Length of the first w code points of UTF-8 text (the spec truncates
 * strings by code points, not bytes). */
static size_t utf8_codepoints(const uint8_t *p, size_t n, int w)
{
    size_t i = 0;
    while (i < n && w > 0) {
        i++;
        while (i < n && (p[i] & 0xc0) == 0x80)
            i++;
        w--;
    }
    return i;
}

void cf_ice_pvals_clear(cf_ice_pval *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].s);
        memset(&v[i], 0, sizeof v[i]);
    }
}

char *cf_ice_pval_dup(const cf_ice_pval *v)
{
    char *p = malloc(v->n + 1);
    if (p) {
        memcpy(p, v->s, v->n);
        p[v->n] = 0;
    }
    return p;
}

bool cf_ice_pvals_equal(const cf_ice_pval *a, const cf_ice_pval *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (a[i].null != b[i].null)
            return false;
        if (a[i].null)
            continue;
        if (a[i].i != b[i].i || a[i].n != b[i].n || (a[i].s == NULL) != (b[i].s == NULL))
            return false;
        if (a[i].s && memcmp(a[i].s, b[i].s, a[i].n))
            return false;
    }
    return true;
}

int cf_ice_partition_of(const cf_ice_spec *sp, const cf_batch *b, const int *src_col,
                        size_t row, cf_ice_pval *vals, cf_err *err)
{
    for (int k = 0; k < sp->nfields; k++) {
        const cf_ice_pfield *f = &sp->f[k];
        const cf_column *c;
        cf_ice_pval *v = &vals[k];

        memset(v, 0, sizeof *v);
        if (src_col[k] < 0) {            /* column absent from this batch */
            v->null = true;
            continue;
        }
        c = &b->cols[src_col[k]];
        if (!cf_col_valid(c, row)) {
            v->null = true;
            continue;
        }
        switch (f->xf) {
        case CF_ICE_BUCKET:
            v->i = cf_ice_bucket_value(c, row, f->n);
            break;
        case CF_ICE_DAY:
            v->i = days_of(c, row);
            break;
        case CF_ICE_YEAR:
        case CF_ICE_MONTH: {
            int y, m, d;
            civil_from_days(days_of(c, row), &y, &m, &d);
            v->i = f->xf == CF_ICE_YEAR ? y - 1970 : (int64_t)(y - 1970) * 12 + (m - 1);
            break;
        }
        case CF_ICE_HOUR:
            v->i = floor_div(cf_col_i64(c, row), 3600000000LL);
            break;
        case CF_ICE_TRUNCATE:
            if (c->type.id == CF_T_INT32 || c->type.id == CF_T_INT64) {
                int64_t x = c->type.id == CF_T_INT32 ? cf_col_i32(c, row) : cf_col_i64(c, row);
                v->i = x - (((x % f->n) + f->n) % f->n);
            } else {
                size_t len;
                const uint8_t *p = cf_col_bytes(c, row, &len);
                if (c->type.id == CF_T_STRING)
                    len = utf8_codepoints(p, len, f->n);
                else if (len > (size_t)f->n)
                    len = (size_t)f->n;
                if (!(v->s = malloc(len + 1)))
                    return cf_err_set(err, CF_E_NOMEM, "out of memory");
                memcpy(v->s, p, len);
                v->s[len] = 0;
                v->n = len;
            }
            break;
        case CF_ICE_IDENTITY:
            switch (c->type.id) {
            case CF_T_BOOL: v->i = cf_col_bool(c, row); break;
            case CF_T_INT32:
            case CF_T_DATE: v->i = cf_col_i32(c, row); break;
            case CF_T_INT64: v->i = cf_col_i64(c, row); break;
            default: {
                size_t len;
                const uint8_t *p = cf_col_bytes(c, row, &len);
                uint8_t u[16];
                /* A uuid partition value is its 16 bytes (Avro fixed). */
                if (f->result.id == CF_T_UUID) {
                    if (cf_ice_uuid_parse(p, len, u))
                        return cf_err_set(err, CF_E_ARG, "partition %s: '%.*s' is not a UUID", f->name,
                                          (int)(len < 64 ? len : 64), (const char *)p);
                    p = u;
                    len = 16;
                }
                if (!(v->s = malloc(len + 1)))
                    return cf_err_set(err, CF_E_NOMEM, "out of memory");
                memcpy(v->s, p, len);
                v->s[len] = 0;
                v->n = len;
            }
            }
            break;
        }
    }
    return 0;
}

/* Proleptic Gregorian date of a day number (days since 1970-01-01). */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    int64_t era, doe, yoe, doy, mp;
    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

int cf_ice_partition_path(const cf_ice_spec *sp, const cf_ice_pval *v, char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int k = 0; k < sp->nfields; k++) {
        const cf_ice_pfield *f = &sp->f[k];
        char val[192];
        if (v[k].null)
            snprintf(val, sizeof val, "null");
        else if (f->xf == CF_ICE_YEAR)
            snprintf(val, sizeof val, "%04lld", (long long)(1970 + v[k].i));
        else if (f->xf == CF_ICE_MONTH)
            snprintf(val, sizeof val, "%04lld-%02d", (long long)(1970 + floor_div(v[k].i, 12)),
                     (int)(v[k].i - floor_div(v[k].i, 12) * 12) + 1);
        else if (f->xf == CF_ICE_HOUR) {
            int y, m, d;
            civil_from_days(floor_div(v[k].i, 24), &y, &m, &d);
            snprintf(val, sizeof val, "%04d-%02d-%02d-%02d", y, m, d, (int)(v[k].i - floor_div(v[k].i, 24) * 24));
        } else if (f->result.id == CF_T_DATE) {
            int y, m, d;
            civil_from_days(v[k].i, &y, &m, &d);
            snprintf(val, sizeof val, "%04d-%02d-%02d", y, m, d);
        } else if (f->result.id == CF_T_UUID && v[k].s && v[k].n == 16) {
            const uint8_t *u = (const uint8_t *)v[k].s;
            snprintf(val, sizeof val,
                     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                     u[12], u[13], u[14], u[15]);
        } else if (v[k].s) {
            /* Keep paths portable: anything but [A-Za-z0-9._-] is %-escaped. */
            size_t o = 0;
            for (size_t i = 0; i < v[k].n && o + 4 < sizeof val; i++) {
                unsigned char ch = (unsigned char)v[k].s[i];
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    ch == '.' || ch == '_' || ch == '-')
                    val[o++] = (char)ch;
                else
                    o += (size_t)snprintf(val + o, sizeof val - o, "%%%02X", ch);
            }
            val[o] = 0;
        } else if (f->result.id == CF_T_BOOL)
            snprintf(val, sizeof val, "%s", v[k].i ? "true" : "false");
        else
            snprintf(val, sizeof val, "%lld", (long long)v[k].i);
        int w = snprintf(out + used, n - used, "%s%s=%s", k ? "/" : "", f->name, val);
        if (w < 0 || (size_t)w >= n - used)
            return -1;
        used += (size_t)w;
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int cf_ice_uuid_parse(const void *text, size_t n, uint8_t out[16])
{
    const char *p = text;
    int k = 0;
    if (n != 36)
        return -1;
    for (size_t i = 0; i < 36; i++) {
        int hi, lo;
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-')
                return -1;
            continue;
        }
        if ((hi = hexval((unsigned char)p[i])) < 0 || (lo = hexval((unsigned char)p[++i])) < 0)
            return -1;
        out[k++] = (uint8_t)(hi << 4 | lo);
    }
    return k == 16 ? 0 : -1;
}

/* Unscaled value of decimal text ("-123.45") at `scale`: -1 when it is not
 * a number, has more fraction digits than the scale, or overflows 38 digits. */
static int dec_parse(const void *text, size_t n, int scale, __int128 *out)
{
    const char *p = text, *end = p + n;
    __int128 v = 0;
    const __int128 lim = (__int128)1000000000000000000LL * 100000000000000000LL;  /* 1e35 */
    bool neg = false, dot = false, digits = false;
    int frac = 0;

    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    for (; p < end; p++) {
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return -1;
        if (dot && ++frac > scale)
            return -1;
        if (v >= lim * 100)           /* one more digit would make 39 */
            return -1;
        v = v * 10 + (*p - '0');
        digits = true;
    }
    if (!digits)
        return -1;
    for (; frac < scale; frac++) {
        if (v >= lim * 100)
            return -1;
        v *= 10;
    }
    *out = neg ? -v : v;
    return 0;
}

int cf_ice_single_value(const cf_type *t, int64_t iv, double dv, const void *s, size_t sn,
                        uint8_t *out, size_t outsz)
{
    switch (t->id) {
    case CF_T_BOOL:
        if (outsz < 1)
            return -1;
        out[0] = iv ? 1 : 0;
        return 1;
    case CF_T_INT32:
    case CF_T_DATE:
        if (outsz < 4)
            return -1;
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)((uint64_t)iv >> (8 * i));
        return 4;
    case CF_T_INT64:
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
    case CF_T_TIME:
        if (outsz < 8)
            return -1;
        for (int i = 0; i < 8; i++)
            out[i] = (uint8_t)((uint64_t)iv >> (8 * i));
        return 8;
    case CF_T_FLOAT: {
        float f = (float)dv;
        uint32_t u;
        if (outsz < 4)
            return -1;
        memcpy(&u, &f, 4);
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(u >> (8 * i));
        return 4;
    }
    case CF_T_DOUBLE: {
        uint64_t u;
        if (outsz < 8)
            return -1;
        memcpy(&u, &dv, 8);
        for (int i = 0; i < 8; i++)
            out[i] = (uint8_t)(u >> (8 * i));
        return 8;
    }
    case CF_T_UUID: {
        /* 16 bytes, big-endian: from raw bytes (partition values) or the
         * 36-char text batches and Parquet statistics carry. */
        uint8_t u[16];
        if (outsz < 16)
            return -1;
        if (sn == 16)
            memcpy(u, s, 16);
        else if (cf_ice_uuid_parse(s, sn, u))
            return -1;
        memcpy(out, u, 16);
        return 16;
    }
    case CF_T_DECIMAL:
        if (t->precision > 18) {
            /* Wide decimals are text in batches and statistics. */
            __int128 x;
            uint8_t be[16];
            int start = 0;
            if (dec_parse(s, sn, t->scale, &x))
                return -1;
            for (int i = 15; i >= 0; i--) {
                be[i] = (uint8_t)x;
                x >>= 8;
            }
            while (start < 15 && ((be[start] == 0x00 && !(be[start + 1] & 0x80)) ||
                                  (be[start] == 0xff && (be[start + 1] & 0x80))))
                start++;
            if (outsz < (size_t)(16 - start))
                return -1;
            memcpy(out, be + start, (size_t)(16 - start));
            return 16 - start;
        }
        {
            /* Unscaled value, two's complement big-endian, fewest bytes. */
            uint8_t be[8];
            int start = 0;
            for (int i = 0; i < 8; i++)
                be[i] = (uint8_t)((uint64_t)iv >> (8 * (7 - i)));
            while (start < 7 && ((be[start] == 0x00 && !(be[start + 1] & 0x80)) ||
                                 (be[start] == 0xff && (be[start + 1] & 0x80))))
                start++;
            if (outsz < (size_t)(8 - start))
                return -1;
            memcpy(out, be + start, (size_t)(8 - start));
            return 8 - start;
        }
    case CF_T_STRING:
    case CF_T_BINARY:
        if (sn > outsz)
            return -1;
        memcpy(out, s, sn);
        return (int)sn;
    }
    return -1;
}
