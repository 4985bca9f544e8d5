/* Admission (src/core/admission.c, src/core/limits.c) in process: the
 * decision made on a client that has arrived, before any request exists.
 * The server's transport is swapped for a copy whose get_request hands
 * out a script of arrivals and errors and whose turn_away and
 * end_request record what they were given; client_key stays the real
 * transport's (IPv4, IPv6, the Unix peer's uid). Nothing is bound: the
 * only real sockets are the Unix socketpairs whose peer credentials give
 * the uid key. The same rules over real sockets are tests/core/. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <poll.h>
#include <unistd.h>

#include <cmocka.h>

enum { MAX_SCRIPT = 64 };

/* One step of the script: an arrival (err 0) or get_request's error. */
typedef struct step {
    int err;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    int fd;
} step;

static struct {
    step steps[MAX_SCRIPT];
    int count, next;
    int gets;                 /* get_request calls, past the script's end too */
    int gets_without_reserve; /* ... made while the reserve fd was given up */
    int turned_away, replies, ended;
    char reply[64];
    uint_fast64_t active_at_turn_away; /* count.active when turn_away ran */
    int last_turned_fd;
} script;

static ss__transport fake_table;
static const ss__transport *real_transport;

static int fake_get_request(ss__listener *l, ss__arrival *out)
{
    const ss_server *srv = l->server;
    script.gets++;
    if (srv->reserve_fd < 0)
        script.gets_without_reserve++;
    if (script.next == script.count)
        return -EAGAIN;
    step *s = &script.steps[script.next++];
    if (s->err < 0)
        return s->err;
    *out = (ss__arrival){.fd = s->fd, .peer = s->peer, .peer_len = s->peer_len};
    return 0;
}

static void fake_turn_away(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len)
{
    ss_server *srv = l->server;
    script.turned_away++;
    script.active_at_turn_away = atomic_load(&srv->count->active);
    script.last_turned_fd = arrival->fd;
    if (len > 0) {
        script.replies++;
        assert_true(len < sizeof script.reply);
        memcpy(script.reply, reply, len);
        script.reply[len] = '\0';
    }
    if (arrival->fd >= 0)
        close(arrival->fd);
}

static void fake_end_request(ss_request *req)
{
    script.ended++;
    if (req->fd >= 0)
        close(req->fd);
}

static int handle_none(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static char log_lines[8][160];
static int log_count;

static void keep_log(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)level;
    (void)data;
    if (log_count < 8)
        snprintf(log_lines[log_count], sizeof log_lines[0], "%s", message);
    log_count++;
}

/* A server on `url` (created, not bound) whose transport is the fake. */
static ss_server *server_new(const char *url)
{
    static const ss_handler none = {.version = SS_HANDLER_VERSION, .handle = handle_none};
    memset(&script, 0, sizeof script);
    log_count = 0;
    ss_server *srv = NULL;
    assert_int_equal(ss_server_create(&srv, url, NULL, &none, NULL), 0);
    ss_server_set_log(srv, keep_log);
    real_transport = srv->listeners[0]->transport;
    fake_table = *real_transport; /* its client_key and properties */
    fake_table.get_request = fake_get_request;
    fake_table.turn_away = fake_turn_away;
    fake_table.end_request = fake_end_request;
    srv->listeners[0]->transport = &fake_table;
    return srv;
}

static void server_free(ss_server *srv)
{
    srv->listeners[0]->transport = real_transport;
    ss_server_free(srv);
}

static step *add_step(void)
{
    assert_true(script.count < MAX_SCRIPT);
    step *s = &script.steps[script.count++];
    *s = (step){.fd = -1};
    return s;
}

static void script_error(int err)
{
    add_step()->err = err;
}

static void script_ipv4(const char *ip, int port)
{
    step *s = add_step();
    struct sockaddr_in *in = (struct sockaddr_in *)&s->peer;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    s->peer_len = sizeof *in;
}

static void script_ipv6(const char *ip, int port)
{
    step *s = add_step();
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&s->peer;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    s->peer_len = sizeof *in6;
}

/* A Unix stream client: one end of a socketpair, whose peer credentials
 * are this process's (so its uid). *other gets the end kept by the test. */
static void script_unix(int *other)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    step *s = add_step();
    s->fd = sv[0];
    s->peer.ss_family = AF_UNIX;
    s->peer_len = sizeof(sa_family_t);
    *other = sv[1];
}

static ss_stats stats(const ss_server *srv)
{
    ss_stats st;
    ss_server_stats(srv, &st);
    return st;
}

/* Whether something wrote to the server's wake-up pipe (and empties it). */
static bool loop_woken(ss_server *srv)
{
    struct pollfd p = {.fd = srv->stop.wake_read, .events = POLLIN};
    bool woken = poll(&p, 1, 0) == 1;
    ss__server_drain_wake(srv);
    return woken;
}

