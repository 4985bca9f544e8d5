/* The sched layer as the layers above it see it: fibers and a per-thread
 * scheduler (the pool's workers). A scheduler and its fibers belong to the
 * thread that runs it. Built without fibers (SS_HAVE_FIBERS 0,
 * sched/nofiber.c), spawn runs the function to its end at once and nothing
 * is ever live. Uses only base/. */
#ifndef SS_SCHED_H
#define SS_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SS_HAVE_FIBERS
#define SS_HAVE_FIBERS 0
#endif

typedef struct ss__sched ss__sched;
/* Stacks of stack_size bytes; wake_fd (read end of a pipe) joins the
 * readiness set so another thread can interrupt ss__sched_poll. */
ss__sched *ss__sched_new(size_t stack_size, int wake_fd);
void ss__sched_free(ss__sched *s);  /* with no fiber live */
void ss__sched_enter(ss__sched *s); /* this thread runs s (NULL: none) */
size_t ss__sched_live(const ss__sched *s);
/* A fiber that will run fn(a, b). Returns 0 or -ENOMEM. When b is memory
 * this thread's ss__sched_carve returned, the fiber is the one it lies in
 * (which cannot fail). */
int ss__sched_spawn(ss__sched *s, void (*fn)(void *, void *), void *a, void *b);
/* Memory for the object the next fiber of this thread's scheduler will
 * serve (the pool's request), carved from the top page of that fiber's
 * stack, just below its record: the page a parked fiber keeps anyway, so
 * an idle connection holds no heap bytes for it, and a request touches
 * one page fewer. `size` bytes (at most 1 KiB), zeroed; NULL (the caller
 * allocates elsewhere) off a scheduler's own loop (no scheduler on this
 * thread, or on a fiber), with a carving not yet spawned or given back,
 * out of memory, or built without fibers. The memory lives until the
 * fiber ends: spawn the fiber with it as b, or give it back with
 * ss__sched_uncarve on the same thread before that. Uncarve on memory
 * already spawned does nothing (the fiber's end frees it). */
void *ss__sched_carve(size_t size);
void ss__sched_uncarve(void *mem);
/* Runs runnable fibers until each has parked or ended, or SS__RUN_BATCH
 * of them have run: the starvation guard, so that a crowd of ready fibers
 * (or fibers that keep waking each other) cannot keep the loop from
 * polling for I/O and taking new work for long. */
#define SS__RUN_BATCH 128
void ss__sched_run(ss__sched *s);
/* Waits for readiness, a deadline or the wake fd; makes the fibers
 * concerned runnable and notes the sources ready; without waiting if
 * some fiber is runnable already or a ready source was not taken yet.
 * Reads the clock once when it returns (and once before a wait that may
 * block, to time the wait's deadline). Returns true if the wake fd is
 * readable. */
bool ss__sched_poll(ss__sched *s);
/* Listening sockets the loop takes clients from itself (a pool worker
 * while a server loop serves), each known by an id below SS__MAX_SOURCES:
 * level-triggered and, when `exclusive`, with exclusive wake-ups (Linux's
 * EPOLLEXCLUSIVE), so an arrival wakes one of the loops waiting on the
 * socket rather than all of them; a loop busy elsewhere still sees it on
 * its next poll. A loop woken so that declines the client has taken the
 * arrival's one wake-up: no other loop hears of that client until the
 * next arrival, so whoever shares a socket so must have a way to find
 * such a client (the pool's pass_on within a process, look_for_stranded
 * across worker processes, dispatch/pool.c).
 * watch returns 0, -ENOTSUP where the readiness set cannot share a socket
 * so (the poll() backend, no fibers, a kernel without EPOLLEXCLUSIVE), or
 * a negative errno. watch and unwatch touch only the kernel's readiness
 * set, never the scheduler's memory: any thread may call them, one at a
 * time per scheduler (the caller's lock), even while its own thread polls.
 * unwatch must come before fd is closed. take_sources returns the ids
 * found ready since the last call (bit id set) and clears them: only the
 * scheduler's own thread. */
#define SS__MAX_SOURCES 64
int ss__sched_watch_source(ss__sched *s, unsigned id, int fd, bool exclusive);
void ss__sched_unwatch_source(ss__sched *s, int fd);
uint64_t ss__sched_take_sources(ss__sched *s);
/* The loop's clock: CLOCK_MONOTONIC in microseconds as ss__sched_poll
 * (or ss__sched_new) last read it: what the loop's own bookkeeping (the
 * pool's load meter) uses instead of reading the clock again. */
int64_t ss__sched_now_us(const ss__sched *s);
/* Microseconds spent blocked in ss__sched_poll since ss__sched_new. */
int64_t ss__sched_slept_us(const ss__sched *s);
#if SS_HAVE_FIBERS
/* What a fiber's request I/O uses (io/waiter_fiber.c). Called off a
 * fiber (a thread the handler started for its request's I/O), each acts
 * as a plain thread would: poll, and know nothing of the socket.
 *
 * Parks the current fiber until fd has `events` (POLLIN or POLLOUT; a
 * hang-up or error counts) or deadline (-1: none) passes; fd -1 just
 * sleeps until the deadline. Returns 1 ready, 0 timed out, or a negative
 * errno if fd cannot be watched. */
int ss__fiber_wait(int fd, short events, int64_t deadline);
/* A recv on the current fiber returned fewer bytes than asked (> 0):
 * fd is empty. */
void ss__fiber_drained(int fd);
/* True when a recv on fd would fail with EAGAIN: the fiber should park
 * before trying. */
bool ss__fiber_drained_fd(int fd);
#endif
/* The current fiber's worker's scratch buffer, for a read that fills it
 * and hands its bytes on before the fiber can switch again: *size gets its
 * size (at most `want`; the first call sizes it for good, so a pointer
 * never moves). NULL off a fiber, without fibers, or out of memory. */
void *ss__fiber_scratch(size_t want, size_t *size);
/* Drops the current fiber's fd from the readiness set: before it is
 * closed. Nothing off a fiber, or without fibers. */
void ss__fiber_forget_fd(void);

#endif /* SS_SCHED_H */
