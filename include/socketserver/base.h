/*
 * socketserver/base.h — what every other area header uses: the export macro,
 * the version, the library's object types, error codes and ss_strerror,
 * log levels.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/python-to-c.md
 * ("Conventions that apply everywhere"; log levels: docs/production.md,
 * "Logging").
 */
#ifndef SOCKETSERVER_BASE_H
#define SOCKETSERVER_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SS_API __attribute__((visibility("default")))
#else
#define SS_API
#endif

#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0

/* The library's objects, opaque to programs: a server (socketserver/server.h),
 * one request it serves (socketserver/handler.h), and a dispatcher, the table
 * that decides where handlers run (socketserver/dispatch.h). */
typedef struct ss_server ss_server;
typedef struct ss_request ss_request;
typedef struct ss_dispatcher ss_dispatcher;

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Library-specific error codes sit above the errno range (negated). */
#define SS_ERRBASE 10000
enum {
    SS_EBADURL = -(SS_ERRBASE + 1),       /* address string is not a valid URL */
    SS_ENOTSUPPORTED = -(SS_ERRBASE + 2), /* URL scheme known, transport not built in */
    SS_ESTATE = -(SS_ERRBASE + 3),        /* call not valid in the server's current state */
    SS_ERESOLVE = -(SS_ERRBASE + 4),      /* host name could not be resolved */
    /* transports (see socketserver/transport.h) */
    SS_ETRUNCATED = -(SS_ERRBASE + 10),   /* datagram longer than max_packet_size */
    SS_EUNNAMEDPEER = -(SS_ERRBASE + 11), /* reply to a datagram sender with no address */
    /* stream I/O (see socketserver/stream.h) */
    SS_ELINETOOLONG = -(SS_ERRBASE + 20), /* read_line: line longer than the caller's buffer */
    SS_EINCOMPLETE = -(SS_ERRBASE + 21),  /* read_exact: peer closed in mid-message */
    SS_EFINALFLUSH = -(SS_ERRBASE + 22),  /* output left at the end of a request was lost */
    /* address URLs (ss_server_create, ss_connect): each says what is wrong */
    SS_EURLNOSCHEME = -(SS_ERRBASE + 30),   /* no "scheme:" in front (e.g. "localhost:80") */
    SS_EURLSCHEME = -(SS_ERRBASE + 31),     /* "word:" not tcp udp tls unix unixgram fd systemd */
    SS_EURLNOPORT = -(SS_ERRBASE + 32),     /* tcp/udp/tls URL without ":PORT" */
    SS_EURLPORTSYNTAX = -(SS_ERRBASE + 33), /* port is not a decimal number */
    SS_EURLPORTRANGE = -(SS_ERRBASE + 34),  /* port above 65535 */
    SS_EURLBRACKET = -(SS_ERRBASE + 35),    /* "[" of an IPv6 address without its "]" */
    SS_EURLIPV6BARE = -(SS_ERRBASE + 36),   /* IPv6 address without brackets */
    SS_EURLHOST = -(SS_ERRBASE + 37),       /* host empty in [], or holding / ? # [ ] or space */
    SS_EURLNOPATH = -(SS_ERRBASE + 38),     /* unix:/unixgram: with no path or name */
    SS_EURLFD = -(SS_ERRBASE + 39),         /* fd: not a descriptor number (fd:3) */
    /* PROXY protocol (a listener behind a load balancer): the connection is refused */
    SS_EPROXY = -(SS_ERRBASE + 40),          /* invalid or missing PROXY protocol header */
    SS_EPROXYUNTRUSTED = -(SS_ERRBASE + 41), /* header from a source not trusted to send one */
    /* filters (socketserver/filter.h) */
    SS_ENOTSTREAM = -(SS_ERRBASE + 42), /* filters need a stream listener; all are datagram */
    /* hand-over to a successor (see socketserver/deploy.h) */
    SS_ESUCCESSOR = -(SS_ERRBASE + 60), /* the successor ended before it said it was ready */
    /* adopted listeners (fd:N, systemd:): see ss_server_create */
    SS_ENOTLISTENING = -(SS_ERRBASE + 50), /* not a listening stream / bound datagram socket */
    SS_ENOACTIVATION = -(SS_ERRBASE + 51), /* systemd: but no LISTEN_PID/LISTEN_FDS set */
    SS_ENOFDNAME = -(SS_ERRBASE + 52),     /* systemd:NAME: no passed socket has that name */
    SS_ELISTENPID = -(SS_ERRBASE + 53),    /* LISTEN_PID is another process's */
    SS_ELISTENENV = -(SS_ERRBASE + 54),    /* LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES malformed */
    SS_ELISTENFDS = -(SS_ERRBASE + 55),    /* LISTEN_FDS counts descriptors that are not open */
    /* TLS (see socketserver/tls.h) */
    SS_ETLS = -(SS_ERRBASE + 70),       /* the peer broke TLS after the handshake */
    SS_ETLSCERT = -(SS_ERRBASE + 71),   /* certificate, key or CA file unusable (see the log) */
    SS_ETLSNOCERT = -(SS_ERRBASE + 72), /* tls:// server activated without ss_server_set_tls */
    /* systemd:NAME with a name systemd refuses (fdname_is_valid): a
     * control or non-ASCII character, or ':' */
    SS_EURLFDNAME = -(SS_ERRBASE + 56),
};
/* True for every URL error: SS_EBADURL (no URL at all) and SS_EURL*. */
#define SS_IS_URL_ERROR(err)                                                                       \
    ((err) == SS_EBADURL || ((err) <= SS_EURLNOSCHEME && (err) >= SS_EURLFD) ||                    \
     (err) == SS_EURLFDNAME)

/* Describes any value returned by this library (a negative errno or an
 * SS_E* code). Never returns NULL; the string is static. Thread-safe. */
SS_API const char *ss_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Log levels (ss_server_set_log in socketserver/server.h routes messages)  */
/* ------------------------------------------------------------------------ */

/* Library messages (accept failures, default handle_error reports, ...).
 * Levels, least to most severe. */
typedef enum ss_log_level {
    SS_LOG_DEBUG,
    SS_LOG_INFO,
    SS_LOG_WARNING,
    SS_LOG_ERROR,
} ss_log_level;

/* Receives every library message for a server, already formatted (no
 * trailing newline), with the `data` given at creation. May run in the
 * serving thread or in a handler's thread; must be thread-safe when a
 * concurrent dispatcher is used. */
typedef void (*ss_log_fn)(ss_server *srv, ss_log_level level, const char *message, void *data);

/* "debug", "info", "warning" or "error"; "unknown" for a value outside
 * ss_log_level (never NULL). The string is static: do not free it. */
SS_API const char *ss_log_level_name(ss_log_level level);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_BASE_H */
