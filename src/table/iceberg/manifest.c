/* manifest.c - Iceberg v2 manifests and manifest lists as Avro files with
 * the spec's schemas and field ids; readers for ours and other writers'. */
#include "table/iceberg/iceberg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/avro/avro.h"

/* Avro schemas from the spec's "Manifests" and "Manifest Lists" sections.
 * Iceberg maps with int keys are arrays of key/value records (logicalType
 * "map") because Avro maps only have string keys. */
#define KV_MAP(name, id, kid, vid, vtype)                                                  \
    "{\"name\":\"" name "\",\"type\":[\"null\",{\"type\":\"array\",\"logicalType\":\"map\","  \
    "\"items\":{\"type\":\"record\",\"name\":\"k" #kid "_v" #vid "\",\"fields\":["          \
    "{\"name\":\"key\",\"type\":\"int\",\"field-id\":" #kid "},"                              \
    "{\"name\":\"value\",\"type\":\"" vtype "\",\"field-id\":" #vid "}]}}],"                  \
    "\"default\":null,\"field-id\":" #id "}"

static const char ENTRY_HEAD[] =
    "{\"type\":\"record\",\"name\":\"manifest_entry\",\"fields\":["
    "{\"name\":\"status\",\"type\":\"int\",\"field-id\":0},"
    "{\"name\":\"snapshot_id\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":1},"
    "{\"name\":\"sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":3},"
    "{\"name\":\"file_sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":4},"
    "{\"name\":\"data_file\",\"type\":{\"type\":\"record\",\"name\":\"r2\",\"fields\":["
    "{\"name\":\"content\",\"type\":\"int\",\"field-id\":134},"
    "{\"name\":\"file_path\",\"type\":\"string\",\"field-id\":100},"
    "{\"name\":\"file_format\",\"type\":\"string\",\"field-id\":101},"
    "{\"name\":\"partition\",\"type\":{\"type\":\"record\",\"name\":\"r102\",\"fields\":[";

static const char ENTRY_TAIL[] =
    "]},\"field-id\":102},"
    "{\"name\":\"record_count\",\"type\":\"long\",\"field-id\":103},"
    "{\"name\":\"file_size_in_bytes\",\"type\":\"long\",\"field-id\":104},"
    KV_MAP("column_sizes", 108, 117, 118, "long") ","
    KV_MAP("value_counts", 109, 119, 120, "long") ","
    KV_MAP("null_value_counts", 110, 121, 122, "long") ","
    KV_MAP("nan_value_counts", 137, 138, 139, "long") ","
    KV_MAP("lower_bounds", 125, 126, 127, "bytes") ","
    KV_MAP("upper_bounds", 128, 129, 130, "bytes") ","
    "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":131},"
    "{\"name\":\"split_offsets\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"long\",\"element-id\":133}],"
    "\"default\":null,\"field-id\":132},"
    "{\"name\":\"equality_ids\",\"type\":[\"null\",{\"type\":\"array\",\"items\":\"int\",\"element-id\":136}],"
    "\"default\":null,\"field-id\":135},"
    "{\"name\":\"sort_order_id\",\"type\":[\"null\",\"int\"],\"default\":null,\"field-id\":140}"
    "]},\"field-id\":2}]}";

