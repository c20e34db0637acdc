/* test_store.c - the store contract on both backends: one battery run on a
 * temporary directory and, when the stack's S3 answers, on a bucket; plus
 * what only S3 has (multipart, paging, key encoding, its errors) and the
 * S3 helpers against known values.
 *
 * S3 server: S3_ENDPOINT (default http://127.0.0.1:9400, scripts/stack.sh),
 * bucket S3_BUCKET (default cdcflow), the stack's key pair cdcflow /
 * cdcflow-secret in us-east-1 (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 * instead when S3_ENDPOINT is set).  Without a server the S3 cases print
 * "skipped: no S3 server at ..." and pass. */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cf_test.h"
#include "store/s3_int.h"
#include "store/store.h"
#include "util/id.h"

#define MiB (1u << 20)

/* ---------------------------------------------------------------- helpers */

static char s3_endpoint[256], s3_bucket[64], s3_root[256];
static const char *s3_key = "cdcflow", *s3_secret = "cdcflow-secret";
static int s3_state;            /* 0 not probed, 1 up, -1 down */

static cf_store_config s3_cfg(void)
{
    cf_store_config c = { 0 };
    c.endpoint = s3_endpoint;
    c.region = "us-east-1";
    c.access_key = s3_key;
    c.secret_key = s3_secret;
    c.path_style = -1;
    return c;
}

/* Whether the S3 server answers; prints the skip line once when not. */
static bool s3_up(void)
{
    cf_store_config c;
    cf_store *st;
    cf_err e = { 0 };
    char id[37], probe[300];
    int rc;

    if (s3_state)
        return s3_state > 0;
    snprintf(s3_endpoint, sizeof s3_endpoint, "%s",
             getenv("S3_ENDPOINT") && *getenv("S3_ENDPOINT") ? getenv("S3_ENDPOINT")
                                                             : "http://127.0.0.1:9400");
    snprintf(s3_bucket, sizeof s3_bucket, "%s",
             getenv("S3_BUCKET") && *getenv("S3_BUCKET") ? getenv("S3_BUCKET") : "cdcflow");
    if (getenv("S3_ENDPOINT") && getenv("AWS_ACCESS_KEY_ID") && getenv("AWS_SECRET_ACCESS_KEY")) {
        s3_key = getenv("AWS_ACCESS_KEY_ID");
        s3_secret = getenv("AWS_SECRET_ACCESS_KEY");
    }
    cf_uuid(id);
    snprintf(s3_root, sizeof s3_root, "s3://%.63s/unit-%s", s3_bucket, id);
    c = s3_cfg();
    c.retries = -1;
    c.timeout_ms = 3000;
    st = cf_store_open("s3://x/", &c, &e);
    snprintf(probe, sizeof probe, "%s/absent", s3_root);
    rc = st ? cf_store_head(st, probe, NULL, &e) : -1;
    cf_store_close(st);
    if (rc == -1 && e.code == CF_E_NOTFOUND) {
        s3_state = 1;
    } else {
        s3_state = -1;
        printf("skipped: no S3 server at %s (bucket %s): %s -- scripts/stack.sh start\n",
               s3_endpoint, s3_bucket, rc ? e.msg : "a probe object exists?");
    }
    return s3_state > 0;
}

static cf_store *s3_open(void)
{
    cf_store_config c = s3_cfg();
    cf_err e = { 0 };
    cf_store *st = cf_store_open(s3_root, &c, &e);
    if (!st)
        fprintf(stderr, "  s3 open: %s\n", e.msg);
    return st;
}

typedef struct names {
    char  *v[4096];
    int    n;
    size_t skip;                /* prefix length dropped from each path */
    int64_t size_sum;
    bool   mtime_ok;
    int    stop_after;          /* > 0: return 7 after that many */
} names;

