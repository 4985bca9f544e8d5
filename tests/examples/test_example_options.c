/* Every example server honours every option of the common command line
 * (examples/cli.h), driven as a user drives it: --listen over each
 * transport, --mode, --workers, --timeout, --drain and --quiet, each
 * checked by what it changes. And one rule for their logs: however a
 * client goes (closes, resets, times out, is stopped), that is logged as
 * how it went, never as an error. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#ifndef SS_HAVE_FIBERS
#define SS_HAVE_FIBERS 0 /* CMake defines it as 1 where the pool has fibers */
#endif

typedef struct example {
    const char *path, *name;
    const char *ask;    /* one request */
    const char *answer; /* its answer; for chat, how it ends ("PEER" first) */
    bool chat;          /* connections and threads only */
} example;

static const example examples[] = {
    {ECHO_SERVER, "echo_server", "ping\n", "ping\n", false},
    {UPPERCASE_SERVER, "uppercase_server", "ping\n", "PING\n", false},
    {LINE_SERVER, "line_server", "UPPER ping\n", "OK PING\n", false},
    {ROBUST_SERVER, "robust_server", "ping\n", "PING\n", false},
    {CHAT_SERVER, "chat_server", "ping\n", ": ping\n", true},
};
#define N_EXAMPLES (sizeof examples / sizeof examples[0])

/* Starts ex on `listen` with up to 6 more arguments (NULL-ended). */
static void start(child *c, const example *ex, const char *listen, const char *const more[],
                  char *url, size_t size)
{
    const char *argv[10] = {ex->path, "--listen", listen};
    for (size_t i = 0; more != NULL && more[i] != NULL && i < 6; i++)
        argv[3 + i] = more[i];
    start_server_argv(c, argv, url, size);
}

/* Checks the answer to one ask. */
static void check_answer(const example *ex, int fd)
{
    char got[256];
    size_t n = read_answer(fd, got, sizeof got);
    size_t want = strlen(ex->answer);
    bool ok = ex->chat ? n > want && memcmp(got + n - want, ex->answer, want) == 0
                       : n == want && memcmp(got, ex->answer, want) == 0;
    if (!ok)
        fail_msg("%s: asked '%s', got '%s'", ex->name, ex->ask, got);
}

/* One exchange on fd: the server is serving this client. */
static void probe(const example *ex, int fd)
{
    ts_send(fd, ex->ask, strlen(ex->ask));
    check_answer(ex, fd);
}

/* True if fd has something to read within ms. */
static bool answered_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

