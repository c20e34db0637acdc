/* cdf_cmd.c - `cdcflow changes` (read a Delta table's Change Data Feed) and
 * `cdcflow vacuum` (delete files no version within the retention needs). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "table/delta/delta_cmd.h"
#include "table/delta/delta_int.h"
#include "table/delta/delta_print.h"
#include "util/id.h"

/* ---- changes ------------------------------------------------------------ */

static void changes_usage(FILE *o)
{
    fputs("Usage: cdcflow changes TABLE --from-version A [--to-version B]\n"
          "       cdcflow changes TABLE --from-timestamp T [--to-timestamp T]\n"
          "                       [--format table|jsonl|csv] [--limit N]\n"
          "\n"
          "Print the Change Data Feed of a Delta table between two versions (inclusive):\n"
          "every changed row with _change_type (insert, update_preimage, update_postimage,\n"
          "delete), _commit_version and _commit_timestamp.  Versions with change data files\n"
          "are read from them; in other versions added files are inserts and removed files\n"
          "deletes.  Timestamps: ISO-8601 (2026-01-31T12:00:00Z) or epoch milliseconds.\n", o);
}

typedef struct cdf_action {
    int         kind;             /* 0 add 1 remove 2 cdc */
    char       *path;
    cf_delta_pv pv;
    cf_delta_dv dv;
} cdf_action;

static int parse_pv_obj(json_t *o, cf_delta_pv *pv)
{
    const char *k;
    json_t *v;
    size_t n = json_is_object(o) ? json_object_size(o) : 0;

    memset(pv, 0, sizeof *pv);
    if (!n)
        return 0;
    pv->keys = calloc(n, sizeof *pv->keys);
    pv->vals = calloc(n, sizeof *pv->vals);
    if (!pv->keys || !pv->vals)
        return -1;
    json_object_foreach(o, k, v) {
        pv->keys[pv->n] = strdup(k);
        pv->vals[pv->n] = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
        pv->n++;
    }
    return 0;
}

static void actions_free(cdf_action *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(a[i].path);
        cf_delta_pv_free(&a[i].pv);
        cf_delta_dv_free(&a[i].dv);
    }
    free(a);
}

/* The action of the other kind (add for a remove, remove for an add) on
 * the same path: a deletion vector put on a file, or replaced. */
static const cdf_action *dv_partner(const cdf_action *a, size_t n, size_t i)
{
    for (size_t q = 0; q < n; q++)
        if (q != i && a[q].kind == 1 - a[i].kind && !strcmp(a[q].path, a[i].path))
            return &a[q];
    return NULL;
}

/* Rows of a[i] as changes read them: an added file's live rows, a removed
 * file's rows, except when the commit only moves the file to a new
 * deletion vector: then the rows the new vector adds are the deletes, and
 * the add stands for no rows. */
