/* Buffered stream I/O (core/bufio.c): read_line across tiny writes, at and
 * over its limit, with NULs and at EOF; read_exact and its early EOF;
 * recv/read_some/send_all coherent with the buffers; timeouts that keep
 * or break the stream as documented; the writer buffered, unbuffered and
 * flushed after finish, a vanished peer reported as SS_EFINALFLUSH; the
 * same reader and writer over a UDP datagram. */
#include "support.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define MAX_NOTES 16
#define BIG       ((size_t)16 << 20)

/* What a handler saw, call by call; `steps` tells the client how far it
 * got, so the client waits for events instead of sleeping. */
typedef struct probe {
    atomic_int steps, awaited;
    ssize_t rc[MAX_NOTES];
    char data[MAX_NOTES][64];
    size_t line_size;             /* read_line buffer for line handlers */
    atomic_int errors[MAX_NOTES]; /* handle_error calls, by order */
    atomic_int error_count;
} probe;

/* Runs in the handler's thread, where a failed cmocka assertion could not
 * unwind: a note past the end is dropped, and the test then fails on the
 * count. */
static void note(probe *p, ssize_t rc, const void *buf)
{
    int i = atomic_load(&p->steps);
    if (i >= MAX_NOTES)
        return;
    p->rc[i] = rc;
    if (rc > 0 && buf != NULL)
        memcpy(p->data[i], buf, (size_t)rc < sizeof p->data[i] ? (size_t)rc : sizeof p->data[i]);
    else if (rc == SS_ELINETOOLONG)
        snprintf(p->data[i], sizeof p->data[i], "%s", (const char *)buf);
    atomic_store(&p->steps, i + 1);
}

static bool reached(void *arg)
{
    probe *p = arg;
    return atomic_load(&p->steps) >= atomic_load(&p->awaited);
}

/* Waits until the handler has noted `steps` results. */
static void wait_steps(probe *p, int steps)
{
    atomic_store(&p->awaited, steps);
    assert_true(ts_wait_until(reached, p, 5000));
}

static void record_error(ss_server *srv, ss_request *req, int err, void *data)
{
    (void)srv;
    (void)req;
    probe *p = data;
    int i = atomic_fetch_add(&p->error_count, 1);
    if (i < MAX_NOTES)
        atomic_store(&p->errors[i], err);
}

typedef struct session {
    ss_server *srv;
    ts_runner runner;
    int fd;
} session;

/* A TCP server in its own thread, one connected client, handle_error
 * recorded into the probe. */
static void open_session(session *s, int (*handle)(ss_request *, void *), probe *p)
{
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = handle};
    assert_int_equal(ss_server_new(&s->srv, "tcp://127.0.0.1:0", NULL, &h, p), 0);
    ss_server_on_handle_error(s->srv, record_error);
}

static void connect_session(session *s)
{
    ts_start(&s->runner, s->srv, 500);
    s->fd = ts_connect(s->srv);
}

/* The client leaves first, so the handler sees EOF and the loop can stop. */
static void close_session(session *s)
{
    close(s->fd);
    assert_int_equal(ts_stop(&s->runner), 0);
    ss_server_free(s->srv);
}

/* ---- read_line ---- */

/* Notes every read_line result until end of stream or a hard error. */
static int read_lines(ss_request *req, void *data)
{
    probe *p = data;
    char buf[256];
    size_t size = p->line_size < sizeof buf ? p->line_size : sizeof buf;
    for (;;) {
        ssize_t n = ss_request_read_line(req, buf, size);
        note(p, n, buf);
        if (n == 0 || (n < 0 && n != SS_ELINETOOLONG))
            return 0;
    }
}

static void assert_note(const probe *p, int i, ssize_t rc, const void *data)
{
    assert_int_equal(p->rc[i], rc);
    if (data != NULL)
        assert_memory_equal(p->data[i], data, rc > 0 ? (size_t)rc : strlen(data));
}

static void test_line_split_across_tiny_writes(void **state)
{
    (void)state;
    probe p = {.line_size = 64};
    session s;
    open_session(&s, read_lines, &p);
    ss_server_set_read_buffer_size(s.srv, 3); /* lines straddle many fills */
    connect_session(&s);
    int on = 1; /* every byte its own segment */
    setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    const char text[] = "first line\n\nthird\n";
    for (size_t i = 0; i < sizeof text - 1; i++)
        ts_send(s.fd, text + i, 1);
    wait_steps(&p, 3);
    close_session(&s);
    assert_int_equal(atomic_load(&p.steps), 4);
    assert_note(&p, 0, 11, "first line\n");
    assert_note(&p, 1, 1, "\n");
    assert_note(&p, 2, 6, "third\n");
    assert_note(&p, 3, 0, NULL);
}

