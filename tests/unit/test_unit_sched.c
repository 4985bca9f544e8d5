/* The fiber scheduler (src/sched/scheduler.c) in process, on this thread:
 * fibers parked with a deadline (fd -1: a sleep) wake in deadline order,
 * fibers with equal deadlines in the order they parked (the deadline list
 * inserts after its equals, the run queue is FIFO), a deadline already
 * past returns at once without parking, a fiber woken by its fd before
 * its deadline is not woken again when that deadline passes, and a
 * fiber parked on a pipe resumes when the pipe is ready. Deadlines lie
 * LEAD_MS ahead (so every fiber has parked first), a few ms apart; every
 * poll has a deadline or a ready fd to return on.
 * Only in a build with fibers: elsewhere the test reports itself skipped
 * (77, SKIP_RETURN_CODE in unit/CMakeLists.txt). */
#include "internal.h"

#include <stdio.h>

#if SS_HAVE_FIBERS

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

enum { STACK = 64 * 1024, MAX_FIBERS = 1000 };

/* Ahead of now far enough that every fiber has parked before the first
 * deadline passes, even under a sanitizer on a loaded machine (1000 fibers
 * take ~20 ms to park under TSan). */
#define LEAD_MS 200

typedef struct sleeper {
    int id;
    int64_t deadline;
    int result;
} sleeper;

static struct {
    ss__sched *s;
    int wake[2];           /* the scheduler's wake pipe */
    int order[MAX_FIBERS]; /* ids, in the order the fibers woke */
    int woken;
} t;

static void sched_up(void)
{
    memset(&t, 0, sizeof t);
    assert_int_equal(ss__pipe(t.wake), 0);
    t.s = ss__sched_new(STACK, t.wake[0]);
    assert_non_null(t.s);
    ss__sched_enter(t.s);
}

static void sched_down(void)
{
    assert_int_equal(ss__sched_live(t.s), 0);
    ss__sched_enter(NULL);
    ss__sched_free(t.s);
    ss__close(&t.wake[0]);
    ss__close(&t.wake[1]);
}

/* Runs and polls until no fiber is live. Each poll returns: some fiber
 * has a deadline or a ready fd (the tests see to it). */
static void run_to_end(void)
{
    ss__sched_run(t.s);
    while (ss__sched_live(t.s) > 0) {
        ss__sched_poll(t.s);
        ss__sched_run(t.s);
    }
}

static void sleep_until(void *a, void *b)
{
    (void)b;
    sleeper *z = a;
    z->result = ss__fiber_wait(-1, 0, z->deadline);
    t.order[t.woken++] = z->id;
}

static void spawn_sleeper(sleeper *z)
{
    assert_int_equal(ss__sched_spawn(t.s, sleep_until, z, NULL), 0);
}

/* Deadlines given out of order, with ties: woken by deadline, ties in the
 * order they parked. */
static void test_deadline_order_and_ties(void **state)
{
    (void)state;
    sched_up();
    const int offset[] = {9, 3, 9, 3, 6, 9, 0, 6};
    const int want[] = {6, 1, 3, 4, 7, 0, 2, 5};
    sleeper z[8];
    int64_t base = ss__now_ms() + LEAD_MS;
    for (int i = 0; i < 8; i++) {
        z[i] = (sleeper){.id = i, .deadline = base + offset[i]};
        spawn_sleeper(&z[i]);
    }
    ss__sched_run(t.s);
    assert_int_equal(t.woken, 0); /* all parked */
    run_to_end();
    assert_int_equal(t.woken, 8);
    assert_memory_equal(t.order, want, sizeof want);
    for (int i = 0; i < 8; i++)
        assert_int_equal(z[i].result, 0); /* timed out */
    assert_true(ss__now_ms() >= base + 9);
    sched_down();
}

static int by_deadline_then_id(const void *pa, const void *pb)
{
    const sleeper *a = pa, *b = pb;
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline ? -1 : 1;
    return a->id - b->id;
}

/* 1000 fibers, random deadlines over 40 ms (so many ties): they come back
 * in the stable sort of (deadline, the order they parked). */
