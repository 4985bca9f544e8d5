/* The io layer as the layers above it see it: a request's socket I/O
 * with deadlines (io/io.c), how that I/O waits (the waiters, io/waiter.c
 * and io/waiter_fiber.c), the stop state a wait may be ended by
 * (io/stop.c), and the end of a stream socket (io/linger.c). Uses only
 * base/ and sched/; knows nothing of servers or requests. */
#ifndef SS_IO_H
#define SS_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- io/stop.c: a stop request and the loop's wake-up pipe ---- */

/* What a stop request shares with the waits it must end: the flag, set
 * before a byte is written to the pipe, and the pipe (a self-pipe, both
 * ends non-blocking) that wakes whoever polls its read end. The server
 * embeds one; -1 for an end it does not have.
 * The stop grace (sync, limits.h): a wait that asks for it (graced: a
 * busy request's, not an idle one's) is ended by a stop only grace_ms
 * after the stop was first requested; a further stop, or any stop while
 * `now` is set (a drain runs), ends it at once. */
typedef struct ss__stop {
    atomic_bool requested;
    /* Monotonic ms at which a stop_cancels waiter's waits end as if a
     * stop were requested (drain's deadline, for handlers the drain runs
     * on its own thread); 0: none. */
    atomic_llong cancel_at;
    atomic_int grace_ms;       /* 0: every stop ends every wait at once */
    atomic_llong requested_at; /* monotonic ms of the pending stop; 0: none */
    atomic_bool now;           /* a stop ends graced waits at once too */
    int wake_read, wake_write;
    /* Read only by ss__waiter_cut, whose user sets it first (a forked
     * child): a pipe whose byte, once written, ends every such wait. */
    int cut_read;
} ss__stop;

/* Requests a stop: the flag, its time, `now` if one was already pending,
 * then a byte into the pipe. Async-signal-safe, keeps errno. */
void ss__stop_request(ss__stop *stop);
/* Reads and clears a pending stop (flag, time and `now`). */
bool ss__stop_take(ss__stop *stop);
bool ss__stop_requested(const ss__stop *stop);
/* A stop was requested (and, for a graced wait, its grace has passed or
 * it was a stop `now`), or cancel_at has passed: what ends a
 * stop_cancels waiter's waits. */
bool ss__stop_cancelled(const ss__stop *stop, bool graced);
/* When a stop_cancels wait against `deadline` (-1: none) must end at the
 * latest: the earliest of it, cancel_at and a pending stop's end. */
int64_t ss__stop_deadline(const ss__stop *stop, bool graced, int64_t deadline);
/* One byte into the pipe; a full pipe already wakes. Async-signal-safe,
 * keeps errno. */
void ss__stop_wake(const ss__stop *stop);
/* Empties the pipe: only from the thread that runs the loop. */
void ss__stop_drain(const ss__stop *stop);

/* ---- io/waiter.c: how a request's blocking I/O waits ---- */

/* A const table the dispatcher attaches to each request as it starts it
 * (req->waiter); io/io.c reads it once per call. Every slot is filled. */
typedef struct ss__waiter {
    /* Waits until fd has `events` (POLLIN or POLLOUT; a hang-up or error
     * counts) or deadline (-1: none) passes; fd -1 just sleeps until the
     * deadline. EINTR-safe. Returns 1 ready, 0 timed out, -ECANCELED on a
     * stop request (stop_cancels; graced: after the stop grace), or
     * another negative errno. */
    int (*wait)(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline);
    /* Readiness the waiter tracks per socket (a fiber's poller): true
     * when a recv on fd would fail with EAGAIN, so wait before trying ... */
    bool (*known_empty)(int fd);
    /* ... and a recv on fd returned fewer bytes (> 0) than asked. */
    void (*emptied)(int fd);
    /* A stop request ends every wait, and even a read that would not wait:
     * the handler runs on the loop's own thread (sync). */
    bool stop_cancels;
    /* Reads on into the empty stream buffer (core/bufio.c): worth it only
     * where a short read saves the next call (known_empty). */
    bool read_ahead;
    /* May block in the kernel: without a timeout, or with the socket's
     * SO_RCVTIMEO keeping it (transport/transport.c sets that then). */
    bool may_block;
} ss__waiter;

/* A thread of its own (threading, a pool worker without fibers; and the
 * default for a request no dispatcher has started yet):
 * it may block in the kernel, and only its timeout or its client ends a
 * wait; a stop request does not (graceful stop). */
extern const ss__waiter ss__waiter_thread;
/* The loop's own thread (sync): the loop cannot end before the handler
 * does, so every wait also watches the wake-up pipe and a stop request
 * ends it with -ECANCELED (a graced wait's after the stop grace). */
