/* test_avro.c - Avro container files: encoding, header, round trips, bad input. */
#include "cf_test.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>
#include "format/avro/avro.h"

static const char *SCHEMA =
    "{\"type\":\"record\",\"name\":\"manifest_entry\",\"fields\":["
    "{\"name\":\"status\",\"type\":\"int\",\"field-id\":0},"
    "{\"name\":\"snapshot_id\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":1},"
    "{\"name\":\"path\",\"type\":\"string\",\"field-id\":100},"
    "{\"name\":\"ok\",\"type\":\"boolean\",\"field-id\":7},"
    "{\"name\":\"d\",\"type\":\"double\",\"field-id\":8},"
    "{\"name\":\"counts\",\"type\":[\"null\",{\"type\":\"array\",\"logicalType\":\"map\",\"items\":"
    "{\"type\":\"record\",\"name\":\"k119_v120\",\"fields\":["
    "{\"name\":\"key\",\"type\":\"int\",\"field-id\":119},"
    "{\"name\":\"value\",\"type\":\"long\",\"field-id\":120}]}}],\"default\":null,\"field-id\":109},"
    "{\"name\":\"props\",\"type\":{\"type\":\"map\",\"values\":\"string\"},\"field-id\":9},"
    "{\"name\":\"uuid\",\"type\":{\"type\":\"fixed\",\"name\":\"uuid_fixed\",\"size\":16},\"field-id\":10},"
    "{\"name\":\"blob\",\"type\":\"bytes\",\"field-id\":11}"
    "]}";

static void encode_row(cf_buf *b, int i)
{
    uint8_t fx[16];
    char path[64];
    for (int k = 0; k < 16; k++)
        fx[k] = (uint8_t)(i + k);
    snprintf(path, sizeof path, "/data/file-%d.parquet", i);
    cf_avro_put_long(b, i % 3, NULL);
    if (i % 2) {
        cf_avro_put_branch(b, 0, NULL);
    } else {
        cf_avro_put_branch(b, 1, NULL);
        cf_avro_put_long(b, -1234567890123LL * i, NULL);
    }
    cf_avro_put_str(b, path, NULL);
    cf_avro_put_bool(b, i % 2 == 0, NULL);
    cf_avro_put_double(b, i * 0.5, NULL);
    cf_avro_put_branch(b, 1, NULL);
    cf_avro_put_long(b, 2, NULL);          /* one block of two map entries */
    cf_avro_put_long(b, 1, NULL);
    cf_avro_put_long(b, i, NULL);
    cf_avro_put_long(b, 2, NULL);
    cf_avro_put_long(b, (int64_t)i << 40, NULL);
    cf_avro_put_long(b, 0, NULL);
    cf_avro_put_long(b, 1, NULL);
    cf_avro_put_str(b, "k", NULL);
    cf_avro_put_str(b, "v", NULL);
    cf_avro_put_long(b, 0, NULL);
    cf_buf_append(b, fx, 16, NULL);
    cf_avro_put_bytes(b, "\0\1\2", 3, NULL);
}

static void test_varint(void)
{
    cf_buf b;
    cf_buf_init(&b, 0);
    cf_avro_put_long(&b, 0, NULL);
    cf_avro_put_long(&b, -1, NULL);
    cf_avro_put_long(&b, 1, NULL);
    cf_avro_put_long(&b, -64, NULL);
    cf_avro_put_long(&b, 64, NULL);
    /* Values from the spec's zigzag table: 0->00 -1->01 1->02 -64->7f 64->80 01 */
    CHECK_EQ_INT(b.len, 6);
    CHECK(b.data[0] == 0x00 && b.data[1] == 0x01 && b.data[2] == 0x02 && b.data[3] == 0x7f);
    CHECK(b.data[4] == 0x80 && b.data[5] == 0x01);
    cf_buf_free(&b);
}

