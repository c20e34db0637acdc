/* expire_cmd.c - `cdcflow expire-snapshots`: drop old Iceberg snapshots,
 * then delete the files only they referenced, orphans of crashed writers
 * and metadata versions past write.metadata.previous-versions-max. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "table/iceberg/iceberg_cmd.h"
#include "table/iceberg/iceberg_int.h"

static void usage(FILE *o)
{
    fputs("Usage: cdcflow expire-snapshots ICEBERG_TABLE --older-than WHEN [--retain-last N]\n"
          "                                [--dry-run] [--save-policy | --clear-policy]\n"
          "\n"
          "Remove snapshots committed before WHEN from an Iceberg table, keeping the\n"
          "current snapshot and the N most recent ones (default 1), then delete:\n"
          "  - data, delete and manifest files no kept snapshot references;\n"
          "  - files under data/ and metadata/ that no snapshot ever referenced (left by\n"
          "    writers that died before committing), once older than WHEN and than an hour;\n"
          "  - metadata versions beyond write.metadata.previous-versions-max.\n"
          "  --older-than WHEN  ISO-8601 time (2026-01-31 or 2026-01-31T12:00:00Z), epoch\n"
          "                     milliseconds, or a duration before now: 7d, 12h, 30m, 45s\n"
          "  --retain-last N    keep at least the N newest snapshots (default 1)\n"
          "  --dry-run          print what would be removed, change nothing\n"
          "  --save-policy      also store --older-than (a duration) and --retain-last as the\n"
          "                     table properties history.expire.max-snapshot-age-ms and\n"
          "                     history.expire.min-snapshots-to-keep: cdcflow's sink then drops\n"
          "                     older snapshots from the metadata at each commit, so it stays\n"
          "                     bounded (files still go only with expire-snapshots)\n"
          "  --clear-policy     remove those properties (--older-than then optional)\n", o);
}

/* The form of a location that the walk of the table reports: metadata may
 * name local files as file: URLs, the walk gives plain paths. */
static const char *walk_name(const char *p)
{
    const char *lp = cf_store_local_path(p);
    return lp ? lp : p;
}

static int add_ref(cf_ice_kmap *refs, const char *p, cf_err *err)
{
    p = walk_name(p);
    return cf_ice_kmap_put(refs, p, strlen(p), 0, 0, err);
}

/* Every path the snapshot references: manifest list, manifests, live files. */
static int add_refs(cf_store *st, json_t *snap, cf_ice_kmap *refs, cf_err *err)
{
    const char *ml = json_string_value(json_object_get(snap, "manifest-list"));
    cf_ice_mlist l;
    int rc = 0;

    if (!ml)
        return 0;
    if (add_ref(refs, ml, err) || cf_ice_read_mlist(st, ml, &l, err))
        return -1;
    for (int i = 0; rc == 0 && i < l.n; i++) {
        cf_ice_file *files = NULL;
        int n = 0;
        rc = add_ref(refs, l.v[i].path, err) || cf_ice_read_manifest(st, &l.v[i], &files, &n, err) ? -1 : 0;
        for (int k = 0; rc == 0 && k < n; k++)
            if (files[k].status != 2)
                rc = add_ref(refs, files[k].path, err);
        cf_ice_files_free(files, n);
    }
    cf_ice_mlist_free(&l);
    return rc;
}

static bool referenced(const cf_ice_kmap *refs, const char *p)
{
    int32_t a;
    int64_t b;
    return cf_ice_kmap_get(refs, p, strlen(p), &a, &b);
}

/* Files nothing ever committed may belong to a writer about to commit:
 * they are removed only when older than WHEN and at least this old. */
#define ORPHAN_MIN_AGE_MS (3600 * 1000LL)

typedef struct sweep {
    cf_store *st;
    const cf_ice_kmap *refs;       /* referenced by kept snapshots: stay */
    const cf_ice_kmap *expired;    /* referenced only by expired snapshots: go */
    int64_t cutoff_ms;             /* orphans older than this go */
    bool    dry;
    int64_t removed, bytes;
    int64_t keep_from;             /* metadata versions below this go */
    int64_t current;
} sweep;

