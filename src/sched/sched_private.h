/* What the files of sched/ share, and nobody else sees: the fiber and
 * scheduler structs, the context switch (sched/switch.c), the readiness
 * set (sched/poll_epoll.c or sched/poll_poll.c, whichever CMake compiles)
 * used by the scheduler (sched/scheduler.c).
 * Only in a build with fibers (SS_HAVE_FIBERS). */
#ifndef SS_SCHED_PRIVATE_H
#define SS_SCHED_PRIVATE_H

#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"

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

/* How a fiber is entered and switched (sched/switch.c).
 *
 * SS__SWITCH_ASM: a few instructions of our own per architecture (x86_64,
 * aarch64; ELF): a switch saves the callee-saved registers and the
 * floating-point control words on the stack it leaves, keeps that stack
 * pointer in the record, and loads the other's; a fiber's first entry sets
 * the stack pointer to the top of its stack and calls its entry function.
 * No system call, no signal mask, no ucontext_t. Not where the compiler
 * builds for x86 CET (-fcf-protection: a shadow stack, whose return
 * addresses a switch to another stack would have to carry along, as
 * glibc's ucontext does, and indirect-branch tracking, which the x86_64
 * switch's jump back would not pass) nor arm64's GCS shadow stack.
 *
 * Otherwise (another architecture, a shadow stack, or -DSS_FIBER_UCONTEXT
 * to test this path on one of ours) the portable ucontext path: a fiber's
 * first entry is a makecontext'd context entered with setcontext, and
 * after it switches use sigsetjmp / siglongjmp without a saved mask
 * (FAST_SWITCH): glibc's swapcontext saves and restores the signal mask
 * with a system call on every switch, two per park. ThreadSanitizer keeps
 * setjmp buffers per thread (per fiber) and does not follow a jump to one
 * saved on another fiber: under it, on that path, every switch is a
 * swapcontext. */
#if defined(__ELF__) && !defined(SS_FIBER_UCONTEXT) &&                                             \
    ((defined(__x86_64__) && !defined(__CET__)) ||                                                 \
     (defined(__aarch64__) && !defined(__ARM_FEATURE_GCS_DEFAULT)))
#define SS__SWITCH_ASM 1
#elif !defined(SS_TSAN)
#define FAST_SWITCH 1
#endif

#ifndef SS__SWITCH_ASM
#include <setjmp.h>
#include <ucontext.h>
#endif

#if defined(__GNUC__)
#define SS__SCHED_HIDDEN __attribute__((visibility("hidden")))
#else
#define SS__SCHED_HIDDEN
#endif

typedef struct ss__fiber ss__fiber;
typedef struct ss__poller ss__poller; /* the readiness set: one per backend */

/* A fiber's record lives in its own stack mapping, just above the top of
 * its stack (sched/switch.c): no heap bytes per fiber. */
struct ss__fiber {
#ifdef SS__SWITCH_ASM
    void *sp; /* where it parked (its saved registers); NULL: never entered */
#else
    ucontext_t ctx;
#endif
    ss__sched *sched;
    char *map; /* guard page + stack (and this record) */
    char *top; /* where its stack starts: the record, or below what was carved under it */
    void (*fn)(void *, void *);
    void *a, *b;
    ss__fiber *next;          /* run queue or spare list */
    ss__fiber *tprev, *tnext; /* deadline list, earliest first */
    int64_t deadline;
    bool timed;       /* on the deadline list */
    bool runnable;    /* on the run queue */
    short want;       /* POLLIN / POLLOUT waited for; 0 = not parked on an fd */
    bool readable;    /* fd: no short read since its last readiness report */
    bool ended;       /* fd: a hang-up, end of stream or error was reported */
    bool out_watched; /* epoll: fd registered for writability too */
    bool done;
    int result;  /* what ss__fiber_wait returns: 1 ready, 0 timed out */
    int fd;      /* registered with the readiness set, -1 if none */
    size_t slot; /* the poller's own index for this fiber, if it keeps one */
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
#ifdef SS__SWITCH_ASM
    void *main_sp; /* where the loop waits for the fiber to park */
#else
    ucontext_t main_ctx;
#endif
#ifdef FAST_SWITCH
    sigjmp_buf main_jb; /* where run_fiber waits for the fiber to park */
#endif
    ss__fiber *current;
    ss__fiber *run_head, *run_tail;
    ss__fiber *timers, *timers_tail;
    ss__fiber *spare;
    size_t nspare, live;
    /* A fiber taken for ss__sched_carve and not yet spawned or given
     * back: its carved memory is `carved`. */
    ss__fiber *reserved;
    void *carved;
    size_t stack_size, guard;
    ss__poller *poller;
    int64_t now_us;         /* the loop's clock (ss__sched_now_us) */
    int64_t slept_us;       /* blocked in ss__sched_poll, in total */
    unsigned mapped;        /* stacks ever mapped: varies their tops */
    uint64_t sources_ready; /* ss__sched_take_sources: bit id, set by polls */
    char *scratch;          /* ss__fiber_scratch: allocated once, never moved */
    size_t scratch_size;
#ifdef SS_ASAN
    void *main_fake_stack;
    const void *main_bottom;
    size_t main_size;
#endif
#ifdef SS_TSAN
    void *tsan_main;
#endif
};

