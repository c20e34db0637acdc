/* parquet_int.h - internals shared by the Parquet writer and reader: Thrift
 * compact protocol, the RLE/bit-packed hybrid, page codecs and the format's
 * enum values (numbers from parquet.thrift). */
#ifndef CF_PARQUET_INT_H
#define CF_PARQUET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

/* parquet.thrift enums */
enum { PQ_BOOLEAN = 0, PQ_INT32, PQ_INT64, PQ_INT96, PQ_FLOAT, PQ_DOUBLE, PQ_BYTE_ARRAY,
       PQ_FIXED_LEN_BYTE_ARRAY };
enum { PQ_CT_UTF8 = 0, PQ_CT_MAP = 1, PQ_CT_MAP_KEY_VALUE = 2, PQ_CT_LIST = 3, PQ_CT_ENUM = 4,
       PQ_CT_DECIMAL = 5, PQ_CT_DATE = 6, PQ_CT_TIME_MILLIS = 7, PQ_CT_TIME_MICROS = 8,
       PQ_CT_TIMESTAMP_MILLIS = 9, PQ_CT_TIMESTAMP_MICROS = 10, PQ_CT_UINT_8 = 11,
       PQ_CT_UINT_16 = 12, PQ_CT_UINT_32 = 13, PQ_CT_UINT_64 = 14, PQ_CT_INT_8 = 15,
       PQ_CT_INT_16 = 16, PQ_CT_INT_32 = 17, PQ_CT_INT_64 = 18, PQ_CT_JSON = 19,
       PQ_CT_BSON = 20, PQ_CT_INTERVAL = 21 };
/* LogicalType union member ids */
enum { PQ_LT_STRING = 1, PQ_LT_MAP = 2, PQ_LT_LIST = 3, PQ_LT_ENUM = 4, PQ_LT_DECIMAL = 5,
       PQ_LT_DATE = 6, PQ_LT_TIME = 7, PQ_LT_TIMESTAMP = 8, PQ_LT_INTEGER = 10,
       PQ_LT_UNKNOWN = 11, PQ_LT_JSON = 12, PQ_LT_BSON = 13, PQ_LT_UUID = 14 };
enum { PQ_UNIT_MILLIS = 1, PQ_UNIT_MICROS = 2, PQ_UNIT_NANOS = 3 };
enum { PQ_ENC_PLAIN = 0, PQ_ENC_PLAIN_DICTIONARY = 2, PQ_ENC_RLE = 3, PQ_ENC_BIT_PACKED = 4,
       PQ_ENC_RLE_DICTIONARY = 8 };
enum { PQ_CODEC_UNCOMPRESSED = 0, PQ_CODEC_SNAPPY = 1, PQ_CODEC_GZIP = 2, PQ_CODEC_ZSTD = 6 };
enum { PQ_PAGE_DATA = 0, PQ_PAGE_INDEX = 1, PQ_PAGE_DICTIONARY = 2, PQ_PAGE_DATA_V2 = 3 };

/* ---- Thrift compact protocol ----------------------------------------- */

/* compact type codes */
enum { TC_STOP = 0, TC_TRUE = 1, TC_FALSE = 2, TC_BYTE = 3, TC_I16 = 4, TC_I32 = 5,
       TC_I64 = 6, TC_DOUBLE = 7, TC_BINARY = 8, TC_LIST = 9, TC_SET = 10, TC_MAP = 11,
       TC_STRUCT = 12 };

#define CF_TW_DEPTH 16

/* Writer: appends to `out`.  Errors are sticky in `err_code` (checked once
 * at the end) so the struct-building code stays readable. */
typedef struct cf_tw {
    cf_buf *out;
    int     depth;
    int16_t last[CF_TW_DEPTH];
    int     failed;
} cf_tw;

void cf_tw_init(cf_tw *w, cf_buf *out);
void cf_tw_field(cf_tw *w, int16_t id, int type);
void cf_tw_i32(cf_tw *w, int16_t id, int32_t v);
void cf_tw_i64(cf_tw *w, int16_t id, int64_t v);
void cf_tw_i8(cf_tw *w, int16_t id, int8_t v);
void cf_tw_bool(cf_tw *w, int16_t id, bool v);
void cf_tw_bin(cf_tw *w, int16_t id, const void *p, size_t n);
void cf_tw_str(cf_tw *w, int16_t id, const char *s);
/* Open a struct-valued field (id > 0) or a struct list element (id == 0). */
void cf_tw_begin(cf_tw *w, int16_t id);
void cf_tw_end(cf_tw *w);                 /* writes STOP, pops */
void cf_tw_list(cf_tw *w, int16_t id, int elem_type, size_t n);
void cf_tw_raw_varint(cf_tw *w, uint64_t v);  /* list elements */
void cf_tw_raw_zigzag(cf_tw *w, int64_t v);
void cf_tw_raw_bin(cf_tw *w, const void *p, size_t n);

