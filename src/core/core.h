/* The core layer's private header (src/core/): the server's life and
 * loop, a request's life, the buffered reader/writer, admission (limits,
 * per-client counts, the accept policy). The core picks the transport and
 * the dispatcher and joins them: a dispatcher reaches a request's
 * transport only through the request (req->listener->transport), and the core only
 * through the host table it is lent (srv->host). */
#ifndef SS_CORE_H
#define SS_CORE_H

#include "dispatch/dispatch.h"

/* core/backends.c: the transport table for a scheme, or NULL if that
 * transport is not built in. */
const ss__transport *ss__transport_for(ss__scheme scheme);

/* core/listener.c: the server's listeners. add_parsed opens one more
 * for a parsed URL (its socket made, not bound). bind binds those not
 * bound yet, in order; activate listens on them (adopted ones are
 * listening already); close closes each (removing the socket files this
 * process created); free, with the server's memory, what is left. */
int ss__listener_add_parsed(ss_server *srv, const ss__url *url);
/* Per-connection mode (core/connection.c): a listener that listens on
 * nothing (fd -1), with the transport of `scheme`, named after the local
 * end of the connected socket fd. */
int ss__listener_add_connection(ss_server *srv, ss__scheme scheme, int fd);
int ss__listeners_bind(ss_server *srv);
int ss__listeners_activate(ss_server *srv);
void ss__listeners_close(ss_server *srv);
void ss__listeners_free(ss_server *srv);

/* core/object.c: the server object the core files share. */
void ss__server_ref(ss_server *srv);
void ss__server_unref(ss_server *srv);
void ss__server_wake(const ss_server *srv); /* async-signal-safe */
/* A server with its handler, wake pipe and accept policy but no socket
 * (core/server.c): ss_server_create and per-connection mode build on it.
 * Returns 0 (*out set), -EINVAL for a bad handler table, or an errno. */
int ss__server_alloc(ss_server **out, const ss_dispatcher *dispatcher, const ss_handler *handler,
                     void *data);
bool ss__server_stop_requested(const ss_server *srv);
bool ss__server_on_serving_thread(const ss_server *srv); /* inside serve_forever */
/* Empties the wake-up pipe: only from the thread that runs the loop. */
void ss__server_drain_wake(const ss_server *srv);
bool ss__server_serving(ss_server *srv); /* serve_forever is running */
/* Sleeps until the wake-up pipe is written to or timeout_ms (-1: no
 * limit) passes, and empties the pipe. */
void ss__server_sleep(ss_server *srv, int timeout_ms);

/* core/request.c: one request's life. */
/* The request for an admitted client: takes the arrival's packet and the
 * place (counted in active by admission, and its client's place), links
 * it live. NULL when out of memory (the arrival and the place are then
 * untouched). */
ss_request *ss__request_new(ss_server *srv, ss__arrival *arrival, const ss__place *place);
/* setup -> handle -> finish, routing the first error to handle_error.
 * Returns that error (0 on success). */
int ss__request_run(ss_request *req);
/* Ends a request: the one word for it everywhere ("end"). The
 * transport's end_request (Python's shutdown_request), counted closed,
 * its place under the limits given back, freed, its server ref dropped. */
void ss__request_end(ss_request *req);
/* Drain: interrupt every live request of this process (transport slot). */
void ss__requests_interrupt(ss_server *srv);
/* A request the dispatcher could not start (no thread, no process):
 * reported once to handle_error as a handler failure would be; the caller
 * then ends it with ss__request_end(). */
void ss__request_fail(ss_request *req, int err);
/* The forking parent's side of a request a child now serves: drops this
 * process's copy with close() only, never shutdown(), which would end the
 * child's conversation too (a datagram request's socket is the server's
 * own and stays open). Counts nothing: the child's exit does. Moves the
 * request's place into *place, for ss__place_give_back once the child is reaped.
 * Frees req and drops its server reference. */
void ss__request_hand_off(ss_request *req, ss__place *place);

/* core/idle.c: drain's idle close (limits.h says what idle is). */
void ss__idle_init(ss_request *req); /* BUSY, nothing read, the server's flag */
/* Before a wait for the first byte of a new message after a complete
 * exchange: SS__IDLE_READ to read, an idle wait (a sync stop ends it at
 * once); SS__IDLE_READ_BUSY to read as a busy request (its next message
 * is already there while idle requests are being closed); 0 if the
 * request must end now (a drain is closing idle requests, a sync stop is
 * pending, or this one was closed): the read returns 0; or a negative
 * errno for the read to return (a forked child's watched wait timed out). */
enum { SS__IDLE_READ = 1, SS__IDLE_READ_BUSY = 2 };
int ss__idle_begin(ss_request *req);
/* An idle wait (SS__IDLE_READ) ended with -ECANCELED: a sync stop. True
 * when that closes the request as idle (counted in idle_closed; the read
 * returns 0, end of stream, as a drain's idle close); false if the
 * application keeps idle requests (the read returns -ECANCELED). */
bool ss__idle_stopped(ss_request *req);
/* After that wait: false if a drain closed the request meanwhile (the
 * read then returns 0, whatever it got). */
bool ss__idle_end(ss_request *req);
/* Drain start: ends every idle request of this process and has the
 * dispatcher end those only it can reach (forked children); from now on
 * a request ends as it becomes idle. Nothing if the application keeps
 * idle requests (ss_server_set_drain_close_idle(srv, false)). */
void ss__idle_close_all(ss_server *srv);

/* core/bufio.c: the buffered reader/writer as the core and recv/send_all see
 * it. ("bufio", because ss__stream_* names the stream transports' slots.) */
