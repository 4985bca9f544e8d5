/* TLS (ss_server_set_tls, tls:// URLs) on every dispatcher over TCP and a
 * Unix stream socket, with real clients: Python's ssl module
 * (tests/core/tls_client.py) and OpenSSL's `openssl s_client`. TLS 1.2
 * and 1.3; client certificates accepted and refused; ALPN; SNI; a
 * certificate reload on the running server; a plain-text client,
 * garbage, a truncated ClientHello, a stalled or silent handshake, a
 * peer that stops in the middle of a record or resets during a reply:
 * each refused (or failed) and counted, the server serving on, its
 * descriptors back where they were; close_notify to a client a drain
 * closes as idle. Also the request timeout and a
 * parked fiber under TLS, one thread reading while another writes, and
 * the API's errors. The certificates are the test support's ts_certs.
 * The handler reports what it sees on the socket, so the checks hold in a
 * forked child too. */
#include "dispatch_support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/tcp.h> /* struct tcp_info with tcpi_data_segs_out, TCP_INFO */
#endif
#include <cmocka.h>

#include "stream_combos.h" /* after cmocka: its EACH uses it */

#ifndef TLS_CLIENT_PY
#error "TLS_CLIENT_PY: the path of tests/core/tls_client.py (tests/core/CMakeLists.txt)"
#endif

static void path_in(char *out, size_t size, const char *dir, const char *file)
{
    snprintf(out, size, "%s/%s", dir, file);
}

/* ---- running a client ---- */

/* Reads fd into out (NUL-terminated), after the `got` bytes it holds,
 * until EOF, a full buffer, deadline (ts_now_ms) or, when want is not
 * NULL, until out holds want. Returns the length of out. */
