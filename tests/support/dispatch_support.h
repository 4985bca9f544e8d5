/* Handlers and helpers shared by the dispatcher tests (test_matrix,
 * test_threading, test_forking, test_pool). Handlers here may run in a
 * forked child, so they never call cmocka: they only return errors. */
#ifndef TESTS_DISPATCH_SUPPORT_H
#define TESTS_DISPATCH_SUPPORT_H

#include "support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads one line (through '\n', or the whole datagram) and sends it back. */
extern const ss_handler td_echo_line;
/* Echoes one line, then keeps the connection until the client sends
 * "bye\n" (td_release) or closes it. */
extern const ss_handler td_hold;
/* Fails at once with -EPROTO, reading nothing. */
extern const ss_handler td_fail;

/* A gate td_echo_when_released waits at, and what it says of the handlers
 * that reached it (in this process: not for forking). */
typedef struct td_gate {
    atomic_bool open;
    atomic_int entered; /* handlers that have started, waiting or not */
} td_gate;
void td_gate_init(td_gate *g);
/* Waits (bounded) until `count` handlers have entered: they run, and are
 * no longer queued, where ss_stats.active already counts them at
 * admission. */
bool td_gate_wait_entered(td_gate *g, int count, int timeout_ms);

/* Echoes one line once its data, a td_gate, is open (at most 5 s later). */
extern const ss_handler td_echo_when_released;

/* Sends `line` on fd and asserts the same bytes come back. */
void td_round_trip(int fd, const char *line);
/* Ends a td_hold request: "bye\n", then close. */
void td_release(int fd);
/* Serves srv (a td_hold server) until a client has had one answer, then
 * stops serving: its request still runs, held, for a test of what close
 * or free does with a request that outlives the serving loop. Returns
 * the client's descriptor (td_release or close ends the request). */
int td_held_past_stop(ss_server *srv);
/* True if nothing arrives on fd for `ms` milliseconds. */
bool td_quiet_for(int fd, int ms);

/* Serves one request: a client connects, sends `send` (unless NULL),
 * expects `want` back, closes; returns once the server has closed it. */
void td_serve_once(ss_server *srv, const char *send, const char *want);
/* Receives exactly `line` on fd, or fails. */
void td_expect(int fd, const char *line);
/* Waits (bounded) until this process has `count` descriptors open. */
bool td_wait_fds(int count, int timeout_ms);

/* ss_server_close in a thread of its own, to watch it wait. */
typedef struct td_closer {
    ss_server *srv;
    pthread_t thread;
    atomic_bool done;
} td_closer;
void td_close_start(td_closer *c, ss_server *srv);
/* True once that close has returned (within timeout_ms); joins it then. */
bool td_close_returned(td_closer *c, int timeout_ms);

/* A datagram server on dispatcher d, configured by `configure` not to wait
 * for its handlers at close: close still waits for a handler that will
 * reply through the server's socket. Skips without a UDP transport. */
void td_close_waits_for_datagram_handler(const ss_dispatcher *d, void (*configure)(ss_server *));

/* The main of a test file run once per dispatcher (ctest's EACH, argv[1]:
 * a name for ss_dispatch_by_name, threading by default): sets *dispatcher,
 * ignores SIGPIPE (a client gone mid-reply must not end the test) and runs
 * the cmocka group `tests`. Returns cmocka's result, or 2 for an unknown
 * name. */
struct CMUnitTest;
int td_run_per_dispatcher(const char *group, const struct CMUnitTest *tests, size_t count, int argc,
                          char **argv, const ss_dispatcher **dispatcher);
#define TD_RUN_PER_DISPATCHER(tests, argc, argv, dispatcher)                                       \
    td_run_per_dispatcher(#tests, tests, sizeof(tests) / sizeof((tests)[0]), argc, argv, dispatcher)

/* Waits (bounded) until the server's counter reaches a value. */
bool td_wait_closed(ss_server *srv, uint64_t closed, int timeout_ms);
bool td_wait_accepted(ss_server *srv, uint64_t accepted, int timeout_ms);
bool td_wait_tracked(ss_server *srv, uint64_t tracked, int timeout_ms);
bool td_wait_active(ss_server *srv, uint64_t active, int timeout_ms);
/* The pool counts a request accepted before it is queued: a test that
 * expects a queued request waits for the gauge, not for the accept. */
bool td_wait_queued(ss_server *srv, uint64_t queued, int timeout_ms);
ss_stats td_stats(const ss_server *srv);
/* The usual end of a test: `handled` requests closed (waiting at most
 * timeout_ms), the runner stopped cleanly, each request counted as
 * handled; then frees srv. */
void td_finish(ts_runner *runner, ss_server *srv, uint64_t handled, int timeout_ms);

/* A handle_error hook that reports nothing, for tests whose handlers are
 * meant to fail (timed out, interrupted): keeps their output clean. */
void td_quiet_error(ss_server *srv, ss_request *req, int err, void *data);

/* A tcp://127.0.0.1:0 server on dispatcher `mode` (ss_dispatch_by_name)
 * with handler h behind the PROXY filter (opts NULL: its defaults),
 * failing handlers unreported, bound and activated: the server the PROXY
 * tests give clients with a header, half of one or none. */
ss_server *td_proxy_server(const char *mode, const ss_handler *h, const ss_proxy_options *opts);

/* Zeroed memory shared with forked children (a handler's findings, seen
 * by the test in the parent); fails the test if none can be mapped. */
void *td_shared_new(size_t size);
void td_shared_free(void *p, size_t size);

/* cmocka setup/teardown: a child of the test itself that exits with
 * status 72 at once; the teardown asserts that status is still there to
 * collect, i.e. the server did not reap it (Python issue 1540386). */
int td_own_child_setup(void **state);
int td_own_child_teardown(void **state);
/* The pid of that child, 0 when none. */
pid_t td_own_child(void);

/* Zombie children of this process other than td_own_child(); -1 where
 * /proc is missing. */
int td_zombies(void);
/* Threads of this process; -1 where /proc is missing. */
int td_threads(void);
/* Reaps every child of this process except td_own_child() (waiting at
 * most timeout_ms); returns how many, -1 where /proc is missing. */
int td_reap_strays(int timeout_ms);

#endif
