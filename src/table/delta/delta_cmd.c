/* delta_cmd.c - scan, history and optimize for Delta tables. */
#include "table/delta/delta_cmd.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/delta/delta_int.h"
#include "table/delta/delta_print.h"

bool cf_delta_is_table(cf_store *st, const char *root)
{
    return cf_delta_log_exists(st, root);
}

int cf_delta_parse_when(const char *s, int64_t *ms)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    int64_t us;

    if (end != s && !*end) {
        *ms = v;
        return 0;
    }
    if (cf_delta_parse_ts(s, &us))
        return -1;
    *ms = us >= 0 ? us / 1000 : -((-us + 999) / 1000);
    return 0;
}

int64_t cf_delta_version_at(cf_store *st, const char *root, int64_t ms, cf_err *err)
{
    int64_t *v = NULL, best = -1;
    size_t n = 0;

    if (cf_delta_log_versions(st, root, &v, &n, err))
        return -1;
    for (size_t i = 0; i < n; i++) {
        int64_t ts = cf_delta_log_commit_ts(st, root, v[i]);
        if (ts >= 0 && ts <= ms)
            best = v[i];
    }
    free(v);
    if (best < 0)
        cf_err_set(err, CF_E_ARG, "%s has no version committed at or before %" PRId64 " ms", root, ms);
    return best;
}

static void die_err(const char *cmd, const cf_err *e)
{
    fprintf(stderr, "cdcflow %s: %s\n", cmd, e->msg);
}

/* ---- scan --------------------------------------------------------------- */

static void scan_usage(FILE *o)
{
    fputs("Usage: cdcflow scan TABLE [--version N | --timestamp T] [--format table|jsonl|csv]\n"
          "                    [--limit N] [--columns a,b,...]\n"
          "\n"
          "Print the rows of a Delta Lake or Iceberg table.\n"
          "  --version N      read the table as of version N (time travel)\n"
          "  --timestamp T    read the newest version committed at or before T\n"
          "                   (ISO-8601 like 2026-01-31T12:00:00Z, or epoch milliseconds)\n"
          "  --format F       table (default), jsonl or csv\n"
          "  --limit N        print at most N rows\n"
          "  --columns LIST   print only these columns, in this order\n", o);
}

int cf_delta_cmd_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        { "version", required_argument, 0, 'v' }, { "timestamp", required_argument, 0, 't' },
        { "format", required_argument, 0, 'f' },  { "limit", required_argument, 0, 'l' },
        { "columns", required_argument, 0, 'c' }, { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t version = -1, limit = -1, when = -1;
    int fmt = CF_DELTA_FMT_TABLE, c, rc = 1;
    const char *columns = NULL, *root;
    cf_err e = { 0 };
    cf_delta_snap *snap = NULL;
    cf_schema *ps = NULL;
    cf_batch *b = NULL;
    cf_delta_printer *pr = NULL;
    cf_store *st = NULL;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': version = atoll(optarg); break;
        case 't':
            if (cf_delta_parse_when(optarg, &when)) {
                fprintf(stderr, "cdcflow scan: bad --timestamp '%s'\n", optarg);
                return 2;
            }
            break;
        case 'f':
            if ((fmt = cf_delta_format_parse(optarg)) < 0) {
                fprintf(stderr, "cdcflow scan: --format is table, jsonl or csv\n");
                return 2;
            }
            break;
        case 'l': limit = atoll(optarg); break;
        case 'c': columns = optarg; break;
        case 'h': scan_usage(stdout); return 0;
        default: scan_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        scan_usage(stderr);
        return 2;
    }
    root = argv[optind];
    if (!(st = cf_store_open(root, NULL, &e)))
        goto fail;
    if (when >= 0 && (version = cf_delta_version_at(st, root, when, &e)) < 0)
        goto fail;
    if (!(snap = cf_delta_snap_load(st, root, version, &e)))
        goto fail;
    if (snap->version < 0) {
        cf_err_set(&e, CF_E_ARG, "%s is not a Delta table (no _delta_log)", root);
        goto fail;
    }
    /* The projection: --columns or every column. */
    if (!(ps = cf_schema_new()))
        goto oom;
    if (columns) {
        char *list = strdup(columns), *save = NULL;
        if (!list)
            goto oom;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            int i = cf_schema_find(snap->schema, t);
            if (i < 0) {
                cf_err_set(&e, CF_E_ARG, "no column '%s' in %s", t, root);
                free(list);
                goto fail;
            }
            if (cf_schema_add(ps, t, snap->schema->fields[i].type, true, 0, &e) < 0) {
                free(list);
                goto fail;
            }
        }
        free(list);
    } else {
        for (int i = 0; i < snap->schema->nfields; i++)
            if (cf_schema_add(ps, snap->schema->fields[i].name, snap->schema->fields[i].type, true, 0, &e) < 0)
                goto fail;
    }
    if (!(b = cf_batch_new(ps, &e)) || !(pr = cf_delta_printer_new(stdout, fmt, ps, limit)))
        goto oom;
    for (size_t i = 0; i < snap->nfiles && !cf_delta_printer_full(pr); i++) {
        cf_delta_file *f = &snap->files[i];
        if (!f->live)
            continue;
        cf_batch_reset(b);
        if (cf_delta_read_file(st, snap->root, f->path, &f->pv, &f->dv, ps, b, &e))
            goto fail;
        cf_delta_printer_batch(pr, b, NULL);
    }
    cf_delta_printer_end(pr);
    rc = 0;
    goto out;
