/* iceberg_sink.c - the Iceberg v2 table sink: Parquet data files, Avro
 * manifests, atomic metadata commits that carry the Kafka offsets they
 * cover, append and upsert (position deletes via a primary-key index). */
#include "table/table_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/iceberg/iceberg_int.h"
#include "format/parquet/parquet.h"

#define MAX_BOUND_BYTES     64          /* string bounds kept in manifests */
#define KEY_POOL_CAP        ((size_t)8 << 30)   /* bytes of primary-key values kept in memory */

/* A data file the key index points into; position deletes must carry the
 * partition of the data file they name. */
struct ifile {
    char       *path;
    int         npart;
    cf_ice_pval part[16];
};

typedef struct ice {
    cf_sink      *sink;
    cf_store     *store;          /* the sink's: every file of the table */
    cf_ice_catalog *cat;          /* where the table's metadata is published */
    cf_ice_table  t;
    const cf_schema *bound;       /* batch schema the write schema was made for */
    int64_t       bound_sid;      /* the table schema id it was made against */
    cf_schema    *bound_copy;     /* its contents: a freed schema's address may come back */
    cf_schema    *wschema;        /* batch schema with table field ids */
    cf_schema    *ttypes;         /* wschema with the table's types (promotions) */
    cf_ice_spec   spec;
    int           src_col[16];    /* partition source column in the batch, -1 if absent */
    int           pk[CF_MAX_KEY_COLS], npk;   /* key columns in the batch, in identifier order */
    cf_ice_kmap  *idx;            /* key -> (file number, row position) */
    int64_t       idx_snap;       /* the snapshot the index reflects, -1 none */
    cf_ice_kmap  *paths;          /* path -> file number */
    struct ifile *files;          /* file number -> path and partition */
    int           nfiles, afiles;
    bool          index_ready;
    char          prefix[300];    /* "<app>.offsets." */
    struct staged *st;            /* the commit between stage and publish */
} ice;

static void staged_free(ice *s, bool remove_files);

/* ---- small helpers ----------------------------------------------------- */

/* Number of a data file, registering it (with its partition) if new. */
static int file_number(ice *s, const char *path, const cf_ice_pval *part, int npart, cf_err *err)
{
    int32_t a;
    int64_t b;
    size_t n = strlen(path);
    struct ifile *f;

    if (cf_ice_kmap_get(s->paths, path, n, &a, &b))
        return a;
    if (s->nfiles == s->afiles) {
        int na = s->afiles ? s->afiles * 2 : 64;
        struct ifile *nf = realloc(s->files, sizeof *nf * (size_t)na);
        if (!nf)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        s->files = nf;
        s->afiles = na;
    }
    f = &s->files[s->nfiles];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int k = 0; k < npart && k < 16; k++) {
        f->part[k] = part[k];
        f->part[k].s = NULL;
        if (part[k].s && !(f->part[k].s = malloc(part[k].n + 1))) {
            cf_ice_pvals_clear(f->part, k);
            free(f->path);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
        if (part[k].s) {
            memcpy(f->part[k].s, part[k].s, part[k].n);
            f->part[k].s[part[k].n] = 0;
        }
        f->npart = k + 1;
    }
    if (cf_ice_kmap_put(s->paths, path, n, s->nfiles, 0, err)) {
        cf_ice_pvals_clear(f->part, f->npart);
        free(f->path);
        return -1;
    }
    return s->nfiles++;
}

static json_t *schema_to_json(const cf_schema *sc, int schema_id, const int *pk, int npk)
{
    json_t *fields = json_array(), *ids = json_array();
    char tb[64];
    for (int i = 0; i < sc->nfields; i++) {
        const cf_field *f = &sc->fields[i];
        json_array_append_new(fields, json_pack("{s:i, s:s, s:b, s:s}", "id", f->field_id,
                              "name", f->name, "required", !f->nullable,
                              "type", cf_ice_type_name(f->type, tb, sizeof tb)));
    }
    for (int i = 0; i < npk; i++)
        json_array_append_new(ids, json_integer(sc->fields[pk[i]].field_id));
    return json_pack("{s:s, s:i, s:o, s:o}", "type", "struct", "schema-id", schema_id,
                     "identifier-field-ids", ids, "fields", fields);
}

/* ---- schema binding ---------------------------------------------------- */

/* Tables written before uuid and wide decimals got their own types declare
 * them `string`; batches carry both as text, so they keep being written as
 * strings there. */
static bool text_column(cf_type table, cf_type batch)
{
    return table.id == CF_T_STRING &&
           (batch.id == CF_T_UUID || (batch.id == CF_T_DECIMAL && batch.precision > 18));
}

/* A change of a column's type that Iceberg allows (type promotion): the
 * table column takes the batch's wider type; readers read old files
 * through it.  Decimals wider than 18 digits are stored as text here, so a
 * decimal widens within 18. */
static bool promotes(cf_type table, cf_type batch)
{
    return (table.id == CF_T_INT32 && batch.id == CF_T_INT64) ||
           (table.id == CF_T_FLOAT && batch.id == CF_T_DOUBLE) ||
           (table.id == CF_T_DECIMAL && batch.id == CF_T_DECIMAL && table.scale == batch.scale &&
            batch.precision > table.precision && batch.precision <= 18);
}

static bool type_compatible(cf_type table, cf_type batch)
{
    char a[64], b[64];
    const char *ta = cf_ice_type_name(table, a, sizeof a), *tb = cf_ice_type_name(batch, b, sizeof b);
    if (ta && tb && !strcmp(ta, tb))
        return true;
    /* int -> long is a promotion Iceberg readers apply to old files. */
    return (table.id == CF_T_INT64 && batch.id == CF_T_INT32) || text_column(table, batch);
}

/* Whether the key of `c` is the one the write schema was bound with. */
static bool same_key(const ice *s, const cf_commit *c)
{
    if (!s->wschema || s->wschema->npk != c->nkey)
        return false;
    for (int i = 0; i < c->nkey; i++)
        if (s->wschema->pk[i] != c->key[i])
            return false;
    return true;
}

/* The table's current schema id, -1 for a new table. */
static int64_t schema_id(const ice *s)
{
    return s->t.meta ? json_integer_value(json_object_get(s->t.meta, "current-schema-id")) : -1;
}

/* Give each batch column its table field id (new columns get new ids),
 * find the key and the partition source columns.  Bound again when the
 * batch schema, the key or the table's schema changed. */
