/* Limits on what the server takes on, for every dispatcher: at
 * max_connections the listener is not polled (clients wait and are served
 * later), or with an overload reply they are told and closed; at most
 * max_per_client requests per IP address or Unix user. (A request timeout
 * freeing a stalled client's slot: tests/core/test_request_timeout.c.)
 * Handlers may run in a forked child: they never call cmocka. */
#include "dispatch_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct limits {
    int max_connections, per_client;
    const char *reply; /* NULL: no overload reply */
} limits;

static ss_server *limited(const char *mode, const char *url, const ss_handler *h, void *data,
                          limits lim)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), h, data), 0);
    assert_int_equal(ss_server_set_workers(srv, 4), 0);      /* pool: room beyond the limit */
    assert_int_equal(ss_server_set_max_children(srv, 4), 0); /* forking: likewise */
    assert_int_equal(ss_server_set_max_connections(srv, lim.max_connections), 0);
    assert_int_equal(ss_server_set_max_per_client(srv, lim.per_client), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, lim.reply), 0);
    /* a child left holding a client by a failed test still ends */
    ss_server_set_request_timeout(srv, 10000);
    ss_server_on_handle_error(srv, td_quiet_error); /* timed-out handlers fail */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* Receives `want` and then the end of the connection. */
static void expect_refusal(int fd, const char *want)
{
    if (*want != '\0')
        td_expect(fd, want);
    assert_true(ts_sees_eof(fd));
    close(fd);
}

/* ---- max_connections: clients wait in the backlog ---- */

/* `max` clients are held; two more connect and send, and wait unserved,
 * unaccepted; each is served as a held one leaves. None is refused. */
