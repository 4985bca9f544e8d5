/* The PROXY protocol header parser (src/filter/proxy_header.c) against the
 * specification published with HAProxy (doc/proxy-protocol.txt): valid v1
 * and v2 headers, every kind of malformation, and the rule that a header
 * cut short gives 0 ("need more") while bytes that can never become a
 * header give SS_EPROXY at once. */
#include "filter/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>

static ssize_t parse_text(const char *text, ss__proxy_header *h)
{
    return ss__proxy_parse((const unsigned char *)text, strlen(text), h);
}

/* Every cut of buf[0, n) short of n asks for more; all n parse to n, also
 * with the client's first bytes behind. */
static void assert_whole_only(const unsigned char *buf, size_t n)
{
    unsigned char more[512];
    ss__proxy_header h;
    for (size_t cut = 0; cut < n; cut++) {
        ssize_t rc = ss__proxy_parse(buf, cut, &h);
        if (rc != 0)
            fail_msg("cut at %zu of %zu: %zd, expected 0", cut, n, rc);
    }
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_true(n + 4 <= sizeof more);
    memcpy(more, buf, n);
    memcpy(more + n, "GET ", 4);
    assert_int_equal(ss__proxy_parse(more, n + 4, &h), (ssize_t)n);
}

static void assert_inet(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                        unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    struct in_addr want;
    assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
    assert_int_equal(len, sizeof *sin);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_memory_equal(&sin->sin_addr, &want, sizeof want);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_inet6(const struct sockaddr_storage *ss, socklen_t len, const char *ip,
                         unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
    assert_int_equal(len, sizeof *sin6);
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_memory_equal(&sin6->sin6_addr, &want, sizeof want);
    assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* ---- version 1 ---------------------------------------------------------- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    ss__proxy_header h, untouched;
    /* *out is left alone unless a whole header came */
    memset(&h, 0xA5, sizeof h);
    memcpy(&untouched, &h, sizeof h);
    assert_int_equal(ss__proxy_parse((const unsigned char *)line, 20, &h), 0);
    assert_int_equal(parse_text("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &h), SS_EPROXY);
    assert_memory_equal(&h, &untouched, sizeof h);
    assert_int_equal(parse_text(line, &h), strlen(line));
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_inet(&h.source, h.source_len, "192.168.0.1", 56324);
    assert_inet(&h.destination, h.destination_len, "192.168.0.11", 443);
    assert_null(h.tlvs);
    assert_whole_only((const unsigned char *)line, strlen(line));
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    const char *line = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n";
    ss__proxy_header h;
    assert_int_equal(parse_text(line, &h), strlen(line));
    assert_false(h.local);
    assert_inet6(&h.source, h.source_len, "2001:db8::1", 0);
    assert_inet6(&h.destination, h.destination_len, "::ffff:10.0.0.1", 65535);
    assert_whole_only((const unsigned char *)line, strlen(line));
}

static void test_v1_longest_lines(void **state)
{
    (void)state;
    /* spec 2.1's own worst cases: 104 bytes for TCP6, 107 for UNKNOWN */
    const char *tcp6 = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    const char *unknown = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    ss__proxy_header h;
    assert_int_equal(strlen(tcp6), 104);
    assert_int_equal(strlen(unknown), SS__PROXY_V1_MAX);
    assert_int_equal(parse_text(tcp6, &h), 104);
    assert_false(h.local);
    assert_whole_only((const unsigned char *)tcp6, 104);
    assert_int_equal(parse_text(unknown, &h), SS__PROXY_V1_MAX);
    assert_true(h.local);
    assert_whole_only((const unsigned char *)unknown, SS__PROXY_V1_MAX);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    /* "the receiver must ignore anything presented before the CRLF" */
    const char *lines[] = {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
                           "PROXY UNKNOWN what ever  it\tsays\r\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        ss__proxy_header h;
        assert_int_equal(parse_text(lines[i], &h), strlen(lines[i]));
        assert_int_equal(h.version, 1);
        assert_true(h.local);
        assert_int_equal(h.source_len, 0);
        assert_int_equal(h.destination_len, 0);
        assert_whole_only((const unsigned char *)lines[i], strlen(lines[i]));
    }
}

/* Lines that do not "exactly match the protocol" (spec 2.1). */
static const char *const bad_v1[] = {
    "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",    /* two spaces */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",    /* trailing space */
    "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",    /* two spaces before a port */
    "PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",    /* tab */
    " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",    /* leading space */
    "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",     /* lower case */
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",     /* no such protocol */
    "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* v1 has TCP only */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",       /* a port missing */
    "PROXY TCP4 1.2.3.4 5.6.7.8\r\n",         /* both ports missing */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",   /* a field too many */
    "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* port out of range */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", /* port out of range */
    "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",    /* heading zero */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n",    /* heading zero */
    "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",    /* sign */
    "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",    /* sign */
    "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",   /* hex */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",    /* junk */
    "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",   /* octet out of range */
    "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",       /* three octets */
    "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",   /* five octets */
    "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",    /* heading zero (octal?) */
    "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",      /* empty octet */
    "PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n",    /* trailing dot */
    "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",         /* IPv6 in TCP4 */
    "PROXY TCP4 1.2.3.4 ::1 1 2\r\n",         /* IPv6 destination in TCP4 */
    "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",         /* IPv4 in TCP6 */
    "PROXY TCP6 ::1 5.6.7.8 1 2\r\n",         /* IPv4 destination in TCP6 */
    "PROXY TCP6 1::2::3 ::1 1 2\r\n",         /* two "::" */
    "PROXY TCP6 12345::1 ::1 1 2\r\n",        /* five hex digits */
    "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",    /* scope id */
    "PROXY TCP6 [::1] ::1 1 2\r\n",           /* brackets */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",       /* LF only */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",      /* CR only */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",   /* CR CR LF */
    "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r",     /* LF CR */
    "PROXY UNKNOWN\n",                        /* LF only, UNKNOWN */
    "PROXY UNKNOWNX\r\n",                     /* not UNKNOWN */
    "PROXY UNKNOWN a\rb\r\n",                 /* lone CR inside */
    "PROXY\r\n",                              /* nothing */
    "PROXY \r\n",                             /* no protocol */
    "PROXY TCP4\r\n",                         /* no addresses */
    "PROXY TCP4 \r\n",                        /* no addresses */
    "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",     /* lower case signature */
    "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n",      /* no space */
    "GET / HTTP/1.1\r\n",                     /* no header at all */
    "\x16\x03\x01\x02\x00",                   /* TLS */
    "SSH-2.0-OpenSSH_9.2\r\n",                /* SSH */
};

static void test_v1_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_v1 / sizeof bad_v1[0]; i++) {
        ss__proxy_header h;
        ssize_t rc = parse_text(bad_v1[i], &h);
        if (rc != SS_EPROXY)
            fail_msg("\"%s\": %zd, expected SS_EPROXY", bad_v1[i], rc);
    }
}

/* A NUL inside a field: the line is not text (and inet_pton would stop at
 * the NUL and read "::1"). */
static void test_v1_nul_inside(void **state)
{
    (void)state;
    static const char line[] = "PROXY TCP6 ::1\0:2 ::1 1 2\r\n";
    ss__proxy_header h;
    assert_int_equal(ss__proxy_parse((const unsigned char *)line, sizeof line - 1, &h), SS_EPROXY);
    static const char port[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1\0 2\r\n";
    assert_int_equal(ss__proxy_parse((const unsigned char *)port, sizeof port - 1, &h), SS_EPROXY);
}

static void test_v1_too_long(void **state)
{
    (void)state;
    char line[256];
    ss__proxy_header h;
    /* an UNKNOWN line whose CRLF would be bytes 107 and 108 */
    memset(line, 'x', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + SS__PROXY_V1_MAX - 1, "\r\n", 2);
    assert_int_equal(ss__proxy_parse((unsigned char *)line, SS__PROXY_V1_MAX + 1, &h), SS_EPROXY);
    /* refused as soon as 107 bytes came without CRLF, not later */
    assert_int_equal(ss__proxy_parse((unsigned char *)line, SS__PROXY_V1_MAX - 1, &h), 0);
    assert_int_equal(ss__proxy_parse((unsigned char *)line, SS__PROXY_V1_MAX, &h), SS_EPROXY);
    assert_int_equal(ss__proxy_parse((unsigned char *)line, sizeof line, &h), SS_EPROXY);
}

/* A beginning that can never become a header is refused when the byte
 * that decides it arrives, not when the line ends or grows too long. */
static void test_v1_refused_early(void **state)
{
    (void)state;
    static const char *const beginnings[] = {
        "G",
        "PROXX",
        "PROXY  ",
        "PROXY T ",
        "PROXY TCP4 1.2.3.4 01",
        "PROXY X",
        "PROXY TCP4 256",
        "PROXY TCP4 1.2.3.4.",
        "PROXY TCP4 00",
        "PROXY TCP6 1.2.3.4",
        "PROXY TCPX",
        "PROXY TCP4 ::",
        "PROXY TCP6 :::",
        "PROXY TCP6 g",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
    };
    for (size_t i = 0; i < sizeof beginnings / sizeof beginnings[0]; i++) {
        ss__proxy_header h;
        ssize_t rc = parse_text(beginnings[i], &h);
        if (rc != SS_EPROXY)
            fail_msg("\"%s\": %zd, expected SS_EPROXY", beginnings[i], rc);
    }
    /* a CR ends the line: what is before it must be a whole line already */
    static const char *const before_cr[] = {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r", "PROXY TCP4 1.2\r",
                                            "PROXY UNK\r", "PROXY \r", "PROXY\r"};
    for (size_t i = 0; i < sizeof before_cr / sizeof before_cr[0]; i++) {
        ss__proxy_header h;
        assert_int_equal(parse_text(before_cr[i], &h), SS_EPROXY);
    }
}

/* ... while these still may become one. */
static void test_v1_still_partial(void **state)
{
    (void)state;
    static const char *const partial[] = {"P",
                                          "PROXY",
                                          "PROXY ",
                                          "PROXY U",
                                          "PROXY UNK",
                                          "PROXY TCP4 0.",
                                          "PROXY TCP6 ::ffff:1.2",
                                          "PROXY TCP6 1:2:3:4:5:6:7:",
                                          "PROXY TCP4 0.0.0.0 0",
                                          "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"};
    for (size_t i = 0; i < sizeof partial / sizeof partial[0]; i++) {
        ss__proxy_header h;
        ssize_t rc = parse_text(partial[i], &h);
        if (rc != 0)
            fail_msg("\"%s\": %zd, expected 0", partial[i], rc);
    }
}

/* Both addresses at their longest (45 characters each) leave no room for
 * the ports within 107 bytes: refused when the second one is complete. */
static void test_v1_cannot_fit(void **state)
{
    (void)state;
    const char *longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
    char line[160];
    ss__proxy_header h;
    assert_int_equal(strlen(longest), 45);
    snprintf(line, sizeof line, "PROXY TCP6 %s %s", longest, longest);
    assert_int_equal(parse_text(line, &h), SS_EPROXY);
    snprintf(line, sizeof line, "PROXY TCP6 %s %s 0 0\r\n", longest, longest);
    assert_int_equal(parse_text(line, &h), SS_EPROXY);
    snprintf(line, sizeof line, "PROXY TCP6 %s ::1 0 0\r\n", longest);
    assert_int_equal(parse_text(line, &h), strlen(line));
    assert_inet6(&h.source, h.source_len, longest, 0);
}

/* ---- version 2 ---------------------------------------------------------- */

static const unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum { LOCAL = 0x20, PROXY = 0x21, TCP4 = 0x11, UDP4 = 0x12, TCP6 = 0x21, UNIX_STREAM = 0x31 };

/* A v2 header: signature, version/command, family, then the block (addresses
 * and TLVs) whose length the header gives. Returns its size. */
static size_t build_v2(unsigned char *out, unsigned ver_cmd, unsigned family, const void *block,
                       size_t block_len)
{
    memcpy(out, signature, sizeof signature);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)family;
    out[14] = (unsigned char)(block_len >> 8);
    out[15] = (unsigned char)block_len;
    if (block_len > 0)
        memcpy(out + 16, block, block_len);
    return 16 + block_len;
}

/* 127.0.0.1:12345 -> 10.0.0.1:80 */
static const unsigned char inet_block[12] = {127, 0, 0, 1, 10, 0, 0, 1, 0x30, 0x39, 0, 80};

static void test_v2_proxy_inet(void **state)
{
    (void)state;
    unsigned char buf[64];
    ss__proxy_header h;
    for (unsigned family = TCP4; family <= UDP4; family++) {
        size_t n = build_v2(buf, PROXY, family, inet_block, sizeof inet_block);
        assert_int_equal(ss__proxy_parse(buf, n, &h), 28);
        assert_int_equal(h.version, 2);
        assert_false(h.local);
        assert_inet(&h.source, h.source_len, "127.0.0.1", 12345);
        assert_inet(&h.destination, h.destination_len, "10.0.0.1", 80);
        assert_null(h.tlvs);
        assert_int_equal(h.tlvs_len, 0);
        assert_whole_only(buf, n);
    }
}

static void test_v2_proxy_inet6(void **state)
{
    (void)state;
    unsigned char block[36], buf[64];
    ss__proxy_header h;
    inet_pton(AF_INET6, "2001:db8::7", block);
    inet_pton(AF_INET6, "::1", block + 16);
    memcpy(block + 32, (const unsigned char[]){0xFF, 0xFF, 0x01, 0xBB}, 4);
    size_t n = build_v2(buf, PROXY, TCP6, block, sizeof block);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 52);
    assert_false(h.local);
    assert_inet6(&h.source, h.source_len, "2001:db8::7", 65535);
    assert_inet6(&h.destination, h.destination_len, "::1", 443);
    assert_whole_only(buf, n);
}

