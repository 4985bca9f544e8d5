/* Reference: the minimal hand-written epoll + OpenSSL server, one thread,
 * level triggered, non-blocking sockets.
 *
 *   ref_tls --tls-cert FILE --tls-key FILE [--listen tls://HOST:PORT] [--quiet]
 *
 * Each connection runs SSL_do_handshake until it is done, then reads what
 * is there (SSL_read: one record), uppercases it and SSL_writes it back;
 * a write the socket cannot take is kept and retried on EPOLLOUT, and the
 * connection is not read meanwhile. WANT_READ / WANT_WRITE decide which
 * readiness a connection waits for. OpenSSL reads ahead (a record in one
 * recv, as ref_epoll reads a request), so bytes it already holds get no
 * epoll event: reading goes on while SSL_has_pending says so. A peer's
 * close_notify is answered with ours. TCP_NODELAY, as the library sets on
 * its TCP connections. OpenSSL's defaults everywhere else
 * (ciphers, session tickets), minimum version TLS 1.2 as the library's. */
#define _GNU_SOURCE /* accept4 */
#include "ref_common.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF_SIZE (64 * 1024)

typedef struct client {
    SSL *ssl;
    bool ready; /* handshake done */
    char *pend; /* a reply SSL_write could not take yet */
    size_t plen;
} client;

static volatile sig_atomic_t stopping;
static client *clients; /* indexed by fd */
static size_t nclients;
static char buf[BUF_SIZE];

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

static void watch(int ep, int fd, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static void drop(int fd)
{
    client *c = &clients[fd];
    SSL_free(c->ssl);
    free(c->pend);
    *c = (client){0};
    ERR_clear_error(); /* SSL_get_error needs an empty queue next time */
    close(fd);         /* also leaves the epoll set */
}

/* Waits for what OpenSSL asked for; false if the call failed for good. */
static bool wait_for(int ep, int fd, int rc)
{
    switch (SSL_get_error(clients[fd].ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
        return true;
    case SSL_ERROR_WANT_WRITE:
        watch(ep, fd, EPOLLOUT, EPOLL_CTL_MOD);
        return true;
    case SSL_ERROR_ZERO_RETURN: /* close_notify: answer it, then close */
        SSL_shutdown(clients[fd].ssl);
        return false;
    default:
        return false;
    }
}

/* Keeps a reply SSL_write could not send; it is retried with the same
 * bytes and length (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER: from this copy). */
static bool keep(int ep, int fd, const char *p, size_t n, int rc)
{
    client *c = &clients[fd];
    c->pend = malloc(n);
    if (c->pend == NULL)
        return false;
    memcpy(c->pend, p, n);
    c->plen = n;
    return wait_for(ep, fd, rc);
}

static void serve(int ep, int fd)
{
    SSL *ssl = clients[fd].ssl;
    do {
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0) {
            if (!wait_for(ep, fd, n))
                drop(fd);
            return;
        }
        ref_uppercase(buf, (size_t)n);
        int w = SSL_write(ssl, buf, n);
        if (w <= 0) {
            if (!keep(ep, fd, buf, (size_t)n, w))
                drop(fd);
            return;
        }
    } while (SSL_has_pending(ssl));
}

static void flush(int ep, int fd)
{
    client *c = &clients[fd];
    int w = SSL_write(c->ssl, c->pend, (int)c->plen);
    if (w <= 0) {
        if (!wait_for(ep, fd, w))
            drop(fd);
        return;
    }
    free(c->pend);
    c->pend = NULL;
    watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
    serve(ep, fd); /* records read ahead meanwhile get no event */
}

static void handshake(int ep, int fd)
{
    int rc = SSL_do_handshake(clients[fd].ssl);
    if (rc != 1) {
        if (!wait_for(ep, fd, rc))
            drop(fd);
        return;
    }
    clients[fd].ready = true;
    watch(ep, fd, EPOLLIN, EPOLL_CTL_MOD);
    serve(ep, fd); /* the first request may have come with the Finished */
}

static bool make_room(int fd)
{
    if ((size_t)fd < nclients)
        return true;
    size_t cap = (size_t)fd * 2 + 64;
    client *v = realloc(clients, cap * sizeof *v);
    if (v == NULL)
        return false;
    memset(v + nclients, 0, (cap - nclients) * sizeof *v);
    clients = v;
    nclients = cap;
    return true;
}

static void accept_all(int ep, int lfd, SSL_CTX *ctx)
{
    int fd, one = 1;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        SSL *ssl = make_room(fd) ? SSL_new(ctx) : NULL;
        if (ssl == NULL || !SSL_set_fd(ssl, fd)) {
            SSL_free(ssl);
            ERR_clear_error();
            close(fd);
            continue;
        }
        SSL_set_accept_state(ssl);
        clients[fd] = (client){.ssl = ssl};
        if (!ref_is_unix()) /* a flight in several records (tickets) must not wait for ACKs */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        watch(ep, fd, EPOLLIN, EPOLL_CTL_ADD);
    }
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "ref_tls: cannot use %s and %s:\n", cert, key);
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}

/* Takes --tls-cert and --tls-key out of argv; the rest is ref_listen's. */
static int take_tls_options(int argc, char **argv, const char **cert, const char **key)
{
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        bool c = strcmp(argv[i], "--tls-cert") == 0, k = strcmp(argv[i], "--tls-key") == 0;
        if ((c || k) && i + 1 < argc)
            *(c ? cert : key) = argv[++i];
        else
            argv[kept++] = argv[i];
    }
    if (*cert == NULL || *key == NULL) {
        fprintf(stderr, "usage: ref_tls --tls-cert FILE --tls-key FILE "
                        "[--listen tls://HOST:PORT] [--quiet]\n");
        exit(2);
    }
    return kept;
}

static void step(int ep, int fd)
{
    if (!clients[fd].ready)
        handshake(ep, fd);
    else if (clients[fd].pend != NULL)
        flush(ep, fd);
    else
        serve(ep, fd);
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL;
    argc = take_tls_options(argc, argv, &cert, &key);
    SSL_CTX *ctx = make_ctx(cert, key);
    ref_allow_tls();
    int lfd = ref_listen(argc, argv, "ref_tls", true);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event evs[256];
    ref_on_stop(on_stop);
    watch(ep, lfd, EPOLLIN, EPOLL_CTL_ADD);
    while (!stopping) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                accept_all(ep, lfd, ctx);
            else if (clients[evs[i].data.fd].ssl != NULL)
                step(ep, evs[i].data.fd);
        }
    }
    SSL_CTX_free(ctx);
    return 0;
}
