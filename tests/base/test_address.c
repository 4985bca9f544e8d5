/* URL parsing and formatting, and ss_strerror, through the public API. */
#include "support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static int handle_nothing(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static const ss_handler handler = {.version = SS_HANDLER_VERSION, .handle = handle_nothing};

static int create(const char *url)
{
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, url, NULL, &handler, NULL);
    if (rc == 0)
        ss_server_free(srv);
    else
        assert_null(srv);
    return rc;
}

static void test_valid_urls_create(void **state)
{
    (void)state;
    assert_int_equal(create("tcp://127.0.0.1:0"), 0);
    assert_int_equal(create("tcp://[::1]:0"), 0);
    assert_int_equal(create("tcp://localhost:0"), 0);
    assert_int_equal(create("tcp://:0"), 0);
    assert_int_equal(create("tcp://*:0"), 0);
    assert_int_equal(create("tcp://0.0.0.0:65535"), 0);
}

/* Each malformed URL gets the code that says what is wrong with it, over
 * ss_server_create and ss_connect alike, and a description naming it. */
static const struct {
    const char *url;
    int code;
    const char *says; /* in ss_strerror(code) */
} malformed[] = {
    {"", SS_EURLNOSCHEME, "no scheme"},
    {"127.0.0.1:80", SS_EURLNOSCHEME, "no scheme"},
    {"localhost:80", SS_EURLNOSCHEME, "no scheme"},
    {"unix//tmp/x", SS_EURLNOSCHEME, "no scheme"},
    {"http://x:80", SS_EURLSCHEME, "Unknown URL scheme"},
    {"tcp:/x:80", SS_EURLSCHEME, "Unknown URL scheme"},
    {"foo:bar", SS_EURLSCHEME, "Unknown URL scheme"},
    {"foo:", SS_EURLSCHEME, "Unknown URL scheme"},
    {"udp:127.0.0.1:80", SS_EURLSCHEME, "Unknown URL scheme"},
    {"unixdgram:/tmp/x", SS_EURLSCHEME, "Unknown URL scheme"},
    {"localhost:8080", SS_EURLNOSCHEME, "no scheme"},
    {"1foo:bar", SS_EURLNOSCHEME, "no scheme"},
    {":bar", SS_EURLNOSCHEME, "no scheme"},
    {"tcp://", SS_EURLNOPORT, "no ':PORT'"},
    {"udp://", SS_EURLNOPORT, "no ':PORT'"},
    {"tcp://127.0.0.1", SS_EURLNOPORT, "no ':PORT'"},
    {"udp://127.0.0.1", SS_EURLNOPORT, "no ':PORT'"},
    {"tcp://127.0.0.1:", SS_EURLNOPORT, "no ':PORT'"},
    {"tcp://[::1]", SS_EURLNOPORT, "no ':PORT'"},
    {"tcp://[::1]80", SS_EURLNOPORT, "no ':PORT'"},
    {"tcp://127.0.0.1:-1", SS_EURLPORTSYNTAX, "not a decimal number"},
    {"tcp://127.0.0.1:8x", SS_EURLPORTSYNTAX, "not a decimal number"},
    {"tcp://127.0.0.1:80/", SS_EURLPORTSYNTAX, "not a decimal number"},
    {"tcp://127.0.0.1:65536", SS_EURLPORTRANGE, "out of range (0-65535)"},
    {"tcp://[::1]:99999", SS_EURLPORTRANGE, "out of range (0-65535)"},
    {"udp://x:123456789012", SS_EURLPORTRANGE, "out of range (0-65535)"},
    {"tcp://[::1:80", SS_EURLBRACKET, "Missing ']'"},
    {"tcp://::1:80", SS_EURLIPV6BARE, "needs brackets"},
    {"udp://::1:80", SS_EURLIPV6BARE, "needs brackets"},
    {"tcp://[]:80", SS_EURLHOST, "host"},
    {"tcp://a/b:80", SS_EURLHOST, "host"},
    {"tcp://a b:80", SS_EURLHOST, "host"},
    {"unix:", SS_EURLNOPATH, "no socket path"},
    {"unix:@", SS_EURLNOPATH, "no socket path"},
    {"unixgram:", SS_EURLNOPATH, "no socket path"},
};

