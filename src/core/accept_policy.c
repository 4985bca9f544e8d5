/* What the loop does when taking a request off the socket fails.
 *
 * Per-connection failures (a client that reset before we accepted it,
 * ECONNABORTED, EPROTO, EPERM from a firewall, ...) are counted and
 * skipped. Resource exhaustion (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
 * different: the listener stays readable, so retrying at once would spin.
 * Instead the server sheds every pending client with the help of a spare
 * descriptor kept for this moment (each sees its connection closed rather
 * than hanging in the backlog), stops polling the listener, and retries
 * after a pause that doubles from 5 ms to 1 s; each retry that fails
 * sheds whoever queued meanwhile. One message marks
 * the start of such a burst and one its end. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 5
#define BACKOFF_MAX_MS   1000

static int open_spare(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

static void reopen_spare(ss_server *srv)
{
    int fd = open_spare();
    srv->spare_fd = fd < 0 ? -1 : fd;
}

int ss__accept_policy_init(ss_server *srv)
{
    srv->spare_fd = open_spare();
    return srv->spare_fd < 0 ? srv->spare_fd : 0;
}

void ss__accept_policy_close(ss_server *srv)
{
    ss__close(&srv->spare_fd);
}

static bool is_resource_error(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

static void count_error(ss_server *srv, int err)
{
    ss__counters *c = &srv->count;
    atomic_fetch_add(&c->accept_errors, 1);
    atomic_uint_fast64_t *by_errno = err == -EMFILE    ? &c->accept_emfile
                                     : err == -ENFILE  ? &c->accept_enfile
                                     : err == -ENOBUFS ? &c->accept_enobufs
                                     : err == -ENOMEM  ? &c->accept_enomem
                                                       : NULL;
    if (by_errno != NULL)
        atomic_fetch_add(by_errno, 1);
}

/* How many clients one step may shed: a listener's whole queue, which
 * holds at most backlog + 1 connections (Linux lets the count reach one
 * past the backlog), so clients that keep arriving cannot hold the loop;
 * one datagram, since a datagram left queued is not a client left
 * hanging: it is served once memory is back. */
static int shed_limit(const ss_server *srv)
{
    bool listener = srv->transport->activate == ss__activate_listen;
    if (!listener)
        return 1;
    return srv->backlog < INT_MAX ? srv->backlog + 1 : INT_MAX;
}

/* Gives the spare descriptor up so each client waiting in the queue can
 * be taken and closed at once (it sees its connection end instead of
 * hanging), until the queue is empty or taking one fails. The back-off
 * then only paces the retries of real accepts. */
static void shed_waiting(ss_server *srv)
{
    if (srv->spare_fd < 0)
        return;
    ss__close(&srv->spare_fd);
    for (int i = shed_limit(srv); i > 0; i--) {
        ss_request *req = NULL;
        if (srv->transport->get_request(srv, &req) != 0)
            break; /* EAGAIN: none left; or still out of resources */
        atomic_fetch_add(&srv->count.shed, 1);
        atomic_fetch_add(&srv->count.accepted, 1);
        ss__request_finish(req);
    }
    reopen_spare(srv); /* retried after the burst if it fails now */
}

void ss__accept_failed(ss_server *srv, int err)
{
    if (err == -EAGAIN || err == -EWOULDBLOCK || err == -EINTR)
        return; /* nothing was pending after all */
    count_error(srv, err);
    if (!is_resource_error(err))
        return;
    if (srv->accept_backoff_ms == 0) {
        srv->burst_errors = 0;
        ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
                "accept: %s; shedding new clients and retrying with back-off", ss_strerror(err));
    }
    srv->burst_errors++;
    shed_waiting(srv);
    int next = srv->accept_backoff_ms * 2;
    srv->accept_backoff_ms = next == 0               ? BACKOFF_FIRST_MS
                             : next > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                     : next;
    srv->accept_resume_at = ss__now_ms() + srv->accept_backoff_ms;
}

void ss__accept_succeeded(ss_server *srv)
{
    if (srv->accept_backoff_ms == 0)
        return;
    ss__log(srv->log, srv, srv->data, SS_LOG_INFO, "accept: resumed after %llu failed attempts",
            (unsigned long long)srv->burst_errors);
    srv->accept_backoff_ms = 0;
    srv->accept_resume_at = 0;
    if (srv->spare_fd < 0)
        reopen_spare(srv);
}

int ss__accept_pause_ms(const ss_server *srv)
{
    if (srv->accept_backoff_ms == 0)
        return 0;
    int64_t left = srv->accept_resume_at - ss__now_ms();
    return left > 0 ? (int)left : 0;
}
