/* batch.c - schemas and columnar row batches. */
#include "batch/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- schema ---------------------------------------------------------- */

cf_schema *cf_schema_new(void)
{
    return calloc(1, sizeof(cf_schema));
}

void cf_schema_free(cf_schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nfields; i++)
        free(s->fields[i].name);
    free(s->fields);
    free(s->pk);
    free(s);
}

cf_schema *cf_schema_clone(const cf_schema *s)
{
    cf_schema *c = cf_schema_new();
    if (!c)
        return NULL;
    for (int i = 0; i < s->nfields; i++) {
        const cf_field *f = &s->fields[i];
        if (cf_schema_add(c, f->name, f->type, f->nullable, f->field_id, NULL) < 0)
            goto oom;
    }
    if (s->npk) {
        c->pk = malloc(sizeof(int) * (size_t)s->npk);
        if (!c->pk)
            goto oom;
        memcpy(c->pk, s->pk, sizeof(int) * (size_t)s->npk);
        c->npk = s->npk;
    }
    return c;
oom:
    cf_schema_free(c);
    return NULL;
}

int cf_schema_add(cf_schema *s, const char *name, cf_type type, bool nullable,
                  int field_id, cf_err *err)
{
    cf_field *nf = realloc(s->fields, sizeof *nf * (size_t)(s->nfields + 1));
    char *nm;

    if (!nf)
        return cf_err_set(err, CF_E_NOMEM, "out of memory adding field %s", name);
    s->fields = nf;
    if (!(nm = strdup(name)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory adding field %s", name);
    nf[s->nfields] = (cf_field){ .name = nm, .type = type, .nullable = nullable,
                                 .field_id = field_id ? field_id : s->nfields + 1 };
    return s->nfields++;
}

int cf_schema_find(const cf_schema *s, const char *name)
{
    for (int i = 0; i < s->nfields; i++)
        if (strcmp(s->fields[i].name, name) == 0)
            return i;
    return -1;
}

int cf_schema_set_pk(cf_schema *s, const char *const *names, int n, cf_err *err)
{
    int *pk = n ? malloc(sizeof(int) * (size_t)n) : NULL;
    if (n && !pk)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        if ((pk[i] = cf_schema_find(s, names[i])) < 0) {
            free(pk);
            return cf_err_set(err, CF_E_ARG, "primary key column '%s' is not in the schema", names[i]);
        }
    }
    free(s->pk);
    s->pk = pk;
    s->npk = n;
    return 0;
}

bool cf_schema_equal(const cf_schema *a, const cf_schema *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->nfields != b->nfields)
        return false;
    for (int i = 0; i < a->nfields; i++) {
        const cf_field *x = &a->fields[i], *y = &b->fields[i];
        if (strcmp(x->name, y->name) || x->type.id != y->type.id ||
            x->type.precision != y->type.precision || x->type.scale != y->type.scale ||
            x->nullable != y->nullable)
            return false;
    }
    return true;
}

static const char *const type_names[] = {
    [CF_T_BOOL] = "boolean", [CF_T_INT32] = "int32", [CF_T_INT64] = "int64",
    [CF_T_FLOAT] = "float", [CF_T_DOUBLE] = "double", [CF_T_STRING] = "string",
    [CF_T_BINARY] = "binary", [CF_T_DATE] = "date", [CF_T_TIMESTAMP] = "timestamp",
    [CF_T_TIMESTAMP_NTZ] = "timestamp_ntz", [CF_T_DECIMAL] = "decimal",
    [CF_T_TIME] = "time", [CF_T_UUID] = "uuid",
};

const char *cf_type_name(cf_type_id id)
{
    if ((size_t)id < sizeof type_names / sizeof *type_names && type_names[id])
        return type_names[id];
    return "unknown";
}

