/* A wait for a PROXY header (a filter's open, before setup) ends on the
 * stop like any other wait of its dispatcher: at the drain's deadline
 * under threading, pool and forking, and at once on a second stop under
 * sync (after the stop grace otherwise). Under forking the child reads
 * the header, and a child whose application catches SIGTERM (as the
 * examples do, to cut their own request off once setup told them its
 * socket) used to keep waiting until the drain's SIGKILL: it must end at
 * the deadline, refused and counted, not killed. */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define AT_ONCE_MS 5000

/* The handler never runs here (no client completes its header). */
static ss_server *proxy_server(const char *mode)
{
    ss_proxy_options opts = {.header_timeout_ms = 60000}; /* the stop must end it, not this */
    return td_proxy_server(mode, &td_echo_line, &opts);
}

/* What the examples do: catch SIGTERM (a forked child inherits it) and
 * act only on what they know; here, nothing. */
static void caught(int sig)
{
    (void)sig;
}

static struct sigaction catch_sigterm(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = caught;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old);
    return old;
}

/* Two clients that send nothing and one that sends half a header. */
static void connect_waiters(ss_server *srv, int fds[3])
{
    for (int i = 0; i < 3; i++)
        fds[i] = ts_connect(srv);
    ts_send(fds[2], "PROXY TCP4 1.2", 14);
}

static void expect_refused_not_killed(ss_server *srv, uint64_t refused)
{
    ss_stats st = td_stats(srv);
    assert_int_equal(st.children_failed, 0); /* none waited for SIGKILL */
    assert_int_equal(st.filter_refused, refused);
    assert_int_equal(st.handled, 0);
    assert_int_equal(st.active, 0);
}

/* threading, pool, forking: the drain's deadline ends the header waits. */
static void drain_deadline_ends_header_wait(void **state)
{
    const char *mode = *state;
    struct sigaction old = catch_sigterm();
    ss_server *srv = proxy_server(mode);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[3];
    connect_waiters(srv, fds);
    assert_true(td_wait_active(srv, 3, AT_ONCE_MS));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(ss_server_drain(srv, 200), -ETIMEDOUT);
    expect_refused_not_killed(srv, 3);
    for (int i = 0; i < 3; i++) {
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
    ss_server_free(srv);
    sigaction(SIGTERM, &old, NULL);
}

/* sync: the header wait gets the stop grace (a minute here); a second
 * stop ends it at once. */
static void test_sync_second_stop_ends_header_wait(void **state)
{
    (void)state;
    ss_server *srv = proxy_server("sync");
    assert_int_equal(ss_server_set_stop_grace(srv, 60000), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    ts_send(fd, "PROXY TCP4 1.2", 14);
    assert_true(td_wait_active(srv, 1, AT_ONCE_MS));
    ss_server_request_shutdown(srv);
    assert_true(td_quiet_for(fd, 200)); /* in its grace: still waiting */
    long long start = ts_now_ms();
    assert_int_equal(ts_stop(&runner), 0); /* the second stop */
    assert_true(ts_now_ms() - start < AT_ONCE_MS);
    assert_true(ts_sees_eof(fd));
    close(fd);
    expect_refused_not_killed(srv, 1);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_MODE_TEST(drain_deadline_ends_header_wait, "threading"),
        TS_MODE_TEST(drain_deadline_ends_header_wait, "pool"),
        TS_MODE_TEST(drain_deadline_ends_header_wait, "forking"),
        cmocka_unit_test(test_sync_second_stop_ends_header_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
