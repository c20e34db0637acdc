/* test_ice_rest.c - the Iceberg REST catalog client against the real server
 * (Apache Iceberg's RESTCatalogServer, scripts/catalog.sh), plus the request
 * builders, which need none.
 *
 * The server cases print "skipped: no catalog at URI" and pass when nothing
 * answers at ICEBERG_CATALOG_URI (default http://127.0.0.1:8181); the
 * catalog needs the stack's S3 server behind it for tables. */
#include "cf_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "table/iceberg/rest.h"
#include "util/id.h"

#define DEFAULT_URI       "http://127.0.0.1:8181"
#define DEFAULT_WAREHOUSE "s3://cdcflow/warehouse"

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* ---------------------------------------------------------------- builders */

static char *dump(const json_t *j)
{
    static char out[4096];
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, sizeof out, "%s", s ? s : "(null)");
    free(s);
    return out;
}

static void test_builders(void)
{
    json_t *j;

    j = cf_ice_rest_req_ref_snapshot("main", -1);
    CHECK_EQ_STR(dump(j), "{\"ref\":\"main\",\"snapshot-id\":null,\"type\":\"assert-ref-snapshot-id\"}");
    json_decref(j);
    j = cf_ice_rest_req_ref_snapshot("main", 9007199254740993LL);   /* past a double's precision */
    CHECK_EQ_STR(dump(j), "{\"ref\":\"main\",\"snapshot-id\":9007199254740993,\"type\":\"assert-ref-snapshot-id\"}");
    json_decref(j);
    j = cf_ice_rest_upd_set_branch("main", 42);
    CHECK_EQ_STR(dump(j), "{\"action\":\"set-snapshot-ref\",\"ref-name\":\"main\",\"snapshot-id\":42,\"type\":\"branch\"}");
    json_decref(j);
    j = cf_ice_rest_upd_set_properties(json_pack("{s:s}", "k", "v"));
    CHECK_EQ_STR(dump(j), "{\"action\":\"set-properties\",\"updates\":{\"k\":\"v\"}}");
    json_decref(j);
    j = cf_ice_rest_upd_remove_properties(json_pack("[s]", "k"));
    CHECK_EQ_STR(dump(j), "{\"action\":\"remove-properties\",\"removals\":[\"k\"]}");
    json_decref(j);
    j = cf_ice_rest_upd_add_schema(json_pack("{s:s}", "type", "struct"), 3);
    CHECK_EQ_STR(dump(j), "{\"action\":\"add-schema\",\"last-column-id\":3,\"schema\":{\"type\":\"struct\"}}");
    json_decref(j);
    j = cf_ice_rest_upd_add_schema(json_pack("{s:s}", "type", "struct"), -1);
    CHECK_EQ_STR(dump(j), "{\"action\":\"add-schema\",\"schema\":{\"type\":\"struct\"}}");
    json_decref(j);
    j = cf_ice_rest_upd_set_current_schema(-1);
    CHECK_EQ_STR(dump(j), "{\"action\":\"set-current-schema\",\"schema-id\":-1}");
    json_decref(j);
    j = cf_ice_rest_upd_set_default_spec(-1);
    CHECK_EQ_STR(dump(j), "{\"action\":\"set-default-spec\",\"spec-id\":-1}");
    json_decref(j);
    j = cf_ice_rest_req_current_schema(0);
    CHECK_EQ_STR(dump(j), "{\"current-schema-id\":0,\"type\":\"assert-current-schema-id\"}");
    json_decref(j);
    /* A NULL stolen argument is NULL out, not a crash. */
    CHECK(cf_ice_rest_upd_add_snapshot(NULL) == NULL);
    CHECK(cf_ice_rest_req_table_uuid(NULL) == NULL);
}

