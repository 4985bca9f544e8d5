/* Datagram requests, shared by UDP and Unix datagram (Python's
 * DatagramRequestHandler, done once for every handler): each datagram is
 * one request; the handler reads the packet through ss_request_recv() and
 * writes its reply through ss_request_send_all(); the reply is sent with one
 * sendto() after finish. A truncated datagram is detected (MSG_TRUNC) and
 * reported instead of being passed on silently cut. */
#include "transport/transport.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <linux/sockios.h> /* SIOCOUTQ */
#include <sys/ioctl.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* unconnected datagram sockets raise no SIGPIPE anyway */
#endif

/* Bounds for ss_server_set_max_packet_size: catch nonsense like (size_t)-1. */
#define MAX_PACKET_LIMIT ((size_t)16 << 20)
/* A reply may be as large as the largest datagram we accept, and at least
 * the largest UDP payload; beyond that send_all fails with -EMSGSIZE at
 * once instead of growing memory for a datagram no socket would send. */
#define REPLY_FLOOR ((size_t)65536)

int ss__dgram_get_request(ss__listener *l, ss__arrival *out)
{
    const ss_server *srv = l->server;
    /* Allocate before receiving, so running out of memory leaves the
     * datagram queued for the next attempt. */
    *out = (ss__arrival){.fd = l->fd, .packet = malloc(srv->max_packet_size)};
    if (out->packet == NULL)
        return -ENOMEM;
    struct iovec iov = {.iov_base = out->packet, .iov_len = srv->max_packet_size};
    struct msghdr msg = {
        .msg_name = &out->peer, .msg_namelen = sizeof out->peer, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(l->fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
        int err = -errno;
        free(out->packet);
        out->packet = NULL;
        return err;
    }
    out->peer_len = msg.msg_namelen;
    out->truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    out->packet_len = (size_t)n;
    return 0;
}

/* One sendto() that never waits (a peer with a full queue just misses the
 * refusal), and none to a peer with no address to reply to. */
void ss__dgram_turn_away(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len)
{
    const struct sockaddr *peer = (const struct sockaddr *)&arrival->peer;
    if (len > 0 && !ss__sockaddr_unnamed(peer, arrival->peer_len)) {
        ssize_t sent =
            sendto(l->fd, reply, len, MSG_NOSIGNAL | MSG_DONTWAIT, peer, arrival->peer_len);
        (void)sent; /* best effort, as for a stream */
    }
    free(arrival->packet);
    arrival->packet = NULL;
}

/* Reads the packet like a stream: its bytes, then 0. A truncated packet
 * gives SS_ETRUNCATED on every call, so a handler that only uses recv can
 * never act on a cut-off message by mistake (ss_request_packet still shows
 * what arrived). */
ssize_t ss__dgram_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size)
{
    (void)spill; /* the packet is in memory: nothing to save by spilling */
    (void)spill_size;
    if (req->dgram.truncated)
        return SS_ETRUNCATED;
    size_t left = req->dgram.packet_len - req->dgram.read_pos;
    size_t n = size < left ? size : left;
    memcpy(buf, req->dgram.packet + req->dgram.read_pos, n);
    req->dgram.read_pos += n;
    return (ssize_t)n;
}

static size_t reply_limit(const ss_request *req)
{
    size_t max = req->server->max_packet_size;
    return max > REPLY_FLOOR ? max : REPLY_FLOOR;
}

int ss__dgram_send_all(ss_request *req, const void *buf, size_t size)
{
    size_t len = req->dgram.reply_len;
    if (size > reply_limit(req) - len)
        return -EMSGSIZE;
    if (len + size > req->dgram.reply_cap) {
        size_t cap = req->dgram.reply_cap != 0 ? req->dgram.reply_cap : 1024;
        while (cap < len + size)
            cap *= 2;
        unsigned char *grown = realloc(req->dgram.reply, cap);
        if (grown == NULL)
            return -ENOMEM;
        req->dgram.reply = grown;
        req->dgram.reply_cap = cap;
    }
    if (size > 0)
        memcpy(req->dgram.reply + len, buf, size);
    req->dgram.reply_len = len + size;
    return 0;
}

