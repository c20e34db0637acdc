/* test_iceberg_meta.c - Iceberg pieces that need no Parquet: murmur3 and
 * bucket vectors from the spec, single-value serialization, partition specs,
 * manifests round trip, the directory catalog's commits and conflicts, and
 * its refusal of object storage. */
#include "cf_test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format/avro/avro.h"
#include "local_store.h"
#include "table/iceberg/iceberg_int.h"

static char tmpdir[256];

static void mk_tmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cf_ice_meta_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
}

/* Values from the spec's appendix "32-bit Hash Requirements". */
static void test_murmur3_vectors(void)
{
    uint8_t l34[8] = { 34, 0, 0, 0, 0, 0, 0, 0 };
    uint8_t b4[4] = { 0, 1, 2, 3 };
    uint8_t dec[1] = { 0x05 };   /* 14.20 -> unscaled 1420 = 0x058c */
    uint8_t dec2[2] = { 0x05, 0x8c };
    uint8_t uuid[16] = { 0xf7, 0x9c, 0x3e, 0x09, 0x67, 0x7c, 0x4b, 0xbd,
                         0xa4, 0x79, 0x3f, 0x34, 0x9c, 0xb7, 0x85, 0xe7 };
    (void)dec;
    CHECK_EQ_INT((int32_t)cf_ice_murmur3(l34, 8), 2017239379);
    CHECK_EQ_INT((int32_t)cf_ice_murmur3("iceberg", 7), 1210000089);
    CHECK_EQ_INT((int32_t)cf_ice_murmur3(b4, 4), -188683207);
    CHECK_EQ_INT((int32_t)cf_ice_murmur3(dec2, 2), -500754589);
    CHECK_EQ_INT((int32_t)cf_ice_murmur3(uuid, 16), 1488055340);
}

static void test_bucket_columns(void)
{
    cf_schema *s = cf_schema_new();
    cf_batch *b;
    cf_err err = { 0 };

    cf_schema_add(s, "i", (cf_type){ .id = CF_T_INT32 }, true, 0, &err);
    cf_schema_add(s, "d", (cf_type){ .id = CF_T_DATE }, true, 0, &err);
    cf_schema_add(s, "ts", (cf_type){ .id = CF_T_TIMESTAMP_NTZ }, true, 0, &err);
    cf_schema_add(s, "t", (cf_type){ .id = CF_T_TIME }, true, 0, &err);
    cf_schema_add(s, "str", (cf_type){ .id = CF_T_STRING }, true, 0, &err);
    b = cf_batch_new(s, &err);
    cf_col_set_i64(&b->cols[0], 0, 34, &err);
    cf_col_set_i64(&b->cols[1], 0, 17486, &err);                 /* 2017-11-16 */
    cf_col_set_i64(&b->cols[2], 0, 1510871468000000LL, &err);    /* 2017-11-16T22:31:08 */
    cf_col_set_i64(&b->cols[3], 0, 81068000000LL, &err);         /* 22:31:08 */
    cf_col_set_bytes(&b->cols[4], 0, "iceberg", 7, &err);
    CHECK(cf_batch_end_row(b, &err) == 0);
    /* hash & INT_MAX mod N with N = INT_MAX recovers the masked hash */
    CHECK_EQ_INT(cf_ice_bucket_value(&b->cols[0], 0, 0x7fffffff), 2017239379);
    CHECK_EQ_INT(cf_ice_bucket_value(&b->cols[1], 0, 0x7fffffff), (-653330422) & 0x7fffffff);
    CHECK_EQ_INT(cf_ice_bucket_value(&b->cols[2], 0, 0x7fffffff), (-2047944441) & 0x7fffffff);
    CHECK_EQ_INT(cf_ice_bucket_value(&b->cols[3], 0, 0x7fffffff), (-662762989) & 0x7fffffff);
    CHECK_EQ_INT(cf_ice_bucket_value(&b->cols[4], 0, 16), 1210000089 % 16);
    cf_batch_free(b);
    cf_schema_free(s);
}