static void remove_file(sweep *sw, const char *path, int64_t size)
{
    if (sw->dry)
        printf("would remove %s\n", path);
    else if (cf_store_delete(sw->st, path, NULL))
        return;
    sw->removed++;
    sw->bytes += size;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n > k && !strcmp(s + n - k, suffix);
}

/* Temporary files of a writer that died mid-write: the store's
 * (".NAME.UUID.tmp") and those of older cdcflow versions (".tmp-UUID"). */
static bool temp_name(const char *base, size_t n)
{
    return base[0] == '.' && (ends_with(base, n, ".tmp") || !strncmp(base, ".tmp-", 5));
}

/* One file found by walking data/ or metadata/: unreferenced data and
 * manifest files older than the cutoff, stale temporary files, metadata
 * versions past the log go. */
static int sweep_fn(void *ctx, const char *path, const cf_store_stat *sb)
{
    sweep *sw = ctx;
    const char *base = strrchr(path, '/');
    long long v;
    char tail[8];
    size_t n;

    base = base ? base + 1 : path;
    n = strlen(base);
    if (sscanf(base, "v%lld.metadata.jso%1s", &v, tail) == 2) {
        if (v < sw->keep_from && v != sw->current)
            remove_file(sw, path, sb->size);
        return 0;
    }
    if (!strcmp(base, "version-hint.text") || referenced(sw->refs, path))
        return 0;
    /* An orphan (no snapshot we know of names it) may belong to a commit
     * in flight: only old ones go. */
    if (!referenced(sw->expired, path) && sb->mtime_ms >= sw->cutoff_ms)
        return 0;
    if (ends_with(base, n, ".parquet") || ends_with(base, n, ".avro") || temp_name(base, n))
        remove_file(sw, path, sb->size);
    return 0;
}

/* Record (max_age >= 0) or remove the history.expire.* properties, in a
 * metadata commit of its own. */
static int set_policy(cf_ice_cmd_table *ct, int64_t max_age, int64_t retain, cf_err *e)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        cf_ice_change chg = { .snapshot_id = -1, .properties_changed = true };
        json_t *meta, *props;
        char v[32];
        cf_ice_table_free(&ct->t);
        if (cf_ice_catalog_load(ct->cat, &ct->t, e))
            return -1;
        if (!ct->t.meta)
            return cf_err_set(e, CF_E_ARG, "%s: no table", ct->t.location);
        if (!(meta = json_deep_copy(ct->t.meta)))
            return cf_err_set(e, CF_E_NOMEM, "out of memory");
        if (!json_is_object(json_object_get(meta, "properties")))
            json_object_set_new(meta, "properties", json_object());
        props = json_object_get(meta, "properties");
        if (max_age >= 0) {
            snprintf(v, sizeof v, "%" PRId64, max_age);
            json_object_set_new(props, "history.expire.max-snapshot-age-ms", json_string(v));
            snprintf(v, sizeof v, "%" PRId64, retain);
            json_object_set_new(props, "history.expire.min-snapshots-to-keep", json_string(v));
        } else {
            json_object_del(props, "history.expire.max-snapshot-age-ms");
            json_object_del(props, "history.expire.min-snapshots-to-keep");
        }
        chg.base_snapshot_id = cf_ice_current_snapshot_id(meta);
        cf_ice_log_metadata(&ct->t, meta, cf_now_ms());
        if (cf_ice_catalog_commit(ct->cat, &ct->t, meta, &chg, e) == 0)
            return 0;
        if (e->code != CF_E_CONFLICT || !e->retriable)
            return -1;
        memset(e, 0, sizeof *e);
    }
    return cf_err_set(e, CF_E_CONFLICT, "the table kept changing; run again");
}

/* One expiry against the current metadata. */
typedef struct expiry {
    int64_t      cutoff, retain;
    bool         dry;
    cf_ice_kmap *refs, *expired_refs;
    int          nexpired;
} expiry;

/* The snapshots to keep (a new array; their files go into x->refs) and
 * the files of the expired ones into x->expired_refs. */
