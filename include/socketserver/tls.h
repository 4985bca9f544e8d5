/*
 * socketserver/tls.h — TLS on a stream listener: tls:// URLs, the
 * certificate, key and client verification a server is given before
 * activate, their reload on a running server, and what a request can tell
 * of its TLS session (version, ALPN, SNI, the client's certificate).
 *
 * TLS is OpenSSL's (3.x), in a filter next to the socket (see
 * socketserver/filter.h): the handshake runs on the handler's thread or
 * fiber before setup, and the handler reads and writes as it would
 * without TLS. Optional at build time (CMake SS_TLS=AUTO|ON|OFF): without
 * it, every call here that would need OpenSSL returns SS_ENOTSUPPORTED.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/tls.md.
 */
#ifndef SOCKETSERVER_TLS_H
#define SOCKETSERVER_TLS_H

#include <socketserver/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether a client must present a certificate (checked against ca_file). */
typedef enum ss_tls_verify {
    SS_TLS_VERIFY_NONE = 0, /* none is asked for (the default) */
    SS_TLS_VERIFY_OPTIONAL, /* asked for; a client may send none, but one it sends
                               must verify, or the handshake fails */
    SS_TLS_VERIFY_REQUIRED, /* a certificate that verifies is required */
} ss_tls_verify;

/* Protocol versions, as on the wire (RFC 8446, section 5.1). */
#define SS_TLS_1_2 0x0303
#define SS_TLS_1_3 0x0304

/* Defaults of ss_tls_options (zero in a field picks them). */
#define SS_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS 10000

/* What ss_server_set_tls takes. Strings are copied during the call; zero
 * (or NULL) in a field is its default. */
typedef struct ss_tls_options {
    /* PEM: the server's certificate, then the chain up to (not including)
     * the root. Required. */
    const char *cert_file;
    /* PEM: the certificate's private key (unencrypted). NULL: the key is
     * in cert_file. */
    const char *key_file;
    /* PEM: the certificate authorities client certificates must chain
     * to. Required by SS_TLS_VERIFY_OPTIONAL and _REQUIRED. */
    const char *ca_file;
    ss_tls_verify verify;
    /* ALPN protocols offered (RFC 7301), NULL-terminated, the server's
     * preference first ("h2", "http/1.1"); each 1 to 255 bytes. NULL: no
     * ALPN. A client offering only others is refused with the
     * no_application_protocol alert (RFC 7301, section 3.2). */
    const char *const *alpn;
    /* The lowest version accepted: SS_TLS_1_2 (0 means it) or
     * SS_TLS_1_3. The highest is OpenSSL's (TLS 1.3). Ciphers and groups
     * are OpenSSL's defaults (its system configuration applies). */
    int min_version;
    /* The most a handshake may take, in milliseconds, from the start of
     * the connection's turn on its thread or fiber; 0:
     * SS_TLS_DEFAULT_HANDSHAKE_TIMEOUT_MS. The request timeout, if
     * shorter, bounds each wait as well. */
    int handshake_timeout_ms;
} ss_tls_options;

/* ------------------------------------------------------------------------ */
/* Servers                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Puts TLS on the server's connections, with the certificate, key, CA and
 * settings of opts, loaded and checked during the call. A server with a
 * "tls://HOST:PORT" listener (a TCP listener whose connections all speak
 * TLS; also a TCP socket adopted under the name "tls", as
 * ss_server_hand_over names a tls:// one) needs this call before
 * activate, or activate fails with SS_ETLSNOCERT. Which listeners speak
 * TLS is settled at activate: with tls:// listeners, those only (the
 * server's other stream listeners stay plain); without, every stream
 * listener ("tcp://", "unix:": TLS over a Unix socket; the connection of
 * ss_server_new_connection). Datagram listeners never do. One setting
 * per server: listeners that need another certificate need another
 * server (docs/tls.md, "Several listeners").
 * The TLS filter sits next to the socket, above the PROXY protocol's
 * (ss_server_set_proxy_protocol: the proxy's header comes before the
 * TLS handshake) and below every ss_server_add_filter.
 *
 * Each connection, on its handler's thread or fiber before setup, makes
 * its handshake within opts->handshake_timeout_ms; a connection whose
 * handshake fails (not TLS, a version, certificate or ALPN refused, the
 * peer gone or silent) is closed without setup and counted in
 * ss_stats.tls_handshake_failures and filter_refused (never
 * handle_error); a completed one in tls_handshakes. Then every read and
 * write of the handler is decrypted and encrypted on its way; after
 * finish the server sends close_notify (RFC 8446, section 6.1) unless the
 * connection broke. A client that closes without close_notify between
 * records is an end of stream (most clients do); one that stops in the
 * middle of a record, or breaks the protocol, makes the read fail with
 * SS_ETLS (the server's log says what broke, at SS_LOG_DEBUG, naming the
 * client). Renegotiation is refused.
 *
 * Before activate, from the thread setting the server up. Returns 0;
 * -EINVAL for a NULL opts or cert_file (or a file name of PATH_MAX bytes
 * or more), an unknown verify or min_version,
 * a negative timeout, an ALPN name of 0 or more than 255 bytes, or a
 * verify mode without ca_file; SS_ETLSCERT if a file cannot be read or
 * parsed, or the key does not match the certificate (the reason goes to
 * the server's log, ss_server_set_log, at SS_LOG_ERROR); -EEXIST if set
 * already; SS_ESTATE after activate; SS_ENOTSTREAM on a server with
 * no stream listener; SS_ENOTSUPPORTED in a library built without TLS
 * (see ss_tls_available);
 * -E2BIG past 16 filters; -ENOMEM.
 */
