#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, when built without the project's flags */
#endif
#include "cli.h"
#include "cli_deploy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static ss_server *running_server;
static pid_t serving_pid; /* the server's process; a forked child is another */
/* Set in every child that fork() makes of the serving process: what
 * getpid() != serving_pid tells, without a system call per request. */
static atomic_bool forked_child;
/* Set once serve_forever has returned: whatever ends a request from then
 * on is the stop, not the client. */
static atomic_bool stop_begun;
/* The stop signals the server's process caught: a second one means "stop
 * now", and the drain cuts off the requests in flight at once. */
static atomic_int stop_signals;
/* When the first of them came (CLOCK_MONOTONIC ms; 0: none yet): --drain
 * counts from there, the sync stop grace and the drain alike. */
static atomic_llong first_stop_ms;
/* When the drain's time is up (CLOCK_MONOTONIC ms): from then on, a
 * stream request whose read ends was shut down by the drain. */
static atomic_llong drain_deadline_ms = LLONG_MAX;
/* In a forked child: its one stream request, and whether the drain's
 * SIGTERM cut it off. */
static atomic_int child_request_fd = -1;
static atomic_bool child_cut_off;
static const cli_options *serving_opts; /* for report_error */

static void report_error(ss_server *srv, ss_request *req, int err, void *data);
static long long now_ms(void);
static void share_unread_log(void);

static void note_forked_child(void)
{
    atomic_store(&forked_child, true);
}

/* This process serves: its children (a forking server's, the worker
 * processes) know they are children from the fork itself
 * (pthread_atfork), so a request need not ask getpid(). */
static void become_serving_process(void)
{
    static atomic_bool registered;
    serving_pid = getpid();
    atomic_store(&forked_child, false);
    if (!atomic_exchange(&registered, true))
        pthread_atfork(NULL, NULL, note_forked_child);
}

/* In a forked child, whose request is its own: the parent's SIGTERM is
 * the drain's deadline (ss_server_drain, step 3), so the child cuts its
 * request off as the drain does a thread's, shutting its socket down: the
 * handler's read returns 0, which how_client_went then reports as the
 * stop. Any other stop signal (Ctrl-C reaches the whole process group) is
 * the parent's to act on: the child finishes its request meanwhile. */
static void cut_off_child(const siginfo_t *info)
{
    if (info->si_code != SI_USER || info->si_pid != serving_pid)
        return;
    int saved = errno; /* a signal handler must not change it */
    atomic_store(&child_cut_off, true);
    int fd = atomic_load(&child_request_fd);
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
    errno = saved;
}

/* SIGUSR1 asks for the TLS certificate to be read again; the serving
 * thread does it (service_actions): reading files is not for a signal
 * handler. (SIGHUP restarts the whole server, cli_deploy.c: the copy
 * that takes over reads the files afresh as well.) */
static atomic_bool reload_asked;

static void on_reload_signal(int sig)
{
    (void)sig;
    if (getpid() == serving_pid) /* a forked child leaves it to its parent */
        atomic_store(&reload_asked, true);
}

static void reload_if_asked(ss_server *srv, void *data)
{
    (void)data;
    if (!atomic_exchange(&reload_asked, false))
        return;
    const cli_options *opts = serving_opts;
    int rc = ss_server_reload_tls(srv, NULL, NULL);
    if (rc == 0)
        cli_log_always(opts, "%s: SIGUSR1: TLS certificate reloaded from %s", opts->name,
                       opts->tls_cert);
    else
        cli_log_always(opts,
                       "%s: SIGUSR1: TLS certificate not reloaded, serving on with the old "
                       "one: %s",
                       opts->name, ss_strerror(rc));
}

/* With TLS: SIGUSR1 reloads the certificate, from the serving loop. */
static void install_reload(const cli_options *opts, ss_server *srv)
{
    if (opts->tls_cert == NULL)
        return;
    ss_server_on_service_actions(srv, reload_if_asked);
    signal(SIGUSR1, on_reload_signal);
}

/* docs:begin signal-handler */
static void on_stop_signal(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    if (getpid() != serving_pid) { /* a forked child, serving one request */
        cut_off_child(info);
        return;
    }
    if (atomic_fetch_add(&stop_signals, 1) == 0) /* lock-free: async-signal-safe */
        atomic_store(&first_stop_ms, now_ms());  /* clock_gettime: async-signal-safe */
    ss_server_request_shutdown(running_server);  /* async-signal-safe */
}
/* docs:end signal-handler */

