/* pipeline_cmd.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_delta(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: delta: not implemented yet\n", stderr); return 3; }
int cf_cmd_iceberg(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: iceberg: not implemented yet\n", stderr); return 3; }
int cf_cmd_run(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: run: not implemented yet\n", stderr); return 3; }
