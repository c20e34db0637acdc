/* test_core.c - unit tests for the error type, buffers, arenas and batches. */
#include "cf_test.h"
#include "batch/batch.h"
#include "util/arena.h"
#include "util/buf.h"
#include "util/err.h"

static void buf_cap(void)
{
    cf_buf b;
    cf_err e;
    cf_buf_init(&b, 8);
    CHECK(cf_buf_append(&b, "12345678", 8, &e) == 0);
    CHECK(cf_buf_append(&b, "9", 1, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_TOOBIG);
    CHECK_EQ_INT(b.len, 8);
    CHECK_EQ_STR(cf_buf_cstr(&b, &e), "12345678");
    cf_buf_free(&b);
}

static void arena_reuse(void)
{
    cf_arena *a = cf_arena_new(1 << 20);
    cf_err e;
    char *s = cf_arena_strndup(a, "hello", 5, &e);
    CHECK_EQ_STR(s, "hello");
    CHECK(cf_arena_alloc(a, 2 << 20, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_TOOBIG);
    cf_arena_reset(a);
    CHECK_EQ_INT(cf_arena_used(a), 0);
    CHECK(cf_arena_alloc(a, 100, &e) != NULL);
    cf_arena_free(a);
}

static void batch_rows(void)
{
    cf_err e;
    cf_schema *s = cf_schema_new();
    cf_type dec;
    CHECK(cf_type_parse("decimal(10,2)", &dec, &e) == 0);
    cf_schema_add(s, "id", (cf_type){ CF_T_INT64 }, false, 0, &e);
    cf_schema_add(s, "name", (cf_type){ CF_T_STRING }, true, 0, &e);
    cf_schema_add(s, "amount", dec, true, 0, &e);
    cf_batch *b = cf_batch_new(s, &e);
    for (int i = 0; i < 3000; i++) {
        CHECK(cf_col_set_i64(&b->cols[0], b->nrows, i, &e) == 0);
        if (i % 3)
            CHECK(cf_col_set_bytes(&b->cols[1], b->nrows, "abc", (size_t)(i % 4), &e) == 0);
        CHECK(cf_batch_end_row(b, &e) == 0);
    }
    CHECK_EQ_INT(b->nrows, 3000);
    CHECK_EQ_INT(b->cols[1].n, 3000);
    {
        /* what the rows take: per row 1+8 (id), 1+4 (name's validity and
         * offset) and 1+8 (amount, int64 unscaled), plus the name bytes */
        size_t strs = 0;
        for (int i = 0; i < 3000; i++)
            strs += i % 3 ? (size_t)(i % 4) : 0;
        CHECK_EQ_INT(cf_batch_bytes(b), 3000 * (9 + 5 + 9) + strs);
        CHECK_EQ_INT(cf_batch_bytes(NULL), 0);
    }
    CHECK(!cf_col_valid(&b->cols[1], 0));
    size_t n;
    cf_col_bytes(&b->cols[1], 2, &n);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(cf_col_i64(&b->cols[0], 2999), 2999);
    CHECK(!cf_col_valid(&b->cols[2], 5));
    /* setting the same cell twice is an error, and abort drops the row */
    CHECK(cf_col_set_i64(&b->cols[0], b->nrows, 1, &e) == 0);
    CHECK(cf_col_set_i64(&b->cols[0], b->nrows, 1, &e) == -1);
    cf_batch_abort_row(b);
    CHECK_EQ_INT(b->cols[0].n, 3000);
    cf_batch *c = cf_batch_new(s, &e);
    CHECK(cf_batch_copy_row(c, b, 2, &e) == 0);
    CHECK_EQ_INT(cf_col_i64(&c->cols[0], 0), 2);
    cf_batch_free(b);
    cf_batch_free(c);
    cf_schema_free(s);
}

CF_TEST_MAIN("core", T(buf_cap), T(arena_reuse), T(batch_rows))
