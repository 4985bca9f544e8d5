/* The fiber switch, alone: nanoseconds per park/resume pair (scheduler ->
 * fiber -> scheduler) of the pool's fibers (src/sched/switch.c), with
 * glibc's swapcontext pair beside it, measured in one run on one thread.
 *
 *   fiber_switch [-n PAIRS] [-r ROUNDS]
 *
 * Each round times PAIRS pairs of each kind, the kinds alternating, so a
 * drift of the machine hits both; the output gives each kind's best and
 * median round, and the median of the per-round ratios. A pair of the
 * library's is what every request on the pool pays at least once: the
 * worker resumes the request's fiber, the fiber parks again. */
#include "sched/sched_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK (64 * 1024)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ---- the library's fibers: park is ss__switch_to_scheduler ---- */

static volatile bool fiber_stop;

static void parker(void *a, void *b)
{
    (void)b;
    ss__sched *s = a;
    while (!fiber_stop)
        ss__switch_to_scheduler(s, s->current);
}

/* The fiber runs once through the scheduler (its first entry), then is
 * resumed directly, as the run queue would, PAIRS times per round. */
static double library_round(ss__sched *s, ss__fiber *f, long pairs)
{
    double t0 = now_ns();
    for (long i = 0; i < pairs; i++)
        ss__switch_to_fiber(s, f);
    return (now_ns() - t0) / (double)pairs;
}

/* ---- glibc: swapcontext both ways ---- */

static ucontext_t main_ctx, co_ctx;

static void co_main(void)
{
    for (;;)
        swapcontext(&co_ctx, &main_ctx);
}

static double glibc_round(long pairs)
{
    double t0 = now_ns();
    for (long i = 0; i < pairs; i++)
        swapcontext(&main_ctx, &co_ctx);
    return (now_ns() - t0) / (double)pairs;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double best(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static ss__fiber *first_fiber(ss__sched *s)
{
    if (ss__sched_spawn(s, parker, s, NULL) != 0)
        return NULL;
    ss__fiber *f = s->run_head;
    ss__sched_run(s); /* enters it; it parks at once */
    return f;
}

int main(int argc, char **argv)
{
    long pairs = 1000000;
    int rounds = 11;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            pairs = atol(argv[i + 1]);
        else if (strcmp(argv[i], "-r") == 0)
            rounds = atoi(argv[i + 1]);
    }
    if (pairs < 1 || rounds < 1 || rounds > 1000) {
        fprintf(stderr, "usage: fiber_switch [-n PAIRS] [-r ROUNDS (1-1000)]\n");
        return 2;
    }
    int wake[2];
    if (pipe(wake) < 0)
        return 1;
    ss__sched *s = ss__sched_new(STACK, wake[0]);
    ss__sched_enter(s);
    ss__fiber *f = s != NULL ? first_fiber(s) : NULL;
    char *co_stack = malloc(STACK);
    if (f == NULL || co_stack == NULL) {
        fprintf(stderr, "fiber_switch: out of memory\n");
        return 1;
    }
    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = co_stack;
    co_ctx.uc_stack.ss_size = STACK;
    makecontext(&co_ctx, co_main, 0);

    double lib[1000], glibc[1000], ratio[1000];
    library_round(s, f, pairs / 10 + 1); /* warm-up */
    glibc_round(pairs / 10 + 1);
    for (int r = 0; r < rounds; r++) {
        lib[r] = library_round(s, f, pairs);
        glibc[r] = glibc_round(pairs);
        ratio[r] = glibc[r] / lib[r];
    }
    printf("fiber_switch: %ld park/resume pairs per round, %d rounds, one thread\n", pairs, rounds);
    printf("libsocketserver fiber:  best %6.1f ns  median %6.1f ns per pair\n", best(lib, rounds),
           median(lib, rounds));
    printf("glibc swapcontext:      best %6.1f ns  median %6.1f ns per pair\n", best(glibc, rounds),
           median(glibc, rounds));
    printf("swapcontext / fiber:    %.2fx (median of the per-round ratios)\n",
           median(ratio, rounds));
    fiber_stop = true;
    ss__switch_to_fiber(s, f); /* the fiber ends: nothing is left running */
    return 0;
}
