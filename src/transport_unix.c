#define _GNU_SOURCE /* struct ucred for SO_PEERCRED */
/* Unix stream and Unix datagram servers (one table each), the socket
 * file's life cycle, its permission bits, and peer credentials.
 *
 * Socket-file rules (Python applies none of them):
 *   - a stale socket file (connecting to it is refused: nobody serves it)
 *     is replaced on bind;
 *   - a live one is never stolen: bind fails with -EADDRINUSE;
 *   - a path that is not a socket is never deleted: bind fails with -EEXIST;
 *   - server_close removes the file this server created, if it is still
 *     that very file (same device and inode) and only in the process that
 *     bound it (a forked child closing its copy leaves it alone). */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_abstract(const ss_server *srv)
{
    return srv->url.path[0] == '@';
}

static int unix_open(ss_server *srv, int socktype)
{
    int rc = ss__unix_address(srv->url.path, &srv->addr, &srv->addr_len);
    return rc < 0 ? rc : ss__open_server_socket(srv, AF_UNIX, socktype);
}

static int unix_stream_open(ss_server *srv)
{
    return unix_open(srv, SOCK_STREAM);
}

static int unixgram_open(ss_server *srv)
{
    srv->max_packet_size = 8192; /* as for UDP */
    return unix_open(srv, SOCK_DGRAM);
}

/* Does anybody serve the socket file? A non-blocking connect of our own
 * type answers without waiting: only "refused" (nobody bound to it) or
 * "gone" mean stale. Anything else - accepted, backlog full, wrong socket
 * type, no permission - counts as live, so doubt never deletes a file.
 * A live stream server sees one connection that closes at once. */
static bool is_stale(const ss_server *srv, int socktype)
{
    int fd = ss__socket(AF_UNIX, socktype, 0);
    if (fd < 0 || ss__set_nonblocking(fd) < 0) {
        ss__close(&fd);
        return false;
    }
    bool stale = connect(fd, (const struct sockaddr *)&srv->addr, srv->addr_len) < 0 &&
                 (errno == ECONNREFUSED || errno == ENOENT);
    ss__close(&fd);
    return stale;
}

/* After bind failed with EADDRINUSE: removes a stale socket file and
 * returns 0 (bind again), or says why the path must be left alone. */
static int clear_stale(const ss_server *srv, int socktype)
{
    struct stat st;
    if (lstat(srv->url.path, &st) < 0)
        return errno == ENOENT ? 0 : -EADDRINUSE;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    if (!is_stale(srv, socktype))
        return -EADDRINUSE;
    if (unlink(srv->url.path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

static void remove_socket_file(ss_server *srv)
{
    struct stat st;
    if (!srv->sockfile.created || srv->sockfile.owner != getpid())
        return;
    srv->sockfile.created = false;
    if (lstat(srv->url.path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == srv->sockfile.dev &&
        st.st_ino == srv->sockfile.ino)
        unlink(srv->url.path);
}

/* Records the file bind created (so close removes it and nothing else),
 * then applies the requested permission bits. */
static int own_socket_file(ss_server *srv)
{
    struct stat st;
    if (lstat(srv->url.path, &st) < 0)
        return -errno;
    srv->sockfile.created = true;
    srv->sockfile.dev = st.st_dev;
    srv->sockfile.ino = st.st_ino;
    srv->sockfile.owner = getpid();
    if (srv->sockfile.mode_set && chmod(srv->url.path, srv->sockfile.mode) < 0) {
        int rc = -errno;
        remove_socket_file(srv); /* a failed bind leaves nothing behind */
        return rc;
    }
    return 0;
}

static int bind_once(ss_server *srv)
{
    return bind(srv->fd, (const struct sockaddr *)&srv->addr, srv->addr_len) < 0 ? -errno : 0;
}

static int unix_bind(ss_server *srv, int socktype)
{
    int rc = bind_once(srv);
    if (is_abstract(srv))
        return rc; /* no file: the kernel frees the name with the socket */
    if (rc == -EADDRINUSE) {
        rc = clear_stale(srv, socktype);
        if (rc == 0)
            rc = bind_once(srv);
    }
    return rc < 0 ? rc : own_socket_file(srv);
}

static int unix_stream_bind(ss_server *srv)
{
    return unix_bind(srv, SOCK_STREAM);
}

static int unixgram_bind(ss_server *srv)
{
    return unix_bind(srv, SOCK_DGRAM);
}

static void unix_close(ss_server *srv)
{
    /* Unlink first: a server starting meanwhile then finds no file rather
     * than a stale one. */
    remove_socket_file(srv);
    ss__close(&srv->fd);
}

static int unix_client_key(const ss_request *req, ss__client_key *key);

static const ss__transport unix_transport = {
    .scheme = SS__SCHEME_UNIX,
    .open = unix_stream_open,
    .bind = unix_stream_bind,
    .activate = ss__activate_listen,
    .get_request = ss__stream_get_request,
    .recv = ss__stream_recv,
    .send_all = ss__stream_send_all,
    .complete = ss__stream_complete,
    .shutdown_request = ss__stream_shutdown_request,
    .client_key = unix_client_key,
    .interrupt = ss__stream_interrupt,
    .close = unix_close,
};

static const ss__transport unixgram_transport = {
    .scheme = SS__SCHEME_UNIXGRAM,
    .open = unixgram_open,
    .bind = unixgram_bind,
    .activate = ss__activate_none,
    .get_request = ss__dgram_get_request,
    .recv = ss__dgram_recv,
    .send_all = ss__dgram_send_all,
    .complete = ss__dgram_complete,
    .shutdown_request = ss__dgram_shutdown_request,
    .client_key = ss__client_key_none,
    .interrupt = ss__dgram_interrupt,
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

SS_API int ss_server_set_unix_mode(ss_server *srv, mode_t mode)
{
    bool unix_path = (srv->transport == &unix_transport || srv->transport == &unixgram_transport) &&
                     !is_abstract(srv);
    if (!unix_path || (mode & ~(mode_t)07777) != 0)
        return -EINVAL;
    if (srv->state >= SS__BOUND)
        return SS_ESTATE;
    srv->sockfile.mode_set = true;
    srv->sockfile.mode = mode;
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

static int unix_client_key(const ss_request *req, ss__client_key *key)
{
    uid_t uid;
    int rc = ss_request_peer_credentials(req, NULL, &uid, NULL);
    if (rc < 0)
        return rc;
    key->bytes[0] = 'u';
    memcpy(key->bytes + 1, &uid, sizeof uid);
    key->len = (unsigned char)(1 + sizeof uid);
    return 0;
}

SS_API int ss_request_peer_credentials(const ss_request *req, pid_t *pid, uid_t *uid, gid_t *gid)
{
    if (req->server->transport != &unix_transport)
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