static size_t read_until(int fd, char *out, size_t got, size_t size, const char *want,
                         long long deadline)
{
    out[got] = '\0';
    while (want == NULL || strstr(out, want) == NULL) {
        long long left = deadline - ts_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t n = read(fd, out + got, size - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        out[got] = '\0';
    }
    return got;
}

/* A client running: its pid and the read end of its stdout. */
typedef struct client_run {
    pid_t pid;
    int out;
} client_run;

/* Starts argv (PATH searched) with `input` on its stdin (NULL: none);
 * stderr goes to ours. */
static client_run start_client(char *const argv[], const char *input)
{
    int in[2], pipe_out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(pipe_out), 0);
    for (int i = 0; i < 2; i++) { /* not inherited by the server's own children */
        fcntl(in[i], F_SETFD, FD_CLOEXEC);
        fcntl(pipe_out[i], F_SETFD, FD_CLOEXEC);
    }
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(pipe_out[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (getenv("TLS_TEST_VERBOSE") == NULL && null >= 0)
            dup2(null, 2); /* s_client's chatter; what matters is on stdout */
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(pipe_out[1]);
    if (input != NULL && write(in[1], input, strlen(input)) < 0)
        fail_msg("cannot feed %s", argv[0]);
    close(in[1]);
    return (client_run){pid, pipe_out[0]};
}

/* Its exit status, or -1 if it is late (then killed). */
static int end_client(client_run *c, bool late)
{
    close(c->out);
    if (late)
        kill(c->pid, SIGKILL);
    int status;
    while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    return late ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs argv with `input` on its stdin (NULL: none), collecting its stdout
 * into out (NUL-terminated) for at most timeout_ms. Returns its exit
 * status, or -1 if it had to be killed. */
static int run(char *const argv[], const char *input, char *out, size_t size, int timeout_ms)
{
    client_run c = start_client(argv, input);
    long long deadline = ts_now_ms() + timeout_ms;
    read_until(c.out, out, 0, size, NULL, deadline);
    return end_client(&c, ts_now_ms() >= deadline);
}

/* The server's address for the clients: "127.0.0.1:PORT" or "unix:PATH". */
static void client_address(const ss_server *srv, char *out, size_t size)
{
    char url[300];
    ss_server_address(srv, url, sizeof url);
    if (strncmp(url, "unix:", 5) == 0)
        snprintf(out, size, "%s", url);
    else
        snprintf(out, size, "127.0.0.1:%d", ss_server_port(srv));
}

/* tls_client.py ADDRESS MODE ARGS... (NULL-terminated), --ca of set A. */
static int python_v(const char *address, char *out, size_t size, const char *mode, va_list ap)
{
    char ca[320];
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    char *argv[32] = {"python3", TLS_CLIENT_PY, (char *)address, (char *)mode, "--ca", ca};
    int argc = 6;
    for (char *arg; argc < 31 && (arg = va_arg(ap, char *)) != NULL;)
        argv[argc++] = arg;
    argv[argc] = NULL;
    return run(argv, NULL, out, size, 30000);
}

/* To the server's first listener. */
static int python(const ss_server *srv, char *out, size_t size, const char *mode, ...)
{
    char address[320];
    client_address(srv, address, sizeof address);
    va_list ap;
    va_start(ap, mode);
    int rc = python_v(address, out, size, mode, ap);
    va_end(ap);
    return rc;
}

/* To "127.0.0.1:PORT" or "unix:PATH". */
static int python_to(const char *address, char *out, size_t size, const char *mode, ...)
{
    va_list ap;
    va_start(ap, mode);
    int rc = python_v(address, out, size, mode, ap);
    va_end(ap);
    return rc;
}

/* openssl s_client to the server, sending `input`, with extra ARGS. */
static int s_client(const ss_server *srv, const char *input, char *out, size_t size, ...)
{
    char address[320], ca[320], port[16];
    client_address(srv, address, sizeof address);
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    bool unix_socket = strncmp(address, "unix:", 5) == 0;
    snprintf(port, sizeof port, "127.0.0.1:%d", ss_server_port(srv));
    char *argv[32] = {"openssl",
                      "s_client",
                      "-quiet",
                      "-verify_return_error",
                      "-CAfile",
                      ca,
                      unix_socket ? "-unix" : "-connect",
                      unix_socket ? address + 5 : port};
    int argc = 8;
    va_list ap;
    va_start(ap, size);
    for (char *arg; argc < 31 && (arg = va_arg(ap, char *)) != NULL;)
        argv[argc++] = arg;
    va_end(ap);
    argv[argc] = NULL;
    return run(argv, input, out, size, 30000);
}

/* ---- the handler: "version|alpn|sni|subject|LINE" per line ---- */

static const char *or_dash(const char *s)
{
    return s != NULL ? s : "-";
}

static void upper(char *s)
{
    for (; *s != '\0'; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

/* "big": 8 MiB back, for a client that resets while it comes. */
static int send_big(ss_request *req)
{
    static char block[64 * 1024];
    int rc = 0;
    for (int i = 0; i < 128 && rc == 0; i++)
        rc = ss_request_send_all(req, block, sizeof block);
    return rc;
}

/* Linux's count of the TCP segments with data a socket has sent
 * (tcpi_data_segs_out, 4.6 and later); -1 where there is none. */
static long data_segments_out(int fd)
{
#ifdef __linux__
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_data_segs_out) + sizeof info.tcpi_data_segs_out)
        return (long)info.tcpi_data_segs_out;
#else
    (void)fd;
#endif
    return -1;
}

static int who(ss_request *req, void *data)
{
    (void)data;
    char line[256], out[1024];
    ssize_t n;
    if (!ss_request_tls(req))
        return -EPROTO;
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) {
        line[n - (line[n - 1] == '\n')] = '\0';
        if (strcmp(line, "bye") == 0)
            return 0;
        if (strcmp(line, "big") == 0)
            return send_big(req);
        if (strcmp(line, "who") == 0) /* the client, as a PROXY header may name it */
            snprintf(line, sizeof line, "%s", ss_request_client_name(req));
        if (strcmp(line, "segments") == 0) /* TCP segments with data sent so far */
            snprintf(line, sizeof line, "segments %ld", data_segments_out(ss_request_fileno(req)));
        upper(line);
        int len =
            snprintf(out, sizeof out, "%s|%s|%s|%s|%s\n", ss_request_tls_version(req),
                     or_dash(ss_request_tls_alpn(req)), or_dash(ss_request_tls_server_name(req)),
                     or_dash(ss_request_tls_peer_subject(req)), line);
        int rc = ss_request_send_all(req, out, (size_t)len);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

static const ss_handler who_handler = {SS_HANDLER_VERSION, NULL, who, NULL};

/* ---- servers ---- */

/* tls://127.0.0.1:0, or a Unix stream server given TLS. */
static ss_server *create_with(const combo *c, const ss_handler *h, char *dir, size_t size)
{
    dir[0] = '\0';
    if (strcmp(c->scheme, "unix") == 0)
        return combo_server(c, h, dir, size);
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, "tls://127.0.0.1:0", ss_dispatch_by_name(c->mode), h, NULL);
    if (rc < 0)
        fail_msg("tls/%s: %s", c->mode, ss_strerror(rc));
    ss_server_on_handle_error(srv, td_quiet_error);
    return srv;
}

/* opts with set A's server certificate where not given. */
static void set_tls(ss_server *srv, ss_tls_options opts)
{
    static char cert[320], key[320];
    path_in(cert, sizeof cert, ts_certs.a, "server.pem");
    path_in(key, sizeof key, ts_certs.a, "server.key");
    if (opts.cert_file == NULL) {
        opts.cert_file = cert;
        opts.key_file = key;
    }
    int rc = ss_server_set_tls(srv, &opts);
    if (rc < 0)
        fail_msg("ss_server_set_tls: %s", ss_strerror(rc));
}

/* A case's server with what it takes to end it: the runner serving it
 * and its Unix socket's temp dir ("" over TCP). One struct, so that each
 * case names its server once and ends it in one call. */
typedef struct tls_server {
    ss_server *srv;
    ts_runner runner;
    char dir[256];
} tls_server;

/* Combo c's server with handler h, given TLS opts, not serving yet: for
 * a case that sets more before combo_start(srv, &s->runner). */
static ss_server *prepare(tls_server *s, const combo *c, const ss_handler *h, ss_tls_options opts)
{
    s->srv = create_with(c, h, s->dir, sizeof s->dir);
    set_tls(s->srv, opts);
    return s->srv;
}

/* The same with the "who" handler, serving. */
static ss_server *serve(tls_server *s, const combo *c, ss_tls_options opts)
{
    prepare(s, c, &who_handler, opts);
    combo_start(s->srv, &s->runner);
    return s->srv;
}

/* The server freed (stopped first), its temp dir removed. */
static void release(tls_server *s)
{
    ss_server_free(s->srv);
    if (s->dir[0] != '\0')
        ts_rmdir(s->dir);
}

/* A client's exit status (0: it did what it was asked; 1: it failed), with
 * its output when it is not the one wanted. */
static void status_is(int status, int want, const char *out)
{
    if (status != want)
        fail_msg("the client exited with %d, not %d; its output:\n%s", status, want, out);
}

static void expect_contains(const char *out, const char *want)
{
    if (strstr(out, want) == NULL)
        fail_msg("expected \"%s\" in the client's output:\n%s", want, out);
}

static void counts_are(const ss_server *srv, uint64_t handshakes, uint64_t failures,
                       uint64_t handler_errors)
{
    ss_stats st = td_stats(srv);
    assert_int_equal(st.tls_handshakes, handshakes);
    assert_int_equal(st.tls_handshake_failures, failures);
    assert_int_equal(st.filter_refused, failures);
    assert_int_equal(st.handler_errors, handler_errors);
}

/* The counters are read before the server is freed: a finish of our own. */
static void finish_counted(tls_server *s, uint64_t closed, uint64_t handshakes, uint64_t failures,
                           uint64_t handler_errors)
{
    assert_true(td_wait_closed(s->srv, closed, 15000));
    assert_int_equal(ts_stop(&s->runner), 0);
    counts_are(s->srv, handshakes, failures, handler_errors);
    release(s);
}

/* ---- tests ---- */

/* TLS 1.2 and 1.3 from both clients; no ALPN set, SNI given or not. */
static void versions_with_both_clients(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = serve(&s, c, (ss_tls_options){0});
    status_is(python(srv, out, sizeof out, "lines", "--version", "1.2", "--line", "hello", "--line",
                     "bye", NULL),
              0, out);
    expect_contains(out, "reply TLSv1.2|-|localhost|-|HELLO");
    status_is(python(srv, out, sizeof out, "lines", "--version", "1.3", "--no-sni", "--line",
                     "again", "--close-notify", NULL),
              0, out);
    expect_contains(out, "reply TLSv1.3|-|-|-|AGAIN");
    assert_int_equal(
        s_client(srv, "hello\nbye\n", out, sizeof out, "-tls1_2", "-servername", "localhost", NULL),
        0);
    expect_contains(out, "TLSv1.2|-|localhost|-|HELLO\n");
    status_is(s_client(srv, "hello\nbye\n", out, sizeof out, "-tls1_3", "-servername",
                       "other.example", NULL),
              0, out);
    expect_contains(out, "TLSv1.3|-|other.example|-|HELLO\n");
    finish_counted(&s, 4, 4, 0, 0);
}

/* Required: a client certificate of CA A is served and named; none, or
 * one of CA B, is refused before setup. Optional: none is served too. */
static void client_certificates(void **state)
{
    const combo *c = *state;
    char out[4096], ca[320], a_cert[320], a_key[320], b_cert[320], b_key[320];
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    path_in(a_cert, sizeof a_cert, ts_certs.a, "client.pem");
    path_in(a_key, sizeof a_key, ts_certs.a, "client.key");
    path_in(b_cert, sizeof b_cert, ts_certs.b, "client.pem");
    path_in(b_key, sizeof b_key, ts_certs.b, "client.key");
    tls_server s;
    ss_server *srv =
        serve(&s, c, (ss_tls_options){.ca_file = ca, .verify = SS_TLS_VERIFY_REQUIRED});
    status_is(python(srv, out, sizeof out, "lines", "--cert", a_cert, "--key", a_key, "--line",
                     "me", NULL),
              0, out);
    expect_contains(out, "|CN=client,O=socketserver test|ME");
    status_is(python(srv, out, sizeof out, "lines", "--line", "me", NULL), 1, out);
    expect_contains(out, "ERROR");
    status_is(python(srv, out, sizeof out, "lines", "--cert", b_cert, "--key", b_key, "--line",
                     "me", NULL),
              1, out);
    status_is(s_client(srv, "me\nbye\n", out, sizeof out, "-tls1_2", NULL), 1, out);
    assert_int_equal(
        s_client(srv, "me\nbye\n", out, sizeof out, "-cert", a_cert, "-key", a_key, NULL), 0);
    expect_contains(out, "|CN=client,O=socketserver test|ME\n");
    finish_counted(&s, 5, 2, 3, 0);

    srv = serve(&s, c, (ss_tls_options){.ca_file = ca, .verify = SS_TLS_VERIFY_OPTIONAL});
    status_is(python(srv, out, sizeof out, "lines", "--line", "anon", NULL), 0, out);
    expect_contains(out, "|-|ANON");
    status_is(python(srv, out, sizeof out, "lines", "--cert", b_cert, "--key", b_key, "--line",
                     "me", NULL),
              1, out);
    finish_counted(&s, 2, 1, 1, 0);
}

/* The server's preference among what the client offers; nothing in
 * common is refused (no_application_protocol); no ALPN at all is served. */
static void alpn(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv =
        serve(&s, c, (ss_tls_options){.alpn = (const char *[]){"h2", "http/1.1", NULL}});
    assert_int_equal(
        python(srv, out, sizeof out, "lines", "--alpn", "http/1.1,h2", "--line", "x", NULL), 0);
    expect_contains(out, "|h2|localhost|-|X");
    status_is(s_client(srv, "x\nbye\n", out, sizeof out, "-alpn", "spdy/3,http/1.1", NULL), 0, out);
    expect_contains(out, "|http/1.1|");
    status_is(python(srv, out, sizeof out, "lines", "--alpn", "spdy/3", "--line", "x", NULL), 1,
              out);
    expect_contains(out, "no application protocol");
    status_is(python(srv, out, sizeof out, "lines", "--line", "x", NULL), 0, out);
    expect_contains(out, "|-|localhost|-|X");
    finish_counted(&s, 4, 3, 1, 0);
}

/* Clients of CA A are served; after a reload with CA B's server
 * certificate, new connections present B's (A's clients refuse it,
 * B's accept it); a reload from a file that does not load changes
 * nothing; a reload of the same names reads them again. */
static void reload(void **state)
{
    const combo *c = *state;
    char out[4096], b_ca[320], b_cert[320], b_key[320], a_key[320];
    path_in(b_ca, sizeof b_ca, ts_certs.b, "ca.pem");
    path_in(b_cert, sizeof b_cert, ts_certs.b, "server.pem");
    path_in(b_key, sizeof b_key, ts_certs.b, "server.key");
    path_in(a_key, sizeof a_key, ts_certs.a, "server.key");
    tls_server s;
    ss_server *srv = serve(&s, c, (ss_tls_options){0});
    status_is(python(srv, out, sizeof out, "lines", "--line", "a", NULL), 0, out);
    assert_int_equal(ss_server_reload_tls(srv, b_cert, b_key), 0);
    status_is(python(srv, out, sizeof out, "lines", "--line", "a", NULL), 1, out);
    expect_contains(out, "CERTIFICATE_VERIFY_FAILED");
    status_is(python(srv, out, sizeof out, "lines", "--ca", b_ca, "--line", "b", NULL), 0, out);
    expect_contains(out, "reply TLSv1.3|-|localhost|-|B");
    assert_int_equal(ss_server_reload_tls(srv, b_cert, a_key), SS_ETLSCERT); /* key mismatch */
    assert_int_equal(ss_server_reload_tls(srv, "/nonexistent.pem", NULL), SS_ETLSCERT);
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), 0); /* B's files again */
    status_is(s_client(srv, "b\nbye\n", out, sizeof out, "-CAfile", b_ca, NULL), 0, out);
    expect_contains(out, "|B\n");
    /* the client refuses the server: the server sees a failed handshake */
    finish_counted(&s, 4, 3, 1, 0);
}

/* What is not a TLS client is refused and counted, within the handshake
 * timeout; nothing reaches the handler; the server serves on; no
 * descriptor is left behind. */
static void bad_clients(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    int fds = ts_count_fds();
    ss_server *srv = serve(&s, c, (ss_tls_options){.handshake_timeout_ms = 700});
    static const char *const refused[] = {"plain", "garbage", "truncated"};
    for (size_t i = 0; i < 3; i++) {
        status_is(python(srv, out, sizeof out, refused[i], NULL), 0, out);
        expect_contains(out, "closed");
    }
    long long before = ts_now_ms();
    status_is(python(srv, out, sizeof out, "stall", NULL), 0, out);
    expect_contains(out, "closed after");
    status_is(python(srv, out, sizeof out, "silent", NULL), 0, out);
    long long took = ts_now_ms() - before;
    assert_true(took >= 2 * 650);     /* each held for its handshake timeout ... */
    assert_true(took < 2 * 700 * 10); /* ... and let go then */
    status_is(python(srv, out, sizeof out, "lines", "--line", "still", NULL), 0, out);
    expect_contains(out, "|STILL");
    finish_counted(&s, 6, 1, 5, 0);
    assert_true(td_wait_fds(fds, 5000));
}

/* A peer that stops inside a record fails that request's read (SS_ETLS,
 * a handler error); one that resets while its reply is being written
 * fails the write: no SIGPIPE, and the next client is served. */
static void peer_breaks_off(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = serve(&s, c, (ss_tls_options){0});
    status_is(python(srv, out, sizeof out, "midrecord", NULL), 0, out);
    status_is(python(srv, out, sizeof out, "vanish", NULL), 0, out);
    status_is(python(srv, out, sizeof out, "lines", "--line", "next", NULL), 0, out);
    expect_contains(out, "|NEXT");
    finish_counted(&s, 3, 3, 0, 2);
}

/* Behind a balancer: the PROXY header comes first, then the handshake,
 * whichever of the two was set first; the handler sees the real client. */
static void proxy_header_then_tls(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = prepare(&s, c, &who_handler, (ss_tls_options){0});
    assert_int_equal(ss_server_set_proxy_protocol(srv, NULL), 0);
    combo_start(srv, &s.runner);
    status_is(python(srv, out, sizeof out, "lines", "--proxy-header",
                     "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443", "--line", "who", NULL),
              0, out);
    expect_contains(out, "|192.0.2.1:56324");
    status_is(python(srv, out, sizeof out, "lines", "--line", "who", NULL), 1, out); /* no header */
    assert_true(td_wait_closed(srv, 2, 15000));
    assert_int_equal(ts_stop(&s.runner), 0);
    ss_stats st = td_stats(srv);
    assert_int_equal(st.tls_handshakes, 1);
    assert_int_equal(st.proxy_invalid, 1); /* refused before any handshake */
    assert_int_equal(st.tls_handshake_failures, 0);
    release(&s);
}

/* The request timeout holds under TLS: a client that completes its
 * handshake and says nothing is let go after it, counted. */
static void request_timeout_holds(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = prepare(&s, c, &who_handler, (ss_tls_options){0});
    ss_server_set_request_timeout(srv, 500);
    combo_start(srv, &s.runner);
    status_is(python(srv, out, sizeof out, "idle", NULL), 0, out);
    int ms = -1;
    assert_int_equal(sscanf(out, "closed after %d", &ms), 1);
    assert_true(ms >= 450 && ms < 5000);
    assert_true(td_wait_closed(srv, 1, 10000));
    assert_int_equal(td_stats(srv).request_timeouts, 1);
    finish_counted(&s, 1, 1, 0, 1);
}

/* A client idle when the server drains (sync: stops, which ends its idle
 * wait) gets close_notify before the end of the connection (RFC 8446,
 * section 6.1): the idle close shuts the read side only, so the filter's
 * close can still send it. tls_client.py goodbye, with Python's
 * suppress_ragged_eofs off, tells the alert from a bare end ("end eof":
 * the old code, whose idle close shut both sides first). */
static void idle_client_gets_close_notify(void **state)
{
    const combo *c = *state;
    char out[4096], address[320], ca[320];
    tls_server s;
    ss_server *srv = serve(&s, c, (ss_tls_options){0});
    client_address(srv, address, sizeof address);
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    char *argv[] = {"python3", TLS_CLIENT_PY, address, "goodbye", "--ca",
                    ca,        "--line",      "hello", NULL};
    client_run client = start_client(argv, NULL);
    long long deadline = ts_now_ms() + 30000;
    size_t got = read_until(client.out, out, 0, sizeof out, "|HELLO\n", deadline);
    expect_contains(out, "reply TLSv1.3|-|localhost|-|HELLO\n"); /* answered: now idle */
    assert_int_equal(ts_stop(&s.runner), 0);
    assert_int_equal(ss_server_drain(srv, 20000), 0);
    read_until(client.out, out, got, sizeof out, NULL, deadline);
    status_is(end_client(&client, ts_now_ms() >= deadline), 0, out);
    expect_contains(out, "end close_notify");
    assert_int_equal(td_stats(srv).idle_closed, 1);
    counts_are(srv, 1, 0, 0);
    release(&s);
}

/* A TLS 1.3 client whose first request comes with its Finished (one
 * write): the server's session tickets wait for the reply and leave with
 * it, so before the reply the server has sent one segment with data, its
 * handshake flight (TCP_NODELAY: a send is a segment). The old code sent
 * the tickets on their own as the handshake ended: 2. A client that sends
 * nothing more gets them at once (peer_breaks_off, bad_clients). */
static void tickets_leave_with_the_reply(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = serve(&s, c, (ss_tls_options){0});
    status_is(python(srv, out, sizeof out, "oneflight", "--line", "segments", NULL), 0, out);
    if (strcmp(c->scheme, "tcp") == 0)
        expect_contains(out, "replies 1\nlast TLSv1.3|-|localhost|-|SEGMENTS 1\n");
    else
        expect_contains(out, "replies 1\nlast TLSv1.3|-|localhost|-|SEGMENTS -1\n");
    finish_counted(&s, 1, 1, 0, 0);
}

/* Records sent back to back arrive in one read from the socket: the ones
 * not yet decrypted are held in the filter, not in the socket, so the
 * next read must not wait on the socket for them (a forked child's idle
 * wait polled it and stalled until the request timeout: issue 15's fresh
 * pass). A few short lines, then 1 MiB of lines, every reply back. */
static void pipelined_records(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    ss_server *srv = prepare(&s, c, &who_handler, (ss_tls_options){0});
    ss_server_set_request_timeout(srv, 3000); /* the stall's bound on the old code */
    combo_start(srv, &s.runner);
    status_is(python(srv, out, sizeof out, "pipeline", "--count", "8", "--size", "6", NULL), 0,
              out);
    expect_contains(out, "replies 8\nlast TLSv1.3|-|localhost|-|7XXXX\n");
    status_is(python(srv, out, sizeof out, "pipeline", "--count", "4096", "--size", "255",
                     "--version", "1.2", NULL),
              0, out);
    expect_contains(out, "replies 4096\nlast TLSv1.2|-|localhost|-|4095X");
    finish_counted(&s, 2, 2, 0, 0);
}

/* ---- one thread reads while another writes ---- */

typedef struct writer_job {
    ss_request *req;
    int rc;
} writer_job;

/* Writes two lines while the handler's thread waits in a read. */
static void *write_two(void *arg)
{
    writer_job *job = arg;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL); /* the reader is waiting by now, mostly */
    job->rc = ss_request_send_all(job->req, "one\n", 4);
    if (job->rc == 0)
        job->rc = ss_request_send_all(job->req, "two\n", 4);
    return NULL;
}