static void test_single_value(void)
{
    uint8_t out[16];
    cf_type dec = { CF_T_DECIMAL, 10, 2 }, i32 = { .id = CF_T_INT32 }, i64 = { .id = CF_T_INT64 };
    cf_type dbl = { .id = CF_T_DOUBLE }, str = { .id = CF_T_STRING };
    CHECK_EQ_INT(cf_ice_single_value(&i32, 34, 0, NULL, 0, out, sizeof out), 4);
    CHECK(out[0] == 34 && out[1] == 0 && out[3] == 0);
    CHECK_EQ_INT(cf_ice_single_value(&i64, -2, 0, NULL, 0, out, sizeof out), 8);
    CHECK(out[0] == 0xfe && out[7] == 0xff);
    CHECK_EQ_INT(cf_ice_single_value(&dec, 1420, 0, NULL, 0, out, sizeof out), 2);
    CHECK(out[0] == 0x05 && out[1] == 0x8c);
    CHECK_EQ_INT(cf_ice_single_value(&dec, -1, 0, NULL, 0, out, sizeof out), 1);
    CHECK(out[0] == 0xff);
    CHECK_EQ_INT(cf_ice_single_value(&dec, 128, 0, NULL, 0, out, sizeof out), 2);
    CHECK(out[0] == 0x00 && out[1] == 0x80);
    CHECK_EQ_INT(cf_ice_single_value(&dbl, 0, 1.0, NULL, 0, out, sizeof out), 8);
    CHECK(out[7] == 0x3f && out[6] == 0xf0 && out[0] == 0);
    CHECK_EQ_INT(cf_ice_single_value(&str, 0, 0, "abc", 3, out, sizeof out), 3);
    CHECK(!memcmp(out, "abc", 3));
}

/* UUIDs: 16 bytes in either text case; wide decimals: big-endian two's
 * complement of the unscaled value, fewest bytes. */
static void test_single_value_uuid_wide_decimal(void)
{
    uint8_t out[16];
    static const uint8_t want_u[16] = { 0xf7, 0x9c, 0x3e, 0x09, 0x67, 0x7c, 0x4b, 0xbd,
                                        0xa4, 0x79, 0x3f, 0x34, 0x9c, 0xb7, 0x85, 0xe7 };
    cf_type uu = { .id = CF_T_UUID }, wide = { CF_T_DECIMAL, 30, 4 };
    const char *big = "12345678901234567890.1234";   /* unscaled 123456789012345678901234 */
    static const uint8_t want_big[10] = { 0x1a, 0x24, 0x9b, 0x1f, 0x10, 0xa0, 0x6c, 0x96, 0xaf, 0xf2 };

    CHECK_EQ_INT(cf_ice_single_value(&uu, 0, 0, "f79c3e09-677c-4bbd-a479-3f349cb785e7", 36, out, sizeof out), 16);
    CHECK(!memcmp(out, want_u, 16));
    CHECK_EQ_INT(cf_ice_single_value(&uu, 0, 0, "F79C3E09-677C-4BBD-A479-3F349CB785E7", 36, out, sizeof out), 16);
    CHECK(!memcmp(out, want_u, 16));
    CHECK_EQ_INT(cf_ice_single_value(&uu, 0, 0, want_u, 16, out, sizeof out), 16);
    CHECK(!memcmp(out, want_u, 16));
    CHECK_EQ_INT(cf_ice_single_value(&uu, 0, 0, "f79c3e09-677c-4bbd-a479-3f349cb785eX", 36, out, sizeof out), -1);
    CHECK_EQ_INT(cf_ice_single_value(&uu, 0, 0, "f79c3e09677c4bbda4793f349cb785e7", 32, out, sizeof out), -1);

    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, big, strlen(big), out, sizeof out), 10);
    CHECK(!memcmp(out, want_big, 10));
    /* fewer fraction digits than the scale are padded: 1.5 -> 15000 = 0x3a98 */
    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, "1.5", 3, out, sizeof out), 2);
    CHECK(out[0] == 0x3a && out[1] == 0x98);
    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, "-0.0001", 7, out, sizeof out), 1);
    CHECK(out[0] == 0xff);
    /* -12.8 -> -128000 = 0xfe0c00 */
    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, "-12.8", 5, out, sizeof out), 3);
    CHECK(out[0] == 0xfe && out[1] == 0x0c && out[2] == 0x00);
    /* 38 nines is the widest; one more digit or too many fraction digits is no bound */
    {
        cf_type d38 = { CF_T_DECIMAL, 38, 0 };
        char n38[40], n39[41];
        memset(n38, '9', 38);
        n38[38] = 0;
        memset(n39, '9', 39);
        n39[39] = 0;
        CHECK_EQ_INT(cf_ice_single_value(&d38, 0, 0, n38, 38, out, sizeof out), 16);
        CHECK(out[0] == 0x4b && out[15] == 0xff);   /* 10^38-1 = 0x4b3b4ca85a86c47a098a223fffffffff */
        CHECK_EQ_INT(cf_ice_single_value(&d38, 0, 0, n39, 39, out, sizeof out), -1);
    }
    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, "1.00001", 7, out, sizeof out), -1);
    CHECK_EQ_INT(cf_ice_single_value(&wide, 0, 0, "abc", 3, out, sizeof out), -1);
}

