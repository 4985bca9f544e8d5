/* The transport layer's private header (src/transport/): the table each
 * transport fills (TCP, UDP, Unix stream, Unix datagram) and the slots the
 * tables share. A transport sees sockets, never a dispatcher. */
#ifndef SS_TRANSPORT_H
#define SS_TRANSPORT_H

#include "objects.h"

/* What get_request takes off the socket: a client that has arrived, not
 * yet a request. The core decides whether to admit it (core/admission.c)
 * and only then builds a request from it; a client turned away is handed
 * back to turn_away, which sends it a refusal and closes it. */
typedef struct ss__arrival {
    ss__listener *listener; /* the socket it came on (set by the core) */
    int fd;                 /* the accepted connection; a datagram's: the server's own socket */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    unsigned char *packet; /* a datagram's bytes (malloc'd, owned by the arrival) */
    size_t packet_len;
    bool truncated; /* the datagram was longer than max_packet_size */
} ss__arrival;

typedef struct ss__transport {
    ss__scheme scheme;
    /* What the rest of the library may need to know about this kind of
     * socket, said once here rather than asked by testing its identity. */
    bool datagram;             /* one request per datagram, read from a packet buffer */
    bool replies_via_listener; /* a request's fd is the server's own socket, shared
                                  by every request: never closed by one */
    bool socket_file;          /* bind creates a file that close removes (a Unix
                                  path; not an abstract "@name") */
    bool peer_credentials;     /* the peer's pid/uid/gid can be asked (SO_PEERCRED) */
    bool sender_holds_replies; /* a reply stays charged to the server's send buffer
                                  until read (Unix datagram): bind sizes it */
    bool acked_sends;          /* a reset destroys sent bytes not yet acknowledged
                                  (TCP): the close lingers for them */
    /* Resolve l->url into l->addr and create l->fd (not bound). */
    int (*open)(ss__listener *l);
    /* Apply the server's bind-time options and bind l->fd; read back l->addr. */
    int (*bind)(ss__listener *l);
    /* listen() for stream transports, nothing for datagram ones. */
    int (*activate)(ss__listener *l);
    /* Take the next client off the socket (accept / recvmsg) into *out.
     * Returns 0, or a negative errno (-EAGAIN: none was waiting). */
    int (*get_request)(ss__listener *l, ss__arrival *out);
    /* A client not admitted (refused or shed): sends it `reply` if len > 0,
     * once, never waiting, then closes the connection (a datagram's packet
     * is freed; the server's socket stays open). Consumes the arrival. */
    void (*turn_away)(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len);
    /* Per-request I/O the handler's calls are routed through. recv reads
     * up to size bytes into buf; given a spill buffer (spill_size > 0),
     * bytes already waiting beyond those may go on into spill in the same
     * call. Returns the total: anything past size is in spill. */
    ssize_t (*recv)(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size);
    int (*send_all)(ss_request *req, const void *buf, size_t size);
    /* After finish: deliver what the handler left to send (a datagram
     * reply). Its error goes to handle_error like a handler's. */
    int (*flush_reply)(ss_request *req);
    /* Ends the request's use of the socket (Python's shutdown_request). */
    void (*end_request)(ss_request *req);
    /* Who the client is, for the per-client limit: fills *key and returns
     * 0, or returns -ENOTSUP when the transport cannot tell (the request is
     * then not limited per client). */
    int (*client_key)(const ss__arrival *arrival, ss__client_key *key);
    /* Drain, once the listen queue was found empty: stop new connections
     * from joining it, while those already in it stay to be accepted, so
     * that closing the listener resets nobody (a connection the kernel
     * completed is one a client, or HAProxy in mode tcp, will not retry).
     * Returns how long, in milliseconds, a connection whose handshake is
     * already under way may still take to join the queue (0: none can),
     * or -ENOTSUP where the system cannot do this: then a client arriving
     * between the last accept and the close is reset. NULL: -ENOTSUP. */
    int (*stop_arrivals)(ss__listener *l);
    /* Drain: make a handler blocked in this request's I/O return now.
     * Called under the live-request lock, so before end_request. */
    void (*interrupt)(ss_request *req);
    /* Drain's idle close (core/idle.c): make a read blocked in this
     * request return 0, end of stream, and leave its writes alone, so
     * what goes out after (a filter's goodbye: TLS's close_notify, RFC
     * 8446 section 6.1) still reaches the client. Any thread; before
     * end_request (under the live-request lock, or on the request's own). */
    void (*end_reads)(ss_request *req);
    /* server_close: release what open/bind created (fd, socket file; an
     * adopted listener's socket file is never removed). */
    void (*close)(ss__listener *l);
} ss__transport;

const ss__transport *ss__transport_tcp(void);
const ss__transport *ss__transport_udp(void);
const ss__transport *ss__transport_unix(void);
const ss__transport *ss__transport_unixgram(void);

/* Slots shared by the tables (transport/transport.c): connected streams (TCP, Unix
 * stream) accept one socket per request and do I/O on it directly.
 * ss__stream_* name these socket slots; the buffered reader/writer over
 * them is core/bufio.c (ss__bufio_*). */
