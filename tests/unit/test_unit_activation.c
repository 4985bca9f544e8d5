/* The socket-activation reader (src/transport/activation.c): the
 * environment systemd (or a server handing over its sockets) sets, read
 * by the rules of sd_listen_fds(3). A successful read is kept for the
 * process's life, so each case that succeeds runs in a child of its own,
 * with its descriptors laid out from fd 3, and reports the first check
 * that failed by its line number as its exit status. */
#include "base_support.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

static void set_pid_env(pid_t pid)
{
    char text[32];
    snprintf(text, sizeof text, "%ld", (long)pid);
    setenv("LISTEN_PID", text, 1);
}

static void set_env(const char *fds, const char *names)
{
    set_pid_env(getpid());
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

/* In a child: `count` inheritable sockets at fds 3.., everything above
 * them closed, as a service manager would leave it. */
static void lay_out_sockets(int count)
{
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        TS_CHECK(fd >= 0);
        if (fd != 3 + i) {
            TS_CHECK(dup2(fd, 3 + i) == 3 + i);
            close(fd);
        }
        TS_CHECK(fcntl(3 + i, F_SETFD, 0) == 0);
    }
    for (int fd = 3 + count; fd < 1024; fd++)
        close(fd);
}

static void reads_named_sockets(void)
{
    lay_out_sockets(2);
    set_env("2", "web:admin");
    const ss__activated *list = NULL;
    const char *msg = NULL;
    TS_CHECK(ss__activation_fds(&list, &msg) == 2);
    TS_CHECK(msg != NULL);
    TS_CHECK(list[0].fd == 3 && strcmp(list[0].name, "web") == 0);
    TS_CHECK(list[1].fd == 4 && strcmp(list[1].name, "admin") == 0);
    TS_CHECK(fcntl(3, F_GETFD) == FD_CLOEXEC && fcntl(4, F_GETFD) == FD_CLOEXEC);
    TS_CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS") && !getenv("LISTEN_FDNAMES"));
    /* Taken once: a new environment changes nothing afterwards. */
    set_env("1", "other");
    const ss__activated *again = NULL;
    TS_CHECK(ss__activation_fds(&again, NULL) == 2);
    TS_CHECK(again == list && strcmp(again[1].name, "admin") == 0);
}

static void test_reads_named_sockets_once(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(reads_named_sockets), 0);
}

static void missing_names_are_unknown(void)
{
    lay_out_sockets(3);
    set_env("3", "a::c");
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, NULL) == 3);
    TS_CHECK(strcmp(list[0].name, "a") == 0 && strcmp(list[1].name, "unknown") == 0);
    TS_CHECK(strcmp(list[2].name, "c") == 0);
}

static void no_names_at_all(void)
{
    lay_out_sockets(2);
    set_env("2", NULL);
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, NULL) == 2);
    TS_CHECK(strcmp(list[0].name, "unknown") == 0 && strcmp(list[1].name, "unknown") == 0);
}

static void test_missing_names_are_unknown(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(missing_names_are_unknown), 0);
    assert_int_equal(ts_run_in_child(no_names_at_all), 0);
}

static void zero_fds_is_taken(void)
{
    lay_out_sockets(0);
    set_env("0", NULL);
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, NULL) == 0);
    TS_CHECK(!getenv("LISTEN_PID") && !getenv("LISTEN_FDS"));
}

static void test_zero_fds(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(zero_fds_is_taken), 0);
}

/* No variables: not socket-activated, 0, and nothing is kept (a later
 * environment is still read). */
static void absent_then_present(void)
{
    lay_out_sockets(1);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    const ss__activated *list = NULL;
    const char *msg = NULL;
    TS_CHECK(ss__activation_fds(&list, &msg) == 0 && msg && strstr(msg, "LISTEN_PID"));
    setenv("LISTEN_FDS", "1", 1); /* LISTEN_PID still missing: not for us */
    TS_CHECK(ss__activation_fds(&list, NULL) == 0);
    set_env("1", "late");
    TS_CHECK(ss__activation_fds(&list, NULL) == 1 && strcmp(list[0].name, "late") == 0);
}

static void test_absent_variables(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(absent_then_present), 0);
}

/* Sockets for another process: -ESRCH, the environment left as it was,
 * the descriptors not touched; then the right pid is accepted. */
static void other_process(void)
{
    lay_out_sockets(1);
    set_env("1", "x");
    set_pid_env(getppid());
    const char *msg = NULL;
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, &msg) == -ESRCH);
    TS_CHECK(msg && strstr(msg, "another process"));
    TS_CHECK(getenv("LISTEN_FDS") && strcmp(getenv("LISTEN_FDS"), "1") == 0);
    TS_CHECK(fcntl(3, F_GETFD) == 0);
    set_pid_env(getpid());
    TS_CHECK(ss__activation_fds(&list, NULL) == 1);
}

