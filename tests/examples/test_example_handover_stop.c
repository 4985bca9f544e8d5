/* A stop during a SIGHUP restart (issue 16, defect 1), as a user meets it:
 * uppercase_server's program file is replaced by one that never gets
 * ready (its successor just sleeps), the server gets SIGHUP, then SIGTERM
 * while the hand-over waits. The stop wins at once: the server drains
 * and exits 0 within seconds (not at the 30 s hand-over timeout), says
 * the restart was cancelled (never "still serving"), and leaves no
 * successor behind. The same with SIGHUP and SIGTERM back to back. And
 * a program that cannot be run is reported as such (defect 7). Run
 * per dispatcher (argv[1]). */
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#define PROMPTLY_MS 5000 /* well under the example's 30 s hand-over timeout */

static const char *mode;
static char dir[200], program[256];

/* The program a user runs is the real server; once replaced, what the
 * restart starts (same argv[0], now with LISTEN_FDS) only sleeps. */
static int make_program(void **state)
{
    (void)state;
    ts_mkdtemp(dir, sizeof dir);
    snprintf(program, sizeof program, "%s/us", dir);
    FILE *f = fopen(program, "w");
    assert_non_null(f);
    fprintf(f,
            "#!/bin/bash\n"
            "if [ -z \"$LISTEN_FDS\" ]; then exec -a \"$0\" %s \"$@\"; fi\n"
            "exec sleep 100\n",
            UPPERCASE_SERVER);
    fclose(f);
    assert_int_equal(chmod(program, 0755), 0);
    return 0;
}

static int remove_program(void **state)
{
    end_leftovers(state);
    unlink(program);
    ts_rmdir(dir);
    return 0;
}

static void start_at(child *c, char *url, size_t size)
{
    const char *argv[] = {program, "--mode", mode, "--listen", "tcp://127.0.0.1:0", NULL};
    start_server_argv(c, argv, url, size);
}

static void start(child *c)
{
    char url[256];
    start_at(c, url, sizeof url);
}

/* Everything of the server's process group is gone: the successor too. */
static void expect_group_gone(pid_t group)
{
    long long until = ts_now_ms() + 3000;
    while (kill(-group, 0) == 0 && ts_now_ms() < until)
        usleep(20000);
    assert_int_equal(kill(-group, 0), -1);
    assert_int_equal(errno, ESRCH);
}

static void expect_prompt_stop(child *c, long long since)
{
    assert_int_equal(reap(c), 0); /* reap waits 5 s at most */
    assert_true(ts_now_ms() - since < PROMPTLY_MS);
    ex_log_lacks(c, "still serving");
    ex_log_lacks(c, "restart: pid");
    expect_group_gone(c->pid);
}

static void test_term_while_handing_over(void **state)
{
    (void)state;
    child c;
    start(&c);
    ex_signal(c.pid, SIGHUP);
    if (!ex_log_until(&c, "SIGHUP: restarting", 5000))
        ex_log_has(&c, "SIGHUP: restarting"); /* fails, showing the log */
    ex_log_pump(&c, 500);                     /* the successor runs, and never gets ready */
    long long t0 = ts_now_ms();
    ex_signal(c.pid, SIGTERM);
    expect_prompt_stop(&c, t0);
    ex_log_has(&c, "restart cancelled: the server is stopping");
    ex_log_has(&c, "hand-over cancelled");
}

/* The restart thread may begin the hand-over only after the loop took
 * the stop: the drain then cancels it. */
static void test_hup_and_term_together(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        child c;
        start(&c);
        long long t0 = ts_now_ms();
        ex_signal(c.pid, SIGHUP);
        ex_signal(c.pid, SIGTERM);
        expect_prompt_stop(&c, t0);
    }
}

/* A program that can no longer be run (defect 7): the log says why, in
 * the words of a restart, and the server goes on serving. */
static void test_program_not_executable(void **state)
{
    (void)state;
    child c;
    char url[256];
    start_at(&c, url, sizeof url);
    assert_int_equal(chmod(program, 0644), 0);
    ex_signal(c.pid, SIGHUP);
    char want[512];
    snprintf(want, sizeof want, "restart failed: cannot run %s: Permission denied; still serving",
             program);
    bool said = ex_log_until(&c, want, 5000);
    assert_int_equal(chmod(program, 0755), 0);
    if (!said)
        ex_log_has(&c, want);
    ex_log_lacks(&c, "status 127");
    int fd = ts_connect_url(url);
    ts_send(fd, "go on\n", 6);
    expect(fd, "GO ON\n");
    close(fd);
    ex_signal(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "threading";
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_term_while_handing_over, end_leftovers),
        cmocka_unit_test_teardown(test_hup_and_term_together, end_leftovers),
        cmocka_unit_test_teardown(test_program_not_executable, end_leftovers),
    };
    return cmocka_run_group_tests(tests, make_program, remove_program);
}
