/* Measures how long a server takes to answer one message: the Nagle /
 * delayed-ACK trap made visible. Not a unit test: run it by hand, or
 * through tools/measure-rtt.sh, and read the numbers.
 *
 *   rtt --connect URL [--size BYTES] [--rounds N]
 *       sends BYTES in one write, waits for BYTES back, N times; prints
 *       min / median / p99 / max in microseconds.
 *   rtt --serve URL [--chunk BYTES] [--nodelay]
 *       a libsocketserver echo handler that answers in pieces: recv(chunk)
 *       then send_all, the pattern of the classic Python tutorial. Prints
 *       "listening on URL"; stops on SIGINT/SIGTERM. */
#include <socketserver.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int compare(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int round_trip(int fd, const char *out, char *in, size_t size)
{
    if (send(fd, out, size, MSG_NOSIGNAL) != (ssize_t)size)
        return -1;
    for (size_t got = 0; got < size;) {
        ssize_t n = recv(fd, in + got, size - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int measure(const char *url, size_t size, int rounds)
{
    int fd = ss_connect(url);
    if (fd < 0) {
        fprintf(stderr, "rtt: cannot connect to %s: %s\n", url, ss_strerror(fd));
        return 1;
    }
    char *out = malloc(size), *in = malloc(size);
    long long *took = malloc(sizeof *took * (size_t)rounds);
    memset(out, 'a', size);
    int rc = 0;
    for (int i = 0; i < rounds && rc == 0; i++) {
        long long start = now_us();
        rc = round_trip(fd, out, in, size);
        took[i] = now_us() - start;
    }
    close(fd);
    if (rc == 0) {
        qsort(took, (size_t)rounds, sizeof *took, compare);
        printf("%zu bytes x %d: min %lld us, median %lld us, p99 %lld us, max %lld us\n", size,
               rounds, took[0], took[rounds / 2], took[rounds * 99 / 100], took[rounds - 1]);
    } else {
        fprintf(stderr, "rtt: connection failed during the run\n");
    }
    free(out);
    free(in);
    free(took);
    return rc == 0 ? 0 : 1;
}

/* ---- the chunked server ---- */

static size_t chunk = 1024;
static ss_server *running;

static int handle_chunked(ss_request *req, void *data)
{
    (void)data;
    char buf[65536];
    ssize_t n;
    while ((n = ss_request_recv(req, buf, chunk)) > 0) {
        int rc = ss_request_send_all(req, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
    return n == -ECANCELED ? 0 : (int)n;
}

static void on_signal(int sig)
{
    (void)sig;
    ss_server_request_shutdown(running);
}

static int serve(const char *url, bool nodelay)
{
    static const ss_handler handler = {.version = SS_HANDLER_VERSION, .handle = handle_chunked};
    int rc = ss_server_new(&running, url, NULL, &handler, NULL);
    if (rc < 0) {
        fprintf(stderr, "rtt: cannot listen on %s: %s\n", url, ss_strerror(rc));
        return 1;
    }
    ss_server_set_tcp_nodelay(running, nodelay);
    char address[128];
    ss_server_address(running, address, sizeof address);
    printf("listening on %s\n", address);
    fflush(stdout);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ss_server_serve_forever(running, -1);
    ss_server_free(running);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: rtt --connect URL [--size BYTES] [--rounds N]\n"
                    "       rtt --serve URL [--chunk BYTES] [--nodelay]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *connect_url = NULL, *serve_url = NULL;
    size_t size = 4096;
    int rounds = 200;
    bool nodelay = false;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--connect") == 0 && more)
            connect_url = argv[++i];
        else if (strcmp(argv[i], "--serve") == 0 && more)
            serve_url = argv[++i];
        else if (strcmp(argv[i], "--size") == 0 && more)
            size = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--rounds") == 0 && more)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk") == 0 && more)
            chunk = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--nodelay") == 0)
            nodelay = true;
        else
            return usage();
    }
    if (serve_url != NULL && chunk > 0 && chunk <= 65536)
        return serve(serve_url, nodelay);
    if (connect_url != NULL && size > 0 && rounds > 0)
        return measure(connect_url, size, rounds);
    return usage();
}
