/* connector.c - `cdcflow connector register|status|delete`: the Debezium
 * PostgreSQL connector on Kafka Connect's REST API (libcurl + jansson). */
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <libpq-fe.h>

#include "cli/commands.h"

#define DEFAULT_CONNECT_URL "http://127.0.0.1:8083"
#define DEFAULT_NAME        "postgres-cdc-connector"
#define DEFAULT_TABLES      "public.customers,public.orders,public.products,public.inventory"
/* --format avro: a second connector beside the JSON one, on its own slot and topic prefix. */
#define AVRO_NAME           "postgres-avro-connector"
#define AVRO_PREFIX         "avro"
#define AVRO_SLOT           "avro_debezium_slot"
#define DEFAULT_REGISTRY    "http://127.0.0.1:8085/apis/registry/v2"
#define AVRO_CONVERTER      "io.apicurio.registry.utils.converter.AvroConverter"
#define HTTP_BODY_CAP       (4u << 20)     /* Connect's answers are small; a trace is a few KB */
#define TRACE_LINES         8

/* ------------------------------------------------------------- options */

void cf_ops_conn_defaults(cf_ops_conn_opts *o)
{
    memset(o, 0, sizeof *o);
    o->action = CF_CONN_STATUS;
    o->connect_url = cf_ops_env("KAFKA_CONNECT_URL", DEFAULT_CONNECT_URL);
    o->name = DEFAULT_NAME;
    o->tables = DEFAULT_TABLES;
    o->topic_prefix = "postgres";
    o->slot = "postgres_debezium_slot";
    o->publication = "dbz_publication";
    o->decimal_mode = "precise";
    o->format = "json";
    o->registry_url = cf_ops_env("SCHEMA_REGISTRY_URL", DEFAULT_REGISTRY);
    o->avro_framing = "confluent";
    o->db_host = cf_ops_env("PGHOST", "127.0.0.1");
    o->db_port = cf_ops_env("PGPORT", "5432");
    o->db_user = cf_ops_env("PGUSER", "cdcuser");
    o->db_password = cf_ops_env("PGPASSWORD", "cdcpass");
    o->db_name = cf_ops_env("PGDATABASE", "cdcdb");
    o->wait_s = 60;
    o->timeout_s = 10;
    o->out = stdout;
    o->log = stderr;
}

int cf_ops_conn_parse(int argc, char **argv, cf_ops_conn_opts *o, cf_err *err)
{
    bool have_action = false;
    const char *v;
    int r;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = true;
            continue;
        }
        if (a[0] != '-') {
            if (have_action)
                return cf_err_set(err, CF_E_ARG, "unexpected argument '%s'", a);
            if (!strcmp(a, "register"))
                o->action = CF_CONN_REGISTER;
            else if (!strcmp(a, "status"))
                o->action = CF_CONN_STATUS;
            else if (!strcmp(a, "delete"))
                o->action = CF_CONN_DELETE;
            else
                return cf_err_set(err, CF_E_ARG, "unknown action '%s' (register, status, delete)", a);
            have_action = true;
            continue;
        }
        if (!strcmp(a, "--drop-slot")) {
            o->drop_slot = true;
            continue;
        }
