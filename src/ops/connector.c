/* connector.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_connector(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: connector: not implemented yet\n", stderr); return 3; }
