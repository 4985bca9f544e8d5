/* Socket I/O for handlers: optional deadlines, EINTR retried, partial
 * writes completed, and no SIGPIPE (MSG_NOSIGNAL, or SO_NOSIGPIPE where the
 * OS has that instead).
 *
 * The timeout bounds each stall: a call fails with -ETIMEDOUT once no byte
 * has moved for timeout_ms, counted from the start of the call or from the
 * last send that moved bytes ("progress": a recv or send returning > 0);
 * for a call that never blocks in the kernel, from its first wait instead
 * (one non-blocking attempt later): most such calls never wait, and then
 * read no clock at all.
 * A signal costs a retry, never the deadline: after EINTR the rest of the
 * call waits against the same deadline.
 *
 * How a call waits is the request's waiter (io/io.h), which the caller
 * passes on with the stop state it may watch: a thread of its own may
 * block in the kernel; the sync dispatcher's handlers also watch the
 * wake-up pipe and end with -ECANCELED on a stop request; a fiber (the
 * pool) parks in its worker. This file never asks which one it has. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* the transport sets SO_NOSIGPIPE on such systems */
#endif

int ss__io_pause(int ms, const ss__waiter *waiter, const ss__stop *stop)
{
    int rc = waiter->wait(stop, false, -1, 0, ss__now_ms() + ms); /* no fd: a sleep */
    return rc < 0 ? rc : 0;
}

bool ss__io_readable_now(int fd)
{
    char byte;
    ssize_t n;
    do
        n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n >= 0;
}

int ss__io_wait_either(int fd, int watch, int timeout_ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = watch, .events = POLLIN}};
    int64_t deadline = ss__deadline(timeout_ms);
    for (;;) {
        int n = poll(p, 2, ss__remaining_ms(deadline));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        if (n > 0)
            return p[0].revents != 0 ? 1 : 2;
    }
}

/* One I/O call's way of waiting, decided once per call. */
typedef struct waiting {
    int64_t deadline; /* -1: none; DEADLINE_AT_WAIT: timeout_ms from the first wait */
    int timeout_ms;
    bool blocking; /* the next attempt may block in the kernel */
    const ss__waiter *waiter;
    const ss__stop *stop;
    bool graced; /* a stop ends it only after the stop grace */
} waiting;

/* Only a waiter that may block does, and only without a timeout or with
 * one the kernel keeps (SO_RCVTIMEO). The kernel's timeout is right only
 * for a whole call, so the first EINTR or early return turns the rest of
 * the call into waits against our own deadline (next_step). */
#define DEADLINE_AT_WAIT (-2)

/* A new stall starts: a blocking attempt's deadline runs from now, as the
 * kernel's timeout does; any other's from its first wait. */
static void stall_starts(waiting *w)
{
    w->deadline = w->timeout_ms < 0 ? -1
                  : w->blocking     ? ss__deadline(w->timeout_ms)
                                    : DEADLINE_AT_WAIT;
}

static waiting begin(int timeout_ms, bool kernel_timed, const ss__waiter *waiter,
                     const ss__stop *stop, bool graced)
{
    waiting w = {.timeout_ms = timeout_ms, .waiter = waiter, .stop = stop, .graced = graced};
    w.blocking = waiter->may_block && (timeout_ms < 0 || (kernel_timed && timeout_ms > 0));
    stall_starts(&w);
    return w;
}

/* Waits until fd is ready: 0, or -ETIMEDOUT, -ECANCELED, another -errno. */
static int wait_for(waiting *w, int fd, short events)
{
    if (w->deadline == DEADLINE_AT_WAIT)
        w->deadline = ss__deadline(w->timeout_ms);
    int rc = w->waiter->wait(w->stop, w->graced, fd, events, w->deadline);
    return rc > 0 ? 0 : (rc == 0 ? -ETIMEDOUT : rc);
}

/* After an attempt failed with errno: a negative errno to give up, 0 to
 * try again at once, 1 to wait for readiness first. */
static int next_step(waiting *w)
{
    int err = errno;
    if (err != EINTR && err != EAGAIN && err != EWOULDBLOCK)
        return -err;
    if (w->blocking && w->deadline < 0)
        return 0; /* EINTR with no timeout: blocking again loses nothing */
    if (w->blocking) {
        w->blocking = false; /* a new blocking call would restart the kernel's timeout */
        if (err != EINTR && ss__remaining_ms(w->deadline) == 0)
            return -ETIMEDOUT; /* the kernel waited the whole timeout */
    }
    return err == EINTR ? 0 : 1;
}

/* recv(), or recvmsg() into buf and on into spill when there is one. */
static ssize_t receive(int fd, void *buf, size_t size, void *spill, size_t spill_size, int flags)
{
    if (spill_size == 0)
        return recv(fd, buf, size, flags);
    struct iovec iov[2] = {{.iov_base = buf, .iov_len = size},
                           {.iov_base = spill, .iov_len = spill_size}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 2};
    return recvmsg(fd, &msg, flags);
}

/* A thread's cheapest read is one blocking recv() (kernel-timed or with no
 * timeout); otherwise MSG_DONTWAIT first, so data already there costs one
 * system call, and a wait only on EAGAIN. A fiber whose socket is known to
 * be empty parks before trying, and so does any call that would not block
 * whose caller says the bytes cannot be there yet (wait_first). */
ssize_t ss__io_recv(int fd, void *buf, size_t size, void *spill, size_t spill_size, int timeout_ms,
                    bool kernel_timed, const ss__waiter *waiter, const ss__stop *stop, bool graced,
                    bool wait_first)
{
    waiting w = begin(timeout_ms, kernel_timed, waiter, stop, graced);
    /* a stop ends even a read that would not wait: a client that keeps
     * talking cannot keep a stopping sync server alive either (a graced
     * read: once the grace is over) */
    if (waiter->stop_cancels && ss__stop_cancelled(stop, graced))
        return -ECANCELED;
    int step = waiter->known_empty(fd) || (wait_first && !w.blocking);
    for (;;) {
        if (step > 0 && (step = wait_for(&w, fd, POLLIN)) < 0)
            return step;
        ssize_t n = receive(fd, buf, size, spill, spill_size, w.blocking ? 0 : MSG_DONTWAIT);
        if (n > 0 && (size_t)n < size + spill_size)
            waiter->emptied(fd);
        if (n >= 0)
            return n;
        if ((step = next_step(&w)) < 0)
            return step;
    }
}

/* Sends are never kernel-timed: a blocking send with SO_SNDTIMEO copies
 * what fits, sleeps out the whole timeout and returns a short count, so it
 * cannot tell a stall from progress. Without a timeout a thread blocks (no
 * deadline to keep); otherwise MSG_DONTWAIT, and after a short send the
 * buffer is full, so it waits for room before trying again. */
int ss__io_send_all(int fd, const void *buf, size_t size, int timeout_ms, const ss__waiter *waiter,
                    const ss__stop *stop, bool graced)
{
    waiting w = begin(timeout_ms, false, waiter, stop, graced);
    const char *p = buf;
    int step = 0;
    while (size > 0) {
        if (step > 0 && (step = wait_for(&w, fd, POLLOUT)) < 0)
            return step;
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL | (w.blocking ? 0 : MSG_DONTWAIT));
        if (n < 0) {
            if ((step = next_step(&w)) < 0)
                return step;
            continue;
        }
        p += n;
        size -= (size_t)n;
        stall_starts(&w); /* progress */
        step = !w.blocking;
    }
    return 0;
}