static size_t count(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void wait_log(child *c, const char *needle)
{
    if (!ex_log_until(c, needle, 5000))
        fail_msg("no '%s' on stderr:\n%s", needle, c->log);
}

static void stop(child *c)
{
    kill(c->pid, SIGTERM);
    assert_int_equal(reap(c), 0);
}

/* ---- --listen: every transport ---- */

typedef struct transport {
    const char *form; /* %s: a temp dir, or a unique tag for abstract names */
    bool datagram, unix_stream;
} transport;

static const transport transports[] = {
    {"tcp://127.0.0.1:0", false, false}, {"tcp://[::1]:0", false, false},
    {"udp://127.0.0.1:0", true, false},  {"unix:%s/s.sock", false, true},
    {"unixgram:%s/g.sock", true, false},
#ifdef __linux__
    {"unix:@%s-s", false, true},         {"unixgram:@%s-g", true, false},
#endif
};

static void serve_one_client(const example *ex, const transport *t, const char *listen)
{
    child c;
    char url[512];
    start(&c, ex, listen, NULL, url, sizeof url);
    int fd = ts_connect_url(url);
    probe(ex, fd);
    close(fd);
    wait_log(&c, t->datagram ? "datagram of " : ex->chat ? " left" : " disconnected");
    stop(&c);
    ex_log_lacks(&c, "error");
    ex_log_lacks(&c, "reset");
    if (t->unix_stream)
        ex_log_has(&c, ex->chat ? "(unnamed peer) joined" : "(unnamed peer) ");
    if (t->datagram)
        ex_log_lacks(&c, "connected");
}

static void test_every_example_serves_every_transport(void **state)
{
    (void)state;
    char dir[256];
    ts_mkdtemp(dir, sizeof dir);
    for (size_t e = 0; e < N_EXAMPLES; e++)
        for (size_t t = 0; t < sizeof transports / sizeof transports[0]; t++) {
            const transport *tr = &transports[t];
            char listen[512], tag[300];
            snprintf(tag, sizeof tag, "%s", dir); /* unique: abstract names too */
            snprintf(listen, sizeof listen, tr->form, tag);
            if (examples[e].chat && tr->datagram) {
                const char *argv[] = {examples[e].path, "--listen", listen, NULL};
                expect_refusal(argv, 2, "cannot chat: use tcp:// or unix:");
                continue;
            }
            serve_one_client(&examples[e], tr, listen);
        }
    ts_rmdir(dir);
}

/* ---- --mode and --workers ---- */

/* Sync serves one client at a time: b waits until a leaves. */
static void expect_one_at_a_time(const example *ex, int a, int b)
{
    ts_send(b, ex->ask, strlen(ex->ask));
    if (answered_within(b, 300))
        fail_msg("%s: a second client was served while the first was connected", ex->name);
    close(a);
    check_answer(ex, b);
}

/* Ctrl-C twice with b connected and idle: exit 0 at once, b sees EOF. */
static void stop_twice(child *c, int b)
{
    kill(c->pid, SIGINT);
    wait_log(c, "signal again to stop now");
    long long start_ms = ts_now_ms();
    kill(c->pid, SIGINT);
    assert_int_equal(reap(c), 0);
    assert_true(ts_now_ms() - start_ms < 3000);
    assert_true(ts_sees_eof(b));
    close(b);
}

static void serve_in_mode(const example *ex, const char *mode, const char *workers)
{
    const char *more[] = {"--mode", mode, "--quiet", workers ? "--workers" : NULL, workers, NULL};
    child c;
    char url[128];
    start(&c, ex, "tcp://127.0.0.1:0", more, url, sizeof url);
    int a = ts_connect_url(url);
    probe(ex, a);
    int b = ts_connect_url(url);
    bool one_at_a_time =
        strcmp(mode, "sync") == 0 || (strcmp(mode, "forking") == 0 && workers != NULL);
    if (one_at_a_time) {
        expect_one_at_a_time(ex, a, b);
    } else {
        probe(ex, b); /* while a is connected */
        close(a);
    }
    stop_twice(&c, b);
    ex_log_lacks(&c, "error");
}

static void test_every_example_in_every_mode(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    for (size_t e = 0; e < N_EXAMPLES; e++)
        for (size_t m = 0; m < TS_DISPATCHERS; m++) {
            bool solo = strcmp(modes[m], "sync") == 0 || strcmp(modes[m], "forking") == 0;
            if (examples[e].chat && solo) {
                const char *argv[] = {examples[e].path, "--mode", modes[m], NULL};
                expect_refusal(argv, 2, "cannot chat: use threading or pool");
                continue;
            }
            serve_in_mode(&examples[e], modes[m], NULL);
        }
}

/* --workers 1: forking serves one client at a time (max children); the
 * pool's one worker serves many idle clients at once (on fibers; built
 * without them, it serves one at a time, as documented). */
static void test_every_example_honours_workers(void **state)
{
    (void)state;
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        const example *ex = &examples[e];
        if (!ex->chat)
            serve_in_mode(ex, "forking", "1");
        if (!SS_HAVE_FIBERS)
            continue;
        const char *more[] = {"--mode", "pool", "--workers", "1", "--quiet", NULL};
        child c;
        char url[128];
        start(&c, ex, "tcp://127.0.0.1:0", more, url, sizeof url);
        int fd[3];
        for (int i = 0; i < 3; i++) {
            fd[i] = ts_connect_url(url);
            probe(ex, fd[i]); /* the earlier ones still connected and idle */
        }
        close(fd[0]);
        close(fd[1]);
        stop_twice(&c, fd[2]);
    }
}

/* ---- --timeout, --drain, --quiet ---- */

/* Starts every example over TCP with `more` and connects a client to
 * each; url (if not NULL) receives their addresses. */
static void start_each(child c[], const char *const more[], int fd[], char url[][128])
{
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        char here[128];
        start(&c[e], &examples[e], "tcp://127.0.0.1:0", more, here, sizeof here);
        fd[e] = ts_connect_url(here);
        if (url != NULL)
            snprintf(url[e], 128, "%s", here);
    }
}

/* --timeout 1: a client silent for a second is dropped, and the log says
 * it timed out (robust_server once put 5 minutes in its place). */
static void test_every_example_honours_timeout(void **state)
{
    (void)state;
    const char *more[] = {"--timeout", "1", NULL};
    child c[N_EXAMPLES];
    int fd[N_EXAMPLES];
    long long start_ms = ts_now_ms();
    start_each(c, more, fd, NULL);
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        if (!ts_sees_eof(fd[e])) /* within the socket's 5 s timeout */
            fail_msg("%s kept a silent client past --timeout 1", examples[e].name);
        assert_true(ts_now_ms() - start_ms >= 900);
        close(fd[e]);
        wait_log(&c[e], " timed out (--timeout)");
        stop(&c[e]);
        ex_log_lacks(&c[e], "error");
    }
}

