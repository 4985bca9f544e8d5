/* The forking dispatcher (Python's ForkingMixIn): one child process per
 * request, with three of Python's pitfalls designed out:
 *   - at max_children the server stops accepting (clients wait in the
 *     kernel backlog) instead of blocking in waitpid(-1);
 *   - only our own pids are ever waited for (waitpid(pid, WNOHANG)), so a
 *     child the application started itself keeps its exit status;
 *   - children are reaped within milliseconds of exiting, without a
 *     SIGCHLD handler: just before _exit a child marks its slot in a small
 *     shared page and writes one byte to the server's wake-up pipe, which
 *     wakes the loop; a marked child is then looked for again after 1, 2,
 *     4 ... ms until it is gone. A child that dies without marking (killed
 *     by a signal) is found by a sweep every REAP_INTERVAL_MS while any
 *     child exists, and only when waitid(WNOWAIT) shows some child of the
 *     process has ended: a thousand children serving long connections
 *     cost no thousand waitpid calls per accept or per sweep;
 *   - when the kernel refuses a fork (EAGAIN: RLIMIT_NPROC, a cgroup's
 *     pids.max) while children of ours run, the request waits for one of
 *     them to exit and the server stops accepting meanwhile, as at
 *     max_children: the kernel's limit is met with backpressure, not with
 *     a client dropped. With no child of ours to wait for, the request
 *     fails (handle_error, then closed), as Python's would.
 *   - a drain ends idle children at once (core/idle.c), although the
 *     parent sees none of their waits: the page the parent shares with
 *     its children holds each child's idle state and a "closing idle"
 *     flag, and a child's idle wait (for a new message after a complete
 *     exchange) polls its socket and the read end of a pipe the parent's
 *     drain writes one byte to, which stays there for every child. That
 *     costs a poll() per idle wait in a child (a thread's blocking recv
 *     needs none), and nothing in the parent: it keeps no copy of the
 *     children's connections, which each later child would inherit.
 *   - behind a PROXY header, which a child reads, max_per_client counts
 *     the real client in the shared page: each slot holds its child's
 *     real client, and a child takes its place only if fewer than the
 *     limit of the other slots hold the same one, the count and the claim
 *     made under one process-shared lock (robust on Linux: a child killed
 *     holding it does not block the others). The child clears its slot
 *     as its request ends, the parent as it reaps it (a killed child).
 * Everything here runs in the serving thread (process, reap; interrupt_own
 * and close after the loop has stopped), so the state needs no lock. */
#include "dispatch/dispatch.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define REAP_INTERVAL_MS 100 /* the safety net for children killed by a signal */
#define RETRY_MAX_MS     64  /* backoff ceiling for a child seen exiting */

/* What a child writes into its byte of the shared page as it exits. */
#define EXIT_MARK      1 /* about to _exit */
#define EXIT_TIMED_OUT 2 /* its request's I/O timed out (ss_stats.request_timeouts) */
/* Bits 2-4: why it was refused before its handler ran (ss__late_refusal). */
#define EXIT_REFUSAL_SHIFT 2
#define EXIT_REFUSAL_MASK  7
#define EXIT_TLS_DONE      32 /* its TLS handshake completed (ss_stats.tls_handshakes) */

/* The page shared with the children (MAP_SHARED: a child writes into the
 * parent's very memory). */
typedef struct shared_page {
    atomic_bool closing_idle; /* the parent's drain closes idle requests */
    /* Guards the slots' client keys (process-shared): a child counts and
     * claims under it. Set up only for a PROXY server with max_per_client. */
    pthread_mutex_t clients_lock;
    struct {
        atomic_uchar exiting; /* EXIT_* bits, written as the child exits */
        atomic_uchar idle;    /* its request's SS__IDLE_* state (core/idle.c) */
        atomic_bool keyed;    /* key is its real client, counted under max_per_client */
        ss__client_key key;   /* written by its child under clients_lock */
    } slot[];
} shared_page;

