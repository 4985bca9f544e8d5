/* Every dispatcher over both stream transports, for the tests of filters
 * and the PROXY protocol (test_filters, test_proxy_protocol): a combo is
 * a test's prestate, EACH(fn) lists fn once per combo. */
#ifndef TESTS_STREAM_COMBOS_H
#define TESTS_STREAM_COMBOS_H

typedef struct combo {
    const char *scheme; /* tcp or unix */
    const char *mode;   /* a dispatcher's name */
} combo;

extern const combo combos[8];

#define EACH(fn)                                                                                   \
    cmocka_unit_test_prestate(fn, (void *)&combos[0]),                                             \
        cmocka_unit_test_prestate(fn, (void *)&combos[1]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[2]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[3]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[4]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[5]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[6]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[7])

#include <socketserver.h>

#include "support.h"

#include <stddef.h>
#include <stdint.h>

/* A server of the combination, created but not bound, so filters and
 * options can be added; `dir` gets the Unix socket's temp dir ("" for TCP).
 * Errors go to td_quiet_error. */
ss_server *combo_server(const combo *c, const ss_handler *h, char *dir, size_t size);
/* Binds, activates and serves srv on runner's thread. */
void combo_start(ss_server *srv, ts_runner *runner);
/* Waits until `closed` requests have closed, stops and frees srv, removes
 * dir. */
void combo_finish(ts_runner *runner, ss_server *srv, uint64_t closed, const char *dir);
/* A filter that lets a connection through only if its first byte (read in
 * open through the layer below) is '!': a silent client keeps open
 * waiting; above the PROXY filter, it reads the byte after the header. */
extern const ss_filter combo_gate;

#endif
