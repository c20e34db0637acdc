/* source.h - where messages come from: Kafka (librdkafka) or a file of
 * newline-delimited message values (for replay and reproducible tests).
 *
 * A source hands out messages one at a time; the message memory stays valid
 * until the next cf_source_poll() or cf_source_release_batch() call. */
#ifndef CF_SOURCE_H
#define CF_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util/err.h"

typedef struct cf_msg {
    const char *topic;
    int32_t     partition;
    int64_t     offset;
    /* Where reading of this partition stood before this message: the
     * offset it was assigned or rewound at, or the previous message's + 1.
     * Offsets may have gaps (transaction markers, compaction), so a batch's
     * start is the `from` of its first message, not its offset. */
    int64_t     from;
    int64_t     timestamp_ms;   /* Kafka message timestamp, -1 if none */
    const void *key;            /* may be NULL */
    size_t      key_len;
    const void *value;          /* NULL = tombstone */
    size_t      value_len;
} cf_msg;

/* A resume point: the next offset to read for one topic-partition. */
typedef struct cf_offset {
    char    topic[256];
    int32_t partition;
    int64_t next_offset;
} cf_offset;

typedef struct cf_offsets {
    int        n;
    int        alloc;
    cf_offset *v;
} cf_offsets;

void cf_offsets_free(cf_offsets *o);            /* NULL-safe; *o is empty and reusable */
/* Forget the entries, keep the memory. */
void cf_offsets_clear(cf_offsets *o);
/* Replace *dst's entries by a copy of src's. */
int  cf_offsets_copy(cf_offsets *dst, const cf_offsets *src, cf_err *err);
/* Set (or raise) the next offset for topic/partition. */
int  cf_offsets_put(cf_offsets *o, const char *topic, int32_t partition,
                    int64_t next_offset, cf_err *err);
/* -1 if unknown. */
int64_t cf_offsets_get(const cf_offsets *o, const char *topic, int32_t partition);

typedef struct cf_source cf_source;

typedef struct cf_source_config {
    const char *spec;            /* "kafka" or "file:PATH" */
    const char *bootstrap;       /* Kafka bootstrap servers */
    const char *const *topics;   /* topic names or ^regex */
    int         ntopics;
    const char *group_id;
    /* extra librdkafka properties as "key=value" pairs */
    const char *const *props;
    int         nprops;
    size_t      max_message_bytes;   /* 0 = 16 MiB; bigger messages are still handed
                                      * out (for the dead-letter), the file source
                                      * cuts them at max_message_bytes + 1 bytes */
    size_t      max_memory;          /* Kafka: what librdkafka may prefetch follows from
                                      * it (see kafka.c); 0 = librdkafka's defaults */
} cf_source_config;

/* Returns NULL with *err set on failure. */
cf_source *cf_source_open(const cf_source_config *cfg, cf_err *err);
void       cf_source_close(cf_source *s);                 /* NULL-safe */
/* Resume from these offsets (read back from the table).  Partitions absent
 * from `o` start at the earliest offset. */
int        cf_source_seek(cf_source *s, const cf_offsets *o, cf_err *err);
/* Wait up to timeout_ms for a message.  Returns 1 with *m filled, 0 on
 * timeout, -1 on error; 2 when the source is exhausted (file at EOF, or
 * Kafka caught up with the high watermark in available-now mode). */
int        cf_source_poll(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err);
/* Move the assigned partitions named in `to` back to the offsets given
 * there (-1: the earliest): the batch that read past them was dropped.
 * Partitions not assigned are skipped.  The file source cannot rewind:
 * CF_E_UNSUPPORTED. */
int        cf_source_rewind(cf_source *s, const cf_offsets *to, cf_err *err);
/* Stop (pause = true) or restart fetching of every assigned partition:
 * backpressure while the table commits fall behind.  Messages already
 * fetched may be dropped and are fetched again on resume, from where the
 * last handed-out message left off.  A no-op for the file source. */
int        cf_source_pause(cf_source *s, bool pause, cf_err *err);
/* Report progress (Kafka: commit group offsets for lag monitoring). */
int        cf_source_commit(cf_source *s, const cf_offsets *o, cf_err *err);
/* Consumer lag summed over assigned partitions, -1 if unknown. */
int64_t    cf_source_lag(cf_source *s);
/* Available-now: remember the high watermarks now; poll returns 2 once they
 * are reached. */
int        cf_source_set_available_now(cf_source *s, cf_err *err);

/* Group membership hooks (Kafka; the file source never calls them).  Both run
 * inside cf_source_poll(), on the caller's thread.
 *   assign: fill `out` with the resume offsets of the table, read again at
 *           every assignment because another process of the group may have
 *           committed since we started; partitions absent start at earliest.
 *   revoke: the partitions in `revoked` are about to go to another consumer;
 *           commit everything held for them now.  `lost`: they are gone
 *           already (the session timed out, another consumer may own them
 *           and be writing): drop what is held, commit nothing.  Return 0
 *           when committed, -1 when the held data was dropped instead (the
 *           source then rewinds the partitions it keeps to the table's
 *           offsets via `assign`). */
typedef int (*cf_source_assign_fn)(void *opaque, cf_offsets *out, cf_err *err);
typedef int (*cf_source_revoke_fn)(void *opaque, const cf_offsets *revoked, bool lost);
void       cf_source_set_hooks(cf_source *s, cf_source_assign_fn assign,
                               cf_source_revoke_fn revoke, void *opaque);
/* "kafka" or "file".  Never NULL. */
const char *cf_source_kind(const cf_source *s);

#endif
