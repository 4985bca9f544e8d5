/* The threading dispatcher (Python's ThreadingMixIn): one thread per
 * request. Unlike Python, a thread that has finished its request leaves
 * the bookkeeping at once, by itself, whether or not the loop ever turns
 * again (a server driven by handle_request runs none between calls): the
 * bookkeeping holds running threads only and never grows with the number
 * of past requests (bpo-37193). Such a thread detaches itself; one that
 * finishes while close or drain is collecting threads is joined by them
 * instead, so that nothing of it, not even its last steps, outlives close.
 * Handler threads get a small stack (an option) instead of the system's
 * 8 MiB. */
#include "dispatch/dispatch.h"

#include <errno.h>
#include <stdlib.h>

typedef struct threads threads;

/* One handler thread. On the running list until its request is over.
 * Then it detaches itself and frees its record, or, while close or drain
 * collects threads, goes on the finished list for them to join and free.
 * Once detached by close, the thread frees its record itself. */
typedef struct worker {
    struct worker *prev, *next;
    threads *owner;
    ss_request *req;
    pthread_t tid;
    bool daemon;   /* daemon_threads when it started */
    bool shared;   /* replies through the server's own socket (datagram) */
    bool detached; /* close let it go: nobody will join it */
} worker;

struct threads {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a joinable thread finished its request */
    pthread_attr_t attr;
    worker running;   /* sentinel of a circular list */
    worker *finished; /* singly linked through next: for close or drain to join */
    int joinable;     /* running threads close must still wait for */
    int refs;         /* the server's + one per thread still running */
    bool collect;     /* close or drain began: finished threads wait to be joined */
};

/* ---- state life: the server and every thread hold a reference ---- */

static void threads_unref(threads *ts)
{
    pthread_mutex_lock(&ts->lock);
    bool last = --ts->refs == 0;
    pthread_mutex_unlock(&ts->lock);
    if (!last)
        return;
    pthread_attr_destroy(&ts->attr);
    pthread_cond_destroy(&ts->changed);
    pthread_mutex_destroy(&ts->lock);
    free(ts);
}

static int thread_start(ss_server *srv)
{
    threads *ts = calloc(1, sizeof *ts);
    if (ts == NULL)
        return -ENOMEM;
    int rc = ss__thread_attr_init(srv, &ts->attr);
    if (rc < 0) {
        free(ts);
        return rc;
    }
    pthread_mutex_init(&ts->lock, NULL);
    pthread_cond_init(&ts->changed, NULL);
    ts->running.prev = ts->running.next = &ts->running;
    ts->refs = 1;
    srv->dispatch_state = ts;
    return 0;
}

/* ---- reaping ---- */

/* Joins the threads that have finished their requests (already counted
 * out of stats.tracked). The join cannot block for long: a thread on this
 * list has nothing left to do but return. */
static void join_all(worker *list)
{
    while (list != NULL) {
        worker *w = list;
        list = w->next;
        pthread_join(w->tid, NULL);
        free(w);
    }
}

static worker *take_finished(threads *ts)
{
    pthread_mutex_lock(&ts->lock);
    worker *list = ts->finished;
    ts->finished = NULL;
    pthread_mutex_unlock(&ts->lock);
    return list;
}

/* The loop's and drain's step: joins the threads that finished while
 * drain or close collects them. Drain calls it first thing, and from then
 * on until close, finished threads are collected: a thread that ends the
 * drain by finishing is joined by close, not left in its last steps. */
static void thread_reap(ss_server *srv)
{
    threads *ts = srv->dispatch_state;
    if (atomic_load(&srv->draining)) {
        pthread_mutex_lock(&ts->lock);
        ts->collect = true;
        pthread_mutex_unlock(&ts->lock);
    }
    join_all(take_finished(ts));
}

/* ---- one thread per request ---- */

static void unlink_worker(worker *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
}

/* The request is over: out of stats.tracked at once; the record goes to
 * whoever joins it, or is freed here if the thread lets itself go or
 * close already let it go. Either way the caller must not touch w
 * afterwards: a joiner may free it as soon as the lock is released. */
