/* UDP over IPv4 and IPv6, and the datagram request every datagram
 * transport shares: echo round trips through serve_forever, the packet and
 * the server socket as the handler sees them, truncation detected, one
 * reply after finish, the empty-reply rule, max_packet_size, no port
 * sharing, descriptor hygiene. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

/* What the handler saw; read by the test after handle_request returns. */
typedef struct seen {
    char client[128];
    char packet[128];
    size_t packet_len;
    bool truncated;
    bool same_socket; /* ss_request_fileno is the server's socket */
    ssize_t first_recv;
    int error; /* last error given to handle_error */
    int errors;
} seen;

/* Records what the request looks like, then echoes. */
static int observe_handle(ss_request *req, void *data)
{
    seen *s = data;
    size_t len;
    const char *packet = ss_request_packet(req, &len);
    s->packet_len = len;
    memcpy(s->packet, packet, len < sizeof s->packet ? len : sizeof s->packet);
    s->truncated = ss_request_truncated(req);
    s->same_socket = ss_request_fileno(req) == ss_server_fileno(ss_request_server(req));
    snprintf(s->client, sizeof s->client, "%s", ss_request_client_name(req));
    char buf[1024];
    s->first_recv = ss_request_recv(req, buf, sizeof buf);
    if (s->first_recv <= 0)
        return (int)s->first_recv;
    int rc = ss_request_send_all(req, buf, (size_t)s->first_recv);
    return rc < 0 ? rc : ts_echo_handle(req, data);
}

static void record_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    seen *s = data;
    s->error = err;
    s->errors++;
}

/* A server on loopback whose handle_request waits at most 5 s. */
static ss_server *udp_server(const char *url, const ss_handler *h, seen *s)
{
    ss_server *srv;
    int rc = ss_server_new(&srv, url, NULL, h, s);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)
        return NULL; /* no IPv6 here */
    assert_int_equal(rc, 0);
    ss_server_set_timeout(srv, 5000);
    ss_server_on_handle_error(srv, record_error);
    return srv;
}

static ssize_t recv_datagram(int fd, void *buf, size_t size)
{
    ssize_t n;
    while ((n = recv(fd, buf, size, 0)) < 0 && errno == EINTR)
        ;
    return n;
}

/* Sends one datagram, lets the server handle it, and returns the client. */
static int send_and_handle(ss_server *srv, const void *buf, size_t size)
{
    int fd = ts_connect(srv);
    assert_int_equal(send(fd, buf, size, 0), (ssize_t)size);
    assert_int_equal(ss_server_handle_request(srv), 0);
    return fd;
}

/* ---- round trips ---- */

/* Python's test_socketserver: three datagrams from three clients. */
static void echo_three_times(const char *url)
{
    ss_server *srv = udp_server(url, &ts_echo, &(seen){0});
    if (srv == NULL)
        skip();
    ts_runner runner;
    ts_start(&runner, srv, 500);
    for (int i = 0; i < 3; i++) {
        const char msg[] = "hello, datagram server\n";
        char got[sizeof msg] = {0};
        int fd = ts_connect(srv);
        ts_send(fd, msg, sizeof msg - 1);
        assert_int_equal(recv_datagram(fd, got, sizeof got), sizeof msg - 1);
        assert_string_equal(got, msg);
        close(fd);
    }
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.handled, 3);
    assert_int_equal(st.closed, 3);
    /* ending a datagram request must not close the shared socket */
    assert_true(fcntl(ss_server_fileno(srv), F_GETFD) >= 0);
    ss_server_free(srv);
}

static void test_echo_ipv4(void **state)
{
    (void)state;
    echo_three_times("udp://127.0.0.1:0");
}

static void test_echo_ipv6(void **state)
{
    (void)state;
    echo_three_times("udp://[::1]:0");
}

static void test_address_reads_back(void **state)
{
    (void)state;
    ss_server *srv = udp_server("udp://127.0.0.1:0", &ts_echo, &(seen){0});
    char url[128], want[64];
    assert_true(ss_server_port(srv) > 0);
    snprintf(want, sizeof want, "udp://127.0.0.1:%d", ss_server_port(srv));
    assert_int_equal(ss_server_address(srv, url, sizeof url), (int)strlen(want));
    assert_string_equal(url, want);
    ss_server_free(srv);
}

