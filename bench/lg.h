/* loadgen's internal interfaces: one small purpose per file.
 *   lg_target.c  URL -> address, the loopback-only rule, socket creation
 *   lg_engine.c  the epoll loop: connections, requests, reply verification
 *   lg_stats.c   latency samples and percentiles
 *   lg_proc.c    server CPU time, RSS, threads and processes from /proc
 *   lg_proxy.c   the PROXY protocol header (--proxy-v1, --proxy-v2)
 *   lg_tls.c     the TLS client for tls:// targets (built with OpenSSL only)
 *   loadgen.c    options and the report */
#ifndef BENCH_LG_H
#define BENCH_LG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- target ---- */
typedef struct lg_target {
    int family;   /* AF_INET, AF_INET6, AF_UNIX */
    int socktype; /* SOCK_STREAM or SOCK_DGRAM */
    bool tls;     /* tls://: TCP with TLS on top */
    struct sockaddr_storage addr;
    socklen_t len;
} lg_target;

/* Parses tcp://HOST:PORT, tcp://[V6]:PORT, tls://... (TCP with TLS),
 * udp://..., unix:/path or unixgram:/path. Writes a reason into why and returns -1 for a malformed
 * URL or for any address outside 127.0.0.0/8 and ::1. */
int lg_target_parse(const char *url, lg_target *out, char *why, size_t why_size);

/* A non-blocking, close-on-exec socket for connection slot `slot` of the
 * target: TCP over IPv4 from a source address of its own in 127.0.0.0/8,
 * Unix datagram sockets bound so replies can reach them. Returns the fd
 * or -errno. */
int lg_target_socket(const lg_target *t, unsigned slot);

/* ---- latency samples ---- */
typedef struct lg_samples {
    uint64_t *ns;
    size_t count, cap;
    bool full; /* stopped recording at the cap */
} lg_samples;

void lg_samples_add(lg_samples *s, uint64_t ns);
/* Sorts the samples; then lg_samples_pct(s, 99.9) gives that percentile. */
void lg_samples_sort(lg_samples *s);
uint64_t lg_samples_pct(const lg_samples *s, double pct);
void lg_samples_free(lg_samples *s);

/* ---- server process tree ---- */
typedef struct lg_proc {
    bool ok;
    double cpu_s; /* user+system of the tree, children reaped included */
    long rss_kb;  /* sum of VmRSS over the tree */
    long pss_kb;  /* sum of Pss (shared pages divided), 0 if unreadable */
    long threads; /* sum of threads over the tree */
    long procs;   /* processes in the tree */
} lg_proc;

/* Samples pid and all its live descendants. ok is false if pid is gone. */
lg_proc lg_proc_sample(pid_t pid, bool memory);

/* ---- PROXY protocol header ---- */
#define LG_PROXY_MAX 232 /* v2 over AF_UNIX: 16 + 2 * 108; v1 needs 108 */

/* Writes into out (LG_PROXY_MAX bytes) the header of `version` (1: text,
 * 2: binary, command PROXY, family STREAM) naming the connected stream
 * socket fd's own address as the source and its peer as the destination.
 * Returns its length, or -errno if either address cannot be read. */
int lg_proxy_header(int version, int fd, unsigned char *out);

/* ---- TLS client (lg_tls.c, when built with OpenSSL: LG_HAVE_TLS) ---- */
struct ssl_st; /* OpenSSL's SSL */
typedef struct lg_tls lg_tls;

#define LG_TLS_FAILED     (-1)
#define LG_TLS_WANT_READ  (-2) /* call again when the socket is readable */
#define LG_TLS_WANT_WRITE (-3) /* ... when it is writable */

/* A client context for `slots` connection slots; with `resume`, each slot
 * offers the last session ticket it was given. Returns 0 or -ENOMEM. */
int lg_tls_create(lg_tls **out, unsigned slots, bool resume);
void lg_tls_free(lg_tls *t);
/* A client session over the connected socket fd of connection slot `slot`,
 * or NULL. */
struct ssl_st *lg_tls_open(lg_tls *t, int fd, unsigned slot);
/* 1 once the handshake is done (*resumed: a session was resumed), or one
 * of the LG_TLS_ codes. */
int lg_tls_handshake(struct ssl_st *ssl, bool *resumed);
/* Bytes written (all of len, or an LG_TLS_ code: retry with the same
 * arguments). */
ssize_t lg_tls_send(struct ssl_st *ssl, const void *buf, size_t len);
/* Bytes read, 0 on the peer's close_notify, or an LG_TLS_ code. */
ssize_t lg_tls_recv(struct ssl_st *ssl, void *buf, size_t len);
/* True if OpenSSL holds bytes already read from the socket: epoll will not
 * report them. */
bool lg_tls_pending(struct ssl_st *ssl);
/* Sends close_notify if `clean`, then frees the session. */
void lg_tls_close(struct ssl_st *ssl, bool clean);

/* ---- the run ---- */
typedef struct lg_config {
    lg_target target;
    int connections;
    size_t size;
    int depth; /* requests in flight per connection */
    bool per_request;
    int think_ms;
    int proxy_version; /* 0: none; 1 or 2: a PROXY header opens every connection */
    bool tls_resume;   /* tls://: offer each slot's last session on its next connection */
    double warmup_s, duration_s, deadline_s;
    pid_t server_pid;
} lg_config;

typedef struct lg_result {
    uint64_t requests; /* completed inside the window */
    uint64_t errors, mismatches, lost, connects, connect_errors;
    uint64_t starved, unconnected;
    uint64_t resumed; /* TLS handshakes that resumed a session */
    double window_s;
    lg_samples lat;
    lg_proc server_start, server_end;
    double client_cpu_s;
} lg_result;

/* Runs the load and fills res. Returns 0, or -errno if it could not start
 * (e.g. no epoll). Always returns by cfg->deadline_s. */
int lg_run(const lg_config *cfg, lg_result *res);

int64_t lg_now_ns(void);

#endif
