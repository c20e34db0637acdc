/* checkpoint.c - classic single-file Parquet checkpoints of the Delta log
 * (the protocol's V1 checkpoint schema: txn, add, remove, metaData and
 * protocol columns, one action per row) and _last_checkpoint.
 *
 * Remove tombstones of the last 7 days are kept (they tell other tools'
 * vacuum what recent versions still need).
 *
 * Reading takes any V1 checkpoint (ours, delta-rs's, Spark's; single-file or
 * multi-part): each row becomes the JSON action it stands for and goes
 * through the same replay as a commit line, so both paths check the same
 * things (protocol features, deletion vectors). */
#include "table/delta/delta_int.h"
#include "util/id.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* delta.deletedFileRetentionDuration's default: one week */
#define TOMBSTONE_RETENTION_MS (7LL * 24 * 3600 * 1000)

/* ---- the checkpoint schema ------------------------------------------- */

#define T_STR  { CF_T_STRING, 0, 0 }
#define T_I64  { CF_T_INT64, 0, 0 }
#define T_I32  { CF_T_INT32, 0, 0 }
#define T_BOOL { CF_T_BOOL, 0, 0 }
#define LEAF(n, t) { .name = n, .rep = CF_PQ_OPTIONAL, .type = t }
#define KV(kname)                                                                  \
    static const cf_pq_node kname##_kv[] = {                                       \
        { .name = "key", .rep = CF_PQ_REQUIRED, .type = T_STR },                   \
        { .name = "value", .rep = CF_PQ_OPTIONAL, .type = T_STR },                 \
    };                                                                             \
    static const cf_pq_node kname[] = {                                            \
        { .name = "key_value", .rep = CF_PQ_REPEATED, .nchildren = 2, .children = kname##_kv }, \
    }

KV(add_pv);
KV(rm_pv);
KV(fmt_opts);
KV(md_conf);

static const cf_pq_node txn_f[] = { LEAF("appId", T_STR), LEAF("version", T_I64), LEAF("lastUpdated", T_I64) };
/* the deletion vector descriptor, in add and in remove */
static const cf_pq_node dv_f[] = {
    LEAF("storageType", T_STR), LEAF("pathOrInlineDv", T_STR), LEAF("offset", T_I32),
    LEAF("sizeInBytes", T_I32), LEAF("cardinality", T_I64),
};
static const cf_pq_node add_f[] = {
    LEAF("path", T_STR),
    { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = add_pv, .logical = "map" },
    LEAF("size", T_I64), LEAF("modificationTime", T_I64), LEAF("dataChange", T_BOOL), LEAF("stats", T_STR),
    { .name = "deletionVector", .rep = CF_PQ_OPTIONAL, .nchildren = 5, .children = dv_f },
};
static const cf_pq_node rm_f[] = {
    LEAF("path", T_STR), LEAF("deletionTimestamp", T_I64), LEAF("dataChange", T_BOOL),
    LEAF("extendedFileMetadata", T_BOOL),
    { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = rm_pv, .logical = "map" },
    LEAF("size", T_I64),
    { .name = "deletionVector", .rep = CF_PQ_OPTIONAL, .nchildren = 5, .children = dv_f },
};
static const cf_pq_node fmt_f[] = {
    LEAF("provider", T_STR),
    { .name = "options", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = fmt_opts, .logical = "map" },
};
static const cf_pq_node pc_elem[] = { LEAF("element", T_STR) };
static const cf_pq_node pc_list[] = {
    { .name = "list", .rep = CF_PQ_REPEATED, .nchildren = 1, .children = pc_elem },
};
static const cf_pq_node md_f[] = {
    LEAF("id", T_STR), LEAF("name", T_STR), LEAF("description", T_STR),
    { .name = "format", .rep = CF_PQ_OPTIONAL, .nchildren = 2, .children = fmt_f },
    LEAF("schemaString", T_STR),
    { .name = "partitionColumns", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = pc_list, .logical = "list" },
    { .name = "configuration", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = md_conf, .logical = "map" },
    LEAF("createdTime", T_I64),
};
static const cf_pq_node rf_elem[] = { LEAF("element", T_STR) };
static const cf_pq_node rf_list[] = {
    { .name = "list", .rep = CF_PQ_REPEATED, .nchildren = 1, .children = rf_elem },
};
static const cf_pq_node wf_elem[] = { LEAF("element", T_STR) };
static const cf_pq_node wf_list[] = {
    { .name = "list", .rep = CF_PQ_REPEATED, .nchildren = 1, .children = wf_elem },
};
static const cf_pq_node proto_f[] = {
    LEAF("minReaderVersion", T_I32), LEAF("minWriterVersion", T_I32),
    { .name = "readerFeatures", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = rf_list, .logical = "list" },
    { .name = "writerFeatures", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = wf_list, .logical = "list" },
};
static const cf_pq_node top[] = {
    { .name = "txn", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = txn_f },
    { .name = "add", .rep = CF_PQ_OPTIONAL, .nchildren = 7, .children = add_f },
    { .name = "remove", .rep = CF_PQ_OPTIONAL, .nchildren = 7, .children = rm_f },
    { .name = "metaData", .rep = CF_PQ_OPTIONAL, .nchildren = 8, .children = md_f },
    { .name = "protocol", .rep = CF_PQ_OPTIONAL, .nchildren = 4, .children = proto_f },
};
static const cf_pq_node root_node = { .name = "spark_schema", .rep = CF_PQ_REQUIRED, .nchildren = 5, .children = top };

/* Leaves, depth first. */
enum {
    TXN_APP, TXN_VER, TXN_UPD,
    ADD_PATH, ADD_PVK, ADD_PVV, ADD_SIZE, ADD_MTIME, ADD_DC, ADD_STATS,
    ADD_DV_TYPE, ADD_DV_PATH, ADD_DV_OFF, ADD_DV_SIZE, ADD_DV_CARD,
    RM_PATH, RM_DTS, RM_DC, RM_EXT, RM_PVK, RM_PVV, RM_SIZE,
    RM_DV_TYPE, RM_DV_PATH, RM_DV_OFF, RM_DV_SIZE, RM_DV_CARD,
    MD_ID, MD_NAME, MD_DESC, MD_PROV, MD_OPTK, MD_OPTV, MD_SCHEMA, MD_PC, MD_CONFK, MD_CONFV, MD_CTIME,
    PR_R, PR_W, PR_RF, PR_WF,
    NLEAVES
};
static const cf_type_id leaf_type[NLEAVES] = {
    CF_T_STRING, CF_T_INT64, CF_T_INT64,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT64, CF_T_INT64, CF_T_BOOL, CF_T_STRING,
    CF_T_STRING, CF_T_STRING, CF_T_INT32, CF_T_INT32, CF_T_INT64,
    CF_T_STRING, CF_T_INT64, CF_T_BOOL, CF_T_BOOL, CF_T_STRING, CF_T_STRING, CF_T_INT64,
    CF_T_STRING, CF_T_STRING, CF_T_INT32, CF_T_INT32, CF_T_INT64,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT64,
    CF_T_INT32, CF_T_INT32, CF_T_STRING, CF_T_STRING,
};
/* first and last leaf of each top-level group */
static const int group_span[5][2] = {
    { TXN_APP, TXN_UPD }, { ADD_PATH, ADD_DV_CARD }, { RM_PATH, RM_DV_CARD }, { MD_ID, MD_CTIME }, { PR_R, PR_WF },
};

typedef struct leaf {
    int16_t   *def, *rep;
    size_t     n, alloc;
    cf_schema *s;
    cf_batch  *vals;
} leaf;

typedef struct ckw {
    leaf   l[NLEAVES];
    cf_err *err;
    int    failed;
} ckw;

static void lput(ckw *w, int i, int16_t def, int16_t rep)
{
    leaf *l = &w->l[i];
    if (w->failed)
        return;
    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 256;
        int16_t *d = realloc(l->def, na * sizeof *d);
        if (d)
            l->def = d;
        int16_t *r = realloc(l->rep, na * sizeof *r);
        if (r)
            l->rep = r;
        if (!d || !r) {
            w->failed = 1;
            cf_err_set(w->err, CF_E_NOMEM, "out of memory writing a checkpoint");
            return;
        }
        l->alloc = na;
    }
    l->def[l->n] = def;
    l->rep[l->n] = rep;
    l->n++;
}

