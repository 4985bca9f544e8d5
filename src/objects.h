/* The layouts of the server and request objects: a data contract shared
 * by every layer above base, holding no functions. Which layer may write
 * which field is said next to it; the functions that act on these objects
 * are declared in their own layer's header. */
#ifndef SS_OBJECTS_H
#define SS_OBJECTS_H

#include "base/base.h"
#include "base/clock.h"
#include "io/io.h" /* ss__stop, ss__waiter */
#include "sched/sched.h"

/* The backend tables, defined in their layers' headers. */
typedef struct ss__transport ss__transport; /* transport/transport.h */
/* ss_dispatcher (socketserver.h) and the core's ss__host are defined in
 * dispatch/dispatch.h. */
typedef struct ss__host ss__host;
struct pollfd; /* <poll.h>: the loop's poll set */

typedef enum ss__state {
    SS__CREATED,
    SS__BOUND,
    SS__ACTIVE,
    SS__DRAINED, /* ss_server_drain ran: no new requests, only close */
    SS__CLOSED,
} ss__state;

/* Every counter ss_server_stats reports, in the public ss_stats order
 * (see ss_stats for each meaning): the one list the counters' struct and
 * the copy into ss_stats (core/server.c) are made from. A new counter is
 * one line here plus its field at the end of ss_stats (the copy checks
 * that the two agree). */
/* clang-format off */
#define SS__COUNTERS(X)                                                          \
    X(accepted) X(active) X(handled) X(handler_errors) X(closed)                 \
    X(rejected) X(rejected_verify) X(rejected_limit) X(rejected_per_client)      \
    X(request_timeouts) X(interrupted) X(timeouts)                               \
    X(accept_errors) X(accept_emfile) X(accept_enfile) X(accept_enobufs)         \
    X(accept_enomem) X(shed)                                                     \
    X(tracked) X(queued) X(cancelled) X(spawn_failures) X(children_failed)       \
    X(lingering_closes) X(linger_overflows)                                      \
    X(filter_refused) X(proxy_invalid) X(proxy_untrusted) X(proxy_timeouts)      \
    X(idle_closed)                                                               \
    X(tls_handshakes) X(tls_handshake_failures) X(processes_failed)         \
    X(tls_reload_failures)
/* clang-format on */

/* Each is updated where the event happens, by whichever thread sees it. */
#define SS__COUNTER_FIELD(name) atomic_uint_fast64_t name;
typedef struct ss__counters {
    SS__COUNTERS(SS__COUNTER_FIELD)
} ss__counters;
#undef SS__COUNTER_FIELD

/* Filters (filter/chain.c): the most a server may carry. */
#define SS__MAX_FILTERS 16

/* Why a request was refused after admission, on its own thread (before
 * its handler ran): kept on the request so a forking child can tell its
 * parent, whose counters are the ones shown. */
typedef enum ss__late_refusal {
    SS__LATE_NONE,
    SS__LATE_FILTER,          /* a filter's open failed: filter_refused */
    SS__LATE_PROXY_INVALID,   /* ... the PROXY filter's: no valid header */
    SS__LATE_PROXY_UNTRUSTED, /* ... a header from an untrusted source */
    SS__LATE_PROXY_TIMEOUT,   /* ... no whole header within its timeout */
    SS__LATE_PER_CLIENT,      /* the real client is at max_per_client */
    SS__LATE_VERIFY,          /* verify_request, run after the filters, said no */
    SS__LATE_TLS,             /* the TLS handshake failed: tls_handshake_failures */
} ss__late_refusal;           /* fits 3 bits (dispatch/fork.c): no room for more */

/* A request's PROXY header and the proxy's own address (filter/proxy.c). */
struct ss__proxy_state;
/* A request's TLS connection (filter/tls.c), and a server's TLS settings
 * and current certificate (filter/tls_config.c). */
struct ss__tls_state;
struct ss__tls_config;

