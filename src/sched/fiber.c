/* Fibers and the per-thread scheduler under the pool dispatcher.
 *
 * Each request's handler runs on a fiber: a ucontext with a small stack of
 * its own. When the handler's request I/O would block (io/io.c asks
 * ss__fiber_active()), the fiber parks here on the thread's readiness set
 * (epoll on Linux, poll() elsewhere) with its deadline, and the thread runs
 * another fiber. Handler code stays blocking-style and unchanged.
 *
 * A scheduler belongs to one thread and its fibers never leave it: no
 * locks inside, thread-local state stays coherent, and the sanitizers are
 * told about every switch (ASan's fake stacks, TSan's fiber API).
 *
 * Without ucontext (musl, or -DSS_FIBERS=OFF) the same interface runs each
 * fiber function to completion on the calling thread's stack: the pool then
 * keeps one connection per worker, as it did before fibers. */
/* __longjmp_chk, which _FORTIFY_SOURCE substitutes for siglongjmp,
 * refuses a jump to another stack: the fiber switch below is exactly that. */
#undef _FORTIFY_SOURCE
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#if SS_HAVE_FIBERS

#include <sys/mman.h>
#include <ucontext.h>

#if defined(__linux__) && !defined(SS_FIBER_POLL)
#define USE_EPOLL 1
#include <sys/epoll.h>
#endif

/* Which sanitizer must hear about stack switches. */
#if defined(__SANITIZE_ADDRESS__)
#define SS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SS_TSAN 1
#endif
#endif
#ifdef SS_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
/* After a fiber's first entry (setcontext), switches use sigsetjmp /
 * siglongjmp without a saved mask: glibc's swapcontext saves and restores
 * the signal mask with a system call on every switch, two per park.
 * ThreadSanitizer keeps setjmp buffers per thread (per fiber) and does not
 * follow a jump to one saved on another fiber: under it, every switch is
 * a swapcontext. */
#ifndef SS_TSAN
#define FAST_SWITCH 1
#include <setjmp.h>
#endif
#ifdef SS_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Stacks kept for reuse per scheduler: enough to absorb connect/close
 * churn without an mmap per request, few enough that a burst that has
 * passed gives its memory back. */
#define SPARE_STACKS 64

typedef struct ss__fiber ss__fiber;

struct ss__fiber {
    ucontext_t ctx;
    ss__sched *sched;
    char *map; /* guard page + stack */
    void (*fn)(void *, void *);
    void *a, *b;
    ss__fiber *next;          /* run queue or spare list */
    ss__fiber *tprev, *tnext; /* deadline list, earliest first */
    int64_t deadline;
    bool timed;    /* on the deadline list */
    bool runnable; /* on the run queue */
    short want;    /* POLLIN / POLLOUT waited for; 0 = not parked on an fd */
    bool readable; /* fd: no short read since its last readiness report */
    bool ended;    /* fd: a hang-up, end of stream or error was reported */
    int result;    /* what ss__fiber_wait returns: 1 ready, 0 timed out */
    int fd;        /* registered with the readiness set, -1 if none */
    size_t slot;   /* poll backend: index in waiting[] */
    bool done;
#ifdef FAST_SWITCH
    bool started;  /* entered once: resume with jb */
    sigjmp_buf jb; /* where it parked */
#endif
#ifdef SS_ASAN
    void *fake_stack;
#endif
#ifdef SS_TSAN
    void *tsan;
#endif
};

struct ss__sched {
    ucontext_t main_ctx;
#ifdef FAST_SWITCH
    sigjmp_buf main_jb; /* where run_fiber waits for the fiber to park */
#endif
    ss__fiber *current;
    ss__fiber *run_head, *run_tail;
    ss__fiber *timers, *timers_tail;
    ss__fiber *spare;
    size_t nspare, live;
    size_t stack_size, guard;
    int wake_fd;
#ifdef USE_EPOLL
    int ep;
#else
    ss__fiber **waiting; /* fibers parked on an fd */
    struct pollfd *pfds;
    size_t nwaiting, capwaiting;
#endif
#ifdef SS_ASAN
    void *main_fake_stack;
    const void *main_bottom;
    size_t main_size;
#endif
#ifdef SS_TSAN
    void *tsan_main;
#endif
};

static _Thread_local ss__sched *this_sched;

/* ---- switching, with the sanitizers told about every stack change ---- */

/* gcc treats getcontext/swapcontext like setjmp and warns about every
 * local of a function that calls them. The switches live in functions of
 * their own, kept out of line, whose frames the switch preserves. */
#if defined(__GNUC__)
#define SWITCHES __attribute__((noinline))
#else
#define SWITCHES
#endif

#ifdef FAST_SWITCH
static void enter(ss__fiber *f)
{
    if (f->started)
        siglongjmp(f->jb, 1);
    f->started = true;
    setcontext(&f->ctx); /* the fresh stack: fiber_entry */
}
#endif