/* year/month/hour/truncate values and paths, negatives included (the spec
 * floors toward negative infinity). */
static void test_time_and_truncate_transforms(void)
{
    cf_schema *s = cf_schema_new();
    cf_batch *b;
    cf_err err = { 0 };
    cf_ice_spec sp;
    cf_ice_pval v[7];
    char path[512];
    const char *ex[] = { "year(ts)", "month(ts)", "hour(ts)", "months(d)", "truncate(10, i)",
                         "truncate[3](str)", "years(d)" };
    const char *bad[] = { "hour(d)" }, *bad2[] = { "truncate(0, i)" }, *bad3[] = { "year(i)" };
    int src[7] = { 2, 2, 2, 1, 0, 3, 1 };

    cf_schema_add(s, "i", (cf_type){ .id = CF_T_INT64 }, true, 0, &err);
    cf_schema_add(s, "d", (cf_type){ .id = CF_T_DATE }, true, 0, &err);
    cf_schema_add(s, "ts", (cf_type){ .id = CF_T_TIMESTAMP }, true, 0, &err);
    cf_schema_add(s, "str", (cf_type){ .id = CF_T_STRING }, true, 0, &err);
    CHECK(cf_ice_spec_parse(ex, 7, s, &sp, &err) == 0);
    CHECK_EQ_INT(sp.nfields, 7);
    CHECK_EQ_STR(sp.f[0].name, "ts_year");
    CHECK_EQ_STR(sp.f[1].name, "ts_month");
    CHECK_EQ_STR(sp.f[2].name, "ts_hour");
    CHECK_EQ_STR(sp.f[4].name, "i_trunc");
    CHECK_EQ_INT(sp.f[4].n, 10);
    CHECK_EQ_INT(sp.f[5].n, 3);
    CHECK_EQ_INT(sp.f[4].result.id, CF_T_INT64);
    CHECK_EQ_INT(sp.f[0].result.id, CF_T_INT32);
    {
        json_t *j = cf_ice_spec_to_json(&sp);
        CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(j, 2), "transform")), "hour");
        CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(j, 4), "transform")), "truncate[10]");
        json_decref(j);
    }
    b = cf_batch_new(s, &err);
    /* 2017-11-16T22:31:08Z, 2017-11-16, 34, 3 code points of "éiceberg" */
    cf_col_set_i64(&b->cols[0], 0, 34, &err);
    cf_col_set_i64(&b->cols[1], 0, 17486, &err);
    cf_col_set_i64(&b->cols[2], 0, 1510871468000000LL, &err);
    cf_col_set_bytes(&b->cols[3], 0, "\xc3\xa9iceberg", 9, &err);
    CHECK(cf_batch_end_row(b, &err) == 0);
    /* 1969-12-31T23:59:59.999999Z, 1969-12-31, -1, "ab" */
    cf_col_set_i64(&b->cols[0], 1, -1, &err);
    cf_col_set_i64(&b->cols[1], 1, -1, &err);
    cf_col_set_i64(&b->cols[2], 1, -1, &err);
    cf_col_set_bytes(&b->cols[3], 1, "ab", 2, &err);
    CHECK(cf_batch_end_row(b, &err) == 0);

    CHECK(cf_ice_partition_of(&sp, b, src, 0, v, &err) == 0);
    CHECK_EQ_INT(v[0].i, 47);
    CHECK_EQ_INT(v[1].i, 574);
    CHECK_EQ_INT(v[2].i, 419686);
    CHECK_EQ_INT(v[3].i, 574);
    CHECK_EQ_INT(v[4].i, 30);
    CHECK_EQ_INT(v[5].n, 4);                 /* é is two bytes */
    CHECK(v[5].s && !memcmp(v[5].s, "\xc3\xa9ic", 4));
    CHECK_EQ_INT(v[6].i, 47);
    CHECK(cf_ice_partition_path(&sp, v, path, sizeof path) == 0);
    CHECK_EQ_STR(path, "ts_year=2017/ts_month=2017-11/ts_hour=2017-11-16-22/d_month=2017-11/"
                       "i_trunc=30/str_trunc=%C3%A9ic/d_year=2017");
    cf_ice_pvals_clear(v, 7);

    CHECK(cf_ice_partition_of(&sp, b, src, 1, v, &err) == 0);
    CHECK_EQ_INT(v[0].i, -1);
    CHECK_EQ_INT(v[1].i, -1);
    CHECK_EQ_INT(v[2].i, -1);
    CHECK_EQ_INT(v[3].i, -1);
    CHECK_EQ_INT(v[4].i, -10);
    CHECK_EQ_INT(v[5].n, 2);
    CHECK(cf_ice_partition_path(&sp, v, path, sizeof path) == 0);
    CHECK_EQ_STR(path, "ts_year=1969/ts_month=1969-12/ts_hour=1969-12-31-23/d_month=1969-12/"
                       "i_trunc=-10/str_trunc=ab/d_year=1969");
    cf_ice_pvals_clear(v, 7);

    CHECK(cf_ice_spec_parse(bad, 1, s, &sp, &err) == -1);
    CHECK(cf_ice_spec_parse(bad2, 1, s, &sp, &err) == -1);
    CHECK(cf_ice_spec_parse(bad3, 1, s, &sp, &err) == -1);
    cf_batch_free(b);
    cf_schema_free(s);
}

