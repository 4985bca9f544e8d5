/* Python's server classes as one-line constructors: each builds the URL
 * for its transport and calls ss_server_new with its dispatcher. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* "tcp://HOST:PORT", with brackets around an IPv6 address. */
static int inet_new(ss_server **out, const char *scheme, const char *host, int port,
                    const ss_dispatcher *d, const ss_handler *h, void *data)
{
    if (out != NULL)
        *out = NULL;
    if (port < 0 || port > 65535)
        return -EINVAL;
    if (host == NULL)
        host = "";
    bool v6 = strchr(host, ':') != NULL;
    char url[300];
    int n = snprintf(url, sizeof url, "%s://%s%s%s:%d", scheme, v6 ? "[" : "", host, v6 ? "]" : "",
                     port);
    if (n < 0 || (size_t)n >= sizeof url)
        return -ENAMETOOLONG;
    return ss_server_new(out, url, d, h, data);
}

static int unix_new(ss_server **out, const char *scheme, const char *path, const ss_dispatcher *d,
                    const ss_handler *h, void *data)
{
    if (out != NULL)
        *out = NULL;
    char url[300];
    int n = snprintf(url, sizeof url, "%s:%s", scheme, path != NULL ? path : "");
    if (n < 0 || (size_t)n >= sizeof url)
        return -ENAMETOOLONG;
    return ss_server_new(out, url, d, h, data);
}

SS_API int ss_tcp_server_new(ss_server **out, const char *host, int port, const ss_handler *h,
                             void *data)
{
    return inet_new(out, "tcp", host, port, ss_dispatch_sync(), h, data);
}

SS_API int ss_udp_server_new(ss_server **out, const char *host, int port, const ss_handler *h,
                             void *data)
{
    return inet_new(out, "udp", host, port, ss_dispatch_sync(), h, data);
}

SS_API int ss_unix_stream_server_new(ss_server **out, const char *path, const ss_handler *h,
                                     void *data)
{
    return unix_new(out, "unix", path, ss_dispatch_sync(), h, data);
}

SS_API int ss_unix_datagram_server_new(ss_server **out, const char *path, const ss_handler *h,
                                       void *data)
{
    return unix_new(out, "unixgram", path, ss_dispatch_sync(), h, data);
}

SS_API int ss_threading_tcp_server_new(ss_server **out, const char *host, int port,
                                       const ss_handler *h, void *data)
{
    return inet_new(out, "tcp", host, port, ss_dispatch_threading(), h, data);
}

SS_API int ss_threading_udp_server_new(ss_server **out, const char *host, int port,
                                       const ss_handler *h, void *data)
{
    return inet_new(out, "udp", host, port, ss_dispatch_threading(), h, data);
}

SS_API int ss_threading_unix_stream_server_new(ss_server **out, const char *path,
                                               const ss_handler *h, void *data)
{
    return unix_new(out, "unix", path, ss_dispatch_threading(), h, data);
}

SS_API int ss_threading_unix_datagram_server_new(ss_server **out, const char *path,
                                                 const ss_handler *h, void *data)
{
    return unix_new(out, "unixgram", path, ss_dispatch_threading(), h, data);
}

SS_API int ss_forking_tcp_server_new(ss_server **out, const char *host, int port,
                                     const ss_handler *h, void *data)
{
    return inet_new(out, "tcp", host, port, ss_dispatch_forking(), h, data);
}

SS_API int ss_forking_udp_server_new(ss_server **out, const char *host, int port,
                                     const ss_handler *h, void *data)
{
    return inet_new(out, "udp", host, port, ss_dispatch_forking(), h, data);
}

SS_API int ss_forking_unix_stream_server_new(ss_server **out, const char *path, const ss_handler *h,
                                             void *data)
{
    return unix_new(out, "unix", path, ss_dispatch_forking(), h, data);
}

SS_API int ss_forking_unix_datagram_server_new(ss_server **out, const char *path,
                                               const ss_handler *h, void *data)
{
    return unix_new(out, "unixgram", path, ss_dispatch_forking(), h, data);
}

SS_API int ss_pool_tcp_server_new(ss_server **out, const char *host, int port, const ss_handler *h,
                                  void *data)
{
    return inet_new(out, "tcp", host, port, ss_dispatch_pool(), h, data);
}

SS_API int ss_pool_udp_server_new(ss_server **out, const char *host, int port, const ss_handler *h,
                                  void *data)
{
    return inet_new(out, "udp", host, port, ss_dispatch_pool(), h, data);
}

SS_API int ss_pool_unix_stream_server_new(ss_server **out, const char *path, const ss_handler *h,
                                          void *data)
{
    return unix_new(out, "unix", path, ss_dispatch_pool(), h, data);
}

SS_API int ss_pool_unix_datagram_server_new(ss_server **out, const char *path, const ss_handler *h,
                                            void *data)
{
    return unix_new(out, "unixgram", path, ss_dispatch_pool(), h, data);
}