static int read_while_writing(ss_request *req, void *data)
{
    (void)data;
    writer_job job = {.req = req};
    pthread_t writer;
    if (pthread_create(&writer, NULL, write_two, &job) != 0)
        return -EAGAIN;
    char line[64];
    ssize_t n = ss_request_read_line(req, line, sizeof line); /* "bye", after both lines */
    pthread_join(writer, NULL);
    if (n <= 0 || job.rc < 0)
        return n < 0 ? (int)n : job.rc < 0 ? job.rc : -EPROTO;
    return ss_request_send_all(req, "done\n", 5);
}

static void reader_and_writer_threads(void **state)
{
    const combo *c = *state;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer cannot start a thread in a child forked from a
     * threaded process (die_after_fork); the child's case is threading's */
    if (strcmp(c->mode, "forking") == 0)
        skip();
#endif
    static const ss_handler h = {SS_HANDLER_VERSION, NULL, read_while_writing, NULL};
    char out[4096];
    tls_server s;
    ss_server *srv = prepare(&s, c, &h, (ss_tls_options){0});
    combo_start(srv, &s.runner);
    status_is(python(srv, out, sizeof out, "listen", NULL), 0, out);
    expect_contains(out, "first one\nsecond two\nlast done\n");
    finish_counted(&s, 1, 1, 0, 0);
}

