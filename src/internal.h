/*
 * Private definitions shared by the library's source files: the server and
 * request structs and the two backend tables (transports, dispatchers).
 *
 * The core (core/server.c) is the only place where a transport meets a
 * dispatcher; each backend sees the other only through these tables.
 * Every slot of every table is filled (shared no-op defaults below), so the
 * core never tests a slot for NULL.
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include "socketserver.h"

#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------------ */
/* Addresses (base/address.c)                                                    */
/* ------------------------------------------------------------------------ */

typedef enum ss__scheme {
    SS__SCHEME_TCP,
    SS__SCHEME_UDP,
    SS__SCHEME_UNIX,
    SS__SCHEME_UNIXGRAM,
} ss__scheme;

/* A parsed URL. For tcp/udp: host (no brackets, "" = any) and port.
 * For unix/unixgram: path; a leading '@' marks a Linux abstract name. */
typedef struct ss__url {
    ss__scheme scheme;
    char host[256];
    char port[8];
    char path[256];
} ss__url;

int ss__url_parse(const char *text, ss__url *out);
const char *ss__scheme_name(ss__scheme scheme);

/* "127.0.0.1:5555", "[::1]:5555", a Unix path, or "" (unnamed peer). */
int ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
/* The address as a URL of the scheme: "tcp://[::1]:80", "unix:/run/x". */
int ss__format_url(ss__scheme scheme, const struct sockaddr *sa, socklen_t len, char *buf,
                   size_t size);
/* The port of an inet address, 0 for anything else. */
int ss__sockaddr_port(const struct sockaddr *sa, socklen_t len);
/* A unix:/unixgram: URL path ("/run/x", "@name") as a sockaddr_un.
 * Returns 0, -ENAMETOOLONG beyond sun_path, SS_ENOTSUPPORTED for an
 * abstract name where the OS has none. */
int ss__unix_address(const char *path, struct sockaddr_storage *out, socklen_t *len);
/* True for "localhost" and names ending in ".localhost" (RFC 6761). */
bool ss__is_localhost(const char *host);
/* True for a peer with no address to reply to (an unbound Unix socket). */
bool ss__sockaddr_unnamed(const struct sockaddr *sa, socklen_t len);

/* Who a client is for the per-client limit: a tag byte ('4', '6', 'u')
 * and the IP address or uid; len 0 means "nobody in particular". */
typedef struct ss__client_key {
    unsigned char len;
    unsigned char bytes[1 + 16];
} ss__client_key;

/* ------------------------------------------------------------------------ */
/* Transports (src/transport/)                                                */
/* ------------------------------------------------------------------------ */

typedef struct ss__transport {
    ss__scheme scheme;
    /* Resolve srv->url into srv->addr and create srv->fd (not bound). */
    int (*open)(ss_server *srv);
    /* Apply the bind-time options and bind srv->fd; read back srv->addr. */
    int (*bind)(ss_server *srv);
    /* listen() for stream transports, nothing for datagram ones. */
    int (*activate)(ss_server *srv);
    /* Take the next request off the socket (accept / recvfrom) into *out. */
    int (*get_request)(ss_server *srv, ss_request **out);
    /* Per-request I/O the handler's calls are routed through. recv reads
     * up to size bytes into buf; given a spill buffer (spill_size > 0),
     * bytes already waiting beyond those may go on into spill in the same
     * call. Returns the total: anything past size is in spill. */
    ssize_t (*recv)(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size);
    int (*send_all)(ss_request *req, const void *buf, size_t size);
    /* After finish: deliver what the handler left to send (a datagram
     * reply). Its error goes to handle_error like a handler's. */
    int (*complete)(ss_request *req);
    /* Python's shutdown_request: end the request's use of the socket. */
    void (*shutdown_request)(ss_request *req);
    /* Who the client is, for the per-client limit: fills *key and returns
     * 0, or returns -ENOTSUP when the transport cannot tell (the request is
     * then not limited per client). */
    int (*client_key)(const ss_request *req, ss__client_key *key);
    /* Drain: make a handler blocked in this request's I/O return now.
     * Called under the live-request lock, so before shutdown_request. */
    void (*interrupt)(ss_request *req);
    /* server_close: release what open/bind created (fd, socket file). */
    void (*close)(ss_server *srv);
} ss__transport;

/* The table for a scheme, or NULL if that transport is not built in. */
const ss__transport *ss__transport_for(ss__scheme scheme);
const ss__transport *ss__transport_tcp(void);
const ss__transport *ss__transport_udp(void);
const ss__transport *ss__transport_unix(void);
const ss__transport *ss__transport_unixgram(void);