/* Scheduler -> fiber f; returns when f parks or ends. */
static SWITCHES void run_fiber(ss__sched *s, ss__fiber *f)
{
    s->current = f;
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(&s->main_fake_stack, f->map + s->guard, s->stack_size);
#endif
#ifdef FAST_SWITCH
    if (sigsetjmp(s->main_jb, 0) == 0)
        enter(f);
    s = this_sched;
#else
#ifdef SS_TSAN
    __tsan_switch_to_fiber(f->tsan, 0);
#endif
    swapcontext(&s->main_ctx, &f->ctx);
#endif
#ifdef SS_ASAN
    __sanitizer_finish_switch_fiber(s->main_fake_stack, NULL, NULL);
#endif
    s->current = NULL;
}

/* In fiber f, just switched to: learns where the scheduler's stack is. */
static void fiber_resumed(ss__fiber *f)
{
#ifdef SS_ASAN
    __sanitizer_finish_switch_fiber(f->fake_stack, &f->sched->main_bottom, &f->sched->main_size);
#else
    (void)f;
#endif
}

/* Fiber f -> scheduler. A fiber that has ended gives ASan no place to
 * save its fake stack, which frees it; it is never resumed. */
static SWITCHES void back_to_scheduler(ss__sched *s, ss__fiber *f)
{
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack, s->main_bottom, s->main_size);
#endif
#ifdef FAST_SWITCH
    if (f->done || sigsetjmp(f->jb, 0) == 0)
        siglongjmp(s->main_jb, 1);
    f = this_sched->current;
#else
#ifdef SS_TSAN
    __tsan_switch_to_fiber(s->tsan_main, 0);
#endif
    swapcontext(&f->ctx, &s->main_ctx);
#endif
    fiber_resumed(f);
}

/* makecontext passes only ints: the fiber finds itself through the
 * thread's scheduler instead. */
static void fiber_entry(void)
{
    ss__sched *s = this_sched;
    ss__fiber *f = s->current;
    fiber_resumed(f);
    f->fn(f->a, f->b);
    f->done = true;
    back_to_scheduler(s, f);
    abort(); /* an ended fiber is never resumed */
}

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

/* ---- the readiness set: epoll on Linux, poll() elsewhere ---- */

#ifdef USE_EPOLL

static int set_open(ss__sched *s)
{
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
        int err = -errno;
        ss__close(&s->ep);
        return err;
    }
    return 0;
}

static void set_close(ss__sched *s)
{
    ss__close(&s->ep);
}

/* Registered once per request, edge-triggered for both directions: the
 * caller always tries its recv/send first and parks only on EAGAIN, so
 * the next edge is the one it needs, and a park costs no system call. */
static int set_watch(ss__sched *s, ss__fiber *f, int fd, short events)
{
    (void)events;
    if (f->fd == fd)
        return 0;
    if (f->fd >= 0)
        epoll_ctl(s->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->fd = -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = f};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    f->fd = fd;
    f->readable = true; /* a new socket: nothing known about it yet */
    f->ended = false;
    return 0;
}

static void set_unwatch(ss__sched *s, ss__fiber *f)
{
    (void)s;
    (void)f; /* parking costs nothing with edge triggers */
}

static void set_forget(ss__sched *s, ss__fiber *f)
{
    if (f->fd >= 0)
        epoll_ctl(s->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->fd = -1;
}

static short to_poll_events(uint32_t ev)
{
    short out = 0;
    if (ev & EPOLLIN)
        out |= POLLIN;
    if (ev & EPOLLOUT)
        out |= POLLOUT;
    if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        out |= POLLIN | POLLOUT | POLLHUP; /* the I/O call will tell which */
    return out;
}

static void fd_ready(ss__sched *s, ss__fiber *f, short revents);

/* Waits up to timeout_ms for readiness; returns true if the wake fd
 * fired. */
static bool set_wait(ss__sched *s, int timeout_ms)
{
    struct epoll_event evs[64];
    int n = epoll_wait(s->ep, evs, 64, timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL)
            woken = true;
        else
            fd_ready(s, evs[i].data.ptr, to_poll_events(evs[i].events));
    }
    return woken;
}

#else /* poll() */

static int set_open(ss__sched *s)
{
    (void)s;
    return 0;
}

static void set_close(ss__sched *s)
{
    free(s->waiting);
    free(s->pfds);
}

