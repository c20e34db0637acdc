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
