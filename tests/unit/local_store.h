/* local_store.h - the local store the unit tests and benchmarks read and
 * write their files through (one per process, never closed). */
#ifndef CF_TEST_LOCAL_STORE_H
#define CF_TEST_LOCAL_STORE_H

#include <stdlib.h>
#include "store/store.h"

static inline cf_store *local_store(void)
{
    static cf_store *st;
    if (!st && !(st = cf_store_open("/", NULL, NULL)))
        abort();
    return st;
}

#endif