static void lstr(ckw *w, int i, int16_t def, int16_t rep, const char *s)
{
    lput(w, i, def, rep);
    cf_column *c = &w->l[i].vals->cols[0];
    if (!w->failed && cf_col_set_bytes(c, c->n, s, strlen(s), w->err))
        w->failed = 1;
}

static void li64(ckw *w, int i, int16_t def, int64_t v)
{
    lput(w, i, def, 0);
    cf_column *c = &w->l[i].vals->cols[0];
    if (!w->failed && cf_col_set_i64(c, c->n, v, w->err))
        w->failed = 1;
}

/* optional leaf directly in a top-level group (max def 2) */
static void opt_str(ckw *w, int i, const char *s)
{
    if (s)
        lstr(w, i, 2, 0, s);
    else
        lput(w, i, 1, 0);
}

/* a map<string,string> whose map node sits at definition level `d` (the
 * map defined = d; an entry = d + 1; a non-null value = d + 2) */
static void put_map(ckw *w, int k, int v, int16_t d, json_t *obj)
{
    const char *key;
    json_t *val;
    int16_t rep = 0;

    if (!json_is_object(obj)) {
        lput(w, k, (int16_t)(d - 1), 0);
        lput(w, v, (int16_t)(d - 1), 0);
        return;
    }
    if (!json_object_size(obj)) {
        lput(w, k, d, 0);
        lput(w, v, d, 0);
        return;
    }
    json_object_foreach(obj, key, val) {
        lstr(w, k, (int16_t)(d + 1), rep, key);
        if (json_is_string(val))
            lstr(w, v, (int16_t)(d + 2), rep, json_string_value(val));
        else
            lput(w, v, (int16_t)(d + 1), rep);
        rep = 1;
    }
}

