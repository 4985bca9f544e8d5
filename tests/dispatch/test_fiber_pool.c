/* The pool dispatcher's fibers: each worker serves many connections at
 * once, parking a handler whose request I/O would block. Handler code is
 * the same blocking-style code as everywhere; these tests prove that idle
 * clients no longer hold workers, that every I/O call of the library parks
 * instead of blocking, and that timeouts, errors, hang-ups and close behave
 * as documented with fibers parked. */
#include "dispatch_support.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define BIG (16u << 20)

/* ---- handlers ---- */

static void fill_pattern(char *buf, size_t size, size_t offset)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (char)('a' + (offset + i) % 26);
}

/* 16 MiB of a known pattern, in 64 KiB send_all calls. */
static int send_big(ss_request *req)
{
    static _Thread_local char chunk[64 * 1024];
    for (size_t sent = 0; sent < BIG; sent += sizeof chunk) {
        fill_pattern(chunk, sizeof chunk, sent);
        int rc = ss_request_send_all(req, chunk, sizeof chunk);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Lines come back as they are, until EOF; "big\n" gets 16 MiB. Reads
 * with read_line, answers with the buffered writer and flush. */
static int lines(ss_request *req, void *data)
{
    (void)data;
    char line[256];
    ssize_t n;
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) {
        int rc = n == 4 && memcmp(line, "big\n", 4) == 0 ? send_big(req) : 0;
        if (rc == 0 && ss_request_write(req, line, (size_t)n) < 0)
            return -EIO;
        if (rc == 0)
            rc = ss_request_flush(req);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

/* A line (read_line), then 8 bytes (read_exact), then whatever comes
 * (recv): each answered with send_all. */
static int mixed(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n = ss_request_read_line(req, buf, sizeof buf);
    int rc = n > 0 ? ss_request_send_all(req, buf, (size_t)n) : (int)n;
    if (rc == 0)
        n = ss_request_read_exact(req, buf, 8);
    if (rc == 0)
        rc = n == 8 ? ss_request_send_all(req, buf, 8) : (n < 0 ? (int)n : -EPROTO);
    if (rc == 0)
        n = ss_request_recv(req, buf, sizeof buf);
    if (rc == 0)
        rc = n > 0 ? ss_request_send_all(req, buf, (size_t)n) : -EPROTO;
    return rc;
}

/* recv with a buffer far smaller than the stream buffer (a fiber reads
 * through the stream buffer then), with one read_line in between: every
 * byte comes back once, in order, until EOF. */
static int small_reads(ss_request *req, void *data)
{
    (void)data;
    char buf[5];
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    int rc = n > 0 ? ss_request_send_all(req, buf, (size_t)n) : (int)n;
    char line[64];
    n = rc == 0 ? ss_request_read_line(req, line, sizeof line) : 0;
    rc = n > 0 ? ss_request_send_all(req, line, (size_t)n) : rc;
    while (rc == 0 && (n = ss_request_recv(req, buf, sizeof buf)) > 0)
        rc = ss_request_send_all(req, buf, (size_t)n);
    return rc < 0 ? rc : (int)n;
}

/* Reads one line, then fails. */
static int fail_after_line(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n < 0 ? (int)n : -EPROTO;
}

/* Publishes its socket, then waits for a line that never comes. */
static atomic_int published_fd = -1;
static int publish_and_read(ss_request *req, void *data)
{
    (void)data;
    atomic_store(&published_fd, ss_request_fileno(req));
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n == 0 ? 0 : -EPROTO; /* the hang-up reads as end of stream */
}

static const ss_handler lines_handler = {.version = SS_HANDLER_VERSION, .handle = lines};
static const ss_handler mixed_handler = {.version = SS_HANDLER_VERSION, .handle = mixed};
static const ss_handler small_reads_handler = {.version = SS_HANDLER_VERSION,
                                               .handle = small_reads};
static const ss_handler failing_handler = {.version = SS_HANDLER_VERSION,
                                           .handle = fail_after_line};
static const ss_handler publish_handler = {.version = SS_HANDLER_VERSION,
                                           .handle = publish_and_read};

/* ---- helpers ---- */

static atomic_int errors_seen, last_error;

static void count_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    (void)data;
    atomic_store(&last_error, err);
    atomic_fetch_add(&errors_seen, 1);
}

static ss_server *fiber_pool(const ss_handler *h, int workers, int queue)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), h, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, workers), 0);
    assert_int_equal(ss_server_set_queue_size(srv, queue), 0);
    atomic_store(&errors_seen, 0);
    atomic_store(&last_error, 0);
    ss_server_on_handle_error(srv, count_error);
    return srv;
}

