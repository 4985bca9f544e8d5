/* The examples under a service manager (docs/deploy.md): one connection a
 * manager accepted (--inetd: inetd, tcpserver, systemd-socket-activate
 * --inetd; or --listen systemd: given a connected socket, systemd's
 * Accept=yes), and the restart on SIGHUP that hands the listening
 * sockets to a fresh copy of the program (ss_server_hand_over). */
#ifndef EXAMPLES_CLI_DEPLOY_H
#define EXAMPLES_CLI_DEPLOY_H

#include "cli.h"

#define CLI_RESTART_TIMEOUT 30 /* seconds a restarted copy has to say READY=1 */

/* The connected socket to serve in per-connection mode, or -1 to listen
 * as usual, or -2 after an error (printed). --inetd: stdin, which must be
 * a connected socket; it is moved off fd 0 (which becomes /dev/null), so
 * that its close ends the connection. --listen systemd: with exactly one
 * passed socket that is connected: that one. */
int cli_connection_fd(const cli_options *opts);

/* Standard output and error must not be a socket the server serves: the
 * log would go to the client (classic inetd puts the connection on fds 0,
 * 1 and 2), or every write would fail with EPIPE (inetd's `wait` mode, or
 * `--listen fd:0` given a listening socket on fds 0 to 2). Each of fds 1
 * and 2 that is a listening socket, or the same socket as `connection`
 * (-1: none), is pointed at /dev/null: that output is lost, as under
 * inetd, which gives no log. Other sockets there (journald's stream, a
 * pipe to a logger) are left alone. */
void cli_stdio_off_sockets(int connection);

/* Per-connection mode: SIGHUP (a reload sent to every instance, a
 * closing terminal) is ignored with a log line: there is no hand-over for
 * one connection, and the default action would cut it off. */
void cli_hangup_per_connection(const cli_options *opts);

/* From now on SIGHUP restarts the server: a thread hands its sockets to
 * the same program started again with the same options, its --listen
 * replaced by "--listen systemd:"; once that copy is ready this one stops
 * taking clients and its loop ends (the caller drains). A SIGHUP while a
 * restart is under way is ignored with a log line; a restart that fails
 * is logged and the server goes on. */
void cli_restart_enable(const cli_options *opts, ss_server *srv);
/* Once the loop has ended: SIGHUP is ignored from now on (with a log
 * line), and a restart not begun yet never begins. A restart under way
 * gives way to the stop (ss_server_hand_over's -ECANCELED: the successor
 * is stopped), at the stop request that ended the loop or, at the latest,
 * when the drain begins. */
void cli_restart_stopping(void);
/* After the drain has begun: ends the restart thread (a restart under way
 * has been cancelled by then, or ends within a second). True if the
 * server was handed over. */
bool cli_restart_disable(void);

#endif
