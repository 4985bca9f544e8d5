/* The examples over TLS, driven as a user drives them: --tls-cert and
 * --tls-key on every server (tls:// and unix:), uppercase_client
 * --connect tls:// with --tls-ca or --tls-insecure, a SIGHUP that reloads
 * the certificate (and one that cannot, leaving the old in place), the
 * count at the stop, and the command-line errors. Python's ssl module
 * (tests/core/tls_client.py) is the client for the servers other than
 * uppercase_server; scripts/make-test-cert.sh makes the certificates. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static char certs[200], a_dir[256], b_dir[256];

/* DIR/FILE in a static buffer of its own per call site's slot. */
static const char *in_dir(const char *dir, const char *file, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dir, file);
    return out;
}

/* Runs argv to its end with `input` on stdin; its stdout into out, its
 * exit status returned, its stderr in c->log. */
static int run_to_end(child *c, const char *const argv[], const char *input, char *out, size_t size)
{
    spawn(c, argv);
    if (input != NULL && write(c->in, input, strlen(input)) < 0)
        fail_msg("cannot write to %s", argv[0]);
    close(c->in);
    c->in = -1;
    read_all(c->out, out, size, NULL);
    return reap(c);
}

/* "127.0.0.1:PORT" of a tls://127.0.0.1:PORT URL. */
static const char *host_port(const char *url)
{
    return url + strlen("tls://");
}

/* ---- every server ---- */

typedef struct example {
    const char *path, *name, *ask, *answer;
} example;

static const example examples[] = {
    {ECHO_SERVER, "echo_server", "ping", "reply ping"},
    {UPPERCASE_SERVER, "uppercase_server", "ping", "reply PING"},
    {LINE_SERVER, "line_server", "UPPER ping", "reply OK PING"},
    {ROBUST_SERVER, "robust_server", "ping", "reply PING"},
    {CHAT_SERVER, "chat_server", "ping", ": ping"}, /* the chat names the sender */
};

static void test_every_server_over_tls(void **state)
{
    (void)state;
    char cert[320], key[320], ca[320], url[256], out[4096];
    in_dir(a_dir, "server.pem", cert, sizeof cert);
    in_dir(a_dir, "server.key", key, sizeof key);
    in_dir(a_dir, "ca.pem", ca, sizeof ca);
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        const example *ex = &examples[i];
        child server, client;
        const char *argv[] = {ex->path,     "--listen", "tls://127.0.0.1:0",
                              "--tls-cert", cert,       "--tls-key",
                              key,          "--mode",   "pool",
                              NULL};
        start_server_argv(&server, argv, url, sizeof url);
        const char *py[] = {"/usr/bin/env", "python3", TLS_CLIENT_PY, host_port(url), "lines",
                            "--ca",         ca,        "--line",      ex->ask,        NULL};
        if (run_to_end(&client, py, NULL, out, sizeof out) != 0 || strstr(out, ex->answer) == NULL)
            fail_msg("%s over TLS: want '%s', got:\n%s", ex->name, ex->answer, out);
        kill(server.pid, SIGTERM);
        assert_int_equal(reap(&server), 0);
        if (strstr(server.log, ": TLS: 1 handshakes, 0 failed") == NULL)
            fail_msg("%s: no count at the stop in:\n%s", ex->name, server.log);
    }
}

/* ---- uppercase_client ---- */

static void test_uppercase_client_over_tls(void **state)
{
    (void)state;
    static const char *const modes[] = {"sync", "threading", "forking", "pool"};
    char cert[320], key[320], ca[320], b_ca[320], url[256], out[4096];
    in_dir(a_dir, "server.pem", cert, sizeof cert);
    in_dir(a_dir, "server.key", key, sizeof key);
    in_dir(a_dir, "ca.pem", ca, sizeof ca);
    in_dir(b_dir, "ca.pem", b_ca, sizeof b_ca);
    for (size_t m = 0; m < 4; m++) {
        child server, client;
        const char *argv[] = {UPPERCASE_SERVER,
                              "--listen",
                              "tls://localhost:0",
                              "--tls-cert",
                              cert,
                              "--tls-key",
                              key,
                              "--mode",
                              modes[m],
                              NULL};
        start_server_argv(&server, argv, url, sizeof url);
        char connect[300];
        snprintf(connect, sizeof connect, "tls://localhost:%s", strrchr(url, ':') + 1);
        const char *verified[] = {UPPERCASE_CLIENT, "--connect", connect, "--tls-ca", ca, NULL};
        assert_int_equal(run_to_end(&client, verified, "hello\nq\n", out, sizeof out), 0);
        assert_non_null(strstr(out, "received: HELLO"));
        const char *insecure[] = {UPPERCASE_CLIENT, "--connect", connect, "--tls-insecure", NULL};
        assert_int_equal(run_to_end(&client, insecure, "again\nq\n", out, sizeof out), 0);
        assert_non_null(strstr(out, "received: AGAIN"));
        const char *stranger[] = {UPPERCASE_CLIENT, "--connect", connect, "--tls-ca", b_ca, NULL};
        assert_int_equal(run_to_end(&client, stranger, "x\nq\n", out, sizeof out), 1);
        if (strstr(client.log, "TLS handshake failed") == NULL)
            fail_msg("a server the CA does not vouch for was accepted:\n%s", client.log);
        kill(server.pid, SIGTERM);
        assert_int_equal(reap(&server), 0);
        ex_log_has(&server, ": TLS: 2 handshakes, 1 failed");
    }
}

