/* Abuse, proven: slow clients that never speak (slowloris), 10 000
 * connections in a row and 1 000 at once, and hostile peers (resets in
 * mid-reply, half-closes, NUL bytes, a megabyte without a newline). After
 * each, the server must still answer the next client, with no descriptor
 * left behind and memory that does not grow. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#define LINE_MAX_BYTES 1024
#define BIG_REPLY      (8u << 20)

static const char too_long[] = "error: line too long\n";

static int send_big(ss_request *req)
{
    static char payload[64 * 1024];
    memset(payload, 'B', sizeof payload);
    for (size_t sent = 0; sent < BIG_REPLY; sent += sizeof payload) {
        int rc = ss_request_send_all(req, payload, sizeof payload);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* A line protocol: each line comes back as it was; "big\n" gets 8 MiB;
 * an over-long line gets an error message and the next line is read. */
static int line_echo(ss_request *req, void *data)
{
    (void)data;
    char line[LINE_MAX_BYTES];
    for (;;) {
        ssize_t n = ss_request_read_line(req, line, sizeof line);
        int rc = 0;
        if (n == SS_ELINETOOLONG)
            rc = ss_request_send_all(req, too_long, sizeof too_long - 1);
        else if (n <= 0)
            return (int)n;
        else if (n == 4 && memcmp(line, "big\n", 4) == 0)
            rc = send_big(req);
        else
            rc = ss_request_send_all(req, line, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

/* Answers one line and ends the request (the server closes first). */
static int one_line(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n > 0 ? ss_request_send_all(req, line, (size_t)n) : (int)n;
}

static void quiet(ss_server *srv, ss_log_level level, const char *msg, void *data)
{
    (void)srv;
    (void)level;
    (void)msg;
    (void)data;
}

typedef int (*handle_fn)(ss_request *, void *);

/* A server in the named mode, serving in a thread of its own. */
static ss_server *start(ts_runner *runner, const char *mode, handle_fn handle, int workers,
                        int timeout_ms)
{
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), &h, NULL), 0);
    if (workers > 0) {
        assert_int_equal(ss_server_set_workers(srv, workers), 0);
        assert_int_equal(ss_server_set_queue_size(srv, workers), 0);
    }
    ss_server_set_request_timeout(srv, timeout_ms);
    ss_server_set_log(srv, quiet); /* resets and timeouts are expected here */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_start(runner, srv, 500);
    return srv;
}

static void stop(ts_runner *runner, ss_server *srv)
{
    assert_int_equal(ts_stop(runner), 0);
    ss_server_free(srv);
}

static bool all_requests_over(void *arg)
{
    ss_stats st;
    ss_server_stats(arg, &st);
    return st.closed == st.accepted;
}

/* One well-behaved exchange; returns how long the answer took. */
static long long exchange(const ss_server *srv, const char *line)
{
    long long start = ts_now_ms();
    int fd = ts_connect(srv);
    ts_send(fd, line, strlen(line));
    char got[64] = {0};
    assert_int_equal(ts_recv_exact(fd, got, strlen(line)), strlen(line));
    assert_string_equal(got, line);
    close(fd);
    return ts_now_ms() - start;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- slowloris: connections that never say anything ---- */

static void open_idle(const ss_server *srv, int *fds, int n)
{
    for (int i = 0; i < n; i++)
        fds[i] = ts_connect(srv);
}

/* Every idle client is eventually closed by the server's timeout. */
static void expect_all_closed(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
}

static void test_slowloris_threading(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 300);
    int idle[40];
    open_idle(srv, idle, 40);
    /* a thread per client: the silent ones cost the good one nothing */
    assert_true(exchange(srv, "hello\n") < 300);
    expect_all_closed(idle, 40);
    assert_true(ts_wait_until(all_requests_over, srv, 5000));
    stop(&runner, srv);
}

static void test_slowloris_pool(void **state)
{
    (void)state;
    ts_runner runner;
    /* 4 workers, 4 queue slots, 12 silent clients ahead of the good one.
     * Silent clients park on fibers and hold no worker, so the good one is
     * answered at once, well before the first timeout (a worker per
     * connection would make it wait out three waves of 200 ms). */
    ss_server *srv = start(&runner, "pool", line_echo, 4, 200);
    int idle[12];
    open_idle(srv, idle, 12);
    long long took = exchange(srv, "hello\n");
#if SS_HAVE_FIBERS
    assert_true(took < 500);
#else
    assert_true(took < (12 / 4 + 1) * 200 + 2000);
#endif
    expect_all_closed(idle, 12);
    assert_true(ts_wait_until(all_requests_over, srv, 5000));
    stop(&runner, srv);
}

/* ---- volume: 10 000 in a row, 1 000 at once ---- */

