/* fuzz_iceberg_meta.c - libFuzzer target: Iceberg table metadata JSON from
 * untrusted bytes through the schema, partition spec and snapshot readers. */
#include <stdlib.h>
#include <string.h>
#include "table/iceberg/iceberg_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_err err = { 0 };
    json_t *meta = json_loadb((const char *)data, size, 0, NULL);
    cf_schema *s;
    cf_ice_spec sp;
    char *text;
    int64_t ms;

    if ((text = malloc(size + 1))) {
        memcpy(text, data, size);
        text[size] = 0;
        (void)cf_ice_parse_time(text, 0, &ms);
        free(text);
    }
    if (!meta)
        return 0;
    (void)cf_ice_snapshot(meta, -1);
    (void)cf_ice_current_snapshot_id(meta);
    if ((s = cf_ice_schema_from_json(meta, -1, &err))) {
        (void)cf_ice_spec_from_json(meta, s, &sp, &err);
        cf_schema_free(s);
    }
    json_decref(meta);
    return 0;
}
