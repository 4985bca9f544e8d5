/* Worker processes (ss_server_set_processes), the supervisor's side: it
 * forks the workers (core/prefork_worker.c) as its loop starts, replaces
 * those that die (backing off from one that keeps dying), pauses them
 * when its loop stops, has them drain or close, reaps every one, and sums
 * their counters. It keeps the listening sockets and takes no client. */
#include "core/prefork.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define STABLE_MS         5000  /* a worker that lived this long was not crash-looping */
#define BACKOFF_FIRST_MS  100   /* the first delayed replacement; doubled each time */
#define BACKOFF_MAX_MS    10000 /* ... up to this */
#define PAUSE_WAIT_MS     5000  /* longest serve_forever waits for the workers to pause */
#define PAUSE_WAIT_MIN_MS 250   /* ... and shortest, even with no stop grace */
#define KILL_AFTER_MS                                                                              \
    3000 /* past the drain's deadline (a worker's own drain cuts its                               \
            requests off within 2 s of it), or close's without                                     \
            block_on_close: SIGKILL */

/* ---- the state, made at activate ---- */

static int worker_count(const ss_server *srv)
{
    if (srv->processes != SS_PROCESSES_PER_CPU)
        return srv->processes;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return cpus < 1 ? 1 : cpus > SS_MAX_PROCESSES ? SS_MAX_PROCESSES : (int)cpus;
}

static void supervisor_free(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    if (pf == NULL)
        return;
    if (pf->page != NULL)
        munmap(pf->page, pf->page_size);
    free(pf->workers);
    free(pf->pollset);
    free(pf);
    srv->prefork = NULL;
}

/* The shared page is made here, before any fork, so that every worker
 * maps the same memory. */
