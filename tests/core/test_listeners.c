/* Several listeners per server (issue 16): TCP over IPv4 and IPv6, Unix
 * stream, UDP and Unix datagram in one server, one handler, served by
 * every dispatcher; the listener a request came on; a forked child
 * keeping only what it needs; a ready listener served in turn; the
 * server-wide options and filters per kind of listener; drain serving
 * and closing every stream listener; the rules of ss_server_add_listener. */
#include "dispatch_support.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

/* Reads a line (or the datagram) and answers "L<index>/<open>:<line>":
 * the listener it came on, and how many of the server's listeners this
 * process still holds open. May run in a forked child: no cmocka. */
static int tagged_echo(ss_request *req, void *data)
{
    (void)data;
    char line[128];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : 0;
    ss_server *srv = ss_request_server(req);
    int open = 0;
    for (int i = 0; i < ss_server_listener_count(srv); i++)
        open += ss_server_listener_fileno(srv, i) >= 0;
    char reply[200];
    int len =
        snprintf(reply, sizeof reply, "L%d/%d:%.*s", ss_request_listener(req), open, (int)n, line);
    return ss_request_send_all(req, reply, (size_t)len);
}

static const ss_handler tagged = {.version = SS_HANDLER_VERSION, .handle = tagged_echo};

static bool ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

typedef struct mixed {
    ss_server *srv;
    char dir[256];
    char paths[2][300]; /* the Unix socket files */
    int count;
    bool datagram[8]; /* listener i is a datagram one */
} mixed;

static void add(mixed *m, const char *url, bool datagram)
{
    int rc = ss_server_add_listener(m->srv, url);
    if (rc < 0)
        fail_msg("add %s: %s", url, ss_strerror(rc));
    assert_int_equal(rc, m->count);
    m->datagram[m->count++] = datagram;
}

/* tcp v4 (first), tcp v6 when the machine has it, unix, udp, unixgram. */
static void mixed_new(mixed *m, const char *mode)
{
    *m = (mixed){.count = 1};
    int rc =
        ss_server_create(&m->srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), &tagged, NULL);
    assert_int_equal(rc, 0);
    ts_mkdtemp(m->dir, sizeof m->dir);
    snprintf(m->paths[0], sizeof m->paths[0], "%s/stream", m->dir);
    snprintf(m->paths[1], sizeof m->paths[1], "%s/gram", m->dir);
    char url[400];
    if (ipv6_loopback())
        add(m, "tcp://[::1]:0", false);
    snprintf(url, sizeof url, "unix:%s", m->paths[0]);
    add(m, url, false);
    add(m, "udp://127.0.0.1:0", true);
    snprintf(url, sizeof url, "unixgram:%s", m->paths[1]);
    add(m, url, true);
    ss_server_set_request_timeout(m->srv, 10000);
    assert_int_equal(ss_server_bind(m->srv), 0);
    assert_int_equal(ss_server_activate(m->srv), 0);
    assert_int_equal(ss_server_listener_count(m->srv), m->count);
}

static void mixed_free(mixed *m)
{
    ss_server_free(m->srv);
    ts_rmdir(m->dir);
}

/* One client per listener, each answered by the one handler, which sees
 * the listener it came on; a forked child holds no listener but, for a
 * datagram, the one it replies through. */
