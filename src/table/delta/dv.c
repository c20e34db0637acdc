/* dv.c - Delta deletion vectors: the descriptor an add or remove action
 * carries, the Z85 text it is written in, the RoaringBitmapArray of row
 * positions it names, and the .bin files that hold those bitmaps.
 *
 * Written from delta-io/delta PROTOCOL.md ("Deletion Vectors", "Deletion
 * Vector Format") and the RoaringBitmap portable serialisation spec
 * (RoaringFormatSpec, including its 64-bit extension).
 *
 * A row set is a sorted array of distinct 64-bit row positions: deletion
 * vectors name a few rows of a file, rarely most of them, and both lookups
 * the sinks need (does the set hold row r; walk rows in order) are cheap on
 * an array.  Decoding accepts all three container kinds (array, bitmap,
 * run); encoding writes arrays and bitmaps, whichever is smaller. */
#include "table/delta/delta_int.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DV_MAGIC          1681511377u   /* little endian, first 4 bytes: the portable format */
#define DV_MAGIC_NATIVE   1681511376u   /* the older "native" format, still read by Delta */
#define DV_FILE_VERSION   1
#define RB_COOKIE_NORUN   12346u        /* 32-bit roaring, no run containers */
#define RB_COOKIE_RUN     12347u        /* low 16 bits; high 16 = containers - 1 */
#define RB_NO_OFFSET_MIN  4             /* with run containers, offsets only from 4 containers */
#define RB_ARRAY_MAX      4096          /* a container above this is a bitmap */
#define DV_MAX_BYTES      (256u << 20)  /* a bitmap we agree to read */

/* ---- descriptors ------------------------------------------------------ */

void cf_delta_dv_free(cf_delta_dv *dv)
{
    free(dv->path);
    memset(dv, 0, sizeof *dv);
}

