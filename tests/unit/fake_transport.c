#include "fake_transport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <string.h>

#include <cmocka.h>

fake_peer fake;

static ssize_t fake_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size)
{
    (void)req;
    (void)spill;
    (void)spill_size;
    fake.recv_calls++;
    fake.largest_ask = size > fake.largest_ask ? size : fake.largest_ask;
    if (fake.next == fake.count)
        fail_msg("recv #%zu past the end of the script", fake.recv_calls);
    fake_event *e = &fake.events[fake.next];
    if (e->bytes == NULL) {
        fake.next++;
        return e->rc;
    }
    size_t n = e->len - fake.offset < size ? e->len - fake.offset : size;
    memcpy(buf, e->bytes + fake.offset, n);
    fake.offset += n;
    if (fake.offset == e->len) {
        fake.next++;
        fake.offset = 0;
    }
    return (ssize_t)n;
}

static int fake_send_all(ss_request *req, const void *buf, size_t size)
{
    (void)req;
    fake.send_calls++;
    if (fake.send_rc < 0)
        return fake.send_rc;
    assert_true(fake.sent_len + size <= sizeof fake.sent);
    memcpy(fake.sent + fake.sent_len, buf, size);
    fake.sent_len += size;
    return 0;
}

static int no_reply(ss_request *req)
{
    (void)req;
    return 0;
}

static void no_end(ss_request *req)
{
    (void)req;
}

static const ss__transport fake_transport = {
    .scheme = SS__SCHEME_TCP,
    .recv = fake_recv,
    .send_all = fake_send_all,
    .flush_reply = no_reply,
    .end_request = no_end,
};

void fake_script(const fake_event *events, size_t count)
{
    assert_true(fake.count + count <= FAKE_MAX_EVENTS);
    memcpy(fake.events + fake.count, events, count * sizeof *events);
    fake.count += count;
}

static int handle_none(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

/* The server's own transport, given back before the server is freed. */
static const ss__transport *real_transport;

ss_request *fake_request_new(size_t read_buffer, size_t write_buffer)
{
    static const ss_handler none = {.version = SS_HANDLER_VERSION, .handle = handle_none};
    memset(&fake, 0, sizeof fake);
    ss_server *srv = NULL;
    assert_int_equal(ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &none, NULL), 0);
    assert_int_equal(ss_server_set_read_buffer_size(srv, read_buffer), 0);
    assert_int_equal(ss_server_set_write_buffer_size(srv, write_buffer), 0);
    real_transport = srv->listeners[0]->transport;
    srv->listeners[0]->transport = &fake_transport;
    ss__arrival arrival = {.listener = srv->listeners[0],
                           .fd = -1,
                           .peer = {.ss_family = AF_INET},
                           .peer_len = sizeof arrival.peer};
    ss__place place = {0};
    ss_request *req = ss__request_new(srv, &arrival, &place);
    assert_non_null(req);
    return req;
}

void fake_request_free(ss_request *req)
{
    ss_server *srv = req->server;
    ss__request_end(req); /* the server's own reference keeps it */
    srv->listeners[0]->transport = real_transport;
    ss_server_free(srv);
}
