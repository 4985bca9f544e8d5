/* The classic tutorial's interactive client: read a line, refuse empty
 * input, send it, print the reply; "q" is sent, its reply read, and then
 * the session ends, so the server sees a clean close on every transport.
 * A line is bytes with a length: NUL bytes in it go out and come back.
 *     uppercase_client [--connect URL] [--tls-ca FILE | --tls-insecure]
 *                      [--tls-cert FILE --tls-key FILE] [--help]
 * (default tcp://localhost:9999). A tls://HOST:PORT URL speaks TLS (with
 * OpenSSL, when the examples were built with it): the server's
 * certificate must chain to --tls-ca (else the system's CAs) and name
 * HOST, unless --tls-insecure; --tls-cert/--tls-key send a client
 * certificate. */
#include "cli.h" /* cli_read_option: the servers' command-line rules */

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef EXAMPLES_HAVE_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

#define DEFAULT_URL CLI_DEFAULT_URL

/* The command line's TLS choices. */
typedef struct tls_choice {
    const char *ca, *cert, *key;
    bool insecure;
} tls_choice;

/* The connection: a socket, and its TLS session over it when tls://. */
typedef struct conn {
    int fd;
#ifdef EXAMPLES_HAVE_TLS
    SSL_CTX *ctx;
    SSL *ssl;
    bool broken; /* a TLS call failed: no close_notify (OpenSSL forbids one then) */
#endif
} conn;

/* send() until all len bytes are out (a stream may take them in parts). */
static int send_plain(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

/* Reads exactly as many reply bytes as were sent: the server answers
 * byte for byte, but TCP may deliver the answer in pieces (a datagram
 * reply comes whole). */
static int recv_plain(int fd, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            got += (size_t)n;
    }
    return 0;
}

#ifdef EXAMPLES_HAVE_TLS

/* OpenSSL writes to the socket with write(), which raises SIGPIPE once the
 * server has gone, killing the client (the plain path's send() says
 * MSG_NOSIGNAL). Where a socket can be told not to (SO_NOSIGPIPE: macOS,
 * the BSDs) it is; elsewhere SIGPIPE is held blocked around each OpenSSL
 * call, and one the call raised is taken back before the mask is
 * restored, so the call fails with EPIPE instead, as a Python client's
 * does. Nothing process-wide changes: a closed stdout still ends us. */
typedef struct pipe_guard {
    sigset_t saved;
    bool was_pending; /* someone else's SIGPIPE, left pending */
} pipe_guard;

static void pipe_only(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGPIPE);
}

static bool sigpipe_pending(void)
{
    sigset_t pending;
    return sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void guard_begin(pipe_guard *g)
{
#ifndef SO_NOSIGPIPE
    sigset_t set;
    pipe_only(&set);
    g->was_pending = sigpipe_pending();
    sigprocmask(SIG_BLOCK, &set, &g->saved);
#else
    (void)g;
#endif
}

static void guard_end(const pipe_guard *g)
{
#ifndef SO_NOSIGPIPE
    int saved_errno = errno; /* the call's EPIPE, for tls_io_error */
    sigset_t set;
    pipe_only(&set);
    struct timespec now = {0, 0};
    if (!g->was_pending && sigpipe_pending())
        while (sigtimedwait(&set, NULL, &now) < 0 && errno == EINTR)
            ;
    sigprocmask(SIG_SETMASK, &g->saved, NULL);
    errno = saved_errno;
#else
    (void)g;
#endif
}

/* OpenSSL's reason for the last failure, on stderr. */
static int tls_failed(const char *what)
{
    char reason[256] = "no reason given";
    unsigned long code = ERR_get_error();
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof reason);
    fprintf(stderr, "uppercase_client: %s: %s\n", what, reason);
    return -EPROTO;
}

/* A client context: verify the server against --tls-ca (or the system's
 * CAs) unless --tls-insecure; a client certificate if given. */
static SSL_CTX *tls_context(const tls_choice *tls)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, tls->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    bool ok = tls->ca != NULL ? SSL_CTX_load_verify_locations(ctx, tls->ca, NULL) == 1
                              : SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (ok && tls->cert != NULL)
        ok = SSL_CTX_use_certificate_chain_file(ctx, tls->cert) == 1 &&
             SSL_CTX_use_PrivateKey_file(ctx, tls->key, SSL_FILETYPE_PEM) == 1;
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The handshake over c->fd, checking the certificate names host (SNI
 * too, unless host is an address). */
