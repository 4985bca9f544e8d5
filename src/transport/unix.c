#define _GNU_SOURCE /* struct ucred for SO_PEERCRED */
/* Unix stream and Unix datagram servers (one table each), the socket
 * file's life cycle, its permission bits, and peer credentials.
 *
 * Socket-file rules (Python applies none of them):
 *   - a stale socket file (no socket is bound to it, see is_stale) is
 *     replaced on bind;
 *   - a live one is never stolen: bind fails with -EADDRINUSE;
 *   - a path that is not a socket is never deleted: bind fails with -EEXIST;
 *   - server_close removes the file this server created, if it is still
 *     that very file (same device and inode) and only in the process that
 *     bound it (a forked child closing its copy leaves it alone). */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_abstract(const ss__listener *l)
{
    return l->url.path[0] == '@';
}

static int unix_open(ss__listener *l, int socktype)
{
    int rc = ss__unix_address(l->url.path, &l->addr, &l->addr_len);
    return rc < 0 ? rc : ss__open_server_socket(l, AF_UNIX, socktype);
}

static int unix_stream_open(ss__listener *l)
{
    return unix_open(l, SOCK_STREAM);
}

static int unixgram_open(ss__listener *l)
{
    return unix_open(l, SOCK_DGRAM);
}

/* Is a socket bound to the file? One non-blocking connect answers without
 * waiting: "refused" (no socket behind the inode) or "gone" mean no;
 * anything else - connected, backlog full, wrong socket type, no
 * permission - counts as yes, so doubt never deletes a file. */
