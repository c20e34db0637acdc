/* s3.c - the store on S3 and S3-compatible servers: SigV4-signed requests
 * through libcurl, put-if-absent by conditional PUT, streamed files by
 * multipart upload.
 *
 * A store keeps a few libcurl easy handles (made as threads need them, up
 * to POOL), each reusing its connection; a request takes a free one for one
 * HTTP exchange, so threads sharing a store run side by side, and nothing
 * is held across a retry's sleep or a list callback.
 *
 * libcurl 7.88 signs what it is given, literally: the canonical URI is the
 * URL's path and the canonical query string is the URL's query as written,
 * so this file encodes keys and writes every query already sorted and
 * encoded.  Every header passed in CURLOPT_HTTPHEADER is signed, which is
 * why no empty "Expect:" is ever sent.  The payload hash is ours too
 * (x-amz-content-sha256), since libcurl 7.88 hashes only POSTFIELDS and
 * does not send the header. */
#include "store/s3_int.h"
#include "store/store_int.h"
#include "util/id.h"

#include <ctype.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MIN_PART      (5u << 20)       /* S3: every part but the last */
#define DEFAULT_PART  (8u << 20)
#define MAX_PARTS     10000
#define MAX_KEY       1024             /* S3's limit on key length */
#define ERR_BODY_CAP  (64u << 10)
#define XML_CAP       (64u << 20)      /* a ListObjectsV2 page is ~1 MB at most */
#define KNOWN_BUCKETS 8
#define POOL          8                /* easy handles (connections) per store */

static const char EMPTY_SHA256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

typedef struct s3_store {
    cf_store        base;
    char           *endpoint;      /* "http://host:port", no trailing '/'; NULL: AWS */
    char           *region;
    char           *access_key;
    char           *secret_key;
    char           *token;         /* NULL when none */
    char           *sigv4;         /* "aws:amz:<region>:s3" */
    int             path_style;
    int             retries;
    long            timeout_ms;
    size_t          part_size;
    int             list_page;     /* max-keys; 0: the server's default */
    pthread_mutex_t mu;            /* guards the pool and known */
    pthread_cond_t  freed;         /* a handle was given back */
    CURL           *pool[POOL];
    bool            busy[POOL];
    int             npool;
    char            known[KNOWN_BUCKETS][64];   /* buckets seen to exist */
    int             nknown;
} s3_store;

/* A location split: s3://bucket/key or s3a://bucket/key. */
typedef struct s3_loc {
    char        bucket[64];
    const char *key;               /* into the path; "" for the bucket itself */
} s3_loc;

typedef enum { SINK_NONE, SINK_BUF, SINK_RANGE } sink_kind;

/* One HTTP exchange, retried as a whole. */
typedef struct s3_req {
    const char *op;                /* for messages: "GET", "UploadPart", ... */
    const char *method;
    const char *path;              /* the caller's location, for messages */
    const s3_loc *loc;
    const char *query;             /* sorted and encoded, or NULL */
    const void *body;
    size_t      body_len;
    bool        if_none_match;
    char        range[64];         /* "bytes=a-b" or "" */
    bool        retry_409;         /* ConditionalRequestConflict is worth a retry */
    bool        check_200_body;    /* CompleteMultipartUpload: an <Error> may come with 200 */
    /* where a successful body goes */
    sink_kind   sink;
    cf_buf     *out;               /* SINK_BUF: appended (its cap applies) */
    size_t      out_base;          /* out->len before the first attempt */
    uint8_t    *dst;               /* SINK_RANGE */
    size_t      dst_n, dst_got;
    uint64_t    range_off;         /* SINK_RANGE: the first byte wanted */
    uint64_t    skip;              /* SINK_RANGE on a 200: bytes still to skip */
    /* results */
    CURL       *h;
    long        status;
    bool        status_known;
    bool        toobig;
    bool        ambiguous;         /* an earlier attempt may have been applied */
    int         attempts;
    cf_buf      ebody;             /* an error response's body (capped) */
    char        etag[128];
    int64_t     length;            /* Content-Length, -1 if none */
    int64_t     mtime_ms;          /* Last-Modified, -1 if none */
} s3_req;

typedef struct s3_file {
    cf_store_file base;
    s3_loc        loc;
    cf_buf        pend;            /* bytes not yet sent, < part_size */
    char         *upload_id;       /* NULL until the first part goes out */
    int           nparts;
    cf_buf        parts;           /* <Part> elements of CompleteMultipartUpload */
    bool          failed;
} s3_file;

/* ---------------------------------------------------------------- helpers */

/* not isalnum(3): the locale must not change what is encoded */
static bool isalnum_ascii(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void cf_s3_sha256_hex(const void *p, size_t n, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    if (!EVP_Digest(n ? p : "", n, md, &len, EVP_sha256(), NULL) || len != 32) {
        /* Only a broken libcrypto gets here; a wrong hash makes the server
         * refuse the request, which names the problem. */
        memset(out, '0', 64);
        out[64] = '\0';
        return;
    }
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int cf_s3_uri_encode(cf_buf *out, const char *s, size_t n, int keep_slash, cf_err *err)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum_ascii(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && keep_slash)) {
            if (cf_buf_putc(out, c, err))
                return -1;
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            if (cf_buf_append(out, e, 3, err))
                return -1;
        }
    }
    return 0;
}

