/* Zero-downtime restart (ss_server_hand_over): the server starts its
 * successor (fork + exec of the argv it is given) with its listening
 * sockets passed by the socket-activation protocol (LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES: transport/activation.c is the other end),
 * and waits for the successor's "READY=1" on a notification socket named
 * in its NOTIFY_SOCKET (transport/notify.c), as systemd's Type=notify
 * does. Only once the successor says it is serving does this server stop
 * taking clients from the sockets: the very same sockets, so nothing
 * queued on them is reset, and nobody is refused while the successor
 * starts (both processes may accept for a moment; either serves). If the
 * successor dies or stays silent past the timeout, this server has lost
 * nothing: it keeps serving and says why. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define STOP_GRACE_MS  1000 /* a successor that was never ready: SIGTERM, then SIGKILL */
#define CHILD_CHECK_MS 50   /* how often the wait looks whether the successor died */
#define PID_DIGITS     24
#define MAX_HANDOVER   64 /* listening sockets a server may hand over */

typedef struct ss__handover_listener {
    int fd;
    char name[256];
} ss__handover_listener;

/* Everything the child needs, made before the fork: after it, in a
 * process with threads, only async-signal-safe calls are allowed. */
typedef struct successor_plan {
    char path[PATH_MAX]; /* argv[0], found on PATH when it has no '/' */
    char **envp;
    char *pid_slot; /* where the child writes its pid, inside envp's LISTEN_PID= */
    char *strings;  /* the new variables' text */
    int fds[MAX_HANDOVER];
    int tmp[MAX_HANDOVER];
    int nfds;
    unsigned stop_events; /* srv->stop_events when the hand-over began */
    char notify_name[128];
    int notify_fd;
    /* The child writes exec's errno here if it cannot become the program;
     * close-on-exec, so an exec that works leaves it at end of file. */
    int exec_error[2];
} successor_plan;

/* ---- the server's side ---- */

/* Its listening sockets, with the names the successor will see in
 * LISTEN_FDNAMES: the name one was adopted with, else its scheme
 * ("tcp", "unix", ...). */
static int handover_listeners(ss_server *srv, ss__handover_listener *out, int max)
{
    int n = 0;
    for (int i = 0; i < srv->nlisteners; i++) {
        const ss__listener *l = srv->listeners[i];
        if (l->fd < 0)
            continue;
        if (n == max)
            return -E2BIG;
        out[n].fd = l->fd;
        snprintf(out[n].name, sizeof out[n].name, "%s",
                 l->name[0] != '\0' ? l->name : ss__scheme_name(l->url.scheme));
        n++;
    }
    return n;
}

/* From now on the successor alone takes clients off the sockets: the
 * loop stops polling them (listener_wanted), and neither drain nor close
 * may change them for the successor (no stop_arrivals, no unlink of the
 * socket file): this process only closes its copies. */
void ss__listeners_handed_over(ss_server *srv)
{
    for (int i = 0; i < srv->nlisteners; i++) {
        srv->listeners[i]->sockfile.created = false;
        srv->listeners[i]->shared = true;
    }
    atomic_store(&srv->handed_over, true);
    ss__server_wake(srv);
}

/* ---- before the fork ---- */

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* execvp's search, done here since the child may not call malloc. */
static int find_program(const char *name, char *out, size_t size)
{
    if (strchr(name, '/') != NULL)
        return snprintf(out, size, "%s", name) < (int)size ? 0 : -ENAMETOOLONG;
    const char *path = getenv("PATH");
    for (const char *dir = path ? path : "/usr/bin:/bin"; dir != NULL;) {
        size_t len = strcspn(dir, ":");
        int n = snprintf(out, size, "%.*s/%s", (int)len, len ? dir : ".", name);
        if (n > 0 && (size_t)n < size && executable(out))
            return 0;
        dir = dir[len] == ':' ? dir + len + 1 : NULL;
    }
    return -ENOENT;
}

