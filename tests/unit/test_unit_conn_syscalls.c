/* What a connection costs in system calls from accept to close, counted
 * (src/io/linger.c, src/transport/transport.c, src/transport/inet.c):
 *
 * - a request whose reads returned the client's end of stream is closed
 *   with close() alone: no shutdown(SHUT_WR), no lingering close (nothing
 *   is unread, nothing more can come), and the client still reads the
 *   whole reply and then the end, never a reset; on every dispatcher but
 *   forking (whose child still shuts down: its parent may hold the socket
 *   yet) and every stream transport (tcp, unix, abstract);
 * - the careful close stays where the shortcut would be wrong: a client
 *   that pipelined more than the handler read (no end of stream seen), a
 *   read ended by the drain's own shutdown (its 0 is not the client's),
 *   and a descriptor the application was lent (ss_request_fileno);
 * - Linux: TCP_NODELAY is set once on the listener and inherited by the
 *   connections, not set on each (each one still has it), and a change
 *   at run time reaches every connection accepted afterwards, those the
 *   kernel queued before the change included.
 *
 * shutdown and setsockopt are wrapped (-Wl,--wrap, GNU ld, Linux); the
 * counts live in shared memory, so a forked child's calls count too. */
#define _GNU_SOURCE
#include "internal.h"

#include <stdio.h>

#if defined(__linux__)

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int __real_shutdown(int fd, int how);
int __wrap_shutdown(int fd, int how);
int __real_setsockopt(int fd, int level, int name, const void *value, socklen_t len);
int __wrap_setsockopt(int fd, int level, int name, const void *value, socklen_t len);

enum { MAX_CONNS = 16 };

/* In shared memory (main maps it): a forking server's children count too. */
static struct counts {
    atomic_int shut_wr;          /* shutdown(SHUT_WR) calls */
    atomic_int nodelay_conn;     /* setsockopt(TCP_NODELAY) on a connection */
    atomic_int nodelay_listener; /* ... on the listener */
    atomic_int listener_fd;
    atomic_int seen;               /* connections served */
    atomic_int nodelay[MAX_CONNS]; /* TCP_NODELAY as each handler found it */
    atomic_bool hold;              /* the blocking handler waits while set */
} * counts;

int __wrap_shutdown(int fd, int how)
{
    if (how == SHUT_WR)
        atomic_fetch_add(&counts->shut_wr, 1);
    return __real_shutdown(fd, how);
}

int __wrap_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
    if (level == IPPROTO_TCP && name == TCP_NODELAY)
        atomic_fetch_add(fd == atomic_load(&counts->listener_fd) ? &counts->nodelay_listener
                                                                 : &counts->nodelay_conn,
                         1);
    return __real_setsockopt(fd, level, name, value, len);
}

static void reset_counts(void)
{
    memset(counts, 0, sizeof *counts);
    atomic_store(&counts->listener_fd, -1);
}

/* ---- handlers (may run in a forked child: no cmocka in them) ---- */

/* Echoes until the client's end of stream. */
static int echo_to_end(ss_request *req, void *data)
{
    (void)data;
    char buf[256];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            return -1;
    return (int)n;
}

/* The same, having asked for the descriptor first. */
static int echo_lent(ss_request *req, void *data)
{
    (void)ss_request_fileno(req);
    return echo_to_end(req, data);
}

/* Answers the first line only: what the client pipelined stays unread. */
static int first_line_only(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return (int)n;
    return ss_request_send_all(req, line, (size_t)n);
}

/* Notes the connection's TCP_NODELAY, waits while told to, then echoes. */
static int note_nodelay(ss_request *req, void *data)
{
    int on = -1;
    socklen_t len = sizeof on;
    getsockopt(ss_request_fileno(req), IPPROTO_TCP, TCP_NODELAY, &on, &len);
    int i = atomic_fetch_add(&counts->seen, 1);
    if (i < MAX_CONNS)
        atomic_store(&counts->nodelay[i], on);
    while (atomic_load(&counts->hold))
        usleep(1000);
    return echo_to_end(req, data);
}

/* ---- servers and clients ---- */

typedef struct combo {
    const char *mode;
    const char *transport; /* "tcp", "unix" or "abstract" */
} combo;

static char tmpdir[128];

