/* The shared no-op slots that keep every dispatcher table fully filled,
 * and what the concurrent dispatchers share: their options and the attributes of
 * handler threads. Their counters are the server's (ss_stats). */
#include "dispatch/dispatch.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

int ss__dispatch_start_none(ss_server *srv)
{
    (void)srv;
    return 0;
}

bool ss__dispatch_room_always(ss_server *srv)
{
    (void)srv;
    return true;
}

void ss__dispatch_reap_none(ss_server *srv)
{
    (void)srv;
}

int ss__dispatch_max_wait_none(ss_server *srv)
{
    (void)srv;
    return -1;
}

void ss__dispatch_interrupt_own_none(ss_server *srv, bool force)
{
    (void)srv;
    (void)force;
}

void ss__dispatch_close_idle_none(ss_server *srv)
{
    (void)srv;
}

int ss__dispatch_claim_client_none(ss_server *srv, const ss__client_key *key)
{
    (void)srv;
    (void)key;
    return -ENOTSUP; /* its requests run in this process: the core counts them */
}

void ss__dispatch_close_none(ss_server *srv)
{
    (void)srv;
}

bool ss__dispatch_accept_start_none(ss_server *srv)
{
    (void)srv;
    return false;
}

void ss__dispatch_accept_stop_none(ss_server *srv)
{
    (void)srv;
}

bool ss__dispatch_accepting_none(ss_server *srv)
{
    (void)srv;
    return false;
}

SS_API const char *ss_dispatch_name(const ss_dispatcher *dispatcher)
{
    /* NULL is what ss_server_create takes for the sync dispatcher (named
     * here, not asked of sync.c, which uses this file's shared slots) */
    return dispatcher != NULL ? dispatcher->name : "sync";
}

/* ---- options ---- */

SS_API void ss_server_set_daemon_threads(ss_server *srv, bool on)
{
    atomic_store(&srv->dopt.daemon_threads, on);
}

SS_API void ss_server_set_block_on_close(ss_server *srv, bool on)
{
    atomic_store(&srv->dopt.no_block_on_close, !on);
}

bool ss__block_on_close(const ss_server *srv)
{
    return !atomic_load(&((ss_server *)srv)->dopt.no_block_on_close);
}

/* Counts and sizes size the dispatcher's state when activate starts it. */
static int set_count(ss_server *srv, int *field, int value)
{
    if (value < 0)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    *field = value;
    return 0;
}

SS_API int ss_server_set_max_children(ss_server *srv, int max_children)
{
    return set_count(srv, &srv->dopt.max_children, max_children);
}

SS_API int ss_server_set_workers(ss_server *srv, int workers)
{
    return set_count(srv, &srv->dopt.workers, workers);
}

SS_API int ss_server_set_queue_size(ss_server *srv, int queue_size)
{
    return set_count(srv, &srv->dopt.queue_size, queue_size);
}

SS_API int ss_server_set_thread_stack_size(ss_server *srv, size_t bytes)
{
    if (bytes != 0 && bytes < (size_t)PTHREAD_STACK_MIN)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    srv->dopt.stack_size = bytes;
    return 0;
}

/* ---- shared by the threading and pool dispatchers ---- */

/* Some systems refuse a stack size that is not a whole number of pages. */
static size_t round_to_pages(size_t bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t p = page > 0 ? (size_t)page : 4096;
    return (bytes + p - 1) / p * p;
}

int ss__thread_attr_init(const ss_server *srv, pthread_attr_t *attr)
{
    size_t size = srv->dopt.stack_size ? srv->dopt.stack_size : SS_DEFAULT_THREAD_STACK_SIZE;
    int rc = pthread_attr_init(attr);
    if (rc != 0)
        return -rc;
    rc = pthread_attr_setstacksize(attr, round_to_pages(size));
    if (rc != 0) {
        pthread_attr_destroy(attr);
        return -rc;
    }
    return 0;
}
