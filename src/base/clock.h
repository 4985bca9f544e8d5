/* base/clock.c: the monotonic clock in milliseconds, deadlines on it, and
 * a poll() bounded by one. Every layer that needs the time uses these, so
 * they sit at the bottom. */
#ifndef SS_BASE_CLOCK_H
#define SS_BASE_CLOCK_H

#include <stdint.h>

int64_t ss__now_ms(void);             /* CLOCK_MONOTONIC, in ms */
int64_t ss__deadline(int timeout_ms); /* -1 when timeout_ms < 0 */
/* Milliseconds left until deadline: -1 without one, 0 once passed. */
int ss__remaining_ms(int64_t deadline);
/* The shorter of two waits, where negative means "no limit". */
int ss__min_wait(int a, int b);
/* poll() one fd (-1: none, a sleep) for `events` until deadline (-1:
 * none); a signal costs a retry against the same deadline. Returns 1
 * ready, 0 timed out, or a negative errno. */
int ss__poll_until(int fd, short events, int64_t deadline);

#endif /* SS_BASE_CLOCK_H */
