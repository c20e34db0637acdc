/* test_ops_connector.c - `cdcflow connector` against a scripted stand-in for
 * Kafka Connect's REST API (libmicrohttpd): create, unchanged, 409 retry,
 * FAILED with restart and trace, refused config, status, delete, no server. */
#include "cf_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "ops/ops.h"

/* ------------------------------------------------------- the stand-in */

typedef struct fake {
    pthread_mutex_t mu;
    /* canned answers */
    int         config_code;            /* GET .../config */
    const char *config_body;
    int         put_codes[4];           /* PUT answers in turn, last one repeats */
    const char *put_body;
    const char *status_bodies[4];       /* GET .../status in turn, last one repeats; NULL = 404 */
    int         delete_code;
    /* what was asked */
    int         gets_config, puts, gets_status, posts, deletes, resumes;
    char        last_put[8192];
    char        last_post_url[256];
} fake;

static fake F;

typedef struct upload { char buf[8192]; size_t len; } upload;

static enum MHD_Result answer(struct MHD_Connection *c, int code, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **state)
{
    upload *u = *state;

    if (!u) {                                   /* first call: headers only */
        *state = calloc(1, sizeof(upload));
        return *state ? MHD_YES : MHD_NO;
    }
    if (*data_size) {
        size_t n = *data_size < sizeof u->buf - 1 - u->len ? *data_size : sizeof u->buf - 1 - u->len;
        memcpy(u->buf + u->len, data, n);
        u->len += n;
        *data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&F.mu);
    int code = 404;
    const char *body = "{\"error_code\":404,\"message\":\"Connector c not found\"}";
    size_t ul = strlen(url);
    bool is_config = ul > 7 && !strcmp(url + ul - 7, "/config");
    bool is_status = ul > 7 && !strcmp(url + ul - 7, "/status");
    if (!strcmp(method, "GET") && is_config) {
        F.gets_config++;
        if (F.config_code == 200) {
            code = 200;
            body = F.config_body;
        }
    } else if (!strcmp(method, "PUT") && is_config) {
        int i = F.puts < 4 ? F.puts : 3;
        while (i > 0 && !F.put_codes[i])
            i--;
        F.puts++;
        code = F.put_codes[i];
        body = code == 409 ? "{\"error_code\":409,\"message\":\"rebalance\"}" : F.put_body;
        snprintf(F.last_put, sizeof F.last_put, "%.*s", (int)u->len, u->buf);
    } else if (!strcmp(method, "GET") && is_status) {
        int i = F.gets_status < 4 ? F.gets_status : 3;
        while (i > 0 && !F.status_bodies[i])
            i--;
        F.gets_status++;
        if (F.status_bodies[i]) {
            code = 200;
            body = F.status_bodies[i];
        }
    } else if (!strcmp(method, "PUT") && ul > 7 && !strcmp(url + ul - 7, "/resume")) {
        F.resumes++;
        code = 202;
        body = "";
    } else if (!strcmp(method, "POST")) {
        F.posts++;
        snprintf(F.last_post_url, sizeof F.last_post_url, "%s", url);
        code = 202;
        body = "{}";
    } else if (!strcmp(method, "DELETE")) {
        F.deletes++;
        code = F.delete_code;
        body = "";
    }
    pthread_mutex_unlock(&F.mu);
    return answer(c, code, body);
}

static void done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t)
{
    free(*state);
    *state = NULL;
}

static struct MHD_Daemon *daemon_;
static char url[64];

static void start(void)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    memset(&F, 0, sizeof F);
    F.mu = mu;
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL,
                               MHD_OPTION_NOTIFY_COMPLETED, done, NULL, MHD_OPTION_END);
    CHECK(daemon_ != NULL);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", di ? di->port : 0);
}

static void stop(void)
{
    MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}

/* Runs `connector <action>` against the stand-in; output and log captured. */
static char out_text[16384], log_text[16384];

