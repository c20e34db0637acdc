/* iceberg_cmd.h - the Iceberg halves of the table commands; cli/table_cmd.c
 * dispatches here when the TABLE argument is the location of an Iceberg
 * table (it has metadata/version-hint.text or metadata/v*.metadata.json, or
 * ICEBERG_CATALOG_URI is set and it is on object storage without a Delta
 * log, or local and the catalog has it).
 * Each command opens the store of the location and the table's catalog,
 * and closes them before it returns. */
#ifndef CF_ICEBERG_CMD_H
#define CF_ICEBERG_CMD_H

#include <stdbool.h>

bool cf_iceberg_is_table(const char *location);
/* argv as for the cdcflow subcommand (argv[0] = "scan", ...). Exit code. */
int  cf_iceberg_cmd_scan(int argc, char **argv);
int  cf_iceberg_cmd_history(int argc, char **argv);
int  cf_iceberg_cmd_optimize(int argc, char **argv);

#endif
