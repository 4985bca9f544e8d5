/*
 * libsocketserver — Python's socketserver for C.
 *
 * Write one request handler (setup / handle / finish), pick a transport by
 * URL and a concurrency model by dispatcher, then call serve_forever():
 *
 *     static int handle(ss_request *req, void *data) {
 *         char buf[1024];
 *         ssize_t n;
 *         int rc;
 *         while ((n = ss_request_recv(req, buf, sizeof buf)) > 0)
 *             if ((rc = ss_request_send_all(req, buf, (size_t)n)) < 0)
 *                 return rc;
 *         return (int)n;   // 0 on EOF, negative errno on error
 *     }
 *     static const ss_handler echo = {SS_HANDLER_VERSION, NULL, handle, NULL};
 *
 *     ss_server *srv;
 *     int rc = ss_server_new(&srv, "tcp://127.0.0.1:9999", ss_dispatch_sync(),
 *                            &echo, NULL);
 *     if (rc < 0) { fprintf(stderr, "%s\n", ss_strerror(rc)); exit(1); }
 *     ss_server_serve_forever(srv, 500);
 *     ss_server_free(srv);
 *
 * Conventions used by every function below:
 *   - Fallible calls return 0 (or a non-negative count) on success and a
 *     negative errno value on failure, e.g. -EADDRINUSE. Codes specific to
 *     this library are below -SS_ERRBASE. ss_strerror() describes any of them.
 *   - Whatever a *_new / *_create call returns is released by the matching
 *     *_free. Tables (handler, dispatcher) and user data are borrowed; strings
 *     are copied during the call.
 *   - The library installs no signal handlers and never changes the
 *     process's signal dispositions. Writes to peers never raise SIGPIPE.
 *   - Every file descriptor the library opens is close-on-exec.
 */
#ifndef SOCKETSERVER_H
#define SOCKETSERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SS_API __attribute__((visibility("default")))
#else
#define SS_API
#endif

#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Library-specific error codes sit above the errno range (negated). */
#define SS_ERRBASE 10000
enum {
    SS_EBADURL = -(SS_ERRBASE + 1),       /* address string is not a valid URL */
    SS_ENOTSUPPORTED = -(SS_ERRBASE + 2), /* URL scheme known, transport not built in */
    SS_ESTATE = -(SS_ERRBASE + 3),        /* call not valid in the server's current state */
    SS_ERESOLVE = -(SS_ERRBASE + 4),      /* host name could not be resolved */
    /* transports (see "Transports" below) */
    SS_ETRUNCATED = -(SS_ERRBASE + 10),   /* datagram longer than max_packet_size */
    SS_EUNNAMEDPEER = -(SS_ERRBASE + 11), /* reply to a datagram sender with no address */
    /* stream I/O (see "Stream I/O" below) */
    SS_ELINETOOLONG = -(SS_ERRBASE + 20), /* read_line: line longer than the caller's buffer */
    SS_EINCOMPLETE = -(SS_ERRBASE + 21),  /* read_exact: peer closed in mid-message */
    SS_EFINALFLUSH = -(SS_ERRBASE + 22),  /* output left at the end of a request was lost */
    /* address URLs (ss_server_create, ss_connect): each says what is wrong */
    SS_EURLNOSCHEME = -(SS_ERRBASE + 30),   /* no "scheme:" in front (e.g. "localhost:80") */
    SS_EURLSCHEME = -(SS_ERRBASE + 31),     /* scheme other than tcp, udp, unix, unixgram */
    SS_EURLNOPORT = -(SS_ERRBASE + 32),     /* tcp/udp URL without ":PORT" */
    SS_EURLPORTSYNTAX = -(SS_ERRBASE + 33), /* port is not a decimal number */
    SS_EURLPORTRANGE = -(SS_ERRBASE + 34),  /* port above 65535 */
    SS_EURLBRACKET = -(SS_ERRBASE + 35),    /* "[" of an IPv6 address without its "]" */
    SS_EURLIPV6BARE = -(SS_ERRBASE + 36),   /* IPv6 address without brackets */
    SS_EURLHOST = -(SS_ERRBASE + 37),       /* host empty in [], or holding / ? # [ ] or space */
    SS_EURLNOPATH = -(SS_ERRBASE + 38),     /* unix:/unixgram: with no path or name */
};
/* True for every URL error: SS_EBADURL (no URL at all) and SS_EURL*. */
#define SS_IS_URL_ERROR(err)                                                                       \
    ((err) == SS_EBADURL || ((err) <= SS_EURLNOSCHEME && (err) >= SS_EURLNOPATH))

