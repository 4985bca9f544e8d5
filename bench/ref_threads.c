/* Reference: the hand-written thread-per-connection server. The main
 * thread accepts; each connection gets a detached thread with default
 * attributes that loops recv / uppercase / send, with the same 4 KiB
 * buffer as examples/uppercase_server. */
#include "ref_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_stop(int sig)
{
    (void)sig;
    ref_exit_now(); /* a benchmark reference: the kernel closes the rest */
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0 || (n < 0 && errno == EINTR)) {
        if (n < 0)
            continue;
        ref_uppercase(buf, (size_t)n);
        if (!send_all(fd, buf, (size_t)n))
            break;
    }
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    int lfd = ref_listen(argc, argv, "ref_threads", false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ref_on_stop(on_stop);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        pthread_t t;
        if (fd < 0)
            continue; /* EINTR, ECONNABORTED, EMFILE: a reference keeps going */
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}
