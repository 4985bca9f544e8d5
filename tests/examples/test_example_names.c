/* The examples' log cannot be forged by a client's name: a Unix peer
 * chooses its own path, which the log shows as the client (direct) or as
 * the proxy ("via PROXY from", --proxy-protocol); a newline or an escape
 * sequence there comes out as \xHH, one log line per event. */
#define _GNU_SOURCE
#include "example_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

static const char v1_header[] = "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n";

/* Connects to the socket at `path` from one bound to `from`. */
static int connect_from(const char *path, const char *from)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(from) < sizeof a.sun_path && strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, from, strlen(from));
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    memset(a.sun_path, 0, sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* uppercase_server on dir/s (with --proxy-protocol if proxy); one
 * client from a path with a forged line in its name; returns once the
 * server has stopped, its log in c. */
static void serve_forger(child *c, const char *dir, bool proxy)
{
    char listen[320], url[400], path[300], from[320];
    snprintf(path, sizeof path, "%s/s", dir);
    snprintf(listen, sizeof listen, "unix:%s", path);
    const char *argv[] = {UPPERCASE_SERVER, "--listen", listen, proxy ? "--proxy-protocol" : NULL,
                          NULL};
    start_server_argv(c, argv, url, sizeof url);
    snprintf(from, sizeof from, "%s/p\nFAKE LINE\x1b[2J", dir);
    int fd = connect_from(path, from);
    if (proxy)
        ts_send(fd, v1_header, strlen(v1_header));
    ts_send(fd, "ping\n", 5);
    expect(fd, "PING\n");
    close(fd);
    unlink(from);
    kill(c->pid, SIGTERM);
    assert_int_equal(reap(c), 0);
}

static void test_unix_names_escaped(void **state)
{
    (void)state;
    char dir[256], want[400];
    ts_mkdtemp(dir, sizeof dir);
    child c;
    serve_forger(&c, dir, false);
    snprintf(want, sizeof want, "%s/p\\x0aFAKE LINE\\x1b[2J connected", dir);
    ex_log_has(&c, want);
    ex_log_lacks(&c, "\nFAKE LINE");
    ex_log_lacks(&c, "\x1b");
    serve_forger(&c, dir, true);
    snprintf(want, sizeof want,
             "192.0.2.1:56324 connected via PROXY from %s/p\\x0aFAKE LINE\\x1b[2J", dir);
    ex_log_has(&c, want);
    ex_log_lacks(&c, "\nFAKE LINE");
    ex_log_lacks(&c, "\x1b");
    ts_rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_unix_names_escaped, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
