/* source.c - open a message source by spec ("kafka" or "file:PATH") and
 * forward calls to its backend. */
#include "source/source_int.h"

#include <stdlib.h>
#include <string.h>

cf_source *cf_source_open(const cf_source_config *cfg, cf_err *err)
{
    cf_source *s;
    const char *spec = cfg->spec ? cfg->spec : "kafka";
    int rc;

    if (!(s = calloc(1, sizeof *s))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    if (!strcmp(spec, "kafka"))
        rc = cf_source_kafka_open(s, cfg, err);
    else if (!strncmp(spec, "file:", 5) && spec[5])
        rc = cf_source_file_open(s, spec + 5, cfg, err);
    else
        rc = cf_err_set(err, CF_E_ARG, "unknown source '%s' (kafka or file:PATH)", spec);
    if (rc) {
        free(s);
        return NULL;
    }
    return s;
}

void cf_source_close(cf_source *s)
{
    if (!s)
        return;
    s->be->close(s);
    free(s);
}

int cf_source_seek(cf_source *s, const cf_offsets *o, cf_err *err)
{ return s->be->seek(s, o, err); }

int cf_source_rewind(cf_source *s, const cf_offsets *to, cf_err *err)
{
    if (!s->be->rewind)
        return cf_err_set(err, CF_E_UNSUPPORTED, "a %s source cannot rewind", s->be->kind);
    return s->be->rewind(s, to, err);
}

int cf_source_poll(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err)
{ return s->be->poll(s, m, timeout_ms, err); }

int cf_source_pause(cf_source *s, bool pause, cf_err *err)
{ return s->be->pause ? s->be->pause(s, pause, err) : 0; }

int cf_source_commit(cf_source *s, const cf_offsets *o, cf_err *err)
{ return s->be->commit(s, o, err); }

int64_t cf_source_lag(cf_source *s)
{ return s->be->lag(s); }

int cf_source_set_available_now(cf_source *s, cf_err *err)
{ return s->be->available_now(s, err); }

const char *cf_source_kind(const cf_source *s)
{ return s->be->kind; }

void cf_source_set_hooks(cf_source *s, cf_source_assign_fn assign,
                         cf_source_revoke_fn revoke, void *opaque)
{
    s->assign = assign;
    s->revoke = revoke;
    s->hook_opaque = opaque;
}
