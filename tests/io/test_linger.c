#define _GNU_SOURCE /* POLLRDHUP */
/* Lingering close (issue 11, item 7): a client that sent more than the
 * handler read gets the whole reply and then EOF, not a reset, on every
 * dispatcher and stream transport; and the lingering is bounded: a client
 * that floods, or that neither reads nor closes, is let go, and one that
 * has half-closed is closed at once. Handlers may run in a forked child:
 * they never call cmocka. */
#include "dispatch_support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define REPLY_SIZE (2 << 20)

typedef struct scenario {
    const char *mode;
    bool unix_stream;
} scenario;

/* ---- handlers ---- */

/* Reads one line, answers with reply_size bytes, returns: whatever else
 * the client sent stays unread. */
static size_t reply_size = REPLY_SIZE;
/* The client's half-close has reached the server before the reply goes
 * out (a 2 MiB reply may fit in loopback buffers, so the request could
 * otherwise end before the client's shutdown is even sent). */
static bool reply_after_half_close;

static void wait_half_close(ss_request *req)
{
#ifdef POLLRDHUP
    struct pollfd p = {.fd = ss_request_fileno(req), .events = POLLRDHUP};
    long long until = ts_now_ms() + 5000;
    while (!(p.revents & POLLRDHUP) && ts_now_ms() < until)
        poll(&p, 1, 100);
#else
    (void)req;
#endif
}

static int one_line_big_reply(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -EPROTO;
    if (reply_after_half_close)
        wait_half_close(req);
    /* room in the kernel for a small reply, whatever the client reads */
    int room = 256 * 1024;
    if (reply_size <= 64 * 1024)
        setsockopt(ss_request_fileno(req), SOL_SOCKET, SO_SNDBUF, &room, sizeof room);
    char *reply = malloc(reply_size);
    if (reply == NULL)
        return -ENOMEM;
    memset(reply, 'x', reply_size);
    int rc = ss_request_send_all(req, reply, reply_size);
    free(reply);
    return rc;
}
static const ss_handler big_reply = {.version = SS_HANDLER_VERSION, .handle = one_line_big_reply};

/* ---- servers and clients ---- */

static char tmpdir[256];

static ss_server *start(ts_runner *runner, const scenario *sc)
{
    char url[300] = "tcp://127.0.0.1:0";
    if (sc->unix_stream) {
        ts_mkdtemp(tmpdir, sizeof tmpdir);
        snprintf(url, sizeof url, "unix:%s/s", tmpdir);
    }
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(sc->mode), &big_reply, NULL),
                     0);
    assert_int_equal(ss_server_set_workers(srv, 2), 0);
    ss_server_set_request_timeout(srv, 20000); /* a failed test still ends */
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_start(runner, srv, 5000);
    return srv;
}

static void stop(ts_runner *runner, ss_server *srv, const scenario *sc)
{
    assert_int_equal(ts_stop(runner), 0);
    ss_server_free(srv);
    if (sc->unix_stream)
        ts_rmdir(tmpdir);
}

static void pause_ms(int ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Reads until EOF or an error, 64 KiB at a time with a short pause after
 * each read (a client reading at a normal pace). Returns the byte count;
 * *end is 0 for EOF, else the errno that ended it. */
static size_t read_to_end(int fd, int *end)
{
    static char buf[64 * 1024];
    size_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
            total += (size_t)n;
            pause_ms(1);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        *end = n == 0 ? 0 : errno;
        return total;
    }
}

/* ---- the reported case ---- */

/* The client pipelines a second line 50 ms after the first, then reads
 * the reply at a normal pace once the server has had time to send what
 * its buffers take and to end the request: the close happens while most
 * of the reply is still queued, with the second line unread. */
