#define _GNU_SOURCE
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

int ts_echo_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[1024];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

const ss_handler ts_echo = {.version = SS_HANDLER_VERSION, .handle = ts_echo_handle};

const char *const ts_dispatchers[TS_DISPATCHERS] = {"sync", "threading", "forking", "pool"};

static void *serve_thread(void *arg)
{
    ts_runner *r = arg;
    r->result = ss_server_serve_forever(r->server, r->poll_interval_ms);
    return NULL;
}

void ts_start(ts_runner *r, ss_server *srv, int poll_interval_ms)
{
    r->server = srv;
    r->poll_interval_ms = poll_interval_ms;
    r->result = -1;
    assert_int_equal(pthread_create(&r->thread, NULL, serve_thread, r), 0);
}

int ts_stop(ts_runner *r)
{
    assert_int_equal(ss_server_shutdown(r->server), 0);
    assert_int_equal(pthread_join(r->thread, NULL), 0);
    return r->result;
}

static void set_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int ts_connect_url(const char *url)
{
    int fd = ss_connect(url);
    if (fd < 0)
        fail_msg("connect %s: %s", url, ss_strerror(fd));
    set_timeouts(fd);
    return fd;
}

int ts_connect(const ss_server *srv)
{
    char url[256];
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    return ts_connect_url(url);
}

void ts_send(int fd, const void *buf, size_t size)
{
    const char *p = buf;
    while (size > 0) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail_msg("send: %s", strerror(errno));
        p += n;
        size -= (size_t)n;
    }
}

size_t ts_recv_exact(int fd, void *buf, size_t size)
{
    size_t got = 0;
    while (got < size) {
        ssize_t n = recv(fd, (char *)buf + got, size - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

bool ts_sees_eof(int fd)
{
    char c;
    for (;;) {
        ssize_t n = recv(fd, &c, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (n < 0 && errno == ECONNRESET);
    }
}

int ts_count_answers(const int *fds, int n, const char *want)
{
    struct pollfd *p = calloc((size_t)n, sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    char got[64];
    size_t len = strlen(want);
    assert_true(len < sizeof got);
    int right = 0, open = n;
    for (long long deadline = ts_now_ms() + 60000; open > 0 && ts_now_ms() < deadline;) {
        if (poll(p, (nfds_t)n, 1000) <= 0)
            continue;
        for (int i = 0; i < n; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            right += ts_recv_exact(p[i].fd, got, len) == len && memcmp(got, want, len) == 0;
            p[i].fd = -1;
            open--;
        }
    }
    free(p);
    return right;
}

bool ts_raise_fd_limit(rlim_t want)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return false;
    if (lim.rlim_cur >= want)
        return true;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < want)
        return false;
    lim.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

int ts_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) { /* no procfs: probe every descriptor number */
        int count = 0;
        for (int fd = 0; fd < 4096; fd++)
            count += fcntl(fd, F_GETFD) >= 0;
        return count;
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        count += e->d_name[0] != '.';
    closedir(d);
    return count - 1; /* the directory stream's own descriptor */
}

void ts_mkdtemp(char *path, size_t size)
{
    const char *base = getenv("TMPDIR");
    snprintf(path, size, "%s/sstest.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(path));
}

void ts_rmdir(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    char child[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        unlink(child);
    }
    closedir(d);
    rmdir(path);
}

#ifndef MAKE_TEST_CERT
#error "MAKE_TEST_CERT: the path of scripts/make-test-cert.sh (tests/support/CMakeLists.txt)"
#endif

/* One run of scripts/make-test-cert.sh into dir, its output thrown away. */
static int make_cert_set(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execl("/bin/sh", "sh", MAKE_TEST_CERT, dir, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

ts_cert_dirs ts_certs;

int ts_certs_setup(void **state)
{
    (void)state;
    ts_mkdtemp(ts_certs.base, sizeof ts_certs.base);
    snprintf(ts_certs.a, sizeof ts_certs.a, "%s/a", ts_certs.base);
    snprintf(ts_certs.b, sizeof ts_certs.b, "%s/b", ts_certs.base);
    if (make_cert_set(ts_certs.a) < 0 || make_cert_set(ts_certs.b) < 0)
        return -1;
    return 0;
}

int ts_certs_teardown(void **state)
{
    (void)state;
    ts_rmdir(ts_certs.a);
    ts_rmdir(ts_certs.b);
    ts_rmdir(ts_certs.base);
    return 0;
}
