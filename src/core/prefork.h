/* Worker processes (ss_server_set_processes): what the supervisor
 * (core/prefork.c) and its workers (core/prefork_worker.c) share. The
 * supervisor keeps the listening sockets and takes no client; each worker
 * is a fork of it that serves the same sockets with the server's own
 * dispatcher.
 *
 * They talk through one page of shared memory (MAP_SHARED |
 * MAP_ANONYMOUS, made before the first fork, so every worker maps the
 * same page) and two pipes per worker: the supervisor writes a command
 * into the worker's slot, then a byte into the worker's control pipe; the
 * worker says it has carried a command out in its slot, then with a byte
 * into its events pipe. The supervisor holds the only write end of the
 * control pipe, so a worker reads end of file once its supervisor is
 * gone; the worker holds the only write end of its events pipe (its own
 * forked children aside), so the supervisor sees end of file as it dies. */
#ifndef SS_CORE_PREFORK_H
#define SS_CORE_PREFORK_H

#include "core/core.h"

#include <stdalign.h>

/* What the supervisor tells a worker. Each command replaces the one
 * before (they are states to be in, not a queue), and is numbered. */
enum {
    SS__WORKER_SERVE = 1, /* run the loop: take clients */
    SS__WORKER_PAUSE,     /* stop the loop; requests in flight go on */
    SS__WORKER_DRAIN,     /* ss_server_drain until the slot's deadline, close, exit */
    SS__WORKER_INTERRUPT, /* the same, but cut the requests off now (a second stop) */
    SS__WORKER_CLOSE,     /* ss_server_close (block_on_close as set), exit */
};

/* How a worker ends: its exit status. */
enum {
    SS__WORKER_EXIT_OK = 0,        /* drained or closed as told, nothing cut off */
    SS__WORKER_EXIT_FAILED = 1,    /* could not start, or its loop failed */
    SS__WORKER_EXIT_TIMED_OUT = 3, /* its drain interrupted requests at the deadline */
    SS__WORKER_EXIT_CANCELLED = 4, /* ... at a stop request */
};

/* One worker's place in the shared page. */
typedef struct ss__worker_slot {
    /* The latest command, numbered: (number << 4) | SS__WORKER_*, one
     * word so that a command and its number are read together. */
    atomic_uint order;
    atomic_uint done;         /* the latest order the worker carried out (serve, pause) */
    atomic_llong deadline_ms; /* DRAIN: monotonic ms (one clock for all processes); -1: none;
                                 written before order */
    atomic_int start_error;   /* a worker that could not start: why (-errno), before it exits */
    /* The worker's counters: its srv->count points here, so the
     * supervisor sums them as they change (on their own cache lines: every
     * thread of the worker writes them, the next worker reads its seat). */
    alignas(64) ss__counters count;
    alignas(64) ss__seat seat; /* where it takes new clients (objects.h); reset at each fork */
} ss__worker_slot;

typedef struct ss__prefork_page {
    atomic_bool handed_over; /* ss_server_hand_over succeeded: no worker takes clients */
    ss__worker_slot slot[];
} ss__prefork_page;

/* The supervisor's view of one worker (pid 0: none running). */
typedef struct ss__worker {
    pid_t pid;
    int control;        /* write end of its control pipe, -1 when none */
    int events;         /* read end of its events pipe, -1 when none */
    int64_t started_ms; /* when it was forked */
    int64_t respawn_at; /* when a replacement is due (monotonic ms); -1: none wanted */
    int failures;       /* ended on its own soon after its start, in a row */
    bool told_to_end;   /* drain or close told it to exit */
    int start_error;    /* its last attempt could not start (-errno), or 0 */
} ss__worker;

typedef struct ss__prefork {
    int count; /* workers */
    ss__prefork_page *page;
    size_t page_size;
    ss__worker *workers;
    struct pollfd *pollset; /* the wake pipe, then each worker's events pipe */
    bool serving;           /* the supervisor's loop runs: workers are to serve */
    bool started;           /* a worker has started serving, once: see cannot_start */
    bool draining;          /* in supervisor_drain: a worker's open requests are cut off */
    int worst_end;          /* a drain's: 0 each ended fine, 1 one cut requests off
                               at the deadline (or was killed), 2 ... at a stop */
    ss__counters retired;   /* what the workers that have ended counted */
} ss__prefork;

/* core/prefork_worker.c: the life of worker `index`, in the child after
 * the fork; `control` and `events` are its ends of the two pipes. Never
 * returns. */
_Noreturn void ss__worker_run(ss_server *srv, int index, int control, int events);

/* Empties a non-blocking pipe (both sides' pokes); false at its end:
 * the other side is gone. */
bool ss__pipe_read_all(int fd);

#endif /* SS_CORE_PREFORK_H */