static bool probe_refused(const ss__listener *l, int socktype)
{
    int fd = ss__socket(AF_UNIX, socktype, 0);
    if (fd < 0 || ss__set_nonblocking(fd) < 0) {
        ss__close(&fd);
        return false;
    }
    bool refused = connect(fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0 &&
                   (errno == ECONNREFUSED || errno == ENOENT);
    ss__close(&fd);
    return refused;
}

/* A stream socket that is bound but not yet listening refuses a stream
 * connect exactly as a stale file does. The kernel looks the socket up by
 * the file's inode and checks its type before anything else (Linux
 * unix_find_bsd, the BSDs' unp_connect): a datagram connect to any bound
 * stream or seqpacket socket fails with EPROTOTYPE, to a bound datagram
 * socket it succeeds, and only a file no socket is bound to refuses it.
 * So the file is stale only if both probes are refused; the datagram one
 * goes first and spares a live stream server the probe connection. */
static bool is_stale(const ss__listener *l)
{
    return probe_refused(l, SOCK_DGRAM) && probe_refused(l, SOCK_STREAM);
}

/* After bind failed with EADDRINUSE: removes a stale socket file and
 * returns 0 (bind again), or says why the path must be left alone. */
static int clear_stale(const ss__listener *l)
{
    struct stat st;
    if (lstat(l->url.path, &st) < 0)
        return errno == ENOENT ? 0 : -EADDRINUSE;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    if (!is_stale(l))
        return -EADDRINUSE;
    if (unlink(l->url.path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static void remove_socket_file(ss__listener *l)
{
    struct stat st;
    if (!l->sockfile.created || l->sockfile.owner != getpid())
        return;
    l->sockfile.created = false;
    if (lstat(l->url.path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->sockfile.dev &&
        st.st_ino == l->sockfile.ino)
        unlink(l->url.path);
}

/* What was found at the path where our socket file should be: 0 if it is
 * a socket (recorded as ours), else why it is not: -ELOOP for a symbolic
 * link, -EEXIST for any other file put there since bind. */
static int check_socket_file(const struct stat *st)
{
    if (S_ISSOCK(st->st_mode))
        return 0;
    return S_ISLNK(st->st_mode) ? -ELOOP : -EEXIST;
}

static bool is_recorded_file(const ss__listener *l, const struct stat *st)
{
    return S_ISSOCK(st->st_mode) && st->st_dev == l->sockfile.dev && st->st_ino == l->sockfile.ino;
}

#ifdef O_PATH /* Linux */

/* Changes the mode of the file the recorded socket file is, never of what
 * a symbolic link put in its place points to: the name is opened without
 * following a link (O_PATH opens the socket file itself), checked to be
 * the recorded file, and that very inode is changed through its
 * /proc/self/fd entry (fchmod refuses O_PATH descriptors). */
static int chmod_recorded_file(const ss__listener *l)
{
    int fd = open(l->url.path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) < 0 ? -errno : check_socket_file(&st);
    if (rc == 0 && !is_recorded_file(l, &st))
        rc = -EEXIST;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (rc == 0 && chmod(proc, l->server->unix_mode.mode) < 0)
        rc = -errno;
    ss__close(&fd);
    return rc;
}

#else

/* Without O_PATH: the name is checked, then changed without following a
 * link (BSD and macOS support AT_SYMLINK_NOFOLLOW for fchmodat). */
static int chmod_recorded_file(const ss__listener *l)
{
    struct stat st;
    if (lstat(l->url.path, &st) < 0)
        return -errno;
    int rc = check_socket_file(&st);
    if (rc == 0 && !is_recorded_file(l, &st))
        rc = -EEXIST;
    if (rc == 0 &&
        fchmodat(AT_FDCWD, l->url.path, l->server->unix_mode.mode, AT_SYMLINK_NOFOLLOW) < 0)
        rc = -errno;
    return rc;
}

#endif

/* Records the file bind created (so close removes it and nothing else),
 * then gives it the requested permission bits if bind could not. */
static int own_socket_file(ss__listener *l, bool mode_applied)
{
    struct stat st;
    if (lstat(l->url.path, &st) < 0)
        return -errno;
    int rc = check_socket_file(&st);
    if (rc < 0)
        return rc; /* the name no longer is our socket: nothing of ours to record */
    l->sockfile.created = true;
    l->sockfile.dev = st.st_dev;
    l->sockfile.ino = st.st_ino;
    l->sockfile.owner = getpid();
    bool mode_wrong = (st.st_mode & 07777) != l->server->unix_mode.mode;
    if (l->server->unix_mode.mode_set && !mode_applied && mode_wrong)
        rc = chmod_recorded_file(l);
    if (rc < 0)
        remove_socket_file(l); /* a failed bind leaves nothing behind */
    return rc;
}

static int bind_once(ss__listener *l)
{
    return bind(l->fd, (const struct sockaddr *)&l->addr, l->addr_len) < 0 ? -errno : 0;
}

#if defined(__linux__) && defined(CLONE_FS)

/* Linux creates the socket file with the mode of the socket's own inode
 * less the umask (unix_bind_bsd), and fchmod on the unbound socket sets
 * that inode's mode. So with the umask out of the way the file is born
 * with exactly the requested bits: nothing is changed by name afterwards,
 * which no symbolic link swapped in can redirect. The umask is
 * process-wide, so it is cleared only in a helper thread that first gives
 * itself a private copy of it (unshare(CLONE_FS)); the application's
 * threads never see it change. */
typedef struct bind_job {
    ss__listener *l;
    int rc;
    bool mode_applied;
} bind_job;

static void *bind_with_private_umask(void *arg)
{
    bind_job *job = arg;
    /* If the copy is refused (a seccomp filter, ...), bind under the
     * process umask: the file then has at most the requested bits, and
     * own_socket_file adds the missing ones. */
    if (unshare(CLONE_FS) == 0) {
        umask(0);
        job->mode_applied = true;
    }
    job->rc = bind_once(job->l);
    return NULL;
}

static int bind_with_mode(ss__listener *l, bool *mode_applied)
{
    *mode_applied = false;
    if (fchmod(l->fd, l->server->unix_mode.mode) < 0)
        return bind_once(l); /* then own_socket_file changes the mode */
    bind_job job = {.l = l};
    sigset_t all, old;
    sigfillset(&all); /* the helper takes none of the application's signals */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int err = pthread_create(&thread, NULL, bind_with_private_umask, &job);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        return bind_once(l); /* no thread: as without unshare, below */
    pthread_join(thread, NULL);
    *mode_applied = job.mode_applied;
    return job.rc;
}

#else

static int bind_with_mode(ss__listener *l, bool *mode_applied)
{
    *mode_applied = false; /* own_socket_file changes it, checked, without following links */
    return bind_once(l);
}

#endif

static int bind_path(ss__listener *l, bool *mode_applied)
{
    *mode_applied = false;
    return l->server->unix_mode.mode_set ? bind_with_mode(l, mode_applied) : bind_once(l);
}

static int unix_bind(ss__listener *l)
{
    if (is_abstract(l))
        return bind_once(l); /* no file: the kernel frees the name with the socket */
    bool mode_applied;
    int rc = bind_path(l, &mode_applied);
    if (rc == -EADDRINUSE) {
        rc = clear_stale(l);
        if (rc == 0)
            rc = bind_path(l, &mode_applied);
    }
    return rc < 0 ? rc : own_socket_file(l, mode_applied);
}

static int unixgram_bind(ss__listener *l)
{
    int rc = unix_bind(l);
    if (rc == 0)
        ss__dgram_size_send_buffer(l);
    return rc;
}

static void unix_close(ss__listener *l)
{
    /* Unlink first: a server starting meanwhile then finds no file rather
     * than a stale one. (An adopted socket's file was not created here.) */
    remove_socket_file(l);
    ss__close_published(&l->fd);
}

static int unix_client_key(const ss__arrival *arrival, ss__client_key *key);

#ifdef __linux__
/* Linux refuses a connect to a Unix listener shut down for reading
 * (ECONNREFUSED, at once) and still hands out what was queued before:
 * nothing can be under way, so nothing to wait for. */
int ss__unix_stop_arrivals(ss__listener *l)
{
    return shutdown(l->fd, SHUT_RD) == 0 ? 0 : -errno;
}
#else
int ss__unix_stop_arrivals(ss__listener *l)
{
    (void)l;
    return -ENOTSUP; /* elsewhere SHUT_RD on a listener is not defined so */
}
#endif

static const ss__transport unix_transport = {
    .scheme = SS__SCHEME_UNIX,
    .socket_file = true,
    .peer_credentials = true,
    .open = unix_stream_open,
    .bind = unix_bind,
    .activate = ss__activate_listen,
    .get_request = ss__stream_get_request,
    .turn_away = ss__stream_turn_away,
    .recv = ss__stream_recv,
    .send_all = ss__stream_send_all,
    .flush_reply = ss__stream_flush_reply,
    .end_request = ss__stream_end_request,
    .client_key = unix_client_key,
    .stop_arrivals = ss__unix_stop_arrivals,
    .interrupt = ss__stream_interrupt,
    .end_reads = ss__stream_end_reads,
    .close = unix_close,
};

static const ss__transport unixgram_transport = {
    .scheme = SS__SCHEME_UNIXGRAM,
    .datagram = true,
    .replies_via_listener = true,
    .socket_file = true,
    .sender_holds_replies = true,
    .open = unixgram_open,
    .bind = unixgram_bind,
    .activate = ss__activate_none,
    .get_request = ss__dgram_get_request,
    .turn_away = ss__dgram_turn_away,
    .recv = ss__dgram_recv,
    .send_all = ss__dgram_send_all,
    .flush_reply = ss__dgram_flush_reply,
    .end_request = ss__dgram_end_request,
    .client_key = ss__client_key_none,
    .interrupt = ss__dgram_interrupt,
    .end_reads = ss__dgram_interrupt, /* never idle: nothing to end */
    .close = unix_close,
};

const ss__transport *ss__transport_unix(void)
{
    return &unix_transport;
}

const ss__transport *ss__transport_unixgram(void)
{
    return &unixgram_transport;
}

/* ---- public API ---- */

/* -EINVAL when no listener has a socket file (nothing the mode could
 * apply to), SS_ESTATE when every one that has is adopted: its file
 * exists already, and the rule is to refuse what would be ignored. */
static int socket_files_to_create(const ss_server *srv)
{
    int rc = -EINVAL;
    for (int i = 0; i < srv->nlisteners; i++) {
        const ss__listener *l = srv->listeners[i];
        if (!l->transport->socket_file || is_abstract(l))
            continue;
        if (!l->adopted)
            return 0;
        rc = SS_ESTATE;
    }
    return rc;
}

SS_API int ss_server_set_unix_mode(ss_server *srv, mode_t mode)
{
    if ((mode & ~(mode_t)07777) != 0)
        return -EINVAL;
    if (srv->state >= SS__BOUND)
        return SS_ESTATE;
    int rc = socket_files_to_create(srv);
    if (rc < 0)
        return rc;
    srv->unix_mode.mode_set = true;
    srv->unix_mode.mode = mode;
    return 0;
}

#if defined(SO_PEERCRED) && defined(__linux__)

static int peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || defined(__OpenBSD__) || \
    defined(__DragonFly__)

int getpeereid(int fd, uid_t *uid, gid_t *gid); /* hidden by strict POSIX modes */

static int peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
    *pid = -1; /* getpeereid() does not tell */
    return getpeereid(fd, uid, gid) < 0 ? -errno : 0;
}

#else

static int peer_credentials(int fd, pid_t *pid, uid_t *uid, gid_t *gid)
{
    (void)fd;
    (void)pid;
    (void)uid;
    (void)gid;
    return -ENOTSUP;
}

#endif

/* A Unix stream client is its user: what the kernel recorded at connect. */
_Static_assert(sizeof(uid_t) <= sizeof(((ss__client_key *)0)->bytes) - 1, "uid_t fits a key");

static int unix_client_key(const ss__arrival *arrival, ss__client_key *key)
{
    pid_t pid = -1; /* initialized: gcc -O2 cannot see every branch fill them */
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    int rc = peer_credentials(arrival->fd, &pid, &uid, &gid);
    if (rc < 0)
        return rc;
    key->bytes[0] = 'u';
    memcpy(key->bytes + 1, &uid, sizeof uid);
    key->len = (unsigned char)(1 + sizeof uid);
    return 0;
}

SS_API int ss_request_peer_credentials(const ss_request *req, pid_t *pid, uid_t *uid, gid_t *gid)
{
    if (!req->listener->transport->peer_credentials)
        return -ENOTSUP;
    pid_t p = -1; /* initialized: gcc -O2 cannot see every branch fill them */
    uid_t u = (uid_t)-1;
    gid_t g = (gid_t)-1;
    int rc = peer_credentials(req->fd, &p, &u, &g);
    if (rc < 0)
        return rc;
    if (pid != NULL)
        *pid = p;
    if (uid != NULL)
        *uid = u;
    if (gid != NULL)
        *gid = g;
    return 0;
}
