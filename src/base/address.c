/* Address URLs: parsing "tcp://host:port", "tcp://[v6]:port", "udp://...",
 * "tls://..." (a TCP address whose connections speak TLS),
 * "unix:/path", "unix:@abstract", "unixgram:/path", and formatting socket
 * addresses back into the same forms. No resolution happens here. */
#include "base/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

static const struct {
    const char *prefix;
    ss__scheme scheme;
} schemes[] = {
    {"tcp://", SS__SCHEME_TCP},         {"udp://", SS__SCHEME_UDP}, {"unix:", SS__SCHEME_UNIX},
    {"unixgram:", SS__SCHEME_UNIXGRAM}, {"tls://", SS__SCHEME_TLS}, {"fd:", SS__SCHEME_FD},
    {"systemd:", SS__SCHEME_SYSTEMD},
};

const char *ss__scheme_name(ss__scheme scheme)
{
    static const char *names[] = {"tcp", "udp", "unix", "unixgram", "tls", "fd", "systemd"};
    return names[scheme];
}

bool ss__scheme_inet(ss__scheme scheme)
{
    return scheme == SS__SCHEME_TCP || scheme == SS__SCHEME_UDP || scheme == SS__SCHEME_TLS;
}

/* Copies [begin, end) into dst (capacity size) if it fits. */
static bool copy_span(char *dst, size_t size, const char *begin, const char *end)
{
    size_t n = (size_t)(end - begin);
    if (n >= size)
        return false;
    memcpy(dst, begin, n);
    dst[n] = '\0';
    return true;
}

/* A decimal port from 0 to 65535, nothing before or after it. */
static int check_port(const char *port)
{
    if (*port == '\0')
        return SS_EURLNOPORT;
    size_t digits = strspn(port, "0123456789");
    if (port[digits] != '\0')
        return SS_EURLPORTSYNTAX;
    if (digits > 5 || atol(port) > 65535)
        return SS_EURLPORTRANGE;
    return 0;
}

/* "[V6]" at the start of rest: the host between the brackets; *colon is
 * what follows the "]" (":PORT" when well formed). */
static int parse_bracketed(const char *rest, ss__url *out, const char **colon)
{
    const char *close = strchr(rest, ']');
    if (close == NULL)
        return SS_EURLBRACKET;
    if (close == rest + 1)
        return SS_EURLHOST; /* "[]" */
    if (!copy_span(out->host, sizeof out->host, rest + 1, close))
        return -ENAMETOOLONG;
    if (close[1] != ':')
        return SS_EURLNOPORT; /* "[::1]" or "[::1]80" */
    *colon = close + 1;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT"; HOST may be empty or "*" (any address). */
static int parse_inet(const char *rest, ss__url *out)
{
    const char *colon = NULL;
    if (*rest == '[') {
        int rc = parse_bracketed(rest, out, &colon);
        if (rc < 0)
            return rc;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL)
            return SS_EURLNOPORT;
        if (memchr(rest, ':', (size_t)(colon - rest)) != NULL)
            return SS_EURLIPV6BARE;
        if (!copy_span(out->host, sizeof out->host, rest, colon))
            return -ENAMETOOLONG;
        if (strcmp(out->host, "*") == 0)
            out->host[0] = '\0';
    }
    if (strpbrk(out->host, "/?#[] ") != NULL)
        return SS_EURLHOST;
    int rc = check_port(colon + 1);
    if (rc < 0)
        return rc;
    memcpy(out->port, colon + 1, strlen(colon + 1) + 1); /* at most 5 digits */
    return 0;
}

static int parse_path(const char *rest, ss__url *out)
{
    if (*rest == '\0' || (rest[0] == '@' && rest[1] == '\0'))
        return SS_EURLNOPATH;
    size_t n = strlen(rest);
    if (n >= sizeof out->path)
        return -ENAMETOOLONG;
    memcpy(out->path, rest, n + 1);
    return 0;
}

/* "fd:N": a descriptor number, decimal, 0 to INT_MAX, nothing else. */
static int parse_fd(const char *rest, ss__url *out)
{
    size_t digits = strspn(rest, "0123456789");
    if (digits == 0 || rest[digits] != '\0' || digits > 10 || atoll(rest) > INT_MAX)
        return SS_EURLFD;
    memcpy(out->path, rest, digits + 1);
    return 0;
}

