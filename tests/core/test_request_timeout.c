/* The request timeout, one behaviour over every dispatcher (sync,
 * threading, forking, pool) and every stream transport (tcp over IPv4 and
 * IPv6, unix, abstract): a table of cases, each run on each combination.
 *   - a client that says nothing: the handler's read returns -ETIMEDOUT
 *     after the timeout, the request is counted in request_timeouts, the
 *     client sees the connection end;
 *   - a client that never reads: a send of far more than the socket
 *     buffers hold returns -ETIMEDOUT after the timeout, once (not once
 *     per blocking call: issue 11 item 12);
 *   - a handler's own timeout (ss_request_set_timeout) applies where the
 *     server sets none; lifted again, the next read waits for data (the
 *     socket keeps no stale timeout);
 *   - one request at a time (max_connections 1): the stalled client's
 *     timeout frees the slot for the client waiting behind it.
 * Datagram transports have no request that can stall on a client (a reply
 * that cannot be sent is dropped at once: tests/transport/test_dgram_hoarder.c).
 * The timeout under a storm of signals: tests/io/test_waits.c; on the
 * pool's parked fibers beside a busy client: tests/dispatch/test_fiber_pool.c. */
#include "dispatch_support.h"
#include "table_support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define FLOOD_SIZE ((size_t)64 << 20) /* far more than both socket buffers hold */
static char flood[FLOOD_SIZE];        /* zero pages: costs nothing until sent */

/* ---- what the handler saw, in a shared page: it may run in a child ---- */

typedef struct probe {
    atomic_int calls;    /* handler runs */
    atomic_int first_rc; /* the first I/O call's result */
    atomic_bool first_done;
    atomic_int rc;        /* the last I/O call's result */
    atomic_llong took_ms; /* how long the last I/O call took */
} probe;

static probe *probe_new(void)
{
    return td_shared_new(sizeof(probe));
}

static void record(probe *p, int rc, long long start)
{
    atomic_store(&p->took_ms, ts_now_ms() - start);
    atomic_store(&p->rc, rc);
}

/* ---- handlers (never call cmocka: they may run in a forked child) ---- */

static int wait_for_bytes(ss_request *req, void *data)
{
    char buf[8];
    atomic_fetch_add(&((probe *)data)->calls, 1);
    long long start = ts_now_ms();
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    record(data, (int)n, start);
    return 0;
}

static int wait_with_own_timeout(ss_request *req, void *data)
{
    ss_request_set_timeout(req, 100);
    return wait_for_bytes(req, data);
}

static int send_flood(ss_request *req, void *data)
{
    long long start = ts_now_ms();
    int rc = ss_request_send_all(req, flood, sizeof flood);
    record(data, rc, start);
    return rc < 0 ? rc : 0;
}

/* A timeout that fired, then was lifted: the next read waits for data. */
static int time_out_then_wait(ss_request *req, void *data)
{
    probe *p = data;
    char buf[8];
    ss_request_set_timeout(req, 100);
    atomic_store(&p->first_rc, (int)ss_request_recv(req, buf, sizeof buf));
    atomic_store(&p->first_done, true);
    ss_request_set_timeout(req, -1);
    long long start = ts_now_ms();
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    record(p, (int)n, start);
    return n > 0 ? ss_request_send_all(req, buf, (size_t)n) : 0;
}

/* ---- running a case ---- */

typedef struct run {
    tc_combo *combo;
    probe *probe;
    ss_server *srv;
    ts_runner runner;
} run;

static void run_start(run *r, tc_combo *c, int (*handle)(ss_request *, void *), int timeout_ms)
{
    r->combo = c;
    r->probe = probe_new();
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    const char *url = tc_url(c);
    assert_int_equal(
        ss_server_create(&r->srv, url, ss_dispatch_by_name(c->dispatcher), &h, r->probe), 0);
    ss_server_on_handle_error(r->srv, td_quiet_error); /* timed-out handlers fail */
    if (timeout_ms > 0)
        ss_server_set_request_timeout(r->srv, timeout_ms);
}

