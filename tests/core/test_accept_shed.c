/* Out of descriptors, a stream server sheds every client waiting in its
 * queue at once, not one per back-off step: 60 clients that queue while
 * the fd table is full all see their connection end within a bounded
 * time (the longest back-off pause, 1 s, plus margin), over TCP and Unix
 * stream. The server runs in a child process with a lowered
 * RLIMIT_NOFILE and a full fd table for the whole test. */
#include "support.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define CLIENTS 60
/* The longest back-off pause is 1 s: every client must be shed within it
 * after the last one queued; 3x margin for a loaded machine. */
#define SHED_BOUND_MS 4000

static ss_server *child_server;
static pid_t test_process;

static void on_term(int sig)
{
    (void)sig;
    ss_server_request_shutdown(child_server);
}

static void stop_if_orphaned(ss_server *srv, void *data)
{
    (void)data;
    if (getppid() != test_process)
        ss_server_request_shutdown(srv);
}

static void quiet(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)level;
    (void)message;
    (void)data;
}

static void fill_fd_table(void)
{
    while (dup(0) >= 0)
        ;
}

/* The child: a server whose fd table stays full until SIGTERM; then it
 * writes its stats to report_pipe. */
static void run_child(const char *url, int ready_pipe, int report_pipe)
{
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = (rlim_t)ts_count_fds() + 12;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0 ||
        ss_server_new(&child_server, url, NULL, &ts_echo, NULL) != 0)
        _exit(3);
    ss_server_set_log(child_server, quiet);
    ss_server_on_service_actions(child_server, stop_if_orphaned);
    signal(SIGTERM, on_term);
    int port = ss_server_port(child_server);
    fill_fd_table();
    if (write(ready_pipe, &port, sizeof port) != sizeof port)
        _exit(4);
    ss_server_serve_forever(child_server, 10);
    ss_stats st;
    ss_server_stats(child_server, &st);
    if (write(report_pipe, &st, sizeof st) != sizeof st)
        _exit(5);
    _exit(0);
}

/* True once fd's connection has ended (EOF or reset). */
static bool ended(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* Waits until every client's connection has ended or the bound passes;
 * returns how many ended. */
static int wait_all_ended(int *fds, int n, long long deadline)
{
    int done = 0;
    while (done < n && ts_now_ms() < deadline) {
        struct pollfd p[CLIENTS];
        int k = 0;
        for (int i = 0; i < n; i++)
            if (fds[i] >= 0)
                p[k++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        poll(p, (nfds_t)k, 50);
        for (int i = 0; i < n; i++)
            if (fds[i] >= 0 && ended(fds[i])) {
                close(fds[i]);
                fds[i] = -1;
                done++;
            }
    }
    return done;
}

static void every_queued_client_is_shed(const char *url_template)
{
    char dir[256] = "", url[512];
    snprintf(url, sizeof url, "%s", url_template);
    if (strncmp(url, "unix:", 5) == 0) {
        ts_mkdtemp(dir, sizeof dir);
        snprintf(url, sizeof url, "unix:%s/shed.sock", dir);
    }
    int ready[2], report[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(report), 0);
    test_process = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        run_child(url, ready[1], report[1]);
    int port = 0;
    assert_int_equal(read(ready[0], &port, sizeof port), (ssize_t)sizeof port);
    if (port != 0)
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);

    int fds[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        fds[i] = ts_connect_url(url); /* completes in the kernel's queue */
    long long queued_at = ts_now_ms();
    int done = wait_all_ended(fds, CLIENTS, queued_at + SHED_BOUND_MS);
    long long took = ts_now_ms() - queued_at;
    for (int i = 0; i < CLIENTS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    print_message("%s: %d of %d clients shed, the last %lld ms after all had queued\n",
                  url_template, done, CLIENTS, took);

    kill(pid, SIGTERM);
    ss_stats st;
    assert_int_equal(read(report[0], &st, sizeof st), (ssize_t)sizeof st);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(done, CLIENTS);
    assert_true(st.shed >= CLIENTS);
    assert_int_equal(st.handled, 0);
    assert_true(st.accept_emfile >= 1);
    close(ready[0]);
    close(ready[1]);
    close(report[0]);
    close(report[1]);
    if (dir[0] != '\0')
        ts_rmdir(dir);
}

static void test_tcp_sheds_every_queued_client(void **state)
{
    (void)state;
    every_queued_client_is_shed("tcp://127.0.0.1:0");
}

static void test_unix_sheds_every_queued_client(void **state)
{
    (void)state;
    every_queued_client_is_shed("unix:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_sheds_every_queued_client),
        cmocka_unit_test(test_unix_sheds_every_queued_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
