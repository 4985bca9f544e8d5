/* Drain, graceful the way nginx and Go are (issue 14, item 3), and the
 * listener's restart rule (item 4), on every dispatcher:
 *   - a client idle after a complete exchange ends at once when a drain
 *     begins: its handler's read returns 0 (the handler sees the client
 *     "close"), counted in ss_stats.idle_closed; the drain returns long
 *     before its deadline;
 *   - a client in the middle of a message gets the deadline, and one whose
 *     next message is already there when its request becomes idle is
 *     served;
 *   - a client connected but silent is not idle: served when it speaks;
 *   - ss_server_set_drain_close_idle(srv, false) restores the old wait;
 *   - the clients queued in the listen backlog when the drain begins are
 *     accepted and served (sync, a full pool, forking at max_children),
 *     then the listener closes: a later connect is refused.
 * Handlers may run in a forked child: they never call cmocka. */
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
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define LONG_DRAIN_MS 60000 /* "long before its deadline": every wait here is far shorter */
#define AT_ONCE_MS    3000  /* generous for a loaded machine, far below LONG_DRAIN_MS */

/* ---- handlers ---- */

/* Echoes lines until the client closes (read_line returns 0), each
 * answer delay_us late. */
static int echo_lines_after(ss_request *req, useconds_t delay_us)
{
    char line[128];
    ssize_t n;
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) {
        usleep(delay_us);
        int rc = ss_request_send_all(req, line, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

static int echo_lines(ss_request *req, void *data)
{
    (void)data;
    return echo_lines_after(req, 0);
}
static const ss_handler lines = {.version = SS_HANDLER_VERSION, .handle = echo_lines};

/* Each answer 300 ms late: a request busy working. */
static int slow_echo_lines(ss_request *req, void *data)
{
    (void)data;
    return echo_lines_after(req, 300 * 1000);
}
static const ss_handler slow_lines = {.version = SS_HANDLER_VERSION, .handle = slow_echo_lines};

/* ---- the server ---- */

static ss_server *server_at(const char *url, const char *mode, const ss_handler *h, int limit)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), h, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, limit > 0 ? 1 : 4), 0);
    if (limit > 0) { /* one request at a time, one more queued (pool) */
        assert_int_equal(ss_server_set_pool_fibers(srv, 1), 0);
        assert_int_equal(ss_server_set_queue_size(srv, 1), 0);
        assert_int_equal(ss_server_set_max_children(srv, 1), 0);
    }
    ss_server_set_request_timeout(srv, 20000); /* a failed test's child still ends */
    ss_server_on_handle_error(srv, td_quiet_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static ss_server *server(const char *mode, const ss_handler *h, int limit)
{
    return server_at("tcp://127.0.0.1:0", mode, h, limit);
}

/* ---- the drain in a thread, to talk to clients meanwhile ---- */

typedef struct drainer {
    ss_server *srv;
    int timeout_ms, result;
    long long took_ms;
    pthread_t thread;
    atomic_bool done;
} drainer;

static void *drain_main(void *arg)
{
    drainer *d = arg;
    long long start = ts_now_ms();
    d->result = ss_server_drain(d->srv, d->timeout_ms);
    d->took_ms = ts_now_ms() - start;
    atomic_store(&d->done, true);
    return NULL;
}

static bool drained(void *arg)
{
    return atomic_load(&((drainer *)arg)->done);
}

static void drain_start(drainer *d, ss_server *srv, int timeout_ms)
{
    *d = (drainer){.srv = srv, .timeout_ms = timeout_ms};
    atomic_init(&d->done, false);
    assert_int_equal(pthread_create(&d->thread, NULL, drain_main, d), 0);
}

/* Joins the drain, which must have ended within wait_ms; its result. */
static int drain_end(drainer *d, int wait_ms)
{
    assert_true(ts_wait_until(drained, d, wait_ms));
    pthread_join(d->thread, NULL);
    return d->result;
}

/* ---- clients ---- */

/* The server closed the connection cleanly (recv returns 0, no reset):
 * what a handler returning on end of stream leaves. */
static void expect_eof(int fd)
{
    char c;
    ssize_t n;
    do
        n = recv(fd, &c, 1, 0);
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, 0);
}

/* n clients, each through one exchange, their handlers waiting for more. */
static void idle_clients(ss_server *srv, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "one\n");
    }
    assert_true(td_wait_active(srv, (uint64_t)n, 5000));
}

