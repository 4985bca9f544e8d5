/* The thread-pool dispatcher (not in Python): a fixed set of worker
 * threads started at activate, fed through a bounded queue of accepted
 * requests. When the queue is full the loop stops polling the listener, so
 * a burst waits in the kernel's backlog instead of growing our memory, and
 * the number of threads never depends on the number of clients.
 *
 * Each worker is an event loop (sched/scheduler.c): every request it takes runs on a
 * fiber of its own, and a handler whose request I/O would block parks
 * there while the worker runs the others. So a worker serves up to
 * `fibers` connections at once, idle ones costing a parked stack, not a
 * thread. Where fibers are not built in, a worker serves one request at a
 * time, start to end.
 *
 * While a loop serves (serve_forever), the workers take new connections
 * off the stream listeners themselves: each worker with room watches the
 * listeners in its own readiness set, with exclusive wake-ups (one
 * waiting worker woken per arrival, the first to have watched it if it
 * is idle, so light load stays on one worker), accepts through the
 * core's admission (srv->host->accept) and starts the request on a fiber
 * right there: a connection lives its whole life on the thread that
 * accepted it, with no queue, lock or thread wake-up between. A worker
 * stops watching when it is full, or when the core says no client may be
 * taken (a limit, the accept back-off, a stop, the hand-over); the loop's
 * reap step has it watch again once there is room. The loop and the
 * queue remain for what the workers do not take: datagram listeners,
 * handle_request and drain (no loop serving), a verify_request hook
 * (it runs where the loop runs), every worker full, and readiness sets
 * without exclusive wake-ups (poll(), no fibers). Sibling worker
 * processes take turns the same way (srv->seat, accepts_now). */
#include "dispatch/dispatch.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MIN_WORKERS     8
#define MAX_WORKERS     256
#define WORKERS_PER_CPU 4
#define TAKE_BATCH      16 /* requests a worker takes off the queue per lock */
#define ACCEPT_BATCH    16 /* clients a worker accepts per ready listener per turn */
/* Where new work goes: to the first worker with room that spent more than
 * a quarter of the last WINDOW_US waiting, so light load packs onto one
 * worker (one thread doing everything, as a hand-written epoll server
 * does, with no thread wake-up per request) and heavy load spreads over
 * as many as it keeps busy. A worker that has not come round its loop for
 * STUCK_US is inside a handler that blocks its thread: it gets nothing. */
#define WINDOW_US 10000
#define SPILL_PCT 75
#define STUCK_US  10000
/* Workers that watch the listeners and have slept this long: the loop
 * stops looking for stuck ones every STUCK_US, and the first of them to
 * wake wakes it (pool_max_wait_ms). */
#define QUIET_US 1000000
/* How often a worker process's loop looks for a client left in the
 * backlog of a listener its siblings share (look_for_stranded): at most
 * every LOOK_US, and, since its wait is bounded by STUCK_US while it
 * works, at least every STUCK_US + LOOK_US. It rests (no turn at all:
 * seat_may_rest) once its workers have slept for QUIET_US and nothing
 * woke it for as long. */
#define LOOK_US 5000
/* A sibling worker process whose loop has not come round for this long
 * (its loop turns at least every STUCK_US while it serves) is stopped,
 * killed or being replaced: the next process takes its clients
 * (accepts_now, srv->seat). Four turns missed, and a look's span: a
 * loop late on a busy machine only lets the next process watch too. */
#define SEAT_STALE_US (4 * STUCK_US + LOOK_US)

typedef struct pool pool;

typedef struct worker {
    pool *pool;
    pthread_t thread;
    ss__sched *sched;
    int wake[2]; /* new work or close, for a worker asleep in its readiness set */
    /* under the pool's lock: */
    bool alive;  /* the thread runs; wake[] is open */
    size_t room; /* fibers it may still start, less the requests it was woken for */
    /* A byte is waiting in wake[]: written under the lock, read by the
     * worker without it too (its fast path). */
    atomic_bool notified;
    /* written by the worker, read by the loop choosing where work goes */
    atomic_llong seen_us; /* the last time it came round its loop */
    atomic_bool waiting;  /* asleep in its readiness set since seen_us */
    atomic_int busy_pct;  /* share of the last window not spent asleep */
    /* the worker's own: the current window (its scheduler's clock and
     * sleep total at its start), ... */
    int64_t window_start_us, window_slept_us;
    /* ... the live count it last reported under the lock (room), and
     * whether it has seen close begin */
    size_t reported_live;
    bool saw_closing;
    /* Its readiness set holds the pool's sources (the listeners it
     * accepts on): changed under the lock, by the worker or by
     * accept_start/accept_stop; read by the worker without it. */
    atomic_bool listening;
    /* It has room but does not watch the listeners because the core said
     * no client may be taken: the loop's reap wakes it when that passes.
     * Written by the worker. */
    atomic_bool parked;
    /* Another worker stopped accepting, full, with clients perhaps still
     * waiting: try every listener once, ready or not (the kernel woke
     * that worker for them, not this one). */
    atomic_bool poked;
    /* Full, or busy past SPILL_PCT in its last window: the next worker
     * takes new connections too (accepts_now). Written by the worker. */
    atomic_bool spilling;
    atomic_bool has_live; /* fibers live as of its last turn: it can be stuck */
} worker;