/* ---- the send buffer every reply shares ----
 *
 * Linux charges an AF_UNIX datagram to the *sending* socket's buffer until
 * its receiver reads it (truesize: about 2.3 KiB for 1 KiB of payload).
 * A receiver's queue is capped (net.unix.max_dgram_qlen, 10 by default),
 * except for a receiver connected to the sender: a client that connected
 * to the server socket and never reads takes replies until the server's
 * buffer is full, and then every sendto fails with EAGAIN whatever its
 * destination (measured: 93 replies of 1 KiB fill the default 208 KiB).
 * So one such client would starve all others. Two defences:
 *   - while the buffer is more than half full, each peer may have at most
 *     an eighth of it charged to replies sent to it since; beyond that its
 *     replies fail at once with -ENOBUFS (the other half stays for peers
 *     that read, until the buffer is back under a quarter);
 *   - EAGAIN with the server's own buffer full fails that reply at once
 *     with -ENOBUFS, instead of waiting for room that only the peers'
 *     reads can make: waiting is kept for a receiver's full queue.
 * UDP is not affected (a datagram leaves the sender's buffer when it is
 * delivered, and a full receiver drops it), so there the buffer stays
 * low and neither rule triggers. */

#define REPLY_OVERHEAD 1280            /* what the kernel adds per datagram, about */
#define SAMPLE_BYTES   ((size_t)16384) /* measure the buffer after this many reply bytes */

typedef struct buffer_use {
    long queued; /* bytes charged to the socket's send buffer */
    long size;   /* its size (SO_SNDBUF) */
} buffer_use;

static bool measure_buffer(int fd, buffer_use *use)
{
#if defined(__linux__) && defined(SIOCOUTQ)
    int queued, size;
    socklen_t len = sizeof size;
    if (ioctl(fd, SIOCOUTQ, &queued) < 0 || getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len) < 0)
        return false;
    use->queued = queued;
    use->size = size;
    return true;
#else
    (void)fd;
    (void)use;
    return false; /* no way to tell: replies wait for room as before */
#endif
}

static size_t reply_cost(const ss_request *req)
{
    return req->dgram.reply_len + REPLY_OVERHEAD;
}

/* The reply failed with EAGAIN: is our own buffer what is full? */
static bool own_buffer_full(const ss_request *req)
{
    buffer_use use;
    return measure_buffer(req->fd, &use) && use.queued + (long)reply_cost(req) >= use.size;
}