static ss_server *stopped(const char *mode, const ss_handler *h, int *fds, int idle)
{
    ss_server *srv = server(mode, h, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    idle_clients(srv, fds, idle);
    assert_int_equal(ts_stop(&runner), 0);
    return srv;
}

/* One client accepted, having sent `first` (NULL: nothing), when the
 * loop stops. */
static ss_server *stopped_with_one(const char *mode, const ss_handler *h, const char *first,
                                   int *fd)
{
    ss_server *srv = server(mode, h, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    *fd = ts_connect(srv);
    if (first != NULL)
        ts_send(*fd, first, strlen(first));
    assert_true(td_wait_active(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    return srv;
}

/* A drain that waits for fd's request, not idle: the client hears
 * nothing and the drain goes on; then the client sends `send` and hears
 * `want`, after which the request is idle and ends at once, and so does
 * the drain. Frees srv. */
static void served_in_drain(ss_server *srv, int fd, const char *send, const char *want)
{
    drainer d;
    drain_start(&d, srv, LONG_DRAIN_MS);
    assert_true(td_quiet_for(fd, 300)); /* neither answered nor closed */
    assert_false(drained(&d));
    ts_send(fd, send, strlen(send));
    td_expect(fd, want);
    assert_int_equal(drain_end(&d, AT_ONCE_MS), 0);
    expect_eof(fd);
    close(fd);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 1);
    assert_int_equal(st.interrupted, 0);
    assert_int_equal(st.handled, 1);
    ss_server_free(srv);
}

/* ---- idle clients end at once ---- */

static void idle_clients_end_at_once(void **state)
{
    int fds[3];
    ss_server *srv = stopped(*state, &lines, fds, 3);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, LONG_DRAIN_MS), 0);
    assert_true(ts_now_ms() - start < AT_ONCE_MS);
    for (int i = 0; i < 3; i++) {
        expect_eof(fds[i]); /* the handler saw end of stream and returned */
        close(fds[i]);
    }
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 3);
    assert_int_equal(st.interrupted, 0);
    assert_int_equal(st.handled, 3); /* a clean end, not an error */
    assert_int_equal(st.active, 0);
    ss_server_free(srv);
}

/* The drain's deadline interrupts fd's request, which was not closed as
 * idle. Frees srv. */
static void interrupted_at_deadline(ss_server *srv, int fd)
{
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 400), -ETIMEDOUT);
    assert_true(ts_now_ms() - start >= 350);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 0);
    assert_int_equal(st.interrupted, 1);
    assert_true(ts_sees_eof(fd));
    close(fd);
    ss_server_free(srv);
}

/* The old behaviour, asked for: idle clients wait for the deadline. The
 * option is read as the drain begins. */
static void opt_out_waits_for_deadline(void **state)
{
    int fd;
    ss_server *srv = stopped(*state, &lines, &fd, 1);
    ss_server_set_drain_close_idle(srv, false);
    interrupted_at_deadline(srv, fd);
}

/* ---- busy clients get the deadline ---- */

/* Half a line sent: mid-message, not idle. It is served when the rest
 * comes; then it is idle, and ends at once. */
static void mid_message_gets_deadline(void **state)
{
    int fd;
    ss_server *srv = stopped(*state, &lines, &fd, 1);
    ts_send(fd, "par", 3);
    assert_true(td_quiet_for(fd, 100));              /* read by now: a partial line in the reader */
    served_in_drain(srv, fd, "tial\n", "partial\n"); /* the rest */
}

/* The partial line never completes: interrupted at the deadline. */
static void mid_message_interrupted_at_deadline(void **state)
{
    int fd;
    ss_server *srv = stopped(*state, &lines, &fd, 1);
    ts_send(fd, "par", 3);
    assert_true(td_quiet_for(fd, 100));
    interrupted_at_deadline(srv, fd);
}

/* Working when the drain begins, with its client's next line already
 * sent: when the request turns to read it, that line is there, so it is
 * busy, not idle, and served; then idle, and closed. */
static void next_message_waiting_is_served(void **state)
{
    int fd;
    ss_server *srv = stopped_with_one(*state, &slow_lines, "a\n", &fd);
    drainer d;
    drain_start(&d, srv, LONG_DRAIN_MS);
    ts_send(fd, "b\n", 2); /* before "a" is answered */
    td_expect(fd, "a\n");
    td_expect(fd, "b\n");
    assert_int_equal(drain_end(&d, AT_ONCE_MS + 1000), 0);
    expect_eof(fd);
    close(fd);
    assert_int_equal(td_stats(srv).idle_closed, 1);
    ss_server_free(srv);
}

/* ---- silent clients are not idle ---- */

/* Accepted, nothing sent yet (a balancer may have sent it before it knew
 * of the stop): served when it speaks, then closed as idle. */
static void silent_client_is_served(void **state)
{
    int fd;
    ss_server *srv = stopped_with_one(*state, &lines, NULL, &fd);
    served_in_drain(srv, fd, "late\n", "late\n");
}

/* ---- the backlog is served, then the listener closes ---- */

/* B sent its line and C nothing, both waiting in the backlog. */
static void queue_two(ss_server *srv, int *b, int *c)
{
    *b = ts_connect(srv);
    ts_send(*b, "b\n", 2);
    *c = ts_connect(srv);
    assert_true(td_quiet_for(*b, 300)); /* nobody serves it yet */
}

