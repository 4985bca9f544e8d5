/* Target URLs for loadgen, and the rule that it only ever talks to this
 * machine: 127.0.0.0/8, ::1 (or ::ffff:127.x) and Unix sockets. A name is
 * resolved first and refused if any address it gives is not loopback. */
#include "lg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static int split_host_port(const char *rest, char *host, size_t hsize, const char **port)
{
    const char *colon;
    const char *hbeg = rest;
    const char *hend;
    if (*rest == '[') {
        hbeg = rest + 1;
        hend = strchr(rest, ']');
        if (hend == NULL || hend[1] != ':')
            return -1;
        colon = hend + 1;
    } else {
        colon = strrchr(rest, ':');
        if (colon == NULL)
            return -1;
        hend = colon;
    }
    size_t n = (size_t)(hend - hbeg);
    if (n >= hsize)
        return -1;
    memcpy(host, hbeg, n);
    host[n] = '\0';
    *port = colon + 1;
    return 0;
}

static int resolve_inet(const char *rest, int socktype, lg_target *out, char *why, size_t wsize)
{
    char host[256];
    const char *port;
    if (split_host_port(rest, host, sizeof host, &port) < 0 || *port == '\0') {
        snprintf(why, wsize, "expected HOST:PORT or [V6]:PORT");
        return -1;
    }
    struct addrinfo hints = {.ai_socktype = socktype, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(host[0] ? host : "127.0.0.1", port, &hints, &res);
    if (rc != 0) {
        snprintf(why, wsize, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            snprintf(why, wsize, "refusing %s: not a loopback address (127.0.0.0/8, ::1)", host);
            freeaddrinfo(res);
            return -1;
        }
    }
    out->family = res->ai_family;
    out->len = res->ai_addrlen;
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* "@name": Linux's abstract namespace, as the library's URLs spell it (no
 * file; the name is its bytes after a leading NUL, so the address is as
 * long as the name, not the whole sun_path). */
static int unix_abstract(const char *name, lg_target *out, char *why, size_t wsize)
{
#ifdef __linux__
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->addr;
    size_t n = strlen(name);
    if (n == 0 || n + 1 > sizeof sun->sun_path) {
        snprintf(why, wsize, "bad abstract Unix socket name (1-%zu bytes after '@')",
                 sizeof sun->sun_path - 1);
        return -1;
    }
    sun->sun_family = AF_UNIX;
    sun->sun_path[0] = '\0';
    memcpy(sun->sun_path + 1, name, n);
    out->family = AF_UNIX;
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
    return 0;
#else
    (void)name;
    (void)out;
    snprintf(why, wsize, "abstract Unix socket names (@name) exist on Linux only");
    return -1;
#endif
}

static int unix_path(const char *path, lg_target *out, char *why, size_t wsize)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->addr;
    if (path[0] == '@')
        return unix_abstract(path + 1, out, why, wsize);
    if (*path == '\0' || strlen(path) >= sizeof sun->sun_path) {
        snprintf(why, wsize, "bad Unix socket path");
        return -1;
    }
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    out->family = AF_UNIX;
    out->len = (socklen_t)sizeof *sun;
    return 0;
}

int lg_target_parse(const char *url, lg_target *out, char *why, size_t wsize)
{
    memset(out, 0, sizeof *out);
    if (strncmp(url, "tcp://", 6) == 0 || strncmp(url, "udp://", 6) == 0 ||
        strncmp(url, "tls://", 6) == 0) {
        out->socktype = url[0] == 't' ? SOCK_STREAM : SOCK_DGRAM;
        out->tls = url[1] == 'l';
        return resolve_inet(url + 6, out->socktype, out, why, wsize);
    }
    if (strncmp(url, "unix:", 5) == 0) {
        out->socktype = SOCK_STREAM;
        return unix_path(url + 5, out, why, wsize);
    }
    if (strncmp(url, "unixgram:", 9) == 0) {
        out->socktype = SOCK_DGRAM;
        return unix_path(url + 9, out, why, wsize);
    }
    snprintf(why, wsize, "expected tcp://, tls://, udp://, unix: or unixgram:");
    return -1;
}

/* A Unix datagram client needs its own address for the replies: Linux
 * autobinds an abstract one when bind() gets just the family. */
static int bind_for_replies(int fd, const lg_target *t)
{
    if (t->family != AF_UNIX || t->socktype != SOCK_DGRAM)
        return 0;
    sa_family_t fam = AF_UNIX;
    return bind(fd, (const struct sockaddr *)&fam, sizeof fam);
}

/* Connections from many source addresses: 127.S.H.L, S fixed per run,
 * H.L per connection slot. Every slot then has the ephemeral ports to
 * itself, so connect-per-request load neither collides with the TIME_WAIT
 * sockets earlier runs left behind nor makes connect() search through
 * them (which otherwise slows whichever server happens to run later). */
static void bind_source(int fd, const lg_target *t, unsigned slot)
{
    static unsigned salt;
    if (t->family != AF_INET || t->socktype != SOCK_STREAM)
        return;
    if (salt == 0)
        salt = 1 + (unsigned)getpid() % 254;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr =
        htonl(127u << 24 | salt << 16 | (slot / 254 % 256) << 8 | (slot % 254 + 1));
    bind(fd, (const struct sockaddr *)&src, sizeof src); /* on failure: any source */
}

int lg_target_socket(const lg_target *t, unsigned slot)
{
    int fd = socket(t->family, t->socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind_for_replies(fd, t) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    bind_source(fd, t, slot);
    if (t->family != AF_UNIX && t->socktype == SOCK_STREAM) {
        int one = 1; /* our requests must not wait for the server's ACKs */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}
