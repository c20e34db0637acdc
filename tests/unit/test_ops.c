/* test_ops.c - unit tests for the operator kit without servers: PRNG, the
 * generate plan and its SQL, connector config and status, peek formatting,
 * argument parsing. */
#include "cf_test.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ops/ops.h"

/* ---------------------------------------------------------------- PRNG */

static void rng_reference_vectors(void)
{
    /* Published outputs of splitmix64 from state 0 and of xoshiro256**
     * from state {1, 2, 3, 4}. */
    uint64_t sm = 0;
    CHECK(cf_ops_splitmix64(&sm) == 0xe220a8397b1dcdafULL);
    CHECK(cf_ops_splitmix64(&sm) == 0x6e789e6aa1b965f4ULL);
    CHECK(cf_ops_splitmix64(&sm) == 0x06c45d188009454fULL);

    cf_ops_rng r = { { 1, 2, 3, 4 } };
    CHECK(cf_ops_rng_next(&r) == 11520ULL);
    CHECK(cf_ops_rng_next(&r) == 0ULL);
    CHECK(cf_ops_rng_next(&r) == 1509978240ULL);
    CHECK(cf_ops_rng_next(&r) == 1215971899390074240ULL);

    cf_ops_rng_seed(&r, 42);
    CHECK(cf_ops_rng_next(&r) == 0x15780b2e0c2ec716ULL);
    CHECK(cf_ops_rng_next(&r) == 0x6104d9866d113a7eULL);
}

static void rng_reproducible_and_bounded(void)
{
    cf_ops_rng a, b, c;
    int same_as_other_seed = 0, hist[7] = { 0 };

    cf_ops_rng_seed(&a, 7);
    cf_ops_rng_seed(&b, 7);
    cf_ops_rng_seed(&c, 8);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = cf_ops_rng_next(&a);
        CHECK(x == cf_ops_rng_next(&b));
        same_as_other_seed += x == cf_ops_rng_next(&c);
    }
    CHECK_EQ_INT(same_as_other_seed, 0);
    for (int i = 0; i < 7000; i++) {
        uint64_t v = cf_ops_rng_below(&a, 7);
        CHECK(v < 7);
        if (v < 7)
            hist[v]++;
        double u = cf_ops_rng_unit(&a);
        CHECK(u >= 0.0 && u < 1.0);
    }
    for (int i = 0; i < 7; i++)         /* 1000 expected; 6 sigma is ~170 */
        CHECK(hist[i] > 800 && hist[i] < 1200);
    CHECK_EQ_INT(cf_ops_rng_below(&a, 0), 0);
    CHECK_EQ_INT(cf_ops_rng_below(&a, 1), 0);
}

/* ----------------------------------------------------------- generate */

typedef struct plan_out {
    cf_buf  sql;
    int64_t by_stmt[32];
    int64_t issued[CF_GEN_NTABLES][CF_GEN_NKINDS];
    int     rc;                 /* last cf_ops_gen_next() result */
    cf_err  err;
} plan_out;

static int64_t next_id[CF_GEN_NTABLES];

static int seq_ids(void *ctx, cf_gen_table t, int64_t *ids, int64_t n, cf_err *err)
{
    (void)ctx;
    (void)err;
    for (int64_t i = 0; i < n; i++)
        ids[i] = ++next_id[t];
    return 0;
}

/* Optional per-statement observer (the FK checker below). */
typedef void (*observe_fn)(const cf_ops_gen_sql *s, const cf_ops_gen_stmt *st, void *ctx);

static void run_plan(const cf_ops_gen_opts *o, plan_out *out, observe_fn obs, void *ctx)
{
    cf_ops_gen *g;
    cf_ops_gen_stmt st;
    int n;
    const cf_ops_gen_sql *s = cf_ops_gen_statements(&n);

    memset(out, 0, sizeof *out);
    memset(next_id, 0, sizeof next_id);
    cf_buf_init(&out->sql, 0);
    g = cf_ops_gen_new(o, &out->err);
    CHECK(g != NULL);
    if (!g)
        return;
    CHECK(cf_ops_gen_reserve_ids(g, seq_ids, NULL, &out->err) == 0);
    while ((out->rc = cf_ops_gen_next(g, &st, &out->err)) == 1) {
        CHECK(st.stmt >= 0 && st.stmt < n);
        CHECK_EQ_INT(st.nparams, s[st.stmt].nparams);
        CHECK(cf_ops_gen_render(&out->sql, s[st.stmt].sql, st.nparams, st.params, &out->err) == 0);
        out->by_stmt[st.stmt]++;
        if (obs)
            obs(&s[st.stmt], &st, ctx);
    }
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        for (int k = 0; k < CF_GEN_NKINDS; k++)
            out->issued[t][k] = cf_ops_gen_issued(g, (cf_gen_table)t, (cf_gen_kind)k);
    cf_buf_cstr(&out->sql, NULL);
    cf_ops_gen_free(g);
}

static int stmt_index(const char *name)
{
    int n;
    const cf_ops_gen_sql *s = cf_ops_gen_statements(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(s[i].name, name))
            return i;
    return -1;
}

static cf_ops_gen_opts small_opts(uint64_t seed)
{
    cf_ops_gen_opts o;
    cf_ops_gen_defaults(&o);
    o.seed = seed;
    o.customers = 60;
    o.products = 15;
    o.orders = 150;
    o.updates = (cf_ops_count){ 80, false };
    o.deletes = (cf_ops_count){ 30, false };
    o.batch = 10;
    o.dry_run = true;
    return o;
}

