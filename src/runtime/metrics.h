/* metrics.h - the pipeline's counters and gauges, served as Prometheus text
 * at /metrics and summed up as a health verdict at /healthz (HTTP on
 * 127.0.0.1, libmicrohttpd).  Every function is thread-safe: the pipeline
 * thread updates, the HTTP thread reads. */
#ifndef CF_METRICS_H
#define CF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/buf.h"
#include "util/err.h"

typedef struct cf_metrics cf_metrics;

/* `table` and `pipeline_id` are copied.  NULL on out of memory. */
cf_metrics *cf_metrics_new(const char *table, const char *pipeline_id);
/* Stops the server if running.  NULL-safe. */
void        cf_metrics_free(cf_metrics *m);
/* Serve on 127.0.0.1:port (0 = any free port; see cf_metrics_port). */
int         cf_metrics_serve(cf_metrics *m, int port, cf_err *err);
int         cf_metrics_port(const cf_metrics *m);

/* op: Debezium op code 'c','u','d','r','t' (0 = tombstone). */
void cf_metrics_add_events(cf_metrics *m, char op, uint64_t n);
void cf_metrics_add_dead_letter(cf_metrics *m, uint64_t n);
/* One batch dropped by the commit fence (NULL-safe). */
void cf_metrics_add_fenced(cf_metrics *m);
/* n commit attempts lost to another writer and made again (NULL-safe). */
void cf_metrics_add_conflicts(cf_metrics *m, uint64_t n);
/* A routed pipeline (one table per topic): one committed batch of `table`
 * with its events by op ('c','u','d','r','t', tombstones) and the version
 * it made.  Once called, /metrics shows cdcflow_events_total per table
 * (label table=NAME) instead of the pipeline's single row set, plus
 * cdcflow_table_batches_total and cdcflow_table_last_version by table. */
#define CF_METRICS_MAX_TABLES 1024
void cf_metrics_table_commit(cf_metrics *m, const char *table, const uint64_t by_op[6], int64_t version);
/* One committed batch: wall time from its first message to the end of the
 * commit, the commit alone, the table version it made. */
void cf_metrics_batch_done(cf_metrics *m, double batch_s, double commit_s, int64_t version);
/* A batch handed to the commit: its messages, rows and bytes (gauges of
 * the last one), and the commit it took once done (seconds, gauge). */
void cf_metrics_batch_cut(cf_metrics *m, uint64_t messages, uint64_t rows, uint64_t bytes);
/* Bytes the batches hold now (the one filling plus the one committing),
 * and the bound they are kept under (--max-memory). */
void cf_metrics_set_memory(cf_metrics *m, uint64_t bytes, uint64_t limit);
/* Consumption was paused for `seconds` because the commits fell behind. */
void cf_metrics_add_paused(cf_metrics *m, double seconds);
void cf_metrics_set_lag(cf_metrics *m, int64_t lag);           /* -1 unknown */
void cf_metrics_set_version(cf_metrics *m, int64_t version);   /* table version at start */
/* The loop is alive; `idle` when it holds no uncommitted input. */
void cf_metrics_heartbeat(cf_metrics *m, bool idle);
void cf_metrics_set_up(cf_metrics *m, bool up, const char *why_down);
/* /healthz says unhealthy when input waits and nothing was committed for
 * max_commit_age_s, or the loop has not turned for max_stall_s. */
void cf_metrics_set_health_limits(cf_metrics *m, double max_commit_age_s, double max_stall_s);

/* Append the Prometheus text exposition to `out`. */
int  cf_metrics_render(cf_metrics *m, cf_buf *out, cf_err *err);
/* true when healthy; `why` gets "ok" or the reason. */
bool cf_metrics_healthy(cf_metrics *m, char *why, size_t cap);

/* Counters for tests and the progress line. */
uint64_t cf_metrics_events_total(cf_metrics *m);
uint64_t cf_metrics_dead_letter_total(cf_metrics *m);
uint64_t cf_metrics_batches_total(cf_metrics *m);

#endif
