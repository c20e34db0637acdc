/* delta_cmd.h - the Delta halves of the table commands; cli/table_cmd.c
 * dispatches here for tables that are not Iceberg tables.  argv as for the
 * cdcflow subcommand (argv[0] = "scan", ...); each returns an exit code. */
#ifndef CF_DELTA_CMD_H
#define CF_DELTA_CMD_H

#include <stdbool.h>
#include <stdint.h>
#include "store/store.h"
#include "util/err.h"

/* The _delta_log of root (in store st) holds a commit or a checkpoint. */
bool cf_delta_is_table(cf_store *st, const char *root);
int  cf_delta_cmd_scan(int argc, char **argv);
int  cf_delta_cmd_history(int argc, char **argv);
int  cf_delta_cmd_optimize(int argc, char **argv);

/* Compact the table at root (a path or URL; its store is opened and closed
 * here): files smaller than target_bytes/2, per partition, when a partition
 * has at least min_files of them: one commit of remove + add actions with
 * dataChange=false.  *version = the new version (or -1 when nothing to do);
 * counts of files removed/added when non-NULL. */
int  cf_delta_optimize(const char *root, int64_t target_bytes, int min_files, int64_t *version,
                       int64_t *removed, int64_t *added, cf_err *err);

/* "2026-01-31T12:00:00Z", "2026-01-31 12:00:00", or epoch milliseconds ->
 * epoch milliseconds.  -1 when unreadable. */
int  cf_delta_parse_when(const char *s, int64_t *ms);
/* The newest version of root (in store st) committed at or before `ms`;
 * -1 with *err if none. */
int64_t cf_delta_version_at(cf_store *st, const char *root, int64_t ms, cf_err *err);

#endif
