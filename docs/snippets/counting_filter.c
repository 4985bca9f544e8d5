/* docs/filters.md: a filter written by the application, which counts the
 * bytes each connection moves and adds them to the server's totals. */
#include "tutorial.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* docs:begin filter */
/* Shared by every connection (the config): totals, hence atomics. */
typedef struct byte_totals {
    atomic_ullong in, out;
} byte_totals;

/* One connection's counts (the ctx state), added to the totals at close. */
typedef struct byte_counts {
    byte_totals *totals;
    unsigned long long in, out;
} byte_counts;

static int counting_open(ss_filter_ctx *ctx, void *config)
{
    byte_counts *counts = calloc(1, sizeof *counts);
    if (counts == NULL)
        return -ENOMEM; /* refuses the connection: counted in filter_refused */
    counts->totals = config;
    ss_filter_set_state(ctx, counts);
    return 0;
}

static ssize_t counting_recv(ss_filter_ctx *ctx, void *buf, size_t size)
{
    ssize_t n = ss_filter_recv_next(ctx, buf, size); /* timeout, fiber: the library's */
    if (n > 0)
        ((byte_counts *)ss_filter_state(ctx))->in += (unsigned long long)n;
    return n;
}

static int counting_send(ss_filter_ctx *ctx, const void *buf, size_t size)
{
    int rc = ss_filter_send_next(ctx, buf, size);
    if (rc == 0)
        ((byte_counts *)ss_filter_state(ctx))->out += size;
    return rc;
}

static void counting_close(ss_filter_ctx *ctx)
{
    byte_counts *counts = ss_filter_state(ctx);
    atomic_fetch_add(&counts->totals->in, counts->in);
    atomic_fetch_add(&counts->totals->out, counts->out);
    free(counts);
}

static const ss_filter counting_filter = {
    .version = SS_FILTER_VERSION,
    .name = "counting",
    .open = counting_open,
    .recv = counting_recv,
    .send = counting_send,
    .close = counting_close,
    .free_config = NULL, /* the config below is static */
};
/* docs:end filter */

int main(void)
{
    static byte_totals totals;
    /* docs:begin main */
    ss_server *server;
    int rc = ss_server_create(&server, "tcp://localhost:9999", ss_dispatch_threading(),
                              &uppercase_handler, NULL);
    if (rc == 0)
        rc = ss_server_add_filter(server, &counting_filter, &totals); /* before activate */
    if (rc == 0)
        rc = ss_server_bind(server);
    if (rc == 0)
        rc = ss_server_activate(server);
    if (rc < 0) {
        fprintf(stderr, "cannot serve on localhost:9999: %s\n", ss_strerror(rc));
        ss_server_free(server);
        return 1;
    }
    ss_server_serve_forever(server, 500);
    ss_server_free(server);
    /* docs:end main */
    printf("%llu bytes in, %llu out\n", atomic_load(&totals.in), atomic_load(&totals.out));
    return 0;
}