static const char MLIST_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_file\",\"fields\":["
    "{\"name\":\"manifest_path\",\"type\":\"string\",\"field-id\":500},"
    "{\"name\":\"manifest_length\",\"type\":\"long\",\"field-id\":501},"
    "{\"name\":\"partition_spec_id\",\"type\":\"int\",\"field-id\":502},"
    "{\"name\":\"content\",\"type\":\"int\",\"field-id\":517},"
    "{\"name\":\"sequence_number\",\"type\":\"long\",\"field-id\":515},"
    "{\"name\":\"min_sequence_number\",\"type\":\"long\",\"field-id\":516},"
    "{\"name\":\"added_snapshot_id\",\"type\":\"long\",\"field-id\":503},"
    "{\"name\":\"added_files_count\",\"type\":\"int\",\"field-id\":504},"
    "{\"name\":\"existing_files_count\",\"type\":\"int\",\"field-id\":505},"
    "{\"name\":\"deleted_files_count\",\"type\":\"int\",\"field-id\":506},"
    "{\"name\":\"added_rows_count\",\"type\":\"long\",\"field-id\":512},"
    "{\"name\":\"existing_rows_count\",\"type\":\"long\",\"field-id\":513},"
    "{\"name\":\"deleted_rows_count\",\"type\":\"long\",\"field-id\":514},"
    "{\"name\":\"partitions\",\"type\":[\"null\",{\"type\":\"array\",\"items\":{\"type\":\"record\","
    "\"name\":\"r508\",\"fields\":["
    "{\"name\":\"contains_null\",\"type\":\"boolean\",\"field-id\":509},"
    "{\"name\":\"contains_nan\",\"type\":[\"null\",\"boolean\"],\"default\":null,\"field-id\":518},"
    "{\"name\":\"lower_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":510},"
    "{\"name\":\"upper_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":511}]},"
    "\"element-id\":508}],\"default\":null,\"field-id\":507},"
    "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":519}]}";

void cf_ice_file_clear(cf_ice_file *f)
{
    if (!f)
        return;
    free(f->path);
    cf_ice_pvals_clear(f->part, f->npart);
    for (int i = 0; i < f->nmetrics; i++) {
        free(f->metrics[i].lower);
        free(f->metrics[i].upper);
    }
    free(f->metrics);
    memset(f, 0, sizeof *f);
}

void cf_ice_files_free(cf_ice_file *files, int n)
{
    for (int i = 0; i < n; i++)
        cf_ice_file_clear(&files[i]);
    free(files);
}