static void gen_same_seed_same_sql(void)
{
    cf_ops_gen_opts o = small_opts(1234);
    plan_out a, b, c;

    run_plan(&o, &a, NULL, NULL);
    run_plan(&o, &b, NULL, NULL);
    o.seed = 1235;
    run_plan(&o, &c, NULL, NULL);
    CHECK_EQ_INT(a.rc, 0);
    CHECK(a.sql.len > 10000);
    CHECK(a.sql.len == b.sql.len && !memcmp(a.sql.data, b.sql.data, a.sql.len));
    CHECK(a.sql.len != c.sql.len || memcmp(a.sql.data, c.sql.data, a.sql.len) != 0);
    cf_buf_free(&a.sql);
    cf_buf_free(&b.sql);
    cf_buf_free(&c.sql);
}

static void gen_exact_counts(void)
{
    cf_ops_gen_opts o = small_opts(99);
    plan_out p;

    run_plan(&o, &p, NULL, NULL);
    CHECK_EQ_INT(p.rc, 0);
    CHECK_EQ_INT(p.issued[CF_GEN_CUSTOMERS][CF_GEN_INSERT], 60);
    CHECK_EQ_INT(p.issued[CF_GEN_PRODUCTS][CF_GEN_INSERT], 15);
    CHECK_EQ_INT(p.issued[CF_GEN_INVENTORY][CF_GEN_INSERT], 15);
    CHECK_EQ_INT(p.issued[CF_GEN_ORDERS][CF_GEN_INSERT], 150);
    int64_t upd = 0;
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        upd += p.issued[t][CF_GEN_UPDATE];
    CHECK_EQ_INT(upd, 80);
    /* Every table is updated at some point in a plan this size. */
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        CHECK(p.issued[t][CF_GEN_UPDATE] > 0);
    /* A requested delete is one order, one customer (after its orders) or
     * one product (after its inventory). */
    int64_t primary = p.by_stmt[stmt_index("cf_del_order")] + p.by_stmt[stmt_index("cf_del_customer")] +
                      p.by_stmt[stmt_index("cf_del_product")];
    CHECK_EQ_INT(primary, 30);
    CHECK_EQ_INT(p.by_stmt[stmt_index("cf_del_orders_of_customer")],
                 p.by_stmt[stmt_index("cf_del_customer")]);
    CHECK_EQ_INT(p.by_stmt[stmt_index("cf_del_inventory_of_product")],
                 p.by_stmt[stmt_index("cf_del_product")]);
    cf_buf_free(&p.sql);
}

static void gen_percentages(void)
{
    cf_ops_gen_opts o = small_opts(5);
    plan_out p;
    int64_t upd = 0;

    o.customers = 100;
    o.products = 0;
    o.orders = 100;
    o.updates = (cf_ops_count){ 10, true };     /* 10% of 200 inserted */
    o.deletes = (cf_ops_count){ 2.5, true };    /* 5 */
    run_plan(&o, &p, NULL, NULL);
    CHECK_EQ_INT(p.rc, 0);
    for (int t = 0; t < CF_GEN_NTABLES; t++)
        upd += p.issued[t][CF_GEN_UPDATE];
    CHECK_EQ_INT(upd, 20);
    CHECK_EQ_INT(p.by_stmt[stmt_index("cf_del_order")] + p.by_stmt[stmt_index("cf_del_customer")], 5);
    CHECK_EQ_INT(cf_ops_count_resolve((cf_ops_count){ 33, true }, 10), 3);
    CHECK_EQ_INT(cf_ops_count_resolve((cf_ops_count){ 7, false }, 1000), 7);
    cf_buf_free(&p.sql);
}

/* A model database: which ids are alive, and each child's parent.  Every
 * statement of the plan must be legal against it. */
#define MODEL_MAX 4096
typedef struct model {
    bool    live[CF_GEN_NTABLES][MODEL_MAX];
    int64_t parent[CF_GEN_NTABLES][MODEL_MAX];
    int     violations, updates_of_dead;
} model;

static int64_t id_param(const cf_ops_gen_stmt *st, int i)
{
    int64_t v = st->params[i] ? strtoll(st->params[i], NULL, 10) : -1;
    return v > 0 && v < MODEL_MAX ? v : 0;
}

static void model_apply(const cf_ops_gen_sql *s, const cf_ops_gen_stmt *st, void *ctx)
{
    model *m = ctx;
    int64_t id = id_param(st, 0);

    if (!id) {
        m->violations++;
        return;
    }
    if (!strcmp(s->name, "cf_ins_customer") || !strcmp(s->name, "cf_ins_product")) {
        if (m->live[st->table][id])
            m->violations++;                    /* duplicate key */
        m->live[st->table][id] = true;
    } else if (!strcmp(s->name, "cf_ins_order") || !strcmp(s->name, "cf_ins_inventory")) {
        cf_gen_table pt = st->table == CF_GEN_ORDERS ? CF_GEN_CUSTOMERS : CF_GEN_PRODUCTS;
        int64_t p = id_param(st, 1);
        if (!p || !m->live[pt][p] || m->live[st->table][id])
            m->violations++;                    /* dangling foreign key */
        m->live[st->table][id] = true;
        m->parent[st->table][id] = p;
    } else if (st->kind == CF_GEN_UPDATE) {
        if (!m->live[st->table][id])
            m->updates_of_dead++;
    } else if (!strcmp(s->name, "cf_del_orders_of_customer") ||
               !strcmp(s->name, "cf_del_inventory_of_product")) {
        for (int i = 1; i < MODEL_MAX; i++)
            if (m->live[st->table][i] && m->parent[st->table][i] == id)
                m->live[st->table][i] = false;
    } else {                                    /* single-row delete */
        cf_gen_table child = st->table == CF_GEN_CUSTOMERS ? CF_GEN_ORDERS
                           : st->table == CF_GEN_PRODUCTS ? CF_GEN_INVENTORY : CF_GEN_NTABLES;
        if (!m->live[st->table][id])
            m->violations++;
        if (child != CF_GEN_NTABLES)
            for (int i = 1; i < MODEL_MAX; i++)
                if (m->live[child][i] && m->parent[child][i] == id)
                    m->violations++;            /* would break (or cascade) a FK */
        m->live[st->table][id] = false;
    }
}

