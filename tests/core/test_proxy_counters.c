/* The PROXY filter's counters add up (docs/filters.md): each refusal
 * counts in filter_refused and in exactly one of proxy_invalid,
 * proxy_untrusted and proxy_timeouts, on every dispatcher; a client that
 * resets in the middle of its header (or before sending any) brought no
 * valid header: proxy_invalid. And a sync server's clients queued with
 * complete headers, served by the drain after its deadline, are not
 * refusals at all: their headers are read, their handlers run and are
 * cut off like those of clients without a header. */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define AT_ONCE_MS 5000
#define HEADER     "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n"

static atomic_int handles; /* handler runs in this process (not forking's children) */

static int echo_line(ss_request *req, void *data)
{
    (void)data;
    atomic_fetch_add(&handles, 1);
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n > 0 ? ss_request_send_all(req, line, (size_t)n) : (int)n;
}

static const ss_handler lines = {.version = SS_HANDLER_VERSION, .handle = echo_line};

static ss_server *proxy_server(const char *mode)
{
    ss_server *srv = td_proxy_server(mode, &lines, NULL);
    ss_server_set_request_timeout(srv, 20000); /* a failed test's child still ends */
    return srv;
}

/* The client, in a process of its own: under forking a server child
 * forked from this process would hold a copy of a socket made here, and
 * closing ours would then reset nothing. */
static int client_port;
static const char *client_part;

static void reset_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)client_port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    TS_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&to, sizeof to) == 0);
    if (client_part != NULL)
        TS_CHECK(send(fd, client_part, strlen(client_part), 0) == (ssize_t)strlen(client_part));
    usleep(100 * 1000); /* the server reads what came first */
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    TS_CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard) == 0);
    close(fd); /* a reset */
}

/* Connects, sends `part` if any, then resets the connection. */
static void reset_after(ss_server *srv, const char *part)
{
    client_port = ss_server_port(srv);
    client_part = part;
    assert_int_equal(ts_run_in_child(reset_client), 0);
}

static bool refused_two(void *arg)
{
    return td_stats(arg).filter_refused >= 2;
}

static void expect_sum(const ss_stats *st)
{
    assert_int_equal(st->filter_refused,
                     st->proxy_invalid + st->proxy_untrusted + st->proxy_timeouts);
}

static void reset_during_header_is_invalid(void **state)
{
    ss_server *srv = proxy_server(*state);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    reset_after(srv, "PROXY TCP4 19");
    reset_after(srv, NULL);
    assert_true(ts_wait_until(refused_two, srv, AT_ONCE_MS));
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.filter_refused, 2);
    assert_int_equal(st.proxy_invalid, 2);
    expect_sum(&st);
    assert_int_equal(st.handler_errors, 0);
    ss_server_free(srv);
}

/* sync: A busy on the loop when it stops (cut off at once: no grace), B
 * and C queued with whole headers. The drain runs B (its handler waits
 * for the rest of its line until the deadline) and then C, after the
 * deadline: C's header is read all the same, and its handler is cut off
 * at its first wait, as a client without a header would be. */
static void test_sync_queued_headers_reach_handlers(void **state)
{
    (void)state;
    atomic_store(&handles, 0);
    ss_server *srv = proxy_server("sync");
    assert_int_equal(ss_server_set_stop_grace(srv, 0), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = ts_connect(srv);
        ts_send(fds[i], HEADER "partial", strlen(HEADER "partial"));
        if (i == 0)
            assert_true(td_wait_active(srv, 1, AT_ONCE_MS));
    }
    assert_true(td_quiet_for(fds[0], 200)); /* A read its header, waits for its line */
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(ss_server_drain(srv, 300), -ETIMEDOUT);
    for (int i = 0; i < 3; i++) {
        assert_true(ts_sees_eof(fds[i]));
        close(fds[i]);
    }
    ss_stats st = td_stats(srv);
    assert_int_equal(atomic_load(&handles), 3);
    assert_int_equal(st.filter_refused, 0);
    expect_sum(&st);
    assert_int_equal(st.handler_errors, 3); /* each cut off: -ECANCELED */
    assert_int_equal(st.accepted, 3);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_MODE_TEST(reset_during_header_is_invalid, "sync"),
        TS_MODE_TEST(reset_during_header_is_invalid, "threading"),
        TS_MODE_TEST(reset_during_header_is_invalid, "forking"),
        TS_MODE_TEST(reset_during_header_is_invalid, "pool"),
        cmocka_unit_test(test_sync_queued_headers_reach_handlers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
