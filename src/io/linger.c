/* Lingering close of a stream request's socket (as nginx, Apache and Go's
 * net/http do). Closing a socket that still has unread input makes Linux
 * answer with a reset (RFC 1122 4.2.2.13 allows it; Linux does it for TCP
 * and, as ECONNRESET, for Unix streams), and a TCP reset throws away
 * whatever we sent that the peer has not acknowledged yet: a client that
 * pipelined more than the handler read loses the end of its reply. So,
 * after shutdown(SHUT_WR), we read and throw away what the peer still
 * sends until it closes its side, and only then close.
 *
 * The common cases cost one or two system calls in the request's thread:
 * the peer has closed already (recv returns 0), or nothing is unread and
 * nothing of ours can be lost (Linux: SIOCOUTQ shows every byte we sent
 * acknowledged, but maybe our FIN; Unix streams have no send queue). Any
 * other socket goes to one background thread per process, which polls
 * every lingering socket and closes each at EOF, an error, once nothing
 * can be lost any more, or at a bound (LINGER_IDLE_MS without progress,
 * LINGER_TOTAL_MS in all, LINGER_DISCARD_MAX bytes thrown away). So no
 * handler thread, worker or loop waits for a slow client here. A forking
 * child, which exits right after its request, lingers in place instead:
 * a thread would die with it.
 *
 * The commonest case costs only the close: the request's own reads
 * already returned the peer's end of stream (peer_ended). A recv returns
 * 0 only once the receive queue is empty and the peer's FIN has been
 * taken, and a peer sends nothing after its FIN (RFC 793 3.5; a segment
 * beyond it is not data, Linux drops it), so nothing is unread now and
 * nothing can be later: Linux's reset on close (data unread, RFC 1122
 * 4.2.2.13) cannot happen, and close() sends our FIN after the reply
 * (the peer, half-closed, reads every byte and then the end). The
 * lingering close would have read that 0 again and closed at once.
 * shutdown() adds nothing then but where another process may still hold
 * the socket (a forking parent that has not closed its copy yet, a
 * service manager): close() alone would not end the stream there. A Unix
 * stream is the same: its peer cannot write after its shutdown or close.
 * Pipelined input the handler left in the kernel is not this case: no
 * recv returned 0. */
#include "base/base.h"
#include "base/clock.h"
#include "sched/sched.h"
#include "io/io.h"

#include <sys/ioctl.h>
#include <sys/resource.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/sockios.h> /* SIOCOUTQ */
#endif

#define LINGER_IDLE_MS     2000        /* no byte read and none of ours acknowledged */
#define LINGER_TOTAL_MS    30000       /* Apache's MAX_SECS_TO_LINGER, nginx's lingering_time */
#define LINGER_DISCARD_MAX (1 << 20)   /* bytes thrown away before we give up on the peer */
#define LINGER_SWEEP_MS    100         /* how often the send queues are looked at */
#define LINGER_MAX         1024        /* lingering sockets at most, per process ... */
#define LINGER_MIN         16          /* ... and at least, whatever RLIMIT_NOFILE says */
#define INLINE_READS       8           /* recv calls in the request's own thread */
#define INLINE_BUFFER      2048        /* small: it may be on a fiber's stack */
#define THREAD_BUFFER      (64 * 1024) /* the lingerer's own ... */
#define THREAD_READS       4           /* ... read this often per socket and wake-up */

typedef struct lingering {
    int fd;
    bool send_queue;  /* TCP: our unacknowledged bytes are lost on a reset */
    bool fin_queued;  /* shutdown(SHUT_WR) worked: SIOCOUTQ counts our FIN too */
    int outq;         /* SIOCOUTQ last seen; -1: unknown */
    size_t discarded; /* bytes read and thrown away */
    int64_t started_ms, progress_ms;
} lingering;

/* The process's lingerer. Only the thread removes entries and closes
 * their sockets, always under the lock, so a fork (which takes the lock
 * first) never sees a descriptor that is closed but still listed. */
