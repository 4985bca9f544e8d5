#define _GNU_SOURCE
#include "base_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

long long ts_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool ts_wait_until(bool (*cond)(void *), void *arg, int timeout_ms)
{
    long long end = ts_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (ts_now_ms() >= end)
            return false;
        usleep(1000);
    }
    return true;
}

int ts_run_in_child(void (*body)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        body();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

bool ts_proc_stat_read(long pid, long tid, ts_proc_stat *st)
{
    char path[96], text[512];
    if (tid > 0)
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/stat", pid, tid);
    else
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *name_end = strrchr(text, ')'); /* the last: the name may hold one */
    st->pid = tid > 0 ? tid : pid;
    return name_end != NULL &&
           sscanf(name_end + 1, " %c %ld %ld", &st->state, &st->ppid, &st->pgrp) == 3;
}

/* A /proc entry's name as a process or thread id; 0 if it is not one. */
static long id_of(const char *name)
{
    char *end;
    long id = strtol(name, &end, 10);
    return *end == '\0' ? id : 0;
}

long ts_proc_find(bool (*match)(const ts_proc_stat *st, void *arg), void *arg)
{
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    long found = 0;
    ts_proc_stat st;
    for (struct dirent *e; found == 0 && (e = readdir(d)) != NULL;) {
        long pid = id_of(e->d_name);
        if (pid > 0 && ts_proc_stat_read(pid, 0, &st) && st.state != 'Z' && match(&st, arg))
            found = pid;
    }
    closedir(d);
    return found;
}

bool ts_proc_threads_in(long pid, const char *states)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool all = true;
    ts_proc_stat st;
    for (struct dirent *e; all && (e = readdir(d)) != NULL;) {
        long tid = id_of(e->d_name);
        if (tid > 0)
            all = ts_proc_stat_read(pid, tid, &st) && strchr(states, st.state) != NULL;
    }
    closedir(d);
    return all;
}