struct pool {
    pthread_mutex_t lock;
    pthread_cond_t space; /* a request left the queue */
    ss_request **queue;   /* ring buffer */
    size_t cap, head, len;
    atomic_size_t queued; /* len, for a worker's look without the lock */
    worker *workers;
    size_t nworkers, started;
    size_t fibers;           /* requests one worker runs at once */
    bool closing;            /* workers end once the queue is empty ... */
    bool cancel;             /* ... or take no more, leaving the queue to close */
    int refs;                /* close's + one per worker still running */
    int shared;              /* requests running that reply through the server's socket */
    pthread_cond_t unshared; /* shared fell to 0 */
    ss_server *srv;
    /* Workers accepting for themselves, between accept_start and
     * accept_stop (accept_on). sources[] and nsources change only while
     * no worker can read them: before accept_on is set, and after it is
     * cleared and in_accept (workers that may have seen it set) is 0. */
    ss__listener *sources[SS__MAX_SOURCES]; /* by the id the schedulers know them by */
    int nsources;
    atomic_bool accept_on;
    atomic_int in_accept;
    pthread_cond_t accept_idle; /* in_accept fell to 0 with accept_on clear */
    atomic_int listening;       /* workers with listening set */
    atomic_int parked;          /* workers with parked set */
    atomic_bool no_sources;     /* the readiness set cannot watch a shared socket */
    /* The loop sleeps without looking for stuck workers: the next worker
     * that wakes (or watches the listeners, awake) must wake it. */
    atomic_bool loop_unwatched;
    /* A source other processes wait on too (other_waiters): the loop
     * looks at the sources every LOOK_US (look_for_stranded), when it
     * last did. Set by accept_start; the loop's own. */
    bool shared_sources;
    int64_t looked_us;
    /* The worker look_for_stranded last poked, and when: if it has not
     * come round its loop since by the next look, the process passes
     * (SS__PASS_HELD). The loop's own. */
    worker *poked_worker;
    int64_t poked_us;
    /* A worker process's loop rests (SS__SEAT_RESTING): its seat, and
     * when it last woke from a rest (or began serving). The loop's own. */
    bool resting;
    int64_t woke_us;
    bool seat_spill;  /* SS__PASS_SPILL as the last worker last set it: its own */
    bool seat_parked; /* SS__PASS_PARKED as the first worker last set it: its own */
    bool seat_stuck;  /* SS__PASS_STUCK as the loop last set it: its own */
};

/* With fibers, more workers than cores only matter for handlers that
 * block their thread outside request I/O (sleep, disk, a long lock); the
 * default keeps the old "several per core" so such handlers still share
 * the machine, and the ceiling bounds memory. */
static size_t default_workers(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long n = (cpus > 0 ? cpus : 1) * WORKERS_PER_CPU;
    return (size_t)(n < MIN_WORKERS ? MIN_WORKERS : n > MAX_WORKERS ? MAX_WORKERS : n);
}

static size_t fibers_per_worker(const ss_server *srv)
{
#if SS_HAVE_FIBERS
    return srv->dopt.fibers > 0 ? (size_t)srv->dopt.fibers : SS_DEFAULT_POOL_FIBERS;
#else
    (void)srv;
    return 1; /* a worker runs its request to the end */
#endif
}

SS_API int ss_server_set_pool_fibers(ss_server *srv, int fibers)
{
    if (fibers < 0)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    srv->dopt.fibers = fibers;
    return 0;
}

/* ---- a worker's own resources: its scheduler and wake-up pipe ---- */

static int worker_init(worker *w, pool *p, size_t stack_size)
{
    w->pool = p;
    w->wake[0] = w->wake[1] = -1;
    int rc = ss__pipe(w->wake);
    if (rc < 0)
        return rc;
    w->sched = ss__sched_new(stack_size, w->wake[0]);
    if (w->sched == NULL) {
        ss__close(&w->wake[0]);
        ss__close(&w->wake[1]);
        return -ENOMEM;
    }
    return 0;
}

static void worker_release(worker *w)
{
    ss__sched_free(w->sched);
    w->sched = NULL;
    ss__close(&w->wake[0]);
    ss__close(&w->wake[1]);
}

/* Caller holds the lock. One byte is enough: it stays until the worker
 * looks at the queue again. */
static void notify(worker *w)
{
    if (!w->alive || atomic_load_explicit(&w->notified, memory_order_relaxed))
        return;
    atomic_store_explicit(&w->notified, true, memory_order_relaxed);
    ssize_t ignored = write(w->wake[1], "", 1);
    (void)ignored;
}

/* Caller holds the lock. */
static void clear_notice(worker *w)
{
    if (!atomic_load_explicit(&w->notified, memory_order_relaxed))
        return;
    char buf[16];
    while (read(w->wake[0], buf, sizeof buf) > 0)
        ;
    atomic_store_explicit(&w->notified, false, memory_order_relaxed);
}

static void pool_unref(pool *p)
{
    pthread_mutex_lock(&p->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (!last)
        return;
    for (size_t i = 0; i < p->nworkers; i++)
        worker_release(&p->workers[i]); /* those that never ran */
    pthread_cond_destroy(&p->accept_idle);
    pthread_cond_destroy(&p->unshared);
    pthread_cond_destroy(&p->space);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p->queue);
    free(p);
}

/* ---- the queue (callers hold the lock) ---- */

static void push(pool *p, ss_request *req)
{
    p->queue[(p->head + p->len) % p->cap] = req;
    p->len++;
    atomic_store_explicit(&p->queued, p->len, memory_order_relaxed);
    atomic_fetch_add(&p->srv->count->queued, 1);
}

