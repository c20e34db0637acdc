/* encoding.c - Parquet's RLE/bit-packed hybrid encoding (levels, dictionary
 * indices, booleans) and the page codecs (zstd, snappy, gzip, none). */
#include "format/parquet/parquet_int.h"

#include <limits.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

int cf_pq_bit_width(uint64_t max_value)
{
    int bw = 0;
    while (max_value) {
        bw++;
        max_value >>= 1;
    }
    return bw;
}

/* ---- encoder --------------------------------------------------------- */

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Bit-pack v[0..n) (n need not be a multiple of 8: zero padded). */
static int put_literals(cf_buf *out, const uint32_t *v, size_t n, int bw, cf_err *err)
{
    size_t groups = (n + 7) / 8;
    uint8_t *p;
    uint64_t acc = 0;
    int nb = 0;

    if (!n)
        return 0;
    if (cf_buf_reserve(out, 10 + groups * (size_t)bw, err))
        return -1;
    p = put_varint(out->data + out->len, (groups << 1) | 1);
    for (size_t i = 0; i < groups * 8; i++) {
        acc |= (uint64_t)(i < n ? v[i] : 0) << nb;
        nb += bw;
        while (nb >= 8) {
            *p++ = (uint8_t)acc;
            acc >>= 8;
            nb -= 8;
        }
    }
    out->len = (size_t)(p - out->data);
    return 0;
}

static int put_run(cf_buf *out, uint32_t val, size_t run, int bw, cf_err *err)
{
    uint8_t *p;
    if (cf_buf_reserve(out, 16, err))
        return -1;
    p = put_varint(out->data + out->len, (uint64_t)run << 1);
    for (int i = 0; i < (bw + 7) / 8; i++)
        *p++ = (uint8_t)(val >> (8 * i));
    out->len = (size_t)(p - out->data);
    return 0;
}

int cf_pq_rle_encode(cf_buf *out, const uint32_t *v, size_t n, int bw, cf_err *err)
{
    size_t i = 0, lit = 0;   /* v[lit..i) are pending literals */

    if (bw == 0)             /* every value is 0: one run says it all */
        return n ? put_run(out, 0, n, 0, err) : 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && v[j] == v[i])
            j++;
        if (j - i >= 8) {
            /* Literal runs hold whole groups of 8: lend the run a few
             * values to round the pending literals up. */
            size_t pend = (i - lit) % 8;
            if (pend)
                i += 8 - pend;
            if (put_literals(out, v + lit, i - lit, bw, err))
                return -1;
            lit = i;
            if (j - i >= 8) {
                if (put_run(out, v[i], j - i, bw, err))
                    return -1;
                lit = j;
            }
        }
        i = j;
    }
    return put_literals(out, v + lit, n - lit, bw, err);
}

/* ---- decoder --------------------------------------------------------- */

void cf_rle_init(cf_rle_dec *d, const uint8_t *p, size_t n, int bw)
{
    memset(d, 0, sizeof *d);
    d->p = p;
    d->end = p + n;
    d->bw = bw;
}

