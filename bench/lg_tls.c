/* loadgen's TLS client (tls:// targets), on OpenSSL, driven by the engine's
 * non-blocking epoll loop: every call here returns at once and says which
 * readiness it waits for.
 *
 * The client is what a benchmark needs and no more: it does not check the
 * server's certificate (the target is this machine, see lg_target.c), names
 * "localhost" in SNI, and reads ahead (one recv takes whole records, so a
 * reply costs one system call, as over plain TCP). With resumption on, each
 * connection slot keeps the last session ticket its server sent and offers
 * it on its next connection. */
#include "lg.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

struct lg_tls {
    SSL_CTX *ctx;
    SSL_SESSION **sessions; /* [slot]: the ticket to offer next; NULL: none */
    unsigned slots;
    int slot_index; /* SSL ex_data index holding slot + 1 */
};

/* TLS 1.3 tickets arrive after the handshake, while the reply is read:
 * OpenSSL hands each one here. Returning 1 keeps the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    lg_tls *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    uintptr_t slot1 = (uintptr_t)SSL_get_ex_data(ssl, t->slot_index);
    if (slot1 == 0 || slot1 > t->slots)
        return 0;
    SSL_SESSION_free(t->sessions[slot1 - 1]);
    t->sessions[slot1 - 1] = sess;
    return 1;
}

static int configure(lg_tls *t, bool resume)
{
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL); /* loopback only */
    SSL_CTX_set_read_ahead(t->ctx, 1);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_app_data(t->ctx, t);
    if (!resume) {
        SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
        return 0;
    }
    t->slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (t->slot_index < 0)
        return -ENOMEM;
    SSL_CTX_set_session_cache_mode(t->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(t->ctx, on_new_session);
    return 0;
}

int lg_tls_create(lg_tls **out, unsigned slots, bool resume)
{
    lg_tls *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    t->slots = slots;
    t->slot_index = -1;
    t->sessions = calloc(slots, sizeof *t->sessions);
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->sessions == NULL || t->ctx == NULL || configure(t, resume) < 0) {
        lg_tls_free(t);
        return -ENOMEM;
    }
    signal(SIGPIPE, SIG_IGN); /* OpenSSL's socket BIO writes with write() */
    *out = t;
    return 0;
}

void lg_tls_free(lg_tls *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; t->sessions != NULL && i < t->slots; i++)
        SSL_SESSION_free(t->sessions[i]);
    free(t->sessions);
    SSL_CTX_free(t->ctx);
    free(t);
}

struct ssl_st *lg_tls_open(lg_tls *t, int fd, unsigned slot)
{
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL || !SSL_set_fd(ssl, fd) || !SSL_set_tlsext_host_name(ssl, "localhost")) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    if (t->slot_index >= 0) {
        SSL_set_ex_data(ssl, t->slot_index, (void *)((uintptr_t)slot + 1));
        if (slot < t->slots && t->sessions[slot] != NULL)
            SSL_set_session(ssl, t->sessions[slot]);
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

/* What a failed call waits for; errors leave the thread's queue empty, as
 * SSL_get_error needs for the next call. */
static int outcome(SSL *ssl, int rc)
{
    switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        return LG_TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return LG_TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* the peer's close_notify */
    default:
        ERR_clear_error();
        return LG_TLS_FAILED;
    }
}

int lg_tls_handshake(struct ssl_st *ssl, bool *resumed)
{
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        *resumed = SSL_session_reused(ssl) == 1;
        return 1;
    }
    rc = outcome(ssl, rc);
    return rc == 0 ? LG_TLS_FAILED : rc;
}

ssize_t lg_tls_send(struct ssl_st *ssl, const void *buf, size_t len)
{
    int rc = SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (rc > 0)
        return rc;
    rc = outcome(ssl, rc);
    return rc == 0 ? LG_TLS_FAILED : rc;
}

ssize_t lg_tls_recv(struct ssl_st *ssl, void *buf, size_t len)
{
    int rc = SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    return rc > 0 ? rc : outcome(ssl, rc);
}

bool lg_tls_pending(struct ssl_st *ssl)
{
    return SSL_has_pending(ssl) == 1;
}

void lg_tls_close(struct ssl_st *ssl, bool clean)
{
    if (clean)
        SSL_shutdown(ssl); /* close_notify, not waiting for the server's */
    SSL_free(ssl);
    ERR_clear_error();
}
