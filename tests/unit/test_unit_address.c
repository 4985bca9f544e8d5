/* The URL parser and the address formatter (src/base/address.c) in
 * process: the parsed fields themselves, every error code, the boundaries
 * of each field (host and path buffers, sun_path, the port's digits and
 * range), IPv6 brackets and Linux abstract names. The public API's view of
 * the same rules (error strings, servers created) is tests/base/test_address.c. */
#include "internal.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include <cmocka.h>

/* A string of n copies of c, in a static buffer (n < 400). */
static const char *repeat(char c, size_t n)
{
    static char buf[400];
    assert_true(n < sizeof buf);
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static ss__url parsed(const char *text)
{
    ss__url url;
    int rc = ss__url_parse(text, &url);
    if (rc != 0)
        fail_msg("'%s' gave %d", text, rc);
    return url;
}

static void test_inet_fields(void **state)
{
    (void)state;
    ss__url u = parsed("tcp://127.0.0.1:80");
    assert_int_equal(u.scheme, SS__SCHEME_TCP);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "80");
    u = parsed("udp://example.org:0");
    assert_int_equal(u.scheme, SS__SCHEME_UDP);
    assert_string_equal(u.host, "example.org");
    assert_string_equal(u.port, "0");
    /* "" and "*" both mean any address */
    assert_string_equal(parsed("tcp://:7").host, "");
    assert_string_equal(parsed("tcp://*:7").host, "");
    assert_string_equal(parsed("tcp://*x:7").host, "*x"); /* only a lone '*' */
}

