/* core/histogram.c — fixed-bucket latency histogram (histogram.h). */
#include "histogram.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

const uint64_t hist_bounds_us[HIST_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
};

/* A linear scan: 14 compares, and most fetches land in the first few. */
void hist_observe(histogram *h, uint64_t us)
{
    size_t i = 0;
    while (i < HIST_BUCKETS && us > hist_bounds_us[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum_us += us;
}

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
    uint64_t cum = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        cum += h->bucket[i];
        /* %g of the bound in seconds: 5e-05, 0.0001, ..., 1 */
        used = hist_append(buf, used, len, "%s_bucket{le=\"%g\"} %llu\n", name,
                           (double)hist_bounds_us[i] / 1e6, (unsigned long long)cum);
    }
    cum += h->bucket[HIST_BUCKETS];
    assert(cum == h->count);
    used = hist_append(buf, used, len, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n",
                       name, (unsigned long long)cum, name, (double)h->sum_us / 1e6, name,
                       (unsigned long long)h->count);
    return used;
}
