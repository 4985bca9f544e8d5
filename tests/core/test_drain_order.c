/* ss_server_drain past its deadline: what is queued is cancelled before
 * what runs is interrupted, so a worker freed by the interruption never
 * starts a queued request after the deadline. */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define ROUNDS 100 /* the old order lost about one round in 13 */
/* The race is at the deadline, whatever its length: A runs and B is queued
 * (both asserted) before the drain starts, so a short deadline keeps the
 * test's power and makes a round cost ~50 ms instead of ~300. */
#define DEADLINE_MS 30

/* Counts its starts in *(atomic_int *)data, answers one line, then reads
 * until the client or the drain ends the stream. */
static int count_and_hold(ss_request *req, void *data)
{
    atomic_fetch_add((atomic_int *)data, 1);
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return (int)n;
    int rc = ss_request_send_all(req, line, (size_t)n);
    char buf[64];
    while (rc >= 0 && (n = ss_request_recv(req, buf, sizeof buf)) > 0)
        ;
    return rc < 0 ? rc : (int)n;
}
static const ss_handler counting_hold = {.version = SS_HANDLER_VERSION, .handle = count_and_hold};

/* One worker running one request at a time, a queue of two. */
static ss_server *one_slot_pool(atomic_int *starts)
{
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &counting_hold, starts), 0);
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    assert_int_equal(ss_server_set_pool_fibers(srv, 1), 0);
    assert_int_equal(ss_server_set_queue_size(srv, 2), 0);
    ss_server_on_handle_error(srv, td_quiet_error); /* the interrupted handler fails */
    /* A, answered and waiting, stands for a busy request: with idle close
     * on, the drain would end it at once and B would rightly be served. */
    ss_server_set_drain_close_idle(srv, false);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* A's handler runs and reads on; B waits in the queue; the drain's
 * deadline passes. B's handler must never start. */
static void one_round(void)
{
    atomic_int starts;
    atomic_init(&starts, 0);
    ss_server *srv = one_slot_pool(&starts);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int a = ts_connect(srv);
    td_round_trip(a, "a\n");
    int b = ts_connect(srv);
    ts_send(b, "b\n", 2);
    assert_true(td_wait_accepted(srv, 2, 5000));
    assert_true(td_wait_queued(srv, 1, 5000)); /* counted accepted before it is queued */
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(ss_server_drain(srv, DEADLINE_MS), -ETIMEDOUT);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.cancelled, 1);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.closed, 2);
    assert_true(ts_sees_eof(b)); /* shut down unanswered */
    assert_true(ts_sees_eof(a));
    ss_server_free(srv);
    assert_int_equal(atomic_load(&starts), 1); /* B's handler never ran */
    close(a);
    close(b);
}

static void test_queued_request_is_cancelled_not_started(void **state)
{
    (void)state;
    for (int i = 0; i < ROUNDS; i++)
        one_round();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_request_is_cancelled_not_started),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
