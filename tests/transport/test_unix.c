/* Unix stream and Unix datagram servers: echo round trips (the datagram
 * client bound to its own path, as Python's suite does), abstract names,
 * the socket-file rules (stale replaced, live not stolen, other files
 * untouched, removed by close and only by the process that bound it),
 * permission bits, path length limits, unnamed peers, peer credentials. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

/* Every test gets a private directory, removed afterwards. */
typedef struct fixture {
    char dir[256];
} fixture;

static int make_dir(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ts_mkdtemp(f->dir, sizeof f->dir);
    *state = f;
    return 0;
}

static int remove_dir(void **state)
{
    fixture *f = *state;
    ts_rmdir(f->dir);
    free(f);
    return 0;
}

/* Room for any path in the test directory, and for a URL of it. */
enum { PATH_SIZE = 512, URL_SIZE = PATH_SIZE + 16 };

/* "SCHEME:DIR/NAME" into url; the bare path into path if not NULL. */
static void url_in(void **state, const char *scheme, const char *name, char *url, char *path)
{
    fixture *f = *state;
    char p[PATH_SIZE];
    if ((size_t)snprintf(p, sizeof p, "%s/%s", f->dir, name) >= sizeof p)
        fail_msg("path too long");
    snprintf(url, URL_SIZE, "%s:%s", scheme, p);
    if (path != NULL)
        memcpy(path, p, sizeof p);
}

/* What the handler saw, read by the test once the request is handled. */
typedef struct seen {
    char client[128];
    int creds_rc;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    int error;
    int errors;
} seen;

static int echo_handle(ss_request *req, void *data)
{
    seen *s = data;
    if (s != NULL) {
        snprintf(s->client, sizeof s->client, "%s", ss_request_client_name(req));
        s->creds_rc = ss_request_peer_credentials(req, &s->pid, &s->uid, &s->gid);
    }
    return ts_echo_handle(req, data);
}

static const ss_handler echo = {.version = SS_HANDLER_VERSION, .handle = echo_handle};

static void record_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    seen *s = data;
    s->error = err;
    s->errors++;
}

static ss_server *serve(const char *url, seen *s)
{
    ss_server *srv;
    int rc = ss_server_new(&srv, url, NULL, &echo, s);
    if (rc != 0)
        fail_msg("%s: %s", url, ss_strerror(rc));
    ss_server_set_timeout(srv, 5000);
    if (s != NULL)
        ss_server_on_handle_error(srv, record_error);
    return srv;
}

static bool is_socket_file(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* One stream round trip through a served server. */
static void stream_round_trip(const char *url, const char *msg)
{
    int fd = ts_connect_url(url);
    char got[128] = {0};
    ts_send(fd, msg, strlen(msg));
    assert_int_equal(ts_recv_exact(fd, got, strlen(msg)), strlen(msg));
    assert_string_equal(got, msg);
    shutdown(fd, SHUT_WR);
    assert_true(ts_sees_eof(fd));
    close(fd);
}

/* A datagram socket bound to `path` (NULL: unbound), with 5 s timeouts. */
static int dgram_client(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    if (path != NULL) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
        assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* ss_connect's datagram socket has a file of its own where the OS has no
 * autobind; the caller removes it. */
static void close_connected_dgram(int fd)
{
#ifndef __linux__
    struct sockaddr_un un;
    socklen_t len = sizeof un;
    if (getsockname(fd, (struct sockaddr *)&un, &len) == 0 && un.sun_path[0] != '\0')
        unlink(un.sun_path);
#endif
    close(fd);
}

static void send_to(int fd, const char *server_path, const char *msg)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", server_path);
    ssize_t n = sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&un, sizeof un);
    assert_int_equal(n, (ssize_t)strlen(msg));
}

/* ---- round trips ---- */

