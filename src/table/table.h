/* table.h - the table sink interface: Delta Lake and Iceberg behind one
 * contract.  A commit writes a batch and the Kafka offsets it covers
 * atomically; cf_sink_offsets() reads them back on start (exactly once). */
#ifndef CF_TABLE_H
#define CF_TABLE_H

#include <stdbool.h>
#include <stdint.h>
#include "batch/batch.h"
#include "source/source.h"
#include "util/err.h"

typedef enum { CF_MODE_APPEND = 0, CF_MODE_UPSERT } cf_mode;
typedef enum { CF_CODEC_ZSTD = 0, CF_CODEC_SNAPPY, CF_CODEC_NONE } cf_codec;

typedef struct cf_sink_config {
    const char *kind;              /* "delta" or "iceberg" */
    const char *location;          /* Delta table path; Iceberg table dir */
    const char *table_name;        /* for metadata/logs */
    cf_mode     mode;
    bool        soft_deletes;      /* upsert: mark deleted rows instead of removing */
    const char *const *partition_by;
    int         npartition_by;
    const char *app_id;            /* prefix for Delta txn appIds / Iceberg summary keys */
    int         checkpoint_interval;   /* Delta; 0 = default 10 */
    cf_codec    codec;
    int64_t     target_file_bytes;
} cf_sink_config;

typedef struct cf_sink cf_sink;

typedef struct cf_sink_ops {
    const char *name;
    int  (*open)(cf_sink *s, cf_err *err);
    int  (*offsets)(cf_sink *s, cf_offsets *out, cf_err *err);
    /* rows: output of the transform (with _cdc_operation, _source_lsn);
     * covered: next offsets per topic-partition after this batch. */
    int  (*commit)(cf_sink *s, const cf_batch *rows, const cf_offsets *covered,
                   int64_t *version, cf_err *err);
    void (*close)(cf_sink *s);
} cf_sink_ops;

struct cf_sink {
    const cf_sink_ops *ops;
    cf_sink_config     cfg;
    void              *impl;       /* backend state */
};

extern const cf_sink_ops cf_delta_sink_ops;
extern const cf_sink_ops cf_iceberg_sink_ops;

/* Open the backend named by cfg->kind.  Strings in cfg must outlive the sink. */
cf_sink *cf_sink_open(const cf_sink_config *cfg, cf_err *err);
void     cf_sink_close(cf_sink *s);                       /* NULL-safe */
static inline int cf_sink_offsets(cf_sink *s, cf_offsets *o, cf_err *err)
{ return s->ops->offsets(s, o, err); }
static inline int cf_sink_commit(cf_sink *s, const cf_batch *b, const cf_offsets *c,
                                 int64_t *version, cf_err *err)
{ return s->ops->commit(s, b, c, version, err); }

#endif
