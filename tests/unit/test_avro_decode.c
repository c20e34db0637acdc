/* test_avro_decode.c - Avro change events through a schema registry: the
 * fixtures of tests/data/avro/ (make_fixtures.py) decode to the same events
 * as their JSON twins; the registry client against a real HTTP server
 * (registry_server.py on loopback): hits, the cache, 404, a server that is
 * down, auth headers; framings; bad input. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "cf_test.h"
#include "cli/commands.h"
#include "decode/debezium.h"
#include "decode/registry.h"

#define AVRO_DIR "tests/data/avro"
#define REAL_DIR "tests/data/debezium"

static blob load(const char *dir, const char *name)
{
    return cf_test_load(dir, name);
}

/* ---- the registry server ---------------------------------------------- */

static pid_t srv_pid;
static int   srv_port;
static char  srv_dir[64], srv_log[128];

static void server_stop(void)
{
    if (srv_pid > 0) {
        kill(srv_pid, SIGTERM);
        waitpid(srv_pid, NULL, 0);
        srv_pid = 0;
    }
}

static int server_start(void)
{
    char portf[128];

    if (srv_pid > 0)
        return 0;
    snprintf(srv_dir, sizeof srv_dir, "/tmp/cf_avro_reg.XXXXXX");
    if (!mkdtemp(srv_dir))
        return -1;
    snprintf(portf, sizeof portf, "%s/port", srv_dir);
    snprintf(srv_log, sizeof srv_log, "%s/requests.log", srv_dir);
    if ((srv_pid = fork()) == 0) {
        execlp("python3", "python3", AVRO_DIR "/registry_server.py", portf, srv_log, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {       /* up to 10 s */
        FILE *f = fopen(portf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &srv_port) == 1;
            fclose(f);
            if (ok) {
                atexit(server_stop);
                return 0;
            }
        }
        nanosleep(&(struct timespec){ 0, 50000000 }, NULL);
    }
    fprintf(stderr, "  registry server did not start\n");
    return -1;
}

/* Lines of the server's request log (requests it answered). */
static int log_lines(char *last, size_t cap)
{
    FILE *f = fopen(srv_log, "r");
    char line[512];
    int n = 0;

    if (last && cap)
        last[0] = '\0';
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (last)
            snprintf(last, cap, "%s", line);
    }
    fclose(f);
    return n;
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port;

    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &l);
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

static cf_registry *registry(cf_reg_framing f, const char *auth, int port)
{
    char url[128];
    cf_err err;
    cf_registry *r;

    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    r = cf_registry_new(&(cf_registry_config){ .url = url, .framing = f, .auth = auth,
                                               .timeout_ms = 2000 }, &err);
    if (!r)
        fprintf(stderr, "  registry: %s\n", err.msg);
    return r;
}

static cf_decoder *avro_decoder(cf_registry *r, unsigned wait_s)
{
    cf_err err;
    cf_decoder *d = cf_decoder_new(&(cf_decoder_config){ .value_format = CF_DEC_AVRO,
                                                         .key_format = CF_DEC_AVRO, .registry = r,
                                                         .registry_wait_s = wait_s }, &err);
    if (!d)
        fprintf(stderr, "  decoder: %s\n", err.msg);
    return d;
}

/* ---- decoding and comparing ------------------------------------------- */

static int decode_mem(cf_decoder *d, const char *topic, blob v, blob k, cf_event *ev, cf_err *err)
{
    cf_msg m = { .topic = topic, .partition = 1, .offset = 9, .timestamp_ms = 1732440000999,
                 .key = k.p, .key_len = k.n, .value = v.p, .value_len = v.n };
    memset(ev, 0, sizeof *ev);
    cf_err_clear(err);
    return cf_decoder_decode(d, &m, ev, err);
}

/* Decode fixture `name` from dir: name.json / name.key.json with the JSON
 * decoder, or name.avro / name.key.avro with the Avro one. */
static int decode_file(cf_decoder *d, const char *topic, const char *dir, const char *name,
                       const char *ext, cf_event *ev, cf_err *err)
{
    char vn[128], kn[128];
    blob v, k;
    int rc;

    snprintf(vn, sizeof vn, "%s.%s", name, ext);
    snprintf(kn, sizeof kn, "%s.key.%s", name, ext);
    v = load(dir, vn);
    k = load(dir, kn);
    if (!v.p || !k.p) {
        free(v.p);
        free(k.p);
        return -2;
    }
    rc = decode_mem(d, topic, v, k, ev, err);
    if (rc)
        fprintf(stderr, "  %s: %s\n", vn, err->msg);
    memset(v.p, 'X', v.n);      /* events must not point into the message */
    free(v.p);
    free(k.p);
    return rc;
}