static void test_stream_echo_three_times(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unix", "s.sock", url, path);
    seen s = {0};
    ss_server *srv = serve(url, &s);
    char address[URL_SIZE];
    assert_true(ss_server_address(srv, address, sizeof address) > 0);
    assert_string_equal(address, url);
    assert_int_equal(ss_server_port(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    for (int i = 0; i < 3; i++)
        stream_round_trip(url, "hello, unix server\n");
    assert_int_equal(ts_stop(&runner), 0);
    assert_string_equal(s.client, ""); /* the client never bound: unnamed */
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.handled, 3);
    assert_int_equal(st.closed, 3);
    ss_server_free(srv);
}

/* As Python's test_UnixDatagramServer: the client binds a path of its own
 * so the server can answer. */
static void test_datagram_echo_three_times(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE], client_path[PATH_SIZE], unused[URL_SIZE];
    url_in(state, "unixgram", "d.sock", url, path);
    url_in(state, "unixgram", "client.sock", unused, client_path);
    seen s = {0};
    ss_server *srv = serve(url, &s);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    int fd = dgram_client(client_path);
    for (int i = 0; i < 3; i++) {
        char got[64] = {0};
        send_to(fd, path, "hello, datagram");
        assert_int_equal(recv(fd, got, sizeof got, 0), 15);
        assert_string_equal(got, "hello, datagram");
    }
    close(fd);
    assert_int_equal(ts_stop(&runner), 0);
    assert_string_equal(s.client, client_path);
    assert_int_equal(s.creds_rc, -ENOTSUP); /* only stream requests have them */
    assert_int_equal(s.errors, 0);
    assert_true(is_socket_file(path)); /* a datagram request leaves the socket */
    ss_server_free(srv);
    assert_false(is_socket_file(path));
}

/* ss_connect's datagram client binds itself (autobind on Linux). */
static void test_datagram_echo_with_ss_connect(void **state)
{
    char url[URL_SIZE];
    url_in(state, "unixgram", "d.sock", url, NULL);
    seen s = {0};
    ss_server *srv = serve(url, &s);
    int fd = ts_connect_url(url);
    ts_send(fd, "via ss_connect", 14);
    assert_int_equal(ss_server_handle_request(srv), 0);
    char got[32] = {0};
    assert_int_equal(recv(fd, got, sizeof got, 0), 14);
    assert_string_equal(got, "via ss_connect");
    assert_int_equal(s.errors, 0);
    assert_true(s.client[0] != '\0');
    close_connected_dgram(fd);
    ss_server_free(srv);
}

static void test_abstract_round_trip(void **state)
{
    (void)state;
#ifndef __linux__
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "unix:@x", NULL, &echo, NULL), SS_ENOTSUPPORTED);
    skip();
#else
    char url[128];
    snprintf(url, sizeof url, "unix:@sstest-%ld-%lld", (long)getpid(), ts_now_ms());
    ss_server *srv = serve(url, NULL);
    char address[128];
    ss_server_address(srv, address, sizeof address);
    assert_string_equal(address, url);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    stream_round_trip(url, "abstract");
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    /* the name went with the socket: a new server can take it at once */
    srv = serve(url, NULL);
    ss_server_free(srv);
#endif
}

/* ---- socket-file rules ---- */

/* A socket file nobody serves: bound, then closed without unlinking. */
static void make_stale_socket(const char *path, int type)
{
    int fd = socket(AF_UNIX, type, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    close(fd);
    assert_true(is_socket_file(path));
}

static void test_stale_socket_is_replaced(void **state)
{
    const char *schemes[] = {"unix", "unixgram"};
    int types[] = {SOCK_STREAM, SOCK_DGRAM};
    for (int i = 0; i < 2; i++) {
        char url[URL_SIZE], path[PATH_SIZE];
        url_in(state, schemes[i], "stale.sock", url, path);
        make_stale_socket(path, types[i]);
        assert_int_equal(ss_connect(url), -ECONNREFUSED);
        ss_server *srv = serve(url, NULL);
        /* connecting works now: the file belongs to a live socket */
        close_connected_dgram(ts_connect_url(url));
        ss_server_free(srv);
        assert_false(is_socket_file(path));
    }
}

static void test_live_socket_is_not_stolen(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unix", "live.sock", url, path);
    ss_server *live = serve(url, NULL);
    struct stat before, after;
    assert_int_equal(lstat(path, &before), 0);
    int fds = ts_count_fds();
    const char *rivals[2];
    char gram[URL_SIZE];
    url_in(state, "unixgram", "live.sock", gram, NULL);
    rivals[0] = url;
    rivals[1] = gram; /* another socket type on the same path */
    for (int i = 0; i < 2; i++) {
        ss_server *rival = (ss_server *)&rival;
        assert_int_equal(ss_server_new(&rival, rivals[i], NULL, &echo, NULL), -EADDRINUSE);
        assert_null(rival);
    }
    assert_int_equal(ts_count_fds(), fds);
    assert_int_equal(lstat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino);
    /* the live server still serves; its probe connection was handled */
    ts_runner runner;
    ts_start(&runner, live, 500);
    stream_round_trip(url, "still mine");
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(live);
}

static void test_other_files_are_never_deleted(void **state)
{
    fixture *f = *state;
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unix", "notes.txt", url, path);
    FILE *file = fopen(path, "w");
    fputs("keep me", file);
    fclose(file);
    ss_server *srv = (ss_server *)&srv;
    assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -EEXIST);
    assert_null(srv);
    char text[16] = {0};
    file = fopen(path, "r");
    assert_non_null(fgets(text, sizeof text, file));
    fclose(file);
    assert_string_equal(text, "keep me");
    /* nor a directory */
    snprintf(url, sizeof url, "unixgram:%s", f->dir);
    assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -EEXIST);
}

