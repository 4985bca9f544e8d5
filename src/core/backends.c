/* The registries: which transport serves a URL scheme, which dispatcher
 * a name stands for. They live in the core, above both kinds of backend,
 * so no backend file needs to know its siblings. */
#include "core/core.h"

#include <string.h>

const ss__transport *ss__transport_for(ss__scheme scheme)
{
    switch (scheme) {
    case SS__SCHEME_TCP:
    case SS__SCHEME_TLS: /* TCP, with TLS on top (filter/tls.c) */
        return ss__transport_tcp();
    case SS__SCHEME_UDP:
        return ss__transport_udp();
    case SS__SCHEME_UNIX:
        return ss__transport_unix();
    case SS__SCHEME_UNIXGRAM:
        return ss__transport_unixgram();
    default:
        return NULL; /* parsed, but not built in: SS_ENOTSUPPORTED */
    }
}

SS_API const ss_dispatcher *ss_dispatch_by_name(const char *name)
{
    const ss_dispatcher *all[] = {ss_dispatch_sync(), ss_dispatch_threading(),
                                  ss_dispatch_forking(), ss_dispatch_pool()};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