extern const ss__waiter ss__waiter_sync;
/* The sync waiter for a request's filters' open (a PROXY header): waits
 * end on a stop as ss__waiter_sync's do, but a read that need not wait is
 * made even once its request's waits are cancelled, so a header already
 * sent is read (it is bounded) and its client is served, or cut off in
 * its handler, like a client without one, never refused for the stop. */
extern const ss__waiter ss__waiter_sync_open;
/* A thread of its own that must not outlive a deadline someone else
 * keeps: a forked child's waits (its filters' open: a PROXY header, a
 * handshake; its handler's reads and writes), which its parent's drain
 * ends at its deadline (or a second stop) by a byte in stop->cut_read,
 * left there for every child. Such a wait returns -ECANCELED then,
 * whatever the application does with the SIGTERM that follows. Polls
 * (never blocks in recv): a read that must wait costs a poll() and a
 * recv() more, only in a forked child. */
extern const ss__waiter ss__waiter_cut;
#if SS_HAVE_FIBERS
/* A fiber of the pool (io/waiter_fiber.c): a wait parks the fiber and
 * its worker runs others; the poller's readiness saves a recv per read. */
extern const ss__waiter ss__waiter_fiber;
#endif

/* ---- io/io.c: socket I/O with an optional deadline ---- */

/* EINTR-safe, no SIGPIPE. timeout_ms bounds each stall: -ETIMEDOUT once
 * no byte has moved for that long (since the call began or its last
 * partial send); a signal never restarts it. The waiter decides how the
 * call waits; stop is what a stop_cancels waiter watches (the server's),
 * graced whether this call gets the stop grace (ss__stop).
 * recv reads up to size bytes into buf, and with spill_size > 0 on into
 * spill in the same call; returns the total, or a negative errno.
 * kernel_timed: the socket carries timeout_ms as SO_RCVTIMEO, so a
 * may_block waiter may block in the first recv itself. wait_first: the
 * caller knows the peer's next bytes cannot have come yet (it has just
 * sent what they answer: a TLS handshake flight), so a call that would
 * not block in the kernel waits for readiness before its first recv
 * rather than after one that fails with EAGAIN. */
ssize_t ss__io_recv(int fd, void *buf, size_t size, void *spill, size_t spill_size, int timeout_ms,
                    bool kernel_timed, const ss__waiter *waiter, const ss__stop *stop, bool graced,
                    bool wait_first);
int ss__io_send_all(int fd, const void *buf, size_t size, int timeout_ms, const ss__waiter *waiter,
                    const ss__stop *stop, bool graced);
/* Sleeps ms milliseconds the waiter's way (a fiber parks). Returns 0, or
 * -ECANCELED early on a stop request to a stop_cancels waiter (never
 * graced). */
int ss__io_pause(int ms, const ss__waiter *waiter, const ss__stop *stop);
/* True if a recv on fd would return at once with bytes or end of stream
 * (one non-blocking MSG_PEEK): the client has already sent its next
 * message, or closed. Costs one system call: drain only. */
bool ss__io_readable_now(int fd);
/* Waits up to timeout_ms (-1: no limit; EINTR-safe, same deadline) until
 * fd or `watch` is readable (a hang-up or error counts). Returns 1 for fd,
 * 2 for watch (fd not ready), -ETIMEDOUT, or another negative errno. */
int ss__io_wait_either(int fd, int watch, int timeout_ms);

/* ---- io/linger.c: the end of a stream request's socket ---- */

/* shutdown(SHUT_WR), then close. Closes fd at once when nothing can be
 * lost: the peer has closed, or nothing is unread and everything we sent
 * was acknowledged. Otherwise a reset (any byte the peer sends after the
 * close) could destroy the end of our reply, so fd gets a lingering
 * close: read and discarded until the peer closes, or a bound. That
 * happens in a process-wide background thread, or with in_place (a
 * forking child about to exit) right here. send_queue: TCP, whose
 * unacknowledged bytes a reset destroys; false for Unix streams.
 * peer_ended: a read already returned the peer's end of stream, and no
 * shutdown of ours caused it: nothing is unread and nothing more can come,
 * so fd is just closed (no shutdown, no recv; shutdown still with
 * in_place, where another process may hold the socket). fd belongs to
 * this call. */
typedef enum ss__linger_result {
    SS__CLOSED_AT_ONCE, /* nothing to wait for */
    SS__LINGERED,       /* closed or to be closed after lingering */
    SS__LINGER_REFUSED, /* needed it, but the lingerer was full: closed at once */
} ss__linger_result;
ss__linger_result ss__linger_close(int fd, bool send_queue, bool in_place, bool peer_ended);

#endif /* SS_IO_H */
