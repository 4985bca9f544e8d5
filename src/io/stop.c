/* A stop request and the loop's wake-up pipe (io/io.h), as data: the
 * server embeds an ss__stop, and the sync waiter's waits watch it without
 * knowing whose it is. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <errno.h>
#include <unistd.h>

bool ss__stop_requested(const ss__stop *stop)
{
    return atomic_load(&((ss__stop *)stop)->requested);
}

bool ss__stop_cancelled(const ss__stop *stop)
{
    if (ss__stop_requested(stop))
        return true;
    long long at = atomic_load(&((ss__stop *)stop)->cancel_at);
    return at != 0 && ss__now_ms() >= at;
}

int64_t ss__stop_deadline(const ss__stop *stop, int64_t deadline)
{
    long long at = atomic_load(&((ss__stop *)stop)->cancel_at);
    if (at == 0)
        return deadline;
    return deadline < 0 || at < deadline ? at : deadline;
}

void ss__stop_wake(const ss__stop *stop)
{
    int saved = errno;
    /* A full pipe already guarantees a wake-up, so EAGAIN is fine. */
    ssize_t ignored = write(stop->wake_write, "", 1);
    (void)ignored;
    errno = saved;
}

void ss__stop_drain(const ss__stop *stop)
{
    char buf[64];
    while (read(stop->wake_read, buf, sizeof buf) > 0)
        ;
}
