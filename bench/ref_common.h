/* What the reference servers share: the command line of the examples
 *     NAME [--listen URL] [--quiet]
 * (tcp://HOST:PORT, tcp://[V6]:PORT or unix:/path; default
 * tcp://127.0.0.1:9999), the listening socket, the "listening on URL" line
 * and the uppercase rule. The event loop is each server's own. */
#ifndef BENCH_REF_COMMON_H
#define BENCH_REF_COMMON_H

#include <stdbool.h>
#include <stddef.h>

/* Parses argv, creates the socket (SOCK_NONBLOCK if `nonblocking`), binds,
 * listens with backlog SOMAXCONN and prints "listening on URL". Exits with
 * status 2 on a usage error and 1 if it cannot listen. Returns the fd. */
int ref_listen(int argc, char **argv, const char *name, bool nonblocking);

/* Makes ref_listen take tls://HOST:PORT too: a TCP listener printed as
 * "listening on tls://...", for a server that runs TLS on it itself. */
void ref_allow_tls(void);

/* True if the listening socket is a Unix one (set by ref_listen). */
bool ref_is_unix(void);

/* Calls fn on SIGINT and SIGTERM (no SA_RESTART, so blocking calls see
 * EINTR). A Unix socket file is removed when the process exits. */
void ref_on_stop(void (*fn)(int));

/* Removes the Unix socket file, if any, and ends the process with status
 * 0. Async-signal-safe: for stop handlers of servers that do not unwind. */
void ref_exit_now(void);

/* ASCII a-z to A-Z in place; every other byte unchanged. */
void ref_uppercase(char *buf, size_t n);

#endif
