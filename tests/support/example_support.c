#define _GNU_SOURCE /* pipe2 */
#include "example_support.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cmocka.h>

/* Every example a test started and has not reaped yet: a failed
 * assertion skips the test's own kill and reap, so the teardown ends
 * whatever is left instead of leaving it serving after the test. */
#define MAX_SPAWNED 16
static pid_t spawned[MAX_SPAWNED];

static void remember(pid_t pid)
{
    for (int i = 0; i < MAX_SPAWNED; i++)
        if (spawned[i] == 0) {
            spawned[i] = pid;
            return;
        }
    fail_msg("more than %d examples running at once", MAX_SPAWNED);
}

static void forget(pid_t pid)
{
    for (int i = 0; i < MAX_SPAWNED; i++)
        if (spawned[i] == pid)
            spawned[i] = 0;
}

int end_leftovers(void **state)
{
    (void)state;
    for (int i = 0; i < MAX_SPAWNED; i++) {
        if (spawned[i] == 0)
            continue;
        kill(-spawned[i], SIGKILL);
        kill(spawned[i], SIGKILL);
        waitpid(spawned[i], NULL, 0);
        spawned[i] = 0;
    }
    return 0;
}

/* Not forgotten by the teardown: its process group may still hold a
 * successor it started, which the teardown then ends. */