/* Slots shared by the tables (transport/transport.c): connected streams (TCP, Unix
 * stream) accept one socket per request and do I/O on it directly. */
int ss__set_nonblocking(int fd);
/* A close-on-exec, non-blocking socket for srv->fd. */
int ss__open_server_socket(ss_server *srv, int domain, int socktype);
int ss__activate_listen(ss_server *srv);
int ss__activate_none(ss_server *srv);
int ss__stream_get_request(ss_server *srv, ss_request **out);
ssize_t ss__stream_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size);
int ss__stream_send_all(ss_request *req, const void *buf, size_t size);
int ss__stream_complete(ss_request *req);
void ss__stream_shutdown_request(ss_request *req);
/* shutdown(SHUT_RDWR): blocked reads return 0, writes fail. */
void ss__stream_interrupt(ss_request *req);
/* For transports whose peers cannot be told apart: -ENOTSUP. */
int ss__client_key_none(const ss_request *req, ss__client_key *key);

/* Datagram slots (transport/datagram.c, UDP and Unix datagram): one recvmsg() per
 * request into a packet buffer; the handler reads the packet and writes a
 * reply buffer that complete() sends back with one sendto(). req->fd is
 * the server's socket, which shutdown_request leaves open. */
int ss__dgram_get_request(ss_server *srv, ss_request **out);
ssize_t ss__dgram_recv(ss_request *req, void *buf, size_t size, void *spill,
                       size_t spill_size); /* never spills */
int ss__dgram_send_all(ss_request *req, const void *buf, size_t size);
int ss__dgram_complete(ss_request *req);
/* Sizes a Unix datagram server's send buffer for its replies (at bind). */
void ss__dgram_size_send_buffer(ss_server *srv);
void ss__dgram_shutdown_request(ss_request *req);
/* Nothing to do: a datagram handler never waits for its client. */
void ss__dgram_interrupt(ss_request *req);

/* ------------------------------------------------------------------------ */
/* Dispatchers (src/dispatch/). The public ss_dispatcher is this table.      */
/* ------------------------------------------------------------------------ */

struct ss_dispatcher {
    const char *name;
    /* Called by activate: allocate srv->dispatch_state. */
    int (*start)(ss_server *srv);
    /* False while at a concurrency limit: the listener is then not polled,
     * so clients wait in the kernel backlog. */
    bool (*accepting)(ss_server *srv);
    /* Run the request's handler somewhere; owns req from here on and must
     * end it with ss__request_finish(). */
    void (*process)(ss_server *srv, ss_request *req);
    /* Called on every loop iteration in the serving thread (reaping), and
     * by drain, which runs once the loop has stopped. */
    void (*service)(ss_server *srv);
    /* Longest the loop may sleep before service must run; -1 = no limit. */
    int (*max_wait_ms)(ss_server *srv);
    /* Drain, once its deadline has passed: end the requests this
     * dispatcher holds beyond the core's reach: cancel those not started
     * (queued, waiting for a fork), so none starts later, and signal
     * children. Called before the core shuts the live requests' sockets
     * down (the requests it cancels are on that list too), and again
     * with force when the gentle way did not suffice. */
    void (*abort)(ss_server *srv, bool force);
    /* server_close: wait for or let go of running requests; free state. */
    void (*close)(ss_server *srv);
};

/* Shared no-op slots for dispatcher tables. */
int ss__dispatch_start_none(ss_server *srv);
bool ss__dispatch_accepting_always(ss_server *srv);
void ss__dispatch_service_none(ss_server *srv);
int ss__dispatch_max_wait_none(ss_server *srv);
void ss__dispatch_abort_none(ss_server *srv, bool force);
void ss__dispatch_close_none(ss_server *srv);
/* Handler-thread attributes: joinable, with the configured stack size. */
int ss__thread_attr_init(const ss_server *srv, pthread_attr_t *attr);
/* True unless ss_server_set_block_on_close(srv, false) was called. */
bool ss__block_on_close(const ss_server *srv);

/* ------------------------------------------------------------------------ */
/* Server and request                                                       */
/* ------------------------------------------------------------------------ */

typedef enum ss__state {
    SS__CREATED,
    SS__BOUND,
    SS__ACTIVE,
    SS__DRAINED, /* ss_server_drain ran: no new requests, only close */
    SS__CLOSED,
} ss__state;

/* What ss_server_stats reports (see ss_stats for each meaning). Each is
 * updated where the event happens, by whichever thread sees it. */
