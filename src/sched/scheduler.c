/* The per-thread scheduler under the pool dispatcher.
 *
 * Each request's handler runs on a fiber (sched/switch.c). When the
 * handler's request I/O would block, the fiber parks here on the thread's
 * readiness set (the poller: sched/poll_epoll.c or sched/poll_poll.c) with
 * its deadline, and the thread runs another fiber. Handler code stays
 * blocking-style and unchanged.
 *
 * A scheduler belongs to one thread and its fibers never leave it: no
 * locks inside, and thread-local state stays coherent. */
#include "sched/sched_private.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

/* ---- the run queue and the deadline list ---- */

static void make_runnable(ss__sched *s, ss__fiber *f)
{
    if (f->runnable)
        return;
    f->runnable = true;
    f->next = NULL;
    if (s->run_tail != NULL)
        s->run_tail->next = f;
    else
        s->run_head = f;
    s->run_tail = f;
}

static ss__fiber *next_runnable(ss__sched *s)
{
    ss__fiber *f = s->run_head;
    if (f == NULL)
        return NULL;
    s->run_head = f->next;
    if (s->run_head == NULL)
        s->run_tail = NULL;
    f->runnable = false;
    return f;
}

/* Deadlines are mostly "now + the same timeout", so a new one usually
 * belongs at the tail: the walk starts there. */
static void timer_insert(ss__sched *s, ss__fiber *f)
{
    ss__fiber *after = s->timers_tail;
    while (after != NULL && after->deadline > f->deadline)
        after = after->tprev;
    f->tprev = after;
    f->tnext = after != NULL ? after->tnext : s->timers;
    if (f->tnext != NULL)
        f->tnext->tprev = f;
    else
        s->timers_tail = f;
    if (after != NULL)
        after->tnext = f;
    else
        s->timers = f;
    f->timed = true;
}

static void timer_remove(ss__sched *s, ss__fiber *f)
{
    if (!f->timed)
        return;
    if (f->tprev != NULL)
        f->tprev->tnext = f->tnext;
    else
        s->timers = f->tnext;
    if (f->tnext != NULL)
        f->tnext->tprev = f->tprev;
    else
        s->timers_tail = f->tprev;
    f->tprev = f->tnext = NULL;
    f->timed = false;
}

/* ---- waking ---- */

/* The poller saw revents on f's fd. An end of stream, hang-up or error is
 * reported once, often in the same edge as the last bytes: it is
 * remembered for good (such a state never goes away), so the short read
 * of those bytes cannot make the fiber park for an edge that was already
 * reported (ss__fiber_drained_fd). */
static void fd_ready(ss__fiber *f, short revents)
{
    if (revents & POLLIN)
        f->readable = true;
    if (revents & (POLLHUP | POLLERR))
        f->ended = true;
    if (f->want == 0 || (revents & (f->want | POLLERR | POLLHUP)) == 0)
        return; /* an edge nobody waits for: the next I/O call sees it */
    ss__sched *s = f->sched;
    ss__poller_unwatch(s->poller, f);
    timer_remove(s, f);
    f->want = 0;
    f->result = 1;
    make_runnable(s, f);
}

