/* The scheduler's readiness set on Linux: one epoll instance per
 * scheduler, each fiber's socket registered once, edge-triggered. CMake
 * compiles this file or sched/poll_poll.c, never both. */
#include "sched/sched_private.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

struct ss__poller {
    int ep;
    /* A source's event carries the address of its mark: how the wait
     * tells a source (its id: the mark's index) from a fiber. */
    char source_marks[SS__MAX_SOURCES];
};

ss__poller *ss__poller_open(int wake_fd)
{
    ss__poller *p = malloc(sizeof *p);
    if (p == NULL)
        return NULL;
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}; /* NULL: the wake fd */
    if (p->ep < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, wake_fd, &ev) < 0) {
        ss__close(&p->ep);
        free(p);
        return NULL;
    }
    return p;
}

void ss__poller_close(ss__poller *p)
{
    ss__close(&p->ep);
    free(p);
}

/* Edge-triggered, registered once per request for reading, and for
 * writing too from its first wait to send: a new socket is writable at
 * once, so watching that from the start cost a wake-up for nothing on
 * every connection whose first wait is for its request. The caller always
 * tries its recv/send first and parks only on EAGAIN, so the next edge is
 * the one it needs, and a park costs no system call. (Adding writability
 * later loses nothing: epoll_ctl reports a socket already writable.) */
static uint32_t epoll_events(bool out)
{
    return EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0);
}

static int watch_writes(ss__poller *p, ss__fiber *f)
{
    struct epoll_event ev = {.events = epoll_events(true), .data.ptr = f};
    if (epoll_ctl(p->ep, EPOLL_CTL_MOD, f->fd, &ev) < 0)
        return -errno;
    f->out_watched = true;
    return 0;
}

int ss__poller_watch(ss__poller *p, ss__fiber *f, int fd, short events)
{
    bool out = (events & POLLOUT) != 0;
    if (f->fd == fd)
        return out && !f->out_watched ? watch_writes(p, f) : 0;
    if (f->fd >= 0)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->fd = -1;
    struct epoll_event ev = {.events = epoll_events(out), .data.ptr = f};
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    f->fd = fd;
    f->out_watched = out;
    f->readable = true; /* a new socket: nothing known about it yet */
    f->ended = false;
    return 0;
}

void ss__poller_unwatch(ss__poller *p, ss__fiber *f)
{
    (void)p;
    (void)f; /* parking costs nothing with edge triggers */
}

void ss__poller_forget(ss__poller *p, ss__fiber *f)
{
    if (f->fd >= 0)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->fd = -1;
}

/* Level-triggered: a client left in the queue (the batch ended, the loop
 * filled up) is reported again on the next wait. Exclusive: an arrival
 * wakes one of the loops blocked on this socket, the first in the order
 * they watched it (so light load stays on the first worker), not all of
 * them; a kernel older than 4.5 ignores the flag and wakes all, which is
 * slower but still correct: the others find the queue empty (EAGAIN). */
int ss__poller_watch_source(ss__poller *p, unsigned id, int fd, bool exclusive)
{
#ifdef EPOLLEXCLUSIVE
    uint32_t events = EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0);
    struct epoll_event ev = {.events = events, .data.ptr = &p->source_marks[id]};
    return epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
#else
    (void)p;
    (void)id;
    (void)fd;
    (void)exclusive;
    return -ENOTSUP;
#endif
}

void ss__poller_unwatch_source(ss__poller *p, int fd)
{
    epoll_ctl(p->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* The id of the source whose mark ptr is, or -1 if ptr is a fiber. */
static int source_id(const ss__poller *p, const void *ptr)
{
    uintptr_t at = (uintptr_t)ptr, first = (uintptr_t)p->source_marks;
    return at >= first && at < first + SS__MAX_SOURCES ? (int)(at - first) : -1;
}

static short to_poll_events(uint32_t ev)
{
    short out = 0;
    if (ev & EPOLLIN)
        out |= POLLIN;
    if (ev & EPOLLOUT)
        out |= POLLOUT;
    if (ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP))
        out |= POLLIN | POLLOUT | POLLHUP; /* the I/O call will tell which */
    return out;
}

/* Events taken per wait: with 1000 busy connections a wait of 64 came
 * back full every time (one epoll_wait per 26 requests; ref_epoll's 256:
 * one per 260). 3 KiB of the worker thread's own stack. */
#define WAIT_EVENTS 256

bool ss__poller_wait(ss__poller *p, int timeout_ms, void (*ready)(ss__fiber *f, short revents),
                     uint64_t *sources)
{
    struct epoll_event evs[WAIT_EVENTS];
    int n = epoll_wait(p->ep, evs, WAIT_EVENTS, timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; i++) {
        int id = source_id(p, evs[i].data.ptr);
        if (evs[i].data.ptr == NULL)
            woken = true;
        else if (id >= 0)
            *sources |= UINT64_C(1) << id;
        else
            ready(evs[i].data.ptr, to_poll_events(evs[i].events));
    }
    return woken;
}
