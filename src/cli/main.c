/* main.c - cdcflow's entry point: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/version.h"

static const struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    { "delta",     cf_cmd_delta,     "run the Kafka -> Delta Lake (Change Data Feed) pipeline" },
    { "iceberg",   cf_cmd_iceberg,   "run the Kafka -> Apache Iceberg v2 pipeline" },
    { "run",       cf_cmd_run,       "run a multi-table pipeline from a config file" },
    { "connector", cf_cmd_connector, "register, inspect or delete the Debezium connector" },
    { "generate",  cf_cmd_generate,  "write sample inserts/updates/deletes into PostgreSQL" },
    { "peek",      cf_cmd_peek,      "list CDC topics or print events from one" },
    { "scan",      cf_cmd_scan,      "print a table's rows (time travel with --version)" },
    { "history",   cf_cmd_history,   "list a table's versions / snapshots" },
    { "changes",   cf_cmd_changes,   "read a Delta table's Change Data Feed" },
    { "optimize",  cf_cmd_optimize,  "compact small files of a table" },
    { "vacuum",    cf_cmd_vacuum,    "remove unreferenced files of a Delta table" },
    { "expire-snapshots", cf_cmd_expire_snapshots, "expire old snapshots of an Iceberg table" },
    { "health",    cf_cmd_health,    "probe a running pipeline's health endpoint" },
};

static void usage(FILE *out)
{
    fprintf(out,
            "cdcflow %s - PostgreSQL change data (Debezium on Kafka) into Delta Lake and Iceberg tables\n"
            "\n"
            "Usage: cdcflow <command> [options]\n"
            "       cdcflow <command> --help\n"
            "\n"
            "Commands:\n", CF_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nOptions:\n  -h, --help        show this help\n  -V, --version     show the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("cdcflow %s\n", CF_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "cdcflow: unknown command '%s' (see cdcflow --help)\n", argv[1]);
    return 2;
}
