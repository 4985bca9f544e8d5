/* The fiber switch and stacks (src/sched/switch.c), driven directly on
 * this thread as the scheduler drives them (ss__fiber_get,
 * ss__switch_to_fiber, ss__switch_to_scheduler):
 *
 * - a fiber's stack is aligned as the ABI asks on every one of the varied
 *   stack offsets: 16-byte aligned locals, SSE and long double arithmetic,
 *   snprintf of a double and a long double, a varargs function of our own
 *   (the compiler's and libc's aligned spills fault on a misaligned
 *   stack); the offsets do vary, and each stack lies below its record;
 * - a fiber's record costs no heap allocation (it lives at the top of its
 *   own stack mapping; it used to be a ~1.3 KiB calloc per fiber);
 * - the floating-point rounding mode (x86's MXCSR and x87 control word,
 *   aarch64's FPCR, callee-saved in both ABIs) is each fiber's own across
 *   a park, and a fiber's never leaks into the scheduler (on the ucontext
 *   fallback, which leaves them to the thread, that case is skipped);
 * - fibers that park deep in recursion, interleaved, find every frame's
 *   locals as they left them;
 * - 20000 fibers started and ended in a row through the scheduler.
 *
 * malloc and calloc are wrapped (-Wl,--wrap, GNU ld, Linux) to count the
 * heap allocations of ss__fiber_get. Only in a build with fibers. */
#include "internal.h"
#if SS_HAVE_FIBERS
#include "sched/sched_private.h"
#endif

#include <stdio.h>

#if SS_HAVE_FIBERS && defined(__linux__)

#include <fenv.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);

static long heap_allocs;

void *__wrap_malloc(size_t size)
{
    heap_allocs++;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    heap_allocs++;
    return __real_calloc(n, size);
}

enum { STACK = 64 * 1024, OFFSETS = 16, FIBERS = 2 * OFFSETS };

static ss__sched *sched_up(void)
{
    int wake[2];
    assert_int_equal(ss__pipe(wake), 0);
    ss__sched *s = ss__sched_new(STACK, wake[0]);
    assert_non_null(s);
    ss__sched_enter(s);
    return s;
}

static void sched_down(ss__sched *s)
{
    ss__sched_enter(NULL);
    ss__sched_free(s); /* the wake pipe leaks: a few fds per test */
}

/* A fiber to run fn(a, b), entered only by the test itself. */
static ss__fiber *fiber_for(ss__sched *s, void (*fn)(void *, void *), void *a, void *b)
{
    void *no_carve;
    ss__fiber *f = ss__fiber_get(s, 0, &no_carve);
    assert_non_null(f);
    f->fn = fn;
    f->a = a;
    f->b = b;
    return f;
}

/* Back to the test, as a parked fiber goes back to its scheduler. */
static void park(void)
{
    ss__sched *s = ss__this_sched;
    ss__switch_to_scheduler(s, s->current);
}

/* An address the compiler cannot reason about: `(uintptr_t)&x % 16` of
 * a 16-aligned local folds to 0 at compile time otherwise. */
static uintptr_t opaque(const void *p)
{
    uintptr_t u = (uintptr_t)p;
    __asm__ volatile("" : "+r"(u));
    return u;
}

/* ---- alignment on every offset ---- */

typedef struct aligned_report {
    uintptr_t local;   /* a 16-aligned local's address */
    uintptr_t local32; /* a 32-aligned one's (the compiler realigns) */
    char text[64];     /* snprintf of a double and a long double */
    double sum;        /* the varargs function's */
    long double ld;    /* long double arithmetic */
    double sse[2];     /* a 16-aligned array of doubles, added pairwise */
} aligned_report;

static double sum_doubles(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += va_arg(ap, double);
    va_end(ap);
    return sum;
}

/* A local aligned past the ABI's 16 bytes: the compiler realigns this
 * frame (and so everything it calls) by itself, which is why it is a
 * function of its own. */
static __attribute__((noinline)) uintptr_t wide_local(void)
{
    alignas(32) char wide[32];
    return opaque(wide);
}

/* Only 16-byte alignment asked for here: the frame is where the stack
 * put it, and so are the frames of the calls. */
