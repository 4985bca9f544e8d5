/* The scheduler's readiness set on Linux: one epoll instance per
 * scheduler, each fiber's socket registered once, edge-triggered. CMake
 * compiles this file or sched/poll_poll.c, never both. */
#include "sched/sched_private.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>

struct ss__poller {
    int ep;
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

/* Registered once per request, edge-triggered for both directions: the
 * caller always tries its recv/send first and parks only on EAGAIN, so
 * the next edge is the one it needs, and a park costs no system call. */
int ss__poller_watch(ss__poller *p, ss__fiber *f, int fd, short events)
{
    (void)events;
    if (f->fd == fd)
        return 0;
    if (f->fd >= 0)
        epoll_ctl(p->ep, EPOLL_CTL_DEL, f->fd, NULL);
    f->fd = -1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = f};
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    f->fd = fd;
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

bool ss__poller_wait(ss__poller *p, int timeout_ms, void (*ready)(ss__fiber *f, short revents))
{
    struct epoll_event evs[64];
    int n = epoll_wait(p->ep, evs, 64, timeout_ms);
    bool woken = false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL)
            woken = true;
        else
            ready(evs[i].data.ptr, to_poll_events(evs[i].events));
    }
    return woken;
}
