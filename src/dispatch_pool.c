/* The thread-pool dispatcher (not in Python): a fixed set of worker
 * threads started at activate, fed through a bounded queue of accepted
 * requests. When the queue is full the loop stops polling the listener, so
 * a burst waits in the kernel's backlog instead of growing our memory, and
 * the number of threads never depends on the number of clients. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define MIN_WORKERS     8
#define MAX_WORKERS     256
#define WORKERS_PER_CPU 4

typedef struct pool {
    pthread_mutex_t lock;
    pthread_cond_t work;  /* a request was queued, or close began */
    pthread_cond_t space; /* a request left the queue */
    ss_request **queue;   /* ring buffer */
    size_t cap, head, len;
    pthread_t *threads;
    size_t nthreads;
    bool closing;            /* workers end once the queue is empty ... */
    bool cancel;             /* ... or at once, leaving the queue to close */
    int refs;                /* close's + one per worker still running */
    int shared;              /* requests running that reply through the server's socket */
    pthread_cond_t unshared; /* shared fell to 0 */
    int server_fd;           /* that socket's number, read at activate: close changes srv->fd */
    ss_server *srv;
} pool;

/* Handlers mostly wait on their clients, and a worker stays with one
 * client for its whole connection: several workers per core keep the
 * cores busy. The floor lets a small machine still serve a handful of slow
 * clients at once; the ceiling bounds memory (256 small stacks). */
static size_t default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = (cpus > 0 ? cpus : 1) * WORKERS_PER_CPU;
    return (size_t)(n < MIN_WORKERS ? MIN_WORKERS : n > MAX_WORKERS ? MAX_WORKERS : n);
}

static void pool_unref(pool *p)
{
    pthread_mutex_lock(&p->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (!last)
        return;
    pthread_cond_destroy(&p->unshared);
    pthread_cond_destroy(&p->space);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p->queue);
    free(p);
}

/* ---- the queue (callers hold the lock) ---- */

static void push(pool *p, ss_request *req)
{
    p->queue[(p->head + p->len) % p->cap] = req;
    p->len++;
    atomic_fetch_add(&p->srv->dcount.queued, 1);
}

static ss_request *pop(pool *p)
{
    ss_request *req = p->queue[p->head];
    p->head = (p->head + 1) % p->cap;
    p->len--;
    atomic_fetch_sub(&p->srv->dcount.queued, 1);
    return req;
}

/* ---- workers ---- */

/* The next request, or NULL once close began and the queue is empty. */
static ss_request *next_request(pool *p)
{
    pthread_mutex_lock(&p->lock);
    while (p->len == 0 && !p->closing)
        pthread_cond_wait(&p->work, &p->lock);
    bool was_full = p->len == p->cap;
    ss_request *req = p->len > 0 && !p->cancel ? pop(p) : NULL;
    if (req != NULL)
        pthread_cond_signal(&p->space);
    if (req != NULL && req->fd == p->server_fd)
        p->shared++;
    pthread_mutex_unlock(&p->lock);
    if (was_full)
        ss__server_wake(p->srv); /* the loop may poll the listener again */
    return req;
}

static void request_done(pool *p, bool shared)
{
    if (!shared)
        return;
    pthread_mutex_lock(&p->lock);
    if (--p->shared == 0)
        pthread_cond_broadcast(&p->unshared);
    pthread_mutex_unlock(&p->lock);
}

static void *worker_main(void *arg)
{
    pool *p = arg;
    ss_server *srv = p->srv;
    ss_request *req;
    while ((req = next_request(p)) != NULL) {
        bool shared = req->fd == p->server_fd;
        atomic_fetch_add(&srv->dcount.active, 1);
        ss__request_run(req);
        ss__request_finish(req);
        atomic_fetch_sub(&srv->dcount.active, 1);
        request_done(p, shared);
    }
    atomic_fetch_sub(&srv->dcount.tracked, 1);
    pool_unref(p);
    ss__server_unref(srv);
    return NULL;
}

/* ---- start ---- */

static pool *pool_alloc(ss_server *srv)
{
    pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->nthreads = srv->dopt.workers > 0 ? (size_t)srv->dopt.workers : default_workers();
    p->cap = srv->dopt.queue_size > 0 ? (size_t)srv->dopt.queue_size : p->nthreads;
    p->queue = calloc(p->cap, sizeof *p->queue);
    p->threads = calloc(p->nthreads, sizeof *p->threads);
    if (p->queue == NULL || p->threads == NULL) {
        free(p->queue);
        free(p->threads);
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->space, NULL);
    pthread_cond_init(&p->unshared, NULL);
    p->refs = 1;
    p->srv = srv;
    p->server_fd = srv->fd;
    return p;
}

