/* Python's class matrix: every transport x dispatcher combination, built
 * with the one-line constructors, answers three clients in turn (the 12
 * combinations of Python's test_socketserver plus the pool). Transports
 * not built in are skipped. Then what tells the dispatchers apart: 20
 * clients held open at once are all answered by the concurrent ones,
 * while the sync one makes a second client wait for the first. Forking
 * cases run while the test has a child of its own (Python issue 1540386). */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

typedef int (*inet_ctor)(ss_server **, const char *, int, const ss_handler *, void *);
typedef int (*unix_ctor)(ss_server **, const char *, const ss_handler *, void *);

typedef struct combo {
    const char *scheme; /* tcp, udp, unix, unixgram */
    const char *mode;   /* sync, threading, forking, pool */
    inet_ctor inet;
    unix_ctor local;
} combo;

#define INET(s, m, f)                                                                              \
    {                                                                                              \
        s, m, f, NULL                                                                              \
    }
#define LOCAL(s, m, f)                                                                             \
    {                                                                                              \
        s, m, NULL, f                                                                              \
    }

static const combo combos[] = {
    INET("tcp", "sync", ss_tcp_server_new),
    INET("udp", "sync", ss_udp_server_new),
    LOCAL("unix", "sync", ss_unix_stream_server_new),
    LOCAL("unixgram", "sync", ss_unix_datagram_server_new),
    INET("tcp", "threading", ss_threading_tcp_server_new),
    INET("udp", "threading", ss_threading_udp_server_new),
    LOCAL("unix", "threading", ss_threading_unix_stream_server_new),
    LOCAL("unixgram", "threading", ss_threading_unix_datagram_server_new),
    INET("tcp", "forking", ss_forking_tcp_server_new),
    INET("udp", "forking", ss_forking_udp_server_new),
    LOCAL("unix", "forking", ss_forking_unix_stream_server_new),
    LOCAL("unixgram", "forking", ss_forking_unix_datagram_server_new),
    INET("tcp", "pool", ss_pool_tcp_server_new),
    INET("udp", "pool", ss_pool_udp_server_new),
    LOCAL("unix", "pool", ss_pool_unix_stream_server_new),
    LOCAL("unixgram", "pool", ss_pool_unix_datagram_server_new),
};

/* Builds the combination's server, or skips the test if its transport is
 * not built in. `dir` receives the temp dir of a Unix socket ("" else). */
static ss_server *build(const combo *c, const ss_handler *h, char *dir, size_t size)
{
    ss_server *srv = NULL;
    int rc;
    dir[0] = '\0';
    if (c->inet != NULL) {
        rc = c->inet(&srv, "127.0.0.1", 0, h, NULL);
    } else {
        char path[300];
        ts_mkdtemp(dir, size);
        snprintf(path, sizeof path, "%s/s", dir);
        rc = c->local(&srv, path, h, NULL);
    }
    if (rc == SS_ENOTSUPPORTED) {
        if (dir[0] != '\0')
            ts_rmdir(dir);
        skip();
    }
    if (rc < 0)
        fail_msg("%s/%s: %s", c->scheme, c->mode, ss_strerror(rc));
    return srv;
}