/* --older-than / --timestamp: epoch ms, ISO dates and times, durations. */
static void test_parse_time(void)
{
    const int64_t now = 1767225600000LL;      /* 2026-01-01T00:00:00Z */
    int64_t ms = 0;
    CHECK(cf_ice_parse_time("7d", now, &ms) == 0);
    CHECK_EQ_INT(ms, now - 7 * 86400000LL);
    CHECK(cf_ice_parse_time("12h", now, &ms) == 0);
    CHECK_EQ_INT(ms, now - 12 * 3600000LL);
    CHECK(cf_ice_parse_time("30m", now, &ms) == 0);
    CHECK_EQ_INT(ms, now - 30 * 60000LL);
    CHECK(cf_ice_parse_time("45s", now, &ms) == 0);
    CHECK_EQ_INT(ms, now - 45000);
    CHECK(cf_ice_parse_time("0s", now, &ms) == 0);
    CHECK_EQ_INT(ms, now);
    CHECK(cf_ice_parse_time("1767225600000", now, &ms) == 0);
    CHECK_EQ_INT(ms, 1767225600000LL);
    CHECK(cf_ice_parse_time("2026-01-31", now, &ms) == 0);
    CHECK_EQ_INT(ms, 1769817600000LL);
    CHECK(cf_ice_parse_time("2026-01-31T12:00:00Z", now, &ms) == 0);
    CHECK_EQ_INT(ms, 1769817600000LL + 12 * 3600000LL);
    CHECK(cf_ice_parse_time("2026-01-31 12:30", now, &ms) == 0);
    CHECK_EQ_INT(ms, 1769817600000LL + 12 * 3600000LL + 30 * 60000LL);
    CHECK(cf_ice_parse_time("7w", now, &ms) == -1);
    CHECK(cf_ice_parse_time("-7d", now, &ms) == -1);
    CHECK(cf_ice_parse_time("d", now, &ms) == -1);
    CHECK(cf_ice_parse_time("2026-01-31T12:00:00+02:00", now, &ms) == -1);
    CHECK(cf_ice_parse_time("yesterday", now, &ms) == -1);
    /* further back than an int64 of milliseconds reaches (found by fuzzing) */
    CHECK(cf_ice_parse_time("9223372036854775d", now, &ms) == -1);
    CHECK(cf_ice_parse_time("99999999999999999999", now, &ms) == -1);
    CHECK(cf_ice_parse_time("9223372036854775s", -now, &ms) == -1);
}

