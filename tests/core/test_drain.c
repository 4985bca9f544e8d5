/* Graceful stop (ss_server_drain) on every dispatcher that runs requests
 * beside its loop (threading, forking, pool) and every stream transport:
 * requests in flight finish during the drain; past the deadline, or at a
 * second stop request, they are interrupted (sockets shut down, children
 * signalled); and after close nothing is left: no thread, no zombie, no
 * descriptor. Handlers may run in a forked child: they never call cmocka.
 *   test_drain              all of it
 *   test_drain DISPATCHER   that dispatcher's part of the table
 *   test_drain others       the tests outside the table */
#include "dispatch_support.h"
#include "table_support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* ---- what the process holds ---- */

typedef struct baseline {
    int fds, threads;
} baseline;

static baseline take_baseline(void)
{
    return (baseline){ts_count_fds(), td_threads()};
}

static bool threads_at_most(void *arg)
{
    return td_threads() <= *(int *)arg;
}

/* After close: the process holds what it held before the server. The
 * clients' own sockets are closed by then. A thread that has ended its
 * request and left (detached) may still be on its way out, in this test
 * or, at the baseline, in the one before: bounded waits, at most. */
static void assert_nothing_left(baseline before)
{
    assert_true(td_wait_fds(before.fds, 5000));
    assert_true(ts_wait_until(threads_at_most, &before.threads, 5000));
    assert_true(td_zombies() <= 0);
}

/* ---- handlers ---- */

/* Reads one line, works on it for 400 ms, answers it. */
static int slow_echo(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return (int)n;
    usleep(400 * 1000);
    return ss_request_send_all(req, line, (size_t)n);
}
static const ss_handler slow_handler = {.version = SS_HANDLER_VERSION, .handle = slow_echo};

/* td_hold, in a child that ignores SIGTERM: only SIGKILL ends it. */
static int stubborn_hold(ss_request *req, void *data)
{
    signal(SIGTERM, SIG_IGN);
    return td_hold.handle(req, data);
}
static const ss_handler stubborn_handler = {.version = SS_HANDLER_VERSION, .handle = stubborn_hold};

static ss_server *server_at(const char *url, const char *mode, const ss_handler *h)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), h, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, 4), 0);
    /* a child left holding a client by a failed test still ends */
    ss_server_set_request_timeout(srv, 10000);
    ss_server_on_handle_error(srv, td_quiet_error); /* interrupted handlers fail */
    /* The clients held here (answered once, then waiting) stand for busy
     * requests: with idle close off, as before it existed, they wait for
     * the deadline. test_drain_idle.c tests idle close. */
    ss_server_set_drain_close_idle(srv, false);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static ss_server *server(const char *mode, const ss_handler *h)
{
    return server_at("tcp://127.0.0.1:0", mode, h);
}

/* `n` clients connected, each answered once and held by the handler. */
static void hold_clients(ss_server *srv, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "hi\n");
    }
    assert_true(td_wait_active(srv, (uint64_t)n, 5000));
}

/* A server whose loop has stopped (the first stop) while `n` clients are
 * held: what every drain starts from. */
static ss_server *stopped_holding_at(const char *url, const char *mode, const ss_handler *h,
                                     int *fds, int n)
{
    ss_server *srv = server_at(url, mode, h);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    hold_clients(srv, fds, n);
    assert_int_equal(ts_stop(&runner), 0);
    return srv;
}

static ss_server *stopped_holding(const char *mode, const ss_handler *h, int *fds, int n)
{
    return stopped_holding_at("tcp://127.0.0.1:0", mode, h, fds, n);
}

/* ---- requests in flight finish during the drain ---- */

static void in_flight_requests_finish(void **state)
{
    tc_combo *c = *state;
    baseline before = take_baseline();
    ss_server *srv = server_at(tc_url(c), c->dispatcher, &slow_handler);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = ts_connect(srv);
        ts_send(fds[i], "slow\n", 5);
    }
    assert_true(td_wait_active(srv, 3, 5000)); /* all three in their 400 ms of work */
    assert_int_equal(ts_stop(&runner), 0);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 60000), 0);
    assert_true(ts_now_ms() - start < 10000); /* woken as they end, not at the deadline */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handled, 3); /* before close: drain waited for them */
    assert_int_equal(st.active, 0);
    assert_int_equal(st.interrupted, 0);
    for (int i = 0; i < 3; i++) {
        td_expect(fds[i], "slow\n");
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
    assert_int_equal(ss_server_serve_forever(srv, 100), SS_ESTATE); /* no new requests */
    assert_int_equal(ss_server_handle_request(srv), SS_ESTATE);
    ss_server_free(srv);
    tc_cleanup(c);
    assert_nothing_left(before);
}

/* ---- the deadline interrupts what is still running ---- */

