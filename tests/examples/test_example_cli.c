/* What a new user met on the examples' command line and in their logs,
 * driven as a user drives them (command line, output, exit status):
 *   - every option of every example also takes the GNU form --opt=VALUE,
 *     and the client's bad command lines say what is wrong, as the
 *     servers' do;
 *   - a client the drain cuts off is logged "dropped: the server is
 *     stopping" in every mode, not "disconnected";
 *   - a unixgram client that never reads its replies does not make the
 *     server write a log line per datagram, and none under --quiet. */
#define _GNU_SOURCE
#include "example_support.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

static const char *const servers[] = {ECHO_SERVER, UPPERCASE_SERVER, LINE_SERVER, ROBUST_SERVER,
                                      CHAT_SERVER};
#define N_SERVERS (sizeof servers / sizeof servers[0])
/* The servers whose clients wait for the drain (chat ends its own at once). */
#define N_DRAINED 4
static const char *const asks[N_DRAINED] = {"ping\n", "ping\n", "UPPER ping\n", "ping\n"};
static const char *const *const modes = ts_dispatchers;
#define N_MODES TS_DISPATCHERS

static void wait_log(child *c, const char *needle)
{
    if (!ex_log_until(c, needle, 5000))
        fail_msg("no '%s' on stderr:\n%s", needle, c->log);
}

/* "127.0.0.1:PORT", how the server logs the client on fd. */
static void peer_name(int fd, char *buf, size_t size)
{
    struct sockaddr_in me;
    socklen_t len = sizeof me;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    snprintf(buf, size, "127.0.0.1:%u", (unsigned)ntohs(me.sin_port));
}

/* ---- --opt=VALUE, and the client's usage errors ---- */

/* Each form a user may type: the value after '=' is read as the value
 * after a space is, and the same mistakes get the same specific line. */
static void test_every_option_takes_the_equals_form(void **state)
{
    (void)state;
    static const struct {
        const char *arg[3];
        const char *says;
    } cases[] = {
        {{"--mode=nonsense", NULL, NULL}, "unknown mode: nonsense"},
        {{"--mode=sync", "--workers=2", NULL}, "--workers needs --mode pool or forking (not sync)"},
        {{"--workers=0", NULL, NULL}, "--workers needs a number from 1 to 100000: 0"},
        {{"--timeout=-1", NULL, NULL}, "--timeout needs seconds from 0 to 1000000: -1"},
        {{"--drain=soon", NULL, NULL}, "--drain needs seconds from 0 to 1000000: soon"},
        {{"--listen=", NULL, NULL}, "--listen needs a value"},
        {{"--quiet=yes", NULL, NULL}, "--quiet takes no value"},
        {{"--bogus=3", NULL, NULL}, "unknown argument: --bogus=3"},
        {{"--an-option-name-longer-than-any-known=1", NULL, NULL},
         "unknown argument: --an-option-name-longer-than-any-known=1"},
    };
    for (size_t p = 0; p < N_SERVERS; p++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char *argv[] = {servers[p], cases[i].arg[0], cases[i].arg[1], NULL};
            expect_refusal(argv, 2, cases[i].says);
            expect_refusal(argv, 2, "usage:");
        }
    const char *bad_url[] = {ECHO_SERVER, "--listen=foo:bar", NULL};
    expect_refusal(bad_url, 1, "cannot listen on foo:bar: Unknown URL scheme");
}

/* --listen=URL --mode=pool --workers=2 --drain=7 --timeout=9: served on
 * that URL, in that mode, and the drain announced for 7 s. */
static void test_servers_run_with_equals_options(void **state)
{
    (void)state;
    for (size_t p = 0; p < N_DRAINED; p++) {
        const char *argv[] = {servers[p],    "--listen=tcp://127.0.0.1:0",
                              "--mode=pool", "--workers=2",
                              "--drain=7",   "--timeout=9",
                              NULL};
        child c;
        char url[128];
        start_server_argv(&c, argv, url, sizeof url);
        assert_non_null(strstr(url, "tcp://127.0.0.1:"));
        int fd = ts_connect_url(url);
        ts_send(fd, asks[p], strlen(asks[p]));
        char answer[128];
        assert_true(read_answer(fd, answer, sizeof answer) > 0);
        close(fd);
        kill(c.pid, SIGTERM);
        assert_int_equal(reap(&c), 0);
        ex_log_has(&c, "finishing requests for up to 7 s");
    }
}

