/* Adopting an inherited socket (fd:N, systemd:): what it is is read from
 * the socket itself (family, type, address), never from the URL, and it
 * must already be serving: a stream socket listening, a datagram socket
 * bound. Python's equivalent is bind_and_activate=False and replacing
 * server.socket, which checks nothing. */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

static const ss__transport *table_for(int family, int type)
{
    bool inet = family == AF_INET || family == AF_INET6;
    if (inet && type == SOCK_STREAM)
        return ss__transport_tcp();
    if (inet && type == SOCK_DGRAM)
        return ss__transport_udp();
    if (family == AF_UNIX && type == SOCK_STREAM)
        return ss__transport_unix();
    if (family == AF_UNIX && type == SOCK_DGRAM)
        return ss__transport_unixgram();
    return NULL;
}

static int int_option(int fd, int name, int *value)
{
    socklen_t len = sizeof *value;
    return getsockopt(fd, SOL_SOCKET, name, value, &len) < 0 ? -errno : 0;
}

/* A stream socket accepts (SO_ACCEPTCONN; where the system cannot say,
 * it is taken at its word); a datagram socket has an address to be sent
 * to: a port, or a Unix name. */
static bool serving(int fd, const ss__listener *l)
{
    if (!l->transport->datagram) {
#ifdef SO_ACCEPTCONN
        int on = 0;
        return int_option(fd, SO_ACCEPTCONN, &on) == 0 && on != 0;
#else
        return true;
#endif
    }
    const struct sockaddr *sa = (const struct sockaddr *)&l->addr;
    if (sa->sa_family == AF_UNIX)
        return !ss__sockaddr_unnamed(sa, l->addr_len);
    return ss__sockaddr_port(sa, l->addr_len) != 0;
}

/* A Unix listener's url.path, as a unix: URL would give it ("@name" for
 * an abstract one), so the rules keyed on it (is_abstract) hold. */
static void unix_path(ss__listener *l)
{
    char text[sizeof l->url.path + 1];
    int n = ss__format_address((const struct sockaddr *)&l->addr, l->addr_len, text, sizeof text);
    if (n >= 0 && (size_t)n < sizeof l->url.path)
        memcpy(l->url.path, text, (size_t)n + 1);
}

int ss__adopt_inspect(int fd, ss__listener *l)
{
    if (fcntl(fd, F_GETFD) < 0)
        return -errno; /* -EBADF: not open */
    int type = 0;
    int rc = int_option(fd, SO_TYPE, &type);
    if (rc < 0)
        return rc; /* -ENOTSOCK: a file, a pipe, a terminal */
    l->addr_len = sizeof l->addr;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addr_len) < 0)
        return -errno;
    l->transport = table_for(l->addr.ss_family, type);
    if (l->transport == NULL) /* says which: the socket's type (SOCK_SEQPACKET) or family */
        return table_for(l->addr.ss_family, SOCK_STREAM) != NULL ? -ESOCKTNOSUPPORT : -EAFNOSUPPORT;
    if (!serving(fd, l))
        return SS_ENOTLISTENING;
    l->url.scheme = l->transport->scheme;
    if (l->addr.ss_family == AF_UNIX)
        unix_path(l);
    return 0;
}

int ss__adopt_take(int fd, ss__listener *l)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;
    int rc = ss__set_nonblocking(fd); /* as the library's own server sockets */
    if (rc < 0)
        return rc;
    l->fd = fd;
    l->adopted = l->bound = true;
    atomic_store(&l->shared, true);
    return 0;
}
