/* log.c - leveled log lines to stderr. */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static _Atomic int cur_level = CF_LOG_INFO;
static void (*_Atomic pre_hook)(void);

static const char *const names[] = { "error", "warn", "info", "debug" };

void cf_log_set_level(cf_log_level lvl) { atomic_store(&cur_level, (int)lvl); }
cf_log_level cf_log_get_level(void) { return (cf_log_level)atomic_load(&cur_level); }
void cf_log_set_pre_hook(void (*hook)(void)) { atomic_store(&pre_hook, hook); }

int cf_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(s, names[i]))
            return i;
    if (!strcmp(s, "warning"))
        return CF_LOG_WARN;
    return -1;
}

const char *cf_log_level_name(cf_log_level lvl)
{
    return (unsigned)lvl < sizeof names / sizeof *names ? names[lvl] : "?";
}

void cf_log(cf_log_level lvl, const char *comp, const char *fmt, ...)
{
    char line[2048], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;
    void (*hook)(void);

    if (!cf_log_enabled(lvl))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof line, "%s.%03ldZ %-5s %s: ", ts, now.tv_nsec / 1000000L,
                 lvl == CF_LOG_ERROR ? "ERROR" : lvl == CF_LOG_WARN ? "WARN"
                 : lvl == CF_LOG_INFO ? "INFO" : "DEBUG", comp ? comp : "cdcflow");
    if (n < 0 || n >= (int)sizeof line)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if ((hook = atomic_load(&pre_hook)))
        hook();
    /* One fputs per line: stdio locks the stream, so threads do not interleave. */
    n = (int)strlen(line);
    if (n < (int)sizeof line - 1) {
        line[n] = '\n';
        line[n + 1] = '\0';
    } else {
        line[sizeof line - 2] = '\n';
    }
    fputs(line, stderr);
}
