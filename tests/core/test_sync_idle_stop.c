/* sync: a stop ends an idle wait at once (the stop grace is for busy
 * requests), and ends it the way a drain ends one in the other
 * dispatchers: the handler's read returns 0, end of stream, the request
 * counts in idle_closed and ss_request_idle_closed says so, and
 * handle_error is not called (production.md: "handlers need no code for
 * it"). A client whose next message is already there when its request
 * turns to wait for it is busy, and served; so is one whose message is
 * held in a filter (the PROXY filter's bytes behind its header). With
 * idle requests kept (ss_server_set_drain_close_idle(srv, false)) the
 * stop cancels the wait as before (-ECANCELED). */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define AT_ONCE_MS 5000

static atomic_int errors_reported;
static atomic_int idle_closed_seen;
static atomic_int reads;     /* reads that returned bytes */
static atomic_bool released; /* the first answer may go */

static void count_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    (void)err;
    (void)data;
    atomic_fetch_add(&errors_reported, 1);
}

/* The README's pattern: echo until the client leaves (0), a real error
 * to handle_error. Reads 2 bytes at a time (one message: "a\n"), so what
 * comes behind stays where it was (socket, filter); the first answer
 * waits until `released` (at most 10 s), so the test can stop the server
 * while the request is busy. */
static int echo_pairs(ss_request *req, void *data)
{
    (void)data;
    char msg[2];
    ssize_t n;
    while ((n = ss_request_recv(req, msg, sizeof msg)) > 0) {
        for (int w = 0; atomic_fetch_add(&reads, 1) == 0 && !atomic_load(&released) && w < 1000;
             w++)
            usleep(10 * 1000);
        int rc = ss_request_send_all(req, msg, (size_t)n);
        if (rc < 0)
            return rc;
    }
    if (n == 0 && ss_request_idle_closed(req))
        atomic_fetch_add(&idle_closed_seen, 1);
    return (int)n;
}

static const ss_handler pairs = {.version = SS_HANDLER_VERSION, .handle = echo_pairs};

static ss_server *sync_server(bool release, bool proxy)
{
    atomic_store(&errors_reported, 0);
    atomic_store(&idle_closed_seen, 0);
    atomic_store(&reads, 0);
    atomic_store(&released, release);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &pairs, NULL), 0);
    if (proxy)
        assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), 0);
    assert_int_equal(ss_server_set_stop_grace(srv, 60000), 0); /* a busy wait outlasts the test */
    ss_server_on_handle_error(srv, count_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static void expect_idle_close(ss_server *srv, uint64_t handled)
{
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 1);
    assert_int_equal(st.handler_errors, 0);
    assert_int_equal(st.handled, handled);
    assert_int_equal(atomic_load(&errors_reported), 0);
    assert_int_equal(atomic_load(&idle_closed_seen), 1);
}

/* Idle after one exchange when the stop comes: ends at once, cleanly. */
static void test_idle_wait_ends_as_end_of_stream(void **state)
{
    (void)state;
    ss_server *srv = sync_server(true, false);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    td_round_trip(fd, "a\n");
    long long start = ts_now_ms();
    assert_int_equal(ts_stop(&runner), 0);
    assert_true(ts_now_ms() - start < AT_ONCE_MS); /* not the minute of grace */
    assert_true(ts_sees_eof(fd));
    close(fd);
    expect_idle_close(srv, 1);
    ss_server_free(srv);
}

static bool first_read(void *arg)
{
    (void)arg;
    return atomic_load(&reads) > 0;
}

/* Busy with "a" when the stop comes, "b" already sent: served, then
 * idle and closed. Without a filter "b" waits in the socket; with the
 * PROXY filter it came with the header and sits in the filter. */
static void next_message_served(bool proxy)
{
    ss_server *srv = sync_server(false, proxy);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    const char *sent = proxy ? "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\na\nb\n" : "a\n";
    ts_send(fd, sent, strlen(sent));
    assert_true(ts_wait_until(first_read, NULL, AT_ONCE_MS));
    ss_server_request_shutdown(srv);
    if (!proxy)
        ts_send(fd, "b\n", 2);
    atomic_store(&released, true);
    td_expect(fd, "a\n");
    td_expect(fd, "b\n");
    assert_int_equal(ts_stop(&runner), 0);
    assert_true(ts_sees_eof(fd));
    close(fd);
    expect_idle_close(srv, 1);
    ss_server_free(srv);
}

static void test_next_message_in_socket_served(void **state)
{
    (void)state;
    next_message_served(false);
}

static void test_next_message_in_filter_served(void **state)
{
    (void)state;
    next_message_served(true);
}

/* Idle requests kept: the stop cancels the wait, as it always did. */
static void test_kept_idle_is_cancelled(void **state)
{
    (void)state;
    ss_server *srv = sync_server(true, false);
    ss_server_set_drain_close_idle(srv, false);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    td_round_trip(fd, "a\n");
    assert_int_equal(ts_stop(&runner), 0);
    assert_true(ts_sees_eof(fd));
    close(fd);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 0);
    assert_int_equal(st.handler_errors, 1);
    assert_int_equal(atomic_load(&errors_reported), 1);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_wait_ends_as_end_of_stream),
        cmocka_unit_test(test_next_message_in_socket_served),
        cmocka_unit_test(test_next_message_in_filter_served),
        cmocka_unit_test(test_kept_idle_is_cancelled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
