/* TCP over IPv4 and IPv6: echo round trips through serve_forever, the
 * close-without-serving path, descriptor hygiene on failure, close-on-exec. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* Python's test_socketserver: three clients in a row, each one line. */
static void echo_three_times(const char *url)
{
    ss_server *srv;
    int rc = ss_server_new(&srv, url, NULL, &ts_echo, NULL);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        skip(); /* no IPv6 on this machine */
    }
    assert_int_equal(rc, 0);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    for (int i = 0; i < 3; i++) {
        const char msg[] = "hello, server\n";
        char got[sizeof msg] = {0};
        int fd = ts_connect(srv);
        ts_send(fd, msg, sizeof msg - 1);
        assert_int_equal(ts_recv_exact(fd, got, sizeof msg - 1), sizeof msg - 1);
        assert_string_equal(got, msg);
        shutdown(fd, SHUT_WR);
        assert_true(ts_sees_eof(fd));
        close(fd);
    }
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.handled, 3);
    assert_int_equal(st.closed, 3);
    ss_server_free(srv);
}

static void test_echo_ipv4(void **state)
{
    (void)state;
    echo_three_times("tcp://127.0.0.1:0");
}

static void test_echo_ipv6(void **state)
{
    (void)state;
    echo_three_times("tcp://[::1]:0");
}

static void test_dual_stack_any_accepts_ipv4(void **state)
{
    (void)state;
    ss_server *srv;
    int rc = ss_server_new(&srv, "tcp://[::]:0", NULL, &ts_echo, NULL);
    if (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL)
        skip();
    assert_int_equal(rc, 0);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    char url[64], got[3] = {0};
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ss_server_port(srv));
    int fd = ts_connect_url(url);
    ts_send(fd, "v4", 2);
    assert_int_equal(ts_recv_exact(fd, got, 2), 2);
    assert_string_equal(got, "v4");
    close(fd);
    ts_stop(&runner);
    ss_server_free(srv);
}

static void test_close_without_serving(void **state)
{
    (void)state;
    int before = ts_count_fds();
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &ts_echo, NULL), 0);
    assert_true(ss_server_fileno(srv) >= 0);
    ss_server_close(srv);
    ss_server_close(srv); /* idempotent */
    assert_int_equal(ss_server_fileno(srv), -1);
    assert_int_equal(ss_server_serve_forever(srv, 10), SS_ESTATE);
    assert_int_equal(ss_server_handle_request(srv), SS_ESTATE);
    ss_server_free(srv);
    ss_server_free(NULL);
    assert_int_equal(ts_count_fds(), before);
}

static void test_failed_creations_leak_no_fd(void **state)
{
    (void)state;
    ss_server *taken;
    assert_int_equal(ss_server_new(&taken, "tcp://127.0.0.1:0", NULL, &ts_echo, NULL), 0);
    char in_use[64];
    ss_server_address(taken, in_use, sizeof in_use);
    int before = ts_count_fds();
    for (int i = 0; i < 1024; i++) {
        ss_server *srv = (ss_server *)&srv;
        const char *url = i % 2 ? in_use : "tcp://127.0.0.1:70000";
        int want = i % 2 ? -EADDRINUSE : SS_EURLPORTRANGE;
        assert_int_equal(ss_server_new(&srv, url, NULL, &ts_echo, NULL), want);
        assert_null(srv);
    }
    assert_int_equal(ts_count_fds(), before);
    ss_server_free(taken);
}

static void test_bind_and_activate_separately(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &ts_echo, NULL), 0);
    assert_true(ss_server_fileno(srv) >= 0);
    assert_int_equal(ss_server_port(srv), 0);
    assert_int_equal(ss_server_activate(srv), SS_ESTATE); /* not bound yet */
    assert_int_equal(ss_server_set_backlog(srv, 0), -EINVAL);
    assert_int_equal(ss_server_set_backlog(srv, 16), 0);
    assert_int_equal(ss_server_set_reuse_port(srv, true), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_true(ss_server_port(srv) > 0);
    assert_int_equal(ss_server_set_reuse_address(srv, false), SS_ESTATE);
    assert_int_equal(ss_server_bind(srv), SS_ESTATE);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_backlog(srv, 8), SS_ESTATE);

    /* with SO_REUSEPORT on both, a second server may share the port */
    char url[64];
    ss_server_address(srv, url, sizeof url);
    ss_server *twin;
    assert_int_equal(ss_server_create(&twin, url, NULL, &ts_echo, NULL), 0);
    assert_int_equal(ss_server_set_reuse_port(twin, true), 0);
    assert_int_equal(ss_server_bind(twin), 0);
    ss_server_free(twin);
    ss_server_free(srv);
}

static int check_cloexec(ss_request *req, void *data)
{
    int *flags = data;
    *flags = fcntl(ss_request_fileno(req), F_GETFD);
    return 0;
}

static void test_every_fd_is_close_on_exec(void **state)
{
    (void)state;
    enum { MAX_FD = 1024 };
    static bool open_before[MAX_FD];
    for (int fd = 0; fd < MAX_FD; fd++)
        open_before[fd] = fcntl(fd, F_GETFD) >= 0;
    int request_flags = 0;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = check_cloexec};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, &request_flags), 0);
    /* every descriptor the server opened, including its wake-up pipe */
    int opened = 0;
    for (int fd = 0; fd < MAX_FD; fd++) {
        int flags = fcntl(fd, F_GETFD);
        if (flags >= 0 && !open_before[fd]) {
            opened++;
            assert_true(flags & FD_CLOEXEC);
        }
    }
    assert_int_equal(opened, 4); /* listener, two pipe ends, the spare for shedding */
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_true(request_flags & FD_CLOEXEC);
    close(fd);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_ipv4),
        cmocka_unit_test(test_echo_ipv6),
        cmocka_unit_test(test_dual_stack_any_accepts_ipv4),
        cmocka_unit_test(test_close_without_serving),
        cmocka_unit_test(test_failed_creations_leak_no_fd),
        cmocka_unit_test(test_bind_and_activate_separately),
        cmocka_unit_test(test_every_fd_is_close_on_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
