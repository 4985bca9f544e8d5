/* The part of the test support that needs no library: sanitizer flags,
 * forked children, the clock and bounded waits. Unit tests link it with
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

#endif
