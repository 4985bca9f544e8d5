/*
 * socketserver/limits.h — how much a server takes on and for how long: the
 * request timeout and the server timeout, limits on requests at once (in
 * all and per client), the overload reply, and the graceful stop (drain).
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/production.md.
 */
#ifndef SOCKETSERVER_LIMITS_H
#define SOCKETSERVER_LIMITS_H

#include <socketserver/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                 */
/* ------------------------------------------------------------------------ */

/* How long ss_server_handle_request() waits, in milliseconds; negative
 * means forever (the default, as Python's timeout=None). Any time. */
SS_API void ss_server_set_timeout(ss_server *srv, int timeout_ms);

/* Default I/O timeout for each request, in milliseconds (Python's
 * StreamRequestHandler.timeout); negative means none (the default, as in
 * Python). A recv or send that makes no progress for this long fails with
 * -ETIMEDOUT, and so does every read and write built on them: the wait
 * for a client's next request on a kept-alive connection is a read too,
 * so this is also the idle timeout. Progress is a byte moved (data read,
 * or bytes a send handed to the socket): the timeout counts from the start
 * of the call or from its last partial send, on every dispatcher. A signal
 * handled during the wait (EINTR, with or without SA_RESTART) is retried
 * against the same deadline: signals never extend it (docs/production.md,
 * "The request timeout"). A handler that returns on the error
 * frees its thread, worker or child; the request counts in
 * ss_stats.request_timeouts. Against clients that connect and stall
 * (slowloris), set it. Any time; applies to requests accepted afterwards
 * (ss_request_set_timeout changes one request). */
SS_API void ss_server_set_request_timeout(ss_server *srv, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* Limits and graceful stop (docs/production.md)                            */
/* ------------------------------------------------------------------------ */

/*
 * At most `max` requests at once, whatever the dispatcher (0, the default:
 * no limit beyond the dispatcher's own). Counted is ss_stats.active: every
 * request accepted and not yet ended, whether in a handler, waiting in the
 * pool's queue, or served by a child not yet reaped. At the limit the
 * listener is not polled: new clients wait in the kernel backlog (see
 * ss_server_set_backlog) and are served as requests end, neither refused
 * nor lost; with ss_server_set_overload_reply they are refused instead.
 * The forking dispatcher's max_children applies as well. Any time, any
 * thread. Returns 0, or -EINVAL if max is negative.
 */
SS_API int ss_server_set_max_connections(ss_server *srv, int max);

/*
 * At most `max` requests at once from one client (0, the default: no
 * limit): one IP address for tcp:// and udp:// (IPv4-mapped IPv6 addresses
 * count as IPv4), one user id for unix: (the peer credentials). unixgram:
 * peers cannot be told apart and are not limited. A request over the limit
 * is refused: accepted, sent the overload reply if one is set, closed, and
 * counted in ss_stats.rejected_per_client. The counts live in a small hash
 * table holding only clients with a request in flight (an entry goes when
 * its count returns to 0; forking: when the child is reaped). If no memory
 * is left for a new entry, that request is refused too. Before activate.
 * Returns 0, -EINVAL if max is negative, SS_ESTATE after activate.
 */
SS_API int ss_server_set_max_per_client(ss_server *srv, int max);

/*
 * What happens at ss_server_set_max_connections' limit. NULL (the
 * default): the listener is not polled and clients wait in the backlog.
 * A string: the listener stays polled, and each client over the limit is
 * accepted, sent `message` once without waiting (one non-blocking send:
 * if the socket cannot take it all at once the rest is dropped; a datagram
 * server sends it as the reply), and closed, counted in
 * ss_stats.rejected_limit. "" closes without a word. The same message goes
 * to clients refused by ss_server_set_max_per_client. Refusing at once
 * tells a client to come back later, or a balancer to go elsewhere;
 * waiting in the backlog serves everybody eventually. The string is
 * copied (at most 512 bytes). Before activate. Returns 0, -EINVAL if it
 * is too long, -ENOMEM, SS_ESTATE after activate.
 */
SS_API int ss_server_set_overload_reply(ss_server *srv, const char *message);

/*
 * Graceful stop: lets the requests in flight finish, then ends those that
 * do not, so that ss_server_close has nothing left to wait for. Call it
 * once the loop has stopped (after serve_forever returned), from the
 * thread that will close the server, never from a handler.
 *   1. No new request is taken: the listener is no longer polled (a client
 *      connecting now waits in the backlog until close resets it), and
 *      serve_forever and handle_request refuse to run (SS_ESTATE).
 *   2. Requests in flight (running handlers, the pool's queue, forked
 *      children) have up to timeout_ms to end on their own; negative: no
 *      limit. Children are reaped and threads joined meanwhile.
 *   3. Those still in flight then are interrupted, counted in
 *      ss_stats.interrupted. First what has not started: the pool's
 *      queued requests are shut down unhandled (ss_stats.cancelled), and
 *      a forking server's request still waiting for the kernel to allow a
 *      fork is refused (handle_error with -ECANCELED), so no handler
 *      starts after the deadline. Then what runs: each child of this
 *      server, and no other process, gets SIGTERM, then SIGKILL if it is
 *      still there 1 s later, and the sockets of stream requests are shut
 *      down (shutdown(SHUT_RDWR): a handler's reads return 0 and its
 *      writes fail, so it returns). A socket is never touched after its
 *      request has closed it. drain waits up to 2 s more for all of this
 *      to end.
 * A stop request (ss_server_request_shutdown, e.g. from a second SIGINT,
 * or ss_server_shutdown) made during step 2, or pending when drain starts,
 * means "stop now": step 2 ends at once. One made during step 3 sends the
 * SIGKILLs at once. A handler that ignores both its socket and SIGTERM
 * (busy computing) can outlast the drain: close then waits for it, or not,
 * per block_on_close.
 * Returns 0 if every request ended on its own, -ETIMEDOUT if some had to
 * be interrupted at the deadline, -ECANCELED if a stop request cut step 2
 * short, SS_ESTATE if the server is not activated or its loop is running.
 */
SS_API int ss_server_drain(ss_server *srv, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_LIMITS_H */
