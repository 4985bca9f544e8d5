#define _GNU_SOURCE /* memmem */
/* Smoke tests of the example programs as a user runs them: the
 * "listening on URL" line, the uppercase/echo protocol, SIGINT/SIGTERM ->
 * exit 0 (a first signal drains, a second stops at once), --timeout and
 * --drain, bad arguments -> exit 2, a taken address -> exit 1 with one
 * clear line, and the interactive client. */
#include "example_support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static void round_trip(const char *url, const char *send, const char *want)
{
    int fd = ts_connect_url(url);
    ts_send(fd, send, strlen(send));
    char got[256] = {0};
    assert_int_equal(ts_recv_exact(fd, got, strlen(want)), strlen(want));
    assert_string_equal(got, want);
    close(fd);
}

static void test_uppercase_server_protocol_and_sigint(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, UPPERCASE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    assert_memory_equal(url, "tcp://127.0.0.1:", 16);
    round_trip(url, "hello, World 42\n", "HELLO, WORLD 42\n");
    round_trip(url, "  keep spaces \r\n", "  KEEP SPACES \r\n"); /* nothing stripped */
    kill(c.pid, SIGINT);
    assert_int_equal(reap(&c), 0);
}

static void test_echo_server_ipv6_and_sigterm(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, ECHO_SERVER, "tcp://[::1]:0", url, sizeof url);
    assert_memory_equal(url, "tcp://[::1]:", 12);
    round_trip(url, "echo me", "echo me");
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
}

/* Over a datagram transport each datagram gets one reply datagram. */
static void test_echo_server_udp(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, ECHO_SERVER, "udp://127.0.0.1:0", url, sizeof url);
    assert_memory_equal(url, "udp://127.0.0.1:", 16);
    round_trip(url, "one datagram", "one datagram");
    round_trip(url, "another", "another");
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
}

/* unix: and unixgram: print the URL as given and remove the socket file
 * on the way out. */
static void test_uppercase_server_unix_forms(void **state)
{
    (void)state;
    char dir[256];
    ts_mkdtemp(dir, sizeof dir);
    const char *schemes[] = {"unix", "unixgram"};
    for (int i = 0; i < 2; i++) {
        char listen[512], url[512];
        snprintf(listen, sizeof listen, "%s:%s/up.sock", schemes[i], dir);
        child c;
        start_server(&c, UPPERCASE_SERVER, listen, url, sizeof url);
        assert_string_equal(url, listen);
        round_trip(url, "hello, unix\n", "HELLO, UNIX\n");
        kill(c.pid, SIGINT);
        assert_int_equal(reap(&c), 0);
        assert_int_equal(access(strchr(listen, ':') + 1, F_OK), -1);
    }
    ts_rmdir(dir);
}

/* Ctrl-C twice: the first starts the drain (announced on stderr), which
 * would wait for the busy client; the second ends it at once, exit 0. */
static void stop_twice(child *c)
{
    kill(c->pid, SIGINT);
    char err[4096];
    read_all(c->err, err, sizeof err, "stopping");
    assert_non_null(strstr(err, "signal again to stop now"));
    long long start = ts_now_ms();
    kill(c->pid, SIGINT);
    assert_int_equal(reap(c), 0);
    assert_true(ts_now_ms() - start < 3000); /* not the 5 s --drain default */
}

static void test_sigint_with_idle_client_connected(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, UPPERCASE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int fd = ts_connect_url(url); /* silent: not idle, so the drain waits for it */
    stop_twice(&c);
    assert_true(ts_sees_eof(fd)); /* the drain shut the connection down */
    close(fd);
}

/* During the drain a client that had not spoken yet is still served; once
 * it leaves the server exits, long before --drain runs out. */
static void test_drain_lets_busy_client_finish(void **state)
{
    (void)state;
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", "--drain", "60",
                          "--quiet",        NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    int fd = ts_connect_url(url);
    char got[2] = {0};
    kill(c.pid, SIGINT);
    char err[1024];
    read_all(c.err, err, sizeof err, "stopping");
    assert_non_null(strstr(err, "up to 60 s"));
    ts_send(fd, "b", 1); /* still served */
    assert_int_equal(ts_recv_exact(fd, got, 1), 1);
    assert_string_equal(got, "B");
    close(fd);
    assert_int_equal(reap(&c), 0); /* within reap's 5 s, not 60 */
}

