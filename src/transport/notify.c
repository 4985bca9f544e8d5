#define _GNU_SOURCE /* struct ucred, SO_PASSCRED */
/* Readiness, by systemd's sd_notify(3) protocol, without libsystemd: a
 * process tells whoever started it that it is serving by sending the
 * datagram "READY=1" to the Unix datagram socket named by NOTIFY_SOCKET
 * (a path, or "@name" for a Linux abstract name). Both sides are here:
 * ss_notify sends (the successor of a hand-over, or a server under a
 * Type=notify systemd service), and the receiving socket a hand-over
 * listens on (core/handover.c). */
#include "transport/transport.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* NOTIFY_SOCKET's value as an address: "/path" or "@abstract". */
static int notify_address(const char *value, struct sockaddr_storage *addr, socklen_t *len)
{
    if (value[0] != '/' && value[0] != '@')
        return -EAFNOSUPPORT; /* systemd's "vsock:" form and the like */
    return ss__unix_address(value, addr, len);
}

static int send_state(const char *where, const char *state)
{
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = notify_address(where, &addr, &len);
    if (rc < 0)
        return rc;
    int fd = ss__socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0)
        return fd;
    ssize_t sent;
    do
        sent = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&addr, len);
    while (sent < 0 && errno == EINTR);
    rc = sent < 0 ? -errno : 1;
    ss__close(&fd);
    return rc;
}

/* After its READY=1 reached the server that started it, a successor's
 * later messages (STOPPING=1, its own hand-over's MAINPID=) belong to
 * the service manager that server was talking to, if any: the hand-over
 * passes that socket along in SS__NOTIFY_NEXT. */
static void after_ready(void)
{
    const char *next = getenv(SS__NOTIFY_NEXT);
    if (next != NULL && next[0] != '\0')
        setenv("NOTIFY_SOCKET", next, 1);
    else
        unsetenv("NOTIFY_SOCKET");
    unsetenv(SS__NOTIFY_NEXT);
}

SS_API int ss_notify(const char *state)
{
    if (state == NULL || state[0] == '\0')
        return -EINVAL;
    const char *where = getenv("NOTIFY_SOCKET");
    if (where == NULL || where[0] == '\0')
        return 0;
    int rc = send_state(where, state);
    if (rc > 0 && getenv(SS__NOTIFY_NEXT) != NULL && strstr(state, "READY=1") != NULL)
        after_ready();
    return rc;
}

int ss__notify_send(const char *where, const char *state)
{
    return send_state(where, state);
}

/* ---- the receiving side ---- */

#ifdef __linux__
/* An abstract name: nothing on disk to clean up; the sender's pid is
 * checked from its credentials (SO_PASSCRED), so no other process can
 * say READY for the successor. */
static int bind_notify(int fd, char *name, size_t size)
{
    static atomic_uint serial;
    char rnd[16];
    snprintf(rnd, sizeof rnd, "%08lx", (unsigned long)(ss__now_ms() * 2654435761u));
    snprintf(name, size, "@socketserver/handover/%ld/%u/%s", (long)getpid(),
             atomic_fetch_add(&serial, 1), rnd);
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = ss__unix_address(name, &addr, &len);
    if (rc == 0 && bind(fd, (struct sockaddr *)&addr, len) < 0)
        rc = -errno;
    int on = 1;
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) < 0)
        rc = -errno;
    return rc;
}
#else
/* A socket file in a private directory (mode 0700): only this user can
 * reach it. The name is unlinked by ss__notify_close. */
static int bind_notify(int fd, char *name, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    char dir[200];
    snprintf(dir, sizeof dir, "%s/ss-handover-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -errno;
    snprintf(name, size, "%s/notify", dir);
    struct sockaddr_storage addr;
    socklen_t len;
    int rc = ss__unix_address(name, &addr, &len);
    if (rc == 0 && bind(fd, (struct sockaddr *)&addr, len) < 0)
        rc = -errno;
    if (rc < 0)
        rmdir(dir);
    return rc;
}
#endif

int ss__notify_open(char *name, size_t size)
{
    int fd = ss__socket(AF_UNIX, SOCK_DGRAM, 0);
    if (fd < 0)
        return fd;
    int rc = ss__set_nonblocking(fd);
    if (rc == 0)
        rc = bind_notify(fd, name, size);
    if (rc < 0) {
        ss__close(&fd);
        return rc;
    }
    return fd;
}

void ss__notify_close(int *fd, const char *name)
{
    ss__close(fd);
    if (name[0] != '/')
        return;
    unlink(name);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", name);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        rmdir(dir);
    }
}

/* True if the message holds the line READY=1 (the state is
 * newline-separated assignments, sd_notify(3)). */
static bool says_ready(const char *text)
{
    for (const char *line = text; line != NULL; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, "READY=1", 7) == 0 && (line[7] == '\n' || line[7] == '\0'))
            return true;
    }
    return false;
}

/* The sender's pid from its credentials; 0 where the system gives none. */
static pid_t sender_pid(struct msghdr *msg)
{
#ifdef SCM_CREDENTIALS
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(c), sizeof cred);
            return cred.pid;
        }
    return -1; /* Linux always attaches them with SO_PASSCRED: not from a process */
#else
    (void)msg;
    return 0;
#endif
}

int ss__notify_take(int fd, pid_t from)
{
    for (;;) {
        char text[4096];
        union {
            struct cmsghdr align;
            char buf[256];
        } control;
        struct iovec iov = {.iov_base = text, .iov_len = sizeof text - 1};
        struct msghdr msg = {.msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof control.buf};
        ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno == EINTR ? 0 : -errno;
        text[n] = '\0';
        pid_t pid = sender_pid(&msg);
        if ((pid == 0 || pid == from) && says_ready(text))
            return 1;
    }
}
