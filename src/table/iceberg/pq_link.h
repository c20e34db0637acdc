/* pq_link.h - the Parquet functions the Iceberg code calls, referenced
 * weakly so cdcflow links while the Parquet module is still landing; every
 * entry point checks cf_ice_have_parquet() and fails cleanly without it. */
#ifndef CF_ICE_PQ_LINK_H
#define CF_ICE_PQ_LINK_H

#include <stdbool.h>
#include "format/parquet/parquet.h"

#pragma weak cf_pq_options_default
#pragma weak cf_pq_file_info_free
#pragma weak cf_pq_writer_open
#pragma weak cf_pq_writer_write
#pragma weak cf_pq_writer_write_rows
#pragma weak cf_pq_writer_close
#pragma weak cf_pq_writer_abort
#pragma weak cf_pq_reader_open
#pragma weak cf_pq_reader_close
#pragma weak cf_pq_reader_schema
#pragma weak cf_pq_reader_num_rows
#pragma weak cf_pq_reader_num_row_groups
#pragma weak cf_pq_reader_read

static inline bool cf_ice_have_parquet(void)
{
    return cf_pq_writer_open != NULL && cf_pq_reader_open != NULL && cf_pq_reader_read != NULL;
}

#endif
