/* Handler I/O: complete sends under signal storms. On every dispatcher
 * and transport elsewhere: no SIGPIPE from dead peers and half-closed
 * peers in tests/io/test_peer_ends.c, request timeouts in both directions
 * in tests/core/test_request_timeout.c. */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define BIG (16u << 20)

/* What a handler's I/O call returned, and how long it took. */
typedef struct outcome {
    atomic_int rc;
    atomic_bool done;
    atomic_llong took_ms;
} outcome;

static void record(outcome *o, int rc, long long start)
{
    atomic_store(&o->took_ms, ts_now_ms() - start);
    atomic_store(&o->rc, rc);
    atomic_store(&o->done, true);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 31 + (i >> 12));
}

static ss_server *serve(int (*handle)(ss_request *, void *), outcome *o)
{
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, o), 0);
    ss_server_on_handle_error(srv, NULL); /* default report is fine here */
    return srv;
}

/* ---- 16 MiB under a storm of signals ---- */

static int send_big(ss_request *req, void *data)
{
    unsigned char *buf = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i);
    long long start = ts_now_ms();
    int rc = ss_request_send_all(req, buf, BIG);
    record(data, rc, start);
    free(buf);
    return rc;
}

static void on_usr2(int sig)
{
    (void)sig;
}

typedef struct storm {
    pthread_t target;
    atomic_bool stop;
    atomic_int sent;
} storm;

static void *signal_storm(void *arg)
{
    storm *s = arg;
    while (!atomic_load(&s->stop)) {
        pthread_kill(s->target, SIGUSR2);
        atomic_fetch_add(&s->sent, 1);
        usleep(200);
    }
    return NULL;
}

static void test_big_send_survives_signal_storm(void **state)
{
    (void)state;
    struct sigaction sa = {.sa_handler = on_usr2}, old; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, &old);
    outcome o = {0};
    ss_server *srv = serve(send_big, &o);
    ts_runner runner;
    ts_start(&runner, srv, 500);
    storm s = {.target = runner.thread};
    pthread_t storm_thread;
    pthread_create(&storm_thread, NULL, signal_storm, &s);

    int fd = ts_connect(srv);
    unsigned char *got = malloc(BIG);
    size_t total = 0;
    while (total < BIG) { /* read in small steps so the sender blocks often */
        size_t chunk = BIG - total < 65536 ? BIG - total : 65536;
        size_t n = ts_recv_exact(fd, got + total, chunk);
        if (n == 0)
            break;
        total += n;
    }
    atomic_store(&s.stop, true);
    pthread_join(storm_thread, NULL);
    assert_int_equal(total, BIG);
    for (size_t i = 0; i < BIG; i += 4093)
        assert_int_equal(got[i], pattern(i));
    assert_true(ts_sees_eof(fd));
    assert_int_equal(ts_stop(&runner), 0);
    assert_int_equal(atomic_load(&o.rc), 0);
    assert_true(atomic_load(&s.sent) > 10);
    free(got);
    close(fd);
    ss_server_free(srv);
    sigaction(SIGUSR2, &old, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_big_send_survives_signal_storm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
