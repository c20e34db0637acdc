/* expire_cmd.c - `cdcflow expire-snapshots`: drop old Iceberg snapshots,
 * then delete the files only they referenced, orphans of crashed writers
 * and metadata versions past write.metadata.previous-versions-max. */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *local_path(const char *p)
{
    if (!strncmp(p, "file://", 7))
        return p + 7;
    if (!strncmp(p, "file:", 5))
        return p + 5;
    return p;
}

/* Every path the snapshot references: manifest list, manifests, live files. */
static int add_refs(json_t *snap, cf_ice_kmap *refs, cf_err *err)
{
    const char *ml = json_string_value(json_object_get(snap, "manifest-list"));
    cf_ice_mlist l;

    if (!ml)
        return 0;
    if (cf_ice_kmap_put(refs, local_path(ml), strlen(local_path(ml)), 0, 0, err) ||
        cf_ice_read_mlist(ml, &l, err))
        return -1;
    for (int i = 0; i < l.n; i++) {
        cf_ice_file *files = NULL;
        int n = 0;
        const char *mp = local_path(l.v[i].path);
        if (cf_ice_kmap_put(refs, mp, strlen(mp), 0, 0, err) ||
            cf_ice_read_manifest(&l.v[i], &files, &n, err)) {
            cf_ice_files_free(files, n);
            cf_ice_mlist_free(&l);
            return -1;
        }
        for (int k = 0; k < n; k++) {
            const char *fp = local_path(files[k].path);
            if (files[k].status != 2 && cf_ice_kmap_put(refs, fp, strlen(fp), 0, 0, err)) {
                cf_ice_files_free(files, n);
                cf_ice_mlist_free(&l);
                return -1;
            }
        }
        cf_ice_files_free(files, n);
    }
    cf_ice_mlist_free(&l);
    return 0;
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
    const cf_ice_kmap *refs;       /* referenced by kept snapshots: stay */
    const cf_ice_kmap *expired;    /* referenced only by expired snapshots: go */
    int64_t cutoff_ms;             /* orphans older than this go */
    bool    dry;
    int64_t removed, bytes;
    int     keep_from;         /* metadata versions below this go */
    int     current;
} sweep;

static void remove_file(sweep *sw, const char *path, off_t size)
{
    if (sw->dry)
        printf("would remove %s\n", path);
    else if (unlink(path))
        return;
    sw->removed++;
    sw->bytes += size;
}

/* Walk data/ and metadata/: unreferenced data/manifest files older than
 * the cutoff, stale temp files, metadata versions past the log. */
static void sweep_dir(sweep *sw, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d || depth > 16) {
        if (d)
            closedir(d);
        return;
    }
    while ((de = readdir(d))) {
        char p[PATH_MAX];
        struct stat st;
        int v;
        char tail[8];
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' && (n == 1 || (n == 2 && de->d_name[1] == '.')))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st))
            continue;
        if (S_ISDIR(st.st_mode)) {
            sweep_dir(sw, p, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        if (sscanf(de->d_name, "v%d.metadata.jso%1s", &v, tail) == 2) {
            if (v < sw->keep_from && v != sw->current)
                remove_file(sw, p, st.st_size);
            continue;
        }
        if (!strcmp(de->d_name, "version-hint.text") || referenced(sw->refs, p))
            continue;
        /* An orphan (no snapshot we know of names it) may belong to a
         * commit in flight: only old ones go. */
        if (!referenced(sw->expired, p) && (int64_t)st.st_mtime * 1000 >= sw->cutoff_ms)
            continue;
        if ((n > 8 && !strcmp(de->d_name + n - 8, ".parquet")) ||
            (n > 5 && !strcmp(de->d_name + n - 5, ".avro")) || !strncmp(de->d_name, ".tmp-", 5))
            remove_file(sw, p, st.st_size);
    }
    closedir(d);
}

/* Record (max_age >= 0) or remove the history.expire.* properties, in a
 * metadata commit of its own. */
static int set_policy(const char *dir, int64_t max_age, int64_t retain, cf_err *e)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        cf_ice_table t = { 0 };
        json_t *meta, *props;
        char v[32];
        if (cf_ice_load(dir, &t, e) || !t.meta) {
            cf_ice_table_free(&t);
            return e->msg[0] ? -1 : cf_err_set(e, CF_E_ARG, "%s: no table", dir);
        }
        if (!(meta = json_deep_copy(t.meta))) {
            cf_ice_table_free(&t);
            return cf_err_set(e, CF_E_NOMEM, "out of memory");
        }
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
        cf_ice_log_metadata(&t, meta, cf_ice_now_ms());
        if (cf_ice_commit(&t, meta, e) == 0) {
            cf_ice_table_free(&t);
            return 0;
        }
        cf_ice_table_free(&t);
        if (e->code != CF_E_CONFLICT || !e->retriable)
            return -1;
        memset(e, 0, sizeof *e);
    }
    return cf_err_set(e, CF_E_CONFLICT, "the table kept changing; run again");
}

