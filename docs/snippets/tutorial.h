/* Shared by the tutorial's snippet programs: the handler of step 1, which
 * the tutorial shows in uppercase_handler.c and every server reuses. */
#ifndef DOCS_TUTORIAL_H
#define DOCS_TUTORIAL_H

#include <socketserver.h>

extern const ss_handler uppercase_handler;

#endif
