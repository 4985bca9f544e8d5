/* The load itself: one epoll loop over every connection, each keeping
 * `depth` requests in flight (or one per connection in connect-per-request
 * mode), every reply byte checked against the uppercase of what was sent.
 *
 * Request j on connection slot i is the `size` bytes at a per-(i, j) offset
 * of a fixed random pattern (letters of both cases, digits, punctuation,
 * bytes >= 0x80, NUL, newlines), so the expected reply of any byte of the
 * stream is known without keeping copies of what was sent.
 *
 * On a tls:// target every connection does a TLS handshake (lg_tls.c)
 * after connecting, then the same requests go through SSL_write and
 * SSL_read; in connect-per-request mode each request pays a handshake. */
#include "lg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PAT_PERIOD    251 /* prime: neighbouring requests differ */
#define RBUF_SIZE     (256 * 1024)
#define RETRY_NS      (10 * 1000000LL) /* after a failed connection */
#define BUSY_RETRY_NS (1 * 1000000LL)  /* a Unix listener's full backlog */
#define DGRAM_LOST_NS (1000 * 1000000LL)

enum { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_OPEN };

typedef struct conn {
    int fd;
    int state;
    uint64_t sent;      /* requests written in full */
    uint64_t done;      /* requests answered in full */
    size_t out_off;     /* bytes of request `sent` already written */
    size_t in_off;      /* bytes of the reply to request `done` received */
    uint64_t first;     /* value of `sent` when this connection opened */
    uint64_t gen;       /* bumps on every state change: stale timers skip */
    uint32_t epoch;     /* bumps when the fd closes: stale events skip */
    int64_t opened;     /* when the connect started (per-request latency) */
    bool thinking;      /* waiting think_ms before the next request */
    bool want_out;      /* EPOLLOUT registered */
    bool answered;      /* a reply byte arrived inside the window */
    uint16_t hlen;      /* length of the PROXY header it opens with (0: none) */
    uint16_t hsent;     /* bytes of that header written */
    struct ssl_st *ssl; /* TLS session on a tls:// target, else NULL */
} conn;

typedef struct timer {
    int64_t at;
    uint32_t idx;
    uint64_t gen;
} timer;

typedef struct engine {
    const lg_config *cfg;
    lg_result *res;
    int ep, depth;
    conn *conns;
    int64_t *sent_at; /* [slot * depth + request % depth] */
    unsigned char *pat, *upat;
    unsigned char *rbuf;
    unsigned char *hdr; /* [slot * LG_PROXY_MAX]: PROXY headers, NULL without */
    lg_tls *tls;        /* the TLS client context on a tls:// target */
    timer *heap;
    size_t nheap, heap_cap;
    int64_t t_start, t_end;
    bool in_window;
} engine;

int64_t lg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- timers: a binary min-heap on `at` ---- */

static void heap_swap(timer *h, size_t a, size_t b)
{
    timer t = h[a];
    h[a] = h[b];
    h[b] = t;
}

static void timer_push(engine *e, uint32_t idx, int64_t at)
{
    if (e->nheap == e->heap_cap) {
        size_t cap = e->heap_cap ? e->heap_cap * 2 : 256;
        timer *h = realloc(e->heap, cap * sizeof *h);
        if (h == NULL)
            abort();
        e->heap = h;
        e->heap_cap = cap;
    }
    size_t i = e->nheap++;
    e->heap[i] = (timer){at, idx, e->conns[idx].gen};
    for (; i > 0 && e->heap[(i - 1) / 2].at > e->heap[i].at; i = (i - 1) / 2)
        heap_swap(e->heap, i, (i - 1) / 2);
}

static timer timer_pop(engine *e)
{
    timer top = e->heap[0];
    e->heap[0] = e->heap[--e->nheap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < e->nheap && e->heap[l].at < e->heap[m].at)
            m = l;
        if (r < e->nheap && e->heap[r].at < e->heap[m].at)
            m = r;
        if (m == i)
            break;
        heap_swap(e->heap, i, m);
        i = m;
    }
    return top;
}

/* ---- the pattern ---- */

