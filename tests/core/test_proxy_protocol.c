/* The PROXY protocol filter (ss_server_set_proxy_protocol) on every
 * dispatcher over TCP and Unix stream listeners: the handler sees the real
 * client, the proxy's address and the TLVs; bytes sent with the header
 * reach the handler; every kind of bad header, an untrusted sender and a
 * silent client are refused and counted, never served, with descriptors
 * back to where they were; the per-client limit and verify_request see
 * the real client. The handler reports what it sees on the socket, so the
 * checks hold in a forked child too. */
#include "dispatch_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "stream_combos.h" /* after cmocka: its EACH uses it */

/* ---- the handler: "client|proxy|tlv|line" ---- */

static void describe_proxy(const ss_request *req, char *buf, size_t size)
{
    socklen_t len = 0;
    const struct sockaddr *sa = ss_request_proxy_address(req, &len);
    if (sa == NULL || len == 0)
        snprintf(buf, size, "none");
    else if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)size);
    else
        snprintf(buf, size, sa->sa_family == AF_UNIX ? "unix" : "other");
}

static int who(ss_request *req, void *data)
{
    (void)data;
    char line[128], proxy[64], tlv[64] = "-", out[512];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -EPROTO;
    line[n] = '\0';
    describe_proxy(req, proxy, sizeof proxy);
    size_t tlv_len = 0;
    const char *value = ss_request_proxy_tlv(req, 0xE0, &tlv_len);
    if (value != NULL && tlv_len < sizeof tlv)
        snprintf(tlv, sizeof tlv, "%.*s", (int)tlv_len, value);
    int len =
        snprintf(out, sizeof out, "%s|%s|%s|%s", ss_request_client_name(req), proxy, tlv, line);
    int rc = ss_request_send_all(req, out, (size_t)len);
    if (rc < 0)
        return rc;
    /* held until "bye\n": not the end of the stream, which a forked
     * child's copy of the test's own client socket would keep from coming */
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0 &&
           !(n == 4 && memcmp(line, "bye\n", 4) == 0))
        ;
    return 0;
}

static const ss_handler who_handler = {SS_HANDLER_VERSION, NULL, who, NULL};

/* ---- headers ---- */

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: command (0x20 LOCAL, 0x21 PROXY), family byte, `body` of
 * `body_len` bytes, declared length `declared` (the real one if < 0). */
static size_t v2(unsigned char *out, unsigned char cmd, unsigned char fam, const void *body,
                 size_t body_len, int declared)
{
    size_t len = declared < 0 ? body_len : (size_t)declared;
    memcpy(out, v2_sig, sizeof v2_sig);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    memcpy(out + 16, body, body_len);
    return 16 + body_len;
}

/* TCP over IPv4, 192.0.2.9:5555 -> 198.51.100.1:80, with TLV 0xE0 "abc"
 * when tlv is set. */
static size_t v2_ipv4(unsigned char *out, unsigned char cmd, bool tlv)
{
    unsigned char body[12 + 6] = {192,  0, 2,  9,    198, 51, 100, 1,   0x15,
                                  0xB3, 0, 80, 0xE0, 0,   3,  'a', 'b', 'c'};
    return v2(out, cmd, 0x11, body, tlv ? sizeof body : 12, -1);
}

/* ---- servers ---- */

static bool is_tcp(const combo *c)
{
    return strcmp(c->scheme, "tcp") == 0;
}

static ss_server *create(const combo *c, char *dir, size_t size)
{
    return combo_server(c, &who_handler, dir, size);
}

static void start(ss_server *srv, const ss_proxy_options *opts, ts_runner *runner)
{
    assert_int_equal(ss_server_set_proxy_protocol(srv, opts), 0);
    combo_start(srv, runner);
}

