/* The tutorial's server made concurrent by changing one line, and stopped
 * cleanly by Ctrl-C or SIGTERM: the life cycle, the C way. */
#include "tutorial.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

/* docs:begin signals */
static ss_server *server;

/* Runs inside the signal handler, so it may only make async-signal-safe
 * calls. ss_server_request_shutdown is one: it sets a flag and writes one
 * byte to the server's wake-up pipe. ss_server_shutdown is not: it waits
 * for the loop, which cannot finish while we sit in its thread. */
static void stop(int sig)
{
    (void)sig;
    ss_server_request_shutdown(server);
}

static void stop_on_ctrl_c(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop; /* no SA_RESTART: a blocked wait returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
/* docs:end signals */

/* docs:begin main */
int main(void)
{
    /* docs:begin threaded */
    int rc = ss_threading_tcp_server_new(&server, "localhost", 9999, &uppercase_handler, NULL);
    /* docs:end threaded */
    if (rc < 0) {
        fprintf(stderr, "cannot listen on localhost:9999: %s\n", ss_strerror(rc));
        return 1;
    }
    stop_on_ctrl_c();                     /* after server is set: stop() uses it */
    ss_server_serve_forever(server, 500); /* returns soon after the signal */
    puts("shutting down");
    /* Clients still connected keep their threads busy; like Python's
     * block_on_close = False, do not wait for them. */
    ss_server_set_block_on_close(server, false);
    ss_server_free(server);
    return 0;
}
/* docs:end main */
