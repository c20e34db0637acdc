/* table_int.h - what a table backend (delta/, iceberg/) provides to the
 * dispatch and the one commit retry loop in table.c.  Private to src/table/. */
#ifndef CF_TABLE_INT_H
#define CF_TABLE_INT_H

#include "table/table.h"

/* A commit is staged once (data files written, the commit built on the
 * table state of that moment) and published as often as the retry loop
 * asks: each publish re-reads what other writers committed since, checks
 * the fence against that state, and tries the atomic step once.
 *   stage:   0, or -1 (CF_E_FENCED when the fence already fails);
 *   publish: 0 when the commit landed; -1 with
 *              CF_E_CONFLICT + retriable: lost the race, publish again;
 *              CF_E_STALE: what was staged no longer fits (files it retires
 *                are gone, the schema moved): abort and stage again;
 *              CF_E_FENCED: another writer owns a partition: give up;
 *              anything else: give up;
 *   abort:   drop what stage wrote (after a failure, never after 0). */
typedef struct cf_sink_ops {
    const char *name;
    int  (*open)(cf_sink *s, cf_err *err);
    int  (*offsets)(cf_sink *s, cf_offsets *out, cf_err *err);
    int  (*stage)(cf_sink *s, const cf_commit *c, cf_err *err);
    int  (*publish)(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err);
    void (*abort)(cf_sink *s);
    void (*close)(cf_sink *s);
} cf_sink_ops;

struct cf_sink {
    const cf_sink_ops *ops;
    cf_sink_config     cfg;
    cf_store          *store;      /* where cfg.location lives; opened before ops->open */
    uint64_t           conflicts;  /* commit attempts lost to another writer, so far */
    void              *impl;       /* backend state */
};

extern const cf_sink_ops cf_delta_sink_ops;
extern const cf_sink_ops cf_iceberg_sink_ops;

/* The retry policy of every commit: attempts and full-jitter exponential
 * backoff (a random pause below min(CAP, BASE << attempt)), so writers
 * that lost a race spread out instead of colliding again. */
#define CF_COMMIT_ATTEMPTS     40
#define CF_COMMIT_BACKOFF_US   2000
#define CF_COMMIT_BACKOFF_CAP  (500 * 1000)

/* Row r of c->rows is a delete; its LSN (-1 unknown). */
static inline bool cf_commit_is_delete(const cf_commit *c, size_t r) { return c->ops && c->ops[r] == 'd'; }
static inline int64_t cf_commit_lsn(const cf_commit *c, size_t r) { return c->lsns ? c->lsns[r] : -1; }

/* Where the value of unavailable cell (row, col) of c->rows is: the
 * latest earlier row of the same key in the batch that carries it (prev[r]
 * is the row of r's key before r, -1 none), or -1: the row the table holds
 * (the one the commit retires), or -2: nowhere (a delete came between). */
int64_t cf_commit_toast_source(const cf_commit *c, const int64_t *prev, size_t row, int col);

/* Sleep before retry number `attempt` (0-based) of the policy above. */
void cf_commit_backoff(int attempt, unsigned *seed);

#endif