static void check_value(const char *col, const cf_value *a, const cf_value *b)
{
    if (a->kind != b->kind) {
        fprintf(stderr, "  column %s: kind %d (avro) vs %d (json)\n", col, a->kind, b->kind);
        CHECK(a->kind == b->kind);
        return;
    }
    switch (a->kind) {
    case CF_V_BOOL: CHECK(a->b == b->b); break;
    case CF_V_INT:
        if (a->i != b->i)
            fprintf(stderr, "  column %s: %lld vs %lld\n", col, (long long)a->i, (long long)b->i);
        CHECK(a->i == b->i);
        break;
    case CF_V_DOUBLE: CHECK(a->d == b->d); break;
    case CF_V_STRING:
    case CF_V_BYTES:
        if (a->n != b->n || memcmp(a->s, b->s, a->n))
            fprintf(stderr, "  column %s: '%.*s' vs '%.*s'\n", col, (int)a->n, a->s, (int)b->n, b->s);
        CHECK(a->n == b->n && memcmp(a->s, b->s, a->n) == 0);
        if (a->kind == CF_V_STRING)
            CHECK(a->s[a->n] == '\0');
        break;
    default: break;
    }
}

static void check_row(const cf_schema *s, const cf_row *a, const cf_row *b)
{
    CHECK_EQ_INT(a->present, b->present);
    if (!a->present || !b->present)
        return;
    for (int i = 0; i < s->nfields; i++)
        check_value(s->fields[i].name, &a->vals[i], &b->vals[i]);
}

/* The Avro event equals the JSON one, field by field. */
static void check_same(const cf_event *a, const cf_event *j)
{
    CHECK_EQ_INT(a->op, j->op);
    CHECK_EQ_INT(a->ts_ms, j->ts_ms);
    CHECK_EQ_INT(a->src.ts_ms, j->src.ts_ms);
    CHECK_EQ_INT(a->src.lsn, j->src.lsn);
    CHECK_EQ_INT(a->src.txid, j->src.txid);
    CHECK_EQ_STR(a->src.db, j->src.db);
    CHECK_EQ_STR(a->src.schema, j->src.schema);
    CHECK_EQ_STR(a->src.table, j->src.table);
    CHECK_EQ_STR(a->src.snapshot, j->src.snapshot);
    CHECK_EQ_INT(a->partition, j->partition);
    CHECK_EQ_INT(a->offset, j->offset);
    CHECK(a->schema && j->schema);
    if (!a->schema || !j->schema)
        return;
    CHECK(cf_schema_equal(a->schema, j->schema));
    CHECK_EQ_INT(a->schema->npk, j->schema->npk);
    for (int i = 0; i < a->schema->npk && i < j->schema->npk; i++)
        CHECK_EQ_INT(a->schema->pk[i], j->schema->pk[i]);
    if (!cf_schema_equal(a->schema, j->schema))
        return;
    check_row(a->schema, &a->before, &j->before);
    check_row(a->schema, &a->after, &j->after);
}

static void same_as_json(const char *topic, const char *jdir, const char *jname, const char *aname)
{
    cf_registry *r;
    cf_decoder *da, *dj = cf_decoder_new(NULL, NULL);
    cf_event ea, ej;
    cf_err err;

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    da = avro_decoder(r, 5);
    CHECK(da && dj);
    if (da && dj) {
        CHECK(decode_file(dj, topic, jdir, jname, "json", &ej, &err) == 0);
        CHECK(decode_file(da, topic, AVRO_DIR, aname, "avro", &ea, &err) == 0);
        if (ea.schema && ej.schema)
            check_same(&ea, &ej);
    }
    cf_decoder_free(da);
    cf_decoder_free(dj);
    cf_registry_free(r);
}

static void customers_create(void)
{
    same_as_json("postgres.public.customers", REAL_DIR, "real_customers_create", "customers_create");
}

static void customers_update(void)
{
    same_as_json("postgres.public.customers", REAL_DIR, "real_customers_update", "customers_update");
}

static void customers_delete(void)
{
    same_as_json("postgres.public.customers", REAL_DIR, "real_customers_delete", "customers_delete");
}