/* One filter's place in one request's chain (the public ss_filter_ctx). */
struct ss_filter_ctx {
    ss_request *req;
    int index; /* 0: the closest to the socket */
    void *state;
};

/* Drain's idle close (core/idle.c): where a request is between messages.
 * The state lives in the request (req->idle_own), or, for a forked
 * child's request, in the page the child shares with its parent, which
 * can see no request of the child's otherwise. Changed only by atomic
 * compare-and-swap: the request moves BUSY <-> WAITING around each wait
 * for a new message; whoever ends an idle request (the drain, or the
 * request itself when it sees the drain has begun) moves WAITING ->
 * CLOSED, which is final: each later wait for a new message returns end
 * of stream at once. */
enum { SS__IDLE_BUSY = 0, SS__IDLE_WAITING = 1, SS__IDLE_CLOSED = 2 };

/* What the handler did last on a stream (core/bufio.c), for the idle
 * rule: an exchange is complete once bytes were read and then bytes were
 * written, with nothing left unsent in the writer. */
enum {
    SS__PHASE_FRESH = 0, /* nothing read yet */
    SS__PHASE_READ,      /* read bytes, not answered since */
    SS__PHASE_UNSENT,    /* wrote since, but the writer still holds some */
    SS__PHASE_ANSWERED,  /* wrote since, all handed to the socket */
};

/* A request's place under the server's limits, from admission until it
 * ends (core/limits.c): its count in count.active and, with a per-client
 * limit, in its client's entry. The forking dispatcher takes it over from the
 * request and gives it back when the child is reaped. */
typedef struct ss__place {
    bool active;
    bool keyed;
    ss__client_key key;
} ss__place;

/* req->peer_name's state: only UNNAMED -> FORMATTING -> READY, by
 * compare-and-swap, so that one thread formats and the others wait. */
enum { SS__NAME_UNNAMED = 0, SS__NAME_FORMATTING = 1, SS__NAME_READY = 2 };

/* A link in the server's list of live requests. */
typedef struct ss__link {
    struct ss__link *prev, *next;
} ss__link;

typedef struct ss__clients ss__clients; /* core/limits.c */

/* Datagram replies (transport/datagram.c): who holds a datagram socket's
 * send buffer while replies wait unread in their receivers' queues. */
struct ss__reply_budget {
    atomic_size_t since_sample; /* reply bytes sent since the buffer was last measured */
    atomic_bool pressure;       /* the buffer is more than half full */
    atomic_flag lock;           /* guards peers; clear when zeroed by calloc */
    struct {
        uint64_t peer;  /* hash of the peer's address; 0 = free */
        size_t charged; /* reply bytes sent to it while under pressure */
    } peers[32];
};

/* A worker process's place in the order in which sibling worker
 * processes (ss_server_set_processes) take new clients off a listener
 * they share: process k's pool watches it only while process k-1 passes
 * (dispatch/pool.c, accepts_now), as within a pool worker k watches only
 * while worker k-1 spills. In the supervisor's shared page, one per slot
 * (core/prefork.h); a replacement takes its slot's seat. */
typedef struct ss__seat {
    /* CLOCK_MONOTONIC microseconds of its loop's last turn (at most
     * every 10 ms while it works); 0 before it serves; SS__SEAT_RESTING
     * while its loop rests (nothing to do: it wakes for the next arrival,
     * its control thread watching the listeners). Older than the pool's
     * SEAT_STALE_US: stopped, killed or stuck, and it passes. A resting
     * seat is never stale by its clock: the next process, seeing a client
     * wait, stamps it with its own clock (ss__seat_stamp_resting), so that
     * it goes stale unless it comes round (stopped while at rest). */
    atomic_llong seen_us;
    atomic_uint passing; /* SS__PASS_* bits: the next process takes clients too */
} ss__seat;

#define SS__SEAT_RESTING INT64_MAX

/* Seat `seat` rests, yet a client waits (an arrival woke the caller):
 * gives it the clock `now_us`, from which it goes stale unless its loop
 * comes round. */