static void every_listener_answers(void **state)
{
    const char *mode = *state;
    mixed m;
    mixed_new(&m, mode);
    ts_runner runner;
    ts_start(&runner, m.srv, 100);
    bool forking = strcmp(mode, "forking") == 0;
    for (int i = 0; i < m.count; i++) {
        char url[256], want[64];
        assert_true(ss_server_listener_address(m.srv, i, url, sizeof url) > 0);
        int open = !forking ? m.count : m.datagram[i] ? 1 : 0;
        snprintf(want, sizeof want, "L%d/%d:hi %d\n", i, open, i);
        int fd = ts_connect_url(url);
        char line[32];
        snprintf(line, sizeof line, "hi %d\n", i);
        ts_send(fd, line, strlen(line));
        char got[64] = {0};
        ts_recv_exact(fd, got, strlen(want));
        assert_string_equal(got, want);
        close(fd);
    }
    assert_true(td_wait_closed(m.srv, (uint64_t)m.count, 10000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(m.srv);
    ss_stats st = td_stats(m.srv);
    assert_int_equal(st.accepted, m.count);
    assert_int_equal(st.handled, m.count);
    assert_int_equal(st.handler_errors, 0);
    for (int i = 0; i < m.count; i++)
        assert_int_equal(ss_server_listener_fileno(m.srv, i), -1);
    struct stat sb;
    assert_int_equal(lstat(m.paths[0], &sb), -1); /* close removed both files */
    assert_int_equal(lstat(m.paths[1], &sb), -1);
    mixed_free(&m);
}

/* ---- a ready listener is served in turn ---- */

static int note_listener(ss_request *req, void *data)
{
    int *order = data;
    order[order[0]++ + 1] = ss_request_listener(req);
    char line[32];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n > 0 ? ss_request_send_all(req, line, (size_t)n) : (int)n;
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 5000) == 1;
}

/* Two clients wait on listener 0 and one on listener 1: three calls of
 * handle_request take 0, 1, 0, not both of 0's first. */
static void ready_listeners_take_turns(void **state)
{
    (void)state;
    int order[8] = {0};
    static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = note_listener};
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &h, order), 0);
    assert_int_equal(ss_server_add_listener(srv, "tcp://127.0.0.1:0"), 1);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    char url0[64], url1[64];
    ss_server_listener_address(srv, 0, url0, sizeof url0);
    ss_server_listener_address(srv, 1, url1, sizeof url1);
    int fds[3] = {ts_connect_url(url0), ts_connect_url(url0), ts_connect_url(url1)};
    for (int i = 0; i < 3; i++)
        ts_send(fds[i], "x\n", 2);
    assert_true(readable(ss_server_listener_fileno(srv, 0)));
    assert_true(readable(ss_server_listener_fileno(srv, 1)));
    for (int i = 0; i < 3; i++)
        assert_int_equal(ss_server_handle_request(srv), 0);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 0);
    assert_int_equal(order[2], 1);
    assert_int_equal(order[3], 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    ss_server_free(srv);
}

/* ---- the rules of adding and asking ---- */

static void add_listener_rules(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &td_echo_line, NULL), 0);
    assert_int_equal(ss_server_listener_count(srv), 1);
    assert_int_equal(ss_server_add_listener(srv, "foo:bar"), SS_EURLSCHEME);
    assert_int_equal(ss_server_add_listener(srv, NULL), -EINVAL);
    assert_int_equal(ss_server_add_listener(srv, "tcp://127.0.0.1:99999"), SS_EURLPORTRANGE);
    assert_int_equal(ss_server_listener_count(srv), 1); /* nothing half-added */
    assert_int_equal(ss_server_add_listener(srv, "udp://127.0.0.1:0"), 1);
    char buf[128];
    assert_int_equal(ss_server_listener_fileno(srv, 2), -EINVAL);
    assert_int_equal(ss_server_listener_fileno(srv, -1), -EINVAL);
    assert_int_equal(ss_server_listener_address(srv, 2, buf, sizeof buf), -EINVAL);
    assert_int_equal(ss_server_listener_port(srv, 2), -EINVAL);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_add_listener(srv, "tcp://127.0.0.1:0"), SS_ESTATE);
    assert_int_equal(ss_server_listener_count(srv), 2);
    /* the first listener is what the single-listener calls name */
    assert_int_equal(ss_server_fileno(srv), ss_server_listener_fileno(srv, 0));
    assert_int_equal(ss_server_port(srv), ss_server_listener_port(srv, 0));
    assert_true(ss_server_listener_port(srv, 1) > 0);
    assert_int_not_equal(ss_server_listener_fileno(srv, 1), ss_server_fileno(srv));
    assert_true(ss_server_listener_address(srv, 1, buf, sizeof buf) > 0);
    assert_int_equal(strncmp(buf, "udp://127.0.0.1:", 16), 0);
    ss_server_free(srv);
}

