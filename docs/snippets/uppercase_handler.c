/* The tutorial's first handler (Python's MyTCPHandler). Compiled into every
 * snippet program, so the docs' copy of it cannot rot. */
#include "tutorial.h"

/* docs:begin handler */
#include <errno.h>
#include <socketserver.h>
#include <stdio.h>

/* Step 1: the handler. Everything said with one client happens here. */
static int handle(ss_request *req, void *data)
{
    (void)data;
    const char *client = ss_request_client_name(req);
    char buf[1024];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) { /* 0: client left */
        printf("%s wrote %zd bytes\n", client, n); /* bytes, NULs and all: not a string */
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] = (char)(buf[i] - 'a' + 'A');
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0) {
            n = rc;
            break;
        }
    }
    if (n == 0 || n == -ECONNRESET || n == -EPIPE) { /* closed or reset: it left */
        printf("%s disconnected\n", client);
        return 0;
    }
    return (int)n; /* anything else: the server reports it, then closes the connection */
}

const ss_handler uppercase_handler = {.version = SS_HANDLER_VERSION, .handle = handle};
/* docs:end handler */
