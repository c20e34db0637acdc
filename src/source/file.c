/* file.c - the file source: newline-delimited message values, one message
 * per line, offset = 0-based line number on partition 0.  A line `null` is a
 * tombstone; blank lines are skipped (they still count as a line).  Used for
 * replay, benchmarks and reproducible tests. */
#include "source/source_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"

#define READ_CHUNK ((size_t)1 << 20)

typedef struct file_src {
    char    *path;
    char     topic[256];
    int      fd;
    uint8_t *rbuf;
    size_t   rpos, rlen;
    bool     eof;
    size_t   max_msg;
    cf_buf   line;         /* a line that spans reads; holds at most max_msg + 1 bytes */
    int64_t  next_line;    /* offset of the next line to read */
    int64_t  from;         /* cf_msg.from of the next message */
} file_src;

/* Topic from the file name: basename without a .json/.jsonl/.ndjson/.txt suffix. */
static void topic_from_path(char *dst, size_t cap, const char *path)
{
    const char *b = strrchr(path, '/');
    static const char *const exts[] = { ".jsonl", ".ndjson", ".json", ".txt" };
    size_t n;

    b = b ? b + 1 : path;
    n = strlen(b);
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        size_t e = strlen(exts[i]);
        if (n > e && !strcmp(b + n - e, exts[i])) {
            n -= e;
            break;
        }
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, b, n);
    dst[n] = '\0';
}

static int refill(file_src *f, cf_err *err)
{
    ssize_t r;

    f->rpos = f->rlen = 0;
    for (;;) {
        r = read(f->fd, f->rbuf, READ_CHUNK);
        if (r >= 0)
            break;
        if (errno != EINTR)
            return cf_err_set(err, CF_E_IO, "%s: read: %s", f->path, strerror(errno));
    }
    if (r == 0)
        f->eof = true;
    f->rlen = (size_t)r;
    return 0;
}

/* Next line without its newline.  Returns 1 with the line in p, n (valid until the
 * next call), 0 at end of file, -1 on error.  Lines longer than max_msg are
 * cut at max_msg + 1 bytes so the caller can see they were too big. */
static int next_line(file_src *f, const uint8_t **p, size_t *n, cf_err *err)
{
    bool spanning = false;

    cf_buf_reset(&f->line);
    for (;;) {
        if (f->rpos == f->rlen) {
            if (!f->eof && refill(f, err))
                return -1;
            if (f->rpos == f->rlen) {
                if (!spanning)
                    return 0;
                break;      /* the last line had no newline */
            }
        }
        uint8_t *start = f->rbuf + f->rpos;
        size_t avail = f->rlen - f->rpos;
        uint8_t *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;

        if (nl && !spanning) {
            /* Fast path: the whole line is in the read buffer. */
            f->rpos += take + 1;
            *p = start;
            *n = take;
            if (*n > f->max_msg + 1)
                *n = f->max_msg + 1;
            goto strip;
        }
        spanning = true;
        if (f->line.len < f->max_msg + 1) {
            size_t room = f->max_msg + 1 - f->line.len;
            if (cf_buf_append(&f->line, start, take < room ? take : room, err))
                return -1;
        }
        f->rpos += take + (nl ? 1 : 0);
        if (nl)
            break;
    }
    *p = f->line.data;
    *n = f->line.len;
strip:
    if (*n && (*p)[*n - 1] == '\r')
        (*n)--;
    return 1;
}

static int file_rewind(file_src *f, cf_err *err)
{
    if (lseek(f->fd, 0, SEEK_SET) < 0)
        return cf_err_set(err, CF_E_IO, "%s: seek: %s", f->path, strerror(errno));
    f->rpos = f->rlen = 0;
    f->eof = false;
    f->next_line = 0;
    return 0;
}

static int file_seek(cf_source *s, const cf_offsets *o, cf_err *err)
{
    file_src *f = s->impl;
    int64_t target = cf_offsets_get(o, f->topic, 0);
    const uint8_t *p;
    size_t n;

    if (target < 0)
        target = 0;
    if (target < f->next_line && file_rewind(f, err))
        return -1;
    while (f->next_line < target) {
        int r = next_line(f, &p, &n, err);
        if (r < 0)
            return -1;
        if (r == 0)
            break;      /* the table is ahead of the file: nothing left to read */
        f->next_line++;
    }
    f->from = target;
    return 0;
}

static int file_poll(cf_source *s, cf_msg *m, int timeout_ms, cf_err *err)
{
    file_src *f = s->impl;
    const uint8_t *p;
    size_t n;

    for (;;) {
        int r = next_line(f, &p, &n, err);
        if (r <= 0)
            return r < 0 ? -1 : 2;
        int64_t off = f->next_line++;
        /* Blank lines carry no message. */
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == n)
            continue;
        memset(m, 0, sizeof *m);
        m->topic = f->topic;
        m->partition = 0;
        m->offset = off;
        m->from = f->from <= off ? f->from : off;
        f->from = off + 1;
        m->timestamp_ms = -1;
        if (n == 4 && !memcmp(p, "null", 4)) {
            m->value = NULL;
            m->value_len = 0;
        } else {
            m->value = p;
            m->value_len = n;
        }
        return 1;
    }
}

static int file_commit(cf_source *s, const cf_offsets *o, cf_err *err)
{
    return 0;   /* progress lives in the table; a file has no group to tell */
}

static int64_t file_lag(cf_source *s)
{
    file_src *f = s->impl;
    return f->eof && f->rpos == f->rlen ? 0 : -1;
}

static int file_available_now(cf_source *s, cf_err *err)
{
    return 0;   /* a file always ends */
}

static void file_close(cf_source *s)
{
    file_src *f = s->impl;
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    cf_buf_free(&f->line);
    free(f->rbuf);
    free(f->path);
    free(f);
}

static const cf_source_backend file_backend = {
    "file", file_seek, NULL, file_poll, file_commit, file_lag, file_available_now, file_close,
};

int cf_source_file_open(cf_source *s, const char *path, const cf_source_config *cfg, cf_err *err)
{
    file_src *f = calloc(1, sizeof *f);

    if (!f || !(f->path = strdup(path)) || !(f->rbuf = malloc(READ_CHUNK))) {
        if (f) {
            free(f->path);
            free(f);
        }
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    f->max_msg = cfg->max_message_bytes ? cfg->max_message_bytes : CF_SOURCE_DEFAULT_MAX_MSG;
    cf_buf_init(&f->line, 0);
    if (cfg->ntopics > 0 && cfg->topics[0] && cfg->topics[0][0]) {
        if (strlen(cfg->topics[0]) >= sizeof f->topic) {
            s->impl = f;
            f->fd = -1;
            file_close(s);
            s->impl = NULL;
            return cf_err_set(err, CF_E_ARG, "topic name too long");
        }
        strcpy(f->topic, cfg->topics[0]);
    } else {
        topic_from_path(f->topic, sizeof f->topic, path);
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        int e = errno;
        s->impl = f;
        file_close(s);
        s->impl = NULL;
        return cf_err_set(err, CF_E_IO, "%s: %s", path, strerror(e));
    }
    s->be = &file_backend;
    s->impl = f;
    return 0;
}