static void pv_map(ckw *w, int k, int v, const cf_delta_pv *pv)
{
    if (!pv->n) {
        lput(w, k, 2, 0);
        lput(w, v, 2, 0);
        return;
    }
    for (int i = 0; i < pv->n; i++) {
        lstr(w, k, 3, (int16_t)(i ? 1 : 0), pv->keys[i]);
        if (pv->vals[i])
            lstr(w, v, 4, (int16_t)(i ? 1 : 0), pv->vals[i]);
        else
            lput(w, v, 3, (int16_t)(i ? 1 : 0));
    }
}

/* The deletion vector struct of an add or remove (leaves first..first+4):
 * the struct sits at definition level 2, its fields at 3. */
static void put_dv(ckw *w, int first, const cf_delta_dv *dv)
{
    if (!dv->type) {
        for (int i = 0; i < 5; i++)
            lput(w, first + i, 1, 0);
        return;
    }
    char t[2] = { dv->type, 0 };
    lstr(w, first, 3, 0, t);
    lstr(w, first + 1, 3, 0, dv->path);
    if (dv->has_offset)
        li64(w, first + 2, 3, dv->offset);
    else
        lput(w, first + 2, 2, 0);
    li64(w, first + 3, 3, dv->size);
    li64(w, first + 4, 3, dv->cardinality);
}

