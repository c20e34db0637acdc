/* catalog.h - where an Iceberg table's current metadata is found and how
 * a new version of it is published: the seam between the Iceberg code
 * (sink, table commands) and a catalog.
 *
 * Two backends (catalog_int.h): the directory catalog (catalog_dir.c), the
 * Hadoop layout, metadata/vN.metadata.json published by put-if-absent and
 * metadata/version-hint.text as a shortcut to the newest, safe only on a
 * local filesystem, so cf_ice_catalog_open refuses it for object storage;
 * and the Iceberg REST catalog (catalog_rest.c over rest.h), which orders
 * writers itself: cf_ice_change tells it what a commit changes, so it
 * sends the requirements and updates of the commit, not a whole document. */
#ifndef CF_ICE_CATALOG_H
#define CF_ICE_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "store/store.h"
#include "table/table.h"
#include "util/err.h"

typedef struct cf_ice_catalog cf_ice_catalog;

/* One table's state as a catalog returned it: the base of the next commit. */
typedef struct cf_ice_table {
    char   *location;       /* table location, absolute (a path, file: or s3:// URL), no trailing '/' */
    int64_t version;        /* the catalog's version of meta, growing by one a commit, 0 = no
                             * table: directory, N of vN; REST, N + 1 of the server's
                             * NNNNN-UUID.metadata.json (see catalog_rest.c) */
    char   *meta_location;  /* where meta is stored (for the metadata-log), NULL if no table */
    json_t *meta;           /* the current metadata document, NULL if no table */
} cf_ice_table;

void cf_ice_table_free(cf_ice_table *t);            /* frees members, zeroes; NULL-safe */

/* What a commit changes, beyond the new document itself.  A catalog that
 * commits by a list of changes (REST: requirements assert-table-uuid and
 * assert-ref-snapshot-id on main; updates add-snapshot, set-snapshot-ref,
 * add-schema, set-current-schema, set-properties, remove-properties,
 * remove-snapshots) derives them from this, the base document and the new
 * one; the directory catalog needs only the new document. */
typedef struct cf_ice_change {
    int64_t base_snapshot_id;   /* main's snapshot the change was built on, -1 none */
    int64_t snapshot_id;        /* a snapshot added and made main's, -1 none */
    bool    schema_added;       /* the new current schema is not in the base */
    bool    properties_changed; /* properties differ from the base's (set and removed keys) */
    bool    snapshots_removed;  /* snapshots of the base were dropped (expiry) */
} cf_ice_change;

/* The catalog of the table at `location` (its path or URL), named `name`
 * in logs (may be NULL).  st serves location and must outlive the catalog.
 * cfg NULL: from the environment (cf_catalog_config_from_env); uri NULL
 * or empty: the directory catalog; else the REST catalog at uri, which
 * names the table by its location, WAREHOUSE/NAMESPACE/TABLE: the last
 * path component is the table, the one before it the namespace (dots in it
 * are levels).  The REST catalog is reached here (its config fetched, a
 * token obtained), so a wrong uri fails here.  NULL with CF_E_ARG when a
 * directory catalog is asked for on object storage (it is not safe there)
 * or the location names no namespace; CF_E_IO / CF_E_HTTP when the REST
 * catalog cannot be reached or refuses.  Free with cf_ice_catalog_close. */
cf_ice_catalog *cf_ice_catalog_open(const cf_catalog_config *cfg, const char *location,
                                    const char *name, cf_store *st, cf_err *err);
void cf_ice_catalog_close(cf_ice_catalog *c);               /* NULL-safe */

/* Load the table's current metadata into *t (emptied first; the caller
 * frees it with cf_ice_table_free, also on failure).  t->location is set
 * in every case but out of memory.  A missing table is not an error:
 * t->version 0, t->meta NULL. */
int cf_ice_catalog_load(cf_ice_catalog *c, cf_ice_table *t, cf_err *err);
/* Load version `version` exactly (time travel by metadata version).
 * CF_E_UNSUPPORTED where the catalog has no numbered versions. */
int cf_ice_catalog_load_version(cf_ice_catalog *c, int64_t version, cf_ice_table *t,
                                cf_err *err);
/* Bring *t up to date if another writer committed since it was loaded (or
 * it holds no table yet); *changed (may be NULL) says whether it did.  On
 * failure *t holds no metadata (as after a failed load). */
int cf_ice_catalog_refresh(cf_ice_catalog *c, cf_ice_table *t, bool *changed, cf_err *err);
/* Publish `meta` (reference stolen, also on failure) as the version after
 * *t; t->meta NULL creates the table.  Of two writers committing on one
 * base exactly one succeeds; the other gets CF_E_CONFLICT, retriable, and
 * must reload and build its commit again (*t is left at its base).  On
 * success *t holds the new version (t->meta the committed document, as the
 * catalog stored it).  A commit whose answer was lost, when chg adds a
 * snapshot, is recognised by its snapshot id after a reload and is success,
 * not applied twice.  chg may be NULL only for the directory catalog.
 * REST, creating: CF_E_CORRUPT when the catalog gave the table other field
 * or partition ids than meta's (files written with meta's ids would read
 * wrong); cf_ice_catalog_create first avoids that. */
int cf_ice_catalog_commit(cf_ice_catalog *c, cf_ice_table *t, json_t *meta,
                          const cf_ice_change *chg, cf_err *err);

/* Create the table, with no snapshot, from the current schema, default
 * partition spec and properties of `meta` (borrowed), in catalogs that
 * assign ids on creation (REST), so that data files can be written with
 * the ids the catalog chose: on success *t holds the table as created
 * (its field ids may differ from meta's: bind to t->meta).  A table that
 * exists already is loaded instead.  The directory catalog creates tables
 * by their first commit: 0 and *t untouched. */
int cf_ice_catalog_create(cf_ice_catalog *c, cf_ice_table *t, const json_t *meta, cf_err *err);

/* Whether `location` holds a table in the directory layout (metadata/ has
 * version-hint.text or a vN.metadata.json), whatever store it is on. */
bool cf_ice_dir_is_table(cf_store *st, const char *location);

#endif
