/* The PROXY protocol filter (v1 and v2, the specification published with
 * HAProxy, doc/proxy-protocol.txt): the first built-in filter. Its open
 * reads the header through the layer below, under a deadline of its own,
 * checks the sender is trusted, and makes the header's source the
 * request's client; bytes read past the header wait in its buffer and are
 * the first its recv returns. The parsing is filter/proxy_header.c's. */
#include "filter/filter.h"
#include "filter/proxy_header.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_HEADER_TIMEOUT_MS 3000
#define MAX_TRUSTED               64
#define FIRST_READ                256 /* a whole v1 line, and most v2 headers */

/* A trusted network in IPv6 form: an IPv4 one as its IPv4-mapped block
 * (a.b.c.d/n is ::ffff:a.b.c.d/(96 + n)), so that one comparison serves
 * both families, and an IPv4 peer (or one of a dual-stack listener,
 * ::ffff:a.b.c.d) matches IPv4 and IPv4-mapped entries alike. */
typedef struct cidr {
    unsigned char bytes[16];
    int prefix; /* bits, 0 to 128 */
} cidr;

typedef struct proxy_config {
    unsigned versions;
    int header_timeout_ms;
    int trusted_count;
    cidr trusted[MAX_TRUSTED];
} proxy_config;

/* One connection's header (req->proxy): what the handler may ask. */
struct ss__proxy_state {
    unsigned char *buf;          /* the header, then bytes read past it */
    size_t header_len, len, pos; /* unread client bytes: buf[pos, len) */
    ss__proxy_header header;
    struct sockaddr_storage proxy; /* the connection's own peer */
    socklen_t proxy_len;
};

/* ---- trusted sources ---- */

static const char bad_address[] = "not an IPv4 or IPv6 address (10.0.0.0/8, 192.0.2.7, ::1)";
static const char bad_prefix[] =
    "the prefix length is not a number from 0 to 32 (IPv4) or 128 (IPv6) without leading zeros";
static const char host_bits[] =
    "address bits are set past the prefix length: write the network's first address "
    "(10.0.0.0/8, not 10.0.0.1/8)";

/* The prefix length after the '/': plain decimal (no sign, no leading
 * zero, no space) up to max; -1 otherwise. */
static int parse_prefix(const char *text, int max)
{
    if (text[0] < '0' || text[0] > '9' || (text[0] == '0' && text[1] != '\0'))
        return -1;
    int value = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || (value = value * 10 + (*p - '0')) > max)
            return -1;
    }
    return value;
}

/* An address, as 16 bytes (IPv4: mapped) and its family's bit count. */
static int parse_address(const char *text, size_t n, unsigned char out[16], int *bits)
{
    char addr[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof addr)
        return -EINVAL;
    memcpy(addr, text, n);
    addr[n] = '\0';
    if (strchr(addr, ':') != NULL) {
        *bits = 128;
        return inet_pton(AF_INET6, addr, out) == 1 ? 0 : -EINVAL;
    }
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(out, mapped, sizeof mapped);
    *bits = 32;
    return inet_pton(AF_INET, addr, out + 12) == 1 ? 0 : -EINVAL;
}

/* True if a bit past the first `bits` is set. */
static bool bits_past(const unsigned char bytes[16], int bits)
{
    for (int i = bits; i < 128; i++)
        if (bytes[i / 8] & (0x80 >> (i % 8)))
            return true;
    return false;
}

static int parse_cidr(const char *text, cidr *out, const char **why)
{
    const char *slash = strchr(text, '/');
    int bits;
    *why = bad_address;
    if (parse_address(text, slash != NULL ? (size_t)(slash - text) : strlen(text), out->bytes,
                      &bits) < 0)
        return -EINVAL;
    int prefix = slash != NULL ? parse_prefix(slash + 1, bits) : bits;
    *why = bad_prefix;
    if (prefix < 0)
        return -EINVAL;
    out->prefix = prefix + (128 - bits); /* IPv4: within ::ffff:0:0/96 */
    *why = host_bits;
    if (bits_past(out->bytes, out->prefix))
        return -EINVAL;
    *why = NULL;
    return 0;
}

SS_API int ss_proxy_check_trusted(const char *cidr_text, const char **why)
{
    cidr ignored;
    const char *reason = bad_address;
    int rc = cidr_text != NULL ? parse_cidr(cidr_text, &ignored, &reason) : -EINVAL;
    if (why != NULL)
        *why = rc < 0 ? reason : NULL;
    return rc;
}

static bool prefix_matches(const unsigned char *a, const unsigned char *b, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return false;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return rest == 0 || ((a[whole] ^ b[whole]) & mask) == 0;
}

/* The peer in the entries' IPv6 form: an IPv4 peer as ::ffff:a.b.c.d,
 * what a dual-stack listener sees it as anyway. */