static void test_line_at_limit_and_one_over(void **state)
{
    (void)state;
    probe p = {.line_size = 8}; /* at most 7 bytes, newline included */
    session s;
    open_session(&s, read_lines, &p);
    connect_session(&s);
    ts_send(s.fd, "123456\n1234567\n", 15);
    size_t huge = 100000; /* far beyond every buffer: must be skipped, not stored */
    char *flood = malloc(huge);
    memset(flood, 'x', huge);
    flood[huge - 1] = '\n';
    ts_send(s.fd, flood, huge);
    ts_send(s.fd, "ok\n", 3);
    wait_steps(&p, 4);
    close_session(&s);
    assert_note(&p, 0, 7, "123456\n");
    assert_note(&p, 1, SS_ELINETOOLONG, "1234567");
    assert_note(&p, 2, SS_ELINETOOLONG, "xxxxxxx");
    assert_note(&p, 3, 3, "ok\n"); /* the rest of each long line was dropped */
    assert_note(&p, 4, 0, NULL);
    free(flood);
}

static void test_binary_lines_with_nuls(void **state)
{
    (void)state;
    probe p = {.line_size = 64};
    session s;
    open_session(&s, read_lines, &p);
    connect_session(&s);
    ts_send(s.fd, "a\0b\n\0\n\0\0\0\n", 10);
    wait_steps(&p, 3);
    close_session(&s);
    assert_note(&p, 0, 4, "a\0b\n");
    assert_note(&p, 1, 2, "\0\n");
    assert_note(&p, 2, 4, "\0\0\0\n");
    assert_note(&p, 3, 0, NULL);
}

static void test_eof_mid_line_returns_the_rest(void **state)
{
    (void)state;
    probe p = {.line_size = 64};
    session s;
    open_session(&s, read_lines, &p);
    connect_session(&s);
    ts_send(s.fd, "complete\nhalf", 13);
    shutdown(s.fd, SHUT_WR);
    wait_steps(&p, 3);
    close_session(&s);
    assert_note(&p, 0, 9, "complete\n");
    assert_note(&p, 1, 4, "half"); /* as Python's readline: no newline */
    assert_note(&p, 2, 0, NULL);
}

/* Like read_lines, but a timeout is a pause, not the end. */
static int read_lines_through_timeouts(ss_request *req, void *data)
{
    probe *p = data;
    ss_request_set_timeout(req, 100);
    char buf[64];
    for (;;) {
        ssize_t n = ss_request_read_line(req, buf, sizeof buf);
        note(p, n, buf);
        if (n == 0 || (n < 0 && n != -ETIMEDOUT))
            return 0;
    }
}

static void test_line_resumes_after_timeout(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_lines_through_timeouts, &p);
    connect_session(&s);
    ts_send(s.fd, "partial ", 8);
    wait_steps(&p, 1); /* the first read_line has timed out */
    ts_send(s.fd, "line\n", 5);
    wait_steps(&p, 2);
    close_session(&s);
    assert_note(&p, 0, -ETIMEDOUT, NULL);
    assert_note(&p, 1, 13, "partial line\n"); /* nothing of it was lost */
    assert_note(&p, 2, 0, NULL);
}

/* ---- read_exact, read_some, recv ---- */

/* read_exact(4) until it stops, then one read_some to see what is left. */
static int read_fours(ss_request *req, void *data)
{
    probe *p = data;
    char buf[4];
    ssize_t n;
    do {
        n = ss_request_read_exact(req, buf, sizeof buf);
        note(p, n, buf);
    } while (n == 4);
    n = ss_request_read_some(req, buf, sizeof buf);
    note(p, n, buf);
    return 0;
}

static void test_read_exact_early_eof_is_an_error(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_fours, &p);
    connect_session(&s);
    ts_send(s.fd, "0123456789", 10);
    shutdown(s.fd, SHUT_WR);
    wait_steps(&p, 4);
    close_session(&s);
    assert_note(&p, 0, 4, "0123");
    assert_note(&p, 1, 4, "4567");
    assert_note(&p, 2, SS_EINCOMPLETE, NULL);
    assert_note(&p, 3, SS_EINCOMPLETE, NULL); /* the stream stays broken */
}