static void test_base_requirements(void)
{
    json_t *meta = json_pack("{s:s,s:I,s:{s:{s:I,s:s}}}", "table-uuid", "u-1", "current-snapshot-id",
                             (json_int_t)5, "refs", "main", "snapshot-id", (json_int_t)7, "type", "branch");
    json_t *r = cf_ice_rest_base_requirements(meta);

    /* refs.main wins over current-snapshot-id: it is what the server checks. */
    CHECK_EQ_STR(dump(r), "[{\"type\":\"assert-table-uuid\",\"uuid\":\"u-1\"},"
                          "{\"ref\":\"main\",\"snapshot-id\":7,\"type\":\"assert-ref-snapshot-id\"}]");
    json_decref(r);
    json_object_del(meta, "refs");
    json_object_set_new(meta, "current-snapshot-id", json_integer(-1));
    r = cf_ice_rest_base_requirements(meta);
    CHECK_EQ_STR(dump(r), "[{\"type\":\"assert-table-uuid\",\"uuid\":\"u-1\"},"
                          "{\"ref\":\"main\",\"snapshot-id\":null,\"type\":\"assert-ref-snapshot-id\"}]");
    json_decref(r);
    json_object_del(meta, "table-uuid");
    CHECK(cf_ice_rest_base_requirements(meta) == NULL);
    json_decref(meta);
}

static void test_config_from_env(void)
{
    cf_ice_rest_config cfg;
    const char *was = getenv("ICEBERG_CATALOG_URI");
    char *saved = was ? strdup(was) : NULL;

    setenv("ICEBERG_CATALOG_URI", "http://127.0.0.1:1", 1);
    setenv("ICEBERG_CATALOG_CREDENTIAL", "id:secret", 1);
    setenv("ICEBERG_CATALOG_TOKEN", "", 1);
    cf_ice_rest_config_from_env(&cfg);
    CHECK_EQ_STR(cfg.uri, "http://127.0.0.1:1");
    CHECK_EQ_STR(cfg.credential, "id:secret");
    CHECK(cfg.token == NULL);          /* empty is unset */
    unsetenv("ICEBERG_CATALOG_CREDENTIAL");
    unsetenv("ICEBERG_CATALOG_TOKEN");
    if (saved)
        setenv("ICEBERG_CATALOG_URI", saved, 1);
    else
        unsetenv("ICEBERG_CATALOG_URI");
    free(saved);
}

