/* The PROXY protocol header loadgen sends first on every connection with
 * --proxy-v1 or --proxy-v2, written from the specification published with
 * HAProxy (doc/proxy-protocol.txt, "The PROXY protocol, Versions 1 & 2").
 * loadgen plays the proxy and its own client at once, so the header names
 * the connection's real endpoints: its source (getsockname) and its
 * destination, the server (getpeername). */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

/* Spec 2.2: the 12 bytes every v2 header begins with. */
static const unsigned char v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define V2_VERSION_PROXY 0x21 /* high nibble: version 2; low: command PROXY */
#define V2_INET_STREAM   0x11 /* high nibble: AF_INET; low: STREAM */
#define V2_INET6_STREAM  0x21
#define V2_UNIX_STREAM   0x31
#define V2_UNIX_PATH     108 /* each AF_UNIX address is 108 bytes */

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* The address block (spec 2.2: source address, destination address, then
 * source port and destination port, all in network byte order) after the
 * 16-byte fixed part; returns the header's whole length. */
static size_t v2_addresses(unsigned char *out, const struct sockaddr_storage *src,
                           const struct sockaddr_storage *dst)
{
    unsigned char *a = out + 16;
    size_t len;
    if (src->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
        memcpy(a, &s->sin_addr, 4);
        memcpy(a + 4, &d->sin_addr, 4);
        memcpy(a + 8, &s->sin_port, 2); /* already big-endian */
        memcpy(a + 10, &d->sin_port, 2);
        out[13] = V2_INET_STREAM, len = 12;
    } else if (src->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;
        memcpy(a, &s->sin6_addr, 16);
        memcpy(a + 16, &d->sin6_addr, 16);
        memcpy(a + 32, &s->sin6_port, 2);
        memcpy(a + 34, &d->sin6_port, 2);
        out[13] = V2_INET6_STREAM, len = 36;
    } else {
        const struct sockaddr_un *s = (const void *)src, *d = (const void *)dst;
        memset(a, 0, 2 * V2_UNIX_PATH); /* an unbound client has no path */
        memcpy(a, s->sun_path, strnlen(s->sun_path, sizeof s->sun_path));
        memcpy(a + V2_UNIX_PATH, d->sun_path, strnlen(d->sun_path, sizeof d->sun_path));
        out[13] = V2_UNIX_STREAM, len = 2 * V2_UNIX_PATH;
    }
    memcpy(out, v2_signature, sizeof v2_signature);
    out[12] = V2_VERSION_PROXY;
    put16(out + 14, (unsigned)len);
    return 16 + len;
}

static const void *inet_addr_of(const struct sockaddr_storage *ss, unsigned *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)ss;
        *port = ntohs(sin->sin_port);
        return &sin->sin_addr;
    }
    const struct sockaddr_in6 *sin6 = (const void *)ss;
    *port = ntohs(sin6->sin6_port);
    return &sin6->sin6_addr;
}

/* Spec 2.1: "PROXY TCP4 src dst sport dport\r\n" in canonical text, at most
 * 107 bytes; a Unix connection has no v1 form, so "PROXY UNKNOWN\r\n". */
static size_t v1_line(unsigned char *out, const struct sockaddr_storage *src,
                      const struct sockaddr_storage *dst)
{
    if (src->ss_family != AF_INET && src->ss_family != AF_INET6)
        return (size_t)snprintf((char *)out, LG_PROXY_MAX, "PROXY UNKNOWN\r\n");
    char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
    unsigned sport, dport;
    inet_ntop(src->ss_family, inet_addr_of(src, &sport), s, sizeof s);
    inet_ntop(dst->ss_family, inet_addr_of(dst, &dport), d, sizeof d);
    return (size_t)snprintf((char *)out, LG_PROXY_MAX, "PROXY %s %s %s %u %u\r\n",
                            src->ss_family == AF_INET ? "TCP4" : "TCP6", s, d, sport, dport);
}

int lg_proxy_header(int version, int fd, unsigned char *out)
{
    struct sockaddr_storage src, dst;
    socklen_t slen = sizeof src, dlen = sizeof dst;
    memset(&src, 0, sizeof src);
    memset(&dst, 0, sizeof dst);
    if (getsockname(fd, (struct sockaddr *)&src, &slen) < 0 ||
        getpeername(fd, (struct sockaddr *)&dst, &dlen) < 0)
        return -errno;
    if (src.ss_family != dst.ss_family)
        return -EAFNOSUPPORT;
    if (version == 1)
        return (int)v1_line(out, &src, &dst);
    return (int)v2_addresses(out, &src, &dst);
}
