/* The part of the test support that needs no library: sanitizer flags,
 * forked children, the clock, bounded waits and /proc. Unit tests link it with
 * their static copy of the library (tests/unit/), every other test
 * through support.h. */
#ifndef TESTS_BASE_SUPPORT_H
#define TESTS_BASE_SUPPORT_H

#include <stdbool.h>
#include <stdio.h>  /* TS_CHECK */
#include <unistd.h> /* TS_CHECK */

/* Sanitizer builds shadow every allocation, so memory bounds measured
 * through RSS only mean something without them. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TS_SANITIZED 1
#endif
#endif
#ifndef TS_SANITIZED
#define TS_SANITIZED 0
#endif

/* ThreadSanitizer cannot start a thread in a child forked from a process
 * that has threads: tests leave such cases out under it. */
#if defined(__SANITIZE_THREAD__)
#define TS_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TS_UNDER_TSAN 1
#endif
#endif
#ifndef TS_UNDER_TSAN
#define TS_UNDER_TSAN 0
#endif

/* True once cond(arg) holds, polling for at most timeout_ms. */
bool ts_wait_until(bool (*cond)(void *), void *arg, int timeout_ms);
/* Monotonic milliseconds. */
long long ts_now_ms(void);

/* Runs body in a forked child (for what a process may do only once, such
 * as reading socket activation) and returns its exit status: 0 if body
 * returned; TS_CHECK in it exits with the failed line. */
int ts_run_in_child(void (*body)(void));
/* In such a child (no cmocka there): the first failed check ends it with
 * its line (mod 255, never 0) and says which on stderr. */
#define TS_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "check failed, line %d: %s\n", __LINE__, #cond);                       \
            _exit(__LINE__ % 255 + 1);                                                             \
        }                                                                                          \
    } while (0)

/* What the process tests read in a /proc stat line (proc(5)): the fields
 * after the command name, which may itself hold ") ". One parser for
 * every test that looks for a server's worker processes or their
 * threads' states. Linux only: elsewhere nothing can be read. */
typedef struct ts_proc_stat {
    long pid;
    char state; /* 'S' asleep, 'T' stopped, 't' traced, 'Z' zombie, ... */
    long ppid;
    long pgrp;
} ts_proc_stat;

/* Process pid's stat (tid 0) or its thread tid's; false if it cannot be
 * read (gone, or no /proc). */
bool ts_proc_stat_read(long pid, long tid, ts_proc_stat *st);
/* Calls match with the stat of every process but zombies until it
 * returns true: that process's id; 0 if it never did, -1 without /proc. */
long ts_proc_find(bool (*match)(const ts_proc_stat *st, void *arg), void *arg);
/* Every thread of process pid is in one of `states` (stat letters);
 * false if its threads cannot be read. */
bool ts_proc_threads_in(long pid, const char *states);

#endif
