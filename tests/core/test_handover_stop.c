/* A stop during a hand-over (issue 16, defect 1): ss_server_request_shutdown
 * from a signal handler or another thread, or a drain begun, cancels the
 * hand-over at once (-ECANCELED, not its timeout), the successor is
 * stopped and reaped, and the server stops as if no hand-over had run.
 * Run per dispatcher (argv[1]). */
#define _GNU_SOURCE
#include "dispatch_support.h"

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
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define HAND_OVER_TIMEOUT_MS 8000 /* what the old code waited for */
#define PROMPTLY_MS          4000 /* a cancelled hand-over returns before this */

static const ss_dispatcher *dispatcher;
static ss_server *signalled; /* for on_signal */

static void on_signal(int sig)
{
    (void)sig;
    ss_server_request_shutdown(signalled);
}

static ss_server *start_server(void)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", dispatcher,
                                      &(ss_handler){SS_HANDLER_VERSION, NULL, ts_echo_handle, NULL},
                                      NULL),
                     0);
    ss_server_set_log(srv, NULL);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static int silent_hand_over(ss_server *srv, pid_t *pid)
{
    char *argv[] = {(char *)HANDOVER_SUCCESSOR, "silent", NULL};
    return ss_server_hand_over(srv, argv, HAND_OVER_TIMEOUT_MS, pid);
}

typedef struct delayed {
    pthread_t target;  /* signalled, or */
    ss_server *server; /* stopped or drained, after delay_ms */
    bool drain;
    int delay_ms;
} delayed;

static void *act_later(void *arg)
{
    delayed *d = arg;
    usleep((useconds_t)d->delay_ms * 1000);
    if (d->server == NULL)
        pthread_kill(d->target, SIGUSR1);
    else if (d->drain)
        assert_int_equal(ss_server_drain(d->server, 5000), 0);
    else
        ss_server_request_shutdown(d->server);
    return NULL;
}

/* The successor is gone: stopped and reaped by the hand-over. */
static void expect_reaped(pid_t pid)
{
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1);
    assert_int_equal(errno, ESRCH);
}

/* The loop serves on another thread; a signal handler on this one asks
 * for the stop while this thread waits in the hand-over. */
static void test_signal_cancels(void **state)
{
    (void)state;
    ss_server *srv = signalled = start_server();
    signal(SIGUSR1, on_signal);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    delayed d = {.target = pthread_self(), .delay_ms = 500};
    pthread_t helper;
    assert_int_equal(pthread_create(&helper, NULL, act_later, &d), 0);
    long long t0 = ts_now_ms();
    pid_t pid = -1;
    int rc = silent_hand_over(srv, &pid);
    long long took = ts_now_ms() - t0;
    pthread_join(helper, NULL);
    assert_int_equal(rc, -ECANCELED);
    assert_true(took < PROMPTLY_MS);
    expect_reaped(pid);
    assert_int_equal(pthread_join(runner.thread, NULL), 0); /* the stop ended the loop */
    assert_int_equal(runner.result, 0);
    assert_int_equal(ss_server_drain(srv, 5000), 0); /* a graceful drain, not "stop now" */
    ss_server_free(srv);
    signal(SIGUSR1, SIG_DFL);
}

/* No loop runs; `d` acts on another thread while this one hands over:
 * the hand-over is cancelled promptly and its successor reaped. */
static void cancelled_by(delayed *d)
{
    pthread_t helper;
    assert_int_equal(pthread_create(&helper, NULL, act_later, d), 0);
    long long t0 = ts_now_ms();
    pid_t pid = -1;
    assert_int_equal(silent_hand_over(d->server, &pid), -ECANCELED);
    assert_true(ts_now_ms() - t0 < PROMPTLY_MS);
    pthread_join(helper, NULL);
    expect_reaped(pid);
}

/* Another thread asks for the stop; it stays pending for the loop that
 * runs next. */
static void test_other_thread_cancels(void **state)
{
    (void)state;
    ss_server *srv = start_server();
    cancelled_by(&(delayed){.server = srv, .delay_ms = 500});
    assert_int_equal(ss_server_serve_forever(srv, 50), 0); /* returns at once: not lost */
    ss_server_free(srv);
}

/* A drain begun on another thread (the examples' main thread, once the
 * loop ended) ends a hand-over that began after the loop took the stop. */
static void test_drain_cancels(void **state)
{
    (void)state;
    ss_server *srv = start_server();
    cancelled_by(&(delayed){.server = srv, .drain = true, .delay_ms = 500});
    ss_server_free(srv);
}

/* A stop the loop has not taken yet: no successor is started at all. */
static void test_pending_stop_cancels(void **state)
{
    (void)state;
    ss_server *srv = start_server();
    ss_server_request_shutdown(srv);
    pid_t pid = 0;
    assert_int_equal(silent_hand_over(srv, &pid), -ECANCELED);
    assert_int_equal(pid, -1);
    ss_server_free(srv);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_cancels),
        cmocka_unit_test(test_other_thread_cancels),
        cmocka_unit_test(test_drain_cancels),
        cmocka_unit_test(test_pending_stop_cancels),
    };
    return TD_RUN_PER_DISPATCHER(tests, argc, argv, &dispatcher);
}
