/* registry.h - schema registry client: the writer schema of a schema id,
 * fetched over HTTP(S) with libcurl and cached for the life of the client,
 * plus the wire framings that carry the ids in Kafka messages.
 *
 * Framings (magic byte 0, then the id, big-endian, then the Avro datum):
 *   CF_REG_CONFLUENT  4-byte schema id; GET {url}/schemas/ids/{id}
 *                     (Confluent's API, also Apicurio's /apis/ccompat/v7)
 *   CF_REG_APICURIO   8-byte global id (Apicurio's default id handler);
 *                     GET {url}/ids/globalIds/{id} when url names the API
 *                     (.../apis/registry/v2 or v3), else
 *                     {url}/apis/registry/v2/ids/globalIds/{id}
 * Errors say what to do with the message: a registry that does not answer
 * (connection refused, timeout, 5xx, 429) is CF_E_HTTP with `retriable`
 * set (wait and ask again; the message is fine); an id the registry does
 * not know (404) is CF_E_NOTFOUND, neither retriable nor fatal (dead-letter
 * the message); a refused login (401/403) is fatal.  Thread-safe. */
#ifndef CF_REGISTRY_H
#define CF_REGISTRY_H

#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef enum { CF_REG_CONFLUENT = 0, CF_REG_APICURIO } cf_reg_framing;

typedef struct cf_registry cf_registry;

typedef struct cf_registry_config {
    const char    *url;          /* http(s)://host:port[/path], no trailing query; NULL: no
                                  * server, only the schemas given to cf_registry_put */
    cf_reg_framing framing;
    const char    *auth;         /* NULL, "basic:USER:PASS" or "bearer:TOKEN" */
    const char    *ca_path;      /* CA bundle for https; NULL = the system's */
    long           timeout_ms;   /* per request; 0 = 10000 */
} cf_registry_config;

/* Strings are copied.  NULL with *err (CF_E_ARG) on a bad URL or auth. */
cf_registry *cf_registry_new(const cf_registry_config *cfg, cf_err *err);
void         cf_registry_free(cf_registry *r);                 /* NULL-safe */

/* The writer schema JSON of `id`: *json (NUL-terminated, *len bytes) is
 * owned by the registry and valid until cf_registry_free.  A cached id
 * makes no request.  Errors as above. */
int cf_registry_schema(cf_registry *r, int64_t id, const char **json, size_t *len, cf_err *err);

/* Seed the cache with the schema of id (copied): tests, fuzzing, schemas
 * known in advance.  An id already cached keeps its schema. */
int cf_registry_put(cf_registry *r, int64_t id, const char *json, size_t len, cf_err *err);

/* HTTP requests made so far (for tests and metrics). */
uint64_t       cf_registry_requests(const cf_registry *r);
cf_reg_framing cf_registry_framing(const cf_registry *r);

/* Read the framing header of message bytes p[0..n): *id, and *hdr the
 * header's length (the datum starts at p + *hdr).  CF_E_PARSE (pos 0) on a
 * wrong magic byte or a message shorter than the header. */
int cf_registry_frame(cf_reg_framing f, const uint8_t *p, size_t n, int64_t *id, size_t *hdr,
                      cf_err *err);

/* "confluent" | "apicurio" -> framing; CF_E_ARG otherwise. */
int cf_registry_parse_framing(const char *s, cf_reg_framing *out, cf_err *err);

#endif