static void test_malformed_urls_say_what_is_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        int rc = create(malformed[i].url);
        if (rc != malformed[i].code)
            fail_msg("'%s' gave %d (%s), want %d", malformed[i].url, rc, ss_strerror(rc),
                     malformed[i].code);
        assert_int_equal(ss_connect(malformed[i].url), malformed[i].code);
        assert_true(SS_IS_URL_ERROR(rc));
        if (strstr(ss_strerror(rc), malformed[i].says) == NULL)
            fail_msg("'%s': '%s' does not say '%s'", malformed[i].url, ss_strerror(rc),
                     malformed[i].says);
    }
    assert_int_equal(create(NULL), SS_EBADURL);
    assert_true(SS_IS_URL_ERROR(SS_EBADURL));
    assert_false(SS_IS_URL_ERROR(SS_ERESOLVE) || SS_IS_URL_ERROR(-ENAMETOOLONG));
}

/* A host too long for any resolver is not a syntax error. */
static void test_overlong_host_is_named_too_long(void **state)
{
    (void)state;
    char url[400];
    snprintf(url, sizeof url, "tcp://%0300d:80", 0);
    assert_int_equal(create(url), -ENAMETOOLONG);
}

static void test_every_transport_creates(void **state)
{
    (void)state;
    /* create opens the socket without binding: no file appears */
    const char *urls[] = {"udp://127.0.0.1:0", "udp://[::1]:0", "udp://localhost:0",
                          "unix:/nonexistent-dir/x.sock", "unixgram:relative.sock"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        int rc = create(urls[i]);
        if (rc != 0)
            fail_msg("'%s' gave %d (%s)", urls[i], rc, ss_strerror(rc));
    }
#ifdef __linux__
    assert_int_equal(create("unix:@name"), 0);
    assert_int_equal(create("unixgram:@name"), 0);
#else
    assert_int_equal(create("unix:@name"), SS_ENOTSUPPORTED);
#endif
}

static void test_unresolvable_host(void **state)
{
    (void)state;
    assert_int_equal(create("tcp://no-such-host.invalid:80"), SS_ERESOLVE);
}

static void test_bound_address_reads_back(void **state)
{
    (void)state;
    ss_server *srv;
    char url[128];
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &handler, NULL), 0);
    int port = ss_server_port(srv);
    assert_true(port > 0);
    int n = ss_server_address(srv, url, sizeof url);
    char want[64];
    snprintf(want, sizeof want, "tcp://127.0.0.1:%d", port);
    assert_string_equal(url, want);
    assert_int_equal(n, (int)strlen(want));
    assert_int_equal(ss_server_address(srv, url, 8), -ENOSPC);
    ss_server_free(srv);

    assert_int_equal(ss_server_new(&srv, "tcp://[::1]:0", NULL, &handler, NULL), 0);
    ss_server_address(srv, url, sizeof url);
    snprintf(want, sizeof want, "tcp://[::1]:%d", ss_server_port(srv));
    assert_string_equal(url, want);
    ss_server_free(srv);
}

static void test_localhost_binds_ipv4(void **state)
{
    (void)state;
    ss_server *srv;
    char url[128];
    assert_int_equal(ss_server_new(&srv, "tcp://localhost:0", NULL, &handler, NULL), 0);
    ss_server_address(srv, url, sizeof url);
    assert_memory_equal(url, "tcp://127.0.0.1:", 16);
    ss_server_free(srv);
}

/* RFC 6761: names under .localhost are loopback without any resolver, so
 * they work where /etc/hosts is missing; look-alikes are not special. */
