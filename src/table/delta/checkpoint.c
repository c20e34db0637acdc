/* checkpoint.c - classic single-file Parquet checkpoints of the Delta log
 * (the protocol's V1 checkpoint schema: txn, add, remove, metaData and
 * protocol columns, one action per row) and _last_checkpoint.
 *
 * Remove tombstones of the last 7 days are kept (they tell other tools'
 * vacuum what recent versions still need).
 *
 * Reading checkpoints back needs a nested Parquet reader, which cdcflow does
 * not have: our own snapshot replays JSON commits (we never delete them), the
 * checkpoints are for other readers and for log cleanup by other tools. */
#include "table/delta/delta_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
static const cf_pq_node add_f[] = {
    LEAF("path", T_STR),
    { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = add_pv, .logical = "map" },
    LEAF("size", T_I64), LEAF("modificationTime", T_I64), LEAF("dataChange", T_BOOL), LEAF("stats", T_STR),
};
static const cf_pq_node rm_f[] = {
    LEAF("path", T_STR), LEAF("deletionTimestamp", T_I64), LEAF("dataChange", T_BOOL),
    LEAF("extendedFileMetadata", T_BOOL),
    { .name = "partitionValues", .rep = CF_PQ_OPTIONAL, .nchildren = 1, .children = rm_pv, .logical = "map" },
    LEAF("size", T_I64),
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
static const cf_pq_node proto_f[] = { LEAF("minReaderVersion", T_I32), LEAF("minWriterVersion", T_I32) };
static const cf_pq_node top[] = {
    { .name = "txn", .rep = CF_PQ_OPTIONAL, .nchildren = 3, .children = txn_f },
    { .name = "add", .rep = CF_PQ_OPTIONAL, .nchildren = 6, .children = add_f },
    { .name = "remove", .rep = CF_PQ_OPTIONAL, .nchildren = 6, .children = rm_f },
    { .name = "metaData", .rep = CF_PQ_OPTIONAL, .nchildren = 8, .children = md_f },
    { .name = "protocol", .rep = CF_PQ_OPTIONAL, .nchildren = 2, .children = proto_f },
};
static const cf_pq_node root_node = { .name = "spark_schema", .rep = CF_PQ_REQUIRED, .nchildren = 5, .children = top };

/* Leaves, depth first. */
enum {
    TXN_APP, TXN_VER, TXN_UPD,
    ADD_PATH, ADD_PVK, ADD_PVV, ADD_SIZE, ADD_MTIME, ADD_DC, ADD_STATS,
    RM_PATH, RM_DTS, RM_DC, RM_EXT, RM_PVK, RM_PVV, RM_SIZE,
    MD_ID, MD_NAME, MD_DESC, MD_PROV, MD_OPTK, MD_OPTV, MD_SCHEMA, MD_PC, MD_CONFK, MD_CONFV, MD_CTIME,
    PR_R, PR_W,
    NLEAVES
};
static const cf_type_id leaf_type[NLEAVES] = {
    CF_T_STRING, CF_T_INT64, CF_T_INT64,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT64, CF_T_INT64, CF_T_BOOL, CF_T_STRING,
    CF_T_STRING, CF_T_INT64, CF_T_BOOL, CF_T_BOOL, CF_T_STRING, CF_T_STRING, CF_T_INT64,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_STRING,
    CF_T_STRING, CF_T_STRING, CF_T_STRING, CF_T_INT64,
    CF_T_INT32, CF_T_INT32,
};
/* first and last leaf of each top-level group */
static const int group_span[5][2] = {
    { TXN_APP, TXN_UPD }, { ADD_PATH, ADD_STATS }, { RM_PATH, RM_SIZE }, { MD_ID, MD_CTIME }, { PR_R, PR_W },
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

static int write_last_checkpoint(const char *root, int64_t version, int64_t rows, int64_t adds,
                                 int64_t bytes, cf_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX + 64], body[256];
    int n = snprintf(body, sizeof body,
                     "{\"version\":%" PRId64 ",\"size\":%" PRId64 ",\"sizeInBytes\":%" PRId64
                     ",\"numOfAddFiles\":%" PRId64 "}\n", version, rows, bytes, adds);
    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/_last_checkpoint", root);
    snprintf(tmp, sizeof tmp, "%s/" CF_DELTA_LOG_DIR "/._last_checkpoint.%d.tmp", root, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return cf_err_set(err, CF_E_IO, "create %s: %s", tmp, strerror(errno));
    if (write(fd, body, (size_t)n) != n || fsync(fd)) {
        close(fd);
        unlink(tmp);
        return cf_err_set(err, CF_E_IO, "write %s: %s", tmp, strerror(errno));
    }
    close(fd);
    /* The hint may move forward only: rename over it is atomic. */
    if (rename(tmp, path)) {
        unlink(tmp);
        return cf_err_set(err, CF_E_IO, "rename %s: %s", path, strerror(errno));
    }
    return 0;
}

int cf_delta_checkpoint_write(const cf_delta_snap *s, cf_err *err)
{
    ckw w = { .err = err };
    char path[PATH_MAX], tmp[PATH_MAX + 64];
    cf_pq_writer *pw = NULL;
    cf_pq_options opt;
    int64_t rows = 0, adds = 0;
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

    /* protocol */
    others_null(&w, 4);
    li64(&w, PR_R, 2, s->min_reader);
    li64(&w, PR_W, 2, s->min_writer);
    rows++;
    /* metaData */
    {
        json_t *m = s->metadata, *fmt = json_object_get(m, "format"), *pc = json_object_get(m, "partitionColumns");
        json_t *ct = json_object_get(m, "createdTime");
        others_null(&w, 3);
        opt_str(&w, MD_ID, jstr(m, "id"));
        opt_str(&w, MD_NAME, jstr(m, "name"));
        opt_str(&w, MD_DESC, jstr(m, "description"));
        if (json_is_object(fmt)) {
            if (jstr(fmt, "provider"))
                lstr(&w, MD_PROV, 3, 0, jstr(fmt, "provider"));
            else
                lput(&w, MD_PROV, 2, 0);
            put_map(&w, MD_OPTK, MD_OPTV, 3, json_object_get(fmt, "options") ? json_object_get(fmt, "options")
                                                                           : json_object());
        } else {
            lput(&w, MD_PROV, 1, 0);
            lput(&w, MD_OPTK, 1, 0);
            lput(&w, MD_OPTV, 1, 0);
        }
        opt_str(&w, MD_SCHEMA, jstr(m, "schemaString"));
        if (json_is_array(pc) && json_array_size(pc)) {
            size_t i;
            json_t *e;
            json_array_foreach(pc, i, e) {
                if (json_is_string(e))
                    lstr(&w, MD_PC, 4, (int16_t)(i ? 1 : 0), json_string_value(e));
                else
                    lput(&w, MD_PC, 3, (int16_t)(i ? 1 : 0));
            }
        } else {
            lput(&w, MD_PC, 2, 0);   /* empty list */
        }
        put_map(&w, MD_CONFK, MD_CONFV, 2, json_object_get(m, "configuration") ? json_object_get(m, "configuration")
                                                                               : json_object());
        if (json_is_integer(ct))
            li64(&w, MD_CTIME, 2, json_integer_value(ct));
        else
            lput(&w, MD_CTIME, 1, 0);
        rows++;
    }
    /* txn */
    for (int i = 0; i < s->ntxns; i++) {
        others_null(&w, 0);
        lstr(&w, TXN_APP, 2, 0, s->txns[i].app_id);
        li64(&w, TXN_VER, 2, s->txns[i].version);
        li64(&w, TXN_UPD, 2, s->txns[i].last_updated);
        rows++;
    }
    /* remove tombstones younger than the default retention (7 days), for
     * vacuum by other tools */
    int64_t horizon = cf_delta_now_ms() - TOMBSTONE_RETENTION_MS;
    for (size_t i = 0; i < s->nfiles; i++) {
        const cf_delta_file *f = &s->files[i];
        if (f->live || f->deleted_at < horizon)
            continue;
        others_null(&w, 2);
        lstr(&w, RM_PATH, 2, 0, f->path);
        li64(&w, RM_DTS, 2, f->deleted_at);
        li64(&w, RM_DC, 2, 1);
        li64(&w, RM_EXT, 2, 1);
        pv_map(&w, RM_PVK, RM_PVV, &f->pv);
        li64(&w, RM_SIZE, 2, f->size);
        rows++;
    }
    /* live files */
    for (size_t i = 0; i < s->nfiles; i++) {
        const cf_delta_file *f = &s->files[i];
        if (!f->live)
            continue;
        others_null(&w, 1);
        lstr(&w, ADD_PATH, 2, 0, f->path);
        pv_map(&w, ADD_PVK, ADD_PVV, &f->pv);
        li64(&w, ADD_SIZE, 2, f->size);
        li64(&w, ADD_MTIME, 2, f->mtime);
        li64(&w, ADD_DC, 2, f->data_change);
        opt_str(&w, ADD_STATS, f->stats);
        rows++;
        adds++;
    }
    if (w.failed)
        goto out;

    snprintf(path, sizeof path, "%s/" CF_DELTA_LOG_DIR "/%020" PRId64 ".checkpoint.parquet", s->root, s->version);
    /* written under a dot name then renamed: a reader never sees half a
     * checkpoint */
    snprintf(tmp, sizeof tmp, "%s/" CF_DELTA_LOG_DIR "/.%020" PRId64 ".checkpoint.%d.parquet.tmp", s->root,
             s->version, (int)getpid());
    unlink(tmp);
    cf_pq_options_default(&opt);
    opt.write_field_ids = false;
    opt.dictionary = false;
    if (!(pw = cf_pq_writer_open_tree(tmp, &root_node, &opt, err)))
        goto out;
    for (int i = 0; i < NLEAVES; i++)
        if (cf_pq_writer_write_leaf(pw, i, w.l[i].def, w.l[i].rep, w.l[i].n, &w.l[i].vals->cols[0], err)) {
            cf_pq_writer_abort(pw);
            goto out;
        }
    if (cf_pq_writer_end_row_group(pw, rows, err)) {
        cf_pq_writer_abort(pw);
        goto out;
    }
    cf_pq_file_info fi = { 0 };
    if (cf_pq_writer_close(pw, &fi, err))
        goto out;
    int64_t bytes = fi.file_bytes;
    cf_pq_file_info_free(&fi);
    if (rename(tmp, path)) {
        cf_err_set(err, CF_E_IO, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = write_last_checkpoint(s->root, s->version, rows, adds, bytes, err);
out:
    for (int i = 0; i < NLEAVES; i++) {
        free(w.l[i].def);
        free(w.l[i].rep);
        cf_batch_free(w.l[i].vals);
        cf_schema_free(w.l[i].s);
    }
    return rc;
}

int cf_delta_checkpoint_read(cf_delta_snap *s, int64_t version, cf_err *err)
{
    (void)s;
    return cf_err_set(err, CF_E_UNSUPPORTED,
                      "checkpoint %" PRId64 " would need a nested Parquet reader",
                      version);
}
