/* Reference: the same server on libuv, written the way libuv's own echo
 * examples are: a buffer from alloc_cb per read, uppercased in place and
 * handed to uv_write, freed in the write callback. */
#include "ref_common.h"

#include <stdlib.h>
#include <uv.h>

typedef struct write_req {
    uv_write_t req;
    uv_buf_t buf;
} write_req;

static uv_loop_t *loop;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    if (status < 0 && !uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, on_closed);
    free(w->buf.base);
    free(w);
}

static void on_read(uv_stream_t *client, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0) {
        write_req *w = malloc(sizeof *w);
        ref_uppercase(buf->base, (size_t)n);
        w->buf = uv_buf_init(buf->base, (unsigned)n);
        uv_write(&w->req, client, &w->buf, 1, on_written);
        return;
    }
    free(buf->base);
    if (n < 0 && !uv_is_closing((uv_handle_t *)client))
        uv_close((uv_handle_t *)client, on_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_stream_t *client;
    if (ref_is_unix()) {
        client = malloc(sizeof(uv_pipe_t));
        uv_pipe_init(loop, (uv_pipe_t *)client, 0);
    } else {
        client = malloc(sizeof(uv_tcp_t));
        uv_tcp_init(loop, (uv_tcp_t *)client);
    }
    if (uv_accept(server, client) == 0)
        uv_read_start(client, on_alloc, on_read);
    else
        uv_close((uv_handle_t *)client, on_closed);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)h;
    (void)sig;
    uv_stop(loop);
}

int main(int argc, char **argv)
{
    int fd = ref_listen(argc, argv, "ref_libuv", true);
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } server;
    uv_signal_t sigint, sigterm;
    loop = uv_default_loop();
    if (ref_is_unix()) {
        uv_pipe_init(loop, &server.pipe, 0);
        uv_pipe_open(&server.pipe, fd);
    } else {
        uv_tcp_init(loop, &server.tcp);
        uv_tcp_open(&server.tcp, fd);
    }
    /* the socket already listens; uv_listen records the callback */
    uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection);
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
