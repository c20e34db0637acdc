/* signals.c - SIGTERM/SIGINT: the first asks for a graceful stop, the
 * operator's second exits at once; code may ask for a stop too. */
#include "runtime/signals.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

/* Written by the signal handler and by pipeline threads (a failed pipeline
 * of `cdcflow run` stops the others), read by every pipeline thread: C11
 * atomics, lock-free on every platform we build for, so the handler may
 * touch them.  Signals and stops asked for by code are kept apart so that
 * only two real signals mean "exit now". */
static atomic_int  nsignals;        /* SIGTERM/SIGINT received */
static atomic_int  first_signal;    /* number of the first one, 0 if none */
static atomic_bool code_stop;       /* cf_signals_request_stop() was called */

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_BOOL_LOCK_FREE == 2,
               "the signal handler needs lock-free atomics");

static void on_signal(int sig)
{
    if (atomic_fetch_add(&nsignals, 1) > 0) {
        /* Second signal: the operator wants out now.  Async-signal-safe only. */
        static const char msg[] = "cdcflow: second signal, exiting without finishing the batch\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    atomic_store(&first_signal, sig);
}

void cf_signals_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a blocking read should return and let the loop look. */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool cf_signals_stop_requested(void)
{
    return atomic_load(&nsignals) > 0 || atomic_load(&code_stop);
}

int cf_signals_which(void)
{
    return atomic_load(&first_signal);
}

void cf_signals_request_stop(void)
{
    atomic_store(&code_stop, true);
}

void cf_signals_reset(void)
{
    atomic_store(&code_stop, false);
    atomic_store(&first_signal, 0);
    atomic_store(&nsignals, 0);
}