static void deadline_interrupts(void **state)
{
    tc_combo *c = *state;
    baseline before = take_baseline();
    int fds[2];
    ss_server *srv = stopped_holding_at(tc_url(c), c->dispatcher, &td_hold, fds, 2);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 300), -ETIMEDOUT);
    long long took = ts_now_ms() - start;
    assert_true(took >= 250 && took < 3000);
    for (int i = 0; i < 2; i++)
        assert_true(ts_sees_eof(fds[i])); /* shut down, or the child ended */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.interrupted, 2);
    assert_int_equal(st.active, 0);
    start = ts_now_ms();
    ss_server_close(srv); /* nothing left to wait for */
    assert_true(ts_now_ms() - start < 5000);
    for (int i = 0; i < 2; i++)
        close(fds[i]);
    ss_server_free(srv);
    tc_cleanup(c);
    assert_nothing_left(before);
}

/* ---- a second stop request: now ---- */

typedef struct drainer {
    ss_server *srv;
    int timeout_ms, result;
    pthread_t thread;
    atomic_bool done;
} drainer;

static void *drain_in_thread(void *arg)
{
    drainer *d = arg;
    d->result = ss_server_drain(d->srv, d->timeout_ms);
    atomic_store(&d->done, true);
    return NULL;
}

static bool drain_done(void *arg)
{
    return atomic_load(&((drainer *)arg)->done);
}

static void second_stop_is_immediate(void **state)
{
    tc_combo *c = *state;
    baseline before = take_baseline();
    int fds[2];
    ss_server *srv =
        stopped_holding_at(tc_url(c), c->dispatcher, &td_hold, fds, 2); /* first stop */
    drainer d = {.srv = srv, .timeout_ms = 60000};
    atomic_init(&d.done, false);
    assert_int_equal(pthread_create(&d.thread, NULL, drain_in_thread, &d), 0);
    assert_false(ts_wait_until(drain_done, &d, 300));  /* it waits for the clients */
    ss_server_request_shutdown(srv);                   /* the second: as from a signal handler */
    assert_true(ts_wait_until(drain_done, &d, 10000)); /* far before the 60 s deadline */
    pthread_join(d.thread, NULL);
    assert_int_equal(d.result, -ECANCELED);
    for (int i = 0; i < 2; i++) {
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
    ss_server_free(srv);
    tc_cleanup(c);
    assert_nothing_left(before);
}

/* A stop requested after the loop ended and before drain: the same. */
static void test_stop_pending_before_drain(void **state)
{
    (void)state;
    int fd;
    ss_server *srv = stopped_holding("threading", &td_hold, &fd, 1);
    ss_server_request_shutdown(srv);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 60000), -ECANCELED);
    assert_true(ts_now_ms() - start < 10000);
    assert_true(ts_sees_eof(fd));
    close(fd);
    ss_server_free(srv);
}

/* ---- children: SIGTERM, then SIGKILL, and only ours ---- */

/* The test's own child, blocked until we close its pipe: the drain must
 * not signal it. */
static pid_t start_own_child(int *release)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(p[1]);
        ssize_t ignored = read(p[0], &c, 1);
        (void)ignored;
        _exit(72);
    }
    close(p[0]);
    *release = p[1];
    return pid;
}

static void test_child_ignoring_sigterm_is_killed(void **state)
{
    (void)state;
    int release;
    pid_t own = start_own_child(&release);
    baseline before = take_baseline();
    int fd;
    ss_server *srv = stopped_holding("forking", &stubborn_handler, &fd, 1);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 0), -ETIMEDOUT);
    long long took = ts_now_ms() - start;
    assert_true(took >= 900 && took < 4000); /* SIGTERM ignored, SIGKILL after 1 s */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.children_failed, 1);
    assert_int_equal(st.tracked, 0);
    ss_server_free(srv);
    close(fd);
    assert_nothing_left(before);
    int status;
    assert_int_equal(waitpid(own, &status, WNOHANG), 0); /* untouched, still running */
    close(release);
    assert_int_equal(waitpid(own, &status, 0), own);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 72);
}

/* ---- small cases ---- */

static void test_nothing_in_flight_returns_at_once(void **state)
{
    (void)state;
    const char *modes[] = {"sync", "threading", "pool", "forking"};
    for (size_t i = 0; i < 4; i++) {
        ss_server *srv = server(modes[i], &td_echo_line);
        td_serve_once(srv, "x\n", "x\n");
        long long start = ts_now_ms();
        assert_int_equal(ss_server_drain(srv, 60000), 0);
        assert_int_equal(ss_server_drain(srv, 60000), 0); /* again: nothing to do */
        assert_true(ts_now_ms() - start < 10000);
        ss_server_free(srv);
    }
}

