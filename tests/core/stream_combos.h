/* Every dispatcher over both stream transports, for the tests of filters
 * and the PROXY protocol (test_filters, test_proxy_protocol): a combo is
 * a test's prestate, EACH(fn) lists fn once per combo. */
#ifndef TESTS_STREAM_COMBOS_H
#define TESTS_STREAM_COMBOS_H

typedef struct combo {
    const char *scheme; /* tcp or unix */
    const char *mode;   /* a dispatcher's name */
} combo;

static const combo combos[] = {
    {"tcp", "sync"},    {"unix", "sync"},    {"tcp", "threading"}, {"unix", "threading"},
    {"tcp", "forking"}, {"unix", "forking"}, {"tcp", "pool"},      {"unix", "pool"},
};

#define EACH(fn)                                                                                   \
    cmocka_unit_test_prestate(fn, (void *)&combos[0]),                                             \
        cmocka_unit_test_prestate(fn, (void *)&combos[1]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[2]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[3]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[4]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[5]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[6]),                                         \
        cmocka_unit_test_prestate(fn, (void *)&combos[7])

#endif