static void gen_respects_foreign_keys(void)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        cf_ops_gen_opts o = small_opts(seed);
        model *m = calloc(1, sizeof *m);
        plan_out p;
        o.deletes = (cf_ops_count){ 120, false };     /* many deletes: stress the cascade */
        run_plan(&o, &p, model_apply, m);
        CHECK_EQ_INT(p.rc, 0);
        CHECK_EQ_INT(m->violations, 0);
        CHECK_EQ_INT(m->updates_of_dead, 0);
        cf_buf_free(&p.sql);
        free(m);
    }
}

/* Values must fit their columns and be valid UTF-8 (PostgreSQL rejects
 * anything else in a UTF8 database). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

typedef struct value_stats { int bad, non_ascii_names, null_phones, customers; } value_stats;

static void check_values(const cf_ops_gen_sql *s, const cf_ops_gen_stmt *st, void *ctx)
{
    value_stats *v = ctx;
    for (int i = 0; i < st->nparams; i++) {
        json_t *j;
        if (!st->params[i])
            continue;
        j = json_string(st->params[i]);         /* NULL if not UTF-8 */
        if (!j)
            v->bad++;
        json_decref(j);
    }
    if (!strcmp(s->name, "cf_ins_customer")) {
        /* phone VARCHAR(20), names VARCHAR(100), state VARCHAR(50), postal VARCHAR(20) */
        if (st->params[4] && utf8_chars(st->params[4]) > 20)
            v->bad++;
        if (st->params[7] && utf8_chars(st->params[7]) > 50)
            v->bad++;
        if (utf8_chars(st->params[8]) > 20)
            v->bad++;
        for (const char *p = st->params[2]; *p; p++)
            if ((unsigned char)*p >= 0x80) {
                v->non_ascii_names++;
                break;
            }
        v->null_phones += st->params[4] == NULL;
        v->customers++;
        if (strcmp(st->params[13], "bronze") && strcmp(st->params[13], "silver") &&
            strcmp(st->params[13], "gold") && strcmp(st->params[13], "platinum"))
            v->bad++;
    }
    if (!strcmp(s->name, "cf_ins_order") && strlen(st->params[6]) != 3)
        v->bad++;                               /* currency CHAR(3) */
}

static void gen_realistic_values(void)
{
    cf_ops_gen_opts o = small_opts(77);
    value_stats v = { 0 };
    plan_out p;

    o.customers = 2000;
    o.orders = 0;
    o.updates = (cf_ops_count){ 0, false };
    o.deletes = (cf_ops_count){ 0, false };
    run_plan(&o, &p, check_values, &v);
    CHECK_EQ_INT(v.bad, 0);
    CHECK_EQ_INT(v.customers, 2000);
    CHECK(v.non_ascii_names > 100 && v.non_ascii_names < 400);     /* ~10% */
    CHECK(v.null_phones > 100 && v.null_phones < 400);             /* ~10% */
    cf_buf_free(&p.sql);
}

static void gen_impossible_plans_fail(void)
{
    cf_ops_gen_opts o = small_opts(3);
    plan_out p;

    o.customers = 0;
    o.products = 0;
    o.orders = 5;
    o.updates = (cf_ops_count){ 0, false };
    o.deletes = (cf_ops_count){ 0, false };
    run_plan(&o, &p, NULL, NULL);
    CHECK_EQ_INT(p.rc, -1);
    CHECK(strstr(p.err.msg, "no customer") != NULL);
    cf_buf_free(&p.sql);

    o.orders = 0;
    o.updates = (cf_ops_count){ 3, false };
    run_plan(&o, &p, NULL, NULL);
    CHECK_EQ_INT(p.rc, -1);
    CHECK(strstr(p.err.msg, "updates") != NULL);
    cf_buf_free(&p.sql);
}

