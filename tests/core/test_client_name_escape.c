/* A client's name (ss_request_client_name, the name the default
 * handle_error logs) is one printable line whatever the client chose: a
 * Unix peer binds its own path, and a PROXY v2 header may name any
 * AF_UNIX source; a newline there would forge a log line and an escape
 * sequence would reach the operator's terminal. Control bytes, bytes
 * outside printable ASCII and the backslash come out as \xHH; a name too
 * long for the cache once escaped is cut and ends in "...". Over every
 * dispatcher (the handler sends the name back, so forking's child is seen
 * too). */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

/* Sends the client's name back, then a newline, and ends. */
static int tell_name(ss_request *req, void *data)
{
    (void)data;
    const char *name = ss_request_client_name(req);
    int rc = ss_request_send_all(req, name, strlen(name));
    return rc < 0 ? rc : ss_request_send_all(req, "\n", 1);
}

static const ss_handler namer = {.version = SS_HANDLER_VERSION, .handle = tell_name};

static ss_server *unix_server(const char *mode, const char *path, bool proxy)
{
    char url[300];
    snprintf(url, sizeof url, "unix:%s", path);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), &namer, NULL), 0);
    if (proxy)
        assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* Connects to `path` from a socket bound to `from` (NULL: unbound). */
static int connect_from(const char *path, const char *from)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (from != NULL) {
        assert_true(strlen(from) < sizeof a.sun_path);
        memcpy(a.sun_path, from, strlen(from));
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    }
    memset(a.sun_path, 0, sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* The name the server sent back: up to its one newline, which must be
 * the last byte of the stream. */
static void expect_name(int fd, const char *want)
{
    char got[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = recv(fd, got + n, sizeof got - 1 - n, 0)) > 0)
        n += (size_t)r;
    got[n] = '\0';
    assert_true(n > 0 && got[n - 1] == '\n');
    got[n - 1] = '\0';
    assert_string_equal(got, want);
    close(fd);
}

/* A PROXY v2 header naming an AF_UNIX source `src`. */
static size_t v2_unix_header(unsigned char *out, const char *src)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, sig, sizeof sig);
    out[12] = 0x21; /* v2, PROXY */
    out[13] = 0x31; /* AF_UNIX, STREAM */
    out[14] = 0;
    out[15] = 216; /* two 108-byte paths */
    memset(out + 16, 0, 216);
    memcpy(out + 16, src, strlen(src));
    memcpy(out + 16 + 108, "/dst", 4);
    return 16 + 216;
}

static void names_escaped(void **state)
{
    const char *mode = *state;
    char dir[256], path[300], from[300];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    ss_server *srv = unix_server(mode, path, false);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    /* a direct peer, its own path holding a newline, ESC and a backslash */
    snprintf(from, sizeof from, "%s/a\nFAKE\x1b[31m\\", dir);
    char want[400];
    snprintf(want, sizeof want, "%s/a\\x0aFAKE\\x1b[31m\\x5c", dir);
    expect_name(connect_from(path, from), want);
    unlink(from);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    ts_rmdir(dir);
}

static void proxied_names_escaped(void **state)
{
    const char *mode = *state;
    char dir[256], path[300];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s", dir);
    ss_server *srv = unix_server(mode, path, true);
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    unsigned char header[256];
    int fd = connect_from(path, NULL);
    ts_send(fd, header, v2_unix_header(header, "/tmp/a\nFAKE LOG LINE\xe2\x80\x8f"));
    expect_name(fd, "/tmp/a\\x0aFAKE LOG LINE\\xe2\\x80\\x8f");
    /* 107 control bytes: 428 escaped, cut to the cache */
    char longest[108];
    memset(longest, '\x07', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    fd = connect_from(path, NULL);
    ts_send(fd, header, v2_unix_header(header, longest));
    char want[128];
    for (size_t i = 0; i + 4 <= 124; i += 4)
        memcpy(want + i, "\\x07", 4);
    memcpy(want + 124, "...", 4);
    expect_name(fd, want);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    ts_rmdir(dir);
}

/* A listener's own name is a path to use, not a client's: kept as it is. */
static void test_listener_address_kept(void **state)
{
    (void)state;
    char dir[256], path[300], url[400];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/caf\xc3\xa9\\s", dir);
    ss_server *srv = unix_server("sync", path, false);
    assert_true(ss_server_address(srv, url, sizeof url) > 0);
    assert_string_equal(url + strlen("unix:"), path);
    ss_server_free(srv);
    ts_rmdir(dir);
}

#define EVERY_MODE(f)                                                                              \
    TS_MODE_TEST(f, "sync"), TS_MODE_TEST(f, "threading"), TS_MODE_TEST(f, "forking"),             \
        TS_MODE_TEST(f, "pool")

int main(void)
{
    const struct CMUnitTest tests[] = {
        EVERY_MODE(names_escaped),
        EVERY_MODE(proxied_names_escaped),
        cmocka_unit_test(test_listener_address_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