static inline void ss__seat_stamp_resting(ss__seat *seat, int64_t now_us)
{
    long long resting = SS__SEAT_RESTING;
    atomic_compare_exchange_strong(&seat->seen_us, &resting, now_us);
}

enum {
    SS__PASS_SPILL = 1,  /* its last worker spills: every worker is busy, full or stuck */
    SS__PASS_PARKED = 2, /* the core lets it take no client (its limit, the back-off) */
    SS__PASS_OFF = 4,    /* its workers do not accept (not serving, paused, starting) */
    SS__PASS_HELD = 8,   /* a worker poked for a waiting client did not come round */
    SS__PASS_STUCK = 16, /* its last worker is stuck in a handler */
};

/* One socket a server serves on, with its own transport: bound from a
 * URL, or adopted (an inherited descriptor, "fd:N", or one passed by
 * socket activation, "systemd:"). Every listener of a server feeds the
 * same dispatcher. Created before bind by the core (core/listener.c),
 * which alone writes the fields above `sockfile`; freed with the server's
 * memory, since a request (req->listener) may end after close. */
typedef struct ss__listener {
    ss_server *server;
    const ss__transport *transport;
    int index;   /* its place in srv->listeners; 0 is what ss_server_fileno names */
    int fd;      /* -1 once closed */
    ss__url url; /* as given; an adopted one's scheme is read from its socket */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool bound;   /* bind ran (or adopted): a retried bind skips it */
    bool adopted; /* never bound, listened on or unlinked by this library */
    /* Another process holds this socket too (an adopted one: systemd, a
     * parent): drain must not change the socket (stop_arrivals), only
     * close this process's descriptor; the backlog stays theirs. Atomic:
     * a hand-over sets it while workers accept (transport/inet.c reads it). */
    atomic_bool shared;
    char name[256]; /* its socket-activation name (LISTEN_FDNAMES), else "" */
    /* The socket file a Unix listener's bind created (transport/unix.c):
     * close removes it if it is still this very file (device and inode)
     * and only in the process that bound it. */
    struct {
        bool created;
        dev_t dev;
        ino_t ino;
        pid_t owner;
    } sockfile;
    struct ss__reply_budget budget; /* datagram listeners */
    /* Drain (core/server.c): how much of the listen backlog it still
     * takes before closing (at most backlog + 1 clients); once the queue
     * was found empty, that the transport's stop_arrivals ran, and how
     * long handshakes under way may still take to join the queue (<= 0:
     * none can, or new ones were not stopped). */
    int backlog_left;
    bool arrivals_stopped;
    int arrivals_settle_ms;
    /* While serve_forever runs, the dispatcher's own threads take this
     * listener's clients (the pool's workers: dispatch/pool.c) and the
     * loop polls it only when none of them does. Written by the serving
     * thread before the dispatcher's accept_start and after its
     * accept_stop (core/server.c); read by the dispatcher in between. */
    bool worker_accept;
    /* Sibling worker processes wait on this socket too (set in a worker
     * process of ss_server_set_processes, core/prefork_worker.c, when it
     * has siblings). The pool's workers watch it with exclusive wake-ups
     * all the same, the processes taking turns (srv->seat), and the loop
     * also looks at it every few ms (dispatch/pool.c, look_for_stranded):
     * the kernel gives one
     * exclusive wake-up per arrival to one waiting process, and one that
     * then takes no client (killed or stopped before its accept, paused,
     * at a limit of its own) leaves the client in the backlog, with no
     * wake-up for a sibling until the next arrival. (An adopted socket,
     * which a process that is not ours may wait on, is watched without
     * exclusive wake-ups.) */
    bool other_waiters;
    /* TCP_NODELAY as this process set it on the listener, for the
     * connections to inherit (transport/inet.c): 0 never set; else bit 0
     * its value, bit 1 "settled" (every connection queued since has it),
     * and from bit 2 a count of the changes. nodelay_changed_ms: when the
     * last change was made (monotonic ms). */
    atomic_uint nodelay;
    atomic_llong nodelay_changed_ms;
} ss__listener;

