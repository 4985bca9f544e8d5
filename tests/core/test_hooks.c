/* The server hooks and the handler contract: verify_request, handle_error
 * (exactly once, default report), setup/handle/finish ordering, per-request
 * data, client address. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* What the hooks and handler steps saw, in order. */
typedef struct trace {
    char steps[64];
    int errors;
    int last_error;
    int verify_calls;
    bool refuse;
    int fail_setup, fail_finish; /* error to return, 0 = none */
    int fail_handle;             /* error for the first handle call only */
    int handle_calls;
    char client[128];
} trace;

static void step(trace *t, char c)
{
    size_t n = strlen(t->steps);
    if (n + 1 < sizeof t->steps)
        t->steps[n] = c;
}

static int on_setup(ss_request *req, void *data)
{
    trace *t = data;
    step(t, 's');
    ss_request_set_data(req, t);
    return t->fail_setup;
}

static int on_handle(ss_request *req, void *data)
{
    trace *t = data;
    assert_ptr_equal(ss_request_data(req), t);
    step(t, 'h');
    snprintf(t->client, sizeof t->client, "%s", ss_request_client_name(req));
    if (t->handle_calls++ == 0 && t->fail_handle)
        return t->fail_handle;
    return ss_request_send_all(req, "ok", 2);
}

static int on_finish(ss_request *req, void *data)
{
    trace *t = data;
    assert_ptr_equal(ss_request_data(req), t);
    step(t, 'f');
    return t->fail_finish;
}

static bool on_verify(ss_server *srv, ss_request *req, void *data)
{
    (void)srv;
    trace *t = data;
    t->verify_calls++;
    step(t, 'v');
    assert_true(ss_request_fileno(req) >= 0);
    return !t->refuse;
}

static void on_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    trace *t = data;
    t->errors++;
    t->last_error = err;
    step(t, 'e');
}

static const ss_handler traced = {SS_HANDLER_VERSION, on_setup, on_handle, on_finish};

static ss_server *traced_server(trace *t)
{
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &traced, t), 0);
    ss_server_on_verify_request(srv, on_verify);
    ss_server_on_handle_error(srv, on_error);
    return srv;
}

/* One client, one handle_request; returns what the client received. */
static size_t one_request(ss_server *srv, char *got, size_t size)
{
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    size_t n = ts_recv_exact(fd, got, size);
    assert_true(ts_sees_eof(fd));
    close(fd);
    return n;
}

static void test_handler_steps_in_order(void **state)
{
    (void)state;
    trace t = {0};
    ss_server *srv = traced_server(&t);
    char got[8] = {0};
    assert_int_equal(one_request(srv, got, 2), 2);
    assert_string_equal(got, "ok");
    assert_string_equal(t.steps, "vshf");
    assert_int_equal(t.errors, 0);
    ss_server_free(srv);
}

static void test_refused_request_never_reaches_handler(void **state)
{
    (void)state;
    trace t = {.refuse = true};
    ss_server *srv = traced_server(&t);
    char got[8];
    assert_int_equal(one_request(srv, got, sizeof got), 0); /* EOF, no bytes */
    assert_string_equal(t.steps, "v");
    assert_int_equal(t.verify_calls, 1);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.closed, 1); /* shut down exactly once */
    assert_int_equal(st.handled, 0);
    ss_server_free(srv);
}

static void test_failing_handle_reports_once_and_serving_goes_on(void **state)
{
    (void)state;
    trace t = {.fail_handle = -EPROTO};
    ss_server *srv = traced_server(&t);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fd = ts_connect(srv);
    assert_true(ts_sees_eof(fd)); /* the failed request was still shut down */
    close(fd);
    /* the next client is served normally */
    fd = ts_connect(srv);
    char got[3] = {0};
    assert_int_equal(ts_recv_exact(fd, got, 2), 2);
    assert_string_equal(got, "ok");
    close(fd);
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.last_error, -EPROTO);
    assert_string_equal(t.steps, "vshfevshf"); /* finish ran despite the failure */
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.handler_errors, 1);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.closed, 2);
    ss_server_free(srv);
}

static void test_failing_setup_skips_handle_and_finish(void **state)
{
    (void)state;
    trace t = {.fail_setup = -ENOMEM};
    ss_server *srv = traced_server(&t);
    char got[8];
    assert_int_equal(one_request(srv, got, sizeof got), 0);
    assert_string_equal(t.steps, "vse");
    assert_int_equal(t.last_error, -ENOMEM);
    ss_server_free(srv);
}

static void test_failing_finish_is_reported(void **state)
{
    (void)state;
    trace t = {.fail_finish = -EIO};
    ss_server *srv = traced_server(&t);
    char got[8];
    one_request(srv, got, 2);
    assert_string_equal(t.steps, "vshfe");
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.last_error, -EIO);
    ss_server_free(srv);
}

static void test_first_error_wins(void **state)
{
    (void)state;
    trace t = {.fail_handle = -EPROTO, .fail_finish = -EIO};
    ss_server *srv = traced_server(&t);
    char got[8];
    one_request(srv, got, sizeof got);
    assert_int_equal(t.errors, 1);
    assert_int_equal(t.last_error, -EPROTO);
    ss_server_free(srv);
}

static void test_client_address_is_the_peer(void **state)
{
    (void)state;
    trace t = {0};
    ss_server *srv = traced_server(&t);
    int fd = ts_connect(srv);
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    getsockname(fd, (struct sockaddr *)&local, &len);
    assert_int_equal(ss_server_handle_request(srv), 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%u", ntohs(local.sin_port));
    assert_string_equal(t.client, want);
    close(fd);
    ss_server_free(srv);
}

/* The default handle_error writes one line naming the client to stderr. */
static void test_default_error_report(void **state)
{
    (void)state;
    trace t = {.fail_handle = -ECONNRESET};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &traced, &t), 0);
    char path[256];
    snprintf(path, sizeof path, "/tmp/ss-stderr-%d", (int)getpid());
    int file = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int saved = dup(2);
    fflush(stderr);
    dup2(file, 2);
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char report[512] = {0};
    pread(file, report, sizeof report - 1, 0);
    close(file);
    unlink(path);
    assert_non_null(strstr(report, t.client));
    assert_non_null(strstr(report, "Connection reset by peer"));
    assert_non_null(strchr(report, '\n'));
    assert_null(strchr(strchr(report, '\n') + 1, '\n')); /* exactly one line */
    close(fd);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handler_steps_in_order),
        cmocka_unit_test(test_refused_request_never_reaches_handler),
        cmocka_unit_test(test_failing_handle_reports_once_and_serving_goes_on),
        cmocka_unit_test(test_failing_setup_skips_handle_and_finish),
        cmocka_unit_test(test_failing_finish_is_reported),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_client_address_is_the_peer),
        cmocka_unit_test(test_default_error_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
