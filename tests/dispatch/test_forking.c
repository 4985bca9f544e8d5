/* The forking dispatcher: Python's ForkingMixIn semantics minus its bugs.
 * Every test runs while the test process has a child of its own that
 * exits with status 72 at once; its teardown asserts that status is still
 * there to collect (the server reaps only its own pids: Python issue
 * 1540386). Handlers here run in the child: they never call cmocka. */
#include "dispatch_support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static ss_server *forking_server(const ss_handler *h, void *data, int max_children)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_forking(), h, data),
                     0);
    assert_int_equal(ss_server_set_max_children(srv, max_children), 0);
    /* a child left holding a client by a failed test still ends */
    ss_server_set_request_timeout(srv, 10000);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* ---- handler errors: reported once, in the child, exit status 1 ---- */

static void error_to_pipe(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    char c = err == -EPROTO ? 'E' : '?';
    ssize_t ignored = write(*(int *)data, &c, 1);
    (void)ignored;
}

static void test_failing_handler_child_exits_1(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    ss_server *srv = forking_server(&td_fail, &p[1], 0);
    ss_server_on_handle_error(srv, error_to_pipe);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd)); /* the child shut the request down */
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000)); /* reaped */
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handler_errors, 1); /* the child's exit status was 1 */
    assert_int_equal(st.handled, 0);
    assert_int_equal(td_stats(srv).children_failed, 1);
    ss_server_free(srv);
    close(p[1]);
    char got[8];
    assert_int_equal(read(p[0], got, sizeof got), 1); /* handle_error ran once */
    assert_int_equal(got[0], 'E');
    close(p[0]);
}

static void test_handled_child_exits_0(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_echo_line, NULL, 0);
    td_serve_once(srv, "ok\n", "ok\n");
    assert_int_equal(td_stats(srv).handled, 1);
    assert_int_equal(td_stats(srv).children_failed, 0);
    ss_server_free(srv);
}

/* ---- max_children: stop accepting, lose nobody ---- */

static void test_max_children_extra_clients_wait(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_hold, NULL, 2);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[4];
    for (int i = 0; i < 2; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "busy\n");
    }
    for (int i = 2; i < 4; i++) {
        fds[i] = ts_connect(srv); /* not refused: the kernel backlog holds them */
        ts_send(fds[i], i == 2 ? "two\n" : "six\n", 4);
    }
    assert_true(td_quiet_for(fds[2], 300));
    assert_true(td_quiet_for(fds[3], 1));
    assert_int_equal(td_stats(srv).accepted, 2);
    assert_int_equal(td_stats(srv).tracked, 2);
    td_release(fds[0]); /* a child exits: room for one more */
    td_expect(fds[2], "two\n");
    assert_true(td_quiet_for(fds[3], 100));
    td_release(fds[1]);
    td_expect(fds[3], "six\n");
    td_release(fds[2]);
    td_release(fds[3]);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handled, 4);
    assert_int_equal(st.accept_errors, 0);
    ss_server_free(srv);
}

/* Python's 40 starves the 41st long connection; the default must not. */
#define BEYOND_PYTHON 60

static void test_default_serves_beyond_pythons_40(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_hold, NULL, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[BEYOND_PYTHON];
    for (int i = 0; i < BEYOND_PYTHON; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "held\n"); /* answered while all before it hold on */
    }
    assert_int_equal(td_stats(srv).tracked, BEYOND_PYTHON);
    for (int i = 0; i < BEYOND_PYTHON; i++)
        td_release(fds[i]);
    td_finish(&runner, srv, BEYOND_PYTHON, 10000);
}

/* ---- reaping ---- */

static bool all_reaped(void *arg)
{
    ss_server *srv = arg;
    return td_stats(srv).tracked == 0 && td_zombies() <= 0;
}

static void test_no_zombies_after_40_requests(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_echo_line, NULL, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000); /* reaping must not wait for a poll interval */
    for (int i = 0; i < 40; i++) {
        int fd = ts_connect(srv);
        td_round_trip(fd, "ping\n");
        close(fd);
    }
    assert_true(ts_wait_until(all_reaped, srv, 1000));
    assert_int_equal(td_stats(srv).closed, 40);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* Dies without announcing its exit, as a crashed handler would. */