/* B and C wait in the backlog, unaccepted, when the loop stops: queued
 * while the server was busy (sync serving A; a one-worker pool with its
 * queue full; forking at max_children 1), or (threading, which always
 * has room) after its loop stopped. The drain ends A (idle; sync: the
 * stop ended it), serves B and C, and closes the listener. */
static void backlog_is_served(void **state)
{
    const char *mode = *state;
    bool busy = strcmp(mode, "threading") != 0;
    ss_server *srv = server(mode, &lines, 1);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int a, q = -1, b, c;
    idle_clients(srv, &a, 1);
    if (strcmp(mode, "pool") == 0) { /* fills the pool's queue */
        q = ts_connect(srv);
        ts_send(q, "q\n", 2);
        assert_true(td_wait_accepted(srv, 2, 5000));
    }
    uint64_t accepted = td_stats(srv).accepted;
    if (busy)
        queue_two(srv, &b, &c);
    assert_int_equal(ts_stop(&runner), 0);
    if (!busy)
        queue_two(srv, &b, &c);
    assert_int_equal(td_stats(srv).accepted, accepted); /* B and C: in the backlog */
    char url[128];
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    drainer d;
    drain_start(&d, srv, LONG_DRAIN_MS);
    if (q >= 0)
        td_expect(q, "q\n");
    td_expect(b, "b\n");
    td_round_trip(c, "c\n");
    assert_int_equal(drain_end(&d, AT_ONCE_MS + 2000), 0);
    int fds[] = {a, q, b, c};
    for (size_t i = 0; i < 4; i++)
        if (fds[i] >= 0) {
            assert_true(ts_sees_eof(fds[i]));
            close(fds[i]);
        }
    assert_int_equal(ss_connect(url), -ECONNREFUSED); /* the listener is closed */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.accepted, accepted + 2);
    assert_int_equal(st.interrupted, 0);
    ss_server_free(srv);
}

/* sync runs a backlog client's handler on the drain's own thread: a
 * client that never speaks still ends at the deadline, counted as
 * interrupted. */
static void test_sync_backlog_client_ends_at_deadline(void **state)
{
    (void)state;
    ss_server *srv = server("sync", &lines, 1);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int a, silent;
    idle_clients(srv, &a, 1);
    silent = ts_connect(srv); /* queued behind a */
    assert_int_equal(ts_stop(&runner), 0);
    long long start = ts_now_ms();
    assert_int_equal(ss_server_drain(srv, 400), -ETIMEDOUT);
    long long took = ts_now_ms() - start;
    assert_true(took >= 350 && took < AT_ONCE_MS);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.accepted, 2); /* it was served: accepted by the drain */
    assert_int_equal(st.interrupted, 1);
    assert_true(ts_sees_eof(silent));
    close(silent);
    close(a);
    ss_server_free(srv);
}

/* Unix stream listeners (a path, and an abstract name on Linux): an idle
 * client ends at once, and the listener is closed after the drain. */
static void unix_idle_client_and_listener(const char *url, const char *mode)
{
    ss_server *srv = server_at(url, mode, &lines, 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd;
    idle_clients(srv, &fd, 1);
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(ss_server_drain(srv, LONG_DRAIN_MS), 0);
    expect_eof(fd);
    close(fd);
    assert_int_equal(td_stats(srv).idle_closed, 1);
    assert_int_equal(ss_connect(url), -ECONNREFUSED);
    ss_server_free(srv);
}

static void test_unix_listeners(void **state)
{
    (void)state;
    char dir[256], url[300];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(url, sizeof url, "unix:%s/s", dir);
    unix_idle_client_and_listener(url, "threading");
    unix_idle_client_and_listener(url, "forking");
    ts_rmdir(dir);
#ifdef __linux__
    snprintf(url, sizeof url, "unix:@ss-drain-idle-%ld", (long)getpid());
    unix_idle_client_and_listener(url, "pool");
#endif
}

#define EVERY_CONCURRENT(f)                                                                        \
    TS_MODE_TEST(f, "threading"), TS_MODE_TEST(f, "pool"), TS_MODE_TEST(f, "forking")

int main(void)
{
    const struct CMUnitTest tests[] = {
        EVERY_CONCURRENT(idle_clients_end_at_once),
        EVERY_CONCURRENT(opt_out_waits_for_deadline),
        EVERY_CONCURRENT(mid_message_gets_deadline),
        EVERY_CONCURRENT(mid_message_interrupted_at_deadline),
        EVERY_CONCURRENT(next_message_waiting_is_served),
        EVERY_CONCURRENT(silent_client_is_served),
        TS_MODE_TEST(backlog_is_served, "sync"),
        EVERY_CONCURRENT(backlog_is_served),
        cmocka_unit_test(test_sync_backlog_client_ends_at_deadline),
        cmocka_unit_test(test_unix_listeners),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
