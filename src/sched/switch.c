/* A fiber's stack and the switches between it and its scheduler.
 *
 * Each fiber has an mmap'd stack of its own with a guard page, its record
 * at the top of the same mapping, and the scheduler keeps a few ended
 * fibers' stacks for the next ones. The switch is a few instructions of our
 * own on x86_64 and aarch64 (SS__SWITCH_ASM), glibc's ucontext elsewhere
 * (sched_private.h says which and why). The sanitizers are told about
 * every switch (ASan's fake stacks, TSan's fiber API). */
/* __longjmp_chk, which _FORTIFY_SOURCE substitutes for siglongjmp,
 * refuses a jump to another stack: the ucontext path's switch is exactly
 * that. */
#undef _FORTIFY_SOURCE
#include "sched/sched_private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef SS_ASAN
#include <sanitizer/asan_interface.h>
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

/* ---- the stack's layout: [guard page][stack ... | record] ---- */

/* Each new stack's record (and so the top of its stack, just below it)
 * starts this many cache lines below the top of its mapping, in turn: the
 * mappings are page-aligned, so the records and hot frames of thousands of
 * parked fibers would otherwise all fall in the same few cache sets and
 * evict each other. 16 lines: under 1 KiB of a stack, spread over a
 * quarter of a 4 KiB page's sets. */
#define STACK_OFFSETS 16
#define CACHE_LINE    64

/* The record's size rounded up to whole cache lines. */
#define RECORD_SIZE ((sizeof(ss__fiber) + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE)

/* The fiber's stack ends where its record begins, or below the memory
 * carved under the record: a cache-line boundary either way, so the
 * 16-byte alignment both ABIs ask of a stack pointer holds. */
static char *stack_top(const ss__fiber *f)
{
    return f->top;
}

#if defined(SS_ASAN) || !defined(SS__SWITCH_ASM) /* told to ASan, or to makecontext */
static char *stack_bottom(const ss__sched *s, const ss__fiber *f)
{
    return f->map + s->guard;
}

static size_t stack_bytes(const ss__sched *s, const ss__fiber *f)
{
    return (size_t)(stack_top(f) - stack_bottom(s, f));
}
#endif

/* ---- the switch of our own: x86_64 and aarch64 ----
 *
 * ss__ctx_switch(save, to): pushes the registers the callee must preserve
 * (and the floating-point control words, callee-saved in both ABIs: x86's
 * MXCSR control bits and x87 control word, aarch64's FPCR) on the current
 * stack, stores the stack pointer in *save, loads `to` (a stack pointer
 * that an earlier switch or start stored) and pops the same from there: it
 * returns on the other stack, where that one called it. On x86_64 that
 * return is an indirect jump, not a `ret`: the processor predicts a `ret`
 * from its own stack of call sites, which a switch of stacks always
 * defeats (a pair measured 20 ns with `ret`, 9 ns with the jump, in
 * isolation); an indirect jump is predicted from where it last went.
 *
 * ss__ctx_start(save, top, entry, arg): saves as ss__ctx_switch does, then
 * calls entry(arg) with the stack pointer at `top` (16-byte aligned, so
 * the callee sees the ABI's alignment) and the frame pointer (and link
 * register) zero, so a backtrace ends there. entry never returns.
 *
 * Nothing else is saved: the signal mask is the thread's, as for any
 * function call, and glibc's cancellation cleanup chain is never unwound
 * (siglongjmp would walk it: __pthread_cleanup_upto). */
#ifdef SS__SWITCH_ASM
void ss__ctx_switch(void **save, void *to) SS__SCHED_HIDDEN;
void ss__ctx_start(void **save, void *top, void (*entry)(void *), void *arg) SS__SCHED_HIDDEN;

#if defined(__x86_64__)
#define SAVE_REGS                                                                                  \
    "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n"                             \
    "    pushq %r14\n    pushq %r15\n    subq $8, %rsp\n"                                          \
    "    stmxcsr (%rsp)\n    fnstcw 4(%rsp)\n    movq %rsp, (%rdi)\n"
__asm__(".text\n"
        ".globl ss__ctx_switch\n.hidden ss__ctx_switch\n.type ss__ctx_switch, @function\n"
        ".p2align 4\n"
        "ss__ctx_switch:\n" SAVE_REGS "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n    fldcw 4(%rsp)\n    addq $8, %rsp\n"
        "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n"
        "    popq %rbx\n    popq %rbp\n    popq %rcx\n    jmp *%rcx\n"
        ".size ss__ctx_switch, .-ss__ctx_switch\n"
        ".globl ss__ctx_start\n.hidden ss__ctx_start\n.type ss__ctx_start, @function\n"
        ".p2align 4\n"
        "ss__ctx_start:\n" SAVE_REGS "    .cfi_startproc\n    .cfi_undefined rip\n"
        "    movq %rsi, %rsp\n"
        "    xorl %ebp, %ebp\n    movq %rcx, %rdi\n    call *%rdx\n    ud2\n"
        "    .cfi_endproc\n"
        ".size ss__ctx_start, .-ss__ctx_start\n");