static int run(cf_ops_conn_action action, double wait_s, cf_err *e)
{
    cf_ops_conn_opts o;
    char *ob = NULL, *lb = NULL;
    size_t ol, ll;
    int rc;

    cf_ops_conn_defaults(&o);
    o.action = action;
    o.connect_url = url;
    o.name = "c";
    o.wait_s = wait_s;
    o.timeout_s = 5;
    o.out = open_memstream(&ob, &ol);
    o.log = open_memstream(&lb, &ll);
    e->code = CF_OK;
    e->msg[0] = '\0';
    rc = cf_ops_conn_run(&o, e);
    fclose(o.out);
    fclose(o.log);
    snprintf(out_text, sizeof out_text, "%s", ob ? ob : "");
    snprintf(log_text, sizeof log_text, "%s", lb ? lb : "");
    free(ob);
    free(lb);
    return rc;
}

#define RUNNING "{\"name\":\"c\",\"connector\":{\"state\":\"RUNNING\",\"worker_id\":\"w:1\"}," \
                "\"tasks\":[{\"id\":0,\"state\":\"RUNNING\",\"worker_id\":\"w:1\"}],\"type\":\"source\"}"
#define NO_TASKS "{\"name\":\"c\",\"connector\":{\"state\":\"RUNNING\",\"worker_id\":\"w:1\"},\"tasks\":[]}"
#define FAILED "{\"name\":\"c\",\"connector\":{\"state\":\"RUNNING\",\"worker_id\":\"w:1\"}," \
               "\"tasks\":[{\"id\":0,\"state\":\"FAILED\",\"worker_id\":\"w:1\",\"trace\":" \
               "\"io.debezium.DebeziumException: slot in use\\n\\tat a(A.java:1)\\n\\tat b\\n\\tat c\\n" \
               "\\tat d\\n\\tat e\\n\\tat f\\n\\tat g\\n\\tat NINTH\\n\"}]}"

/* ------------------------------------------------------------- tests */

static void register_creates_then_waits_for_tasks(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 201;
    F.put_body = "{\"name\":\"c\"}";
    F.status_bodies[0] = NULL;          /* 404 just after creation */
    F.status_bodies[1] = NO_TASKS;
    F.status_bodies[2] = RUNNING;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), 0);
    stop();
    CHECK_EQ_INT(F.puts, 1);
    CHECK(F.gets_status >= 3);
    CHECK(strstr(out_text, "connector c created at http://127.0.0.1:") == out_text);
    CHECK(strstr(out_text, "connector c: RUNNING on w:1\n  task 0: RUNNING on w:1\n") != NULL);
    json_t *put = json_loads(F.last_put, 0, NULL);
    CHECK(put != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(put, "plugin.name")), "pgoutput");
    CHECK_EQ_STR(json_string_value(json_object_get(put, "slot.name")), "postgres_debezium_slot");
    json_decref(put);
}

static void register_leaves_an_unchanged_connector_alone(void)
{
    cf_ops_conn_opts o;
    cf_err e;
    char *argv[] = { "connector", "register" };
    cf_ops_conn_defaults(&o);
    CHECK(cf_ops_conn_parse(2, argv, &o, &e) == 0);
    json_t *cfg = cf_ops_conn_config(&o, &e);
    json_object_set_new(cfg, "name", json_string("c"));
    char *text = json_dumps(cfg, 0);
    json_decref(cfg);

    start();
    F.config_code = 200;
    F.config_body = text;
    F.put_codes[0] = 200;
    F.status_bodies[0] = RUNNING;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), 0);
    stop();
    free(text);
    CHECK_EQ_INT(F.puts, 0);
    CHECK(strstr(out_text, "connector c unchanged") == out_text);
}

#define PAUSED "{\"name\":\"c\",\"connector\":{\"state\":\"PAUSED\",\"worker_id\":\"w:1\"}," \
               "\"tasks\":[{\"id\":0,\"state\":\"PAUSED\",\"worker_id\":\"w:1\"}]}"

static void register_resumes_a_paused_connector(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 200;
    F.put_body = "{}";
    F.status_bodies[0] = PAUSED;
    F.status_bodies[1] = RUNNING;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), 0);
    stop();
    CHECK_EQ_INT(F.resumes, 1);
    CHECK(strstr(out_text, "connector c is PAUSED; resuming it\n") != NULL);
}

