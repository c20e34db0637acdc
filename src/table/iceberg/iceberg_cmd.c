/* iceberg_cmd.c - scan, history and optimize for Iceberg tables (the
 * Iceberg halves of cdcflow's table commands). */
#include "table/iceberg/iceberg_cmd.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/delta/delta_print.h"
#include "table/iceberg/iceberg_int.h"
#include "format/parquet/parquet.h"

static int any_fn(void *ctx, const char *path, const cf_store_stat *sb)
{
    (void)ctx;
    (void)path;
    (void)sb;
    return 1;
}

/* With a REST catalog configured, a location on object storage is an
 * Iceberg table unless it holds a Delta log (the catalog, asked by the
 * command, then says whether the table exists, in one clear line); a local
 * one is if the catalog has it. */
bool cf_iceberg_is_table(const char *location)
{
    cf_store *st = cf_store_open(location, NULL, NULL);
    cf_catalog_config cc;
    bool yes = st && cf_ice_dir_is_table(st, location);

    cf_catalog_config_from_env(&cc);
    if (st && !yes && cc.uri) {
        char log[4096];
        snprintf(log, sizeof log, "%s/_delta_log", location);
        if (cf_store_list(st, log, CF_STORE_FLAT, any_fn, NULL, NULL) > 0) {
            yes = false;
        } else if (cf_store_is_remote(location)) {
            yes = true;
        } else {
            cf_ice_catalog *cat = cf_ice_catalog_open(&cc, location, NULL, st, NULL);
            cf_ice_table t = { 0 };
            yes = cat && cf_ice_catalog_load(cat, &t, NULL) == 0 && t.meta;
            cf_ice_table_free(&t);
            cf_ice_catalog_close(cat);
        }
    }
    cf_store_close(st);
    return yes;
}

int cf_ice_cmd_open(const char *cmd, const char *location, int64_t version, cf_ice_cmd_table *ct)
{
    cf_err e = { 0 };

    memset(ct, 0, sizeof *ct);
    /* The catalog from ICEBERG_CATALOG_* (none: the directory catalog). */
    if (!(ct->st = cf_store_open(location, NULL, &e)) ||
        !(ct->cat = cf_ice_catalog_open(NULL, location, NULL, ct->st, &e)) ||
        (version > 0 ? cf_ice_catalog_load_version(ct->cat, version, &ct->t, &e)
                     : cf_ice_catalog_load(ct->cat, &ct->t, &e))) {
        fprintf(stderr, "cdcflow %s: %s\n", cmd, e.msg);
        cf_ice_cmd_close(ct);
        return -1;
    }
    if (!ct->t.meta) {
        fprintf(stderr, "cdcflow %s: %s is not an Iceberg table\n", cmd, location);
        cf_ice_cmd_close(ct);
        return -1;
    }
    return 0;
}