static cf_schema *sample_schema(void)
{
    cf_schema *s = cf_schema_new();
    const char *pk[] = { "id" };
    cf_schema_add(s, "id", (cf_type){ .id = CF_T_INT64 }, false, 0, NULL);
    cf_schema_add(s, "name", (cf_type){ .id = CF_T_STRING }, true, 0, NULL);
    cf_schema_add(s, "ts", (cf_type){ .id = CF_T_TIMESTAMP }, true, 0, NULL);
    cf_schema_set_pk(s, pk, 1, NULL);
    return s;
}

static void test_spec_parse(void)
{
    cf_schema *s = sample_schema();
    cf_ice_spec sp;
    cf_err err = { 0 };
    const char *ex[] = { "day(ts)", "bucket(16, id)", "name" };
    const char *bad[] = { "month(name)" };
    const char *bad2[] = { "nosuch" };
    json_t *j;
    char path[256];
    cf_ice_pval pv[3] = { { .i = 17486 }, { .i = 3 }, { .s = "a b", .n = 3 } };

    CHECK(cf_ice_spec_parse(ex, 3, s, &sp, &err) == 0);
    CHECK_EQ_INT(sp.nfields, 3);
    CHECK_EQ_STR(sp.f[0].name, "ts_day");
    CHECK_EQ_INT(sp.f[0].field_id, 1000);
    CHECK_EQ_INT(sp.f[1].n, 16);
    CHECK_EQ_INT(sp.f[1].source_id, 1);
    CHECK_EQ_INT(sp.f[2].xf, CF_ICE_IDENTITY);
    j = cf_ice_spec_to_json(&sp);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(j, 1), "transform")), "bucket[16]");
    json_decref(j);
    CHECK(cf_ice_partition_path(&sp, pv, path, sizeof path) == 0);
    CHECK_EQ_STR(path, "ts_day=2017-11-16/id_bucket=3/name=a%20b");
    CHECK(cf_ice_spec_parse(bad, 1, s, &sp, &err) == -1);
    CHECK(cf_ice_spec_parse(bad2, 1, s, &sp, &err) == -1);
    cf_schema_free(s);
}

