/* test_state.c - the int64 hash map and the total_orders enrichment:
 * create, re-assign, delete, late customers, LSN order, rollback, restart
 * from the state file the offsets name, and the file's round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cf_test.h"
#include "state/enrich.h"
#include "state/i64map.h"
#include "transform/transform.h"

/* ---- i64map ---- */

static void map_against_reference(void)
{
    enum { N = 20000 };
    static int64_t ref[N];      /* value + 1 of key i*7, 0 absent */
    cf_i64map m = { 0 };
    unsigned seed = 1;
    size_t live = 0, it = 0, seen = 0;
    int64_t k, v;

    for (int round = 0; round < 200000; round++) {
        int i = rand_r(&seed) % N;
        if (rand_r(&seed) % 3) {
            live += ref[i] == 0;
            ref[i] = round + 1;
            CHECK(cf_i64map_put(&m, (int64_t)i * 7, round, NULL) == 0);
        } else {
            CHECK(cf_i64map_del(&m, (int64_t)i * 7) == (ref[i] != 0));
            live -= ref[i] != 0;
            ref[i] = 0;
        }
    }
    CHECK_EQ_INT(m.n, live);
    for (int i = 0; i < N; i++) {
        bool has = cf_i64map_get(&m, (int64_t)i * 7, &v);
        CHECK(has == (ref[i] != 0));
        if (has)
            CHECK_EQ_INT(v, ref[i] - 1);
    }
    while (cf_i64map_next(&m, &it, &k, &v))
        seen++;
    CHECK_EQ_INT(seen, live);
    CHECK(m.n * 10 <= m.cap * 7);
    cf_i64map_free(&m);
}

static void map_min_key(void)
{
    cf_i64map m = { 0 };
    int64_t v = 0, k;
    size_t it = 0, n = 0;

    CHECK(!cf_i64map_get(&m, INT64_MIN, &v));
    CHECK(cf_i64map_put(&m, INT64_MIN, 5, NULL) == 0);
    CHECK(cf_i64map_put(&m, 3, 6, NULL) == 0);
    CHECK(cf_i64map_get(&m, INT64_MIN, &v) && v == 5);
    CHECK_EQ_INT(m.n, 2);
    while (cf_i64map_next(&m, &it, &k, &v))
        n++;
    CHECK_EQ_INT(n, 2);
    CHECK(cf_i64map_del(&m, INT64_MIN));
    CHECK(!cf_i64map_get(&m, INT64_MIN, NULL));
    CHECK_EQ_INT(m.n, 1);
    cf_i64map_free(&m);
    cf_i64map_free(NULL);
}

/* ---- enrichment ---- */

static cf_schema *orders_schema(void)
{
    static const char *const pk[] = { "order_id" };
    cf_schema *s = cf_schema_new();
    cf_schema_add(s, "order_id", (cf_type){ CF_T_INT32, 0, 0 }, false, 0, NULL);
    cf_schema_add(s, "customer_id", (cf_type){ CF_T_INT32, 0, 0 }, true, 0, NULL);
    cf_schema_set_pk(s, pk, 1, NULL);
    return s;
}

/* Feed one order event: op 'c'/'u'/'d', cust -1 for a null customer. */
static void order(cf_enrich *e, const cf_schema *s, char op, int64_t id, int64_t cust, int64_t lsn)
{
    cf_value v[2] = { { .kind = CF_V_INT, .i = id }, { .kind = cust == -1 ? CF_V_NULL : CF_V_INT, .i = cust } };
    cf_event ev = { .op = op, .ts_ms = 1000 + lsn, .schema = s, .kafka_ts_ms = 2000 + lsn };
    cf_err err = { 0 };

    ev.src.lsn = lsn;
    if (op == 'd') {
        v[1].kind = CF_V_NULL;       /* REPLICA IDENTITY DEFAULT: the key only */
        ev.before = (cf_row){ true, v };
    } else {
        ev.after = (cf_row){ true, v };
    }
    CHECK(cf_enrich_order(e, &ev, &err) == 0);
}

typedef struct fixture {
    char        dir[64];
    cf_transform *xf;
    const cf_schema *cs;
    cf_schema  *os;
    cf_batch   *b;
    char        ops[64];
    int64_t     lsns[64];
    cf_cells    ua;
    cf_offsets  start, end;
    int         key;
} fixture;

