/* loadgen: a load generator for the uppercase protocol of the examples
 * (every reply byte is the request byte with ASCII a-z uppercased).
 *
 *   loadgen --target URL [-c CONNS] [-s BYTES] [-d SECONDS] [-w SECONDS]
 *           [--pipeline DEPTH] [--per-request] [--think MS]
 *           [--proxy-v1 | --proxy-v2] [--tls-resume] [--server-pid PID] [--label TEXT]
 *           [--deadline SECONDS]
 *           [--strict] [--quiet]
 *
 * One process, one epoll loop. Talks only to loopback addresses and Unix
 * sockets; ends by itself by the deadline whatever the server does. Prints
 * one key=value line on stdout and a summary on stderr. */
#include "lg.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct options {
    const char *url;
    const char *label;
    lg_config cfg;
    int size, pid;
    bool strict, quiet;
} options;

static void usage(FILE *out)
{
    fputs("usage: loadgen --target URL [options]\n"
          "  --target URL        tcp://127.0.0.1:PORT, tcp://[::1]:PORT, tls://... (TCP with\n"
          "                      TLS), udp://..., unix:/path, unixgram:/path, unix:@name\n"
          "                      (Linux abstract) (loopback and Unix sockets only)\n"
          "  -c, --connections N concurrent connections (default 10)\n"
          "  -s, --size BYTES    request size (default 64)\n"
          "  -d, --duration S    measured window in seconds (default 3)\n"
          "  -w, --warmup S      load before the window, not measured (default 1)\n"
          "  --pipeline DEPTH    requests in flight per connection (default 1)\n"
          "  --per-request       a new connection for every request\n"
          "  --think MS          pause after each reply (mostly idle connections)\n"
          "  --proxy-v1, --proxy-v2\n"
          "                      open every stream connection with a PROXY protocol header\n"
          "                      (v1 text or v2 binary) naming its own source and destination\n"
          "  --tls-resume        tls://: each connection offers the session its slot's last\n"
          "                      connection was given (with --per-request: resumed handshakes)\n"
          "  --server-pid PID    also report the server's CPU, RSS, threads, processes\n"
          "  --label TEXT        copied into the output line\n"
          "  --deadline S        hard limit on the whole run (default warmup+duration+10)\n"
          "  --strict            exit 1 on any error, mismatch or starved connection\n"
          "  --quiet             no summary on stderr\n",
          out);
}

static bool number(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

/* Options that take a number: names, bounds, and where the value goes. */
static bool numeric_option(options *o, const char *name, const char *val)
{
    lg_config *c = &o->cfg;
    struct {
        const char *a, *b;
        double lo, hi;
        double *d;
        int *i;
    } t[] = {
        {"-c", "--connections", 1, 60000, NULL, &c->connections},
        {"-s", "--size", 1, 1 << 20, NULL, &o->size},
        {"-d", "--duration", 0.1, 3600, &c->duration_s, NULL},
        {"-w", "--warmup", 0, 3600, &c->warmup_s, NULL},
        {"--pipeline", NULL, 1, 1024, NULL, &c->depth},
        {"--think", NULL, 0, 3600000, NULL, &c->think_ms},
        {"--server-pid", NULL, 1, 1 << 30, NULL, &o->pid},
        {"--deadline", NULL, 1, 7200, &c->deadline_s, NULL},
    };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        double v;
        if (strcmp(name, t[k].a) != 0 && (t[k].b == NULL || strcmp(name, t[k].b) != 0))
            continue;
        if (val == NULL || !number(val, t[k].lo, t[k].hi, &v))
            return false;
        if (t[k].d != NULL)
            *t[k].d = v;
        else
            *t[k].i = (int)v;
        return true;
    }
    return false;
}

static int parse(int argc, char **argv, options *o)
{
    *o = (options){.label = "-",
                   .size = 64,
                   .cfg = {.connections = 10, .depth = 1, .duration_s = 3, .warmup_s = 1}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--per-request") == 0) {
            o->cfg.per_request = true;
        } else if (strcmp(a, "--tls-resume") == 0) {
            o->cfg.tls_resume = true;
        } else if (strcmp(a, "--proxy-v1") == 0 || strcmp(a, "--proxy-v2") == 0) {
            o->cfg.proxy_version = a[9] - '0'; /* "--proxy-vN" */
        } else if (strcmp(a, "--strict") == 0 || strcmp(a, "--quiet") == 0) {
            *(a[2] == 's' ? &o->strict : &o->quiet) = true;
        } else if ((strcmp(a, "--target") == 0 || strcmp(a, "--label") == 0) && val != NULL) {
            *(a[2] == 't' ? &o->url : &o->label) = val;
            i++;
        } else if (numeric_option(o, a, val)) {
            i++;
        } else {
            fprintf(stderr, "loadgen: bad or incomplete option: %s\n", a);
            return -1;
        }
    }
    o->cfg.size = (size_t)o->size;
    o->cfg.server_pid = (pid_t)o->pid;
    if (o->url == NULL) {
        fprintf(stderr, "loadgen: --target is required\n");
        return -1;
    }
    return 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "loadgen: hard deadline reached, giving up\n";
    (void)sig;
    (void)!write(2, msg, sizeof msg - 1);
    _exit(3);
}

/* The loop ends by itself at the end of the window; this alarm is the
 * backstop in case anything ever blocks. */
static void arm_deadline(const lg_config *c)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)ceil(c->deadline_s));
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double server_cpu(const lg_result *r)
{
    if (!r->server_start.ok || !r->server_end.ok)
        return -1;
    return r->server_end.cpu_s - r->server_start.cpu_s;
}