typedef struct forks {
    int max;
    int count;             /* live (unreaped) children */
    pid_t *pids;           /* slot -> pid, 0 = free */
    ss__place *places;     /* slot -> its request's place under the limits */
    shared_page *page;     /* shared with the children */
    size_t page_size;      /* bytes mapped */
    int idle_watch[2];     /* drain writes to [1]; children's idle waits poll [0] */
    int cut_watch[2];      /* drain's deadline writes to [1]; every wait of a child polls [0] */
    bool cut;              /* that byte was written */
    bool clients_shared;   /* the page's clients_lock is set up */
    int child_slot;        /* in a child: its slot; -1 in the parent */
    int retry_ms;          /* next look for a marked child, 0 = none marked */
    int64_t next_sweep_ms; /* when to look for unmarked (killed) children */
    ss_request *unforked;  /* a request whose fork the kernel refused ... */
    int unforked_at;       /* ... with this many children: retried below it */
    bool warned;           /* the refusal was logged (once per episode) */
} forks;

static void forks_free(forks *fs)
{
    if (fs->clients_shared)
        pthread_mutex_destroy(&fs->page->clients_lock);
    if (fs->page != NULL)
        munmap(fs->page, fs->page_size);
    ss__close(&fs->idle_watch[0]);
    ss__close(&fs->idle_watch[1]);
    ss__close(&fs->cut_watch[0]);
    ss__close(&fs->cut_watch[1]);
    free(fs->places);
    free(fs->pids);
    free(fs);
}

/* A lock the children share: process-shared, and robust where the
 * system has it (Linux), so a child killed while holding it (drain's
 * SIGKILL) leaves it to the next one instead of blocking every child. */
static int share_clients_lock(pthread_mutex_t *lock)
{
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0)
        return -rc;
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
#ifdef __linux__
    if (rc == 0)
        rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
#endif
    if (rc == 0)
        rc = pthread_mutex_init(lock, &attr);
    pthread_mutexattr_destroy(&attr);
    return -rc;
}

/* The shared page, its clients' lock if a child will count its real
 * client (PROXY and max_per_client), and the drain's pipes. */
