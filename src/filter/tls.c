/* The TLS filter (OpenSSL): ss_server_set_tls puts it next to the socket
 * (above the PROXY filter, whose header comes first on the wire); its
 * open makes the handshake on the handler's thread or fiber within the
 * handshake timeout, its recv and send decrypt and encrypt through
 * tls_io.c, its close sends close_notify. Also the reload, the request's
 * accessors and the check that a tls:// server has a certificate. */
#include "filter/tls_private.h"

#include <errno.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>

/* ---- what the handler may ask, read once the handshake is done ---- */

static char *peer_subject(SSL *ssl)
{
    X509 *cert = SSL_get0_peer_certificate(ssl);
    BIO *mem = cert != NULL ? BIO_new(BIO_s_mem()) : NULL;
    char *text = NULL;
    if (mem != NULL &&
        X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char *data;
        long len = BIO_get_mem_data(mem, &data);
        text = len >= 0 ? strndup(data, (size_t)len) : NULL;
    }
    BIO_free(mem);
    return text;
}

static void read_session_facts(struct ss__tls_state *st)
{
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(st->ssl, &alpn, &alpn_len);
    const char *name = SSL_get_servername(st->ssl, TLSEXT_NAMETYPE_host_name);
    st->version = SSL_get_version(st->ssl);
    st->alpn = alpn_len > 0 ? strndup((const char *)alpn, alpn_len) : NULL;
    st->server_name = name != NULL ? strdup(name) : NULL;
    st->peer_subject = peer_subject(st->ssl);
}

static void free_state(struct ss__tls_state *st)
{
    free(st->alpn);
    free(st->server_name);
    free(st->peer_subject);
    ss__tls_io_free(st);
    free(st);
}

/* ---- the filter ---- */

static int refuse(ss_request *req, const struct ss__tls_state *st, int err)
{
    ss_server *srv = req->server;
    if (err == -ETIMEDOUT)
        atomic_store(&req->timed_out, false); /* the handshake's deadline, not the handler's */
    const char *why = err == SS_ETLS && st != NULL ? st->reason : ss_strerror(err);
    const char *peer = ss__request_peer_name(req); /* the PROXY header's client, if one came */
    ss__log(srv->log, srv, srv->data, SS_LOG_DEBUG, "TLS handshake with %s failed: %s",
            peer[0] != '\0' ? peer : "(unnamed peer)", why);
    req->late_refusal = SS__LATE_TLS;
    return err;
}

/* Whether this request's listener speaks TLS: its other stream
 * listeners pass the filter by (no state: recv and send go below). */
static bool speaks_tls(const struct ss__tls_config *cfg, const ss__listener *l)
{
    return !cfg->tls_listeners_only || l->url.scheme == SS__SCHEME_TLS;
}

static int tls_open(ss_filter_ctx *ctx, void *config)
{
    struct ss__tls_config *cfg = config;
    ss_request *req = ctx->req;
    if (!speaks_tls(cfg, req->listener))
        return 0;
    int64_t deadline = ss__now_ms() + cfg->handshake_timeout_ms;
    struct ss__tls_state *st = calloc(1, sizeof *st);
    SSL *ssl = st != NULL ? ss__tls_config_session(req->server, cfg) : NULL;
    if (ssl == NULL || ss__tls_io_init(st, ctx, ssl) < 0) {
        free(st);
        return refuse(req, NULL, -ENOMEM);
    }
    int rc = ss__tls_io_handshake(st, deadline);
    if (rc < 0) {
        refuse(req, st, rc);
        free_state(st);
        return rc;
    }
    read_session_facts(st);
    req->tls = st;
    req->tls_established = true;
    atomic_fetch_add(&req->server->count->tls_handshakes, 1);
    ss_filter_set_state(ctx, st);
    return 0;
}

/* SS_ETLS after the handshake reaches the handler as its read's or
 * write's error, which says only that; the log says what broke (a bad
 * record, a renegotiation, an end inside a record), and for whom. */
static ssize_t broken_session(ss_filter_ctx *ctx, ssize_t rc)
{
    if (rc != SS_ETLS)
        return rc;
    ss_request *req = ctx->req;
    ss_server *srv = req->server;
    char why[sizeof((struct ss__tls_state *)NULL)->reason];
    ss__tls_io_reason(ctx->state, why, sizeof why);
    const char *peer = ss__request_peer_name(req);
    ss__log(srv->log, srv, srv->data, SS_LOG_DEBUG,
            "TLS session with %s broken after the handshake: %s",
            peer[0] != '\0' ? peer : "(unnamed peer)", why);
    return rc;
}