long cf_s3_xml_unescape(const char *s, size_t n, char *out, size_t cap)
{
    static const struct { const char *name; char c; } named[] = {
        { "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
    };
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        char utf8[4];
        size_t ul = 0;

        if (s[i] != '&') {
            utf8[0] = s[i++];
            ul = 1;
        } else {
            const char *semi = memchr(s + i, ';', n - i);
            size_t el;
            if (!semi)
                return -1;
            el = (size_t)(semi - (s + i)) - 1;        /* between '&' and ';' */
            if (el >= 2 && s[i + 1] == '#') {
                unsigned long cp = 0;
                bool hexa = s[i + 2] == 'x' || s[i + 2] == 'X';
                size_t d = i + 2 + (hexa ? 1 : 0);
                if (d >= (size_t)(semi - s))
                    return -1;
                for (; d < (size_t)(semi - s); d++) {
                    int v = isdigit((unsigned char)s[d]) ? s[d] - '0'
                          : hexa && isxdigit((unsigned char)s[d]) ? tolower((unsigned char)s[d]) - 'a' + 10
                          : -1;
                    if (v < 0 || cp > 0x10FFFF)
                        return -1;
                    cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
                }
                if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                    return -1;
                if (cp < 0x80) {
                    utf8[ul++] = (char)cp;
                } else if (cp < 0x800) {
                    utf8[ul++] = (char)(0xC0 | (cp >> 6));
                    utf8[ul++] = (char)(0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    utf8[ul++] = (char)(0xE0 | (cp >> 12));
                    utf8[ul++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    utf8[ul++] = (char)(0x80 | (cp & 0x3F));
                } else {
                    utf8[ul++] = (char)(0xF0 | (cp >> 18));
                    utf8[ul++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    utf8[ul++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    utf8[ul++] = (char)(0x80 | (cp & 0x3F));
                }
            } else {
                size_t k;
                for (k = 0; k < sizeof named / sizeof *named; k++)
                    if (strlen(named[k].name) == el && !memcmp(s + i + 1, named[k].name, el))
                        break;
                if (k == sizeof named / sizeof *named)
                    return -1;
                utf8[ul++] = named[k].c;
            }
            i = (size_t)(semi - s) + 1;
        }
        if (o + ul >= cap)
            return -1;
        memcpy(out + o, utf8, ul);
        o += ul;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

/* The raw text of the first <tag>...</tag> in [p, end): *vs and *ve around it,
 * returns the position after the closing tag, NULL if there is none. */
static const char *xml_elem(const char *p, const char *end, const char *tag, const char **vs,
                            const char **ve)
{
    char open[40], close[41];
    size_t ol, cl;
    const char *a, *b;

    ol = (size_t)snprintf(open, sizeof open, "<%s>", tag);
    cl = (size_t)snprintf(close, sizeof close, "</%s>", tag);
    if (p >= end || !(a = memmem(p, (size_t)(end - p), open, ol)))
        return NULL;
    a += ol;
    if (!(b = memmem(a, (size_t)(end - a), close, cl)))
        return NULL;
    *vs = a;
    *ve = b;
    return b + cl;
}

/* The decoded text of the first <tag> in [p, end) into out; false if none
 * or it does not fit. */
static bool xml_text(const char *p, const char *end, const char *tag, char *out, size_t cap)
{
    const char *vs, *ve;
    return xml_elem(p, end, tag, &vs, &ve) && cf_s3_xml_unescape(vs, (size_t)(ve - vs), out, cap) >= 0;
}

/* "2024-05-01T12:34:56.789Z" -> ms since the epoch; -1 if malformed. */
static int64_t iso8601_ms(const char *s)
{
    struct tm tm = { 0 };
    int ms = 0, n = 0;

    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    if (s[n] == '.') {
        int scale = 100;
        for (n++; isdigit((unsigned char)s[n]); n++, scale /= 10)
            ms += (s[n] - '0') * scale;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)). */
static void backoff(int attempt)
{
    uint32_t r;
    long ceil_ms = 100L << (attempt < 6 ? attempt : 6);

    if (ceil_ms > 5000)
        ceil_ms = 5000;
    cf_random_bytes(&r, sizeof r);
    sleep_ms((long)(r % (uint32_t)ceil_ms));
}

/* Replace every copy of a secret in msg with "***": server messages are
 * quoted in errors, and no credential may reach a log through them. */
static void scrub(char *msg, const char *secret)
{
    size_t sl;
    char *p;

    if (!secret || (sl = strlen(secret)) < 4)
        return;
    while ((p = strstr(msg, secret))) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + sl, strlen(p + sl) + 1);
    }
}

/* Only what the server or libcurl said is scrubbed: the paths are ours,
 * and a short test key id may well be a bucket's name too. */
static void scrub_all(const s3_store *st, char *msg)
{
    scrub(msg, st->secret_key);
    scrub(msg, st->token);
    scrub(msg, st->access_key);
}

static int parse_loc(const char *path, s3_loc *loc, cf_err *err)
{
    const char *p, *slash;
    size_t bl;

    if (!strncmp(path, "s3://", 5))
        p = path + 5;
    else if (!strncmp(path, "s3a://", 6))
        p = path + 6;
    else
        return cf_err_set(err, CF_E_ARG, "%s: not an s3:// or s3a:// location", path);
    slash = strchr(p, '/');
    bl = slash ? (size_t)(slash - p) : strlen(p);
    if (bl == 0 || bl >= sizeof loc->bucket)
        return cf_err_set(err, CF_E_ARG, "%s: bucket name must be 1 to 63 characters", path);
    for (size_t i = 0; i < bl; i++)
        if (!isalnum_ascii((unsigned char)p[i]) && p[i] != '-' && p[i] != '.' && p[i] != '_')
            return cf_err_set(err, CF_E_ARG, "%s: bad character in bucket name", path);
    memcpy(loc->bucket, p, bl);
    loc->bucket[bl] = '\0';
    loc->key = slash ? slash + 1 : "";
    if (strlen(loc->key) > MAX_KEY)
        return cf_err_set(err, CF_E_ARG, "%s: key longer than S3's %d bytes", path, MAX_KEY);
    return 0;
}

/* The request URL: path-style (endpoint/bucket/key) or virtual-hosted
 * (bucket.host/key), the key encoded, the query appended as given. */
static int build_url(const s3_store *st, const s3_loc *loc, const char *query, cf_buf *url,
                     cf_err *err)
{
    const char *ep = st->endpoint;
    bool path_style = st->path_style == 1 || (st->path_style == -1 && ep) ||
                      (!ep && strchr(loc->bucket, '.'));   /* dots break the TLS wildcard */
    int rc;

    if (ep && !path_style) {
        const char *host = strstr(ep, "://");
        host = host ? host + 3 : ep;
        rc = cf_buf_printf(url, err, "%.*s%s.%s/", (int)(host - ep), ep, loc->bucket, host);
    } else if (ep) {
        rc = cf_buf_printf(url, err, "%s/%s%s", ep, loc->bucket, *loc->key ? "/" : "");
    } else if (path_style) {
        rc = cf_buf_printf(url, err, "https://s3.%s.amazonaws.com/%s%s", st->region, loc->bucket,
                           *loc->key ? "/" : "");
    } else {
        rc = cf_buf_printf(url, err, "https://%s.s3.%s.amazonaws.com/", loc->bucket, st->region);
    }
    if (rc || cf_s3_uri_encode(url, loc->key, strlen(loc->key), 1, err))
        return -1;
    if (query && *query && cf_buf_printf(url, err, "?%s", query))
        return -1;
    return cf_buf_cstr(url, err) ? 0 : -1;
}

/* ---------------------------------------------------------------- one request */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    s3_req *r = ud;
    size_t n = size * nmemb;

    if (!r->status_known) {
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
        r->status_known = true;
        /* a server that ignores Range sends the whole object with 200 */
        if (r->sink == SINK_RANGE && r->status == 200)
            r->skip = r->range_off;
    }
    if (r->status < 200 || r->status >= 300 || (r->check_200_body && r->sink == SINK_NONE)) {
        size_t room = ERR_BODY_CAP - r->ebody.len;
        cf_buf_append(&r->ebody, p, n < room ? n : room, NULL);
        return n;
    }
    if (r->sink == SINK_BUF) {
        if (cf_buf_append(r->out, p, n, NULL)) {
            r->toobig = true;
            return 0;                       /* aborts the transfer */
        }
    } else if (r->sink == SINK_RANGE) {
        size_t k = n;
        if (r->skip) {
            size_t s = r->skip < k ? (size_t)r->skip : k;
            p += s;
            k -= s;
            r->skip -= s;
        }
        if (k > r->dst_n - r->dst_got)
            k = r->dst_n - r->dst_got;      /* a 200 for a range: the rest is not wanted */
        memcpy(r->dst + r->dst_got, p, k);
        r->dst_got += k;
    }
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    s3_req *r = ud;
    size_t n = size * nmemb;

    if (n > 5 && !strncasecmp(p, "ETag:", 5)) {
        size_t i = 5, e = n;
        while (i < e && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
            e--;
        if (e - i < sizeof r->etag) {
            memcpy(r->etag, p + i, e - i);
            r->etag[e - i] = '\0';
        }
    }
    return n;
}

static bool curl_retriable(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* The S3 error Code of an error body ("" if none). */
static void err_code(const s3_req *r, char *code, size_t cap)
{
    const char *b = (const char *)r->ebody.data;
    code[0] = '\0';
    if (b && !xml_text(b, b + r->ebody.len, "Code", code, cap))
        code[0] = '\0';
}

static bool status_retriable(const s3_req *r)
{
    char code[64];

    if (r->status >= 500 || r->status == 429)
        return true;
    err_code(r, code, sizeof code);
    if (r->status == 400 && !strcmp(code, "RequestTimeout"))
        return true;
    if (r->status == 409 && r->retry_409 && !strcmp(code, "ConditionalRequestConflict"))
        return true;
    if (r->check_200_body && r->status == 200 && r->ebody.data &&
        memmem(r->ebody.data, r->ebody.len, "<Error>", 7))
        return true;                        /* 200 with an InternalError inside */
    return false;
}

static int setup(s3_store *st, CURL *h, s3_req *r, struct curl_slist **hdrs, cf_buf *url,
                 char *ebuf, cf_err *err)
{
    char sha[65], line[160];
    long total;

    cf_buf_reset(url);
    if (build_url(st, r->loc, r->query, url, err))
        return -1;
    if (r->body_len)
        cf_s3_sha256_hex(r->body, r->body_len, sha);
    else
        memcpy(sha, EMPTY_SHA256, sizeof sha);
    snprintf(line, sizeof line, "x-amz-content-sha256: %s", sha);
    if (!(*hdrs = curl_slist_append(*hdrs, line)))
        goto nomem;
    if (st->token) {
        char *t = malloc(strlen(st->token) + 32);
        struct curl_slist *n;
        if (!t)
            goto nomem;
        sprintf(t, "x-amz-security-token: %s", st->token);
        n = curl_slist_append(*hdrs, t);
        free(t);
        if (!n)
            goto nomem;
        *hdrs = n;
    }
    if (r->if_none_match && !(*hdrs = curl_slist_append(*hdrs, "If-None-Match: *")))
        goto nomem;
    if (r->range[0]) {
        snprintf(line, sizeof line, "Range: %s", r->range);
        if (!(*hdrs = curl_slist_append(*hdrs, line)))
            goto nomem;
    }
    if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
        /* POSTFIELDS would otherwise label the body as a form */
        const char *ct = r->body_len && !strcmp(r->method, "POST")
                       ? "Content-Type: application/xml"     /* CompleteMultipartUpload */
                       : "Content-Type: application/octet-stream";
        if (!(*hdrs = curl_slist_append(*hdrs, ct)))
            goto nomem;
    }

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, (const char *)url->data);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);     /* sign and send the key as it is */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, st->sigv4);
    curl_easy_setopt(h, CURLOPT_USERNAME, st->access_key);
    curl_easy_setopt(h, CURLOPT_PASSWORD, st->secret_key);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_FILETIME, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, st->timeout_ms);
    /* timeout_ms, plus a second per MiB of body at a floor of 1 MiB/s;
     * downloads of unknown size are bounded by the stall limit instead. */
    total = st->timeout_ms + (long)(r->body_len >> 20) * 1000 +
            (r->sink == SINK_RANGE ? (long)(r->dst_n >> 20) * 1000 : 0);
    if (r->sink != SINK_BUF)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (st->timeout_ms + 999) / 1000);
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body_len ? r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return 0;
nomem:
    return cf_err_set(err, CF_E_NOMEM, "out of memory");
}

