/* --drain bounds the examples' whole stop, in every mode: with sync, the
 * request the loop serves when SIGTERM comes gets the stop grace and the
 * clients queued behind it get the drain, and both end --drain seconds
 * after the signal; before, the drain began only when the grace was over
 * and took --drain seconds more (twice --drain in all, which a systemd
 * TimeoutStopSec just above --drain would end with SIGKILL). */
#include "example_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define DRAIN_S 3

/* A busy client (half a command sent) and one more queued behind it,
 * also busy; SIGTERM; how long until the server exited (ms). */
static long long stop_with_busy_clients(const char *mode)
{
    char drain[8];
    snprintf(drain, sizeof drain, "%d", DRAIN_S);
    const char *argv[] = {LINE_SERVER, "--listen", "tcp://127.0.0.1:0", "--mode", mode,
                          "--drain",   drain,      "--quiet",           NULL};
    child c;
    char url[256];
    start_server_argv(&c, argv, url, sizeof url);
    int busy = ts_connect_url(url);
    ts_send(busy, "ECHO par", 8);
    int queued = ts_connect_url(url);
    ts_send(queued, "ECHO par", 8);
    usleep(300 * 1000); /* both read by now, or queued */
    long long start = ts_now_ms();
    kill(c.pid, SIGTERM);
    assert_int_equal(reap(&c), 0);
    long long took = ts_now_ms() - start;
    close(busy);
    close(queued);
    return took;
}

/* Not before --drain (the busy request gets its time), and nowhere near
 * twice it: the interrupts after the deadline take at most 2 s more. */
static void stop_is_bounded_by_drain(void **state)
{
    long long took = stop_with_busy_clients(*state);
    if (took < DRAIN_S * 1000 - 500 || took > DRAIN_S * 1000 + 1800)
        fail_msg("--mode %s --drain %d: stopped in %lld ms", (const char *)*state, DRAIN_S, took);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        {"stop_is_bounded_by_drain/sync", stop_is_bounded_by_drain, NULL, end_leftovers,
         (void *)"sync"},
        {"stop_is_bounded_by_drain/threading", stop_is_bounded_by_drain, NULL, end_leftovers,
         (void *)"threading"},
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
