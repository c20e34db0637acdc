/* reader.c - Parquet reader over untrusted bytes: footer and schema parse,
 * column chunks page by page (v1 and v2, plain and dictionary, every codec
 * we link), flat batches and nested leaves with their levels. */
#include "format/parquet/parquet.h"
#include "format/parquet/parquet_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PAGE_BYTES   ((size_t)1 << 30)
#define MAX_PAGE_VALUES  ((int64_t)1 << 26)
#define MAX_DEPTH        32

typedef struct selem {
    char   *name;
    int     ptype;            /* -1: group */
    int     type_len;
    int     rep;
    int     nchildren;
    int     ctype;            /* -1: none */
    int     scale, precision;
    int     field_id;
    int     lt;               /* LogicalType member, 0: none */
    bool    lt_utc;
    int     lt_unit;
    int     lt_bits;
    bool    lt_signed;
} selem;

/* How a physical value becomes a cdcflow value. */
enum { CV_BOOL, CV_I32, CV_U32, CV_TIME_MS32, CV_I64, CV_I64_MUL1000, CV_I64_DIV1000,
       CV_INT96, CV_F32, CV_F64, CV_BYTES, CV_UUID, CV_DEC64, CV_DECSTR };

typedef struct leaf {
    int     elem;
    int16_t max_def, max_rep;
    char   *path;
    cf_type type;
    int     cv;
    int     ptype, type_len;
} leaf;

typedef struct chunk {
    int     ptype, codec;
    int64_t num_values, data_off, dict_off, total_comp;
} chunk;

typedef struct rgroup {
    int64_t num_rows;
    chunk  *cols;
} rgroup;

struct cf_pq_reader {
    cf_store      *st;         /* NULL for a reader over memory */
    char          *path;
    cf_buf         tail;       /* the file's last bytes, read once: footer and its neighbours */
    const uint8_t *mem;
    size_t         size;
    selem         *el;
    int            nel;
    leaf          *leaves;
    int            nleaves;
    int           *flat_leaf;
    cf_schema     *schema;
    int64_t        num_rows;
    rgroup        *rgs;
    int            nrg;
    char         **kv;         /* key, value pairs */
    int            nkv;
    cf_pq_codec_ctx *cc;
    cf_buf         raw, page, dict, alt;   /* alt: a page re-encoded as PLAIN */
    uint32_t      *dict_off, *dict_len;
    size_t         ndict, dict_alloc;
    int16_t       *defs, *reps;
    uint32_t      *idx;
    size_t         lv_alloc;
};

/* ---- footer ---------------------------------------------------------- */

