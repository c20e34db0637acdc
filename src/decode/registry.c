/* registry.c - schema registry client (Confluent API and Apicurio's native
 * API) with a process-life cache of writer schemas by id. */
#include "decode/registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define MAX_SCHEMA_BYTES (4u << 20)   /* one writer schema; Debezium's are a few KB */
#define MAX_CACHED       10000        /* distinct ids kept */

typedef struct entry {
    int64_t id;
    char   *json;
    size_t  len;
} entry;

struct cf_registry {
    char          *url;          /* without a trailing '/' */
    cf_reg_framing framing;
    bool           native;       /* url already names Apicurio's /apis/registry/vN */
    char          *auth_hdr;     /* "Authorization: Bearer ..." or NULL */
    char          *userpwd;      /* "user:pass" for basic, or NULL */
    char          *ca_path;
    long           timeout_ms;
    pthread_mutex_t mu;
    entry         *cache;
    int            ncache, acache;
    uint64_t       requests;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

int cf_registry_parse_framing(const char *s, cf_reg_framing *out, cf_err *err)
{
    if (s && !strcmp(s, "confluent"))
        *out = CF_REG_CONFLUENT;
    else if (s && !strcmp(s, "apicurio"))
        *out = CF_REG_APICURIO;
    else
        return cf_err_set(err, CF_E_ARG, "registry framing '%s': expected confluent or apicurio",
                          s ? s : "");
    return 0;
}

int cf_registry_frame(cf_reg_framing f, const uint8_t *p, size_t n, int64_t *id, size_t *hdr,
                      cf_err *err)
{
    size_t idlen = f == CF_REG_APICURIO ? 8 : 4;
    uint64_t v = 0;

    if (n < 1 + idlen)
        return cf_err_setpos(err, CF_E_PARSE, 0, "%zu bytes: shorter than the %s framing header "
                             "(magic byte and a %zu-byte schema id)", n,
                             f == CF_REG_APICURIO ? "apicurio" : "confluent", idlen);
    if (p[0] != 0)
        return cf_err_setpos(err, CF_E_PARSE, 0, "magic byte 0x%02x, expected 0x00 (not registry-framed "
                             "Avro: check --value-format / --key-format and --registry-framing)", p[0]);
    for (size_t i = 1; i <= idlen; i++)
        v = v << 8 | p[i];
    *id = idlen == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
    *hdr = 1 + idlen;
    return 0;
}

void cf_registry_free(cf_registry *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->ncache; i++)
        free(r->cache[i].json);
    free(r->cache);
    free(r->url);
    free(r->auth_hdr);
    free(r->userpwd);
    free(r->ca_path);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

cf_registry *cf_registry_new(const cf_registry_config *cfg, cf_err *err)
{
    cf_registry *r;
    size_t n;

    if (!cfg || (cfg->url && strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8))) {
        cf_err_set(err, CF_E_ARG, "schema registry URL '%s': expected http://... or https://...",
                   cfg && cfg->url ? cfg->url : "");
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (!(r = calloc(1, sizeof *r))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    r->framing = cfg->framing;
    r->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 10000;
    if (!(r->url = strdup(cfg->url ? cfg->url : "")) ||
        (cfg->ca_path && !(r->ca_path = strdup(cfg->ca_path))))
        goto nomem;
    for (n = strlen(r->url); n > 0 && r->url[n - 1] == '/'; n--)
        r->url[n - 1] = '\0';
    r->native = strstr(r->url, "/apis/registry/") != NULL;
    if (cfg->auth && *cfg->auth) {
        if (!strncmp(cfg->auth, "basic:", 6) && strchr(cfg->auth + 6, ':')) {
            if (!(r->userpwd = strdup(cfg->auth + 6)))
                goto nomem;
        } else if (!strncmp(cfg->auth, "bearer:", 7) && cfg->auth[7]) {
            if (asprintf(&r->auth_hdr, "Authorization: Bearer %s", cfg->auth + 7) < 0) {
                r->auth_hdr = NULL;
                goto nomem;
            }
        } else {
            cf_registry_free(r);
            cf_err_set(err, CF_E_ARG, "registry auth: expected basic:USER:PASS or bearer:TOKEN");
            return NULL;
        }
    }
    return r;
nomem:
    cf_registry_free(r);
    cf_err_set(err, CF_E_NOMEM, "out of memory");
    return NULL;
}

uint64_t cf_registry_requests(const cf_registry *r) { return r->requests; }

cf_reg_framing cf_registry_framing(const cf_registry *r) { return r->framing; }

/* Whether asking again may help, and whether the process can go on:
 * decided here, where the cause is known. */
static void classify(cf_err *err, bool retriable, bool fatal)
{
    if (err) {
        err->retriable = retriable;
        err->fatal = fatal;
    }
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    cf_buf *b = ud;
    return cf_buf_append(b, p, sz * nm, NULL) ? 0 : sz * nm;    /* 0 aborts past the cap */
}

/* GET the schema of id into body.  Errors classified as registry.h says. */
static int fetch(cf_registry *r, int64_t id, cf_buf *body, cf_err *err)
{
    char url[2048];
    struct curl_slist *hdrs = NULL;
    CURL *h;
    CURLcode rc;
    long status = 0;
    int ret = -1;

    if (r->framing == CF_REG_CONFLUENT)
        snprintf(url, sizeof url, "%s/schemas/ids/%lld", r->url, (long long)id);
    else
        snprintf(url, sizeof url, "%s%s/ids/globalIds/%lld", r->url,
                 r->native ? "" : "/apis/registry/v2", (long long)id);
    if (!*r->url) {
        cf_err_set(err, CF_E_NOTFOUND, "schema registry: unknown schema id %lld (no registry URL)",
                   (long long)id);
        classify(err, false, false);
        return -1;
    }
    if (!(h = curl_easy_init()))
        return cf_err_set(err, CF_E_NOMEM, "curl_easy_init failed");
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, application/json, */*");
    if (r->auth_hdr)
        hdrs = curl_slist_append(hdrs, r->auth_hdr);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    if (r->userpwd) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, r->userpwd);
    }
    if (r->ca_path)
        curl_easy_setopt(h, CURLOPT_CAINFO, r->ca_path);
    __atomic_add_fetch(&r->requests, 1, __ATOMIC_RELAXED);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_WRITE_ERROR) {
        cf_err_set(err, CF_E_TOOBIG, "schema registry: schema %lld over %u bytes", (long long)id,
                   MAX_SCHEMA_BYTES);
        classify(err, false, true);
    } else if (rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_PEER_FAILED_VERIFICATION ||
               rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        cf_err_set(err, CF_E_HTTP, "schema registry %s: %s", url, curl_easy_strerror(rc));
        classify(err, false, true);        /* configuration: asking again cannot help */
    } else if (rc != CURLE_OK) {
        cf_err_set(err, CF_E_HTTP, "schema registry %s: %s", url, curl_easy_strerror(rc));
        classify(err, true, false);        /* down or unreachable: wait and ask again */
    } else if (status == 200) {
        ret = 0;
    } else if (status == 404) {
        cf_err_set(err, CF_E_NOTFOUND, "schema registry: unknown schema id %lld (%s: HTTP 404)",
                   (long long)id, url);
        classify(err, false, false);       /* this message's id: dead-letter it */
    } else if (status == 401 || status == 403) {
        cf_err_set(err, CF_E_HTTP, "schema registry %s: HTTP %ld (check --registry-auth)", url, status);
        classify(err, false, true);
    } else {
        cf_err_set(err, CF_E_HTTP, "schema registry %s: HTTP %ld", url, status);
        bool again = status >= 500 || status == 429 || status == 408;
        classify(err, again, !again);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return ret;
}

/* The schema text of a response: Confluent wraps it in {"schema": "..."},
 * Apicurio's native API returns it as it is. */
static int schema_text(cf_registry *r, int64_t id, cf_buf *body, char **out, size_t *len, cf_err *err)
{
    json_error_t je;
    json_t *j, *s;

    if (r->framing == CF_REG_APICURIO) {
        if (!cf_buf_cstr(body, err))
            return -1;
        if (!body->len || !(*out = (char *)cf_buf_steal(body, len)))
            return cf_err_set(err, CF_E_PARSE, "schema registry: empty schema for id %lld", (long long)id);
        return 0;
    }
    if (!(j = json_loadb((const char *)body->data, body->len, 0, &je)))
        return cf_err_set(err, CF_E_PARSE, "schema registry: schema id %lld: response is not JSON: %s",
                          (long long)id, je.text);
    s = json_object_get(j, "schema");
    if (!json_is_string(s)) {
        json_decref(j);
        return cf_err_set(err, CF_E_PARSE, "schema registry: schema id %lld: no \"schema\" string",
                          (long long)id);
    }
    *len = json_string_length(s);
    if (!(*out = malloc(*len + 1))) {
        json_decref(j);
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    memcpy(*out, json_string_value(s), *len + 1);
    json_decref(j);
    return 0;
}

static entry *lookup(cf_registry *r, int64_t id)
{
    for (int i = 0; i < r->ncache; i++)
        if (r->cache[i].id == id)
            return &r->cache[i];
    return NULL;
}

/* Cache text (taken over) as the schema of id, unless id is cached by now
 * (a concurrent fetch won): *e is the entry either way.  Locked. */
static int insert(cf_registry *r, int64_t id, char *text, size_t len, entry **out, cf_err *err)
{
    entry *e;

    if ((e = lookup(r, id))) {
        free(text);
        *out = e;
        return 0;
    }
    if (r->ncache >= MAX_CACHED) {
        free(text);
        return cf_err_set(err, CF_E_TOOBIG, "schema registry: more than %d schema ids", MAX_CACHED);
    }
    if (r->ncache == r->acache) {
        int na = r->acache ? r->acache * 2 : 16;
        entry *ne = realloc(r->cache, sizeof *ne * (size_t)na);
        if (!ne) {
            free(text);
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        }
        r->cache = ne;
        r->acache = na;
    }
    e = &r->cache[r->ncache++];
    *e = (entry){ id, text, len };
    *out = e;
    return 0;
}

int cf_registry_put(cf_registry *r, int64_t id, const char *json, size_t len, cf_err *err)
{
    char *text = malloc(len + 1);
    entry *e;
    int rc;

    if (!text)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    memcpy(text, json, len);
    text[len] = '\0';
    pthread_mutex_lock(&r->mu);
    rc = insert(r, id, text, len, &e, err);
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int cf_registry_schema(cf_registry *r, int64_t id, const char **json, size_t *len, cf_err *err)
{
    cf_buf body;
    char *text = NULL;
    size_t tlen = 0;
    entry *e;
    int rc = -1;

    pthread_mutex_lock(&r->mu);
    if ((e = lookup(r, id))) {
        *json = e->json;
        *len = e->len;
        pthread_mutex_unlock(&r->mu);
        return 0;
    }
    pthread_mutex_unlock(&r->mu);
    /* Fetch unlocked: a registry that hangs must not block the other
     * pipelines' hits.  Two fetches of one id race harmlessly. */
    cf_buf_init(&body, MAX_SCHEMA_BYTES);
    if (fetch(r, id, &body, err) || schema_text(r, id, &body, &text, &tlen, err))
        goto out;
    pthread_mutex_lock(&r->mu);
    if ((rc = insert(r, id, text, tlen, &e, err)) == 0) {
        *json = e->json;
        *len = e->len;
    }
    pthread_mutex_unlock(&r->mu);
out:
    cf_buf_free(&body);
    return rc;
}
