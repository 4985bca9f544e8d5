/* Worker processes that cannot start (ss_server_set_processes): until
 * one has served, a start that fails in every worker fails
 * serve_forever with the reason, as the same failure in one process
 * fails activate. Before, the supervisor kept trying every 10 s at
 * most, its listener open, a client's connection taken by the kernel
 * and never answered: a server a TCP health check sees as up. The
 * supervisor runs in a child whose descriptor limit leaves room for
 * its own pipes to one worker only. */
#include "dispatch_support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define SPARE_FDS     4     /* one worker's two pipes, and no more */
#define SERVE_WAIT_MS 10000 /* the failure takes ~100 ms: one back-off */

/* Exit statuses of the supervising child. */
enum { SERVED = 0, LEFT_CHILDREN = 100, SETUP_FAILED = 101 };

/* Leaves exactly SPARE_FDS free descriptors: the limit is set just past
 * the SPARE_FDS-th unused number (descriptors open above it stay open;
 * the limit bounds only new ones). The supervisor can make one worker's
 * pipes. */
static bool leave_few_fds(void)
{
    int fd = 0;
    for (int unused = 0; unused < SPARE_FDS; fd++)
        unused += fcntl(fd, F_GETFD) < 0;
    struct rlimit rl = {.rlim_cur = (rlim_t)fd, .rlim_max = (rlim_t)fd};
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* In the child: a pool with two worker processes, started with too few
 * descriptors; exits with serve_forever's -errno, or a status above. */
static _Noreturn void supervise_starved(void)
{
    ss_server *srv;
    if (ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &td_echo_line, NULL) != 0 ||
        ss_server_set_processes(srv, 2) != 0 || ss_server_set_workers(srv, 2) != 0 ||
        ss_server_bind(srv) != 0 || ss_server_activate(srv) != 0 || !leave_few_fds())
        _exit(SETUP_FAILED);
    int rc = ss_server_serve_forever(srv, 50);
    ss_server_close(srv);
    ss_server_free(srv);
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) >= 0 || errno != ECHILD)
        _exit(LEFT_CHILDREN); /* a worker left, running or a zombie */
    _exit(rc < 0 ? -rc : SERVED);
}

/* The child's exit status, within timeout_ms; -1 if it did not end
 * (it is then killed). */
static int child_status(pid_t pid, int timeout_ms)
{
    long long end = ts_now_ms() + timeout_ms;
    int status;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (ts_now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(10000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_no_worker_can_start_fails_serve_forever(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        supervise_starved();
    int status = child_status(pid, SERVE_WAIT_MS);
    if (status == -1)
        fail_msg("serve_forever still ran after %d ms, no worker started", SERVE_WAIT_MS);
    assert_int_not_equal(status, SETUP_FAILED);
    assert_int_not_equal(status, LEFT_CHILDREN);
    assert_int_equal(status, EMFILE); /* the reason, not just "failed" */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_worker_can_start_fails_serve_forever),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