static int collect(void *ctx, const char *path, const cf_store_stat *s)
{
    names *nm = ctx;
    if (nm->n < 4096)
        nm->v[nm->n++] = strdup(path + (strlen(path) >= nm->skip ? nm->skip : 0));
    nm->size_sum += s->size;
    if (s->mtime_ms < 1600000000000LL)
        nm->mtime_ok = false;
    return nm->stop_after > 0 && nm->n >= nm->stop_after ? 7 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The listing of dir as sorted names relative to root, joined by ','. */
static char *list_str(cf_store *st, const char *root, const char *dir, int flags)
{
    names nm = { .skip = strlen(root) + 1, .mtime_ok = true };
    cf_err e = { 0 };
    size_t len = 1;
    char *out;

    if (cf_store_list(st, dir, flags, collect, &nm, &e)) {
        fprintf(stderr, "  list %s: %s\n", dir, e.msg);
        return strdup("(error)");
    }
    qsort(nm.v, (size_t)nm.n, sizeof *nm.v, cmp_str);
    for (int i = 0; i < nm.n; i++)
        len += strlen(nm.v[i]) + 1;
    out = calloc(1, len);
    for (int i = 0; i < nm.n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, nm.v[i]);
        free(nm.v[i]);
    }
    return out;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

static int del_cb(void *ctx, const char *path, const cf_store_stat *s)
{
    (void)s;
    cf_store_delete(ctx, path, NULL);
    return 0;
}

static void s3_cleanup(cf_store *st, const char *dir)
{
    cf_store_list(st, dir, 0, del_cb, st, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- the battery */

/* Everything store.h promises, on one backend, under root. */
static void battery(cf_store *st, const char *root)
{
    char p1[512], p2[512], p3[512], dir[512], sub[512];
    cf_store_stat s = { 0 };
    cf_buf b;
    cf_err e = { 0 };
    uint8_t range[5];
    char *l;

    snprintf(p1, sizeof p1, "%s/t/_delta_log/00000000000000000000.json", root);
    snprintf(p2, sizeof p2, "%s/t/_delta_log/00000000000000000001.json", root);
    snprintf(p3, sizeof p3, "%s/t/date=2024-01-01/part-0.parquet", root);
    snprintf(dir, sizeof dir, "%s/t/_delta_log", root);
    snprintf(sub, sizeof sub, "%s/t", root);

    /* missing objects */
    CHECK(cf_store_head(st, p1, &s, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    CHECK(!cf_store_exists(st, p1));
    cf_buf_init(&b, 0);
    CHECK(cf_store_get(st, p1, &b, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    CHECK(cf_store_delete(st, p1, &e) == 0);
    l = list_str(st, root, dir, 0);
    CHECK_EQ_STR(l, "");
    free(l);

    /* put, head, get, range */
    CHECK(cf_store_put(st, p1, "hello, store", 12, &e) == 0);
    CHECK(cf_store_head(st, p1, &s, &e) == 0);
    CHECK_EQ_INT(s.size, 12);
    CHECK(s.mtime_ms > cf_now_ms() - 3600 * 1000 && s.mtime_ms < cf_now_ms() + 3600 * 1000);
    CHECK(cf_store_exists(st, p1));
    CHECK(cf_store_get(st, p1, &b, &e) == 0);
    CHECK_EQ_INT(b.len, 12);
    CHECK(b.len == 12 && !memcmp(b.data, "hello, store", 12));
    CHECK(cf_store_get_range(st, p1, 7, 5, range, &e) == 0);
    CHECK(!memcmp(range, "store", 5));
    CHECK(cf_store_get_range(st, p1, 10, 5, range, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_PARSE);
    CHECK(cf_store_get_range(st, p1, 100, 5, range, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_PARSE);
    /* get appends, and its cap holds */
    CHECK(cf_store_get(st, p1, &b, &e) == 0);
    CHECK_EQ_INT(b.len, 24);
    cf_buf_free(&b);
    cf_buf_init(&b, 5);
    CHECK(cf_store_get(st, p1, &b, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_TOOBIG);
    cf_buf_free(&b);
    cf_buf_init(&b, 0);

    /* replace */
    CHECK(cf_store_put(st, p1, "v2", 2, &e) == 0);
    CHECK(cf_store_get(st, p1, &b, &e) == 0);
    CHECK(b.len == 2 && !memcmp(b.data, "v2", 2));
    cf_buf_reset(&b);

    /* put_if_absent: the second write of one path loses and leaves the first */
    CHECK(cf_store_put_if_absent(st, p2, "first", 5, &e) == 0);
    e = (cf_err){ 0 };
    CHECK(cf_store_put_if_absent(st, p2, "second", 6, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(e.retriable);
    CHECK(strstr(e.msg, "00000000000000000001.json") != NULL);
    CHECK(cf_store_get(st, p2, &b, &e) == 0);
    CHECK(b.len == 5 && !memcmp(b.data, "first", 5));
    cf_buf_reset(&b);
    CHECK(cf_store_put_if_absent_at(st, p3, "PAR1", 4, 1700000000000LL, &e) == 0);

    /* listing: recursive, flat, missing dir, stop */
    l = list_str(st, root, sub, 0);
    CHECK_EQ_STR(l, "t/_delta_log/00000000000000000000.json,t/_delta_log/00000000000000000001.json,"
                    "t/date=2024-01-01/part-0.parquet");
    free(l);
    l = list_str(st, root, dir, CF_STORE_FLAT);
    CHECK_EQ_STR(l, "t/_delta_log/00000000000000000000.json,t/_delta_log/00000000000000000001.json");
    free(l);
    l = list_str(st, root, sub, CF_STORE_FLAT);     /* only direct children: none */
    CHECK_EQ_STR(l, "");
    free(l);
    {
        char slash[520];
        snprintf(slash, sizeof slash, "%s/", dir);   /* a trailing '/' is the same dir */
        l = list_str(st, root, slash, CF_STORE_FLAT);
        CHECK_EQ_STR(l, "t/_delta_log/00000000000000000000.json,t/_delta_log/00000000000000000001.json");
        free(l);
    }
    {
        char missing[520];
        snprintf(missing, sizeof missing, "%s/nothing/here", root);
        l = list_str(st, root, missing, 0);
        CHECK_EQ_STR(l, "");
        free(l);
    }
    {
        names nm = { .skip = 0, .mtime_ok = true, .stop_after = 1 };
        CHECK_EQ_INT(cf_store_list(st, sub, 0, collect, &nm, &e), 7);
        CHECK_EQ_INT(nm.n, 1);
        CHECK(nm.mtime_ok);
        for (int i = 0; i < nm.n; i++)
            free(nm.v[i]);
    }

    /* streamed file: appears whole at finish; discard leaves nothing */
    {
        char fp[512], dp[512];
        cf_store_file *f;
        snprintf(fp, sizeof fp, "%s/t/data/part-1.parquet", root);
        snprintf(dp, sizeof dp, "%s/t/data/part-2.parquet", root);
        f = cf_store_file_create(st, fp, &e);
        CHECK(f != NULL);
        if (f) {
            CHECK_EQ_STR(cf_store_file_path(f), fp);
            CHECK(cf_store_file_write(f, "abc", 3, &e) == 0);
            CHECK(cf_store_file_write(f, "", 0, &e) == 0);
            CHECK(cf_store_file_write(f, "defg", 4, &e) == 0);
            CHECK_EQ_INT(cf_store_file_size(f), 7);
            CHECK(cf_store_file_finish(f, &e) == 0);
        }
        CHECK(cf_store_get(st, fp, &b, &e) == 0);
        CHECK(b.len == 7 && !memcmp(b.data, "abcdefg", 7));
        cf_buf_reset(&b);
        f = cf_store_file_create(st, dp, &e);
        CHECK(f != NULL);
        if (f) {
            CHECK(cf_store_file_write(f, "xyz", 3, &e) == 0);
            cf_store_file_discard(f);
        }
        CHECK(!cf_store_exists(st, dp));
        cf_store_file_discard(NULL);
    }

    /* the probe, and sync (a no-op on S3) */
    e = (cf_err){ 0 };
    CHECK(cf_store_check_atomic(st, dir, &e) == 0);
    if (e.code)
        fprintf(stderr, "  check_atomic: %s\n", e.msg);
    {
        char *paths[] = { p1, p2 };
        CHECK(cf_store_sync(st, root, paths, 2, &e) == 0);
    }
    l = list_str(st, root, dir, 0);     /* the probe deleted itself */
    CHECK_EQ_STR(l, "t/_delta_log/00000000000000000000.json,t/_delta_log/00000000000000000001.json");
    free(l);

    /* delete */
    CHECK(cf_store_delete(st, p1, &e) == 0);
    CHECK(!cf_store_exists(st, p1));
    CHECK(cf_store_delete(st, p1, &e) == 0);
    cf_buf_free(&b);
}

/* ---------------------------------------------------------------- local */

static void local_battery(void)
{
    char root[] = "/tmp/cf_test_store_XXXXXX";
    cf_err e = { 0 };
    cf_store *st;
    char fp[128], url[160];

    CHECK(mkdtemp(root) != NULL);
    st = cf_store_open(root, NULL, &e);
    CHECK(st != NULL);
    if (!st)
        return;
    CHECK_EQ_STR(cf_store_name(st), "local");
    CHECK(cf_store_is_local(st));
    battery(st, root);

    /* local create is exclusive; file: URLs name the same files */
    snprintf(fp, sizeof fp, "%s/t/data/part-1.parquet", root);
    CHECK(cf_store_file_create(st, fp, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    snprintf(url, sizeof url, "file://%s", fp);
    CHECK(cf_store_exists(st, url));
    cf_store_close(st);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_errors(void)
{
    cf_store_config c = { 0 };
    cf_err e = { 0 };

    CHECK(cf_store_open("s3://b/t", &c, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    CHECK_EQ_STR(e.msg, "s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    c.access_key = "AKIDEXAMPLE";
    CHECK(cf_store_open("s3a://b/t", &c, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    c.secret_key = "s3cr3t-value";
    c.endpoint = "127.0.0.1:9400";
    CHECK(cf_store_open("s3://b/t", &c, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    CHECK(strstr(e.msg, "http://") != NULL);
    CHECK(cf_store_is_remote("s3a://b/k") && cf_store_is_remote("s3://b/k") && !cf_store_is_remote("/x"));
}

/* Open copies what it keeps: the config's strings may go away at once. */
static void open_copies_config(void)
{
    char ep[64], key[32], secret[32];
    cf_store_config c = { 0 };
    cf_err e = { 0 };
    cf_store *st;

    snprintf(ep, sizeof ep, "http://127.0.0.1:1");
    snprintf(key, sizeof key, "AKIDEXAMPLE");
    snprintf(secret, sizeof secret, "very-secret-value");
    c.endpoint = ep;
    c.access_key = key;
    c.secret_key = secret;
    c.retries = 1;
    c.timeout_ms = 500;
    st = cf_store_open("s3://b/t", &c, &e);
    CHECK(st != NULL);
    memset(ep, 'x', sizeof ep - 1);
    memset(key, 'y', sizeof key - 1);
    memset(secret, 'z', sizeof secret - 1);
    if (st) {
        CHECK_EQ_STR(cf_store_name(st), "s3");
        CHECK(!cf_store_is_local(st));
        /* nothing listens on port 1: an I/O error naming the op and path,
         * after the retry, and no secret in it */
        CHECK(cf_store_get(st, "s3://b/some key", &(cf_buf){ 0 }, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_IO);
        CHECK(e.retriable);
        CHECK(strstr(e.msg, "s3 GET s3://b/some key: ") == e.msg);
        CHECK(strstr(e.msg, "2 attempts") != NULL);
        CHECK(strstr(e.msg, "very-secret") == NULL);
        CHECK(cf_store_head(st, "s3://b", NULL, &e) == -1);          /* no key */
        CHECK(cf_store_put(st, "s3://b/", "x", 1, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_ARG);
        CHECK(cf_store_head(st, "s3://bad*bucket/k", NULL, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_ARG);
        cf_store_close(st);
    }
}

/* ---------------------------------------------------------------- S3 helpers */

static void s3_sha256_vectors(void)
{
    char hex[65];
    static uint8_t million[1000000];

    cf_s3_sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cf_s3_sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cf_s3_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    memset(million, 'a', sizeof million);
    cf_s3_sha256_hex(million, sizeof million, hex);
    CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void s3_uri_encoding(void)
{
    cf_buf b;
    cf_err e;
    const char *key = "t/date=2024-01-01/a b%41+&~_.-\xc3\xa9";

    cf_buf_init(&b, 0);
    CHECK(cf_s3_uri_encode(&b, key, strlen(key), 1, &e) == 0);
    CHECK_EQ_STR(cf_buf_cstr(&b, &e), "t/date%3D2024-01-01/a%20b%2541%2B%26~_.-%C3%A9");
    cf_buf_reset(&b);
    CHECK(cf_s3_uri_encode(&b, "a/b c", 5, 0, &e) == 0);
    CHECK_EQ_STR(cf_buf_cstr(&b, &e), "a%2Fb%20c");
    cf_buf_free(&b);
    cf_buf_init(&b, 4);
    CHECK(cf_s3_uri_encode(&b, "    ", 4, 1, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_TOOBIG);
    cf_buf_free(&b);
}

static void s3_xml_text(void)
{
    char out[64];
    const char *in = "a&amp;b&lt;c&gt;d&quot;e&apos;f&#65;&#x42;&#xe9;&#x1F600;";

    CHECK_EQ_INT(cf_s3_xml_unescape(in, strlen(in), out, sizeof out), 19);
    CHECK_EQ_STR(out, "a&b<c>d\"e'fAB\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_EQ_INT(cf_s3_xml_unescape("plain", 5, out, sizeof out), 5);
    CHECK_EQ_STR(out, "plain");
    CHECK_EQ_INT(cf_s3_xml_unescape("", 0, out, sizeof out), 0);
    CHECK_EQ_INT(cf_s3_xml_unescape("a&amp", 5, out, sizeof out), -1);     /* no ';' */
    CHECK_EQ_INT(cf_s3_xml_unescape("&bogus;", 7, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("&#;", 3, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("&#x;", 4, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("&#0;", 4, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("&#xD800;", 8, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("&#99999999999;", 14, out, sizeof out), -1);
    CHECK_EQ_INT(cf_s3_xml_unescape("abcd", 4, out, 4), -1);               /* no room for NUL */
}

/* ---------------------------------------------------------------- a scripted server */

/* A loopback HTTP server that answers each request with the next scripted
 * response ("DROP": close without answering), recording request lines:
 * retries, backoff and the odd answers S3 gives, without S3. */
typedef struct fake {
    int         lfd, port, n, served;
    const char *script[12];
    char        lines[12][200];
    bool        inm[12];            /* request had If-None-Match: * */
    char        head0[2048];        /* the first request's header block */
    pthread_t   t;
} fake;

static void *fake_run(void *a)
{
    fake *f = a;

    while (f->served < f->n) {
        int c = accept(f->lfd, NULL, NULL);
        char *buf = malloc(8 * MiB);
        size_t len = 0;
        bool drop = false;
        if (c < 0 || !buf) {
            free(buf);
            break;
        }
        while (f->served < f->n && !drop) {
            char *eoh, *cl;
            size_t need, hl;
            ssize_t k;
            while (!(eoh = memmem(buf, len, "\r\n\r\n", 4))) {
                if ((k = read(c, buf + len, 8 * MiB - len)) <= 0)
                    goto gone;
                len += (size_t)k;
            }
            hl = (size_t)(eoh + 4 - buf);
            buf[hl - 1] = '\0';
            need = (cl = strcasestr(buf, "\r\ncontent-length:")) ? strtoul(cl + 17, NULL, 10) : 0;
            if (need && strcasestr(buf, "\r\nexpect: 100-continue") && write(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
                goto gone;
            while (len < hl + need) {
                if ((k = read(c, buf + len, 8 * MiB - len)) <= 0)
                    goto gone;
                len += (size_t)k;
            }
            snprintf(f->lines[f->served], sizeof f->lines[0], "%.*s", (int)strcspn(buf, "\r"), buf);
            f->inm[f->served] = strcasestr(buf, "\r\nif-none-match: *") != NULL;
            if (f->served == 0)
                snprintf(f->head0, sizeof f->head0, "%s", buf);
            memmove(buf, buf + hl + need, len - hl - need);
            len -= hl + need;
            {
                const char *r = f->script[f->served++], *h = strchr(r, '|');
                const char *body = h ? strchr(h + 1, '|') : NULL;
                char out[1024];
                int ol;
                if (!strcmp(r, "DROP") || !body) {
                    drop = true;
                    continue;
                }
                ol = snprintf(out, sizeof out, "HTTP/1.1 %.3s X\r\n%.*sContent-Length: %zu\r\n\r\n%s",
                              r, (int)(body - h - 1), h + 1, strlen(body + 1), body + 1);
                if (write(c, out, (size_t)ol) != ol)
                    goto gone;
            }
        }
    gone:
        free(buf);
        close(c);
    }
    return NULL;
}

static bool fake_start(fake *f)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;

    if ((f->lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0 || bind(f->lfd, (void *)&sa, sizeof sa) ||
        listen(f->lfd, 8) || getsockname(f->lfd, (void *)&sa, &sl))
        return false;
    f->port = ntohs(sa.sin_port);
    return pthread_create(&f->t, NULL, fake_run, f) == 0;
}

static void fake_stop(fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    pthread_join(f->t, NULL);
    close(f->lfd);
}

static cf_store *fake_store(const fake *f, int retries, char *ep, size_t epn)
{
    cf_store_config c = { .region = "us-east-1", .access_key = "AKIDFAKE", .secret_key = "fake-secret",
                          .path_style = -1, .retries = retries, .timeout_ms = 5000,
                          .part_size = 5 * MiB };
    cf_err e = { 0 };
    snprintf(ep, epn, "http://127.0.0.1:%d", f->port);
    c.endpoint = ep;
    return cf_store_open("s3://b/", &c, &e);
}

/* Answers as "STATUS|extra header lines|body"; the server adds the
 * status line and Content-Length. */
#define A_SLOWDOWN "503||<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>"
#define A_INTERNAL "500||<Error><Code>InternalError</Code><Message>We goofed</Message></Error>"
#define A_OK       "200||ok"
#define A_DENIED   "403||<Error><Code>AccessDenied</Code><Message>Access &amp; Denied</Message></Error>"
#define A_412      "412||<Error><Code>PreconditionFailed</Code><Message>No</Message></Error>"
#define A_409      "409||<Error><Code>ConditionalRequestConflict</Code><Message>Busy</Message></Error>"

/* 503 SlowDown and 500 are retried, then the answer is taken; a dropped
 * connection too; a 403 never is. */
static void s3_retries(void)
{
    fake f = { .n = 5, .script = { A_SLOWDOWN, A_INTERNAL, A_OK, "DROP", A_OK } };
    char ep[64];
    cf_err e = { 0 };
    cf_store *st;
    cf_buf b;

    CHECK(fake_start(&f));
    st = fake_store(&f, 3, ep, sizeof ep);
    CHECK(st != NULL);
    if (!st)
        return;
    cf_buf_init(&b, 0);
    CHECK(cf_store_get(st, "s3://b/k", &b, &e) == 0);
    CHECK(b.len == 2 && !memcmp(b.data, "ok", 2));
    cf_buf_reset(&b);
    CHECK(cf_store_get(st, "s3://b/k2", &b, &e) == 0);       /* DROP, then ok */
    CHECK(b.len == 2 && !memcmp(b.data, "ok", 2));
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 5);
    CHECK_EQ_STR(f.lines[0], "GET /b/k HTTP/1.1");
    CHECK_EQ_STR(f.lines[4], "GET /b/k2 HTTP/1.1");

    f = (fake){ .n = 1, .script = { A_DENIED } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 3, ep, sizeof ep);
    cf_buf_reset(&b);
    CHECK(cf_store_get(st, "s3://b/k", &b, &e) == -1);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    CHECK_EQ_STR(e.msg, "s3 GET s3://b/k: HTTP 403 AccessDenied: Access & Denied");
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 1);

    /* out of retries: the last answer, marked retriable */
    f = (fake){ .n = 3, .script = { A_SLOWDOWN, A_SLOWDOWN, A_SLOWDOWN } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put(st, "s3://b/k", "x", 1, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_IO);
    CHECK(e.retriable);
    CHECK_EQ_STR(e.msg, "s3 PUT s3://b/k: HTTP 503 SlowDown: Please reduce (after retries)");
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 3);
    cf_buf_free(&b);
}

/* put_if_absent: a 409 ConditionalRequestConflict is retried and then a
 * CONFLICT; a 412 after a lost answer is ours when the object holds our
 * bytes, another writer's when not. */
static void s3_conditional_answers(void)
{
    static const char same[] = "200||commit", other[] = "200||COMMIT";
    fake f = { .n = 3, .script = { A_409, A_409, A_412 } };
    char ep[64];
    cf_err e = { 0 };
    cf_store *st;

    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put_if_absent(st, "s3://b/log/1.json", "commit", 6, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(e.retriable);
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 3);
    CHECK(f.inm[0] && f.inm[1] && f.inm[2]);

    f = (fake){ .n = 3, .script = { A_409, A_409, A_409 } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put_if_absent(st, "s3://b/log/1.json", "commit", 6, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(strstr(e.msg, "ConditionalRequestConflict") != NULL);
    cf_store_close(st);
    fake_stop(&f);

    f = (fake){ .n = 3, .script = { A_INTERNAL, A_412, same } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put_if_absent(st, "s3://b/log/2.json", "commit", 6, &e) == 0);
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_STR(f.lines[2], "GET /b/log/2.json HTTP/1.1");

    f = (fake){ .n = 3, .script = { A_INTERNAL, A_412, other } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put_if_absent(st, "s3://b/log/2.json", "commit", 6, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    cf_store_close(st);
    fake_stop(&f);

    /* a plain 412 with no lost answer before it: no GET */
    f = (fake){ .n = 1, .script = { A_412 } };
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    CHECK(cf_store_put_if_absent(st, "s3://b/log/3.json", "commit", 6, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 1);
}

/* What goes on the wire: the payload hash, the session token, both signed,
 * and the secret nowhere. */
static void s3_request_headers(void)
{
    fake f = { .n = 1, .script = { "200||" } };
    cf_store_config c = { .region = "eu-west-3", .access_key = "AKIDFAKE", .secret_key = "fake-secret",
                          .session_token = "TOKEN/with+chars=", .path_style = -1, .retries = -1 };
    char ep[64], sha[65], want[128];
    cf_err e = { 0 };
    cf_store *st;

    CHECK(fake_start(&f));
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", f.port);     /* a trailing '/' is dropped */
    c.endpoint = ep;
    st = cf_store_open("s3://b/", &c, &e);
    CHECK(st != NULL);
    if (!st)
        return;
    CHECK(cf_store_put(st, "s3://b/d/k.json", "{\"a\":1}", 7, &e) == 0);
    cf_store_close(st);
    fake_stop(&f);
    cf_s3_sha256_hex("{\"a\":1}", 7, sha);
    snprintf(want, sizeof want, "\r\nx-amz-content-sha256: %s\r\n", sha);
    CHECK(strstr(f.head0, "PUT /b/d/k.json HTTP/1.1\r\n") == f.head0);
    CHECK(strstr(f.head0, want) != NULL);
    CHECK(strstr(f.head0, "\r\nx-amz-security-token: TOKEN/with+chars=\r\n") != NULL);
    CHECK(strstr(f.head0, "Credential=AKIDFAKE/") != NULL);
    CHECK(strstr(f.head0, "/eu-west-3/s3/aws4_request, SignedHeaders=content-type;host;"
                          "x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=") != NULL);
    CHECK(strstr(f.head0, "fake-secret") == NULL);
    CHECK(strcasestr(f.head0, "\r\nIf-None-Match") == NULL);
}

/* A server that ignores Range answers 200 with the whole object. */
static void s3_range_ignored(void)
{
    static const char whole[] = "200||0123456789";
    fake f = { .n = 2, .script = { whole, whole } };
    char ep[64], got[8] = "";
    cf_err e = { 0 };
    cf_store *st;

    CHECK(fake_start(&f));
    st = fake_store(&f, 0, ep, sizeof ep);
    CHECK(cf_store_get_range(st, "s3://b/k", 3, 4, got, &e) == 0);
    CHECK(!memcmp(got, "3456", 4));
    CHECK(cf_store_get_range(st, "s3://b/k", 8, 4, got, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_PARSE);
    cf_store_close(st);
    fake_stop(&f);
}

/* The multipart requests as S3 wants them (query encoding of the upload
 * id, part numbers, the Complete body) and a 200 carrying an <Error>,
 * which is retried. */
static void s3_multipart_requests(void)
{
    static const char created[] =
        "200||<InitiateMultipartUploadResult><UploadId>u+1/x=</UploadId></InitiateMultipartUploadResult>";
    static const char part1[] = "200|ETag: \"e1\"\r\n|", part2[] = "200|ETag: \"e2\"\r\n|";
    static const char err200[] = "200||<Error><Code>InternalError</Code><Message>Again</Message></Error>";
    static const char done[] = "200||<CompleteMultipartUploadResult></CompleteMultipartUploadResult>";
    fake f = { .n = 5, .script = { created, part1, part2, err200, done } };
    uint8_t *data = calloc(1, 5 * MiB + 1);
    char ep[64];
    cf_err e = { 0 };
    cf_store *st;
    cf_store_file *fl;

    if (!data)
        return;
    CHECK(fake_start(&f));
    st = fake_store(&f, 2, ep, sizeof ep);
    fl = cf_store_file_create(st, "s3://b/t/data/p a.parquet", &e);
    CHECK(fl != NULL);
    if (fl) {
        CHECK(cf_store_file_write(fl, data, 5 * MiB + 1, &e) == 0);
        CHECK(cf_store_file_finish(fl, &e) == 0);
    }
    cf_store_close(st);
    fake_stop(&f);
    CHECK_EQ_INT(f.served, 5);
    CHECK_EQ_STR(f.lines[0], "POST /b/t/data/p%20a.parquet?uploads= HTTP/1.1");
    CHECK_EQ_STR(f.lines[1], "PUT /b/t/data/p%20a.parquet?partNumber=1&uploadId=u%2B1%2Fx%3D HTTP/1.1");
    CHECK_EQ_STR(f.lines[2], "PUT /b/t/data/p%20a.parquet?partNumber=2&uploadId=u%2B1%2Fx%3D HTTP/1.1");
    CHECK_EQ_STR(f.lines[3], "POST /b/t/data/p%20a.parquet?uploadId=u%2B1%2Fx%3D HTTP/1.1");
    CHECK_EQ_STR(f.lines[4], f.lines[3]);
    free(data);
}

/* ---------------------------------------------------------------- S3 */

static void s3_battery(void)
{
    cf_store *st;

    if (!s3_up() || !(st = s3_open()))
        return;
    CHECK_EQ_STR(cf_store_name(st), "s3");
    battery(st, s3_root);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* s3a:// is the same bucket; listing returns the scheme it was given. */
static void s3a_scheme(void)
{
    char p[400], a[410], dir[400], *l;
    cf_err e = { 0 };
    cf_store *st;

    if (!s3_up() || !(st = s3_open()))
        return;
    snprintf(p, sizeof p, "%s/s3a/x.json", s3_root);
    snprintf(a, sizeof a, "s3a://%s", p + 5);
    snprintf(dir, sizeof dir, "s3a://%s/s3a", s3_root + 5);
    CHECK(cf_store_put(st, a, "1", 1, &e) == 0);
    CHECK(cf_store_exists(st, p));
    l = list_str(st, "", dir, 0);
    {
        char want[420];
        snprintf(want, sizeof want, "%s", a + 1);   /* list_str drops one leading byte for root "" */
        CHECK_EQ_STR(l, want);
    }
    free(l);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* Keys that need escaping: Delta partition values ("col=value", spaces,
 * percent-escapes of their own) and XML-special characters in listings. */
static void s3_escaped_keys(void)
{
    static const char *keys[] = {
        "t/city=New York/part-0.parquet",
        "t/note=a%20b%2Fc/part 1.parquet",
        "t/sym=a&b<c>'\"/x+y=z.parquet",
        "t/utf8=\xc3\xa9t\xc3\xa9/~tilde_.-.json",
        "t/sp  ace/semi;colon,comma@at$dollar!bang(paren)*star.json",
    };
    char p[600], dir[400], *l, want[2048] = "";
    cf_err e = { 0 };
    cf_store *st;
    cf_buf b;

    if (!s3_up() || !(st = s3_open()))
        return;
    cf_buf_init(&b, 0);
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        cf_store_stat s;
        snprintf(p, sizeof p, "%s/%s", s3_root, keys[i]);
        e = (cf_err){ 0 };
        CHECK(cf_store_put(st, p, keys[i], strlen(keys[i]), &e) == 0);
        if (e.code)
            fprintf(stderr, "  put %s: %s\n", keys[i], e.msg);
        CHECK(cf_store_head(st, p, &s, &e) == 0);
        CHECK_EQ_INT(s.size, (long long)strlen(keys[i]));
        cf_buf_reset(&b);
        CHECK(cf_store_get(st, p, &b, &e) == 0);
        CHECK(b.len == strlen(keys[i]) && !memcmp(b.data, keys[i], b.len));
        e = (cf_err){ 0 };
        CHECK(cf_store_put_if_absent(st, p, "x", 1, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    }
    /* sorted by strcmp, as list_str sorts */
    {
        const char *sorted[sizeof keys / sizeof *keys];
        memcpy(sorted, keys, sizeof keys);
        qsort(sorted, sizeof keys / sizeof *keys, sizeof *sorted, cmp_str);
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            if (i)
                strcat(want, ",");
            strcat(want, sorted[i]);
        }
    }
    snprintf(dir, sizeof dir, "%s/t", s3_root);
    l = list_str(st, s3_root, dir, 0);
    CHECK_EQ_STR(l, want);
    free(l);
    snprintf(dir, sizeof dir, "%s/t/city=New York", s3_root);      /* a prefix needing escapes */
    l = list_str(st, s3_root, dir, CF_STORE_FLAT);
    CHECK_EQ_STR(l, "t/city=New York/part-0.parquet");
    free(l);
    cf_buf_free(&b);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* ListObjectsV2 continuation across pages, recursive and flat. */
static void s3_list_pages(void)
{
    char p[400], dir[400];
    cf_err e = { 0 };
    cf_store *st;
    names nm = { .mtime_ok = true };

    if (!s3_up() || !(st = s3_open()))
        return;
    cf_s3_set_list_page(st, 7);
    for (int i = 0; i < 25; i++) {
        snprintf(p, sizeof p, "%s/pages/%s/f-%02d.json", s3_root, i % 5 == 0 ? "sub" : "top", i);
        CHECK(cf_store_put(st, p, "0123456789", 10, &e) == 0);
    }
    snprintf(dir, sizeof dir, "%s/pages", s3_root);
    nm.skip = strlen(dir) + 1;
    CHECK(cf_store_list(st, dir, 0, collect, &nm, &e) == 0);
    CHECK_EQ_INT(nm.n, 25);
    CHECK_EQ_INT(nm.size_sum, 250);
    CHECK(nm.mtime_ok);
    for (int i = 0; i < nm.n; i++)
        free(nm.v[i]);
    /* flat over 20 objects directly under top/: three pages */
    memset(&nm, 0, sizeof nm);
    nm.mtime_ok = true;
    snprintf(dir, sizeof dir, "%s/pages/top", s3_root);
    CHECK(cf_store_list(st, dir, CF_STORE_FLAT, collect, &nm, &e) == 0);
    CHECK_EQ_INT(nm.n, 20);
    for (int i = 0; i < nm.n; i++)
        free(nm.v[i]);
    /* flat over a dir holding only sub-dirs: pages of CommonPrefixes only */
    memset(&nm, 0, sizeof nm);
    snprintf(dir, sizeof dir, "%s/pages", s3_root);
    CHECK(cf_store_list(st, dir, CF_STORE_FLAT, collect, &nm, &e) == 0);
    CHECK_EQ_INT(nm.n, 0);
    /* a callback's stop ends the walk across pages */
    memset(&nm, 0, sizeof nm);
    nm.stop_after = 9;
    CHECK_EQ_INT(cf_store_list(st, dir, 0, collect, &nm, &e), 7);
    CHECK_EQ_INT(nm.n, 9);
    for (int i = 0; i < nm.n; i++)
        free(nm.v[i]);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* More than S3's default page of 1000 keys, without the hook. */
static void s3_list_over_1000(void)
{
    char p[400], dir[400];
    cf_err e = { 0 };
    cf_store *st;
    names nm = { 0 };
    int ok = 0;

    if (!s3_up() || !(st = s3_open()))
        return;
    for (int i = 0; i < 1005; i++) {
        snprintf(p, sizeof p, "%s/many/k%04d", s3_root, i);
        ok += cf_store_put(st, p, "", 0, &e) == 0;
    }
    CHECK_EQ_INT(ok, 1005);
    snprintf(dir, sizeof dir, "%s/many", s3_root);
    CHECK(cf_store_list(st, dir, CF_STORE_FLAT, collect, &nm, &e) == 0);
    CHECK_EQ_INT(nm.n, 1005);
    for (int i = 0; i < nm.n; i++)
        free(nm.v[i]);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* Streamed files past part_size go up as a multipart upload that appears
 * only at finish; a discarded one leaves nothing. */
static void s3_multipart(void)
{
    const size_t total = 12 * MiB + 12345;
    uint8_t *data = malloc(total), got[64];
    char p[400], q[400];
    cf_store_config c;
    cf_store_stat s;
    cf_store_file *f;
    cf_err e = { 0 };
    cf_store *st;
    cf_buf b;

    if (!data || !s3_up()) {
        free(data);
        return;
    }
    c = s3_cfg();
    c.part_size = 1;            /* below S3's minimum: taken as 5 MiB */
    st = cf_store_open(s3_root, &c, &e);
    CHECK(st != NULL);
    if (!st) {
        free(data);
        return;
    }
    fill(data, total, 42);
    snprintf(p, sizeof p, "%s/mp/big.parquet", s3_root);
    f = cf_store_file_create(st, p, &e);
    CHECK(f != NULL);
    if (f) {
        /* uneven writes across part boundaries */
        size_t off = 0, step = 777777;
        while (off < total) {
            size_t k = total - off < step ? total - off : step;
            CHECK(cf_store_file_write(f, data + off, k, &e) == 0);
            off += k;
            step = step * 3 % (3 * MiB) + 1;
        }
        CHECK_EQ_INT(cf_store_file_size(f), (long long)total);
        CHECK(!cf_store_exists(st, p));             /* two parts sent, nothing visible */
        e = (cf_err){ 0 };
        CHECK(cf_store_file_finish(f, &e) == 0);
        if (e.code)
            fprintf(stderr, "  finish: %s\n", e.msg);
    }
    CHECK(cf_store_head(st, p, &s, &e) == 0);
    CHECK_EQ_INT(s.size, (long long)total);
    cf_buf_init(&b, 0);
    CHECK(cf_store_get(st, p, &b, &e) == 0);
    CHECK(b.len == total && !memcmp(b.data, data, total));
    cf_buf_free(&b);
    CHECK(cf_store_get_range(st, p, 5 * MiB - 32, sizeof got, got, &e) == 0);
    CHECK(!memcmp(got, data + 5 * MiB - 32, sizeof got));

    snprintf(q, sizeof q, "%s/mp/discarded.parquet", s3_root);
    f = cf_store_file_create(st, q, &e);
    CHECK(f != NULL);
    if (f) {
        CHECK(cf_store_file_write(f, data, 6 * MiB, &e) == 0);      /* one part out */
        cf_store_file_discard(f);
    }
    CHECK(!cf_store_exists(st, q));
    free(data);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* Errors: wrong key id, wrong secret, a missing bucket, each one line
 * naming op, location, status and the server's code, never a secret. */
static void s3_errors(void)
{
    cf_store_config c;
    cf_store *st;
    cf_err e = { 0 };
    char p[400], nb[400], *dot;
    cf_buf b;

    if (!s3_up())
        return;
    snprintf(p, sizeof p, "%s/err/x.json", s3_root);
    c = s3_cfg();
    c.access_key = "AKIDNOTKNOWNHERE0000";
    st = cf_store_open(p, &c, &e);
    CHECK(st != NULL);
    if (st) {
        CHECK(cf_store_put(st, p, "x", 1, &e) == -1);
        CHECK_EQ_INT(e.code, CF_E_ARG);
        CHECK(e.fatal);
        CHECK(strstr(e.msg, "s3 PUT s3://") == e.msg);
        CHECK(strstr(e.msg, ": HTTP 403 InvalidAccessKeyId: ") != NULL);
        CHECK(strstr(e.msg, "AKIDNOTKNOWNHERE0000") == NULL);
        CHECK(strchr(e.msg, '\n') == NULL);
        printf("  wrong key id: %s\n", e.msg);
        CHECK(cf_store_head(st, p, NULL, &e) == -1);    /* HEAD has no body: still clear */
        CHECK_EQ_INT(e.code, CF_E_ARG);
        CHECK(strstr(e.msg, "HTTP 403") != NULL);
        printf("  wrong key id, HEAD: %s\n", e.msg);
        cf_store_close(st);
    }
    c = s3_cfg();
    c.secret_key = "not-the-secret-at-all";
    st = cf_store_open(p, &c, &e);
    if (st) {
        cf_buf_init(&b, 0);
        CHECK(cf_store_get(st, p, &b, &e) == -1);
        CHECK(strstr(e.msg, "HTTP 403 SignatureDoesNotMatch") != NULL);
        CHECK(strstr(e.msg, "not-the-secret") == NULL);
        cf_buf_free(&b);
        cf_store_close(st);
    }
    /* a missing bucket is an error even where a missing object is not */
    st = s3_open();
    if (!st)
        return;
    snprintf(nb, sizeof nb, "s3://no-such-bucket-cdcflow/t/_delta_log/0.json");
    CHECK(cf_store_head(st, nb, NULL, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    CHECK(strstr(e.msg, "NoSuchBucket") != NULL);
    printf("  missing bucket, HEAD: %s\n", e.msg);
    CHECK(cf_store_put(st, nb, "x", 1, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    CHECK(strstr(e.msg, "s3 PUT s3://no-such-bucket-cdcflow/t/_delta_log/0.json: HTTP 404 NoSuchBucket")
          == e.msg);
    printf("  missing bucket, PUT: %s\n", e.msg);
    CHECK(cf_store_delete(st, nb, &e) == -1);
    CHECK(strstr(e.msg, "NoSuchBucket") != NULL);
    dot = strrchr(nb, '/');
    *dot = '\0';
    CHECK(cf_store_list(st, nb, 0, collect, &(names){ 0 }, &e) == -1);
    CHECK(strstr(e.msg, "s3 LIST ") == e.msg && strstr(e.msg, "NoSuchBucket") != NULL);
    /* a missing key in an existing bucket stays NOTFOUND after the check */
    CHECK(cf_store_head(st, p, NULL, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    cf_buf_init(&b, 0);
    CHECK(cf_store_get(st, p, &b, &e) == -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    CHECK(strstr(e.msg, "NoSuchKey") != NULL);
    cf_buf_free(&b);
    cf_store_close(st);
}

/* Threads sharing one store (its handle is locked per request), and racing
 * put_if_absent from separate stores: exactly one writer wins. */
typedef struct race_arg {
    cf_store   *st;
    const char *path;
    int         id, rc, ok;
    cf_code     code;
} race_arg;

static void *race_put(void *a)
{
    race_arg *r = a;
    char body[32];
    cf_err e = { 0 };
    int n = snprintf(body, sizeof body, "writer %d", r->id);
    r->rc = cf_store_put_if_absent(r->st, r->path, body, (size_t)n, &e);
    r->code = e.code;
    return NULL;
}

static void *shared_rw(void *a)
{
    race_arg *r = a;
    char p[400], body[64];
    cf_err e = { 0 };
    cf_buf b;

    cf_buf_init(&b, 0);
    for (int i = 0; i < 20; i++) {
        int n = snprintf(body, sizeof body, "thread %d item %d", r->id, i);
        snprintf(p, sizeof p, "%s/%d-%d", r->path, r->id, i);
        cf_buf_reset(&b);
        if (cf_store_put(r->st, p, body, (size_t)n, &e) == 0 && cf_store_get(r->st, p, &b, &e) == 0 &&
            b.len == (size_t)n && !memcmp(b.data, body, b.len))
            r->ok++;
    }
    cf_buf_free(&b);
    return NULL;
}

static void s3_threads(void)
{
    enum { N = 4 };
    pthread_t t[N];
    race_arg ra[N];
    cf_store *own[N], *st;
    char p[400];
    int wins = 0, conflicts = 0;

    if (!s3_up() || !(st = s3_open()))
        return;
    snprintf(p, sizeof p, "%s/threads", s3_root);
    for (int i = 0; i < N; i++) {
        ra[i] = (race_arg){ .st = st, .path = p, .id = i };
        pthread_create(&t[i], NULL, shared_rw, &ra[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(ra[i].ok, 20);
    }
    snprintf(p, sizeof p, "%s/race/_delta_log/00000000000000000007.json", s3_root);
    for (int i = 0; i < N; i++) {
        own[i] = s3_open();
        ra[i] = (race_arg){ .st = own[i] ? own[i] : st, .path = p, .id = i };
    }
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, race_put, &ra[i]);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        wins += ra[i].rc == 0;
        conflicts += ra[i].rc == -1 && ra[i].code == CF_E_CONFLICT;
        cf_store_close(own[i]);
    }
    CHECK_EQ_INT(wins, 1);
    CHECK_EQ_INT(conflicts, N - 1);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

/* Figures, never asserted: a 64 MiB object to and from the server. */
static void s3_figures(void)
{
    const size_t n = 64 * MiB;
    uint8_t *data = malloc(n);
    char p[400], q[400];
    cf_err e = { 0 };
    cf_store *st;
    cf_store_file *f;
    cf_buf b;
    double t0, t1, t2, t3;

    if (!data || !s3_up() || !(st = s3_open())) {
        free(data);
        return;
    }
    fill(data, n, 7);
    snprintf(p, sizeof p, "%s/fig/single.bin", s3_root);
    snprintf(q, sizeof q, "%s/fig/multipart.bin", s3_root);
    t0 = now_s();
    CHECK(cf_store_put(st, p, data, n, &e) == 0);
    t1 = now_s();
    f = cf_store_file_create(st, q, &e);
    CHECK(f != NULL);
    if (f) {
        for (size_t off = 0; off < n; off += MiB)
            CHECK(cf_store_file_write(f, data + off, MiB, &e) == 0);
        CHECK(cf_store_file_finish(f, &e) == 0);
    }
    t2 = now_s();
    cf_buf_init(&b, 0);
    CHECK(cf_store_get(st, q, &b, &e) == 0);
    t3 = now_s();
    CHECK(b.len == n && !memcmp(b.data, data, n));
    printf("  figures: 64 MiB to %s: PUT %.0f MiB/s, multipart (8 MiB parts) %.0f MiB/s, GET %.0f MiB/s\n",
           s3_endpoint, 64 / (t1 - t0), 64 / (t2 - t1), 64 / (t3 - t2));
    cf_buf_free(&b);
    free(data);
    s3_cleanup(st, s3_root);
    cf_store_close(st);
}

CF_TEST_MAIN("store",
    T(local_battery), T(open_errors), T(open_copies_config),
    T(s3_sha256_vectors), T(s3_uri_encoding), T(s3_xml_text),
    T(s3_retries), T(s3_conditional_answers), T(s3_request_headers), T(s3_range_ignored),
    T(s3_multipart_requests),
    T(s3_battery), T(s3a_scheme), T(s3_escaped_keys), T(s3_list_pages), T(s3_list_over_1000),
    T(s3_multipart), T(s3_errors), T(s3_threads), T(s3_figures))
