/* TCP and UDP over IPv4 and IPv6: name resolution, bind-time options and
 * the two tables. Stream I/O is in transport/transport.c, datagram I/O in
 * transport/datagram.c. */
#include "transport/transport.h"
#include "base/clock.h"

#include <errno.h>
#ifdef __linux__
#include <linux/filter.h>
#endif
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

/* Resolves l->url into l->addr for a socket of the given type. */
static int resolve(ss__listener *l, int socktype)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = socktype,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    const char *host = l->url.host[0] != '\0' ? l->url.host : NULL;
    if (host != NULL && ss__is_localhost(host))
        host = "127.0.0.1"; /* IPv4, as for any name with both families */
    struct addrinfo *list = NULL;
    int gai = getaddrinfo(host, l->url.port, &hints, &list);
    if (gai != 0)
        return resolve_error(gai);
    const struct addrinfo *ai = pick_address(list);
    memcpy(&l->addr, ai->ai_addr, ai->ai_addrlen);
    l->addr_len = ai->ai_addrlen;
    freeaddrinfo(list);
    return 0;
}

static int set_option(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? -errno : 0;
}

/* Resolves the URL for `socktype` and creates the (unbound) socket. */
static int inet_open(ss__listener *l, int socktype)
{
    int rc = resolve(l, socktype);
    return rc < 0 ? rc : ss__open_server_socket(l, l->addr.ss_family, socktype);
}

static int tcp_open(ss__listener *l)
{
    return inet_open(l, SOCK_STREAM);
}

static int udp_open(ss__listener *l)
{
    return inet_open(l, SOCK_DGRAM);
}