static void activate(ss_server *srv)
{
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
}

/* A pool of one worker, no queue, serving in `runner`: every client of
 * the test shares that worker's thread. */
static ss_server *serving_on_one_worker(const ss_handler *h, ts_runner *runner)
{
    ss_server *srv = fiber_pool(h, 1, 0);
    activate(srv);
    ts_start(runner, srv, 5000);
    return srv;
}

static int threads_now(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return n;
}

#if SS_HAVE_FIBERS
#define NEED_FIBERS() ((void)0)
#else
#define NEED_FIBERS() skip() /* a worker per connection: nothing to test */
#endif

/* ---- many connections, few workers ---- */

/* 1000 persistent clients, 2 workers: all connect and sit idle, then all
 * speak at once. Every one is answered (a worker per connection would
 * answer 2 and starve 998), twice, on the same connections. */
static void test_1000_connections_2_workers(void **state)
{
    (void)state;
    NEED_FIBERS();
    enum { N = 1000 };
    if (!ts_raise_fd_limit(2 * N + 256))
        skip(); /* the hard limit leaves no room for both ends */
    ss_server *srv = fiber_pool(&lines_handler, 2, 0);
    activate(srv);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = ts_connect(srv);
    assert_true(td_wait_accepted(srv, N, 30000)); /* none left in the backlog */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++)
            ts_send(fds[i], "ping\n", 5);
        assert_int_equal(ts_count_answers(fds, N, "ping\n"), N);
    }
    assert_int_equal(td_stats(srv).tracked, 2); /* still two threads */
    for (int i = 0; i < N; i++)
        close(fds[i]);
    td_finish(&runner, srv, N, 30000);
}

/* The cap: one worker with 2 fibers and a queue of 1 takes 3 clients;
 * the 4th waits in the backlog until one ends. */
