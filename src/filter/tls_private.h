/* The TLS filter's own header (src/filter/tls*.c, built with OpenSSL):
 * a server's settings and current certificate (tls_config.c), and one
 * connection's OpenSSL session over the layer below (tls_io.c), which
 * the filter's slots (tls.c) drive.
 *
 * How OpenSSL meets the layer below: its BIO reads from and writes to
 * two buffers in memory and never waits; the filter's calls move bytes
 * between those buffers and the layer below (ss_filter_recv_next and
 * ss_filter_send_next), with no lock held, so each of OpenSSL's waits is
 * the library's wait: the request timeout holds, a pool fiber parks, a
 * sync wait ends on a stop. Every OpenSSL call runs under the session's
 * `io` lock and never waits inside it, which lets one thread read while
 * another writes (socketserver/stream.h) although an SSL object is not
 * thread-safe, and keeps OpenSSL's thread-local error queue to the fiber
 * that made the call. */
#ifndef SS_FILTER_TLS_PRIVATE_H
#define SS_FILTER_TLS_PRIVATE_H

#include "filter/filter.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- tls_config.c: a server's settings and certificate ---- */

/* What every process forked from the server shares (tls_config.c). */
struct ss__tls_shared;

struct ss__tls_config {
    pthread_mutex_t reload_lock;          /* one reload at a time; guards the file names */
    pthread_rwlock_t ctx_lock;            /* guards ctx: new sessions read it, a reload swaps it */
    SSL_CTX *ctx;                         /* the current certificate and settings */
    char *cert_file, *key_file, *ca_file; /* key_file NULL: in cert_file */
    int verify;                           /* ss_tls_verify */
    int min_version;                      /* SS_TLS_1_2 or SS_TLS_1_3 */
    int handshake_timeout_ms;
    /* Set at activate: the server has tls:// listeners, and TLS goes on
     * those only; false: on every stream listener (one tcp:// or unix:
     * listener given TLS, a connection served in per-connection mode). */
    bool tls_listeners_only;
    unsigned char *alpn; /* the offered protocols in wire form (RFC 7301); NULL: none */
    size_t alpn_len;
    /* Worker processes and forking's children are forks of the process
     * that reloads: each reload's file names and generation go in memory
     * they all share (made before any fork), and a process whose ctx is
     * of an older generation loads the files again before its next
     * session (ss__tls_config_follow). */
    struct ss__tls_shared *shared;
    atomic_uint seen; /* shared->seq when this process's ctx was loaded */
};

/* Checks opts and builds the config with its first SSL_CTX. Returns 0 and
 * *out, -EINVAL, SS_ETLSCERT (the reason logged on srv), or -ENOMEM. */
int ss__tls_config_new(ss_server *srv, const ss_tls_options *opts, struct ss__tls_config **out);
/* A new SSL_CTX from the files (NULL: the ones named last), swapped in
 * when it loads. Returns 0, SS_ETLSCERT (logged) or -ENOMEM. */
int ss__tls_config_reload(ss_server *srv, struct ss__tls_config *cfg, const char *cert_file,
                          const char *key_file);
/* A new session on the current certificate, or NULL (out of memory); a
 * reload made by another process is followed first. */
SSL *ss__tls_config_session(ss_server *srv, struct ss__tls_config *cfg);
/* When another process (the supervisor of worker processes) has reloaded
 * since this one last loaded, loads the files it loaded; on failure keeps
 * the certificate it has, logs why and counts tls_reload_failures. One
 * atomic load when nothing changed. Any thread. */
void ss__tls_config_follow(ss_server *srv, struct ss__tls_config *cfg);
/* The filter's free_config. */
void ss__tls_config_free(void *config);

/* ---- tls_shared.c: the reloads all of a server's processes see ---- */

/* The mapping, with the first names (key_file NULL: in cert_file).
 * Returns 0 or -ENOMEM. */
