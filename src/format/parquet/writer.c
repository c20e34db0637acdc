/* writer.c - Parquet writer: flat (cf_schema + cf_batch) and tree (nested
 * schema fed as levels + values) APIs over one column-chunk engine.  Pages
 * are data page v1; a row group is buffered per column, compressed, then
 * written, so memory stays near row_group_bytes. */
#include "format/parquet/parquet.h"
#include "format/parquet/parquet_int.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CREATED_BY "cdcflow version 0.1.0"
#define MAX_STAT_BYTES 4096
#define SLICE_ROWS 1024   /* row groups are cut at slice ends */

void cf_pq_options_default(cf_pq_options *o)
{
    memset(o, 0, sizeof *o);
    o->codec = CF_CODEC_ZSTD;
    o->zstd_level = 3;
    o->row_group_bytes = (size_t)128 << 20;
    o->page_bytes = (size_t)1 << 20;
    o->dictionary = true;
    o->dict_max_bytes = (size_t)1 << 20;
    o->write_field_ids = true;
}

void cf_pq_file_info_free(cf_pq_file_info *fi)
{
    if (!fi)
        return;
    for (int i = 0; i < fi->ncols; i++) {
        free(fi->cols[i].s_min);
        free(fi->cols[i].s_max);
    }
    free(fi->cols);
    fi->cols = NULL;
    fi->ncols = 0;
}

/* ---- value kinds ----------------------------------------------------- */

/* How min/max compare: by the physical value, honouring the sort order the
 * logical type defines. */
enum { SK_BOOL, SK_I32, SK_I64, SK_F32, SK_F64, SK_BYTES, SK_DEC_FLBA };

typedef struct acc {
    int64_t nulls, nvals, nans, bytes;
    bool    has, nan;
    int64_t imin, imax;
    double  dmin, dmax;
    cf_buf  smin, smax;
} acc;

typedef struct dslot {
    uint32_t ent;                  /* entry + 1; 0 = empty */
    uint32_t hash;
} dslot;

typedef struct colw {
    cf_type  type;
    int      ptype, type_len, sk;
    int16_t  max_def, max_rep;
    char   **path;
    int      npath;

    /* current page */
    cf_buf   def, rep;             /* uint32 levels */
    size_t   page_n;               /* level entries */
    cf_buf   vals;                 /* plain-encoded values (bool: 0/1 bytes) */
    cf_buf   idx;                  /* uint32 dictionary indices */
    bool     page_dict;

    /* dictionary of the current chunk */
    bool     dict_on;              /* still encoding with the dictionary */
    bool     dict_dead;            /* fell back: plain for the rest of the file */
    dslot   *slots;
    size_t   nslots;
    uint32_t *ent_off, *ent_len;
    size_t   ndict, ent_alloc;
    cf_buf   dict_keys;
    size_t   dict_bytes;           /* plain-encoded size of the dictionary */
    size_t   dict_seen;            /* values looked up in this dictionary */
    uint32_t dict_last;            /* entry of the previous value: runs skip the hash */

    /* current chunk */
    cf_buf   chunk;                /* finished pages, compressed, with headers */
    int64_t  chunk_uncomp, chunk_values;
    int64_t  rg_records;           /* tree writer: entries with rep == 0 this row group */
    bool     used_dict_pages, used_plain_pages;
    acc      ca, fa;               /* chunk and file statistics */
} colw;

struct cf_pq_writer {
    cf_store   *st;
    cf_store_file *f;              /* NULL once finished or before open_file */
    char       *path;
    int64_t     pos;
    cf_pq_options o;
    int         codec;
    const cf_schema *flat;
    const cf_pq_node *root;
    int         ncols;
    colw       *cols;
    int64_t     rg_rows;           /* rows buffered in the current row group */
    int64_t     num_rows;
    cf_buf      rg_meta;           /* serialized RowGroup structs */
    int         nrg;
    cf_buf      page, comp, hdr;   /* scratch */
    cf_pq_codec_ctx *cc;
};

/* ---- small helpers --------------------------------------------------- */

static int write_all(cf_pq_writer *w, const void *p, size_t n, cf_err *err)
{
    if (cf_store_file_write(w->f, p, n, err))
        return -1;
    w->pos += (int64_t)n;
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static int decimal_flba_len(int precision)
{
    __int128 p10 = 1;
    for (int i = 0; i < precision; i++)
        p10 *= 10;
    for (int n = 1; n < 16; n++) {     /* 16 bytes hold any p <= 38 */
        __int128 max = (((__int128)1) << (8 * n - 1)) - 1;
        if (max >= p10 - 1)
            return n;
    }
    return 16;
}

/* Physical type, length and stats kind of a cdcflow type. */
static int map_type(cf_type t, int *ptype, int *type_len, int *sk, cf_err *err)
{
    *type_len = 0;
    switch (t.id) {
    case CF_T_BOOL: *ptype = PQ_BOOLEAN; *sk = SK_BOOL; return 0;
    case CF_T_INT32:
    case CF_T_DATE: *ptype = PQ_INT32; *sk = SK_I32; return 0;
    case CF_T_INT64:
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
    case CF_T_TIME: *ptype = PQ_INT64; *sk = SK_I64; return 0;
    case CF_T_FLOAT: *ptype = PQ_FLOAT; *sk = SK_F32; return 0;
    case CF_T_DOUBLE: *ptype = PQ_DOUBLE; *sk = SK_F64; return 0;
    case CF_T_STRING:
    case CF_T_BINARY: *ptype = PQ_BYTE_ARRAY; *sk = SK_BYTES; return 0;
    case CF_T_UUID: *ptype = PQ_FIXED_LEN_BYTE_ARRAY; *type_len = 16; *sk = SK_BYTES; return 0;
    case CF_T_DECIMAL:
        if (t.precision < 1 || t.precision > 38 || t.scale < 0 || t.scale > t.precision)
            return cf_err_set(err, CF_E_ARG, "decimal(%d,%d) is not writable", t.precision, t.scale);
        if (t.precision <= 9) {
            *ptype = PQ_INT32; *sk = SK_I32;
        } else if (t.precision <= 18) {
            *ptype = PQ_INT64; *sk = SK_I64;
        } else {
            *ptype = PQ_FIXED_LEN_BYTE_ARRAY; *sk = SK_DEC_FLBA;
            *type_len = decimal_flba_len(t.precision);
        }
        return 0;
    }
    return cf_err_set(err, CF_E_UNSUPPORTED, "type %d has no parquet mapping", (int)t.id);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int uuid_to_bytes(const uint8_t *s, size_t n, uint8_t out[16], cf_err *err)
{
    int k = 0;
    if (n != 36)
        goto bad;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                goto bad;
            continue;
        }
        int h = hexval(s[i]), l;
        if (h < 0 || i + 1 >= 36 || (l = hexval(s[i + 1])) < 0)
            goto bad;
        out[k++] = (uint8_t)(h << 4 | l);
        i++;
    }
    if (k == 16)
        return 0;
bad:
    return cf_err_set(err, CF_E_TYPE, "'%.*s' is not a UUID", (int)(n > 40 ? 40 : n), (const char *)s);
}

/* Parse a decimal string into its unscaled value at `scale`. */
static int parse_decimal(const uint8_t *s, size_t n, int precision, int scale, __int128 *out,
                         cf_err *err)
{
    __int128 v = 0, lim = 1;
    size_t i = 0;
    int frac = -1, digits = 0;
    bool neg = false;

    for (int k = 0; k < precision; k++)
        lim *= 10;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == n)
        goto bad;
    for (; i < n; i++) {
        if (s[i] == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            goto bad;
        if (frac >= 0 && frac >= scale) {
            if (s[i] != '0')       /* would need rounding: refuse */
                goto bad;
            continue;
        }
        if (frac >= 0)
            frac++;
        v = v * 10 + (s[i] - '0');
        if (v && ++digits > precision)    /* significant digits only */
            goto bad;
    }
    if (digits + scale - (frac < 0 ? 0 : frac) > precision)   /* keeps v * 10^k in range */
        goto bad;
    for (int k = frac < 0 ? 0 : frac; k < scale; k++)
        v *= 10;
    if (v >= lim)
        goto bad;
    *out = neg ? -v : v;
    return 0;
bad:
    return cf_err_set(err, CF_E_TYPE, "'%.*s' is not a decimal(%d,%d)",
                      (int)(n > 60 ? 60 : n), (const char *)s, precision, scale);
}