static void fx_init(fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/cf-state-XXXXXX");
    CHECK(mkdtemp(f->dir) != NULL);
    f->xf = cf_transform_new(&(cf_transform_config){ .kind = CF_XF_CUSTOMERS }, NULL);
    f->cs = cf_transform_customers_schema(f->xf);
    f->os = orders_schema();
    f->b = cf_batch_new(f->cs, NULL);
    f->key = cf_schema_find(f->cs, "customer_id");
}

static void fx_free(fixture *f)
{
    char cmd[128];

    cf_batch_free(f->b);
    cf_schema_free(f->os);
    cf_transform_free(f->xf);
    cf_cells_free(&f->ua);
    cf_offsets_free(&f->start);
    cf_offsets_free(&f->end);
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    CHECK(system(cmd) == 0);
}

static cf_enrich *fx_enrich(fixture *f, cf_mode mode)
{
    cf_enrich_config ec = { .orders_topic = "orders", .location = f->dir, .mode = mode };
    cf_enrich *e = cf_enrich_new(&ec, NULL);
    CHECK(e != NULL);
    return e;
}

static void customer(fixture *f, char op, int64_t id, int64_t lsn)
{
    size_t r = f->b->nrows;
    CHECK(cf_col_set_i64(&f->b->cols[f->key], r, id, NULL) == 0);
    CHECK(cf_batch_end_row(f->b, NULL) == 0);
    f->ops[r] = op;
    f->lsns[r] = lsn;
}

/* Prepare and "commit" the batch: the offsets move by `n` on each topic. */
static const cf_batch *commit(fixture *f, cf_enrich *e, int n, bool lands, cf_commit *c)
{
    cf_err err = { 0 };
    int64_t at = cf_offsets_get(&f->end, "orders", 0);

    cf_offsets_put(&f->end, "orders", 0, (at < 0 ? 0 : at) + n, NULL);
    cf_offsets_put(&f->end, "customers", 0, (at < 0 ? 0 : at) + n, NULL);
    *c = (cf_commit){ .rows = f->b->nrows ? f->b : NULL, .ops = f->ops, .lsns = f->lsns, .key = &f->key,
                      .nkey = 1, .unavail = &f->ua, .end = &f->end };
    CHECK(cf_enrich_prepare(e, f->b->nrows ? f->b : NULL, f->cs, &f->ua, c, 1, &err) == 0);
    cf_enrich_done(e, lands);
    if (!lands) {
        cf_offsets_put(&f->end, "orders", 0, at, NULL);     /* (raise only: rebuilt below) */
        cf_offsets_clear(&f->end);
        if (at >= 0) {
            cf_offsets_put(&f->end, "orders", 0, at, NULL);
            cf_offsets_put(&f->end, "customers", 0, at, NULL);
        }
    }
    return c->rows;
}

static int64_t count_of(const cf_batch *b, size_t r)
{
    int c = cf_schema_find(b->schema, "total_orders");
    return cf_col_valid(&b->cols[c], r) ? cf_col_i32(&b->cols[c], r) : -1;
}

static int64_t key_of(const cf_batch *b, size_t r)
{
    return cf_col_i64(&b->cols[cf_schema_find(b->schema, "customer_id")], r);
}

static void fx_reset(fixture *f)
{
    cf_batch_reset(f->b);
    f->ua.n = 0;
}

