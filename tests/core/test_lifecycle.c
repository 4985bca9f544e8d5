/* The loop and its stop: serve_forever, shutdown from every kind of caller
 * (another thread, a handler, a signal handler, before the loop starts),
 * handle_request timeouts and EINTR, service_actions. */
#include "support.h"

#include <errno.h>
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

static int handle_nothing(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static const ss_handler nothing = {.version = SS_HANDLER_VERSION, .handle = handle_nothing};

static ss_server *new_server(const ss_handler *h, void *data)
{
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, h, data), 0);
    return srv;
}

static void test_shutdown_right_after_start(void **state)
{
    (void)state;
    /* Python's test_shutdown: the stop may land before the loop is entered */
    ts_runner runners[20];
    ss_server *servers[20];
    for (int i = 0; i < 20; i++) {
        servers[i] = new_server(&nothing, NULL);
        ts_start(&runners[i], servers[i], 500);
        assert_int_equal(ts_stop(&runners[i]), 0);
    }
    for (int i = 0; i < 20; i++)
        ss_server_free(servers[i]);
}

static void test_shutdown_before_serving_is_remembered(void **state)
{
    (void)state;
    ss_server *srv = new_server(&nothing, NULL);
    assert_int_equal(ss_server_shutdown(srv), 0); /* returns at once: nothing serving */
    long long start = ts_now_ms();
    assert_int_equal(ss_server_serve_forever(srv, 5000), 0);
    assert_true(ts_now_ms() - start < 1000);
    ss_server_free(srv);
}

/* Counts handled requests and signals the first one. */
typedef struct progress {
    atomic_int handled;
} progress;

static int count_request(ss_request *req, void *data)
{
    (void)req;
    progress *p = data;
    atomic_fetch_add(&p->handled, 1);
    return 0;
}

static bool handled_one(void *arg)
{
    return atomic_load(&((progress *)arg)->handled) >= 1;
}

static void test_shutdown_wakes_loop_at_once(void **state)
{
    (void)state;
    progress p = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = count_request};
    ss_server *srv = new_server(&h, &p);
    ts_runner runner;
    ts_start(&runner, srv, 5000); /* Python would take up to 5 s to notice */
    int fd = ts_connect(srv);
    assert_true(ts_wait_until(handled_one, &p, 5000)); /* the loop is running */
    close(fd);
    long long start = ts_now_ms();
    assert_int_equal(ts_stop(&runner), 0);
    long long took = ts_now_ms() - start;
    assert_true(took < 1000);
    ss_server_free(srv);
}

static int shutdown_from_handler(ss_request *req, void *data)
{
    (void)data;
    return ss_server_shutdown(ss_request_server(req)); /* same thread as the loop */
}

static void test_shutdown_inside_handler_does_not_deadlock(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = shutdown_from_handler};
    ss_server *srv = new_server(&h, NULL);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    assert_int_equal(pthread_join(runner.thread, NULL), 0); /* the loop ended by itself */
    assert_int_equal(runner.result, 0);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.handled, 1);
    close(fd);
    ss_server_free(srv);
}

static ss_server *signal_target;

static void on_usr1(int sig)
{
    (void)sig;
    ss_server_request_shutdown(signal_target);
}

static bool loop_served(void *arg)
{
    ss_stats st;
    ss_server_stats(arg, &st);
    return st.handled >= 1;
}

static void test_request_shutdown_from_signal_handler(void **state)
{
    (void)state;
    ss_server *srv = new_server(&nothing, NULL);
    signal_target = srv;
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    assert_true(ts_wait_until(loop_served, srv, 5000));
    long long start = ts_now_ms();
    pthread_kill(runner.thread, SIGUSR1);
    assert_int_equal(pthread_join(runner.thread, NULL), 0);
    assert_true(ts_now_ms() - start < 1000);
    assert_int_equal(runner.result, 0);
    sigaction(SIGUSR1, &old, NULL);
    close(fd);
    ss_server_free(srv);
}

static void test_second_loop_is_refused_and_loop_restarts(void **state)
{
    (void)state;
    progress p = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = count_request};
    ss_server *srv = new_server(&h, &p);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    assert_true(ts_wait_until(handled_one, &p, 5000));
    assert_int_equal(ss_server_serve_forever(srv, 10), -EBUSY);
    assert_int_equal(ts_stop(&runner), 0);
    close(fd);
    /* as in Python, serve_forever may run again after a shutdown */
    ts_start(&runner, srv, 5000);
    fd = ts_connect(srv);
    assert_int_equal(ts_sees_eof(fd), true);
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(atomic_load(&p.handled), 2);
    close(fd);
    ss_server_free(srv);
}

