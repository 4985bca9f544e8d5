/* The waiters of threads (ss__waiter_thread) and of the sync dispatcher's
 * handlers (ss__waiter_sync): io/io.h says what each promises. Neither
 * tracks a socket's readiness: a thread's next recv just blocks or polls. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <errno.h>
#include <poll.h>

/* A thread watching nothing but its socket: poll() alone. */
static int thread_wait(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline)
{
    (void)stop; /* a stop request never ends a thread's wait */
    (void)graced;
    return ss__poll_until(fd, events, deadline);
}

/* The sync waiter: the handler runs on the loop's own thread, so the loop
 * cannot see a stop until the handler returns. Each wait therefore polls
 * the wake-up pipe too, whoever writes to it (another thread, a signal
 * handler on any thread, a hook). A stop request ends the wait (a graced
 * wait's once the stop grace has passed, or at a further stop) and its
 * byte stays in the pipe for the loop. Any other byte only asks the loop
 * to look again, which it does anyway once the handler returns, so it is
 * drained here (else poll would spin; so is a stop's byte during its
 * grace). A stop sets its flag before writing its byte: if the flag is
 * set when a wait that drained the pipe returns, the byte drained may
 * have been the stop's, and it is put back for the loop, which may be
 * about to block in handle_request's wait without reading the flag first.
 * A handler the drain runs on its own thread (a client it took from the
 * backlog) also ends at the drain's deadline (stop->cancel_at). */
static int poll_or_stop(const ss__stop *stop, bool graced, struct pollfd p[2], int64_t deadline,
                        bool *drained)
{
    for (;;) {
        if (ss__stop_cancelled(stop, graced))
            return -ECANCELED;
        int n = poll(p, 2, ss__remaining_ms(ss__stop_deadline(stop, graced, deadline)));
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0 && ss__remaining_ms(deadline) == 0)
            return 0;
        if (n > 0 && p[0].revents != 0)
            return 1;
        if (n > 0) {
            ss__stop_drain(stop);
            *drained = true;
        }
    }
}

static int wait_or_stop(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline)
{
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop->wake_read, .events = POLLIN}};
    bool drained = false;
    int rc = poll_or_stop(stop, graced, p, deadline, &drained);
    if (drained && ss__stop_requested(stop))
        ss__stop_wake(stop); /* the byte drained may have been the stop's */
    return rc;
}

/* Its socket, or the cut pipe (ss__waiter_cut): never drained, so the
 * byte ends every child's wait. */
static int wait_or_cut(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline)
{
    (void)graced;
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop->cut_read, .events = POLLIN}};
    for (;;) {
        int n = poll(p, 2, ss__remaining_ms(deadline)); /* EINTR: the rest only */
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0)
            return 0;
        if (n > 0)
            return p[1].revents != 0 ? -ECANCELED : 1;
    }
}

static bool never_known_empty(int fd)
{
    (void)fd;
    return false;
}

static void untracked(int fd)
{
    (void)fd;
}

const ss__waiter ss__waiter_thread = {
    .wait = thread_wait,
    .known_empty = never_known_empty,
    .emptied = untracked,
    .stop_cancels = false,
    .read_ahead = false,
    .may_block = true,
};

const ss__waiter ss__waiter_sync_open = {
    .wait = wait_or_stop,
    .known_empty = never_known_empty,
    .emptied = untracked,
    .stop_cancels = false, /* io.c's check before a read that would not wait */
    .read_ahead = false,
    .may_block = false,
};

const ss__waiter ss__waiter_sync = {
    .wait = wait_or_stop,
    .known_empty = never_known_empty,
    .emptied = untracked,
    .stop_cancels = true,
    .read_ahead = false,
    .may_block = false,
};

const ss__waiter ss__waiter_cut = {
    .wait = wait_or_cut,
    .known_empty = never_known_empty,
    .emptied = untracked,
    .stop_cancels = false,
    .read_ahead = false,
    .may_block = false,
};
