/* The server's life cycle: create/bind/activate, the request loop
 * (handle_request, serve_forever), shutdown through a self-pipe, close and
 * free; its options, hooks, queries and counters; and the host table the
 * core lends its dispatcher (dispatch/dispatch.h). */
#include "core/core.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- defaults for every optional slot, so the core never tests NULL ---- */

static int handler_step_none(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static bool verify_always(ss_server *srv, ss_request *req, void *data)
{
    (void)srv;
    (void)req;
    (void)data;
    return true;
}

static void server_hook_none(ss_server *srv, void *data)
{
    (void)srv;
    (void)data;
}

void ss__report_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)data;
    const char *peer = req != NULL ? ss__request_peer_name(req) : "";
    /* A peer that left before the final flush is routine (bpo-14574). */
    ss_log_level level = err == SS_EFINALFLUSH ? SS_LOG_DEBUG : SS_LOG_ERROR;
    ss__log(srv->log, srv, srv->data, level, "error processing request from %s: %s",
            *peer ? peer : "(unnamed peer)", ss_strerror(err));
}

/* ---- what the core lends its dispatchers (dispatch/dispatch.h) ---- */

static void give_back_hold(ss_server *srv, ss__place *place)
{
    if (ss__place_give_back(srv, place))
        ss__server_wake(srv);
}

static const ss__host core_host = {
    .run = ss__request_run,
    .end = ss__request_end,
    .fail = ss__request_fail,
    .hand_off = ss__request_hand_off,
    .give_back = give_back_hold,
    .ref = ss__server_ref,
    .unref = ss__server_unref,
    .wake = ss__server_wake,
    .accept = ss__admit_take,
    .accept_room = ss__accept_room,
};

/* ---- creation ---- */

/* A table from a newer header may carry slots this library would ignore
 * (an ignored finish or error slot changes what the program means), so
 * only versions this library knows are taken. */
static bool valid_handler(const ss_handler *h)
{
    return h != NULL && h->version >= 1 && h->version <= SS_HANDLER_VERSION && h->handle != NULL;
}

static void copy_handler(ss_server *srv, const ss_handler *h)
{
    srv->handler.version = SS_HANDLER_VERSION;
    srv->handler.setup = h->setup != NULL ? h->setup : handler_step_none;
    srv->handler.handle = h->handle;
    srv->handler.finish = h->finish != NULL ? h->finish : handler_step_none;
}

static ss_server *alloc_server(const ss_dispatcher *dispatcher, const ss_handler *handler,
                               void *data)
{
    ss_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return NULL;
    atomic_init(&srv->refs, 1);
    srv->count = &srv->own_count;
    srv->state = SS__CREATED;
    copy_handler(srv, handler);
    srv->data = data;
    srv->dispatch = dispatcher != NULL ? dispatcher : ss_dispatch_sync();
    srv->host = &core_host;
    srv->stop.wake_read = srv->stop.wake_write = srv->reserve_fd = -1;
    srv->connection_fd = -1;
    srv->max_packet_size = 8192; /* Python's UDPServer.max_packet_size */
    srv->reuse_address = true;
    srv->backlog = SOMAXCONN;
    atomic_init(&srv->timeout_ms, -1);
    atomic_init(&srv->request_timeout_ms, -1);
    srv->verify_request = verify_always;
    srv->handle_error = ss__report_error;
    srv->handle_timeout = srv->service_actions = server_hook_none;
    atomic_init(&srv->stop.requested, false);
    atomic_init(&srv->stop.grace_ms, SS_DEFAULT_STOP_GRACE_MS);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->loop_exited, NULL);
    pthread_mutex_init(&srv->live_lock, NULL);
    pthread_mutex_init(&srv->accept_lock, NULL);
    srv->live.prev = srv->live.next = &srv->live;
    atomic_init(&srv->draining, false);
    return srv;
}

/* The self-pipe that wakes the loop, and the accept policy's reserve. */
static int open_wake_pipe(ss_server *srv)
{
    int fds[2];
    int rc = ss__pipe(fds);
    if (rc < 0)
        return rc;
    srv->stop.wake_read = fds[0];
    srv->stop.wake_write = fds[1];
    return ss__accept_policy_init(srv);
}