int cf_delta_dv_copy(cf_delta_dv *dst, const cf_delta_dv *src, cf_err *err)
{
    *dst = *src;
    dst->path = NULL;
    if (src->path && !(dst->path = strdup(src->path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    return 0;
}

int cf_delta_dv_parse(json_t *o, cf_delta_dv *out, cf_err *err)
{
    const char *type = json_string_value(json_object_get(o, "storageType"));
    const char *path = json_string_value(json_object_get(o, "pathOrInlineDv"));
    json_t *off = json_object_get(o, "offset"), *size = json_object_get(o, "sizeInBytes");
    json_t *card = json_object_get(o, "cardinality");

    memset(out, 0, sizeof *out);
    if (!o || json_is_null(o))
        return 0;
    if (!type || strlen(type) != 1 || !strchr("uip", type[0]) || !path || !json_is_integer(size) ||
        json_integer_value(size) < 0 || json_integer_value(size) > (json_int_t)DV_MAX_BYTES ||
        !json_is_integer(card) || json_integer_value(card) < 0 ||
        (off && !json_is_null(off) && (!json_is_integer(off) || json_integer_value(off) < 0)))
        return cf_err_set(err, CF_E_CORRUPT, "malformed deletionVector descriptor");
    if (!(out->path = strdup(path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    out->type = type[0];
    out->has_offset = off && json_is_integer(off);
    out->offset = out->has_offset ? json_integer_value(off) : 0;
    out->size = (int32_t)json_integer_value(size);
    out->cardinality = json_integer_value(card);
    return 0;
}

json_t *cf_delta_dv_json(const cf_delta_dv *dv)
{
    char t[2] = { dv->type, 0 };
    json_t *o;

    if (!dv->type)
        return json_null();
    o = json_object();
    json_object_set_new(o, "storageType", json_string(t));
    json_object_set_new(o, "pathOrInlineDv", json_string(dv->path));
    if (dv->has_offset)
        json_object_set_new(o, "offset", json_integer(dv->offset));
    json_object_set_new(o, "sizeInBytes", json_integer(dv->size));
    json_object_set_new(o, "cardinality", json_integer(dv->cardinality));
    return o;
}

bool cf_delta_dv_same(const cf_delta_dv *a, const cf_delta_dv *b)
{
    /* the protocol's uniqueId: storageType, pathOrInlineDv and offset */
    if (a->type != b->type)
        return false;
    if (!a->type)
        return true;
    return a->has_offset == b->has_offset && a->offset == b->offset && !strcmp(a->path, b->path);
}

/* ---- Z85 (ZeroMQ RFC 32) ------------------------------------------------ */

static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

int cf_delta_z85_decode(const char *s, size_t n, cf_buf *out, cf_err *err)
{
    static signed char dec[256];
    static bool ready;

    if (!ready) {   /* idempotent: a race writes the same bytes */
        memset(dec, -1, sizeof dec);
        for (int i = 0; i < 85; i++)
            dec[(unsigned char)z85_chars[i]] = (signed char)i;
        ready = true;
    }
    if (n % 5)
        return cf_err_set(err, CF_E_CORRUPT, "Z85 text of %zu characters (not a multiple of 5)", n);
    for (size_t i = 0; i < n; i += 5) {
        uint64_t v = 0;
        uint8_t b[4];
        for (int k = 0; k < 5; k++) {
            int d = dec[(unsigned char)s[i + k]];
            if (d < 0)
                return cf_err_set(err, CF_E_CORRUPT, "bad Z85 character in deletion vector");
            v = v * 85 + (uint64_t)d;
        }
        if (v > 0xffffffffu)
            return cf_err_set(err, CF_E_CORRUPT, "Z85 group out of range in deletion vector");
        b[0] = (uint8_t)(v >> 24);
        b[1] = (uint8_t)(v >> 16);
        b[2] = (uint8_t)(v >> 8);
        b[3] = (uint8_t)v;
        if (cf_buf_append(out, b, 4, err))
            return -1;
    }
    return 0;
}

int cf_delta_z85_encode(const void *data, size_t n, cf_buf *out, cf_err *err)
{
    const uint8_t *p = data;

    /* Delta pads the last group with zeros; sizeInBytes says where data ends */
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        char c[5];
        for (int k = 0; k < 4; k++)
            v = v << 8 | (i + (size_t)k < n ? p[i + (size_t)k] : 0);
        for (int k = 4; k >= 0; k--) {
            c[k] = z85_chars[v % 85];
            v /= 85;
        }
        if (cf_buf_append(out, c, 5, err))
            return -1;
    }
    return 0;
}

/* ---- where a DV lives ---------------------------------------------------- */

char *cf_delta_dv_location(const char *root, const cf_delta_dv *dv, cf_err *err)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = dv->path ? strlen(dv->path) : 0;
    cf_buf u, loc;
    char *out = NULL;

    if (dv->type == 'p')
        return cf_delta_path_full(root, dv->path);
    if (dv->type != 'u' || n < 20) {
        cf_err_set(err, CF_E_CORRUPT, "deletion vector has no file ('%c')", dv->type ? dv->type : '-');
        return NULL;
    }
    /* <random prefix><20 characters: the Z85 of a 16-byte UUID> */
    cf_buf_init(&u, 16);
    cf_buf_init(&loc, 0);
    if (cf_delta_z85_decode(dv->path + n - 20, 20, &u, err))
        goto out;
    if (cf_buf_printf(&loc, err, "%s/", root) ||
        (n > 20 && (cf_buf_append(&loc, dv->path, n - 20, err) || cf_buf_putc(&loc, '/', err))) ||
        cf_buf_printf(&loc, err, "deletion_vector_"))
        goto out;
    for (size_t i = 0; i < 16; i++) {
        if ((i == 4 || i == 6 || i == 8 || i == 10) && cf_buf_putc(&loc, '-', err))
            goto out;
        if (cf_buf_putc(&loc, hex[u.data[i] >> 4], err) || cf_buf_putc(&loc, hex[u.data[i] & 15], err))
            goto out;
    }
    if (cf_buf_printf(&loc, err, ".bin") || cf_buf_putc(&loc, 0, err))
        goto out;
    out = (char *)cf_buf_steal(&loc, NULL);
out:
    cf_buf_free(&u);
    cf_buf_free(&loc);
    return out;
}

/* ---- row sets ------------------------------------------------------------ */

void cf_rowset_free(cf_rowset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

int cf_rowset_add(cf_rowset *s, uint64_t v, cf_err *err)
{
    if (s->n && v <= s->v[s->n - 1])
        return cf_err_set(err, CF_E_CORRUPT, "deletion vector rows out of order");
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        uint64_t *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = v;
    return 0;
}

bool cf_rowset_has(const cf_rowset *s, uint64_t row)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->v[mid] < row)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->v[lo] == row;
}

/* ---- RoaringBitmapArray ---------------------------------------------------- */

typedef struct rd {           /* a bounds-checked little-endian reader */
    const uint8_t *p;
    size_t n, at;
} rd;

static bool rd_u16(rd *r, uint32_t *v)
{
    if (r->n - r->at < 2)
        return false;
    *v = (uint32_t)r->p[r->at] | (uint32_t)r->p[r->at + 1] << 8;
    r->at += 2;
    return true;
}

static bool rd_u32(rd *r, uint32_t *v)
{
    if (r->n - r->at < 4)
        return false;
    *v = (uint32_t)r->p[r->at] | (uint32_t)r->p[r->at + 1] << 8 | (uint32_t)r->p[r->at + 2] << 16 |
         (uint32_t)r->p[r->at + 3] << 24;
    r->at += 4;
    return true;
}

/* One 32-bit portable RoaringBitmap; its values, or'd with hi << 32, go to
 * out in ascending order. */
static int rb32_decode(rd *r, uint64_t hi, cf_rowset *out, cf_err *err)
{
    uint32_t cookie, ncont;
    const uint8_t *runs = NULL;
    bool offsets;

    if (!rd_u32(r, &cookie))
        goto short_;
    if ((cookie & 0xffff) == RB_COOKIE_RUN) {
        ncont = (cookie >> 16) + 1;
        if (r->n - r->at < (ncont + 7) / 8)
            goto short_;
        runs = r->p + r->at;
        r->at += (ncont + 7) / 8;
        offsets = ncont >= RB_NO_OFFSET_MIN;
    } else if (cookie == RB_COOKIE_NORUN) {
        if (!rd_u32(r, &ncont))
            goto short_;
        offsets = true;
    } else {
        return cf_err_set(err, CF_E_CORRUPT, "deletion vector: not a roaring bitmap (cookie %u)", cookie);
    }
    if (ncont > 65536 || r->n - r->at < (size_t)ncont * 4)
        goto short_;
    const size_t hdr = r->at;
    r->at += (size_t)ncont * 4 + (offsets ? (size_t)ncont * 4 : 0);
    if (r->at > r->n)
        goto short_;
    uint32_t prev_key = 0;
    for (uint32_t c = 0; c < ncont; c++) {
        const uint8_t *h = r->p + hdr + (size_t)c * 4;
        uint32_t key = (uint32_t)h[0] | (uint32_t)h[1] << 8, card = ((uint32_t)h[2] | (uint32_t)h[3] << 8) + 1;
        uint64_t base = hi << 32 | (uint64_t)key << 16;
        if (c && key <= prev_key)
            return cf_err_set(err, CF_E_CORRUPT, "deletion vector: container keys out of order");
        prev_key = key;
        if (runs && runs[c / 8] >> (c % 8) & 1) {
            uint32_t nruns, start, len;
            if (!rd_u16(r, &nruns))
                goto short_;
            for (uint32_t q = 0; q < nruns; q++) {
                if (!rd_u16(r, &start) || !rd_u16(r, &len))
                    goto short_;
                if (start + len > 0xffff)
                    return cf_err_set(err, CF_E_CORRUPT, "deletion vector: run past its container");
                for (uint32_t v = start; v <= start + len; v++)
                    if (cf_rowset_add(out, base | v, err))
                        return -1;
            }
        } else if (card > RB_ARRAY_MAX) {
            if (r->n - r->at < 8192)
                goto short_;
            for (uint32_t w = 0; w < 8192; w++) {
                uint8_t byte = r->p[r->at + w];
                for (int b = 0; byte; b++, byte >>= 1)
                    if (byte & 1 && cf_rowset_add(out, base | (w * 8 + (uint32_t)b), err))
                        return -1;
            }
            r->at += 8192;
        } else {
            for (uint32_t q = 0; q < card; q++) {
                uint32_t v;
                if (!rd_u16(r, &v))
                    goto short_;
                if (cf_rowset_add(out, base | v, err))
                    return -1;
            }
        }
    }
    return 0;
short_:
    return cf_err_set(err, CF_E_CORRUPT, "deletion vector: roaring bitmap cut short");
}

int cf_delta_dv_decode(const void *data, size_t n, cf_rowset *out, cf_err *err)
{
    rd r = { data, n, 0 };
    uint32_t magic, lo, hi, key, size;
    int64_t prev = -1;

    out->n = 0;
    if (!rd_u32(&r, &magic) || (magic != DV_MAGIC && magic != DV_MAGIC_NATIVE))
        return cf_err_set(err, CF_E_CORRUPT, "deletion vector: bad magic number");
    if (magic == DV_MAGIC_NATIVE) {
        /* u32 count, then per bitmap (its index is the high 32 bits) a u32
         * size and the bitmap */
        if (!rd_u32(&r, &lo) || lo > (n - r.at) / 4)
            return cf_err_set(err, CF_E_CORRUPT, "deletion vector: roaring bitmap cut short");
        for (uint32_t b = 0; b < lo; b++) {
            size_t at;
            if (!rd_u32(&r, &size) || size > n - r.at)
                return cf_err_set(err, CF_E_CORRUPT, "deletion vector: roaring bitmap cut short");
            at = r.at;
            if (rb32_decode(&r, b, out, err))
                return -1;
            r.at = at + size;
        }
        return 0;
    }
    if (!rd_u32(&r, &lo) || !rd_u32(&r, &hi))
        return cf_err_set(err, CF_E_CORRUPT, "deletion vector: roaring bitmap cut short");
    uint64_t nb = (uint64_t)hi << 32 | lo;
    if (nb > (n - r.at) / 4)
        return cf_err_set(err, CF_E_CORRUPT, "deletion vector: %llu buckets in %zu bytes",
                          (unsigned long long)nb, n);
    for (uint64_t b = 0; b < nb; b++) {
        if (!rd_u32(&r, &key))
            return cf_err_set(err, CF_E_CORRUPT, "deletion vector: roaring bitmap cut short");
        if ((int64_t)key <= prev || key >> 31)
            return cf_err_set(err, CF_E_CORRUPT, "deletion vector: bad bucket key %u", key);
        prev = key;
        if (rb32_decode(&r, key, out, err))
            return -1;
    }
    return 0;
}

static int put_le16(cf_buf *b, uint32_t v, cf_err *err)
{
    uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
    return cf_buf_append(b, x, 2, err);
}

static int put_le32(cf_buf *b, uint32_t v, cf_err *err)
{
    uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    return cf_buf_append(b, x, 4, err);
}

/* The 32-bit bitmap of v[0..n), all with the same high 32 bits. */
static int rb32_encode(const uint64_t *v, size_t n, cf_buf *out, cf_err *err)
{
    size_t ncont = 0, i, start;
    uint32_t off;

    for (i = 0; i < n; i++)   /* containers: distinct bits 16..31 */
        if (!i || (v[i] >> 16 & 0xffff) != (v[i - 1] >> 16 & 0xffff))
            ncont++;
    if (put_le32(out, RB_COOKIE_NORUN, err) || put_le32(out, (uint32_t)ncont, err))
        return -1;
    for (i = 0; i < n; i = start) {   /* descriptive header */
        for (start = i + 1; start < n && (v[start] >> 16 & 0xffff) == (v[i] >> 16 & 0xffff); start++)
            ;
        if (put_le16(out, (uint32_t)(v[i] >> 16 & 0xffff), err) || put_le16(out, (uint32_t)(start - i - 1), err))
            return -1;
    }
    off = (uint32_t)(8 + ncont * 8);   /* offsets count from the cookie */
    for (i = 0; i < n; i = start) {
        for (start = i + 1; start < n && (v[start] >> 16 & 0xffff) == (v[i] >> 16 & 0xffff); start++)
            ;
        if (put_le32(out, off, err))
            return -1;
        off += start - i > RB_ARRAY_MAX ? 8192 : (uint32_t)(start - i) * 2;
    }
    for (i = 0; i < n; i = start) {
        for (start = i + 1; start < n && (v[start] >> 16 & 0xffff) == (v[i] >> 16 & 0xffff); start++)
            ;
        if (start - i > RB_ARRAY_MAX) {
            uint8_t bits[8192] = { 0 };
            for (size_t q = i; q < start; q++)
                bits[(v[q] & 0xffff) >> 3] |= (uint8_t)(1u << (v[q] & 7));
            if (cf_buf_append(out, bits, sizeof bits, err))
                return -1;
        } else {
            for (size_t q = i; q < start; q++)
                if (put_le16(out, (uint32_t)(v[q] & 0xffff), err))
                    return -1;
        }
    }
    return 0;
}

int cf_delta_dv_encode(const cf_rowset *s, cf_buf *out, cf_err *err)
{
    size_t nb = 0, i, start;

    for (i = 0; i < s->n; i++) {
        if (i && s->v[i] <= s->v[i - 1])
            return cf_err_set(err, CF_E_ARG, "deletion vector rows not ascending");
        if (s->v[i] >> 63)
            return cf_err_set(err, CF_E_ARG, "deletion vector row out of range");
        if (!i || s->v[i] >> 32 != s->v[i - 1] >> 32)
            nb++;
    }
    if (put_le32(out, DV_MAGIC, err) || put_le32(out, (uint32_t)nb, err) || put_le32(out, (uint32_t)(nb >> 32), err))
        return -1;
    for (i = 0; i < s->n; i = start) {
        for (start = i + 1; start < s->n && s->v[start] >> 32 == s->v[i] >> 32; start++)
            ;
        if (put_le32(out, (uint32_t)(s->v[i] >> 32), err) || rb32_encode(s->v + i, start - i, out, err))
            return -1;
    }
    return 0;
}

/* ---- reading and writing DVs --------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int cf_delta_dv_read(cf_store *st, const char *root, const cf_delta_dv *dv, cf_rowset *out, cf_err *err)
{
    cf_buf b;
    char *loc = NULL;
    int rc = -1;

    out->n = 0;
    if (!dv->type)
        return 0;
    cf_buf_init(&b, 0);
    if (dv->type == 'i') {
        if (cf_delta_z85_decode(dv->path, strlen(dv->path), &b, err))
            goto out;
        if (b.len < (size_t)dv->size) {
            cf_err_set(err, CF_E_CORRUPT, "inline deletion vector shorter than its sizeInBytes");
            goto out;
        }
        rc = cf_delta_dv_decode(b.data, (size_t)dv->size, out, err);
    } else {
        /* [u32 BE size][bitmap][u32 BE CRC-32 of the bitmap] at offset */
        if (!(loc = cf_delta_dv_location(root, dv, err)))
            goto out;
        if (cf_buf_reserve(&b, (size_t)dv->size + 8, err))
            goto out;
        if (cf_store_get_range(st, loc, (uint64_t)dv->offset, (size_t)dv->size + 8, b.data, err)) {
            cf_err_wrap(err, "deletion vector");
            goto out;
        }
        b.len = (size_t)dv->size + 8;
        if (be32(b.data) != (uint32_t)dv->size) {
            cf_err_set(err, CF_E_CORRUPT, "deletion vector in %s: size does not match its descriptor", loc);
            goto out;
        }
        if ((uint32_t)crc32(0L, b.data + 4, (uInt)dv->size) != be32(b.data + 4 + dv->size)) {
            cf_err_set(err, CF_E_CORRUPT, "deletion vector in %s: checksum mismatch", loc);
            goto out;
        }
        rc = cf_delta_dv_decode(b.data + 4, (size_t)dv->size, out, err);
    }
    if (rc == 0 && (int64_t)out->n != dv->cardinality) {
        cf_err_set(err, CF_E_CORRUPT, "deletion vector holds %zu rows, its descriptor says %lld", out->n,
                   (long long)dv->cardinality);
        rc = -1;
    }
out:
    free(loc);
    cf_buf_free(&b);
    return rc;
}

int cf_delta_dv_file(const cf_rowset *const *sets, size_t n, cf_buf *out, int64_t *offsets,
                     int32_t *sizes, cf_err *err)
{
    uint8_t v = DV_FILE_VERSION;

    cf_buf_reset(out);
    if (cf_buf_append(out, &v, 1, err))
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t at = out->len;
        uint8_t be[4] = { 0 };
        /* room for the size, then the bitmap, then patch the size in */
        if (cf_buf_append(out, be, 4, err) || cf_delta_dv_encode(sets[i], out, err))
            return -1;
        size_t len = out->len - at - 4;
        uint32_t crc = (uint32_t)crc32(0L, out->data + at + 4, (uInt)len);
        out->data[at] = (uint8_t)(len >> 24);
        out->data[at + 1] = (uint8_t)(len >> 16);
        out->data[at + 2] = (uint8_t)(len >> 8);
        out->data[at + 3] = (uint8_t)len;
        be[0] = (uint8_t)(crc >> 24);
        be[1] = (uint8_t)(crc >> 16);
        be[2] = (uint8_t)(crc >> 8);
        be[3] = (uint8_t)crc;
        if (cf_buf_append(out, be, 4, err))
            return -1;
        offsets[i] = (int64_t)at;
        sizes[i] = (int32_t)len;
    }
    return 0;
}
