/* rest.c - Iceberg REST catalog client (libcurl + jansson): config, OAuth2
 * client credentials, namespaces, load/create/commit of tables. */
#include "table/iceberg/rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "table/table.h"
#include "util/buf.h"

/* Metadata documents grow with snapshots and schemas; a table with thousands
 * of snapshots is a few MB.  Past this the answer is not a table. */
#define BODY_CAP            (64u << 20)
#define DEFAULT_RETRIES     4
#define DEFAULT_TIMEOUT_MS  30000L
#define CONNECT_TIMEOUT_MS  10000L
/* Pause before retry n of a request the transport lost (5xx, 429, timeout):
 * full jitter below min(CAP, BASE << n). */
#define BACKOFF_BASE_MS     100L
#define BACKOFF_CAP_MS      5000L
#define DEFAULT_SCOPE       "catalog"
#define DEFAULT_NS_SEP      "%1F"

struct cf_ice_rest {
    CURL   *h;
    char   *base;            /* catalog URL, no trailing '/' */
    char   *prefix;          /* config "prefix" with a trailing '/', or "" */
    char   *ns_sep;          /* namespace level separator, URL-encoded */
    char   *warehouse;
    char   *client_id;       /* OAuth2 client credentials (NULL id: bare secret) */
    char   *client_secret;
    char   *token_uri;
    char   *scope;
    char   *auth;            /* "Authorization: Bearer ..." or NULL */
    bool    static_token;    /* the token was given: never refreshed */
    json_t *props;           /* defaults, then client config, then overrides */
    int     retries;
    long    timeout_ms;
    unsigned seed;
};

typedef struct resp {
    long   code;
    cf_buf body;
} resp;

/* ---------------------------------------------------------------- small helpers */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void cf_ice_rest_config_from_env(cf_ice_rest_config *cfg)
{
    cf_catalog_config cc;

    cf_catalog_config_from_env(&cc);
    memset(cfg, 0, sizeof *cfg);
    cfg->uri = cc.uri;
    cfg->warehouse = cc.warehouse;
    cfg->credential = cc.credential;
    cfg->token = cc.token;
    cfg->oauth2_server_uri = cc.oauth2_server_uri;
    cfg->scope = cc.scope;
}

static void backoff(cf_ice_rest *c, int attempt)
{
    long cap = BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
    struct timespec ts;

    if (cap > BACKOFF_CAP_MS)
        cap = BACKOFF_CAP_MS;
    long ms = (long)((unsigned long)rand_r(&c->seed) % (unsigned long)cap) + 1;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- HTTP */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    cf_buf *b = ud;
    size_t n = size * nmemb;
    /* Returning short makes curl fail the transfer: the cap was hit. */
    return cf_buf_append(b, p, n, NULL) < 0 ? 0 : n;
}

/* One exchange; r->body is reset and filled.  Any HTTP status is success
 * here (the caller judges it); -1 only when no answer came: CF_E_IO,
 * retriable, when the peer could not be reached or went silent. */
static int perform(cf_ice_rest *c, const char *method, const char *url, const char *body,
                   const char *ctype, bool with_auth, resp *r, cf_err *err)
{
    struct curl_slist *hdrs = NULL, *h2;
    char ebuf[CURL_ERROR_SIZE] = "";
    char ct[96];
    CURLcode rc;

    cf_buf_reset(&r->body);
    r->code = 0;
    curl_easy_reset(c->h);
    h2 = curl_slist_append(hdrs, "Accept: application/json");
    if (h2) {
        hdrs = h2;
        if (body) {
            snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
            h2 = curl_slist_append(hdrs, ct);
        }
    }
    if (h2 && with_auth && c->auth)
        h2 = curl_slist_append(hdrs, c->auth);
    if (!h2) {
        curl_slist_free_all(hdrs);
        return cf_err_set(err, CF_E_NOMEM, "out of memory building a request");
    }
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c->h, CURLOPT_USERAGENT, "cdcflow");
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS,
                     c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_ACCEPT_ENCODING, "");
    if (body) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    rc = curl_easy_perform(c->h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &r->code);
    /* The handle keeps pointers to these; drop them before they go. */
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_OK)
        return 0;
    /* Only on_body fails writes, and only at the cap (or out of memory). */
    if (rc == CURLE_WRITE_ERROR)
        return cf_err_set(err, CF_E_TOOBIG, "%s %s: answer over %u MiB", method, url, BODY_CAP >> 20);
    cf_err_set(err, CF_E_IO, "%s %s: %s", method, url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
    switch (rc) {
    case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE:
        if (err)
            err->retriable = true;
        break;
    default:
        break;
    }
    return -1;
}

