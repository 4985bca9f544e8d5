/* How a handler's blocking I/O waits (issue 11, items 1, 8, 12, 13):
 *   - on the sync dispatcher, a stop requested from anywhere (another
 *     thread, a signal handler on another thread) ends every wait of the
 *     handler with -ECANCELED: recv, read_line, send_all, a datagram reply;
 *   - a stop signal sent to a forking program's whole process group does
 *     not cancel the request a child is serving;
 *   - (the request timeout bounds each stall exactly once, not three
 *     times, on every dispatcher: tests/core/test_request_timeout.c);
 *   - a handled signal (no SA_RESTART) every 50 ms does not defeat the
 *     request timeout, for reads or for writes. */
#include "dispatch_support.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#define FLOOD_SIZE ((size_t)64 << 20) /* far more than both socket buffers hold */
static char flood[FLOOD_SIZE];        /* zero pages: costs nothing until sent */

/* What the handler saw, in a shared page: it may run in a forked child. */
typedef struct probe {
    atomic_bool started, done;
    atomic_int rc;         /* what the handler's I/O call returned */
    atomic_int pid;        /* the process running the handler ... */
    pthread_t thread;      /* ... and its thread, published by `started` */
    atomic_int last_error; /* handle_error's err (a datagram reply's) */
} probe;

static probe *probe_new(void)
{
    return td_shared_new(sizeof(probe));
}

static void probe_free(probe *p)
{
    td_shared_free(p, sizeof *p);
}

static void probe_start(probe *p)
{
    p->thread = pthread_self();
    atomic_store(&p->pid, (int)getpid());
    atomic_store(&p->started, true);
}

static int probe_end(probe *p, int rc)
{
    atomic_store(&p->rc, rc);
    atomic_store(&p->done, true);
    return rc < 0 ? rc : 0;
}

static int recv_idle(ss_request *req, void *data)
{
    char buf[8];
    probe_start(data);
    return probe_end(data, (int)ss_request_recv(req, buf, sizeof buf));
}

static int read_line_idle(ss_request *req, void *data)
{
    char line[64];
    probe_start(data);
    return probe_end(data, (int)ss_request_read_line(req, line, sizeof line));
}

static int send_flood(ss_request *req, void *data)
{
    probe_start(data);
    return probe_end(data, ss_request_send_all(req, flood, sizeof flood));
}

static void record_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    atomic_store(&((probe *)data)->last_error, err);
}

static ss_server *server_on(const char *url, const ss_dispatcher *d,
                            int (*handle)(ss_request *, void *), probe *p)
{
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, url, d, &h, p), 0);
    ss_server_on_handle_error(srv, record_error);
    return srv;
}

static bool flag_set(void *arg)
{
    return atomic_load((atomic_bool *)arg);
}

/* ---- serve_forever in a thread, to see whether it returns ---- */

typedef struct serving {
    ss_server *srv;
    pthread_t thread, stopper;
    bool has_stopper;
    atomic_bool returned, stopper_returned;
    int rc;
} serving;

static void *serve_main(void *arg)
{
    serving *s = arg;
    s->rc = ss_server_serve_forever(s->srv, -1);
    atomic_store(&s->returned, true);
    return NULL;
}

static void serve_start(serving *s, ss_server *srv)
{
    *s = (serving){.srv = srv};
    assert_int_equal(pthread_create(&s->thread, NULL, serve_main, s), 0);
}

/* ss_server_shutdown on a thread of its own, so a hang fails the test. */
static void *stopper_main(void *arg)
{
    serving *s = arg;
    ss_server_shutdown(s->srv);
    atomic_store(&s->stopper_returned, true);
    return NULL;
}

/* Joins the serving thread (and the stopper): call once whatever held
 * the handler has been let go. */
static void serve_join(serving *s)
{
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    if (s->has_stopper)
        assert_int_equal(pthread_join(s->stopper, NULL), 0);
}

/* ---- item 1: a stop ends the sync handler's waits ---- */

typedef enum stop_way { BY_SHUTDOWN, BY_REQUEST, BY_SIGNAL } stop_way;

static ss_server *signal_target;

static void request_stop_on_signal(int sig)
{
    (void)sig;
    ss_server_request_shutdown(signal_target);
}

static void raise_stop_signal(ss_server *srv)
{
    struct sigaction sa = {.sa_handler = request_stop_on_signal}, old;
    sigemptyset(&sa.sa_mask);
    signal_target = srv;
    sigaction(SIGUSR2, &sa, &old);
    raise(SIGUSR2); /* the handler runs on this thread, not the serving one */
    sigaction(SIGUSR2, &old, NULL);
}