static void assert_unix(const struct sockaddr_storage *ss, socklen_t len, const char *name,
                        size_t name_len)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
    size_t offset = offsetof(struct sockaddr_un, sun_path);
    assert_int_equal(un->sun_family, AF_UNIX);
    assert_true(len >= offset + name_len);
    assert_memory_equal(un->sun_path, name, name_len);
    /* a path may carry its terminating NUL; an abstract name has none */
    if (name_len > 0 && name[0] == '\0')
        assert_int_equal(len, offset + name_len);
    else
        assert_true(len == offset + name_len || len == offset + name_len + 1);
}

/* HAProxy's unix@ servers: a path, an abstract name, an unnamed client. */
static void test_v2_proxy_unix(void **state)
{
    (void)state;
    unsigned char block[216] = {0}, buf[300];
    ss__proxy_header h;
    strcpy((char *)block, "/run/haproxy/client.sock");
    memcpy(block + 108, "\0backend", 8); /* abstract "@backend" */
    size_t n = build_v2(buf, PROXY, UNIX_STREAM, block, sizeof block);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 16 + 216);
    assert_false(h.local);
    assert_unix(&h.source, h.source_len, "/run/haproxy/client.sock", 24);
#ifdef __linux__
    assert_unix(&h.destination, h.destination_len, "\0backend", 8);
