/* Echo: every byte a client sends comes straight back. Written with the
 * stream calls (Python's StreamRequestHandler), so the same handler also
 * answers each datagram of udp:// or unixgram: with one reply. */
#include "cli.h"

#include <errno.h>

static cli_options opts;

/* docs:begin echo */
static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_request_begins(&opts, req);
    char buf[16384];
    ssize_t n;
    /* read_some: whatever has arrived, up to sizeof buf; write: unbuffered
     * (the default), so each answer leaves at once, in one piece */
    while ((n = ss_request_read_some(req, buf, sizeof buf)) > 0) {
        ssize_t rc = ss_request_write(req, buf, (size_t)n);
        if (rc < 0)
            return cli_request_ends(&opts, req, rc);
    }
    return cli_request_ends(&opts, req, n); /* closed, reset, timed out, stopping */
}
/* docs:end echo */

static const ss_handler echo_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "echo_server", &opts);
    return rc >= 0 ? rc : cli_serve(&opts, &echo_handler, NULL);
}