/* ---- statistics ------------------------------------------------------ */

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn, bool sign)
{
    size_t n = an < bn ? an : bn;
    if (sign && n) {            /* two's complement big-endian of equal length */
        int x = (a[0] ^ 0x80) - (b[0] ^ 0x80);
        if (x)
            return x;
        int c = memcmp(a + 1, b + 1, n - 1);
        return c ? c : (an > bn) - (an < bn);
    }
    int c = n ? memcmp(a, b, n) : 0;
    return c ? c : (an > bn) - (an < bn);
}

static int acc_set(cf_buf *b, const uint8_t *p, size_t n)
{
    b->len = 0;
    return cf_buf_append(b, p, n, NULL);
}

/* Count one non-null value into the stats. */
static inline __attribute__((always_inline)) void acc_value(acc *a, int sk, const uint8_t *k, size_t n)
{
    switch (sk) {
    case SK_BOOL:
    case SK_I32:
    case SK_I64: {
        int64_t v;
        if (sk == SK_BOOL) {
            v = k[0] != 0;
        } else if (sk == SK_I32) {
            int32_t x;
            memcpy(&x, k, 4);
            v = x;
        } else {
            memcpy(&v, k, 8);
        }
        if (!a->has) {
            a->imin = a->imax = v;
            a->has = true;
        } else if (v < a->imin) {
            a->imin = v;
        } else if (v > a->imax) {
            a->imax = v;
        }
        return;
    }
    case SK_F32:
    case SK_F64: {
        double v;
        if (sk == SK_F32) {
            float f;
            memcpy(&f, k, 4);
            v = f;
        } else {
            memcpy(&v, k, 8);
        }
        if (isnan(v)) {           /* counted per row by put_value(): this may run per dictionary entry */
            a->nan = true;
            return;
        }
        if (!a->has) {
            a->dmin = a->dmax = v;
            a->has = true;
        } else if (v < a->dmin) {
            a->dmin = v;
        } else if (v > a->dmax) {
            a->dmax = v;
        }
        return;
    }
    default: {
        bool sign = sk == SK_DEC_FLBA;
        if (!a->has) {
            if (acc_set(&a->smin, k, n) || acc_set(&a->smax, k, n))
                return;      /* out of memory: stats stay absent */
            a->has = true;
        } else if (bytes_cmp(k, n, a->smin.data, a->smin.len, sign) < 0) {
            if (acc_set(&a->smin, k, n))
                a->has = false;
        } else if (bytes_cmp(k, n, a->smax.data, a->smax.len, sign) > 0) {
            if (acc_set(&a->smax, k, n))
                a->has = false;
        }
    }
    }
}

static void acc_merge(acc *to, const acc *from, int sk)
{
    to->nulls += from->nulls;
    to->nvals += from->nvals;
    to->nans += from->nans;
    to->bytes += from->bytes;
    to->nan |= from->nan;
    if (!from->has)
        return;
    switch (sk) {
    case SK_BOOL:
    case SK_I32:
    case SK_I64:
        if (!to->has || from->imin < to->imin)
            to->imin = from->imin;
        if (!to->has || from->imax > to->imax)
            to->imax = from->imax;
        to->has = true;
        break;
    case SK_F32:
    case SK_F64:
        if (!to->has || from->dmin < to->dmin)
            to->dmin = from->dmin;
        if (!to->has || from->dmax > to->dmax)
            to->dmax = from->dmax;
        to->has = true;
        break;
    default:
        acc_value(to, sk, from->smin.data, from->smin.len);
        acc_value(to, sk, from->smax.data, from->smax.len);
    }
}

static void acc_reset(acc *a)
{
    cf_buf smin = a->smin, smax = a->smax;
    memset(a, 0, sizeof *a);
    smin.len = smax.len = 0;
    a->smin = smin;
    a->smax = smax;
}

/* Plain encoding of a stats bound. */
static size_t acc_bound(const acc *a, int sk, bool max, uint8_t tmp[8], const uint8_t **p)
{
    *p = tmp;
    switch (sk) {
    case SK_BOOL: tmp[0] = (uint8_t)(max ? a->imax : a->imin); return 1;
    case SK_I32: { int32_t x = (int32_t)(max ? a->imax : a->imin); memcpy(tmp, &x, 4); return 4; }
    case SK_I64: memcpy(tmp, max ? &a->imax : &a->imin, 8); return 8;
    case SK_F32:
    case SK_F64: {
        /* Zero bounds are written as -0 (min) and +0 (max): the spec's
         * rule, since either zero may be in the data. */
        double d = max ? a->dmax : a->dmin;
        if (d == 0)
            d = max ? 0.0 : -0.0;
        if (sk == SK_F64) {
            memcpy(tmp, &d, 8);
            return 8;
        }
        float f = (float)d;
        memcpy(tmp, &f, 4);
        return 4;
    }
    default:
        *p = max ? a->smax.data : a->smin.data;
        return max ? a->smax.len : a->smin.len;
    }
}

static void write_stats(cf_tw *t, int16_t id, const acc *a, int sk, bool legacy)
{
    uint8_t t1[8], t2[8];
    const uint8_t *pmin, *pmax;
    size_t nmin = 0, nmax = 0;
    bool mm = a->has && !a->nan;

    /* Like arrow's max_statistics_size: huge bounds (JSON blobs) would bloat
     * every footer for no pruning value. */
    if (mm && (a->smin.len > MAX_STAT_BYTES || a->smax.len > MAX_STAT_BYTES))
        mm = false;
    cf_tw_begin(t, id);
    if (mm) {
        nmin = acc_bound(a, sk, false, t1, &pmin);
        nmax = acc_bound(a, sk, true, t2, &pmax);
        if (legacy) {
            cf_tw_bin(t, 1, pmax, nmax);
            cf_tw_bin(t, 2, pmin, nmin);
        }
    }
    cf_tw_i64(t, 3, a->nulls);
    if (mm) {
        cf_tw_bin(t, 5, pmax, nmax);
        cf_tw_bin(t, 6, pmin, nmin);
    }
    cf_tw_end(t);
}

/* ---- dictionary ------------------------------------------------------ */

static inline uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, x;
    uint32_t y, z;

    if (n >= 8) {
        /* whole words, then the last 8 bytes (overlapping): no byte loop */
        const uint8_t *last = p + n - 8;
        for (; p < last; p += 8) {
            memcpy(&x, p, 8);
            h = (h ^ x) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        memcpy(&x, last, 8);
        return mix64(h ^ x);
    }
    if (n >= 4) {
        memcpy(&y, p, 4);
        memcpy(&z, p + n - 4, 4);
        return mix64(h ^ ((uint64_t)y << 32 | z));
    }
    if (n)
        h ^= (uint64_t)p[0] << 16 | (uint64_t)p[n / 2] << 8 | p[n - 1];
    return mix64(h);
}

static inline bool key_eq(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t x, y;
    if (n == 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        return x == y;
    }
    return n == 0 || memcmp(a, b, n) == 0;
}

static void dict_clear(colw *c)
{
    if (c->slots)
        memset(c->slots, 0, sizeof *c->slots * c->nslots);
    c->ndict = 0;
    c->dict_keys.len = 0;
    c->dict_bytes = 0;
    c->dict_seen = 0;
}

