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
 * Graceful stop, the way nginx and Go stop: idle connections end at once,
 * busy requests get the deadline, a second stop means now. Lets the
 * requests in flight finish, then ends those that do not, so that
 * ss_server_close has nothing left to wait for. Call it once the loop has
 * stopped (after serve_forever returned), from the thread that will close
 * the server, never from a handler.
 *   1. Idle requests end at once (ss_server_set_drain_close_idle: on by
 *      default): their handler's read returns 0, end of stream, as if the
 *      client had closed, so handlers need no code for it; counted in
 *      ss_stats.idle_closed. A request that becomes idle later during the
 *      drain (or after it) ends as it begins to wait. Only the socket's
 *      read side is shut (shutdown(SHUT_RD)): what the request sends as
 *      it ends still goes out, so a TLS connection sends close_notify
 *      before its close (RFC 8446, section 6.1; a filter's close slot,
 *      socketserver/filter.h). What idle means is said below.
 *   2. No new request is taken after those already queued: the clients
 *      waiting in the listen backlog (connected, not yet accepted) are
 *      accepted through the limits as usual and served like any other
 *      (they are not idle: they have sent nothing yet), at most backlog +
 *      1 of them; at a limit (max_connections, the pool's queue, forking's
 *      max_children) the rest wait for room as requests end. Then the
 *      listening socket is closed (a stream server's; a datagram server
 *      keeps its socket, which its requests reply through), so a client
 *      connecting afterwards is refused at once (ECONNREFUSED: a balancer
 *      retries it on another server) rather than queued and then reset.
 *      No client is reset by that close, even one connecting just then:
 *      once the backlog is found empty, new connections are stopped while
 *      those already queued stay to be accepted (Linux: a TCP listener
 *      drops new SYNs for 10 ms while handshakes under way finish; a
 *      client dropped then sends its SYN again 1 s later and is refused,
 *      or served by whatever listens on the port by then: it waits, it is
 *      not lost; a Unix listener is shut down for reading, which refuses
 *      new connects at once). Elsewhere a client whose connection completes between the
 *      last accept and the close is reset. A Unix socket file stays until
 *      ss_server_close. ss_server_fileno returns -1 from then on;
 *      serve_forever and handle_request refuse to run (SS_ESTATE).
 *      (The rule a balancer needs: HAProxy in mode tcp retries only a
 *      failed connect, so a stopping server must serve what it accepted.)
 *   3. Requests in flight (running handlers, the pool's queue, forked
 *      children, the backlog's clients) have up to timeout_ms to end on
 *      their own; negative: no limit. Children are reaped and threads
 *      joined meanwhile. (sync: the request it was serving ended before
 *      serve_forever returned, served within the stop grace if it was
 *      busy, see ss_server_set_stop_grace; the backlog's clients run on
 *      this thread, and one still running at the deadline, or at a second
 *      stop, is ended then: its waits return -ECANCELED, and it counts as
 *      interrupted.)
 *   4. Those still in flight then are interrupted, counted in
 *      ss_stats.interrupted. First what has not started: clients still in
 *      the backlog are reset (the listener closes), the pool's queued
 *      requests are shut down unhandled (ss_stats.cancelled), and a forking
 *      server's request still waiting for the kernel to allow a fork is
 *      refused (handle_error with -ECANCELED), so no handler starts after
 *      the deadline. Then what runs: each child of this server, and no
 *      other process, has its waits in library calls ended (-ECANCELED)
 *      and gets SIGTERM, then SIGKILL if it is still there 1 s
 *      later, and the sockets of stream requests are shut down
 *      (shutdown(SHUT_RDWR): a handler's reads return 0 and its writes
 *      fail, so it returns). A socket is never touched after its request
 *      has closed it. drain waits up to 2 s more for all of this to end.
 * Idle, precisely: a stream request whose handler is waiting, in a library
 * read, for the first byte of a new message after a complete exchange.
 *   - A new message: ss_request_recv or ss_request_read_some with nothing
 *     buffered in the reader; ss_request_read_line with no partial line
 *     buffered; ss_request_read_exact with nothing of the record read yet.
 *     A read that continues a message (the rest of a line or a record) is
 *     never idle.
 *   - A complete exchange: the request has read bytes, and since its last
 *     read that returned bytes it has written bytes (ss_request_send_all,
 *     ss_request_write, ss_request_flush) and the writer holds nothing
 *     unsent. So a connection whose client has not sent its first bytes is
 *     never idle (it is served: a balancer may have sent it before it
 *     knew of the stop), nor is a handler between reading a header and
 *     reading the body it announces, nor one that has not yet answered.
 * A request whose client has already sent its next bytes when it begins
 * to wait during a drain is busy, not idle (one MSG_PEEK tells, only
 * while draining); so is one whose filters hold bytes received and not
 * yet read (the PROXY filter's bytes behind its header, a filter's
 * pending slot: socketserver/filter.h). Reads and writes made on ss_request_fileno directly
 * are not seen: such a handler is never idle. Datagram requests never
 * are. The race every server shares (nginx, Go): a message that arrives
 * just as its connection is closed idle is lost, and its client sees the
 * connection end without a reply; clients retry such a request as one
 * sent on a connection the server closed while idle. forking: a child's
 * idle wait polls its socket and a pipe the drain writes to (one poll()
 * more per idle wait, in the child).
 * A stop request (ss_server_request_shutdown, e.g. from a second SIGINT,
 * or ss_server_shutdown) made during step 3, or pending when drain starts,
 * means "stop now": step 3 ends at once. One made during step 4 sends the
 * SIGKILLs at once. A handler that ignores both its socket and SIGTERM
 * (busy computing) can outlast the drain: close then waits for it, or not,
 * per block_on_close.
 * Returns 0 if every request ended on its own (idle ones included),
 * -ETIMEDOUT if some had to be interrupted at the deadline, -ECANCELED if a
 * stop request cut step 3 short, SS_ESTATE if the server is not activated
 * or its loop is running.
 */
SS_API int ss_server_drain(ss_server *srv, int timeout_ms);

/*
 * The sync dispatcher's stop grace, in milliseconds (default
 * SS_DEFAULT_STOP_GRACE_MS, 1 s; 0: none). A sync handler runs on the
 * loop's own thread, so serve_forever (or handle_request) cannot return,
 * nor ss_server_drain begin, before it does: a stop request therefore ends
 * its waits with -ECANCELED (ss_server_shutdown). The rule, as drain's
 * for the other dispatchers (idle ends at once, busy gets time, a second
 * stop means now):
 *   - an idle wait (the first byte of a new message after a complete
 *     exchange, defined at ss_server_drain) ends at once, as drain's step
 *     1 ends one: its read returns 0 (end of stream), counted in
 *     ss_stats.idle_closed, so handlers need no code for it; a request
 *     whose next message is already there (in the socket, or held by a
 *     filter) is busy instead; with idle requests kept
 *     (ss_server_set_drain_close_idle(srv, false)) the wait ends with
 *     -ECANCELED;
 *   - every other wait of a stream request (busy: its client has not sent
 *     its first bytes yet, or it is reading the rest of a message, or
 *     writing) goes on up to grace_ms after the stop was first requested,
 *     and the request is served as usual if it gets what it waits for in
 *     time; its waits after that are judged the same way;
 *   - a further stop request, or one made during ss_server_drain (whose
 *     deadline bounds the backlog's clients instead), ends every wait at
 *     once; so does a stop with grace_ms 0 (the behaviour before this
 *     option). A datagram request's wait for a full receiver's queue gets
 *     no grace.
 * Why: a balancer (HAProxy in mode tcp) sends a connection's first bytes
 * a moment after connecting and never retries a connection that was
 * accepted; a stop that ended such a request at once would lose it. The
 * other dispatchers need no grace: a stop never ends their waits. Read
 * by each wait; any time, any thread. Returns 0, or -EINVAL if negative.
 */
#define SS_DEFAULT_STOP_GRACE_MS 1000
SS_API int ss_server_set_stop_grace(ss_server *srv, int grace_ms);

/*
 * Whether ss_server_drain ends idle requests at once (true, the default:
 * nginx's and Go's graceful stop) or lets them wait for their clients up
 * to its deadline like busy ones, then interrupts them (false: the
 * behaviour before this option, for protocols whose messages span several
 * exchanges, where "answered, waiting for more" is not a safe place to
 * stop). Idle is defined at ss_server_drain. Read when a drain begins;
 * any thread.
 */
SS_API void ss_server_set_drain_close_idle(ss_server *srv, bool on);

/*
 * True once a drain has ended this request because it was idle (step 1 of
 * ss_server_drain): its handler's read returned 0 for that reason, not
 * because the client closed. For a handler that logs how its client went.
 * From the request's handler (setup, handle, finish); never blocks.
 */
SS_API bool ss_request_idle_closed(const ss_request *req);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_LIMITS_H */