typedef struct ss__counters {
    atomic_uint_fast64_t accepted, active, handled, handler_errors, closed;
    atomic_uint_fast64_t rejected, rejected_verify, rejected_limit, rejected_per_client;
    atomic_uint_fast64_t request_timeouts, interrupted, timeouts;
    atomic_uint_fast64_t accept_errors, accept_emfile, accept_enfile, accept_enobufs, accept_enomem,
        shed;
    atomic_uint_fast64_t tracked, queued, cancelled, spawn_failures, children_failed;
    atomic_uint_fast64_t lingering_closes, linger_overflows;
} ss__counters;

/* What a request holds against the server's limits from accept until it
 * ends (core/limits.c): its place in count.active and, with a per-client limit,
 * in its client's entry. The forking dispatcher takes it over from the
 * request and gives it back when the child is reaped. */
typedef struct ss__hold {
    bool active;
    bool keyed;
    ss__client_key key;
} ss__hold;

/* A link in the server's list of live requests. */
typedef struct ss__link {
    struct ss__link *prev, *next;
} ss__link;

typedef struct ss__clients ss__clients; /* core/limits.c */

struct ss_server {
    atomic_int refs; /* owner + each live request */
    ss__state state;
    ss_handler handler;
    void *data;
    ss__url url;
    const ss__transport *transport;
    const ss_dispatcher *dispatch;
    void *dispatch_state;

    int fd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    ss__stop stop; /* stop request + self-pipe: shutdown and dispatchers wake the loop */

    bool reuse_address, reuse_port;
    int backlog;
    atomic_int timeout_ms, request_timeout_ms;

    ss_verify_fn verify_request;
    ss_error_fn handle_error;
    ss_server_fn handle_timeout, service_actions;

    /* accept policy (core/accept_policy.c); touched only by the serving thread */
    int spare_fd;             /* given up to shed a client when out of fds */
    int accept_backoff_ms;    /* 0 = accepting normally */
    int64_t accept_resume_at; /* monotonic ms */
    uint64_t burst_errors;
    ss_log_fn log; /* NULL = stderr */
    pthread_mutex_t lock; /* guards serving and serving_thread */
    pthread_cond_t loop_exited;
    bool serving;
    pthread_t serving_thread;

    ss__counters count;

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

    /* Requests alive in this process, from accept to shutdown_request, so
     * drain can interrupt them (core/request.c). A request leaves the list
     * under the lock before its socket is closed: whoever walks the list
     * under the lock never touches a closed descriptor number. */
    pthread_mutex_t live_lock;
    ss__link live;
    atomic_bool draining; /* a request that ends wakes the loop */

    /* Transport options and state (transport/datagram.c, transport/unix.c). Zeroed
     * by calloc; a transport's open() sets its own defaults. */
    size_t max_packet_size; /* datagram transports: recvmsg buffer size */
    /* Datagram replies (transport/datagram.c): who holds the socket's send buffer
     * while replies wait unread in their receivers' queues. */
    struct ss__reply_budget {
        atomic_size_t since_sample; /* reply bytes sent since the buffer was last measured */
        atomic_bool pressure;       /* the buffer is more than half full */
        atomic_flag lock;           /* guards peers; clear when zeroed by calloc */
        struct {
            uint64_t peer;  /* hash of the peer's address; 0 = free */
            size_t charged; /* reply bytes sent to it while under pressure */
        } peers[32];
    } budget;
    struct {
        bool mode_set; /* ss_server_set_unix_mode was called */
        mode_t mode;
        bool created; /* bind created url.path: close removes it ... */
        dev_t dev;    /* ... if it is still this very file ... */
        ino_t ino;
        pid_t owner; /* ... and we are the process that bound it */
    } sockfile;

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
};

struct ss_request {
    ss__link link; /* first: in srv->live while the request is alive */
    ss_server *server;
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_name[128];
    void *data;
    int timeout_ms;
    int socket_timeout_ms; /* timeout_ms as last set on the socket; -1: none (transport/transport.c) */
    const ss__waiter *waiter; /* how its I/O waits: set by the dispatcher as it starts it (io/io.h) */
    ss__hold hold;
    atomic_bool timed_out; /* a read or write failed with -ETIMEDOUT */
    bool linger_in_place;  /* a forking child: its lingering close is its own (io/linger.c) */
    bool reply_lost;       /* a send failed: no lingering close, nothing to protect */

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

    /* Buffered stream I/O (core/bufio.c), over the transport's recv/send_all.
     * Buffers are allocated on first use and freed with the request. The
     * reader and writer share nothing: one thread may read while another
     * writes. */
    struct ss__reader {
        char *buf;
        size_t cap, start, end; /* unread bytes: buf[start, end) */
        bool skip_line;         /* discard through the next '\n' first */
        int err;                /* sticky: a read_exact lost bytes */
    } in;
    struct ss__writer {
        char *buf; /* allocated lazily; cap 0 = unbuffered */
        size_t cap, len;
        int err; /* sticky: buffered output was lost */
    } out;
};

