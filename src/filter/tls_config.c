/* A server's TLS settings (ss_server_set_tls) and its current SSL_CTX:
 * the certificate chain, key, CA and verification mode, ALPN, the lowest
 * version. A reload builds a whole new SSL_CTX from the files and swaps
 * it in under a write lock; a session takes a reference to the SSL_CTX it
 * was made from (SSL_new), so those under way keep theirs until they end
 * and the old one is freed with the last of them. */
#include "filter/tls_private.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SESSION_ID_CONTEXT "socketserver"

const char *ss__tls_reason(char *buf, size_t size, const char *otherwise)
{
    unsigned long code = ERR_get_error();
    if (code == 0)
        snprintf(buf, size, "%s", otherwise);
    else
        ERR_error_string_n(code, buf, size);
    ERR_clear_error();
    return buf;
}

static void log_load_failure(ss_server *srv, const char *what, const char *file)
{
    char reason[256];
    ss__tls_reason(reason, sizeof reason, "unknown reason");
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR, "TLS: cannot use %s %s: %s", what,
            file != NULL ? file : "", reason);
}

/* RFC 7301, section 3.2: the server's first preference the client also
 * offers; none in common refuses the handshake (no_application_protocol). */
static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *out_len,
                       const unsigned char *in, unsigned int in_len, void *arg)
{
    (void)ssl;
    const struct ss__tls_config *cfg = arg;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, out_len, cfg->alpn, (unsigned)cfg->alpn_len, in, in_len) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int verify_mode(int verify)
{
    if (verify == SS_TLS_VERIFY_REQUIRED)
        return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    return verify == SS_TLS_VERIFY_OPTIONAL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE;
}

/* The CA file verifies client certificates, and its names go in the
 * CertificateRequest so a client knows which certificate to send. */
static bool load_ca(ss_server *srv, SSL_CTX *ctx, const char *ca_file)
{
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (names == NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        log_load_failure(srv, "the CA file", ca_file);
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    return true;
}

static bool load_pair(ss_server *srv, SSL_CTX *ctx, const char *cert_file, const char *key_file)
{
    const char *key = key_file != NULL ? key_file : cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        log_load_failure(srv, "the certificate file", cert_file);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        /* without a key file, the key was looked for beside the certificate */
        log_load_failure(srv,
                         key_file != NULL ? "the key file"
                                          : "a private key (no key file given) from the "
                                            "certificate file",
                         key);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        log_load_failure(srv, "the key, which does not match the certificate, in", key);
        return false;
    }
    return true;
}

/* The settings every SSL_CTX of this server has; renegotiation is refused
 * (its use is attacks and stalls, not features). */
static void apply_settings(SSL_CTX *ctx, const struct ss__tls_config *cfg)
{
    SSL_CTX_set_min_proto_version(ctx,
                                  cfg->min_version == SS_TLS_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_verify(ctx, verify_mode(cfg->verify), NULL);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SESSION_ID_CONTEXT,
                                   sizeof SESSION_ID_CONTEXT - 1);
    if (cfg->alpn != NULL)
        SSL_CTX_set_alpn_select_cb(ctx, select_alpn, (void *)cfg);
}

/* What loads but will hurt, warned at SS_LOG_WARNING at start and at
 * each reload. */

/* A private key any user may read is no longer private (Debian keeps
 * them 0640 root:ssl-cert, make-test-cert.sh 0600). */
static void warn_if_key_exposed(ss_server *srv, const char *key_file)
{
    struct stat st;
    if (stat(key_file, &st) != 0 || !(st.st_mode & S_IROTH))
        return;
    ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
            "TLS: the key file %s is readable by every user (mode %04o): chmod o-r it", key_file,
            (unsigned)(st.st_mode & 07777));
}

/* "2026-11-29 15:16:02 UTC", or "an unreadable date". */
static void format_asn1_time(const ASN1_TIME *t, char *buf, size_t size)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "an unreadable date");
}

/* Clients refuse a certificate out of its validity period (RFC 5280,
 * 6.1.3): the server would fail every handshake while looking healthy. */
static void warn_if_cert_out_of_date(ss_server *srv, SSL_CTX *ctx, const char *cert_file)
{
    X509 *cert = SSL_CTX_get0_certificate(ctx);
    if (cert == NULL)
        return;
    const ASN1_TIME *after = X509_get0_notAfter(cert), *before = X509_get0_notBefore(cert);
    bool expired = X509_cmp_current_time(after) < 0;
    if (!expired && X509_cmp_current_time(before) <= 0)
        return;
    char when[64];
    format_asn1_time(expired ? after : before, when, sizeof when);
    ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
            "TLS: the certificate in %s %s %s: clients will refuse it", cert_file,
            expired ? "expired on" : "is not valid before", when);
}

