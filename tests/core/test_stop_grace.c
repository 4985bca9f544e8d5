/* A stop never drops a connection accepted before its first bytes arrive
 * (issue 14 (b): HAProxy sends a connection's first bytes a moment after
 * connecting and does not retry an accepted one), on every dispatcher and
 * stream transport: a client connects, its request is accepted, the stop
 * comes (the examples' SIGTERM: ss_server_request_shutdown, then
 * ss_server_drain once serve_forever returned), THEN its first bytes
 * arrive, and it gets its full reply. The sync dispatcher's stop grace
 * (ss_server_set_stop_grace), which makes that true there:
 *   - a silent client's wait ends after the grace, not before;
 *   - an idle client's wait ends at once, whatever the grace;
 *   - a second stop ends a graced wait at once, and so does a stop during
 *     a drain (to a client the drain took from the backlog);
 *   - grace 0 is the stop of before: at once. */
#include "dispatch_support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define LONG_GRACE_MS 10000 /* far beyond what "at once" may take here */

/* serve_forever, then ss_server_drain, on a thread: the examples' stop. */
typedef struct stopping {
    ss_server *srv;
    pthread_t thread;
    int drain_ms;
    atomic_bool loop_returned, done;
    atomic_llong loop_returned_at;
    int drain_rc;
} stopping;

static void *serve_then_drain(void *arg)
{
    stopping *s = arg;
    ss_server_serve_forever(s->srv, -1);
    atomic_store(&s->loop_returned_at, ts_now_ms());
    atomic_store(&s->loop_returned, true);
    s->drain_rc = ss_server_drain(s->srv, s->drain_ms);
    atomic_store(&s->done, true);
    return NULL;
}

static void stopping_start(stopping *s, ss_server *srv, int drain_ms)
{
    *s = (stopping){.srv = srv, .drain_ms = drain_ms};
    assert_int_equal(pthread_create(&s->thread, NULL, serve_then_drain, s), 0);
}

static bool flag_set(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

static ss_server *server_at(const char *url, const char *mode, int grace_ms)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), &td_hold, NULL), 0);
    ss_server_set_request_timeout(srv, 10000);      /* a failed test's handler still ends */
    ss_server_on_handle_error(srv, td_quiet_error); /* a cancelled wait fails the handler */
    assert_int_equal(ss_server_set_stop_grace(srv, grace_ms), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static ss_server *sync_server(int grace_ms)
{
    return server_at("tcp://127.0.0.1:0", "sync", grace_ms);
}

/* Serving (then draining for drain_ms) with one client accepted that has
 * said nothing: its socket. */
static int serve_silent_client(stopping *s, ss_server *srv, int drain_ms)
{
    stopping_start(s, srv, drain_ms);
    int fd = ts_connect(srv);
    assert_true(td_wait_accepted(srv, 1, 5000));
    return fd;
}

/* ---- the rule over every dispatcher and stream transport ---- */

/* Connect; accepted; stop; then the first bytes: the reply comes whole. */
static void check_first_bytes_after_stop(const char *url, const char *mode)
{
    ss_server *srv = server_at(url, mode, 5000);
    stopping s;
    int fd = serve_silent_client(&s, srv, 10000);
    ss_server_request_shutdown(srv);
    if (strcmp(mode, "sync") == 0) /* the loop is in our handler: let the stop reach it */
        td_wait_closed(srv, 1, 300);
    else /* the loop has stopped: the drain begins now */
        assert_true(ts_wait_until(flag_set, &s.loop_returned, 5000));
    td_round_trip(fd, "first bytes after the stop\n");
    close(fd); /* the request is idle now: ended at once, or by this */
    assert_true(ts_wait_until(flag_set, &s.done, 10000));
    pthread_join(s.thread, NULL);
    assert_int_equal(s.drain_rc, 0);
    assert_int_equal(td_stats(srv).interrupted, 0);
    ss_server_free(srv);
}

static void test_first_bytes_after_stop_are_served(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    char dir[256], url[320];
    ts_mkdtemp(dir, sizeof dir);
    for (size_t m = 0; m < TS_DISPATCHERS; m++) {
        check_first_bytes_after_stop("tcp://127.0.0.1:0", modes[m]);
        snprintf(url, sizeof url, "unix:%s/%s.sock", dir, modes[m]);
        check_first_bytes_after_stop(url, modes[m]);
#ifdef __linux__
        snprintf(url, sizeof url, "unix:@ss-stop-grace-%d-%s", (int)getpid(), modes[m]);
        check_first_bytes_after_stop(url, modes[m]);
#endif
    }
    ts_rmdir(dir);
}

/* ---- sync: the grace's bounds ---- */

/* ms from the stop until serve_forever returned. */
static long long loop_took(stopping *s, long long stopped_at)
{
    assert_true(ts_wait_until(flag_set, &s->loop_returned, 3 * LONG_GRACE_MS));
    return atomic_load(&s->loop_returned_at) - stopped_at;
}

static void finish(stopping *s, ss_server *srv, int fd)
{
    close(fd);
    assert_true(ts_wait_until(flag_set, &s->done, 10000));
    pthread_join(s->thread, NULL);
    ss_server_free(srv);
}

/* A client that never speaks holds the loop for the grace, then its wait
 * ends (-ECANCELED: the handler fails) and the loop returns. */
static void test_sync_silent_client_gets_the_grace(void **state)
{
    (void)state;
    ss_server *srv = sync_server(400);
    stopping s;
    int fd = serve_silent_client(&s, srv, 0);
    long long stopped_at = ts_now_ms();
    ss_server_request_shutdown(srv);
    long long took = loop_took(&s, stopped_at);
    assert_true(took >= 350);
    assert_true(took < 5000);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.handler_errors, 1);
    assert_int_equal(st.handled, 0);
    finish(&s, srv, fd);
}

