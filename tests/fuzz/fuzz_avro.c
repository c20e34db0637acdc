/* fuzz_avro.c - libFuzzer target: the Avro container reader on untrusted bytes. */
#include <stddef.h>
#include <stdint.h>
#include "format/avro/avro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_err err = { 0 };
    cf_avro_reader *r = cf_avro_reader_open_mem(data, size, &err);
    const cf_avro_value *v;
    char buf[64];
    int n = 0;

    if (!r)
        return 0;
    while (n++ < 100000 && cf_avro_reader_next(r, &v, &err) == 1)
        (void)cf_avro_get_str(v, "file_path", buf, sizeof buf);
    cf_avro_reader_free(r);
    return 0;
}