/* A free easy handle (its slot in *slot), made if there are fewer than
 * POOL, else the next one given back.  NULL if libcurl cannot make one. */
static CURL *take(s3_store *st, int *slot)
{
    CURL *h = NULL;

    pthread_mutex_lock(&st->mu);
    for (;;) {
        for (int i = 0; i < st->npool && !h; i++)
            if (!st->busy[i]) {
                h = st->pool[i];
                *slot = i;
            }
        if (!h && st->npool < POOL && (h = curl_easy_init())) {
            *slot = st->npool;
            st->pool[st->npool++] = h;
        }
        if (h || st->npool == 0)
            break;
        pthread_cond_wait(&st->freed, &st->mu);
    }
    if (h)
        st->busy[*slot] = true;
    pthread_mutex_unlock(&st->mu);
    return h;
}

static void give(s3_store *st, int slot)
{
    pthread_mutex_lock(&st->mu);
    st->busy[slot] = false;
    pthread_cond_signal(&st->freed);
    pthread_mutex_unlock(&st->mu);
}

/* Run r with retries.  0 when the server answered (r->status, r->ebody
 * filled; the caller decides what the status means), -1 with *err when
 * no answer came (connection errors, timeouts, a body over its cap). */
static int perform(s3_store *st, s3_req *r, cf_err *err)
{
    char ebuf[CURL_ERROR_SIZE];
    cf_buf url;
    CURLcode c = CURLE_OK;

    cf_buf_init(&url, 0);
    cf_buf_init(&r->ebody, ERR_BODY_CAP + 1);
    if (r->sink == SINK_BUF)
        r->out_base = r->out->len;
    for (r->attempts = 0;; r->attempts++) {
        struct curl_slist *hdrs = NULL;
        curl_off_t len = -1, ft = -1;
        int slot = 0;

        if (r->attempts > 0) {
            backoff(r->attempts - 1);
        }
        if (r->sink == SINK_BUF)
            r->out->len = r->out_base;
        r->dst_got = 0;
        r->skip = 0;
        r->status = 0;
        r->status_known = false;
        r->toobig = false;
        r->etag[0] = '\0';
        cf_buf_reset(&r->ebody);
        ebuf[0] = '\0';

        if (!(r->h = take(st, &slot))) {
            cf_buf_free(&url);
            return cf_err_set(err, CF_E_NOMEM, "s3 %s %s: libcurl could not make a handle", r->op,
                              r->path);
        }
        if (setup(st, r->h, r, &hdrs, &url, ebuf, err)) {
            give(st, slot);
            curl_slist_free_all(hdrs);
            cf_buf_free(&url);
            return -1;
        }
        c = curl_easy_perform(r->h);
        if (c == CURLE_OK || c == CURLE_WRITE_ERROR) {
            curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
            curl_easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len);
            curl_easy_getinfo(r->h, CURLINFO_FILETIME_T, &ft);
        }
        curl_easy_setopt(r->h, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt(r->h, CURLOPT_ERRORBUFFER, NULL);
        give(st, slot);
        r->h = NULL;
        curl_slist_free_all(hdrs);

        r->length = len;
        r->mtime_ms = ft >= 0 ? (int64_t)ft * 1000 : -1;
        if (r->toobig) {
            cf_buf_free(&url);
            return cf_err_set(err, CF_E_TOOBIG, "s3 %s %s: larger than %zu bytes", r->op, r->path,
                              r->out->cap);
        }
        if (c != CURLE_OK) {
            if (curl_retriable(c) && r->attempts < st->retries) {
                /* past connecting, the request may have reached the server */
                r->ambiguous = r->ambiguous ||
                               (c != CURLE_COULDNT_RESOLVE_HOST && c != CURLE_COULDNT_CONNECT);
                continue;
            }
            cf_buf_free(&url);
            if (!ebuf[0])
                snprintf(ebuf, sizeof ebuf, "%s", curl_easy_strerror(c));
            scrub_all(st, ebuf);
            cf_err_set(err, CF_E_IO, "s3 %s %s: %s (%d attempt%s)", r->op, r->path, ebuf,
                       r->attempts + 1, r->attempts ? "s" : "");
            if (err)
                err->retriable = curl_retriable(c);
            return -1;
        }
        if (status_retriable(r) && r->attempts < st->retries) {
            r->ambiguous = r->ambiguous || r->status >= 500 || r->check_200_body;
            continue;
        }
        break;
    }
    cf_buf_free(&url);
    return 0;
}

