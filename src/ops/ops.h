/* ops.h - the operator kit (connector, generate, peek): the pieces its three
 * commands share, and the server-free parts they are built from, exposed so
 * the unit tests can reach them. */
#ifndef CF_OPS_H
#define CF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util/buf.h"
#include "util/err.h"

/* ---------------------------------------------------------------- args */

/* Matches argv[*i] against the long option `name` ("--name value" or
 * "--name=value").  Returns 1 and sets *val (pointing into argv) when it
 * matches, advancing *i past a separate value; 0 when argv[*i] is some other
 * option; -1 (CF_E_ARG) when the option matches but its value is missing. */
int cf_ops_opt(int argc, char **argv, int *i, const char *name, const char **val, cf_err *err);

/* Strict integer / number parsing with a range; `what` names the option in
 * the message. */
int cf_ops_parse_i64(const char *s, const char *what, int64_t lo, int64_t hi,
                     int64_t *out, cf_err *err);
int cf_ops_parse_double(const char *s, const char *what, double lo, double hi,
                        double *out, cf_err *err);

/* getenv(name) unless unset or empty, else dflt. */
const char *cf_ops_env(const char *name, const char *dflt);

/* Seconds since an arbitrary start, monotonic. */
double cf_ops_now(void);

/* ---------------------------------------------------------------- PRNG */

/* xoshiro256** seeded through splitmix64: our own generator, so one seed
 * gives the same sequence on every platform and libc. */
typedef struct cf_ops_rng { uint64_t s[4]; } cf_ops_rng;