/* Asks for the stop as `way` says, from this thread (not the serving
 * one). Returns true if serve_forever, and ss_server_shutdown when that
 * was the way, returned within 5 s. */
static bool stop_and_see_loop_end(serving *s, stop_way way)
{
    if (way == BY_SHUTDOWN) {
        assert_int_equal(pthread_create(&s->stopper, NULL, stopper_main, s), 0);
        s->has_stopper = true;
    }
    if (way == BY_REQUEST)
        ss_server_request_shutdown(s->srv);
    if (way == BY_SIGNAL)
        raise_stop_signal(s->srv);
    bool ended = ts_wait_until(flag_set, &s->returned, 5000);
    return ended && (!s->has_stopper || ts_wait_until(flag_set, &s->stopper_returned, 5000));
}

/* An idle client (or one that does not read); the sync handler waits on
 * it; a stop requested from another thread must end that wait. */
static void check_sync_stop(int (*handle)(ss_request *, void *), stop_way way)
{
    probe *p = probe_new();
    ss_server *srv = server_on("tcp://127.0.0.1:0", ss_dispatch_sync(), handle, p);
    serving s;
    serve_start(&s, srv);
    int fd = ts_connect(srv);
    assert_true(ts_wait_until(flag_set, &p->started, 5000));
    bool ended = stop_and_see_loop_end(&s, way);
    close(fd); /* on failure this ends the handler's wait, and the loop */
    serve_join(&s);
    assert_true(ended);
    assert_int_equal(s.rc, 0);
    assert_int_equal(atomic_load(&p->rc), -ECANCELED);
    ss_server_free(srv);
    probe_free(p);
}

/* Which wait, stopped which way: recv stopped each way, then the other
 * waits stopped by ss_server_shutdown from another thread. */
typedef struct stop_case {
    int (*handle)(ss_request *, void *);
    stop_way way;
} stop_case;

static stop_case sync_stops[] = {
    {recv_idle, BY_SHUTDOWN},      {recv_idle, BY_REQUEST},   {recv_idle, BY_SIGNAL},
    {read_line_idle, BY_SHUTDOWN}, {send_flood, BY_SHUTDOWN},
};

static void test_sync_stop_ends_wait(void **state)
{
    stop_case *c = *state;
    check_sync_stop(c->handle, c->way);
}

/* ss_server_handle_request runs the sync handler on its caller's thread
 * too: a stop from another thread ends the handler's wait, and the stop
 * stays pending, so the next handle_request returns -ECANCELED at once
 * instead of waiting for a client. */
typedef struct one_call {
    ss_server *srv;
    pthread_t thread;
    atomic_bool returned;
    atomic_int first, second;
} one_call;

static void *handle_twice(void *arg)
{
    one_call *c = arg;
    atomic_store(&c->first, ss_server_handle_request(c->srv));
    atomic_store(&c->second, ss_server_handle_request(c->srv));
    atomic_store(&c->returned, true);
    return NULL;
}

static void test_sync_stop_ends_wait_in_handle_request(void **state)
{
    (void)state;
    probe *p = probe_new();
    ss_server *srv = server_on("tcp://127.0.0.1:0", ss_dispatch_sync(), recv_idle, p);
    one_call c = {.srv = srv};
    assert_int_equal(pthread_create(&c.thread, NULL, handle_twice, &c), 0);
    int fd = ts_connect(srv);
    assert_true(ts_wait_until(flag_set, &p->started, 5000));
    ss_server_request_shutdown(srv);
    bool returned = ts_wait_until(flag_set, &c.returned, 5000);
    close(fd);
    if (!returned) { /* a second client lets a stuck second call return */
        int late = ts_connect(srv);
        close(late);
    }
    assert_int_equal(pthread_join(c.thread, NULL), 0);
    assert_true(returned);
    assert_int_equal(atomic_load(&p->rc), -ECANCELED);
    assert_int_equal(atomic_load(&c.first), 0);
    assert_int_equal(atomic_load(&c.second), -ECANCELED);
    ss_server_free(srv);
    probe_free(p);
}

/* ---- item 1: the datagram reply's wait too (Unix datagram: a receiver
 * whose queue is full makes sendto fail with EAGAIN) ---- */

static int reply_x(ss_request *req, void *data)
{
    (void)data;
    return ss_request_send_all(req, "x", 1);
}

static struct sockaddr_un unix_address(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    assert_true(len < sizeof a.sun_path);
    memcpy(a.sun_path, path, len + 1);
    return a;
}

