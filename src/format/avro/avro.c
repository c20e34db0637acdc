/* avro.c - Avro object container files: binary encoding, schema parsing,
 * the block writer and a checked generic reader (from the Avro 1.11 spec). */
#include "format/avro/avro.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include "util/arena.h"
#include "util/id.h"

#define MAX_DEPTH        32              /* schema and value nesting */
#define MAX_NODES        4096            /* schema nodes per file */
#define MAX_BLOCK_BYTES  (64u << 20)     /* one block, compressed or not */
#define MAX_FILE_BYTES   (256u << 20)
#define MAX_META         1024            /* header metadata pairs */
#define ARENA_CAP        (256u << 20)    /* decoded values of one record */
#define BLOCK_TARGET     (64u << 10)     /* writer: flush a block past this */

static const uint8_t MAGIC[4] = { 'O', 'b', 'j', 1 };

/* Reader codecs: the writer makes null and deflate; other writers (Java
 * Iceberg's write.avro.compression-codec) may also use snappy or zstandard. */
enum { CODEC_NULL = 0, CODEC_DEFLATE, CODEC_SNAPPY, CODEC_ZSTD };

/* ---- encoding -------------------------------------------------------- */

int cf_avro_put_long(cf_buf *b, int64_t v, cf_err *err)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t tmp[10];
    int n = 0;

    do {
        uint8_t c = z & 0x7f;
        z >>= 7;
        tmp[n++] = (uint8_t)(c | (z ? 0x80 : 0));
    } while (z);
    return cf_buf_append(b, tmp, (size_t)n, err);
}

int cf_avro_put_bool(cf_buf *b, bool v, cf_err *err) { return cf_buf_putc(b, v ? 1 : 0, err); }

int cf_avro_put_double(cf_buf *b, double v, cf_err *err)
{
    uint64_t u;
    uint8_t t[8];
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(u >> (8 * i));
    return cf_buf_append(b, t, 8, err);
}

int cf_avro_put_float(cf_buf *b, float v, cf_err *err)
{
    uint32_t u;
    uint8_t t[4];
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(u >> (8 * i));
    return cf_buf_append(b, t, 4, err);
}

int cf_avro_put_bytes(cf_buf *b, const void *p, size_t n, cf_err *err)
{
    if (cf_avro_put_long(b, (int64_t)n, err))
        return -1;
    return cf_buf_append(b, p, n, err);
}

int cf_avro_put_str(cf_buf *b, const char *s, cf_err *err)
{
    return cf_avro_put_bytes(b, s, strlen(s), err);
}

/* ---- schema ---------------------------------------------------------- */

typedef enum {
    S_NULL, S_BOOL, S_INT, S_LONG, S_FLOAT, S_DOUBLE, S_BYTES, S_STRING,
    S_FIXED, S_ENUM, S_RECORD, S_ARRAY, S_MAP, S_UNION
} skind;

typedef struct cf_avro_node {
    skind k;
    int n;                     /* RECORD fields, UNION branches, ENUM symbols */
    struct cf_avro_node **sub; /* RECORD field types, UNION branches, ARRAY/MAP item at [0] */
    char **names;              /* RECORD field names */
    int *ids;                  /* RECORD field-id attributes, -1 if absent */
    size_t size;               /* FIXED */
    char *name;                /* named types */
    json_t *j;                 /* the node's JSON object (attributes), or NULL; owned by doc */
} snode;

typedef struct cf_avro_schema {
    snode **all;               /* every node, for freeing (graphs may share) */
    int nall;
    snode *root;
    json_t *doc;               /* the schema JSON, kept for node attributes */
} schema;

static void schema_free(schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nall; i++) {
        snode *n = s->all[i];
        if (n->names)
            for (int j = 0; j < n->n; j++)
                free(n->names[j]);
        free(n->names);
        free(n->sub);
        free(n->ids);
        free(n->name);
        free(n);
    }
    free(s->all);
    json_decref(s->doc);
    free(s);
}

static snode *node_new(schema *s, skind k, cf_err *err)
{
    snode **na, *n;
    if (s->nall >= MAX_NODES) {
        cf_err_set(err, CF_E_TOOBIG, "avro schema has more than %d nodes", MAX_NODES);
        return NULL;
    }
    if (!(na = realloc(s->all, sizeof *na * (size_t)(s->nall + 1))) ||
        !(n = calloc(1, sizeof *n))) {
        if (na)
            s->all = na;
        cf_err_set(err, CF_E_NOMEM, "out of memory parsing an avro schema");
        return NULL;
    }
    s->all = na;
    s->all[s->nall++] = n;
    n->k = k;
    return n;
}

static const char *short_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static snode *find_named(schema *s, const char *name)
{
    for (int i = 0; i < s->nall; i++)
        if (s->all[i]->name && (!strcmp(s->all[i]->name, name) ||
                                !strcmp(short_name(s->all[i]->name), short_name(name))))
            return s->all[i];
    return NULL;
}

