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
    const char *pipeline_id;   /* "postgres_to_delta" / "postgres_to_iceberg" */
} cf_transform_config;

cf_transform *cf_transform_new(const cf_transform_config *cfg, cf_err *err);
void          cf_transform_free(cf_transform *t);          /* NULL-safe */
/* Output schema for events of this source schema; owned by the transform,
 * stable until the source schema changes (compare pointers to detect it).
 * Primary key (schema->pk) is carried over from the source schema. */
const cf_schema *cf_transform_schema(cf_transform *t, const cf_event *ev, cf_err *err);
/* Append one row for `ev` to `out` (bound to cf_transform_schema()).
 * For deletes the row comes from `before`.  Tombstones and truncates append
 * nothing and return 0. */
int           cf_transform_apply(cf_transform *t, const cf_event *ev, cf_batch *out,
                                 int64_t processed_ts_us, cf_err *err);

#endif
