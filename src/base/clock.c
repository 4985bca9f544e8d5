/* The monotonic clock, deadlines on it, and a poll() bounded by one
 * (base/clock.h). A deadline is a
 * point on CLOCK_MONOTONIC in milliseconds, -1 for "none": signals and
 * wall-clock changes never move it. */
#include "base/clock.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

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

int ss__poll_until(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, ss__remaining_ms(deadline)); /* EINTR: the rest only */
        if (n >= 0)
            return n > 0;
        if (errno != EINTR)
            return -errno;
    }
}