static void pipelined_client_gets_whole_reply(void **state)
{
    const scenario *sc = *state;
    reply_size = REPLY_SIZE;
    int fds_before = ts_count_fds();
    ts_runner runner;
    ss_server *srv = start(&runner, sc);
    int fd = ts_connect(srv);
    ts_send(fd, "one\n", 4);
    pause_ms(50);
    ts_send(fd, "two\n", 4);
    pause_ms(300);
    int end = -1;
    assert_int_equal(read_to_end(fd, &end), REPLY_SIZE);
    assert_int_equal(end, 0); /* EOF, never ECONNRESET */
    close(fd);
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.linger_overflows, 0);
    /* TCP needed the lingering close (forking: in the child, uncounted
     * here); a Unix stream only had to read the unread line first. */
    bool lingered = !sc->unix_stream && strcmp(sc->mode, "forking") != 0;
    assert_int_equal(st.lingering_closes, lingered ? 1 : 0);
    stop(&runner, srv, sc);
    assert_true(td_wait_fds(fds_before, 5000)); /* the lingerer let go at our EOF */
}

/* ---- the bounds ---- */

/* A client that half-closes with its extra line: the server finds EOF
 * behind it and closes at once, without lingering. */
static void half_closed_client_is_closed_at_once(void **state)
{
    const scenario *sc = *state;
    reply_size = REPLY_SIZE;
    reply_after_half_close = true;
    ts_runner runner;
    ss_server *srv = start(&runner, sc);
    int fd = ts_connect(srv);
    ts_send(fd, "one\ntwo\n", 8);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    int end = -1;
    assert_int_equal(read_to_end(fd, &end), REPLY_SIZE);
    assert_int_equal(end, 0);
    assert_true(td_wait_closed(srv, 1, 10000));
    assert_int_equal(td_stats(srv).lingering_closes, 0);
    close(fd);
    stop(&runner, srv, sc);
    reply_after_half_close = false;
}

/* Sends until a send fails (the server closed) or 20 s pass; returns the
 * errno, 0 if nothing failed. */
static int flood(int fd, long long *took_ms)
{
    static const char junk[16 * 1024];
    long long start = ts_now_ms();
    while (ts_now_ms() - start < 20000) {
        ssize_t n = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
            *took_ms = ts_now_ms() - start;
            return errno;
        }
    }
    return 0;
}

/* A client that never reads and never stops sending: the lingering close
 * gives up on it (1 MiB thrown away, or its socket found empty with
 * nothing of ours to lose), and its sends then fail. */
static void flooding_client_is_let_go(void **state)
{
    const scenario *sc = *state;
    reply_size = 4096;
    int fds_before = ts_count_fds();
    ts_runner runner;
    ss_server *srv = start(&runner, sc);
    int fd = ts_connect(srv);
    ts_send(fd, "one\n", 4);
    long long took = 0;
    int err = flood(fd, &took);
    assert_true(err == EPIPE || err == ECONNRESET);
    assert_true(td_wait_closed(srv, 1, 10000));
    close(fd);
    stop(&runner, srv, sc);
    assert_true(td_wait_fds(fds_before, 5000));
}

/* A loopback TCP client whose receive buffer is set before connect, so
 * the window it offers stays that small. */
static int connect_small_window(const ss_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    int small = 2048;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)ss_server_port(srv))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    return fd;
}

/* A TCP client with a tiny receive buffer that pipelines a line and then
 * neither reads nor closes, of a server started for it: nothing moves
 * once the reply fills the client's window. Returns the client. */
static int stalled_client(ts_runner *runner, ss_server **srv, const scenario *sc)
{
    reply_size = 64 * 1024; /* more than the client's window takes */
    *srv = start(runner, sc);
    int fd = connect_small_window(*srv);
    ts_send(fd, "one\ntwo\n", 8);
    return fd;
}

/* Lingering for the stalled client ends after 2 s without progress.
 * Meanwhile the socket is no longer a request: close does not wait. */
static void stalled_client_is_let_go(void **state)
{
    const scenario *sc = *state;
    int fds_before = ts_count_fds();
    ts_runner runner;
    ss_server *srv;
    int fd = stalled_client(&runner, &srv, sc);
    assert_true(td_wait_closed(srv, 1, 20000));
    long long start = ts_now_ms();
    assert_int_equal(td_stats(srv).lingering_closes, 1);
    stop(&runner, srv, sc);
    assert_true(ts_now_ms() - start < 1000);          /* close did not wait for it ... */
    assert_int_equal(ts_count_fds(), fds_before + 2); /* ... still lingering: 2 s bound */
    assert_true(td_wait_fds(fds_before + 1, 20000));  /* only the client's socket left */
    long long lingered = ts_now_ms() - start;
    assert_true(lingered >= 1000); /* it did wait for the client ... */
    assert_true(lingered < 15000); /* ... and gave up within the bound */
    close(fd);
}