static const struct { const char *name; skind k; } PRIMS[] = {
    { "null", S_NULL }, { "boolean", S_BOOL }, { "int", S_INT }, { "long", S_LONG },
    { "float", S_FLOAT }, { "double", S_DOUBLE }, { "bytes", S_BYTES }, { "string", S_STRING },
};

static snode *parse_node(schema *s, json_t *j, int depth, cf_err *err);

static snode *parse_name_ref(schema *s, const char *name, cf_err *err)
{
    snode *n;
    for (size_t i = 0; i < sizeof PRIMS / sizeof *PRIMS; i++)
        if (!strcmp(name, PRIMS[i].name))
            return node_new(s, PRIMS[i].k, err);
    if ((n = find_named(s, name)))
        return n;
    cf_err_set(err, CF_E_PARSE, "avro schema: unknown type '%.100s'", name);
    return NULL;
}

static int set_name(snode *n, json_t *j, cf_err *err)
{
    const char *nm = json_string_value(json_object_get(j, "name"));
    if (!nm)
        return cf_err_set(err, CF_E_PARSE, "avro schema: named type without a name");
    if (!(n->name = strdup(nm)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    return 0;
}

static snode *parse_complex(schema *s, json_t *j, int depth, cf_err *err)
{
    const char *t = json_string_value(json_object_get(j, "type"));
    snode *n;

    if (!t) {
        /* {"type": {...}} nests a schema; treat it as that schema. */
        json_t *inner = json_object_get(j, "type");
        if (inner && (json_is_object(inner) || json_is_array(inner)))
            return parse_node(s, inner, depth + 1, err);
        cf_err_set(err, CF_E_PARSE, "avro schema: object without a type");
        return NULL;
    }
    if (!strcmp(t, "record") || !strcmp(t, "error")) {
        json_t *fields = json_object_get(j, "fields");
        size_t nf;
        if (!json_is_array(fields)) {
            cf_err_set(err, CF_E_PARSE, "avro schema: record without fields");
            return NULL;
        }
        nf = json_array_size(fields);
        if (!(n = node_new(s, S_RECORD, err)) || set_name(n, j, err))
            return NULL;
        n->j = j;
        if (nf && (!(n->sub = calloc(nf, sizeof *n->sub)) ||
                   !(n->names = calloc(nf, sizeof *n->names)) ||
                   !(n->ids = calloc(nf, sizeof *n->ids)))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < nf; i++) {
            json_t *f = json_array_get(fields, i), *fid;
            const char *fname = json_string_value(json_object_get(f, "name"));
            if (!json_is_object(f) || !fname) {
                cf_err_set(err, CF_E_PARSE, "avro schema: record field without a name");
                return NULL;
            }
            if (!(n->names[i] = strdup(fname))) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                return NULL;
            }
            n->n = (int)i + 1;         /* names[0..n) are owned from here on */
            fid = json_object_get(f, "field-id");
            n->ids[i] = json_is_integer(fid) ? (int)json_integer_value(fid) : -1;
            if (!(n->sub[i] = parse_node(s, json_object_get(f, "type"), depth + 1, err)))
                return NULL;
        }
        return n;
    }
    if (!strcmp(t, "array") || !strcmp(t, "map")) {
        json_t *item = json_object_get(j, !strcmp(t, "array") ? "items" : "values");
        if (!(n = node_new(s, t[0] == 'a' ? S_ARRAY : S_MAP, err)))
            return NULL;
        n->j = j;
        if (!(n->sub = calloc(1, sizeof *n->sub))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        if (!(n->sub[0] = parse_node(s, item, depth + 1, err)))
            return NULL;
        return n;
    }
    if (!strcmp(t, "fixed")) {
        json_t *sz = json_object_get(j, "size");
        if (!json_is_integer(sz) || json_integer_value(sz) < 0 ||
            json_integer_value(sz) > (1 << 20)) {
            cf_err_set(err, CF_E_PARSE, "avro schema: fixed without a valid size");
            return NULL;
        }
        if (!(n = node_new(s, S_FIXED, err)) || set_name(n, j, err))
            return NULL;
        n->j = j;
        n->size = (size_t)json_integer_value(sz);
        return n;
    }
    if (!strcmp(t, "enum")) {
        json_t *syms = json_object_get(j, "symbols");
        if (!json_is_array(syms)) {
            cf_err_set(err, CF_E_PARSE, "avro schema: enum without symbols");
            return NULL;
        }
        if (!(n = node_new(s, S_ENUM, err)) || set_name(n, j, err))
            return NULL;
        n->j = j;
        n->n = (int)json_array_size(syms);
        return n;
    }
    /* {"type": "long", "logicalType": ...} and friends: a node of its own
     * (never a shared named one) so that its attributes stay its own. */
    for (size_t i = 0; i < sizeof PRIMS / sizeof *PRIMS; i++)
        if (!strcmp(t, PRIMS[i].name)) {
            if ((n = node_new(s, PRIMS[i].k, err)))
                n->j = j;
            return n;
        }
    return parse_name_ref(s, t, err);
}

static snode *parse_node(schema *s, json_t *j, int depth, cf_err *err)
{
    snode *n;

    if (depth > MAX_DEPTH) {
        cf_err_set(err, CF_E_TOOBIG, "avro schema nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    if (json_is_string(j))
        return parse_name_ref(s, json_string_value(j), err);
    if (json_is_object(j))
        return parse_complex(s, j, depth, err);
    if (json_is_array(j)) {
        size_t nb = json_array_size(j);
        if (nb == 0) {
            cf_err_set(err, CF_E_PARSE, "avro schema: empty union");
            return NULL;
        }
        if (!(n = node_new(s, S_UNION, err)))
            return NULL;
        if (!(n->sub = calloc(nb, sizeof *n->sub))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        n->n = (int)nb;
        for (size_t i = 0; i < nb; i++)
            if (!(n->sub[i] = parse_node(s, json_array_get(j, i), depth + 1, err)))
                return NULL;
        return n;
    }
    cf_err_set(err, CF_E_PARSE, "avro schema: unexpected JSON value");
    return NULL;
}

/* Returns a schema owned by the caller (schema_free) or NULL. */
static schema *schema_parse(const char *text, size_t len, cf_err *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &je);
    schema *s;

    if (!j) {
        cf_err_set(err, CF_E_PARSE, "avro schema is not JSON: %s (line %d)", je.text, je.line);
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s))) {
        json_decref(j);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    s->doc = j;
    s->root = parse_node(s, j, 0, err);
    if (!s->root) {
        schema_free(s);
        return NULL;
    }
    return s;
}

cf_avro_schema *cf_avro_schema_parse(const char *json, size_t len, cf_err *err)
{
    return schema_parse(json, len, err);
}

void cf_avro_schema_free(cf_avro_schema *s) { schema_free(s); }

const cf_avro_node *cf_avro_schema_root(const cf_avro_schema *s) { return s->root; }

cf_avro_kind cf_avro_node_kind(const cf_avro_node *n)
{
    static const cf_avro_kind K[] = {
        [S_NULL] = CF_AV_NULL, [S_BOOL] = CF_AV_BOOL, [S_INT] = CF_AV_INT, [S_LONG] = CF_AV_LONG,
        [S_FLOAT] = CF_AV_FLOAT, [S_DOUBLE] = CF_AV_DOUBLE, [S_BYTES] = CF_AV_BYTES,
        [S_STRING] = CF_AV_STRING, [S_FIXED] = CF_AV_FIXED, [S_ENUM] = CF_AV_ENUM,
        [S_RECORD] = CF_AV_RECORD, [S_ARRAY] = CF_AV_ARRAY, [S_MAP] = CF_AV_MAP,
        [S_UNION] = CF_AV_UNION,
    };
    return K[n->k];
}

int cf_avro_node_count(const cf_avro_node *n)
{
    return n->k == S_RECORD || n->k == S_UNION || n->k == S_ENUM ? n->n :
           n->k == S_ARRAY || n->k == S_MAP ? 1 : 0;
}

const cf_avro_node *cf_avro_node_child(const cf_avro_node *n, int i)
{
    if (i < 0 || i >= cf_avro_node_count(n) || n->k == S_ENUM)
        return NULL;
    return n->sub[i];
}

const char *cf_avro_node_field(const cf_avro_node *n, int i)
{
    return n->k == S_RECORD && i >= 0 && i < n->n ? n->names[i] : NULL;
}

const char *cf_avro_node_name(const cf_avro_node *n) { return n->name; }

size_t cf_avro_node_size(const cf_avro_node *n) { return n->k == S_FIXED ? n->size : 0; }

const char *cf_avro_node_symbol(const cf_avro_node *n, int i)
{
    json_t *syms = n->k == S_ENUM && n->j ? json_object_get(n->j, "symbols") : NULL;
    return json_string_value(json_array_get(syms, (size_t)i));
}

const char *cf_avro_node_attr(const cf_avro_node *n, const char *key, const char *sub)
{
    json_t *v = n->j ? json_object_get(n->j, key) : NULL;
    if (sub)
        v = json_object_get(v, sub);
    return json_string_value(v);
}

int cf_avro_node_attr_int(const cf_avro_node *n, const char *key, long *out)
{
    json_t *v = n->j ? json_object_get(n->j, key) : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < -100000 || json_integer_value(v) > 100000)
        return -1;
    *out = (long)json_integer_value(v);
    return 0;
}

/* ---- writer ---------------------------------------------------------- */

struct cf_avro_writer {
    cf_buf   head;          /* header bytes */
    cf_buf   block;         /* datums of the current block */
    cf_buf   out;           /* blocks written so far */
    int64_t  block_count;
    int64_t  count;
    cf_avro_codec codec;
    uint8_t  sync[16];
    bool     finished;
};

/* Uniqueness within a file is all the marker needs. */
static void fill_sync(uint8_t sync[16])
{
    cf_random_bytes(sync, 16);
}

static int put_meta(cf_buf *b, const char *k, const char *v, size_t vlen, cf_err *err)
{
    if (cf_avro_put_str(b, k, err))
        return -1;
    return cf_avro_put_bytes(b, v, vlen, err);
}

cf_avro_writer *cf_avro_writer_new(const char *schema_json, const char *const *meta_keys,
                                   const char *const *meta_vals, int nmeta,
                                   cf_avro_codec codec, cf_err *err)
{
    cf_avro_writer *w;
    schema *s = schema_parse(schema_json, strlen(schema_json), err);

    if (!s)
        return NULL;
    schema_free(s);
    if (!(w = calloc(1, sizeof *w))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    cf_buf_init(&w->head, 0);
    cf_buf_init(&w->block, 0);
    cf_buf_init(&w->out, MAX_FILE_BYTES);
    w->codec = codec;
    fill_sync(w->sync);
    if (cf_buf_append(&w->head, MAGIC, 4, err) ||
        cf_avro_put_long(&w->head, nmeta + 2, err) ||
        put_meta(&w->head, "avro.schema", schema_json, strlen(schema_json), err) ||
        put_meta(&w->head, "avro.codec", codec == CF_AVRO_DEFLATE ? "deflate" : "null",
                 codec == CF_AVRO_DEFLATE ? 7 : 4, err))
        goto fail;
    for (int i = 0; i < nmeta; i++)
        if (put_meta(&w->head, meta_keys[i], meta_vals[i], strlen(meta_vals[i]), err))
            goto fail;
    if (cf_avro_put_long(&w->head, 0, err) || cf_buf_append(&w->head, w->sync, 16, err))
        goto fail;
    return w;
fail:
    cf_avro_writer_free(w);
    return NULL;
}

void cf_avro_writer_free(cf_avro_writer *w)
{
    if (!w)
        return;
    cf_buf_free(&w->head);
    cf_buf_free(&w->block);
    cf_buf_free(&w->out);
    free(w);
}

static int deflate_raw(const uint8_t *in, size_t n, cf_buf *out, cf_err *err)
{
    z_stream z;
    uLong bound;
    int rc;

    memset(&z, 0, sizeof z);
    /* Avro's deflate codec is RFC 1951 without the zlib wrapper: windowBits < 0. */
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return cf_err_set(err, CF_E_NOMEM, "deflateInit failed");
    bound = deflateBound(&z, (uLong)n);
    if (cf_buf_reserve(out, bound, err)) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)bound;
    rc = deflate(&z, Z_FINISH);
    if (rc != Z_STREAM_END) {
        deflateEnd(&z);
        return cf_err_set(err, CF_E_IO, "deflate failed (%d)", rc);
    }
    out->len += z.total_out;
    deflateEnd(&z);
    return 0;
}

static int flush_block(cf_avro_writer *w, cf_err *err)
{
    cf_buf z;

    if (w->block_count == 0)
        return 0;
    cf_buf_init(&z, 0);
    if (w->codec == CF_AVRO_DEFLATE && deflate_raw(w->block.data, w->block.len, &z, err))
        goto fail;
    if (cf_avro_put_long(&w->out, w->block_count, err))
        goto fail;
    if (w->codec == CF_AVRO_DEFLATE) {
        if (cf_avro_put_bytes(&w->out, z.data, z.len, err))
            goto fail;
    } else if (cf_avro_put_bytes(&w->out, w->block.data, w->block.len, err))
        goto fail;
    if (cf_buf_append(&w->out, w->sync, 16, err))
        goto fail;
    cf_buf_free(&z);
    cf_buf_reset(&w->block);
    w->block_count = 0;
    return 0;
fail:
    cf_buf_free(&z);
    return -1;
}

int cf_avro_writer_append(cf_avro_writer *w, const void *datum, size_t len, cf_err *err)
{
    if (w->finished)
        return cf_err_set(err, CF_E_ARG, "avro writer already finished");
    if (cf_buf_append(&w->block, datum, len, err))
        return -1;
    w->block_count++;
    w->count++;
    if (w->block.len >= BLOCK_TARGET)
        return flush_block(w, err);
    return 0;
}

int cf_avro_writer_finish(cf_avro_writer *w, cf_buf *out, cf_err *err)
{
    if (w->finished)
        return cf_err_set(err, CF_E_ARG, "avro writer already finished");
    if (flush_block(w, err))
        return -1;
    w->finished = true;
    if (cf_buf_append(out, w->head.data, w->head.len, err) ||
        cf_buf_append(out, w->out.data, w->out.len, err))
        return -1;
    return 0;
}

int64_t cf_avro_writer_count(const cf_avro_writer *w) { return w->count; }

/* ---- reader ---------------------------------------------------------- */

typedef cf_avro_cur cursor;

struct cf_avro_reader {
    uint8_t  *owned;           /* file contents when opened from a file */
    const uint8_t *data;
    size_t    len;
    cursor    c;               /* position in the file (next block) */
    int       nmeta;
    char    **meta_k, **meta_v;
    schema   *sch;
    int       codec;           /* CODEC_* */
    uint8_t   sync[16];
    cf_buf    zbuf;            /* inflated block */
    cursor    blk;             /* remaining bytes of the current block */
    int64_t   left;            /* records left in the current block */
    cf_arena *arena;
};

int cf_avro_read_long_slow(cf_avro_cur *c, int64_t *out, cf_err *err)
{
    uint64_t z = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t b;
        if (c->p >= c->end)
            return cf_err_setpos(err, CF_E_PARSE, (long)(c->p - c->start), "avro: truncated varint");
        b = *c->p++;
        if (shift == 63 && (b & 0x7e))
            return cf_err_setpos(err, CF_E_PARSE, (long)(c->p - c->start), "avro: varint too long");
        z |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return 0;
        }
    }
    return cf_err_setpos(err, CF_E_PARSE, (long)(c->p - c->start), "avro: varint too long");
}

