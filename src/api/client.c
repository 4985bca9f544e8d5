/* ss_connect: the client side of the library's URLs, for tools, tests and
 * examples that talk to a server. */
#include "base/base.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int try_connect(const struct addrinfo *ai)
{
    int fd = ss__socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0)
        return fd;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    int rc = -errno;
    close(fd);
    return rc;
}

/* Tries each resolved address until one connects, IPv4 ones first: a
 * server given the same name binds IPv4 (see transport/inet.c), and for UDP,
 * where connect() cannot tell whether anybody is there, the first address
 * is the only one tried. */
static int connect_host(const char *host, const char *port, int socktype)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = socktype, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, port, &hints, &list);
    if (gai != 0)
        return gai == EAI_SYSTEM && errno != 0 ? -errno : SS_ERESOLVE;
    int rc = -ECONNREFUSED;
    for (int pass = 0; pass < 2 && rc < 0; pass++)
        for (const struct addrinfo *ai = list; ai != NULL && rc < 0; ai = ai->ai_next)
            if ((ai->ai_family == AF_INET) == (pass == 0))
                rc = try_connect(ai);
    freeaddrinfo(list);
    return rc;
}

/* localhost is the loopback addresses without asking the resolver (RFC
 * 6761), IPv4 first like any other name; UDP gets the first only. */
static int connect_inet(const ss__url *url, int socktype)
{
    const char *host = url->host[0] != '\0' ? url->host : "localhost";
    if (!ss__is_localhost(host))
        return connect_host(host, url->port, socktype);
    int rc = connect_host("127.0.0.1", url->port, socktype);
    if (rc < 0 && socktype == SOCK_STREAM)
        rc = connect_host("::1", url->port, socktype);
    return rc;
}

#ifdef __linux__

/* Autobind: an address of just the family gets a unique abstract name
 * that vanishes with the socket, so there is nothing to clean up. */
static int bind_reply_address(int fd)
{
    struct sockaddr_storage addr = {.ss_family = AF_UNIX};
    return bind(fd, (struct sockaddr *)&addr, sizeof addr.ss_family) < 0 ? -errno : 0;
}

static void drop_reply_address(int fd)
{
    (void)fd; /* the name dies with the socket */
}

#else

/* No autobind: bind a fresh path in $TMPDIR (or /tmp). bind() creates the
 * file exclusively, so a taken name only means trying the next one. The
 * file outlives the socket; the caller removes it (getsockname names it). */
static int bind_reply_address(int fd)
{
    const char *dir = getenv("TMPDIR");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (long attempt = 0; attempt < 16; attempt++) {
        char path[256];
        snprintf(path, sizeof path, "%s/ss-client-%ld-%d-%ld.sock", dir && *dir ? dir : "/tmp",
                 (long)getpid(), fd, now.tv_nsec + attempt);
        struct sockaddr_storage addr;
        socklen_t len;
        int rc = ss__unix_address(path, &addr, &len);
        if (rc < 0)
            return rc;
        if (bind(fd, (struct sockaddr *)&addr, len) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -errno;
    }
    return -EADDRINUSE;
}

/* Removes the file bind_reply_address made, when connecting failed. */
static void drop_reply_address(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0 && addr.ss_family == AF_UNIX &&
        len > (socklen_t)offsetof(struct sockaddr_un, sun_path))
        unlink(((struct sockaddr_un *)&addr)->sun_path);
}

#endif

/* A datagram client needs an address of its own, or the server could not
 * send it a reply (the server reports that through handle_error). */
static int connect_unix(const ss__url *url, int socktype)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = ss__unix_address(url->path, &addr, &len);
    if (rc < 0)
        return rc;
    int fd = ss__socket(AF_UNIX, socktype, 0);
    if (fd < 0)
        return fd;
    if (socktype == SOCK_DGRAM)
        rc = bind_reply_address(fd);
    if (rc == 0 && connect(fd, (struct sockaddr *)&addr, len) < 0)
        rc = -errno;
    if (rc < 0) {
        if (socktype == SOCK_DGRAM)
            drop_reply_address(fd);
        close(fd);
        return rc;
    }
    return fd;
}

SS_API int ss_connect(const char *url)
{
    ss__url parsed;
    int rc = ss__url_parse(url, &parsed);
    if (rc < 0)
        return rc;
    switch (parsed.scheme) {
    case SS__SCHEME_TCP:
    case SS__SCHEME_TLS: /* the TCP connection; the caller makes the TLS handshake */
        return connect_inet(&parsed, SOCK_STREAM);
    case SS__SCHEME_UDP:
        return connect_inet(&parsed, SOCK_DGRAM);
    case SS__SCHEME_UNIX:
        return connect_unix(&parsed, SOCK_STREAM);
    case SS__SCHEME_UNIXGRAM:
        return connect_unix(&parsed, SOCK_DGRAM);
    default:
        return SS_ENOTSUPPORTED;
    }
}