static int tls_start(conn *c, const tls_choice *tls, const char *host)
{
    if ((c->ctx = tls_context(tls)) == NULL)
        return tls_failed("cannot set up TLS (--tls-ca, --tls-cert, --tls-key)");
    if ((c->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return tls_failed("cannot set up TLS");
#ifdef SO_NOSIGPIPE
    int on = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#endif
    bool address = strchr(host, ':') != NULL || strspn(host, "0123456789.") == strlen(host);
    if (!address)
        SSL_set_tlsext_host_name(c->ssl, host);
    if (!tls->insecure && (address ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host)
                                   : SSL_set1_host(c->ssl, host)) != 1)
        return tls_failed("cannot check the server's name");
    pipe_guard g;
    guard_begin(&g);
    int connected = SSL_connect(c->ssl);
    guard_end(&g);
    c->broken = connected != 1;
    if (connected != 1)
        return tls_failed("TLS handshake failed");
    return 0;
}

/* "tls://HOST:PORT" -> HOST (brackets removed; "" -> localhost). */
static void url_host(const char *url, char *host, size_t size)
{
    const char *begin = url + strlen("tls://"), *end = strrchr(begin, ':');
    if (*begin == '[') {
        begin++;
        end = strchr(begin, ']');
    }
    size_t n = end != NULL ? (size_t)(end - begin) : strlen(begin);
    snprintf(host, size, "%.*s", (int)n, n > 0 ? begin : "localhost");
}

#endif

/* Connects to url, and makes the TLS handshake for tls://. */
static int open_conn(conn *c, const char *url, const tls_choice *tls)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
#ifndef EXAMPLES_HAVE_TLS
    if (strncmp(url, "tls://", 6) == 0) {
        fprintf(stderr, "uppercase_client: built without TLS (OpenSSL)\n");
        return SS_ENOTSUPPORTED;
    }
#endif
    c->fd = ss_connect(url); /* tls://: the TCP connection under it */
    if (c->fd < 0)
        return c->fd;
    if (strncmp(url, "tls://", 6) != 0)
        return 0;
#ifdef EXAMPLES_HAVE_TLS
    char host[256];
    url_host(url, host, sizeof host);
    return tls_start(c, tls, host);
#else
    (void)tls;
    return 0; /* not reached: refused above */
#endif
}

/* Ends the session with close_notify when it is whole, then the socket. */
static void close_conn(conn *c)
{
#ifdef EXAMPLES_HAVE_TLS
    if (c->ssl != NULL && !c->broken && SSL_is_init_finished(c->ssl)) {
        pipe_guard g;
        guard_begin(&g);
        SSL_shutdown(c->ssl);
        guard_end(&g);
    }
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
#endif
    if (c->fd >= 0)
        close(c->fd);
}

#ifdef EXAMPLES_HAVE_TLS

/* One SSL_write_ex or SSL_read_ex of up to len bytes, SIGPIPE held off:
 * 0 and *done, or the error (the socket's errno when it has one, EPIPE
 * for a server gone; else the server closed or broke the session). */
static int tls_io(conn *c, bool writing, char *buf, size_t len, size_t *done)
{
    pipe_guard g;
    guard_begin(&g);
    ERR_clear_error(); /* SSL_get_error reads this thread's queue */
    int ok = writing ? SSL_write_ex(c->ssl, buf, len, done) : SSL_read_ex(c->ssl, buf, len, done);
    int verdict = ok == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, ok);
    int err = errno;
    guard_end(&g);
    if (verdict == SSL_ERROR_NONE)
        return 0;
    c->broken = verdict != SSL_ERROR_ZERO_RETURN; /* close_notify came: ours may go */
    return verdict == SSL_ERROR_SYSCALL && err != 0 ? -err : -ECONNRESET;
}

#endif

static int send_all(conn *c, const char *buf, size_t len)
{
#ifdef EXAMPLES_HAVE_TLS
    size_t sent;
    if (c->ssl != NULL)
        return len == 0 ? 0 : tls_io(c, true, (char *)buf, len, &sent);
#endif
    return send_plain(c->fd, buf, len);
}

static int read_reply(conn *c, char *buf, size_t want)
{
#ifdef EXAMPLES_HAVE_TLS
    int rc = 0;
    for (size_t got = 0, n = 0; c->ssl != NULL && got < want && rc == 0; got += n)
        rc = tls_io(c, false, buf + got, want - got, &n);
    if (c->ssl != NULL)
        return rc;
#endif
    return recv_plain(c->fd, buf, want);
}

/* Sends one line and reads its answer; prints it unless quitting. */
static int exchange(conn *c, const char *line, size_t len, bool quitting)
{
    char *reply = malloc(len);
    int rc = reply != NULL ? send_all(c, line, len) : -ENOMEM;
    if (rc == 0)
        rc = read_reply(c, reply, len);
    if (rc == 0 && !quitting) {
        printf("received: ");
        fwrite(reply, 1, len, stdout);
        printf("\n");
    }
    free(reply);
    return rc;
}