/* ---- the pool: a handshake waiting parks its fiber ---- */

/* One worker: a client stalled in its handshake holds a parked fiber,
 * and the worker serves the next client at once meanwhile. */
static void stalled_handshake_parks_fiber(void **state)
{
    (void)state;
    char out[4096];
    tls_server s = {.dir = ""};
    assert_int_equal(
        ss_server_create(&s.srv, "tls://127.0.0.1:0", ss_dispatch_pool(), &who_handler, NULL), 0);
    ss_server *srv = s.srv;
    assert_int_equal(ss_server_set_workers(srv, 1), 0);
    set_tls(srv, (ss_tls_options){.handshake_timeout_ms = 20000});
    combo_start(srv, &s.runner);
    int stalled = ts_connect(srv); /* sends nothing */
    assert_true(td_wait_active(srv, 1, 5000));
    long long before = ts_now_ms();
    status_is(python(srv, out, sizeof out, "lines", "--line", "meanwhile", NULL), 0, out);
    expect_contains(out, "|MEANWHILE");
    assert_true(ts_now_ms() - before < 15000); /* not after the stalled one's 20 s */
    close(stalled);
    finish_counted(&s, 2, 1, 1, 0);
}

/* ---- the API ---- */

static void api_states(ss_server *srv, const ss_tls_options *opts);