static void usage(FILE *out, const char *name)
{
    fprintf(out,
            "usage: %s [--listen URL]... [--mode MODE] [--workers N] [--processes N]\n"
            "       [--timeout SEC] [--drain SEC] [--proxy-protocol [--proxy-from CIDR]...]\n"
            "       [--inetd] [--tls-cert FILE [--tls-key FILE] [--tls-ca FILE]\n"
            "       [--tls-verify MODE]] [--quiet] [--help]\n"
            "  --listen URL  address to serve (default " CLI_DEFAULT_URL ")\n"
            "                tcp://HOST:PORT, tcp://[::1]:PORT, udp://HOST:PORT,\n"
            "                tls://HOST:PORT (with --tls-cert),\n"
            "                unix:PATH, unix:@NAME (Linux) or unixgram:PATH; fd:N or\n"
            "                systemd:[NAME] for an inherited or socket-activated socket;\n"
            "                repeat it to serve on several sockets at once\n"
            "  --mode MODE   concurrency model: sync, threading (default), forking, pool\n"
            "                or prefork (the pool in one process per CPU, as nginx);\n"
            "                see docs/concurrency.md\n"
            "  --workers N   pool: worker threads; forking: children at once\n"
            "                (default: the library's, see socketserver.h)\n"
            "  --processes N serve in N worker processes (1-1024), each running\n"
            "                the mode; a supervisor replaces any that dies\n"
            "  --timeout SEC a client that stalls a read or write this long is\n"
            "                dropped (default %d; 0: never)\n"
            "  --drain SEC   on SIGINT/SIGTERM, requests in flight get this long to\n"
            "                finish (default %d); a second signal stops at once;\n"
            "                idle keep-alive clients are closed at once; SIGHUP\n"
            "                restarts the server with no connection lost (docs/deploy.md)\n"
            "  --proxy-protocol  behind a load balancer (HAProxy send-proxy-v2, nginx\n"
            "                proxy_protocol on): every connection must begin with a\n"
            "                PROXY v1 or v2 header, and the log names the client it\n"
            "                gives; a connection without one is refused and counted\n"
            "                (tcp:// and unix: only)\n"
            "  --proxy-from CIDR  a source trusted to send that header, e.g.\n"
            "                10.0.0.0/8 or 192.0.2.7 (repeat for more, up to 64;\n"
            "                default: loopback, 127.0.0.0/8 and ::1); 0.0.0.0/0: every\n"
            "                IPv4 source, ::/0: every source; see docs/deploy.md\n"
            "  --inetd       serve the one connection on stdin and exit (inetd,\n"
            "                tcpserver, systemd-socket-activate --inetd); a connected\n"
            "                socket passed as --listen systemd: (Accept=yes) is served\n"
            "                the same way\n"
            "  --tls-cert FILE  TLS: the server's certificate chain (PEM); with it,\n"
            "                tls://HOST:PORT listeners speak TLS (and only they);\n"
            "                without a tls:// one, every tcp:// and unix: one does.\n"
            "                SIGUSR1 reloads the files; a SIGHUP restart reads them\n"
            "                afresh too. A file that cannot be used: exit status 2\n"
            "  --tls-key FILE   TLS: the certificate's private key (PEM; default:\n"
            "                the key in the --tls-cert file, certificate and key in one)\n"
            "  --tls-ca FILE    TLS: the CAs client certificates must chain to\n"
            "  --tls-verify none|optional|required  ask clients for a certificate\n"
            "                (default none; optional and required need --tls-ca);\n"
            "                see docs/tls.md (scripts/make-test-cert.sh makes test ones)\n"
            "  --quiet       no per-connection log on stderr\n"
            "  --help        this text\n"
            "an option's value may also follow '=': --listen=URL\n"
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

static long long now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Up to a million seconds, so that milliseconds fit an int. */
#define MAX_SECONDS 1000000

static bool listed(const char *name, const char *const list[])
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* "--name=" with nothing after the '=' needs a value as "--name" at the
 * end of the line does; "--name ''" is an empty value the option judges. */
const char *cli_read_option(int argc, char **argv, int *i, const char *const valued[],
                            const char *const flags[], cli_option *out)
{
    const char *arg = argv[*i];
    const char *equals = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t len = equals != NULL ? (size_t)(equals - arg) : strlen(arg);
    out->value = equals != NULL ? equals + 1 : NULL;
    snprintf(out->name, sizeof out->name, "%.*s", (int)len, arg);
    out->given = arg;
    if (len >= sizeof out->name || !(listed(out->name, valued) || listed(out->name, flags)))
        return "unknown argument";
    if (!listed(out->name, valued))
        return out->value != NULL ? "takes no value" : NULL;
    if (out->value == NULL && *i + 1 < argc)
        out->value = argv[++*i];
    return out->value != NULL && (equals == NULL || *out->value != '\0') ? NULL : "needs a value";
}

/* Appends value to a NULL-terminated list with room for max values.
 * Returns -1 to go on, or 2 after printing `too_many` (a usage error). */
static int append_value(const cli_options *opts, const char **list, size_t max, const char *value,
                        const char *too_many)
{
    size_t n = 0;
    while (list[n] != NULL)
        n++;
    if (n == max)
        return usage_error(opts->name, too_many, value);
    list[n] = value;
    return -1;
}

/* One more --proxy-from, checked as the library will take it: a bad
 * one is a usage error that says what is wrong with it. */
static int add_proxy_from(cli_options *opts, const char *cidr)
{
    const char *why;
    if (ss_proxy_check_trusted(cidr, &why) < 0) {
        fprintf(stderr, "%s: --proxy-from %s: %s\n", opts->name, cidr, why);
        usage(stderr, opts->name);
        return 2;
    }
    return append_value(opts, opts->proxy_from, CLI_MAX_PROXY_FROM, cidr,
                        "too many --proxy-from (64 at most)");
}

/* The first --listen replaces the default; each further one adds a
 * listener. */
static int add_listen(cli_options *opts, const char *url)
{
    int rc =
        append_value(opts, opts->listens, CLI_MAX_LISTEN, url, "too many --listen (16 at most)");
    opts->listen = opts->listens[0];
    return rc;
}

/* --tls-cert, --tls-key, --tls-ca, --tls-verify. */
static int apply_tls_option(cli_options *opts, const char *option, const char *value)
{
    static const char *const modes[] = {"none", "optional", "required"};
    if (strcmp(option, "--tls-cert") == 0) {
        opts->tls_cert = value;
    } else if (strcmp(option, "--tls-key") == 0) {
        opts->tls_key = value;
    } else if (strcmp(option, "--tls-ca") == 0) {
        opts->tls_ca = value;
    } else {
        for (int i = 0; i < 3; i++)
            if (strcmp(value, modes[i]) == 0) {
                opts->tls_verify = i; /* SS_TLS_VERIFY_NONE, _OPTIONAL, _REQUIRED */
                opts->tls_verify_given = true;
                return -1;
            }
        return usage_error(opts->name, "--tls-verify takes none, optional or required", value);
    }
    return -1;
}

/* Applies one option that takes a value. Returns -1 to go on, else the
 * exit status (2: usage error, printed). */
static int apply_option(cli_options *opts, const char *option, const char *value)
{
    const char *name = opts->name;
    if (strcmp(option, "--listen") == 0) {
        return add_listen(opts, value);
    } else if (strcmp(option, "--mode") == 0) {
        opts->prefork = strcmp(value, "prefork") == 0;
        if ((opts->mode = ss_dispatch_by_name(opts->prefork ? "pool" : value)) == NULL)
            return usage_error(name, "unknown mode", value);
    } else if (strcmp(option, "--processes") == 0) {
        if ((opts->processes = parse_number(value, 1, SS_MAX_PROCESSES)) <= 0)
            return usage_error(name, "--processes needs a number from 1 to 1024", value);
    } else if (strcmp(option, "--workers") == 0) {
        if ((opts->workers = parse_number(value, 1, 100000)) <= 0)
            return usage_error(name, "--workers needs a number from 1 to 100000", value);
    } else if (strcmp(option, "--timeout") == 0) {
        if ((opts->timeout = parse_number(value, 0, MAX_SECONDS)) < 0)
            return usage_error(name, "--timeout needs seconds from 0 to 1000000", value);
    } else if (strcmp(option, "--proxy-from") == 0) {
        return add_proxy_from(opts, value);
    } else if (strncmp(option, "--tls-", 6) == 0) {
        return apply_tls_option(opts, option, value);
    } else if ((opts->drain = parse_number(value, 0, MAX_SECONDS)) < 0) {
        return usage_error(name, "--drain needs seconds from 0 to 1000000", value);
    }
    return -1;
}

/* --workers sizes the pool or bounds the forked children; with sync or
 * threading it would be silently ignored, so it is refused. */
static int check_workers(const cli_options *opts)
{
    const char *mode = ss_dispatch_name(opts->mode);
    if (opts->workers == 0 || strcmp(mode, "pool") == 0 || strcmp(mode, "forking") == 0)
        return -1;
    fprintf(stderr, "%s: --workers needs --mode pool or forking (not %s)\n", opts->name, mode);
    usage(stderr, opts->name);
    return 2;
}

/* A usage error from cli_read_option: "unknown argument: --bogus",
 * "--listen needs a value", "--quiet takes no value". */
static int option_error(const char *name, const cli_option *option, const char *why)
{
    if (strcmp(why, "unknown argument") == 0)
        fprintf(stderr, "%s: %s: %s\n", name, why, option->given);
    else
        fprintf(stderr, "%s: %s %s\n", name, option->name, why);
    usage(stderr, name);
    return 2;
}

/* A listener that may check its peers' addresses: any but a Unix one
 * (an inherited fd: or systemd: one is known only once it is open). */
static bool may_check_addresses(const cli_options *opts)
{
    for (size_t i = 0; opts->listens[i] != NULL; i++)
        if (strncmp(opts->listens[i], "unix", 4) != 0)
            return true;
    return false;
}

/* --proxy-from says whom to trust with a header; without --proxy-protocol
 * no header is read, and a Unix listener trusts every peer (its socket
 * file's mode decides who may connect): either way it would be silently
 * ignored, so it is refused. */
static int check_proxy_from(const cli_options *opts)
{
    const char *why = NULL;
    if (opts->proxy_from[0] == NULL)
        return -1;
    if (!opts->proxy_protocol)
        why = "--proxy-from needs --proxy-protocol";
    else if (!may_check_addresses(opts))
        why = "--proxy-from needs a tcp:// listener: a Unix one trusts every peer (its socket "
              "file's mode decides who may connect)";
    if (why == NULL)
        return -1;
    fprintf(stderr, "%s: %s\n", opts->name, why);
    usage(stderr, opts->name);
    return 2;
}

/* The TLS options go together: a key, a CA or a verify mode with the
 * certificate (whose file may hold the key too: ss_tls_options.key_file),
 * a verify mode that asks for a certificate with the CA that checks it;
 * tls:// needs a certificate. Anything else would be silently ignored or
 * fail at the first client: refused here. */
static const char *tls_options_error(const cli_options *opts)
{
    bool any = opts->tls_key != NULL || opts->tls_ca != NULL || opts->tls_verify_given;
    if (any && opts->tls_cert == NULL)
        return "--tls-key, --tls-ca and --tls-verify need --tls-cert";
    if (opts->tls_verify != 0 && opts->tls_ca == NULL)
        return "--tls-verify optional or required needs --tls-ca";
    for (int i = 0; opts->listens[i] != NULL; i++)
        if (strncmp(opts->listens[i], "tls://", 6) == 0 && opts->tls_cert == NULL)
            return "--listen tls://... needs --tls-cert";
    return NULL;
}

static int check_tls(const cli_options *opts)
{
    const char *why = tls_options_error(opts);
    if (why == NULL)
        return -1;
    fprintf(stderr, "%s: %s\n", opts->name, why);
    usage(stderr, opts->name);
    return 2;
}

int cli_parse(int argc, char **argv, const char *name, cli_options *opts)
{
    static const char *const valued[] = {"--listen",  "--mode",   "--workers",    "--processes",
                                         "--timeout", "--drain",  "--proxy-from", "--tls-cert",
                                         "--tls-key", "--tls-ca", "--tls-verify", NULL};
    static const char *const flags[] = {"--help",           "-h",      "--quiet",
                                        "--proxy-protocol", "--inetd", NULL};
    *opts = (cli_options){.name = name,
                          .listen = CLI_DEFAULT_URL,
                          .mode = ss_dispatch_threading(),
                          .timeout = CLI_DEFAULT_TIMEOUT,
                          .drain = CLI_DEFAULT_DRAIN,
                          .argc = argc,
                          .argv = argv};
    for (int i = 1; i < argc; i++) {
        cli_option option;
        const char *why = cli_read_option(argc, argv, &i, valued, flags, &option);
        if (why != NULL)
            return option_error(name, &option, why);
        if (strcmp(option.name, "--help") == 0 || strcmp(option.name, "-h") == 0) {
            usage(stdout, name);
            return 0;
        }
        if (strcmp(option.name, "--quiet") == 0) {
            opts->quiet = true;
            continue;
        }
        if (strcmp(option.name, "--proxy-protocol") == 0) {
            opts->proxy_protocol = true;
            continue;
        }
        if (strcmp(option.name, "--inetd") == 0) {
            opts->inetd = true;
            continue;
        }
        int rc = apply_option(opts, option.name, option.value);
        if (rc >= 0)
            return rc;
    }
    if (opts->inetd && opts->listens[0] != NULL)
        return usage_error(name, "--inetd serves the connection on stdin: it takes no --listen",
                           NULL);
    if (opts->listens[0] == NULL)
        opts->listens[0] = opts->listen; /* the default */
    if (opts->prefork && opts->processes == 0)
        opts->processes = SS_PROCESSES_PER_CPU;
    int rc = check_workers(opts);
    if (rc < 0)
        rc = check_proxy_from(opts);
    return rc >= 0 ? rc : check_tls(opts);
}

/* docs:begin install-signals */
static void install_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO; /* who sent it; no SA_RESTART: blocking waits see EINTR */
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
 * ss_server_drain). --drain bounds the whole stop from that first signal:
 * with sync, the request the loop was serving may have used part of it
 * (its stop grace, which ends at the same time), and the drain gets the
 * rest. */
static void drain(const cli_options *opts, ss_server *srv)
{
    long long now = now_ms(), stop = atomic_load(&first_stop_ms);
    long long deadline = (stop != 0 ? stop : now) + opts->drain * 1000LL;
    int left_ms = deadline > now ? (int)(deadline - now) : 0;
    /* what is left of --drain: less when serve_forever waited on a worker */
    cli_log_always(opts,
                   "%s: stopping: finishing requests for up to %d s (signal again to stop now)",
                   opts->name, (left_ms + 999) / 1000);
    atomic_store(&drain_deadline_ms, deadline);
    int rc = ss_server_drain(srv, left_ms);
    ignore_stop_signals(); /* the server is about to be freed */
    if (rc < 0)
        cli_log_always(opts, "%s: %s: unfinished requests were interrupted", opts->name,
                       rc == -ECANCELED ? "stopped at once" : "drain time is up");
}
/* docs:end drain */

/* Set when --proxy-protocol or the TLS options could not be used:
 * open_server failed on the command line, not on the network. */
static bool options_refused;

/* An abstract Unix name has no file, hence no mode: any process in the
 * network namespace may connect and claim any client. Allowed (a test,
 * a container of one), but said. */
static void warn_abstract(const cli_options *opts)
{
    for (size_t i = 0; opts->listens[i] != NULL; i++)
        if (strncmp(opts->listens[i], "unix:@", 6) == 0)
            cli_log_always(opts,
                           "%s: warning: --proxy-protocol on %s: any process in this network "
                           "namespace may connect and claim any client; use a socket path "
                           "(docs/filters.md)",
                           opts->name, opts->listens[i]);
}

/* --proxy-protocol and --proxy-from, before activate. */
static int use_proxy_protocol(const cli_options *opts, ss_server *srv)
{
    if (!opts->proxy_protocol)
        return 0;
    warn_abstract(opts);
    ss_proxy_options proxy = {.trusted = opts->proxy_from[0] != NULL ? opts->proxy_from : NULL};
    int rc = ss_server_set_proxy_protocol(srv, &proxy);
    if (rc == SS_ENOTSTREAM || rc == -EINVAL) {
        options_refused = true;
        cli_log_always(opts, "%s: %s", opts->name,
                       rc == -EINVAL ? "--proxy-from takes an address or CIDR (10.0.0.0/8, ::1)"
                                     : "--proxy-protocol needs a tcp:// or unix: listener");
    }
    return rc;
}

/* --tls-cert and the rest, before activate. A file that does not load is
 * said by the library's log (stderr): the command line is at fault. */
static int use_tls(const cli_options *opts, ss_server *srv)
{
    if (opts->tls_cert == NULL)
        return 0;
    ss_tls_options tls = {.cert_file = opts->tls_cert,
                          .key_file = opts->tls_key,
                          .ca_file = opts->tls_ca,
                          .verify = (ss_tls_verify)opts->tls_verify};
    int rc = ss_server_set_tls(srv, &tls);
    if (rc == SS_ENOTSTREAM || rc == SS_ENOTSUPPORTED || rc == SS_ETLSCERT) {
        options_refused = true;
        cli_log_always(opts, "%s: %s", opts->name,
                       rc == SS_ETLSCERT ? "--tls-cert/--tls-key/--tls-ca: cannot use the files "
                                           "(the line above says why)"
                       : rc == SS_ENOTSTREAM ? "TLS needs a tcp://, tls:// or unix: listener"
                                             : "this libsocketserver was built without TLS "
                                               "(OpenSSL)");
    }
    return rc;
}

/* With several listeners the library's log names the one that failed
 * ("cannot listen on unix:/run/a.sock: ..."): kept here so that the
 * program prints it as its own one line (README: one line that says why),
 * not as a second line under the library's. Other messages go out as the
 * default log prints them. */
static char listen_failure[400];

static void keep_listen_failure(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    (void)data;
    static const char prefix[] = "cannot listen on ";
    if (strncmp(message, prefix, sizeof prefix - 1) == 0 && listen_failure[0] == '\0')
        snprintf(listen_failure, sizeof listen_failure, "%s", message);
    else if (level >= SS_LOG_WARNING)
        fprintf(stderr, "socketserver: %s\n", message);
}

/* ss_server_new for every --listen, with --workers applied before
 * activate sizes the pool (the sync and threading dispatchers ignore it),
 * and the PROXY protocol and TLS filters when asked. */
/* docs:begin open_server */
static int open_server(const cli_options *opts, const ss_handler *handler, void *data,
                       ss_server **out, int *failed)
{
    *failed = 0; /* the --listen that failed; -1: the library's log names it */
    int rc = ss_server_create(out, opts->listen, opts->mode, handler, data);
    if (rc < 0)
        return rc;
    ss_server_set_workers(*out, opts->workers);
    ss_server_set_max_children(*out, opts->workers);
    ss_server_set_processes(*out, opts->processes); /* parsed: 1-1024, or one per CPU */
    for (int i = 1; rc >= 0 && opts->listens[i] != NULL; i++)
        if ((rc = ss_server_add_listener(*out, opts->listens[i])) < 0) /* index i, or an error */
            *failed = i;
    if (rc >= 0 && opts->listens[1] != NULL)
        *failed = -1;
    if (rc >= 0)
        rc = use_proxy_protocol(opts, *out);
    if (rc == 0)
        rc = use_tls(opts, *out);
    ss_server_set_log(*out, keep_listen_failure);
    if (rc == 0)
        rc = ss_server_bind(*out);
    if (rc == 0)
        rc = ss_server_activate(*out);
    ss_server_set_log(*out, NULL);
    if (rc < 0) {
        ss_server_free(*out);
        *out = NULL;
    }
    return rc;
}
/* docs:end open_server */

/* With --proxy-protocol, what the filter refused (none of it reaches a
 * handler, so this line is its only trace in the log). */
static void report_proxy_refusals(const cli_options *opts, const ss_server *srv)
{
    if (!opts->proxy_protocol)
        return;
    ss_stats st;
    ss_server_stats(srv, &st);
    cli_log_always(opts,
                   "%s: PROXY protocol: %llu connections refused: %llu without a valid header, "
                   "%llu from untrusted sources, %llu header timeouts",
                   opts->name, (unsigned long long)st.filter_refused,
                   (unsigned long long)st.proxy_invalid, (unsigned long long)st.proxy_untrusted,
                   (unsigned long long)st.proxy_timeouts);
}

/* What even the drain could not end (a handler busy computing) is not
 * waited for: exiting ends its thread. With nothing left, close joins the
 * idle threads, so none is still running (in OpenSSL, say) as the
 * process exits. */
static void close_after_drain(ss_server *srv)
{
    ss_stats left;
    ss_server_stats(srv, &left);
    ss_server_set_block_on_close(srv, left.active == 0);
    ss_server_free(srv);
}

/* With TLS, the handshakes that failed (none reaches a handler; the
 * library logs each at debug level only). */
static void report_tls_refusals(const cli_options *opts, const ss_server *srv)
{
    if (opts->tls_cert == NULL)
        return;
    ss_stats st;
    ss_server_stats(srv, &st);
    cli_log_always(opts, "%s: TLS: %llu handshakes, %llu failed, %llu failed reloads", opts->name,
                   (unsigned long long)st.tls_handshakes,
                   (unsigned long long)st.tls_handshake_failures,
                   (unsigned long long)st.tls_reload_failures);
}

/* "listening on URL", one line per listener, the first first. */
static void print_listening(const ss_server *srv)
{
    for (int i = 0; i < ss_server_listener_count(srv); i++) {
        char address[128];
        ss_server_listener_address(srv, i, address, sizeof address);
        printf("listening on %s\n", address);
    }
    fflush(stdout);
}

/* The options every server of the examples gets, before it serves. */
static void set_up(const cli_options *opts, ss_server *srv)
{
    /* docs:begin nodelay */
    /* Every example answers with whole messages, one send each, so let
     * each send leave at once (the Nagle/delayed-ACK trap: see "Performance"
     * in docs/tutorial.md). */
    ss_server_set_tcp_nodelay(srv, true);
    /* docs:end nodelay */
    /* Off in the library, as in Python; a server facing a network wants
     * one, or a client that connects and says nothing holds a handler. */
    ss_server_set_request_timeout(srv, opts->timeout > 0 ? opts->timeout * 1000 : -1);
    /* sync: the request the loop serves when the signal comes gets the
     * drain's time too (until its first bytes, its reply), as requests
     * in flight get it in the other modes; an idle one ends at once. */
    ss_server_set_stop_grace(srv, opts->drain * 1000);
    serving_opts = opts;
    ss_server_on_handle_error(srv, report_error);
    install_reload(opts, srv);
    if (opts->configure != NULL)
        opts->configure(srv);
}

/* Per-connection mode: the one connection fd, then exit. */
static int serve_connection(const cli_options *opts, const ss_handler *handler, void *data, int fd)
{
    ss_server *srv = NULL;
    int rc = ss_server_new_connection(&srv, fd, handler, data);
    if (rc == 0 && (rc = use_proxy_protocol(opts, srv)) == 0)
        rc = use_tls(opts, srv);
    if (rc < 0 && srv != NULL)
        ss_server_free(srv);
    if (rc < 0) {
        cli_log_always(opts, "%s: cannot serve the connection: %s", opts->name, ss_strerror(rc));
        return options_refused ? 2 : 1;
    }
    set_up(opts, srv);
    running_server = srv;
    become_serving_process();
    install_stop_signals();
    cli_hangup_per_connection(opts);
    rc = ss_server_serve_connection(srv);
    ignore_stop_signals();
    ss_server_free(srv);
    return rc < 0 && rc != -ECONNREFUSED ? 1 : 0;
}

int cli_serve(const cli_options *opts, const ss_handler *handler, void *data)
{
    signal(SIGPIPE, SIG_IGN); /* a client, or a log reader, that went away ends no server */
    int connection = cli_connection_fd(opts);
    cli_stdio_off_sockets(connection);
    if (connection != -1)
        return connection < 0 ? 2 : serve_connection(opts, handler, data, connection);
    ss_server *srv;
    int failed;
    int rc = open_server(opts, handler, data, &srv, &failed);
    if (rc < 0 && options_refused)
        return 2;                                          /* said why */
    if (rc < 0 && failed < 0 && listen_failure[0] != '\0') /* one of several: named */
        cli_log_always(opts, "%s: %s", opts->name, listen_failure);
    else if (rc < 0 && failed < 0)
        cli_log_always(opts, "%s: cannot listen: %s", opts->name, ss_strerror(rc));
    else if (rc < 0)
        cli_log_always(opts, "%s: cannot listen on %s: %s", opts->name, opts->listens[failed],
                       ss_strerror(rc));
    if (rc < 0)
        return 1;
    set_up(opts, srv);
    /* Before the "listening" line: a tool that signals as soon as it reads
     * it must find the handler in place, not the default (kill). */
    running_server = srv;
    become_serving_process();
    share_unread_log();
    install_stop_signals();
    cli_restart_enable(opts, srv);
    print_listening(srv);
    ss_notify("READY=1"); /* a predecessor handing over, or systemd's Type=notify */
    /* docs:begin serve */
    rc = ss_server_serve_forever(srv, 500); /* until the first signal */
    atomic_store(&stop_begun, true);
    cli_restart_stopping(); /* a hand-over under way gives way to the stop */
    if (opts->stopping != NULL)
        opts->stopping(srv);
    drain(opts, srv);
    cli_restart_disable(); /* after the drain began: no hand-over is left waiting */
    report_proxy_refusals(opts, srv);
    report_tls_refusals(opts, srv);
    close_after_drain(srv);
    /* docs:end serve */
    if (rc < 0) {
        cli_log_always(opts, "%s: %s", opts->name, ss_strerror(rc));
        return 1;
    }
    return 0;
}

const char *cli_peer(const ss_request *req)
{
    const char *name = ss_request_client_name(req);
    return name[0] != '\0' ? name : "(unnamed peer)";
}

bool cli_is_datagram(const ss_request *req)
{
    return ss_request_packet(req, NULL) != NULL;
}

/* A Unix name into out, as the library writes client names: the peer
 * chose it, so a byte outside printable ASCII (a newline would forge a
 * log line) or a backslash is written \xHH. */
static void put_unix_name(char *out, size_t size, const char *name, size_t len)
{
    size_t used = 0;
    for (size_t i = 0; i < len && used + 5 <= size; i++) {
        unsigned char c = (unsigned char)name[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '\\';
        used += (size_t)snprintf(out + used, size - used, plain ? "%c" : "\\x%02x", c);
    }
    out[used] = '\0';
}

/* The proxy's own address as text ("127.0.0.1:5555", "[::1]:5555", a Unix
 * path or "(unnamed peer)"), when the request came with a PROXY header. */
static bool proxy_name(const ss_request *req, char *out, size_t size)
{
    socklen_t len;
    const struct sockaddr *sa = ss_request_proxy_address(req, &len);
    if (sa == NULL)
        return false;
    char host[INET6_ADDRSTRLEN] = "";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t path_len = len > offsetof(struct sockaddr_un, sun_path)
                              ? (size_t)len - offsetof(struct sockaddr_un, sun_path)
                              : 0;
        if (path_len == 0 || (un->sun_path[0] == '\0' && path_len == 1))
            snprintf(out, size, "(unnamed peer)");
        else if (un->sun_path[0] == '\0') { /* abstract (Linux) */
            out[0] = '@';
            put_unix_name(out + 1, size - 1, un->sun_path + 1, path_len - 1);
        } else
            put_unix_name(out, size, un->sun_path, strnlen(un->sun_path, path_len));
    }
    return true;
}

void cli_request_begins(const cli_options *opts, const ss_request *req)
{
    char via[256];
    size_t len;
    if (ss_request_packet(req, &len) != NULL) {
        cli_log(opts, "datagram of %zu bytes from %s", len, cli_peer(req));
        return;
    }
    if (atomic_load_explicit(&forked_child, memory_order_relaxed)) /* for cut_off_child */
        atomic_store(&child_request_fd, ss_request_fileno(req));
    if (opts->quiet)
        return; /* no line to format (behind a balancer: one per connection) */
    if (proxy_name(req, via, sizeof via))
        cli_log(opts, "%s connected via PROXY from %s", cli_peer(req), via);
    else
        cli_log(opts, "%s connected", cli_peer(req));
}

/* True once the drain has shut the sockets in flight down: its time is up
 * or a second signal said "stop now" (in a forked child: the drain's
 * SIGTERM came). A read that ends before that is the client's own close. */
static bool drain_cut_off(void)
{
    if (atomic_load(&child_cut_off))
        return true;
    return atomic_load(&stop_begun) &&
           (atomic_load(&stop_signals) >= 2 || now_ms() >= atomic_load(&drain_deadline_ms));
}

/* How a client went, or NULL if err is a real error. Once the stop began
 * (serve_forever returned), a reset or broken pipe is the drain shutting
 * the socket down, not the client; so is the end of input once the drain
 * cut requests off. */
static const char *how_client_went(const ss_request *req, ssize_t err)
{
    bool reset = err == -ECONNRESET || err == -EPIPE || err == SS_EFINALFLUSH;
    if (err == 0 && cli_is_datagram(req))
        return NULL;
    if (err == 0)
        return drain_cut_off() || ss_request_idle_closed(req) ? "dropped: the server is stopping"
                                                              : "disconnected";
    if (err == -ECANCELED || (reset && atomic_load(&stop_begun)))
        return "dropped: the server is stopping";
    if (reset)
        return "reset the connection";
    if (err == -ETIMEDOUT)
        return "timed out (--timeout)";
    if (err == -ECONNREFUSED && cli_is_datagram(req))
        return "was gone before the reply"; /* its socket closed */
    return NULL;
}

/* A datagram reply refused with -ENOBUFS: its client (or clients like it)
 * leaves its replies unread, and the library will not let it fill the
 * server's send buffer (docs/transports.md). That is how such a client
 * goes, not a server error; but it can cost a line per datagram it sends,
 * so at most one such line a second is written, for the whole server:
 * a limit per client would not bound a flood sent from many addresses.
 * The line counts those left out. The state is shared with forked
 * children (MAP_SHARED), each of which answers one datagram. */
typedef struct unread_log {
    atomic_llong last_ms; /* when the last line was written */
    atomic_long left_out; /* refusals since, not logged */
} unread_log;

static unread_log local_unread_log; /* if mmap fails: this process only */
static unread_log *unread = &local_unread_log;

static void share_unread_log(void)
{
    void *shared =
        mmap(NULL, sizeof *unread, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared != MAP_FAILED)
        unread = shared; /* zeroed by the kernel; kept until exit */
}

static void log_unread_replies(const cli_options *opts, const ss_request *req)
{
    long long now = now_ms(), last = atomic_load(&unread->last_ms);
    if (opts->quiet || now - last < 1000 ||
        !atomic_compare_exchange_strong(&unread->last_ms, &last, now)) {
        atomic_fetch_add(&unread->left_out, 1);
        return;
    }
    long more = atomic_exchange(&unread->left_out, 0);
    if (more > 0)
        cli_log(opts,
                "%s does not read its replies: reply dropped (%ld more dropped replies "
                "not logged since the last such line)",
                cli_peer(req), more);
    else
        cli_log(opts, "%s does not read its replies: reply dropped", cli_peer(req));
}

int cli_request_ends(const cli_options *opts, const ss_request *req, ssize_t n)
{
    if (n == 0 && cli_is_datagram(req))
        return 0; /* answered: logged once, when it came */
    if (n == -ENOBUFS && cli_is_datagram(req)) {
        log_unread_replies(opts, req);
        return 0;
    }
    const char *how = how_client_went(req, n);
    if (how == NULL)
        return (int)n;
    if (!opts->quiet) /* the client's name is formatted only when asked for */
        cli_log(opts, "%s %s", cli_peer(req), how);
    return 0;
}

/* handle_error: what a handler returned, and what the library met after
 * it (a datagram reply that could not go, ...). How a client went is
 * logged as such; only the rest is an error. */
static void report_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)data;
    const cli_options *opts = serving_opts;
    if (cli_request_ends(opts, req, err) != 0) /* not a client going */
        cli_log_always(opts, "%s: error serving %s: %s", opts->name, cli_peer(req),
                       ss_strerror(err));
}

/* One write(2) per line: forked children and threads share stderr, and a
 * line written in two pieces can be cut in two by another's line. */
static void write_line(const char *fmt, va_list ap)
{
    char line[1024];
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
        continue;
}

void cli_log(const cli_options *opts, const char *fmt, ...)
{
    if (opts->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(fmt, ap);
    va_end(ap);
}

void cli_log_always(const cli_options *opts, const char *fmt, ...)
{
    (void)opts;
    va_list ap;
    va_start(ap, fmt);
    write_line(fmt, ap);
    va_end(ap);
}