static void gen_existing_rows_are_targets(void)
{
    cf_ops_gen_opts o;
    cf_ops_gen_stmt st;
    cf_err e;
    int upd = 0, rc;
    cf_ops_gen *g;

    cf_ops_gen_defaults(&o);
    o.customers = o.products = o.orders = 0;
    o.updates = (cf_ops_count){ 50, true };     /* of the 4 existing rows: 2 */
    o.deletes = (cf_ops_count){ 0, false };
    g = cf_ops_gen_new(&o, &e);
    CHECK(cf_ops_gen_add_existing(g, CF_GEN_CUSTOMERS, 500, 0, 0, &e) == 0);
    CHECK(cf_ops_gen_add_existing(g, CF_GEN_ORDERS, 900, 500, cf_ops_gen_order_state("shipped"), &e) == 0);
    CHECK(cf_ops_gen_add_existing(g, CF_GEN_PRODUCTS, 70, 0, 0, &e) == 0);
    CHECK(cf_ops_gen_add_existing(g, CF_GEN_INVENTORY, 71, 70, 0, &e) == 0);
    CHECK(cf_ops_gen_reserve_ids(g, seq_ids, NULL, &e) == 0);
    while ((rc = cf_ops_gen_next(g, &st, &e)) == 1) {
        int64_t id = strtoll(st.params[0], NULL, 10);
        CHECK(id == 500 || id == 900 || id == 70 || id == 71);
        if (st.table == CF_GEN_ORDERS)          /* shipped moves on to delivered */
            CHECK_EQ_STR(st.params[1], "delivered");
        upd++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(upd, 2);
    CHECK_EQ_INT(cf_ops_gen_order_state("cancelled"), 4);
    CHECK_EQ_INT(cf_ops_gen_order_state("bogus"), 0);
    cf_ops_gen_free(g);
}

static void render_quotes_and_nulls(void)
{
    cf_buf b;
    cf_err e;
    const char *params[11] = { "O'Brien", NULL, "x", "4", "5", "6", "7", "8", "9", "ten", "it''s" };

    cf_buf_init(&b, 0);
    CHECK(cf_ops_gen_render(&b, "SELECT $1, $2, $10, $11, '$5'", 11, params, &e) == 0);
    /* Placeholders inside our own literals are not a concern: the plan's SQL
     * has none, so '$5' is substituted like any other. */
    CHECK_EQ_STR(cf_buf_cstr(&b, &e), "SELECT 'O''Brien', NULL, 'ten', 'it''''s', ''5'';\n");
    cf_buf_reset(&b);
    CHECK(cf_ops_gen_render(&b, "SELECT $3", 2, params, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    cf_buf_free(&b);
}

static void gen_parse_args(void)
{
    cf_ops_gen_opts o;
    cf_err e;
    char *ok[] = { "generate", "--customers", "5", "--orders=7", "--products", "0",
                   "--updates", "12%", "--deletes", "3", "--rate", "250.5", "--seed", "0x10",
                   "--batch", "500", "--dsn", "host=x dbname=y", "--dry-run", "--json", "--new-rows-only" };

    cf_ops_gen_defaults(&o);
    CHECK(cf_ops_gen_parse((int)(sizeof ok / sizeof *ok), ok, &o, &e) == 0);
    CHECK_EQ_INT(o.customers, 5);
    CHECK_EQ_INT(o.orders, 7);
    CHECK_EQ_INT(o.products, 0);
    CHECK(o.updates.percent && o.updates.value == 12);
    CHECK(!o.deletes.percent && o.deletes.value == 3);
    CHECK(o.rate == 250.5);
    CHECK_EQ_INT(o.seed, 16);
    CHECK_EQ_INT(o.batch, 500);
    CHECK_EQ_STR(o.dsn, "host=x dbname=y");
    CHECK(o.dry_run && o.json && o.new_rows_only);

    char *bad1[] = { "generate", "--customers", "-1" };
    char *bad2[] = { "generate", "--batch", "0" };
    char *bad3[] = { "generate", "--orders" };
    char *bad4[] = { "generate", "--updates", "x%" };
    char *bad5[] = { "generate", "--frobnicate" };
    char *bad6[] = { "generate", "--seed", "-3" };
    char **bads[] = { bad1, bad2, bad3, bad4, bad5, bad6 };
    int nbad[] = { 3, 3, 2, 3, 2, 3 };
    for (int i = 0; i < 6; i++) {
        cf_ops_gen_defaults(&o);
        e.code = CF_OK;
        CHECK(cf_ops_gen_parse(nbad[i], bads[i], &o, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_ARG);
    }
}

/* ---------------------------------------------------------- connector */

static const char *cfg_get(json_t *c, const char *k)
{
    json_t *v = json_object_get(c, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void connector_config_defaults(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    json_t *c;
    char *argv[] = { "connector", "register" };

    unsetenv("PGHOST");
    setenv("PGPORT", "6543", 1);
    unsetenv("PGUSER");
    unsetenv("PGPASSWORD");
    unsetenv("PGDATABASE");
    unsetenv("KAFKA_CONNECT_URL");
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(2, argv, &o, &e) == 0);
    CHECK_EQ_INT(o.action, CF_CONN_REGISTER);
    CHECK_EQ_STR(o.connect_url, "http://127.0.0.1:8083");
    c = cf_ops_conn_config(&o, &e);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_STR(cfg_get(c, "connector.class"), "io.debezium.connector.postgresql.PostgresConnector");
    CHECK_EQ_STR(cfg_get(c, "plugin.name"), "pgoutput");
    CHECK_EQ_STR(cfg_get(c, "slot.name"), "postgres_debezium_slot");
    CHECK_EQ_STR(cfg_get(c, "publication.autocreate.mode"), "filtered");
    CHECK_EQ_STR(cfg_get(c, "topic.prefix"), "postgres");
    CHECK_EQ_STR(cfg_get(c, "table.include.list"),
                 "public.customers,public.orders,public.products,public.inventory");
    CHECK_EQ_STR(cfg_get(c, "database.hostname"), "127.0.0.1");
    CHECK_EQ_STR(cfg_get(c, "database.port"), "6543");
    CHECK_EQ_STR(cfg_get(c, "database.user"), "cdcuser");
    CHECK_EQ_STR(cfg_get(c, "database.password"), "cdcpass");
    CHECK_EQ_STR(cfg_get(c, "database.dbname"), "cdcdb");
    CHECK_EQ_STR(cfg_get(c, "value.converter"), "org.apache.kafka.connect.json.JsonConverter");
    CHECK_EQ_STR(cfg_get(c, "value.converter.schemas.enable"), "true");
    CHECK_EQ_STR(cfg_get(c, "key.converter.schemas.enable"), "true");
    CHECK_EQ_STR(cfg_get(c, "decimal.handling.mode"), "precise");
    /* Connect wants every config value as a string. */
    const char *k;
    json_t *v;
    json_object_foreach(c, k, v)
        CHECK(json_is_string(v));
    json_decref(c);
    unsetenv("PGPORT");
}

static void connector_config_options(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    json_t *c;
    char *argv[] = { "connector", "--name", "other", "register", "--tables", " customers , sales.orders ,",
                     "--decimal-handling", "string", "--set", "snapshot.mode=never",
                     "--set", "plugin.name=decoderbufs", "--set=heartbeat.interval.ms=5000",
                     "--db-host", "db.internal", "--wait", "5", "--timeout=2.5",
                     "--connect-url", "http://connect:8083/" };

    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse((int)(sizeof argv / sizeof *argv), argv, &o, &e) == 0);
    CHECK_EQ_STR(o.name, "other");
    CHECK(o.wait_s == 5 && o.timeout_s == 2.5);
    c = cf_ops_conn_config(&o, &e);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_STR(cfg_get(c, "table.include.list"), "public.customers,sales.orders");
    CHECK_EQ_STR(cfg_get(c, "decimal.handling.mode"), "string");
    CHECK_EQ_STR(cfg_get(c, "snapshot.mode"), "never");
    CHECK_EQ_STR(cfg_get(c, "plugin.name"), "decoderbufs");     /* --set wins */
    CHECK_EQ_STR(cfg_get(c, "heartbeat.interval.ms"), "5000");
    CHECK_EQ_STR(cfg_get(c, "database.hostname"), "db.internal");
    json_decref(c);
}

/* --format avro: a second connector (own name, topics, slot) with Apicurio's
 * AvroConverter on key and value, framed the Confluent way unless told. */
static void connector_config_avro(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    json_t *c;
    char *argv[] = { "connector", "register", "--format", "avro" };
    char *argv2[] = { "connector", "register", "--format=avro", "--avro-framing", "apicurio",
                      "--registry-url", "http://reg:1/apis/registry/v2", "--topic-prefix", "av2",
                      "--name", "n2", "--slot", "s2" };
    char *bad1[] = { "connector", "register", "--format", "protobuf" };
    char *bad2[] = { "connector", "register", "--format", "avro", "--avro-framing", "magic" };

    unsetenv("SCHEMA_REGISTRY_URL");
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(4, argv, &o, &e) == 0);
    CHECK_EQ_STR(o.name, "postgres-avro-connector");
    c = cf_ops_conn_config(&o, &e);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_STR(cfg_get(c, "topic.prefix"), "avro");
    CHECK_EQ_STR(cfg_get(c, "slot.name"), "avro_debezium_slot");
    CHECK_EQ_STR(cfg_get(c, "publication.name"), "dbz_publication");
    CHECK_EQ_STR(cfg_get(c, "key.converter"), "io.apicurio.registry.utils.converter.AvroConverter");
    CHECK_EQ_STR(cfg_get(c, "value.converter"), "io.apicurio.registry.utils.converter.AvroConverter");
    CHECK_EQ_STR(cfg_get(c, "value.converter.apicurio.registry.url"), "http://127.0.0.1:8085/apis/registry/v2");
    CHECK_EQ_STR(cfg_get(c, "value.converter.apicurio.registry.as-confluent"), "true");
    CHECK_EQ_STR(cfg_get(c, "key.converter.apicurio.registry.use-id"), "contentId");
    CHECK_EQ_STR(cfg_get(c, "value.converter.apicurio.registry.headers.enabled"), "false");
    CHECK(json_object_get(c, "value.converter.schemas.enable") == NULL);
    json_decref(c);

    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse((int)(sizeof argv2 / sizeof *argv2), argv2, &o, &e) == 0);
    c = cf_ops_conn_config(&o, &e);
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_EQ_STR(o.name, "n2");
    CHECK_EQ_STR(cfg_get(c, "topic.prefix"), "av2");
    CHECK_EQ_STR(cfg_get(c, "slot.name"), "s2");
    CHECK_EQ_STR(cfg_get(c, "key.converter.apicurio.registry.url"), "http://reg:1/apis/registry/v2");
    CHECK_EQ_STR(cfg_get(c, "value.converter.apicurio.registry.as-confluent"), "false");
    CHECK_EQ_STR(cfg_get(c, "value.converter.apicurio.registry.use-id"), "globalId");
    json_decref(c);

    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(4, bad1, &o, &e) == -1 && e.code == CF_E_ARG);
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(6, bad2, &o, &e) == -1 && e.code == CF_E_ARG);
}

