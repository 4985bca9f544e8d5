/* Socket I/O for handlers: optional deadlines, EINTR retried, partial
 * writes completed, and no SIGPIPE (MSG_NOSIGNAL, or SO_NOSIGPIPE where the
 * OS has that instead). */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* the transport sets SO_NOSIGPIPE on such systems */
#endif

int64_t ss__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ss__deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : ss__now_ms() + timeout_ms;
}

int ss__remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - ss__now_ms();
    return left <= 0 ? 0 : (left > INT32_MAX ? INT32_MAX : (int)left);
}

int ss__min_wait(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* A wait for the client's next bytes is abandoned with -ECANCELED when a
 * stop was requested and this thread is the one running serve_forever():
 * with the sync dispatcher the loop cannot end before the handler does, so
 * an idle client would otherwise keep the server alive forever. Handlers on
 * worker threads are left alone to finish (graceful stop). */
static bool interrupted_by_stop(const ss_server *srv)
{
    return srv != NULL && ss__server_stop_requested(srv) && ss__server_on_serving_thread(srv);
}

int ss__io_wait(int fd, short events, int64_t deadline, const ss_server *srv)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, ss__remaining_ms(deadline));
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
        if (interrupted_by_stop(srv))
            return -ECANCELED;
    }
}

/* Where a wait happens: on a fiber (the pool), the fiber parks in its
 * worker's readiness set and the thread serves other requests meanwhile;
 * elsewhere the thread itself polls. */
static int wait_ready(int fd, short events, int64_t deadline, const ss_server *srv, bool fiber)
{
    return fiber ? ss__fiber_wait(fd, events, deadline) : ss__io_wait(fd, events, deadline, srv);
}

void ss__io_pause(int ms)
{
    if (ss__fiber_active()) {
        ss__fiber_wait(-1, 0, ss__now_ms() + ms);
        return;
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL); /* an interruption only shortens one pause */
}

/* EAGAIN from a blocking call on a kernel-timed socket is the timeout,
 * unless the call came back early (a clock tick apart): then the caller
 * waits out the rest itself. */
static bool timed_out(bool kernel_timed, int64_t deadline)
{
    return kernel_timed && ss__remaining_ms(deadline) == 0;
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

ssize_t ss__io_recv(int fd, void *buf, size_t size, void *spill, size_t spill_size, int timeout_ms,
                    bool kernel_timed, const ss_server *srv)
{
    int64_t deadline = ss__deadline(timeout_ms);
    /* A thread's cheapest wait is a blocking recv(): with no timeout, or
     * when the kernel times it (SO_RCVTIMEO). Otherwise poll() bounds the
     * wait and MSG_DONTWAIT keeps recv() from blocking. A fiber never
     * blocks its thread: it tries first and parks only on EAGAIN. */
    bool fiber = ss__fiber_active();
    kernel_timed = kernel_timed && !fiber;
    bool blocking = !fiber && (deadline < 0 || kernel_timed);
    int flags = blocking ? 0 : MSG_DONTWAIT;
    bool must_wait = fiber ? ss__fiber_drained_fd(fd) : !blocking;
    for (;;) {
        /* A stop signalled just before we block would otherwise not
         * interrupt the wait; what remains is a window of a few
         * instructions, which a second signal closes. */
        if (interrupted_by_stop(srv))
            return -ECANCELED;
        if (must_wait) {
            int rc = wait_ready(fd, POLLIN, deadline, srv, fiber);
            if (rc <= 0)
                return rc == 0 ? -ETIMEDOUT : rc;
        }
        ssize_t n = receive(fd, buf, size, spill, spill_size, flags);
        if (n > 0 && fiber && (size_t)n < size + spill_size)
            ss__fiber_drained(fd);
        if (n >= 0)
            return n;
        if (errno == EINTR && interrupted_by_stop(srv))
            return -ECANCELED;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        if (errno != EINTR && timed_out(kernel_timed, deadline))
            return -ETIMEDOUT;
        must_wait = errno != EINTR; /* EAGAIN: non-blocking, or back early */
    }
}

/* A reply is never cut short by a stop request: only the wait for the
 * client's next bytes is (ss__io_recv), so no srv is passed to waits here. */
int ss__io_send_all(int fd, const void *buf, size_t size, int timeout_ms, bool kernel_timed,
                    const ss_server *srv)
{
    (void)srv;
    const char *p = buf;
    bool fiber = ss__fiber_active(); /* as in ss__io_recv: try first, park on EAGAIN */
    kernel_timed = kernel_timed && !fiber;
    bool blocking = !fiber && (timeout_ms < 0 || kernel_timed);
    int flags = MSG_NOSIGNAL | (blocking ? 0 : MSG_DONTWAIT);
    bool poll_first = !fiber && !blocking;
    bool must_wait = poll_first;
    while (size > 0) {
        int64_t deadline = ss__deadline(timeout_ms); /* bounds each stall */
        if (must_wait) {
            /* the timeout bounds each stall, not the whole transfer */
            int rc = wait_ready(fd, POLLOUT, ss__deadline(timeout_ms), NULL, fiber);
            if (rc <= 0)
                return rc == 0 ? -ETIMEDOUT : rc;
        }
        ssize_t n = send(fd, p, size, flags);
        if (n >= 0) {
            p += n;
            size -= (size_t)n;
            must_wait = poll_first;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (timed_out(kernel_timed, deadline))
                return -ETIMEDOUT; /* no byte went out for a whole timeout */
            must_wait = true;
        } else if (errno != EINTR) {
            return -errno;
        }
    }
    return 0;
}