#endif
    assert_whole_only(buf, n);
    memset(block, 0, 108); /* an unbound client: no address at all */
    n = build_v2(buf, PROXY, UNIX_STREAM, block, sizeof block);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 16 + 216);
    assert_int_equal(h.source_len, offsetof(struct sockaddr_un, sun_path));
    memset(block, 'p', 108); /* a path filling all 108 bytes, no NUL */
    n = build_v2(buf, PROXY, UNIX_STREAM, block, sizeof block);
    ssize_t rc = ss__proxy_parse(buf, n, &h);
    if (sizeof(((struct sockaddr_un *)0)->sun_path) >= 108) {
        assert_int_equal(rc, 16 + 216);
        assert_unix(&h.source, h.source_len, (const char *)block, 108);
    } else {
        assert_int_equal(rc, SS_EPROXY); /* cannot be represented here */
    }
}

/* LOCAL: "The receiver must accept this connection as valid and must use
 * the real connection endpoints and discard the protocol block including
 * the family which is ignored" (spec 2.2): addresses or not, any family. */
static void test_v2_local(void **state)
{
    (void)state;
    unsigned char buf[64];
    ss__proxy_header h;
    size_t n = build_v2(buf, LOCAL, 0x00, NULL, 0); /* what HAProxy's checks send */
    assert_int_equal(ss__proxy_parse(buf, n, &h), 16);
    assert_int_equal(h.version, 2);
    assert_true(h.local);
    assert_int_equal(h.source_len, 0);
    assert_whole_only(buf, n);
    const unsigned families[] = {TCP4, UDP4, 0x41, 0x13, 0xFF, 0x00};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        n = build_v2(buf, LOCAL, families[i], inet_block, sizeof inet_block);
        assert_int_equal(ss__proxy_parse(buf, n, &h), 28);
        assert_true(h.local);
        assert_int_equal(h.source_len, 0);
        assert_int_equal(h.destination_len, 0);
        assert_whole_only(buf, n);
    }
    /* a LOCAL block shorter than its family's addresses is discarded too */
    n = build_v2(buf, LOCAL, TCP6, inet_block, sizeof inet_block);
    assert_int_equal(ss__proxy_parse(buf, n, &h), 28);
    assert_true(h.local);
    assert_null(h.tlvs);
}