/* Describes any value returned by this library (a negative errno or an
 * SS_E* code). Never returns NULL; the string is static. Thread-safe. */
SS_API const char *ss_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Handlers                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ss_server ss_server;
typedef struct ss_request ss_request;

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
 * a stream (tcp, unix) that is shutdown(SHUT_WR), then close. If the client
 * has not closed yet and input is unread, or (TCP) part of the reply is
 * not yet acknowledged, closing could reset the connection and destroy the
 * end of the reply (a client that sent more than the handler read); such
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
/* Dispatchers: where and how concurrently handlers run                    */
/* ------------------------------------------------------------------------ */

typedef struct ss_dispatcher ss_dispatcher;

/* One request at a time, in the thread that calls handle_request() or
 * serve_forever() (Python's plain TCPServer). Handler code may touch any
 * state of the calling thread; a second client waits in the kernel backlog
 * until the first request is finished. Since the loop cannot stop before
 * the handler returns, a stop request (ss_server_shutdown or
 * ss_server_request_shutdown, from any thread or signal handler) ends
 * every wait of the handler's request I/O with -ECANCELED (see
 * ss_request_recv). */
SS_API const ss_dispatcher *ss_dispatch_sync(void);

/* Looks a dispatcher up by its name ("sync", "threading", "forking",
 * "pool"), for command-line tools. Returns NULL for an unknown name. */
SS_API const ss_dispatcher *ss_dispatch_by_name(const char *name);

/* The dispatcher's name, e.g. "sync". */
SS_API const char *ss_dispatch_name(const ss_dispatcher *dispatcher);

/*
 * One thread per request (Python's ThreadingMixIn). The handler runs in a
 * new thread with a small stack (ss_server_set_thread_stack_size); it may
 * share state with other requests only under its own locks. A thread
 * that has finished its request leaves the bookkeeping at once, by
 * itself, even when no loop runs (ss_server_handle_request between calls):
 * it detaches itself, or, once ss_server_drain or ss_server_close has
 * begun, is joined by them, so none outlives close. The bookkeeping holds
 * running threads only (Python's bpo-37193 grew it with every request),
 * and ss_stats.tracked falls as each handler returns. There is no limit
 * on threads: for untrusted load prefer ss_dispatch_pool().
 * ss_server_close waits for the handler threads (see
 * ss_server_set_block_on_close and ss_server_set_daemon_threads). A handler
 * error, or a thread that cannot be created, goes to handle_error; the
 * request is always shut down.
 */
SS_API const ss_dispatcher *ss_dispatch_threading(void);

/*
 * One child process per request (Python's ForkingMixIn). The handler runs
 * in a fork of the serving thread: it may use anything the process had at
 * the fork, but what it changes stays in the child (counters, user data,
 * ss_server_shutdown, which then stops nothing: signal the parent with
 * kill(getppid(), SIGTERM) if you must). A stop never cancels the child's
 * request, not even one the application's signal handler requests in the
 * child because the signal went to the whole process group (Ctrl-C,
 * systemd's KillMode=control-group): the child serves its client to the
 * end or to the request timeout, and ss_server_drain's SIGTERM bounds it. In the child the listening socket
 * is closed (except for datagram transports, whose requests reply through
 * it) and so is the wake-up pipe, except for the one byte by which the
 * child announces its exit; after the request is shut down the child ends
 * with _exit(0), or _exit(1) if the handler failed (handle_error ran in the
 * child). _exit skips stdio flushing: flush what the handler printed.
 *
 * At most ss_server_set_max_children children run at once; at the limit
 * the server stops accepting, so further clients wait in the kernel
 * backlog (neither refused nor lost) until a child exits. The same holds
 * when the kernel refuses a fork (EAGAIN: RLIMIT_NPROC, a cgroup's
 * pids.max) while children of this server run: the request waits for one
 * of them to exit (one SS_LOG_WARNING says so); with none running it goes
 * to handle_error and is closed (ss_stats.spawn_failures). Children are
 * reaped within milliseconds with waitpid(pid, WNOHANG) on their own pids
 * only: no SIGCHLD handler is installed, no disposition is changed, and
 * waitpid(-1) is never called, so children the application starts itself
 * keep their exit status for it. The parent's ss_stats counts each reaped
 * child: exit 0 as handled; every other end (exit 1, which also counts as
 * a handler error, another code, a signal) counts in
 * ss_stats.children_failed. Fork in a program whose
 * other threads hold locks (of a logger, ...) at your own risk, as always.
 */