/* ---- max_connections ---- */

/* Without an overload reply, at the limit the loop stops polling the
 * listener (clients wait in the backlog); a request that ends makes room
 * and wakes the loop. */
static void test_max_connections_stops_polling(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    assert_int_equal(ss_server_set_max_connections(srv, 2), 0);
    loop_woken(srv); /* the setter wakes the loop to apply the new limit */
    script_ipv4("10.0.0.1", 1000);
    script_ipv4("10.0.0.2", 1000);
    assert_true(ss__limits_have_room(srv));
    ss_request *a = ss__admit_next(srv->listeners[0]);
    assert_non_null(a);
    assert_true(ss__limits_have_room(srv));
    ss_request *b = ss__admit_next(srv->listeners[0]);
    assert_non_null(b);
    assert_false(ss__limits_have_room(srv)); /* the listener is left alone */
    assert_int_equal(stats(srv).active, 2);
    assert_false(loop_woken(srv));
    ss__request_end(a);
    assert_true(loop_woken(srv)); /* the loop sleeps without the listener: room now */
    assert_true(ss__limits_have_room(srv));
    ss__request_end(b);
    assert_int_equal(stats(srv).accepted, 2);
    assert_int_equal(stats(srv).closed, 2);
    assert_int_equal(stats(srv).rejected, 0);
    assert_int_equal(script.turned_away, 0);
    server_free(srv);
}

/* With an overload reply the listener stays polled: a client over the
 * limit is accepted, sent the reply and closed, and never counted active. */
static void test_max_connections_refuses_with_reply(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    assert_int_equal(ss_server_set_max_connections(srv, 1), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, "busy\n"), 0);
    script_ipv4("10.0.0.1", 1000);
    script_ipv4("10.0.0.2", 1000);
    script_ipv4("10.0.0.3", 1000);
    ss_request *a = ss__admit_next(srv->listeners[0]);
    assert_non_null(a);
    assert_true(ss__limits_have_room(srv));
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(script.turned_away, 1);
    assert_string_equal(script.reply, "busy\n");
    assert_int_equal(script.active_at_turn_away, 1); /* only a's */
    ss_stats st = stats(srv);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.rejected_limit, 1);
    assert_int_equal(st.rejected_per_client, 0);
    assert_int_equal(st.closed, 1);
    ss__request_end(a);
    ss_request *c = ss__admit_next(srv->listeners[0]); /* room again */
    assert_non_null(c);
    assert_string_equal(ss_request_client_name(c), "10.0.0.3:1000");
    ss__request_end(c);
    assert_int_equal(stats(srv).active, 0);
    assert_int_equal(stats(srv).closed, 3);
    assert_int_equal(script.ended, 2);
    server_free(srv);
}

/* ---- max_per_client ---- */

static ss_request *admitted(ss_server *srv)
{
    ss_request *req = ss__admit_next(srv->listeners[0]);
    assert_non_null(req);
    return req;
}

static void refused(ss_server *srv)
{
    int before = script.turned_away;
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(script.turned_away, before + 1);
}

/* An IPv4 client is its address (any port); an IPv6 client its address,
 * with an IPv4-mapped one the same client as the plain IPv4 address. */
static void test_per_client_inet_keys(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    assert_int_equal(ss_server_set_max_per_client(srv, 2), 0);
    script_ipv4("10.0.0.1", 1000);
    script_ipv4("10.0.0.1", 1001);
    script_ipv4("10.0.0.1", 1002);        /* a third: refused */
    script_ipv6("::ffff:10.0.0.1", 1003); /* the same client */
    script_ipv4("10.0.0.2", 1000);        /* another client */
    script_ipv6("2001:db8::1", 1000);
    script_ipv6("2001:db8::1", 1001);
    script_ipv6("2001:db8::1", 1002); /* refused */
    script_ipv6("2001:db8::2", 1000);
    ss_request *a1 = admitted(srv), *a2 = admitted(srv);
    refused(srv);
    refused(srv);
    ss_request *b = admitted(srv);
    ss_request *c1 = admitted(srv), *c2 = admitted(srv);
    refused(srv);
    ss_request *d = admitted(srv);
    assert_int_equal(script.replies, 0);             /* no overload reply set: none sent */
    assert_int_equal(script.active_at_turn_away, 5); /* a1 a2 b c1 c2 */
    ss_stats st = stats(srv);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.rejected_per_client, 3);
    assert_int_equal(st.rejected_limit, 0);
    assert_int_equal(st.active, 6);
    assert_int_equal(st.accepted, 9);
    /* a request's end gives its client's place back */
    ss__request_end(a1);
    script_ipv6("::ffff:10.0.0.1", 2000);
    script_ipv4("10.0.0.1", 2001);
    ss_request *a3 = admitted(srv);
    refused(srv);
    ss_request *all[] = {a2, a3, b, c1, c2, d};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        ss__request_end(all[i]);
    /* every place given back: each client has its two again */
    script_ipv4("10.0.0.1", 3000);
    script_ipv4("10.0.0.1", 3001);
    script_ipv6("2001:db8::1", 3000);
    script_ipv6("2001:db8::1", 3001);
    ss_request *again[4];
    for (int i = 0; i < 4; i++)
        again[i] = admitted(srv);
    for (int i = 0; i < 4; i++)
        ss__request_end(again[i]);
    assert_int_equal(stats(srv).active, 0);
    assert_int_equal(stats(srv).rejected_per_client, 4);
    server_free(srv);
}