/* The error for a response the caller does not accept: one line with the
 * op, the location, the status and the server's Code and Message. */
static int http_fail(s3_store *st, const s3_req *r, cf_err *err)
{
    char code[128] = "", msg[300] = "";
    const char *b = (const char *)r->ebody.data;
    cf_code cc = CF_E_HTTP;
    bool fatal = false, retriable = false;

    if (b) {
        xml_text(b, b + r->ebody.len, "Code", code, sizeof code);
        xml_text(b, b + r->ebody.len, "Message", msg, sizeof msg);
        scrub_all(st, code);
        scrub_all(st, msg);
    }
    if (!code[0] && r->status == 404 && !strcmp(r->method, "HEAD"))
        snprintf(code, sizeof code, "NotFound");
    if (!code[0] && !b && !strcmp(r->method, "HEAD") && (r->status == 403 || r->status == 400))
        snprintf(code, sizeof code, "(a HEAD response has no error body: check the credentials, "
                 "region and permissions)");
    if (!strcmp(code, "NoSuchBucket")) {
        cc = CF_E_ARG;
        fatal = true;
        if (!msg[0])
            snprintf(msg, sizeof msg, "The specified bucket does not exist");
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), " (bucket %s)", r->loc->bucket);
    } else if (r->status == 404) {
        cc = CF_E_NOTFOUND;
    } else if (r->status == 401 || r->status == 403) {
        cc = CF_E_ARG;
        fatal = true;
    } else if (r->status == 412 || r->status == 409) {
        cc = CF_E_CONFLICT;
        retriable = true;
    } else if (r->status >= 500 || r->status == 429 || !strcmp(code, "RequestTimeout")) {
        cc = CF_E_IO;
        retriable = true;
    }
    cf_err_set(err, cc, "s3 %s %s: HTTP %ld%s%s%s%s%s", r->op, r->path, r->status,
               code[0] ? " " : "", code, msg[0] ? ": " : "", msg,
               r->attempts ? " (after retries)" : "");
    if (err) {
        err->fatal = fatal || cf_code_fatal(cc);
        err->retriable = retriable;
    }
    return -1;
}

static void req_init(s3_req *r, const char *op, const char *method, const char *path,
                     const s3_loc *loc)
{
    memset(r, 0, sizeof *r);
    r->op = op;
    r->method = method;
    r->path = path;
    r->loc = loc;
    r->length = -1;
    r->mtime_ms = -1;
}

static void req_done(s3_req *r)
{
    cf_buf_free(&r->ebody);
}

/* ---------------------------------------------------------------- object ops */

