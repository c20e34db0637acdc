/* fuzz_delta_log.c - libFuzzer target: untrusted Delta log text (commit
 * files, schemaString, stats, _last_checkpoint) and Parquet checkpoints
 * (inputs starting with "PAR1") must never crash the snapshot replay. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "table/delta/delta_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_err e;
    cf_delta_snap *s = cf_delta_snap_new(NULL, "/nonexistent", &e);
    char *text;

    if (!s)
        return 0;
    if (size >= 4 && !memcmp(data, "PAR1", 4)) {
        /* a checkpoint, then a commit on top of what it gave */
        if (cf_delta_checkpoint_read_mem(s, data, size, &e) == 0 && s->schema)
            free(cf_delta_schema_json(s->schema, &e));
        static const char rm[] = "{\"remove\":{\"path\":\"a\"}}";
        cf_delta_snap_apply(s, rm, sizeof rm - 1, 1, &e);
        cf_delta_snap_free(s);
        return 0;
    }
    /* the same bytes as a commit, twice (replacing adds, reapplying txns) */
    cf_delta_snap_apply(s, (const char *)data, size, 0, &e);
    cf_delta_snap_apply(s, (const char *)data, size, 1, &e);
    if (s->schema)
        free(cf_delta_schema_json(s->schema, &e));
    cf_delta_snap_free(s);

    if (!(text = malloc(size + 1)))
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    cf_schema *sch = cf_delta_schema_parse(text, &e);
    cf_schema_free(sch);
    (void)cf_delta_stats_num_records(text);
    free(cf_delta_path_decode(text));
    int32_t d;
    int64_t t;
    (void)cf_delta_parse_date(text, &d);
    (void)cf_delta_parse_ts(text, &t);
    free(text);
    return 0;
}
