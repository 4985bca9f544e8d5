/* The examples under the real systemd-socket-activate (Debian's systemd
 * package; scripts/test.sh installs it): systemd's socket-activation
 * protocol as systemd itself speaks it. One socket, several named ones
 * (all, or one picked by name), a connection per process with --accept
 * (as fd 3: the example's "--listen systemd:" serves it) and with --inetd
 * (on stdin: the example's --inetd), and environments that are wrong. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
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

#define ACTIVATE "/usr/bin/systemd-socket-activate"

static char dir[200];

static int make_dir(void **state)
{
    (void)state;
    if (access(ACTIVATE, X_OK) != 0) {
        fprintf(stderr, "needs %s: apt-get install systemd (scripts/test.sh does)\n", ACTIVATE);
        return -1;
    }
    ts_mkdtemp(dir, sizeof dir);
    return 0;
}

static int remove_dir(void **state)
{
    end_leftovers(state);
    ts_rmdir(dir);
    return 0;
}

static void path_of(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* One uppercase request on the Unix socket `name`. */
static void ask(const char *name, const char *line, const char *want)
{
    char path[256], url[300], got[128];
    path_of(name, path, sizeof path);
    snprintf(url, sizeof url, "unix:%s", path);
    int fd = ts_connect_url(url);
    ts_send(fd, line, strlen(line));
    read_answer(fd, got, sizeof got);
    close(fd);
    assert_string_equal(got, want);
}

/* systemd-socket-activate says "Listening on PATH as N." for each socket
 * once it listens: then clients may come. */
static void start_activate(child *c, const char *const argv[], int sockets)
{
    spawn(c, argv);
    char last[64];
    snprintf(last, sizeof last, "as %d.", 2 + sockets);
    assert_true(ex_log_until(c, last, 10000));
}

static void end(child *c)
{
    kill(c->pid, SIGTERM);
    assert_int_equal(reap(c), 0);
}

/* systemd-socket-activate --accept stays the parent of each connection's
 * process, and SIGTERM ends it by its default action. */