#define STR_OPT(flag, field) \
        if ((r = cf_ops_opt(argc, argv, &i, flag, &v, err)) != 0) { \
            if (r < 0) return -1; \
            o->field = v; continue; }
        STR_OPT("--connect-url", connect_url)
        if ((r = cf_ops_opt(argc, argv, &i, "--name", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->name = v;
            o->name_set = true;
            continue;
        }
        STR_OPT("--tables", tables)
        if ((r = cf_ops_opt(argc, argv, &i, "--topic-prefix", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->topic_prefix = v;
            o->prefix_set = true;
            continue;
        }
        STR_OPT("--format", format)
        STR_OPT("--registry-url", registry_url)
        STR_OPT("--avro-framing", avro_framing)
        if ((r = cf_ops_opt(argc, argv, &i, "--slot", &v, err)) != 0) {
            if (r < 0)
                return -1;
            o->slot = v;
            o->slot_set = true;
            continue;
        }
        STR_OPT("--publication", publication)
        STR_OPT("--decimal-handling", decimal_mode)
        STR_OPT("--db-host", db_host)
        STR_OPT("--db-port", db_port)
        STR_OPT("--db-user", db_user)
        STR_OPT("--db-password", db_password)
        STR_OPT("--db-name", db_name)
#undef STR_OPT
        if ((r = cf_ops_opt(argc, argv, &i, "--set", &v, err)) != 0) {
            if (r < 0)
                return -1;
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return cf_err_set(err, CF_E_ARG, "--set wants key=value, got '%s'", v);
            if (o->nsets == CF_OPS_CONN_MAX_SETS)
                return cf_err_set(err, CF_E_ARG, "at most %d --set options", CF_OPS_CONN_MAX_SETS);
            o->sets[o->nsets++] = v;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--wait", &v, err)) != 0) {
            if (r < 0 || cf_ops_parse_double(v, "--wait", 0, 86400, &o->wait_s, err) < 0)
                return -1;
            continue;
        }
        if ((r = cf_ops_opt(argc, argv, &i, "--timeout", &v, err)) != 0) {
            if (r < 0 || cf_ops_parse_double(v, "--timeout", 0.1, 3600, &o->timeout_s, err) < 0)
                return -1;
            continue;
        }
        return cf_err_set(err, CF_E_ARG, "unknown option '%s'", a);
    }
    if (o->help)
        return 0;
    if (strcmp(o->format, "json") && strcmp(o->format, "avro"))
        return cf_err_set(err, CF_E_ARG, "--format: '%s' is not json or avro", o->format);
    if (strcmp(o->avro_framing, "confluent") && strcmp(o->avro_framing, "apicurio"))
        return cf_err_set(err, CF_E_ARG, "--avro-framing: '%s' is not confluent or apicurio",
                          o->avro_framing);
    if (!strcmp(o->format, "avro")) {
        /* The Avro connector runs beside the JSON one: its own name, topics
         * and replication slot unless told otherwise. */
        if (!o->name_set)
            o->name = AVRO_NAME;
        if (!o->prefix_set)
            o->topic_prefix = AVRO_PREFIX;
        if (!o->slot_set)
            o->slot = AVRO_SLOT;
        if (!*o->registry_url)
            return cf_err_set(err, CF_E_ARG, "--registry-url: empty");
    }
    if (!have_action)
        return cf_err_set(err, CF_E_ARG, "missing action: register, status or delete");
    if (strcmp(o->decimal_mode, "precise") && strcmp(o->decimal_mode, "double") &&
        strcmp(o->decimal_mode, "string"))
        return cf_err_set(err, CF_E_ARG, "--decimal-handling: '%s' is not precise, double or string",
                          o->decimal_mode);
    if (!*o->name || strchr(o->name, '/'))
        return cf_err_set(err, CF_E_ARG, "--name: '%s' is not a connector name", o->name);
    if (!*o->tables)
        return cf_err_set(err, CF_E_ARG, "--tables: empty table list");
    if (o->drop_slot && o->action != CF_CONN_DELETE)
        return cf_err_set(err, CF_E_ARG, "--drop-slot goes with delete");
    return 0;
}

/* "customers, public.orders" -> "public.customers,public.orders": Debezium
 * matches include lists against schema-qualified names. */
static int qualify_tables(const char *list, cf_buf *out, cf_err *err)
{
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n) {
            if (out->len && cf_buf_putc(out, ',', err) < 0)
                return -1;
            if (!memchr(p, '.', n) && cf_buf_append(out, "public.", 7, err) < 0)
                return -1;
            if (cf_buf_append(out, p, n, err) < 0)
                return -1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (!out->len)
        return cf_err_set(err, CF_E_ARG, "--tables: empty table list");
    return cf_buf_cstr(out, err) ? 0 : -1;
}

json_t *cf_ops_conn_config(const cf_ops_conn_opts *o, cf_err *err)
{
    json_t *c = json_object();
    cf_buf tables;
    int bad = 0;

    if (!c) {
        cf_err_set(err, CF_E_NOMEM, "out of memory building the connector config");
        return NULL;
    }
    cf_buf_init(&tables, 1u << 16);
    if (qualify_tables(o->tables, &tables, err) < 0) {
        cf_buf_free(&tables);
        json_decref(c);
        return NULL;
    }
#define PUT(k, v) bad |= json_object_set_new(c, k, json_string(v))
    PUT("connector.class", "io.debezium.connector.postgresql.PostgresConnector");
    PUT("tasks.max", "1");
    PUT("database.hostname", o->db_host);
    PUT("database.port", o->db_port);
    PUT("database.user", o->db_user);
    PUT("database.password", o->db_password);
    PUT("database.dbname", o->db_name);
    PUT("topic.prefix", o->topic_prefix);
    PUT("plugin.name", "pgoutput");
    PUT("slot.name", o->slot);
    PUT("publication.name", o->publication);
    PUT("publication.autocreate.mode", "filtered");
    PUT("table.include.list", (const char *)tables.data);
    if (!strcmp(o->format, "avro")) {
        /* Apicurio's AvroConverter (2.6) for key and value: registers each
         * writer schema (artifact TOPIC-key / TOPIC-value, group default) and
         * frames every message with magic byte 0 and the schema's id:
         *   confluent: 4-byte content id, the id /apis/ccompat/v7/schemas/ids/N
         *              serves (Confluent's wire format; as-confluent sets the
         *              4-byte id handler, use-id picks the content id);
         *   apicurio:  8-byte global id (/apis/registry/v2/ids/globalIds/N),
         *              Apicurio's own default.
         * Headers off: the id travels in the payload, never in Kafka headers. */
        static const char *const side[] = { "key.converter", "value.converter" };
        bool conf = !strcmp(o->avro_framing, "confluent");
        char k[96];
        for (int s = 0; s < 2; s++) {
#define SIDE(suffix, v) (snprintf(k, sizeof k, "%s%s", side[s], suffix), PUT(k, v))
            SIDE("", AVRO_CONVERTER);
            SIDE(".apicurio.registry.url", o->registry_url);
            SIDE(".apicurio.registry.auto-register", "true");
            SIDE(".apicurio.registry.find-latest", "true");
            SIDE(".apicurio.registry.headers.enabled", "false");
            SIDE(".apicurio.registry.as-confluent", conf ? "true" : "false");
            SIDE(".apicurio.registry.use-id", conf ? "contentId" : "globalId");
#undef SIDE
        }
    } else {
        PUT("key.converter", "org.apache.kafka.connect.json.JsonConverter");
        PUT("key.converter.schemas.enable", "true");
        PUT("value.converter", "org.apache.kafka.connect.json.JsonConverter");
        PUT("value.converter.schemas.enable", "true");
    }
    PUT("decimal.handling.mode", o->decimal_mode);
    /* Debezium waits this long for changes when the WAL stream is idle (500
     * ms by default): half of the end-to-end time of a single change */
    PUT("poll.interval.ms", "50");
#undef PUT
    cf_buf_free(&tables);
    for (int i = 0; i < o->nsets && !bad; i++) {
        const char *eq = strchr(o->sets[i], '=');
        char key[256];
        size_t kn;
        if (!eq || eq == o->sets[i] || (kn = (size_t)(eq - o->sets[i])) >= sizeof key) {
            cf_err_set(err, CF_E_ARG, "--set wants key=value, got '%s'", o->sets[i]);
            json_decref(c);
            return NULL;
        }
        memcpy(key, o->sets[i], kn);
        key[kn] = '\0';
        bad |= json_object_set_new(c, key, json_string(eq + 1));
    }
    if (bad) {
        /* json_string() refuses invalid UTF-8; everything else is memory. */
        cf_err_set(err, CF_E_ARG, "connector config: a value is not valid UTF-8 (or out of memory)");
        json_decref(c);
        return NULL;
    }
    return c;
}

bool cf_ops_conn_config_same(json_t *want, json_t *have)
{
    const char *k;
    json_t *v;

    json_object_foreach(want, k, v)
        if (!json_equal(v, json_object_get(have, k)))
            return false;
    /* Connect adds "name" to what it returns; anything else is a difference. */
    json_object_foreach(have, k, v)
        if (strcmp(k, "name") && !json_object_get(want, k))
            return false;
    return true;
}

/* -------------------------------------------------------------- status */

static void copy_str(char *dst, size_t dsz, json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    snprintf(dst, dsz, "%s", s);
}

void cf_ops_first_lines(const char *trace, int max_lines, char *out, size_t outsz)
{
    size_t n = 0;
    int lines = 0;

    if (!outsz)
        return;
    while (trace[n] && lines < max_lines) {
        if (trace[n] == '\n')
            lines++;
        n++;
    }
    if (n && trace[n - 1] == '\n')
        n--;
    if (n >= outsz)
        n = outsz - 1;
    memcpy(out, trace, n);
    out[n] = '\0';
}

int cf_ops_conn_parse_status(const char *body, size_t len, cf_ops_conn_status *st, cf_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je), *conn, *tasks, *t;
    size_t i;

    memset(st, 0, sizeof *st);
    if (!root)
        return cf_err_setpos(err, CF_E_PARSE, je.position, "connector status: %s", je.text);
    conn = json_object_get(root, "connector");
    if (!json_is_object(conn)) {
        json_decref(root);
        return cf_err_set(err, CF_E_PARSE, "connector status: no \"connector\" object");
    }
    copy_str(st->state, sizeof st->state, json_object_get(conn, "state"));
    copy_str(st->worker, sizeof st->worker, json_object_get(conn, "worker_id"));
    if (json_is_string(json_object_get(conn, "trace")))
        cf_ops_first_lines(json_string_value(json_object_get(conn, "trace")), TRACE_LINES,
                           st->trace, sizeof st->trace);
    tasks = json_object_get(root, "tasks");
    json_array_foreach(tasks, i, t) {
        if (st->ntasks == CF_OPS_CONN_MAX_TASKS)
            break;
        st->tasks[st->ntasks].id = (int)json_integer_value(json_object_get(t, "id"));
        copy_str(st->tasks[st->ntasks].state, sizeof st->tasks[0].state, json_object_get(t, "state"));
        copy_str(st->tasks[st->ntasks].worker, sizeof st->tasks[0].worker,
                 json_object_get(t, "worker_id"));
        if (!st->trace[0] && json_is_string(json_object_get(t, "trace")))
            cf_ops_first_lines(json_string_value(json_object_get(t, "trace")), TRACE_LINES,
                               st->trace, sizeof st->trace);
        st->ntasks++;
    }
    json_decref(root);
    return 0;
}

bool cf_ops_conn_all_running(const cf_ops_conn_status *st)
{
    if (strcmp(st->state, "RUNNING") || st->ntasks == 0)
        return false;
    for (int i = 0; i < st->ntasks; i++)
        if (strcmp(st->tasks[i].state, "RUNNING"))
            return false;
    return true;
}

bool cf_ops_conn_any_failed(const cf_ops_conn_status *st)
{
    if (!strcmp(st->state, "FAILED"))
        return true;
    for (int i = 0; i < st->ntasks; i++)
        if (!strcmp(st->tasks[i].state, "FAILED"))
            return true;
    return false;
}

/* ---------------------------------------------------------------- HTTP */

typedef struct http_resp {
    long   code;
    cf_buf body;
} http_resp;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    cf_buf *b = ud;
    size_t n = size * nmemb;
    /* Returning short makes curl fail the transfer: the cap was hit. */
    return cf_buf_append(b, p, n, NULL) < 0 ? 0 : n;
}