SS_API const ss_dispatcher *ss_dispatch_forking(void);

/*
 * A fixed pool of worker threads fed by a bounded queue (not in Python).
 * Handlers run in the workers, with the same rules as with
 * ss_dispatch_threading. The workers start at ss_server_activate
 * (ss_server_set_workers); accepted requests wait in a queue of
 * ss_server_set_queue_size entries, and while it is full the server stops
 * accepting: a burst waits in the kernel backlog and costs this process
 * neither memory nor descriptors.
 *
 * Each worker is an event loop: every request it takes runs on a fiber (a
 * small stack of its own, ss_server_set_thread_stack_size), and when the
 * handler's request I/O (ss_request_recv, ss_request_send_all, the stream
 * reader and writer, a datagram reply) would block, the fiber parks and
 * the worker runs another. Handler code is unchanged: it is written
 * blocking-style as for any dispatcher. A worker serves up to
 * ss_server_set_pool_fibers requests at once; only when every worker is
 * at that cap does the queue fill. So idle clients cost a parked stack,
 * not a worker, and a few workers serve thousands of connections.
 *
 * The trade-off: a handler that blocks its thread some other way (sleep,
 * disk I/O, a lock held long, a blocking call on the raw fileno) stalls
 * every other request on its worker meanwhile. Such handlers belong on
 * ss_dispatch_threading, or on a pool with ss_server_set_pool_fibers(1).
 * A fiber never moves between threads, so thread-local storage works;
 * handle_error runs on the fiber too.
 *
 * Where the C library has no ucontext (getcontext/makecontext/swapcontext:
 * musl, for one), or the library was configured with -DSS_FIBERS=OFF, a
 * worker stays with one client until the handler returns, so an idle
 * client holds a worker: use a request timeout against such clients.
 *
 * ss_server_close drains the queue and joins the workers, or with
 * block_on_close off shuts the queued requests down unhandled (counted in
 * ss_stats.cancelled) and lets running handlers finish alone.
 */
SS_API const ss_dispatcher *ss_dispatch_pool(void);

/* ------------------------------------------------------------------------ */
/* Concurrency: options of the dispatchers, their counters, and which      */
/* calls are safe from where                                               */
/* ------------------------------------------------------------------------ */

/*
 * Which thread may call what:
 *   - Any thread, at any time: ss_server_shutdown (blocks until the loop
 *     has stopped, except from a handler or hook on the serving thread,
 *     where it only asks), ss_server_request_shutdown (also from signal
 *     handlers), ss_server_stats, the setters documented as "any time",
 *     and the queries (fileno, address, port, data), which do not change
 *     after bind.
 *   - Before serving, from the thread that set the server up: hooks and
 *     the other options.
 *   - One thread at a time: ss_server_handle_request, ss_server_serve_forever.
 *   - Once the loop has stopped (after ss_server_shutdown returns, or when
 *     serve_forever has returned), from any thread but the server's own
 *     handler threads: ss_server_drain, ss_server_close and
 *     ss_server_free. They are safe while handlers still run on other
 *     threads: close waits for them (or lets them go, per block_on_close
 *     and daemon_threads); a request keeps the server's memory alive until
 *     it ends, so a handler never sees a freed server.
 *   - ss_request_* calls: the thread running that request's handler, or
 *     one writer thread it hands the output to while it reads (see
 *     "Stream I/O"), until finish returns.
 * Handler code runs in the serving thread (sync), a new thread
 * (threading), a worker thread (pool) or a child process (forking); the
 * hooks verify_request, handle_timeout and service_actions always run in
 * the serving thread, handle_error wherever the handler ran.
 */

/* Python's daemon_threads, for ss_dispatch_threading. In C a process ends
 * when main returns whatever its threads do, so "daemon" means only: not
 * waited for by ss_server_close. Default off. Applies to requests started
 * afterwards; any time. */
SS_API void ss_server_set_daemon_threads(ss_server *srv, bool on);

/* Python's block_on_close. On (the default): ss_server_close waits for
 * every non-daemon handler thread (threading), every child (forking), or
 * drains the queue and joins the workers (pool). Off: close waits for
 * none of them; the pool shuts its queued requests down unhandled, and
 * children still running are no longer tracked (they stay the
 * application's children: reap them yourself or they linger as zombies
 * once they exit). Any time before ss_server_close. */