static int set_watch(ss__sched *s, ss__fiber *f, int fd, short events)
{
    if (s->nwaiting == s->capwaiting) {
        size_t cap = s->capwaiting ? s->capwaiting * 2 : 16;
        ss__fiber **w = realloc(s->waiting, cap * sizeof *w);
        if (w != NULL)
            s->waiting = w;
        struct pollfd *p = realloc(s->pfds, (cap + 1) * sizeof *p);
        if (p != NULL)
            s->pfds = p;
        if (w == NULL || p == NULL)
            return -ENOMEM;
        s->capwaiting = cap;
    }
    (void)events;
    f->fd = fd;
    f->slot = s->nwaiting;
    s->waiting[s->nwaiting++] = f;
    return 0;
}

static void set_unwatch(ss__sched *s, ss__fiber *f)
{
    if (f->fd < 0)
        return;
    ss__fiber *last = s->waiting[--s->nwaiting];
    s->waiting[f->slot] = last;
    last->slot = f->slot;
    f->fd = -1;
}

static void set_forget(ss__sched *s, ss__fiber *f)
{
    set_unwatch(s, f);
}

static void fd_ready(ss__sched *s, ss__fiber *f, short revents);

static bool set_wait(ss__sched *s, int timeout_ms)
{
    size_t n = s->nwaiting;
    struct pollfd wake = {.fd = s->wake_fd, .events = POLLIN};
    struct pollfd *p = n > 0 ? s->pfds : &wake;
    p[0] = wake;
    for (size_t i = 0; i < n; i++)
        p[i + 1] = (struct pollfd){.fd = s->waiting[i]->fd, .events = s->waiting[i]->want};
    if (poll(p, (nfds_t)n + 1, timeout_ms) <= 0)
        return false;
    /* Backwards: waking a fiber moves the last entry into its slot. */
    for (size_t i = n; i > 0; i--)
        if (p[i].revents != 0)
            fd_ready(s, s->waiting[i - 1], p[i].revents);
    return p[0].revents != 0;
}

#endif

/* An end of stream, hang-up or error is reported once, often in the same
 * edge as the last bytes: it is remembered for good (such a state never
 * goes away), so the short read of those bytes cannot make the fiber park
 * for an edge that was already reported (ss__fiber_drained_fd). */
static void fd_ready(ss__sched *s, ss__fiber *f, short revents)
{
    if (revents & POLLIN)
        f->readable = true;
    if (revents & (POLLHUP | POLLERR))
        f->ended = true;
    if (f->want == 0 || (revents & (f->want | POLLERR | POLLHUP)) == 0)
        return; /* an edge nobody waits for: the next I/O call sees it */
    set_unwatch(s, f);
    timer_remove(s, f);
    f->want = 0;
    f->result = 1;
    make_runnable(s, f);
}

/* ---- stacks ---- */

static size_t page_size(void)
{
    long page = sysconf(_SC_PAGESIZE);
    return page > 0 ? (size_t)page : 4096;
}

/* A fiber with a stack of its own: mmap'd, with a PROT_NONE guard page
 * below it so an overflow faults instead of corrupting a neighbour. */