static int bound_dgram_client(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = unix_address(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends requests until the server stops taking them off its queue for
 * 200 ms: it is then stuck replying to our full queue. */
static bool fill_until_stuck(int fd, const char *server_path)
{
    struct sockaddr_un a = unix_address(server_path);
    long long refused_since = -1, give_up = ts_now_ms() + 5000;
    while (ts_now_ms() < give_up) {
        if (sendto(fd, "q", 1, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof a) == 1) {
            refused_since = -1;
            continue;
        }
        if (refused_since < 0)
            refused_since = ts_now_ms();
        if (ts_now_ms() - refused_since >= 200)
            return true;
        poll(NULL, 0, 5);
    }
    return false;
}

static void test_sync_shutdown_ends_datagram_reply_wait(void **state)
{
    (void)state;
    char dir[256], server_path[300], client_path[300], url[320];
    ts_mkdtemp(dir, sizeof dir);
    snprintf(server_path, sizeof server_path, "%s/s", dir);
    snprintf(client_path, sizeof client_path, "%s/c", dir);
    snprintf(url, sizeof url, "unixgram:%s", server_path);
    probe *p = probe_new();
    ss_server *srv = server_on(url, ss_dispatch_sync(), reply_x, p);
    serving s;
    serve_start(&s, srv);
    int fd = bound_dgram_client(client_path);
    bool stuck = fill_until_stuck(fd, server_path);
    bool ended = stuck && stop_and_see_loop_end(&s, BY_SHUTDOWN);
    char buf[8];
    while (!atomic_load(&s.returned)) /* on failure: let the replies through */
        if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) < 0)
            poll(NULL, 0, 1);
    serve_join(&s);
    assert_true(stuck);
    assert_true(ended);
    assert_int_equal(atomic_load(&p->last_error), -ECANCELED);
    close(fd);
    ss_server_free(srv);
    probe_free(p);
    ts_rmdir(dir);
}

/* A dispatcher and a handler, for the tests run on each combination. */
typedef struct io_case {
    const ss_dispatcher *(*dispatcher)(void);
    const char *name;
    int (*handle)(ss_request *, void *);
} io_case;

static io_case each_dispatcher_sends[] = {
    {ss_dispatch_sync, "sync", send_flood},
    {ss_dispatch_threading, "threading", send_flood},
    {ss_dispatch_forking, "forking", send_flood},
    {ss_dispatch_pool, "pool", send_flood},
};

/* ---- item 13: a signal every 50 ms does not defeat the timeout ---- */

#define SIGNAL_TIMEOUT_MS 300

static void ignore_signal(int sig)
{
    (void)sig;
}

typedef struct pester {
    probe *target;
    pthread_t thread;
    atomic_bool stop;
    atomic_int sent;
} pester;

/* SIGUSR1 every 50 ms to the handler's thread (or its forked process)
 * until told to stop or the handler's I/O call has returned. */
static void *pester_main(void *arg)
{
    pester *ps = arg;
    probe *p = ps->target;
    while (!atomic_load(&ps->stop) && !atomic_load(&p->done)) {
        if (atomic_load(&p->started)) {
            if (atomic_load(&p->pid) == (int)getpid())
                pthread_kill(p->thread, SIGUSR1);
            else
                kill(atomic_load(&p->pid), SIGUSR1);
            atomic_fetch_add(&ps->sent, 1);
        }
        poll(NULL, 0, 50);
    }
    return NULL;
}

/* An idle (or non-reading) client under a 300 ms request timeout while
 * the handler is interrupted by a handled signal every 50 ms: the request
 * must still end, within 10 timeouts. */
static void check_timeout_under_signals(const ss_dispatcher *d, int (*handle)(ss_request *, void *))
{
    struct sigaction sa = {.sa_handler = ignore_signal}, old; /* sa_flags 0: no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    probe *p = probe_new();
    ss_server *srv = server_on("tcp://127.0.0.1:0", d, handle, p);
    ss_server_on_handle_error(srv, td_quiet_error);
    ss_server_set_request_timeout(srv, SIGNAL_TIMEOUT_MS);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    int fd = ts_connect(srv);
    pester ps = {.target = p};
    assert_int_equal(pthread_create(&ps.thread, NULL, pester_main, &ps), 0);
    bool closed = td_wait_closed(srv, 1, 10 * SIGNAL_TIMEOUT_MS);
    atomic_store(&ps.stop, true);
    assert_int_equal(pthread_join(ps.thread, NULL), 0);
    close(fd); /* on failure this ends the handler's wait */
    assert_true(closed);
    assert_true(atomic_load(&ps.sent) >= 3);
    assert_int_equal(atomic_load(&p->rc), -ETIMEDOUT);
    assert_int_equal(td_stats(srv).request_timeouts, 1);
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(srv);
    probe_free(p);
    sigaction(SIGUSR1, &old, NULL);
}