/* ---- SIGHUP ---- */

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* uppercase_client with the CA of dir: its exit status. */
static int client_trusting(const char *url, const char *dir)
{
    char ca[320], connect[300], out[1024];
    snprintf(connect, sizeof connect, "tls://localhost:%s", strrchr(url, ':') + 1);
    const char *argv[] = {UPPERCASE_CLIENT,
                          "--connect",
                          connect,
                          "--tls-ca",
                          in_dir(dir, "ca.pem", ca, sizeof ca),
                          NULL};
    child c;
    return run_to_end(&c, argv, "x\nq\n", out, sizeof out);
}

static void test_sighup_reloads_the_certificate(void **state)
{
    (void)state;
    char live[256], cert[320], key[320], from[320], url[256];
    snprintf(live, sizeof live, "%s/live", certs);
    ts_mkdtemp(live, sizeof live);
    in_dir(live, "cert.pem", cert, sizeof cert);
    in_dir(live, "key.pem", key, sizeof key);
    copy_file(in_dir(a_dir, "server.pem", from, sizeof from), cert);
    copy_file(in_dir(a_dir, "server.key", from, sizeof from), key);
    child server;
    const char *argv[] = {UPPERCASE_SERVER,
                          "--listen",
                          "tls://localhost:0",
                          "--tls-cert",
                          cert,
                          "--tls-key",
                          key,
                          NULL};
    start_server_argv(&server, argv, url, sizeof url);
    assert_int_equal(client_trusting(url, a_dir), 0);
    /* renewed in place, as certbot does */
    copy_file(in_dir(b_dir, "server.pem", from, sizeof from), cert);
    copy_file(in_dir(b_dir, "server.key", from, sizeof from), key);
    kill(server.pid, SIGHUP);
    assert_true(ex_log_until(&server, "SIGHUP: TLS certificate reloaded from", 5000));
    assert_int_equal(client_trusting(url, b_dir), 0);
    assert_int_equal(client_trusting(url, a_dir), 1); /* the old one is gone */
    /* a half-written file: the reload fails, the server keeps B's */
    FILE *f = fopen(cert, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nMIIB\n", f);
    fclose(f);
    kill(server.pid, SIGHUP);
    assert_true(ex_log_until(&server, "SIGHUP: TLS certificate not reloaded", 5000));
    assert_int_equal(client_trusting(url, b_dir), 0);
    kill(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
    ex_log_has(&server, ": TLS: 3 handshakes, 1 failed");
    ex_log_has(&server, "TLS: cannot use the certificate file");
    ts_rmdir(live);
}

/* ---- command lines ---- */

static void more_option_errors(const char *cert, const char *key, const char *ca);

/* Options that do not go together. */
static void test_option_errors_and_help(void **state)
{
    (void)state;
    char cert[320], key[320], ca[320];
    in_dir(a_dir, "server.pem", cert, sizeof cert);
    in_dir(a_dir, "server.key", key, sizeof key);
    in_dir(a_dir, "ca.pem", ca, sizeof ca);
    const char *key_alone[] = {UPPERCASE_SERVER, "--tls-key", key, NULL};
    expect_refusal(key_alone, 2, "--tls-cert and --tls-key go together");
    const char *no_cert[] = {UPPERCASE_SERVER, "--listen", "tls://127.0.0.1:0", NULL};
    expect_refusal(no_cert, 2, "--listen tls://... needs --tls-cert and --tls-key");
    const char *bad_mode[] = {UPPERCASE_SERVER, "--tls-cert", cert, "--tls-key", key,
                              "--tls-verify",   "maybe",      NULL};
    expect_refusal(bad_mode, 2, "--tls-verify takes none, optional or required");
    const char *no_ca[] = {UPPERCASE_SERVER, "--tls-cert", cert, "--tls-key", key,
                           "--tls-verify",   "required",   NULL};
    expect_refusal(no_ca, 2, "--tls-verify optional or required needs --tls-ca");
    more_option_errors(cert, key, ca);
}

/* Files that do not load, a datagram listener, the client's options, and
 * --help. */
static void more_option_errors(const char *cert, const char *key, const char *ca)
{
    const char *missing[] = {UPPERCASE_SERVER,
                             "--listen",
                             "tls://127.0.0.1:0",
                             "--tls-cert",
                             "/nonexistent.pem",
                             "--tls-key",
                             key,
                             NULL};
    expect_refusal(missing, 2, "cannot use the files");
    const char *datagram[] = {UPPERCASE_SERVER,
                              "--listen",
                              "udp://127.0.0.1:0",
                              "--tls-cert",
                              cert,
                              "--tls-key",
                              key,
                              NULL};
    expect_refusal(datagram, 2, "TLS needs a tcp://, tls:// or unix: listener");
    const char *client_plain[] = {UPPERCASE_CLIENT, "--connect", "tcp://127.0.0.1:1",
                                  "--tls-ca",       ca,          NULL};
    expect_refusal(client_plain, 2, "the --tls-* options need --connect tls://HOST:PORT");
    const char *help[] = {UPPERCASE_SERVER, "--help", NULL};
    child c;
    char out[8192];
    assert_int_equal(run_to_end(&c, help, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "--tls-cert FILE"));
    assert_non_null(strstr(out, "--tls-verify none|optional|required"));
}

/* ---- certificates ---- */

static int make_certs(void **state)
{
    (void)state;
    int rc = ts_make_test_certs(MAKE_TEST_CERT, certs, sizeof certs);
    snprintf(a_dir, sizeof a_dir, "%s/a", certs);
    snprintf(b_dir, sizeof b_dir, "%s/b", certs);
    return rc;
}

static int remove_certs(void **state)
{
    (void)state;
    ts_remove_test_certs(certs);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_server_over_tls, end_leftovers),
        cmocka_unit_test_teardown(test_uppercase_client_over_tls, end_leftovers),
        cmocka_unit_test_teardown(test_sighup_reloads_the_certificate, end_leftovers),
        cmocka_unit_test_teardown(test_option_errors_and_help, end_leftovers),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
