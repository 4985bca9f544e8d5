/* Worker processes pack new clients as a pool packs them onto its
 * workers (dispatch/pool.c, accepts_now; srv->seat): the second process
 * watches the shared listener only while the first passes its turn
 * (spills, does not accept, or has not come round its loop for a few
 * tens of ms: stopped, killed, being replaced). So one client making a
 * connection per request is served by one process throughout, not by
 * whichever the kernel wakes while the first is still closing the last
 * connection; a stopped first process is taken over within a bound; and
 * a killed one's replacement, in its slot, takes the clients back. Idle,
 * the processes rest (no loop turn, no thread awake), and a first process
 * stopped at rest is taken over all the same. The handler answers with
 * its process id. */
#define _GNU_SOURCE
#include "dispatch_support.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <dirent.h>
#include <string.h>

#ifdef __linux__         /* packing needs exclusive wake-ups; a stop is seen in /proc */
#define CONNECTIONS 200  /* one after the other, each asked once */
#define MAX_MOVES   10   /* of them served by another process than the last: noise */
#define TAKEOVER_MS 1000 /* designed 45-55 ms; the machine is shared */

static int pid_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[64], reply[32];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        int len = snprintf(reply, sizeof reply, "%ld\n", (long)getpid());
        int rc = ss_request_send_all(req, reply, (size_t)len);
        if (rc < 0)
            return rc;
    }
    return (int)n;
}
static const ss_handler pid_handler = {SS_HANDLER_VERSION, NULL, pid_handle, NULL};

typedef struct shared {
    char address[128];
    atomic_bool ready;
} shared;

static shared *sh;
static ss_server *supervised;
static pid_t supervisor, stopped;

static void on_term(int sig)
{
    (void)sig;
    ss_server_request_shutdown(supervised);
}

static _Noreturn void supervise(void)
{
    ss_server *srv;
    TS_CHECK(ss_server_create(&srv, "tcp://127.0.0.1:0", ss_dispatch_pool(), &pid_handler, NULL) ==
             0);
    TS_CHECK(ss_server_set_processes(srv, 2) == 0);
    ss_server_set_workers(srv, 8);
    TS_CHECK(ss_server_bind(srv) == 0);
    TS_CHECK(ss_server_activate(srv) == 0);
    TS_CHECK(ss_server_address(srv, sh->address, sizeof sh->address) > 0);
    ss_server_on_handle_error(srv, td_quiet_error);
    supervised = srv;
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    atomic_store(&sh->ready, true);
    TS_CHECK(ss_server_serve_forever(srv, 20) == 0);
    TS_CHECK(ss_server_drain(srv, 5000) == 0);
    ss_server_close(srv);
    ss_server_free(srv);
    _exit(0);
}

static void start_supervisor(void)
{
    sh = td_shared_new(sizeof *sh);
    supervisor = fork();
    assert_true(supervisor >= 0);
    if (supervisor == 0)
        supervise();
    for (long long end = ts_now_ms() + 10000; !atomic_load(&sh->ready) && ts_now_ms() < end;)
        usleep(1000);
    assert_true(atomic_load(&sh->ready));
}

