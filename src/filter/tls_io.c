/* One TLS connection over the layer below (see tls_private.h for why
 * OpenSSL's BIO works on buffers and the waits happen out here): a BIO of
 * our own over st->in and st->out, one OpenSSL call at a time under
 * st->io, and the loops that feed it from below (fill) and send what it
 * wrote (flush) until the call is done. */
#include "filter/tls_private.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A whole record of any version (RFC 5246 6.2.3: 2^14 + 2048 and a
 * 5-byte header), and a few more in one read when they are there. */
#define IN_CAP (32 * 1024)
/* A write encrypts this much at a time: a few records per send, and no
 * copy of a huge write in memory. */
#define WRITE_CHUNK (64 * 1024)

/* ---- the BIO: OpenSSL's side of st->in and st->out ---- */

static int bio_write(BIO *bio, const char *data, size_t len, size_t *written)
{
    struct ss__tls_state *st = BIO_get_data(bio);
    ss__tls_bytes *out = &st->out;
    BIO_clear_retry_flags(bio);
    if (out->end + len > out->cap) {
        size_t cap = out->cap != 0 ? out->cap : 4096;
        while (cap < out->end + len)
            cap *= 2;
        unsigned char *p = realloc(out->data, cap);
        if (p == NULL) {
            st->no_memory = true;
            return 0;
        }
        out->data = p;
        out->cap = cap;
    }
    memcpy(out->data + out->end, data, len);
    out->end += len;
    *written = len;
    return 1;
}

/* Nothing buffered: "try again" until the layer below has ended. */
static int bio_read(BIO *bio, char *data, size_t len, size_t *got)
{
    struct ss__tls_state *st = BIO_get_data(bio);
    ss__tls_bytes *in = &st->in;
    BIO_clear_retry_flags(bio);
    size_t n = in->end - in->start < len ? in->end - in->start : len;
    if (n == 0) {
        if (!st->eof)
            BIO_set_retry_read(bio);
        return 0;
    }
    memcpy(data, in->data + in->start, n);
    in->start += n;
    *got = n;
    return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct ss__tls_state *st = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* sent by the filter once the call returns */
    case BIO_CTRL_EOF:
        return st->eof && st->in.start == st->in.end;
    case BIO_CTRL_PENDING:
        return (long)(st->in.end - st->in.start);
    case BIO_CTRL_WPENDING:
        return (long)(st->out.end - st->out.start);
    default:
        return 0;
    }
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

