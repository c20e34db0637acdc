/* table_cmd.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_scan(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: scan: not implemented yet\n", stderr); return 3; }
int cf_cmd_history(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: history: not implemented yet\n", stderr); return 3; }
int cf_cmd_optimize(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: optimize: not implemented yet\n", stderr); return 3; }