int ss__set_nonblocking(int fd);
/* A close-on-exec, non-blocking socket for l->fd. */
int ss__open_server_socket(ss__listener *l, int domain, int socktype);
int ss__activate_listen(ss__listener *l);
int ss__activate_none(ss__listener *l);
int ss__stream_get_request(ss__listener *l, ss__arrival *out);
void ss__stream_turn_away(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len);
ssize_t ss__stream_recv(ss_request *req, void *buf, size_t size, void *spill, size_t spill_size);
int ss__stream_send_all(ss_request *req, const void *buf, size_t size);
int ss__stream_flush_reply(ss_request *req);
void ss__stream_end_request(ss_request *req);
/* shutdown(SHUT_RDWR): blocked reads return 0, writes fail. */
void ss__stream_interrupt(ss_request *req);
/* shutdown(SHUT_RD): blocked reads return 0 (their poll wakes), writes go on. */
void ss__stream_end_reads(ss_request *req);
/* transport/transport.c: notes an I/O result: -ETIMEDOUT marks the request as timed out,
 * -ECANCELED as cancelled. Returns rc. */
int ss__request_note_io(ss_request *req, int rc);
/* transport/transport.c: the client's address as text ("" if unnamed),
 * formatted on first use by whichever thread asks; valid while the
 * request lives. Thread-safe. */
const char *ss__request_peer_name(const ss_request *req);
/* For transports whose peers cannot be told apart: -ENOTSUP. */
int ss__client_key_none(const ss__arrival *arrival, ss__client_key *key);
/* stop_arrivals for TCP (transport/inet.c) and Unix stream (transport/unix.c). */
int ss__tcp_stop_arrivals(ss__listener *l);
int ss__unix_stop_arrivals(ss__listener *l);

/* Datagram slots (transport/datagram.c, UDP and Unix datagram): one recvmsg() per
 * request into a packet buffer; the handler reads the packet and writes a
 * reply buffer that flush_reply() sends back with one sendto(). req->fd is
 * the server's socket, which end_request leaves open. */
int ss__dgram_get_request(ss__listener *l, ss__arrival *out);
void ss__dgram_turn_away(ss__listener *l, ss__arrival *arrival, const char *reply, size_t len);
ssize_t ss__dgram_recv(ss_request *req, void *buf, size_t size, void *spill,
                       size_t spill_size); /* never spills */
int ss__dgram_send_all(ss_request *req, const void *buf, size_t size);
int ss__dgram_flush_reply(ss_request *req);
/* Sizes a Unix datagram listener's send buffer for its replies (at bind). */
void ss__dgram_size_send_buffer(ss__listener *l);
void ss__dgram_end_request(ss_request *req);
/* Nothing to do: a datagram handler never waits for its client. */
void ss__dgram_interrupt(ss_request *req);

/* Adopting an inherited socket (transport/adopt.c). inspect reads what
 * fd is into l (transport, url.scheme and, for Unix, url.path, addr)
 * without touching it: -EBADF if it is not open, -ENOTSOCK if not a
 * socket, SS_ENOTSUPPORTED for a family or type no transport serves,
 * SS_ENOTLISTENING for a stream socket not listening or a datagram
 * socket not bound. take then makes it close-on-exec and non-blocking,
 * l's own (l->fd), adopted and bound. */
int ss__adopt_inspect(int fd, ss__listener *l);
int ss__adopt_take(int fd, ss__listener *l);

/* Socket activation (transport/activation.c): systemd's sd_listen_fds(3)
 * protocol, read without libsystemd. LISTEN_PID must be getpid(),
 * LISTEN_FDS = n (0 to 4096) descriptors from SD_LISTEN_FDS_START (3) to
 * 3+n-1, LISTEN_FDNAMES = their names, colon-separated (optional; a
 * missing or empty name is "unknown"). On the first successful call the
 * descriptors are made close-on-exec and the three variables unset (so
 * children do not inherit them); later calls return the same list (*out,
 * n entries, owned by the library for the process's life). Thread-safe
 * against itself; like any unsetenv(), not against another thread's
 * getenv(). Returns n, 0 when LISTEN_PID or LISTEN_FDS is absent (not
 * socket-activated), or a negative errno, the environment then left as it
 * was: -ESRCH when LISTEN_PID names another process, -EINVAL for a value
 * that is not a decimal pid / count or for more names than descriptors or
 * a name over 255 bytes, -EBADF when LISTEN_FDS counts a descriptor that
 * is not open, -ENOMEM. *msg (if msg is not NULL; a static string) says
 * which rule decided, for the caller's error message. It does not check
 * what the descriptors are: the caller adopts them (listening or
 * connected sockets). */
/* Readiness by sd_notify(3)'s protocol (transport/notify.c). The variable
 * a hand-over gives its successor along with NOTIFY_SOCKET: the socket
 * the successor's later messages go to, once its READY=1 reached us. */
#define SS__NOTIFY_NEXT "SS_NOTIFY_SOCKET_NEXT"
/* Sends `state` to the socket named `where` ("/path" or "@abstract").
 * Returns 1, or a negative errno (-EAFNOSUPPORT for another form). */
int ss__notify_send(const char *where, const char *state);
/* A close-on-exec, non-blocking Unix datagram socket to receive
 * notifications on, bound to a fresh name written to name (the value for
 * NOTIFY_SOCKET): on Linux an abstract one, with the senders' credentials
 * passed; elsewhere a file in a private directory. Returns the fd or a
 * negative errno. */
int ss__notify_open(char *name, size_t size);
/* Closes it and removes what ss__notify_open created on disk. */
void ss__notify_close(int *fd, const char *name);
/* Reads every waiting message; 1 if one from process `from` (where the
 * system tells who sent it) said READY=1, 0 if none did, or a negative
 * errno. Never waits. */
int ss__notify_take(int fd, pid_t from);

typedef struct ss__activated {
    int fd;
    char name[256];
} ss__activated;
int ss__activation_fds(const ss__activated **out, const char **msg);

#endif /* SS_TRANSPORT_H */
