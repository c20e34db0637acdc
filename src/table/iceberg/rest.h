/* rest.h - a client of the Iceberg REST catalog (the apache/iceberg
 * open-api spec, rest-catalog-open-api.yaml): configuration, OAuth2 client
 * credentials, namespaces, loading, creating and committing tables.
 *
 * The catalog orders writers: a commit is a list of requirements (assertions
 * on the table's current state, e.g. "main is at snapshot N") plus a list of
 * updates, and the server applies the updates only while every requirement
 * holds.  A commit that lost a race is CF_E_CONFLICT, retriable: reload the
 * table, rebuild the updates on the new state and commit again (the retry
 * loop is the table layer's, table.c; this client only retries what the
 * transport lost: 5xx, 429, timeouts).
 *
 * Namespaces are given as one string with levels separated by '.' ("db" or
 * "db.schema"), as pyiceberg and Spark name them; on the wire the levels are
 * joined with 0x1F (or the separator the server's config names).
 *
 * A client is one connection and is not thread-safe: one per thread.  Tokens
 * and secrets never appear in an error message or a log line. */
#ifndef CF_ICE_REST_H
#define CF_ICE_REST_H

#include <jansson.h>
#include <stdint.h>
#include "util/err.h"

typedef struct cf_ice_rest cf_ice_rest;

/* What cf_ice_rest_open needs.  The strings are copied by open.  Named after
 * pyiceberg's and Spark's catalog properties (uri, warehouse, credential,
 * token, oauth2-server-uri, scope). */
typedef struct cf_ice_rest_config {
    const char *uri;               /* ICEBERG_CATALOG_URI: base URL, e.g. http://127.0.0.1:8181
                                    * (the /v1 routes are appended); required */
    const char *warehouse;         /* ICEBERG_CATALOG_WAREHOUSE, sent to GET /v1/config; optional */
    const char *credential;        /* ICEBERG_CATALOG_CREDENTIAL "client_id:client_secret" (or a
                                    * bare secret): OAuth2 client credentials, exchanged for a token */
    const char *token;             /* ICEBERG_CATALOG_TOKEN: a bearer token used as it is */
    const char *oauth2_server_uri; /* ICEBERG_CATALOG_OAUTH2_SERVER_URI; default {uri}/v1/oauth/tokens */
    const char *scope;             /* ICEBERG_CATALOG_SCOPE; default "catalog" */
    int         retries;           /* attempts after the first on 5xx/429/timeouts; 0: default 4 */
    long        timeout_ms;        /* per request; 0: default 30000 */
} cf_ice_rest_config;

/* Fill *cfg from the ICEBERG_CATALOG_* environment variables above (over
 * zeroes).  The strings point into the environment. */
void cf_ice_rest_config_from_env(cf_ice_rest_config *cfg);

/* Connect: fetch a token when a credential is given (POST oauth2 server or
 * /v1/oauth/tokens, client_credentials grant), then GET /v1/config and apply
 * its defaults and overrides (notably "prefix", "uri" and
 * "namespace-separator").  NULL on failure with *err filled: CF_E_ARG for a
 * bad config, CF_E_HTTP when the server refuses (its error.message quoted),
 * CF_E_IO when it cannot be reached.  Free with cf_ice_rest_close. */
cf_ice_rest *cf_ice_rest_open(const cf_ice_rest_config *cfg, cf_err *err);
void cf_ice_rest_close(cf_ice_rest *c);                     /* NULL-safe */

/* The catalog's property `key` after defaults and overrides (e.g. "prefix",
 * "warehouse"), or NULL.  Valid until cf_ice_rest_close. */
const char *cf_ice_rest_property(const cf_ice_rest *c, const char *key);

/* A table as the catalog returns it (LoadTableResult / CommitTableResponse). */
typedef struct cf_ice_rest_table {
    char   *metadata_location;   /* owned; where the server wrote the metadata */
    json_t *metadata;            /* owned reference; the table metadata document */
    json_t *config;              /* owned reference; table-level config (an object, may be empty) */
} cf_ice_rest_table;

void cf_ice_rest_table_free(cf_ice_rest_table *t);         /* frees members; NULL-safe */

