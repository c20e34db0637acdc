/* table.h - the table sink interface: Delta Lake and Iceberg behind one
 * contract.  A commit is a value (cf_commit): rows with their op, LSN, key
 * and unavailable cells, and per topic-partition the offsets the batch
 * starts and ends at.  It is published with those offsets atomically, and
 * only if the table's offsets still equal the batch's start (the fence), so
 * a process that lost its partitions, or paused past its session, can never
 * apply a batch twice or out of order.  cf_sink_offsets() reads the offsets
 * back from the table (on start and at every assignment). */
#ifndef CF_TABLE_H
#define CF_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "batch/batch.h"
#include "source/source.h"
#include "store/store.h"
#include "util/err.h"

typedef enum { CF_MODE_APPEND = 0, CF_MODE_UPSERT } cf_mode;
typedef enum { CF_CODEC_ZSTD = 0, CF_CODEC_SNAPPY, CF_CODEC_NONE } cf_codec;

/* Most key columns a table may have (Delta and Iceberg alike). */
#define CF_MAX_KEY_COLS 32

/* The Iceberg REST catalog of a table (Iceberg only).  uri NULL or empty:
 * the directory (Hadoop) catalog, for local tables.  Strings are borrowed
 * for the sink's life; credential and token are secrets (never logged). */
typedef struct cf_catalog_config {
    const char *uri;               /* --catalog-uri, ICEBERG_CATALOG_URI */
    const char *warehouse;         /* the catalog's warehouse name or location */
    const char *credential;        /* OAuth2 "client_id:client_secret", ICEBERG_CATALOG_CREDENTIAL */
    const char *token;             /* a bearer token, ICEBERG_CATALOG_TOKEN */
    const char *oauth2_server_uri; /* token endpoint; default URI/v1/oauth/tokens */
    const char *scope;             /* OAuth2 scope; default "catalog" */
} cf_catalog_config;

/* Fill *cfg from ICEBERG_CATALOG_{URI,WAREHOUSE,CREDENTIAL,TOKEN,
 * OAUTH2_SERVER_URI,SCOPE} (over zeroes; empty counts as unset).  The
 * strings point into the environment. */
void cf_catalog_config_from_env(cf_catalog_config *cfg);

/* How a Delta upsert retires the rows it replaces or deletes.  AUTO: with
 * deletion vectors on a table that has them on (delta.enableDeletionVectors
 * and the feature), by rewriting its files otherwise; DV: deletion vectors,
 * turning them on for the table first; REWRITE: always copy-on-write. */
typedef enum { CF_DELTA_DELETES_AUTO, CF_DELTA_DELETES_DV, CF_DELTA_DELETES_REWRITE } cf_delta_deletes;

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
    bool        type_widening;     /* Delta: widen column types (typeWidening feature) */
    cf_delta_deletes delta_deletes;  /* Delta upsert: how rows are retired */
    bool        delta_timestamp_utc;   /* Delta: new zone-less columns as `timestamp`, not
                                        * `timestamp_ntz` (for readers without timestampNtz) */
    const cf_store_config *store;  /* object storage settings; NULL: from the environment */
    const cf_catalog_config *catalog;  /* Iceberg: NULL: from the environment */
} cf_sink_config;

/* One commit, as a value.  Everything is borrowed for the call.
 *   rows:      NULL or empty for an offsets-only commit (a batch of
 *              tombstones or dead letters still moves the offsets);
 *   ops, lsns: per row, the change ('c','u','d','r') and its source LSN
 *              (-1 unknown); upsert keeps the last change per key by LSN,
 *              ties by row order;
 *   key:       the key columns of rows->schema (upsert), nkey of them;
 *   unavail:   cells that Debezium sent as unchanged TOAST placeholders:
 *              upsert keeps the value the table holds there;
 *   start:     per topic-partition, the first offset of the batch: the
 *              offset the table must hold for the commit to apply (a
 *              partition the table has never seen applies from anywhere);
 *   end:       per topic-partition, the next offset after the batch. */
typedef struct cf_commit {
    const cf_batch   *rows;
    const char       *ops;
    const int64_t    *lsns;
    const int        *key;
    int               nkey;
    const cf_cells   *unavail;
    const cf_offsets *start;
    const cf_offsets *end;
} cf_commit;

typedef struct cf_sink cf_sink;

/* Commit attempts of this sink lost to another writer and made again,
 * since it opened. */
uint64_t cf_sink_conflicts(const cf_sink *s);

/* Open the backend named by cfg->kind.  Strings in cfg must outlive the
 * sink.  NULL with *err set on failure. */
cf_sink *cf_sink_open(const cf_sink_config *cfg, cf_err *err);
void     cf_sink_close(cf_sink *s);                       /* NULL-safe */
/* The table's offsets, read anew from the table (another process may have
 * committed since), added to *out.  Also brings the sink's view of the
 * table (and its key index) up to date. */
int      cf_sink_offsets(cf_sink *s, cf_offsets *out, cf_err *err);
/* Publish `c`, retrying lost races with backoff (one policy, table.c).
 * *version gets the table version the commit made (or the current one when
 * there was nothing to write).  CF_E_FENCED: the table's offset of some
 * partition is not the batch's start: nothing was written and the caller
 * must drop the batch and re-read the offsets.  Any other failure leaves
 * the table as it was. */
int      cf_sink_commit(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err);
const cf_sink_config *cf_sink_cfg(const cf_sink *s);

/* The fence of one partition: may a batch starting at `start` apply to a
 * table whose offset is `have` (-1: the table never saw the partition)? */
static inline bool cf_fence_ok(int64_t have, int64_t start)
{
    return have < 0 || have == start;
}

/* Check `c` against the table's offsets `have` (the state a commit is
 * built on).  0 when every partition passes; -1 with CF_E_FENCED naming the
 * first one that does not. */
int cf_commit_fence(const cf_commit *c, const cf_offsets *have, const char *table, cf_err *err);

#endif