static void test_ipv6_brackets(void **state)
{
    (void)state;
    ss__url u = parsed("tcp://[::1]:443");
    assert_string_equal(u.host, "::1"); /* brackets are not part of the host */
    assert_string_equal(u.port, "443");
    assert_string_equal(parsed("udp://[fe80::1%lo]:9").host, "fe80::1%lo");
    ss__url out;
    assert_int_equal(ss__url_parse("tcp://[::1]:", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://[::1]", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://[::1]x80", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://[::1:80", &out), SS_EURLBRACKET);
    assert_int_equal(ss__url_parse("tcp://[:80", &out), SS_EURLBRACKET);
    assert_int_equal(ss__url_parse("tcp://[]:80", &out), SS_EURLHOST);
    assert_int_equal(ss__url_parse("tcp://[a b]:80", &out), SS_EURLHOST);
    assert_int_equal(ss__url_parse("tcp://::1:80", &out), SS_EURLIPV6BARE);
    assert_int_equal(ss__url_parse("udp://a:b:80", &out), SS_EURLIPV6BARE);
}

static void test_port_boundaries(void **state)
{
    (void)state;
    ss__url out;
    assert_string_equal(parsed("tcp://h:65535").port, "65535");
    assert_string_equal(parsed("tcp://h:00080").port, "00080"); /* five digits */
    assert_int_equal(ss__url_parse("tcp://h:65536", &out), SS_EURLPORTRANGE);
    assert_int_equal(ss__url_parse("tcp://h:000080", &out), SS_EURLPORTRANGE); /* six */
    assert_int_equal(ss__url_parse("tcp://h:99999999999999999999", &out), SS_EURLPORTRANGE);
    assert_int_equal(ss__url_parse("tcp://h:", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://h", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://", &out), SS_EURLNOPORT);
    assert_int_equal(ss__url_parse("tcp://h:+80", &out), SS_EURLPORTSYNTAX);
    assert_int_equal(ss__url_parse("tcp://h: 80", &out), SS_EURLPORTSYNTAX);
    assert_int_equal(ss__url_parse("tcp://h:80 ", &out), SS_EURLPORTSYNTAX);
    assert_int_equal(ss__url_parse("tcp://h:0x50", &out), SS_EURLPORTSYNTAX);
}

static void test_host_boundaries(void **state)
{
    (void)state;
    ss__url out;
    char text[512];
    /* host[256]: 255 characters fit, 256 do not */
    snprintf(text, sizeof text, "tcp://%s:1", repeat('h', 255));
    assert_int_equal(ss__url_parse(text, &out), 0);
    assert_int_equal(strlen(out.host), 255);
    snprintf(text, sizeof text, "tcp://%s:1", repeat('h', 256));
    assert_int_equal(ss__url_parse(text, &out), -ENAMETOOLONG);
    snprintf(text, sizeof text, "tcp://[%s]:1", repeat('1', 256));
    assert_int_equal(ss__url_parse(text, &out), -ENAMETOOLONG);
    const char *bad_hosts[] = {"tcp://a/b:1", "tcp://a?b:1", "tcp://a#b:1", "tcp://a]b:1",
                               "tcp://a b:1"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++)
        assert_int_equal(ss__url_parse(bad_hosts[i], &out), SS_EURLHOST);
}

static void test_paths_and_abstract_names(void **state)
{
    (void)state;
    ss__url u = parsed("unix:/run/x.sock");
    assert_int_equal(u.scheme, SS__SCHEME_UNIX);
    assert_string_equal(u.path, "/run/x.sock");
    u = parsed("unixgram:rel.sock");
    assert_int_equal(u.scheme, SS__SCHEME_UNIXGRAM);
    assert_string_equal(u.path, "rel.sock");
    assert_string_equal(parsed("unix:@name").path, "@name"); /* '@' kept: marks abstract */
    assert_string_equal(parsed("unix:@@").path, "@@");
    ss__url out;
    assert_int_equal(ss__url_parse("unix:", &out), SS_EURLNOPATH);
    assert_int_equal(ss__url_parse("unix:@", &out), SS_EURLNOPATH);
    assert_int_equal(ss__url_parse("unixgram:", &out), SS_EURLNOPATH);
    char text[512];
    snprintf(text, sizeof text, "unix:%s", repeat('p', 255)); /* path[256] */
    assert_int_equal(ss__url_parse(text, &out), 0);
    snprintf(text, sizeof text, "unix:%s", repeat('p', 256));
    assert_int_equal(ss__url_parse(text, &out), -ENAMETOOLONG);
}

static void test_schemes(void **state)
{
    (void)state;
    ss__url out;
    assert_int_equal(ss__url_parse(NULL, &out), SS_EBADURL);
    assert_int_equal(ss__url_parse("tcp://h:1", NULL), SS_EBADURL);
    assert_int_equal(ss__url_parse("", &out), SS_EURLNOSCHEME);
    assert_int_equal(ss__url_parse("localhost:80", &out), SS_EURLNOSCHEME);
    assert_int_equal(ss__url_parse("://x:1", &out), SS_EURLNOSCHEME);
    assert_int_equal(ss__url_parse("TCP://h:1", &out), SS_EURLSCHEME); /* case matters */
    assert_int_equal(ss__url_parse("sctp://h:1", &out), SS_EURLSCHEME);
    assert_int_equal(ss__url_parse("unixx:@n", &out), SS_EURLSCHEME);
    /* a scheme word without "//": its message lists the right forms */
    assert_int_equal(ss__url_parse("tcp:h:1", &out), SS_EURLSCHEME);
    assert_string_equal(ss__scheme_name(SS__SCHEME_TCP), "tcp");
    assert_string_equal(ss__scheme_name(SS__SCHEME_UDP), "udp");
    assert_string_equal(ss__scheme_name(SS__SCHEME_UNIX), "unix");
    assert_string_equal(ss__scheme_name(SS__SCHEME_UNIXGRAM), "unixgram");
}

/* sun_path (108 bytes on Linux): a path keeps a byte for its NUL, an
 * abstract name does not (its '@' becomes the leading NUL). */
static void test_unix_address_limits(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    size_t max = sizeof((struct sockaddr_un *)0)->sun_path;
    size_t base = offsetof(struct sockaddr_un, sun_path);
    assert_int_equal(ss__unix_address(repeat('p', max - 1), &ss, &len), 0);
    assert_int_equal(len, base + max);
    assert_int_equal(ss__unix_address(repeat('p', max), &ss, &len), -ENAMETOOLONG);
    char name[200] = "@";
    memcpy(name + 1, repeat('a', max - 1), max);
#ifdef __linux__
    assert_int_equal(ss__unix_address(name, &ss, &len), 0);
    const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_int_equal(un->sun_path[0], '\0');
    assert_int_equal(len, base + max); /* no terminating NUL counted */
    strcat(name, "a");
    assert_int_equal(ss__unix_address(name, &ss, &len), -ENAMETOOLONG);
#else
    assert_int_equal(ss__unix_address(name, &ss, &len), SS_ENOTSUPPORTED);
#endif
}

static void test_format_inet(void **state)
{
    (void)state;
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[80];
    assert_int_equal(ss__format_peer((struct sockaddr *)&in, sizeof in, buf, sizeof buf), 14);
    assert_string_equal(buf, "127.0.0.1:8080");
    assert_int_equal(
        ss__format_url(SS__SCHEME_UDP, (struct sockaddr *)&in, sizeof in, buf, sizeof buf), 20);
    assert_string_equal(buf, "udp://127.0.0.1:8080");
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    in6.sin6_addr = in6addr_loopback;
    assert_int_equal(
        ss__format_url(SS__SCHEME_TCP, (struct sockaddr *)&in6, sizeof in6, buf, sizeof buf), 13);
    assert_string_equal(buf, "tcp://[::1]:1");
    assert_int_equal(ss__sockaddr_port((struct sockaddr *)&in, sizeof in), 8080);
    assert_int_equal(ss__sockaddr_port((struct sockaddr *)&in6, sizeof in6), 1);
    assert_int_equal(ss__sockaddr_port((struct sockaddr *)&in, sizeof in - 1), 0);
    /* too small: -ENOSPC, exactly big enough: fits */
    assert_int_equal(ss__format_peer((struct sockaddr *)&in, sizeof in, buf, 14), -ENOSPC);
    assert_int_equal(ss__format_peer((struct sockaddr *)&in, sizeof in, buf, 15), 14);
    assert_int_equal(ss__format_peer((struct sockaddr *)&in, sizeof in, buf, 0), -ENOSPC);
    assert_int_equal(ss__format_url(SS__SCHEME_TCP, (struct sockaddr *)&in, sizeof in, buf, 6),
                     -ENOSPC);
}

static void test_format_unix(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[200];
    assert_int_equal(ss__unix_address("/run/s", &ss, &len), 0);
    assert_int_equal(ss__format_url(SS__SCHEME_UNIX, (struct sockaddr *)&ss, len, buf, sizeof buf),
                     11);
    assert_string_equal(buf, "unix:/run/s");
#ifdef __linux__
    assert_int_equal(ss__unix_address("@ab", &ss, &len), 0);
    ((struct sockaddr_un *)&ss)->sun_path[2] = '\0'; /* "@a\0": a NUL inside the name */
    assert_int_equal(ss__format_peer((struct sockaddr *)&ss, len, buf, sizeof buf), 3);
    assert_string_equal(buf, "@a@"); /* shown as '@', one C string of that length */
#endif
    /* an unnamed peer: no address at all, or the family alone */
    struct sockaddr_un unnamed = {.sun_family = AF_UNIX};
    assert_int_equal(ss__format_peer((struct sockaddr *)&unnamed, 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
    assert_true(ss__sockaddr_unnamed((struct sockaddr *)&unnamed, 0));
    assert_true(ss__sockaddr_unnamed((struct sockaddr *)&unnamed, sizeof(sa_family_t)));
    assert_false(ss__sockaddr_unnamed((struct sockaddr *)&ss, len));
    struct sockaddr other = {.sa_family = AF_UNSPEC};
    assert_int_equal(ss__format_peer(&other, sizeof other, buf, sizeof buf), -EAFNOSUPPORT);
}

static void test_localhost_names(void **state)
{
    (void)state;
    assert_true(ss__is_localhost("localhost"));
    assert_true(ss__is_localhost("LocalHost"));
    assert_true(ss__is_localhost("a.b.localhost"));
    assert_false(ss__is_localhost("notlocalhost"));
    assert_false(ss__is_localhost("localhost.")); /* not this rule's business */
    assert_false(ss__is_localhost("localhost.com"));
    assert_false(ss__is_localhost("host"));
    assert_false(ss__is_localhost(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inet_fields),
        cmocka_unit_test(test_ipv6_brackets),
        cmocka_unit_test(test_port_boundaries),
        cmocka_unit_test(test_host_boundaries),
        cmocka_unit_test(test_paths_and_abstract_names),
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_unix_address_limits),
        cmocka_unit_test(test_format_inet),
        cmocka_unit_test(test_format_unix),
        cmocka_unit_test(test_localhost_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
