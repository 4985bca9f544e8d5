/* A handler may hand its request's I/O to a thread of its own (the reader
 * and the writer may even be used from two threads). That thread is not
 * what the dispatcher started the request on: not the loop's thread
 * (sync), not the request's thread or child, and, on the pool, not a
 * fiber. Its reads and writes must still wait, time out and answer as a
 * thread's do, on every dispatcher, with or without a request timeout
 * (with one, a thread would otherwise let the kernel time its reads). */
#include "dispatch_support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* In the helper thread: waits for the client's line, which the client
 * sends only once it has the handler's "go", and sends it back. */
static void *echo_in_thread(void *arg)
{
    ss_request *req = arg;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    int rc = n > 0 ? ss_request_send_all(req, line, (size_t)n) : (n < 0 ? (int)n : -EPROTO);
    return (void *)(intptr_t)rc;
}

static int go_then_echo_in_thread(ss_request *req, void *data)
{
    (void)data;
    int rc = ss_request_send_all(req, "go\n", 3);
    pthread_t helper;
    if (rc == 0 && pthread_create(&helper, NULL, echo_in_thread, req) != 0)
        rc = -EAGAIN;
    void *result = NULL;
    if (rc == 0 && pthread_join(helper, &result) == 0)
        rc = (int)(intptr_t)result;
    return rc;
}

static const ss_handler handler = {.version = SS_HANDLER_VERSION, .handle = go_then_echo_in_thread};

static void echo_from_helper_thread(const ss_dispatcher *d, int request_timeout_ms)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", d, &handler, NULL), 0);
    ss_server_set_request_timeout(srv, request_timeout_ms);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    int fd = ts_connect(srv);
    td_expect(fd, "go\n");
    td_round_trip(fd, "from the client\n");
    close(fd);
    td_finish(&runner, srv, 1, 5000);
}

static void each_timeout(const ss_dispatcher *d)
{
    echo_from_helper_thread(d, -1);
    echo_from_helper_thread(d, 5000);
}

static void test_sync(void **state)
{
    (void)state;
    each_timeout(ss_dispatch_sync());
}

static void test_threading(void **state)
{
    (void)state;
    each_timeout(ss_dispatch_threading());
}

static void test_forking(void **state)
{
    (void)state;
    if (TS_UNDER_TSAN)
        skip();
    each_timeout(ss_dispatch_forking());
}

static void test_pool(void **state)
{
    (void)state;
    each_timeout(ss_dispatch_pool());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync),
        cmocka_unit_test(test_threading),
        cmocka_unit_test(test_forking),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