static void run_serve(run *r)
{
    assert_int_equal(ss_server_bind(r->srv), 0);
    assert_int_equal(ss_server_activate(r->srv), 0);
    ts_start(&r->runner, r->srv, 50);
}

static void run_free(run *r)
{
    ss_server_free(r->srv);
    td_shared_free(r->probe, sizeof *r->probe);
    tc_cleanup(r->combo);
}

static void run_end(run *r)
{
    assert_int_equal(ts_stop(&r->runner), 0);
    run_free(r);
}

/* ---- the cases ---- */

/* A client connects and says nothing. */
static void idle_client_times_out(void **state)
{
    run r;
    run_start(&r, *state, wait_for_bytes, 150);
    run_serve(&r);
    int fd = ts_connect(r.srv);
    assert_true(td_wait_closed(r.srv, 1, 5000));
    assert_int_equal(atomic_load(&r.probe->rc), -ETIMEDOUT);
    long long took = atomic_load(&r.probe->took_ms);
    assert_true(took >= 150 && took < 2000);
    assert_true(ts_sees_eof(fd)); /* the stalled request was shut down */
    close(fd);
    assert_int_equal(td_stats(r.srv).request_timeouts, 1);
    run_end(&r);
}

/* The same, served by ss_server_handle_request (no loop running; a
 * forked child is reaped, and counted, by server_close). */
static void idle_client_times_out_in_handle_request(void **state)
{
    run r;
    run_start(&r, *state, wait_for_bytes, 150);
    assert_int_equal(ss_server_bind(r.srv), 0);
    assert_int_equal(ss_server_activate(r.srv), 0);
    int fd = ts_connect(r.srv);
    assert_int_equal(ss_server_handle_request(r.srv), 0);
    assert_true(ts_sees_eof(fd)); /* the stalled request was shut down */
    close(fd);
    ss_server_close(r.srv); /* waits for the handler, wherever it runs */
    assert_int_equal(atomic_load(&r.probe->rc), -ETIMEDOUT);
    long long took = atomic_load(&r.probe->took_ms);
    assert_true(took >= 150 && took < 2000);
    ss_stats st = td_stats(r.srv);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.request_timeouts, 1);
    run_free(&r);
}

/* The handler's own timeout, where the server sets none. */
static void own_timeout_overrides_none(void **state)
{
    run r;
    run_start(&r, *state, wait_with_own_timeout, 0);
    run_serve(&r);
    int fd = ts_connect(r.srv);
    assert_true(td_wait_closed(r.srv, 1, 5000));
    assert_int_equal(atomic_load(&r.probe->rc), -ETIMEDOUT);
    assert_true(atomic_load(&r.probe->took_ms) >= 100);
    close(fd);
    run_end(&r);
}

static bool first_read_done(void *arg)
{
    return atomic_load(&((probe *)arg)->first_done);
}

/* Timed out, then lifted: the socket may still carry the old timeout; it
 * must not leak through to the next read. */
static void lifted_timeout_waits_for_data(void **state)
{
    run r;
    run_start(&r, *state, time_out_then_wait, 0);
    run_serve(&r);
    int fd = ts_connect(r.srv);
    assert_true(ts_wait_until(first_read_done, r.probe, 5000));
    poll(NULL, 0, 300); /* the second read waits well past the old timeout */
    ts_send(fd, "late", 4);
    char got[5] = {0};
    assert_int_equal(ts_recv_exact(fd, got, 4), 4);
    assert_string_equal(got, "late");
    assert_int_equal(atomic_load(&r.probe->first_rc), -ETIMEDOUT);
    assert_int_equal(atomic_load(&r.probe->rc), 4); /* the late bytes, not a timeout */
    assert_true(atomic_load(&r.probe->took_ms) >= 250);
    close(fd);
    assert_true(td_wait_closed(r.srv, 1, 5000));
    run_end(&r);
}

