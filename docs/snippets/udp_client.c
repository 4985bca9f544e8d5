/* A UDP client for echo_server --listen udp://localhost:9999. */

/* docs:begin udp-client */
#include <socketserver.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int main(void)
{
    int fd = ss_connect("udp://localhost:9999"); /* a connected UDP socket */
    if (fd < 0) {
        fprintf(stderr, "cannot connect: %s\n", ss_strerror(fd));
        return 1;
    }
    struct timeval two_seconds = {.tv_sec = 2}; /* datagrams get lost: don't wait forever */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two_seconds, sizeof two_seconds);
    const char *message = "hello over UDP";
    send(fd, message, strlen(message), 0); /* one datagram: one request */
    char reply[1500];
    ssize_t n = recv(fd, reply, sizeof reply, 0); /* its one reply datagram */
    if (n >= 0)
        printf("received: %.*s\n", (int)n, reply);
    else
        perror("no reply");
    close(fd);
    return n < 0;
}
/* docs:end udp-client */
