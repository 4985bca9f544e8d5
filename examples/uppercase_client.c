/* The classic tutorial's interactive client: read a line, refuse empty
 * input, send it, print the reply; "q" is sent, its reply read, and then
 * the session ends, so the server sees a clean close on every transport.
 * A line is bytes with a length: NUL bytes in it go out and come back.
 *     uppercase_client [--connect URL] [--help]   (default tcp://localhost:9999) */
#include "cli.h" /* cli_read_option: the servers' command-line rules */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_URL CLI_DEFAULT_URL

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

static void usage(FILE *out)
{
    fprintf(out, "usage: uppercase_client [--connect URL] [--help]   (default " DEFAULT_URL ")\n"
                 "       (or --connect=URL)\n"
                 "type lines to send; an empty line is refused; q ends the session\n");
}

/* The command line, as the servers read theirs (examples/cli.c): -1 to go
 * on with *url set, else the exit status (0 after --help; 2 after a usage
 * error, which names what is wrong). */
static int parse(int argc, char **argv, const char **url)
{
    static const char *const valued[] = {"--connect", NULL};
    static const char *const flags[] = {"--help", "-h", NULL};
    for (int i = 1; i < argc; i++) {
        cli_option option;
        const char *why = cli_read_option(argc, argv, &i, valued, flags, &option);
        if (why != NULL) {
            bool unknown = strcmp(why, "unknown argument") == 0;
            fprintf(stderr, "uppercase_client: %s%s%s\n", unknown ? why : option.name,
                    unknown ? ": " : " ", unknown ? option.given : why);
            usage(stderr);
            return 2;
        }
        if (option.value == NULL) { /* the only flags: --help, -h */
            usage(stdout);
            return 0;
        }
        *url = option.value;
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *url = DEFAULT_URL;
    int status = parse(argc, argv, &url);
    if (status >= 0)
        return status;
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
