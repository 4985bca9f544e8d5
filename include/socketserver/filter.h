/*
 * socketserver/filter.h — filters: an ordered chain of layers between a
 * stream listener's sockets and its handler's I/O (what Python users do by
 * overriding get_request), the chain's calls to the layer below, and the
 * built-in PROXY protocol filter with what it tells the handler.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/filters.md.
 */
#ifndef SOCKETSERVER_FILTER_H
#define SOCKETSERVER_FILTER_H

#include <socketserver/base.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The filter table                                                         */
/* ------------------------------------------------------------------------ */

/* One filter's place in one request's chain: which request, which layer,
 * and the filter's per-connection state. Owned by the library; valid from
 * open until close returns. */
typedef struct ss_filter_ctx ss_filter_ctx;

/* 2 added `pending`; tables of version 1 (without that slot, and so one
 * pointer shorter) are still accepted, and their pending is never read. */
#define SS_FILTER_VERSION 2

/*
 * A filter, as a const table the application keeps alive for as long as
 * any server uses it (borrowed, like a handler table). Every slot but
 * version may be NULL: a NULL open, close or free_config does nothing, a
 * NULL recv or send passes the bytes on unchanged (ss_filter_recv_next,
 * ss_filter_send_next).
 *
 * Each request of a server with filters gets its own chain: one ctx per
 * filter, in the order they were added, the first added closest to the
 * socket. Every slot of a request runs on that request's handler thread
 * or fiber (a forked child's under forking), never on the serving loop;
 * two requests' slots may run at once on different threads, so `config`
 * is shared and must only be read (or guarded by the filter).
 *
 *   open(ctx, config): before the handler's setup, layers in order from
 *     the socket up, so a filter's open may already read through the
 *     layers below it. Keep per-connection state with
 *     ss_filter_set_state. Returns 0, or a negative errno to refuse the
 *     connection: the filters below it are closed, setup never runs, the
 *     socket is closed, and the connection counts in
 *     ss_stats.filter_refused (not in handler_errors, and handle_error is
 *     not called: a refused connection is the client's fault, not the
 *     handler's).
 *   recv(ctx, buf, size): the handler's (or the layer above's) read; up to
 *     size (> 0) bytes into buf. Returns the count (> 0), 0 at the end of
 *     the stream, or a negative errno. Get bytes with ss_filter_recv_next.
 *   send(ctx, buf, size): writes all size bytes (or fails). Returns 0 or a
 *     negative errno. Pass bytes on with ss_filter_send_next.
 *   close(ctx): after finish and the final flush, before the socket is
 *     shut down, from the top of the chain down; for each filter whose
 *     open succeeded. Free the state here. What it sends with
 *     ss_filter_send_next still reaches the client (a goodbye: TLS's
 *     close_notify, RFC 8446 section 6.1), also after a drain closed the
 *     request as idle, which ends the socket's read side only
 *     (ss_request_idle_closed(ss_filter_request(ctx)) tells it so); not
 *     after the client reset the connection, nor after drain's deadline
 *     (step 4 of ss_server_drain shuts both sides).
 *   free_config(config): when the server is freed, once per
 *     ss_server_add_filter that succeeded.
 *   pending(ctx) (version 2): whether this filter holds input: bytes it
 *     has already taken from the layer below and not yet returned to the
 *     layer above (a read-ahead buffer, the rest of a header's read, a
 *     decrypted record, SSL_pending's bytes), so that its next recv would
 *     return data without waiting on the layer below. Drain's idle rule
 *     (limits.h, "Idle, precisely") asks every open filter of the chain
 *     before a read that would be an idle wait: a request whose chain
 *     holds input is busy, not idle, and its read goes on, so a message
 *     the client already sent is served, never lost. Runs on the
 *     request's own thread or fiber, between its other slots, only after
 *     open succeeded; it must not read, write, block or change what recv
 *     will return (a look at the filter's state only). NULL (and every
 *     version 1 table) means "holds nothing": a filter whose recv may keep
 *     bytes back must fill it, or a drain may close its request as idle
 *     with a message in its buffer.
 */
typedef struct ss_filter {
    int version; /* SS_FILTER_VERSION */
    const char *name;
    int (*open)(ss_filter_ctx *ctx, void *config);
    ssize_t (*recv)(ss_filter_ctx *ctx, void *buf, size_t size);
    int (*send)(ss_filter_ctx *ctx, const void *buf, size_t size);
    void (*close)(ss_filter_ctx *ctx);
    void (*free_config)(void *config);
    /* version 2; appended last, so a version 1 table stays valid */
    bool (*pending)(const ss_filter_ctx *ctx);
} ss_filter;

