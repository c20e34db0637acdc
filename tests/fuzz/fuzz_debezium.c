/* fuzz_debezium.c - libFuzzer target for the Debezium decoder and the
 * transforms: any bytes in, never a crash, a leak or undefined behaviour.
 *
 * Input: byte 0 = flags (bit 0: a key follows, its length in byte 1;
 * bit 1: topic "postgres.public.all_types" instead of customers; bit 2: a
 * tiny size cap), then the key, then the message value.  Each input is
 * decoded twice (the second time through the schema cache), then again
 * after a real envelope event warmed the cache for the topic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode/debezium.h"
#include "transform/transform.h"

static const char warm[] =
    "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"struct\",\"fields\":["
    "{\"type\":\"int32\",\"optional\":false,\"field\":\"customer_id\"},"
    "{\"type\":\"string\",\"optional\":true,\"field\":\"first_name\"},"
    "{\"type\":\"bytes\",\"optional\":true,\"name\":\"org.apache.kafka.connect.data.Decimal\","
    "\"parameters\":{\"scale\":\"2\",\"connect.decimal.precision\":\"10\"},\"field\":\"lifetime_value\"}],"
    "\"optional\":true,\"name\":\"postgres.public.customers.Value\",\"field\":\"after\"}],"
    "\"optional\":false,\"name\":\"postgres.public.customers.Envelope\"},"
    "\"payload\":{\"before\":null,\"after\":{\"customer_id\":1,\"first_name\":\"A\",\"lifetime_value\":\"AeJA\"},"
    "\"source\":{\"table\":\"customers\",\"lsn\":5},\"op\":\"c\",\"ts_ms\":1}}";

/* Touch every byte an event points to, so ASan sees any bad pointer. */
static unsigned touch(const cf_event *ev)
{
    unsigned h = (unsigned)ev->op;
    const cf_row *rows[2] = { &ev->before, &ev->after };

    h += (unsigned)strlen(ev->src.db) + (unsigned)strlen(ev->src.schema) +
         (unsigned)strlen(ev->src.table) + (unsigned)strlen(ev->src.snapshot) + (unsigned)strlen(ev->topic);
    for (int r = 0; r < 2; r++) {
        if (!rows[r]->present || !ev->schema)
            continue;
        for (int i = 0; i < ev->schema->nfields; i++) {
            const cf_value *v = &rows[r]->vals[i];
            if (v->kind == CF_V_STRING || v->kind == CF_V_BYTES)
                for (size_t k = 0; k < v->n; k++)
                    h += (unsigned char)v->s[k];
            else
                h += (unsigned)v->kind;
        }
    }
    return h;
}

static void one(cf_decoder *d, cf_transform *t, cf_batch **out, const cf_msg *m)
{
    cf_event ev;
    cf_err err;
    const cf_schema *s;
    volatile unsigned sink;

    if (cf_decoder_decode(d, m, &ev, &err) != 0)
        return;
    sink = touch(&ev);
    (void)sink;
    if (ev.op == 0 || ev.op == 't' || !(s = cf_transform_schema(t, &ev, &err)))
        return;
    if (!*out)
        *out = cf_batch_new(s, &err);
    else if ((*out)->schema != s)
        cf_batch_rebind(*out, s, &err);
    if (*out)
        cf_transform_apply(t, &ev, *out, NULL, 1, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_decoder_config cfg = { 0 };
    cf_decoder *d;
    cf_transform *t;
    cf_batch *out = NULL;
    cf_msg m = { .partition = 0, .offset = 1, .timestamp_ms = 1 };
    cf_msg w = { .topic = "postgres.public.customers", .value = warm, .value_len = sizeof warm - 1 };
    uint8_t flags;
    char *value;

    if (size < 1)
        return 0;
    flags = data[0];
    data++;
    size--;
    if (flags & 1) {
        size_t kn;
        if (size < 1)
            return 0;
        kn = data[0] < size - 1 ? data[0] : size - 1;
        m.key = data + 1;
        m.key_len = kn;
        data += 1 + kn;
        size -= 1 + kn;
    }
    m.topic = (flags & 2) ? "postgres.public.all_types" : "postgres.public.customers";
    if (flags & 4)
        cfg.max_message_bytes = 64;
    /* A copy of exactly `size` bytes: ASan catches any read past the end. */
    value = malloc(size ? size : 1);
    if (!value)
        return 0;
    memcpy(value, data, size);
    m.value = value;
    m.value_len = size;

    d = cf_decoder_new(&cfg, NULL);
    t = cf_transform_new(NULL, NULL);
    if (d && t) {
        one(d, t, &out, &m);
        one(d, t, &out, &m);
        one(d, t, &out, &w);
        one(d, t, &out, &m);
        cf_decoder_reset(d);
        one(d, t, &out, &m);
    }
    cf_batch_free(out);
    cf_transform_free(t);
    cf_decoder_free(d);
    free(value);
    return 0;
}
