/* Graceful stop (ss_server_drain): with the loop stopped, end the idle
 * requests at once (core/idle.c), serve the clients already waiting in the
 * listen backlog and close the listener (core/server.c), wait for the
 * requests in flight to end; past the deadline, or on a second stop
 * request, interrupt them: the core shuts down the sockets of the
 * requests alive in this process (the live list, core/request.c), after the
 * dispatcher has ended what only it can reach (the pool's queue,
 * children).
 * Waiting is event-driven: every request that ends while draining wakes
 * the wake-up pipe (ss__place_give_back), a forked child writes to it as it
 * exits, and the dispatcher's reap step reaps and joins meanwhile. */
#include "core/core.h"

#include <errno.h>

#define GRACE_MS 1000 /* after SIGTERM until SIGKILL, and after that */

/* Waits until nothing is in flight and the backlog is served (true), or
 * the deadline passes or, if `stoppable`, a stop is requested (false). */
static bool wait_idle(ss_server *srv, int64_t deadline, bool stoppable)
{
    for (;;) {
        srv->dispatch->reap(srv);
        int left = ss__remaining_ms(deadline);
        /* too late to take a client from the backlog: it would only be
         * interrupted (the listener's close resets it) */
        bool late = left == 0 || (stoppable && ss__server_stop_requested(srv));
        bool served = late || ss__drain_listeners(srv);
        if (served && atomic_load(&srv->count->active) == 0)
            return true;
        if (late)
            return false;
        int wait = ss__min_wait(left, srv->dispatch->max_wait_ms(srv));
        int paused = ss__accept_pause_ms(srv); /* the backlog waits out a back-off */
        ss__server_sleep(srv, paused > 0 ? ss__min_wait(wait, paused) : wait);
    }
}

/* The dispatcher first ends what has not started (the pool's queue, a
 * request waiting for a fork) and signals its children; only then are the
 * live sockets shut down: the other way round, a worker freed by an
 * interrupted handler would take a queued request and run its handler
 * after the deadline. Then force what is still there after GRACE_MS, or
 * at a further stop request (the one that brought us here is consumed
 * first). */
static void interrupt_all(ss_server *srv)
{
    ss__close_listeners(srv); /* whoever still waits in the backlog is too late */
    atomic_store(&srv->stop.requested, false);
    atomic_fetch_add(&srv->count->interrupted, atomic_load(&srv->count->active));
    srv->dispatch->interrupt_own(srv, false);
    ss__requests_interrupt(srv);
    if (wait_idle(srv, ss__deadline(GRACE_MS), true))
        return;
    srv->dispatch->interrupt_own(srv, true);
    wait_idle(srv, ss__deadline(GRACE_MS), false);
}

/* Once drained, the server takes no new request: serve_forever and
 * handle_request want SS__ACTIVE. Under the lock a hand-over checks the
 * state with (core/handover.c): one on another thread gives way. */
static int enter_drain(ss_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    int rc =
        (srv->state != SS__ACTIVE && srv->state != SS__DRAINED) || srv->serving ? SS_ESTATE : 0;
    if (rc == 0) {
        srv->state = SS__DRAINED;
        atomic_fetch_add(&srv->stop_events, 1);
    }
    pthread_mutex_unlock(&srv->lock);
    if (rc == 0)
        atomic_store(&srv->draining, true);
    return rc;
}

/* Idle requests end first: their places make room for the backlog. A
 * handler the drain itself runs (sync: a client from the backlog) ends
 * at the deadline too. */
static void begin(ss_server *srv, int64_t deadline)
{
    ss__idle_close_all(srv);
    ss__drain_listeners_begin(srv);
    atomic_store(&srv->stop.cancel_at, deadline < 0 ? 0 : (long long)deadline);
    atomic_store(&srv->stop.now, true); /* the deadline is the grace: a stop means now */
}

SS_API int ss_server_drain(ss_server *srv, int timeout_ms)
{
    int rc = enter_drain(srv);
    if (rc < 0)
        return rc;
    if (srv->prefork != NULL)
        return srv->supervisor->drain(srv, timeout_ms); /* each worker drains */
    int64_t deadline = ss__deadline(timeout_ms);
    uint64_t interrupted = atomic_load(&srv->count->interrupted);
    begin(srv, deadline);
    bool on_their_own = wait_idle(srv, deadline, true);
    if (!on_their_own || atomic_load(&srv->count->interrupted) != interrupted)
        rc = ss__server_stop_requested(srv) ? -ECANCELED : -ETIMEDOUT;
    if (!on_their_own)
        interrupt_all(srv);
    ss__close_listeners(srv); /* taken too late: the backlog is reset (see limits.h) */
    atomic_store(&srv->stop.cancel_at, 0);
    atomic_store(&srv->stop.now, false);
    atomic_store(&srv->draining, false);
    return rc;
}
