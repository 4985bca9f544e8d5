/* Per-connection (inetd) mode: a service manager accepted the connection
 * (inetd, tcpserver, systemd's Accept=yes) and starts one process for it;
 * the server serves that one socket with its handler and ends. It is an
 * accepted client like any other from admission on (limits,
 * verify_request, filters, counters): only where it comes from differs. */
#include "core/core.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

/* What kind of connection fd is: its transport's scheme, or why it is
 * none. */
static int connection_scheme(int fd, ss__scheme *scheme)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno; /* -EBADF, -ENOTSOCK */
    if (type != SOCK_STREAM)
        return -EPROTOTYPE;
    len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        return -EINVAL; /* a listener: that is the "fd:N" / "systemd:" URL's job */
    struct sockaddr_storage peer;
    len = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
        return -errno; /* -ENOTCONN */
    *scheme = peer.ss_family == AF_UNIX ? SS__SCHEME_UNIX : SS__SCHEME_TCP;
    if (peer.ss_family != AF_UNIX && peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    return 0;
}

SS_API int ss_server_new_connection(ss_server **out, int fd, const ss_handler *handler, void *data)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    if (fd < 0)
        return -EINVAL;
    ss__scheme scheme = SS__SCHEME_TCP;
    int rc = connection_scheme(fd, &scheme);
    if (rc < 0)
        return rc;
    ss_server *srv;
    rc = ss__server_alloc(&srv, ss_dispatch_sync(), handler, data);
    if (rc == 0 && (rc = ss__listener_add_connection(srv, scheme, fd)) < 0)
        ss__server_unref(srv);
    if (rc < 0)
        return rc;
    srv->serves_connection = true;
    srv->connection_fd = fd;
    srv->state = SS__BOUND; /* nothing to bind, nothing to listen on */
    *out = srv;
    return 0;
}

/* The connection as the transport's get_request would have taken it. */
static void arrival_of(ss_server *srv, ss__arrival *arrival)
{
    *arrival = (ss__arrival){
        .listener = srv->listeners[0], .fd = srv->connection_fd, .peer_len = sizeof arrival->peer};
    srv->connection_fd = -1;
    if (getpeername(arrival->fd, (struct sockaddr *)&arrival->peer, &arrival->peer_len) < 0)
        arrival->peer_len = 0;
}

SS_API int ss_server_serve_connection(ss_server *srv)
{
    if (srv == NULL)
        return -EINVAL;
    if (srv->connection_fd < 0 || srv->state != SS__BOUND)
        return SS_ESTATE;
    ss__arrival arrival;
    arrival_of(srv, &arrival);
    uint64_t handled = atomic_load(&srv->count->handled);
    ss_request *req = ss__admit(srv, &arrival); /* as if accepted */
    if (req == NULL)
        return -ECONNREFUSED;
    req->waiter = &ss__waiter_sync; /* a stop request ends its waits */
    req->linger_in_place = true;    /* no background thread: the process ends next */
    int rc = ss__request_run(req);
    bool refused_late = req->late_refusal != SS__LATE_NONE;
    ss__request_end(req);
    if (rc < 0)
        return rc;
    return refused_late || atomic_load(&srv->count->handled) == handled ? -ECONNREFUSED : 0;
}