static int next_run(cf_rle_dec *d)
{
    uint64_t h = 0;
    int shift = 0;

    for (;;) {
        if (d->p >= d->end || shift > 35)
            return -1;
        uint8_t b = *d->p++;
        h |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (h & 1) {
        uint64_t vals = (h >> 1) * 8;
        /* Some writers stop the last group's bytes early: only trust
         * what the remaining bytes can hold. */
        uint64_t avail = d->bw ? (uint64_t)(d->end - d->p) * 8 / (unsigned)d->bw : vals;
        if (vals > avail)
            vals = avail;
        if (vals == 0 || vals > UINT32_MAX)
            return -1;
        d->bp_left = (uint32_t)vals;
        d->bits = 0;
        d->nbits = 0;
    } else {
        uint32_t v = 0;
        int nbytes = (d->bw + 7) / 8;
        if ((h >> 1) == 0 || (h >> 1) > UINT32_MAX || d->end - d->p < nbytes)
            return -1;
        for (int i = 0; i < nbytes; i++)
            v |= (uint32_t)*d->p++ << (8 * i);
        d->rle_left = (uint32_t)(h >> 1);
        d->rle_val = v;
    }
    return 0;
}

int cf_rle_get(cf_rle_dec *d, uint32_t *out, size_t n)
{
    uint64_t mask = d->bw >= 32 ? 0xffffffffu : ((1u << d->bw) - 1);

    while (n) {
        if (d->rle_left) {
            size_t k = d->rle_left < n ? d->rle_left : n;
            for (size_t i = 0; i < k; i++)
                out[i] = d->rle_val;
            out += k;
            n -= k;
            d->rle_left -= (uint32_t)k;
        } else if (d->bp_left) {
            size_t k = d->bp_left < n ? d->bp_left : n;
            /* whole groups of 8 straight from the bytes: bw bytes each */
            if (d->nbits == 0 && d->bw > 0 && d->bw <= 24) {
                size_t bytes = (size_t)d->bw;
                while (k >= 8 && (size_t)(d->end - d->p) >= bytes + 8) {
                    uint64_t x;
                    memcpy(&x, d->p, 8);
                    int shift = 0;
                    for (int j = 0; j < 8; j++) {
                        if (shift + d->bw > 64) {
                            uint64_t y;
                            memcpy(&y, d->p + shift / 8, 8);
                            out[j] = (uint32_t)((y >> (shift % 8)) & mask);
                        } else {
                            out[j] = (uint32_t)((x >> shift) & mask);
                        }
                        shift += d->bw;
                    }
                    d->p += bytes;
                    out += 8;
                    n -= 8;
                    k -= 8;
                    d->bp_left -= 8;
                }
                if (k == 0)
                    continue;
            }
            for (size_t i = 0; i < k; i++) {
                while (d->nbits < d->bw) {
                    if (d->p >= d->end)
                        return -1;
                    d->bits |= (uint64_t)*d->p++ << d->nbits;
                    d->nbits += 8;
                }
                out[i] = (uint32_t)(d->bits & mask);
                d->bits >>= d->bw;
                d->nbits -= d->bw;
            }
            out += k;
            n -= k;
            d->bp_left -= (uint32_t)k;
        } else if (next_run(d)) {
            return -1;
        }
    }
    return 0;
}

int cf_rle_get16(cf_rle_dec *d, int16_t *out, size_t n, int16_t maxv)
{
    uint32_t tmp[512];
    while (n) {
        size_t k = n < 512 ? n : 512;
        if (cf_rle_get(d, tmp, k))
            return -1;
        for (size_t i = 0; i < k; i++) {
            if (tmp[i] > (uint32_t)maxv)
                return -1;
            out[i] = (int16_t)tmp[i];
        }
        out += k;
        n -= k;
    }
    return 0;
}

/* ---- DELTA_* and BYTE_STREAM_SPLIT, decoded into PLAIN ---------------- */

static int get_uleb(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

static int get_zz(const uint8_t **p, const uint8_t *end, int64_t *v)
{
    uint64_t u;
    if (get_uleb(p, end, &u))
        return -1;
    *v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
    return 0;
}

int cf_pq_delta_binary(const uint8_t **pp, const uint8_t *end, int width, size_t want,
                       cf_buf *out, cf_err *err)
{
    const uint8_t *p = *pp;
    uint64_t block, nmini, total, per_mini;
    int64_t first;
    uint64_t cur;
    size_t got = 0;

    if (get_uleb(&p, end, &block) || get_uleb(&p, end, &nmini) || get_uleb(&p, end, &total) ||
        get_zz(&p, end, &first))
        return cf_err_set(err, CF_E_PARSE, "truncated DELTA_BINARY_PACKED header");
    if (block == 0 || block % 128 || nmini == 0 || block % nmini || (block / nmini) % 32 ||
        block > (1u << 20))
        return cf_err_set(err, CF_E_PARSE, "bad DELTA_BINARY_PACKED block %llu / %llu",
                          (unsigned long long)block, (unsigned long long)nmini);
    if (total < want)
        return cf_err_set(err, CF_E_PARSE, "DELTA_BINARY_PACKED holds %llu values, %zu needed",
                          (unsigned long long)total, want);
    per_mini = block / nmini;
    if (cf_buf_reserve(out, want * (size_t)width, err))
        return -1;
    cur = (uint64_t)first;
    /* values wrap modulo 2^width, as the spec's arithmetic does */
#define EMIT(v) do { if (width == 4) { uint32_t u32_ = (uint32_t)(v); memcpy(out->data + out->len, &u32_, 4); } \
                     else { uint64_t u64_ = (v); memcpy(out->data + out->len, &u64_, 8); }          \
                     out->len += (size_t)width; got++; } while (0)
    if (want)
        EMIT(cur);
    while (got < want) {
        int64_t min_delta;
        const uint8_t *widths;
        if (get_zz(&p, end, &min_delta) || (uint64_t)(end - p) < nmini)
            return cf_err_set(err, CF_E_PARSE, "truncated DELTA_BINARY_PACKED block");
        widths = p;
        p += nmini;
        for (uint64_t m = 0; m < nmini && got < want; m++) {
            int bw = widths[m];
            uint64_t mask = bw >= 64 ? ~0ull : ((1ull << bw) - 1);
            size_t bytes = (size_t)(per_mini * (uint64_t)bw / 8);
            uint64_t bitpos = 0;
            if (bw > 64)
                return cf_err_set(err, CF_E_PARSE, "DELTA_BINARY_PACKED bit width %d", bw);
            if ((size_t)(end - p) < bytes)
                return cf_err_set(err, CF_E_PARSE, "truncated DELTA_BINARY_PACKED miniblock");
            for (uint64_t k = 0; k < per_mini && got < want; k++) {
                uint64_t d = 0;
                for (int b = 0; b < bw; b++, bitpos++)   /* plain and safe: bw may be 64 */
                    d |= (uint64_t)((p[bitpos / 8] >> (bitpos % 8)) & 1) << b;
                cur += (uint64_t)min_delta + (d & mask);
                EMIT(cur);
            }
            p += bytes;
        }
    }
#undef EMIT
    *pp = p;
    return 0;
}

int cf_pq_delta_length(const uint8_t *p, size_t n, size_t want, cf_buf *out, cf_err *err)
{
    const uint8_t *end = p + n;
    cf_buf lens;
    int rc = -1;

    cf_buf_init(&lens, 0);
    if (cf_pq_delta_binary(&p, end, 4, want, &lens, err))
        goto done;
    for (size_t i = 0; i < want; i++) {
        uint32_t len;
        memcpy(&len, lens.data + i * 4, 4);
        if (len > (size_t)(end - p)) {
            cf_err_set(err, CF_E_PARSE, "DELTA_LENGTH_BYTE_ARRAY runs past its page");
            goto done;
        }
        if (cf_buf_append(out, &len, 4, err) || cf_buf_append(out, p, len, err))
            goto done;
        p += len;
    }
    rc = 0;
done:
    cf_buf_free(&lens);
    return rc;
}

int cf_pq_delta_byte_array(const uint8_t *p, size_t n, size_t want, size_t cap, cf_buf *out,
                           cf_err *err)
{
    const uint8_t *end = p + n;
    cf_buf pre, suf;
    size_t prev_at = 0, prev_len = 0, at = 0;
    int rc = -1;

    cf_buf_init(&pre, 0);
    cf_buf_init(&suf, 0);
    if (cf_pq_delta_binary(&p, end, 4, want, &pre, err) ||
        cf_pq_delta_length(p, (size_t)(end - p), want, &suf, err))
        goto done;
    for (size_t i = 0; i < want; i++) {
        uint32_t pl, sl;
        memcpy(&pl, pre.data + i * 4, 4);
        memcpy(&sl, suf.data + at, 4);
        if (pl > prev_len || (size_t)pl + sl > UINT32_MAX || out->len + 4 + pl + sl > cap) {
            cf_err_set(err, CF_E_PARSE, "DELTA_BYTE_ARRAY prefix %u of a %zu-byte value", pl, prev_len);
            goto done;
        }
        uint32_t len = pl + sl;
        if (cf_buf_reserve(out, 4 + (size_t)len, err))
            goto done;
        memcpy(out->data + out->len, &len, 4);
        if (pl)
            memcpy(out->data + out->len + 4, out->data + prev_at + 4, pl);
        if (sl)
            memcpy(out->data + out->len + 4 + pl, suf.data + at + 4, sl);
        prev_at = out->len;
        prev_len = len;
        out->len += 4 + (size_t)len;
        at += 4 + sl;
    }
    rc = 0;
done:
    cf_buf_free(&pre);
    cf_buf_free(&suf);
    return rc;
}

int cf_pq_byte_stream_split(const uint8_t *p, size_t n, size_t width, size_t want, cf_buf *out,
                            cf_err *err)
{
    if (width == 0 || want > n / width)
        return cf_err_set(err, CF_E_PARSE, "BYTE_STREAM_SPLIT page holds fewer values than needed");
    /* streams are n / width long: a page's values are all of it */
    size_t stride = n / width;
    if (cf_buf_reserve(out, want * width, err))
        return -1;
    for (size_t i = 0; i < want; i++)
        for (size_t k = 0; k < width; k++)
            out->data[out->len + i * width + k] = p[k * stride + i];
    out->len += want * width;
    return 0;
}

/* ---- decimals -------------------------------------------------------- */

__int128 cf_pq_dec_from_be(const uint8_t *p, size_t n)
{
    __int128 v = (n && (p[0] & 0x80)) ? -1 : 0;
    for (size_t i = 0; i < n; i++)
        v = (__int128)(((unsigned __int128)v << 8) | p[i]);
    return v;
}

size_t cf_pq_dec_format(__int128 v, int scale, char *out)
{
    char tmp[48];
    int n = 0;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)(-(v + 1)) + 1 : (unsigned __int128)v;
    size_t k = 0;

    if (scale > 40)
        scale = 40;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    while (n <= scale)
        tmp[n++] = '0';
    if (neg)
        out[k++] = '-';
    for (int i = n - 1; i >= 0; i--) {
        out[k++] = tmp[i];
        if (i == scale && scale > 0)
            out[k++] = '.';
    }
    out[k] = '\0';
    return k;
}

