/*
 * socketserver/server.h — a server's life: create, bind, activate, serve,
 * shut down, close, free; its socket options, hooks and log, queries
 * and counters; and the list of every option a server has.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/tutorial.md
 * (section 12, "Life cycle and signals"; the counters: docs/production.md,
 * "Counters").
 */
#ifndef SOCKETSERVER_SERVER_H
#define SOCKETSERVER_SERVER_H

#include <socketserver/base.h>
#include <socketserver/handler.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Server life cycle                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Creates a server for `url` without binding it (Python's
 * bind_and_activate=False). Accepted URL forms:
 *     tcp://HOST:PORT        IPv4 or IPv6; HOST may be a name, an address,
 *     tcp://[IPV6]:PORT      or empty/"*" for every IPv4 address. A name that
 *                            resolves to both families binds IPv4 (as Python
 *                            does); tcp://[::]:PORT is dual-stack.
 *     udp://HOST:PORT        the same hosts, one datagram per request
 *     udp://[IPV6]:PORT
 *     tls://HOST:PORT        tcp:// whose every connection speaks TLS: it
 *     tls://[IPV6]:PORT      needs ss_server_set_tls before activate
 *                            (socketserver/tls.h); SS_ENOTSUPPORTED, with a
 *                            line in the log, in a library built without TLS
 *     unix:PATH              Unix stream socket at PATH (up to sun_path's
 *                            size less one byte, else -ENAMETOOLONG)
 *     unix:@NAME             Linux abstract name, no file, NAME up to
 *                            sun_path's size less one byte (107), else
 *                            -ENAMETOOLONG (SS_ENOTSUPPORTED on other systems)
 *     unixgram:PATH          Unix datagram socket (also unixgram:@NAME)
 *     fd:N                   adopt descriptor N, a socket this process
 *                            inherited already serving (a parent's, inetd's
 *                            wait mode): see "Adopted sockets" below
 *     systemd:               adopt every socket passed by systemd's socket
 *                            activation (ListenStream=, ListenDatagram=, ...)
 *     systemd:NAME           ... only those named NAME (FileDescriptorName=)
 * PORT may be 0: the kernel picks one, read it back with ss_server_address().
 * See socketserver/transport.h for datagram requests and socket-file rules.
 *
 * Adopted sockets (Python's bind_and_activate=False and replacing
 * server.socket, with checks Python leaves out): the transport is read from
 * the socket itself (its family and type: TCP or UDP over IPv4/IPv6, Unix
 * stream or datagram), and it must already serve: a stream socket
 * listening, a datagram socket bound. The server owns it from then on
 * (made close-on-exec and non-blocking; closed by ss_server_close) but
 * never binds it, listens on it again or removes its socket file; its
 * drain never changes the socket (another process may hold it: the
 * backlog stays queued for it), it only closes this process's descriptor.
 * Bind-time options are refused with SS_ESTATE on a server whose every
 * listener is adopted (ss_server_set_reuse_address, _reuse_port,
 * _backlog, ss_server_set_unix_mode). systemd: follows sd_listen_fds(3)
 * without libsystemd: LISTEN_PID must be this process, LISTEN_FDS
 * descriptors from 3, LISTEN_FDNAMES their names; on first use the
 * descriptors become close-on-exec and the variables are unset, so
 * children do not inherit them; the sockets it adds are listeners 0, 1,
 * ... in LISTEN_FDS order (ss_server_listener_name gives each name). Each
 * TCP socket named "tls" (what ss_server_hand_over names a tls://
 * listener) is a tls:// listener. Each
 * descriptor belongs to one server. ss_connect does not take these forms.
 * Their errors: -EBADF (fd:N not open), -ENOTSOCK (not a socket),
 * SS_ENOTLISTENING (a stream socket not listening, such as a connected
 * one; a datagram socket not bound), -ESOCKTNOSUPPORT (a socket type no
 * transport serves: SOCK_SEQPACKET, SOCK_RAW), -EAFNOSUPPORT (a family none
 * serves: netlink, packet), -EEXIST (already one
 * of this server's listeners), SS_EURLFD ("fd:x", "fd:-1"),
 * SS_EURLFDNAME ("systemd:a:b", a control or non-ASCII character),
 * SS_ENOACTIVATION (no LISTEN_PID/LISTEN_FDS), SS_ELISTENPID (LISTEN_PID
 * names another process), SS_ELISTENFDS (LISTEN_FDS counts descriptors that
 * are not open), SS_ELISTENENV (a malformed value; LISTEN_FDNAMES naming
 * more or fewer sockets than LISTEN_FDS counts, or a name systemd refuses:
 * control or non-ASCII characters), SS_ENOFDNAME (no passed
 * socket has that name). A failed adoption leaves the descriptor open and
 * the caller's; for systemd:, every passed socket is checked before any is
 * taken.
 *
 * `dispatcher` NULL means ss_dispatch_sync(). `handler` is copied; `data` is
 * passed to every handler call and hook. The listening socket exists after
 * this call (ss_server_fileno() works), so options can be set before
 * ss_server_bind(). On failure *out is NULL and nothing is leaked.
 * Returns 0; for a malformed URL an SS_EURL* code that says what is wrong
 * (ss_strerror: e.g. "URL port out of range (0-65535)"), SS_EBADURL if url
 * is NULL, -ENAMETOOLONG for a host of 256 bytes or more or a path beyond
 * sun_path; SS_ERESOLVE, -EINVAL (bad handler) or an errno.
 */
SS_API int ss_server_create(ss_server **out, const char *url, const ss_dispatcher *dispatcher,
                            const ss_handler *handler, void *data);

/* Binds the socket to the address given at creation, applying the options
 * set so far (Python's server_bind). Returns 0 or e.g. -EADDRINUSE. */
SS_API int ss_server_bind(ss_server *srv);

/* Starts listening with the configured backlog (Python's server_activate).
 * Returns 0, SS_ETLSNOCERT (a tls:// listener and no ss_server_set_tls),
 * or a negative errno. */
SS_API int ss_server_activate(ss_server *srv);

/* create + bind + activate in one call: Python's constructor with
 * bind_and_activate=True. On failure *out is NULL and every resource the
 * attempt took (sockets, memory) is released. */
SS_API int ss_server_new(ss_server **out, const char *url, const ss_dispatcher *dispatcher,
                         const ss_handler *handler, void *data);

/*
 * Handles one request, waiting at most the server timeout for it (see
 * ss_server_set_timeout). If none arrives in time, calls the handle_timeout
 * hook and returns 0. Interruptions by signals (EINTR) are retried with the
 * remaining time. Returns 0 after handling (or timing out), -ECANCELED if a
 * shutdown was requested while waiting, SS_ESTATE if the server is not
 * activated. Call it from one thread at a time.
 */
SS_API int ss_server_handle_request(ss_server *srv);

/*
 * Handles requests until ss_server_shutdown() or
 * ss_server_request_shutdown() is called. Calls the service_actions hook at
 * least every `poll_interval_ms` milliseconds (Python's poll_interval;
 * negative means only when something happens). Unlike Python, a shutdown
 * request wakes the loop at once, whatever the poll interval. A shutdown
 * requested before the loop starts makes it return immediately.
 * With worker processes (ss_server_set_processes, dispatch.h) the first
 * call forks the workers and the loop watches them; before it returns it
 * waits for every worker to stop taking clients, up to the stop grace past
 * the stop request (ss_server_set_stop_grace), at least 250 ms and at most
 * 5 s: a worker that cannot answer (stopped) delays it no more than that.
 * Returns 0 after a shutdown, SS_ESTATE if not activated, -EBUSY if the loop
 * is already running in another thread; with worker processes, the
 * -errno of their start (e.g. -EMFILE) when none of them could start.
 */
SS_API int ss_server_serve_forever(ss_server *srv, int poll_interval_ms);

/*
 * Stops serve_forever(). Called from another thread, it blocks until the
 * loop has exited (Python's shutdown). With the sync dispatcher a handler
 * waiting on its client then gets -ECANCELED, so the loop exits as soon as
 * the handler returns: at once if it waits for an idle client, after the
 * stop grace at most if it is busy (a client accepted just before the
 * stop whose first bytes are on the way is still served; see
 * ss_server_set_stop_grace); other dispatchers' handlers are not
 * interrupted (ss_server_drain bounds them). Called from inside a handler or hook
 * running on the serving thread, it only requests the stop and returns, so
 * it cannot deadlock; the loop exits when that request is done. If the loop
 * is not running, the request is remembered and returns at once (during
 * ss_server_drain: stop now).
 * Not for signal handlers: use ss_server_request_shutdown(). Returns 0;
 * -EINVAL for a NULL srv.
 */
SS_API int ss_server_shutdown(ss_server *srv);

/*
 * Requests that serve_forever() stop, and returns at once without waiting.
 * Async-signal-safe: meant for SIGINT/SIGTERM handlers. Preserves errno.
 * During ss_server_drain, it means "stop now" (a second Ctrl-C). A NULL
 * srv is ignored: a signal handler may run before the program has created
 * its server, or after it has cleared its pointer.
 */
SS_API void ss_server_request_shutdown(ss_server *srv);

/*
 * Releases the server's operating-system resources (Python's
 * server_close): closes the listening socket and the wake-up pipe and lets
 * the dispatcher finish its requests. Idempotent. Must not run while
 * serve_forever() or handle_request() is running; call ss_server_shutdown()
 * first, and ss_server_drain() to bound how long requests still in flight
 * may keep close waiting. The object stays valid for queries until
 * ss_server_free().
 */
SS_API void ss_server_close(ss_server *srv);

/* Closes the server (if not already) and releases its memory. NULL is a
 * no-op. Every successful ss_server_create/ss_server_new needs one call. */
SS_API void ss_server_free(ss_server *srv);

/* ------------------------------------------------------------------------ */
/* Every option of a server, by when it may be set                          */
/* ------------------------------------------------------------------------ */

/*
 * Setters live in the area header of what they configure; this is the
 * whole list, by when each may be called. Each setter's own comment, in
 * the header named, gives its default, its units and the errors it returns.
 *
 * After create, before bind (SS_ESTATE after bind):
 *   ss_server_add_listener                                   server.h
 *   ss_server_set_reuse_address, ss_server_set_reuse_port    server.h
 *   ss_server_set_unix_mode                                  transport.h
 * Before activate (SS_ESTATE after activate):
 *   ss_server_set_backlog                                    server.h
 *   ss_server_set_max_packet_size                            transport.h
 *   ss_server_set_max_per_client, ss_server_set_overload_reply   limits.h
 *   ss_server_set_max_children, ss_server_set_workers,
 *   ss_server_set_queue_size, ss_server_set_thread_stack_size,
 *   ss_server_set_pool_fibers, ss_server_set_processes       dispatch.h
 *   ss_server_set_proxy_protocol (and ss_server_add_filter)  filter.h
 *   ss_server_set_tls (ss_server_reload_tls: any time)        tls.h
 * Before serving, from the thread that set the server up:
 *   ss_server_on_verify_request, ss_server_on_handle_error,
 *   ss_server_on_handle_timeout, ss_server_on_service_actions,
 *   ss_server_set_log                                        server.h
 * Any time (a request accepted afterwards gets the new value; with worker
 * processes a change after serving starts reaches only workers forked
 * afterwards: each keeps the options it was forked with, dispatch.h; set
 * these before serving there):
 *   ss_server_set_timeout, ss_server_set_request_timeout,
 *   ss_server_set_max_connections (also from any thread),
 *   ss_server_set_drain_close_idle (read as a drain begins),
 *   ss_server_set_stop_grace (read by each wait)             limits.h
 *   ss_server_set_read_buffer_size, ss_server_set_write_buffer_size,
 *   ss_server_set_tcp_nodelay                                stream.h
 *   ss_server_set_daemon_threads,
 *   ss_server_set_block_on_close (before ss_server_close)    dispatch.h
 */

/* ------------------------------------------------------------------------ */
/* Server options: set after create, before bind (or activate)              */
/* ------------------------------------------------------------------------ */

/* SO_REUSEADDR on bind of a TCP server. Default on (unlike Python's
 * default), so a server can be restarted while old connections sit in
 * TIME_WAIT; it never lets two live listeners share a port. Other
 * transports ignore it (on UDP it would let two live servers share a port).
 * Returns 0 or SS_ESTATE after bind. */
SS_API int ss_server_set_reuse_address(ss_server *srv, bool on);

/* SO_REUSEPORT on bind, letting several servers share one port. Default off.
 * Returns 0, SS_ESTATE after bind, or -ENOTSUP where the OS lacks it. */
SS_API int ss_server_set_reuse_port(ss_server *srv, bool on);

/* listen() backlog (Python's request_queue_size). Default SOMAXCONN (Python
 * uses 5). Returns 0, -EINVAL if < 1, or SS_ESTATE after activate. */
SS_API int ss_server_set_backlog(ss_server *srv, int backlog);

/* ------------------------------------------------------------------------ */
/* Server hooks (Python's overridable methods). Set before serving.         */
/* Each receives the `data` given at creation. NULL restores the default.   */
/* ------------------------------------------------------------------------ */

/* Return false to refuse a request: it is shut down without the handler
 * running. Default: accept every request. Runs where the loop runs, as
 * the client is accepted (so a pool with this hook accepts on the loop's
 * thread, not in its workers: ss_dispatch_pool); with
 * ss_server_set_proxy_protocol, after the header instead, on the
 * handler's thread or fiber, seeing the real client
 * (socketserver/filter.h). */
typedef bool (*ss_verify_fn)(ss_server *srv, ss_request *req, void *data);
SS_API void ss_server_on_verify_request(ss_server *srv, ss_verify_fn fn);

/* Called once per failed request with the first error a handler returned.
 * Runs where the handler ran. Default: an SS_LOG_ERROR message (see
 * ss_server_set_log) with the client address and ss_strerror(err). */
typedef void (*ss_error_fn)(ss_server *srv, ss_request *req, int err, void *data);
SS_API void ss_server_on_handle_error(ss_server *srv, ss_error_fn fn);

/* Called by handle_request() when no request arrived within the server
 * timeout. Default: nothing. */
typedef void (*ss_server_fn)(ss_server *srv, void *data);
SS_API void ss_server_on_handle_timeout(ss_server *srv, ss_server_fn fn);

/* Called on every iteration of serve_forever(), in the serving thread.
 * Default: nothing. */
SS_API void ss_server_on_service_actions(ss_server *srv, ss_server_fn fn);

/* Routes the server's messages to fn; NULL restores the default, which
 * prints warnings and errors as one "socketserver: ..." line on stderr and
 * drops debug and info messages. Set before serving. */
SS_API void ss_server_set_log(ss_server *srv, ss_log_fn fn);

/* ------------------------------------------------------------------------ */
/* Server queries                                                           */
/* ------------------------------------------------------------------------ */

/* The listening socket (Python's fileno()), or -1 after close. With
 * several listeners: the first (the URL given to ss_server_create). These
 * three queries return -EINVAL for a NULL srv, as the per-listener ones
 * below. */
SS_API int ss_server_fileno(const ss_server *srv);

/* Writes the server's address as a URL into buf, e.g. "tcp://127.0.0.1:40123"
 * or "tcp://[::1]:40123". After bind it is the real bound address (port 0
 * resolved). Returns the length, or -ENOSPC if buf is too small (64 bytes
 * always suffice for inet; 128 for every form). With several listeners:
 * the first's. */
SS_API int ss_server_address(const ss_server *srv, char *buf, size_t size);

/* The bound port of an inet server (after bind), 0 otherwise. With
 * several listeners: the first's. */
SS_API int ss_server_port(const ss_server *srv);

/* ------------------------------------------------------------------------ */
/* Several listeners                                                        */
/* ------------------------------------------------------------------------ */

/* NULL, for every call of this section and of socketserver/deploy.h (the
 * calls of issue 16): a NULL server, request, URL or out-pointer is
 * -EINVAL (a call that returns a pointer returns NULL), never a crash. */

/*
 * Adds one more socket for the server to serve on, each with its own
 * transport: IPv4 and IPv6, TCP and a Unix socket for local tools, or a
 * stream and a datagram listener answered by one handler (a DNS-style
 * server on UDP and TCP). Every listener feeds the same dispatcher,
 * counters and limits; the loop polls them all and takes one client from
 * each ready one in turn, so none starves the others. Python has no
 * equivalent (a socketserver server has exactly one socket).
 * `url` takes every form ss_server_create takes, fd:N and systemd:
 * included (systemd: may add several: the index returned is the first's,
 * the others follow in LISTEN_FDS order). Call it after create and
 * before bind, from the thread setting the server up; bind and activate
 * then act on every listener in the order they were added (a failed bind
 * can be retried: the listeners already bound are skipped; the error is
 * also logged, SS_LOG_ERROR, naming the listener that failed, since the
 * returned code cannot: "cannot listen on unix:/run/a.sock: File exists"), and close
 * closes them all. The server-wide options (reuse, backlog, Unix mode,
 * max_packet_size) apply to every listener they concern. The filters
 * (socketserver/filter.h) apply to the stream listeners; a datagram
 * listener's requests, single packets, pass none.
 * Returns the new listener's index (>= 1; the first listener, from
 * ss_server_create, is 0), or: -EINVAL (srv or url NULL); SS_ESTATE after bind; the URL errors of
 * ss_server_create; SS_ERESOLVE, -ENOMEM or the errno of socket().
 */
SS_API int ss_server_add_listener(ss_server *srv, const char *url);

/* How many listeners the server has (>= 1); -EINVAL for a NULL srv. */
SS_API int ss_server_listener_count(const ss_server *srv);

/* Listener `index` (0 .. count - 1), as ss_server_fileno,
 * ss_server_address and ss_server_port describe the first: its socket
 * (-1 once closed), its address as a URL (the length written, or -ENOSPC),
 * its bound port (0 if not inet). Each returns -EINVAL for a NULL srv or an
 * index out of range (the address also for a NULL buf with size > 0).
 * Readable from any thread once the server is set up. */
SS_API int ss_server_listener_fileno(const ss_server *srv, int index);
SS_API int ss_server_listener_address(const ss_server *srv, int index, char *buf, size_t size);
SS_API int ss_server_listener_port(const ss_server *srv, int index);

/* Listener `index`'s socket-activation name (LISTEN_FDNAMES; "unknown"
 * when systemd gave none), or "" for any other listener; NULL for a NULL
 * srv or an index out of range. Owned by the server, valid until ss_server_free. */
SS_API const char *ss_server_listener_name(const ss_server *srv, int index);

/* The index of the listener the request came on (0 .. count - 1), for a
 * handler that answers differently per socket; -EINVAL for a NULL req.
 * Any thread. */
SS_API int ss_request_listener(const ss_request *req);

/* The `data` pointer given at creation; NULL for a NULL srv. */
SS_API void *ss_server_data(const ss_server *srv);

/*
 * Every counter of the server, in one place. Each is an atomic updated
 * where its event happens, so reading them takes no lock and never slows
 * the server down; readable at any time from any thread, also after close.
 * A snapshot is not one instant: counters move while it is taken. For the
 * forking dispatcher, what happens inside a child reaches the parent's
 * counters when the child is reaped. With worker processes
 * (ss_server_set_processes), the supervisor's are the sum of its
 * workers', which count in shared memory (as current as its own).
 * Each field, and what to watch: docs/production.md.
 */
typedef struct ss_stats {
    /* requests */
    uint64_t accepted;            /* requests received (connections or datagrams) */
    uint64_t active;              /* accepted and not yet ended: in a handler, waiting in the
                                     pool's queue, or served by a child not yet reaped. What
                                     ss_server_set_max_connections bounds */
    uint64_t handled;             /* handler ran to completion without error */
    uint64_t handler_errors;      /* handle_error calls */
    uint64_t closed;              /* requests shut down (every accepted one, once) */
    uint64_t rejected;            /* shut down without running the handler, any reason: */
    uint64_t rejected_verify;     /* ... verify_request returned false */
    uint64_t rejected_limit;      /* ... over max_connections (overload reply mode) */
    uint64_t rejected_per_client; /* ... over max_per_client */
    uint64_t request_timeouts;    /* requests in which a read or write timed out
                                     (-ETIMEDOUT: the request timeout fired) */
    uint64_t interrupted;         /* requests still in flight when ss_server_drain's
                                     deadline passed, which it then interrupted */
    uint64_t timeouts;            /* handle_timeout calls */
    /* accept */
    uint64_t accept_errors;  /* accept()/recvfrom() failures, every kind */
    uint64_t accept_emfile;  /* ... of which: per-process fd limit */
    uint64_t accept_enfile;  /* system-wide fd limit */
    uint64_t accept_enobufs; /* no socket buffers */
    uint64_t accept_enomem;  /* no memory */
    uint64_t shed;           /* clients closed unserved while out of resources */
    /* the dispatcher */
    uint64_t tracked;         /* threading: handler threads running their request;
                                 forking: children not yet reaped; pool: live workers */
    uint64_t queued;          /* pool: accepted requests waiting for a worker */
    uint64_t cancelled;       /* pool: queued requests shut down unhandled (close
                                 without block_on_close, or drain's deadline) */
    uint64_t spawn_failures;  /* threads or processes that could not be created (the
                                 request then went to handle_error) */
    uint64_t children_failed; /* forking: children that did not exit with status 0 */
    /* closing stream sockets (added after the fields above: their offsets do not move) */
    uint64_t lingering_closes; /* stream requests closed with a lingering close: the peer
                                  had not closed, and closing at once could have reset the
                                  connection and lost the end of the reply. The socket is
                                  then read and discarded until the peer closes (at most 2 s
                                  without progress, 30 s in all, 1 MiB) by a background
                                  thread, no longer a request. forking: done in the child,
                                  whose count the parent does not see */
    uint64_t linger_overflows; /* ... that needed one but were closed at once, because
                                  the process's lingering sockets were at their cap (1024,
                                  or a quarter of RLIMIT_NOFILE) or no thread could start */
    /* filters (socketserver/filter.h; added after the fields above) */
    uint64_t filter_refused;  /* connections a filter's open refused (ss_server_add_filter):
                                 closed without setup; not handled, not handler_errors.
                                 Forking: counted by the parent when the child exits */
    uint64_t proxy_invalid;   /* ... of which the PROXY filter's: no valid header, or one of a
                                 version not accepted (ss_server_set_proxy_protocol) */
    uint64_t proxy_untrusted; /* ... a header from a source not trusted to send one */
    uint64_t proxy_timeouts;  /* ... no whole header within its timeout */
    /* drain (added after the fields above: their offsets do not move) */
    uint64_t idle_closed; /* requests ss_server_drain ended at once because they were
                             idle: waiting for a client's next message after a
                             complete exchange (see ss_server_set_drain_close_idle);
                             forking: counted as the child is reaped */
    /* TLS (socketserver/tls.h; added after the fields above) */
    uint64_t tls_handshakes;         /* TLS handshakes completed (the request then ran);
                                        forking: counted as the child is reaped */
    uint64_t tls_handshake_failures; /* connections refused because their handshake failed
                                        (not TLS, refused version, certificate or ALPN, the
                                        peer gone, or handshake_timeout_ms passed); also in
                                        filter_refused */
    /* worker processes (ss_server_set_processes; added after the fields above) */
    uint64_t processes_failed; /* workers that ended without being told to (a crash,
                                  a signal, an exit in a handler, a failed start) or
                                  could not be forked; each is replaced */
    /* TLS reloads (socketserver/tls.h; added after the fields above) */
    uint64_t tls_reload_failures; /* certificate reloads that failed: an
                                     ss_server_reload_tls that returned an error, and,
                                     under worker processes, a worker's load of the files
                                     a reload in the supervisor loaded (it keeps the
                                     pair it had); each also logged at SS_LOG_ERROR */
} ss_stats;
/*
 * Copies the server's counters into *out. A macro over
 * ss_server_stats_sized that passes the size of the caller's ss_stats, so
 * a program built against an older header (fewer fields: new ones are only
 * ever added at the end) gets exactly the fields it knows, and one built
 * against a newer header gets zeros in the fields this library lacks.
 * ss_server_stats_sized copies min(size, sizeof(ss_stats)) bytes; the
 * function ss_server_stats (for callers that cannot use the macro) copies
 * this header's whole struct. Any thread, any time, also after close. A
 * NULL srv gives zeros in every field; a NULL out is ignored.
 */
SS_API void ss_server_stats_sized(const ss_server *srv, ss_stats *out, size_t size);
SS_API void ss_server_stats(const ss_server *srv, ss_stats *out);
#define ss_server_stats(srv, out) ss_server_stats_sized((srv), (out), sizeof *(out))

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_SERVER_H */