/* The interactive client: a specific line for each mistake, as the
 * servers give, and --connect=URL as --connect URL. */
static void test_client_command_line(void **state)
{
    (void)state;
    const char *bogus[] = {UPPERCASE_CLIENT, "--bogus", NULL};
    expect_refusal(bogus, 2, "uppercase_client: unknown argument: --bogus");
    expect_refusal(bogus, 2, "usage:");
    const char *bare[] = {UPPERCASE_CLIENT, "--connect", NULL};
    expect_refusal(bare, 2, "uppercase_client: --connect needs a value");
    const char *empty[] = {UPPERCASE_CLIENT, "--connect=", NULL};
    expect_refusal(empty, 2, "uppercase_client: --connect needs a value");
    const char *scheme[] = {UPPERCASE_CLIENT, "--connect=foo:bar", NULL};
    expect_refusal(scheme, 1, "cannot connect to foo:bar: Unknown URL scheme");

    child server, client;
    char url[128], option[160], out[1024];
    start_server(&server, UPPERCASE_SERVER, "tcp://127.0.0.1:0", url, sizeof url);
    snprintf(option, sizeof option, "--connect=%s", url);
    const char *argv[] = {UPPERCASE_CLIENT, option, NULL};
    spawn(&client, argv);
    assert_int_equal(write(client.in, "hi\nq\n", 5), 5);
    read_all(client.out, out, sizeof out, "connection closed");
    assert_int_equal(reap(&client), 0);
    assert_non_null(strstr(out, "received: HI\n"));
    kill(server.pid, SIGTERM);
    assert_int_equal(reap(&server), 0);
}

/* ---- clients the drain cuts off ---- */

typedef struct run {
    child c;
    /* idle: answered once, then waiting (the drain closes it at once);
     * leaving and stuck: connected, silent (never idle: the drain waits for
     * them); leaving closes during the drain, stuck is cut off at its end.
     * leaving and stuck are -1 in sync mode (one client at a time). */
    int idle, leaving, stuck;
    char idle_name[64], leaving_name[64], stuck_name[64];
} run;

/* A client of the server at url that has said nothing yet, once the
 * server has logged it connected (it is being served). */
static int silent_client(child *c, const char *url, char *name, size_t size)
{
    int fd = ts_connect_url(url);
    peer_name(fd, name, size);
    char want[96];
    snprintf(want, sizeof want, "%s connected", name);
    wait_log(c, want);
    return fd;
}

/* Starts server p in mode m with `drain` and its clients (above); then
 * sends SIGINT. */
static void start_and_stop(run *r, size_t p, size_t m, const char *drain)
{
    const char *argv[] = {
        servers[p], "--listen", "tcp://127.0.0.1:0", "--mode", modes[m], "--drain", drain, NULL};
    char url[128], answer[128];
    start_server_argv(&r->c, argv, url, sizeof url);
    r->idle = ts_connect_url(url);
    ts_send(r->idle, asks[p], strlen(asks[p]));
    assert_true(read_answer(r->idle, answer, sizeof answer) > 0); /* served, now idle */
    peer_name(r->idle, r->idle_name, sizeof r->idle_name);
    r->leaving = r->stuck = -1;
    r->leaving_name[0] = r->stuck_name[0] = '\0';
    if (strcmp(modes[m], "sync") != 0) {
        r->leaving = silent_client(&r->c, url, r->leaving_name, sizeof r->leaving_name);
        r->stuck = silent_client(&r->c, url, r->stuck_name, sizeof r->stuck_name);
    }
    kill(r->c.pid, SIGINT);
    wait_log(&r->c, "stopping: finishing requests");
}

/* The client on fd was logged as cut off by the stop, never as gone. */
static void check_dropped(run *r, int fd, const char *name)
{
    assert_true(ts_sees_eof(fd));
    close(fd);
    char want[128];
    snprintf(want, sizeof want, "%s dropped: the server is stopping", name);
    ex_log_has(&r->c, want);
    snprintf(want, sizeof want, "%s disconnected", name);
    ex_log_lacks(&r->c, want);
}