SS_API int ss_server_set_tls(ss_server *srv, const ss_tls_options *opts);

/*
 * Loads a new certificate and key into a running server: connections
 * accepted afterwards use them, those under way keep what they began
 * with. cert_file and key_file name the new files (copied); NULL re-reads
 * the files named last (the key file NULL: the key is in the certificate
 * file). The CA file is read again too, so a renewed CA bundle applies as
 * well. On any failure the server keeps serving with what it had.
 * Session tickets issued before the reload are not resumed after it.
 *
 * Any time after ss_server_set_tls, from any thread (not from a signal
 * handler: it reads files and allocates), also while serving; reloads
 * from several threads at once are serialized. Under forking or worker
 * processes, from the serving loop's thread (its service_actions hook,
 * as the examples' SIGUSR1 does): that thread forks, and a fork made
 * while another thread is inside a reload would copy its locks held.
 *
 * Every process of the server sees it. A forking server's children
 * forked afterwards get the new pair. With worker processes
 * (ss_server_set_processes) the supervisor's reload reaches every
 * worker: each loads the same files itself before its next handshake
 * (the reload's names and a generation number sit in memory the
 * processes share, made at ss_server_set_tls), and a worker started
 * later is forked with the new pair. A worker that cannot load them (the
 * files changed or went away in between) keeps the pair it had, logs why
 * at SS_LOG_ERROR and counts it in ss_stats.tls_reload_failures (summed
 * into the supervisor's counters); it tries again at the next reload.
 * NULL names are those of the last reload of any of the server's
 * processes.
 *
 * Returns 0; SS_ETLSCERT (reason in the log, as above; also a name of
 * PATH_MAX bytes or more); SS_ESTATE if the server has no TLS;
 * SS_ENOTSUPPORTED without TLS built in; -ENOMEM. Each failure also
 * counts in ss_stats.tls_reload_failures.
 */
SS_API int ss_server_reload_tls(ss_server *srv, const char *cert_file, const char *key_file);

/* True if this library was built with TLS (OpenSSL): tls:// URLs and
 * ss_server_set_tls work. Any thread. */
SS_API bool ss_tls_available(void);

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/* True if the request's connection speaks TLS (its handshake is done:
 * a request reaches setup only then). Until finish returns, from the
 * request's thread. */
SS_API bool ss_request_tls(const ss_request *req);

/*
 * The request's TLS session, until finish returns (strings owned by the
 * request, NUL-terminated; NULL for a request without TLS):
 *   ss_request_tls_version: "TLSv1.2" or "TLSv1.3";
 *   ss_request_tls_alpn: the protocol ALPN chose; NULL when the client
 *     offered none or the server set none;
 *   ss_request_tls_server_name: the host name the client asked for (SNI,
 *     RFC 6066 section 3); NULL when it sent none;
 *   ss_request_tls_peer_subject: the subject of the certificate the client
 *     sent and the server verified, as RFC 2253 text ("CN=alice,O=Example");
 *     NULL when it sent none (always NULL under SS_TLS_VERIFY_NONE).
 */
SS_API const char *ss_request_tls_version(const ss_request *req);
SS_API const char *ss_request_tls_alpn(const ss_request *req);
SS_API const char *ss_request_tls_server_name(const ss_request *req);
SS_API const char *ss_request_tls_peer_subject(const ss_request *req);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_TLS_H */