static void test_open_errors(void)
{
    cf_ice_rest_config cfg = { 0 };
    cf_err e = { 0 };

    CHECK(cf_ice_rest_open(&cfg, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    cfg.uri = "ftp://x";
    CHECK(cf_ice_rest_open(&cfg, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_ARG);

    /* Nobody listens on port 1: an I/O error after the retries, naming the
     * catalog and never the secret. */
    cf_err_clear(&e);
    cfg.uri = "http://127.0.0.1:1";
    cfg.credential = "client:very-secret-value";
    cfg.retries = 1;
    cfg.timeout_ms = 2000;
    CHECK(cf_ice_rest_open(&cfg, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_IO);
    CHECK(strstr(e.msg, "127.0.0.1:1") != NULL);
    CHECK(strstr(e.msg, "very-secret") == NULL);
}

/* A peer that takes the connection and never answers (the kernel accepts
 * into the backlog): a timeout per attempt, then CF_E_IO, retriable. */
static void test_silent_server_times_out(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    cf_ice_rest_config cfg = { 0 };
    cf_err e = { 0 };
    char uri[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ_INT(listen(fd, 8), 0);
    CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(uri, sizeof uri, "http://127.0.0.1:%d", ntohs(a.sin_port));
    cfg.uri = uri;
    cfg.retries = 1;
    cfg.timeout_ms = 300;
    CHECK(cf_ice_rest_open(&cfg, &e) == NULL);
    CHECK_EQ_INT(e.code, CF_E_IO);
    CHECK(e.retriable);
    CHECK(strstr(e.msg, "2 attempts") != NULL);
    close(fd);
}

/* ---------------------------------------------------------------- against the server */

static cf_ice_rest *server(const char *credential)
{
    static int down = -1;
    cf_ice_rest_config cfg = { 0 };
    cf_err e = { 0 };
    cf_ice_rest *c;

    cfg.uri = env_or("ICEBERG_CATALOG_URI", DEFAULT_URI);
    cfg.warehouse = env_or("ICEBERG_CATALOG_WAREHOUSE", DEFAULT_WAREHOUSE);
    cfg.credential = credential;
    cfg.retries = 1;
    if (down == 1) {
        printf("  skipped: no catalog at %s\n", cfg.uri);
        return NULL;
    }
    c = cf_ice_rest_open(&cfg, &e);
    if (!c && e.code == CF_E_IO && e.retriable && down == -1) {
        down = 1;
        printf("  skipped: no catalog at %s (start it with scripts/catalog.sh start)\n", cfg.uri);
        return NULL;
    }
    down = 0;
    if (!c)
        fprintf(stderr, "  open: %s\n", e.msg);
    CHECK(c != NULL);
    return c;
}

static void unique_ns(char out[64], const char *levels)
{
    char u[37];
    cf_uuid(u);
    snprintf(out, 64, "cf_unit_%.8s%s", u, levels);
}

static json_t *schema_v0(void)
{
    return json_pack("{s:s,s:i,s:[{s:i,s:s,s:b,s:s},{s:i,s:s,s:b,s:s}]}", "type", "struct",
                     "schema-id", 0, "fields",
                     "id", 1, "name", "id", "required", 1, "type", "long",
                     "id", 2, "name", "name", "required", 0, "type", "string");
}

static int create_table(cf_ice_rest *c, const char *ns, const char *name, cf_ice_rest_table *t)
{
    json_t *schema = schema_v0(), *props = json_pack("{s:s}", "format-version", "2");
    cf_ice_rest_create spec = { .schema = schema, .properties = props };
    cf_err e = { 0 };
    int rc = cf_ice_rest_create_table(c, ns, name, &spec, t, &e);

    if (rc)
        fprintf(stderr, "  create %s.%s: %s\n", ns, name, e.msg);
    json_decref(schema);
    json_decref(props);
    return rc;
}

static int64_t current_snapshot(const json_t *meta)
{
    json_t *id = json_object_get(meta, "current-snapshot-id");
    return json_is_integer(id) ? (int64_t)json_integer_value(id) : -1;
}

/* A snapshot built by hand.  The manifest list is a path nobody wrote: the
 * catalog records snapshots, it does not open their manifests. */
static json_t *snapshot(const cf_ice_rest_table *t, int64_t id, int64_t parent)
{
    json_t *seq = json_object_get(t->metadata, "last-sequence-number");
    const char *loc = json_string_value(json_object_get(t->metadata, "location"));
    char list[1024];

    snprintf(list, sizeof list, "%s/metadata/snap-%lld-1-placeholder.avro", loc, (long long)id);
    json_t *s = json_pack("{s:I,s:I,s:I,s:s,s:{s:s,s:s},s:i}", "snapshot-id", (json_int_t)id,
                          "sequence-number", (json_int_t)(json_integer_value(seq) + 1),
                          "timestamp-ms", (json_int_t)cf_now_ms(), "manifest-list", list,
                          "summary", "operation", "append", "cdcflow.offsets", "p0:0-10", "schema-id", 0);
    if (parent >= 0)
        json_object_set_new(s, "parent-snapshot-id", json_integer(parent));
    return s;
}

/* Commit snapshot `id` on top of `base`: add-snapshot, main -> id. */
static int commit_snapshot(cf_ice_rest *c, const char *ns, const char *name, const cf_ice_rest_table *base,
                           int64_t id, cf_ice_rest_table *out, cf_err *e)
{
    json_t *upd = json_pack("[o,o]", cf_ice_rest_upd_add_snapshot(snapshot(base, id, current_snapshot(base->metadata))),
                            cf_ice_rest_upd_set_branch("main", id));
    return cf_ice_rest_commit(c, ns, name, cf_ice_rest_base_requirements(base->metadata), upd, out, e);
}

static void test_token_and_config(void)
{
    cf_ice_rest *c = server("cdcflow-client:cdcflow-client-secret");
    if (!c)
        return;
    /* The client's warehouse is a property unless the server overrides it. */
    CHECK(cf_ice_rest_property(c, "warehouse") != NULL);
    cf_ice_rest_close(c);
}

static void test_namespace_and_missing_table(void)
{
    cf_ice_rest *c = server(NULL);
    cf_ice_rest_table t = { 0 };
    cf_err e = { 0 };
    char ns[64], nested[96];

    if (!c)
        return;
    unique_ns(ns, "");
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, ns, NULL, &e), 0);
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, ns, NULL, &e), 0);     /* there: fine */
    /* Two levels go on the wire joined by 0x1F. */
    snprintf(nested, sizeof nested, "%s.sub", ns);
    json_t *props = json_pack("{s:s}", "owner", "cdcflow");
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, nested, props, &e), 0);
    json_decref(props);

    CHECK_EQ_INT(cf_ice_rest_load_table(c, nested, "nope", &t, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    CHECK(!e.fatal);
    CHECK(strstr(e.msg, "NoSuchTableException") != NULL);
    CHECK_EQ_INT(cf_ice_rest_load_table(c, "cf_unit_no_such_ns", "t", &t, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, "a..b", NULL, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_ARG);
    cf_ice_rest_close(c);
}

static void test_create_commit_load(void)
{
    cf_ice_rest *c = server(NULL);
    cf_ice_rest_table t = { 0 }, after = { 0 }, loaded = { 0 };
    cf_err e = { 0 };
    char ns[64];

    if (!c)
        return;
    unique_ns(ns, ".db");
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, ns, NULL, &e), 0);
    if (create_table(c, ns, "events", &t)) {
        CHECK(!"create table");
        cf_ice_rest_close(c);
        return;
    }
    CHECK(t.metadata_location && strstr(t.metadata_location, "/metadata/") != NULL);
    CHECK(json_string_value(json_object_get(t.metadata, "table-uuid")) != NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(t.metadata, "format-version")), 2);
    CHECK(current_snapshot(t.metadata) < 0);

    /* A second create of the same name loses. */
    cf_ice_rest_table dup = { 0 };
    json_t *schema = schema_v0();
    cf_ice_rest_create spec = { .schema = schema };
    CHECK_EQ_INT(cf_ice_rest_create_table(c, ns, "events", &spec, &dup, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_CONFLICT);
    CHECK(strstr(e.msg, "AlreadyExistsException") != NULL);
    json_decref(schema);
    cf_err_clear(&e);

    CHECK_EQ_INT(commit_snapshot(c, ns, "events", &t, 1001, &after, &e), 0);
    if (e.code)
        fprintf(stderr, "  commit: %s\n", e.msg);
    CHECK_EQ_INT(current_snapshot(after.metadata), 1001);
    CHECK(after.metadata_location && strcmp(after.metadata_location, t.metadata_location) != 0);

    CHECK_EQ_INT(cf_ice_rest_load_table(c, ns, "events", &loaded, &e), 0);
    CHECK_EQ_STR(loaded.metadata_location, after.metadata_location);
    CHECK_EQ_INT(current_snapshot(loaded.metadata), 1001);
    json_t *snap = json_array_get(json_object_get(loaded.metadata, "snapshots"), 0);
    CHECK(strstr(json_string_value(json_object_get(snap, "manifest-list")) ?: "", "placeholder") != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(snap, "summary"), "cdcflow.offsets")),
                 "p0:0-10");

    cf_ice_rest_table_free(&t);
    cf_ice_rest_table_free(&after);
    cf_ice_rest_table_free(&loaded);
    cf_ice_rest_close(c);
}

