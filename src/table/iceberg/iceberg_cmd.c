/* iceberg_cmd.c - scan, history and optimize for Iceberg tables (the
 * Iceberg halves of cdcflow's table commands). */
#include "table/iceberg/iceberg_cmd.h"

#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table/delta/delta_print.h"
#include "table/iceberg/iceberg_int.h"
#include "util/fs.h"
#include "format/parquet/parquet.h"

bool cf_iceberg_is_table(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    DIR *d;
    struct dirent *de;
    bool found = false;

    snprintf(p, sizeof p, "%s/metadata/version-hint.text", dir);
    if (stat(p, &st) == 0)
        return true;
    snprintf(p, sizeof p, "%s/metadata", dir);
    if (!(d = opendir(p)))
        return false;
    while (!found && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        found = de->d_name[0] == 'v' && n > 14 && !strcmp(de->d_name + n - 14, ".metadata.json");
    }
    closedir(d);
    return found;
}

/* Load the table (or metadata version `version` when > 0) or print why not. */
static int load_or_say(const char *cmd, const char *dir, int version, cf_ice_table *t)
{
    cf_err e = { 0 };
    if ((version > 0 ? cf_ice_load_version(dir, version, t, &e) : cf_ice_load(dir, t, &e))) {
        fprintf(stderr, "cdcflow %s: %s\n", cmd, e.msg);
        cf_ice_table_free(t);
        return -1;
    }
    if (!t->meta) {
        fprintf(stderr, "cdcflow %s: %s is not an Iceberg table\n", cmd, dir);
        cf_ice_table_free(t);
        return -1;
    }
    return 0;
}

/* ---- scan --------------------------------------------------------------- */

static void scan_usage(FILE *o)
{
    fputs("Usage: cdcflow scan ICEBERG_TABLE [--snapshot ID | --version N | --timestamp T]\n"
          "                    [--format table|jsonl|csv] [--limit N] [--columns a,b,...]\n"
          "\n"
          "Print the live rows of an Iceberg table (position deletes applied).\n"
          "  --snapshot ID    read snapshot ID (time travel; see `cdcflow history`)\n"
          "  --version N      read the table as metadata file vN.metadata.json left it\n"
          "  --timestamp T    read the newest snapshot committed at or before T\n"
          "                   (ISO-8601 like 2026-01-31T12:00:00Z, epoch milliseconds, or\n"
          "                   a duration before now: 7d, 12h, 30m, 45s)\n"
          "  --format F       table (default), jsonl or csv\n"
          "  --limit N        print at most N rows\n"
          "  --columns LIST   print only these columns, in this order\n", o);
}

typedef struct print_ctx {
    cf_delta_printer *pr;
} print_ctx;

static int print_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    print_ctx *pc = ctx;
    cf_delta_printer_batch(pc->pr, rows, NULL);
    if (cf_delta_printer_full(pc->pr))
        return cf_err_set(err, CF_E_STOPPED, "limit reached");
    return 0;
}