static uint64_t peer_hash(const ss_request *req)
{
    const unsigned char *p = (const unsigned char *)&req->peer;
    uint64_t h = 14695981039346656037u; /* FNV-1a */
    for (socklen_t i = 0; i < req->peer_len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h | 1; /* 0 marks a free entry */
}

static void lock_budget(struct ss__reply_budget *b)
{
    while (atomic_flag_test_and_set_explicit(&b->lock, memory_order_acquire))
        sched_yield();
}

static void unlock_budget(struct ss__reply_budget *b)
{
    atomic_flag_clear_explicit(&b->lock, memory_order_release);
}

/* Adds cost to the peer's charge and returns the new charge. A peer not
 * in the table takes the entry with the smallest charge, starting at 0:
 * a heavy user is the last to be forgotten, an innocent one is never
 * blamed for another's bytes. */
static size_t charge_peer(struct ss__reply_budget *b, uint64_t peer, size_t cost)
{
    size_t n = sizeof b->peers / sizeof b->peers[0], slot = n, smallest = 0;
    lock_budget(b);
    for (size_t i = 0; i < n && slot == n; i++) {
        if (b->peers[i].peer == peer)
            slot = i;
        else if (b->peers[i].charged < b->peers[smallest].charged)
            smallest = i;
    }
    if (slot == n) {
        slot = smallest;
        b->peers[slot].peer = peer;
        b->peers[slot].charged = 0;
    }
    size_t charged = b->peers[slot].charged += cost;
    unlock_budget(b);
    return charged;
}

static void clear_charges(struct ss__reply_budget *b)
{
    lock_budget(b);
    memset(b->peers, 0, sizeof b->peers);
    unlock_budget(b);
}

/* Measures the buffer every SAMPLE_BYTES of replies, and before every
 * reply while it is under pressure. Returns the buffer's size while under
 * pressure, 0 otherwise. */
static long update_pressure(ss_request *req)
{
    struct ss__reply_budget *b = &req->listener->budget;
    size_t since = atomic_fetch_add(&b->since_sample, reply_cost(req)) + reply_cost(req);
    bool pressure = atomic_load(&b->pressure);
    buffer_use use;
    if ((!pressure && since < SAMPLE_BYTES) || !measure_buffer(req->fd, &use))
        return 0;
    atomic_store(&b->since_sample, 0);
    bool now = use.queued >= use.size / (pressure ? 4 : 2);
    if (pressure && !now)
        clear_charges(b);
    atomic_store(&b->pressure, now);
    return now ? use.size : 0;
}

/* -ENOBUFS for a peer that already holds its share of a pressed buffer. */
static int admit_reply(ss_request *req)
{
    long size = update_pressure(req);
    if (size == 0)
        return 0;
    size_t charged = charge_peer(&req->listener->budget, peer_hash(req), reply_cost(req));
    return charged > (size_t)size / 8 ? -ENOBUFS : 0;
}

/* One sendto() of the whole reply. EAGAIN cannot be awaited with poll():
 * for an unconnected Unix datagram socket the kernel reports "writable"
 * while the *receiver's* queue is full. So back off (1 ms doubling to
 * 64 ms) until the request timeout, or indefinitely without one, as a
 * blocking send would; but not when our own buffer is full (see above).
 * A datagram moves whole or not at all, so the deadline is counted once
 * from the first attempt; signals do not move it. */
static int send_reply(ss_request *req)
{
    int64_t deadline = ss__deadline(req->timeout_ms);
    int wait_ms = 1;
    for (;;) {
        if (sendto(req->fd, req->dgram.reply, req->dgram.reply_len, MSG_NOSIGNAL,
                   (const struct sockaddr *)&req->peer, req->peer_len) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (own_buffer_full(req))
            return -ENOBUFS;
        if (deadline >= 0 && ss__now_ms() >= deadline)
            return -ETIMEDOUT;
        /* on a pool fiber: parked, the worker serves others; on the sync
         * dispatcher a stop request ends the wait (-ECANCELED) */
        int rc = ss__io_pause(wait_ms, req->waiter, &req->server->stop);
        if (rc < 0)
            return rc;
        wait_ms = wait_ms < 64 ? wait_ms * 2 : 64;
    }
}

/* After finish: an empty reply is not sent unless the handler asked for it
 * (Python always sends one, which makes a client that expects no answer
 * receive a stray empty datagram). */
int ss__dgram_flush_reply(ss_request *req)
{
    if (req->dgram.reply_len == 0 && !req->dgram.force_reply)
        return 0;
    if (ss__sockaddr_unnamed((const struct sockaddr *)&req->peer, req->peer_len))
        return SS_EUNNAMEDPEER;
    int rc = admit_reply(req);
    return ss__request_note_io(req, rc < 0 ? rc : send_reply(req));
}

/* Room for 16 of the largest replies, so that big replies to peers that
 * read promptly do not find it full; the kernel caps what it grants at
 * net.core.wmem_max (and doubles it). Only ever raised. */
void ss__dgram_size_send_buffer(ss__listener *l)
{
    const ss_server *srv = l->server;
    int size;
    socklen_t len = sizeof size;
    size_t limit = srv->max_packet_size > REPLY_FLOOR ? srv->max_packet_size : REPLY_FLOOR;
    size_t want = 16 * (limit + REPLY_OVERHEAD);
    if (want > INT_MAX / 2)
        want = INT_MAX / 2;
    if (getsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &size, &len) == 0 && (size_t)size < want) {
        int value = (int)want;
        setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof value); /* a wish: may be capped */
    }
}

void ss__dgram_end_request(ss_request *req)
{
    free(req->dgram.packet);
    free(req->dgram.reply);
    req->dgram.packet = req->dgram.reply = NULL;
    req->fd = -1; /* the server's socket: not ours to close */
}

void ss__dgram_interrupt(ss_request *req)
{
    (void)req; /* the packet is in memory; a reply waits at most the request timeout */
}

/* ---- public API ---- */

static bool has_datagram_listener(const ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i]->transport->datagram)
            return true;
    return false;
}

SS_API int ss_server_set_max_packet_size(ss_server *srv, size_t size)
{
    if (!has_datagram_listener(srv) || size == 0 || size > MAX_PACKET_LIMIT)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    srv->max_packet_size = size;
    for (int i = 0; srv->state == SS__BOUND && i < srv->nlisteners; i++)
        if (srv->listeners[i]->transport->sender_holds_replies)
            ss__dgram_size_send_buffer(srv->listeners[i]);
    return 0;
}

SS_API const void *ss_request_packet(const ss_request *req, size_t *len)
{
    if (len != NULL)
        *len = req->dgram.packet_len;
    return req->dgram.active ? req->dgram.packet : NULL;
}

SS_API bool ss_request_truncated(const ss_request *req)
{
    return req->dgram.truncated;
}

SS_API int ss_request_force_reply(ss_request *req)
{
    if (!req->dgram.active)
        return -ENOTSUP;
    req->dgram.force_reply = true;
    return 0;
}