static void register_retries_while_connect_rebalances(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 409;
    F.put_codes[1] = 409;
    F.put_codes[2] = 200;
    F.put_body = "{\"name\":\"c\"}";
    F.status_bodies[0] = RUNNING;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), 0);
    stop();
    CHECK_EQ_INT(F.puts, 3);
    CHECK(strstr(out_text, "connector c updated") == out_text);
}

static void register_reports_a_failed_task_with_its_trace(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 201;
    F.put_body = "{\"name\":\"c\"}";
    F.status_bodies[0] = FAILED;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), -1);
    stop();
    CHECK(strstr(e.msg, "connector c FAILED") != NULL);
    CHECK_EQ_INT(F.posts, 1);                           /* one restart asked for */
    CHECK_EQ_STR(F.last_post_url, "/connectors/c/restart");
    CHECK(strstr(log_text, "task 0: FAILED") != NULL);
    CHECK(strstr(log_text, "io.debezium.DebeziumException: slot in use") != NULL);
    CHECK(strstr(log_text, "at g") != NULL);
    CHECK(strstr(log_text, "NINTH") == NULL);           /* first lines only */
}

static void register_relays_a_refusal(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 400;
    F.put_body = "{\"error_code\":400,\"message\":\"Connector configuration is invalid: FATAL: "
                 "password authentication failed\"}";
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 30, &e), -1);
    stop();
    CHECK_EQ_INT(e.code, CF_E_HTTP);
    CHECK(strstr(e.msg, "HTTP 400") && strstr(e.msg, "password authentication failed"));
    CHECK_EQ_INT(F.gets_status, 0);
}

static void register_gives_up_after_wait(void)
{
    cf_err e;
    start();
    F.config_code = 404;
    F.put_codes[0] = 201;
    F.put_body = "{}";
    F.status_bodies[0] = NO_TASKS;
    CHECK_EQ_INT(run(CF_CONN_REGISTER, 1, &e), -1);
    stop();
    CHECK(strstr(e.msg, "not RUNNING after 1 s") != NULL);
    CHECK(strstr(log_text, "no tasks yet") != NULL);
}

static void status_and_delete(void)
{
    cf_err e;
    start();
    F.status_bodies[0] = RUNNING;
    CHECK_EQ_INT(run(CF_CONN_STATUS, 0, &e), 0);
    CHECK(strstr(out_text, "connector c: RUNNING") == out_text);
    F.status_bodies[0] = FAILED;
    F.gets_status = 0;
    CHECK_EQ_INT(run(CF_CONN_STATUS, 0, &e), 1);
    CHECK(strstr(out_text, "task 0: FAILED") && strstr(out_text, "slot in use"));
    F.status_bodies[0] = NULL;
    F.gets_status = 0;
    CHECK_EQ_INT(run(CF_CONN_STATUS, 0, &e), 1);
    CHECK(strstr(out_text, "connector c: not registered") == out_text);

    F.delete_code = 204;
    CHECK_EQ_INT(run(CF_CONN_DELETE, 0, &e), 0);
    CHECK_EQ_STR(out_text, "connector c deleted\n");
    F.delete_code = 404;
    CHECK_EQ_INT(run(CF_CONN_DELETE, 0, &e), 0);       /* deleting twice is fine */
    CHECK_EQ_STR(out_text, "connector c: not registered, nothing to delete\n");
    CHECK_EQ_INT(F.deletes, 2);
    stop();
}

static void unreachable_connect(void)
{
    cf_err e;
    snprintf(url, sizeof url, "http://127.0.0.1:9");
    CHECK_EQ_INT(run(CF_CONN_STATUS, 0, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_IO);
    CHECK(e.retriable);
    CHECK(strstr(e.msg, "not reachable") && strstr(e.msg, "scripts/stack.sh start"));
}

CF_TEST_MAIN("ops_connector", T(register_creates_then_waits_for_tasks),
             T(register_leaves_an_unchanged_connector_alone), T(register_resumes_a_paused_connector),
             T(register_retries_while_connect_rebalances),
             T(register_reports_a_failed_task_with_its_trace), T(register_relays_a_refusal),
             T(register_gives_up_after_wait), T(status_and_delete), T(unreachable_connect))
