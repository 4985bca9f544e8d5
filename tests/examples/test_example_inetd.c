/* The examples under inetd and per-connection managers (issue 16, defects
 * 2 to 4), with the descriptor layouts those managers really use:
 *   - classic inetd `nowait`: the connection on fds 0, 1 and 2; not one
 *     byte of the server's log may reach the client;
 *   - SIGHUP to a per-connection instance (--inetd, or systemd's
 *     Accept=yes as --listen systemd:) is ignored with a log line, the
 *     connection goes on;
 *   - inetd `wait` (--listen fd:0, the listening socket on fds 0, 1 and
 *     2, or on stdout only): the server serves and stops normally, where
 *     SIGPIPE used to kill it at its first log line. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* The program, with fds 0 to 3 as given (-1: fd 3 closed), in a group
 * of its own; stderr_out (if not NULL) is our end of a pipe on the
 * child's fd 2 when fds[2] is -1. */
static pid_t run(const char *const argv[], const int fds[4], int *stderr_out)
{
    int err[2] = {-1, -1};
    if (fds[2] < 0)
        assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL); /* as inetd starts it: ours is ignored */
        int use[4] = {fds[0], fds[1], fds[2] >= 0 ? fds[2] : err[1], fds[3]};
        int high[4];
        for (int i = 0; i < 4; i++) /* above 3 first, so no dup2 overwrites another */
            high[i] = use[i] >= 0 ? fcntl(use[i], F_DUPFD_CLOEXEC, 10) : -1;
        for (int i = 0; i < 4; i++)
            if (high[i] >= 0)
                dup2(high[i], i);
        if (high[3] < 0)
            close(3);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (err[1] >= 0)
        close(err[1]);
    if (stderr_out != NULL)
        *stderr_out = err[0];
    else if (err[0] >= 0)
        close(err[0]);
    return pid;
}

/* Its exit status within 5 s, or the test fails (and the group dies). */
static int wait_exit(pid_t pid)
{
    long long until = ts_now_ms() + 5000;
    int status;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (ts_now_ms() > until) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("pid %ld did not exit", (long)pid);
        }
        usleep(10000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

/* Everything the client end receives until EOF (5 s at most). */
static size_t read_to_eof(int fd, char *buf, size_t size)
{
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = recv(fd, buf + got, size - 1 - got, 0)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    return got;
}

/* Classic inetd: fds 0, 1 and 2 are all the connection. The client gets
 * its answer and nothing else: no "connected", no "sent 4 bytes". */
static void test_inetd_log_stays_off_the_connection(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    const char *argv[] = {UPPERCASE_SERVER, "--inetd", NULL};
    pid_t pid = run(argv, (int[]){sv[1], sv[1], sv[1], -1}, NULL);
    close(sv[1]);
    ts_send(sv[0], "abc\n", 4);
    shutdown(sv[0], SHUT_WR);
    char got[512];
    read_to_eof(sv[0], got, sizeof got);
    assert_string_equal(got, "ABC\n");
    assert_int_equal(wait_exit(pid), 0);
    close(sv[0]);
}

/* SIGHUP to one per-connection instance: logged, ignored. */
static void hangup_ignored(const char *const argv[], const int fds[4], int client)
{
    int err;
    pid_t pid = run(argv, fds, &err);
    char answer[64];
    ts_send(client, "one\n", 4);
    assert_true(read_answer(client, answer, sizeof answer) > 0);
    assert_string_equal(answer, "ONE\n");
    ex_signal(pid, SIGHUP);
    char log[2048];
    read_all(err, log, sizeof log, "SIGHUP ignored");
    if (strstr(log, "SIGHUP ignored: serving one connection") == NULL)
        fail_msg("stderr: %s", log);
    ts_send(client, "two\n", 4);
    assert_true(read_answer(client, answer, sizeof answer) > 0);
    assert_string_equal(answer, "TWO\n");
    shutdown(client, SHUT_WR);
    assert_int_equal(wait_exit(pid), 0);
    close(err);
}

static void test_inetd_hangup_ignored(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    const char *argv[] = {UPPERCASE_SERVER, "--inetd", NULL};
    hangup_ignored(argv, (int[]){sv[1], sv[1], -1, -1}, sv[0]);
    close(sv[1]);
    close(sv[0]);
}

/* systemd's Accept=yes: the connection as fd 3, LISTEN_PID the server. */
static void test_accept_yes_hangup_ignored(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    const char *argv[] = {
        "/bin/sh", "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --listen systemd:", UPPERCASE_SERVER, NULL};
    hangup_ignored(argv, (int[]){null, null, -1, sv[1]}, sv[0]);
    close(null);
    close(sv[1]);
    close(sv[0]);
}

static int listening_tcp(struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof *addr;
    assert_int_equal(bind(fd, (struct sockaddr *)addr, len), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* inetd `wait`: the listening socket on stdin and on stdout (and on
 * stderr if `on_stderr`); the server must serve clients, then stop on
 * SIGTERM and exit 0 (SIGPIPE killed it before). */
static void wait_mode(bool on_stderr)
{
    struct sockaddr_in addr;
    int listener = listening_tcp(&addr);
    int err = -1;
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "fd:0", NULL};
    pid_t pid = run(argv, (int[]){listener, listener, on_stderr ? listener : -1, -1},
                    on_stderr ? NULL : &err);
    close(listener);
    for (int i = 0; i < 3; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 5};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        assert_int_equal(connect(c, (struct sockaddr *)&addr, sizeof addr), 0);
        ts_send(c, "wait\n", 5);
        char answer[64];
        assert_true(read_answer(c, answer, sizeof answer) > 0);
        assert_string_equal(answer, "WAIT\n");
        close(c);
    }
    ex_signal(pid, SIGTERM);
    assert_int_equal(wait_exit(pid), 0);
    if (err >= 0) {
        char log[4096];
        read_all(err, log, sizeof log, NULL);
        if (strstr(log, "connected") == NULL) /* the log still goes to a real stderr */
            fail_msg("stderr: %s", log);
        close(err);
    }
}

static void test_wait_mode_on_all_three(void **state)
{
    (void)state;
    wait_mode(true);
}

static void test_wait_mode_on_stdout(void **state)
{
    (void)state;
    wait_mode(false);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inetd_log_stays_off_the_connection),
        cmocka_unit_test(test_inetd_hangup_ignored),
        cmocka_unit_test(test_accept_yes_hangup_ignored),
        cmocka_unit_test(test_wait_mode_on_all_three),
        cmocka_unit_test(test_wait_mode_on_stdout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
