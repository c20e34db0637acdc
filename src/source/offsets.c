/* offsets.c - the small topic/partition -> next offset map carried between
 * the source, the pipeline and the table sinks. */
#include "source/source.h"

#include <stdlib.h>
#include <string.h>

/* A pipeline reads a handful of partitions; a linear scan beats a hash here. */
#define OFFSETS_MAX 100000

void cf_offsets_free(cf_offsets *o)
{
    if (!o)
        return;
    free(o->v);
    o->v = NULL;
    o->n = o->alloc = 0;
}

void cf_offsets_clear(cf_offsets *o)
{
    o->n = 0;
}

static cf_offset *find(const cf_offsets *o, const char *topic, int32_t partition)
{
    for (int i = 0; i < o->n; i++)
        if (o->v[i].partition == partition && !strcmp(o->v[i].topic, topic))
            return &o->v[i];
    return NULL;
}

int cf_offsets_put(cf_offsets *o, const char *topic, int32_t partition,
                   int64_t next_offset, cf_err *err)
{
    cf_offset *e;

    if (!topic || strlen(topic) >= sizeof e->topic)
        return cf_err_set(err, CF_E_ARG, "topic name '%.64s' too long (max %zu bytes)",
                          topic ? topic : "", sizeof e->topic - 1);
    if ((e = find(o, topic, partition))) {
        if (next_offset > e->next_offset)
            e->next_offset = next_offset;
        return 0;
    }
    if (o->n == o->alloc) {
        int na = o->alloc ? o->alloc * 2 : 8;
        cf_offset *nv;
        if (na > OFFSETS_MAX)
            return cf_err_set(err, CF_E_TOOBIG, "more than %d topic-partitions", OFFSETS_MAX);
        if (!(nv = realloc(o->v, (size_t)na * sizeof *nv)))
            return cf_err_set(err, CF_E_NOMEM, "out of memory");
        o->v = nv;
        o->alloc = na;
    }
    e = &o->v[o->n++];
    memset(e, 0, sizeof *e);
    memcpy(e->topic, topic, strlen(topic));
    e->partition = partition;
    e->next_offset = next_offset;
    return 0;
}

int64_t cf_offsets_get(const cf_offsets *o, const char *topic, int32_t partition)
{
    const cf_offset *e = o ? find(o, topic, partition) : NULL;
    return e ? e->next_offset : -1;
}

int cf_offsets_copy(cf_offsets *dst, const cf_offsets *src, cf_err *err)
{
    cf_offsets_clear(dst);
    for (int i = 0; src && i < src->n; i++)
        if (cf_offsets_put(dst, src->v[i].topic, src->v[i].partition, src->v[i].next_offset, err))
            return -1;
    return 0;
}