static ssize_t tls_recv(ss_filter_ctx *ctx, void *buf, size_t size)
{
    if (ctx->state == NULL)
        return ss_filter_recv_next(ctx, buf, size); /* a plain listener */
    return broken_session(ctx, ss__tls_io_read(ctx->state, buf, size));
}

static int tls_send(ss_filter_ctx *ctx, const void *buf, size_t size)
{
    if (ctx->state == NULL)
        return ss_filter_send_next(ctx, buf, size);
    return (int)broken_session(ctx, ss__tls_io_write(ctx->state, buf, size));
}

static bool tls_pending(const ss_filter_ctx *ctx)
{
    return ctx->state != NULL && ss__tls_io_pending(ctx->state);
}

/* close_notify goes out within the handshake timeout (and the request's,
 * if shorter): a peer that reads nothing cannot hold the request. */
static void tls_close(ss_filter_ctx *ctx)
{
    struct ss__tls_state *st = ctx->state;
    ss_request *req = ctx->req;
    if (st == NULL)
        return;
    ss__tls_io_shutdown(st, ss__now_ms() + req->server->filters.tls->handshake_timeout_ms);
    req->tls = NULL;
    free_state(st);
}

static const ss_filter tls_filter = {
    .version = SS_FILTER_VERSION,
    .name = "tls",
    .open = tls_open,
    .recv = tls_recv,
    .send = tls_send,
    .close = tls_close,
    .free_config = ss__tls_config_free,
    .pending = tls_pending,
};

/* ---- servers ---- */

SS_API int ss_server_set_tls(ss_server *srv, const ss_tls_options *opts)
{
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    if (!ss__has_stream_listener(srv))
        return SS_ENOTSTREAM;
    if (srv->filters.tls != NULL)
        return -EEXIST;
    if (srv->filters.count == SS__MAX_FILTERS)
        return -E2BIG;
    struct ss__tls_config *cfg;
    int rc = ss__tls_config_new(srv, opts, &cfg);
    if (rc < 0)
        return rc;
    /* next to the socket, or above the PROXY filter, which is always first */
    rc = ss__filters_add_at(srv, srv->filters.names_client ? 1 : 0, &tls_filter, cfg);
    if (rc < 0) {
        ss__tls_config_free(cfg);
        return rc;
    }
    srv->filters.tls = cfg;
    return 0;
}

SS_API int ss_server_reload_tls(ss_server *srv, const char *cert_file, const char *key_file)
{
    if (srv->filters.tls == NULL)
        return SS_ESTATE;
    return ss__tls_config_reload(srv, srv->filters.tls, cert_file, key_file);
}

SS_API bool ss_tls_available(void)
{
    return true;
}

void ss__tls_follow_reload(ss_server *srv)
{
    if (srv->filters.tls != NULL)
        ss__tls_config_follow(srv, srv->filters.tls);
}

int ss__tls_check_listeners(ss_server *srv)
{
    bool tls_urls = false;
    for (int i = 0; i < srv->nlisteners; i++)
        tls_urls |= srv->listeners[i]->url.scheme == SS__SCHEME_TLS;
    if (srv->filters.tls == NULL)
        return tls_urls ? SS_ETLSNOCERT : 0;
    srv->filters.tls->tls_listeners_only = tls_urls;
    return 0;
}

/* ---- requests ---- */

SS_API bool ss_request_tls(const ss_request *req)
{
    return req->tls != NULL;
}

SS_API const char *ss_request_tls_version(const ss_request *req)
{
    return req->tls != NULL ? req->tls->version : NULL;
}

SS_API const char *ss_request_tls_alpn(const ss_request *req)
{
    return req->tls != NULL ? req->tls->alpn : NULL;
}

SS_API const char *ss_request_tls_server_name(const ss_request *req)
{
    return req->tls != NULL ? req->tls->server_name : NULL;
}

SS_API const char *ss_request_tls_peer_subject(const ss_request *req)
{
    return req->tls != NULL ? req->tls->peer_subject : NULL;
}
