#include "dispatch_support.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ---- handlers ---- */

/* Reads through the first '\n', or to the end of a datagram / stream. */
static ssize_t read_line(ss_request *req, char *buf, size_t size)
{
    size_t got = 0;
    while (got < size && memchr(buf, '\n', got) == NULL) {
        ssize_t n = ss_request_recv(req, buf + got, size - got);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int echo_line(ss_request *req, void *data)
{
    (void)data;
    char buf[512];
    ssize_t n = read_line(req, buf, sizeof buf);
    if (n <= 0)
        return (int)n;
    return ss_request_send_all(req, buf, (size_t)n);
}

/* Ends on "bye\n" as well as on EOF: with the forking dispatcher, other
 * children hold copies of this test's client sockets, so closing one
 * sends no EOF while they live. */
static int hold(ss_request *req, void *data)
{
    int rc = echo_line(req, data);
    char buf[512];
    while (rc >= 0) {
        ssize_t n = read_line(req, buf, sizeof buf);
        if (n <= 0 || (n == 4 && memcmp(buf, "bye\n", 4) == 0))
            return (int)(n < 0 ? n : 0);
    }
    return rc;
}

static int fail_at_once(ss_request *req, void *data)
{
    (void)req;
    (void)data;
    return -EPROTO;
}

static int echo_when_released(ss_request *req, void *data)
{
    td_gate *gate = data;
    atomic_fetch_add(&gate->entered, 1);
    long long end = ts_now_ms() + 5000;
    while (!atomic_load(&gate->open) && ts_now_ms() < end)
        usleep(1000);
    return echo_line(req, NULL);
}

void td_gate_init(td_gate *g)
{
    atomic_init(&g->open, false);
    atomic_init(&g->entered, 0);
}

typedef struct entered_count {
    td_gate *gate;
    int count;
} entered_count;

static bool has_entered(void *arg)
{
    entered_count *e = arg;
    return atomic_load(&e->gate->entered) >= e->count;
}

bool td_gate_wait_entered(td_gate *g, int count, int timeout_ms)
{
    return ts_wait_until(has_entered, &(entered_count){g, count}, timeout_ms);
}

const ss_handler td_echo_line = {.version = SS_HANDLER_VERSION, .handle = echo_line};
const ss_handler td_echo_when_released = {.version = SS_HANDLER_VERSION,
                                          .handle = echo_when_released};
const ss_handler td_hold = {.version = SS_HANDLER_VERSION, .handle = hold};
const ss_handler td_fail = {.version = SS_HANDLER_VERSION, .handle = fail_at_once};

/* ---- clients ---- */

void td_round_trip(int fd, const char *line)
{
    size_t len = strlen(line);
    ts_send(fd, line, len);
    char got[512] = {0};
    assert_true(len < sizeof got);
    assert_int_equal(ts_recv_exact(fd, got, len), len);
    assert_string_equal(got, line);
}

void td_release(int fd)
{
    ts_send(fd, "bye\n", 4);
    close(fd);
}

int td_held_past_stop(ss_server *srv)
{
    ts_runner runner;
    ts_start(&runner, srv, 5000);
    int fd = ts_connect(srv);
    td_round_trip(fd, "hi\n");
    assert_int_equal(ts_stop(&runner), 0);
    return fd;
}

bool td_quiet_for(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 0;
}

void td_expect(int fd, const char *line)
{
    char got[64] = {0};
    size_t len = strlen(line);
    assert_true(len < sizeof got);
    assert_int_equal(ts_recv_exact(fd, got, len), len);
    assert_string_equal(got, line);
}

void td_serve_once(ss_server *srv, const char *send, const char *want)
{
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fd = ts_connect(srv);
    if (send != NULL)
        ts_send(fd, send, strlen(send));
    td_expect(fd, want);
    close(fd);
    assert_true(td_wait_closed(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
}

static bool fds_are(void *arg)
{
    return ts_count_fds() == *(int *)arg;
}

bool td_wait_fds(int count, int timeout_ms)
{
    return ts_wait_until(fds_are, &count, timeout_ms);
}

/* ---- closing in another thread ---- */

static void *close_in_thread(void *arg)
{
    td_closer *c = arg;
    ss_server_close(c->srv);
    atomic_store(&c->done, true);
    return NULL;
}

void td_close_start(td_closer *c, ss_server *srv)
{
    c->srv = srv;
    atomic_init(&c->done, false);
    assert_int_equal(pthread_create(&c->thread, NULL, close_in_thread, c), 0);
}

static bool close_done(void *arg)
{
    return atomic_load(&((td_closer *)arg)->done);
}

bool td_close_returned(td_closer *c, int timeout_ms)
{
    if (!ts_wait_until(close_done, c, timeout_ms))
        return false;
    pthread_join(c->thread, NULL);
    return true;
}

/* ---- counters ---- */

ss_stats td_stats(const ss_server *srv)
{
    ss_stats st;
    ss_server_stats(srv, &st);
    return st;
}

void td_finish(ts_runner *runner, ss_server *srv, uint64_t handled, int timeout_ms)
{
    assert_true(td_wait_closed(srv, handled, timeout_ms));
    assert_int_equal(ts_stop(runner), 0);
    assert_int_equal(td_stats(srv).handled, handled);
    ss_server_free(srv);
}

typedef struct awaited {
    ss_server *srv;
    uint64_t value;
} awaited;

static bool closed_reached(void *arg)
{
    awaited *a = arg;
    return td_stats(a->srv).closed >= a->value;
}

static bool accepted_reached(void *arg)
{
    awaited *a = arg;
    return td_stats(a->srv).accepted >= a->value;
}

static bool tracked_is(void *arg)
{
    awaited *a = arg;
    return td_stats(a->srv).tracked == a->value;
}

bool td_wait_closed(ss_server *srv, uint64_t closed, int timeout_ms)
{
    awaited a = {srv, closed};
    return ts_wait_until(closed_reached, &a, timeout_ms);
}

bool td_wait_accepted(ss_server *srv, uint64_t accepted, int timeout_ms)
{
    awaited a = {srv, accepted};
    return ts_wait_until(accepted_reached, &a, timeout_ms);
}

bool td_wait_tracked(ss_server *srv, uint64_t tracked, int timeout_ms)
{
    awaited a = {srv, tracked};
    return ts_wait_until(tracked_is, &a, timeout_ms);
}

static bool active_is(void *arg)
{
    awaited *a = arg;
    return td_stats(a->srv).active == a->value;
}

bool td_wait_active(ss_server *srv, uint64_t active, int timeout_ms)
{
    awaited a = {srv, active};
    return ts_wait_until(active_is, &a, timeout_ms);
}

static bool queued_is(void *arg)
{
    awaited *a = arg;
    return td_stats(a->srv).queued == a->value;
}

bool td_wait_queued(ss_server *srv, uint64_t queued, int timeout_ms)
{
    awaited a = {srv, queued};
    return ts_wait_until(queued_is, &a, timeout_ms);
}

void td_quiet_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    (void)err;
    (void)data;
}

ss_server *td_proxy_server(const char *mode, const ss_handler *h, const ss_proxy_options *opts)
{
    ss_server *srv;
    assert_int_equal(
        ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_by_name(mode), h, NULL), 0);
    assert_int_equal(ss_server_set_proxy_protocol(srv, opts), 0);
    ss_server_on_handle_error(srv, td_quiet_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* ---- the test's own child ---- */

static pid_t own_child;

pid_t td_own_child(void)
{
    return own_child;
}

int td_own_child_setup(void **state)
{
    (void)state;
    own_child = fork();
    if (own_child == 0)
        _exit(72);
    return own_child > 0 ? 0 : -1;
}

int td_own_child_teardown(void **state)
{
    (void)state;
    int status = 0;
    pid_t pid = own_child, got;
    long long end = ts_now_ms() + 5000;
    while ((got = waitpid(pid, &status, WNOHANG)) == 0 && ts_now_ms() < end)
        usleep(1000); /* it exits at once, but may not have run yet */
    own_child = 0;
    if (got != pid) /* ECHILD: somebody reaped our child */
        fail_msg("own child %d: waitpid gave %d (%s)", (int)pid, (int)got,
                 got < 0 ? strerror(errno) : "still running");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 72);
    return 0;
}

/* ---- children seen through /proc ---- */

/* Fills pids with this process's children (but our own test child);
 * zombie[i] tells which have exited. Returns the count, -1 without /proc. */
static int list_children(pid_t *pids, bool *zombie, int max)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0 || pid == own_child)
            continue;
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        bool ok = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        char *end = ok ? strrchr(line, ')') : NULL; /* the name may hold anything */
        char state;
        int ppid;
        if (end == NULL || sscanf(end + 1, " %c %d", &state, &ppid) != 2 || ppid != getpid())
            continue;
        pids[n] = pid;
        zombie[n++] = state == 'Z';
    }
    closedir(d);
    return n;
}