static void connector_config_comparison(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    char *argv[] = { "connector", "register" };
    json_t *want, *have;

    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(2, argv, &o, &e) == 0);
    want = cf_ops_conn_config(&o, &e);
    have = json_deep_copy(want);
    json_object_set_new(have, "name", json_string("postgres-cdc-connector"));
    CHECK(cf_ops_conn_config_same(want, have));
    json_object_set_new(have, "snapshot.mode", json_string("initial"));      /* extra key */
    CHECK(!cf_ops_conn_config_same(want, have));
    json_object_del(have, "snapshot.mode");
    json_object_set_new(have, "slot.name", json_string("other"));            /* changed value */
    CHECK(!cf_ops_conn_config_same(want, have));
    json_object_del(have, "slot.name");                                      /* missing key */
    CHECK(!cf_ops_conn_config_same(want, have));
    json_decref(want);
    json_decref(have);
}

static void connector_parse_errors(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    char *a1[] = { "connector" };
    char *a2[] = { "connector", "launch" };
    char *a3[] = { "connector", "register", "--decimal-handling", "float" };
    char *a4[] = { "connector", "register", "--set", "novalue" };
    char *a5[] = { "connector", "status", "--drop-slot" };
    char *a6[] = { "connector", "register", "--wait" };
    char *a7[] = { "connector", "register", "--tables", " , " };
    char **as[] = { a1, a2, a3, a4, a5, a6 };
    int ns[] = { 1, 2, 4, 4, 3, 3 };

    for (int i = 0; i < 6; i++) {
        cf_ops_conn_defaults(&o);
        e.code = CF_OK;
        CHECK(cf_ops_conn_parse(ns[i], as[i], &o, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_ARG);
    }
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(4, a7, &o, &e) == 0);
    CHECK(cf_ops_conn_config(&o, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);

    char *h[] = { "connector", "--help" };
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(2, h, &o, &e) == 0 && o.help);
    char *d[] = { "connector", "delete", "--drop-slot" };
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(3, d, &o, &e) == 0 && o.drop_slot && o.action == CF_CONN_DELETE);
}