SS_API void ss_server_set_block_on_close(ss_server *srv, bool on);

/* Python's max_children, for ss_dispatch_forking: how many children may
 * run at once. Default SS_DEFAULT_MAX_CHILDREN (1024); 0 restores it.
 * Python's default is 40, which leaves every client beyond the 40th
 * unanswered while 40 long connections last: pass 40 for Python's
 * behaviour. A child of a C server costs little more than its touched
 * pages, so the default bounds a fork storm without starving ordinary
 * loads; ss_server_set_max_connections bounds every dispatcher alike.
 * Returns 0, -EINVAL if negative, SS_ESTATE after activate. */
#define SS_DEFAULT_MAX_CHILDREN 1024
SS_API int ss_server_set_max_children(ss_server *srv, int max_children);

/* Worker threads of ss_dispatch_pool. Default (0): 4 per online CPU, at
 * least 8 and at most 256: each worker serves many connections on fibers,
 * but a handler that blocks its thread outside request I/O stalls its
 * worker, so several per core keep the cores busy while the ceiling
 * bounds memory. Without fibers a worker stays with one client for a
 * whole connection: for such a pool that must serve N clients at once,
 * set N. Returns 0, -EINVAL if negative, SS_ESTATE after activate. */
SS_API int ss_server_set_workers(ss_server *srv, int workers);

/* Capacity of ss_dispatch_pool's queue of accepted requests waiting for a
 * worker. Default (0): as many as there are workers. Deeper gains little:
 * each queued request holds a descriptor, while waiting in the kernel
 * backlog (see ss_server_set_backlog) costs this process nothing. Returns
 * 0, -EINVAL if negative, SS_ESTATE after activate. */
SS_API int ss_server_set_queue_size(ss_server *srv, int queue_size);

/* Stack size of handler threads (threading and pool), in bytes, rounded up
 * to whole pages. Default SS_DEFAULT_THREAD_STACK_SIZE (256 KiB): room for
 * handlers with tens of KiB of locals and the library's calls, where the
 * system default (often 8 MiB) would reserve 32 times more address space
 * per thread. 0 restores the default. Returns 0, -EINVAL below
 * PTHREAD_STACK_MIN, SS_ESTATE after activate. */
#define SS_DEFAULT_THREAD_STACK_SIZE (256 * 1024)
SS_API int ss_server_set_thread_stack_size(ss_server *srv, size_t bytes);

/* How many requests each ss_dispatch_pool worker runs at once, each on a
 * fiber with a stack of ss_server_set_thread_stack_size bytes (mmap'd
 * with a guard page; address space, of which only touched pages cost
 * memory; up to 64 per worker are kept for reuse). Default (0):
 * SS_DEFAULT_POOL_FIBERS, so the default 8 workers hold 8192 connections
 * before the queue fills and the server stops accepting. 1 gives a
 * worker per connection, for handlers that block their thread outside
 * request I/O. Ignored where fibers are not built in (see
 * ss_dispatch_pool). Returns 0, -EINVAL if negative, SS_ESTATE after
 * activate. */
#define SS_DEFAULT_POOL_FIBERS 1024
SS_API int ss_server_set_pool_fibers(ss_server *srv, int fibers);

/* ------------------------------------------------------------------------ */
/* Combined constructors: Python's server classes in one line              */
/* ------------------------------------------------------------------------ */

/*
 * Each is ss_server_new() with the URL built from its arguments and a
 * dispatcher: ss_threading_tcp_server_new(&srv, "127.0.0.1", 0, &h, data) is
 * Python's ThreadingTCPServer(("127.0.0.1", 0), Handler). `host` may be a
 * name, an IPv4 or IPv6 address (no brackets needed), or NULL/"" for every
 * IPv4 address; `port` 0 lets the kernel choose. `path` is a socket file
 * path or "@name" (Linux abstract). Returns what ss_server_new returns,
 * -EINVAL for a port outside 0..65535, -ENAMETOOLONG for an overlong host
 * or path, SS_ENOTSUPPORTED where the transport is not built in.
 */
SS_API int ss_tcp_server_new(ss_server **out, const char *host, int port, const ss_handler *handler,
                             void *data);
SS_API int ss_udp_server_new(ss_server **out, const char *host, int port, const ss_handler *handler,
                             void *data);