/* A new SSL_CTX from cfg's settings and these files, or NULL (logged). */
static SSL_CTX *build_ctx(ss_server *srv, const struct ss__tls_config *cfg, const char *cert_file,
                          const char *key_file, int *err)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    *err = -ENOMEM;
    if (ctx == NULL)
        return NULL;
    apply_settings(ctx, cfg);
    *err = SS_ETLSCERT;
    if (!load_pair(srv, ctx, cert_file, key_file) ||
        (cfg->ca_file != NULL && !load_ca(srv, ctx, cfg->ca_file))) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    warn_if_key_exposed(srv, key_file != NULL ? key_file : cert_file);
    warn_if_cert_out_of_date(srv, ctx, cert_file);
    *err = 0;
    return ctx;
}

/* ---- options ---- */

static int check_options(const ss_tls_options *o)
{
    if (o == NULL || o->cert_file == NULL || o->handshake_timeout_ms < 0)
        return -EINVAL;
    if (o->verify != SS_TLS_VERIFY_NONE && o->verify != SS_TLS_VERIFY_OPTIONAL &&
        o->verify != SS_TLS_VERIFY_REQUIRED)
        return -EINVAL;
    if (o->min_version != 0 && o->min_version != SS_TLS_1_2 && o->min_version != SS_TLS_1_3)
        return -EINVAL;
    if (o->verify != SS_TLS_VERIFY_NONE && o->ca_file == NULL)
        return -EINVAL;
    return 0;
}

/* "h2", "http/1.1" -> "\x02h2\x08http/1.1" (RFC 7301, section 3.1). */
static int wire_alpn(const char *const *names, struct ss__tls_config *cfg)
{
    size_t total = 0;
    for (const char *const *n = names; *n != NULL; n++) {
        size_t len = strlen(*n);
        if (len == 0 || len > 255)
            return -EINVAL;
        total += 1 + len;
    }
    if (total == 0)
        return 0; /* an empty list: no ALPN */
    if ((cfg->alpn = malloc(total)) == NULL)
        return -ENOMEM;
    for (const char *const *n = names; *n != NULL; n++) {
        size_t len = strlen(*n);
        cfg->alpn[cfg->alpn_len++] = (unsigned char)len;
        memcpy(cfg->alpn + cfg->alpn_len, *n, len);
        cfg->alpn_len += len;
    }
    return 0;
}

/* strdup that keeps NULL; false only when out of memory. */
static bool copy_name(char **dst, const char *src)
{
    *dst = src != NULL ? strdup(src) : NULL;
    return src == NULL || *dst != NULL;
}

static int copy_options(const ss_tls_options *o, struct ss__tls_config *cfg)
{
    cfg->verify = o->verify;
    cfg->min_version = o->min_version != 0 ? o->min_version : SS_TLS_1_2;
    cfg->handshake_timeout_ms = o->handshake_timeout_ms != 0 ? o->handshake_timeout_ms
                                                             : SS_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (!copy_name(&cfg->cert_file, o->cert_file) || !copy_name(&cfg->key_file, o->key_file) ||
        !copy_name(&cfg->ca_file, o->ca_file))
        return -ENOMEM;
    return o->alpn != NULL ? wire_alpn(o->alpn, cfg) : 0;
}