static void report_alignment(void *a, void *b)
{
    (void)b;
    aligned_report *r = a;
    alignas(16) volatile double v[2] = {1.5, 2.5};
    alignas(16) double w[2];
    r->local = opaque((const void *)v);
    r->local32 = wide_local();
    for (int i = 0; i < 2; i++)
        w[i] = v[i] + v[i];
    memcpy(r->sse, w, sizeof w);
    volatile long double x = 1.0L;
    r->ld = x / 3.0L * 3.0L;
    r->sum = sum_doubles(4, 0.5, 1.25, 2.0, v[0]);
    snprintf(r->text, sizeof r->text, "%.3f %.2Lf %g", 2.0 / 3.0, (long double)x * 2.5L, 1e-3);
}

static void test_stack_alignment_on_every_offset(void **state)
{
    (void)state;
    ss__sched *s = sched_up();
    static aligned_report r[FIBERS];
    ss__fiber *f[FIBERS];
    unsigned seen_offsets = 0;
    for (int i = 0; i < FIBERS; i++) /* all live at once: each a fresh mapping */
        f[i] = fiber_for(s, report_alignment, &r[i], NULL);
    for (int i = 0; i < FIBERS; i++) {
        ss__switch_to_fiber(s, f[i]);
        assert_true(f[i]->done);
        if (r[i].local % 16 != 0 || r[i].local32 % 32 != 0)
            fail_msg("fiber %d: locals at %#lx and %#lx", i, (unsigned long)r[i].local,
                     (unsigned long)r[i].local32);
        assert_string_equal(r[i].text, "0.667 2.50 0.001");
        assert_true(r[i].sum == 5.25);
        assert_true(r[i].sse[0] == 3.0 && r[i].sse[1] == 5.0);
        assert_true(r[i].ld > 0.999L && r[i].ld < 1.001L);
        /* the stack lies in its mapping, below its record */
        assert_true(r[i].local < (uintptr_t)f[i] && r[i].local > (uintptr_t)f[i]->map + s->guard);
        seen_offsets |= 1u << ((uintptr_t)f[i] / 64 % OFFSETS);
    }
    assert_int_equal(seen_offsets, (1u << OFFSETS) - 1); /* every offset was tried */
    for (int i = 0; i < FIBERS; i++)
        ss__fiber_put(s, f[i]);
    sched_down(s);
}

/* ---- the record: no heap ---- */

static void test_fiber_record_takes_no_heap(void **state)
{
    (void)state;
    ss__sched *s = sched_up();
    ss__fiber *f[FIBERS];
    long before = heap_allocs;
    for (int i = 0; i < FIBERS; i++) /* fresh mappings, not the spare cache */
        f[i] = fiber_for(s, report_alignment, NULL, NULL);
    long allocs = heap_allocs - before;
    for (int i = 0; i < FIBERS; i++)
        ss__fiber_put(s, f[i]);
    assert_int_equal(allocs, 0);
    sched_down(s);
}

/* ---- the floating-point control modes ---- */

typedef struct rounding {
    int mode;             /* set before parking */
    int after;            /* fegetround() after the park */
    double third;         /* 1/3 in double (SSE on x86_64) after the park */
    long double ld_third; /* and in long double (x87) */
} rounding;

static void keep_rounding(void *a, void *b)
{
    (void)b;
    rounding *r = a;
    fesetround(r->mode);
    park();
    volatile double one = 1.0;
    volatile long double ld_one = 1.0L;
    r->after = fegetround();
    r->third = one / 3.0;
    r->ld_third = ld_one / 3.0L;
}

