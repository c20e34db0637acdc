/* test_debezium_json.c - the decoder's building blocks: the JSON scanner
 * (strings, escapes, UTF-8, numbers, depth) and the value conversions
 * (base64, decimals, ISO-8601). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_test.h"
#include "decode/convert.h"
#include "decode/json.h"

/* Scan one string value; returns its decoded text (static) or NULL. */
static const char *str_of(const char *json, size_t n, long *errpos)
{
    static char out[256];
    cf_json j;
    cf_json_str s;
    cf_err err;
    size_t k;

    cf_json_init(&j, json, n, "t", &err);
    if (cf_json_string(&j, &s)) {
        *errpos = err.pos;
        return NULL;
    }
    k = cf_json_unescape(&s, out);
    out[k] = '\0';
    return out;
}

static void test_strings_and_escapes(void)
{
    long pos = -1;
    const char *s;

    CHECK_EQ_STR(str_of("\"plain\"", 7, &pos), "plain");
    CHECK_EQ_STR(str_of("\"a\\\"b\\\\c\\/d\\n\\t\"", 16, &pos), "a\"b\\c/d\n\t");
    CHECK_EQ_STR(str_of("\"\\u00e9\\u20ac\"", 14, &pos), "\xc3\xa9\xe2\x82\xac");
    CHECK_EQ_STR(str_of("\"\\ud83d\\ude00!\"", 15, &pos), "\xf0\x9f\x98\x80!");
    /* Long strings go through the 8-byte scan; a quote at every offset. */
    for (int q = 0; q < 20; q++) {
        char buf[40];
        memset(buf, 'x', sizeof buf);
        buf[0] = '"';
        buf[1 + q] = '"';
        s = str_of(buf, (size_t)q + 2, &pos);
        CHECK(s && strlen(s) == (size_t)q);
    }
    CHECK(str_of("\"\\ud83d\"", 8, &pos) == NULL);          /* lone high surrogate */
    CHECK_EQ_INT(pos, 1);
    CHECK(str_of("\"\\ude00\"", 8, &pos) == NULL);          /* lone low surrogate */
    CHECK(str_of("\"\\x41\"", 6, &pos) == NULL);            /* unknown escape */
    CHECK(str_of("\"\\u12G4\"", 8, &pos) == NULL);          /* bad hex */
    CHECK(str_of("\"ab\ncd\"", 7, &pos) == NULL);           /* raw control byte */
    CHECK_EQ_INT(pos, 3);
    CHECK(str_of("\"abc", 4, &pos) == NULL);                /* unterminated */
    CHECK(str_of("\"abc\\", 5, &pos) == NULL);
}

static void test_utf8(void)
{
    long pos = -1;

    CHECK(str_of("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", 11, &pos) != NULL);
    CHECK(str_of("\"\xc0\xaf\"", 4, &pos) == NULL);          /* overlong '/' */
    CHECK(str_of("\"\xe0\x80\xaf\"", 5, &pos) == NULL);      /* overlong 3-byte */
    CHECK(str_of("\"\xed\xa0\x80\"", 5, &pos) == NULL);      /* UTF-16 surrogate in UTF-8 */
    CHECK(str_of("\"\xf4\x90\x80\x80\"", 6, &pos) == NULL);  /* past U+10FFFF */
    CHECK(str_of("\"ok\xe2\x82\"", 6, &pos) == NULL);        /* truncated sequence */
    CHECK_EQ_INT(pos, 3);
    CHECK(str_of("\"\xff\"", 3, &pos) == NULL);
    CHECK_EQ_INT(cf_json_utf8_check((const uint8_t *)"ab\xc3\xa9", 4), 4);
    CHECK_EQ_INT(cf_json_utf8_check((const uint8_t *)"ab\x80", 3), 2);
}

static int num(const char *txt, int64_t *i, double *d, bool *is_int)
{
    cf_json j;
    cf_json_num n;
    cf_err err;

    cf_json_init(&j, txt, strlen(txt), "t", &err);
    if (cf_json_number(&j, &n) || j.p != j.end)
        return -1;
    *is_int = n.is_int;
    if (n.is_int)
        return cf_json_num_i64(&n, i);
    return cf_json_num_f64(&n, d);
}