SS_API int ss_unix_stream_server_new(ss_server **out, const char *path, const ss_handler *handler,
                                     void *data);
SS_API int ss_unix_datagram_server_new(ss_server **out, const char *path, const ss_handler *handler,
                                       void *data);
SS_API int ss_threading_tcp_server_new(ss_server **out, const char *host, int port,
                                       const ss_handler *handler, void *data);
SS_API int ss_threading_udp_server_new(ss_server **out, const char *host, int port,
                                       const ss_handler *handler, void *data);
SS_API int ss_threading_unix_stream_server_new(ss_server **out, const char *path,
                                               const ss_handler *handler, void *data);
SS_API int ss_threading_unix_datagram_server_new(ss_server **out, const char *path,
                                                 const ss_handler *handler, void *data);
SS_API int ss_forking_tcp_server_new(ss_server **out, const char *host, int port,
                                     const ss_handler *handler, void *data);
SS_API int ss_forking_udp_server_new(ss_server **out, const char *host, int port,
                                     const ss_handler *handler, void *data);
SS_API int ss_forking_unix_stream_server_new(ss_server **out, const char *path,
                                             const ss_handler *handler, void *data);
SS_API int ss_forking_unix_datagram_server_new(ss_server **out, const char *path,
                                               const ss_handler *handler, void *data);
SS_API int ss_pool_tcp_server_new(ss_server **out, const char *host, int port,
                                  const ss_handler *handler, void *data);
SS_API int ss_pool_udp_server_new(ss_server **out, const char *host, int port,
                                  const ss_handler *handler, void *data);
SS_API int ss_pool_unix_stream_server_new(ss_server **out, const char *path,
                                          const ss_handler *handler, void *data);
SS_API int ss_pool_unix_datagram_server_new(ss_server **out, const char *path,
                                            const ss_handler *handler, void *data);

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
 *     unix:PATH              Unix stream socket at PATH (up to sun_path's
 *                            size less one byte, else -ENAMETOOLONG)
 *     unix:@NAME             Linux abstract name, no file, NAME up to
 *                            sun_path's size less one byte (107), else
 *                            -ENAMETOOLONG (SS_ENOTSUPPORTED on other systems)
 *     unixgram:PATH          Unix datagram socket (also unixgram:@NAME)
 * PORT may be 0: the kernel picks one, read it back with ss_server_address().
 * See "Transports" below for datagram requests and socket-file rules.
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
 * Returns 0 or a negative errno. */
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
 * Returns 0 after a shutdown, SS_ESTATE if not activated, -EBUSY if the loop
 * is already running in another thread.
 */
SS_API int ss_server_serve_forever(ss_server *srv, int poll_interval_ms);

/*
 * Stops serve_forever(). Called from another thread, it blocks until the
 * loop has exited (Python's shutdown). With the sync dispatcher a handler
 * waiting on its client then gets -ECANCELED, so the loop exits as soon as
 * the handler returns; other dispatchers' handlers are not interrupted
 * (ss_server_drain bounds them). Called from inside a handler or hook
 * running on the serving thread, it only requests the stop and returns, so
 * it cannot deadlock; the loop exits when that request is done. If the loop
 * is not running, the request is remembered and returns at once (during
 * ss_server_drain: stop now).
 * Not for signal handlers: use ss_server_request_shutdown(). Returns 0.
 */
SS_API int ss_server_shutdown(ss_server *srv);

/*
 * Requests that serve_forever() stop, and returns at once without waiting.
 * Async-signal-safe: meant for SIGINT/SIGTERM handlers. Preserves errno.
 * During ss_server_drain, it means "stop now" (a second Ctrl-C).
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
/* Server options: set after create, before bind (or activate)             */
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
/* Limits and graceful stop (docs/production.md)                           */
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

/* ------------------------------------------------------------------------ */
/* Server hooks (Python's overridable methods). Set before serving.        */
/* Each receives the `data` given at creation. NULL restores the default.  */
/* ------------------------------------------------------------------------ */

/* Return false to refuse a request: it is shut down without the handler
 * running. Default: accept every request. Runs where the loop runs. */
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

/* Library messages (accept failures, default handle_error reports, ...).
 * Levels, least to most severe. */
typedef enum ss_log_level {
    SS_LOG_DEBUG,
    SS_LOG_INFO,
    SS_LOG_WARNING,
    SS_LOG_ERROR,
} ss_log_level;

