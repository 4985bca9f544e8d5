#include "loop_support.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void *serve(void *srv)
{
    ss_server_serve_forever(srv, 50);
    return NULL;
}

void ut_serve_in_thread(ss_server *srv, pthread_t *loop)
{
    assert_int_equal(pthread_create(loop, NULL, serve, srv), 0);
}

void ut_stop_serving(ss_server *srv, pthread_t loop)
{
    assert_int_equal(ss_server_shutdown(srv), 0);
    pthread_join(loop, NULL);
}

int ut_connect_to(ss_server *srv)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(ss_server_fileno(srv), (struct sockaddr *)&a, &len), 0);
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, len), 0);
    return fd;
}
