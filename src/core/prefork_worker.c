/* A worker process (ss_server_set_processes): a fork of the supervisor
 * that serves the server's listeners with the server's own dispatcher,
 * as a server serving in its own process would, and does what its
 * supervisor says (core/prefork.h). Two threads of its own: the main one
 * carries the commands out (serve, pause, drain, close); the control
 * thread hears the supervisor and stops the loop when a command needs
 * it, and, while the pool's loop rests (no turn to take: dispatch/pool.c,
 * seat_rest), wakes it for the next arrival. The counters are the slot's
 * own (become_worker): the supervisor reads them as they change. So an
 * idle worker process sleeps, every thread of it. */
#include "core/prefork.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define ORPHAN_DRAIN_MS 5000 /* a worker whose supervisor is gone drains this long */

typedef struct worker_ctx {
    ss_server *srv;
    ss__prefork_page *page;
    ss__worker_slot *slot;
    int control; /* read end: the supervisor's bytes; end of file once it is gone */
    int events;  /* write end: a byte once a command is carried out */
    /* With siblings (a seat): the read end of the pipe by which the
     * pool's loop says it began or ended a rest (srv->seat_rest), -1
     * without; and, the control thread's own, whether it watches the
     * listeners for the resting loop, in its poll set of 2 + nlisteners. */
    int rest;
    bool watching;
    struct pollfd *pollset;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    unsigned order;   /* the latest command (number << 4 | command), under lock */
    unsigned done;    /* the latest one the main thread took, under lock */
    int64_t deadline; /* its drain deadline, under lock */
} worker_ctx;

/* ---- becoming a worker ---- */

/* The pipes of the other workers, and the supervisor's ends of this
 * one's: a copy held here would hide the supervisor's end from a worker. */
static void close_supervisor_fds(const ss__prefork *pf)
{
    for (int i = 0; i < pf->count; i++) {
        ss__close(&pf->workers[i].control);
        ss__close(&pf->workers[i].events);
    }
}

/* A wake-up pipe of its own: the inherited one is the supervisor's, and
 * the byte that wakes one process must not be taken by another. */
static int own_wake_pipe(ss_server *srv)
{
    ss__close(&srv->stop.wake_read);
    ss__close(&srv->stop.wake_write);
    int fds[2];
    int rc = ss__pipe(fds);
    if (rc == 0) {
        srv->stop.wake_read = fds[0];
        srv->stop.wake_write = fds[1];
    }
    return rc;
}

/* With a seat, the pipe by which the pool's loop tells the control
 * thread it rests (objects.h, seat_rest), and the control thread's poll
 * set. */
static int rest_pipe(worker_ctx *ctx)
{
    ss_server *srv = ctx->srv;
    if (srv->seat == NULL)
        return 0;
    ctx->pollset = calloc((size_t)srv->nlisteners + 2, sizeof *ctx->pollset);
    if (ctx->pollset == NULL)
        return -ENOMEM;
    int fds[2];
    int rc = ss__pipe(fds);
    if (rc == 0) {
        ctx->rest = fds[0];
        srv->seat_rest = fds[1];
    }
    return rc;
}

/* The supervisor's loop state, hooks and counters stay with it: this
 * copy serves as a plain server, from zero. */
static int become_worker(ss_server *srv, int index)
{
    ss__prefork *pf = srv->prefork;
    close_supervisor_fds(pf);
    for (int i = 0; i < srv->nlisteners; i++) /* its siblings, and its replacements */
        srv->listeners[i]->other_waiters = pf->count > 1;
    if (pf->count > 1) { /* the pool packs new clients onto the first processes */
        srv->seat = &pf->page->slot[index].seat;
        srv->seat_before = index > 0 ? &pf->page->slot[index - 1].seat : NULL;
    }
    srv->prefork = NULL; /* the copy of its memory is left to the exit */
    /* held by another thread of the supervisor at the fork, perhaps */
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->loop_exited, NULL);
    srv->serving = false;
    ss__stop_take(&srv->stop);
    ss_server_on_service_actions(srv, NULL); /* the supervisor's loop runs it */
    /* it counts straight into its slot, where the supervisor sums */
    srv->count = &pf->page->slot[index].count;
#define SS__ZERO(name) atomic_store(&srv->count->name, 0);
    SS__COUNTERS(SS__ZERO)
#undef SS__ZERO
    return own_wake_pipe(srv);
}

/* ---- the control thread ---- */