static int supervisor_start(ss_server *srv)
{
    ss__prefork *pf = calloc(1, sizeof *pf);
    if (pf == NULL)
        return -ENOMEM;
    srv->prefork = pf;
    pf->count = worker_count(srv);
    pf->page_size = sizeof *pf->page + (size_t)pf->count * sizeof pf->page->slot[0];
    void *page =
        mmap(NULL, pf->page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pf->page = page != MAP_FAILED ? page : NULL;
    pf->workers = calloc((size_t)pf->count, sizeof *pf->workers);
    pf->pollset = calloc((size_t)pf->count + 1, sizeof *pf->pollset);
    if (pf->page == NULL || pf->workers == NULL || pf->pollset == NULL) {
        int rc = pf->page == NULL ? -errno : -ENOMEM;
        supervisor_free(srv);
        return rc;
    }
    for (int i = 0; i < pf->count; i++)
        pf->workers[i] = (ss__worker){.control = -1, .events = -1, .respawn_at = 0};
    return 0;
}

/* ---- telling the workers ---- */

static void poke(int control)
{
    char byte = 1;
    if (write(control, &byte, 1) < 0) {
        /* full: the worker has a byte to wake it already */
    }
}

static void tell(ss__prefork *pf, int i, int command, int64_t deadline)
{
    ss__worker_slot *slot = &pf->page->slot[i];
    unsigned number = (atomic_load(&slot->order) >> 4) + 1;
    atomic_store(&slot->deadline_ms, deadline);
    atomic_store(&slot->order, number << 4 | (unsigned)command);
    poke(pf->workers[i].control);
}

/* Every running worker; drain and close also mark them as told to end. */
static void tell_running(ss__prefork *pf, int command, int64_t deadline)
{
    bool ending = command != SS__WORKER_SERVE && command != SS__WORKER_PAUSE;
    for (int i = 0; i < pf->count; i++) {
        if (pf->workers[i].pid <= 0)
            continue;
        pf->workers[i].told_to_end |= ending;
        tell(pf, i, command, deadline);
    }
}

/* ss_server_hand_over succeeded: from now on no worker takes clients. */
static void follow_hand_over(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    if (!atomic_load(&srv->handed_over) || atomic_load(&pf->page->handed_over))
        return;
    atomic_store(&pf->page->handed_over, true);
    for (int i = 0; i < pf->count; i++)
        if (pf->workers[i].pid > 0)
            poke(pf->workers[i].control);
}

static int running(const ss__prefork *pf)
{
    int n = 0;
    for (int i = 0; i < pf->count; i++)
        n += pf->workers[i].pid > 0;
    return n;
}

/* ---- a worker's end ---- */

/* Its counters join the retired ones; what it was still serving (the
 * gauges: active, tracked, queued) is over, its open requests closed. */
static bool gauge(const char *name)
{
    return strcmp(name, "active") == 0 || strcmp(name, "tracked") == 0 ||
           strcmp(name, "queued") == 0;
}

static uint64_t retire_counters(ss__prefork *pf, int i)
{
    ss__counters *c = &pf->page->slot[i].count;
    uint64_t open = atomic_load(&c->active);
#define SS__RETIRE(name)                                                                           \
    {                                                                                              \
        uint64_t v = atomic_exchange(&c->name, 0);                                                 \
        if (!gauge(#name))                                                                         \
            atomic_fetch_add(&pf->retired.name, v);                                                \
    }
    SS__COUNTERS(SS__RETIRE)
#undef SS__RETIRE
    atomic_fetch_add(&pf->retired.closed, open);
    return open;
}

static int backoff_ms(int failures)
{
    if (failures <= 1)
        return 0;
    int ms = BACKOFF_FIRST_MS;
    for (int k = 2; k < failures && ms < BACKOFF_MAX_MS; k++)
        ms *= 2;
    return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* Ended without being told to: counted, logged, replaced (backing off
 * when it ended soon after its start, again). */
static void worker_failed(ss_server *srv, ss__worker *w, int index, pid_t pid, int status)
{
    atomic_fetch_add(&srv->count->processes_failed, 1);
    int64_t now = ss__now_ms();
    w->failures = now - w->started_ms < STABLE_MS ? w->failures + 1 : 1;
    int delay = backoff_ms(w->failures);
    w->respawn_at = now + delay;
    char how[64];
    ss__describe_exit(status, how, sizeof how);
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR,
            "worker process %d (pid %ld) %s after %lld ms; replacing it in %d ms", index, (long)pid,
            how, (long long)(now - w->started_ms), delay);
}

/* How a drained worker's end weighs in the drain's result: 0 fine, 1
 * requests cut off at the deadline (or it had to be killed), 2 at a stop. */
static int drain_outcome(int status)
{
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == SS__WORKER_EXIT_OK)
        return 0;
    if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == SS__WORKER_EXIT_CANCELLED)
        return 2;
    return 1;
}

/* A worker that carried out a command has started: it ran its
 * dispatcher's start and heard the supervisor. */
static void note_started(ss__prefork *pf, int i)
{
    if (atomic_load(&pf->page->slot[i].done) != 0)
        pf->started = true;
}

static void worker_ended(ss_server *srv, int i, int status)
{
    ss__prefork *pf = srv->prefork;
    ss__worker *w = &pf->workers[i];
    pid_t pid = w->pid;
    w->pid = 0;
    note_started(pf, i);
    w->start_error = atomic_load(&pf->page->slot[i].start_error);
    /* the next process takes its clients now, rather than once its seat
       goes stale (or, resting, once an arrival stamps it) */
    atomic_fetch_or(&pf->page->slot[i].seat.passing, SS__PASS_OFF);
    uint64_t open = retire_counters(pf, i);
    if (w->told_to_end && pf->draining) /* killed past the deadline: cut off */
        atomic_fetch_add(&pf->retired.interrupted, open);
    ss__close(&w->control);
    ss__close(&w->events);
    if (!w->told_to_end) {
        worker_failed(srv, w, i, pid, status);
        return;
    }
    int outcome = drain_outcome(status);
    pf->worst_end = outcome > pf->worst_end ? outcome : pf->worst_end;
}

/* Reaps worker i if it has ended (waiting for it if `block`); true if it
 * has. Only its own pid is waited for. */
static bool reap(ss_server *srv, int i, bool block)
{
    int status;
    pid_t rc;
    do
        rc = waitpid(srv->prefork->workers[i].pid, &status, block ? 0 : WNOHANG);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return false;
    worker_ended(srv, i, rc < 0 ? -1 : status); /* ECHILD: the application reaped it */
    return true;
}

/* ---- waiting ---- */

/* Sleeps until the wake-up pipe, a worker's report or end, or timeout_ms
 * (-1: no limit), then reaps every worker that has ended. */
static void wait_workers(ss_server *srv, int timeout_ms)
{
    ss__prefork *pf = srv->prefork;
    struct pollfd *p = pf->pollset;
    p[0] = (struct pollfd){.fd = srv->stop.wake_read, .events = POLLIN};
    for (int i = 0; i < pf->count; i++)
        p[i + 1] = (struct pollfd){.fd = pf->workers[i].events, .events = POLLIN};
    if (poll(p, (nfds_t)pf->count + 1, timeout_ms) > 0 && p[0].revents != 0)
        ss__server_drain_wake(srv);
    for (int i = 0; i < pf->count; i++) {
        if (pf->workers[i].pid <= 0)
            continue;
        note_started(pf, i);
        if (p[i + 1].revents != 0 && !ss__pipe_read_all(pf->workers[i].events))
            reap(srv, i, true); /* its last descriptor is closed: it is exiting */
        else
            reap(srv, i, false); /* one whose forked children hold its pipe */
    }
}

static void kill_running(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    for (int i = 0; i < pf->count; i++)
        if (pf->workers[i].pid > 0)
            kill(pf->workers[i].pid, SIGKILL);
    for (int i = 0; i < pf->count; i++)
        if (pf->workers[i].pid > 0)
            reap(srv, i, true);
}

/* Waits until every worker has ended, killing those left at kill_at
 * (-1: never). */
static void await_all(ss_server *srv, int64_t kill_at)
{
    while (running(srv->prefork) > 0) {
        if (kill_at >= 0 && ss__remaining_ms(kill_at) == 0) {
            kill_running(srv);
            return;
        }
        wait_workers(srv, ss__remaining_ms(kill_at));
    }
}

/* ---- the supervisor's loop ---- */

/* Forks worker i, told `command` first. */
static int spawn(ss_server *srv, int i, int command)
{
    ss__prefork *pf = srv->prefork;
    ss__worker *w = &pf->workers[i];
    int control[2], events[2];
    int rc = ss__pipe(control);
    if (rc == 0 && (rc = ss__pipe(events)) < 0) {
        ss__close(&control[0]);
        ss__close(&control[1]);
    }
    if (rc < 0)
        return rc;
    ss__worker_slot *slot = &pf->page->slot[i];
    atomic_store(&slot->done, 0);
    atomic_store(&slot->start_error, 0);
    atomic_store(&slot->seat.passing, SS__PASS_OFF); /* until its pool accepts */
    atomic_store(&slot->seat.seen_us, 0);
    w->control = control[1];
    w->events = events[0];
    tell(pf, i, command, -1);
    pid_t pid = fork();
    if (pid == 0)
        ss__worker_run(srv, i, control[0], events[1]);
    rc = pid < 0 ? -errno : 0;
    ss__close(&control[0]);
    ss__close(&events[1]);
    if (rc < 0) {
        ss__close(&w->control);
        ss__close(&w->events);
        return rc;
    }
    w->pid = pid;
    w->started_ms = ss__now_ms();
    w->respawn_at = -1;
    w->told_to_end = false;
    return 0;
}

/* The kernel refused the fork (EAGAIN: RLIMIT_NPROC, pids.max): tried
 * again later, backing off as from a worker that died at once. */
static void spawn_failed(ss_server *srv, ss__worker *w, int index, int err)
{
    atomic_fetch_add(&srv->count->spawn_failures, 1);
    atomic_fetch_add(&srv->count->processes_failed, 1);
    w->failures++;
    w->start_error = err;
    int delay = backoff_ms(w->failures + 1); /* never at once: the kernel said no */
    w->respawn_at = ss__now_ms() + delay;
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR,
            "worker process %d could not be started: %s; trying again in %d ms", index,
            ss_strerror(err), delay);
}

