/* err.c - formatting for the cdcflow error type. */
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[CF_E__COUNT] = {
    [CF_OK] = "ok", [CF_E_NOMEM] = "nomem", [CF_E_IO] = "io", [CF_E_ARG] = "arg",
    [CF_E_PARSE] = "parse", [CF_E_TYPE] = "type", [CF_E_UNSUPPORTED] = "unsupported",
    [CF_E_CONFLICT] = "conflict", [CF_E_KAFKA] = "kafka", [CF_E_HTTP] = "http",
    [CF_E_DB] = "db", [CF_E_CORRUPT] = "corrupt", [CF_E_TOOBIG] = "toobig",
    [CF_E_STOPPED] = "stopped", [CF_E_FENCED] = "fenced", [CF_E_STALE] = "stale", [CF_E_FULL] = "full",
    [CF_E_NOTFOUND] = "notfound",
};

/* Bad input never is fatal; a broken machine, table or broker is. */
bool cf_code_fatal(cf_code code)
{
    switch (code) {
    case CF_E_NOMEM: case CF_E_IO: case CF_E_CORRUPT: case CF_E_KAFKA:
    case CF_E_CONFLICT: case CF_E_STOPPED: case CF_E_STALE: case CF_E_NOTFOUND:
        return true;
    default:
        return false;
    }
}

static int vset(cf_err *err, cf_code code, long pos, const char *fmt, va_list ap)
{
    if (!err)
        return -1;
    err->code = code;
    err->pos = pos;
    err->retriable = (code == CF_E_CONFLICT || code == CF_E_STALE);
    err->fatal = cf_code_fatal(code);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return -1;
}

int cf_err_set(cf_err *err, cf_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, -1, fmt, ap);
    va_end(ap);
    return -1;
}

int cf_err_setpos(cf_err *err, cf_code code, long pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(err, code, pos, fmt, ap);
    va_end(ap);
    return -1;
}

int cf_err_wrap(cf_err *err, const char *fmt, ...)
{
    char ctx[256], old[sizeof err->msg];
    va_list ap;

    if (!err)
        return -1;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine: the context comes first, the tail may be cut. */
    size_t n = strlen(ctx);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, ctx, n);
    memcpy(err->msg + n, ": ", 2);
    n += 2;
    size_t m = strnlen(old, sizeof old - 1);
    if (m > sizeof err->msg - 1 - n)
        m = sizeof err->msg - 1 - n;
    memcpy(err->msg + n, old, m);
    err->msg[n + m] = '\0';
    return -1;
}

void cf_err_clear(cf_err *err)
{
    if (err) {
        err->code = CF_OK;
        err->retriable = false;
        err->fatal = false;
        err->pos = -1;
        err->msg[0] = '\0';
    }
}

const char *cf_code_name(cf_code code)
{
    if ((unsigned)code >= CF_E__COUNT || !names[code])
        return "unknown";
    return names[code];
}
