/* Drain's idle close (include/socketserver/limits.h, "idle"): when a
 * drain begins, a request whose handler waits for the first byte of a
 * new message after a complete exchange ends at once, its wait returning
 * end of stream as if the client had closed; one that becomes idle later
 * ends as it begins to wait. nginx and Go close keep-alive connections so.
 *
 * Race-free by a store-then-load on each side (both sequentially
 * consistent): the request marks itself WAITING, then reads the closing
 * flag; the drain sets the flag, then walks the live requests claiming
 * each WAITING one. Whichever comes second sees the other; the one whose
 * compare-and-swap moves WAITING -> CLOSED counts the close and shuts the
 * socket's read side down (shutdown(SHUT_RD): a blocked recv returns 0, a
 * parked fiber wakes; writes still go out, so a filter's close can say
 * goodbye, as TLS's close_notify does). A forked child's waits are out of its parent's sight: there
 * the state and the flag sit in the page they share, and the child's idle waits poll a pipe the
 * parent's drain writes to (dispatch/fork.c). What stays is the race every server has: a message
 * arriving just as its connection is closed is lost, and its client sees the connection end without
 * a reply. */
#include "core/core.h"

#include <errno.h>

SS_API void ss_server_set_drain_close_idle(ss_server *srv, bool on)
{
    atomic_store(&srv->keep_idle, !on);
}

SS_API bool ss_request_idle_closed(const ss_request *req)
{
    return atomic_load(req->idle) == SS__IDLE_CLOSED;
}

void ss__idle_init(ss_request *req)
{
    atomic_init(&req->idle_own, SS__IDLE_BUSY);
    atomic_init(&req->phase, SS__PHASE_FRESH);
    req->idle = &req->idle_own;
    req->closing_idle = &req->server->closing_idle;
    req->idle_watch = -1;
}

static bool claim(atomic_uchar *idle)
{
    unsigned char waiting = SS__IDLE_WAITING;
    return atomic_compare_exchange_strong(idle, &waiting, SS__IDLE_CLOSED);
}

/* The read side only: the request then closes as usual, its filters'
 * close slots first, and a filter's goodbye (TLS's close_notify: RFC
 * 8446, section 6.1) must still reach the client. */
static void close_claimed(ss_request *req)
{
    atomic_fetch_add(&req->server->count->idle_closed, 1);
    req->listener->transport->end_reads(req);
}

bool ss__idle_end(ss_request *req)
{
    unsigned char waiting = SS__IDLE_WAITING;
    return atomic_compare_exchange_strong(req->idle, &waiting, SS__IDLE_BUSY);
}

/* A forked child's idle wait also watches its parent's drain (the parent
 * cannot reach the child's socket): 1 to read now, 0 to end (claimed
 * here), -ETIMEDOUT when the request timeout passes first. */
static int watch_parent(ss_request *req)
{
    int rc = ss__io_wait_either(req->fd, req->idle_watch, req->timeout_ms);
    if (rc == 1)
        return 1;
    if (rc == 2 && claim(req->idle)) {
        close_claimed(req);
        return 0;
    }
    if (!ss__idle_end(req))
        return 0; /* claimed meanwhile */
    if (rc == -ETIMEDOUT)
        atomic_store(&req->timed_out, true);
    return rc == 2 ? 1 : rc;
}

/* Idle requests are being closed: a drain began, or (sync, whose stop
 * ends an idle wait at once: limits.h, the stop grace) a stop is pending,
 * unless the application keeps idle requests. */
static bool closing(const ss_request *req)
{
    if (atomic_load(req->closing_idle))
        return true;
    ss_server *srv = req->server;
    return req->waiter->stop_cancels && !atomic_load(&srv->keep_idle) &&
           ss__stop_requested(&srv->stop);
}

/* A request already closed stays closed. One that begins to wait while
 * idle requests are being closed first looks whether its client has
 * already sent the next message (or closed): then it is busy, not idle,
 * and is served; only then does that cost a system call. */
int ss__idle_begin(ss_request *req)
{
    unsigned char busy = SS__IDLE_BUSY;
    if (!atomic_compare_exchange_strong(req->idle, &busy, SS__IDLE_WAITING))
        return 0;
    if (closing(req)) {
        if (ss__io_readable_now(req->fd))
            return SS__IDLE_READ_BUSY; /* still WAITING: the read's ss__idle_end makes it busy */
        if (claim(req->idle))
            close_claimed(req);
        return 0;
    }
    return req->idle_watch >= 0 ? watch_parent(req) : SS__IDLE_READ;
}

bool ss__idle_stopped(ss_request *req)
{
    if (atomic_load(&req->server->keep_idle))
        return false; /* kept idle: the stop cancels it, as before the idle rule */
    if (claim(req->idle))
        close_claimed(req);
    /* else a drain claimed it meanwhile, and counted it */
    atomic_store(&req->cancelled, false); /* closed idle, not interrupted */
    return true;
}

/* Under the live lock, like ss__requests_interrupt: a request leaves the
 * list before its socket is closed, so each descriptor here is its own. */
static void close_idle_requests(ss_server *srv)
{
    pthread_mutex_lock(&srv->live_lock);
    for (ss__link *l = srv->live.next; l != &srv->live; l = l->next) {
        ss_request *req = (ss_request *)l; /* link is the first member */
        if (claim(req->idle))
            close_claimed(req);
    }
    pthread_mutex_unlock(&srv->live_lock);
}

void ss__idle_close_all(ss_server *srv)
{
    if (atomic_load(&srv->keep_idle))
        return;
    atomic_store(&srv->closing_idle, true);
    close_idle_requests(srv);
    srv->dispatch->close_idle(srv);
}
