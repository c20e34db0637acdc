/* peek.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_peek(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: peek: not implemented yet\n", stderr); return 3; }
