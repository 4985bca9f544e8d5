/* Buffered stream I/O on a request (Python's rfile/wfile): a reader with
 * read_line / read_exact / read_some and a writer with write / flush. Both
 * sit on the transport's recv/send_all slots, so the same calls read a TCP
 * stream or a datagram's packet, and write to a socket or into a datagram
 * reply. Buffers are allocated on first use: a handler that never calls
 * these functions costs nothing beyond two sizes copied per request. */
#include "core/core.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_READ_BUFFER ((size_t)8192)
#define MAX_BUFFER          ((size_t)1 << 30)

/* ---- options ---- */

SS_API int ss_server_set_read_buffer_size(ss_server *srv, size_t size)
{
    if (size == 0 || size > MAX_BUFFER)
        return -EINVAL;
    atomic_store(&srv->read_buffer_size, size);
    return 0;
}

SS_API int ss_server_set_write_buffer_size(ss_server *srv, size_t size)
{
    if (size > MAX_BUFFER)
        return -EINVAL;
    atomic_store(&srv->write_buffer_size, size);
    return 0;
}

SS_API void ss_server_set_tcp_nodelay(ss_server *srv, bool on)
{
    atomic_store(&srv->tcp_nodelay, on);
}

void ss__bufio_init(ss_request *req)
{
    size_t rsize = atomic_load(&req->server->read_buffer_size);
    req->in.cap = rsize != 0 ? rsize : DEFAULT_READ_BUFFER;
    req->out.cap = atomic_load(&req->server->write_buffer_size);
}

void ss__bufio_free(ss_request *req)
{
    free(req->in.buf);
    free(req->out.buf);
    req->in.buf = req->out.buf = NULL;
}

/* ---- the idle rule's exchange (include/socketserver/limits.h) ---- */

/* The first byte of a new message is awaited after a complete exchange:
 * bytes were read, then written, and the writer holds nothing; and no
 * filter holds bytes already received (a filter's pending slot: what the
 * PROXY filter read past its header, say), which would come without a
 * wait. The callers say whether the read starts a message with the
 * reader empty. */
static bool idle_wait(const ss_request *req, bool new_message)
{
    return new_message && !req->dgram.active &&
           atomic_load_explicit(&req->phase, memory_order_relaxed) == SS__PHASE_ANSWERED &&
           !ss__filters_pending(req);
}

static void set_phase(ss_request *req, unsigned char phase)
{
    atomic_store_explicit(&req->phase, phase, memory_order_relaxed);
}

void ss__bufio_note_written(ss_request *req)
{
    if (atomic_load_explicit(&req->phase, memory_order_relaxed) == SS__PHASE_FRESH)
        return; /* a greeting before the client said anything: no exchange yet */
    set_phase(req, req->out.len > 0 ? SS__PHASE_UNSENT : SS__PHASE_ANSWERED);
}

/* Every socket read of the reader and of ss_request_recv. An idle wait
 * that a drain or a sync stop ends (or that begins after one) reads
 * nothing and returns 0: end of stream, as if the client had closed. */
static ssize_t read_socket(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size,
                           bool new_message)
{
    bool idle = idle_wait(req, new_message);
    int go = idle ? ss__idle_begin(req) : 1;
    if (go <= 0)
        return go;
    req->idle_read = idle && go == SS__IDLE_READ;
    ssize_t n = ss__filtered_recv(req, buf, size, spill, spill_size);
    req->idle_read = false;
    if (idle && go == SS__IDLE_READ && n == -ECANCELED && ss__idle_stopped(req))
        return 0;
    if (idle && !ss__idle_end(req))
        return 0; /* closed while waiting: what came meanwhile is lost (the known race) */
    if (n > 0)
        set_phase(req, SS__PHASE_READ);
    return n;
}

/* ---- reader internals ---- */

static size_t buffered(const struct ss__reader *r)
{
    return r->end - r->start;
}

/* Hands out up to `size` buffered bytes. */
static size_t take(struct ss__reader *r, void *buf, size_t size)
{
    size_t n = buffered(r) < size ? buffered(r) : size;
    if (n == 0)
        return 0; /* r->buf may still be NULL: memcpy must not see it */
    memcpy(buf, r->buf + r->start, n);
    r->start += n;
    if (r->start == r->end)
        r->start = r->end = 0;
    return n;
}

/* Makes room for at least `want` unread bytes: allocates on first use,
 * grows when a caller's line limit is larger than the buffer. */
static int reserve(struct ss__reader *r, size_t want)
{
    size_t cap = r->cap > want ? r->cap : want;
    if (r->buf == NULL || cap > r->cap) {
        char *grown = realloc(r->buf, cap);
        if (grown == NULL)
            return -ENOMEM;
        r->buf = grown;
        r->cap = cap;
    }
    return 0;
}

