/* The pool's per-request trip round a worker's loop (src/dispatch/pool.c,
 * src/sched/, src/io/io.c), counted rather than timed:
 *
 * - a request that waits for its next message reads the clock at most
 *   three times per message on its worker (before the worker's wait,
 *   after it, and once for its own deadline when it parks; allowed 3.5 on
 *   average for a stray turn), where every layer used to read it for
 *   itself (about nine);
 * - a worker with nothing to take off the queue takes no lock: a
 *   persistent connection's round trips lock nothing on the worker;
 * - the scheduler's starvation guard: one run makes at most SS__RUN_BATCH
 *   switches, however many fibers are runnable, so the loop polls for I/O
 *   and takes new work in between.
 *
 * clock_gettime and pthread_mutex_lock are wrapped (-Wl,--wrap, GNU ld,
 * Linux); a call counts when made on a thread that runs a scheduler (a
 * pool worker), so the serving loop's own reads do not. Only in a build
 * with fibers. */
#define _GNU_SOURCE
#include "internal.h"
#if SS_HAVE_FIBERS
#include "sched/sched_private.h" /* ss__this_sched: who is a worker */
#endif

#include <stdio.h>

#if SS_HAVE_FIBERS && defined(__linux__)

#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);

static atomic_long worker_clock_reads, worker_locks;

int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (ss__this_sched != NULL)
        atomic_fetch_add(&worker_clock_reads, 1);
    return __real_clock_gettime(id, ts);
}

int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
    if (ss__this_sched != NULL)
        atomic_fetch_add(&worker_locks, 1);
    return __real_pthread_mutex_lock(m);
}

enum { WARM_UP = 50, TRIPS = 400 };

static int echo(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            return -1;
    return 0;
}

static const ss_handler echo_handler = {.version = SS_HANDLER_VERSION, .handle = echo};

static void *serve(void *srv)
{
    ss_server_serve_forever(srv, 50);
    return NULL;
}

static int connect_to(ss_server *srv)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(ss_server_fileno(srv), (struct sockaddr *)&a, &len), 0);
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, len), 0);
    return fd;
}

static void round_trips(int fd, int n)
{
    for (int i = 0; i < n; i++) {
        char c = (char)('a' + i % 26), back = 0;
        assert_int_equal(send(fd, &c, 1, MSG_NOSIGNAL), 1);
        assert_int_equal(recv(fd, &back, 1, 0), 1);
        assert_int_equal(back, c);
    }
}

/* One persistent connection to a one-worker pool with the request
 * timeout on (every wait has a deadline): counts what the worker does per
 * round trip once the connection is established. */
static void test_round_trip_reads_few_clocks_and_takes_no_lock(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &echo_handler, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    ss_server_set_request_timeout(srv, 30000);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    pthread_t loop;
    assert_int_equal(pthread_create(&loop, NULL, serve, srv), 0);
    int fd = connect_to(srv);
    round_trips(fd, WARM_UP);
    atomic_store(&worker_clock_reads, 0);
    atomic_store(&worker_locks, 0);
    round_trips(fd, TRIPS);
    long reads = atomic_load(&worker_clock_reads), locks = atomic_load(&worker_locks);
    close(fd);
    ss_server_shutdown(srv);
    pthread_join(loop, NULL);
    ss_server_free(srv);
    print_message("per round trip: %.2f clock reads, %.2f locks on the worker\n",
                  (double)reads / TRIPS, (double)locks / TRIPS);
    assert_true(reads <= 7 * TRIPS / 2); /* 3, and a stray poll turn */
    assert_int_equal(locks, 0);
}

/* ---- the starvation guard ---- */

static int ran;

static void count_and_end(void *a, void *b)
{
    (void)a;
    (void)b;
    ran++;
}

static void test_one_run_makes_at_most_a_batch_of_switches(void **state)
{
    (void)state;
    int wake[2];
    assert_int_equal(ss__pipe(wake), 0);
    ss__sched *s = ss__sched_new(64 * 1024, wake[0]);
    assert_non_null(s);
    ss__sched_enter(s);
    enum { FIBERS = 3 * SS__RUN_BATCH + 5 };
    ran = 0;
    for (int i = 0; i < FIBERS; i++)
        assert_int_equal(ss__sched_spawn(s, count_and_end, NULL, NULL), 0);
    ss__sched_run(s);
    assert_int_equal(ran, SS__RUN_BATCH);
    int runs = 1;
    while (ss__sched_live(s) > 0) {
        ss__sched_poll(s); /* fibers are runnable: returns at once */
        ss__sched_run(s);
        runs++;
    }
    assert_int_equal(ran, FIBERS);
    assert_int_equal(runs, 4);
    ss__sched_enter(NULL);
    ss__sched_free(s);
    ss__close(&wake[0]);
    ss__close(&wake[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_reads_few_clocks_and_takes_no_lock),
        cmocka_unit_test(test_one_run_makes_at_most_a_batch_of_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    printf("no fibers in this build (or not Linux): skipped\n");
    return 77;
}

#endif