static ss_request *pop(pool *p)
{
    ss_request *req = p->queue[p->head];
    p->head = (p->head + 1) % p->cap;
    p->len--;
    atomic_store_explicit(&p->queued, p->len, memory_order_relaxed);
    atomic_fetch_sub(&p->srv->count->queued, 1);
    return req;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* How busy a worker is for new work: 0 if it is asleep right now, its
 * last window's share otherwise, or -1 if it is stuck in a handler. */
static int load_of(worker *w, int64_t now)
{
    int64_t idle_for = now - atomic_load_explicit(&w->seen_us, memory_order_relaxed);
    if (atomic_load_explicit(&w->waiting, memory_order_relaxed))
        return idle_for > 1000 ? 0 : atomic_load_explicit(&w->busy_pct, memory_order_relaxed);
    return idle_for > STUCK_US ? -1 : atomic_load_explicit(&w->busy_pct, memory_order_relaxed);
}

/* Caller holds the lock. Wakes the first worker with room and time to
 * spare, else the least busy one with room. With none, the request waits
 * for the first worker whose fiber ends. */
static void wake_a_worker(pool *p)
{
    int64_t now = now_us();
    worker *best = NULL;
    int best_load = 101;
    for (size_t i = 0; i < p->started; i++) {
        worker *w = &p->workers[i];
        int load = w->alive && w->room > 0 ? load_of(w, now) : -1;
        if (load >= 0 && load < SPILL_PCT) {
            best = w;
            break;
        }
        if (load >= 0 && load < best_load) {
            best = w;
            best_load = load;
        }
    }
    if (best == NULL)
        return;
    best->room--; /* promised: the next request looks elsewhere if it is full */
    notify(best);
}

/* ---- a request on a fiber ---- */

static void request_done(pool *p, bool shared)
{
    if (!shared)
        return;
    pthread_mutex_lock(&p->lock);
    if (--p->shared == 0)
        pthread_cond_broadcast(&p->unshared);
    pthread_mutex_unlock(&p->lock);
}

/* How a request on a worker waits: on a fiber it parks, so the worker
 * serves others; without fibers, spawn runs it on the worker's own thread
 * to its end. */
#if SS_HAVE_FIBERS
#define SPAWNED_WAITER (&ss__waiter_fiber)
#else
#define SPAWNED_WAITER (&ss__waiter_thread)
#endif

/* The fiber's whole life. The socket leaves the readiness set before
 * finish closes it, so a recycled descriptor number never reaches a
 * stale registration. */
static void serve(void *pool_arg, void *req_arg)
{
    pool *p = pool_arg;
    ss_request *req = req_arg;
    bool shared = ss__replies_via_listener(req);
    req->waiter = SPAWNED_WAITER;
    req->server->host->run(req);
    ss__fiber_forget_fd();
    req->server->host->end(req);
    request_done(p, shared);
}

/* A worker woke, or watches the listeners now, awake: if the loop sleeps
 * without looking for stuck workers, it must look again (the other half
 * of pool_max_wait_ms's handshake: both sides store, then load,
 * sequentially consistent, so one of them sees the other). */
static void tell_loop_if_unwatched(pool *p)
{
    if (atomic_load(&p->loop_unwatched) && atomic_exchange(&p->loop_unwatched, false))
        p->srv->host->wake(p->srv);
}

static void start_request(pool *p, worker *w, ss_request *req)
{
    int rc = ss__sched_spawn(w->sched, serve, p, req);
    if (rc == 0) {
        /* it may block its thread before this turn's meter: stuck() must know */
        atomic_store_explicit(&w->has_live, true, memory_order_relaxed);
        return;
    }
    bool shared = ss__replies_via_listener(req);
    atomic_fetch_add(&p->srv->count->spawn_failures, 1);
    req->server->host->fail(req, rc);
    req->server->host->end(req);
    request_done(p, shared);
}

/* ---- workers ---- */

/* Keeps the worker's load figure for wake_a_worker: the share of each
 * window of WINDOW_US it did not spend asleep. On the loop's clock: no
 * clock read of its own. */
static void meter(worker *w)
{
    int64_t now = ss__sched_now_us(w->sched);
    atomic_store_explicit(&w->seen_us, now, memory_order_relaxed);
    atomic_store_explicit(&w->has_live, ss__sched_live(w->sched) > 0, memory_order_relaxed);
    int64_t span = now - w->window_start_us;
    if (span < WINDOW_US)
        return;
    int64_t slept = ss__sched_slept_us(w->sched) - w->window_slept_us;
    int busy = (int)(100 - 100 * (slept < span ? slept : span) / span);
    atomic_store_explicit(&w->busy_pct, busy, memory_order_relaxed);
    w->window_start_us = now;
    w->window_slept_us += slept;
}

/* Whether the worker can skip the pool's lock this turn: nothing is
 * queued, nobody woke it, close has not begun, and its live count is what
 * the pool last heard (so its room there is right). A request queued
 * meanwhile is not lost: whoever queues it wakes a worker with room
 * through wake[], which this worker's poll sees (wake_a_worker). */
static bool nothing_to_take(pool *p, worker *w, size_t live)
{
    return live == w->reported_live && !w->saw_closing &&
           atomic_load_explicit(&p->queued, memory_order_relaxed) == 0 &&
           !atomic_load_explicit(&w->notified, memory_order_relaxed);
}

/* Takes queued requests while the worker has room and starts a fiber for
 * each. Returns false when the worker should end: close began, nothing is
 * live, and the queue is empty or cancelled. */
static bool take_work(pool *p, worker *w)
{
    ss_request *batch[TAKE_BATCH];
    size_t n = 0, live = ss__sched_live(w->sched);
    meter(w);
    if (nothing_to_take(p, w, live))
        return true;
    pthread_mutex_lock(&p->lock);
    clear_notice(w);
    bool was_full = p->len == p->cap;
    while (n < TAKE_BATCH && p->len > 0 && !p->cancel && live + n < p->fibers) {
        batch[n] = pop(p);
        p->shared += ss__replies_via_listener(batch[n]);
        n++;
    }
    if (n > 0)
        pthread_cond_signal(&p->space);
    w->room = p->fibers - (live + n);
    w->reported_live = live + n;
    w->saw_closing = p->closing;
    bool go_on = live + n > 0 || !p->closing || (p->len > 0 && !p->cancel);
    pthread_mutex_unlock(&p->lock);
    if (was_full && n > 0)
        p->srv->host->wake(p->srv); /* the loop may poll the listener again */
    for (size_t i = 0; i < n; i++)
        start_request(p, w, batch[i]);
    return go_on;
}

/* Before the worker blocks in its readiness set (with or without live
 * fibers): says whether it has room, so that new work wakes it, and false
 * if there is work to take right now or close wants it to end. */
static bool may_sleep(pool *p, worker *w)
{
    size_t live = ss__sched_live(w->sched);
    if (nothing_to_take(p, w, live))
        return true;
    pthread_mutex_lock(&p->lock);
    w->room = p->fibers - live;
    w->reported_live = live;
    w->saw_closing = p->closing;
    bool work_waits = w->room > 0 && p->len > 0 && !p->cancel;
    bool sleep = !work_waits && !atomic_load_explicit(&w->notified, memory_order_relaxed) &&
                 !(p->closing && live == 0);
    pthread_mutex_unlock(&p->lock);
    return sleep;
}

/* Also with fibers still runnable (the scheduler's starvation guard):
 * then the poll only collects events, without waiting. */
static void sleep_in_readiness_set(pool *p, worker *w)
{
    atomic_store_explicit(&w->waiting, true, memory_order_relaxed);
    ss__sched_poll(w->sched);
    atomic_store(&w->waiting, false);
    tell_loop_if_unwatched(p);
}

/* ---- accepting in the workers ---- */

/* Caller holds the lock. All of the sources or none. */
static int watch_sources(pool *p, worker *w)
{
    for (int i = 0; i < p->nsources; i++) {
        const ss__listener *l = p->sources[i];
        bool exclusive = !l->adopted; /* objects.h says why */
        int rc = ss__sched_watch_source(w->sched, (unsigned)i, p->sources[i]->fd, exclusive);
        if (rc < 0) {
            while (i-- > 0)
                ss__sched_unwatch_source(w->sched, p->sources[i]->fd);
            return rc;
        }
    }
    atomic_store(&w->listening, true);
    atomic_fetch_add(&p->listening, 1);
    tell_loop_if_unwatched(p);
    return 0;
}

/* Caller holds the lock. When the last worker stops watching, the loop
 * is woken (tell_loop) to poll the listeners itself, into the queue. */
static void unwatch_sources(pool *p, worker *w, bool tell_loop)
{
    for (int i = 0; i < p->nsources; i++)
        ss__sched_unwatch_source(w->sched, p->sources[i]->fd);
    atomic_store(&w->listening, false);
    if (atomic_fetch_sub(&p->listening, 1) == 1 && tell_loop)
        p->srv->host->wake(p->srv);
}

static void set_parked(pool *p, worker *w, bool parked)
{
    if (atomic_load_explicit(&w->parked, memory_order_relaxed) == parked)
        return;
    atomic_store(&w->parked, parked);
    atomic_fetch_add(&p->parked, parked ? 1 : -1);
}

/* A worker in a handler that blocks its thread: it has fibers, is not
 * asleep, and has not come round its loop for STUCK_US. */
static bool stuck(worker *w, int64_t now)
{
    return atomic_load_explicit(&w->has_live, memory_order_relaxed) &&
           !atomic_load_explicit(&w->waiting, memory_order_relaxed) &&
           now - atomic_load_explicit(&w->seen_us, memory_order_relaxed) > STUCK_US;
}

/* Whether new connections are this worker's to take: the first worker's
 * always; another's only while the one before it spills (full, or busy
 * past SPILL_PCT) or is stuck. So light load packs onto the first worker
 * (one thread doing everything, as a hand-written epoll server: fewer
 * wake-ups per request than connections spread over every worker) and
 * heavier load spreads over as many as it keeps busy, as for queued work
 * (wake_a_worker). */
static bool seat_passes(const ss__seat *seat, int64_t now)
{
    return atomic_load_explicit(&seat->passing, memory_order_relaxed) != 0 ||
           now - atomic_load_explicit(&seat->seen_us, memory_order_relaxed) > SEAT_STALE_US;
}

/* Sets or clears bits of this process's seat (a worker process with
 * siblings only). */
static void seat_mark(const pool *p, unsigned bits, bool set)
{
    ss__seat *seat = p->srv->seat;
    if (seat == NULL)
        return;
    if (set)
        atomic_fetch_or(&seat->passing, bits);
    else
        atomic_fetch_and(&seat->passing, ~bits);
}

/* The same across worker processes (srv->seat): a process's first worker
 * takes new connections only while the process before it passes them on
 * (its last worker spills or is stuck, it is parked or does not accept,
 * a worker it poked for a waiting client is held) or has not come round
 * its loop for
 * SEAT_STALE_US (stopped, killed, being replaced). */
static bool accepts_now(pool *p, worker *w, int64_t now)
{
    if (w == &p->workers[0])
        return p->srv->seat_before == NULL || seat_passes(p->srv->seat_before, now);
    worker *prev = w - 1;
    return atomic_load_explicit(&prev->spilling, memory_order_relaxed) || stuck(prev, now);
}

/* Caller holds the lock. The next worker, asleep perhaps, looks again
 * at whether new connections are its to take. */
static void tell_next(pool *p, worker *w)
{
    size_t next = (size_t)(w - p->workers) + 1;
    if (next < p->started && !atomic_load(&p->workers[next].listening))
        notify(&p->workers[next]);
}

static void set_spilling(pool *p, worker *w, bool spilling)
{
    if (atomic_load_explicit(&w->spilling, memory_order_relaxed) == spilling)
        return;
    atomic_store(&w->spilling, spilling);
    /* the next one stops on its own next turn; the last has none to tell */
    if (!spilling || (size_t)(w - p->workers) + 1 >= p->nworkers)
        return;
    pthread_mutex_lock(&p->lock);
    tell_next(p, w);
    pthread_mutex_unlock(&p->lock);
}

/* Tells the next worker process whether it takes clients too: the
 * last worker whether it spills (so does every worker before it, or is
 * stuck: the whole process is busy), the first whether the core lets no
 * client in, the loop whether the last is stuck. The atomic only when
 * that changes; *cache is the writer's own. */
static void publish_pass(pool *p, bool *cache, unsigned bit, bool on)
{
    if (p->srv->seat == NULL || on == *cache)
        return;
    *cache = on;
    seat_mark(p, bit, on);
}

/* Once per turn: watch the listeners while accepting is on, the worker
 * has a fiber free, new connections are its to take and the core lets
 * clients in; stop otherwise. The lock only when that changes. A
 * readiness set that cannot watch them (-ENOTSUP) leaves accepting to
 * the loop for good. */
static void tune_listening(pool *p, worker *w)
{
    bool on = atomic_load(&p->accept_on) && !atomic_load(&p->no_sources);
    bool full = ss__sched_live(w->sched) >= p->fibers;
    set_spilling(
        p, w,
        on && (full || atomic_load_explicit(&w->busy_pct, memory_order_relaxed) >= SPILL_PCT));
    bool mine = on && !full && accepts_now(p, w, ss__sched_now_us(w->sched));
    bool want = mine && p->srv->host->accept_room(p->srv);
    set_parked(p, w, mine && !want);
    if (w == &p->workers[0])
        publish_pass(p, &p->seat_parked, SS__PASS_PARKED, mine && !want);
    if (w == &p->workers[p->nworkers - 1])
        publish_pass(p, &p->seat_spill, SS__PASS_SPILL,
                     atomic_load_explicit(&w->spilling, memory_order_relaxed));
    if (want == atomic_load_explicit(&w->listening, memory_order_relaxed))
        return;
    pthread_mutex_lock(&p->lock);
    if (want && atomic_load(&p->accept_on) && !atomic_load(&w->listening)) {
        if (watch_sources(p, w) == -ENOTSUP)
            atomic_store(&p->no_sources, true);
    } else if (!want && atomic_load(&w->listening)) {
        unwatch_sources(p, w, true);
    }
    pthread_mutex_unlock(&p->lock);
}

static void leave_accept(pool *p)
{
    if (atomic_fetch_sub(&p->in_accept, 1) != 1 || atomic_load(&p->accept_on))
        return;
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->accept_idle);
    pthread_mutex_unlock(&p->lock);
}