/* Create namespace `ns` (properties may be NULL; borrowed).  One that exists
 * already is success. */
int cf_ice_rest_create_namespace(cf_ice_rest *c, const char *ns, const json_t *properties, cf_err *err);

/* GET the table into *out (filled on success only).  CF_E_NOTFOUND when the
 * table or its namespace does not exist. */
int cf_ice_rest_load_table(cf_ice_rest *c, const char *ns, const char *name, cf_ice_rest_table *out,
                           cf_err *err);

/* What a new table is made of.  The JSON values are borrowed.  The server
 * assigns fresh field ids (and spec/sort-order ids): use the schema of the
 * metadata it returns, not the one sent. */
typedef struct cf_ice_rest_create {
    const json_t *schema;          /* required: an Iceberg schema object */
    const json_t *partition_spec;  /* optional; NULL: unpartitioned */
    const json_t *write_order;     /* optional sort order */
    const json_t *properties;      /* optional object of strings, e.g. format-version */
    const char   *location;        /* optional; NULL: the server's warehouse/ns/name */
} cf_ice_rest_create;

/* Create the table (stage-create false) and return it in *out.  CF_E_CONFLICT
 * (retriable: load it instead) when it exists; CF_E_NOTFOUND when the
 * namespace does not. */
int cf_ice_rest_create_table(cf_ice_rest *c, const char *ns, const char *name,
                             const cf_ice_rest_create *spec, cf_ice_rest_table *out, cf_err *err);

/* Commit `updates` to the table if every one of `requirements` holds (both
 * JSON arrays, stolen, also on failure).  *out (may be NULL) receives the new
 * metadata on success.  CF_E_CONFLICT, retriable, when a requirement failed;
 * CF_E_NOTFOUND when the table is gone; CF_E_HTTP when the server refused
 * the updates (error.message quoted) or kept failing (5xx) after the
 * retries: then whether the commit was applied is unknown, reload to learn.
 * A retry of a commit whose answer was lost is safe as long as the
 * requirements pin the base (assert-ref-snapshot-id): the second attempt
 * then cannot apply twice, it gets CONFLICT. */
int cf_ice_rest_commit(cf_ice_rest *c, const char *ns, const char *name, json_t *requirements,
                       json_t *updates, cf_ice_rest_table *out, cf_err *err);

/* ---- builders of requirements and updates --------------------------------
 * Each returns a new reference (NULL only when out of memory); arguments
 * marked stolen are consumed, also when NULL is returned. */

/* assert-table-uuid + assert-ref-snapshot-id for ref "main" at the current
 * snapshot of `metadata` (null when it has none): "nobody committed since
 * this was loaded".  NULL when `metadata` has no table-uuid. */
json_t *cf_ice_rest_base_requirements(const json_t *metadata);
json_t *cf_ice_rest_req_table_uuid(const char *uuid);
/* snapshot_id < 0: the ref must not exist (a table with no snapshot). */
json_t *cf_ice_rest_req_ref_snapshot(const char *ref, int64_t snapshot_id);
json_t *cf_ice_rest_req_current_schema(int schema_id);
json_t *cf_ice_rest_req_default_spec(int spec_id);

json_t *cf_ice_rest_upd_add_snapshot(json_t *snapshot /* stolen */);
/* A branch ref (e.g. "main") pointing at snapshot_id. */
json_t *cf_ice_rest_upd_set_branch(const char *ref, int64_t snapshot_id);
json_t *cf_ice_rest_upd_set_properties(json_t *props /* stolen: object of strings */);
json_t *cf_ice_rest_upd_remove_properties(json_t *keys /* stolen: array of strings */);
/* last_column_id < 0: left out (the server derives it). */
json_t *cf_ice_rest_upd_add_schema(json_t *schema /* stolen */, int last_column_id);
/* schema_id -1: the schema added last in the same commit. */
json_t *cf_ice_rest_upd_set_current_schema(int schema_id);
json_t *cf_ice_rest_upd_add_spec(json_t *spec /* stolen */);
/* spec_id -1: the spec added last in the same commit. */
json_t *cf_ice_rest_upd_set_default_spec(int spec_id);

#endif
