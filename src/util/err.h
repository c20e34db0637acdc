/* err.h - the one error type of cdcflow: a code from an append-only enum
 * plus a message, optionally a byte position and a retry hint.
 *
 * Convention: functions take a caller-owned `cf_err *err` last, return 0 (or
 * a non-NULL pointer) on success and leave *err untouched, return -1 (or
 * NULL) on failure with *err filled.  `err` may be NULL when the caller does
 * not care about the message. */
#ifndef CF_ERR_H
#define CF_ERR_H

#include <stddef.h>
#include <stdbool.h>

typedef enum {
    CF_OK = 0,
    CF_E_NOMEM,        /* allocation failed or a buffer cap was hit */
    CF_E_IO,           /* filesystem or socket error (errno in msg) */
    CF_E_ARG,          /* bad argument or configuration */
    CF_E_PARSE,        /* malformed input: JSON, Parquet, Avro, ... */
    CF_E_TYPE,         /* value of the wrong type for its column */
    CF_E_UNSUPPORTED,  /* valid input we do not handle */
    CF_E_CONFLICT,     /* optimistic commit lost: somebody else won */
    CF_E_KAFKA,        /* librdkafka reported an error */
    CF_E_HTTP,         /* a REST peer (Kafka Connect) said no */
    CF_E_DB,           /* PostgreSQL said no */
    CF_E_CORRUPT,      /* a table or file is inconsistent */
    CF_E_TOOBIG,       /* input over a configured size cap */
    CF_E_STOPPED,      /* interrupted by a signal */
    CF_E_FENCED,       /* the table moved past the batch's start: another writer
                        * owns the partition; the batch is dropped, not retried */
    CF_E_STALE,        /* a staged commit was built on a state that changed in a
                        * way it cannot be published over: stage it again */
    CF_E_FULL,         /* a per-batch buffer is full: commit the batch, then go on */
    CF_E_NOTFOUND,     /* no object (file) at that path */
    CF_E__COUNT        /* keep last; append new codes above it */
} cf_code;

/* retriable: the same call may succeed if made again (a lost commit race,
 * a timeout); fatal: the process cannot go on (out of memory, a broken disk
 * or table), as opposed to one bad input that can be set aside.  Both start
 * from the code's default (cf_code_fatal(); only CONFLICT and STALE are
 * retriable) and may be changed by the code that raised the error, which
 * knows best. */
typedef struct cf_err {
    cf_code code;
    bool    retriable;
    bool    fatal;
    long    pos;        /* byte position in the input, -1 if none */
    char    msg[512];
} cf_err;

/* Fill *err (if non-NULL) with code and a printf-style message.
 * Always returns -1 so callers can write `return cf_err_set(...)`. */
int cf_err_set(cf_err *err, cf_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like cf_err_set with a byte position. */
int cf_err_setpos(cf_err *err, cf_code code, long pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepend context to an existing message: "ctx: old message". */
int cf_err_wrap(cf_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reset to CF_OK. */
void cf_err_clear(cf_err *err);

/* Whether errors of this code stop the process by default. */
bool cf_code_fatal(cf_code code);

/* Stable lower-case name of a code ("parse", "io", ...). Never NULL. */
const char *cf_code_name(cf_code code);

#endif