struct ss_server {
    atomic_int refs; /* owner + each live request */
    ss__state state;
    ss_handler handler;
    void *data;
    /* What it serves on (core/listener.c): at least one once created;
     * added only before bind, from the thread setting the server up, so
     * read without a lock afterwards. The poll set has room for the wake
     * pipe and every listener (the serving thread's alone). */
    ss__listener **listeners;
    int nlisteners;
    struct pollfd *pollset;
    int next_listener; /* where the next round of accepts starts (fairness) */
    const ss_dispatcher *dispatch;
    const ss__host *host; /* what the core lends the dispatcher (core/server.c) */
    void *dispatch_state;

    ss__stop stop; /* stop request + self-pipe: shutdown and dispatchers wake the loop */

    bool reuse_address, reuse_port;
    int backlog;
    atomic_int timeout_ms, request_timeout_ms;

    ss_verify_fn verify_request;
    ss_error_fn handle_error;
    ss_server_fn handle_timeout, service_actions;

    /* accept policy (core/admission.c): whichever thread accepts (the
     * serving thread, or the pool's workers) reads the back-off without a
     * lock; the rest changes only under accept_lock, on the error path */
    pthread_mutex_t accept_lock;
    int reserve_fd;                /* given up to shed a client when out of fds */
    atomic_int accept_backoff_ms;  /* 0 = accepting normally */
    atomic_llong accept_resume_at; /* monotonic ms */
    uint64_t burst_errors;
    ss_log_fn log;        /* NULL = stderr */
    pthread_mutex_t lock; /* guards serving and serving_thread */
    pthread_cond_t loop_exited;
    bool serving;
    pthread_t serving_thread;

    /* The counters (ss_server_stats): own_count, or in a worker process
     * (ss_server_set_processes) its slot of the supervisor's shared page,
     * so that the supervisor sums them as they change, with nothing
     * published (core/prefork_worker.c); a forked child of the forking
     * dispatcher counts in its own copy again (ss__count_privately). */
    ss__counters *count;
    ss__counters own_count;

    /* Limits (core/limits.c). max_connections may change any time; the rest is
     * set before activate and freed with the server's memory, since a
     * request may end after close. */
    struct ss__limits {
        atomic_int max_connections; /* 0 = none */
        int max_per_client;         /* 0 = none */
        char *overload_reply;       /* NULL: at the limit, clients wait in the backlog */
        size_t overload_reply_len;
        ss__clients *clients; /* the per-client counts, when max_per_client > 0 */
    } limits;

    /* Requests alive in this process, from admission to end_request, so
     * drain can interrupt them (core/request.c). A request leaves the list
     * under the lock before its socket is closed: whoever walks the list
     * under the lock never touches a closed descriptor number. */
    pthread_mutex_t live_lock;
    ss__link live;
    atomic_bool draining; /* a request that ends wakes the loop */
    /* Hand-over (core/handover.c): one at a time (handing_over); once a
     * successor said it is ready (handed_over, never cleared), the loop
     * stops taking clients and drain only closes this process's copies of
     * the listening sockets. */
    atomic_bool handing_over, handed_over;
    /* Stop requests and drains begun, counted: a hand-over in progress
     * gives way when it changes (a stop is never lost to one). Bumped by
     * ss_server_request_shutdown, so lock-free: async-signal-safe. */
    atomic_uint stop_events;
    /* Per-connection mode (core/connection.c): a server made by
     * ss_server_new_connection (its one listener listens on nothing), and
     * the connected socket it serves, -1 once taken. */
    bool serves_connection;
    int connection_fd;
    /* Drain's idle close (core/idle.c). keep_idle: the application turned
     * it off (ss_server_set_drain_close_idle), inverted so that calloc's
     * zero is the default. closing_idle: a drain began with it on; never
     * cleared, so a request that becomes idle even after the drain
     * returned ends at once. */
    atomic_bool keep_idle, closing_idle;
    /* Transport options and state (transport/datagram.c, transport/unix.c). Zeroed
     * by calloc; a transport's open() sets its own defaults. */
    size_t max_packet_size; /* datagram listeners: recvmsg buffer size (8192 by default) */
    struct {
        bool mode_set; /* ss_server_set_unix_mode was called: every socket file gets it */
        mode_t mode;
    } unix_mode;

