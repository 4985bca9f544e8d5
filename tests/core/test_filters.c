/* The public filter chain (socketserver/filter.h) on every dispatcher and
 * both stream transports: the order of two filters on the bytes that
 * leave, a recv transform, close before the socket is shut, an open that
 * refuses (counted, no handler, no handle_error), the request timeout
 * honoured through a filter's next call, a pool worker that parks many
 * filters waiting in open, and the setter's errors. What a filter does is
 * observed on the client's socket, so it holds in a forked child too. */
#include "dispatch_support.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "stream_combos.h" /* after cmocka: its EACH uses it */

/* ---- filters ---- */

/* Tags every send with its letter, upper-cases what it reads if asked,
 * and says ">letter" as it closes. */
typedef struct mark_config {
    char tag;
    bool upper;
} mark_config;

static int mark_send(ss_filter_ctx *ctx, const void *buf, size_t size)
{
    const mark_config *cfg = ss_filter_state(ctx);
    int rc = ss_filter_send_next(ctx, &cfg->tag, 1);
    return rc < 0 ? rc : ss_filter_send_next(ctx, buf, size);
}

static ssize_t mark_recv(ss_filter_ctx *ctx, void *buf, size_t size)
{
    const mark_config *cfg = ss_filter_state(ctx);
    ssize_t n = ss_filter_recv_next(ctx, buf, size);
    for (ssize_t i = 0; cfg->upper && i < n; i++)
        ((char *)buf)[i] = (char)toupper(((unsigned char *)buf)[i]);
    return n;
}

static int mark_open(ss_filter_ctx *ctx, void *config)
{
    ss_filter_set_state(ctx, config);
    return 0;
}

static void mark_close(ss_filter_ctx *ctx)
{
    const mark_config *cfg = ss_filter_state(ctx);
    char bye[2] = {'>', cfg->tag};
    (void)ss_filter_send_next(ctx, bye, sizeof bye);
}

static atomic_int configs_freed;

static void count_free(void *config)
{
    (void)config;
    atomic_fetch_add(&configs_freed, 1);
}

static const ss_filter mark = {SS_FILTER_VERSION, "mark",     mark_open,  mark_recv,
                               mark_send,         mark_close, count_free, NULL};

static int refuse_open(ss_filter_ctx *ctx, void *config)
{
    (void)ctx;
    (void)config;
    return -EACCES;
}

static const ss_filter refuse = {
    SS_FILTER_VERSION, "refuse", refuse_open, NULL, NULL, NULL, NULL, NULL};

/* One line back, in one send_all, so the tags are predictable. */
static int echo_once(ss_request *req, void *data)
{
    (void)data;
    char line[128];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return (int)n;
    return ss_request_send_all(req, line, (size_t)n);
}

static const ss_handler echo_once_handler = {SS_HANDLER_VERSION, NULL, echo_once, NULL};

/* ---- the combinations ---- */

/* Everything the server sends until it closes. */
static size_t recv_all(int fd, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t n;
    while (got < size - 1 && (n = recv(fd, buf + got, size - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

/* ---- tests ---- */

/* a is added first, so it is next to the socket: b's tag and b's data both
 * pass through a, and b closes first. */
static void two_filters_in_order(void **state)
{
    const combo *c = *state;
    char dir[256];
    int fds = ts_count_fds();
    atomic_store(&configs_freed, 0);
    static mark_config a = {'a', false}, b = {'b', true};
    ss_server *srv = combo_server(c, &echo_once_handler, dir, sizeof dir);
    assert_int_equal(ss_server_add_filter(srv, &mark, &a), 0);
    assert_int_equal(ss_server_add_filter(srv, &mark, &b), 0);
    ts_runner runner;
    combo_start(srv, &runner);
    int fd = ts_connect(srv);
    ts_send(fd, "hi\n", 3);
    char got[64];
    recv_all(fd, got, sizeof got);
    assert_string_equal(got, "abaHI\na>b>a");
    close(fd);
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.filter_refused, 0);
    combo_finish(&runner, srv, 1, dir);
    assert_int_equal(atomic_load(&configs_freed), 2);
    assert_true(td_wait_fds(fds, 5000));
}

static void open_refuses(void **state)
{
    const combo *c = *state;
    char dir[256];
    int fds = ts_count_fds();
    ss_server *srv = combo_server(c, &echo_once_handler, dir, sizeof dir);
    assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), 0);
    ts_runner runner;
    combo_start(srv, &runner);
    int fd = ts_connect(srv);
    /* the refusal may close the connection before these bytes go out */
    (void)send(fd, "hi\n", 3, MSG_NOSIGNAL);
    char got[64];
    assert_int_equal(recv_all(fd, got, sizeof got), 0); /* closed, nothing said */
    close(fd);
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.filter_refused, 1);
    assert_int_equal(st.handled, 0);
    assert_int_equal(st.handler_errors, 0);
    combo_finish(&runner, srv, 1, dir);
    assert_true(td_wait_fds(fds, 5000));
}

