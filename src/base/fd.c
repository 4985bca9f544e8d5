#define _GNU_SOURCE /* accept4, pipe2 */
/* Descriptor creation that is close-on-exec from the first instant where
 * the OS allows it (SOCK_CLOEXEC, accept4, pipe2), with a portable
 * fcntl() fallback elsewhere. */
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#if defined(SOCK_CLOEXEC) &&                                                                       \
    (defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__))
#define SS_ATOMIC_CLOEXEC 1
#endif

#ifdef SS_ATOMIC_CLOEXEC

int ss__socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int ss__accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    int conn = accept4(fd, sa, len, SOCK_CLOEXEC);
    return conn < 0 ? -errno : conn;
}

int ss__pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0 ? -errno : 0;
}

#else /* set the flags after creation: a fork in between may leak the fd */

static int add_flag(int fd, int get, int set, int flag)
{
    int flags = fcntl(fd, get);
    if (flags < 0 || fcntl(fd, set, flags | flag) < 0)
        return -errno;
    return 0;
}

/* Makes fd close-on-exec (and non-blocking if asked); closes it on failure. */
static int finish_fd(int fd, bool nonblock)
{
    int rc = add_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC);
    if (rc == 0 && nonblock)
        rc = add_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int ss__socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type, protocol);
    return fd < 0 ? -errno : finish_fd(fd, false);
}

int ss__accept(int fd, struct sockaddr *sa, socklen_t *len)
{
    int conn = accept(fd, sa, len);
    if (conn < 0)
        return -errno;
    /* BSD-derived accept() inherits O_NONBLOCK; handlers expect blocking */
    int flags = fcntl(conn, F_GETFL);
    if (flags >= 0)
        fcntl(conn, F_SETFL, flags & ~O_NONBLOCK);
    return finish_fd(conn, false);
}

int ss__pipe(int fds[2])
{
    if (pipe(fds) < 0)
        return -errno;
    int rc = finish_fd(fds[0], true);
    if (rc < 0) {
        close(fds[1]);
        return rc;
    }
    rc = finish_fd(fds[1], true);
    if (rc < 0)
        close(fds[0]);
    return rc < 0 ? rc : 0;
}

#endif

void ss__close(int *fd)
{
    if (*fd < 0)
        return;
    int saved = errno;
    close(*fd); /* POSIX leaves the fd state unspecified on EINTR; never retry */
    *fd = -1;
    errno = saved;
}

void ss__close_published(int *fd)
{
    int old = __atomic_exchange_n(fd, -1, __ATOMIC_ACQ_REL);
    ss__close(&old);
}

int ss__read_published(const int *fd)
{
    return __atomic_load_n(fd, __ATOMIC_ACQUIRE);
}