int cf_iceberg_cmd_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        { "snapshot", required_argument, 0, 's' }, { "snapshot-id", required_argument, 0, 's' },
        { "version", required_argument, 0, 'v' },  { "timestamp", required_argument, 0, 't' },
        { "format", required_argument, 0, 'f' },   { "limit", required_argument, 0, 'l' },
        { "columns", required_argument, 0, 'c' },  { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t snap_id = -1, limit = -1, when = -1;
    int version = 0, fmt = CF_DELTA_FMT_TABLE, c, rc = 1, ncols = 0;
    const char *columns = NULL, *when_arg = NULL;
    cf_ice_table t = { 0 };
    cf_schema *s = NULL;
    int *cols = NULL;
    json_t *snap;
    cf_err e = { 0 };
    print_ctx pc = { 0 };

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': snap_id = strtoll(optarg, NULL, 10); break;
        case 'v': version = atoi(optarg); break;
        case 't':
            if (cf_ice_parse_time(optarg, cf_ice_now_ms(), &when)) {
                fprintf(stderr, "cdcflow scan: bad --timestamp '%s'\n", optarg);
                return 2;
            }
            when_arg = optarg;
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
    if (load_or_say("scan", argv[optind], version, &t))
        return 1;
    if (when >= 0) {
        json_t *sn;
        size_t i;
        /* The snapshot log is in commit order: the last one not after T. */
        json_array_foreach(json_object_get(t.meta, "snapshot-log"), i, sn)
            if (json_integer_value(json_object_get(sn, "timestamp-ms")) <= when)
                snap_id = json_integer_value(json_object_get(sn, "snapshot-id"));
        if (snap_id < 0) {
            fprintf(stderr, "cdcflow scan: no snapshot committed at or before %s\n", when_arg);
            goto out;
        }
    }
    snap = cf_ice_snapshot(t.meta, snap_id);
    if (snap_id >= 0 && !snap) {
        fprintf(stderr, "cdcflow scan: no snapshot %" PRId64 " (expired?)\n", snap_id);
        goto out;
    }
    /* Read with the schema the snapshot was written with. */
    s = cf_ice_schema_from_json(t.meta, snap && json_is_integer(json_object_get(snap, "schema-id"))
                                ? (int)json_integer_value(json_object_get(snap, "schema-id")) : -1, &e);
    if (!s) {
        fprintf(stderr, "cdcflow scan: %s\n", e.msg);
        goto out;
    }
    if (columns) {
        char *list = strdup(columns), *tok, *save = NULL;
        cols = calloc((size_t)s->nfields + 1, sizeof *cols);
        for (tok = list ? strtok_r(list, ",", &save) : NULL; tok && cols; tok = strtok_r(NULL, ",", &save)) {
            int k = cf_schema_find(s, tok);
            if (k < 0 || ncols >= s->nfields) {
                fprintf(stderr, "cdcflow scan: no column '%s'\n", tok);
                free(list);
                goto out;
            }
            cols[ncols++] = k;
        }
        free(list);
    }
    {
        /* The printer names columns from a schema of exactly the scanned ones. */
        cf_schema *ps = cf_schema_new();
        for (int j = 0; ps && j < (cols ? ncols : s->nfields); j++) {
            const cf_field *f = &s->fields[cols ? cols[j] : j];
            cf_schema_add(ps, f->name, f->type, f->nullable, f->field_id, NULL);
        }
        pc.pr = ps ? cf_delta_printer_new(stdout, fmt, ps, limit) : NULL;
        cf_schema_free(ps);
    }
    if (!pc.pr) {
        fprintf(stderr, "cdcflow scan: out of memory\n");
        goto out;
    }
    if (snap && cf_ice_scan(snap, s, cols, cols ? ncols : 0, print_fn, &pc, &e) && e.code != CF_E_STOPPED) {
        cf_delta_printer_end(pc.pr);
        fprintf(stderr, "cdcflow scan: %s\n", e.msg);
        goto out;
    }
    cf_delta_printer_end(pc.pr);
    rc = 0;
out:
    cf_delta_printer_free(pc.pr);
    free(cols);
    cf_schema_free(s);
    cf_ice_table_free(&t);
    return rc;
}

/* ---- history ------------------------------------------------------------ */

static void history_usage(FILE *o)
{
    fputs("Usage: cdcflow history ICEBERG_TABLE [--format table|jsonl] [--limit N]\n"
          "\n"
          "List the snapshots of an Iceberg table, oldest first: sequence number,\n"
          "snapshot id, parent, commit time, operation, files and records added,\n"
          "total records, and the Kafka offsets the snapshot covers.\n"
          "  --format F   table (default) or jsonl (each snapshot's metadata entry as is)\n"
          "  --limit N    list only the N newest snapshots\n", o);
}

static const char *sum_str(json_t *snap, const char *k)
{
    const char *v = json_string_value(json_object_get(json_object_get(snap, "summary"), k));
    return v ? v : "0";
}