void cf_ice_cmd_close(cf_ice_cmd_table *ct)
{
    if (!ct)
        return;
    cf_ice_table_free(&ct->t);
    cf_ice_catalog_close(ct->cat);
    cf_store_close(ct->st);
    ct->cat = NULL;
    ct->st = NULL;
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
    cf_ice_cmd_table ct = { 0 };
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
            if (cf_ice_parse_time(optarg, cf_now_ms(), &when)) {
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
    if (cf_ice_cmd_open("scan", argv[optind], version, &ct))
        return 1;
    if (when >= 0) {
        json_t *sn;
        size_t i;
        /* The snapshot log is in commit order: the last one not after T. */
        json_array_foreach(json_object_get(ct.t.meta, "snapshot-log"), i, sn)
            if (json_integer_value(json_object_get(sn, "timestamp-ms")) <= when)
                snap_id = json_integer_value(json_object_get(sn, "snapshot-id"));
        if (snap_id < 0) {
            fprintf(stderr, "cdcflow scan: no snapshot committed at or before %s\n", when_arg);
            goto out;
        }
    }
    snap = cf_ice_snapshot(ct.t.meta, snap_id);
    if (snap_id >= 0 && !snap) {
        fprintf(stderr, "cdcflow scan: no snapshot %" PRId64 " (expired?)\n", snap_id);
        goto out;
    }
    /* Read with the schema the snapshot was written with. */
    s = cf_ice_schema_from_json(ct.t.meta, snap && json_is_integer(json_object_get(snap, "schema-id"))
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
    if (snap && cf_ice_scan(ct.st, snap, s, cols, cols ? ncols : 0, print_fn, &pc, &e) && e.code != CF_E_STOPPED) {
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
    cf_ice_cmd_close(&ct);
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
    cf_ice_cmd_table ct = { 0 };
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
    if (cf_ice_cmd_open("history", argv[optind], 0, &ct))
        return 1;
    snaps = json_object_get(ct.t.meta, "snapshots");
    cur = cf_ice_current_snapshot_id(ct.t.meta);
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
    cf_ice_cmd_close(&ct);
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
static int rewrite_group(cf_ice_cmd_table *ct, const cf_schema *ts, const cf_ice_spec *sp,
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
    snprintf(dir, sizeof dir, "%s/data%s%s", ct->t.location, sp->nfields ? "/" : "", ppath);
    cf_uuid(u);
    if (!(path = malloc(strlen(dir) + 64))) {
        cf_err_set(err, CF_E_NOMEM, "out of memory");
        goto out;
    }
    sprintf(path, "%s/%s-optimized.parquet", dir, u);
    cf_pq_options_default(&o);
    if (!(rc.w = cf_pq_writer_open(ct->st, path, ts, &o, err)))
        goto out;
    if (cf_ice_scan_files(ct->st, list, nlist, ts, NULL, 0, rewrite_fn, &rc, err)) {
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
        cf_store_delete(ct->st, path, NULL);   /* every row was deleted */
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

/* What optimize found and wrote. */
typedef struct opt_plan {
    cf_ice_file *files;          /* live files of the current snapshot: data, then deletes */
    int          nfiles, ndata;
    bool        *rewrite;        /* per data file: replaced by a file of out[] */
    int          nrewritten;
    cf_ice_file *out;            /* the new data files */
    int          nout;
    int64_t      add_rows;
    int64_t      live_rows, live_bytes, del_rows, del_pos;   /* counted by opt_write_manifests */
} opt_plan;

static void opt_plan_free(opt_plan *p)
{
    if (p->out)
        cf_ice_files_free(p->out, p->nout);
    cf_ice_files_free(p->files, p->nfiles);
    free(p->rewrite);
}

static bool same_partition(const cf_ice_file *a, const cf_ice_file *b)
{
    return a->npart == b->npart && cf_ice_pvals_equal(a->part, b->part, a->npart);
}

/* The data files of partition files[i] to rewrite into *sel (*n of them),
 * and whether the partition is worth it: it has min_files small ones, or
 * there are delete files to fold in (then every file is rewritten). */
static bool pick_group(const opt_plan *p, int i, int64_t target, int min_files,
                       cf_ice_file **sel, int *n)
{
    bool deletes = p->nfiles > p->ndata;
    int small = 0;

    *n = 0;
    for (int j = i; j < p->ndata; j++)
        if (same_partition(&p->files[j], &p->files[i])) {
            small += p->files[j].bytes < target;
            if (deletes || p->files[j].bytes < target)
                sel[(*n)++] = &p->files[j];
        }
    return deletes ? *n > 0 : small >= min_files;
}

/* Rewrite, partition by partition, the groups pick_group chooses. */
static int opt_rewrite(cf_ice_cmd_table *ct, const cf_schema *ts, const cf_ice_spec *sp,
                       int64_t target, int min_files, opt_plan *p, cf_err *e)
{
    cf_ice_file **sel;
    int n;

    if (!(p->rewrite = calloc((size_t)p->nfiles + 1, sizeof *p->rewrite)) ||
        !(p->out = calloc((size_t)p->ndata + 1, sizeof *p->out)) ||
        !(sel = calloc((size_t)p->ndata + 1, sizeof *sel)))
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    for (int i = 0; i < p->ndata; i++) {
        bool seen_before = false;
        for (int j = 0; j < i && !seen_before; j++)
            seen_before = same_partition(&p->files[j], &p->files[i]);
        if (seen_before || !pick_group(p, i, target, min_files, sel, &n))
            continue;
        if (rewrite_group(ct, ts, sp, sel, n, p->files + p->ndata, p->nfiles - p->ndata,
                          &p->out[p->nout], e)) {
            free(sel);
            return -1;
        }
        if (p->out[p->nout].path)
            p->add_rows += p->out[p->nout++].records;
        else
            cf_ice_file_clear(&p->out[p->nout]);
        for (int k = 0; k < n; k++) {
            p->rewrite[sel[k] - p->files] = true;
            p->nrewritten++;
        }
    }
    free(sel);
    return 0;
}

/* The manifests of the replace snapshot (added files, rewritten ones and
 * every delete file deleted, the rest kept) and its manifest list at
 * mlpath; counts the live and removed rows into p. */
static int opt_write_manifests(cf_ice_cmd_table *ct, const cf_ice_spec *sp, opt_plan *p,
                               int64_t sid, int64_t parent_id, int64_t seq, char *mlpath,
                               size_t mlsize, cf_err *e)
{
    json_t *meta = ct->t.meta, *cur_schema = NULL, *sch;
    int schema_id = (int)json_integer_value(json_object_get(meta, "current-schema-id"));
    cf_ice_file *entries = calloc((size_t)(p->nout + p->nfiles) + 1, sizeof *entries);
    cf_ice_mlist ml = { 0 };
    int ne = 0, first_del = p->nout + p->ndata, rc = -1;
    char u[37];
    size_t i;

    if (!entries)
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    json_array_foreach(json_object_get(meta, "schemas"), i, sch)
        if (json_integer_value(json_object_get(sch, "schema-id")) == schema_id)
            cur_schema = sch;
    for (int k = 0; k < p->nout; k++) {
        entries[ne] = p->out[k];
        entries[ne++].snapshot_id = sid;
        p->live_bytes += p->out[k].bytes;
    }
    p->live_rows = p->add_rows;
    for (int k = 0; k < p->nfiles; k++, ne++) {
        entries[ne] = p->files[k];
        if (k >= p->ndata || p->rewrite[k]) {
            entries[ne].status = 2;
            entries[ne].snapshot_id = sid;
            *(k >= p->ndata ? &p->del_pos : &p->del_rows) += p->files[k].records;
        } else {
            entries[ne].status = 0;
            p->live_rows += p->files[k].records;
            p->live_bytes += p->files[k].bytes;
        }
    }
    /* entries: data (new + old) first, then delete files */
    for (int content = 0; content < 2; content++) {
        int from = content ? first_del : 0, cnt = content ? ne - first_del : first_del;
        char mpath[PATH_MAX];
        cf_ice_mfile mf;
        if (cnt == 0)
            continue;
        cf_uuid(u);
        snprintf(mpath, sizeof mpath, "%s/metadata/%s-m%d.avro", ct->t.location, u, content);
        if (cf_ice_write_manifest(ct->st, mpath, entries + from, cnt, sp, cur_schema, schema_id,
                                  sid, seq, &mf, e) ||
            cf_ice_mlist_add(&ml, &mf, e))
            goto out;
    }
    cf_uuid(u);
    snprintf(mlpath, mlsize, "%s/metadata/snap-%" PRId64 "-1-%s.avro", ct->t.location, sid, u);
    rc = cf_ice_write_mlist(ct->st, mlpath, &ml, sid, parent_id, seq, e);
out:
    free(entries);                         /* shallow copies: p owns the members */
    cf_ice_mlist_free(&ml);
    return rc;
}

static json_t *opt_summary(json_t *parent, const opt_plan *p)
{
    json_t *sum = json_object(), *v;
    const char *key;

    json_object_set_new(sum, "operation", json_string("replace"));
#define SETN(k, val) do { char b_[32]; snprintf(b_, sizeof b_, "%" PRId64, (int64_t)(val)); \
                          json_object_set_new(sum, k, json_string(b_)); } while (0)
    SETN("added-data-files", p->nout);
    SETN("deleted-data-files", p->nrewritten);
    SETN("added-records", p->add_rows);
    SETN("deleted-records", p->del_rows);
    SETN("removed-delete-files", p->nfiles - p->ndata);
    SETN("removed-position-deletes", p->del_pos);
    SETN("total-records", p->live_rows);
    SETN("total-files-size", p->live_bytes);
    SETN("total-data-files", p->ndata - p->nrewritten + p->nout);
    SETN("total-delete-files", 0);
    SETN("total-position-deletes", 0);
    SETN("total-equality-deletes", 0);
#undef SETN
    /* Exactly once: the current snapshot must keep saying where to resume. */
    json_object_foreach(json_object_get(parent, "summary"), key, v)
        if (strstr(key, ".offsets."))
            json_object_set(sum, key, v);
    return sum;
}

/* Make the new files' names durable, then publish the replace snapshot. */
static int opt_commit(cf_ice_cmd_table *ct, opt_plan *p, json_t *parent, int64_t sid,
                      int64_t parent_id, int64_t seq, char *mlpath, cf_err *e)
{
    char **paths = malloc(sizeof *paths * ((size_t)p->nout + 1));
    cf_ice_change chg = { .base_snapshot_id = parent_id, .snapshot_id = sid };
    json_t *meta;

    if (!paths)
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    for (int k = 0; k < p->nout; k++)
        paths[k] = p->out[k].path;
    paths[p->nout] = mlpath;
    if (cf_store_sync(ct->st, ct->t.location, paths, (size_t)p->nout + 1, e)) {
        free(paths);
        return -1;
    }
    free(paths);
    if (!(meta = json_deep_copy(ct->t.meta)))
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    cf_ice_add_snapshot(&ct->t, meta, sid, parent_id, seq, cf_now_ms(), mlpath, opt_summary(parent, p));
    if (cf_ice_catalog_commit(ct->cat, &ct->t, meta, &chg, e)) {
        if (e->code == CF_E_CONFLICT)
            cf_err_set(e, CF_E_CONFLICT, "the table changed while optimizing; nothing was changed, run again");
        return -1;
    }
    return 0;
}

int cf_iceberg_cmd_optimize(int argc, char **argv)
{
    static const struct option opts[] = {
        { "target-size", required_argument, 0, 't' }, { "min-files", required_argument, 0, 'm' },
        { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t target = 134217728, sid, seq, parent_id;
    int min_files = 2, c, rc = 1;
    cf_ice_cmd_table ct = { 0 };
    opt_plan p = { 0 };
    cf_schema *ts = NULL;
    cf_ice_spec sp;
    cf_err e = { 0 };
    json_t *parent;
    char mlpath[PATH_MAX];

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
    if (cf_ice_cmd_open("optimize", argv[optind], 0, &ct))
        return 1;
    parent_id = cf_ice_current_snapshot_id(ct.t.meta);
    if (!(parent = cf_ice_snapshot(ct.t.meta, parent_id))) {
        printf("nothing to optimize: the table has no snapshot\n");
        rc = 0;
        goto done;
    }
    if (!(ts = cf_ice_schema_from_json(ct.t.meta, -1, &e)) || cf_ice_spec_from_json(ct.t.meta, ts, &sp, &e) ||
        cf_ice_snapshot_files(ct.st, parent, &p.files, &p.nfiles, &e))
        goto fail;
    while (p.ndata < p.nfiles && p.files[p.ndata].content == 0)
        p.ndata++;
    if (opt_rewrite(&ct, ts, &sp, target, min_files, &p, &e))
        goto fail;
    if (p.nrewritten == 0) {
        printf("nothing to optimize: no partition has %d or more small files, no delete files\n", min_files);
        rc = 0;
        goto done;
    }
    sid = cf_ice_new_snapshot_id();
    seq = json_integer_value(json_object_get(ct.t.meta, "last-sequence-number")) + 1;
    if (opt_write_manifests(&ct, &sp, &p, sid, parent_id, seq, mlpath, sizeof mlpath, &e) ||
        opt_commit(&ct, &p, parent, sid, parent_id, seq, mlpath, &e))
        goto fail;
    printf("optimized: rewrote %d data files (+%d delete files) into %d; %" PRId64 " live rows; snapshot %" PRId64 "\n",
           p.nrewritten, p.nfiles - p.ndata, p.nout, p.live_rows, sid);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "cdcflow optimize: %s\n", e.msg);
    /* Nothing names the new files: they go (a crash leaves them for
     * expire-snapshots). */
    for (int k = 0; p.out && k < p.nout; k++)
        cf_store_delete(ct.st, p.out[k].path, NULL);
    rc = 1;
done:
    opt_plan_free(&p);
    cf_schema_free(ts);
    cf_ice_cmd_close(&ct);
    return rc;
}