/* Answered once and waiting for its next message: idle, so the stop ends
 * it at once however long the grace. */
static void test_sync_idle_client_ends_at_once(void **state)
{
    (void)state;
    ss_server *srv = sync_server(LONG_GRACE_MS);
    stopping s;
    stopping_start(&s, srv, 0);
    int fd = ts_connect(srv);
    td_round_trip(fd, "hi\n");
    long long stopped_at = ts_now_ms();
    ss_server_request_shutdown(srv);
    assert_true(loop_took(&s, stopped_at) < LONG_GRACE_MS / 3);
    assert_true(ts_sees_eof(fd));
    finish(&s, srv, fd);
}

/* A second stop during the grace means now. */
static void test_sync_second_stop_ends_the_grace(void **state)
{
    (void)state;
    ss_server *srv = sync_server(LONG_GRACE_MS);
    stopping s;
    int fd = serve_silent_client(&s, srv, 0);
    ss_server_request_shutdown(srv);
    assert_false(ts_wait_until(flag_set, &s.loop_returned, 300)); /* in its grace */
    long long stopped_at = ts_now_ms();
    ss_server_request_shutdown(srv);
    assert_true(loop_took(&s, stopped_at) < LONG_GRACE_MS / 3);
    assert_true(ts_sees_eof(fd));
    finish(&s, srv, fd);
}

/* Grace 0: the stop ends a busy wait at once, as before the option. */
static void test_sync_no_grace_stops_at_once(void **state)
{
    (void)state;
    ss_server *srv = sync_server(0);
    stopping s;
    int fd = serve_silent_client(&s, srv, 0);
    long long stopped_at = ts_now_ms();
    ss_server_request_shutdown(srv);
    assert_true(loop_took(&s, stopped_at) < 3000);
    finish(&s, srv, fd);
}

/* A silent client the drain took from the backlog waits for the drain's
 * deadline, not for the grace: a stop during the drain ends it at once
 * (drain returns -ECANCELED), long before either. */
static void test_sync_stop_during_drain_is_now(void **state)
{
    (void)state;
    ss_server *srv = sync_server(LONG_GRACE_MS);
    stopping s;
    stopping_start(&s, srv, 6 * LONG_GRACE_MS);
    int idle = ts_connect(srv);
    td_round_trip(idle, "hi\n");
    int silent = ts_connect(srv); /* in the backlog: the loop serves `idle` */
    ss_server_request_shutdown(srv);
    assert_true(ts_wait_until(flag_set, &s.loop_returned, 5000));
    assert_true(td_wait_accepted(srv, 2, 5000)); /* the drain serves it */
    assert_false(ts_wait_until(flag_set, &s.done, 300));
    long long stopped_at = ts_now_ms();
    ss_server_request_shutdown(srv);
    assert_true(ts_wait_until(flag_set, &s.done, LONG_GRACE_MS / 3));
    assert_true(ts_now_ms() - stopped_at < LONG_GRACE_MS / 3);
    pthread_join(s.thread, NULL);
    assert_int_equal(s.drain_rc, -ECANCELED);
    assert_int_equal(td_stats(srv).interrupted, 1);
    assert_true(ts_sees_eof(silent));
    close(silent);
    close(idle);
    ss_server_free(srv);
}

static void test_negative_grace_is_refused(void **state)
{
    (void)state;
    ss_server *srv = sync_server(0);
    assert_int_equal(ss_server_set_stop_grace(srv, -1), -EINVAL);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_bytes_after_stop_are_served),
        cmocka_unit_test(test_sync_silent_client_gets_the_grace),
        cmocka_unit_test(test_sync_idle_client_ends_at_once),
        cmocka_unit_test(test_sync_second_stop_ends_the_grace),
        cmocka_unit_test(test_sync_no_grace_stops_at_once),
        cmocka_unit_test(test_sync_stop_during_drain_is_now),
        cmocka_unit_test(test_negative_grace_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
