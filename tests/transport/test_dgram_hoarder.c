/* One Unix datagram client that never reads its replies must not starve
 * the others. X binds, connects to the server (so the kernel's cap on its
 * queue does not apply to the server's replies) and sends enough 1 KiB
 * requests to fill the server's send buffer twice over, reading nothing.
 * Then Y asks once and must get its answer promptly; the replies that
 * failed must all be X's, with -ENOBUFS, and must have failed at once
 * (the request timeout is 2 s: waiting for room would take that long per
 * reply). Run on the sync, threading and pool dispatchers. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#define REQUEST_TIMEOUT_MS 2000
#define PROMPT_MS          1000 /* well under one request timeout */
#define TRUESIZE_1K        2304 /* what the kernel charges for a 1 KiB datagram (measured) */

typedef struct errors {
    char hoarder[300];
    atomic_int hoarder_enobufs, others;
} errors;

static void record_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    errors *e = data;
    if (err == -ENOBUFS && strcmp(ss_request_client_name(req), e->hoarder) == 0)
        atomic_fetch_add(&e->hoarder_enobufs, 1);
    else if (atomic_fetch_add(&e->others, 1) < 3)
        print_message("unexpected error for %s: %s\n", ss_request_client_name(req),
                      ss_strerror(err));
}

static int bound_dgram(const char *path, const char *server_path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof un.sun_path && strlen(server_path) < sizeof un.sun_path);
    memcpy(un.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof un), 0);
    memcpy(un.sun_path, server_path, strlen(server_path) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof un), 0);
    /* The server reads as fast as X sends unless it waits on a reply:
     * half a request timeout without progress means it does. */
    struct timeval tv = {.tv_sec = REQUEST_TIMEOUT_MS / 2000,
                         .tv_usec = REQUEST_TIMEOUT_MS / 2 % 1000 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

typedef struct progress {
    ss_server *srv;
    uint64_t target;
} progress;

static bool all_accepted(void *arg)
{
    progress *p = arg;
    ss_stats st;
    ss_server_stats(p->srv, &st);
    return st.accepted >= p->target;
}

/* Y: one request through ss_connect (a connected, autobound socket);
 * returns how long the answer took, or -1 if none came. */
static long long ask_once(const char *url)
{
    int fd = ts_connect_url(url);
    long long start = ts_now_ms();
    ts_send(fd, "hello", 5);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char got[8] = {0};
    long long took = -1;
    if (poll(&p, 1, 3 * REQUEST_TIMEOUT_MS) == 1 && recv(fd, got, sizeof got, 0) == 5 &&
        memcmp(got, "hello", 5) == 0)
        took = ts_now_ms() - start;
    close(fd);
    return took;
}

static void hoarder_costs_only_itself(const ss_dispatcher *dispatcher)
{
    char dir[256], path[300], x_path[300], url[320];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(x_path, sizeof x_path, "%s/x.sock", dir);
    snprintf(url, sizeof url, "unixgram:%s", path);
    errors e = {0};
    snprintf(e.hoarder, sizeof e.hoarder, "%s", x_path);
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, url, dispatcher, &ts_echo, &e), 0);
    ss_server_set_request_timeout(srv, REQUEST_TIMEOUT_MS);
    ss_server_on_handle_error(srv, record_error);
    int sndbuf;
    socklen_t len = sizeof sndbuf;
    assert_int_equal(getsockopt(ss_server_fileno(srv), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len), 0);
    ts_runner runner;
    ts_start(&runner, srv, 50);

    int x = bound_dgram(x_path, path);
    int requests = 2 * sndbuf / TRUESIZE_1K + 50;
    char kib[1024];
    memset(kib, 'x', sizeof kib);
    for (int i = 0; i < requests; i++)
        if (send(x, kib, sizeof kib, 0) != (ssize_t)sizeof kib)
            fail_msg("request %d of X not taken: the server is waiting on a reply", i);
    long long sent_at = ts_now_ms();
    progress p = {.srv = srv, .target = (uint64_t)requests};
    assert_true(ts_wait_until(all_accepted, &p, 5 * REQUEST_TIMEOUT_MS));
    long long took = ask_once(url);
    print_message("%s: sndbuf %d, %d requests from X; all taken %lld ms after the last; "
                  "Y answered in %lld ms; X's replies refused: %d\n",
                  ss_dispatch_name(dispatcher), sndbuf, requests, ts_now_ms() - sent_at, took,
                  atomic_load(&e.hoarder_enobufs));
    assert_int_equal(ts_stop(&runner), 0);
    ss_stats st;
    ss_server_stats(srv, &st);
    ss_server_free(srv); /* replies still in a worker go out before X closes */
    close(x);
    ts_rmdir(dir);

    assert_true(took >= 0 && took < PROMPT_MS);
    assert_true(atomic_load(&e.hoarder_enobufs) > 0);
    assert_int_equal(atomic_load(&e.others), 0);
    assert_int_equal(st.request_timeouts, 0); /* refused at once, never waited out */
}

static void test_sync(void **state)
{
    (void)state;
    hoarder_costs_only_itself(ss_dispatch_sync());
}

static void test_threading(void **state)
{
    (void)state;
    hoarder_costs_only_itself(ss_dispatch_threading());
}

static void test_pool(void **state)
{
    (void)state;
    hoarder_costs_only_itself(ss_dispatch_pool());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_threading),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