int cf_type_parse(const char *s, cf_type *out, cf_err *err)
{
    static const struct { const char *name; cf_type_id id; } alias[] = {
        { "bool", CF_T_BOOL }, { "int", CF_T_INT32 }, { "integer", CF_T_INT32 },
        { "long", CF_T_INT64 }, { "bigint", CF_T_INT64 }, { "text", CF_T_STRING },
        { "bytes", CF_T_BINARY },
    };
    int p, sc;

    memset(out, 0, sizeof *out);
    if (sscanf(s, "decimal(%d,%d)", &p, &sc) == 2 || sscanf(s, "decimal(%d, %d)", &p, &sc) == 2) {
        if (p < 1 || p > 38 || sc < 0 || sc > p)
            return cf_err_set(err, CF_E_ARG, "bad decimal precision/scale in '%s'", s);
        *out = (cf_type){ CF_T_DECIMAL, p, sc };
        return 0;
    }
    for (size_t i = 1; i < sizeof type_names / sizeof *type_names; i++)
        if (type_names[i] && strcasecmp(s, type_names[i]) == 0) {
            out->id = (cf_type_id)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof alias / sizeof *alias; i++)
        if (strcasecmp(s, alias[i].name) == 0) {
            out->id = alias[i].id;
            return 0;
        }
    return cf_err_set(err, CF_E_ARG, "unknown type '%s'", s);
}

bool cf_type_is_varlen(cf_type t)
{
    return t.id == CF_T_STRING || t.id == CF_T_BINARY || t.id == CF_T_UUID ||
           (t.id == CF_T_DECIMAL && (t.precision == 0 || t.precision > 18));
}

static size_t type_width(cf_type t)
{
    switch (t.id) {
    case CF_T_BOOL:
        return 1;
    case CF_T_INT32:
    case CF_T_DATE:
    case CF_T_FLOAT:
        return 4;
    case CF_T_INT64:
    case CF_T_DOUBLE:
    case CF_T_TIMESTAMP:
    case CF_T_TIMESTAMP_NTZ:
    case CF_T_TIME:
        return 8;
    case CF_T_DECIMAL:
        return cf_type_is_varlen(t) ? 0 : 8;
    default:
        return 0;
    }
}

size_t cf_col_width(const cf_column *c) { return type_width(c->type); }

/* ---- columns --------------------------------------------------------- */

static void col_free(cf_column *c)
{
    free(c->valid);
    free(c->vals);
    free(c->offs);
    cf_buf_free(&c->data);
}

static void col_bind(cf_column *c, cf_type t, size_t cap)
{
    if (type_width(c->type) != type_width(t) || cf_type_is_varlen(c->type) != cf_type_is_varlen(t)) {
        col_free(c);
        memset(c, 0, sizeof *c);
    }
    c->type = t;
    c->n = 0;
    c->data.len = 0;
    c->data.cap = cap;
}

static int col_grow(cf_column *c, size_t need, cf_err *err)
{
    size_t na = c->alloc ? c->alloc : 1024, w = type_width(c->type);
    uint8_t *v;

    while (na < need)
        na *= 2;
    if (!(v = realloc(c->valid, na)))
        goto oom;
    c->valid = v;
    if (cf_type_is_varlen(c->type)) {
        uint32_t *o = realloc(c->offs, sizeof *o * (na + 1));
        if (!o)
            goto oom;
        if (!c->offs)
            o[0] = 0;
        c->offs = o;
    } else {
        void *x = realloc(c->vals, w * na);
        if (!x)
            goto oom;
        c->vals = x;
    }
    c->alloc = na;
    return 0;
oom:
    return cf_err_set(err, CF_E_NOMEM, "out of memory growing a column to %zu values", na);
}

int cf_col_reserve(cf_column *c, size_t n, size_t bytes, cf_err *err)
{
    if (n > c->alloc && col_grow(c, n, err))
        return -1;
    if (bytes && cf_type_is_varlen(c->type) && cf_buf_reserve(&c->data, bytes, err))
        return -1;
    return 0;
}

/* Bring the column to exactly `row` values (padding with nulls), with room
 * for one more. */
static int col_at(cf_column *c, size_t row, cf_err *err)
{
    if (c->n > row)
        return cf_err_set(err, CF_E_ARG, "column value set twice for row %zu", row);
    if (row + 1 > c->alloc && col_grow(c, row + 1, err))
        return -1;
    while (c->n < row) {
        size_t i = c->n++;
        c->valid[i] = 0;
        if (c->offs)
            c->offs[i + 1] = c->offs[i];
        else
            memset((char *)c->vals + i * type_width(c->type), 0, type_width(c->type));
    }
    return 0;
}

int cf_col_set_null(cf_column *c, size_t row, cf_err *err)
{
    if (col_at(c, row + 1, err))   /* pads through `row` with null */
        return -1;
    return 0;
}