/* Every option checked; files that do not load refused. */
static void api_errors(void **state)
{
    (void)state;
    char cert[320], key[320], other_key[320], ca[320], url[128];
    path_in(cert, sizeof cert, ts_certs.a, "server.pem");
    path_in(key, sizeof key, ts_certs.a, "server.key");
    path_in(other_key, sizeof other_key, ts_certs.b, "server.key");
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    assert_true(ss_tls_available());
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tls://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    assert_int_equal(ss_server_bind(srv), 0);
    ss_server_address(srv, url, sizeof url);
    assert_int_equal(strncmp(url, "tls://127.0.0.1:", 16), 0);
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), SS_ESTATE);
    assert_int_equal(ss_server_activate(srv), SS_ETLSNOCERT); /* no certificate yet */
    ss_tls_options o = {.cert_file = cert, .key_file = key};
    assert_int_equal(ss_server_set_tls(srv, NULL), -EINVAL);
    assert_int_equal(ss_server_set_tls(srv, &(ss_tls_options){.key_file = key}), -EINVAL);
    ss_tls_options bad = o;
    bad.verify = SS_TLS_VERIFY_REQUIRED; /* without ca_file */
    assert_int_equal(ss_server_set_tls(srv, &bad), -EINVAL);
    bad = o;
    bad.min_version = 0x0301; /* TLS 1.0 */
    assert_int_equal(ss_server_set_tls(srv, &bad), -EINVAL);
    bad = o;
    bad.alpn = (const char *[]){"", NULL};
    assert_int_equal(ss_server_set_tls(srv, &bad), -EINVAL);
    bad = o;
    bad.key_file = other_key;
    assert_int_equal(ss_server_set_tls(srv, &bad), SS_ETLSCERT);
    bad = o;
    bad.cert_file = "/nonexistent/server.pem";
    assert_int_equal(ss_server_set_tls(srv, &bad), SS_ETLSCERT);
    assert_int_equal(ss_server_set_tls(srv, &o), 0);
    api_states(srv, &o);
}

/* Once set: not twice, not after activate, not on a datagram server; a
 * tls:// server without it does not activate. */