    /* Stream I/O options (core/bufio.c): copied into each new request, so a
     * change applies to requests accepted afterwards. 0 = default. */
    atomic_size_t read_buffer_size, write_buffer_size;
    atomic_bool tcp_nodelay; /* read by the TCP transport at accept */

    /* Dispatcher options and counters (src/dispatch/). Zero is
     * "the default" for every option, so calloc is their initialisation.
     * Counts and sizes are read once, when activate starts the dispatcher;
     * the two flags are read when they matter (spawn, close). */
    struct ss__dispatch_options {
        atomic_bool daemon_threads;    /* threading: close does not join it */
        atomic_bool no_block_on_close; /* inverted: Python's default is on */
        int max_children;              /* forking; 0 = SS_DEFAULT_MAX_CHILDREN */
        int workers, queue_size;       /* pool; 0 = computed at activate */
        size_t stack_size;             /* 0 = SS_DEFAULT_THREAD_STACK_SIZE */
        int fibers;                    /* pool: requests per worker; 0 = SS_DEFAULT_POOL_FIBERS */
    } dopt;

    /* The filter chain (filter/chain.c): set before activate, read-only
     * after; each config is freed with the server. */
    struct ss__filters {
        int count;
        /* A filter (PROXY) names the real client: the per-client limit and
         * verify_request wait until the chain has opened (core/request.c). */
        bool names_client;
        struct ss__filter_link {
            const ss_filter *filter;
            void *config;
        } links[SS__MAX_FILTERS];
        /* ss_server_set_tls's settings (also the TLS filter's config, freed
         * with it); NULL without TLS. Set before activate, then only read:
         * a reload changes what it points to, under its own lock. */
        struct ss__tls_config *tls;
    } filters;

    /* Worker processes (core/prefork.c): how many were asked for (0:
     * none, SS_PROCESSES_PER_CPU) and the supervisor's table (NULL
     * without), set before activate; the supervisor's state from
     * activate on, NULL in a worker (which serves as a plain server) and
     * without workers. */
    int processes;
    const struct ss__supervisor *supervisor;
    struct ss__prefork *prefork;
    /* In a worker process with siblings (set by core/prefork_worker.c
     * before its dispatcher starts, then only read): its own seat, and
     * the one before it (NULL for the first process, which always takes
     * clients). Both NULL elsewhere. Read and written by dispatch/pool.c.
     * seat_rest, with a seat only: the write end of a pipe whose byte
     * tells the worker process's control thread that its loop began or
     * ended a rest (SS__SEAT_RESTING): at rest, that thread watches the
     * listeners for the loop. */
    ss__seat *seat, *seat_before;
    int seat_rest;
};