/* ---- codecs ---------------------------------------------------------- */

struct cf_pq_codec_ctx {
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
};

cf_pq_codec_ctx *cf_pq_codec_new(void)
{
    return calloc(1, sizeof(cf_pq_codec_ctx));
}

void cf_pq_codec_free(cf_pq_codec_ctx *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    free(c);
}

int cf_pq_compress(cf_pq_codec_ctx *c, int codec, int level, const uint8_t *src, size_t n,
                   cf_buf *out, cf_err *err)
{
    out->len = 0;
    switch (codec) {
    case PQ_CODEC_UNCOMPRESSED:
        return cf_buf_append(out, src, n, err);
    case PQ_CODEC_ZSTD: {
        size_t bound = ZSTD_compressBound(n), r;
        if (!c->zc && !(c->zc = ZSTD_createCCtx()))
            return cf_err_set(err, CF_E_NOMEM, "out of memory creating a zstd context");
        if (cf_buf_reserve(out, bound, err))
            return -1;
        r = ZSTD_compressCCtx(c->zc, out->data, bound, src, n, level);
        if (ZSTD_isError(r))
            return cf_err_set(err, CF_E_IO, "zstd: %s", ZSTD_getErrorName(r));
        out->len = r;
        return 0;
    }
    case PQ_CODEC_SNAPPY: {
        size_t olen = snappy_max_compressed_length(n);
        if (cf_buf_reserve(out, olen, err))
            return -1;
        if (snappy_compress((const char *)src, n, (char *)out->data, &olen) != SNAPPY_OK)
            return cf_err_set(err, CF_E_IO, "snappy compression failed");
        out->len = olen;
        return 0;
    }
    default:
        return cf_err_set(err, CF_E_UNSUPPORTED, "cannot write parquet codec %d", codec);
    }
}

