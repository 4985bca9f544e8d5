/*
 * socketserver/client.h — ss_connect, a client socket for any server URL.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/transports.md
 * ("Clients: ss_connect").
 */
#ifndef SOCKETSERVER_CLIENT_H
#define SOCKETSERVER_CLIENT_H

#include <socketserver/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Clients                                                                  */
/* ------------------------------------------------------------------------ */

/* Connects to a server URL (the same forms the server takes; a tcp:// name
 * tries each resolved address in turn, IPv4 first, an empty host means
 * localhost). tls:// gives the TCP connection under it, as tcp:// would:
 * the TLS handshake over it is the caller's (OpenSSL's SSL_set_fd, say).
 * udp:// gives a connected UDP socket (send and recv talk to
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

#endif /* SOCKETSERVER_CLIENT_H */