/* An exclusive wake-up goes to one waiting worker per arrival: a worker
 * that fills up before taking every client it was woken for passes them
 * on to another worker that watches the listeners (with none, its own
 * unwatch_sources wakes the loop, which then takes them). self NULL (the
 * loop, look_for_stranded): the first worker that watches. */
static worker *pass_on(pool *p, worker *self)
{
    worker *poked = NULL;
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->started && poked == NULL; i++) {
        worker *w = &p->workers[i];
        if (w != self && w->alive && atomic_load(&w->listening)) {
            atomic_store(&w->poked, true);
            notify(w);
            poked = w;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return poked;
}

/* Up to ACCEPT_BATCH clients off one listener, each started on a fiber
 * of this worker at once, while it has fibers free and the core lets
 * clients in (checked before each: a back-off begun by another worker,
 * a stop). A client refused by admission costs nothing more here.
 * Returns true if it stopped at the batch's end: more may be waiting. */
static bool accept_from(pool *p, worker *w, ss__listener *l)
{
    ss_server *srv = p->srv;
    for (int n = 0; n < ACCEPT_BATCH; n++) {
        if (ss__sched_live(w->sched) >= p->fibers) {
            pass_on(p, w);
            return false;
        }
        if (!srv->host->accept_room(srv))
            return false;
        ss_request *req;
        int rc = srv->host->accept(l, &req);
        if (rc < 0)
            return false; /* none waiting, at the limit, or failing: tune_listening sees to it */
        if (rc > 0)
            start_request(p, w, req);
    }
    return true;
}

/* A poke's clients were more than a batch: the worker pokes itself, so
 * that it goes on next turn (no wake-up of the kernel's will come for
 * them: they arrived while another worker, or process, was woken). */
static void poke_again(pool *p, worker *w)
{
    pthread_mutex_lock(&p->lock);
    atomic_store(&w->poked, true);
    notify(w);
    pthread_mutex_unlock(&p->lock);
}

/* The listeners the last poll found ready. Inside in_accept, so that
 * accept_stop can wait until no worker is still taking a client. */
static void accept_arrivals(pool *p, worker *w)
{
    uint64_t ready = ss__sched_take_sources(w->sched);
    bool poked =
        atomic_load_explicit(&w->poked, memory_order_relaxed) && atomic_exchange(&w->poked, false);
    if (poked)
        ready = UINT64_MAX;
    if (ready == 0)
        return;
    bool more = false;
    atomic_fetch_add(&p->in_accept, 1);
    if (atomic_load(&p->accept_on))
        for (int id = 0; id < p->nsources && ready != 0; id++, ready >>= 1)
            if (ready & 1)
                more |= accept_from(p, w, p->sources[id]);
    leave_accept(p);
    if (poked && more)
        poke_again(p, w);
}

static void worker_exit(pool *p, worker *w)
{
    pthread_mutex_lock(&p->lock);
    w->alive = false; /* nobody writes to wake[] any more */
    if (atomic_load(&w->listening))
        unwatch_sources(p, w, false); /* closed without accept_stop (from a handler) */
    pthread_mutex_unlock(&p->lock);
    set_parked(p, w, false);
    worker_release(w);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pool *p = w->pool;
    ss_server *srv = p->srv;
    ss__sched_enter(w->sched);
    w->window_start_us = ss__sched_now_us(w->sched);
    while (take_work(p, w)) {
        accept_arrivals(p, w);
        ss__sched_run(w->sched);
        tune_listening(p, w);
        if (may_sleep(p, w))
            sleep_in_readiness_set(p, w);
    }
    ss__sched_enter(NULL);
    worker_exit(p, w);
    atomic_fetch_sub(&srv->count->tracked, 1);
    pool_unref(p);
    srv->host->unref(srv);
    return NULL;
}

/* ---- start ---- */

static pool *pool_alloc(ss_server *srv)
{
    pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->nworkers = srv->dopt.workers > 0 ? (size_t)srv->dopt.workers : default_workers();
    p->cap = srv->dopt.queue_size > 0 ? (size_t)srv->dopt.queue_size : p->nworkers;
    p->fibers = fibers_per_worker(srv);
    p->queue = calloc(p->cap, sizeof *p->queue);
    p->workers = calloc(p->nworkers, sizeof *p->workers);
    if (p->queue == NULL || p->workers == NULL) {
        free(p->queue);
        free(p->workers);
        free(p);
        return NULL;
    }
    for (size_t i = 0; i < p->nworkers; i++)
        p->workers[i].wake[0] = p->workers[i].wake[1] = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->space, NULL);
    pthread_cond_init(&p->unshared, NULL);
    pthread_cond_init(&p->accept_idle, NULL);
    p->refs = 1;
    p->srv = srv;
    return p;
}

