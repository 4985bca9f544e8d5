/* Echo: every byte a client sends comes straight back. */
#include "cli.h"

#include <errno.h>

static cli_options opts;

static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_log(&opts, "%s connected", ss_request_client_name(req));
    char buf[4096];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) {
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    cli_log(&opts, "%s disconnected", ss_request_client_name(req));
    return n == -ECANCELED ? 0 : (int)n;
}

static const ss_handler echo_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "echo_server", &opts);
    return rc >= 0 ? rc : cli_serve(&opts, &echo_handler, NULL);
}
