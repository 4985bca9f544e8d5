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
