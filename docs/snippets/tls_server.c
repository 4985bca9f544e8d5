/* docs/tls.md: the tutorial's uppercase server made a TLS server by its
 * URL and two options, and a handler that says what TLS it got. */
#include "tutorial.h"

#include <stdio.h>
#include <string.h>

/* docs:begin handler */
static int handle(ss_request *req, void *data)
{
    (void)data;
    char line[256];
    ssize_t n;
    /* the handshake is done before setup: here, the session is known */
    const char *who = ss_request_tls_peer_subject(req); /* NULL: no client certificate */
    fprintf(stderr, "%s: %s, ALPN %s, for %s, client %s\n", ss_request_client_name(req),
            ss_request_tls_version(req), ss_request_tls_alpn(req) ? ss_request_tls_alpn(req) : "-",
            ss_request_tls_server_name(req) ? ss_request_tls_server_name(req) : "-",
            who ? who : "anonymous");
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) /* decrypted */
        if (ss_request_send_all(req, line, (size_t)n) < 0)         /* encrypted */
            break;
    return n < 0 ? (int)n : 0;
}
/* docs:end handler */

static const ss_handler echo_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    const ss_handler *handler =
        argc > 1 && strcmp(argv[1], "--echo") == 0 ? &echo_handler : &uppercase_handler;
    /* docs:begin main */
    ss_server *server;
    int rc = ss_server_create(&server, "tls://localhost:9443", ss_dispatch_pool(), handler, NULL);
    if (rc == 0) {
        ss_tls_options tls = {.cert_file = "server.pem", .key_file = "server.key"};
        rc = ss_server_set_tls(server, &tls); /* before activate */
    }
    if (rc == 0)
        rc = ss_server_bind(server);
    if (rc == 0)
        rc = ss_server_activate(server);
    if (rc < 0) {
        fprintf(stderr, "cannot serve on localhost:9443: %s\n", ss_strerror(rc));
        ss_server_free(server);
        return 1;
    }
    ss_server_serve_forever(server, 500);
    ss_server_free(server);
    /* docs:end main */
    return 0;
}
