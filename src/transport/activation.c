/* Socket activation: the descriptors a service manager (systemd, or a
 * server handing its sockets to its successor) passes by the protocol of
 * sd_listen_fds(3), read here without libsystemd. The environment names
 * the process the sockets are for (LISTEN_PID), how many there are from
 * fd 3 (LISTEN_FDS) and, optionally, their names (LISTEN_FDNAMES,
 * colon-separated). The list is read once and kept: the variables are
 * unset then, so a later call could not read them again, and no child
 * inherits them. */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* systemd's own cap on LISTEN_FDS is the descriptor limit; this one only
 * keeps a malformed count from asking for gigabytes. */
#define ACTIVATION_MAX_FDS 4096

static pthread_mutex_t activation_lock = PTHREAD_MUTEX_INITIALIZER;
static ss__activated *activation_list; /* kept for the process's life */
static int activation_count = -1;      /* -1: not taken yet */

/* A decimal count or pid: digits only, no sign, no spaces, in range. */
static int parse_decimal(const char *text, long max, long *out)
{
    if (text[0] < '0' || text[0] > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (*end != '\0' || errno == ERANGE || value > max)
        return -EINVAL;
    *out = value;
    return 0;
}

static int check_pid(const char *text, const char **msg)
{
    long pid;
    if (parse_decimal(text, INT_MAX, &pid) < 0 || pid == 0) {
        *msg = "LISTEN_PID is not a process id";
        return -EINVAL;
    }
    if ((pid_t)pid != getpid()) {
        *msg = "LISTEN_PID names another process: the sockets are not for this one";
        return -ESRCH;
    }
    return 0;
}

static int read_count(const char *text, const char **msg)
{
    long count;
    if (parse_decimal(text, ACTIVATION_MAX_FDS, &count) < 0) {
        *msg = "LISTEN_FDS is not a count of descriptors (0 to 4096)";
        return -EINVAL;
    }
    return (int)count;
}

/* How many names "a:b:c" holds, as systemd splits it (separators not
 * coalesced: "a::c" is three, "" none). */
static int count_names(const char *names)
{
    int n = names[0] != '\0';
    for (const char *at = names; *at != '\0'; at++)
        n += *at == ':';
    return n;
}

/* Names from "a:b:c" into list[0..count). systemd's rules
 * (sd_listen_fds_with_names, fdname_is_valid): if LISTEN_FDNAMES is set
 * it names every descriptor, no more and no fewer, each name printable
 * ASCII of at most 255 bytes. An empty name, and every name when the
 * variable is absent, is "unknown", as systemd calls an unnamed socket. */
static int read_names(const char *names, ss__activated *list, int count, const char **msg)
{
    for (int i = 0; i < count; i++)
        strcpy(list[i].name, "unknown");
    if (names == NULL || count == 0)
        return 0;
    int given = count_names(names);
    if (given != count) {
        *msg = given > count ? "LISTEN_FDNAMES has more names than LISTEN_FDS has descriptors"
                             : "LISTEN_FDNAMES has fewer names than LISTEN_FDS has descriptors";
        return -EINVAL;
    }
    const char *at = names;
    for (int i = 0; i < count; i++, at++) {
        size_t len = strcspn(at, ":");
        if (len >= sizeof list[i].name) {
            *msg = "LISTEN_FDNAMES has a name longer than 255 bytes";
            return -EINVAL;
        }
        if (!ss__fdname_valid(at, len)) {
            *msg = "LISTEN_FDNAMES has a name with a control or non-ASCII character";
            return -EINVAL;
        }
        if (len > 0) {
            memcpy(list[i].name, at, len);
            list[i].name[len] = '\0';
        }
        at += len;
    }
    return 0;
}

/* Every descriptor must be open; each is made close-on-exec (systemd
 * passes them inheritable, and they must not leak into our children). */
static int claim_descriptors(ss__activated *list, int count, const char **msg)
{
    for (int i = 0; i < count; i++) {
        list[i].fd = 3 + i;
        int flags = fcntl(list[i].fd, F_GETFD);
        if (flags < 0) {
            *msg = "LISTEN_FDS counts a descriptor that is not open";
            return -EBADF;
        }
        if (fcntl(list[i].fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
            *msg = "a passed descriptor could not be made close-on-exec";
            return -errno;
        }
    }
    return 0;
}

/* Reads and checks the environment; on success leaves the list in
 * activation_list and unsets the variables. Called under the lock. */
static int take_environment(const char **msg)
{
    const char *pid = getenv("LISTEN_PID");
    const char *fds = getenv("LISTEN_FDS");
    if (!pid || !fds) {
        *msg = "no sockets were passed (LISTEN_PID and LISTEN_FDS are not both set)";
        return 0;
    }
    int rc = check_pid(pid, msg);
    int count = rc < 0 ? rc : read_count(fds, msg);
    if (count < 0)
        return count;
    ss__activated *list = calloc(count > 0 ? (size_t)count : 1, sizeof *list);
    if (!list) {
        *msg = "out of memory for the list of passed sockets";
        return -ENOMEM;
    }
    rc = read_names(getenv("LISTEN_FDNAMES"), list, count, msg);
    if (rc == 0)
        rc = claim_descriptors(list, count, msg);
    if (rc < 0) {
        free(list);
        return rc;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    activation_list = list;
    activation_count = count;
    *msg = count > 0 ? "sockets passed by socket activation" : "LISTEN_FDS is 0";
    return count;
}

int ss__activation_fds(const ss__activated **out, const char **msg)
{
    const char *why = NULL;
    pthread_mutex_lock(&activation_lock);
    int rc = activation_count;
    if (rc >= 0)
        why = "sockets passed by socket activation (taken before)";
    else
        rc = take_environment(&why);
    *out = activation_list;
    pthread_mutex_unlock(&activation_lock);
    if (msg)
        *msg = why;
    return rc;
}