/* Fiber stacks are as large as handler threads' stacks would be: the
 * same handler code runs on them. */
static size_t fiber_stack_size(const ss_server *srv)
{
    return srv->dopt.stack_size ? srv->dopt.stack_size : SS_DEFAULT_THREAD_STACK_SIZE;
}

static int start_worker(ss_server *srv, pool *p, const pthread_attr_t *attr, worker *w)
{
    int rc = worker_init(w, p, fiber_stack_size(srv));
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&p->lock);
    p->refs++;
    w->alive = true;
    w->room = p->fibers;
    pthread_mutex_unlock(&p->lock);
    atomic_store(&w->seen_us, now_us()); /* not "stuck" before it first runs */
    srv->host->ref(srv);
    atomic_fetch_add(&srv->count->tracked, 1);
    rc = pthread_create(&w->thread, attr, worker_main, w);
    if (rc == 0)
        return 0;
    w->alive = false;
    atomic_fetch_sub(&srv->count->tracked, 1);
    atomic_fetch_add(&srv->count->spawn_failures, 1);
    srv->host->unref(srv);
    pool_unref(p); /* never the last: the caller holds one */
    return -rc;
}

/* Starts the workers; p->started counts the ones running. */
static int spawn_workers(ss_server *srv, pool *p)
{
    pthread_attr_t attr;
    int rc = ss__thread_attr_init(srv, &attr);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < p->nworkers && rc == 0; i++) {
        rc = start_worker(srv, p, &attr, &p->workers[i]);
        if (rc == 0)
            p->started++;
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

static bool pool_has_room(ss_server *srv)
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
    wake_a_worker(p);
    pthread_mutex_unlock(&p->lock);
}