static int start_worker(ss_server *srv, pool *p, const pthread_attr_t *attr, size_t i)
{
    pthread_mutex_lock(&p->lock);
    p->refs++;
    pthread_mutex_unlock(&p->lock);
    ss__server_ref(srv);
    atomic_fetch_add(&srv->dcount.tracked, 1);
    int rc = pthread_create(&p->threads[i], attr, worker_main, p);
    if (rc == 0)
        return 0;
    atomic_fetch_sub(&srv->dcount.tracked, 1);
    atomic_fetch_add(&srv->dcount.spawn_failures, 1);
    ss__server_unref(srv);
    pool_unref(p); /* never the last: the caller holds one */
    return -rc;
}

/* Starts the workers; on failure p->nthreads counts the ones started. */
static int spawn_workers(ss_server *srv, pool *p)
{
    pthread_attr_t attr;
    int rc = ss__thread_attr_init(srv, &attr);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < p->nthreads; i++) {
        rc = start_worker(srv, p, &attr, i);
        if (rc < 0) {
            p->nthreads = i;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    return rc;
}

static void stop_workers(pool *p, bool join);

static int pool_start(ss_server *srv)
{
    pool *p = pool_alloc(srv);
    if (p == NULL)
        return -ENOMEM;
    int rc = spawn_workers(srv, p);
    if (rc < 0) {
        stop_workers(p, true);
        pool_unref(p);
        return rc;
    }
    srv->dispatch_state = p;
    return 0;
}

/* ---- the loop's side ---- */

static bool pool_accepting(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    pthread_mutex_lock(&p->lock);
    bool room = p->len < p->cap;
    pthread_mutex_unlock(&p->lock);
    return room;
}

/* The loop only accepts while there is room, and it is the only producer,
 * so the wait below is a safeguard rather than a path. */
static void pool_process(ss_server *srv, ss_request *req)
{
    pool *p = srv->dispatch_state;
    pthread_mutex_lock(&p->lock);
    while (p->len == p->cap)
        pthread_cond_wait(&p->space, &p->lock);
    push(p, req);
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->lock);
}

/* ---- close: drain (block_on_close) or cancel ---- */

/* Tells every worker to end: after the queue is empty, or at once with
 * cancel. */
static void begin_close(pool *p, bool cancel)
{
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    p->cancel = cancel;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
}

/* With join, waits for the workers; without, lets them go and the last
 * one out frees the pool. A handler closing its own server is never
 * joined by itself. */
static void stop_workers(pool *p, bool join)
{
    begin_close(p, !join);
    pthread_t self = pthread_self();
    for (size_t i = 0; i < p->nthreads; i++) {
        if (join && !pthread_equal(p->threads[i], self))
            pthread_join(p->threads[i], NULL);
        else
            pthread_detach(p->threads[i]);
    }
}

/* Shuts the queued requests down unhandled, each counted as cancelled.
 * Workers no longer take any (cancel is set). */
static void cancel_queued(ss_server *srv, pool *p)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        ss_request *req = p->len > 0 ? pop(p) : NULL;
        pthread_mutex_unlock(&p->lock);
        if (req == NULL)
            return;
        atomic_fetch_add(&srv->dcount.cancelled, 1);
        ss__request_finish(req);
    }
}

static bool is_worker(const pool *p, pthread_t thread)
{
    for (size_t i = 0; i < p->nthreads; i++)
        if (pthread_equal(p->threads[i], thread))
            return true;
    return false;
}

/* Even when close does not wait for the workers, it waits for requests
 * that reply through the server's socket (datagram): once the transport
 * has closed it, its number may belong to an unrelated file. Unless the
 * caller is a worker, which would wait for itself. */
static void wait_unshared(pool *p)
{
    if (is_worker(p, pthread_self()))
        return;
    pthread_mutex_lock(&p->lock);
    while (p->shared > 0)
        pthread_cond_wait(&p->unshared, &p->lock);
    pthread_mutex_unlock(&p->lock);
}

static void pool_close(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    bool block = ss__block_on_close(srv);
    stop_workers(p, block);
    if (!block) {
        cancel_queued(srv, p);
        wait_unshared(p);
    }
    srv->dispatch_state = NULL;
    pool_unref(p);
}

static const ss_dispatcher pool_dispatcher = {
    .name = "pool",
    .start = pool_start,
    .accepting = pool_accepting,
    .process = pool_process,
    .service = ss__dispatch_service_none,
    .max_wait_ms = ss__dispatch_max_wait_none,
    .close = pool_close,
};

SS_API const ss_dispatcher *ss_dispatch_pool(void)
{
    return &pool_dispatcher;
}
