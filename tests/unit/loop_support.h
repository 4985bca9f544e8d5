/* For the unit tests that run a real server over the static copy of the
 * library (test_unit_pool_trip.c, test_unit_pool_accept.c,
 * test_unit_peer_name.c): its loop in a thread of its own, clients of its
 * listener, and the main of a build where they cannot run. */
#ifndef TESTS_UNIT_LOOP_SUPPORT_H
#define TESTS_UNIT_LOOP_SUPPORT_H

#include <socketserver.h>

#include <pthread.h>
#include <stdio.h>

/* serve_forever (50 ms poll) in a new thread, *loop. */
void ut_serve_in_thread(ss_server *srv, pthread_t *loop);
/* ss_server_shutdown (asserted 0) and the loop's thread joined. */
void ut_stop_serving(ss_server *srv, pthread_t loop);
/* A stream client (TCP or Unix) of the server's listener, with 5 s receive and send
 * timeouts (a broken server fails the test, never hangs it). */
int ut_connect_to(ss_server *srv);

/* The whole main of a test built where it cannot run: says why, and
 * returns 77, which ctest reports as skipped (SKIP_RETURN_CODE). */
#define UT_SKIPPED_MAIN(why)                                                                       \
    int main(void)                                                                                 \
    {                                                                                              \
        printf("%s: skipped\n", why);                                                              \
        return 77;                                                                                 \
    }

#endif