/* One table for the process, never freed (still reachable at exit). */
static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "socketserver");
    if (m == NULL)
        return;
    if (BIO_meth_set_write_ex(m, bio_write) != 1 || BIO_meth_set_read_ex(m, bio_read) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

int ss__tls_io_init(struct ss__tls_state *st, ss_filter_ctx *ctx, SSL *ssl)
{
    pthread_once(&bio_method_once, make_bio_method);
    BIO *bio = bio_method != NULL ? BIO_new(bio_method) : NULL;
    st->in.data = malloc(IN_CAP);
    if (bio == NULL || st->in.data == NULL) {
        BIO_free(bio);
        free(st->in.data);
        SSL_free(ssl);
        return -ENOMEM;
    }
    st->in.cap = IN_CAP;
    st->ctx = ctx;
    st->ssl = ssl;
    BIO_set_data(bio, st);
    SSL_set_bio(ssl, bio, bio); /* one reference, taken by ssl */
    SSL_set_accept_state(ssl);
    pthread_mutex_init(&st->io, NULL);
    pthread_mutex_init(&st->wire, NULL);
    return 0;
}

void ss__tls_io_free(struct ss__tls_state *st)
{
    SSL_free(st->ssl); /* and the BIO */
    free(st->in.data);
    free(st->out.data);
    free(st->wire_buf.data);
    pthread_mutex_destroy(&st->io);
    pthread_mutex_destroy(&st->wire);
}

/* ---- one OpenSSL call ---- */

typedef enum call_kind { CALL_HANDSHAKE, CALL_READ, CALL_WRITE, CALL_SHUTDOWN } call_kind;

typedef struct call {
    call_kind kind;
    void *buf;
    size_t size, done;
    int verdict;  /* SSL_get_error's, SSL_ERROR_NONE when it succeeded */
    bool partial; /* waiting for more of a record it has begun */
    bool output;  /* it left records to send */
} call;

static int run_call(SSL *ssl, call *c)
{
    switch (c->kind) {
    case CALL_HANDSHAKE:
        return SSL_do_handshake(ssl);
    case CALL_READ:
        return SSL_read_ex(ssl, c->buf, c->size, &c->done);
    case CALL_WRITE:
        return SSL_write_ex(ssl, c->buf, c->size, &c->done);
    case CALL_SHUTDOWN:
        return SSL_shutdown(ssl) >= 0; /* 0: ours sent, the peer's not awaited */
    }
    return 0;
}

/* Under io, never waiting: the error queue read here is this call's own. */
static void step(struct ss__tls_state *st, call *c)
{
    pthread_mutex_lock(&st->io);
    /* SSL_get_error needs an empty queue; clearing one already empty
     * cost ~1,100 instructions a call, a sixth of the filter's cost per
     * request (bench/README.md, the TLS cells). */
    if (ERR_peek_error() != 0)
        ERR_clear_error();
    int rc = run_call(st->ssl, c);
    c->verdict = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(st->ssl, rc);
    if (c->verdict == SSL_ERROR_WANT_READ)
        c->partial = SSL_has_pending(st->ssl) || st->in.start != st->in.end;
    else if (c->verdict != SSL_ERROR_NONE && c->verdict != SSL_ERROR_ZERO_RETURN)
        ss__tls_reason(st->reason, sizeof st->reason,
                       st->no_memory ? "out of memory" : "the peer broke the protocol");
    c->output = st->out.end > st->out.start;
    pthread_mutex_unlock(&st->io);
}

/* Input held: decrypted bytes not yet read, or bytes of a record taken
 * from below and not yet decrypted (the client has sent them: the
 * request is busy, not idle). */
bool ss__tls_io_pending(struct ss__tls_state *st)
{
    pthread_mutex_lock(&st->io);
    bool held = SSL_has_pending(st->ssl) || st->in.start != st->in.end;
    pthread_mutex_unlock(&st->io);
    return held;
}

void ss__tls_io_reason(struct ss__tls_state *st, char *buf, size_t size)
{
    pthread_mutex_lock(&st->io);
    snprintf(buf, size, "%s", st->reason[0] != '\0' ? st->reason : "no reason given");
    pthread_mutex_unlock(&st->io);
}

/* ---- the layer below ---- */

/* What is left of deadline, or the request's timeout if shorter. */
static int bounded_timeout(const ss_request *req, int64_t deadline)
{
    int64_t left = deadline - ss__now_ms();
    int t = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
    return req->timeout_ms >= 0 && req->timeout_ms < t ? req->timeout_ms : t;
}

/* One call to the layer below: send all len bytes of buf, or receive up
 * to len. With a deadline (the handshake, close_notify: the request has
 * no other thread then) the request's timeout is bounded by it for the
 * call, as the PROXY filter bounds its header; without one (-1) the
 * request's own timeout alone applies, and nothing is written, since a
 * reader and a writer may be here at once. */
static ssize_t below(struct ss__tls_state *st, bool sending, void *buf, size_t len,
                     int64_t deadline)
{
    if (deadline < 0)
        return sending ? ss_filter_send_next(st->ctx, buf, len)
                       : ss_filter_recv_next(st->ctx, buf, len);
    ss_request *req = ss_filter_request(st->ctx);
    int saved = req->timeout_ms;
    req->timeout_ms = bounded_timeout(req, deadline);
    ssize_t rc = req->timeout_ms == 0 ? -ETIMEDOUT : below(st, sending, buf, len, -1);
    req->timeout_ms = saved;
    return rc;
}

/* Sends what OpenSSL wrote, by whoever holds the wire: records leave in
 * the order OpenSSL made them, since each holder takes all there is. */
static int flush_held(struct ss__tls_state *st, int64_t deadline)
{
    pthread_mutex_lock(&st->io);
    ss__tls_bytes taken = st->out;
    st->out = st->wire_buf; /* empty: sent by the last holder */
    pthread_mutex_unlock(&st->io);
    int rc = (int)below(st, true, taken.data + taken.start, taken.end - taken.start, deadline);
    taken.start = taken.end = 0;
    st->wire_buf = taken;
    if (rc < 0)
        atomic_store(&st->broken, true);
    return rc;
}

static int flush(struct ss__tls_state *st, int64_t deadline)
{
    pthread_mutex_lock(&st->wire);
    int rc = flush_held(st, deadline);
    pthread_mutex_unlock(&st->wire);
    return rc;
}

/* Reads from below into st->in. Only one reader at a time (the request's
 * reader, or the handshake): it alone adds bytes, past in.end, so it may
 * do so unlocked. Returns the count, 0 at the end, or a negative errno.
 * st->in is empty whenever this runs, so each read starts at 0 with the
 * whole buffer: OpenSSL's record layer (no read-ahead) asks for a record's
 * header, then exactly the rest of its body, and takes every byte the BIO
 * has into its own buffer before it says SSL_ERROR_WANT_READ; a header
 * announcing more than a record may hold (RFC 8446 5.1, RFC 5246 6.2.3)
 * fails with record_overflow before its body is read. A full buffer
 * (-ENOBUFS) would mean OpenSSL asked for more while leaving 32 KiB
 * unread, which OpenSSL 3.0 never does (4 MiB of pipelined 16 KiB records,
 * TLS 1.2 and 1.3, and the tests' pipelined_records: never a byte left).
 * expect_wait: the peer's bytes cannot be there yet (its next handshake
 * flight answers the one just sent), so the read waits for them before
 * trying the socket (one recv that fails with EAGAIN less), unless the
 * layer below (the PROXY filter, while this one opens) holds bytes
 * already. Not for the ClientHello: it usually is there by the time the
 * connection's turn comes, and a wait that is not needed costs a pool
 * worker another turn of its event loop. */
static ssize_t fill(struct ss__tls_state *st, int64_t deadline, bool expect_wait)
{
    ss__tls_bytes *in = &st->in;
    pthread_mutex_lock(&st->io);
    if (in->start == in->end)
        in->start = in->end = 0;
    size_t end = in->end;
    pthread_mutex_unlock(&st->io);
    if (end == in->cap)
        return -ENOBUFS; /* a record cannot be this long: OpenSSL said so already */
    ss_request *req = ss_filter_request(st->ctx);
    req->recv_wait_first = expect_wait && !ss__filters_pending(req);
    ssize_t n = below(st, false, in->data + end, in->cap - end, deadline);
    req->recv_wait_first = false; /* unused if a filter below answered */
    pthread_mutex_lock(&st->io);
    if (n > 0)
        in->end += (size_t)n;
    st->eof = n == 0;
    pthread_mutex_unlock(&st->io);
    return n;
}

/* Whether the records c left may wait in st->out for the next send (the
 * handler's reply: one send for both) or the next wait for the peer,
 * which flushes first. So they may after a read that returned bytes, and
 * after a handshake whose client has already sent its first request
 * (TLS 1.3's session tickets then leave with the reply). Not after a
 * handshake with nothing more from the client: a client gone at once is
 * then a failed handshake, and one that waits for the server's first
 * words (a ticket, say) gets them. Alerts and close_notify never wait. */
static bool may_hold(struct ss__tls_state *st, const call *c)
{
    if (c->verdict != SSL_ERROR_NONE || c->kind == CALL_SHUTDOWN)
        return false;
    if (c->kind != CALL_HANDSHAKE)
        return true;
    pthread_mutex_lock(&st->io);
    bool held = SSL_has_pending(st->ssl) || st->in.start != st->in.end;
    pthread_mutex_unlock(&st->io);
    return held;
}

/* Makes c until it is done, feeding OpenSSL from below and sending what
 * it writes before each wait (and at the end, unless may_hold). Returns 0
 * when done, 1 at a clean end of the stream (a close_notify, or the end
 * between records), SS_ETLS, or the layer below's negative errno. */
static int drive(struct ss__tls_state *st, call *c, int64_t deadline)
{
    for (;;) {
        step(st, c);
        bool send = c->output && !may_hold(st, c); /* alerts too: the peer learns why */
        int rc = send ? flush(st, deadline) : 0;
        if (c->verdict == SSL_ERROR_NONE || c->verdict == SSL_ERROR_ZERO_RETURN)
            return rc < 0 ? rc : c->verdict == SSL_ERROR_NONE ? 0 : 1;
        if (c->verdict != SSL_ERROR_WANT_READ || rc < 0) {
            atomic_store(&st->broken, true);
            return rc < 0 ? rc : SS_ETLS;
        }
        /* a handshake flight just sent: the peer's answer cannot be there yet */
        ssize_t n = fill(st, deadline, send && c->kind == CALL_HANDSHAKE);
        if (n == 0 && (c->partial || c->kind == CALL_HANDSHAKE)) {
            pthread_mutex_lock(&st->io);
            snprintf(st->reason, sizeof st->reason, "the peer closed %s",
                     c->kind == CALL_HANDSHAKE ? "during the handshake"
                                               : "in the middle of a record");
            pthread_mutex_unlock(&st->io);
            atomic_store(&st->broken, true);
            return SS_ETLS;
        }
        if (n <= 0)
            return n == 0 ? 1 : (int)n;
    }
}

/* ---- the filter's operations ---- */

int ss__tls_io_handshake(struct ss__tls_state *st, int64_t deadline)
{
    call c = {.kind = CALL_HANDSHAKE};
    int rc = drive(st, &c, deadline);
    if (rc == 0)
        st->established = true;
    return rc == 1 ? SS_ETLS : rc;
}

ssize_t ss__tls_io_read(struct ss__tls_state *st, void *buf, size_t size)
{
    call c = {.kind = CALL_READ, .buf = buf, .size = size};
    int rc = drive(st, &c, -1);
    if (rc < 0)
        return rc;
    return rc == 1 ? 0 : (ssize_t)c.done;
}

int ss__tls_io_write(struct ss__tls_state *st, const void *buf, size_t size)
{
    const unsigned char *p = buf;
    int rc = 0;
    pthread_mutex_lock(&st->wire); /* one writer's records at a time, in order */
    while (size > 0 && rc == 0) {
        call c = {
            .kind = CALL_WRITE, .buf = (void *)p, .size = size < WRITE_CHUNK ? size : WRITE_CHUNK};
        step(st, &c);
        rc = c.output ? flush_held(st, -1) : 0;
        if (rc == 0 && c.verdict != SSL_ERROR_NONE) {
            atomic_store(&st->broken, true);
            rc = SS_ETLS; /* renegotiation is off: a write never needs to read */
        }
        p += c.done;
        size -= c.done;
    }
    pthread_mutex_unlock(&st->wire);
    return rc;
}

void ss__tls_io_shutdown(struct ss__tls_state *st, int64_t deadline)
{
    if (!st->established || atomic_load(&st->broken))
        return;
    call c = {.kind = CALL_SHUTDOWN};
    step(st, &c);
    if (c.output)
        flush(st, deadline);
}
