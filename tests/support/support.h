/* Helpers shared by the test executables: serving in a thread, loopback
 * clients with bounded waits, descriptor counting, temp dirs. Every wait
 * here has a time limit so a broken server fails a test instead of
 * hanging it. */
#ifndef TESTS_SUPPORT_H
#define TESTS_SUPPORT_H

#include "base_support.h"

#include <socketserver.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

/* The echo protocol the transport tests share: every byte goes back until
 * the client closes. Returns 0 at EOF or the first I/O error. */
int ts_echo_handle(ss_request *req, void *data);
extern const ss_handler ts_echo;

/* Every dispatcher, by its name for ss_dispatch_by_name (and the
 * examples' --mode), in the order the tests cover them: the one list each
 * test that runs something over every dispatcher loops over. */
#define TS_DISPATCHERS 4
extern const char *const ts_dispatchers[TS_DISPATCHERS];

/* A cmocka test named "f/mode" run with the dispatcher's name `mode` (a
 * string literal) as its state: for a test that runs once per dispatcher
 * in a single executable. */
#define TS_MODE_TEST(f, mode)                                                                      \
    {                                                                                              \
#f "/" mode, f, NULL, NULL, (void *)(mode)                                                 \
    }

/* A server running serve_forever() in a thread of its own. */
typedef struct ts_runner {
    ss_server *server;
    pthread_t thread;
    int poll_interval_ms;
    int result; /* serve_forever's return value, after ts_stop */
} ts_runner;

void ts_start(ts_runner *r, ss_server *srv, int poll_interval_ms);
/* ss_server_shutdown + join; returns serve_forever's result. */
int ts_stop(ts_runner *r);

/* Connects to the server's own address; the socket gets a 5 s receive and
 * send timeout so a test never blocks forever. Fails the test on error. */
int ts_connect(const ss_server *srv);
/* Same for any URL. */
int ts_connect_url(const char *url);

/* Sends all of buf; fails the test on error. */
void ts_send(int fd, const void *buf, size_t size);
/* Receives exactly size bytes or until EOF/timeout; returns the count. */
size_t ts_recv_exact(int fd, void *buf, size_t size);
/* True if the peer closed (recv returns 0) within the socket timeout. */
bool ts_sees_eof(int fd);

/* Many clients at once: waits (60 s at the most in all) for `want` on
 * each of fds, reading exactly its length from each as it comes; returns
 * on how many it came. The descriptors stay open. */
int ts_count_answers(const int *fds, int n, const char *want);

/* Number of open descriptors in this process. */
int ts_count_fds(void);
/* Raises this process's descriptor limit (RLIMIT_NOFILE) to at least
 * want, for a test with thousands of connections; false if the hard
 * limit forbids it (the test skips then). */
bool ts_raise_fd_limit(rlim_t want);

/* A fresh private directory; ts_rmdir removes it and what is in it. */
void ts_mkdtemp(char *path, size_t size);
void ts_rmdir(const char *path);

/* TLS tests: two throwaway authorities made by scripts/make-test-cert.sh,
 * in ts_certs.a and ts_certs.b, each with ca.pem/.key, server.pem/.key and
 * client.pem/.key. One pair of them serves a whole test executable:
 * ts_certs_setup (0, or -1 if the script failed) and ts_certs_teardown
 * are its cmocka group setup and teardown. A global, not the group's
 * state: cmocka gives a test with a state of its own (test_tls.c's
 * combos) that one instead. */
typedef struct ts_cert_dirs {
    char base[200]; /* the temp dir holding a and b */
    char a[256], b[256];
} ts_cert_dirs;
extern ts_cert_dirs ts_certs;
int ts_certs_setup(void **state);
int ts_certs_teardown(void **state);

#endif