/* Exit 0; the idle and the stuck clients logged as cut off by the stop,
 * the one that closed during the drain as gone by itself. */
static void check_goings(run *r)
{
    assert_int_equal(reap(&r->c), 0);
    check_dropped(r, r->idle, r->idle_name);
    if (r->stuck >= 0)
        check_dropped(r, r->stuck, r->stuck_name);
    if (r->leaving_name[0] != '\0') {
        char want[128];
        snprintf(want, sizeof want, "%s disconnected", r->leaving_name);
        ex_log_has(&r->c, want);
    }
    ex_log_lacks(&r->c, "error");
    ex_log_lacks(&r->c, "reset");
}

/* --drain 2: an idle client is closed at once and a silent one still
 * there when the time is up is cut off, both logged as the stop; a client
 * that closes during the drain is "disconnected"; in every mode (threads
 * and fibers: the drain shuts their sockets down; forked children: the
 * drain's cut ends their waits, SIGTERM or not; sync: the stop cancels
 * the wait). */
static void test_drain_cut_off_is_logged_as_the_stop(void **state)
{
    (void)state;
    for (size_t m = 0; m < N_MODES; m++) {
        run runs[N_DRAINED] = {0};
        for (size_t p = 0; p < N_DRAINED; p++) {
            start_and_stop(&runs[p], p, m, "2");
            if (runs[p].leaving >= 0)
                close(runs[p].leaving); /* within the 2 s: by itself */
        }
        for (size_t p = 0; p < N_DRAINED; p++)
            check_goings(&runs[p]);
    }
}

/* A second signal stops the drain at once: its clients are cut off, and
 * logged so, long before --drain 60. */
static void test_second_signal_cut_off_is_logged_as_the_stop(void **state)
{
    (void)state;
    for (size_t m = 1; m < N_MODES; m++) { /* sync has nothing to drain */
        run r = {0};
        start_and_stop(&r, 0, m, "60");
        char idle_gone[96];
        snprintf(idle_gone, sizeof idle_gone, "%s dropped: the server is stopping", r.idle_name);
        wait_log(&r.c, idle_gone); /* at once, long before the 60 s */
        close(r.leaving);
        wait_log(&r.c, " disconnected");
        kill(r.c.pid, SIGINT);
        check_goings(&r); /* within reap's 5 s */
        ex_log_has(&r.c, "stopped at once");
    }
}

/* ---- a unixgram client that never reads its replies ---- */

/* Binds a unixgram client at path and connects it to the server's; its
 * receives give up after 5 s. */
static int unixgram_client(const char *path, const char *server_path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    snprintf(a.sun_path, sizeof a.sun_path, "%s", server_path);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval five = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five, sizeof five);
    return fd;
}

/* The server's stderr, read as it comes (a flood can write far more than
 * child.log holds, and a full pipe would stall the server): its lines
 * counted, and the first lines of each kind kept. */
typedef struct log_tally {
    char partial[1024]; /* a line not yet ended */
    size_t partial_len;
    size_t lines, unread, errors;
    char first_unread[256], first_error[256];
} log_tally;

static void tally_line(log_tally *t, const char *line)
{
    t->lines++;
    if (strstr(line, "does not read its replies") != NULL && t->unread++ == 0)
        snprintf(t->first_unread, sizeof t->first_unread, "%.200s", line);
    if ((strstr(line, "error") != NULL || strstr(line, "No buffer space") != NULL) &&
        t->errors++ == 0)
        snprintf(t->first_error, sizeof t->first_error, "%.200s", line);
}

/* Reads what stderr has within wait_ms; false at EOF. */
static bool tally(log_tally *t, int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) <= 0)
        return true;
    char chunk[4096];
    ssize_t n = read(fd, chunk, sizeof chunk);
    for (ssize_t i = 0; i < n; i++) {
        if (chunk[i] == '\n') {
            t->partial[t->partial_len] = '\0';
            tally_line(t, t->partial);
            t->partial_len = 0;
        } else if (t->partial_len < sizeof t->partial - 1) {
            t->partial[t->partial_len++] = chunk[i];
        }
    }
    return n > 0;
}

