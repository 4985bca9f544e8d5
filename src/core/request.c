/* One request's life: setup -> handle -> finish, the first error routed
 * once to handle_error, then the transport's end_request. Also the request's public
 * accessors and I/O calls, which go through the listener's transport so a
 * handler never depends on what kind of socket it is talking to. */
#include "core/core.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The server's list of the requests alive in this process, for drain. */
static void link_live(ss_request *req)
{
    ss_server *srv = req->server;
    pthread_mutex_lock(&srv->live_lock);
    req->link.prev = &srv->live;
    req->link.next = srv->live.next;
    srv->live.next->prev = &req->link;
    srv->live.next = &req->link;
    pthread_mutex_unlock(&srv->live_lock);
}

/* The client's address (named lazily: ss__request_peer_name) and, for a
 * datagram, its packet, which the request now owns. */
static void take_arrival(ss_request *req, ss__arrival *arrival)
{
    req->listener = arrival->listener;
    req->fd = arrival->fd;
    req->peer = arrival->peer;
    req->peer_len = arrival->peer_len;
    req->dgram.active = req->listener->transport->datagram;
    req->dgram.truncated = arrival->truncated;
    req->dgram.packet = arrival->packet;
    req->dgram.packet_len = arrival->packet_len;
    arrival->packet = NULL;
}

/* On a pool worker's own loop (it accepted the client and starts it on a
 * fiber at once), the request lives in the top page of that fiber's
 * stack (ss__sched_carve); anywhere else, on the heap. */
static ss_request *request_alloc(void)
{
    ss_request *req = ss__sched_carve(sizeof *req);
    if (req != NULL) {
        req->carved = true;
        return req;
    }
    return calloc(1, sizeof *req);
}

ss_request *ss__request_new(ss_server *srv, ss__arrival *arrival, const ss__place *place)
{
    ss_request *req = request_alloc();
    if (req == NULL)
        return NULL;
    req->server = srv;
    take_arrival(req, arrival);
    req->timeout_ms = atomic_load(&srv->request_timeout_ms);
    req->socket_timeout_ms = -1;
    req->waiter = &ss__waiter_thread; /* until a dispatcher starts it otherwise */
    atomic_init(&req->timed_out, false);
    atomic_init(&req->cancelled, false);
    ss__idle_init(req);
    ss__bufio_init(req);
    ss__server_ref(srv);
    req->place = *place; /* active: counted from admission until the request ends */
    link_live(req);
    return req;
}

/* Must come before the request's socket is closed: see ss__requests_interrupt. */
static void unlink_live(ss_request *req)
{
    ss_server *srv = req->server;
    pthread_mutex_lock(&srv->live_lock);
    req->link.prev->next = req->link.next;
    req->link.next->prev = req->link.prev;
    pthread_mutex_unlock(&srv->live_lock);
}

/* A request leaves the list, under this lock, before its descriptor is
 * closed; so every descriptor seen here is still the request's own, and
 * never a number the system has since given to some other file. */
void ss__requests_interrupt(ss_server *srv)
{
    pthread_mutex_lock(&srv->live_lock);
    for (ss__link *l = srv->live.next; l != &srv->live; l = l->next) {
        ss_request *req = (ss_request *)l; /* link is the first member */
        req->listener->transport->interrupt(req);
    }
    pthread_mutex_unlock(&srv->live_lock);
}

static void report(ss_request *req, int err)
{
    ss_server *srv = req->server;
    atomic_fetch_add(&srv->count->handler_errors, 1);
    srv->handle_error(srv, req, err, srv->data);
}

void ss__request_fail(ss_request *req, int err)
{
    report(req, err);
}

/* Sends what the handler left in the writer, as Python's
 * StreamRequestHandler.finish does. A failure here almost always means the
 * client took its answer and left (bpo-14574), which is not the handler's
 * fault: Python swallows it. We do not lose it, but report it as
 * SS_EFINALFLUSH, which the default handle_error logs at debug level, and
 * the request still counts as handled. */
static void final_flush(ss_request *req, int handler_err)
{
    if (ss__bufio_final_flush(req) < 0 && handler_err >= 0)
        report(req, SS_EFINALFLUSH);
}

static void count_timeout(ss_request *req)
{
    if (atomic_load(&req->timed_out))
        atomic_fetch_add(&req->server->count->request_timeouts, 1);
}

/* Who the client is for the per-client limit, once a filter has named it
 * (PROXY): an IP address, or what the transport says of its own peer
 * (a LOCAL header, or AF_UNIX: the uid on a Unix listener). */
static int real_client_key(ss_request *req, ss__client_key *key)
{
    if (ss__ip_client_key(&req->peer, key) == 0)
        return 0;
    ss__arrival self = {
        .listener = req->listener, .fd = req->fd, .peer = req->peer, .peer_len = req->peer_len};
    return req->listener->transport->client_key(&self, key);
}

/* The request's place moves to its real client: in the dispatcher's
 * counts if it keeps them (a forked child, out of this table's sight),
 * else in the core's table. False if the client is at its limit. */
static bool claim_real_client(ss_request *req, const ss__client_key *key)
{
    ss_server *srv = req->server;
    int rc = srv->dispatch->claim_client(srv, key);
    return rc == -ENOTSUP ? ss__place_move(srv, &req->place, key) : rc > 0;
}

/* With a filter naming the client, admission could not check it: the
 * per-client limit and verify_request run here, on the real client. */
