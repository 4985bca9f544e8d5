/* ss_strerror: one description for every code the library returns. */
#include "base/base.h"

#include <string.h>

static const struct {
    int code;
    const char *text;
} descriptions[] = {
    {0, "Success"},
    {SS_EBADURL, "Invalid address URL (expected tcp://HOST:PORT, tcp://[IPV6]:PORT, "
                 "udp://HOST:PORT, tls://HOST:PORT, unix:PATH, unix:@NAME or unixgram:PATH)"},
    {SS_EURLNOSCHEME,
     "URL has no scheme (expected tcp://, udp://, tls://, unix: or unixgram: in front)"},
    {SS_EURLSCHEME,
     "Unknown URL scheme (expected tcp://, udp://, tls://, unix:, unixgram:, fd:N or systemd:)"},
    {SS_EURLNOPORT, "URL has no ':PORT' after the host (tcp://HOST:PORT, tcp://[IPV6]:PORT)"},
    {SS_EURLPORTSYNTAX, "URL port is not a decimal number"},
    {SS_EURLPORTRANGE, "URL port out of range (0-65535)"},
    {SS_EURLBRACKET, "Missing ']' in IPv6 address (tcp://[IPV6]:PORT)"},
    {SS_EURLIPV6BARE, "IPv6 address needs brackets (tcp://[IPV6]:PORT)"},
    {SS_EURLHOST, "URL host is empty in brackets or holds '/', '?', '#', '[', ']' or a space"},
    {SS_EURLNOPATH, "URL has no socket path (unix:PATH, unix:@NAME, unixgram:PATH)"},
    {SS_EURLFD, "URL fd:N needs a descriptor number, 0 or more (fd:3)"},
    {SS_EURLFDNAME, "URL systemd:NAME needs a name systemd allows: printable ASCII, no ':'"},
    {SS_ENOTSUPPORTED, "Transport or address form not supported on this system"},
    {SS_ESTATE, "Call not valid in the server's current state"},
    {SS_ERESOLVE, "Host name could not be resolved"},
    {SS_ETRUNCATED, "Datagram truncated: longer than the server's max_packet_size"},
    {SS_EUNNAMEDPEER, "Cannot reply: the datagram's sender has no address (unbound Unix socket)"},
    {SS_ELINETOOLONG, "Line too long"},
    {SS_EINCOMPLETE, "Connection closed in the middle of a message"},
    {SS_EFINALFLUSH, "Output pending at the end of the request could not be sent (peer gone)"},
    {SS_EPROXY, "Invalid or missing PROXY protocol header"},
    {SS_EPROXYUNTRUSTED, "PROXY protocol header from an untrusted source"},
    {SS_ENOTSTREAM, "Filters (the PROXY protocol too) need a stream listener (tcp://, unix:): "
                    "a datagram server's requests are single packets"},
    {SS_ESUCCESSOR, "The successor process ended before it said it was ready"},
    {SS_ENOTLISTENING, "Inherited socket is not listening (a stream socket needs listen(), a "
                       "datagram socket a bound address)"},
    {SS_ENOACTIVATION, "No sockets passed by socket activation (LISTEN_PID, LISTEN_FDS unset)"},
    {SS_ENOFDNAME, "No socket passed by socket activation has that name (LISTEN_FDNAMES)"},
    {SS_ELISTENPID, "Socket activation: LISTEN_PID names another process"},
    {SS_ELISTENENV, "Socket activation: LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES is malformed"},
    {SS_ELISTENFDS, "Socket activation: LISTEN_FDS counts descriptors that are not open"},
    {SS_ETLS, "The peer broke the TLS protocol after the handshake"},
    {SS_ETLSCERT, "TLS certificate, key or CA file could not be loaded (see the server's log)"},
    {SS_ETLSNOCERT, "tls:// server has no certificate: call ss_server_set_tls before activate"},
};

SS_API const char *ss_strerror(int err)
{
    for (size_t i = 0; i < sizeof descriptions / sizeof descriptions[0]; i++)
        if (descriptions[i].code == err)
            return descriptions[i].text;
    if (err < 0 && err > -SS_ERRBASE) {
        /* glibc, musl and the BSDs return static strings for known values */
        const char *text = strerror(-err);
        if (text != NULL)
            return text;
    }
    return "Unknown error";
}