static void test_fiber_cap_stops_accepting(void **state)
{
    (void)state;
    NEED_FIBERS();
    ss_server *srv = fiber_pool(&td_hold, 1, 1);
    assert_int_equal(ss_server_set_pool_fibers(srv, 2), 0);
    activate(srv);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int c[4];
    for (int i = 0; i < 2; i++) {
        c[i] = ts_connect(srv);
        td_round_trip(c[i], "hi\n"); /* both served at once by one worker */
    }
    c[2] = ts_connect(srv);
    ts_send(c[2], "q\n", 2);
    c[3] = ts_connect(srv);
    ts_send(c[3], "w\n", 2);
    assert_true(td_wait_accepted(srv, 3, 5000));
    assert_true(td_quiet_for(c[2], 300)); /* queued, not started */
    assert_int_equal(td_stats(srv).accepted, 3);
    td_release(c[0]); /* a fiber ends: the queued one starts, the 4th is queued */
    td_expect(c[2], "q\n");
    assert_true(td_wait_accepted(srv, 4, 5000));
    assert_true(td_quiet_for(c[3], 300));
    td_release(c[1]);
    td_expect(c[3], "w\n");
    td_release(c[2]);
    td_release(c[3]);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* One fiber per worker, 20 workers, 20 clients arriving at once: each
 * wake-up promises a worker's slot, so no request is left waiting for a
 * worker that was already woken for another and is now full. */
static void test_twenty_workers_one_fiber_each(void **state)
{
    (void)state;
    ss_server *srv = fiber_pool(&td_hold, 20, 0);
    assert_int_equal(ss_server_set_pool_fibers(srv, 1), 0);
    activate(srv);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int c[20];
    for (int i = 0; i < 20; i++) {
        c[i] = ts_connect(srv);
        ts_send(c[i], "hi\n", 3);
    }
    for (int i = 0; i < 20; i++)
        td_expect(c[i], "hi\n");
    for (int i = 0; i < 20; i++)
        td_release(c[i]);
    assert_true(td_wait_closed(srv, 20, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* ---- every I/O call parks ---- */

/* One worker: while client A's handler is parked in the middle of each
 * call (half a line, half the exact bytes, nothing for recv), client B is
 * served in full by the same worker. */
static void test_io_calls_park(void **state)
{
    (void)state;
    NEED_FIBERS();
    ts_runner runner;
    ss_server *srv = serving_on_one_worker(&mixed_handler, &runner);
    int a = ts_connect(srv);
    const char *steps[][2] = {{"hal", "f\n"}, {"1234", "5678"}, {NULL, "raw"}};
    const char *want[] = {"half\n", "12345678", "raw"};
    for (int s = 0; s < 3; s++) {
        if (steps[s][0] != NULL)
            ts_send(a, steps[s][0], strlen(steps[s][0]));
        int b = ts_connect(srv); /* a whole conversation while A is parked */
        td_round_trip(b, "line\n");
        td_round_trip(b, "exactly8");
        td_round_trip(b, "rest");
        close(b);
        ts_send(a, steps[s][1], strlen(steps[s][1]));
        td_expect(a, want[s]);
    }
    close(a);
    td_finish(&runner, srv, 4, 5000);
    assert_int_equal(atomic_load(&errors_seen), 0);
}

/* A recv smaller than what arrived leaves the rest for the next read;
 * a read that emptied the socket parks, and later bytes still wake it. */
static void test_small_recv_keeps_the_rest(void **state)
{
    (void)state;
    NEED_FIBERS();
    ts_runner runner;
    ss_server *srv = serving_on_one_worker(&small_reads_handler, &runner);
    int fd = ts_connect(srv);
    const char *first = "abcdefghij\nklmnop";
    ts_send(fd, first, strlen(first)); /* one segment: recv takes 5 of it */
    td_expect(fd, first);
    static char later[4096];
    fill_pattern(later, sizeof later, 7);
    for (int i = 0; i < 3; i++) { /* the handler is parked between these */
        ts_send(fd, later, sizeof later);
        char got[sizeof later];
        assert_int_equal(ts_recv_exact(fd, got, sizeof got), sizeof got);
        assert_memory_equal(got, later, sizeof later);
    }
    close(fd);
    td_finish(&runner, srv, 1, 5000);
    assert_int_equal(atomic_load(&errors_seen), 0);
}

/* The buffered writer with a buffer, and read_line over many packets. */
static void test_buffered_writer_and_lines(void **state)
{
    (void)state;
    NEED_FIBERS();
    ss_server *srv = fiber_pool(&lines_handler, 1, 0);
    assert_int_equal(ss_server_set_write_buffer_size(srv, 4096), 0);
    activate(srv);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = ts_connect(srv);
    for (int i = 0; i < 8; i++)
        ts_send(fds[i], "sp", 2); /* every handler parks mid-line */
    for (int i = 0; i < 8; i++) {
        ts_send(fds[i], "lit\n", 4);
        td_expect(fds[i], "split\n");
    }
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    td_finish(&runner, srv, 8, 5000);
}

/* ---- timeouts, errors ---- */

/* Silent clients' fibers time out (-ETIMEDOUT to handle_error, the client
 * sees EOF) while a client on the same worker keeps being served. */
static void test_timeout_on_parked_fibers(void **state)
{
    (void)state;
    ss_server *srv = fiber_pool(&lines_handler, 1, 0);
    ss_server_set_request_timeout(srv, 300);
    activate(srv);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int silent[3];
    for (int i = 0; i < 3; i++)
        silent[i] = ts_connect(srv);
    int busy = ts_connect(srv);
    long long start = ts_now_ms();
    /* busy talks every 20 ms, so its own timeout never passes */
    for (int i = 0; i < 3; i++) {
        while (td_quiet_for(silent[i], 20) && ts_now_ms() - start < 5000)
            td_round_trip(busy, "still here\n");
        assert_true(ts_sees_eof(silent[i]));
    }
    long long took = ts_now_ms() - start;
    assert_true(took >= 250 && took < 5000);
    td_round_trip(busy, "after\n");
    assert_true(td_wait_closed(srv, 3, 5000));
    assert_int_equal(atomic_load(&errors_seen), 3);
    assert_int_equal(atomic_load(&last_error), -ETIMEDOUT);
    close(busy);
    for (int i = 0; i < 3; i++)
        close(silent[i]);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* Five failing handlers on one worker: handle_error once each. */
static void test_errors_reported_once(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = serving_on_one_worker(&failing_handler, &runner);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = ts_connect(srv);
    for (int i = 0; i < 5; i++) {
        ts_send(fds[i], "x\n", 2);
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
    assert_true(td_wait_closed(srv, 5, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(atomic_load(&errors_seen), 5);
    assert_int_equal(atomic_load(&last_error), -EPROTO);
    assert_int_equal(td_stats(srv).handler_errors, 5);
    ss_server_free(srv);
}

/* ---- a big send to a slow reader ---- */

static void read_big(int fd)
{
    static char buf[64 * 1024], want[64 * 1024];
    size_t got = 0;
    while (got < BIG) {
        size_t n = ts_recv_exact(fd, buf, sizeof buf);
        assert_int_equal(n, sizeof buf);
        fill_pattern(want, sizeof want, got);
        assert_memory_equal(buf, want, sizeof buf);
        got += n;
    }
    td_expect(fd, "big\n");
}

/* 16 MiB to a client that does not read yet: the fiber parks on a full
 * socket buffer while others on the same worker keep being served; then
 * every byte arrives, in order. */
static void test_big_send_to_slow_reader(void **state)
{
    (void)state;
    NEED_FIBERS();
    ts_runner runner;
    ss_server *srv = serving_on_one_worker(&lines_handler, &runner);
    int slow = ts_connect(srv);
    ts_send(slow, "big\n", 4);
    assert_false(td_quiet_for(slow, 5000)); /* it has started sending */
    for (int i = 0; i < 20; i++) {
        int other = ts_connect(srv);
        td_round_trip(other, "quick\n");
        close(other);
    }
    read_big(slow);
    close(slow);
    td_finish(&runner, srv, 21, 10000);
}

/* ---- hang-ups and close ---- */

/* Another thread shuts a parked fiber's socket down (what a graceful
 * drain does): the fiber wakes and reads end of stream. */
static void test_shutdown_wakes_parked_fiber(void **state)
{
    (void)state;
    atomic_store(&published_fd, -1);
    ts_runner runner;
    ss_server *srv = serving_on_one_worker(&publish_handler, &runner);
    int fd = ts_connect(srv);
    long long end = ts_now_ms() + 5000;
    while (atomic_load(&published_fd) < 0 && ts_now_ms() < end)
        usleep(1000);
    assert_true(atomic_load(&published_fd) >= 0);
    assert_true(td_quiet_for(fd, 100)); /* parked in read_line */
    shutdown(atomic_load(&published_fd), SHUT_RDWR);
    assert_true(ts_sees_eof(fd));
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(td_stats(srv).handled, 1);
    close(fd);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* Three parked fibers on one worker when the loop stops. */
static void three_parked(ss_server *srv, ts_runner *runner, int fds[3])
{
    activate(srv);
    ts_start(runner, srv, 5000);
    for (int i = 0; i < 3; i++) {
        fds[i] = ts_connect(srv);
        td_round_trip(fds[i], "hi\n");
    }
    assert_int_equal(ts_stop(runner), 0);
}

static void test_close_waits_for_parked_fibers(void **state)
{
    (void)state;
    NEED_FIBERS();
    int fds_before = ts_count_fds(), threads_before = threads_now();
    ss_server *srv = fiber_pool(&lines_handler, 1, 0);
    ts_runner runner;
    int fds[3];
    three_parked(srv, &runner, fds);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300)); /* block_on_close: waits */
    for (int i = 0; i < 3; i++) {
        td_round_trip(fds[i], "still served\n");
        close(fds[i]);
    }
    assert_true(td_close_returned(&c, 5000));
    assert_int_equal(td_stats(srv).handled, 3);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
    assert_int_equal(ts_count_fds(), fds_before);
    assert_int_equal(threads_now(), threads_before);
}

static void test_close_lets_parked_fibers_go(void **state)
{
    (void)state;
    NEED_FIBERS();
    int fds_before = ts_count_fds(), threads_before = threads_now();
    ss_server *srv = fiber_pool(&lines_handler, 1, 0);
    ss_server_set_block_on_close(srv, false);
    ts_runner runner;
    int fds[3];
    three_parked(srv, &runner, fds);
    long long start = ts_now_ms();
    ss_server_free(srv); /* does not wait: the worker finishes alone */
    assert_true(ts_now_ms() - start < 1000);
    td_round_trip(fds[0], "after close\n"); /* the handlers still run */
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    assert_true(td_wait_fds(fds_before, 5000)); /* worker, epoll, pipes: gone */
    long long end = ts_now_ms() + 5000;
    while (threads_now() != threads_before && ts_now_ms() < end)
        usleep(1000);
    assert_int_equal(threads_now(), threads_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1000_connections_2_workers),
        cmocka_unit_test(test_fiber_cap_stops_accepting),
        cmocka_unit_test(test_twenty_workers_one_fiber_each),
        cmocka_unit_test(test_io_calls_park),
        cmocka_unit_test(test_small_recv_keeps_the_rest),
        cmocka_unit_test(test_buffered_writer_and_lines),
        cmocka_unit_test(test_timeout_on_parked_fibers),
        cmocka_unit_test(test_errors_reported_once),
        cmocka_unit_test(test_big_send_to_slow_reader),
        cmocka_unit_test(test_shutdown_wakes_parked_fiber),
        cmocka_unit_test(test_close_waits_for_parked_fibers),
        cmocka_unit_test(test_close_lets_parked_fibers_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
