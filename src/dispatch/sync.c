/* The synchronous dispatcher: the request runs to completion in the
 * serving thread before the next one is accepted (Python's TCPServer). */
#include "dispatch/dispatch.h"

/* The handler runs on the loop's thread: its waits must end on a stop
 * request, or an idle client would keep the loop from ever seeing it. */
static void sync_process(ss_server *srv, ss_request *req)
{
    (void)srv;
    req->waiter = &ss__waiter_sync;
    req->open_waiter = &ss__waiter_sync_open; /* a header already sent is read */
    req->server->host->run(req);
    req->server->host->end(req);
}

static const ss_dispatcher sync_dispatcher = {
    .name = "sync",
    .start = ss__dispatch_start_none,
    .has_room = ss__dispatch_room_always,
    .process = sync_process,
    .reap = ss__dispatch_reap_none,
    .max_wait_ms = ss__dispatch_max_wait_none,
    .interrupt_own = ss__dispatch_interrupt_own_none,
    .close_idle = ss__dispatch_close_idle_none,
    .claim_client = ss__dispatch_claim_client_none,
    .close = ss__dispatch_close_none,
    .accept_start = ss__dispatch_accept_start_none,
    .accept_stop = ss__dispatch_accept_stop_none,
    .accepting = ss__dispatch_accepting_none,
};

SS_API const ss_dispatcher *ss_dispatch_sync(void)
{
    return &sync_dispatcher;
}
