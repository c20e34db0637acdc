/* test_runtime_cmd.c - the command front of the pipelines (pipeline_cmd.c,
 * signals.c): option lists, run files, signal semantics, secrets in errors. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cf_test.h"
#include "cli/commands.h"
#include "runtime/signals.h"

/* Run fn(argc, argv) in a child with stdout and stderr sent to `out` (may be
 * NULL: /dev/null).  Returns the exit status, or 1000 + signal if it died. */
static int in_child(int (*fn)(int, char **), int argc, char **argv, const char *out)
{
    int status = 0;
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0) {
        if (!freopen(out ? out : "/dev/null", "w", stdout) || dup2(fileno(stdout), STDERR_FILENO) < 0)
            _exit(99);
        _exit(fn(argc, argv));
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

/* Whole file as a string (caller frees); "" if unreadable. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = calloc(1, 1 << 20);
    if (f && s) {
        size_t n = fread(s, 1, (1 << 20) - 1, f);
        s[n] = '\0';
    }
    if (f)
        fclose(f);
    return s;
}

/* --topic replaces the environment's topic; 64 of them is the limit and
 * must fit (the replaced topic's string must not count against it). */
static void test_topic_flag_replaces_env_topic_up_to_the_limit(void)
{
    char csv[64 * 8];
    size_t n = 0;
    char *argv[] = { "delta", "--topic", csv, "--help", NULL };

    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(csv + n, sizeof csv - n, "%st%d", i ? "," : "", i);
    setenv("KAFKA_TOPIC", "env.topic.a,env.topic.b", 1);
    CHECK_EQ_INT(in_child(cf_cmd_delta, 4, argv, NULL), 0);
    /* Twice the flag: both lists count, the environment's does not. */
    char *argv2[] = { "delta", "--topic", csv, "--topic", "one.more", "--help", NULL };
    CHECK_EQ_INT(in_child(cf_cmd_delta, 6, argv2, NULL), 2);
    unsetenv("KAFKA_TOPIC");
}

static void write_events(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < n; i++)
        fprintf(f, "{\"before\":null,\"after\":{\"customer_id\":%d,\"email\":\"u%d@example.com\"},"
                "\"source\":{\"connector\":\"postgresql\",\"db\":\"d\",\"schema\":\"public\",\"table\":"
                "\"customers\",\"lsn\":%d},\"op\":\"c\",\"ts_ms\":1700000000001}\n", i + 1, i + 1, 1000 + i);
    if (f)
        fclose(f);
}

/* Comments, blank lines and table lines are not pipelines: only pipeline
 * lines count against the limit of 32. */
static void test_run_file_limit_counts_pipelines_only(void)
{
    char dir[128], conf[256], ev[256];
    char *argv[] = { "run", conf, NULL };
    FILE *f;

    snprintf(dir, sizeof dir, "/tmp/cf_test_cmd_run_%d", (int)getpid());
    snprintf(conf, sizeof conf, "%s.conf", dir);
    snprintf(ev, sizeof ev, "%s.jsonl", dir);
    write_events(ev, 2);
    f = fopen(conf, "w");
    for (int i = 0; i < 40; i++)
        fprintf(f, "# comment %d\n\n", i);
    fprintf(f, "delta --source file:%s --table-path %s/{table} --metrics-port 0 --checkpoint-location %s/ck\n",
            ev, dir, dir);
    for (int i = 0; i < 40; i++)
        fprintf(f, "table t%d --mode append\n", i);
    fclose(f);
    CHECK_EQ_INT(in_child(cf_cmd_run, 2, argv, NULL), 0);

    /* 33 pipelines are still too many (exit 2 before anything runs). */
    f = fopen(conf, "w");
    for (int i = 0; i < 33; i++)
        fprintf(f, "# p%d\ndelta --source file:%s --table-path %s/p%d --metrics-port 0 --checkpoint-location %s/ck\n",
                i, ev, dir, i, dir);
    fclose(f);
    char out[300];
    snprintf(out, sizeof out, "%s.out", dir);
    CHECK_EQ_INT(in_child(cf_cmd_run, 2, argv, out), 2);
    char *s = slurp(out);
    CHECK(strstr(s, "more than 32 pipelines") != NULL);
    free(s);
    unlink(out);
    unlink(conf);
    unlink(ev);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

/* A stop asked for by code (a failed pipeline) is not an operator's
 * signal: the operator's first SIGTERM must still be a graceful stop. */
static int stop_then_one_signal(int argc, char **argv)
{
    cf_signals_reset();
    cf_signals_install();
    cf_signals_request_stop();
    if (!cf_signals_stop_requested() || cf_signals_which() != 0)
        return 3;
    raise(SIGTERM);                 /* graceful: the process goes on */
    if (!cf_signals_stop_requested() || cf_signals_which() != SIGTERM)
        return 4;
    if (argc > 1)
        raise(SIGINT);              /* the operator's second: out at once */
    return 0;
}

static void test_code_stop_does_not_count_as_a_signal(void)
{
    char *one[] = { "x", NULL }, *two[] = { "x", "twice", NULL };

    CHECK_EQ_INT(in_child(stop_then_one_signal, 1, one, NULL), 0);
    CHECK_EQ_INT(in_child(stop_then_one_signal, 2, two, NULL), 128 + SIGINT);
}

/* A mistyped or odd --kafka-prop is refused without echoing its value:
 * it may be a password. */
static void test_bad_kafka_prop_does_not_echo_secret(void)
{
    char out[128], longkey[400];
    const char *bad[] = { "sasl.password:hunter2secret", "=hunter2secret", longkey };

    memset(longkey, 'k', 300);
    snprintf(longkey + 300, sizeof longkey - 300, "=hunter2secret");
    snprintf(out, sizeof out, "/tmp/cf_test_cmd_prop_%d.out", (int)getpid());
    for (int i = 0; i < 3; i++) {
        char *argv[] = { "delta", "--kafka-prop", (char *)bad[i], "--source", "file:/nonexistent",
                         "--metrics-port", "0", NULL };
        CHECK_EQ_INT(in_child(cf_cmd_delta, 7, argv, out), 2);
        char *s = slurp(out);
        CHECK(strstr(s, "hunter2") == NULL);
        CHECK(strstr(s, "--kafka-prop") != NULL);
        free(s);
    }
    unlink(out);
}

CF_TEST_MAIN("runtime_cmd",
             T(test_topic_flag_replaces_env_topic_up_to_the_limit),
             T(test_run_file_limit_counts_pipelines_only),
             T(test_code_stop_does_not_count_as_a_signal),
             T(test_bad_kafka_prop_does_not_echo_secret))