int ss__tls_shared_new(struct ss__tls_shared **out, const char *cert_file, const char *key_file);
void ss__tls_shared_free(struct ss__tls_shared *sh);
/* Whether the names fit (each shorter than PATH_MAX, as a path the
 * system can open is). */
bool ss__tls_shared_fits(const char *cert_file, const char *key_file);
/* Its sequence number now: a change says another reload was published. */
unsigned ss__tls_shared_seq(const struct ss__tls_shared *sh);
/* Publishes the names a reload has just loaded; returns the new sequence
 * number (two more than the last). */
unsigned ss__tls_shared_publish(struct ss__tls_shared *sh, const char *cert_file,
                                const char *key_file);
/* Copies of the names last published (*key_file NULL: in the
 * certificate file) and their sequence number. Returns 0, -ENOMEM, or
 * -EAGAIN while a writer stays in its section (its process killed). */
int ss__tls_shared_names(const struct ss__tls_shared *sh, char **cert_file, char **key_file,
                         unsigned *seq);
/* OpenSSL's reason for the last failure on this thread (its error queue,
 * then emptied), or `otherwise` when the queue is empty. */
const char *ss__tls_reason(char *buf, size_t size, const char *otherwise);

/* ---- tls_io.c: one connection's session over the layer below ---- */

/* Bytes between OpenSSL and the layer below: [start, end) of data. */
typedef struct ss__tls_bytes {
    unsigned char *data;
    size_t start, end, cap;
} ss__tls_bytes;

struct ss__tls_state {
    ss_filter_ctx *ctx;
    SSL *ssl;
    pthread_mutex_t io;     /* guards ssl, in.start, out, eof, reason: never held in a wait */
    pthread_mutex_t wire;   /* held by whoever sends to the layer below, in a wait too */
    ss__tls_bytes in;       /* read from below, not yet taken by OpenSSL; only the
                               reader adds to it (at end, outside the lock) */
    ss__tls_bytes out;      /* records OpenSSL wrote, not yet taken to be sent */
    ss__tls_bytes wire_buf; /* taken from out, being sent (the wire holder's) */
    bool eof;               /* the layer below ended */
    bool no_memory;         /* the BIO could not grow out */
    atomic_bool broken;     /* no close_notify: the connection failed (either thread) */
    bool established;       /* the handshake completed */
    char reason[160];       /* OpenSSL's reason for the last failure, for the log */
    /* what the handler may ask (tls.c), set once the handshake is done */
    const char *version;
    char *alpn, *server_name, *peer_subject;
};

/* Sets up st for ctx over a new session ssl (owned from here on).
 * Returns 0 or -ENOMEM (ssl freed). */
int ss__tls_io_init(struct ss__tls_state *st, ss_filter_ctx *ctx, SSL *ssl);
void ss__tls_io_free(struct ss__tls_state *st);
/* The handshake, every wait bounded by deadline (monotonic ms). Returns
 * 0, SS_ETLS (st->reason says why), or the layer below's error. */
int ss__tls_io_handshake(struct ss__tls_state *st, int64_t deadline);
/* Decrypted bytes: the count (> 0), 0 at the end of the stream (a
 * close_notify, or the end of the layer below between records), SS_ETLS
 * (mid-record end, a protocol error), or the layer below's error. */
ssize_t ss__tls_io_read(struct ss__tls_state *st, void *buf, size_t size);
/* Encrypts and sends all size bytes: 0, SS_ETLS, or the layer below's error. */
int ss__tls_io_write(struct ss__tls_state *st, const void *buf, size_t size);
/* Sends close_notify (not waiting for the peer's), within deadline. */
void ss__tls_io_shutdown(struct ss__tls_state *st, int64_t deadline);
/* The filter's pending slot: it holds input the next read returns
 * without waiting (ss_filter.pending). */
bool ss__tls_io_pending(struct ss__tls_state *st);
/* A copy of st->reason (why the last call failed), from any thread. */
void ss__tls_io_reason(struct ss__tls_state *st, char *buf, size_t size);

#endif /* SS_FILTER_TLS_PRIVATE_H */