int ss__server_alloc(ss_server **out, const ss_dispatcher *dispatcher, const ss_handler *handler,
                     void *data)
{
    if (!valid_handler(handler))
        return -EINVAL;
    ss_server *srv = alloc_server(dispatcher, handler, data);
    if (srv == NULL)
        return -ENOMEM;
    int rc = open_wake_pipe(srv);
    if (rc < 0) {
        ss__server_unref(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

SS_API int ss_server_create(ss_server **out, const char *url, const ss_dispatcher *dispatcher,
                            const ss_handler *handler, void *data)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (!valid_handler(handler))
        return -EINVAL;
    ss__url parsed;
    int rc = ss__url_parse(url, &parsed);
    if (rc < 0)
        return rc;
    ss_server *srv = alloc_server(dispatcher, handler, data);
    if (srv == NULL)
        return -ENOMEM;
    /* The listener first: an adopted descriptor number that is not open
     * must not be taken by the server's own pipe and mistaken for it. */
    rc = ss__listener_add_parsed(srv, &parsed);
    if (rc == 0)
        rc = open_wake_pipe(srv);
    if (rc < 0) {
        ss__server_unref(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

SS_API int ss_server_bind(ss_server *srv)
{
    if (srv->state != SS__CREATED || srv->serves_connection)
        return SS_ESTATE;
    int rc = ss__listeners_bind(srv);
    if (rc == 0)
        srv->state = SS__BOUND;
    return rc;
}

SS_API int ss_server_activate(ss_server *srv)
{
    if (srv->state != SS__BOUND || srv->serves_connection)
        return SS_ESTATE;
    int rc = ss__tls_check_listeners(srv);
    if (rc == 0)
        rc = ss__listeners_activate(srv);
    if (rc == 0) /* with worker processes, each starts the dispatcher */
        rc = srv->supervisor != NULL ? srv->supervisor->start(srv) : srv->dispatch->start(srv);
    if (rc == 0)
        srv->state = SS__ACTIVE;
    return rc;
}

SS_API int ss_server_new(ss_server **out, const char *url, const ss_dispatcher *dispatcher,
                         const ss_handler *handler, void *data)
{
    int rc = ss_server_create(out, url, dispatcher, handler, data);
    if (rc < 0)
        return rc;
    rc = ss_server_bind(*out);
    if (rc == 0)
        rc = ss_server_activate(*out);
    if (rc < 0) {
        ss_server_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- close and free ---- */

SS_API void ss_server_close(ss_server *srv)
{
    if (srv == NULL || srv->state == SS__CLOSED)
        return;
    if (srv->prefork != NULL)
        srv->supervisor->close(srv);
    else if (srv->state == SS__ACTIVE || srv->state == SS__DRAINED)
        srv->dispatch->close(srv);
    ss__listeners_close(srv);
    ss__close(&srv->connection_fd); /* per-connection mode, never served */
    ss__accept_policy_close(srv);
    srv->state = SS__CLOSED;
}

SS_API void ss_server_free(ss_server *srv)
{
    if (srv == NULL)
        return;
    ss_server_close(srv);
    ss__server_unref(srv);
}

/* Reads and clears a pending stop request. */
static bool take_stop(ss_server *srv)
{
    return ss__stop_take(&srv->stop);
}

SS_API void ss_server_request_shutdown(ss_server *srv)
{
    if (srv == NULL) /* a signal before the server exists, or after free */
        return;
    ss__stop_request(&srv->stop);
    /* After the flag: a hand-over reads the count, then the flag, so it
     * sees any stop that was not taken before it began. */
    atomic_fetch_add(&srv->stop_events, 1);
}

SS_API int ss_server_set_stop_grace(ss_server *srv, int grace_ms)
{
    if (grace_ms < 0)
        return -EINVAL;
    atomic_store(&srv->stop.grace_ms, grace_ms);
    return 0;
}

SS_API int ss_server_shutdown(ss_server *srv)
{
    if (srv == NULL)
        return -EINVAL;
    ss_server_request_shutdown(srv);
    /* From the serving thread itself (a handler or hook), waiting would
     * wait for ourselves: the request alone ends the loop. */
    if (ss__server_on_serving_thread(srv))
        return 0;
    pthread_mutex_lock(&srv->lock);
    while (srv->serving)
        pthread_cond_wait(&srv->loop_exited, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    return 0;
}

/* ---- the request loop ---- */

/* Not while backing off from accept errors, nor at the dispatcher's
 * limit or max_connections: clients then wait in the kernel backlog; nor
 * once the listeners were handed over: the successor takes them. */
static bool listener_wanted(ss_server *srv)
{
    return !atomic_load(&srv->handed_over) && ss__accept_pause_ms(srv) == 0 &&
           srv->dispatch->has_room(srv) && ss__limits_have_room(srv);
}

/* Fills the poll set: the wake pipe, then each open listener, when
 * wanted; a listener the dispatcher's threads take clients from is left
 * out (fd -1) while they do. Returns how many entries to poll. */
static nfds_t fill_pollset(ss_server *srv)
{
    struct pollfd *p = srv->pollset;
    p[0] = (struct pollfd){.fd = srv->stop.wake_read, .events = POLLIN};
    if (!listener_wanted(srv))
        return 1;
    int asked = 0; /* 1: they accept, -1: they do not; asked once */
    for (int i = 0; i < srv->nlisteners; i++) {
        const ss__listener *l = srv->listeners[i];
        if (l->worker_accept && asked == 0)
            asked = srv->dispatch->accepting(srv) ? 1 : -1;
        bool theirs = l->worker_accept && asked > 0;
        p[i + 1] = (struct pollfd){.fd = theirs ? -1 : l->fd, .events = POLLIN};
    }
    return (nfds_t)srv->nlisteners + 1;
}

/* ---- accepting where the request is served (the pool's workers) ---- */

/* Whose clients a dispatcher's own threads may take while the loop
 * serves: a stream listener's (a datagram is read by the loop and its
 * requests reply through the listener), and only with the default
 * verify_request, which is documented to run where the loop runs. */
static bool may_accept_elsewhere(const ss_server *srv, const ss__listener *l)
{
    return l->fd >= 0 && !l->transport->datagram && srv->verify_request == verify_always;
}

static void mark_accept_elsewhere(ss_server *srv, bool on)
{
    for (int i = 0; i < srv->nlisteners; i++)
        srv->listeners[i]->worker_accept = on && may_accept_elsewhere(srv, srv->listeners[i]);
}

/* serve_forever begins: offers the dispatcher the listeners it may take
 * clients from itself. True if it does. (A table without the slots, from
 * before they existed, leaves them to the loop.) */
static bool accept_elsewhere_begin(ss_server *srv)
{
    if (srv->dispatch->accept_start == NULL || atomic_load(&srv->handed_over))
        return false;
    mark_accept_elsewhere(srv, true);
    bool taken = false;
    for (int i = 0; i < srv->nlisteners && !taken; i++)
        taken = srv->listeners[i]->worker_accept;
    if (taken && srv->dispatch->accept_start(srv))
        return true;
    mark_accept_elsewhere(srv, false);
    return false;
}

/* serve_forever ends, or the listeners were handed over: from here on
 * only the loop (handle_request, drain) takes clients. Returns false, the
 * new state. */
static bool accept_elsewhere_end(ss_server *srv)
{
    srv->dispatch->accept_stop(srv);
    mark_accept_elsewhere(srv, false);
    return false;
}

/* Waits up to timeout_ms (negative: no limit) for a listener or the
 * wake pipe. Returns how many listeners are ready (their revents set in
 * the poll set), 0 if none, or a negative errno if polling itself
 * failed. */
static int wait_event(ss_server *srv, int timeout_ms)
{
    nfds_t n = fill_pollset(srv);
    int wait = ss__min_wait(timeout_ms, srv->dispatch->max_wait_ms(srv));
    int paused = ss__accept_pause_ms(srv);
    if (paused > 0)
        wait = ss__min_wait(wait, paused);
    int rc = poll(srv->pollset, n, wait);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    if (srv->pollset[0].revents != 0) {
        ss__server_drain_wake(srv);
        rc--;
    }
    /* handed over while polling: the clients are the successor's */
    if (n == 1 || atomic_load(&srv->handed_over))
        return 0;
    return rc;
}

static void handle_one(ss__listener *l)
{
    ss_request *req = ss__admit_next(l);
    if (req == NULL)
        return;
    /* a reload in another process (worker processes' supervisor), followed
     * here, on the thread that forks forking's children: before the fork,
     * once, rather than in each child (filter/tls_config.c) */
    ss__tls_follow_reload(l->server);
    l->server->dispatch->process(l->server, req);
}

/* The next ready listener in turn, starting after the one served last,
 * so that a busy listener cannot starve the others; NULL if none. Its
 * readiness is consumed. */
static ss__listener *next_ready(ss_server *srv)
{
    for (int k = 0; k < srv->nlisteners; k++) {
        int i = (srv->next_listener + k) % srv->nlisteners;
        if (srv->pollset[i + 1].revents == 0)
            continue;
        srv->pollset[i + 1].revents = 0;
        srv->next_listener = (i + 1) % srv->nlisteners;
        return srv->listeners[i];
    }
    return NULL;
}

/* One request from each ready listener, in turn, while there is room
 * and no stop. */
static void handle_ready(ss_server *srv)
{
    ss__listener *l = next_ready(srv);
    while (l != NULL) {
        handle_one(l);
        l = next_ready(srv);
        if (l != NULL && (!listener_wanted(srv) || ss__server_stop_requested(srv)))
            return;
    }
}

/* ---- drain's listeners: serve the backlog, then close ---- */

/* The listener's queue is not empty (poll, not accept: an accept that
 * finds nobody costs as much and tells less). */
static bool backlog_waiting(const ss__listener *l)
{
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int rc;
    do
        rc = poll(&p, 1, 0);
    while (rc < 0 && errno == EINTR);
    return rc > 0;
}

void ss__drain_listeners_begin(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__listener *l = srv->listeners[i];
        l->backlog_left = srv->backlog < INT_MAX ? srv->backlog + 1 : INT_MAX;
        l->arrivals_stopped = false;
    }
}

/* The queue is empty: are more clients still to come into it? The first
 * time, new connections are stopped (the transport's stop_arrivals);
 * then only handshakes already under way can join, within the settle
 * time it gave: wait that long for one. Without this, a client arriving
 * between the last poll and the close would be accepted by the kernel
 * and then reset by the close, a request lost (HAProxy in mode tcp does
 * not retry a connection that was established). */
static bool late_arrival(ss__listener *l)
{
    if (!l->arrivals_stopped) {
        l->arrivals_stopped = true;
        /* a socket another process holds is left as it is: closing our
         * descriptor resets nobody, its holder serves the backlog */
        int (*stop)(ss__listener *) = l->shared ? NULL : l->transport->stop_arrivals;
        l->arrivals_settle_ms = stop != NULL ? stop(l) : -ENOTSUP;
    }
    if (l->arrivals_settle_ms <= 0)
        return false;
    struct pollfd p = {.fd = l->fd, .events = POLLIN};
    int64_t deadline = ss__deadline(l->arrivals_settle_ms);
    int rc;
    do
        rc = poll(&p, 1, ss__remaining_ms(deadline));
    while (rc < 0 && errno == EINTR);
    return rc > 0;
}

void ss__close_listeners(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++)
        if (!srv->listeners[i]->transport->replies_via_listener)
            ss__close_published(&srv->listeners[i]->fd);
}

/* Each client waiting in the backlog is taken through admission as
 * usual, until the queue is empty; at most backlog + 1 (what it holds),
 * so clients that keep arriving cannot hold the drain. At a limit the
 * rest waits for room, which requests ending make. */
static bool drain_listener(ss__listener *l)
{
    if (l->fd < 0 || l->transport->replies_via_listener)
        return true;
    if (atomic_load(&l->server->handed_over)) {
        /* The successor serves the backlog; stop_arrivals would stop its
         * arrivals too (the same socket): only our copy goes. */
        ss__close(&l->fd);
        return true;
    }
    do {
        while (l->backlog_left > 0 && backlog_waiting(l)) {
            if (!listener_wanted(l->server))
                return false;
            l->backlog_left--;
            handle_one(l);
        }
    } while (l->backlog_left > 0 && late_arrival(l));
    ss__close_published(&l->fd);
    return true;
}

bool ss__drain_listeners(ss_server *srv)
{
    bool all = true;
    for (int i = 0; i < srv->nlisteners; i++)
        all = drain_listener(srv->listeners[i]) && all;
    return all;
}

SS_API int ss_server_handle_request(ss_server *srv)
{
    if (srv->state != SS__ACTIVE)
        return SS_ESTATE;
    if (srv->prefork != NULL)
        return -ENOTSUP; /* the workers take the clients */
    int64_t deadline = ss__deadline(atomic_load(&srv->timeout_ms));
    for (;;) {
        int rc = wait_event(srv, ss__remaining_ms(deadline));
        if (take_stop(srv))
            return -ECANCELED;
        if (rc < 0)
            return rc;
        srv->dispatch->reap(srv);
        ss__listener *l = rc > 0 ? next_ready(srv) : NULL;
        if (l != NULL) {
            handle_one(l);
            return 0;
        }
        if (deadline >= 0 && ss__now_ms() >= deadline) {
            atomic_fetch_add(&srv->count->timeouts, 1);
            srv->handle_timeout(srv, srv->data);
            return 0;
        }
    }
}

bool ss__server_enter_loop(ss_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    bool was_serving = srv->serving;
    if (!was_serving) {
        srv->serving = true;
        srv->serving_thread = pthread_self();
    }
    pthread_mutex_unlock(&srv->lock);
    return !was_serving;
}

void ss__server_leave_loop(ss_server *srv)
{
    take_stop(srv);
    pthread_mutex_lock(&srv->lock);
    srv->serving = false;
    pthread_cond_broadcast(&srv->loop_exited);
    pthread_mutex_unlock(&srv->lock);
}

SS_API int ss_server_serve_forever(ss_server *srv, int poll_interval_ms)
{
    if (srv->state != SS__ACTIVE)
        return SS_ESTATE;
    if (srv->prefork != NULL)
        return srv->supervisor->serve(srv, poll_interval_ms);
    if (!ss__server_enter_loop(srv))
        return -EBUSY;
    int rc = 0;
    bool elsewhere = accept_elsewhere_begin(srv);
    while (!ss__server_stop_requested(srv)) {
        if (elsewhere && atomic_load(&srv->handed_over))
            elsewhere = accept_elsewhere_end(srv); /* the successor takes them */
        rc = wait_event(srv, poll_interval_ms);
        if (rc < 0 || ss__server_stop_requested(srv))
            break;
        if (rc > 0)
            handle_ready(srv);
        srv->dispatch->reap(srv);
        srv->service_actions(srv, srv->data);
    }
    if (elsewhere)
        accept_elsewhere_end(srv);
    ss__server_leave_loop(srv);
    return rc < 0 ? rc : 0;
}

/* ---- options ---- */

static int before(const ss_server *srv, ss__state state)
{
    return srv->state < state ? 0 : SS_ESTATE;
}

/* An option of bind or listen, before `state`: with every listener
 * adopted (already bound and listening) it would be ignored, so it is
 * refused instead. */
static int bind_option(const ss_server *srv, ss__state state)
{
    int rc = before(srv, state);
    for (int i = 0; rc == 0; i++) {
        if (i == srv->nlisteners)
            return SS_ESTATE;
        if (!srv->listeners[i]->adopted)
            break;
    }
    return rc;
}

SS_API int ss_server_set_reuse_address(ss_server *srv, bool on)
{
    int rc = bind_option(srv, SS__BOUND);
    if (rc == 0)
        srv->reuse_address = on;
    return rc;
}

SS_API int ss_server_set_reuse_port(ss_server *srv, bool on)
{
#ifndef SO_REUSEPORT
    if (on)
        return -ENOTSUP;
#endif
    int rc = bind_option(srv, SS__BOUND);
    if (rc == 0)
        srv->reuse_port = on;
    return rc;
}

SS_API int ss_server_set_backlog(ss_server *srv, int backlog)
{
    if (backlog < 1)
        return -EINVAL;
    int rc = bind_option(srv, SS__ACTIVE);
    if (rc == 0)
        srv->backlog = backlog;
    return rc;
}

SS_API int ss_server_set_max_connections(ss_server *srv, int max)
{
    if (max < 0)
        return -EINVAL;
    atomic_store(&srv->limits.max_connections, max);
    ss__server_wake(srv); /* a higher limit may let the loop poll again */
    return 0;
}

SS_API void ss_server_set_timeout(ss_server *srv, int timeout_ms)
{
    atomic_store(&srv->timeout_ms, timeout_ms < 0 ? -1 : timeout_ms);
}

SS_API void ss_server_set_request_timeout(ss_server *srv, int timeout_ms)
{
    atomic_store(&srv->request_timeout_ms, timeout_ms < 0 ? -1 : timeout_ms);
}

SS_API void ss_server_on_verify_request(ss_server *srv, ss_verify_fn fn)
{
    srv->verify_request = fn != NULL ? fn : verify_always;
}

SS_API void ss_server_on_handle_error(ss_server *srv, ss_error_fn fn)
{
    srv->handle_error = fn != NULL ? fn : ss__report_error;
}

SS_API void ss_server_on_handle_timeout(ss_server *srv, ss_server_fn fn)
{
    srv->handle_timeout = fn != NULL ? fn : server_hook_none;
}

SS_API void ss_server_set_log(ss_server *srv, ss_log_fn fn)
{
    srv->log = fn;
}

SS_API void ss_server_on_service_actions(ss_server *srv, ss_server_fn fn)
{
    srv->service_actions = fn != NULL ? fn : server_hook_none;
}

/* ---- queries ---- */

/* The first listener: what a server with one means. */
SS_API int ss_server_fileno(const ss_server *srv)
{
    return ss_server_listener_fileno(srv, 0);
}

SS_API int ss_server_address(const ss_server *srv, char *buf, size_t size)
{
    return ss_server_listener_address(srv, 0, buf, size);
}

SS_API int ss_server_port(const ss_server *srv)
{
    return ss_server_listener_port(srv, 0);
}

SS_API void *ss_server_data(const ss_server *srv)
{
    return srv != NULL ? srv->data : NULL;
}

/* One field of ss_stats per counter, in the same order, and nothing else:
 * a field added to one but not the other fails to build here. */
#define SS__ONE(name) +1
static_assert(sizeof(ss_stats) == sizeof(uint64_t) * (0 SS__COUNTERS(SS__ONE)),
              "ss_stats and SS__COUNTERS (objects.h) must list the same counters");
#undef SS__ONE

SS_API void ss_server_stats_sized(const ss_server *srv, ss_stats *out, size_t size)
{
    if (out == NULL)
        return;
    if (srv == NULL) {
        memset(out, 0, size);
        return;
    }
    ss__counters *c = srv->count;
    ss_stats all;
#define SS__COPY(name) all.name = atomic_load(&c->name);
    SS__COUNTERS(SS__COPY)
#undef SS__COPY
    if (srv->prefork != NULL)
        srv->supervisor->add_stats(srv, &all);
    size_t known = size < sizeof all ? size : sizeof all;
    memcpy(out, &all, known);
    memset((char *)out + known, 0, size - known); /* a newer header's fields */
}

/* The function behind the macro of the same name, for callers that
 * cannot use the header's macro (bindings through dlsym, say): it writes
 * this library's whole ss_stats. */
#undef ss_server_stats
SS_API void ss_server_stats(const ss_server *srv, ss_stats *out)
{
    ss_server_stats_sized(srv, out, sizeof *out);
}