static void test_many_random_deadlines(void **state)
{
    (void)state;
    sched_up();
    static sleeper z[MAX_FIBERS], sorted[MAX_FIBERS];
    srand(13);
    for (int i = 0; i < MAX_FIBERS; i++) {
        z[i] = (sleeper){.id = i};
        spawn_sleeper(&z[i]);
    }
    /* deadlines read as each fiber first runs: counted from after the spawns */
    int64_t base = ss__now_ms() + LEAD_MS;
    for (int i = 0; i < MAX_FIBERS; i++)
        z[i].deadline = base + rand() % 40;
    ss__sched_run(t.s);
    assert_int_equal(t.woken, 0);
    run_to_end();
    assert_int_equal(t.woken, MAX_FIBERS);
    memcpy(sorted, z, sizeof z);
    qsort(sorted, MAX_FIBERS, sizeof sorted[0], by_deadline_then_id);
    for (int i = 0; i < MAX_FIBERS; i++)
        if (t.order[i] != sorted[i].id)
            fail_msg("wake #%d: fiber %d (deadline +%lld), want %d (+%lld)", i, t.order[i],
                     (long long)(z[t.order[i]].deadline - base), sorted[i].id,
                     (long long)(sorted[i].deadline - base));
    sched_down();
}

/* One poll wakes every fiber whose deadline has passed, not one per poll:
 * the poll after all have passed leaves all of them runnable, in order. */
static void test_one_poll_wakes_every_expired(void **state)
{
    (void)state;
    sched_up();
    sleeper z[5];
    int64_t base = ss__now_ms() + LEAD_MS;
    for (int i = 0; i < 5; i++) {
        z[i] = (sleeper){.id = i, .deadline = base + 4 - i};
        spawn_sleeper(&z[i]);
    }
    ss__sched_run(t.s);
    assert_int_equal(t.woken, 0);
    while (ss__now_ms() <= base + 4) /* every deadline passes, unobserved */
        poll(NULL, 0, 5);
    ss__sched_poll(t.s);
    ss__sched_run(t.s);
    assert_int_equal(t.woken, 5);
    const int want[] = {4, 3, 2, 1, 0};
    assert_memory_equal(t.order, want, sizeof want);
    sched_down();
}

/* A deadline already past: the wait returns 0 at once, on the same run,
 * before the next fiber runs. */
static void test_past_deadline_returns_at_once(void **state)
{
    (void)state;
    sched_up();
    sleeper past = {.id = 0, .deadline = ss__now_ms() - 1};
    sleeper now = {.id = 1, .deadline = ss__now_ms()};
    sleeper later = {.id = 2, .deadline = ss__now_ms() + LEAD_MS};
    spawn_sleeper(&later);
    spawn_sleeper(&past);
    spawn_sleeper(&now);
    ss__sched_run(t.s); /* one pass: no poll in between */
    assert_int_equal(t.woken, 2);
    assert_int_equal(t.order[0], 0);
    assert_int_equal(t.order[1], 1);
    assert_int_equal(past.result, 0);
    run_to_end();
    assert_int_equal(t.order[2], 2);
    sched_down();
}

/* ---- readiness ---- */

typedef struct pipe_waiter {
    int fd;
    int64_t deadline;
    int results[2];
    int waits;        /* waits that returned */
    ssize_t reads[2]; /* checked by the test: no cmocka assert on a fiber's stack */
} pipe_waiter;

/* Waits for the pipe with a deadline; reads what came; then waits again
 * with no deadline. A second wake by the first deadline would show as a
 * 0 (timed out) in results[1]. */
static void wait_pipe_twice(void *a, void *b)
{
    (void)b;
    pipe_waiter *w = a;
    char byte;
    int rc = ss__fiber_wait(w->fd, POLLIN, w->deadline);
    w->results[w->waits++] = rc;
    w->reads[0] = read(w->fd, &byte, 1);
    ss__fiber_drained(w->fd);
    rc = ss__fiber_wait(w->fd, POLLIN, -1);
    w->results[w->waits++] = rc;
    w->reads[1] = read(w->fd, &byte, 1);
    ss__fiber_forget_fd(); /* before the test closes it */
}

/* Woken by its pipe well before its deadline, parked again with none: the
 * passing of the first deadline must not wake it (it left the deadline
 * list when the pipe woke it); only the pipe's next byte does. */
