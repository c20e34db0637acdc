/* generate.c - placeholder until implemented. */
#include <stdio.h>
#include "cli/commands.h"
int cf_cmd_generate(int argc, char **argv) { (void)argc; (void)argv; fputs("cdcflow: generate: not implemented yet\n", stderr); return 3; }