/* --drain 60: after Ctrl-C a client connected but silent so far is
 * still served, when it speaks (chat ends its clients at once: they wait
 * for nobody); --drain 1: one that never speaks is cut off after about a
 * second, which is logged as the stop, not as an error. (A client idle
 * after an exchange ends at once: test_drain_idle.c.) */
static void test_every_example_honours_drain(void **state)
{
    (void)state;
    const char *patient[] = {"--drain", "60", NULL};
    child c[N_EXAMPLES];
    int fd[N_EXAMPLES];
    start_each(c, patient, fd, NULL);
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        kill(c[e].pid, SIGINT);
        wait_log(&c[e], "finishing requests for up to 60 s");
        if (examples[e].chat)
            assert_true(ts_sees_eof(fd[e]));
        else
            probe(&examples[e], fd[e]); /* still served */
        close(fd[e]);
        assert_int_equal(reap(&c[e]), 0); /* within reap's 5 s, not 60 */
    }
    const char *brief[] = {"--drain", "1", NULL};
    start_each(c, brief, fd, NULL);
    for (size_t e = 0; e < N_EXAMPLES; e++)
        kill(c[e].pid, SIGINT);
    long long start_ms = ts_now_ms();
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        assert_int_equal(reap(&c[e]), 0);
        if (!examples[e].chat) {
            assert_true(ts_now_ms() - start_ms >= 800);
            ex_log_has(&c[e], "drain time is up");
        }
        assert_true(ts_sees_eof(fd[e]));
        close(fd[e]);
        ex_log_lacks(&c[e], "error");
    }
}

/* --quiet: no line per client; without it, one where a client comes and
 * goes (see the transport test). */
static void test_every_example_honours_quiet(void **state)
{
    (void)state;
    const char *more[] = {"--quiet", NULL};
    child c[N_EXAMPLES];
    int fd[N_EXAMPLES];
    start_each(c, more, fd, NULL);
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        probe(&examples[e], fd[e]);
        close(fd[e]);
        stop(&c[e]);
        char want[128];
        snprintf(want, sizeof want, "%s: stopping: finishing requests", examples[e].name);
        if (strncmp(c[e].log, want, strlen(want)) != 0 || count(c[e].log, "\n") != 1)
            fail_msg("%s --quiet logged:\n%s", examples[e].name, c[e].log);
    }
}

/* ---- how clients go ---- */

static void reset_close(int fd)
{
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
}

/* Lines in c's log that say a client went (closed, reset, or chat's
 * "left"), read for up to 5 s until there are `want`. */
static size_t wait_goings(child *c, size_t want)
{
    long long end = ts_now_ms() + 5000;
    size_t n;
    while ((n = count(c->log, " disconnected") + count(c->log, "reset the connection") +
                count(c->log, " left")) < want &&
           ts_now_ms() < end)
        ex_log_pump(c, 50);
    return n;
}

/* A client that resets after a conversation, and clients that reset
 * while their answer is being written: "reset the connection" (or, if
 * the server saw only the end, "disconnected"; chat hangs up on a client
 * it cannot write to: "left"), whichever of its reads or writes the server
 * meets it in, and never an error. */
static void test_every_example_logs_a_reset_as_a_reset(void **state)
{
    (void)state;
    child c[N_EXAMPLES];
    int fd[N_EXAMPLES];
    char url[N_EXAMPLES][128];
    start_each(c, NULL, fd, url);
    for (size_t e = 0; e < N_EXAMPLES; e++) {
        const example *ex = &examples[e];
        probe(ex, fd[e]);
        reset_close(fd[e]);
        wait_log(&c[e], "reset the connection");
        for (int i = 0; i < 3; i++) {
            int r = ts_connect_url(url[e]);
            ts_send(r, ex->ask, strlen(ex->ask));
            reset_close(r); /* its answer unread, perhaps not yet written */
        }
        if (wait_goings(&c[e], 4) < 4)
            fail_msg("%s: four clients reset, logged:\n%s", ex->name, c[e].log);
        stop(&c[e]);
        ex_log_lacks(&c[e], "error");
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_example_serves_every_transport, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_in_every_mode, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_honours_workers, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_honours_timeout, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_honours_drain, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_honours_quiet, end_leftovers),
        cmocka_unit_test_teardown(test_every_example_logs_a_reset_as_a_reset, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
