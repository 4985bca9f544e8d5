#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ss_server *running_server;

/* docs:begin signal-handler */
static void on_stop_signal(int sig)
{
    (void)sig;
    ss_server_request_shutdown(running_server); /* async-signal-safe */
}
/* docs:end signal-handler */

static void usage(FILE *out, const char *name)
{
    fprintf(out,
            "usage: %s [--listen URL] [--mode MODE] [--workers N] [--timeout SEC]\n"
            "       [--drain SEC] [--quiet] [--help]\n"
            "  --listen URL  address to serve (default " CLI_DEFAULT_URL ")\n"
            "                tcp://HOST:PORT, tcp://[::1]:PORT, udp://HOST:PORT,\n"
            "                unix:PATH, unix:@NAME (Linux) or unixgram:PATH\n"
            "  --mode MODE   concurrency model: sync, threading (default), forking\n"
            "                or pool; see docs/concurrency.md\n"
            "  --workers N   pool: worker threads; forking: children at once\n"
            "                (default: the library's, see socketserver.h)\n"
            "  --timeout SEC a client that stalls a read or write this long is\n"
            "                dropped (default %d; 0: never)\n"
            "  --drain SEC   on SIGINT/SIGTERM, requests in flight get this long to\n"
            "                finish (default %d); a second signal stops at once\n"
            "  --quiet       no per-connection log on stderr\n"
            "  --help        this text\n"
            "see docs/production.md\n",
            name, CLI_DEFAULT_TIMEOUT, CLI_DEFAULT_DRAIN);
}

static int usage_error(const char *name, const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s%s%s\n", name, what, arg ? ": " : "", arg ? arg : "");
    usage(stderr, name);
    return 2;
}

/* A decimal number from min to max, or -1. */
static int parse_number(const char *text, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < min || n > max)
        return -1;
    return (int)n;
}

/* Up to a million seconds, so that milliseconds fit an int. */
#define MAX_SECONDS 1000000

int cli_parse(int argc, char **argv, const char *name, cli_options *opts)
{
    *opts = (cli_options){.name = name,
                          .listen = CLI_DEFAULT_URL,
                          .mode = ss_dispatch_threading(),
                          .timeout = CLI_DEFAULT_TIMEOUT,
                          .drain = CLI_DEFAULT_DRAIN};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout, name);
            return 0;
        } else if (strcmp(arg, "--quiet") == 0) {
            opts->quiet = true;
        } else if (strcmp(arg, "--listen") == 0 && has_value) {
            opts->listen = argv[++i];
        } else if (strcmp(arg, "--mode") == 0 && has_value) {
            opts->mode = ss_dispatch_by_name(argv[++i]);
            if (opts->mode == NULL)
                return usage_error(name, "unknown mode", argv[i]);
        } else if (strcmp(arg, "--workers") == 0 && has_value) {
            opts->workers = parse_number(argv[++i], 1, 100000);
            if (opts->workers <= 0)
                return usage_error(name, "--workers needs a number from 1 to 100000", argv[i]);
        } else if (strcmp(arg, "--timeout") == 0 && has_value) {
            if ((opts->timeout = parse_number(argv[++i], 0, MAX_SECONDS)) < 0)
                return usage_error(name, "--timeout needs seconds from 0 to 1000000", argv[i]);
        } else if (strcmp(arg, "--drain") == 0 && has_value) {
            if ((opts->drain = parse_number(argv[++i], 0, MAX_SECONDS)) < 0)
                return usage_error(name, "--drain needs seconds from 0 to 1000000", argv[i]);
        } else {
            return usage_error(name, "bad argument", arg);
        }
    }
    return -1;
}

/* docs:begin install-signals */
static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking waits see EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}
/* docs:end install-signals */

/* The server is about to be freed: a late signal must not reach it. */
static void ignore_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* docs:begin drain */
/* The first signal ended the loop; a second one, caught by the same
 * handler, makes the drain stop at once (ss_server_request_shutdown during
 * ss_server_drain). */
static void drain(const cli_options *opts, ss_server *srv)
{
    fprintf(stderr, "%s: stopping: finishing requests for up to %d s (signal again to stop now)\n",
            opts->name, opts->drain);
    int rc = ss_server_drain(srv, opts->drain * 1000);
    ignore_stop_signals(); /* the server is about to be freed */
    if (rc < 0)
        fprintf(stderr, "%s: %s: unfinished requests were interrupted\n", opts->name,
                rc == -ECANCELED ? "stopped at once" : "drain time is up");
}
/* docs:end drain */

/* ss_server_new, with --workers applied before activate sizes the pool
 * (the sync and threading dispatchers ignore it). */
/* docs:begin open_server */
static int open_server(const cli_options *opts, const ss_handler *handler, void *data,
                       ss_server **out)
{
    int rc = ss_server_create(out, opts->listen, opts->mode, handler, data);
    if (rc < 0)
        return rc;
    ss_server_set_workers(*out, opts->workers);
    ss_server_set_max_children(*out, opts->workers);
    rc = ss_server_bind(*out);
    if (rc == 0)
        rc = ss_server_activate(*out);
    if (rc < 0) {
        ss_server_free(*out);
        *out = NULL;
    }
    return rc;
}
/* docs:end open_server */

int cli_serve(const cli_options *opts, const ss_handler *handler, void *data)
{
    ss_server *srv;
    int rc = open_server(opts, handler, data, &srv);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", opts->name, opts->listen, ss_strerror(rc));
        return 1;
    }
    /* docs:begin nodelay */
    /* Every example answers with whole messages, one send each, so let
     * each send leave at once (the Nagle/delayed-ACK trap: see "Performance"
     * in docs/tutorial.md). */
    ss_server_set_tcp_nodelay(srv, true);
    /* docs:end nodelay */
    /* Off in the library, as in Python; a server facing a network wants
     * one, or a client that connects and says nothing holds a handler. */
    ss_server_set_request_timeout(srv, opts->timeout > 0 ? opts->timeout * 1000 : -1);
    if (opts->configure != NULL)
        opts->configure(srv);
    /* Before the "listening" line: a tool that signals as soon as it reads
     * it must find the handler in place, not the default (kill). */
    running_server = srv;
    install_stop_signals();
    char address[128];
    ss_server_address(srv, address, sizeof address);
    printf("listening on %s\n", address);
    fflush(stdout);
    /* docs:begin serve */
    rc = ss_server_serve_forever(srv, 500); /* until the first signal */
    if (opts->stopping != NULL)
        opts->stopping(srv);
    drain(opts, srv);
    /* What even the drain could not end (a handler busy computing) is not
     * waited for: exiting ends its thread. */
    ss_server_set_block_on_close(srv, false);
    ss_server_free(srv);
    /* docs:end serve */
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", opts->name, ss_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_client_gone(const cli_options *opts, const char *peer, ssize_t n)
{
    const char *how = n == 0                            ? "disconnected"
                      : n == -ECONNRESET || n == -EPIPE ? "reset the connection"
                      : n == -ETIMEDOUT                 ? "timed out (--timeout)"
                      : n == -ECANCELED                 ? "dropped: stopping"
                                                        : NULL;
    if (how == NULL)
        return (int)n;
    cli_log(opts, "%s %s", peer, how);
    return 0;
}

void cli_log(const cli_options *opts, const char *fmt, ...)
{
    if (opts->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