/* One transport read appended to the buffer, after moving unread bytes
 * to the front. Returns the count, 0 at end of stream, or an error.
 * new_message: the reader was empty when the caller's read began. */
static ssize_t fill(ss_request *req, bool new_message)
{
    struct ss__reader *r = &req->in;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, buffered(r));
        r->end -= r->start;
        r->start = 0;
    }
    ssize_t n = read_socket(req, r->buf + r->end, r->cap - r->end, NULL, 0, new_message);
    if (n > 0)
        r->end += (size_t)n;
    return n;
}

/* Discards the rest of an over-long line, through its '\n'. Returns 0 when
 * done (or at end of stream), or the error that interrupted it; the skip
 * then resumes on the next call. */
static int skip_line_rest(ss_request *req)
{
    struct ss__reader *r = &req->in;
    while (r->skip_line) {
        char *nl = memchr(r->buf + r->start, '\n', buffered(r));
        if (nl != NULL) {
            r->start = (size_t)(nl - r->buf) + 1;
            r->skip_line = false;
            break;
        }
        r->start = r->end = 0;
        ssize_t n = fill(req, false); /* the rest of a line: never idle */
        if (n <= 0) {
            r->skip_line = n < 0;
            return (int)n;
        }
    }
    return 0;
}

/* What every read does first: report a broken stream, finish a skip. */
static int settle(ss_request *req)
{
    if (req->in.err != 0)
        return req->in.err;
    return req->in.skip_line ? skip_line_rest(req) : 0;
}

/* settle, for the calls that return a count of up to `size` bytes. */
static int begin_read(ss_request *req, size_t size)
{
    return size > SSIZE_MAX ? -EINVAL : settle(req);
}

/* ---- reader API ---- */

/* The part of read_exact that needs the socket: large remainders go
 * straight into the caller's memory, small ones through the buffer. */
static ssize_t read_more(ss_request *req, char *dst, size_t want, bool new_message)
{
    struct ss__reader *r = &req->in;
    if (want >= r->cap)
        return read_socket(req, dst, want, NULL, 0, new_message);
    int rc = reserve(r, r->cap);
    if (rc < 0)
        return rc;
    ssize_t n = fill(req, new_message);
    return n > 0 ? (ssize_t)take(r, dst, want) : n;
}

/* On a fiber (the pool), a socket read that fills the caller's buffer
 * cannot tell whether more is waiting, so the next read would be a recv()
 * failing with EAGAIN before the fiber parks: one wasted system call per
 * request whenever requests are as large as the caller's buffer (4 KiB
 * messages read with a 4 KiB buffer). So a waiter that reads ahead (a
 * fiber's) reads into the caller's buffer and on into the empty stream
 * buffer, in one recvmsg(): a read that stops short of both emptied the
 * socket, and the fiber then parks without trying (the waiter's
 * known_empty); bytes that went on into the stream buffer are the next
 * read's. No copy in the usual case. A thread gains nothing from this:
 * its next recv() just blocks. */
static bool spill_wanted(const ss_request *req)
{
    return !req->dgram.active && req->waiter->read_ahead;
}

/* The reader is settled and holds no bytes. The spill goes to the
 * worker's scratch buffer (one per worker, used only between a recvmsg
 * and the copy below, with no switch in between), so that a connection
 * waiting for its next message holds no buffer of its own: the few bytes
 * that do spill are copied into the reader's buffer, allocated then. */
static ssize_t recv_with_spill(ss_request *req, void *buf, size_t size)
{
    struct ss__reader *r = &req->in;
    size_t spill_size = 0;
    char *spill = ss__fiber_scratch(r->cap, &spill_size);
    if (spill == NULL) { /* out of memory for it: the reader's own, as a thread's */
        int rc = reserve(r, r->cap);
        if (rc < 0)
            return rc;
        spill = r->buf;
        spill_size = r->cap;
    }
    ssize_t n = read_socket(req, buf, size, spill, spill_size, true);
    if (n <= (ssize_t)size)
        return n;
    size_t extra = (size_t)n - size;
    if (spill != r->buf) {
        if (reserve(r, r->cap) < 0) {
            r->err = -ENOMEM; /* the spilled bytes are lost: the next read says so */
            return (ssize_t)size;
        }
        memcpy(r->buf, spill, extra);
    }
    r->start = 0;
    r->end = extra;
    return (ssize_t)size;
}