static void sequential(const char *mode, int workers)
{
    int fds_before = ts_count_fds(); /* the pool's workers hold some of their own */
    ts_runner runner;
    ss_server *srv = start(&runner, mode, one_line, workers, 5000);
    long rss_warm = 0;
    for (int i = 0; i < 10000; i++) {
        int fd = ts_connect(srv);
        ts_send(fd, "ping\n", 5);
        char got[8] = {0};
        assert_int_equal(ts_recv_exact(fd, got, 5), 5);
        assert_true(ts_sees_eof(fd)); /* the server closes first */
        close(fd);
        if (i == 1999)
            rss_warm = rss_kib(); /* after allocator arenas and caches settle */
    }
    assert_true(ts_wait_until(all_requests_over, srv, 10000));
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.handled, 10000);
    long growth = rss_kib() - rss_warm;
    if (!TS_SANITIZED && growth > 8 * 1024)
        fail_msg("%s: RSS grew %ld KiB over 8000 requests", mode, growth);
    stop(&runner, srv);
    assert_int_equal(ts_count_fds(), fds_before);
}

static void test_10000_sequential_threading(void **state)
{
    (void)state;
    sequential("threading", 0);
}

static void test_10000_sequential_pool(void **state)
{
    (void)state;
    sequential("pool", 8);
}

static void concurrent(const char *mode, int workers)
{
    enum { N = 1000 };
    if (!ts_raise_fd_limit(2 * N + 256))
        skip(); /* the hard limit leaves no room for both ends */
    ts_runner runner;
    ss_server *srv = start(&runner, mode, one_line, workers, 30000);
    int fds_before = ts_count_fds();
    static int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = ts_connect(srv); /* all connected before any is answered */
    for (int i = 0; i < N; i++)
        ts_send(fds[i], "ping\n", 5);
    assert_int_equal(ts_count_answers(fds, N, "ping\n"), N);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    assert_true(ts_wait_until(all_requests_over, srv, 10000));
    assert_int_equal(ts_count_fds(), fds_before);
    stop(&runner, srv);
}

static void test_1000_concurrent_threading(void **state)
{
    (void)state;
    concurrent("threading", 0);
}

static void test_1000_concurrent_pool(void **state)
{
    (void)state;
    concurrent("pool", 8);
}

/* ---- hostile peers ---- */

static void test_nul_bytes_are_just_bytes(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 2000);
    int fd = ts_connect(srv);
    ts_send(fd, "a\0b\n", 4);
    char got[4];
    assert_int_equal(ts_recv_exact(fd, got, 4), 4);
    assert_memory_equal(got, "a\0b\n", 4);
    close(fd);
    exchange(srv, "next\n");
    stop(&runner, srv);
}

static void test_megabyte_without_newline(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 2000);
    long rss_before = rss_kib();
    int fd = ts_connect(srv);
    static char flood[1 << 20];
    memset(flood, 'x', sizeof flood);
    ts_send(fd, flood, sizeof flood); /* the server reads and discards as it goes */
    ts_send(fd, "\nok\n", 4);
    char got[sizeof too_long - 1 + 3 + 1] = {0};
    assert_int_equal(ts_recv_exact(fd, got, sizeof got - 1), sizeof got - 1);
    assert_string_equal(got, "error: line too long\nok\n");
    close(fd);
    if (!TS_SANITIZED) /* bounded by the line limit */
        assert_true(rss_kib() - rss_before < 4 * 1024);
    exchange(srv, "next\n");
    stop(&runner, srv);
}

static void test_half_closed_peer(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 2000);
    int fd = ts_connect(srv);
    ts_send(fd, "hi\n", 3);
    shutdown(fd, SHUT_WR);
    char got[4] = {0};
    assert_int_equal(ts_recv_exact(fd, got, 3), 3);
    assert_string_equal(got, "hi\n");
    assert_true(ts_sees_eof(fd));
    close(fd);
    exchange(srv, "next\n");
    stop(&runner, srv);
}

static bool one_error(void *arg)
{
    ss_stats st;
    ss_server_stats(arg, &st);
    return st.handler_errors >= 1;
}

static void test_reset_in_mid_reply(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 2000);
    int fd = ts_connect(srv);
    ts_send(fd, "big\n", 4);
    static char some[64 * 1024];
    assert_int_equal(ts_recv_exact(fd, some, sizeof some), sizeof some);
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd); /* RST while the server is still sending megabytes */
    assert_true(ts_wait_until(one_error, srv, 5000)); /* reported, not fatal */
    exchange(srv, "next\n");
    stop(&runner, srv);
}

static void test_connect_and_vanish(void **state)
{
    (void)state;
    ts_runner runner;
    ss_server *srv = start(&runner, "threading", line_echo, 0, 2000);
    for (int i = 0; i < 50; i++) {
        int fd = ts_connect(srv);
        if (i % 2) {
            struct linger hard = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        }
        close(fd);
    }
    exchange(srv, "still here\n");
    assert_true(ts_wait_until(all_requests_over, srv, 5000));
    stop(&runner, srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowloris_threading),
        cmocka_unit_test(test_slowloris_pool),
        cmocka_unit_test(test_10000_sequential_threading),
        cmocka_unit_test(test_10000_sequential_pool),
        cmocka_unit_test(test_1000_concurrent_threading),
        cmocka_unit_test(test_1000_concurrent_pool),
        cmocka_unit_test(test_nul_bytes_are_just_bytes),
        cmocka_unit_test(test_megabyte_without_newline),
        cmocka_unit_test(test_half_closed_peer),
        cmocka_unit_test(test_reset_in_mid_reply),
        cmocka_unit_test(test_connect_and_vanish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