/* --timeout N drops a client that says nothing for N seconds. */
static void test_timeout_drops_stalled_client(void **state)
{
    (void)state;
    const char *argv[] = {ECHO_SERVER, "--listen", "tcp://127.0.0.1:0", "--timeout", "1",
                          "--quiet",   NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    int fd = ts_connect_url(url);
    long long start = ts_now_ms();
    assert_true(ts_sees_eof(fd)); /* within the client's own 5 s limit */
    long long waited = ts_now_ms() - start;
    assert_true(waited >= 900 && waited < 4000);
    close(fd);
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
}

/* Every --mode serves, and a second Ctrl-C ends it at once even with a
 * client connected and silent (not idle: idle clients end at once). */
static void test_every_mode_serves_and_stops_with_idle_client(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    for (size_t i = 0; i < TS_DISPATCHERS; i++) {
        bool sized = strcmp(modes[i], "pool") == 0 || strcmp(modes[i], "forking") == 0;
        const char *argv[] = {ECHO_SERVER, "--listen", "tcp://127.0.0.1:0",        "--mode",
                              modes[i],    "--quiet",  sized ? "--workers" : NULL, "2",
                              NULL};
        child c;
        char url[128];
        start_server_argv(&c, argv, url, sizeof url);
        int fd = ts_connect_url(url); /* silent: the drain would wait for it */
        stop_twice(&c);
        assert_true(ts_sees_eof(fd)); /* forking: the child was told to end too */
        close(fd);
    }
}

/* Each bad command line exits 2 with usage and a line that says what is
 * wrong with it, in every example server. */
static void test_bad_arguments_exit_2_saying_why(void **state)
{
    (void)state;
    static const struct {
        const char *arg[3];
        const char *says;
    } cases[] = {
        {{"--mode", "nonsense", NULL}, "unknown mode: nonsense"},
        {{"--bogus", NULL, NULL}, "unknown argument: --bogus"},
        {{"--listen", NULL, NULL}, "--listen needs a value"},
        {{"--mode", NULL, NULL}, "--mode needs a value"},
        {{"--timeout", NULL, NULL}, "--timeout needs a value"},
        {{"--workers", "0", NULL}, "--workers needs a number from 1 to 100000: 0"},
        {{"--workers", "2x", NULL}, "--workers needs a number from 1 to 100000: 2x"},
        {{"--workers", "2", NULL}, "--workers needs --mode pool or forking (not threading)"},
        {{"--mode", "sync", "--workers"}, "--workers needs a value"},
        {{"--timeout", "-1", NULL}, "--timeout needs seconds from 0 to 1000000: -1"},
        {{"--drain", "soon", NULL}, "--drain needs seconds from 0 to 1000000: soon"},
    };
    const char *programs[] = {ECHO_SERVER, UPPERCASE_SERVER, LINE_SERVER, ROBUST_SERVER,
                              CHAT_SERVER};
    for (size_t p = 0; p < sizeof programs / sizeof programs[0]; p++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char *argv[] = {programs[p], cases[i].arg[0], cases[i].arg[1], cases[i].arg[2],
                                  NULL};
            expect_refusal(argv, 2, cases[i].says);
            expect_refusal(argv, 2, "usage:");
        }
}

/* A URL the library cannot parse: exit 1 and the parser's own words. */
static void test_bad_url_says_what_is_wrong(void **state)
{
    (void)state;
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"tcp://[::1]:99999", "URL port out of range (0-65535)"},
        {"tcp://127.0.0.1:http", "URL port is not a decimal number"},
        {"tcp://127.0.0.1", "URL has no ':PORT'"},
        {"tcp://[::1:80", "Missing ']' in IPv6 address"},
        {"tcp://::1:80", "IPv6 address needs brackets"},
        {"localhost:9999", "URL has no scheme"},
        {"http://localhost:9999", "Unknown URL scheme"},
        {"unix:", "URL has no socket path"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {ECHO_SERVER, "--listen", cases[i].url, NULL};
        char want[256];
        snprintf(want, sizeof want, "echo_server: cannot listen on %s: %s", cases[i].url,
                 cases[i].says);
        expect_refusal(argv, 1, want);
    }
}

static void test_help_exits_0(void **state)
{
    (void)state;
    const char *argv[] = {ECHO_SERVER, "--help", NULL};
    child c;
    spawn(&c, argv);
    char out[1024];
    read_all(c.out, out, sizeof out, NULL);
    assert_int_equal(reap(&c), 0);
    assert_non_null(strstr(out, "--listen URL"));
}

