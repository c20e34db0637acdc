/* table.c - open a table sink by kind. */
#include "table/table.h"

#include <stdlib.h>
#include <string.h>

cf_sink *cf_sink_open(const cf_sink_config *cfg, cf_err *err)
{
    const cf_sink_ops *ops;
    cf_sink *s;

    if (cfg->kind && !strcmp(cfg->kind, "delta"))
        ops = &cf_delta_sink_ops;
    else if (cfg->kind && !strcmp(cfg->kind, "iceberg"))
        ops = &cf_iceberg_sink_ops;
    else {
        cf_err_set(err, CF_E_ARG, "unknown sink '%s' (delta or iceberg)", cfg->kind ? cfg->kind : "");
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    s->ops = ops;
    s->cfg = *cfg;
    if (ops->open(s, err)) {
        free(s);
        return NULL;
    }
    return s;
}

void cf_sink_close(cf_sink *s)
{
    if (!s)
        return;
    if (s->ops->close)
        s->ops->close(s);
    free(s);
}
