/* What the docs warn against with the PROXY protocol on Unix listeners,
 * the examples say at once: --proxy-from when every --listen is a Unix
 * one (whose peers are all trusted: the socket file's mode decides who
 * may connect) is refused with the usage line, exit status 2, and
 * --proxy-protocol on an abstract unix:@name (no file, no mode: anyone in
 * the network namespace may connect) starts with a warning. */
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

static void test_proxy_from_on_unix_refused(void **state)
{
    (void)state;
    char dir[256], listen[300];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(listen, sizeof listen, "unix:%s/s", dir);
    const char *argv[] = {UPPERCASE_SERVER, "--listen",   listen, "--proxy-protocol",
                          "--proxy-from",   "10.0.0.0/8", NULL};
    expect_refusal(argv, 2, "--proxy-from needs a tcp:// listener");
    expect_refusal(argv, 2, "\nusage: uppercase_server");
    /* with a TCP listener too, it means something: accepted */
    const char *mixed[] = {UPPERCASE_SERVER, "--listen",          listen,
                           "--listen",       "tcp://127.0.0.1:0", "--proxy-protocol",
                           "--proxy-from",   "10.0.0.0/8",        NULL};
    child c;
    char url[400];
    start_server_argv(&c, mixed, url, sizeof url);
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    ex_log_lacks(&c, "needs a tcp://");
    ts_rmdir(dir);
}

static void test_abstract_name_warned(void **state)
{
    (void)state;
#ifdef __linux__
    char listen[128];
    snprintf(listen, sizeof listen, "unix:@ss-proxy-unix-%ld", (long)getpid());
    const char *argv[] = {UPPERCASE_SERVER, "--listen", listen, "--proxy-protocol", NULL};
    child c;
    char url[400];
    start_server_argv(&c, argv, url, sizeof url);
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    ex_log_has(&c, "warning: --proxy-protocol on unix:@");
    ex_log_has(&c, "use a socket path");
#else
    skip();
#endif
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_proxy_from_on_unix_refused, end_leftovers),
        cmocka_unit_test_teardown(test_abstract_name_warned, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