void ss__bufio_init(ss_request *req);                            /* buffer sizes */
ssize_t ss__bufio_recv(ss_request *req, void *buf, size_t size); /* buffered bytes first */
int ss__bufio_flush(ss_request *req);       /* pending output, or the sticky error */
int ss__bufio_final_flush(ss_request *req); /* after finish; 0 if nothing was pending */
void ss__bufio_free(ss_request *req);
/* The handler wrote bytes (all handed on, or some left in the writer):
 * the idle rule's exchange (req->phase). */
void ss__bufio_note_written(ss_request *req);

/* core/admission.c: the next client off the listener, admitted and made
 * a request (NULL: none was waiting, or it was turned away, shed or
 * refused by verify_request: counted and closed). Any thread. */
ss_request *ss__admit_next(ss__listener *l);
/* The same, saying why there is no request: the host's accept slot
 * (dispatch/dispatch.h says what it returns). */
int ss__admit_take(ss__listener *l, ss_request **out);
/* The host's accept_room: a stop, the hand-over, the accept back-off or
 * max_connections says no client should be taken now. Any thread. */
bool ss__accept_room(ss_server *srv);
/* The same for a client already taken off a socket (per-connection mode,
 * core/connection.c), arrival->listener set: consumes the arrival. */
ss_request *ss__admit(ss_server *srv, ss__arrival *arrival);
/* The accept policy (core/admission.c): the reserve descriptor it sheds
 * with, and the pause while it backs off. */
int ss__accept_policy_init(ss_server *srv);
void ss__accept_policy_close(ss_server *srv);
int ss__accept_pause_ms(const ss_server *srv); /* > 0 while backing off */

/* core/server.c: drain's listeners (the restart rule). Begin before the
 * first step; each step takes the clients waiting in each stream
 * listener's backlog through admission (so they are served) and returns
 * true once none is left and every stream listener is closed, false while
 * a limit leaves no room (call again when requests end). Datagram
 * listeners keep their socket. close_listeners closes the stream ones
 * unconditionally (drain's deadline). */
void ss__drain_listeners_begin(ss_server *srv);
bool ss__drain_listeners(ss_server *srv);
void ss__close_listeners(ss_server *srv);

/* core/limits.c */
typedef enum ss__refusal {
    SS__ADMITTED,
    SS__REFUSE_VERIFY,     /* verify_request said no */
    SS__REFUSE_LIMIT,      /* over max_connections, with an overload reply */
    SS__REFUSE_PER_CLIENT, /* over max_per_client */
} ss__refusal;
/* False while at max_connections without an overload reply. */
bool ss__limits_have_room(ss_server *srv);
/* Before a client is taken off the socket: with max_connections set and
 * no overload reply, its place in count.active is taken now (the client
 * then cannot be refused for the limit once taken, nor can two threads
 * taking clients at once pass it); false, nothing taken, at the limit.
 * True otherwise (nothing to reserve). Any thread. */
bool ss__limits_reserve(ss_server *srv, ss__place *place);
/* Checks a client, before any request exists, against the limits; on
 * admission *place holds its place in count.active and its client's
 * place. On refusal the caller gives back what *place holds (a
 * reservation). Any thread. */
ss__refusal ss__limits_admit(ss_server *srv, const ss__arrival *arrival, ss__place *place);
/* The request's client turned out to be another (named by a filter:
 * PROXY): its place moves to that client's entry. False, the place
 * unchanged, when that client is already at max_per_client. */
bool ss__place_move(ss_server *srv, ss__place *place, const ss__client_key *key);
/* Counts a refusal in rejected and in its reason's counter. */
void ss__count_refusal(ss_server *srv, ss__refusal why);
/* A request has ended: give back what it held. Returns true when the
 * caller should wake the loop: that made room under max_connections, or
 * drain is waiting. */
bool ss__place_give_back(ss_server *srv, ss__place *place);
void ss__limits_free(ss_server *srv);

/* core/prefork.c: worker processes (ss_server_set_processes), the
 * supervisor's side. ss_server_set_processes puts this table in
 * srv->supervisor; the core calls it only through the table (the
 * supervisor builds on the core's loop, drain and close, which must not
 * call it back by name). start: at activate, instead of the dispatcher's
 * start (which each worker runs), making srv->prefork. With srv->prefork
 * set (in the supervisor, never in a worker): serve is serve_forever's
 * body, drain ss_server_drain's once enter_drain let it in, close
 * replaces the dispatcher's close, add_stats adds the workers' counters
 * into *all. free: with the server's memory. */
typedef struct ss__supervisor {
    int (*start)(ss_server *srv);
    int (*serve)(ss_server *srv, int poll_interval_ms);
    int (*drain)(ss_server *srv, int timeout_ms);
    void (*close)(ss_server *srv);
    void (*add_stats)(const ss_server *srv, ss_stats *all);
    void (*free)(ss_server *srv);
} ss__supervisor;

/* core/server.c: the serving flag serve_forever holds (false: another
 * loop runs; -EBUSY), and its release, which wakes ss_server_shutdown. */
bool ss__server_enter_loop(ss_server *srv);
void ss__server_leave_loop(ss_server *srv);

/* core/handover.c: the listeners now belong to a successor: this process
 * stops taking clients, and drain and close only close its copies. */
void ss__listeners_handed_over(ss_server *srv);
/* How a child ended, from waitpid's status (-1: reaped elsewhere), as
 * words for a log line: "was killed by signal 9", "exited with status 1". */
void ss__describe_exit(int status, char *buf, size_t size);

/* Default handle_error: one line on stderr. */
void ss__report_error(ss_server *srv, ss_request *req, int err, void *data);

#endif /* SS_CORE_H */
