/* The tutorial's server set up to face a network (docs/production.md):
 * limits, a request timeout, the library's messages in the application's
 * log, a graceful stop on SIGINT/SIGTERM and the counters at the end. */
#include "tutorial.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static ss_server *server;

static void stop(int sig)
{
    (void)sig;
    ss_server_request_shutdown(server); /* async-signal-safe; during the drain: stop now */
}

static void on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler; /* no SA_RESTART: a blocked wait returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* docs:begin log */
/* Called from whichever thread has something to say: one fprintf per line
 * keeps the lines whole. */
static void log_line(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)data;
    fprintf(stderr, "server [%s] %s\n", ss_log_level_name(level), message);
}
/* docs:end log */

/* docs:begin configure */
static int open_server(ss_server **out)
{
    int rc =
        ss_server_create(out, "tcp://0.0.0.0:9999", ss_dispatch_pool(), &uppercase_handler, NULL);
    if (rc < 0)
        return rc;
    ss_server *srv = *out;
    ss_server_set_log(srv, log_line);
    ss_server_set_request_timeout(srv, 60 * 1000); /* stalled for a minute: dropped */
    ss_server_set_max_connections(srv, 2000);      /* beyond: wait in the backlog */
    ss_server_set_max_per_client(srv, 50);         /* no one address takes them all */
    rc = ss_server_bind(srv);
    if (rc == 0)
        rc = ss_server_activate(srv);
    if (rc < 0) {
        ss_server_free(srv);
        *out = NULL;
    }
    return rc;
}
/* docs:end configure */

/* docs:begin report */
static void report(const ss_server *srv)
{
    ss_stats st;
    ss_server_stats(srv, &st); /* no lock: any thread, any time */
    fprintf(stderr,
            "accepted %llu, handled %llu, handler errors %llu, refused %llu "
            "(over the limit %llu, per client %llu), timed out %llu, interrupted %llu\n",
            (unsigned long long)st.accepted, (unsigned long long)st.handled,
            (unsigned long long)st.handler_errors, (unsigned long long)st.rejected,
            (unsigned long long)st.rejected_limit, (unsigned long long)st.rejected_per_client,
            (unsigned long long)st.request_timeouts, (unsigned long long)st.interrupted);
}
/* docs:end report */

int main(void)
{
    int rc = open_server(&server);
    if (rc < 0) {
        fprintf(stderr, "cannot listen on port 9999: %s\n", ss_strerror(rc));
        return 1;
    }
    /* docs:begin main */
    on_stop_signals(stop);
    ss_server_serve_forever(server, 500); /* until the first signal */
    ss_server_drain(server, 5 * 1000);    /* 5 s to finish; a second signal: now */
    on_stop_signals(SIG_IGN);             /* the server is about to go */
    report(server);
    ss_server_free(server); /* nothing left to wait for */
    return 0;
    /* docs:end main */
}