static bool bucket_known(s3_store *st, const char *bucket)
{
    bool k = false;
    pthread_mutex_lock(&st->mu);
    for (int i = 0; i < st->nknown && !k; i++)
        k = !strcmp(st->known[i], bucket);
    pthread_mutex_unlock(&st->mu);
    return k;
}

static void bucket_remember(s3_store *st, const char *bucket)
{
    pthread_mutex_lock(&st->mu);
    if (st->nknown < KNOWN_BUCKETS)
        snprintf(st->known[st->nknown++], sizeof st->known[0], "%s", bucket);
    pthread_mutex_unlock(&st->mu);
}

/* A HEAD 404 does not say whether the key or the bucket is missing: ask
 * about the bucket once, so that a wrong bucket is an error, not an empty
 * table. */
static int check_bucket(s3_store *st, const char *path, const s3_loc *loc, cf_err *err)
{
    s3_loc bl = *loc;
    char where[128];
    s3_req r;
    int rc = 0;

    if (bucket_known(st, loc->bucket))
        return 0;
    bl.key = "";
    snprintf(where, sizeof where, "s3://%s", loc->bucket);
    req_init(&r, "HEAD", "HEAD", where, &bl);
    if (perform(st, &r, err)) {
        req_done(&r);
        return cf_err_wrap(err, "%s", path);
    }
    if (r.status == 404 || r.status == 301) {
        rc = cf_err_set(err, CF_E_ARG, "s3 HEAD %s: HTTP %ld NoSuchBucket: bucket %s %s", path,
                        r.status, loc->bucket, r.status == 404 ? "does not exist"
                        : "is in another region (set AWS_REGION)");
        if (err)
            err->fatal = true;
    } else {
        bucket_remember(st, loc->bucket);
    }
    req_done(&r);
    return rc;
}

static int s_head(cf_store *base, const char *path, cf_store_stat *out, cf_err *err)
{
    s3_store *st = (s3_store *)base;
    s3_loc loc;
    s3_req r;
    int rc = 0;

    if (parse_loc(path, &loc, err))
        return -1;
    if (!*loc.key)
        return cf_err_set(err, CF_E_NOTFOUND, "%s: a bucket is not an object", path);
    req_init(&r, "HEAD", "HEAD", path, &loc);
    if (perform(st, &r, err)) {
        req_done(&r);
        return -1;
    }
    if (r.status == 200) {
        out->size = r.length >= 0 ? r.length : 0;
        out->mtime_ms = r.mtime_ms >= 0 ? r.mtime_ms : 0;
        bucket_remember(st, loc.bucket);
    } else if (r.status == 404) {
        rc = check_bucket(st, path, &loc, err) ? -1
           : cf_err_set(err, CF_E_NOTFOUND, "s3 HEAD %s: no such object", path);
    } else {
        rc = http_fail(st, &r, err);
    }
    req_done(&r);
    return rc;
}

static int s_get(cf_store *base, const char *path, cf_buf *out, cf_err *err)
{
    s3_store *st = (s3_store *)base;
    s3_loc loc;
    s3_req r;
    int rc = 0;

    if (parse_loc(path, &loc, err))
        return -1;
    req_init(&r, "GET", "GET", path, &loc);
    r.sink = SINK_BUF;
    r.out = out;
    if (perform(st, &r, err)) {
        req_done(&r);
        return -1;
    }
    if (r.status != 200) {
        out->len = r.out_base;
        rc = http_fail(st, &r, err);
    }
    req_done(&r);
    return rc;
}

static int s_get_range(cf_store *base, const char *path, uint64_t off, size_t n, void *dst,
                       cf_err *err)
{
    s3_store *st = (s3_store *)base;
    s3_loc loc;
    s3_req r;
    int rc = 0;

    if (parse_loc(path, &loc, err))
        return -1;
    req_init(&r, "GET", "GET", path, &loc);
    snprintf(r.range, sizeof r.range, "bytes=%llu-%llu", (unsigned long long)off,
             (unsigned long long)(off + n - 1));
    r.sink = SINK_RANGE;
    r.dst = dst;
    r.dst_n = n;
    r.range_off = off;
    if (perform(st, &r, err)) {
        req_done(&r);
        return -1;
    }
    if (r.status == 416 || ((r.status == 206 || r.status == 200) && r.dst_got < n))
        rc = cf_err_set(err, CF_E_PARSE, "s3 GET %s: shorter than %llu bytes", path,
                        (unsigned long long)(off + n));
    else if (r.status != 206 && r.status != 200)
        rc = http_fail(st, &r, err);
    req_done(&r);
    return rc;
}

/* After a lost answer and a 412, the object there may be ours: the first
 * attempt was applied and its reply lost.  Same bytes count as ours (a
 * commit file names its writer's transaction, so another writer's bytes
 * are never identical). */
static bool is_ours(s3_store *st, const char *path, const void *p, size_t n)
{
    cf_buf got;
    bool same;

    cf_buf_init(&got, n + 1);
    same = s_get(&st->base, path, &got, NULL) == 0 && got.len == n && (n == 0 || !memcmp(got.data, p, n));
    cf_buf_free(&got);
    return same;
}

static int s_put(cf_store *base, const char *path, const void *p, size_t n, bool if_absent,
                 int64_t mtime_ms, cf_err *err)
{
    s3_store *st = (s3_store *)base;
    s3_loc loc;
    s3_req r;
    int rc = 0;

    (void)mtime_ms;                 /* S3 keeps its own time */
    if (parse_loc(path, &loc, err))
        return -1;
    if (!*loc.key)
        return cf_err_set(err, CF_E_ARG, "%s: no key to write", path);
    req_init(&r, "PUT", "PUT", path, &loc);
    r.body = p;
    r.body_len = n;
    r.if_none_match = if_absent;
    r.retry_409 = if_absent;
    if (perform(st, &r, err)) {
        req_done(&r);
        return -1;
    }
    if (r.status == 200) {
        bucket_remember(st, loc.bucket);
    } else if (if_absent && r.status == 412) {
        if (!(r.ambiguous && is_ours(st, path, p, n))) {
            cf_err_set(err, CF_E_CONFLICT, "%s was written by another writer", path);
            if (err)
                err->retriable = true;
            rc = -1;
        }
    } else if (if_absent && r.status == 409) {
        cf_err_set(err, CF_E_CONFLICT, "%s: another writer's conditional write of it is in "
                   "progress (HTTP 409 ConditionalRequestConflict)", path);
        if (err)
            err->retriable = true;
        rc = -1;
    } else {
        rc = http_fail(st, &r, err);
    }
    req_done(&r);
    return rc;
}