static int until(int64_t deadline, int64_t now)
{
    int64_t left = deadline - now;
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* CLOCK_MONOTONIC in microseconds: the loop's clock, read once per
 * poll (twice around a wait that may block). */
static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Wakes the fibers whose deadline (ms) has passed by now_us; returns the
 * time to the next one (-1: none). */
static int expire(ss__sched *s, int64_t now_us)
{
    int64_t now = now_us / 1000;
    while (s->timers != NULL && s->timers->deadline <= now) {
        ss__fiber *f = s->timers;
        timer_remove(s, f);
        ss__poller_unwatch(s->poller, f);
        f->want = 0;
        f->result = 0;
        make_runnable(s, f);
    }
    return s->timers != NULL ? until(s->timers->deadline, now) : -1;
}

/* ---- the scheduler's life ---- */

ss__sched *ss__sched_new(size_t stack_size, int wake_fd)
{
    ss__sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    ss__stack_sizes(s, stack_size);
    s->now_us = clock_us();
    s->poller = ss__poller_open(wake_fd);
    if (s->poller == NULL) {
        free(s);
        return NULL;
    }
    return s;
}

void ss__sched_free(ss__sched *s)
{
    if (s == NULL)
        return;
    if (s->reserved != NULL)
        ss__fiber_put(s, s->reserved); /* carved, never spawned: a caller's bug */
    ss__stacks_free(s);
    ss__poller_close(s->poller);
    free(s->scratch);
    free(s);
}

void ss__sched_enter(ss__sched *s)
{
    ss__this_sched = s;
    if (s != NULL)
        ss__switch_attach(s);
}

size_t ss__sched_live(const ss__sched *s)
{
    return s->live;
}

/* The fiber reserved for carved memory `mem` (ss__sched_carve), taken
 * off the reservation; NULL if mem is not that memory. */
static ss__fiber *take_reserved(ss__sched *s, const void *mem)
{
    ss__fiber *f = s->reserved;
    if (f == NULL || mem != s->carved)
        return NULL;
    s->reserved = NULL;
    s->carved = NULL;
    return f;
}

void *ss__sched_carve(size_t size)
{
    ss__sched *s = ss__this_sched;
    if (s == NULL || s->current != NULL || s->reserved != NULL || size == 0)
        return NULL;
    void *mem = NULL;
    s->reserved = ss__fiber_get(s, size, &mem);
    s->carved = mem;
    return mem;
}

void ss__sched_uncarve(void *mem)
{
    ss__sched *s = ss__this_sched;
    ss__fiber *f = s != NULL ? take_reserved(s, mem) : NULL;
    if (f != NULL)
        ss__fiber_put(s, f);
}

int ss__sched_spawn(ss__sched *s, void (*fn)(void *, void *), void *a, void *b)
{
    void *no_carve;
    ss__fiber *f = take_reserved(s, b);
    if (f == NULL)
        f = ss__fiber_get(s, 0, &no_carve);
    if (f == NULL)
        return -ENOMEM;
    f->fn = fn;
    f->a = a;
    f->b = b;
    f->fd = -1;
    f->want = 0;
    f->readable = true;
    f->ended = false;
    s->live++;
    make_runnable(s, f);
    return 0;
}

int ss__sched_watch_source(ss__sched *s, unsigned id, int fd, bool exclusive)
{
    if (id >= SS__MAX_SOURCES)
        return -EINVAL;
    return ss__poller_watch_source(s->poller, id, fd, exclusive);
}

void ss__sched_unwatch_source(ss__sched *s, int fd)
{
    ss__poller_unwatch_source(s->poller, fd);
}

uint64_t ss__sched_take_sources(ss__sched *s)
{
    uint64_t ready = s->sources_ready;
    s->sources_ready = 0;
    return ready;
}

int64_t ss__sched_now_us(const ss__sched *s)
{
    return s->now_us;
}

int64_t ss__sched_slept_us(const ss__sched *s)
{
    return s->slept_us;
}

void ss__sched_run(ss__sched *s)
{
    ss__fiber *f;
    for (int n = 0; n < SS__RUN_BATCH && (f = next_runnable(s)) != NULL; n++) {
        ss__switch_to_fiber(s, f);
        if (f->done) {
            ss__poller_forget(s->poller, f);
            s->live--;
            ss__fiber_put(s, f);
        }
    }
}

/* With a fiber runnable already, or a ready source not taken yet, only
 * collects events: no clock read before, no wait. Otherwise the clock read before the wait times it
 * and counts it as sleep; the one after is the loop's clock for the turn. */
bool ss__sched_poll(ss__sched *s)
{
    int64_t before = 0;
    int timeout = 0;
    if (s->run_head == NULL && s->sources_ready == 0) {
        before = clock_us();
        timeout = expire(s, before);
        if (s->run_head != NULL)
            timeout = 0; /* a deadline passed: its fiber runs next */
    }
    bool woken = ss__poller_wait(s->poller, timeout, fd_ready, &s->sources_ready);
    s->now_us = clock_us();
    if (timeout != 0)
        s->slept_us += s->now_us - before;
    expire(s, s->now_us);
    return woken;
}

/* ---- what the fiber's request I/O sees ---- */

/* Whether a deadline has passed, reading the clock only for one that
 * lies less than SOON_MS past the loop's clock: a later one can have
 * passed only if this turn has run that long, and then its fiber parks
 * and the next poll wakes it with 0 at once. Request timeouts are
 * seconds to minutes: most waits read no clock here. */
#define SOON_MS 1000
static bool passed(const ss__sched *s, int64_t deadline)
{
    int64_t loop_ms = s->now_us / 1000;
    return deadline <= loop_ms || (deadline <= loop_ms + SOON_MS && deadline <= ss__now_ms());
}

/* The fiber running on this thread, NULL off a fiber. */
static ss__fiber *current_fiber(void)
{
    ss__sched *s = ss__this_sched;
    return s != NULL ? s->current : NULL;
}

int ss__fiber_wait(int fd, short events, int64_t deadline)
{
    ss__fiber *f = current_fiber();
    if (f == NULL)
        return ss__poll_until(fd, events, deadline);
    ss__sched *s = f->sched;
    if (deadline >= 0 && passed(s, deadline))
        return 0;
    if (fd >= 0) {
        int rc = ss__poller_watch(s->poller, f, fd, events);
        if (rc < 0)
            return rc;
        f->want = events;
    }
    f->result = 0;
    f->deadline = deadline;
    if (deadline >= 0)
        timer_insert(s, f);
    ss__switch_to_scheduler(s, f);
    return f->result;
}

/* nginx's trick (rev->ready): a read that returned less than asked for
 * emptied the socket, so the next one would fail with EAGAIN; park at once
 * instead, saving that system call on every request. Only for a socket in
 * the readiness set, whose next arrival is then sure to be reported. An
 * end of stream (0) is not a short read: reading on must see 0 again.
 * "No bytes now" is not "nothing more to report": an end of stream, a
 * hang-up or an error that came in the same edge as the bytes just read
 * is never reported again, so once one was seen the fiber always tries
 * the socket before it parks (the poll() backend, level-triggered, never
 * skips the try: its fiber leaves the set, f->fd = -1, when it wakes). */
void ss__fiber_drained(int fd)
{
    ss__fiber *f = current_fiber();
    if (f != NULL && f->fd == fd)
        f->readable = false;
}

bool ss__fiber_drained_fd(int fd)
{
    ss__fiber *f = current_fiber();
    return f != NULL && f->fd == fd && !f->readable && !f->ended;
}

void *ss__fiber_scratch(size_t want, size_t *size)
{
    ss__fiber *f = current_fiber();
    if (f == NULL)
        return NULL;
    ss__sched *s = f->sched;
    if (s->scratch == NULL && want > 0 && (s->scratch = malloc(want)) != NULL)
        s->scratch_size = want;
    *size = want < s->scratch_size ? want : s->scratch_size;
    return s->scratch;
}

void ss__fiber_forget_fd(void)
{
    ss__fiber *f = current_fiber();
    if (f != NULL)
        ss__poller_forget(f->sched->poller, f);
}