int cf_avro_read_fail(cf_avro_cur *c, const char *what, cf_err *err)
{
    return cf_err_setpos(err, CF_E_PARSE, (long)(c->p - c->start), "avro: %s at byte %ld", what,
                         (long)(c->p - c->start));
}

#define get_long  cf_avro_read_long
#define get_len   cf_avro_read_len
#define get_fixed cf_avro_read_fixed

static int decode(cf_avro_reader *r, cursor *c, const snode *n, cf_avro_value *v,
                  int depth, cf_err *err);

/* Decode the blocks of an array or map into a contiguous item vector. */
static int decode_blocks(cf_avro_reader *r, cursor *c, const snode *n, cf_avro_value *v,
                         int depth, cf_err *err)
{
    bool is_map = n->k == S_MAP;
    size_t cap = 0, cnt = 0;
    cf_avro_value *items = NULL, *keys = NULL;

    for (;;) {
        int64_t bc;
        if (get_long(c, &bc, err))
            return -1;
        if (bc == 0)
            break;
        if (bc < 0) {           /* negative count: a byte size follows */
            int64_t skip;
            if (bc == INT64_MIN || get_long(c, &skip, err))
                return cf_err_set(err, CF_E_PARSE, "avro: bad block count");
            bc = -bc;
        }
        /* Each item takes at least one byte unless its type is null; a
         * zero-byte item type is capped so a tiny input cannot ask for
         * billions of values. */
        if ((uint64_t)bc > (uint64_t)(c->end - c->p) + 1024 || cnt + (size_t)bc > (1u << 24))
            return cf_err_setpos(err, CF_E_PARSE, (long)(c->p - c->start),
                                 "avro: block of %lld items past the data", (long long)bc);
        if (cnt + (size_t)bc > cap) {
            size_t ncap = cnt + (size_t)bc;
            cf_avro_value *ni = cf_arena_alloc(r->arena, sizeof *ni * ncap, err);
            cf_avro_value *nk = is_map ? cf_arena_alloc(r->arena, sizeof *nk * ncap, err) : NULL;
            if (!ni || (is_map && !nk))
                return -1;
            if (cnt) {
                memcpy(ni, items, sizeof *ni * cnt);
                if (is_map)
                    memcpy(nk, keys, sizeof *nk * cnt);
            }
            items = ni;
            keys = nk;
            cap = ncap;
        }
        for (int64_t i = 0; i < bc; i++, cnt++) {
            if (is_map) {
                size_t kl;
                memset(&keys[cnt], 0, sizeof keys[cnt]);
                keys[cnt].kind = CF_AV_STRING;
                if (get_len(c, &kl, err) || get_fixed(c, kl, &keys[cnt].p, err))
                    return -1;
                keys[cnt].n = kl;
            }
            if (decode(r, c, n->sub[0], &items[cnt], depth + 1, err))
                return -1;
        }
    }
    v->kind = is_map ? CF_AV_MAP : CF_AV_ARRAY;
    v->items = items;
    v->keys = keys;
    v->n = cnt;
    return 0;
}