static int s_del(cf_store *base, const char *path, cf_err *err)
{
    s3_store *st = (s3_store *)base;
    char code[64];
    s3_loc loc;
    s3_req r;
    int rc = 0;

    if (parse_loc(path, &loc, err))
        return -1;
    if (!*loc.key)
        return cf_err_set(err, CF_E_ARG, "%s: no key to delete", path);
    req_init(&r, "DELETE", "DELETE", path, &loc);
    if (perform(st, &r, err)) {
        req_done(&r);
        return -1;
    }
    err_code(&r, code, sizeof code);
    if (!(r.status == 204 || r.status == 200 || (r.status == 404 && strcmp(code, "NoSuchBucket"))))
        rc = http_fail(st, &r, err);
    req_done(&r);
    return rc;
}

/* ---------------------------------------------------------------- listing */

static int list_page(s3_store *st, const char *dir, const s3_loc *loc, int flags,
                     cf_store_list_fn fn, void *ctx, const char *prefix, size_t scheme_len,
                     cf_buf *token, bool *more, cf_err *err)
{
    cf_buf q, xml;
    s3_req r;
    int rc = 0;
    char keybuf[MAX_KEY * 4 + 8], sz[32], lm[64], trunc[8];
    cf_buf path;

    cf_buf_init(&q, 0);
    cf_buf_init(&xml, XML_CAP);
    cf_buf_init(&path, 0);
    *more = false;
    /* parameters in byte order: libcurl signs the query as written */
    if (token->len) {
        if (cf_buf_printf(&q, err, "continuation-token=") ||
            cf_s3_uri_encode(&q, (const char *)token->data, token->len, 0, err))
            goto fail;
        cf_buf_putc(&q, '&', NULL);
    }
    if ((flags & CF_STORE_FLAT) && cf_buf_printf(&q, err, "delimiter=%%2F&"))
        goto fail;
    if (cf_buf_printf(&q, err, "list-type=2&"))
        goto fail;
    if (st->list_page > 0 && cf_buf_printf(&q, err, "max-keys=%d&", st->list_page))
        goto fail;
    if (cf_buf_printf(&q, err, "prefix=") || cf_s3_uri_encode(&q, prefix, strlen(prefix), 0, err) ||
        !cf_buf_cstr(&q, err))
        goto fail;

    {
        s3_loc bl = *loc;
        bl.key = "";
        req_init(&r, "LIST", "GET", dir, &bl);
        r.query = (const char *)q.data;
        r.sink = SINK_BUF;
        r.out = &xml;
        if (perform(st, &r, err)) {
            req_done(&r);
            goto fail;
        }
        if (r.status != 200) {
            rc = http_fail(st, &r, err);
            req_done(&r);
            goto out;
        }
        req_done(&r);
    }
    bucket_remember(st, loc->bucket);

    {
        const char *p = (const char *)xml.data, *end = p + xml.len, *cs, *ce;
        const char *pstart = p;
        cf_buf_reset(token);
        if (p && xml_text(p, end, "IsTruncated", trunc, sizeof trunc) && !strcmp(trunc, "true")) {
            const char *vs, *ve;
            char tok[2048];
            long tl;
            if (!xml_elem(p, end, "NextContinuationToken", &vs, &ve) ||
                (tl = cf_s3_xml_unescape(vs, (size_t)(ve - vs), tok, sizeof tok)) <= 0) {
                rc = cf_err_set(err, CF_E_PARSE, "s3 LIST %s: a truncated page without a "
                                "NextContinuationToken", dir);
                goto out;
            }
            if (cf_buf_append(token, tok, (size_t)tl, err))
                goto fail;
            *more = true;
        }
        while (p && rc == 0 && (p = xml_elem(p, end, "Contents", &cs, &ce))) {
            cf_store_stat s = { 0 };
            long kl;
            const char *vs, *ve;

            if (!xml_elem(cs, ce, "Key", &vs, &ve) ||
                (kl = cf_s3_xml_unescape(vs, (size_t)(ve - vs), keybuf, sizeof keybuf)) < 0) {
                rc = cf_err_set(err, CF_E_PARSE, "s3 LIST %s: an entry without a readable <Key>",
                                dir);
                break;
            }
            if (kl == 0 || keybuf[kl - 1] == '/')
                continue;                   /* "directory" markers are not objects */
            if (xml_text(cs, ce, "Size", sz, sizeof sz))
                s.size = strtoll(sz, NULL, 10);
            if (xml_text(cs, ce, "LastModified", lm, sizeof lm))
                s.mtime_ms = iso8601_ms(lm);
            cf_buf_reset(&path);
            if (cf_buf_printf(&path, err, "%.*s%s/%s", (int)scheme_len, dir, loc->bucket, keybuf) ||
                !cf_buf_cstr(&path, err))
                goto fail;
            rc = fn(ctx, (const char *)path.data, &s);
            if (rc)
                *more = false;
        }
        /* sub-directories: the common prefixes of a delimited listing */
        p = pstart;
        while ((flags & CF_STORE_DIRS) && p && rc == 0 &&
               (p = xml_elem(p, end, "CommonPrefixes", &cs, &ce))) {
            cf_store_stat s = { .size = -1, .mtime_ms = -1 };
            long kl;
            const char *vs, *ve;

            if (!xml_elem(cs, ce, "Prefix", &vs, &ve) ||
                (kl = cf_s3_xml_unescape(vs, (size_t)(ve - vs), keybuf, sizeof keybuf)) <= 0)
                continue;
            cf_buf_reset(&path);
            if (cf_buf_printf(&path, err, "%.*s%s/%s", (int)scheme_len, dir, loc->bucket, keybuf) ||
                !cf_buf_cstr(&path, err))
                goto fail;
            rc = fn(ctx, (const char *)path.data, &s);
            if (rc)
                *more = false;
        }
    }
out:
    cf_buf_free(&q);
    cf_buf_free(&xml);
    cf_buf_free(&path);
    return rc;
fail:
    rc = -1;
    goto out;
}

