/* The buffered reader (src/core/bufio.c) in process, over a scripted fake
 * transport (fake_transport.c): lines cut anywhere by the peer, a line at
 * and over the caller's limit and the skip of its rest, read_exact short
 * or at end of stream, errors that are retryable (nothing consumed) and
 * errors that stick (bytes lost), and the writer's buffering. The same
 * calls over real sockets are tests/core/test_stream.c. */
#include "fake_transport.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define SCRIPT(...)                                                                                \
    do {                                                                                           \
        const fake_event script_[] = {__VA_ARGS__};                                                \
        fake_script(script_, sizeof script_ / sizeof script_[0]);                                  \
    } while (0)

static void expect_line(ss_request *req, size_t size, const char *want)
{
    char buf[256];
    assert_true(size <= sizeof buf);
    ssize_t n = ss_request_read_line(req, buf, size);
    if (n < 0)
        fail_msg("read_line gave %zd, want \"%s\"", n, want);
    assert_int_equal(n, strlen(want));
    assert_string_equal(buf, want);
}

static ssize_t read_line(ss_request *req, size_t size)
{
    char buf[256];
    return ss_request_read_line(req, buf, size);
}

static void test_lines_across_chunks(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    SCRIPT(FAKE_BYTES("he"), FAKE_BYTES("llo\nwor"), FAKE_BYTES("l"), FAKE_BYTES("d\n\nla"),
           FAKE_BYTES("st"), FAKE_EOF, FAKE_EOF);
    expect_line(req, 64, "hello\n");
    expect_line(req, 64, "world\n");
    expect_line(req, 64, "\n");
    expect_line(req, 64, "last"); /* the last line needs no '\n' */
    assert_int_equal(read_line(req, 64), 0);
    /* one recv per chunk, none wasted; the end of stream is not remembered:
     * the second 0 is the socket's again */
    assert_int_equal(fake.recv_calls, 7);
    fake_request_free(req);
}

static void test_buffered_lines_need_no_recv(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(64, 0);
    SCRIPT(FAKE_BYTES("a\nb\nc\n"), FAKE_EOF);
    expect_line(req, 8, "a\n");
    expect_line(req, 8, "b\n");
    expect_line(req, 8, "c\n");
    assert_int_equal(fake.recv_calls, 1);
    assert_true(fake.largest_ask <= 64); /* never more than its buffer */
    fake_request_free(req);
}

static void test_nul_bytes_in_a_line(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    SCRIPT(FAKE_BYTES("a\0b\n"), FAKE_EOF);
    char buf[16];
    assert_int_equal(ss_request_read_line(req, buf, sizeof buf), 4);
    assert_memory_equal(buf, "a\0b\n", 5);
    fake_request_free(req);
}

/* size - 1 bytes is the limit: a line of exactly that many (with its '\n')
 * fits; one byte more is SS_ELINETOOLONG with the first size - 1 bytes,
 * and the next call starts after that line's '\n', even chunks later. */
static void test_line_limit_and_skip(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(4, 0); /* smaller than the limit: grows */
    SCRIPT(FAKE_BYTES("abcd\nabcde\nvwx"), FAKE_BYTES("y\n"), FAKE_BYTES("toolong0123"),
           FAKE_BYTES("45\nok\n"), FAKE_EOF);
    expect_line(req, 6, "abcd\n");
    char buf[6];
    assert_int_equal(ss_request_read_line(req, buf, sizeof buf), SS_ELINETOOLONG);
    assert_string_equal(buf, "abcde");
    expect_line(req, 6, "vwxy\n"); /* the '\n' of "abcde" was skipped */
    assert_int_equal(ss_request_read_line(req, buf, sizeof buf), SS_ELINETOOLONG);
    assert_string_equal(buf, "toolo");
    expect_line(req, 6, "ok\n"); /* rest "ng012345\n" skipped across two chunks */
    assert_int_equal(read_line(req, 6), 0);
    fake_request_free(req);
}

