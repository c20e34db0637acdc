/* s3.c - the store on S3 and S3-compatible servers. */
#include "store/store_int.h"

cf_store *cf_store_s3_open(const cf_store_config *cfg, cf_err *err)
{
    (void)cfg;
    return cf_err_set(err, CF_E_UNSUPPORTED, "s3:// locations are not supported yet"), NULL;
}