/* docs:begin converse */
static int converse(conn *c)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0) {
        printf("message (q to quit): ");
        fflush(stdout);
        if ((len = getline(&line, &size, stdin)) <= 0)
            break; /* end of input */
        if (line[len - 1] == '\n')
            len--;
        if (len == 0) {
            printf("input must not be empty\n");
            continue;
        }
        bool quitting = len == 1 && line[0] == 'q';
        rc = exchange(c, line, (size_t)len, quitting); /* len bytes, NULs and all */
        if (quitting)
            break; /* its reply read: the server sees a clean close */
    }
    free(line);
    return rc;
}
/* docs:end converse */

static void usage(FILE *out)
{
    fprintf(out, "usage: uppercase_client [--connect URL] [--tls-ca FILE | --tls-insecure]\n"
                 "                        [--tls-cert FILE --tls-key FILE] [--help]\n"
                 "       (default " DEFAULT_URL "; or --connect=URL)\n"
                 "  tls://HOST:PORT speaks TLS: the server's certificate must chain to\n"
                 "  --tls-ca (default: the system's CAs) and name HOST, unless\n"
                 "  --tls-insecure; --tls-cert and --tls-key send a client certificate\n"
                 "type lines to send; an empty line is refused; q ends the session\n");
}

/* Where a valued option goes. */
static const char **choice_for(const char *name, const char **url, tls_choice *tls)
{
    if (strcmp(name, "--tls-ca") == 0)
        return &tls->ca;
    if (strcmp(name, "--tls-cert") == 0)
        return &tls->cert;
    return strcmp(name, "--tls-key") == 0 ? &tls->key : url;
}

/* TLS options without tls://, or half a client certificate, would be
 * ignored: refused (2), as the servers refuse theirs. */
static int check_tls_choice(const char *url, const tls_choice *tls)
{
    const char *why = NULL;
    bool any = tls->ca != NULL || tls->cert != NULL || tls->key != NULL || tls->insecure;
    if (any && strncmp(url, "tls://", 6) != 0)
        why = "the --tls-* options need --connect tls://HOST:PORT";
    else if ((tls->cert != NULL) != (tls->key != NULL))
        why = "--tls-cert and --tls-key go together";
    else if (tls->insecure && tls->ca != NULL)
        why = "--tls-insecure checks nothing: no --tls-ca with it";
    if (why == NULL)
        return -1;
    fprintf(stderr, "uppercase_client: %s\n", why);
    usage(stderr);
    return 2;
}

/* The command line, as the servers read theirs (examples/cli.c): -1 to go
 * on with *url set, else the exit status (0 after --help; 2 after a usage
 * error, which names what is wrong). */
static int parse(int argc, char **argv, const char **url, tls_choice *tls)
{
    static const char *const valued[] = {"--connect", "--tls-ca", "--tls-cert", "--tls-key", NULL};
    static const char *const flags[] = {"--help", "-h", "--tls-insecure", NULL};
    for (int i = 1; i < argc; i++) {
        cli_option option;
        const char *why = cli_read_option(argc, argv, &i, valued, flags, &option);
        if (why != NULL) {
            bool unknown = strcmp(why, "unknown argument") == 0;
            fprintf(stderr, "uppercase_client: %s%s%s\n", unknown ? why : option.name,
                    unknown ? ": " : " ", unknown ? option.given : why);
            usage(stderr);
            return 2;
        }
        if (strcmp(option.name, "--tls-insecure") == 0)
            tls->insecure = true;
        else if (option.value == NULL) { /* --help, -h */
            usage(stdout);
            return 0;
        } else
            *choice_for(option.name, url, tls) = option.value;
    }
    return check_tls_choice(*url, tls);
}

int main(int argc, char **argv)
{
    const char *url = DEFAULT_URL;
    tls_choice tls = {0};
    int status = parse(argc, argv, &url, &tls);
    if (status >= 0)
        return status;
    conn c;
    int rc = open_conn(&c, url, &tls);
    if (rc < 0) {
        fprintf(stderr, "uppercase_client: cannot connect to %s: %s\n", url, ss_strerror(rc));
        close_conn(&c);
        return 1;
    }
    rc = converse(&c);
    close_conn(&c);
    if (rc < 0)
        fprintf(stderr, "uppercase_client: %s\n", ss_strerror(rc));
    printf("connection closed\n");
    return rc < 0 ? 1 : 0;
}