static void api_states(ss_server *srv, const ss_tls_options *opts)
{
    ss_tls_options o = *opts;
    assert_int_equal(ss_server_set_tls(srv, &o), -EEXIST);
    assert_int_equal(ss_server_activate(srv), 0);
    assert_int_equal(ss_server_set_tls(srv, &o), SS_ESTATE);
    ss_server_free(srv);

    assert_int_equal(ss_server_create(&srv, "udp://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    assert_int_equal(ss_server_set_tls(srv, &o), SS_ENOTSTREAM);
    ss_server_free(srv);
    assert_int_equal(ss_server_new(&srv, "tls://127.0.0.1:0", NULL, &who_handler, NULL),
                     SS_ETLSNOCERT);
    assert_int_equal(ss_server_create(&srv, "tls://127.0.0.1", NULL, &who_handler, NULL),
                     SS_EURLNOPORT);
    assert_string_equal(ss_strerror(SS_ETLSNOCERT),
                        "tls:// server has no certificate: call ss_server_set_tls before activate");
}

/* ---- several listeners ---- */

/* One line back as "L<listener> tls|plain LINE": which listener took the
 * connection, and whether it speaks TLS. */
static int where(ss_request *req, void *data)
{
    (void)data;
    char line[256], out[320];
    ssize_t n = ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return (int)n;
    line[n - (line[n - 1] == '\n')] = '\0';
    upper(line);
    int len = snprintf(out, sizeof out, "L%d %s %s\n", ss_request_listener(req),
                       ss_request_tls(req) ? "tls" : "plain", line);
    return ss_request_send_all(req, out, (size_t)len);
}

static const ss_handler where_handler = {SS_HANDLER_VERSION, NULL, where, NULL};

/* `line` in plain text to listener `index`; its answer line into out, ""
 * if the server closed without one. */
static void plain_exchange(const ss_server *srv, int index, const char *line, char *out,
                           size_t size)
{
    char url[320];
    assert_true(ss_server_listener_address(srv, index, url, sizeof url) > 0);
    int fd = ts_connect_url(url);
    ts_send(fd, line, strlen(line));
    size_t got = 0;
    while (got < size - 1 && (got == 0 || out[got - 1] != '\n')) {
        ssize_t n = recv(fd, out + got, size - 1 - got, 0); /* a datagram whole */
        if (n <= 0)
            break; /* EOF, or a reset after the refusal */
        got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
}

/* "127.0.0.1:PORT" of a TCP listener, for the clients. */
static const char *inet_address(const ss_server *srv, int index, char *out, size_t size)
{
    snprintf(out, size, "127.0.0.1:%d", ss_server_listener_port(srv, index));
    return out;
}

static ss_server *create_where(const combo *c, const char *url)
{
    ss_server *srv = NULL;
    int rc = ss_server_create(&srv, url, ss_dispatch_by_name(c->mode), &where_handler, NULL);
    if (rc < 0)
        fail_msg("%s/%s: %s", url, c->mode, ss_strerror(rc));
    ss_server_on_handle_error(srv, td_quiet_error);
    return srv;
}

/* A server of `first`, unix:DIR/s and `third` (listeners 0, 1, 2), given
 * TLS, serving; sock gets the unix: URL, s->dir its temp dir. */
static ss_server *serve_three(tls_server *s, const combo *c, const char *first, const char *third,
                              char *sock, size_t size)
{
    ts_mkdtemp(s->dir, sizeof s->dir);
    snprintf(sock, size, "unix:%s/s", s->dir);
    ss_server *srv = s->srv = create_where(c, first);
    assert_int_equal(ss_server_add_listener(srv, sock), 1);
    assert_int_equal(ss_server_add_listener(srv, third), 2);
    set_tls(srv, (ss_tls_options){0});
    combo_start(srv, &s->runner);
    return srv;
}

/* One line over TLS to address; what came back must hold want. */
static void tls_exchange(const char *address, const char *line, const char *want)
{
    char out[4096];
    status_is(python_to(address, out, sizeof out, "lines", "--line", line, NULL), 0, out);
    expect_contains(out, want);
}

/* ---- what the log says ---- */

/* The server's messages, one a line, in memory a forked child shares. */
typedef struct log_capture {
    atomic_size_t used;
    char text[16384];
} log_capture;

static log_capture *captured;

static void capture(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)level;
    (void)data;
    size_t n = strlen(message) + 1;
    size_t at = atomic_fetch_add(&captured->used, n);
    if (at + n < sizeof captured->text) {
        memcpy(captured->text + at, message, n - 1);
        captured->text[at + n - 1] = '\n';
    }
}

/* A logged line that begins with `begins` holds `holds`. */
static void logged(const char *begins, const char *holds)
{
    for (const char *line = captured->text; (line = strstr(line, begins)) != NULL; line++) {
        const char *end = strchr(line, '\n');
        const char *found = strstr(line, holds);
        if (found != NULL && (end == NULL || found < end))
            return;
    }
    fail_msg("no line \"%s...%s\" in the log:\n%s", begins, holds, captured->text);
}

/* A failed handshake names its TCP client; a session broken after it
 * says so, and what broke, apart from a handshake that failed. */
static void log_names_client_and_stage(void **state)
{
    const combo *c = *state;
    char out[4096];
    tls_server s;
    captured = td_shared_new(sizeof *captured);
    ss_server *srv = prepare(&s, c, &who_handler, (ss_tls_options){0});
    ss_server_set_log(srv, capture);
    ss_server_on_handle_error(srv, NULL); /* the default's line, in the log */
    combo_start(srv, &s.runner);
    status_is(python(srv, out, sizeof out, "plain", NULL), 0, out);
    status_is(python(srv, out, sizeof out, "midrecord", NULL), 0, out);
    finish_counted(&s, 2, 1, 1, 1);
    logged("TLS handshake with 127.0.0.1:", " failed: ");
    logged("TLS session with 127.0.0.1:",
           " broken after the handshake: the peer closed in the middle of a record");
    logged("error processing request from 127.0.0.1:",
           ": The peer broke the TLS protocol after the handshake");
    assert_null(strstr(captured->text, "unnamed peer"));
    td_shared_free(captured, sizeof *captured);
}

/* A sync tls:// server with cert and key, its log captured. */
static ss_server *logging_server(const char *cert, const char *key)
{
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, "tls://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    ss_server_set_log(srv, capture);
    assert_int_equal(ss_server_set_tls(srv, &(ss_tls_options){.cert_file = cert, .key_file = key}),
                     0);
    return srv;
}

/* Files that load but will hurt are warned about, at start and at each
 * reload: a private key every user may read, a certificate past its
 * end. A sound pair draws no warning. */
static void load_warnings(void **state)
{
    (void)state;
    char dir[256], exposed[320], csr[320], old[320], out[1024];
    char cert[320], key[320], ca[320], ca_key[320];
    path_in(cert, sizeof cert, ts_certs.a, "server.pem");
    path_in(key, sizeof key, ts_certs.a, "server.key");
    path_in(ca, sizeof ca, ts_certs.a, "ca.pem");
    path_in(ca_key, sizeof ca_key, ts_certs.a, "ca.key");
    ts_mkdtemp(dir, sizeof dir);
    path_in(exposed, sizeof exposed, dir, "exposed.key");
    path_in(csr, sizeof csr, dir, "old.csr");
    path_in(old, sizeof old, dir, "old.pem");
    char *copy[] = {"cp", key, exposed, NULL};
    assert_int_equal(run(copy, NULL, out, sizeof out, 10000), 0);
    assert_int_equal(chmod(exposed, 0644), 0);
    char *request[] = {"openssl", "req",           "-new", "-key", key,
                       "-subj",   "/CN=localhost", "-out", csr,    NULL};
    assert_int_equal(run(request, NULL, out, sizeof out, 10000), 0);
    char *sign[] = {"openssl", "x509",        "-req", "-in",   csr,  "-CA",  ca,  "-CAkey",
                    ca_key,    "-set_serial", "7",    "-days", "-1", "-out", old, NULL};
    assert_int_equal(run(sign, NULL, out, sizeof out, 10000), 0);

    captured = td_shared_new(sizeof *captured);
    ss_server *srv = logging_server(cert, key);
    assert_null(strstr(captured->text, "TLS: the "));
    assert_int_equal(ss_server_reload_tls(srv, cert, exposed), 0);
    logged("TLS: the key file ", "exposed.key is readable by every user (mode 0644)");
    assert_int_equal(ss_server_reload_tls(srv, old, key), 0);
    logged("TLS: the certificate in ", "old.pem expired on ");
    ss_server_free(srv);
    memset(captured, 0, sizeof *captured);
    assert_int_equal(ss_server_create(&srv, "tls://127.0.0.1:0", NULL, &who_handler, NULL), 0);
    ss_server_set_log(srv, capture);
    /* no key file, and no key beside the certificate: say which is missing */
    assert_int_equal(ss_server_set_tls(srv, &(ss_tls_options){.cert_file = cert}), SS_ETLSCERT);
    logged("TLS: cannot use a private key (no key file given) from the certificate file ",
           "server.pem");
    assert_int_equal(
        ss_server_set_tls(srv, &(ss_tls_options){.cert_file = old, .key_file = exposed}), 0);
    logged("TLS: the key file ", "exposed.key is readable by every user");
    logged("TLS: the certificate in ", "old.pem expired on ");
    ss_server_free(srv);
    td_shared_free(captured, sizeof *captured);
    ts_rmdir(dir);
}

/* tls:// beside a plain unix: and tcp:// listener in one server: TLS on
 * the tls:// one only; plain text there is refused and counted. */
static void tls_beside_plain_listeners(void **state)
{
    char sock[320], address[64], out[4096];
    tls_server s;
    ss_server *srv =
        serve_three(&s, *state, "tls://127.0.0.1:0", "tcp://127.0.0.1:0", sock, sizeof sock);
    tls_exchange(inet_address(srv, 0, address, sizeof address), "secret", "L0 tls SECRET");
    plain_exchange(srv, 1, "open\n", out, sizeof out);
    assert_string_equal(out, "L1 plain OPEN\n");
    plain_exchange(srv, 2, "also\n", out, sizeof out);
    assert_string_equal(out, "L2 plain ALSO\n");
    plain_exchange(srv, 0, "hello\n", out, sizeof out); /* not TLS: refused */
    assert_string_equal(out, "");
    finish_counted(&s, 4, 1, 1, 0);
}

/* No tls:// listener: ss_server_set_tls puts TLS on every stream
 * listener (TLS over tcp:// and unix: at once); a datagram one beside
 * them stays plain. */
static void tls_on_every_stream_listener(void **state)
{
    char sock[320], address[64], out[4096];
    tls_server s;
    ss_server *srv =
        serve_three(&s, *state, "tcp://127.0.0.1:0", "udp://127.0.0.1:0", sock, sizeof sock);
    tls_exchange(inet_address(srv, 0, address, sizeof address), "one", "L0 tls ONE");
    tls_exchange(sock, "two", "L1 tls TWO");
    plain_exchange(srv, 2, "three\n", out, sizeof out);
    assert_string_equal(out, "L2 plain THREE\n");
    finish_counted(&s, 3, 2, 0, 0);
}

/* In a child: a TCP socket passed by socket activation under the name
 * "tls" (what a hand-over names a tls:// listener) is a tls:// listener:
 * named so, refused without a certificate, TLS with one. */
/* dir/name -> target, replaced in one step (rename), as certbot's
 * live/ links are. */
static void link_to(const char *dir, const char *name, const char *target)
{
    char link[320], tmp[330];
    path_in(link, sizeof link, dir, name);
    snprintf(tmp, sizeof tmp, "%s.new", link);
    unlink(tmp);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
}

/* dir/cert.pem and dir/key.pem -> set's server pair. */
static void live_pair(const char *dir, const char *set)
{
    char cert[320], key[320];
    path_in(cert, sizeof cert, set, "server.pem");
    path_in(key, sizeof key, set, "server.key");
    link_to(dir, "cert.pem", cert);
    link_to(dir, "key.pem", key);
}

/* A fork of the server that serves one connection once `go` is
 * readable, then exits 0 if it counted `want_failures` reload failures
 * and one handshake. */
static pid_t fork_server(ss_server *srv, int go, int want_failures)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    char byte;
    TS_CHECK(read(go, &byte, 1) == 1);
    TS_CHECK(ss_server_handle_request(srv) == 0);
    ss_stats st;
    ss_server_stats(srv, &st);
    TS_CHECK(st.tls_handshakes == 1);
    TS_CHECK(st.tls_reload_failures == (uint64_t)want_failures);
    _exit(0);
}

static void served_by_fork(const ss_server *srv, pid_t pid, int go, const char *ca,
                           const char *want)
{
    char out[4096];
    assert_int_equal(write(go, "", 1), 1);
    status_is(python(srv, out, sizeof out, "lines", "--ca", ca, "--line", "forked", NULL), 0, out);
    expect_contains(out, want);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Worker processes and forking's children are forks of the process that
 * reloads (the supervisor): a fork made before a reload uses the new pair
 * from its next handshake on; one that cannot load the files the reload
 * loaded (replaced meanwhile by a dangling link) keeps the pair it had,
 * logs why and counts it in tls_reload_failures. */
static void forks_follow_reloads(void **state)
{
    (void)state;
    char dir[256], cert[320], key[320], a_ca[320], b_ca[320];
    ts_mkdtemp(dir, sizeof dir);
    path_in(cert, sizeof cert, dir, "cert.pem");
    path_in(key, sizeof key, dir, "key.pem");
    path_in(a_ca, sizeof a_ca, ts_certs.a, "ca.pem");
    path_in(b_ca, sizeof b_ca, ts_certs.b, "ca.pem");
    live_pair(dir, ts_certs.a);
    captured = td_shared_new(sizeof *captured);
    ss_server *srv = logging_server(cert, key);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork_server(srv, go[0], 0);
    live_pair(dir, ts_certs.b); /* renewed, then reloaded here */
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), 0);
    served_by_fork(srv, pid, go[1], b_ca, "reply TLSv1.3|-|localhost|-|FORKED");
    pid = fork_server(srv, go[0], 1);
    live_pair(dir, ts_certs.a);
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), 0);
    link_to(dir, "cert.pem", "/nonexistent/cert.pem"); /* gone before the fork follows */
    served_by_fork(srv, pid, go[1], b_ca, "reply TLSv1.3|-|localhost|-|FORKED"); /* still B's */
    logged("TLS: process ", "could not reload the certificate another process of the server");
    assert_int_equal(td_stats(srv).tls_reload_failures, 0); /* the fork's, not ours */
    assert_int_equal(ss_server_reload_tls(srv, NULL, NULL), SS_ETLSCERT);
    assert_int_equal(td_stats(srv).tls_reload_failures, 1);
    close(go[0]);
    close(go[1]);
    ss_server_free(srv);
    td_shared_free(captured, sizeof *captured);
    ts_rmdir(dir);
}