/* Also after a failed test: nothing outlives it. */
static int end_supervisor(void **state)
{
    (void)state;
    if (stopped > 0)
        kill(stopped, SIGCONT);
    stopped = 0;
    if (supervisor <= 0)
        return 0;
    kill(supervisor, SIGTERM);
    int status = 0;
    pid_t got = 0;
    for (long long end = ts_now_ms() + 20000; got == 0 && ts_now_ms() < end; usleep(2000))
        got = waitpid(supervisor, &status, WNOHANG);
    if (got == 0) {
        kill(supervisor, SIGKILL);
        waitpid(supervisor, &status, 0);
    }
    supervisor = 0;
    td_shared_free(sh, sizeof *sh);
    return got > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* A fresh connection asked once: the pid that served it, -1 if none
 * answered within 5 s. */
static long ask_fresh(void)
{
    int fd = ts_connect_url(sh->address);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[32];
    long pid = -1;
    ssize_t n = send(fd, "x\n", 2, MSG_NOSIGNAL) == 2 ? recv(fd, buf, sizeof buf - 1, 0) : -1;
    if (n > 0) {
        buf[n] = '\0';
        pid = strtol(buf, NULL, 10);
    }
    close(fd);
    return pid;
}

/* Connections one after the other, each opened as soon as the last
 * answer came (its server still closing it, often): how many were served
 * by another process than the one before; *last: the last one's. */
static int moves_over(int connections, long *last)
{
    int moves = 0;
    *last = ask_fresh();
    assert_true(*last > 0);
    for (int i = 1; i < connections; i++) {
        long pid = ask_fresh();
        assert_true(pid > 0);
        moves += pid != *last;
        *last = pid;
    }
    return moves;
}

typedef struct settle {
    long want; /* 0: any pid but `not` */
    long not ;
    long got;
} settle;

/* A run of 20 fresh connections all served by one process as wanted. */
static bool settled_on(void *arg)
{
    settle *s = arg;
    long pid;
    int moves = moves_over(20, &pid);
    s->got = pid;
    return moves == 0 && (s->want != 0 ? pid == s->want : pid != s->not );
}

/* Starts the supervisor and waits until one process serves every fresh
 * client (both started): its pid. Every case here needs that, and it is
 * a matter of timing: under TSan a loop may turn slower than the turn's
 * staleness bound, so both processes watch (each exclusively; test_prefork
 * checks that, and runs the turn's code under TSan for its races) and the
 * turn need not settle. These cases are left out there. */
static long start_settled(void)
{
    if (TS_UNDER_TSAN)
        skip();
    start_supervisor();
    settle s = {0, -1, 0};
    assert_true(ts_wait_until(settled_on, &s, 10000));
    return s.got;
}

/* One client, a connection per request, light load: one process serves
 * (nearly) all of them. Before packing, every process's first worker
 * watched the listener, and 40 % of the connections changed process. */
static void test_one_client_stays_on_one_process(void **state)
{
    (void)state;
    start_settled();
    long last;
    int moves = moves_over(CONNECTIONS, &last);
    print_message("%d of %d consecutive connections changed process\n", moves, CONNECTIONS);
    if (moves > MAX_MOVES)
        fail_msg("%d of %d consecutive connections changed process", moves, CONNECTIONS);
}

/* Every thread of process pid has stopped (SIGSTOP takes effect as each
 * thread next leaves the kernel: until then it may still accept). */
static bool all_threads_stopped(void *arg)
{
    char path[320];
    snprintf(path, sizeof path, "/proc/%ld/task", *(long *)arg);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return false;
    bool all = true;
    for (struct dirent *e; all && (e = readdir(dir)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        char stat[512] = "";
        snprintf(path, sizeof path, "/proc/%ld/task/%s/stat", *(long *)arg, e->d_name);
        FILE *f = fopen(path, "r");
        all = f != NULL && fgets(stat, sizeof stat, f) != NULL;
        const char *state = strrchr(stat, ')');
        all = all && state != NULL && (state[2] == 'T' || state[2] == 't');
        if (f != NULL)
            fclose(f);
    }
    closedir(dir);
    return all;
}

static bool answered_by(void *arg)
{
    settle *s = arg;
    s->got = ask_fresh();
    return s->got > 0 && s->got != s->not ;
}

/* Stops process `first` and asks a fresh client: the other process must
 * answer, within TAKEOVER_MS. Returns its pid. */
static long stop_and_ask(long first)
{
    assert_int_equal(kill((pid_t)first, SIGSTOP), 0);
    stopped = (pid_t)first;
    assert_true(ts_wait_until(all_threads_stopped, &first, 5000)); /* it accepts no more */
    long long begin = ts_now_ms();
    long other = ask_fresh();
    long long took = ts_now_ms() - begin;
    if (!(other > 0 && other != first))
        fail_msg("first %ld stopped, then %ld after %lld ms", first, other, took);
    if (took > TAKEOVER_MS)
        fail_msg("the other process answered after %lld ms", took);
    return other;
}

/* The serving process stopped: the other takes its new clients within
 * a bound; continued, it takes them back; killed, its replacement (in
 * its slot, the first) takes them back from the other. */
static void test_takeover_and_back(void **state)
{
    (void)state;
    long first = start_settled();
    long other = stop_and_ask(first);
    assert_int_equal(kill((pid_t)first, SIGCONT), 0);
    stopped = 0;
    settle s = {first, 0, 0};
    if (!ts_wait_until(settled_on, &s, 5000)) /* its turn again */
        fail_msg("first %ld, other %ld, then %ld", first, other, s.got);
    assert_int_equal(kill((pid_t)first, SIGKILL), 0);
    s = (settle){0, first, 0};
    assert_true(ts_wait_until(answered_by, &s, 5000)); /* nobody stranded meanwhile */
    settle replaced = {0, other, 0};
    assert_true(ts_wait_until(settled_on, &replaced, 10000));
    assert_true(replaced.got != first && replaced.got != other);
}

/* ---- at rest ---- */

#define REST_WINDOW_MS 1000
/* Context switches per process and window at rest: ~0; over 100 while
 * each loop turned every 10 ms, idle or not. */
#define REST_SWITCHES 20

/* The context switches of every thread of process pid so far, or -1 if
 * it is gone: what a thread's wake-ups cost, counted by the kernel. */
static long switches_of(long pid)
{
    char path[320], line[128];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -1;
    long total = 0, n;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        snprintf(path, sizeof path, "/proc/%ld/task/%s/status", pid, e->d_name);
        FILE *f = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
        while (f != NULL && fgets(line, sizeof line, f) != NULL)
            if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1 ||
                sscanf(line, "nonvoluntary_ctxt_switches: %ld", &n) == 1)
                total += n;
        if (f != NULL)
            fclose(f);
    }
    closedir(dir);
    return total;
}

