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

CF_TEST_MAIN("runtime_cmd",
             T(test_topic_flag_replaces_env_topic_up_to_the_limit))
