/* The example servers stop at once when only idle clients are connected
 * (issue 14, item 3): line_server, echo_server and uppercase_server with
 * --drain 5, in every --mode, with three clients that each completed one
 * exchange, exit 0 well under a second after SIGTERM (before, every
 * concurrent mode waited the whole 5 s), and each client sees the
 * connection end. sync serves one client at a time: there the first is
 * served before the signal and the other two, their requests sent and
 * waiting in the listen backlog, are answered by the drain, then idle. */
#include "example_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define CLIENTS 3

typedef struct example {
    const char *path;
    const char *ask, *answer;
} example;

static const example examples[] = {
    {LINE_SERVER, "UPPER ping\n", "OK PING\n"},
    {ECHO_SERVER, "ping\n", "ping\n"},
    {UPPERCASE_SERVER, "ping\n", "PING\n"},
};

static void expect_answer(const example *ex, int fd)
{
    char got[64];
    size_t n = read_answer(fd, got, sizeof got);
    if (n != strlen(ex->answer) || memcmp(got, ex->answer, n) != 0)
        fail_msg("%s: asked '%s', got '%s'", ex->path, ex->ask, got);
}

/* CLIENTS clients, each with its one request sent; all answered before
 * this returns, except with sync, where only the first is (the others
 * wait in the backlog behind it). */
static void connect_clients(const example *ex, const char *url, bool sync, int fd[])
{
    for (int i = 0; i < CLIENTS; i++) {
        fd[i] = ts_connect_url(url);
        ts_send(fd[i], ex->ask, strlen(ex->ask));
        if (!sync || i == 0)
            expect_answer(ex, fd[i]);
    }
}

static void stops_at_once(const example *ex, const char *mode)
{
    bool sync = strcmp(mode, "sync") == 0;
    bool sized = strcmp(mode, "pool") == 0 || strcmp(mode, "forking") == 0;
    const char *argv[] = {
        ex->path, "--listen", "tcp://127.0.0.1:0",        "--mode", mode, "--drain",
        "5",      "--quiet",  sized ? "--workers" : NULL, "4",      NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    int fd[CLIENTS];
    connect_clients(ex, url, sync, fd);
    long long start = ts_now_ms();
    kill(c.pid, SIGTERM);
    for (int i = sync ? 1 : CLIENTS; i < CLIENTS; i++)
        expect_answer(ex, fd[i]); /* served by the drain from the backlog */
    assert_int_equal(reap(&c), 0);
    long long took = ts_now_ms() - start;
    if (took >= 1000)
        fail_msg("%s --mode %s: %lld ms to exit with idle clients", ex->path, mode, took);
    for (int i = 0; i < CLIENTS; i++) {
        assert_true(ts_sees_eof(fd[i]));
        close(fd[i]);
    }
}

static void test_sigterm_with_idle_clients_exits_at_once(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    for (size_t e = 0; e < sizeof examples / sizeof examples[0]; e++)
        for (size_t m = 0; m < TS_DISPATCHERS; m++)
            stops_at_once(&examples[e], modes[m]);
}

/* ThreadSanitizer sleeps 1 s in exit() while other threads live (its
 * atexit_sleep_ms; a pool's detached workers, the lingerer): not the
 * server's time, so the examples started here skip it. */
static void no_sanitizer_exit_sleep(void)
{
    const char *old = getenv("TSAN_OPTIONS");
    char options[1024];
    snprintf(options, sizeof options, "%s%satexit_sleep_ms=0", old != NULL ? old : "",
             old != NULL && old[0] != '\0' ? " " : "");
    setenv("TSAN_OPTIONS", options, 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    no_sanitizer_exit_sleep();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sigterm_with_idle_clients_exits_at_once, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
