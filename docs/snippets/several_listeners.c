/* docs/transports.md, "Several listeners": one handler answers on TCP and
 * UDP, over IPv4 and IPv6, and on a Unix socket for local tools. */
#include "tutorial.h"

#include <stdio.h>

/* docs:begin several */
static int open_server(ss_server **out)
{
    static const char *const more[] = {"udp://127.0.0.1:5353", "tcp://[::1]:5353",
                                       "unix:/tmp/resolver.sock"};
    int rc =
        ss_server_create(out, "tcp://127.0.0.1:5353", ss_dispatch_pool(), &uppercase_handler, NULL);
    for (size_t i = 0; rc >= 0 && i < sizeof more / sizeof more[0]; i++)
        rc = ss_server_add_listener(*out, more[i]); /* its index: 1, 2, 3 */
    if (rc >= 0)
        rc = ss_server_bind(*out); /* every listener, in order */
    if (rc >= 0)
        rc = ss_server_activate(*out);
    if (rc < 0) {
        ss_server_free(*out); /* NULL after a failed create: a no-op */
        *out = NULL;
    }
    return rc;
}

int main(void)
{
    ss_server *srv;
    int rc = open_server(&srv);
    if (rc < 0) {
        fprintf(stderr, "cannot listen: %s\n", ss_strerror(rc));
        return 1;
    }
    for (int i = 0; i < ss_server_listener_count(srv); i++) {
        char url[128];
        ss_server_listener_address(srv, i, url, sizeof url);
        printf("listening on %s\n", url);
    }
    ss_server_serve_forever(srv, -1);
    ss_server_free(srv);
    return 0;
}
/* docs:end several */