static const unsigned char *request_bytes(const engine *e, uint32_t idx, uint64_t j, bool upper)
{
    size_t off = (size_t)(((uint64_t)idx * 7 + j) % PAT_PERIOD);
    return (upper ? e->upat : e->pat) + off;
}

static int make_pattern(engine *e)
{
    size_t n = PAT_PERIOD + e->cfg->size;
    e->pat = malloc(n);
    e->upat = malloc(n);
    if (e->pat == NULL || e->upat == NULL)
        return -ENOMEM;
    uint32_t x = 2463534242u; /* xorshift32: same bytes every run */
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        unsigned char b = (unsigned char)(x % 5 ? 'a' + x % 26 : x >> 8);
        e->pat[i] = b;
        e->upat[i] = (b >= 'a' && b <= 'z') ? (unsigned char)(b - 'a' + 'A') : b;
    }
    return 0;
}

/* ---- connections ---- */

static bool is_dgram(const engine *e)
{
    return e->cfg->target.socktype == SOCK_DGRAM;
}

/* The slot and the generation: an event queued for a connection that was
 * closed and replaced within the same epoll_wait batch is recognised. */
static uint64_t event_tag(const conn *c, uint32_t idx)
{
    return ((uint64_t)c->epoch << 32) | idx;
}

static void set_events(engine *e, uint32_t idx, bool want_out)
{
    conn *c = &e->conns[idx];
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0),
                             .data.u64 = event_tag(c, idx)};
    epoll_ctl(e->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

/* Ends the connection's TLS session: with close_notify after a completed
 * request, without after a failure. */
static void tls_end(conn *c, bool clean)
{
    if (c->ssl != NULL)
        lg_tls_close(c->ssl, clean && c->state == C_OPEN);
    c->ssl = NULL;
}

static void conn_close(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    tls_end(c, true);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->epoch++;
    c->state = C_IDLE;
    c->done = c->sent; /* what was in flight is abandoned */
    c->out_off = c->in_off = 0;
    c->thinking = c->want_out = false;
    c->hlen = c->hsent = 0;
    c->gen++;
}

/* Gives up on the connection and opens a new one a little later. */
static void conn_fail(engine *e, uint32_t idx, uint64_t *counter)
{
    (*counter)++;
    tls_end(&e->conns[idx], false);
    conn_close(e, idx);
    timer_push(e, idx, lg_now_ns() + RETRY_NS);
}

static void write_more(engine *e, uint32_t idx);

/* The PROXY header this connection opens with: its real endpoints are
 * known once it is connected. */
static bool make_header(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    unsigned char *hdr = e->hdr + (size_t)idx * LG_PROXY_MAX;
    int n = lg_proxy_header(e->cfg->proxy_version, c->fd, hdr);
    if (n < 0) {
        conn_fail(e, idx, &e->res->connect_errors);
        return false;
    }
    c->hlen = (uint16_t)n;
    c->hsent = 0;
    return true;
}

static void on_readable_tls(engine *e, uint32_t idx);

static void open_for_requests(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    c->state = C_OPEN;
    e->res->connects++;
    set_events(e, idx, false);
    write_more(e, idx);
}

/* One step of the TLS handshake, on every readiness event until done. */
static void handshake_step(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    bool resumed = false;
    int rc = lg_tls_handshake(c->ssl, &resumed);
    if (rc == LG_TLS_WANT_READ || rc == LG_TLS_WANT_WRITE) {
        set_events(e, idx, rc == LG_TLS_WANT_WRITE);
        return;
    }
    if (rc != 1) {
        conn_fail(e, idx, &e->res->connect_errors);
        return;
    }
    e->res->resumed += resumed;
    open_for_requests(e, idx);
    if (c->state == C_OPEN && lg_tls_pending(c->ssl))
        on_readable_tls(e, idx); /* read ahead with the handshake: no event */
}

static void on_connected(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    if (e->hdr != NULL && !make_header(e, idx))
        return;
    if (e->tls == NULL) {
        open_for_requests(e, idx);
        return;
    }
    c->ssl = lg_tls_open(e->tls, c->fd, idx);
    if (c->ssl == NULL) {
        conn_fail(e, idx, &e->res->connect_errors);
        return;
    }
    c->state = C_HANDSHAKE;
    handshake_step(e, idx);
}

static void conn_open(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    const lg_target *t = &e->cfg->target;
    c->opened = lg_now_ns();
    c->fd = lg_target_socket(t, idx);
    if (c->fd < 0) {
        conn_fail(e, idx, &e->res->connect_errors);
        return;
    }
    c->state = C_CONNECTING;
    c->want_out = true;
    c->first = c->sent;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = event_tag(c, idx)};
    epoll_ctl(e->ep, EPOLL_CTL_ADD, c->fd, &ev);
    if (connect(c->fd, (const struct sockaddr *)&t->addr, t->len) == 0) {
        on_connected(e, idx);
    } else if (errno == EAGAIN && t->family == AF_UNIX) {
        conn_close(e, idx); /* the listener's backlog is full: try again */
        timer_push(e, idx, lg_now_ns() + BUSY_RETRY_NS);
    } else if (errno != EINPROGRESS) {
        conn_fail(e, idx, &e->res->connect_errors);
    }
}