static void adopted_tls_listener_body(void)
{
    int made = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    TS_CHECK(bind(made, (struct sockaddr *)&any, sizeof any) == 0 && listen(made, 16) == 0);
    TS_CHECK(dup2(fcntl(made, F_DUPFD, 8), 3) == 3);
    char pid[32], url[64], cert[320], key[320], out[4096];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_FDNAMES", "tls", 1);
    ss_server *srv;
    TS_CHECK(ss_server_create(&srv, "systemd:", ss_dispatch_threading(), &where_handler, NULL) ==
             0);
    TS_CHECK(ss_server_address(srv, url, sizeof url) > 0 && strncmp(url, "tls://", 6) == 0);
    TS_CHECK(ss_server_bind(srv) == 0 && ss_server_activate(srv) == SS_ETLSNOCERT);
    path_in(cert, sizeof cert, ts_certs.a, "server.pem");
    path_in(key, sizeof key, ts_certs.a, "server.key");
    TS_CHECK(ss_server_set_tls(srv, &(ss_tls_options){.cert_file = cert, .key_file = key}) == 0);
    TS_CHECK(ss_server_activate(srv) == 0);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    char address[64];
    TS_CHECK(python_to(inet_address(srv, 0, address, sizeof address), out, sizeof out, "lines",
                       "--line", "adopted", NULL) == 0);
    TS_CHECK(strstr(out, "L0 tls ADOPTED") != NULL);
    TS_CHECK(ts_stop(&runner) == 0);
    ss_server_free(srv);
}

