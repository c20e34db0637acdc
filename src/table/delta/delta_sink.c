/* delta_sink.c - the Delta Lake table sink: append or upsert batches as
 * Parquet files and commit them with the Kafka offsets they cover (txn
 * actions) in one put-if-absent log entry; change data files for upserts. */
#include "table/delta/delta_int.h"
#include "table/table_int.h"
#include "table/delta/delta_cmd.h"
#include "util/id.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/version.h"
#include "util/log.h"

#define MERGE_BUDGET (32LL << 20)   /* compressed bytes of touched files rewritten as one */

/* Rows of one partition (indexes into the source batch). */
typedef struct group {
    char     *dir;                 /* "a=1/b=x/" or "" */
    cf_delta_pv pv;
    uint32_t *rows;
    size_t    n, alloc;
} group;

/* A data file written by this commit: its key-index updates wait for the
 * commit to land. */
typedef struct written {
    char   *logpath;
    size_t  key_off, key_end;      /* range in ds->newkeys of (u32 len, bytes) records */
    int64_t *from;                 /* survivors of these rewritten files' slots */
    size_t   nfrom;
} written;

typedef struct dsink {
    cf_sink       *sink;
    cf_delta_snap *snap;
    char           app[200];       /* txn appId prefix: "<app_id>-" */
    /* upsert */
    cf_delta_map  *pk;             /* encoded key -> file slot */
    bool           pk_ready;
    cf_buf         key;            /* scratch */
    cf_buf         newkeys;        /* keys of rows written by the pending commit */
    cf_buf         gonekeys;       /* keys retired by the pending commit */
    written       *w;
    size_t         nw, aw;
    /* pending commit */
    cf_buf         actions;        /* add/remove/cdc lines */
    int64_t        out_rows, out_bytes, out_files, rm_files, cdc_files, upd_rows, del_rows, ins_rows;
    char         **created;        /* locations of files written, removed again if the commit fails */
    size_t         ncreated, acreated;
    bool           rewrite_only;   /* optimize: files carry dataChange=false */
    bool           use_dv;         /* upsert retires rows with deletion vectors */
    bool           dv_upgrade;     /* ... and this commit turns them on for the table */
    int64_t        dv_files;       /* files that got a new deletion vector */
    const int64_t *surv_slots;     /* write_rows is writing the survivors of these slots */
    size_t         nsurv;
    /* A rewritten file's surviving keys move together: rather than re-put
     * every key, the old slot points at the new one. */
    int64_t       *alias;
    size_t         nalias;
    cf_schema     *kschema;        /* the key columns, as the table types them */
    size_t         indexed;        /* file slots [0, indexed) are in the key index */
    double         file_ratio;     /* append: file bytes / estimated row bytes of the last cut file */
    /* the staged commit (d_stage -> d_publish) */
    const cf_commit *c;            /* the commit being staged (stage_upsert reads it) */
    cf_buf         commit;         /* the log entry */
    bool           noop;           /* nothing to write */
    bool           changed;        /* it carries a metaData action */
    int64_t        base_version;   /* the table version it was built on */
    int64_t        next;           /* version to publish as */
    char          *base_schema;    /* schemaString it was built on, NULL for a new table */
    bool          *widened;        /* per table column: its type widens in this commit */
    bool           widening;       /* ... some column does */
    cf_delta_map  *bkeys;          /* upsert: the staged batch's keys */
    int64_t        checked;        /* version cf_delta_snap_writable last passed, -2 none */
} dsink;

static int64_t resolve(dsink *ds, int64_t slot)
{
    int64_t s = slot;
    while (s >= 0 && (size_t)s < ds->nalias && ds->alias[s] >= 0)
        s = ds->alias[s];
    if (slot != s && (size_t)slot < ds->nalias)
        ds->alias[slot] = s;   /* path compression */
    return s;
}

/* ---- small helpers ---------------------------------------------------- */

static int track_created(dsink *ds, const char *path, cf_err *err)
{
    if (ds->ncreated == ds->acreated) {
        size_t na = ds->acreated ? ds->acreated * 2 : 16;
        char **n = realloc(ds->created, na * sizeof *n);
        if (!n)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        ds->created = n;
        ds->acreated = na;
    }
    if (!(ds->created[ds->ncreated] = strdup(path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    ds->ncreated++;
    return 0;
}

static void pending_reset(dsink *ds, bool remove_files)
{
    for (size_t i = 0; i < ds->ncreated; i++) {
        if (remove_files)
            cf_store_delete(ds->sink->store, ds->created[i], NULL);
        free(ds->created[i]);
    }
    ds->ncreated = 0;
    for (size_t i = 0; i < ds->nw; i++) {
        free(ds->w[i].logpath);
        free(ds->w[i].from);
    }
    ds->nw = 0;
    cf_buf_reset(&ds->actions);
    cf_buf_reset(&ds->newkeys);
    cf_buf_reset(&ds->gonekeys);
    ds->out_rows = ds->out_bytes = ds->out_files = ds->rm_files = ds->cdc_files = 0;
    ds->upd_rows = ds->del_rows = ds->ins_rows = 0;
    ds->dv_files = 0;
}

static int put_json_line(cf_buf *b, json_t *j, cf_err *err)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int rc;
    if (!s)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    rc = cf_buf_append(b, s, strlen(s), err) || cf_buf_putc(b, '\n', err) ? -1 : 0;
    free(s);
    return rc;
}

static json_t *pv_json(const cf_delta_pv *pv)
{
    json_t *o = json_object();
    for (int i = 0; o && i < pv->n; i++)
        json_object_set_new(o, pv->keys[i], pv->vals[i] ? json_string(pv->vals[i]) : json_null());
    return o;
}

/* Queue a `remove` action for file f: dataChange true when rows leave the
 * table (upsert rewrites), false when they only move (optimize). */
static int put_remove(dsink *ds, const cf_delta_file *f, bool data_change, cf_err *err)
{
    json_t *body = json_object(), *line = json_object();
    int rc;

    json_object_set_new(body, "path", json_string(f->path));
    json_object_set_new(body, "deletionTimestamp", json_integer(cf_now_ms()));
    json_object_set_new(body, "dataChange", json_boolean(data_change));
    json_object_set_new(body, "extendedFileMetadata", json_true());
    json_object_set_new(body, "partitionValues", pv_json(&f->pv));
    json_object_set_new(body, "size", json_integer(f->size));
    if (f->dv.type)   /* the logical file is (path, deletion vector) */
        json_object_set_new(body, "deletionVector", cf_delta_dv_json(&f->dv));
    json_object_set_new(line, "remove", body);
    rc = put_json_line(&ds->actions, line, err);
    json_decref(line);
    if (rc == 0)
        ds->rm_files++;
    return rc;
}

static int is_part_col(const cf_delta_snap *snap, const char *name)
{
    for (int i = 0; i < snap->npart; i++)
        if (!strcmp(snap->part_cols[i], name))
            return 1;
    return 0;
}

/* Append the encoded primary key of row `row` of b to out.  pk[] are
 * column indexes of b.  Integers are widened so a key reads the same from
 * the batch and from a file. */
static int encode_key(const cf_batch *b, const int *pk, int npk, size_t row, cf_buf *out,
                      cf_err *err)
{
    for (int i = 0; i < npk; i++) {
        const cf_column *c = &b->cols[pk[i]];
        if (!cf_col_valid(c, row)) {
            if (cf_buf_putc(out, 0, err))
                return -1;
            continue;
        }
        if (cf_buf_putc(out, 1, err))
            return -1;
        if (cf_type_is_varlen(c->type)) {
            size_t n;
            const uint8_t *p = cf_col_bytes(c, row, &n);
            uint32_t n32 = (uint32_t)n;
            if (cf_buf_append(out, &n32, sizeof n32, err) || cf_buf_append(out, p, n, err))
                return -1;
        } else {
            int64_t v;
            switch (c->type.id) {
            case CF_T_INT32:
            case CF_T_DATE: v = cf_col_i32(c, row); break;
            case CF_T_BOOL: v = cf_col_bool(c, row); break;
            case CF_T_FLOAT: { double d = cf_col_f32(c, row); memcpy(&v, &d, 8); break; }
            case CF_T_DOUBLE: { double d = cf_col_f64(c, row); memcpy(&v, &d, 8); break; }
            default: v = cf_col_i64(c, row); break;
            }
            if (cf_buf_append(out, &v, sizeof v, err))
                return -1;
        }
    }
    return 0;
}

/* ---- schema reconciliation --------------------------------------------- */

/* A type change Delta's typeWidening feature allows, among the types
 * cdcflow stores (decimals wider than 18 digits are text here). */
static bool widens(cf_type from, cf_type to)
{
    return (from.id == CF_T_INT32 && to.id == CF_T_INT64) ||
           (from.id == CF_T_FLOAT && to.id == CF_T_DOUBLE) ||
           (from.id == CF_T_DECIMAL && to.id == CF_T_DECIMAL && to.precision <= 18 &&
            to.scale == from.scale && to.precision > from.precision);   /* unscaled values stay */
}

static bool type_widening_on(const dsink *ds)
{
    json_t *conf = ds->snap->metadata ? json_object_get(ds->snap->metadata, "configuration") : NULL;
    const char *v = json_string_value(json_object_get(conf, "delta.enableTypeWidening"));
    return ds->sink->cfg.type_widening || (v && !strcmp(v, "true"));
}

/* The Delta type a new column of source type t gets: as Delta names it (so
 * the schema read back compares equal), zone-less timestamps as
 * timestamp_ntz unless the sink asks for plain timestamps. */
static cf_type new_column_type(cf_type t, bool ntz)
{
    cf_type dt;

    if (t.id == CF_T_TIMESTAMP_NTZ && !ntz)
        return (cf_type){ CF_T_TIMESTAMP, 0, 0 };
    return cf_delta_schema_type(t, &dt) ? t : dt;
}

/* Table schema for this batch: the current one, or a widened copy when the
 * batch has new columns or, with `widen`, wider types (*changed = 1; the
 * widened columns are flagged in widened[], sized table->nfields).  New
 * zone-less columns are timestamp_ntz with `ntz`; a `timestamp` column an
 * older table has for them keeps its type (its files hold UTC-adjusted
 * values, which no reader takes as timestamp_ntz).  Other type changes and
 * dropped columns are refused.  Caller frees the result. */
static cf_schema *reconcile_schema(const cf_schema *table, const cf_schema *in, bool widen, bool ntz,
                                   bool *widened, int *changed, cf_err *err)
{
    cf_schema *out;
    char b1[32], b2[32];

    *changed = 0;
    if (!table) {
        *changed = 1;
        if (!(out = cf_schema_new()))
            goto oom;
        for (int i = 0; i < in->nfields; i++) {
            if (cf_schema_add(out, in->fields[i].name, new_column_type(in->fields[i].type, ntz), true, 0,
                              err) < 0) {
                cf_schema_free(out);
                return NULL;
            }
        }
        return out;
    }
    for (int i = 0; i < table->nfields; i++) {
        int j = cf_schema_find(in, table->fields[i].name);
        if (j < 0) {
            cf_err_set(err, CF_E_UNSUPPORTED,
                       "column '%s' of the table is missing from the incoming rows: dropping columns "
                       "is not supported (see docs/delta.md)", table->fields[i].name);
            return NULL;
        }
        const char *a = cf_delta_type_name(table->fields[i].type, b1, sizeof b1);
        const char *b = cf_delta_type_name(in->fields[j].type, b2, sizeof b2);
        if (!strcmp(a, b))
            continue;
        if (table->fields[i].type.id == CF_T_TIMESTAMP && in->fields[j].type.id == CF_T_TIMESTAMP_NTZ)
            continue;
        if (widen && widens(table->fields[i].type, in->fields[j].type)) {
            widened[i] = true;
            continue;
        }
        if (widens(table->fields[i].type, in->fields[j].type))
            cf_err_set(err, CF_E_UNSUPPORTED,
                       "column '%s' changed type from %s to %s: this table does not take type changes. "
                       "Delta's typeWidening feature does: set the table property "
                       "delta.enableTypeWidening=true (or run with --type-widening) and restart; its readers "
                       "must know the feature (see docs/delta.md)", table->fields[i].name, a, b);
        else
            cf_err_set(err, CF_E_UNSUPPORTED,
                       "column '%s' changed type from %s to %s, which Delta cannot widen: write the "
                       "column's new values to a new table, or rewrite this one with an engine that "
                       "can (see docs/delta.md)", table->fields[i].name, a, b);
        return NULL;
    }
    if (!(out = cf_schema_clone(table)))
        goto oom;
    for (int i = 0; i < table->nfields; i++) {
        if (!widened[i])
            continue;
        out->fields[i].type = in->fields[cf_schema_find(in, table->fields[i].name)].type;
        *changed = 1;
    }
    for (int j = 0; j < in->nfields; j++) {
        if (cf_schema_find(table, in->fields[j].name) >= 0)
            continue;
        if (cf_schema_add(out, in->fields[j].name, new_column_type(in->fields[j].type, ntz), true, 0, err) < 0) {
            cf_schema_free(out);
            return NULL;
        }
        *changed = 1;
    }
    return out;
oom:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
    return NULL;
}

/* ---- writing files ---------------------------------------------------- */

static void groups_free(group *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].dir);
        free(g[i].rows);
        cf_delta_pv_free(&g[i].pv);
    }
    free(g);
}

