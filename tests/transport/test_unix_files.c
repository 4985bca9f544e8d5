/* Unix socket names at their limits and under attack:
 *   - a socket bound to a path but not yet listening is live: a second
 *     server gets -EADDRINUSE and the first keeps its file;
 *   - abstract names may fill sun_path (107 bytes after the leading NUL),
 *     paths one byte less for their NUL;
 *   - the permission bits of ss_server_set_unix_mode reach the socket
 *     file and nothing else, even when the name is swapped for a symbolic
 *     link right after bind (this file replaces bind() and unshare() for
 *     the library to stage that swap and to force the fallback path). */
#include "support.h"

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
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

/* ---- bind() and unshare() as the library sees them in this program ---- */

static struct {
    const char *swap_path;   /* after binding this path: move the socket away ... */
    const char *kept_path;   /* ... to here ... */
    const char *link_target; /* ... and put a symbolic link to this in its place */
    mode_t born_mode;        /* the socket file's mode right after the real bind */
    bool fail_unshare;
} hook;

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (syscall(SYS_bind, fd, sa, len) < 0)
        return -1;
    const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
    struct stat st;
    if (sa->sa_family != AF_UNIX || hook.swap_path == NULL ||
        strcmp(un->sun_path, hook.swap_path) != 0)
        return 0;
    if (lstat(hook.swap_path, &st) == 0)
        hook.born_mode = st.st_mode & 07777;
    if (hook.link_target != NULL) {
        assert_int_equal(rename(hook.swap_path, hook.kept_path), 0);
        assert_int_equal(symlink(hook.link_target, hook.swap_path), 0);
    }
    return 0;
}

int unshare(int flags)
{
    if (hook.fail_unshare) {
        errno = EPERM;
        return -1;
    }
    return (int)syscall(SYS_unshare, flags);
}

/* ---- fixture: a private directory per test ---- */

typedef struct fixture {
    char dir[256];
} fixture;

static int make_dir(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    ts_mkdtemp(f->dir, sizeof f->dir);
    memset(&hook, 0, sizeof hook);
    *state = f;
    return 0;
}

static int remove_dir(void **state)
{
    fixture *f = *state;
    memset(&hook, 0, sizeof hook);
    ts_rmdir(f->dir);
    free(f);
    return 0;
}

enum { PATH_SIZE = 512, URL_SIZE = PATH_SIZE + 16 };

static void path_in(void **state, const char *name, char *path)
{
    fixture *f = *state;
    if ((size_t)snprintf(path, PATH_SIZE, "%s/%s", f->dir, name) >= PATH_SIZE)
        fail_msg("path too long");
}

static const ss_handler echo = {.version = SS_HANDLER_VERSION, .handle = ts_echo_handle};

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

static void stream_round_trip(const char *url)
{
    int fd = ts_connect_url(url);
    char got[8] = {0};
    ts_send(fd, "ping", 4);
    assert_int_equal(ts_recv_exact(fd, got, 4), 4);
    assert_string_equal(got, "ping");
    close(fd);
}

/* ---- item: bound but not yet listening is live ---- */

static void test_bound_not_listening_keeps_its_path(void **state)
{
    char path[PATH_SIZE], url[URL_SIZE], gram[URL_SIZE];
    path_in(state, "early.sock", path);
    snprintf(url, sizeof url, "unix:%s", path);
    snprintf(gram, sizeof gram, "unixgram:%s", path);
    ss_server *first;
    assert_int_equal(ss_server_create(&first, url, NULL, &echo, NULL), 0);
    assert_int_equal(ss_server_bind(first), 0);
    struct stat before, after;
    assert_int_equal(lstat(path, &before), 0);
    const char *rivals[] = {url, gram};
    for (int i = 0; i < 2; i++) {
        ss_server *rival = (ss_server *)&rival;
        assert_int_equal(ss_server_new(&rival, rivals[i], NULL, &echo, NULL), -EADDRINUSE);
        assert_null(rival);
    }
    assert_int_equal(lstat(path, &after), 0);
    assert_true(before.st_ino == after.st_ino); /* the file was not replaced */
    assert_int_equal(ss_server_activate(first), 0);
    ts_runner runner;
    ts_start(&runner, first, 100);
    stream_round_trip(url); /* reachable: its file is still there */
    assert_int_equal(ts_stop(&runner), 0);
    ss_server_free(first);
}

