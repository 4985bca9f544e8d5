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
#include <stdbool.h>
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

/* Splits a line (its newline dropped) into "COMMAND argument": the
 * command is line[0, *command_len), the argument starts at *arg and its
 * length is returned. Lengths, not '\0': a line may hold NUL bytes. */
static size_t split(char *line, size_t len, size_t *command_len, char **arg)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    char *space = memchr(line, ' ', len);
    *command_len = space != NULL ? (size_t)(space - line) : len;
    *arg = space != NULL ? space + 1 : line + len;
    return (size_t)(line + len - *arg);
}

/* True if the len bytes at command are `word`, in any case. strncasecmp
 * stops at a NUL byte, which `word` never holds, so "QUIT\0x" differs. */
static bool is_command(const char *command, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(command, word, len) == 0;
}

/* Answers one command. Returns 1 after QUIT, 0 to go on, or an error. */
static int answer(ss_request *req, char *line, size_t len)
{
    size_t command_len;
    char *arg;
    size_t arg_len = split(line, len, &command_len, &arg);
    if (is_command(line, command_len, "ECHO"))
        return reply(req, "OK ", arg, arg_len);
    if (is_command(line, command_len, "UPPER")) {
        for (size_t i = 0; i < arg_len; i++)
            if (arg[i] >= 'a' && arg[i] <= 'z')
                arg[i] = (char)(arg[i] - 'a' + 'A');
        return reply(req, "OK ", arg, arg_len);
    }
    if (is_command(line, command_len, "QUIT")) {
        int rc = reply(req, "OK bye", "", 0);
        return rc < 0 ? rc : 1;
    }
    return reply(req, "ERR unknown command", "", 0);
}

/* docs:begin handle */
static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_request_begins(&opts, req);
    char line[LINE_LIMIT + 1]; /* + 1 for the '\0' read_line adds */
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = ss_request_read_line(req, line, sizeof line)) != 0) {
        if (n == SS_ELINETOOLONG)
            rc = reply(req, "ERR line too long", "", 0); /* its rest is skipped */
        else if (n < 0)
            rc = (int)n; /* reset, timed out, stopping, ... */
        else
            rc = answer(req, line, (size_t)n); /* n bytes, NULs and all */
    }
    if (rc == 1) {
        cli_log(&opts, "%s said QUIT", cli_peer(req));
        return 0;
    }
    return cli_request_ends(&opts, req, rc); /* 0: the client closed */
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
