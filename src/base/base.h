/* The base layer's private header (src/base/): URL parsing and address
 * formatting, close-on-exec descriptors, library messages. Uses nothing
 * but libc and the public header. */
#ifndef SS_BASE_H
#define SS_BASE_H

#include "socketserver.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

typedef enum ss__scheme {
    SS__SCHEME_TCP,
    SS__SCHEME_UDP,
    SS__SCHEME_UNIX,
    SS__SCHEME_UNIXGRAM,
    SS__SCHEME_TLS, /* tcp with TLS on every connection (filter/tls.c) */
    /* Adopted sockets (core/listener.c): no transport of their own, the
     * socket says which (its listener's url.scheme becomes that one). */
    SS__SCHEME_FD,      /* "fd:N": path holds N's digits */
    SS__SCHEME_SYSTEMD, /* "systemd:" or "systemd:NAME": path holds NAME ("" = all) */
} ss__scheme;

/* A parsed URL. For tcp/udp/tls: host (no brackets, "" = any) and port.
 * For unix/unixgram: path; a leading '@' marks a Linux abstract name. */
typedef struct ss__url {
    ss__scheme scheme;
    char host[256];
    char port[8];
    char path[256];
} ss__url;

int ss__url_parse(const char *text, ss__url *out);
/* tcp, udp and tls: a host and a port, not a path. */
bool ss__scheme_inet(ss__scheme scheme);
const char *ss__scheme_name(ss__scheme scheme);

/* A client's name: "127.0.0.1:5555", "[::1]:5555", a Unix path, or ""
 * (unnamed peer). It ends up in logs and a Unix name is the client's
 * choice, so its bytes outside printable ASCII, and '\\', are written
 * \xHH. */
int ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
/* The same, a Unix name as it is (a listener's own path, to be used). */
int ss__format_address(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
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
/* An IP client's key ('4' or '6' and its address, the port left out; an
 * IPv4-mapped IPv6 address is its IPv4 one). -ENOTSUP for other families. */
int ss__ip_client_key(const struct sockaddr_storage *peer, ss__client_key *key);

/* A socket-activation name as systemd accepts one (its fdname_is_valid,
 * src/basic/fd-util.c): printable ASCII (0x20 to 0x7e) but ':', the
 * separator of LISTEN_FDNAMES; `len` bytes, at most 255. */
bool ss__fdname_valid(const char *name, size_t len);

/* base/fd.c: close-on-exec descriptors everywhere. */
int ss__socket(int domain, int type, int protocol);
int ss__accept(int fd, struct sockaddr *sa, socklen_t *len);
int ss__pipe(int fds[2]); /* both ends close-on-exec and non-blocking */
void ss__close(int *fd);  /* close if >= 0, then set to -1; keeps errno */
/* The same for a descriptor other threads may read at any time (a
 * listener's, through ss_server_listener_fileno): it becomes -1 before
 * it is closed, atomically, and is read with ss__read_published. */
void ss__close_published(int *fd);
int ss__read_published(const int *fd);

/* base/log.c: format one library message and hand it to sink (NULL: one
 * line on stderr for warnings and errors), with srv and data passed on as
 * they are: the caller says where its messages go. */
void ss__log(ss_log_fn sink, ss_server *srv, void *data, ss_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#endif /* SS_BASE_H */
