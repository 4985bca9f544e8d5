/* A request accepted by a pool worker lives in the top page of its fiber's
 * stack, beside the fiber's record (src/sched/scheduler.c's
 * ss__sched_carve, src/core/request.c): an idle connection holds no heap
 * bytes for its request, and a request touches one page fewer.
 *
 * - the scheduler's carving: nothing off a scheduler's own loop (no
 *   scheduler on the thread, or on a fiber), zeroed memory just below a
 *   reserved fiber's record otherwise (a recycled stack's old bytes are
 *   gone), one carving at a time; spawn with it runs on that very fiber,
 *   whose stack starts below it; uncarve gives the fiber back to the
 *   stack cache, and uncarve of memory already spawned does nothing; a
 *   later fiber without a carving has the whole stack again;
 * - a pool server whose workers accept: each handler's request lies just
 *   above its own stack (an address in the handler's frame), within a
 *   page of it, on every connection, and echoes stay right with
 *   connections opened and closed (recycled stacks) in between.
 *
 * Only in a build with fibers. */
#define _GNU_SOURCE
#include "internal.h"
#include "loop_support.h"
#if SS_HAVE_FIBERS
#include "sched/sched_private.h"
#endif

#include <stdio.h>

#if SS_HAVE_FIBERS && defined(__linux__)

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the scheduler's carving ---- */

static ss__sched *new_sched(int wake[2])
{
    assert_int_equal(ss__pipe(wake), 0);
    ss__sched *s = ss__sched_new(64 * 1024, wake[0]);
    assert_non_null(s);
    return s;
}

static void free_sched(ss__sched *s, int wake[2])
{
    ss__sched_enter(NULL);
    ss__sched_free(s);
    ss__close(&wake[0]);
    ss__close(&wake[1]);
}

static void *carved_on_fiber;
static char *stack_seen;

/* On a fiber: carving is refused there; notes where its stack is. */
static void try_carve_on_fiber(void *a, void *b)
{
    (void)a;
    (void)b;
    char here = 0;
    stack_seen = &here;
    carved_on_fiber = ss__sched_carve(64);
}

static void test_carving_off_a_loop_gives_nothing(void **state)
{
    (void)state;
    assert_null(ss__sched_carve(64)); /* no scheduler on this thread */
    int wake[2];
    ss__sched *s = new_sched(wake);
    ss__sched_enter(s);
    carved_on_fiber = (void *)1;
    assert_int_equal(ss__sched_spawn(s, try_carve_on_fiber, NULL, NULL), 0);
    ss__sched_run(s);
    assert_null(carved_on_fiber);
    assert_null(ss__sched_carve(SS__CARVE_MAX + 1));
    assert_null(ss__sched_carve(0));
    free_sched(s, wake);
}

static void test_carving_is_zeroed_and_one_at_a_time(void **state)
{
    (void)state;
    int wake[2];
    ss__sched *s = new_sched(wake);
    ss__sched_enter(s);
    unsigned char *mem = ss__sched_carve(200);
    assert_non_null(mem);
    assert_null(ss__sched_carve(200)); /* the first is neither spawned nor given back */
    memset(mem, 0xa5, 200);
    ss__sched_uncarve(mem);
    assert_int_equal(s->nspare, 1); /* its fiber is back in the cache */
    unsigned char *again = ss__sched_carve(200);
    assert_ptr_equal(again, mem); /* the same stack, recycled ... */
    for (int i = 0; i < 200; i++)
        assert_int_equal(again[i], 0); /* ... and zeroed */
    assert_int_equal(s->nspare, 0);
    ss__sched_uncarve(again);
    free_sched(s, wake);
}

static void test_spawn_runs_on_the_carved_fiber(void **state)
{
    (void)state;
    int wake[2];
    ss__sched *s = new_sched(wake);
    ss__sched_enter(s);
    char *mem = ss__sched_carve(500);
    assert_non_null(mem);
    stack_seen = NULL;
    assert_int_equal(ss__sched_spawn(s, try_carve_on_fiber, NULL, mem), 0);
    assert_null(s->reserved);
    ss__sched_uncarve(mem); /* spawned: nothing to give back */
    assert_int_equal(s->nspare, 0);
    ss__sched_run(s);
    assert_non_null(stack_seen);
    assert_true(stack_seen < mem);        /* its stack starts below the carving */
    assert_true(mem - stack_seen < 1024); /* right below it */
    assert_int_equal(ss__sched_live(s), 0);
    assert_int_equal(s->nspare, 1); /* the stack, and the carving with it */
    /* a fiber without a carving reuses that stack up to its record (ASan:
     * the dead carving's poison is lifted first) */
    stack_seen = NULL;
    assert_int_equal(ss__sched_spawn(s, try_carve_on_fiber, NULL, NULL), 0);
    ss__sched_run(s);
    assert_true(stack_seen > mem);
    free_sched(s, wake);
}

/* ---- a pool server's requests ---- */

enum { ROUNDS = 6, CONNS = 8 };

static atomic_int far_requests, near_requests;

/* Echoes; notes whether the request lies just above this frame. */
static int echo_where(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    uintptr_t at = (uintptr_t)req, frame = (uintptr_t)buf;
    if (at > frame && at - frame < 4096)
        atomic_fetch_add(&near_requests, 1);
    else
        atomic_fetch_add(&far_requests, 1);
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            return -1;
    return 0;
}

static const ss_handler where_handler = {.version = SS_HANDLER_VERSION, .handle = echo_where};

static void echo_once(int fd, char c)
{
    char back = 0;
    assert_int_equal(send(fd, &c, 1, MSG_NOSIGNAL), 1);
    assert_int_equal(recv(fd, &back, 1, 0), 1);
    assert_int_equal(back, c);
}

static void test_accepted_requests_live_on_their_fiber(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &where_handler, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    pthread_t loop;
    ut_serve_in_thread(srv, &loop);
    for (int round = 0; round < ROUNDS; round++) {
        int fds[CONNS];
        for (int i = 0; i < CONNS; i++) {
            fds[i] = ut_connect_to(srv);
            echo_once(fds[i], (char)('a' + i));
        }
        for (int i = 0; i < CONNS; i++) {
            echo_once(fds[i], (char)('A' + i));
            close(fds[i]);
        }
    }
    ut_stop_serving(srv, loop);
    ss_server_free(srv);
    print_message("requests beside their stack: %d, elsewhere: %d\n", atomic_load(&near_requests),
                  atomic_load(&far_requests));
    assert_int_equal(atomic_load(&near_requests), ROUNDS * CONNS);
    assert_int_equal(atomic_load(&far_requests), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_carving_off_a_loop_gives_nothing),
        cmocka_unit_test(test_carving_is_zeroed_and_one_at_a_time),
        cmocka_unit_test(test_spawn_runs_on_the_carved_fiber),
        cmocka_unit_test(test_accepted_requests_live_on_their_fiber),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

UT_SKIPPED_MAIN("no fibers in this build (or not Linux)")

#endif
