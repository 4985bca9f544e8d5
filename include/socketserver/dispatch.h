/*
 * socketserver/dispatch.h — the dispatchers (sync, threading, forking, pool):
 * where and how concurrently handlers run, and the server options each
 * one reads.
 *
 * Part of <socketserver.h>, which programs include (it includes every area
 * header); this header also compiles on its own. Conventions (errors,
 * ownership, threads, units): <socketserver.h>. Guide: docs/concurrency.md.
 */
#ifndef SOCKETSERVER_DISPATCH_H
#define SOCKETSERVER_DISPATCH_H

#include <socketserver/base.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Dispatchers: where and how concurrently handlers run                     */
/* ------------------------------------------------------------------------ */

/* One request at a time, in the thread that calls handle_request() or
 * serve_forever() (Python's plain TCPServer). Handler code may touch any
 * state of the calling thread; a second client waits in the kernel backlog
 * until the first request is finished. Since the loop cannot stop before
 * the handler returns, a stop request (ss_server_shutdown or
 * ss_server_request_shutdown, from any thread or signal handler) ends
 * every wait of the handler's request I/O with -ECANCELED, but an idle
 * wait, which reads as end of stream (see ss_request_recv). */
SS_API const ss_dispatcher *ss_dispatch_sync(void);

/* Looks a dispatcher up by its name ("sync", "threading", "forking",
 * "pool"), for command-line tools. Returns NULL for an unknown name. */
SS_API const ss_dispatcher *ss_dispatch_by_name(const char *name);

/* The dispatcher's name, e.g. "sync"; "sync" for NULL, since
 * ss_server_create takes NULL as the sync dispatcher. The string is static:
 * do not free it. */
SS_API const char *ss_dispatch_name(const ss_dispatcher *dispatcher);

/*
 * One thread per request (Python's ThreadingMixIn). The handler runs in a
 * new thread with a small stack (ss_server_set_thread_stack_size); it may
 * share state with other requests only under its own locks. A thread
 * that has finished its request leaves the bookkeeping at once, by
 * itself, even when no loop runs (ss_server_handle_request between calls):
 * it detaches itself, or, once ss_server_drain or ss_server_close has
 * begun, is joined by them, so none outlives close. The bookkeeping holds
 * running threads only (Python's bpo-37193 grew it with every request),
 * and ss_stats.tracked falls as each handler returns. There is no limit
 * on threads: for untrusted load prefer ss_dispatch_pool().
 * ss_server_close waits for the handler threads (see
 * ss_server_set_block_on_close and ss_server_set_daemon_threads). A handler
 * error, or a thread that cannot be created, goes to handle_error; the
 * request is always shut down.
 */
SS_API const ss_dispatcher *ss_dispatch_threading(void);

/*
 * One child process per request (Python's ForkingMixIn). The handler runs
 * in a fork of the serving thread: it may use anything the process had at
 * the fork, but what it changes stays in the child (counters, user data,
 * ss_server_shutdown, which then stops nothing: signal the parent with
 * kill(getppid(), SIGTERM) if you must). A stop never cancels the child's
 * request, not even one the application's signal handler requests in the
 * child because the signal went to the whole process group (Ctrl-C,
 * systemd's KillMode=control-group): the child serves its client to the
 * end or to the request timeout, and ss_server_drain bounds it: at the
 * drain's deadline (or a stop during the drain) every wait of the child
 * in a library call ends with -ECANCELED, as a thread's ends when the
 * drain shuts its socket down, whether the application catches SIGTERM
 * or not (a pipe the child polls, written before the SIGTERM): its
 * filters' open (a PROXY header; refused, counted as the filter's
 * refusal) and its handler's reads and writes, which then return; the
 * SIGTERM, and SIGKILL 1 s later, bound a child busy elsewhere. So a
 * child's waits poll (a read that must wait costs a poll() and a recv()
 * more than a thread's blocking recv).
 * In the child the listening socket is closed (except for datagram
 * transports, whose requests reply through it) and so is the wake-up pipe,
 * except for the one byte by which the child announces its exit; after
 * the request is shut down the child ends with _exit(0), or _exit(1) if
 * the handler failed (handle_error ran in the child). _exit skips stdio
 * flushing: flush what the handler printed.
 *
 * At most ss_server_set_max_children children run at once; at the limit
 * the server stops accepting, so further clients wait in the kernel
 * backlog (neither refused nor lost) until a child exits. The same holds
 * when the kernel refuses a fork (EAGAIN: RLIMIT_NPROC, a cgroup's
 * pids.max) while children of this server run: the request waits for one
 * of them to exit (one SS_LOG_WARNING says so); with none running it goes
 * to handle_error and is closed (ss_stats.spawn_failures). Children are
 * reaped within milliseconds with waitpid(pid, WNOHANG) on their own pids
 * only: no SIGCHLD handler is installed, no disposition is changed, and
 * waitpid(-1) is never called, so children the application starts itself
 * keep their exit status for it. The parent's ss_stats counts each reaped
 * child: exit 0 as handled; every other end (exit 1, which also counts as
 * a handler error, another code, a signal) counts in
 * ss_stats.children_failed. Fork in a program whose
 * other threads hold locks (of a logger, ...) at your own risk, as always.
 */