static bool replaced_variable(const char *entry)
{
    static const char *const names[] = {
        "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "NOTIFY_SOCKET=", SS__NOTIFY_NEXT "="};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strncmp(entry, names[i], strlen(names[i])) == 0)
            return true;
    return false;
}

/* The new variables, one string each in plan->strings. */
static int format_variables(successor_plan *plan, const ss__handover_listener *ls, char **vars)
{
    size_t size = 256 + sizeof plan->notify_name * 2 + PID_DIGITS;
    for (int i = 0; i < plan->nfds; i++)
        size += strlen(ls[i].name) + 1;
    const char *upstream = getenv("NOTIFY_SOCKET");
    size += upstream ? strlen(upstream) : 0;
    char *s = plan->strings = malloc(size);
    if (s == NULL)
        return -ENOMEM;
    int n = 0;
    vars[n++] = s;
    s += sprintf(s, "LISTEN_FDS=%d", plan->nfds) + 1;
    vars[n++] = s;
    s += sprintf(s, "LISTEN_FDNAMES=");
    for (int i = 0; i < plan->nfds; i++)
        s += sprintf(s, "%s%s", i ? ":" : "", ls[i].name);
    s++;
    vars[n++] = s;
    s += sprintf(s, "NOTIFY_SOCKET=%s", plan->notify_name) + 1;
    if (upstream != NULL && upstream[0] != '\0') {
        vars[n++] = s;
        s += sprintf(s, "%s=%s", SS__NOTIFY_NEXT, upstream) + 1;
    }
    vars[n++] = s;
    plan->pid_slot = s + sprintf(s, "LISTEN_PID=");
    memset(plan->pid_slot, 0, PID_DIGITS);
    return n;
}

static int build_environment(successor_plan *plan, const ss__handover_listener *ls)
{
    size_t count = 0;
    while (environ != NULL && environ[count] != NULL)
        count++;
    plan->envp = calloc(count + 6, sizeof *plan->envp);
    if (plan->envp == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < count; i++)
        if (!replaced_variable(environ[i]))
            plan->envp[n++] = environ[i];
    int added = format_variables(plan, ls, plan->envp + n);
    return added < 0 ? added : 0;
}

static void plan_free(successor_plan *plan)
{
    free(plan->envp);
    free(plan->strings);
    ss__notify_close(&plan->notify_fd, plan->notify_name);
    ss__close(&plan->exec_error[0]);
    ss__close(&plan->exec_error[1]);
}

static int make_plan(successor_plan *plan, ss_server *srv, char *const argv[])
{
    *plan = (successor_plan){.notify_fd = -1, .exec_error = {-1, -1}};
    ss__handover_listener ls[MAX_HANDOVER];
    plan->nfds = handover_listeners(srv, ls, MAX_HANDOVER);
    if (plan->nfds <= 0)
        return plan->nfds < 0 ? plan->nfds : SS_ESTATE;
    for (int i = 0; i < plan->nfds; i++)
        plan->fds[i] = ls[i].fd;
    int rc = find_program(argv[0], plan->path, sizeof plan->path);
    if (rc == 0) {
        plan->notify_fd = ss__notify_open(plan->notify_name, sizeof plan->notify_name);
        rc = plan->notify_fd < 0 ? plan->notify_fd : 0;
    }
    if (rc == 0)
        rc = build_environment(plan, ls);
    if (rc == 0)
        rc = ss__pipe(plan->exec_error);
    if (rc < 0)
        plan_free(plan);
    return rc;
}

/* ---- in the child: async-signal-safe calls only ---- */

static void write_pid(char *slot, pid_t pid)
{
    char digits[PID_DIGITS];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0 && n < PID_DIGITS - 1);
    for (int i = 0; i < n; i++)
        slot[i] = digits[n - 1 - i];
    slot[n] = '\0';
}

/* The sockets go to 3, 4, ... in order: first each is copied above that
 * range (so moving one cannot overwrite another), then onto its place,
 * where dup2 leaves it inheritable; the copies are close-on-exec. */
