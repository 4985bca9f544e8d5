/* The pool's serving loop while its workers accept for themselves
 * (src/dispatch/pool.c, pool_max_wait_ms): it looks for a worker stuck in
 * a handler that blocks its thread every 10 ms while they serve, but an
 * idle server does not wake for that: once the workers have been quiet
 * for a second, the loop sleeps until a worker starts a fiber again. And
 * a worker that gets stuck right after such a quiet spell is still seen:
 * the next client goes to another worker, long before the stuck handler
 * ends. Linux (the loop thread's context switches from /proc); skipped
 * without fibers or where the workers cannot share a listener. */
#define _GNU_SOURCE
#include "internal.h"

#include <stdio.h>

#if SS_HAVE_FIBERS && defined(__linux__)

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

enum { BLOCK_MS = 1500 };

/* "b": blocks its worker's thread (not a park) for BLOCK_MS; anything
 * else is echoed. */
static int echo_or_block(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        if (buf[0] == 'b')
            usleep(BLOCK_MS * 1000);
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            return -1;
    }
    return 0;
}

static const ss_handler handler = {.version = SS_HANDLER_VERSION, .handle = echo_or_block};

static atomic_long loop_tid;

static void *serve(void *srv)
{
    atomic_store(&loop_tid, (long)syscall(SYS_gettid));
    ss_server_serve_forever(srv, 5000); /* its own wake-ups: one per 5 s */
    return NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* The loop thread's voluntary context switches so far: its wake-ups. */
static long loop_wakeups(void)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", atomic_load(&loop_tid));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long n = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
            break;
    fclose(f);
    return n;
}

static int connect_to(ss_server *srv)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(ss_server_fileno(srv), (struct sockaddr *)&a, &len), 0);
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, len), 0);
    return fd;
}

static void round_trip(int fd, char c)
{
    char back = 0;
    assert_int_equal(send(fd, &c, 1, MSG_NOSIGNAL), 1);
    assert_int_equal(recv(fd, &back, 1, 0), 1);
    assert_int_equal(back, c);
}

static ss_server *start(pthread_t *loop)
{
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &handler, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, 2), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(pthread_create(loop, NULL, serve, srv), 0);
    while (atomic_load(&loop_tid) == 0)
        pause_ms(1);
    return srv;
}

static void stop(ss_server *srv, pthread_t loop)
{
    ss_server_shutdown(srv);
    pthread_join(loop, NULL);
    ss_server_free(srv);
}

/* Served once, then idle: after the quiet second, the loop wakes a few
 * times at most in another second (it used to wake 100 times). */
static void idle_loop_sleeps(void **state)
{
    (void)state;
    pthread_t loop;
    ss_server *srv = start(&loop);
    int fd = connect_to(srv);
    round_trip(fd, 'x');
    pause_ms(1500);
    long before = loop_wakeups();
    pause_ms(1000);
    long woke = loop_wakeups() - before;
    print_message("an idle pool's loop woke %ld times in 1 s\n", woke);
    assert_true(woke <= 5);
    close(fd);
    stop(srv, loop);
}

/* After the quiet spell, a handler blocks the first worker's thread: the
 * loop, woken by that fiber's start, sees the worker stuck within its
 * 10 ms and has the second worker take new clients, so one arriving
 * meanwhile is answered long before the block ends. */
static void worker_stuck_after_a_quiet_spell_is_seen(void **state)
{
    (void)state;
    pthread_t loop;
    ss_server *srv = start(&loop);
    int warm = connect_to(srv);
    round_trip(warm, 'x');
    pause_ms(1500);
    int stuck = connect_to(srv);
    assert_int_equal(send(stuck, "b", 1, MSG_NOSIGNAL), 1);
    pause_ms(100); /* the first worker is inside the block now */
    long long start_ms = now_ms();
    int next = connect_to(srv);
    round_trip(next, 'y');
    long long took = now_ms() - start_ms;
    print_message("a client arriving while the worker is stuck was answered in %lld ms\n", took);
    assert_true(took < BLOCK_MS / 2);
    char back = 0;
    assert_int_equal(recv(stuck, &back, 1, 0), 1);
    close(warm);
    close(stuck);
    close(next);
    stop(srv, loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(idle_loop_sleeps),
        cmocka_unit_test(worker_stuck_after_a_quiet_spell_is_seen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    printf("needs fibers and Linux\n");
    return 77;
}

#endif