SS_API const ss_dispatcher *ss_dispatch_forking(void);

/*
 * A fixed pool of worker threads fed by a bounded queue (not in Python).
 * Handlers run in the workers, with the same rules as with
 * ss_dispatch_threading. The workers start at ss_server_activate
 * (ss_server_set_workers). While ss_server_serve_forever runs, the workers
 * accept new connections themselves, each serving what it accepted on its
 * own thread (Linux: a listener shared with exclusive wake-ups, epoll's
 * EPOLLEXCLUSIVE); the limits, per-client counts, accept back-off and
 * counters apply exactly as when the loop accepts. The loop accepts into a
 * queue of ss_server_set_queue_size entries where the workers do not:
 * datagram listeners, a server with a verify_request hook, every worker
 * full, ss_server_handle_request and ss_server_drain, and where fibers or
 * epoll are missing. While the queue is full the server stops accepting:
 * a burst waits in the kernel backlog and costs this process neither
 * memory nor descriptors.
 *
 * Each worker is an event loop: every request it takes runs on a fiber (a
 * small stack of its own, ss_server_set_thread_stack_size), and when the
 * handler's request I/O (ss_request_recv, ss_request_send_all, the stream
 * reader and writer, a datagram reply) would block, the fiber parks and
 * the worker runs another. Handler code is unchanged: it is written
 * blocking-style as for any dispatcher. A worker serves up to
 * ss_server_set_pool_fibers requests at once; only when every worker is
 * at that cap does the queue fill. So idle clients cost a parked stack,
 * not a worker, and a few workers serve thousands of connections.
 *
 * The trade-off: a handler that blocks its thread some other way (sleep,
 * disk I/O, a lock held long, a blocking call on the raw fileno) stalls
 * every other request on its worker meanwhile. Such handlers belong on
 * ss_dispatch_threading, or on a pool with ss_server_set_pool_fibers(1).
 * A fiber never moves between threads, so thread-local storage works;
 * handle_error runs on the fiber too.
 *
 * Where the C library has no ucontext (getcontext/makecontext/swapcontext:
 * musl, for one), or the library was configured with -DSS_FIBERS=OFF, a
 * worker stays with one client until the handler returns, so an idle
 * client holds a worker: use a request timeout against such clients.
 *
 * ss_server_close drains the queue and joins the workers, or with
 * block_on_close off shuts the queued requests down unhandled (counted in
 * ss_stats.cancelled) and lets running handlers finish alone.
 */
SS_API const ss_dispatcher *ss_dispatch_pool(void);

/* ------------------------------------------------------------------------ */
/* Options of the dispatchers (their counters are in ss_stats,              */
/* socketserver/server.h; which calls are safe from where: <socketserver.h>) */
/* ------------------------------------------------------------------------ */

/* Python's daemon_threads, for ss_dispatch_threading. In C a process ends
 * when main returns whatever its threads do, so "daemon" means only: not
 * waited for by ss_server_close. Default off. Applies to requests started
 * afterwards; any time. */
SS_API void ss_server_set_daemon_threads(ss_server *srv, bool on);

/* Python's block_on_close. On (the default): ss_server_close waits for
 * every non-daemon handler thread (threading), every child (forking), or
 * drains the queue and joins the workers (pool). Off: close waits for
 * none of them; the pool shuts its queued requests down unhandled, and
 * children still running are no longer tracked (they stay the
 * application's children: reap them yourself or they linger as zombies
 * once they exit). Any time before ss_server_close. */
