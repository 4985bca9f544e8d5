/* Shared by the reference servers: listening socket and command line. */
#include "ref_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char unix_path[108];

bool ref_is_unix(void)
{
    return unix_path[0] != '\0';
}

static void remove_unix_path(void)
{
    unlink(unix_path);
}

static int fail(const char *name, const char *url, const char *what)
{
    fprintf(stderr, "%s: cannot listen on %s: %s\n", name, url, what);
    exit(1);
}

static int listen_fd(int family, const struct sockaddr *sa, socklen_t len, bool nonblocking)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    int one = 1;
    if (fd < 0)
        return -1;
    if (family != AF_UNIX)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, sa, len) < 0 || listen(fd, SOMAXCONN) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_unix(const char *name, const char *url, bool nonblocking)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    const char *path = url + strlen("unix:");
    if (*path == '\0' || strlen(path) >= sizeof sun.sun_path)
        return fail(name, url, "bad path");
    strcpy(sun.sun_path, path);
    int fd = listen_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, nonblocking);
    if (fd < 0)
        return fail(name, url, strerror(errno));
    strcpy(unix_path, path);
    atexit(remove_unix_path);
    printf("listening on %s\n", url);
    return fd;
}

static void print_inet(int fd, const char *scheme)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    getsockname(fd, (struct sockaddr *)&ss, &len);
    bool v6 = ss.ss_family == AF_INET6;
    const void *a = v6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                       : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
    int port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    inet_ntop(ss.ss_family, a, host, sizeof host);
    printf(v6 ? "listening on %s://[%s]:%d\n" : "listening on %s://%s:%d\n", scheme, host, port);
}

static int listen_tcp(const char *name, const char *url, bool nonblocking)
{
    char host[256];
    const char *rest = url + strlen("tcp://"); /* or "tls://" */
    const char *colon = *rest == '[' ? strstr(rest, "]:") : strrchr(rest, ':');
    if (colon == NULL || (size_t)(colon - rest) >= sizeof host)
        return fail(name, url, "expected tcp://HOST:PORT");
    size_t skip = *rest == '[' ? 1 : 0;
    memcpy(host, rest + skip, (size_t)(colon - rest) - skip);
    host[colon - rest - skip] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    const char *port = colon + (skip ? 2 : 1);
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (rc != 0)
        return fail(name, url, gai_strerror(rc));
    int fd = listen_fd(ai->ai_family, ai->ai_addr, ai->ai_addrlen, nonblocking);
    int err = errno;
    freeaddrinfo(ai);
    if (fd < 0)
        return fail(name, url, strerror(err));
    print_inet(fd, strncmp(url, "tls://", 6) == 0 ? "tls" : "tcp");
    return fd;
}

static bool tls_allowed;

void ref_allow_tls(void)
{
    tls_allowed = true;
}

int ref_listen(int argc, char **argv, const char *name, bool nonblocking)
{
    const char *url = "tcp://127.0.0.1:9999";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--quiet") != 0) {
            fprintf(stderr, "usage: %s [--listen tcp://HOST:PORT|unix:/path] [--quiet]\n", name);
            exit(2);
        }
    }
    bool tcp = strncmp(url, "tcp://", 6) == 0 || (tls_allowed && strncmp(url, "tls://", 6) == 0);
    int fd = strncmp(url, "unix:", 5) == 0 ? listen_unix(name, url, nonblocking)
             : tcp                         ? listen_tcp(name, url, nonblocking)
                                           : fail(name, url, "unsupported URL");
    fflush(stdout);
    return fd;
}

void ref_on_stop(void (*fn)(int))
{
    struct sigaction sa = {.sa_handler = fn};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a reference server may: it is a program */
}

void ref_exit_now(void)
{
    if (unix_path[0] != '\0')
        unlink(unix_path);
    _exit(0);
}

void ref_uppercase(char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}
