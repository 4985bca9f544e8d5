/* The tutorial's robust server: answers like uppercase_server, but tells
 * apart how a conversation ends and logs each case with the client's
 * address on stderr, then goes on serving:
 *   - the client disconnects normally (end of stream);
 *   - the client resets the connection (seen reading or writing);
 *   - the client stalls longer than --timeout, or the server stops;
 *   - the client sends bytes that are not UTF-8: it is told so with
 *     "Invalid UTF-8 data received" and may go on;
 *   - anything else is a handler error, reported by the server's
 *     handle_error hook.
 * Unlike the Python original, a character split across two reads is not
 * mistaken for invalid data: its first bytes wait for the rest. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#define CHUNK 4096

static cli_options opts;

/* Unicode's well-formed UTF-8 (Table 3-7): no overlong forms, no
 * surrogates, nothing above U+10FFFF. Returns the length of the sequence
 * at s, 0 if it is invalid, -1 if the n bytes end before it does. */
static int utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    int len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
        hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF would be a surrogate */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
        hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. would be above U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return -1;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return len;
}

/* Checks buf[0, n). Returns false on invalid data; otherwise *complete is
 * where an unfinished last character (if any) begins. */
static bool utf8_valid(const unsigned char *buf, size_t n, size_t *complete)
{
    size_t i = 0;
    while (i < n) {
        int len = utf8_sequence(buf + i, n - i);
        if (len == 0)
            return false;
        if (len < 0)
            break;
        i += (size_t)len;
    }
    *complete = i;
    return true;
}

static void uppercase(unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (buf[i] >= 'a' && buf[i] <= 'z')
            buf[i] = (unsigned char)(buf[i] - 'a' + 'A');
}

/* docs:begin process */
static ssize_t refuse(ss_request *req)
{
    static const char refusal[] = "Invalid UTF-8 data received";
    cli_log(&opts, "%s sent invalid UTF-8", cli_peer(req));
    return ss_request_write(req, refusal, sizeof refusal - 1);
}

/* The tutorial's process_data: answer valid text, refuse the rest. buf
 * holds *carried bytes left from last time plus the new ones. */
static ssize_t process_data(ss_request *req, unsigned char *buf, size_t n, size_t *carried)
{
    size_t complete;
    if (!utf8_valid(buf, n, &complete)) {
        *carried = 0;
        return refuse(req);
    }
    uppercase(buf, complete);
    ssize_t rc = complete > 0 ? ss_request_write(req, buf, complete) : 0;
    *carried = n - complete;
    memmove(buf, buf + complete, *carried);
    return rc;
}
/* docs:end process */

/* docs:begin handle */
/* How the conversation ended: n == 0 (the client closed) or an error. */
static int conversation_over(ss_request *req, ssize_t n, size_t carried)
{
    if (n == 0 && carried > 0)
        refuse(req); /* it ended in the middle of a character */
    /* as every example does: closed, reset (-ECONNRESET, -EPIPE), timed
     * out (--timeout), stopping (a reset once the stop began, or the end
     * of input once the drain's time is up, is the drain's doing, not the
     * client's); anything else goes to report_error */
    return cli_request_ends(&opts, req, n);
}

static int handle(ss_request *req, void *data)
{
    (void)data;
    cli_request_begins(&opts, req);
    unsigned char buf[CHUNK + 3]; /* room for a split character's first bytes */
    size_t carried = 0;
    for (;;) {
        ssize_t n = ss_request_read_some(req, buf + carried, CHUNK);
        if (n <= 0)
            return conversation_over(req, n, carried);
        n = process_data(req, buf, carried + (size_t)n, &carried);
        if (n < 0) /* a write failed: a reset, most likely */
            return conversation_over(req, n, 0);
    }
}
/* docs:end handle */

/* docs:begin errors */
/* handle_error: whatever the handler could not deal with itself. */
static void report_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)data;
    if (cli_request_ends(&opts, req, err) == 0)
        return; /* a client going (a datagram's sender gone, ...) logged as such */
    cli_log_always(&opts, "robust_server: error serving %s: %s", cli_peer(req), ss_strerror(err));
}

static void configure(ss_server *srv)
{
    ss_server_on_handle_error(srv, report_error);
}
/* docs:end errors */

static const ss_handler robust_handler = {.version = SS_HANDLER_VERSION, .handle = handle};

int main(int argc, char **argv)
{
    int rc = cli_parse(argc, argv, "robust_server", &opts);
    if (rc >= 0)
        return rc;
    opts.configure = configure;
    return cli_serve(&opts, &robust_handler, NULL);
}