static int apply_bind_options(ss__listener *l, int socktype)
{
    const ss_server *srv = l->server;
    int rc = 0;
    /* Only for TCP, where it skips TIME_WAIT. On UDP (Linux) it would let
     * a second live server bind the same port and steal its datagrams;
     * Python's UDPServer leaves it off too. */
    if (srv->reuse_address && socktype == SOCK_STREAM)
        rc = set_option(l->fd, SOL_SOCKET, SO_REUSEADDR, 1);
#ifdef SO_REUSEPORT
    if (rc == 0 && srv->reuse_port)
        rc = set_option(l->fd, SOL_SOCKET, SO_REUSEPORT, 1);
#endif
    /* [::] means every address, IPv4 included, whatever the system
     * default (net.ipv6.bindv6only) says. */
    if (rc == 0 && l->addr.ss_family == AF_INET6)
        rc = set_option(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
    return rc;
}

static int inet_bind(ss__listener *l, int socktype)
{
    int rc = apply_bind_options(l, socktype);
    if (rc < 0)
        return rc;
    if (bind(l->fd, (struct sockaddr *)&l->addr, l->addr_len) < 0)
        return -errno;
    socklen_t len = sizeof l->addr;
    if (getsockname(l->fd, (struct sockaddr *)&l->addr, &len) < 0)
        return -errno;
    l->addr_len = len;
    return 0;
}

static int tcp_bind(ss__listener *l)
{
    return inet_bind(l, SOCK_STREAM);
}

static int udp_bind(ss__listener *l)
{
    return inet_bind(l, SOCK_DGRAM);
}

/* ---- TCP_NODELAY (ss_server_set_tcp_nodelay) ---- */

#ifdef __linux__
/* Linux's accepted TCP sockets inherit TCP_NODELAY from their listener:
 * the kernel makes each connection as a copy of the listening socket,
 * Nagle's setting included, when its handshake completes. So the option
 * is set once on the listener, and a connection needs its own call only
 * while it may have been made before that: from a change of the
 * listener's value until an accept finds the queue empty (whatever was
 * queued before the change has been taken) at least SETTLE_MS after it
 * (a connection the kernel was copying just as the listener changed is
 * in the queue by then). Only on a listener no other process shares
 * (adopted, handed over, or a worker process's): another could change
 * its value under us. */
#define NODELAY_INHERITED 1
#define NODELAY_VALUE     1u
#define NODELAY_SETTLED   2u
#define NODELAY_CHANGE    4u
#define SETTLE_MS         100

static pthread_mutex_t nodelay_lock = PTHREAD_MUTEX_INITIALIZER;

static bool inherits(const ss__listener *l)
{
    return !l->adopted && !l->shared && !l->other_waiters;
}

/* The listener takes `want` for the connections made from now on. Under
 * the lock: the state always says what the last setsockopt set. */
static void set_on_listener(ss__listener *l, bool want)
{
    pthread_mutex_lock(&nodelay_lock);
    unsigned s = atomic_load(&l->nodelay);
    if ((s == 0 || (s & NODELAY_VALUE) != want) &&
        set_option(l->fd, IPPROTO_TCP, TCP_NODELAY, want) == 0) {
        atomic_store(&l->nodelay_changed_ms, ss__now_ms());
        atomic_store(&l->nodelay, ((s | 3u) + 1) | (want ? NODELAY_VALUE : 0));
    }
    pthread_mutex_unlock(&nodelay_lock);
}

/* Before an accept: the state an empty queue would settle, or 0. */
static unsigned settles(const ss__listener *l)
{
    unsigned s = atomic_load(&l->nodelay);
    if (s == 0 || (s & NODELAY_SETTLED))
        return 0;
    return ss__now_ms() - atomic_load(&l->nodelay_changed_ms) >= SETTLE_MS ? s : 0;
}

/* The accept found the queue empty: if the listener has not changed
 * since `s` was read (before that accept), its connections have its value. */
static void settle(ss__listener *l, unsigned s)
{
    if (s != 0)
        atomic_compare_exchange_strong(&l->nodelay, &s, s | NODELAY_SETTLED);
}

/* Whether a connection just accepted came with the value wanted; if
 * not, the listener gets it for the next ones. */
static bool inherited(ss__listener *l, bool want)
{
    if (!inherits(l))
        return false;
    unsigned s = atomic_load(&l->nodelay);
    if (s != 0 && (s & NODELAY_VALUE) == want)
        return (s & NODELAY_SETTLED) != 0;
    if (s != 0 || want)
        set_on_listener(l, want);
    return false;
}
#else
#define NODELAY_INHERITED 0
static unsigned settles(const ss__listener *l)
{
    (void)l;
    return 0;
}
static void settle(ss__listener *l, unsigned s)
{
    (void)l;
    (void)s;
}
static bool inherited(ss__listener *l, bool want)
{
    (void)l;
    (void)want;
    return false;
}
#endif

/* A hint: failure is harmless. Set explicitly when the listener's value
 * may differ (a connection's own default is off). */
static void nodelay_for(ss__listener *l, int fd)
{
    bool want = atomic_load(&l->server->tcp_nodelay);
    if (inherited(l, want))
        return;
    if (want || (NODELAY_INHERITED && atomic_load(&l->nodelay) != 0))
        set_option(fd, IPPROTO_TCP, TCP_NODELAY, want);
}

/* The shared accept, plus what only TCP connections have. */
static int tcp_get_request(ss__listener *l, ss__arrival *out)
{
    unsigned settling = settles(l);
    int rc = ss__stream_get_request(l, out);
    if (rc == 0)
        nodelay_for(l, out->fd);
    else if (rc == -EAGAIN)
        settle(l, settling);
    return rc;
}

/* The client is its IP address (base/address.c). */
static int inet_client_key(const ss__arrival *arrival, ss__client_key *key)
{
    return ss__ip_client_key(&arrival->peer, key);
}

/* How long a TCP handshake under way (SYN-ACK sent) may take to complete
 * and join the queue: a round trip between the balancer and this server,
 * well under this on a LAN or on one machine. Kept short: every client
 * whose SYN comes meanwhile waits for its SYN retry (1 s). A handshake
 * slower than this (a balancer further away) is reset by the close, as
 * without this step. */
#define TCP_SETTLE_MS 10

#ifdef __linux__
/* A socket filter on the listener sees each segment addressed to it, the
 * TCP header first (tcp_filter). This one drops a segment with SYN and
 * without ACK: a new connection's first segment. The rest passes, so the
 * handshakes under way complete (their final ACK) and are accepted. The
 * dropped client retries its SYN after its retransmission time (1 s) and,
 * the listener closed by then, is refused: a failed connect, which a
 * client or a balancer retries. */
int ss__tcp_stop_arrivals(ss__listener *l)
{
    enum { TCP_FLAGS = 13, SYN = 0x02, ACK = 0x10 };
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, TCP_FLAGS),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, SYN | ACK),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYN, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, 0xffffffffu), /* keep the whole segment */
        BPF_STMT(BPF_RET | BPF_K, 0),           /* drop */
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
    if (setsockopt(l->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
        return -errno;
    return TCP_SETTLE_MS;
}
#else
int ss__tcp_stop_arrivals(ss__listener *l)
{
    (void)l;
    return -ENOTSUP; /* a portable way to stop SYNs but keep the queue: none */
}
#endif

static void inet_close(ss__listener *l)
{
    ss__close_published(&l->fd);
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
    .stop_arrivals = ss__tcp_stop_arrivals,
    .interrupt = ss__stream_interrupt,
    .end_reads = ss__stream_end_reads,
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
    .end_reads = ss__dgram_interrupt, /* never idle: nothing to end */
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
