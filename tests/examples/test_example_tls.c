/* The examples over TLS, driven as a user drives them: --tls-cert and
 * --tls-key on every server (tls:// and unix:), uppercase_client
 * --connect tls:// with --tls-ca or --tls-insecure, a SIGUSR1 that reloads
 * the certificate (and one that cannot, leaving the old in place), in
 * every worker process too (--processes), a
 * SIGHUP restart of a server with a tls:// and a plain unix: listener
 * (the successor serves both as before, with the renewed certificate; a
 * certificate that does not load fails the restart, not the server),
 * the count at the stop, and the command-line errors. Python's ssl module
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <cmocka.h>

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

/* uppercase_server on tls://localhost:0 with cert and key, and the
 * options that follow (NULL-ended), started; its URL into url. The
 * server most cases here start: one call, with what varies in view. */
static void start_uppercase_tls(child *server, const char *cert, const char *key, char *url,
                                size_t size, ...)
{
    const char *argv[16] = {UPPERCASE_SERVER, "--listen", "tls://localhost:0", "--tls-cert", cert,
                            "--tls-key",      key};
    size_t argc = 7;
    va_list ap;
    va_start(ap, size);
    for (const char *arg; argc < 15 && (arg = va_arg(ap, const char *)) != NULL;)
        argv[argc++] = arg;
    va_end(ap);
    argv[argc] = NULL;
    start_server_argv(server, argv, url, size);
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
    in_dir(ts_certs.a, "server.pem", cert, sizeof cert);
    in_dir(ts_certs.a, "server.key", key, sizeof key);
    in_dir(ts_certs.a, "ca.pem", ca, sizeof ca);
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
    in_dir(ts_certs.a, "server.pem", cert, sizeof cert);
    in_dir(ts_certs.a, "server.key", key, sizeof key);
    in_dir(ts_certs.a, "ca.pem", ca, sizeof ca);
    in_dir(ts_certs.b, "ca.pem", b_ca, sizeof b_ca);
    for (size_t m = 0; m < 4; m++) {
        child server, client;
        start_uppercase_tls(&server, cert, key, url, sizeof url, "--mode", modes[m], NULL);
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

/* The server goes away under a client mid-session: the client's next
 * line fails with an error on stderr and exit status 1, over tls:// as
 * over tcp://; never death by SIGPIPE (OpenSSL writes with write(): its
 * close_notify to a socket the server had reset killed the client, 141).
 * The client gets SIGPIPE's default action, as from a shell: this test
 * process ignores it, and exec would pass that on. */
static void client_outlives_server(const char *scheme, const char *const server_argv[])
{
    char url[256], connect[300], out[1024];
    child server, client;
    start_server_argv(&server, server_argv, url, sizeof url);
    snprintf(connect, sizeof connect, "%s://127.0.0.1:%s", scheme, strrchr(url, ':') + 1);
    const char *argv[] = {UPPERCASE_CLIENT, "--connect", connect, "--tls-insecure", NULL};
    if (strcmp(scheme, "tls") != 0)
        argv[3] = NULL;
    signal(SIGPIPE, SIG_DFL);
    spawn(&client, argv);
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(write(client.in, "hello\n", 6), 6);
    read_all(client.out, out, sizeof out, "received: HELLO");
    assert_non_null(strstr(out, "received: HELLO"));
    kill(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
    assert_int_equal(write(client.in, "again\n", 6), 6);
    close(client.in);
    client.in = -1;
    read_all(client.out, out, sizeof out, NULL);
    assert_int_equal(reap(&client), 1); /* reap fails the test on a signal */
    ex_log_has(&client, "uppercase_client: ");
}

static void test_uppercase_client_outlives_server(void **state)
{
    (void)state;
    char cert[320], key[320];
    in_dir(ts_certs.a, "server.pem", cert, sizeof cert);
    in_dir(ts_certs.a, "server.key", key, sizeof key);
    const char *tls[] = {UPPERCASE_SERVER,
                         "--listen",
                         "tls://127.0.0.1:0",
                         "--tls-cert",
                         cert,
                         "--tls-key",
                         key,
                         NULL};
    const char *tcp[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", NULL};
    client_outlives_server("tls", tls);
    client_outlives_server("tcp", tcp);
}

/* ---- SIGUSR1: reload in place ---- */

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

/* Certificate set `set`'s server pair copied into dir/cert.pem, key.pem. */
static void install_pair(const char *set, const char *dir, char *cert, char *key, size_t size)
{
    char from[320];
    in_dir(dir, "cert.pem", cert, size);
    in_dir(dir, "key.pem", key, size);
    copy_file(in_dir(set, "server.pem", from, sizeof from), cert);
    copy_file(in_dir(set, "server.key", from, sizeof from), key);
}

/* A certificate file cut short, as one being written. */
static void half_write(const char *cert)
{
    FILE *f = fopen(cert, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nMIIB\n", f);
    assert_int_equal(fclose(f), 0);
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

/* --tls-cert alone, its file holding the certificate and the key (as
 * ss_tls_options.key_file NULL allows): served, and reloaded by SIGUSR1;
 * a key readable by every user is warned about, a private one is not. */
static void test_certificate_and_key_in_one_file(void **state)
{
    (void)state;
    char live[256], both[320], from[320], url[256], ca[320], out[4096];
    ts_mkdtemp(live, sizeof live);
    in_dir(live, "both.pem", both, sizeof both);
    copy_file(in_dir(ts_certs.a, "server.pem", from, sizeof from), both);
    FILE *f = fopen(both, "ab");
    assert_non_null(f);
    FILE *key = fopen(in_dir(ts_certs.a, "server.key", from, sizeof from), "rb");
    assert_non_null(key);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, key);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(key);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(both, 0644), 0);
    child server, client;
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "tls://127.0.0.1:0",
                          "--tls-cert",     both,       NULL};
    start_server_argv(&server, argv, url, sizeof url);
    assert_true(ex_log_until(&server, "both.pem is readable by every user (mode 0644)", 5000));
    const char *py[] = {"/usr/bin/env",
                        "python3",
                        TLS_CLIENT_PY,
                        host_port(url),
                        "lines",
                        "--ca",
                        in_dir(ts_certs.a, "ca.pem", ca, sizeof ca),
                        "--line",
                        "ping",
                        NULL};
    assert_int_equal(run_to_end(&client, py, NULL, out, sizeof out), 0);
    assert_non_null(strstr(out, "reply PING"));
    assert_int_equal(chmod(both, 0600), 0);
    kill(server.pid, SIGUSR1);
    assert_true(ex_log_until(&server, "SIGUSR1: TLS certificate reloaded from", 5000));
    kill(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
    const char *after = strstr(server.log, "SIGUSR1");
    assert_null(strstr(after, "readable by every user")); /* private now: no warning */
    ts_rmdir(live);
}

static void test_sigusr1_reloads_the_certificate(void **state)
{
    (void)state;
    char live[256], cert[320], key[320], url[256];
    ts_mkdtemp(live, sizeof live);
    install_pair(ts_certs.a, live, cert, key, sizeof cert);
    child server;
    start_uppercase_tls(&server, cert, key, url, sizeof url, NULL);
    assert_int_equal(client_trusting(url, ts_certs.a), 0);
    install_pair(ts_certs.b, live, cert, key, sizeof cert); /* renewed in place, as certbot does */
    kill(server.pid, SIGUSR1);
    assert_true(ex_log_until(&server, "SIGUSR1: TLS certificate reloaded from", 5000));
    assert_int_equal(client_trusting(url, ts_certs.b), 0);
    assert_int_equal(client_trusting(url, ts_certs.a), 1); /* the old one is gone */
    half_write(cert); /* the reload fails, the server keeps B's */
    kill(server.pid, SIGUSR1);
    assert_true(ex_log_until(&server, "SIGUSR1: TLS certificate not reloaded", 5000));
    assert_int_equal(client_trusting(url, ts_certs.b), 0);
    kill(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
    ex_log_has(&server, ": TLS: 3 handshakes, 1 failed, 1 failed reloads");
    ex_log_has(&server, "TLS: cannot use the certificate file");
    ts_rmdir(live);
}

/* ---- SIGHUP: a restart keeps TLS ---- */

/* One line in plain text to url; the answer must be want. */
static void plain_exchange(const char *url, const char *line, const char *want)
{
    char got[256];
    int fd = ts_connect_url(url);
    ts_send(fd, line, strlen(line));
    read_answer(fd, got, sizeof got);
    assert_string_equal(got, want);
    close(fd);
}

/* The pid in the restart's "restart: pid N serves now" line; -1 if it is
 * not logged within 30 s. */
static pid_t successor_pid(child *server)
{
    int pid = -1;
    if (!ex_log_until(server, " serves now", 30000))
        return -1;
    const char *at = strstr(server->log, "restart: pid ");
    return at != NULL && sscanf(at, "restart: pid %d", &pid) == 1 ? pid : -1;
}

/* --listen tls://... --listen unix:..., renewed files, SIGHUP: the copy
 * that takes over (started with the same --tls-* options, its sockets as
 * "--listen systemd:") speaks TLS on the tls:// socket with the renewed
 * certificate, and plain text on the unix: one; the old one exits 0. */
static void restart_keeps_tls(const char *mode)
{
    char live[256], cert[320], key[320], url[256], plain[300], line[300];
    ts_mkdtemp(live, sizeof live);
    install_pair(ts_certs.a, live, cert, key, sizeof cert);
    snprintf(plain, sizeof plain, "unix:%s/plain", live);
    child server;
    start_uppercase_tls(&server, cert, key, url, sizeof url, "--listen", plain, "--mode", mode,
                        NULL);
    read_all(server.out, line, sizeof line, "\n"); /* "listening on unix:..." */
    assert_int_equal(client_trusting(url, ts_certs.a), 0);
    plain_exchange(plain, "plain\n", "PLAIN\n");
    half_write(cert); /* the copy cannot start: the old one serves on */
    assert_int_equal(kill(server.pid, SIGHUP), 0);
    assert_true(ex_log_until(&server, "restart failed", 30000));
    assert_int_equal(client_trusting(url, ts_certs.a), 0);
    install_pair(ts_certs.b, live, cert, key, sizeof cert); /* renewed, then the restart */
    assert_int_equal(kill(server.pid, SIGHUP), 0);
    pid_t next = successor_pid(&server);
    assert_true(next > 0 && next != server.pid);
    assert_int_equal(ex_exit_status(server.pid, 30000), 0); /* drained */
    assert_int_equal(client_trusting(url, ts_certs.b), 0);
    assert_int_equal(client_trusting(url, ts_certs.a), 1); /* the old certificate is gone */
    plain_exchange(plain, "still\n", "STILL\n");
    assert_int_equal(kill(next, SIGTERM), 0);
    assert_int_equal(ex_exit_status(next, 30000), 0);
    ex_log_pump(&server, 100);
    ex_log_has(&server, ": TLS: 2 handshakes, 0 failed"); /* the old one */
    ex_log_has(&server, ": TLS: 1 handshakes, 1 failed"); /* its successor */
    ts_rmdir(live);
}

static void test_sighup_restart_keeps_tls(void **state)
{
    (void)state;
#ifdef __linux__
    /* the successor outlives its parent: we reap it as the subreaper */
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    static const char *const modes[] = {"pool", "threading", "forking", "sync"};
    for (size_t m = 0; m < 4; m++)
        restart_keeps_tls(modes[m]);
#else
    skip();
#endif
}

/* ---- SIGUSR1 with worker processes ---- */

/* Appends c's stdout to out until it holds want, or 30 s. */
static bool stdout_has(child *c, char *out, size_t size, const char *want)
{
    for (int i = 0; i < 6 && strstr(out, want) == NULL; i++) {
        size_t len = strlen(out);
        if (read_all(c->out, out + len, size - len, want) == 0 && i > 0)
            break; /* its end */
    }
    return strstr(out, want) != NULL;
}

/* --processes 2, sync in each (a worker in a request takes no other
 * client): a SIGUSR1 to the supervisor reaches both workers. A client
 * that one worker keeps, and the next one, which the other worker must
 * take, both see the renewed certificate (the supervisor alone reloaded
 * before); the kept one, idle at the SIGTERM, gets close_notify. */
static void test_sigusr1_reaches_every_worker_process(void **state)
{
    (void)state;
    char live[256], cert[320], key[320], url[256], ca[320], hostport[64], out[2048] = "";
    ts_mkdtemp(live, sizeof live);
    install_pair(ts_certs.a, live, cert, key, sizeof cert);
    child server, kept;
    start_uppercase_tls(&server, cert, key, url, sizeof url, "--processes", "2", "--mode", "sync",
                        NULL);
    assert_int_equal(client_trusting(url, ts_certs.a), 0);
    install_pair(ts_certs.b, live, cert, key, sizeof cert);
    ex_signal(server.pid, SIGUSR1);
    assert_true(ex_log_until(&server, "SIGUSR1: TLS certificate reloaded from", 5000));
    snprintf(hostport, sizeof hostport, "localhost:%s", strrchr(url, ':') + 1);
    const char *py[] = {"/usr/bin/env",
                        "python3",
                        TLS_CLIENT_PY,
                        hostport,
                        "goodbye",
                        "--ca",
                        in_dir(ts_certs.b, "ca.pem", ca, sizeof ca),
                        "--line",
                        "kept",
                        NULL};
    spawn(&kept, py);
    if (!stdout_has(&kept, out, sizeof out, "reply KEPT\n"))
        fail_msg("the first worker kept the old certificate:\n%s", out);
    assert_int_equal(client_trusting(url, ts_certs.b), 0); /* the other worker */
    assert_int_equal(client_trusting(url, ts_certs.a), 1);
    ex_signal(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
    if (!stdout_has(&kept, out, sizeof out, "end close_notify"))
        fail_msg("no close_notify at the drain:\n%s", out);
    assert_int_equal(reap(&kept), 0);
    ex_log_has(&server, ": TLS: 3 handshakes, 1 failed");
    ts_rmdir(live);
}

/* ---- --inetd: one connection, TLS too ---- */

#define ACTIVATE "/usr/bin/systemd-socket-activate"

/* systemd-socket-activate --inetd --accept starts uppercase_server
 * --inetd with --tls-* for each connection on a Unix socket: the one
 * connection on stdin speaks TLS (per-connection mode, no tls:// URL). */
static void test_inetd_over_tls(void **state)
{
    (void)state;
    if (access(ACTIVATE, X_OK) != 0)
        fail_msg("needs %s: apt-get install systemd (scripts/test.sh does)", ACTIVATE);
    char dir[256], path[320], address[330], cert[320], key[320], ca[320], out[4096];
    snprintf(dir, sizeof dir, "%s/inetd", ts_certs.base);
    ts_mkdtemp(dir, sizeof dir);
    in_dir(dir, "s", path, sizeof path);
    snprintf(address, sizeof address, "unix:%s", path);
    const char *argv[] = {ACTIVATE,
                          "--inetd",
                          "--accept",
                          "-l",
                          path,
                          UPPERCASE_SERVER,
                          "--inetd",
                          "--tls-cert",
                          in_dir(ts_certs.a, "server.pem", cert, sizeof cert),
                          "--tls-key",
                          in_dir(ts_certs.a, "server.key", key, sizeof key),
                          NULL};
    child activator, client;
    spawn(&activator, argv);
    assert_true(ex_log_until(&activator, "as 3.", 10000)); /* listening */
    const char *py[] = {"/usr/bin/env",
                        "python3",
                        TLS_CLIENT_PY,
                        address,
                        "lines",
                        "--ca",
                        in_dir(ts_certs.a, "ca.pem", ca, sizeof ca),
                        "--line",
                        "inetd",
                        NULL};
    if (run_to_end(&client, py, NULL, out, sizeof out) != 0 || strstr(out, "reply INETD") == NULL)
        fail_msg("--inetd over TLS: got:\n%s\n%s", out, client.log);
    assert_true(ex_log_until(&activator, "died with code 0", 5000)); /* served, exited */
    kill(activator.pid, SIGTERM);
    int status;
    assert_int_equal(waitpid(activator.pid, &status, 0), activator.pid);
    close(activator.in);
    close(activator.out);
    close(activator.err);
    ts_rmdir(dir);
}

/* ---- command lines ---- */

static void more_option_errors(const char *cert, const char *key, const char *ca);

/* Options that do not go together. */
static void test_option_errors_and_help(void **state)
{
    (void)state;
    char cert[320], key[320], ca[320];
    in_dir(ts_certs.a, "server.pem", cert, sizeof cert);
    in_dir(ts_certs.a, "server.key", key, sizeof key);
    in_dir(ts_certs.a, "ca.pem", ca, sizeof ca);
    const char *key_alone[] = {UPPERCASE_SERVER, "--tls-key", key, NULL};
    expect_refusal(key_alone, 2, "--tls-key, --tls-ca and --tls-verify need --tls-cert");
    const char *no_cert[] = {UPPERCASE_SERVER, "--listen", "tls://127.0.0.1:0", NULL};
    expect_refusal(no_cert, 2, "--listen tls://... needs --tls-cert");
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

/* --processes: ThreadSanitizer would end each worker process as it
 * starts threads after a fork made while the example's restart thread
 * ran (test_example_prefork.c says the same). */
static void tsan_allows_threads_after_fork(void)
{
    static char env[1100];
    const char *old = getenv("TSAN_OPTIONS");
    snprintf(env, sizeof env, "TSAN_OPTIONS=%s die_after_fork=0", old != NULL ? old : "");
    putenv(env);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    tsan_allows_threads_after_fork();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_server_over_tls, end_leftovers),
        cmocka_unit_test_teardown(test_uppercase_client_over_tls, end_leftovers),
        cmocka_unit_test_teardown(test_uppercase_client_outlives_server, end_leftovers),
        cmocka_unit_test_teardown(test_sigusr1_reloads_the_certificate, end_leftovers),
        cmocka_unit_test_teardown(test_certificate_and_key_in_one_file, end_leftovers),
        cmocka_unit_test_teardown(test_sigusr1_reaches_every_worker_process, end_leftovers),
        cmocka_unit_test_teardown(test_sighup_restart_keeps_tls, end_leftovers),
        cmocka_unit_test_teardown(test_inetd_over_tls, end_leftovers),
        cmocka_unit_test_teardown(test_option_errors_and_help, end_leftovers),
    };
    return cmocka_run_group_tests(tests, ts_certs_setup, ts_certs_teardown);
}