static void *serve(void *srv)
{
    ss_server_serve_forever(srv, 50);
    return NULL;
}

static ss_server *start(const combo *c, int (*handle)(ss_request *, void *), pthread_t *loop)
{
    char url[256] = "tcp://127.0.0.1:0";
    if (strcmp(c->transport, "unix") == 0) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ss-conn-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        snprintf(url, sizeof url, "unix:%s/s", tmpdir);
    } else if (strcmp(c->transport, "abstract") == 0) {
        snprintf(url, sizeof url, "unix:@ss-conn-%ld-%ld", (long)getpid(), (long)time(NULL));
    }
    static ss_handler handler;
    handler = (ss_handler){.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(c->mode), &handler, NULL), 0);
    ss_server_set_request_timeout(srv, 10000); /* a failed test still ends */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    atomic_store(&counts->listener_fd, ss_server_fileno(srv));
    assert_int_equal(pthread_create(loop, NULL, serve, srv), 0);
    return srv;
}

static void remove_socket_file(const combo *c)
{
    if (strcmp(c->transport, "unix") != 0)
        return;
    char path[160];
    snprintf(path, sizeof path, "%s/s", tmpdir);
    unlink(path);
    rmdir(tmpdir);
}

static void stop(ss_server *srv, pthread_t loop, const combo *c)
{
    ss_server_shutdown(srv);
    pthread_join(loop, NULL);
    ss_server_free(srv);
    remove_socket_file(c);
}

static int connect_to(ss_server *srv)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(ss_server_fileno(srv), (struct sockaddr *)&a, &len), 0);
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    __real_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, len), 0);
    return fd;
}

/* Reads until the end of stream: the byte count, and in *end 0 for an
 * end of stream or the errno that came instead (ECONNRESET: a reset). */
static size_t read_to_end(int fd, char *buf, size_t size, int *end)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + got, size - got, 0);
        if (n > 0 && (got += (size_t)n) < size)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        *end = n == 0 ? 0 : n < 0 ? errno : -1;
        return got;
    }
}

static bool wait_closed(ss_server *srv, uint64_t n)
{
    for (int i = 0; i < 1000; i++) {
        ss_stats st;
        ss_server_stats(srv, &st);
        if (st.closed >= n)
            return true;
        usleep(10000);
    }
    return false;
}

static void pause_ms(long ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* One exchange of a client that sends, ends its side, then reads the
 * echo and the end of stream (checked). */
static void exchange_then_end(ss_server *srv, const char *msg)
{
    int fd = connect_to(srv);
    size_t len = strlen(msg);
    assert_int_equal(send(fd, msg, len, MSG_NOSIGNAL), (ssize_t)len);
    assert_int_equal(__real_shutdown(fd, SHUT_WR), 0);
    char back[256];
    int end = -1;
    assert_int_equal(read_to_end(fd, back, sizeof back, &end), len);
    assert_memory_equal(back, msg, len);
    assert_int_equal(end, 0); /* the end of stream, never a reset */
    close(fd);
}

enum { CONNS = 8 };

/* ---- the end of stream seen: close() alone ---- */

static void client_that_ended_costs_only_a_close(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, echo_to_end, &loop);
    for (int i = 0; i < CONNS; i++)
        exchange_then_end(srv, "hello, world");
    assert_true(wait_closed(srv, CONNS));
    ss_stats st;
    ss_server_stats(srv, &st);
    stop(srv, loop, c);
    int shut = atomic_load(&counts->shut_wr);
    print_message("%s over %s: %d shutdown(SHUT_WR) for %d connections\n", c->mode, c->transport,
                  shut, CONNS);
    assert_int_equal(st.lingering_closes, 0);
    /* a forking child shuts down still: its parent may not have closed
     * its copy of the socket yet */
    assert_int_equal(shut, strcmp(c->mode, "forking") == 0 ? CONNS : 0);
}

/* ---- where the careful close stays ---- */

/* The second line is left unread in the kernel: no end of stream was
 * seen, so the close is the careful one, and the reply arrives whole. */
