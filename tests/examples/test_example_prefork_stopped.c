/* A stop with a worker process that cannot answer (SIGSTOPped) is bounded
 * by --drain plus the 3 s after which the supervisor kills a worker still
 * there (docs/production.md, docs/concurrency.md). Before, serve_forever
 * waited up to 5 s for every worker to confirm its pause and only then
 * began the drain: 8 s whatever --drain was. The stop line gives the
 * drain's time that is left, not --drain. */
#include "example_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define DRAIN_S  1
#define KILL_S   3    /* the supervisor's kill, past the drain's deadline */
#define BOUND_MS 6500 /* (DRAIN_S + KILL_S) s plus slack; the old code took 8 s */

/* ts_proc_find's match: a process whose parent is *parent. */
static bool is_child(const ts_proc_stat *st, void *parent)
{
    return st->ppid == *(long *)parent;
}

/* A child of `parent` (its first found in /proc), or -1. */
static pid_t child_of(pid_t parent)
{
    long p = parent;
    long found = ts_proc_find(is_child, &p);
    return found > 0 ? (pid_t)found : -1;
}

static void stop_with_a_stopped_worker_is_bounded(void **state)
{
    (void)state;
    const char *argv[] = {
        UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", "--mode", "prefork", "--processes", "2",
        "--drain",        "1",        "--quiet",           NULL};
    child c;
    char url[256];
    start_server_argv(&c, argv, url, sizeof url);
    int fd = ts_connect_url(url); /* a reply: the workers are serving */
    ts_send(fd, "ping\n", 5);
    expect(fd, "PING\n");
    close(fd);
    pid_t worker = child_of(c.pid);
    assert_true(worker > 0);
    kill(worker, SIGSTOP);
    long long start = ts_now_ms();
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    long long took = ts_now_ms() - start;
    kill(worker, SIGKILL); /* if the supervisor left it (it must not) */
    if (took > BOUND_MS)
        fail_msg("--drain %d with a stopped worker: stopped in %lld ms", DRAIN_S, took);
    print_message("stopped in %lld ms\n", took);
    /* serve_forever waited out the grace for the stopped worker: the
     * drain has what is left of --drain, and says so (it said 1 s) */
    ex_log_has(&c, "finishing requests for up to 0 s");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    ex_allow_threads_after_fork();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(stop_with_a_stopped_worker_is_bounded, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
