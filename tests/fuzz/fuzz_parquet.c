/* fuzz_parquet.c - libFuzzer target: the Parquet reader on untrusted bytes
 * (footer, schema, every row group of the flat view, every nested leaf). */
#include <stddef.h>
#include <stdint.h>
#include "format/parquet/parquet.h"

/* The reader bounds pages by the file; a caller still decides how many rows
 * it is willing to hold: this one refuses row groups over a million. */
#define MAX_ROWS 1000000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_err err = { 0 };
    cf_pq_reader *r = cf_pq_reader_open_mem(data, size, &err);
    cf_pq_leaf_data leaf = { 0 };
    cf_batch *b;

    if (!r)
        return 0;
    (void)cf_pq_reader_kv(r, "cdcflow.fixture");
    b = cf_batch_new(cf_pq_reader_schema(r), &err);
    for (int g = 0; b && g < cf_pq_reader_num_row_groups(r); g++) {
        if (cf_pq_reader_row_group_rows(r, g) > MAX_ROWS)
            continue;
        cf_batch_reset(b);
        (void)cf_pq_reader_read(r, g, NULL, 0, b, &err);
        for (int l = 0; l < cf_pq_reader_num_leaves(r); l++)
            (void)cf_pq_reader_read_leaf(r, g, l, &leaf, &err);
    }
    cf_pq_leaf_data_free(&leaf);
    cf_batch_free(b);
    cf_pq_reader_close(r);
    return 0;
}