static void pipelining_client_gets_the_careful_close(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, first_line_only, &loop);
    for (int i = 0; i < CONNS; i++) {
        int fd = connect_to(srv);
        assert_int_equal(send(fd, "one\ntwo\n", 8, MSG_NOSIGNAL), 8);
        char back[64];
        int end = -1;
        assert_int_equal(read_to_end(fd, back, sizeof back, &end), 4);
        assert_memory_equal(back, "one\n", 4);
        assert_int_equal(end, 0);
        close(fd);
    }
    assert_true(wait_closed(srv, CONNS));
    stop(srv, loop, c);
    assert_int_equal(atomic_load(&counts->shut_wr), CONNS);
}

/* The handler had the descriptor: it may have duplicated it, and only
 * shutdown() ends the stream for the client then. */
static void lent_descriptor_is_shut_down(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, echo_lent, &loop);
    for (int i = 0; i < CONNS; i++)
        exchange_then_end(srv, "lent");
    assert_true(wait_closed(srv, CONNS));
    stop(srv, loop, c);
    assert_int_equal(atomic_load(&counts->shut_wr), CONNS);
}

/* The drain shuts a request's socket down, whether it closes it idle
 * (a complete exchange, waiting for the next message) or cuts it off at
 * its deadline (busy: nothing read yet): either way its read returns 0,
 * which is not the client's end (the client may still send), so the
 * close is the careful one. */
static void drain_ends_the_read(const combo *c, bool idle)
{
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, echo_to_end, &loop);
    int fd = connect_to(srv);
    if (idle) {
        assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), 1);
        char back;
        assert_int_equal(recv(fd, &back, 1, 0), 1); /* the handler waits for more now */
    } else {
        ss_stats st = {0};
        for (int i = 0; i < 1000 && st.active < 1; i++, pause_ms(5))
            ss_server_stats(srv, &st);
        assert_int_equal(st.active, 1);
    }
    ss_server_shutdown(srv);
    pthread_join(loop, NULL);
    assert_int_equal(ss_server_drain(srv, idle ? 5000 : 100), idle ? 0 : -ETIMEDOUT);
    assert_true(wait_closed(srv, 1));
    ss_server_free(srv);
    close(fd);
    remove_socket_file(c);
    assert_int_equal(atomic_load(&counts->shut_wr), 1);
}

static void read_ended_by_an_idle_close_gets_the_careful_close(void **state)
{
    drain_ends_the_read(*state, true);
}

static void read_cut_off_by_the_drain_gets_the_careful_close(void **state)
{
    drain_ends_the_read(*state, false);
}

/* ---- TCP_NODELAY by inheritance ---- */

static void expect_nodelay(int from, int to, int value)
{
    for (int i = from; i < to; i++)
        assert_int_equal(atomic_load(&counts->nodelay[i]), value);
}

/* n exchanges: the first, then the rest once the listener has had the
 * option for longer than its 100 ms to settle. */
static void first_then_settled(ss_server *srv, int n)
{
    exchange_then_end(srv, "first");
    pause_ms(250);
    for (int i = 1; i < n; i++)
        exchange_then_end(srv, "next");
}

/* Set after the listener listens, as the examples do: every connection
 * has it. A pool's workers accept until the queue is empty, so after the
 * first connections (those the listener may have made before it had the
 * option: until 100 ms after it got it, and a look at an empty queue),
 * the rest get it from the listener alone. (The loop of the other
 * dispatchers takes one client per poll and never finds the queue empty:
 * there each connection is still given it.) */
static void connections_inherit_nodelay(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, note_nodelay, &loop);
    ss_server_set_tcp_nodelay(srv, true);
    first_then_settled(srv, CONNS);
    assert_true(wait_closed(srv, CONNS));
    int own = atomic_load(&counts->nodelay_conn);
    print_message("%s: TCP_NODELAY set on %d of %d connections, %d time(s) on the listener\n",
                  c->mode, own, CONNS, atomic_load(&counts->nodelay_listener));
    expect_nodelay(0, CONNS, 1);
    assert_int_equal(atomic_load(&counts->nodelay_listener), 1);
    if (strcmp(c->mode, "pool") == 0)
        assert_true(own <= 2); /* the first, perhaps the one after the pause */
    stop(srv, loop, c);
}

/* Turned off, then on again, while the pool serves: each connection
 * accepted after a change has the new value, and after each change the
 * listener alone gives it again. */
