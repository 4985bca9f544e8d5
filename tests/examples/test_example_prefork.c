/* The examples' worker processes (issue 17, item 3): --mode prefork (the
 * pool in one process per CPU) and --processes N with any mode serve as
 * the examples always do, from processes that are not the one started,
 * and SIGTERM drains them all: exit status 0, no error in the log, no
 * process left. Bad values are refused; chat_server, whose room is one
 * process's, refuses worker processes. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct example {
    const char *path;
    const char *ask, *answer;
} example;

static const example examples[] = {
    {ECHO_SERVER, "ping\n", "ping\n"},
    {UPPERCASE_SERVER, "ping\n", "PING\n"},
    {LINE_SERVER, "UPPER ping\n", "OK PING\n"},
    {ROBUST_SERVER, "ping\n", "PING\n"},
};

/* ts_proc_find's match: counts the processes of group *arg[0] into
 * arg[1], never stopping the search. */
static bool count_in_group(const ts_proc_stat *st, void *arg)
{
    long *group_count = arg;
    group_count[1] += st->pgrp == group_count[0];
    return false;
}

/* Every process of the example's group (spawn gives it one): the
 * supervisor and its workers; -1 where /proc is missing. */
static int group_size(pid_t group)
{
    long group_count[2] = {group, 0};
    return ts_proc_find(count_in_group, group_count) < 0 ? -1 : (int)group_count[1];
}

/* Clients at once (two with sync: one per process), each asking twice;
 * then SIGTERM, exit 0, nothing left of the group. */
static void serve_with(const example *ex, const char *mode, const char *processes, int group)
{
    int clients = strcmp(mode, "sync") == 0 ? 2 : 4;
    const char *argv[] = {ex->path,
                          "--listen",
                          "tcp://127.0.0.1:0",
                          "--mode",
                          mode,
                          "--quiet",
                          processes ? "--processes" : NULL,
                          processes,
                          NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    int fd[4];
    for (int i = 0; i < clients; i++)
        fd[i] = ts_connect_url(url);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < clients; i++) {
            ts_send(fd[i], ex->ask, strlen(ex->ask));
            expect(fd[i], ex->answer);
        }
    /* the supervisor and its workers (and a forking worker's children) */
    int size = group_size(c.pid);
    if (size < group)
        fail_msg("%d processes in the group, not %d or more; log:\n%s", size, group, c.log);
    kill(c.pid, SIGTERM);
    for (int i = 0; i < clients; i++)
        close(fd[i]);
    assert_int_equal(reap(&c), 0);
    ex_log_lacks(&c, "error");
    ex_log_lacks(&c, "worker process");
    assert_int_equal(group_size(c.pid), 0);
}

static void test_every_example_in_prefork_mode(void **state)
{
    (void)state;
    for (size_t e = 0; e < sizeof examples / sizeof examples[0]; e++)
        serve_with(&examples[e], "prefork", "2", 3);
}

static void test_processes_with_every_mode(void **state)
{
    (void)state;
    const char *modes[] = {"sync", "threading", "forking", "pool"};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++)
        serve_with(&examples[1], modes[m], "2", 3);
    serve_with(&examples[1], "prefork", NULL, 2); /* one per CPU: at least one */
}

static void test_bad_processes_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"0", "1025", "-1", "two", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {UPPERCASE_SERVER, "--processes", bad[i], NULL};
        expect_refusal(argv, 2, "--processes needs a number from 1 to 1024");
    }
    const char *chat[] = {CHAT_SERVER, "--mode", "prefork", NULL};
    expect_refusal(chat, 2, "cannot chat");
    const char *chat_processes[] = {CHAT_SERVER, "--processes", "2", NULL};
    expect_refusal(chat_processes, 2, "cannot chat");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ex_allow_threads_after_fork();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_example_in_prefork_mode, end_leftovers),
        cmocka_unit_test_teardown(test_processes_with_every_mode, end_leftovers),
        cmocka_unit_test_teardown(test_bad_processes_are_refused, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
