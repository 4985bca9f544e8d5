/* Who may send a PROXY header (ss_proxy_options.trusted): IPv4 and IPv6
 * meet in the IPv4-mapped block, so "::/0" trusts every source (IPv4
 * ones too), "0.0.0.0/0" every IPv4 one and no IPv6 one, and an entry
 * "::ffff:127.0.0.1" trusts the IPv4 peer 127.0.0.1, whether it comes to
 * an IPv4 listener or as [::ffff:127.0.0.1] to a dual-stack one. A CIDR
 * with bits set past its prefix ("10.0.0.1/8") or a prefix length that is
 * not plain decimal ("/08") is refused, and ss_proxy_check_trusted says
 * why. */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define HEADER "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n"

static void test_check_trusted(void **state)
{
    (void)state;
    static const char *const good[] = {"10.0.0.0/8",    "192.0.2.7",        "::1",
                                       "::/0",          "0.0.0.0/0",        "10.0.0.0/32",
                                       "2001:db8::/32", "::ffff:127.0.0.1", "::ffff:127.0.0.0/104",
                                       "0.0.0.0/0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const char *why = "unset";
        if (ss_proxy_check_trusted(good[i], &why) != 0)
            fail_msg("%s refused: %s", good[i], why);
        assert_null(why);
    }
    static const struct {
        const char *cidr, *says;
    } bad[] = {
        {"10.0.0.1/8", "past the prefix"},    {"2001:db8::1/32", "past the prefix"},
        {"10.0.0.0/08", "leading zeros"},     {"10.0.0.0/+8", "prefix length"},
        {"10.0.0.0/ 8", "prefix length"},     {"10.0.0.0/33", "prefix length"},
        {"::/129", "prefix length"},          {"10.0.0.0/", "prefix length"},
        {"", "not an IPv4 or IPv6"},          {"/8", "not an IPv4 or IPv6"},
        {"localhost", "not an IPv4 or IPv6"}, {"10.0.0.0/8/8", "prefix length"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_int_equal(ss_proxy_check_trusted(bad[i].cidr, &why), -EINVAL);
        assert_non_null(why);
        if (strstr(why, bad[i].says) == NULL)
            fail_msg("%s: '%s' does not say '%s'", bad[i].cidr, why, bad[i].says);
    }
    assert_int_equal(ss_proxy_check_trusted(NULL, NULL), -EINVAL);
    /* the setter refuses the same entries */
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &td_echo_line, NULL), 0);
    const char *const host_bits[] = {"10.0.0.1/8", NULL};
    ss_proxy_options opts = {.trusted = host_bits};
    assert_int_equal(ss_server_set_proxy_protocol(srv, &opts), -EINVAL);
    const char *const zero[] = {"10.0.0.0/08", NULL};
    opts.trusted = zero;
    assert_int_equal(ss_server_set_proxy_protocol(srv, &opts), -EINVAL);
    ss_server_free(srv);
}

/* A server on url trusting `entry` alone, one client from the loopback
 * address of url's family sending a header and a line: true if it was
 * served (its line echoed), false if refused as untrusted. */
static bool trusted_by(const char *url, const char *entry)
{
    ss_server *srv;
    if (ss_server_create(&srv, url, ss_dispatch_threading(), &td_echo_line, NULL) != 0)
        return false;
    const char *const list[] = {entry, NULL};
    ss_proxy_options opts = {.trusted = list};
    assert_int_equal(ss_server_set_proxy_protocol(srv, &opts), 0);
    ss_server_on_handle_error(srv, td_quiet_error);
    if (ss_server_bind(srv) != 0) { /* no such family here */
        ss_server_free(srv);
        return false;
    }
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    char address[128];
    assert_true(ss_server_address(srv, address, sizeof address) > 0);
    if (strncmp(url, "tcp://[::]", 10) == 0) /* dual-stack: come as IPv4 */
        snprintf(address, sizeof address, "tcp://127.0.0.1:%d", ss_server_port(srv));
    int fd = ts_connect_url(address);
    ts_send(fd, HEADER "hi\n", strlen(HEADER "hi\n"));
    char got[4] = "";
    bool served = ts_recv_exact(fd, got, 3) == 3 && memcmp(got, "hi\n", 3) == 0;
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.proxy_untrusted, served ? 0 : 1);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    return served;
}

static void test_ipv4_peer(void **state)
{
    (void)state;
    const char *v4 = "tcp://127.0.0.1:0";
    assert_true(trusted_by(v4, "::/0"));
    assert_true(trusted_by(v4, "0.0.0.0/0"));
    assert_true(trusted_by(v4, "::ffff:127.0.0.1"));
    assert_true(trusted_by(v4, "::ffff:127.0.0.0/104"));
    assert_true(trusted_by(v4, "127.0.0.1/32"));
    assert_false(trusted_by(v4, "::1"));
    assert_false(trusted_by(v4, "10.0.0.0/8"));
    assert_false(trusted_by(v4, "::ffff:10.0.0.0/104"));
}

static bool have_ipv6(void)
{
    ss_server *srv;
    if (ss_server_new(&srv, "tcp://[::1]:0", NULL, &td_echo_line, NULL) != 0)
        return false;
    ss_server_free(srv);
    return true;
}

/* [::ffff:127.0.0.1] on a dual-stack listener is the IPv4 peer it maps. */
static void test_mapped_peer(void **state)
{
    (void)state;
    const char *dual = "tcp://[::]:0";
    if (!have_ipv6())
        skip();
    assert_true(trusted_by(dual, "::/0"));
    assert_true(trusted_by(dual, "127.0.0.0/8"));
    assert_true(trusted_by(dual, "0.0.0.0/0"));
    assert_true(trusted_by(dual, "::ffff:127.0.0.1"));
    assert_false(trusted_by(dual, "::1"));
}

static void test_ipv6_peer(void **state)
{
    (void)state;
    const char *v6 = "tcp://[::1]:0";
    if (!have_ipv6())
        skip();
    assert_true(trusted_by(v6, "::/0"));
    assert_true(trusted_by(v6, "::1"));
    assert_false(trusted_by(v6, "0.0.0.0/0"));
    assert_false(trusted_by(v6, "127.0.0.0/8"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_trusted),
        cmocka_unit_test(test_ipv4_peer),
        cmocka_unit_test(test_mapped_peer),
        cmocka_unit_test(test_ipv6_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
