/*
 * socketserver/deploy.h — running under a service manager: serving one
 * connection a manager accepted (inetd, systemd Accept=yes), saying
 * "ready" (systemd's Type=notify), and handing the listening sockets to
 * a successor process for a restart that drops nothing.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>; NULL arguments: -EINVAL
 * (socketserver/server.h, "Several listeners"). Guide: docs/deploy.md
 * (section "systemd", and "Restarting without dropping a connection").
 */
#ifndef SOCKETSERVER_DEPLOY_H
#define SOCKETSERVER_DEPLOY_H

#include <socketserver/base.h>
#include <socketserver/handler.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Per-connection (inetd) mode                                              */
/* ------------------------------------------------------------------------ */

/*
 * Creates a server for one stream connection that is already accepted:
 * the socket a classic inetd or tcpserver gives as stdin (fd 0), or the
 * one systemd passes as fd 3 for a socket unit with Accept=yes (read it
 * with the "systemd:" URL rules: LISTEN_FDS=1). Python has no such call;
 * its nearest equivalent is instantiating the handler class directly with
 * the socket (docs/python-to-c.md). Set hooks and options on *out as on
 * any server (request timeout, verify_request, log, filters), then call
 * ss_server_serve_connection once, then ss_server_free.
 *
 * `fd` must be a connected stream socket (TCP over IPv4/IPv6, or Unix
 * stream); the server owns it from a successful call on and closes it
 * (ss_server_free closes it too if it was never served); on failure it
 * stays the caller's. The server has no listener: ss_server_fileno is -1,
 * ss_server_address names the connection's local end, bind and activate
 * return SS_ESTATE. `handler` is copied; `data` goes to every call.
 * Returns 0; -EINVAL (out or handler NULL, a bad handler table, fd < 0, or
 * a listening socket), -EBADF (fd not open), -ENOTSOCK (not a socket),
 * -EPROTOTYPE (not a stream socket), -ENOTCONN (not connected),
 * -EAFNOSUPPORT (a socket family other than IPv4, IPv6 or Unix),
 * -ENOMEM.
 */
SS_API int ss_server_new_connection(ss_server **out, int fd, const ss_handler *handler, void *data);

/*
 * Serves the connection of a server made by ss_server_new_connection:
 * the limits and verify_request admit it as if it had been accepted, then
 * setup, handle and finish run on the calling thread (the sync
 * dispatcher's rules: ss_server_request_shutdown, from a signal handler
 * say, ends the handler's waits with -ECANCELED), the reply's end is
 * lingered for in place (the process usually exits next), and the socket
 * is closed. Counted in ss_stats like an accepted request. Returns 0
 * when the handler succeeded, the handler's error (already passed to
 * handle_error) otherwise, -ECONNREFUSED if the limits or verify_request
 * refused the client (closed, with the overload reply if one is set),
 * -EINVAL (srv NULL), SS_ESTATE if the server is not such a server or
 * was served already.
 */
SS_API int ss_server_serve_connection(ss_server *srv);

/* ------------------------------------------------------------------------ */
/* Readiness                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Tells whoever started this process how it is, by systemd's sd_notify(3)
 * protocol (without libsystemd): sends `state`, newline-separated
 * assignments such as "READY=1", "STOPPING=1" or "STATUS=text", as one
 * datagram to the Unix socket named by the NOTIFY_SOCKET variable (a path
 * or "@abstract"). Call it with "READY=1" once the server serves (after
 * activate): a systemd Type=notify service counts as started then, and a
 * server that started this process by ss_server_hand_over learns it may
 * stop accepting. After a READY=1 that went to such a predecessor,
 * NOTIFY_SOCKET is set to the service manager the predecessor talked to
 * (or unset), so later states go there. Returns 1 when sent, 0 when
 * NOTIFY_SOCKET is not set (nobody to tell; not an error), -EINVAL for a
 * NULL or empty state, -EAFNOSUPPORT for a NOTIFY_SOCKET form other than
 * a path or "@name", or the errno of the send (-ECONNREFUSED: nobody
 * listens there any more). Not thread-safe against getenv/setenv in
 * other threads (it reads, and after READY=1 may change, the environment).
 */