/* A refusal by max_per_client gets the overload reply too, if one is set. */
static void test_per_client_refusal_gets_the_reply(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    assert_int_equal(ss_server_set_max_per_client(srv, 1), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, "slow down\n"), 0);
    script_ipv4("10.0.0.1", 1000);
    script_ipv4("10.0.0.1", 1001);
    ss_request *a = admitted(srv);
    refused(srv);
    assert_string_equal(script.reply, "slow down\n");
    assert_int_equal(stats(srv).rejected_per_client, 1);
    ss__request_end(a);
    server_free(srv);
}

/* A Unix stream client is its peer's uid: two connections of this
 * process are one client. A peer whose credentials cannot be read is not
 * limited per client. */
static void test_per_client_unix_uid(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "unix:///tmp/ss-unit-admission-%ld.sock", (long)getpid());
    ss_server *srv = server_new(url);
    assert_int_equal(ss_server_set_max_per_client(srv, 1), 0);
    int keep[3];
    script_unix(&keep[0]);
    script_unix(&keep[1]);
    add_step(); /* fd -1: no credentials, no key */
    script_unix(&keep[2]);
    ss_request *a = admitted(srv);
    int second_fd = script.steps[1].fd;
    refused(srv);
    assert_int_equal(script.last_turned_fd, second_fd); /* the descriptor is closed */
    assert_int_equal(stats(srv).rejected_per_client, 1);
    ss_request *anonymous = admitted(srv);
    ss__request_end(a);
    ss_request *c = admitted(srv); /* the uid's place was given back */
    ss__request_end(c);
    ss__request_end(anonymous);
    for (int i = 0; i < 3; i++)
        close(keep[i]);
    assert_int_equal(stats(srv).active, 0);
    assert_int_equal(stats(srv).closed, 4);
    server_free(srv);
}

/* ---- verify_request ---- */

static bool refuse_all(ss_server *srv, ss_request *req, void *data)
{
    (void)data;
    /* it judges a real request, counted active while it exists */
    assert_int_equal(stats(srv).active, 1);
    assert_string_equal(ss_request_client_name(req), "10.0.0.9:4242");
    return false;
}

static void test_verify_refusal_ends_the_request(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    ss_server_on_verify_request(srv, refuse_all);
    script_ipv4("10.0.0.9", 4242);
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(script.turned_away, 0); /* ended as a request, not turned away */
    assert_int_equal(script.ended, 1);
    ss_stats st = stats(srv);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.rejected_verify, 1);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.active, 0);
    server_free(srv);
}

/* ---- the accept policy ---- */

/* Out of descriptors: the reserve is given up so every queued client can
 * be taken and closed at once (at most the backlog's worth + 1 per step),
 * each counted accepted, shed and closed, never active, sent nothing (not
 * even the overload reply); then the reserve is taken again and accepts
 * pause 5 ms. One message marks the burst. */
static void test_out_of_fds_sheds_with_the_reserve(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    assert_int_equal(ss_server_set_backlog(srv, 3), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, "busy\n"), 0);
    assert_true(srv->reserve_fd >= 0);
    script_error(-EMFILE);
    for (int i = 0; i < 6; i++)
        script_ipv4("10.0.0.1", 1000 + i);
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(script.gets, 1 + 4);             /* the error, then backlog + 1 */
    assert_int_equal(script.gets_without_reserve, 4); /* all with the reserve given up */
    assert_true(srv->reserve_fd >= 0);                /* and taken again */
    assert_int_equal(script.turned_away, 4);
    assert_int_equal(script.replies, 0);
    assert_int_equal(script.active_at_turn_away, 0);
    ss_stats st = stats(srv);
    assert_int_equal(st.accept_errors, 1);
    assert_int_equal(st.accept_emfile, 1);
    assert_int_equal(st.shed, 4);
    assert_int_equal(st.accepted, 4);
    assert_int_equal(st.closed, 4);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.rejected, 0);
    int pause = ss__accept_pause_ms(srv);
    assert_true(pause > 0 && pause <= 5);
    assert_int_equal(log_count, 1);
    assert_non_null(strstr(log_lines[0], "shedding"));
    /* still failing: whoever queued meanwhile is shed, until none is left */
    script.count = script.next = 0;
    script_error(-ENFILE);
    script_ipv4("10.0.0.1", 2000);
    script_ipv4("10.0.0.1", 2001);
    script.gets = 0;
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(script.gets, 1 + 3); /* two clients, then EAGAIN */
    st = stats(srv);
    assert_int_equal(st.shed, 6);
    assert_int_equal(st.accept_enfile, 1);
    assert_int_equal(st.accept_errors, 2);
    assert_int_equal(log_count, 1); /* one message per burst */
    server_free(srv);
}