/* Every leaf outside group g gets a null for this row. */
static void others_null(ckw *w, int g)
{
    for (int k = 0; k < 5; k++)
        if (k != g)
            for (int i = group_span[k][0]; i <= group_span[k][1]; i++)
                lput(w, i, 0, 0);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int write_last_checkpoint(const cf_delta_snap *s, int64_t rows, int64_t adds, int64_t bytes,
                                 cf_err *err)
{
    char path[PATH_MAX], body[256];
    int n = snprintf(body, sizeof body,
                     "{\"version\":%" PRId64 ",\"size\":%" PRId64 ",\"sizeInBytes\":%" PRId64
                     ",\"numOfAddFiles\":%" PRId64 "}\n", s->version, rows, bytes, adds);

    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/_last_checkpoint", s->root);
    /* The hint may move forward only; a put replaces it atomically. */
    return cf_store_put(s->st, path, body, (size_t)n, err);
}

/* A list<string> directly in a top-level group: null (NULL), empty, or
 * its elements (a list defined = 2, an entry = 3, a non-null element = 4). */
static void put_list(ckw *w, int i, json_t *a)
{
    size_t k;
    json_t *e;

    if (!json_is_array(a)) {
        lput(w, i, 1, 0);
        return;
    }
    if (!json_array_size(a)) {
        lput(w, i, 2, 0);
        return;
    }
    json_array_foreach(a, k, e) {
        if (json_is_string(e))
            lstr(w, i, 4, (int16_t)(k ? 1 : 0), json_string_value(e));
        else
            lput(w, i, 3, (int16_t)(k ? 1 : 0));
    }
}

/* The protocol and metaData rows. */
static void put_protocol_metadata(ckw *w, const cf_delta_snap *s)
{
    json_t *m = s->metadata, *fmt = json_object_get(m, "format"), *pc = json_object_get(m, "partitionColumns");
    json_t *ct = json_object_get(m, "createdTime");

    others_null(w, 4);
    li64(w, PR_R, 2, s->min_reader);
    li64(w, PR_W, 2, s->min_writer);
    /* reader 3 and writer 7 list their features; older versions have none */
    put_list(w, PR_RF, s->min_reader >= 3 ? json_object_get(s->protocol, "readerFeatures") : NULL);
    put_list(w, PR_WF, s->min_writer >= 7 ? json_object_get(s->protocol, "writerFeatures") : NULL);
    others_null(w, 3);
    opt_str(w, MD_ID, jstr(m, "id"));
    opt_str(w, MD_NAME, jstr(m, "name"));
    opt_str(w, MD_DESC, jstr(m, "description"));
    if (json_is_object(fmt)) {
        if (jstr(fmt, "provider"))
            lstr(w, MD_PROV, 3, 0, jstr(fmt, "provider"));
        else
            lput(w, MD_PROV, 2, 0);
        put_map(w, MD_OPTK, MD_OPTV, 3, json_object_get(fmt, "options") ? json_object_get(fmt, "options")
                                                                       : json_object());
    } else {
        lput(w, MD_PROV, 1, 0);
        lput(w, MD_OPTK, 1, 0);
        lput(w, MD_OPTV, 1, 0);
    }
    opt_str(w, MD_SCHEMA, jstr(m, "schemaString"));
    if (json_is_array(pc))
        put_list(w, MD_PC, pc);
    else
        lput(w, MD_PC, 2, 0);   /* empty list */
    put_map(w, MD_CONFK, MD_CONFV, 2, json_object_get(m, "configuration") ? json_object_get(m, "configuration")
                                                                         : json_object());
    if (json_is_integer(ct))
        li64(w, MD_CTIME, 2, json_integer_value(ct));
    else
        lput(w, MD_CTIME, 1, 0);
}

/* The txn, remove (tombstone) and add rows; *rows and *adds count them. */
static void put_txns_and_files(ckw *w, const cf_delta_snap *s, int64_t *rows, int64_t *adds)
{
    for (int i = 0; i < s->ntxns; i++) {
        others_null(w, 0);
        lstr(w, TXN_APP, 2, 0, s->txns[i].app_id);
        li64(w, TXN_VER, 2, s->txns[i].version);
        li64(w, TXN_UPD, 2, s->txns[i].last_updated);
        (*rows)++;
    }
    /* remove tombstones younger than the default retention (7 days), for
     * vacuum by other tools */
    int64_t horizon = cf_now_ms() - TOMBSTONE_RETENTION_MS;
    for (size_t i = 0; i < s->nfiles; i++) {
        const cf_delta_file *f = &s->files[i];
        if (f->live || f->deleted_at < horizon)
            continue;
        others_null(w, 2);
        lstr(w, RM_PATH, 2, 0, f->path);
        li64(w, RM_DTS, 2, f->deleted_at);
        li64(w, RM_DC, 2, 1);
        li64(w, RM_EXT, 2, 1);
        pv_map(w, RM_PVK, RM_PVV, &f->pv);
        li64(w, RM_SIZE, 2, f->size);
        put_dv(w, RM_DV_TYPE, &f->dv);
        (*rows)++;
    }
    for (size_t i = 0; i < s->nfiles; i++) {
        const cf_delta_file *f = &s->files[i];
        if (!f->live)
            continue;
        others_null(w, 1);
        lstr(w, ADD_PATH, 2, 0, f->path);
        pv_map(w, ADD_PVK, ADD_PVV, &f->pv);
        li64(w, ADD_SIZE, 2, f->size);
        li64(w, ADD_MTIME, 2, f->mtime);
        li64(w, ADD_DC, 2, f->data_change);
        opt_str(w, ADD_STATS, f->stats);
        put_dv(w, ADD_DV_TYPE, &f->dv);
        (*rows)++;
        (*adds)++;
    }
}

/* Write the leaves as one row group of a Parquet file at path. */
static int write_parquet(const cf_delta_snap *s, ckw *w, const char *path, int64_t rows, cf_err *err)
{
    cf_pq_options opt;
    cf_pq_writer *pw;

    cf_pq_options_default(&opt);
    opt.write_field_ids = false;
    opt.dictionary = false;
    if (!(pw = cf_pq_writer_open_tree(s->st, path, &root_node, &opt, err)))
        return -1;
    for (int i = 0; i < NLEAVES; i++)
        if (cf_pq_writer_write_leaf(pw, i, w->l[i].def, w->l[i].rep, w->l[i].n, &w->l[i].vals->cols[0], err)) {
            cf_pq_writer_abort(pw);
            return -1;
        }
    if (cf_pq_writer_end_row_group(pw, rows, err)) {
        cf_pq_writer_abort(pw);
        return -1;
    }
    return cf_pq_writer_close(pw, NULL, err);
}

/* Publish the checkpoint of s: the Parquet writer creates a new object
 * and cannot replace one, but a checkpoint must replace atomically (a
 * writer that died may have left one of this version; readers must never
 * see half of it), so it is written under a dot name the log listing
 * skips, read back, and put whole.  *bytes gets its size. */
static int store_checkpoint(const cf_delta_snap *s, ckw *w, int64_t rows, int64_t *bytes, cf_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 64], id[37];
    cf_buf b;
    int rc;

    cf_uuid(id);
    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.parquet", s->root, s->version);
    snprintf(tmp, sizeof tmp, "%s/" CF_DELTA_LOG_DIR "/.%020" PRId64 ".checkpoint.%s.parquet.tmp", s->root,
             s->version, id);
    if (write_parquet(s, w, tmp, rows, err))
        return -1;
    cf_buf_init(&b, 0);
    rc = cf_store_get(s->st, tmp, &b, err);
    cf_store_delete(s->st, tmp, NULL);
    if (rc == 0)
        rc = cf_store_put(s->st, path, b.data, b.len, err);
    *bytes = (int64_t)b.len;
    cf_buf_free(&b);
    return rc;
}

