/* expire_cmd.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_expire_snapshots(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: expire_snapshots: not implemented yet\n", stderr); return 3; }