static void test_fd_wake_cancels_the_deadline(void **state)
{
    (void)state;
    sched_up();
    int p[2];
    assert_int_equal(ss__pipe(p), 0);
    pipe_waiter w = {.fd = p[0], .deadline = ss__now_ms() + LEAD_MS};
    sleeper clock = {.id = 7, .deadline = w.deadline + 20}; /* polls past w's deadline */
    assert_int_equal(ss__sched_spawn(t.s, wait_pipe_twice, &w, NULL), 0);
    spawn_sleeper(&clock);
    ss__sched_run(t.s);
    assert_int_equal(w.waits, 0); /* parked */
    assert_int_equal(write(p[1], "x", 1), 1);
    while (w.waits < 1) { /* the pipe is ready: the poll returns at once */
        ss__sched_poll(t.s);
        ss__sched_run(t.s);
    }
    assert_int_equal(w.results[0], 1);
    while (t.woken == 0) { /* past w's first deadline, with w parked */
        ss__sched_poll(t.s);
        ss__sched_run(t.s);
    }
    assert_true(ss__now_ms() > w.deadline);
    assert_int_equal(w.waits, 1); /* not woken since */
    assert_int_equal(ss__sched_live(t.s), 1);
    assert_int_equal(write(p[1], "y", 1), 1);
    run_to_end();
    assert_int_equal(w.waits, 2);
    assert_int_equal(w.results[1], 1);
    assert_int_equal(w.reads[0], 1);
    assert_int_equal(w.reads[1], 1);
    ss__close(&p[0]);
    ss__close(&p[1]);
    sched_down();
}

typedef struct one_wait {
    int fd;
    short events;
    int64_t deadline;
    int result;
    bool returned;
} one_wait;

static void wait_once(void *a, void *b)
{
    (void)b;
    one_wait *w = a;
    w->result = ss__fiber_wait(w->fd, w->events, w->deadline);
    w->returned = true;
    ss__fiber_forget_fd();
}

/* Park on a pipe: an empty read end keeps the fiber parked (its deadline
 * ends the wait: 0); a byte resumes it (1); a writable write end and a
 * read end whose writer closed resume it at once. */
static void test_pipe_park_and_resume(void **state)
{
    (void)state;
    sched_up();
    int p[2], q[2];
    assert_int_equal(ss__pipe(p), 0);
    assert_int_equal(ss__pipe(q), 0);
    one_wait empty = {.fd = q[0], .events = POLLIN, .deadline = ss__now_ms() + LEAD_MS};
    one_wait reader = {.fd = p[0], .events = POLLIN, .deadline = -1};
    one_wait writer = {.fd = p[1], .events = POLLOUT, .deadline = ss__now_ms() + 60000};
    assert_int_equal(ss__sched_spawn(t.s, wait_once, &empty, NULL), 0);
    assert_int_equal(ss__sched_spawn(t.s, wait_once, &reader, NULL), 0);
    assert_int_equal(ss__sched_spawn(t.s, wait_once, &writer, NULL), 0);
    ss__sched_run(t.s);
    assert_false(empty.returned || reader.returned || writer.returned); /* all parked */
    while (!writer.returned) {                                          /* writable already */
        ss__sched_poll(t.s);
        ss__sched_run(t.s);
    }
    assert_int_equal(writer.result, 1);
    while (!empty.returned) {
        ss__sched_poll(t.s);
        ss__sched_run(t.s);
    }
    assert_int_equal(empty.result, 0);
    assert_false(reader.returned);
    assert_int_equal(write(p[1], "z", 1), 1);
    run_to_end();
    assert_int_equal(reader.result, 1);
    /* a hang-up counts as ready */
    one_wait hup = {.fd = q[0], .events = POLLIN, .deadline = -1};
    assert_int_equal(ss__sched_spawn(t.s, wait_once, &hup, NULL), 0);
    ss__sched_run(t.s);
    assert_false(hup.returned);
    ss__close(&q[1]);
    run_to_end();
    assert_int_equal(hup.result, 1);
    ss__close(&p[0]);
    ss__close(&p[1]);
    ss__close(&q[0]);
    sched_down();
}

/* The wake fd interrupts a poll with nothing else to wake for. */
static void test_wake_fd_interrupts_poll(void **state)
{
    (void)state;
    sched_up();
    assert_int_equal(write(t.wake[1], "w", 1), 1);
    assert_true(ss__sched_poll(t.s));
    sched_down();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_order_and_ties),
        cmocka_unit_test(test_many_random_deadlines),
        cmocka_unit_test(test_one_poll_wakes_every_expired),
        cmocka_unit_test(test_past_deadline_returns_at_once),
        cmocka_unit_test(test_fd_wake_cancels_the_deadline),
        cmocka_unit_test(test_pipe_park_and_resume),
        cmocka_unit_test(test_wake_fd_interrupts_poll),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* no fibers in this build */

int main(void)
{
    puts("test_unit_sched: built without fibers (SS_HAVE_FIBERS 0): skipped");
    return 77;
}

#endif
