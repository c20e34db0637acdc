/* table_cmd.c - scan, history and optimize: send each to the Iceberg or the
 * Delta Lake implementation depending on what the TABLE directory holds
 * (with ICEBERG_CATALOG_URI set, an object-storage TABLE without a Delta log
 * is the REST catalog's Iceberg table: cf_iceberg_is_table). */
#include <stdbool.h>
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

/* What --help adds after the Delta usage: how the command treats an
 * Iceberg TABLE (the Iceberg usage itself: `cdcflow CMD ICEBERG_TABLE --help`). */
static const char scan_iceberg_help[] =
    "\n"
    "Iceberg tables (TABLE holds metadata/*.metadata.json, or with ICEBERG_CATALOG_URI set is\n"
    "WAREHOUSE/NAMESPACE/TABLE of that REST catalog) are accepted too: the live rows,\n"
    "position deletes applied.  --format, --limit and --columns apply as above; time travel:\n"
    "  --snapshot ID    read snapshot ID (see `cdcflow history TABLE`)\n"
    "  --version N      read the table as metadata version N left it (vN.metadata.json)\n"
    "  --timestamp T    read the newest snapshot committed at or before T\n"
    "`cdcflow scan ICEBERG_TABLE --help` prints the Iceberg usage.\n";
static const char history_iceberg_help[] =
    "\n"
    "Iceberg tables (TABLE holds metadata/*.metadata.json) are accepted too: their snapshots,\n"
    "oldest first (sequence number, snapshot id, parent, commit time, operation, files and\n"
    "records added, total records, Kafka offsets covered).  --format and --limit apply.\n"
    "`cdcflow history ICEBERG_TABLE --help` prints the Iceberg usage.\n";
static const char optimize_iceberg_help[] =
    "\n"
    "Iceberg tables (TABLE holds metadata/*.metadata.json) are accepted too: one 'replace'\n"
    "snapshot rewrites, per partition, the data files smaller than --target-size when there\n"
    "are at least --min-files of them; with position delete files every data file is\n"
    "rewritten without its deleted rows and the delete files are dropped.  Old files stay\n"
    "until `cdcflow expire-snapshots`.  `cdcflow optimize ICEBERG_TABLE --help` prints the\n"
    "Iceberg usage.\n";

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return true;
    return false;
}

static int dispatch(int argc, char **argv, int (*delta)(int, char **), int (*iceberg)(int, char **),
                    const char *iceberg_help)
{
    const char *t = table_arg(argc, argv);
    if (t && cf_iceberg_is_table(t))
        return iceberg(argc, argv);
    /* Delta also prints --help and the usage errors; the help says what
     * applies to Iceberg tables too, since no table told us which. */
    int rc = delta(argc, argv);
    if (wants_help(argc, argv) && rc == 0)
        fputs(iceberg_help, stdout);
    return rc;
}

int cf_cmd_scan(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_scan, cf_iceberg_cmd_scan, scan_iceberg_help);
}

int cf_cmd_history(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_history, cf_iceberg_cmd_history, history_iceberg_help);
}

int cf_cmd_optimize(int argc, char **argv)
{
    return dispatch(argc, argv, cf_delta_cmd_optimize, cf_iceberg_cmd_optimize, optimize_iceberg_help);
}