#define STALL_TIMEOUT_MS 500

/* The handler sends 64 MiB to a client that never reads, under a request
 * timeout T: the request ends after T, not 3T. Measured from the client's
 * connect to the server's close count, which the forking parent makes
 * when it reaps the child. */
static void stalled_send_times_out_once(void **state)
{
    tc_combo *c = *state;
    run r;
    run_start(&r, c, send_flood, STALL_TIMEOUT_MS);
    run_serve(&r);
    long long start = ts_now_ms();
    int fd = ts_connect(r.srv); /* never reads */
    bool closed = td_wait_closed(r.srv, 1, 10 * STALL_TIMEOUT_MS);
    long long took = ts_now_ms() - start;
    close(fd);
    assert_true(closed);
    print_message("%s/%s: a stalled send ended after %lld ms (timeout %d ms)\n", c->dispatcher,
                  c->transport, took, STALL_TIMEOUT_MS);
    assert_int_equal(atomic_load(&r.probe->rc), -ETIMEDOUT);
    assert_true(atomic_load(&r.probe->took_ms) >= STALL_TIMEOUT_MS - 20);
    assert_int_equal(td_stats(r.srv).request_timeouts, 1);
    assert_true(took >= STALL_TIMEOUT_MS - 20);
    assert_true(took < 2 * STALL_TIMEOUT_MS);
    run_end(&r);
}

/* One request at a time: a client that goes silent is dropped after the
 * request timeout, and the one waiting behind it is served. */
static void stalled_client_frees_its_slot(void **state)
{
    run r;
    ss_handler hold = td_hold;
    run_start(&r, *state, hold.handle, 300);
    assert_int_equal(ss_server_set_max_connections(r.srv, 1), 0);
    assert_int_equal(ss_server_set_workers(r.srv, 4), 0);      /* pool: room beyond the limit */
    assert_int_equal(ss_server_set_max_children(r.srv, 4), 0); /* forking: likewise */
    run_serve(&r);
    int stalled = ts_connect(r.srv);
    td_round_trip(stalled, "then silence\n");
    long long start = ts_now_ms();
    int next = ts_connect(r.srv);
    ts_send(next, "my turn\n", 8);
    td_expect(next, "my turn\n"); /* only once the stalled one is gone */
    assert_true(ts_now_ms() - start >= 250);
    assert_true(ts_sees_eof(stalled));
    close(stalled);
    td_release(next); /* "bye": ends it before its own timeout */
    assert_true(td_wait_closed(r.srv, 2, 5000));
    ss_stats st = td_stats(r.srv);
    assert_int_equal(st.request_timeouts, 1);
    assert_int_equal(st.handler_errors, 1); /* the stalled one: -ETIMEDOUT */
    assert_int_equal(st.handled, 1);
    run_end(&r);
}

/* ---- every case on every combination ---- */
/* Where a behaviour joins the table: a function taking the combo as its
 * state, and a line here. */

static const tc_behaviour behaviours[] = {
    {"idle_client_times_out", idle_client_times_out, NULL},
    {"idle_client_times_out_in_handle_request", idle_client_times_out_in_handle_request, NULL},
    {"own_timeout_overrides_none", own_timeout_overrides_none, NULL},
    {"lifted_timeout_waits_for_data", lifted_timeout_waits_for_data, NULL},
    {"stalled_send_times_out_once", stalled_send_times_out_once, NULL},
    {"stalled_client_frees_its_slot", stalled_client_frees_its_slot, NULL},
};
/* With an argument (a dispatcher's name): only that dispatcher's cases. */
int main(int argc, char **argv)
{
    return tc_run_table("test_request_timeout", behaviours,
                        sizeof behaviours / sizeof behaviours[0], argc > 1 ? argv[1] : NULL);
}