/* The gate waits in open through recv_next: the request timeout ends it. */
static void timeout_through_filter(void **state)
{
    const combo *c = *state;
    char dir[256];
    ss_server *srv = combo_server(c, &echo_once_handler, dir, sizeof dir);
    assert_int_equal(ss_server_add_filter(srv, &combo_gate, NULL), 0);
    ss_server_set_request_timeout(srv, 200);
    ts_runner runner;
    combo_start(srv, &runner);
    long long t0 = ts_now_ms();
    int fd = ts_connect(srv); /* says nothing */
    assert_true(ts_sees_eof(fd));
    assert_true(ts_now_ms() - t0 >= 150);
    close(fd);
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.filter_refused, 1);
    assert_int_equal(st.request_timeouts, 1);
    assert_int_equal(st.handler_errors, 0);
    /* and a client that says '!' goes through, the gate taking one byte */
    fd = ts_connect(srv);
    ts_send(fd, "!ok\n", 4);
    td_expect(fd, "ok\n");
    close(fd);
    combo_finish(&runner, srv, 2, dir);
}

/* One worker: twenty filters wait in open for their first byte, and a
 * twenty-first connection is still served, so each wait parked its fiber. */
static void pool_parks_waiting_filters(void **state)
{
    (void)state;
    char dir[256];
    static const combo pool_tcp = {"tcp", "pool"};
    ss_server *srv = combo_server(&pool_tcp, &echo_once_handler, dir, sizeof dir);
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    assert_int_equal(ss_server_add_filter(srv, &combo_gate, NULL), 0);
    ts_runner runner;
    combo_start(srv, &runner);
    enum { IDLE = 20 };
    int idle[IDLE];
    for (int i = 0; i < IDLE; i++)
        idle[i] = ts_connect(srv);
    assert_true(td_wait_active(srv, IDLE, 5000));
    int fd = ts_connect(srv);
    ts_send(fd, "!served\n", 8);
    td_expect(fd, "served\n");
    close(fd);
    for (int i = 0; i < IDLE; i++)
        close(idle[i]); /* each open sees the end of the stream: refused */
    assert_true(td_wait_closed(srv, IDLE + 1, 10000));
    assert_int_equal(td_stats(srv).filter_refused, IDLE);
    assert_int_equal(td_stats(srv).handled, 1);
    combo_finish(&runner, srv, IDLE + 1, dir);
}

static void add_filter_errors(void **state)
{
    (void)state;
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &echo_once_handler, NULL);
    if (rc == SS_ENOTSUPPORTED)
        skip();
    assert_int_equal(rc, 0);
    assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), SS_ENOTSTREAM);
    assert_non_null(strstr(ss_strerror(SS_ENOTSTREAM), "need a stream listener"));
    ss_server_free(srv);

    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &echo_once_handler, NULL),
                     0);
    ss_filter old = refuse;
    old.version = SS_FILTER_VERSION + 1;
    assert_int_equal(ss_server_add_filter(srv, &old, NULL), -EINVAL);
    assert_int_equal(ss_server_add_filter(srv, NULL, NULL), -EINVAL);
    for (int i = 0; i < 16; i++)
        assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), 0);
    assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), -E2BIG);
    ss_server_free(srv);

    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &echo_once_handler, NULL),
                     0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), 0); /* bound: still fine */
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_add_filter(srv, &refuse, NULL), SS_ESTATE);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        EACH(two_filters_in_order),          EACH(open_refuses),
        EACH(timeout_through_filter),        cmocka_unit_test(pool_parks_waiting_filters),
        cmocka_unit_test(add_filter_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
