/* ss_strerror: one description for every code the library returns. */
#include "internal.h"

#include <string.h>

SS_API const char *ss_strerror(int err)
{
    switch (err) {
    case 0:
        return "Success";
    case SS_EBADURL:
        return "Invalid address URL (expected tcp://HOST:PORT, tcp://[IPV6]:PORT, "
               "udp://HOST:PORT, unix:PATH, unix:@NAME or unixgram:PATH)";
    case SS_ENOTSUPPORTED:
        return "Transport or address form not supported on this system";
    case SS_ESTATE:
        return "Call not valid in the server's current state";
    case SS_ERESOLVE:
        return "Host name could not be resolved";
    case SS_ETRUNCATED:
        return "Datagram truncated: longer than the server's max_packet_size";
    case SS_EUNNAMEDPEER:
        return "Cannot reply: the datagram's sender has no address (unbound Unix socket)";
    case SS_ELINETOOLONG:
        return "Line too long";
    case SS_EINCOMPLETE:
        return "Connection closed in the middle of a message";
    case SS_EFINALFLUSH:
        return "Output pending at the end of the request could not be sent (peer gone)";
    default:
        break;
    }
    if (err < 0 && err > -SS_ERRBASE) {
        /* glibc, musl and the BSDs return static strings for known values */
        const char *text = strerror(-err);
        if (text != NULL)
            return text;
    }
    return "Unknown error";
}
