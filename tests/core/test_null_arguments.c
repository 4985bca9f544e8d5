/* One NULL convention for the calls of issue 16 (defect 5): a NULL
 * server, request, URL or buffer is -EINVAL (NULL where a pointer is
 * returned), never a crash. ss_server_add_listener(NULL, url) used to
 * dereference the server. */
#define _GNU_SOURCE
#include "support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_calls),
        cmocka_unit_test(test_deploy_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