/* Sends the header and "hello\n" in one write, returns the reply line. */
static void ask(const ss_server *srv, const void *header, size_t len, char *reply, size_t size)
{
    unsigned char msg[600];
    memcpy(msg, header, len);
    memcpy(msg + len, "hello\n", 6);
    int fd = ts_connect(srv);
    ts_send(fd, msg, len + 6);
    size_t got = 0;
    while (got < size - 1 && (got == 0 || reply[got - 1] != '\n')) {
        ssize_t n = recv(fd, reply + got, 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    reply[got] = '\0';
    if (got > 0)
        send(fd, "bye\n", 4, MSG_NOSIGNAL);
    close(fd);
}

static const char *proxy_name(const combo *c)
{
    return is_tcp(c) ? "127.0.0.1" : "unix";
}

/* ---- tests ---- */

static void real_client_v1_and_v2(void **state)
{
    const combo *c = *state;
    char dir[256], reply[512], want[512];
    ss_server *srv = create(c, dir, sizeof dir);
    ts_runner runner;
    start(srv, NULL, &runner);
    const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\n";
    ask(srv, v1, strlen(v1), reply, sizeof reply);
    snprintf(want, sizeof want, "192.0.2.7:40000|%s|-|hello\n", proxy_name(c));
    assert_string_equal(reply, want);

    const char *v1_6 = "PROXY TCP6 2001:db8::1 2001:db8::2 443 8443\r\n";
    ask(srv, v1_6, strlen(v1_6), reply, sizeof reply);
    snprintf(want, sizeof want, "[2001:db8::1]:443|%s|-|hello\n", proxy_name(c));
    assert_string_equal(reply, want);

    unsigned char h[64];
    size_t n = v2_ipv4(h, 0x21, true);
    ask(srv, h, n, reply, sizeof reply);
    snprintf(want, sizeof want, "192.0.2.9:5555|%s|abc|hello\n", proxy_name(c));
    assert_string_equal(reply, want);
    combo_finish(&runner, srv, 3, dir);
}

/* LOCAL (a health check: HAProxy 2.6's checks send LOCAL, family UNSPEC,
 * length 0), also with TLVs after it, and UNKNOWN: the connection's own
 * peer. (LOCAL with addresses is refused: bad_headers.) */
static void local_keeps_own_peer(void **state)
{
    const combo *c = *state;
    char dir[256], reply[512], want[512];
    ss_server *srv = create(c, dir, sizeof dir);
    ts_runner runner;
    start(srv, NULL, &runner);
    unsigned char h[64];
    size_t n = v2(h, 0x20, 0x00, "", 0, -1);
    ask(srv, h, n, reply, sizeof reply);
    snprintf(want, sizeof want, "|%s|-|hello\n", proxy_name(c));
    assert_non_null(strstr(reply, want));
    assert_true(is_tcp(c) ? strncmp(reply, "127.0.0.1:", 10) == 0 : reply[0] == '|');
    unsigned char tlv[] = {0xE0, 0, 3, 'a', 'b', 'c'};
    n = v2(h, 0x20, 0x00, tlv, sizeof tlv, -1);
    ask(srv, h, n, reply, sizeof reply);
    assert_true(is_tcp(c) ? strncmp(reply, "127.0.0.1:", 10) == 0 : reply[0] == '|');
    assert_non_null(strstr(reply, "|hello\n"));
    ask(srv, "PROXY UNKNOWN\r\n", 15, reply, sizeof reply);
    assert_non_null(strstr(reply, want));
    combo_finish(&runner, srv, 3, dir);
}

typedef struct bad_header {
    const char *what;
    unsigned char bytes[300];
    size_t len;
} bad_header;

static size_t bad_headers(bad_header *out)
{
    size_t k = 0;
    unsigned char body[12] = {192, 0, 2, 9, 198, 51, 100, 1, 0x15, 0xB3, 0, 80};
    out[k].what = "truncated v1";
    out[k].len = (size_t)sprintf((char *)out[k].bytes, "PROXY TCP4 192.0.2.7 198.5");
    k++;
    out[k].what = "oversized v1";
    out[k].len = (size_t)sprintf((char *)out[k].bytes, "PROXY TCP4 %0120d", 7);
    k++;
    out[k].what = "wrong signature";
    out[k].len = (size_t)sprintf((char *)out[k].bytes, "GET / HTTP/1.0\r\n\r\n");
    k++;
    out[k].what = "v2 length beyond the data";
    out[k].len = v2(out[k].bytes, 0x21, 0x11, body, sizeof body, 200);
    k++;
    out[k].what = "LOCAL with addresses";
    out[k].len = v2(out[k].bytes, 0x20, 0x11, body, sizeof body, -1);
    k++;
    out[k].what = "unknown family";
    out[k].len = v2(out[k].bytes, 0x21, 0x41, body, sizeof body, -1);
    k++;
    out[k].what = "truncated v2 signature";
    out[k].len = 7;
    memcpy(out[k].bytes, v2_sig, 7);
    k++;
    return k;
}

/* Each is sent, then the client's side of the stream ends: the server
 * closes without a byte. */
static void bad_headers_refused(void **state)
{
    const combo *c = *state;
    char dir[256];
    int fds = ts_count_fds();
    ss_server *srv = create(c, dir, sizeof dir);
    ts_runner runner;
    start(srv, NULL, &runner);
    bad_header bad[8];
    size_t count = bad_headers(bad);
    for (size_t i = 0; i < count; i++) {
        int fd = ts_connect(srv);
        ts_send(fd, bad[i].bytes, bad[i].len);
        shutdown(fd, SHUT_WR);
        char byte;
        ssize_t n = recv(fd, &byte, 1, 0);
        if (n != 0)
            fail_msg("%s: recv returned %zd, not the end of the stream", bad[i].what, n);
        close(fd);
        assert_true(td_wait_closed(srv, i + 1, 10000));
        if (td_stats(srv).proxy_invalid != i + 1)
            fail_msg("%s: not counted as invalid", bad[i].what);
    }
    ss_stats st = td_stats(srv);
    assert_int_equal(st.filter_refused, count);
    assert_int_equal(st.handled, 0);
    assert_int_equal(st.handler_errors, 0);
    assert_int_equal(st.proxy_untrusted + st.proxy_timeouts, 0);
    combo_finish(&runner, srv, count, dir);
    assert_true(td_wait_fds(fds, 5000));
}

static void untrusted_refused(void **state)
{
    const combo *c = *state;
    char dir[256], reply[512];
    ss_server *srv = create(c, dir, sizeof dir);
    static const char *const only_doc_net[] = {"192.0.2.0/24", "2001:db8::/32", NULL};
    ss_proxy_options opts = {.trusted = only_doc_net};
    ts_runner runner;
    start(srv, &opts, &runner);
    const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\n";
    ask(srv, v1, strlen(v1), reply, sizeof reply);
    ss_stats st;
    if (is_tcp(c)) { /* 127.0.0.1 is not trusted */
        assert_string_equal(reply, "");
        assert_true(td_wait_closed(srv, 1, 10000));
        st = td_stats(srv);
        assert_int_equal(st.proxy_untrusted, 1);
        assert_int_equal(st.filter_refused, 1);
        assert_int_equal(st.handled, 0);
    } else { /* a Unix listener trusts its peers: the socket file decides */
        assert_string_equal(reply, "192.0.2.7:40000|unix|-|hello\n");
    }
    combo_finish(&runner, srv, 1, dir);
}

static void silent_client_times_out(void **state)
{
    const combo *c = *state;
    char dir[256];
    ss_server *srv = create(c, dir, sizeof dir);
    ss_proxy_options opts = {.header_timeout_ms = 200};
    ts_runner runner;
    start(srv, &opts, &runner);
    long long t0 = ts_now_ms();
    int fd = ts_connect(srv);
    ts_send(fd, "PROXY TCP4 ", 11); /* and then nothing */
    assert_true(ts_sees_eof(fd));
    assert_true(ts_now_ms() - t0 >= 150);
    close(fd);
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.proxy_timeouts, 1);
    assert_int_equal(st.filter_refused, 1);
    assert_int_equal(st.request_timeouts, 0);
    assert_int_equal(st.handled + st.handler_errors, 0);
    combo_finish(&runner, srv, 1, dir);
}

/* Two clients behind one proxy at once, a third the same as the first:
 * only the third is over max_per_client 1. */
static void per_client_counts_real_client(void **state)
{
    const combo *c = *state;
    char dir[256], reply[512];
    ss_server *srv = create(c, dir, sizeof dir);
    assert_int_equal(ss_server_set_max_per_client(srv, 1), 0);
    ts_runner runner;
    start(srv, NULL, &runner);
    int held[2];
    const char *first = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\nhello\n";
    const char *second = "PROXY TCP4 192.0.2.8 198.51.100.1 40000 80\r\nhello\n";
    held[0] = ts_connect(srv); /* both connected before either says who it is */
    held[1] = ts_connect(srv);
    assert_true(td_wait_accepted(srv, 2, 5000));
    ts_send(held[0], first, strlen(first));
    td_expect(held[0], "192.0.2.7:40000");
    ts_send(held[1], second, strlen(second));
    td_expect(held[1], "192.0.2.8:40000");
    const char *third = "PROXY TCP4 192.0.2.7 198.51.100.1 40001 80\r\n";
    ask(srv, third, strlen(third), reply, sizeof reply);
    assert_string_equal(reply, "");
    assert_true(td_wait_closed(srv, 1, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.rejected_per_client, 1);
    assert_int_equal(st.rejected, 1);
    td_release(held[0]);
    td_release(held[1]);
    combo_finish(&runner, srv, 3, dir);
}

static bool refuse_doc_client(ss_server *srv, ss_request *req, void *data)
{
    (void)srv;
    (void)data;
    return strncmp(ss_request_client_name(req), "192.0.2.66:", 11) != 0;
}

static void verify_sees_real_client(void **state)
{
    const combo *c = *state;
    char dir[256], reply[512];
    ss_server *srv = create(c, dir, sizeof dir);
    ss_server_on_verify_request(srv, refuse_doc_client);
    ts_runner runner;
    start(srv, NULL, &runner);
    const char *bad = "PROXY TCP4 192.0.2.66 198.51.100.1 40000 80\r\n";
    ask(srv, bad, strlen(bad), reply, sizeof reply);
    assert_string_equal(reply, "");
    const char *good = "PROXY TCP4 192.0.2.67 198.51.100.1 40000 80\r\n";
    ask(srv, good, strlen(good), reply, sizeof reply);
    assert_int_equal(strncmp(reply, "192.0.2.67:40000|", 17), 0);
    assert_true(td_wait_closed(srv, 2, 10000));
    ss_stats st = td_stats(srv);
    assert_int_equal(st.rejected_verify, 1);
    assert_int_equal(st.filter_refused, 0);
    combo_finish(&runner, srv, 2, dir);
}

/* Only v1 accepted: a v2 header is refused. */
static void versions_accepted(void **state)
{
    (void)state;
    char dir[256], reply[512];
    static const combo tcp_sync = {"tcp", "sync"};
    ss_server *srv = create(&tcp_sync, dir, sizeof dir);
    ss_proxy_options opts = {.versions = SS_PROXY_V1};
    ts_runner runner;
    start(srv, &opts, &runner);
    unsigned char h[64];
    size_t n = v2_ipv4(h, 0x21, false);
    ask(srv, h, n, reply, sizeof reply);
    assert_string_equal(reply, "");
    assert_true(td_wait_closed(srv, 1, 10000));
    assert_int_equal(td_stats(srv).proxy_invalid, 1);
    combo_finish(&runner, srv, 1, dir);
}

static void proxy_below_earlier_filters(void **state)
{
    (void)state;
    char dir[256], reply[512];
    static const combo tcp_threading = {"tcp", "threading"};
    ss_server *srv = create(&tcp_threading, dir, sizeof dir);
    assert_int_equal(ss_server_add_filter(srv, &combo_gate, NULL), 0);
    ts_runner runner;
    start(srv, NULL, &runner);
    const char *v1 = "PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\n!";
    ask(srv, v1, strlen(v1), reply, sizeof reply);
    assert_string_equal(reply, "192.0.2.7:40000|127.0.0.1|-|hello\n");
    combo_finish(&runner, srv, 1, dir);
}

static void option_errors(void **state)
{
    (void)state;
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &who_handler, NULL);
    if (rc == 0) {
        assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), SS_ENOTSTREAM);
        ss_server_free(srv);
    }
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    static const char *const bad_cidrs[][2] = {
        {"10.0.0.0/33", NULL}, {"::1/129", NULL},  {"10.0.0/8", NULL},
        {"10.0.0.0/", NULL},   {"nonsense", NULL}, {"", NULL},
    };
    for (size_t i = 0; i < sizeof bad_cidrs / sizeof bad_cidrs[0]; i++) {
        ss_proxy_options opts = {.trusted = bad_cidrs[i]};
        assert_int_equal(ss_server_set_proxy_protocol(srv, &opts), -EINVAL);
    }
    ss_proxy_options negative = {.header_timeout_ms = -1}, v3 = {.versions = 4};
    assert_int_equal(ss_server_set_proxy_protocol(srv, &negative), -EINVAL);
    assert_int_equal(ss_server_set_proxy_protocol(srv, &v3), -EINVAL);
    assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), 0);
    assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), -EEXIST);
    ss_server_free(srv);
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), SS_ESTATE);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        EACH(real_client_v1_and_v2),
        EACH(local_keeps_own_peer),
        EACH(bad_headers_refused),
        EACH(untrusted_refused),
        EACH(silent_client_times_out),
        EACH(verify_sees_real_client),
        /* the concurrent dispatchers (sync serves one client at a time);
         * forking counts its children's real clients in their shared page */
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[2]),
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[3]),
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[4]),
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[5]),
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[6]),
        cmocka_unit_test_prestate(per_client_counts_real_client, (void *)&combos[7]),
        cmocka_unit_test(versions_accepted),
        cmocka_unit_test(proxy_below_earlier_filters),
        cmocka_unit_test(option_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
