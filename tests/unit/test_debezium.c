/* test_debezium.c - decoder tests: fixture events in tests/data/debezium/
 * (written by make_fixtures.py) in, expected values out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_test.h"
#include "decode/debezium.h"

#define TOPIC "postgres.public.customers"

static blob load(const char *name)
{
    return cf_test_load(getenv("CF_FIXTURES") ? getenv("CF_FIXTURES") : "tests/data/debezium", name);
}

/* Decode fixture `name` (with key fixture `key` when non-NULL). */
static int decode(cf_decoder *d, const char *topic, const char *name, const char *key,
                  cf_event *ev, cf_err *err)
{
    blob v = load(name), k = { 0 };
    cf_msg m = { .topic = topic, .partition = 2, .offset = 41, .timestamp_ms = 1732440000999 };
    int rc;

    memset(ev, 0, sizeof *ev);
    if (key)
        k = load(key);
    m.value = v.p;
    m.value_len = v.n;
    m.key = k.p;
    m.key_len = k.n;
    cf_err_clear(err);
    if (!v.p)
        return -2;
    rc = cf_decoder_decode(d, &m, ev, err);
    if (rc && strncmp(name, "bad_", 4) != 0)
        fprintf(stderr, "  %s: %s\n", name, err->msg);
    /* Events must not point into the message: free it now. */
    memset(v.p, 'X', v.n);
    free(v.p);
    free(k.p);
    return rc;
}

static const cf_value *col(const cf_event *ev, const cf_row *r, const char *name)
{
    static const cf_value missing = { .kind = -1 };
    int i = ev->schema ? cf_schema_find(ev->schema, name) : -1;
    return i >= 0 && r->present ? &r->vals[i] : &missing;
}

#define CHECK_INT(ev, row, name, want) do { const cf_value *_v = col(ev, row, name); \
    CHECK_EQ_INT(_v->kind, CF_V_INT); if (_v->kind == CF_V_INT) CHECK_EQ_INT(_v->i, want); } while (0)
#define CHECK_STR(ev, row, name, want) do { const cf_value *_v = col(ev, row, name); \
    CHECK_EQ_INT(_v->kind, CF_V_STRING); \
    if (_v->kind == CF_V_STRING) { CHECK_EQ_INT(_v->n, strlen(want)); CHECK_EQ_STR(_v->s, want); } } while (0)
#define CHECK_KIND(ev, row, name, k) CHECK_EQ_INT(col(ev, row, name)->kind, k)

static cf_type ftype(const cf_event *ev, const char *name)
{
    int i = cf_schema_find(ev->schema, name);
    return i >= 0 ? ev->schema->fields[i].type : (cf_type){ 0, 0, 0 };
}

/* The customer() row of make_fixtures.py. */
static void check_john(const cf_event *ev, const cf_row *r)
{
    CHECK_INT(ev, r, "customer_id", 1);
    CHECK_STR(ev, r, "email", "john@example.com");
    CHECK_STR(ev, r, "first_name", "John");
    CHECK_STR(ev, r, "last_name", "Doe");
    CHECK_STR(ev, r, "city", "Austin");
    CHECK_INT(ev, r, "registration_date", 1704103200123456);
    CHECK_INT(ev, r, "last_updated", 1732439999000000);
    CHECK_KIND(ev, r, "is_active", CF_V_BOOL);
    CHECK(col(ev, r, "is_active")->b);
    CHECK_INT(ev, r, "lifetime_value", 123456);
}

static void test_create_envelope(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_env.json", "customers_create_env.key.json", &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(!ev.before.present);
    CHECK(ev.after.present);
    CHECK_EQ_INT(ev.schema->nfields, 15);
    CHECK_EQ_INT(ev.schema->npk, 1);
    CHECK_EQ_INT(ev.schema->pk[0], 0);
    CHECK_EQ_INT(ftype(&ev, "customer_id").id, CF_T_INT32);
    CHECK(!ev.schema->fields[0].nullable);
    CHECK(ev.schema->fields[1].nullable);
    CHECK_EQ_INT(ftype(&ev, "lifetime_value").id, CF_T_DECIMAL);
    CHECK_EQ_INT(ftype(&ev, "lifetime_value").precision, 10);
    CHECK_EQ_INT(ftype(&ev, "lifetime_value").scale, 2);
    CHECK_EQ_INT(ftype(&ev, "registration_date").id, CF_T_TIMESTAMP_NTZ);
    check_john(&ev, &ev.after);
    CHECK_EQ_INT(ev.ts_ms, 1732440000123);
    CHECK_EQ_INT(ev.src.ts_ms, 1732440000000);
    CHECK_EQ_INT(ev.src.lsn, 24023184);
    CHECK_EQ_INT(ev.src.txid, 745);
    CHECK_EQ_STR(ev.src.db, "cdcdb");
    CHECK_EQ_STR(ev.src.schema, "public");
    CHECK_EQ_STR(ev.src.table, "customers");
    CHECK_EQ_STR(ev.src.snapshot, "false");
    CHECK_EQ_STR(ev.topic, TOPIC);
    CHECK_EQ_INT(ev.partition, 2);
    CHECK_EQ_INT(ev.offset, 41);
    CHECK_EQ_INT(ev.kafka_ts_ms, 1732440000999);
    /* Same table version without the envelope: the built-in schema matches
     * what Debezium describes. */
    CHECK(cf_schema_equal(ev.schema, cf_decoder_customers_schema(d)));
    cf_decoder_free(d);
}

static void test_create_bare(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", "customers_create_bare.key.json", &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(ev.schema == cf_decoder_customers_schema(d));
    check_john(&ev, &ev.after);
    CHECK_EQ_INT(ev.src.lsn, 24023184);
    /* Without a topic name the table still resolves from source.table. */
    CHECK_EQ_INT(decode(d, "", "customers_create_bare.json", NULL, &ev, &err), 0);
    CHECK(ev.schema == cf_decoder_customers_schema(d));
    check_john(&ev, &ev.after);
    cf_decoder_free(d);
}

