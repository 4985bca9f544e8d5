/* Running the example programs as a user does, for the example tests:
 * their command line, their stdout and stderr, their exit status. Every
 * wait is bounded; every program started is ended by the teardown. */
#ifndef TESTS_EXAMPLE_SUPPORT_H
#define TESTS_EXAMPLE_SUPPORT_H

#include "support.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct child {
    pid_t pid;
    int in, out, err; /* our ends of its stdin, stdout, stderr */
    char log[16384];  /* its stderr so far, read by ex_log_until and reap */
    size_t log_len;
} child;

/* Starts argv[0] with argv in a process group of its own. */
void spawn(child *c, const char *const argv[]);
/* Reads from fd until size - 1 bytes, EOF, `until` (if not NULL) or 5 s;
 * NUL-terminates and returns the count. */
size_t read_all(int fd, char *buf, size_t size, const char *until);
/* Waits up to 5 s for the child, reads the rest of its stderr into
 * c->log, closes its pipes and returns its exit status (or fails). */
int reap(child *c);
/* Appends the child's stderr to c->log until it holds `needle` or
 * timeout_ms pass; true if it does. */
bool ex_log_until(child *c, const char *needle, int timeout_ms);
/* Appends what the child's stderr has within wait_ms to c->log. */
void ex_log_pump(child *c, int wait_ms);
/* Fails the test, showing the log, if c->log holds `text`. */
void ex_log_lacks(const child *c, const char *text);
/* Fails the test, showing the log, unless c->log holds `text`. */
void ex_log_has(const child *c, const char *text);

/* Starts a server example with argv; returns the URL of its one stdout
 * line, "listening on URL". */
void start_server_argv(child *c, const char *const argv[], char *url, size_t size);
void start_server(child *c, const char *program, const char *listen, char *url, size_t size);
/* Starts argv and expects it to exit with `status` and `message` on stderr. */
void expect_refusal(const char *const argv[], int status, const char *message);

/* Reads exactly strlen(want) bytes from fd and compares them. */
void expect(int fd, const char *want);
/* Reads one '\n'-ended answer (or one datagram) from fd into buf; the
 * length, or 0 after EOF or 5 s. */
size_t read_answer(int fd, char *buf, size_t size);

/* The exit status of pid (a child, or an orphan this process reaps as its
 * subreaper): its code, 128 + the signal that ended it, or -1 if it has
 * not ended within timeout_ms. Leaves its pipes open (a successor it
 * started may still write to them). */
int ex_exit_status(pid_t pid, int timeout_ms);
/* Sends sig to the program's main thread (Linux; kill(2) elsewhere). With
 * kill(2) the kernel may pick any thread, ThreadSanitizer's background one
 * included, where TSan holds the handler back until that thread makes a
 * call it intercepts, which it never does: the signal would seem lost.
 * On Linux it first waits (5 s at most) until that thread sleeps in a
 * call: ThreadSanitizer loses a signal that comes during the thread's
 * first blocking call (example_support.c). */
void ex_signal(pid_t pid, int sig);

/* cmocka teardown: kills and reaps every example a test left running,
 * with its process group (a forking example's children). */
int end_leftovers(void **state);

/* Worker processes (--processes, --mode prefork) start their threads
 * after the fork: ThreadSanitizer would end each one as it does unless
 * TSAN_OPTIONS says die_after_fork=0. Call first in main. */
void ex_allow_threads_after_fork(void);

#endif
