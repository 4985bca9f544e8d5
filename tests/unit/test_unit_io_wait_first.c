/* ss__io_recv's wait_first (src/io/io.c): a caller that knows the peer's
 * bytes cannot be there yet (the TLS filter, right after it sent a
 * handshake flight) has a read that would not block wait for readiness
 * before it tries the socket, instead of after a recv failing with
 * EAGAIN; a read that may block in the kernel (a thread without a
 * timeout) ignores it, its one blocking recv being the cheapest. The
 * waiter here counts its waits; the bytes are there from the start, so a
 * read that tries first never waits. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static int waits;

static int counting_wait(const ss__stop *stop, bool graced, int fd, short events, int64_t deadline)
{
    (void)stop;
    (void)graced;
    (void)fd;
    (void)deadline;
    assert_int_equal(events, POLLIN);
    waits++;
    return 1; /* ready: the bytes are there */
}

static bool never_empty(int fd)
{
    (void)fd;
    return false;
}

static void untracked(int fd)
{
    (void)fd;
}

/* A fiber's kind of waiter (never blocks in the kernel) and a thread's. */
static const ss__waiter parking = {counting_wait, never_empty, untracked, false, true, false};
static const ss__waiter blocking = {counting_wait, never_empty, untracked, false, false, true};

/* One recv of what the peer sent, through waiter; returns the waits. */
static int waits_for(const ss__waiter *waiter, int timeout_ms, bool wait_first)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], "hello", 5), 5);
    waits = 0;
    char buf[16];
    ssize_t n = ss__io_recv(sv[0], buf, sizeof buf, NULL, 0, timeout_ms, false, waiter, NULL, true,
                            wait_first);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);
    close(sv[0]);
    close(sv[1]);
    return waits;
}

static void waits_first_when_told(void **state)
{
    (void)state;
    assert_int_equal(waits_for(&parking, 5000, false), 0); /* tries first: the bytes are there */
    assert_int_equal(waits_for(&parking, 5000, true), 1);  /* told: waits, then reads */
    assert_int_equal(waits_for(&parking, -1, true), 1);
}

static void blocking_read_ignores_it(void **state)
{
    (void)state;
    assert_int_equal(waits_for(&blocking, -1, true), 0);   /* one blocking recv */
    assert_int_equal(waits_for(&blocking, 5000, true), 1); /* not kernel-timed: waits first */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(waits_first_when_told),
        cmocka_unit_test(blocking_read_ignores_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