static void roundtrip(cf_avro_codec codec, int nrows)
{
    const char *keys[] = { "format-version", "content" };
    const char *vals[] = { "2", "data" };
    cf_err err = { 0 };
    cf_avro_writer *w = cf_avro_writer_new(SCHEMA, keys, vals, 2, codec, &err);
    cf_buf file, row;
    cf_avro_reader *r;
    const cf_avro_value *v;
    int i = 0, rc;

    CHECK(w != NULL);
    if (!w)
        return;
    cf_buf_init(&file, 0);
    cf_buf_init(&row, 0);
    for (int k = 0; k < nrows; k++) {
        cf_buf_reset(&row);
        encode_row(&row, k);
        CHECK(cf_avro_writer_append(w, row.data, row.len, &err) == 0);
    }
    CHECK(cf_avro_writer_finish(w, &file, &err) == 0);
    cf_avro_writer_free(w);

    r = cf_avro_reader_open_mem(file.data, file.len, &err);
    CHECK(r != NULL);
    if (!r) {
        fprintf(stderr, "  %s\n", err.msg);
        goto out;
    }
    /* The schema comes back byte for byte, field-id attributes included. */
    CHECK_EQ_STR(cf_avro_reader_meta(r, "avro.schema"), SCHEMA);
    CHECK_EQ_STR(cf_avro_reader_meta(r, "format-version"), "2");
    CHECK_EQ_STR(cf_avro_reader_meta(r, "avro.codec"), codec == CF_AVRO_DEFLATE ? "deflate" : "null");
    while ((rc = cf_avro_reader_next(r, &v, &err)) == 1) {
        char buf[64], want[64];
        const cf_avro_value *f;
        snprintf(want, sizeof want, "/data/file-%d.parquet", i);
        CHECK_EQ_INT(cf_avro_get_long(v, "status", -9), i % 3);
        CHECK_EQ_INT(cf_avro_get_long(v, "snapshot_id", 777), i % 2 ? 777 : -1234567890123LL * i);
        CHECK_EQ_STR(cf_avro_get_str(v, "path", buf, sizeof buf), want);
        CHECK_EQ_INT(cf_avro_get_long(v, "ok", -1), i % 2 == 0);
        f = cf_avro_get(v, "d");
        CHECK(f && f->kind == CF_AV_DOUBLE && f->d == i * 0.5);
        f = cf_avro_get(v, "counts");
        CHECK(f && f->kind == CF_AV_ARRAY && f->n == 2);
        if (f && f->n == 2) {
            CHECK_EQ_INT(cf_avro_get_long(&f->items[1], "value", 0), (int64_t)i << 40);
            CHECK_EQ_INT(f->items[0].field_ids[0], 119);
        }
        f = cf_avro_get(v, "props");
        CHECK(f && f->kind == CF_AV_MAP && f->n == 1 && f->keys[0].n == 1 && f->keys[0].p[0] == 'k');
        f = cf_avro_get(v, "uuid");
        CHECK(f && f->kind == CF_AV_FIXED && f->n == 16 && f->p[15] == (uint8_t)(i + 15));
        f = cf_avro_get(v, "blob");
        CHECK(f && f->kind == CF_AV_BYTES && f->n == 3 && f->p[2] == 2);
        CHECK_EQ_INT(v->field_ids[2], 100);
        i++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(i, nrows);
    cf_avro_reader_free(r);
out:
    cf_buf_free(&file);
    cf_buf_free(&row);
}

static void test_roundtrip_null(void) { roundtrip(CF_AVRO_NULL_CODEC, 10); }
static void test_roundtrip_deflate(void) { roundtrip(CF_AVRO_DEFLATE, 5000); }
static void test_empty_file(void) { roundtrip(CF_AVRO_DEFLATE, 0); }

static void test_bad_schema(void)
{
    cf_err err = { 0 };
    CHECK(cf_avro_writer_new("{\"type\":\"record\"}", NULL, NULL, 0, CF_AVRO_NULL_CODEC, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    CHECK(cf_avro_writer_new("\"nosuchtype\"", NULL, NULL, 0, CF_AVRO_NULL_CODEC, &err) == NULL);
}

/* Every truncation of a valid file fails cleanly or reads fewer records. */
static void test_truncated(void)
{
    cf_err err = { 0 };
    cf_avro_writer *w = cf_avro_writer_new(SCHEMA, NULL, NULL, 0, CF_AVRO_DEFLATE, &err);
    cf_buf file, row;
    int bad = 0;

    cf_buf_init(&file, 0);
    cf_buf_init(&row, 0);
    for (int k = 0; k < 3; k++) {
        cf_buf_reset(&row);
        encode_row(&row, k);
        cf_avro_writer_append(w, row.data, row.len, &err);
    }
    cf_avro_writer_finish(w, &file, &err);
    cf_avro_writer_free(w);
    for (size_t cut = 0; cut < file.len; cut++) {
        uint8_t *copy = malloc(cut + 1);
        cf_avro_reader *r;
        const cf_avro_value *v;
        int rc = 0, n = 0;
        memcpy(copy, file.data, cut);
        r = cf_avro_reader_open_mem(copy, cut, &err);
        if (r) {
            while ((rc = cf_avro_reader_next(r, &v, &err)) == 1)
                n++;
            cf_avro_reader_free(r);
        }
        if (!r || rc < 0 || n < 3)
            bad++;
        free(copy);
    }
    CHECK_EQ_INT(bad, (int)file.len);
    cf_buf_free(&file);
    cf_buf_free(&row);
}

static void test_garbage(void)
{
    cf_err err = { 0 };
    /* magic + a metadata count claiming a huge key */
    static const uint8_t junk[] = { 'O', 'b', 'j', 1, 0x02, 0xfe, 0xff, 0xff, 0xff, 0x0f };
    CHECK(cf_avro_reader_open_mem(junk, sizeof junk, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    CHECK(cf_avro_reader_open_mem("PAR1", 4, &err) == NULL);
}

/* A container file as another writer makes it, with codec `codec`: three
 * longs in one block compressed by `z` (0 snappy, 1 zstandard). */
static void build_file(cf_buf *f, const char *codec, int z, bool bad_crc)
{
    static const uint8_t sync[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
    cf_buf raw;
    char comp[256];
    size_t clen = sizeof comp;

    cf_buf_init(&raw, 0);
    cf_buf_append(f, "Obj\x01", 4, NULL);
    cf_avro_put_long(f, 2, NULL);
    cf_avro_put_str(f, "avro.schema", NULL);
    cf_avro_put_str(f, "\"long\"", NULL);
    cf_avro_put_str(f, "avro.codec", NULL);
    cf_avro_put_str(f, codec, NULL);
    cf_avro_put_long(f, 0, NULL);
    cf_buf_append(f, sync, 16, NULL);
    cf_avro_put_long(&raw, 7, NULL);
    cf_avro_put_long(&raw, -123456789012LL, NULL);
    cf_avro_put_long(&raw, 0, NULL);
    if (z == 0) {
        uint32_t crc = (uint32_t)crc32(0L, raw.data, (uInt)raw.len) ^ (bad_crc ? 1u : 0u);
        CHECK(snappy_compress((const char *)raw.data, raw.len, comp, &clen) == SNAPPY_OK);
        comp[clen++] = (char)(crc >> 24);
        comp[clen++] = (char)(crc >> 16);
        comp[clen++] = (char)(crc >> 8);
        comp[clen++] = (char)crc;
    } else
        clen = ZSTD_compress(comp, sizeof comp, raw.data, raw.len, 3);
    cf_avro_put_long(f, 3, NULL);
    cf_avro_put_bytes(f, comp, clen, NULL);
    cf_buf_append(f, sync, 16, NULL);
    cf_buf_free(&raw);
}

static void test_other_codecs(void)
{
    static const char *const codecs[] = { "snappy", "zstandard" };
    for (int z = 0; z < 2; z++) {
        cf_buf f;
        cf_err err = { 0 };
        cf_avro_reader *r;
        const cf_avro_value *v;
        int64_t got[3] = { 0 };
        int n = 0;
        cf_buf_init(&f, 0);
        build_file(&f, codecs[z], z, false);
        r = cf_avro_reader_open_mem(f.data, f.len, &err);
        CHECK(r != NULL);
        while (r && n < 3 && cf_avro_reader_next(r, &v, &err) == 1)
            got[n++] = v->i;
        CHECK_EQ_INT(n, 3);
        CHECK(got[0] == 7 && got[1] == -123456789012LL && got[2] == 0);
        cf_avro_reader_free(r);
        cf_buf_free(&f);
    }
    {
        /* a snappy block whose checksum does not match is refused */
        cf_buf f;
        cf_err err = { 0 };
        const cf_avro_value *v;
        cf_avro_reader *r;
        cf_buf_init(&f, 0);
        build_file(&f, "snappy", 0, true);
        r = cf_avro_reader_open_mem(f.data, f.len, &err);
        CHECK(r && cf_avro_reader_next(r, &v, &err) == -1);
        CHECK_EQ_INT(err.code, CF_E_PARSE);
        cf_avro_reader_free(r);
        cf_buf_free(&f);
    }
}

CF_TEST_MAIN("avro", T(test_varint), T(test_roundtrip_null), T(test_roundtrip_deflate),
             T(test_empty_file), T(test_bad_schema), T(test_truncated), T(test_garbage),
             T(test_other_codecs))
