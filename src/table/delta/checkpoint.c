/* checkpoint.c - classic single-file Parquet checkpoints of the Delta log. */
#include "table/delta/delta_int.h"

int cf_delta_checkpoint_write(const cf_delta_snap *s, cf_err *err)
{
    (void)s;
    return cf_err_set(err, CF_E_UNSUPPORTED, "checkpoints are not written yet");
}

int cf_delta_checkpoint_read(cf_delta_snap *s, int64_t version, cf_err *err)
{
    (void)s;
    return cf_err_set(err, CF_E_UNSUPPORTED, "checkpoint %lld cannot be read yet", (long long)version);
}