void cf_ice_mlist_free(cf_ice_mlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

int cf_ice_mlist_add(cf_ice_mlist *l, const cf_ice_mfile *m, cf_err *err)
{
    if (l->n == l->alloc) {
        int na = l->alloc ? l->alloc * 2 : 16;
        cf_ice_mfile *nv = realloc(l->v, sizeof *nv * (size_t)na);
        if (!nv)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        l->v = nv;
        l->alloc = na;
    }
    l->v[l->n] = *m;
    if (!(l->v[l->n].path = strdup(m->path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    l->n++;
    return 0;
}

/* Avro type of a partition field; named types get the field id in their
 * name since Avro names must be unique within a schema. */
static const char *avro_ptype(cf_type t, int field_id, char *buf, size_t n)
{
    switch (t.id) {
    case CF_T_BOOL: return "\"boolean\"";
    case CF_T_INT32: return "\"int\"";
    case CF_T_DATE: return "{\"type\":\"int\",\"logicalType\":\"date\"}";
    case CF_T_INT64: return "\"long\"";
    case CF_T_BINARY: return "\"bytes\"";
    case CF_T_UUID:
        snprintf(buf, n, "{\"type\":\"fixed\",\"name\":\"uuid_%d\",\"size\":16,\"logicalType\":\"uuid\"}",
                 field_id);
        return buf;
    default: return "\"string\"";
    }
}

/* ---- manifests -------------------------------------------------------- */

static int put_opt_long(cf_buf *b, int64_t v, cf_err *err)
{
    if (v < 0)
        return cf_avro_put_branch(b, 0, err);
    if (cf_avro_put_branch(b, 1, err))
        return -1;
    return cf_avro_put_long(b, v, err);
}

/* Whether metric m has a value for map `which`. */
static bool metric_has(const cf_ice_metric *m, int which)
{
    switch (which) {
    case 0: case 1: return true;
    case 2: return m->lower != NULL;
    case 3: return m->upper != NULL;
    case 4: return m->sizes >= 0;
    default: return m->nans >= 0;
    }
}

/* which: 0 value counts, 1 null counts, 2 lower bounds, 3 upper bounds,
 * 4 column sizes, 5 NaN counts */
static int put_metric_map(cf_buf *b, const cf_ice_file *f, int which, cf_err *err)
{
    int n = 0;
    for (int i = 0; i < f->nmetrics; i++)
        if (metric_has(&f->metrics[i], which))
            n++;
    if (n == 0)
        return cf_avro_put_branch(b, 0, err);
    if (cf_avro_put_branch(b, 1, err) || cf_avro_put_long(b, n, err))
        return -1;
    for (int i = 0; i < f->nmetrics; i++) {
        const cf_ice_metric *m = &f->metrics[i];
        int rc = 0;
        if (!metric_has(m, which))
            continue;
        if (cf_avro_put_long(b, m->id, err))
            return -1;
        switch (which) {
        case 0: rc = cf_avro_put_long(b, m->values, err); break;
        case 1: rc = cf_avro_put_long(b, m->nulls, err); break;
        case 2: rc = cf_avro_put_bytes(b, m->lower, m->lower_n, err); break;
        case 3: rc = cf_avro_put_bytes(b, m->upper, m->upper_n, err); break;
        case 4: rc = cf_avro_put_long(b, m->sizes, err); break;
        default: rc = cf_avro_put_long(b, m->nans, err); break;
        }
        if (rc)
            return -1;
    }
    return cf_avro_put_long(b, 0, err);
}

static int encode_entry(cf_buf *b, const cf_ice_file *f, const cf_ice_spec *sp, cf_err *err)
{
    if (cf_avro_put_long(b, f->status, err) || put_opt_long(b, f->snapshot_id, err) ||
        put_opt_long(b, f->seq, err) || put_opt_long(b, f->file_seq, err) ||
        cf_avro_put_long(b, f->content, err) || cf_avro_put_str(b, f->path, err) ||
        cf_avro_put_str(b, "PARQUET", err))
        return -1;
    for (int k = 0; k < sp->nfields; k++) {
        const cf_ice_pval *v = k < f->npart ? &f->part[k] : NULL;
        int rc;
        if (!v || v->null) {
            if (cf_avro_put_branch(b, 0, err))
                return -1;
            continue;
        }
        if (cf_avro_put_branch(b, 1, err))
            return -1;
        switch (sp->f[k].result.id) {
        case CF_T_BOOL: rc = cf_avro_put_bool(b, v->i != 0, err); break;
        case CF_T_INT32:
        case CF_T_DATE:
        case CF_T_INT64: rc = cf_avro_put_long(b, v->i, err); break;
        case CF_T_UUID:
            if (!v->s || v->n != 16)
                return cf_err_set(err, CF_E_ARG, "uuid partition value is not 16 bytes");
            rc = cf_buf_append(b, v->s, 16, err);       /* fixed: no length */
            break;
        default: rc = cf_avro_put_bytes(b, v->s ? v->s : "", v->s ? v->n : 0, err); break;
        }
        if (rc)
            return -1;
    }
    if (cf_avro_put_long(b, f->records, err) || cf_avro_put_long(b, f->bytes, err) ||
        put_metric_map(b, f, 4, err) ||                  /* column_sizes */
        put_metric_map(b, f, 0, err) || put_metric_map(b, f, 1, err) ||
        put_metric_map(b, f, 5, err) ||                  /* nan_value_counts */
        put_metric_map(b, f, 2, err) || put_metric_map(b, f, 3, err) ||
        cf_avro_put_branch(b, 0, err) ||                 /* key_metadata */
        cf_avro_put_branch(b, 0, err) ||                 /* split_offsets */
        cf_avro_put_branch(b, 0, err) ||                 /* equality_ids */
        cf_avro_put_branch(b, 0, err))                   /* sort_order_id */
        return -1;
    return 0;
}

/* Order of two single-value serialized partition values of type t:
 * little-endian integers by value, everything else by bytes. */
static int pval_cmp(const cf_type *t, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    if (t->id == CF_T_INT32 || t->id == CF_T_DATE || t->id == CF_T_INT64 || t->id == CF_T_BOOL) {
        int64_t x = 0, y = 0;
        for (size_t i = 0; i < an; i++)
            x |= (int64_t)((uint64_t)a[i] << (8 * i));
        for (size_t i = 0; i < bn; i++)
            y |= (int64_t)((uint64_t)b[i] << (8 * i));
        if (an == 4) x = (int32_t)x;
        if (bn == 4) y = (int32_t)y;
        return x < y ? -1 : x > y;
    }
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* Widen the partition summaries of a manifest by file f's values. */
static void summarize(const cf_ice_spec *sp, const cf_ice_file *f, cf_ice_psum *ps)
{
    for (int k = 0; k < sp->nfields; k++) {
        const cf_ice_pval *v = k < f->npart ? &f->part[k] : NULL;
        uint8_t buf[64];
        int n;
        if (!v || v->null) {
            ps[k].contains_null = true;
            continue;
        }
        n = cf_ice_single_value(&sp->f[k].result, v->i, v->d, v->s, v->n, buf, sizeof buf);
        if (n < 0) {
            /* Too long to keep: no bounds is always correct. */
            ps[k].has_bounds = false;
            ps[k].lo_n = 0xff;
            continue;
        }
        if (ps[k].lo_n == 0xff)
            continue;
        if (!ps[k].has_bounds) {
            memcpy(ps[k].lo, buf, (size_t)n);
            memcpy(ps[k].hi, buf, (size_t)n);
            ps[k].lo_n = ps[k].hi_n = (uint8_t)n;
            ps[k].has_bounds = true;
            continue;
        }
        if (pval_cmp(&sp->f[k].result, buf, (size_t)n, ps[k].lo, ps[k].lo_n) < 0) {
            memcpy(ps[k].lo, buf, (size_t)n);
            ps[k].lo_n = (uint8_t)n;
        }
        if (pval_cmp(&sp->f[k].result, buf, (size_t)n, ps[k].hi, ps[k].hi_n) > 0) {
            memcpy(ps[k].hi, buf, (size_t)n);
            ps[k].hi_n = (uint8_t)n;
        }
    }
}

int cf_ice_write_manifest(cf_store *st, const char *path, const cf_ice_file *files, int nfiles,
                          const cf_ice_spec *sp, json_t *schema_json, int schema_id,
                          int64_t snapshot_id, int64_t seq, cf_ice_mfile *mf, cf_err *err)
{
    cf_buf schema, row, out;
    cf_avro_writer *w = NULL;
    char *sj = NULL, *spj = NULL, sid[16], spid[16];
    json_t *spec_fields = cf_ice_spec_to_json(sp);
    int content = nfiles ? files[0].content : 0, rc = -1;
    const char *keys[] = { "schema", "schema-id", "partition-spec", "partition-spec-id",
                           "format-version", "content" };
    const char *vals[6];

    cf_buf_init(&schema, 0);
    cf_buf_init(&row, 0);
    cf_buf_init(&out, 0);
    memset(mf, 0, sizeof *mf);
    if (cf_buf_append(&schema, ENTRY_HEAD, sizeof ENTRY_HEAD - 1, err))
        goto out;
    for (int k = 0; k < sp->nfields; k++) {
        char tbuf[128];
        if (cf_buf_printf(&schema, err, "%s{\"name\":\"%s\",\"type\":[\"null\",%s],\"default\":null,"
                          "\"field-id\":%d}", k ? "," : "", sp->f[k].name,
                          avro_ptype(sp->f[k].result, sp->f[k].field_id, tbuf, sizeof tbuf), sp->f[k].field_id))
            goto out;
    }
    if (cf_buf_append(&schema, ENTRY_TAIL, sizeof ENTRY_TAIL - 1, err) || !cf_buf_cstr(&schema, err))
        goto out;
    sj = json_dumps(schema_json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    spj = json_dumps(spec_fields, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!sj || !spj) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    snprintf(sid, sizeof sid, "%d", schema_id);
    snprintf(spid, sizeof spid, "%d", sp->spec_id);
    vals[0] = sj;
    vals[1] = sid;
    vals[2] = spj;
    vals[3] = spid;
    vals[4] = "2";
    vals[5] = content ? "deletes" : "data";
    if (!(w = cf_avro_writer_new((const char *)schema.data, keys, vals, 6, CF_AVRO_DEFLATE, err)))
        goto out;
    mf->min_seq = seq;
    mf->npsum = sp->nfields;
    for (int i = 0; i < nfiles; i++) {
        const cf_ice_file *f = &files[i];
        int64_t fseq = f->seq >= 0 ? f->seq : seq;
        if (f->status != 2)
            summarize(sp, f, mf->psum);
        cf_buf_reset(&row);
        if (encode_entry(&row, f, sp, err) || cf_avro_writer_append(w, row.data, row.len, err))
            goto out;
        if (f->status != 2 && fseq < mf->min_seq)
            mf->min_seq = fseq;
        if (f->status == 1) {
            mf->added_files++;
            mf->added_rows += f->records;
        } else if (f->status == 0) {
            mf->existing_files++;
            mf->existing_rows += f->records;
        } else {
            mf->deleted_files++;
            mf->deleted_rows += f->records;
        }
    }
    if (cf_avro_writer_finish(w, &out, err) || cf_avro_write_file(st, path, out.data, out.len, err))
        goto out;
    mf->path = (char *)path;          /* borrowed; cf_ice_mlist_add copies it */
    mf->length = (int64_t)out.len;
    mf->spec_id = sp->spec_id;
    mf->content = content;
    mf->seq = seq;
    mf->added_snapshot_id = snapshot_id;
    rc = 0;
out:
    cf_avro_writer_free(w);
    json_decref(spec_fields);
    free(sj);
    free(spj);
    cf_buf_free(&schema);
    cf_buf_free(&row);
    cf_buf_free(&out);
    return rc;
}

static int read_metric_maps(const cf_avro_value *df, cf_ice_file *f, cf_err *err)
{
    static const char *const names[] = { "value_counts", "null_value_counts", "lower_bounds",
                                         "upper_bounds", "column_sizes", "nan_value_counts" };
    for (int which = 0; which < 6; which++) {
        const cf_avro_value *m = cf_avro_get(df, names[which]);
        if (!m || m->kind != CF_AV_ARRAY)
            continue;
        for (size_t i = 0; i < m->n; i++) {
            int id = (int)cf_avro_get_long(&m->items[i], "key", -1);
            const cf_avro_value *v = cf_avro_get(&m->items[i], "value");
            cf_ice_metric *mt = NULL;
            if (!v)
                continue;
            for (int k = 0; k < f->nmetrics; k++)
                if (f->metrics[k].id == id)
                    mt = &f->metrics[k];
            if (!mt) {
                cf_ice_metric *nm = realloc(f->metrics, sizeof *nm * (size_t)(f->nmetrics + 1));
                if (!nm)
                    return cf_err_set(err, CF_E_NOMEM, "out of memory");
                f->metrics = nm;
                mt = &f->metrics[f->nmetrics++];
                memset(mt, 0, sizeof *mt);
                mt->id = id;
                mt->sizes = mt->nans = -1;
            }
            if (which == 0)
                mt->values = v->i;
            else if (which == 1)
                mt->nulls = v->i;
            else if (which == 4)
                mt->sizes = v->kind == CF_AV_LONG ? v->i : -1;
            else if (which == 5)
                mt->nans = v->kind == CF_AV_LONG ? v->i : -1;
            else if (v->kind == CF_AV_BYTES) {
                uint8_t *p = malloc(v->n ? v->n : 1);
                if (!p)
                    return cf_err_set(err, CF_E_NOMEM, "out of memory");
                memcpy(p, v->p, v->n);
                if (which == 2) {
                    free(mt->lower);
                    mt->lower = p;
                    mt->lower_n = v->n;
                } else {
                    free(mt->upper);
                    mt->upper = p;
                    mt->upper_n = v->n;
                }
            }
        }
    }
    return 0;
}

int cf_ice_read_manifest(cf_store *st, const cf_ice_mfile *mf, cf_ice_file **files, int *nfiles,
                         cf_err *err)
{
    cf_avro_reader *r = cf_avro_reader_open_file(st, mf->path, err);
    const cf_avro_value *e;
    int rc;

    if (!r)
        return -1;
    while ((rc = cf_avro_reader_next(r, &e, err)) == 1) {
        const cf_avro_value *df = cf_avro_get(e, "data_file"), *part, *pth, *v;
        cf_ice_file *nf, *f;
        if (!df || df->kind != CF_AV_RECORD || !(pth = cf_avro_get(df, "file_path")) ||
            pth->kind != CF_AV_STRING) {
            cf_err_set(err, CF_E_CORRUPT, "%s: manifest entry without data_file.file_path", mf->path);
            rc = -1;
            break;
        }
        if (!(nf = realloc(*files, sizeof *nf * (size_t)(*nfiles + 1)))) {
            rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
            break;
        }
        *files = nf;
        f = &nf[(*nfiles)++];
        memset(f, 0, sizeof *f);
        f->status = (int)cf_avro_get_long(e, "status", 1);
        f->snapshot_id = cf_avro_get_long(e, "snapshot_id", mf->added_snapshot_id);
        /* Null sequence numbers are inherited from the manifest list entry,
         * which the spec allows only for entries added by that snapshot. */
        v = cf_avro_get(e, "sequence_number");
        f->seq = v && v->kind == CF_AV_LONG ? v->i : mf->seq;
        v = cf_avro_get(e, "file_sequence_number");
        f->file_seq = v && v->kind == CF_AV_LONG ? v->i : mf->seq;
        f->content = (int)cf_avro_get_long(df, "content", 0);
        f->records = cf_avro_get_long(df, "record_count", 0);
        f->bytes = cf_avro_get_long(df, "file_size_in_bytes", 0);
        f->spec_id = mf->spec_id;
        if (!(f->path = malloc(pth->n + 1))) {
            rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
            break;
        }
        memcpy(f->path, pth->p, pth->n);
        f->path[pth->n] = 0;
        part = cf_avro_get(df, "partition");
        if (part && part->kind == CF_AV_RECORD) {
            for (size_t k = 0; k < part->n && k < 16; k++) {
                const cf_avro_value *pv = &part->items[k];
                cf_ice_pval *o = &f->part[f->npart++];
                if (pv->kind == CF_AV_NULL)
                    o->null = true;
                else if (pv->kind == CF_AV_STRING || pv->kind == CF_AV_BYTES || pv->kind == CF_AV_FIXED) {
                    if (!(o->s = malloc(pv->n + 1))) {
                        rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
                        goto done;
                    }
                    memcpy(o->s, pv->p, pv->n);
                    o->s[pv->n] = 0;
                    o->n = pv->n;
                } else {
                    o->i = pv->i;
                    o->d = pv->d;
                }
            }
        }
        if (read_metric_maps(df, f, err)) {
            rc = -1;
            break;
        }
    }
done:
    cf_avro_reader_free(r);
    if (rc < 0) {
        cf_err_wrap(err, "manifest %s", mf->path);
        return -1;
    }
    return 0;
}

/* ---- manifest lists --------------------------------------------------- */

static int put_psums(cf_buf *b, const cf_ice_mfile *m, cf_err *err)
{
    if (m->npsum == 0)
        return cf_avro_put_branch(b, 0, err);
    if (cf_avro_put_branch(b, 1, err) || cf_avro_put_long(b, m->npsum, err))
        return -1;
    for (int k = 0; k < m->npsum; k++) {
        const cf_ice_psum *p = &m->psum[k];
        bool bounds = p->has_bounds && p->lo_n != 0xff;
        if (cf_avro_put_bool(b, p->contains_null, err) ||
            cf_avro_put_branch(b, 0, err))                     /* contains_nan: unknown */
            return -1;
        if (!bounds) {
            if (cf_avro_put_branch(b, 0, err) || cf_avro_put_branch(b, 0, err))
                return -1;
            continue;
        }
        if (cf_avro_put_branch(b, 1, err) || cf_avro_put_bytes(b, p->lo, p->lo_n, err) ||
            cf_avro_put_branch(b, 1, err) || cf_avro_put_bytes(b, p->hi, p->hi_n, err))
            return -1;
    }
    return cf_avro_put_long(b, 0, err);
}

int cf_ice_write_mlist(cf_store *st, const char *path, const cf_ice_mlist *l, int64_t snapshot_id,
                       int64_t parent_id, int64_t seq, cf_err *err)
{
    char sid[24], pid[24], sq[24];
    const char *keys[] = { "snapshot-id", "parent-snapshot-id", "sequence-number", "format-version" };
    const char *vals[] = { sid, pid, sq, "2" };
    cf_avro_writer *w;
    cf_buf row, out;
    int rc = -1;

    snprintf(sid, sizeof sid, "%lld", (long long)snapshot_id);
    snprintf(pid, sizeof pid, "%lld", (long long)parent_id);
    snprintf(sq, sizeof sq, "%lld", (long long)seq);
    if (!(w = cf_avro_writer_new(MLIST_SCHEMA, keys, vals, parent_id >= 0 ? 4 : 0, CF_AVRO_DEFLATE, err)))
        return -1;
    if (parent_id < 0) {
        /* No parent: leave the key out rather than write "null". */
        cf_avro_writer_free(w);
        const char *k2[] = { "snapshot-id", "sequence-number", "format-version" };
        const char *v2[] = { sid, sq, "2" };
        if (!(w = cf_avro_writer_new(MLIST_SCHEMA, k2, v2, 3, CF_AVRO_DEFLATE, err)))
            return -1;
    }
    cf_buf_init(&row, 0);
    cf_buf_init(&out, 0);
    for (int i = 0; i < l->n; i++) {
        const cf_ice_mfile *m = &l->v[i];
        cf_buf_reset(&row);
        if (cf_avro_put_str(&row, m->path, err) || cf_avro_put_long(&row, m->length, err) ||
            cf_avro_put_long(&row, m->spec_id, err) || cf_avro_put_long(&row, m->content, err) ||
            cf_avro_put_long(&row, m->seq, err) || cf_avro_put_long(&row, m->min_seq, err) ||
            cf_avro_put_long(&row, m->added_snapshot_id, err) ||
            cf_avro_put_long(&row, m->added_files, err) || cf_avro_put_long(&row, m->existing_files, err) ||
            cf_avro_put_long(&row, m->deleted_files, err) || cf_avro_put_long(&row, m->added_rows, err) ||
            cf_avro_put_long(&row, m->existing_rows, err) || cf_avro_put_long(&row, m->deleted_rows, err) ||
            put_psums(&row, m, err) || cf_avro_put_branch(&row, 0, err) ||
            cf_avro_writer_append(w, row.data, row.len, err))
            goto out;
    }
    if (cf_avro_writer_finish(w, &out, err) || cf_avro_write_file(st, path, out.data, out.len, err))
        goto out;
    rc = 0;
out:
    cf_avro_writer_free(w);
    cf_buf_free(&row);
    cf_buf_free(&out);
    return rc;
}

static int64_t get_either(const cf_avro_value *v, const char *a, const char *b)
{
    int64_t x = cf_avro_get_long(v, a, INT64_MIN);
    return x != INT64_MIN ? x : cf_avro_get_long(v, b, 0);
}

int cf_ice_read_mlist(cf_store *st, const char *path, cf_ice_mlist *out, cf_err *err)
{
    cf_avro_reader *r = cf_avro_reader_open_file(st, path, err);
    const cf_avro_value *e;
    int rc;

    memset(out, 0, sizeof *out);
    if (!r)
        return -1;
    while ((rc = cf_avro_reader_next(r, &e, err)) == 1) {
        cf_ice_mfile m;
        const cf_avro_value *p = cf_avro_get(e, "manifest_path");
        char *ps;
        if (!p || p->kind != CF_AV_STRING) {
            rc = cf_err_set(err, CF_E_CORRUPT, "%s: manifest list entry without manifest_path", path);
            break;
        }
        memset(&m, 0, sizeof m);
        if (!(ps = malloc(p->n + 1))) {
            rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
            break;
        }
        memcpy(ps, p->p, p->n);
        ps[p->n] = 0;
        m.path = ps;
        m.length = cf_avro_get_long(e, "manifest_length", 0);
        m.spec_id = (int)cf_avro_get_long(e, "partition_spec_id", 0);
        m.content = (int)cf_avro_get_long(e, "content", 0);
        m.seq = cf_avro_get_long(e, "sequence_number", 0);
        m.min_seq = cf_avro_get_long(e, "min_sequence_number", m.seq);
        m.added_snapshot_id = cf_avro_get_long(e, "added_snapshot_id", -1);
        m.added_files = (int32_t)get_either(e, "added_files_count", "added_data_files_count");
        m.existing_files = (int32_t)get_either(e, "existing_files_count", "existing_data_files_count");
        m.deleted_files = (int32_t)get_either(e, "deleted_files_count", "deleted_data_files_count");
        m.added_rows = cf_avro_get_long(e, "added_rows_count", 0);
        m.existing_rows = cf_avro_get_long(e, "existing_rows_count", 0);
        m.deleted_rows = cf_avro_get_long(e, "deleted_rows_count", 0);
        {
            const cf_avro_value *parts = cf_avro_get(e, "partitions");
            if (parts && parts->kind == CF_AV_ARRAY && parts->n <= 16) {
                m.npsum = (int)parts->n;
                for (size_t k = 0; k < parts->n; k++) {
                    const cf_avro_value *lo = cf_avro_get(&parts->items[k], "lower_bound");
                    const cf_avro_value *hi = cf_avro_get(&parts->items[k], "upper_bound");
                    cf_ice_psum *sum = &m.psum[k];
                    sum->contains_null = cf_avro_get_long(&parts->items[k], "contains_null", 1) != 0;
                    if (lo && hi && lo->kind == CF_AV_BYTES && hi->kind == CF_AV_BYTES &&
                        lo->n <= sizeof sum->lo && hi->n <= sizeof sum->hi) {
                        sum->has_bounds = true;
                        memcpy(sum->lo, lo->p, lo->n);
                        memcpy(sum->hi, hi->p, hi->n);
                        sum->lo_n = (uint8_t)lo->n;
                        sum->hi_n = (uint8_t)hi->n;
                    }
                }
            }
        }
        rc = cf_ice_mlist_add(out, &m, err);
        free(ps);
        if (rc)
            break;
    }
    cf_avro_reader_free(r);
    if (rc < 0) {
        cf_ice_mlist_free(out);
        return -1;
    }
    return 0;
}

int cf_ice_snapshot_files(cf_store *st, json_t *snap, cf_ice_file **files, int *nfiles,
                          cf_err *err)
{
    const char *ml = json_string_value(json_object_get(snap, "manifest-list"));
    cf_ice_mlist l;
    cf_ice_file *all = NULL, *keep;
    int n = 0, ndata = 0;

    *files = NULL;
    *nfiles = 0;
    if (!ml)
        return cf_err_set(err, CF_E_UNSUPPORTED, "snapshot without a manifest list (v1 manifests field)");
    if (cf_ice_read_mlist(st, ml, &l, err))
        return -1;
    for (int i = 0; i < l.n; i++)
        if (cf_ice_read_manifest(st, &l.v[i], &all, &n, err)) {
            cf_ice_mlist_free(&l);
            cf_ice_files_free(all, n);
            return -1;
        }
    cf_ice_mlist_free(&l);
    /* Drop deleted entries; data files first, then delete files. */
    keep = calloc(n ? (size_t)n : 1, sizeof *keep);
    if (!keep) {
        cf_ice_files_free(all, n);
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            if (!all[i].path || all[i].status == 2 || (all[i].content != 0) != (pass == 1))
                continue;
            keep[ndata++] = all[i];
            memset(&all[i], 0, sizeof all[i]);
        }
    cf_ice_files_free(all, n);
    all = keep;
    *files = all;
    *nfiles = ndata;
    return 0;
}