/* One request to Kafka Connect; r->body is reset and filled.  Any HTTP status
 * is success here (the caller judges it); -1 only when no answer came. */
static int http(const char *method, const char *url, const char *body, double timeout_s,
                http_resp *r, cf_err *err)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char ebuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    if (!h)
        return cf_err_set(err, CF_E_NOMEM, "curl_easy_init failed");
    cf_buf_reset(&r->body);
    r->code = 0;
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->code);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
        rc == CURLE_OPERATION_TIMEDOUT) {
        cf_err_set(err, CF_E_IO, "Kafka Connect is not reachable at %s (%s); "
                   "is the stack running? Start it with `scripts/stack.sh start`",
                   url, ebuf[0] ? ebuf : curl_easy_strerror(rc));
        err->retriable = true;
        return -1;
    }
    if (rc != CURLE_OK)
        return cf_err_set(err, CF_E_HTTP, "%s %s: %s", method, url,
                          ebuf[0] ? ebuf : curl_easy_strerror(rc));
    return 0;
}

/* Connect's error bodies are {"error_code": N, "message": "..."}. */
static void connect_message(const http_resp *r, char *out, size_t outsz)
{
    json_t *root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    json_t *m = json_object_get(root, "message");
    if (json_is_string(m))
        snprintf(out, outsz, "%s", json_string_value(m));
    else
        snprintf(out, outsz, "%.*s", (int)(r->body.len > 400 ? 400 : r->body.len),
                 r->body.data ? (const char *)r->body.data : "");
    json_decref(root);
}

