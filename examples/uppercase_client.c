/* The classic tutorial's interactive client: read a line, refuse empty
 * input, send it, print the reply; "q" is sent, its reply read, and then
 * the session ends, so the server sees a clean close on every transport.
 * A line is bytes with a length: NUL bytes in it go out and come back.
 *     uppercase_client [--connect URL] [--help]   (default tcp://localhost:9999) */
#include <socketserver.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* send() until all len bytes are out (a stream may take them in parts). */
static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
    return 0;
}

/* Reads exactly as many reply bytes as were sent: the server answers
 * byte for byte, but TCP may deliver the answer in pieces (a datagram
 * reply comes whole). */
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
    return 0;
}

/* Sends one line and reads its answer; prints it unless quitting. */
static int exchange(int fd, const char *line, size_t len, bool quitting)
{
    char *reply = malloc(len);
    int rc = reply != NULL ? send_all(fd, line, len) : -ENOMEM;
    if (rc == 0)
        rc = read_reply(fd, reply, len);
    if (rc == 0 && !quitting) {
        printf("received: ");
        fwrite(reply, 1, len, stdout);
        printf("\n");
    }
    free(reply);
    return rc;
}

/* docs:begin converse */
static int converse(int fd)
{
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0) {
        printf("message (q to quit): ");
        fflush(stdout);
        if ((len = getline(&line, &size, stdin)) <= 0)
            break; /* end of input */
        if (line[len - 1] == '\n')
            len--;
        if (len == 0) {
            printf("input must not be empty\n");
            continue;
        }
        bool quitting = len == 1 && line[0] == 'q';
        rc = exchange(fd, line, (size_t)len, quitting); /* len bytes, NULs and all */
        if (quitting)
            break; /* its reply read: the server sees a clean close */
    }
    free(line);
    return rc;
}
/* docs:end converse */

int main(int argc, char **argv)
{
    const char *url = "tcp://localhost:9999";
    if (argc == 2 && strcmp(argv[1], "--help") == 0) {
        printf("usage: uppercase_client [--connect URL]   (default %s)\n"
               "type lines to send; an empty line is refused; q ends the session\n",
               url);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--connect") == 0) {
        url = argv[2];
    } else if (argc != 1) {
        fprintf(stderr, "usage: uppercase_client [--connect URL] [--help]\n");
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