int cf_delta_checkpoint_write(const cf_delta_snap *s, cf_err *err)
{
    ckw w = { .err = err };
    int64_t rows = 2, adds = 0, bytes = 0;   /* protocol and metaData */
    int rc = -1;

    if (s->version < 0 || !s->metadata)
        return cf_err_set(err, CF_E_ARG, "no table state to checkpoint");
    for (int i = 0; i < NLEAVES; i++) {
        cf_type t = { leaf_type[i], 0, 0 };
        if (!(w.l[i].s = cf_schema_new()) || cf_schema_add(w.l[i].s, "v", t, true, 0, err) < 0 ||
            !(w.l[i].vals = cf_batch_new(w.l[i].s, err))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
    }
    put_protocol_metadata(&w, s);
    put_txns_and_files(&w, s, &rows, &adds);
    if (!w.failed && store_checkpoint(s, &w, rows, &bytes, err) == 0)
        rc = write_last_checkpoint(s, rows, adds, bytes, err);
out:
    for (int i = 0; i < NLEAVES; i++) {
        free(w.l[i].def);
        free(w.l[i].rep);
        cf_batch_free(w.l[i].vals);
        cf_schema_free(w.l[i].s);
    }
    return rc;
}

/* ---- reading a checkpoint back ---------------------------------------- */

/* cap on the parts of a multi-part checkpoint we accept */
#define MAX_PARTS 10000

/* Flat leaves read per row group (no repeated ancestor: entry i = row i). */
enum {
    R_TXN_APP, R_TXN_VER, R_TXN_UPD,
    R_ADD_PATH, R_ADD_SIZE, R_ADD_MTIME, R_ADD_DC, R_ADD_STATS,
    R_ADD_DV, R_ADD_DV_PATH, R_ADD_DV_OFF, R_ADD_DV_SIZE, R_ADD_DV_CARD,
    R_RM_PATH, R_RM_DTS, R_RM_DC, R_RM_SIZE,
    R_RM_DV, R_RM_DV_PATH, R_RM_DV_OFF, R_RM_DV_SIZE, R_RM_DV_CARD,
    R_MD_ID, R_MD_NAME, R_MD_DESC, R_MD_PROV, R_MD_SCHEMA, R_MD_CTIME,
    R_PR_R, R_PR_W,
    R_NFLAT
};
static const char *const flat_name[R_NFLAT] = {
    "txn.appId", "txn.version", "txn.lastUpdated",
    "add.path", "add.size", "add.modificationTime", "add.dataChange", "add.stats",
    "add.deletionVector.storageType", "add.deletionVector.pathOrInlineDv", "add.deletionVector.offset",
    "add.deletionVector.sizeInBytes", "add.deletionVector.cardinality",
    "remove.path", "remove.deletionTimestamp", "remove.dataChange", "remove.size",
    "remove.deletionVector.storageType", "remove.deletionVector.pathOrInlineDv",
    "remove.deletionVector.offset", "remove.deletionVector.sizeInBytes", "remove.deletionVector.cardinality",
    "metaData.id", "metaData.name", "metaData.description", "metaData.format.provider",
    "metaData.schemaString", "metaData.createdTime",
    "protocol.minReaderVersion", "protocol.minWriterVersion",
};

/* Maps and lists, by the dotted prefix of their group: whatever the
 * writer named the repeated level ("key_value", "map", "list", "bag"). */
enum { M_ADD_PV, M_RM_PV, M_MD_CONF, M_MD_OPTS, L_MD_PC, L_PR_RF, L_PR_WF, R_NREP };
static const char *const rep_name[R_NREP] = {
    "add.partitionValues.", "remove.partitionValues.", "metaData.configuration.",
    "metaData.format.options.", "metaData.partitionColumns.", "protocol.readerFeatures.",
    "protocol.writerFeatures.",
};

typedef struct ckr {
    cf_pq_leaf_data flat[R_NFLAT];
    bool            has_flat[R_NFLAT];
    json_t        **rep[R_NREP];  /* per row: object (map) or array (list); NULL = none */
    size_t          nrows;
} ckr;

static bool fvalid(const ckr *c, int f, size_t row)
{
    const cf_pq_leaf_data *d = &c->flat[f];
    return c->has_flat[f] && row < d->n && (d->max_def == 0 || d->def[row] == d->max_def) &&
           cf_col_valid(&d->vals, row);
}

static json_t *fjson(const ckr *c, int f, size_t row)
{
    const cf_pq_leaf_data *d = &c->flat[f];
    size_t len;
    const uint8_t *b;

    if (!fvalid(c, f, row))
        return NULL;
    switch (d->vals.type.id) {
    case CF_T_STRING:
    case CF_T_BINARY:
        b = cf_col_bytes(&d->vals, row, &len);
        return json_stringn_nocheck((const char *)b, len);
    case CF_T_INT64: return json_integer(cf_col_i64(&d->vals, row));
    case CF_T_INT32: return json_integer(cf_col_i32(&d->vals, row));
    case CF_T_BOOL: return json_boolean(cf_col_bool(&d->vals, row));
    default: return NULL;   /* a type the protocol does not use here: as if absent */
    }
}

/* Set o[key] from flat leaf f of row, when valid. */
static int fset(json_t *o, const char *key, const ckr *c, int f, size_t row)
{
    json_t *v = fjson(c, f, row);
    return v ? json_object_set_new(o, key, v) : 0;
}

/* The leaves under `prefix`: a map has two (key, value), a list one. */
static int find_under(const cf_pq_reader *r, const char *prefix, int *leaves, int max)
{
    int n = 0, nl = cf_pq_reader_num_leaves(r);
    size_t pl = strlen(prefix);
    for (int i = 0; i < nl; i++) {
        const char *p = cf_pq_reader_leaf_path(r, i);
        if (p && !strncmp(p, prefix, pl)) {
            if (n == max)
                return -1;
            leaves[n++] = i;
        }
    }
    return n;
}

/* Turn a map (k, v) or list (k alone) leaf into one JSON value per row. */
static int rep_rows(const cf_pq_leaf_data *k, const cf_pq_leaf_data *v, size_t nrows, json_t **out,
                    const char *what, cf_err *err)
{
    int64_t row = -1;

    if (k->max_rep == 0 || (v && (v->n != k->n || v->max_rep != k->max_rep)))
        return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s is not a map or list", what);
    for (size_t i = 0; i < k->n; i++) {
        if (k->rep[i] == 0)
            row++;
        if (row < 0 || (size_t)row >= nrows)
            return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s has more rows than the row group",
                              what);
        if (k->def[i] != k->max_def || !cf_col_valid(&k->vals, i))
            continue;   /* null or empty map/list, or a null list element */
        if (k->vals.type.id != CF_T_STRING && k->vals.type.id != CF_T_BINARY)
            return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s is not of strings", what);
        size_t kl, vl;
        const char *kb = (const char *)cf_col_bytes(&k->vals, i, &kl);
        if (!out[row] && !(out[row] = v ? json_object() : json_array()))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        json_t *x;
        if (v) {
            if (memchr(kb, 0, kl))
                return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s has a NUL in a key", what);
            char *key = strndup(kb, kl);
            if (!key)
                return cf_err_set(err, CF_E_NOMEM, "out of memory");
            if (v->def[i] == v->max_def && cf_col_valid(&v->vals, i) &&
                (v->vals.type.id == CF_T_STRING || v->vals.type.id == CF_T_BINARY)) {
                const char *vb = (const char *)cf_col_bytes(&v->vals, i, &vl);
                x = json_stringn(vb, vl);
            } else {
                x = json_null();
            }
            int rc = x ? json_object_set_new(out[row], key, x) : -1;
            free(key);
            if (rc)
                return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s: a value is not UTF-8", what);
        } else {
            if (!(x = json_stringn(kb, kl)) || json_array_append_new(out[row], x))
                return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s: a value is not UTF-8", what);
        }
    }
    return 0;
}