int cf_iceberg_cmd_history(int argc, char **argv)
{
    static const struct option opts[] = {
        { "format", required_argument, 0, 'f' }, { "limit", required_argument, 0, 'l' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    cf_ice_table t = { 0 };
    int c, jsonl = 0;
    int64_t limit = -1, cur;
    json_t *snaps, *sn;
    size_t i, start = 0;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "table") && strcmp(optarg, "jsonl")) {
                fprintf(stderr, "cdcflow history: --format is table or jsonl\n");
                return 2;
            }
            jsonl = !strcmp(optarg, "jsonl");
            break;
        case 'l': limit = atoll(optarg); break;
        case 'h': history_usage(stdout); return 0;
        default: history_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        history_usage(stderr);
        return 2;
    }
    if (load_or_say("history", argv[optind], 0, &t))
        return 1;
    snaps = json_object_get(t.meta, "snapshots");
    cur = cf_ice_current_snapshot_id(t.meta);
    if (limit >= 0 && json_array_size(snaps) > (size_t)limit)
        start = json_array_size(snaps) - (size_t)limit;
    if (!jsonl)
        printf("%-5s %-20s %-20s %-24s %-10s %8s %10s %8s %12s  %s\n", "seq", "snapshot_id", "parent",
               "committed_at", "operation", "+files", "+records", "+deletes", "total_rows", "offsets");
    json_array_foreach(snaps, i, sn) {
        char when[40], parent[24] = "-";
        const char *key;
        json_t *v;
        int64_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
        if (i < start)
            continue;
        if (jsonl) {
            char *line = json_dumps(sn, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (line)
                printf("%s\n", line);
            free(line);
            continue;
        }
        if (json_is_integer(json_object_get(sn, "parent-snapshot-id")))
            snprintf(parent, sizeof parent, "%" PRId64,
                     (int64_t)json_integer_value(json_object_get(sn, "parent-snapshot-id")));
        cf_ice_format_time(json_integer_value(json_object_get(sn, "timestamp-ms")), when, sizeof when);
        printf("%-5" PRId64 " %-20" PRId64 " %-20s %-24s %-10s %8s %10s %8s %12s  ",
               (int64_t)json_integer_value(json_object_get(sn, "sequence-number")), id, parent, when,
               sum_str(sn, "operation"), sum_str(sn, "added-data-files"), sum_str(sn, "added-records"),
               sum_str(sn, "added-position-deletes"), sum_str(sn, "total-records"));
        json_object_foreach(json_object_get(sn, "summary"), key, v)
            if (strstr(key, ".offsets."))
                printf("%s=%s ", strstr(key, ".offsets.") + 9, json_string_value(v));
        printf("%s\n", id == cur ? "(current)" : "");
    }
    cf_ice_table_free(&t);
    return 0;
}

/* ---- optimize ----------------------------------------------------------- */

static void optimize_usage(FILE *o)
{
    fputs("Usage: cdcflow optimize ICEBERG_TABLE [--target-size BYTES] [--min-files N]\n"
          "\n"
          "Compact an Iceberg table in one 'replace' snapshot: in each partition, data\n"
          "files smaller than --target-size (default 134217728) are rewritten into one\n"
          "when there are at least --min-files of them (default 2).  When the table has\n"
          "position delete files, every data file is rewritten with its deleted rows\n"
          "left out and the delete files are dropped, so readers merge nothing.\n"
          "Kafka offsets in the snapshot summary carry over.  Old files stay until\n"
          "`cdcflow expire-snapshots`.\n", o);
}

typedef struct rewrite_ctx {
    cf_pq_writer    *w;
    const cf_schema *ts;
    int64_t         *nans;      /* per column */
} rewrite_ctx;

static int rewrite_fn(void *ctx, const cf_batch *rows, const char *file, const int64_t *pos, cf_err *err)
{
    rewrite_ctx *rc = ctx;
    cf_batch view = *rows;
    view.schema = rc->ts;       /* same fields; the writer wants its own schema */
    cf_ice_count_nans(rows, NULL, 0, rc->nans);
    return cf_pq_writer_write(rc->w, &view, err);
}