int cf_col_set_i64(cf_column *c, size_t row, int64_t v, cf_err *err)
{
    /* Fast path: the next value of an int64-wide column with room left. */
    if (c->n == row && row < c->alloc && c->vals && type_width(c->type) == 8 &&
        c->type.id != CF_T_DOUBLE) {
        ((int64_t *)c->vals)[row] = v;
        c->valid[row] = 1;
        c->n = row + 1;
        return 0;
    }
    if (col_at(c, row, err))
        return -1;
    switch (type_width(c->type)) {
    case 8: ((int64_t *)c->vals)[row] = v; break;
    case 4: ((int32_t *)c->vals)[row] = (int32_t)v; break;
    case 1: ((uint8_t *)c->vals)[row] = v != 0; break;
    default: return cf_err_set(err, CF_E_TYPE, "integer value for a %s column", cf_type_name(c->type.id));
    }
    if (c->type.id == CF_T_FLOAT)
        ((float *)c->vals)[row] = (float)v;
    else if (c->type.id == CF_T_DOUBLE)
        ((double *)c->vals)[row] = (double)v;
    c->valid[row] = 1;
    c->n = row + 1;
    return 0;
}

int cf_col_set_f64(cf_column *c, size_t row, double v, cf_err *err)
{
    if (col_at(c, row, err))
        return -1;
    if (c->type.id == CF_T_DOUBLE)
        ((double *)c->vals)[row] = v;
    else if (c->type.id == CF_T_FLOAT)
        ((float *)c->vals)[row] = (float)v;
    else
        return cf_err_set(err, CF_E_TYPE, "floating value for a %s column", cf_type_name(c->type.id));
    c->valid[row] = 1;
    c->n = row + 1;
    return 0;
}

int cf_col_set_bool(cf_column *c, size_t row, bool v, cf_err *err)
{
    if (c->type.id != CF_T_BOOL)
        return cf_err_set(err, CF_E_TYPE, "boolean value for a %s column", cf_type_name(c->type.id));
    return cf_col_set_i64(c, row, v, err);
}

int cf_col_set_bytes(cf_column *c, size_t row, const void *p, size_t n, cf_err *err)
{
    /* Slow path unless this is the next value of a varlen column with room. */
    if (!c->offs || c->n != row || row >= c->alloc) {
        if (!cf_type_is_varlen(c->type))
            return cf_err_set(err, CF_E_TYPE, "string value for a %s column", cf_type_name(c->type.id));
        if (col_at(c, row, err))
            return -1;
    }
    if (c->data.len + n > UINT32_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "column bytes over 4 GiB in one batch");
    if (cf_buf_append(&c->data, p, n, err))
        return -1;
    c->offs[row + 1] = (uint32_t)c->data.len;
    c->valid[row] = 1;
    c->n = row + 1;
    return 0;
}

/* ---- batches --------------------------------------------------------- */

cf_batch *cf_batch_new(const cf_schema *s, cf_err *err)
{
    cf_batch *b = calloc(1, sizeof *b);
    if (!b) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    if (cf_batch_rebind(b, s, err)) {
        cf_batch_free(b);
        return NULL;
    }
    return b;
}

void cf_batch_free(cf_batch *b)
{
    if (!b)
        return;
    for (int i = 0; i < b->ncols; i++)
        col_free(&b->cols[i]);
    free(b->cols);
    free(b);
}

void cf_batch_reset(cf_batch *b)
{
    for (int i = 0; i < b->ncols; i++) {
        b->cols[i].n = 0;
        b->cols[i].data.len = 0;
    }
    b->nrows = 0;
}

size_t cf_batch_bytes(const cf_batch *b)
{
    size_t n = 0;

    if (!b)
        return 0;
    for (int i = 0; i < b->ncols; i++) {
        const cf_column *c = &b->cols[i];
        n += c->n * (1 + (c->offs ? sizeof *c->offs : type_width(c->type))) + c->data.len;
    }
    return n;
}

int cf_batch_rebind(cf_batch *b, const cf_schema *s, cf_err *err)
{
    if (s->nfields > b->ncols) {
        cf_column *nc = realloc(b->cols, sizeof *nc * (size_t)s->nfields);
        if (!nc)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        memset(nc + b->ncols, 0, sizeof *nc * (size_t)(s->nfields - b->ncols));
        b->cols = nc;
    } else {
        for (int i = s->nfields; i < b->ncols; i++) {
            col_free(&b->cols[i]);
            memset(&b->cols[i], 0, sizeof b->cols[i]);
        }
    }
    for (int i = 0; i < s->nfields; i++)
        col_bind(&b->cols[i], s->fields[i].type, b->max_bytes);
    b->ncols = s->nfields;
    b->schema = s;
    b->nrows = 0;
    return 0;
}