/* A failed bind of a later listener can be retried once its address is
 * free: the listeners already bound are not bound twice. */
static void bind_retried_after_a_later_listener_failed(void **state)
{
    (void)state;
    ss_server *holder;
    assert_int_equal(ss_server_new(&holder, "tcp://127.0.0.1:0", NULL, &td_echo_line, NULL), 0);
    char taken[64];
    ss_server_address(holder, taken, sizeof taken);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &td_echo_line, NULL), 0);
    assert_int_equal(ss_server_add_listener(srv, taken), 1);
    assert_int_equal(ss_server_bind(srv), -EADDRINUSE);
    ss_server_free(holder);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    char url[64];
    ss_server_listener_address(srv, 1, url, sizeof url);
    assert_string_equal(url, taken);
    ss_server_free(srv);
}

/* ---- server-wide options, per kind of listener ---- */

static atomic_int opened;

static int count_open(ss_filter_ctx *ctx, void *config)
{
    (void)ctx;
    (void)config;
    atomic_fetch_add(&opened, 1);
    return 0;
}

static const ss_filter counting = {
    .version = SS_FILTER_VERSION, .name = "count", .open = count_open};

/* Options that concern one kind of listener are taken when the server
 * has one of that kind, and apply to it; filters skip datagrams. */
static void options_reach_their_listeners(void **state)
{
    (void)state;
    char dir[256], path[300], url[320];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(url, sizeof url, "unix:%s", path);
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), &tagged, NULL), 0);
    assert_int_equal(ss_server_set_max_packet_size(srv, 4096), -EINVAL); /* no datagram yet */
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), -EINVAL);       /* no socket file */
    assert_int_equal(ss_server_add_listener(srv, "udp://127.0.0.1:0"), 1);
    assert_int_equal(ss_server_add_listener(srv, url), 2);
    assert_int_equal(ss_server_set_max_packet_size(srv, 4096), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), 0);
    atomic_store(&opened, 0);
    assert_int_equal(ss_server_add_filter(srv, &counting, NULL), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    for (int i = 0; i < 3; i++) {
        char to[256];
        ss_server_listener_address(srv, i, to, sizeof to);
        int fd = ts_connect_url(to);
        ts_send(fd, "x\n", 2);
        char want[32], got[32] = {0};
        snprintf(want, sizeof want, "L%d/3:x\n", i);
        ts_recv_exact(fd, got, strlen(want));
        assert_string_equal(got, want);
        close(fd);
    }
    assert_true(td_wait_closed(srv, 3, 10000));
    assert_int_equal(atomic_load(&opened), 2); /* tcp and unix, not the datagram */
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    ts_rmdir(dir);
}

static void filters_need_a_stream_listener(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &tagged, NULL), 0);
    assert_int_equal(ss_server_add_filter(srv, &counting, NULL), SS_ENOTSTREAM);
    assert_int_equal(ss_server_add_listener(srv, "tcp://127.0.0.1:0"), 1);
    assert_int_equal(ss_server_add_filter(srv, &counting, NULL), 0);
    ss_server_free(srv);
}

/* ---- drain ---- */

/* A client on each of listeners 0 and 1 sends `line`. */
static void ask_first_two(ss_server *srv, int fds[2], const char *line)
{
    for (int i = 0; i < 2; i++) {
        char url[64];
        ss_server_listener_address(srv, i, url, sizeof url);
        fds[i] = ts_connect_url(url);
        ts_send(fds[i], line, strlen(line));
    }
}

/* A client waiting in each stream listener's backlog is served by the
 * drain, and then every stream listener is closed; the datagram one
 * stays until close. */