#undef SAVE_REGS
#elif defined(__aarch64__)
/* 176 bytes: x19-x30 (x29 the frame pointer, x30 the return address),
 * d8-d15 (the low halves of v8-v15, all the ABI preserves), FPCR, padding
 * to keep sp 16-byte aligned. */
#define SAVE_REGS                                                                                  \
    "    sub sp, sp, #176\n"                                                                       \
    "    stp x19, x20, [sp, #0]\n    stp x21, x22, [sp, #16]\n"                                    \
    "    stp x23, x24, [sp, #32]\n    stp x25, x26, [sp, #48]\n"                                   \
    "    stp x27, x28, [sp, #64]\n    stp x29, x30, [sp, #80]\n"                                   \
    "    stp d8, d9, [sp, #96]\n    stp d10, d11, [sp, #112]\n"                                    \
    "    stp d12, d13, [sp, #128]\n    stp d14, d15, [sp, #144]\n"                                 \
    "    mrs x9, fpcr\n    str x9, [sp, #160]\n"                                                   \
    "    mov x9, sp\n    str x9, [x0]\n"
__asm__(".text\n"
        ".globl ss__ctx_switch\n.hidden ss__ctx_switch\n.type ss__ctx_switch, %function\n"
        ".p2align 4\n"
        "ss__ctx_switch:\n" SAVE_REGS "    mov sp, x1\n"
        "    ldr x9, [sp, #160]\n    msr fpcr, x9\n"
        "    ldp x19, x20, [sp, #0]\n    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n    ldp d14, d15, [sp, #144]\n"
        "    add sp, sp, #176\n    ret\n"
        ".size ss__ctx_switch, .-ss__ctx_switch\n"
        ".globl ss__ctx_start\n.hidden ss__ctx_start\n.type ss__ctx_start, %function\n"
        ".p2align 4\n"
        "ss__ctx_start:\n" SAVE_REGS "    .cfi_startproc\n    .cfi_undefined x30\n"
        "    mov sp, x1\n"
        "    mov x29, #0\n    mov x30, #0\n    mov x0, x3\n    blr x2\n    brk #0\n"
        "    .cfi_endproc\n"
        ".size ss__ctx_start, .-ss__ctx_start\n");
#undef SAVE_REGS
#endif
#endif /* SS__SWITCH_ASM */

/* ---- switching, with the sanitizers told about every stack change ---- */

/* gcc treats getcontext/swapcontext like setjmp and warns about every
 * local of a function that calls them. The switches live in functions of
 * their own, kept out of line, whose frames the switch preserves. */
#if defined(__GNUC__)
#define SWITCHES __attribute__((noinline))
#else
#define SWITCHES
#endif

static void fiber_entry(void *fiber);

#ifdef SS__SWITCH_ASM
/* Scheduler -> f: its first entry, or back where it parked. */
static void enter(ss__sched *s, ss__fiber *f)
{
    if (f->sp != NULL)
        ss__ctx_switch(&s->main_sp, f->sp);
    else
        ss__ctx_start(&s->main_sp, stack_top(f), fiber_entry, f);
}

/* f -> scheduler. */
static void leave(ss__sched *s, ss__fiber *f)
{
    ss__ctx_switch(&f->sp, s->main_sp);
}
#else
/* makecontext passes only ints: the fiber finds itself through the
 * thread's scheduler instead. */
static void fiber_entry_ucontext(void)
{
    fiber_entry(ss__this_sched->current);
}

#ifdef FAST_SWITCH
static SWITCHES void enter_fast(ss__fiber *f)
{
    if (f->started)
        siglongjmp(f->jb, 1);
    f->started = true;
    setcontext(&f->ctx); /* the fresh stack: fiber_entry */
}
#endif

/* Only these two call sigsetjmp, and keep no local across it: their
 * callers' locals are safe in the frames below. */
static SWITCHES void enter(ss__sched *s, ss__fiber *f)
{
#ifdef FAST_SWITCH
    if (sigsetjmp(s->main_jb, 0) == 0)
        enter_fast(f);
#else
    swapcontext(&s->main_ctx, &f->ctx);
#endif
}

