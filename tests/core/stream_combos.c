/* The filter and PROXY protocol tests' servers (stream_combos.h). */
#include "stream_combos.h"

#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

const combo combos[8] = {
    {"tcp", "sync"},    {"unix", "sync"},    {"tcp", "threading"}, {"unix", "threading"},
    {"tcp", "forking"}, {"unix", "forking"}, {"tcp", "pool"},      {"unix", "pool"},
};

ss_server *combo_server(const combo *c, const ss_handler *h, char *dir, size_t size)
{
    char url[320];
    dir[0] = '\0';
    if (strcmp(c->scheme, "tcp") == 0) {
        snprintf(url, sizeof url, "tcp://127.0.0.1:0");
    } else {
        ts_mkdtemp(dir, size);
        snprintf(url, sizeof url, "unix://%s/s", dir);
    }
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, url, ss_dispatch_by_name(c->mode), h, NULL);
    if (rc < 0)
        fail_msg("%s/%s: %s", c->scheme, c->mode, ss_strerror(rc));
    ss_server_on_handle_error(srv, td_quiet_error);
    return srv;
}

void combo_start(ss_server *srv, ts_runner *runner)
{
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    ts_start(runner, srv, 50);
}

void combo_finish(ts_runner *runner, ss_server *srv, uint64_t closed, const char *dir)
{
    assert_true(td_wait_closed(srv, closed, 10000));
    assert_int_equal(ts_stop(runner), 0);
    ss_server_free(srv);
    if (dir[0] != '\0')
        ts_rmdir(dir);
}

static int gate_open(ss_filter_ctx *ctx, void *config)
{
    (void)config;
    char c;
    ssize_t n = ss_filter_recv_next(ctx, &c, 1);
    if (n < 0)
        return (int)n;
    return n == 1 && c == '!' ? 0 : -EPROTO;
}

const ss_filter combo_gate = {SS_FILTER_VERSION, "gate", gate_open, NULL, NULL, NULL, NULL, NULL};