static void test_listen_failure_exit_1(void **state)
{
    (void)state;
    child first;
    char url[128];
    start_server(&first, ECHO_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    const char *argv[] = {ECHO_SERVER, "--listen", url, NULL};
    child second;
    spawn(&second, argv);
    char err[512];
    read_all(second.err, err, sizeof err, NULL);
    assert_int_equal(reap(&second), 1);
    char want[256];
    snprintf(want, sizeof want, "echo_server: cannot listen on %s: Address already in use\n", url);
    assert_string_equal(err, want);
    kill(first.pid, SIGTERM);
    assert_int_equal(reap(&first), 0);
}

/* ---- the tutorial's chat, robust and line servers ---- */

/* "127.0.0.1:PORT: text\n", as the chat server prefixes a client's line. */
static void chat_line(int fd, const char *text, char *out, size_t size)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    snprintf(out, size, "127.0.0.1:%d: %s\n", ntohs(me.sin_port), text);
}

/* Forked children share stderr: each log line must reach it in one
 * write, or two children's lines cut into each other ("A connectedB
 * connected\n\n"). Many clients at once, then every line checked whole. */
static void test_forked_children_log_whole_lines(void **state)
{
    (void)state;
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0",
                          "--mode",         "forking",  NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    enum { CLIENTS = 32 };
    int fd[CLIENTS];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < CLIENTS; i++)
            fd[i] = ts_connect_url(url);
        for (int i = 0; i < CLIENTS; i++)
            ts_send(fd[i], "x", 1);
        for (int i = 0; i < CLIENTS; i++) {
            expect(fd[i], "X");
            close(fd[i]);
        }
    }
    kill(c.pid, SIGINT);
    assert_int_equal(reap(&c), 0);
    size_t lines = 0;
    for (char *line = c.log, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        *end = '\0';
        bool client = strncmp(line, "127.0.0.1:", 10) == 0 && strstr(line + 10, "127.") == NULL;
        if (!client && strncmp(line, "uppercase_server: stopping", 26) != 0)
            fail_msg("a cut line: '%s'", line);
        lines++;
    }
    assert_int_equal(lines, 2 * CLIENTS * 3 + 1); /* connected, sent, disconnected; stopping */
}

/* A unixgram client that closes before its reply is sent is gone, not an
 * error: "was gone before the reply" (the reply's Connection refused). */
static void test_datagram_sender_gone_is_not_an_error(void **state)
{
    (void)state;
    char dir[256], listen[512], url[512];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(listen, sizeof listen, "unixgram:%s/g.sock", dir);
    child c;
    start_server(&c, ECHO_SERVER, listen, url, sizeof url);
    /* Stopped, the server replies to nobody until every sender is gone:
     * left running, it may answer them all first on a loaded machine.
     * Eight fit in its receive queue (Linux's net.unix.max_dgram_qlen
     * defaults to 10). */
    assert_int_equal(kill(c.pid, SIGSTOP), 0);
    for (int i = 0; i < 8; i++) {
        int fd = ts_connect_url(url);
        ts_send(fd, "x", 1);
        close(fd);
    }
    assert_int_equal(kill(c.pid, SIGCONT), 0);
    if (!ex_log_until(&c, "was gone before the reply", 5000))
        fail_msg("no sender gone before its reply in:\n%s", c.log);
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    ex_log_lacks(&c, "error");
    ex_log_lacks(&c, "refused");
    ts_rmdir(dir);
}

/* Runs the interactive client against url with `input` on its stdin;
 * returns what it printed (in out, size bytes) once it exits 0 with
 * nothing on stderr. */
static size_t run_client(const char *url, const char *input, size_t len, char *out, size_t size)
{
    const char *argv[] = {UPPERCASE_CLIENT, "--connect", url, NULL};
    child client;
    spawn(&client, argv);
    assert_int_equal(write(client.in, input, len), (ssize_t)len);
    size_t n = read_all(client.out, out, size, "connection closed");
    assert_int_equal(reap(&client), 0);
    assert_string_equal(client.log, ""); /* the client complains of nothing */
    return n;
}

/* The client's "q" ends the session with no complaint on either side,
 * on every transport: the server logs the client leaving, never a reset,
 * a refused reply or an error. A unix: client has no address: it is
 * "(unnamed peer)", not an empty name. */
