/* convert.c - base64, decimal and ISO-8601 conversions for the decoder. */
#include "decode/convert.h"

#include <string.h>

/* ---- base64 ----------------------------------------------------------- */

/* Value + 1 of each base64 digit (both alphabets); 0 = not a digit. */
static const uint8_t b64_val[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
    ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16,
    ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24,
    ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
    ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48,
    ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56,
    ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
    ['-'] = 63, ['_'] = 64,
};

long cf_conv_base64(const char *s, size_t n, uint8_t *dst)
{
    const uint8_t *p = (const uint8_t *)s;
    uint32_t acc = 0;
    size_t i, bits = 0, out = 0, pad = 0;

    while (n > 0 && p[n - 1] == '=') {
        n--;
        if (++pad > 2)
            return -1;
    }
    if (pad && (n + pad) % 4)
        return -1;
    if (n % 4 == 1)
        return -1;
    for (i = 0; i < n; i++) {
        uint8_t v = b64_val[p[i]];
        if (!v)
            return -1;
        acc = (acc << 6) | (uint32_t)(v - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[out++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be zero in canonical base64; we do not insist. */
    return (long)out;
}

/* ---- decimals --------------------------------------------------------- */

int cf_conv_be_i64(const uint8_t *p, size_t n, int64_t *out)
{
    uint64_t v;

    if (n == 0) {
        *out = 0;
        return 0;
    }
    /* Leading sign-extension bytes carry no value. */
    while (n > 8 && ((p[0] == 0x00 && !(p[1] & 0x80)) || (p[0] == 0xff && (p[1] & 0x80)))) {
        p++;
        n--;
    }
    if (n > 8)
        return -1;
    v = (p[0] & 0x80) ? UINT64_MAX : 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    *out = (int64_t)v;
    return 0;
}

size_t cf_conv_dec_text_max(size_t n, int scale)
{
    /* 256^n < 10^(2.41n+1); sign, point, leading "0." padding, NUL. */
    return n * 241 / 100 + 2 + (size_t)(scale > 0 ? scale : 0) + 4 + 1;
}

size_t cf_conv_digits_text(const char *digits, int nd, bool neg, int scale, char *dst)
{
    char *d = dst;

    if (nd == 1 && digits[0] == '0')
        neg = false;
    if (neg)
        *d++ = '-';
    if (scale <= 0) {
        memcpy(d, digits, (size_t)nd);
        d += nd;
        for (int i = 0; i < -scale; i++)
            *d++ = '0';
    } else if (nd > scale) {
        memcpy(d, digits, (size_t)(nd - scale));
        d += nd - scale;
        *d++ = '.';
        memcpy(d, digits + nd - scale, (size_t)scale);
        d += scale;
    } else {
        *d++ = '0';
        *d++ = '.';
        for (int i = 0; i < scale - nd; i++)
            *d++ = '0';
        memcpy(d, digits, (size_t)nd);
        d += nd;
    }
    return (size_t)(d - dst);
}

size_t cf_conv_be_dec_text(const uint8_t *p, size_t n, int scale, char *dst)
{
    uint8_t mag[1024];
    char rev[2600];
    size_t nd = 0, len = n;
    bool neg = n > 0 && (p[0] & 0x80);

    if (len > sizeof mag)
        len = sizeof mag;   /* callers cap n; this only keeps us in bounds */
    if (len)
        memcpy(mag, p, len);
    if (neg) {              /* two's complement -> magnitude */
        int carry = 1;
        for (size_t i = len; i-- > 0;) {
            int v = (uint8_t)~mag[i] + carry;
            mag[i] = (uint8_t)v;
            carry = v >> 8;
        }
    }
    /* Repeated division by 10^9 of the base-256 magnitude. */
    for (size_t start = 0;;) {
        uint64_t rem = 0;
        while (start < len && mag[start] == 0)
            start++;
        if (start >= len)
            break;
        for (size_t i = start; i < len; i++) {
            uint64_t cur = (rem << 8) | mag[i];
            mag[i] = (uint8_t)(cur / 1000000000u);
            rem = cur % 1000000000u;
        }
        for (int k = 0; k < 9 && nd < sizeof rev; k++) {
            rev[nd++] = (char)('0' + rem % 10);
            rem /= 10;
        }
    }
    while (nd > 1 && rev[nd - 1] == '0')
        nd--;
    if (nd == 0)
        rev[nd++] = '0';
    {
        char digits[sizeof rev];
        for (size_t i = 0; i < nd; i++)
            digits[i] = rev[nd - 1 - i];
        return cf_conv_digits_text(digits, (int)nd, neg, scale, dst);
    }
}

int cf_conv_dec_parse(const char *s, size_t n, int scale, bool *neg, char *digits, size_t cap)
{
    const char *p = s, *end = s + n;
    size_t nd = 0, frac_digits = 0;
    long exp = 0, k;
    bool any = false, round_up = false;

    *neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        *neg = *p++ == '-';
    for (; p < end && *p >= '0' && *p <= '9'; p++, any = true) {
        if (nd == 0 && *p == '0')
            continue;       /* leading zero */
        if (nd >= cap)
            return -1;
        digits[nd++] = *p;
    }
    if (p < end && *p == '.') {
        p++;
        for (; p < end && *p >= '0' && *p <= '9'; p++, any = true) {
            frac_digits++;
            if (nd == 0 && *p == '0')
                continue;   /* still leading: only the exponent moves */
            if (nd >= cap)
                return -1;
            digits[nd++] = *p;
        }
    }
    if (!any)
        return -1;
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = false;
        p++;
        if (p < end && (*p == '-' || *p == '+'))
            eneg = *p++ == '-';
        if (p >= end)
            return -1;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (exp > 100000)
                return -1;
            exp = exp * 10 + (*p - '0');
        }
        if (eneg)
            exp = -exp;
    }
    if (p != end)
        return -1;
    /* value = digits * 10^(exp - frac_digits); unscaled = value * 10^scale */
    k = exp - (long)frac_digits + scale;
    if (nd == 0) {
        digits[0] = '0';
        return 1;
    }
    if (k >= 0) {
        if (nd + (size_t)k > cap)
            return -1;
        memset(digits + nd, '0', (size_t)k);
        nd += (size_t)k;
    } else {
        size_t drop = (size_t)-k;
        if (drop > nd) {
            digits[0] = '0';
            return 1;       /* even the first digit is below half a unit */
        }
        round_up = digits[nd - drop] >= '5';
        nd -= drop;
        if (round_up) {
            size_t i = nd;
            while (i > 0 && digits[i - 1] == '9')
                digits[--i] = '0';
            if (i == 0) {
                if (nd + 1 > cap)
                    return -1;
                memmove(digits + 1, digits, nd);
                digits[0] = '1';
                nd++;
            } else {
                digits[i - 1]++;
            }
        }
        if (nd == 0) {
            digits[0] = round_up ? '1' : '0';
            return 1;
        }
    }
    return (int)nd;
}

int cf_conv_digits_i64(const char *digits, int nd, bool neg, int64_t *out)
{
    int64_t v = 0;

    if (nd > 18)
        return -1;
    for (int i = 0; i < nd; i++)
        v = v * 10 + (digits[i] - '0');
    *out = neg ? -v : v;
    return 0;
}

/* ---- dates and times -------------------------------------------------- */

int64_t cf_conv_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* H. Hinnant's days_from_civil. */
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int num(const char **pp, const char *end, int ndig, int *out)
{
    int v = 0;
    for (int i = 0; i < ndig; i++) {
        if (*pp >= end || **pp < '0' || **pp > '9')
            return -1;
        v = v * 10 + (*(*pp)++ - '0');
    }
    *out = v;
    return 0;
}

static int parse_date(const char **pp, const char *end, int64_t *days)
{
    const char *p = *pp;
    int y, m, d;
    bool neg = false;
    static const unsigned char mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    if (num(&p, end, 4, &y))
        return -1;
    while (p < end && *p >= '0' && *p <= '9' && y < 1000000)   /* years past 9999 */
        y = y * 10 + (*p++ - '0');
    if (p >= end || *p++ != '-' || num(&p, end, 2, &m) || p >= end || *p++ != '-' ||
        num(&p, end, 2, &d))
        return -1;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
        return -1;
    *days = cf_conv_days_from_civil(neg ? -(int64_t)y : y, (unsigned)m, (unsigned)d);
    *pp = p;
    return 0;
}

int cf_conv_iso_date(const char *s, size_t n, int64_t *days)
{
    const char *p = s;
    return parse_date(&p, s + n, days) || p != s + n ? -1 : 0;
}

int cf_conv_iso_ts(const char *s, size_t n, int64_t *us, bool *had_zone)
{
    const char *p = s, *end = s + n;
    int64_t days, frac = 0, off = 0;
    int hh = 0, mi = 0, ss = 0;

    *had_zone = false;
    /* Past ~290,000 years the microseconds overflow int64. */
    if (parse_date(&p, end, &days) || days > 106000000 || days < -106000000)
        return -1;
    if (p < end && (*p == 'T' || *p == 't' || *p == ' ')) {
        p++;
        if (num(&p, end, 2, &hh) || p >= end || *p++ != ':' || num(&p, end, 2, &mi))
            return -1;
        if (p < end && *p == ':') {
            p++;
            if (num(&p, end, 2, &ss))
                return -1;
            if (p < end && (*p == '.' || *p == ',')) {
                int nd = 0;
                p++;
                if (p >= end || *p < '0' || *p > '9')
                    return -1;
                for (; p < end && *p >= '0' && *p <= '9'; p++, nd++)
                    if (nd < 6)
                        frac = frac * 10 + (*p - '0');
                for (; nd < 6; nd++)
                    frac *= 10;
            }
        }
        if (hh > 24 || mi > 59 || ss > 60 || (hh == 24 && (mi || ss || frac)))
            return -1;
    }
    if (p < end) {
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0, os = 0;
            if (num(&p, end, 2, &oh))
                return -1;
            if (p < end && *p == ':')
                p++;
            if (p < end && num(&p, end, 2, &om))
                return -1;
            if (p < end && *p == ':') {
                p++;
                if (num(&p, end, 2, &os))
                    return -1;
            }
            if (oh > 18 || om > 59 || os > 59)
                return -1;
            off = sign * ((int64_t)oh * 3600 + om * 60 + os);
        } else {
            return -1;
        }
        *had_zone = true;
    }
    if (p != end)
        return -1;
    *us = ((days * 86400 + hh * 3600 + mi * 60 + ss) - off) * 1000000 + frac;
    return 0;
}

void cf_conv_base64_encode(const uint8_t *p, size_t n, char *out)
{
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = al[(v >> 6) & 63];
        out[o++] = al[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = al[v >> 18];
        out[o++] = al[(v >> 12) & 63];
        out[o++] = i + 1 < n ? al[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
}