uint64_t cf_ops_splitmix64(uint64_t *state);
void     cf_ops_rng_seed(cf_ops_rng *r, uint64_t seed);
uint64_t cf_ops_rng_next(cf_ops_rng *r);
/* Uniform in [0, n); n == 0 gives 0.  Unbiased (rejection sampling). */
uint64_t cf_ops_rng_below(cf_ops_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double   cf_ops_rng_unit(cf_ops_rng *r);
/* True with probability p. */
bool     cf_ops_rng_chance(cf_ops_rng *r, double p);

/* ----------------------------------------------------------- connector */

#define CF_OPS_CONN_MAX_SETS 64

typedef enum { CF_CONN_REGISTER, CF_CONN_STATUS, CF_CONN_DELETE } cf_ops_conn_action;

typedef struct cf_ops_conn_opts {
    cf_ops_conn_action action;
    const char *connect_url;
    const char *name;
    const char *tables;         /* table.include.list */
    const char *topic_prefix;
    const char *slot;
    bool        slot_set;       /* --slot given (else delete uses the connector's own) */
    const char *publication;
    const char *decimal_mode;   /* precise | double | string */
    const char *format;         /* json (JsonConverter with schemas) | avro (Apicurio AvroConverter) */
    const char *registry_url;   /* avro: Apicurio Registry's native v2 API */
    const char *avro_framing;   /* avro: confluent (magic 0 + 4-byte content id) | apicurio (0 + 8-byte global id) */
    bool        name_set, prefix_set;   /* --name / --topic-prefix given (else they follow --format) */
    const char *db_host, *db_port, *db_user, *db_password, *db_name;
    const char *sets[CF_OPS_CONN_MAX_SETS];   /* "key=value", applied last */
    int         nsets;
    double      wait_s;         /* register: how long to wait for RUNNING */
    double      timeout_s;      /* per HTTP request */
    bool        drop_slot;      /* delete: also drop the replication slot */
    bool        help;
    FILE       *out;            /* reports (stdout) */
    FILE       *log;            /* failures and traces (stderr) */
} cf_ops_conn_opts;

/* Defaults, with the environment (KAFKA_CONNECT_URL, PG*) applied. */
void cf_ops_conn_defaults(cf_ops_conn_opts *o);
/* Parses "register|status|delete [options]" (argv[0] is "connector").
 * Pointers in *o point into argv or static strings. */
int  cf_ops_conn_parse(int argc, char **argv, cf_ops_conn_opts *o, cf_err *err);
/* Runs the parsed action.  Returns the exit status (0, or 1 when status
 * finds the connector not RUNNING or not registered), -1 with *err set on
 * failure. */
int  cf_ops_conn_run(const cf_ops_conn_opts *o, cf_err *err);
/* The Debezium connector configuration as a JSON object (new reference,
 * caller json_decref()s it).  NULL on a bad --set. */
json_t *cf_ops_conn_config(const cf_ops_conn_opts *o, cf_err *err);

/* True when Connect's stored config `have` (GET .../config) is exactly `want`
 * plus the "name" Connect adds: registering again would change nothing. */
bool cf_ops_conn_config_same(json_t *want, json_t *have);

#define CF_OPS_CONN_MAX_TASKS 16

typedef struct cf_ops_conn_status {
    char state[32];             /* connector state: RUNNING, FAILED, ... */
    char worker[128];
    int  ntasks;                /* tasks listed (capped) */
    struct { int id; char state[32]; char worker[128]; } tasks[CF_OPS_CONN_MAX_TASKS];
    char trace[1024];           /* first lines of the first FAILED trace, or "" */
} cf_ops_conn_status;

/* Parses Kafka Connect's GET /connectors/NAME/status body. */
int  cf_ops_conn_parse_status(const char *body, size_t len, cf_ops_conn_status *st, cf_err *err);
/* Connector RUNNING and at least one task, every task RUNNING. */
bool cf_ops_conn_all_running(const cf_ops_conn_status *st);
/* Connector or any task FAILED. */
bool cf_ops_conn_any_failed(const cf_ops_conn_status *st);
/* Copies at most `max_lines` lines of `trace` into out (always terminated). */
void cf_ops_first_lines(const char *trace, int max_lines, char *out, size_t outsz);

/* ------------------------------------------------------------ generate */

typedef enum { CF_GEN_CUSTOMERS, CF_GEN_PRODUCTS, CF_GEN_INVENTORY, CF_GEN_ORDERS,
               CF_GEN_NTABLES } cf_gen_table;
typedef enum { CF_GEN_INSERT, CF_GEN_UPDATE, CF_GEN_DELETE, CF_GEN_NKINDS } cf_gen_kind;

/* A count given as a number or as a percentage of the rows inserted. */
typedef struct cf_ops_count { double value; bool percent; } cf_ops_count;

typedef struct cf_ops_gen_opts {
    int64_t      customers, orders, products;
    cf_ops_count updates, deletes;
    uint64_t     seed;
    int64_t      batch;         /* statements per transaction */
    double       rate;          /* statements per second, 0 = unthrottled */
    const char  *dsn;           /* NULL: from PG* env and defaults */
    bool         dry_run;       /* print SQL, touch no database */
    bool         new_rows_only; /* update/delete only rows this run inserted */
    bool         json;          /* summary as JSON */
    bool         help;
} cf_ops_gen_opts;

void cf_ops_gen_defaults(cf_ops_gen_opts *o);
int  cf_ops_gen_parse(int argc, char **argv, cf_ops_gen_opts *o, cf_err *err);
/* Resolves a count against the number of rows inserted. */
int64_t cf_ops_count_resolve(cf_ops_count c, int64_t inserted);

#define CF_GEN_MAX_PARAMS 16

/* One statement of the plan: a prepared statement and its text parameters
 * (NULL = SQL NULL).  Parameters point into the planner; they stay valid
 * until the next cf_ops_gen_next(). */
typedef struct cf_ops_gen_stmt {
    int          stmt;          /* index into cf_ops_gen_sql() */
    cf_gen_table table;
    cf_gen_kind  kind;
    int          nparams;
    const char  *params[CF_GEN_MAX_PARAMS];
    int64_t      expect_rows;   /* rows the planner expects it to touch */
} cf_ops_gen_stmt;

typedef struct cf_ops_gen_sql { const char *name, *sql; int nparams; } cf_ops_gen_sql;

/* The prepared statements the plan uses, `*n` of them (static storage). */
const cf_ops_gen_sql *cf_ops_gen_statements(int *n);

typedef struct cf_ops_gen cf_ops_gen;

/* Reserves primary keys for planned inserts: fills ids[0..n) for `table`.
 * The database version draws them from the table's sequence; the dry-run
 * version counts up from 1. */
typedef int (*cf_ops_gen_ids_fn)(void *ctx, cf_gen_table t, int64_t *ids, int64_t n, cf_err *err);

/* A planner for the statement sequence that opts describe.  Returns NULL on
 * error.  Free with cf_ops_gen_free(). */
cf_ops_gen *cf_ops_gen_new(const cf_ops_gen_opts *o, cf_err *err);
void        cf_ops_gen_free(cf_ops_gen *g);
/* Tells the planner about a row that exists before the run (so updates and
 * deletes can pick it).  `parent` is the customer of an order, the product of
 * an inventory row, else 0; `state` is an order's cf_ops_gen_order_state(),
 * else 0.  Call before cf_ops_gen_reserve_ids(). */
int  cf_ops_gen_add_existing(cf_ops_gen *g, cf_gen_table t, int64_t id, int64_t parent,
                             int64_t state, cf_err *err);
/* An order status ("pending", "paid", ...) as the planner's state number;
 * unknown statuses count as pending. */
int  cf_ops_gen_order_state(const char *status);
/* Draws the primary keys of every planned insert up front, through fn. */
int  cf_ops_gen_reserve_ids(cf_ops_gen *g, cf_ops_gen_ids_fn fn, void *ctx, cf_err *err);
/* Rows of `t` this plan inserts (inventory: one per product). */
int64_t cf_ops_gen_planned_inserts(const cf_ops_gen *g, cf_gen_table t);
/* Next statement: 1 with *st filled, 0 when the plan is done, -1 on error
 * (e.g. orders requested but no customer or product can exist). */
int  cf_ops_gen_next(cf_ops_gen *g, cf_ops_gen_stmt *st, cf_err *err);
/* Statements issued so far, per table and kind. */
int64_t cf_ops_gen_issued(const cf_ops_gen *g, cf_gen_table t, cf_gen_kind k);

/* Appends `sql` with $n placeholders replaced by quoted literals (or NULL),
 * terminated by ";\n".  Quotes are doubled; E'' strings are never used. */
int cf_ops_gen_render(cf_buf *out, const char *sql, int nparams, const char *const *params,
                      cf_err *err);

const char *cf_ops_gen_table_name(cf_gen_table t);
const char *cf_ops_gen_kind_name(cf_gen_kind k);

/* ---------------------------------------------------------------- peek */

typedef struct cf_ops_peek_opts {
    const char *bootstrap;
    const char *topic;          /* NULL: list topics */
    const char *prefix;         /* topic filter when listing */
    int64_t     n;              /* messages to print, 0 = all available */
    bool        from_beginning; /* first n instead of last n */
    bool        raw;            /* print values as received */
    double      timeout_s;
    bool        help;
} cf_ops_peek_opts;

void cf_ops_peek_defaults(cf_ops_peek_opts *o);
int  cf_ops_peek_parse(int argc, char **argv, cf_ops_peek_opts *o, cf_err *err);
/* Lists the topics, or prints o->topic's messages, to `out`.  Notes (timed
 * out, empty topic) go to stderr. */
int  cf_ops_peek_run(const cf_ops_peek_opts *o, FILE *out, cf_err *err);

/* Appends one line "P@OFFSET key=K op=OP value=V\n" for a Kafka message.
 * With schemas.enable=true the Connect envelope {"schema","payload"} is
 * unwrapped unless raw, and printed as the bytes Connect wrote; a NULL value
 * is a tombstone (op "tombstone", value null); no op field gives op "-";
 * bytes that are not JSON are printed as a JSON string. */
int cf_ops_peek_format(cf_buf *out, int32_t partition, int64_t offset,
                       const void *key, size_t klen, const void *val, size_t vlen,
                       bool raw, cf_err *err);

#endif