static int share(ss_server *srv, forks *fs)
{
    fs->page_size = sizeof *fs->page + (size_t)fs->max * sizeof fs->page->slot[0];
    void *page =
        mmap(NULL, fs->page_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return -errno;
    fs->page = page;
    if (srv->filters.names_client && srv->limits.max_per_client > 0) {
        int rc = share_clients_lock(&fs->page->clients_lock);
        if (rc < 0)
            return rc;
        fs->clients_shared = true;
    }
    int rc = ss__pipe(fs->idle_watch);
    return rc < 0 ? rc : ss__pipe(fs->cut_watch);
}

static int fork_start(ss_server *srv)
{
    forks *fs = calloc(1, sizeof *fs);
    if (fs == NULL)
        return -ENOMEM;
    fs->idle_watch[0] = fs->idle_watch[1] = fs->cut_watch[0] = fs->cut_watch[1] = -1;
    fs->child_slot = -1;
    fs->max = srv->dopt.max_children > 0 ? srv->dopt.max_children : SS_DEFAULT_MAX_CHILDREN;
    int rc = -ENOMEM;
    if ((fs->pids = calloc((size_t)fs->max, sizeof *fs->pids)) != NULL &&
        (fs->places = calloc((size_t)fs->max, sizeof *fs->places)) != NULL)
        rc = share(srv, fs);
    if (rc < 0) {
        forks_free(fs);
        return rc;
    }
    srv->dispatch_state = fs;
    return 0;
}

static bool fork_has_room(ss_server *srv)
{
    forks *fs = srv->dispatch_state;
    return fs->count < fs->max && fs->unforked == NULL;
}

/* ---- reaping our own children ---- */

/* The child's outcome, as counters the parent can show: the child's own
 * counters died with it. Exit 0 is a handled request, 1 a handle_error
 * call in the child; anything else (another exit code, a signal) is only
 * a failed child. A timeout the child marked in its byte counts too. */
static void account(ss_server *srv, int status, unsigned char marks, unsigned char idle)
{
    if (idle == SS__IDLE_CLOSED)
        atomic_fetch_add(&srv->count->idle_closed, 1);
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    ss__late_refusal refused = (marks >> EXIT_REFUSAL_SHIFT) & EXIT_REFUSAL_MASK;
    if (ok && refused != SS__LATE_NONE)
        ss__count_late_refusal(srv, refused); /* refused: not handled */
    else if (ok)
        atomic_fetch_add(&srv->count->handled, 1);
    else
        atomic_fetch_add(&srv->count->children_failed, 1);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
        atomic_fetch_add(&srv->count->handler_errors, 1);
    if (marks & EXIT_TIMED_OUT)
        atomic_fetch_add(&srv->count->request_timeouts, 1);
    if (marks & EXIT_TLS_DONE)
        atomic_fetch_add(&srv->count->tls_handshakes, 1);
    atomic_fetch_add(&srv->count->closed, 1);
}

/* The child is gone (or no longer ours to track): its request has ended,
 * so its place under the limits is given back. */
static void forget(ss_server *srv, forks *fs, int slot)
{
    atomic_store(&fs->page->slot[slot].keyed, false); /* a killed child could not */
    fs->pids[slot] = 0;
    fs->count--;
    atomic_fetch_sub(&srv->count->tracked, 1);
    srv->host->give_back(srv, &fs->places[slot]);
}

/* Waits for the child in `slot` (flags 0 or WNOHANG). Returns true if it
 * is gone: reaped, or already reaped by someone else (ECHILD: e.g. the
 * application set SIGCHLD to SIG_IGN), whose status we then never see. */
static bool reap_slot(ss_server *srv, forks *fs, int slot, int flags)
{
    int status = 0;
    pid_t got;
    do
        got = waitpid(fs->pids[slot], &status, flags);
    while (got < 0 && errno == EINTR);
    if (got == 0 || (got < 0 && errno != ECHILD))
        return false;
    if (got > 0)
        account(srv, status, atomic_load(&fs->page->slot[slot].exiting),
                atomic_load(&fs->page->slot[slot].idle));
    else
        atomic_fetch_add(&srv->count->closed, 1);
    forget(srv, fs, slot);
    return true;
}

/* One pass over our children: all of them, or only those that marked
 * themselves exiting. Returns how many marked ones were not gone yet. */
static int reap_pass(ss_server *srv, forks *fs, int flags, bool all)
{
    int pending = 0;
    for (int slot = 0; slot < fs->max && fs->count > 0; slot++) {
        if (fs->pids[slot] == 0)
            continue;
        bool marked = (atomic_load(&fs->page->slot[slot].exiting) & EXIT_MARK) != 0;
        if ((all || marked) && !reap_slot(srv, fs, slot, flags) && marked)
            pending++;
    }
    return pending;
}

/* Has any child of this process ended? WNOWAIT leaves it unreaped, so
 * this takes no status from anybody. An error (ECHILD: someone reaped our
 * children already) answers yes: the sweep then notices they are gone. */
static bool some_child_ended(void)
{
    siginfo_t info = {0};
    int rc;
    do
        rc = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    while (rc < 0 && errno == EINTR);
    return rc < 0 || info.si_pid != 0;
}

/* The slow timer, every REAP_INTERVAL_MS while children run: the safety
 * net for children that ended without marking, and another try for a
 * request whose fork the kernel refused (other processes of the user may
 * have ended meanwhile). */
static bool sweep_due(forks *fs)
{
    int64_t now = ss__now_ms();
    if (now < fs->next_sweep_ms)
        return false;
    fs->next_sweep_ms = now + REAP_INTERVAL_MS;
    return true;
}

static void retry_unforked(ss_server *srv, forks *fs);

static void fork_reap(ss_server *srv)
{
    forks *fs = srv->dispatch_state;
    if (fs->count == 0)
        return;
    bool sweep = sweep_due(fs);
    /* a waitpid per child only if some child ended */
    if (reap_pass(srv, fs, WNOHANG, sweep && some_child_ended()) == 0)
        fs->retry_ms = 0;
    else if (fs->retry_ms == 0)
        fs->retry_ms = 1;
    else if (fs->retry_ms < RETRY_MAX_MS)
        fs->retry_ms *= 2;
    if (fs->unforked != NULL && (sweep || fs->count < fs->unforked_at))
        retry_unforked(srv, fs);
}

static int fork_max_wait(ss_server *srv)
{
    forks *fs = srv->dispatch_state;
    if (fs->count == 0)
        return -1;
    return fs->retry_ms > 0 ? fs->retry_ms : REAP_INTERVAL_MS;
}

/* ---- the child ---- */

/* Tells the parent we are about to exit: mark our slot, then wake its
 * loop. SIGPIPE is blocked first because the parent may already have
 * freed its server (the pipe's read end); this child's mask dies with it. */
static void announce_exit(forks *fs, int slot, int notify_fd, unsigned char marks)
{
    atomic_store(&fs->page->slot[slot].exiting, (unsigned char)(EXIT_MARK | marks));
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    ssize_t ignored = write(notify_fd, "", 1);
    (void)ignored;
}

/* The child is not the parent's loop: a stop the parent was asked for as
 * it forked is the parent's, and a stop signal sent to the whole process
 * group (Ctrl-C, systemd's KillMode=control-group), which the
 * application's handler turns into ss_server_request_shutdown in the child
 * too, must not cancel this child's request: its waits are a thread's,
 * which a stop never ends, but for the parent's drain (the cut pipe).
 * No lock: the child has one thread, and a lock another thread of the
 * parent held at the fork would stay held here. */
/* The parent counts this child's request from how it exits (fork_reap).
 * In a worker process (ss_server_set_processes) the counters live in the
 * supervisor's shared page, which the child shares too: it counts in a
 * copy of its own from here on, which dies with it. */
static void count_privately(ss_server *srv)
{
    if (srv->count == &srv->own_count)
        return;
#define SS__COPY(name) atomic_store(&srv->own_count.name, atomic_load(&srv->count->name));
    SS__COUNTERS(SS__COPY)
#undef SS__COPY
    srv->count = &srv->own_count;
}

static void forget_parents_loop(ss_server *srv, ss_request *req, const forks *fs)
{
    count_privately(srv);
    ss__stop_take(&srv->stop);
    atomic_store(&srv->stop.cancel_at, 0);
    srv->serving = false; /* ss_server_shutdown in the child waits for no loop */
    /* Every wait of the request, its filters' open (a PROXY header) and
     * its handler's reads and writes alike, ends at the drain's deadline
     * (or a second stop) with -ECANCELED, as a thread's ends when the
     * drain shuts its socket down: whatever the application does with the
     * SIGTERM that follows (catches it with SA_RESTART, blocks it, or its
     * handler never runs: a forked ThreadSanitizer child defers signals to
     * interceptors it no longer runs). SIGTERM, then SIGKILL, still bounds
     * a child busy outside the library. */
    srv->stop.cut_read = fs->cut_watch[0];
    req->waiter = &ss__waiter_cut;
}

/* Every listener but the request's own when it replies through it. */
static void close_listeners_but_own(ss_server *srv, const ss_request *req)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        ss__listener *l = srv->listeners[i];
        if (l != req->listener || !ss__replies_via_listener(req))
            ss__close(&l->fd);
    }
}