static void on_connect_done(engine *e, uint32_t idx)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(e->conns[idx].fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
        conn_fail(e, idx, &e->res->connect_errors);
    else
        on_connected(e, idx);
}

/* ---- requests ---- */

static bool may_start(const engine *e, const conn *c)
{
    if (c->state != C_OPEN || c->thinking)
        return false;
    if (e->cfg->per_request && c->sent - c->first + (c->out_off > 0) >= 1)
        return false;
    return c->out_off > 0 || c->sent - c->done < (uint64_t)e->depth;
}

/* The rest of the PROXY header and request bytes in one sendmsg, so they
 * reach the server in one segment, as the spec's "at once" asks of the
 * header. Returns the request bytes written (0 if the header took all),
 * or -1 with errno. */
static ssize_t send_after_header(conn *c, const unsigned char *hdr, const unsigned char *msg,
                                 size_t len)
{
    struct iovec iov[2] = {
        {.iov_base = (void *)(hdr + c->hsent), .iov_len = (size_t)(c->hlen - c->hsent)},
        {.iov_base = (void *)msg, .iov_len = len}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
    if (n < 0)
        return n;
    size_t of_header = (size_t)n < iov[0].iov_len ? (size_t)n : iov[0].iov_len;
    c->hsent = (uint16_t)(c->hsent + of_header);
    return n - (ssize_t)of_header;
}

/* send(), or SSL_write on a TLS connection. Either way errno EAGAIN means
 * "again when writable": a TLS 1.3 write never waits for the peer's bytes
 * (no renegotiation), and TLS 1.2 servers here never renegotiate. */
static ssize_t conn_send(conn *c, const unsigned char *p, size_t n)
{
    if (c->ssl == NULL)
        return send(c->fd, p, n, MSG_NOSIGNAL);
    ssize_t r = lg_tls_send(c->ssl, p, n);
    if (r >= 0)
        return r;
    errno = r == LG_TLS_FAILED ? ECONNRESET : EAGAIN;
    return -1;
}

/* Writes as many requests as the pipeline depth allows. */
static void pump(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    size_t size = e->cfg->size;
    while (may_start(e, c)) {
        if (c->out_off == 0)
            e->sent_at[(size_t)idx * e->depth + c->sent % e->depth] =
                e->cfg->per_request ? c->opened : lg_now_ns();
        const unsigned char *msg = request_bytes(e, idx, c->sent, false);
        ssize_t n = conn_send(c, msg + c->out_off, size - c->out_off);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(e, idx, true);
            return;
        }
        if (n < 0) {
            conn_fail(e, idx, &e->res->errors);
            return;
        }
        c->out_off += (size_t)n;
        if (c->out_off == size || is_dgram(e)) {
            c->out_off = 0;
            c->sent++;
            if (is_dgram(e))
                timer_push(e, idx, lg_now_ns() + DGRAM_LOST_NS);
        }
    }
    set_events(e, idx, false);
}

