/* The filter layer's private header (src/filter/): a request's chain of
 * filters between its transport's recv/send_all and the layers above (the
 * buffered reader and writer, ss_request_recv/send_all). Sees transports,
 * never a dispatcher. Without filters every call is the transport's own,
 * behind one test of req->filter_ctx. */
#ifndef SS_FILTER_H
#define SS_FILTER_H

#include "transport/transport.h"

/* The server's filters apply to its stream listeners' requests: a
 * datagram listener's requests are single packets and pass none. */
static inline bool ss__filtered(const ss__listener *l)
{
    return l->server->filters.count > 0 && !l->transport->datagram;
}

/* A filter (PROXY) names this listener's clients: the per-client limit
 * and verify_request wait until the chain has opened. */
static inline bool ss__names_client(const ss__listener *l)
{
    return l->server->filters.names_client && !l->transport->datagram;
}

/* Filters need one: datagram requests are single packets. */
bool ss__has_stream_listener(const ss_server *srv);

/* The chain's slow paths (filter/chain.c), for requests with filters. */
ssize_t ss__chain_recv(ss_request *req, void *buf, size_t size);
int ss__chain_send_all(ss_request *req, const void *buf, size_t size);

/* A request's reads and writes above the chain. spill as the transport's
 * recv slot; a chain never spills (the top filter decides how much to
 * read). */
static inline ssize_t ss__filtered_recv(ss_request *req, void *buf, size_t size, void *spill,
                                        size_t spill_size)
{
    if (__builtin_expect(req->filter_ctx != NULL, 0))
        return ss__chain_recv(req, buf, size);
    return req->listener->transport->recv(req, buf, size, spill, spill_size);
}

static inline int ss__filtered_send_all(ss_request *req, const void *buf, size_t size)
{
    if (__builtin_expect(req->filter_ctx != NULL, 0))
        return ss__chain_send_all(req, buf, size);
    return req->listener->transport->send_all(req, buf, size);
}

/* Some open filter of the request holds input its next recv would return
 * without waiting on the socket (the filter table's pending slot): the
 * request is busy, not idle (core/bufio.c). Handler's thread only. */
bool ss__chain_pending(const ss_request *req);
static inline bool ss__filters_pending(const ss_request *req)
{
    return __builtin_expect(req->filter_ctx != NULL, 0) && ss__chain_pending(req);
}

/* On the handler's thread, before setup: opens each filter from the
 * socket up. Returns 0 (also without filters), or the first open's
 * negative errno, after closing those below it. -ENOMEM: no contexts. */
int ss__filters_open(ss_request *req);
/* After finish: closes the opened filters, top first; the contexts are
 * freed. Idempotent; also the cleanup of a request that never ran. */
void ss__filters_close(ss_request *req);
/* ss_server_add_filter at index (0: next to the socket; count: on top),
 * with its errors. */
int ss__filters_add_at(ss_server *srv, int index, const ss_filter *filter, void *config);
/* Counts a request refused on its own thread, before setup: a filter's
 * refusal (and the PROXY reason), or the limits checked after it. By
 * the process that saw it, or the forking parent from the child's mark. */
void ss__count_late_refusal(ss_server *srv, ss__late_refusal why);
/* server_free: each config to its filter's free_config. */
void ss__filters_free_configs(ss_server *srv);
/* activate: a server with a tls:// listener must have been given
 * ss_server_set_tls, and TLS then goes on its tls:// listeners only
 * (docs/tls.md, "Several listeners"). Returns 0 or SS_ETLSNOCERT
 * (filter/tls.c; filter/tls_none.c without TLS built in). */
int ss__tls_check_listeners(ss_server *srv);
/* When the server's certificate was reloaded in another of its
 * processes (the supervisor of worker processes, on
 * ss_server_reload_tls), loads the same files in this one, so that its
 * next handshakes use them; each handshake does it too. For the serving
 * loop, before a request is dispatched (and forking forks its child).
 * One atomic load when nothing changed. A failure keeps the old pair:
 * logged, counted in tls_reload_failures (filter/tls_config.c). No-op
 * without TLS. Any thread. */
void ss__tls_follow_reload(ss_server *srv);

#endif /* SS_FILTER_H */