static int decode(cf_avro_reader *r, cursor *c, const snode *n, cf_avro_value *v,
                  int depth, cf_err *err)
{
    const uint8_t *p = NULL;
    size_t len;
    int64_t x;

    memset(v, 0, sizeof *v);
    if (depth > MAX_DEPTH)
        return cf_err_set(err, CF_E_TOOBIG, "avro value nested deeper than %d", MAX_DEPTH);
    switch (n->k) {
    case S_NULL:
        v->kind = CF_AV_NULL;
        return 0;
    case S_BOOL:
        if (get_fixed(c, 1, &p, err))
            return -1;
        v->kind = CF_AV_BOOL;
        v->i = p[0] != 0;
        return 0;
    case S_INT:
    case S_LONG:
    case S_ENUM:
        if (get_long(c, &x, err))
            return -1;
        if (n->k == S_INT && (x < INT32_MIN || x > INT32_MAX))
            return cf_err_set(err, CF_E_PARSE, "avro: int out of range");
        if (n->k == S_ENUM && (x < 0 || x >= n->n))
            return cf_err_set(err, CF_E_PARSE, "avro: enum index %lld out of range", (long long)x);
        v->kind = n->k == S_INT ? CF_AV_INT : n->k == S_LONG ? CF_AV_LONG : CF_AV_ENUM;
        v->i = x;
        return 0;
    case S_FLOAT: {
        float f;
        if (cf_avro_read_float(c, &f, err))
            return -1;
        v->kind = CF_AV_FLOAT;
        v->d = f;
        return 0;
    }
    case S_DOUBLE:
        if (cf_avro_read_double(c, &v->d, err))
            return -1;
        v->kind = CF_AV_DOUBLE;
        return 0;
    case S_BYTES:
    case S_STRING:
        if (get_len(c, &len, err) || get_fixed(c, len, &v->p, err))
            return -1;
        v->kind = n->k == S_BYTES ? CF_AV_BYTES : CF_AV_STRING;
        v->n = len;
        return 0;
    case S_FIXED:
        if (get_fixed(c, n->size, &v->p, err))
            return -1;
        v->kind = CF_AV_FIXED;
        v->n = n->size;
        return 0;
    case S_UNION:
        if (get_long(c, &x, err))
            return -1;
        if (x < 0 || x >= n->n)
            return cf_err_set(err, CF_E_PARSE, "avro: union branch %lld out of range", (long long)x);
        return decode(r, c, n->sub[x], v, depth + 1, err);
    case S_ARRAY:
    case S_MAP:
        return decode_blocks(r, c, n, v, depth, err);
    case S_RECORD:
        v->kind = CF_AV_RECORD;
        v->n = (size_t)n->n;
        v->names = (const char *const *)n->names;
        v->field_ids = n->ids;
        if (n->n == 0)
            return 0;
        if (!(v->items = cf_arena_alloc(r->arena, sizeof *v->items * (size_t)n->n, err)))
            return -1;
        for (int i = 0; i < n->n; i++)
            if (decode(r, c, n->sub[i], &v->items[i], depth + 1, err))
                return -1;
        return 0;
    }
    return cf_err_set(err, CF_E_PARSE, "avro: bad schema node");
}