static void test_rounding_mode_is_each_fibers_own(void **state)
{
    (void)state;
#ifndef SS__SWITCH_ASM
    skip(); /* the ucontext fallback's sigsetjmp leaves the modes to the thread */
#endif
    ss__sched *s = sched_up();
    assert_int_equal(fegetround(), FE_TONEAREST);
    rounding up = {.mode = FE_UPWARD}, down = {.mode = FE_DOWNWARD};
    ss__fiber *fu = fiber_for(s, keep_rounding, &up, NULL);
    ss__fiber *fd = fiber_for(s, keep_rounding, &down, NULL);
    ss__switch_to_fiber(s, fu); /* sets upward, parks */
    assert_int_equal(fegetround(), FE_TONEAREST);
    ss__switch_to_fiber(s, fd); /* sets downward, parks */
    assert_int_equal(fegetround(), FE_TONEAREST);
    ss__switch_to_fiber(s, fu);
    ss__switch_to_fiber(s, fd);
    assert_true(fu->done && fd->done);
    assert_int_equal(up.after, FE_UPWARD);
    assert_int_equal(down.after, FE_DOWNWARD);
    assert_true(up.third > down.third);       /* SSE (MXCSR) or FPCR */
    assert_true(up.ld_third > down.ld_third); /* x87 control word */
    assert_int_equal(fegetround(), FE_TONEAREST);
    ss__fiber_put(s, fu);
    ss__fiber_put(s, fd);
    sched_down(s);
}

/* ---- parked deep in recursion ---- */

enum { DEPTH = 48, FRAME = 512, DIVERS = 4 };

/* Each level fills a local array with a pattern of (id, level), parks,
 * recurses, parks again on the way back, and counts the bytes of its
 * array that changed meanwhile. A value held across each park (in a
 * callee-saved register or the frame) must also come back. */
static int dive(int id, int level)
{
    unsigned char frame[FRAME];
    unsigned char seed = (unsigned char)(id * 61 + level * 7);
    for (int i = 0; i < FRAME; i++)
        frame[i] = (unsigned char)(seed + i);
    int held = id * 1000 + level;
    park();
    int bad = level + 1 < DEPTH ? dive(id, level + 1) : 0;
    park();
    bad += held != id * 1000 + level;
    for (int i = 0; i < FRAME; i++)
        bad += frame[i] != (unsigned char)(seed + i);
    return bad;
}

static void diver(void *a, void *b)
{
    *(int *)a = dive((int)(intptr_t)b, 0);
}

static void test_parked_deep_in_recursion(void **state)
{
    (void)state;
    ss__sched *s = sched_up();
    ss__fiber *f[DIVERS];
    int bad[DIVERS];
    for (int i = 0; i < DIVERS; i++) {
        bad[i] = -1;
        f[i] = fiber_for(s, diver, &bad[i], (void *)(intptr_t)i);
    }
    int switches = 0, live = DIVERS;
    while (live > 0) { /* round robin, each fiber parked at its own depth */
        live = 0;
        for (int i = 0; i < DIVERS; i++) {
            if (f[i]->done)
                continue;
            ss__switch_to_fiber(s, f[i]);
            switches++;
            live += !f[i]->done;
        }
    }
    assert_int_equal(switches, DIVERS * (2 * DEPTH + 1));
    for (int i = 0; i < DIVERS; i++) {
        assert_int_equal(bad[i], 0);
        ss__fiber_put(s, f[i]);
    }
    sched_down(s);
}

/* ---- many in a row, through the scheduler ---- */

enum { ROUNDS = 200, PER_ROUND = 100 };

static void count_and_end(void *a, void *b)
{
    char scratch[256];
    memset(scratch, (int)(intptr_t)b, sizeof scratch);
    *(long *)a += scratch[(intptr_t)b % 256] + 1;
}

static void test_many_fibers_in_a_row(void **state)
{
    (void)state;
    ss__sched *s = sched_up();
    long total = 0, want = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER_ROUND; i++) {
            assert_int_equal(ss__sched_spawn(s, count_and_end, &total, (void *)(intptr_t)(i % 100)),
                             0);
            want += i % 100 + 1;
        }
        ss__sched_run(s); /* PER_ROUND < SS__RUN_BATCH: all of them */
        assert_int_equal(ss__sched_live(s), 0);
    }
    assert_int_equal(total, want);
    assert_true(s->nspare > 0 && s->nspare <= 64); /* reused, then capped */
    sched_down(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_alignment_on_every_offset),
        cmocka_unit_test(test_fiber_record_takes_no_heap),
        cmocka_unit_test(test_rounding_mode_is_each_fibers_own),
        cmocka_unit_test(test_parked_deep_in_recursion),
        cmocka_unit_test(test_many_fibers_in_a_row),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* no fibers in this build, or not Linux */

int main(void)
{
    puts("test_unit_fiber_switch: needs fibers and GNU ld's --wrap (Linux): skipped");
    return 77;
}

#endif