static int s_list(cf_store *base, const char *dir, int flags, cf_store_list_fn fn, void *ctx,
                  cf_err *err)
{
    s3_store *st = (s3_store *)base;
    size_t scheme_len = !strncmp(dir, "s3a://", 6) ? 6 : 5;
    char prefix[MAX_KEY + 2];
    cf_buf token;
    bool more = true;
    s3_loc loc;
    int rc = 0;
    size_t kl;

    if (parse_loc(dir, &loc, err))
        return -1;
    kl = strlen(loc.key);
    while (kl && loc.key[kl - 1] == '/')
        kl--;
    snprintf(prefix, sizeof prefix, "%.*s%s", (int)kl, loc.key, kl ? "/" : "");
    cf_buf_init(&token, 0);
    while (rc == 0 && more)
        rc = list_page(st, dir, &loc, flags, fn, ctx, prefix, scheme_len, &token, &more, err);
    cf_buf_free(&token);
    return rc;
}

static int s_sync(cf_store *st, const char *root, char *const *paths, size_t n, cf_err *err)
{
    (void)st; (void)root; (void)paths; (void)n; (void)err;
    return 0;                       /* a PUT is durable when it returns */
}

/* ---------------------------------------------------------------- multipart */

static int mp_create(s3_store *st, s3_file *f, cf_err *err)
{
    char id[1024];
    s3_req r;
    cf_buf xml;
    int rc = 0;

    cf_buf_init(&xml, 1u << 20);
    req_init(&r, "CreateMultipartUpload", "POST", f->base.path, &f->loc);
    r.query = "uploads=";
    r.sink = SINK_BUF;
    r.out = &xml;
    if (perform(st, &r, err))
        rc = -1;
    else if (r.status != 200)
        rc = http_fail(st, &r, err);
    else if (!xml.data || !xml_text((const char *)xml.data, (const char *)xml.data + xml.len,
                                     "UploadId", id, sizeof id) || !id[0])
        rc = cf_err_set(err, CF_E_PARSE, "s3 CreateMultipartUpload %s: no UploadId in the reply",
                        f->base.path);
    else if (!(f->upload_id = strdup(id)))
        rc = cf_err_set(err, CF_E_NOMEM, "out of memory");
    req_done(&r);
    cf_buf_free(&xml);
    return rc;
}

static int upload_query(cf_buf *q, const char *upload_id, int part, cf_err *err)
{
    cf_buf_reset(q);
    if (part > 0 && cf_buf_printf(q, err, "partNumber=%d&", part))
        return -1;
    if (cf_buf_printf(q, err, "uploadId=") ||
        cf_s3_uri_encode(q, upload_id, strlen(upload_id), 0, err) || !cf_buf_cstr(q, err))
        return -1;
    return 0;
}

static int mp_part(s3_store *st, s3_file *f, cf_err *err)
{
    s3_req r;
    cf_buf q;
    int rc = 0, part = f->nparts + 1;

    if (part > MAX_PARTS)
        return cf_err_set(err, CF_E_TOOBIG, "%s: more than %d parts of %zu bytes", f->base.path,
                          MAX_PARTS, st->part_size);
    cf_buf_init(&q, 0);
    if (upload_query(&q, f->upload_id, part, err)) {
        cf_buf_free(&q);
        return -1;
    }
    req_init(&r, "UploadPart", "PUT", f->base.path, &f->loc);
    r.query = (const char *)q.data;
    r.body = f->pend.data;
    r.body_len = f->pend.len;
    if (perform(st, &r, err))
        rc = -1;
    else if (r.status != 200)
        rc = http_fail(st, &r, err);
    else if (!r.etag[0])
        rc = cf_err_set(err, CF_E_PARSE, "s3 UploadPart %s: no ETag in the reply", f->base.path);
    else if (cf_buf_printf(&f->parts, err, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                           part, r.etag))
        rc = -1;
    if (rc == 0) {
        f->nparts = part;
        cf_buf_reset(&f->pend);
    }
    req_done(&r);
    cf_buf_free(&q);
    return rc;
}

static int mp_complete(s3_store *st, s3_file *f, cf_err *err)
{
    cf_buf q, body;
    s3_req r;
    int rc = 0;

    cf_buf_init(&q, 0);
    cf_buf_init(&body, 0);
    if (upload_query(&q, f->upload_id, 0, err) ||
        cf_buf_printf(&body, err, "<CompleteMultipartUpload>%.*s</CompleteMultipartUpload>",
                      (int)f->parts.len, f->parts.data ? (const char *)f->parts.data : "")) {
        rc = -1;
        goto out;
    }
    req_init(&r, "CompleteMultipartUpload", "POST", f->base.path, &f->loc);
    r.query = (const char *)q.data;
    r.body = body.data;
    r.body_len = body.len;
    r.check_200_body = true;
    if (perform(st, &r, err)) {
        rc = -1;
    } else if (r.status == 200 && !(r.ebody.data && memmem(r.ebody.data, r.ebody.len, "<Error>", 7))) {
        rc = 0;
    } else {
        char code[64];
        cf_store_stat s;
        err_code(&r, code, sizeof code);
        /* a retried Complete whose first try was applied finds no upload */
        if (r.ambiguous && !strcmp(code, "NoSuchUpload") &&
            s_head(&st->base, f->base.path, &s, NULL) == 0 && s.size == f->base.size)
            rc = 0;
        else
            rc = http_fail(st, &r, err);
    }
    req_done(&r);
out:
    cf_buf_free(&q);
    cf_buf_free(&body);
    return rc;
}

static void mp_abort(s3_store *st, s3_file *f)
{
    s3_req r;
    cf_buf q;

    if (!f->upload_id)
        return;
    cf_buf_init(&q, 0);
    if (upload_query(&q, f->upload_id, 0, NULL) == 0) {
        req_init(&r, "AbortMultipartUpload", "DELETE", f->base.path, &f->loc);
        r.query = (const char *)q.data;
        perform(st, &r, NULL);       /* best effort: a bucket lifecycle rule cleans the rest */
        req_done(&r);
    }
    cf_buf_free(&q);
    free(f->upload_id);
    f->upload_id = NULL;
}

/* Data files get unique (uuid) names, so the object needs no exclusive
 * create: it appears whole at finish, by one PUT or CompleteMultipartUpload,
 * and nothing names it before its commit. */