static void ckr_clear(ckr *c)
{
    for (int f = 0; f < R_NFLAT; f++)
        cf_pq_leaf_data_free(&c->flat[f]);
    for (int m = 0; m < R_NREP; m++) {
        if (c->rep[m])
            for (size_t i = 0; i < c->nrows; i++)
                json_decref(c->rep[m][i]);
        free(c->rep[m]);
        c->rep[m] = NULL;
    }
    c->nrows = 0;
}

/* Load the leaves of row group rg. */
static int ckr_load(ckr *c, cf_pq_reader *r, int rg, cf_err *err)
{
    int64_t rows = cf_pq_reader_row_group_rows(r, rg);

    if (rows < 0)
        return cf_err_set(err, CF_E_CORRUPT, "checkpoint row group %d has no row count", rg);
    c->nrows = (size_t)rows;
    bool any = false;
    for (int f = 0; f < R_NFLAT; f++) {
        int li = cf_pq_reader_find_leaf(r, flat_name[f]);
        c->has_flat[f] = li >= 0;
        if (li < 0)
            continue;
        if (cf_pq_reader_read_leaf(r, rg, li, &c->flat[f], err))
            return cf_err_wrap(err, "checkpoint column %s", flat_name[f]);
        if (c->flat[f].max_rep != 0 || c->flat[f].n != c->nrows)
            return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %s: %zu entries for %zu rows",
                              flat_name[f], c->flat[f].n, c->nrows);
        any = true;
    }
    /* The row count is the footer's word; only a leaf read (bounded by the
     * file) vouches for it.  Without one, no row can be an action we keep. */
    if (!any) {
        c->nrows = 0;
        return 0;
    }
    for (int m = 0; m < R_NREP; m++) {
        int leaves[2], n = find_under(r, rep_name[m], leaves, 2);
        bool is_map = m < L_MD_PC;
        if (n <= 0)
            continue;
        if (n != (is_map ? 2 : 1))
            return cf_err_set(err, CF_E_CORRUPT, "checkpoint column %.*s has %d leaves", 
                              (int)strlen(rep_name[m]) - 1, rep_name[m], n);
        if (!(c->rep[m] = calloc(c->nrows ? c->nrows : 1, sizeof *c->rep[m])))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        cf_pq_leaf_data kd = { 0 }, vd = { 0 };
        int rc = cf_pq_reader_read_leaf(r, rg, leaves[0], &kd, err);
        if (!rc && is_map)
            rc = cf_pq_reader_read_leaf(r, rg, leaves[1], &vd, err);
        if (!rc)
            rc = rep_rows(&kd, is_map ? &vd : NULL, c->nrows, c->rep[m], rep_name[m], err);
        cf_pq_leaf_data_free(&kd);
        cf_pq_leaf_data_free(&vd);
        if (rc)
            return -1;
    }
    return 0;
}