static void drain_serves_every_backlog(void **state)
{
    const char *mode = *state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), &tagged, NULL), 0);
    assert_int_equal(ss_server_add_listener(srv, "tcp://127.0.0.1:0"), 1);
    assert_int_equal(ss_server_add_listener(srv, "udp://127.0.0.1:0"), 2);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    int fds[2];
    ask_first_two(srv, fds, "q\n");
    assert_int_equal(ss_server_drain(srv, 10000), 0);
    for (int i = 0; i < 2; i++) {
        /* "L<i>/<open>:q\n"; how many are still open depends on when the
         * drain closed each listener */
        char got[32] = {0}, want[8];
        ts_recv_exact(fds[i], got, sizeof got - 1);
        snprintf(want, sizeof want, "L%d/", i);
        assert_int_equal(strncmp(got, want, strlen(want)), 0);
        assert_non_null(strstr(got, ":q\n"));
        close(fds[i]);
    }
    assert_int_equal(ss_server_listener_fileno(srv, 0), -1);
    assert_int_equal(ss_server_listener_fileno(srv, 1), -1);
    assert_true(ss_server_listener_fileno(srv, 2) >= 0);
    assert_int_equal(td_stats(srv).handled, 2);
    ss_server_free(srv);
}

/* ---- close waits for a handler that replies through its listener ---- */

typedef struct release {
    atomic_bool go;
    atomic_int started;
} release;

/* Notes that it runs, then echoes one line once released (at most 5 s
 * later), blocking its thread meanwhile. */
static int echo_when_released(ss_request *req, void *data)
{
    release *r = data;
    atomic_fetch_add(&r->started, 1);
    long long end = ts_now_ms() + 5000;
    while (!atomic_load(&r->go) && ts_now_ms() < end)
        usleep(1000);
    char line[32];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    return n > 0 ? ss_request_send_all(req, line, (size_t)n) : (int)n;
}

static bool one_started(void *arg)
{
    return atomic_load(&((release *)arg)->started) == 1;
}

/* Not blocking on close, a server still waits for a datagram handler,
 * which replies through its listener's socket, even when the first
 * listener is a stream one. */
static void close_waits_for_datagram_listener_handler(void **state)
{
    const char *mode = *state;
    static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = echo_when_released};
    release r;
    atomic_init(&r.go, false);
    atomic_init(&r.started, 0);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), &h, &r),
                     0);
    assert_int_equal(ss_server_add_listener(srv, "udp://127.0.0.1:0"), 1);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ss_server_set_block_on_close(srv, false);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    char url[64];
    ss_server_listener_address(srv, 1, url, sizeof url);
    int fd = ts_connect_url(url);
    ts_send(fd, "late\n", 5);
    assert_true(ts_wait_until(one_started, &r, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300)); /* the reply still needs its socket */
    atomic_store(&r.go, true);
    assert_true(td_close_returned(&c, 5000));
    td_expect(fd, "late\n");
    close(fd);
    assert_int_equal(td_stats(srv).handled, 1);
    ss_server_free(srv);
}

#define EACH_MODE(f)                                                                               \
    cmocka_unit_test_prestate(f, "sync"), cmocka_unit_test_prestate(f, "threading"),               \
        cmocka_unit_test_prestate(f, "forking"), cmocka_unit_test_prestate(f, "pool")

int main(void)
{
    const struct CMUnitTest tests[] = {
        EACH_MODE(every_listener_answers),
        EACH_MODE(drain_serves_every_backlog),
        cmocka_unit_test_prestate(close_waits_for_datagram_listener_handler, "threading"),
        cmocka_unit_test_prestate(close_waits_for_datagram_listener_handler, "pool"),
        cmocka_unit_test(ready_listeners_take_turns),
        cmocka_unit_test(add_listener_rules),
        cmocka_unit_test(bind_retried_after_a_later_listener_failed),
        cmocka_unit_test(options_reach_their_listeners),
        cmocka_unit_test(filters_need_a_stream_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
