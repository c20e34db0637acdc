/* transform.h - from decoded events to output rows: SYSTEM.md's customers
 * transform (full_name, location, ...) and the pass-through used for every
 * other table, each followed by the pipeline metadata columns. */
#ifndef CF_TRANSFORM_H
#define CF_TRANSFORM_H

#include "batch/batch.h"
#include "decode/event.h"
#include "util/err.h"

typedef struct cf_transform cf_transform;

typedef enum { CF_XF_AUTO = 0, CF_XF_CUSTOMERS, CF_XF_PASSTHROUGH } cf_xf_kind;

typedef struct cf_transform_config {
    cf_xf_kind  kind;          /* AUTO: customers transform for table "customers" */
    const char *pipeline_id;   /* "postgres_to_delta" / "postgres_to_iceberg"; NULL = "cdcflow" */
} cf_transform_config;

/* Number of metadata columns every output schema ends with:
 * _ingestion_timestamp, _source_system, _cdc_operation, _pipeline_id,
 * _processed_timestamp, _event_timestamp_ms, _source_lsn, _kafka_timestamp. */
#define CF_XF_NMETA 8

/* Returns a transform (free with cf_transform_free) or NULL with *err set.
 * The config's strings are copied. */
cf_transform *cf_transform_new(const cf_transform_config *cfg, cf_err *err);
void          cf_transform_free(cf_transform *t);          /* NULL-safe */
/* Output schema for events of this source schema; owned by the transform,
 * stable until the source schema changes (compare pointers to detect it).
 * Primary key (schema->pk) is carried over from the source schema.
 * NULL with *err set for events without a schema (tombstones, truncates
 * of unseen tables) or a source column that clashes with a metadata one. */
const cf_schema *cf_transform_schema(cf_transform *t, const cf_event *ev, cf_err *err);
/* The output schema of the customers transform (owned by the transform),
 * the schema of total_orders count updates when a batch has no row yet. */
const cf_schema *cf_transform_customers_schema(const cf_transform *t);
/* Append one row for `ev` to `out` (bound to cf_transform_schema()).
 * For deletes the row comes from `before`.  Tombstones and truncates append
 * nothing and return 0.  On failure nothing is appended.
 *
 * Unchanged-TOAST values (CF_V_UNAVAILABLE) that no full before image
 * resolves are left null in the batch, and their cells are added to
 * `unavail` (if not NULL), so an upsert sink can keep the value the table
 * holds there.  A derived column (full_name, location) is unavailable when
 * any of its inputs is. */
int           cf_transform_apply(cf_transform *t, const cf_event *ev, cf_batch *out, cf_cells *unavail,
                                 int64_t processed_ts_us, cf_err *err);

#endif
