/* Step 3 with handle_request: one client at a time, at most three, and a
 * hook for when nobody comes. */
#include "tutorial.h"

#include <stdio.h>

/* docs:begin handle-request */
static void nobody_came(ss_server *srv, void *data)
{
    (void)srv;
    (void)data;
    puts("no client in 5 seconds");
}

int main(void)
{
    ss_server *server;
    int rc = ss_tcp_server_new(&server, "localhost", 9999, &uppercase_handler, NULL);
    if (rc < 0) {
        fprintf(stderr, "cannot listen on localhost:9999: %s\n", ss_strerror(rc));
        return 1;
    }
    ss_server_set_timeout(server, 5000); /* Python's server.timeout = 5 */
    ss_server_on_handle_timeout(server, nobody_came);
    for (int i = 0; i < 3; i++)
        ss_server_handle_request(server); /* one client, or 5 s of nobody */
    ss_server_free(server);
    return 0;
}
/* docs:end handle-request */