/*
 * Adds `filter` with `config` (owned by the server from here on, released
 * with filter->free_config when the server is freed) at the top of the
 * chain: the first filter added is the closest to the socket. At most 16.
 * Before activate, from the thread setting the server up. Returns 0;
 * -EINVAL if filter is NULL or of a version this library does not know
 * (not 1 to SS_FILTER_VERSION; config is then not taken); SS_ESTATE
 * after activate; SS_ENOTSTREAM when every listener of the server is a
 * datagram one (udp, unixgram), whose requests are single packets (with
 * both kinds, the filters apply to the stream listeners' requests only);
 * -E2BIG past 16; -ENOMEM.
 */
SS_API int ss_server_add_filter(ss_server *srv, const ss_filter *filter, void *config);

/* ------------------------------------------------------------------------ */
/* Inside a filter                                                          */
/* ------------------------------------------------------------------------ */

/*
 * The layer below this one: the next filter, or the socket. They honour
 * the request's timeout (ss_request_set_timeout: -ETIMEDOUT after that
 * long without progress) and wait the dispatcher's way: a pool fiber
 * parks, a sync server's wait ends with -ECANCELED on a stop request.
 * recv_next returns the byte count (> 0), 0 at the end of the stream or a
 * negative errno; send_next writes all size bytes and returns 0 or a
 * negative errno (-EPIPE, -ECONNRESET when the peer has gone). Only from
 * the slot being run for ctx (its request's thread).
 */
SS_API ssize_t ss_filter_recv_next(ss_filter_ctx *ctx, void *buf, size_t size);
SS_API int ss_filter_send_next(ss_filter_ctx *ctx, const void *buf, size_t size);

/* The filter's per-connection state (NULL until set; the filter owns what
 * it points to and frees it in close), and the request the chain belongs
 * to, whose accessors (address, timeout, data) a filter may use. */
SS_API void ss_filter_set_state(ss_filter_ctx *ctx, void *state);
SS_API void *ss_filter_state(const ss_filter_ctx *ctx);
SS_API ss_request *ss_filter_request(const ss_filter_ctx *ctx);

/* ------------------------------------------------------------------------ */
/* The PROXY protocol (a listener behind a load balancer)                   */
/* ------------------------------------------------------------------------ */

#define SS_PROXY_V1 1u /* the text header: "PROXY TCP4 ...\r\n" */
#define SS_PROXY_V2 2u /* the binary header, with TLVs */

/* What ss_server_set_proxy_protocol accepts; zero (or a NULL pointer) is
 * the default of each field. */
typedef struct ss_proxy_options {
    /* SS_PROXY_V1 | SS_PROXY_V2, the versions accepted; 0: both. */
    unsigned versions;
    /* The sources allowed to send a header, as CIDRs or addresses
     * ("10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"), NULL-terminated;
     * NULL: loopback only ("127.0.0.0/8", "::1"). A CIDR is the network's
     * first address (no bit set past the prefix: "10.0.0.1/8" is refused)
     * and a plain decimal prefix length ("/08" is refused); see
     * ss_proxy_check_trusted. IPv4 and IPv6 meet in the IPv4-mapped block
     * (RFC 4291 2.5.5.2): an IPv4 peer a.b.c.d and the IPv4 peer of a
     * dual-stack listener, [::ffff:a.b.c.d], are the same source, matched
     * by IPv4 entries ("192.0.2.0/24") and IPv4-mapped ones
     * ("::ffff:192.0.2.0/120") alike. So "0.0.0.0/0" trusts every IPv4
     * source (whichever way it arrives) and no IPv6 one, and "::/0" trusts
     * every source, IPv4 included. Not used by Unix stream listeners (see
     * below). Copied during the call. */
    const char *const *trusted;
    /* The most a whole header may take to arrive, in milliseconds, from
     * the start of the handler's turn; 0: 3000. The request timeout, if
     * shorter, bounds each wait as well. */
    int header_timeout_ms;
} ss_proxy_options;

