/* Admission: what happens between the socket and a request. The loop
 * takes the next client off the socket (the transport's get_request: a
 * bare connection or datagram and its peer); the limits decide first
 * (max_connections, max_per_client: core/limits.c), before any request
 * exists, so a client turned away is only a closed descriptor (with the
 * overload reply, if one is set). An admitted client becomes a request,
 * which verify_request then judges: that hook takes an ss_request (its
 * public signature, Python's verify_request(request, client_address)),
 * so it sees the very object the handler would, and a request it refuses
 * is ended like any other (counted closed; it was counted active while
 * it existed).
 *
 * When taking a client off the socket fails (the accept policy):
 *
 * Per-connection failures (a client that reset before we accepted it,
 * ECONNABORTED, EPROTO, EPERM from a firewall, ...) are counted and
 * skipped. Resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
 * different: the listener stays readable, so retrying at once would spin.
 * Instead the server sheds every pending client with the help of a reserve
 * descriptor kept for this moment (each sees its connection closed rather
 * than hanging in the backlog), stops polling the listener, and retries
 * after a pause that doubles from 5 ms to 1 s; each retry that fails
 * sheds whoever queued meanwhile. One message marks
 * the start of such a burst and one its end.
 *
 * Several threads may take clients at once (the pool's workers accept for
 * themselves while a loop serves): the limits are kept by atomic counts
 * (core/limits.c), and the accept policy reads its back-off without a
 * lock and changes it and sheds under accept_lock, on the error path
 * only. A thread accepting for itself looks at the pause before each
 * accept (ss__accept_room), as the loop does before it polls. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 5
#define BACKOFF_MAX_MS   1000

static int open_reserve(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static void reopen_reserve(ss_server *srv)
{
    int fd = open_reserve();
    srv->reserve_fd = fd < 0 ? -1 : fd;
}

int ss__accept_policy_init(ss_server *srv)
{
    srv->reserve_fd = open_reserve();
    return srv->reserve_fd < 0 ? srv->reserve_fd : 0;
}

void ss__accept_policy_close(ss_server *srv)
{
    ss__close(&srv->reserve_fd);
}

static bool is_resource_error(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

static void count_error(ss_server *srv, int err)
{
    ss__counters *c = srv->count;
    atomic_fetch_add(&c->accept_errors, 1);
    atomic_uint_fast64_t *by_errno = err == -EMFILE    ? &c->accept_emfile
                                     : err == -ENFILE  ? &c->accept_enfile
                                     : err == -ENOBUFS ? &c->accept_enobufs
                                     : err == -ENOMEM  ? &c->accept_enomem
                                                       : NULL;
    if (by_errno != NULL)
        atomic_fetch_add(by_errno, 1);
}

/* How many clients one step may shed: a listener's whole queue, which
 * holds at most backlog + 1 connections (Linux lets the count reach one
 * past the backlog), so clients that keep arriving cannot hold the loop;
 * one datagram, since a datagram left queued is not a client left
 * hanging: it is served once memory is back. */
static int shed_limit(const ss__listener *l)
{
    const ss_server *srv = l->server;
    if (l->transport->datagram)
        return 1;
    return srv->backlog < INT_MAX ? srv->backlog + 1 : INT_MAX;
}

/* Gives the reserve descriptor up so each client waiting in the queue can
 * be taken and closed at once (it sees its connection end instead of
 * hanging), until the queue is empty or taking one fails. The back-off
 * then only paces the retries of real accepts. */
static void shed_waiting(ss__listener *l)
{
    ss_server *srv = l->server;
    if (srv->reserve_fd < 0)
        return;
    ss__close(&srv->reserve_fd);
    for (int i = shed_limit(l); i > 0; i--) {
        ss__arrival arrival;
        if (l->transport->get_request(l, &arrival) != 0)
            break; /* EAGAIN: none left; or still out of resources */
        atomic_fetch_add(&srv->count->shed, 1);
        atomic_fetch_add(&srv->count->accepted, 1);
        l->transport->turn_away(l, &arrival, NULL, 0);
        atomic_fetch_add(&srv->count->closed, 1);
    }
    reopen_reserve(srv); /* retried after the burst if it fails now */
}

/* Caller holds accept_lock. The pause doubles on each failure; the
 * resume time is stored before the pause, which readers test first. True
 * if this failure began a burst. */
static bool back_off(ss_server *srv)
{
    int64_t now = ss__now_ms();
    int ms = atomic_load(&srv->accept_backoff_ms);
    bool first = ms == 0;
    if (first)
        srv->burst_errors = 0;
    srv->burst_errors++;
    int next = ms * 2;
    ms = next == 0 ? BACKOFF_FIRST_MS : next > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : next;
    atomic_store(&srv->accept_resume_at, (long long)(now + ms));
    atomic_store(&srv->accept_backoff_ms, ms);
    return first;
}