static void test_read_exact_clean_eof_is_zero(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_fours, &p);
    connect_session(&s);
    ts_send(s.fd, "01234567", 8);
    shutdown(s.fd, SHUT_WR);
    wait_steps(&p, 4);
    close_session(&s);
    assert_note(&p, 1, 4, "4567");
    assert_note(&p, 2, 0, NULL);
    assert_note(&p, 3, 0, NULL);
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 10));
}

/* A 3-byte header through the buffer, then a body larger than the buffer,
 * read partly from the buffer and partly straight into the caller's
 * memory. */
static int read_header_and_body(ss_request *req, void *data)
{
    probe *p = data;
    size_t size = 300000;
    unsigned char head[3], *body = malloc(size);
    note(p, ss_request_read_exact(req, head, sizeof head), head);
    ssize_t n = ss_request_read_exact(req, body, size);
    size_t bad = 0;
    for (size_t i = 0; n > 0 && i < size; i++)
        bad += body[i] != pattern(i);
    note(p, bad == 0 ? n : -EBADMSG, NULL);
    free(body);
    return 0;
}

static void test_read_exact_larger_than_buffer(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_header_and_body, &p);
    connect_session(&s);
    size_t size = 300000;
    unsigned char *msg = malloc(size + 3);
    memcpy(msg, "HDR", 3);
    for (size_t i = 0; i < size; i++)
        msg[3 + i] = pattern(i);
    ts_send(s.fd, msg, size + 3);
    wait_steps(&p, 2);
    close_session(&s);
    assert_note(&p, 0, 3, "HDR");
    assert_int_equal(p.rc[1], (ssize_t)size);
    free(msg);
}

static int read_exact_with_timeout(ss_request *req, void *data)
{
    probe *p = data;
    ss_request_set_timeout(req, 100);
    char buf[4];
    note(p, ss_request_read_exact(req, buf, sizeof buf), buf);
    note(p, ss_request_read_some(req, buf, sizeof buf), buf);
    return 0;
}

static void test_read_exact_timeout_mid_message_breaks_stream(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_exact_with_timeout, &p);
    connect_session(&s);
    ts_send(s.fd, "ab", 2);
    wait_steps(&p, 1);
    ts_send(s.fd, "cd", 2); /* too late: "ab" is gone, so no read may resync */
    wait_steps(&p, 2);
    close_session(&s);
    assert_note(&p, 0, -ETIMEDOUT, NULL);
    assert_note(&p, 1, -ETIMEDOUT, NULL);
}

static int mixed_reads(ss_request *req, void *data)
{
    probe *p = data;
    char buf[64];
    note(p, ss_request_read_line(req, buf, sizeof buf), buf);
    note(p, ss_request_recv(req, buf, 4), buf);
    note(p, ss_request_read_some(req, buf, sizeof buf), buf);
    note(p, ss_request_recv(req, buf, sizeof buf), buf);
    return 0;
}

static void test_recv_and_read_some_see_buffered_bytes(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, mixed_reads, &p);
    ss_server_set_read_buffer_size(s.srv, 4096);
    connect_session(&s);
    ts_send(s.fd, "head\nbody-bytes", 15);
    shutdown(s.fd, SHUT_WR);
    wait_steps(&p, 4);
    close_session(&s);
    assert_note(&p, 0, 5, "head\n");
    assert_note(&p, 1, 4, "body");
    assert_note(&p, 2, 6, "-bytes");
    assert_note(&p, 3, 0, NULL);
}

static void test_buffer_size_options_are_checked(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, read_lines, &p);
    assert_int_equal(ss_server_set_read_buffer_size(s.srv, 0), -EINVAL);
    assert_int_equal(ss_server_set_read_buffer_size(s.srv, (size_t)2 << 30), -EINVAL);
    assert_int_equal(ss_server_set_write_buffer_size(s.srv, (size_t)2 << 30), -EINVAL);
    assert_int_equal(ss_server_set_write_buffer_size(s.srv, 0), 0);
    ss_server_free(s.srv);
}

/* ---- the writer ---- */

static int write_big_unbuffered(ss_request *req, void *data)
{
    unsigned char *buf = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        buf[i] = pattern(i);
    note(data, ss_request_write(req, buf, BIG), NULL);
    free(buf);
    return 0;
}