static void test_snapshot_read(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_snapshot_bare.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'r');
    CHECK_EQ_STR(ev.src.snapshot, "last");
    CHECK_INT(&ev, &ev.after, "customer_id", 2);
    CHECK_KIND(&ev, &ev.after, "first_name", CF_V_NULL);
    CHECK_KIND(&ev, &ev.after, "state", CF_V_NULL);
    CHECK_INT(&ev, &ev.after, "lifetime_value", -50);
    cf_decoder_free(d);
}

static void test_replica_identity(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    /* DEFAULT: update without before, delete with the key only. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_update_default_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'u');
    CHECK(!ev.before.present);
    CHECK_STR(&ev, &ev.after, "customer_tier", "platinum");
    CHECK_INT(&ev, &ev.after, "lifetime_value", 99999999);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_delete_default_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'd');
    CHECK(!ev.after.present);
    CHECK(ev.before.present);
    CHECK_INT(&ev, &ev.before, "customer_id", 1);
    CHECK_KIND(&ev, &ev.before, "email", CF_V_NULL);
    CHECK_EQ_INT(ev.src.lsn, 24023400);
    /* FULL: complete before images. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_update_full_bare.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'u');
    check_john(&ev, &ev.before);
    CHECK_STR(&ev, &ev.after, "email", "jd@example.com");
    CHECK_EQ_INT(decode(d, TOPIC, "customers_delete_full_bare.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'd');
    check_john(&ev, &ev.before);
    CHECK(!ev.after.present);
    cf_decoder_free(d);
}

static void test_truncate_and_tombstones(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    cf_msg m = { .topic = TOPIC, .value = NULL };

    CHECK_EQ_INT(decode(d, TOPIC, "customers_truncate_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 't');
    CHECK(!ev.before.present && !ev.after.present);
    CHECK_EQ_INT(ev.src.lsn, 24023700);
    CHECK_EQ_INT(cf_decoder_decode(d, &m, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 0);
    CHECK(ev.schema != NULL);       /* the topic's last table version */
    CHECK_EQ_INT(decode(d, TOPIC, "tombstone_null.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 0);
    CHECK_EQ_INT(decode(d, TOPIC, "tombstone_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 0);
    CHECK(!ev.before.present && !ev.after.present);
    /* Heartbeats carry no row change either. */
    CHECK_EQ_INT(decode(d, "__debezium-heartbeat.postgres", "heartbeat_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 0);
    CHECK(!ev.before.present && !ev.after.present);
    cf_decoder_free(d);
}

static void test_toast_placeholder(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_toast_bare.json", NULL, &ev, &err), 0);
    CHECK_KIND(&ev, &ev.after, "address_line1", CF_V_UNAVAILABLE);
    CHECK_KIND(&ev, &ev.after, "first_name", CF_V_UNAVAILABLE);
    CHECK_STR(&ev, &ev.after, "last_name", "Doe");
    cf_decoder_free(d);
}

static void test_field_order_and_escapes(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_reordered_bare.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'c');
    CHECK_STR(&ev, &ev.after, "first_name", "Zo\xc3\xab\xf0\x9f\x98\x80");
    CHECK_STR(&ev, &ev.after, "last_name", "O\"Brien\\");
    CHECK_INT(&ev, &ev.after, "customer_id", 1);
    CHECK_INT(&ev, &ev.after, "lifetime_value", 123456);
    CHECK_EQ_INT(ev.src.lsn, 24023184);
    CHECK_EQ_STR(ev.src.table, "customers");
    /* Envelope with the payload before the schema. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_payload_first_env.json", NULL, &ev, &err), 0);
    CHECK_INT(&ev, &ev.after, "customer_id", 3);
    CHECK_EQ_INT(ftype(&ev, "lifetime_value").id, CF_T_DECIMAL);
    cf_decoder_free(d);
}

static void test_schema_cache_and_evolution(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_schema *v1, *v2;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_env.json", "customers_create_env.key.json", &ev, &err), 0);
    v1 = ev.schema;
    CHECK_EQ_INT(decode(d, TOPIC, "customers_update_default_env.json", "customers_create_env.key.json", &ev, &err), 0);
    CHECK(ev.schema == v1);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_v2_env.json", "customers_create_env.key.json", &ev, &err), 0);
    v2 = ev.schema;
    CHECK(v2 != v1);
    CHECK_EQ_INT(v2->nfields, 16);
    CHECK_EQ_STR(v2->fields[15].name, "loyalty_points");
    CHECK_INT(&ev, &ev.after, "loyalty_points", 42);
    CHECK_EQ_INT(v2->npk, 1);
    /* Back to the old version: the same pointer as before. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_env.json", "customers_create_env.key.json", &ev, &err), 0);
    CHECK(ev.schema == v1);
    /* An envelope-less event afterwards uses the topic's last version. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_update_full_bare.json", NULL, &ev, &err), 0);
    CHECK(ev.schema == v1);
    CHECK_INT(&ev, &ev.before, "lifetime_value", 123456);
    cf_decoder_free(d);
}

static void test_decimal_modes_bare(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    CHECK_EQ_INT(decode(d, TOPIC, "customers_ltv_double_bare.json", NULL, &ev, &err), 0);
    CHECK_INT(&ev, &ev.after, "lifetime_value", 123450);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_ltv_string_bare.json", NULL, &ev, &err), 0);
    CHECK_INT(&ev, &ev.after, "lifetime_value", 9990);
    cf_decoder_free(d);
}

static void test_every_encoding(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_value *v;
    cf_row *r = &ev.after;

    CHECK_EQ_INT(decode(d, "postgres.public.all_types", "types_env.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(ev.schema->npk, 0);
    CHECK_EQ_INT(ftype(&ev, "i16").id, CF_T_INT32);
    CHECK_INT(&ev, r, "i16", -32768);
    CHECK_EQ_INT(ftype(&ev, "i64").id, CF_T_INT64);
    CHECK_INT(&ev, r, "i64", 9007199254740993LL);     /* 2^53 + 1: exact */
    CHECK_EQ_INT(ftype(&ev, "f32").id, CF_T_FLOAT);
    v = col(&ev, r, "f32");
    CHECK(v->kind == CF_V_DOUBLE && v->d == 1.5);
    v = col(&ev, r, "f64");
    CHECK(v->kind == CF_V_DOUBLE && v->d == -2.25e-3);
    v = col(&ev, r, "b");
    CHECK(v->kind == CF_V_BOOL && !v->b);
    CHECK_STR(&ev, r, "s", "tab\there");
    v = col(&ev, r, "raw");
    CHECK_EQ_INT(ftype(&ev, "raw").id, CF_T_BINARY);
    CHECK(v->kind == CF_V_BYTES && v->n == 4 && memcmp(v->s, "\x00\x01\xfe\xff", 4) == 0);
    CHECK_INT(&ev, r, "dec_small", -12345);
    CHECK_EQ_INT(ftype(&ev, "dec_wide").id, CF_T_DECIMAL);
    CHECK_EQ_INT(ftype(&ev, "dec_wide").precision, 30);
    CHECK_STR(&ev, r, "dec_wide", "12345678901234567890123.4567");
    CHECK_EQ_INT(ftype(&ev, "dec_nolimit").id, CF_T_STRING);
    CHECK_STR(&ev, r, "dec_nolimit", "-1.005");
    CHECK_EQ_INT(ftype(&ev, "dec_var").id, CF_T_STRING);
    CHECK_STR(&ev, r, "dec_var", "31.415");
    v = col(&ev, r, "dec_double");
    CHECK(v->kind == CF_V_DOUBLE && v->d == 0.1);
    CHECK_STR(&ev, r, "dec_string", "-0.50");
    CHECK_EQ_INT(ftype(&ev, "d").id, CF_T_DATE);
    CHECK_INT(&ev, r, "d", 19723);
    CHECK_EQ_INT(ftype(&ev, "t_ms").id, CF_T_TIME);
    CHECK_INT(&ev, r, "t_ms", 3723004000LL);
    CHECK_INT(&ev, r, "t_us", 3723004005LL);
    CHECK_INT(&ev, r, "t_ns", 3723004005LL);
    CHECK_EQ_INT(ftype(&ev, "ts_ms").id, CF_T_TIMESTAMP_NTZ);
    CHECK_INT(&ev, r, "ts_ms", 1704103200123000LL);
    CHECK_INT(&ev, r, "ts_us", 1704103200123456LL);
    CHECK_INT(&ev, r, "ts_ns", -2);                   /* floor(-1500 ns) */
    CHECK_EQ_INT(ftype(&ev, "tsz").id, CF_T_TIMESTAMP);
    CHECK_INT(&ev, r, "tsz", 1704103200500000LL);     /* 12:00:00.5+02:00 = 10:00:00.5Z */
    CHECK_INT(&ev, r, "kts", 1704103200000000LL);
    CHECK_EQ_INT(ftype(&ev, "kdate").id, CF_T_DATE);
    CHECK_INT(&ev, r, "kdate", 19723);
    CHECK_STR(&ev, r, "js", "{\"a\": [1, 2]}");
    CHECK_EQ_INT(ftype(&ev, "u").id, CF_T_UUID);
    CHECK_STR(&ev, r, "u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    CHECK_STR(&ev, r, "e", "green");
    CHECK_STR(&ev, r, "arr", "[1,null,3]");
    CHECK_KIND(&ev, r, "toasted", CF_V_UNAVAILABLE);
    CHECK_KIND(&ev, r, "arr_toasted", CF_V_UNAVAILABLE);
    cf_decoder_free(d);
}

static void test_primary_key_from_key(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    blob v = load("types_env.json");
    cf_msg m = { .topic = "postgres.public.all_types", .value = v.p, .value_len = v.n,
                 .key = "{\"id\":7}", .key_len = 8 };
    const cf_schema *nopk;

    CHECK_EQ_INT(decode(d, "postgres.public.all_types", "types_env.json", NULL, &ev, &err), 0);
    nopk = ev.schema;
    CHECK_EQ_INT(cf_decoder_decode(d, &m, &ev, &err), 0);
    CHECK(ev.schema != nopk);
    CHECK_EQ_INT(ev.schema->npk, 1);
    CHECK_EQ_STR(ev.schema->fields[ev.schema->pk[0]].name, "id");
    CHECK(cf_schema_equal(ev.schema, nopk));
    /* A key that is not JSON (another key converter) carries no names. */
    m.key = "Struct{id=7}";
    m.key_len = 12;
    CHECK_EQ_INT(cf_decoder_decode(d, &m, &ev, &err), 0);
    CHECK_EQ_INT(ev.schema->npk, 1);
    free(v.p);
    cf_decoder_free(d);
}

static void test_known_schema(void)
{
    cf_schema *s = cf_schema_new();
    const cf_schema *known[] = { s };
    const char *names[] = { "mystery" };
    cf_decoder_config cfg = { .known = known, .known_tables = names, .nknown = 1 };
    cf_decoder *d;
    cf_event ev;
    cf_err err;

    cf_schema_add(s, "id", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    d = cf_decoder_new(&cfg, &err);
    CHECK(d != NULL);
    CHECK_EQ_INT(decode(d, "postgres.public.mystery", "bad_unknown_table_bare.json", NULL, &ev, &err), 0);
    CHECK_INT(&ev, &ev.after, "id", 1);
    /* Topic named after another table: source.table decides. */
    CHECK_EQ_INT(decode(d, TOPIC, "bad_unknown_table_bare.json", NULL, &ev, &err), 0);
    CHECK_INT(&ev, &ev.after, "id", 1);
    cf_schema_free(s);
    cf_decoder_free(d);
}

static void check_bad(cf_decoder *d, const char *name, cf_code code, const char *needle)
{
    cf_event ev;
    cf_err err;
    int rc = decode(d, TOPIC, name, NULL, &ev, &err);

    if (rc != -1 || err.code != code || err.pos < 0 || !strstr(err.msg, needle)) {
        fprintf(stderr, "  %s: rc %d code %s pos %ld msg \"%s\", expected code %s with \"%s\"\n",
                name, rc, cf_code_name(err.code), err.pos, err.msg, cf_code_name(code), needle);
        cf_test_failed_checks++;
    }
}

static void test_bad_events(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;

    check_bad(d, "bad_malformed.json", CF_E_PARSE, "unexpected ','");
    check_bad(d, "bad_truncated.json", CF_E_PARSE, "truncated");
    check_bad(d, "bad_wrong_type.json", CF_E_TYPE, "customer_id");
    check_bad(d, "bad_int32_overflow.json", CF_E_TYPE, "int32 range");
    check_bad(d, "bad_unknown_op.json", CF_E_PARSE, "unknown op \"x\"");
    check_bad(d, "bad_missing_payload.json", CF_E_PARSE, "without \"payload\"");
    check_bad(d, "bad_missing_op.json", CF_E_PARSE, "missing \"op\"");
    check_bad(d, "bad_invalid_utf8.json", CF_E_PARSE, "invalid UTF-8");
    check_bad(d, "bad_lone_surrogate.json", CF_E_PARSE, "surrogate");
    check_bad(d, "bad_deep_nesting.json", CF_E_PARSE, "nesting deeper");
    check_bad(d, "bad_trailing.json", CF_E_PARSE, "trailing bytes");
    check_bad(d, "bad_create_without_after.json", CF_E_PARSE, "without an \"after\"");
    check_bad(d, "bad_unknown_column_bare.json", CF_E_TYPE, "shoe_size");
    check_bad(d, "bad_unknown_table_bare.json", CF_E_UNSUPPORTED, "mystery");
    check_bad(d, "bad_not_object.json", CF_E_PARSE, "JSON object");
    /* The position points at the offending byte. */
    {
        blob b = load("bad_invalid_utf8.json");
        const char *bad = b.p ? memchr(b.p, 0xc3, b.n) : NULL;
        CHECK_EQ_INT(decode(d, TOPIC, "bad_invalid_utf8.json", NULL, &ev, &err), -1);
        CHECK(bad != NULL);
        if (bad)
            CHECK_EQ_INT(err.pos, bad - b.p);
        free(b.p);
    }
    /* The decoder goes on after bad events. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &ev, &err), 0);
    check_john(&ev, &ev.after);
    cf_decoder_free(d);
}

static void test_size_cap(void)
{
    cf_decoder_config cfg = { .max_message_bytes = 100 };
    cf_decoder *d = cf_decoder_new(&cfg, NULL);

    check_bad(d, "customers_create_bare.json", CF_E_TOOBIG, "over the cap");
    cf_decoder_free(d);
}

/* db/schema/table/snapshot are shared between the events of a batch when
 * equal: each event must still see its own values, also across resets. */
static void test_source_strings_per_event(void)
{
    cf_schema *s = cf_schema_new();
    const cf_schema *known[] = { s };
    const char *names[] = { "mystery" };
    cf_decoder_config cfg = { .known = known, .known_tables = names, .nknown = 1 };
    cf_decoder *d;
    cf_event a, b, c;
    cf_err err;

    cf_schema_add(s, "id", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    d = cf_decoder_new(&cfg, NULL);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_snapshot_bare.json", NULL, &a, &err), 0);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &b, &err), 0);
    CHECK_EQ_INT(decode(d, TOPIC, "bad_unknown_table_bare.json", NULL, &c, &err), 0);
    CHECK_EQ_STR(a.src.snapshot, "last");
    CHECK_EQ_STR(b.src.snapshot, "false");
    CHECK_EQ_STR(a.src.table, "customers");
    CHECK_EQ_STR(b.src.table, "customers");
    CHECK_EQ_STR(c.src.table, "mystery");
    CHECK(a.src.db == b.src.db);        /* shared, not copied again */
    cf_decoder_reset(d);
    for (int i = 0; i < 50; i++)        /* reuse the arena with other bytes */
        CHECK_EQ_INT(decode(d, "postgres.public.all_types", "types_env.json", NULL, &c, &err), 0);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &b, &err), 0);
    CHECK_EQ_STR(b.src.db, "cdcdb");
    CHECK_EQ_STR(b.src.schema, "public");
    CHECK_EQ_STR(b.src.table, "customers");
    CHECK_EQ_STR(b.src.snapshot, "false");
    cf_schema_free(s);
    cf_decoder_free(d);
}

static void test_arena_full_is_not_a_bad_event(void)
{
    cf_decoder_config cfg = { .max_batch_bytes = 64 * 1024 };
    cf_decoder *d = cf_decoder_new(&cfg, NULL);
    cf_event ev;
    cf_err err;
    int i, rc = 0;

    for (i = 0; i < 1000 && rc == 0; i++)
        rc = decode(d, TOPIC, "customers_create_bare.json", NULL, &ev, &err);
    CHECK_EQ_INT(rc, -1);
    CHECK(i > 10);
    CHECK_EQ_INT(err.code, CF_E_FULL);
    CHECK(!err.fatal);
    CHECK(strstr(err.msg, "arena") != NULL);
    cf_decoder_reset(d);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &ev, &err), 0);
    cf_decoder_free(d);
}

static void test_no_message_pointers_and_reset(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    size_t used;

    /* decode() scribbles over the message after decoding: the values above
     * only pass if every string was copied.  Here: the arena is reused. */
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &ev, &err), 0);
    used = cf_decoder_arena_used(d);
    CHECK(used > 0);
    cf_decoder_reset(d);
    CHECK_EQ_INT(cf_decoder_arena_used(d), 0);
    CHECK_EQ_INT(decode(d, TOPIC, "customers_create_bare.json", NULL, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_arena_used(d), used);
    check_john(&ev, &ev.after);
    cf_decoder_free(d);
}

static void test_null_err_is_fine(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    blob v = load("bad_unknown_column_bare.json");
    cf_msg m = { .topic = TOPIC, .value = v.p, .value_len = v.n };
    cf_event ev;

    CHECK_EQ_INT(cf_decoder_decode(d, &m, &ev, NULL), -1);
    free(v.p);
    cf_decoder_free(d);
}

/* Messages captured from the stack (Debezium 2.7.4, REPLICA IDENTITY FULL). */
static void test_real_events(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_schema *s;

    CHECK_EQ_INT(decode(d, TOPIC, "real_customers_create.json", "real_customers_create.key.json", &ev, &err), 0);
    s = ev.schema;
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(cf_schema_equal(ev.schema, cf_decoder_customers_schema(d)));
    CHECK_EQ_INT(ev.schema->npk, 1);
    CHECK_INT(&ev, &ev.after, "customer_id", 1);
    CHECK_STR(&ev, &ev.after, "first_name", "Ann");
    CHECK_STR(&ev, &ev.after, "state", "IDF");
    CHECK_KIND(&ev, &ev.after, "phone", CF_V_NULL);
    CHECK_INT(&ev, &ev.after, "registration_date", 1795519890177632LL);
    CHECK_INT(&ev, &ev.after, "lifetime_value", 12345);      /* "MDk=" = 123.45 */
    CHECK_EQ_INT(ev.ts_ms, 1795519890483LL);
    CHECK_EQ_INT(ev.src.ts_ms, 1795519890178LL);
    CHECK_EQ_INT(ev.src.lsn, 26506320);
    CHECK_EQ_INT(ev.src.txid, 737);
    CHECK_EQ_STR(ev.src.snapshot, "false");
    CHECK_EQ_INT(decode(d, TOPIC, "real_customers_update.json", "real_customers_update.key.json", &ev, &err), 0);
    CHECK(ev.schema == s);
    CHECK_EQ_INT(ev.op, 'u');
    CHECK_STR(&ev, &ev.before, "customer_tier", "gold");
    CHECK_STR(&ev, &ev.after, "customer_tier", "platinum");
    CHECK_EQ_INT(ev.src.lsn, 26506656);
    CHECK_EQ_INT(decode(d, TOPIC, "real_customers_delete.json", "real_customers_delete.key.json", &ev, &err), 0);
    CHECK(ev.schema == s);
    CHECK_EQ_INT(ev.op, 'd');
    CHECK(!ev.after.present);
    CHECK_STR(&ev, &ev.before, "email", "a@b.c");
    CHECK_EQ_INT(decode(d, "postgres.public.orders", "real_orders_create.json", "real_orders_create.key.json", &ev, &err), 0);
    CHECK_EQ_STR(ev.src.table, "orders");
    CHECK_EQ_INT(ev.schema->npk, 1);
    CHECK_EQ_STR(ev.schema->fields[ev.schema->pk[0]].name, "order_id");
    CHECK_EQ_INT(ftype(&ev, "total_amount").precision, 12);
    CHECK_INT(&ev, &ev.after, "total_amount", 5997);         /* "F20=" = 59.97 */
    CHECK_EQ_INT(ftype(&ev, "shipped_at").id, CF_T_TIMESTAMP);
    CHECK_INT(&ev, &ev.after, "shipped_at", 1795520014737301LL);
    CHECK_INT(&ev, &ev.after, "order_date", 1795520014736563LL);
    CHECK_KIND(&ev, &ev.after, "shipping_city", CF_V_NULL);
    CHECK_STR(&ev, &ev.after, "notes", "3701bf21ea");
    cf_decoder_free(d);
}

/* Debezium 3.6 events of the stack's tables decode as the 2.7 ones do:
 * the source block's new origin fields are read past, the customers
 * schema is still the built-in one, a 2.7 event after them shares the
 * schema of its table version. */
static void test_debezium3_events(void)
{
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_schema *s;

    CHECK_EQ_INT(decode(d, TOPIC, "dbz3_customers_create.json", "dbz3_customers_create.key.json", &ev, &err), 0);
    s = ev.schema;
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(cf_schema_equal(ev.schema, cf_decoder_customers_schema(d)));
    CHECK_INT(&ev, &ev.after, "customer_id", 1);
    CHECK_STR(&ev, &ev.after, "first_name", "Ada");
    CHECK_STR(&ev, &ev.after, "customer_tier", "gold");
    CHECK_EQ_INT(ev.src.lsn, 26789936);
    CHECK_EQ_STR(ev.src.snapshot, "false");
    CHECK_EQ_INT(decode(d, TOPIC, "dbz3_customers_update.json", "dbz3_customers_update.key.json", &ev, &err), 0);
    CHECK(ev.schema == s);
    CHECK_EQ_INT(ev.op, 'u');
    CHECK_STR(&ev, &ev.after, "customer_tier", "platinum");
    CHECK_EQ_INT(decode(d, TOPIC, "dbz3_customers_delete.json", "dbz3_customers_delete.key.json", &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'd');
    CHECK(!ev.after.present);
    CHECK_STR(&ev, &ev.before, "email", "ada@example.com");
    CHECK_EQ_INT(decode(d, TOPIC, "real_customers_create.json", "real_customers_create.key.json", &ev, &err), 0);
    CHECK(cf_schema_equal(ev.schema, s));
    CHECK_EQ_INT(decode(d, "postgres.public.orders", "dbz3_orders_create.json", "dbz3_orders_create.key.json", &ev,
                        &err), 0);
    CHECK_EQ_STR(ev.src.table, "orders");
    CHECK_EQ_STR(ev.schema->fields[ev.schema->pk[0]].name, "order_id");
    CHECK_EQ_INT(ftype(&ev, "order_date").id, CF_T_TIMESTAMP_NTZ);
    CHECK_EQ_INT(ftype(&ev, "shipped_at").id, CF_T_TIMESTAMP);
    CHECK_INT(&ev, &ev.after, "order_date", 1796408460483765LL);
    CHECK_INT(&ev, &ev.after, "total_amount", 3998);         /* "D54=" = 39.98 */
    CHECK_EQ_INT(decode(d, "postgres.public.orders", "dbz3_orders_update.json", "dbz3_orders_update.key.json", &ev,
                        &err), 0);
    CHECK_EQ_INT(ev.op, 'u');
    CHECK_STR(&ev, &ev.after, "status", "shipped");
    CHECK_INT(&ev, &ev.after, "total_amount", 4100);         /* "EAQ=" = 41.00 */
    CHECK_EQ_INT(decode(d, "postgres.public.orders", "dbz3_orders_delete.json", "dbz3_orders_delete.key.json", &ev,
                        &err), 0);
    CHECK_EQ_INT(ev.op, 'd');
    cf_decoder_free(d);
}

/* ---- the envelope schema recognised by its bytes ---------------------- */

/* The schema and payload spans of an envelope fixture {"schema":S,"payload":P}. */
typedef struct { blob all; const char *s; size_t sn; const char *p; size_t pn; } envelope;

static envelope split_envelope(const char *name)
{
    envelope e = { .all = load(name) };
    const char *sep = e.all.p ? strstr(e.all.p, ",\"payload\":") : NULL;

    if (!sep || strncmp(e.all.p, "{\"schema\":", 10) != 0)
        return e;
    e.s = e.all.p + 10;
    e.sn = (size_t)(sep - e.s);
    e.p = sep + 11;
    e.pn = e.all.n - (size_t)(e.p - e.all.p) - 1;    /* without the closing '}' */
    while (e.pn && e.p[e.pn] != '}')
        e.pn--;
    return e;
}

/* Decode {"schema":<s>,"payload":<p>} (s == NULL: no schema member) from a
 * heap copy that is scribbled over and freed at once, as decode() does. */
static int decode_parts(cf_decoder *d, const char *s, size_t sn, const char *p, size_t pn,
                        cf_event *ev, cf_err *err)
{
    char *v = malloc(sn + pn + 32);
    cf_msg m = { .topic = TOPIC, .partition = 0, .offset = 7, .timestamp_ms = 1732440000999 };
    size_t n = 0;
    int rc;

    if (!v)
        return -2;
    if (s) {
        n += (size_t)sprintf(v, "{\"schema\":");
        memcpy(v + n, s, sn);
        n += sn;
        v[n++] = ',';
    } else {
        v[n++] = '{';
    }
    n += (size_t)sprintf(v + n, "\"payload\":");
    memcpy(v + n, p, pn);
    n += pn;
    v[n++] = '}';
    m.value = v;
    m.value_len = n;
    cf_err_clear(err);
    rc = cf_decoder_decode(d, &m, ev, err);
    memset(v, 'X', n);
    free(v);
    return rc;
}

/* Every value of two row images equal (kind and content). */
static int rows_equal(const cf_schema *s, const cf_row *a, const cf_row *b)
{
    if (a->present != b->present)
        return 0;
    for (int i = 0; a->present && i < s->nfields; i++) {
        const cf_value *x = &a->vals[i], *y = &b->vals[i];
        if (x->kind != y->kind)
            return 0;
        if ((x->kind == CF_V_INT && x->i != y->i) || (x->kind == CF_V_BOOL && x->b != y->b) ||
            (x->kind == CF_V_DOUBLE && x->d != y->d) ||
            ((x->kind == CF_V_STRING || x->kind == CF_V_BYTES) &&
             (x->n != y->n || memcmp(x->s, y->s, x->n))))
            return 0;
    }
    return 1;
}

/* A skipped schema gives what a full parse gives: the same columns, types
 * and primary key, and the same values out of the payload. */
static void test_envelope_skip_same_as_parse(void)
{
    static const char *const events[] = {
        "real_customers_create.json", "real_customers_update.json", "real_customers_delete.json",
    };
    cf_decoder *warm = cf_decoder_new(NULL, NULL);
    cf_event ev, full;
    cf_err err;
    const cf_schema *s = NULL;

    for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
        cf_decoder *cold = cf_decoder_new(NULL, NULL);
        CHECK_EQ_INT(decode(warm, TOPIC, events[i], "real_customers_create.key.json", &ev, &err), 0);
        CHECK_EQ_INT(cf_decoder_schema_parses(warm), 1);   /* the stack's three share one schema */
        if (!s)
            s = ev.schema;
        CHECK(ev.schema == s);
        CHECK_EQ_INT(decode(cold, TOPIC, events[i], "real_customers_create.key.json", &full, &err), 0);
        CHECK_EQ_INT(cf_decoder_schema_parses(cold), 1);
        CHECK(cf_schema_equal(ev.schema, full.schema));
        CHECK_EQ_INT(ev.schema->npk, full.schema->npk);
        CHECK(ev.schema->npk == 1 && ev.schema->pk[0] == full.schema->pk[0]);
        CHECK_EQ_INT(ev.op, full.op);
        CHECK(rows_equal(ev.schema, &ev.before, &full.before));
        CHECK(rows_equal(ev.schema, &ev.after, &full.after));
        CHECK_EQ_INT(ev.src.lsn, full.src.lsn);
        cf_decoder_free(cold);
    }
    cf_decoder_free(warm);
}

/* Replace the first `from` in e's schema by `to` into buf; returns the new length. */
static size_t edit_schema(const envelope *e, const char *from, const char *to, char *buf, size_t cap)
{
    const char *at = e->s ? strstr(e->s, from) : NULL;
    size_t head, fn = strlen(from), tn = strlen(to);

    if (!at || at + fn > e->s + e->sn || e->sn - fn + tn > cap)
        return 0;
    head = (size_t)(at - e->s);
    memcpy(buf, e->s, head);
    memcpy(buf + head, to, tn);
    memcpy(buf + head + tn, at + fn, e->sn - head - fn);
    return e->sn - fn + tn;
}

/* One byte of difference anywhere is a full parse; the schema-change path
 * then works as without the cache (a new version, or the old pointer when
 * the change means nothing). */
static void test_envelope_changed_byte_parses(void)
{
    envelope e = split_envelope("customers_create_env.json");
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_schema *v1;
    char buf[8192];
    size_t n;

    CHECK(e.s != NULL && e.sn < sizeof buf - 64);
    if (!e.s)
        goto out;
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    v1 = ev.schema;
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 1);
    CHECK(ev.schema == v1);
    /* email no longer optional: a byte changed in the middle, a new version. */
    n = edit_schema(&e, "\"optional\":true,\"field\":\"email\"", "\"optional\":fals,\"field\":\"email\"", buf,
                    sizeof buf);
    CHECK(n > 0);
    CHECK(decode_parts(d, buf, n, e.p, e.pn, &ev, &err) < 0);      /* "fals" is not JSON */
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 2);
    n = edit_schema(&e, "\"optional\":true,\"field\":\"email\"", "\"optional\":false,\"field\":\"email\"", buf,
                    sizeof buf);
    CHECK_EQ_INT(decode_parts(d, buf, n, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 3);
    CHECK(ev.schema != v1);
    CHECK(!ev.schema->fields[cf_schema_find(ev.schema, "email")].nullable);
    CHECK_STR(&ev, &ev.after, "email", "john@example.com");
    /* The same changed bytes again: recognised. */
    CHECK_EQ_INT(decode_parts(d, buf, n, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 3);
    /* Back to the first bytes: parsed again, the first version's pointer. */
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 4);
    CHECK(ev.schema == v1);
    /* Only the last byte before the closing brace differs (the Envelope's
     * version): parsed, and it means the same table version. */
    n = edit_schema(&e, "\"version\":2}", "\"version\":3}", buf, sizeof buf);
    CHECK(n == e.sn && memcmp(buf + n - 2, "3}", 2) == 0);
    CHECK_EQ_INT(decode_parts(d, buf, n, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 5);
    CHECK(ev.schema == v1);
    /* Whitespace inside the value is a difference too. */
    buf[0] = '{';
    buf[1] = ' ';
    memcpy(buf + 2, e.s + 1, e.sn - 1);
    CHECK_EQ_INT(decode_parts(d, buf, e.sn + 1, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 6);
    CHECK(ev.schema == v1);
    /* The cached bytes followed by junk: an error, as a full parse gives it
     * (what follows the value is checked on a hit too). */
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 7);
    memcpy(buf, e.s, e.sn);
    memcpy(buf + e.sn, "}", 1);
    CHECK(decode_parts(d, buf, e.sn + 1, e.p, e.pn, &ev, &err) < 0);
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 7);
    /* A message cut inside the cached bytes is no hit: parsed, and found
     * truncated; the cache keeps the whole value. */
    {
        cf_msg m = { .topic = TOPIC, .offset = 8 };
        char *cut = malloc(10 + e.sn);
        CHECK(cut != NULL);
        if (cut) {
            memcpy(cut, "{\"schema\":", 10);
            memcpy(cut + 10, e.s, e.sn - 1);
            m.value = cut;
            m.value_len = 10 + e.sn - 1;
            CHECK(cf_decoder_decode(d, &m, &ev, &err) < 0);
            CHECK_EQ_INT(err.code, CF_E_PARSE);
            CHECK(strstr(err.msg, "truncated") != NULL);
            free(cut);
        }
        CHECK_EQ_INT(cf_decoder_schema_parses(d), 8);
    }
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 8);
    CHECK(ev.schema == v1);
out:
    cf_decoder_free(d);
    free(e.all.p);
}

/* Braces, brackets, quotes and backslashes inside the schema's strings:
 * the value ends where JSON says, not at the first '}' after a quote. */
static void test_envelope_schema_with_tricky_strings(void)
{
    static const char doc[] = "\"doc\":\"} ] { [ \\\" \\\\ \\u007d \\\"}\\\"\",";
    envelope e = split_envelope("customers_create_env.json");
    cf_decoder *d = cf_decoder_new(NULL, NULL), *cold = cf_decoder_new(NULL, NULL);
    cf_event ev, full;
    cf_err err;
    char buf[8192], buf2[8192];
    size_t n, n2;

    CHECK(e.s != NULL);
    if (!e.s)
        goto out;
    /* A doc string in the Envelope and in a column (email's). */
    memcpy(buf, "{", 1);
    memcpy(buf + 1, doc, sizeof doc - 1);
    memcpy(buf + sizeof doc, e.s + 1, e.sn - 1);
    n = e.sn + sizeof doc - 1;
    {
        envelope t = e;
        char tmp[300];
        t.s = buf;
        t.sn = n;
        snprintf(tmp, sizeof tmp, "{%s\"type\":\"string\",\"optional\":true,\"field\":\"email\"", doc);
        n2 = edit_schema(&t, "{\"type\":\"string\",\"optional\":true,\"field\":\"email\"", tmp, buf2,
                         sizeof buf2);
    }
    CHECK(n2 > n);
    CHECK_EQ_INT(decode_parts(cold, buf2, n2, e.p, e.pn, &full, &err), 0);
    CHECK_EQ_INT(decode_parts(d, buf2, n2, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(decode_parts(d, buf2, n2, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 1);
    CHECK(cf_schema_equal(ev.schema, full.schema));
    CHECK_EQ_INT(ev.schema->nfields, 15);
    CHECK(rows_equal(ev.schema, &ev.after, &full.after));
    CHECK_STR(&ev, &ev.after, "email", "john@example.com");
    /* One byte inside the doc string changed ('[' -> '('): parsed again, and
     * it is the same table version. */
    {
        char *b = memchr(buf2, '[', n2);
        const cf_schema *s = ev.schema;
        CHECK(b != NULL && b < buf2 + 20);
        *b = '(';
        CHECK_EQ_INT(decode_parts(d, buf2, n2, e.p, e.pn, &ev, &err), 0);
        CHECK_EQ_INT(cf_decoder_schema_parses(d), 2);
        CHECK(ev.schema == s);
    }
out:
    cf_decoder_free(d);
    cf_decoder_free(cold);
    free(e.all.p);
}

/* No schema member, or "schema":null: the payload alone decides, through
 * the topic's last version or the known table; nothing is parsed or cached. */
static void test_envelope_no_schema_or_null(void)
{
    envelope e = split_envelope("customers_create_env.json");
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_event ev;
    cf_err err;
    const cf_schema *v1;

    CHECK(e.s != NULL);
    if (!e.s)
        goto out;
    CHECK_EQ_INT(decode_parts(d, NULL, 0, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(ev.schema == cf_decoder_customers_schema(d));
    check_john(&ev, &ev.after);
    CHECK_EQ_INT(decode_parts(d, "null", 4, e.p, e.pn, &ev, &err), 0);
    CHECK(ev.schema == cf_decoder_customers_schema(d));
    check_john(&ev, &ev.after);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 0);
    /* After a real schema, a null one takes the topic's last version. */
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    v1 = ev.schema;
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 1);
    CHECK_EQ_INT(decode_parts(d, "null", 4, e.p, e.pn, &ev, &err), 0);
    CHECK(ev.schema == v1);
    CHECK_EQ_INT(decode_parts(d, NULL, 0, e.p, e.pn, &ev, &err), 0);
    CHECK(ev.schema == v1);
    check_john(&ev, &ev.after);
    /* ... and the cache still holds the real one. */
    CHECK_EQ_INT(decode_parts(d, e.s, e.sn, e.p, e.pn, &ev, &err), 0);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 1);
    CHECK(ev.schema == v1);
out:
    cf_decoder_free(d);
    free(e.all.p);
}

/* Kafka Connect's JsonConverter writes FLOAT32/FLOAT64 as "float" and
 * "double" (a PostgreSQL real / double precision column). */
static void test_connect_float_names(void)
{
    blob v = load("types_env.json");
    cf_decoder *d = cf_decoder_new(NULL, NULL);
    cf_msg m = { .topic = "postgres.public.all_types", .offset = 1 };
    cf_event ev;
    cf_err err = { 0 };
    char *p;

    CHECK(v.p != NULL);
    if (!v.p)
        return;
    v.p[v.n] = '\0';
    /* same lengths: "float32" -> "float"  + 2 spaces, "float64" -> "double" + 1 */
    while ((p = strstr(v.p, "\"float32\"")))
        memcpy(p, "\"float\"  ", 9);
    while ((p = strstr(v.p, "\"float64\"")))
        memcpy(p, "\"double\" ", 9);
    m.value = v.p;
    m.value_len = v.n;
    CHECK_EQ_INT(cf_decoder_decode(d, &m, &ev, &err), 0);
    if (ev.schema) {
        int f32 = cf_schema_find(ev.schema, "f32"), f64 = cf_schema_find(ev.schema, "f64");
        CHECK(f32 >= 0 && ev.schema->fields[f32].type.id == CF_T_FLOAT);
        CHECK(f64 >= 0 && ev.schema->fields[f64].type.id == CF_T_DOUBLE);
        CHECK(f64 >= 0 && ev.after.vals[f64].d == -0.00225);
    }
    cf_decoder_free(d);
    free(v.p);
}

CF_TEST_MAIN("debezium", T(test_connect_float_names),
    T(test_real_events), T(test_debezium3_events),
    T(test_create_envelope), T(test_create_bare), T(test_snapshot_read),
    T(test_replica_identity), T(test_truncate_and_tombstones), T(test_toast_placeholder),
    T(test_field_order_and_escapes), T(test_schema_cache_and_evolution),
    T(test_envelope_skip_same_as_parse), T(test_envelope_changed_byte_parses),
    T(test_envelope_schema_with_tricky_strings), T(test_envelope_no_schema_or_null),
    T(test_decimal_modes_bare), T(test_every_encoding), T(test_primary_key_from_key),
    T(test_known_schema), T(test_bad_events), T(test_size_cap), T(test_arena_full_is_not_a_bad_event),
    T(test_source_strings_per_event),
    T(test_no_message_pointers_and_reset), T(test_null_err_is_fine))
