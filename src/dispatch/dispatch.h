/* The dispatch layer's private header (src/dispatch/): the dispatcher
 * table (the public ss_dispatcher) and what the dispatchers share. */
#ifndef SS_DISPATCH_H
#define SS_DISPATCH_H

#include "filter/filter.h"

#include <pthread.h>

/* The request replies through its listener's socket, shared by every
 * request from it (a datagram listener): close waits for its handler. */
static inline bool ss__replies_via_listener(const ss_request *req)
{
    return req->listener->transport->replies_via_listener;
}

struct ss_dispatcher {
    const char *name;
    /* Called by activate: allocate srv->dispatch_state. */
    int (*start)(ss_server *srv);
    /* False while at a concurrency limit: the listener is then not polled,
     * so clients wait in the kernel backlog. */
    bool (*has_room)(ss_server *srv);
    /* Run the request's handler somewhere; owns req from here on and must
     * end it through the core's host table (srv->host->end). */
    void (*process)(ss_server *srv, ss_request *req);
    /* Reaps what has finished (threads to join, children to wait for) and
     * retries what waited for that (a deferred fork). Called on every loop
     * iteration in the serving thread, and by drain, which runs once the
     * loop has stopped. */
    void (*reap)(ss_server *srv);
    /* Longest the loop may sleep before reap must run; -1 = no limit. */
    int (*max_wait_ms)(ss_server *srv);
    /* Drain, once its deadline has passed: interrupt the requests only
     * this dispatcher can reach (its own): cancel those not started
     * (queued, waiting for a fork), so none starts later, and signal
     * children. Called before the core shuts the live requests' sockets
     * down (the requests it cancels are on that list too), and again
     * with force when the gentle way did not suffice. */
    void (*interrupt_own)(ss_server *srv, bool force);
    /* Drain start, with idle close on: end the idle requests only this
     * dispatcher can see (a forked child's), as the core does for the
     * requests of this process (core/idle.c). */
    void (*close_idle)(ss_server *srv);
    /* A filter (PROXY) named the request's real client, on the request's
     * own thread or process, after admission (core/request.c): take its
     * place under max_per_client in counts this dispatcher keeps, for
     * requests run out of the core's sight (a forked child's, whose own
     * copy of the core's table its parent never sees). 1: taken, 0: the
     * client is at its limit (refused), -ENOTSUP: the core's table in
     * this process counts it. */
    int (*claim_client)(ss_server *srv, const ss__client_key *key);
    /* server_close: wait for or let go of running requests; free state. */
    void (*close)(ss_server *srv);
    /* serve_forever begins: the dispatcher's own threads may take clients
     * off the listeners marked worker_accept, through host->accept, so a
     * connection is served where it was accepted. True if they do (the
     * loop then polls those listeners only while `accepting` is false);
     * false leaves them to the loop. Serving thread. */
    bool (*accept_start)(ss_server *srv);
    /* serve_forever ends: once this returns no thread of the dispatcher
     * takes a client and none watches a listener (drain may close them).
     * Serving thread; never waits for a handler. */
    void (*accept_stop)(ss_server *srv);
    /* Between the two: whether some thread of the dispatcher is taking
     * clients now. False (all of them full): the loop accepts into the
     * dispatcher's queue as before. A dispatcher whose last accepting
     * thread stops wakes the loop (host->wake). Serving thread. */
    bool (*accepting)(ss_server *srv);
};

/* What the core lends the dispatchers. A dispatcher sits below the core
 * and never calls it by name (dependency inversion): it runs, ends and
 * reports requests, and reaches the server object, through this table,
 * which the core puts in srv->host when it creates the server
 * (core/server.c). Every slot is filled; each may be called from any
 * thread, and in a forked child. */
struct ss__host {
    /* setup -> handle -> finish, the first error routed to handle_error;
     * returns that error (0 on success). */
    int (*run)(ss_request *req);
    /* Ends the request: its socket is shut down, it is counted closed,
     * its place is given back, it is freed (req is gone after). */
    void (*end)(ss_request *req);
    /* The request could not be started (no thread, no process): err goes
     * to handle_error once, as a handler's would; end it afterwards. */
    void (*fail)(ss_request *req, int err);
    /* The forking parent's side of a request its child now serves: the
     * copy is dropped without shutdown (the child's conversation goes on)
     * and without counting; its place moves into *place. req is gone after. */
    void (*hand_off)(ss_request *req, ss__place *place);
    /* A handed-off request's child is reaped: the place is given back
     * (and the loop woken if that makes room). */
    void (*give_back)(ss_server *srv, ss__place *place);
    /* The server's reference count: a thread that outlives its request
     * (and still wakes the loop) holds one. */
    void (*ref)(ss_server *srv);
    void (*unref)(ss_server *srv);
    /* Wakes the serving loop; async-signal-safe. */
    void (*wake)(const ss_server *srv);
    /* A dispatcher thread accepting for itself (accept_start): takes the
     * next client off l through admission (limits, max_per_client,
     * verify_request, the accept policy, the counters), as the loop
     * would. 1: *out is an admitted request, to run and end; 0: a client
     * was taken and turned away, shed or refused (counted, closed);
     * -EAGAIN: none was waiting; -EBUSY: max_connections is reached
     * (nobody was taken: wait for room); another negative errno: taking
     * one failed (counted; out of descriptors or memory starts the
     * back-off). Any thread. */
    int (*accept)(ss__listener *l, ss_request **out);
    /* Whether clients may be taken now: no stop requested, not handed
     * over, no accept back-off, room under max_connections. A hint for
     * when to watch the listeners; accept decides exactly. Any thread. */
    bool (*accept_room)(ss_server *srv);
};

/* Shared no-op slots for dispatcher tables. */
int ss__dispatch_start_none(ss_server *srv);
bool ss__dispatch_room_always(ss_server *srv);
void ss__dispatch_reap_none(ss_server *srv);
int ss__dispatch_max_wait_none(ss_server *srv);
void ss__dispatch_interrupt_own_none(ss_server *srv, bool force);
void ss__dispatch_close_idle_none(ss_server *srv); /* the core sees every request */
int ss__dispatch_claim_client_none(ss_server *srv, const ss__client_key *key); /* -ENOTSUP */
void ss__dispatch_close_none(ss_server *srv);
bool ss__dispatch_accept_start_none(ss_server *srv); /* false: the loop accepts */
void ss__dispatch_accept_stop_none(ss_server *srv);
bool ss__dispatch_accepting_none(ss_server *srv); /* false */
/* Handler-thread attributes: joinable, with the configured stack size. */
int ss__thread_attr_init(const ss_server *srv, pthread_attr_t *attr);
/* True unless ss_server_set_block_on_close(srv, false) was called. */
bool ss__block_on_close(const ss_server *srv);

#endif /* SS_DISPATCH_H */