static void dict_free(colw *c)
{
    free(c->slots);
    free(c->ent_off);
    free(c->ent_len);
    cf_buf_free(&c->dict_keys);
    c->slots = NULL;
    c->ent_off = c->ent_len = NULL;
    c->nslots = c->ndict = c->ent_alloc = 0;
}

static int dict_grow(colw *c, cf_err *err)
{
    size_t ns = c->nslots ? c->nslots * 2 : 1024;
    dslot *s = calloc(ns, sizeof *s);
    if (!s)
        return cf_err_set(err, CF_E_NOMEM, "out of memory growing a dictionary");
    for (size_t i = 0; i < c->nslots; i++) {
        size_t h;
        if (!c->slots[i].ent)
            continue;
        h = c->slots[i].hash & (ns - 1);
        while (s[h].ent)
            h = (h + 1) & (ns - 1);
        s[h] = c->slots[i];
    }
    free(c->slots);
    c->slots = s;
    c->nslots = ns;
    return 0;
}

/* Index of the key in the dictionary, inserting it; -1 with *err on
 * failure, -2 when the dictionary would outgrow its cap. */
static inline __attribute__((always_inline)) int64_t dict_put(colw *c, const uint8_t *k, size_t n, size_t max_bytes, cf_err *err)
{
    size_t h, mask;
    size_t plain = n + (c->ptype == PQ_BYTE_ARRAY ? 4 : 0);
    uint32_t hv;

    if (c->dict_last < c->ndict && c->ent_len[c->dict_last] == n &&
        key_eq(c->dict_keys.data + c->ent_off[c->dict_last], k, n))
        return c->dict_last;
    if ((c->ndict + 1) * 2 > c->nslots && dict_grow(c, err))
        return -1;
    mask = c->nslots - 1;
    hv = (uint32_t)hash_bytes(k, n);
    h = hv & mask;
    for (;;) {
        const dslot *sl = &c->slots[h];
        if (!sl->ent)
            break;
        if (sl->hash == hv) {
            uint32_t e = sl->ent - 1;
            if (c->ent_len[e] == n && key_eq(c->dict_keys.data + c->ent_off[e], k, n))
                return c->dict_last = e;
        }
        h = (h + 1) & mask;
    }
    if (c->dict_bytes + plain > max_bytes || c->dict_keys.len + n > UINT32_MAX)
        return -2;
    if (c->ndict == c->ent_alloc) {
        size_t na = c->ent_alloc ? c->ent_alloc * 2 : 1024;
        uint32_t *o = realloc(c->ent_off, na * sizeof *o), *l;
        if (!o)
            return cf_err_set(err, CF_E_NOMEM, "out of memory growing a dictionary");
        c->ent_off = o;
        if (!(l = realloc(c->ent_len, na * sizeof *l)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory growing a dictionary");
        c->ent_len = l;
        c->ent_alloc = na;
    }
    c->ent_off[c->ndict] = (uint32_t)c->dict_keys.len;
    c->ent_len[c->ndict] = (uint32_t)n;
    if (cf_buf_append(&c->dict_keys, k, n, err))
        return -1;
    c->slots[h].ent = (uint32_t)c->ndict + 1;
    c->slots[h].hash = hv;
    c->dict_last = (uint32_t)c->ndict;
    c->dict_bytes += plain;
    acc_value(&c->ca, c->sk, k, n);
    return (int64_t)c->ndict++;
}

/* ---- pages ----------------------------------------------------------- */

static size_t page_estimate(const colw *c)
{
    size_t lv = (c->max_def ? c->page_n / 4 : 0) + (c->max_rep ? c->page_n / 4 : 0);
    if (c->page_dict)
        return lv + (c->idx.len / 4) * (size_t)cf_pq_bit_width(c->ndict) / 8 + 1;
    return lv + c->vals.len;
}

/* A page ends near page_bytes, or at PAGE_MAX_VALUES entries: levels and
 * indices are buffered as 32-bit words, so a page of tiny bit-packed
 * values would otherwise hold millions of entries (and their memory). */
#define PAGE_MAX_VALUES 65536
static inline bool page_full(const cf_pq_writer *w, const colw *c)
{
    return c->page_n >= PAGE_MAX_VALUES || page_estimate(c) >= w->o.page_bytes;
}

static int put_levels(cf_buf *page, const cf_buf *lv, size_t n, int16_t maxv, cf_err *err)
{
    size_t at = page->len;
    uint8_t len4[4] = { 0 };
    if (cf_buf_append(page, len4, 4, err) ||
        cf_pq_rle_encode(page, (const uint32_t *)lv->data, n, cf_pq_bit_width((uint64_t)maxv), err))
        return -1;
    put_le32(page->data + at, (uint32_t)(page->len - at - 4));
    return 0;
}

/* Compress `w->page` and append header + body to the column chunk. */
static int emit_page(cf_pq_writer *w, colw *c, int page_type, int32_t nvals, int enc, cf_err *err)
{
    cf_tw t;
    if (w->page.len > INT32_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "parquet page over 2 GiB");
    if (cf_pq_compress(w->cc, w->codec, w->o.zstd_level, w->page.data, w->page.len, &w->comp, err))
        return -1;
    w->hdr.len = 0;
    cf_tw_init(&t, &w->hdr);
    cf_tw_i32(&t, 1, page_type);
    cf_tw_i32(&t, 2, (int32_t)w->page.len);
    cf_tw_i32(&t, 3, (int32_t)w->comp.len);
    if (page_type == PQ_PAGE_DICTIONARY) {
        cf_tw_begin(&t, 7);
        cf_tw_i32(&t, 1, nvals);
        cf_tw_i32(&t, 2, PQ_ENC_PLAIN);
        cf_tw_end(&t);
    } else {
        cf_tw_begin(&t, 5);
        cf_tw_i32(&t, 1, nvals);
        cf_tw_i32(&t, 2, enc);
        cf_tw_i32(&t, 3, PQ_ENC_RLE);
        cf_tw_i32(&t, 4, PQ_ENC_RLE);
        cf_tw_end(&t);
    }
    cf_tw_end(&t);
    if (t.failed)
        return cf_err_set(err, CF_E_NOMEM, "out of memory writing a page header");
    if (cf_buf_append(&c->chunk, w->hdr.data, w->hdr.len, err) ||
        cf_buf_append(&c->chunk, w->comp.data, w->comp.len, err))
        return -1;
    c->chunk_uncomp += (int64_t)(w->hdr.len + w->page.len);
    return 0;
}

static int finish_page(cf_pq_writer *w, colw *c, cf_err *err)
{
    cf_buf *pg = &w->page;
    int enc;

    if (c->page_n == 0)
        return 0;
    if (c->page_n > INT32_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "too many values in one page");
    pg->len = 0;
    if (c->max_rep && put_levels(pg, &c->rep, c->page_n, c->max_rep, err))
        return -1;
    if (c->max_def && put_levels(pg, &c->def, c->page_n, c->max_def, err))
        return -1;
    if (c->page_dict) {
        uint8_t bw = (uint8_t)cf_pq_bit_width(c->ndict > 1 ? c->ndict - 1 : 1);
        if (cf_buf_putc(pg, bw, err) ||
            cf_pq_rle_encode(pg, (const uint32_t *)c->idx.data, c->idx.len / 4, bw, err))
            return -1;
        enc = PQ_ENC_RLE_DICTIONARY;
        c->used_dict_pages = true;
    } else if (c->ptype == PQ_BOOLEAN) {
        size_t nb = (c->vals.len + 7) / 8;
        if (cf_buf_reserve(pg, nb, err))
            return -1;
        memset(pg->data + pg->len, 0, nb);
        for (size_t i = 0; i < c->vals.len; i++)
            if (c->vals.data[i])
                pg->data[pg->len + i / 8] |= (uint8_t)(1u << (i % 8));
        pg->len += nb;
        enc = PQ_ENC_PLAIN;
        c->used_plain_pages = true;
    } else {
        if (cf_buf_append(pg, c->vals.data, c->vals.len, err))
            return -1;
        enc = PQ_ENC_PLAIN;
        c->used_plain_pages = true;
    }
    if (emit_page(w, c, PQ_PAGE_DATA, (int32_t)c->page_n, enc, err))
        return -1;
    c->chunk_values += (int64_t)c->page_n;
    c->page_n = 0;
    c->def.len = c->rep.len = c->vals.len = c->idx.len = 0;
    c->page_dict = c->dict_on;
    return 0;
}

/* Add one non-null value (its physical bytes). */
static inline __attribute__((always_inline)) int put_value(cf_pq_writer *w, colw *c, const uint8_t *k, size_t n, cf_err *err)
{
    c->ca.nvals++;
    if (c->sk == SK_F64 || c->sk == SK_F32) {
        double v;
        if (c->sk == SK_F32) {
            float f;
            memcpy(&f, k, 4);
            v = f;
        } else {
            memcpy(&v, k, 8);
        }
        if (isnan(v))
            c->ca.nans++;
    }
    if (c->dict_on) {
        int64_t e = dict_put(c, k, n, w->o.dict_max_bytes, err);
        c->dict_seen++;
        if (e >= 0) {
            uint32_t u = (uint32_t)e;
            if (c->idx.alloc - c->idx.len >= 4) {     /* usually reserved by the caller */
                memcpy(c->idx.data + c->idx.len, &u, 4);
                c->idx.len += 4;
                return 0;
            }
            return cf_buf_append(&c->idx, &u, 4, err);
        }
        if (e == -1)
            return -1;
        /* Dictionary full: close the dictionary-encoded page, go plain. */
        if (finish_page(w, c, err))
            return -1;
        c->dict_on = false;
        c->dict_dead = true;
        c->page_dict = false;
    }
    acc_value(&c->ca, c->sk, k, n);
    if (c->ptype == PQ_BYTE_ARRAY) {
        if (n > INT32_MAX)
            return cf_err_set(err, CF_E_TOOBIG, "value over 2 GiB");
        if (cf_buf_reserve(&c->vals, n + 4, err))
            return -1;
        put_le32(c->vals.data + c->vals.len, (uint32_t)n);
        c->vals.len += 4;
    } else if (c->vals.alloc - c->vals.len < n && cf_buf_reserve(&c->vals, n, err)) {
        return -1;
    }
    if (n)
        memcpy(c->vals.data + c->vals.len, k, n);
    c->vals.len += n;
    return 0;
}

static int push_level(cf_buf *b, uint32_t v, cf_err *err)
{
    return cf_buf_append(b, &v, 4, err);
}

/* ---- column chunk and row group -------------------------------------- */

static int chunk_flush(cf_pq_writer *w, colw *c, cf_tw *t, int64_t *rg_uncomp, cf_err *err)
{
    int64_t start = w->pos, dict_off = -1, data_off;
    int64_t total_uncomp;
    size_t total_comp;
    int encs[4], nenc = 0;

    if (finish_page(w, c, err))
        return -1;
    if (c->used_dict_pages) {
        cf_buf *pg = &w->page;
        pg->len = 0;
        for (size_t e = 0; e < c->ndict; e++) {
            if (c->ptype == PQ_BYTE_ARRAY) {
                uint8_t l4[4];
                put_le32(l4, c->ent_len[e]);
                if (cf_buf_append(pg, l4, 4, err))
                    return -1;
            }
            if (cf_buf_append(pg, c->dict_keys.data + c->ent_off[e], c->ent_len[e], err))
                return -1;
        }
        /* The dictionary page goes first: prepend it via a swap. */
        cf_buf body = c->chunk;
        cf_buf_init(&c->chunk, 0);
        if (emit_page(w, c, PQ_PAGE_DICTIONARY, (int32_t)c->ndict, PQ_ENC_PLAIN, err)) {
            cf_buf_free(&body);
            return -1;
        }
        dict_off = start;
        data_off = start + (int64_t)c->chunk.len;
        if (write_all(w, c->chunk.data, c->chunk.len, err) ||
            write_all(w, body.data, body.len, err)) {
            cf_buf_free(&body);
            return -1;
        }
        cf_buf_free(&c->chunk);
        c->chunk = body;
    } else {
        data_off = start;
        if (write_all(w, c->chunk.data, c->chunk.len, err))
            return -1;
    }
    total_comp = (size_t)(w->pos - start);
    total_uncomp = c->chunk_uncomp;
    c->ca.bytes = (int64_t)total_comp;
    *rg_uncomp += total_uncomp;

    if (c->used_plain_pages)
        encs[nenc++] = PQ_ENC_PLAIN;
    encs[nenc++] = PQ_ENC_RLE;
    if (c->used_dict_pages) {
        if (!c->used_plain_pages)
            encs[nenc++] = PQ_ENC_PLAIN;   /* the dictionary page */
        encs[nenc++] = PQ_ENC_RLE_DICTIONARY;
    }

    /* ColumnChunk */
    cf_tw_begin(t, 0);
    cf_tw_i64(t, 2, data_off);
    cf_tw_begin(t, 3);
    cf_tw_i32(t, 1, c->ptype);
    cf_tw_list(t, 2, TC_I32, (size_t)nenc);
    for (int i = 0; i < nenc; i++)
        cf_tw_raw_zigzag(t, encs[i]);
    cf_tw_list(t, 3, TC_BINARY, (size_t)c->npath);
    for (int i = 0; i < c->npath; i++)
        cf_tw_raw_bin(t, c->path[i], strlen(c->path[i]));
    cf_tw_i32(t, 4, w->codec);
    cf_tw_i64(t, 5, c->chunk_values);
    cf_tw_i64(t, 6, total_uncomp);
    cf_tw_i64(t, 7, (int64_t)total_comp);
    cf_tw_i64(t, 9, data_off);
    if (dict_off >= 0)
        cf_tw_i64(t, 11, dict_off);
    write_stats(t, 12, &c->ca, c->sk, c->sk != SK_BYTES);
    cf_tw_end(t);
    cf_tw_end(t);

    acc_merge(&c->fa, &c->ca, c->sk);
    acc_reset(&c->ca);
    c->chunk.len = 0;
    c->chunk_uncomp = c->chunk_values = 0;
    c->used_dict_pages = c->used_plain_pages = false;
    dict_clear(c);
    c->dict_on = w->o.dictionary && !c->dict_dead && c->ptype != PQ_BOOLEAN;
    c->page_dict = c->dict_on;
    return 0;
}

static int flush_row_group(cf_pq_writer *w, int64_t nrows, cf_err *err)
{
    cf_buf meta;
    cf_tw t;
    int64_t start = w->pos, total = 0;

    if (nrows == 0)
        return 0;
    cf_buf_init(&meta, 0);
    cf_tw_init(&t, &meta);
    cf_tw_begin(&t, 0);
    cf_tw_list(&t, 1, TC_STRUCT, (size_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        if (chunk_flush(w, &w->cols[i], &t, &total, err)) {
            cf_buf_free(&meta);
            return -1;
        }
    }
    cf_tw_i64(&t, 2, total);
    cf_tw_i64(&t, 3, nrows);
    cf_tw_i64(&t, 5, start);
    cf_tw_i64(&t, 6, w->pos - start);
    cf_tw_field(&t, 7, TC_I16);
    cf_tw_raw_zigzag(&t, w->nrg);
    cf_tw_end(&t);
    if (t.failed || cf_buf_append(&w->rg_meta, meta.data, meta.len, err)) {
        cf_buf_free(&meta);
        return cf_err_set(err, CF_E_NOMEM, "out of memory writing row group metadata");
    }
    cf_buf_free(&meta);
    w->nrg++;
    w->num_rows += nrows;
    w->rg_rows = 0;
    return 0;
}

/* ---- schema ---------------------------------------------------------- */

static void schema_leaf(cf_tw *t, const char *name, cf_type ty, int rep, int field_id,
                        bool ids)
{
    int ptype, tlen, sk;

    if (map_type(ty, &ptype, &tlen, &sk, NULL))
        ptype = PQ_BYTE_ARRAY;     /* checked at open */
    cf_tw_begin(t, 0);
    cf_tw_i32(t, 1, ptype);
    if (tlen)
        cf_tw_i32(t, 2, tlen);
    cf_tw_i32(t, 3, rep);
    cf_tw_str(t, 4, name);
    switch (ty.id) {
    case CF_T_STRING: cf_tw_i32(t, 6, PQ_CT_UTF8); break;
    case CF_T_DATE: cf_tw_i32(t, 6, PQ_CT_DATE); break;
    case CF_T_TIMESTAMP: cf_tw_i32(t, 6, PQ_CT_TIMESTAMP_MICROS); break;
    case CF_T_DECIMAL:
        cf_tw_i32(t, 6, PQ_CT_DECIMAL);
        cf_tw_i32(t, 7, ty.scale);
        cf_tw_i32(t, 8, ty.precision);
        break;
    default: break;
    }
    if (ids && field_id)
        cf_tw_i32(t, 9, field_id);
    switch (ty.id) {   /* LogicalType union */
    case CF_T_STRING:
        cf_tw_begin(t, 10); cf_tw_begin(t, PQ_LT_STRING); cf_tw_end(t); cf_tw_end(t);
        break;
    case CF_T_DATE:
        cf_tw_begin(t, 10); cf_tw_begin(t, PQ_LT_DATE); cf_tw_end(t); cf_tw_end(t);
        break;
    case CF_T_UUID:
        cf_tw_begin(t, 10); cf_tw_begin(t, PQ_LT_UUID); cf_tw_end(t); cf_tw_end(t);
        break;
    case CF_T_DECIMAL:
        cf_tw_begin(t, 10);
        cf_tw_begin(t, PQ_LT_DECIMAL);
        cf_tw_i32(t, 1, ty.scale);
        cf_tw_i32(t, 2, ty.precision);
        cf_tw_end(t);
        cf_tw_end(t);
        break;
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
    case CF_T_TIME:
        cf_tw_begin(t, 10);
        cf_tw_begin(t, ty.id == CF_T_TIME ? PQ_LT_TIME : PQ_LT_TIMESTAMP);
        /* Iceberg: time is without zone; timestamp is UTC, timestamp_ntz not */
        cf_tw_bool(t, 1, ty.id == CF_T_TIMESTAMP);
        cf_tw_begin(t, 2);
        cf_tw_begin(t, PQ_UNIT_MICROS);
        cf_tw_end(t);
        cf_tw_end(t);
        cf_tw_end(t);
        cf_tw_end(t);
        break;
    default:
        break;
    }
    cf_tw_end(t);
}

static int count_nodes(const cf_pq_node *n, int depth, cf_err *err)
{
    int k = 1;
    if (depth > 32)
        return cf_err_set(err, CF_E_ARG, "schema nested deeper than 32");
    if (!n->name || !*n->name)
        return cf_err_set(err, CF_E_ARG, "schema node without a name");
    for (int i = 0; i < n->nchildren; i++) {
        int c = count_nodes(&n->children[i], depth + 1, err);
        if (c < 0)
            return -1;
        k += c;
    }
    return k;
}

static void schema_tree(cf_tw *t, const cf_pq_node *n, bool is_root, bool ids)
{
    if (!n->nchildren && !is_root) {
        schema_leaf(t, n->name, n->type, (int)n->rep, n->field_id, ids);
        return;
    }
    cf_tw_begin(t, 0);
    if (!is_root)
        cf_tw_i32(t, 3, (int)n->rep);
    cf_tw_str(t, 4, n->name);
    cf_tw_i32(t, 5, n->nchildren);
    if (n->logical && strcmp(n->logical, "list") == 0)
        cf_tw_i32(t, 6, PQ_CT_LIST);
    else if (n->logical && strcmp(n->logical, "map") == 0)
        cf_tw_i32(t, 6, PQ_CT_MAP);
    if (!is_root && ids && n->field_id)
        cf_tw_i32(t, 9, n->field_id);
    if (n->logical && (strcmp(n->logical, "list") == 0 || strcmp(n->logical, "map") == 0)) {
        cf_tw_begin(t, 10);
        cf_tw_begin(t, strcmp(n->logical, "list") == 0 ? PQ_LT_LIST : PQ_LT_MAP);
        cf_tw_end(t);
        cf_tw_end(t);
    }
    cf_tw_end(t);
    for (int i = 0; i < n->nchildren; i++)
        schema_tree(t, &n->children[i], false, ids);
}

/* ---- open / close ---------------------------------------------------- */

static void colw_free(colw *c)
{
    cf_buf_free(&c->def);
    cf_buf_free(&c->rep);
    cf_buf_free(&c->vals);
    cf_buf_free(&c->idx);
    cf_buf_free(&c->chunk);
    cf_buf_free(&c->ca.smin);
    cf_buf_free(&c->ca.smax);
    cf_buf_free(&c->fa.smin);
    cf_buf_free(&c->fa.smax);
    dict_free(c);
    for (int i = 0; i < c->npath; i++)
        free(c->path[i]);
    free(c->path);
}

static void writer_free(cf_pq_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->ncols; i++)
        colw_free(&w->cols[i]);
    free(w->cols);
    cf_buf_free(&w->rg_meta);
    cf_buf_free(&w->page);
    cf_buf_free(&w->comp);
    cf_buf_free(&w->hdr);
    cf_pq_codec_free(w->cc);
    free(w->path);
    free(w);
}

void cf_pq_writer_abort(cf_pq_writer *w)
{
    if (!w)
        return;
    cf_store_file_discard(w->f);
    w->f = NULL;
    writer_free(w);
}

static cf_pq_writer *writer_new(cf_store *st, const char *path, const cf_pq_options *o, int ncols,
                               cf_err *err)
{
    cf_pq_writer *w = calloc(1, sizeof *w);

    if (!w) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    w->st = st;
    if (o)
        w->o = *o;
    else
        cf_pq_options_default(&w->o);
    if (w->o.page_bytes == 0)
        w->o.page_bytes = (size_t)1 << 20;
    if (w->o.row_group_bytes == 0)
        w->o.row_group_bytes = (size_t)128 << 20;
    if (w->o.dict_max_bytes == 0)
        w->o.dict_max_bytes = (size_t)1 << 20;
    if (w->o.zstd_level == 0)
        w->o.zstd_level = 3;
    switch (w->o.codec) {
    case CF_CODEC_ZSTD: w->codec = PQ_CODEC_ZSTD; break;
    case CF_CODEC_SNAPPY: w->codec = PQ_CODEC_SNAPPY; break;
    case CF_CODEC_NONE: w->codec = PQ_CODEC_UNCOMPRESSED; break;
    default:
        cf_err_set(err, CF_E_ARG, "unknown codec %d", (int)w->o.codec);
        goto fail;
    }
    w->ncols = ncols;
    w->cols = calloc((size_t)(ncols ? ncols : 1), sizeof *w->cols);
    w->path = strdup(path);
    w->cc = cf_pq_codec_new();
    if (!w->cols || !w->path || !w->cc) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    return w;
fail:
    writer_free(w);
    return NULL;
}

static int col_init(cf_pq_writer *w, colw *c, cf_type ty, int16_t max_def, int16_t max_rep,
                    const char *const *path, int npath, cf_err *err)
{
    if (map_type(ty, &c->ptype, &c->type_len, &c->sk, err))
        return -1;
    c->type = ty;
    c->max_def = max_def;
    c->max_rep = max_rep;
    c->dict_on = w->o.dictionary && c->ptype != PQ_BOOLEAN;
    c->page_dict = c->dict_on;
    if (!(c->path = calloc((size_t)npath, sizeof *c->path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < npath; i++) {
        if (!(c->path[i] = strdup(path[i])))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        c->npath = i + 1;
    }
    return 0;
}

static int open_file(cf_pq_writer *w, cf_err *err)
{
    if (!(w->f = cf_store_file_create(w->st, w->path, err)))
        return -1;
    return write_all(w, "PAR1", 4, err);
}

cf_pq_writer *cf_pq_writer_open(cf_store *st, const char *path, const cf_schema *s,
                                const cf_pq_options *o, cf_err *err)
{
    cf_pq_writer *w;

    if (!s || s->nfields <= 0) {
        cf_err_set(err, CF_E_ARG, "parquet schema has no columns");
        return NULL;
    }
    if (!(w = writer_new(st, path, o, s->nfields, err)))
        return NULL;
    w->flat = s;
    for (int i = 0; i < s->nfields; i++) {
        const char *p[1] = { s->fields[i].name };
        if (col_init(w, &w->cols[i], s->fields[i].type, s->fields[i].nullable ? 1 : 0, 0, p, 1,
                     err)) {
            cf_err_wrap(err, "column %s", s->fields[i].name);
            writer_free(w);
            return NULL;
        }
    }
    if (open_file(w, err)) {
        cf_pq_writer_abort(w);
        return NULL;
    }
    return w;
}

typedef struct walk {
    cf_pq_writer *w;
    const char   *names[40];
    int           leaf;
} walk;

static int tree_leaves(walk *k, const cf_pq_node *n, int depth, int16_t d, int16_t r, cf_err *err)
{
    k->names[depth] = n->name;
    if (n->rep == CF_PQ_OPTIONAL)
        d++;
    if (n->rep == CF_PQ_REPEATED) {
        d++;
        r++;
    }
    if (!n->nchildren) {
        if (k->w && col_init(k->w, &k->w->cols[k->leaf], n->type, d, r, k->names + 1, depth, err))
            return cf_err_wrap(err, "leaf %s", n->name);
        k->leaf++;
        return 0;
    }
    for (int i = 0; i < n->nchildren; i++)
        if (tree_leaves(k, &n->children[i], depth + 1, d, r, err))
            return -1;
    return 0;
}

cf_pq_writer *cf_pq_writer_open_tree(cf_store *st, const char *path, const cf_pq_node *root,
                                     const cf_pq_options *o, cf_err *err)
{
    walk k = { 0 };
    cf_pq_writer *w;

    if (!root || root->nchildren <= 0) {
        cf_err_set(err, CF_E_ARG, "parquet tree schema needs a root group with children");
        return NULL;
    }
    if (count_nodes(root, 0, err) < 0)
        return NULL;
    /* first pass counts leaves, second fills them; root's own level is not counted */
    for (int i = 0; i < root->nchildren; i++)
        tree_leaves(&k, &root->children[i], 1, 0, 0, err);
    if (!(w = writer_new(st, path, o, k.leaf, err)))
        return NULL;
    w->root = root;
    k.w = w;
    k.leaf = 0;
    k.names[0] = root->name;
    for (int i = 0; i < root->nchildren; i++)
        if (tree_leaves(&k, &root->children[i], 1, 0, 0, err)) {
            writer_free(w);
            return NULL;
        }
    if (open_file(w, err)) {
        cf_pq_writer_abort(w);
        return NULL;
    }
    return w;
}

/* ---- writing values -------------------------------------------------- */

/* cf_col_bytes, but never NULL + 0 (a column of empty strings has no data). */
static const uint8_t *col_bytes(const cf_column *v, size_t i, size_t *len)
{
    *len = v->offs[i + 1] - v->offs[i];
    return *len ? v->data.data + v->offs[i] : (const uint8_t *)"";
}

/* Physical bytes of value `i` of column `v` for column writer c; tmp holds
 * converted values. */
static int value_bytes(const colw *c, const cf_column *v, size_t i, uint8_t tmp[16],
                       const uint8_t **p, size_t *n, cf_err *err)
{
    switch (c->type.id) {
    case CF_T_STRING:
    case CF_T_BINARY:
        *n = v->offs[i + 1] - v->offs[i];
        *p = *n ? v->data.data + v->offs[i] : (const uint8_t *)"";   /* data may be NULL */
        return 0;
    case CF_T_UUID: {
        size_t len;
        const uint8_t *s = col_bytes(v, i, &len);
        *p = tmp;
        *n = 16;
        return uuid_to_bytes(s, len, tmp, err);
    }
    case CF_T_DECIMAL:
        if (c->ptype == PQ_FIXED_LEN_BYTE_ARRAY) {
            size_t len;
            const uint8_t *s = col_bytes(v, i, &len);
            __int128 x = 0;
            if (parse_decimal(s, len, c->type.precision, c->type.scale, &x, err))
                return -1;
            for (int b = c->type_len - 1; b >= 0; b--) {
                tmp[b] = (uint8_t)x;
                x >>= 8;
            }
            *p = tmp;
            *n = (size_t)c->type_len;
            return 0;
        }
        if (c->ptype == PQ_INT32) {
            int32_t x = (int32_t)((const int64_t *)v->vals)[i];
            memcpy(tmp, &x, 4);
            *p = tmp;
            *n = 4;
            return 0;
        }
        *p = (const uint8_t *)v->vals + i * 8;
        *n = 8;
        return 0;
    case CF_T_BOOL:
        *p = (const uint8_t *)v->vals + i;
        *n = 1;
        return 0;
    case CF_T_INT32:
    case CF_T_DATE:
    case CF_T_FLOAT:
        *p = (const uint8_t *)v->vals + i * 4;
        *n = 4;
        return 0;
    default:
        *p = (const uint8_t *)v->vals + i * 8;
        *n = 8;
        return 0;
    }
}

static bool vals_compatible(const colw *c, const cf_column *v)
{
    return v->type.id == c->type.id &&
           cf_type_is_varlen(v->type) == cf_type_is_varlen(c->type) &&
           (v->offs != NULL || v->vals != NULL || v->n == 0);
}

static size_t buffered_bytes(const cf_pq_writer *w)
{
    size_t t = 0;
    for (int i = 0; i < w->ncols; i++) {
        const colw *c = &w->cols[i];
        t += (size_t)c->chunk_uncomp + page_estimate(c) + c->dict_bytes;
    }
    return t;
}

/* PLAIN fixed-width values straight from the batch (the bulk of a file
 * once ids and timestamps left the dictionary): one tight loop per type,
 * statistics inline.  Only for types stored as-is (no conversion). */
#define PLAIN_LOOP(T, STATS)                                                   \
    do {                                                                       \
        const T *src = (const T *)v->vals;                                     \
        T *dst = (T *)(void *)(c->vals.data + c->vals.len);                    \
        size_t m = 0;                                                          \
        for (size_t k = 0; k < n; k++) {                                       \
            size_t i = rows ? rows[k] : first + k;                             \
            uint32_t ok = v->valid[i] != 0;                                    \
            if (def)                                                           \
                def[k] = ok;                                                   \
            if (!ok)                                                           \
                continue;                                                      \
            T x = src[i];                                                      \
            dst[m++] = x;                                                      \
            STATS;                                                             \
        }                                                                      \
        c->vals.len += m * sizeof(T);                                          \
        nvals = m;                                                             \
    } while (0)

#define ISTATS(x)                                                              \
    do {                                                                       \
        if (!a->has) { a->imin = a->imax = (x); a->has = true; }              \
        else if ((x) < a->imin) a->imin = (x);                                \
        else if ((x) > a->imax) a->imax = (x);                                \
    } while (0)

#define FSTATS(x)                                                              \
    do {                                                                       \
        double d_ = (double)(x);                                               \
        if (d_ != d_) { a->nan = true; a->nans++; }                            \
        else if (!a->has) { a->dmin = a->dmax = d_; a->has = true; }          \
        else if (d_ < a->dmin) a->dmin = d_;                                  \
        else if (d_ > a->dmax) a->dmax = d_;                                  \
    } while (0)

static bool plain_fast(const colw *c)
{
    if (c->dict_on)
        return false;
    switch (c->type.id) {
    case CF_T_INT64: case CF_T_TIMESTAMP: case CF_T_TIMESTAMP_NTZ: case CF_T_TIME:
    case CF_T_DOUBLE: case CF_T_INT32: case CF_T_DATE: case CF_T_FLOAT:
        return true;
    case CF_T_DECIMAL:
        return c->ptype == PQ_INT64;
    default:
        return false;
    }
}

static int flat_slice_plain(cf_pq_writer *w, colw *c, const cf_column *v, const uint32_t *rows,
                            size_t first, size_t n, cf_err *err)
{
    uint32_t *def = c->max_def ? (uint32_t *)(void *)(c->def.data + c->def.len) : NULL;
    acc *a = &c->ca;
    size_t nvals = 0;

    if (!c->max_def)
        for (size_t k = 0; k < n; k++)
            if (!v->valid[rows ? rows[k] : first + k])
                return cf_err_set(err, CF_E_TYPE, "null in required column %s", c->path[0]);
    switch (c->sk) {
    case SK_I64: PLAIN_LOOP(int64_t, ISTATS(x)); break;
    case SK_I32: PLAIN_LOOP(int32_t, ISTATS((int64_t)x)); break;
    case SK_F64: PLAIN_LOOP(double, FSTATS(x)); break;
    default: PLAIN_LOOP(float, FSTATS(x)); break;
    }
    if (def)
        c->def.len += n * 4;
    c->page_n += n;
    c->ca.nvals += (int64_t)nvals;
    c->ca.nulls += (int64_t)(n - nvals);
    c->used_plain_pages = true;
    if (page_full(w, c))
        return finish_page(w, c, err);
    return 0;
}

/* One slice of flat rows (row ids rows[0..n) or first..first+n) into c. */
static int flat_slice(cf_pq_writer *w, colw *c, const cf_column *v, const uint32_t *rows,
                      size_t first, size_t n, cf_err *err)
{
    uint8_t tmp[16];
    const uint8_t *p;
    size_t len;

    if (c->max_def && cf_buf_reserve(&c->def, n * 4, err))
        return -1;
    if (c->dict_on && cf_buf_reserve(&c->idx, n * 4, err))
        return -1;
    if (!c->dict_on && c->ptype != PQ_BYTE_ARRAY &&
        cf_buf_reserve(&c->vals, n * (size_t)(c->type_len ? c->type_len : 8), err))
        return -1;
    if (plain_fast(c))
        return flat_slice_plain(w, c, v, rows, first, n, err);
    for (size_t k = 0; k < n; k++) {
        size_t i = rows ? rows[k] : first + k;
        bool ok = v->valid[i] != 0;
        if (ok) {
            /* the common types need no conversion: skip value_bytes */
            switch (c->type.id) {
            case CF_T_INT64: case CF_T_TIMESTAMP: case CF_T_TIMESTAMP_NTZ: case CF_T_TIME:
            case CF_T_DOUBLE:
                p = (const uint8_t *)v->vals + i * 8;
                len = 8;
                break;
            case CF_T_INT32: case CF_T_DATE: case CF_T_FLOAT:
                p = (const uint8_t *)v->vals + i * 4;
                len = 4;
                break;
            case CF_T_STRING: case CF_T_BINARY:
                len = v->offs[i + 1] - v->offs[i];
                p = len ? v->data.data + v->offs[i] : (const uint8_t *)"";
                break;
            default:
                if (value_bytes(c, v, i, tmp, &p, &len, err))
                    return -1;
            }
            if (put_value(w, c, p, len, err))
                return -1;
        } else if (!c->max_def) {
            return cf_err_set(err, CF_E_TYPE, "null in required column %s", c->path[0]);
        } else {
            c->ca.nulls++;
        }
        if (c->max_def) {
            uint32_t d = ok;
            memcpy(c->def.data + c->def.len, &d, 4);   /* reserved above */
            c->def.len += 4;
        }
        c->page_n++;
    }
    /* Mostly distinct values (ids, timestamps) gain nothing from a
     * dictionary and pay a hash probe per value: give up early. */
    if (c->dict_on && c->dict_seen >= 16384 && c->ndict * 4 > c->dict_seen * 3) {
        if (finish_page(w, c, err))
            return -1;
        c->dict_on = false;
        c->dict_dead = true;
        c->page_dict = false;
    }
    if (page_full(w, c))
        return finish_page(w, c, err);
    return 0;
}

static int write_flat(cf_pq_writer *w, const cf_batch *b, const uint32_t *rows, size_t n,
                      cf_err *err)
{
    if (!w->flat)
        return cf_err_set(err, CF_E_ARG, "writer was opened for a nested schema");
    if (b->ncols != w->ncols)
        return cf_err_set(err, CF_E_ARG, "batch has %d columns, file has %d", b->ncols, w->ncols);
    for (int i = 0; i < w->ncols; i++)
        if (!vals_compatible(&w->cols[i], &b->cols[i]) || b->cols[i].n < b->nrows)
            return cf_err_set(err, CF_E_TYPE, "batch column %d does not match the file schema", i);
    if (rows)
        for (size_t k = 0; k < n; k++)
            if (rows[k] >= b->nrows)
                return cf_err_set(err, CF_E_ARG, "row %u out of range", rows[k]);
    for (size_t at = 0; at < n; at += SLICE_ROWS) {
        size_t m = n - at < SLICE_ROWS ? n - at : SLICE_ROWS;
        for (int i = 0; i < w->ncols; i++)
            if (flat_slice(w, &w->cols[i], &b->cols[i], rows ? rows + at : NULL, at, m, err)) {
                cf_err_wrap(err, "column %s", w->cols[i].path[0]);
                return -1;
            }
        w->rg_rows += (int64_t)m;
        if (buffered_bytes(w) >= w->o.row_group_bytes && flush_row_group(w, w->rg_rows, err))
            return -1;
    }
    return 0;
}

int cf_pq_writer_write(cf_pq_writer *w, const cf_batch *b, cf_err *err)
{
    return write_flat(w, b, NULL, b->nrows, err);
}

int cf_pq_writer_write_rows(cf_pq_writer *w, const cf_batch *b, const uint32_t *rows, size_t n,
                            cf_err *err)
{
    return write_flat(w, b, rows, n, err);
}

int cf_pq_writer_write_leaf(cf_pq_writer *w, int leaf, const int16_t *def, const int16_t *rep,
                            size_t nlevels, const cf_column *vals, cf_err *err)
{
    colw *c;
    size_t j = 0;
    uint8_t tmp[16];
    const uint8_t *p;
    size_t len;

    if (!w->root)
        return cf_err_set(err, CF_E_ARG, "writer was opened for a flat schema");
    if (leaf < 0 || leaf >= w->ncols)
        return cf_err_set(err, CF_E_ARG, "no leaf %d", leaf);
    c = &w->cols[leaf];
    if (vals && !vals_compatible(c, vals))
        return cf_err_set(err, CF_E_TYPE, "values for leaf %d have the wrong type", leaf);
    if (c->max_rep && !rep)
        return cf_err_set(err, CF_E_ARG, "leaf %d is repeated: repetition levels needed", leaf);
    for (size_t i = 0; i < nlevels; i++) {
        int16_t d = def ? def[i] : c->max_def;
        int16_t r = (rep && c->max_rep) ? rep[i] : 0;
        if (d < 0 || d > c->max_def || r < 0 || r > c->max_rep)
            return cf_err_set(err, CF_E_ARG, "leaf %d: level out of range at %zu", leaf, i);
        /* pages start at record boundaries so every reader agrees */
        if (r == 0 && page_full(w, c) && finish_page(w, c, err))
            return -1;
        if (d == c->max_def) {
            if (!vals || j >= vals->n)
                return cf_err_set(err, CF_E_ARG, "leaf %d: fewer values than levels say", leaf);
            if (value_bytes(c, vals, j++, tmp, &p, &len, err) || put_value(w, c, p, len, err))
                return -1;
        } else {
            c->ca.nulls++;
        }
        if ((c->max_def && push_level(&c->def, (uint32_t)d, err)) ||
            (c->max_rep && push_level(&c->rep, (uint32_t)r, err)))
            return -1;
        c->page_n++;
        c->rg_records += r == 0;
    }
    return 0;
}

int cf_pq_writer_end_row_group(cf_pq_writer *w, int64_t nrows, cf_err *err)
{
    if (!w->root)
        return cf_err_set(err, CF_E_ARG, "writer was opened for a flat schema");
    /* every leaf must describe the same records, or readers disagree */
    for (int i = 0; i < w->ncols; i++)
        if (w->cols[i].rg_records != nrows)
            return cf_err_set(err, CF_E_ARG, "leaf %s got %lld records, the row group has %lld",
                              w->cols[i].path[w->cols[i].npath - 1],
                              (long long)w->cols[i].rg_records, (long long)nrows);
    for (int i = 0; i < w->ncols; i++)
        w->cols[i].rg_records = 0;
    return flush_row_group(w, nrows, err);
}

/* ---- footer ---------------------------------------------------------- */

static void stats_out(const colw *c, cf_pq_stats *s)
{
    const acc *a = &c->fa;
    memset(s, 0, sizeof *s);
    s->null_count = a->nulls;
    s->value_count = a->nvals;
    s->nan_count = a->nans;
    s->compressed_bytes = a->bytes;
    if (!a->has || a->nan)
        return;
    switch (c->sk) {
    case SK_BOOL:
    case SK_I32:
    case SK_I64:
        s->i_min = a->imin;
        s->i_max = a->imax;
        break;
    case SK_F32:
    case SK_F64:
        s->d_min = a->dmin;
        s->d_max = a->dmax;
        break;
    default: {
        char buf[2][64];
        const uint8_t *src[2] = { a->smin.data, a->smax.data };
        size_t len[2] = { a->smin.len, a->smax.len };
        for (int k = 0; k < 2; k++) {
            if (c->sk == SK_DEC_FLBA) {
                len[k] = cf_pq_dec_format(cf_pq_dec_from_be(src[k], len[k]), c->type.scale, buf[k]);
                src[k] = (const uint8_t *)buf[k];
            } else if (c->type.id == CF_T_UUID && len[k] == 16) {
                const uint8_t *u = src[k];
                snprintf(buf[k], sizeof buf[k],
                         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                         u[12], u[13], u[14], u[15]);
                src[k] = (const uint8_t *)buf[k];
                len[k] = 36;
            }
        }
        s->s_min = malloc(len[0] + 1);
        s->s_max = malloc(len[1] + 1);
        if (!s->s_min || !s->s_max) {
            free(s->s_min);
            free(s->s_max);
            s->s_min = s->s_max = NULL;
            return;
        }
        if (len[0])
            memcpy(s->s_min, src[0], len[0]);
        if (len[1])
            memcpy(s->s_max, src[1], len[1]);
        s->s_min[len[0]] = s->s_max[len[1]] = '\0';
        s->s_min_len = len[0];
        s->s_max_len = len[1];
    }
    }
    s->has_minmax = true;
}

static int write_footer(cf_pq_writer *w, cf_err *err)
{
    cf_buf f;
    cf_tw t;
    uint8_t tail[8];
    int nelem;

    cf_buf_init(&f, 0);
    cf_tw_init(&t, &f);
    cf_tw_i32(&t, 1, 1);
    if (w->flat) {
        cf_tw_list(&t, 2, TC_STRUCT, (size_t)w->ncols + 1);
        cf_tw_begin(&t, 0);
        cf_tw_str(&t, 4, "schema");
        cf_tw_i32(&t, 5, w->ncols);
        cf_tw_end(&t);
        for (int i = 0; i < w->ncols; i++) {
            const cf_field *fd = &w->flat->fields[i];
            schema_leaf(&t, fd->name, fd->type, fd->nullable ? 1 : 0, fd->field_id,
                        w->o.write_field_ids);
        }
    } else {
        nelem = count_nodes(w->root, 0, NULL);
        cf_tw_list(&t, 2, TC_STRUCT, (size_t)nelem);
        schema_tree(&t, w->root, true, w->o.write_field_ids);
    }
    cf_tw_i64(&t, 3, w->num_rows);
    cf_tw_list(&t, 4, TC_STRUCT, (size_t)w->nrg);
    if (!t.failed && cf_buf_append(&f, w->rg_meta.data, w->rg_meta.len, NULL))
        t.failed = 1;
    if (w->o.nkv > 0) {
        cf_tw_list(&t, 5, TC_STRUCT, (size_t)w->o.nkv);
        for (int i = 0; i < w->o.nkv; i++) {
            cf_tw_begin(&t, 0);
            cf_tw_str(&t, 1, w->o.kv_keys[i]);
            if (w->o.kv_vals[i])
                cf_tw_str(&t, 2, w->o.kv_vals[i]);
            cf_tw_end(&t);
        }
    }
    cf_tw_str(&t, 6, CREATED_BY);
    cf_tw_list(&t, 7, TC_STRUCT, (size_t)w->ncols);
    for (int i = 0; i < w->ncols; i++) {
        cf_tw_begin(&t, 0);
        cf_tw_begin(&t, 1);     /* TYPE_ORDER */
        cf_tw_end(&t);
        cf_tw_end(&t);
    }
    cf_tw_end(&t);              /* STOP of FileMetaData */
    if (t.failed || f.len > UINT32_MAX) {
        cf_buf_free(&f);
        return cf_err_set(err, CF_E_NOMEM, "out of memory writing the footer");
    }
    put_le32(tail, (uint32_t)f.len);
    memcpy(tail + 4, "PAR1", 4);
    if (write_all(w, f.data, f.len, err) || write_all(w, tail, 8, err)) {
        cf_buf_free(&f);
        return -1;
    }
    cf_buf_free(&f);
    return 0;
}

int cf_pq_writer_close(cf_pq_writer *w, cf_pq_file_info *info, cf_err *err)
{
    if (!w)
        return cf_err_set(err, CF_E_ARG, "no writer");
    if (info)
        memset(info, 0, sizeof *info);
    if (w->flat && flush_row_group(w, w->rg_rows, err))
        goto fail;
    if (w->root && w->cols[0].page_n + (size_t)w->cols[0].chunk_values > 0) {
        cf_err_set(err, CF_E_ARG, "tree writer closed with values after the last row group");
        goto fail;
    }
    if (write_footer(w, err))
        goto fail;
    {
        cf_store_file *f = w->f;
        w->f = NULL;
        if (cf_store_file_finish(f, err)) {        /* removes the file on failure */
            writer_free(w);
            return -1;
        }
    }
    if (info) {
        info->num_rows = w->num_rows;
        info->file_bytes = w->pos;
        info->cols = calloc((size_t)w->ncols, sizeof *info->cols);
        if (!info->cols) {
            cf_store_delete(w->st, w->path, NULL);
            writer_free(w);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
        info->ncols = w->ncols;
        for (int i = 0; i < w->ncols; i++)
            stats_out(&w->cols[i], &info->cols[i]);
    }
    writer_free(w);
    return 0;
fail:
    cf_pq_writer_abort(w);
    return -1;
}