/* Split rows[0..n) (NULL = all rows) of b by the table's partition values. */
static int group_rows(const cf_delta_snap *snap, const cf_batch *b, const uint32_t *rows,
                      size_t n, group **out, size_t *nout, cf_err *err)
{
    group *g = NULL;
    size_t ng = 0, ag = 0;
    cf_delta_map *m = NULL;
    cf_buf dir;
    int *pc = NULL;

    cf_buf_init(&dir, 1 << 16);
    if (snap->npart) {
        if (!(pc = calloc((size_t)snap->npart, sizeof *pc)) || !(m = cf_delta_map_new()))
            goto oom;
        for (int p = 0; p < snap->npart; p++)
            if ((pc[p] = cf_schema_find(b->schema, snap->part_cols[p])) < 0) {
                cf_err_set(err, CF_E_ARG, "partition column '%s' is not in the rows", snap->part_cols[p]);
                goto fail;
            }
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t row = rows ? rows[k] : (uint32_t)k;
        int64_t gi = 0;
        cf_buf_reset(&dir);
        for (int p = 0; p < snap->npart; p++) {
            size_t mark;
            bool isnull;
            if (cf_buf_printf(&dir, err, "%s=", snap->part_cols[p]))
                goto fail;
            mark = dir.len;
            if (cf_delta_pv_format(&b->cols[pc[p]], row, &dir, &isnull, err))
                goto fail;
            if (isnull) {
                if (cf_buf_printf(&dir, err, "%s", CF_DELTA_NULL_PART))
                    goto fail;
            } else {
                /* escape in place: copy the raw value out, re-append escaped */
                char *raw = strndup((const char *)dir.data + mark, dir.len - mark);
                if (!raw)
                    goto oom;
                dir.len = mark;
                int rc = cf_delta_path_escape(raw, &dir, err);
                free(raw);
                if (rc)
                    goto fail;
            }
            if (cf_buf_putc(&dir, '/', err))
                goto fail;
        }
        if (m ? !cf_delta_map_get(m, dir.data, dir.len, &gi) : ng == 0) {
            if (ng == ag) {
                size_t na = ag ? ag * 2 : 4;
                group *ngp = realloc(g, na * sizeof *ngp);
                if (!ngp)
                    goto oom;
                g = ngp;
                ag = na;
            }
            memset(&g[ng], 0, sizeof g[ng]);
            if (!(g[ng].dir = strndup(dir.data ? (const char *)dir.data : "", dir.len)))
                goto oom;
            ng++;
            gi = (int64_t)ng - 1;
            if (m && cf_delta_map_put(m, dir.data, dir.len, gi))
                goto oom;
            if (snap->npart) {
                group *gg = &g[gi];
                gg->pv.keys = calloc((size_t)snap->npart, sizeof *gg->pv.keys);
                gg->pv.vals = calloc((size_t)snap->npart, sizeof *gg->pv.vals);
                if (!gg->pv.keys || !gg->pv.vals)
                    goto oom;
                for (int p = 0; p < snap->npart; p++) {
                    cf_buf v;
                    bool isnull;
                    cf_buf_init(&v, 1 << 16);
                    if (cf_delta_pv_format(&b->cols[pc[p]], row, &v, &isnull, err)) {
                        cf_buf_free(&v);
                        goto fail;
                    }
                    gg->pv.keys[p] = strdup(snap->part_cols[p]);
                    gg->pv.vals[p] = isnull ? NULL : strndup(v.data ? (const char *)v.data : "", v.len);
                    gg->pv.n++;
                    cf_buf_free(&v);
                    if (!gg->pv.keys[p] || (!isnull && !gg->pv.vals[p]))
                        goto oom;
                }
            }
        }
        group *gg = &g[gi];
        if (gg->n == gg->alloc) {
            size_t na = gg->alloc ? gg->alloc * 2 : 256;
            uint32_t *nr = realloc(gg->rows, na * sizeof *nr);
            if (!nr)
                goto oom;
            gg->rows = nr;
            gg->alloc = na;
        }
        gg->rows[gg->n++] = row;
    }
    cf_buf_free(&dir);
    cf_delta_map_free(m);
    free(pc);
    *out = g;
    *nout = ng;
    return 0;
oom:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
fail:
    cf_buf_free(&dir);
    cf_delta_map_free(m);
    free(pc);
    groups_free(g, ng);
    return -1;
}

/* Estimated bytes of row r of the file's columns (values as Parquet
 * stores them before compression). */
static int64_t row_bytes(const cf_batch *view, uint32_t r)
{
    int64_t n = 0;
    for (int c = 0; c < view->ncols; c++) {
        const cf_column *col = &view->cols[c];
        if (!cf_col_valid(col, r))
            continue;
        if (cf_type_is_varlen(col->type)) {
            n += 4 + (int64_t)(col->offs[r + 1] - col->offs[r]);
            continue;
        }
        switch (col->type.id) {
        case CF_T_BOOL: n += 1; break;
        case CF_T_INT32: case CF_T_DATE: case CF_T_FLOAT: n += 4; break;
        default: n += 8; break;
        }
    }
    return n + 1;
}

/* How many of rows[0..n) go to the next file so that it stays near
 * `target` bytes: the estimated row bytes scaled by what the last file
 * really weighed per estimated byte (compression).  At least one row. */
static size_t cut_rows(const dsink *ds, const cf_batch *view, const uint32_t *rows, size_t n, int64_t target,
                       int64_t *est)
{
    double ratio = ds->file_ratio > 0 ? ds->file_ratio : 1.0, acc = 0;
    size_t k = 0;

    *est = 0;
    while (k < n) {
        int64_t rb = row_bytes(view, rows[k]);
        if (k && acc + (double)rb * ratio > (double)target)
            break;
        acc += (double)rb * ratio;
        *est += rb;
        k++;
    }
    return k;
}

/* The schema of the files write_rows writes (the table's columns without
 * the partition columns, plus `_change_type` for change data) into *fs,
 * and the columns of b in that order into vcols (sized table->nfields + 2). */
static int file_schema(const dsink *ds, const cf_schema *table, const cf_batch *b, bool cdc, cf_schema *fs,
                       cf_column *vcols, cf_err *err)
{
    for (int i = 0; i < table->nfields; i++) {
        const cf_field *f = &table->fields[i];
        int j;
        if (is_part_col(ds->snap, f->name))
            continue;
        if ((j = cf_schema_find(b->schema, f->name)) < 0)
            return cf_err_set(err, CF_E_ARG, "column '%s' missing from rows", f->name);
        vcols[fs->nfields] = b->cols[j];
        vcols[fs->nfields].type = f->type;
        if (cf_schema_add(fs, f->name, f->type, true, 0, err) < 0)
            return -1;
    }
    if (cdc) {
        int j = cf_schema_find(b->schema, "_change_type");
        cf_type st = { CF_T_STRING, 0, 0 };
        if (j < 0)
            return cf_err_set(err, CF_E_ARG, "change rows without _change_type");
        vcols[fs->nfields] = b->cols[j];
        if (cf_schema_add(fs, "_change_type", st, true, 0, err) < 0)
            return -1;
    }
    return 0;
}

/* Write rows take[0..n) of view as a new Parquet file at location full,
 * which the pending commit then owns (removed if it fails). */
static int write_file(dsink *ds, const char *full, const cf_batch *view, const uint32_t *take, size_t n,
                      const cf_pq_options *opt, cf_pq_file_info *fi, cf_err *err)
{
    cf_pq_writer *w = cf_pq_writer_open(ds->sink->store, full, view->schema, opt, err);

    if (!w)
        return -1;
    if (track_created(ds, full, err) || cf_pq_writer_write_rows(w, view, take, n, err)) {
        cf_pq_writer_abort(w);
        return -1;
    }
    return cf_pq_writer_close(w, fi, err);
}

/* Queue the add (or cdc) action of a file just written: lp holds its log
 * path, fs its schema. */
static int log_file(dsink *ds, const cf_buf *lp, const cf_delta_pv *pv, const cf_schema *fs,
                    const cf_pq_file_info *fi, bool cdc, cf_err *err)
{
    json_t *body = json_object(), *line = json_object();
    int rc;

    json_object_set_new(body, "path", json_string((const char *)lp->data));
    json_object_set_new(body, "partitionValues", pv_json(pv));
    json_object_set_new(body, "size", json_integer(fi->file_bytes));
    if (!cdc) {
        char *stats = cf_delta_stats_json(fs, fi, NULL);
        json_object_set_new(body, "modificationTime", json_integer(cf_now_ms()));
        json_object_set_new(body, "dataChange", json_boolean(!ds->rewrite_only));
        if (stats)
            json_object_set_new(body, "stats", json_string(stats));
        free(stats);
    } else {
        json_object_set_new(body, "dataChange", json_false());
    }
    json_object_set_new(line, cdc ? "cdc" : "add", body);
    rc = put_json_line(&ds->actions, line, err);
    json_decref(line);
    return rc;
}

/* Remember a data file of the pending commit for the key index: the keys
 * of its rows take[0..n) of b (keys_pk), or the slots whose survivors it
 * holds (ds->surv_slots).  Takes the log path out of lp. */
