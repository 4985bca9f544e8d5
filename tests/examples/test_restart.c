/* A restart that drops nothing (issue 16, item 4), as a user runs it:
 * uppercase_server serves continuous load from several client threads
 * (connect, request, verify the answer) while it is sent SIGHUP three
 * times; each time it hands its listening socket to a fresh copy of
 * itself (ss_server_hand_over), which must be another process, and the
 * old one drains and exits 0. Not one connection may fail: refused,
 * reset or answered wrong. Run per dispatcher (argv[1]); prints the
 * figures (connections made, failed, hand-over times). Linux: the test
 * becomes the subreaper of the servers, whose parents exit in turn. */
#define _GNU_SOURCE
#include "example_support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <cmocka.h>

#define CLIENTS  4
#define RESTARTS 3

static const char *mode;
static struct sockaddr_in server_addr;
static atomic_bool load_on;
static atomic_long made, failed;

/* One connection: "req T-N\n" out, "REQ T-N\n" back, then EOF. Returns
 * NULL, or what went wrong. */
static const char *one_request(int thread, long n)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char *why = NULL;
    char line[64], want[64], got[64];
    int len = snprintf(line, sizeof line, "req %d-%ld\n", thread, n);
    snprintf(want, sizeof want, "REQ %d-%ld\n", thread, n);
    size_t have = 0;
    if (connect(fd, (struct sockaddr *)&server_addr, sizeof server_addr) < 0)
        why = errno == ECONNREFUSED ? "connect refused" : "connect failed";
    else if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len)
        why = errno == ECONNRESET || errno == EPIPE ? "reset while sending" : "send failed";
    while (why == NULL && have < strlen(want)) {
        ssize_t r = recv(fd, got + have, sizeof got - 1 - have, 0);
        if (r <= 0)
            why = r == 0 ? "closed before the answer" : errno == ECONNRESET ? "reset" : "no answer";
        else
            have += (size_t)r;
    }
    got[have] = '\0';
    if (why == NULL && strcmp(got, want) != 0)
        why = "wrong answer";
    close(fd);
    return why;
}

static void *client(void *arg)
{
    int thread = (int)(intptr_t)arg;
    for (long n = 0; atomic_load(&load_on); n++) {
        const char *why = one_request(thread, n);
        atomic_fetch_add(&made, 1);
        if (why != NULL) {
            atomic_fetch_add(&failed, 1);
            fprintf(stderr, "client %d request %ld: %s\n", thread, n, why);
        }
    }
    return NULL;
}

static bool enough_made(void *arg)
{
    return atomic_load(&made) >= *(long *)arg;
}

/* The r-th "restart: pid N serves now (hand-over took M ms)" line of the
 * log: its pid and time; false if not there within 30 s. */
static bool restart_line(child *c, int r, pid_t *pid, long *ms)
{
    long long until = ts_now_ms() + 30000;
    for (;;) {
        const char *at = c->log;
        for (int k = 0; (at = strstr(at, "restart: pid ")) != NULL; k++, at++)
            if (k == r - 1)
                return sscanf(at, "restart: pid %d serves now (hand-over took %ld ms)", pid, ms) ==
                       2;
        if (ts_now_ms() > until)
            return false;
        ex_log_pump(c, 100);
    }
}

static void start_load(pthread_t *threads)
{
    atomic_store(&load_on, true);
    for (int i = 0; i < CLIENTS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, client, (void *)(intptr_t)i), 0);
}

static void stop_load(pthread_t *threads)
{
    atomic_store(&load_on, false);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(threads[i], NULL);
}

static void address_of(const char *url)
{
    int port = atoi(strrchr(url, ':') + 1);
    server_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void test_three_restarts_under_load(void **state)
{
    (void)state;
#ifdef __linux__
    assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    child c;
    char url[128];
    const char *argv[] = {UPPERCASE_SERVER, "--listen", "tcp://127.0.0.1:0", "--mode", mode,
                          "--quiet",        NULL};
    start_server_argv(&c, argv, url, sizeof url);
    address_of(url);
    pthread_t threads[CLIENTS];
    start_load(threads);
    pid_t pids[RESTARTS + 1] = {c.pid};
    long ms[RESTARTS];
    long want = 100;
    assert_true(ts_wait_until(enough_made, &want, 30000));
    for (int r = 1; r <= RESTARTS; r++) {
        assert_int_equal(kill(pids[r - 1], SIGHUP), 0);
        assert_true(restart_line(&c, r, &pids[r], &ms[r - 1]));
        for (int k = 0; k < r; k++)
            assert_true(pids[r] != pids[k]); /* another process each time */
        want = atomic_load(&made) + 100;     /* served by the new one, too */
        assert_true(ts_wait_until(enough_made, &want, 30000));
    }
    stop_load(threads);
    /* Once the old servers are gone, the socket still takes clients: none
     * of them changed it for its successor on the way out. */
    for (int r = 0; r < RESTARTS; r++) /* drained, exit 0 */
        assert_int_equal(ex_exit_status(pids[r], 30000), 0);
    for (int i = 0; i < 20; i++) {
        const char *why = one_request(CLIENTS, i);
        atomic_fetch_add(&made, 1);
        if (why != NULL) {
            atomic_fetch_add(&failed, 1);
            fprintf(stderr, "after the old servers exited, request %d: %s\n", i, why);
        }
    }
    kill(pids[RESTARTS], SIGTERM);
    fprintf(stderr,
            "restart figures (%s): %ld connections made, %ld failed; hand-over %ld, %ld, %ld ms\n",
            mode, atomic_load(&made), atomic_load(&failed), ms[0], ms[1], ms[2]);
    assert_int_equal(atomic_load(&failed), 0);
    assert_int_equal(ex_exit_status(pids[RESTARTS], 30000), 0);
    ex_log_pump(&c, 100);
    close(c.in);
    close(c.out);
    close(c.err);
    ex_log_lacks(&c, "restart failed");
    ex_log_lacks(&c, "interrupted");
#else
    skip();
#endif
}

int main(int argc, char **argv)
{
    mode = argc > 1 ? argv[1] : "threading";
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_three_restarts_under_load, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