/* The same client of a forking server: the child lingers in place before
 * it exits, so it is reaped (closed) only after the 2 s bound. */
static void stalled_client_of_a_child_is_let_go(void **state)
{
    const scenario *sc = *state;
    ts_runner runner;
    ss_server *srv;
    int fd = stalled_client(&runner, &srv, sc);
    assert_true(td_wait_accepted(srv, 1, 10000));
    long long start = ts_now_ms();
    assert_true(td_wait_closed(srv, 1, 20000));
    long long lingered = ts_now_ms() - start;
    assert_true(lingered >= 1000);
    assert_true(lingered < 15000);
    assert_int_equal(td_stats(srv).handled, 1);
    close(fd);
    stop(&runner, srv, sc);
}

/* With RLIMIT_NOFILE at 64, at most 16 sockets linger at once (a quarter
 * of it); more stalled clients than that are closed at once and counted.
 * Runs first: the cap is taken when the lingerer starts, with nothing
 * lingering yet. */
static struct rlimit saved_nofile;

/* cmocka teardown: the limit comes back even when the test fails. */
static int restore_nofile(void **state)
{
    (void)state;
    return setrlimit(RLIMIT_NOFILE, &saved_nofile);
}

static void lingering_sockets_are_capped(void **state)
{
    enum { CLIENTS = 20, CAP = 16 };
    const scenario *sc = *state;
    struct rlimit low = saved_nofile;
    low.rlim_cur = 64;
    if (ts_count_fds() + 2 * CLIENTS + 8 > 64 || low.rlim_max < 64)
        skip();
    int fds_before = ts_count_fds();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    reply_size = 64 * 1024;
    ts_runner runner;
    ss_server *srv = start(&runner, sc);
    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = connect_small_window(srv);
        ts_send(fds[i], "one\ntwo\n", 8);
        assert_true(td_wait_closed(srv, (uint64_t)i + 1, 10000)); /* all within 2 s */
    }
    ss_stats st = td_stats(srv);
    assert_int_equal(st.lingering_closes, CAP);
    assert_int_equal(st.linger_overflows, CLIENTS - CAP);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    stop(&runner, srv, sc);
    /* the lingerer lets go at each client's EOF; the next test's count of
     * descriptors must not include them */
    assert_true(td_wait_fds(fds_before, 5000));
}

#define CASE(fn, mode, unix_stream)                                                                \
    {                                                                                              \
#fn "/" mode "/" #unix_stream, fn, NULL, NULL, &(scenario)                                 \
        {                                                                                          \
            mode, unix_stream                                                                      \
        }                                                                                          \
    }
#define ON_EVERY_DISPATCHER(fn, unix_stream)                                                       \
    CASE(fn, "sync", unix_stream), CASE(fn, "threading", unix_stream),                             \
        CASE(fn, "forking", unix_stream), CASE(fn, "pool", unix_stream)

int main(void)
{
    if (getrlimit(RLIMIT_NOFILE, &saved_nofile) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        {"lingering_sockets_are_capped/threading", lingering_sockets_are_capped, NULL,
         restore_nofile, &(scenario){"threading", false}},
        ON_EVERY_DISPATCHER(pipelined_client_gets_whole_reply, false),
        ON_EVERY_DISPATCHER(pipelined_client_gets_whole_reply, true),
        ON_EVERY_DISPATCHER(half_closed_client_is_closed_at_once, false),
        ON_EVERY_DISPATCHER(half_closed_client_is_closed_at_once, true),
        ON_EVERY_DISPATCHER(flooding_client_is_let_go, false),
        ON_EVERY_DISPATCHER(flooding_client_is_let_go, true),
        CASE(stalled_client_is_let_go, "sync", false),
        CASE(stalled_client_is_let_go, "threading", false),
        CASE(stalled_client_is_let_go, "pool", false),
        CASE(stalled_client_of_a_child_is_let_go, "forking", false),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