SS_API void ss_server_set_block_on_close(ss_server *srv, bool on);

/* Python's max_children, for ss_dispatch_forking: how many children may
 * run at once. Default SS_DEFAULT_MAX_CHILDREN (1024); 0 restores it.
 * Python's default is 40, which leaves every client beyond the 40th
 * unanswered while 40 long connections last: pass 40 for Python's
 * behaviour. A child of a C server costs little more than its touched
 * pages, so the default bounds a fork storm without starving ordinary
 * loads; ss_server_set_max_connections bounds every dispatcher alike.
 * Returns 0, -EINVAL if negative, SS_ESTATE after activate. */
#define SS_DEFAULT_MAX_CHILDREN 1024
SS_API int ss_server_set_max_children(ss_server *srv, int max_children);

/* Worker threads of ss_dispatch_pool. Default (0): 4 per online CPU, at
 * least 8 and at most 256: each worker serves many connections on fibers,
 * but a handler that blocks its thread outside request I/O stalls its
 * worker, so several per core keep the cores busy while the ceiling
 * bounds memory. Without fibers a worker stays with one client for a
 * whole connection: for such a pool that must serve N clients at once,
 * set N. Returns 0, -EINVAL if negative, SS_ESTATE after activate. */
SS_API int ss_server_set_workers(ss_server *srv, int workers);

/* Capacity of ss_dispatch_pool's queue of accepted requests waiting for a
 * worker. Default (0): as many as there are workers. Deeper gains little:
 * each queued request holds a descriptor, while waiting in the kernel
 * backlog (see ss_server_set_backlog) costs this process nothing. Returns
 * 0, -EINVAL if negative, SS_ESTATE after activate. */
SS_API int ss_server_set_queue_size(ss_server *srv, int queue_size);

/* Stack size of handler threads (threading and pool), in bytes, rounded up
 * to whole pages. Default SS_DEFAULT_THREAD_STACK_SIZE (256 KiB): room for
 * handlers with tens of KiB of locals and the library's calls, where the
 * system default (often 8 MiB) would reserve 32 times more address space
 * per thread. 0 restores the default. Returns 0, -EINVAL below
 * PTHREAD_STACK_MIN, SS_ESTATE after activate. */
#define SS_DEFAULT_THREAD_STACK_SIZE (256 * 1024)
SS_API int ss_server_set_thread_stack_size(ss_server *srv, size_t bytes);

/* How many requests each ss_dispatch_pool worker runs at once, each on a
 * fiber with a stack of ss_server_set_thread_stack_size bytes (mmap'd
 * with a guard page; address space, of which only touched pages cost
 * memory; up to 64 per worker are kept for reuse). Default (0):
 * SS_DEFAULT_POOL_FIBERS, so the default 8 workers hold 32768 connections
 * before the queue fills and the server stops accepting (an idle one costs
 * about 9 KiB, mostly the stack pages its handler touched; the earlier
 * default, 1024, left the 8193rd of 10000 keep-alive clients waiting in
 * the backlog). 1 gives a worker per connection, for handlers that block their thread outside
 * request I/O. Ignored where fibers are not built in (see
 * ss_dispatch_pool). Returns 0, -EINVAL if negative, SS_ESTATE after
 * activate. */
#define SS_DEFAULT_POOL_FIBERS 4096
SS_API int ss_server_set_pool_fibers(ss_server *srv, int fibers);

/* ------------------------------------------------------------------------ */
/* Worker processes: one server, several processes (not in Python)          */
/* ------------------------------------------------------------------------ */