static void orders_events(void)
{
    same_as_json("postgres.public.orders", AVRO_DIR, "orders_create", "orders_create");
    same_as_json("postgres.public.orders", AVRO_DIR, "orders_update", "orders_update");
    same_as_json("postgres.public.orders", AVRO_DIR, "orders_delete", "orders_delete");
}

/* Every Debezium logical type, and unchanged-TOAST placeholders. */
static void logical_types(void)
{
    cf_registry *r;
    cf_decoder *d;
    cf_event ev;
    cf_err err;

    same_as_json("postgres.public.types", AVRO_DIR, "types_create", "types_create");
    same_as_json("postgres.public.types", AVRO_DIR, "types_toast", "types_toast");
    /* Spot checks of the values themselves, beyond equality with JSON. */
    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    d = avro_decoder(r, 5);
    if (d && decode_file(d, "postgres.public.types", AVRO_DIR, "types_create", "avro", &ev, &err) == 0) {
        const cf_schema *s = ev.schema;
        int c;
        CHECK_EQ_INT(s->npk, 1);
        CHECK_EQ_STR(s->fields[s->pk[0]].name, "id");
        c = cf_schema_find(s, "price");
        CHECK(c >= 0 && ev.after.vals[c].kind == CF_V_STRING);
        if (c >= 0)
            CHECK_EQ_STR(ev.after.vals[c].s, "31.415");
        c = cf_schema_find(s, "wide");
        CHECK(c >= 0 && s->fields[c].type.id == CF_T_DECIMAL && s->fields[c].type.precision == 30);
        if (c >= 0)
            CHECK_EQ_STR(ev.after.vals[c].s, "-12345678901234567890123.4567");
        c = cf_schema_find(s, "uid");
        CHECK(c >= 0 && s->fields[c].type.id == CF_T_UUID);
        c = cf_schema_find(s, "at_ns");
        CHECK(c >= 0 && ev.after.vals[c].i == -2);         /* floor(-1500 ns) in µs */
        c = cf_schema_find(s, "spot");
        if (c >= 0)
            CHECK_EQ_STR(ev.after.vals[c].s, "{\"x\":1.0,\"y\":-2.5,\"wkb\":\"AQE=\",\"srid\":null}");
    }
    if (d && decode_file(d, "postgres.public.types", AVRO_DIR, "types_toast", "avro", &ev, &err) == 0) {
        const char *cols[] = { "body", "blob", "tags" };
        for (int i = 0; i < 3; i++) {
            int c = cf_schema_find(ev.schema, cols[i]);
            CHECK(c >= 0 && ev.after.vals[c].kind == CF_V_UNAVAILABLE);
        }
    }
    cf_decoder_free(d);
    cf_registry_free(r);
}

/* A new writer schema (a column added: new registry id) is a new table
 * version, exactly as a new JSON envelope schema is; going back to the old
 * id gives the old version again.  Each id is fetched and compiled once. */
static void schema_evolution(void)
{
    cf_registry *r;
    cf_decoder *d, *dj = cf_decoder_new(NULL, NULL);
    cf_event ev, ej;
    cf_err err;
    const cf_schema *v1, *v2;

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    d = avro_decoder(r, 5);
    if (!d || !dj)
        goto out;
    CHECK(decode_file(d, "postgres.public.customers", AVRO_DIR, "customers_update", "avro", &ev, &err) == 0);
    v1 = ev.schema;
    CHECK(decode_file(d, "postgres.public.customers", AVRO_DIR, "customers_v2_update", "avro", &ev, &err) == 0);
    v2 = ev.schema;
    CHECK(v1 && v2 && v1 != v2);
    if (v1 && v2) {
        CHECK_EQ_INT(v2->nfields, v1->nfields + 1);
        CHECK(cf_schema_find(v2, "loyalty_points") >= 0);
        CHECK_EQ_INT(ev.after.vals[cf_schema_find(v2, "loyalty_points")].i, 42);
    }
    CHECK(decode_file(dj, "postgres.public.customers", AVRO_DIR, "customers_v2_update", "json", &ej, &err) == 0);
    check_same(&ev, &ej);
    CHECK(decode_file(d, "postgres.public.customers", AVRO_DIR, "customers_create", "avro", &ev, &err) == 0);
    CHECK(ev.schema == v1);
    CHECK_EQ_INT(cf_registry_requests(r), 3);       /* key 1, value 2, value 7 */
    for (int i = 0; i < 100; i++)
        CHECK(decode_file(d, "postgres.public.customers", AVRO_DIR, "customers_delete", "avro", &ev, &err) == 0);
    CHECK_EQ_INT(cf_registry_requests(r), 3);
    CHECK_EQ_INT(cf_decoder_schema_parses(d), 2);  /* value ids 2 and 7, each compiled once */
out:
    cf_decoder_free(d);
    cf_decoder_free(dj);
    cf_registry_free(r);
}

