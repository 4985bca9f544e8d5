/* A stop request and the loop's wake-up pipe (io/io.h), as data: the
 * server embeds an ss__stop, and the sync waiter's waits watch it without
 * knowing whose it is. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <errno.h>
#include <unistd.h>

void ss__stop_request(ss__stop *stop)
{
    long long none = 0;
    atomic_compare_exchange_strong(&stop->requested_at, &none, (long long)ss__now_ms());
    if (atomic_exchange(&stop->requested, true))
        atomic_store(&stop->now, true); /* a further stop: no more grace */
    ss__stop_wake(stop);
}

bool ss__stop_take(ss__stop *stop)
{
    bool was = atomic_exchange(&stop->requested, false);
    atomic_store(&stop->requested_at, 0);
    atomic_store(&stop->now, false);
    return was;
}

bool ss__stop_requested(const ss__stop *stop)
{
    return atomic_load(&((ss__stop *)stop)->requested);
}

/* When a pending stop ends a wait (monotonic ms; 0: at once), or -1
 * without one. A stop whose time is not visible yet counts from now. */
static int64_t stop_ends_at(const ss__stop *stop, bool graced)
{
    ss__stop *s = (ss__stop *)stop;
    if (!atomic_load(&s->requested))
        return -1;
    int grace = atomic_load(&s->grace_ms);
    if (!graced || grace <= 0 || atomic_load(&s->now))
        return 0;
    long long at = atomic_load(&s->requested_at);
    return (at != 0 ? at : ss__now_ms()) + grace;
}

/* The earlier of two deadlines, where -1 means none. */
static int64_t earlier(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    return b < 0 || a < b ? a : b;
}

int64_t ss__stop_deadline(const ss__stop *stop, bool graced, int64_t deadline)
{
    long long at = atomic_load(&((ss__stop *)stop)->cancel_at);
    return earlier(earlier(deadline, at != 0 ? at : -1), stop_ends_at(stop, graced));
}

bool ss__stop_cancelled(const ss__stop *stop, bool graced)
{
    int64_t at = ss__stop_deadline(stop, graced, -1);
    return at >= 0 && ss__now_ms() >= at;
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