/* ---- the loop's side of accepting in the workers ---- */

/* Tells a worker process's control thread (core/prefork_worker.c) to
 * look at the seat again: resting, it watches the listeners for the
 * loop, and wakes it for the next arrival; else not. */
static void tell_control(const pool *p)
{
    char byte = 1;
    if (write(p->srv->seat_rest, &byte, 1) < 0) {
        /* full: it has a byte to read already */
    }
}

/* The loop works again (it woke, or stops serving): its seat runs on its
 * clock, and its control thread stops watching the listeners. */
static void end_rest(pool *p, int64_t now)
{
    if (!p->resting)
        return;
    p->resting = false;
    p->woke_us = now;
    atomic_store(&p->srv->seat->seen_us, now);
    tell_control(p);
}

/* serve_forever begins: the workers with room watch the listeners the
 * core marked (those without room start as they get some). False leaves
 * them all to the loop: more than a readiness set's sources, or a set
 * that cannot watch a shared socket. */
static bool pool_accept_start(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    int n = 0;
    for (int i = 0; i < srv->nlisteners; i++)
        n += srv->listeners[i]->worker_accept;
    if (n > SS__MAX_SOURCES || atomic_load(&p->no_sources))
        return false;
    pthread_mutex_lock(&p->lock);
    p->nsources = 0;
    p->shared_sources = false;
    for (int i = 0; i < srv->nlisteners; i++) {
        if (!srv->listeners[i]->worker_accept)
            continue;
        p->sources[p->nsources++] = srv->listeners[i];
        p->shared_sources |= srv->listeners[i]->other_waiters;
    }
    /* the first worker with room watches now (which also shows whether
     * the readiness set can); the others look for themselves */
    int rc = 0;
    size_t first = 0;
    while (first < p->started && !(p->workers[first].alive && p->workers[first].room > 0))
        first++;
    if (first < p->started)
        rc = watch_sources(p, &p->workers[first]);
    if (rc == -ENOTSUP)
        atomic_store(&p->no_sources, true);
    atomic_store(&p->accept_on, rc != -ENOTSUP);
    for (size_t i = 0; i < p->started && rc != -ENOTSUP; i++)
        if (i != first)
            notify(&p->workers[i]);
    pthread_mutex_unlock(&p->lock);
    if (rc != -ENOTSUP && p->srv->seat != NULL) {
        p->woke_us = now_us();
        p->resting = false;
        atomic_store(&p->srv->seat->seen_us, p->woke_us);
        seat_mark(p, SS__PASS_OFF | SS__PASS_HELD, false);
    }
    return rc != -ENOTSUP;
}

/* serve_forever ends: no worker takes a client once this returns, and
 * none watches a listener (drain may close them). Waits only for workers
 * inside an accept (a handler is never inside one). */
static void pool_accept_stop(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    if (p == NULL || !atomic_exchange(&p->accept_on, false))
        return;
    seat_mark(p, SS__PASS_OFF, true); /* the next process takes the clients now */
    end_rest(p, now_us());            /* its control thread stops watching */
    pthread_mutex_lock(&p->lock);
    while (atomic_load(&p->in_accept) > 0)
        pthread_cond_wait(&p->accept_idle, &p->lock);
    for (size_t i = 0; i < p->started; i++)
        if (atomic_load(&p->workers[i].listening))
            unwatch_sources(p, &p->workers[i], false);
    p->nsources = 0;
    pthread_mutex_unlock(&p->lock);
}