/* The spec's ErrorModel {"error": {"message", "type", "code"}}, or the
 * OAuth2 error {"error": "...", "error_description": "..."}, or the start
 * of whatever else came.  Server text only: never a request's bytes. */
static void server_message(const resp *r, char *out, size_t outsz)
{
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    json_t *e = json_object_get(root, "error");
    const char *type = json_string_value(json_object_get(e, "type"));
    const char *msg = json_string_value(json_object_get(e, "message"));

    if (msg)
        snprintf(out, outsz, "%s%s%s", type ? type : "", type ? ": " : "", msg);
    else if (json_is_string(e))
        snprintf(out, outsz, "%s%s%s", json_string_value(e),
                 json_object_get(root, "error_description") ? ": " : "",
                 json_object_get(root, "error_description")
                     ? json_string_value(json_object_get(root, "error_description")) : "");
    else
        snprintf(out, outsz, "%.*s", (int)(r->body.len > 300 ? 300 : r->body.len),
                 r->body.data ? (const char *)r->body.data : "");
    json_decref(root);
}

/* The error of a final non-2xx answer.  404 and 409 get their own codes;
 * the rest is CF_E_HTTP with the server's message. */
static int status_error(const resp *r, const char *what, cf_err *err)
{
    char m[400];

    server_message(r, m, sizeof m);
    if (r->code == 404) {
        cf_err_set(err, CF_E_NOTFOUND, "%s: not found (%s)", what, m);
        if (err)
            err->fatal = false;   /* a table that is not there yet is made, not mourned */
        return -1;
    }
    if (r->code == 409)
        return cf_err_set(err, CF_E_CONFLICT, "%s: conflict (%s)", what, m);
    return cf_err_set(err, CF_E_HTTP, "%s: HTTP %ld (%s)", what, r->code, m);
}

static int fetch_token(cf_ice_rest *c, cf_err *err);

/* A request to the catalog with the retry policy: 5xx, 429 and lost answers
 * are retried with backoff; a 401/419 with client credentials refreshes the
 * token once.  Returns 0 with the final answer in *r (any status), -1 when
 * the retries ran out or the request could not be made.  *lost is set when
 * an earlier attempt may have reached the server unanswered. */
static int request(cf_ice_rest *c, const char *method, const char *path, const char *body,
                   const char *what, resp *r, bool *lost, cf_err *err)
{
    cf_buf url;
    bool refreshed = false;
    cf_err e = { 0 };
    int rc = -1;

    *lost = false;
    cf_buf_init(&url, 0);
    if (cf_buf_printf(&url, err, "%s%s", c->base, path) || !cf_buf_cstr(&url, err))
        goto out;
    for (int attempt = 0;; attempt++) {
        cf_err_clear(&e);
        if (perform(c, method, (const char *)url.data, body, "application/json", true, r, &e)) {
            if (!e.retriable) {
                if (err)
                    *err = e;
                goto out;
            }
            /* Sent but unanswered: a POST may have been applied. */
            if (strcmp(method, "GET"))
                *lost = true;
        } else if ((r->code == 401 || r->code == 419) && c->client_secret && !refreshed) {
            refreshed = true;
            if (fetch_token(c, err))
                goto out;
            attempt--;
            continue;
        } else if (r->code == 429 || r->code >= 500) {
            if (strcmp(method, "GET") && r->code != 429 && r->code != 503)
                *lost = true;
            char m[300];
            server_message(r, m, sizeof m);
            cf_err_set(&e, CF_E_HTTP, "%s %s: HTTP %ld (%s)", method, (const char *)url.data, r->code, m);
        } else {
            rc = 0;
            goto out;
        }
        if (attempt >= c->retries) {
            /* The last failure's code: CF_E_IO (unreachable, silent) or CF_E_HTTP (5xx). */
            bool retriable = e.retriable;
            cf_err_set(err, e.code, "%s: %s (%d attempts)", what, e.msg, attempt + 1);
            if (err)
                err->retriable = retriable;
            goto out;
        }
        backoff(c, attempt);
    }
out:
    cf_buf_free(&url);
    return rc;
}