/* core/server.c */
void ss__server_ref(ss_server *srv);
void ss__server_unref(ss_server *srv);
void ss__server_wake(const ss_server *srv); /* async-signal-safe */
bool ss__server_stop_requested(const ss_server *srv);
bool ss__server_on_serving_thread(const ss_server *srv); /* inside serve_forever */
/* Empties the wake-up pipe: only from the thread that runs the loop. */
void ss__server_drain_wake(const ss_server *srv);
bool ss__server_serving(ss_server *srv); /* serve_forever is running */
/* Sleeps until the wake-up pipe is written to or timeout_ms (-1: no
 * limit) passes, and empties the pipe. */
void ss__server_sleep(ss_server *srv, int timeout_ms);

/* core/request.c: one request's life. */
ss_request *ss__request_new(ss_server *srv, int fd, const struct sockaddr *peer,
                            socklen_t peer_len);
/* setup -> handle -> finish, routing the first error to handle_error.
 * Returns that error (0 on success). */
int ss__request_run(ss_request *req);
/* shutdown_request, count it, give its hold back, free the request,
 * drop its server ref. */
void ss__request_finish(ss_request *req);
/* Notes an I/O result: -ETIMEDOUT marks the request as timed out. Returns rc. */
int ss__request_note_io(ss_request *req, int rc);
/* Drain: interrupt every live request of this process (transport slot). */
void ss__requests_interrupt(ss_server *srv);
/* A request the dispatcher could not start (no thread, no process):
 * reported once to handle_error as a handler failure would be; the caller
 * then ends it with ss__request_finish(). */
void ss__request_fail(ss_request *req, int err);
/* The forking parent's side of a request a child now serves: drops this
 * process's copy with close() only, never shutdown(), which would end the
 * child's conversation too (a datagram request's socket is the server's
 * own and stays open). Counts nothing: the child's exit does. Moves the
 * request's hold into *hold, for ss__hold_drop once the child is reaped.
 * Frees req and drops its server reference. */
void ss__request_release(ss_request *req, ss__hold *hold);

/* core/bufio.c: the buffered reader/writer as the core and recv/send_all see
 * it. ("bufio", because ss__stream_* names the stream transports' slots.) */
void ss__bufio_init(ss_request *req);                            /* buffer sizes */
ssize_t ss__bufio_recv(ss_request *req, void *buf, size_t size); /* buffered bytes first */
int ss__bufio_flush(ss_request *req);       /* pending output, or the sticky error */
int ss__bufio_final_flush(ss_request *req); /* after finish; 0 if nothing was pending */
void ss__bufio_free(ss_request *req);

/* base/fd.c: close-on-exec descriptors everywhere. */
int ss__socket(int domain, int type, int protocol);
int ss__accept(int fd, struct sockaddr *sa, socklen_t *len);
int ss__pipe(int fds[2]); /* both ends close-on-exec and non-blocking */
void ss__close(int *fd);  /* close if >= 0, then set to -1; keeps errno */

/* core/accept_policy.c */
int ss__accept_policy_init(ss_server *srv);
void ss__accept_policy_close(ss_server *srv);
void ss__accept_failed(ss_server *srv, int err);
void ss__accept_succeeded(ss_server *srv);
int ss__accept_pause_ms(const ss_server *srv); /* > 0 while backing off */

/* core/limits.c */
typedef enum ss__refusal {
    SS__ADMITTED,
    SS__REFUSE_VERIFY,     /* verify_request said no */
    SS__REFUSE_LIMIT,      /* over max_connections, with an overload reply */
    SS__REFUSE_PER_CLIENT, /* over max_per_client */
} ss__refusal;
/* False while at max_connections without an overload reply. */
bool ss__limits_accepting(ss_server *srv);
/* Checks a new request against the limits; on admission it holds its
 * client's place. */
ss__refusal ss__limits_admit(ss_server *srv, ss_request *req);
/* Counts the refusal, sends the overload reply for a limit, ends req. */
void ss__request_refuse(ss_request *req, ss__refusal why);
/* A request has ended: give back what it held (and wake the loop if that
 * makes room under max_connections, or drain is waiting). */
void ss__hold_drop(ss_server *srv, ss__hold *hold);
void ss__limits_free(ss_server *srv);

/* base/log.c: format and route one library message. */
void ss__log(ss_server *srv, ss_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Default handle_error: one line on stderr. */
void ss__report_error(ss_server *srv, ss_request *req, int err, void *data);

#endif /* SS_INTERNAL_H */
