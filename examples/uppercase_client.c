/* The classic tutorial's interactive client: read a line, refuse empty
 * input, send it, print the reply; "q" is sent and then ends the session.
 *     uppercase_client [--connect URL]     (default tcp://localhost:9999) */
#include <socketserver.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Reads exactly as many reply bytes as were sent: the server answers
 * byte for byte, but TCP may deliver the answer in pieces. */
static int read_reply(int fd, char *buf, size_t want)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = recv(fd, buf + got, want - got, 0);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            got += (size_t)n;
    }
    buf[got] = '\0';
    return 0;
}

/* docs:begin converse */
static int converse(int fd)
{
    char line[4096], reply[4096];
    for (;;) {
        printf("message (q to quit): ");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL)
            return 0;
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0') {
            printf("input must not be empty\n");
            continue;
        }
        size_t len = strlen(line);
        if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len)
            return -errno;
        if (strcmp(line, "q") == 0)
            return 0;
        int rc = read_reply(fd, reply, len);
        if (rc < 0)
            return rc;
        printf("received: %s\n", reply);
    }
}
/* docs:end converse */

int main(int argc, char **argv)
{
    const char *url = "tcp://localhost:9999";
    if (argc == 3 && strcmp(argv[1], "--connect") == 0) {
        url = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--connect URL]\n", argv[0]);
        return 2;
    }
    int fd = ss_connect(url);
    if (fd < 0) {
        fprintf(stderr, "uppercase_client: cannot connect to %s: %s\n", url, ss_strerror(fd));
        return 1;
    }
    int rc = converse(fd);
    close(fd);
    if (rc < 0)
        fprintf(stderr, "uppercase_client: %s\n", ss_strerror(rc));
    printf("connection closed\n");
    return rc < 0 ? 1 : 0;
}