static struct {
    pthread_mutex_t lock;
    bool running; /* the thread exists in this process */
    int cap;      /* LINGER_MIN..LINGER_MAX, a quarter of RLIMIT_NOFILE */
    int count;    /* entries [0, count) */
    lingering entries[LINGER_MAX];
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* ---- one socket ---- */

/* Reads and throws away what is waiting, at most max_reads times. Returns
 * the byte count, or -1 once the peer's side has ended (EOF or an error:
 * nothing more can come, so nothing can cause a reset). *more: the reads
 * ran out before the socket was empty. */
static ssize_t discard(int fd, char *buf, size_t size, int max_reads, bool *more)
{
    ssize_t total = 0;
    *more = true;
    for (int i = 0; i < max_reads;) {
        ssize_t n = recv(fd, buf, size, MSG_DONTWAIT);
        if (n > 0) {
            total += n;
            i++;
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return -1;
        } else if (errno != EINTR) {
            *more = false;
            return total;
        }
    }
    return total;
}

/* How many bytes of ours a reset would still destroy: 0 when none. -1
 * when the system cannot tell (then only the peer's EOF or a bound ends
 * the lingering). Our FIN is not one of them: it has the last sequence
 * number, so an outq of 1 means every byte before it was acknowledged,
 * and if a reset replaces it the peer still reads all our data. */
static int unacknowledged(const lingering *e)
{
    if (!e->send_queue)
        return 0; /* a Unix stream's bytes are in the peer's queue already */
#if defined(SIOCOUTQ)
    int queued = 0;
    if (ioctl(e->fd, SIOCOUTQ, &queued) == 0)
        return e->fin_queued && queued > 0 ? queued - 1 : queued;
#endif
    return -1;
}

static bool expired(const lingering *e, int64_t now)
{
    return now - e->progress_ms >= LINGER_IDLE_MS || now - e->started_ms >= LINGER_TOTAL_MS;
}

/* Whether to close now, given what discard() found: the peer's side has
 * ended, or nothing is unread and nothing of ours can be lost. */
static bool may_close(lingering *e, int64_t now, ssize_t got, bool more)
{
    if (got < 0)
        return true;
    if (got > 0)
        e->progress_ms = now;
    e->discarded += (size_t)got;
    if (e->discarded >= LINGER_DISCARD_MAX)
        return true; /* a peer that only sends: it gets its reset */
    int outq = unacknowledged(e);
    if (!more && outq == 0)
        return true;
    if (outq >= 0 && (e->outq < 0 || outq < e->outq))
        e->progress_ms = now; /* the peer is still taking our bytes */
    e->outq = outq;
    return false;
}

/* One look at a lingering socket. Returns true when it may be closed. */
static bool linger_step(lingering *e, int64_t now, char *buf, size_t size, int max_reads)
{
    bool more;
    ssize_t got = discard(e->fd, buf, size, max_reads, &more);
    return may_close(e, now, got, more) || expired(e, now);
}

/* Until linger_step says done: for a process about to exit. */
static void linger_here(lingering *e)
{
    char buf[16 * 1024];
    for (;;) {
        int64_t now = ss__now_ms();
        if (linger_step(e, now, buf, sizeof buf, INLINE_READS))
            return;
        struct pollfd p = {.fd = e->fd, .events = POLLIN};
        (void)poll(&p, 1, LINGER_SWEEP_MS);
    }
}

/* ---- the lingerer thread ---- */

/* Closes and removes the entries marked done; the last entry (maybe one
 * added since the poll) moves into each freed slot. */
static void remove_done(const bool *done, int n)
{
    pthread_mutex_lock(&L.lock);
    for (int i = n - 1; i >= 0; i--) {
        if (!done[i])
            continue;
        close(L.entries[i].fd);
        L.entries[i] = L.entries[--L.count];
    }
    pthread_mutex_unlock(&L.lock);
}

/* The entries present now, as poll() wants them. With none left the
 * thread ends (returns 0): a process that no longer lingers holds no
 * thread for it, and the next hand-off starts one again. */
static int snapshot(struct pollfd *fds)
{
    pthread_mutex_lock(&L.lock);
    int n = L.count;
    for (int i = 0; i < n; i++)
        fds[i] = (struct pollfd){.fd = L.entries[i].fd, .events = POLLIN};
    if (n == 0)
        L.running = false;
    pthread_mutex_unlock(&L.lock);
    return n;
}

/* Entries [0, n) are the thread's to update until remove_done: adders
 * only ever write at index count and beyond. An entry added meanwhile is
 * first looked at when the poll's tick ends, at most LINGER_SWEEP_MS
 * later: no wake-up descriptor is needed. */
static void *lingerer_main(void *arg)
{
    (void)arg;
    static struct pollfd fds[LINGER_MAX];
    static bool done[LINGER_MAX];
    static char buf[THREAD_BUFFER];
    int64_t next_sweep = 0;
    int n;
    while ((n = snapshot(fds)) > 0) {
        (void)poll(fds, (nfds_t)n, LINGER_SWEEP_MS);
        int64_t now = ss__now_ms();
        bool sweep = now >= next_sweep;
        if (sweep)
            next_sweep = now + LINGER_SWEEP_MS;
        for (int i = 0; i < n; i++) {
            lingering *e = &L.entries[i];
            done[i] = fds[i].revents != 0 || sweep
                          ? linger_step(e, now, buf, sizeof buf, THREAD_READS)
                          : expired(e, now);
        }
        remove_done(done, n);
    }
    return NULL;
}

/* ---- fork ---- */

static void before_fork(void)
{
    pthread_mutex_lock(&L.lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&L.lock);
}

/* The thread is not in the child. The child's copies of the lingering
 * sockets are closed: they would keep those connections open for as long
 * as the child lives (the parent's lingerer still has them). */
static void after_fork_child(void)
{
    for (int i = 0; i < L.count; i++)
        close(L.entries[i].fd);
    L.count = 0;
    L.running = false;
    pthread_mutex_unlock(&L.lock);
}

static void register_atfork(void)
{
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* ---- starting ---- */

static int linger_cap(void)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY ||
        lim.rlim_cur / 4 >= LINGER_MAX)
        return LINGER_MAX;
    return lim.rlim_cur / 4 < LINGER_MIN ? LINGER_MIN : (int)(lim.rlim_cur / 4);
}