static void test_unbuffered_write_of_16mib_returns_full_length(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, write_big_unbuffered, &p);
    connect_session(&s);
    unsigned char *got = malloc(BIG);
    assert_int_equal(ts_recv_exact(s.fd, got, BIG), BIG);
    wait_steps(&p, 1);
    assert_int_equal(p.rc[0], (ssize_t)BIG);
    for (size_t i = 0; i < BIG; i += 4099)
        assert_int_equal(got[i], pattern(i));
    close_session(&s);
    free(got);
}

static int buffered_conversation(ss_request *req, void *data)
{
    probe *p = data;
    char buf[8];
    note(p, ss_request_write(req, "abc", 3), NULL);
    note(p, ss_request_write(req, "def", 3), NULL);
    note(p, ss_request_read_line(req, buf, sizeof buf), buf); /* the client checks */
    note(p, ss_request_flush(req), NULL);
    note(p, ss_request_write(req, "X", 1), NULL);
    note(p, ss_request_send_all(req, "Y", 1), NULL); /* "X" must go first */
    char big[100];
    memset(big, 'b', sizeof big);
    note(p, ss_request_write(req, "<", 1), NULL);
    note(p, ss_request_write(req, big, sizeof big), NULL); /* larger than the buffer */
    ssize_t rc = ss_request_write(req, "tail", 4);         /* left for the final flush */
    return rc < 0 ? (int)rc : 0;
}

static void test_buffered_writes_wait_for_flush(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, buffered_conversation, &p);
    ss_server_set_write_buffer_size(s.srv, 64);
    connect_session(&s);
    wait_steps(&p, 2);
    char c; /* loopback delivers during send(): had it been sent, it would be here */
    assert_int_equal(recv(s.fd, &c, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    ts_send(s.fd, "go\n", 3);
    char got[128] = {0};
    assert_int_equal(ts_recv_exact(s.fd, got, 6), 6);
    assert_string_equal(got, "abcdef");
    assert_int_equal(ts_recv_exact(s.fd, got, 2), 2);
    assert_memory_equal(got, "XY", 2);
    assert_int_equal(ts_recv_exact(s.fd, got, 105), 105);
    assert_memory_equal(got, "<bbb", 4);
    assert_memory_equal(got + 101, "tail", 4);
    assert_true(ts_sees_eof(s.fd));
    close_session(&s);
    assert_int_equal(p.rc[0], 3);
    assert_int_equal(p.rc[3], 0);
    assert_int_equal(p.rc[5], 0);
    assert_int_equal(p.rc[7], 100);
    assert_int_equal(atomic_load(&p.error_count), 0);
}

/* Fills the writer toward a client that never reads, then checks that the
 * error sticks to every later output call. */
static int flood_buffered(ss_request *req, void *data)
{
    probe *p = data;
    ss_request_set_timeout(req, 100);
    static char chunk[16384];
    ssize_t rc;
    do
        rc = ss_request_write(req, chunk, sizeof chunk);
    while (rc > 0);
    note(p, rc, NULL);
    note(p, ss_request_write(req, "x", 1), NULL);
    note(p, ss_request_flush(req), NULL);
    note(p, ss_request_send_all(req, "x", 1), NULL);
    return 0;
}

static void test_writer_timeout_is_sticky(void **state)
{
    (void)state;
    probe p = {0};
    session s;
    open_session(&s, flood_buffered, &p);
    ss_server_set_write_buffer_size(s.srv, 65536);
    connect_session(&s);
    wait_steps(&p, 4);
    close_session(&s);
    for (int i = 0; i < 4; i++)
        assert_int_equal(p.rc[i], -ETIMEDOUT);
    assert_int_equal(atomic_load(&p.error_count), 0); /* nothing was left to flush */
}

/* Writes into the buffer only after the client has reset the connection,
 * so the server's own flush after finish is what fails. */
static int answer_after_reset(ss_request *req, void *data)
{
    probe *p = data;
    char buf[8];
    note(p, ss_request_recv(req, buf, sizeof buf), NULL);
    note(p, ss_request_write(req, "late", 4), NULL);
    return 0;
}

static void test_final_flush_to_vanished_peer_is_reported_not_fatal(void **state)
{
    (void)state;
    probe p = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = answer_after_reset};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, &p), 0);
    ss_server_on_handle_error(srv, record_error);
    ss_server_set_write_buffer_size(srv, 1024);
    int fd = ts_connect(srv);
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd); /* RST, before the request is even accepted */
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_true(p.rc[0] == -ECONNRESET || p.rc[0] == 0);
    assert_int_equal(p.rc[1], 4);
    assert_int_equal(atomic_load(&p.error_count), 1);
    assert_int_equal(atomic_load(&p.errors[0]), SS_EFINALFLUSH);
    ss_stats stats;
    ss_server_stats(srv, &stats);
    assert_int_equal(stats.handled, 1); /* the handler did its job */
    ss_server_free(srv);
}