static void test_close_removes_only_its_own_file(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE], moved[PATH_SIZE + 8];
    url_in(state, "unix", "own.sock", url, path);
    ss_server *srv = serve(url, NULL);
    assert_true(is_socket_file(path));
    ss_server_close(srv);
    assert_false(is_socket_file(path));
    ss_server_free(srv);

    /* someone else's socket took the path meanwhile: left alone */
    srv = serve(url, NULL);
    snprintf(moved, sizeof moved, "%s.moved", path);
    assert_int_equal(rename(path, moved), 0);
    make_stale_socket(path, SOCK_STREAM);
    ss_server_free(srv);
    assert_true(is_socket_file(path));
}

static void test_forked_child_leaves_the_file(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unixgram", "fork.sock", url, path);
    ss_server *srv = serve(url, NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        ss_server_free(srv); /* as a forking dispatcher's child may */
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(is_socket_file(path));
    ss_server_free(srv);
    assert_false(is_socket_file(path));
}

static void test_socket_file_mode(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unix", "mode.sock", url, path);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, NULL, &echo, NULL), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 010000), -EINVAL);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 0666), SS_ESTATE);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    ss_server_free(srv);

    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &echo, NULL), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), -EINVAL);
    ss_server_free(srv);
#ifdef __linux__
    assert_int_equal(ss_server_create(&srv, "unix:@sstest-mode", NULL, &echo, NULL), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, 0600), -EINVAL); /* no file to chmod */
    ss_server_free(srv);
#endif
}

static void test_path_too_long(void **state)
{
    fixture *f = *state;
    struct sockaddr_un un;
    size_t limit = sizeof un.sun_path - 1; /* the longest path that fits */
    size_t dir_len = strlen(f->dir) + 1;
    assert_true(dir_len < limit);
    char name[512];
    const char *schemes[] = {"unix", "unixgram"};
    for (int i = 0; i < 2; i++) {
        char url[URL_SIZE + 512], path[PATH_SIZE + 512];
        memset(name, 'n', limit - dir_len);
        name[limit - dir_len] = '\0';
        snprintf(path, sizeof path, "%s/%s", f->dir, name);
        assert_int_equal(strlen(path), limit);
        snprintf(url, sizeof url, "%s:%s", schemes[i], path);
        ss_server *srv = serve(url, NULL); /* exactly at the limit: fine */
        ss_server_free(srv);
        strcat(url, "x");
        srv = (ss_server *)&srv;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -ENAMETOOLONG);
        assert_null(srv);
        assert_int_equal(ss_connect(url), -ENAMETOOLONG);
        memset(name, 'n', 400); /* beyond what the URL parser keeps */
        snprintf(url, sizeof url, "%s:%s/%.400s", schemes[i], f->dir, name);
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -ENAMETOOLONG);
    }
    assert_string_equal(ss_strerror(-ENAMETOOLONG), strerror(ENAMETOOLONG));
}

/* ---- unnamed peers and credentials ---- */

