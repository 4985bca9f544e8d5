#include "table_support.h"

#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const *const dispatchers = ts_dispatchers;
#define N_DISPATCHERS TS_DISPATCHERS

static const char *const transports[] = {"tcp", "tcp6", "unix",
#ifdef __linux__
                                         "abstract"
#endif
};
#define N_TRANSPORTS (sizeof transports / sizeof transports[0])

const char *tc_url(tc_combo *c)
{
    static int counter;
    c->dir[0] = '\0';
    if (strcmp(c->transport, "unix") == 0) {
        ts_mkdtemp(c->dir, sizeof c->dir);
        snprintf(c->url, sizeof c->url, "unix:%s/s", c->dir);
    } else if (strcmp(c->transport, "abstract") == 0) {
        snprintf(c->url, sizeof c->url, "unix:@ss-table-%d-%d", (int)getpid(), ++counter);
    } else {
        snprintf(c->url, sizeof c->url, "%s",
                 strcmp(c->transport, "tcp6") == 0 ? "tcp://[::1]:0" : "tcp://127.0.0.1:0");
    }
    return c->url;
}

void tc_cleanup(tc_combo *c)
{
    if (c->dir[0] != '\0')
        ts_rmdir(c->dir);
    c->dir[0] = '\0';
}

static tc_combo combos[N_DISPATCHERS * N_TRANSPORTS];

/* Fills combos[] with `only`'s pairs (every pair for NULL); returns how many. */
static size_t pick_combos(const char *only)
{
    size_t n = 0;
    for (size_t d = 0; d < N_DISPATCHERS; d++)
        for (size_t t = 0; t < N_TRANSPORTS; t++)
            if (only == NULL || strcmp(only, dispatchers[d]) == 0)
                combos[n++] = (tc_combo){.dispatcher = dispatchers[d], .transport = transports[t]};
    return n;
}

int tc_run_table(const char *group, const tc_behaviour *behaviours, size_t count, const char *only)
{
    size_t n = pick_combos(only);
    if (n == 0) {
        fprintf(stderr, "%s: no dispatcher named '%s'\n", group, only);
        return 2;
    }
    struct CMUnitTest *tests = calloc(count * n, sizeof *tests);
    char(*names)[96] = calloc(count * n, sizeof *names);
    if (tests == NULL || names == NULL)
        return 1;
    size_t k = 0;
    for (size_t b = 0; b < count; b++)
        for (size_t c = 0; c < n; c++) {
            const char *not_on = behaviours[b].not_on;
            if (not_on != NULL && strcmp(not_on, combos[c].dispatcher) == 0)
                continue;
            snprintf(names[k], sizeof names[k], "%s/%s/%s", behaviours[b].name,
                     combos[c].dispatcher, combos[c].transport);
            tests[k] = (struct CMUnitTest){names[k], behaviours[b].run, NULL, NULL, &combos[c]};
            k++;
        }
    int failed = k == 0 ? 0 : _cmocka_run_group_tests(group, tests, k, NULL, NULL);
    free(tests);
    free(names);
    return failed;
}