/* ---- the registry client ---------------------------------------------- */

static void registry_hit_and_cache(void)
{
    cf_registry *r;
    const char *json, *json2;
    size_t len, len2;
    cf_err err;
    int before;

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    before = log_lines(NULL, 0);
    CHECK(cf_registry_schema(r, 4, &json, &len, &err) == 0);
    CHECK(len > 100 && strncmp(json, "{\"type\":\"record\"", 16) == 0 && json[len] == '\0');
    CHECK_EQ_INT(log_lines(NULL, 0), before + 1);
    CHECK(cf_registry_schema(r, 4, &json2, &len2, &err) == 0);
    CHECK(json2 == json && len2 == len);
    CHECK_EQ_INT(log_lines(NULL, 0), before + 1);  /* no second request */
    CHECK_EQ_INT(cf_registry_requests(r), 1);
    cf_registry_free(r);
}

static void registry_not_found(void)
{
    cf_registry *r;
    cf_decoder *d;
    const char *json;
    size_t len;
    cf_err err;
    cf_event ev;
    blob v = load(AVRO_DIR, "customers_create.avro");

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    CHECK(cf_registry_schema(r, 999, &json, &len, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_NOTFOUND);
    CHECK(!err.retriable && !err.fatal);
    CHECK(strstr(err.msg, "unknown schema id 999") != NULL);
    /* A message naming an unknown id: dead-letter it (not fatal). */
    d = avro_decoder(r, 5);
    if (d && v.p) {
        v.p[4] = (char)0xe7;                       /* id 999 */
        v.p[3] = 3;
        CHECK(decode_mem(d, "t", v, (blob){ 0 }, &ev, &err) == -1);
        CHECK_EQ_INT(err.code, CF_E_NOTFOUND);
        CHECK(!err.fatal && !err.retriable);
    }
    free(v.p);
    cf_decoder_free(d);
    cf_registry_free(r);
}

/* A registry that is down: one request says retriable; a decode waits for
 * registry_wait_s and then stops (fatal), never calling the message bad. */
static void registry_down(void)
{
    cf_registry *r = registry(CF_REG_CONFLUENT, NULL, closed_port());
    cf_decoder *d = avro_decoder(r, 1);
    const char *json;
    size_t len;
    cf_err err;
    cf_event ev;
    blob v = load(AVRO_DIR, "customers_create.avro");
    struct timespec t0, t1;

    CHECK(cf_registry_schema(r, 2, &json, &len, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_HTTP);
    CHECK(err.retriable && !err.fatal);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(d && decode_mem(d, "t", v, (blob){ 0 }, &ev, &err) == -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(err.fatal && !err.retriable);
    CHECK(strstr(err.msg, "unavailable") != NULL);
    CHECK(t1.tv_sec - t0.tv_sec >= 1);
    free(v.p);
    cf_decoder_free(d);
    cf_registry_free(r);
}

/* A registry down for a while, then back (a restart): the decode waits it
 * out and the message decodes; nothing is dead-lettered. */
static void registry_comes_back(void)
{
    int port = closed_port();
    cf_registry *r = registry(CF_REG_CONFLUENT, NULL, port);
    cf_decoder *d = avro_decoder(r, 30);
    blob v = load(AVRO_DIR, "customers_create.avro");
    char pf[64], lf[64], ps[16];
    cf_event ev;
    cf_err err;
    pid_t pid;

    snprintf(pf, sizeof pf, "/tmp/cf_avro_back_%d.port", (int)getpid());
    snprintf(lf, sizeof lf, "/tmp/cf_avro_back_%d.log", (int)getpid());
    snprintf(ps, sizeof ps, "%d", port);
    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0) {
        nanosleep(&(struct timespec){ 1, 500000000 }, NULL);
        execlp("python3", "python3", AVRO_DIR "/registry_server.py", pf, lf, ps, (char *)NULL);
        _exit(127);
    }
    CHECK(d && v.p && decode_mem(d, "postgres.public.customers", v, (blob){ 0 }, &ev, &err) == 0);
    CHECK_EQ_INT(ev.op, 'c');
    CHECK(cf_registry_requests(r) >= 2);        /* failed at least once, then answered */
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(pf);
    unlink(lf);
    free(v.p);
    cf_decoder_free(d);
    cf_registry_free(r);
}

static void registry_auth(void)
{
    cf_registry *r;
    const char *json;
    size_t len;
    cf_err err;
    char last[512];

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, "basic:alice:s3cret", srv_port);
    CHECK(cf_registry_schema(r, 1, &json, &len, &err) == 0);
    log_lines(last, sizeof last);
    CHECK(strstr(last, "/schemas/ids/1 Basic YWxpY2U6czNjcmV0") != NULL);   /* alice:s3cret */
    cf_registry_free(r);
    r = registry(CF_REG_CONFLUENT, "bearer:tok-123", srv_port);
    CHECK(cf_registry_schema(r, 1, &json, &len, &err) == 0);
    log_lines(last, sizeof last);
    CHECK(strstr(last, "Bearer tok-123") != NULL);
    cf_registry_free(r);
    CHECK(cf_registry_new(&(cf_registry_config){ .url = "http://x", .auth = "token" }, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
    CHECK(cf_registry_new(&(cf_registry_config){ .url = "ftp://x" }, &err) == NULL);
}

/* Apicurio's framing (8-byte global id) and its native API. */
static void apicurio_framing(void)
{
    cf_registry *r;
    cf_decoder *d, *dj = cf_decoder_new(NULL, NULL);
    blob v = load(AVRO_DIR, "customers_create.avro"), k = load(AVRO_DIR, "customers_create.key.avro");
    blob av = { 0 }, ak = { 0 };
    cf_event ea, ej;
    cf_err err;
    char last[512];

    CHECK(server_start() == 0);
    r = registry(CF_REG_APICURIO, NULL, srv_port);
    d = avro_decoder(r, 5);
    if (!v.p || !k.p || !d || !dj)
        goto out;
    /* Re-frame: magic 0, 8-byte big-endian id, the same datum. */
    av.n = v.n + 4;
    ak.n = k.n + 4;
    av.p = calloc(1, av.n);
    ak.p = calloc(1, ak.n);
    av.p[8] = 2;
    ak.p[8] = 1;
    memcpy(av.p + 9, v.p + 5, v.n - 5);
    memcpy(ak.p + 9, k.p + 5, k.n - 5);
    CHECK(decode_mem(d, "postgres.public.customers", av, ak, &ea, &err) == 0);
    log_lines(last, sizeof last);
    CHECK(strstr(last, "/apis/registry/v2/ids/globalIds/") == last);
    CHECK(decode_file(dj, "postgres.public.customers", REAL_DIR, "real_customers_create", "json", &ej, &err) == 0);
    ea.partition = ej.partition;
    check_same(&ea, &ej);
    /* A URL that names Apicurio's API is used as it is. */
    {
        char u[128];
        const char *json;
        size_t len;
        cf_registry *r2;
        snprintf(u, sizeof u, "http://127.0.0.1:%d/apis/registry/v2/", srv_port);
        r2 = cf_registry_new(&(cf_registry_config){ .url = u, .framing = CF_REG_APICURIO }, &err);
        CHECK(r2 && cf_registry_schema(r2, 4, &json, &len, &err) == 0);
        log_lines(last, sizeof last);
        CHECK(strncmp(last, "/apis/registry/v2/ids/globalIds/4 ", 34) == 0);
        cf_registry_free(r2);
    }
    /* Confluent-framed bytes are too short a header for 8-byte ids here. */
    CHECK(decode_mem(d, "x", (blob){ v.p, 8 }, (blob){ 0 }, &ea, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_PARSE);
out:
    free(v.p);
    free(k.p);
    free(av.p);
    free(ak.p);
    cf_decoder_free(d);
    cf_decoder_free(dj);
    cf_registry_free(r);
}

/* ---- bad input ---------------------------------------------------------- */

/* Every truncation of a real event fails cleanly with a reason. */
static void truncated(void)
{
    cf_registry *r;
    cf_decoder *d;
    blob v = load(AVRO_DIR, "types_create.avro"), t;
    cf_event ev;
    cf_err err;

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    d = avro_decoder(r, 5);
    if (!d || !v.p)
        goto out;
    for (size_t n = 0; n < v.n; n++) {
        t.n = n;
        t.p = malloc(n + 1);        /* exact size: ASan catches any overread */
        memcpy(t.p, v.p, n);
        CHECK(decode_mem(d, "postgres.public.types", t, (blob){ 0 }, &ev, &err) == -1);
        CHECK_EQ_INT(err.code, CF_E_PARSE);
        CHECK(err.msg[0] != '\0' && !err.fatal);
        free(t.p);
        cf_decoder_reset(d);
    }
    /* A byte too many is not a datum of the schema either. */
    t.n = v.n + 1;
    t.p = calloc(1, t.n);
    memcpy(t.p, v.p, v.n);
    CHECK(decode_mem(d, "postgres.public.types", t, (blob){ 0 }, &ev, &err) == -1);
    CHECK(strstr(err.msg, "trailing") != NULL);
    free(t.p);
    /* The whole event still decodes. */
    CHECK(decode_mem(d, "postgres.public.types", v, (blob){ 0 }, &ev, &err) == 0);
out:
    free(v.p);
    cf_decoder_free(d);
    cf_registry_free(r);
}

static void wrong_magic_and_tombstone(void)
{
    cf_registry *r;
    cf_decoder *d;
    blob v = load(AVRO_DIR, "orders_create.avro"), k = load(AVRO_DIR, "orders_create.key.avro");
    cf_event ev;
    cf_err err;

    CHECK(server_start() == 0);
    r = registry(CF_REG_CONFLUENT, NULL, srv_port);
    d = avro_decoder(r, 5);
    if (!d || !v.p || !k.p)
        goto out;
    v.p[0] = 1;
    CHECK(decode_mem(d, "postgres.public.orders", v, k, &ev, &err) == -1);
    CHECK_EQ_INT(err.code, CF_E_PARSE);
    CHECK(strstr(err.msg, "magic byte 0x01") != NULL);
    v.p[0] = 0;
    k.p[0] = '{';                                   /* a JSON key where Avro is expected */
    CHECK(decode_mem(d, "postgres.public.orders", v, k, &ev, &err) == -1);
    CHECK(strstr(err.msg, "key") == err.msg);
    k.p[0] = 0;
    /* A tombstone (null value) after its delete: op 0, the table's schema. */
    CHECK(decode_mem(d, "postgres.public.orders", v, k, &ev, &err) == 0);
    CHECK(decode_mem(d, "postgres.public.orders", (blob){ 0 }, k, &ev, &err) == 0);
    CHECK_EQ_INT(ev.op, 0);
    CHECK(ev.schema != NULL);
    /* JSON keys with Avro values work too. */
    {
        cf_decoder *mixed = cf_decoder_new(&(cf_decoder_config){ .value_format = CF_DEC_AVRO,
                                                                 .registry = r }, &err);
        blob jk = load(AVRO_DIR, "orders_create.key.json");
        CHECK(mixed && decode_mem(mixed, "postgres.public.orders", v, jk, &ev, &err) == 0);
        CHECK(ev.schema && ev.schema->npk == 1);
        free(jk.p);
        cf_decoder_free(mixed);
    }
    CHECK(cf_decoder_new(&(cf_decoder_config){ .value_format = CF_DEC_AVRO }, &err) == NULL);
    CHECK_EQ_INT(err.code, CF_E_ARG);
out:
    free(v.p);
    free(k.p);
    cf_decoder_free(d);
    cf_registry_free(r);
}

static void framing(void)
{
    const uint8_t c[] = { 0, 0, 0, 1, 2, 9 }, a[] = { 0, 0, 0, 0, 0, 0, 0, 1, 3, 9 };
    int64_t id;
    size_t hdr;
    cf_err err;
    cf_reg_framing f;

    CHECK(cf_registry_frame(CF_REG_CONFLUENT, c, sizeof c, &id, &hdr, &err) == 0);
    CHECK_EQ_INT(id, 258);
    CHECK_EQ_INT(hdr, 5);
    CHECK(cf_registry_frame(CF_REG_APICURIO, a, sizeof a, &id, &hdr, &err) == 0);
    CHECK_EQ_INT(id, 259);
    CHECK_EQ_INT(hdr, 9);
    CHECK(cf_registry_frame(CF_REG_CONFLUENT, c, 4, &id, &hdr, &err) == -1);
    CHECK(cf_registry_frame(CF_REG_APICURIO, c, sizeof c, &id, &hdr, &err) == -1);
    CHECK(cf_registry_parse_framing("apicurio", &f, &err) == 0 && f == CF_REG_APICURIO);
    CHECK(cf_registry_parse_framing("confluent", &f, &err) == 0 && f == CF_REG_CONFLUENT);
    CHECK(cf_registry_parse_framing("avro", &f, &err) == -1);
}

/* ---- the pipeline flags (pipeline_cmd.c) ----------------------------- */

/* cdcflow delta ARGS in a child, output to `out`; its exit status. */
static int delta_cmd(char **argv, int argc, const char *out)
{
    int status = 0;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0) {
        if (!freopen(out, "w", stdout) || dup2(fileno(stdout), STDERR_FILENO) < 0)
            _exit(99);
        _exit(cf_cmd_delta(argc, argv));
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

static bool output_has(const char *out, const char *what)
{
    blob b = load("", out);
    bool has = b.p && (b.p[b.n] = '\0', strstr(b.p, what) != NULL);
    free(b.p);
    return has;
}

static void pipeline_flags(void)
{
    char out[128];
    char *help[] = { "delta", "--help", NULL };
    char *bad_fmt[] = { "delta", "--value-format", "xml", "--source", "file:/nonexistent", NULL };
    char *no_reg[] = { "delta", "--value-format", "avro", "--source", "file:/nonexistent", NULL };
    char *bad_framing[] = { "delta", "--value-format", "avro", "--schema-registry", "http://127.0.0.1:1",
                            "--registry-framing", "magic", "--source", "file:/nonexistent", NULL };
    char *bad_auth[] = { "delta", "--key-format", "avro", "--schema-registry", "http://127.0.0.1:1",
                         "--registry-auth", "password", "--source", "file:/nonexistent", NULL };

    snprintf(out, sizeof out, "/tmp/cf_avro_cmd_%d.out", (int)getpid());
    CHECK_EQ_INT(delta_cmd(help, 2, out + 0), 0);
    CHECK(output_has(out, "--schema-registry URL"));
    CHECK(output_has(out, "--registry-framing confluent|apicurio"));
    CHECK_EQ_INT(delta_cmd(bad_fmt, 5, out), 2);
    CHECK(output_has(out, "--value-format 'xml'"));
    CHECK_EQ_INT(delta_cmd(no_reg, 5, out), 2);
    CHECK(output_has(out, "needs --schema-registry"));
    CHECK_EQ_INT(delta_cmd(bad_framing, 9, out), 2);
    CHECK(output_has(out, "expected confluent or apicurio"));
    setenv("CDCFLOW_REGISTRY_AUTH", "basic:u:p", 1);    /* the flag overrides it */
    CHECK_EQ_INT(delta_cmd(bad_auth, 9, out), 2);
    CHECK(output_has(out, "basic:USER:PASS or bearer:TOKEN"));
    unsetenv("CDCFLOW_REGISTRY_AUTH");
    setenv("CDCFLOW_VALUE_FORMAT", "avro", 1);          /* the environment counts as a flag */
    CHECK_EQ_INT(delta_cmd(help + 0, 1, out), 2);
    CHECK(output_has(out, "needs --schema-registry"));
    unsetenv("CDCFLOW_VALUE_FORMAT");
    unlink(out);
}

/* ---- cdcflow delta on an Avro topic, end to end ----------------------- */

static void produce(rd_kafka_t *prod, const char *topic, blob k, blob v)
{
    rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(k.p, k.n),
                      RD_KAFKA_V_VALUE(v.p, v.n), RD_KAFKA_V_END);
}

static void produce_file(rd_kafka_t *prod, const char *topic, const char *dir, const char *name,
                         const char *ext)
{
    char vn[128], kn[128];
    blob v, k;

    snprintf(vn, sizeof vn, "%s.%s", name, ext);
    snprintf(kn, sizeof kn, "%s.key.%s", name, ext);
    v = load(dir, vn);
    k = load(dir, kn);
    produce(prod, topic, k, v);
    free(v.p);
    free(k.p);
}

static int lines_of(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, c;

    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* The customers changes on two topics of a Kafka mock cluster, as JSON and
 * as Avro (plus, on the Avro topic, a tombstone, a message with a wrong
 * magic byte and one of an unknown schema id): `cdcflow delta` makes two
 * tables that delta-rs reads back equal, row for row and type for type;
 * the two bad messages are dead-lettered, the good ones are not. */
static void delta_from_avro_topic(void)
{
    static const char *ev[] = { "create", "update", "delete" };
    char why[256], url[64], dir[64], tj[128], ta[128], dlq[160], dlqarg[200], out[160], cmd[600];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_mock_cluster_t *mc;
    rd_kafka_t *prod;
    const char *boot;
    blob bad = load(AVRO_DIR, "customers_create.avro"), key = load(AVRO_DIR, "customers_create.key.avro");

    CHECK(server_start() == 0);
    snprintf(dir, sizeof dir, "/tmp/cf_avro_e2e.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(tj, sizeof tj, "%s/json_customers", dir);
    snprintf(ta, sizeof ta, "%s/avro_customers", dir);
    snprintf(dlq, sizeof dlq, "%s/dlq.jsonl", dir);
    snprintf(dlqarg, sizeof dlqarg, "file:%s", dlq);
    snprintf(out, sizeof out, "%s/out.log", dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv_port);
    rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", why, sizeof why);
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    mc = rd_kafka_handle_mock_cluster(prod);
    boot = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_mock_topic_create(mc, "json.public.customers", 1, 1);
    rd_kafka_mock_topic_create(mc, "avro.public.customers", 1, 1);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "real_customers_%s", ev[i]);
        produce_file(prod, "json.public.customers", REAL_DIR, name, "json");
        snprintf(name, sizeof name, "customers_%s", ev[i]);
        produce_file(prod, "avro.public.customers", AVRO_DIR, name, "avro");
    }
    produce(prod, "avro.public.customers", key, (blob){ 0 });           /* tombstone */
    if (bad.p) {
        bad.p[0] = 7;                                                   /* wrong magic */
        produce(prod, "avro.public.customers", key, bad);
        bad.p[0] = 0;
        bad.p[4] = 99;                                                  /* unknown id 99 */
        produce(prod, "avro.public.customers", key, bad);
    }
    rd_kafka_flush(prod, 5000);
    {
        char *json_argv[] = { "delta", "--bootstrap", (char *)boot, "--topic", "json.public.customers",
                              "--table-path", tj, "--available-now", "--metrics-port", "0",
                              "--group-id", "e2e-json", "--dlq", "off", "--trigger-interval", "200ms",
                              "--kafka-prop", "log_level=3", NULL };
        char *avro_argv[] = { "delta", "--bootstrap", (char *)boot, "--topic", "avro.public.customers",
                              "--table-path", ta, "--available-now", "--metrics-port", "0",
                              "--group-id", "e2e-avro", "--dlq", dlqarg, "--trigger-interval", "200ms",
                              "--kafka-prop", "log_level=3", "--value-format", "avro",
                              "--schema-registry", url, NULL };
        CHECK_EQ_INT(delta_cmd(json_argv, (int)(sizeof json_argv / sizeof *json_argv) - 1, out), 0);
        CHECK_EQ_INT(delta_cmd(avro_argv, (int)(sizeof avro_argv / sizeof *avro_argv) - 1, out), 0);
        if (lines_of(dlq) != 2) {
            blob o = load("", out);
            fprintf(stderr, "  %.*s\n", (int)o.n, o.p ? o.p : "");
            free(o.p);
        }
    }
    CHECK_EQ_INT(lines_of(dlq), 2);
    CHECK(output_has(dlq, "magic byte 0x07"));
    CHECK(output_has(dlq, "unknown schema id 99"));
    snprintf(cmd, sizeof cmd, ".venv/bin/python " AVRO_DIR "/compare_delta.py %s %s > %s 2>&1", ta, tj, out);
    if (access(".venv/bin/python", X_OK) != 0) {
        fprintf(stderr, "  no .venv (make setup): the tables are not compared\n");
    } else {
        CHECK_EQ_INT(system(cmd), 0);
        CHECK(output_has(out, "3"));
    }
    if (access(".venv/bin/python", X_OK) == 0 && !output_has(out, "3")) {
        blob o = load("", out);
        fprintf(stderr, "  %.*s\n", (int)o.n, o.p ? o.p : "");
        free(o.p);
    }
    rd_kafka_destroy(prod);
    free(bad.p);
    free(key.p);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

CF_TEST_MAIN("avro_decode",
    T(framing), T(customers_create), T(customers_update), T(customers_delete), T(orders_events),
    T(logical_types), T(schema_evolution), T(registry_hit_and_cache), T(registry_not_found),
    T(registry_down), T(registry_comes_back), T(registry_auth), T(apicurio_framing), T(truncated),
    T(wrong_magic_and_tombstone), T(pipeline_flags),
    T(delta_from_avro_topic))