/* Reader over untrusted bytes.  Every read is bounds checked; a failure sets
 * `bad` and later reads return zeros, so parsers check once per struct. */
typedef struct cf_tr {
    const uint8_t *p, *end, *start;
    int     depth;
    int16_t last[CF_TW_DEPTH + 1];
    bool    bad;
    const char *why;
} cf_tr;

void     cf_tr_init(cf_tr *r, const void *p, size_t n);
/* Next field header of the current struct; returns false at STOP (or on
 * error).  *type is the compact type (TRUE/FALSE carry the bool value). */
bool     cf_tr_field(cf_tr *r, int16_t *id, int *type);
void     cf_tr_struct_begin(cf_tr *r);
void     cf_tr_struct_end(cf_tr *r);     /* after cf_tr_field returned false */
int64_t  cf_tr_int(cf_tr *r, int type);  /* BYTE/I16/I32/I64 by type */
bool     cf_tr_bool(cf_tr *r, int type); /* field bool: from the type code */
/* Binary/string: pointer into the input and length. */
const uint8_t *cf_tr_bin(cf_tr *r, size_t *n);
/* List header: element count (capped by the remaining bytes). */
size_t   cf_tr_list(cf_tr *r, int *elem_type);
void     cf_tr_skip(cf_tr *r, int type);
void     cf_tr_fail(cf_tr *r, const char *why);

/* ---- RLE / bit-packed hybrid ----------------------------------------- */

int  cf_pq_bit_width(uint64_t max_value);
/* Append the hybrid encoding of v[0..n) with bit width bw (1..32). */
int  cf_pq_rle_encode(cf_buf *out, const uint32_t *v, size_t n, int bw, cf_err *err);

typedef struct cf_rle_dec {
    const uint8_t *p, *end;
    int      bw;
    uint32_t rle_left;      /* values left in the current RLE run */
    uint32_t rle_val;
    uint32_t bp_left;       /* values left in the current bit-packed run */
    uint64_t bits;          /* bit buffer for bit-packed runs */
    int      nbits;
} cf_rle_dec;

void cf_rle_init(cf_rle_dec *d, const uint8_t *p, size_t n, int bw);
/* Decode exactly n values into out; -1 on truncated/corrupt input. */
int  cf_rle_get(cf_rle_dec *d, uint32_t *out, size_t n);
int  cf_rle_get16(cf_rle_dec *d, int16_t *out, size_t n, int16_t maxv);

/* ---- DELTA_* and BYTE_STREAM_SPLIT ------------------------------------
 * Each decodes `want` values and appends them to `out` in PLAIN encoding
 * (width-byte little-endian ints; 4-byte length + bytes), so the reader's
 * PLAIN path does the rest. */
enum { PQ_ENC_DELTA_BINARY_PACKED = 5, PQ_ENC_DELTA_LENGTH_BYTE_ARRAY = 6,
       PQ_ENC_DELTA_BYTE_ARRAY = 7, PQ_ENC_BYTE_STREAM_SPLIT = 9 };
/* Advances *p past the encoded values; width is 4 or 8. */
int cf_pq_delta_binary(const uint8_t **p, const uint8_t *end, int width, size_t want,
                       cf_buf *out, cf_err *err);
int cf_pq_delta_length(const uint8_t *p, size_t n, size_t want, cf_buf *out, cf_err *err);
/* `cap` bounds the decoded bytes: shared prefixes can multiply the input. */
int cf_pq_delta_byte_array(const uint8_t *p, size_t n, size_t want, size_t cap, cf_buf *out,
                           cf_err *err);
int cf_pq_byte_stream_split(const uint8_t *p, size_t n, size_t width, size_t want, cf_buf *out,
                            cf_err *err);

/* ---- decimals -------------------------------------------------------- */

/* Big-endian two's complement (1..16 bytes) to an integer. */
__int128 cf_pq_dec_from_be(const uint8_t *p, size_t n);
/* Decimal text of unscaled v at scale into out (>= 44 bytes); returns length. */
size_t   cf_pq_dec_format(__int128 v, int scale, char *out);

/* ---- codecs ---------------------------------------------------------- */

typedef struct cf_pq_codec_ctx cf_pq_codec_ctx;
cf_pq_codec_ctx *cf_pq_codec_new(void);
void cf_pq_codec_free(cf_pq_codec_ctx *c);
/* Compress src with the Parquet codec id, replacing out's contents. */
int  cf_pq_compress(cf_pq_codec_ctx *c, int codec, int level, const uint8_t *src, size_t n,
                    cf_buf *out, cf_err *err);
/* Before allocating `want` bytes: does the compressed page plausibly hold
 * them (zstd/snappy headers state their size, deflate has a bounded ratio)? */
int  cf_pq_check_size(int codec, const uint8_t *src, size_t n, size_t want, cf_err *err);
/* Decompress exactly `want` bytes. */
int  cf_pq_decompress(cf_pq_codec_ctx *c, int codec, const uint8_t *src, size_t n,
                      uint8_t *dst, size_t want, cf_err *err);

#endif