/* Any socket type bound to the path counts, not only our own kind. */
static void test_foreign_bound_sockets_are_live(void **state)
{
    const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET};
    const char *schemes[] = {"unix", "unixgram"};
    for (int t = 0; t < 3; t++) {
        char path[PATH_SIZE], url[URL_SIZE];
        path_in(state, "foreign.sock", path);
        int fd = socket(AF_UNIX, types[t], 0);
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        assert_true(strlen(path) < sizeof un.sun_path);
        memcpy(un.sun_path, path, strlen(path) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&un, sizeof un), 0); /* never listens */
        for (int s = 0; s < 2; s++) {
            snprintf(url, sizeof url, "%s:%s", schemes[s], path);
            ss_server *rival = (ss_server *)&rival;
            assert_int_equal(ss_server_new(&rival, url, NULL, &echo, NULL), -EADDRINUSE);
            assert_null(rival);
        }
        close(fd); /* now stale: replaced */
        snprintf(url, sizeof url, "unix:%s", path);
        ss_server *srv;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), 0);
        ss_server_free(srv);
        unlink(path);
    }
}

/* ---- item: name lengths ---- */

static void test_abstract_name_boundary(void **state)
{
    (void)state;
#ifndef __linux__
    skip();
#else
    struct sockaddr_un un;
    size_t max = sizeof un.sun_path - 1; /* after the leading NUL: 107 */
    const char *schemes[] = {"unix", "unixgram"};
    for (int i = 0; i < 2; i++) {
        char name[256], url[300], address[300];
        int prefix = snprintf(name, sizeof name, "sstest-%ld-%d-", (long)getpid(), i);
        memset(name + prefix, 'a', max - (size_t)prefix);
        name[max] = '\0';
        snprintf(url, sizeof url, "%s:@%s", schemes[i], name);
        ss_server *srv = NULL;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), 0);
        assert_true(ss_server_address(srv, address, sizeof address) > 0);
        assert_string_equal(address, url);
        int fd = ss_connect(url);
        assert_true(fd >= 0);
        close(fd);
        ss_server_free(srv);
        strcat(url, "a"); /* 108 bytes: one too many */
        srv = (ss_server *)&srv;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -ENAMETOOLONG);
        assert_null(srv);
        assert_int_equal(ss_connect(url), -ENAMETOOLONG);
    }
#endif
}

static void test_path_boundary(void **state)
{
    fixture *f = *state;
    struct sockaddr_un un;
    size_t max = sizeof un.sun_path - 1; /* sun_path less its NUL: 107 on Linux */
    const char *schemes[] = {"unix", "unixgram"};
    for (int i = 0; i < 2; i++) {
        char path[PATH_SIZE], url[URL_SIZE];
        int n = snprintf(path, sizeof path, "%s/", f->dir);
        memset(path + n, 'p', max - (size_t)n);
        path[max] = '\0';
        snprintf(url, sizeof url, "%s:%s", schemes[i], path);
        ss_server *srv = NULL;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), 0);
        ss_server_free(srv);
        strcat(url, "p");
        srv = (ss_server *)&srv;
        assert_int_equal(ss_server_new(&srv, url, NULL, &echo, NULL), -ENAMETOOLONG);
        assert_null(srv);
    }
}

/* ---- item: the mode reaches the socket file and nothing else ---- */

/* Binds a unix: server at path with `mode`, the name swapped for a link
 * to `victim` right after bind when victim is not NULL. Returns bind's
 * result; the server is freed. */