static int note_written(dsink *ds, cf_buf *lp, const cf_batch *b, const int *keys_pk, int npk,
                        const uint32_t *take, size_t n, cf_err *err)
{
    written wr = { 0 };

    if (!keys_pk) {
        if (!(wr.from = malloc(sizeof *wr.from * ds->nsurv)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        memcpy(wr.from, ds->surv_slots, sizeof *wr.from * ds->nsurv);
        wr.nfrom = ds->nsurv;
    }
    if (ds->nw == ds->aw) {
        size_t na = ds->aw ? ds->aw * 2 : 16;
        written *nwp = realloc(ds->w, na * sizeof *nwp);
        if (!nwp) {
            free(wr.from);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
        ds->w = nwp;
        ds->aw = na;
    }
    wr.logpath = (char *)cf_buf_steal(lp, NULL);
    wr.key_off = ds->newkeys.len;
    for (size_t k = 0; keys_pk && k < n; k++) {
        size_t mark = ds->newkeys.len;
        uint32_t len = 0;
        if (cf_buf_append(&ds->newkeys, &len, sizeof len, err) ||
            encode_key(b, keys_pk, npk, take[k], &ds->newkeys, err)) {
            free(wr.logpath);
            free(wr.from);
            return -1;
        }
        len = (uint32_t)(ds->newkeys.len - mark - sizeof len);
        memcpy(ds->newkeys.data + mark, &len, sizeof len);
    }
    wr.key_end = ds->newkeys.len;
    ds->w[ds->nw++] = wr;
    return 0;
}

/* Write rows of b (columns found by name) as one Parquet file per
 * partition under `subdir` ("" or "_change_data/"), appending add or cdc
 * actions; with cut_bytes > 0 a partition's rows are cut into files of
 * about that size.  The file schema is the table schema without partition
 * columns, plus `_change_type` for change data.  keys_pk: when non-NULL,
 * record the encoded keys of the rows (upsert index); cutting is for
 * append only (the key index and survivor aliases assume one file per
 * partition). */
static int write_rows(dsink *ds, const cf_schema *table, const cf_batch *b, const uint32_t *rows,
                      size_t n, bool cdc, const int *keys_pk, int npk, int64_t cut_bytes, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;
    cf_schema *fs = NULL;
    cf_column *vcols = NULL;
    group *g = NULL;
    size_t ng = 0;
    int rc = -1;
    cf_pq_options opt;
    cf_buf lp;

    if (!n)
        return 0;
    cf_buf_init(&lp, 0);
    if (!(fs = cf_schema_new()) || !(vcols = calloc((size_t)table->nfields + 2, sizeof *vcols))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    if (file_schema(ds, table, b, cdc, fs, vcols, err))
        goto out;
    cf_batch view = { .schema = fs, .nrows = b->nrows, .ncols = fs->nfields, .cols = vcols };
    if (group_rows(snap, b, rows, n, &g, &ng, err))
        goto out;
    cf_pq_options_default(&opt);
    opt.codec = ds->sink->cfg.codec;
    opt.write_field_ids = false;
    for (size_t gi = 0, done = 0; gi < ng;) {
        char id[37], full[PATH_MAX * 2], rel[PATH_MAX];
        cf_pq_file_info fi = { 0 };
        const char *ext = opt.codec == CF_CODEC_ZSTD ? ".zstd" : opt.codec == CF_CODEC_SNAPPY ? ".snappy" : "";
        /* this file: rows take[0..ntake) of the group */
        const uint32_t *take = g[gi].rows + done;
        size_t ntake = g[gi].n - done;
        int64_t est = 0;

        cf_uuid(id);
        snprintf(rel, sizeof rel, "%s%s%s-00000-%s.c000%s.parquet", cdc ? CF_DELTA_CDC_DIR "/" : "",
                 g[gi].dir, cdc ? "cdc" : "part", id, ext);
        snprintf(full, sizeof full, "%s/%s", snap->root, rel);
        if (cut_bytes > 0 && !cdc && !keys_pk && !ds->nsurv)
            ntake = cut_rows(ds, &view, take, ntake, cut_bytes, &est);
        if (write_file(ds, full, &view, take, ntake, &opt, &fi, err))
            goto out;
        if (est > 0)
            ds->file_ratio = (double)fi.file_bytes / (double)est;
        cf_buf_reset(&lp);
        int frc = cf_delta_path_encode(rel, &lp, err) || !cf_buf_cstr(&lp, err) ||
                  log_file(ds, &lp, &g[gi].pv, fs, &fi, cdc, err);
        int64_t size = fi.file_bytes;
        cf_pq_file_info_free(&fi);
        if (frc)
            goto out;
        if (cdc) {
            ds->cdc_files++;
        } else {
            ds->out_files++;
            ds->out_rows += (int64_t)ntake;
            ds->out_bytes += size;
        }
        if ((keys_pk || ds->nsurv) && !cdc && note_written(ds, &lp, b, keys_pk, npk, take, ntake, err))
            goto out;
        done += ntake;
        if (done >= g[gi].n) {
            gi++;
            done = 0;
        }
    }
    rc = 0;
out:
    cf_buf_free(&lp);
    groups_free(g, ng);
    free(vcols);
    cf_schema_free(fs);
    return rc;
}

/* ---- sink ops ----------------------------------------------------------- */

/* An existing table keeps its partitioning; asking for another is a
 * configuration error, not something to fix silently. */
static int check_partitioning(const cf_sink *s, const cf_delta_snap *snap, cf_err *err)
{
    bool same = s->cfg.npartition_by == snap->npart;

    if (snap->version < 0 || !s->cfg.npartition_by)
        return 0;
    for (int i = 0; same && i < snap->npart; i++)
        same = !strcmp(s->cfg.partition_by[i], snap->part_cols[i]);
    if (!same)
        return cf_err_set(err, CF_E_ARG, "%s is partitioned differently than --partition-by asks",
                          s->cfg.location);
    return 0;
}

static int d_open(cf_sink *s, cf_err *err)
{
    dsink *ds;
    char logdir[PATH_MAX];

    if (!s->cfg.location || !*s->cfg.location)
        return cf_err_set(err, CF_E_ARG, "the delta sink needs a table path");
    /* Commits rely on put-if-absent: an object store that ignores the
     * condition would let two writers overwrite each other's versions.
     * (Local files: link(2), always enforced.) */
    size_t rl = strlen(s->cfg.location);
    while (rl > 1 && s->cfg.location[rl - 1] == '/')
        rl--;
    snprintf(logdir, sizeof logdir, "%.*s/" CF_DELTA_LOG_DIR, (int)rl, s->cfg.location);
    if (!cf_store_is_local(s->store) && cf_store_check_atomic(s->store, logdir, err))
        return cf_err_wrap(err, "delta table %s", s->cfg.location);
    if (!(ds = calloc(1, sizeof *ds)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    ds->sink = s;
    ds->checked = -2;
    snprintf(ds->app, sizeof ds->app, "%s-", s->cfg.app_id && *s->cfg.app_id ? s->cfg.app_id : "cdcflow");
    cf_buf_init(&ds->key, 1 << 20);
    cf_buf_init(&ds->newkeys, 0);
    cf_buf_init(&ds->gonekeys, 0);
    cf_buf_init(&ds->actions, 0);
    cf_buf_init(&ds->commit, 0);
    if (!(ds->snap = cf_delta_snap_load(s->store, s->cfg.location, -1, err))) {
        free(ds);
        return cf_err_wrap(err, "delta table %s", s->cfg.location);
    }
    if (cf_delta_snap_writable(ds->snap, s->cfg.mode == CF_MODE_UPSERT, err) ||
        check_partitioning(s, ds->snap, err)) {
        cf_delta_snap_free(ds->snap);
        free(ds);
        return -1;
    }
    s->impl = ds;
    return 0;
}

/* The offsets recorded in `snap` by txn actions of our appId prefix. */
static int txn_offsets(const dsink *ds, const cf_delta_snap *snap, cf_offsets *out, cf_err *err)
{
    size_t pl = strlen(ds->app);

    for (int i = 0; i < snap->ntxns; i++) {
        const char *a = snap->txns[i].app_id, *dash;
        char topic[256];
        char *end;
        long part;

        /* appId = "<app_id>-<topic>-<partition>"; topics may contain '-',
         * partitions never do, so split at the last one. */
        if (strncmp(a, ds->app, pl) || !(dash = strrchr(a + pl, '-')) || dash == a + pl)
            continue;
        errno = 0;
        part = strtol(dash + 1, &end, 10);
        if (*end || end == dash + 1 || errno || part < 0 || part > INT32_MAX ||
            (size_t)(dash - (a + pl)) >= sizeof topic)
            continue;
        memcpy(topic, a + pl, (size_t)(dash - (a + pl)));
        topic[dash - (a + pl)] = 0;
        if (cf_delta_offsets_put(out, topic, (int32_t)part, snap->txns[i].version, err))
            return -1;
    }
    return 0;
}

static int d_offsets(cf_sink *s, cf_offsets *out, cf_err *err)
{
    dsink *ds = s->impl;

    /* Files other writers added meanwhile enter the key index at the next
     * stage, from ds->indexed on. */
    if (cf_delta_snap_catch_up(ds->snap, err) < 0)
        return -1;
    return txn_offsets(ds, ds->snap, out, err);
}

/* The fence against `snap`, the state a commit is built on. */
static int fence(dsink *ds, const cf_delta_snap *snap, const cf_commit *c, cf_err *err)
{
    cf_offsets have = { 0 };
    int rc = txn_offsets(ds, snap, &have, err);

    if (rc == 0)
        rc = cf_commit_fence(c, &have, snap->root, err);
    cf_offsets_free(&have);
    return rc;
}

/* Put the keys of the live files in slots [from, nfiles) into the index.
 * *hit (if watch) is set when one of them is a key of `watch`. */
static int pk_index_files_watch(dsink *ds, size_t from, const cf_delta_map *watch, bool *hit, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;
    cf_schema *ks = ds->kschema;
    cf_batch *b = cf_batch_new(ks, err);
    int *kidx = calloc((size_t)ks->nfields + 1, sizeof *kidx);
    int rc = -1;

    if (!b || !kidx) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < ks->nfields; i++)
        kidx[i] = i;
    for (size_t slot = from; slot < snap->nfiles; slot++) {
        cf_delta_file *f = &snap->files[slot];
        if (!f->live)
            continue;
        cf_batch_reset(b);
        if (cf_delta_read_file(snap->st, snap->root, f->path, &f->pv, &f->dv, ks, b, err))
            goto out;
        for (size_t r = 0; r < b->nrows; r++) {
            cf_buf_reset(&ds->key);
            if (encode_key(b, kidx, ks->nfields, r, &ds->key, err))
                goto out;
            if (cf_delta_map_put(ds->pk, ds->key.data, ds->key.len, (int64_t)slot)) {
                cf_err_set(err, CF_E_NOMEM, "out of memory in the key index");
                goto out;
            }
            if (watch && cf_delta_map_get(watch, ds->key.data, ds->key.len, NULL))
                *hit = true;
        }
    }
    rc = 0;
out:
    cf_batch_free(b);
    free(kidx);
    return rc;
}

static int pk_index_files(dsink *ds, size_t from, cf_err *err)
{
    return pk_index_files_watch(ds, from, NULL, NULL, err);
}

/* Does the index hold the key columns with the types the table has now
 * (a widened key column changes how its keys read)? */
static bool pk_fits(const dsink *ds, const cf_schema *table, const int *tpk, int npk)
{
    if (!ds->kschema || ds->kschema->nfields != npk)
        return false;
    for (int i = 0; i < npk; i++)
        if (strcmp(ds->kschema->fields[i].name, table->fields[tpk[i]].name) ||
            ds->kschema->fields[i].type.id != table->fields[tpk[i]].type.id)
            return false;
    return true;
}

static int pk_build(dsink *ds, const int *pk_names_in_table, int npk, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;

    cf_delta_map_free(ds->pk);
    cf_schema_free(ds->kschema);
    free(ds->alias);
    ds->alias = NULL;
    ds->nalias = 0;
    ds->pk_ready = false;
    if (!(ds->kschema = cf_schema_new()) || !(ds->pk = cf_delta_map_new()))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < npk; i++) {
        const cf_field *f = &snap->schema->fields[pk_names_in_table[i]];
        if (cf_schema_add(ds->kschema, f->name, f->type, true, 0, err) < 0)
            return -1;
    }
    if (pk_index_files(ds, 0, err))
        return -1;
    ds->indexed = snap->nfiles;
    ds->pk_ready = true;
    cf_log(CF_LOG_INFO, "delta", "key index of %s: %zu keys in %zu files", snap->root,
           cf_delta_map_count(ds->pk), snap->nlive);
    return 0;
}

static char *pv_key(const cf_delta_pv *pv);

typedef struct rw_file { int64_t slot; char *part; } rw_file;

static int cmp_rw(const void *a, const void *b)
{
    const rw_file *x = a, *y = b;
    int c = strcmp(x->part, y->part);
    return c ? c : (x->slot > y->slot) - (x->slot < y->slot);
}

static void rw_free(rw_file *rw, size_t n)
{
    for (size_t i = 0; rw && i < n; i++)
        free(rw[i].part);
    free(rw);
}


/* One upsert being staged: the last change per key of the batch (the
 * winners) and what each retires from the table. */
typedef struct upsert_plan {
    dsink           *ds;
    const cf_schema *table;        /* the schema the files are written in */
    const cf_commit *cm;
    const cf_batch  *rows;         /* cm->rows */
    int              npk;
    int             *tpk;          /* key columns in the table, in key order */
    cf_delta_map    *win;          /* encoded key -> winner number */
    uint32_t        *winners;      /* winner number -> row of `rows` */
    size_t           nwin;
    uint8_t         *had_live;     /* per winner: its key had a live image in the batch */
    uint8_t         *existed;      /* per winner: the table holds its key */
    int64_t         *rslots;       /* file slots holding a winner's key */
    size_t           nrs;
    /* unchanged TOAST (only with cm->unavail cells) */
    int64_t         *prev_row;     /* per row: the row of its key before it, -1 */
    uint8_t         *has_ua;       /* per row: it has unavailable cells */
    int64_t         *fill_of;      /* per winner: the row of `fill` holding what it retires, -1 */
    cf_batch        *fill;
    /* the change feed: the table's columns plus _change_type (column ct) */
    cf_schema       *cs;
    cf_batch        *cb;
    int              ct;
} upsert_plan;

static void upsert_free(upsert_plan *u)
{
    cf_delta_map_free(u->win);
    free(u->tpk);
    free(u->winners);
    free(u->had_live);
    free(u->existed);
    free(u->rslots);
    free(u->prev_row);
    free(u->has_ua);
    free(u->fill_of);
    cf_batch_free(u->fill);
    cf_batch_free(u->cb);
    cf_schema_free(u->cs);
}

/* 1. The last change per key wins: highest LSN, ties by batch order.
 * had_live: the key had a live image in this batch (a soft delete of it
 * must keep a marked row even if the table never saw it). */
static int upsert_winners(upsert_plan *u, cf_err *err)
{
    dsink *ds = u->ds;
    const cf_batch *rows = u->rows;
    size_t n = rows->nrows;

    if (!(u->win = cf_delta_map_new()) || !(u->winners = malloc(sizeof *u->winners * (n + 1))) ||
        !(u->had_live = calloc(n + 1, 1)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (u->cm->unavail && u->cm->unavail->n) {
        if (!(u->prev_row = malloc(sizeof *u->prev_row * (n + 1))))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        for (size_t r = 0; r < n; r++)
            u->prev_row[r] = -1;
    }
    for (size_t r = 0; r < n; r++) {
        int64_t prev;
        bool live = !cf_commit_is_delete(u->cm, r);
        cf_buf_reset(&ds->key);
        if (encode_key(rows, u->cm->key, u->npk, r, &ds->key, err))
            return -1;
        if (cf_delta_map_get(u->win, ds->key.data, ds->key.len, &prev)) {
            size_t pr = u->winners[prev];
            int64_t lp = cf_commit_lsn(u->cm, pr), lr = cf_commit_lsn(u->cm, r);
            if (live)
                u->had_live[prev] = 1;
            if (lp >= 0 && lr >= 0 && lr < lp)
                continue;
            if (u->prev_row)
                u->prev_row[r] = (int64_t)pr;
            u->winners[prev] = (uint32_t)r;
        } else {
            if (cf_delta_map_put(u->win, ds->key.data, ds->key.len, (int64_t)u->nwin))
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            u->had_live[u->nwin] = live;
            u->winners[u->nwin++] = (uint32_t)r;
        }
    }
    return 0;
}

/* 2. Which winners the table holds, and the files holding them (they are
 * rewritten: copy-on-write). */
static int upsert_find_files(upsert_plan *u, cf_err *err)
{
    dsink *ds = u->ds;
    cf_delta_map *seen = cf_delta_map_new();
    int rc = -1;

    if (!seen || !(u->rslots = malloc(sizeof *u->rslots * (u->nwin + 1))) ||
        !(u->existed = calloc(u->nwin + 1, 1))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < u->nwin; k++) {
        int64_t slot;
        cf_buf_reset(&ds->key);
        if (encode_key(u->rows, u->cm->key, u->npk, u->winners[k], &ds->key, err))
            goto out;
        if (!cf_delta_map_get(ds->pk, ds->key.data, ds->key.len, &slot) ||
            (slot = resolve(ds, slot)) < 0 || !ds->snap->files[slot].live)
            continue;
        u->existed[k] = 1;
        if (!cf_delta_map_get(seen, &slot, sizeof slot, NULL)) {
            if (cf_delta_map_put(seen, &slot, sizeof slot, 1)) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto out;
            }
            u->rslots[u->nrs++] = slot;
        }
    }
    rc = 0;
out:
    cf_delta_map_free(seen);
    return rc;
}

/* Row r of `old` (a file being rewritten) is retired by winner wi: its
 * image goes to the change feed, keeps the cells the new one lacks, and its
 * key leaves the index once the commit lands. */
static int upsert_retire(upsert_plan *u, const cf_batch *old, size_t r, int64_t wi, cf_err *err)
{
    dsink *ds = u->ds;
    bool del = cf_commit_is_delete(u->cm, u->winners[wi]) && !ds->sink->cfg.soft_deletes;
    const char *tag = del ? "delete" : "update_preimage";
    size_t cr = u->cb->nrows;

    if (u->has_ua && u->has_ua[u->winners[wi]] && u->fill_of[wi] < 0) {
        u->fill_of[wi] = (int64_t)u->fill->nrows;
        if (cf_batch_copy_row(u->fill, old, r, err))
            return -1;
    }
    for (int c = 0; c < u->table->nfields; c++)
        if (cf_col_copy(&u->cb->cols[c], cr, &old->cols[c], r, err))
            return -1;
    if (cf_col_set_bytes(&u->cb->cols[u->ct], cr, tag, strlen(tag), err) || cf_batch_end_row(u->cb, err))
        return -1;
    if (cf_buf_append(&ds->gonekeys, &(uint32_t){ (uint32_t)ds->key.len }, sizeof(uint32_t), err) ||
        cf_buf_append(&ds->gonekeys, ds->key.data, ds->key.len, err))
        return -1;
    if (del)
        ds->del_rows++;
    else
        ds->upd_rows++;
    return 0;
}

/* Rewrite files rw[0..n) of one partition into one: their rows the batch
 * does not retire survive.  A single file over the merge budget is read and
 * rewritten one row group at a time, so memory stays bounded by a row
 * group; its survivors then land in several files and their keys are
 * indexed one by one. */
static int upsert_rewrite_group(upsert_plan *u, const rw_file *rw, size_t n, int64_t target, cf_batch *old,
                                cf_err *err)
{
    dsink *ds = u->ds;
    cf_delta_snap *snap = ds->snap;
    bool big = n == 1 && snap->files[rw[0].slot].size > target;
    uint32_t *keep = NULL;
    int nrg = 1, rc = -1;

    /* remove the old files; their survivors go to the merged new one */
    for (size_t q = 0; q < n; q++)
        if (put_remove(ds, &snap->files[rw[q].slot], true, err))
            return -1;
    for (int rg = 0; rg < nrg; rg++) {
        size_t nkeep = 0;
        int wrc;
        cf_batch_reset(old);
        if (big) {
            cf_delta_file *f = &snap->files[rw[0].slot];
            if (cf_delta_read_file_rg(snap->st, snap->root, f->path, &f->pv, &f->dv, u->table, old, rg, &nrg, err))
                goto out;
        } else {
            for (size_t q = 0; q < n; q++) {
                cf_delta_file *f = &snap->files[rw[q].slot];
                if (cf_delta_read_file(snap->st, snap->root, f->path, &f->pv, &f->dv, u->table, old, err))
                    goto out;
            }
        }
        free(keep);
        if (!(keep = malloc(sizeof *keep * (old->nrows + 1)))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t r = 0; r < old->nrows; r++) {
            int64_t wi;
            cf_buf_reset(&ds->key);
            if (encode_key(old, u->tpk, u->npk, r, &ds->key, err))
                goto out;
            if (!cf_delta_map_get(u->win, ds->key.data, ds->key.len, &wi))
                keep[nkeep++] = (uint32_t)r;
            else if (upsert_retire(u, old, r, wi, err))
                goto out;
        }
        if (big) {
            wrc = write_rows(ds, u->table, old, keep, nkeep, false, u->tpk, u->npk, 0, err);
        } else {
            int64_t *from = malloc(sizeof *from * n);
            if (!from) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto out;
            }
            for (size_t q = 0; q < n; q++)
                from[q] = rw[q].slot;
            ds->surv_slots = from;
            ds->nsurv = n;
            wrc = write_rows(ds, u->table, old, keep, nkeep, false, NULL, 0, 0, err);
            ds->surv_slots = NULL;
            ds->nsurv = 0;
            free(from);
        }
        if (wrc)
            goto out;
        ds->out_rows -= (int64_t)nkeep;     /* survivors are not new output rows */
    }
    rc = 0;
out:
    free(keep);
    return rc;
}

/* ---- merge-on-read: deletion vectors ---------------------------------- */

/* A file whose retired rows go into its deletion vector. */
typedef struct dv_mark {
    int64_t   slot;
    cf_rowset rows;                /* the new vector: the old one's rows and the retired ones */
    int64_t   nphys;               /* rows the file holds, deleted or not */
    size_t    nretired;
} dv_mark;

/* The rows of file `slot` that winners retire: their images go to the
 * change feed (upsert_retire) and their positions, with those its vector
 * had, into m->rows.  Read a row group at a time. */
static int upsert_mark_file(upsert_plan *u, int64_t slot, cf_batch *old, dv_mark *m, cf_err *err)
{
    dsink *ds = u->ds;
    cf_delta_snap *snap = ds->snap;
    cf_delta_file *f = &snap->files[slot];
    cf_rowset pos = { 0 }, had = { 0 }, gone = { 0 };
    int nrg = 1, rc = -1;

    m->slot = slot;
    m->nphys = 0;
    for (int rg = 0; rg < nrg; rg++) {
        cf_batch_reset(old);
        pos.n = 0;
        if (cf_delta_read_file_pos(snap->st, snap->root, f->path, &f->pv, &f->dv, u->table, old, rg, &nrg, &pos,
                                   err))
            goto out;
        m->nphys += (int64_t)old->nrows;
        for (size_t r = 0; r < old->nrows; r++) {
            int64_t wi;
            cf_buf_reset(&ds->key);
            if (encode_key(old, u->tpk, u->npk, r, &ds->key, err))
                goto out;
            if (!cf_delta_map_get(u->win, ds->key.data, ds->key.len, &wi))
                continue;
            if (upsert_retire(u, old, r, wi, err) || cf_rowset_add(&gone, pos.v[r], err))
                goto out;
        }
    }
    if (cf_delta_dv_read(snap->st, snap->root, &f->dv, &had, err))
        goto out;
    m->nphys += (int64_t)had.n;
    m->nretired = gone.n;
    /* the union of two ascending sets */
    if (!(m->rows.v = malloc(sizeof *m->rows.v * (had.n + gone.n + 1)))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    m->rows.cap = had.n + gone.n + 1;
    for (size_t a = 0, b = 0; a < had.n || b < gone.n;)
        m->rows.v[m->rows.n++] = b == gone.n || (a < had.n && had.v[a] < gone.v[b]) ? had.v[a++] : gone.v[b++];
    rc = 0;
out:
    cf_rowset_free(&pos);
    cf_rowset_free(&had);
    cf_rowset_free(&gone);
    return rc;
}

/* The stats of a file that gets a deletion vector: numRecords counts every
 * row of the file (the protocol requires it exact), and the bounds may now
 * be wider than the rows left. */
static json_t *dv_stats(const cf_delta_file *f, int64_t nphys)
{
    json_t *st = f->stats ? json_loads(f->stats, 0, NULL) : NULL;
    char *txt;

    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    json_object_set_new(st, "numRecords", json_integer(nphys));
    json_object_set_new(st, "tightBounds", json_false());
    txt = json_dumps(st, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(st);
    st = txt ? json_string(txt) : NULL;
    free(txt);
    return st;
}

/* After the commit the file lives on under a new (path, vector): the key
 * index's entries for it follow as they do for a rewrite's survivors. */
static int note_moved(dsink *ds, const char *path, int64_t slot, cf_err *err)
{
    cf_buf lp;
    int64_t keep = slot;
    int rc;

    cf_buf_init(&lp, 0);
    if (cf_buf_append(&lp, path, strlen(path) + 1, err))
        return -1;
    ds->surv_slots = &keep;
    ds->nsurv = 1;
    rc = note_written(ds, &lp, NULL, NULL, 0, NULL, 0, err);
    ds->surv_slots = NULL;
    ds->nsurv = 0;
    cf_buf_free(&lp);
    return rc;
}

/* One .bin file holding the new vectors of m[0..n), then per file a remove
 * with its old vector and an add with the new one (or just the remove when
 * no row is left). */
static int upsert_put_vectors(upsert_plan *u, dv_mark *m, size_t n, cf_err *err)
{
    dsink *ds = u->ds;
    cf_delta_snap *snap = ds->snap;
    const cf_rowset **sets = calloc(n + 1, sizeof *sets);
    int64_t *off = calloc(n + 1, sizeof *off);
    int32_t *size = calloc(n + 1, sizeof *size);
    size_t *which = calloc(n + 1, sizeof *which), k = 0;
    uint8_t uuid[16];
    cf_buf bin, z;
    char *loc = NULL;
    int rc = -1;

    cf_buf_init(&bin, 0);
    cf_buf_init(&z, 0);
    if (!sets || !off || !size || !which) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        cf_delta_file *f = &snap->files[m[i].slot];
        if (!m[i].nretired)
            continue;   /* an index entry the file no longer holds */
        if ((int64_t)m[i].rows.n >= m[i].nphys) {
            if (put_remove(ds, f, true, err))   /* nothing left: the file goes */
                goto out;
            continue;
        }
        which[k] = i;
        sets[k++] = &m[i].rows;
    }
    if (!k) {
        rc = 0;
        goto out;
    }
    /* deletion_vector_<uuid>.bin at the table root, named in the log by
     * the Z85 of the UUID (storage type 'u', no prefix) */
    cf_random_bytes(uuid, sizeof uuid);
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
    if (cf_delta_z85_encode(uuid, sizeof uuid, &z, err) || !cf_buf_cstr(&z, err) ||
        cf_delta_dv_file(sets, k, &bin, off, size, err))
        goto out;
    cf_delta_dv d = { .type = 'u', .path = (char *)z.data, .has_offset = true };
    if (!(loc = cf_delta_dv_location(snap->root, &d, err)) || cf_store_put(ds->sink->store, loc, bin.data, bin.len, err) ||
        track_created(ds, loc, err))
        goto out;
    for (size_t q = 0; q < k; q++) {
        dv_mark *mk = &m[which[q]];
        cf_delta_file *f = &snap->files[mk->slot];
        json_t *body = json_object(), *line = json_object();
        int lrc;
        d.offset = off[q];
        d.size = size[q];
        d.cardinality = (int64_t)mk->rows.n;
        if (put_remove(ds, f, true, err))
            goto out;
        ds->rm_files--;   /* the file stays: counted as a new vector */
        ds->dv_files++;
        json_object_set_new(body, "path", json_string(f->path));
        json_object_set_new(body, "partitionValues", pv_json(&f->pv));
        json_object_set_new(body, "size", json_integer(f->size));
        json_object_set_new(body, "modificationTime", json_integer(f->mtime));
        json_object_set_new(body, "dataChange", json_true());
        json_object_set_new(body, "stats", dv_stats(f, mk->nphys));
        json_object_set_new(body, "deletionVector", cf_delta_dv_json(&d));
        json_object_set_new(line, "add", body);
        lrc = put_json_line(&ds->actions, line, err);
        json_decref(line);
        if (lrc || note_moved(ds, f->path, mk->slot, err))
            goto out;
    }
    rc = 0;
out:
    free(loc);
    free(sets);
    free(off);
    free(size);
    free(which);
    cf_buf_free(&bin);
    cf_buf_free(&z);
    return rc;
}

/* 3 (merge-on-read). The files holding retired rows keep them, marked in
 * their deletion vectors: what the commit writes grows with the change,
 * not with the files it touches. */
static int upsert_mark(upsert_plan *u, cf_err *err)
{
    dv_mark *m = calloc(u->nrs + 1, sizeof *m);
    cf_batch *old = cf_batch_new(u->table, err);
    size_t n = 0;
    int rc = -1;

    if (!m || !old) {
        if (!m)
            cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (; n < u->nrs; n++)
        if (upsert_mark_file(u, u->rslots[n], old, &m[n], err)) {
            n++;
            goto out;
        }
    rc = upsert_put_vectors(u, m, n, err);
out:
    for (size_t i = 0; m && i < n; i++)
        cf_rowset_free(&m[i].rows);
    free(m);
    cf_batch_free(old);
    return rc;
}

/* 3. Files of one partition are rewritten together into one file (up to
 * the target size): small files merge instead of piling up. */
static int upsert_rewrite(upsert_plan *u, cf_err *err)
{
    dsink *ds = u->ds;
    cf_delta_snap *snap = ds->snap;
    rw_file *rw = calloc(u->nrs + 1, sizeof *rw);
    cf_batch *old = NULL;
    int64_t target = ds->sink->cfg.target_file_bytes > 0 ? ds->sink->cfg.target_file_bytes : 128LL << 20;
    int rc = -1;

    if (!rw)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < u->nrs; i++) {
        rw[i].slot = u->rslots[i];
        if (!(rw[i].part = pv_key(&snap->files[u->rslots[i]].pv))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
    }
    qsort(rw, u->nrs, sizeof *rw, cmp_rw);
    /* The merged files are decoded in memory together (several times their
     * compressed size): merge up to 32 MiB of them, less if the target is
     * smaller. */
    if (target > MERGE_BUDGET)
        target = MERGE_BUDGET;
    if (!(old = cf_batch_new(u->table, err)))
        goto out;
    for (size_t i = 0; i < u->nrs;) {
        size_t j = i;
        int64_t bytes = 0;
        while (j < u->nrs && !strcmp(rw[j].part, rw[i].part) &&
               (j == i || bytes + snap->files[rw[j].slot].size <= target))
            bytes += snap->files[rw[j++].slot].size;
        if (upsert_rewrite_group(u, rw + i, j - i, target, old, err))
            goto out;
        i = j;
    }
    rc = 0;
out:
    rw_free(rw, u->nrs);
    cf_batch_free(old);
    return rc;
}

/* 4. The new images: winners that are not hard deletes, with kept cells
 * filled (from the batch's earlier row of the key, or the retired row),
 * into the data files and the change feed. */
static int upsert_new_images(upsert_plan *u, cf_err *err)
{
    dsink *ds = u->ds;
    const cf_batch *rows = u->rows;
    const cf_schema *table = u->table;
    uint32_t *newrows = malloc(sizeof *newrows * (u->nwin + 1));
    int *incol = malloc(sizeof *incol * ((size_t)table->nfields + 1));
    cf_batch *img = NULL;
    size_t nnew = 0;
    int rc = -1;

    if (!newrows || !incol) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int c = 0; c < table->nfields; c++)
        incol[c] = cf_schema_find(rows->schema, table->fields[c].name);
    if (u->fill && !(img = cf_batch_new(rows->schema, err)))
        goto out;
    for (size_t k = 0; k < u->nwin; k++) {
        size_t r = u->winners[k], cr = u->cb->nrows, ir = img ? img->nrows : 0;
        bool isdel = cf_commit_is_delete(u->cm, r), has_cells = u->has_ua && u->has_ua[r];
        const char *tag = u->existed[k] ? "update_postimage" : "insert";
        if (isdel && !ds->sink->cfg.soft_deletes)
            continue;
        if (isdel && !u->existed[k] && !u->had_live[k])
            continue;   /* soft delete of a row nobody ever saw */
        newrows[nnew++] = (uint32_t)r;
        for (int c = 0; c < table->nfields; c++) {
            const cf_column *src = &rows->cols[incol[c]];
            size_t sr = r;
            if (has_cells && cf_cells_has(u->cm->unavail, r, incol[c])) {
                /* an earlier row of the batch, or the row the table holds */
                int64_t q = cf_commit_toast_source(u->cm, u->prev_row, r, incol[c]);
                if (q >= 0) {
                    sr = (size_t)q;
                } else if (q == -1 && u->fill_of[k] >= 0) {
                    src = &u->fill->cols[c];
                    sr = (size_t)u->fill_of[k];
                }
            }
            if (cf_col_copy(&u->cb->cols[c], cr, src, sr, err) ||
                (img && cf_col_copy(&img->cols[incol[c]], ir, src, sr, err)))
                goto out;
        }
        if (cf_col_set_bytes(&u->cb->cols[u->ct], cr, tag, strlen(tag), err) || cf_batch_end_row(u->cb, err) ||
            (img && cf_batch_end_row(img, err)))
            goto out;
        if (!u->existed[k])
            ds->ins_rows++;
    }
    /* With kept cells the new images are the rows of img, in order. */
    rc = img ? write_rows(ds, table, img, NULL, img->nrows, false, u->cm->key, u->npk, 0, err)
             : write_rows(ds, table, rows, newrows, nnew, false, u->cm->key, u->npk, 0, err);
out:
    cf_batch_free(img);
    free(newrows);
    free(incol);
    return rc;
}

/* Stage the upsert of cm->rows into ds->actions: the files holding changed
 * keys are rewritten without them, the new images and the change feed
 * written.  On success the batch's keys stay in ds->bkeys for the publish. */
static int stage_upsert(dsink *ds, const cf_schema *table, const cf_commit *cm, cf_err *err)
{
    upsert_plan u = { .ds = ds, .table = table, .cm = cm, .rows = cm->rows, .npk = cm->nkey };
    const cf_schema *in = cm->rows->schema;
    cf_type st = { CF_T_STRING, 0, 0 };
    int rc = -1;

    if (u.npk <= 0)
        return cf_err_set(err, CF_E_ARG, "upsert mode needs a primary key");
    if (!(u.tpk = calloc((size_t)u.npk, sizeof *u.tpk))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < u.npk; i++)
        if ((u.tpk[i] = cf_schema_find(ds->snap->schema, in->fields[cm->key[i]].name)) < 0) {
            cf_err_set(err, CF_E_ARG, "key column %s not in the table", in->fields[cm->key[i]].name);
            goto out;
        }
    if ((!ds->pk_ready || !pk_fits(ds, ds->snap->schema, u.tpk, u.npk)) && pk_build(ds, u.tpk, u.npk, err))
        goto out;
    if (upsert_winners(&u, err))
        goto out;
    if (cm->unavail && cm->unavail->n) {
        if (!(u.has_ua = calloc(u.rows->nrows + 1, 1)) || !(u.fill_of = malloc(sizeof *u.fill_of * (u.nwin + 1))) ||
            !(u.fill = cf_batch_new(table, err))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < cm->unavail->n; i++)
            if (cm->unavail->v[i].row < u.rows->nrows)
                u.has_ua[cm->unavail->v[i].row] = 1;
        for (size_t k = 0; k < u.nwin; k++)
            u.fill_of[k] = -1;
    }
    if (!(u.cs = cf_schema_clone(table)) || cf_schema_add(u.cs, "_change_type", st, true, 0, err) < 0 ||
        !(u.cb = cf_batch_new(u.cs, err))) {
        if (!u.cs)
            cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    u.ct = u.cs->nfields - 1;
    if (upsert_find_files(&u, err) || (ds->use_dv ? upsert_mark(&u, err) : upsert_rewrite(&u, err)) ||
        upsert_new_images(&u, err))
        goto out;
    /* 5. the change feed of this commit */
    if (ds->snap->cdf_enabled && u.cb->nrows &&
        write_rows(ds, table, u.cb, NULL, u.cb->nrows, true, NULL, 0, 0, err))
        goto out;
    cf_delta_map_free(ds->bkeys);
    ds->bkeys = u.win;             /* the batch's keys, for after_lost_race */
    u.win = NULL;
    rc = 0;
out:
    upsert_free(&u);
    return rc;
}

/* Key index after our commit landed: retired keys out, written rows in. */
static int pk_after_commit(dsink *ds, cf_err *err)
{
    for (size_t off = 0; off + 4 <= ds->gonekeys.len;) {
        uint32_t n;
        memcpy(&n, ds->gonekeys.data + off, 4);
        cf_delta_map_del(ds->pk, ds->gonekeys.data + off + 4, n);
        off += 4 + n;
    }
    for (size_t i = 0; i < ds->nw; i++) {
        cf_delta_file *f = cf_delta_snap_file(ds->snap, ds->w[i].logpath);
        if (!f)
            return cf_err_set(err, CF_E_CORRUPT, "file %s vanished after commit", ds->w[i].logpath);
        int64_t slot = f - ds->snap->files;
        if (ds->w[i].nfrom) {
            if (ds->nalias < ds->snap->nfiles) {
                int64_t *na = realloc(ds->alias, sizeof *na * ds->snap->nfiles);
                if (!na)
                    return cf_err_set(err, CF_E_NOMEM, "out of memory in the key index");
                for (size_t k = ds->nalias; k < ds->snap->nfiles; k++)
                    na[k] = -1;
                ds->alias = na;
                ds->nalias = ds->snap->nfiles;
            }
            for (size_t k = 0; k < ds->w[i].nfrom; k++)
                ds->alias[ds->w[i].from[k]] = slot;
            continue;
        }
        for (size_t off = ds->w[i].key_off; off + 4 <= ds->w[i].key_end;) {
            uint32_t n;
            memcpy(&n, ds->newkeys.data + off, 4);
            if (cf_delta_map_put(ds->pk, ds->newkeys.data + off + 4, n, slot))
                return cf_err_set(err, CF_E_NOMEM, "out of memory in the key index");
            off += 4 + n;
        }
    }
    return 0;
}

static int carry_field_metadata(dsink *ds, char **ss, cf_err *err);
static const char *schema_string(const cf_delta_snap *snap);

/* The metaData action a commit that changes the schema carries: the
 * table's own with the new schema, or a new table's. */
static json_t *new_metadata(dsink *ds, const cf_schema *table, cf_err *err)
{
    const cf_sink_config *cfg = &ds->sink->cfg;
    char *ss = cf_delta_schema_json(table, err);
    json_t *meta;

    if (!ss)
        return NULL;
    if (ds->snap->metadata) {
        meta = json_deep_copy(ds->snap->metadata);
    } else {
        char id[37], ci[16];
        json_t *pc = json_array(), *conf = json_object(), *fmt = json_object();
        cf_uuid(id);
        for (int i = 0; i < cfg->npartition_by; i++)
            json_array_append_new(pc, json_string(cfg->partition_by[i]));
        json_object_set_new(conf, "delta.enableChangeDataFeed", json_string("true"));
        snprintf(ci, sizeof ci, "%d", cfg->checkpoint_interval > 0 ? cfg->checkpoint_interval : 10);
        json_object_set_new(conf, "delta.checkpointInterval", json_string(ci));
        json_object_set_new(fmt, "provider", json_string("parquet"));
        json_object_set_new(fmt, "options", json_object());
        meta = json_object();
        json_object_set_new(meta, "id", json_string(id));
        if (cfg->table_name)
            json_object_set_new(meta, "name", json_string(cfg->table_name));
        json_object_set_new(meta, "format", fmt);
        json_object_set_new(meta, "partitionColumns", pc);
        json_object_set_new(meta, "configuration", conf);
        json_object_set_new(meta, "createdTime", json_integer(cf_now_ms()));
    }
    if (!meta) {
        free(ss);
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    if (carry_field_metadata(ds, &ss, err)) {
        json_decref(meta);
        return NULL;
    }
    json_object_set_new(meta, "schemaString", json_string(ss));
    free(ss);
    if (ds->use_dv) {   /* writers may add vectors only with the property on */
        json_t *conf = json_object_get(meta, "configuration");
        if (!json_is_object(conf))
            json_object_set_new(meta, "configuration", conf = json_object());
        json_object_set_new(conf, "delta.enableDeletionVectors", json_string("true"));
    }
    if (ds->widened && ds->snap->schema)
        for (int i = 0; i < ds->snap->schema->nfields; i++)
            if (ds->widened[i]) {
                json_t *conf = json_object_get(meta, "configuration");
                if (!json_is_object(conf))
                    json_object_set_new(meta, "configuration", conf = json_object());
                json_object_set_new(conf, "delta.enableTypeWidening", json_string("true"));
                break;
            }
    return meta;
}

/* The field metadata of the table's schemaString (comments, earlier type
 * changes, whatever other writers put there) carried into the new one, by
 * column name; a column widened now gets its delta.typeChanges entry. */
static int carry_field_metadata(dsink *ds, char **ss, cf_err *err)
{
    const char *old = schema_string(ds->snap);
    json_t *oj = old ? json_loads(old, 0, NULL) : NULL, *nj = json_loads(*ss, 0, NULL), *f;
    size_t i;
    char *out;

    if (!nj) {
        json_decref(oj);
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    json_array_foreach(json_object_get(nj, "fields"), i, f) {
        const char *name = json_string_value(json_object_get(f, "name"));
        json_t *of, *md = NULL;
        size_t j;
        int col = name && ds->snap->schema ? cf_schema_find(ds->snap->schema, name) : -1;
        json_array_foreach(json_object_get(oj, "fields"), j, of)
            if (name && json_is_string(json_object_get(of, "name")) &&
                !strcmp(name, json_string_value(json_object_get(of, "name"))))
                md = json_object_get(of, "metadata");
        if (json_is_object(md) && json_object_size(md))
            json_object_set_new(f, "metadata", json_deep_copy(md));
        if (col >= 0 && ds->widened && ds->widened[col]) {
            char from[32];
            json_t *meta = json_object_get(f, "metadata"), *tc;
            if (!json_is_object(meta))
                json_object_set_new(f, "metadata", meta = json_object());
            if (!json_is_array(tc = json_object_get(meta, "delta.typeChanges")))
                json_object_set_new(meta, "delta.typeChanges", tc = json_array());
            json_array_append_new(tc, json_pack("{s:s,s:O}", "fromType",
                                                cf_delta_type_name(ds->snap->schema->fields[col].type, from,
                                                                   sizeof from),
                                                "toType", json_object_get(f, "type")));
        }
    }
    out = json_dumps(nj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(oj);
    json_decref(nj);
    if (!out)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    free(*ss);
    *ss = out;
    return 0;
}

/* Whether the protocol lists feature `name` among `which` ("readerFeatures"
 * or "writerFeatures"). */
static bool has_feature(const cf_delta_snap *snap, const char *which, const char *name)
{
    size_t i;
    json_t *f;

    json_array_foreach(json_object_get(snap->protocol, which), i, f)
        if (json_is_string(f) && !strcmp(json_string_value(f), name))
            return true;
    return false;
}

/* Deletion vectors are on for the table: the feature, and the property
 * that lets writers add new vectors. */
static bool table_dv_on(const cf_delta_snap *snap)
{
    json_t *conf = snap->metadata ? json_object_get(snap->metadata, "configuration") : NULL;
    const char *v = json_string_value(json_object_get(conf, "delta.enableDeletionVectors"));

    return snap->version >= 0 && has_feature(snap, "readerFeatures", "deletionVectors") && v && !strcmp(v, "true");
}

static bool schema_has_ntz(const cf_schema *s)
{
    for (int i = 0; s && i < s->nfields; i++)
        if (s->fields[i].type.id == CF_T_TIMESTAMP_NTZ)
            return true;
    return false;
}

/* A new table's protocol: 1/4 (change data feed) reads everywhere;
 * deletion vectors and timestamp_ntz columns need 3/7 with their features. */
static json_t *new_protocol(const dsink *ds)
{
    json_t *rf, *wf;

    if (!ds->use_dv && !schema_has_ntz(ds->snap->schema))
        return json_pack("{s:{s:i,s:i}}", "protocol", "minReaderVersion", 1, "minWriterVersion", 4);
    rf = json_array();
    wf = json_pack("[s]", "changeDataFeed");
    if (ds->use_dv) {
        json_array_append_new(rf, json_string("deletionVectors"));
        json_array_append_new(wf, json_string("deletionVectors"));
    }
    if (schema_has_ntz(ds->snap->schema)) {
        json_array_append_new(rf, json_string("timestampNtz"));
        json_array_append_new(wf, json_string("timestampNtz"));
    }
    return json_pack("{s:{s:i,s:i,s:o,s:o}}", "protocol", "minReaderVersion", 3, "minWriterVersion", 7,
                     "readerFeatures", rf, "writerFeatures", wf);
}

/* The protocol a commit needs when it starts to use a reader/writer
 * feature the table lacks (typeWidening for a widened column,
 * deletionVectors when they are turned on, timestampNtz for a new
 * zone-less column): reader 3 / writer 7 with the
 * features the older versions implied and the table uses, plus the new
 * ones.  NULL when the table has them all. */
static json_t *upgraded_protocol(const dsink *ds)
{
    const cf_delta_snap *snap = ds->snap;
    json_t *p, *rf, *wf, *conf = snap->metadata ? json_object_get(snap->metadata, "configuration") : NULL;
    const char *need[3];
    int nneed = 0;

    if (ds->widening && !has_feature(snap, "readerFeatures", "typeWidening"))
        need[nneed++] = "typeWidening";
    if (ds->dv_upgrade && !has_feature(snap, "readerFeatures", "deletionVectors"))
        need[nneed++] = "deletionVectors";
    if (schema_has_ntz(snap->schema) && !has_feature(snap, "readerFeatures", "timestampNtz"))
        need[nneed++] = "timestampNtz";
    if (!nneed)
        return NULL;
    p = json_deep_copy(snap->protocol);
    if (!json_is_array(rf = json_object_get(p, "readerFeatures")))
        json_object_set_new(p, "readerFeatures", rf = json_array());
    if (!json_is_array(wf = json_object_get(p, "writerFeatures"))) {
        json_object_set_new(p, "writerFeatures", wf = json_array());
        /* writer 2 to 4 implied these; list the ones in use */
        if (snap->min_writer >= 2 && json_is_string(json_object_get(conf, "delta.appendOnly")))
            json_array_append_new(wf, json_string("appendOnly"));
        if (snap->min_writer >= 4 && snap->cdf_enabled)
            json_array_append_new(wf, json_string("changeDataFeed"));
    }
    for (int i = 0; i < nneed; i++) {
        json_array_append_new(rf, json_string(need[i]));
        json_array_append_new(wf, json_string(need[i]));
    }
    json_object_set_new(p, "minReaderVersion", json_integer(3));
    json_object_set_new(p, "minWriterVersion", json_integer(7));
    return json_pack("{s:o}", "protocol", p);
}

/* commitInfo first, then protocol (new table), metaData, txn per
 * topic-partition and the staged add/remove/cdc actions, into ds->commit. */
static int assemble(dsink *ds, const cf_commit *c, json_t *meta, cf_err *err)
{
    bool upsert = ds->sink->cfg.mode == CF_MODE_UPSERT;
    json_t *ci = json_object(), *params = json_object(), *metrics = json_object(), *line;
    char num[32], txnid[37], app[512];
    int64_t now = cf_now_ms();

    cf_uuid(txnid);
    json_object_set_new(ci, "timestamp", json_integer(now));
    json_object_set_new(ci, "operation", json_string(upsert ? "MERGE" : "STREAMING UPDATE"));
    if (upsert)
        json_object_set_new(params, "predicate", json_string("primary key match"));
    else
        json_object_set_new(params, "outputMode", json_string("Append"));
    json_object_set_new(ci, "operationParameters", params);
#define METRIC(k, v) do { snprintf(num, sizeof num, "%" PRId64, (int64_t)(v)); \
        json_object_set_new(metrics, k, json_string(num)); } while (0)
    METRIC("numOutputRows", ds->out_rows);
    METRIC("numOutputBytes", ds->out_bytes);
    METRIC("numAddedFiles", ds->out_files);
    METRIC("numRemovedFiles", ds->rm_files);
    METRIC("numAddedChangeFiles", ds->cdc_files);
    if (upsert) {
        METRIC("numTargetRowsInserted", ds->ins_rows);
        METRIC("numTargetRowsUpdated", ds->upd_rows);
        METRIC("numTargetRowsDeleted", ds->del_rows);
        METRIC("numSourceRows", c->rows ? c->rows->nrows : 0);
        if (ds->use_dv)
            METRIC("numDeletionVectorsAdded", ds->dv_files);
    }
#undef METRIC
    json_object_set_new(ci, "operationMetrics", metrics);
    json_object_set_new(ci, "isBlindAppend", json_boolean(!upsert && !meta));
    json_object_set_new(ci, "engineInfo", json_string("cdcflow/" CF_VERSION));
    json_object_set_new(ci, "txnId", json_string(txnid));
    line = json_pack("{s:o}", "commitInfo", ci);
    if (put_json_line(&ds->commit, line, err))
        goto fail;
    json_decref(line);
    if (ds->base_version < 0) {
        line = new_protocol(ds);
        if (put_json_line(&ds->commit, line, err))
            goto fail;
        json_decref(line);
    } else if (meta && (line = upgraded_protocol(ds))) {
        if (put_json_line(&ds->commit, line, err))
            goto fail;
        json_decref(line);
    }
    if (meta) {
        line = json_pack("{s:O}", "metaData", meta);
        if (put_json_line(&ds->commit, line, err))
            goto fail;
        json_decref(line);
    }
    for (int i = 0; c->end && i < c->end->n; i++) {
        snprintf(app, sizeof app, "%s%s-%d", ds->app, c->end->v[i].topic, c->end->v[i].partition);
        line = json_pack("{s:{s:s,s:I,s:I}}", "txn", "appId", app, "version",
                         (json_int_t)c->end->v[i].next_offset, "lastUpdated", (json_int_t)now);
        if (put_json_line(&ds->commit, line, err))
            goto fail;
        json_decref(line);
    }
    return cf_buf_append(&ds->commit, ds->actions.data, ds->actions.len, err);
fail:
    json_decref(line);
    return -1;
}

/* Bring the key index up to the snapshot: the files added since it was
 * built (by anyone: another cdcflow process, Spark, delta-rs, optimize)
 * enter it; files removed leave dead slots that lookups treat as absent. */
static int pk_catch_up(dsink *ds, cf_err *err)
{
    if (!ds->pk_ready || ds->indexed >= ds->snap->nfiles) {
        if (!ds->pk_ready)
            ds->indexed = 0;
        return 0;
    }
    if (pk_index_files(ds, ds->indexed, err)) {
        ds->pk_ready = false;
        return cf_err_wrap(err, "key index");
    }
    ds->indexed = ds->snap->nfiles;
    return 0;
}

static void staged_reset(dsink *ds, bool remove_files)
{
    pending_reset(ds, remove_files);
    cf_buf_reset(&ds->commit);
    free(ds->base_schema);
    ds->base_schema = NULL;
    cf_delta_map_free(ds->bkeys);
    ds->bkeys = NULL;
    ds->noop = ds->changed = false;
    ds->c = NULL;
}

static const char *schema_string(const cf_delta_snap *snap)
{
    return snap->metadata ? json_string_value(json_object_get(snap->metadata, "schemaString")) : NULL;
}

/* Write the files of `c` and build its log entry on the newest state. */
static int d_stage(cf_sink *s, const cf_commit *c, cf_err *err)
{
    dsink *ds = s->impl;
    cf_delta_snap *snap = ds->snap, view;
    const cf_batch *rows = c->rows && c->rows->nrows ? c->rows : NULL;
    cf_schema *table = NULL;
    json_t *meta = NULL;
    bool upsert = s->cfg.mode == CF_MODE_UPSERT, viewing = false, progress = false;
    int changed = 0, others, rc = -1;

    staged_reset(ds, false);
    /* Anything newer (another writer) first: its txn versions are the
     * fence, and its files must be in the key index. */
    if ((others = cf_delta_snap_catch_up(snap, err)) < 0)
        return -1;
    /* another writer (or tool) may have changed the protocol or settings;
     * d_offsets may have caught up already, so go by version */
    if (snap->version != ds->checked) {
        if (cf_delta_snap_writable(snap, upsert, err))
            return -1;
        ds->checked = snap->version;
    }
    if (upsert && pk_catch_up(ds, err))
        return -1;
    if (fence(ds, snap, c, err))
        return -1;
    for (int i = 0; c->end && i < c->end->n; i++) {
        char app[512];
        snprintf(app, sizeof app, "%s%s-%d", ds->app, c->end->v[i].topic, c->end->v[i].partition);
        progress |= cf_delta_snap_txn(snap, app) < c->end->v[i].next_offset;
    }
    ds->base_version = snap->version;
    ds->next = snap->version + 1;
    ds->c = c;
    if (!rows && (!progress || snap->version < 0)) {
        ds->noop = true;    /* nothing to write; a table is created by its first rows */
        return 0;
    }
    if (schema_string(snap) && !(ds->base_schema = strdup(schema_string(snap))))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (rows) {
        free(ds->widened);
        if (!(ds->widened = calloc((size_t)(snap->schema ? snap->schema->nfields : 0) + 1, sizeof *ds->widened)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        if (!(table = reconcile_schema(snap->schema, rows->schema, type_widening_on(ds),
                                       !s->cfg.delta_timestamp_utc, ds->widened, &changed, err)))
            return cf_err_wrap(err, "delta table %s", snap->root);
        ds->widening = false;
        for (int i = 0; snap->schema && i < snap->schema->nfields; i++)
            ds->widening |= ds->widened[i];
        for (int i = 0; snap->version < 0 && i < s->cfg.npartition_by; i++)
            if (cf_schema_find(table, s->cfg.partition_by[i]) < 0) {
                cf_err_set(err, CF_E_ARG, "partition column '%s' is not a column", s->cfg.partition_by[i]);
                goto out;
            }
    } else if (!(table = cf_schema_clone(snap->schema))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    /* deletion vectors: on for a table that has them on, or when asked */
    {
        cf_delta_deletes dd = s->cfg.delta_deletes;
        ds->use_dv = upsert && (dd == CF_DELTA_DELETES_DV || (dd == CF_DELTA_DELETES_AUTO && table_dv_on(snap)));
        ds->dv_upgrade = ds->use_dv && snap->version >= 0 && !table_dv_on(snap);
        if (ds->dv_upgrade && rows)
            changed = true;   /* the property goes into a new metaData, the feature into the protocol */
    }
    ds->changed = changed;
    if (changed) {
        /* The files are written against the new metadata (partition
         * columns, schema) through a view: the snapshot itself stays what
         * the table says until the commit lands. */
        if (!(meta = new_metadata(ds, table, err)) || cf_delta_snap_meta_view(snap, meta, &view, err))
            goto out;
        viewing = true;
        ds->snap = &view;
    }
    if (rows) {
        if (upsert ? stage_upsert(ds, ds->snap->schema, c, err)
                   : write_rows(ds, ds->snap->schema, rows, NULL, rows->nrows, false, NULL, 0,
                                s->cfg.target_file_bytes, err))
            goto out;
    }
    /* The files must be durable, names included, before a log entry names
     * them. */
    if (cf_store_sync(s->store, snap->root, ds->created, ds->ncreated, err))
        goto out;
    rc = assemble(ds, c, meta, err);
out:
    if (viewing) {
        ds->snap = snap;
        cf_delta_snap_view_free(&view);
    }
    json_decref(meta);
    cf_schema_free(table);
    return rc;
}

/* Somebody else committed ds->next first.  Catch up with them and decide:
 * publish again on top (CONFLICT, retriable), stage anew (STALE), or give
 * the batch up (FENCED). */
static int after_lost_race(dsink *ds, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;
    const char *ss;

    if (ds->base_version < 0)
        return cf_err_set(err, CF_E_STALE, "%s: another writer created the table first", snap->root);
    if (cf_delta_snap_catch_up(snap, err) < 0)
        return -1;
    if (cf_delta_snap_writable(snap, ds->sink->cfg.mode == CF_MODE_UPSERT, err))
        return -1;
    if (fence(ds, snap, ds->c, err))
        return -1;
    ss = schema_string(snap);
    if (!ss || !ds->base_schema || strcmp(ss, ds->base_schema))
        return cf_err_set(err, CF_E_STALE, "%s: another writer changed the schema", snap->root);
    if (ds->bkeys && ds->pk_ready && ds->indexed < snap->nfiles) {
        /* rows another writer added for a key of this batch would stay
         * beside ours: their files enter the index, and a hit stages anew */
        bool hit = false;
        if (pk_index_files_watch(ds, ds->indexed, ds->bkeys, &hit, err)) {
            ds->pk_ready = false;
            return -1;
        }
        ds->indexed = snap->nfiles;
        if (hit)
            return cf_err_set(err, CF_E_STALE, "%s: another writer wrote a key of this batch", snap->root);
    }
    /* files we remove must still be live */
    for (size_t off = 0; off < ds->actions.len;) {
        const char *ln = (const char *)ds->actions.data + off;
        const char *nl = memchr(ln, '\n', ds->actions.len - off);
        size_t llen = nl ? (size_t)(nl - ln) : ds->actions.len - off;
        if (llen > 10 && !strncmp(ln, "{\"remove\":", 10)) {
            json_t *j = json_loadb(ln, llen, 0, NULL), *rm = json_object_get(j, "remove");
            const char *p = json_string_value(json_object_get(rm, "path"));
            cf_delta_file *f = p ? cf_delta_snap_file(snap, p) : NULL;
            cf_delta_dv dv;
            /* live with the deletion vector we read it with: another
             * writer's new vector on it would be lost under ours */
            bool live = f && cf_delta_dv_parse(json_object_get(rm, "deletionVector"), &dv, NULL) == 0;
            if (live) {
                live = cf_delta_dv_same(&f->dv, &dv);
                cf_delta_dv_free(&dv);
            }
            json_decref(j);
            if (!live)
                return cf_err_set(err, CF_E_STALE, "%s: another writer removed a file this commit "
                                  "rewrites", snap->root);
        }
        off += llen + 1;
    }
    ds->next = snap->version + 1;
    cf_err_set(err, CF_E_CONFLICT, "%s: version taken by another writer, retrying as %" PRId64, snap->root,
               ds->next);
    return -1;
}

/* The commit landed as ds->next: our state follows, the key index learns
 * what moved, and every checkpoint-interval-th version gets a checkpoint. */
static int after_commit(dsink *ds, int64_t *version, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;
    int64_t v = ds->next;

    if (cf_delta_snap_catch_up(snap, err) < 0 || snap->version < v) {
        /* The commit has landed: it stands.  Our view follows at the next
         * stage's catch-up; the index is rebuilt then. */
        cf_log(CF_LOG_WARN, "delta", "%s: version %" PRId64 " committed but not read back yet: %s", snap->root,
               v, snap->version < v ? "not visible" : err ? err->msg : "error");
        ds->pk_ready = false;
        if (version)
            *version = v;
        return 0;
    }
    /* An index that cannot follow is rebuilt at the next commit rather than
     * failing this one, which has landed.  Files of commits we let go first
     * are indexed with ours (from ds->indexed). */
    if (ds->sink->cfg.mode == CF_MODE_UPSERT && ds->pk_ready) {
        cf_err ie;
        if ((v != ds->base_version + 1 && pk_catch_up(ds, &ie)) || pk_after_commit(ds, &ie)) {
            cf_log(CF_LOG_WARN, "delta", "%s: key index will be rebuilt: %s", snap->root, ie.msg);
            ds->pk_ready = false;
        }
        ds->indexed = snap->nfiles;
    }
    if (version)
        *version = v;
    if (v > 0 && snap->checkpoint_interval > 0 && v % snap->checkpoint_interval == 0) {
        cf_err ce;
        if (cf_delta_checkpoint_write(snap, &ce))
            cf_log(CF_LOG_WARN, "delta", "%s: checkpoint %" PRId64 " not written: %s", snap->root, v, ce.msg);
    }
    return 0;
}

static int d_publish(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err)
{
    dsink *ds = s->impl;
    int64_t ts = -1;
    cf_err e;
    int rc;

    if (ds->noop) {
        if (version)
            *version = ds->snap->version;
        staged_reset(ds, false);
        return 0;
    }
    {
        /* the commitInfo timestamp is the file's modification time */
        json_t *first = json_loadb((const char *)ds->commit.data, ds->commit.len, JSON_DISABLE_EOF_CHECK, NULL);
        ts = json_integer_value(json_object_get(json_object_get(first, "commitInfo"), "timestamp"));
        json_decref(first);
    }
    if (cf_delta_log_put_at(s->store, ds->snap->root, ds->next, ds->commit.data, ds->commit.len, ts, &e)) {
        if (e.code != CF_E_CONFLICT)
            rc = -1;
        else
            rc = after_lost_race(ds, &e);
        if (err)
            *err = e;
        return rc;
    }
    rc = after_commit(ds, version, err);
    staged_reset(ds, false);
    return rc;
}

static void d_abort(cf_sink *s)
{
    staged_reset(s->impl, true);
}

static void d_close(cf_sink *s)
{
    dsink *ds = s->impl;
    if (!ds)
        return;
    pending_reset(ds, false);
    cf_delta_snap_free(ds->snap);
    cf_delta_map_free(ds->pk);
    cf_schema_free(ds->kschema);
    free(ds->alias);
    cf_buf_free(&ds->key);
    cf_buf_free(&ds->newkeys);
    cf_buf_free(&ds->gonekeys);
    cf_buf_free(&ds->actions);
    cf_buf_free(&ds->commit);
    free(ds->base_schema);
    free(ds->widened);
    cf_delta_map_free(ds->bkeys);
    free(ds->w);
    free(ds->created);
    free(ds);
    s->impl = NULL;
}

/* ---- optimize ------------------------------------------------------------ */

typedef struct small_file { size_t slot; char *dir; } small_file;

static int cmp_small(const void *a, const void *b)
{
    const small_file *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : (x->slot > y->slot) - (x->slot < y->slot);
}

static char *pv_key(const cf_delta_pv *pv)
{
    json_t *j = pv_json(pv);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
}

/* Rewrite the files sf[0..n) (one partition) into as few files as the
 * target size allows. */
static int compact_group(dsink *ds, const small_file *sf, size_t n, int64_t target, cf_err *err)
{
    cf_delta_snap *snap = ds->snap;
    cf_batch *b = cf_batch_new(snap->schema, err);
    int64_t bytes = 0;
    int rc = -1;

    if (!b)
        return -1;
    for (size_t i = 0; i < n; i++) {
        cf_delta_file *f = &snap->files[sf[i].slot];
        if (cf_delta_read_file(snap->st, snap->root, f->path, &f->pv, &f->dv, snap->schema, b, err))
            goto out;
        bytes += f->size;
        if (put_remove(ds, f, false, err))
            goto out;
        if (bytes >= target || i + 1 == n) {
            if (write_rows(ds, snap->schema, b, NULL, b->nrows, false, NULL, 0, 0, err))
                goto out;
            cf_batch_reset(b);
            bytes = 0;
        }
    }
    rc = 0;
out:
    cf_batch_free(b);
    return rc;
}

int cf_delta_optimize(const char *root, int64_t target, int min_files, int64_t *version,
                      int64_t *removed, int64_t *added, cf_err *err)
{
    cf_sink sink = { .ops = &cf_delta_sink_ops };
    small_file *sf = NULL;
    size_t nsf = 0;
    int rc = -1;
    cf_buf commit;

    *version = -1;
    sink.cfg.kind = "delta";
    sink.cfg.location = root;
    sink.cfg.codec = CF_CODEC_ZSTD;
    if (!(sink.store = cf_store_open(root, NULL, err)))
        return -1;
    if (d_open(&sink, err)) {
        cf_store_close(sink.store);
        return -1;
    }
    dsink *ds = sink.impl;
    cf_delta_snap *snap = ds->snap;
    ds->rewrite_only = true;
    cf_buf_init(&commit, 0);
    if (snap->version < 0) {
        cf_err_set(err, CF_E_ARG, "%s is not a Delta table", root);
        goto out;
    }
    /* optimize removes files but no rows: allowed on append-only tables */
    if (cf_delta_snap_writable(snap, false, err))
        goto out;
    if (!(sf = calloc(snap->nlive + 1, sizeof *sf)))
        goto oom;
    /* Small files merge; a file with a deletion vector is rewritten
     * without its deleted rows whatever its size (like Spark's REORG TABLE
     * ... APPLY (PURGE)), so readers stop paying for the vector. */
    for (size_t i = 0; i < snap->nfiles; i++) {
        if (!snap->files[i].live || (snap->files[i].size >= target / 2 && !snap->files[i].dv.type))
            continue;
        if (!(sf[nsf].dir = pv_key(&snap->files[i].pv)))
            goto oom;
        sf[nsf++].slot = i;
    }
    qsort(sf, nsf, sizeof *sf, cmp_small);
    for (size_t i = 0; i < nsf;) {
        size_t j = i;
        bool purge = false;
        while (j < nsf && !strcmp(sf[j].dir, sf[i].dir))
            purge |= snap->files[sf[j++].slot].dv.type != 0;
        if (((int)(j - i) >= min_files || purge) && compact_group(ds, sf + i, j - i, target, err))
            goto out_drop;
        i = j;
    }
    if (!ds->rm_files) {
        rc = 0;
        goto out;
    }
    int64_t commit_ts = cf_now_ms();
    json_t *ci = json_pack("{s:I,s:s,s:{s:s,s:s},s:{s:s%,s:s%,s:s%},s:b,s:s}",
                           "timestamp", (json_int_t)commit_ts, "operation", "OPTIMIZE",
                           "operationParameters", "predicate", "[]", "zOrderBy", "[]",
                           "operationMetrics", "numRemovedFiles", "", (size_t)0, "numAddedFiles", "", (size_t)0,
                           "numOutputRows", "", (size_t)0,
                           "isBlindAppend", 0, "engineInfo", "cdcflow/" CF_VERSION);
    if (!ci)
        goto oom_drop;
    char num[32];
    json_t *m = json_object_get(ci, "operationMetrics");
    snprintf(num, sizeof num, "%" PRId64, ds->rm_files);
    json_object_set_new(m, "numRemovedFiles", json_string(num));
    snprintf(num, sizeof num, "%" PRId64, ds->out_files);
    json_object_set_new(m, "numAddedFiles", json_string(num));
    snprintf(num, sizeof num, "%" PRId64, ds->out_rows);
    json_object_set_new(m, "numOutputRows", json_string(num));
    json_t *line = json_pack("{s:o}", "commitInfo", ci);
    if (put_json_line(&commit, line, err) ||
        cf_buf_append(&commit, ds->actions.data, ds->actions.len, err)) {
        json_decref(line);
        goto out_drop;
    }
    json_decref(line);
    if (cf_delta_log_put_at(sink.store, snap->root, snap->version + 1, commit.data, commit.len, commit_ts, err))
        goto out_drop;
    *version = snap->version + 1;
    if (removed)
        *removed = ds->rm_files;
    if (added)
        *added = ds->out_files;
    pending_reset(ds, false);
    rc = 0;
    goto out;
oom_drop:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
out_drop:
    pending_reset(ds, true);
    goto out;
oom:
    cf_err_set(err, CF_E_NOMEM, "out of memory");
out:
    for (size_t i = 0; i < nsf; i++)
        free(sf[i].dir);
    free(sf);
    cf_buf_free(&commit);
    d_close(&sink);
    cf_store_close(sink.store);
    return rc;
}

const cf_sink_ops cf_delta_sink_ops = {
    "delta", d_open, d_offsets, d_stage, d_publish, d_abort, d_close,
};
