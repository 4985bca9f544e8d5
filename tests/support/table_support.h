/* Tables of cases for the cross-cutting tests: one behaviour run over every
 * dispatcher (sync, threading, forking, pool) and every stream transport
 * (tcp over IPv4 and IPv6, unix, abstract), one cmocka test per pair, named
 * behaviour/dispatcher/transport. A behaviour is a cmocka test function
 * whose state is the tc_combo to run on. */
#ifndef TESTS_TABLE_SUPPORT_H
#define TESTS_TABLE_SUPPORT_H

#include <stddef.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

typedef struct tc_combo {
    const char *dispatcher; /* a name for ss_dispatch_by_name */
    const char *transport;  /* "tcp", "tcp6", "unix" or "abstract" */
    char dir[128];          /* the unix transport's socket directory, "" otherwise */
    char url[192];
} tc_combo;

typedef struct tc_behaviour {
    const char *name;
    CMUnitTestFunction run;
    const char *not_on; /* a dispatcher it does not apply to, or NULL */
} tc_behaviour;

/* A fresh URL to serve the combination on: a socket in a new temp dir, a
 * new abstract name, or an inet address with port 0. */
const char *tc_url(tc_combo *c);
/* Removes what tc_url created (the unix transport's directory). */
void tc_cleanup(tc_combo *c);

/* Runs every behaviour on every dispatcher x stream transport; with `only`
 * (argv[1], may be NULL), just that dispatcher's cases, so ctest can run the
 * dispatchers side by side (ss_add_test's EACH). Returns the failure count,
 * or 2 for an unknown dispatcher name. */
int tc_run_table(const char *group, const tc_behaviour *behaviours, size_t count, const char *only);

#endif
