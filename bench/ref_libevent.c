/* Reference: the same server on libevent 2 with bufferevents, uppercasing
 * the input buffer in place and moving it to the output without a copy. */
#include "ref_common.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(in, -1, NULL, v, 16);
    for (int i = 0; i < n && i < 16; i++)
        ref_uppercase(v[i].iov_base, v[i].iov_len);
    if (n > 16) { /* rare: uppercase what was peeked, the rest next time */
        size_t len = 0;
        for (int i = 0; i < 16; i++)
            len += v[i].iov_len;
        evbuffer_remove_buffer(in, bufferevent_get_output(bev), len);
        return;
    }
    evbuffer_add_buffer(bufferevent_get_output(bev), in);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)sa;
    (void)len;
    (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    int fd = ref_listen(argc, argv, "ref_libevent", true);
    struct event_base *base = event_base_new();
    /* backlog 0: the socket already listens */
    struct evconnlistener *l =
        evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    struct event *si = evsignal_new(base, SIGINT, on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, base);
    signal(SIGPIPE, SIG_IGN);
    event_add(si, NULL);
    event_add(st, NULL);
    event_base_dispatch(base);
    event_free(si);
    event_free(st);
    evconnlistener_free(l);
    event_base_free(base);
    return 0;
}