static int connector_url(cf_buf *u, const cf_ops_conn_opts *o, const char *tail, cf_err *err)
{
    char *name = curl_easy_escape(NULL, o->name, 0);
    const char *base = o->connect_url;
    size_t bl = strlen(base);
    int rc;

    if (!name)
        return cf_err_set(err, CF_E_NOMEM, "out of memory escaping the connector name");
    while (bl && base[bl - 1] == '/')
        bl--;
    cf_buf_reset(u);
    rc = cf_buf_printf(u, err, "%.*s/connectors/%s%s", (int)bl, base, name, tail);
    curl_free(name);
    return rc < 0 || !cf_buf_cstr(u, err) ? -1 : 0;
}

/* GET status: 1 = parsed into *st, 0 = connector not registered (404). */
static int get_status(const cf_ops_conn_opts *o, http_resp *r, cf_ops_conn_status *st, cf_err *err)
{
    cf_buf u;
    char msg[512];

    cf_buf_init(&u, 4096);
    if (connector_url(&u, o, "/status", err) < 0 ||
        http("GET", (const char *)u.data, NULL, o->timeout_s, r, err) < 0) {
        cf_buf_free(&u);
        return -1;
    }
    cf_buf_free(&u);
    if (r->code == 404)
        return 0;
    if (r->code != 200) {
        connect_message(r, msg, sizeof msg);
        return cf_err_set(err, CF_E_HTTP, "GET status: HTTP %ld: %s", r->code, msg);
    }
    return cf_ops_conn_parse_status((const char *)r->body.data, r->body.len, st, err) < 0 ? -1 : 1;
}