/* Receives every library message for a server, already formatted (no
 * trailing newline), with the `data` given at creation. May run in the
 * serving thread or in a handler's thread; must be thread-safe when a
 * concurrent dispatcher is used. */
typedef void (*ss_log_fn)(ss_server *srv, ss_log_level level, const char *message, void *data);

/* Routes the server's messages to fn; NULL restores the default, which
 * prints warnings and errors as one "socketserver: ..." line on stderr and
 * drops debug and info messages. Set before serving. */
SS_API void ss_server_set_log(ss_server *srv, ss_log_fn fn);

/* "debug", "info", "warning" or "error". */
SS_API const char *ss_log_level_name(ss_log_level level);

/* ------------------------------------------------------------------------ */
/* Server queries                                                           */
/* ------------------------------------------------------------------------ */

/* The listening socket (Python's fileno()), or -1 after close. */
SS_API int ss_server_fileno(const ss_server *srv);

/* Writes the server's address as a URL into buf, e.g. "tcp://127.0.0.1:40123"
 * or "tcp://[::1]:40123". After bind it is the real bound address (port 0
 * resolved). Returns the length, or -ENOSPC if buf is too small (64 bytes
 * always suffice for inet; 128 for every form). */
SS_API int ss_server_address(const ss_server *srv, char *buf, size_t size);

/* The bound port of an inet server (after bind), 0 otherwise. */
SS_API int ss_server_port(const ss_server *srv);

/* The `data` pointer given at creation. */
SS_API void *ss_server_data(const ss_server *srv);

/*
 * Every counter of the server, in one place. Each is an atomic updated
 * where its event happens, so reading them takes no lock and never slows
 * the server down; readable at any time from any thread, also after close.
 * A snapshot is not one instant: counters move while it is taken. For the
 * forking dispatcher, what happens inside a child reaches the parent's
 * counters when the child is reaped.
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
} ss_stats;
SS_API void ss_server_stats(const ss_server *srv, ss_stats *out);

/* ------------------------------------------------------------------------ */
/* Requests: valid from setup until finish returns                         */
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
 * (a client socket that was never bound). */
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
 * a hook; once a stop is pending, every recv returns -ECANCELED at once.
 * Handlers of other dispatchers (threads, pool fibers, forked children)
 * are never cancelled this way. Bytes the stream reader (below) has
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
 * Output still waiting in the stream writer (below) is sent first.
 */
