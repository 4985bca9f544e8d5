/* Why a successor could not be started is kept (issue 16, defect 7):
 * the child reports execve's errno, and ss_server_hand_over returns it
 * (-ENOENT, -EACCES, -ENOEXEC) with a log line naming the program,
 * instead of SS_ESUCCESSOR and "exited with status 127". The child is
 * reaped; the server keeps serving. */
#define _GNU_SOURCE
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[2048];

static void keep_log(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)data;
    pthread_mutex_lock(&log_lock);
    size_t len = strlen(log_text);
    snprintf(log_text + len, sizeof log_text - len, "%s %s\n", ss_log_level_name(level), message);
    pthread_mutex_unlock(&log_lock);
}

static char dir[200];

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

/* The hand-over of a running server to `program` fails with `want`; the
 * log names the program and the reason; the child is gone; the server
 * still answers. */
static void expect_exec_error(const char *program, int want, const char *reason)
{
    ss_server *srv;
    ss_handler echo = {SS_HANDLER_VERSION, NULL, ts_echo_handle, NULL};
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_threading(), &echo, NULL), 0);
    log_text[0] = '\0';
    ss_server_set_log(srv, keep_log);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    pid_t pid = 0;
    char *argv[] = {(char *)program, NULL};
    long long t0 = ts_now_ms();
    assert_int_equal(ss_server_hand_over(srv, argv, 20000, &pid), want);
    assert_true(ts_now_ms() - t0 < 5000);
    assert_true(pid > 0);
    assert_int_equal(kill(pid, 0), -1); /* reaped */
    char line[512];
    snprintf(line, sizeof line, "error hand-over failed: cannot execute %s: %s; still serving",
             program, reason);
    if (strstr(log_text, line) == NULL)
        fail_msg("log lacks \"%s\":\n%s", line, log_text);
    int c = ts_connect(srv);
    ts_send(c, "still\n", 6);
    char got[6];
    ts_recv_exact(c, got, sizeof got);
    assert_memory_equal(got, "still\n", 6);
    close(c);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void test_missing_path(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/no-such-program", dir);
    expect_exec_error(path, -ENOENT, "No such file or directory");
}

static void test_not_executable(void **state)
{
    (void)state;
    char path[256];
    write_file("plain", "#!/bin/sh\nexit 0\n", 0644, path, sizeof path);
    expect_exec_error(path, -EACCES, "Permission denied");
}

static void test_not_a_program(void **state)
{
    (void)state;
    char path[256];
    write_file("garbage", "\x01\x02 this is no program\n", 0755, path, sizeof path);
    expect_exec_error(path, -ENOEXEC, "Exec format error");
}

static int make_dir(void **state)
{
    (void)state;
    ts_mkdtemp(dir, sizeof dir);
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    ts_rmdir(dir);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_path),
        cmocka_unit_test(test_not_executable),
        cmocka_unit_test(test_not_a_program),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
