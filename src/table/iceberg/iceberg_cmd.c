/* iceberg_cmd.c - placeholder until the Iceberg table commands land. */
#include <stdio.h>
#include "table/iceberg/iceberg_cmd.h"

bool cf_iceberg_is_table(const char *dir) { (void)dir; return false; }
int cf_iceberg_cmd_scan(int argc, char **argv) { (void)argc; (void)argv; fputs("not implemented\n", stderr); return 3; }
int cf_iceberg_cmd_history(int argc, char **argv) { (void)argc; (void)argv; fputs("not implemented\n", stderr); return 3; }
int cf_iceberg_cmd_optimize(int argc, char **argv) { (void)argc; (void)argv; fputs("not implemented\n", stderr); return 3; }
