/*
 * socketserver/transport.h — what differs between transports (the URL forms
 * are at ss_server_create, socketserver/server.h): datagram requests, Unix
 * socket files, peer credentials.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/transports.md.
 */
#ifndef SOCKETSERVER_TRANSPORT_H
#define SOCKETSERVER_TRANSPORT_H

#include <socketserver/base.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Transports: datagram requests, Unix socket files, peer credentials       */
/* ------------------------------------------------------------------------ */

/*
 * Datagram servers (udp://, unixgram:) turn each datagram into one request
 * (Python's DatagramRequestHandler, for every handler): ss_request_recv and
 * the stream reader read the packet and then return 0; ss_request_send_all
 * and the stream writer append to a reply, which is sent to the sender in
 * one datagram after finish. The reply holds whatever the handler wrote,
 * even if it then failed. Unlike Python, an empty reply sends nothing
 * unless the handler calls ss_request_force_reply. A reply that cannot be
 * sent reaches handle_error like a handler's error: SS_EUNNAMEDPEER when
 * the sender has no address (an unbound Unix datagram socket), -ETIMEDOUT
 * when the request timeout passes with the receiver's queue still full,
 * -ENOBUFS at once when the server's own send buffer is full or its peer
 * holds its share of it (Linux, unixgram: a client that never reads its
 * replies; docs/transports.md). Without a request timeout the reply waits
 * for room in the receiver's queue, as a blocking sendto would.
 */

/* Options of the server (set before bind or activate, as each says) */

/* Largest datagram received whole, in bytes (Python's max_packet_size).
 * Default 8192. A longer datagram is cut to this size and marked
 * truncated (see ss_request_truncated). Replies may be as long as this or
 * 65536 bytes, whichever is more. Set before activate. Returns 0, -EINVAL
 * if size is 0 or above 16 MiB or the server is not a datagram server, or
 * SS_ESTATE after activate. */
SS_API int ss_server_set_max_packet_size(ss_server *srv, size_t size);

/*
 * Permission bits (e.g. 0660) for the socket file of a unix: or unixgram:
 * PATH server: the file gets exactly these bits, whatever the umask, and
 * never more than these, not even for an instant. On Linux the file is
 * created with them (fchmod on the unbound socket, bind in a helper thread
 * with a private umask of 0: the process umask never changes). Elsewhere,
 * or if unshare(CLONE_FS) is refused, it is created under the umask and
 * the missing bits are then added to that very file, never through a
 * symbolic link (docs/transports.md). Default: what the process umask
 * gives. Returns 0, -EINVAL for bits outside 07777 or a server without a
 * socket file (inet, abstract), or SS_ESTATE after bind.
 *
 * Socket-file rules for PATH servers (Python has none of them):
 *   - bind replaces a stale socket file (one no socket is bound to: both a
 *     datagram and a stream connect to it are refused); a file any socket
 *     is bound to, listening or not yet, stays untouched and bind fails
 *     with -EADDRINUSE; a path that is not a socket is never deleted: bind
 *     fails with -EEXIST;
 *   - if right after bind the path no longer names a socket file (it was
 *     replaced), bind fails with -ELOOP for a symbolic link, -EEXIST for
 *     another file, and leaves it alone;
 *   - ss_server_close removes the socket file this server created, if
 *     the path still names that same file, and only in the process that
 *     bound it (a forked child that closes its copy leaves it).
 */
SS_API int ss_server_set_unix_mode(ss_server *srv, mode_t mode);

/* What a handler asks of a datagram or Unix request */

/* The datagram this request was made of (Python's self.request[0]), and
 * its length in *len if len is not NULL. Valid until the request ends;
 * owned by the request. For a stream request: NULL, length 0. */
SS_API const void *ss_request_packet(const ss_request *req, size_t *len);

/* True if the datagram was longer than max_packet_size and arrived cut
 * short (detected with MSG_TRUNC; Python truncates silently). Then every
 * ss_request_recv (and stream read) returns SS_ETRUNCATED instead of data,
 * so a handler that ignores this call fails rather than act on part of a
 * message; ss_request_packet still shows the bytes that arrived. A handler
 * that returns the error gets it reported by handle_error. False for
 * stream requests. */
SS_API bool ss_request_truncated(const ss_request *req);

/* Sends a reply datagram after finish even if the handler wrote nothing
 * (then it is empty). Returns 0, or -ENOTSUP for a stream request. */
SS_API int ss_request_force_reply(ss_request *req);

/* Credentials of the process at the other end of a unix: stream request,
 * taken by the kernel when it connected (SO_PEERCRED on Linux; getpeereid
 * on the BSDs and macOS, where *pid is -1). Any pointer may be NULL.
 * Returns 0, -ENOTSUP for other transports or where the OS offers no way,
 * or a negative errno. Call from the handler. */
SS_API int ss_request_peer_credentials(const ss_request *req, pid_t *pid, uid_t *uid, gid_t *gid);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_TRANSPORT_H */