static void test_drain_state(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &td_hold, NULL), 0);
    assert_int_equal(ss_server_drain(srv, 0), SS_ESTATE); /* not active */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd;
    hold_clients(srv, &fd, 1); /* the loop is surely running now */
    assert_int_equal(ss_server_drain(srv, 0), SS_ESTATE);
    td_release(fd);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv);
    assert_int_equal(ss_server_drain(srv, 0), SS_ESTATE); /* closed */
    ss_server_free(srv);
}

/* A client that connects once the drain has served the backlog is
 * refused at once: the listener is closed (a balancer retries a refused
 * connect elsewhere), while the request in flight still finishes. */
static void test_no_new_requests_during_drain(void **state)
{
    (void)state;
    int held;
    ss_server *srv = stopped_holding("threading", &td_hold, &held, 1);
    char url[128];
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    drainer d = {.srv = srv, .timeout_ms = 60000};
    atomic_init(&d.done, false);
    assert_int_equal(pthread_create(&d.thread, NULL, drain_in_thread, &d), 0);
    int late = -1;
    long long end = ts_now_ms() + 5000;
    while ((late = ss_connect(url)) >= 0 && ts_now_ms() < end) {
        close(late); /* queued before the close: the drain serves it (it says nothing) */
        usleep(1000);
    }
    assert_int_equal(late, -ECONNREFUSED);
    assert_false(drain_done(&d)); /* the held request still runs */
    td_release(held);             /* the drain's last request ends */
    assert_true(ts_wait_until(drain_done, &d, 5000));
    pthread_join(d.thread, NULL);
    assert_int_equal(d.result, 0);
    ss_server_free(srv);
}

/* Requests ending on their own while the drain interrupts the others: the
 * drain must never touch a descriptor its request has already closed (the
 * system may have given the number to some other file). Run under the
 * sanitizers, this is a race hunt; here it also checks that nothing leaks.
 * The client threads use plain sockets and tolerate every error. */
typedef struct churner {
    char url[128];
    atomic_bool stop;
    atomic_int round_trips;
} churner;

static void *churn(void *arg)
{
    churner *c = arg;
    struct timeval tv = {.tv_usec = 200 * 1000}; /* notice the stop soon */
    while (!atomic_load(&c->stop)) {
        int fd = ss_connect(c->url);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[8];
        if (send(fd, "ping\n", 5, MSG_NOSIGNAL) == 5 && recv(fd, buf, sizeof buf, 0) > 0)
            atomic_fetch_add(&c->round_trips, 1);
        close(fd);
    }
    return NULL;
}

static bool churned(void *arg)
{
    return atomic_load(&((churner *)arg)->round_trips) >= 200;
}

static void test_interrupt_races_with_requests_ending(void **state)
{
    (void)state;
    baseline before = take_baseline();
    ss_server *srv = server("threading", &td_echo_line);
    churner c;
    assert_true(ss_server_address(srv, c.url, sizeof c.url) > 0);
    atomic_init(&c.stop, false);
    atomic_init(&c.round_trips, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    pthread_t clients[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&clients[i], NULL, churn, &c), 0);
    assert_true(ts_wait_until(churned, &c, 20000));
    assert_int_equal(ts_stop(&runner), 0);
    int rc = ss_server_drain(srv, 0); /* whatever is live now is interrupted */
    assert_true(rc == 0 || rc == -ETIMEDOUT);
    atomic_store(&c.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(clients[i], NULL);
    ss_server_free(srv);
    assert_nothing_left(before);
}

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    /* A sanitizer's runtime may start a helper thread with the first
     * pthread_create: let that happen before any baseline is taken. */
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) == 0)
        pthread_join(t, NULL);
    const struct CMUnitTest others[] = {
        cmocka_unit_test(test_stop_pending_before_drain),
        cmocka_unit_test(test_child_ignoring_sigterm_is_killed),
        cmocka_unit_test(test_nothing_in_flight_returns_at_once),
        cmocka_unit_test(test_drain_state),
        cmocka_unit_test(test_no_new_requests_during_drain),
        cmocka_unit_test(test_interrupt_races_with_requests_ending),
    };
    /* the sync dispatcher runs its one request in the loop: none is in
     * flight once the loop has stopped */
    static const tc_behaviour behaviours[] = {
        {"in_flight_requests_finish", in_flight_requests_finish, "sync"},
        {"deadline_interrupts", deadline_interrupts, "sync"},
        {"second_stop_is_immediate", second_stop_is_immediate, "sync"},
    };
    const char *only = argc > 1 ? argv[1] : NULL;
    int failed = 0;
    if (only == NULL || strcmp(only, "others") != 0)
        failed +=
            tc_run_table("test_drain", behaviours, sizeof behaviours / sizeof behaviours[0], only);
    if (only == NULL || strcmp(only, "others") == 0)
        failed += cmocka_run_group_tests(others, NULL, NULL);
    return failed;
}
