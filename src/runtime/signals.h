/* signals.h - graceful stop on SIGTERM/SIGINT: the first signal asks the
 * pipeline to finish its batch, commit and exit 0; a second one exits at
 * once (commits are atomic, so nothing committed is lost). */
#ifndef CF_SIGNALS_H
#define CF_SIGNALS_H

#include <stdbool.h>

/* Install the handlers (idempotent); SIGPIPE is ignored too. */
void cf_signals_install(void);
/* A stop was asked for (by signal or cf_signals_request_stop). */
bool cf_signals_stop_requested(void);
/* The signal number that asked, 0 if none or asked by code. */
int  cf_signals_which(void);
void cf_signals_request_stop(void);
/* Forget a previous stop request (tests run several pipelines). */
void cf_signals_reset(void);

#endif
