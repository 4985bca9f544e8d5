/* The examples behind a load balancer, driven as a user drives them:
 * --proxy-protocol and --proxy-from (examples/cli.c). A raw socket plays
 * the proxy: it sends a PROXY v1 or v2 header (HAProxy's
 * doc/proxy-protocol.txt) and a request; the reply must come, and the log
 * must name the client the header gives, with the proxy after "via PROXY
 * from". A connection without a header, or from a source not trusted, gets
 * no reply, and the server's last line at its stop counts it. */
#define _GNU_SOURCE
#include "example_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

typedef struct example {
    const char *path, *name;
    const char *ask, *answer; /* one request and its answer */
    const char *begins;       /* how the log says a client came: " connected", " joined" */
} example;

static const example examples[] = {
    {ECHO_SERVER, "echo_server", "ping\n", "ping\n", " connected"},
    {UPPERCASE_SERVER, "uppercase_server", "ping\n", "PING\n", " connected"},
    {LINE_SERVER, "line_server", "UPPER ping\n", "OK PING\n", " connected"},
    {ROBUST_SERVER, "robust_server", "ping\n", "PING\n", " connected"},
    /* the chat names the sender in what it sends: the real client */
    {CHAT_SERVER, "chat_server", "ping\n", "192.0.2.1:56324: ping\n", " joined"},
};
#define N_EXAMPLES (sizeof examples / sizeof examples[0])

/* "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n": spec 2.1. */
static const char v1_header[] = "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\n";
static const char v1_client[] = "192.0.2.1:56324";

/* A v2 PROXY header (spec 2.2) from [2001:db8::7]:4321 to [2001:db8::1]:443;
 * its length in *len. */
static void v2_header(unsigned char *out, size_t *len)
{
    static const unsigned char signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    memcpy(out, signature, 12);
    out[12] = 0x21; /* version 2, PROXY */
    out[13] = 0x21; /* AF_INET6, STREAM */
    out[14] = 0;
    out[15] = 36; /* two addresses, two ports */
    inet_pton(AF_INET6, "2001:db8::7", out + 16);
    inet_pton(AF_INET6, "2001:db8::1", out + 32);
    out[48] = 4321 >> 8;
    out[49] = 4321 & 0xff;
    out[50] = 443 >> 8;
    out[51] = 443 & 0xff;
    *len = 52;
}
static const char v2_client[] = "[2001:db8::7]:4321";

/* "127.0.0.1:PORT": fd's own address, what the server sees as the proxy. */
static void local_name(int fd, char *out, size_t size)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    snprintf(out, size, "127.0.0.1:%u", ntohs(me.sin_port));
}

/* Reads the answer to ex->ask and compares it. */
static void expect_answer(const example *ex, int fd)
{
    char got[256];
    read_answer(fd, got, sizeof got);
    if (strcmp(got, ex->answer) != 0)
        fail_msg("%s: asked '%s', got '%s'", ex->name, ex->ask, got);
}

/* A connection that begins with `header`, then one exchange; the log must
 * name `client` via the proxy, this socket. */
static void through_proxy(child *c, const example *ex, const char *url, const void *header,
                          size_t header_len, const char *client)
{
    int fd = ts_connect_url(url);
    ts_send(fd, header, header_len);
    ts_send(fd, ex->ask, strlen(ex->ask));
    expect_answer(ex, fd);
    char proxy[64], line[160];
    local_name(fd, proxy, sizeof proxy);
    close(fd);
    if (strcmp(ex->begins, " connected") == 0)
        snprintf(line, sizeof line, "%s connected via PROXY from %s", client, proxy);
    else
        snprintf(line, sizeof line, "%s%s", client, ex->begins);
    if (!ex_log_until(c, line, 5000))
        fail_msg("%s: no '%s' in the log:\n%s", ex->name, line, c->log);
}

/* A client that sends no header gets no reply: only the end. */
static void refused(const char *url, const char *what)
{
    int fd = ts_connect_url(url);
    ts_send(fd, what, strlen(what));
    char got[64];
    ssize_t n = recv(fd, got, sizeof got, 0);
    if (n > 0)
        fail_msg("answered without a valid PROXY header: '%.*s'", (int)n, got);
    close(fd);
}

/* SIGTERM; exit 0; the last line counts the refusals. */
static void stop_and_count(child *c, const char *name, int invalid, int untrusted)
{
    kill(c->pid, SIGTERM);
    assert_int_equal(reap(c), 0);
    char want[256];
    snprintf(want, sizeof want,
             "%s: PROXY protocol: %d connections refused: %d without a valid header, %d from "
             "untrusted sources, 0 header timeouts",
             name, invalid + untrusted, invalid, untrusted);
    ex_log_has(c, want);
    ex_log_lacks(c, "error");
}

static void serve_behind_proxy(const example *ex, const char *mode)
{
    const char *argv[] = {ex->path,           "--listen", "tcp://127.0.0.1:0", "--mode", mode,
                          "--proxy-protocol", NULL};
    child c;
    char url[128];
    start_server_argv(&c, argv, url, sizeof url);
    through_proxy(&c, ex, url, v1_header, strlen(v1_header), v1_client);
    unsigned char v2[64];
    size_t v2_len;
    v2_header(v2, &v2_len);
    if (strcmp(ex->name, "chat_server") != 0) /* the chat's answer names the v1 client */
        through_proxy(&c, ex, url, v2, v2_len, v2_client);
    refused(url, ex->ask);
    stop_and_count(&c, ex->name, 1, 0);
}