static int inflate_all(const uint8_t *src, size_t n, uint8_t *dst, size_t want, cf_err *err)
{
    z_stream zs;
    int rc;

    if (n > UINT_MAX || want > UINT_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "gzip page too large");
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK)   /* gzip or zlib header */
        return cf_err_set(err, CF_E_NOMEM, "zlib init failed");
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.avail_in = (uInt)n;
    zs.next_out = dst;
    zs.avail_out = (uInt)want;
    rc = inflate(&zs, Z_FINISH);
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || zs.total_out != want)
        return cf_err_set(err, CF_E_PARSE, "corrupt gzip page (zlib %d, %lu of %zu bytes)",
                          rc, (unsigned long)zs.total_out, want);
    return 0;
}

int cf_pq_check_size(int codec, const uint8_t *src, size_t n, size_t want, cf_err *err)
{
    switch (codec) {
    case PQ_CODEC_UNCOMPRESSED:
        if (n != want)
            return cf_err_set(err, CF_E_PARSE, "uncompressed page of %zu bytes claims %zu", n, want);
        return 0;
    case PQ_CODEC_ZSTD: {
        /* pages are single frames; when the frame states its size it must agree */
        unsigned long long fs = ZSTD_getFrameContentSize(src, n);
        if (fs == ZSTD_CONTENTSIZE_ERROR)
            return cf_err_set(err, CF_E_PARSE, "corrupt zstd frame header");
        if (fs != ZSTD_CONTENTSIZE_UNKNOWN && fs != want)
            return cf_err_set(err, CF_E_PARSE, "zstd frame holds %llu bytes, page claims %zu", fs, want);
        return 0;
    }
    case PQ_CODEC_SNAPPY: {
        size_t olen;
        if (snappy_uncompressed_length((const char *)src, n, &olen) != SNAPPY_OK || olen != want)
            return cf_err_set(err, CF_E_PARSE, "snappy page does not hold the %zu bytes it claims", want);
        return 0;
    }
    case PQ_CODEC_GZIP:
        /* deflate cannot expand more than about 1032:1 */
        if (want / 1032 > n + 64)
            return cf_err_set(err, CF_E_PARSE, "gzip page claims an impossible ratio");
        return 0;
    default:
        return cf_err_set(err, CF_E_UNSUPPORTED, "parquet codec %d is not supported", codec);
    }
}

