/* Latency samples: every completed request's latency in nanoseconds, kept
 * exactly (a few MB for a few seconds of load) and sorted once at the end. */
#include "lg.h"

#include <stdlib.h>

#define LG_SAMPLES_MAX (64u << 20) /* 512 MiB of samples: never reached in seconds */

void lg_samples_add(lg_samples *s, uint64_t ns)
{
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint64_t *p = cap <= LG_SAMPLES_MAX ? realloc(s->ns, cap * sizeof *p) : NULL;
        if (p == NULL) {
            s->full = true;
            return;
        }
        s->ns = p;
        s->cap = cap;
    }
    s->ns[s->count++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

void lg_samples_sort(lg_samples *s)
{
    if (s->count > 1)
        qsort(s->ns, s->count, sizeof *s->ns, cmp_u64);
}

/* Nearest-rank percentile. */
uint64_t lg_samples_pct(const lg_samples *s, double pct)
{
    if (s->count == 0)
        return 0;
    double rank = pct / 100.0 * (double)s->count;
    size_t i = (size_t)rank;
    if ((double)i < rank)
        i++;
    if (i > 0)
        i--;
    return s->ns[i < s->count ? i : s->count - 1];
}

void lg_samples_free(lg_samples *s)
{
    free(s->ns);
    *s = (lg_samples){0};
}