/* Rewrite data files sel[0..n) (with every delete file applied) into one
 * new file; *out gets the new entry (content 0, path NULL if no row lived). */
static int rewrite_group(const cf_ice_table *t, const cf_schema *ts, const cf_ice_spec *sp,
                         cf_ice_file *const *sel, int n, cf_ice_file *dels, int ndels,
                         cf_ice_file *out, cf_err *err)
{
    cf_ice_file *list = calloc((size_t)(n + ndels), sizeof *list);
    char dir[PATH_MAX], ppath[1024] = "", u[37], *path = NULL;
    cf_pq_options o;
    cf_pq_file_info info;
    rewrite_ctx rc = { .ts = ts };
    int rv = -1, nlist;

    memset(out, 0, sizeof *out);
    memset(&info, 0, sizeof info);
    if (!list)
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    if (!(rc.nans = calloc((size_t)ts->nfields + 1, sizeof *rc.nans))) {
        free(list);
        return cf_err_set(err, CF_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        list[i] = *sel[i];                 /* shallow: borrowed for the scan */
    nlist = n;
    /* Delete files are scoped to a partition; ones without partition values
     * (other writers' unpartitioned deletes) may name any file. */
    for (int i = 0; i < ndels; i++) {
        bool all_null = true;
        for (int k = 0; k < dels[i].npart; k++)
            all_null = all_null && dels[i].part[k].null;
        if (all_null || (dels[i].npart == sel[0]->npart &&
                         cf_ice_pvals_equal(dels[i].part, sel[0]->part, sel[0]->npart)))
            list[nlist++] = dels[i];
    }
    if (sp->nfields && cf_ice_partition_path(sp, sel[0]->part, ppath, sizeof ppath)) {
        cf_err_set(err, CF_E_ARG, "partition path too long");
        goto out;
    }
    snprintf(dir, sizeof dir, "%s/data%s%s", t->location, sp->nfields ? "/" : "", ppath);
    if (cf_fs_mkdirs(dir, err))
        goto out;
    cf_ice_uuid(u);
    if (!(path = malloc(strlen(dir) + 64))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    sprintf(path, "%s/%s-optimized.parquet", dir, u);
    cf_pq_options_default(&o);
    if (!(rc.w = cf_pq_writer_open(path, ts, &o, err)))
        goto out;
    if (cf_ice_scan_files(list, nlist, ts, NULL, 0, rewrite_fn, &rc, err)) {
        cf_pq_writer_abort(rc.w);
        goto out;
    }
    if (cf_pq_writer_close(rc.w, &info, err))
        goto out;
    out->status = 1;
    out->seq = out->file_seq = out->snapshot_id = -1;
    out->spec_id = sp->spec_id;
    out->npart = sel[0]->npart;
    for (int k = 0; k < out->npart; k++) {
        out->part[k] = sel[0]->part[k];
        out->part[k].s = NULL;
        if (sel[0]->part[k].s && !(out->part[k].s = cf_ice_pval_dup(&sel[0]->part[k]))) {
            cf_err_set(err, CF_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (info.num_rows == 0) {
        unlink(path);                      /* every row was deleted */
        rv = 0;
        goto out;
    }
    out->path = path;
    path = NULL;
    out->records = info.num_rows;
    out->bytes = info.file_bytes;
    if ((rv = cf_ice_file_metrics(ts, NULL, 64, &info, out, err)) == 0)
        cf_ice_set_nans(out, ts, rc.nans);
out:
    free(rc.nans);
    cf_pq_file_info_free(&info);
    free(path);
    free(list);
    return rv;
}

int cf_iceberg_cmd_optimize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "target-size", required_argument, 0, 't' }, { "min-files", required_argument, 0, 'm' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t target = 134217728, sid, seq, parent_id, now;
    int min_files = 2, c, rc = 1, nfiles = 0, ndata = 0, nout = 0, nrewritten = 0;
    cf_ice_table t = { 0 };
    cf_ice_file *files = NULL, *out = NULL;
    cf_schema *ts = NULL;
    cf_ice_spec sp;
    cf_err e = { 0 };
    bool *rewrite = NULL;
    json_t *parent, *meta = NULL, *sum, *v;
    const char *key;
    int64_t live_rows = 0, live_bytes = 0, add_rows = 0, del_rows = 0, del_pos = 0;
    cf_ice_mlist ml = { 0 };

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': target = atoll(optarg); break;
        case 'm': min_files = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'h': optimize_usage(stdout); return 0;
        default: optimize_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        optimize_usage(stderr);
        return 2;
    }
    if (load_or_say("optimize", argv[optind], 0, &t))
        return 1;
    parent_id = cf_ice_current_snapshot_id(t.meta);
    if (!(parent = cf_ice_snapshot(t.meta, parent_id))) {
        printf("nothing to optimize: the table has no snapshot\n");
        rc = 0;
        goto done;
    }
    if (!(ts = cf_ice_schema_from_json(t.meta, -1, &e)) || cf_ice_spec_from_json(t.meta, ts, &sp, &e) ||
        cf_ice_snapshot_files(parent, &files, &nfiles, &e))
        goto fail;
    while (ndata < nfiles && files[ndata].content == 0)
        ndata++;
    if (!(rewrite = calloc((size_t)nfiles + 1, sizeof *rewrite)) ||
        !(out = calloc((size_t)ndata + 1, sizeof *out))) {
        cf_err_set(&e, CF_E_NOMEM, "out of memory");
        goto fail;
    }
    /* Group data files by partition; pick what to rewrite. */
    for (int i = 0; i < ndata; i++) {
        cf_ice_file **sel;
        int n = 0, small = 0;
        bool seen_before = false;
        for (int j = 0; j < i && !seen_before; j++)
            seen_before = files[j].npart == files[i].npart &&
                          cf_ice_pvals_equal(files[j].part, files[i].part, files[i].npart);
        if (seen_before)
            continue;
        if (!(sel = calloc((size_t)ndata, sizeof *sel))) {
            cf_err_set(&e, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        for (int j = i; j < ndata; j++)
            if (files[j].npart == files[i].npart && cf_ice_pvals_equal(files[j].part, files[i].part, files[i].npart)) {
                bool take = nfiles > ndata || files[j].bytes < target;
                small += files[j].bytes < target;
                if (take) {
                    sel[n++] = &files[j];
                }
            }
        if (nfiles > ndata ? n > 0 : small >= min_files) {
            if (rewrite_group(&t, ts, &sp, sel, n, files + ndata, nfiles - ndata, &out[nout], &e)) {
                free(sel);
                goto fail;
            }
            if (out[nout].path)
                add_rows += out[nout++].records;
            else
                cf_ice_file_clear(&out[nout]);
            for (int k = 0; k < n; k++) {
                rewrite[sel[k] - files] = true;
                nrewritten++;
            }
        }
        free(sel);
    }
    if (nrewritten == 0) {
        printf("nothing to optimize: no partition has %d or more small files, no delete files\n", min_files);
        rc = 0;
        goto done;
    }
    /* The new snapshot: added files, rewritten ones deleted, the rest kept. */
    sid = cf_ice_new_snapshot_id();
    seq = json_integer_value(json_object_get(t.meta, "last-sequence-number")) + 1;
    now = cf_ice_now_ms();
    {
        int total = nout + nfiles;
        cf_ice_file *entries = calloc((size_t)total + 1, sizeof *entries);
        int ne = 0, first_del;
        char mpath[PATH_MAX], u[37];
        json_t *cur_schema = NULL, *sch;
        size_t i;
        if (!entries) {
            cf_err_set(&e, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        json_array_foreach(json_object_get(t.meta, "schemas"), i, sch)
            if (json_integer_value(json_object_get(sch, "schema-id")) ==
                json_integer_value(json_object_get(t.meta, "current-schema-id")))
                cur_schema = sch;
        for (int k = 0; k < nout; k++) {
            entries[ne] = out[k];
            entries[ne++].snapshot_id = sid;
        }
        for (int k = 0; k < nfiles; k++) {
            entries[ne] = files[k];
            if (k >= ndata || rewrite[k]) {
                entries[ne].status = 2;
                entries[ne].snapshot_id = sid;
                if (k >= ndata)
                    del_pos += files[k].records;
                else
                    del_rows += files[k].records;
            } else {
                entries[ne].status = 0;
                live_rows += files[k].records;
                live_bytes += files[k].bytes;
            }
            ne++;
        }
        for (int k = 0; k < nout; k++)
            live_bytes += out[k].bytes;
        live_rows += add_rows;
        /* entries: data (new + old) first, then delete files */
        first_del = nout + ndata;
        for (int content = 0; content < 2; content++) {
            int from = content ? first_del : 0, cnt = content ? ne - first_del : first_del;
            cf_ice_mfile mf;
            if (cnt == 0)
                continue;
            cf_ice_uuid(u);
            snprintf(mpath, sizeof mpath, "%s/metadata/%s-m%d.avro", t.location, u, content);
            if (cf_ice_write_manifest(mpath, entries + from, cnt, &sp, cur_schema,
                                      (int)json_integer_value(json_object_get(t.meta, "current-schema-id")),
                                      sid, seq, &mf, &e) ||
                cf_ice_mlist_add(&ml, &mf, &e)) {
                free(entries);
                goto fail;
            }
        }
        free(entries);                     /* shallow copies: files/out own the members */
        cf_ice_uuid(u);
        snprintf(mpath, sizeof mpath, "%s/metadata/snap-%" PRId64 "-1-%s.avro", t.location, sid, u);
        if (cf_ice_write_mlist(mpath, &ml, sid, parent_id, seq, &e))
            goto fail;
        if (!(meta = json_deep_copy(t.meta))) {
            cf_err_set(&e, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        sum = json_object();
        json_object_set_new(sum, "operation", json_string("replace"));
#define SETN(k, val) do { char b_[32]; snprintf(b_, sizeof b_, "%" PRId64, (int64_t)(val)); \
                          json_object_set_new(sum, k, json_string(b_)); } while (0)
        SETN("added-data-files", nout);
        SETN("deleted-data-files", nrewritten);
        SETN("added-records", add_rows);
        SETN("deleted-records", del_rows);
        SETN("removed-delete-files", nfiles - ndata);
        SETN("removed-position-deletes", del_pos);
        SETN("total-records", live_rows);
        SETN("total-files-size", live_bytes);
        SETN("total-data-files", ndata - nrewritten + nout);
        SETN("total-delete-files", 0);
        SETN("total-position-deletes", 0);
        SETN("total-equality-deletes", 0);
#undef SETN
        /* Exactly once: the current snapshot must keep saying where to resume. */
        json_object_foreach(json_object_get(parent, "summary"), key, v)
            if (strstr(key, ".offsets."))
                json_object_set(sum, key, v);
        cf_ice_add_snapshot(&t, meta, sid, parent_id, seq, now, mpath, sum);
    }
    if (cf_ice_commit(&t, meta, &e)) {
        meta = NULL;
        if (e.code == CF_E_CONFLICT)
            cf_err_set(&e, CF_E_CONFLICT, "the table changed while optimizing; nothing was changed, run again");
        goto fail;
    }
    meta = NULL;
    printf("optimized: rewrote %d data files (+%d delete files) into %d; %" PRId64 " live rows; snapshot %" PRId64 "\n",
           nrewritten, nfiles - ndata, nout, live_rows, sid);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "cdcflow optimize: %s\n", e.msg);
    for (int k = 0; out && k < nout; k++)
        if (out[k].path)
            unlink(out[k].path);
    rc = 1;
done:
    json_decref(meta);
    cf_ice_mlist_free(&ml);
    if (out)
        cf_ice_files_free(out, nout);
    cf_ice_files_free(files, nfiles);
    free(rewrite);
    cf_schema_free(ts);
    cf_ice_table_free(&t);
    return rc;
}
