/* core/histogram.c — fixed-bucket latency histogram (histogram.h). */
#include "histogram.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

const uint64_t hist_bounds_us[HIST_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

/* A linear scan: 14 compares, and most fetches land in the first few.
 * Relaxed atomic adds: the fsync histogram is fed by the log's sync thread
 * while the event loop exposes it (uncontended, they cost a locked add). */
void hist_observe(histogram *h, uint64_t us)
{
    size_t i = 0;
    while (i < HIST_BUCKETS && us > hist_bounds_us[i])
        i++;
    __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->sum_us, us, __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

static uint64_t hist_load(const uint64_t *v) { return __atomic_load_n(v, __ATOMIC_RELAXED); }

static size_t hist_append(char *buf, size_t used, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static size_t hist_append(char *buf, size_t used, size_t len, const char *fmt, ...)
{
    if (used >= len)
        return len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - used)
        return len;
    return used + (size_t)n;
}

size_t hist_expose(const histogram *h, const char *name, const char *help, char *buf, size_t used,
                   size_t len)
{
    used = hist_append(buf, used, len, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    /* Read once, buckets first: a concurrent observe may land between the
     * loads, so _count is the sum of the buckets read, never ahead of them
     * (Prometheus requires the +Inf bucket to equal _count). */
    uint64_t cum = 0, sum_us = hist_load(&h->sum_us);
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += hist_load(&h->bucket[i]);
        /* %g of the bound in seconds: 5e-05, 0.0001, ..., 1 */
        used = hist_append(buf, used, len, "%s_bucket{le=\"%g\"} %llu\n", name,
                           (double)hist_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += hist_load(&h->bucket[HIST_BUCKETS]);
    used = hist_append(buf, used, len, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                       name, (unsigned long long)cum, name, (double)sum_us / 1e6, name,
                       (unsigned long long)cum);
    return used;
}