/* The map or list of row `row` (a new reference), or a fresh empty one. */
static json_t *rget(const ckr *c, int m, size_t row)
{
    json_t *x = c->rep[m] ? c->rep[m][row] : NULL;
    if (x)
        return json_incref(x);
    return m < L_MD_PC ? json_object() : json_array();
}

/* The deletion vector descriptor of row (flat leaves first..first+4). */
static json_t *dv_object(const ckr *c, int first, size_t row)
{
    static const char *const key[5] = { "storageType", "pathOrInlineDv", "offset", "sizeInBytes", "cardinality" };
    json_t *dv = json_object();

    for (int i = 0; dv && i < 5; i++)
        fset(dv, key[i], c, first + i, row);
    return dv;
}

/* The action of row `row`, applied to s. */
static int apply_row(cf_delta_snap *s, const ckr *c, size_t row, cf_err *err)
{
    json_t *a = json_object(), *o = json_object();
    const char *kind = NULL;
    int rc;

    if (!a || !o)
        goto oom;
    if (fvalid(c, R_ADD_PATH, row)) {
        kind = "add";
        fset(o, "path", c, R_ADD_PATH, row);
        json_object_set_new(o, "partitionValues", rget(c, M_ADD_PV, row));
        fset(o, "size", c, R_ADD_SIZE, row);
        fset(o, "modificationTime", c, R_ADD_MTIME, row);
        fset(o, "dataChange", c, R_ADD_DC, row);
        fset(o, "stats", c, R_ADD_STATS, row);
        if (fvalid(c, R_ADD_DV, row))
            json_object_set_new(o, "deletionVector", dv_object(c, R_ADD_DV, row));
    } else if (fvalid(c, R_RM_PATH, row)) {
        /* A tombstone: keep it as a removed slot (our next checkpoint carries
         * it on for other tools' vacuum).  A live path wins. */
        json_t *p = fjson(c, R_RM_PATH, row);
        if (!p || !json_is_string(p) || cf_delta_snap_file(s, json_string_value(p))) {
            json_decref(p);
            goto done;
        }
        json_object_set_new(o, "path", p);
        json_object_set_new(o, "partitionValues", rget(c, M_RM_PV, row));
        fset(o, "size", c, R_RM_SIZE, row);
        if (fvalid(c, R_RM_DV, row))
            json_object_set_new(o, "deletionVector", dv_object(c, R_RM_DV, row));
        json_object_set_new(a, "add", o);
        rc = cf_delta_snap_apply_action(s, a, err);
        json_decref(a);   /* and o with it */
        if (rc)
            return -1;
        a = json_object();
        o = json_object();
        if (!a || !o)
            goto oom;
        kind = "remove";
        fset(o, "path", c, R_RM_PATH, row);
        fset(o, "deletionTimestamp", c, R_RM_DTS, row);
        fset(o, "dataChange", c, R_RM_DC, row);
        if (fvalid(c, R_RM_DV, row))
            json_object_set_new(o, "deletionVector", dv_object(c, R_RM_DV, row));
    } else if (fvalid(c, R_TXN_APP, row)) {
        kind = "txn";
        fset(o, "appId", c, R_TXN_APP, row);
        fset(o, "version", c, R_TXN_VER, row);
        fset(o, "lastUpdated", c, R_TXN_UPD, row);
    } else if (fvalid(c, R_MD_SCHEMA, row) || fvalid(c, R_MD_ID, row)) {
        json_t *fmt = json_object();
        kind = "metaData";
        fset(o, "id", c, R_MD_ID, row);
        fset(o, "name", c, R_MD_NAME, row);
        fset(o, "description", c, R_MD_DESC, row);
        if (fmt) {
            fset(fmt, "provider", c, R_MD_PROV, row);
            json_object_set_new(fmt, "options", rget(c, M_MD_OPTS, row));
            json_object_set_new(o, "format", fmt);
        }
        fset(o, "schemaString", c, R_MD_SCHEMA, row);
        json_object_set_new(o, "partitionColumns", rget(c, L_MD_PC, row));
        json_object_set_new(o, "configuration", rget(c, M_MD_CONF, row));
        fset(o, "createdTime", c, R_MD_CTIME, row);
    } else if (fvalid(c, R_PR_R, row)) {
        kind = "protocol";
        fset(o, "minReaderVersion", c, R_PR_R, row);
        fset(o, "minWriterVersion", c, R_PR_W, row);
        if (c->rep[L_PR_RF] && c->rep[L_PR_RF][row])
            json_object_set_new(o, "readerFeatures", rget(c, L_PR_RF, row));
        if (c->rep[L_PR_WF] && c->rep[L_PR_WF][row])
            json_object_set_new(o, "writerFeatures", rget(c, L_PR_WF, row));
    } else {
        goto done;   /* a row of an action we do not keep (domainMetadata, checkpointMetadata...) */
    }
    json_object_set_new(a, kind, o);
    rc = cf_delta_snap_apply_action(s, a, err);
    json_decref(a);
    return rc;
done:
    json_decref(o);
    json_decref(a);
    return 0;
oom:
    json_decref(o);
    json_decref(a);
    return cf_err_set(err, CF_E_NOMEM, "out of memory");
}

