/* The server's cost as the kernel sees it: CPU time, memory, threads and
 * processes of the server pid and every live descendant (forking servers),
 * read from /proc. CPU time includes children already reaped (cutime and
 * cstime), so a child that lived and died inside the window still counts. */
#include "lg.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct proc_stat {
    pid_t pid, ppid;
    unsigned long long ticks; /* utime + stime + cutime + cstime */
    long threads, rss_pages;
} proc_stat;

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
    out->ticks = ut + st + (unsigned long long)cut + (unsigned long long)cst;
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
    static long page_kb, hz;
    if (hz == 0) {
        page_kb = sysconf(_SC_PAGESIZE) / 1024;
        hz = sysconf(_SC_CLK_TCK);
    }
    r->cpu_s += (double)p->ticks / (double)hz;
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
