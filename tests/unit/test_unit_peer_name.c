/* The client's name (ss_request_client_name) is formatted only when
 * asked for: a request whose handler never asks costs no formatting
 * (~2,900 instructions of snprintf and inet_ntop each), and a request
 * asked from several threads at once formats it exactly once and gives
 * every thread the same, right string.
 *
 * The library's own formatter is wrapped (-Wl,--wrap=ss__format_peer,
 * GNU ld, Linux) to count its calls. Over TCP (IPv4, IPv6) and a Unix
 * socket with every dispatcher that runs requests in this process (sync,
 * threading, pool); a forked child's count is its own, so forking is
 * checked on the name it sends back only. */
#define _GNU_SOURCE
#include "base_support.h"
#include "loop_support.h"
#include <socketserver.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

int __real_ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);
int __wrap_ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

static atomic_int formatted;

int __wrap_ss__format_peer(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    atomic_fetch_add(&formatted, 1);
    return __real_ss__format_peer(sa, len, buf, size);
}

enum { CLIENTS = 6, ASKERS = 4 };

/* Echoes one message without asking who sent it. */
static int quiet_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    ssize_t n = ss_request_recv(req, buf, sizeof buf);
    return n > 0 ? ss_request_send_all(req, buf, (size_t)n) : (int)n;
}

static void *ask_name(void *req)
{
    return (void *)ss_request_client_name(req);
}

/* Asks for the name on ASKERS threads at once and twice on its own; every
 * answer must be the same pointer. Replies with the name, or "!" if the
 * threads saw different strings. */
static int naming_handle(ss_request *req, void *data)
{
    (void)data;
    char buf[64];
    if (ss_request_recv(req, buf, sizeof buf) <= 0)
        return -1;
    pthread_t askers[ASKERS];
    void *seen[ASKERS];
    for (int i = 0; i < ASKERS; i++)
        pthread_create(&askers[i], NULL, ask_name, req);
    const char *mine = ss_request_client_name(req);
    bool same = ss_request_client_name(req) == mine;
    for (int i = 0; i < ASKERS; i++) {
        pthread_join(askers[i], &seen[i]);
        same = same && seen[i] == mine;
    }
    const char *reply = same ? mine : "!";
    return ss_request_send_all(req, reply, strlen(reply) + 1);
}

static const ss_handler quiet = {.version = SS_HANDLER_VERSION, .handle = quiet_handle};
static const ss_handler naming = {.version = SS_HANDLER_VERSION, .handle = naming_handle};

typedef struct served {
    ss_server *srv;
    pthread_t thread;
    char dir[64]; /* the Unix socket's directory, or "" */
} served;

static void start(served *s, const char *url, const ss_dispatcher *mode, const ss_handler *h)
{
    char unix_url[128];
    s->dir[0] = '\0';
    if (strcmp(url, "unix") == 0) {
        snprintf(s->dir, sizeof s->dir, "/tmp/ss-peer-name-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(unix_url, sizeof unix_url, "unix:%s/s", s->dir);
        url = unix_url;
    }
    assert_int_equal(ss_server_new(&s->srv, url, mode, h, NULL), 0);
    ut_serve_in_thread(s->srv, &s->thread);
}

/* Shuts down, then closes: close waits for every request (block_on_close). */
static void stop(served *s)
{
    ut_stop_serving(s->srv, s->thread);
    ss_server_close(s->srv);
    ss_server_free(s->srv);
    if (s->dir[0] != '\0') {
        char path[128];
        snprintf(path, sizeof path, "%s/s", s->dir);
        unlink(path);
        rmdir(s->dir);
    }
}

/* A client of the server, bound to nothing (Unix: unnamed), with 5 s
 * timeouts; fills in the name the server should give it. */
static int client(ss_server *srv, char *expect, size_t size)
{
    int fd = ut_connect_to(srv);
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char host[INET6_ADDRSTRLEN] = "";
    if (a.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&a;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(expect, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (a.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(expect, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(expect, size, "%s", ""); /* an unnamed Unix client */
    }
    return fd;
}

/* Sends one message and reads the reply to its NUL (or its size). */
static void exchange(int fd, char *reply, size_t size)
{
    assert_int_equal(send(fd, "hello", 5, MSG_NOSIGNAL), 5);
    size_t got = 0;
    while (got < size) {
        ssize_t n = recv(fd, reply + got, size - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
        if (memchr(reply, '\0', got) != NULL || got == 5)
            break;
    }
    reply[got < size ? got : size - 1] = '\0';
}

/* CLIENTS clients, one message each: the reply is the message echoed or,
 * from the naming handler, the client's own name. Returns how many names
 * the library formatted meanwhile. */
static int serve_clients(const char *url, const ss_dispatcher *mode, const ss_handler *h)
{
    served s;
    atomic_store(&formatted, 0);
    start(&s, url, mode, h);
    for (int i = 0; i < CLIENTS; i++) {
        char expect[128], reply[128];
        int fd = client(s.srv, expect, sizeof expect);
        exchange(fd, reply, sizeof reply);
        assert_string_equal(reply, h == &naming ? expect : "hello");
        close(fd);
    }
    stop(&s);
    return atomic_load(&formatted);
}

static void unasked(const char *url, const ss_dispatcher *mode)
{
    int n = serve_clients(url, mode, &quiet);
    if (n != 0)
        fail_msg("%s, %s: %d client names formatted, none asked for", url, ss_dispatch_name(mode),
                 n);
}

static void asked(const char *url, const ss_dispatcher *mode, bool counted)
{
    int n = serve_clients(url, mode, &naming);
    if (counted && n != CLIENTS)
        fail_msg("%s, %s: %d names formatted for %d requests each asking %d times", url,
                 ss_dispatch_name(mode), n, CLIENTS, ASKERS + 2);
}

static const char *const urls[] = {"tcp://127.0.0.1:0", "tcp://[::1]:0", "unix"};

static bool have_ipv6(void)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    if (probe < 0)
        return false;
    close(probe);
    return true;
}

static void test_unasked_names_are_never_formatted(void **state)
{
    (void)state;
    for (size_t u = 0; u < sizeof urls / sizeof *urls; u++) {
        if (u == 1 && !have_ipv6())
            continue;
        unasked(urls[u], ss_dispatch_sync());
        unasked(urls[u], ss_dispatch_threading());
        unasked(urls[u], ss_dispatch_pool());
    }
}

static void test_a_name_asked_by_many_threads_is_formatted_once(void **state)
{
    (void)state;
    for (size_t u = 0; u < sizeof urls / sizeof *urls; u++) {
        if (u == 1 && !have_ipv6())
            continue;
        asked(urls[u], ss_dispatch_sync(), true);
        asked(urls[u], ss_dispatch_threading(), true);
        asked(urls[u], ss_dispatch_pool(), true);
        if (!TS_UNDER_TSAN)
            asked(urls[u], ss_dispatch_forking(), false);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unasked_names_are_never_formatted),
        cmocka_unit_test(test_a_name_asked_by_many_threads_is_formatted_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