static void print_line(const options *o, const lg_result *r)
{
    const lg_config *c = &o->cfg;
    double rps = r->window_s > 0 ? (double)r->requests / r->window_s : 0;
    double cpu = server_cpu(r);
    double cpu_per = cpu >= 0 && r->requests > 0 ? cpu * 1e6 / (double)r->requests : -1;
    printf("label=%s target=%s mode=%s conns=%d size=%zu depth=%d think_ms=%d window_s=%.3f "
           "requests=%llu rps=%.1f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "errors=%llu mismatches=%llu lost=%llu starved=%llu unconnected=%llu connects=%llu "
           "connect_errors=%llu server_cpu_s=%.2f cpu_us_per_req=%.2f server_rss_kb=%ld "
           "server_pss_kb=%ld server_threads=%ld server_procs=%ld client_cpu_pct=%.0f "
           "proxy=%d tls=%d resumed=%llu\n",
           o->label, o->url, c->per_request ? "per-request" : "persistent", c->connections, c->size,
           c->depth, c->think_ms, r->window_s, (unsigned long long)r->requests, rps,
           us(lg_samples_pct(&r->lat, 50)), us(lg_samples_pct(&r->lat, 99)),
           us(lg_samples_pct(&r->lat, 99.9)), us(lg_samples_pct(&r->lat, 100)),
           (unsigned long long)r->errors, (unsigned long long)r->mismatches,
           (unsigned long long)r->lost, (unsigned long long)r->starved,
           (unsigned long long)r->unconnected, (unsigned long long)r->connects,
           (unsigned long long)r->connect_errors, cpu, cpu_per, r->server_end.rss_kb,
           r->server_end.pss_kb, r->server_end.threads, r->server_end.procs,
           r->window_s > 0 ? 100 * r->client_cpu_s / r->window_s : 0, c->proxy_version,
           (int)c->target.tls, (unsigned long long)r->resumed);
    fflush(stdout);
}

static void print_summary(const options *o, const lg_result *r)
{
    const lg_config *c = &o->cfg;
    fprintf(stderr,
            "%s: %d %s connection(s), %zu-byte requests, depth %d, %.1f s window\n"
            "  %.0f requests/s   latency p50 %.0f us  p99 %.0f us  p99.9 %.0f us  max %.0f us\n"
            "  errors %llu  mismatches %llu  lost %llu  starved %llu  never connected %llu\n",
            o->url, c->connections, c->per_request ? "per-request" : "persistent", c->size,
            c->depth, r->window_s, r->window_s > 0 ? (double)r->requests / r->window_s : 0,
            us(lg_samples_pct(&r->lat, 50)), us(lg_samples_pct(&r->lat, 99)),
            us(lg_samples_pct(&r->lat, 99.9)), us(lg_samples_pct(&r->lat, 100)),
            (unsigned long long)r->errors, (unsigned long long)r->mismatches,
            (unsigned long long)r->lost, (unsigned long long)r->starved,
            (unsigned long long)r->unconnected);
    if (server_cpu(r) >= 0)
        fprintf(stderr, "  server: %.2f s CPU, %ld kB RSS, %ld threads, %ld processes\n",
                server_cpu(r), r->server_end.rss_kb, r->server_end.threads, r->server_end.procs);
}

static bool failed(const lg_result *r)
{
    return r->errors || r->mismatches || r->lost || r->starved || r->unconnected ||
           r->connect_errors || r->requests == 0;
}

int main(int argc, char **argv)
{
    options o;
    char why[256];
    if (parse(argc, argv, &o) < 0) {
        usage(stderr);
        return 2;
    }
    if (lg_target_parse(o.url, &o.cfg.target, why, sizeof why) < 0) {
        fprintf(stderr, "loadgen: %s: %s\n", o.url, why);
        return 2;
    }
    if (o.cfg.target.socktype == SOCK_DGRAM && o.cfg.proxy_version != 0) {
        fprintf(stderr, "loadgen: --proxy-v%d: stream targets only (tcp://, unix:)\n",
                o.cfg.proxy_version);
        return 2;
    }
    if (o.cfg.target.tls && o.cfg.proxy_version != 0) {
        fprintf(stderr, "loadgen: --proxy-v%d and tls:// together are not supported\n",
                o.cfg.proxy_version);
        return 2;
    }
    if (o.cfg.tls_resume && !o.cfg.target.tls) {
        fprintf(stderr, "loadgen: --tls-resume needs a tls:// target\n");
        return 2;
    }
    if (o.cfg.target.socktype == SOCK_DGRAM)
        o.cfg.depth = 1; /* datagrams may be lost: one in flight, a timeout */
    if (o.cfg.deadline_s <= 0)
        o.cfg.deadline_s = o.cfg.warmup_s + o.cfg.duration_s + 10;
    arm_deadline(&o.cfg);
    lg_result r = {0};
    int rc = lg_run(&o.cfg, &r);
    if (rc < 0) {
        fprintf(stderr, "loadgen: cannot run: %s\n",
                rc == -EPROTONOSUPPORT && o.cfg.target.tls
                    ? "tls:// targets need loadgen built with OpenSSL (libssl-dev)"
                    : strerror(-rc));
        return 1;
    }
    lg_samples_sort(&r.lat);
    print_line(&o, &r);
    if (!o.quiet)
        print_summary(&o, &r);
    lg_samples_free(&r.lat);
    return o.strict && failed(&r) ? 1 : 0;
}