/* Sends n datagrams, never reading a reply, for up to 5 s, reading the
 * server's stderr meanwhile; waits (bounded) while the server's queue is
 * full. Returns how many went. */
static int flood(int fd, int n, log_tally *t, int err_fd)
{
    long long end = ts_now_ms() + 5000;
    int sent = 0;
    while (sent < n && ts_now_ms() < end) {
        if (send(fd, "x", 1, MSG_DONTWAIT) == 1) {
            sent++;
            tally(t, err_fd, 0);
            continue;
        }
        assert_true(errno == EAGAIN || errno == ENOBUFS || errno == EINTR);
        tally(t, err_fd, 10);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 10);
    }
    return sent;
}

/* Floods echo_server (with `quiet`, or NULL) with 3000 datagrams from a
 * client that never reads, checks a reader is still answered, and stops
 * it; t gets its stderr. */
static void flood_server(const char *quiet, const char *dir, log_tally *t)
{
    char listen[320], server_path[300], client_path[300], url[400];
    snprintf(server_path, sizeof server_path, "%s/srv.sock", dir);
    snprintf(listen, sizeof listen, "unixgram:%s", server_path);
    const char *argv[] = {ECHO_SERVER, "--listen", listen, quiet, NULL};
    child c;
    start_server_argv(&c, argv, url, sizeof url);
    snprintf(client_path, sizeof client_path, "%s/flooder.sock", dir);
    int flooder = unixgram_client(client_path, server_path);
    int sent = flood(flooder, 3000, t, c.err);
    if (sent < 500)
        fail_msg("only %d datagrams went in 5 s", sent);
    snprintf(client_path, sizeof client_path, "%s/reader.sock", dir);
    int reader = unixgram_client(client_path, server_path);
    ts_send(reader, "ok\n", 3);
    char answer[16];
    long long end = ts_now_ms() + 5000;
    ssize_t got;
    while ((got = recv(reader, answer, sizeof answer, MSG_DONTWAIT)) < 0 && ts_now_ms() < end)
        tally(t, c.err, 20);  /* the server may be writing its log */
    assert_int_equal(got, 3); /* still serving */
    close(reader);
    close(flooder);
    kill(c.pid, SIGTERM);
    while (tally(t, c.err, 100) && ts_now_ms() < end + 5000)
        continue; /* to EOF: the server has exited */
    assert_int_equal(reap(&c), 0);
}

/* -ENOBUFS on a reply is how such a client goes ("does not read its
 * replies"), never an error; logged at most once a second for the whole
 * server (the flood lasts 5 s at most), and never under --quiet. */
static void test_unread_datagram_replies_do_not_flood_the_log(void **state)
{
    (void)state;
    char dir[256];
    ts_mkdtemp(dir, sizeof dir);
    log_tally quiet = {0};
    flood_server("--quiet", dir, &quiet);
    if (quiet.lines != 1 || quiet.errors != 0) /* the "stopping" line only */
        fail_msg("--quiet: %zu lines, %zu errors, e.g. '%s'", quiet.lines, quiet.errors,
                 quiet.first_error);
    ts_rmdir(dir);
    ts_mkdtemp(dir, sizeof dir);
    log_tally loud = {0};
    flood_server(NULL, dir, &loud);
    if (loud.errors != 0)
        fail_msg("%zu error lines, e.g. '%s'", loud.errors, loud.first_error);
    if (loud.unread == 0 || loud.unread > 12)
        fail_msg("%zu 'does not read its replies' lines (want 1 to 12)", loud.unread);
    assert_non_null(strstr(loud.first_unread, "/flooder.sock does not read its replies"));
    ts_rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_every_option_takes_the_equals_form, end_leftovers),
        cmocka_unit_test_teardown(test_servers_run_with_equals_options, end_leftovers),
        cmocka_unit_test_teardown(test_client_command_line, end_leftovers),
        cmocka_unit_test_teardown(test_drain_cut_off_is_logged_as_the_stop, end_leftovers),
        cmocka_unit_test_teardown(test_second_signal_cut_off_is_logged_as_the_stop, end_leftovers),
        cmocka_unit_test_teardown(test_unread_datagram_replies_do_not_flood_the_log, end_leftovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