/* Starts the workers that are due; returns how long until the next one
 * is (-1: none). */
static int spawn_due(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    int wait = -1;
    for (int i = 0; i < pf->count && !atomic_load(&srv->handed_over); i++) {
        ss__worker *w = &pf->workers[i];
        if (w->pid > 0 || w->respawn_at < 0)
            continue;
        int left = ss__remaining_ms(w->respawn_at);
        int rc = left > 0 ? 0 : spawn(srv, i, SS__WORKER_SERVE);
        if (rc < 0)
            spawn_failed(srv, w, i, rc);
        if (w->pid <= 0)
            wait = ss__min_wait(wait, ss__remaining_ms(w->respawn_at));
    }
    return wait;
}

static bool all_paused(const ss__prefork *pf)
{
    for (int i = 0; i < pf->count; i++) {
        const ss__worker_slot *slot = &pf->page->slot[i];
        if (pf->workers[i].pid > 0 && atomic_load(&slot->done) != atomic_load(&slot->order))
            return false;
    }
    return true;
}

/* How long the pause may be waited for: up to the stop grace past the
 * stop request (ss_server_set_stop_grace, the time a request in flight
 * may hold a loop; the examples set it to --drain), so that a worker that
 * cannot answer (stopped, or a handler holding its loop) does not add its
 * wait to the drain's time; never past PAUSE_WAIT_MS, and a paused worker
 * answers within milliseconds, so never under PAUSE_WAIT_MIN_MS. */