int cf_pq_decompress(cf_pq_codec_ctx *c, int codec, const uint8_t *src, size_t n,
                     uint8_t *dst, size_t want, cf_err *err)
{
    switch (codec) {
    case PQ_CODEC_UNCOMPRESSED:
        if (n != want)
            return cf_err_set(err, CF_E_PARSE, "uncompressed page of %zu bytes claims %zu", n, want);
        memcpy(dst, src, n);
        return 0;
    case PQ_CODEC_ZSTD: {
        size_t r;
        if (!c->zd && !(c->zd = ZSTD_createDCtx()))
            return cf_err_set(err, CF_E_NOMEM, "out of memory creating a zstd context");
        r = ZSTD_decompressDCtx(c->zd, dst, want, src, n);
        if (ZSTD_isError(r) || r != want)
            return cf_err_set(err, CF_E_PARSE, "corrupt zstd page: %s",
                              ZSTD_isError(r) ? ZSTD_getErrorName(r) : "size mismatch");
        return 0;
    }
    case PQ_CODEC_SNAPPY: {
        size_t olen;
        if (snappy_uncompressed_length((const char *)src, n, &olen) != SNAPPY_OK || olen != want)
            return cf_err_set(err, CF_E_PARSE, "corrupt snappy page header");
        if (snappy_uncompress((const char *)src, n, (char *)dst, &olen) != SNAPPY_OK || olen != want)
            return cf_err_set(err, CF_E_PARSE, "corrupt snappy page");
        return 0;
    }
    case PQ_CODEC_GZIP:
        return inflate_all(src, n, dst, want, err);
    default:
        return cf_err_set(err, CF_E_UNSUPPORTED, "parquet codec %d is not supported", codec);
    }
}