static void end_accepting(child *c)
{
    kill(c->pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    assert_true((WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) ||
                (WIFEXITED(status) && WEXITSTATUS(status) == 0));
    close(c->in);
    close(c->out);
    close(c->err);
}

static void test_one_socket(void **state)
{
    (void)state;
    char a[256];
    path_of("one", a, sizeof a);
    child c;
    const char *argv[] = {ACTIVATE, "-l", a, UPPERCASE_SERVER, "--listen", "systemd:", NULL};
    start_activate(&c, argv, 1);
    ask("one", "hello\n", "HELLO\n");
    ask("one", "again\n", "AGAIN\n"); /* the same process: it serves on */
    char line[300];
    snprintf(line, sizeof line, "listening on unix:%s", a);
    assert_true(ex_log_until(&c, "sent 6 bytes", 5000));
    char out[1024];
    read_all(c.out, out, sizeof out, "\n");
    assert_non_null(strstr(out, line + 0));
    end(&c);
}

static void test_named_sockets(void **state)
{
    (void)state;
    char web[256], admin[256];
    path_of("web", web, sizeof web);
    path_of("admin", admin, sizeof admin);
    child c;
    const char *argv[] = {
        ACTIVATE,         "-l",       web,        "-l", admin, "--fdname=web:admin",
        UPPERCASE_SERVER, "--listen", "systemd:", NULL};
    start_activate(&c, argv, 2);
    ask("web", "w\n", "W\n");
    ask("admin", "a\n", "A\n");
    end(&c);
}

/* systemd:admin adopts only the socket of that name. */
static void test_socket_by_name(void **state)
{
    (void)state;
    char web[256], admin[256];
    path_of("web2", web, sizeof web);
    path_of("admin2", admin, sizeof admin);
    child c;
    const char *argv[] = {
        ACTIVATE,        "-l", web, "-l", admin, "--fdname=web:admin", UPPERCASE_SERVER, "--listen",
        "systemd:admin", NULL};
    start_activate(&c, argv, 2);
    ask("admin2", "a\n", "A\n");
    char out[1024];
    size_t n = read_all(c.out, out, sizeof out, "\n");
    assert_true(n > 0);
    assert_non_null(strstr(out, admin));
    assert_null(strstr(out, web));
    end(&c);
}

/* A name that no passed socket has: a clear error, exit 1. */
static void test_name_that_does_not_match(void **state)
{
    (void)state;
    char web[256];
    path_of("web3", web, sizeof web);
    child c;
    const char *argv[] = {ACTIVATE,   "-l",           web, "--fdname=web", UPPERCASE_SERVER,
                          "--listen", "systemd:nope", NULL};
    start_activate(&c, argv, 1);
    char url[300];
    snprintf(url, sizeof url, "unix:%s", web);
    int fd = ts_connect_url(url); /* starts the program, which refuses */
    assert_int_equal(reap(&c), 1);
    close(fd);
    ex_log_has(&c, "No socket passed by socket activation has that name");
}

/* --accept: one process per connection, the connection as fd 3. */
static void test_accept(void **state)
{
    (void)state;
    char a[256];
    path_of("acc", a, sizeof a);
    child c;
    const char *argv[] = {ACTIVATE,         "--accept", "-l",       a,
                          UPPERCASE_SERVER, "--listen", "systemd:", NULL};
    start_activate(&c, argv, 1);
    ask("acc", "first\n", "FIRST\n");
    ask("acc", "second\n", "SECOND\n");
    assert_true(ex_log_until(&c, "sent 7 bytes", 5000));
    /* (fd 3 is a connection: adopting it as a listener would have failed
     * with "Inherited socket is not listening", and nothing answered) */
    ex_log_lacks(&c, "not listening");
    end_accepting(&c);
}

/* --inetd (with --accept): the connection on stdin and stdout. */
static void test_inetd(void **state)
{
    (void)state;
    char a[256];
    path_of("inetd", a, sizeof a);
    child c;
    const char *argv[] = {ACTIVATE, "--inetd",        "--accept", "-l",
                          a,        UPPERCASE_SERVER, "--inetd",  NULL};
    start_activate(&c, argv, 1);
    ask("inetd", "one\n", "ONE\n");
    ask("inetd", "two\n", "TWO\n");
    end_accepting(&c);
}

/* The examples' own errors for what is not an activation environment. */
static void expect_env_refusal(const char *script, const char *message)
{
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    expect_refusal(argv, 1, message);
}

static void test_bad_environments(void **state)
{
    (void)state;
    char script[512];
    snprintf(script, sizeof script,
             "LISTEN_PID=1 LISTEN_FDS=1 exec %s --listen systemd:", UPPERCASE_SERVER);
    expect_env_refusal(script, "LISTEN_PID names another process");
    snprintf(
        script, sizeof script,
        "exec 3>&- 4>&-; LISTEN_PID=$$ LISTEN_FDS=2 exec %s --listen systemd:", UPPERCASE_SERVER);
    expect_env_refusal(script, "LISTEN_FDS counts descriptors that are not open");
    snprintf(script, sizeof script,
             "LISTEN_PID=$$ LISTEN_FDS=x exec %s --listen systemd:", UPPERCASE_SERVER);
    expect_env_refusal(script, "malformed");
    snprintf(script, sizeof script,
             "unset LISTEN_PID LISTEN_FDS; exec %s --listen systemd:", UPPERCASE_SERVER);
    expect_env_refusal(script, "No sockets passed by socket activation");
    /* stdin that is not a socket */
    const char *argv[] = {"/bin/sh", "-c", "exec \"$0\" --inetd </dev/null", UPPERCASE_SERVER,
                          NULL};
    expect_refusal(argv, 2, "stdin is not a connected stream socket");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_one_socket, end_leftovers),
        cmocka_unit_test_teardown(test_named_sockets, end_leftovers),
        cmocka_unit_test_teardown(test_socket_by_name, end_leftovers),
        cmocka_unit_test_teardown(test_name_that_does_not_match, end_leftovers),
        cmocka_unit_test_teardown(test_accept, end_leftovers),
        cmocka_unit_test_teardown(test_inetd, end_leftovers),
        cmocka_unit_test_teardown(test_bad_environments, end_leftovers),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