/* The first request goes out with the PROXY header; then pump goes on.
 * Apart from pump, so pump's loop is the same machine code with or
 * without a header. */
static void pump_with_header(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    size_t size = e->cfg->size;
    if (c->out_off == 0) /* the start of the first request: its latency clock */
        e->sent_at[(size_t)idx * e->depth + c->sent % e->depth] =
            e->cfg->per_request ? c->opened : lg_now_ns();
    const unsigned char *msg = request_bytes(e, idx, c->sent, false);
    ssize_t n = send_after_header(c, e->hdr + (size_t)idx * LG_PROXY_MAX, msg + c->out_off,
                                  size - c->out_off);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            set_events(e, idx, true);
        else
            conn_fail(e, idx, &e->res->errors);
        return;
    }
    c->out_off += (size_t)n;
    if (c->out_off == size) {
        c->out_off = 0;
        c->sent++;
    }
    if (c->hsent < c->hlen)
        set_events(e, idx, true); /* the socket took part of it: more when writable */
    else
        pump(e, idx);
}

static void write_more(engine *e, uint32_t idx)
{
    const conn *c = &e->conns[idx];
    if (c->hsent < c->hlen)
        pump_with_header(e, idx);
    else
        pump(e, idx);
}

static void think_or_pump(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    if (e->cfg->think_ms > 0) {
        c->thinking = true;
        timer_push(e, idx, lg_now_ns() + (int64_t)e->cfg->think_ms * 1000000LL);
    } else {
        pump(e, idx);
    }
}

static void complete(engine *e, uint32_t idx, int64_t now)
{
    conn *c = &e->conns[idx];
    int64_t began = e->sent_at[(size_t)idx * e->depth + c->done % e->depth];
    if (e->in_window && now < e->t_end) {
        e->res->requests++;
        lg_samples_add(&e->res->lat, (uint64_t)(now - began));
    }
    c->done++;
    c->in_off = 0;
    c->gen++; /* cancels a datagram's loss timer */
    if (e->cfg->per_request) {
        conn_close(e, idx);
        if (e->cfg->think_ms > 0)
            timer_push(e, idx, now + (int64_t)e->cfg->think_ms * 1000000LL);
        else
            conn_open(e, idx);
        return;
    }
    think_or_pump(e, idx);
}

/* Whether a chunk of the reply stream is what the requests sent so far
 * should get next: it changes nothing, so that a chunk is judged whole
 * before completions act on it. */
static bool stream_matches(const engine *e, const conn *c, const unsigned char *p, size_t n)
{
    size_t size = e->cfg->size;
    uint64_t done = c->done;
    size_t in_off = c->in_off;
    while (n > 0) {
        if (done >= c->sent + (c->out_off > 0))
            return false; /* more bytes than were asked for */
        size_t k = size - in_off < n ? size - in_off : n;
        if (memcmp(p, request_bytes(e, (uint32_t)(c - e->conns), done, true) + in_off, k) != 0)
            return false;
        in_off += k;
        p += k;
        n -= k;
        if (in_off == size) {
            done++;
            in_off = 0;
        }
    }
    return true;
}

/* Checks a chunk of the reply stream, then counts the replies it
 * completes; false after a mismatch. A completion may end the connection
 * (a send that failed while pumping the next requests, counted there
 * once; or a request per connection): the rest of the chunk was checked
 * already, as a prefix of the replies due, and is dropped uncounted. */
static bool verify_stream(engine *e, uint32_t idx, const unsigned char *p, size_t n, int64_t now)
{
    conn *c = &e->conns[idx];
    if (!stream_matches(e, c, p, n))
        return false;
    size_t size = e->cfg->size;
    uint32_t epoch = c->epoch;
    while (n > 0 && c->epoch == epoch) {
        size_t k = size - c->in_off < n ? size - c->in_off : n;
        c->in_off += k;
        n -= k;
        if (c->in_off == size)
            complete(e, idx, now);
    }
    return true;
}

/* A datagram is the whole reply. One that answers an earlier request
 * (already counted lost) is dropped; anything else is a mismatch. */
