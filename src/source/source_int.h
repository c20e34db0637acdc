/* source_int.h - what a source backend (kafka.c, file.c) provides to the
 * dispatch in source.c.  Private to src/source/. */
#ifndef CF_SOURCE_INT_H
#define CF_SOURCE_INT_H

#include "source/source.h"

#define CF_SOURCE_DEFAULT_MAX_MSG ((size_t)16 << 20)

typedef struct cf_source_backend {
    const char *kind;
    int     (*seek)(cf_source *s, const cf_offsets *o, cf_err *err);
    int     (*rewind)(cf_source *s, const cf_offsets *to, cf_err *err);   /* NULL: cannot */
    int     (*poll)(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err);
    int     (*commit)(cf_source *s, const cf_offsets *o, cf_err *err);
    int64_t (*lag)(cf_source *s);
    int     (*available_now)(cf_source *s, cf_err *err);
    void    (*close)(cf_source *s);
    int     (*pause)(cf_source *s, bool pause, cf_err *err);     /* NULL: nothing to pause */
} cf_source_backend;

struct cf_source {
    const cf_source_backend *be;
    void                *impl;
    cf_source_assign_fn  assign;
    cf_source_revoke_fn  revoke;
    void                *hook_opaque;
};

/* Backend constructors: fill s->be and s->impl or return -1. */
int cf_source_file_open(cf_source *s, const char *path, const cf_source_config *cfg, cf_err *err);
int cf_source_kafka_open(cf_source *s, const cf_source_config *cfg, cf_err *err);

#endif
