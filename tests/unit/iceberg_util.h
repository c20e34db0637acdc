/* iceberg_util.h - the tests' way to an Iceberg table on local disk: its
 * directory catalog over the tests' local store. */
#ifndef CF_TEST_ICEBERG_UTIL_H
#define CF_TEST_ICEBERG_UTIL_H

#include "local_store.h"
#include "table/iceberg/iceberg_int.h"

/* Load the current metadata of the table in dir into *t (freed by the
 * caller with cf_ice_table_free, also on failure). */
static inline int ice_load(const char *dir, cf_ice_table *t, cf_err *err)
{
    cf_ice_catalog *c = cf_ice_catalog_open(NULL, dir, NULL, local_store(), err);
    int rc = c ? cf_ice_catalog_load(c, t, err) : -1;

    if (!c)
        memset(t, 0, sizeof *t);
    cf_ice_catalog_close(c);
    return rc;
}

/* Publish meta (stolen) as the version after t, as a foreign writer would. */
static inline int ice_commit(const char *dir, cf_ice_table *t, json_t *meta, cf_err *err)
{
    cf_ice_catalog *c = cf_ice_catalog_open(NULL, dir, NULL, local_store(), err);
    int rc = c ? cf_ice_catalog_commit(c, t, meta, NULL, err) : (json_decref(meta), -1);

    cf_ice_catalog_close(c);
    return rc;
}

#endif
