/* test_delta_vacuum.c - `cdcflow vacuum` over the store: it deletes only
 * old files found by walking the table that no kept version names, and
 * never looks into the log or hidden directories. */
#include "cf_test.h"
#include "sink_util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "table/delta/delta_int.h"

#define OLD_S 1700000000   /* 2023: far outside any retention */

static void rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

/* dir/rel with a few bytes, its parents made; old: modified in 2023. */
static void touch(const char *dir, const char *rel, bool old)
{
    char path[PATH_MAX], cmd[PATH_MAX + 32];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    CHECK_EQ_INT(system(cmd), 0);
    CHECK((f = fopen(path, "w")) != NULL);
    if (!f)
        return;
    fputs("PAR1....PAR1", f);
    fclose(f);
    if (old) {
        struct timeval tv[2] = { { OLD_S, 0 }, { OLD_S, 0 } };
        CHECK_EQ_INT(utimes(path, tv), 0);
    }
}

static bool there(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &st) == 0;
}

static const char *SCHEMA =
    "\"schemaString\":\"{\\\"type\\\":\\\"struct\\\",\\\"fields\\\":[{\\\"name\\\":\\\"id\\\",\\\"type\\\":\\\"long\\\","
    "\\\"nullable\\\":true,\\\"metadata\\\":{}},{\\\"name\\\":\\\"p\\\",\\\"type\\\":\\\"string\\\",\\\"nullable\\\":true,"
    "\\\"metadata\\\":{}}]}\"";

static int vacuum(const char *root, bool dry)
{
    char a0[] = "vacuum", a2[] = "--retain-hours", a3[] = "1", a4[] = "--force", a5[] = "--dry-run";
    char *argv[] = { a0, (char *)root, a2, a3, a4, dry ? a5 : NULL, NULL };
    fflush(stdout);
    return cf_cmd_vacuum(dry ? 6 : 5, argv);
}

static void test_vacuum_walks_the_store(void)
{
    char tmpl[] = "/tmp/cf_delta_vacuum_XXXXXX", *dir = mkdtemp(tmpl), log[4096], url[PATH_MAX];
    static const char *const keep[] = {
        "p=1/live.parquet",                 /* live */
        "abs.parquet",                      /* live, named by an absolute path in the log */
        "p=1/young.parquet",                /* not in the log but new: a writer's uncommitted file */
        ".hidden.parquet", "_other/x.parquet", "p=1/_tmp/x.parquet", "p=1/.x.parquet",
        "_delta_log/00000000000000000000.json", "_delta_log/00000000000000000001.json",
    };
    static const char *const gone[] = {
        "p=1/gone.parquet",                 /* removed by version 1, long ago */
        "orphan.parquet", "p=1/orphan.parquet",
        "_change_data/p=1/cdc-old.parquet", /* change data of an old commit */
    };
    cf_err e;

    CHECK(dir != NULL);
    if (!dir)
        return;
    snprintf(log, sizeof log,
             "{\"commitInfo\":{\"timestamp\":%d000,\"operation\":\"WRITE\"}}\n"
             "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":4}}\n"
             "{\"metaData\":{\"id\":\"x\",\"format\":{\"provider\":\"parquet\",\"options\":{}},%s,"
             "\"partitionColumns\":[\"p\"],\"configuration\":{}}}\n"
             "{\"add\":{\"path\":\"p=1/live.parquet\",\"partitionValues\":{\"p\":\"1\"},\"size\":12,"
             "\"modificationTime\":1,\"dataChange\":true}}\n"
             "{\"add\":{\"path\":\"p=1/gone.parquet\",\"partitionValues\":{\"p\":\"1\"},\"size\":12,"
             "\"modificationTime\":1,\"dataChange\":true}}\n"
             "{\"add\":{\"path\":\"file:%s/abs.parquet\",\"partitionValues\":{\"p\":\"1\"},\"size\":12,"
             "\"modificationTime\":1,\"dataChange\":true}}\n", OLD_S, SCHEMA, dir);
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 0, log, strlen(log), (int64_t)OLD_S * 1000, &e), 0);
    snprintf(log, sizeof log,
             "{\"commitInfo\":{\"timestamp\":%d000,\"operation\":\"DELETE\"}}\n"
             "{\"remove\":{\"path\":\"p=1/gone.parquet\",\"deletionTimestamp\":%d000,\"dataChange\":true}}\n"
             "{\"cdc\":{\"path\":\"_change_data/p=1/cdc-old.parquet\",\"partitionValues\":{\"p\":\"1\"},"
             "\"size\":12,\"dataChange\":false}}\n", OLD_S, OLD_S);
    CHECK_EQ_INT(cf_delta_log_put_at(test_store(), dir, 1, log, strlen(log), (int64_t)OLD_S * 1000, &e), 0);
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (strncmp(keep[i], "_delta_log/", 11))
            touch(dir, keep[i], strcmp(keep[i], "p=1/young.parquet") != 0);
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        touch(dir, gone[i], true);

    CHECK_EQ_INT(vacuum(dir, true), 0);                 /* a dry run deletes nothing */
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        CHECK(there(dir, gone[i]));
    snprintf(url, sizeof url, "file://%s/", dir);       /* any form of the location */
    CHECK_EQ_INT(vacuum(url, false), 0);
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        if (!there(dir, keep[i]))
            fprintf(stderr, "  %s was deleted\n", keep[i]);
        CHECK(there(dir, keep[i]));
    }
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++) {
        if (there(dir, gone[i]))
            fprintf(stderr, "  %s was kept\n", gone[i]);
        CHECK(!there(dir, gone[i]));
    }
    cf_delta_snap *s = cf_delta_snap_load(NULL, dir, -1, &e);
    CHECK(s && s->version == 1 && s->nlive == 2);       /* the table is untouched */
    cf_delta_snap_free(s);
    rmtree(dir);
}

/* Not a table: nothing is listed, let alone deleted. */
static void test_vacuum_refuses_non_tables(void)
{
    char tmpl[] = "/tmp/cf_delta_vacuum_XXXXXX", *dir = mkdtemp(tmpl);

    CHECK(dir != NULL);
    if (!dir)
        return;
    touch(dir, "data.parquet", true);
    CHECK_EQ_INT(vacuum(dir, false), 1);
    CHECK(there(dir, "data.parquet"));
    rmtree(dir);
}

CF_TEST_MAIN("delta_vacuum", T(test_vacuum_walks_the_store), T(test_vacuum_refuses_non_tables))