static void changes_reach_every_later_connection(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, note_nodelay, &loop);
    int served = 0;
    for (int round = 0; round < 3; round++) {
        bool on = round != 1;
        ss_server_set_tcp_nodelay(srv, on);
        int own_before = atomic_load(&counts->nodelay_conn);
        first_then_settled(srv, 4);
        served += 4;
        assert_true(wait_closed(srv, (uint64_t)served));
        expect_nodelay(served - 4, served, on);
        assert_true(atomic_load(&counts->nodelay_conn) - own_before <= 2);
    }
    assert_int_equal(atomic_load(&counts->nodelay_listener), 3);
    stop(srv, loop, c);
}

/* Turned off while connections wait in the listener's queue, made when
 * the listener still had it on: each connection accepted afterwards has
 * it off, those included. */
static void change_reaches_connections_already_queued(void **state)
{
    const combo *c = *state;
    reset_counts();
    pthread_t loop;
    ss_server *srv = start(c, note_nodelay, &loop);
    ss_server_set_tcp_nodelay(srv, true);
    first_then_settled(srv, 2);
    atomic_store(&counts->hold, true);
    int busy = connect_to(srv); /* the sync loop serves it, and takes no more */
    while (atomic_load(&counts->seen) < 3)
        pause_ms(5);
    int queued[3];
    for (int i = 0; i < 3; i++)
        queued[i] = connect_to(srv); /* made from the listener, nodelay on */
    ss_server_set_tcp_nodelay(srv, false);
    atomic_store(&counts->hold, false);
    assert_int_equal(__real_shutdown(busy, SHUT_WR), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(__real_shutdown(queued[i], SHUT_WR), 0);
    assert_true(wait_closed(srv, 6));
    expect_nodelay(0, 3, 1);
    expect_nodelay(3, 6, 0);
    exchange_then_end(srv, "later");
    assert_true(wait_closed(srv, 7));
    expect_nodelay(6, 7, 0);
    close(busy);
    for (int i = 0; i < 3; i++)
        close(queued[i]);
    stop(srv, loop, c);
}

#define CASE(fn, mode, transport)                                                                  \
    {                                                                                              \
#fn "/" mode "/" transport, fn, NULL, NULL, &(combo)                                       \
        {                                                                                          \
            mode, transport                                                                        \
        }                                                                                          \
    }
#define ON_EVERY_TRANSPORT(fn, mode)                                                               \
    CASE(fn, mode, "tcp"), CASE(fn, mode, "unix"), CASE(fn, mode, "abstract")
#define ON_EVERY_COMBO(fn)                                                                         \
    ON_EVERY_TRANSPORT(fn, "sync"), ON_EVERY_TRANSPORT(fn, "threading"),                           \
        ON_EVERY_TRANSPORT(fn, "forking"), ON_EVERY_TRANSPORT(fn, "pool")

int main(void)
{
    counts = mmap(NULL, sizeof *counts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED)
        return 1;
    const struct CMUnitTest tests[] = {
        ON_EVERY_COMBO(client_that_ended_costs_only_a_close),
        ON_EVERY_COMBO(pipelining_client_gets_the_careful_close),
        ON_EVERY_TRANSPORT(lent_descriptor_is_shut_down, "pool"),
        ON_EVERY_TRANSPORT(lent_descriptor_is_shut_down, "threading"),
        ON_EVERY_TRANSPORT(read_ended_by_an_idle_close_gets_the_careful_close, "threading"),
        ON_EVERY_TRANSPORT(read_ended_by_an_idle_close_gets_the_careful_close, "pool"),
        ON_EVERY_TRANSPORT(read_cut_off_by_the_drain_gets_the_careful_close, "threading"),
        ON_EVERY_TRANSPORT(read_cut_off_by_the_drain_gets_the_careful_close, "pool"),
        CASE(connections_inherit_nodelay, "sync", "tcp"),
        CASE(connections_inherit_nodelay, "pool", "tcp"),
        CASE(connections_inherit_nodelay, "threading", "tcp"),
        CASE(changes_reach_every_later_connection, "pool", "tcp"),
        CASE(change_reaches_connections_already_queued, "sync", "tcp"),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    printf("Linux only (GNU ld's --wrap)\n");
    return 77;
}

#endif
