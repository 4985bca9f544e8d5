/*
 * socketserver/handler.h — the request handler table (setup / handle / finish),
 * and what a handler asks of its request: the server, the socket, the
 * peer's address, per-request data and timeout, recv and send_all.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/tutorial.md
 * (section 5, "Four steps to a server").
 */
#ifndef SOCKETSERVER_HANDLER_H
#define SOCKETSERVER_HANDLER_H

#include <socketserver/base.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */
/* ------------------------------------------------------------------------ */

#define SS_HANDLER_VERSION 1

/*
 * A request handler: Python's BaseRequestHandler as a table.
 *
 * For every request the server calls setup(), then handle(), then finish().
 * `data` is the pointer given when the server was created.
 *   - setup  (optional): prepare per-request state (see ss_request_set_data).
 *            If it fails, neither handle nor finish runs.
 *   - handle (required): serve the request; all I/O with the client happens
 *            here through ss_request_recv() / ss_request_send_all().
 *   - finish (optional): always runs when setup succeeded, even if handle
 *            failed; release per-request state here.
 * Each returns 0 (or any non-negative value) on success or a negative error
 * code; the first failure is passed once to the server's handle_error hook.
 * Whatever a handler returns, the server then shuts the request down. For
 * a stream (tcp, unix) that is shutdown(SHUT_WR), then close; just close
 * when a read already returned the client's end of stream (nothing can be
 * unread or arrive then, and close sends our end after the reply all the
 * same), unless the handler was lent the descriptor (ss_request_fileno: a
 * copy of it would keep the stream open) or runs in a forked child. If
 * the client has not closed yet and input is unread, or (TCP) part of the
 * reply is not yet acknowledged, closing could reset the connection and
 * destroy the end of the reply (a client that sent more than the handler
 * read); such
 * a socket is handed to a background thread of the library, which reads
 * and discards until the client closes, at most 2 s without progress,
 * 30 s and 1 MiB in all: a lingering close, as nginx and Apache do
 * (ss_stats.lingering_closes, docs/production.md). The request has ended
 * by then; a forking child lingers in place before it exits.
 *
 * The table is copied by the server; `version` must be SS_HANDLER_VERSION
 * (1 up to the version of the library the program runs with).
 * ss_server_create and the constructors return -EINVAL for version 0, for a
 * version above the library's (a table from a newer header: its extra
 * slots would be ignored silently), and for a NULL handle. New slots are
 * only ever appended.
 */
typedef struct ss_handler {
    unsigned version;
    int (*setup)(ss_request *req, void *data);
    int (*handle)(ss_request *req, void *data);
    int (*finish)(ss_request *req, void *data);
} ss_handler;

/* ------------------------------------------------------------------------ */
/* Requests: valid from setup until finish returns                          */
/* ------------------------------------------------------------------------ */

/* The server this request belongs to (Python's self.server). */
SS_API ss_server *ss_request_server(const ss_request *req);

/* The connected socket (Python's self.request). Prefer the I/O calls
 * below: they handle timeouts, EINTR and SIGPIPE for you. For a datagram
 * request it is the server's own socket, shared by every request: never
 * close it. */
SS_API int ss_request_fileno(const ss_request *req);

/* The peer's address (Python's self.client_address). *len receives its
 * length if len is not NULL. */
SS_API const struct sockaddr *ss_request_client_address(const ss_request *req, socklen_t *len);

/* The peer's address as text: "127.0.0.1:5555" or "[::1]:5555"; for Unix
 * peers the path, "@name" for an abstract one, or "" for an unnamed peer
 * (a client socket that was never bound). Safe to log: whoever binds a
 * Unix socket (or sends a PROXY v2 header naming one) chooses its path,
 * so every byte outside printable ASCII (a newline that would forge a log
 * line, a terminal's escape sequence) and the backslash are written as
 * \xHH, a NUL in an abstract name as '@'; a name longer than 127 bytes
 * once escaped is cut and ends in "...". Formatted on the first call
 * (a request whose handler never asks pays nothing) and kept: later calls
 * return the same string. Any thread may call it, also several at once.
 * Owned by the request: valid until the request ends (after finish). */
SS_API const char *ss_request_client_name(const ss_request *req);

/* Per-request user state, e.g. allocated in setup and freed in finish. */
SS_API void ss_request_set_data(ss_request *req, void *data);
SS_API void *ss_request_data(const ss_request *req);

/* I/O timeout for this request in milliseconds, negative for none.
 * Starts as the server's request timeout. */
SS_API void ss_request_set_timeout(ss_request *req, int timeout_ms);

/*
 * Receives up to `size` bytes. Returns the count (> 0), 0 when the peer has
 * closed its side, or a negative errno: -ETIMEDOUT when the request timeout
 * passes without data, -ECONNRESET when the peer reset. Interruptions by
 * signals (EINTR) are retried within the same timeout. On the sync
 * dispatcher (the handler runs on the loop's own thread) a requested
 * shutdown ends the call with -ECANCELED, so an idle client cannot keep a
 * stopping server alive: the wait also watches the server's wake-up pipe,
 * so the stop may come from any thread, a signal handler on any thread or
 * a hook; once a stop is pending, every recv returns -ECANCELED at once
 * (a busy request's after the stop grace, ss_server_set_stop_grace). An
 * idle wait (for a new message after a complete exchange,
 * socketserver/limits.h) is the exception: the stop ends it at once with
 * 0, as if the peer had closed, counted in ss_stats.idle_closed (and
 * ss_request_idle_closed is true), unless idle requests are kept
 * (ss_server_set_drain_close_idle(srv, false): -ECANCELED then).
 * Handlers of other dispatchers (threads, pool fibers, forked children)
 * are never cancelled this way; there ss_server_drain ends an idle wait
 * (for a new message after a complete exchange, socketserver/limits.h)
 * with 0, as if the peer had closed. Bytes the stream reader (socketserver/stream.h) has
 * already taken off the socket come first, so the two can be mixed.
 */
SS_API ssize_t ss_request_recv(ss_request *req, void *buf, size_t size);

/*
 * Sends all `size` bytes, however many partial writes and signal
 * interruptions it takes. Never raises SIGPIPE: a vanished peer gives
 * -EPIPE or -ECONNRESET. Returns 0 once everything is sent, -ETIMEDOUT if
 * the request timeout passes with no byte sent (counted from the last
 * partial send), -ECANCELED on the sync dispatcher when it would have to
 * wait for the client while a shutdown is requested (as ss_request_recv),
 * or another negative errno.
 * Output still waiting in the stream writer (socketserver/stream.h) is
 * sent first.
 */
SS_API int ss_request_send_all(ss_request *req, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_HANDLER_H */
