/* The successor test_handover.c starts through ss_server_hand_over: it
 * checks the socket-activation environment it was given and, by MODE:
 *   serve   says READY=1 (ss_notify), then answers every connection on
 *           every passed socket with "new PID NAME\n" until SIGTERM
 *   exit3   exits with status 3 at once
 *   silent  never says it is ready (sleeps until killed)
 *   spoof   a child of its own says READY=1, it does not
 * A wrong environment makes it exit with status 9. */
#define _GNU_SOURCE
#include <socketserver.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FDS 8

static char names[MAX_FDS][64];

static int check_environment(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    const char *fdnames = getenv("LISTEN_FDNAMES");
    if (!pid || !fds || !fdnames || atol(pid) != (long)getpid() || !getenv("NOTIFY_SOCKET"))
        exit(9);
    int n = atoi(fds);
    if (n < 1 || n > MAX_FDS)
        exit(9);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", fdnames);
    char *save = NULL, *name = strtok_r(copy, ":", &save);
    for (int i = 0; i < n; i++, name = strtok_r(NULL, ":", &save))
        snprintf(names[i], sizeof names[i], "%s", name ? name : "?");
    return n;
}

/* Reads the client's line, answers, closes. */
static void answer(int listener, int index)
{
    int c = accept(listener, NULL, NULL);
    if (c < 0)
        return;
    char buf[256];
    ssize_t got = recv(c, buf, sizeof buf, 0);
    (void)got;
    int len = snprintf(buf, sizeof buf, "new %ld %s\n", (long)getpid(), names[index]);
    send(c, buf, (size_t)len, MSG_NOSIGNAL);
    close(c);
}

static void serve(int n)
{
    struct pollfd p[MAX_FDS];
    for (int i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = 3 + i, .events = POLLIN};
    if (ss_notify("READY=1") != 1)
        exit(8);
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0)
            continue;
        for (int i = 0; i < n; i++)
            if (p[i].revents & POLLIN)
                answer(p[i].fd, i);
    }
}

int main(int argc, char **argv)
{
    int n = check_environment();
    const char *mode = argc > 1 ? argv[1] : "serve";
    if (strcmp(mode, "exit3") == 0)
        return 3;
    if (strcmp(mode, "spoof") == 0) {
        pid_t child = fork();
        if (child == 0)
            _exit(ss_notify("READY=1") == 1 ? 0 : 1);
        waitpid(child, NULL, 0);
    }
    if (strcmp(mode, "serve") == 0)
        serve(n);
    for (;;)
        pause(); /* silent, spoof: until killed */
}
