/* iceberg_sink.c - placeholder until the iceberg sink lands. */
#include "table/table.h"

static int nop_open(cf_sink *s, cf_err *err)
{ (void)s; return cf_err_set(err, CF_E_UNSUPPORTED, "the iceberg sink is not implemented yet"); }

const cf_sink_ops cf_iceberg_sink_ops = { "iceberg", nop_open, NULL, NULL, NULL };
