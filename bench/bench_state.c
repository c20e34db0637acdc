/* bench_state.c - the total_orders state at scale: fold N orders for C
 * customers through cf_enrich in commits of B orders (each commit writes
 * the whole state file, as the pipeline does), then load it back.  Prints
 * bytes per key, state file size, fold, write and load rates and peak RSS;
 * never asserts on time.
 *
 *   bench_state CUSTOMERS ORDERS BATCH DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "state/enrich.h"
#include "transform/transform.h"
#include "util/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

int main(int argc, char **argv)
{
    long ncust = argc > 1 ? atol(argv[1]) : 1000000, nord = argc > 2 ? atol(argv[2]) : 10000000;
    long batch = argc > 3 ? atol(argv[3]) : 1000000;
    const char *dir = argc > 4 ? argv[4] : "/tmp/cdcflow-bench-state";
    static const char *const pk[] = { "order_id" };
    cf_err err = { 0 };
    cf_enrich_config ec = { .orders_topic = "orders", .location = dir, .mode = CF_MODE_UPSERT };
    cf_enrich *e, *back;
    cf_transform *xf = cf_transform_new(&(cf_transform_config){ .kind = CF_XF_CUSTOMERS }, &err);
    const cf_schema *cs = cf_transform_customers_schema(xf);
    cf_schema *os = cf_schema_new();
    cf_batch *rows = cf_batch_new(cs, &err);
    cf_offsets end = { 0 }, none = { 0 };
    cf_cells ua = { 0 };
    char *ops = malloc((size_t)ncust + 1);
    int64_t *lsns = malloc(sizeof *lsns * ((size_t)ncust + 1));
    int kc = cf_schema_find(cs, "customer_id");
    double t0, fold = 0, write = 0, t;
    size_t nc, no, bytes;
    long lsn = 0, done = 0, commits = 0;
    unsigned seed = 7;

    cf_log_set_level(CF_LOG_WARN);
    cf_schema_add(os, "order_id", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    cf_schema_add(os, "customer_id", (cf_type){ CF_T_INT64, 0, 0 }, false, 0, NULL);
    cf_schema_set_pk(os, pk, 1, NULL);
    if (!(e = cf_enrich_new(&ec, &err)) || cf_enrich_sync(e, &none, &err)) {
        fprintf(stderr, "bench_state: %s\n", err.msg);
        return 1;
    }
    /* The customers first, in one commit; then the orders, batch by batch. */
    t0 = now_s();
    for (long i = 0; i < ncust; i++) {
        cf_col_set_i64(&rows->cols[kc], rows->nrows, i, NULL);
        cf_batch_end_row(rows, NULL);
        ops[i] = 'c';
        lsns[i] = lsn++;
    }
    while (done < nord || commits == 0) {
        cf_commit c = { .ops = ops, .lsns = lsns, .end = &end };
        double f0 = now_s();
        for (long i = 0; i < batch && done < nord; i++, done++) {
            cf_value v[2] = { { .kind = CF_V_INT, .i = done }, { .kind = CF_V_INT, .i = rand_r(&seed) % ncust } };
            cf_event ev = { .op = 'c', .schema = os, .after = { true, v }, .ts_ms = 1, .kafka_ts_ms = 1 };
            ev.src.lsn = lsn++;
            if (cf_enrich_order(e, &ev, &err))
                goto fail;
        }
        cf_offsets_put(&end, "orders", 0, done, NULL);
        cf_offsets_put(&end, "customers", 0, ncust, NULL);
        t = now_s();
        if (cf_enrich_prepare(e, commits ? NULL : rows, cs, &ua, &c, 1, &err))
            goto fail;
        cf_enrich_done(e, true);
        fold += t - f0;
        write += now_s() - t;     /* fold into the maps + count updates + the state file */
        commits++;
        ua.n = 0;
    }
    cf_enrich_size(e, &nc, &no, &bytes);
    /* Then small commits over the big state, as a pipeline at 1 s makes
     * them: SMALL re-assignments each, written as deltas. */
    {
        long small = argc > 5 ? atol(argv[5]) : 10000, rounds = 20;
        double s0 = now_s();
        for (long k = 0; k < rounds; k++) {
            cf_commit c = { .ops = ops, .lsns = lsns, .end = &end };
            for (long i = 0; i < small; i++) {
                cf_value v[2] = { { .kind = CF_V_INT, .i = rand_r(&seed) % nord },
                                  { .kind = CF_V_INT, .i = rand_r(&seed) % ncust } };
                cf_event ev = { .op = 'u', .schema = os, .after = { true, v }, .ts_ms = 1, .kafka_ts_ms = 1 };
                ev.src.lsn = lsn++;
                if (cf_enrich_order(e, &ev, &err))
                    goto fail;
            }
            cf_offsets_put(&end, "orders", 0, done + (k + 1) * small, NULL);
            if (cf_enrich_prepare(e, NULL, cs, &ua, &c, 1, &err))
                goto fail;
            cf_enrich_done(e, true);
            ua.n = 0;
        }
        printf("state: then %ld commits of %ld re-assignments: %.3f s per commit (fold, count updates, delta file)\n",
               rounds, small, (now_s() - s0) / (double)rounds);
    }
    t = now_s();
    back = cf_enrich_new(&ec, &err);
    if (!back || cf_enrich_sync(back, &end, &err))
        goto fail;
    printf("state: %ld customers, %ld orders in %ld commits of %ld orders: %.2f s total (buffer %.2f s, "
           "fold+write %.2f s: %.2f s per commit)\n", ncust, nord, commits, batch, t - t0,
           fold, write, write / (double)commits);
    printf("state: %zu customer keys + %zu order keys, %zu bytes in memory = %.1f bytes per key\n", nc, no, bytes,
           (double)bytes / (double)(nc + no));
    printf("state: file %.1f MB (16 bytes per key), load %.2f s, peak RSS %ld MB\n",
           (double)(nc + no) * 16 / 1e6, now_s() - t, peak_rss_mb());
    cf_enrich_free(back);
    cf_enrich_free(e);
    cf_batch_free(rows);
    cf_schema_free(os);
    cf_transform_free(xf);
    cf_offsets_free(&end);
    cf_cells_free(&ua);
    free(ops);
    free(lsns);
    return 0;
fail:
    fprintf(stderr, "bench_state: %s\n", err.msg);
    return 1;
}
