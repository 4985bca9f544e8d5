/* ss_server_hand_over (issue 16, item 4): the listening sockets go to a
 * successor (tests/core/handover_successor.c) by the socket-activation
 * protocol; once it says READY=1 this server takes no more clients and
 * its drain leaves the sockets working for the successor; a successor
 * that dies, is not found or never gets ready changes nothing for this
 * server, which keeps serving. Run per dispatcher (argv[1]). */
#define _GNU_SOURCE
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static const ss_dispatcher *dispatcher;

/* The old server's answer to a line: "old\n". */
static int old_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[256];
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    if (n <= 0)
        return (int)n;
    return ss_request_send_all(req, "old\n", 4);
}
static const ss_handler old_handler = {SS_HANDLER_VERSION, NULL, old_handle, NULL};

/* The library's messages, for the failure reports. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[4096];

static void keep_log(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)level;
    (void)data;
    pthread_mutex_lock(&log_lock);
    size_t len = strlen(log_text);
    snprintf(log_text + len, sizeof log_text - len, "%s\n", message);
    pthread_mutex_unlock(&log_lock);
}

static bool log_has(const char *text)
{
    pthread_mutex_lock(&log_lock);
    bool has = strstr(log_text, text) != NULL;
    if (!has)
        fprintf(stderr, "log lacks \"%s\":\n%s", text, log_text);
    pthread_mutex_unlock(&log_lock);
    return has;
}

/* One client: a line out, the answer back ("" if none). */
static void ask(const char *url, char *answer, size_t size)
{
    int fd = ts_connect_url(url);
    ts_send(fd, "hi\n", 3);
    size_t got = 0;
    while (got + 1 < size) {
        ssize_t n = recv(fd, answer + got, size - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (answer[got - 1] == '\n')
            break;
    }
    answer[got] = '\0';
    close(fd);
}

typedef struct fixture {
    ss_server *srv;
    ts_runner runner;
    char url[256];
    char dir[256];
    pid_t successor;
} fixture;

static void start_old(fixture *f, const char *url)
{
    log_text[0] = '\0';
    f->successor = -1;
    assert_int_equal(ss_server_create(&f->srv, url, dispatcher, &old_handler, NULL), 0);
    ss_server_set_log(f->srv, keep_log);
    assert_int_equal(ss_server_bind(f->srv), 0);
    assert_int_equal(ss_server_activate(f->srv), 0);
    assert_true(ss_server_address(f->srv, f->url, sizeof f->url) > 0);
    ts_start(&f->runner, f->srv, 50);
    char answer[64];
    ask(f->url, answer, sizeof answer);
    assert_string_equal(answer, "old\n");
}

static void stop_old(fixture *f)
{
    ts_stop(&f->runner);
    ss_server_free(f->srv);
    f->srv = NULL;
}

static void end_successor(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
}

static int hand_over(fixture *f, const char *mode, int timeout_ms)
{
    char *argv[] = {(char *)HANDOVER_SUCCESSOR, (char *)mode, NULL};
    return ss_server_hand_over(f->srv, argv, timeout_ms, &f->successor);
}

/* The successor's answer names it and the socket's name. */
static void expect_successor(const fixture *f, const char *url, const char *name)
{
    char want[64], answer[64];
    snprintf(want, sizeof want, "new %ld %s\n", (long)f->successor, name);
    ask(url, answer, sizeof answer);
    assert_string_equal(answer, want);
}

/* Ready: every client after the call is the successor's, the old server
 * accepted none of them; its drain and free leave the socket working. */
static void handed_over_on(const char *url, const char *name)
{
    fixture f;
    start_old(&f, url);
    assert_int_equal(hand_over(&f, "serve", 20000), 0);
    assert_true(f.successor > 0);
    assert_true(log_has("no longer accepting"));
    for (int i = 0; i < 10; i++)
        expect_successor(&f, f.url, name);
    ss_stats st;
    ss_server_stats(f.srv, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(ss_server_hand_over(f.srv, (char *[]){"x", NULL}, 0, NULL), SS_ESTATE);
    ts_stop(&f.runner);
    assert_int_equal(ss_server_drain(f.srv, 5000), 0);
    ss_server_free(f.srv);
    for (int i = 0; i < 3; i++)
        expect_successor(&f, f.url, name); /* nothing was done to the socket */
    end_successor(f.successor);
}

static void test_tcp_handed_over(void **state)
{
    (void)state;
    handed_over_on("tcp://127.0.0.1:0", "tcp");
}

static void test_tcp6_handed_over(void **state)
{
    (void)state;
    handed_over_on("tcp://[::1]:0", "tcp");
}

/* The socket file stays: the successor serves on it. */
static void test_unix_handed_over(void **state)
{
    (void)state;
    char dir[200], url[256];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(url, sizeof url, "unix:%s/s", dir);
    handed_over_on(url, "unix");
    struct stat st;
    assert_int_equal(stat(url + 5, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    ts_rmdir(dir);
}

static void expect_still_serving(fixture *f)
{
    char answer[64];
    ask(f->url, answer, sizeof answer);
    assert_string_equal(answer, "old\n");
}

static void test_successor_dies(void **state)
{
    (void)state;
    fixture f;
    start_old(&f, "tcp://127.0.0.1:0");
    assert_int_equal(hand_over(&f, "exit3", 20000), SS_ESUCCESSOR);
    assert_true(log_has("exited with status 3"));
    assert_true(log_has("still serving"));
    assert_int_equal(kill(f.successor, 0), -1); /* reaped */
    expect_still_serving(&f);
    /* and a later hand-over still works */
    assert_int_equal(hand_over(&f, "serve", 20000), 0);
    expect_successor(&f, f.url, "tcp");
    stop_old(&f);
    end_successor(f.successor);
}

static void test_successor_not_found(void **state)
{
    (void)state;
    fixture f;
    start_old(&f, "tcp://127.0.0.1:0");
    char *missing[] = {"ss-no-such-program-here", NULL};
    assert_int_equal(ss_server_hand_over(f.srv, missing, 1000, &f.successor), -ENOENT);
    assert_int_equal(f.successor, -1);
    char *not_executable[] = {"/dev/null", NULL};
    assert_int_equal(ss_server_hand_over(f.srv, not_executable, 20000, NULL), -EACCES);
    assert_true(log_has("cannot execute /dev/null: Permission denied"));
    expect_still_serving(&f);
    stop_old(&f);
}

static void test_successor_never_ready(void **state)
{
    (void)state;
    fixture f;
    start_old(&f, "tcp://127.0.0.1:0");
    long long t0 = ts_now_ms();
    assert_int_equal(hand_over(&f, "silent", 300), -ETIMEDOUT);
    assert_true(ts_now_ms() - t0 < 10000);
    assert_true(log_has("not ready in time"));
    assert_int_equal(kill(f.successor, 0), -1); /* stopped and reaped */
    expect_still_serving(&f);
    stop_old(&f);
}

/* READY=1 from another process (the successor's child) does not count. */
static void test_ready_from_another_process(void **state)
{
    (void)state;
#ifdef __linux__
    fixture f;
    start_old(&f, "tcp://127.0.0.1:0");
    assert_int_equal(hand_over(&f, "spoof", 1000), -ETIMEDOUT);
    expect_still_serving(&f);
    stop_old(&f);
#else
    skip();
#endif
}

typedef struct slow_call {
    fixture *f;
    int rc;
} slow_call;

static void *slow_hand_over(void *arg)
{
    slow_call *call = arg;
    char *argv[] = {(char *)HANDOVER_SUCCESSOR, "silent", NULL};
    do /* the other thread's probes hold the hand-over for microseconds */
        call->rc = ss_server_hand_over(call->f->srv, argv, 3000, NULL);
    while (call->rc == -EALREADY);
    return NULL;
}

/* One at a time: a second call while one waits is -EALREADY. The probe
 * names a missing program, so it takes the hand-over only for a moment
 * when it comes first (-ENOENT). */
static void test_one_at_a_time(void **state)
{
    (void)state;
    fixture f;
    start_old(&f, "tcp://127.0.0.1:0");
    slow_call call = {&f, 0};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, slow_hand_over, &call), 0);
    int rc = 0;
    long long until = ts_now_ms() + 2500;
    while (rc != -EALREADY && ts_now_ms() < until) {
        char *argv[] = {"ss-no-such-program-here", NULL};
        rc = ss_server_hand_over(f.srv, argv, 3000, NULL);
        assert_true(rc == -ENOENT || rc == -EALREADY);
        /* a probe holds the hand-over for most of its call: probing back
         * to back, on a busy machine, let the slow call's retries find it
         * taken for seconds; a pause between probes lets one of them in */
        if (rc == -ENOENT)
            usleep(1000);
    }
    assert_int_equal(rc, -EALREADY);
    pthread_join(thread, NULL);
    if (call.rc != -ETIMEDOUT)
        log_has("(the slow call's report)");
    assert_int_equal(call.rc, -ETIMEDOUT);
    expect_still_serving(&f);
    stop_old(&f);
}

static void test_bad_calls(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", dispatcher, &old_handler, NULL),
                     0);
    char *argv[] = {(char *)HANDOVER_SUCCESSOR, NULL};
    assert_int_equal(ss_server_hand_over(srv, argv, 1000, NULL), SS_ESTATE); /* not active */
    assert_int_equal(ss_server_hand_over(srv, NULL, 1000, NULL), -EINVAL);
    assert_int_equal(ss_server_hand_over(NULL, argv, 1000, NULL), -EINVAL);
    char *empty[] = {NULL};
    assert_int_equal(ss_server_hand_over(srv, empty, 1000, NULL), -EINVAL);
    ss_server_free(srv);
    assert_string_equal(ss_strerror(SS_ESUCCESSOR),
                        "The successor process ended before it said it was ready");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_handed_over),
        cmocka_unit_test(test_tcp6_handed_over),
        cmocka_unit_test(test_unix_handed_over),
        cmocka_unit_test(test_successor_dies),
        cmocka_unit_test(test_successor_not_found),
        cmocka_unit_test(test_successor_never_ready),
        cmocka_unit_test(test_ready_from_another_process),
        cmocka_unit_test(test_one_at_a_time),
        cmocka_unit_test(test_bad_calls),
    };
    return TD_RUN_PER_DISPATCHER(tests, argc, argv, &dispatcher);
}
