/* signals.h - graceful stop on SIGTERM/SIGINT: the first signal asks the
 * pipelines to finish their batch, commit and exit 0; a second signal exits
 * at once (commits are atomic, so nothing committed is lost).
 *
 * Every function here may be called from any thread. */
#ifndef CF_SIGNALS_H
#define CF_SIGNALS_H

#include <stdbool.h>

/* Install the handlers (idempotent); SIGPIPE is ignored too. */
void cf_signals_install(void);
/* A stop was asked for, by a signal or by cf_signals_request_stop(). */
bool cf_signals_stop_requested(void);
/* The number of the first signal received, 0 if none (a stop asked for by
 * code is not a signal). */
int  cf_signals_which(void);
/* Ask every pipeline for a graceful stop (e.g. because another one failed).
 * Not a signal: it does not make the operator's first signal a second one. */
void cf_signals_request_stop(void);
/* Forget previous stop requests and signals (tests run several pipelines). */
void cf_signals_reset(void);

#endif