static SWITCHES void leave(ss__sched *s, ss__fiber *f)
{
#ifdef FAST_SWITCH
    if (f->done || sigsetjmp(f->jb, 0) == 0)
        siglongjmp(s->main_jb, 1);
#else
    swapcontext(&f->ctx, &s->main_ctx);
#endif
}
#endif /* SS__SWITCH_ASM */

void ss__switch_attach(ss__sched *s)
{
#ifdef SS_TSAN
    s->tsan_main = __tsan_get_current_fiber();
#else
    (void)s;
#endif
}

void ss__switch_to_fiber(ss__sched *s, ss__fiber *f)
{
    s->current = f;
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(&s->main_fake_stack, stack_bottom(s, f), stack_bytes(s, f));
#endif
#ifdef SS_TSAN
    __tsan_switch_to_fiber(f->tsan, 0);
#endif
    enter(s, f);
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
void ss__switch_to_scheduler(ss__sched *s, ss__fiber *f)
{
#ifdef SS_ASAN
    __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack, s->main_bottom, s->main_size);
#endif
#ifdef SS_TSAN
    __tsan_switch_to_fiber(s->tsan_main, 0);
#endif
    leave(s, f);
    fiber_resumed(f);
}

/* The bottom of every fiber's stack: runs its function, then leaves for
 * good. */
static void fiber_entry(void *fiber)
{
    ss__fiber *f = fiber;
    fiber_resumed(f);
    f->fn(f->a, f->b);
    f->done = true;
    ss__switch_to_scheduler(f->sched, f);
    abort(); /* an ended fiber is never resumed */
}

/* Ready for its first entry, from the top of its stack. */
static void prepare_entry(ss__sched *s, ss__fiber *f)
{
#ifdef SS__SWITCH_ASM
    (void)s;
    f->sp = NULL;
#else
#ifdef FAST_SWITCH
    f->started = false;
#endif
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = stack_bottom(s, f);
    f->ctx.uc_stack.ss_size = stack_bytes(s, f);
    f->ctx.uc_link = NULL; /* fiber_entry never returns */
    makecontext(&f->ctx, fiber_entry_ucontext, 0);
#endif
}

/* ---- stacks ---- */

void ss__stack_sizes(ss__sched *s, size_t stack_size)
{
    long page = sysconf(_SC_PAGESIZE);
    s->guard = page > 0 ? (size_t)page : 4096;
    s->stack_size = (stack_size + s->guard - 1) / s->guard * s->guard;
}

/* A stack of its own: mmap'd, with a PROT_NONE guard page below it so an
 * overflow faults instead of corrupting a neighbour, and the fiber's
 * record at its top, at the next of the varied offsets (the mapping is
 * zeroed: so is the record). */
static ss__fiber *fiber_alloc(ss__sched *s)
{
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_STACK
    flags |= MAP_STACK;
#endif
    char *map = mmap(NULL, s->guard + s->stack_size, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    mprotect(map, s->guard, PROT_NONE);
    size_t offset = (s->mapped++ % STACK_OFFSETS) * CACHE_LINE;
    ss__fiber *f = (ss__fiber *)(map + s->guard + s->stack_size - offset - RECORD_SIZE);
    f->map = map;
    f->sched = s;
    f->top = (char *)f;
    return f;
}

static void fiber_free(ss__sched *s, ss__fiber *f)
{
#ifdef SS_ASAN
    ASAN_UNPOISON_MEMORY_REGION(f->top, (size_t)((char *)f - f->top)); /* for the next mmap */
#endif
    munmap(f->map, s->guard + s->stack_size);
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

/* The memory just below the record, `carve` bytes rounded up to whole
 * lines, zeroed (a cached stack keeps its last fiber's bytes); the stack
 * starts below it. ASan sees it as memory of its own, not as stack. */
static void *carve_below_record(ss__fiber *f, size_t carve)
{
    size_t bytes = (carve + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
#ifdef SS_ASAN
    /* a recycled stack's last carving, poisoned by fiber_put, may now be stack */
    ASAN_UNPOISON_MEMORY_REGION(f->top, (size_t)((char *)f - f->top));
#endif
    f->top = (char *)f - bytes;
    memset(f->top, 0, bytes);
    return bytes > 0 ? f->top : NULL;
}

ss__fiber *ss__fiber_get(ss__sched *s, size_t carve, void **carved)
{
    if (carve > SS__CARVE_MAX)
        return NULL;
    ss__fiber *f = cached_or_new(s);
    if (f == NULL)
        return NULL;
    f->done = false;
    *carved = carve_below_record(f, carve);
    prepare_entry(s, f);
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
#ifdef SS_ASAN
    /* what was carved (a request) is dead with its fiber: ASan says so */
    ASAN_POISON_MEMORY_REGION(f->top, (size_t)((char *)f - f->top));
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
