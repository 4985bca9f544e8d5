/* A listener that cannot be bound, among several: the program's stderr is
 * one line that names it and says why (README), as with one listener.
 * Before, the library's "socketserver: cannot listen on URL: why" came
 * first and the program added "uppercase_server: cannot listen: why". */
#include "example_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void test_second_listener_fails_in_one_line(void **state)
{
    (void)state;
    char dir[200], url[300], want[400];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(url, sizeof url, "unix:%s/missing/x.sock", dir); /* no such directory */
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", "--listen", url, NULL};
    child c;
    spawn(&c, argv);
    assert_int_equal(reap(&c), 1);
    snprintf(want, sizeof want,
             "uppercase_server: cannot listen on %s: No such file or directory\n", url);
    assert_string_equal(c.log, want);
    ts_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_second_listener_fails_in_one_line, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
