/* Which transport table serves which URL scheme. */
#include "internal.h"

const ss__transport *ss__transport_for(ss__scheme scheme)
{
    switch (scheme) {
    case SS__SCHEME_TCP:
        return ss__transport_tcp();
    default:
        return NULL; /* parsed, but not built in yet: SS_ENOTSUPPORTED */
    }
}