/* Another worker process takes the clients (accepts_now): this one's
 * loop must not poll the listener itself either. */
static bool off_duty(pool *p, int64_t now)
{
    return atomic_load(&p->accept_on) && !accepts_now(p, &p->workers[0], now);
}

/* A parked worker counts, and so does a process whose turn has not come:
 * the loop's reap has it watch again as soon as
 * the core lets clients in, and the client goes to it, not the queue. */
static bool pool_accepting(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    return atomic_load(&p->listening) + atomic_load(&p->parked) > 0 || off_duty(p, now_us());
}

static bool sources_readable(const pool *p)
{
    struct pollfd fds[SS__MAX_SOURCES];
    for (int i = 0; i < p->nsources; i++)
        fds[i] = (struct pollfd){.fd = p->sources[i]->fd, .events = POLLIN};
    return poll(fds, (nfds_t)p->nsources, 0) > 0;
}

/* This process does not watch, and the one before it rests: if a client
 * waits all the same, that process's control thread should have woken
 * its loop for it. Stamped with this clock, its seat goes stale within
 * SEAT_STALE_US unless its loop comes round (stopped while at rest), and
 * this process takes its turn. */
static void stamp_resting_before(pool *p, int64_t now)
{
    ss__seat *before = p->srv->seat_before;
    if (before != NULL && atomic_load(&before->seen_us) == SS__SEAT_RESTING && sources_readable(p))
        ss__seat_stamp_resting(before, now);
}

/* Sibling worker processes (ss_server_set_processes) watch a shared
 * listener with exclusive wake-ups too: the kernel wakes one waiting
 * loop of one process per arrival. A process woken that then takes no
 * client (stopped or killed before its accept, paused, at its own limit,
 * its worker full) leaves it in the backlog, and no other wake-up comes
 * for it until the next arrival. So while a worker here watches, the
 * loop looks at the sources every LOOK_US to STUCK_US + LOOK_US; a client
 * waiting in one gets a watching worker poked, which tries each source
 * (EAGAIN if another took it meanwhile). If that worker has not come
 * round its loop by the next look (held between its wake-up and its
 * accept), the process passes its turn (SS__PASS_HELD) until it has, and
 * the next process takes the client. A process that does not watch
 * looks too while the one before it rests (stamp_resting_before). While
 * the loop rests it does not look: its control thread wakes it for the
 * next arrival (seat_rest). docs/internals.md has the argument that no
 * client waits longer while a process watches. */
static void look_for_stranded(pool *p, int64_t now)
{
    if (!p->shared_sources || now - p->looked_us < LOOK_US)
        return;
    p->looked_us = now;
    worker *poked = p->poked_worker;
    bool held = poked != NULL && atomic_load(&poked->listening) &&
                atomic_load_explicit(&poked->seen_us, memory_order_relaxed) < p->poked_us;
    if (!held)
        p->poked_worker = NULL;
    if (atomic_load(&p->listening) == 0) {
        seat_mark(p, SS__PASS_HELD, false);
        stamp_resting_before(p, now);
        return;
    }
    if (!sources_readable(p)) {
        seat_mark(p, SS__PASS_HELD, false);
        return;
    }
    seat_mark(p, SS__PASS_HELD, held); /* then the next process takes the client */
    if (!held) {
        p->poked_worker = pass_on(p, NULL);
        p->poked_us = now;
    }
}

/* A worker process with siblings: says it is alive (its seat), and has
 * its first worker look again when its turn to take clients came or
 * went with the process before it (no wake-up crosses processes: this
 * look, every STUCK_US at most while the loop works, is the bound; an
 * arrival wakes a resting loop, its control thread watching). */
static void take_turn(pool *p, int64_t now)
{
    if (p->srv->seat == NULL)
        return;
    atomic_store_explicit(&p->srv->seat->seen_us, now, memory_order_relaxed);
    if (p->started == 0)
        return;
    worker *last = &p->workers[p->nworkers - 1];
    publish_pass(p, &p->seat_stuck, SS__PASS_STUCK,
                 atomic_load(&last->listening) && stuck(last, now));
    worker *first = &p->workers[0];
    if (p->srv->seat_before == NULL)
        return;
    bool turn = accepts_now(p, first, now);
    bool idle = !atomic_load(&first->spilling) && !atomic_load(&first->parked);
    if (turn != atomic_load(&first->listening) && (!turn || idle)) {
        pthread_mutex_lock(&p->lock);
        notify(first);
        pthread_mutex_unlock(&p->lock);
    }
}

/* Each loop turn: workers parked by the core (a limit, the back-off)
 * watch again once it lets clients in. The loop is woken when a limit
 * makes room (ss__place_give_back) and times the back-off's pause. */
static void pool_reap(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    if (!atomic_load(&p->accept_on))
        return;
    int64_t now = now_us();
    if (srv->seat != NULL)
        end_rest(p, now);
    bool rearm = atomic_load(&p->parked) > 0 && srv->host->accept_room(srv);
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->started; i++) {
        worker *w = &p->workers[i];
        if (rearm && atomic_load(&w->parked))
            notify(w);
        if (atomic_load(&w->listening) && stuck(w, now))
            tell_next(p, w); /* it cannot take its clients: the next one does */
    }
    pthread_mutex_unlock(&p->lock);
    take_turn(p, now);
    look_for_stranded(p, now);
}

/* Whether a worker that watches the listeners is awake (it may be stuck
 * in a handler), or woke within QUIET_US (it may wake again soon);
 * *watching: some worker watches them. */
static bool awake_watchers(pool *p, int64_t quiet_since, bool *watching)
{
    for (size_t i = 0; i < p->started; i++) {
        worker *w = &p->workers[i];
        if (!atomic_load(&w->listening))
            continue;
        *watching = true;
        if (!atomic_load(&w->waiting) || atomic_load(&w->seen_us) > quiet_since)
            return true;
    }
    return false;
}

