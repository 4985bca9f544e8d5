/* libFuzzer target: the request reader (read_line, read_exact, read_some,
 * recv) fed untrusted bytes in arbitrary pieces. A fake transport hands the
 * input out in chunks the fuzzer chooses; every byte a read returns must be
 * input, in order, and every line must respect the caller's limit. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The input as the peer's byte stream, cut into pieces. */
static struct {
    const uint8_t *control; /* chunk sizes and operations, cycled */
    size_t control_len;
    const uint8_t *data;
    size_t len, sent, step;
} peer;

/* Never spills: the stream reader passes a spill buffer only on a fiber. */
static ssize_t fake_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size)
{
    (void)req;
    (void)spill;
    (void)spill_size;
    size_t chunk = 1 + peer.control[peer.step++ % peer.control_len] % 64;
    size_t left = peer.len - peer.sent;
    size_t n = chunk < size ? chunk : size;
    n = n < left ? n : left;
    memcpy(buf, peer.data + peer.sent, n);
    peer.sent += n;
    return (ssize_t)n;
}

static int fake_send_all(ss_request *req, const void *buf, size_t size)
{
    (void)req;
    (void)buf;
    (void)size;
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

static const ss__transport fake = {
    .scheme = SS__SCHEME_TCP,
    .recv = fake_recv,
    .send_all = fake_send_all,
    .flush_reply = no_reply,
    .end_request = no_end,
};

/* Where the next byte handed out must come from, at the earliest. */
static size_t cursor;

/* Each piece the reader returns is a run of the input at or after the
 * cursor (after a too-long line the reader may skip ahead). */
static void check_piece(const char *piece, size_t n)
{
    if (n == 0)
        return;
    const uint8_t *hay = peer.data + cursor;
    size_t hay_len = peer.len - cursor;
    for (size_t i = 0; i + n <= hay_len; i++)
        if (memcmp(hay + i, piece, n) == 0) {
            cursor += i + n;
            return;
        }
    abort(); /* bytes the peer never sent, or sent earlier */
}

static void check_line(const char *buf, ssize_t n, size_t size)
{
    if (n > 0) {
        if ((size_t)n > size - 1 || buf[n] != '\0')
            abort();
        if (memchr(buf, '\n', (size_t)n - 1) != NULL) /* '\n' only at the end */
            abort();
        check_piece(buf, (size_t)n);
    } else if (n == SS_ELINETOOLONG && memchr(buf, '\n', size - 1) != NULL) {
        abort();
    }
}

/* One read of the kind the control byte picks. Returns its result. */
static ssize_t one_read(ss_request *req, uint8_t op, size_t line_size)
{
    static char buf[512];
    size_t k = 1 + op % 97;
    ssize_t n;
    switch (op >> 6) {
    case 0:
        n = ss_request_read_line(req, buf, line_size);
        check_line(buf, n, line_size);
        return n == SS_ELINETOOLONG ? 1 : n;
    case 1:
        n = ss_request_read_exact(req, buf, k);
        if (n > 0 && (size_t)n != k)
            abort();
        break;
    case 2:
        n = ss_request_read_some(req, buf, k);
        break;
    default:
        n = ss_request_recv(req, buf, k);
        break;
    }
    if (n > 0)
        check_piece(buf, (size_t)n);
    return n;
}

static int handle_none(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

static ss_server *server(void)
{
    static ss_server *srv;
    static const ss_handler none = {.version = SS_HANDLER_VERSION, .handle = handle_none};
    if (srv == NULL) {
        if (ss_server_create(&srv, "tcp://127.0.0.1:0", NULL, &none, NULL) != 0)
            abort();
        ss_server_set_read_buffer_size(srv, 16); /* small: many refills */
        srv->listeners[0]->transport = &fake;
    }
    return srv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    size_t line_size = 2 + data[0] % 300; /* up to the 512-byte buffer */
    peer.control = data + 1;
    peer.control_len = 4;
    peer.data = data + 5;
    peer.len = size - 5;
    peer.sent = peer.step = 0;
    cursor = 0;
    ss__arrival arrival = {.listener = server()->listeners[0],
                           .fd = -1,
                           .peer = {.ss_family = AF_INET},
                           .peer_len = sizeof arrival.peer};
    ss__place place = {0};
    ss_request *req = ss__request_new(server(), &arrival, &place);
    if (req == NULL)
        return 0;
    for (size_t i = 0; i < 4 * size + 16; i++) /* each read consumes or ends */
        if (one_read(req, data[1 + i % 4] ^ (uint8_t)i, line_size) <= 0)
            break;
    ss__request_end(req);
    return 0;
}