/* Every example that takes a stream --listen, over v1 and v2. */
static void test_every_example_names_the_real_client(void **state)
{
    (void)state;
    for (size_t e = 0; e < N_EXAMPLES; e++)
        serve_behind_proxy(&examples[e], "threading");
}

/* Where the header is read: the handler's thread, a pool fiber, a forked
 * child, the sync loop; each counts its refusals where the stop sees them. */
static void test_every_mode(void **state)
{
    (void)state;
    const char *const *modes = ts_dispatchers;
    for (size_t m = 0; m < TS_DISPATCHERS; m++)
        serve_behind_proxy(&examples[1], modes[m]);
}

/* --proxy-from: only the sources it names may send a header; it repeats. */
static void test_proxy_from_decides_who_may_send_a_header(void **state)
{
    (void)state;
    const example *ex = &examples[1];
    const char *distrust[] = {ex->path,           "--listen",     "tcp://127.0.0.1:0",
                              "--proxy-protocol", "--proxy-from", "10.0.0.0/8",
                              "--proxy-from",     "192.0.2.7",    NULL};
    child c;
    char url[128];
    start_server_argv(&c, distrust, url, sizeof url);
    refused(url, v1_header); /* a valid header, from 127.0.0.1 */
    stop_and_count(&c, ex->name, 0, 1);

    const char *trust[] = {ex->path,           "--listen",     "tcp://127.0.0.1:0",
                           "--proxy-protocol", "--proxy-from", "10.0.0.0/8",
                           "--proxy-from",     "127.0.0.1/32", NULL};
    start_server_argv(&c, trust, url, sizeof url);
    through_proxy(&c, ex, url, v1_header, strlen(v1_header), v1_client);
    stop_and_count(&c, ex->name, 0, 0);
}

/* HAProxy's unix@ servers: a Unix stream listener reads the header too;
 * the proxy is an unnamed peer. */
static void test_unix_listener(void **state)
{
    (void)state;
    const example *ex = &examples[1];
    char dir[256], listen[300], url[400];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(listen, sizeof listen, "unix:%s/p.sock", dir);
    const char *argv[] = {ex->path, "--listen", listen, "--proxy-protocol", NULL};
    child c;
    start_server_argv(&c, argv, url, sizeof url);
    int fd = ts_connect_url(url);
    ts_send(fd, v1_header, strlen(v1_header));
    ts_send(fd, ex->ask, strlen(ex->ask));
    expect_answer(ex, fd);
    close(fd);
    if (!ex_log_until(&c, "192.0.2.1:56324 connected via PROXY from (unnamed peer)", 5000))
        fail_msg("no client named in the log:\n%s", c.log);
    refused(url, ex->ask);
    stop_and_count(&c, ex->name, 1, 0);
    ts_rmdir(dir);
}

/* What the options refuse, each with what to do; --help lists them. */
static void test_option_errors_and_help(void **state)
{
    (void)state;
    const char *lone_from[] = {UPPERCASE_SERVER, "--proxy-from", "127.0.0.1", NULL};
    expect_refusal(lone_from, 2, "--proxy-from needs --proxy-protocol");
    const char *bad_cidr[] = {
        UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", "--proxy-protocol", "--proxy-from",
        "not-an-address", NULL};
    expect_refusal(bad_cidr, 2, "--proxy-from not-an-address: not an IPv4 or IPv6 address");
    const char *host_bits[] = {UPPERCASE_SERVER, "--proxy-protocol", "--proxy-from", "10.0.0.1/8",
                               NULL};
    expect_refusal(host_bits, 2, "address bits are set past the prefix length");
    expect_refusal(host_bits, 2, "\nusage: uppercase_server"); /* like other bad arguments */
    const char *leading_zero[] = {UPPERCASE_SERVER, "--proxy-protocol", "--proxy-from",
                                  "10.0.0.0/08", NULL};
    expect_refusal(leading_zero, 2, "without leading zeros");
    const char *datagram[] = {UPPERCASE_SERVER, "--listen", "udp://127.0.0.1:0", "--proxy-protocol",
                              NULL};
    expect_refusal(datagram, 2, "--proxy-protocol needs a tcp:// or unix: listener");
    const char *help[] = {UPPERCASE_SERVER, "--help", NULL};
    child c;
    spawn(&c, help);
    char out[4096];
    read_all(c.out, out, sizeof out, "see docs/production.md");
    assert_int_equal(reap(&c), 0);
    assert_non_null(strstr(out, "--proxy-protocol"));
    assert_non_null(strstr(out, "--proxy-from CIDR"));
    assert_non_null(strstr(out, "docs/deploy.md"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_example_names_the_real_client, end_leftovers),
        cmocka_unit_test_teardown(test_every_mode, end_leftovers),
        cmocka_unit_test_teardown(test_proxy_from_decides_who_may_send_a_header, end_leftovers),
        cmocka_unit_test_teardown(test_unix_listener, end_leftovers),
        cmocka_unit_test_teardown(test_option_errors_and_help, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
