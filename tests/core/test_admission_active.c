/* Admission decides before a request exists: a client turned away by the
 * limits is never counted in ss_stats.active, which max_connections
 * bounds ("accepted and not yet ended: in a handler, waiting in the pool's
 * queue, or served by a child"). A sampler thread watches active while
 * clients are refused; it must never see more than the one held client.
 * Run for every dispatcher whose loop refuses while a handler is busy
 * (sync cannot: its loop is the handler) over TCP and Unix streams. */
#include "dispatch_support.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define REFUSED 100

typedef struct sampler {
    ss_server *srv;
    atomic_bool stop;
    atomic_uint_fast64_t max_active;
    pthread_t thread;
} sampler;

static void *sample(void *arg)
{
    sampler *s = arg;
    do { /* at least one sample, however late this thread first runs */
        ss_stats st;
        ss_server_stats(s->srv, &st);
        if (st.active > atomic_load(&s->max_active))
            atomic_store(&s->max_active, st.active);
    } while (!atomic_load(&s->stop));
    return NULL;
}

static ss_server *limited(const char *mode, const char *url, const char *reply)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_by_name(mode), &td_hold, NULL), 0);
    assert_int_equal(ss_server_set_workers(srv, 4), 0);
    assert_int_equal(ss_server_set_max_children(srv, 4), 0);
    assert_int_equal(ss_server_set_max_connections(srv, 1), 0);
    assert_int_equal(ss_server_set_overload_reply(srv, reply), 0);
    ss_server_set_request_timeout(srv, 10000); /* a held client left by a failed test ends */
    ss_server_on_handle_error(srv, td_quiet_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

static void refuse_many(ss_server *srv)
{
    for (int i = 0; i < REFUSED; i++) {
        int fd = ts_connect(srv);
        td_expect(fd, "busy\n");
        assert_true(ts_sees_eof(fd));
        close(fd);
    }
}

static void refused_never_active(const char *mode, const char *url)
{
    ss_server *srv = limited(mode, url, "busy\n");
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int held = ts_connect(srv);
    td_round_trip(held, "mine\n");
    sampler s = {.srv = srv};
    assert_int_equal(pthread_create(&s.thread, NULL, sample, &s), 0);
    refuse_many(srv);
    atomic_store(&s.stop, true);
    pthread_join(s.thread, NULL);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.rejected_limit, REFUSED);
    assert_int_equal(st.accepted, REFUSED + 1);
    assert_int_equal(atomic_load(&s.max_active), 1); /* the held client alone */
    td_release(held);
    assert_true(td_wait_closed(srv, REFUSED + 1, 5000)); /* each refused one closed, once */
    assert_true(td_wait_active(srv, 0, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
}

static void over_tcp(void **state)
{
    refused_never_active(*state, "tcp://127.0.0.1:0");
}

static void over_unix(void **state)
{
    char dir[256], url[320];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(url, sizeof url, "unix:%s/s", dir);
    refused_never_active(*state, url);
    ts_rmdir(dir);
}

#define FOR_MODES(fn)                                                                              \
    cmocka_unit_test_prestate(fn, "threading"), cmocka_unit_test_prestate(fn, "forking"),          \
        cmocka_unit_test_prestate(fn, "pool")

int main(void)
{
    const struct CMUnitTest tests[] = {FOR_MODES(over_tcp), FOR_MODES(over_unix)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