/* A datagram left queued is served once memory is back: one per step. */
static void test_datagram_sheds_one(void **state)
{
    (void)state;
    ss_server *srv = server_new("udp://127.0.0.1:0");
    script_error(-ENOBUFS);
    for (int i = 0; i < 3; i++)
        script_ipv4("10.0.0.1", 1000 + i);
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(stats(srv).shed, 1);
    assert_int_equal(stats(srv).accept_enobufs, 1);
    assert_int_equal(script.next, 2);
    server_free(srv);
}

/* The pause doubles from 5 ms to 1 s while accepts keep failing, and a
 * success ends the burst: no pause, one message with the count. */
static void test_backoff_doubles_and_resets(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    const int want[] = {5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000};
    const int errs[] = {-EMFILE, -ENFILE, -ENOBUFS, -ENOMEM};
    for (int i = 0; i < 10; i++) {
        script_error(errs[i % 4]);
        assert_null(ss__admit_next(srv->listeners[0]));
        assert_int_equal(srv->accept_backoff_ms, want[i]);
        int pause = ss__accept_pause_ms(srv);
        assert_true(pause > 0 && pause <= want[i]);
    }
    ss_stats st = stats(srv);
    assert_int_equal(st.accept_errors, 10);
    assert_int_equal(st.accept_emfile, 3);
    assert_int_equal(st.accept_enfile, 3);
    assert_int_equal(st.accept_enobufs, 2);
    assert_int_equal(st.accept_enomem, 2);
    assert_int_equal(st.shed, 0); /* nobody was waiting */
    script_ipv4("10.0.0.1", 1000);
    ss_request *req = admitted(srv);
    assert_int_equal(ss__accept_pause_ms(srv), 0);
    assert_int_equal(srv->accept_backoff_ms, 0);
    assert_int_equal(log_count, 2);
    assert_non_null(strstr(log_lines[1], "resumed after 10 failed attempts"));
    ss__request_end(req);
    /* the next burst starts over at 5 ms, with its own message */
    script_error(-EMFILE);
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_int_equal(srv->accept_backoff_ms, 5);
    assert_int_equal(log_count, 3);
    server_free(srv);
}

/* A failure that is the client's (or the firewall's) is counted and
 * skipped: no shedding, no pause, no message. Nothing pending is no error. */
static void test_other_errors_counted_and_skipped(void **state)
{
    (void)state;
    ss_server *srv = server_new("tcp://127.0.0.1:0");
    const int errs[] = {-ECONNABORTED, -EPROTO, -EPERM};
    for (int i = 0; i < 3; i++) {
        script_error(errs[i]);
        script_ipv4("10.0.0.1", 1000 + i); /* queued behind: not taken */
        assert_null(ss__admit_next(srv->listeners[0]));
        assert_int_equal(script.gets, 2 * i + 1);
        assert_int_equal(ss__accept_pause_ms(srv), 0);
        ss__request_end(admitted(srv)); /* the next step takes the next client */
    }
    script_error(-EAGAIN);
    script_error(-EINTR);
    assert_null(ss__admit_next(srv->listeners[0]));
    assert_null(ss__admit_next(srv->listeners[0]));
    ss_stats st = stats(srv);
    assert_int_equal(st.accept_errors, 3);
    assert_int_equal(st.accept_emfile + st.accept_enfile + st.accept_enobufs + st.accept_enomem, 0);
    assert_int_equal(st.shed, 0);
    assert_int_equal(st.accepted, 3);
    assert_int_equal(log_count, 0);
    assert_int_equal(srv->accept_backoff_ms, 0);
    server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_connections_stops_polling),
        cmocka_unit_test(test_max_connections_refuses_with_reply),
        cmocka_unit_test(test_per_client_inet_keys),
        cmocka_unit_test(test_per_client_refusal_gets_the_reply),
        cmocka_unit_test(test_per_client_unix_uid),
        cmocka_unit_test(test_verify_refusal_ends_the_request),
        cmocka_unit_test(test_out_of_fds_sheds_with_the_reserve),
        cmocka_unit_test(test_datagram_sheds_one),
        cmocka_unit_test(test_backoff_doubles_and_resets),
        cmocka_unit_test(test_other_errors_counted_and_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