int ex_exit_status(pid_t pid, int timeout_ms)
{
    long long until = ts_now_ms() + timeout_ms;
    int status;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (ts_now_ms() > until)
            return -1;
        usleep(20000);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void spawn(child *c, const char *const argv[])
{
    int in[2], out[2], err[2];
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    c->log_len = 0;
    c->log[0] = '\0';
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        setpgid(0, 0); /* its own group, so the teardown can end its children */
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    remember(c->pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    c->in = in[1];
    c->out = out[0];
    c->err = err[0];
}

/* One read of up to size - 1 bytes within wait_ms; -1 on EOF. */
static ssize_t read_some(int fd, char *buf, size_t size, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (size <= 1 || poll(&p, 1, wait_ms) <= 0)
        return 0;
    ssize_t n = read(fd, buf, size - 1);
    return n <= 0 ? -1 : n;
}

size_t read_all(int fd, char *buf, size_t size, const char *until)
{
    size_t got = 0;
    long long end = ts_now_ms() + 5000;
    buf[0] = '\0';
    while (got + 1 < size && ts_now_ms() < end) {
        ssize_t n = read_some(fd, buf + got, size - got, 100);
        if (n < 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (until != NULL && strstr(buf, until) != NULL)
            break;
    }
    return got;
}

/* Appends what stderr has within wait_ms to c->log; false at EOF. */
static bool read_log(child *c, int wait_ms)
{
    ssize_t n = read_some(c->err, c->log + c->log_len, sizeof c->log - c->log_len, wait_ms);
    if (n > 0) {
        c->log_len += (size_t)n;
        c->log[c->log_len] = '\0';
    }
    return n >= 0;
}

void ex_log_pump(child *c, int wait_ms)
{
    read_log(c, wait_ms);
}

bool ex_log_until(child *c, const char *needle, int timeout_ms)
{
    long long end = ts_now_ms() + timeout_ms;
    while (strstr(c->log, needle) == NULL) {
        if (ts_now_ms() > end || !read_log(c, 50))
            return strstr(c->log, needle) != NULL;
    }
    return true;
}

void ex_log_lacks(const child *c, const char *text)
{
    if (strstr(c->log, text) != NULL)
        fail_msg("stderr holds '%s':\n%s", text, c->log);
}

void ex_log_has(const child *c, const char *text)
{
    if (strstr(c->log, text) == NULL)
        fail_msg("stderr lacks '%s':\n%s", text, c->log);
}

int reap(child *c)
{
    int status;
    long long end = ts_now_ms() + 5000;
    while (waitpid(c->pid, &status, WNOHANG) == 0) {
        if (ts_now_ms() > end)
            fail_msg("child did not exit in time; stderr:\n%s",
                     c->log); /* end_leftovers kills it */
        read_log(c, 5);
    }
    forget(c->pid);
    while (ts_now_ms() < end && read_log(c, 100)) /* the rest, up to EOF */
        continue;
    close(c->in);
    close(c->out);
    close(c->err);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void wait_until_asleep(pid_t pid);

/* Returns once the server is serving: its first "listening" line read and
 * its main thread asleep in its loop, so that a signal the test sends next
 * is never lost (see wait_until_asleep). */
void start_server_argv(child *c, const char *const argv[], char *url, size_t size)
{
    spawn(c, argv);
    char line[256];
    read_all(c->out, line, sizeof line, "\n");
    const char prefix[] = "listening on ";
    if (strncmp(line, prefix, sizeof prefix - 1) != 0) {
        read_log(c, 100);
        fail_msg("%s: unexpected first line: '%s'; stderr:\n%s", argv[0], line, c->log);
    }
    line[strcspn(line, "\n")] = '\0';
    snprintf(url, size, "%s", line + sizeof prefix - 1);
    wait_until_asleep(c->pid);
}

void start_server(child *c, const char *program, const char *listen, char *url, size_t size)
{
    const char *argv[] = {program, "--listen", listen, NULL};
    start_server_argv(c, argv, url, size);
}

void expect_refusal(const char *const argv[], int status, const char *message)
{
    child c;
    spawn(&c, argv);
    int got = reap(&c);
    if (got != status || strstr(c.log, message) == NULL)
        fail_msg("%s %s %s: exit %d, want %d and '%s' in:\n%s", argv[0], argv[1],
                 argv[2] != NULL ? argv[2] : "", got, status, message, c.log);
}

void expect(int fd, const char *want)
{
    char got[512] = {0};
    size_t n = strlen(want);
    assert_true(n < sizeof got);
    assert_int_equal(ts_recv_exact(fd, got, n), n);
    assert_string_equal(got, want);
}

size_t read_answer(int fd, char *buf, size_t size)
{
    int type;
    socklen_t len = sizeof type;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len), 0);
    if (type == SOCK_DGRAM) {
        ssize_t n = recv(fd, buf, size - 1, 0); /* the socket's 5 s timeout */
        buf[n > 0 ? n : 0] = '\0';
        return n > 0 ? (size_t)n : 0;
    }
    size_t got = 0;
    while (got + 1 < size && (got == 0 || buf[got - 1] != '\n')) {
        ssize_t n = recv(fd, buf + got, 1, 0);
        if (n <= 0)
            break;
        got++;
    }
    buf[got] = '\0';
    return got > 0 && buf[got - 1] == '\n' ? got : 0;
}

#ifdef __linux__
/* The state letter of the process's main thread from its stat line
 * ("pid (comm) S ...", comm may hold ") "); 'X' when it is gone. */
static char main_thread_state(pid_t pid)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", (long)pid, (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 'X';
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *end = strrchr(line, ')');
    return end != NULL && end[1] == ' ' ? end[2] : 'X';
}
#endif

/* ThreadSanitizer (GCC 12's libtsan; later LLVM fixed it with a CAS)
 * makes a thread's signal bookkeeping on its first blocking call and loses
 * a signal that comes while it does (SigCtx is not reentrant, the
 * handler's copy is overwritten): the server's main thread
 * makes that call just after its "listening" line, where a test signals.
 * Once the thread sleeps in a call, the bookkeeping exists. A busy
 * thread gets the signal after 5 s anyway; an ended one at once. */
static void wait_until_asleep(pid_t pid)
{
#ifdef __linux__
    long long until = ts_now_ms() + 5000;
    char state;
    while ((state = main_thread_state(pid)) != 'S' && state != 'Z' && state != 'X' &&
           ts_now_ms() < until)
        usleep(1000);
#else
    (void)pid;
#endif
}

void ex_signal(pid_t pid, int sig)
{
    wait_until_asleep(pid);
#ifdef SYS_tgkill
    assert_int_equal(syscall(SYS_tgkill, pid, pid, sig), 0);
#else
    assert_int_equal(kill(pid, sig), 0);
#endif
}

void ex_allow_threads_after_fork(void)
{
    const char *old = getenv("TSAN_OPTIONS");
    char options[1024];
    snprintf(options, sizeof options, "%s%sdie_after_fork=0", old != NULL ? old : "",
             old != NULL && old[0] != '\0' ? " " : "");
    setenv("TSAN_OPTIONS", options, 1);
}
