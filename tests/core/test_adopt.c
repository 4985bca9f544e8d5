/* Adopted listeners (issue 16): fd:N takes an inherited socket that
 * already serves, its transport read from the socket (TCP, UDP, Unix
 * stream and datagram), over every dispatcher; what is not one is a clear
 * error that leaves the descriptor alone; bind-time options are refused;
 * drain leaves a socket another process holds unchanged; systemd: and
 * systemd:NAME adopt what socket activation passed (run in children: the
 * protocol is read once per process). */
#define _GNU_SOURCE
#include "dispatch_support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* ---- sockets as a parent or systemd would pass them ---- */

/* A socket on 127.0.0.1 (port 0), or -1; no cmocka: children use it. */
static int make_inet(int type, bool bound, bool listening)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd >= 0 && ((bound && bind(fd, (struct sockaddr *)&a, sizeof a) < 0) ||
                    (listening && listen(fd, 16) < 0))) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int inet_socket(int type, bool bound, bool listening)
{
    int fd = make_inet(type, bound, listening);
    assert_true(fd >= 0);
    return fd;
}

static int unix_socket(int type, const char *path, bool listening)
{
    int fd = socket(AF_UNIX, type, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    if (listening)
        assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static const char *fd_url(int fd, char *buf, size_t size)
{
    snprintf(buf, size, "fd:%d", fd);
    return buf;
}

static bool is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* ---- every transport, every dispatcher ---- */

/* Serves one line through the adopted socket at `url` and checks the
 * server names it as the socket is. */
static void serve_adopted(const char *mode, int fd, const char *want_prefix)
{
    char url[32];
    ss_server *srv;
    int rc = ss_server_new(&srv, fd_url(fd, url, sizeof url), ss_dispatch_by_name(mode),
                           &td_echo_line, NULL);
    if (rc < 0)
        fail_msg("%s: %s", url, ss_strerror(rc));
    assert_int_equal(ss_server_fileno(srv), fd);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    char address[256];
    assert_true(ss_server_address(srv, address, sizeof address) > 0);
    assert_int_equal(strncmp(address, want_prefix, strlen(want_prefix)), 0);
    assert_string_equal(ss_server_listener_name(srv, 0), "");
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int client = ts_connect_url(address);
    td_round_trip(client, "adopted\n");
    close(client);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_close(srv);
    assert_false(is_open(fd)); /* the server owned it */
    assert_int_equal(td_stats(srv).handled, 1);
    ss_server_free(srv);
}

static void every_transport_adopted(void **state)
{
    const char *mode = *state;
    char dir[200], stream[256], gram[256];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(stream, sizeof stream, "%s/stream", dir);
    snprintf(gram, sizeof gram, "%s/gram", dir);
    serve_adopted(mode, inet_socket(SOCK_STREAM, true, true), "tcp://127.0.0.1:");
    serve_adopted(mode, inet_socket(SOCK_DGRAM, true, false), "udp://127.0.0.1:");
    char want[300];
    snprintf(want, sizeof want, "unix:%s", stream);
    serve_adopted(mode, unix_socket(SOCK_STREAM, stream, true), want);
    snprintf(want, sizeof want, "unixgram:%s", gram);
    serve_adopted(mode, unix_socket(SOCK_DGRAM, gram, false), want);
    struct stat st; /* adopted: never unlinked by the server */
    assert_int_equal(stat(stream, &st), 0);
    assert_int_equal(stat(gram, &st), 0);
    ts_rmdir(dir);
}

/* ---- what cannot be adopted ---- */

/* The URL is refused with `want` and fd is left as it was: open,
 * blocking, still inheritable. */
static void refused(int fd, int want)
{
    char url[32];
    ss_server *srv = (ss_server *)1;
    int rc = ss_server_new(&srv, fd_url(fd, url, sizeof url), NULL, &td_echo_line, NULL);
    if (rc != want)
        fail_msg("%s: %s, want %s", url, ss_strerror(rc), ss_strerror(want));
    assert_null(srv);
    if (fd >= 0 && want != -EBADF) {
        assert_true(is_open(fd));
        assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
        close(fd);
    }
}

/* A descriptor number that is not open: a socket's, once closed. */
static int closed_number(void)
{
    int fd = inet_socket(SOCK_STREAM, true, true);
    close(fd);
    return fd;
}

static void bad_descriptors_are_clear_errors(void **state)
{
    (void)state;
    refused(closed_number(), -EBADF);
    refused(open("/dev/null", O_RDONLY), -ENOTSOCK);
    int p[2];
    assert_int_equal(pipe(p), 0);
    refused(p[0], -ENOTSOCK);
    close(p[1]);
    refused(inet_socket(SOCK_STREAM, true, false), SS_ENOTLISTENING); /* bound, no listen */
    refused(inet_socket(SOCK_STREAM, false, false), SS_ENOTLISTENING);
    refused(inet_socket(SOCK_DGRAM, false, false), SS_ENOTLISTENING); /* not bound */
    int pair[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    refused(pair[0], SS_ENOTLISTENING); /* a connected socket (Accept=yes) */
    close(pair[1]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    refused(pair[0], -ESOCKTNOSUPPORT); /* no transport for that type: said so */
    close(pair[1]);
    ss_server *srv = (ss_server *)1;
    assert_int_equal(ss_server_new(&srv, "fd:", NULL, &td_echo_line, NULL), SS_EURLFD);
    assert_int_equal(ss_server_new(&srv, "fd:-1", NULL, &td_echo_line, NULL), SS_EURLFD);
    assert_int_equal(ss_server_new(&srv, "fd:3x", NULL, &td_echo_line, NULL), SS_EURLFD);
    assert_int_equal(ss_server_new(&srv, "fd:99999999999", NULL, &td_echo_line, NULL), SS_EURLFD);
    assert_int_equal(ss_server_new(&srv, "systemd:a:b", NULL, &td_echo_line, NULL), SS_EURLFDNAME);
    assert_true(SS_IS_URL_ERROR(SS_EURLFD));
    assert_null(srv);
}

/* One descriptor cannot be two listeners (it would be closed twice). */
static void same_descriptor_twice(void **state)
{
    (void)state;
    int fd = inet_socket(SOCK_STREAM, true, true);
    char url[32];
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, fd_url(fd, url, sizeof url), NULL, &td_echo_line, NULL),
                     0);
    assert_int_equal(ss_server_add_listener(srv, url), -EEXIST);
    assert_int_equal(ss_server_listener_count(srv), 1);
    ss_server_free(srv);
    assert_false(is_open(fd));
}

/* ---- bind-time options ---- */

static void bind_options_refused_when_all_adopted(void **state)
{
    (void)state;
    char dir[200], path[256], url[300];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    int fd = unix_socket(SOCK_STREAM, path, true);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, fd_url(fd, url, sizeof url), NULL, &td_echo_line, NULL),
                     0);
    assert_int_equal(ss_server_set_reuse_address(srv, true), SS_ESTATE);
    assert_int_equal(ss_server_set_reuse_port(srv, true), SS_ESTATE);
    assert_int_equal(ss_server_set_backlog(srv, 8), SS_ESTATE);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), SS_ESTATE);
    /* a listener this library binds takes them again */
    snprintf(url, sizeof url, "unix:%s/t", dir);
    assert_int_equal(ss_server_add_listener(srv, url), 1);
    assert_int_equal(ss_server_set_reuse_address(srv, true), 0);
    assert_int_equal(ss_server_set_backlog(srv, 8), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ss_server_free(srv);
    ts_rmdir(dir);
}

