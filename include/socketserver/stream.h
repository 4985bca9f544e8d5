/*
 * socketserver/stream.h — the buffered reader and writer of every request,
 * Python's StreamRequestHandler.rfile and wfile, and the server options
 * that size them.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/tutorial.md
 * (section 8, "Reading and writing: rfile and wfile in C").
 */
#ifndef SOCKETSERVER_STREAM_H
#define SOCKETSERVER_STREAM_H

#include <socketserver/base.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Stream I/O: Python's StreamRequestHandler.rfile and wfile                */
/* ------------------------------------------------------------------------ */

/*
 * Every request has a buffered reader and a writer on top of recv and
 * send_all, so they work the same over every transport: on a datagram
 * request the reader reads the packet and the writer fills the reply.
 * Their buffers are allocated on first use and freed with the request; a
 * handler that only calls recv/send_all pays nothing for them.
 *
 * Reads and writes go through the request timeout (ss_request_set_timeout):
 * a wait with no progress for that long fails with -ETIMEDOUT, and the
 * -ECANCELED rule of the sync dispatcher (ss_request_recv) applies to every
 * read and to every write that has to wait.
 *
 * Threads: the reader (ss_request_read_*, ss_request_recv) and the writer
 * (ss_request_write, ss_request_flush, ss_request_send_all) share no state,
 * so one thread may read while another writes. Two threads must not read,
 * or write, at the same time.
 */

/* Size of the read buffer of each request accepted afterwards, in bytes
 * (Python's rbufsize). Default 8192. Any time. Returns 0, or -EINVAL if
 * size is 0 or above 1 GiB. */
SS_API int ss_server_set_read_buffer_size(ss_server *srv, size_t size);

/* Size of the write buffer of each request accepted afterwards, in bytes
 * (Python's wbufsize). 0, the default as in Python, means unbuffered:
 * every ss_request_write is sent completely before it returns. With a
 * buffer, output collects until it is full, ss_request_flush is called or
 * the request ends. Any time. Returns 0, or -EINVAL above 1 GiB. */
SS_API int ss_server_set_write_buffer_size(ss_server *srv, size_t size);

/* Sets TCP_NODELAY on each TCP connection accepted afterwards (Python's
 * disable_nagle_algorithm): a send goes out at once instead of waiting
 * for the peer to acknowledge earlier data. Turn it on when every send is
 * a complete reply (the writer flushed once per message, or one send_all
 * per answer); a handler that answers in many small pieces then sends
 * many small packets. Default off. Other transports ignore it. Any time.
 * Linux: a connection takes the option from its listener, so it is set
 * there (by the first accept after a change) and a pool's connections
 * need no call of their own; a listener another process shares (adopted,
 * handed over, worker processes) is left alone, and its connections each
 * get the option as before (so a successor of ss_server_hand_over with
 * it off keeps what its predecessor gave the listener: give both the
 * same value). With worker processes (ss_server_set_processes) a change
 * made once serve_forever has forked them does not reach them: each keeps
 * the options it was forked with (dispatch.h), and only a replacement
 * forked afterwards gets the new value; set it before serving. */
SS_API void ss_server_set_tcp_nodelay(ss_server *srv, bool on);

/*
 * Reads one line: bytes up to and including the next '\n', copied to buf
 * and followed by a '\0' (the line itself may contain NUL bytes: use the
 * returned length). The longest line accepted is size - 1 bytes, newline
 * included. Returns:
 *   > 0   the line's length. At end of stream, a last line without '\n'
 *         is returned as it is (as Python's readline does).
 *   0     the peer closed and nothing is left.
 *   SS_ELINETOOLONG  no '\n' within size - 1 bytes. buf holds those
 *         bytes (NUL-terminated, for a log message); the rest of that line,
 *         through its '\n', is discarded by the next read of any kind, so
 *         the handler can answer with an error and read the next line.
 *   < 0   -ETIMEDOUT, -ECONNRESET, ... A line cut short by an error is
 *         not lost: it stays buffered and the next call goes on with it.
 * The read buffer grows to size - 1 bytes if it is smaller, so the limit
 * the caller picks also bounds the memory a hostile peer can make it use.
 * -EINVAL if size < 2, -ENOMEM if the buffer cannot grow.
 */
SS_API ssize_t ss_request_read_line(ss_request *req, char *buf, size_t size);

/*
 * Reads exactly `size` bytes into buf, waiting for as many packets as it
 * takes (Python's rfile.read(size)). Returns size; 0 if the peer closed
 * before the first byte (a clean end between messages); SS_EINCOMPLETE if
 * it closed after some but not all of them; or a negative errno. An error
 * after part of the message was consumed (a timeout, a reset) leaves the
 * stream at an unknown position: every later read returns that same error.
 */
SS_API ssize_t ss_request_read_exact(ss_request *req, void *buf, size_t size);

/*
 * Reads what is available, at most `size` bytes, waiting only if nothing
 * is (Python's rfile.read1). Returns the count (> 0), 0 at end of stream,
 * or a negative errno. Unlike ss_request_recv it reads ahead into the
 * request's buffer, so many small reads cost few system calls.
 */
SS_API ssize_t ss_request_read_some(ss_request *req, void *buf, size_t size);

/*
 * Writes `size` bytes (Python's wfile.write). Unbuffered (the default),
 * it is ss_request_send_all: complete before it returns. Buffered, the
 * bytes are copied and sent when the buffer fills, on ss_request_flush, on
 * ss_request_send_all, or after finish. Returns size, or a negative errno
 * (-EINVAL if size exceeds SSIZE_MAX). If a send of buffered output fails,
 * what was buffered is lost and every later write, flush and send_all
 * returns the same error.
 */
SS_API ssize_t ss_request_write(ss_request *req, const void *buf, size_t size);

/*
 * Sends whatever the writer holds. Returns 0 (also when nothing was
 * pending) or a negative errno as ss_request_write describes.
 *
 * After finish, the server flushes what is left by itself. If that fails
 * because the peer has gone (Python bpo-14574: the client read its answer
 * and left), the request still counts as handled: handle_error receives
 * SS_EFINALFLUSH, which the default hook logs at SS_LOG_DEBUG, so it is
 * silent unless a log function asks for debug messages. A handler that
 * must know whether its last bytes left should call ss_request_flush at
 * the end of handle and look at the result.
 */
SS_API int ss_request_flush(ss_request *req);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_STREAM_H */