int cf_batch_end_row(cf_batch *b, cf_err *err)
{
    for (int i = 0; i < b->ncols; i++)
        if (b->cols[i].n <= b->nrows && cf_col_set_null(&b->cols[i], b->nrows, err))
            return -1;
    b->nrows++;
    return 0;
}

void cf_batch_abort_row(cf_batch *b)
{
    for (int i = 0; i < b->ncols; i++) {
        cf_column *c = &b->cols[i];
        if (c->n > b->nrows) {
            c->n = b->nrows;
            if (c->offs)
                c->data.len = c->offs[b->nrows];
        }
    }
}

int cf_batch_copy_row(cf_batch *dst, const cf_batch *src, size_t row, cf_err *err)
{
    size_t r = dst->nrows;

    for (int i = 0; i < src->ncols && i < dst->ncols; i++) {
        const cf_column *s = &src->cols[i];
        cf_column *d = &dst->cols[i];
        int rc;

        if (!s->valid[row]) {
            rc = cf_col_set_null(d, r, err);
        } else if (s->offs) {
            size_t n;
            const uint8_t *p = cf_col_bytes(s, row, &n);
            rc = cf_col_set_bytes(d, r, p, n, err);
        } else {
            size_t w = type_width(s->type);
            if (col_at(d, r, err)) {
                rc = -1;
            } else {
                memcpy((char *)d->vals + r * w, (const char *)s->vals + row * w, w);
                d->valid[r] = 1;
                d->n = r + 1;
                rc = 0;
            }
        }
        if (rc) {
            cf_batch_abort_row(dst);
            return -1;
        }
    }
    return cf_batch_end_row(dst, err);
}

/* ---- cell sets ---------------------------------------------------------- */

int cf_cells_add(cf_cells *c, size_t row, int col, cf_err *err)
{
    if (row > UINT32_MAX)
        return cf_err_set(err, CF_E_TOOBIG, "row %zu past a cell set's range", row);
    if (c->n == c->alloc) {
        size_t na = c->alloc ? c->alloc * 2 : 64;
        cf_cell *nv = realloc(c->v, sizeof *nv * na);
        if (!nv)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        c->v = nv;
        c->alloc = na;
    }
    c->v[c->n++] = (cf_cell){ (uint32_t)row, col };
    return 0;
}

void cf_cells_truncate(cf_cells *c, size_t row)
{
    while (c->n && c->v[c->n - 1].row >= row)
        c->n--;
}

bool cf_cells_has(const cf_cells *c, size_t row, int col)
{
    size_t lo = 0, hi;

    if (!c || !c->n)
        return false;
    hi = c->n;
    while (lo < hi) {           /* rows are appended in order: binary search */
        size_t mid = (lo + hi) / 2;
        if (c->v[mid].row < row)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < c->n && c->v[lo].row == row; lo++)
        if (c->v[lo].col == col)
            return true;
    return false;
}

void cf_cells_free(cf_cells *c)
{
    if (!c)
        return;
    free(c->v);
    memset(c, 0, sizeof *c);
}

int cf_col_copy(cf_column *dst, size_t dst_row, const cf_column *src, size_t row, cf_err *err)
{
    if (!cf_col_valid(src, row))
        return cf_col_set_null(dst, dst_row, err);
    if (cf_type_is_varlen(src->type)) {
        size_t n;
        const uint8_t *p = cf_col_bytes(src, row, &n);
        return cf_col_set_bytes(dst, dst_row, p, n, err);
    }
    switch (src->type.id) {
    case CF_T_FLOAT:
        return cf_col_set_f64(dst, dst_row, cf_col_f32(src, row), err);
    case CF_T_DOUBLE:
        return cf_col_set_f64(dst, dst_row, cf_col_f64(src, row), err);
    case CF_T_BOOL:
        return cf_col_set_i64(dst, dst_row, cf_col_bool(src, row), err);
    case CF_T_INT32:
    case CF_T_DATE:
        return cf_col_set_i64(dst, dst_row, cf_col_i32(src, row), err);
    default:
        return cf_col_set_i64(dst, dst_row, cf_col_i64(src, row), err);
    }
}