/* Once the supervisor handed the listeners over, this worker takes no
 * more clients either, and its drain leaves the sockets to the successor. */
static void follow_hand_over(worker_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    if (atomic_load(&ctx->page->handed_over) && !atomic_load(&ctx->srv->handed_over))
        ss__listeners_handed_over(ctx->srv);
    pthread_mutex_unlock(&ctx->lock);
}

/* Under ctx->lock: a new command for the main thread. Any but SERVE ends
 * the loop (or, INTERRUPT, cuts the drain under way off); the main
 * thread clears that stop as it takes the command, under the same lock. */
static void post(worker_ctx *ctx, unsigned order, int64_t deadline)
{
    ctx->order = order;
    ctx->deadline = deadline;
    if ((order & 15) != SS__WORKER_SERVE)
        ss_server_request_shutdown(ctx->srv);
    pthread_cond_broadcast(&ctx->changed);
}

static void take_command(worker_ctx *ctx)
{
    unsigned order = atomic_load(&ctx->slot->order);
    pthread_mutex_lock(&ctx->lock);
    if (order != ctx->order)
        post(ctx, order, atomic_load(&ctx->slot->deadline_ms));
    pthread_mutex_unlock(&ctx->lock);
}

/* The supervisor is gone (killed): stop taking clients and drain, unless
 * a drain or close is under way already. */
static void orphaned(worker_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    int command = (int)(ctx->order & 15);
    if (command == SS__WORKER_SERVE || command == SS__WORKER_PAUSE)
        post(ctx, ((ctx->order >> 4) + 1) << 4 | SS__WORKER_DRAIN, ss__deadline(ORPHAN_DRAIN_MS));
    pthread_mutex_unlock(&ctx->lock);
}

bool ss__pipe_read_all(int fd)
{
    char buf[64];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return false;
        if (n < 0 && errno != EINTR)
            return true; /* EAGAIN: all read */
    }
}

/* The control thread's poll set: the control pipe; with a seat, the
 * rest pipe and, while the loop rests, every stream listener, watched
 * without exclusive wake-ups, so that an arrival wakes this thread
 * whichever worker of which process the kernel wakes for it. Returns
 * how many entries. */