static json_t *split_snapshots(cf_ice_cmd_table *ct, expiry *x, cf_err *e)
{
    json_t *snaps = json_object_get(ct->t.meta, "snapshots"), *kept = json_array(), *sn;
    int64_t cur = cf_ice_current_snapshot_id(ct->t.meta);
    size_t i, nsnaps = json_array_size(snaps);

    json_array_foreach(snaps, i, sn) {
        int64_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
        bool keep = id == cur || i + (size_t)x->retain >= nsnaps ||
                    json_integer_value(json_object_get(sn, "timestamp-ms")) >= x->cutoff;
        if (keep) {
            json_array_append(kept, sn);
            if (add_refs(ct->st, sn, x->refs, e)) {
                json_decref(kept);
                return NULL;
            }
        } else {
            cf_err ignore = { 0 };
            x->nexpired++;
            if (x->dry)
                printf("would expire snapshot %" PRId64 "\n", id);
            /* Unreadable (already cleaned) manifests only mean fewer
             * files to remove. */
            (void)add_refs(ct->st, sn, x->expired_refs, &ignore);
        }
    }
    return kept;
}

/* Publish the metadata without the expired snapshots (kept stolen). */
static int commit_expiry(cf_ice_cmd_table *ct, json_t *kept, cf_err *e)
{
    cf_ice_change chg = { .snapshot_id = -1, .snapshots_removed = true };
    json_t *meta = json_deep_copy(ct->t.meta), *log = json_array(), *sn;
    size_t i;

    if (!meta || !log) {
        json_decref(meta);
        json_decref(log);
        json_decref(kept);
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    }
    chg.base_snapshot_id = cf_ice_current_snapshot_id(meta);
    json_object_set_new(meta, "snapshots", kept);
    json_array_foreach(json_object_get(ct->t.meta, "snapshot-log"), i, sn)
        if (cf_ice_snapshot(meta, json_integer_value(json_object_get(sn, "snapshot-id"))))
            json_array_append(log, sn);
    json_object_set_new(meta, "snapshot-log", log);
    cf_ice_log_metadata(&ct->t, meta, cf_now_ms());
    return cf_ice_catalog_commit(ct->cat, &ct->t, meta, &chg, e);
}

/* Walk the table and delete what sweep_fn says may go: only files found
 * by walking, never paths that metadata names. */
static int sweep_table(cf_ice_cmd_table *ct, const expiry *x, sweep *sw, cf_err *e)
{
    json_t *sn;
    int64_t orphan_cutoff = cf_now_ms() - ORPHAN_MIN_AGE_MS;
    char p[4096];
    size_t i;

    *sw = (sweep){ .st = ct->st, .refs = x->refs, .expired = x->expired_refs, .dry = x->dry,
                   .current = ct->t.version, .keep_from = ct->t.version,
                   .cutoff_ms = x->cutoff < orphan_cutoff ? x->cutoff : orphan_cutoff };
    /* Metadata versions the (new) log no longer lists may go. */
    json_array_foreach(json_object_get(ct->t.meta, "metadata-log"), i, sn) {
        const char *f = json_string_value(json_object_get(sn, "metadata-file"));
        const char *base = f ? strrchr(f, '/') : NULL;
        long long v;
        if (base && sscanf(base, "/v%lld.metadata.json", &v) == 1 && v < sw->keep_from)
            sw->keep_from = v;
    }
    snprintf(p, sizeof p, "%s/data", ct->t.location);
    if (cf_store_list(ct->st, p, 0, sweep_fn, sw, e))
        return -1;
    snprintf(p, sizeof p, "%s/metadata", ct->t.location);
    return cf_store_list(ct->st, p, 0, sweep_fn, sw, e);
}

/* Expire and sweep once; CF_E_CONFLICT (retriable) when another writer
 * committed first. */