static char *dup_bin(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static void parse_logical(cf_tr *t, selem *e)
{
    int16_t id, id2, id3;
    int ty, ty2, ty3;

    cf_tr_struct_begin(t);
    while (cf_tr_field(t, &id, &ty)) {
        if (ty != TC_STRUCT) {
            cf_tr_skip(t, ty);
            continue;
        }
        e->lt = id;
        cf_tr_struct_begin(t);
        while (cf_tr_field(t, &id2, &ty2)) {
            if (id == PQ_LT_DECIMAL && id2 == 1) e->scale = (int)cf_tr_int(t, ty2);
            else if (id == PQ_LT_DECIMAL && id2 == 2) e->precision = (int)cf_tr_int(t, ty2);
            else if ((id == PQ_LT_TIME || id == PQ_LT_TIMESTAMP) && id2 == 1)
                e->lt_utc = cf_tr_bool(t, ty2);
            else if ((id == PQ_LT_TIME || id == PQ_LT_TIMESTAMP) && id2 == 2 && ty2 == TC_STRUCT) {
                cf_tr_struct_begin(t);
                while (cf_tr_field(t, &id3, &ty3)) {
                    e->lt_unit = id3;
                    cf_tr_skip(t, ty3);
                }
                cf_tr_struct_end(t);
            } else if (id == PQ_LT_INTEGER && id2 == 1) e->lt_bits = (int)cf_tr_int(t, ty2);
            else if (id == PQ_LT_INTEGER && id2 == 2) e->lt_signed = cf_tr_bool(t, ty2);
            else cf_tr_skip(t, ty2);
        }
        cf_tr_struct_end(t);
    }
    cf_tr_struct_end(t);
}

static void parse_selem(cf_tr *t, selem *e)
{
    int16_t id;
    int ty;
    size_t n;
    const uint8_t *p;

    memset(e, 0, sizeof *e);
    e->ptype = -1;
    e->ctype = -1;
    cf_tr_struct_begin(t);
    while (cf_tr_field(t, &id, &ty)) {
        switch (id) {
        case 1: e->ptype = (int)cf_tr_int(t, ty); break;
        case 2: e->type_len = (int)cf_tr_int(t, ty); break;
        case 3: e->rep = (int)cf_tr_int(t, ty); break;
        case 4:
            if (ty != TC_BINARY) { cf_tr_fail(t, "schema name is not a string"); break; }
            p = cf_tr_bin(t, &n);
            if (!t->bad) {
                free(e->name);
                if (!(e->name = dup_bin(p, n)))
                    cf_tr_fail(t, "out of memory");
            }
            break;
        case 5: e->nchildren = (int)cf_tr_int(t, ty); break;
        case 6: e->ctype = (int)cf_tr_int(t, ty); break;
        case 7: e->scale = (int)cf_tr_int(t, ty); break;
        case 8: e->precision = (int)cf_tr_int(t, ty); break;
        case 9: e->field_id = (int)cf_tr_int(t, ty); break;
        case 10:
            if (ty == TC_STRUCT) parse_logical(t, e);
            else cf_tr_skip(t, ty);
            break;
        default: cf_tr_skip(t, ty);
        }
    }
    cf_tr_struct_end(t);
    if (!t->bad && !e->name)
        cf_tr_fail(t, "schema element without a name");
}

static void parse_chunk(cf_tr *t, chunk *c)
{
    int16_t id, id2;
    int ty, ty2;
    bool have_meta = false;

    c->dict_off = -1;
    c->ptype = -1;
    cf_tr_struct_begin(t);
    while (cf_tr_field(t, &id, &ty)) {
        if (id == 3 && ty == TC_STRUCT) {
            have_meta = true;
            cf_tr_struct_begin(t);
            while (cf_tr_field(t, &id2, &ty2)) {
                switch (id2) {
                case 1: c->ptype = (int)cf_tr_int(t, ty2); break;
                case 4: c->codec = (int)cf_tr_int(t, ty2); break;
                case 5: c->num_values = cf_tr_int(t, ty2); break;
                case 7: c->total_comp = cf_tr_int(t, ty2); break;
                case 9: c->data_off = cf_tr_int(t, ty2); break;
                case 11: c->dict_off = cf_tr_int(t, ty2); break;
                default: cf_tr_skip(t, ty2);
                }
            }
            cf_tr_struct_end(t);
        } else if (id == 8 || id == 9) {
            cf_tr_fail(t, "encrypted column chunks are not supported");
        } else {
            cf_tr_skip(t, ty);
        }
    }
    cf_tr_struct_end(t);
    if (!t->bad && !have_meta)
        cf_tr_fail(t, "column chunk without metadata");
}

static void parse_rowgroup(cf_tr *t, cf_pq_reader *r, rgroup *g)
{
    int16_t id;
    int ty, et;

    cf_tr_struct_begin(t);
    while (cf_tr_field(t, &id, &ty)) {
        if (id == 1 && ty == TC_LIST) {
            size_t n = cf_tr_list(t, &et);
            if (g->cols) {
                cf_tr_fail(t, "row group lists its columns twice");
                break;
            }
            if (et != TC_STRUCT || n != (size_t)r->nleaves) {
                cf_tr_fail(t, "row group column count differs from the schema");
                break;
            }
            if (!(g->cols = calloc(n ? n : 1, sizeof *g->cols))) {
                cf_tr_fail(t, "out of memory");
                break;
            }
            for (size_t i = 0; i < n && !t->bad; i++)
                parse_chunk(t, &g->cols[i]);
        } else if (id == 3) {
            g->num_rows = cf_tr_int(t, ty);
        } else {
            cf_tr_skip(t, ty);
        }
    }
    cf_tr_struct_end(t);
    if (!t->bad && !g->cols)
        cf_tr_fail(t, "row group without columns");
}

/* ---- schema ---------------------------------------------------------- */

static int leaf_type(leaf *l, const selem *e, cf_err *err)
{
    int ct = e->ctype, lt = e->lt;
    bool dec = lt == PQ_LT_DECIMAL || ct == PQ_CT_DECIMAL;

    l->ptype = e->ptype;
    l->type_len = e->type_len;
    memset(&l->type, 0, sizeof l->type);
    if (dec) {
        if (e->precision < 1 || e->precision > 38 || e->scale < 0 || e->scale > e->precision)
            return cf_err_set(err, CF_E_PARSE, "column %s: bad decimal(%d,%d)", l->path,
                              e->precision, e->scale);
        l->type = (cf_type){ CF_T_DECIMAL, e->precision, e->scale };
    }
    switch (e->ptype) {
    case PQ_BOOLEAN:
        l->type.id = CF_T_BOOL; l->cv = CV_BOOL;
        return 0;
    case PQ_INT32:
        if (dec) { l->cv = e->precision <= 18 ? CV_DEC64 : CV_DECSTR; return 0; }
        if (lt == PQ_LT_DATE || ct == PQ_CT_DATE) { l->type.id = CF_T_DATE; l->cv = CV_I32; return 0; }
        if (lt == PQ_LT_TIME || ct == PQ_CT_TIME_MILLIS) { l->type.id = CF_T_TIME; l->cv = CV_TIME_MS32; return 0; }
        if ((lt == PQ_LT_INTEGER && !e->lt_signed && e->lt_bits == 32) || ct == PQ_CT_UINT_32) {
            l->type.id = CF_T_INT64; l->cv = CV_U32;
            return 0;
        }
        l->type.id = CF_T_INT32; l->cv = CV_I32;
        return 0;
    case PQ_INT64: {
        int unit = 0;
        if (dec) { l->cv = e->precision <= 18 ? CV_I64 : CV_DECSTR; return 0; }
        if (lt == PQ_LT_TIMESTAMP) {
            l->type.id = e->lt_utc ? CF_T_TIMESTAMP : CF_T_TIMESTAMP_NTZ;
            unit = e->lt_unit;
        } else if (lt == PQ_LT_TIME) {
            l->type.id = CF_T_TIME;
            unit = e->lt_unit;
        } else if (ct == PQ_CT_TIMESTAMP_MICROS || ct == PQ_CT_TIMESTAMP_MILLIS) {
            l->type.id = CF_T_TIMESTAMP;
            unit = ct == PQ_CT_TIMESTAMP_MILLIS ? PQ_UNIT_MILLIS : PQ_UNIT_MICROS;
        } else if (ct == PQ_CT_TIME_MICROS) {
            l->type.id = CF_T_TIME;
            unit = PQ_UNIT_MICROS;
        } else {
            l->type.id = CF_T_INT64;
        }
        l->cv = unit == PQ_UNIT_MILLIS ? CV_I64_MUL1000 : unit == PQ_UNIT_NANOS ? CV_I64_DIV1000 : CV_I64;
        return 0;
    }
    case PQ_INT96:
        l->type.id = CF_T_TIMESTAMP; l->cv = CV_INT96;
        return 0;
    case PQ_FLOAT:
        l->type.id = CF_T_FLOAT; l->cv = CV_F32;
        return 0;
    case PQ_DOUBLE:
        l->type.id = CF_T_DOUBLE; l->cv = CV_F64;
        return 0;
    case PQ_FIXED_LEN_BYTE_ARRAY:
        if (e->type_len <= 0 || e->type_len > (1 << 20))
            return cf_err_set(err, CF_E_PARSE, "column %s: bad fixed length %d", l->path, e->type_len);
        if (dec) {
            if (e->type_len > 16)
                return cf_err_set(err, CF_E_UNSUPPORTED, "column %s: decimal wider than 16 bytes", l->path);
            l->cv = e->precision <= 18 ? CV_DEC64 : CV_DECSTR;
            return 0;
        }
        if (lt == PQ_LT_UUID && e->type_len == 16) { l->type.id = CF_T_UUID; l->cv = CV_UUID; return 0; }
        l->type.id = CF_T_BINARY; l->cv = CV_BYTES;
        return 0;
    case PQ_BYTE_ARRAY:
        if (dec) { l->cv = e->precision <= 18 ? CV_DEC64 : CV_DECSTR; return 0; }
        if (lt == PQ_LT_STRING || lt == PQ_LT_ENUM || lt == PQ_LT_JSON ||
            ct == PQ_CT_UTF8 || ct == PQ_CT_ENUM || ct == PQ_CT_JSON)
            l->type.id = CF_T_STRING;
        else
            l->type.id = CF_T_BINARY;
        l->cv = CV_BYTES;
        return 0;
    }
    return cf_err_set(err, CF_E_PARSE, "column %s: unknown physical type %d", l->path, e->ptype);
}

typedef struct swalk {
    cf_pq_reader *r;
    int           at;
    const char   *names[MAX_DEPTH + 1];
    int           nleaves;
} swalk;

/* Walk element k's subtree; counts leaves (r->leaves NULL) or fills them. */
static int walk_schema(swalk *s, int depth, int16_t d, int16_t rp, cf_err *err)
{
    cf_pq_reader *r = s->r;
    int k = s->at++;
    const selem *e;

    if (k >= r->nel)
        return cf_err_set(err, CF_E_PARSE, "schema is shorter than its groups claim");
    if (depth > MAX_DEPTH)
        return cf_err_set(err, CF_E_PARSE, "schema nested deeper than %d", MAX_DEPTH);
    e = &r->el[k];
    if (e->rep == 1)
        d++;
    else if (e->rep == 2) {
        d++;
        rp++;
    } else if (e->rep != 0) {
        return cf_err_set(err, CF_E_PARSE, "bad repetition type %d", e->rep);
    }
    s->names[depth] = e->name;
    if (e->nchildren > 0) {
        if (e->nchildren > r->nel)
            return cf_err_set(err, CF_E_PARSE, "group %s claims %d children", e->name, e->nchildren);
        for (int i = 0; i < e->nchildren; i++)
            if (walk_schema(s, depth + 1, d, rp, err))
                return -1;
        return 0;
    }
    if (e->ptype < 0)
        return cf_err_set(err, CF_E_PARSE, "schema element %s has neither type nor children", e->name);
    if (r->leaves) {
        leaf *l = &r->leaves[s->nleaves];
        size_t len = 0;
        for (int i = 1; i <= depth; i++)
            len += strlen(s->names[i]) + 1;
        if (!(l->path = malloc(len + 1)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        l->path[0] = '\0';
        for (int i = 1; i <= depth; i++) {
            if (i > 1)
                strcat(l->path, ".");
            strcat(l->path, s->names[i]);
        }
        l->elem = k;
        l->max_def = d;
        l->max_rep = rp;
        if (leaf_type(l, e, err))
            return -1;
    }
    s->nleaves++;
    return 0;
}

static int build_schema(cf_pq_reader *r, cf_err *err)
{
    swalk s = { .r = r };
    const selem *root;
    int top;

    if (r->nel < 1)
        return cf_err_set(err, CF_E_PARSE, "empty schema");
    root = &r->el[0];
    if (root->nchildren < 0 || root->nchildren >= r->nel + 1)
        return cf_err_set(err, CF_E_PARSE, "bad root schema element");
    /* pass 1: count leaves */
    s.at = 1;
    for (int i = 0; i < root->nchildren; i++)
        if (walk_schema(&s, 1, 0, 0, err))
            return -1;
    if (s.at != r->nel)
        return cf_err_set(err, CF_E_PARSE, "schema has %d elements, its groups hold %d", r->nel, s.at);
    r->nleaves = s.nleaves;
    if (!(r->leaves = calloc((size_t)(s.nleaves ? s.nleaves : 1), sizeof *r->leaves)) ||
        !(r->flat_leaf = calloc((size_t)(s.nleaves ? s.nleaves : 1), sizeof *r->flat_leaf)) ||
        !(r->schema = cf_schema_new()))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    s.at = 1;
    s.nleaves = 0;
    for (int i = 0; i < root->nchildren; i++)
        if (walk_schema(&s, 1, 0, 0, err))
            return -1;
    /* flat view: top-level primitive, non-repeated columns */
    top = 1;
    for (int i = 0; i < root->nchildren; i++) {
        const selem *e = &r->el[top];
        int lf = -1;
        for (int j = 0; j < r->nleaves; j++)
            if (r->leaves[j].elem == top)
                lf = j;
        if (lf >= 0 && e->rep != 2) {
            int fi = cf_schema_add(r->schema, e->name, r->leaves[lf].type, e->rep == 1,
                                   e->field_id, err);
            if (fi < 0)
                return -1;
            r->schema->fields[fi].field_id = e->field_id;   /* keep 0 when absent */
            r->flat_leaf[fi] = lf;
        }
        /* skip this child's subtree */
        int skip = 1, j = top;
        while (skip > 0 && j < r->nel) {
            skip += r->el[j].nchildren > 0 ? r->el[j].nchildren : 0;
            skip--;
            j++;
        }
        top = j;
    }
    return 0;
}

static int parse_footer(cf_pq_reader *r, const uint8_t *p, size_t n, cf_err *err)
{
    cf_tr t;
    int16_t id;
    int ty, et;
    bool have_schema = false, have_rgs = false;
    const uint8_t *rg_at = NULL;
    size_t nrg = 0;

    cf_tr_init(&t, p, n);
    while (cf_tr_field(&t, &id, &ty)) {
        if (id == 2 && ty == TC_LIST && !have_schema) {
            size_t k = cf_tr_list(&t, &et);
            have_schema = true;
            if (et != TC_STRUCT || k == 0) {
                cf_tr_fail(&t, "bad schema list");
                break;
            }
            if (!(r->el = calloc(k, sizeof *r->el))) {
                cf_tr_fail(&t, "out of memory");
                break;
            }
            for (size_t i = 0; i < k && !t.bad; i++) {
                parse_selem(&t, &r->el[i]);
                r->nel = (int)i + 1;
            }
        } else if (id == 3) {
            r->num_rows = cf_tr_int(&t, ty);
        } else if (id == 4 && ty == TC_LIST && !have_rgs) {
            /* row groups need the leaf count: remember where they are */
            have_rgs = true;
            nrg = cf_tr_list(&t, &et);
            rg_at = t.p;
            if (et != TC_STRUCT && nrg) {
                cf_tr_fail(&t, "bad row group list");
                break;
            }
            for (size_t i = 0; i < nrg && !t.bad; i++)
                cf_tr_skip(&t, TC_STRUCT);
        } else if (id == 5 && ty == TC_LIST) {
            size_t k = cf_tr_list(&t, &et);
            if (et != TC_STRUCT || r->kv) {
                cf_tr_skip(&t, TC_STRUCT);  /* tolerate: ignore odd metadata */
                continue;
            }
            if (!(r->kv = calloc(k * 2 + 1, sizeof *r->kv))) {
                cf_tr_fail(&t, "out of memory");
                break;
            }
            for (size_t i = 0; i < k && !t.bad; i++) {
                int16_t id2;
                int ty2;
                cf_tr_struct_begin(&t);
                while (cf_tr_field(&t, &id2, &ty2)) {
                    if ((id2 == 1 || id2 == 2) && ty2 == TC_BINARY) {
                        size_t len;
                        const uint8_t *s = cf_tr_bin(&t, &len);
                        char **slot = &r->kv[i * 2 + (size_t)(id2 - 1)];
                        if (t.bad)
                            break;
                        free(*slot);
                        if (!(*slot = dup_bin(s, len)))
                            cf_tr_fail(&t, "out of memory");
                    } else {
                        cf_tr_skip(&t, ty2);
                    }
                }
                cf_tr_struct_end(&t);
                r->nkv = (int)i + 1;
            }
        } else if (id == 8) {
            cf_tr_fail(&t, "encrypted files are not supported");
        } else {
            cf_tr_skip(&t, ty);
        }
    }
    if (t.bad)
        return cf_err_set(err, CF_E_PARSE, "parquet footer: %s", t.why);
    if (!have_schema)
        return cf_err_set(err, CF_E_PARSE, "parquet footer has no schema");
    if (build_schema(r, err))
        return -1;
    if (nrg > INT32_MAX)
        return cf_err_set(err, CF_E_PARSE, "too many row groups");
    if (nrg) {
        cf_tr t2;
        int64_t rows = 0;
        if (!(r->rgs = calloc(nrg, sizeof *r->rgs)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        r->nrg = (int)nrg;
        cf_tr_init(&t2, rg_at, (size_t)(p + n - rg_at));
        for (size_t i = 0; i < nrg && !t2.bad; i++)
            parse_rowgroup(&t2, r, &r->rgs[i]);
        if (t2.bad)
            return cf_err_set(err, CF_E_PARSE, "parquet row group metadata: %s", t2.why);
        for (size_t i = 0; i < nrg; i++) {
            if (r->rgs[i].num_rows < 0 || r->rgs[i].num_rows > INT64_MAX - rows)
                return cf_err_set(err, CF_E_PARSE, "bad row count in row group %zu", i);
            rows += r->rgs[i].num_rows;
        }
        if (rows != r->num_rows)
            return cf_err_set(err, CF_E_PARSE, "row groups hold %lld rows, footer says %lld",
                              (long long)rows, (long long)r->num_rows);
    } else if (r->num_rows != 0) {
        return cf_err_set(err, CF_E_PARSE, "rows but no row groups");
    }
    return 0;
}

/* ---- open / close ---------------------------------------------------- */

void cf_pq_reader_close(cf_pq_reader *r)
{
    if (!r)
        return;
    free(r->path);
    cf_buf_free(&r->tail);
    for (int i = 0; i < r->nel; i++)
        free(r->el[i].name);
    free(r->el);
    for (int i = 0; i < r->nleaves; i++)
        free(r->leaves[i].path);
    free(r->leaves);
    free(r->flat_leaf);
    cf_schema_free(r->schema);
    for (int i = 0; i < r->nrg; i++)
        free(r->rgs[i].cols);
    free(r->rgs);
    for (int i = 0; i < r->nkv * 2; i++)
        free(r->kv[i]);
    free(r->kv);
    cf_pq_codec_free(r->cc);
    cf_buf_free(&r->raw);
    cf_buf_free(&r->page);
    cf_buf_free(&r->dict);
    cf_buf_free(&r->alt);
    free(r->dict_off);
    free(r->dict_len);
    free(r->defs);
    free(r->reps);
    free(r->idx);
    free(r);
}

/* Bytes [off, off+n) of the file: a pointer into memory or into r->raw. */
static const uint8_t *file_bytes(cf_pq_reader *r, int64_t off, int64_t n, cf_err *err)
{
    if (off < 0 || n < 0 || (uint64_t)off > r->size || (uint64_t)n > r->size - (uint64_t)off) {
        cf_err_set(err, CF_E_PARSE, "range %lld+%lld outside the file (%zu bytes)",
                   (long long)off, (long long)n, r->size);
        return NULL;
    }
    if (r->mem)
        return r->mem + off;
    if ((uint64_t)off >= r->size - r->tail.len)
        return r->tail.data + ((uint64_t)off - (r->size - r->tail.len));
    r->raw.len = 0;
    if (cf_buf_reserve(&r->raw, (size_t)n + 1, err) ||
        cf_store_get_range(r->st, r->path, (uint64_t)off, (size_t)n, r->raw.data, err))
        return NULL;
    r->raw.len = (size_t)n;
    return r->raw.data;
}

static cf_pq_reader *open_common(cf_pq_reader *r, cf_err *err)
{
    const uint8_t *p;
    uint32_t flen;

    if (!(r->cc = cf_pq_codec_new())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (r->size < 12) {
        cf_err_set(err, CF_E_PARSE, "not a parquet file: %zu bytes", r->size);
        goto fail;
    }
    if (!(p = file_bytes(r, 0, 4, err)))
        goto fail;
    if (memcmp(p, "PAR1", 4) != 0) {
        cf_err_set(err, CF_E_PARSE, "not a parquet file: bad leading magic");
        goto fail;
    }
    if (!(p = file_bytes(r, (int64_t)r->size - 8, 8, err)))
        goto fail;
    if (memcmp(p + 4, "PAR1", 4) != 0) {
        cf_err_set(err, CF_E_PARSE, memcmp(p + 4, "PARE", 4) == 0 ?
                   "encrypted parquet files are not supported" : "not a parquet file: bad trailing magic");
        goto fail;
    }
    flen = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (flen > r->size - 12) {
        cf_err_set(err, CF_E_PARSE, "footer length %u larger than the file", flen);
        goto fail;
    }
    if (!(p = file_bytes(r, (int64_t)(r->size - 8 - flen), flen, err)))
        goto fail;
    if (parse_footer(r, p, flen, err))
        goto fail;
    return r;
fail:
    cf_pq_reader_close(r);
    return NULL;
}

/* Small files are read whole in one request; larger ones have their
 * footer read with a guess at its size, usually right.  On object storage
 * a request costs milliseconds whatever its size, so files there are read
 * whole up to a larger size (a column chunk each would be a request). */
#define TAIL_BYTES        ((size_t)64 << 10)
#define REMOTE_WHOLE_BYTES ((size_t)8 << 20)

cf_pq_reader *cf_pq_reader_open(cf_store *st, const char *path, cf_err *err)
{
    cf_pq_reader *r = calloc(1, sizeof *r);
    cf_store_stat sb;
    size_t t;

    if (!r || !(r->path = strdup(path))) {
        free(r);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    r->st = st;
    if (cf_store_head(st, path, &sb, err)) {
        cf_pq_reader_close(r);
        return NULL;
    }
    r->size = (size_t)sb.size;
    t = r->size <= (cf_store_is_local(st) ? TAIL_BYTES : REMOTE_WHOLE_BYTES) ? r->size : TAIL_BYTES;
    if (cf_buf_reserve(&r->tail, t + 1, err) ||
        cf_store_get_range(st, path, r->size - t, t, r->tail.data, err)) {
        cf_err_wrap(err, "%s", path);
        cf_pq_reader_close(r);
        return NULL;
    }
    r->tail.len = t;
    if (!open_common(r, err)) {
        cf_err_wrap(err, "%s", path);
        return NULL;
    }
    return r;
}

cf_pq_reader *cf_pq_reader_open_mem(const void *data, size_t len, cf_err *err)
{
    cf_pq_reader *r = calloc(1, sizeof *r);
    if (!r) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    r->mem = data;
    r->size = len;
    return open_common(r, err);
}

const cf_schema *cf_pq_reader_schema(const cf_pq_reader *r) { return r->schema; }
int64_t cf_pq_reader_num_rows(const cf_pq_reader *r) { return r->num_rows; }
int cf_pq_reader_num_row_groups(const cf_pq_reader *r) { return r->nrg; }
int cf_pq_reader_num_leaves(const cf_pq_reader *r) { return r->nleaves; }

int64_t cf_pq_reader_row_group_rows(const cf_pq_reader *r, int rg)
{
    return rg >= 0 && rg < r->nrg ? r->rgs[rg].num_rows : -1;
}

const char *cf_pq_reader_kv(const cf_pq_reader *r, const char *key)
{
    for (int i = 0; i < r->nkv; i++)
        if (r->kv[i * 2] && strcmp(r->kv[i * 2], key) == 0)
            return r->kv[i * 2 + 1] ? r->kv[i * 2 + 1] : "";
    return NULL;
}

const char *cf_pq_reader_leaf_path(const cf_pq_reader *r, int li)
{
    return li >= 0 && li < r->nleaves ? r->leaves[li].path : NULL;
}

int cf_pq_reader_find_leaf(const cf_pq_reader *r, const char *dotted)
{
    for (int i = 0; i < r->nleaves; i++)
        if (strcmp(r->leaves[i].path, dotted) == 0)
            return i;
    return -1;
}

/* ---- output columns -------------------------------------------------- */

static size_t type_width(cf_type t)
{
    switch (t.id) {
    case CF_T_BOOL: return 1;
    case CF_T_INT32: case CF_T_DATE: case CF_T_FLOAT: return 4;
    case CF_T_DECIMAL: return cf_type_is_varlen(t) ? 0 : 8;
    case CF_T_STRING: case CF_T_BINARY: case CF_T_UUID: return 0;
    default: return 8;
    }
}

/* Room for `extra` more values (batch.c owns the column layout). */
static int col_reserve(cf_column *c, size_t extra, cf_err *err)
{
    return cf_col_reserve(c, c->n + extra, 0, err);
}

static void put_null(cf_column *c)
{
    size_t i = c->n++;
    c->valid[i] = 0;
    if (c->offs)
        c->offs[i + 1] = c->offs[i];
    else
        memset((char *)c->vals + i * type_width(c->type), 0, type_width(c->type));
}

static int put_bytes(cf_column *c, const void *p, size_t n, cf_err *err)
{
    size_t i = c->n;
    if (c->data.len + n > UINT32_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "column bytes over 4 GiB in one batch");
    if (cf_buf_append(&c->data, p, n, err))
        return -1;
    c->valid[i] = 1;
    c->offs[i + 1] = (uint32_t)c->data.len;
    c->n++;
    return 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Append physical value (p, n) converted for leaf l. */
static int put_value(const leaf *l, cf_column *c, const uint8_t *p, size_t n, cf_err *err)
{
    size_t i = c->n;
    switch (l->cv) {
    case CV_BOOL:
        ((uint8_t *)c->vals)[i] = p[0] != 0;
        break;
    case CV_I32:
    case CV_F32:
        memcpy((char *)c->vals + i * 4, p, 4);
        break;
    case CV_U32: {
        uint32_t x;
        memcpy(&x, p, 4);
        ((int64_t *)c->vals)[i] = x;
        break;
    }
    case CV_TIME_MS32: {
        int32_t x;
        memcpy(&x, p, 4);
        ((int64_t *)c->vals)[i] = (int64_t)x * 1000;
        break;
    }
    case CV_I64:
    case CV_F64:
        memcpy((char *)c->vals + i * 8, p, 8);
        break;
    case CV_I64_MUL1000: {
        int64_t x;
        memcpy(&x, p, 8);
        ((int64_t *)c->vals)[i] = (int64_t)((uint64_t)x * 1000u);   /* wraps, never UB */
        break;
    }
    case CV_I64_DIV1000: {
        int64_t x;
        memcpy(&x, p, 8);
        ((int64_t *)c->vals)[i] = floor_div(x, 1000);
        break;
    }
    case CV_INT96: {
        int64_t nanos;
        int32_t jd;
        memcpy(&nanos, p, 8);
        memcpy(&jd, p + 8, 4);
        /* out-of-range days wrap instead of overflowing (corrupt input only) */
        ((int64_t *)c->vals)[i] = (int64_t)((uint64_t)((int64_t)jd - 2440588) * 86400000000ULL +
                                            (uint64_t)floor_div(nanos, 1000));
        break;
    }
    case CV_BYTES:
        return put_bytes(c, p, n, err);
    case CV_UUID: {
        char s[40];
        snprintf(s, sizeof s,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11],
                 p[12], p[13], p[14], p[15]);
        return put_bytes(c, s, 36, err);
    }
    case CV_DEC64:
    case CV_DECSTR: {
        __int128 v;
        if (l->ptype == PQ_INT32) {
            int32_t x;
            memcpy(&x, p, 4);
            v = x;
        } else if (l->ptype == PQ_INT64) {
            int64_t x;
            memcpy(&x, p, 8);
            v = x;
        } else {
            if (n > 16 || n == 0)
                return cf_err_set(err, CF_E_PARSE, "column %s: decimal of %zu bytes", l->path, n);
            v = cf_pq_dec_from_be(p, n);
        }
        if (l->cv == CV_DEC64) {
            if (v > INT64_MAX || v < INT64_MIN)
                return cf_err_set(err, CF_E_PARSE, "column %s: decimal out of range", l->path);
            ((int64_t *)c->vals)[i] = (int64_t)v;
            break;
        }
        char s[48];
        size_t k = cf_pq_dec_format(v, l->type.scale, s);
        return put_bytes(c, s, k, err);
    }
    }
    c->valid[i] = 1;
    c->n++;
    return 0;
}

/* ---- pages ----------------------------------------------------------- */

static size_t plain_width(const leaf *l)
{
    switch (l->ptype) {
    case PQ_INT32: case PQ_FLOAT: return 4;
    case PQ_INT64: case PQ_DOUBLE: return 8;
    case PQ_INT96: return 12;
    case PQ_FIXED_LEN_BYTE_ARRAY: return (size_t)l->type_len;
    default: return 0;
    }
}

/* Next plain value from [*p, end): one value of a fixed width or a
 * length-prefixed byte array.  Booleans are handled by the caller. */
static int next_plain(const leaf *l, const uint8_t **p, const uint8_t *end, const uint8_t **v,
                      size_t *n)
{
    size_t w = plain_width(l);
    if (l->ptype == PQ_BYTE_ARRAY) {
        uint32_t len;
        if (end - *p < 4)
            return -1;
        len = (uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 |
              (uint32_t)(*p)[3] << 24;
        *p += 4;
        if (len > (size_t)(end - *p))
            return -1;
        *v = *p;
        *n = len;
        *p += len;
        return 0;
    }
    if ((size_t)(end - *p) < w)
        return -1;
    *v = *p;
    *n = w;
    *p += w;
    return 0;
}

static int load_dict(cf_pq_reader *r, const leaf *l, const uint8_t *p, size_t n, int64_t count,
                     cf_err *err)
{
    const uint8_t *end = p + n;
    if (count < 0 || (uint64_t)count > n + 1)
        return cf_err_set(err, CF_E_PARSE, "dictionary claims %lld values in %zu bytes",
                          (long long)count, n);
    if (l->ptype == PQ_BOOLEAN)
        return cf_err_set(err, CF_E_UNSUPPORTED, "dictionary-encoded booleans");
    r->dict.len = 0;
    if (cf_buf_reserve(&r->dict, n + 1, err))     /* never a NULL base, even when empty */
        return -1;
    if (n)
        memcpy(r->dict.data, p, n);
    r->dict.len = n;
    if ((size_t)count > r->dict_alloc) {
        uint32_t *o = realloc(r->dict_off, (size_t)count * sizeof *o), *ln;
        if (!o)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        r->dict_off = o;
        if (!(ln = realloc(r->dict_len, (size_t)count * sizeof *ln)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        r->dict_len = ln;
        r->dict_alloc = (size_t)count;
    }
    p = r->dict.data;
    end = p + n;
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *v;
        size_t vn;
        if (next_plain(l, &p, end, &v, &vn))
            return cf_err_set(err, CF_E_PARSE, "dictionary page truncated at entry %lld", (long long)i);
        r->dict_off[i] = (uint32_t)(v - r->dict.data);
        r->dict_len[i] = (uint32_t)vn;
    }
    r->ndict = (size_t)count;
    return 0;
}

static int levels_room(cf_pq_reader *r, size_t n, cf_err *err)
{
    if (n <= r->lv_alloc)
        return 0;
    int16_t *d = realloc(r->defs, n * sizeof *d), *rp;
    if (!d)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    r->defs = d;
    if (!(rp = realloc(r->reps, n * sizeof *rp)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    r->reps = rp;
    uint32_t *ix = realloc(r->idx, n * sizeof *ix);
    if (!ix)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    r->idx = ix;
    r->lv_alloc = n;
    return 0;
}

/* DELTA_BYTE_ARRAY of a FIXED_LEN_BYTE_ARRAY column: drop the length
 * prefixes (each must be the fixed length) to get its PLAIN form. */
static int flba_from_lengths(const leaf *l, cf_buf *b, size_t count, cf_err *err)
{
    size_t w = (size_t)l->type_len, in = 0, outp = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t len;
        memcpy(&len, b->data + in, 4);
        if (len != w)
            return cf_err_set(err, CF_E_PARSE, "fixed-length value of %u bytes, %zu expected", len, w);
        memmove(b->data + outp, b->data + in + 4, w);
        in += 4 + w;
        outp += w;
    }
    b->len = outp;
    return 0;
}

/* Decode the values section of a data page: nv level entries whose
 * definition levels are r->defs (or all present when max_def == 0). */
static int page_values(cf_pq_reader *r, const leaf *l, int enc, const uint8_t *p, size_t n,
                       size_t nv, cf_column *c, cf_err *err)
{
    const uint8_t *end = p + n;
    size_t present = 0;

    for (size_t i = 0; i < nv; i++)
        present += !l->max_def || r->defs[i] == l->max_def;
    if (col_reserve(c, nv, err))
        return -1;

    if (enc == PQ_ENC_PLAIN_DICTIONARY || enc == PQ_ENC_RLE_DICTIONARY) {
        cf_rle_dec d;
        size_t k = 0;
        if (!r->dict.data && r->ndict == 0 && present)
            return cf_err_set(err, CF_E_PARSE, "dictionary-encoded page without a dictionary");
        if (n < 1 || p[0] > 32)
            return cf_err_set(err, CF_E_PARSE, "bad dictionary index bit width");
        cf_rle_init(&d, p + 1, n - 1, p[0]);
        if (cf_rle_get(&d, r->idx, present))
            return cf_err_set(err, CF_E_PARSE, "corrupt dictionary indices");
        for (size_t i = 0; i < present; i++)
            if (r->idx[i] >= r->ndict)
                return cf_err_set(err, CF_E_PARSE, "dictionary index %u past %zu entries",
                                  r->idx[i], r->ndict);
        if (l->cv == CV_BYTES) {
            /* one reservation for the page, then straight copies */
            size_t total = 0;
            for (size_t i = 0; i < present; i++)
                total += r->dict_len[r->idx[i]];
            if (c->data.len + total > UINT32_MAX)
                return cf_err_set(err, CF_E_TOOBIG, "column bytes over 4 GiB in one batch");
            if (cf_buf_reserve(&c->data, total, err))
                return -1;
            for (size_t i = 0; i < nv; i++) {
                size_t at = c->n++;
                if (l->max_def && r->defs[i] != l->max_def) {
                    c->valid[at] = 0;
                    c->offs[at + 1] = c->offs[at];
                    continue;
                }
                uint32_t e = r->idx[k++];
                memcpy(c->data.data + c->data.len, r->dict.data + r->dict_off[e], r->dict_len[e]);
                c->data.len += r->dict_len[e];
                c->valid[at] = 1;
                c->offs[at + 1] = (uint32_t)c->data.len;
            }
            return 0;
        }
        if (l->cv == CV_I64 || l->cv == CV_F64 || l->cv == CV_I32 || l->cv == CV_F32) {
            size_t w = plain_width(l);
            for (size_t i = 0; i < nv; i++) {
                size_t at = c->n++;
                if (l->max_def && r->defs[i] != l->max_def) {
                    c->valid[at] = 0;
                    memset((char *)c->vals + at * w, 0, w);
                    continue;
                }
                uint32_t e = r->idx[k++];
                memcpy((char *)c->vals + at * w, r->dict.data + r->dict_off[e], w);
                c->valid[at] = 1;
            }
            return 0;
        }
        for (size_t i = 0; i < nv; i++) {
            if (l->max_def && r->defs[i] != l->max_def) {
                put_null(c);
                continue;
            }
            uint32_t e = r->idx[k++];
            if (put_value(l, c, r->dict.data + r->dict_off[e], r->dict_len[e], err))
                return -1;
        }
        return 0;
    }
    if (enc == PQ_ENC_RLE && l->ptype == PQ_BOOLEAN) {
        cf_rle_dec d;
        size_t k = 0;
        uint32_t len;
        if (n < 4)
            return cf_err_set(err, CF_E_PARSE, "truncated boolean RLE");
        len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        if (len > n - 4)
            return cf_err_set(err, CF_E_PARSE, "boolean RLE longer than its page");
        cf_rle_init(&d, p + 4, len, 1);
        if (cf_rle_get(&d, r->idx, present))
            return cf_err_set(err, CF_E_PARSE, "corrupt boolean RLE");
        for (size_t i = 0; i < nv; i++) {
            if (l->max_def && r->defs[i] != l->max_def) {
                put_null(c);
                continue;
            }
            uint8_t b = (uint8_t)(r->idx[k++] & 1);
            put_value(l, c, &b, 1, err);
        }
        return 0;
    }
    if (enc != PQ_ENC_PLAIN) {
        /* other encodings are turned into PLAIN first */
        int rc;
        r->alt.len = 0;
        switch (enc) {
        case PQ_ENC_DELTA_BINARY_PACKED:
            if (l->ptype != PQ_INT32 && l->ptype != PQ_INT64)
                goto unsupported;
            rc = cf_pq_delta_binary(&p, end, l->ptype == PQ_INT32 ? 4 : 8, present, &r->alt, err);
            break;
        case PQ_ENC_DELTA_LENGTH_BYTE_ARRAY:
            if (l->ptype != PQ_BYTE_ARRAY)
                goto unsupported;
            rc = cf_pq_delta_length(p, n, present, &r->alt, err);
            break;
        case PQ_ENC_DELTA_BYTE_ARRAY:
            if (l->ptype != PQ_BYTE_ARRAY && l->ptype != PQ_FIXED_LEN_BYTE_ARRAY)
                goto unsupported;
            rc = cf_pq_delta_byte_array(p, n, present, 64 * n + ((size_t)1 << 20), &r->alt, err);
            if (!rc && l->ptype == PQ_FIXED_LEN_BYTE_ARRAY)
                rc = flba_from_lengths(l, &r->alt, present, err);
            break;
        case PQ_ENC_BYTE_STREAM_SPLIT:
            if (!plain_width(l) || l->ptype == PQ_INT96)
                goto unsupported;
            rc = cf_pq_byte_stream_split(p, n, plain_width(l), present, &r->alt, err);
            break;
        default:
            goto unsupported;
        }
        if (rc)
            return cf_err_wrap(err, "column %s", l->path);
        return page_values(r, l, PQ_ENC_PLAIN, r->alt.data, r->alt.len, nv, c, err);
    }
    if (l->ptype == PQ_BOOLEAN) {
        size_t bit = 0;
        if ((present + 7) / 8 > n)
            return cf_err_set(err, CF_E_PARSE, "boolean page truncated");
        for (size_t i = 0; i < nv; i++) {
            if (l->max_def && r->defs[i] != l->max_def) {
                put_null(c);
                continue;
            }
            uint8_t b = (uint8_t)((p[bit / 8] >> (bit % 8)) & 1);
            bit++;
            put_value(l, c, &b, 1, err);
        }
        return 0;
    }
    /* fast path: fixed width, no conversion */
    if ((l->cv == CV_I64 || l->cv == CV_F64 || l->cv == CV_I32 || l->cv == CV_F32)) {
        size_t w = plain_width(l);
        if (present > n / w)
            return cf_err_set(err, CF_E_PARSE, "column %s: page holds fewer values than its levels", l->path);
        if (present == nv && nv) {
            memcpy((char *)c->vals + c->n * w, p, nv * w);
            memset(c->valid + c->n, 1, nv);
            c->n += nv;
            return 0;
        }
    }
    if (l->cv == CV_BYTES && l->ptype == PQ_BYTE_ARRAY) {
        /* the values' bytes are fewer than the page's: reserve once, copy inline */
        if (c->data.len + n > UINT32_MAX)
            return cf_err_set(err, CF_E_TOOBIG, "column bytes over 4 GiB in one batch");
        if (cf_buf_reserve(&c->data, n, err))
            return -1;
        for (size_t i = 0; i < nv; i++) {
            size_t at = c->n++;
            uint32_t len;
            if (l->max_def && r->defs[i] != l->max_def) {
                c->valid[at] = 0;
                c->offs[at + 1] = c->offs[at];
                continue;
            }
            if (end - p < 4)
                goto short_page;
            len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            p += 4;
            if (len > (size_t)(end - p))
                goto short_page;
            if (len)
                memcpy(c->data.data + c->data.len, p, len);
            p += len;
            c->data.len += len;
            c->valid[at] = 1;
            c->offs[at + 1] = (uint32_t)c->data.len;
        }
        return 0;
short_page:
        c->n--;      /* the slot taken for the missing value */
        return cf_err_set(err, CF_E_PARSE, "column %s: page holds fewer values than its levels", l->path);
    }
    for (size_t i = 0; i < nv; i++) {
        const uint8_t *v;
        size_t vn;
        if (l->max_def && r->defs[i] != l->max_def) {
            put_null(c);
            continue;
        }
        if (next_plain(l, &p, end, &v, &vn))
            return cf_err_set(err, CF_E_PARSE, "column %s: page holds fewer values than its levels", l->path);
        if (put_value(l, c, v, vn, err))
            return -1;
    }
    return 0;
unsupported:
    return cf_err_set(err, CF_E_UNSUPPORTED, "column %s: encoding %d is not supported for its type",
                      l->path, enc);
}

static int parse_levels_v1(const uint8_t **p, const uint8_t *end, int16_t *out, size_t nv,
                           int16_t maxv)
{
    uint32_t len;
    cf_rle_dec d;
    if (end - *p < 4)
        return -1;
    len = (uint32_t)(*p)[0] | (uint32_t)(*p)[1] << 8 | (uint32_t)(*p)[2] << 16 | (uint32_t)(*p)[3] << 24;
    *p += 4;
    if (len > (size_t)(end - *p))
        return -1;
    cf_rle_init(&d, *p, len, cf_pq_bit_width((uint64_t)maxv));
    *p += len;
    return cf_rle_get16(&d, out, nv, maxv);
}

typedef struct page_hdr {
    int     type;
    int64_t uncomp, comp;
    int64_t nv;
    int     enc, def_enc, rep_enc;
    int64_t def_len, rep_len;
    bool    is_compressed;
    int64_t dict_nv;
} page_hdr;

static void parse_page_header(cf_tr *t, page_hdr *h)
{
    int16_t id, id2;
    int ty, ty2;

    memset(h, 0, sizeof *h);
    h->type = -1;
    h->is_compressed = true;
    h->nv = -1;
    h->dict_nv = -1;
    while (cf_tr_field(t, &id, &ty)) {
        switch (id) {
        case 1: h->type = (int)cf_tr_int(t, ty); break;
        case 2: h->uncomp = cf_tr_int(t, ty); break;
        case 3: h->comp = cf_tr_int(t, ty); break;
        case 5: case 7: case 8:
            if (ty != TC_STRUCT) { cf_tr_skip(t, ty); break; }
            cf_tr_struct_begin(t);
            while (cf_tr_field(t, &id2, &ty2)) {
                if (id == 7) {
                    if (id2 == 1) h->dict_nv = cf_tr_int(t, ty2);
                    else if (id2 == 2) h->enc = (int)cf_tr_int(t, ty2);
                    else cf_tr_skip(t, ty2);
                } else if (id == 5) {
                    if (id2 == 1) h->nv = cf_tr_int(t, ty2);
                    else if (id2 == 2) h->enc = (int)cf_tr_int(t, ty2);
                    else if (id2 == 3) h->def_enc = (int)cf_tr_int(t, ty2);
                    else if (id2 == 4) h->rep_enc = (int)cf_tr_int(t, ty2);
                    else cf_tr_skip(t, ty2);
                } else {
                    if (id2 == 1) h->nv = cf_tr_int(t, ty2);
                    else if (id2 == 4) h->enc = (int)cf_tr_int(t, ty2);
                    else if (id2 == 5) h->def_len = cf_tr_int(t, ty2);
                    else if (id2 == 6) h->rep_len = cf_tr_int(t, ty2);
                    else if (id2 == 7) h->is_compressed = cf_tr_bool(t, ty2);
                    else cf_tr_skip(t, ty2);
                }
            }
            cf_tr_struct_end(t);
            break;
        default: cf_tr_skip(t, ty);
        }
    }
}

/* Sizes must be sane before anything is allocated for them; whether the
 * compressed bytes can hold `uncomp` is cf_pq_check_size's business. */
static int check_page_sizes(const page_hdr *h, cf_err *err)
{
    if (h->comp < 0 || h->uncomp < 0 || (uint64_t)h->uncomp > MAX_PAGE_BYTES)
        return cf_err_set(err, CF_E_PARSE, "bad page sizes %lld/%lld", (long long)h->comp,
                          (long long)h->uncomp);
    return 0;
}

static int decompress_page(cf_pq_reader *r, int codec, const uint8_t *body, const page_hdr *h,
                           cf_err *err)
{
    r->page.len = 0;
    if (cf_pq_check_size(codec, body, (size_t)h->comp, (size_t)h->uncomp, err) ||
        cf_buf_reserve(&r->page, (size_t)h->uncomp + 1, err))
        return -1;
    return cf_pq_decompress(r->cc, codec, body, (size_t)h->comp, r->page.data, (size_t)h->uncomp, err);
}

/* Decode one column chunk: every level entry appended to c; levels kept
 * in *defs_out / *reps_out (grown, appended) when non-NULL. */
static int read_chunk(cf_pq_reader *r, int rg, int li, cf_column *c, cf_buf *defs_out,
                      cf_buf *reps_out, cf_err *err)
{
    const leaf *l = &r->leaves[li];
    const chunk *ck = &r->rgs[rg].cols[li];
    int64_t start = ck->data_off, seen = 0;
    const uint8_t *buf;
    size_t pos = 0, len;

    if (ck->ptype != l->ptype)
        return cf_err_set(err, CF_E_PARSE, "chunk type %d differs from schema type %d", ck->ptype, l->ptype);
    if (ck->dict_off > 0 && ck->dict_off < start)
        start = ck->dict_off;
    if (ck->num_values < 0 || (l->max_rep == 0 && ck->num_values != r->rgs[rg].num_rows))
        return cf_err_set(err, CF_E_PARSE, "chunk holds %lld values for %lld rows",
                          (long long)ck->num_values, (long long)r->rgs[rg].num_rows);
    if (!(buf = file_bytes(r, start, ck->total_comp, err)))
        return -1;
    len = (size_t)ck->total_comp;
    r->ndict = 0;
    r->dict.len = 0;
    while (seen < ck->num_values) {
        cf_tr t;
        page_hdr h;
        const uint8_t *body, *p, *end;
        size_t hlen;

        if (pos >= len)
            return cf_err_set(err, CF_E_PARSE, "chunk ends after %lld of %lld values",
                              (long long)seen, (long long)ck->num_values);
        cf_tr_init(&t, buf + pos, len - pos);
        parse_page_header(&t, &h);
        if (t.bad)
            return cf_err_set(err, CF_E_PARSE, "page header: %s", t.why);
        hlen = (size_t)(t.p - (buf + pos));
        pos += hlen;
        if (check_page_sizes(&h, err))
            return -1;
        if ((uint64_t)h.comp > len - pos)
            return cf_err_set(err, CF_E_PARSE, "page runs past its column chunk");
        body = buf + pos;
        pos += (size_t)h.comp;

        if (h.type == PQ_PAGE_DICTIONARY) {
            if (r->ndict)
                return cf_err_set(err, CF_E_PARSE, "second dictionary page in a chunk");
            if (decompress_page(r, ck->codec, body, &h, err))
                return -1;
            if (h.enc != PQ_ENC_PLAIN && h.enc != PQ_ENC_PLAIN_DICTIONARY)
                return cf_err_set(err, CF_E_UNSUPPORTED, "dictionary page encoding %d", h.enc);
            if (load_dict(r, l, r->page.data, (size_t)h.uncomp, h.dict_nv, err))
                return -1;
            continue;
        }
        if (h.type != PQ_PAGE_DATA && h.type != PQ_PAGE_DATA_V2)
            continue;   /* index pages and unknown pages carry no values */
        if (h.nv < 0 || h.nv > MAX_PAGE_VALUES || h.nv > ck->num_values - seen)
            return cf_err_set(err, CF_E_PARSE, "page with %lld values (chunk has %lld left)",
                              (long long)h.nv, (long long)(ck->num_values - seen));
        size_t nv = (size_t)h.nv;
        if (levels_room(r, nv ? nv : 1, err))
            return -1;

        if (h.type == PQ_PAGE_DATA) {
            if (decompress_page(r, ck->codec, body, &h, err))
                return -1;
            p = r->page.data;
            end = p + h.uncomp;
            if (l->max_rep && (h.rep_enc != PQ_ENC_RLE ||
                               parse_levels_v1(&p, end, r->reps, nv, l->max_rep)))
                return cf_err_set(err, CF_E_PARSE, "corrupt repetition levels");
            if (l->max_def && (h.def_enc != PQ_ENC_RLE ||
                               parse_levels_v1(&p, end, r->defs, nv, l->max_def)))
                return cf_err_set(err, CF_E_PARSE, "corrupt definition levels");
        } else {
            cf_rle_dec d;
            size_t lv;
            if (h.def_len < 0 || h.rep_len < 0 || h.def_len > h.comp || h.rep_len > h.comp - h.def_len ||
                h.def_len + h.rep_len > h.uncomp)
                return cf_err_set(err, CF_E_PARSE, "bad v2 level lengths");
            lv = (size_t)(h.def_len + h.rep_len);
            if (l->max_rep) {
                cf_rle_init(&d, body, (size_t)h.rep_len, cf_pq_bit_width((uint64_t)l->max_rep));
                if (cf_rle_get16(&d, r->reps, nv, l->max_rep))
                    return cf_err_set(err, CF_E_PARSE, "corrupt repetition levels");
            }
            if (l->max_def) {
                cf_rle_init(&d, body + h.rep_len, (size_t)h.def_len, cf_pq_bit_width((uint64_t)l->max_def));
                if (cf_rle_get16(&d, r->defs, nv, l->max_def))
                    return cf_err_set(err, CF_E_PARSE, "corrupt definition levels");
            }
            r->page.len = 0;
            if (h.is_compressed && ck->codec != PQ_CODEC_UNCOMPRESSED &&
                cf_pq_check_size(ck->codec, body + lv, (size_t)h.comp - lv, (size_t)h.uncomp - lv, err))
                return -1;
            if (!(h.is_compressed && ck->codec != PQ_CODEC_UNCOMPRESSED) && h.comp != h.uncomp)
                return cf_err_set(err, CF_E_PARSE, "uncompressed v2 page sizes differ");
            if (cf_buf_reserve(&r->page, (size_t)h.uncomp - lv + 1, err))
                return -1;
            if (h.is_compressed && ck->codec != PQ_CODEC_UNCOMPRESSED) {
                if (cf_pq_decompress(r->cc, ck->codec, body + lv, (size_t)h.comp - lv, r->page.data,
                                     (size_t)h.uncomp - lv, err))
                    return -1;
            } else {
                if (h.comp != h.uncomp)
                    return cf_err_set(err, CF_E_PARSE, "uncompressed v2 page sizes differ");
                memcpy(r->page.data, body + lv, (size_t)h.uncomp - lv);
            }
            p = r->page.data;
            end = p + (h.uncomp - (int64_t)lv);
        }
        if (page_values(r, l, h.enc, p, (size_t)(end - p), nv, c, err))
            return -1;
        if (defs_out && l->max_def && cf_buf_append(defs_out, r->defs, nv * 2, err))
            return -1;
        if (reps_out && l->max_rep && cf_buf_append(reps_out, r->reps, nv * 2, err))
            return -1;
        seen += h.nv;
    }
    return 0;
}

int cf_pq_reader_read(cf_pq_reader *r, int rg, const int *cols, int ncols, cf_batch *out,
                      cf_err *err)
{
    int n = cols ? ncols : r->schema->nfields;

    if (rg < 0 || rg >= r->nrg)
        return cf_err_set(err, CF_E_ARG, "no row group %d", rg);
    if (out->ncols != n)
        return cf_err_set(err, CF_E_ARG, "batch has %d columns, %d asked", out->ncols, n);
    for (int k = 0; k < n; k++) {
        int f = cols ? cols[k] : k;
        if (f < 0 || f >= r->schema->nfields)
            return cf_err_set(err, CF_E_ARG, "no column %d", f);
        const cf_type *want = &r->leaves[r->flat_leaf[f]].type, *have = &out->cols[k].type;
        if (want->id != have->id || cf_type_is_varlen(*want) != cf_type_is_varlen(*have))
            return cf_err_set(err, CF_E_TYPE, "batch column %d is %s, file column %s is %s", k,
                              cf_type_name(have->id), r->schema->fields[f].name, cf_type_name(want->id));
        if (out->cols[k].n != out->nrows)
            return cf_err_set(err, CF_E_ARG, "batch column %d is not at a row boundary", k);
    }
    if (r->rgs[rg].num_rows > (int64_t)UINT32_MAX - (int64_t)out->nrows)
        return cf_err_set(err, CF_E_TOOBIG, "row group too large for one batch");
    for (int k = 0; k < n; k++) {
        int f = cols ? cols[k] : k;
        cf_column *c = &out->cols[k];
        if (read_chunk(r, rg, r->flat_leaf[f], c, NULL, NULL, err)) {
            cf_err_wrap(err, "row group %d column %s", rg, r->schema->fields[f].name);
            for (int j = 0; j <= k; j++) {           /* back to the row boundary */
                out->cols[j].n = out->nrows;
                if (out->cols[j].offs)
                    out->cols[j].data.len = out->cols[j].offs[out->nrows];
            }
            return -1;
        }
    }
    out->nrows += (size_t)r->rgs[rg].num_rows;
    return 0;
}

void cf_pq_leaf_data_free(cf_pq_leaf_data *d)
{
    if (!d)
        return;
    free(d->def);
    free(d->rep);
    free(d->vals.valid);
    free(d->vals.vals);
    free(d->vals.offs);
    cf_buf_free(&d->vals.data);
    memset(d, 0, sizeof *d);
}

int cf_pq_reader_read_leaf(cf_pq_reader *r, int rg, int li, cf_pq_leaf_data *out, cf_err *err)
{
    cf_buf defs, reps;
    const leaf *l;

    cf_pq_leaf_data_free(out);
    if (rg < 0 || rg >= r->nrg)
        return cf_err_set(err, CF_E_ARG, "no row group %d", rg);
    if (li < 0 || li >= r->nleaves)
        return cf_err_set(err, CF_E_ARG, "no leaf %d", li);
    l = &r->leaves[li];
    cf_buf_init(&defs, 0);
    cf_buf_init(&reps, 0);
    out->vals.type = l->type;
    out->max_def = l->max_def;
    out->max_rep = l->max_rep;
    if (read_chunk(r, rg, li, &out->vals, &defs, &reps, err)) {
        cf_err_wrap(err, "row group %d leaf %s", rg, l->path);
        cf_buf_free(&defs);
        cf_buf_free(&reps);
        cf_pq_leaf_data_free(out);
        return -1;
    }
    out->n = out->vals.n;
    out->def = l->max_def ? (int16_t *)(void *)cf_buf_steal(&defs, &(size_t){ 0 }) : NULL;
    out->rep = l->max_rep ? (int16_t *)(void *)cf_buf_steal(&reps, &(size_t){ 0 }) : NULL;
    cf_buf_free(&defs);
    cf_buf_free(&reps);
    return 0;
}