oom:
    cf_err_set(&e, CF_E_NOMEM, "out of memory");
fail:
    die_err("scan", &e);
out:
    cf_delta_printer_free(pr);
    cf_batch_free(b);
    cf_schema_free(ps);
    cf_delta_snap_free(snap);
    cf_store_close(st);
    return rc;
}

/* ---- history ------------------------------------------------------------ */

static void history_usage(FILE *o)
{
    fputs("Usage: cdcflow history TABLE [--limit N] [--format table|jsonl]\n"
          "\n"
          "List the versions of a Delta Lake table, newest first: version, commit time,\n"
          "operation and its metrics.  When log retention removed the first commits, a last\n"
          "line says which versions are no longer listed and which checkpoint holds them.\n", o);
}

/* The commitInfo action of a commit's text (a new reference), NULL if none. */
static json_t *commit_info(const cf_buf *b)
{
    json_t *ci = NULL;

    for (size_t off = 0; off < b->len && !ci;) {
        const char *ln = (const char *)b->data + off;
        const char *nl = memchr(ln, '\n', b->len - off);
        size_t len = nl ? (size_t)(nl - ln) : b->len - off;
        json_t *j = json_loadb(ln, len, 0, NULL);
        json_t *x = json_object_get(j, "commitInfo");
        if (json_is_object(x))
            ci = json_incref(x);
        json_decref(j);
        off += len + 1;
    }
    return ci;
}

/* One line of history for version v, whose commitInfo is ci (may be NULL). */
static void history_line(int fmt, int64_t v, int64_t ts, json_t *ci)
{
    const char *op = json_string_value(json_object_get(ci, "operation"));
    json_t *om = json_object_get(ci, "operationMetrics"), *op_params = json_object_get(ci, "operationParameters");
    char when[40] = "";

    if (fmt == CF_DELTA_FMT_TABLE) {
        char *metrics = om ? json_dumps(om, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (ts >= 0)
            cf_delta_fmt_ts_ms(ts, when, sizeof when);
        printf("%-8" PRId64 " %-24s %-18s %s\n", v, when, op ? op : "-", metrics ? metrics : "{}");
        free(metrics);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(v));
    json_object_set_new(o, "timestamp", json_integer(ts));
    json_object_set_new(o, "operation", op ? json_string(op) : json_null());
    json_object_set_new(o, "operationMetrics", om ? json_incref(om) : json_object());
    json_object_set_new(o, "operationParameters", op_params ? json_incref(op_params) : json_object());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s)
        puts(s);
    free(s);
    json_decref(o);
}

/* Log retention (other tools') deleted the first commits: their state
 * lives on in a checkpoint, their history is gone.  Say so. */