static atomic_int timeouts;

static void count_timeout(ss_server *srv, void *data)
{
    (void)srv;
    (void)data;
    atomic_fetch_add(&timeouts, 1);
}

static void test_handle_request_times_out(void **state)
{
    (void)state;
    atomic_store(&timeouts, 0);
    ss_server *srv = new_server(&nothing, NULL);
    ss_server_on_handle_timeout(srv, count_timeout);
    ss_server_set_timeout(srv, 200);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_handle_request(srv), 0);
    long long took = ts_now_ms() - start;
    assert_int_equal(atomic_load(&timeouts), 1);
    assert_true(took >= 200 && took < 2000);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.timeouts, 1);
    assert_int_equal(st.accepted, 0);
    ss_server_free(srv);
}

static void on_usr2(int sig)
{
    (void)sig;
}

typedef struct interrupter {
    pthread_t target;
    atomic_bool stop;
    atomic_int sent;
} interrupter;

static void *interrupt_loop(void *arg)
{
    interrupter *it = arg;
    while (!atomic_load(&it->stop)) {
        pthread_kill(it->target, SIGUSR2);
        atomic_fetch_add(&it->sent, 1);
        usleep(20000);
    }
    return NULL;
}

static void test_handle_request_retries_eintr_with_remaining_time(void **state)
{
    (void)state;
    atomic_store(&timeouts, 0);
    struct sigaction sa = {.sa_handler = on_usr2}, old; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, &old);
    ss_server *srv = new_server(&nothing, NULL);
    ss_server_on_handle_timeout(srv, count_timeout);
    ss_server_set_timeout(srv, 300);
    interrupter it = {.target = pthread_self()};
    pthread_t t;
    pthread_create(&t, NULL, interrupt_loop, &it);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_handle_request(srv), 0);
    long long took = ts_now_ms() - start;
    atomic_store(&it.stop, true);
    pthread_join(t, NULL);
    sigaction(SIGUSR2, &old, NULL);
    assert_true(atomic_load(&it.sent) >= 3); /* it really was interrupted */
    assert_int_equal(atomic_load(&timeouts), 1);
    assert_true(took >= 300 && took < 2000); /* neither early nor restarted */
    ss_server_free(srv);
}

static void *request_stop_later(void *arg)
{
    usleep(50000);
    ss_server_request_shutdown(arg);
    return NULL;
}

static void test_handle_request_is_cancelled_by_shutdown(void **state)
{
    (void)state;
    ss_server *srv = new_server(&nothing, NULL);
    pthread_t t;
    pthread_create(&t, NULL, request_stop_later, srv);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_handle_request(srv), -ECANCELED); /* no timeout set */
    assert_true(ts_now_ms() - start < 2000);
    pthread_join(t, NULL);
    ss_server_free(srv);
}

static atomic_int service_calls;

static void count_service(ss_server *srv, void *data)
{
    (void)srv;
    (void)data;
    atomic_fetch_add(&service_calls, 1);
}

static bool serviced_five_times(void *arg)
{
    (void)arg;
    return atomic_load(&service_calls) >= 5;
}

static void test_service_actions_run_every_poll_interval(void **state)
{
    (void)state;
    atomic_store(&service_calls, 0);
    ss_server *srv = new_server(&nothing, NULL);
    ss_server_on_service_actions(srv, count_service);
    ts_runner runner;
    ts_start(&runner, srv, 10);
    assert_true(ts_wait_until(serviced_five_times, NULL, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shutdown_right_after_start),
        cmocka_unit_test(test_shutdown_before_serving_is_remembered),
        cmocka_unit_test(test_shutdown_wakes_loop_at_once),
        cmocka_unit_test(test_shutdown_inside_handler_does_not_deadlock),
        cmocka_unit_test(test_request_shutdown_from_signal_handler),
        cmocka_unit_test(test_second_loop_is_refused_and_loop_restarts),
        cmocka_unit_test(test_handle_request_times_out),
        cmocka_unit_test(test_handle_request_retries_eintr_with_remaining_time),
        cmocka_unit_test(test_handle_request_is_cancelled_by_shutdown),
        cmocka_unit_test(test_service_actions_run_every_poll_interval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