static int expire_once(cf_ice_cmd_table *ct, expiry *x, cf_err *e)
{
    json_t *kept;
    sweep sw;

    cf_ice_table_free(&ct->t);
    cf_ice_kmap_free(x->refs);
    cf_ice_kmap_free(x->expired_refs);
    x->expired_refs = NULL;
    x->nexpired = 0;
    if (!(x->refs = cf_ice_kmap_new(0)) || !(x->expired_refs = cf_ice_kmap_new(0)))
        return cf_err_set(e, CF_E_NOMEM, "out of memory");
    if (cf_ice_catalog_load(ct->cat, &ct->t, e))
        return -1;
    if (!ct->t.meta)
        return cf_err_set(e, CF_E_ARG, "%s: no table", ct->t.location);
    if (!(kept = split_snapshots(ct, x, e)))
        return -1;
    if (x->nexpired && !x->dry) {
        if (commit_expiry(ct, kept, e))
            return -1;
    } else
        json_decref(kept);
    if (sweep_table(ct, x, &sw, e))
        return -1;
    printf("%s %d snapshot%s; %s %" PRId64 " files (%" PRId64 " bytes); %zu snapshots left\n",
           x->dry ? "would expire" : "expired", x->nexpired, x->nexpired == 1 ? "" : "s",
           x->dry ? "would remove" : "removed", sw.removed, sw.bytes,
           json_array_size(json_object_get(ct->t.meta, "snapshots")) - (x->dry ? (size_t)x->nexpired : 0));
    return 0;
}

int cf_cmd_expire_snapshots(int argc, char **argv)
{
    static const struct option opts[] = {
        { "older-than", required_argument, 0, 'o' }, { "retain-last", required_argument, 0, 'r' },
        { "dry-run", no_argument, 0, 'n' }, { "save-policy", no_argument, 0, 's' },
        { "clear-policy", no_argument, 0, 'c' }, { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t max_age = -1;
    bool save = false, clear = false;
    int c, rc = 1;
    cf_ice_cmd_table ct = { 0 };
    expiry x = { .cutoff = -1, .retain = 1 };
    cf_err e = { 0 };

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': {
            int64_t now = cf_now_ms();
            size_t n = strlen(optarg);
            if (cf_ice_parse_time(optarg, now, &x.cutoff)) {
                fprintf(stderr, "cdcflow expire-snapshots: bad --older-than '%s'\n", optarg);
                return 2;
            }
            /* Only a duration makes sense as a standing policy. */
            if (n && strchr("dhms", optarg[n - 1]))
                max_age = now - x.cutoff;
            break;
        }
        case 's': save = true; break;
        case 'c': clear = true; break;
        case 'r': x.retain = atoll(optarg) > 0 ? atoll(optarg) : 1; break;
        case 'n': x.dry = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || (x.cutoff < 0 && !clear) || (save && clear)) {
        usage(stderr);
        return 2;
    }
    if (save && max_age < 0) {
        fprintf(stderr, "cdcflow expire-snapshots: --save-policy needs --older-than as a duration (7d, 12h, ...)\n");
        return 2;
    }
    if (cf_ice_cmd_open("expire-snapshots", argv[optind], 0, &ct))
        return 1;
    if ((save || clear) && !x.dry) {
        if (set_policy(&ct, save ? max_age : -1, x.retain, &e))
            goto fail;
        printf("%s\n", save ? "saved the policy: writers now expire old snapshots at each commit"
                            : "cleared the policy: writers keep every snapshot");
        if (x.cutoff < 0) {
            rc = 0;
            goto out;
        }
    }
    for (int attempt = 0; attempt < 10; attempt++) {
        cf_err_clear(&e);
        if (expire_once(&ct, &x, &e) == 0) {
            rc = 0;
            goto out;
        }
        if (e.code != CF_E_CONFLICT || !e.retriable)
            goto fail;                 /* else somebody committed: look again */
    }
    cf_err_set(&e, CF_E_CONFLICT, "the table kept changing; run again");
fail:
    fprintf(stderr, "cdcflow expire-snapshots: %s\n", e.msg);
    rc = 1;
out:
    cf_ice_kmap_free(x.refs);
    cf_ice_kmap_free(x.expired_refs);
    cf_ice_cmd_close(&ct);
    return rc;
}