/* Out of descriptors or memory is the process's state, not one
 * listener's: the back-off pauses them all; the one that failed sheds.
 * The loop is woken to time the pause (and, while the pool's workers
 * accept, to have them watch the listeners again after it). */
static void accept_failed(ss__listener *l, int err)
{
    ss_server *srv = l->server;
    if (err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR)
        return; /* nothing was pending after all */
    count_error(srv, err);
    if (!is_resource_error(err))
        return;
    pthread_mutex_lock(&srv->accept_lock);
    bool began = back_off(srv);
    shed_waiting(l);
    pthread_mutex_unlock(&srv->accept_lock);
    if (began)
        ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
                "accept: %s; shedding new clients and retrying with back-off", ss_strerror(err));
    ss__server_wake(srv);
}

static void accept_succeeded(ss_server *srv)
{
    if (atomic_load_explicit(&srv->accept_backoff_ms, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&srv->accept_lock);
    uint64_t failed = srv->burst_errors;
    bool ended = atomic_exchange(&srv->accept_backoff_ms, 0) != 0;
    if (ended) {
        atomic_store(&srv->accept_resume_at, 0);
        if (srv->reserve_fd < 0)
            reopen_reserve(srv);
    }
    pthread_mutex_unlock(&srv->accept_lock);
    if (ended)
        ss__log(srv->log, srv, srv->data, SS_LOG_INFO, "accept: resumed after %llu failed attempts",
                (unsigned long long)failed);
}

int ss__accept_pause_ms(const ss_server *srv)
{
    ss_server *s = (ss_server *)srv; /* atomics: read-only use */
    if (atomic_load(&s->accept_backoff_ms) == 0)
        return 0;
    int64_t left = atomic_load(&s->accept_resume_at) - ss__now_ms();
    return left > 0 ? (int)left : 0;
}

bool ss__accept_room(ss_server *srv)
{
    return !ss__server_stop_requested(srv) && !atomic_load(&srv->handed_over) &&
           ss__accept_pause_ms(srv) == 0 && ss__limits_have_room(srv);
}

/* ---- the decision ---- */

/* Counted as rejected and closed; the limits' refusals get the overload
 * reply, if one is set. */
static void turn_away(ss_server *srv, ss__arrival *arrival, ss__refusal why)
{
    ss__count_refusal(srv, why);
    arrival->listener->transport->turn_away(arrival->listener, arrival, srv->limits.overload_reply,
                                            srv->limits.overload_reply_len);
    atomic_fetch_add(&srv->count->closed, 1);
}

/* A place no request holds (a refusal, a reservation nobody used) goes
 * back; the loop is woken if that made room it waits for. */
static void give_back(ss_server *srv, ss__place *place)
{
    if (ss__place_give_back(srv, place))
        ss__server_wake(srv);
}

/* No memory for the request: as if the accept itself had failed so
 * (counted, and the accept policy backs off), with the client closed. */
static void no_room(ss_server *srv, ss__arrival *arrival, ss__place *place)
{
    ss__listener *l = arrival->listener;
    give_back(srv, place);
    l->transport->turn_away(l, arrival, NULL, 0);
    accept_failed(l, -ENOMEM);
}

/* The limits first: they are cheap, verify_request may not be. */
static ss_request *admit_placed(ss_server *srv, ss__arrival *arrival, ss__place *place)
{
    ss__refusal why = ss__limits_admit(srv, arrival, place);
    ss_request *req = NULL;
    if (why == SS__ADMITTED && (req = ss__request_new(srv, arrival, place)) == NULL) {
        no_room(srv, arrival, place);
        return NULL;
    }
    accept_succeeded(srv);
    atomic_fetch_add(&srv->count->accepted, 1);
    if (why != SS__ADMITTED) {
        give_back(srv, place);
        turn_away(srv, arrival, why);
        return NULL;
    }
    if (ss__names_client(arrival->listener) || srv->verify_request(srv, req, srv->data))
        return req; /* names_client: verified on the real client (core/request.c) */
    ss__count_refusal(srv, SS__REFUSE_VERIFY);
    ss__request_end(req);
    return NULL;
}

ss_request *ss__admit(ss_server *srv, ss__arrival *arrival)
{
    ss__place place = {0};
    return admit_placed(srv, arrival, &place);
}

int ss__admit_take(ss__listener *l, ss_request **out)
{
    ss_server *srv = l->server;
    ss__place place = {0};
    *out = NULL;
    if (!ss__limits_reserve(srv, &place))
        return -EBUSY;
    ss__arrival arrival;
    int rc = l->transport->get_request(l, &arrival);
    if (rc < 0) {
        give_back(srv, &place);
        accept_failed(l, rc);
        return rc == -EWOULDBLOCK ? -EAGAIN : rc;
    }
    arrival.listener = l;
    *out = admit_placed(srv, &arrival, &place);
    return *out != NULL;
}

ss_request *ss__admit_next(ss__listener *l)
{
    ss_request *req;
    ss__admit_take(l, &req);
    return req;
}
