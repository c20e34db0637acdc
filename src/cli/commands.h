/* commands.h - the subcommands of cdcflow.  Each takes the arguments after
 * its name (argv[0] is the subcommand name) and returns the process exit
 * code.  Each prints its own --help. */
#ifndef CF_COMMANDS_H
#define CF_COMMANDS_H

int cf_cmd_delta(int argc, char **argv);        /* runtime/pipeline_cmd.c */
int cf_cmd_iceberg(int argc, char **argv);      /* runtime/pipeline_cmd.c */
int cf_cmd_run(int argc, char **argv);          /* runtime/pipeline_cmd.c: multi-table config */
int cf_cmd_health(int argc, char **argv);       /* runtime/health.c */
int cf_cmd_connector(int argc, char **argv);    /* ops/connector.c */
int cf_cmd_generate(int argc, char **argv);     /* ops/generate.c */
int cf_cmd_peek(int argc, char **argv);         /* ops/peek.c: show Kafka topics/events */
int cf_cmd_scan(int argc, char **argv);         /* cli/table_cmd.c */
int cf_cmd_history(int argc, char **argv);      /* cli/table_cmd.c */
int cf_cmd_changes(int argc, char **argv);      /* table/delta/cdf_cmd.c */
int cf_cmd_optimize(int argc, char **argv);     /* cli/table_cmd.c */
int cf_cmd_vacuum(int argc, char **argv);       /* table/delta/ */
int cf_cmd_expire_snapshots(int argc, char **argv); /* table/iceberg/ */

#endif
