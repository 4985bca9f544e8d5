/* The scheduler's readiness set where there is no epoll (or with
 * -DSS_FIBER_POLLER=poll): the fibers parked on an fd, passed to one
 * poll() per wait, level-triggered. A fiber leaves the set when it wakes
 * (f->fd = -1), so it always tries its socket before parking again. CMake
 * compiles this file or sched/poll_epoll.c, never both. */
#include "sched/sched_private.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

struct ss__poller {
    int wake_fd;
    ss__fiber **waiting; /* fibers parked on an fd; f->slot is the index */
    struct pollfd *pfds; /* [0] the wake fd, then waiting[i] at i + 1 */
    size_t nwaiting, capwaiting;
};

ss__poller *ss__poller_open(int wake_fd)
{
    ss__poller *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->wake_fd = wake_fd;
    return p;
}

void ss__poller_close(ss__poller *p)
{
    free(p->waiting);
    free(p->pfds);
    free(p);
}

static int make_room(ss__poller *p)
{
    if (p->nwaiting < p->capwaiting)
        return 0;
    size_t cap = p->capwaiting ? p->capwaiting * 2 : 16;
    ss__fiber **w = realloc(p->waiting, cap * sizeof *w);
    if (w != NULL)
        p->waiting = w;
    struct pollfd *fds = realloc(p->pfds, (cap + 1) * sizeof *fds);
    if (fds != NULL)
        p->pfds = fds;
    if (w == NULL || fds == NULL)
        return -ENOMEM;
    p->capwaiting = cap;
    return 0;
}

int ss__poller_watch(ss__poller *p, ss__fiber *f, int fd, short events)
{
    (void)events; /* f->want, read at each wait */
    int rc = make_room(p);
    if (rc < 0)
        return rc;
    f->fd = fd;
    f->slot = p->nwaiting;
    p->waiting[p->nwaiting++] = f;
    return 0;
}

void ss__poller_unwatch(ss__poller *p, ss__fiber *f)
{
    if (f->fd < 0)
        return;
    ss__fiber *last = p->waiting[--p->nwaiting];
    p->waiting[f->slot] = last;
    last->slot = f->slot;
    f->fd = -1;
}

void ss__poller_forget(ss__poller *p, ss__fiber *f)
{
    ss__poller_unwatch(p, f);
}

/* poll() has no exclusive wake-ups: every loop polling a shared socket
 * would wake for each arrival. The central loop accepts instead. */
int ss__poller_watch_source(ss__poller *p, unsigned id, int fd, bool exclusive)
{
    (void)p;
    (void)id;
    (void)fd;
    (void)exclusive;
    return -ENOTSUP;
}

void ss__poller_unwatch_source(ss__poller *p, int fd)
{
    (void)p;
    (void)fd;
}

bool ss__poller_wait(ss__poller *p, int timeout_ms, void (*ready)(ss__fiber *f, short revents),
                     uint64_t *sources)
{
    (void)sources; /* none is ever watched */
    size_t n = p->nwaiting;
    struct pollfd wake = {.fd = p->wake_fd, .events = POLLIN};
    struct pollfd *fds = n > 0 ? p->pfds : &wake;
    fds[0] = wake;
    for (size_t i = 0; i < n; i++)
        fds[i + 1] = (struct pollfd){.fd = p->waiting[i]->fd, .events = p->waiting[i]->want};
    if (poll(fds, (nfds_t)n + 1, timeout_ms) <= 0)
        return false;
    /* Backwards: waking a fiber moves the last entry into its slot. */
    for (size_t i = n; i > 0; i--)
        if (fds[i].revents != 0)
            ready(p->waiting[i - 1], fds[i].revents);
    return fds[0].revents != 0;
}
