/* Declarations of the sched and io layers (src/sched/, src/io/), kept
 * together in this one block so they can move as a whole to
 * src/sched/sched.h and src/io/io.h. */
#ifndef SS_SCHED_IO_H
#define SS_SCHED_IO_H

#include "objects.h"

/* The server whose stop ends this request's waits (the sync waiter), or
 * NULL: what io/io.c takes as `stop`. */
static inline const ss_server *ss__request_stop(const ss_request *req)
{
    return req->waiter == SS__WAITER_SYNC ? req->server : NULL;
}

/* io/io.c: socket I/O with an optional deadline, EINTR-safe, no SIGPIPE.
 * timeout_ms bounds each stall: -ETIMEDOUT once no byte has moved for
 * that long (since the call began or its last partial send); a signal
 * never restarts it. `stop` is the request's waiter as ss__request_stop()
 * gives it: NULL, or the server whose stop request ends every wait with
 * -ECANCELED (the sync dispatcher). */
int64_t ss__now_ms(void);
int64_t ss__deadline(int timeout_ms); /* -1 when timeout_ms < 0 */
/* Milliseconds left until deadline: -1 without one, 0 once passed. */
int ss__remaining_ms(int64_t deadline);
/* The shorter of two waits, where negative means "no limit". */
int ss__min_wait(int a, int b);
/* kernel_timed: the socket already carries timeout_ms as SO_RCVTIMEO, so
 * a thread may block in the first recv itself instead of polling first;
 * a fiber and the sync waiter ignore it. */
ssize_t ss__io_recv(int fd, void *buf, size_t size, void *spill, size_t spill_size, int timeout_ms,
                    bool kernel_timed, const ss_server *stop);
int ss__io_send_all(int fd, const void *buf, size_t size, int timeout_ms, const ss_server *stop);
/* poll() one fd (-1: none, a sleep) for `events` until deadline (-1 =
 * forever); EINTR-safe. With `stop`, also the server's wake-up pipe.
 * Returns 1 ready, 0 timed out, -ECANCELED on a stop request, or another
 * negative errno. */
int ss__io_wait(int fd, short events, int64_t deadline, const ss_server *stop);
/* Sleeps ms milliseconds; on a fiber, parks it instead of the thread.
 * Returns 0, or -ECANCELED early on a stop request of `stop`. */
int ss__io_pause(int ms, const ss_server *stop);

/* sched/fiber.c: fibers and a per-thread scheduler (the pool's workers). A
 * scheduler and its fibers belong to the thread that runs it. Built
 * without fibers (SS_HAVE_FIBERS 0), spawn runs the function to its end
 * at once and nothing is ever live. */
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
/* A fiber that will run fn(a, b). Returns 0 or -ENOMEM. */
int ss__sched_spawn(ss__sched *s, void (*fn)(void *, void *), void *a, void *b);
/* Runs every runnable fiber until each has parked or ended. */
void ss__sched_run(ss__sched *s);
/* Waits for readiness, a deadline or the wake fd; makes the fibers
 * concerned runnable. Returns true if the wake fd is readable. */
bool ss__sched_poll(ss__sched *s);
/* True on a fiber: io/io.c then parks instead of blocking the thread. */
bool ss__fiber_active(void);
/* Parks the current fiber until fd has `events` (POLLIN or POLLOUT; a
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
/* Drops the current fiber's fd from the readiness set: before it is
 * closed. */
void ss__fiber_forget_fd(void);

/* io/linger.c: the end of a stream request's socket: shutdown(SHUT_WR),
 * then close. Closes fd at once when nothing can be lost: the peer has
 * closed, or nothing is unread and everything we sent was acknowledged.
 * Otherwise a reset (any byte the peer sends after the close) could
 * destroy the end of our reply, so fd gets a lingering close: read and
 * discarded until the peer closes, or a bound. That happens in a
 * process-wide background thread, or with in_place (a forking child about
 * to exit) right here. send_queue: TCP, whose unacknowledged bytes a
 * reset destroys; false for Unix streams. fd belongs to this call. */
typedef enum ss__linger_result {
    SS__CLOSED_AT_ONCE, /* nothing to wait for */
    SS__LINGERED,       /* closed or to be closed after lingering */
    SS__LINGER_REFUSED, /* needed it, but the lingerer was full: closed at once */
} ss__linger_result;
ss__linger_result ss__linger_close(int fd, bool send_queue, bool in_place);

#endif /* SS_SCHED_IO_H */