/* ---- drain leaves a shared socket as it is ---- */

/* Connects without blocking; true if the connection completes within
 * timeout_ms. */
static bool connects(const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    bool ok = connect(fd, sa, len) == 0;
    if (!ok && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t elen = sizeof err;
        ok = poll(&p, 1, timeout_ms) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0;
    }
    close(fd);
    return ok;
}

/* The test keeps its own copy of the socket, as systemd does: after the
 * server drained and closed, the socket still takes connections, for
 * whoever holds it next (no SYN filter left on it, not shut down). */
static void drain_keeps_shared_socket(int fd)
{
    int keep = dup(fd);
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[32];
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, fd_url(fd, url, sizeof url), ss_dispatch_threading(),
                                   &td_echo_line, NULL),
                     0);
    assert_int_equal(ss_server_drain(srv, 1000), 0);
    ss_server_free(srv);
    assert_true(connects((struct sockaddr *)&a, len, 2500));
    int taken = accept(keep, NULL, NULL);
    assert_true(taken >= 0);
    close(taken);
    close(keep);
}

static void drain_leaves_shared_sockets_alone(void **state)
{
    (void)state;
    drain_keeps_shared_socket(inet_socket(SOCK_STREAM, true, true));
    char dir[200], path[256];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    drain_keeps_shared_socket(unix_socket(SOCK_STREAM, path, true));
    ts_rmdir(dir);
}

/* ---- systemd: socket activation ---- */

/* fds 3 (a listening TCP socket), 4 (a bound UDP one) and, with
 * `connected`, 5 (a connected stream socket), as systemd passes them. */
static void pass_sockets(bool connected, const char *names)
{
    int pair[2];
    TS_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0);
    /* copies above 7 first: the originals may be 3, 4 or 5 themselves */
    int ft = fcntl(make_inet(SOCK_STREAM, true, true), F_DUPFD, 8);
    int fu = fcntl(make_inet(SOCK_DGRAM, true, false), F_DUPFD, 8);
    int fp = fcntl(pair[0], F_DUPFD, 8);
    TS_CHECK(ft >= 0 && fu >= 0 && fp >= 0);
    TS_CHECK(dup2(ft, 3) == 3 && dup2(fu, 4) == 4);
    TS_CHECK(!connected || dup2(fp, 5) == 5);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", connected ? "3" : "2", 1);
    if (names != NULL)
        setenv("LISTEN_FDNAMES", names, 1);
}

