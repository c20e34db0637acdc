/* pipeline.h - the micro-batch loop: poll the source, decode, transform into
 * a columnar batch, and at each trigger commit the batch together with the
 * offsets it covers to the table (exactly once), then tell the source (lag).
 * Bad events go to the dead-letter target; their offsets are covered too. */
#ifndef CF_PIPELINE_H
#define CF_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "decode/debezium.h"
#include "runtime/dlq.h"
#include "runtime/metrics.h"
#include "source/source.h"
#include "table/table.h"
#include "transform/transform.h"
#include "util/err.h"

#define CF_PIPELINE_DEFAULT_TRIGGER_MS   1000
#define CF_PIPELINE_DEFAULT_MAX_OFFSETS  100000
#define CF_PIPELINE_DEFAULT_MAX_MSG      ((size_t)16 << 20)
#define CF_PIPELINE_DEFAULT_MAX_MEMORY   ((size_t)128 << 20)

/* Many tables: each topic goes to the table its name resolves to under a
 * location template (route.h).  Sinks and transforms are opened per table,
 * lazily on the table's first message, or at start/assignment for tables
 * that already exist under the template's parent directory (their offsets
 * are the resume point of the topics that resolve to them). */
/* Options of one routed table that differ from the pipeline's. */
typedef struct cf_pipeline_table {
    const char *name;                /* the resolved name: last path component, e.g. "orders" */
    bool        set_mode;
    cf_mode     mode;
    bool        set_deletes;
    bool        soft_deletes;
    bool        set_partition_by;
    const char *const *partition_by;
    int         npartition_by;
    const char *const *primary_key;  /* 0 columns: the pipeline's choice */
    int         nprimary_key;
} cf_pipeline_table;

typedef struct cf_pipeline_route {
    const char    *location_tmpl;    /* e.g. "/data/delta/{table}" */
    const char    *name_prefix;      /* table name = prefix + last component; may be NULL */
    cf_sink_config sink;             /* location and table_name are set per table */
    cf_transform_config transform;
    int            max_tables;       /* 0 = CF_PIPELINE_DEFAULT_MAX_TABLES */
    const cf_pipeline_table *tables; /* per-table overrides, matched by name */
    int            ntables;
} cf_pipeline_route;

#define CF_PIPELINE_DEFAULT_MAX_TABLES 256

typedef struct cf_pipeline_config {
    /* All borrowed: they must outlive cf_pipeline_run(). */
    cf_source    *source;
    cf_sink      *sink;              /* one table; NULL when route is set */
    cf_decoder   *decoder;
    cf_transform *transform;         /* one table; NULL when route is set */
    const cf_pipeline_route *route;  /* NULL: everything goes to sink */
    /* total_orders enrichment (one table, no route): its topic's events
     * feed it instead of the table; NULL: none. */
    struct cf_enrich *enrich;
    cf_dlq       *dlq;               /* NULL or "off": bad input stops the pipeline */
    cf_metrics   *metrics;           /* may be NULL */
    const char   *table_name;        /* for log lines */
    cf_mode       mode;              /* upsert: events without a key are bad input */
    /* Primary key override: these output columns instead of the source
     * table's key (every table of a route unless it names its own). */
    const char *const *primary_key;
    int           nprimary_key;
    int64_t       trigger_ms;        /* 0 = CF_PIPELINE_DEFAULT_TRIGGER_MS */
    int64_t       max_offsets;       /* messages per batch; 0 = default */
    size_t        max_message_bytes; /* 0 = default; bigger messages are bad input */
    /* What the batches may hold (0 = default): a batch is committed early
     * when its values reach an eighth of it, and consumption pauses while
     * a full batch waits for the commit before it.  Give the same bound to
     * the source (cf_source_config.max_memory) for librdkafka's share. */
    size_t        max_memory;
    bool          available_now;     /* stop once the input available at start is in */
    bool          progress;          /* one-line progress on stderr (a terminal) */
} cf_pipeline_config;

typedef struct cf_pipeline_stats {
    uint64_t messages;       /* consumed, including bad ones and tombstones */
    uint64_t events;         /* rows handed to the sink */
    uint64_t dead_letter;
    uint64_t tombstones;
    uint64_t batches;        /* table commits */
    uint64_t fenced;         /* batches dropped: another writer owned their partitions */
    int64_t  version;        /* last table version committed, -1 none */
    int      tables;         /* tables open at the end (1 without a route) */
} cf_pipeline_stats;

/* Run until the source is exhausted (file end, available-now), a stop is
 * requested (signals.h) or an error.  Batches are committed on a thread of
 * their own while the next one fills, one at a time and in order.  Returns
 * 0 after a clean stop, with the last batch committed; -1 with *err set
 * otherwise (the batch filling is then not committed; one already handed
 * to the commit thread is waited for, and lands if its commit succeeds).
 * *stats (may be NULL) is filled either way. */
int cf_pipeline_run(const cf_pipeline_config *cfg, cf_pipeline_stats *stats, cf_err *err);

#endif
