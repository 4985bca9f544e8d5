/* The handler example of README.md, compiled so the front page cannot rot
 * (scripts/check-docs.sh keeps README's block equal to the region below). */
/* docs:begin readme */
#include <errno.h>
#include <socketserver.h>
#include <stdio.h>

/* A client leaves by closing (0) or by resetting: neither is an error. */
static int client_left(ssize_t n)
{
    return n == 0 || n == -ECONNRESET || n == -EPIPE ? 0 : (int)n;
}

static int handle(ss_request *req, void *data)
{
    (void)data;
    char buf[1024];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, sizeof buf)) > 0) { /* 0: the client left */
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] >= 'a' && buf[i] <= 'z')
                buf[i] -= 'a' - 'A';
        int rc = ss_request_send_all(req, buf, (size_t)n); /* never short, no SIGPIPE */
        if (rc < 0)
            return client_left(rc); /* other errors: reported once by handle_error */
    }
    return client_left(n);
}

int main(void)
{
    static const ss_handler upper = {.version = SS_HANDLER_VERSION, .handle = handle};
    ss_server *srv;
    int rc = ss_server_new(&srv, "tcp://localhost:9999", ss_dispatch_threading(), &upper, NULL);
    if (rc < 0) {
        fprintf(stderr, "cannot listen: %s\n", ss_strerror(rc));
        return 1;
    }
    ss_server_serve_forever(srv, 500); /* until ss_server_shutdown() */
    ss_server_free(srv);
    return 0;
}
/* docs:end readme */