static bool trusted_inet(const proxy_config *cfg, const struct sockaddr_storage *peer)
{
    unsigned char addr[16] = {[10] = 0xff, [11] = 0xff};
    if (peer->ss_family == AF_INET)
        memcpy(addr + 12, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    else if (peer->ss_family == AF_INET6)
        memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    else
        return false;
    for (int i = 0; i < cfg->trusted_count; i++)
        if (prefix_matches(cfg->trusted[i].bytes, addr, cfg->trusted[i].prefix))
            return true;
    return false;
}

/* A Unix stream listener's peers are whoever may connect to its socket:
 * the file's mode (ss_server_set_unix_mode) decides, not an address. */
static bool trusted(const proxy_config *cfg, const ss_request *req)
{
    if (req->peer.ss_family == AF_UNIX)
        return true;
    return trusted_inet(cfg, &req->peer);
}

/* ---- reading the header ---- */

/* The bytes a v2 header needs in all, once its fixed part is in; 0 while
 * unknown (or not v2). */
static size_t v2_total(const unsigned char *buf, size_t len)
{
    static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    if (len < SS__PROXY_V2_FIXED || memcmp(buf, sig, sizeof sig) != 0)
        return 0;
    return SS__PROXY_V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
}

/* Reads through the layer below with what is left of the deadline. */
static ssize_t read_before(ss_filter_ctx *ctx, void *buf, size_t size, int64_t deadline,
                           int request_timeout)
{
    int64_t left = deadline - ss__now_ms();
    if (left <= 0)
        return -ETIMEDOUT;
    ss_request *req = ctx->req;
    int t = left > INT_MAX ? INT_MAX : (int)left;
    req->timeout_ms = request_timeout >= 0 && request_timeout < t ? request_timeout : t;
    ssize_t n = ss_filter_recv_next(ctx, buf, size);
    req->timeout_ms = request_timeout;
    return n;
}

static int grow(struct ss__proxy_state *st, size_t *cap, size_t want)
{
    if (want <= *cap)
        return 0;
    unsigned char *p = realloc(st->buf, want);
    if (p == NULL)
        return -ENOMEM;
    st->buf = p;
    *cap = want;
    return 0;
}

/* Until the bytes hold a whole header: its length, or a negative errno
 * (SS_EPROXY for bytes that can never be one, or the end of the stream). */
static ssize_t read_header(ss_filter_ctx *ctx, struct ss__proxy_state *st, int timeout_ms)
{
    int64_t deadline = ss__now_ms() + timeout_ms;
    int request_timeout = ctx->req->timeout_ms;
    size_t cap = 0;
    for (;;) {
        size_t total = v2_total(st->buf, st->len);
        int rc = grow(st, &cap, total > FIRST_READ ? total : FIRST_READ);
        if (rc < 0)
            return rc;
        ssize_t n = read_before(ctx, st->buf + st->len, cap - st->len, deadline, request_timeout);
        if (n <= 0)
            return n == 0 ? SS_EPROXY : n; /* closed before a whole header */
        st->len += (size_t)n;
        ssize_t parsed = ss__proxy_parse(st->buf, st->len, &st->header);
        if (parsed != 0)
            return parsed;
        if (st->len == cap && v2_total(st->buf, st->len) <= cap)
            return SS_EPROXY; /* full, and no header can be longer */
    }
}

/* The spec lets a receiver accept a v2 LOCAL with addresses and ignore
 * them; we refuse it: a proxy's own connection (a health check) carries
 * none, so addresses there mean a sender we do not understand. */
static bool local_with_addresses(const struct ss__proxy_state *st)
{
    return st->header.version == 2 && st->header.local && (st->buf[12] & 0x0F) == 0 &&
           st->buf[13] != 0;
}

/* ---- the filter ---- */

static int refuse(ss_request *req, ss__late_refusal why, int err)
{
    req->late_refusal = why;
    return err;
}

static void take_client(ss_request *req, struct ss__proxy_state *st)
{
    st->proxy = req->peer;
    st->proxy_len = req->peer_len;
    if (!st->header.local) {
        req->peer = st->header.source;
        req->peer_len = st->header.source_len;
        /* named again on first use; nothing else runs on this request yet */
        atomic_store(&req->peer_name_state, SS__NAME_UNNAMED);
    }
    req->proxy = st;
}

/* Every refusal counts in one reason (docs/filters.md): a stream that
 * failed before a whole header (a reset, the stop cutting the wait off,
 * no memory for it) brought no valid header, as one that ended did. */
static int check_header(ss_request *req, const proxy_config *cfg, struct ss__proxy_state *st,
                        ssize_t n)
{
    if (n == -ETIMEDOUT) {
        atomic_store(&req->timed_out, false); /* the header's deadline, not the handler's */
        return refuse(req, SS__LATE_PROXY_TIMEOUT, -ETIMEDOUT);
    }
    if (n < 0)
        return refuse(req, SS__LATE_PROXY_INVALID, (int)n);
    if (!(cfg->versions & (1u << (st->header.version - 1))) || local_with_addresses(st))
        return refuse(req, SS__LATE_PROXY_INVALID, SS_EPROXY);
    return 0;
}

static void free_state(struct ss__proxy_state *st)
{
    free(st->buf);
    free(st);
}

static int proxy_open(ss_filter_ctx *ctx, void *config)
{
    const proxy_config *cfg = config;
    ss_request *req = ctx->req;
    if (!trusted(cfg, req))
        return refuse(req, SS__LATE_PROXY_UNTRUSTED, SS_EPROXYUNTRUSTED);
    struct ss__proxy_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return refuse(req, SS__LATE_PROXY_INVALID, -ENOMEM);
    ssize_t n = read_header(ctx, st, cfg->header_timeout_ms);
    int rc = check_header(req, cfg, st, n);
    if (rc < 0) {
        free_state(st);
        return rc;
    }
    st->header_len = st->pos = (size_t)n;
    take_client(req, st);
    ss_filter_set_state(ctx, st);
    return 0;
}

/* What was read past the header comes first. */
static ssize_t proxy_recv(ss_filter_ctx *ctx, void *buf, size_t size)
{
    struct ss__proxy_state *st = ctx->state;
    if (st->pos == st->len || size == 0)
        return ss_filter_recv_next(ctx, buf, size);
    size_t n = st->len - st->pos < size ? st->len - st->pos : size;
    memcpy(buf, st->buf + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

/* Bytes the client sent behind the header, not yet read: the request is
 * busy, whatever its socket says (the drain's idle rule asks). */
static bool proxy_pending(const ss_filter_ctx *ctx)
{
    const struct ss__proxy_state *st = ctx->state;
    return st->pos < st->len;
}

static void proxy_close(ss_filter_ctx *ctx)
{
    struct ss__proxy_state *st = ctx->state;
    ctx->req->proxy = NULL;
    free_state(st);
}

static const ss_filter proxy_filter = {
    .version = SS_FILTER_VERSION,
    .name = "proxy-protocol",
    .open = proxy_open,
    .recv = proxy_recv,
    .close = proxy_close,
    .free_config = free,
    .pending = proxy_pending,
};

/* ---- options and accessors ---- */

static int read_options(const ss_proxy_options *opts, proxy_config *cfg)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1", NULL};
    ss_proxy_options o = opts != NULL ? *opts : (ss_proxy_options){0};
    if ((o.versions & ~(unsigned)(SS_PROXY_V1 | SS_PROXY_V2)) != 0 || o.header_timeout_ms < 0)
        return -EINVAL;
    cfg->versions = o.versions != 0 ? o.versions : SS_PROXY_V1 | SS_PROXY_V2;
    cfg->header_timeout_ms =
        o.header_timeout_ms != 0 ? o.header_timeout_ms : DEFAULT_HEADER_TIMEOUT_MS;
    const char *const *list = o.trusted != NULL ? o.trusted : loopback;
    for (; *list != NULL; list++) {
        if (cfg->trusted_count == MAX_TRUSTED)
            return -E2BIG;
        const char *why;
        int rc = parse_cidr(*list, &cfg->trusted[cfg->trusted_count++], &why);
        if (rc < 0)
            return rc;
    }
    return 0;
}

SS_API int ss_server_set_proxy_protocol(ss_server *srv, const ss_proxy_options *opts)
{
    if (srv->filters.names_client)
        return -EEXIST;
    proxy_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return -ENOMEM;
    int rc = read_options(opts, cfg);
    if (rc == 0)
        rc = ss__filters_add_at(srv, 0, &proxy_filter, cfg); /* the header comes first */
    if (rc < 0) {
        free(cfg);
        return rc;
    }
    srv->filters.names_client = true;
    return 0;
}

SS_API const struct sockaddr *ss_request_proxy_address(const ss_request *req, socklen_t *len)
{
    const struct ss__proxy_state *st = req->proxy;
    if (len != NULL)
        *len = st != NULL ? st->proxy_len : 0;
    return st != NULL ? (const struct sockaddr *)&st->proxy : NULL;
}

SS_API const void *ss_request_proxy_tlv(const ss_request *req, unsigned type, size_t *len)
{
    size_t n = 0;
    const unsigned char *value =
        req->proxy != NULL ? ss__proxy_tlv(&req->proxy->header, type, &n) : NULL;
    if (len != NULL)
        *len = value != NULL ? n : 0;
    return value;
}
