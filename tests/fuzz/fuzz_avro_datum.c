/* fuzz_avro_datum.c - libFuzzer target for the Avro path of the Debezium
 * decoder: registry framing, plans compiled from the fixtures' writer
 * schemas (tests/data/avro/<id>.avsc, ids 1-7: keys and values of
 * customers, orders and a table of every logical type), datums.
 *
 * Each input is decoded as a value (Confluent and Apicurio framing), and as
 * a key, by decoders whose caches stay warm across inputs; no registry
 * server: an id outside 1-7 is an unknown id.  Seeds: tests/data/fuzz/avro_datum/
 * (make_fixtures.py writes the fixtures' value messages there). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/debezium.h"

static cf_registry *reg[2];
static cf_decoder *dec[2];

static unsigned touch(const cf_event *ev)
{
    unsigned h = (unsigned)ev->op;
    const cf_row *rows[2] = { &ev->before, &ev->after };

    h += (unsigned)strlen(ev->src.db) + (unsigned)strlen(ev->src.table) + (unsigned)strlen(ev->src.snapshot);
    for (int r = 0; r < 2; r++) {
        if (!rows[r]->present || !ev->schema)
            continue;
        for (int i = 0; i < ev->schema->nfields; i++) {
            const cf_value *v = &rows[r]->vals[i];
            if (v->kind == CF_V_STRING || v->kind == CF_V_BYTES)
                for (size_t k = 0; k < v->n; k++)
                    h += (unsigned char)v->s[k];
        }
    }
    return h;
}

static void load_schemas(cf_registry *r)
{
    for (int id = 1; id <= 7; id++) {
        char path[256], *buf;
        FILE *f;
        long n;
        snprintf(path, sizeof path, "tests/data/avro/%d.avsc", id);
        if (!(f = fopen(path, "rb"))) {
            fprintf(stderr, "fuzz_avro_datum: cannot open %s (run from the repository root)\n", path);
            abort();
        }
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc((size_t)n);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n || cf_registry_put(r, id, buf, (size_t)n, NULL))
            abort();
        free(buf);
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    for (int i = 0; i < 2; i++) {
        cf_registry_config rc = { .framing = i ? CF_REG_APICURIO : CF_REG_CONFLUENT };
        cf_decoder_config dc = { .value_format = CF_DEC_AVRO, .key_format = CF_DEC_AVRO,
                                 .max_batch_bytes = 8u << 20 };
        if (!(reg[i] = cf_registry_new(&rc, NULL)))
            abort();
        load_schemas(reg[i]);
        dc.registry = reg[i];
        if (!(dec[i] = cf_decoder_new(&dc, NULL)))
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *topics[] = { "postgres.public.customers", "postgres.public.orders" };
    volatile unsigned sink = 0;

    for (int i = 0; i < 2; i++) {
        cf_msg m = { .topic = topics[size & 1], .offset = 1, .value = data, .value_len = size };
        cf_msg k = { .topic = topics[size & 1], .offset = 2, .key = data, .key_len = size };
        cf_event ev;
        cf_err err;

        if (cf_decoder_decode(dec[i], &m, &ev, &err) == 0)
            sink += touch(&ev);
        else if (err.msg[0] == '\0')
            abort();                    /* every failure says why */
        if (cf_decoder_decode(dec[i], &k, &ev, &err) == 0)
            sink += touch(&ev);
        cf_decoder_reset(dec[i]);
    }
    (void)sink;
    return 0;
}
