/* The server's cost as the kernel sees it: CPU time, memory, threads and
 * processes of the server pid and every live descendant (forking servers),
 * read from /proc. CPU time includes children already reaped (cutime and
 * cstime), so a child that lived and died inside the window still counts.
 *
 * /proc/PID/stat gives CPU time in clock ticks (10 ms), rounded down per
 * process: a forking server's thousand children, each running a few ms,
 * would show almost nothing. So a single-threaded process is read from
 * /proc/PID/schedstat (nanoseconds) instead; a multi-threaded one keeps
 * stat's figure, which also holds its threads that have exited. */
#include "lg.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct proc_stat {
    pid_t pid, ppid;
    double cpu_s; /* own time (stat or schedstat) + children reaped (cutime + cstime) */
    long threads, rss_pages;
} proc_stat;

/* The process's own run time in seconds from /proc/PID/schedstat, -1 if
 * unreadable. It counts the main thread only: single-threaded use. */
static double schedstat_s(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    unsigned long long ns;
    bool ok = fscanf(f, "%llu", &ns) == 1;
    fclose(f);
    return ok ? (double)ns / 1e9 : -1;
}

static double ticks_s(unsigned long long ticks)
{
    static long hz;
    if (hz == 0)
        hz = sysconf(_SC_CLK_TCK);
    return (double)ticks / (double)hz;
}

/* Fields after "pid (comm)": state ppid ... utime(14) stime cutime cstime
 * ... num_threads(20) ... rss(24). comm may hold spaces and parentheses, so
 * parsing starts after the last ')'. */
static bool read_stat(pid_t pid, proc_stat *out)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *p = ok ? strrchr(line, ')') : NULL;
    if (p == NULL)
        return false;
    unsigned long long ut, st;
    long long cut, cst;
    int ppid;
    int n = sscanf(p + 2,
                   "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld %*d %*d %ld"
                   " %*d %*u %*u %ld",
                   &ppid, &ut, &st, &cut, &cst, &out->threads, &out->rss_pages);
    if (n != 7)
        return false;
    out->pid = pid;
    out->ppid = ppid;
    double own = out->threads == 1 ? schedstat_s(pid) : -1;
    if (own < 0)
        own = ticks_s(ut + st);
    out->cpu_s = own + ticks_s((unsigned long long)cut + (unsigned long long)cst);
    return true;
}

static long read_pss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "Pss: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* Every process on the machine, for the parent links. */
static size_t list_all(proc_stat **out)
{
    DIR *d = opendir("/proc");
    size_t n = 0, cap = 0;
    proc_stat *v = NULL;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            proc_stat *p = realloc(v, cap * sizeof *v);
            if (p == NULL)
                break;
            v = p;
        }
        if (read_stat((pid_t)atoi(e->d_name), &v[n]))
            n++;
    }
    if (d != NULL)
        closedir(d);
    *out = v;
    return n;
}

static bool in_tree(const proc_stat *all, size_t n, const bool *member, size_t i)
{
    for (size_t j = 0; j < n; j++)
        if (member[j] && all[j].pid == all[i].ppid)
            return true;
    return false;
}

/* Marks root and its descendants; repeats until nothing new joins. */
static void mark_tree(const proc_stat *all, size_t n, pid_t root, bool *member)
{
    for (size_t i = 0; i < n; i++)
        member[i] = all[i].pid == root;
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < n; i++)
            if (!member[i] && in_tree(all, n, member, i))
                member[i] = grew = true;
    }
}

static void add_member(lg_proc *r, const proc_stat *p, bool memory)
{
    static long page_kb;
    if (page_kb == 0)
        page_kb = sysconf(_SC_PAGESIZE) / 1024;
    r->cpu_s += p->cpu_s;
    r->rss_kb += p->rss_pages * page_kb;
    r->threads += p->threads;
    r->procs++;
    if (memory)
        r->pss_kb += read_pss_kb(p->pid);
}

lg_proc lg_proc_sample(pid_t pid, bool memory)
{
    lg_proc r = {0};
    proc_stat *all = NULL;
    size_t n = list_all(&all);
    bool *member = calloc(n ? n : 1, sizeof *member);
    if (member != NULL) {
        mark_tree(all, n, pid, member);
        for (size_t i = 0; i < n; i++)
            if (member[i])
                add_member(&r, &all[i], memory);
    }
    r.ok = r.procs > 0;
    free(member);
    free(all);
    return r;
}