static io_case each_dispatcher_reads[] = {
    {ss_dispatch_sync, "sync", recv_idle},
    {ss_dispatch_threading, "threading", recv_idle},
    {ss_dispatch_forking, "forking", recv_idle},
    {ss_dispatch_pool, "pool", recv_idle},
};

static void test_signals_keep_timeout(void **state)
{
    io_case *c = *state;
    check_timeout_under_signals(c->dispatcher(), c->handle);
}

/* ---- item 8: a stop signal to the whole process group ---- */

/* The program under test, as the examples are written: a forking line
 * server whose SIGINT handler (no SA_RESTART) requests the stop, then a
 * drain. It runs in a process group of its own, children included. */
static ss_server *program_server;
static pid_t program_pid;

static void program_on_sigint(int sig)
{
    (void)sig;
    ss_server_request_shutdown(program_server);
}

static int prompt_then_echo_line(ss_request *req, void *data)
{
    (void)data;
    char line[64];
    int rc = ss_request_send_all(req, "> ", 2);
    ssize_t n = rc < 0 ? rc : ss_request_read_line(req, line, sizeof line);
    if (n <= 0)
        return n < 0 ? (int)n : -EPIPE;
    return ss_request_send_all(req, line, (size_t)n);
}

static void run_program(int port_out)
{
    setpgid(0, 0);
    struct sigaction sa = {.sa_handler = program_on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = prompt_then_echo_line};
    if (ss_server_new(&program_server, "tcp://127.0.0.1:0", ss_dispatch_forking(), &h, NULL) < 0)
        _exit(3);
    ss_server_set_request_timeout(program_server, 10000);
    int port = ss_server_port(program_server);
    if (write(port_out, &port, sizeof port) != sizeof port)
        _exit(4);
    int rc = ss_server_serve_forever(program_server, -1);
    int drained = ss_server_drain(program_server, 5000);
    ss_server_free(program_server);
    _exit(rc == 0 && drained == 0 ? 0 : 5);
}

static int start_program(void)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    program_pid = fork();
    assert_true(program_pid >= 0);
    if (program_pid == 0) {
        close(fds[0]);
        run_program(fds[1]);
    }
    setpgid(program_pid, program_pid); /* whichever of us is first */
    close(fds[1]);
    int port = 0;
    struct pollfd pf = {.fd = fds[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 5000), 1);
    assert_int_equal(read(fds[0], &port, sizeof port), (ssize_t)sizeof port);
    close(fds[0]);
    return port;
}

/* Waits (at most 10 s) for the program to exit; its exit status or -1. */
static int program_status(void)
{
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(program_pid, &status, WNOHANG) == program_pid) {
            program_pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        poll(NULL, 0, 10);
    }
    return -1;
}

static int end_program(void **state)
{
    (void)state;
    if (program_pid > 0) {
        kill(-program_pid, SIGKILL);
        waitpid(program_pid, NULL, 0);
        program_pid = 0;
    }
    return 0;
}

static void test_group_stop_signal_spares_forked_request(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", start_program());
    int fd = ts_connect_url(url);
    td_expect(fd, "> ");   /* the child runs the handler */
    ts_send(fd, "hel", 3); /* half a command: the child waits for the rest */
    poll(NULL, 0, 100);
    assert_int_equal(kill(-program_pid, SIGINT), 0); /* as Ctrl-C, KillMode=control-group */
    poll(NULL, 0, 500);
    ts_send(fd, "lo\n", 3);
    td_expect(fd, "hello\n");
    assert_true(ts_sees_eof(fd));
    close(fd);
    assert_int_equal(program_status(), 0); /* the parent stopped and drained */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_sync_stop_ends_wait, &sync_stops[0]),
        cmocka_unit_test_prestate(test_sync_stop_ends_wait, &sync_stops[1]),
        cmocka_unit_test_prestate(test_sync_stop_ends_wait, &sync_stops[2]),
        cmocka_unit_test_prestate(test_sync_stop_ends_wait, &sync_stops[3]),
        cmocka_unit_test_prestate(test_sync_stop_ends_wait, &sync_stops[4]),
        cmocka_unit_test(test_sync_stop_ends_wait_in_handle_request),
        cmocka_unit_test(test_sync_shutdown_ends_datagram_reply_wait),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_reads[0]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_reads[1]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_reads[2]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_reads[3]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_sends[0]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_sends[1]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_sends[2]),
        cmocka_unit_test_prestate(test_signals_keep_timeout, &each_dispatcher_sends[3]),
        cmocka_unit_test_teardown(test_group_stop_signal_spares_forked_request, end_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
