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