/* A worker process's loop turns every STUCK_US while it works, for its
 * seat (take_turn) and its looks (look_for_stranded). It may rest once
 * neither has anything to do: its workers that watch the listeners have
 * slept for QUIET_US and nothing woke the loop for as long, no worker is
 * parked (the reap rearms it) or poked for a waiting client, it passes
 * its turn for no worker held or stuck, and no client waits in a
 * listener. */
static bool seat_may_rest(pool *p, int64_t now)
{
    bool watching = false;
    unsigned held = SS__PASS_HELD | SS__PASS_STUCK;
    return now - p->woke_us >= QUIET_US && p->poked_worker == NULL &&
           atomic_load(&p->parked) == 0 && (atomic_load(&p->srv->seat->passing) & held) == 0 &&
           !awake_watchers(p, now - QUIET_US, &watching) && !sources_readable(p);
}

/* The loop rests: no turn until something wakes it. Its seat says so
 * (the next process then never finds it stale by its clock), its control
 * thread watches the listeners and wakes it for the next arrival, and,
 * as without a seat, the first worker to wake or watch awake wakes it
 * (the flag set before the last look). Returns the loop's wait. */
static int seat_rest(pool *p)
{
    atomic_store(&p->loop_unwatched, true);
    atomic_store(&p->srv->seat->seen_us, SS__SEAT_RESTING);
    bool watching = false;
    if (awake_watchers(p, INT64_MAX, &watching)) {
        atomic_store(&p->loop_unwatched, false);
        atomic_store(&p->srv->seat->seen_us, now_us());
        return STUCK_US / 1000;
    }
    p->resting = true;
    tell_control(p);
    return -1;
}

/* A worker that watches the listeners may get stuck in a handler that
 * blocks its thread: while they work, the loop looks every STUCK_US
 * (pool_reap), 100 wake-ups a second at most. Once all of them have slept
 * for QUIET_US, the loop sleeps on (an idle server wakes for nothing)
 * and says so: the first of them to wake, or to watch awake, wakes it
 * (tell_loop_if_unwatched). The flag is set before the last look, so a
 * worker waking meanwhile is seen by one side or the other. */
static int pool_max_wait_ms(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    atomic_store(&p->loop_unwatched, false);
    if (!atomic_load(&p->accept_on))
        return -1;
    if (srv->seat != NULL)
        return seat_may_rest(p, now_us()) ? seat_rest(p) : STUCK_US / 1000;
    bool watching = false;
    if (awake_watchers(p, now_us() - QUIET_US, &watching))
        return STUCK_US / 1000;
    if (!watching)
        return -1;
    atomic_store(&p->loop_unwatched, true);
    if (!awake_watchers(p, INT64_MAX, &watching))
        return -1;
    atomic_store(&p->loop_unwatched, false);
    return STUCK_US / 1000;
}

/* ---- close: drain (block_on_close) or cancel ---- */

/* Tells every worker to end: after the queue is empty, or without taking
 * more with cancel. Either way a worker first finishes its live fibers. */
static void begin_close(pool *p, bool cancel)
{
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    p->cancel = cancel;
    for (size_t i = 0; i < p->started; i++)
        notify(&p->workers[i]);
    pthread_mutex_unlock(&p->lock);
}

/* With join, waits for the workers; without, lets them go and the last
 * one out frees the pool. A handler closing its own server is never
 * joined by its own worker. */
static void stop_workers(pool *p, bool join)
{
    begin_close(p, !join);
    pthread_t self = pthread_self();
    for (size_t i = 0; i < p->started; i++) {
        if (join && !pthread_equal(p->workers[i].thread, self))
            pthread_join(p->workers[i].thread, NULL);
        else
            pthread_detach(p->workers[i].thread);
    }
}

/* Shuts the queued requests down unhandled, each counted as cancelled. */
static void cancel_queued(ss_server *srv, pool *p)
{
    for (;;) {
        pthread_mutex_lock(&p->lock);
        ss_request *req = p->len > 0 ? pop(p) : NULL;
        pthread_cond_signal(&p->space);
        pthread_mutex_unlock(&p->lock);
        if (req == NULL)
            return;
        atomic_fetch_add(&srv->count->cancelled, 1);
        req->server->host->end(req);
    }
}

static bool is_worker(const pool *p, pthread_t thread)
{
    for (size_t i = 0; i < p->started; i++)
        if (pthread_equal(p->workers[i].thread, thread))
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

/* Drain's deadline, before the core shuts the running requests' sockets
 * down (which wakes their parked fibers: a hang-up is readiness): the
 * workers take nothing more from the queue, and what is queued is shut
 * down unhandled. Otherwise a fiber ended by that shutdown would leave
 * room for a queued request, which would then run after the deadline.
 * The server takes no new request after a drain, so the queue stays
 * closed; close's own begin_close sets `cancel` as it needs. */
static void pool_interrupt_own(ss_server *srv, bool force)
{
    (void)force;
    pool *p = srv->dispatch_state;
    pthread_mutex_lock(&p->lock);
    p->cancel = true;
    pthread_mutex_unlock(&p->lock);
    cancel_queued(srv, p);
}

static void pool_close(ss_server *srv)
{
    pool *p = srv->dispatch_state;
    bool block = ss__block_on_close(srv);
    pool_accept_stop(srv); /* normally done: serve_forever has returned */
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
    .has_room = pool_has_room,
    .process = pool_process,
    .reap = pool_reap,
    .max_wait_ms = pool_max_wait_ms,
    .interrupt_own = pool_interrupt_own,
    .close_idle = ss__dispatch_close_idle_none,
    .claim_client = ss__dispatch_claim_client_none,
    .close = pool_close,
    .accept_start = pool_accept_start,
    .accept_stop = pool_accept_stop,
    .accepting = pool_accepting,
};

SS_API const ss_dispatcher *ss_dispatch_pool(void)
{
    return &pool_dispatcher;
}
