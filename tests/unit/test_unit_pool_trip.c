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
 *   and takes new work in between;
 * - a connection waiting for its next message holds no read buffer: the
 *   read-ahead goes to the worker's one scratch buffer, and only bytes
 *   that did spill are copied into a buffer of the request's own (two
 *   connections' spills through the same scratch buffer stay apart).
 *
 * clock_gettime, pthread_mutex_lock, malloc and realloc are wrapped
 * (-Wl,--wrap, GNU ld,
 * Linux); a call counts when made on a thread that runs a scheduler (a
 * pool worker), so the serving loop's own reads do not. Only in a build
 * with fibers. */
#define _GNU_SOURCE
#include "internal.h"
#include "loop_support.h"
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
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);

/* The default read buffer (src/core/bufio.c): what a request's reader
 * would allocate on its first read-ahead. */
#define READ_BUFFER 8192

static atomic_long worker_clock_reads, worker_locks, worker_big_allocs;

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

void *__wrap_malloc(size_t size)
{
    if (ss__this_sched != NULL && size >= READ_BUFFER)
        atomic_fetch_add(&worker_big_allocs, 1);
    return __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
    if (ss__this_sched != NULL && size >= READ_BUFFER)
        atomic_fetch_add(&worker_big_allocs, 1);
    return __real_realloc(p, size);
}

enum { WARM_UP = 50, TRIPS = 400 };

/* Echoes in reads of as many bytes as the server's data says (64 if
 * none): with 4, whatever else a message brings spills. */
static int echo(ss_request *req, void *data)
{
    char buf[64];
    size_t chunk = data != NULL ? *(const size_t *)data : sizeof buf;
    ssize_t n;
    while ((n = ss_request_recv(req, buf, chunk)) > 0)
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            return -1;
    return 0;
}

static const ss_handler echo_handler = {.version = SS_HANDLER_VERSION, .handle = echo};

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
    ut_serve_in_thread(srv, &loop);
    int fd = ut_connect_to(srv);
    round_trips(fd, WARM_UP);
    atomic_store(&worker_clock_reads, 0);
    atomic_store(&worker_locks, 0);
    round_trips(fd, TRIPS);
    long reads = atomic_load(&worker_clock_reads), locks = atomic_load(&worker_locks);
    close(fd);
    ut_stop_serving(srv, loop);
    ss_server_free(srv);
    print_message("per round trip: %.2f clock reads, %.2f locks on the worker\n",
                  (double)reads / TRIPS, (double)locks / TRIPS);
    assert_true(reads <= 7 * TRIPS / 2); /* 3, and a stray poll turn */
    /* None on the hot path; a loaded machine (TSan, CI) may stall the
     * client past QUIET_US, and the loop's turn into quiet takes it once. */
    assert_true(locks <= 2);
}

/* ---- read-ahead without a buffer per connection ---- */

static ss_server *one_worker_pool(size_t *chunk, pthread_t *loop)
{
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &echo_handler, chunk), 0);
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ut_serve_in_thread(srv, loop);
    return srv;
}

static void stop_pool(ss_server *srv, pthread_t loop)
{
    ut_stop_serving(srv, loop);
    ss_server_free(srv);
}

static void expect_echo(int fd, const char *msg)
{
    size_t len = strlen(msg), got = 0;
    char back[64] = "";
    while (got < len) {
        ssize_t n = recv(fd, back + got, len - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(back, msg, len);
}

enum { IDLE_CONNS = 20 };

/* Twenty connections, each answered once and then waiting for more: the
 * worker allocates one buffer of the read size (its scratch), not one per
 * connection. */
static void test_waiting_connections_hold_no_read_buffer(void **state)
{
    (void)state;
    pthread_t loop;
    ss_server *srv = one_worker_pool(NULL, &loop);
    int fds[IDLE_CONNS];
    atomic_store(&worker_big_allocs, 0);
    for (int i = 0; i < IDLE_CONNS; i++) {
        fds[i] = ut_connect_to(srv);
        round_trips(fds[i], 2);
    }
    long allocs = atomic_load(&worker_big_allocs);
    for (int i = 0; i < IDLE_CONNS; i++)
        close(fds[i]);
    stop_pool(srv, loop);
    print_message("%d waiting connections: %ld read-size allocations on the worker\n", IDLE_CONNS,
                  allocs);
    assert_true(allocs <= 1);
}

/* Two connections' messages spill through the worker's one scratch buffer
 * in turn; each gets its own bytes back, in order. */
static void test_spilled_bytes_stay_with_their_connection(void **state)
{
    (void)state;
    pthread_t loop;
    static size_t chunk = 4;
    ss_server *srv = one_worker_pool(&chunk, &loop);
    int a = ut_connect_to(srv), b = ut_connect_to(srv);
    const char *ma = "AAAAaaaa1111!!!!", *mb = "BBBBbbbb2222????";
    for (int round = 0; round < 20; round++) {
        assert_int_equal(send(a, ma, strlen(ma), MSG_NOSIGNAL), (ssize_t)strlen(ma));
        assert_int_equal(send(b, mb, strlen(mb), MSG_NOSIGNAL), (ssize_t)strlen(mb));
        expect_echo(b, mb);
        expect_echo(a, ma);
    }
    close(a);
    close(b);
    stop_pool(srv, loop);
}

/* ---- how many connections one worker holds by default ---- */

enum { HELD = 1100 }; /* more than the old default of 1024 per worker */

/* One worker with the default fibers answers every one of HELD
 * connections held open at once (the old default left the 1025th waiting
 * in the backlog). Skipped if the open-file limit cannot cover both ends. */
static void test_one_worker_holds_over_1024_connections(void **state)
{
    (void)state;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * HELD + 64) {
        rl.rlim_cur = rl.rlim_max < 2 * HELD + 64 ? rl.rlim_max : 2 * HELD + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 2 * HELD + 64)
        skip();
    pthread_t loop;
    ss_server *srv = one_worker_pool(NULL, &loop);
    static int fds[HELD];
    for (int i = 0; i < HELD; i++) {
        fds[i] = ut_connect_to(srv);
        round_trips(fds[i], 1);
    }
    ss_stats st;
    ss_server_stats(srv, &st);
    for (int i = 0; i < HELD; i++)
        close(fds[i]);
    stop_pool(srv, loop);
    assert_int_equal(st.active, HELD);
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
        cmocka_unit_test(test_waiting_connections_hold_no_read_buffer),
        cmocka_unit_test(test_spilled_bytes_stay_with_their_connection),
        cmocka_unit_test(test_one_worker_holds_over_1024_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

UT_SKIPPED_MAIN("no fibers in this build (or not Linux)")

#endif
