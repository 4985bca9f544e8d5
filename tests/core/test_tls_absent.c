/* A library built without TLS (CMake SS_TLS=OFF, or AUTO without
 * OpenSSL): a tls:// URL is refused with SS_ENOTSUPPORTED and a line on
 * stderr that says why, every TLS call says SS_ENOTSUPPORTED or nothing,
 * and plain servers are unchanged. Built only in such a build. */
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
#include <unistd.h>
#include <cmocka.h>

static int handle_nothing(ss_request *req, void *data)
{
    (void)data;
    return ss_request_tls(req) || ss_request_tls_version(req) != NULL ? -EPROTO : 0;
}

static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle_nothing};

/* Runs create with stderr captured into buf. */
static int create_capturing(const char *url, ss_server **srv, char *buf, size_t size)
{
    char path[] = "/tmp/ss-tls-absent-XXXXXX";
    int tmp = mkstemp(path);
    assert_true(tmp >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(tmp, 2);
    int rc = ss_server_create(srv, url, NULL, &h, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(tmp, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    close(tmp);
    return rc;
}

static void tls_url_is_refused_with_a_reason(void **state)
{
    (void)state;
    char said[1024];
    ss_server *srv = NULL;
    assert_false(ss_tls_available());
    assert_int_equal(create_capturing("tls://127.0.0.1:0", &srv, said, sizeof said),
                     SS_ENOTSUPPORTED);
    assert_null(srv);
    assert_non_null(strstr(said, "built without TLS"));
}

static void tls_calls_say_not_supported(void **state)
{
    (void)state;
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &h, NULL), 0);
    ss_tls_options o = {.cert_file = "server.pem"};
    assert_int_equal(ss_server_set_tls(srv, &o), SS_ENOTSUPPORTED);
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), SS_ENOTSUPPORTED);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    int fd = ts_connect(srv);
    assert_int_equal(ss_server_handle_request(srv), 0);
    close(fd);
    ss_stats st;
    ss_server_stats(srv, &st);
    assert_int_equal(st.handled, 1); /* the handler saw no TLS */
    assert_int_equal(st.tls_handshakes, 0);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tls_url_is_refused_with_a_reason),
        cmocka_unit_test(tls_calls_say_not_supported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