static void test_interactive_client_quits_cleanly_on_every_transport(void **state)
{
    (void)state;
    char dir[256];
    ts_mkdtemp(dir, sizeof dir);
    const char *forms[] = {"tcp://127.0.0.1:0", "unix:%s/s.sock", "unixgram:%s/g.sock",
                           "udp://127.0.0.1:0"};
    const char *leaving[] = {"disconnected", "(unnamed peer) disconnected",
                             "datagram of 1 bytes from @", "datagram of 1 bytes from 127.0.0.1:"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char listen[512], url[512];
        snprintf(listen, sizeof listen, forms[i], dir);
        child server;
        start_server(&server, UPPERCASE_SERVER, listen, url, sizeof url);
        const char input[] = "hello there\n\nq\n";
        char out[2048];
        run_client(url, input, sizeof input - 1, out, sizeof out);
        assert_non_null(strstr(out, "received: HELLO THERE\n"));
        assert_non_null(strstr(out, "input must not be empty"));
        assert_non_null(strstr(out, "connection closed"));
        if (!ex_log_until(&server, leaving[i], 5000))
            fail_msg("%s: no '%s' in:\n%s", listen, leaving[i], server.log);
        kill(server.pid, SIGINT);
        assert_int_equal(reap(&server), 0);
        ex_log_lacks(&server, "error");
        ex_log_lacks(&server, "reset");
        ex_log_lacks(&server, "refused");
        ex_log_lacks(&server, "\n connected"); /* no empty names */
        ex_log_lacks(&server, "\n sent");
    }
    ts_rmdir(dir);
}

/* Reads exactly len bytes and compares them, NUL bytes included. */
static void expect_bytes(int fd, const char *want, size_t len)
{
    char got[512];
    assert_true(len <= sizeof got);
    assert_int_equal(ts_recv_exact(fd, got, len), len);
    assert_memory_equal(got, want, len);
}

/* A line is bytes with a length: a NUL byte in it goes out and comes
 * back like any other. */