/* ---------------------------------------------------------------- OAuth2 */

static int form_field(cf_ice_rest *c, cf_buf *b, const char *key, const char *val, cf_err *err)
{
    char *v = curl_easy_escape(c->h, val, 0);
    int rc;

    if (!v)
        return cf_err_set(err, CF_E_NOMEM, "out of memory encoding a form field");
    rc = cf_buf_printf(b, err, "%s%s=%s", b->len ? "&" : "", key, v);
    explicit_bzero(v, strlen(v));
    curl_free(v);
    return rc;
}

/* client_credentials grant at the token endpoint; sets c->auth.  The form
 * holds the secret: it is wiped after the request, and no message names it. */
static int fetch_token(cf_ice_rest *c, cf_err *err)
{
    cf_buf form;
    resp r = { 0 };
    cf_err e = { 0 };
    json_t *root = NULL;
    const char *tok;
    int rc = -1;

    cf_buf_init(&form, 0);
    cf_buf_init(&r.body, BODY_CAP);
    if (form_field(c, &form, "grant_type", "client_credentials", err) ||
        (c->client_id && form_field(c, &form, "client_id", c->client_id, err)) ||
        form_field(c, &form, "client_secret", c->client_secret, err) ||
        form_field(c, &form, "scope", c->scope, err) || !cf_buf_cstr(&form, err))
        goto out;
    for (int attempt = 0;; attempt++) {
        cf_err_clear(&e);
        if (perform(c, "POST", c->token_uri, (const char *)form.data,
                    "application/x-www-form-urlencoded", false, &r, &e) == 0 &&
            r.code != 429 && r.code < 500)
            break;
        if (e.code == CF_OK) {
            char m[300];
            server_message(&r, m, sizeof m);
            cf_err_set(&e, CF_E_HTTP, "HTTP %ld (%s)", r.code, m);
        } else if (!e.retriable) {
            break;
        }
        if (attempt >= c->retries)
            break;
        backoff(c, attempt);
    }
    if (e.code != CF_OK) {
        cf_err_set(err, e.code, "OAuth2 token from %s: %s", c->token_uri, e.msg);
        if (err)
            err->retriable = e.retriable;
        goto out;
    }
    if (r.code / 100 != 2) {
        status_error(&r, "OAuth2 token", err);
        goto out;
    }
    root = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    tok = json_string_value(json_object_get(root, "access_token"));
    if (!tok || !*tok) {
        cf_err_set(err, CF_E_HTTP, "OAuth2 token from %s: the answer has no access_token", c->token_uri);
        goto out;
    }
    free_secret(c->auth);
    c->auth = NULL;
    if (asprintf(&c->auth, "Authorization: Bearer %s", tok) < 0) {
        c->auth = NULL;
        cf_err_set(err, CF_E_NOMEM, "out of memory keeping the token");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    /* The token lives on in c->auth only; the secret nowhere but c. */
    if (r.body.data)
        explicit_bzero(r.body.data, r.body.len);
    if (form.data)
        explicit_bzero(form.data, form.len);
    cf_buf_free(&form);
    cf_buf_free(&r.body);
    return rc;
}

/* ---------------------------------------------------------------- open/close */

static void merge_object(json_t *into, const json_t *from)
{
    const char *k;
    json_t *v;

    if (!json_is_object(from))
        return;
    json_object_foreach((json_t *)from, k, v)
        if (json_is_string(v))
            json_object_set(into, k, v);
}

/* Trimmed copy of a URL without trailing slashes. */
static char *trim_url(const char *u)
{
    char *s = strdup(u);
    size_t n;

    if (!s)
        return NULL;
    n = strlen(s);
    while (n && s[n - 1] == '/')
        s[--n] = '\0';
    return s;
}

/* GET /v1/config: props = defaults, client config, overrides; then apply
 * the ones that change how we talk (uri, prefix, namespace-separator). */
static int load_config(cf_ice_rest *c, cf_err *err)
{
    resp r = { 0 };
    cf_buf path;
    json_t *root = NULL;
    const char *v;
    bool lost;
    int rc = -1;

    cf_buf_init(&path, 0);
    cf_buf_init(&r.body, BODY_CAP);
    if (cf_buf_printf(&path, err, "/v1/config"))
        goto out;
    if (c->warehouse) {
        char *w = curl_easy_escape(c->h, c->warehouse, 0);
        if (!w || cf_buf_printf(&path, err, "?warehouse=%s", w)) {
            curl_free(w);
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        curl_free(w);
    }
    if (!cf_buf_cstr(&path, err) ||
        request(c, "GET", (const char *)path.data, NULL, "catalog config", &r, &lost, err))
        goto out;
    if (r.code != 200) {
        status_error(&r, "catalog config", err);
        goto out;
    }
    root = json_loadb((const char *)r.body.data, r.body.len, 0, NULL);
    if (!json_is_object(root)) {
        cf_err_set(err, CF_E_PARSE, "catalog config at %s: not a JSON object", c->base);
        goto out;
    }
    merge_object(c->props, json_object_get(root, "defaults"));
    if (c->warehouse)
        json_object_set_new(c->props, "warehouse", json_string(c->warehouse));
    merge_object(c->props, json_object_get(root, "overrides"));

    if ((v = cf_ice_rest_property(c, "uri")) && *v) {
        char *b = trim_url(v);
        if (!b) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        free(c->base);
        c->base = b;
    }
    if ((v = cf_ice_rest_property(c, "prefix")) && *v) {
        size_t n = strlen(v);
        free(c->prefix);
        if (asprintf(&c->prefix, "%.*s/", (int)(v[n - 1] == '/' ? n - 1 : n), v) < 0) {
            c->prefix = NULL;
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if ((v = cf_ice_rest_property(c, "namespace-separator")) && *v) {
        char *s = strdup(v);
        if (!s) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
        free(c->ns_sep);
        c->ns_sep = s;
    }
    rc = 0;
out:
    json_decref(root);
    cf_buf_free(&path);
    cf_buf_free(&r.body);
    return rc;
}

cf_ice_rest *cf_ice_rest_open(const cf_ice_rest_config *cfg, cf_err *err)
{
    cf_ice_rest *c;

    if (!cfg || !cfg->uri || !*cfg->uri) {
        cf_err_set(err, CF_E_ARG, "no Iceberg REST catalog URI (ICEBERG_CATALOG_URI)");
        return NULL;
    }
    if (strncmp(cfg->uri, "http://", 7) && strncmp(cfg->uri, "https://", 8)) {
        cf_err_set(err, CF_E_ARG, "Iceberg REST catalog URI '%s' is not http(s)://", cfg->uri);
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cf_err_set(err, CF_E_HTTP, "curl_global_init failed");
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    c->retries = cfg->retries > 0 ? cfg->retries : DEFAULT_RETRIES;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)c;
    c->h = curl_easy_init();
    c->base = trim_url(cfg->uri);
    c->prefix = strdup("");
    c->ns_sep = strdup(DEFAULT_NS_SEP);
    c->warehouse = dup_or_null(cfg->warehouse);
    c->scope = strdup(cfg->scope ? cfg->scope : DEFAULT_SCOPE);
    c->props = json_object();
    if (cfg->oauth2_server_uri)
        c->token_uri = strdup(cfg->oauth2_server_uri);
    else if (c->base && asprintf(&c->token_uri, "%s/v1/oauth/tokens", c->base) < 0)
        c->token_uri = NULL;
    if (!c->h || !c->base || !c->prefix || !c->ns_sep || !c->scope || !c->props || !c->token_uri ||
        (cfg->warehouse && !c->warehouse)) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    if (cfg->token && *cfg->token) {
        if (asprintf(&c->auth, "Authorization: Bearer %s", cfg->token) < 0) {
            c->auth = NULL;
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        c->static_token = true;
    } else if (cfg->credential && *cfg->credential) {
        const char *colon = strchr(cfg->credential, ':');
        if (colon) {
            c->client_id = strndup(cfg->credential, (size_t)(colon - cfg->credential));
            c->client_secret = strdup(colon + 1);
        } else {
            c->client_secret = strdup(cfg->credential);
        }
        if (!c->client_secret || (colon && !c->client_id)) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        if (fetch_token(c, err))
            goto fail;
    }
    if (load_config(c, err))
        goto fail;
    return c;
fail:
    cf_err_wrap(err, "Iceberg REST catalog %s", cfg->uri);
    cf_ice_rest_close(c);
    return NULL;
}

void cf_ice_rest_close(cf_ice_rest *c)
{
    if (!c)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    free(c->base);
    free(c->prefix);
    free(c->ns_sep);
    free(c->warehouse);
    free(c->client_id);
    free_secret(c->client_secret);
    free(c->token_uri);
    free(c->scope);
    free_secret(c->auth);
    json_decref(c->props);
    free(c);
    curl_global_cleanup();
}

const char *cf_ice_rest_property(const cf_ice_rest *c, const char *key)
{
    return json_string_value(json_object_get(c->props, key));
}

void cf_ice_rest_table_free(cf_ice_rest_table *t)
{
    if (!t)
        return;
    free(t->metadata_location);
    json_decref(t->metadata);
    json_decref(t->config);
    memset(t, 0, sizeof *t);
}

/* ---------------------------------------------------------------- paths */

/* Levels of "a.b.c" as a JSON array of strings; CF_E_ARG on an empty level. */
static json_t *ns_levels(const char *ns, cf_err *err)
{
    json_t *a;
    const char *p = ns, *dot;

    if (!ns || !*ns) {
        cf_err_set(err, CF_E_ARG, "empty Iceberg namespace");
        return NULL;
    }
    if (!(a = json_array())) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    for (;;) {
        dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0) {
            json_decref(a);
            cf_err_set(err, CF_E_ARG, "Iceberg namespace '%s' has an empty level", ns);
            return NULL;
        }
        if (json_array_append_new(a, json_stringn(p, n))) {
            json_decref(a);
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            return NULL;
        }
        if (!dot)
            return a;
        p = dot + 1;
    }
}

/* "/v1/{prefix}namespaces/{ns}" + suffix, levels escaped and joined by the
 * separator.  Caller frees. */
static char *ns_path(cf_ice_rest *c, const char *ns, const char *suffix, const char *name, cf_err *err)
{
    json_t *levels = ns_levels(ns, err), *v;
    cf_buf b;
    size_t i;
    char *esc;

    if (!levels)
        return NULL;
    cf_buf_init(&b, 0);
    if (cf_buf_printf(&b, err, "/v1/%snamespaces/", c->prefix))
        goto fail;
    json_array_foreach(levels, i, v) {
        esc = curl_easy_escape(c->h, json_string_value(v), 0);
        if (!esc || cf_buf_printf(&b, err, "%s%s", i ? c->ns_sep : "", esc)) {
            curl_free(esc);
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        curl_free(esc);
    }
    if (suffix && cf_buf_printf(&b, err, "%s", suffix))
        goto fail;
    if (name) {
        if (!*name) {
            cf_err_set(err, CF_E_ARG, "empty Iceberg table name");
            goto fail;
        }
        esc = curl_easy_escape(c->h, name, 0);
        if (!esc || cf_buf_printf(&b, err, "/%s", esc)) {
            curl_free(esc);
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        curl_free(esc);
    }
    if (!cf_buf_cstr(&b, err))
        goto fail;
    json_decref(levels);
    return (char *)cf_buf_steal(&b, NULL);
fail:
    json_decref(levels);
    cf_buf_free(&b);
    return NULL;
}

/* ---------------------------------------------------------------- calls */

/* LoadTableResult or CommitTableResponse into *out. */
static int parse_table(const resp *r, const char *what, cf_ice_rest_table *out, cf_err *err)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, &je);
    json_t *meta = json_object_get(root, "metadata");
    const char *loc = json_string_value(json_object_get(root, "metadata-location"));
    json_t *cfg = json_object_get(root, "config");

    if (!root)
        return cf_err_setpos(err, CF_E_PARSE, je.position, "%s: answer is not JSON: %s", what, je.text);
    if (!json_is_object(meta) || !loc) {
        json_decref(root);
        return cf_err_set(err, CF_E_PARSE, "%s: answer has no metadata or metadata-location", what);
    }
    memset(out, 0, sizeof *out);
    out->metadata_location = strdup(loc);
    out->metadata = json_incref(meta);
    out->config = json_is_object(cfg) ? json_incref(cfg) : json_object();
    json_decref(root);
    if (!out->metadata_location || !out->config) {
        cf_ice_rest_table_free(out);
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    return 0;
}

/* Send `body` (borrowed; may be NULL) and judge the answer: 0 with a 2xx in
 * *r, -1 otherwise. */
static int call(cf_ice_rest *c, const char *method, const char *path, const json_t *body,
                const char *what, resp *r, bool *lost, cf_err *err)
{
    char *text = NULL;
    int rc;

    if (body && !(text = json_dumps(body, JSON_COMPACT)))
        return cf_err_set(err, CF_E_NOMEM, "%s: out of memory encoding the request", what);
    rc = request(c, method, path, text, what, r, lost, err);
    free(text);
    if (rc)
        return -1;
    if (r->code / 100 != 2)
        return status_error(r, what, err);
    return 0;
}

int cf_ice_rest_create_namespace(cf_ice_rest *c, const char *ns, const json_t *properties, cf_err *err)
{
    json_t *levels = ns_levels(ns, err), *body = NULL;
    char *path = NULL;
    char what[300];
    resp r = { 0 };
    bool lost;
    int rc = -1;

    if (!levels)
        return -1;
    snprintf(what, sizeof what, "create namespace %s", ns);
    if (asprintf(&path, "/v1/%snamespaces", c->prefix) < 0)
        path = NULL;
    body = json_pack("{s:O,s:o}", "namespace", levels, "properties",
                     json_is_object(properties) ? json_deep_copy(properties) : json_object());
    cf_buf_init(&r.body, BODY_CAP);
    if (!body || !path)
        cf_err_set(err, CF_E_NOMEM, "%s: out of memory", what);
    else if (call(c, "POST", path, body, what, &r, &lost, err) == 0)
        rc = 0;
    else if (r.code == 409 && err && err->code == CF_E_CONFLICT) {
        cf_err_clear(err);    /* there already: what we wanted */
        rc = 0;
    }
    json_decref(levels);
    json_decref(body);
    free(path);
    cf_buf_free(&r.body);
    return rc;
}

int cf_ice_rest_load_table(cf_ice_rest *c, const char *ns, const char *name, cf_ice_rest_table *out,
                           cf_err *err)
{
    char *path = ns_path(c, ns, "/tables", name, err);
    char what[300];
    resp r = { 0 };
    bool lost;
    int rc = -1;

    if (!path)
        return -1;
    snprintf(what, sizeof what, "load table %s.%s", ns, name);
    cf_buf_init(&r.body, BODY_CAP);
    if (call(c, "GET", path, NULL, what, &r, &lost, err) == 0)
        rc = parse_table(&r, what, out, err);
    free(path);
    cf_buf_free(&r.body);
    return rc;
}

int cf_ice_rest_create_table(cf_ice_rest *c, const char *ns, const char *name,
                             const cf_ice_rest_create *spec, cf_ice_rest_table *out, cf_err *err)
{
    char *path;
    char what[300];
    json_t *body;
    resp r = { 0 };
    bool lost;
    int rc = -1;

    if (!spec || !json_is_object(spec->schema))
        return cf_err_set(err, CF_E_ARG, "create table %s.%s: no schema", ns, name ? name : "");
    if (!name || !*name)
        return cf_err_set(err, CF_E_ARG, "create table in %s: empty table name", ns);
    if (!(path = ns_path(c, ns, "/tables", NULL, err)))
        return -1;
    snprintf(what, sizeof what, "create table %s.%s", ns, name);
    body = json_pack("{s:s,s:O,s:b}", "name", name, "schema", (json_t *)spec->schema, "stage-create", 0);
    if (body && spec->partition_spec)
        json_object_set(body, "partition-spec", (json_t *)spec->partition_spec);
    if (body && spec->write_order)
        json_object_set(body, "write-order", (json_t *)spec->write_order);
    if (body && spec->properties)
        json_object_set(body, "properties", (json_t *)spec->properties);
    if (body && spec->location)
        json_object_set_new(body, "location", json_string(spec->location));
    cf_buf_init(&r.body, BODY_CAP);
    if (!body)
        cf_err_set(err, CF_E_NOMEM, "%s: out of memory", what);
    else if (call(c, "POST", path, body, what, &r, &lost, err) == 0)
        rc = parse_table(&r, what, out, err);
    else if (lost && err && err->code == CF_E_CONFLICT)
        cf_err_wrap(err, "an earlier attempt went unanswered and may have made it");
    json_decref(body);
    free(path);
    cf_buf_free(&r.body);
    return rc;
}

int cf_ice_rest_commit(cf_ice_rest *c, const char *ns, const char *name, json_t *requirements,
                       json_t *updates, cf_ice_rest_table *out, cf_err *err)
{
    char *path = NULL;
    char what[300];
    json_t *body = NULL, *levels = NULL;
    resp r = { 0 };
    cf_ice_rest_table t;
    bool lost = false;
    int rc = -1;

    snprintf(what, sizeof what, "commit to %s.%s", ns ? ns : "", name ? name : "");
    cf_buf_init(&r.body, BODY_CAP);
    if (!json_is_array(requirements) || !json_is_array(updates)) {
        cf_err_set(err, CF_E_ARG, "%s: requirements and updates must be JSON arrays", what);
        goto out;
    }
    if (!(path = ns_path(c, ns, "/tables", name, err)) || !(levels = ns_levels(ns, err)))
        goto out;
    body = json_pack("{s:{s:O,s:s},s:O,s:O}", "identifier", "namespace", levels, "name", name,
                     "requirements", requirements, "updates", updates);
    if (!body) {
        cf_err_set(err, CF_E_NOMEM, "%s: out of memory", what);
        goto out;
    }
    if (call(c, "POST", path, body, what, &r, &lost, err)) {
        if (err && err->code == CF_E_CONFLICT && lost)
            cf_err_wrap(err, "an earlier attempt went unanswered and may be the commit that won (reload)");
        else if (err && err->code == CF_E_HTTP && lost)
            cf_err_wrap(err, "whether the commit was applied is unknown (reload)");
        goto out;
    }
    if (out) {
        if (parse_table(&r, what, &t, err))
            goto out;
        *out = t;
    }
    rc = 0;
out:
    json_decref(requirements);
    json_decref(updates);
    json_decref(levels);
    json_decref(body);
    free(path);
    cf_buf_free(&r.body);
    return rc;
}

/* ---------------------------------------------------------------- builders */

json_t *cf_ice_rest_req_table_uuid(const char *uuid)
{
    return uuid ? json_pack("{s:s,s:s}", "type", "assert-table-uuid", "uuid", uuid) : NULL;
}

json_t *cf_ice_rest_req_ref_snapshot(const char *ref, int64_t snapshot_id)
{
    return json_pack("{s:s,s:s,s:o}", "type", "assert-ref-snapshot-id", "ref", ref,
                     "snapshot-id", snapshot_id < 0 ? json_null() : json_integer(snapshot_id));
}

json_t *cf_ice_rest_req_current_schema(int schema_id)
{
    return json_pack("{s:s,s:i}", "type", "assert-current-schema-id", "current-schema-id", schema_id);
}

json_t *cf_ice_rest_req_default_spec(int spec_id)
{
    return json_pack("{s:s,s:i}", "type", "assert-default-spec-id", "default-spec-id", spec_id);
}

/* The snapshot main points at: refs.main, else current-snapshot-id; -1 none. */
static int64_t main_snapshot(const json_t *meta)
{
    json_t *id = json_object_get(json_object_get(json_object_get(meta, "refs"), "main"), "snapshot-id");

    if (!json_is_integer(id))
        id = json_object_get(meta, "current-snapshot-id");
    return json_is_integer(id) && json_integer_value(id) >= 0 ? (int64_t)json_integer_value(id) : -1;
}

json_t *cf_ice_rest_base_requirements(const json_t *metadata)
{
    const char *uuid = json_string_value(json_object_get(metadata, "table-uuid"));

    if (!uuid)
        return NULL;
    return json_pack("[o,o]", cf_ice_rest_req_table_uuid(uuid),
                     cf_ice_rest_req_ref_snapshot("main", main_snapshot(metadata)));
}

json_t *cf_ice_rest_upd_add_snapshot(json_t *snapshot)
{
    return json_pack("{s:s,s:o}", "action", "add-snapshot", "snapshot", snapshot);
}

json_t *cf_ice_rest_upd_set_branch(const char *ref, int64_t snapshot_id)
{
    return json_pack("{s:s,s:s,s:s,s:I}", "action", "set-snapshot-ref", "ref-name", ref,
                     "type", "branch", "snapshot-id", (json_int_t)snapshot_id);
}

json_t *cf_ice_rest_upd_set_properties(json_t *props)
{
    return json_pack("{s:s,s:o}", "action", "set-properties", "updates", props);
}

json_t *cf_ice_rest_upd_remove_properties(json_t *keys)
{
    return json_pack("{s:s,s:o}", "action", "remove-properties", "removals", keys);
}

json_t *cf_ice_rest_upd_add_schema(json_t *schema, int last_column_id)
{
    json_t *u = json_pack("{s:s,s:o}", "action", "add-schema", "schema", schema);

    if (u && last_column_id >= 0 && json_object_set_new(u, "last-column-id", json_integer(last_column_id))) {
        json_decref(u);
        return NULL;
    }
    return u;
}

json_t *cf_ice_rest_upd_set_current_schema(int schema_id)
{
    return json_pack("{s:s,s:i}", "action", "set-current-schema", "schema-id", schema_id);
}

json_t *cf_ice_rest_upd_add_spec(json_t *spec)
{
    return json_pack("{s:s,s:o}", "action", "add-spec", "spec", spec);
}

json_t *cf_ice_rest_upd_set_default_spec(int spec_id)
{
    return json_pack("{s:s,s:i}", "action", "set-default-spec", "spec-id", spec_id);
}