static void echo_three_times(void **state)
{
    const combo *c = *state;
    char dir[256];
    ss_server *srv = build(c, &td_echo_line, dir, sizeof dir);
    char url[256];
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    assert_int_equal(strncmp(url, c->scheme, strlen(c->scheme)), 0);
    assert_int_equal(url[strlen(c->scheme)], ':');
    ts_runner runner;
    ts_start(&runner, srv, 100);
    for (int i = 0; i < 3; i++) { /* Python's test sends three times */
        int fd = ts_connect_url(url);
        td_round_trip(fd, "hello world\n");
        close(fd);
    }
    assert_true(td_wait_closed(srv, 3, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv); /* forking: waits for and counts the children */
    ss_stats st = td_stats(srv);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(st.handled, 3);
    assert_int_equal(st.handler_errors, 0);
    assert_int_equal(td_stats(srv).tracked, 0);
    ss_server_free(srv);
    if (dir[0] != '\0')
        ts_rmdir(dir);
}

/* ---- what tells the dispatchers apart ---- */

static ss_server *tcp_server(const char *mode, const ss_handler *h)
{
    ss_server *srv;
    int rc = ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), h, NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(ss_server_set_workers(srv, 20), 0); /* only the pool reads it */
    /* a forked child left holding a client by a failed test still ends */
    ss_server_set_request_timeout(srv, 10000);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* 20 clients connect and stay; each is answered while all are open. */
static void twenty_clients_held_open(void **state)
{
    const char *mode = *state;
    ss_server *srv = tcp_server(mode, &td_hold);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fds[20];
    for (int i = 0; i < 20; i++)
        fds[i] = ts_connect(srv);
    for (int i = 0; i < 20; i++) {
        char line[32];
        snprintf(line, sizeof line, "client %d\n", i);
        td_round_trip(fds[i], line);
    }
    assert_int_equal(td_stats(srv).active, 20);
    for (int i = 0; i < 20; i++)
        td_release(fds[i]);
    assert_true(td_wait_closed(srv, 20, 10000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv);
    assert_int_equal(td_stats(srv).handled, 20);
    ss_server_free(srv);
}

static void sync_second_client_waits_for_first(void **state)
{
    (void)state;
    ss_server *srv = tcp_server("sync", &td_hold);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int first = ts_connect(srv);
    td_round_trip(first, "one\n");
    int second = ts_connect(srv); /* connects: the kernel backlog takes it */
    ts_send(second, "two\n", 4);
    assert_true(td_quiet_for(second, 300));
    close(first);
    char got[8] = {0};
    assert_int_equal(ts_recv_exact(second, got, 4), 4);
    assert_string_equal(got, "two\n");
    close(second);
    assert_true(td_wait_closed(srv, 2, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void dispatchers_by_name(void **state)
{
    (void)state;
    const char *names[] = {"sync", "threading", "forking", "pool"};
    const ss_dispatcher *want[] = {ss_dispatch_sync(), ss_dispatch_threading(),
                                   ss_dispatch_forking(), ss_dispatch_pool()};
    for (int i = 0; i < 4; i++) {
        assert_ptr_equal(ss_dispatch_by_name(names[i]), want[i]);
        assert_string_equal(ss_dispatch_name(want[i]), names[i]);
    }
    assert_null(ss_dispatch_by_name("asyncio"));
    assert_null(ss_dispatch_by_name(NULL));
}

static void constructor_arguments(void **state)
{
    (void)state;
    ss_server *srv = (ss_server *)1;
    assert_int_equal(ss_tcp_server_new(&srv, "127.0.0.1", 65536, &td_echo_line, NULL), -EINVAL);
    assert_null(srv);
    assert_int_equal(ss_threading_tcp_server_new(&srv, "127.0.0.1", -1, &td_echo_line, NULL),
                     -EINVAL);
    char url[128];
    /* IPv6 needs no brackets from the caller */
    int rc = ss_threading_tcp_server_new(&srv, "::1", 0, &td_echo_line, NULL);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT)
        skip(); /* no IPv6 loopback here */
    assert_int_equal(rc, 0);
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    assert_int_equal(strncmp(url, "tcp://[::1]:", 12), 0);
    ss_server_free(srv);
    /* no host: every IPv4 address, as Python's "" */
    assert_int_equal(ss_pool_tcp_server_new(&srv, NULL, 0, &td_echo_line, NULL), 0);
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    assert_int_equal(strncmp(url, "tcp://0.0.0.0:", 14), 0);
    ss_server_free(srv);
}

int main(void)
{
    enum { N = sizeof combos / sizeof combos[0] };
    struct CMUnitTest tests[N + 6];
    static char names[N][64];
    for (size_t i = 0; i < N; i++) {
        const combo *c = &combos[i];
        bool forking = strcmp(c->mode, "forking") == 0;
        snprintf(names[i], sizeof names[i], "echo_x3_%s_%s", c->scheme, c->mode);
        tests[i] = (struct CMUnitTest){
            .name = names[i],
            .test_func = echo_three_times,
            .setup_func = forking ? td_own_child_setup : NULL,
            .teardown_func = forking ? td_own_child_teardown : NULL,
            .initial_state = (void *)c,
        };
    }
    static const char *modes[] = {"threading", "forking", "pool"};
    for (size_t i = 0; i < 3; i++) {
        bool forking = strcmp(modes[i], "forking") == 0;
        tests[N + i] = (struct CMUnitTest){
            .name = i == 0   ? "twenty_clients_threading"
                    : i == 1 ? "twenty_clients_forking"
                             : "twenty_clients_pool",
            .test_func = twenty_clients_held_open,
            .setup_func = forking ? td_own_child_setup : NULL,
            .teardown_func = forking ? td_own_child_teardown : NULL,
            .initial_state = (void *)modes[i],
        };
    }
    tests[N + 3] = (struct CMUnitTest)cmocka_unit_test(sync_second_client_waits_for_first);
    tests[N + 4] = (struct CMUnitTest)cmocka_unit_test(dispatchers_by_name);
    tests[N + 5] = (struct CMUnitTest)cmocka_unit_test(constructor_arguments);
    return _cmocka_run_group_tests("test_matrix", tests, N + 6, NULL, NULL);
}
