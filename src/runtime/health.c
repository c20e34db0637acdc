/* health.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_health(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: health: not implemented yet\n", stderr); return 3; }
