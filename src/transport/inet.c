/* TCP and UDP over IPv4 and IPv6: name resolution, bind-time options and
 * the two tables. Stream I/O is in transport/transport.c, datagram I/O in
 * transport/datagram.c. */
#include "transport/transport.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

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
    if (host != NULL && ss__is_localhost(host))
        host = "127.0.0.1"; /* IPv4, as for any name with both families */
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

/* Resolves the URL for `socktype` and creates the (unbound) socket. */
static int inet_open(ss_server *srv, int socktype)
{
    int rc = resolve(srv, socktype);
    return rc < 0 ? rc : ss__open_server_socket(srv, srv->addr.ss_family, socktype);
}

static int tcp_open(ss_server *srv)
{
    return inet_open(srv, SOCK_STREAM);
}

static int udp_open(ss_server *srv)
{
    srv->max_packet_size = 8192; /* Python's UDPServer.max_packet_size */
    return inet_open(srv, SOCK_DGRAM);
}

static int apply_bind_options(ss_server *srv, int socktype)
{
    int rc = 0;
    /* Only for TCP, where it skips TIME_WAIT. On UDP (Linux) it would let
     * a second live server bind the same port and steal its datagrams;
     * Python's UDPServer leaves it off too. */
    if (srv->reuse_address && socktype == SOCK_STREAM)
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

static int inet_bind(ss_server *srv, int socktype)
{
    int rc = apply_bind_options(srv, socktype);
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

static int tcp_bind(ss_server *srv)
{
    return inet_bind(srv, SOCK_STREAM);
}

static int udp_bind(ss_server *srv)
{
    return inet_bind(srv, SOCK_DGRAM);
}

/* The shared accept, plus what only TCP connections have. */
static int tcp_get_request(ss_server *srv, ss__arrival *out)
{
    int rc = ss__stream_get_request(srv, out);
    if (rc == 0 && atomic_load(&srv->tcp_nodelay))
        set_option(out->fd, IPPROTO_TCP, TCP_NODELAY, 1); /* a hint: failure is harmless */
    return rc;
}

/* The client is its IP address (base/address.c). */
static int inet_client_key(const ss__arrival *arrival, ss__client_key *key)
{
    return ss__ip_client_key(&arrival->peer, key);
}

static void inet_close(ss_server *srv)
{
    ss__close(&srv->fd);
}

static const ss__transport tcp_transport = {
    .scheme = SS__SCHEME_TCP,
    .acked_sends = true,
    .open = tcp_open,
    .bind = tcp_bind,
    .activate = ss__activate_listen,
    .get_request = tcp_get_request,
    .turn_away = ss__stream_turn_away,
    .recv = ss__stream_recv,
    .send_all = ss__stream_send_all,
    .flush_reply = ss__stream_flush_reply,
    .end_request = ss__stream_end_request,
    .client_key = inet_client_key,
    .interrupt = ss__stream_interrupt,
    .close = inet_close,
};

/* Python's UDPServer: no listen, one datagram per request. */
static const ss__transport udp_transport = {
    .scheme = SS__SCHEME_UDP,
    .datagram = true,
    .replies_via_listener = true,
    .open = udp_open,
    .bind = udp_bind,
    .activate = ss__activate_none,
    .get_request = ss__dgram_get_request,
    .turn_away = ss__dgram_turn_away,
    .recv = ss__dgram_recv,
    .send_all = ss__dgram_send_all,
    .flush_reply = ss__dgram_flush_reply,
    .end_request = ss__dgram_end_request,
    .client_key = inet_client_key,
    .interrupt = ss__dgram_interrupt,
    .close = inet_close,
};

const ss__transport *ss__transport_tcp(void)
{
    return &tcp_transport;
}

const ss__transport *ss__transport_udp(void)
{
    return &udp_transport;
}