/* Why the child could not become the successor, for the parent. */
static _Noreturn void child_failed(int report_fd, int status)
{
    int err = errno;
    ssize_t n = write(report_fd, &err, sizeof err);
    (void)n;
    _exit(status);
}

static _Noreturn void become_successor(successor_plan *plan, char *const argv[])
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* the caller's thread may block some */
    write_pid(plan->pid_slot, getpid());
    int report = fcntl(plan->exec_error[1], F_DUPFD_CLOEXEC, 3 + plan->nfds); /* out of the way */
    if (report < 0)
        _exit(126);
    for (int i = 0; i < plan->nfds; i++)
        if ((plan->tmp[i] = fcntl(plan->fds[i], F_DUPFD_CLOEXEC, 3 + plan->nfds)) < 0)
            child_failed(report, 126);
    for (int i = 0; i < plan->nfds; i++)
        if (dup2(plan->tmp[i], 3 + i) < 0)
            child_failed(report, 126);
    execve(plan->path, argv, plan->envp);
    child_failed(report, 127);
}

/* ---- waiting for READY=1 ---- */

void ss__describe_exit(int status, char *buf, size_t size)
{
    if (status < 0)
        snprintf(buf, size, "ended (reaped elsewhere)");
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "exited with status %d%s", WEXITSTATUS(status),
                 WEXITSTATUS(status) == 127 ? " (could not be started)" : "");
}

/* True once the successor has ended (reaped here, *status set; -1 if
 * somebody else reaped it). */
static bool successor_ended(pid_t pid, int *status)
{
    pid_t rc = waitpid(pid, status, WNOHANG);
    if (rc < 0 && errno == ECHILD)
        *status = -1;
    return rc == pid || (rc < 0 && errno == ECHILD);
}

/* A stop was requested, or a drain begun, since the hand-over began. */
static bool stopping_since(ss_server *srv, unsigned since)
{
    return atomic_load(&srv->stop_events) != since;
}

/* 0 once it said READY=1; SS_ESUCCESSOR if it ended first; -ETIMEDOUT;
 * -ECANCELED at a stop (seen within CHILD_CHECK_MS). */
static int await_ready(ss_server *srv, const successor_plan *plan, pid_t pid, int timeout_ms,
                       int *status)
{
    int64_t deadline = ss__deadline(timeout_ms);
    for (;;) {
        if (stopping_since(srv, plan->stop_events))
            return -ECANCELED;
        int rc = ss__notify_take(plan->notify_fd, pid);
        if (rc > 0)
            return 0;
        if (successor_ended(pid, status))
            return SS_ESUCCESSOR;
        int left = ss__remaining_ms(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = plan->notify_fd, .events = POLLIN};
        poll(&p, 1, ss__min_wait(left, CHILD_CHECK_MS));
    }
}

/* A successor that never got ready is asked to stop, then made to. */
static void stop_successor(pid_t pid)
{
    int status;
    kill(pid, SIGTERM);
    int64_t deadline = ss__deadline(STOP_GRACE_MS);
    while (!successor_ended(pid, &status)) {
        if (ss__remaining_ms(deadline) == 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return;
        }
        poll(NULL, 0, CHILD_CHECK_MS);
    }
}

/* ---- the call ---- */

static void report_failure(ss_server *srv, pid_t pid, int rc, int status)
{
    char how[96];
    if (rc == -ECANCELED) {
        ss__log(srv->log, srv, srv->data, SS_LOG_WARNING,
                "hand-over cancelled: the server is stopping; successor pid %ld stopped",
                (long)pid);
        return;
    }
    if (rc == -ETIMEDOUT)
        snprintf(how, sizeof how, "was not ready in time (stopped)");
    else
        ss__describe_exit(status, how, sizeof how);
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR,
            "hand-over failed: successor pid %ld %s; still serving", (long)pid, how);
}

/* 0 once the child has become the program (the pipe's write end closed
 * by the exec), else the errno it reported, the child reaped. */
