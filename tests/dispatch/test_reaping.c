/* Handler threads are accounted for as soon as they finish, without the
 * loop turning again: a server driven by ss_server_handle_request, which
 * runs no loop between calls, shows no thread left (stats.tracked 0) once
 * every handler has returned; and close still leaves no thread behind. */
#include "dispatch_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#define REQUESTS 10

static ss_server *threading_server(const ss_handler *h)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), h, NULL),
                     0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* The process's thread count before a server, taken once a thread has
 * come and gone: ThreadSanitizer starts a helper thread of its own at the
 * first pthread_create, and keeps it. */
static void *nothing(void *arg)
{
    return arg;
}

static int threads_before(void)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, nothing, NULL), 0);
    pthread_join(t, NULL);
    return td_threads();
}

static bool threads_are(void *want)
{
    return td_threads() == *(int *)want;
}

/* 10 x (connect, handle_request, round trip, client closes): after each,
 * once the handler has returned, nothing is tracked any more. */
static void test_finished_threads_leave_without_the_loop(void **state)
{
    (void)state;
    int before = threads_before();
    ss_server *srv = threading_server(&td_echo_line);
    for (uint64_t i = 1; i <= REQUESTS; i++) {
        int fd = ts_connect(srv);
        assert_int_equal(ss_server_handle_request(srv), 0);
        td_round_trip(fd, "x\n");
        close(fd);
        assert_true(td_wait_closed(srv, i, 5000)); /* the handler has returned */
        assert_true(td_wait_tracked(srv, 0, 5000));
        assert_int_equal(td_stats(srv).handled, i);
    }
    if (before > 0) /* the threads themselves are gone too, not just counted */
        assert_true(ts_wait_until(threads_are, &before, 5000));
    ss_server_close(srv);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
    if (before > 0)
        assert_int_equal(td_threads(), before);
}

/* A handler still running when close starts is waited for, and its
 * thread is gone when close returns (block_on_close, the default). */
static void test_close_leaves_no_thread(void **state)
{
    (void)state;
    int before = threads_before();
    ss_server *srv = threading_server(&td_hold);
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    td_round_trip(fd, "x\n"); /* td_hold: echoes, then waits for "bye" */
    td_closer closer;
    td_close_start(&closer, srv);
    assert_false(td_close_returned(&closer, 200)); /* it waits for the handler */
    td_release(fd);
    assert_true(td_close_returned(&closer, 5000));
    assert_int_equal(td_stats(srv).tracked, 0);
    if (before > 0) /* joined, not merely counted: not even its last steps remain */
        assert_int_equal(td_threads(), before);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finished_threads_leave_without_the_loop),
        cmocka_unit_test(test_close_leaves_no_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