/*
 * Serves with `processes` worker processes instead of in the calling
 * process: gunicorn's and nginx's model, for using every core with
 * handlers that are not thread-safe, or whose crashes must not take the
 * other clients down. Each worker is a fork of the process that calls
 * ss_server_serve_forever; it runs the server's own dispatcher
 * (ss_dispatch_pool: an event loop per core, the usual choice; sync for
 * one request per process at a time) on the very same listening sockets,
 * inherited, so the kernel hands each new client to one of them. The
 * calling process, the supervisor, takes no client itself:
 *   - serve_forever starts the workers and watches them; a worker that
 *     ends by itself (a crash, SIGKILL, _exit in a handler) is reaped,
 *     logged (SS_LOG_ERROR), counted in ss_stats.processes_failed and
 *     replaced at once; one that ends again within 5 s of its start is
 *     replaced after 100 ms, then 200, 400, ... up to 10 s (back-off).
 *     A worker that cannot start (its dispatcher's start failed: EMFILE,
 *     ENOMEM; or the fork was refused) is retried the same way once a
 *     worker has served; until then, if every worker fails to start,
 *     serve_forever logs it and returns that start's -errno, as activate
 *     does for the same failure in one process (a server that answers
 *     nobody must not look up to a health check).
 *     Only the clients of the worker that died lose their connection;
 *     those still in the kernel backlog wait for the others or for the
 *     replacement. When serve_forever returns (a stop), every worker has
 *     stopped taking clients (it waits for their word up to the stop
 *     grace past the stop request, ss_server_set_stop_grace, at least
 *     250 ms, at most 5 s; one that cannot answer, e.g. SIGSTOPped, is
 *     left to the drain's kill); its requests in flight go on, and a
 *     further serve_forever resumes them all.
 *   - ss_server_drain drains every worker at once, each as
 *     ss_server_drain does in one process (the clients waiting in the
 *     backlog are served, idle requests end at once, the deadline is the
 *     same instant for all), then reaps them; a stop request during it
 *     (a second signal) cuts them all off; a worker still there 3 s after
 *     the deadline is killed. It returns -ETIMEDOUT (-ECANCELED) if any
 *     worker had to interrupt requests. ss_server_close ends the workers
 *     that are left (waiting for their requests in flight as
 *     ss_server_set_block_on_close says) and reaps them: no worker
 *     outlives close, and none is left a zombie. Only the workers' pids
 *     are waited for (no SIGCHLD handler, no waitpid(-1)).
 *   - ss_server_stats, in the supervisor, sums the counters of every
 *     worker, alive or ended: each worker counts straight into shared
 *     memory the supervisor reads, so the sum is as current as a single
 *     process's counters (a snapshot is not one instant; exact after
 *     drain or close), with nothing published periodically. The requests
 *     still open in a worker that died are counted closed; in one the
 *     drain killed, interrupted too (cut off past the deadline).
 *   - The listening sockets stay open in the supervisor for as long as
 *     any worker may need them, for a replacement; Unix socket files are
 *     removed by the supervisor's close alone. ss_server_hand_over, in
 *     the supervisor, hands them over as usual; once the successor is
 *     ready every worker stops taking clients, and no worker is replaced.
 *     Adopted listeners (fd:N, systemd:) work the same.
 * In a worker, the server is the worker's own copy: a handler's
 * ss_server_shutdown (or a signal handler's, since a signal sent to the
 * process group, Ctrl-C, reaches the workers too) stops that worker's
 * loop only: it takes no new client until the supervisor's next
 * serve_forever, drain or close (to stop the server, signal the
 * supervisor: kill(getppid(), SIGTERM)). The library changes no signal
 * disposition in the workers either. service_actions runs in the
 * supervisor's loop only. Options and hooks are what they were when each
 * worker was forked; limits (ss_server_set_max_connections,
 * max_per_client, the accept policy) apply per worker process.
 * ss_server_handle_request returns -ENOTSUP on such a server. A worker
 * left without its supervisor (killed) stops taking clients and drains
 * itself within 5 s.
 * Each worker holds a thread of its own that hears the supervisor and,
 * with the pool, wakes the worker's loop for the first client after it
 * rested: an idle worker process (no client for a second) makes no
 * wake-up at all (docs/concurrency.md); the supervisor wakes once per
 * serve_forever poll interval, as any serving loop does.
 * Fork from a supervisor without other threads: a process whose threads
 * hold locks forks at its own risk, as always.
 * `processes`: 1 to SS_MAX_PROCESSES, SS_PROCESSES_PER_CPU for one per
 * online CPU, or 0 (the default) to serve in the calling process.
 * Returns 0; -EINVAL for any other value; SS_ESTATE after activate, or on
 * a per-connection server (ss_server_new_connection).
 */
#define SS_MAX_PROCESSES     1024
#define SS_PROCESSES_PER_CPU (-1)
SS_API int ss_server_set_processes(ss_server *srv, int processes);

#ifdef __cplusplus
}
#endif

#endif /* SOCKETSERVER_DISPATCH_H */
