/* ss_server_stats copies as much of ss_stats as the caller's header
 * knows: a program built against an older, shorter ss_stats is never
 * written past its end, and one built against a newer, longer one gets
 * zeros for the fields this library lacks. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static int handle_nothing(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static ss_server *server_with_one_request(void)
{
    static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle_nothing};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, NULL), 0);
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    close(fd);
    return srv;
}

/* An "older header": its ss_stats ends before the lingering counters. */
static void shorter_struct_is_not_overrun(void **state)
{
    (void)state;
    ss_server *srv = server_with_one_request();
    size_t old_size = offsetof(ss_stats, lingering_closes);
    unsigned char buf[sizeof(ss_stats) + 16];
    memset(buf, 0xA5, sizeof buf);
    ss_server_stats_sized(srv, (ss_stats *)buf, old_size);
    for (size_t i = old_size; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xA5); /* nothing written past the end */
    ss_stats known;
    memcpy(&known, buf, old_size);
    assert_int_equal(known.accepted, 1);
    assert_int_equal(known.handled, 1);
    ss_server_free(srv);
}

/* A "newer header": its ss_stats has fields after this library's. */
static void longer_struct_gets_zeros(void **state)
{
    (void)state;
    ss_server *srv = server_with_one_request();
    unsigned char buf[sizeof(ss_stats) + 16];
    memset(buf, 0xA5, sizeof buf);
    ss_server_stats_sized(srv, (ss_stats *)buf, sizeof buf);
    for (size_t i = sizeof(ss_stats); i < sizeof buf; i++)
        assert_int_equal(buf[i], 0);
    ss_stats st;
    ss_server_stats(srv, &st); /* the macro: this header's size */
    assert_int_equal(st.accepted, 1);
    assert_int_equal(memcmp(&st, buf, sizeof st), 0);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shorter_struct_is_not_overrun),
        cmocka_unit_test(longer_struct_gets_zeros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
