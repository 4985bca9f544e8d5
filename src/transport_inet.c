/* TCP over IPv4 and IPv6: name resolution, bind-time options, listen and
 * accept, and per-connection I/O. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

/* Picks the address to bind from getaddrinfo's list: IPv4 first when a
 * name has both (Python's TCPServer is AF_INET, and the tutorial's client
 * connects to 127.0.0.1), otherwise whatever came first. */
static const struct addrinfo *pick_address(const struct addrinfo *list)
{
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            return ai;
    return list;
}

static int resolve_error(int gai)
{
    if (gai == EAI_SYSTEM)
        return errno != 0 ? -errno : SS_ERESOLVE;
    if (gai == EAI_MEMORY)
        return -ENOMEM;
    return SS_ERESOLVE;
}

/* Resolves srv->url into srv->addr for a socket of the given type. */
static int resolve(ss_server *srv, int socktype)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = socktype,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    const char *host = srv->url.host[0] != '\0' ? srv->url.host : NULL;
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, srv->url.port, &hints, &list);
    if (gai != 0)
        return resolve_error(gai);
    const struct addrinfo *ai = pick_address(list);
    memcpy(&srv->addr, ai->ai_addr, ai->ai_addrlen);
    srv->addr_len = ai->ai_addrlen;
    freeaddrinfo(list);
    return 0;
}

static int set_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

static int tcp_open(ss_server *srv)
{
    int rc = resolve(srv, SOCK_STREAM);
    if (rc < 0)
        return rc;
    int fd = ss__socket(srv->addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    /* Non-blocking, so a client that resets between poll() and accept()
     * cannot leave the loop stuck inside accept(). */
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    srv->fd = fd;
    return 0;
}

static int apply_bind_options(ss_server *srv)
{
    int rc = 0;
    if (srv->reuse_address)
        rc = set_option(srv->fd, SOL_SOCKET, SO_REUSEADDR, 1);
#ifdef SO_REUSEPORT
    if (rc == 0 && srv->reuse_port)
        rc = set_option(srv->fd, SOL_SOCKET, SO_REUSEPORT, 1);
#endif
    /* [::] means every address, IPv4 included, whatever the system
     * default (net.ipv6.bindv6only) says. */
    if (rc == 0 && srv->addr.ss_family == AF_INET6)
        rc = set_option(srv->fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    return rc;
}

static int inet_bind(ss_server *srv)
{
    int rc = apply_bind_options(srv);
    if (rc < 0)
        return rc;
    if (bind(srv->fd, (struct sockaddr *)&srv->addr, srv->addr_len) < 0)
        return -errno;
    socklen_t len = sizeof srv->addr;
    if (getsockname(srv->fd, (struct sockaddr *)&srv->addr, &len) < 0)
        return -errno;
    srv->addr_len = len;
    return 0;
}

static int tcp_activate(ss_server *srv)
{
    return listen(srv->fd, srv->backlog) < 0 ? -errno : 0;
}

static int tcp_get_request(ss_server *srv, ss_request **out)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int fd = ss__accept(srv->fd, (struct sockaddr *)&peer, &len);
    if (fd < 0)
        return fd;
#if defined(SO_NOSIGPIPE)
    set_option(fd, SOL_SOCKET, SO_NOSIGPIPE, 1); /* systems without MSG_NOSIGNAL */
#endif
    *out = ss__request_new(srv, fd, (struct sockaddr *)&peer, len);
    if (*out == NULL) {
        close(fd);
        return -ENOMEM;
    }
    return 0;
}

static ssize_t stream_recv(ss_request *req, void *buf, size_t size)
{
    return ss__io_recv(req->fd, buf, size, req->timeout_ms, req->server);
}

static int stream_send_all(ss_request *req, const void *buf, size_t size)
{
    return ss__io_send_all(req->fd, buf, size, req->timeout_ms, req->server);
}

static int stream_complete(ss_request *req)
{
    (void)req; /* everything was sent as the handler wrote it */
    return 0;
}

/* Python's shutdown_request: tell the peer we are done writing, then
 * release the descriptor. */
static void stream_shutdown_request(ss_request *req)
{
    shutdown(req->fd, SHUT_WR);
    ss__close(&req->fd);
}

static void inet_close(ss_server *srv)
{
    ss__close(&srv->fd);
}

static const ss__transport tcp_transport = {
    .scheme = SS__SCHEME_TCP,
    .open = tcp_open,
    .bind = inet_bind,
    .activate = tcp_activate,
    .get_request = tcp_get_request,
    .recv = stream_recv,
    .send_all = stream_send_all,
    .complete = stream_complete,
    .shutdown_request = stream_shutdown_request,
    .close = inet_close,
};

const ss__transport *ss__transport_tcp(void)
{
    return &tcp_transport;
}