static void verify_dgram(engine *e, uint32_t idx, const unsigned char *p, size_t n, int64_t now)
{
    conn *c = &e->conns[idx];
    size_t size = e->cfg->size;
    if (c->done < c->sent && n == size && memcmp(p, request_bytes(e, idx, c->done, true), n) == 0) {
        complete(e, idx, now);
        return;
    }
    for (uint64_t j = c->done; j > 0 && j + 8 > c->done; j--)
        if (n == size && memcmp(p, request_bytes(e, idx, j - 1, true), n) == 0)
            return;
    e->res->mismatches++;
}

/* n reply bytes are in rbuf. */
static void take_reply(engine *e, uint32_t idx, size_t n)
{
    conn *c = &e->conns[idx];
    int64_t now = lg_now_ns();
    if (e->in_window && now < e->t_end)
        c->answered = true;
    if (is_dgram(e))
        verify_dgram(e, idx, e->rbuf, n, now);
    else if (!verify_stream(e, idx, e->rbuf, n, now))
        conn_fail(e, idx, &e->res->mismatches);
}

static void on_readable(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    for (int round = 0; round < 4 && c->state == C_OPEN; round++) {
        ssize_t n = recv(c->fd, e->rbuf, RBUF_SIZE, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0 && !(n == 0 && is_dgram(e))) {
            conn_fail(e, idx, &e->res->errors); /* reset, or closed early */
            return;
        }
        take_reply(e, idx, (size_t)n);
        if ((size_t)n < RBUF_SIZE && !is_dgram(e))
            return;
    }
}

/* SSL_read gives one record at a time; records OpenSSL read ahead from the
 * socket get no epoll event, so reading goes on while it holds any. Stops
 * when this connection is replaced (per request: the next one's epoch). */
static void on_readable_tls(engine *e, uint32_t idx)
{
    conn *c = &e->conns[idx];
    uint32_t epoch = c->epoch;
    while (c->state == C_OPEN && c->epoch == epoch) {
        ssize_t n = lg_tls_recv(c->ssl, e->rbuf, RBUF_SIZE);
        if (n == LG_TLS_WANT_READ)
            return;
        if (n == LG_TLS_WANT_WRITE) {
            set_events(e, idx, true);
            return;
        }
        if (n <= 0) {
            conn_fail(e, idx, &e->res->errors); /* reset, alert, or closed early */
            return;
        }
        take_reply(e, idx, (size_t)n);
        if (c->epoch != epoch || c->state != C_OPEN || !lg_tls_pending(c->ssl))
            return;
    }
}