/* PROXY with family or transport UNSPEC: "The receiver is free to accept
 * the connection anyway and use the real endpoint addresses or to reject
 * it. The receiver should ignore address information." Accepted, local. */
static void test_v2_unspec(void **state)
{
    (void)state;
    unsigned char buf[64];
    ss__proxy_header h;
    /* the block's bytes are not read as addresses, whatever their length */
    const unsigned families[] = {0x00, 0x01, 0x02, 0x10, 0x20, 0x30};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        size_t n = build_v2(buf, PROXY, families[i], inet_block, sizeof inet_block);
        assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
        assert_true(h.local);
        assert_int_equal(h.source_len, 0);
    }
}

/* Appends one TLV to out at *at. */
static void put_tlv(unsigned char *out, size_t *at, unsigned type, const void *value, size_t len)
{
    out[*at] = (unsigned char)type;
    out[*at + 1] = (unsigned char)(len >> 8);
    out[*at + 2] = (unsigned char)len;
    if (len > 0)
        memcpy(out + *at + 3, value, len);
    *at += 3 + len;
}

static void assert_tlv(const ss__proxy_header *h, unsigned type, const char *value, size_t len)
{
    size_t got = 12345;
    const unsigned char *v = ss__proxy_tlv(h, type, &got);
    assert_non_null(v);
    assert_int_equal(got, len);
    assert_memory_equal(v, value, len);
}