static void upsert_counts_and_updates(void)
{
    fixture f;
    cf_enrich *e, *again;
    cf_offsets none = { 0 };
    cf_commit c;
    const cf_batch *rows;

    fx_init(&f);
    e = fx_enrich(&f, CF_MODE_UPSERT);
    CHECK(cf_enrich_sync(e, &none, NULL) == 0);

    /* c1 created before its orders, c2 after one of its own (LSN order,
     * whatever order the topics arrived in). */
    order(e, f.os, 'c', 1, 1, 10);
    order(e, f.os, 'c', 2, 1, 20);
    order(e, f.os, 'c', 3, 2, 30);
    customer(&f, 'c', 2, 40);
    customer(&f, 'c', 1, 5);
    rows = commit(&f, e, 5, true, &c);
    CHECK_EQ_INT(rows->nrows, 3);
    CHECK_EQ_INT(count_of(rows, 0), 1);       /* c2 at LSN 40: order 3 */
    CHECK_EQ_INT(count_of(rows, 1), 0);       /* c1 at LSN 5: none yet */
    /* c1's last row does not carry its final count: an update row does */
    CHECK_EQ_INT(key_of(rows, 2), 1);
    CHECK_EQ_INT(count_of(rows, 2), 2);
    CHECK_EQ_INT(c.ops[2], 'u');
    CHECK_EQ_INT(c.lsns[2], 20);
    CHECK(cf_cells_has(c.unavail, 2, cf_schema_find(f.cs, "email")));
    CHECK(!cf_cells_has(c.unavail, 2, cf_schema_find(f.cs, "total_orders")));
    CHECK_EQ_INT(cf_enrich_count(e, 1), 2);
    CHECK_EQ_INT(cf_enrich_count(e, 2), 1);

    /* Re-assign order 1 to c2, delete order 3: no customers rows, so the
     * update of c1 comes in a batch of the enrichment's own; c2's count
     * went up and down again: no row. */
    fx_reset(&f);
    order(e, f.os, 'u', 1, 2, 50);
    order(e, f.os, 'd', 3, -1, 60);
    rows = commit(&f, e, 2, true, &c);
    CHECK(rows != NULL && rows != f.b);
    CHECK_EQ_INT(rows->nrows, 1);
    CHECK_EQ_INT(key_of(rows, 0), 1);
    CHECK_EQ_INT(count_of(rows, 0), 1);
    CHECK_EQ_INT(cf_enrich_count(e, 2), 1);
    CHECK_EQ_INT(c.nkey, 1);

    /* Orders of a customer not seen yet: counted, no row (there is no
     * customer to update); the customer's own row then carries them. */
    fx_reset(&f);
    order(e, f.os, 'c', 4, 3, 70);
    order(e, f.os, 'c', 5, 3, 71);
    rows = commit(&f, e, 2, true, &c);
    CHECK(!rows || rows->nrows == 0);
    fx_reset(&f);
    customer(&f, 'c', 3, 80);
    rows = commit(&f, e, 1, true, &c);
    CHECK_EQ_INT(rows->nrows, 1);
    CHECK_EQ_INT(count_of(rows, 0), 2);

    /* A deleted customer gets no more updates. */
    fx_reset(&f);
    customer(&f, 'd', 1, 90);
    order(e, f.os, 'c', 6, 1, 95);
    rows = commit(&f, e, 2, true, &c);
    CHECK_EQ_INT(rows->nrows, 1);
    CHECK_EQ_INT(cf_enrich_count(e, 1), 2);

    /* A commit that does not land leaves the state as it was. */
    fx_reset(&f);
    order(e, f.os, 'd', 4, -1, 100);
    order(e, f.os, 'u', 5, 2, 101);
    commit(&f, e, 2, false, &c);
    CHECK_EQ_INT(cf_enrich_count(e, 3), 2);
    CHECK_EQ_INT(cf_enrich_count(e, 2), 1);

    /* Restart: the state the table's offsets name, and only that one. */
    again = fx_enrich(&f, CF_MODE_UPSERT);
    CHECK(cf_enrich_sync(again, &f.end, NULL) == 0);
    CHECK_EQ_INT(cf_enrich_count(again, 1), 2);
    CHECK_EQ_INT(cf_enrich_count(again, 2), 1);
    CHECK_EQ_INT(cf_enrich_count(again, 3), 2);
    {
        cf_offsets other = { 0 };
        cf_err err = { 0 };
        cf_offsets_put(&other, "orders", 0, 1, NULL);
        CHECK(cf_enrich_sync(again, &other, &err) == -1);
        CHECK_EQ_INT(err.code, CF_E_CORRUPT);
        CHECK(err.fatal);
        cf_offsets_free(&other);
    }
    cf_enrich_free(again);
    cf_enrich_free(e);
    fx_free(&f);
}

static void append_counts_as_of_lsn(void)
{
    fixture f;
    cf_enrich *e;
    cf_offsets none = { 0 };
    cf_commit c;
    const cf_batch *rows;

    fx_init(&f);
    e = fx_enrich(&f, CF_MODE_APPEND);
    CHECK(cf_enrich_sync(e, &none, NULL) == 0);
    customer(&f, 'c', 7, 10);
    customer(&f, 'u', 7, 30);
    customer(&f, 'u', 7, 50);
    order(e, f.os, 'c', 1, 7, 20);
    order(e, f.os, 'c', 2, 7, 30);      /* same LSN as a row: counted for it */
    order(e, f.os, 'u', 2, 8, 40);
    rows = commit(&f, e, 3, true, &c);
    CHECK_EQ_INT(rows->nrows, 3);       /* append: no update rows */
    CHECK_EQ_INT(count_of(rows, 0), 0);
    CHECK_EQ_INT(count_of(rows, 1), 2);
    CHECK_EQ_INT(count_of(rows, 2), 1);
    CHECK_EQ_INT(cf_enrich_count(e, 8), 1);
    cf_enrich_free(e);
    fx_free(&f);
}