static void connector_status_parsing(void)
{
    cf_ops_conn_status st;
    cf_err e;
    const char *running =
        "{\"name\":\"postgres-cdc-connector\",\"connector\":{\"state\":\"RUNNING\","
        "\"worker_id\":\"127.0.0.1:8083\"},\"tasks\":[{\"id\":0,\"state\":\"RUNNING\","
        "\"worker_id\":\"127.0.0.1:8083\"}],\"type\":\"source\"}";
    const char *failed =
        "{\"name\":\"c\",\"connector\":{\"state\":\"RUNNING\",\"worker_id\":\"w\"},"
        "\"tasks\":[{\"id\":0,\"state\":\"FAILED\",\"worker_id\":\"w\",\"trace\":"
        "\"org.apache.kafka.connect.errors.ConnectException: FATAL: password authentication failed\\n"
        "\\tat a.b(C.java:1)\\n\\tat a.b(C.java:2)\\n\\tat 3\\n\\tat 4\\n\\tat 5\\n\\tat 6\\n\\tat 7\\n"
        "\\tat 8\\n\\tat 9\\n\"}],\"type\":\"source\"}";
    const char *no_tasks = "{\"name\":\"c\",\"connector\":{\"state\":\"RUNNING\"},\"tasks\":[]}";

    CHECK(cf_ops_conn_parse_status(running, strlen(running), &st, &e) == 0);
    CHECK_EQ_STR(st.state, "RUNNING");
    CHECK_EQ_STR(st.worker, "127.0.0.1:8083");
    CHECK_EQ_INT(st.ntasks, 1);
    CHECK(cf_ops_conn_all_running(&st));
    CHECK(!cf_ops_conn_any_failed(&st));
    CHECK_EQ_STR(st.trace, "");

    CHECK(cf_ops_conn_parse_status(failed, strlen(failed), &st, &e) == 0);
    CHECK(!cf_ops_conn_all_running(&st));
    CHECK(cf_ops_conn_any_failed(&st));
    CHECK_EQ_STR(st.tasks[0].state, "FAILED");
    CHECK(!strncmp(st.trace, "org.apache.kafka.connect.errors.ConnectException: FATAL: password", 65));
    CHECK(strstr(st.trace, "at 7") != NULL);        /* 8 lines kept */
    CHECK(strstr(st.trace, "at 8") == NULL);

    CHECK(cf_ops_conn_parse_status(no_tasks, strlen(no_tasks), &st, &e) == 0);
    CHECK(!cf_ops_conn_all_running(&st));           /* running means tasks too */

    CHECK(cf_ops_conn_parse_status("{\"error_code\":404}", 18, &st, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_PARSE);
    CHECK(cf_ops_conn_parse_status("{nope", 5, &st, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_PARSE);
}

static void first_lines(void)
{
    char out[16];
    cf_ops_first_lines("a\nb\nc\n", 2, out, sizeof out);
    CHECK_EQ_STR(out, "a\nb");
    cf_ops_first_lines("single", 3, out, sizeof out);
    CHECK_EQ_STR(out, "single");
    cf_ops_first_lines("0123456789abcdefghij", 1, out, sizeof out);
    CHECK_EQ_STR(out, "0123456789abcde");
}

/* ---------------------------------------------------------------- peek */

static const char *fmt(cf_buf *b, const char *key, const char *val, bool raw)
{
    cf_err e;
    cf_buf_reset(b);
    if (cf_ops_peek_format(b, 0, 42, key, key ? strlen(key) : 0, val, val ? strlen(val) : 0,
                           raw, &e) < 0)
        return "(error)";
    return cf_buf_cstr(b, &e);
}

static void peek_format_lines(void)
{
    cf_buf b;
    const char *key = "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"customer_id\":7}}";
    /* "payload" appears inside a string and a nested object before the real
     * one; the number must come out byte for byte. */
    const char *val =
        "{\"schema\":{\"type\":\"struct\",\"name\":\"x\\\"payload\\\"\",\"fields\":[{\"payload\":1}]},"
        "\"payload\":{\"before\":null,\"after\":{\"customer_id\":7,\"note\":\"a}b\\\"\",\"v\":1.1},"
        "\"op\":\"c\",\"ts_ms\":1}}";

    cf_buf_init(&b, 1 << 20);
    CHECK_EQ_STR(fmt(&b, key, val, false),
                 "0@42 key={\"customer_id\":7} op=c value={\"before\":null,\"after\":"
                 "{\"customer_id\":7,\"note\":\"a}b\\\"\",\"v\":1.1},\"op\":\"c\",\"ts_ms\":1}\n");
    /* --raw keeps the envelope but still finds op */
    const char *raw = fmt(&b, key, val, true);
    CHECK(strstr(raw, " op=c value={\"schema\"") != NULL);
    CHECK(strstr(raw, "key={\"schema\"") != NULL);
    /* tombstone */
    CHECK_EQ_STR(fmt(&b, key, NULL, false), "0@42 key={\"customer_id\":7} op=tombstone value=null\n");
    /* schemas.enable=false: no envelope */
    CHECK_EQ_STR(fmt(&b, "{\"id\":1}", "{\"op\":\"d\",\"before\":{\"id\":1}}", false),
                 "0@42 key={\"id\":1} op=d value={\"op\":\"d\",\"before\":{\"id\":1}}\n");
    /* pretty-printed JSON stays on one line */
    CHECK_EQ_STR(fmt(&b, NULL, "{\n  \"op\": \"u\",\n  \"a\": [1, 2]\n}\n", false),
                 "0@42 key=null op=u value={\"op\":\"u\",\"a\":[1,2]}\n");
    /* not JSON: shown as a JSON string; invalid UTF-8 escaped */
    CHECK_EQ_STR(fmt(&b, "k\"1", "plain text", false),
                 "0@42 key=\"k\\\"1\" op=- value=\"plain text\"\n");
    CHECK_EQ_STR(fmt(&b, NULL, "\xff\x01z", false), "0@42 key=null op=- value=\"\\u00ff\\u0001z\"\n");
    /* an op that is not a plain word cannot break the line */
    CHECK_EQ_STR(fmt(&b, NULL, "{\"op\":\"c\\nd\"}", false), "0@42 key=null op=? value={\"op\":\"c\\nd\"}\n");
    cf_buf_free(&b);
}

/* A random JSON value built from our PRNG: nested objects and arrays,
 * strings full of braces, quotes, escapes and "payload" look-alikes. */
static json_t *random_json(cf_ops_rng *r, int depth)
{
    static const char *const strs[] = { "payload", "a}b", "\"q\"", "[", "\\", "{\"payload\":1}", "é€😀",
                                        "", "tab\there", "nl\n" };
    static const char *const keys[] = { "payload", "schema", "op", "x", "pay\"load", "payloa" };
    switch (cf_ops_rng_below(r, depth > 3 ? 5 : 7)) {
    case 0: return json_integer((json_int_t)cf_ops_rng_next(r) >> 20);
    case 1: return json_real(cf_ops_rng_unit(r) * 1e6);
    case 2: return json_string(strs[cf_ops_rng_below(r, 10)]);
    case 3: return cf_ops_rng_chance(r, 0.5) ? json_true() : json_null();
    case 4: return json_false();
    case 5: {
        json_t *a = json_array();
        for (uint64_t i = cf_ops_rng_below(r, 4); i > 0; i--)
            json_array_append_new(a, random_json(r, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint64_t i = cf_ops_rng_below(r, 5); i > 0; i--)
            json_object_set_new(o, keys[cf_ops_rng_below(r, 6)], random_json(r, depth + 1));
        return o;
    }
    }
}

static void peek_payload_span_property(void)
{
    cf_ops_rng r;
    cf_buf b;
    cf_err e;
    int checked = 0;

    cf_ops_rng_seed(&r, 2024);
    cf_buf_init(&b, 1 << 20);
    for (int i = 0; i < 3000; i++) {
        json_t *env = json_object(), *payload = random_json(&r, 1);
        json_object_set_new(env, "schema", random_json(&r, 1));
        json_object_set_new(env, "payload", payload);
        if (cf_ops_rng_chance(&r, 0.5))
            json_object_set_new(env, "zzz", random_json(&r, 2));
        /* Compact as Connect writes it, or indented / spaced by someone else. */
        size_t flags = cf_ops_rng_chance(&r, 0.5) ? JSON_COMPACT : JSON_INDENT(cf_ops_rng_below(&r, 3));
        char *text = json_dumps(env, flags | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
        cf_buf_reset(&b);
        CHECK(cf_ops_peek_format(&b, 1, 2, NULL, 0, text, strlen(text), false, &e) == 0);
        const char *line = cf_buf_cstr(&b, &e);
        const char *v = strstr(line, " value=");
        CHECK(v != NULL);
        CHECK(strchr(line, '\n') == line + b.len - 1);              /* one line */
        if (v) {
            json_t *got = json_loadb(v + 7, strlen(v + 7) - 1, JSON_DECODE_ANY, NULL);
            CHECK(got != NULL && json_equal(got, payload));
            checked += got != NULL && json_equal(got, payload);
            json_decref(got);
        }
        free(text);
        json_decref(env);
    }
    CHECK_EQ_INT(checked, 3000);
    cf_buf_free(&b);
}

/* Whatever bytes arrive, formatting neither crashes (the sanitizer build
 * watches) nor breaks the one-line format. */
static void peek_survives_mangled_messages(void)
{
    const char *seed = "{\"schema\":{\"type\":\"struct\"},\"payload\":{\"before\":null,\"after\":"
                       "{\"id\":1,\"s\":\"a}\\\"b\"},\"op\":\"u\"}}";
    size_t n = strlen(seed);
    char m[256];
    cf_ops_rng r;
    cf_buf b;
    cf_err e;
    int bad = 0;

    cf_ops_rng_seed(&r, 99);
    cf_buf_init(&b, 1 << 20);
    for (int i = 0; i < 20000; i++) {
        size_t len = n;
        memcpy(m, seed, n);
        for (uint64_t k = cf_ops_rng_below(&r, 4) + 1; k > 0; k--) {
            size_t at = (size_t)cf_ops_rng_below(&r, len);
            switch (cf_ops_rng_below(&r, 3)) {
            case 0: m[at] = (char)cf_ops_rng_next(&r); break;
            case 1: len = at; break;                              /* truncate */
            default: m[at] = "{}[]\",:\\ \n"[cf_ops_rng_below(&r, 10)]; break;
            }
            if (!len)
                break;
        }
        cf_buf_reset(&b);
        if (cf_ops_peek_format(&b, 0, i, m, len, m, len, cf_ops_rng_chance(&r, 0.2), &e) < 0) {
            bad++;
            continue;
        }
        if (!b.len || memchr(b.data, '\n', b.len) != b.data + b.len - 1)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
    cf_buf_free(&b);
}

static void peek_parse_args(void)
{
    cf_ops_peek_opts o;
    cf_err e;
    char *a[] = { "peek", "--bootstrap", "k:1", "postgres.public.orders", "-n", "5", "--from-beginning",
                  "--timeout=3" };
    char *l[] = { "peek", "--prefix", "x." };
    char *two[] = { "peek", "a", "b" };
    char *badn[] = { "peek", "t", "-n", "many" };
    char *unk[] = { "peek", "--follow" };

    cf_ops_peek_defaults(&o);
    CHECK(cf_ops_peek_parse(8, a, &o, &e) == 0);
    CHECK_EQ_STR(o.bootstrap, "k:1");
    CHECK_EQ_STR(o.topic, "postgres.public.orders");
    CHECK_EQ_INT(o.n, 5);
    CHECK(o.from_beginning);
    CHECK(o.timeout_s == 3);
    cf_ops_peek_defaults(&o);
    CHECK(cf_ops_peek_parse(3, l, &o, &e) == 0);
    CHECK(o.topic == NULL);
    CHECK_EQ_STR(o.prefix, "x.");
    CHECK_EQ_INT(o.n, 10);
    cf_ops_peek_defaults(&o);
    CHECK(cf_ops_peek_parse(3, two, &o, &e) == -1);
    cf_ops_peek_defaults(&o);
    CHECK(cf_ops_peek_parse(4, badn, &o, &e) == -1);
    cf_ops_peek_defaults(&o);
    CHECK(cf_ops_peek_parse(2, unk, &o, &e) == -1);
}

static void opt_matching(void)
{
    cf_err e;
    const char *v = NULL;
    int i = 0;
    char *a[] = { "--tables=x", "--table", "--name", "--tables" };

    CHECK_EQ_INT(cf_ops_opt(4, a, &i, "--tables", &v, &e), 1);
    CHECK_EQ_STR(v, "x");
    i = 1;
    CHECK_EQ_INT(cf_ops_opt(4, a, &i, "--tables", &v, &e), 0);  /* a prefix is not a match */
    i = 2;
    CHECK_EQ_INT(cf_ops_opt(4, a, &i, "--name", &v, &e), 1);
    CHECK_EQ_STR(v, "--tables");
    CHECK_EQ_INT(i, 3);
    i = 3;
    CHECK_EQ_INT(cf_ops_opt(4, a, &i, "--tables", &v, &e), -1); /* value missing */
    CHECK_EQ_INT(e.code, CF_E_ARG);

    int64_t x;
    double d;
    CHECK(cf_ops_parse_i64("12x", "n", 0, 100, &x, &e) == -1);
    CHECK(cf_ops_parse_i64("", "n", 0, 100, &x, &e) == -1);
    CHECK(cf_ops_parse_i64("101", "n", 0, 100, &x, &e) == -1);
    CHECK(cf_ops_parse_i64("100", "n", 0, 100, &x, &e) == 0 && x == 100);
    CHECK(cf_ops_parse_double("nan", "d", 0, 1, &d, &e) == -1);
    CHECK(cf_ops_parse_double("0.5", "d", 0, 1, &d, &e) == 0 && d == 0.5);
}

CF_TEST_MAIN("ops",
    T(rng_reference_vectors), T(rng_reproducible_and_bounded),
    T(gen_same_seed_same_sql), T(gen_exact_counts), T(gen_percentages),
    T(gen_respects_foreign_keys), T(gen_realistic_values), T(gen_impossible_plans_fail),
    T(gen_existing_rows_are_targets), T(render_quotes_and_nulls), T(gen_parse_args),
    T(connector_config_defaults), T(connector_config_options), T(connector_config_avro),
    T(connector_config_comparison),
    T(connector_parse_errors),
    T(connector_status_parsing), T(first_lines),
    T(peek_format_lines), T(peek_payload_span_property), T(peek_survives_mangled_messages),
    T(peek_parse_args), T(opt_matching))
