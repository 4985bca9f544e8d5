/* The dispatcher registry (by name, for command lines) and the shared
 * no-op slots that keep every dispatcher table fully filled. */
#include "internal.h"

#include <string.h>

int ss__dispatch_start_none(ss_server *srv)
{
    (void)srv;
    return 0;
}

bool ss__dispatch_accepting_always(ss_server *srv)
{
    (void)srv;
    return true;
}

void ss__dispatch_service_none(ss_server *srv)
{
    (void)srv;
}

int ss__dispatch_max_wait_none(ss_server *srv)
{
    (void)srv;
    return -1;
}

void ss__dispatch_close_none(ss_server *srv)
{
    (void)srv;
}

SS_API const ss_dispatcher *ss_dispatch_by_name(const char *name)
{
    const ss_dispatcher *all[] = {ss_dispatch_sync()};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

SS_API const char *ss_dispatch_name(const ss_dispatcher *dispatcher)
{
    return dispatcher->name;
}