int ss__tls_config_new(ss_server *srv, const ss_tls_options *opts, struct ss__tls_config **out)
{
    int rc = check_options(opts);
    if (rc < 0)
        return rc;
    struct ss__tls_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return -ENOMEM;
    pthread_mutex_init(&cfg->reload_lock, NULL);
    pthread_rwlock_init(&cfg->ctx_lock, NULL);
    rc = copy_options(opts, cfg);
    if (rc == 0 && !ss__tls_shared_fits(cfg->cert_file, cfg->key_file))
        rc = -EINVAL; /* no file the system can open has such a name */
    if (rc == 0)
        rc = ss__tls_shared_new(&cfg->shared, cfg->cert_file, cfg->key_file);
    if (rc == 0)
        cfg->ctx = build_ctx(srv, cfg, cfg->cert_file, cfg->key_file, &rc);
    if (rc < 0) {
        ss__tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

void ss__tls_config_free(void *config)
{
    struct ss__tls_config *cfg = config;
    SSL_CTX_free(cfg->ctx);
    ss__tls_shared_free(cfg->shared);
    free(cfg->cert_file);
    free(cfg->key_file);
    free(cfg->ca_file);
    free(cfg->alpn);
    pthread_rwlock_destroy(&cfg->ctx_lock);
    pthread_mutex_destroy(&cfg->reload_lock);
    free(cfg);
}

/* ---- reload and sessions ---- */

/* Copies of the names a reload is given (key_file NULL: in cert_file). */
static int copy_pair(const char *cert_file, const char *key_file, char **cert, char **key)
{
    *cert = strdup(cert_file);
    *key = key_file != NULL ? strdup(key_file) : NULL;
    if (*cert != NULL && (key_file == NULL || *key != NULL))
        return 0;
    free(*cert);
    free(*key);
    return -ENOMEM;
}

/* Under reload_lock: fresh, loaded from cert and key (taken), becomes
 * the certificate of new sessions. */
static void install(ss_server *srv, struct ss__tls_config *cfg, SSL_CTX *fresh, char *cert,
                    char *key, const char *how)
{
    free(cfg->cert_file);
    free(cfg->key_file);
    cfg->cert_file = cert;
    cfg->key_file = key;
    pthread_rwlock_wrlock(&cfg->ctx_lock);
    SSL_CTX *old = cfg->ctx;
    cfg->ctx = fresh;
    pthread_rwlock_unlock(&cfg->ctx_lock);
    SSL_CTX_free(old); /* sessions made from it hold their own references */
    ss__log(srv->log, srv, srv->data, SS_LOG_INFO, "TLS: certificate reloaded from %s%s", cert,
            how);
}

/* Under reload_lock. Without names: those the last reload of any of the
 * server's processes loaded (this one's own, unless another reloaded). */
static int reload_locked(ss_server *srv, struct ss__tls_config *cfg, const char *cert_file,
                         const char *key_file)
{
    char *cert = NULL, *key = NULL;
    unsigned seq;
    int rc = cert_file != NULL ? copy_pair(cert_file, key_file, &cert, &key)
                               : ss__tls_shared_names(cfg->shared, &cert, &key, &seq);
    if (rc == 0 && !ss__tls_shared_fits(cert, key))
        rc = -ENAMETOOLONG;
    SSL_CTX *fresh = rc == 0 ? build_ctx(srv, cfg, cert, key, &rc) : NULL;
    if (fresh == NULL) {
        free(cert);
        free(key);
        return rc == -ENAMETOOLONG ? SS_ETLSCERT : rc;
    }
    /* the server's other processes follow (ss__tls_config_follow) */
    atomic_store(&cfg->seen, ss__tls_shared_publish(cfg->shared, cert, key));
    install(srv, cfg, fresh, cert, key, "");
    return 0;
}

int ss__tls_config_reload(ss_server *srv, struct ss__tls_config *cfg, const char *cert_file,
                          const char *key_file)
{
    pthread_mutex_lock(&cfg->reload_lock);
    int rc = reload_locked(srv, cfg, cert_file, key_file);
    if (rc < 0)
        atomic_fetch_add(&srv->count->tls_reload_failures, 1);
    pthread_mutex_unlock(&cfg->reload_lock);
    return rc;
}

/* Under reload_lock: one attempt per published reload, failed or not (a
 * failure would fail again at every handshake). */
static void follow_locked(ss_server *srv, struct ss__tls_config *cfg)
{
    unsigned seq = ss__tls_shared_seq(cfg->shared);
    if (seq == atomic_load(&cfg->seen))
        return; /* another thread of this process followed it meanwhile */
    char *cert = NULL, *key = NULL;
    int rc = ss__tls_shared_names(cfg->shared, &cert, &key, &seq);
    if (rc == -EAGAIN)
        return; /* a writer is in its section: the next look */
    atomic_store(&cfg->seen, seq);
    SSL_CTX *fresh = rc == 0 ? build_ctx(srv, cfg, cert, key, &rc) : NULL;
    if (fresh != NULL) {
        install(srv, cfg, fresh, cert, key, ", as another process of the server did");
        return;
    }
    free(cert);
    free(key);
    atomic_fetch_add(&srv->count->tls_reload_failures, 1);
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR,
            "TLS: process %ld could not reload the certificate another process of the server "
            "reloaded: %s; it serves on with the one it had",
            (long)getpid(),
            rc == SS_ETLSCERT ? "the files did not load here (the line above says why)"
                              : ss_strerror(rc));
}

void ss__tls_config_follow(ss_server *srv, struct ss__tls_config *cfg)
{
    if (ss__tls_shared_seq(cfg->shared) == atomic_load_explicit(&cfg->seen, memory_order_relaxed))
        return;
    pthread_mutex_lock(&cfg->reload_lock);
    follow_locked(srv, cfg);
    pthread_mutex_unlock(&cfg->reload_lock);
}

SSL *ss__tls_config_session(ss_server *srv, struct ss__tls_config *cfg)
{
    ss__tls_config_follow(srv, cfg);
    pthread_rwlock_rdlock(&cfg->ctx_lock);
    SSL *ssl = SSL_new(cfg->ctx); /* takes a reference to the SSL_CTX */
    pthread_rwlock_unlock(&cfg->ctx_lock);
    return ssl;
}