static void test_numbers(void)
{
    int64_t i = 0;
    double d = 0;
    bool isint = false;

    CHECK_EQ_INT(num("9223372036854775807", &i, &d, &isint), 0);
    CHECK_EQ_INT(i, INT64_MAX);
    CHECK_EQ_INT(num("-9223372036854775808", &i, &d, &isint), 0);
    CHECK(i == INT64_MIN);
    CHECK_EQ_INT(num("9223372036854775808", &i, &d, &isint), -1);   /* overflow */
    CHECK_EQ_INT(num("9007199254740993", &i, &d, &isint), 0);
    CHECK_EQ_INT(i, 9007199254740993LL);
    CHECK_EQ_INT(num("-0.5e-3", &i, &d, &isint), 0);
    CHECK(!isint && d == -0.5e-3);
    CHECK_EQ_INT(num("012", &i, &d, &isint), -1);
    CHECK_EQ_INT(num("1.", &i, &d, &isint), -1);
    CHECK_EQ_INT(num("1e", &i, &d, &isint), -1);
    CHECK_EQ_INT(num("-", &i, &d, &isint), -1);
    CHECK_EQ_INT(num("+1", &i, &d, &isint), -1);
    CHECK_EQ_INT(num(".5", &i, &d, &isint), -1);
}

static void test_small_int_fast_path(void)
{
    cf_json j;
    int64_t v = 0;

    cf_json_init(&j, "-123456789012345678,", 20, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 1);
    CHECK_EQ_INT(v, -123456789012345678LL);
    CHECK_EQ_INT(*j.p, ',');
    cf_json_init(&j, "1234567890123456789,", 20, "t", NULL);   /* 19 digits: slow path */
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 0);
    cf_json_init(&j, "9999999999999999999,", 20, "t", NULL);   /* found by the fuzzer: no overflow */
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 0);
    cf_json_init(&j, "999999999999999999,", 19, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 1);
    CHECK_EQ_INT(v, 999999999999999999LL);
    /* Every length, both signs, against strtoll (8-digit chunks and tail). */
    {
        unsigned seed = 12345;
        for (int len = 1; len <= 18; len++)
            for (int k = 0; k < 200; k++) {
                char num[24];
                int n = 0;
                bool ok;
                if (k & 1)
                    num[n++] = '-';
                for (int i = 0; i < len; i++) {
                    seed = seed * 1103515245u + 12345u;
                    num[n++] = (char)('0' + (i == 0 ? 1 + (seed >> 16) % 9 : (seed >> 16) % 10));
                }
                num[n++] = ',';
                num[n] = '\0';
                cf_json_init(&j, num, (size_t)n, "t", NULL);
                ok = cf_json_small_int(&j, &v) == 1 && v == strtoll(num, NULL, 10) && *j.p == ',';
                if (!ok) {
                    fprintf(stderr, "  small_int(%s) wrong\n", num);
                    cf_test_failed_checks++;
                }
            }
    }
    /* ':' and '/' border the digits in ASCII: never taken for digits. */
    cf_json_init(&j, "1234567:9,", 10, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 1);
    CHECK_EQ_INT(v, 1234567);
    CHECK_EQ_INT(*j.p, ':');
    cf_json_init(&j, "12345678/0123456,", 17, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 1);
    CHECK_EQ_INT(v, 12345678);
    CHECK_EQ_INT(*j.p, '/');
    cf_json_init(&j, "12.5,", 5, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 0);
    CHECK(j.p == j.beg);
    cf_json_init(&j, "12", 2, "t", NULL);                      /* at the end: slow path */
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 0);
    cf_json_init(&j, "01,", 3, "t", NULL);
    CHECK_EQ_INT(cf_json_small_int(&j, &v), 0);
}

static int skip(const char *txt, size_t n)
{
    cf_json j;
    cf_err err;

    cf_json_init(&j, txt, n, "t", &err);
    if (cf_json_skip(&j))
        return -1;
    return cf_json_peek(&j) < 0 ? 0 : -1;
}

static void test_skip_and_depth(void)
{
    char deep[200];

    CHECK_EQ_INT(skip("{\"a\":[1,2,{\"b\":null}],\"c\":true}", 31), 0);
    CHECK_EQ_INT(skip(" [ ] ", 5), 0);
    CHECK_EQ_INT(skip("{\"a\":1,}", 8), -1);
    CHECK_EQ_INT(skip("[1 2]", 5), -1);
    CHECK_EQ_INT(skip("{\"a\" 1}", 7), -1);
    CHECK_EQ_INT(skip("nul", 3), -1);
    CHECK_EQ_INT(skip("[", 1), -1);
    /* 64 levels pass, 65 do not. */
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    CHECK_EQ_INT(skip(deep, 128), 0);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    CHECK_EQ_INT(skip(deep, 130), -1);
}