static int bind(ice *s, const cf_schema *bs, const cf_commit *c, cf_err *err)
{
    cf_schema *cur = NULL, *w, *tt;
    int last = 0;

    if (s->bound == bs && s->wschema && cf_schema_equal(s->bound_copy, bs) && same_key(s, c) &&
        s->bound_sid == schema_id(s))
        return 0;
    if (c->nkey > CF_MAX_KEY_COLS)
        return cf_err_set(err, CF_E_UNSUPPORTED, "a key of %d columns (at most %d)", c->nkey, CF_MAX_KEY_COLS);
    if (!(w = cf_schema_clone(bs)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    {
        /* The commit says which columns are the key. */
        free(w->pk);
        w->pk = NULL;
        w->npk = 0;
        if (c->nkey && !(w->pk = malloc(sizeof *w->pk * (size_t)c->nkey))) {
            cf_schema_free(w);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
        for (int i = 0; i < c->nkey; i++)
            w->pk[w->npk++] = c->key[i];
    }
    if (s->t.meta) {
        if (!(cur = cf_ice_schema_from_json(s->t.meta, -1, err)))
            goto fail;
        last = (int)json_integer_value(json_object_get(s->t.meta, "last-column-id"));
    }
    for (int i = 0; i < w->nfields; i++) {
        cf_field *f = &w->fields[i];
        char tb[64];
        int k = cur ? cf_schema_find(cur, f->name) : -1;
        if (!cf_ice_type_name(f->type, tb, sizeof tb)) {
            cf_err_set(err, CF_E_UNSUPPORTED, "column %s: type %s has no Iceberg type", f->name,
                       cf_type_name(f->type.id));
            goto fail;
        }
        if (k >= 0) {
            if (!type_compatible(cur->fields[k].type, f->type) && !promotes(cur->fields[k].type, f->type)) {
                char ta[64], tb2[64];
                const char *na = cf_ice_type_name(cur->fields[k].type, ta, sizeof ta);
                const char *nb = cf_ice_type_name(f->type, tb2, sizeof tb2);
                cf_err_set(err, CF_E_UNSUPPORTED, "column %s changed type from %s to %s, which Iceberg cannot "
                           "promote (it promotes int to long, float to double and decimal(P,S) to a wider "
                           "precision): send the column's new values to a new table, or change the table's "
                           "column with an engine that can rewrite it, then restart", f->name,
                           na ? na : "?", nb ? nb : "?");
                goto fail;
            }
            f->field_id = cur->fields[k].field_id;
            f->nullable = cur->fields[k].nullable;
            if (text_column(cur->fields[k].type, f->type))
                f->type = cur->fields[k].type;
        } else {
            f->field_id = ++last;
            /* Files written before this column existed must read it as null. */
            f->nullable = cur ? true : f->nullable;
        }
    }
    /* Key: the table's identifier fields if it has them, else the batch's. */
    s->npk = 0;
    if (cur && cur->npk) {
        for (int i = 0; i < cur->npk && i < CF_MAX_KEY_COLS; i++) {
            int k = cf_schema_find(w, cur->fields[cur->pk[i]].name);
            if (k < 0) {
                cf_err_set(err, CF_E_ARG, "key column %s is missing from the rows",
                           cur->fields[cur->pk[i]].name);
                goto fail;
            }
            s->pk[s->npk++] = k;
        }
    } else
        for (int i = 0; i < w->npk && i < CF_MAX_KEY_COLS; i++)
            s->pk[s->npk++] = w->pk[i];
    for (int i = 0; i < s->npk; i++)
        if (!cur || cf_schema_find(cur, w->fields[s->pk[i]].name) < 0)
            w->fields[s->pk[i]].nullable = false;   /* identifier fields are required */
    if (s->sink->cfg.mode == CF_MODE_UPSERT && s->npk == 0) {
        cf_err_set(err, CF_E_ARG, "upsert mode needs a primary key (none in the rows' schema)");
        goto fail;
    }
    /* Partition spec: the table's, or the configured one for a new table. */
    if (s->t.meta) {
        if (cf_ice_spec_from_json(s->t.meta, cur, &s->spec, err))
            goto fail;
    } else if (cf_ice_spec_parse(s->sink->cfg.partition_by, s->sink->cfg.npartition_by, w,
                                 &s->spec, err))
        goto fail;
    for (int k = 0; k < s->spec.nfields; k++) {
        s->src_col[k] = -1;
        for (int i = 0; i < w->nfields; i++)
            if (w->fields[i].field_id == s->spec.f[k].source_id)
                s->src_col[k] = i;
    }
    if (!(tt = cf_schema_clone(w))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; cur && i < tt->nfields; i++) {
        int k = cf_schema_find(cur, tt->fields[i].name);
        if (k >= 0 && !promotes(cur->fields[k].type, tt->fields[i].type))
            tt->fields[i].type = cur->fields[k].type;
    }
    cf_schema_free(cur);
    cf_schema_free(s->bound_copy);
    if (!(s->bound_copy = cf_schema_clone(bs))) {
        cf_schema_free(w);
        cf_schema_free(tt);
        s->bound = NULL;
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    cf_schema_free(s->wschema);
    cf_schema_free(s->ttypes);
    s->wschema = w;
    s->ttypes = tt;
    s->bound = bs;
    s->bound_sid = schema_id(s);
    return 0;
fail:
    cf_schema_free(cur);
    cf_schema_free(w);
    return -1;
}

/* ---- primary-key index -------------------------------------------------- */

typedef struct rebuild_ctx {
    ice         *s;
    cf_buf       key;
    int          cols[CF_MAX_KEY_COLS];
    cf_ice_kmap *watch;     /* keys to notice, or NULL */
    bool        *hit;       /* set when a watched key is indexed */
} rebuild_ctx;

static int rebuild_row_fn(void *ctx, const cf_batch *rows, const char *file,
                          const int64_t *positions, cf_err *err)
{
    rebuild_ctx *rc = ctx;
    int fno = file_number(rc->s, file, NULL, 0, err);
    if (fno < 0)
        return -1;
    for (size_t i = 0; i < rows->nrows; i++) {
        cf_buf_reset(&rc->key);
        int32_t a;
        int64_t b;
        if (cf_ice_key_of(rows, rc->cols, rows->ncols, i, &rc->key, err) ||
            cf_ice_kmap_put(rc->s->idx, rc->key.data, rc->key.len, fno, positions[i], err))
            return -1;
        if (rc->watch && cf_ice_kmap_get(rc->watch, rc->key.data, rc->key.len, &a, &b))
            *rc->hit = true;
    }
    return 0;
}

/* Rebuild key -> (file, position) from the live rows of the current
 * snapshot: the index is never persisted, the table is the truth. */
static int rebuild_index(ice *s, cf_err *err)
{
    cf_schema *cur;
    rebuild_ctx rc = { .s = s };
    cf_ice_file *files = NULL;
    int rv, nfiles = 0;

    cf_ice_kmap_free(s->idx);
    if (!(s->idx = cf_ice_kmap_new(KEY_POOL_CAP)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    s->index_ready = false;
    s->idx_snap = -1;
    if (!s->t.meta || cf_ice_current_snapshot_id(s->t.meta) < 0) {
        s->index_ready = true;
        return 0;
    }
    if (!(cur = cf_ice_schema_from_json(s->t.meta, -1, err)))
        return -1;
    if (cur->npk == 0) {
        cf_schema_free(cur);
        return cf_err_set(err, CF_E_ARG, "upsert mode: the table has no identifier fields");
    }
    if (cur->npk > CF_MAX_KEY_COLS) {
        cf_schema_free(cur);
        return cf_err_set(err, CF_E_UNSUPPORTED, "a key of %d columns (at most %d)", cur->npk, CF_MAX_KEY_COLS);
    }
    for (int i = 0; i < cur->npk; i++)
        rc.cols[i] = i;
    cf_buf_init(&rc.key, 0);
    rv = cf_ice_snapshot_files(s->store, cf_ice_snapshot(s->t.meta, -1), &files, &nfiles, err);
    for (int i = 0; rv == 0 && i < nfiles; i++)
        if (files[i].content == 0 && file_number(s, files[i].path, files[i].part, files[i].npart, err) < 0)
            rv = -1;
    if (rv == 0)
        rv = cf_ice_scan_files(s->store, files, nfiles, cur, cur->pk, cur->npk, rebuild_row_fn, &rc, err);
    cf_ice_files_free(files, nfiles);
    cf_buf_free(&rc.key);
    cf_schema_free(cur);
    if (rv)
        return cf_err_wrap(err, "rebuilding the key index");
    s->idx_snap = cf_ice_current_snapshot_id(s->t.meta);
    s->index_ready = true;
    return 0;
}
/* ---- offsets ------------------------------------------------------------ */

/* A non-negative decimal integer, all of `s`; -1 otherwise. */
static int64_t parse_count(const char *s)
{
    char *end;
    long long v;

    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    return *end || errno ? -1 : v;
}

/* The newest snapshot in the current snapshot's ancestry that carries our
 * offsets (other engines' snapshots carry none), or NULL. */
static json_t *offsets_carrier(const ice *s, json_t *meta)
{
    int64_t id = meta ? cf_ice_current_snapshot_id(meta) : -1;
    size_t pl = strlen(s->prefix);

    for (int guard = 0; id >= 0 && guard < 1000000; guard++) {
        json_t *sn = cf_ice_snapshot(meta, id), *pid, *v;
        const char *key;
        if (!sn)
            return NULL;            /* expired: nothing older is known */
        json_object_foreach(json_object_get(sn, "summary"), key, v)
            if (!strncmp(key, s->prefix, pl))
                return sn;
        pid = json_object_get(sn, "parent-snapshot-id");
        id = json_is_integer(pid) ? json_integer_value(pid) : -1;
    }
    return NULL;
}

/* Offsets of `meta` (see offsets_carrier) into *out.  A value that is not a
 * plain count is a corrupt table, not offset 0. */
static int meta_offsets(const ice *s, json_t *meta, cf_offsets *out, cf_err *err)
{
    json_t *snap = offsets_carrier(s, meta), *v, *from;
    const char *key;
    size_t pl = strlen(s->prefix);

    /* No snapshot left that carries them (another engine's snapshots on top
     * and ours expired): the table properties, which every cdcflow commit
     * sets with the same values and other engines keep, still do. */
    from = snap ? json_object_get(snap, "summary") : meta ? json_object_get(meta, "properties") : NULL;
    if (!from)
        return 0;
    json_object_foreach(from, key, v) {
        const char *dot;
        char topic[256];
        size_t tl;
        int64_t part, off;
        if (strncmp(key, s->prefix, pl) || !(dot = strrchr(key + pl, '.')))
            continue;
        tl = (size_t)(dot - (key + pl));
        part = parse_count(dot + 1);
        off = json_is_string(v) ? parse_count(json_string_value(v)) : -1;
        if (tl == 0 || tl >= sizeof topic || part < 0 || part > INT32_MAX || off < 0)
            return cf_err_set(err, CF_E_CORRUPT, "%s: %s %lld: bad offset property %s", s->t.location,
                              snap ? "snapshot" : "table properties, version",
                              (long long)(snap ? json_integer_value(json_object_get(snap, "snapshot-id"))
                                               : s->t.version), key);
        memcpy(topic, key + pl, tl);
        topic[tl] = 0;
        if (cf_offsets_put(out, topic, (int32_t)part, off, err))
            return -1;
    }
    return 0;
}

/* Re-read the table if another writer committed since we last looked. */
static int refresh(ice *s, cf_err *err)
{
    return cf_ice_catalog_refresh(s->cat, &s->t, NULL, err);
}

/* ---- key index catch-up -------------------------------------------------- */

/* Index the data files snapshot `sn` added.  Rows its position deletes
 * retired stay in the index: a position delete of a row already deleted is
 * harmless, so only additions matter.  *hit: one of the added keys is in
 * `watch` (the keys of a staged commit). */
static int index_added_files(ice *s, json_t *sn, cf_ice_kmap *watch, bool *hit, cf_err *err)
{
    const char *ml = json_string_value(json_object_get(sn, "manifest-list"));
    int64_t sid = json_integer_value(json_object_get(sn, "snapshot-id"));
    cf_ice_mlist l = { 0 };
    cf_ice_file *files = NULL;
    int nfiles = 0, rc = -1;
    rebuild_ctx rc_ctx = { .s = s, .watch = watch, .hit = hit };
    cf_schema *cur = NULL;

    if (!ml)
        return cf_err_set(err, CF_E_UNSUPPORTED, "snapshot %lld has no manifest list", (long long)sid);
    if (cf_ice_read_mlist(s->store, ml, &l, err))
        goto out;
    for (int i = 0; i < l.n; i++)
        if (l.v[i].content == 0 && l.v[i].added_snapshot_id == sid &&
            cf_ice_read_manifest(s->store, &l.v[i], &files, &nfiles, err))
            goto out;
    {
        int keep = 0;
        for (int i = 0; i < nfiles; i++) {
            if (files[i].status == 1 && files[i].content == 0 && files[i].snapshot_id == sid) {
                if (keep != i) {
                    files[keep] = files[i];
                    memset(&files[i], 0, sizeof files[i]);
                }
                keep++;
            } else
                cf_ice_file_clear(&files[i]);
        }
        nfiles = keep;
    }
    if (!nfiles) {
        rc = 0;
        goto out;
    }
    if (!(cur = cf_ice_schema_from_json(s->t.meta, -1, err)))
        goto out;
    for (int i = 0; i < cur->npk && i < CF_MAX_KEY_COLS; i++)
        rc_ctx.cols[i] = i;
    cf_buf_init(&rc_ctx.key, 0);
    for (int i = 0; i < nfiles; i++)
        if (file_number(s, files[i].path, files[i].part, files[i].npart, err) < 0)
            goto out_key;
    rc = cf_ice_scan_files(s->store, files, nfiles, cur, cur->pk, cur->npk, rebuild_row_fn, &rc_ctx, err);
out_key:
    cf_buf_free(&rc_ctx.key);
out:
    cf_schema_free(cur);
    cf_ice_files_free(files, nfiles);
    cf_ice_mlist_free(&l);
    return rc;
}

/* Bring the key index from s->idx_snap up to snapshot `target` of the
 * current metadata: whoever wrote the snapshots in between (another cdcflow
 * process, Spark, pyiceberg).  A snapshot that rewrote or deleted files
 * (compaction, a DELETE) moves positions: then the index is rebuilt from
 * the current snapshot and *rebuilt is set.  *hit as for index_added_files. */
static int index_catch_up(ice *s, int64_t target, cf_ice_kmap *watch, bool *hit, bool *rebuilt, cf_err *err)
{
    int64_t *chain = NULL, id = target;
    size_t n = 0, alloc = 0;
    int rc = -1;

    *rebuilt = false;
    if (!s->index_ready || target == s->idx_snap)
        return 0;
    for (;;) {
        json_t *sn, *pid;
        const char *op;
        if (id == s->idx_snap)
            break;
        if (id < 0 || !(sn = cf_ice_snapshot(s->t.meta, id)))
            goto rebuild;               /* the index's snapshot is not an ancestor */
        op = json_string_value(json_object_get(json_object_get(sn, "summary"), "operation"));
        if (op && (!strcmp(op, "replace") || !strcmp(op, "delete")))
            goto rebuild;
        if (n == alloc) {
            size_t na = alloc ? alloc * 2 : 16;
            int64_t *nc = realloc(chain, sizeof *nc * na);
            if (!nc) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto out;
            }
            chain = nc;
            alloc = na;
        }
        chain[n++] = id;
        pid = json_object_get(sn, "parent-snapshot-id");
        id = json_is_integer(pid) ? json_integer_value(pid) : -1;
    }
    while (n--)
        if (index_added_files(s, cf_ice_snapshot(s->t.meta, chain[n]), watch, hit, err))
            goto out;
    s->idx_snap = target;
    rc = 0;
    goto out;
rebuild:
    *rebuilt = true;
    if (hit)
        *hit = true;
    rc = rebuild_index(s, err);
out:
    free(chain);
    return rc;
}



/* ---- sink ops ----------------------------------------------------------- */

static void ice_close(cf_sink *sk)
{
    ice *s = sk->impl;
    if (!s)
        return;
    staged_free(s, true);
    cf_ice_table_free(&s->t);
    cf_ice_catalog_close(s->cat);
    cf_schema_free(s->wschema);
    cf_schema_free(s->ttypes);
    cf_schema_free(s->bound_copy);
    cf_ice_kmap_free(s->idx);
    cf_ice_kmap_free(s->paths);
    for (int i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        cf_ice_pvals_clear(s->files[i].part, s->files[i].npart);
    }
    free(s->files);
    free(s);
    sk->impl = NULL;
}

static int ice_open(cf_sink *sk, cf_err *err)
{
    ice *s;

    if (!sk->cfg.location || !*sk->cfg.location)
        return cf_err_set(err, CF_E_ARG, "iceberg sink: no table location");
    if (!(s = calloc(1, sizeof *s)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    sk->impl = s;
    s->sink = sk;
    s->store = sk->store;
    /* cfg.catalog NULL: ICEBERG_CATALOG_* */
    if (!(s->cat = cf_ice_catalog_open(sk->cfg.catalog, sk->cfg.location, sk->cfg.table_name, s->store, err)))
        goto fail;
    snprintf(s->prefix, sizeof s->prefix, "%s.offsets.",
             sk->cfg.app_id && *sk->cfg.app_id ? sk->cfg.app_id : "cdcflow");
    if (!(s->idx = cf_ice_kmap_new(KEY_POOL_CAP)) || !(s->paths = cf_ice_kmap_new(0))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (cf_ice_catalog_load(s->cat, &s->t, err))
        goto fail;
    if (sk->cfg.mode == CF_MODE_UPSERT && rebuild_index(s, err))
        goto fail;
    return 0;
fail:
    ice_close(sk);
    return -1;
}

/* The table's offsets, read anew: another process of the group may have
 * committed since we last looked. */
static int ice_offsets(cf_sink *sk, cf_offsets *out, cf_err *err)
{
    ice *s = sk->impl;

    if (refresh(s, err))
        return -1;
    return meta_offsets(s, s->t.meta, out, err);
}

/* Length of a string bound prefix of at most max bytes that does not cut a
 * UTF-8 sequence in two. */
static size_t utf8_prefix(const uint8_t *p, size_t n, size_t max)
{
    if (n <= max)
        return n;
    while (max > 0 && (p[max] & 0xc0) == 0x80)
        max--;
    return max;
}

static int set_bound(uint8_t **dst, size_t *dn, const void *src, size_t n, cf_err *err)
{
    if (!(*dst = malloc(n + 1)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    memcpy(*dst, src, n);
    *dn = n;
    return 0;
}

int cf_ice_file_metrics(const cf_schema *ws, const cf_schema *tt, size_t max_bound,
                        const cf_pq_file_info *info, cf_ice_file *f, cf_err *err)
{
    if (!info->cols || info->ncols == 0)
        return 0;
    if (!(f->metrics = calloc((size_t)info->ncols, sizeof *f->metrics)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int j = 0; j < info->ncols && j < ws->nfields; j++) {
        const cf_pq_stats *st = &info->cols[j];
        cf_ice_metric *m = &f->metrics[f->nmetrics++];
        /* Bounds are serialized in the table's type (an int column of a
         * long field gets 8-byte bounds). */
        const cf_type *t = tt ? &tt->fields[j].type : &ws->fields[j].type;
        uint8_t lo[64], hi[64];
        int nl = -1, nh = -1;
        m->id = ws->fields[j].field_id;
        m->values = st->value_count + st->null_count;
        m->nulls = st->null_count;
        m->sizes = st->compressed_bytes;
        /* The spec keeps NaN counts for float and double columns only. */
        m->nans = t->id == CF_T_FLOAT || t->id == CF_T_DOUBLE ? st->nan_count : -1;
        if (!st->has_minmax)
            continue;
        if (t->id == CF_T_UUID || (t->id == CF_T_DECIMAL && t->precision > 18)) {
            /* Statistics give these as text; bounds want their binary form. */
            if (st->s_min && st->s_max) {
                nl = cf_ice_single_value(t, 0, 0, st->s_min, st->s_min_len, lo, sizeof lo);
                nh = cf_ice_single_value(t, 0, 0, st->s_max, st->s_max_len, hi, sizeof hi);
            }
        } else if (t->id == CF_T_FLOAT || t->id == CF_T_DOUBLE) {
            nl = cf_ice_single_value(t, 0, st->d_min, NULL, 0, lo, sizeof lo);
            nh = cf_ice_single_value(t, 0, st->d_max, NULL, 0, hi, sizeof hi);
        } else if (cf_type_is_varlen(*t)) {
            /* A prefix of the minimum is still a lower bound; a cut maximum
             * is not an upper bound, so a long one is left out. */
            if (st->s_min) {
                size_t n = max_bound ? utf8_prefix((const uint8_t *)st->s_min, st->s_min_len, max_bound)
                                     : st->s_min_len;
                if (set_bound(&m->lower, &m->lower_n, st->s_min, n, err))
                    return -1;
            }
            if (st->s_max && (!max_bound || st->s_max_len <= max_bound) &&
                set_bound(&m->upper, &m->upper_n, st->s_max, st->s_max_len, err))
                return -1;
            continue;
        } else {
            nl = cf_ice_single_value(t, st->i_min, 0, NULL, 0, lo, sizeof lo);
            nh = cf_ice_single_value(t, st->i_max, 0, NULL, 0, hi, sizeof hi);
        }
        if (nl >= 0 && nh >= 0 &&
            (set_bound(&m->lower, &m->lower_n, lo, (size_t)nl, err) ||
             set_bound(&m->upper, &m->upper_n, hi, (size_t)nh, err)))
            return -1;
    }
    return 0;
}

void cf_ice_count_nans(const cf_batch *b, const uint32_t *rows, size_t n, int64_t *nans)
{
    if (!rows)
        n = b->nrows;
    for (int j = 0; j < b->ncols; j++) {
        const cf_column *c = &b->cols[j];
        if (c->type.id != CF_T_FLOAT && c->type.id != CF_T_DOUBLE)
            continue;
        for (size_t k = 0; k < n; k++) {
            size_t i = rows ? rows[k] : k;
            double v;
            if (!cf_col_valid(c, i))
                continue;
            v = c->type.id == CF_T_FLOAT ? (double)((const float *)c->vals)[i]
                                         : ((const double *)c->vals)[i];
            nans[j] += v != v;
        }
    }
}

void cf_ice_set_nans(cf_ice_file *f, const cf_schema *s, const int64_t *nans)
{
    for (int j = 0; j < f->nmetrics && j < s->nfields; j++)
        if (f->metrics[j].nans >= 0)
            f->metrics[j].nans = nans[j];
}

static void pq_opts(const cf_sink_config *cfg, cf_pq_options *o)
{
    cf_pq_options_default(o);
    o->codec = cfg->codec;
    o->write_field_ids = true;
}

/* Write rows[0..n) of b as one data file; fill *f. */
static int write_data_file(ice *s, const cf_batch *b, const uint32_t *rows, size_t n,
                           const cf_ice_pval *part, cf_ice_file *f, cf_err *err)
{
    char dir[PATH_MAX], ppath[1024], u[37], *path;
    cf_pq_options o;
    cf_pq_writer *w;
    cf_pq_file_info info;
    cf_batch view;
    size_t plen;
    int rc;

    memset(f, 0, sizeof *f);
    if (s->spec.nfields && cf_ice_partition_path(&s->spec, part, ppath, sizeof ppath))
        return cf_err_set(err, CF_E_ARG, "partition path too long");
    snprintf(dir, sizeof dir, "%s/data%s%s", s->t.location, s->spec.nfields ? "/" : "",
             s->spec.nfields ? ppath : "");
    cf_uuid(u);
    plen = strlen(dir) + 64;
    if (!(path = malloc(plen)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    snprintf(path, plen, "%s/%s.parquet", dir, u);
    pq_opts(&s->sink->cfg, &o);
    /* The batch is bound to the transform's schema; the writer must see
     * the same columns with table field ids, so write through a view. */
    view = *b;
    view.schema = s->wschema;
    for (int j = 0; j < b->ncols && j < s->wschema->nfields; j++)
        if (b->cols[j].type.id != s->wschema->fields[j].type.id) {
            /* A uuid or wide decimal (text in the batch) going into a column
             * an older table declared string: same bytes, string type. */
            if (view.cols == b->cols) {
                if (!(view.cols = malloc(sizeof *view.cols * (size_t)b->ncols))) {
                    free(path);
                    return cf_err_set(err, CF_E_NOMEM, "out of memory");
                }
                memcpy(view.cols, b->cols, sizeof *view.cols * (size_t)b->ncols);
            }
            view.cols[j].type = s->wschema->fields[j].type;
        }
    if (!(w = cf_pq_writer_open(s->store, path, s->wschema, &o, err))) {
        if (view.cols != b->cols)
            free(view.cols);
        free(path);
        return -1;
    }
    rc = cf_pq_writer_write_rows(w, &view, rows, n, err);
    if (view.cols != b->cols)
        free(view.cols);
    if (rc) {
        cf_pq_writer_abort(w);
        free(path);
        return -1;
    }
    memset(&info, 0, sizeof info);
    if (cf_pq_writer_close(w, &info, err)) {
        free(path);
        return -1;
    }
    f->status = 1;
    f->content = 0;
    f->path = path;
    f->records = info.num_rows;
    f->bytes = info.file_bytes;
    f->seq = -1;
    f->file_seq = -1;
    f->spec_id = s->spec.spec_id;
    f->npart = s->spec.nfields;
    for (int k = 0; k < s->spec.nfields; k++) {
        f->part[k] = part[k];
        if (part[k].s && !(f->part[k].s = cf_ice_pval_dup(&part[k]))) {
            cf_pq_file_info_free(&info);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
    }
    if (cf_ice_file_metrics(s->wschema, s->ttypes, MAX_BOUND_BYTES, &info, f, err)) {
        cf_pq_file_info_free(&info);
        return -1;
    }
    for (int j = 0; j < info.ncols; j++)
        if (info.cols[j].nan_count > 0) {      /* then count them right (rare) */
            int64_t *nans = calloc((size_t)b->ncols, sizeof *nans);
            if (!nans) {
                cf_pq_file_info_free(&info);
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            }
            cf_ice_count_nans(b, rows, n, nans);
            cf_ice_set_nans(f, s->wschema, nans);
            free(nans);
            break;
        }
    cf_pq_file_info_free(&info);
    return 0;
}

typedef struct posdel {
    int32_t     file;
    int64_t     pos;
    const char *path;        /* files[file].path, so qsort needs no context */
} posdel;

static int cmp_posdel(const void *a, const void *b)
{
    const posdel *x = a, *y = b;
    int c = x->file == y->file ? 0 : strcmp(x->path, y->path);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* One position delete file (file_path, pos), rows sorted as the spec asks,
 * for deletes of data files in partition `part`. */
static int write_delete_file(ice *s, posdel *dels, size_t n, const struct ifile *part,
                             cf_ice_file *f, cf_err *err)
{
    cf_schema *ds = cf_schema_new();
    cf_batch *b = NULL;
    cf_pq_writer *w = NULL;
    cf_pq_options o;
    cf_pq_file_info info;
    char dir[PATH_MAX], u[37], *path = NULL;
    int rc = -1;

    memset(f, 0, sizeof *f);
    memset(&info, 0, sizeof info);
    if (!ds || cf_schema_add(ds, "file_path", (cf_type){ .id = CF_T_STRING }, false, CF_ICE_POS_FILE_PATH_ID, err) < 0 ||
        cf_schema_add(ds, "pos", (cf_type){ .id = CF_T_INT64 }, false, CF_ICE_POS_POS_ID, err) < 0 ||
        !(b = cf_batch_new(ds, err)))
        goto out;
    qsort(dels, n, sizeof *dels, cmp_posdel);
    for (size_t i = 0; i < n; i++) {
        const char *p = s->files[dels[i].file].path;
        if (cf_col_set_bytes(&b->cols[0], b->nrows, p, strlen(p), err) ||
            cf_col_set_i64(&b->cols[1], b->nrows, dels[i].pos, err) || cf_batch_end_row(b, err))
            goto out;
    }
    snprintf(dir, sizeof dir, "%s/data", s->t.location);
    cf_uuid(u);
    if (!(path = malloc(strlen(dir) + 64))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    sprintf(path, "%s/%s-deletes.parquet", dir, u);
    pq_opts(&s->sink->cfg, &o);
    if (!(w = cf_pq_writer_open(s->store, path, ds, &o, err)))
        goto out;
    if (cf_pq_writer_write(w, b, err)) {
        cf_pq_writer_abort(w);
        goto out;
    }
    if (cf_pq_writer_close(w, &info, err))
        goto out;
    f->status = 1;
    f->content = 1;
    f->path = path;
    path = NULL;
    f->records = info.num_rows;
    f->bytes = info.file_bytes;
    f->seq = f->file_seq = -1;
    f->spec_id = s->spec.spec_id;
    /* Readers apply a position delete file only to data files of its own
     * partition (spec and values), so it carries theirs. */
    f->npart = s->spec.nfields;
    for (int k = 0; k < f->npart; k++) {
        if (k >= part->npart) {
            f->part[k].null = true;
            continue;
        }
        f->part[k] = part->part[k];
        f->part[k].s = NULL;
        if (part->part[k].s && !(f->part[k].s = cf_ice_pval_dup(&part->part[k]))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (cf_ice_file_metrics(ds, NULL, 0, &info, f, err))
        goto out;
    rc = 0;
out:
    cf_pq_file_info_free(&info);
    free(path);
    cf_batch_free(b);
    cf_schema_free(ds);
    return rc;
}

/* ---- metadata commit ---------------------------------------------------- */

static int64_t summary_int(json_t *snap, const char *key)
{
    json_t *v = json_object_get(json_object_get(snap, "summary"), key);
    return v && json_is_string(v) ? strtoll(json_string_value(v), NULL, 10) : 0;
}

static void set_count(json_t *sum, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    json_object_set_new(sum, key, json_string(buf));
}

static json_t *new_table_doc(ice *s)
{
    char u[37];
    const char *codec = s->sink->cfg.codec == CF_CODEC_SNAPPY ? "snappy"
                        : s->sink->cfg.codec == CF_CODEC_NONE ? "uncompressed" : "zstd";
    int last = 0;
    for (int i = 0; i < s->wschema->nfields; i++)
        if (s->wschema->fields[i].field_id > last)
            last = s->wschema->fields[i].field_id;
    cf_uuid(u);
    return json_pack("{s:i, s:s, s:s, s:i, s:I, s:i, s:i, s:[o], s:i, s:[{s:i, s:o}], s:i,"
                     " s:i, s:[{s:i, s:[]}], s:{s:s, s:s, s:s, s:s, s:s}, s:{}, s:[], s:[], s:[]}",
                     "format-version", 2, "table-uuid", u, "location", s->t.location,
                     "last-sequence-number", 0, "last-updated-ms", (json_int_t)cf_now_ms(),
                     "last-column-id", last, "current-schema-id", 0,
                     "schemas", schema_to_json(s->wschema, 0, s->pk, s->npk),
                     "default-spec-id", 0,
                     "partition-specs", "spec-id", 0, "fields", cf_ice_spec_to_json(&s->spec),
                     "last-partition-id", 999 + s->spec.nfields,
                     "default-sort-order-id", 0, "sort-orders", "order-id", 0, "fields",
                     "properties", "write.metadata.previous-versions-max", "100",
                     "write.format.default", "parquet", "write.parquet.compression-codec", codec,
                     "cdcflow.mode", s->sink->cfg.mode == CF_MODE_UPSERT ? "upsert" : "append",
                     "cdcflow.soft-deletes", s->sink->cfg.soft_deletes ? "true" : "false",
                     "refs", "snapshots", "snapshot-log", "metadata-log");
}

static json_t *current_schema(json_t *meta)
{
    json_t *sch;
    size_t i;
    json_array_foreach(json_object_get(meta, "schemas"), i, sch)
        if (json_integer_value(json_object_get(sch, "schema-id")) ==
            json_integer_value(json_object_get(meta, "current-schema-id")))
            return sch;
    return NULL;
}

/* Make the metadata's current schema hold every column of the write
 * schema (*schema_added: in a new schema); fails if ids clash with what
 * another writer committed. */
static int merge_schema(ice *s, json_t *meta, bool *schema_added, cf_err *err)
{
    cf_schema *cur = cf_ice_schema_from_json(meta, -1, err);
    int last = (int)json_integer_value(json_object_get(meta, "last-column-id")), maxid = 0, added = 0;
    json_t *sj, *fields, *sch;
    size_t i;

    if (!cur)
        return -1;
    sj = json_deep_copy(json_object_get(json_object_get(meta, "schemas"), 0));
    json_array_foreach(json_object_get(meta, "schemas"), i, sch)
        if (json_integer_value(json_object_get(sch, "schema-id")) ==
            json_integer_value(json_object_get(meta, "current-schema-id"))) {
            json_decref(sj);
            sj = json_deep_copy(sch);
        }
    json_array_foreach(json_object_get(meta, "schemas"), i, sch)
        if (json_integer_value(json_object_get(sch, "schema-id")) > maxid)
            maxid = (int)json_integer_value(json_object_get(sch, "schema-id"));
    fields = json_object_get(sj, "fields");
    for (int k = 0; k < s->wschema->nfields; k++) {
        const cf_field *f = &s->wschema->fields[k];
        int c = cf_schema_find(cur, f->name);
        char tb[64];
        if (c >= 0) {
            if (cur->fields[c].field_id != f->field_id)
                goto clash;
            if (promotes(cur->fields[c].type, f->type)) {
                size_t j;
                json_t *jf;
                json_array_foreach(fields, j, jf)
                    if (json_integer_value(json_object_get(jf, "id")) == f->field_id)
                        json_object_set_new(jf, "type", json_string(cf_ice_type_name(f->type, tb, sizeof tb)));
                added++;
            }
            continue;
        }
        if (f->field_id <= last)
            goto clash;
        json_array_append_new(fields, json_pack("{s:i, s:s, s:b, s:s}", "id", f->field_id, "name",
                              f->name, "required", 0, "type", cf_ice_type_name(f->type, tb, sizeof tb)));
        if (f->field_id > last)
            last = f->field_id;
        added++;
    }
    cf_schema_free(cur);
    if (!added) {
        json_decref(sj);
        return 0;
    }
    json_object_set_new(sj, "schema-id", json_integer(maxid + 1));
    json_array_append_new(json_object_get(meta, "schemas"), sj);
    *schema_added = true;
    json_object_set_new(meta, "current-schema-id", json_integer(maxid + 1));
    json_object_set_new(meta, "last-column-id", json_integer(last));
    return 0;
clash:
    cf_schema_free(cur);
    json_decref(sj);
    /* Field ids were given against the old schema: bind and write anew. */
    return cf_err_set(err, CF_E_STALE, "another writer changed the table schema");
}

/* Fold manifests m[0..n) into one whose entries are all EXISTING (with
 * their sequence numbers and snapshot ids spelled out), added to ml. */
static int merge_into_one(ice *s, json_t *meta, const cf_ice_mfile *const *m, int n, int content,
                          cf_ice_mlist *ml, int64_t sid, int64_t seq, cf_err *err)
{
    cf_ice_file *files = NULL;
    int nfiles = 0, live = 0, rc = -1;
    cf_ice_mfile mf;
    char path[PATH_MAX], u[37];

    for (int i = 0; i < n; i++)
        if (cf_ice_read_manifest(s->store, m[i], &files, &nfiles, err))
            goto out;
    for (int i = 0; i < nfiles; i++) {
        if (files[i].status == 2) {
            cf_ice_file_clear(&files[i]);
            continue;
        }
        files[i].status = 0;
        if (live != i) {
            files[live] = files[i];
            memset(&files[i], 0, sizeof files[i]);
        }
        live++;
    }
    if (live == 0) {
        rc = 0;
        goto out;
    }
    cf_uuid(u);
    snprintf(path, sizeof path, "%s/metadata/%s-m%d-merged.avro", s->t.location, u, content);
    if (cf_ice_write_manifest(s->store, path, files, live, &s->spec, current_schema(meta),
                              (int)json_integer_value(json_object_get(meta, "current-schema-id")),
                              sid, seq, &mf, err) ||
        cf_ice_mlist_add(ml, &mf, err))
        goto out;
    rc = 0;
out:
    cf_ice_files_free(files, nfiles);
    return rc;
}

/* The parent's manifests go into the new list as they are, except that
 * past commit.manifest.min-count-to-merge (default 100) manifests of one
 * kind are folded into one, so a commit reads and writes a bounded list
 * however long the stream has run. */
static int add_parent_manifests(ice *s, json_t *meta, const cf_ice_mlist *pl, cf_ice_mlist *ml,
                                int64_t sid, int64_t seq, cf_err *err)
{
    json_t *props = json_object_get(meta, "properties");
    const char *en = json_string_value(json_object_get(props, "commit.manifest-merge.enabled"));
    const char *mc = json_string_value(json_object_get(props, "commit.manifest.min-count-to-merge"));
    int min_count = mc ? atoi(mc) : 100;
    bool enabled = !(en && !strcmp(en, "false")) && s->wschema != NULL;
    const cf_ice_mfile **pick = NULL;
    int rc = -1;

    if (min_count < 2)
        min_count = 2;
    if (pl->n && !(pick = malloc(sizeof *pick * (size_t)pl->n)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (int content = 0; content < 2; content++) {
        int n = 0;
        for (int i = 0; i < pl->n; i++)
            if (pl->v[i].content == content && pl->v[i].spec_id == s->spec.spec_id)
                pick[n++] = &pl->v[i];
        if (enabled && n >= min_count) {
            if (merge_into_one(s, meta, pick, n, content, ml, sid, seq, err))
                goto out;
            continue;
        }
        for (int i = 0; i < n; i++)
            if (cf_ice_mlist_add(ml, pick[i], err))
                goto out;
    }
    /* Manifests of other specs (written by other tools) stay as they are. */
    for (int i = 0; i < pl->n; i++)
        if ((pl->v[i].content != 0 && pl->v[i].content != 1) || pl->v[i].spec_id != s->spec.spec_id)
            if (cf_ice_mlist_add(ml, &pl->v[i], err))
                goto out;
    rc = 0;
out:
    free(pick);
    return rc;
}

/* Manifests of the added files (added[] holds data files first, then
 * delete files: one manifest of each kind), written on the first attempt
 * into *newm and reused by retries: their entries inherit the sequence
 * number, so only the manifest list and the metadata change. */
static int write_new_manifests(ice *s, json_t *meta, cf_ice_file *added, int nadded, int64_t sid,
                               int64_t seq, cf_ice_mlist *newm, cf_err *err)
{
    char path[PATH_MAX], u[37];

    if (newm->n > 0)
        return 0;
    for (int content = 0; content < 2; content++) {
        int first = -1, cnt = 0;
        cf_ice_mfile mf;
        for (int i = 0; i < nadded; i++)
            if (added[i].content == content) {
                if (first < 0)
                    first = i;
                cnt++;
                added[i].snapshot_id = sid;
            }
        if (!cnt)
            continue;
        cf_uuid(u);
        snprintf(path, sizeof path, "%s/metadata/%s-m%d.avro", s->t.location, u, content);
        if (cf_ice_write_manifest(s->store, path, added + first, cnt, &s->spec, current_schema(meta),
                                  (int)json_integer_value(json_object_get(meta, "current-schema-id")),
                                  sid, seq, &mf, err) ||
            cf_ice_mlist_add(newm, &mf, err))
            return -1;
    }
    return 0;
}

/* The manifest list of snapshot `sid`, written at lpath: its own
 * manifests, then the parent's (folded past the merge threshold). */
static int write_manifest_list(ice *s, json_t *meta, json_t *parent, const cf_ice_mlist *newm,
                               int64_t sid, int64_t parent_id, int64_t seq, char *lpath,
                               size_t lsize, cf_err *err)
{
    cf_ice_mlist ml = { 0 }, pl = { 0 };
    char u[37];
    int rc = -1;

    for (int i = 0; i < newm->n; i++) {
        cf_ice_mfile m = newm->v[i];
        m.seq = m.min_seq = seq;          /* every entry inherits this snapshot's */
        if (cf_ice_mlist_add(&ml, &m, err))
            goto out;
    }
    if (parent) {
        const char *pml = json_string_value(json_object_get(parent, "manifest-list"));
        if (!pml) {
            cf_err_set(err, CF_E_UNSUPPORTED, "parent snapshot has no manifest list");
            goto out;
        }
        if (cf_ice_read_mlist(s->store, pml, &pl, err) ||
            add_parent_manifests(s, meta, &pl, &ml, sid, seq, err))
            goto out;
    }
    cf_uuid(u);
    snprintf(lpath, lsize, "%s/metadata/snap-%lld-1-%s.avro", s->t.location, (long long)sid, u);
    rc = cf_ice_write_mlist(s->store, lpath, &ml, sid, parent_id, seq, err);
out:
    cf_ice_mlist_free(&pl);
    cf_ice_mlist_free(&ml);
    return rc;
}

/* What the snapshot adds and the table's totals after it. */
static json_t *snapshot_summary(const cf_ice_file *added, int nadded, json_t *parent)
{
    int64_t rows = 0, bytes = 0, data = 0, dels = 0, delrows = 0;
    json_t *sum = json_object();

    for (int i = 0; i < nadded; i++) {
        if (added[i].content == 0) {
            data++;
            rows += added[i].records;
        } else {
            dels++;
            delrows += added[i].records;
        }
        bytes += added[i].bytes;
    }
    json_object_set_new(sum, "operation", json_string(dels ? "overwrite" : "append"));
    set_count(sum, "added-data-files", data);
    set_count(sum, "added-records", rows);
    set_count(sum, "added-files-size", bytes);
    set_count(sum, "added-delete-files", dels);
    set_count(sum, "added-position-delete-files", dels);
    set_count(sum, "added-position-deletes", delrows);
    set_count(sum, "total-records", summary_int(parent, "total-records") + rows);
    set_count(sum, "total-files-size", summary_int(parent, "total-files-size") + bytes);
    set_count(sum, "total-data-files", summary_int(parent, "total-data-files") + data);
    set_count(sum, "total-delete-files", summary_int(parent, "total-delete-files") + dels);
    set_count(sum, "total-position-deletes", summary_int(parent, "total-position-deletes") + delrows);
    set_count(sum, "total-equality-deletes", summary_int(parent, "total-equality-deletes"));
    return sum;
}

/* Offsets of every topic-partition travel with each snapshot, carried
 * from the newest snapshot that has them (another engine's snapshots in
 * between carry none), so the current snapshot says where each writer
 * resumes; the same go into the table properties, which outlive our
 * snapshots.  Call before the snapshot is added to meta. */
static void carry_offsets(ice *s, json_t *meta, json_t *sum, const cf_commit *c)
{
    json_t *carrier = offsets_carrier(s, meta), *props, *v;
    size_t pl = strlen(s->prefix);
    const char *key;

    json_object_foreach(json_object_get(carrier, "summary"), key, v)
        if (!strncmp(key, s->prefix, pl))
            json_object_set(sum, key, v);
    for (int i = 0; c->end && i < c->end->n; i++) {
        char k[600];
        snprintf(k, sizeof k, "%s%s.%d", s->prefix, c->end->v[i].topic, c->end->v[i].partition);
        set_count(sum, k, c->end->v[i].next_offset);
    }
    if (!json_is_object(props = json_object_get(meta, "properties")))
        json_object_set_new(meta, "properties", props = json_object());
    json_object_foreach(sum, key, v)
        if (!strncmp(key, s->prefix, pl))
            json_object_set(props, key, v);
}

/* One attempt to publish snapshot `sid` with `added` files on top of the
 * table state s->t (new manifests in *newm, see write_new_manifests).
 * CF_E_CONFLICT means retry after reloading. */
static int commit_once(ice *s, cf_ice_file *added, int nadded, const cf_commit *c,
                       int64_t sid, cf_ice_mlist *newm, cf_err *err)
{
    json_t *meta = s->t.meta ? json_deep_copy(s->t.meta) : new_table_doc(s), *parent, *sum;
    cf_ice_change chg = { .snapshot_id = sid };
    cf_offsets have = { 0 };
    int64_t seq, now = cf_now_ms();
    char lpath[PATH_MAX], *lp = lpath;
    int rc = -1;

    if (!meta)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    /* The fence, against the state this snapshot is built on. */
    if (meta_offsets(s, meta, &have, err) || cf_commit_fence(c, &have, s->t.location, err))
        goto out;
    if (s->t.meta && s->wschema && merge_schema(s, meta, &chg.schema_added, err))
        goto out;
    chg.base_snapshot_id = cf_ice_current_snapshot_id(meta);
    parent = chg.base_snapshot_id >= 0 ? cf_ice_snapshot(meta, chg.base_snapshot_id) : NULL;
    seq = json_integer_value(json_object_get(meta, "last-sequence-number")) + 1;
    if (write_new_manifests(s, meta, added, nadded, sid, seq, newm, err) ||
        write_manifest_list(s, meta, parent, newm, sid, chg.base_snapshot_id, seq, lpath,
                            sizeof lpath, err))
        goto out;
    sum = snapshot_summary(added, nadded, parent);
    carry_offsets(s, meta, sum, c);
    cf_ice_add_snapshot(&s->t, meta, sid, chg.base_snapshot_id, seq, now, lpath, sum);
    /* A long stream adds a snapshot per commit: with history.expire.*
     * set, old ones leave the metadata here so it stays bounded. */
    chg.snapshots_removed = cf_ice_expire_history(meta, now) > 0;
    chg.properties_changed = !s->t.meta || !json_equal(json_object_get(s->t.meta, "properties"),
                                                       json_object_get(meta, "properties"));
    /* Our manifests and their list share metadata/: the list's name made
     * durable makes theirs durable too. */
    if (cf_store_sync(s->store, s->t.location, &lp, 1, err))
        goto out;
    rc = cf_ice_catalog_commit(s->cat, &s->t, meta, &chg, err);
    meta = NULL;                       /* stolen by the commit */
out:
    json_decref(meta);
    cf_offsets_free(&have);
    return rc;
}

/* ---- commit ------------------------------------------------------------- */


typedef struct plan {
    uint32_t *rows;          /* rows to write, in batch order */
    size_t    nrows;
    posdel   *dels;          /* rows of existing files to retire */
    size_t    ndels, adels;
    cf_buf    keys;          /* upsert: key of each written row, then of each removed key */
    size_t   *koff, *klen;   /* keys: nrows written, then nremoved removed */
    size_t    nremoved;
    int64_t  *old;           /* per written row: index in dels of the row it retires, -1 none */
    int64_t  *prev;          /* per batch row: the row of its key before it in the batch, -1 */
    cf_batch *img;           /* the rows to write when some kept their old cells, or NULL */
} plan;

static void plan_free(plan *p)
{
    free(p->rows);
    free(p->dels);
    free(p->koff);
    free(p->klen);
    free(p->old);
    free(p->prev);
    cf_buf_free(&p->keys);
    cf_batch_free(p->img);
}

static int add_del(plan *p, int32_t file, int64_t pos, const char *path, cf_err *err)
{
    if (p->ndels == p->adels) {
        size_t na = p->adels ? p->adels * 2 : 256;
        posdel *nd = realloc(p->dels, sizeof *nd * na);
        if (!nd)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        p->dels = nd;
        p->adels = na;
    }
    p->dels[p->ndels++] = (posdel){ file, pos, path };
    return 0;
}

/* Upsert: last event per key by LSN (batch order breaks ties); each winner
 * retires the key's live row; non-deletes (or soft deletes) write a row. */
static int plan_upsert(ice *s, const cf_commit *c, plan *p, cf_err *err)
{
    const cf_batch *b = c->rows;
    cf_ice_kmap *last = cf_ice_kmap_new(0);
    cf_buf key;
    size_t *rowkey = NULL, nk = b->nrows * 2 + 1;
    int rc = -1;

    cf_buf_init(&key, 0);
    if (!last || !(rowkey = malloc(sizeof *rowkey * nk)) ||
        !(p->koff = malloc(sizeof *p->koff * nk)) || !(p->klen = malloc(sizeof *p->klen * nk)) ||
        !(p->old = malloc(sizeof *p->old * nk)) || !(p->prev = malloc(sizeof *p->prev * nk))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->nrows; i++) {
        int32_t a;
        int64_t prev;
        cf_buf_reset(&key);
        if (cf_ice_key_of(b, s->pk, s->npk, i, &key, err))
            goto out;
        p->prev[i] = -1;
        if (cf_ice_kmap_get(last, key.data, key.len, &a, &prev)) {
            /* later LSN wins; unknown LSNs go by row order, as in Delta */
            int64_t lp = cf_commit_lsn(c, (size_t)prev), li = cf_commit_lsn(c, i);
            if (lp >= 0 && li >= 0 && lp > li)
                continue;
            p->prev[i] = prev;
        }
        if (cf_ice_kmap_put(last, key.data, key.len, 0, (int64_t)i, err))
            goto out;
    }
    for (size_t i = 0; i < b->nrows; i++) {
        int32_t a, fno;
        int64_t win, pos;
        size_t off;
        cf_buf_reset(&key);
        if (cf_ice_key_of(b, s->pk, s->npk, i, &key, err))
            goto out;
        if (!cf_ice_kmap_get(last, key.data, key.len, &a, &win) || (size_t)win != i)
            continue;
        cf_ice_kmap_del(last, key.data, key.len);   /* a key wins once */
        int64_t retired = -1;
        if (cf_ice_kmap_get(s->idx, key.data, key.len, &fno, &pos)) {
            if (add_del(p, fno, pos, s->files[fno].path, err))
                goto out;
            retired = (int64_t)p->ndels - 1;
        }
        off = p->keys.len;
        if (cf_buf_append(&p->keys, key.data, key.len, err))
            goto out;
        if (cf_commit_is_delete(c, i) && !s->sink->cfg.soft_deletes) {
            rowkey[b->nrows + p->nremoved] = off;
            p->klen[b->nrows + p->nremoved++] = key.len;
            continue;
        }
        rowkey[p->nrows] = off;
        p->klen[p->nrows] = key.len;
        p->old[p->nrows] = retired;
        p->rows[p->nrows++] = (uint32_t)i;
    }
    /* Written rows' keys first, then removed keys. */
    for (size_t i = 0; i < p->nrows; i++)
        p->koff[i] = rowkey[i];
    for (size_t i = 0; i < p->nremoved; i++) {
        p->koff[p->nrows + i] = rowkey[b->nrows + i];
        p->klen[p->nrows + i] = p->klen[b->nrows + i];
    }
    rc = 0;
out:
    cf_ice_kmap_free(last);
    cf_buf_free(&key);
    free(rowkey);
    return rc;
}

/* Reading back the rows a commit retires, for the cells it keeps. */
typedef struct keep_ctx {
    cf_ice_kmap *want;      /* (file number, position) -> written row */
    int32_t      fno;       /* the file being read */
    cf_batch    *old;       /* the rows found, table schema */
    int64_t     *at;        /* per written row: its row in `old`, -1 */
} keep_ctx;

static int keep_row_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *positions, cf_err *err)
{
    keep_ctx *k = ctx;
    for (size_t r = 0; r < rows->nrows; r++) {
        int64_t key[2] = { k->fno, positions[r] }, wi;
        int32_t unused;
        if (!cf_ice_kmap_get(k->want, key, sizeof key, &unused, &wi))
            continue;
        k->at[wi] = (int64_t)k->old->nrows;
        if (cf_batch_copy_row(k->old, rows, r, err))
            return -1;
    }
    return 0;
}

/* Unchanged TOAST (REPLICA IDENTITY DEFAULT): a written row whose cells
 * Debezium left out keeps, there, the values of the row it retires.  The
 * retired rows are read back from their data files and the rows to write
 * are copied into p->img with those cells filled (p->rows then index it). */
static int keep_unavailable(ice *s, const cf_commit *c, plan *p, cf_err *err)
{
    const cf_batch *b = c->rows;
    keep_ctx k = { 0 };
    cf_schema *cur = NULL;
    uint8_t *has = NULL;
    int *tcol = NULL, rc = -1;
    bool any = false;

    if (!c->unavail || !c->unavail->n || !p->nrows)
        return 0;
    if (!(has = calloc(b->nrows + 1, 1)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->unavail->n; i++)
        if (c->unavail->v[i].row < b->nrows)
            has[c->unavail->v[i].row] = 1;
    if (!(k.want = cf_ice_kmap_new(0)) || !(k.at = malloc(sizeof *k.at * p->nrows))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->nrows; i++) {
        k.at[i] = -1;
        any |= has[p->rows[i]];
        if (has[p->rows[i]] && p->old[i] >= 0) {
            const posdel *d = &p->dels[p->old[i]];
            int64_t key[2] = { d->file, d->pos };
            if (cf_ice_kmap_put(k.want, key, sizeof key, 0, (int64_t)i, err))
                goto out;
        }
    }
    if (!any) {
        rc = 0;
        goto out;
    }
    if (s->t.meta && (!(cur = cf_ice_schema_from_json(s->t.meta, -1, err)) || !(k.old = cf_batch_new(cur, err))))
        goto out;
    for (size_t d = 0; cur && d < p->ndels; d++) {
        bool first = true;
        /* each data file once: the deletes of one file are adjacent only
         * by chance, so look back for an earlier one */
        for (size_t e = 0; e < d && first; e++)
            first = p->dels[e].file != p->dels[d].file;
        if (!first)
            continue;
        cf_ice_file f = { .content = 0, .path = (char *)s->files[p->dels[d].file].path };
        k.fno = p->dels[d].file;
        if (cf_ice_scan_files(s->store, &f, 1, cur, NULL, 0, keep_row_fn, &k, err))
            goto out;
    }
    if (!(tcol = malloc(sizeof *tcol * ((size_t)b->ncols + 1))) || !(p->img = cf_batch_new(b->schema, err))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (int j = 0; j < b->ncols; j++)
        tcol[j] = cur ? cf_schema_find(cur, b->schema->fields[j].name) : -1;
    for (size_t i = 0; i < p->nrows; i++) {
        size_t r = p->rows[i];
        for (int j = 0; j < b->ncols; j++) {
            const cf_column *src = &b->cols[j];
            size_t sr = r;
            if (has[r] && cf_cells_has(c->unavail, r, j)) {
                /* an earlier row of the batch, or the row the table holds */
                int64_t q = cf_commit_toast_source(c, p->prev, r, j);
                if (q >= 0) {
                    sr = (size_t)q;
                } else if (q == -1 && k.at[i] >= 0 && tcol[j] >= 0) {
                    src = &k.old->cols[tcol[j]];
                    sr = (size_t)k.at[i];
                }
            }
            if (cf_col_copy(&p->img->cols[j], i, src, sr, err))
                goto out;
        }
        if (cf_batch_end_row(p->img, err))
            goto out;
        p->rows[i] = (uint32_t)i;
    }
    rc = 0;
out:
    if (rc) {
        cf_batch_free(p->img);
        p->img = NULL;
    }
    cf_ice_kmap_free(k.want);
    cf_batch_free(k.old);
    cf_schema_free(cur);
    free(k.at);
    free(has);
    free(tcol);
    return rc;
}

/* Rows per data file for a target size: the batch's average uncompressed
 * row size decides.  SIZE_MAX when no target is set. */
static size_t rows_per_file(const cf_batch *b, int64_t target)
{
    size_t row = 1;
    if (target <= 0 || b->nrows == 0)
        return SIZE_MAX;
    for (int c = 0; c < b->ncols; c++) {
        const cf_column *col = &b->cols[c];
        row += cf_type_is_varlen(col->type) ? col->data.len / b->nrows + 4 : cf_col_width(col) + 1;
    }
    return (size_t)target / row > 0 ? (size_t)target / row : 1;
}

/* Bytes that identify a partition tuple (into out, reset first). */
static int pvals_key(const cf_ice_pval *v, int n, cf_buf *out, cf_err *err)
{
    cf_buf_reset(out);
    for (int k = 0; k < n; k++) {
        uint8_t tag = v[k].null ? 0 : v[k].s ? 2 : 1;
        if (cf_buf_putc(out, tag, err))
            return -1;
        if (tag == 1 && cf_buf_append(out, &v[k].i, sizeof v[k].i, err))
            return -1;
        if (tag == 2) {
            uint32_t len = (uint32_t)v[k].n;
            if (cf_buf_append(out, &len, sizeof len, err) || cf_buf_append(out, v[k].s, v[k].n, err))
                return -1;
        }
    }
    return 0;
}

/* Position deletes grouped by the partition of the data files they name:
 * one delete file per partition, appended to added[]. */
static int write_delete_files(ice *s, plan *p, cf_ice_file *added, int *nadded, cf_err *err)
{
    posdel *sorted = malloc(sizeof *sorted * p->ndels);
    int32_t *grp = malloc(sizeof *grp * p->ndels);
    size_t *start = NULL;
    int *first = NULL, ngroups = 0, rc = -1;
    cf_ice_kmap *gmap = cf_ice_kmap_new(0);
    cf_buf key = { 0 };

    if (!sorted || !grp || !gmap) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    /* Number the partitions of the named data files... */
    for (size_t i = 0; i < p->ndels; i++) {
        const struct ifile *fi = &s->files[p->dels[i].file];
        int64_t unused;
        if (pvals_key(fi->part, fi->npart, &key, err))
            goto out;
        if (!cf_ice_kmap_get(gmap, key.data, key.len, &grp[i], &unused)) {
            int *nf = realloc(first, sizeof *nf * (size_t)(ngroups + 1));
            if (!nf) {
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto out;
            }
            first = nf;
            first[ngroups] = (int)i;
            grp[i] = ngroups++;
            if (cf_ice_kmap_put(gmap, key.data, key.len, grp[i], 0, err))
                goto out;
        }
    }
    /* ...then lay the deletes out partition by partition (counting sort). */
    if (!(start = calloc((size_t)ngroups + 1, sizeof *start))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->ndels; i++)
        start[grp[i] + 1]++;
    for (int g = 0; g < ngroups; g++)
        start[g + 1] += start[g];
    {
        size_t *fill = calloc((size_t)ngroups + 1, sizeof *fill);
        if (!fill) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < p->ndels; i++)
            sorted[start[grp[i]] + fill[grp[i]]++] = p->dels[i];
        free(fill);
    }
    for (int g = 0; g < ngroups; g++) {
        if (write_delete_file(s, sorted + start[g], start[g + 1] - start[g],
                              &s->files[p->dels[first[g]].file], &added[*nadded], err))
            goto out;
        (*nadded)++;
    }
    rc = 0;
out:
    free(sorted);
    free(grp);
    free(start);
    free(first);
    cf_ice_kmap_free(gmap);
    cf_buf_free(&key);
    return rc;
}

/* Rows of one partition value, written to consecutive files of `added`. */
typedef struct pgroup { cf_ice_pval part[16]; uint32_t *rows; size_t n; int file; } pgroup;

/* The commit staged by ice_stage() for ice_publish(). */
typedef struct staged {
    const cf_batch *b;
    plan          p;
    cf_ice_file  *added;
    int           nadded;
    pgroup       *groups;
    int           ngroups;
    int          *group_of;
    int64_t      *pos_in_file;
    size_t        max_rows;
    cf_ice_kmap  *bkeys;        /* upsert: the batch's keys, to see other writers touch them */
    int64_t       sid;          /* the snapshot it becomes */
    cf_ice_mlist  newm;         /* its manifests, written once, reused by retries */
    bool          noop;
    bool          lost;         /* the last publish lost a race: re-read the table first */
} staged;

static void staged_free(ice *s, bool remove_files)
{
    staged *st = s->st;

    if (!st)
        return;
    for (int i = 0; remove_files && i < st->nadded; i++)
        if (st->added[i].path)
            cf_store_delete(s->store, st->added[i].path, NULL);
    for (int i = 0; remove_files && i < st->newm.n; i++)
        cf_store_delete(s->store, st->newm.v[i].path, NULL);
    for (int g = 0; g < st->ngroups; g++) {
        cf_ice_pvals_clear(st->groups[g].part, s->spec.nfields);
        free(st->groups[g].rows);
    }
    free(st->groups);
    free(st->group_of);
    free(st->pos_in_file);
    if (st->added)
        cf_ice_files_free(st->added, st->nadded);
    cf_ice_kmap_free(st->bkeys);
    cf_ice_mlist_free(&st->newm);
    plan_free(&st->p);
    free(st);
    s->st = NULL;
}

/* Group the rows to write by partition value into st->groups. */
static int group_rows(ice *s, staged *st, cf_err *err)
{
    const cf_batch *b = st->b;
    plan *p = &st->p;
    cf_ice_kmap *gmap = cf_ice_kmap_new(0);
    cf_buf pkey;
    int rc = -1;

    cf_buf_init(&pkey, 0);
    st->group_of = malloc(sizeof *st->group_of * (p->nrows + 1));
    st->pos_in_file = malloc(sizeof *st->pos_in_file * (p->nrows + 1));
    st->added = calloc(p->nrows + p->ndels + 2, sizeof *st->added);   /* a file holds at least a row */
    if (!gmap || !st->group_of || !st->pos_in_file || !st->added) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p->nrows; i++) {
        cf_ice_pval pv[16];
        int32_t g;
        int64_t unused;
        /* Partition tuples are looked up by their bytes: a batch may span
         * thousands of partitions. */
        if (cf_ice_partition_of(&s->spec, b, s->src_col, p->rows[i], pv, err) ||
            pvals_key(pv, s->spec.nfields, &pkey, err)) {
            cf_ice_pvals_clear(pv, s->spec.nfields);
            goto out;
        }
        if (!cf_ice_kmap_get(gmap, pkey.data, pkey.len, &g, &unused)) {
            pgroup *ng = realloc(st->groups, sizeof *ng * (size_t)(st->ngroups + 1));
            if (!ng || !(ng[st->ngroups].rows = malloc(sizeof(uint32_t) * p->nrows))) {
                if (ng)
                    st->groups = ng;
                cf_ice_pvals_clear(pv, s->spec.nfields);
                cf_err_set(err, CF_E_NOMEM, "out of memory");
                goto out;
            }
            st->groups = ng;
            memcpy(st->groups[st->ngroups].part, pv, sizeof pv);
            st->groups[st->ngroups].n = 0;
            g = st->ngroups++;
            if (cf_ice_kmap_put(gmap, pkey.data, pkey.len, g, 0, err))
                goto out;
        } else
            cf_ice_pvals_clear(pv, s->spec.nfields);
        st->group_of[i] = g;
        st->pos_in_file[i] = (int64_t)st->groups[g].n;
        st->groups[g].rows[st->groups[g].n++] = p->rows[i];
    }
    rc = 0;
out:
    cf_ice_kmap_free(gmap);
    cf_buf_free(&pkey);
    return rc;
}

/* Write the data and delete files of `c` against the newest table state. */
static int ice_stage(cf_sink *sk, const cf_commit *c, cf_err *err)
{
    ice *s = sk->impl;
    const cf_batch *b = c->rows && c->rows->nrows ? c->rows : NULL;
    bool upsert = sk->cfg.mode == CF_MODE_UPSERT;
    staged *st;

    staged_free(s, false);
    if (!(st = s->st = calloc(1, sizeof *st)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    cf_buf_init(&st->p.keys, 0);
    st->sid = cf_ice_new_snapshot_id();
    st->b = b;
    if (refresh(s, err))
        return -1;
    {
        /* Refuse early what the publish would refuse anyway. */
        cf_offsets have = { 0 };
        int rc = meta_offsets(s, s->t.meta, &have, err);
        if (rc == 0)
            rc = cf_commit_fence(c, &have, s->t.location, err);
        if (rc == 0 && !b) {
            st->noop = true;
            for (int i = 0; c->end && i < c->end->n; i++)
                if (cf_offsets_get(&have, c->end->v[i].topic, c->end->v[i].partition) != c->end->v[i].next_offset)
                    st->noop = false;
            st->noop |= !s->t.meta;     /* a table is created by its first rows */
        }
        cf_offsets_free(&have);
        if (rc || !b)
            return rc;
    }
    if (bind(s, b->schema, c, err))
        return -1;
    if (!s->t.meta) {
        /* A catalog that assigns field ids when it creates a table (REST)
         * creates it now, so that the files below carry its ids: bound
         * again to the table it made. */
        json_t *doc = new_table_doc(s);
        int rc = doc ? cf_ice_catalog_create(s->cat, &s->t, doc, err)
                     : cf_err_set(err, CF_E_NOMEM, "out of memory");
        json_decref(doc);
        if (rc || (s->t.meta && bind(s, b->schema, c, err)))
            return -1;
    }
    if (upsert) {
        bool rebuilt;
        if (!s->index_ready && rebuild_index(s, err))
            return -1;
        if (s->t.meta && index_catch_up(s, cf_ice_current_snapshot_id(s->t.meta), NULL, NULL, &rebuilt, err))
            return cf_err_wrap(err, "key index");
    }
    if (!(st->p.rows = malloc(sizeof *st->p.rows * b->nrows)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (upsert) {
        if (plan_upsert(s, c, &st->p, err) || keep_unavailable(s, c, &st->p, err))
            return -1;
        if (st->p.img)
            st->b = b = st->p.img;
        if (!(st->bkeys = cf_ice_kmap_new(0)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        for (size_t i = 0; i < st->p.nrows + st->p.nremoved; i++)
            if (cf_ice_kmap_put(st->bkeys, st->p.keys.data + st->p.koff[i], st->p.klen[i], 0, 0, err))
                return -1;
    } else {
        for (size_t i = 0; i < b->nrows; i++)
            st->p.rows[i] = (uint32_t)i;
        st->p.nrows = b->nrows;
    }
    if (group_rows(s, st, err))
        return -1;
    /* One file per partition, cut at target_file_bytes when set (judged on
     * uncompressed size, so files come out smaller than the target). */
    st->max_rows = rows_per_file(b, sk->cfg.target_file_bytes);
    for (int g = 0; g < st->ngroups; g++) {
        st->groups[g].file = st->nadded;
        for (size_t from = 0; from < st->groups[g].n; from += st->max_rows) {
            size_t n = st->groups[g].n - from < st->max_rows ? st->groups[g].n - from : st->max_rows;
            if (write_data_file(s, b, st->groups[g].rows + from, n, st->groups[g].part,
                                &st->added[st->nadded], err))
                return -1;
            st->nadded++;
        }
    }
    if (st->p.ndels && write_delete_files(s, &st->p, st->added, &st->nadded, err))
        return -1;
    /* The files must be durable, names included, before a snapshot names
     * them. */
    {
        char **paths = malloc(sizeof *paths * ((size_t)st->nadded + 1));
        int rc;
        if (!paths)
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        for (int i = 0; i < st->nadded; i++)
            paths[i] = st->added[i].path;
        rc = cf_store_sync(s->store, s->t.location, paths, (size_t)st->nadded, err);
        free(paths);
        return rc;
    }
}

/* Committed: now the index may learn where the rows live. */
static void index_after_commit(ice *s, int64_t parent)
{
    staged *st = s->st;
    bool rebuilt = false;
    cf_err e;

    if (!st->b || s->sink->cfg.mode != CF_MODE_UPSERT || !s->index_ready)
        return;
    /* Snapshots of other writers we committed on top of come first. */
    if (index_catch_up(s, parent, NULL, NULL, &rebuilt, &e)) {
        s->index_ready = false;
        return;
    }
    if (rebuilt) {
        /* rebuilt from the current snapshot, ours included */
        return;
    }
    for (size_t k = 0; k < st->p.nremoved; k++) {
        size_t idx = st->p.nrows + k;
        cf_ice_kmap_del(s->idx, st->p.keys.data + st->p.koff[idx], st->p.klen[idx]);
    }
    for (size_t i = 0; i < st->p.nrows; i++) {
        /* Rows of a group fill its files in order, max_rows each. */
        size_t at = (size_t)st->pos_in_file[i];
        const cf_ice_file *nf = &st->added[st->groups[st->group_of[i]].file + (int)(at / st->max_rows)];
        int fno = file_number(s, nf->path, nf->part, nf->npart, NULL);
        if (fno < 0 || cf_ice_kmap_put(s->idx, st->p.keys.data + st->p.koff[i], st->p.klen[i],
                                       fno, (int64_t)(at % st->max_rows), NULL)) {
            /* The batch is in the table, so the commit stands (a retry
             * would apply it twice); the index is rebuilt next time. */
            s->index_ready = false;
            return;
        }
    }
    s->idx_snap = st->sid;
}

static int ice_publish(cf_sink *sk, const cf_commit *c, int64_t *version, cf_err *err)
{
    ice *s = sk->impl;
    staged *st = s->st;
    int64_t parent;
    cf_err e = { 0 };

    if (st->noop) {
        if (version)
            *version = s->t.version;
        staged_free(s, false);
        return 0;
    }
    if (st->lost) {
        /* Somebody else committed first: see what they did. */
        bool hit = false, rebuilt = false;
        st->lost = false;
        cf_ice_table_free(&s->t);
        if (cf_ice_catalog_load(s->cat, &s->t, err))
            return -1;
        if (st->bkeys && s->index_ready && s->t.meta &&
            index_catch_up(s, cf_ice_current_snapshot_id(s->t.meta), st->bkeys, &hit, &rebuilt, err))
            return -1;
        if (hit)
            return cf_err_set(err, CF_E_STALE, "%s: another writer rewrote files or wrote keys of this batch",
                              s->t.location);
    }
    parent = s->t.meta ? cf_ice_current_snapshot_id(s->t.meta) : -1;
    if (commit_once(s, st->added, st->nadded, c, st->sid, &st->newm, &e)) {
        if (e.code == CF_E_CONFLICT)
            st->lost = true;
        if (err)
            *err = e;
        return -1;
    }
    index_after_commit(s, parent);
    if (version)
        *version = s->t.version;
    staged_free(s, false);
    return 0;
}

static void ice_abort(cf_sink *sk)
{
    /* Files written for a failed commit are orphans: nothing refers to
     * them.  Remove what we can; a crash leaves them for expire. */
    staged_free(sk->impl, true);
}

const cf_sink_ops cf_iceberg_sink_ops = {
    "iceberg", ice_open, ice_offsets, ice_stage, ice_publish, ice_abort, ice_close,
};
