/* fuzz_iceberg_meta.c - libFuzzer target: Iceberg metadata from untrusted
 * bytes.  Avro input ("Obj\1...") goes through the manifest list and
 * manifest readers; anything else is table metadata JSON through the
 * schema, partition spec, snapshot readers and the bounded-history expiry,
 * and text through the time parser and the uuid/decimal bound encoders. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "table/iceberg/iceberg_int.h"
#include "store/store.h"

static void fuzz_avro_manifests(const uint8_t *data, size_t size)
{
    static char path[64];
    static cf_store *st;
    cf_err err = { 0 };
    cf_ice_mlist l = { 0 };
    cf_ice_mfile mf = { 0 };
    cf_ice_file *files = NULL;
    int n = 0;
    FILE *f;

    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_iceberg_meta.%d.avro", (int)getpid());
    if (!(f = fopen(path, "wb")))
        return;
    fwrite(data, 1, size, f);
    fclose(f);
    if (!st && !(st = cf_store_open("/", NULL, NULL)))
        return;
    if (cf_ice_read_mlist(st, path, &l, &err) == 0)
        cf_ice_mlist_free(&l);
    mf.path = path;
    mf.seq = 1;
    (void)cf_ice_read_manifest(st, &mf, &files, &n, &err);
    cf_ice_files_free(files, n);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_err err = { 0 };
    json_t *meta;
    cf_schema *s;
    cf_ice_spec sp;
    char *text;
    int64_t ms;

    if (size >= 4 && !memcmp(data, "Obj\x01", 4)) {
        fuzz_avro_manifests(data, size);
        return 0;
    }
    if ((text = malloc(size + 1))) {
        memcpy(text, data, size);
        text[size] = 0;
        (void)cf_ice_parse_time(text, 0, &ms);
        {
            /* bounds from statistics text: uuids and wide decimals */
            uint8_t out[16];
            cf_type uu = { .id = CF_T_UUID }, wide = { CF_T_DECIMAL, 38, (int)(size % 39) };
            (void)cf_ice_single_value(&uu, 0, 0, text, size, out, sizeof out);
            (void)cf_ice_single_value(&wide, 0, 0, text, size, out, sizeof out);
        }
        free(text);
    }
    if (!(meta = json_loadb((const char *)data, size, 0, NULL)))
        return 0;
    (void)cf_ice_snapshot(meta, -1);
    (void)cf_ice_current_snapshot_id(meta);
    (void)cf_ice_expire_history(meta, 1767225600000LL);
    if ((s = cf_ice_schema_from_json(meta, -1, &err))) {
        (void)cf_ice_spec_from_json(meta, s, &sp, &err);
        cf_schema_free(s);
    }
    json_decref(meta);
    return 0;
}
