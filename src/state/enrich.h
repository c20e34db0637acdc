/* enrich.h - the total_orders enrichment: a stream-stream join that keeps,
 * for every customer, the number of live orders that name it, and writes
 * that count into the customers rows, exactly once.
 *
 * The customers pipeline consumes the orders topic too.  Order events do
 * not become rows: they are buffered here and folded into the state at the
 * commit, in LSN order with the batch's customers rows (both topics come
 * from one PostgreSQL WAL), so each customers row carries the count of
 * every order event committed before its batch plus those of its own batch
 * with an LSN up to its own.  In upsert mode a customer whose count the
 * batch changed and whose last row in the batch does not carry the final
 * count gets one more row: an update of the count alone (every other cell
 * unavailable, so the sink keeps the table's values), which the change
 * feed shows as an update.
 *
 * State: count and existence per customer, current customer per order
 * (to take a re-assigned or deleted order off the right count); two
 * cf_i64maps, 23-46 bytes per key each.  It is written whole through the
 * storage layer before every commit, to LOCATION/_cdcflow_state/, under a
 * name made from the table offsets the commit leaves behind (and holding
 * them, checked on load).  The commit records those offsets (Delta txn
 * actions, Iceberg snapshot summary), so the table's offsets name the one
 * state that goes with them: after a crash at any instant the state is
 * loaded from the file the table's offsets name and consumption resumes
 * from those offsets.  Nothing rides outside the commit value. */
#ifndef CF_ENRICH_H
#define CF_ENRICH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "batch/batch.h"
#include "decode/event.h"
#include "source/source.h"
#include "store/store.h"
#include "table/table.h"
#include "util/err.h"

typedef struct cf_enrich cf_enrich;

typedef struct cf_enrich_config {
    const char *orders_topic;     /* the topic whose events are counted */
    const char *fk_column;        /* in the orders rows; NULL: "customer_id" */
    const char *key_column;       /* in the output rows; NULL: "customer_id" */
    const char *count_column;     /* in the output rows; NULL: "total_orders" */
    const char *location;         /* the table's location; the state lives beneath it */
    const cf_store_config *store; /* NULL: from the environment */
    cf_mode     mode;             /* upsert: count changes become update rows */
} cf_enrich_config;

/* The state directory under a table location. */
#define CF_ENRICH_DIR "_cdcflow_state"

/* A new enrichment with empty state (call cf_enrich_sync before the first
 * commit).  Strings are copied.  NULL with *err set. */
cf_enrich *cf_enrich_new(const cf_enrich_config *cfg, cf_err *err);
void       cf_enrich_free(cf_enrich *e);                       /* NULL-safe */

/* Whether messages of `topic` feed the state (instead of becoming rows). */
bool cf_enrich_takes(const cf_enrich *e, const char *topic);

/* Buffer one decoded order event for the next commit.  Tombstones are
 * ignored; a truncate empties every count.  -1 with CF_E_PARSE for an
 * event without an integer key or foreign key (bad input: dead-letter it;
 * nothing is buffered), CF_E_NOMEM otherwise. */
int  cf_enrich_order(cf_enrich *e, const cf_event *ev, cf_err *err);

/* Make the state the one that goes with the table's offsets `table` (as
 * read back from the table): nothing to do when it is already, the empty
 * state for a table without offsets, else the state file they name.
 * CF_E_CORRUPT (fatal) when the table has offsets but that file is
 * missing or does not hold them. */
int  cf_enrich_sync(cf_enrich *e, const cf_offsets *table, cf_err *err);

/* Before the commit `c` is published: fold the buffered order events and
 * the customers rows of `rows` (may be NULL) into the state in LSN order,
 * set the count column of every row, append the count updates (upsert) to
 * rows (or to a batch of the enrichment's own when rows is NULL, of schema
 * `schema`), their unavailable cells to *ua, and write the state file for
 * the offsets the commit leaves.  c->rows, ops, lsns (and key, nkey when
 * rows was NULL) are pointed at the result.  Exactly one cf_enrich_done
 * must follow a 0; after -1 the state is as it was. */
int  cf_enrich_prepare(cf_enrich *e, cf_batch *rows, const cf_schema *schema, cf_cells *ua, cf_commit *c,
                       int64_t now_us, cf_err *err);
/* The commit landed (true: the state stays, the previous state file is
 * removed) or did not (false: the state goes back to before prepare).
 * Order events buffered since prepare are the next commit's and stay: the
 * pipeline fills the next batch while this one is committed. */
void cf_enrich_done(cf_enrich *e, bool committed);
/* Forget the buffered order events (a batch dropped unseen by the table). */
void cf_enrich_drop(cf_enrich *e);

/* The count of a customer in the state (0 when unknown), and the sizes:
 * customers and orders tracked, bytes held. */
int64_t cf_enrich_count(const cf_enrich *e, int64_t customer);
void    cf_enrich_size(const cf_enrich *e, size_t *customers, size_t *orders, size_t *bytes);

/* The state file's bytes, and back (for tests and tools): encode appends
 * to *out; decode replaces the state and *offsets (which it fills).
 * decode: CF_E_PARSE/CF_E_CORRUPT with the byte position on bad input. */
int  cf_enrich_encode(const cf_enrich *e, const cf_offsets *offsets, cf_buf *out, cf_err *err);
int  cf_enrich_decode(cf_enrich *e, const void *p, size_t n, cf_offsets *offsets, cf_err *err);

#endif