void cf_avro_reader_free(cf_avro_reader *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nmeta; i++) {
        free(r->meta_k[i]);
        free(r->meta_v[i]);
    }
    free(r->meta_k);
    free(r->meta_v);
    schema_free(r->sch);
    cf_buf_free(&r->zbuf);
    cf_arena_free(r->arena);
    free(r->owned);
    free(r);
}

static char *dup_n(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static int read_header(cf_avro_reader *r, cf_err *err)
{
    cursor *c = &r->c;
    const uint8_t *p = NULL;
    const char *codec, *sj;

    if (get_fixed(c, 4, &p, err) || memcmp(p, MAGIC, 4))
        return cf_err_setpos(err, CF_E_PARSE, 0, "not an avro object container file");
    for (;;) {
        int64_t cnt;
        if (get_long(c, &cnt, err))
            return -1;
        if (cnt == 0)
            break;
        if (cnt < 0) {
            int64_t skip;
            if (cnt == INT64_MIN || get_long(c, &skip, err))
                return cf_err_set(err, CF_E_PARSE, "avro: bad metadata block");
            cnt = -cnt;
        }
        if (cnt > MAX_META - r->nmeta)
            return cf_err_set(err, CF_E_TOOBIG, "avro: more than %d metadata entries", MAX_META);
        for (int64_t i = 0; i < cnt; i++) {
            size_t kl, vl;
            const uint8_t *kp = NULL, *vp = NULL;
            char **nk, **nv;
            if (get_len(c, &kl, err) || get_fixed(c, kl, &kp, err) ||
                get_len(c, &vl, err) || get_fixed(c, vl, &vp, err))
                return -1;
            nk = realloc(r->meta_k, sizeof *nk * (size_t)(r->nmeta + 1));
            if (nk)
                r->meta_k = nk;
            nv = realloc(r->meta_v, sizeof *nv * (size_t)(r->nmeta + 1));
            if (nv)
                r->meta_v = nv;
            if (!nk || !nv)
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            r->meta_k[r->nmeta] = dup_n(kp, kl);
            r->meta_v[r->nmeta] = dup_n(vp, vl);
            r->nmeta++;
            if (!r->meta_k[r->nmeta - 1] || !r->meta_v[r->nmeta - 1])
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
    }
    if (get_fixed(c, 16, &p, err))
        return -1;
    memcpy(r->sync, p, 16);
    codec = cf_avro_reader_meta(r, "avro.codec");
    if (!codec || !strcmp(codec, "null"))
        r->codec = CODEC_NULL;
    else if (!strcmp(codec, "deflate"))
        r->codec = CODEC_DEFLATE;
    else if (!strcmp(codec, "snappy"))
        r->codec = CODEC_SNAPPY;
    else if (!strcmp(codec, "zstandard"))
        r->codec = CODEC_ZSTD;
    else
        return cf_err_set(err, CF_E_UNSUPPORTED, "avro codec '%.40s' is not supported", codec);
    if (!(sj = cf_avro_reader_meta(r, "avro.schema")))
        return cf_err_set(err, CF_E_PARSE, "avro file has no avro.schema");
    if (!(r->sch = schema_parse(sj, strlen(sj), err)))
        return -1;
    return 0;
}

cf_avro_reader *cf_avro_reader_open_mem(const void *data, size_t len, cf_err *err)
{
    cf_avro_reader *r = calloc(1, sizeof *r);

    if (!r) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    r->data = data;
    r->len = len;
    r->c = (cursor){ r->data, r->data + len, r->data };
    cf_buf_init(&r->zbuf, MAX_BLOCK_BYTES);
    if (!(r->arena = cf_arena_new(ARENA_CAP))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (read_header(r, err))
        goto fail;
    return r;
fail:
    cf_avro_reader_free(r);
    return NULL;
}

cf_avro_reader *cf_avro_reader_open_file(cf_store *st, const char *path, cf_err *err)
{
    cf_buf b;
    cf_avro_reader *r;
    size_t len;
    uint8_t *data;

    cf_buf_init(&b, MAX_FILE_BYTES);
    if (cf_store_get(st, path, &b, err)) {
        cf_buf_free(&b);
        return NULL;
    }
    data = cf_buf_steal(&b, &len);
    if (!(r = cf_avro_reader_open_mem(data ? data : (const uint8_t *)"", len, err))) {
        free(data);
        cf_err_wrap(err, "%s", path);
        return NULL;
    }
    r->owned = data;
    return r;
}

const char *cf_avro_reader_meta(const cf_avro_reader *r, const char *key)
{
    for (int i = 0; i < r->nmeta; i++)
        if (!strcmp(r->meta_k[i], key))
            return r->meta_v[i];
    return NULL;
}

static int inflate_raw(const uint8_t *in, size_t n, cf_buf *out, cf_err *err)
{
    z_stream z;
    int rc;

    memset(&z, 0, sizeof z);
    cf_buf_reset(out);
    if (inflateInit2(&z, -15) != Z_OK)
        return cf_err_set(err, CF_E_NOMEM, "inflateInit failed");
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    do {
        size_t room = n * 4 + 4096;
        if (cf_buf_reserve(out, room, err)) {
            inflateEnd(&z);
            return -1;
        }
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)(out->alloc - out->len - 1);
        rc = inflate(&z, Z_NO_FLUSH);
        out->len = out->alloc - 1 - z.avail_out;
        if (rc != Z_OK && rc != Z_STREAM_END) {
            inflateEnd(&z);
            return cf_err_set(err, CF_E_PARSE, "avro: bad deflate block (%d)", rc);
        }
        if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
            inflateEnd(&z);
            return cf_err_set(err, CF_E_PARSE, "avro: truncated deflate block");
        }
    } while (rc != Z_STREAM_END);
    inflateEnd(&z);
    return 0;
}

/* Avro's snappy codec: the snappy block, then a big-endian CRC-32 of the
 * uncompressed bytes. */
static int unsnappy(const uint8_t *in, size_t n, cf_buf *out, cf_err *err)
{
    size_t len;
    uint32_t want;

    cf_buf_reset(out);
    if (n < 4 || snappy_uncompressed_length((const char *)in, n - 4, &len) != SNAPPY_OK)
        return cf_err_set(err, CF_E_PARSE, "avro: bad snappy block");
    if (len > MAX_BLOCK_BYTES)
        return cf_err_set(err, CF_E_TOOBIG, "avro block inflates to %zu bytes", len);
    if (cf_buf_reserve(out, len, err))
        return -1;
    if (snappy_uncompress((const char *)in, n - 4, (char *)out->data, &len) != SNAPPY_OK)
        return cf_err_set(err, CF_E_PARSE, "avro: bad snappy block");
    out->len = len;
    want = (uint32_t)in[n - 4] << 24 | (uint32_t)in[n - 3] << 16 | (uint32_t)in[n - 2] << 8 | in[n - 1];
    if ((uint32_t)crc32(0L, out->data, (uInt)len) != want)
        return cf_err_set(err, CF_E_PARSE, "avro: snappy block checksum mismatch");
    return 0;
}

static int unzstd(const uint8_t *in, size_t n, cf_buf *out, cf_err *err)
{
    ZSTD_DStream *z = ZSTD_createDStream();
    ZSTD_inBuffer ib = { in, n, 0 };
    size_t rc = 1;

    cf_buf_reset(out);
    if (!z)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    /* Streamed: a frame need not state its size. */
    while (rc != 0) {
        ZSTD_outBuffer ob;
        if (cf_buf_reserve(out, 65536, err)) {
            ZSTD_freeDStream(z);
            return -1;
        }
        ob = (ZSTD_outBuffer){ out->data + out->len, out->alloc - out->len - 1, 0 };
        rc = ZSTD_decompressStream(z, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(rc)) {
            ZSTD_freeDStream(z);
            return cf_err_set(err, CF_E_PARSE, "avro: bad zstandard block: %s", ZSTD_getErrorName(rc));
        }
        if (rc != 0 && ib.pos == ib.size && ob.pos < ob.size) {
            ZSTD_freeDStream(z);
            return cf_err_set(err, CF_E_PARSE, "avro: truncated zstandard block");
        }
    }
    ZSTD_freeDStream(z);
    return 0;
}

static int next_block(cf_avro_reader *r, cf_err *err)
{
    int64_t cnt;
    size_t sz;
    const uint8_t *p = NULL, *sync = NULL;

    if (get_long(&r->c, &cnt, err) || get_len(&r->c, &sz, err) || get_fixed(&r->c, sz, &p, err))
        return -1;
    if (cnt < 0)
        return cf_err_set(err, CF_E_PARSE, "avro: negative block count");
    if (sz > MAX_BLOCK_BYTES)
        return cf_err_set(err, CF_E_TOOBIG, "avro block of %zu bytes", sz);
    if (get_fixed(&r->c, 16, &sync, err))
        return -1;
    if (memcmp(sync, r->sync, 16))
        return cf_err_setpos(err, CF_E_PARSE, (long)(r->c.p - r->data), "avro: sync marker mismatch");
    switch (r->codec) {
    case CODEC_DEFLATE:
        if (inflate_raw(p, sz, &r->zbuf, err))
            return -1;
        break;
    case CODEC_SNAPPY:
        if (unsnappy(p, sz, &r->zbuf, err))
            return -1;
        break;
    case CODEC_ZSTD:
        if (unzstd(p, sz, &r->zbuf, err))
            return -1;
        break;
    default:
        r->blk = (cursor){ p, p + sz, p };
        r->left = cnt;
        return 0;
    }
    r->blk = (cursor){ r->zbuf.data, r->zbuf.data + r->zbuf.len, r->zbuf.data };
    r->left = cnt;
    return 0;
}

int cf_avro_reader_next(cf_avro_reader *r, const cf_avro_value **out, cf_err *err)
{
    cf_avro_value *v;

    while (r->left == 0) {
        if (r->c.p >= r->c.end)
            return 0;
        if (next_block(r, err))
            return -1;
    }
    cf_arena_reset(r->arena);
    if (!(v = cf_arena_alloc(r->arena, sizeof *v, err)))
        return -1;
    if (decode(r, &r->blk, r->sch->root, v, 0, err))
        return -1;
    r->left--;
    *out = v;
    return 1;
}

/* ---- value access ---------------------------------------------------- */

const cf_avro_value *cf_avro_get(const cf_avro_value *v, const char *name)
{
    if (!v || v->kind != CF_AV_RECORD)
        return NULL;
    for (size_t i = 0; i < v->n; i++)
        if (!strcmp(v->names[i], name))
            return &v->items[i];
    return NULL;
}

int64_t cf_avro_get_long(const cf_avro_value *v, const char *name, int64_t dflt)
{
    const cf_avro_value *f = cf_avro_get(v, name);
    if (!f || (f->kind != CF_AV_INT && f->kind != CF_AV_LONG && f->kind != CF_AV_BOOL))
        return dflt;
    return f->i;
}

const char *cf_avro_get_str(const cf_avro_value *v, const char *name, char *buf, size_t bufsz)
{
    const cf_avro_value *f = cf_avro_get(v, name);
    size_t n;
    if (!f || (f->kind != CF_AV_STRING && f->kind != CF_AV_BYTES) || bufsz == 0)
        return NULL;
    n = f->n < bufsz - 1 ? f->n : bufsz - 1;
    memcpy(buf, f->p, n);
    buf[n] = 0;
    return buf;
}

/* ---- files ----------------------------------------------------------- */

int cf_avro_write_file(cf_store *st, const char *path, const void *p, size_t n, cf_err *err)
{
    cf_store_file *f = cf_store_file_create(st, path, err);

    if (!f)
        return -1;
    if (cf_store_file_write(f, p, n, err)) {
        cf_store_file_discard(f);
        return -1;
    }
    return cf_store_file_finish(f, err);
}