typedef struct pair {
    long pid[2];      /* the worker processes */
    long switches[2]; /* in the last window */
} pair;

/* The supervisor's two worker processes (its main thread's children). */
static void find_workers(pair *w)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)supervisor, (long)supervisor);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f != NULL && n < 2 && fscanf(f, "%ld", &w->pid[n]) == 1)
        n++;
    if (f != NULL)
        fclose(f);
    assert_int_equal(n, 2);
}

/* Both worker processes switched at most REST_SWITCHES times within one
 * window of REST_WINDOW_MS: they rest. */
static bool both_rest(void *arg)
{
    pair *w = arg;
    long before[2] = {switches_of(w->pid[0]), switches_of(w->pid[1])};
    usleep(REST_WINDOW_MS * 1000);
    for (int i = 0; i < 2; i++)
        w->switches[i] = before[i] < 0 ? -1 : switches_of(w->pid[i]) - before[i];
    return w->switches[0] >= 0 && w->switches[0] <= REST_SWITCHES && w->switches[1] >= 0 &&
           w->switches[1] <= REST_SWITCHES;
}

/* Started, served, and idle, the processes rest, then wake for the next
 * client, which still goes to the first (packing). Before, each loop
 * turned every 10 ms and each control thread published the counters
 * every 50 ms: some 120 wake-ups a second per process, idle. */
static void test_idle_processes_rest(void **state)
{
    (void)state;
    long served = start_settled();
    pair w;
    find_workers(&w);
    if (!ts_wait_until(both_rest, &w, 15000))
        fail_msg("idle, the worker processes still switched %ld and %ld times a second",
                 w.switches[0], w.switches[1]);
    /* Woken, the first takes its clients again. Not always the very first
     * client: the arrival wakes both, and on a loaded machine the first
     * may wake later than the 45 ms the other grants a stamped seat. */
    settle s = {served, 0, 0};
    assert_true(ts_wait_until(settled_on, &s, 10000));
    assert_true(ts_wait_until(both_rest, &w, 15000)); /* and rest again */
}

/* The first process stopped while both rest: the arrival wakes the
 * other's loop (its control thread watches the listener for it), which
 * stamps the first's resting seat with its clock; the first, stopped,
 * never comes round, its seat goes stale, and the other takes the
 * client. A resting seat never goes stale by itself: without the stamp
 * the client would wait for good. */
static void test_stopped_at_rest_is_taken_over(void **state)
{
    (void)state;
    long first = start_settled();
    pair w;
    find_workers(&w);
    assert_true(ts_wait_until(both_rest, &w, 15000));
    stop_and_ask(first);
    assert_int_equal(kill((pid_t)first, SIGCONT), 0);
    stopped = 0;
}

#else
static void not_on_this_platform(void **state)
{
    (void)state;
    skip();
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#ifdef __linux__
        cmocka_unit_test_teardown(test_one_client_stays_on_one_process, end_supervisor),
        cmocka_unit_test_teardown(test_takeover_and_back, end_supervisor),
        cmocka_unit_test_teardown(test_idle_processes_rest, end_supervisor),
        cmocka_unit_test_teardown(test_stopped_at_rest_is_taken_over, end_supervisor),
#else
        cmocka_unit_test(not_on_this_platform),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