static void test_v2_tlvs(void **state)
{
    (void)state;
    unsigned char block[256], buf[300];
    size_t at = sizeof inet_block;
    memcpy(block, inet_block, at);
    put_tlv(block, &at, SS__PP2_TYPE_ALPN, "h2", 2);
    put_tlv(block, &at, SS__PP2_TYPE_NOOP, NULL, 0);
    put_tlv(block, &at, SS__PP2_TYPE_AUTHORITY, "example.com", 11);
    put_tlv(block, &at, SS__PP2_TYPE_ALPN, "http/1.1", 8); /* a second ALPN */
    put_tlv(block, &at, 0xE0, "custom", 6);                /* a type of the custom range */
    size_t n = build_v2(buf, PROXY, TCP4, block, at);
    ss__proxy_header h;
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_false(h.local);
    assert_ptr_equal(h.tlvs, buf + 16 + 12); /* into the caller's buffer */
    assert_int_equal(h.tlvs_len, at - 12);
    assert_tlv(&h, SS__PP2_TYPE_ALPN, "h2", 2); /* the first of its type */
    assert_tlv(&h, SS__PP2_TYPE_AUTHORITY, "example.com", 11);
    assert_tlv(&h, SS__PP2_TYPE_NOOP, "", 0);
    assert_tlv(&h, 0xE0, "custom", 6);
    assert_null(ss__proxy_tlv(&h, SS__PP2_TYPE_UNIQUE_ID, NULL));
    assert_null(ss__proxy_tlv(&h, 0x02 + 0x100, NULL));          /* not a byte */
    assert_non_null(ss__proxy_tlv(&h, SS__PP2_TYPE_ALPN, NULL)); /* len may be NULL */
    assert_whole_only(buf, n);
    /* LOCAL over AF_UNSPEC with TLVs, as HAProxy's health checks may send */
    at = 0;
    put_tlv(block, &at, SS__PP2_TYPE_UNIQUE_ID, "abc", 3);
    n = build_v2(buf, LOCAL, 0x00, block, at);
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_true(h.local);
    assert_tlv(&h, SS__PP2_TYPE_UNIQUE_ID, "abc", 3);
    /* a header without TLVs has none to find */
    n = build_v2(buf, PROXY, TCP4, inet_block, sizeof inet_block);
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_null(ss__proxy_tlv(&h, SS__PP2_TYPE_ALPN, NULL));
}

/* TLVs that do not end exactly at the header's end: refused for PROXY;
 * dropped (tlvs NULL) for LOCAL, whose block is discarded. */
