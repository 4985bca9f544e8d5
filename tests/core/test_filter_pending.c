/* Drain's idle rule asks the filter chain (the filter table's `pending`
 * slot): a message the client sent in one write with the PROXY header,
 * or that a user filter read ahead, is held inside the filter, not in the
 * socket; a request whose chain holds input is busy, and its handler
 * reads that message even after a drain began, instead of being closed
 * as idle with it unread. On every dispatcher (sync's stop plays the
 * drain's part there), with the built-in PROXY filter and with a filter
 * written against the public table. A version 1 table (without the
 * slot) is still accepted, and never read past its end (ASan).
 * Handlers may run in a forked child: they never call cmocka. */
#include "dispatch_support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define LONG_DRAIN_MS 60000 /* the test fails long before: every wait here is short */
#define AT_ONCE_MS    5000  /* generous for a loaded machine, far below LONG_DRAIN_MS */

#define PROXY_V1 "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r\n"
#define MESSAGES "AAAA\nBBBB\n"

/* ---- a user filter that reads ahead ---- */

/* Reads up to 64 bytes from below at once, hands them out as asked. */
typedef struct ahead {
    char buf[64];
    size_t pos, len;
} ahead;

static int ahead_open(ss_filter_ctx *ctx, void *config)
{
    (void)config;
    ahead *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -ENOMEM;
    ss_filter_set_state(ctx, a);
    return 0;
}

static ssize_t ahead_recv(ss_filter_ctx *ctx, void *buf, size_t size)
{
    ahead *a = ss_filter_state(ctx);
    if (a->pos == a->len) {
        ssize_t n = ss_filter_recv_next(ctx, a->buf, sizeof a->buf);
        if (n <= 0)
            return n;
        a->pos = 0;
        a->len = (size_t)n;
    }
    size_t n = a->len - a->pos < size ? a->len - a->pos : size;
    memcpy(buf, a->buf + a->pos, n);
    a->pos += n;
    return (ssize_t)n;
}

static bool ahead_pending(const ss_filter_ctx *ctx)
{
    const ahead *a = ss_filter_state(ctx);
    return a->pos < a->len;
}

static void ahead_close(ss_filter_ctx *ctx)
{
    free(ss_filter_state(ctx));
}

static const ss_filter read_ahead = {
    .version = SS_FILTER_VERSION,
    .name = "read-ahead",
    .open = ahead_open,
    .recv = ahead_recv,
    .close = ahead_close,
    .pending = ahead_pending,
};

/* The table as a program built against version 1 of the header lays it
 * out: one slot shorter. */
typedef struct filter_v1 {
    int version;
    const char *name;
    int (*open)(ss_filter_ctx *ctx, void *config);
    ssize_t (*recv)(ss_filter_ctx *ctx, void *buf, size_t size);
    int (*send)(ss_filter_ctx *ctx, const void *buf, size_t size);
    void (*close)(ss_filter_ctx *ctx);
    void (*free_config)(void *config);
} filter_v1;

static const filter_v1 read_ahead_v1 = {1,    "read-ahead-v1", ahead_open, ahead_recv,
                                        NULL, ahead_close,     NULL};

/* ---- the handler: echoes 5-byte reads, held after the first ---- */

typedef struct shared {
    atomic_int reads;    /* reads that returned bytes */
    atomic_bool release; /* the first answer may go */
} shared;

/* Waits (at most 10 s) for the test to say the drain has begun. */
static void wait_release(shared *sh)
{
    for (int i = 0; i < 1000 && !atomic_load(&sh->release); i++)
        usleep(10 * 1000);
}

static int chunk_echo(ss_request *req, void *data)
{
    shared *sh = data;
    char buf[5];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        if (atomic_fetch_add(&sh->reads, 1) == 0)
            wait_release(sh);
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

static const ss_handler chunks = {.version = SS_HANDLER_VERSION, .handle = chunk_echo};

/* ---- the cases ---- */

typedef enum { WITH_PROXY, WITH_READ_AHEAD } which_filter;

typedef struct pending_case {
    const char *mode;
    which_filter filter;
} pending_case;

static ss_server *server(const pending_case *c, shared *sh)
{
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(c->mode), &chunks, sh), 0);
    if (c->filter == WITH_PROXY)
        assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), 0);
    else
        assert_int_equal(ss_server_add_filter(srv, &read_ahead, NULL), 0);
    ss_server_set_request_timeout(srv, 20000); /* a failed test's child still ends */
    ss_server_on_handle_error(srv, td_quiet_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static int connect_and_send(ss_server *srv, which_filter filter)
{
    int fd = ts_connect(srv);
    const char *all = filter == WITH_PROXY ? PROXY_V1 MESSAGES : MESSAGES;
    ts_send(fd, all, strlen(all)); /* one write: the filter's first read takes it all */
    return fd;
}

static bool first_read(void *arg)
{
    return atomic_load(&((shared *)arg)->reads) > 0;
}

typedef struct drainer {
    ss_server *srv;
    int result;
    atomic_bool done;
    pthread_t thread;
} drainer;

static void *drain_main(void *arg)
{
    drainer *d = arg;
    d->result = ss_server_drain(d->srv, LONG_DRAIN_MS);
    atomic_store(&d->done, true);
    return NULL;
}

static bool drained(void *arg)
{
    return atomic_load(&((drainer *)arg)->done);
}

/* The drain has closed the idle requests of the moment (its first step)
 * once it has closed the listener (its second). */
static bool listener_closed(void *arg)
{
    return ss_server_fileno(arg) < 0;
}

/* Both messages answered, then the end of the stream: the drain closed
 * the request as idle only once nothing was held. */
static void expect_both_then_eof(int fd)
{
    char got[sizeof MESSAGES] = "";
    assert_int_equal(ts_recv_exact(fd, got, strlen(MESSAGES)), strlen(MESSAGES));
    assert_string_equal(got, MESSAGES);
    assert_true(ts_sees_eof(fd));
    close(fd);
}

static void expect_idle_end(ss_server *srv)
{
    ss_stats st = td_stats(srv);
    assert_int_equal(st.idle_closed, 1);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.handler_errors, 0);
    assert_int_equal(st.interrupted, 0);
}