static void test_race_one_conflict(void)
{
    cf_ice_rest *c1 = server(NULL), *c2 = server(NULL);
    cf_ice_rest_table t = { 0 }, base = { 0 }, won = { 0 }, now = { 0 };
    cf_err e1 = { 0 }, e2 = { 0 };
    char ns[64];

    if (!c1 || !c2)
        goto out;
    unique_ns(ns, "");
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c1, ns, NULL, &e1), 0);
    if (create_table(c1, ns, "race", &t)) {
        CHECK(!"create table");
        goto out;
    }
    CHECK_EQ_INT(commit_snapshot(c1, ns, "race", &t, 2001, NULL, &e1), 0);

    /* Two writers load the same base, both commit on it: one wins. */
    CHECK_EQ_INT(cf_ice_rest_load_table(c2, ns, "race", &base, &e2), 0);
    CHECK_EQ_INT(commit_snapshot(c1, ns, "race", &base, 2002, &won, &e1), 0);
    CHECK_EQ_INT(commit_snapshot(c2, ns, "race", &base, 2003, NULL, &e2), -1);
    CHECK_EQ_INT(e2.code, CF_E_CONFLICT);
    CHECK(e2.retriable);
    CHECK(strstr(e2.msg, "CommitFailedException") != NULL);

    CHECK_EQ_INT(cf_ice_rest_load_table(c2, ns, "race", &now, &e2), 0);
    CHECK_EQ_INT(current_snapshot(now.metadata), 2002);
    CHECK_EQ_STR(now.metadata_location, won.metadata_location);

    /* The loser rebuilds on the new state and gets in. */
    cf_err_clear(&e2);
    CHECK_EQ_INT(commit_snapshot(c2, ns, "race", &now, 2003, NULL, &e2), 0);