/* docs/enrichment.md's worked example, commit by commit. */
static void worked_example(void)
{
    for (int m = 0; m < 2; m++) {
        fixture f;
        cf_enrich *e;
        cf_offsets none = { 0 };
        cf_commit c;
        const cf_batch *rows;
        bool up = m == 0;

        fx_init(&f);
        e = fx_enrich(&f, up ? CF_MODE_UPSERT : CF_MODE_APPEND);
        CHECK(cf_enrich_sync(e, &none, NULL) == 0);
        order(e, f.os, 'c', 10, 1, 110);
        order(e, f.os, 'c', 11, 1, 111);
        order(e, f.os, 'c', 12, 2, 112);
        customer(&f, 'c', 1, 100);
        rows = commit(&f, e, 4, true, &c);
        CHECK_EQ_INT(rows->nrows, up ? 2 : 1);
        CHECK_EQ_INT(count_of(rows, 0), 0);
        if (up) {
            CHECK_EQ_INT(key_of(rows, 1), 1);
            CHECK_EQ_INT(count_of(rows, 1), 2);
            CHECK_EQ_INT(c.lsns[1], 111);
        }

        fx_reset(&f);
        order(e, f.os, 'u', 12, 1, 120);
        customer(&f, 'c', 2, 115);
        rows = commit(&f, e, 2, true, &c);
        CHECK_EQ_INT(rows->nrows, up ? 3 : 1);
        CHECK_EQ_INT(count_of(rows, 0), 1);
        if (up) {
            CHECK_EQ_INT(key_of(rows, 1), 2);
            CHECK_EQ_INT(count_of(rows, 1), 0);
            CHECK_EQ_INT(key_of(rows, 2), 1);
            CHECK_EQ_INT(count_of(rows, 2), 3);
        }

        fx_reset(&f);
        order(e, f.os, 'd', 10, -1, 130);
        customer(&f, 'u', 1, 125);
        rows = commit(&f, e, 2, true, &c);
        CHECK_EQ_INT(rows->nrows, up ? 2 : 1);
        CHECK_EQ_INT(count_of(rows, 0), 3);
        if (up) {
            CHECK_EQ_INT(count_of(rows, 1), 2);
            CHECK_EQ_INT(c.lsns[1], 130);
        }
        CHECK_EQ_INT(cf_enrich_count(e, 1), 2);
        CHECK_EQ_INT(cf_enrich_count(e, 2), 0);
        cf_enrich_free(e);
        fx_free(&f);
    }
}

