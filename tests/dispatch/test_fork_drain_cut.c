/* forking: the drain's deadline, or a stop during the drain, ends every
 * wait of a forked child's handler (a read from a silent client, a write
 * to a client that does not read) with -ECANCELED, as the drain's
 * shutdown ends a thread's, whatever the application does with the
 * SIGTERM that follows. The application here catches SIGTERM with
 * SA_RESTART (its handler only notes it, as many do): before, the
 * child's read or write went on after the SIGTERM until the SIGKILL a
 * second later, so the handler never saw the stop (no log line, no
 * cleanup) and the child counted as failed. Under ThreadSanitizer a
 * forked child never runs a signal handler at all, which is how the
 * examples' "dropped: the server is stopping" line went missing there.
 * Over tcp and unix. */
#include "dispatch_support.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#define NOT_ENDED 1 /* the handler's wait has not returned (yet) */

/* Shared with the child: what its handler's wait returned. */
typedef struct finding {
    atomic_llong result;
} finding;

/* Reads from a client that sends nothing. */
static int read_silent(ss_request *req, void *data)
{
    finding *f = data;
    char buf[64];
    atomic_store(&f->result, (long long)ss_request_recv(req, buf, sizeof buf));
    return 0; /* exit 0: a handled request, whatever the read said */
}

/* Writes to a client that reads nothing, until a write fails. */
static int write_unread(ss_request *req, void *data)
{
    finding *f = data;
    static char chunk[65536];
    int rc;
    while ((rc = ss_request_send_all(req, chunk, sizeof chunk)) == 0)
        continue;
    atomic_store(&f->result, (long long)rc);
    return 0;
}

static const ss_handler reader = {.version = SS_HANDLER_VERSION, .handle = read_silent};
static const ss_handler writer = {.version = SS_HANDLER_VERSION, .handle = write_unread};

static void noted(int sig)
{
    (void)sig;
}

/* What an application that only notes SIGTERM does; a forked child
 * inherits it. */
static struct sigaction note_sigterm(void)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noted;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, &old);
    return old;
}

typedef struct cut_case {
    const char *scheme;
    const ss_handler *handler;
    int drain_ms;   /* the drain's deadline */
    bool stop_now;  /* a stop pending as drain starts: "stop now" */
    int drain_want; /* what drain returns */
} cut_case;

static ss_server *forking_server(const cut_case *c, finding *f, char *dir, size_t size)
{
    char url[320] = "tcp://127.0.0.1:0";
    dir[0] = '\0';
    if (strcmp(c->scheme, "unix") == 0) {
        ts_mkdtemp(dir, size);
        snprintf(url, sizeof url, "unix://%s/s", dir);
    }
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, ss_dispatch_forking(), c->handler, f), 0);
    ss_server_on_handle_error(srv, td_quiet_error);
    assert_int_equal(ss_server_bind(srv), 0);
    assert_int_equal(ss_server_activate(srv), 0);
    return srv;
}

/* The child's wait ended with -ECANCELED and it exited by itself (0):
 * handled, not failed (a SIGKILLed child counts in children_failed). */
static void expect_cut_not_killed(ss_server *srv, const finding *f)
{
    ss_stats st = td_stats(srv);
    assert_int_equal(atomic_load(&f->result), -ECANCELED);
    assert_int_equal(st.children_failed, 0);
    assert_int_equal(st.handled, 1);
    assert_int_equal(st.interrupted, 1);
    assert_int_equal(st.active, 0);
}

/* The client sees its connection end, after whatever was sent before
 * (the writer's bytes); ts_connect's receive timeout bounds each read. */
static bool sees_end(int fd)
{
    static char sink[65536];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 || errno == ECONNRESET;
    }
}

static void run_case(void **state)
{
    const cut_case *c = *state;
    struct sigaction old = note_sigterm();
    finding *f = td_shared_new(sizeof *f);
    atomic_store(&f->result, NOT_ENDED);
    char dir[256];
    ss_server *srv = forking_server(c, f, dir, sizeof dir);
    ts_runner runner;
    ts_start(&runner, srv, 50);
    int fd = ts_connect(srv);
    assert_true(td_wait_active(srv, 1, 5000));
    assert_int_equal(ts_stop(&runner), 0);
    if (c->stop_now)
        ss_server_request_shutdown(srv);
    assert_int_equal(ss_server_drain(srv, c->drain_ms), c->drain_want);
    expect_cut_not_killed(srv, f);
    assert_true(sees_end(fd));
    close(fd);
    ss_server_free(srv);
    td_shared_free(f, sizeof *f);
    if (dir[0] != '\0')
        ts_rmdir(dir);
    sigaction(SIGTERM, &old, NULL);
}

/* Deadlines of 200 ms; "stop now" with a minute's deadline, which the
 * test's bounded waits would not outlast. */
static const cut_case cases[] = {
    {"tcp", &reader, 200, false, -ETIMEDOUT},  {"unix", &reader, 200, false, -ETIMEDOUT},
    {"tcp", &writer, 200, false, -ETIMEDOUT},  {"unix", &writer, 200, false, -ETIMEDOUT},
    {"tcp", &reader, 60000, true, -ECANCELED}, {"unix", &writer, 60000, true, -ECANCELED},
};

#define CASE(name, i)                                                                              \
    {                                                                                              \
        name, run_case, NULL, NULL, (void *)&cases[i]                                              \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE("deadline_ends_read/tcp", 0),  CASE("deadline_ends_read/unix", 1),
        CASE("deadline_ends_write/tcp", 2), CASE("deadline_ends_write/unix", 3),
        CASE("stop_ends_read/tcp", 4),      CASE("stop_ends_write/unix", 5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
