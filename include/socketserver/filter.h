/*
 * socketserver/filter.h — filters: an ordered chain of layers between a
 * stream listener's sockets and its handler's I/O (what Python users do by
 * overriding get_request), and the chain's calls to the layer below.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/filters.md.
 */
#ifndef SOCKETSERVER_FILTER_H
#define SOCKETSERVER_FILTER_H

#include <socketserver/base.h>
#include <stddef.h>
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

#define SS_FILTER_VERSION 1

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
 *     open succeeded. Free the state here.
 *   free_config(config): when the server is freed, once per
 *     ss_server_add_filter that succeeded.
 */
typedef struct ss_filter {
    int version; /* SS_FILTER_VERSION */
    const char *name;
    int (*open)(ss_filter_ctx *ctx, void *config);
    ssize_t (*recv)(ss_filter_ctx *ctx, void *buf, size_t size);
    int (*send)(ss_filter_ctx *ctx, const void *buf, size_t size);
    void (*close)(ss_filter_ctx *ctx);
    void (*free_config)(void *config);
} ss_filter;

/*
 * Adds `filter` with `config` (owned by the server from here on, released
 * with filter->free_config when the server is freed) at the top of the
 * chain: the first filter added is the closest to the socket. At most 16.
 * Before activate, from the thread setting the server up. Returns 0;
 * -EINVAL if filter is NULL or of another version (config is then not
 * taken); SS_ESTATE after activate; SS_ENOTSUPPORTED on a datagram server
 * (udp, unixgram), whose requests are single packets; -E2BIG past 16;
 * -ENOMEM.
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

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_FILTER_H */