/* threading, forking, pool: the drain begins while the handler holds its
 * first answer; the second message is held in the filter. */
static void held_message_survives_drain(void **state)
{
    const pending_case *c = *state;
    shared *sh = td_shared_new(sizeof *sh);
    ss_server *srv = server(c, sh);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = connect_and_send(srv, c->filter);
    assert_true(ts_wait_until(first_read, sh, AT_ONCE_MS));
    assert_int_equal(ts_stop(&runner), 0);
    drainer d = {.srv = srv};
    atomic_init(&d.done, false);
    assert_int_equal(pthread_create(&d.thread, NULL, drain_main, &d), 0);
    assert_true(ts_wait_until(listener_closed, srv, AT_ONCE_MS));
    atomic_store(&sh->release, true);
    expect_both_then_eof(fd);
    assert_true(ts_wait_until(drained, &d, AT_ONCE_MS));
    pthread_join(d.thread, NULL);
    assert_int_equal(d.result, 0);
    expect_idle_end(srv);
    ss_server_free(srv);
    td_shared_free(sh, sizeof *sh);
}

/* No drain: the second message, held in the filter, is read at once.
 * A forked child's wait for the next message polls its socket (and its
 * parent's drain pipe), and the socket has nothing: only the chain knows
 * the message is there (it stalled until the request timeout). */
static void held_message_read_at_once(void **state)
{
    const pending_case *c = *state;
    shared *sh = td_shared_new(sizeof *sh);
    atomic_store(&sh->release, true);
    ss_server *srv = server(c, sh);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = connect_and_send(srv, c->filter);
    char got[sizeof MESSAGES] = "";
    assert_int_equal(ts_recv_exact(fd, got, strlen(MESSAGES)), strlen(MESSAGES));
    assert_string_equal(got, MESSAGES);
    shutdown(fd, SHUT_WR); /* a forked child holds a copy of fd: close would not end it */
    close(fd);
    td_finish(&runner, srv, 1, AT_ONCE_MS);
    td_shared_free(sh, sizeof *sh);
}

/* A version 1 table is taken and serves; the library never reads the
 * slot it does not have (ASan would see the read past its end). */
static void test_version_1_table_still_accepted(void **state)
{
    (void)state;
    shared *sh = td_shared_new(sizeof *sh);
    atomic_store(&sh->release, true);
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), &chunks, sh), 0);
    assert_int_equal(
        ss_server_add_filter(srv, (const ss_filter *)(const void *)&read_ahead_v1, NULL), 0);
    ss_filter newer = read_ahead;
    newer.version = SS_FILTER_VERSION + 1;
    assert_int_equal(ss_server_add_filter(srv, &newer, NULL), -EINVAL);
    newer.version = 0;
    assert_int_equal(ss_server_add_filter(srv, &newer, NULL), -EINVAL);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = connect_and_send(srv, WITH_READ_AHEAD);
    char got[sizeof MESSAGES] = "";
    assert_int_equal(ts_recv_exact(fd, got, strlen(MESSAGES)), strlen(MESSAGES));
    assert_string_equal(got, MESSAGES);
    close(fd);
    td_finish(&runner, srv, 1, AT_ONCE_MS);
    td_shared_free(sh, sizeof *sh);
}

#define CASE(mode, filter) static const pending_case mode##_##filter = {#mode, filter};
CASE(threading, WITH_PROXY)
CASE(forking, WITH_PROXY)
CASE(pool, WITH_PROXY)
CASE(threading, WITH_READ_AHEAD)
CASE(forking, WITH_READ_AHEAD)
CASE(pool, WITH_READ_AHEAD)
#undef CASE

#define RUN(f, mode, filter)                                                                       \
    {                                                                                              \
#f "/" #mode "/" #filter, f, NULL, NULL, (void *)&mode##_##filter                          \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        RUN(held_message_survives_drain, threading, WITH_PROXY),
        RUN(held_message_survives_drain, forking, WITH_PROXY),
        RUN(held_message_survives_drain, pool, WITH_PROXY),
        RUN(held_message_survives_drain, threading, WITH_READ_AHEAD),
        RUN(held_message_survives_drain, forking, WITH_READ_AHEAD),
        RUN(held_message_survives_drain, pool, WITH_READ_AHEAD),
        RUN(held_message_read_at_once, threading, WITH_PROXY),
        RUN(held_message_read_at_once, forking, WITH_PROXY),
        RUN(held_message_read_at_once, pool, WITH_PROXY),
        RUN(held_message_read_at_once, forking, WITH_READ_AHEAD),
        cmocka_unit_test(test_version_1_table_still_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
