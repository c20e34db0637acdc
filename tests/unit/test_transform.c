/* test_transform.c - transform tests: fixture events through the decoder and
 * the customers / pass-through transforms, expected output rows checked. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_test.h"
#include "decode/debezium.h"
#include "transform/transform.h"

#define TOPIC "postgres.public.customers"
#define NOW_US 1732450000000000LL

static int decode_file(cf_decoder *d, const char *topic, const char *name, cf_event *ev)
{
    const char *dir = getenv("CF_FIXTURES") ? getenv("CF_FIXTURES") : "tests/data/debezium";
    char path[512], *buf;
    FILE *f;
    long n;
    cf_msg m = { .topic = topic, .partition = 0, .offset = 7, .timestamp_ms = 1732440000999 };
    cf_err err;
    int rc;

    memset(ev, 0, sizeof *ev);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "rb")))
        return -2;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        return -2;
    }
    fclose(f);
    m.value = buf;
    m.value_len = (size_t)n;
    rc = cf_decoder_decode(d, &m, ev, &err);
    if (rc)
        fprintf(stderr, "  %s: %s\n", name, err.msg);
    free(buf);
    return rc;
}

/* Decode, bind a batch to the transform's schema, apply; returns the batch. */
/* Unavailable cells of the last run(). */
static cf_cells g_ua;

static cf_batch *run(cf_decoder *d, cf_transform *t, const char *topic, const char *name,
                     cf_event *ev)
{
    const cf_schema *s;
    cf_batch *b;
    cf_err err;

    if (decode_file(d, topic, name, ev))
        return NULL;
    if (!(s = cf_transform_schema(t, ev, &err))) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        return NULL;
    }
    if (!(b = cf_batch_new(s, &err)))
        return NULL;
    cf_cells_free(&g_ua);
    if (cf_transform_apply(t, ev, b, &g_ua, NOW_US, &err)) {
        fprintf(stderr, "  %s: %s\n", name, err.msg);
        cf_batch_free(b);
        return NULL;
    }
    return b;
}

static int ci(const cf_batch *b, const char *name)
{
    int i = cf_schema_find(b->schema, name);
    if (i < 0)
        fprintf(stderr, "  no column %s\n", name);
    return i;
}

static bool is_null(const cf_batch *b, size_t row, const char *name)
{
    int i = ci(b, name);
    return i >= 0 && !cf_col_valid(&b->cols[i], row);
}

static int64_t geti(const cf_batch *b, size_t row, const char *name)
{
    int i = ci(b, name);
    if (i < 0 || !cf_col_valid(&b->cols[i], row))
        return -999;
    return cf_col_width(&b->cols[i]) == 4 ? cf_col_i32(&b->cols[i], row) : cf_col_i64(&b->cols[i], row);
}

static const char *gets(const cf_batch *b, size_t row, const char *name)
{
    static char out[4][256];
    static int k;
    int i = ci(b, name);
    size_t n;
    const uint8_t *p;

    if (i < 0 || !cf_col_valid(&b->cols[i], row))
        return NULL;
    p = cf_col_bytes(&b->cols[i], row, &n);
    k = (k + 1) % 4;
    snprintf(out[k], sizeof out[k], "%.*s", (int)n, (const char *)p);
    return out[k];
}

