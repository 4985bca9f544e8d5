/* The command line shared by the example servers:
 *     NAME [--listen URL]... [--mode MODE] [--workers N] [--processes N] [--timeout SEC]
 *          [--drain SEC] [--proxy-protocol [--proxy-from CIDR]...] [--inetd]
 *          [--tls-cert FILE [--tls-key FILE] [--tls-ca FILE]
 *           [--tls-verify none|optional|required]] [--quiet]
 *          [--help] (each value may also follow '=': --listen=URL)
 * and the run loop around it: listen, print "listening on URL" (one line
 * per listener, in the order given), serve until
 * SIGINT/SIGTERM, let the requests in flight finish (a second signal: stop
 * now), exit 0. SIGHUP restarts it (cli_deploy.h), which reads the TLS
 * files afresh; with --tls-cert, SIGUSR1 reloads the certificate and key
 * in place. */
#ifndef EXAMPLES_CLI_H
#define EXAMPLES_CLI_H

#include <socketserver.h>
#include <stdbool.h>
#include <sys/types.h>

#define CLI_DEFAULT_URL     "tcp://localhost:9999"
#define CLI_DEFAULT_TIMEOUT 300 /* seconds a client may stall a read or write */
#define CLI_DEFAULT_DRAIN   5   /* seconds requests in flight get after a stop signal */
#define CLI_MAX_PROXY_FROM  64  /* --proxy-from CIDRs, the library's limit */
#define CLI_MAX_LISTEN      16  /* --listen URLs */

typedef struct cli_options {
    const char *name;   /* program name for messages */
    const char *listen; /* the first URL: ss_server_address's */
    /* Every --listen, in order, NULL-terminated (listen[0] == listen):
     * one server serves them all. */
    const char *listens[CLI_MAX_LISTEN + 1];
    const ss_dispatcher *mode; /* default: threading */
    int workers;               /* --workers: pool threads / forking children; 0 = default */
    /* --processes: worker processes (ss_server_set_processes); 0: serve in
     * this one. --mode prefork is the pool with one per CPU unless given. */
    int processes;
    bool prefork;        /* --mode prefork */
    int timeout;         /* --timeout: request timeout in seconds; 0 = none */
    int drain;           /* --drain: seconds for requests in flight at a stop */
    bool proxy_protocol; /* --proxy-protocol: a PROXY header begins every connection */
    /* --proxy-from, NULL-terminated: the sources trusted to send one;
     * none given: the library's default (loopback). */
    const char *proxy_from[CLI_MAX_PROXY_FROM + 1];
    /* --tls-cert, --tls-key, --tls-ca, --tls-verify: TLS on the tls://
     * listeners (without one: on every tcp:// and unix: listener); NULL:
     * none given. */
    const char *tls_cert, *tls_key, *tls_ca;
    int tls_verify; /* ss_tls_verify; SS_TLS_VERIFY_NONE unless given */
    bool tls_verify_given;
    bool quiet;
    bool inetd; /* --inetd: serve the one connection on stdin, then exit */
    /* The command line (for the SIGHUP restart, which runs it again). */
    int argc;
    char **argv;
    /* Optional, set by a program after cli_parse. configure runs once the
     * server listens, before it serves (options, hooks); stopping runs
     * after the loop has stopped, before the server is closed (end what
     * keeps handlers busy, so closing does not wait for them forever). */
    void (*configure)(ss_server *srv);
    void (*stopping)(ss_server *srv);
} cli_options;

/* One option of a command line: its name ("--listen") and its value
 * (NULL for a flag). */
typedef struct cli_option {
    char name[32];
    const char *value; /* points into argv */
    const char *given; /* the argument as typed ("--listen=x"), in argv */
} cli_option;

/* Reads the option at argv[*i], in either GNU form: "--name VALUE"
 * (advancing *i past the value) or "--name=VALUE", for the NULL-ended
 * lists of options that take a value and of flags. Returns NULL, or why
 * the command line is wrong: "unknown argument" (name out->given),
 * "needs a value" or "takes no value" (name out->name). */
const char *cli_read_option(int argc, char **argv, int *i, const char *const valued[],
                            const char *const flags[], cli_option *out);

/* Parses argv into opts. Returns -1 to go on, or the exit status to end
 * with (0 after --help, 2 after a usage error, both already printed). */
int cli_parse(int argc, char **argv, const char *name, cli_options *opts);

/* Serves with `handler` until SIGINT or SIGTERM, then drains: requests in
 * flight get --drain seconds to finish, or until a second signal. Returns
 * the exit status: 0 after a signal-requested stop, 1 if the server could
 * not listen. SIGHUP restarts it without dropping a connection
 * (cli_deploy.h). With --inetd, or given a connected socket by
 * "--listen systemd:" (systemd's Accept=yes), it serves that one
 * connection and returns 0 (1 if the handler failed). */
int cli_serve(const cli_options *opts, const ss_handler *handler, void *data);

/* The client's name for logs: ss_request_client_name, or "(unnamed
 * peer)" for a Unix client that never bound an address (as the library's
 * own reports say). */
const char *cli_peer(const ss_request *req);

/* True if the request is one datagram (udp://, unixgram:), not a
 * connection. */
bool cli_is_datagram(const ss_request *req);

/* Logs how a request begins: "PEER connected" for a connection (with
 * --proxy-protocol, PEER is the client the header names, and the line ends
 * "via PROXY from PROXYADDR"), "datagram of N bytes from PEER" for a
 * datagram. */
void cli_request_begins(const cli_options *opts, const ss_request *req);

/* Ends a handler: the normal ways a client goes (n == 0: it closed, or its
 * datagram is answered; a reset or broken pipe; the --timeout passing;
 * -ECANCELED or any of these once a stop began: the server is stopping)
 * are logged as one line and return 0; any other negative n is returned
 * for handle_error to report. cli_serve installs a handle_error hook that
 * sorts errors the same way, so nothing a client does on its way out is
 * ever logged as an error. */
int cli_request_ends(const cli_options *opts, const ss_request *req, ssize_t n);

/* Logs one per-connection line to stderr unless --quiet was given, in
 * one write (lines of threads and forked children never mix). */
void cli_log(const cli_options *opts, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The same, even with --quiet: for what is not per-connection chatter. */
void cli_log_always(const cli_options *opts, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