static void on_event(engine *e, const struct epoll_event *ev)
{
    uint32_t idx = (uint32_t)ev->data.u64;
    conn *c = &e->conns[idx];
    if ((uint32_t)(ev->data.u64 >> 32) != c->epoch || c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (ev->events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            on_connect_done(e, idx);
        return;
    }
    if (c->state == C_HANDSHAKE) {
        handshake_step(e, idx);
        return;
    }
    if ((ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->ssl != NULL)
        on_readable_tls(e, idx);
    else if (ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        on_readable(e, idx);
    if (c->state == C_OPEN && (ev->events & EPOLLOUT))
        write_more(e, idx);
}

static void on_timer(engine *e, timer t)
{
    conn *c = &e->conns[t.idx];
    if (t.gen != c->gen)
        return;
    if (c->state == C_IDLE) {
        conn_open(e, t.idx);
    } else if (c->thinking) {
        c->thinking = false;
        pump(e, t.idx);
    } else if (is_dgram(e) && c->done < c->sent) {
        e->res->lost++; /* no reply within a second: ask again */
        c->done = c->sent;
        c->gen++;
        pump(e, t.idx);
    }
}

/* ---- the loop ---- */

static double cpu_seconds_self(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void window_start(engine *e)
{
    e->in_window = true;
    if (e->cfg->server_pid > 0)
        e->res->server_start = lg_proc_sample(e->cfg->server_pid, false);
    e->res->client_cpu_s = -cpu_seconds_self();
    e->t_start = lg_now_ns(); /* after the sample: the window is all load */
    e->t_end = e->t_start + (int64_t)(e->cfg->duration_s * 1e9);
}

static void window_end(engine *e)
{
    e->res->client_cpu_s += cpu_seconds_self();
    if (e->cfg->server_pid > 0)
        e->res->server_end = lg_proc_sample(e->cfg->server_pid, true);
    e->res->window_s = (double)(lg_now_ns() - e->t_start) / 1e9;
}

static int wait_ms(const engine *e, int64_t now)
{
    int64_t next = e->in_window ? e->t_end : e->t_start;
    if (e->nheap > 0 && e->heap[0].at < next)
        next = e->heap[0].at;
    int64_t ms = (next - now + 999999) / 1000000;
    return ms < 0 ? 0 : (ms > 100 ? 100 : (int)ms);
}

static void run_timers(engine *e, int64_t now)
{
    while (e->nheap > 0 && e->heap[0].at <= now)
        on_timer(e, timer_pop(e));
}

static void loop(engine *e)
{
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = lg_now_ns();
        if (!e->in_window && now >= e->t_start)
            window_start(e);
        else if (e->in_window && now >= e->t_end)
            break;
        run_timers(e, now);
        int n = epoll_wait(e->ep, evs, 256, wait_ms(e, lg_now_ns()));
        for (int i = 0; i < n; i++)
            on_event(e, &evs[i]);
    }
    window_end(e);
}

/* Counts the slots that got no reply byte in the window although they were
 * waiting for one at its end: connected (starved) or still connecting. */
static void count_starved(engine *e)
{
    for (int i = 0; i < e->cfg->connections; i++) {
        const conn *c = &e->conns[i];
        if (c->answered)
            continue;
        if (c->state == C_OPEN && (c->sent > c->done || c->out_off > 0))
            e->res->starved++;
        else if (c->state != C_OPEN)
            e->res->unconnected++;
    }
}

static int engine_init(engine *e, const lg_config *cfg, lg_result *res)
{
    *e = (engine){.cfg = cfg, .res = res, .depth = cfg->depth};
    size_t n = (size_t)cfg->connections;
    e->conns = calloc(n, sizeof *e->conns);
    for (size_t i = 0; e->conns != NULL && i < n; i++)
        e->conns[i].fd = -1; /* first: engine_free closes what is not -1 */
    e->sent_at = calloc(n * (size_t)e->depth, sizeof *e->sent_at);
    e->rbuf = malloc(RBUF_SIZE);
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    if (e->ep < 0)
        return -errno;
    if (cfg->proxy_version != 0 && (e->hdr = malloc(n * LG_PROXY_MAX)) == NULL)
        return -ENOMEM;
    if (e->conns == NULL || e->sent_at == NULL || e->rbuf == NULL || make_pattern(e) < 0)
        return -ENOMEM;
    return cfg->target.tls ? lg_tls_create(&e->tls, (unsigned)n, cfg->tls_resume) : 0;
}

static void engine_free(engine *e)
{
    for (int i = 0; e->conns != NULL && i < e->cfg->connections; i++) {
        tls_end(&e->conns[i], false);
        if (e->conns[i].fd >= 0)
            close(e->conns[i].fd);
    }
    lg_tls_free(e->tls);
    if (e->ep >= 0)
        close(e->ep);
    free(e->conns);
    free(e->sent_at);
    free(e->rbuf);
    free(e->hdr);
    free(e->pat);
    free(e->upat);
    free(e->heap);
}

int lg_run(const lg_config *cfg, lg_result *res)
{
    engine e;
    int rc = engine_init(&e, cfg, res);
    if (rc == 0) {
        int64_t t0 = lg_now_ns();
        e.t_start = t0 + (int64_t)(cfg->warmup_s * 1e9);
        e.t_end = e.t_start + (int64_t)(cfg->duration_s * 1e9);
        for (int i = 0; i < cfg->connections; i++)
            conn_open(&e, (uint32_t)i);
        loop(&e);
        count_starved(&e);
    }
    engine_free(&e);
    return rc;
}
