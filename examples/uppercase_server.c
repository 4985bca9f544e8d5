/* The classic socketserver tutorial's server: every byte a client sends
 * comes back with ASCII letters uppercased (nothing stripped or added, so
 * the tutorial's Python client works unchanged). */
#include "cli.h"

#include <errno.h>

static cli_options opts;

static void uppercase(char *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (char)(buf[i] - 'a' + 'A');
}

static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_request_begins(&opts, req);
    bool datagram = cli_is_datagram(req); /* its size is on the line above */
    char buf[4096];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        if (!datagram && !opts.quiet) /* no name formatted for a line not logged */
            cli_log(&opts, "%s sent %zd bytes", cli_peer(req), n);
        uppercase(buf, n);
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return cli_request_ends(&opts, req, rc);
    }
    return cli_request_ends(&opts, req, n); /* closed, reset, timed out, stopping */
}

static const ss_handler uppercase_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "uppercase_server", &opts);
    return rc >= 0 ? rc : cli_serve(&opts, &uppercase_handler, NULL);
}
