/* A server's listeners: the sockets it serves on, each with its own
 * transport, all feeding the one dispatcher. Made from URLs before bind;
 * bound, listened on and closed together, in the order they were added;
 * freed with the server's memory (a request still points at its
 * listener after close). */
#include "core/core.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for one more listener, and the poll set that goes with it (the
 * wake pipe plus every listener). */
static int grow(ss_server *srv)
{
    size_t n = (size_t)srv->nlisteners + 1;
    ss__listener **list = realloc(srv->listeners, n * sizeof *list);
    if (list == NULL)
        return -ENOMEM;
    srv->listeners = list;
    struct pollfd *set = realloc(srv->pollset, (n + 1) * sizeof *set);
    if (set == NULL)
        return -ENOMEM;
    srv->pollset = set;
    return 0;
}

static ss__listener *new_listener(ss_server *srv, const ss__transport *transport)
{
    ss__listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->server = srv;
    l->transport = transport;
    l->fd = -1;
    l->index = srv->nlisteners;
    return l;
}

/* Takes l into the server, or frees it (closing what it opened). */
static int keep(ss_server *srv, ss__listener *l, int rc)
{
    if (rc == 0)
        rc = grow(srv);
    if (rc < 0) {
        ss__close(&l->fd);
        free(l);
        return rc;
    }
    srv->listeners[srv->nlisteners++] = l;
    return 0;
}

/* A tls:// URL in a library built without OpenSSL: refused, saying how
 * to get it (the server's log is not set yet: the default one). */
static int tls_missing(const ss__url *url)
{
    if (url->scheme != SS__SCHEME_TLS || ss_tls_available())
        return 0;
    ss__log(NULL, NULL, NULL, SS_LOG_ERROR,
            "tls://%s:%s: this libsocketserver was built without TLS (build it with OpenSSL's "
            "development files and CMake -DSS_TLS=ON)",
            url->host, url->port);
    return SS_ENOTSUPPORTED;
}

static int add_bound_here(ss_server *srv, const ss__url *url)
{
    const ss__transport *transport = ss__transport_for(url->scheme);
    if (transport == NULL)
        return SS_ENOTSUPPORTED;
    int rc = tls_missing(url);
    if (rc < 0)
        return rc;
    ss__listener *l = new_listener(srv, transport);
    if (l == NULL)
        return -ENOMEM;
    l->url = *url;
    return keep(srv, l, transport->open(l));
}

/* ---- adopted listeners ---- */

/* What fd is, read into *l; the server holds no listener on it yet (two
 * listeners on one descriptor would close it twice). */
static int inspect(const ss_server *srv, int fd, ss__listener *l)
{
    for (int i = 0; i < srv->nlisteners; i++)
        if (srv->listeners[i]->fd == fd)
            return -EEXIST;
    return ss__adopt_inspect(fd, l);
}

/* fd becomes the server's listener, named `name`. On failure the
 * descriptor is left as it was, open and the caller's. */
static int adopt(ss_server *srv, int fd, const char *name)
{
    ss__listener *l = new_listener(srv, NULL);
    if (l == NULL)
        return -ENOMEM;
    int rc = inspect(srv, fd, l);
    if (rc == 0)
        rc = grow(srv);
    if (rc == 0)
        rc = ss__adopt_take(fd, l);
    if (rc < 0) {
        free(l);
        return rc;
    }
    snprintf(l->name, sizeof l->name, "%s", name);
    /* "tls", the name a hand-over gives a tls:// listener (core/handover.c):
     * its connections speak TLS (filter/tls.c) in the successor too. */
    if (strcmp(name, ss__scheme_name(SS__SCHEME_TLS)) == 0 && l->url.scheme == SS__SCHEME_TCP)
        l->url.scheme = SS__SCHEME_TLS;
    srv->listeners[srv->nlisteners++] = l;
    return 0;
}

static int adopt_number(ss_server *srv, const char *digits)
{
    return adopt(srv, (int)strtol(digits, NULL, 10), ""); /* the parser checked the range */
}

/* The activation reader's errors (transport/activation.c), as codes
 * whose ss_strerror says which rule of the protocol failed. */
static int activation_error(int rc)
{
    switch (rc) {
    case -ESRCH:
        return SS_ELISTENPID;
    case -EINVAL:
        return SS_ELISTENENV;
    case -EBADF:
        return SS_ELISTENFDS;
    default:
        return rc;
    }
}

static bool wanted(const ss__activated *a, const char *name)
{
    return name[0] == '\0' || strcmp(a->name, name) == 0;
}

/* Every socket passed by socket activation, or those named `name`: all
 * checked first, so that one that is not a serving socket (or a name
 * that matches none) adopts nothing. */
