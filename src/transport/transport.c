/* The slots the transport tables share: listen/accept and per-connection I/O for stream transports
 * (TCP, Unix stream). Datagram slots live in transport/datagram.c. Also a
 * request's peer as text, here so that every layer that logs a client
 * (filters, dispatchers, core) can name it. */
#include "transport/transport.h"

#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

int ss__set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Server sockets are non-blocking, so a client that resets (or a datagram
 * that is dropped) between poll() and accept()/recvmsg() cannot leave the
 * loop stuck in that call. */
int ss__open_server_socket(ss__listener *l, int domain, int socktype)
{
    int fd = ss__socket(domain, socktype, 0);
    if (fd < 0)
        return fd;
    int rc = ss__set_nonblocking(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    l->fd = fd;
    return 0;
}

int ss__activate_listen(ss__listener *l)
{
    return listen(l->fd, l->server->backlog) < 0 ? -errno : 0;
}

int ss__activate_none(ss__listener *l)
{
    (void)l; /* datagram sockets receive as soon as they are bound */
    return 0;
}

int ss__stream_get_request(ss__listener *l, ss__arrival *out)
{
    *out = (ss__arrival){.fd = -1, .peer_len = sizeof out->peer};
    int fd = ss__accept(l->fd, (struct sockaddr *)&out->peer, &out->peer_len);
    if (fd < 0)
        return fd;
#if defined(SO_NOSIGPIPE)
    int on = 1; /* systems without MSG_NOSIGNAL */
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
    out->fd = fd;
    return 0;
}

int ss__request_note_io(ss_request *req, int rc)
{
    if (rc == -ETIMEDOUT)
        atomic_store(&req->timed_out, true);
    if (rc == -ECANCELED)
        atomic_store(&req->cancelled, true);
    return rc;
}

/* With a request timeout, a thread lets the kernel time its blocking
 * recv (SO_RCVTIMEO) rather than poll() before each call: one system call
 * per read, as without a timeout. The option is set once per request, and
 * again only when its timeout changes. A recv returns as soon as any byte
 * arrives, so the kernel's timeout is exactly "no progress for this long"
 * (io/io.c takes over with its own deadline after a signal). Sends are never
 * kernel-timed (see ss__io_send_all). A timeout of 0 ("do not wait")
 * cannot be said that way (0 there means forever); a waiter that may not
 * block (a fiber, the sync waiter watching the wake-up pipe) polls instead. */
static bool kernel_timed(ss_request *req)
{
    if (req->timeout_ms <= 0 || !req->waiter->may_block)
        return false;
    if (req->socket_timeout_ms == req->timeout_ms)
        return true;
    struct timeval tv = {.tv_sec = req->timeout_ms / 1000,
                         .tv_usec = (req->timeout_ms % 1000) * 1000};
    if (setsockopt(req->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        return false; /* poll() then bounds the wait, as before */
    req->socket_timeout_ms = req->timeout_ms;
    return true;
}

/* The sync stop grace (limits.h, ss_server_set_stop_grace) covers every
 * wait of a busy request: its reads, but for an idle wait (a new message
 * after a complete exchange), and all its writes. */
ssize_t ss__stream_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size)
{
    bool timed = kernel_timed(req);
    bool wait_first = req->recv_wait_first; /* one read's hint (filter/tls_io.c) */
    req->recv_wait_first = false;
    ssize_t n = ss__io_recv(req->fd, buf, size, spill, spill_size, req->timeout_ms, timed,
                            req->waiter, &req->server->stop, !req->idle_read, wait_first);
    if (n == 0 && size + spill_size > 0)
        atomic_store_explicit(&req->peer_ended, true, memory_order_relaxed);
    return n < 0 ? ss__request_note_io(req, (int)n) : n;
}

int ss__stream_send_all(ss_request *req, const void *buf, size_t size)
{
    int rc =
        ss__io_send_all(req->fd, buf, size, req->timeout_ms, req->waiter, &req->server->stop, true);
    if (rc < 0)
        req->reply_lost = true;
    return ss__request_note_io(req, rc);
}

int ss__stream_flush_reply(ss_request *req)
{
    (void)req; /* everything was sent as the handler wrote it */
    return 0;
}

/* Python's shutdown_request: tell the peer we are done writing, then
 * release the descriptor; with a lingering close if the peer may still be
 * sending, or a reset would destroy the end of our reply (io/linger.c). A
 * reply already lost (a send failed or timed out) has nothing left to
 * protect: lingering would only hold a client that does not read. */
static void close_stream(ss__listener *l, int *fd, bool reply_lost, bool in_place, bool peer_ended)
{
    if (*fd < 0)
        return;
    if (reply_lost) {
        ss__close(fd);
        return;
    }
    ss__linger_result how = ss__linger_close(*fd, l->transport->acked_sends, in_place, peer_ended);
    ss_server *srv = l->server;
    *fd = -1;
    if (how == SS__LINGERED)
        atomic_fetch_add(&srv->count->lingering_closes, 1);
    else if (how == SS__LINGER_REFUSED)
        atomic_fetch_add(&srv->count->linger_overflows, 1);
}

/* A read of the request returned the peer's end of stream, so nothing is
 * left unread and nothing more can come (io/linger.c says why that makes
 * a plain close safe). Not when the 0 may have been ours: the drain's
 * interrupt shuts the socket down for reading too, and the peer may still
 * be sending; nor once the application had the descriptor, which it may
 * have read from, shut down or duplicated (then only shutdown() sends
 * our FIN now). */
static bool peer_ended(const ss_request *req)
{
    return atomic_load_explicit(&req->peer_ended, memory_order_relaxed) &&
           !atomic_load(&req->shut_here) &&
           !atomic_load_explicit(&req->fd_lent, memory_order_relaxed);
}

void ss__stream_end_request(ss_request *req)
{
    close_stream(req->listener, &req->fd, req->reply_lost, req->linger_in_place, peer_ended(req));
}

/* The refusal is sent with a timeout of 0: whatever the socket takes at
 * once. Its close is a request's close: a lingering one if the client may
 * still be sending, so a reset cannot destroy the refusal. */
void ss__stream_turn_away(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len)
{
    bool lost =
        len > 0 && ss__io_send_all(arrival->fd, reply, len, 0, &ss__waiter_thread, NULL, false) < 0;
    close_stream(l, &arrival->fd, lost, false, false);
}

/* Both directions: a blocked recv returns 0 (also a blocking one with no
 * timeout: poll and recv both wake), a send fails with EPIPE. The
 * descriptor stays open for the request to close as usual. */
void ss__stream_interrupt(ss_request *req)
{
    atomic_store(&req->shut_here, true); /* before: a read's 0 may be ours from now on */
    shutdown(req->fd, SHUT_RDWR);
}

/* The read side only: Linux wakes a blocked recv, poll and epoll
 * (EPOLLIN | EPOLLRDHUP) on TCP and Unix stream sockets alike, and the
 * kernel still sends what is written afterwards, then the FIN at close. */
void ss__stream_end_reads(ss_request *req)
{
    atomic_store(&req->shut_here, true); /* the read's 0 is ours: the peer may still send */
    shutdown(req->fd, SHUT_RD);
}

int ss__client_key_none(const ss__arrival *arrival, ss__client_key *key)
{
    (void)arrival;
    (void)key;
    return -ENOTSUP;
}

/* ---- the peer's name ---- */

/* The name, cut to the cache if longer (a Unix name of escaped bytes,
 * each \xHH) and then ending in "...", so a cut name shows it is one. */
static void format_name(ss_request *r)
{
    const struct sockaddr *sa = (const struct sockaddr *)&r->peer;
    if (ss__format_peer(sa, r->peer_len, r->peer_name, sizeof r->peer_name) != -ENOSPC)
        return;
    char whole[4 * sizeof((struct sockaddr_un *)NULL)->sun_path + 2];
    if (ss__format_peer(sa, r->peer_len, whole, sizeof whole) < 0)
        return;
    size_t keep = sizeof r->peer_name - 4;
    memcpy(r->peer_name, whole, keep);
    memcpy(r->peer_name + keep, "...", 4);
}

/* Formats the name once, whichever thread asks first; another thread
 * asking meanwhile waits the few microseconds it takes. The request is
 * never a const object (calloc'd), so writing its name through a const
 * pointer is sound: the name is a cache of peer, not part of its value. */
const char *ss__request_peer_name(const ss_request *req)
{
    ss_request *r = (ss_request *)(uintptr_t)req;
    unsigned char state = atomic_load_explicit(&r->peer_name_state, memory_order_acquire);
    if (state == SS__NAME_READY)
        return r->peer_name;
    unsigned char unnamed = SS__NAME_UNNAMED;
    if (atomic_compare_exchange_strong(&r->peer_name_state, &unnamed, SS__NAME_FORMATTING)) {
        format_name(r);
        atomic_store_explicit(&r->peer_name_state, SS__NAME_READY, memory_order_release);
        return r->peer_name;
    }
    while (atomic_load_explicit(&r->peer_name_state, memory_order_acquire) != SS__NAME_READY)
        sched_yield();
    return r->peer_name;
}
