/*
 * socketserver/python.h — Python's server classes in one line each
 * (TCPServer, ThreadingUDPServer, ...), and the pool's four.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/python-to-c.md
 * ("Servers").
 */
#ifndef SOCKETSERVER_PYTHON_H
#define SOCKETSERVER_PYTHON_H

#include <socketserver/base.h>
#include <socketserver/handler.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Combined constructors: Python's server classes in one line               */
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

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_PYTHON_H */