struct ss_request {
    ss__link link; /* first: in srv->live while the request is alive */
    ss_server *server;
    /* What every request's read and write touch comes first, in the
     * fewest cache lines (with 1000 connections each request's lines are
     * cold: each one more is a miss): */
    ss__listener *listener;   /* the socket it came on: its transport serves it */
    const ss__waiter *waiter; /* how its I/O waits: set by the dispatcher as it starts it
                                 (io/io.h) */
    /* Filters (filter/chain.c): one context per filter of the server, set
     * as the chain opens on the handler's thread; NULL without filters,
     * which is the one test the I/O hot path pays. */
    ss_filter_ctx *filter_ctx;
    /* Drain's idle close (core/idle.c): the request's SS__IDLE_* state
     * and the flag that says a drain is closing idle requests; they point
     * at idle_own and the server's closing_idle, or into the page a
     * forked child shares with its parent (dispatch/fork.c). */
    atomic_uchar *idle;
    const atomic_bool *closing_idle;
    int fd;
    int timeout_ms;
    atomic_uchar phase; /* SS__PHASE_*: written by reads and writes, which may be
                           on two threads; only ever a hint, hence atomic */
    bool idle_read;     /* the reader's current socket read is an idle wait (core/bufio.c): a
                           stop ends it at once, without the sync stop grace (transport.c) */
    /* The next socket read waits for readiness before it tries: the peer's
     * bytes cannot be there yet (a TLS handshake flight was just sent,
     * filter/tls_io.c). The stream transport clears it. */
    bool recv_wait_first;
    /* In the top page of its fiber's stack (ss__sched_carve), not on the
     * heap: freed with that fiber, not by free(). */
    bool carved;
    atomic_uchar idle_own; /* see idle */
    /* Buffered stream I/O (core/bufio.c), over the transport's recv/send_all.
     * Buffers are allocated on first use and freed with the request. The
     * reader and writer share nothing: one thread may read while another
     * writes. */
    struct ss__reader {
        char *buf;
        size_t cap, start, end; /* unread bytes: buf[start, end) */
        bool skip_line;         /* discard through the next '\n' first */
        int err;                /* sticky: a read_exact lost bytes, or read-ahead found no memory */
    } in;
    struct ss__writer {
        char *buf; /* allocated lazily; cap 0 = unbuffered */
        size_t cap, len;
        int err; /* sticky: buffered output was lost */
    } out;
    /* Datagram requests (transport/datagram.c); all zero for stream requests. */
    struct {
        bool active;
        bool truncated;   /* the datagram was longer than max_packet_size */
        bool force_reply; /* send a reply even if it is empty */
        unsigned char *packet;
        size_t packet_len, read_pos;
        unsigned char *reply;
        size_t reply_len, reply_cap;
    } dgram;

    /* The rest: once per connection, or seldom. */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    /* peer as text, formatted on first use (ss__request_peer_name): most
     * requests never ask, and formatting costs ~2,900 instructions. A
     * filter that changes peer (PROXY) sets the state back to UNNAMED
     * on the handler's thread before any handler code can ask. */
    atomic_uchar peer_name_state; /* SS__NAME_* */
    char peer_name[128];
    void *data;
    int socket_timeout_ms; /* timeout_ms as last set on the socket; -1: none (transport.c) */
    /* How its filters' open waits, if not as waiter (NULL): sync's reads
     * a header already sent even once stopped (dispatch/sync.c). */
    const ss__waiter *open_waiter;
    ss__place place;
    atomic_bool timed_out; /* a read or write failed with -ETIMEDOUT */
    atomic_bool cancelled; /* ... with -ECANCELED: a sync wait ended by a stop or by
                              drain's deadline (counted interrupted during a drain) */
    bool linger_in_place;  /* a forking child: its lingering close is its own (io/linger.c) */
    bool reply_lost;       /* a send failed: no lingering close, nothing to protect */
    /* Whether its close may skip the lingering close (transport.c's
     * close_stream): a read returned the peer's end of stream, ... */
    atomic_bool peer_ended;
    atomic_bool shut_here;         /* ... not one we caused (a shutdown: drain's interrupt) ... */
    atomic_bool fd_lent;           /* ... and nobody else may hold the socket (ss_request_fileno) */
    int filters_open;              /* how many opened: closed in reverse */
    ss__late_refusal late_refusal; /* set by the handler's thread before setup */
    int idle_watch;                /* -1, or a forked child's: readable once its parent's drain
                                      closes idle requests (its idle waits poll it too) */
    struct ss__proxy_state *proxy; /* its PROXY header, while that filter is open; else NULL */
    struct ss__tls_state *tls;     /* its TLS connection, while that filter is open; else NULL */
    bool tls_established;          /* its TLS handshake completed: a forking child tells its
                                      parent, which counts tls_handshakes (dispatch/fork.c) */
};

#endif /* SS_OBJECTS_H */
