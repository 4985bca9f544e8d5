/* Datagram requests, shared by UDP and Unix datagram (Python's
 * DatagramRequestHandler, done once for every handler): each datagram is
 * one request; the handler reads the packet through ss_request_recv() and
 * writes its reply through ss_request_send_all(); the reply is sent with one
 * sendto() after finish. A truncated datagram is detected (MSG_TRUNC) and
 * reported instead of being passed on silently cut. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* unconnected datagram sockets raise no SIGPIPE anyway */
#endif

/* Bounds for ss_server_set_max_packet_size: catch nonsense like (size_t)-1. */
#define MAX_PACKET_LIMIT ((size_t)16 << 20)
/* A reply may be as large as the largest datagram we accept, and at least
 * the largest UDP payload; beyond that send_all fails with -EMSGSIZE at
 * once instead of growing memory for a datagram no socket would send. */
#define REPLY_FLOOR ((size_t)65536)

int ss__dgram_get_request(ss_server *srv, ss_request **out)
{
    /* Allocate before receiving, so running out of memory leaves the
     * datagram queued for the next attempt. */
    unsigned char *packet = malloc(srv->max_packet_size);
    if (packet == NULL)
        return -ENOMEM;
    struct sockaddr_storage peer;
    struct iovec iov = {.iov_base = packet, .iov_len = srv->max_packet_size};
    struct msghdr msg = {
        .msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(srv->fd, &msg, MSG_DONTWAIT);
    ss_request *req = NULL;
    int rc = n < 0 ? -errno : 0;
    if (rc == 0) {
        req = ss__request_new(srv, srv->fd, (struct sockaddr *)&peer, msg.msg_namelen);
        rc = req == NULL ? -ENOMEM : 0;
    }
    if (rc < 0) {
        free(packet);
        return rc;
    }
    req->dgram.active = true;
    req->dgram.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
    req->dgram.packet = packet;
    req->dgram.packet_len = (size_t)n;
    *out = req;
    return 0;
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

/* One sendto() of the whole reply. EAGAIN cannot be awaited with poll():
 * for an unconnected Unix datagram socket the kernel reports "writable"
 * while the *receiver's* queue is full. So back off (1 ms doubling to
 * 64 ms) until the request timeout, or indefinitely without one, as a
 * blocking send would. A datagram moves whole or not at all, so the
 * deadline is counted once from the first attempt; signals do not move it. */
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
        if (deadline >= 0 && ss__now_ms() >= deadline)
            return -ETIMEDOUT;
        /* on a pool fiber: parked, the worker serves others; on the sync
         * dispatcher a stop request ends the wait (-ECANCELED) */
        int rc = ss__io_pause(wait_ms, ss__request_stop(req));
        if (rc < 0)
            return rc;
        wait_ms = wait_ms < 64 ? wait_ms * 2 : 64;
    }
}

/* After finish: an empty reply is not sent unless the handler asked for it
 * (Python always sends one, which makes a client that expects no answer
 * receive a stray empty datagram). */
int ss__dgram_complete(ss_request *req)
{
    if (req->dgram.reply_len == 0 && !req->dgram.force_reply)
        return 0;
    if (ss__sockaddr_unnamed((const struct sockaddr *)&req->peer, req->peer_len))
        return SS_EUNNAMEDPEER;
    return ss__request_note_io(req, send_reply(req));
}

void ss__dgram_shutdown_request(ss_request *req)
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

static bool is_datagram_server(const ss_server *srv)
{
    /* Identified by the slot, not the scheme: true of any datagram table. */
    return srv->transport->get_request == ss__dgram_get_request;
}

SS_API int ss_server_set_max_packet_size(ss_server *srv, size_t size)
{
    if (!is_datagram_server(srv) || size == 0 || size > MAX_PACKET_LIMIT)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    srv->max_packet_size = size;
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
