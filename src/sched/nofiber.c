/* The sched layer where fibers are not built (no ucontext, as on musl, or
 * -DSS_FIBERS=OFF): every "fiber" runs to completion where it is spawned,
 * on the calling thread's stack, so the pool keeps one connection per
 * worker. Nothing is ever live or parked. CMake compiles this file instead
 * of sched/{switch,scheduler,poll_*}.c. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>

struct ss__sched {
    int wake_fd;
    int64_t now_us, slept_us;
};

static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

ss__sched *ss__sched_new(size_t stack_size, int wake_fd)
{
    (void)stack_size;
    ss__sched *s = calloc(1, sizeof *s);
    if (s != NULL) {
        s->wake_fd = wake_fd;
        s->now_us = clock_us();
    }
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
    int64_t before = clock_us();
    bool woken = poll(&p, 1, -1) > 0;
    s->now_us = clock_us();
    s->slept_us += s->now_us - before;
    return woken;
}

/* A worker runs one request to its end: it cannot watch a socket while
 * it does, so the central loop accepts. */
int ss__sched_watch_source(ss__sched *s, unsigned id, int fd, bool exclusive)
{
    (void)s;
    (void)id;
    (void)fd;
    (void)exclusive;
    return -ENOTSUP;
}

void ss__sched_unwatch_source(ss__sched *s, int fd)
{
    (void)s;
    (void)fd;
}

uint64_t ss__sched_take_sources(ss__sched *s)
{
    (void)s;
    return 0;
}

int64_t ss__sched_now_us(const ss__sched *s)
{
    return s->now_us;
}

int64_t ss__sched_slept_us(const ss__sched *s)
{
    return s->slept_us;
}

/* No fiber, so no worker's scratch buffer. */
void *ss__fiber_scratch(size_t want, size_t *size)
{
    (void)want;
    *size = 0;
    return NULL;
}

/* No fiber, so no fd of one to forget. */
void ss__fiber_forget_fd(void)
{
}

void *ss__sched_carve(size_t size)
{
    (void)size;
    return NULL; /* no fiber stacks to carve from */
}

void ss__sched_uncarve(void *mem)
{
    (void)mem;
}