int td_zombies(void)
{
    pid_t pids[256];
    bool zombie[256];
    int n = list_children(pids, zombie, 256);
    int count = 0;
    for (int i = 0; i < n; i++)
        count += zombie[i];
    return n < 0 ? -1 : count;
}

int td_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int td_reap_strays(int timeout_ms)
{
    pid_t pids[256];
    bool zombie[256];
    int n = list_children(pids, zombie, 256), reaped = 0;
    long long end = ts_now_ms() + timeout_ms;
    for (int i = 0; i < n; i++) {
        while (waitpid(pids[i], NULL, WNOHANG) == 0 && ts_now_ms() < end)
            usleep(1000);
        reaped++;
    }
    return n < 0 ? -1 : reaped;
}

/* ---- datagram handlers at close ---- */

void td_close_waits_for_datagram_handler(const ss_dispatcher *d, void (*configure)(ss_server *))
{
    td_gate gate;
    td_gate_init(&gate);
    ss_server *srv;
    int rc = ss_server_new(&srv, "udp://127.0.0.1:0", d, &td_echo_when_released, &gate);
    if (rc == SS_ENOTSUPPORTED)
        skip();
    assert_int_equal(rc, 0);
    configure(srv);
    ts_runner runner;
    ts_start(&runner, srv, 100);
    int fd = ts_connect(srv);
    ts_send(fd, "late\n", 5);
    /* In its handler, not just admitted: the pool's loop queues a datagram
     * (counted active) and close without block_on_close cancels what no
     * worker has taken yet, unanswered. */
    assert_true(td_gate_wait_entered(&gate, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    td_closer c;
    td_close_start(&c, srv);
    assert_false(td_close_returned(&c, 300)); /* the reply still needs the socket */
    atomic_store(&gate.open, true);
    assert_true(td_close_returned(&c, 5000));
    td_expect(fd, "late\n");
    close(fd);
    assert_int_equal(td_stats(srv).handled, 1);
    ss_server_free(srv);
}

int td_run_per_dispatcher(const char *group, const struct CMUnitTest *tests, size_t count, int argc,
                          char **argv, const ss_dispatcher **dispatcher)
{
    *dispatcher = ss_dispatch_by_name(argc > 1 ? argv[1] : "threading");
    if (*dispatcher == NULL) {
        fprintf(stderr, "unknown dispatcher %s\n", argv[1]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return _cmocka_run_group_tests(group, tests, count, NULL, NULL);
}

void *td_shared_new(size_t size)
{
    void *page = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    memset(page, 0, size); /* already zero; says so */
    return page;
}

void td_shared_free(void *p, size_t size)
{
    munmap(p, size);
}