static int state_files(const char *dir)
{
    char cmd[256];
    FILE *p;
    int n = -1;

    snprintf(cmd, sizeof cmd, "ls %s/_cdcflow_state | wc -l", dir);
    if ((p = popen(cmd, "r"))) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

/* Small commits over a big state write deltas over the last full state,
 * until they outweigh it; a restart replays the chain; a chain with a
 * file missing or changed is refused. */
static void delta_chain(void)
{
    fixture f;
    cf_enrich *e, *b;
    cf_offsets none = { 0 };
    cf_commit c;
    cf_err err = { 0 };
    int most = 0, n;

    fx_init(&f);
    e = fx_enrich(&f, CF_MODE_UPSERT);
    CHECK(cf_enrich_sync(e, &none, NULL) == 0);
    for (int i = 0; i < 2000; i++)
        order(e, f.os, 'c', i, i % 50, i);
    commit(&f, e, 1, true, &c);
    CHECK_EQ_INT(state_files(f.dir), 1);
    for (int k = 0; k < 40; k++) {
        fx_reset(&f);
        order(e, f.os, 'u', k, 100 + k, 3000 + k);       /* re-assign */
        order(e, f.os, 'd', 1000 + k, -1, 3100 + k);     /* delete */
        if (k == 20)                /* a big commit: its delta would outweigh the full state */
            for (int i = 40; i < 2000; i++)
                order(e, f.os, 'u', i, (i + 1) % 50, 3050 + i);
        commit(&f, e, 1, true, &c);
        if ((n = state_files(f.dir)) > most)
            most = n;
        if (k == 20)
            CHECK_EQ_INT(n, 1);     /* written whole; the chain before it removed */
        if (k == 5) {   /* a commit that does not land leaves the chain as it was */
            fx_reset(&f);
            order(e, f.os, 'd', 1, -1, 3500);
            commit(&f, e, 1, false, &c);
            CHECK_EQ_INT(state_files(f.dir), n + 1);     /* its file: removed on the next load */
        }
    }
    CHECK(most > 5);
    CHECK(state_files(f.dir) <= most);
    b = fx_enrich(&f, CF_MODE_UPSERT);
    CHECK(cf_enrich_sync(b, &f.end, &err) == 0);
    for (int i = 0; i < 200; i++)
        CHECK_EQ_INT(cf_enrich_count(b, i), cf_enrich_count(e, i));
    CHECK_EQ_INT(cf_enrich_count(b, 107), 1);
    {   /* change a byte of the oldest file: every load of the chain fails */
        char cmd[512];
        cf_enrich *x = fx_enrich(&f, CF_MODE_UPSERT);
        snprintf(cmd, sizeof cmd, "f=$(ls -tr %s/_cdcflow_state/* | head -1); printf 'X' | "
                 "dd of=$f bs=1 seek=30 conv=notrunc 2>/dev/null", f.dir);
        CHECK(system(cmd) == 0);
        if (state_files(f.dir) > 1) {
            CHECK(cf_enrich_sync(x, &f.end, &err) == -1);
            snprintf(cmd, sizeof cmd, "rm $(ls -tr %s/_cdcflow_state/* | head -1)", f.dir);
            CHECK(system(cmd) == 0);
            CHECK(cf_enrich_sync(x, &f.end, &err) == -1);
            CHECK_EQ_INT(err.code, CF_E_CORRUPT);
        }
        cf_enrich_free(x);
    }
    cf_enrich_free(b);
    cf_enrich_free(e);
    fx_free(&f);
}

static void file_round_trip(void)
{
    fixture f;
    cf_enrich *e, *b;
    cf_offsets none = { 0 }, offs = { 0 }, got = { 0 };
    cf_buf buf = { 0 };
    cf_err err = { 0 };
    cf_commit c;

    fx_init(&f);
    e = fx_enrich(&f, CF_MODE_UPSERT);
    b = fx_enrich(&f, CF_MODE_UPSERT);
    CHECK(cf_enrich_sync(e, &none, NULL) == 0);
    for (int i = 0; i < 1000; i++)
        order(e, f.os, 'c', i, i % 37, i);
    order(e, f.os, 'c', 5000, INT32_MIN, 2000);
    commit(&f, e, 1, true, &c);
    cf_offsets_put(&offs, "postgres.public.orders", 3, 77, NULL);
    cf_offsets_put(&offs, "postgres.public.customers", 0, 12, NULL);
    CHECK(cf_enrich_encode(e, &offs, &buf, NULL) == 0);
    CHECK(cf_enrich_decode(b, buf.data, buf.len, &got, NULL) == 0);
    CHECK_EQ_INT(got.n, 2);
    CHECK_EQ_INT(cf_offsets_get(&got, "postgres.public.orders", 3), 77);
    for (int i = 0; i < 37; i++)
        CHECK_EQ_INT(cf_enrich_count(b, i), cf_enrich_count(e, i));
    CHECK_EQ_INT(cf_enrich_count(b, INT32_MIN), 1);
    /* every flipped byte and every cut is refused */
    for (size_t i = 0; i < buf.len; i += 97) {
        buf.data[i] ^= 0x40;
        CHECK(cf_enrich_decode(b, buf.data, buf.len, &got, &err) == -1);
        buf.data[i] ^= 0x40;
        CHECK(cf_enrich_decode(b, buf.data, i, &got, &err) == -1);
    }
    cf_buf_free(&buf);
    cf_offsets_free(&offs);
    cf_offsets_free(&got);
    cf_enrich_free(b);
    cf_enrich_free(e);
    fx_free(&f);
}

CF_TEST_MAIN("state", T(map_against_reference), T(map_min_key), T(upsert_counts_and_updates),
             T(append_counts_as_of_lsn), T(worked_example), T(delta_chain), T(file_round_trip))