out:
    cf_ice_rest_table_free(&t);
    cf_ice_rest_table_free(&base);
    cf_ice_rest_table_free(&won);
    cf_ice_rest_table_free(&now);
    cf_ice_rest_close(c1);
    cf_ice_rest_close(c2);
}

static void test_schema_spec_properties(void)
{
    cf_ice_rest *c = server(NULL);
    cf_ice_rest_table t = { 0 }, a = { 0 }, b = { 0 };
    cf_err e = { 0 };
    char ns[64];

    if (!c)
        return;
    unique_ns(ns, "");
    CHECK_EQ_INT(cf_ice_rest_create_namespace(c, ns, NULL, &e), 0);
    if (create_table(c, ns, "evolve", &t)) {
        CHECK(!"create table");
        cf_ice_rest_close(c);
        return;
    }
    json_t *schema1 = json_pack("{s:s,s:i,s:[{s:i,s:s,s:b,s:s},{s:i,s:s,s:b,s:s},{s:i,s:s,s:b,s:s}]}",
                                "type", "struct", "schema-id", 1, "fields",
                                "id", 1, "name", "id", "required", 1, "type", "long",
                                "id", 2, "name", "name", "required", 0, "type", "string",
                                "id", 3, "name", "email", "required", 0, "type", "string");
    json_t *spec = json_pack("{s:i,s:[{s:i,s:i,s:s,s:s}]}", "spec-id", 1, "fields",
                             "source-id", 1, "field-id", 1000, "name", "id_bucket", "transform", "bucket[4]");
    json_t *req = cf_ice_rest_base_requirements(t.metadata);
    json_array_append_new(req, cf_ice_rest_req_current_schema(0));
    json_t *upd = json_pack("[o,o,o,o,o]", cf_ice_rest_upd_add_schema(schema1, 3),
                            cf_ice_rest_upd_set_current_schema(-1), cf_ice_rest_upd_add_spec(spec),
                            cf_ice_rest_upd_set_default_spec(-1),
                            cf_ice_rest_upd_set_properties(json_pack("{s:s,s:s}", "a", "1", "b", "2")));
    CHECK_EQ_INT(cf_ice_rest_commit(c, ns, "evolve", req, upd, &a, &e), 0);
    if (e.code)
        fprintf(stderr, "  commit: %s\n", e.msg);
    CHECK_EQ_INT(json_integer_value(json_object_get(a.metadata, "current-schema-id")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(a.metadata, "default-spec-id")), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(a.metadata, "properties"), "a")), "1");

    upd = json_pack("[o]", cf_ice_rest_upd_remove_properties(json_pack("[s]", "a")));
    CHECK_EQ_INT(cf_ice_rest_commit(c, ns, "evolve", cf_ice_rest_base_requirements(a.metadata), upd, &b, &e), 0);
    CHECK(json_object_get(json_object_get(b.metadata, "properties"), "a") == NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(b.metadata, "properties"), "b")), "2");

    /* An update the server refuses: its message comes back, the code is not a conflict. */
    cf_err_clear(&e);
    upd = json_pack("[o]", cf_ice_rest_upd_set_current_schema(99));
    CHECK_EQ_INT(cf_ice_rest_commit(c, ns, "evolve", cf_ice_rest_base_requirements(b.metadata), upd, NULL, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_HTTP);
    CHECK(!e.retriable);
    CHECK(strstr(e.msg, "HTTP 400") != NULL);
    CHECK(strstr(e.msg, "99") != NULL);

    /* A table that is not there. */
    cf_err_clear(&e);
    CHECK_EQ_INT(cf_ice_rest_commit(c, ns, "gone", json_array(), json_array(), NULL, &e), -1);
    CHECK_EQ_INT(e.code, CF_E_NOTFOUND);

    cf_ice_rest_table_free(&t);
    cf_ice_rest_table_free(&a);
    cf_ice_rest_table_free(&b);
    cf_ice_rest_close(c);
}

CF_TEST_MAIN("ice_rest",
             T(test_builders), T(test_base_requirements), T(test_config_from_env), T(test_open_errors),
             T(test_silent_server_times_out),
             T(test_token_and_config), T(test_namespace_and_missing_table), T(test_create_commit_load),
             T(test_race_one_conflict), T(test_schema_spec_properties))
