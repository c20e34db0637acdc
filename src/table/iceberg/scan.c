/* scan.c - read the live rows of an Iceberg snapshot: data files projected
 * onto a table schema by field id, position deletes applied. */
#include "table/iceberg/iceberg_int.h"

#include <stdlib.h>
#include <string.h>

#include "format/parquet/parquet.h"

/* Deleted positions of one data file, sorted. */
typedef struct delset {
    char    *path;
    int64_t *pos;
    size_t   n, alloc;
} delset;

typedef struct delmap {
    delset *v;
    size_t  n, alloc;
} delmap;

static void delmap_free(delmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].path);
        free(m->v[i].pos);
    }
    free(m->v);
}

static delset *delmap_get(delmap *m, const char *path, size_t n, bool create, cf_err *err)
{
    delset *d;
    for (size_t i = 0; i < m->n; i++)
        if (strlen(m->v[i].path) == n && !memcmp(m->v[i].path, path, n))
            return &m->v[i];
    if (!create)
        return NULL;
    if (m->n == m->alloc) {
        size_t na = m->alloc ? m->alloc * 2 : 16;
        delset *nv = realloc(m->v, sizeof *nv * na);
        if (!nv) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        m->v = nv;
        m->alloc = na;
    }
    d = &m->v[m->n];
    memset(d, 0, sizeof *d);
    if (!(d->path = malloc(n + 1))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(d->path, path, n);
    d->path[n] = 0;
    m->n++;
    return d;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int find_col(const cf_schema *fs, int field_id, const char *name)
{
    bool has_ids = false;
    for (int i = 0; i < fs->nfields; i++) {
        if (fs->fields[i].field_id == field_id && field_id > 0)
            return i;
    }
    /* Files written without field ids: fall back to names. */
    for (int i = 0; i < fs->nfields; i++)
        if (fs->fields[i].field_id > 0 && fs->fields[i].field_id != i + 1)
            has_ids = true;
    if (!has_ids && name)
        for (int i = 0; i < fs->nfields; i++)
            if (!strcmp(fs->fields[i].name, name))
                return i;
    return -1;
}

/* A batch bound to a copy of `fields` of schema `s`. */
static cf_schema *sub_schema(const cf_schema *s, const int *cols, int ncols, cf_err *err)
{
    cf_schema *o = cf_schema_new();
    if (!o) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (int j = 0; j < ncols; j++) {
        const cf_field *f = &s->fields[cols ? cols[j] : j];
        if (cf_schema_add(o, f->name, f->type, f->nullable, f->field_id, err) < 0) {
            cf_schema_free(o);
            return NULL;
        }
    }
    return o;
}

static int load_deletes(cf_store *st, const cf_ice_file *f, delmap *m, cf_err *err)
{
    cf_pq_reader *r = cf_pq_reader_open(st, f->path, err);
    const cf_schema *fs;
    cf_schema *sub = NULL;
    cf_batch *b = NULL;
    int cols[2], rc = -1;

    if (!r)
        return -1;
    fs = cf_pq_reader_schema(r);
    cols[0] = find_col(fs, CF_ICE_POS_FILE_PATH_ID, "file_path");
    cols[1] = find_col(fs, CF_ICE_POS_POS_ID, "pos");
    if (cols[0] < 0 || cols[1] < 0) {
        cf_err_set(err, CF_E_CORRUPT, "%s: position delete file without file_path/pos", f->path);
        goto out;
    }
    if (!(sub = sub_schema(fs, cols, 2, err)) || !(b = cf_batch_new(sub, err)))
        goto out;
    for (int rg = 0; rg < cf_pq_reader_num_row_groups(r); rg++) {
        cf_batch_reset(b);
        if (cf_pq_reader_read(r, rg, cols, 2, b, err))
            goto out;
        for (size_t i = 0; i < b->nrows; i++) {
            size_t n;
            const uint8_t *p;
            delset *d;
            if (!cf_col_valid(&b->cols[0], i) || !cf_col_valid(&b->cols[1], i))
                continue;
            p = cf_col_bytes(&b->cols[0], i, &n);
            if (!(d = delmap_get(m, (const char *)p, n, true, err)))
                goto out;
            if (d->n == d->alloc) {
                size_t na = d->alloc ? d->alloc * 2 : 64;
                int64_t *np = realloc(d->pos, sizeof *np * na);
                if (!np) {
                    cf_err_set(err, CF_E_NOMEM, "out of memory");
                    goto out;
                }
                d->pos = np;
                d->alloc = na;
            }
            d->pos[d->n++] = cf_col_i64(&b->cols[1], i);
        }
    }
    rc = 0;
out:
    cf_batch_free(b);
    cf_schema_free(sub);
    cf_pq_reader_close(r);
    return rc;
}

/* Copy value (src, si) into (dst, row); types may differ by promotion. */
static int copy_value(cf_column *dst, size_t row, const cf_column *src, size_t si, cf_err *err)
{
    if (!cf_col_valid(src, si))
        return cf_col_set_null(dst, row, err);
    switch (src->type.id) {
    case CF_T_BOOL:
        return cf_col_set_bool(dst, row, cf_col_bool(src, si), err);
    case CF_T_INT32:
    case CF_T_DATE:
        return cf_col_set_i64(dst, row, cf_col_i32(src, si), err);
    case CF_T_FLOAT:
        return cf_col_set_f64(dst, row, cf_col_f32(src, si), err);
    case CF_T_DOUBLE:
        return cf_col_set_f64(dst, row, cf_col_f64(src, si), err);
    default:
        if (cf_type_is_varlen(src->type)) {
            size_t n;
            const uint8_t *p = cf_col_bytes(src, si, &n);
            return cf_col_set_bytes(dst, row, p, n, err);
        }
        return cf_col_set_i64(dst, row, cf_col_i64(src, si), err);
    }
}

static int scan_file(cf_store *st, const cf_ice_file *f, const delset *dels, const cf_schema *out_s,
                     cf_ice_scan_fn fn, void *ctx, cf_err *err)
{
    cf_pq_reader *r = cf_pq_reader_open(st, f->path, err);
    const cf_schema *fs;
    int *fcols = NULL, *outcol = NULL, nread = 0, rc = -1;
    cf_schema *sub = NULL;
    cf_batch *in = NULL, *out = NULL;
    int64_t *positions = NULL, pos = 0;
    size_t di = 0;

    if (!r) {
        cf_err_wrap(err, "data file");
        return -1;
    }
    fs = cf_pq_reader_schema(r);
    fcols = calloc((size_t)out_s->nfields + 1, sizeof *fcols);
    outcol = calloc((size_t)out_s->nfields + 1, sizeof *outcol);
    if (!fcols || !outcol) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < out_s->nfields; j++) {
        int k = find_col(fs, out_s->fields[j].field_id, out_s->fields[j].name);
        outcol[j] = -1;
        if (k >= 0) {
            fcols[nread] = k;
            outcol[j] = nread++;
        }
    }
    if (!(sub = sub_schema(fs, fcols, nread, err)) || !(in = cf_batch_new(sub, err)) ||
        !(out = cf_batch_new(out_s, err)))
        goto out;
    for (int rg = 0; rg < cf_pq_reader_num_row_groups(r); rg++) {
        int64_t *np;
        size_t kept = 0;
        cf_batch_reset(in);
        cf_batch_reset(out);
        if (nread > 0) {
            if (cf_pq_reader_read(r, rg, fcols, nread, in, err))
                goto out;
        } else {
            cf_err_set(err, CF_E_UNSUPPORTED, "%s: no column of the scan is in the file", f->path);
            goto out;
        }
        if (!(np = realloc(positions, sizeof *np * (in->nrows ? in->nrows : 1)))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        positions = np;
        for (size_t i = 0; i < in->nrows; i++, pos++) {
            while (dels && di < dels->n && dels->pos[di] < pos)
                di++;
            if (dels && di < dels->n && dels->pos[di] == pos)
                continue;
            for (int j = 0; j < out_s->nfields; j++) {
                int rcv = outcol[j] < 0 ? cf_col_set_null(&out->cols[j], out->nrows, err)
                                        : copy_value(&out->cols[j], out->nrows, &in->cols[outcol[j]], i, err);
                if (rcv)
                    goto out;
            }
            if (cf_batch_end_row(out, err))
                goto out;
            positions[kept++] = pos;
        }
        if (out->nrows && fn(ctx, out, f->path, positions, err))
            goto out;
    }
    rc = 0;
out:
    if (rc)
        cf_err_wrap(err, "%s", f->path);
    free(fcols);
    free(outcol);
    free(positions);
    cf_batch_free(in);
    cf_batch_free(out);
    cf_schema_free(sub);
    cf_pq_reader_close(r);
    return rc;
}

int cf_ice_scan_files(cf_store *st, const cf_ice_file *files, int nfiles, const cf_schema *s,
                      const int *cols, int ncols, cf_ice_scan_fn fn, void *ctx, cf_err *err)
{
    delmap dm = { 0 };
    cf_schema *out_s = NULL;
    int rc = -1;

    if (!(out_s = sub_schema(s, cols, cols ? ncols : s->nfields, err)))
        goto out;
    for (int i = 0; i < nfiles; i++)
        if (files[i].content == 1 && load_deletes(st, &files[i], &dm, err))
            goto out;
        else if (files[i].content == 2) {
            cf_err_set(err, CF_E_UNSUPPORTED, "equality delete files are not supported");
            goto out;
        }
    for (size_t i = 0; i < dm.n; i++)
        qsort(dm.v[i].pos, dm.v[i].n, sizeof *dm.v[i].pos, cmp_i64);
    for (int i = 0; i < nfiles; i++) {
        if (files[i].content != 0)
            continue;
        if (scan_file(st, &files[i], delmap_get(&dm, files[i].path, strlen(files[i].path), false, NULL),
                      out_s, fn, ctx, err))
            goto out;
    }
    rc = 0;
out:
    delmap_free(&dm);
    cf_schema_free(out_s);
    return rc;
}

int cf_ice_scan(cf_store *st, json_t *snap, const cf_schema *s, const int *cols, int ncols,
                cf_ice_scan_fn fn, void *ctx, cf_err *err)
{
    cf_ice_file *files = NULL;
    int nfiles = 0, rc;

    if (!snap)
        return 0;
    if (cf_ice_snapshot_files(st, snap, &files, &nfiles, err))
        return -1;
    rc = cf_ice_scan_files(st, files, nfiles, s, cols, ncols, fn, ctx, err);
    cf_ice_files_free(files, nfiles);
    return rc;
}
