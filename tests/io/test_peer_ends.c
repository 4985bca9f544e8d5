/* How a peer's end reaches the handler, over every dispatcher (sync,
 * threading, forking, pool) and every stream transport (tcp, tcp6, unix,
 * abstract):
 *   - a peer that resets (tcp: SO_LINGER 0) or closes before the reply:
 *     the handler's reads return 0 or -ECONNRESET, its sends -EPIPE or
 *     -ECONNRESET, and never a SIGPIPE (which would kill the test process,
 *     or a forked child before it reports);
 *   - a peer that half-closes (shutdown(SHUT_WR)) after its request still
 *     gets the whole reply, then the end of the stream.
 * An end of stream arriving together with the last bytes:
 * test_eof_with_data.c; lingering close of unread input: test_linger.c. */
#include "dispatch_support.h"
#include "table_support.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the handler saw, in memory a forked child shares. */
typedef struct outcome {
    atomic_int recv_rc, send_rc;
    atomic_bool done;
} outcome;

typedef struct run {
    tc_combo *combo;
    outcome *seen;
    ss_server *srv;
    ts_runner runner;
} run;

static void run_start(run *r, tc_combo *c, int (*handle)(ss_request *, void *))
{
    r->combo = c;
    r->seen = td_shared_new(sizeof *r->seen);
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    assert_int_equal(
        ss_server_new(&r->srv, tc_url(c), ss_dispatch_by_name(c->dispatcher), &h, r->seen), 0);
    ss_server_set_request_timeout(r->srv, 10000); /* a failed test still ends */
}

static void run_serve(run *r)
{
    ts_start(&r->runner, r->srv, 50);
}

static void run_end(run *r)
{
    assert_int_equal(ts_stop(&r->runner), 0);
    ss_server_free(r->srv);
    td_shared_free(r->seen, sizeof *r->seen);
    tc_cleanup(r->combo);
}

/* ---- a peer that is gone before the reply ---- */

static int talk_to_gone_peer(ss_request *req, void *data)
{
    outcome *o = data;
    char buf[64];
    atomic_store(&o->recv_rc, (int)ss_request_recv(req, buf, sizeof buf));
    static char payload[1 << 20]; /* more than the socket buffers take */
    atomic_store(&o->send_rc, ss_request_send_all(req, payload, sizeof payload));
    atomic_store(&o->done, true);
    return 0;
}

static void gone_peer_gives_errors_not_sigpipe(void **state)
{
    tc_combo *c = *state;
    struct sigaction current;
    sigaction(SIGPIPE, NULL, &current);
    assert_ptr_equal(current.sa_handler, SIG_DFL); /* a SIGPIPE would kill us */
    run r;
    run_start(&r, c, talk_to_gone_peer);
    int fd = ts_connect(r.srv); /* connected in the backlog, not yet accepted */
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    if (strncmp(c->transport, "tcp", 3) == 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd); /* tcp: RST; unix: the peer is gone */
    /* Only now serve: a child forked earlier would hold a copy of fd,
     * keeping the peer alive. */
    run_serve(&r);
    assert_true(td_wait_closed(r.srv, 1, 5000));
    assert_true(atomic_load(&r.seen->done)); /* the handler (or its child) lived on */
    int recv_rc = atomic_load(&r.seen->recv_rc);
    assert_true(recv_rc == -ECONNRESET || recv_rc == 0);
    int send_rc = atomic_load(&r.seen->send_rc);
    assert_true(send_rc == -EPIPE || send_rc == -ECONNRESET);
    assert_int_equal(td_stats(r.srv).handled, 1); /* forking: the child exited 0 */
    run_end(&r);
}

/* ---- a peer that half-closes ---- */

static int reply_after_eof(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    size_t got = 0;
    ssize_t n;
    while ((n = ss_request_recv(req, buf + got, sizeof buf - got)) > 0)
        got += (size_t)n;
    if (n < 0)
        return (int)n;
    int rc = ss_request_send_all(req, "bye:", 4);
    return rc < 0 ? rc : ss_request_send_all(req, buf, got);
}

static void half_closed_peer_still_gets_reply(void **state)
{
    run r;
    run_start(&r, *state, reply_after_eof);
    run_serve(&r);
    int fd = ts_connect(r.srv); /* a forked child's copy of it: shutdown acts on both */
    ts_send(fd, "hi", 2);
    shutdown(fd, SHUT_WR);
    char got[8] = {0};
    assert_int_equal(ts_recv_exact(fd, got, 6), 6);
    assert_string_equal(got, "bye:hi");
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_true(td_wait_closed(r.srv, 1, 5000));
    assert_int_equal(td_stats(r.srv).handled, 1);
    run_end(&r);
}

static const tc_behaviour behaviours[] = {
    {"gone_peer_gives_errors_not_sigpipe", gone_peer_gives_errors_not_sigpipe, NULL},
    {"half_closed_peer_still_gets_reply", half_closed_peer_still_gets_reply, NULL},
};

/* With an argument (a dispatcher's name): only that dispatcher's cases. */
int main(int argc, char **argv)
{
    return tc_run_table("test_peer_ends", behaviours, sizeof behaviours / sizeof behaviours[0],
                        argc > 1 ? argv[1] : NULL);
}