static nfds_t fill_pollset(worker_ctx *ctx, struct pollfd *p)
{
    p[0] = (struct pollfd){.fd = ctx->control, .events = POLLIN};
    if (ctx->rest < 0)
        return 1;
    p[1] = (struct pollfd){.fd = ctx->rest, .events = POLLIN};
    nfds_t n = 2;
    for (int i = 0; ctx->watching && i < ctx->srv->nlisteners; i++) {
        const ss__listener *l = ctx->srv->listeners[i];
        int fd = ss__read_published(&l->fd); /* closed by a drain: -1 */
        if (fd >= 0 && !l->transport->datagram)
            p[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    return n;
}

/* A client arrived while the loop rested. Its seat runs on the clock
 * again, and so does the one before it if that rests too: should that
 * process not come round (stopped at rest), its seat goes stale and this
 * one takes its turn. The loop wakes to take its turns; watching stops
 * until it rests again (the client may wait a while: no wake per poll). */
static void arrival(worker_ctx *ctx)
{
    int64_t now_us = ss__now_ms() * 1000;
    ss__seat_stamp_resting(ctx->srv->seat, now_us);
    if (ctx->srv->seat_before != NULL)
        ss__seat_stamp_resting(ctx->srv->seat_before, now_us);
    ctx->watching = false;
    ss__server_wake(ctx->srv);
}

/* What woke the control thread, from the poll set of n entries. False
 * once the supervisor is gone. */
static bool heard(worker_ctx *ctx, const struct pollfd *p, nfds_t n)
{
    if (p[0].revents != 0 && !ss__pipe_read_all(ctx->control))
        return false;
    if (n > 1 && p[1].revents != 0) { /* the loop began or ended a rest */
        ss__pipe_read_all(ctx->rest);
        ctx->watching = atomic_load(&ctx->srv->seat->seen_us) == SS__SEAT_RESTING;
    }
    bool arrived = false;
    for (nfds_t i = 2; i < n; i++)
        arrived |= p[i].revents != 0;
    if (arrived && ctx->watching)
        arrival(ctx);
    return true;
}

static void *control_loop(void *arg)
{
    worker_ctx *ctx = arg;
    struct pollfd one;
    struct pollfd *p = ctx->pollset != NULL ? ctx->pollset : &one;
    take_command(ctx); /* the first, given before the fork */
    for (;;) {
        nfds_t n = fill_pollset(ctx, p);
        if (poll(p, n, -1) > 0 && !heard(ctx, p, n)) {
            orphaned(ctx);
            return NULL;
        }
        follow_hand_over(ctx);
        take_command(ctx);
    }
}

/* Signals go to the main thread and the handlers' threads, never to this
 * one: it holds the lock the main thread waits on. */
static int start_control(worker_ctx *ctx)
{
    pthread_attr_t attr;
    int rc = ss__thread_attr_init(ctx->srv, &attr);
    if (rc < 0)
        return rc;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    rc = -pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED); /* _exit ends it */
    if (rc == 0)
        rc = -pthread_create(&thread, &attr, control_loop, ctx);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

/* ---- the main thread: the commands ---- */

/* Waits for a command the main thread has not taken yet and takes it,
 * clearing the stop its posting requested. */
static unsigned next_command(worker_ctx *ctx, int64_t *deadline)
{
    pthread_mutex_lock(&ctx->lock);
    while (ctx->order == ctx->done)
        pthread_cond_wait(&ctx->changed, &ctx->lock);
    unsigned order = ctx->done = ctx->order;
    *deadline = ctx->deadline;
    ss__stop_take(&ctx->srv->stop);
    pthread_mutex_unlock(&ctx->lock);
    return order;
}

/* Tells the supervisor the command is carried out (it waits for a
 * pause to be). */
static void report_done(worker_ctx *ctx, unsigned order)
{
    atomic_store(&ctx->slot->done, order);
    char byte = 1;
    if (write(ctx->events, &byte, 1) < 0) {
        /* full: the supervisor has bytes to wake it already */
    }
}

static int drain_and_close(worker_ctx *ctx, int command, int64_t deadline)
{
    follow_hand_over(ctx); /* announced before the drain was */
    if (command == SS__WORKER_INTERRUPT)
        ss_server_request_shutdown(ctx->srv);
    int rc = ss_server_drain(ctx->srv, deadline < 0 ? -1 : ss__remaining_ms(deadline));
    ss_server_close(ctx->srv);
    if (rc == 0)
        return SS__WORKER_EXIT_OK;
    if (rc == -ETIMEDOUT)
        return SS__WORKER_EXIT_TIMED_OUT;
    return rc == -ECANCELED ? SS__WORKER_EXIT_CANCELLED : SS__WORKER_EXIT_FAILED;
}

/* A stop that no command asked for (a handler's ss_server_shutdown, a
 * signal handler's) ends the loop too: the worker then waits for the
 * supervisor's next command, serving its requests in flight. */
static int run_commands(worker_ctx *ctx)
{
    for (;;) {
        int64_t deadline;
        unsigned order = next_command(ctx, &deadline);
        int command = (int)(order & 15);
        if (command == SS__WORKER_CLOSE) {
            ss_server_close(ctx->srv);
            return SS__WORKER_EXIT_OK;
        }
        if (command == SS__WORKER_DRAIN || command == SS__WORKER_INTERRUPT)
            return drain_and_close(ctx, command, deadline);
        report_done(ctx, order);
        if (command == SS__WORKER_SERVE && ss_server_serve_forever(ctx->srv, -1) < 0)
            return SS__WORKER_EXIT_FAILED;
    }
}

_Noreturn void ss__worker_run(ss_server *srv, int index, int control, int events)
{
    worker_ctx ctx = {
        .srv = srv,
        .page = srv->prefork->page,
        .slot = &srv->prefork->page->slot[index],
        .control = control,
        .events = events,
        .rest = -1,
    };
    pthread_mutex_init(&ctx.lock, NULL);
    pthread_cond_init(&ctx.changed, NULL);
    int rc = become_worker(srv, index);
    if (rc == 0)
        rc = rest_pipe(&ctx);
    if (rc == 0)
        rc = srv->dispatch->start(srv);
    if (rc == 0)
        rc = start_control(&ctx);
    if (rc < 0) {
        atomic_store(&ctx.slot->start_error, rc); /* the supervisor's cannot_start */
        ss__log(srv->log, srv, srv->data, SS_LOG_ERROR, "worker process %d could not start: %s",
                index, ss_strerror(rc));
        _exit(SS__WORKER_EXIT_FAILED);
    }
    _exit(run_commands(&ctx));
}