static void test_localhost_names_need_no_resolver(void **state)
{
    (void)state;
    const char *loopback[] = {"tcp://LocalHost:0", "tcp://api.localhost:0", "udp://x.localhost:0"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        ss_server *srv;
        char url[128];
        assert_int_equal(ss_server_new(&srv, loopback[i], NULL, &handler, NULL), 0);
        ss_server_address(srv, url, sizeof url);
        assert_non_null(strstr(url, "://127.0.0.1:"));
        int fd = ss_connect(loopback[i][0] == 't' ? "tcp://sub.localhost:1" : "udp://localhost:9");
        assert_true(fd == -ECONNREFUSED || fd >= 0); /* resolved, whatever answers */
        if (fd >= 0)
            close(fd);
        ss_server_free(srv);
    }
    assert_int_equal(create("tcp://notlocalhost.invalid:0"), SS_ERESOLVE);
}

static void test_strerror_describes_everything(void **state)
{
    (void)state;
    assert_string_equal(ss_strerror(-EADDRINUSE), strerror(EADDRINUSE));
    assert_non_null(strstr(ss_strerror(SS_EBADURL), "URL"));
    assert_non_null(strstr(ss_strerror(SS_ENOTSUPPORTED), "not supported"));
    assert_non_null(ss_strerror(SS_ESTATE));
    assert_non_null(ss_strerror(SS_ERESOLVE));
    assert_non_null(strstr(ss_strerror(SS_ETRUNCATED), "max_packet_size"));
    assert_non_null(strstr(ss_strerror(SS_EUNNAMEDPEER), "no address"));
    assert_non_null(ss_strerror(-SS_ERRBASE - 999));
    assert_non_null(ss_strerror(12345678));
    assert_string_equal(ss_strerror(0), "Success");
}

static void test_bad_handler_is_rejected(void **state)
{
    (void)state;
    ss_server *srv = (ss_server *)&srv;
    ss_handler no_handle = {.version = SS_HANDLER_VERSION};
    ss_handler no_version = {.handle = handle_nothing};
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, NULL, NULL), -EINVAL);
    assert_null(srv);
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &no_handle, NULL), -EINVAL);
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &no_version, NULL), -EINVAL);
    assert_int_equal(ss_server_create(NULL, "tcp://127.0.0.1:0", NULL, &handler, NULL), -EINVAL);
}

static void test_dispatch_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(ss_dispatch_by_name("sync"), ss_dispatch_sync());
    assert_string_equal(ss_dispatch_name(ss_dispatch_sync()), "sync");
    /* ss_server_create takes NULL as sync, so its name is "sync" too */
    assert_string_equal(ss_dispatch_name(NULL), "sync");
    assert_null(ss_dispatch_by_name("no-such-mode"));
    assert_null(ss_dispatch_by_name(NULL));
}

/* Every level has its name; a value cast from outside the enum is
 * "unknown", not passed off as "error". */
static void test_log_level_names(void **state)
{
    (void)state;
    assert_string_equal(ss_log_level_name(SS_LOG_DEBUG), "debug");
    assert_string_equal(ss_log_level_name(SS_LOG_INFO), "info");
    assert_string_equal(ss_log_level_name(SS_LOG_WARNING), "warning");
    assert_string_equal(ss_log_level_name(SS_LOG_ERROR), "error");
    assert_string_equal(ss_log_level_name((ss_log_level)99), "unknown");
    assert_string_equal(ss_log_level_name((ss_log_level)-1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_urls_create),
        cmocka_unit_test(test_malformed_urls_say_what_is_wrong),
        cmocka_unit_test(test_overlong_host_is_named_too_long),
        cmocka_unit_test(test_every_transport_creates),
        cmocka_unit_test(test_unresolvable_host),
        cmocka_unit_test(test_bound_address_reads_back),
        cmocka_unit_test(test_localhost_binds_ipv4),
        cmocka_unit_test(test_localhost_names_need_no_resolver),
        cmocka_unit_test(test_strerror_describes_everything),
        cmocka_unit_test(test_bad_handler_is_rejected),
        cmocka_unit_test(test_dispatch_lookup),
        cmocka_unit_test(test_log_level_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