static void test_customers_schema(void)
{
    static const struct { const char *name; cf_type_id id; } want[] = {
        { "customer_id", CF_T_INT64 }, { "email", CF_T_STRING }, { "full_name", CF_T_STRING },
        { "location", CF_T_STRING }, { "customer_tier", CF_T_STRING },
        { "lifetime_value", CF_T_DOUBLE }, { "registration_date", CF_T_TIMESTAMP },
        { "is_active", CF_T_BOOL }, { "total_orders", CF_T_INT32 },
        { "_ingestion_timestamp", CF_T_TIMESTAMP }, { "_source_system", CF_T_STRING },
        { "_cdc_operation", CF_T_STRING }, { "_pipeline_id", CF_T_STRING },
        { "_processed_timestamp", CF_T_TIMESTAMP }, { "_event_timestamp_ms", CF_T_INT64 },
        { "_source_lsn", CF_T_INT64 }, { "_kafka_timestamp", CF_T_TIMESTAMP },
    };
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform_config cfg = { .pipeline_id = "postgres_to_delta" };
    cf_transform *t = cf_transform_new(&cfg, NULL);
    cf_event ev;
    const cf_schema *s;

    CHECK_EQ_INT(decode_file(d, TOPIC, "customers_create_env.json", &ev), 0);
    s = cf_transform_schema(t, &ev, NULL);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(s->nfields, (int)(sizeof want / sizeof *want));
        for (int i = 0; i < s->nfields && i < (int)(sizeof want / sizeof *want); i++) {
            CHECK_EQ_STR(s->fields[i].name, want[i].name);
            CHECK_EQ_INT(s->fields[i].type.id, want[i].id);
        }
        CHECK_EQ_INT(s->npk, 1);
        CHECK_EQ_INT(s->pk[0], 0);
        CHECK(!s->fields[0].nullable);
    }
    /* The customers output does not change with the source version. */
    CHECK_EQ_INT(decode_file(d, TOPIC, "customers_v2_env.json", &ev), 0);
    CHECK(cf_transform_schema(t, &ev, NULL) == s);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_customers_insert(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform_config cfg = { .pipeline_id = "postgres_to_iceberg" };
    cf_transform *t = cf_transform_new(&cfg, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_create_env.json", &ev);

    CHECK(b != NULL);
    if (b) {
        int ltv = ci(b, "lifetime_value"), act = ci(b, "is_active");
        CHECK_EQ_INT(b->nrows, 1);
        CHECK_EQ_INT(geti(b, 0, "customer_id"), 1);
        CHECK_EQ_STR(gets(b, 0, "email"), "john@example.com");
        CHECK_EQ_STR(gets(b, 0, "full_name"), "John Doe");
        CHECK_EQ_STR(gets(b, 0, "location"), "Austin, TX, USA");
        CHECK_EQ_STR(gets(b, 0, "customer_tier"), "gold");
        CHECK(ltv >= 0 && cf_col_f64(&b->cols[ltv], 0) == 1234.56);
        CHECK_EQ_INT(geti(b, 0, "registration_date"), 1704103200123456);
        CHECK(act >= 0 && cf_col_bool(&b->cols[act], 0));
        CHECK(is_null(b, 0, "total_orders"));
        CHECK_EQ_INT(geti(b, 0, "_ingestion_timestamp"), NOW_US);
        CHECK_EQ_STR(gets(b, 0, "_source_system"), "postgres_cdc");
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "INSERT");
        CHECK_EQ_STR(gets(b, 0, "_pipeline_id"), "postgres_to_iceberg");
        CHECK_EQ_INT(geti(b, 0, "_processed_timestamp"), NOW_US);
        CHECK_EQ_INT(geti(b, 0, "_event_timestamp_ms"), 1732440000123);
        CHECK_EQ_INT(geti(b, 0, "_source_lsn"), 24023184);
        CHECK_EQ_INT(geti(b, 0, "_kafka_timestamp"), 1732440000999000);
        CHECK_EQ_INT((long long)g_ua.n, 0);
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_customers_nulls_like_concat_ws(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_snapshot_bare.json", &ev);

    CHECK(b != NULL);
    if (b) {
        int ltv = ci(b, "lifetime_value");
        /* first_name null: "Smith", not " Smith"; state null skipped. */
        CHECK_EQ_STR(gets(b, 0, "full_name"), "Smith");
        CHECK_EQ_STR(gets(b, 0, "location"), "Austin, USA");
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "INSERT");   /* r */
        CHECK_EQ_STR(gets(b, 0, "_pipeline_id"), "cdcflow");
        CHECK(ltv >= 0 && cf_col_f64(&b->cols[ltv], 0) == -0.5);
    }
    cf_batch_free(b);
    /* Key-only delete image: every input null -> "" (concat_ws never gives null). */
    b = run(d, t, TOPIC, "customers_delete_default_env.json", &ev);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "DELETE");
        CHECK_EQ_INT(geti(b, 0, "customer_id"), 1);
        CHECK_EQ_STR(gets(b, 0, "full_name"), "");
        CHECK_EQ_STR(gets(b, 0, "location"), "");
        CHECK(is_null(b, 0, "email"));
        CHECK(is_null(b, 0, "lifetime_value"));
        CHECK_EQ_INT(geti(b, 0, "_source_lsn"), 24023400);
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_customers_update_and_delete_full(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_update_full_bare.json", &ev);

    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "UPDATE");
        CHECK_EQ_STR(gets(b, 0, "email"), "jd@example.com");   /* from after */
    }
    cf_batch_free(b);
    b = run(d, t, TOPIC, "customers_delete_full_bare.json", &ev);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "DELETE");
        CHECK_EQ_STR(gets(b, 0, "email"), "john@example.com"); /* from before */
        CHECK_EQ_STR(gets(b, 0, "full_name"), "John Doe");
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_truncate_and_tombstone_append_nothing(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_create_env.json", &ev);
    cf_err err;

    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_INT(decode_file(d, TOPIC, "customers_truncate_env.json", &ev), 0);
        CHECK_EQ_INT(cf_transform_apply(t, &ev, b, NULL, NOW_US, &err), 0);
        CHECK_EQ_INT(decode_file(d, TOPIC, "tombstone_null.json", &ev), 0);
        CHECK_EQ_INT(cf_transform_apply(t, &ev, b, NULL, NOW_US, &err), 0);
        CHECK_EQ_INT(b->nrows, 1);
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_unavailable_cells(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_transform_config pc = { .kind = CF_XF_PASSTHROUGH };
    cf_transform *p = cf_transform_new(&pc, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_toast_bare.json", &ev);
    int full;

    CHECK(b != NULL);
    if (b) {
        full = ci(b, "full_name");
        CHECK(is_null(b, 0, "full_name"));      /* first_name unchanged: unknown */
        CHECK_EQ_STR(gets(b, 0, "location"), "Austin, TX, USA");
        CHECK_EQ_INT((long long)g_ua.n, 1);
        CHECK(cf_cells_has(&g_ua, 0, full));
        CHECK(!cf_cells_has(&g_ua, 0, ci(b, "email")));
    }
    cf_batch_free(b);
    b = run(d, p, TOPIC, "customers_toast_bare.json", &ev);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_INT((long long)g_ua.n, 2);
        CHECK(cf_cells_has(&g_ua, 0, ci(b, "address_line1")));
        CHECK(cf_cells_has(&g_ua, 0, ci(b, "first_name")));
        CHECK(is_null(b, 0, "address_line1"));
        CHECK_EQ_STR(gets(b, 0, "last_name"), "Doe");
    }
    cf_batch_free(b);
    cf_transform_free(p);
    cf_transform_free(t);
    cf_decoder_free(d);
}

/* REPLICA IDENTITY FULL: the before image holds the old value of an
 * unchanged TOAST column, so the row is complete and nothing is unknown. */
static void test_unavailable_filled_from_before(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_transform_config pc = { .kind = CF_XF_PASSTHROUGH };
    cf_transform *p = cf_transform_new(&pc, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, TOPIC, "customers_toast_full_bare.json", &ev);

    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_STR(gets(b, 0, "full_name"), "John Doe");
        CHECK_EQ_INT((long long)g_ua.n, 0);
    }
    cf_batch_free(b);
    b = run(d, p, TOPIC, "customers_toast_full_bare.json", &ev);
    CHECK(b != NULL);
    if (b) {
        CHECK_EQ_STR(gets(b, 0, "address_line1"), "1 Main St");
        CHECK_EQ_STR(gets(b, 0, "first_name"), "John");
        CHECK_EQ_INT((long long)g_ua.n, 0);
    }
    cf_batch_free(b);
    cf_transform_free(p);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_passthrough(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_event ev;
    cf_batch *b = run(d, t, "postgres.public.all_types", "types_env.json", &ev);

    CHECK(b != NULL);
    if (b) {
        const cf_schema *s = b->schema;
        int f64 = ci(b, "f64");
        CHECK_EQ_INT(s->nfields, ev.schema->nfields + CF_XF_NMETA);
        CHECK_EQ_STR(s->fields[0].name, "id");
        CHECK_EQ_STR(s->fields[ev.schema->nfields].name, "_ingestion_timestamp");
        CHECK_EQ_INT(s->fields[ci(b, "dec_wide")].type.id, CF_T_DECIMAL);
        CHECK_EQ_INT(geti(b, 0, "id"), 7);
        CHECK_EQ_INT(geti(b, 0, "i64"), 9007199254740993LL);
        CHECK_EQ_INT(geti(b, 0, "dec_small"), -12345);
        CHECK_EQ_STR(gets(b, 0, "dec_wide"), "12345678901234567890123.4567");
        CHECK_EQ_STR(gets(b, 0, "dec_var"), "31.415");
        CHECK_EQ_INT(geti(b, 0, "d"), 19723);
        CHECK_EQ_INT(geti(b, 0, "tsz"), 1704103200500000LL);
        CHECK(f64 >= 0 && cf_col_f64(&b->cols[f64], 0) == -2.25e-3);
        CHECK_EQ_STR(gets(b, 0, "u"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        CHECK(is_null(b, 0, "toasted"));
        CHECK(is_null(b, 0, "arr_toasted"));
        CHECK_EQ_INT((long long)g_ua.n, 2);
        CHECK(cf_cells_has(&g_ua, 0, ci(b, "arr_toasted")));
        CHECK(!cf_cells_has(&g_ua, 0, ci(b, "arr")));
        CHECK_EQ_STR(gets(b, 0, "_cdc_operation"), "INSERT");
        CHECK_EQ_INT(geti(b, 0, "_source_lsn"), 24023184);
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_schema_versions_and_pk(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform_config pc = { .kind = CF_XF_PASSTHROUGH };
    cf_transform *t = cf_transform_new(&pc, NULL);
    cf_event ev;
    const cf_schema *v1, *v2;

    CHECK_EQ_INT(decode_file(d, TOPIC, "customers_create_env.json", &ev), 0);
    v1 = cf_transform_schema(t, &ev, NULL);
    CHECK(v1 && v1->npk == 1 && v1->pk[0] == 0);
    CHECK_EQ_INT(decode_file(d, TOPIC, "customers_update_default_env.json", &ev), 0);
    CHECK(cf_transform_schema(t, &ev, NULL) == v1);
    CHECK_EQ_INT(decode_file(d, TOPIC, "customers_v2_env.json", &ev), 0);
    v2 = cf_transform_schema(t, &ev, NULL);
    CHECK(v2 && v2 != v1);
    CHECK(v2 && cf_schema_find(v2, "loyalty_points") == 15);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_wrong_batch_is_refused(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_event ev, ev2;
    cf_batch *b = run(d, t, TOPIC, "customers_create_env.json", &ev);
    cf_err err;

    CHECK(b != NULL);
    CHECK_EQ_INT(decode_file(d, "postgres.public.all_types", "types_env.json", &ev2), 0);
    if (b) {
        CHECK_EQ_INT(cf_transform_apply(t, &ev2, b, NULL, NOW_US, &err), -1);
        CHECK_EQ_INT(err.code, CF_E_ARG);
        CHECK_EQ_INT(b->nrows, 1);
        /* A second row into the right batch works. */
        CHECK_EQ_INT(cf_transform_apply(t, &ev, b, NULL, NOW_US, &err), 0);
        CHECK_EQ_INT(b->nrows, 2);
        CHECK_EQ_INT(geti(b, 1, "customer_id"), 1);
    }
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

static void test_forced_kinds(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform_config cc = { .kind = CF_XF_CUSTOMERS };
    cf_transform *t = cf_transform_new(&cc, NULL);
    cf_event ev;
    cf_err err;

    /* all_types has no customer_id: the customers transform says so. */
    CHECK_EQ_INT(decode_file(d, "postgres.public.all_types", "types_env.json", &ev), 0);
    CHECK(cf_transform_schema(t, &ev, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_TYPE);
    cf_transform_free(t);
    cf_decoder_free(d);
}

/* Once warm, decode + transform do not grow the heap: the arena, the batch
 * and the caches are reused after each reset.  (Under ASan mallinfo2
 * reports nothing; the check then only runs the loop.) */
static void test_steady_state_heap_does_not_grow(void)
{
    static const char *const files[] = { "customers_create_env.json", "customers_update_default_env.json",
                                         "customers_delete_default_env.json", "customers_toast_bare.json" };
    char *msg[4];
    size_t len[4];
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_transform *t = cf_transform_new(NULL, NULL);
    cf_batch *b = NULL;
    size_t heap[6] = { 0 };
    cf_err err;

    for (int i = 0; i < 4; i++) {
        char path[256];
        FILE *f;
        snprintf(path, sizeof path, "%s/%s",
                 getenv("CF_FIXTURES") ? getenv("CF_FIXTURES") : "tests/data/debezium", files[i]);
        msg[i] = NULL;
        len[i] = 0;
        if ((f = fopen(path, "rb"))) {
            msg[i] = malloc(16384);
            len[i] = fread(msg[i], 1, 16384, f);
            fclose(f);
        }
        CHECK(msg[i] && len[i] > 0);
        if (!msg[i])
            goto out;
    }
    for (int batch = 0; batch < 6; batch++) {
        for (int i = 0; i < 2000; i++) {
            cf_msg m = { .topic = TOPIC, .offset = i, .timestamp_ms = 1, .value = msg[i % 4],
                         .value_len = len[i % 4] };
            cf_event ev;
            const cf_schema *s;
            if (cf_decoder_decode(d, &m, &ev, &err) || !(s = cf_transform_schema(t, &ev, &err))) {
                CHECK(0);
                goto out;
            }
            if (!b)
                b = cf_batch_new(s, &err);
            if (cf_transform_apply(t, &ev, b, NULL, 1, &err)) {
                CHECK(0);
                goto out;
            }
        }
        CHECK_EQ_INT(b->nrows, 2000);
        heap[batch] = mallinfo2().uordblks;
        cf_batch_reset(b);
        cf_decoder_reset(d);
    }
    /* Batch 0 grows the buffers; from then on the heap stays put. */
#ifndef __SANITIZE_ADDRESS__
    CHECK(heap[1] > 0);
#endif
    for (int k = 2; k < 6; k++)
        CHECK_EQ_INT(heap[k], heap[1]);
out:
    for (int i = 0; i < 4; i++)
        free(msg[i]);
    cf_batch_free(b);
    cf_transform_free(t);
    cf_decoder_free(d);
}

CF_TEST_MAIN("transform",
    T(test_customers_schema), T(test_customers_insert), T(test_customers_nulls_like_concat_ws),
    T(test_customers_update_and_delete_full), T(test_truncate_and_tombstone_append_nothing),
    T(test_unavailable_cells), T(test_unavailable_filled_from_before), T(test_passthrough), T(test_schema_versions_and_pk),
    T(test_wrong_batch_is_refused), T(test_forced_kinds), T(test_steady_state_heap_does_not_grow))