SS_API int ss_notify(const char *state);

/* ------------------------------------------------------------------------ */
/* Hand-over: restarting without refusing or resetting a connection         */
/* ------------------------------------------------------------------------ */

/*
 * Starts a successor process and hands it this server's listening
 * sockets: fork + execve of argv (argv[0] is looked up on PATH when it
 * holds no '/'; the environment is this process's), with the sockets as
 * descriptors 3, 4, ... in listener order, passed by the socket-activation
 * protocol (LISTEN_PID = the successor, LISTEN_FDS, LISTEN_FDNAMES: the
 * names the sockets were adopted with, else the scheme, "tcp", "unix",
 * ...), so the successor adopts them with the URL "systemd:". The
 * successor's NOTIFY_SOCKET names a socket this call listens on: it says
 * it is serving with ss_notify("READY=1") (or any sd_notify(3)
 * implementation). Waits for that, at most timeout_ms (negative: no
 * limit).
 *
 * Once the successor is ready, this server stops taking clients (its loop,
 * if one runs, stops polling the sockets; call ss_server_shutdown and
 * ss_server_drain next to let the requests in flight finish); the
 * sockets are the very same, so every client queued on them, or
 * arriving, is the successor's: none is refused or reset. Its drain
 * then only closes this process's copies (no backlog served, nothing
 * changed on the sockets, no socket file removed). A service manager
 * this process reports to (NOTIFY_SOCKET) is sent "MAINPID=" the
 * successor. The successor is a child of this process: it is not reaped
 * by this call once ready, and outlives this process.
 *
 * If the successor ends before it is ready, or is not ready in time (it
 * is then sent SIGTERM, and SIGKILL a second later, and reaped), nothing
 * changes for this server: it keeps serving; the failure is logged
 * (ss_server_set_log) with the successor's exit status, and returned.
 *
 * A stop wins over a hand-over: ss_server_request_shutdown or
 * ss_server_shutdown (from any thread, or a signal handler) while this
 * call runs, a stop still pending when it begins (the loop has not taken
 * it yet), or ss_server_drain begun on another thread, cancels it within
 * about 50 ms: the successor, if started, is sent SIGTERM (SIGKILL a
 * second later) and reaped, this server keeps its sockets and stops as it
 * would have without the hand-over, and the call returns -ECANCELED (the
 * stop request itself stays pending for the loop or drain it was made
 * for). A stop that comes after the successor was found ready (the point
 * of no return, decided under the lock a drain takes to begin) stops this
 * server only: the successor serves on.
 *
 * Any thread may call it while another runs the loop (the loop keeps
 * serving while this call waits); one hand-over at a time. Do not close
 * or free the server while it runs (join the calling thread first). *successor
 * (if not NULL) receives the successor's pid, also when it failed (it is
 * reaped then), or -1 when none was started. Returns 0;
 * -EINVAL (srv, argv or argv[0] NULL), SS_ESTATE (the server is not
 * active, has no listening socket, or was handed over already),
 * -EALREADY (a hand-over is in progress), the errno of the successor's
 * execve(2) when it cannot become the program (its child reported it
 * through a close-on-exec pipe; the child is reaped and *successor is its
 * pid): -ENOENT (argv[0] not found on PATH, or no such file), -EACCES (not
 * executable, or a directory on the way not searchable), -ENOEXEC (not a
 * format the kernel runs: a script without "#!"), -E2BIG, ...;
 * -ETIMEDOUT (started, but not ready in time), -ECANCELED (a stop or
 * drain, above), SS_ESUCCESSOR (the successor ran and ended before it was
 * ready; its exit status is in the log), or the errno of fork, pipe or the
 * notification socket.
 */
SS_API int ss_server_hand_over(ss_server *srv, char *const argv[], int timeout_ms,
                               pid_t *successor);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_DEPLOY_H */
