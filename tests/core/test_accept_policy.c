/* Accept-error policy under real descriptor exhaustion: a server whose fd
 * table is full sheds waiting clients instead of leaving them hanging, does
 * not spin while saturated, counts the errors by errno, reports the burst
 * once, and serves again by itself once descriptors are free. The server
 * runs in a child process so the lowered RLIMIT_NOFILE cannot disturb the
 * test's own clients. */
#include "support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define SATURATED_MS 1000

/* What the child reports back through a pipe when it is done. */
typedef struct report {
    long cpu_ms_while_saturated;
    ss_stats stats;
    int warnings;
} report;

/* State of the child's server, touched only by its serving thread. */
static struct {
    int fillers[64];
    int nfillers;
    long long first_error_ms;
    long cpu_at_first_error;
    long cpu_while_saturated;
    int warnings;
} child;

static long cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000 +
           ru.ru_stime.tv_usec / 1000;
}

static int echo(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    return n > 0 ? ss_request_send_all(req, buf, (size_t)n) : (int)n;
}

static void count_warnings(ss_server *srv, ss_log_level level, const char *msg, void *data)
{
    (void)srv;
    (void)msg;
    (void)data;
    if (level == SS_LOG_WARNING)
        child.warnings++;
}

static pid_t test_process;

/* After SATURATED_MS of exhaustion, "clients leave": the fillers close.
 * If the test itself has gone (it failed), the server stops too, rather
 * than serving forever as an orphan. */
static void release_when_due(ss_server *srv, void *data)
{
    (void)data;
    if (getppid() != test_process)
        ss_server_request_shutdown(srv);
    ss_stats st;
    ss_server_stats(srv, &st);
    if (st.accept_emfile == 0 || child.nfillers == 0)
        return;
    if (child.first_error_ms == 0) {
        child.first_error_ms = ts_now_ms();
        child.cpu_at_first_error = cpu_ms();
    } else if (ts_now_ms() - child.first_error_ms >= SATURATED_MS) {
        child.cpu_while_saturated = cpu_ms() - child.cpu_at_first_error;
        while (child.nfillers > 0)
            close(child.fillers[--child.nfillers]);
    }
}

static void fill_fd_table(void)
{
    int fd;
    while (child.nfillers < 64 && (fd = dup(0)) >= 0)
        child.fillers[child.nfillers++] = fd;
}

/* The child: serve with a full fd table until told to stop by SIGTERM. */
static ss_server *child_server;

static void on_term(int sig)
{
    (void)sig;
    ss_server_request_shutdown(child_server);
}

static void run_child(int port_pipe, int report_pipe)
{
    static const ss_handler h = {.version = SS_HANDLER_VERSION, .handle = echo};
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = (rlim_t)ts_count_fds() + 12; /* the server's own 4, then fillers */
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0 ||
        ss_server_new(&child_server, "tcp://127.0.0.1:0", NULL, &h, NULL) != 0)
        _exit(3);
    ss_server_set_log(child_server, count_warnings);
    ss_server_on_service_actions(child_server, release_when_due);
    signal(SIGTERM, on_term);
    fill_fd_table();
    int port = ss_server_port(child_server);
    if (write(port_pipe, &port, sizeof port) != sizeof port)
        _exit(4);
    ss_server_serve_forever(child_server, 10);
    report r = {.cpu_ms_while_saturated = child.cpu_while_saturated, .warnings = child.warnings};
    ss_server_stats(child_server, &r.stats);
    if (write(report_pipe, &r, sizeof r) != sizeof r)
        _exit(5);
    _exit(0);
}

/* A client that was shed sees its connection end; it is never left hanging. */
static void expect_shed(int port)
{
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    int fd = ts_connect_url(url);
    long long start = ts_now_ms();
    assert_true(ts_sees_eof(fd));
    assert_true(ts_now_ms() - start < 3000);
    close(fd);
}

static bool echo_works(int port)
{
    char url[64], got[3] = {0};
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    int fd = ts_connect_url(url);
    ts_send(fd, "hi", 2);
    size_t n = ts_recv_exact(fd, got, 2);
    close(fd);
    return n == 2 && strcmp(got, "hi") == 0;
}

static void test_emfile_sheds_without_spinning_and_recovers(void **state)
{
    (void)state;
    int port_pipe[2], report_pipe[2];
    assert_int_equal(pipe(port_pipe), 0);
    assert_int_equal(pipe(report_pipe), 0);
    test_process = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        run_child(port_pipe[1], report_pipe[1]);
    int port = 0;
    assert_int_equal(read(port_pipe[0], &port, sizeof port), (ssize_t)sizeof port);

    expect_shed(port); /* the table is full: the client is closed, not queued forever */
    expect_shed(port);
    long long deadline = ts_now_ms() + 10000;
    bool served = false;
    while (!served && ts_now_ms() < deadline) /* until the fillers are released */
        served = echo_works(port);
    assert_true(served);

    kill(pid, SIGTERM);
    report r;
    assert_int_equal(read(report_pipe[0], &r, sizeof r), (ssize_t)sizeof r);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(r.stats.accept_emfile >= 1);
    assert_true(r.stats.shed >= 2);
    assert_true(r.warnings >= 1 && r.warnings <= (int)r.stats.shed); /* once per burst */
    /* a spinning loop would burn the whole second; back-off uses a sliver */
    assert_true(r.cpu_ms_while_saturated < 300);
    close(port_pipe[0]);
    close(port_pipe[1]);
    close(report_pipe[0]);
    close(report_pipe[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emfile_sheds_without_spinning_and_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
