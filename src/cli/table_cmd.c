/* table_cmd.c - scan, history and optimize: send each to the Iceberg or the
 * Delta Lake implementation depending on what the TABLE directory holds. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "table/delta/delta_cmd.h"
#include "table/iceberg/iceberg_cmd.h"

/* Options of these commands that take a value (so their value is not
 * mistaken for the TABLE argument). */
static const char *const valued[] = {
    "--version", "--timestamp", "--format", "--limit", "--columns", "--target-size", "--min-files",
    "--snapshot", "--snapshot-id", NULL,
};

static const char *table_arg(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-')
            return a;
        if (strchr(a, '='))
            continue;
        for (int k = 0; valued[k]; k++)
            if (!strcmp(a, valued[k])) {
                i++;
                break;
            }
    }
    return NULL;
}

static int dispatch(int argc, char **argv, int (*delta)(int, char **), int (*iceberg)(int, char **))
{
    const char *t = table_arg(argc, argv);
    if (t && cf_iceberg_is_table(t))
        return iceberg(argc, argv);
    /* Delta also prints --help and the usage errors. */
    return delta(argc, argv);
}

int cf_cmd_scan(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_scan, cf_iceberg_cmd_scan);
}

int cf_cmd_history(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_history, cf_iceberg_cmd_history);
}

int cf_cmd_optimize(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_optimize, cf_iceberg_cmd_optimize);
}