static void worker_done(ss_server *srv, worker *w)
{
    threads *ts = w->owner;
    pthread_mutex_lock(&ts->lock);
    unlink_worker(w);
    atomic_fetch_sub(&srv->count->tracked, 1);
    /* Outside drain and close nobody may come to join it (handle_request
     * runs no loop between calls): it lets itself go. `draining` covers
     * a drain that has not run its first reap step yet. */
    bool collected = ts->collect || atomic_load(&srv->draining);
    bool by_itself = w->detached || !collected;
    if (!w->detached) {
        ts->joinable--;
        pthread_cond_broadcast(&ts->changed);
    }
    if (by_itself && !w->detached)
        pthread_detach(pthread_self()); /* this is w's thread */
    if (!by_itself) {
        w->next = ts->finished;
        ts->finished = w;
    }
    pthread_mutex_unlock(&ts->lock);
    if (by_itself)
        free(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    threads *ts = w->owner;
    ss_request *req = w->req;
    ss_server *srv = req->server;
    req->waiter = &ss__waiter_thread; /* its own thread: may block, a stop does not cancel */
    req->server->host->run(req);
    req->server->host->end(req);
    worker_done(srv, w);
    threads_unref(ts);
    srv->host->unref(srv);
    return NULL;
}

/* The lock is held across pthread_create so the new thread cannot report
 * itself done before its record is on the running list. The counters go
 * up first: a client may see its answer before pthread_create returns. */
static int spawn(ss_server *srv, threads *ts, worker *w)
{
    atomic_fetch_add(&srv->count->tracked, 1);
    pthread_mutex_lock(&ts->lock);
    int rc = pthread_create(&w->tid, &ts->attr, worker_main, w);
    if (rc == 0) {
        w->prev = ts->running.prev;
        w->next = &ts->running;
        w->prev->next = w;
        ts->running.prev = w;
        ts->joinable++;
        ts->refs++;
    }
    pthread_mutex_unlock(&ts->lock);
    if (rc != 0)
        atomic_fetch_sub(&srv->count->tracked, 1);
    return -rc;
}

static void thread_process(ss_server *srv, ss_request *req)
{
    threads *ts = srv->dispatch_state;
    thread_reap(srv); /* what a drain left to join; Python's append reaps too */
    worker *w = calloc(1, sizeof *w);
    int rc = -ENOMEM;
    if (w != NULL) {
        *w = (worker){.owner = ts,
                      .req = req,
                      .daemon = atomic_load(&srv->dopt.daemon_threads),
                      .shared = req->listener->transport->replies_via_listener};
        srv->host->ref(srv); /* the thread still wakes the loop after its request */
        rc = spawn(srv, ts, w);
    }
    if (rc == 0)
        return;
    if (w != NULL) {
        free(w);
        srv->host->unref(srv);
    }
    atomic_fetch_add(&srv->count->spawn_failures, 1);
    req->server->host->fail(req, rc);
    req->server->host->end(req);
}

/* ---- close: join what block_on_close asks for, let the rest go ---- */

/* Detaches the running threads close will not wait for: daemon threads,
 * all of them without block_on_close, and the caller itself if a handler
 * closes its own server (joining itself would deadlock). Never one that
 * replies through the server's socket (datagram): once close has closed
 * that socket, its number may belong to an unrelated file, and the reply
 * would go there. */
static void let_go(ss_server *srv, threads *ts)
{
    bool block = ss__block_on_close(srv);
    pthread_t self = pthread_self();
    for (worker *w = ts->running.next; w != &ts->running; w = w->next) {
        bool wait = w->shared || (block && !w->daemon);
        if (wait && !pthread_equal(w->tid, self))
            continue;
        w->detached = true;
        pthread_detach(w->tid);
        ts->joinable--;
    }
}

static void thread_close(ss_server *srv)
{
    threads *ts = srv->dispatch_state;
    pthread_mutex_lock(&ts->lock);
    ts->collect = true;
    let_go(srv, ts);
    while (ts->joinable > 0)
        pthread_cond_wait(&ts->changed, &ts->lock);
    worker *list = ts->finished;
    ts->finished = NULL;
    pthread_mutex_unlock(&ts->lock);
    join_all(list);
    srv->dispatch_state = NULL;
    threads_unref(ts);
}

static const ss_dispatcher threading_dispatcher = {
    .name = "threading",
    .start = thread_start,
    .has_room = ss__dispatch_room_always,
    .process = thread_process,
    .reap = thread_reap,
    .max_wait_ms = ss__dispatch_max_wait_none,
    .interrupt_own = ss__dispatch_interrupt_own_none, /* the core shuts the sockets down */
    .close_idle = ss__dispatch_close_idle_none,
    .claim_client = ss__dispatch_claim_client_none,
    .close = thread_close,
    .accept_start = ss__dispatch_accept_start_none,
    .accept_stop = ss__dispatch_accept_stop_none,
    .accepting = ss__dispatch_accepting_none,
};

SS_API const ss_dispatcher *ss_dispatch_threading(void)
{
    return &threading_dispatcher;
}
