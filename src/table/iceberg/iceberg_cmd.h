/* iceberg_cmd.h - the Iceberg halves of the table commands; cli/table_cmd.c
 * dispatches here when the TABLE argument is an Iceberg table directory
 * (it has metadata/version-hint.text or metadata/v*.metadata.json). */
#ifndef CF_ICEBERG_CMD_H
#define CF_ICEBERG_CMD_H

#include <stdbool.h>

bool cf_iceberg_is_table(const char *dir);
/* argv as for the cdcflow subcommand (argv[0] = "scan", ...). Exit code. */
int  cf_iceberg_cmd_scan(int argc, char **argv);
int  cf_iceberg_cmd_history(int argc, char **argv);
int  cf_iceberg_cmd_optimize(int argc, char **argv);

#endif
