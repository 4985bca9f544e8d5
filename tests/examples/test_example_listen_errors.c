/* The examples' errors for what cannot be listened on (issue 16, defect
 * 8), as a user reads them: with several --listen the message names the
 * one URL that failed; --inetd with --listen is refused; fd:-1 hears of
 * fd: only; a socket of a type no transport serves says so. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

static void test_names_the_url_that_failed(void **state)
{
    (void)state;
    char dir[200], file[256], url[300], want[400];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(file, sizeof file, "%s/f.sock", dir);
    int fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600); /* a file in the way */
    assert_true(fd >= 0);
    close(fd);
    snprintf(url, sizeof url, "unix:%s", file);
    snprintf(want, sizeof want, "cannot listen on %s: File exists", url);
    const char *bind_fails[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0",
                                "--listen",       url,        NULL};
    expect_refusal(bind_fails, 1, want);
    const char *add_fails[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0",
                               "--listen",       "systemd:", NULL};
    expect_refusal(add_fails, 1, "cannot listen on systemd:: No sockets passed");
    ts_rmdir(dir);
}

static void test_inetd_takes_no_listen(void **state)
{
    (void)state;
    const char *argv[] = {UPPERCASE_SERVER, "--inetd", "--listen", "tcp://127.0.0.1:0", NULL};
    expect_refusal(argv, 2, "--inetd serves the connection on stdin: it takes no --listen");
}

static void test_fd_errors_speak_of_fd(void **state)
{
    (void)state;
    child c;
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "fd:-1", NULL};
    spawn(&c, argv);
    assert_int_equal(reap(&c), 1);
    ex_log_has(&c, "cannot listen on fd:-1: URL fd:N needs a descriptor number");
    ex_log_lacks(&c, "systemd");
}

/* A SOCK_SEQPACKET socket on stdin, adopted as fd:0. */
static void test_socket_type_named(void **state)
{
    (void)state;
    char command[600];
    snprintf(command, sizeof command, "exec %s --listen fd:0 < /dev/null 0<&%d", UPPERCASE_SERVER,
             9);
    int s = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* inherited by the shell */
    assert_true(s >= 0);
    assert_int_equal(dup2(s, 9), 9);
    close(s);
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    expect_refusal(argv, 1, "cannot listen on fd:0: Socket type not supported");
    close(9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_names_the_url_that_failed, end_leftovers),
        cmocka_unit_test_teardown(test_inetd_takes_no_listen, end_leftovers),
        cmocka_unit_test_teardown(test_fd_errors_speak_of_fd, end_leftovers),
        cmocka_unit_test_teardown(test_socket_type_named, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