static void test_expected_key(void)
{
    cf_json j;
    cf_json_str k;
    int cnt = 0;

    cf_json_init(&j, "{\"id\" : 1, \"name\":2}", 20, "t", NULL);
    CHECK_EQ_INT(cf_json_obj_begin(&j), 0);
    CHECK_EQ_INT(cf_json_obj_next_is(&j, &cnt, "\"id\"", 4), 1);
    CHECK_EQ_INT(cf_json_skip(&j), 0);
    CHECK_EQ_INT(cf_json_obj_next_is(&j, &cnt, "\"nam\"", 5), 0);   /* prefix only */
    CHECK_EQ_INT(cf_json_obj_next_is(&j, &cnt, "\"name\"", 6), 1);
    CHECK_EQ_INT(cf_json_skip(&j), 0);
    CHECK_EQ_INT(cf_json_obj_next_is(&j, &cnt, "\"x\"", 3), 0);
    CHECK_EQ_INT(cf_json_obj_next(&j, &cnt, &k), 0);
    /* Escaped keys come back decoded from the slow path. */
    cf_json_init(&j, "{\"o\\u0070\":1}", 13, "t", NULL);
    cnt = 0;
    CHECK_EQ_INT(cf_json_obj_begin(&j), 0);
    CHECK_EQ_INT(cf_json_obj_next_is(&j, &cnt, "\"op\"", 4), 0);
    CHECK_EQ_INT(cf_json_obj_next(&j, &cnt, &k), 1);
    CHECK(CF_JSON_IS(&k, "op"));
}

static void test_base64(void)
{
    uint8_t b[16];

    CHECK_EQ_INT(cf_conv_base64("AeJA", 4, b), 3);
    CHECK(b[0] == 0x01 && b[1] == 0xe2 && b[2] == 0x40);
    CHECK_EQ_INT(cf_conv_base64("MDk=", 4, b), 2);
    CHECK(b[0] == 0x30 && b[1] == 0x39);
    CHECK_EQ_INT(cf_conv_base64("MDk", 3, b), 2);             /* padding optional */
    CHECK_EQ_INT(cf_conv_base64("_-8=", 4, b), 2);            /* URL-safe */
    CHECK_EQ_INT(cf_conv_base64("", 0, b), 0);
    CHECK_EQ_INT(cf_conv_base64("A", 1, b), -1);
    CHECK_EQ_INT(cf_conv_base64("AB=C", 4, b), -1);
    CHECK_EQ_INT(cf_conv_base64("AB===", 5, b), -1);
    CHECK_EQ_INT(cf_conv_base64("A.BC", 4, b), -1);
}