static void test_manifest_roundtrip(void)
{
    cf_schema *s = sample_schema();
    cf_ice_spec sp;
    cf_err err = { 0 };
    const char *ex[] = { "day(ts)" };
    cf_ice_file f[2];
    cf_ice_mfile mf;
    cf_ice_mlist ml = { 0 }, back = { 0 };
    cf_ice_file *rd = NULL;
    int nrd = 0;
    char mpath[300], lpath[300];
    json_t *sj = json_pack("{s:s, s:i, s:[]}", "type", "struct", "schema-id", 0, "fields");
    cf_avro_reader *r;
    const char *avs;

    mk_tmp();
    CHECK(cf_ice_spec_parse(ex, 1, s, &sp, &err) == 0);
    memset(f, 0, sizeof f);
    for (int i = 0; i < 2; i++) {
        f[i].status = 1;
        f[i].path = i ? "/x/b.parquet" : "/x/a.parquet";
        f[i].records = 10 + i;
        f[i].bytes = 1000 + i;
        f[i].seq = f[i].file_seq = -1;
        f[i].snapshot_id = -1;    /* inherited from the manifest list */
        f[i].npart = 1;
        f[i].part[0].i = 19000 + i;
    }
    f[1].part[0].null = true;
    cf_ice_metric m = { .id = 1, .values = 10, .nulls = 0, .lower = (uint8_t *)"\1\0\0\0\0\0\0\0",
                        .upper = (uint8_t *)"\x09\0\0\0\0\0\0\0", .lower_n = 8, .upper_n = 8 };
    f[0].metrics = &m;
    f[0].nmetrics = 1;
    snprintf(mpath, sizeof mpath, "%s/m0.avro", tmpdir);
    CHECK(cf_ice_write_manifest(local_store(), mpath, f, 2, &sp, sj, 0, 42, 7, &mf, &err) == 0);
    CHECK_EQ_INT(mf.added_files, 2);
    CHECK_EQ_INT(mf.added_rows, 21);
    CHECK_EQ_INT(mf.seq, 7);
    /* partition summary: one null, one value 19000 (a date, 4 bytes little-endian) */
    CHECK_EQ_INT(mf.npsum, 1);
    CHECK(mf.psum[0].contains_null && mf.psum[0].has_bounds);
    CHECK(mf.psum[0].lo_n == 4 && mf.psum[0].lo[0] == (19000 & 0xff) && mf.psum[0].lo[1] == (19000 >> 8));
    CHECK(cf_ice_mlist_add(&ml, &mf, &err) == 0);
    /* Header keeps the field ids and the Iceberg metadata keys. */
    r = cf_avro_reader_open_file(local_store(), mpath, &err);
    CHECK(r != NULL);
    if (r) {
        avs = cf_avro_reader_meta(r, "avro.schema");
        CHECK(avs && strstr(avs, "\"field-id\":102") && strstr(avs, "\"field-id\":1000"));
        CHECK_EQ_STR(cf_avro_reader_meta(r, "content"), "data");
        CHECK_EQ_STR(cf_avro_reader_meta(r, "format-version"), "2");
        cf_avro_reader_free(r);
    }
    snprintf(lpath, sizeof lpath, "%s/snap.avro", tmpdir);
    CHECK(cf_ice_write_mlist(local_store(), lpath, &ml, 42, -1, 7, &err) == 0);
    CHECK(cf_ice_write_mlist(local_store(), lpath, &ml, 42, -1, 7, &err) == -1);   /* never overwrite */
    CHECK_EQ_INT(err.code, CF_E_CONFLICT);
    CHECK(cf_ice_read_mlist(local_store(), lpath, &back, &err) == 0);
    CHECK_EQ_INT(back.n, 1);
    if (back.n == 1) {
        CHECK_EQ_STR(back.v[0].path, mpath);
        CHECK_EQ_INT(back.v[0].added_snapshot_id, 42);
        CHECK_EQ_INT(back.v[0].added_rows, 21);
        CHECK_EQ_INT(back.v[0].npsum, 1);
        CHECK(back.v[0].psum[0].contains_null && back.v[0].psum[0].hi_n == 4);
        CHECK(cf_ice_read_manifest(local_store(), &back.v[0], &rd, &nrd, &err) == 0);
        CHECK_EQ_INT(nrd, 2);
        if (nrd == 2) {
            CHECK_EQ_STR(rd[0].path, "/x/a.parquet");
            CHECK_EQ_INT(rd[0].seq, 7);              /* inherited */
            CHECK_EQ_INT(rd[0].snapshot_id, 42);
            CHECK_EQ_INT(rd[0].part[0].i, 19000);
            CHECK(rd[1].part[0].null);
            CHECK_EQ_INT(rd[0].nmetrics, 1);
            CHECK(rd[0].nmetrics == 1 && rd[0].metrics[0].upper_n == 8 && rd[0].metrics[0].upper[0] == 9);
        }
    }
    cf_ice_files_free(rd, nrd);
    cf_ice_mlist_free(&ml);
    cf_ice_mlist_free(&back);
    json_decref(sj);
    cf_schema_free(s);
    rm_tmp();
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_commit_conflict(void)
{
    cf_ice_catalog *cat;
    cf_ice_table a, b, c;
    cf_err err = { 0 };
    json_t *doc = json_pack("{s:i, s:s, s:[]}", "format-version", 2, "location", "x", "snapshots");
    char hint[300];
    bool changed = false;

    mk_tmp();
    cat = cf_ice_catalog_open(NULL, tmpdir, NULL, local_store(), &err);
    CHECK(cat != NULL);
    if (!cat)
        goto out;
    CHECK(!cf_ice_dir_is_table(local_store(), tmpdir));
    CHECK(cf_ice_catalog_load(cat, &a, &err) == 0);
    CHECK_EQ_INT(a.version, 0);
    CHECK(a.meta == NULL && a.meta_location == NULL);
    CHECK_EQ_STR(a.location, tmpdir);
    CHECK(cf_ice_catalog_load(cat, &b, &err) == 0);
    CHECK(cf_ice_catalog_commit(cat, &a, json_deep_copy(doc), NULL, &err) == 0);
    CHECK_EQ_INT(a.version, 1);
    CHECK(a.meta_location && strstr(a.meta_location, "/metadata/v1.metadata.json"));
    CHECK(cf_ice_dir_is_table(local_store(), tmpdir));
    /* b still believes the table is empty: its v1 must lose. */
    CHECK(cf_ice_catalog_commit(cat, &b, json_deep_copy(doc), NULL, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_CONFLICT);
    CHECK(err.retriable);
    CHECK_EQ_INT(b.version, 0);
    /* ...and a refresh shows it what won. */
    CHECK(cf_ice_catalog_refresh(cat, &b, &changed, &err) == 0);
    CHECK(changed && b.version == 1 && b.meta);
    CHECK(cf_ice_catalog_refresh(cat, &b, &changed, &err) == 0);
    CHECK(!changed && b.version == 1);
    CHECK(cf_ice_catalog_commit(cat, &a, json_deep_copy(doc), NULL, &err) == 0);
    CHECK_EQ_INT(a.version, 2);
    /* A stale hint does not hide newer versions. */
    snprintf(hint, sizeof hint, "%s/metadata/version-hint.text", tmpdir);
    write_text(hint, "1");
    CHECK(cf_ice_catalog_load(cat, &c, &err) == 0);
    CHECK_EQ_INT(c.version, 2);
    cf_ice_table_free(&c);
    /* A hint naming a missing version falls back to the directory. */
    write_text(hint, "9");
    CHECK(cf_ice_catalog_load(cat, &c, &err) == 0);
    CHECK_EQ_INT(c.version, 2);
    cf_ice_table_free(&c);
    /* No hint at all: the directory listing finds the newest. */
    CHECK(unlink(hint) == 0);
    CHECK(cf_ice_catalog_load(cat, &c, &err) == 0);
    CHECK_EQ_INT(c.version, 2);
    cf_ice_table_free(&c);
    CHECK(cf_ice_catalog_load_version(cat, 1, &c, &err) == 0);
    CHECK(c.version == 1 && c.meta);
    cf_ice_table_free(&c);
    CHECK(cf_ice_catalog_load_version(cat, 7, &c, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_NOTFOUND);
    cf_ice_table_free(&a);
    cf_ice_table_free(&b);
    cf_ice_table_free(&c);
    cf_ice_catalog_close(cat);
out:
    json_decref(doc);
    rm_tmp();
}

/* The metadata-log names the file each version was read from. */
static void test_metadata_log(void)
{
    cf_ice_catalog *cat;
    cf_ice_table t;
    cf_err err = { 0 };
    json_t *doc = json_pack("{s:i, s:[]}", "format-version", 2, "snapshots"), *m;

    mk_tmp();
    cat = cf_ice_catalog_open(NULL, tmpdir, NULL, local_store(), &err);
    CHECK(cat && cf_ice_catalog_load(cat, &t, &err) == 0);
    if (!cat)
        goto out;
    CHECK(cf_ice_catalog_commit(cat, &t, doc, NULL, &err) == 0);
    doc = NULL;
    m = json_deep_copy(t.meta);
    cf_ice_log_metadata(&t, m, 1234);
    CHECK(cf_ice_catalog_commit(cat, &t, m, NULL, &err) == 0);
    m = json_array_get(json_object_get(t.meta, "metadata-log"), 0);
    CHECK(m && strstr(json_string_value(json_object_get(m, "metadata-file")), "/metadata/v1.metadata.json"));
    CHECK_EQ_INT(json_integer_value(json_object_get(t.meta, "last-updated-ms")), 1234);
    cf_ice_table_free(&t);
    cf_ice_catalog_close(cat);
out:
    json_decref(doc);
    rm_tmp();
}

/* A directory catalog on S3 would lose commits (no atomic rename there,
 * version-hint is last-writer-wins): refused, naming what to use. */
static void test_catalog_refuses_object_storage(void)
{
    cf_catalog_config cfg = { 0 };
    cf_err err = { 0 };

    CHECK(cf_ice_catalog_open(NULL, "s3://bucket/wh/t", NULL, local_store(), &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
    CHECK(strstr(err.msg, "REST catalog") && strstr(err.msg, "--catalog-uri") &&
          strstr(err.msg, "ICEBERG_CATALOG_URI"));
    CHECK(strchr(err.msg, '\n') == NULL);
    cf_err_clear(&err);
    CHECK(cf_ice_catalog_open(&cfg, "s3a://bucket/t", NULL, local_store(), &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
    cf_err_clear(&err);
    /* A REST catalog names the table by WAREHOUSE/NAMESPACE/TABLE: checked
     * before the catalog is asked anything. */
    cfg.uri = "http://localhost:1";
    CHECK(cf_ice_catalog_open(&cfg, "s3://bucket/t", "db.t", local_store(), &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
    CHECK(strstr(err.msg, "NAMESPACE/TABLE") != NULL);
}

/* Locations are recorded absolute, as given otherwise (no realpath, URLs kept). */
static void test_catalog_locations(void)
{
    const char *in[] = { "/data/t/", "file:///data/t", "rel/t", "/" };
    char cwd[256], want[300];
    cf_err err = { 0 };

    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    for (int i = 0; i < 4; i++) {
        cf_ice_catalog *cat = cf_ice_catalog_open(NULL, in[i], NULL, local_store(), &err);
        cf_ice_table t;
        CHECK(cat && cf_ice_catalog_load(cat, &t, &err) == 0);
        if (!cat)
            continue;
        snprintf(want, sizeof want, "%s/rel/t", cwd);
        CHECK_EQ_STR(t.location, i == 0 ? "/data/t" : i == 1 ? "file:///data/t" : i == 2 ? want : "/");
        cf_ice_table_free(&t);
        cf_ice_catalog_close(cat);
    }
}

static void test_schema_json(void)
{
    json_t *meta = json_loads(
        "{\"format-version\":2,\"current-schema-id\":1,\"schemas\":["
        "{\"type\":\"struct\",\"schema-id\":0,\"fields\":[{\"id\":1,\"name\":\"id\",\"required\":true,\"type\":\"long\"}]},"
        "{\"type\":\"struct\",\"schema-id\":1,\"identifier-field-ids\":[1],\"fields\":["
        "{\"id\":1,\"name\":\"id\",\"required\":true,\"type\":\"long\"},"
        "{\"id\":2,\"name\":\"amt\",\"required\":false,\"type\":\"decimal(10, 2)\"},"
        "{\"id\":3,\"name\":\"at\",\"required\":false,\"type\":\"timestamptz\"}]}]}", 0, NULL);
    cf_err err = { 0 };
    cf_schema *s = cf_ice_schema_from_json(meta, -1, &err);
    char tb[64];

    CHECK(s != NULL);
    if (s) {
        CHECK_EQ_INT(s->nfields, 3);
        CHECK_EQ_INT(s->fields[1].type.id, CF_T_DECIMAL);
        CHECK_EQ_INT(s->fields[1].type.scale, 2);
        CHECK_EQ_INT(s->fields[2].field_id, 3);
        CHECK_EQ_INT(s->npk, 1);
        CHECK(!s->fields[0].nullable);
        CHECK_EQ_STR(cf_ice_type_name(s->fields[1].type, tb, sizeof tb), "decimal(10, 2)");
        cf_schema_free(s);
    }
    s = cf_ice_schema_from_json(meta, 0, &err);
    CHECK(s && s->nfields == 1);
    cf_schema_free(s);
    CHECK(cf_ice_schema_from_json(meta, 9, &err) == NULL);
    json_decref(meta);
}

static void test_kmap(void)
{
    cf_ice_kmap *m = cf_ice_kmap_new(0);
    cf_err err = { 0 };
    int32_t a;
    int64_t b;
    char k[32];

    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "key%d", i);
        CHECK(cf_ice_kmap_put(m, k, strlen(k), i % 7, i, &err) == 0);
    }
    CHECK_EQ_INT(cf_ice_kmap_live(m), 20000);
    CHECK(cf_ice_kmap_get(m, "key1234", 7, &a, &b) && a == 1234 % 7 && b == 1234);
    cf_ice_kmap_del(m, "key1234", 7);
    CHECK(!cf_ice_kmap_get(m, "key1234", 7, &a, &b));
    CHECK(cf_ice_kmap_put(m, "key1234", 7, 3, 99, &err) == 0);
    CHECK(cf_ice_kmap_get(m, "key1234", 7, &a, &b) && b == 99);
    CHECK_EQ_INT(cf_ice_kmap_live(m), 20000);
    cf_ice_kmap_free(m);
}

CF_TEST_MAIN("iceberg_meta", T(test_murmur3_vectors), T(test_bucket_columns), T(test_single_value),
             T(test_single_value_uuid_wide_decimal), T(test_time_and_truncate_transforms),
             T(test_parse_time), T(test_spec_parse), T(test_manifest_roundtrip), T(test_commit_conflict),
             T(test_metadata_log), T(test_catalog_refuses_object_storage), T(test_catalog_locations),
             T(test_schema_json), T(test_kmap))