/* The thread-local below in the initial-exec model: one load relative to
 * the thread pointer, where the default model for a shared library calls
 * __tls_get_addr on every use (five times per request on a fiber). It
 * takes 8 bytes of the static TLS block, which glibc keeps spare room in
 * for libraries loaded with dlopen too. */
#if defined(__GNUC__) && defined(__ELF__)
#define SS__TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define SS__TLS_FAST
#endif

/* The scheduler this thread runs (ss__sched_enter), NULL if none. Defined
 * in sched/switch.c, whose switches land on it. */
extern _Thread_local ss__sched *ss__this_sched SS__SCHED_HIDDEN SS__TLS_FAST;

/* ---- sched/switch.c: stacks and the context switch ---- */

/* Page-rounds the stack size and sets the guard size. */
void ss__stack_sizes(ss__sched *s, size_t stack_size);
/* A fiber with a fresh context that will run f->fn, from the stack cache
 * or newly mapped, whose stack starts `carve` bytes (rounded up to whole
 * cache lines) below its record: that memory, zeroed, is *carved (NULL
 * when carve is 0). NULL when out of memory. */
#define SS__CARVE_MAX 1024
ss__fiber *ss__fiber_get(ss__sched *s, size_t carve, void **carved);
/* An ended fiber's stack back to the cache (or unmapped past its cap). */
void ss__fiber_put(ss__sched *s, ss__fiber *f);
void ss__stacks_free(ss__sched *s); /* the whole cache */
/* The calling thread runs s from now on: TSan learns its own fiber. */
void ss__switch_attach(ss__sched *s);
/* Scheduler -> fiber f; returns when f parks or ends. */
void ss__switch_to_fiber(ss__sched *s, ss__fiber *f);
/* Fiber f -> scheduler; returns when f is run again. */
void ss__switch_to_scheduler(ss__sched *s, ss__fiber *f);

/* ---- the poller: sched/poll_epoll.c or sched/poll_poll.c ---- */

/* A readiness set that also watches wake_fd; NULL on failure. */
ss__poller *ss__poller_open(int wake_fd);
void ss__poller_close(ss__poller *p);
/* Watch fd for f, who will park for `events`. Returns 0 or -errno. */
int ss__poller_watch(ss__poller *p, ss__fiber *f, int fd, short events);
/* f woke or timed out: stop reporting its fd to it while it runs. */
void ss__poller_unwatch(ss__poller *p, ss__fiber *f);
/* f's fd is about to be closed, or f ended: drop it for good. */
void ss__poller_forget(ss__poller *p, ss__fiber *f);
/* A listening socket shared with other loops (ss__sched_watch_source):
 * level-triggered, exclusive wake-ups if asked. 0, -ENOTSUP (the backend
 * cannot) or -errno. Any thread, one at a time per poller. */
int ss__poller_watch_source(ss__poller *p, unsigned id, int fd, bool exclusive);
void ss__poller_unwatch_source(ss__poller *p, int fd);
/* Waits up to timeout_ms, telling `ready` (the scheduler) of each fiber
 * whose fd reported revents (POLLIN, POLLOUT, POLLHUP, POLLERR) and
 * setting bit id in *sources for each ready source; returns true if the
 * wake fd fired. A callback, not a call: the scheduler uses the poller,
 * never the other way round. */
bool ss__poller_wait(ss__poller *p, int timeout_ms, void (*ready)(ss__fiber *f, short revents),
                     uint64_t *sources);

#endif /* SS_SCHED_PRIVATE_H */