static void adopts_every_passed_socket(void)
{
    pass_sockets(false, "web:dns");
    ss_server *srv;
    TS_CHECK(ss_server_new(&srv, "systemd:nope", NULL, &td_echo_line, NULL) == SS_ENOFDNAME);
    TS_CHECK(getenv("LISTEN_FDS") == NULL); /* read once, then unset for children */
    TS_CHECK(fcntl(3, F_GETFD) & FD_CLOEXEC);
    TS_CHECK(ss_server_new(&srv, "systemd:", ss_dispatch_threading(), &td_echo_line, NULL) == 0);
    TS_CHECK(ss_server_listener_count(srv) == 2);
    TS_CHECK(ss_server_listener_fileno(srv, 0) == 3 && ss_server_listener_fileno(srv, 1) == 4);
    TS_CHECK(strcmp(ss_server_listener_name(srv, 0), "web") == 0);
    TS_CHECK(strcmp(ss_server_listener_name(srv, 1), "dns") == 0);
    char url[64];
    TS_CHECK(ss_server_listener_address(srv, 1, url, sizeof url) > 0);
    TS_CHECK(strncmp(url, "udp://127.0.0.1:", 16) == 0);
    ss_server_free(srv);
}

static void adopts_the_named_one(void)
{
    pass_sockets(false, "web:dns");
    ss_server *srv;
    TS_CHECK(ss_server_new(&srv, "systemd:dns", ss_dispatch_pool(), &td_echo_line, NULL) == 0);
    TS_CHECK(ss_server_listener_count(srv) == 1);
    TS_CHECK(ss_server_fileno(srv) == 4);
    TS_CHECK(fcntl(3, F_GETFD) >= 0);                /* the other one: not taken */
    TS_CHECK((fcntl(3, F_GETFL) & O_NONBLOCK) == 0); /* nor changed */
    char url[64];
    ss_server_address(srv, url, sizeof url);
    int fd = ss_connect(url);
    TS_CHECK(fd >= 0);
    TS_CHECK(send(fd, "dns?\n", 5, 0) == 5);
    TS_CHECK(ss_server_handle_request(srv) == 0);
    char got[8] = {0};
    struct pollfd p = {.fd = fd, .events = POLLIN};
    TS_CHECK(poll(&p, 1, 5000) == 1 && recv(fd, got, sizeof got, 0) == 5);
    TS_CHECK(strcmp(got, "dns?\n") == 0);
    close(fd);
    ss_server_free(srv);
}

static void a_connected_one_adopts_nothing(void)
{
    pass_sockets(true, NULL);
    ss_server *srv = (ss_server *)1;
    TS_CHECK(ss_server_new(&srv, "systemd:", NULL, &td_echo_line, NULL) == SS_ENOTLISTENING);
    TS_CHECK(srv == NULL);
    TS_CHECK(fcntl(3, F_GETFD) >= 0 && (fcntl(3, F_GETFL) & O_NONBLOCK) == 0); /* untouched */
}

static void bad_environments(void)
{
    ss_server *srv;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    TS_CHECK(ss_server_new(&srv, "systemd:", NULL, &td_echo_line, NULL) == SS_ENOACTIVATION);
    pass_sockets(false, NULL);
    setenv("LISTEN_PID", "1", 1); /* init's, not ours */
    TS_CHECK(ss_server_new(&srv, "systemd:", NULL, &td_echo_line, NULL) == SS_ELISTENPID);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "40", 1); /* beyond the open descriptors */
    TS_CHECK(ss_server_new(&srv, "systemd:", NULL, &td_echo_line, NULL) == SS_ELISTENFDS);
    setenv("LISTEN_FDS", "two", 1);
    TS_CHECK(ss_server_new(&srv, "systemd:", NULL, &td_echo_line, NULL) == SS_ELISTENENV);
    TS_CHECK(strcmp(ss_strerror(SS_ELISTENPID), "Socket activation: LISTEN_PID names another "
                                                "process") == 0);
}

static void systemd_activation(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(adopts_every_passed_socket), 0);
    assert_int_equal(ts_run_in_child(adopts_the_named_one), 0);
    assert_int_equal(ts_run_in_child(a_connected_one_adopts_nothing), 0);
    assert_int_equal(ts_run_in_child(bad_environments), 0);
}

#define EACH_MODE(f)                                                                               \
    cmocka_unit_test_prestate(f, "sync"), cmocka_unit_test_prestate(f, "threading"),               \
        cmocka_unit_test_prestate(f, "forking"), cmocka_unit_test_prestate(f, "pool")

int main(void)
{
    const struct CMUnitTest tests[] = {
        EACH_MODE(every_transport_adopted),
        cmocka_unit_test(bad_descriptors_are_clear_errors),
        cmocka_unit_test(same_descriptor_twice),
        cmocka_unit_test(bind_options_refused_when_all_adopted),
        cmocka_unit_test(drain_leaves_shared_sockets_alone),
        cmocka_unit_test(systemd_activation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
