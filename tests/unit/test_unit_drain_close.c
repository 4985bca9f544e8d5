/* The drain's last step closes the listener (core/server.c,
 * ss__drain_listener): a client whose connection the kernel completed
 * between the drain's last look at the queue and that close would be
 * reset, a request lost that no balancer retries (HAProxy in mode tcp
 * retries only failed connects). The rule: such a late client is refused
 * (a failed connect, retried elsewhere), never accepted and then reset.
 *
 * The race is made certain here: the library's close(2) is wrapped
 * (-Wl,--wrap=close), and the close of the listener connects a client
 * first, then closes. Over TCP (IPv4 and IPv6) and Unix stream sockets,
 * with every dispatcher (the drain's close is the core's, but each takes
 * the backlog its own way). Linux only (the wrap, and the kernel
 * behaviours the fix uses). */
#define _GNU_SOURCE
#include <socketserver.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

int __real_close(int fd);
int __wrap_close(int fd);

/* The trap: the listener's fd, in this process (a forked child closing
 * its copy is not the drain), and the late client it lets in. */
static int trap_fd = -1;
static pid_t trap_pid;
static struct sockaddr_storage trap_addr;
static socklen_t trap_addr_len;
static int late_client = -1;
static int late_connect_errno; /* a connect that failed at once (Unix) */

/* Connects without waiting, then gives the kernel up to 200 ms to
 * complete the handshake (on loopback it takes microseconds when the
 * listener lets it in). */
static void connect_late_client(void)
{
    late_client = socket(trap_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    late_connect_errno = 0;
    if (connect(late_client, (struct sockaddr *)&trap_addr, trap_addr_len) < 0)
        late_connect_errno = errno;
    if (late_connect_errno == EINPROGRESS) {
        struct pollfd p = {.fd = late_client, .events = POLLOUT};
        poll(&p, 1, 200);
    }
}

int __wrap_close(int fd)
{
    if (fd == trap_fd && getpid() == trap_pid) {
        trap_fd = -1;
        connect_late_client();
    }
    return __real_close(fd);
}

static int handle(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
        if (ss_request_send_all(req, buf, (size_t)n) < 0)
            break;
    return 0;
}

static const ss_handler echo = {.version = SS_HANDLER_VERSION, .handle = handle};

/* The late client's fate, waited for up to 3 s (a dropped SYN is sent
 * again after 1 s): 0 if its connect was refused, else what happened. */
static const char *late_client_fate(void)
{
    if (late_connect_errno == ECONNREFUSED)
        return NULL;
    if (late_connect_errno != 0 && late_connect_errno != EINPROGRESS)
        return strerror(late_connect_errno);
    struct pollfd p = {.fd = late_client, .events = POLLOUT | POLLIN};
    if (poll(&p, 1, 3000) <= 0)
        return "neither refused nor connected after 3 s";
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(late_client, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err == ECONNREFUSED)
        return NULL;
    if (err != 0)
        return strerror(err);
    char c;
    ssize_t n = recv(late_client, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET) ? "accepted by the kernel, then reset"
                                                    : "connected to a listener that is gone";
}

static void drain_with_a_late_client(const char *url, const ss_dispatcher *mode)
{
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, url, mode, &echo, NULL), 0);
    trap_addr_len = sizeof trap_addr;
    assert_int_equal(
        getsockname(ss_server_fileno(srv), (struct sockaddr *)&trap_addr, &trap_addr_len), 0);
    trap_pid = getpid();
    trap_fd = ss_server_fileno(srv);
    assert_int_equal(ss_server_drain(srv, 2000), 0);
    assert_int_equal(trap_fd, -1); /* the drain closed the listener */
    const char *fate = late_client_fate();
    __real_close(late_client);
    ss_server_free(srv);
    if (fate != NULL)
        fail_msg("%s (%s): a client arriving as the listener closed was %s", url,
                 ss_dispatch_name(mode), fate);
}

static void over_every_mode(const char *url)
{
    drain_with_a_late_client(url, ss_dispatch_sync());
    drain_with_a_late_client(url, ss_dispatch_threading());
    drain_with_a_late_client(url, ss_dispatch_forking());
    drain_with_a_late_client(url, ss_dispatch_pool());
}

static void test_tcp(void **state)
{
    (void)state;
    over_every_mode("tcp://127.0.0.1:0");
}

static void test_tcp6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        skip();
    __real_close(probe);
    over_every_mode("tcp://[::1]:0");
}

static void test_unix(void **state)
{
    (void)state;
    char dir[] = "/tmp/ss-drain-close.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof url, "unix:%s/s.sock", dir);
    over_every_mode(url);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp),
        cmocka_unit_test(test_tcp6),
        cmocka_unit_test(test_unix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
