/* The server as an object the other core files share: its reference
 * count (the owner plus every live request), its wake-up pipe, and whether
 * a loop is serving it. No file here calls back into the loop (server.c)
 * or into a request's life (request.c), which both use this one. */
#include "core/core.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- reference counting: the owner plus every live request ---- */

static void destroy(ss_server *srv)
{
    ss__listeners_free(srv);     /* what close did not close (a failed create) */
    ss__close(&srv->reserve_fd); /* the accept policy's reserve, if close never ran */
    /* The wake pipe lives as long as the memory: a request still running
     * on another thread may write to it, and a closed number could already
     * belong to some unrelated file. */
    ss__close(&srv->stop.wake_read);
    ss__close(&srv->stop.wake_write);
    ss__limits_free(srv);
    ss__filters_free_configs(srv); /* the last request using them has ended */
    if (srv->supervisor != NULL)
        srv->supervisor->free(srv);
    pthread_cond_destroy(&srv->loop_exited);
    pthread_mutex_destroy(&srv->live_lock);
    pthread_mutex_destroy(&srv->accept_lock);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

void ss__server_ref(ss_server *srv)
{
    atomic_fetch_add(&srv->refs, 1);
}

void ss__server_unref(ss_server *srv)
{
    if (atomic_fetch_sub(&srv->refs, 1) == 1)
        destroy(srv);
}

/* ---- waking and stopping ---- */

/* The stop state is io/stop.c's (the sync waiter watches it too). */
void ss__server_wake(const ss_server *srv)
{
    ss__stop_wake(&srv->stop);
}

bool ss__server_stop_requested(const ss_server *srv)
{
    return ss__stop_requested(&srv->stop);
}

bool ss__server_serving(ss_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    bool serving = srv->serving;
    pthread_mutex_unlock(&srv->lock);
    return serving;
}

bool ss__server_on_serving_thread(const ss_server *srv)
{
    ss_server *s = (ss_server *)srv;
    pthread_mutex_lock(&s->lock);
    bool inside = s->serving && pthread_equal(s->serving_thread, pthread_self());
    pthread_mutex_unlock(&s->lock);
    return inside;
}

void ss__server_drain_wake(const ss_server *srv)
{
    ss__stop_drain(&srv->stop);
}

void ss__server_sleep(ss_server *srv, int timeout_ms)
{
    struct pollfd p = {.fd = srv->stop.wake_read, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) > 0)
        ss__server_drain_wake(srv);
}
