/* read.c - read the rows of a Delta data or change-data file into a batch
 * bound to the table schema: columns by name, absent columns as null,
 * partition columns from the file's partition values. */
#include "table/delta/delta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cf_delta_read_file(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                       const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, cf_err *err)
{
    return cf_delta_read_file_rg(st, root, logpath, pv, dv, tschema, out, -1, NULL, err);
}

static int read_rows(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                     const cf_rowset *set, bool only, const cf_schema *tschema, cf_batch *out, int only_rg,
                     int *nrg, cf_rowset *pos, cf_err *err);

int cf_delta_read_file_rg(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                          const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, int only_rg,
                          int *nrg, cf_err *err)
{
    return cf_delta_read_file_pos(st, root, logpath, pv, dv, tschema, out, only_rg, nrg, NULL, err);
}

int cf_delta_read_file_pos(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                           const cf_delta_dv *dv, const cf_schema *tschema, cf_batch *out, int only_rg,
                           int *nrg, cf_rowset *pos, cf_err *err)
{
    cf_rowset gone = { 0 };
    int rc;

    if (dv && dv->type && cf_delta_dv_read(st, root, dv, &gone, err))
        return cf_err_wrap(err, "%s", logpath);
    rc = read_rows(st, root, logpath, pv, &gone, false, tschema, out, only_rg, nrg, pos, err);
    cf_rowset_free(&gone);
    return rc;
}

int cf_delta_read_file_set(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                           const cf_rowset *set, bool only, const cf_schema *tschema, cf_batch *out,
                           cf_err *err)
{
    return read_rows(st, root, logpath, pv, set, only, tschema, out, -1, NULL, NULL, err);
}

/* Append `n` positions from `first` on to pos (take: which of them). */
static int push_positions(cf_rowset *pos, uint64_t first, const size_t *take, size_t n, cf_err *err)
{
    for (size_t k = 0; k < n; k++)
        if (cf_rowset_add(pos, first + (take ? take[k] : k), err))
            return -1;
    return 0;
}

/* Rows of the file: without the rows of `set`, or (only) just those; pos
 * (may be NULL) gets each row's position in the file. */
static int read_rows(cf_store *st, const char *root, const char *logpath, const cf_delta_pv *pv,
                     const cf_rowset *set, bool only, const cf_schema *tschema, cf_batch *out, int only_rg,
                     int *nrg, cf_rowset *pos, cf_err *err)
{
    char *full = NULL;
    cf_pq_reader *r = NULL;
    cf_schema *sub = NULL;
    cf_batch *tmp = NULL;
    size_t *take = NULL;
    int *cols = NULL, *map = NULL, ncols = 0, rc = -1;
    const cf_schema *fs;
    bool every = !only && !set->n;    /* no row to skip */

    if (!(full = cf_delta_path_full(root, logpath)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (!(r = cf_pq_reader_open(st, full, err))) {
        cf_err_wrap(err, "%s", logpath);
        goto out;
    }
    fs = cf_pq_reader_schema(r);
    int rg_first = only_rg < 0 ? 0 : only_rg, rg_end = cf_pq_reader_num_row_groups(r);
    if (nrg)
        *nrg = rg_end;
    if (only_rg >= 0)
        rg_end = only_rg < rg_end ? only_rg + 1 : only_rg;
    cols = calloc((size_t)tschema->nfields + 1, sizeof *cols);
    map = calloc((size_t)tschema->nfields + 1, sizeof *map);
    if (!cols || !map || !(sub = cf_schema_new())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < tschema->nfields; i++) {
        bool in_pv = false;
        int j;
        map[i] = -1;
        if (pv)
            cf_delta_pv_get(pv, tschema->fields[i].name, &in_pv);
        if (in_pv || (j = cf_schema_find(fs, tschema->fields[i].name)) < 0)
            continue;
        if (cf_schema_add(sub, fs->fields[j].name, fs->fields[j].type, true, 0, err) < 0)
            goto out;
        cols[ncols] = j;
        map[i] = ncols++;
    }
    /* The usual case, a file written with the table's columns in order:
     * decode straight into `out`, no copy. */
    bool direct = ncols == tschema->nfields && out->ncols == ncols && every;
    for (int i = 0; direct && i < ncols; i++) {
        const cf_type *a = &sub->fields[i].type, *b = &out->cols[i].type;
        direct = map[i] == i && a->id == b->id && a->precision == b->precision && a->scale == b->scale;
    }
    uint64_t pos0 = 0;
    for (int rg = 0; (!every || pos) && rg < rg_first; rg++)
        pos0 += (uint64_t)cf_pq_reader_row_group_rows(r, rg);
    if (direct) {
        for (int rg = rg_first; rg < rg_end; rg++) {
            size_t before = out->nrows;
            if (cf_pq_reader_read(r, rg, cols, ncols, out, err)) {
                cf_err_wrap(err, "%s", logpath);
                goto out;
            }
            if (pos && push_positions(pos, pos0, NULL, out->nrows - before, err))
                goto out;
            pos0 += out->nrows - before;
        }
        rc = 0;
        goto out;
    }
    if (!(tmp = cf_batch_new(sub, err)))
        goto out;
    /* row positions (what deletion vectors name) count from the file's start */
    for (int rg = rg_first; rg < rg_end; rg++) {
        size_t base = out->nrows, n, nk = 0;
        cf_batch_reset(tmp);
        if (ncols && cf_pq_reader_read(r, rg, cols, ncols, tmp, err)) {
            cf_err_wrap(err, "%s", logpath);
            goto out;
        }
        n = ncols ? tmp->nrows : 0;
        if (!ncols) {
            /* only partition columns asked for: the row count still matters */
            int64_t rows_rg = cf_pq_reader_row_group_rows(r, rg);
            n = rows_rg > 0 ? (size_t)rows_rg : 0;
        }
        /* the rows of this row group its deletion vector leaves */
        free(take);
        if (!(take = malloc(sizeof *take * (n + 1)))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t k = 0; k < n; k++)
            if (every || cf_rowset_has(set, pos0 + k) == only)
                take[nk++] = k;
        if (pos && push_positions(pos, pos0, take, nk, err))
            goto out;
        pos0 += n;
        /* Column at a time, then count the rows. */
        for (int i = 0; i < tschema->nfields; i++) {
            cf_column *dc = &out->cols[i];
            if (map[i] >= 0) {
                const cf_column *sc = &tmp->cols[map[i]];
                for (size_t k = 0; k < nk; k++)
                    if (cf_col_copy(dc, base + k, sc, take[k], err))
                        goto out;
            } else {
                bool in_pv = false;
                const char *v = pv ? cf_delta_pv_get(pv, tschema->fields[i].name, &in_pv) : NULL;
                for (size_t k = 0; k < nk; k++)
                    if (in_pv ? cf_delta_pv_parse(dc, base + k, v, err)
                              : cf_col_set_null(dc, base + k, err))
                        goto out;
            }
        }
        for (size_t k = 0; k < nk; k++)
            if (cf_batch_end_row(out, err))
                goto out;
    }
    rc = 0;
out:
    free(take);
    cf_batch_free(tmp);
    cf_schema_free(sub);
    free(cols);
    free(map);
    cf_pq_reader_close(r);
    free(full);
    return rc;
}
