/* sink_util.h - build a commit value for a unit test the way the pipeline
 * does: ops and LSNs from the batch's _cdc_operation and _source_lsn
 * columns (as the transform writes them), the key from the schema; and the
 * local store tests read and write table files through. */
#ifndef CF_SINK_UTIL_H
#define CF_SINK_UTIL_H

#include <stdlib.h>
#include <string.h>
#include "table/table.h"

/* One local store for the whole test process (never closed: it holds no
 * resources but its own allocation). */
static inline cf_store *test_store(void)
{
    static cf_store *st;
    if (!st)
        st = cf_store_open("/", NULL, NULL);
    return st;
}

/* The key-value table many sink tests use: id (key), name, the transform's
 * _cdc_operation and _source_lsn, and with `extra` a trailing tier column. */
static inline cf_schema *kv_schema(bool extra)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type ti = { CF_T_INT64 }, ts = { CF_T_STRING };
    const char *pk = "id";
    cf_schema_add(s, "id", ti, false, 0, &e);
    cf_schema_add(s, "name", ts, true, 0, &e);
    cf_schema_add(s, "_cdc_operation", ts, true, 0, &e);
    cf_schema_add(s, "_source_lsn", ti, true, 0, &e);
    if (extra)
        cf_schema_add(s, "tier", ts, true, 0, &e);
    cf_schema_set_pk(s, &pk, 1, &e);
    return s;
}

/* Append a row of kv_schema to b. */
static inline void kv_row(cf_batch *b, int64_t id, const char *name, const char *op, int64_t lsn)
{
    cf_err e;
    size_t r = b->nrows;
    cf_col_set_i64(&b->cols[0], r, id, &e);
    cf_col_set_bytes(&b->cols[1], r, name, strlen(name), &e);
    cf_col_set_bytes(&b->cols[2], r, op, strlen(op), &e);
    cf_col_set_i64(&b->cols[3], r, lsn, &e);
    cf_batch_end_row(b, &e);
}

/* Commit `b` as the batch of offsets [start, end) per partition of `end`.
 * start NULL: the batch starts where the table is (the common case). */
static inline int commit_b(cf_sink *k, const cf_batch *b, const cf_offsets *start, const cf_offsets *end,
                           int64_t *v, cf_err *e)
{
    size_t nrows = b ? b->nrows : 0;
    char *ops = malloc(nrows + 1);
    int64_t *lsns = malloc(sizeof *lsns * (nrows + 1));
    cf_offsets here = { 0 };
    cf_commit c = { .rows = b, .start = start, .end = end };
    int op = b ? cf_schema_find(b->schema, "_cdc_operation") : -1;
    int lsn = b ? cf_schema_find(b->schema, "_source_lsn") : -1;
    int rc = 0;

    if (!ops || !lsns) {
        free(ops);
        free(lsns);
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    }
    for (size_t r = 0; b && r < b->nrows; r++) {
        size_t n = 0;
        const uint8_t *p = op >= 0 && cf_col_valid(&b->cols[op], r) ? cf_col_bytes(&b->cols[op], r, &n) : NULL;
        ops[r] = p && n == 6 && !memcmp(p, "DELETE", 6) ? 'd' : p && n == 6 && !memcmp(p, "UPDATE", 6) ? 'u' : 'c';
        lsns[r] = lsn >= 0 && cf_col_valid(&b->cols[lsn], r) ? cf_col_i64(&b->cols[lsn], r) : -1;
    }
    c.ops = ops;
    c.lsns = lsns;
    if (b) {
        c.key = b->schema->pk;
        c.nkey = b->schema->npk;
    }
    if (!start) {
        rc = cf_sink_offsets(k, &here, e);
        c.start = &here;
    }
    if (!rc)
        rc = cf_sink_commit(k, &c, v, e);
    cf_offsets_free(&here);
    free(ops);
    free(lsns);
    return rc;
}

#endif
