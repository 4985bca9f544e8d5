/* The filter chain: a request's filters as layers over its transport. A
 * filter's recv/send reach the layer below through ss_filter_recv_next /
 * ss_filter_send_next, and the lowest layer is the transport's own slot,
 * which carries the request's timeout and waiter: so a filter waits the
 * way its request's handler would, without knowing the dispatcher. */
#include "filter/filter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

SS_API int ss_server_add_filter(ss_server *srv, const ss_filter *filter, void *config)
{
    return ss__filters_add_at(srv, srv->filters.count, filter, config);
}

bool ss__has_stream_listener(const ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++)
        if (!srv->listeners[i]->transport->datagram)
            return true;
    return false;
}

int ss__filters_add_at(ss_server *srv, int index, const ss_filter *filter, void *config)
{
    if (filter == NULL || filter->version < 1 || filter->version > SS_FILTER_VERSION)
        return -EINVAL;
    if (srv->state >= SS__ACTIVE)
        return SS_ESTATE;
    if (!ss__has_stream_listener(srv))
        return SS_ENOTSTREAM; /* datagram requests are single packets */
    struct ss__filters *chain = &srv->filters;
    if (chain->count == SS__MAX_FILTERS)
        return -E2BIG;
    memmove(&chain->links[index + 1], &chain->links[index],
            (size_t)(chain->count - index) * sizeof chain->links[0]);
    chain->links[index].filter = filter;
    chain->links[index].config = config;
    chain->count++;
    return 0;
}

void ss__count_late_refusal(ss_server *srv, ss__late_refusal why)
{
    ss__counters *c = srv->count;
    switch (why) {
    case SS__LATE_NONE:
        return;
    case SS__LATE_PER_CLIENT:
    case SS__LATE_VERIFY:
        atomic_fetch_add(&c->rejected, 1);
        atomic_fetch_add(why == SS__LATE_VERIFY ? &c->rejected_verify : &c->rejected_per_client, 1);
        return;
    case SS__LATE_PROXY_INVALID:
    case SS__LATE_PROXY_UNTRUSTED:
    case SS__LATE_PROXY_TIMEOUT:
        atomic_fetch_add(why == SS__LATE_PROXY_INVALID     ? &c->proxy_invalid
                         : why == SS__LATE_PROXY_UNTRUSTED ? &c->proxy_untrusted
                                                           : &c->proxy_timeouts,
                         1);
        break;
    case SS__LATE_TLS:
        atomic_fetch_add(&c->tls_handshake_failures, 1);
        break;
    case SS__LATE_FILTER:
        break;
    }
    atomic_fetch_add(&c->filter_refused, 1);
}

void ss__filters_free_configs(ss_server *srv)
{
    for (int i = 0; i < srv->filters.count; i++) {
        const struct ss__filter_link *link = &srv->filters.links[i];
        if (link->filter->free_config != NULL)
            link->filter->free_config(link->config);
    }
    srv->filters.count = 0;
}

static const ss_filter *filter_at(const ss_request *req, int index)
{
    return req->server->filters.links[index].filter;
}

/* The layer at index (-1: the socket). */
static ssize_t recv_at(ss_request *req, int index, void *buf, size_t size)
{
    if (index < 0)
        return req->listener->transport->recv(req, buf, size, NULL, 0);
    const ss_filter *f = filter_at(req, index);
    if (f->recv == NULL)
        return recv_at(req, index - 1, buf, size);
    return f->recv(&req->filter_ctx[index], buf, size);
}

static int send_at(ss_request *req, int index, const void *buf, size_t size)
{
    if (index < 0)
        return req->listener->transport->send_all(req, buf, size);
    const ss_filter *f = filter_at(req, index);
    if (f->send == NULL)
        return send_at(req, index - 1, buf, size);
    return f->send(&req->filter_ctx[index], buf, size);
}

/* From the top of what is open: while the chain opens, a filter's open
 * reads through the layers below it only. */
ssize_t ss__chain_recv(ss_request *req, void *buf, size_t size)
{
    return recv_at(req, req->filters_open - 1, buf, size);
}

int ss__chain_send_all(ss_request *req, const void *buf, size_t size)
{
    return send_at(req, req->filters_open - 1, buf, size);
}

/* A version 1 table ends before `pending`: never read past it. */
static bool holds_input(const ss_filter *f, const ss_filter_ctx *ctx)
{
    return f->version >= 2 && f->pending != NULL && f->pending(ctx);
}

bool ss__chain_pending(const ss_request *req)
{
    for (int i = 0; i < req->filters_open; i++)
        if (holds_input(filter_at(req, i), &req->filter_ctx[i]))
            return true;
    return false;
}

SS_API ssize_t ss_filter_recv_next(ss_filter_ctx *ctx, void *buf, size_t size)
{
    return recv_at(ctx->req, ctx->index - 1, buf, size);
}

SS_API int ss_filter_send_next(ss_filter_ctx *ctx, const void *buf, size_t size)
{
    return send_at(ctx->req, ctx->index - 1, buf, size);
}

SS_API void ss_filter_set_state(ss_filter_ctx *ctx, void *state)
{
    ctx->state = state;
}

SS_API void *ss_filter_state(const ss_filter_ctx *ctx)
{
    return ctx->state;
}

SS_API ss_request *ss_filter_request(const ss_filter_ctx *ctx)
{
    return ctx->req;
}

int ss__filters_open(ss_request *req)
{
    int count = req->server->filters.count;
    if (!ss__filtered(req->listener))
        return 0;
    req->filter_ctx = calloc((size_t)count, sizeof *req->filter_ctx);
    if (req->filter_ctx == NULL)
        return -ENOMEM;
    for (int i = 0; i < count; i++) {
        ss_filter_ctx *ctx = &req->filter_ctx[i];
        ctx->req = req;
        ctx->index = i;
        const struct ss__filter_link *link = &req->server->filters.links[i];
        int rc = link->filter->open != NULL ? link->filter->open(ctx, link->config) : 0;
        if (rc < 0) {
            ss__filters_close(req);
            return rc;
        }
        req->filters_open = i + 1;
    }
    return 0;
}

void ss__filters_close(ss_request *req)
{
    if (req->filter_ctx == NULL)
        return;
    while (req->filters_open > 0) {
        int i = --req->filters_open;
        const ss_filter *f = filter_at(req, i);
        if (f->close != NULL)
            f->close(&req->filter_ctx[i]);
    }
    free(req->filter_ctx);
    req->filter_ctx = NULL;
}