/* Never returns. The child gives up the server's descriptors first: the
 * listeners (but the request's own socket, for a datagram request
 * replying through it, as in Python), and the wake-up pipe, of which
 * it keeps only the write end, and only to announce its exit. The library
 * changes no signal dispositions, so there are none to reset. */
static void run_child(ss_server *srv, forks *fs, int slot, ss_request *req)
{
    int notify_fd = srv->stop.wake_write;
    srv->stop.wake_write = -1; /* a shutdown called in the child stays in the child */
    forget_parents_loop(srv, req, fs);
    /* its idle state where the parent's drain can see it, and its pipe */
    req->idle = &fs->page->slot[slot].idle;
    req->closing_idle = &fs->page->closing_idle;
    req->idle_watch = fs->idle_watch[0];
    fs->child_slot = slot; /* this process's copy of fs: for fork_claim_client */
    ss__close(&srv->stop.wake_read);
    close_listeners_but_own(srv, req);
    int rc = req->server->host->run(req);
    req->linger_in_place = true; /* we exit next, and a lingerer thread with us */
    unsigned char marks = atomic_load(&req->timed_out) ? EXIT_TIMED_OUT : 0;
    marks |= (unsigned char)(req->late_refusal << EXIT_REFUSAL_SHIFT);
    marks |= req->tls_established ? EXIT_TLS_DONE : 0;
    req->server->host->end(req);
    atomic_store(&fs->page->slot[slot].keyed, false); /* its client's place, given back */
    announce_exit(fs, slot, notify_fd, marks);
    _exit(rc < 0 ? 1 : 0);
}