/*
 * Puts the PROXY protocol filter (v1 and v2, as specified by HAProxy's
 * doc/proxy-protocol.txt, "The PROXY protocol, Versions 1 & 2") next to
 * the socket, below any filter added before or after: every connection
 * must begin with a valid header from a trusted source, or it is refused.
 * Never guessed (spec section 2): a connection without a valid header is
 * refused, not served as a direct one.
 *
 * Each connection, on its handler's thread or fiber before setup:
 *   - its peer (the proxy) must be trusted, or it is refused at once
 *     (SS_EPROXYUNTRUSTED; ss_stats.proxy_untrusted). A Unix stream
 *     listener trusts its peers: who may connect is decided by the socket
 *     file's mode (ss_server_set_unix_mode) or, for an abstract "@name",
 *     by anyone in the network namespace, so use a path there;
 *   - the header is read through the layer below, bytes past it kept for
 *     the handler; a stream that ends, or bytes that cannot begin or
 *     complete a valid header (truncated, oversized, a wrong signature, a
 *     v2 length beyond the data, an unknown family, command or version, a
 *     version not accepted, a v2 LOCAL carrying addresses), are refused
 *     (SS_EPROXY; ss_stats.proxy_invalid), and so is a stream that fails
 *     or is cut off by the stop before a whole header (-ECONNRESET,
 *     -ECANCELED: no valid header came; proxy_invalid too); no whole header within
 *     header_timeout_ms is refused (ss_stats.proxy_timeouts);
 *   - a PROXY header's source becomes the client: ss_request_client_address
 *     and ss_request_client_name give it; a LOCAL (v2) or UNKNOWN (v1)
 *     header, or a v2 header of family UNSPEC, keeps the connection's own
 *     peer (HAProxy's health checks send LOCAL);
 *   - a deviation from the specification (HAProxy's proxy-protocol.txt,
 *     2.2), which says a receiver accepts a v2 LOCAL header whatever its
 *     family and ignores its address block: one with a family other than
 *     UNSPEC is refused (issue 14's rule: a proxy's own connection has no
 *     client to name, so addresses there come from a sender that does
 *     not say what it means). HAProxy's own health checks pass: they send
 *     LOCAL with family UNSPEC and no addresses (its make_proxy_line_v2,
 *     src/connection.c; seen from HAProxy 2.6), TLVs after it allowed;
 *   - with ss_server_set_max_per_client, the real client is counted
 *     (refused beyond it: rejected_per_client), not the proxy; admission
 *     at accept then applies no per-client limit. Under forking each
 *     child, which reads the header, counts its real client in memory it
 *     shares with its parent and the other children;
 *   - verify_request runs after the header, on the handler's thread or
 *     fiber (several at once under threading and pool; in the child under
 *     forking), and sees the real client; refused: rejected_verify.
 * Every refusal also counts in ss_stats.filter_refused (each in exactly
 * one of the reasons above) and closes the socket without a word; none
 * calls handle_error.
 *
 * Before activate, from the thread setting the server up. Returns 0;
 * -EINVAL for unknown version bits, a negative timeout or a trusted
 * entry ss_proxy_check_trusted refuses; -E2BIG beyond 64 CIDRs or 16
 * filters; -EEXIST if set already; SS_ESTATE after activate;
 * SS_ENOTSTREAM on a server with only datagram listeners; -ENOMEM.
 */
SS_API int ss_server_set_proxy_protocol(ss_server *srv, const ss_proxy_options *opts);

/*
 * Checks one entry of ss_proxy_options.trusted as
 * ss_server_set_proxy_protocol does, for a program that reads them from
 * its command line or configuration and wants to say which one is wrong,
 * and why, before setting the server up. Returns 0, or -EINVAL (also for
 * NULL) with *why (if why is not NULL) pointing at a static English
 * sentence: not an address, a prefix length that is not plain decimal
 * within the family's bits, or address bits set past the prefix length;
 * *why is NULL on success. Any thread, any time.
 */
SS_API int ss_proxy_check_trusted(const char *cidr, const char **why);

/*
 * The proxy's own address (the connection's peer) when the request came
 * with a PROXY header (of any command), and its length in *len (may be
 * NULL); NULL and *len 0 without one. Valid until finish returns.
 */
SS_API const struct sockaddr *ss_request_proxy_address(const ss_request *req, socklen_t *len);

/*
 * The value of the first TLV of `type` in the request's v2 header (spec
 * 2.2: 0x01 ALPN, 0x02 AUTHORITY, 0x05 UNIQUE_ID, 0x20 SSL, ...) and its
 * length in *len (may be NULL); NULL and *len 0 when there is none, the
 * header is v1, or there is no header. The bytes belong to the request:
 * valid until finish returns, not NUL-terminated.
 */
SS_API const void *ss_request_proxy_tlv(const ss_request *req, unsigned type, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_FILTER_H */
