/* The waiter of a request on a pool fiber (ss__waiter_fiber, io/io.h):
 * its waits park the fiber on its worker's scheduler, which tracks each
 * socket's readiness, so a short read tells the next one to park at once
 * and reading ahead into the stream buffer pays. Compiled only with
 * fibers (CMake). */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

static int fiber_wait(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline)
{
    (void)stop; /* the pool's loop is another thread: a stop waits for the handler */
    (void)graced;
    return ss__fiber_wait(fd, events, deadline);
}

const ss__waiter ss__waiter_fiber = {
    .wait = fiber_wait,
    .known_empty = ss__fiber_drained_fd,
    .emptied = ss__fiber_drained,
    .stop_cancels = false,
    .read_ahead = true,
    .may_block = false,
};
