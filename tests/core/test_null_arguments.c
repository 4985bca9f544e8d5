/* One NULL convention for the calls of issue 16 (defect 5): a NULL
 * server, request, URL or buffer is -EINVAL (NULL where a pointer is
 * returned), never a crash. ss_server_add_listener(NULL, url) used to
 * dereference the server. The calls any thread may make at any time
 * (<socketserver.h>: the stops, stats, the queries) take a NULL server
 * too: ss_server_request_shutdown(NULL), in a signal handler that came
 * before the server was created, used to crash. */
#define _GNU_SOURCE
#include "support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static const ss_handler echo = {SS_HANDLER_VERSION, NULL, ts_echo_handle, NULL};

static void test_listener_calls(void **state)
{
    (void)state;
    assert_int_equal(ss_server_add_listener(NULL, "tcp://127.0.0.1:0"), -EINVAL);
    assert_int_equal(ss_server_listener_count(NULL), -EINVAL);
    assert_int_equal(ss_server_listener_fileno(NULL, 0), -EINVAL);
    char buf[64];
    assert_int_equal(ss_server_listener_address(NULL, 0, buf, sizeof buf), -EINVAL);
    assert_int_equal(ss_server_listener_port(NULL, 0), -EINVAL);
    assert_null(ss_server_listener_name(NULL, 0));
    assert_int_equal(ss_request_listener(NULL), -EINVAL);

    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_sync(), &echo, NULL),
                     0);
    assert_int_equal(ss_server_add_listener(srv, NULL), -EINVAL);
    assert_int_equal(ss_server_listener_count(srv), 1); /* nothing was added */
    assert_int_equal(ss_server_listener_address(srv, 0, NULL, 16), -EINVAL);
    assert_int_equal(ss_server_listener_address(srv, 0, NULL, 0), -ENOSPC); /* a size probe */
    ss_server_free(srv);
}

static void test_deploy_calls(void **state)
{
    (void)state;
    assert_int_equal(ss_server_hand_over(NULL, (char *[]){"x", NULL}, 0, NULL), -EINVAL);
    assert_int_equal(ss_server_serve_connection(NULL), -EINVAL);
    assert_int_equal(ss_server_new_connection(NULL, 0, &echo, NULL), -EINVAL);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ss_server *srv = (ss_server *)1;
    assert_int_equal(ss_server_new_connection(&srv, sv[0], NULL, NULL), -EINVAL);
    assert_null(srv);
    assert_int_equal(ss_notify(NULL), -EINVAL);
    close(sv[0]);
    close(sv[1]);
}

/* What a program's SIGTERM handler stops: not created yet. */
static ss_server *volatile not_yet;
static volatile sig_atomic_t handled;

static void on_term(int sig)
{
    (void)sig;
    ss_server_request_shutdown(not_yet);
    handled = 1;
}

static void test_stop_before_the_server_exists(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_term}, old;
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    errno = EINTR;
    assert_int_equal(raise(SIGUSR1), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(errno, EINTR); /* preserved, as for a server */
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_int_equal(ss_server_shutdown(NULL), -EINVAL);
}

static void test_any_time_queries(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(ss_server_fileno(NULL), -EINVAL);
    assert_int_equal(ss_server_address(NULL, buf, sizeof buf), -EINVAL);
    assert_int_equal(ss_server_port(NULL), -EINVAL);
    assert_null(ss_server_data(NULL));
    ss_stats st, zero;
    memset(&st, 0xa5, sizeof st);
    memset(&zero, 0, sizeof zero);
    ss_server_stats(NULL, &st);
    assert_memory_equal(&st, &zero, sizeof st);
    memset(&st, 0xa5, sizeof st);
    ss_server_stats_sized(NULL, &st, sizeof st);
    assert_memory_equal(&st, &zero, sizeof st);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_sync(), &echo, NULL),
                     0);
    ss_server_stats_sized(srv, NULL, sizeof st); /* ignored */
    ss_server_free(srv);
    ss_server_close(NULL);
    ss_server_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_calls),
        cmocka_unit_test(test_deploy_calls),
        cmocka_unit_test(test_stop_before_the_server_exists),
        cmocka_unit_test(test_any_time_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