int cf_cmd_expire_snapshots(int argc, char **argv)
{
    static const struct option opts[] = {
        { "older-than", required_argument, 0, 'o' }, { "retain-last", required_argument, 0, 'r' },
        { "dry-run", no_argument, 0, 'n' }, { "save-policy", no_argument, 0, 's' },
        { "clear-policy", no_argument, 0, 'c' }, { "help", no_argument, 0, 'h' }, { 0 },
    };
    int64_t cutoff = -1, retain = 1, max_age = -1;
    bool dry = false, save = false, clear = false;
    int c, rc = 1;
    cf_ice_table t = { 0 };
    cf_ice_kmap *refs = NULL, *expired_refs = NULL;
    cf_err e = { 0 };
    const char *dir;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': {
            int64_t now = cf_ice_now_ms();
            size_t n = strlen(optarg);
            if (cf_ice_parse_time(optarg, now, &cutoff)) {
                fprintf(stderr, "cdcflow expire-snapshots: bad --older-than '%s'\n", optarg);
                return 2;
            }
            /* Only a duration makes sense as a standing policy. */
            if (n && strchr("dhms", optarg[n - 1]))
                max_age = now - cutoff;
            break;
        }
        case 's': save = true; break;
        case 'c': clear = true; break;
        case 'r': retain = atoll(optarg) > 0 ? atoll(optarg) : 1; break;
        case 'n': dry = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || (cutoff < 0 && !clear) || (save && clear)) {
        usage(stderr);
        return 2;
    }
    if (save && max_age < 0) {
        fprintf(stderr, "cdcflow expire-snapshots: --save-policy needs --older-than as a duration (7d, 12h, ...)\n");
        return 2;
    }
    dir = argv[optind];
    if (!cf_iceberg_is_table(dir)) {
        fprintf(stderr, "cdcflow expire-snapshots: %s is not an Iceberg table\n", dir);
        return 1;
    }
    if ((save || clear) && !dry) {
        if (set_policy(dir, save ? max_age : -1, retain, &e))
            goto fail;
        printf("%s\n", save ? "saved the policy: writers now expire old snapshots at each commit"
                            : "cleared the policy: writers keep every snapshot");
        if (cutoff < 0) {
            rc = 0;
            goto out;
        }
    }
    for (int attempt = 0; attempt < 10; attempt++) {
        json_t *meta = NULL, *snaps, *kept, *log, *sn;
        int64_t cur;
        size_t i, nsnaps;
        int expired = 0;

        cf_ice_table_free(&t);
        cf_ice_kmap_free(refs);
        cf_ice_kmap_free(expired_refs);
        expired_refs = NULL;
        if (cf_ice_load(dir, &t, &e) || !t.meta || !(refs = cf_ice_kmap_new(0)) ||
            !(expired_refs = cf_ice_kmap_new(0))) {
            if (!e.msg[0])
                cf_err_set(&e, CF_E_NOMEM, "out of memory");
            goto fail;
        }
        cur = cf_ice_current_snapshot_id(t.meta);
        snaps = json_object_get(t.meta, "snapshots");
        nsnaps = json_array_size(snaps);
        kept = json_array();
        json_array_foreach(snaps, i, sn) {
            int64_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
            bool keep = id == cur || i + (size_t)retain >= nsnaps ||
                        json_integer_value(json_object_get(sn, "timestamp-ms")) >= cutoff;
            if (keep) {
                json_array_append(kept, sn);
                if (add_refs(sn, refs, &e)) {
                    json_decref(kept);
                    goto fail;
                }
            } else {
                cf_err ignore = { 0 };
                expired++;
                if (dry)
                    printf("would expire snapshot %" PRId64 "\n", id);
                /* Unreadable (already cleaned) manifests only mean fewer
                 * files to remove. */
                (void)add_refs(sn, expired_refs, &ignore);
            }
        }
        if (expired && !dry) {
            meta = json_deep_copy(t.meta);
            json_object_set_new(meta, "snapshots", kept);
            kept = NULL;
            log = json_array();
            json_array_foreach(json_object_get(t.meta, "snapshot-log"), i, sn) {
                int64_t id = json_integer_value(json_object_get(sn, "snapshot-id"));
                if (cf_ice_snapshot(meta, id))
                    json_array_append(log, sn);
            }
            json_object_set_new(meta, "snapshot-log", log);
            cf_ice_log_metadata(&t, meta, cf_ice_now_ms());
            if (cf_ice_commit(&t, meta, &e)) {
                json_decref(kept);
                if (e.code == CF_E_CONFLICT && e.retriable)
                    continue;         /* somebody committed: look again */
                goto fail;
            }
        }
        json_decref(kept);
        {
            /* Metadata versions the (new) log no longer lists may go. */
            json_t *mlog = json_object_get(t.meta, "metadata-log");
            int oldest = t.version;
            int64_t orphan_cutoff = cf_ice_now_ms() - ORPHAN_MIN_AGE_MS;
            sweep sw = { .refs = refs, .expired = expired_refs, .dry = dry, .current = t.version,
                         .cutoff_ms = cutoff < orphan_cutoff ? cutoff : orphan_cutoff };
            char p[PATH_MAX];
            json_array_foreach(mlog, i, sn) {
                const char *f = json_string_value(json_object_get(sn, "metadata-file"));
                const char *base = f ? strrchr(f, '/') : NULL;
                int v;
                if (base && sscanf(base, "/v%d.metadata.json", &v) == 1 && v < oldest)
                    oldest = v;
            }
            sw.keep_from = oldest;
            snprintf(p, sizeof p, "%s/data", t.location);
            sweep_dir(&sw, p, 0);
            snprintf(p, sizeof p, "%s/metadata", t.location);
            sweep_dir(&sw, p, 0);
            printf("%s %d snapshot%s; %s %" PRId64 " files (%" PRId64 " bytes); %zu snapshots left\n",
                   dry ? "would expire" : "expired", expired, expired == 1 ? "" : "s",
                   dry ? "would remove" : "removed", sw.removed, sw.bytes,
                   json_array_size(json_object_get(t.meta, "snapshots")) - (dry ? (size_t)expired : 0));
        }
        rc = 0;
        goto out;
    }
    cf_err_set(&e, CF_E_CONFLICT, "the table kept changing; run again");
fail:
    fprintf(stderr, "cdcflow expire-snapshots: %s\n", e.msg);
    rc = 1;
out:
    cf_ice_kmap_free(refs);
    cf_ice_kmap_free(expired_refs);
    cf_ice_table_free(&t);
    return rc;
}
