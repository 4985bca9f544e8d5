/* The tutorial's four steps, steps 2 to 4 (step 1 is uppercase_handler.c). */
#include "tutorial.h"

#include <stdio.h>

/* docs:begin main */
int main(void)
{
    /* Step 2: a TCP server on localhost:9999 with that handler, bound and
     * listening: Python's TCPServer(("localhost", 9999), MyTCPHandler). */
    ss_server *server;
    int rc = ss_tcp_server_new(&server, "localhost", 9999, &uppercase_handler, NULL);
    if (rc < 0) {
        fprintf(stderr, "cannot listen on localhost:9999: %s\n", ss_strerror(rc));
        return 1;
    }
    ss_server_set_tcp_nodelay(server, true); /* see "Performance" */
    /* Step 3: serve clients until the server is shut down. */
    ss_server_serve_forever(server, 500);
    /* Step 4: release the socket and the memory (Python's server_close). */
    ss_server_free(server);
    return 0;
}
/* docs:end main */