static void adopted_tls_listener(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(adopted_tls_listener_body), 0);
}

/* The cases run over every combo, or (argv[1]) one dispatcher's. */
static void (*const per_combo[])(void **) = {
    versions_with_both_clients,
    client_certificates,
    alpn,
    reload,
    bad_clients,
    peer_breaks_off,
    request_timeout_holds,
    idle_client_gets_close_notify,
    tickets_leave_with_the_reply,
    reader_and_writer_threads,
    proxy_header_then_tls,
    pipelined_records,
};
static const char *const per_combo_names[] = {
    "versions_with_both_clients",
    "client_certificates",
    "alpn",
    "reload",
    "bad_clients",
    "peer_breaks_off",
    "request_timeout_holds",
    "idle_client_gets_close_notify",
    "tickets_leave_with_the_reply",
    "reader_and_writer_threads",
    "proxy_header_then_tls",
    "pipelined_records",
};
#define PER_COMBO (sizeof per_combo / sizeof per_combo[0])
/* The cases that make their own listeners: once per dispatcher. */
static void (*const per_mode[])(void **) = {
    tls_beside_plain_listeners,
    tls_on_every_stream_listener,
    log_names_client_and_stage,
};
static const char *const per_mode_names[] = {
    "tls_beside_plain_listeners",
    "tls_on_every_stream_listener",
    "log_names_client_and_stage",
};
#define PER_MODE (sizeof per_mode / sizeof per_mode[0])

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_DFL); /* a SIGPIPE raised by the library would end the test */
    const char *mode = argc > 1 ? argv[1] : NULL;
    struct CMUnitTest tests[4 + PER_COMBO * 8 + PER_MODE * 4];
    size_t n = 0;
    if (mode == NULL || strcmp(mode, "sync") == 0) {
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(api_errors);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(adopted_tls_listener);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(load_warnings);
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(forks_follow_reloads);
    }
    if (mode == NULL || strcmp(mode, "pool") == 0)
        tests[n++] = (struct CMUnitTest)cmocka_unit_test(stalled_handshake_parks_fiber);
    for (size_t t = 0; t < PER_COMBO; t++)
        for (size_t k = 0; k < 8; k++)
            if (mode == NULL || strcmp(mode, combos[k].mode) == 0)
                tests[n++] = (struct CMUnitTest){per_combo_names[t], per_combo[t], NULL, NULL,
                                                 (void *)&combos[k]};
    for (size_t t = 0; t < PER_MODE; t++)
        for (size_t k = 0; k < 8; k += 2) /* tcp's: one per dispatcher */
            if (mode == NULL || strcmp(mode, combos[k].mode) == 0)
                tests[n++] = (struct CMUnitTest){per_mode_names[t], per_mode[t], NULL, NULL,
                                                 (void *)&combos[k]};
    return _cmocka_run_group_tests("test_tls", tests, n, ts_certs_setup, ts_certs_teardown);
}