static void history_gap(cf_store *st, const char *root, int fmt, const int64_t *v, size_t n)
{
    int64_t first = n ? v[0] : cf_delta_log_last_checkpoint(st, root, -1) + 1, ck;
    char note[256];

    if (first <= 0)
        return;
    ck = cf_delta_log_last_checkpoint(st, root, first);
    snprintf(note, sizeof note, "versions 0 to %" PRId64 " are no longer listed: their commits were "
             "removed from the log%s", first - 1, ck >= 0 ? "" : " and no checkpoint holds their state");
    if (ck >= 0)
        snprintf(note + strlen(note), sizeof note - strlen(note),
                 " (checkpoint %" PRId64 " holds the table state)", ck);
    if (fmt == CF_DELTA_FMT_TABLE)
        printf("%s\n", note);
    else
        fprintf(stderr, "cdcflow history: %s\n", note);
}

int cf_delta_cmd_history(int argc, char **argv)
{
    static const struct option opts[] = {
        { "limit", required_argument, 0, 'l' }, { "format", required_argument, 0, 'f' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t limit = -1, *v = NULL;
    size_t n = 0;
    int c, fmt = CF_DELTA_FMT_TABLE, rc = 1;
    cf_err e;
    cf_buf b;
    cf_store *st;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': limit = atoll(optarg); break;
        case 'f':
            fmt = cf_delta_format_parse(optarg);
            if (fmt != CF_DELTA_FMT_TABLE && fmt != CF_DELTA_FMT_JSONL) {
                fprintf(stderr, "cdcflow history: --format is table or jsonl\n");
                return 2;
            }
            break;
        case 'h': history_usage(stdout); return 0;
        default: history_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        history_usage(stderr);
        return 2;
    }
    const char *root = argv[optind];
    if (!(st = cf_store_open(root, NULL, &e))) {
        die_err("history", &e);
        return 1;
    }
    if (!cf_delta_is_table(st, root)) {
        fprintf(stderr, "cdcflow history: %s is not a Delta table (no _delta_log)\n", root);
        goto out;
    }
    if (cf_delta_log_versions(st, root, &v, &n, &e)) {
        die_err("history", &e);
        goto out;
    }
    if (fmt == CF_DELTA_FMT_TABLE)
        printf("%-8s %-24s %-18s %s\n", "version", "timestamp", "operation", "metrics");
    cf_buf_init(&b, 0);
    for (size_t k = n; k-- > 0 && (limit < 0 || (int64_t)(n - 1 - k) < limit);) {
        if (cf_delta_log_read(st, root, v[k], &b, &e)) {
            die_err("history", &e);
            continue;
        }
        json_t *ci = commit_info(&b);
        history_line(fmt, v[k], cf_delta_log_commit_ts(st, root, v[k]), ci);
        json_decref(ci);
    }
    cf_buf_free(&b);
    history_gap(st, root, fmt, v, n);
    free(v);
    rc = 0;
out:
    cf_store_close(st);
    return rc;
}

/* ---- optimize ----------------------------------------------------------- */

static void optimize_usage(FILE *o)
{
    fputs("Usage: cdcflow optimize TABLE [--target-size BYTES] [--min-files N]\n"
          "\n"
          "Compact the small data files of a table into bigger ones.  Delta: files under\n"
          "half the target size are rewritten per partition in one commit (remove + add,\n"
          "dataChange=false, so change-feed readers see no change); a file with a deletion\n"
          "vector (written by another engine) is rewritten without its deleted rows.\n"
          "  --target-size BYTES   target file size (default 134217728)\n"
          "  --min-files N         compact a partition only with at least N small files (default 2)\n", o);
}

int cf_delta_cmd_optimize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "target-size", required_argument, 0, 's' }, { "min-files", required_argument, 0, 'm' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t target = 128LL << 20, version, removed = 0, added = 0;
    int c, min_files = 2;
    cf_err e;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': target = atoll(optarg); break;
        case 'm': min_files = atoi(optarg); break;
        case 'h': optimize_usage(stdout); return 0;
        default: optimize_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || target <= 0 || min_files < 2) {
        optimize_usage(stderr);
        return 2;
    }
    if (cf_delta_optimize(argv[optind], target, min_files, &version, &removed, &added, &e)) {
        die_err("optimize", &e);
        return 1;
    }
    if (version < 0)
        printf("nothing to compact\n");
    else
        printf("version %" PRId64 ": %" PRId64 " files compacted into %" PRId64 "\n", version, removed, added);
    return 0;
}