static void test_decimals(void)
{
    char digits[64], txt[128];
    bool neg;
    int nd;
    int64_t v;
    static const uint8_t m1[] = { 0xff }, big[] = { 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t negbig[] = { 0x80, 0, 0, 0, 0, 0, 0, 0, 0 };

    CHECK_EQ_INT(cf_conv_be_i64(m1, 1, &v), 0);
    CHECK_EQ_INT(v, -1);
    CHECK_EQ_INT(cf_conv_be_i64(big, 10, &v), -1);
    txt[cf_conv_be_dec_text(big, 10, 4, txt)] = '\0';
    CHECK_EQ_STR(txt, "472236648286964521.3695");         /* (2^72 - 1) / 10^4 */
    txt[cf_conv_be_dec_text(negbig, 9, 0, txt)] = '\0';
    CHECK_EQ_STR(txt, "-2361183241434822606848");          /* -2^71 */
    txt[cf_conv_be_dec_text(m1, 1, 3, txt)] = '\0';
    CHECK_EQ_STR(txt, "-0.001");
    txt[cf_conv_be_dec_text(NULL, 0, 2, txt)] = '\0';
    CHECK_EQ_STR(txt, "0.00");

    nd = cf_conv_dec_parse("1234.5", 6, 2, &neg, digits, sizeof digits);
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == 123450);
    nd = cf_conv_dec_parse("-0.005", 6, 2, &neg, digits, sizeof digits);   /* half away from zero */
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == -1);
    nd = cf_conv_dec_parse("0.0049", 6, 2, &neg, digits, sizeof digits);
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == 0);
    nd = cf_conv_dec_parse("9.995", 5, 2, &neg, digits, sizeof digits);
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == 1000);
    nd = cf_conv_dec_parse("1.5E+2", 6, 2, &neg, digits, sizeof digits);
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == 15000);
    nd = cf_conv_dec_parse("0012", 4, 0, &neg, digits, sizeof digits);
    CHECK(nd > 0 && cf_conv_digits_i64(digits, nd, neg, &v) == 0 && v == 12);
    CHECK_EQ_INT(cf_conv_dec_parse("1e999999", 8, 0, &neg, digits, sizeof digits), -1);
    CHECK_EQ_INT(cf_conv_dec_parse("1.2.3", 5, 0, &neg, digits, sizeof digits), -1);
    CHECK_EQ_INT(cf_conv_dec_parse("abc", 3, 0, &neg, digits, sizeof digits), -1);
    CHECK_EQ_INT(cf_conv_dec_parse("", 0, 0, &neg, digits, sizeof digits), -1);
    nd = cf_conv_dec_parse("-7", 2, 3, &neg, digits, sizeof digits);
    txt[cf_conv_digits_text(digits, nd, neg, 3, txt)] = '\0';
    CHECK_EQ_STR(txt, "-7.000");
}

static void test_dates_and_timestamps(void)
{
    int64_t us = 0, days = 0;
    bool zone = false;

    CHECK_EQ_INT(cf_conv_days_from_civil(1970, 1, 1), 0);
    CHECK_EQ_INT(cf_conv_days_from_civil(2024, 1, 1), 19723);
    CHECK_EQ_INT(cf_conv_days_from_civil(1969, 12, 31), -1);
    CHECK_EQ_INT(cf_conv_days_from_civil(2000, 3, 1), 11017);
    CHECK_EQ_INT(cf_conv_iso_date("2024-02-29", 10, &days), 0);
    CHECK_EQ_INT(days, 19782);
    CHECK_EQ_INT(cf_conv_iso_date("2024-13-01", 10, &days), -1);
    CHECK_EQ_INT(cf_conv_iso_date("2024-01-32", 10, &days), -1);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T10:00:00.123456Z", 27, &us, &zone), 0);
    CHECK(zone && us == 1704103200123456LL);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T12:00:00.5+02:00", 27, &us, &zone), 0);
    CHECK_EQ_INT(us, 1704103200500000LL);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T05:30:00-0430", 24, &us, &zone), 0);
    CHECK_EQ_INT(us, 1704103200000000LL);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01 10:00:00.123456789", 29, &us, &zone), 0);
    CHECK(!zone && us == 1704103200123456LL);               /* nanos truncated */
    CHECK_EQ_INT(cf_conv_iso_ts("1969-12-31T23:59:59.999999Z", 27, &us, &zone), 0);
    CHECK_EQ_INT(us, -1);
    /* Years whose microseconds overflow int64 are refused (found by fuzz_avro_datum). */
    CHECK_EQ_INT(cf_conv_iso_ts("28316316-01-21T10:11:12Z", 24, &us, &zone), -1);
    CHECK_EQ_INT(cf_conv_iso_ts("-9999999-01-21T10:11:12Z", 24, &us, &zone), -1);
    CHECK_EQ_INT(cf_conv_iso_ts("200000-01-01T00:00:00Z", 22, &us, &zone), 0);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T25:00:00Z", 20, &us, &zone), -1);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T10:00:00Q", 20, &us, &zone), -1);
    CHECK_EQ_INT(cf_conv_iso_ts("2024-01-01T10:00:00.Z", 21, &us, &zone), -1);
    CHECK_EQ_INT(cf_conv_floordiv(-1500, 1000), -2);
    CHECK_EQ_INT(cf_conv_floordiv(1500, 1000), 1);
}

CF_TEST_MAIN("debezium_json",
    T(test_strings_and_escapes), T(test_utf8), T(test_numbers), T(test_small_int_fast_path),
    T(test_skip_and_depth), T(test_expected_key), T(test_base64), T(test_decimals),
    T(test_dates_and_timestamps))
