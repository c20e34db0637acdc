/* catalog_int.h - what an Iceberg catalog backend implements (catalog.h
 * gives the contract of each call; catalog.c picks the backend and
 * dispatches). */
#ifndef CF_ICE_CATALOG_INT_H
#define CF_ICE_CATALOG_INT_H

#include "table/iceberg/catalog.h"

/* load and load_version get *t emptied with t->location set. */
typedef struct cf_ice_catalog_ops {
    const char *name;
    int  (*load)(cf_ice_catalog *c, cf_ice_table *t, cf_err *err);
    /* NULL: no numbered versions */
    int  (*load_version)(cf_ice_catalog *c, int64_t version, cf_ice_table *t, cf_err *err);
    /* whether a commit landed after t's version; NULL: always load again */
    int  (*changed)(cf_ice_catalog *c, const cf_ice_table *t, bool *changed, cf_err *err);
    /* NULL: tables are created by their first commit */
    int  (*create)(cf_ice_catalog *c, cf_ice_table *t, const json_t *meta, cf_err *err);
    /* meta is the backend's to free in every case */
    int  (*commit)(cf_ice_catalog *c, cf_ice_table *t, json_t *meta, const cf_ice_change *chg,
                   cf_err *err);
    void (*close)(cf_ice_catalog *c);        /* frees what the backend added; catalog.c frees c */
} cf_ice_catalog_ops;

struct cf_ice_catalog {
    const cf_ice_catalog_ops *ops;
    cf_store *st;            /* borrowed: serves location */
    char     *location;      /* the table's, absolute, no trailing '/' */
    char     *name;          /* NULL when not given */
    void     *impl;          /* backend state */
};

/* The directory catalog of c->location (fields other than ops set). */
int cf_ice_dir_catalog_init(cf_ice_catalog *c, cf_err *err);
/* The REST catalog at cfg->uri for c->location (fields other than ops and
 * impl set); c->impl is set on success only. */
int cf_ice_rest_catalog_init(cf_ice_catalog *c, const cf_catalog_config *cfg, cf_err *err);

/* The metadata document at path (capped at 256 MiB), checked to be one.
 * Caller owns the reference. */
json_t *cf_ice_meta_read(cf_store *st, const char *path, cf_err *err);

#endif