static int64_t pause_deadline(const ss_server *srv)
{
    int64_t graced = ss__stop_deadline(&srv->stop, true, ss__deadline(PAUSE_WAIT_MS));
    int64_t shortest = ss__deadline(PAUSE_WAIT_MIN_MS);
    return graced > shortest ? graced : shortest;
}

/* The loop has stopped: so must the workers' loops, before serve_forever
 * returns (ss_server_shutdown's promise: no new client after it). Not
 * after a hand-over: the successor takes the clients, and each worker
 * stops taking them as that word reaches it (follow_hand_over); waiting
 * there for a worker that cannot answer (stopped, or a handler holding
 * its loop) would only hold up the drain a restart begins next. */
static void pause_workers(ss_server *srv)
{
    tell_running(srv->prefork, SS__WORKER_PAUSE, -1);
    if (atomic_load(&srv->handed_over))
        return;
    int64_t deadline = pause_deadline(srv);
    while (!all_paused(srv->prefork) && ss__remaining_ms(deadline) > 0)
        wait_workers(srv, ss__remaining_ms(deadline));
}

static void cancel_respawns(ss__prefork *pf)
{
    for (int i = 0; i < pf->count; i++)
        pf->workers[i].respawn_at = -1;
}

/* Until a worker has started serving, a start that fails in every
 * worker (EMFILE, ENOMEM, a fork refused) fails serve_forever, as the
 * same failure in one process fails activate: a server that answers
 * nobody must not look healthy to a TCP health check. Once one has
 * served, a worker that cannot start is retried (back-off), as one that
 * died. Returns the last start's -errno, or 0. */
static int cannot_start(const ss__prefork *pf)
{
    if (pf->started)
        return 0;
    for (int i = 0; i < pf->count; i++)
        if (pf->workers[i].pid > 0 || pf->workers[i].start_error == 0)
            return 0;
    return pf->workers[pf->count - 1].start_error;
}

