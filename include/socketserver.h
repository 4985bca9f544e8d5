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
 * Conventions used by every function of the area headers below:
 *   - Fallible calls return 0 (or a non-negative count) on success and a
 *     negative errno value on failure, e.g. -EADDRINUSE. Codes specific to
 *     this library are below -SS_ERRBASE. ss_strerror() describes any of them.
 *   - Whatever a *_new / *_create call returns is released by the matching
 *     *_free. Tables (handler, dispatcher) and user data are borrowed; strings
 *     are copied during the call.
 *   - The library installs no signal handlers and never changes the
 *     process's signal dispositions. Writes to peers never raise SIGPIPE.
 *   - Every file descriptor the library opens is close-on-exec.
 *   - Times are int milliseconds; a negative timeout means none (wait
 *     forever). Sizes are size_t bytes. For the counts of the dispatchers
 *     and the limits, 0 restores the default or means "no limit", as each
 *     setter says.
 *   - Options are set on the server between create and bind, activate or
 *     serving, or at any time, as each setter says; the whole list, by
 *     when, is in socketserver/server.h.
 *
 * Which thread may call what:
 *   - Any thread, at any time: ss_server_shutdown (blocks until the loop
 *     has stopped, except from a handler or hook on the serving thread,
 *     where it only asks), ss_server_request_shutdown (also from signal
 *     handlers), ss_server_stats, the setters documented as "any time",
 *     and the queries (fileno, address, port, data, and the same per
 *     listener), which do not change after bind but for fileno, which
 *     becomes -1 when drain or close closes the listener. The two stop
 *     calls, stats and the queries take a NULL server without crashing:
 *     request_shutdown ignores it, stats gives zeros, data and
 *     listener_name NULL, the others -EINVAL (socketserver/server.h); the
 *     setters do not.
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
 *     socketserver/stream.h), until finish returns.
 * Handler code runs in the serving thread (sync), a new thread
 * (threading), a worker thread (pool) or a child process (forking); the
 * hooks verify_request, handle_timeout and service_actions always run in
 * the serving thread (verify_request: where the handler runs instead, once
 * a PROXY header has named the client; socketserver/filter.h),
 * handle_error wherever the handler ran.
 *
 * The API, one area header each, every header with its guide in docs/
 * (each compiles on its own; programs include this one):
 *   socketserver/base.h       errors, ss_strerror, log levels, the types
 *                             (docs/python-to-c.md)
 *   socketserver/handler.h    the handler table; a request's accessors,
 *                             recv and send_all (docs/tutorial.md)
 *   socketserver/server.h     create, bind, activate, serve, shut down,
 *                             close; socket options, hooks, log, queries,
 *                             counters, the list of every option
 *                             (docs/tutorial.md)
 *   socketserver/stream.h     the buffered reader and writer: rfile, wfile
 *                             (docs/tutorial.md)
 *   socketserver/limits.h     timeouts, limits, overload reply, drain
 *                             (docs/production.md)
 *   socketserver/dispatch.h   sync, threading, forking, pool and their
 *                             options (docs/concurrency.md)
 *   socketserver/transport.h  datagrams, Unix socket files, peer
 *                             credentials (docs/transports.md)
 *   socketserver/python.h     Python's server classes in one line each
 *                             (docs/python-to-c.md)
 *   socketserver/client.h     ss_connect (docs/transports.md)
 *   socketserver/filter.h     filters between the socket and the handler's
 *                             I/O (docs/filters.md)
 *   socketserver/tls.h        tls:// listeners, certificates, reload, a
 *                             request's TLS session (docs/tls.md)
 */
#ifndef SOCKETSERVER_H
#define SOCKETSERVER_H

#include <socketserver/base.h>
#include <socketserver/handler.h>
#include <socketserver/server.h>
#include <socketserver/stream.h>
#include <socketserver/limits.h>
#include <socketserver/dispatch.h>
#include <socketserver/transport.h>
#include <socketserver/python.h>
#include <socketserver/client.h>
#include <socketserver/filter.h>
#include <socketserver/tls.h>
#include <socketserver/deploy.h>

#endif /* SOCKETSERVER_H */
