/* An end of stream that arrives together with the client's last bytes:
 * the client connects, pauses (so a pool fiber has parked on the socket
 * by then), sends its request and shuts its side down in one go, then
 * reads to EOF. Every handler must see that end of stream and return, on
 * every dispatcher and stream transport: each client gets its reply and
 * then EOF, and the server closes every socket (stats.active back to 0).
 * Handlers may run in a forked child: they never call cmocka. */
#include "dispatch_support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define CLIENTS      100
#define PAUSE_MS     30    /* long enough for a fiber to park on the socket */
#define CLIENT_WAIT  20000 /* ms, for all clients together */
#define SERVER_DRAIN 300   /* ms, ends what the bug left hanging */

/* Reads lines until the end of stream, answering each with "OK <line>". */
static int line_handle(ss_request *req, void *data)
{
    (void)data;
    char line[128];
    ssize_t n;
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) {
        int rc = ss_request_send_all(req, "OK ", 3);
        if (rc == 0)
            rc = ss_request_send_all(req, line, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}
static const ss_handler line_handler = {.version = SS_HANDLER_VERSION, .handle = line_handle};

/* Reads until the end of stream, answering nothing. */
static int sink_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[256];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
        ;
    return (int)n;
}
static const ss_handler sink_handler = {.version = SS_HANDLER_VERSION, .handle = sink_handle};

typedef struct scenario {
    const char *mode;
    const char *transport; /* "tcp" or "unix" */
} scenario;

static ss_server *server(const scenario *sc, const ss_handler *h, char *dir, size_t dir_size)
{
    char url[600] = "tcp://127.0.0.1:0";
    if (strcmp(sc->transport, "unix") == 0) {
        ts_mkdtemp(dir, dir_size);
        snprintf(url, sizeof url, "unix://%s/s", dir);
    }
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(sc->mode), h, NULL), 0);
    ss_server_on_handle_error(srv, td_quiet_error); /* drained leftovers fail */
    assert_int_equal(ss_server_set_max_children(srv, CLIENTS), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* Reads everything until EOF, or until the deadline; true on EOF. */
static bool read_to_eof(int fd, char *buf, size_t size, size_t *got, long long deadline)
{
    *got = 0;
    for (;;) {
        long long left = deadline - ts_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return false;
        ssize_t n = recv(fd, buf + *got, size - 1 - *got, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return false;
        if (n > 0)
            *got += (size_t)n;
        if (*got == size - 1)
            return false; /* more than any reply here */
    }
    buf[*got] = '\0';
    return true;
}

/* Connects every client, pauses, then each sends `request` and shuts its
 * writing side down at once, or with no `reply` to wait for, closes its
 * socket. Returns how many got `reply` and then EOF. */
static int clients_run(ss_server *srv, const char *request, const char *reply)
{
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = ts_connect(srv);
    usleep(PAUSE_MS * 1000);
    for (int i = 0; i < CLIENTS; i++) {
        ts_send(fds[i], request, strlen(request));
        /* A forked child holds a copy of fds[i]: only shutdown ends the
         * stream whatever copies exist. */
        assert_int_equal(shutdown(fds[i], reply == NULL ? SHUT_RDWR : SHUT_WR), 0);
        if (reply == NULL)
            close(fds[i]);
    }
    if (reply == NULL)
        return CLIENTS;
    int good = 0;
    long long deadline = ts_now_ms() + CLIENT_WAIT;
    for (int i = 0; i < CLIENTS; i++) {
        char buf[256];
        size_t got;
        if (read_to_eof(fds[i], buf, sizeof buf, &got, deadline) && strcmp(buf, reply) == 0)
            good++;
        close(fds[i]);
    }
    return good;
}

/* Every client answered and at EOF; every server socket closed. Then the
 * server is stopped; a drain ends whatever the failure left running so
 * the test ends either way. */
static void run(const scenario *sc, const ss_handler *h, const char *request, const char *reply)
{
    print_message("%s over %s\n", sc->mode, sc->transport);
    char dir[512] = "";
    ss_server *srv = server(sc, h, dir, sizeof dir);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int good = clients_run(srv, request, reply);
    /* clients that only send may be done before all are accepted */
    bool all_closed = td_wait_accepted(srv, CLIENTS, 10000) && td_wait_active(srv, 0, 10000);
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    ss_server_drain(srv, SERVER_DRAIN);
    ss_server_free(srv);
    if (dir[0] != '\0')
        ts_rmdir(dir);
    assert_int_equal(good, CLIENTS);
    assert_true(all_closed);
    assert_int_equal(st.accepted, CLIENTS);
    assert_int_equal(st.closed, CLIENTS);
}

/* The line protocol: "ECHO x\n" answered, then the end of stream seen. */
static void test_line_then_eof(void **state)
{
    run(*state, &line_handler, "ECHO x\n", "OK ECHO x\n");
}

/* The raw echo: recv until 0. */
static void test_echo_then_eof(void **state)
{
    run(*state, &ts_echo, "hello", "hello");
}

/* Send and close, to a handler that reads to the end and answers
 * nothing (an answer would draw a reset, a later event of its own): the
 * server still closes every socket. */
static void test_send_and_close(void **state)
{
    run(*state, &sink_handler, "hello", NULL);
}

/* No newline: the reader's last, partial line comes with the end. */
static void test_partial_line_then_eof(void **state)
{
    run(*state, &line_handler, "hello", "OK hello");
}

#define SCENARIO(m, t)                                                                             \
    {                                                                                              \
        .mode = m, .transport = t                                                                  \
    }
static const scenario scenarios[] = {
    SCENARIO("pool", "tcp"),    SCENARIO("pool", "unix"),     SCENARIO("sync", "tcp"),
    SCENARIO("sync", "unix"),   SCENARIO("threading", "tcp"), SCENARIO("threading", "unix"),
    SCENARIO("forking", "tcp"), SCENARIO("forking", "unix"),
};

#define FOR(test)                                                                                  \
    cmocka_unit_test_prestate(test, (void *)&scenarios[0]),                                        \
        cmocka_unit_test_prestate(test, (void *)&scenarios[1]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[2]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[3]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[4]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[5]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[6]),                                    \
        cmocka_unit_test_prestate(test, (void *)&scenarios[7])

int main(void)
{
    const struct CMUnitTest tests[] = {
        FOR(test_line_then_eof),
        FOR(test_echo_then_eof),
        FOR(test_partial_line_then_eof),
        FOR(test_send_and_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