static ss__late_refusal admit_real_client(ss_request *req)
{
    ss_server *srv = req->server;
    ss__client_key key = {0};
    if (srv->limits.max_per_client > 0 && real_client_key(req, &key) == 0 && key.len > 0 &&
        !claim_real_client(req, &key))
        return SS__LATE_PER_CLIENT;
    if (!srv->verify_request(srv, req, srv->data))
        return SS__LATE_VERIFY;
    return SS__LATE_NONE;
}

/* The filters open on the handler's thread, before setup. A refusal is
 * the client's doing (no header, a bad one), not the handler's: it is
 * counted apart, handle_error is not called, and the request is neither
 * handled nor failed. Returns false when refused. */
static bool open_filters(ss_request *req)
{
    ss_server *srv = req->server;
    const ss__waiter *serving = req->waiter;
    if (req->open_waiter != NULL)
        req->waiter = req->open_waiter;
    int rc = ss__filters_open(req);
    req->waiter = serving;
    if (rc < 0) {
        if (req->late_refusal == SS__LATE_NONE)
            req->late_refusal = SS__LATE_FILTER;
    } else if (ss__names_client(req->listener)) {
        req->late_refusal = admit_real_client(req);
    }
    ss__count_late_refusal(srv, req->late_refusal);
    return req->late_refusal == SS__LATE_NONE;
}

int ss__request_run(ss_request *req)
{
    if (ss__filtered(req->listener) && !open_filters(req)) {
        count_timeout(req); /* a filter's read timed out: the request's timeout too */
        ss__filters_close(req);
        return 0;
    }
    const ss_handler *h = &req->server->handler;
    void *data = req->server->data;
    int err = h->setup(req, data);
    if (err >= 0) {
        err = h->handle(req, data);
        int finish_err = h->finish(req, data); /* runs whatever handle did */
        if (err >= 0)
            err = finish_err;
        final_flush(req, err); /* before flush_reply: it may feed a datagram reply */
        int reply_err = req->listener->transport->flush_reply(req);
        if (err >= 0)
            err = reply_err;
    }
    ss__filters_close(req); /* after the last byte out, before the socket is shut */
    count_timeout(req);
    if (err < 0) {
        report(req, err);
        return err;
    }
    atomic_fetch_add(&req->server->count->handled, 1);
    return 0;
}

static void request_free(ss_request *req)
{
    ss_server *srv = req->server;
    ss__filters_close(req); /* a request whose handler never ran, or a refused one */
    ss__bufio_free(req);
    if (req->carved)
        ss__sched_uncarve(req); /* unless its fiber runs: it goes with that */
    else
        free(req);
    ss__server_unref(srv);
}

void ss__request_end(ss_request *req)
{
    ss_server *srv = req->server;
    unlink_live(req);
    req->listener->transport->end_request(req);
    atomic_fetch_add(&srv->count->closed, 1);
    /* sync: a handler the drain ran itself, cut short by its deadline or a
     * second stop (the other dispatchers' are counted as drain interrupts) */
    if (atomic_load(&req->cancelled) && atomic_load(&srv->draining))
        atomic_fetch_add(&srv->count->interrupted, 1);
    if (ss__place_give_back(srv, &req->place))
        ss__server_wake(srv);
    request_free(req);
}

void ss__request_hand_off(ss_request *req, ss__place *place)
{
    unlink_live(req);
    /* A datagram request's end_request only frees its buffers and
     * leaves the server's socket alone: exactly the parent's part. */
    if (req->listener->transport->replies_via_listener)
        req->listener->transport->end_request(req);
    else
        ss__close(&req->fd);
    *place = req->place;
    request_free(req);
}

SS_API ss_server *ss_request_server(const ss_request *req)
{
    return req->server;
}

/* A lent descriptor may be duplicated or shut down by its borrower: the
 * request's close then takes no shortcut (transport.c's close_stream).
 * The request is never a const object (calloc'd), so the flag may be set
 * through a const pointer. */
SS_API int ss_request_fileno(const ss_request *req)
{
    ss_request *r = (ss_request *)(uintptr_t)req;
    atomic_store_explicit(&r->fd_lent, true, memory_order_relaxed);
    return req->fd;
}

SS_API const struct sockaddr *ss_request_client_address(const ss_request *req, socklen_t *len)
{
    if (len != NULL)
        *len = req->peer_len;
    return (const struct sockaddr *)&req->peer;
}

SS_API const char *ss_request_client_name(const ss_request *req)
{
    return ss__request_peer_name(req);
}

SS_API void ss_request_set_data(ss_request *req, void *data)
{
    req->data = data;
}

SS_API void *ss_request_data(const ss_request *req)
{
    return req->data;
}

SS_API void ss_request_set_timeout(ss_request *req, int timeout_ms)
{
    req->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

/* recv and send_all stay coherent with the stream reader and writer
 * (core/bufio.c): bytes already read ahead come first, output already
 * buffered goes first. Both cost one test when the buffers are unused. */
SS_API ssize_t ss_request_recv(ss_request *req, void *buf, size_t size)
{
    return ss__bufio_recv(req, buf, size);
}

SS_API int ss_request_send_all(ss_request *req, const void *buf, size_t size)
{
    int rc = ss__bufio_flush(req);
    if (rc == 0)
        rc = ss__filtered_send_all(req, buf, size);
    if (rc == 0 && size > 0)
        ss__bufio_note_written(req);
    return rc;
}
