/* A line-oriented protocol with the stream reader and writer. Each line
 * the client sends is one command, answered with one line:
 *     ECHO text   ->  OK text
 *     UPPER text  ->  OK TEXT
 *     QUIT        ->  OK bye     (and the server closes the connection)
 *     anything else -> ERR unknown command
 * A line longer than LINE_LIMIT bytes is refused with "ERR line too long"
 * without being stored, and the conversation goes on with the next line.
 * Each answer is assembled in the write buffer and flushed once, so it
 * leaves as one packet. Try it with `nc localhost 9999`. */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#define LINE_LIMIT 1024 /* bytes, newline included */

static cli_options opts;

/* docs:begin reply */
/* One answer line: status, optional text, newline; then one flush. */
static int reply(ss_request *req, const char *status, const char *text, size_t len)
{
    ssize_t rc = ss_request_write(req, status, strlen(status));
    if (rc >= 0)
        rc = ss_request_write(req, text, len);
    if (rc >= 0)
        rc = ss_request_write(req, "\n", 1);
    return rc < 0 ? (int)rc : ss_request_flush(req);
}
/* docs:end reply */

/* Splits "COMMAND argument" in place; *arg points into line. */
static size_t split(char *line, size_t len, char **arg)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    char *space = memchr(line, ' ', len);
    *arg = space != NULL ? space + 1 : line + len;
    if (space != NULL)
        *space = '\0';
    return (size_t)(line + len - *arg);
}

/* Answers one command. Returns 1 after QUIT, 0 to go on, or an error. */
static int answer(ss_request *req, char *line, size_t len)
{
    char *arg;
    size_t arg_len = split(line, len, &arg);
    if (strcasecmp(line, "ECHO") == 0)
        return reply(req, "OK ", arg, arg_len);
    if (strcasecmp(line, "UPPER") == 0) {
        for (size_t i = 0; i < arg_len; i++)
            if (arg[i] >= 'a' && arg[i] <= 'z')
                arg[i] = (char)(arg[i] - 'a' + 'A');
        return reply(req, "OK ", arg, arg_len);
    }
    if (strcasecmp(line, "QUIT") == 0) {
        int rc = reply(req, "OK bye", "", 0);
        return rc < 0 ? rc : 1;
    }
    return reply(req, "ERR unknown command", "", 0);
}

/* docs:begin handle */
static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_log(&opts, "%s connected", ss_request_client_name(req));
    char line[LINE_LIMIT + 1]; /* + 1 for the '\0' read_line adds */
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = ss_request_read_line(req, line, sizeof line)) != 0) {
        if (n == SS_ELINETOOLONG)
            rc = reply(req, "ERR line too long", "", 0); /* its rest is skipped */
        else if (n < 0)
            return n == -ECANCELED ? 0 : (int)n;
        else
            rc = answer(req, line, (size_t)n);
    }
    cli_log(&opts, "%s disconnected", ss_request_client_name(req));
    return rc < 0 ? rc : 0;
}
/* docs:end handle */

/* docs:begin configure */
static void configure(ss_server *srv)
{
    ss_server_set_write_buffer_size(srv, 4096); /* answers wait for flush */
}
/* docs:end configure */

static const ss_handler line_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "line_server", &opts);
    if (rc >= 0)
        return rc;
    opts.configure = configure;
    return cli_serve(&opts, &line_handler, NULL);
}
