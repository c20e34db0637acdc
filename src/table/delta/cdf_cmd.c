/* cdf_cmd.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_changes(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: changes: not implemented yet\n", stderr); return 3; }
int cf_cmd_vacuum(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: vacuum: not implemented yet\n", stderr); return 3; }