static void extra_clients_wait(void **state)
{
    const char *mode = *state;
    int max = strcmp(mode, "sync") == 0 ? 1 : 2;
    ss_server *srv =
        limited(mode, "tcp://127.0.0.1:0", &td_hold, NULL, (limits){.max_connections = max});
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int held[2], waiting[2];
    for (int i = 0; i < max; i++) {
        held[i] = ts_connect(srv);
        td_round_trip(held[i], "busy\n");
    }
    for (int i = 0; i < 2; i++) {
        waiting[i] = ts_connect(srv); /* not refused: the kernel backlog holds it */
        ts_send(waiting[i], i == 0 ? "one\n" : "two\n", 4);
    }
    assert_true(td_quiet_for(waiting[0], 300));
    assert_true(td_quiet_for(waiting[1], 1));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.accepted, max);
    assert_int_equal(st.active, max);
    long long start = ts_now_ms();
    td_release(held[0]);
    td_expect(waiting[0], "one\n");
    assert_true(ts_now_ms() - start < 2000); /* woken at once, not by the poll interval */
    if (max == 2) {
        assert_true(td_quiet_for(waiting[1], 100));
        td_release(held[1]);
    } else {
        td_release(waiting[0]);
    }
    td_expect(waiting[1], "two\n");
    td_release(waiting[1]);
    if (max == 2)
        td_release(waiting[0]);
    assert_true(td_wait_closed(srv, (uint64_t)max + 2, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    st = td_stats(srv);
    assert_int_equal(st.handled, max + 2);
    assert_int_equal(st.rejected, 0);
    assert_true(td_wait_active(srv, 0, 5000));
    ss_server_free(srv);
}

/* Raising the limit lets the loop poll the listener again at once, not
 * after a poll interval. */
static void test_raising_limit_takes_effect_at_once(void **state)
{
    (void)state;
    ss_server *srv =
        limited("threading", "tcp://127.0.0.1:0", &td_hold, NULL, (limits){.max_connections = 1});
    ts_runner runner;
    ts_start(&runner, srv, 60000);
    int first = ts_connect(srv);
    td_round_trip(first, "one\n");
    int second = ts_connect(srv);
    ts_send(second, "two\n", 4);
    assert_true(td_quiet_for(second, 200));
    long long start = ts_now_ms();
    assert_int_equal(ss_server_set_max_connections(srv, 2), 0);
    td_expect(second, "two\n");
    assert_true(ts_now_ms() - start < 2000);
    td_release(first);
    td_release(second);
    assert_true(td_wait_closed(srv, 2, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* ---- max_connections with an overload reply: refused at once ---- */

static void overload_reply(void **state)
{
    const char *mode = *state;
    ss_server *srv = limited(mode, "tcp://127.0.0.1:0", &td_hold, NULL,
                             (limits){.max_connections = 1, .reply = "busy, try later\n"});
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int held = ts_connect(srv);
    td_round_trip(held, "mine\n");
    expect_refusal(ts_connect(srv), "busy, try later\n");
    expect_refusal(ts_connect(srv), "busy, try later\n");
    ss_stats st = td_stats(srv);
    assert_int_equal(st.rejected, 2);
    assert_int_equal(st.rejected_limit, 2);
    assert_int_equal(st.rejected_verify + st.rejected_per_client, 0);
    td_release(held);
    assert_true(td_wait_active(srv, 0, 5000)); /* forking: once the child is reaped */
    int next = ts_connect(srv);
    td_round_trip(next, "room again\n");
    td_release(next);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(td_stats(srv).handled, 2);
    ss_server_free(srv);
}

/* "" refuses without a word. */
static void test_empty_overload_reply_just_closes(void **state)
{
    (void)state;
    ss_server *srv = limited("threading", "tcp://127.0.0.1:0", &td_hold, NULL,
                             (limits){.max_connections = 1, .reply = ""});
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int held = ts_connect(srv);
    td_round_trip(held, "mine\n");
    expect_refusal(ts_connect(srv), "");
    assert_int_equal(td_stats(srv).rejected_limit, 1);
    td_release(held);
    assert_true(td_wait_closed(srv, 2, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

/* A datagram server sends the overload reply as the answer datagram. */
static void test_overload_reply_to_datagram(void **state)
{
    (void)state;
    td_gate gate;
    td_gate_init(&gate);
    ss_server *srv;
    int rc = ss_server_create(&srv, "udp://127.0.0.1:0", ss_dispatch_threading(),
                              &td_echo_when_released, &gate);
    if (rc == SS_ENOTSUPPORTED)
        skip();
    assert_int_equal(rc, 0);
    assert_int_equal(ss_server_set_max_connections(srv, 1), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, "busy\n"), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    ts_send(fd, "first\n", 6);
    assert_true(td_wait_active(srv, 1, 5000));
    ts_send(fd, "second\n", 7);
    td_expect(fd, "busy\n");
    atomic_store(&gate.open, true);
    td_expect(fd, "first\n");
    close(fd);
    assert_true(td_wait_closed(srv, 2, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(td_stats(srv).rejected_limit, 1);
    ss_server_free(srv);
}

/* ---- max_per_client ---- */

/* A TCP client bound to `ip` (any 127.x.y.z is loopback on Linux), or -1
 * where the system does not let us pick the source address. */
static int connect_from(const ss_server *srv, const char *ip)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &me.sin_addr);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
        close(fd);
        return -1;
    }
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ss_server_port(srv))};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* One request per IP address: a second from the same address is refused
 * while another address is served; once the first ends (forking: once its
 * child is reaped) the address may connect again. */
static void per_client_ip(void **state)
{
    const char *mode = *state;
    ss_server *srv = limited(mode, "tcp://127.0.0.1:0", &td_hold, NULL,
                             (limits){.per_client = 1, .reply = "one at a time\n"});
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int first = connect_from(srv, "127.0.0.1");
    int other = connect_from(srv, "127.0.0.2");
    if (other < 0)
        skip();
    td_round_trip(first, "first\n");
    expect_refusal(connect_from(srv, "127.0.0.1"), "one at a time\n");
    td_round_trip(other, "another address\n");
    assert_int_equal(td_stats(srv).rejected_per_client, 1);
    td_release(first);
    assert_true(td_wait_active(srv, 1, 5000)); /* the entry for 127.0.0.1 is gone */
    int again = connect_from(srv, "127.0.0.1");
    td_round_trip(again, "again\n");
    td_release(again);
    td_release(other);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.handled, 3);
    ss_server_free(srv);
}

/* Unix stream clients are told apart by user: all of ours are one user. */
static void test_per_client_unix_uid(void **state)
{
    (void)state;
    char dir[256], url[512];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(url, sizeof url, "unix:%s/s.sock", dir);
    ss_server *srv = limited("threading", url, &td_hold, NULL, (limits){.per_client = 2});
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int a = ts_connect(srv), b = ts_connect(srv);
    td_round_trip(a, "a\n");
    td_round_trip(b, "b\n");
    expect_refusal(ts_connect(srv), ""); /* no overload reply: just closed */
    assert_int_equal(td_stats(srv).rejected_per_client, 1);
    td_release(a);
    assert_true(td_wait_active(srv, 1, 5000));
    int c = ts_connect(srv);
    td_round_trip(c, "c\n");
    td_release(b);
    td_release(c);
    assert_true(td_wait_closed(srv, 4, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    ts_rmdir(dir);
}

/* ---- options ---- */

static void test_options(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &td_hold, NULL), 0);
    assert_int_equal(ss_server_set_max_connections(srv, -1), -EINVAL);
    assert_int_equal(ss_server_set_max_per_client(srv, -1), -EINVAL);
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ss_server_set_overload_reply(srv, big), -EINVAL);
    assert_int_equal(ss_server_set_overload_reply(srv, "a"), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, "b"), 0); /* replaces, no leak */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_max_connections(srv, 3), 0); /* any time */
    assert_int_equal(ss_server_set_max_per_client(srv, 1), SS_ESTATE);
    assert_int_equal(ss_server_set_overload_reply(srv, NULL), SS_ESTATE);
    ss_server_free(srv);
}

/* The test on each concurrent dispatcher. */
#define FOR_MODES(f)                                                                               \
    TS_MODE_TEST(f, "threading"), TS_MODE_TEST(f, "pool"), TS_MODE_TEST(f, "forking")

int main(void)
{
    const struct CMUnitTest tests[] = {
        TS_MODE_TEST(extra_clients_wait, "sync"),
        FOR_MODES(extra_clients_wait),
        cmocka_unit_test(test_raising_limit_takes_effect_at_once),
        FOR_MODES(overload_reply),
        cmocka_unit_test(test_empty_overload_reply_just_closes),
        cmocka_unit_test(test_overload_reply_to_datagram),
        TS_MODE_TEST(per_client_ip, "threading"),
        TS_MODE_TEST(per_client_ip, "forking"),
        cmocka_unit_test(test_per_client_unix_uid),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