SS_API int ss_request_send_all(ss_request *req, const void *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Stream I/O: Python's StreamRequestHandler.rfile and wfile               */
/* ------------------------------------------------------------------------ */

/*
 * Every request has a buffered reader and a writer on top of recv and
 * send_all, so they work the same over every transport: on a datagram
 * request the reader reads the packet and the writer fills the reply.
 * Their buffers are allocated on first use and freed with the request; a
 * handler that only calls recv/send_all pays nothing for them.
 *
 * Reads and writes go through the request timeout (ss_request_set_timeout):
 * a wait with no progress for that long fails with -ETIMEDOUT, and the
 * -ECANCELED rule of the sync dispatcher (ss_request_recv) applies to every
 * read and to every write that has to wait.
 *
 * Threads: the reader (ss_request_read_*, ss_request_recv) and the writer
 * (ss_request_write, ss_request_flush, ss_request_send_all) share no state,
 * so one thread may read while another writes. Two threads must not read,
 * or write, at the same time.
 */

/* Size of the read buffer of each request accepted afterwards, in bytes
 * (Python's rbufsize). Default 8192. Any time. Returns 0, or -EINVAL if
 * size is 0 or above 1 GiB. */
SS_API int ss_server_set_read_buffer_size(ss_server *srv, size_t size);

/* Size of the write buffer of each request accepted afterwards, in bytes
 * (Python's wbufsize). 0, the default as in Python, means unbuffered:
 * every ss_request_write is sent completely before it returns. With a
 * buffer, output collects until it is full, ss_request_flush is called or
 * the request ends. Any time. Returns 0, or -EINVAL above 1 GiB. */
SS_API int ss_server_set_write_buffer_size(ss_server *srv, size_t size);

/* Sets TCP_NODELAY on each TCP connection accepted afterwards (Python's
 * disable_nagle_algorithm): a send goes out at once instead of waiting
 * for the peer to acknowledge earlier data. Turn it on when every send is
 * a complete reply (the writer flushed once per message, or one send_all
 * per answer); a handler that answers in many small pieces then sends
 * many small packets. Default off. Other transports ignore it. Any time. */
SS_API void ss_server_set_tcp_nodelay(ss_server *srv, bool on);

/*
 * Reads one line: bytes up to and including the next '\n', copied to buf
 * and followed by a '\0' (the line itself may contain NUL bytes: use the
 * returned length). The longest line accepted is size - 1 bytes, newline
 * included. Returns:
 *   > 0   the line's length. At end of stream, a last line without '\n'
 *         is returned as it is (as Python's readline does).
 *   0     the peer closed and nothing is left.
 *   SS_ELINETOOLONG  no '\n' within size - 1 bytes. buf holds those
 *         bytes (NUL-terminated, for a log message); the rest of that line,
 *         through its '\n', is discarded by the next read of any kind, so
 *         the handler can answer with an error and read the next line.
 *   < 0   -ETIMEDOUT, -ECONNRESET, ... A line cut short by an error is
 *         not lost: it stays buffered and the next call goes on with it.
 * The read buffer grows to size - 1 bytes if it is smaller, so the limit
 * the caller picks also bounds the memory a hostile peer can make it use.
 * -EINVAL if size < 2, -ENOMEM if the buffer cannot grow.
 */
SS_API ssize_t ss_request_read_line(ss_request *req, char *buf, size_t size);

/*
 * Reads exactly `size` bytes into buf, waiting for as many packets as it
 * takes (Python's rfile.read(size)). Returns size; 0 if the peer closed
 * before the first byte (a clean end between messages); SS_EINCOMPLETE if
 * it closed after some but not all of them; or a negative errno. An error
 * after part of the message was consumed (a timeout, a reset) leaves the
 * stream at an unknown position: every later read returns that same error.
 */
SS_API ssize_t ss_request_read_exact(ss_request *req, void *buf, size_t size);

/*
 * Reads what is available, at most `size` bytes, waiting only if nothing
 * is (Python's rfile.read1). Returns the count (> 0), 0 at end of stream,
 * or a negative errno. Unlike ss_request_recv it reads ahead into the
 * request's buffer, so many small reads cost few system calls.
 */
SS_API ssize_t ss_request_read_some(ss_request *req, void *buf, size_t size);

/*
 * Writes `size` bytes (Python's wfile.write). Unbuffered (the default),
 * it is ss_request_send_all: complete before it returns. Buffered, the
 * bytes are copied and sent when the buffer fills, on ss_request_flush, on
 * ss_request_send_all, or after finish. Returns size, or a negative errno
 * (-EINVAL if size exceeds SSIZE_MAX). If a send of buffered output fails,
 * what was buffered is lost and every later write, flush and send_all
 * returns the same error.
 */
SS_API ssize_t ss_request_write(ss_request *req, const void *buf, size_t size);

/*
 * Sends whatever the writer holds. Returns 0 (also when nothing was
 * pending) or a negative errno as ss_request_write describes.
 *
 * After finish, the server flushes what is left by itself. If that fails
 * because the peer has gone (Python bpo-14574: the client read its answer
 * and left), the request still counts as handled: handle_error receives
 * SS_EFINALFLUSH, which the default hook logs at SS_LOG_DEBUG, so it is
 * silent unless a log function asks for debug messages. A handler that
 * must know whether its last bytes left should call ss_request_flush at
 * the end of handle and look at the result.
 */
SS_API int ss_request_flush(ss_request *req);

/* ------------------------------------------------------------------------ */
/* Transports: datagram requests, Unix socket files, peer credentials      */
/* ------------------------------------------------------------------------ */

/*
 * Datagram servers (udp://, unixgram:) turn each datagram into one request
 * (Python's DatagramRequestHandler, for every handler): ss_request_recv and
 * the stream reader read the packet and then return 0; ss_request_send_all
 * and the stream writer append to a reply, which is sent to the sender in
 * one datagram after finish. The reply holds whatever the handler wrote,
 * even if it then failed. Unlike Python, an empty reply sends nothing
 * unless the handler calls ss_request_force_reply. A reply that cannot be
 * sent reaches handle_error like a handler's error: SS_EUNNAMEDPEER when
 * the sender has no address (an unbound Unix datagram socket), -ETIMEDOUT
 * when the request timeout passes with the receiver's queue still full,
 * -ENOBUFS at once when the server's own send buffer is full or its peer
 * holds its share of it (Linux, unixgram: a client that never reads its
 * replies; docs/transports.md). Without a request timeout the reply waits
 * for room in the receiver's queue, as a blocking sendto would.
 */

/* Largest datagram received whole, in bytes (Python's max_packet_size).
 * Default 8192. A longer datagram is cut to this size and marked
 * truncated (see ss_request_truncated). Replies may be as long as this or
 * 65536 bytes, whichever is more. Set before activate. Returns 0, -EINVAL
 * if size is 0 or above 16 MiB or the server is not a datagram server, or
 * SS_ESTATE after activate. */
SS_API int ss_server_set_max_packet_size(ss_server *srv, size_t size);

/* The datagram this request was made of (Python's self.request[0]), and
 * its length in *len if len is not NULL. Valid until the request ends;
 * owned by the request. For a stream request: NULL, length 0. */
SS_API const void *ss_request_packet(const ss_request *req, size_t *len);

/* True if the datagram was longer than max_packet_size and arrived cut
 * short (detected with MSG_TRUNC; Python truncates silently). Then every
 * ss_request_recv (and stream read) returns SS_ETRUNCATED instead of data,
 * so a handler that ignores this call fails rather than act on part of a
 * message; ss_request_packet still shows the bytes that arrived. A handler
 * that returns the error gets it reported by handle_error. False for
 * stream requests. */
SS_API bool ss_request_truncated(const ss_request *req);

/* Sends a reply datagram after finish even if the handler wrote nothing
 * (then it is empty). Returns 0, or -ENOTSUP for a stream request. */
SS_API int ss_request_force_reply(ss_request *req);

/*
 * Permission bits (e.g. 0660) for the socket file of a unix: or unixgram:
 * PATH server: the file gets exactly these bits, whatever the umask, and
 * never more than these, not even for an instant. On Linux the file is
 * created with them (fchmod on the unbound socket, bind in a helper thread
 * with a private umask of 0: the process umask never changes). Elsewhere,
 * or if unshare(CLONE_FS) is refused, it is created under the umask and
 * the missing bits are then added to that very file, never through a
 * symbolic link (docs/transports.md). Default: what the process umask
 * gives. Returns 0, -EINVAL for bits outside 07777 or a server without a
 * socket file (inet, abstract), or SS_ESTATE after bind.
 *
 * Socket-file rules for PATH servers (Python has none of them):
 *   - bind replaces a stale socket file (one no socket is bound to: both a
 *     datagram and a stream connect to it are refused); a file any socket
 *     is bound to, listening or not yet, stays untouched and bind fails
 *     with -EADDRINUSE; a path that is not a socket is never deleted: bind
 *     fails with -EEXIST;
 *   - if right after bind the path no longer names a socket file (it was
 *     replaced), bind fails with -ELOOP for a symbolic link, -EEXIST for
 *     another file, and leaves it alone;
 *   - ss_server_close removes the socket file this server created, if
 *     the path still names that same file, and only in the process that
 *     bound it (a forked child that closes its copy leaves it).
 */
SS_API int ss_server_set_unix_mode(ss_server *srv, mode_t mode);

/* Credentials of the process at the other end of a unix: stream request,
 * taken by the kernel when it connected (SO_PEERCRED on Linux; getpeereid
 * on the BSDs and macOS, where *pid is -1). Any pointer may be NULL.
 * Returns 0, -ENOTSUP for other transports or where the OS offers no way,
 * or a negative errno. Call from the handler. */
SS_API int ss_request_peer_credentials(const ss_request *req, pid_t *pid, uid_t *uid, gid_t *gid);

/* ------------------------------------------------------------------------ */
/* Clients                                                                  */
/* ------------------------------------------------------------------------ */

/* Connects to a server URL (the same forms the server takes; a tcp:// name
 * tries each resolved address in turn, IPv4 first, an empty host means
 * localhost). udp:// gives a connected UDP socket (send and recv talk to
 * that server only). unix: gives a connected stream socket. unixgram:
 * gives a connected datagram socket bound to an address of its own, so
 * the server can reply: on Linux an automatic abstract name that vanishes
 * with the socket; elsewhere a fresh file $TMPDIR/ss-client-*.sock (or
 * under /tmp) that outlives the socket: the caller removes it (getsockname
 * gives the path).
 * Returns a connected, blocking, close-on-exec socket that the caller
 * closes, or a negative error code. */
SS_API int ss_connect(const char *url);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_H */