static int free_slot(const forks *fs)
{
    for (int slot = 0; slot < fs->max; slot++)
        if (fs->pids[slot] == 0)
            return slot;
    return -1;
}

static void refuse(ss_server *srv, ss_request *req, int err)
{
    atomic_fetch_add(&srv->count->spawn_failures, 1);
    req->server->host->fail(req, err);
    req->server->host->end(req);
}

/* Starts req's child. Returns 0, or the fork's error with req untouched. */
static int spawn(ss_server *srv, forks *fs, ss_request *req)
{
    int slot = free_slot(fs);
    if (slot < 0)
        return -EAGAIN; /* not reached: the loop accepts only below the limit */
    atomic_store(&fs->page->slot[slot].exiting, 0);
    atomic_store(&fs->page->slot[slot].idle, SS__IDLE_BUSY);
    atomic_store(&fs->page->slot[slot].keyed, false);
    /* counted first: the child may answer before fork returns here */
    atomic_fetch_add(&srv->count->tracked, 1);
    pid_t pid = fork();
    if (pid == 0)
        run_child(srv, fs, slot, req);
    if (pid < 0) {
        int err = -errno;
        atomic_fetch_sub(&srv->count->tracked, 1);
        return err;
    }
    srv->host->hand_off(req, &fs->places[slot]); /* given back when reaped */
    fs->pids[slot] = pid;
    fs->count++;
    return 0;
}

/* The kernel's process limit, not ours: wait for a child of ours to exit
 * (fork_reap retries then), or fail the request if none runs. */
static void fork_refused(ss_server *srv, forks *fs, ss_request *req, int err)
{
    if (err != -EAGAIN || fs->count == 0) {
        refuse(srv, req, err);
        return;
    }
    fs->unforked = req;
    fs->unforked_at = fs->count;
    if (!fs->warned)
        ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
                "fork: %s with %d children; new clients wait until one exits", ss_strerror(err),
                fs->count);
    fs->warned = true;
}

static void fork_process(ss_server *srv, ss_request *req)
{
    forks *fs = srv->dispatch_state;
    int err = spawn(srv, fs, req);
    if (err < 0)
        fork_refused(srv, fs, req, err);
    else
        fs->warned = false;
}

static void retry_unforked(ss_server *srv, forks *fs)
{
    ss_request *req = fs->unforked;
    fs->unforked = NULL;
    fork_process(srv, req);
}

/* Close and drain: the request that never got its child is refused. */
static void drop_unforked(ss_server *srv, forks *fs)
{
    if (fs->unforked == NULL)
        return;
    refuse(srv, fs->unforked, -ECANCELED);
    fs->unforked = NULL;
}

/* Drain's deadline: the cut byte (every wait of every child ends at once
 * with -ECANCELED), SIGTERM, then SIGKILL, to our own children only. A pid
 * not yet reaped cannot belong to anybody else: even exited, the child
 * keeps it until waitpid. The request still waiting for a fork is refused
 * first, before the core shuts the live sockets down, so the reap step
 * drain keeps running never forks it after the deadline. */
