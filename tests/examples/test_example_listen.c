/* --listen given more than once (issue 16): one example server serves TCP,
 * UDP, Unix stream and Unix datagram at the same time, with one
 * "listening on URL" line per listener, in every mode; and what cannot
 * work is refused on the command line. */
#define _GNU_SOURCE
#include "example_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define N_LISTEN 4

/* Reads the child's stdout until it has given n "listening on" lines,
 * and copies each URL into urls[i]. */
static void read_urls(child *c, int n, char urls[][256])
{
    char out[2048] = {0};
    size_t len = 0;
    int lines = 0;
    while (lines < n && len + 1 < sizeof out) {
        size_t got = read_all(c->out, out + len, sizeof out - len, "\n");
        if (got == 0)
            break;
        len += got;
        lines = 0;
        for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
            lines++;
    }
    const char *p = out;
    for (int i = 0; i < n; i++) {
        const char prefix[] = "listening on ";
        if (strncmp(p, prefix, sizeof prefix - 1) != 0)
            fail_msg("line %d of stdout is not 'listening on': '%s'", i + 1, out);
        p += sizeof prefix - 1;
        size_t url_len = strcspn(p, "\n");
        snprintf(urls[i], 256, "%.*s", (int)url_len, p);
        p += url_len + 1;
    }
}

/* `program` in `mode` on tcp, udp, unix and unixgram at once: each
 * answers `ask` with `answer`; SIGTERM then ends it with status 0. */
static void serve_on_four(const char *program, const char *mode, const char *ask,
                          const char *answer)
{
    char dir[200], want[N_LISTEN][256], listen[N_LISTEN][320];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(want[0], 256, "tcp://127.0.0.1:");
    snprintf(want[1], 256, "udp://127.0.0.1:");
    snprintf(want[2], 256, "unix:%s/s", dir);
    snprintf(want[3], 256, "unixgram:%s/g", dir);
    snprintf(listen[0], sizeof listen[0], "tcp://127.0.0.1:0");
    snprintf(listen[1], sizeof listen[1], "udp://127.0.0.1:0");
    snprintf(listen[2], sizeof listen[2], "%s", want[2]);
    snprintf(listen[3], sizeof listen[3], "%s", want[3]);
    char equals[340];
    snprintf(equals, sizeof equals, "--listen=%s", listen[3]); /* the other form too */
    const char *argv[] = {program,   "--mode",   mode,      "--listen", listen[0], "--listen",
                          listen[1], "--listen", listen[2], equals,     NULL};
    child c;
    spawn(&c, argv);
    char urls[N_LISTEN][256];
    read_urls(&c, N_LISTEN, urls);
    for (int i = 0; i < N_LISTEN; i++) {
        assert_int_equal(strncmp(urls[i], want[i], strlen(want[i])), 0);
        int fd = ts_connect_url(urls[i]);
        ts_send(fd, ask, strlen(ask));
        char got[256];
        read_answer(fd, got, sizeof got);
        if (strcmp(got, answer) != 0)
            fail_msg("%s --mode %s on %s: '%s', want '%s'", program, mode, urls[i], got, answer);
        close(fd);
    }
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    ex_log_lacks(&c, "error");
    ts_rmdir(dir);
}

static void uppercase_every_mode(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    for (size_t m = 0; m < TS_DISPATCHERS; m++)
        serve_on_four(UPPERCASE_SERVER, modes[m], "ping\n", "PING\n");
}

static void other_examples(void **state)
{
    (void)state;
    serve_on_four(ECHO_SERVER, "pool", "ping\n", "ping\n");
    serve_on_four(LINE_SERVER, "threading", "UPPER ping\n", "OK PING\n");
    serve_on_four(ROBUST_SERVER, "forking", "ping\n", "PING\n");
}

/* chat needs connections on every listener; 17 listeners are too many; a
 * bad second URL names every URL in its message. */
static void refusals(void **state)
{
    (void)state;
    const char *chat[] = {CHAT_SERVER, "--listen",          "tcp://127.0.0.1:0",
                          "--listen",  "udp://127.0.0.1:0", NULL};
    expect_refusal(chat, 2, "--listen udp://127.0.0.1:0 cannot chat");
    const char *many[40] = {UPPERCASE_SERVER};
    for (int i = 0; i < 17; i++) {
        many[1 + 2 * i] = "--listen";
        many[2 + 2 * i] = "tcp://127.0.0.1:0";
    }
    expect_refusal(many, 2, "too many --listen (16 at most)");
    const char *bad[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0",
                         "--listen",       "foo:bar",  NULL};
    expect_refusal(bad, 1, "cannot listen on foo:bar: Unknown URL scheme");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(uppercase_every_mode, end_leftovers),
        cmocka_unit_test_teardown(other_examples, end_leftovers),
        cmocka_unit_test_teardown(refusals, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