static void test_v2_tlv_overrun(void **state)
{
    (void)state;
    unsigned char block[64], buf[128];
    ss__proxy_header h;
    const size_t tails[] = {1, 2, 3, 4}; /* cut inside the type, the length, the value */
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t at = sizeof inet_block;
        memcpy(block, inet_block, at);
        put_tlv(block, &at, SS__PP2_TYPE_AUTHORITY, "example.com", 11);
        put_tlv(block, &at, SS__PP2_TYPE_ALPN, "h2", 2);
        size_t cut = at - 5 + tails[i]; /* the last TLV, 5 bytes, cut short */
        size_t n = build_v2(buf, PROXY, TCP4, block, cut);
        ss__proxy_header untouched;
        memset(&h, 0xA5, sizeof h);
        memcpy(&untouched, &h, sizeof h);
        assert_int_equal(ss__proxy_parse(buf, n, &h), SS_EPROXY);
        assert_memory_equal(&h, &untouched, sizeof h); /* no half-filled *out */
        n = build_v2(buf, LOCAL, TCP4, block, cut);
        assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
        assert_true(h.local);
        assert_null(h.tlvs);
    }
    /* a length that runs past the header into the client's data */
    size_t at = sizeof inet_block;
    memcpy(block, inet_block, at);
    put_tlv(block, &at, SS__PP2_TYPE_ALPN, "h2", 2);
    block[at - 4] = 0x10; /* its length, 2 -> 0x1002 */
    size_t n = build_v2(buf, PROXY, TCP4, block, at);
    memset(buf + n, 'x', sizeof buf - n);
    assert_int_equal(ss__proxy_parse(buf, sizeof buf, &h), SS_EPROXY);
}

/* CRC32C written another way than the parser's (a table), and checked on
 * the standard test vector first. */
