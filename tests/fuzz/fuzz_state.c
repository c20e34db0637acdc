/* fuzz_state.c - libFuzzer target: the total_orders state file reader on
 * untrusted bytes.  The input gets a valid CRC-32 appended, so the fuzzer
 * reaches the lengths and counts behind the checksum. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "state/enrich.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cf_enrich *e;
    cf_offsets offs = { 0 };
    cf_err err = { 0 };
    uint8_t *p;
    uLong crc;

    if (!e && !(e = cf_enrich_new(&(cf_enrich_config){ .orders_topic = "o", .location = "/tmp" }, &err)))
        abort();
    if (size > (1u << 20) || !(p = malloc(size + 4)))
        return 0;
    memcpy(p, data, size);
    crc = crc32(0, p, (uInt)size);
    for (int i = 0; i < 4; i++)
        p[size + (size_t)i] = (uint8_t)(crc >> (8 * i));
    (void)cf_enrich_decode(e, p, size + 4, &offs, &err);
    cf_offsets_free(&offs);
    free(p);
    return 0;
}
