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
            "usage: %s [--listen URL] [--mode MODE] [--workers N] [--quiet] [--help]\n"
            "  --listen URL  address to serve (default " CLI_DEFAULT_URL ")\n"
            "                tcp://HOST:PORT, tcp://[::1]:PORT, udp://HOST:PORT,\n"
            "                unix:PATH, unix:@NAME (Linux) or unixgram:PATH\n"
            "  --mode MODE   concurrency model: sync, threading (default), forking\n"
            "                or pool; see docs/concurrency.md\n"
            "  --workers N   pool: worker threads; forking: children at once\n"
            "                (default: the library's, see socketserver.h)\n"
            "  --quiet       no per-connection log on stderr\n"
            "  --help        this text\n",
            name);
}

static int usage_error(const char *name, const char *what, const char *arg)
{
    fprintf(stderr, "%s: %s%s%s\n", name, what, arg ? ": " : "", arg ? arg : "");
    usage(stderr, name);
    return 2;
}

/* A positive decimal count, or -1. */
static int parse_count(const char *text)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || n < 1 || n > 100000)
        return -1;
    return (int)n;
}

int cli_parse(int argc, char **argv, const char *name, cli_options *opts)
{
    *opts = (cli_options){.name = name, .listen = CLI_DEFAULT_URL, .mode = ss_dispatch_threading()};
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
            opts->workers = parse_count(argv[++i]);
            if (opts->workers <= 0)
                return usage_error(name, "--workers needs a number from 1 to 100000", argv[i]);
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
    rc = ss_server_serve_forever(srv, 500);
    if (opts->stopping != NULL)
        opts->stopping(srv);
    /* Ctrl-C means now: handlers still busy with connected clients are not
     * waited for (exiting ends their threads; forked children finish their
     * client on their own), and a pool's queued clients are disconnected. */
    ss_server_set_block_on_close(srv, false);
    ss_server_free(srv);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", opts->name, ss_strerror(rc));
        return 1;
    }
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