static void test_line_bad_sizes(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    char buf[2];
    assert_int_equal(ss_request_read_line(req, buf, 0), -EINVAL);
    assert_int_equal(ss_request_read_line(req, buf, 1), -EINVAL);
    assert_int_equal(fake.recv_calls, 0);
    SCRIPT(FAKE_BYTES("xy\n"), FAKE_EOF);
    assert_int_equal(ss_request_read_line(req, buf, 2), SS_ELINETOOLONG); /* 1 byte + NUL */
    assert_string_equal(buf, "x");
    assert_int_equal(ss_request_read_line(req, buf, 2), 0); /* "y\n" skipped, then EOF */
    fake_request_free(req);
}

/* An error in mid-line keeps the partial line: the retry returns it whole. */
static void test_error_mid_line_is_retryable(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    SCRIPT(FAKE_BYTES("par"), FAKE_ERROR(-ETIMEDOUT), FAKE_BYTES("tial\n"), FAKE_EOF);
    assert_int_equal(read_line(req, 64), -ETIMEDOUT);
    expect_line(req, 64, "partial\n");
    fake_request_free(req);
}

/* An error while skipping an over-long line's rest is reported, and the
 * skip resumes on the next call: its tail never reads as a line. */
static void test_error_during_skip_resumes_skip(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(8, 0);
    SCRIPT(FAKE_BYTES("toolong"), FAKE_BYTES("-tail"), FAKE_ERROR(-EINTR),
           FAKE_BYTES("-end\nnext\n"), FAKE_EOF);
    assert_int_equal(read_line(req, 5), SS_ELINETOOLONG);
    assert_int_equal(read_line(req, 5), -EINTR);
    expect_line(req, 8, "next\n");
    fake_request_free(req);
}

static void test_skip_then_eof(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(8, 0);
    SCRIPT(FAKE_BYTES("toolong-and-never-ends"), FAKE_EOF, FAKE_EOF);
    assert_int_equal(read_line(req, 4), SS_ELINETOOLONG);
    /* EOF ends the skip (the line's tail is never a line) and the stream */
    assert_int_equal(read_line(req, 4), 0);
    fake_request_free(req);
}

static void test_read_exact_across_chunks(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(4, 0);
    /* 20 bytes in odd pieces: larger than the buffer, so they go straight
     * into the caller's memory; a line first leaves bytes buffered. */
    SCRIPT(FAKE_BYTES("L\n0123"), FAKE_BYTES("456789abc"), FAKE_BYTES("defghij"), FAKE_BYTES("!"),
           FAKE_EOF);
    expect_line(req, 8, "L\n");
    char buf[32] = {0};
    assert_int_equal(ss_request_read_exact(req, buf, 20), 20);
    assert_memory_equal(buf, "0123456789abcdefghij", 20);
    assert_int_equal(ss_request_read_exact(req, buf, 1), 1);
    assert_int_equal(buf[0], '!');
    assert_int_equal(ss_request_read_exact(req, buf, 5), 0); /* clean EOF: nothing consumed */
    assert_int_equal(ss_request_read_exact(req, buf, 0), 0);
    fake_request_free(req);
}

/* A short read_exact lost bytes: SS_EINCOMPLETE, and every later read of
 * any kind says so too (the stream is out of step for good). */
static void test_read_exact_short_is_sticky(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    SCRIPT(FAKE_BYTES("abc"), FAKE_EOF);
    char buf[16];
    assert_int_equal(ss_request_read_exact(req, buf, 8), SS_EINCOMPLETE);
    assert_int_equal(read_line(req, 16), SS_EINCOMPLETE);
    assert_int_equal(ss_request_read_some(req, buf, 4), SS_EINCOMPLETE);
    assert_int_equal(ss_request_read_exact(req, buf, 1), SS_EINCOMPLETE);
    assert_int_equal(ss_request_recv(req, buf, 4), SS_EINCOMPLETE);
    assert_int_equal(fake.recv_calls, 2); /* and none of them touched the socket */
    fake_request_free(req);
}