bool ss__fdname_valid(const char *name, size_t len)
{
    if (len > 255)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e || name[i] == ':')
            return false;
    return true;
}

/* "systemd:NAME": a LISTEN_FDNAMES name (systemd's rule: printable ASCII
 * but ':', at most 255 bytes), or nothing for every passed socket. */
static int parse_fdname(const char *rest, ss__url *out)
{
    size_t n = strlen(rest);
    if (n >= sizeof out->path)
        return -ENAMETOOLONG;
    if (!ss__fdname_valid(rest, n))
        return SS_EURLFDNAME; /* no socket can have that name */
    memcpy(out->path, rest, n + 1);
    return 0;
}

/* No known prefix. "word:rest" names a scheme we do not serve ("foo:bar",
 * "http://x", "udp:host:1"): a scheme starts with a letter (RFC 3986,
 * 3.1). Only "host:PORT" (all digits after the colon, as in
 * "localhost:80" or "127.0.0.1:80") and text without such a start are
 * an address missing its scheme. */
static int unknown_scheme(const char *text)
{
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    size_t name = strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (name == 0 || text[name] != ':' || strchr(letters, text[0]) == NULL)
        return SS_EURLNOSCHEME;
    const char *rest = text + name + 1;
    bool port = rest[0] != '\0' && rest[strspn(rest, "0123456789")] == '\0';
    return port ? SS_EURLNOSCHEME : SS_EURLSCHEME;
}

int ss__url_parse(const char *text, ss__url *out)
{
    if (text == NULL || out == NULL)
        return SS_EBADURL;
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t len = strlen(schemes[i].prefix);
        if (strncmp(text, schemes[i].prefix, len) != 0)
            continue;
        out->scheme = schemes[i].scheme;
        const char *rest = text + len;
        switch (out->scheme) {
        case SS__SCHEME_TCP:
        case SS__SCHEME_UDP:
        case SS__SCHEME_TLS:
            return parse_inet(rest, out);
        case SS__SCHEME_FD:
            return parse_fd(rest, out);
        case SS__SCHEME_SYSTEMD:
            return parse_fdname(rest, out);
        default:
            return parse_path(rest, out);
        }
    }
    return unknown_scheme(text);
}

static int format_inet(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    int n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        port = ntohs(in->sin_port);
        n = snprintf(buf, size, "%s:%u", ip, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        port = ntohs(in6->sin6_port);
        n = snprintf(buf, size, "[%s]:%u", ip, port);
    }
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

/* One byte of a Unix name as text, into out (4 bytes at most); returns
 * the count. A NUL inside an abstract name is shown as '@' (as ss(8)
 * does), so the text stays one C string. A client's name (`escape`) is
 * chosen by whoever binds the socket (or sends a PROXY v2 header naming
 * one) and ends up in logs: a control byte (a newline forging a log
 * line, an escape sequence reaching a terminal), any byte outside
 * printable ASCII, and the backslash that starts an escape are written
 * as \xHH there. A listener's own name stays as it is: it is a path to
 * use. */
static size_t name_byte(unsigned char c, bool escape, char *out)
{
    static const char hex[] = "0123456789abcdef";
    if (c == '\0') {
        out[0] = '@';
        return 1;
    }
    if (!escape || (c >= 0x20 && c < 0x7f && c != '\\')) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[c >> 4];
    out[3] = hex[c & 15];
    return 4;
}

/* A Unix address as text: the path, "@name" for an abstract one, "" for an
 * unnamed peer (its address has no path bytes at all); escaped, one
 * printable line whatever the name holds, if asked. */
static int format_unix(const struct sockaddr *sa, socklen_t len, char *buf, size_t size,
                       bool escape)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    size_t offset = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > offset ? (size_t)len - offset : 0;
    if (n > sizeof un->sun_path)
        n = sizeof un->sun_path;
    bool abstract = n > 0 && un->sun_path[0] == '\0';
    const unsigned char *name = (const unsigned char *)un->sun_path + (abstract ? 1 : 0);
    size_t name_len = abstract ? n - 1 : strnlen(un->sun_path, n);
    size_t total = abstract ? 1 : 0;
    if (total >= size)
        return -ENOSPC;
    if (abstract)
        buf[0] = '@';
    for (size_t i = 0; i < name_len; i++) {
        char piece[4];
        size_t k = name_byte(name[i], escape, piece);
        if (total + k >= size) {
            buf[0] = '\0';
            return -ENOSPC;
        }
        memcpy(buf + total, piece, k);
        total += k;
    }
    buf[total] = '\0';
    return (int)total;
}