/* ---- the request as the handler sees it ---- */

static void test_request_shows_packet_sender_and_socket(void **state)
{
    (void)state;
    seen s = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = observe_handle};
    ss_server *srv = udp_server("udp://127.0.0.1:0", &h, &s);
    int fd = send_and_handle(srv, "ping", 4);
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", ntohs(me.sin_port));
    assert_string_equal(s.client, want);
    assert_int_equal(s.packet_len, 4);
    assert_memory_equal(s.packet, "ping", 4);
    assert_false(s.truncated);
    assert_true(s.same_socket);
    char got[8] = {0};
    assert_int_equal(recv_datagram(fd, got, sizeof got), 4);
    assert_string_equal(got, "ping");
    close(fd);
    ss_server_free(srv);
}

static void test_truncated_datagram_is_reported(void **state)
{
    (void)state;
    seen s = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = observe_handle};
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &h, &s), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 16), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ss_server_set_timeout(srv, 5000);
    ss_server_on_handle_error(srv, record_error);

    int fd = send_and_handle(srv, "0123456789abcdefX", 17); /* one byte too many */
    assert_true(s.truncated);
    assert_int_equal(s.packet_len, 16);
    assert_memory_equal(s.packet, "0123456789abcdef", 16);
    assert_int_equal(s.first_recv, SS_ETRUNCATED);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.error, SS_ETRUNCATED);
    assert_non_null(strstr(ss_strerror(SS_ETRUNCATED), "truncated"));

    /* exactly max_packet_size is not truncated; its echo is the first
     * datagram the client gets, so the cut one got no reply */
    assert_int_equal(send(fd, "0123456789abcdef", 16, 0), 16);
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_false(s.truncated);
    char got[32] = {0};
    assert_int_equal(recv_datagram(fd, got, sizeof got), 16);
    assert_string_equal(got, "0123456789abcdef");
    assert_int_equal(s.errors, 1);
    close(fd);
    ss_server_free(srv);
}

/* ---- the reply ---- */

static int write_in_pieces(ss_request *req, void *data)
{
    (void)data;
    int rc = ss_request_send_all(req, "a", 1);
    return rc < 0 ? rc : ss_request_send_all(req, "bc", 2);
}

static int finish_writes_more(ss_request *req, void *data)
{
    (void)data;
    return ss_request_send_all(req, "d", 1);
}

static void test_reply_is_one_datagram_after_finish(void **state)
{
    (void)state;
    ss_handler h = {
        .version = SS_HANDLER_VERSION, .handle = write_in_pieces, .finish = finish_writes_more};
    ss_server *srv = udp_server("udp://127.0.0.1:0", &h, &(seen){0});
    int fd = send_and_handle(srv, "x", 1);
    char got[16] = {0};
    assert_int_equal(recv_datagram(fd, got, sizeof got), 4);
    assert_string_equal(got, "abcd");
    close(fd);
    ss_server_free(srv);
}

/* "silent": writes nothing; "empty": asks for an empty reply; else echo. */
static int reply_rules_handle(ss_request *req, void *data)
{
    (void)data;
    size_t len;
    const char *packet = ss_request_packet(req, &len);
    if (len == 6 && memcmp(packet, "silent", 6) == 0)
        return 0;
    if (len == 5 && memcmp(packet, "empty", 5) == 0)
        return ss_request_force_reply(req);
    return ts_echo_handle(req, data);
}

static void test_empty_reply_only_when_asked(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = reply_rules_handle};
    seen s = {0};
    ss_server *srv = udp_server("udp://127.0.0.1:0", &h, &s);
    int fd = send_and_handle(srv, "silent", 6);
    assert_int_equal(send(fd, "empty", 5, 0), 5);
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_int_equal(send(fd, "last", 4, 0), 4);
    assert_int_equal(ss_server_handle_request(srv), 0);
    /* had "silent" been answered, its reply would come first */
    char got[16] = {0};
    assert_int_equal(recv_datagram(fd, got, sizeof got), 0);
    assert_int_equal(recv_datagram(fd, got, sizeof got), 4);
    assert_string_equal(got, "last");
    assert_int_equal(s.errors, 0);
    close(fd);
    ss_server_free(srv);
}