static void fork_interrupt_own(ss_server *srv, bool force)
{
    forks *fs = srv->dispatch_state;
    drop_unforked(srv, fs);
    if (!fs->cut) { /* first: ends the children's waits, whatever they do with SIGTERM */
        ssize_t ignored = write(fs->cut_watch[1], "", 1);
        (void)ignored;
        fs->cut = true;
    }
    for (int slot = 0; slot < fs->max; slot++)
        if (fs->pids[slot] != 0)
            kill(fs->pids[slot], force ? SIGKILL : SIGTERM);
}

/* Drain start: each child idle now, or from now on, ends its request
 * (core/idle.c); the byte stays in the pipe for every child, and the
 * parent counts each one so ended as it reaps it. */
static void fork_close_idle(ss_server *srv)
{
    forks *fs = srv->dispatch_state;
    atomic_store(&fs->page->closing_idle, true);
    ssize_t ignored = write(fs->idle_watch[1], "", 1);
    (void)ignored;
}

/* ---- the real client's count (PROXY), in a child ---- */

static bool lock_clients(shared_page *page)
{
    int rc = pthread_mutex_lock(&page->clients_lock);
#ifdef __linux__
    /* its owner died (killed): each slot's key is whole or not yet
     * claimed (keyed is set last), so the counts are still right */
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&page->clients_lock);
#endif
    return rc == 0;
}

/* Slots other than `self` whose child counts `key`. Under the lock. */
static int holding(const forks *fs, int self, const ss__client_key *key)
{
    int n = 0;
    for (int slot = 0; slot < fs->max; slot++) {
        const ss__client_key *k = &fs->page->slot[slot].key;
        if (slot != self && atomic_load(&fs->page->slot[slot].keyed) && k->len == key->len &&
            memcmp(k->bytes, key->bytes, key->len) == 0)
            n++;
    }
    return n;
}

/* In a child: its request's place under its real client's count, or a
 * refusal at the limit (or if the lock cannot be had). The parent's own
 * requests are counted by the core. */
static int fork_claim_client(ss_server *srv, const ss__client_key *key)
{
    forks *fs = srv->dispatch_state;
    if (fs->child_slot < 0 || !fs->clients_shared)
        return -ENOTSUP;
    if (!lock_clients(fs->page))
        return 0;
    int self = fs->child_slot;
    bool room = holding(fs, self, key) < srv->limits.max_per_client;
    if (room) {
        fs->page->slot[self].key = *key;
        atomic_store(&fs->page->slot[self].keyed, true);
    }
    pthread_mutex_unlock(&fs->page->clients_lock);
    return room;
}

/* ---- close ---- */

/* With block_on_close (the default), waits for every child, as Python's
 * server_close does. Without it, reaps those already gone and stops
 * tracking the rest: they remain the application's children, which it
 * may reap itself; this library never calls waitpid(-1). */
static void fork_close(ss_server *srv)
{
    forks *fs = srv->dispatch_state;
    drop_unforked(srv, fs);
    reap_pass(srv, fs, ss__block_on_close(srv) ? 0 : WNOHANG, true);
    for (int slot = 0; slot < fs->max && fs->count > 0; slot++)
        if (fs->pids[slot] != 0)
            forget(srv, fs, slot);
    forks_free(fs);
    srv->dispatch_state = NULL;
}

static const ss_dispatcher forking_dispatcher = {
    .name = "forking",
    .start = fork_start,
    .has_room = fork_has_room,
    .process = fork_process,
    .reap = fork_reap,
    .max_wait_ms = fork_max_wait,
    .interrupt_own = fork_interrupt_own,
    .close_idle = fork_close_idle,
    .claim_client = fork_claim_client,
    .close = fork_close,
    .accept_start = ss__dispatch_accept_start_none,
    .accept_stop = ss__dispatch_accept_stop_none,
    .accepting = ss__dispatch_accepting_none,
};

SS_API const ss_dispatcher *ss_dispatch_forking(void)
{
    return &forking_dispatcher;
}