static int exec_result(ss_server *srv, successor_plan *plan, pid_t pid)
{
    ss__close(&plan->exec_error[1]);
    int err = 0;
    ssize_t n;
    for (;;) {
        struct pollfd p = {.fd = plan->exec_error[0], .events = POLLIN};
        poll(&p, 1, CHILD_CHECK_MS);
        n = read(plan->exec_error[0], &err, sizeof err);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            break;
    }
    if (n != (ssize_t)sizeof err || err <= 0)
        return 0;
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    ss__log(srv->log, srv, srv->data, SS_LOG_ERROR,
            "hand-over failed: cannot execute %s: %s; still serving", plan->path,
            ss_strerror(-err));
    return -err;
}

/* The service manager this server reports to (systemd, Type=notify)
 * learns that its main process is now the successor. */
static void tell_service_manager(pid_t pid)
{
    const char *upstream = getenv("NOTIFY_SOCKET");
    if (upstream == NULL || upstream[0] == '\0')
        return;
    char state[64];
    snprintf(state, sizeof state, "MAINPID=%ld", (long)pid);
    ss__notify_send(upstream, state);
}

/* The point of no return, under the lock a drain takes to begin: a stop
 * or drain that came first cancels the hand-over instead. */
static int commit(ss_server *srv, const successor_plan *plan)
{
    pthread_mutex_lock(&srv->lock);
    bool go = srv->state == SS__ACTIVE && !stopping_since(srv, plan->stop_events);
    if (go)
        ss__listeners_handed_over(srv);
    pthread_mutex_unlock(&srv->lock);
    return go ? 0 : -ECANCELED;
}

static int run_successor(ss_server *srv, successor_plan *plan, pid_t pid, int timeout_ms)
{
    int64_t started = ss__now_ms();
    int status = 0;
    int rc = exec_result(srv, plan, pid);
    if (rc < 0)
        return rc;
    rc = await_ready(srv, plan, pid, timeout_ms, &status);
    if (rc == 0)
        rc = commit(srv, plan);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        stop_successor(pid);
    if (rc < 0) {
        report_failure(srv, pid, rc, status);
        return rc;
    }
    tell_service_manager(pid);
    ss__log(srv->log, srv, srv->data, SS_LOG_INFO,
            "handed %d listening socket%s over to pid %ld in %lld ms; no longer accepting",
            plan->nfds, plan->nfds == 1 ? "" : "s", (long)pid, (long long)(ss__now_ms() - started));
    return 0;
}

/* Under the lock a drain takes to begin, so the sockets the child is
 * given are open until it has them. A stop already pending (the loop has
 * not taken it yet) cancels at once. */
static int start_successor(ss_server *srv, successor_plan *plan, char *const argv[], pid_t *pid)
{
    pthread_mutex_lock(&srv->lock);
    int rc = srv->state == SS__ACTIVE && !atomic_load(&srv->handed_over) ? 0 : SS_ESTATE;
    unsigned stop_events = atomic_load(&srv->stop_events);
    if (rc == 0 && ss__server_stop_requested(srv))
        rc = -ECANCELED;
    if (rc == 0)
        rc = make_plan(plan, srv, argv);
    plan->stop_events = stop_events;
    if (rc == 0 && (*pid = fork()) == 0)
        become_successor(plan, argv); /* the lock is the parent's business */
    if (rc == 0 && *pid < 0) {
        rc = -errno;
        plan_free(plan);
    }
    pthread_mutex_unlock(&srv->lock);
    return rc;
}

SS_API int ss_server_hand_over(ss_server *srv, char *const argv[], int timeout_ms, pid_t *successor)
{
    if (srv == NULL || argv == NULL || argv[0] == NULL)
        return -EINVAL;
    if (atomic_exchange(&srv->handing_over, true))
        return -EALREADY;
    successor_plan plan;
    pid_t pid = -1;
    int rc = start_successor(srv, &plan, argv, &pid);
    if (rc == 0) {
        rc = run_successor(srv, &plan, pid, timeout_ms);
        plan_free(&plan);
    }
    if (successor != NULL)
        *successor = pid;
    atomic_store(&srv->handing_over, false);
    return rc;
}
