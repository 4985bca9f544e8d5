/* The threading dispatcher: Python's ThreadingMixIn semantics (handler
 * errors reported once, block_on_close, daemon_threads) and what Python
 * gets wrong: bookkeeping that grows with every request (bpo-37193),
 * shutdown and close while handlers run on other threads, thread stacks. */
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

static ss_server *threading_server(const ss_handler *h, void *data)
{
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), h, data), 0);
    return srv;
}

static void test_bookkeeping_does_not_grow(void **state)
{
    (void)state;
    ss_server *srv = threading_server(&td_echo_line, NULL);
    ts_runner runner;
    ts_start(&runner, srv, 5000); /* reaping must not wait for a poll interval */
    for (int i = 0; i < 10; i++) {
        int fd = ts_connect(srv);
        td_round_trip(fd, "ping\n");
        assert_true(ts_sees_eof(fd));
        close(fd);
        assert_true(td_wait_closed(srv, (uint64_t)i + 1, 5000));
    }
    assert_true(td_stats(srv).tracked < 10); /* Python kept all 10 */
    assert_true(td_wait_tracked(srv, 0, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void test_closed_without_any_request(void **state)
{
    (void)state;
    int fds = ts_count_fds();
    ss_server *srv = threading_server(&td_echo_line, NULL);
    ss_server_close(srv);
    ss_server_close(srv); /* idempotent */
    ss_server_free(srv);
    srv = threading_server(&td_echo_line, NULL);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    assert_int_equal(ts_count_fds(), fds);
}

typedef struct errors {
    atomic_int calls;
    atomic_int last;
    atomic_bool on_other_thread; /* not the serving thread */
    pthread_mutex_t lock;        /* guards serving */
    pthread_t serving;
} errors;

static void count_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    errors *e = data;
    atomic_fetch_add(&e->calls, 1);
    atomic_store(&e->last, err);
    pthread_mutex_lock(&e->lock);
    atomic_store(&e->on_other_thread, !pthread_equal(pthread_self(), e->serving));
    pthread_mutex_unlock(&e->lock);
}

/* Starts the loop and tells count_error which thread runs it. */
static void start_watched(ts_runner *runner, ss_server *srv, errors *e)
{
    pthread_mutex_init(&e->lock, NULL);
    pthread_mutex_lock(&e->lock);
    ts_start(runner, srv, 100);
    e->serving = runner->thread;
    pthread_mutex_unlock(&e->lock);
}

static void test_failing_handler_reported_once(void **state)
{
    (void)state;
    errors e = {0};
    ss_server *srv = threading_server(&td_fail, &e);
    ss_server_on_handle_error(srv, count_error);
    ts_runner runner;
    start_watched(&runner, srv, &e);
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd)); /* the request was shut down */
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv);
    pthread_mutex_destroy(&e.lock);
    assert_int_equal(atomic_load(&e.calls), 1);
    assert_int_equal(atomic_load(&e.last), -EPROTO);
    assert_true(atomic_load(&e.on_other_thread)); /* where the handler ran */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handler_errors, 1);
    assert_int_equal(st.handled, 0);
    ss_server_free(srv);
}

/* ---- close while handlers run ---- */

/* Five handlers are busy with clients when the loop is stopped: shutdown
 * returns at once, close waits for all five (block_on_close). */
static void test_shutdown_and_close_while_handlers_run(void **state)
{
    (void)state;
    ss_server *srv = threading_server(&td_hold, NULL);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[5];
    for (int i = 0; i < 5; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "hi\n");
    }
    long long start = ts_now_ms();
    assert_int_equal(ts_stop(&runner), 0);
    assert_true(ts_now_ms() - start < 1000);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300)); /* it waits for the handlers */
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    assert_true(td_close_returned(&c, 5000));
    assert_int_equal(td_stats(srv).handled, 5);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
}

/* daemon_threads, or block_on_close off: close does not wait, and the
 * handler finishing later touches nothing freed. */
static void close_lets_handler_go(void (*configure)(ss_server *))
{
    ss_server *srv = threading_server(&td_hold, NULL);
    configure(srv);
    int fd = td_held_past_stop(srv);
    long long start = ts_now_ms();
    ss_server_close(srv);
    assert_true(ts_now_ms() - start < 1000);
    assert_int_equal(td_stats(srv).tracked, 1); /* still running */
    close(fd);
    assert_true(td_wait_tracked(srv, 0, 5000)); /* it freed its own record */
    assert_int_equal(td_stats(srv).handled, 1);
    ss_server_free(srv);
}