static void test_reply_to_unbound_datagram_client(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE], client_path[PATH_SIZE], unused[URL_SIZE];
    url_in(state, "unixgram", "d.sock", url, path);
    url_in(state, "unixgram", "named.sock", unused, client_path);
    seen s = {0};
    ss_server *srv = serve(url, &s);
    int unbound = dgram_client(NULL);
    send_to(unbound, path, "who am I");
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_string_equal(s.client, "");
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.error, SS_EUNNAMEDPEER);
    assert_non_null(strstr(ss_strerror(SS_EUNNAMEDPEER), "no address"));
    close(unbound);
    /* the server goes on serving */
    int named = dgram_client(client_path);
    send_to(named, path, "me");
    assert_int_equal(ss_server_handle_request(srv), 0);
    char got[8] = {0};
    assert_int_equal(recv(named, got, sizeof got, 0), 2);
    assert_string_equal(got, "me");
    assert_int_equal(s.errors, 1);
    close(named);
    ss_server_free(srv);
}

static void test_peer_credentials(void **state)
{
    char url[URL_SIZE];
    url_in(state, "unix", "creds.sock", url, NULL);
    seen s = {.pid = -2};
    ss_server *srv = serve(url, &s);
    int fd = ts_connect_url(url);
    shutdown(fd, SHUT_WR); /* the echo handler ends at EOF */
    assert_int_equal(ss_server_handle_request(srv), 0);
    close(fd);
    if (s.creds_rc == -ENOTSUP)
        skip(); /* this OS cannot tell */
    assert_int_equal(s.creds_rc, 0);
#ifdef __linux__
    assert_int_equal(s.pid, getpid());
#endif
    assert_int_equal(s.uid, getuid());
    assert_int_equal(s.gid, getgid());
    ss_server_free(srv);
}

/* The example in docs/transports.md. */
/* docs:begin peer-credentials */
/* Serves only clients that run as the server's user (or as root). */
static int same_user_only(ss_request *req, void *data)
{
    (void)data;
    uid_t uid;
    int rc = ss_request_peer_credentials(req, NULL, &uid, NULL);
    if (rc < 0)
        return rc;
    if (uid != 0 && uid != getuid())
        return -EACCES; /* reported by handle_error; the connection closes */
    return ss_request_send_all(req, "welcome\n", 8);
}
/* docs:end peer-credentials */

static void test_credentials_gate_lets_the_same_user_in(void **state)
{
    char url[URL_SIZE];
    url_in(state, "unix", "gate.sock", url, NULL);
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = same_user_only};
    seen s = {0};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, url, NULL, &h, &s), 0);
    ss_server_on_handle_error(srv, record_error);
    int fd = ts_connect_url(url);
    assert_int_equal(ss_server_handle_request(srv), 0);
    char got[16] = {0};
    if (s.error == -ENOTSUP)
        skip(); /* this OS cannot tell */
    assert_int_equal(ts_recv_exact(fd, got, 8), 8);
    assert_string_equal(got, "welcome\n");
    assert_int_equal(s.errors, 0);
    close(fd);
    ss_server_free(srv);
}

static void test_no_fd_leak_and_close_on_exec(void **state)
{
    char url[URL_SIZE], path[PATH_SIZE];
    url_in(state, "unixgram", "fds.sock", url, path);
    int before = ts_count_fds();
    seen s = {0};
    ss_server *srv = serve(url, &s);
    assert_true(fcntl(ss_server_fileno(srv), F_GETFD) & FD_CLOEXEC);
    int fd = ts_connect_url(url);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ts_send(fd, "x", 1);
    assert_int_equal(ss_server_handle_request(srv), 0);
    char c;
    assert_int_equal(recv(fd, &c, 1, 0), 1);
    close_connected_dgram(fd);
    ss_server_free(srv);
    assert_int_equal(ts_count_fds(), before);
}

#define T(name) cmocka_unit_test_setup_teardown(name, make_dir, remove_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_stream_echo_three_times),
        T(test_datagram_echo_three_times),
        T(test_datagram_echo_with_ss_connect),
        T(test_abstract_round_trip),
        T(test_stale_socket_is_replaced),
        T(test_live_socket_is_not_stolen),
        T(test_other_files_are_never_deleted),
        T(test_close_removes_only_its_own_file),
        T(test_forked_child_leaves_the_file),
        T(test_socket_file_mode),
        T(test_path_too_long),
        T(test_reply_to_unbound_datagram_client),
        T(test_peer_credentials),
        T(test_credentials_gate_lets_the_same_user_in),
        T(test_no_fd_leak_and_close_on_exec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
