/* A fiber's stack and the switches between it and its scheduler.
 *
 * Each fiber has an mmap'd stack of its own with a guard page, and the
 * scheduler keeps a few ended fibers' stacks for the next ones. The
 * sanitizers are told about every switch (ASan's fake stacks, TSan's fiber
 * API). */
/* __longjmp_chk, which _FORTIFY_SOURCE substitutes for siglongjmp,
 * refuses a jump to another stack: the fiber switch below is exactly that. */
#undef _FORTIFY_SOURCE
#include "sched/sched_private.h"

#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef SS_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SS_TSAN
#include <sanitizer/tsan_interface.h>
#endif

_Thread_local ss__sched *ss__this_sched SS__TLS_FAST;

/* Stacks kept for reuse per scheduler: enough to absorb connect/close
 * churn without an mmap per request, few enough that a burst that has
 * passed gives its memory back. */
#define SPARE_STACKS 64

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

void ss__switch_attach(ss__sched *s)
{
#ifdef SS_TSAN
    s->tsan_main = __tsan_get_current_fiber();
#else
    (void)s;
#endif
}

SWITCHES void ss__switch_to_fiber(ss__sched *s, ss__fiber *f)
{
    s->current = f;
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(&s->main_fake_stack, f->map + s->guard, s->stack_size);
#endif
#ifdef FAST_SWITCH
    if (sigsetjmp(s->main_jb, 0) == 0)
        enter(f);
    s = ss__this_sched;
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

/* A fiber that has ended gives ASan no place to save its fake stack,
 * which frees it; it is never resumed. */
SWITCHES void ss__switch_to_scheduler(ss__sched *s, ss__fiber *f)
{
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack, s->main_bottom, s->main_size);
#endif
#ifdef FAST_SWITCH
    if (f->done || sigsetjmp(f->jb, 0) == 0)
        siglongjmp(s->main_jb, 1);
    f = ss__this_sched->current;
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
    ss__sched *s = ss__this_sched;
    ss__fiber *f = s->current;
    fiber_resumed(f);
    f->fn(f->a, f->b);
    f->done = true;
    ss__switch_to_scheduler(s, f);
    abort(); /* an ended fiber is never resumed */
}

/* Each new fiber's stack starts this many cache lines below the top of
 * its mapping, in turn: the stacks' tops are page-aligned, so the hot
 * frames of thousands of parked fibers would otherwise all fall in the
 * same few cache sets and evict each other. 16 lines: under 1 KiB of a
 * stack, spread over a quarter of a 4 KiB page's sets. */
#define STACK_OFFSETS 16
#define CACHE_LINE    64

/* A fresh context near the top of f's stack, starting in fiber_entry. */
static SWITCHES void prepare_context(ss__sched *s, ss__fiber *f)
{
    size_t offset = (s->spawned++ % STACK_OFFSETS) * CACHE_LINE;
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->map + s->guard;
    f->ctx.uc_stack.ss_size = s->stack_size - offset;
    f->ctx.uc_link = NULL; /* fiber_entry never returns */
    makecontext(&f->ctx, fiber_entry, 0);
}

/* ---- stacks ---- */

void ss__stack_sizes(ss__sched *s, size_t stack_size)
{
    long page = sysconf(_SC_PAGESIZE);
    s->guard = page > 0 ? (size_t)page : 4096;
    s->stack_size = (stack_size + s->guard - 1) / s->guard * s->guard;
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

static ss__fiber *cached_or_new(ss__sched *s)
{
    ss__fiber *f = s->spare;
    if (f == NULL)
        return fiber_alloc(s);
    s->spare = f->next;
    s->nspare--;
    return f;
}

ss__fiber *ss__fiber_get(ss__sched *s)
{
    ss__fiber *f = cached_or_new(s);
    if (f == NULL)
        return NULL;
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
    return f;
}

void ss__fiber_put(ss__sched *s, ss__fiber *f)
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

void ss__stacks_free(ss__sched *s)
{
    while (s->spare != NULL) {
        ss__fiber *f = s->spare;
        s->spare = f->next;
        fiber_free(s, f);
    }
}