static int format_address(const struct sockaddr *sa, socklen_t len, char *buf, size_t size,
                          bool escape)
{
    if (size == 0)
        return -ENOSPC;
    buf[0] = '\0';
    if (len == 0)
        return 0;
    switch (sa->sa_family) {
    case AF_INET:
    case AF_INET6:
        return format_inet(sa, buf, size);
    case AF_UNIX:
        return format_unix(sa, len, buf, size, escape);
    default:
        return -EAFNOSUPPORT;
    }
}

int ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    return format_address(sa, len, buf, size, true);
}

int ss__format_address(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    return format_address(sa, len, buf, size, false);
}

int ss__format_url(ss__scheme scheme, const struct sockaddr *sa, socklen_t len, char *buf,
                   size_t size)
{
    const char *sep = ss__scheme_inet(scheme) ? "://" : ":";
    int prefix = snprintf(buf, size, "%s%s", ss__scheme_name(scheme), sep);
    if (prefix < 0 || (size_t)prefix >= size)
        return -ENOSPC;
    int rc = ss__format_address(sa, len, buf + prefix, size - (size_t)prefix);
    return rc < 0 ? rc : prefix + rc;
}

int ss__sockaddr_port(const struct sockaddr *sa, socklen_t len)
{
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in))
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6))
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

int ss__unix_address(const char *path, struct sockaddr_storage *out, socklen_t *len)
{
    struct sockaddr_un *un = (struct sockaddr_un *)out;
    memset(out, 0, sizeof *out);
    un->sun_family = AF_UNIX;
    size_t n = strlen(path);
    /* A path keeps one byte for its terminating NUL (107 characters on
     * Linux). An abstract name has none: its '@' becomes the leading NUL,
     * so it may fill sun_path (the '@' and 107 name bytes on Linux). */
    size_t max = path[0] == '@' ? sizeof un->sun_path : sizeof un->sun_path - 1;
    if (n > max)
        return -ENAMETOOLONG;
    memcpy(un->sun_path, path, n);
    if (path[0] != '@') {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
    }
#ifdef __linux__
    un->sun_path[0] = '\0'; /* the abstract namespace: no file at all */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
#else
    return SS_ENOTSUPPORTED; /* abstract names are a Linux feature */
#endif
}

bool ss__sockaddr_unnamed(const struct sockaddr *sa, socklen_t len)
{
    /* An unbound Unix sender arrives with no address (Linux) or with only
     * the family and no path bytes (elsewhere). */
    return len == 0 ||
           (sa->sa_family == AF_UNIX && len <= (socklen_t)offsetof(struct sockaddr_un, sun_path));
}

/* RFC 6761, section 6.3: "localhost" and the names under it are the
 * loopback address, whatever /etc/hosts or DNS say. A container or a fresh
 * chroot may have no hosts file at all, and the examples' default address
 * is tcp://localhost:9999. */
bool ss__is_localhost(const char *host)
{
    static const char name[] = "localhost";
    size_t n = strlen(host), k = sizeof name - 1;
    if (n < k || strcasecmp(host + n - k, name) != 0)
        return false;
    return n == k || host[n - k - 1] == '.';
}

/* The port is left out: one client, many connections. An IPv4 client of a
 * dual-stack server ([::ffff:a.b.c.d]) is the same client as over IPv4. */
int ss__ip_client_key(const struct sockaddr_storage *peer, ss__client_key *key)
{
    const void *addr;
    size_t len;
    if (peer->ss_family == AF_INET) {
        addr = &((const struct sockaddr_in *)peer)->sin_addr;
        len = 4;
    } else if (peer->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        bool mapped = IN6_IS_ADDR_V4MAPPED(a6);
        addr = mapped ? a6->s6_addr + 12 : a6->s6_addr;
        len = mapped ? 4 : 16;
    } else {
        return -ENOTSUP;
    }
    key->bytes[0] = len == 4 ? '4' : '6';
    memcpy(key->bytes + 1, addr, len);
    key->len = (unsigned char)(1 + len);
    return 0;
}
