/* Reference: the minimal hand-written epoll server, one thread, level
 * triggered. Reads what is there (up to 64 KiB), uppercases it, writes it
 * back; a reply the socket cannot take at once is kept and the connection
 * is not read again until it is flushed. The "physical limit" for one
 * serving thread. */
#define _GNU_SOURCE /* accept4 */
#include "ref_common.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)

typedef struct pending {
    char *data;
    size_t off, len;
} pending;

static volatile sig_atomic_t stopping;
static pending *pend; /* indexed by fd */
static size_t npend;
static char buf[BUF_SIZE];

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void drop(int fd)
{
    if ((size_t)fd < npend) {
        free(pend[fd].data);
        pend[fd] = (pending){0};
    }
    close(fd); /* also leaves the epoll set */
}

static void watch(int ep, int fd, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static bool keep(int ep, int fd, const char *p, size_t n)
{
    if ((size_t)fd >= npend) {
        size_t cap = (size_t)fd * 2 + 64;
        pending *v = realloc(pend, cap * sizeof *v);
        if (v == NULL)
            return false;
        memset(v + npend, 0, (cap - npend) * sizeof *v);
        pend = v;
        npend = cap;
    }
    pend[fd] = (pending){.data = malloc(n), .len = n};
    if (pend[fd].data == NULL)
        return false;
    memcpy(pend[fd].data, p, n);
    watch(ep, fd, EPOLLOUT, EPOLL_CTL_MOD);
    return true;
}

static void flush(int ep, int fd)
{
    pending *p = &pend[fd];
    ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) {
        drop(fd);
        return;
    }
    p->off += n > 0 ? (size_t)n : 0;
    if (p->off == p->len) {
        free(p->data);
        *p = (pending){0};
        watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
    }
}

static void serve(int ep, int fd)
{
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        drop(fd);
        return;
    }
    ref_uppercase(buf, (size_t)n);
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno == EAGAIN)
        w = 0;
    if (w < 0 || (w < n && !keep(ep, fd, buf + w, (size_t)(n - w))))
        drop(fd);
}

static void accept_all(int ep, int lfd)
{
    int fd;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        watch(ep, fd, EPOLLIN, EPOLL_CTL_ADD);
}

int main(int argc, char **argv)
{
    int lfd = ref_listen(argc, argv, "ref_epoll", true);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    ref_on_stop(on_stop);
    watch(ep, lfd, EPOLLIN, EPOLL_CTL_ADD);
    while (!stopping) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd)
                accept_all(ep, lfd);
            else if (evs[i].events & EPOLLOUT)
                flush(ep, fd);
            else
                serve(ep, fd);
        }
    }
    return 0;
}