static int die_by_signal(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    raise(SIGKILL);
    return 0;
}

static const ss_handler killed_child = {.version = SS_HANDLER_VERSION, .handle = die_by_signal};

static void test_child_killed_by_signal_is_reaped(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&killed_child, NULL, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000); /* the sweep, not the poll interval, must find it */
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_true(ts_wait_until(all_reaped, srv, 2000));
    assert_int_equal(td_stats(srv).children_failed, 1);
    assert_int_equal(td_stats(srv).handled, 0);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void test_close_waits_for_children(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_hold, NULL, 0);
    int fd = td_held_past_stop(srv);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300));
    td_release(fd);
    assert_true(td_close_returned(&c, 5000));
    assert_int_equal(td_stats(srv).handled, 1);
    assert_int_equal(td_stats(srv).tracked, 0);
    assert_int_equal(td_zombies() > 0, false);
    ss_server_free(srv);
}

/* block_on_close off: close returns, and the child, no longer tracked,
 * is left to the application (here, the test) to reap. */
static void test_close_without_block_leaves_child_to_application(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_hold, NULL, 0);
    ss_server_set_block_on_close(srv, false);
    int fd = td_held_past_stop(srv);
    long long start = ts_now_ms();
    ss_server_close(srv);
    assert_true(ts_now_ms() - start < 1000);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
    td_release(fd);
    int reaped = td_reap_strays(5000);
    if (reaped >= 0)
        assert_int_equal(reaped, 1);
}

/* ---- the child's descriptors, the parent's copy ---- */

/* Answers whether the descriptor number in data is open in the child. */
static int report_listener(ss_request *req, void *data)
{
    int listener = *(int *)data;
    const char *answer = fcntl(listener, F_GETFD) < 0 ? "closed\n" : "open\n";
    return ss_request_send_all(req, answer, strlen(answer));
}

static void test_child_closes_listener(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = report_listener};
    int listener = -1;
    ss_server *srv = forking_server(&h, &listener, 0);
    listener = ss_server_fileno(srv);
    td_serve_once(srv, NULL, "closed\n");
    ss_server_free(srv);
}

/* The parent lets go of its copy with close() alone: a shutdown() there
 * would end the child's conversation too. And it keeps no descriptor. */
static void test_parent_releases_without_shutdown(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_echo_line, NULL, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds = ts_count_fds();
    int fd = ts_connect(srv);
    fds++; /* our client */
    assert_true(td_wait_accepted(srv, 1, 5000));
    assert_true(td_wait_fds(fds, 5000)); /* the parent's copy is gone */
    td_round_trip(fd, "after the parent let go\n");
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(td_stats(srv).handled, 1);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void test_handle_request_then_close(void **state)
{
    (void)state;
    ss_server *srv = forking_server(&td_echo_line, NULL, 0);
    int fd = ts_connect(srv);
    ts_send(fd, "one\n", 4);
    assert_int_equal(ss_server_handle_request(srv), 0); /* forks and returns */
    td_expect(fd, "one\n");
    close(fd);
    ss_server_close(srv); /* waits for the child */
    assert_int_equal(td_stats(srv).handled, 1);
    ss_server_free(srv);
}

static void test_max_children_option(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_forking(), &td_fail, NULL), 0);
    assert_int_equal(ss_server_set_max_children(srv, -1), -EINVAL);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_max_children(srv, 3), SS_ESTATE);
    ss_server_free(srv);
}

#define FORK_TEST(f) cmocka_unit_test_setup_teardown(f, td_own_child_setup, td_own_child_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        FORK_TEST(test_failing_handler_child_exits_1),
        FORK_TEST(test_handled_child_exits_0),
        FORK_TEST(test_max_children_extra_clients_wait),
        FORK_TEST(test_default_serves_beyond_pythons_40),
        FORK_TEST(test_no_zombies_after_40_requests),
        FORK_TEST(test_child_killed_by_signal_is_reaped),
        FORK_TEST(test_close_waits_for_children),
        FORK_TEST(test_close_without_block_leaves_child_to_application),
        FORK_TEST(test_child_closes_listener),
        FORK_TEST(test_parent_releases_without_shutdown),
        FORK_TEST(test_handle_request_then_close),
        FORK_TEST(test_max_children_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