static uint32_t crc32c(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    for (uint32_t i = 0; i < 256 && table[255] == 0; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
    uint32_t crc = 0xFFFFFFFFu;
    while (n--)
        crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* PP2_TYPE_CRC32C (spec 2.2.3): "If it is not [the same], the receiver
 * MUST treat the TCP connection providing the header as invalid." */
static void test_v2_crc32c(void **state)
{
    (void)state;
    assert_int_equal(crc32c((const unsigned char *)"123456789", 9), 0xE3069283u);
    unsigned char block[64], buf[128];
    size_t at = sizeof inet_block;
    memcpy(block, inet_block, at);
    put_tlv(block, &at, SS__PP2_TYPE_ALPN, "h2", 2);
    put_tlv(block, &at, SS__PP2_TYPE_CRC32C, "\0\0\0\0", 4);
    size_t n = build_v2(buf, PROXY, TCP4, block, at);
    uint32_t crc = crc32c(buf, n); /* over the header with the field zeroed */
    unsigned char *field = buf + n - 4;
    for (int i = 0; i < 4; i++)
        field[i] = (unsigned char)(crc >> (24 - 8 * i));
    ss__proxy_header h;
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_false(h.local);
    assert_whole_only(buf, n);
    for (size_t flip = 0; flip < n; flip++) {
        if (flip == n - 7)
            continue;      /* the CRC TLV's type: flipped, there is no checksum to hold */
        buf[flip] ^= 0x01; /* any one bit wrong: its addresses are never used */
        ssize_t rc = ss__proxy_parse(buf, n, &h);
        buf[flip] ^= 0x01;
        if (rc == (ssize_t)n && !h.local) /* (byte 12 may become LOCAL) */
            fail_msg("bit flipped at byte %zu accepted with addresses", flip);
    }
    field[0] ^= 0xFF; /* LOCAL: the block is discarded, its TLVs dropped */
    buf[12] = LOCAL;
    assert_int_equal(ss__proxy_parse(buf, n, &h), (ssize_t)n);
    assert_true(h.local);
    assert_null(h.tlvs);
}

/* Each wrong byte is refused as soon as it arrives. */
static void test_v2_wrong_signature(void **state)
{
    (void)state;
    unsigned char buf[64];
    ss__proxy_header h;
    size_t n = build_v2(buf, PROXY, TCP4, inet_block, sizeof inet_block);
    for (size_t i = 1; i < sizeof signature; i++) { /* byte 0 '\r' is v2's mark */
        buf[i] ^= 0x20;
        assert_int_equal(ss__proxy_parse(buf, i + 1, &h), SS_EPROXY);
        assert_int_equal(ss__proxy_parse(buf, n, &h), SS_EPROXY);
        buf[i] ^= 0x20;
    }
    buf[0] = 'X';
    assert_int_equal(ss__proxy_parse(buf, 1, &h), SS_EPROXY);
}

static void test_v2_wrong_version_or_command(void **state)
{
    (void)state;
    unsigned char buf[64];
    ss__proxy_header h;
    /* version 1 and 3 in binary, and commands 2 to 15 */
    const unsigned bytes[] = {0x10, 0x11, 0x31, 0x01, 0xF1, 0x22, 0x23, 0x2F};
    for (size_t i = 0; i < sizeof bytes / sizeof bytes[0]; i++) {
        size_t n = build_v2(buf, bytes[i], TCP4, inet_block, sizeof inet_block);
        assert_int_equal(ss__proxy_parse(buf, 13, &h), SS_EPROXY);
        assert_int_equal(ss__proxy_parse(buf, n, &h), SS_EPROXY);
    }
}

/* Families and transports the spec does not define, with PROXY: "must be
 * rejected as invalid by receivers". */
static void test_v2_unknown_family(void **state)
{
    (void)state;
    unsigned char block[216] = {0}, buf[300];
    ss__proxy_header h;
    const unsigned families[] = {0x41, 0x51, 0xF1, 0x13, 0x1F, 0x03, 0x40, 0x33};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        size_t n = build_v2(buf, PROXY, families[i], block, sizeof block);
        assert_int_equal(ss__proxy_parse(buf, 14, &h), SS_EPROXY);
        assert_int_equal(ss__proxy_parse(buf, n, &h), SS_EPROXY);
    }
}

/* A length shorter than the family's addresses can never be valid: refused
 * with the 16th byte. A length beyond the data waits for it. */
static void test_v2_lengths(void **state)
{
    (void)state;
    unsigned char block[300] = {0}, buf[400];
    ss__proxy_header h;
    const struct {
        unsigned family;
        size_t need;
    } families[] = {{TCP4, 12}, {UDP4, 12}, {TCP6, 36}, {0x22, 36}, {UNIX_STREAM, 216}};
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        build_v2(buf, PROXY, families[i].family, block, families[i].need - 1);
        assert_int_equal(ss__proxy_parse(buf, 16, &h), SS_EPROXY);
        build_v2(buf, PROXY, families[i].family, block, 0);
        assert_int_equal(ss__proxy_parse(buf, 16, &h), SS_EPROXY);
    }
    /* 40 bytes announced, 20 there: more is needed, until all 40 come */
    memcpy(block, inet_block, sizeof inet_block);
    put_tlv(block, &(size_t){12}, SS__PP2_TYPE_NOOP, block + 100, 25);
    size_t n = build_v2(buf, PROXY, TCP4, block, 40);
    assert_int_equal(n, 56);
    assert_int_equal(ss__proxy_parse(buf, 36, &h), 0);
    assert_int_equal(ss__proxy_parse(buf, 55, &h), 0);
    assert_int_equal(ss__proxy_parse(buf, 56, &h), 56);
    /* the largest length: waited on, never an overflow */
    build_v2(buf, LOCAL, 0x00, NULL, 0);
    buf[14] = buf[15] = 0xFF;
    assert_int_equal(ss__proxy_parse(buf, sizeof buf, &h), 0);
}

static void test_error_texts(void **state)
{
    (void)state;
    assert_string_equal(ss_strerror(SS_EPROXY), "Invalid or missing PROXY protocol header");
    assert_string_equal(ss_strerror(SS_EPROXYUNTRUSTED),
                        "PROXY protocol header from an untrusted source");
    assert_true(SS_EPROXY != SS_EPROXYUNTRUSTED);
    assert_false(SS_IS_URL_ERROR(SS_EPROXY));
    assert_false(SS_IS_URL_ERROR(SS_EPROXYUNTRUSTED));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_longest_lines),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_nul_inside),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v1_refused_early),
        cmocka_unit_test(test_v1_still_partial),
        cmocka_unit_test(test_v1_cannot_fit),
        cmocka_unit_test(test_v2_proxy_inet),
        cmocka_unit_test(test_v2_proxy_inet6),
        cmocka_unit_test(test_v2_proxy_unix),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_unspec),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_tlv_overrun),
        cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_v2_wrong_signature),
        cmocka_unit_test(test_v2_wrong_version_or_command),
        cmocka_unit_test(test_v2_unknown_family),
        cmocka_unit_test(test_v2_lengths),
        cmocka_unit_test(test_error_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