static int stream_request_checks(ss_request *req, void *data)
{
    seen *s = data;
    size_t len = 99;
    s->same_socket = ss_request_packet(req, &len) == NULL && len == 0;
    s->truncated = ss_request_truncated(req);
    s->error = ss_request_force_reply(req);
    return 0;
}

static void test_stream_requests_have_no_packet(void **state)
{
    (void)state;
    seen s = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = stream_request_checks};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, &s), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 100), -EINVAL);
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_true(s.same_socket);
    assert_false(s.truncated);
    assert_int_equal(s.error, -ENOTSUP);
    close(fd);
    ss_server_free(srv);
}

/* ---- options ---- */

static int reply_too_big(ss_request *req, void *data)
{
    seen *s = data;
    static char big[65537];
    s->first_recv = ss_request_send_all(req, big, sizeof big);
    return ss_request_send_all(req, "ok", 2);
}

static void test_max_packet_size_option(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &ts_echo, NULL), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 0), -EINVAL);
    assert_int_equal(ss_server_set_max_packet_size(srv, (size_t)-1), -EINVAL);
    assert_int_equal(ss_server_set_max_packet_size(srv, 65507), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 65507), 0); /* before activate */
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 100), SS_ESTATE);
    ss_server_set_timeout(srv, 5000);

    /* the largest UDP datagram, whole, both ways */
    enum { BIG = 65507 };
    char *msg = malloc(BIG), *got = malloc(BIG + 1);
    for (size_t i = 0; i < BIG; i++)
        msg[i] = (char)('a' + i % 26);
    int fd = send_and_handle(srv, msg, BIG);
    assert_int_equal(recv_datagram(fd, got, BIG + 1), BIG);
    assert_memory_equal(got, msg, BIG);
    free(msg);
    free(got);
    close(fd);
    ss_server_free(srv);
}

static void test_reply_larger_than_a_datagram_fails_early(void **state)
{
    (void)state;
    seen s = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = reply_too_big};
    ss_server *srv = udp_server("udp://127.0.0.1:0", &h, &s);
    int fd = send_and_handle(srv, "x", 1);
    assert_int_equal(s.first_recv, -EMSGSIZE);
    char got[8] = {0};
    assert_int_equal(recv_datagram(fd, got, sizeof got), 2); /* the rest still goes */
    assert_string_equal(got, "ok");
    close(fd);
    ss_server_free(srv);
}

/* SO_REUSEADDR stays off for UDP: on Linux it would let a second live
 * server take the port's datagrams. */
static void test_second_server_cannot_share_the_port(void **state)
{
    (void)state;
    ss_server *first = udp_server("udp://127.0.0.1:0", &ts_echo, &(seen){0});
    char url[64];
    ss_server_address(first, url, sizeof url);
    ss_server *second = (ss_server *)&second;
    assert_int_equal(ss_server_new(&second, url, NULL, &ts_echo, NULL), -EADDRINUSE);
    assert_null(second);
    ss_server_free(first);
}

static void test_no_fd_leak_and_close_on_exec(void **state)
{
    (void)state;
    int before = ts_count_fds();
    ss_server *srv = udp_server("udp://127.0.0.1:0", &ts_echo, &(seen){0});
    assert_true(fcntl(ss_server_fileno(srv), F_GETFD) & FD_CLOEXEC);
    for (int i = 0; i < 5; i++) {
        int fd = send_and_handle(srv, "x", 1);
        char c;
        assert_int_equal(recv_datagram(fd, &c, 1), 1);
        close(fd);
    }
    ss_server_free(srv);
    assert_int_equal(ts_count_fds(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_ipv4),
        cmocka_unit_test(test_echo_ipv6),
        cmocka_unit_test(test_address_reads_back),
        cmocka_unit_test(test_request_shows_packet_sender_and_socket),
        cmocka_unit_test(test_truncated_datagram_is_reported),
        cmocka_unit_test(test_reply_is_one_datagram_after_finish),
        cmocka_unit_test(test_empty_reply_only_when_asked),
        cmocka_unit_test(test_stream_requests_have_no_packet),
        cmocka_unit_test(test_max_packet_size_option),
        cmocka_unit_test(test_reply_larger_than_a_datagram_fails_early),
        cmocka_unit_test(test_second_server_cannot_share_the_port),
        cmocka_unit_test(test_no_fd_leak_and_close_on_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