/* Apply every row of one checkpoint file (bytes in memory or a path). */
static int read_part(cf_delta_snap *s, cf_pq_reader *r, cf_err *err)
{
    ckr c = { 0 };
    int rc = 0;

    for (int rg = 0; rg < cf_pq_reader_num_row_groups(r) && !rc; rg++) {
        rc = ckr_load(&c, r, rg, err);
        for (size_t i = 0; !rc && i < c.nrows; i++)
            rc = apply_row(s, &c, i, err);
        ckr_clear(&c);
    }
    return rc;
}

int cf_delta_checkpoint_read_mem(cf_delta_snap *s, const void *data, size_t len, cf_err *err)
{
    cf_pq_reader *r = cf_pq_reader_open_mem(data, len, err);
    if (!r)
        return -1;
    int rc = read_part(s, r, err);
    cf_pq_reader_close(r);
    return rc;
}

/* The parts of multi-part checkpoints of one version found in a listing:
 * part p of n as (p, n). */
typedef struct part_list {
    const char *prefix;            /* "<20 digits>.checkpoint." */
    struct { unsigned p, n; } *v;
    size_t n, alloc;
} part_list;

static int parts_add(void *ctx, const char *path, const cf_store_stat *stat)
{
    part_list *ps = ctx;
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    size_t pl = strlen(ps->prefix);
    unsigned p, n;
    char tail[16];

    (void)stat;
    if (strncmp(name, ps->prefix, pl) || sscanf(name + pl, "%10u.%10u.%15s", &p, &n, tail) != 3 ||
        strcmp(tail, "parquet") || n < 1 || n > MAX_PARTS || p < 1 || p > n)
        return 0;
    if (ps->n == ps->alloc) {
        size_t na = ps->alloc ? ps->alloc * 2 : 16;
        void *nv = realloc(ps->v, na * sizeof *ps->v);
        if (!nv)
            return 0;   /* a part we cannot note: the set reads as incomplete */
        ps->v = nv;
        ps->alloc = na;
    }
    ps->v[ps->n].p = p;
    ps->v[ps->n++].n = n;
    return 0;
}

/* Number of parts of the multi-part checkpoint `version`, 0 if none is
 * complete: one listing, since on object storage a request per part adds
 * up. */
static int multipart_count(const cf_delta_snap *s, int64_t version)
{
    char dir[PATH_MAX], pre[48];
    part_list ps = { .prefix = pre };
    int found = 0;

    snprintf(dir, sizeof dir, "%s/" CF_DELTA_LOG_DIR, s->root);
    snprintf(pre, sizeof pre, "%020" PRId64 ".checkpoint.", version);
    if (cf_store_list(s->st, dir, CF_STORE_FLAT, parts_add, &ps, NULL) == 0)
        for (size_t i = 0; !found && i < ps.n; i++) {
            size_t have = 0;
            if (ps.v[i].p != 1)
                continue;
            /* names are unique per (p, n): n of them make the set */
            for (size_t j = 0; j < ps.n; j++)
                have += ps.v[j].n == ps.v[i].n;
            if (have == ps.v[i].n)
                found = (int)ps.v[i].n;
        }
    free(ps.v);
    return found;
}

int cf_delta_checkpoint_read(cf_delta_snap *s, int64_t version, cf_err *err)
{
    char path[PATH_MAX + 64];
    int parts = 1;
    bool single;

    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.parquet", s->root, version);
    single = cf_store_exists(s->st, path);
    if (!single && !(parts = multipart_count(s, version)))
        return cf_err_set(err, CF_E_NOTFOUND, "%s: no checkpoint %" PRId64, s->root, version);
    for (int i = 1; i <= parts; i++) {
        if (!single)
            snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.%010d.%010d.parquet",
                     s->root, version, i, parts);
        cf_pq_reader *r = cf_pq_reader_open(s->st, path, err);
        if (!r)
            return cf_err_wrap(err, "checkpoint %" PRId64, version);
        int rc = read_part(s, r, err);
        cf_pq_reader_close(r);
        if (rc)
            return cf_err_wrap(err, "checkpoint %" PRId64 " (%s)", version, path);
    }
    if (!s->metadata || s->min_reader == 0)
        return cf_err_set(err, CF_E_CORRUPT, "checkpoint %" PRId64 " has no %s action", version,
                          s->metadata ? "protocol" : "metaData");
    s->version = version;
    s->last_ts = -1;
    return 0;
}
