/* The thread-pool dispatcher: a fixed set of workers, a bounded queue
 * whose being full stops accepting (backpressure to the kernel backlog),
 * server_close draining the queue or cancelling it, handler errors. */
#include "dispatch_support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* One request per worker at a time (ss_server_set_pool_fibers 1), so a
 * busy worker leaves later clients in the queue: the queue's behaviour is
 * what these tests watch. test_fiber_pool covers many per worker. */
static ss_server *pool_server(const ss_handler *h, void *data, int workers, int queue)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), h, data), 0);
    assert_int_equal(ss_server_set_pool_fibers(srv, 1), 0);
    assert_int_equal(ss_server_set_workers(srv, workers), 0);
    assert_int_equal(ss_server_set_queue_size(srv, queue), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static void test_default_worker_count(void **state)
{
    (void)state;
    ss_server *srv = pool_server(&td_echo_line, NULL, 0, 0);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long want = (cpus > 0 ? cpus : 1) * 4; /* as documented: 4 per CPU, 8..256 */
    want = want < 8 ? 8 : want > 256 ? 256 : want;
    assert_int_equal(td_stats(srv).tracked, want);
    ss_server_close(srv);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
}

static void test_options(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &td_echo_line, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, -1), -EINVAL);
    assert_int_equal(ss_server_set_queue_size(srv, -1), -EINVAL);
    assert_int_equal(ss_server_set_pool_fibers(srv, -1), -EINVAL);
    assert_int_equal(ss_server_set_workers(srv, 3), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_workers(srv, 4), SS_ESTATE);
    assert_int_equal(ss_server_set_queue_size(srv, 4), SS_ESTATE);
    assert_int_equal(ss_server_set_pool_fibers(srv, 4), SS_ESTATE);
    assert_int_equal(td_stats(srv).tracked, 3);
    ss_server_free(srv);
}

/* One worker, a queue of one: the third client waits in the backlog, is
 * not accepted, and is served once there is room. */
static void test_full_queue_stops_accepting(void **state)
{
    (void)state;
    ss_server *srv = pool_server(&td_hold, NULL, 1, 1);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int c1 = ts_connect(srv);
    td_round_trip(c1, "one\n");
    int c2 = ts_connect(srv);
    ts_send(c2, "two\n", 4);
    assert_true(td_wait_queued(srv, 1, 5000));
    int c3 = ts_connect(srv); /* connects: the kernel backlog holds it */
    ts_send(c3, "six\n", 4);
    assert_true(td_quiet_for(c3, 300));
    assert_int_equal(td_stats(srv).accepted, 2); /* not taken off the backlog */
    close(c1);
    td_expect(c2, "two\n");
    assert_true(td_wait_accepted(srv, 3, 5000));
    close(c2);
    td_expect(c3, "six\n");
    close(c3);
    assert_true(td_wait_closed(srv, 3, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handled, 3);
    assert_int_equal(st.accept_errors, 0);
    ss_server_free(srv);
}

static atomic_int error_calls;

static void count_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    (void)data;
    if (err == -EPROTO)
        atomic_fetch_add(&error_calls, 1);
}

static void test_failing_handler_reported_once(void **state)
{
    (void)state;
    atomic_store(&error_calls, 0);
    ss_server *srv = pool_server(&td_fail, NULL, 2, 0);
    ss_server_on_handle_error(srv, count_error);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv);
    assert_int_equal(atomic_load(&error_calls), 1);
    assert_int_equal(td_stats(srv).handler_errors, 1);
    ss_server_free(srv);
}

/* ---- close ---- */

/* One busy worker and two queued clients when the loop stops. */
static void busy_with_two_queued(ss_server *srv, ts_runner *runner, int fds[3])
{
    ts_start(runner, srv, 5000);
    fds[0] = ts_connect(srv);
    td_round_trip(fds[0], "one\n");
    fds[1] = ts_connect(srv);
    ts_send(fds[1], "two\n", 4);
    fds[2] = ts_connect(srv);
    ts_send(fds[2], "six\n", 4);
    assert_true(td_wait_queued(srv, 2, 5000));
    assert_int_equal(ts_stop(runner), 0);
}

static void test_close_drains_queue(void **state)
{
    (void)state;
    ss_server *srv = pool_server(&td_hold, NULL, 1, 4);
    ts_runner runner;
    int fds[3];
    busy_with_two_queued(srv, &runner, fds);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300)); /* waits for the work */
    close(fds[0]);
    td_expect(fds[1], "two\n"); /* queued requests are still served */
    close(fds[1]);
    td_expect(fds[2], "six\n");
    close(fds[2]);
    assert_true(td_close_returned(&c, 5000));
    assert_int_equal(td_stats(srv).handled, 3);
    ss_stats ds = td_stats(srv);
    assert_int_equal(ds.cancelled, 0);
    assert_int_equal(ds.tracked, 0);
    assert_int_equal(ds.queued, 0);
    ss_server_free(srv);
}

static void test_close_cancels_queue_without_block_on_close(void **state)
{
    (void)state;
    ss_server *srv = pool_server(&td_hold, NULL, 1, 4);
    ss_server_set_block_on_close(srv, false);
    ts_runner runner;
    int fds[3];
    busy_with_two_queued(srv, &runner, fds);
    long long start = ts_now_ms();
    ss_server_close(srv);
    assert_true(ts_now_ms() - start < 1000); /* the busy worker is not waited for */
    assert_true(ts_sees_eof(fds[1]));        /* shut down, unanswered */
    assert_true(ts_sees_eof(fds[2]));
    ss_stats ds = td_stats(srv);
    assert_int_equal(ds.cancelled, 2);
    assert_int_equal(ds.queued, 0);
    assert_int_equal(ds.tracked, 1); /* the worker still serving fds[0] */
    close(fds[0]);                   /* its handler now ends normally */
    assert_true(td_wait_tracked(srv, 0, 5000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.closed, 3);
    close(fds[1]);
    close(fds[2]);
    ss_server_free(srv);
}

static void no_block_on_close(ss_server *srv)
{
    ss_server_set_block_on_close(srv, false);
}

/* Without block_on_close, close still waits for a handler that replies
 * through the server's socket. */
static void test_close_waits_for_datagram_handler(void **state)
{
    (void)state;
    td_close_waits_for_datagram_handler(ss_dispatch_pool(), no_block_on_close);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_worker_count),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_full_queue_stops_accepting),
        cmocka_unit_test(test_failing_handler_reported_once),
        cmocka_unit_test(test_close_drains_queue),
        cmocka_unit_test(test_close_cancels_queue_without_block_on_close),
        cmocka_unit_test(test_close_waits_for_datagram_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