static void test_read_exact_errors(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    /* nothing consumed: the error is returned and the stream stays usable */
    SCRIPT(FAKE_ERROR(-EAGAIN), FAKE_BYTES("abcd"), FAKE_BYTES("ef"), FAKE_ERROR(-ECONNRESET),
           FAKE_BYTES("never read"));
    char buf[16];
    assert_int_equal(ss_request_read_exact(req, buf, 4), -EAGAIN);
    assert_int_equal(ss_request_read_exact(req, buf, 4), 4);
    assert_memory_equal(buf, "abcd", 4);
    /* "ef" consumed, then the error: it sticks */
    assert_int_equal(ss_request_read_exact(req, buf, 4), -ECONNRESET);
    assert_int_equal(ss_request_read_some(req, buf, 4), -ECONNRESET);
    assert_int_equal(read_line(req, 16), -ECONNRESET);
    fake_request_free(req);
}

static void test_read_some_and_recv_drain_the_buffer_first(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 0);
    SCRIPT(FAKE_BYTES("L\nbuffered"), FAKE_BYTES("socket"), FAKE_BYTES("more"), FAKE_EOF);
    expect_line(req, 16, "L\n");
    char buf[16] = {0};
    assert_int_equal(ss_request_read_some(req, buf, 3), 3);
    assert_memory_equal(buf, "buf", 3);
    assert_int_equal(ss_request_recv(req, buf, sizeof buf), 5); /* the rest, no recv */
    assert_memory_equal(buf, "fered", 5);
    assert_int_equal(fake.recv_calls, 1);
    assert_int_equal(ss_request_recv(req, buf, sizeof buf), 6);
    assert_memory_equal(buf, "socket", 6);
    assert_int_equal(ss_request_read_some(req, buf, sizeof buf), 4);
    assert_memory_equal(buf, "more", 4);
    assert_int_equal(ss_request_read_some(req, buf, sizeof buf), 0);
    fake_request_free(req);
}

/* The writer: small writes gather in its buffer (one send at flush), a
 * write larger than the buffer goes out directly after what is pending,
 * and a failed send breaks the stream for every later write and flush. */
static void test_writer_buffers_and_sticks_on_error(void **state)
{
    (void)state;
    ss_request *req = fake_request_new(16, 8);
    assert_int_equal(ss_request_write(req, "ab", 2), 2);
    assert_int_equal(ss_request_write(req, "cd", 2), 2);
    assert_int_equal(fake.send_calls, 0);
    assert_int_equal(ss_request_write(req, "0123456789", 10), 10);
    assert_int_equal(fake.send_calls, 2); /* "abcd", then the big write */
    assert_int_equal(ss_request_flush(req), 0);
    assert_int_equal(fake.sent_len, 14);
    assert_memory_equal(fake.sent, "abcd0123456789", 14);
    assert_int_equal(ss_request_write(req, "x", 1), 1);
    fake.send_rc = -EPIPE;
    assert_int_equal(ss_request_flush(req), -EPIPE);
    fake.send_rc = 0;
    assert_int_equal(ss_request_write(req, "y", 1), -EPIPE);
    assert_int_equal(ss_request_flush(req), -EPIPE);
    assert_int_equal(fake.sent_len, 14); /* nothing after the failure */
    fake_request_free(req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_across_chunks),
        cmocka_unit_test(test_buffered_lines_need_no_recv),
        cmocka_unit_test(test_nul_bytes_in_a_line),
        cmocka_unit_test(test_line_limit_and_skip),
        cmocka_unit_test(test_line_bad_sizes),
        cmocka_unit_test(test_error_mid_line_is_retryable),
        cmocka_unit_test(test_error_during_skip_resumes_skip),
        cmocka_unit_test(test_skip_then_eof),
        cmocka_unit_test(test_read_exact_across_chunks),
        cmocka_unit_test(test_read_exact_short_is_sticky),
        cmocka_unit_test(test_read_exact_errors),
        cmocka_unit_test(test_read_some_and_recv_drain_the_buffer_first),
        cmocka_unit_test(test_writer_buffers_and_sticks_on_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