/* Detached, with every signal blocked: the application's signals are for
 * its own threads. Called under the lock, with nothing lingering. */
static bool start_thread(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    pthread_t thread;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&thread, &attr, lingerer_main, NULL);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    L.running = rc == 0;
    L.cap = linger_cap(); /* nothing lingers yet: the limit as it is now */
    return L.running;
}

/* False: no room (or no thread); the caller closes at once. */
static bool hand_off(const lingering *e)
{
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&L.lock);
    bool taken = (L.running || start_thread()) && L.count < L.cap;
    if (taken)
        L.entries[L.count++] = *e;
    pthread_mutex_unlock(&L.lock);
    return taken;
}

/* The first look, in the request's thread: one recv() when the peer has
 * closed already (the common case of a client that closes first), one
 * more (ioctl) when nothing is unread. A socket closed then with bytes of
 * ours unacknowledged would still be reset by any byte the peer sends
 * afterwards (a pipelined request 50 ms later, say), so it lingers too. */
static bool close_now(lingering *e)
{
    char buf[INLINE_BUFFER];
    bool more;
    ssize_t got = discard(e->fd, buf, sizeof buf, INLINE_READS, &more);
    return may_close(e, e->started_ms, got, more);
}

ss__linger_result ss__linger_close(int fd, bool send_queue, bool in_place, bool peer_ended)
{
    if (peer_ended) {
        if (in_place)
            shutdown(fd, SHUT_WR); /* another process may hold the socket */
        close(fd);
        return SS__CLOSED_AT_ONCE;
    }
    bool fin_queued = shutdown(fd, SHUT_WR) == 0;
    int64_t now = ss__now_ms();
    lingering e = {.fd = fd,
                   .send_queue = send_queue,
                   .fin_queued = fin_queued,
                   .outq = -1,
                   .started_ms = now,
                   .progress_ms = now};
    if (close_now(&e)) {
        close(fd);
        return SS__CLOSED_AT_ONCE;
    }
    if (in_place) {
        linger_here(&e);
        close(fd);
        return SS__LINGERED;
    }
    if (hand_off(&e))
        return SS__LINGERED;
    close(fd);
    return SS__LINGER_REFUSED;
}