static cf_store_file *s_create(cf_store *base, const char *path, cf_err *err)
{
    s3_file *f = calloc(1, sizeof *f);

    if (!f || !(f->base.path = strdup(path))) {
        free(f);
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    }
    f->base.st = base;
    if (parse_loc(f->base.path, &f->loc, err) || (!*f->loc.key &&
        cf_err_set(err, CF_E_ARG, "%s: no key to write", path))) {
        free(f->base.path);
        free(f);
        return NULL;
    }
    cf_buf_init(&f->pend, 0);
    cf_buf_init(&f->parts, 0);
    return &f->base;
}

static int s_write(cf_store_file *fb, const void *p, size_t n, cf_err *err)
{
    s3_file *f = (s3_file *)fb;
    s3_store *st = (s3_store *)fb->st;
    const uint8_t *b = p;

    if (f->failed)
        return cf_err_set(err, CF_E_IO, "%s: an earlier write failed", fb->path);
    while (n) {
        size_t room = st->part_size - f->pend.len, k = n < room ? n : room;
        if (cf_buf_append(&f->pend, b, k, err))
            goto fail;
        b += k;
        n -= k;
        if (f->pend.len == st->part_size) {
            if ((!f->upload_id && mp_create(st, f, err)) || mp_part(st, f, err))
                goto fail;
        }
    }
    return 0;
fail:
    f->failed = true;
    mp_abort(st, f);
    return -1;
}

static void file_free(s3_file *f)
{
    cf_buf_free(&f->pend);
    cf_buf_free(&f->parts);
    free(f->upload_id);
    free(f->base.path);
    free(f);
}

static int s_finish(cf_store_file *fb, cf_err *err)
{
    s3_file *f = (s3_file *)fb;
    s3_store *st = (s3_store *)fb->st;
    int rc;

    if (f->failed) {
        rc = cf_err_set(err, CF_E_IO, "%s: an earlier write failed", fb->path);
    } else if (!f->upload_id) {
        rc = s_put(fb->st, fb->path, f->pend.data, f->pend.len, false, -1, err);
    } else {
        rc = (f->pend.len && mp_part(st, f, err)) || mp_complete(st, f, err) ? -1 : 0;
        if (rc)
            mp_abort(st, f);
    }
    file_free(f);
    return rc;
}

static void s_discard(cf_store_file *fb)
{
    s3_file *f = (s3_file *)fb;
    mp_abort((s3_store *)fb->st, f);
    file_free(f);
}

/* ---------------------------------------------------------------- the store */

static void s_close(cf_store *base)
{
    s3_store *st = (s3_store *)base;

    for (int i = 0; i < st->npool; i++)
        curl_easy_cleanup(st->pool[i]);
    pthread_cond_destroy(&st->freed);
    pthread_mutex_destroy(&st->mu);
    free(st->endpoint);
    free(st->region);
    free(st->access_key);
    if (st->secret_key) {
        /* not left behind in freed memory */
        volatile char *s = st->secret_key;
        while (*s)
            *s++ = 0;
    }
    free(st->secret_key);
    free(st->token);
    free(st->sigv4);
    free(st);
}

static const cf_store_ops s3_ops = {
    .name = "s3",
    .head = s_head,
    .get = s_get,
    .get_range = s_get_range,
    .put = s_put,
    .del = s_del,
    .list = s_list,
    .sync = s_sync,
    .create = s_create,
    .write = s_write,
    .finish = s_finish,
    .discard = s_discard,
    .close = s_close,
};

void cf_s3_set_list_page(cf_store *st, int n)
{
    if (st && st->ops == &s3_ops)
        ((s3_store *)st)->list_page = n > 0 && n <= 1000 ? n : 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *dup_or_null(const char *s, bool *oom)
{
    char *d;
    if (!s || !*s)
        return NULL;
    if (!(d = strdup(s)))
        *oom = true;
    return d;
}

cf_store *cf_store_s3_open(const cf_store_config *cfg, cf_err *err)
{
    cf_store_config env;
    s3_store *st;
    bool oom = false;
    size_t n;

    if (!cfg) {
        cf_store_config_from_env(&env);
        cfg = &env;
    }
    if (!cfg->access_key || !*cfg->access_key || !cfg->secret_key || !*cfg->secret_key)
        return cf_err_set(err, CF_E_ARG, "s3: no credentials: set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY"), NULL;
    if (cfg->endpoint && *cfg->endpoint && strncmp(cfg->endpoint, "http://", 7) &&
        strncmp(cfg->endpoint, "https://", 8))
        return cf_err_set(err, CF_E_ARG, "s3: endpoint %s: must start with http:// or https://",
                          cfg->endpoint), NULL;
    pthread_once(&curl_once, curl_init);
    if (!(st = calloc(1, sizeof *st)))
        return cf_err_set(err, CF_E_NOMEM, "out of memory"), NULL;
    st->base.ops = &s3_ops;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->freed, NULL);
    st->endpoint = dup_or_null(cfg->endpoint, &oom);
    if (st->endpoint)
        for (n = strlen(st->endpoint); n > 8 && st->endpoint[n - 1] == '/'; n--)
            st->endpoint[n - 1] = '\0';
    st->region = dup_or_null(cfg->region && *cfg->region ? cfg->region : "us-east-1", &oom);
    st->access_key = dup_or_null(cfg->access_key, &oom);
    st->secret_key = dup_or_null(cfg->secret_key, &oom);
    st->token = dup_or_null(cfg->session_token, &oom);
    st->path_style = cfg->path_style;
    st->retries = cfg->retries > 0 ? cfg->retries : cfg->retries < 0 ? 0 : 6;
    st->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000;
    st->part_size = cfg->part_size ? cfg->part_size : DEFAULT_PART;
    if (st->part_size < MIN_PART)
        st->part_size = MIN_PART;   /* S3 refuses smaller parts but the last */
    if (!oom && st->region && (st->sigv4 = malloc(strlen(st->region) + 16)))
        sprintf(st->sigv4, "aws:amz:%s:s3", st->region);
    else
        oom = true;
    if (!oom && !(st->pool[0] = curl_easy_init()))
        oom = true;
    else if (!oom)
        st->npool = 1;
    if (oom) {
        s_close(&st->base);
        return cf_err_set(err, CF_E_NOMEM, "s3: out of memory opening the store"), NULL;
    }
    return &st->base;
}
