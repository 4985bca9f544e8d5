/* The forking dispatcher against the kernel's process limit: when fork()
 * fails with EAGAIN while children of ours run, the request waits for one
 * of them to exit, the server stops accepting meanwhile, and nobody is
 * dropped; with no child to wait for, the request fails as before.
 *
 * RLIMIT_NPROC does not bind root, so each scenario runs in a child of
 * the test that gives up root for a uid of its own (the test is skipped
 * when not run as root). The scenario cannot use cmocka (a failed assert
 * would unwind into the parent's copy of the runner): it returns the
 * number of the step that failed, and the test asserts its exit status. */
#include "dispatch_support.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define WAIT_MS 5000

/* ---- plain helpers for the scenario child (no cmocka) ---- */

static bool send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    return send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* True if `text` arrives on fd within ms milliseconds. */
static bool receives(int fd, const char *text, int ms)
{
    char got[64] = {0};
    size_t want = strlen(text), have = 0;
    while (have < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            return false;
        ssize_t n = recv(fd, got + have, want - have, 0);
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    return memcmp(got, text, want) == 0;
}

static bool quiet_for(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

static int connect_to(const ss_server *srv)
{
    char url[128];
    if (ss_server_address(srv, url, sizeof url) < 0)
        return -1;
    return ss_connect(url);
}

static void *serve(void *arg)
{
    ss_server_serve_forever(arg, 50);
    return NULL;
}

static atomic_int warnings;

static void count_warnings(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)message;
    (void)data;
    if (level == SS_LOG_WARNING)
        atomic_fetch_add(&warnings, 1);
}

/* Gives up root for a uid nothing else runs as, so that RLIMIT_NPROC
 * counts only this process's own tasks. */
static bool become_nobody_of_our_own(void)
{
    uid_t uid = 40000 + (uid_t)(getpid() % 20000);
    return setgid(uid) == 0 && setuid(uid) == 0;
}

/* Sets the soft RLIMIT_NPROC (the one enforced) to `limit`; the hard
 * limit stays, so it can be raised again. */
static bool limit_tasks(rlim_t limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NPROC, &rl) < 0)
        return false;
    rl.rlim_cur = limit;
    return setrlimit(RLIMIT_NPROC, &rl) == 0;
}

/* Sets RLIMIT_NPROC so that exactly one more task fits: the lowest limit
 * at which a probe fork succeeds. */
static bool allow_one_more_task(void)
{
    for (rlim_t limit = 1; limit < 1000; limit++) {
        if (!limit_tasks(limit))
            return false;
        pid_t probe = fork();
        if (probe == 0)
            _exit(0);
        if (probe > 0)
            return waitpid(probe, NULL, 0) == probe;
        if (errno != EAGAIN)
            return false;
    }
    return false;
}

/* ---- the scenarios (run in the child; 0 = passed, else the step) ---- */

/* A's child takes the one task left; B's fork is refused; B waits
 * unanswered, then is served once A's child exits. */
static int wait_for_a_child(ss_server *srv)
{
    int a = connect_to(srv);
    if (a < 0 || !send_text(a, "one\n") || !receives(a, "one\n", WAIT_MS))
        return 10;
    int b = connect_to(srv);
    if (b < 0 || !send_text(b, "two\n"))
        return 11;
    if (!quiet_for(b, 300))
        return 12; /* the kernel's limit must hold B back */
    if (!send_text(a, "bye\n") || close(a) < 0)
        return 13;
    if (!receives(b, "two\n", WAIT_MS))
        return 14; /* served after all */
    if (!send_text(b, "bye\n") || close(b) < 0)
        return 15;
    if (!td_wait_closed(srv, 2, WAIT_MS))
        return 16;
    ss_stats st = td_stats(srv);
    if (st.handled != 2 || st.spawn_failures != 0 || atomic_load(&warnings) != 1)
        return 17;
    return 0;
}

/* No task left at all and no child of ours to wait for: refused. */
static int fail_without_children(ss_server *srv)
{
    if (!limit_tasks(1)) /* below what this process already runs */
        return 20;
    int a = connect_to(srv);
    if (a < 0 || !send_text(a, "one\n"))
        return 21;
    char byte;
    struct pollfd p = {.fd = a, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1 || recv(a, &byte, 1, 0) > 0)
        return 22; /* closed without an answer, not left hanging */
    close(a);
    if (!td_wait_closed(srv, 1, WAIT_MS) || td_stats(srv).spawn_failures != 1)
        return 23;
    return 0;
}

static int run_scenario(int (*scenario)(ss_server *), bool limit_to_one_more)
{
    if (!become_nobody_of_our_own())
        return 1;
    ss_server *srv;
    if (ss_server_new(&srv, "tcp://127.0.0.1:0", ss_dispatch_forking(), &td_hold, NULL) < 0)
        return 2;
    ss_server_set_log(srv, count_warnings);
    ss_server_on_handle_error(srv, td_quiet_error);
    ss_server_set_request_timeout(srv, 10000); /* no child outlives a failure */
    pthread_t loop;
    if (pthread_create(&loop, NULL, serve, srv) != 0)
        return 3;
    /* counted after the serving thread exists: it is one of our tasks */
    int rc = limit_to_one_more && !allow_one_more_task() ? 4 : scenario(srv);
    ss_server_shutdown(srv);
    pthread_join(loop, NULL);
    ss_server_free(srv);
    return rc;
}

/* Runs the scenario in a child of the test; returns its exit status. */
static int in_child(int (*scenario)(ss_server *), bool limit_to_one_more)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(run_scenario(scenario, limit_to_one_more));
    int status = 0;
    long long end = ts_now_ms() + 30000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (ts_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the scenario did not end within 30 s");
        }
        usleep(10000);
    }
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#define NEED_ROOT()                                                                                \
    do {                                                                                           \
        if (geteuid() != 0)                                                                        \
            skip(); /* RLIMIT_NPROC binds only an unprivileged uid */                              \
    } while (0)

static void test_refused_fork_waits_for_a_child(void **state)
{
    (void)state;
    NEED_ROOT();
    assert_int_equal(in_child(wait_for_a_child, true), 0);
}

static void test_refused_fork_without_children_fails(void **state)
{
    (void)state;
    NEED_ROOT();
    assert_int_equal(in_child(fail_without_children, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_fork_waits_for_a_child),
        cmocka_unit_test(test_refused_fork_without_children_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
