/* Which handler tables a server takes: the versions this library knows,
 * never one from a newer header (its extra slots would be ignored without
 * a word), never one without a handle slot. */
#include "support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static int handle_nothing(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

/* ss_server_new refuses the table and leaves *out NULL. */
static void expect_refused(const ss_handler *h)
{
    ss_server *srv = (ss_server *)&srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, h, NULL), -EINVAL);
    assert_null(srv);
    srv = (ss_server *)&srv;
    assert_int_equal(ss_server_create(&srv, "udp://127.0.0.1:0", NULL, h, NULL), -EINVAL);
    assert_null(srv);
    srv = (ss_server *)&srv;
    assert_int_equal(ss_tcp_server_new(&srv, "127.0.0.1", 0, h, NULL), -EINVAL);
    assert_null(srv);
}

static void test_newer_version_is_refused(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION + 1, .handle = handle_nothing};
    expect_refused(&h);
    h.version = ~0u;
    expect_refused(&h);
}

static void test_version_zero_and_missing_handle_are_refused(void **state)
{
    (void)state;
    ss_handler h = {.version = 0, .handle = handle_nothing};
    expect_refused(&h);
    h = (ss_handler){.version = SS_HANDLER_VERSION};
    expect_refused(&h);
    expect_refused(NULL);
}

static void test_current_version_is_taken(void **state)
{
    (void)state;
    for (unsigned v = 1; v <= SS_HANDLER_VERSION; v++) {
        ss_handler h = {.version = v, .handle = handle_nothing};
        ss_server *srv = NULL;
        assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, NULL), 0);
        assert_non_null(srv);
        ss_server_free(srv);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_version_is_refused),
        cmocka_unit_test(test_version_zero_and_missing_handle_are_refused),
        cmocka_unit_test(test_current_version_is_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
