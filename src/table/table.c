/* table.c - open a table sink by kind, the commit fence, and the one retry
 * loop every commit goes through. */
#include "table/table_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"

static const char *env_or_null(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void cf_catalog_config_from_env(cf_catalog_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->uri = env_or_null("ICEBERG_CATALOG_URI");
    cfg->warehouse = env_or_null("ICEBERG_CATALOG_WAREHOUSE");
    cfg->credential = env_or_null("ICEBERG_CATALOG_CREDENTIAL");
    cfg->token = env_or_null("ICEBERG_CATALOG_TOKEN");
    cfg->oauth2_server_uri = env_or_null("ICEBERG_CATALOG_OAUTH2_SERVER_URI");
    cfg->scope = env_or_null("ICEBERG_CATALOG_SCOPE");
}

cf_sink *cf_sink_open(const cf_sink_config *cfg, cf_err *err)
{
    const cf_sink_ops *ops;
    cf_sink *s;

    if (cfg->kind && !strcmp(cfg->kind, "delta"))
        ops = &cf_delta_sink_ops;
    else if (cfg->kind && !strcmp(cfg->kind, "iceberg"))
        ops = &cf_iceberg_sink_ops;
    else {
        cf_err_set(err, CF_E_ARG, "unknown sink '%s' (delta or iceberg)", cfg->kind ? cfg->kind : "");
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        return NULL;
    }
    s->ops = ops;
    s->cfg = *cfg;
    if (!(s->store = cf_store_open(cfg->location, cfg->store, err)) || ops->open(s, err)) {
        cf_store_close(s->store);
        free(s);
        return NULL;
    }
    return s;
}

void cf_sink_close(cf_sink *s)
{
    if (!s)
        return;
    if (s->ops->close)
        s->ops->close(s);
    cf_store_close(s->store);
    free(s);
}

uint64_t cf_sink_conflicts(const cf_sink *s)
{
    return s->conflicts;
}

const cf_sink_config *cf_sink_cfg(const cf_sink *s)
{
    return &s->cfg;
}

int cf_sink_offsets(cf_sink *s, cf_offsets *out, cf_err *err)
{
    return s->ops->offsets(s, out, err);
}

int cf_commit_fence(const cf_commit *c, const cf_offsets *have, const char *table, cf_err *err)
{
    for (int i = 0; c->end && i < c->end->n; i++) {
        const cf_offset *e = &c->end->v[i];
        int64_t start = c->start ? cf_offsets_get(c->start, e->topic, e->partition) : -1;
        int64_t h = cf_offsets_get(have, e->topic, e->partition);
        if (start < 0)
            start = e->next_offset;     /* no start given: nothing of it in the batch */
        if (!cf_fence_ok(h, start)) {
            cf_err_set(err, CF_E_FENCED, "%s: %s[%d] is at offset %" PRId64 " in the table, the batch starts "
                       "at %" PRId64 ": another writer owns the partition now", table, e->topic,
                       e->partition, h, start);
            return -1;
        }
    }
    return 0;
}

int64_t cf_commit_toast_source(const cf_commit *c, const int64_t *prev, size_t row, int col)
{
    for (int64_t q = prev ? prev[row] : -1; q >= 0; q = prev[q]) {
        if (c->ops && c->ops[q] == 'd')
            return -2;
        if (!cf_cells_has(c->unavail, (size_t)q, col))
            return q;
    }
    return -1;
}

void cf_commit_backoff(int attempt, unsigned *seed)
{
    unsigned long cap = (unsigned long)CF_COMMIT_BACKOFF_US << (attempt < 16 ? attempt : 16);

    if (cap > CF_COMMIT_BACKOFF_CAP)
        cap = CF_COMMIT_BACKOFF_CAP;
    usleep((useconds_t)((unsigned long)rand_r(seed) % cap));
}

int cf_sink_commit(cf_sink *s, const cf_commit *c, int64_t *version, cf_err *err)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)s;
    bool staged = false;
    cf_err e = { 0 };

    for (int attempt = 0; attempt < CF_COMMIT_ATTEMPTS; attempt++) {
        if (!staged) {
            cf_err_clear(&e);
            if (s->ops->stage(s, c, &e)) {
                s->ops->abort(s);
                if (e.code != CF_E_STALE && !(e.code == CF_E_CONFLICT && e.retriable))
                    goto fail;
                s->conflicts++;
                cf_commit_backoff(attempt, &seed);
                continue;
            }
            staged = true;
        }
        cf_err_clear(&e);
        if (s->ops->publish(s, c, version, &e) == 0)
            return 0;
        if (e.code == CF_E_STALE) {
            /* The files written do not fit the table any more: write anew. */
            s->ops->abort(s);
            staged = false;
        } else if (!(e.code == CF_E_CONFLICT && e.retriable)) {
            s->ops->abort(s);
            goto fail;
        }
        s->conflicts++;
        cf_log(CF_LOG_DEBUG, "table", "%s: commit attempt %d: %s", s->cfg.location, attempt + 1, e.msg);
        cf_commit_backoff(attempt, &seed);
    }
    if (staged)
        s->ops->abort(s);
    cf_err_wrap(&e, "gave up after %d attempts", CF_COMMIT_ATTEMPTS);
    e.retriable = false;
fail:
    if (err)
        *err = e;
    return -1;
}