static int supervisor_serve(ss_server *srv, int poll_interval_ms)
{
    if (!ss__server_enter_loop(srv))
        return -EBUSY;
    ss__prefork *pf = srv->prefork;
    pf->serving = true;
    tell_running(pf, SS__WORKER_SERVE, -1); /* paused by an earlier stop */
    int rc = 0;
    while (!ss__server_stop_requested(srv) && (rc = cannot_start(pf)) == 0) {
        follow_hand_over(srv);
        int due = spawn_due(srv);
        wait_workers(srv, ss__min_wait(poll_interval_ms, due));
        srv->service_actions(srv, srv->data);
    }
    if (rc < 0) {
        cancel_respawns(pf);
        ss__log(srv->log, srv, srv->data, SS_LOG_ERROR, "no worker process could start: %s",
                ss_strerror(rc));
    }
    pf->serving = false;
    pause_workers(srv);
    ss__server_leave_loop(srv);
    return rc;
}

/* ---- drain, close, counters ---- */

/* Every worker drains to the same deadline; a stop request meanwhile
 * cuts them all off (as a second stop does ss_server_drain's). */
static int supervisor_drain(ss_server *srv, int timeout_ms)
{
    ss__prefork *pf = srv->prefork;
    int64_t deadline = ss__deadline(timeout_ms);
    int64_t kill_at = deadline < 0 ? -1 : deadline + KILL_AFTER_MS;
    bool cut_off = false;
    follow_hand_over(srv);
    cancel_respawns(pf);
    pf->worst_end = 0;
    pf->draining = true;
    tell_running(pf, SS__WORKER_DRAIN, deadline);
    while (running(pf) > 0) {
        if (!cut_off && ss__stop_take(&srv->stop)) {
            cut_off = true;
            tell_running(pf, SS__WORKER_INTERRUPT, deadline);
            kill_at = ss__deadline(KILL_AFTER_MS);
        }
        if (kill_at >= 0 && ss__remaining_ms(kill_at) == 0)
            kill_running(srv);
        else
            wait_workers(srv, ss__remaining_ms(kill_at));
    }
    pf->draining = false;
    ss__close_listeners(srv); /* this process's copies; the backlog was the workers' */
    if (cut_off || pf->worst_end == 2)
        return -ECANCELED;
    return pf->worst_end == 1 ? -ETIMEDOUT : 0;
}

static void supervisor_close(ss_server *srv)
{
    ss__prefork *pf = srv->prefork;
    follow_hand_over(srv);
    cancel_respawns(pf);
    tell_running(pf, SS__WORKER_CLOSE, -1);
    await_all(srv, ss__block_on_close(srv) ? -1 : ss__deadline(KILL_AFTER_MS));
}

static void supervisor_add_stats(const ss_server *srv, ss_stats *all)
{
    ss__prefork *pf = srv->prefork;
#define SS__ADD(name) all->name += atomic_load(&pf->retired.name);
    SS__COUNTERS(SS__ADD)
#undef SS__ADD
    for (int i = 0; i < pf->count; i++) {
        ss__counters *c = &pf->page->slot[i].count;
#define SS__ADD(name) all->name += atomic_load(&c->name);
        SS__COUNTERS(SS__ADD)
#undef SS__ADD
    }
}

static const ss__supervisor supervisor = {
    .start = supervisor_start,
    .serve = supervisor_serve,
    .drain = supervisor_drain,
    .close = supervisor_close,
    .add_stats = supervisor_add_stats,
    .free = supervisor_free,
};

SS_API int ss_server_set_processes(ss_server *srv, int processes)
{
    if (processes < SS_PROCESSES_PER_CPU || processes > SS_MAX_PROCESSES)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE || srv->serves_connection)
        return SS_ESTATE;
    srv->processes = processes;
    srv->supervisor = processes != 0 ? &supervisor : NULL;
    return 0;
}
