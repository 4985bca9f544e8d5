/* A server's listeners: the sockets it serves on, each with its own
 * transport, all feeding the one dispatcher. Made from URLs before bind;
 * bound, listened on and closed together, in the order they were added;
 * freed with the server's memory (a request still points at its
 * listener after close). */
#include "core/core.h"

#include <errno.h>
#include <poll.h>
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

int ss__listener_add_parsed(ss_server *srv, const ss__url *url)
{
    const ss__transport *transport = ss__transport_for(url->scheme);
    if (transport == NULL)
        return SS_ENOTSUPPORTED;
    ss__listener *l = new_listener(srv, transport);
    if (l == NULL)
        return -ENOMEM;
    l->url = *url;
    return keep(srv, l, transport->open(l));
}

int ss__listeners_bind(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__listener *l = srv->listeners[i];
        if (l->bound)
            continue; /* a retry after a later one failed */
        int rc = l->transport->bind(l);
        if (rc < 0)
            return rc;
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
            return rc;
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
    if (srv->state != SS__CREATED)
        return SS_ESTATE;
    ss__url parsed;
    int rc = ss__url_parse(url, &parsed);
    if (rc == 0)
        rc = ss__listener_add_parsed(srv, &parsed);
    return rc < 0 ? rc : srv->nlisteners - 1;
}

SS_API int ss_server_listener_count(const ss_server *srv)
{
    return srv->nlisteners;
}

static const ss__listener *listener_at(const ss_server *srv, int index)
{
    return index >= 0 && index < srv->nlisteners ? srv->listeners[index] : NULL;
}

SS_API int ss_server_listener_fileno(const ss_server *srv, int index)
{
    const ss__listener *l = listener_at(srv, index);
    return l != NULL ? l->fd : -EINVAL;
}

SS_API int ss_server_listener_address(const ss_server *srv, int index, char *buf, size_t size)
{
    const ss__listener *l = listener_at(srv, index);
    if (l == NULL)
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
    return req->listener->index;
}