ssize_t ss__bufio_recv(ss_request *req, void *buf, size_t size)
{
    struct ss__reader *r = &req->in;
    if (r->err != 0 || r->skip_line || buffered(r) > 0) {
        int rc = settle(req);
        if (rc < 0)
            return rc;
        if (buffered(r) > 0 || size == 0)
            return (ssize_t)take(r, buf, size);
    }
    if (spill_wanted(req) && size > 0)
        return recv_with_spill(req, buf, size);
    return read_socket(req, buf, size, NULL, 0, true);
}

/* Copies a line of n bytes out of the buffer and NUL-terminates it. */
static ssize_t hand_out_line(struct ss__reader *r, char *buf, size_t n)
{
    take(r, buf, n);
    buf[n] = '\0';
    return (ssize_t)n;
}

SS_API ssize_t ss_request_read_line(ss_request *req, char *buf, size_t size)
{
    if (size < 2)
        return -EINVAL;
    struct ss__reader *r = &req->in;
    size_t limit = size - 1;
    int rc = begin_read(req, limit);
    if (rc == 0)
        rc = reserve(r, limit);
    if (rc < 0)
        return rc;
    bool new_message = buffered(r) == 0; /* no partial line yet */
    for (size_t scanned = 0;;) {
        size_t avail = buffered(r) < limit ? buffered(r) : limit;
        char *nl = memchr(r->buf + r->start + scanned, '\n', avail - scanned);
        if (nl != NULL)
            return hand_out_line(r, buf, (size_t)(nl - (r->buf + r->start)) + 1);
        if (avail == limit) {
            hand_out_line(r, buf, limit);
            r->skip_line = true;
            return SS_ELINETOOLONG;
        }
        scanned = avail;
        ssize_t n = fill(req, new_message);
        new_message = false;
        if (n < 0)
            return n; /* the partial line stays buffered for the next call */
        if (n == 0)
            return hand_out_line(r, buf, buffered(r)); /* last line, or 0 */
    }
}

SS_API ssize_t ss_request_read_exact(ss_request *req, void *buf, size_t size)
{
    int rc = begin_read(req, size);
    if (rc < 0)
        return rc;
    char *dst = buf;
    size_t got = take(&req->in, dst, size);
    while (got < size) {
        ssize_t n = read_more(req, dst + got, size - got, got == 0);
        if (n <= 0 && got == 0)
            return n; /* nothing consumed: clean EOF, or a retryable error */
        if (n == 0)
            n = SS_EINCOMPLETE;
        if (n < 0) {
            req->in.err = (int)n; /* bytes were consumed and are lost */
            return n;
        }
        got += (size_t)n;
    }
    return (ssize_t)size;
}

SS_API ssize_t ss_request_read_some(ss_request *req, void *buf, size_t size)
{
    int rc = begin_read(req, size);
    if (rc < 0)
        return rc;
    struct ss__reader *r = &req->in;
    if (buffered(r) > 0 || size == 0)
        return (ssize_t)take(r, buf, size);
    return read_more(req, buf, size, true);
}

/* ---- writer ---- */

int ss__bufio_flush(ss_request *req)
{
    struct ss__writer *w = &req->out;
    if (w->err != 0 || w->len == 0)
        return w->err;
    int rc = ss__filtered_send_all(req, w->buf, w->len);
    w->len = 0;
    if (rc < 0)
        w->err = rc; /* how much of it left is unknown: the stream is broken */
    return rc;
}

int ss__bufio_final_flush(ss_request *req)
{
    return req->out.len == 0 ? 0 : ss__bufio_flush(req);
}

SS_API int ss_request_flush(ss_request *req)
{
    bool had = req->out.len > 0;
    int rc = ss__bufio_flush(req);
    if (rc == 0 && had)
        ss__bufio_note_written(req);
    return rc;
}

/* Appends to the buffer, allocating it on first use. */
static int append(struct ss__writer *w, const void *buf, size_t size)
{
    if (w->buf == NULL && (w->buf = malloc(w->cap)) == NULL)
        return -ENOMEM;
    memcpy(w->buf + w->len, buf, size);
    w->len += size;
    return 0;
}

SS_API ssize_t ss_request_write(ss_request *req, const void *buf, size_t size)
{
    struct ss__writer *w = &req->out;
    if (size > SSIZE_MAX)
        return -EINVAL;
    if (w->err != 0 || size == 0)
        return w->err;
    int rc = 0;
    if (w->cap > 0 && size <= w->cap - w->len) {
        rc = append(w, buf, size); /* fits: no system call */
    } else {                       /* unbuffered (cap 0) always comes here, with nothing pending */
        rc = ss__bufio_flush(req);
        if (rc == 0)
            rc = size < w->cap ? append(w, buf, size) : ss__filtered_send_all(req, buf, size);
    }
    if (rc < 0)
        return rc;
    ss__bufio_note_written(req);
    return (ssize_t)size;
}
