/* Per-connection (inetd) mode (issue 16, item 3): ss_server_new_connection
 * + ss_server_serve_connection serve one socket a manager accepted, over
 * TCP (IPv4, IPv6) and Unix stream, through the same admission, hooks and
 * counters as an accepted client; what is not a connected stream socket
 * is refused with its own error. */
#define _GNU_SOURCE
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

/* Reads a line, answers "got LINE" with the server's address scheme. */
static int answer_handle(ss_request *req, void *data)
{
    (void)data;
    char line[128];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return n == 0 ? 0 : (int)n;
    char reply[160];
    int len = snprintf(reply, sizeof reply, "got %s", line);
    return ss_request_send_all(req, reply, (size_t)len);
}
static const ss_handler answer = {SS_HANDLER_VERSION, NULL, answer_handle, NULL};

/* A connected pair over `family`: *server_end is what a manager would
 * have accepted, *client_end the client. */
static void connected_pair(int family, int *server_end, int *client_end)
{
    if (family == AF_UNIX) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        *server_end = sv[0];
        *client_end = sv[1];
        return;
    }
    int l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage a = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    }
    assert_int_equal(bind(l, (struct sockaddr *)&a, len), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
    *client_end = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(*client_end, (struct sockaddr *)&a, len), 0);
    *server_end = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    assert_true(*server_end >= 0);
    close(l);
}

static void serves_one_connection(int family, const char *scheme)
{
    int s, c;
    connected_pair(family, &s, &c);
    ss_server *srv;
    assert_int_equal(ss_server_new_connection(&srv, s, &answer, NULL), 0);
    assert_int_equal(ss_server_fileno(srv), -1);
    char addr[128];
    assert_true(ss_server_address(srv, addr, sizeof addr) >= 0);
    assert_int_equal(strncmp(addr, scheme, strlen(scheme)), 0);
    assert_int_equal(ss_server_bind(srv), SS_ESTATE);
    assert_int_equal(ss_server_activate(srv), SS_ESTATE);
    ts_send(c, "hello\n", 6);
    assert_int_equal(ss_server_serve_connection(srv), 0);
    char buf[64] = {0};
    assert_int_equal(ts_recv_exact(c, buf, 10), 10);
    assert_string_equal(buf, "got hello\n");
    assert_true(ts_sees_eof(c)); /* closed by the library */
    assert_int_equal(fcntl(s, F_GETFD), -1);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.closed, 1);
    assert_int_equal(ss_server_serve_connection(srv), SS_ESTATE); /* once */
    ss_server_free(srv);
    close(c);
}

static void test_tcp(void **state)
{
    (void)state;
    serves_one_connection(AF_INET, "tcp://127.0.0.1:");
}

static void test_tcp6(void **state)
{
    (void)state;
    serves_one_connection(AF_INET6, "tcp://[::1]:");
}

static void test_unix(void **state)
{
    (void)state;
    serves_one_connection(AF_UNIX, "unix:");
}

static bool refuse(ss_server *srv, ss_request *req, void *data)
{
    (void)srv;
    (void)req;
    (void)data;
    return false;
}

static void test_refused_connection(void **state)
{
    (void)state;
    int s, c;
    connected_pair(AF_UNIX, &s, &c);
    ss_server *srv;
    assert_int_equal(ss_server_new_connection(&srv, s, &answer, NULL), 0);
    ss_server_on_verify_request(srv, refuse);
    assert_int_equal(ss_server_serve_connection(srv), -ECONNREFUSED);
    assert_true(ts_sees_eof(c));
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.rejected_verify, 1);
    assert_int_equal(st.handled, 0);
    ss_server_free(srv);
    close(c);
}

/* A handler's error comes back (after handle_error). */
static int failing_handle(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return -EPROTO;
}
static const ss_handler failing = {SS_HANDLER_VERSION, NULL, failing_handle, NULL};

static void quiet_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    *(int *)data = err;
}

static void test_handler_error_returned(void **state)
{
    (void)state;
    int s, c, reported = 0;
    connected_pair(AF_UNIX, &s, &c);
    ss_server *srv;
    assert_int_equal(ss_server_new_connection(&srv, s, &failing, &reported), 0);
    ss_server_on_handle_error(srv, quiet_error);
    assert_int_equal(ss_server_serve_connection(srv), -EPROTO);
    assert_int_equal(reported, -EPROTO);
    ss_server_free(srv);
    close(c);
}

/* Never served: free closes the socket it owns. */
static void test_free_closes_unserved(void **state)
{
    (void)state;
    int s, c;
    connected_pair(AF_UNIX, &s, &c);
    ss_server *srv;
    assert_int_equal(ss_server_new_connection(&srv, s, &answer, NULL), 0);
    ss_server_free(srv);
    assert_true(ts_sees_eof(c));
    close(c);
}

static void test_not_a_connection(void **state)
{
    (void)state;
    ss_server *srv = (ss_server *)1;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(ss_server_new_connection(&srv, p[0], &answer, NULL), -ENOTSOCK);
    assert_null(srv);
    close(p[0]);
    close(p[1]);
    assert_int_equal(ss_server_new_connection(&srv, p[0], &answer, NULL), -EBADF);
    assert_int_equal(ss_server_new_connection(&srv, -1, &answer, NULL), -EINVAL);
    int d = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_int_equal(ss_server_new_connection(&srv, d, &answer, NULL), -EPROTOTYPE);
    close(d);
    int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(ss_server_new_connection(&srv, u, &answer, NULL), -ENOTCONN);
    assert_int_equal(listen(u, 1), 0); /* on an ephemeral port: a listener */
    assert_int_equal(ss_server_new_connection(&srv, u, &answer, NULL), -EINVAL);
    assert_int_equal(fcntl(u, F_GETFD), FD_CLOEXEC); /* still the caller's */
    close(u);
    int s, c;
    connected_pair(AF_UNIX, &s, &c);
    assert_int_equal(ss_server_new_connection(&srv, s, NULL, NULL), -EINVAL);
    assert_int_equal(ss_server_new_connection(NULL, s, &answer, NULL), -EINVAL);
    close(s);
    close(c);
    assert_int_equal(ss_server_serve_connection(NULL), -EINVAL);
}

/* A server made from a URL is not one. */
static void test_ordinary_server_refused(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &answer, NULL), 0);
    assert_int_equal(ss_server_serve_connection(srv), SS_ESTATE);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_tcp6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_refused_connection),
        cmocka_unit_test(test_handler_error_returned),
        cmocka_unit_test(test_free_closes_unserved),
        cmocka_unit_test(test_not_a_connection),
        cmocka_unit_test(test_ordinary_server_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