static int bind_with_mode(const char *path, const char *kept, const char *victim, mode_t mode)
{
    char url[URL_SIZE];
    snprintf(url, sizeof url, "unix:%s", path);
    ss_server *srv;
    assert_int_equal(ss_server_create(&srv, url, NULL, &echo, NULL), 0);
    assert_int_equal(ss_server_set_unix_mode(srv, mode), 0);
    hook.swap_path = path;
    hook.kept_path = kept;
    hook.link_target = victim;
    int rc = ss_server_bind(srv);
    hook.swap_path = NULL;
    ss_server_free(srv);
    return rc;
}

static void swapped_name(void **state, bool fail_unshare)
{
    char path[PATH_SIZE], kept[PATH_SIZE], victim[PATH_SIZE];
    path_in(state, "m.sock", path);
    path_in(state, "m.kept", kept);
    path_in(state, "secret", victim);
    int fd = open(victim, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(chmod(victim, 0600), 0);
    hook.fail_unshare = fail_unshare;
    mode_t old = umask(077); /* the mode asked for is not what bind alone gives */
    int rc = bind_with_mode(path, kept, victim, 0666);
    umask(old);
    assert_int_equal(mode_of(victim), 0600); /* the link's target is untouched */
    assert_int_equal(rc, -ELOOP);            /* the name is not our socket any more */
    if (!fail_unshare)
        assert_int_equal(mode_of(kept), 0666); /* the socket got its mode at bind */
    assert_int_equal(unlink(path), 0);         /* the link: not removed by the library */
    unlink(kept);
}

static void test_mode_not_applied_through_a_swapped_link(void **state)
{
    swapped_name(state, false);
}

static void test_mode_not_applied_through_a_swapped_link_fallback(void **state)
{
    swapped_name(state, true);
}

/* Whatever the umask, the file has exactly the bits asked for, and never
 * more than those at any moment (checked right after the kernel's bind). */
static void test_mode_exact_and_never_wider(void **state)
{
    const mode_t modes[] = {0600, 0660, 0666, 0700};
    const mode_t masks[] = {0, 022, 077};
    for (int fallback = 0; fallback < 2; fallback++)
        for (size_t m = 0; m < 4; m++)
            for (size_t u = 0; u < 3; u++) {
                char path[PATH_SIZE];
                path_in(state, "x.sock", path);
                hook.fail_unshare = fallback;
                hook.born_mode = 07777;
                mode_t old = umask(masks[u]);
                int rc = bind_with_mode(path, NULL, NULL, modes[m]);
                umask(old);
                assert_int_equal(rc, 0);
                assert_int_equal(hook.born_mode & ~modes[m], 0);
#ifdef __linux__
                if (!fallback)
                    assert_int_equal(hook.born_mode, modes[m]);
#endif
                assert_false(access(path, F_OK) == 0); /* freed: removed */
            }
}

/* And when applied, the mode is on the file while the server lives. */
static void test_mode_on_the_live_file(void **state)
{
    char path[PATH_SIZE], url[URL_SIZE];
    path_in(state, "live.sock", path);
    snprintf(url, sizeof url, "unixgram:%s", path);
    for (int fallback = 0; fallback < 2; fallback++) {
        hook.fail_unshare = fallback;
        mode_t old = umask(077);
        ss_server *srv;
        assert_int_equal(ss_server_create(&srv, url, NULL, &echo, NULL), 0);
        assert_int_equal(ss_server_set_unix_mode(srv, 0662), 0);
        assert_int_equal(ss_server_bind(srv), 0);
        umask(old);
        assert_int_equal(mode_of(path), 0662);
        ss_server_free(srv);
    }
}

#define T(name) cmocka_unit_test_setup_teardown(name, make_dir, remove_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_bound_not_listening_keeps_its_path),
        T(test_foreign_bound_sockets_are_live),
        T(test_abstract_name_boundary),
        T(test_path_boundary),
        T(test_mode_not_applied_through_a_swapped_link),
        T(test_mode_not_applied_through_a_swapped_link_fallback),
        T(test_mode_exact_and_never_wider),
        T(test_mode_on_the_live_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
