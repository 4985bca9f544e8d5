#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pipe2 */
#endif
#include "cli_deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- per-connection mode ---- */

static bool connected_stream(int fd)
{
    int type = 0, listening = 1;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
        return false;
    len = sizeof listening;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && !listening;
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* inetd gives the connection as fds 0 and 1 (and often 2): the server's
 * close must be the last, so 0 is pointed at /dev/null (1 and 2 by
 * cli_stdio_off_sockets). */
static int take_stdin(const cli_options *opts)
{
    if (!connected_stream(0)) {
        fprintf(stderr, "%s: --inetd: stdin is not a connected stream socket\n", opts->name);
        return -2;
    }
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 3);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0 || null < 0) {
        fprintf(stderr, "%s: --inetd: %s\n", opts->name, strerror(errno));
        return -2;
    }
    dup2(null, 0);
    close(null);
    return fd;
}

static bool listening_socket(int fd)
{
    int listening = 0;
    socklen_t len = sizeof listening;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

void cli_stdio_off_sockets(int connection)
{
    int null = -1;
    for (int fd = 1; fd <= 2; fd++) {
        if (!listening_socket(fd) && (connection < 0 || !same_file(fd, connection)))
            continue;
        if (null < 0 && (null = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
            return; /* SIGPIPE is ignored: the log is lost, the server runs */
        dup2(null, fd);
    }
    if (null >= 0)
        close(null);
}

/* systemd's Accept=yes: LISTEN_FDS=1 for this process, and fd 3 is a
 * connection rather than a listener. */
static int passed_connection(const cli_options *opts)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (opts->listens[1] != NULL || strncmp(opts->listen, "systemd:", 8) != 0 || pid == NULL ||
        fds == NULL || atol(pid) != (long)getpid() || strcmp(fds, "1") != 0 || !connected_stream(3))
        return -1;
    unsetenv("LISTEN_PID"); /* as the library does for what it adopts */
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    fcntl(3, F_SETFD, FD_CLOEXEC);
    return 3;
}

int cli_connection_fd(const cli_options *opts)
{
    return opts->inetd ? take_stdin(opts) : passed_connection(opts);
}

static char per_connection_line[160];

static void on_hangup_per_connection(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t n = write(2, per_connection_line, strlen(per_connection_line)); /* signal-safe */
    (void)n;
    errno = saved;
}

void cli_hangup_per_connection(const cli_options *opts)
{
    snprintf(per_connection_line, sizeof per_connection_line,
             "%s: SIGHUP ignored: serving one connection (no restart in per-connection mode)\n",
             opts->name);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hangup_per_connection;
    sa.sa_flags = SA_RESTART; /* the connection's waits go on */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

/* ---- restart on SIGHUP ---- */

static ss_server *restart_server;
static const cli_options *restart_opts;
static char **successor_argv;
static pid_t restart_pid; /* the server's process: a forked child ignores SIGHUP */
static int wake[2] = {-1, -1};
static atomic_bool busy;
static atomic_bool handed_over;
static atomic_bool stopping; /* the loop has ended: no restart from now on */
static pthread_t thread;
static bool thread_started;
static atomic_bool thread_running; /* restart_loop entered: the thread's start is over */
static char ignored_line[128];
static char stopping_line[128];

static void on_hangup(int sig)
{
    (void)sig;
    if (getpid() != restart_pid)
        return;
    int saved = errno;
    if (atomic_exchange(&busy, true)) {
        const char *line = atomic_load(&stopping) ? stopping_line : ignored_line;
        ssize_t n = write(2, line, strlen(line)); /* async-signal-safe */
        (void)n;
    } else {
        ssize_t n = write(wake[1], "r", 1);
        (void)n;
    }
    errno = saved;
}

/* The same command line, every --listen (and --inetd) replaced by one
 * "--listen systemd:": the successor adopts every socket, in order. */
static char **successor_command(const cli_options *opts)
{
    char **argv = calloc((size_t)opts->argc + 3, sizeof *argv);
    if (argv == NULL)
        return NULL;
    int n = 0;
    argv[n++] = opts->argv[0];
    argv[n++] = "--listen";
    argv[n++] = "systemd:";
    for (int i = 1; i < opts->argc; i++) {
        const char *a = opts->argv[i];
        if (strcmp(a, "--listen") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--listen=", 9) != 0)
            argv[n++] = opts->argv[i];
    }
    return argv;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Why a restart failed, in the words of a restart: the program that
 * could not be run, or the readiness the new process never reported. */
static void report_restart_failure(const char *name, int rc)
{
    if (rc == -ETIMEDOUT)
        cli_log_always(restart_opts,
                       "%s: restart failed: the new process did not say it was ready within "
                       "%d s (it was stopped); still serving",
                       name, CLI_RESTART_TIMEOUT);
    else if (rc == -ENOENT || rc == -EACCES || rc == -ENOEXEC)
        cli_log_always(restart_opts, "%s: restart failed: cannot run %s: %s; still serving", name,
                       successor_argv[0], ss_strerror(rc));
    else
        cli_log_always(restart_opts, "%s: restart failed: %s; still serving", name,
                       ss_strerror(rc));
}

/* One restart: true once the successor serves. */
static bool restart_once(void)
{
    const char *name = restart_opts->name;
    cli_log_always(restart_opts, "%s: SIGHUP: restarting", name);
    long long started = now_ms();
    pid_t pid = -1;
    int rc = ss_server_hand_over(restart_server, successor_argv, CLI_RESTART_TIMEOUT * 1000, &pid);
    if (rc < 0 && (rc == -ECANCELED || atomic_load(&stopping))) {
        cli_log_always(restart_opts, "%s: restart cancelled: the server is stopping", name);
        return true; /* nothing more to do */
    }
    if (rc < 0) {
        report_restart_failure(name, rc);
        return false;
    }
    cli_log_always(restart_opts, "%s: restart: pid %ld serves now (hand-over took %lld ms)", name,
                   (long)pid, now_ms() - started);
    atomic_store(&handed_over, true);
    ss_server_request_shutdown(restart_server); /* the loop ends; the caller drains */
    return true;
}

/* Each byte on the pipe: 'r' restarts, 'q' ends the thread. */
static void *restart_loop(void *arg)
{
    (void)arg;
    atomic_store(&thread_running, true);
    for (;;) {
        char c;
        ssize_t n = read(wake[0], &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == 'q' || atomic_load(&stopping))
            return NULL;
        if (restart_once())
            return NULL; /* busy stays set: later SIGHUPs are ignored */
        atomic_store(&busy, false);
    }
}

void cli_restart_enable(const cli_options *opts, ss_server *srv)
{
    restart_server = srv;
    restart_opts = opts;
    restart_pid = getpid();
    snprintf(ignored_line, sizeof ignored_line,
             "%s: SIGHUP ignored: a restart is already in progress\n", opts->name);
    snprintf(stopping_line, sizeof stopping_line, "%s: SIGHUP ignored: the server is stopping\n",
             opts->name);
    successor_argv = successor_command(opts);
    /* The thread blocks the signals the main thread handles: a signal the
     * kernel gave it would wait for its read to end (ThreadSanitizer
     * delays handlers so, and left SIGHUP and SIGTERM unanswered). */
    sigset_t handled, old;
    sigemptyset(&handled);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &handled, &old);
    bool started = successor_argv != NULL && pipe2(wake, O_CLOEXEC) == 0 &&
                   pthread_create(&thread, NULL, restart_loop, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!started) {
        cli_log_always(opts, "%s: SIGHUP restarts are off: %s", opts->name, strerror(errno));
        return;
    }
    thread_started = true;
    /* Worker processes (--processes) are forked next: a thread still
     * starting then may hold an allocator's lock (AddressSanitizer's has
     * no fork handler), which the child could never take. Bounded: 1 s. */
    for (int i = 0; i < 1000 && !atomic_load(&thread_running); i++)
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hangup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

void cli_restart_stopping(void)
{
    atomic_store(&stopping, true);
    atomic_store(&busy, true); /* a SIGHUP from now on is ignored */
}

bool cli_restart_disable(void)
{
    cli_restart_stopping();
    if (thread_started) {
        ssize_t n = write(wake[1], "q", 1);
        (void)n;
        pthread_join(thread, NULL);
        thread_started = false;
    }
    free(successor_argv);
    successor_argv = NULL;
    return atomic_load(&handed_over);
}
