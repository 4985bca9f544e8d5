/* loadgen built without OpenSSL: tls:// targets are refused when the run
 * starts (lg_tls_create fails), so no session is ever opened and the other
 * functions are never reached; they exist so the engine links unchanged. */
#include "lg.h"

#include <errno.h>

int lg_tls_create(lg_tls **out, unsigned slots, bool resume)
{
    (void)slots;
    (void)resume;
    *out = NULL;
    return -EPROTONOSUPPORT;
}

void lg_tls_free(lg_tls *t)
{
    (void)t;
}

struct ssl_st *lg_tls_open(lg_tls *t, int fd, unsigned slot)
{
    (void)t;
    (void)fd;
    (void)slot;
    return NULL;
}

int lg_tls_handshake(struct ssl_st *ssl, bool *resumed)
{
    (void)ssl;
    *resumed = false;
    return LG_TLS_FAILED;
}

ssize_t lg_tls_send(struct ssl_st *ssl, const void *buf, size_t len)
{
    (void)ssl;
    (void)buf;
    (void)len;
    return LG_TLS_FAILED;
}

ssize_t lg_tls_recv(struct ssl_st *ssl, void *buf, size_t len)
{
    (void)ssl;
    (void)buf;
    (void)len;
    return LG_TLS_FAILED;
}

bool lg_tls_pending(struct ssl_st *ssl)
{
    (void)ssl;
    return false;
}

void lg_tls_close(struct ssl_st *ssl, bool clean)
{
    (void)ssl;
    (void)clean;
}