static void test_interactive_client_sends_nul_bytes(void **state)
{
    (void)state;
    child server;
    char url[128];
    start_server(&server, UPPERCASE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    const char input[] = "ab\0cd\nq\n";
    char out[2048];
    size_t n = run_client(url, input, sizeof input - 1, out, sizeof out);
    const char want[] = "received: AB\0CD\n";
    assert_non_null(memmem(out, n, want, sizeof want - 1));
    kill(server.pid, SIGINT);
    assert_int_equal(reap(&server), 0);
}

static void test_chat_relays_nul_bytes(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, CHAT_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int a = ts_connect_url(url);
    char joined[128];
    ts_send(a, "here\n", 5); /* its own echo proves a has joined */
    chat_line(a, "here", joined, sizeof joined);
    expect(a, joined);
    int b = ts_connect_url(url);
    ts_send(b, "here\n", 5);
    chat_line(b, "here", joined, sizeof joined);
    expect(b, joined);
    expect(a, joined);
    ts_send(a, "hello\0world\n", 12);
    char line[128];
    chat_line(a, "hello", line, sizeof line); /* "127.0.0.1:PORT: hello\n" */
    size_t prefix = strlen(line) - strlen("hello\n");
    char want[160];
    memcpy(want, line, prefix);
    memcpy(want + prefix, "hello\0world\n", 12);
    expect_bytes(a, want, prefix + 12);
    expect_bytes(b, want, prefix + 12);
    close(a);
    close(b);
    kill(c.pid, SIGINT);
    assert_int_equal(reap(&c), 0);
}

static void test_line_server_nul_bytes(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, LINE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int fd = ts_connect_url(url);
    ts_send(fd, "QUIT\0not-quit\n", 14);
    expect(fd, "ERR unknown command\n"); /* not QUIT: the connection stays */
    ts_send(fd, "ECHO a\0b\n", 9);
    expect_bytes(fd, "OK a\0b\n", 7);
    ts_send(fd, "UPPER x\0y\n", 10);
    expect_bytes(fd, "OK X\0Y\n", 7);
    ts_send(fd, "quit\n", 5);
    expect(fd, "OK bye\n");
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_true(ex_log_until(&c, "said QUIT", 5000));
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    ex_log_lacks(&c, "error");
}

static void test_chat_broadcast_survives_a_vanished_client(void **state)
{
    (void)state;
    child c;
    char url[128], line[3][128];
    start_server(&c, CHAT_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int fd[3];
    for (int i = 0; i < 3; i++) { /* one by one: its own echo proves it joined */
        fd[i] = ts_connect_url(url);
        chat_line(fd[i], "ping", line[i], sizeof line[i]);
        ts_send(fd[i], "ping\n", 5);
        for (int j = 0; j <= i; j++)
            expect(fd[j], line[i]);
    }
    ts_send(fd[0], "hello all\r\n", 11);
    chat_line(fd[0], "hello all", line[0], sizeof line[0]);
    for (int i = 0; i < 3; i++)
        expect(fd[i], line[0]);
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd[2], SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd[2]); /* vanishes with a reset */
    ts_send(fd[1], "still here\n", 11);
    chat_line(fd[1], "still here", line[1], sizeof line[1]);
    expect(fd[0], line[1]);
    expect(fd[1], line[1]);
    kill(c.pid, SIGINT); /* with clients connected */
    assert_int_equal(reap(&c), 0);
    assert_true(ts_sees_eof(fd[0]));
    close(fd[0]);
    close(fd[1]);
}

static void test_robust_server_refuses_invalid_utf8(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, ROBUST_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int fd = ts_connect_url(url);
    ts_send(fd, "h\xc3\xa9llo", 6);
    expect(fd, "H\xc3\xa9LLO");
    ts_send(fd, "\xff\xfe", 2);
    expect(fd, "Invalid UTF-8 data received");
    ts_send(fd, "\xc3", 1); /* a character split across two sends */
    ts_send(fd, "\xa9!", 2);
    expect(fd, "\xc3\xa9!");
    close(fd);
    char log[4096];
    /* each client has its own thread (the default mode): read the first
     * one's log before the second can write between its lines */
    read_all(c.err, log, sizeof log, "disconnected");
    assert_non_null(strstr(log, "sent invalid UTF-8"));
    assert_non_null(strstr(log, "disconnected"));
    fd = ts_connect_url(url);
    ts_send(fd, "x", 1);
    expect(fd, "X");
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
    read_all(c.err, log, sizeof log, "reset the connection");
    assert_non_null(strstr(log, "reset the connection"));
    kill(c.pid, SIGINT);
    assert_int_equal(reap(&c), 0);
}

static void test_line_server_commands_and_long_line(void **state)
{
    (void)state;
    child c;
    char url[128];
    start_server(&c, LINE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    int fd = ts_connect_url(url);
    ts_send(fd, "echo hi\r\nUPPER abc\nbogus\n", 25);
    char flood[3000];
    memset(flood, 'x', sizeof flood);
    flood[sizeof flood - 1] = '\n';
    ts_send(fd, flood, sizeof flood);
    ts_send(fd, "QUIT\n", 5);
    expect(fd, "OK hi\nOK ABC\nERR unknown command\nERR line too long\nOK bye\n");
    assert_true(ts_sees_eof(fd));
    close(fd);
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* writing to a child that died must fail the test, not kill it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_uppercase_server_protocol_and_sigint, end_leftovers),
        cmocka_unit_test_teardown(test_echo_server_ipv6_and_sigterm, end_leftovers),
        cmocka_unit_test_teardown(test_echo_server_udp, end_leftovers),
        cmocka_unit_test_teardown(test_uppercase_server_unix_forms, end_leftovers),
        cmocka_unit_test_teardown(test_sigint_with_idle_client_connected, end_leftovers),
        cmocka_unit_test_teardown(test_drain_lets_busy_client_finish, end_leftovers),
        cmocka_unit_test_teardown(test_timeout_drops_stalled_client, end_leftovers),
        cmocka_unit_test_teardown(test_every_mode_serves_and_stops_with_idle_client, end_leftovers),
        cmocka_unit_test_teardown(test_bad_arguments_exit_2_saying_why, end_leftovers),
        cmocka_unit_test_teardown(test_bad_url_says_what_is_wrong, end_leftovers),
        cmocka_unit_test_teardown(test_help_exits_0, end_leftovers),
        cmocka_unit_test_teardown(test_listen_failure_exit_1, end_leftovers),
        cmocka_unit_test_teardown(test_chat_broadcast_survives_a_vanished_client, end_leftovers),
        cmocka_unit_test_teardown(test_robust_server_refuses_invalid_utf8, end_leftovers),
        cmocka_unit_test_teardown(test_line_server_commands_and_long_line, end_leftovers),
        cmocka_unit_test_teardown(test_interactive_client_quits_cleanly_on_every_transport,
                                  end_leftovers),
        cmocka_unit_test_teardown(test_interactive_client_sends_nul_bytes, end_leftovers),
        cmocka_unit_test_teardown(test_chat_relays_nul_bytes, end_leftovers),
        cmocka_unit_test_teardown(test_line_server_nul_bytes, end_leftovers),
        cmocka_unit_test_teardown(test_forked_children_log_whole_lines, end_leftovers),
        cmocka_unit_test_teardown(test_datagram_sender_gone_is_not_an_error, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