static void make_daemon(ss_server *srv)
{
    ss_server_set_daemon_threads(srv, true);
}

static void no_block_on_close(ss_server *srv)
{
    ss_server_set_block_on_close(srv, false);
}

static void test_daemon_threads_not_waited_for(void **state)
{
    (void)state;
    close_lets_handler_go(make_daemon);
}

static void test_block_on_close_off_not_waited_for(void **state)
{
    (void)state;
    close_lets_handler_go(no_block_on_close);
}

/* The server is freed while a daemon handler still runs: the request's
 * reference keeps the memory until the handler is done. */
/* ... except handlers that reply through the server's socket. */
static void test_close_waits_for_daemon_datagram_handler(void **state)
{
    (void)state;
    td_close_waits_for_datagram_handler(ss_dispatch_threading(), make_daemon);
}

static void test_free_while_daemon_handler_runs(void **state)
{
    (void)state;
    int fds = ts_count_fds();
    ss_server *srv = threading_server(&td_hold, NULL);
    ss_server_set_daemon_threads(srv, true);
    int fd = td_held_past_stop(srv);
    ss_server_free(srv);
    assert_true(ts_count_fds() >= fds + 3); /* our client, the server's wake pipe */
    close(fd);                              /* the handler returns now, into a closed server */
    /* the handler's thread drops the last reference: the pipe goes */
    assert_true(td_wait_fds(fds, 5000));
}

static int shutdown_from_worker(ss_request *req, void *data)
{
    (void)data;
    return ss_server_shutdown(ss_request_server(req)); /* waits for the loop */
}

static void test_shutdown_from_handler_thread(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = shutdown_from_worker};
    ss_server *srv = threading_server(&h, NULL);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    assert_int_equal(pthread_join(runner.thread, NULL), 0); /* the loop ended */
    assert_int_equal(runner.result, 0);
    ss_server_close(srv); /* joins the handler, which returned after the loop */
    assert_int_equal(td_stats(srv).handled, 1);
    close(fd);
    ss_server_free(srv);
}

/* ---- thread stacks ---- */

static int big_locals(ss_request *req, void *data)
{
    (void)data;
    volatile char buf[64 * 1024]; /* a generous handler */
    memset((char *)buf, 'x', sizeof buf);
    return ss_request_send_all(req, (const char *)buf, 1);
}

static void test_default_stack_fits_big_handler(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = big_locals};
    ss_server *srv = threading_server(&h, NULL);
    td_serve_once(srv, NULL, "x");
    ss_server_free(srv);
}

static void test_stack_size_option(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), &td_fail, NULL), 0);
    assert_int_equal(ss_server_set_thread_stack_size(srv, 1), -EINVAL);
    assert_int_equal(ss_server_set_thread_stack_size(srv, 100000), 0); /* not whole pages */
    assert_int_equal(ss_server_set_thread_stack_size(srv, 0), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_thread_stack_size(srv, 1 << 20), SS_ESTATE);
    ss_server_free(srv);
}

/* A thread that cannot be created: the request goes to handle_error and
 * is shut down, and the server goes on. */
static void test_thread_creation_failure_reported(void **state)
{
    (void)state;
    if (sizeof(size_t) < 8)
        skip();
    errors e = {0};
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), &td_echo_line, &e), 0);
    ss_server_on_handle_error(srv, count_error);
    /* a petabyte of stack: no system maps that */
    assert_int_equal(ss_server_set_thread_stack_size(srv, (size_t)1 << 50), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    start_watched(&runner, srv, &e);
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(atomic_load(&e.calls), 1);
    assert_false(atomic_load(&e.on_other_thread)); /* reported by the loop */
    assert_int_equal(td_stats(srv).spawn_failures, 1);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
    pthread_mutex_destroy(&e.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bookkeeping_does_not_grow),
        cmocka_unit_test(test_closed_without_any_request),
        cmocka_unit_test(test_failing_handler_reported_once),
        cmocka_unit_test(test_shutdown_and_close_while_handlers_run),
        cmocka_unit_test(test_daemon_threads_not_waited_for),
        cmocka_unit_test(test_block_on_close_off_not_waited_for),
        cmocka_unit_test(test_close_waits_for_daemon_datagram_handler),
        cmocka_unit_test(test_free_while_daemon_handler_runs),
        cmocka_unit_test(test_shutdown_from_handler_thread),
        cmocka_unit_test(test_default_stack_fits_big_handler),
        cmocka_unit_test(test_stack_size_option),
        cmocka_unit_test(test_thread_creation_failure_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