static ss__fiber *fiber_alloc(ss__sched *s)
{
    ss__fiber *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_STACK
    flags |= MAP_STACK;
#endif
    f->map = mmap(NULL, s->guard + s->stack_size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (f->map == MAP_FAILED) {
        free(f);
        return NULL;
    }
    mprotect(f->map, s->guard, PROT_NONE);
    f->sched = s;
    return f;
}

static void fiber_free(ss__sched *s, ss__fiber *f)
{
    munmap(f->map, s->guard + s->stack_size);
    free(f);
}

static ss__fiber *fiber_get(ss__sched *s)
{
    ss__fiber *f = s->spare;
    if (f == NULL)
        return fiber_alloc(s);
    s->spare = f->next;
    s->nspare--;
    return f;
}

static void fiber_put(ss__sched *s, ss__fiber *f)
{
#ifdef SS_TSAN
    __tsan_destroy_fiber(f->tsan);
#endif
    if (s->nspare >= SPARE_STACKS) {
        fiber_free(s, f);
        return;
    }
    f->next = s->spare;
    s->spare = f;
    s->nspare++;
}

/* ---- the scheduler ---- */

ss__sched *ss__sched_new(size_t stack_size, int wake_fd)
{
    ss__sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->guard = page_size();
    s->stack_size = (stack_size + s->guard - 1) / s->guard * s->guard;
    s->wake_fd = wake_fd;
    if (set_open(s) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

void ss__sched_free(ss__sched *s)
{
    if (s == NULL)
        return;
    while (s->spare != NULL) {
        ss__fiber *f = s->spare;
        s->spare = f->next;
        fiber_free(s, f);
    }
    set_close(s);
    free(s);
}

void ss__sched_enter(ss__sched *s)
{
    this_sched = s;
#ifdef SS_TSAN
    if (s != NULL)
        s->tsan_main = __tsan_get_current_fiber();
#endif
}

size_t ss__sched_live(const ss__sched *s)
{
    return s->live;
}

/* A fresh context at the top of f's stack, starting in fiber_entry. */
static SWITCHES void prepare_context(ss__sched *s, ss__fiber *f)
{
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->map + s->guard;
    f->ctx.uc_stack.ss_size = s->stack_size;
    f->ctx.uc_link = NULL; /* fiber_entry never returns */
    makecontext(&f->ctx, fiber_entry, 0);
}

int ss__sched_spawn(ss__sched *s, void (*fn)(void *, void *), void *a, void *b)
{
    ss__fiber *f = fiber_get(s);
    if (f == NULL)
        return -ENOMEM;
    f->fn = fn;
    f->a = a;
    f->b = b;
    f->fd = -1;
    f->want = 0;
    f->readable = true;
    f->ended = false;
    f->done = false;
#ifdef FAST_SWITCH
    f->started = false;
#endif
    prepare_context(s, f);
#ifdef SS_ASAN
    f->fake_stack = NULL;
#endif
#ifdef SS_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
    s->live++;
    make_runnable(s, f);
    return 0;
}

/* Runs every runnable fiber until each has parked or ended. */
void ss__sched_run(ss__sched *s)
{
    ss__fiber *f;
    while ((f = next_runnable(s)) != NULL) {
        run_fiber(s, f);
        if (f->done) {
            set_forget(s, f);
            s->live--;
            fiber_put(s, f);
        }
    }
}

static int until(int64_t deadline, int64_t now)
{
    int64_t left = deadline - now;
    return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Wakes the fibers whose deadline has passed; returns the time to the
 * next one (-1: none). */
static int expire(ss__sched *s)
{
    int64_t now = ss__now_ms();
    while (s->timers != NULL && s->timers->deadline <= now) {
        ss__fiber *f = s->timers;
        timer_remove(s, f);
        set_unwatch(s, f);
        f->want = 0;
        f->result = 0;
        make_runnable(s, f);
    }
    return s->timers != NULL ? until(s->timers->deadline, now) : -1;
}

bool ss__sched_poll(ss__sched *s)
{
    int timeout = expire(s);
    if (s->run_head != NULL)
        timeout = 0; /* something can run already: just collect events */
    bool woken = set_wait(s, timeout);
    expire(s);
    return woken;
}

/* ---- what io/io.c sees ---- */

bool ss__fiber_active(void)
{
    ss__sched *s = this_sched;
    return s != NULL && s->current != NULL;
}

int ss__fiber_wait(int fd, short events, int64_t deadline)
{
    ss__sched *s = this_sched;
    ss__fiber *f = s->current;
    if (deadline >= 0 && deadline <= ss__now_ms())
        return 0;
    if (fd >= 0) {
        int rc = set_watch(s, f, fd, events);
        if (rc < 0)
            return rc;
        f->want = events;
    }
    f->result = 0;
    f->deadline = deadline;
    if (deadline >= 0)
        timer_insert(s, f);
    back_to_scheduler(s, f);
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
    ss__fiber *f = this_sched->current;
    if (f->fd == fd)
        f->readable = false;
}

bool ss__fiber_drained_fd(int fd)
{
    ss__fiber *f = this_sched->current;
    return f->fd == fd && !f->readable && !f->ended;
}

void ss__fiber_forget_fd(void)
{
    ss__sched *s = this_sched;
    if (s != NULL && s->current != NULL)
        set_forget(s, s->current);
}

#else /* no ucontext: every "fiber" runs to completion where it is spawned */

struct ss__sched {
    int wake_fd;
};

ss__sched *ss__sched_new(size_t stack_size, int wake_fd)
{
    (void)stack_size;
    ss__sched *s = calloc(1, sizeof *s);
    if (s != NULL)
        s->wake_fd = wake_fd;
    return s;
}

void ss__sched_free(ss__sched *s)
{
    free(s);
}

void ss__sched_enter(ss__sched *s)
{
    (void)s;
}

size_t ss__sched_live(const ss__sched *s)
{
    (void)s;
    return 0;
}

int ss__sched_spawn(ss__sched *s, void (*fn)(void *, void *), void *a, void *b)
{
    (void)s;
    fn(a, b);
    return 0;
}

void ss__sched_run(ss__sched *s)
{
    (void)s;
}

/* Nothing is ever live: only the wake fd can have news. */
bool ss__sched_poll(ss__sched *s)
{
    struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};
    return poll(&p, 1, -1) > 0;
}

bool ss__fiber_active(void)
{
    return false;
}

int ss__fiber_wait(int fd, short events, int64_t deadline)
{
    return ss__io_wait(fd, events, deadline, NULL);
}

void ss__fiber_drained(int fd)
{
    (void)fd;
}

bool ss__fiber_drained_fd(int fd)
{
    (void)fd;
    return false;
}

void ss__fiber_forget_fd(void)
{
}

#endif