static int adopt_activated(ss_server *srv, const char *name)
{
    const ss__activated *passed = NULL;
    int n = ss__activation_fds(&passed, NULL);
    if (n <= 0)
        return n == 0 ? SS_ENOACTIVATION : activation_error(n);
    int matched = 0;
    for (int i = 0; i < n; i++) {
        ss__listener probe = {0};
        int rc = wanted(&passed[i], name) ? inspect(srv, passed[i].fd, &probe) : 1;
        if (rc < 0)
            return rc;
        matched += rc == 0;
    }
    if (matched == 0)
        return SS_ENOFDNAME;
    for (int i = 0; i < n; i++) {
        int rc = wanted(&passed[i], name) ? adopt(srv, passed[i].fd, passed[i].name) : 0;
        if (rc < 0)
            return rc; /* -ENOMEM: those before it are the server's */
    }
    return 0;
}

int ss__listener_add_connection(ss_server *srv, ss__scheme scheme, int fd)
{
    const ss__transport *transport = ss__transport_for(scheme);
    if (transport == NULL)
        return SS_ENOTSUPPORTED;
    ss__listener *l = new_listener(srv, transport);
    if (l == NULL)
        return -ENOMEM;
    l->url.scheme = scheme;
    l->bound = l->adopted = true; /* nothing of it is ours to change */
    atomic_store(&l->shared, true);
    l->addr_len = sizeof l->addr;
    if (getsockname(fd, (struct sockaddr *)&l->addr, &l->addr_len) < 0)
        l->addr_len = 0;
    return keep(srv, l, 0);
}

int ss__listener_add_parsed(ss_server *srv, const ss__url *url)
{
    switch (url->scheme) {
    case SS__SCHEME_FD:
        return adopt_number(srv, url->path);
    case SS__SCHEME_SYSTEMD:
        return adopt_activated(srv, url->path);
    default:
        return add_bound_here(srv, url);
    }
}

/* With several listeners the error alone does not say which one failed:
 * the log does ("cannot listen on unix:/run/a.sock: File exists"). */
static int name_failure(ss_server *srv, const ss__listener *l, int rc)
{
    char url[300];
    if (srv->nlisteners > 1 && ss__format_url(l->url.scheme, (const struct sockaddr *)&l->addr,
                                              l->addr_len, url, sizeof url) > 0)
        ss__log(srv->log, srv, srv->data, SS_LOG_ERROR, "cannot listen on %s: %s", url,
                ss_strerror(rc));
    return rc;
}

int ss__listeners_bind(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__listener *l = srv->listeners[i];
        if (l->bound)
            continue; /* a retry after a later one failed */
        int rc = l->transport->bind(l);
        if (rc < 0)
            return name_failure(srv, l, rc);
        l->bound = true;
    }
    return 0;
}

int ss__listeners_activate(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__listener *l = srv->listeners[i];
        int rc = l->adopted ? 0 : l->transport->activate(l);
        if (rc < 0)
            return name_failure(srv, l, rc);
    }
    return 0;
}

void ss__listeners_close(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++)
        srv->listeners[i]->transport->close(srv->listeners[i]);
}

void ss__listeners_free(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__close(&srv->listeners[i]->fd);
        free(srv->listeners[i]);
    }
    free(srv->listeners);
    free(srv->pollset);
    srv->listeners = NULL;
    srv->pollset = NULL;
    srv->nlisteners = 0;
}

/* ---- public API ---- */

SS_API int ss_server_add_listener(ss_server *srv, const char *url)
{
    if (srv == NULL || url == NULL)
        return -EINVAL;
    if (srv->state != SS__CREATED)
        return SS_ESTATE;
    ss__url parsed;
    int first = srv->nlisteners;
    int rc = ss__url_parse(url, &parsed);
    if (rc == 0)
        rc = ss__listener_add_parsed(srv, &parsed);
    return rc < 0 ? rc : first;
}

SS_API int ss_server_listener_count(const ss_server *srv)
{
    return srv != NULL ? srv->nlisteners : -EINVAL;
}

static const ss__listener *listener_at(const ss_server *srv, int index)
{
    return srv != NULL && index >= 0 && index < srv->nlisteners ? srv->listeners[index] : NULL;
}

SS_API int ss_server_listener_fileno(const ss_server *srv, int index)
{
    const ss__listener *l = listener_at(srv, index);
    return l != NULL ? ss__read_published(&l->fd) : -EINVAL;
}

SS_API int ss_server_listener_address(const ss_server *srv, int index, char *buf, size_t size)
{
    const ss__listener *l = listener_at(srv, index);
    if (l == NULL || (buf == NULL && size > 0))
        return -EINVAL;
    return ss__format_url(l->url.scheme, (const struct sockaddr *)&l->addr, l->addr_len, buf, size);
}

SS_API int ss_server_listener_port(const ss_server *srv, int index)
{
    const ss__listener *l = listener_at(srv, index);
    if (l == NULL)
        return -EINVAL;
    return ss__sockaddr_port((const struct sockaddr *)&l->addr, l->addr_len);
}

SS_API int ss_request_listener(const ss_request *req)
{
    return req != NULL ? req->listener->index : -EINVAL;
}

SS_API const char *ss_server_listener_name(const ss_server *srv, int index)
{
    const ss__listener *l = listener_at(srv, index);
    return l != NULL ? l->name : NULL;
}
