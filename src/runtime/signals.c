/* signals.c - SIGTERM/SIGINT: first asks for a graceful stop, second exits. */
#include "runtime/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_count;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_count++ > 0) {
        /* Second signal: the operator wants out now.  Async-signal-safe only. */
        static const char msg[] = "cdcflow: second signal, exiting without finishing the batch\n";
        ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)w;
        _exit(128 + sig);
    }
    stop_signal = sig;
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
    return stop_count > 0;
}

int cf_signals_which(void)
{
    return stop_signal;
}

void cf_signals_request_stop(void)
{
    if (!stop_count)
        stop_count = 1;
}

void cf_signals_reset(void)
{
    stop_count = 0;
    stop_signal = 0;
}
