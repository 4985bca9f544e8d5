/* Smoke tests of the example programs as a user runs them: the
 * "listening on URL" line, the uppercase/echo protocol, SIGINT/SIGTERM ->
 * exit 0 (a first signal drains, a second stops at once), --timeout and
 * --drain, bad arguments -> exit 2, a taken address -> exit 1 with one
 * clear line, and the interactive client. */
#include "support.h"

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

typedef struct child {
    pid_t pid;
    int in, out, err; /* our ends of its stdin, stdout, stderr */
} child;

/* Every example this test started and has not reaped yet: a failed
 * assertion skips the test's own kill and reap, so the teardown ends
 * whatever is left instead of leaving it serving after the test. */
#define MAX_SPAWNED 8
static pid_t spawned[MAX_SPAWNED];

static void remember(pid_t pid)
{
    for (int i = 0; i < MAX_SPAWNED; i++)
        if (spawned[i] == 0) {
            spawned[i] = pid;
            return;
        }
    fail_msg("more than %d examples running at once", MAX_SPAWNED);
}

static void forget(pid_t pid)
{
    for (int i = 0; i < MAX_SPAWNED; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
}

/* cmocka teardown: a leftover example is killed and reaped. Its process
 * group goes too: a forking example's children would outlive it. */
static int end_leftovers(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SPAWNED; i++) {
        if (spawned[i] == 0)
            continue;
        kill(-spawned[i], SIGKILL);
        kill(spawned[i], SIGKILL);
        waitpid(spawned[i], NULL, 0);
        spawned[i] = 0;
    }
    return 0;
}

static void spawn(child *c, const char *const argv[])
{
    int in[2], out[2], err[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        setpgid(0, 0); /* its own group, so the teardown can end its children */
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    remember(c->pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    c->in = in[1];
    c->out = out[0];
    c->err = err[0];
}

/* Reads from fd until `size` bytes, EOF, or 5 s; NUL-terminates. */
static size_t read_all(int fd, char *buf, size_t size, const char *until)
{
    size_t got = 0;
    long long end = ts_now_ms() + 5000;
    while (got + 1 < size && ts_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (until != NULL && strstr(buf, until) != NULL)
            break;
    }
    buf[got] = '\0';
    return got;
}

/* Waits up to 5 s for the child; returns its exit status or fails. */
static int reap(child *c)
{
    int status;
    long long end = ts_now_ms() + 5000;
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (ts_now_ms() > end) {
            fail_msg("child did not exit in time"); /* end_leftovers kills it */
        }
        usleep(5000);
    }
    forget(c->pid);
    close(c->in);
    close(c->out);
    close(c->err);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Starts a server example with argv and returns the URL from its one
 * stdout line. */
static void start_server_argv(child *c, const char *const argv[], char *url, size_t size)
{
    spawn(c, argv);
    char line[256];
    read_all(c->out, line, sizeof line, "\n");
    const char prefix[] = "listening on ";
    if (strncmp(line, prefix, sizeof prefix - 1) != 0)
        fail_msg("unexpected first line: '%s'", line);
    line[strcspn(line, "\n")] = '\0';
    snprintf(url, size, "%s", line + sizeof prefix - 1);
}

static void start_server(child *c, const char *program, const char *listen, char *url, size_t size)
{
    const char *argv[] = {program, "--listen", listen, NULL};
    start_server_argv(c, argv, url, size);
}

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
    int fd = ts_connect_url(url);
    ts_send(fd, "x", 1);
    char got;
    assert_int_equal(ts_recv_exact(fd, &got, 1), 1); /* handler is now waiting on us */
    stop_twice(&c);
    assert_true(ts_sees_eof(fd)); /* the drain shut the connection down */
    close(fd);
}

/* During the drain a busy client is still served; once it leaves the
 * server exits, long before --drain runs out. */
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
    ts_send(fd, "a", 1);
    assert_int_equal(ts_recv_exact(fd, got, 1), 1);
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
 * client connected and idle. */
static void test_every_mode_serves_and_stops_with_idle_client(void **state)
{
    (void)state;
    const char *modes[] = {"sync", "threading", "forking", "pool"};
    for (size_t i = 0; i < 4; i++) {
        const char *argv[] = {ECHO_SERVER, "--listen", "tcp://127.0.0.1:0", "--mode", modes[i],
                              "--workers", "2",        "--quiet",           NULL};
        child c;
        char url[128];
        start_server_argv(&c, argv, url, sizeof url);
        int fd = ts_connect_url(url);
        ts_send(fd, "hi", 2);
        char got[2];
        assert_int_equal(ts_recv_exact(fd, got, 2), 2); /* its handler now waits on us */
        stop_twice(&c);
        assert_true(ts_sees_eof(fd)); /* forking: the child was told to end too */
        close(fd);
    }
}

static void test_bad_arguments_exit_2(void **state)
{
    (void)state;
    const char *cases[][3] = {{"--mode", "nonsense", NULL}, {"--bogus", NULL, NULL},
                              {"--listen", NULL, NULL},     {"--workers", "0", NULL},
                              {"--workers", "2x", NULL},    {"--timeout", "-1", NULL},
                              {"--drain", "soon", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[] = {UPPERCASE_SERVER, cases[i][0], cases[i][1], NULL};
        child c;
        spawn(&c, argv);
        char err[1024];
        read_all(c.err, err, sizeof err, NULL);
        assert_int_equal(reap(&c), 2);
        assert_non_null(strstr(err, "usage:"));
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

static void test_interactive_client(void **state)
{
    (void)state;
    child server;
    char url[128];
    start_server(&server, UPPERCASE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    const char *argv[] = {UPPERCASE_CLIENT, "--connect", url, NULL};
    child client;
    spawn(&client, argv);
    const char input[] = "hello there\n\nq\n";
    assert_int_equal(write(client.in, input, sizeof input - 1), (ssize_t)(sizeof input - 1));
    char out[2048];
    read_all(client.out, out, sizeof out, "connection closed");
    assert_int_equal(reap(&client), 0);
    assert_non_null(strstr(out, "received: HELLO THERE"));
    assert_non_null(strstr(out, "input must not be empty"));
    assert_non_null(strstr(out, "connection closed"));
    kill(server.pid, SIGINT);
    assert_int_equal(reap(&server), 0);
}

/* ---- the tutorial's chat, robust and line servers ---- */

/* Reads exactly strlen(want) bytes and compares. */
static void expect(int fd, const char *want)
{
    char got[512] = {0};
    size_t n = strlen(want);
    assert_true(n < sizeof got);
    assert_int_equal(ts_recv_exact(fd, got, n), n);
    assert_string_equal(got, want);
}

/* "127.0.0.1:PORT: text\n", as the chat server prefixes a client's line. */
static void chat_line(int fd, const char *text, char *out, size_t size)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    snprintf(out, size, "127.0.0.1:%d: %s\n", ntohs(me.sin_port), text);
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
        cmocka_unit_test_teardown(test_bad_arguments_exit_2, end_leftovers),
        cmocka_unit_test_teardown(test_help_exits_0, end_leftovers),
        cmocka_unit_test_teardown(test_listen_failure_exit_1, end_leftovers),
        cmocka_unit_test_teardown(test_interactive_client, end_leftovers),
        cmocka_unit_test_teardown(test_chat_broadcast_survives_a_vanished_client, end_leftovers),
        cmocka_unit_test_teardown(test_robust_server_refuses_invalid_utf8, end_leftovers),
        cmocka_unit_test_teardown(test_line_server_commands_and_long_line, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