typedef struct log_probe {
    atomic_int debug, error;
} log_probe;

static void count_levels(ss_server *srv, ss_log_level level, const char *message, void *data)
{
    (void)srv;
    log_probe *l = data;
    if (strstr(message, ss_strerror(SS_EFINALFLUSH)) == NULL)
        return;
    atomic_fetch_add(level == SS_LOG_DEBUG ? &l->debug : &l->error, 1);
}

static int write_after_reset(ss_request *req, void *data)
{
    (void)data;
    char buf[8];
    ss_request_recv(req, buf, sizeof buf);
    ssize_t rc = ss_request_write(req, "late", 4);
    return rc < 0 ? (int)rc : 0;
}

static void test_default_hook_logs_final_flush_at_debug_level(void **state)
{
    (void)state;
    log_probe l = {0};
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = write_after_reset};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "tcp://127.0.0.1:0", NULL, &h, &l), 0);
    ss_server_set_log(srv, count_levels);
    ss_server_set_write_buffer_size(srv, 1024);
    int fd = ts_connect(srv);
    struct linger hard = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
    assert_int_equal(ss_server_handle_request(srv), 0);
    assert_int_equal(atomic_load(&l.debug), 1);
    assert_int_equal(atomic_load(&l.error), 0);
    ss_server_free(srv);
}

/* ---- datagrams: the same calls over a packet and its reply ---- */

static int upper_lines(ss_request *req, void *data)
{
    (void)data;
    char line[32];
    ssize_t n;
    while ((n = ss_request_read_line(req, line, sizeof line)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            line[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
        ssize_t rc = ss_request_write(req, line, (size_t)n);
        if (rc < 0)
            return (int)rc;
    }
    return (int)n;
}

static void test_datagram_reader_and_writer(void **state)
{
    (void)state;
    ss_handler h = {.version = SS_HANDLER_VERSION, .handle = upper_lines};
    ss_server *srv;
    assert_int_equal(ss_server_new(&srv, "udp://127.0.0.1:0", NULL, &h, NULL), 0);
    ss_server_set_write_buffer_size(srv, 8); /* smaller than the reply: flushes midway */
    int fd = ts_connect(srv);
    ts_send(fd, "one\ntwo\nend", 11);
    assert_int_equal(ss_server_handle_request(srv), 0);
    char got[32] = {0};
    assert_int_equal(recv(fd, got, sizeof got, 0), 11); /* one datagram, whole */
    assert_string_equal(got, "ONE\nTWO\nEND");
    close(fd);
    ss_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_split_across_tiny_writes),
        cmocka_unit_test(test_line_at_limit_and_one_over),
        cmocka_unit_test(test_binary_lines_with_nuls),
        cmocka_unit_test(test_eof_mid_line_returns_the_rest),
        cmocka_unit_test(test_line_resumes_after_timeout),
        cmocka_unit_test(test_read_exact_early_eof_is_an_error),
        cmocka_unit_test(test_read_exact_clean_eof_is_zero),
        cmocka_unit_test(test_read_exact_larger_than_buffer),
        cmocka_unit_test(test_read_exact_timeout_mid_message_breaks_stream),
        cmocka_unit_test(test_recv_and_read_some_see_buffered_bytes),
        cmocka_unit_test(test_buffer_size_options_are_checked),
        cmocka_unit_test(test_unbuffered_write_of_16mib_returns_full_length),
        cmocka_unit_test(test_buffered_writes_wait_for_flush),
        cmocka_unit_test(test_writer_timeout_is_sticky),
        cmocka_unit_test(test_final_flush_to_vanished_peer_is_reported_not_fatal),
        cmocka_unit_test(test_default_hook_logs_final_flush_at_debug_level),
        cmocka_unit_test(test_datagram_reader_and_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