static int action_rows(cf_store *st, const char *root, const cdf_action *a, size_t n, size_t i,
                       const cf_schema *rs, cf_batch *b, cf_err *err)
{
    const cdf_action *p = a[i].kind < 2 ? dv_partner(a, n, i) : NULL;
    cf_rowset o = { 0 }, nw = { 0 }, d = { 0 };
    int rc = -1;

    if (!p)
        return cf_delta_read_file(st, root, a[i].path, &a[i].pv, &a[i].dv, rs, b, err);
    if (a[i].kind == 0)
        return 0;
    if (cf_delta_dv_read(st, root, &a[i].dv, &o, err) || cf_delta_dv_read(st, root, &p->dv, &nw, err))
        goto out;
    if (!(d.v = malloc(sizeof *d.v * (nw.n + 1)))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    for (size_t q = 0, k = 0; q < nw.n; q++) {   /* d = new - old, both ascending */
        while (k < o.n && o.v[k] < nw.v[q])
            k++;
        if (k == o.n || o.v[k] != nw.v[q])
            d.v[d.n++] = nw.v[q];
    }
    rc = d.n ? cf_delta_read_file_set(st, root, a[i].path, &a[i].pv, &d, true, rs, b, err) : 0;
out:
    cf_rowset_free(&o);
    cf_rowset_free(&nw);
    cf_rowset_free(&d);
    return rc;
}

/* The add/remove (dataChange) and cdc actions of one commit. */
static int commit_actions(cf_store *st, const char *root, int64_t version, cdf_action **out, size_t *nout,
                          bool *has_cdc, cf_err *err)
{
    cf_buf b;
    cdf_action *a = NULL;
    size_t n = 0, alloc = 0;

    *has_cdc = false;
    cf_buf_init(&b, 0);
    if (cf_delta_log_read(st, root, version, &b, err)) {
        cf_buf_free(&b);
        return -1;
    }
    for (size_t off = 0; off < b.len;) {
        const char *ln = (const char *)b.data + off;
        const char *nl = memchr(ln, '\n', b.len - off);
        size_t len = nl ? (size_t)(nl - ln) : b.len - off;
        json_t *j = json_loadb(ln, len, 0, NULL);
        static const char *const kinds[] = { "add", "remove", "cdc" };
        off += len + 1;
        for (int k = 0; j && k < 3; k++) {
            json_t *x = json_object_get(j, kinds[k]);
            const char *p = json_string_value(json_object_get(x, "path"));
            if (!p || (k < 2 && !json_is_true(json_object_get(x, "dataChange"))))
                continue;
            if (n == alloc) {
                size_t na = alloc ? alloc * 2 : 16;
                cdf_action *nn = realloc(a, na * sizeof *nn);
                if (!nn)
                    break;
                a = nn;
                alloc = na;
            }
            a[n].kind = k;
            a[n].path = strdup(p);
            parse_pv_obj(json_object_get(x, "partitionValues"), &a[n].pv);
            if (cf_delta_dv_parse(json_object_get(x, "deletionVector"), &a[n].dv, err)) {
                free(a[n].path);
                cf_delta_pv_free(&a[n].pv);
                json_decref(j);
                cf_buf_free(&b);
                actions_free(a, n);
                return -1;
            }
            n++;
            if (k == 2)
                *has_cdc = true;
        }
        json_decref(j);
    }
    cf_buf_free(&b);
    *out = a;
    *nout = n;
    return 0;
}


/* The versions a time range covers: from = the first version committed
 * at or after from_ts, to = the last at or before to_ts (each only when
 * asked, < 0 otherwise). */
static int versions_between(cf_store *st, const char *root, int64_t from_ts, int64_t to_ts, int64_t *from,
                            int64_t *to, cf_err *err)
{
    int64_t *v = NULL;
    size_t n = 0;

    if (cf_delta_log_versions(st, root, &v, &n, err))
        return -1;
    for (size_t i = 0; i < n; i++) {
        int64_t ts = cf_delta_log_commit_ts(st, root, v[i]);
        if (from_ts >= 0 && *from < 0 && ts >= from_ts)
            *from = v[i];
        if (to_ts >= 0 && ts <= to_ts)
            *to = v[i];
    }
    free(v);
    if (*from < 0)
        return cf_err_set(err, CF_E_ARG, "no version of %s was committed after the start time", root);
    if (to_ts >= 0 && *to < 0)
        *to = *from - 1;   /* empty range */
    return 0;
}

/* A start before the oldest commit the log still holds: say so rather
 * than fail at the first missing file. */
static int check_first(cf_store *st, const char *root, int64_t latest, int64_t from, int64_t to, cf_err *err)
{
    int64_t *lv = NULL, first;
    size_t ln = 0;

    if (cf_delta_log_versions(st, root, &lv, &ln, err))
        return -1;
    first = ln ? lv[0] : latest + 1;
    free(lv);
    if (from < first && from <= to)
        return cf_err_set(err, CF_E_ARG, "%s: versions before %" PRId64 " are no longer in the log (removed by "
                          "log retention); the change feed can start at %" PRId64, root, first, first);
    return 0;
}

int cf_cmd_changes(int argc, char **argv)
{
    static const struct option opts[] = {
        { "from-version", required_argument, 0, 'a' }, { "to-version", required_argument, 0, 'b' },
        { "from-timestamp", required_argument, 0, 'A' }, { "to-timestamp", required_argument, 0, 'B' },
        { "format", required_argument, 0, 'f' }, { "limit", required_argument, 0, 'l' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t from = -1, to = -1, from_ts = -1, to_ts = -1, limit = -1;
    int c, fmt = CF_DELTA_FMT_TABLE, rc = 1;
    cf_err e = { 0 };
    cf_delta_snap *snap = NULL;
    cf_schema *rs = NULL, *cs = NULL, *ps = NULL;
    cf_batch *b = NULL, *consts = NULL;
    cf_delta_printer *pr = NULL;
    const cf_column **cols = NULL;
    size_t *rows = NULL;
    cf_store *st = NULL;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': from = atoll(optarg); break;
        case 'b': to = atoll(optarg); break;
        case 'A':
        case 'B':
            if (cf_delta_parse_when(optarg, c == 'A' ? &from_ts : &to_ts)) {
                fprintf(stderr, "cdcflow changes: bad timestamp '%s'\n", optarg);
                return 2;
            }
            break;
        case 'f':
            if ((fmt = cf_delta_format_parse(optarg)) < 0) {
                fprintf(stderr, "cdcflow changes: --format is table, jsonl or csv\n");
                return 2;
            }
            break;
        case 'l': limit = atoll(optarg); break;
        case 'h': changes_usage(stdout); return 0;
        default: changes_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || (from < 0 && from_ts < 0)) {
        changes_usage(stderr);
        return 2;
    }
    const char *root = argv[optind];
    if (!(st = cf_store_open(root, NULL, &e)) || !(snap = cf_delta_snap_load(st, root, -1, &e)))
        goto fail;
    root = snap->root;
    if (snap->version < 0) {
        cf_err_set(&e, CF_E_ARG, "%s is not a Delta table", root);
        goto fail;
    }
    if ((from_ts >= 0 || to_ts >= 0) && versions_between(st, root, from_ts, to_ts, &from, &to, &e))
        goto fail;
    if (to < 0 && to_ts < 0)
        to = snap->version;
    if (to > snap->version)
        to = snap->version;

    /* read schema: the table's columns and _change_type; printed: plus the
     * commit version and timestamp */
    cf_type tstr = { CF_T_STRING }, tlong = { CF_T_INT64 }, tts = { CF_T_TIMESTAMP };
    if (!(rs = cf_schema_clone(snap->schema)) || cf_schema_add(rs, "_change_type", tstr, true, 0, &e) < 0 ||
        !(ps = cf_schema_clone(rs)) || cf_schema_add(ps, "_commit_version", tlong, true, 0, &e) < 0 ||
        cf_schema_add(ps, "_commit_timestamp", tts, true, 0, &e) < 0 || !(cs = cf_schema_new()) ||
        cf_schema_add(cs, "t", tstr, true, 0, &e) < 0 || cf_schema_add(cs, "v", tlong, true, 0, &e) < 0 ||
        cf_schema_add(cs, "ts", tts, true, 0, &e) < 0)
        goto oom;
    if (!(b = cf_batch_new(rs, &e)) || !(consts = cf_batch_new(cs, &e)) ||
        !(pr = cf_delta_printer_new(stdout, fmt, ps, limit)) ||
        !(cols = calloc((size_t)ps->nfields, sizeof *cols)) || !(rows = calloc((size_t)ps->nfields, sizeof *rows)))
        goto oom;
    if (check_first(st, root, snap->version, from, to, &e))
        goto fail;
    int nt = snap->schema->nfields;
    for (int64_t v = from; v <= to && !cf_delta_printer_full(pr); v++) {
        cdf_action *a = NULL;
        size_t na = 0;
        bool has_cdc;
        int64_t ts = cf_delta_log_commit_ts(st, root, v);
        if (commit_actions(st, root, v, &a, &na, &has_cdc, &e)) {
            cf_err_wrap(&e, "version %" PRId64 " (removed by log cleanup?)", v);
            goto fail;
        }
        for (size_t i = 0; i < na && !cf_delta_printer_full(pr); i++) {
            if (has_cdc != (a[i].kind == 2))
                continue;
            const char *tag = a[i].kind == 0 ? "insert" : "delete";
            cf_batch_reset(b);
            cf_batch_reset(consts);
            if (action_rows(st, root, a, na, i, rs, b, &e)) {
                actions_free(a, na);
                cf_err_wrap(&e, "version %" PRId64, v);
                goto fail;
            }
            cf_col_set_bytes(&consts->cols[0], 0, tag, strlen(tag), NULL);
            cf_col_set_i64(&consts->cols[1], 0, v, NULL);
            if (ts >= 0)
                cf_col_set_i64(&consts->cols[2], 0, ts * 1000, NULL);
            cf_batch_end_row(consts, NULL);
            for (size_t r = 0; r < b->nrows && !cf_delta_printer_full(pr); r++) {
                for (int k = 0; k < nt; k++) {
                    cols[k] = &b->cols[k];
                    rows[k] = r;
                }
                bool from_file = a[i].kind == 2 && cf_col_valid(&b->cols[nt], r);
                cols[nt] = from_file ? &b->cols[nt] : &consts->cols[0];
                rows[nt] = from_file ? r : 0;
                cols[nt + 1] = &consts->cols[1];
                cols[nt + 2] = &consts->cols[2];
                rows[nt + 1] = rows[nt + 2] = 0;
                cf_delta_printer_row(pr, cols, rows);
            }
        }
        actions_free(a, na);
    }
    cf_delta_printer_end(pr);
    rc = 0;
    goto out;
oom:
    if (e.code == CF_OK)
        cf_err_set(&e, CF_E_NOMEM, "out of memory");
fail:
    fprintf(stderr, "cdcflow changes: %s\n", e.msg);
out:
    free(cols);
    free(rows);
    cf_delta_printer_free(pr);
    cf_batch_free(b);
    cf_batch_free(consts);
    cf_schema_free(rs);
    cf_schema_free(ps);
    cf_schema_free(cs);
    cf_delta_snap_free(snap);
    cf_store_close(st);
    return rc;
}

/* ---- vacuum ------------------------------------------------------------- */

#define VACUUM_MIN_HOURS 168

static void vacuum_usage(FILE *o)
{
    fputs("Usage: cdcflow vacuum TABLE [--retain-hours N] [--dry-run] [--force]\n"
          "\n"
          "Delete the files of a Delta table that the current version does not use and\n"
          "that no version within the last N hours needs (default 168 = 7 days): data\n"
          "files removed by updates, deletes or optimize, change data files, and files\n"
          "left by writers that stopped before committing.  Time travel and change-feed\n"
          "reads to versions older than N hours fail afterwards.\n"
          "  --retain-hours N   keep what the last N hours need (below 168 needs --force,\n"
          "                     since a running writer's uncommitted files could go)\n"
          "  --dry-run          list what would be deleted, delete nothing\n"
          "  --force            allow --retain-hours below 168\n", o);
}

typedef struct vac {
    const char   *root;
    cf_store     *st;
    cf_delta_map *keep;         /* paths relative to root (decoded) to keep */
    int64_t       cutoff_ms;
    bool          dry;
    int64_t       files, bytes, errors;
} vac;

/* Keep the file a log path names: its path relative to the root (an
 * absolute one outside the table is not ours to delete anyway). */
static void keep_path(vac *v, const char *logpath)
{
    char *full = cf_delta_path_full(v->root, logpath);
    const char *rel = full ? cf_delta_path_rel(v->root, full) : NULL;

    if (rel)
        cf_delta_map_put(v->keep, rel, strlen(rel), 1);
    free(full);
}

/* Keep the file a deletion vector lives in (none for inline ones). */
static void keep_dv(vac *v, const cf_delta_dv *dv)
{
    char *loc = dv->type == 'u' || dv->type == 'p' ? cf_delta_dv_location(v->root, dv, NULL) : NULL;
    const char *rel = loc ? cf_delta_path_rel(v->root, loc) : NULL;

    if (rel)
        cf_delta_map_put(v->keep, rel, strlen(rel), 1);
    free(loc);
}

/* Whether vacuum may look at rel at all: the log is never vacuumed; other
 * hidden names (a leading '.' or '_', at any depth) are not ours, except
 * the change data directory at the top. */
static bool vacuumable(const char *rel)
{
    for (const char *c = rel;;) {
        size_t n = strcspn(c, "/");
        bool cdc = c == rel && n == strlen(CF_DELTA_CDC_DIR) && !strncmp(c, CF_DELTA_CDC_DIR, n);
        if ((c[0] == '.' || c[0] == '_') && !cdc)
            return false;
        if (!c[n])
            return true;
        c += n + 1;
    }
}

/* One object found by walking the table: delete it unless kept or young. */
static int vacuum_one(void *ctx, const char *path, const cf_store_stat *stat)
{
    vac *v = ctx;
    const char *rel = cf_delta_path_rel(v->root, path);
    cf_err e;

    if (!rel || !vacuumable(rel) || cf_delta_map_get(v->keep, rel, strlen(rel), NULL) ||
        stat->mtime_ms >= v->cutoff_ms)
        return 0;
    if (v->dry) {
        printf("would delete %s\n", rel);
    } else if (cf_store_delete(v->st, path, &e)) {
        fprintf(stderr, "cdcflow vacuum: %s\n", e.msg);
        v->errors++;
        return 0;
    }
    v->files++;
    v->bytes += stat->size;
    return 0;
}

/* Every path the actions of commit text b name (add, remove, cdc). */
static void keep_commit_paths(vac *v, const cf_buf *b)
{
    static const char *const kinds[] = { "add", "remove", "cdc" };

    for (size_t off = 0; off < b->len;) {
        const char *ln = (const char *)b->data + off;
        const char *nl = memchr(ln, '\n', b->len - off);
        size_t len = nl ? (size_t)(nl - ln) : b->len - off;
        json_t *j = json_loadb(ln, len, 0, NULL);
        for (int q = 0; j && q < 3; q++) {
            json_t *x = json_object_get(j, kinds[q]);
            const char *p = json_string_value(json_object_get(x, "path"));
            cf_delta_dv dv;
            if (p)
                keep_path(v, p);
            if (x && cf_delta_dv_parse(json_object_get(x, "deletionVector"), &dv, NULL) == 0) {
                keep_dv(v, &dv);
                cf_delta_dv_free(&dv);
            }
        }
        json_decref(j);
        off += len + 1;
    }
}

/* What stays: live files and recent tombstones (also from a checkpoint),
 * and every file a commit inside the retention window names (removed ones
 * and change data of recent commits). */
static void vacuum_keep(vac *v, const cf_delta_snap *snap)
{
    int64_t *vers = NULL;
    size_t nv = 0;
    cf_buf b;

    for (size_t i = 0; i < snap->nfiles; i++)
        if (snap->files[i].live || snap->files[i].deleted_at >= v->cutoff_ms) {
            keep_path(v, snap->files[i].path);
            keep_dv(v, &snap->files[i].dv);
        }
    if (cf_delta_log_versions(v->st, v->root, &vers, &nv, NULL))
        return;
    cf_buf_init(&b, 0);
    for (size_t k = nv; k-- > 0;) {
        int64_t ts = cf_delta_log_commit_ts(v->st, v->root, vers[k]);
        if (ts >= 0 && ts < v->cutoff_ms)
            break;
        if (cf_delta_log_read(v->st, v->root, vers[k], &b, NULL) == 0)
            keep_commit_paths(v, &b);
    }
    free(vers);
    cf_buf_free(&b);
}

int cf_cmd_vacuum(int argc, char **argv)
{
    static const struct option opts[] = {
        { "retain-hours", required_argument, 0, 'r' }, { "dry-run", no_argument, 0, 'n' },
        { "force", no_argument, 0, 'f' }, { "help", no_argument, 0, 'h' }, { 0 },
    };
    double hours = VACUUM_MIN_HOURS;
    bool dry = false, force = false;
    int c, rc = 1;
    cf_err e;
    cf_store *st;
    cf_delta_snap *snap = NULL;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': hours = atof(optarg); break;
        case 'n': dry = true; break;
        case 'f': force = true; break;
        case 'h': vacuum_usage(stdout); return 0;
        default: vacuum_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || hours < 0) {
        vacuum_usage(stderr);
        return 2;
    }
    if (hours < VACUUM_MIN_HOURS && !force) {
        fprintf(stderr, "cdcflow vacuum: --retain-hours %g is under %d hours: a running writer's "
                        "files and recent time travel could break; add --force if you mean it\n",
                hours, VACUUM_MIN_HOURS);
        return 2;
    }
    const char *root = argv[optind];
    if (!(st = cf_store_open(root, NULL, &e)) || !(snap = cf_delta_snap_load(st, root, -1, &e))) {
        fprintf(stderr, "cdcflow vacuum: %s\n", e.msg);
        goto out;
    }
    if (snap->version < 0) {
        fprintf(stderr, "cdcflow vacuum: %s is not a Delta table\n", root);
        goto out;
    }
    vac v = { .root = snap->root, .st = st, .keep = cf_delta_map_new(), .dry = dry };
    if (!v.keep) {
        fprintf(stderr, "cdcflow vacuum: out of memory\n");
        goto out;
    }
    v.cutoff_ms = cf_now_ms() - (int64_t)(hours * 3600.0 * 1000.0);
    vacuum_keep(&v, snap);
    /* Only files found by walking the table are deleted, never paths a
     * log names: a log cannot make vacuum delete outside the table. */
    if (cf_store_list(st, snap->root, 0, vacuum_one, &v, &e)) {
        fprintf(stderr, "cdcflow vacuum: %s\n", e.msg);
        v.errors++;
    }
    printf("%s %" PRId64 " files (%" PRId64 " bytes)%s\n", dry ? "would delete" : "deleted", v.files,
           v.bytes, v.errors ? ", some could not be deleted" : "");
    cf_delta_map_free(v.keep);
    rc = v.errors ? 1 : 0;
out:
    cf_delta_snap_free(snap);
    cf_store_close(st);
    return rc;
}