static void print_status(FILE *f, const char *name, const cf_ops_conn_status *st)
{
    fprintf(f, "connector %s: %s%s%s\n", name, st->state[0] ? st->state : "UNKNOWN",
            st->worker[0] ? " on " : "", st->worker);
    if (st->ntasks == 0)
        fprintf(f, "  no tasks yet\n");
    for (int i = 0; i < st->ntasks; i++)
        fprintf(f, "  task %d: %s%s%s\n", st->tasks[i].id, st->tasks[i].state,
                st->tasks[i].worker[0] ? " on " : "", st->tasks[i].worker);
    if (st->trace[0])
        fprintf(f, "  error (first lines of Connect's trace):\n    %s\n", st->trace);
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------- actions */

/* PUT /connector-plugins/CLASS/config/validate with the config `body`; when
 * it names errors, they replace *msg ("key: error; ..."). */
static void validate_errors(const cf_ops_conn_opts *o, const char *body, http_resp *r, char *msg,
                            size_t msgsz)
{
    const char *base = o->connect_url;
    size_t bl = strlen(base), n = 0;
    cf_buf u;
    cf_err e = { 0 };
    json_t *root, *configs, *c, *cfg = json_loads(body, 0, NULL);
    char *vbody;
    size_t i;
    int rc;

    /* The validate endpoint wants the name inside the config. */
    if (!cfg || json_object_set_new(cfg, "name", json_string(o->name)) < 0 ||
        !(vbody = json_dumps(cfg, JSON_SORT_KEYS))) {
        json_decref(cfg);
        return;
    }
    json_decref(cfg);
    while (bl && base[bl - 1] == '/')
        bl--;
    cf_buf_init(&u, 4096);
    rc = cf_buf_printf(&u, &e, "%.*s/connector-plugins/io.debezium.connector.postgresql.PostgresConnector"
                       "/config/validate", (int)bl, base) < 0 || !cf_buf_cstr(&u, &e) ||
         http("PUT", (const char *)u.data, vbody, o->timeout_s, r, &e) < 0 || r->code != 200;
    free(vbody);
    cf_buf_free(&u);
    if (rc)
        return;
    root = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
    configs = json_object_get(root, "configs");
    json_array_foreach(configs, i, c) {
        json_t *v = json_object_get(c, "value"), *errs = json_object_get(v, "errors"), *m;
        const char *name = json_string_value(json_object_get(v, "name"));
        size_t j;
        json_array_foreach(errs, j, m) {
            if (!json_is_string(m) || n + 4 >= msgsz)
                continue;
            int w = snprintf(msg + n, msgsz - n, "%s%s: %s", n ? "; " : "", name ? name : "?",
                             json_string_value(m));
            n = w < 0 ? n : (n + (size_t)w < msgsz ? n + (size_t)w : msgsz - 1);
        }
    }
    json_decref(root);
}

static int wait_running(const cf_ops_conn_opts *o, http_resp *r, double t0, cf_err *err);

static int do_register(const cf_ops_conn_opts *o, http_resp *r, cf_err *err)
{
    json_t *cfg = cf_ops_conn_config(o, err);
    char *body;
    cf_buf u;
    double t0 = cf_ops_now();
    char msg[512];
    int rc;

    if (!cfg)
        return -1;
    body = json_dumps(cfg, JSON_SORT_KEYS);
    if (!body) {
        json_decref(cfg);
        return cf_err_set(err, CF_E_NOMEM, "out of memory serialising the connector config");
    }
    cf_buf_init(&u, 4096);
    if (connector_url(&u, o, "/config", err) < 0) {
        json_decref(cfg);
        free(body);
        cf_buf_free(&u);
        return -1;
    }
    /* A config update restarts the connector and its task; when nothing
     * changed, leave the running connector alone. */
    rc = http("GET", (const char *)u.data, NULL, o->timeout_s, r, err);
    if (rc == 0 && r->code == 200) {
        json_t *have = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        bool same = have && cf_ops_conn_config_same(cfg, have);
        json_decref(have);
        if (same) {
            json_decref(cfg);
            free(body);
            cf_buf_free(&u);
            fprintf(o->out, "connector %s unchanged at %s\n", o->name, o->connect_url);
            fflush(o->out);
            return wait_running(o, r, t0, err);
        }
    }
    json_decref(cfg);
    /* PUT creates or replaces the config: running register twice is safe.
     * 409 means the Connect cluster is rebalancing; it passes. */
    for (;;) {
        rc = http("PUT", (const char *)u.data, body, o->timeout_s, r, err);
        if (rc == 0 && r->code != 409)
            break;
        if (rc < 0 && !err->retriable)
            break;
        /* Unreachable: give a just-started Connect a few seconds, not the
         * whole --wait, so a stack that is down is reported promptly. */
        if (cf_ops_now() - t0 >= (rc < 0 ? (o->wait_s < 5 ? o->wait_s : 5) : o->wait_s))
            break;
        sleep_s(1);
    }
    cf_buf_free(&u);
    if (rc < 0) {
        free(body);
        return -1;
    }
    if (r->code != 200 && r->code != 201) {
        long code = r->code;
        connect_message(r, msg, sizeof msg);
        /* Connect 4.3 answers a config its validation refused with a 500
         * (an NPE while it formats the errors) instead of the 400 that names
         * them; the validate endpoint still names them. */
        if (code == 500)
            validate_errors(o, body, r, msg, sizeof msg);
        free(body);
        return cf_err_set(err, CF_E_HTTP, "Kafka Connect refused connector %s (HTTP %ld): %s",
                          o->name, code, msg);
    }
    free(body);
    fprintf(o->out, "connector %s %s at %s\n", o->name, r->code == 201 ? "created" : "updated",
           o->connect_url);
    fflush(o->out);
    return wait_running(o, r, t0, err);
}

/* Polls the status until the connector and every task are RUNNING (0), or
 * one FAILED even after a restart, or --wait passed (-1). */
static int wait_running(const cf_ops_conn_opts *o, http_resp *r, double t0, cf_err *err)
{
    cf_ops_conn_status st;
    bool restarted = false, resumed = false;
    cf_buf u;
    int rc;

    for (;;) {
        rc = get_status(o, r, &st, err);
        if (rc < 0 && !err->retriable)
            return -1;
        if (rc > 0 && !resumed && (!strcmp(st.state, "PAUSED") || !strcmp(st.state, "STOPPED"))) {
            /* Registering means "make it run": a paused or stopped
             * connector keeps its config and offsets, and resumes. */
            fprintf(o->out, "connector %s is %s; resuming it\n", o->name, st.state);
            cf_buf_init(&u, 4096);
            if (connector_url(&u, o, "/resume", err) == 0)
                (void)http("PUT", (const char *)u.data, "", o->timeout_s, r, err);
            cf_buf_free(&u);
            resumed = true;
            sleep_s(0.5);
            continue;
        }
        if (rc > 0 && cf_ops_conn_all_running(&st)) {
            print_status(o->out, o->name, &st);
            return 0;
        }
        if (rc > 0 && cf_ops_conn_any_failed(&st)) {
            /* An unchanged config is not PUT, so a failed connector would
             * stay failed; ask for one restart, then believe what Connect
             * says. */
            if (!restarted) {
                cf_buf_init(&u, 4096);
                if (connector_url(&u, o, "/restart?includeTasks=true&onlyFailed=true", err) == 0)
                    (void)http("POST", (const char *)u.data, "", o->timeout_s, r, err);
                cf_buf_free(&u);
                restarted = true;
                sleep_s(2);
                continue;
            }
            print_status(o->log, o->name, &st);
            return cf_err_set(err, CF_E_HTTP, "connector %s FAILED (see the trace above)", o->name);
        }
        if (o->wait_s == 0 && rc > 0) {
            /* --wait 0: registering was the job; show where it stands. */
            print_status(o->out, o->name, &st);
            return 0;
        }
        if (cf_ops_now() - t0 >= o->wait_s) {
            if (rc > 0)
                print_status(o->log, o->name, &st);
            return cf_err_set(err, CF_E_HTTP, "connector %s not RUNNING after %.0f s (--wait)",
                              o->name, o->wait_s);
        }
        sleep_s(0.5);
    }
}

static int do_status(const cf_ops_conn_opts *o, http_resp *r, cf_err *err)
{
    cf_ops_conn_status st;
    int rc = get_status(o, r, &st, err);

    if (rc < 0)
        return -1;
    if (rc == 0) {
        fprintf(o->out, "connector %s: not registered at %s\n", o->name, o->connect_url);
        return 1;
    }
    print_status(o->out, o->name, &st);
    return cf_ops_conn_all_running(&st) ? 0 : 1;
}

/* Drops replication slot `slot` once no client holds it.  `registered`: the
 * connector owning it was just deleted, so an active slot is its task still
 * shutting down and is waited for (up to --wait).  Otherwise an active slot
 * belongs to somebody else and is left alone. */
static int drop_slot(const cf_ops_conn_opts *o, const char *slot, bool registered, cf_err *err)
{
    const char *keys[] = { "host", "port", "user", "password", "dbname", "connect_timeout",
                           "application_name", NULL };
    const char *vals[] = { o->db_host, o->db_port, o->db_user, o->db_password, o->db_name, "10",
                           "cdcflow-connector", NULL };
    const char *params[1] = { slot };
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    double t0 = cf_ops_now();
    int rc = -1;

    if (PQstatus(c) != CONNECTION_OK) {
        cf_err_set(err, CF_E_DB, "cannot connect to PostgreSQL %s:%s/%s: %s", o->db_host, o->db_port,
                   o->db_name, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    for (;;) {
        PGresult *res = PQexecParams(c,
            "SELECT active, active_pid FROM pg_replication_slots WHERE slot_name = $1",
            1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            cf_err_set(err, CF_E_DB, "reading pg_replication_slots: %s", PQresultErrorMessage(res));
            PQclear(res);
            break;
        }
        if (PQntuples(res) == 0) {
            fprintf(o->out, "replication slot %s: does not exist\n", slot);
            PQclear(res);
            rc = 0;
            break;
        }
        bool active = !strcmp(PQgetvalue(res, 0, 0), "t");
        char pid[32];
        snprintf(pid, sizeof pid, "%s", PQgetvalue(res, 0, 1));
        PQclear(res);
        if (!active) {
            res = PQexecParams(c, "SELECT pg_drop_replication_slot($1)", 1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                fprintf(o->out, "replication slot %s dropped\n", slot);
                rc = 0;
            } else {
                cf_err_set(err, CF_E_DB, "dropping replication slot %s: %s", slot,
                           PQresultErrorMessage(res));
            }
            PQclear(res);
            break;
        }
        if (!registered) {
            cf_err_set(err, CF_E_DB, "replication slot %s is in use by another client (pid %s); "
                       "not dropping it", slot, pid);
            break;
        }
        if (cf_ops_now() - t0 >= o->wait_s) {
            cf_err_set(err, CF_E_DB, "replication slot %s still in use (pid %s) %.0f s after the "
                       "connector was deleted; not dropping it", slot, pid, o->wait_s);
            break;
        }
        sleep_s(0.5);
    }
    PQfinish(c);
    return rc;
}

static int do_delete(const cf_ops_conn_opts *o, http_resp *r, cf_err *err)
{
    cf_buf u;
    char msg[512], slot[256];
    bool registered = false;
    int rc;

    /* The slot to drop is the one the connector really uses, not our
     * default: --slot only wins when given. */
    snprintf(slot, sizeof slot, "%s", o->slot);
    cf_buf_init(&u, 4096);
    rc = connector_url(&u, o, "/config", err);
    if (rc == 0)
        rc = http("GET", (const char *)u.data, NULL, o->timeout_s, r, err);
    if (rc == 0 && r->code == 200) {
        json_t *cfg = json_loadb((const char *)r->body.data, r->body.len, 0, NULL);
        json_t *s = json_object_get(cfg, "slot.name");
        if (!o->slot_set && json_is_string(s))
            snprintf(slot, sizeof slot, "%s", json_string_value(s));
        json_decref(cfg);
    }
    if (rc == 0)
        rc = connector_url(&u, o, "", err);
    if (rc == 0)
        rc = http("DELETE", (const char *)u.data, NULL, o->timeout_s, r, err);
    cf_buf_free(&u);
    if (rc < 0)
        return -1;
    if (r->code == 404) {
        fprintf(o->out, "connector %s: not registered, nothing to delete\n", o->name);
    } else if (r->code == 204 || r->code == 200) {
        fprintf(o->out, "connector %s deleted\n", o->name);
        registered = true;
    } else {
        connect_message(r, msg, sizeof msg);
        return cf_err_set(err, CF_E_HTTP, "DELETE connector %s: HTTP %ld: %s", o->name, r->code, msg);
    }
    fflush(o->out);
    return o->drop_slot ? drop_slot(o, slot, registered, err) : 0;
}

static void usage(FILE *f)
{
    fputs("Usage: cdcflow connector register|status|delete [options]\n"
          "\n"
          "Manage the Debezium PostgreSQL connector on Kafka Connect.\n"
          "  register   create or update the connector (PUT, idempotent; left alone when\n"
          "             unchanged), resume it if paused, wait until it and its task are\n"
          "             RUNNING; on FAILED print Connect's error\n"
          "  status     print connector and task states; exit 0 only if all RUNNING\n"
          "  delete     remove the connector (--drop-slot also drops the replication slot)\n"
          "\n"
          "Options:\n"
          "  --connect-url URL       Kafka Connect REST URL (env KAFKA_CONNECT_URL,\n"
          "                          default " DEFAULT_CONNECT_URL ")\n"
          "  --name NAME             connector name (default " DEFAULT_NAME ")\n"
          "  --tables LIST           tables to capture (default\n"
          "                          " DEFAULT_TABLES ")\n"
          "  --topic-prefix P        topic prefix (default postgres)\n"
          "  --slot NAME             replication slot (default postgres_debezium_slot; delete\n"
          "                          --drop-slot uses the registered connector's slot)\n"
          "  --format json|avro      message format (default json: JsonConverter with schemas).\n"
          "                          avro: Apicurio's AvroConverter for key and value, schemas in\n"
          "                          the registry; name, topic prefix and slot default to\n"
          "                          " AVRO_NAME ", " AVRO_PREFIX ", " AVRO_SLOT "\n"
          "                          so it runs beside the JSON connector\n"
          "  --registry-url URL      avro: Apicurio Registry v2 API (env SCHEMA_REGISTRY_URL,\n"
          "                          default " DEFAULT_REGISTRY ")\n"
          "  --avro-framing F        avro: confluent (magic 0 + 4-byte content id, default) or\n"
          "                          apicurio (magic 0 + 8-byte global id)\n"
          "  --publication NAME      publication (default dbz_publication, auto-created filtered)\n"
          "  --decimal-handling M    precise | double | string (default precise)\n"
          "  --db-host/--db-port/--db-user/--db-password/--db-name V\n"
          "                          database as Connect sees it (env PGHOST PGPORT PGUSER\n"
          "                          PGPASSWORD PGDATABASE; default 127.0.0.1 5432 cdcuser\n"
          "                          cdcpass cdcdb)\n"
          "  --set KEY=VALUE         extra connector config, may repeat (wins over the above)\n"
          "  --wait SECONDS          register: wait this long for RUNNING (default 60,\n"
          "                          0 = do not wait); delete --drop-slot: this long for\n"
          "                          the slot to be released\n"
          "  --timeout SECONDS       per HTTP request (default 10)\n"
          "  --drop-slot             delete: drop the replication slot as well (libpq); a slot\n"
          "                          another client holds is never dropped\n"
          "  -h, --help              this help\n"
          "\n"
          "Exit status: 0 success, 1 failure (not RUNNING, FAILED, unreachable), 2 usage.\n", f);
}

int cf_ops_conn_run(const cf_ops_conn_opts *o, cf_err *err)
{
    http_resp r;
    int rc;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cf_err_set(err, CF_E_HTTP, "curl_global_init failed");
    r.code = 0;
    cf_buf_init(&r.body, HTTP_BODY_CAP);
    switch (o->action) {
    case CF_CONN_REGISTER: rc = do_register(o, &r, err); break;
    case CF_CONN_DELETE:   rc = do_delete(o, &r, err); break;
    default:               rc = do_status(o, &r, err); break;
    }
    cf_buf_free(&r.body);
    curl_global_cleanup();
    return rc;
}

int cf_cmd_connector(int argc, char **argv)
{
    cf_ops_conn_opts o;
    cf_err err = { 0 };
    int rc;

    cf_ops_conn_defaults(&o);
    if (cf_ops_conn_parse(argc, argv, &o, &err) < 0) {
        fprintf(stderr, "cdcflow connector: %s\n", err.msg);
        usage(stderr);
        return 2;
    }
    if (o.help) {
        usage(stdout);
        return 0;
    }
    rc = cf_ops_conn_run(&o, &err);
    if (rc < 0) {
        fprintf(stderr, "cdcflow connector: %s\n", err.msg);
        return 1;
    }
    return rc;
}