static void test_other_process_is_refused(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(other_process), 0);
}

/* LISTEN_FDS = 3 with only fd 3 open: -EBADF, nothing adopted, fd 3
 * left inheritable (it is not ours to change when we refuse the lot). */
static void beyond_open_fds(void)
{
    lay_out_sockets(1);
    set_env("3", NULL);
    const char *msg = NULL;
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, &msg) == -EBADF);
    TS_CHECK(msg && strstr(msg, "not open"));
    TS_CHECK(getenv("LISTEN_PID") != NULL);
}

static void test_count_beyond_open_fds(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(beyond_open_fds), 0);
}

static void expect_invalid(const char *pid, const char *fds, const char *names, const char *word)
{
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
    const ss__activated *list = NULL;
    const char *msg = NULL;
    int rc = ss__activation_fds(&list, &msg);
    if (rc != -EINVAL || !msg || !strstr(msg, word))
        fprintf(stderr, "pid=%s fds=%s names=%s: rc %d, %s\n", pid, fds, names ? names : "-", rc,
                msg ? msg : "no message");
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(msg, word));
}

static void test_malformed_values(void **state)
{
    (void)state;
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    const char *bad_pids[] = {"", "12x", "-1", " 1", "+1", "0", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_pids / sizeof *bad_pids; i++)
        expect_invalid(bad_pids[i], "1", NULL, "LISTEN_PID");
    const char *bad_counts[] = {"", "x", "-1", "1 ", "4097", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_counts / sizeof *bad_counts; i++)
        expect_invalid(me, bad_counts[i], NULL, "LISTEN_FDS");
    expect_invalid(me, "1", "a:b", "more names");
    /* systemd refuses these too (sd_listen_fds_with_names: one name per
     * descriptor; fdname_is_valid: printable ASCII) */
    expect_invalid(me, "2", "first", "fewer names");
    expect_invalid(me, "3", "a:b", "fewer names");
    expect_invalid(me, "1", "", "fewer names");
    expect_invalid(me, "2", "web:ad\tmin", "control or non-ASCII");
    expect_invalid(me, "1", "caf\xc3\xa9", "control or non-ASCII");
    expect_invalid(me, "1", "del\x7f", "control or non-ASCII");
    char long_name[300];
    memset(long_name, 'n', 256);
    long_name[256] = '\0';
    expect_invalid(me, "1", long_name, "longer than 255");
    /* None of these was taken: the variables are still there. */
    assert_non_null(getenv("LISTEN_PID"));
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
}

/* A 255-byte name is the longest allowed. */
static void longest_name(void)
{
    lay_out_sockets(1);
    char name[256];
    memset(name, 'n', 255);
    name[255] = '\0';
    set_env("1", name);
    const ss__activated *list = NULL;
    TS_CHECK(ss__activation_fds(&list, NULL) == 1 && strcmp(list[0].name, name) == 0);
}

static void test_longest_name(void **state)
{
    (void)state;
    assert_int_equal(ts_run_in_child(longest_name), 0);
}

/* systemd:NAME asks for a name systemd could have given (defect 6). */
static void test_url_names_follow_systemd(void **state)
{
    (void)state;
    ss__url url;
    assert_int_equal(ss__url_parse("systemd:web-1.admin", &url), 0);
    assert_int_equal(ss__url_parse("systemd:a:b", &url), SS_EURLFDNAME);
    assert_int_equal(ss__url_parse("systemd:we\tb", &url), SS_EURLFDNAME);
    assert_int_equal(ss__url_parse("systemd:caf\xc3\xa9", &url), SS_EURLFDNAME);
    assert_true(SS_IS_URL_ERROR(SS_EURLFDNAME));
    assert_non_null(strstr(ss_strerror(SS_EURLFDNAME), "systemd:NAME"));
    assert_null(strstr(ss_strerror(SS_EURLFD), "systemd")); /* fd:-1 hears of fd: only */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_named_sockets_once),
        cmocka_unit_test(test_url_names_follow_systemd),
        cmocka_unit_test(test_missing_names_are_unknown),
        cmocka_unit_test(test_zero_fds),
        cmocka_unit_test(test_absent_variables),
        cmocka_unit_test(test_other_process_is_refused),
        cmocka_unit_test(test_count_beyond_open_fds),
        cmocka_unit_test(test_malformed_values),
        cmocka_unit_test(test_longest_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
