/* core/histogram.h — a latency histogram with fixed buckets, for the
 * Prometheus exposition of /metrics (DESIGN.md §5).
 *
 * Contract: hist_observe is O(buckets) and allocation-free (it runs on the
 * fetch path); the buckets are fixed at compile time, 50 µs to 1 s, so that
 * every member and every release exposes the same `le` labels and series
 * can be summed across members. Counts are kept per bucket and made
 * cumulative only when exposed. hist_observe may run on any thread (relaxed
 * atomic adds: the log's sync thread feeds the fsync histogram); hist_expose
 * reads each counter once and prints _count as the sum of the buckets read.
 */
#ifndef SEQD_HISTOGRAM_H
#define SEQD_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define HIST_BUCKETS 14   /* finite upper bounds; +Inf is implied */

/* The upper bounds in microseconds, increasing. */
extern const uint64_t hist_bounds_us[HIST_BUCKETS];

typedef struct histogram {
    uint64_t bucket[HIST_BUCKETS + 1];   /* [HIST_BUCKETS]: above the last bound */
    uint64_t count;
    uint64_t sum_us;
} histogram;

void hist_observe(histogram *h, uint64_t us);

/* Appends the histogram `name` (HELP, TYPE, name_bucket{le=...} cumulative,
 * name_sum in seconds, name_count) in text exposition format to buf, which
 * holds used bytes of len. Returns the new used length, or len when it did
 * not fit (the caller then has an incomplete exposition: asserted against
 * by sizing the buffer with HIST_EXPOSE_MAX). */
size_t hist_expose(const histogram *h, const char *name, const char *help, char *buf, size_t used,
                   size_t len);

/* Enough for one histogram with a name and help of up to 128 bytes each. */
#define HIST_EXPOSE_MAX 4096

#endif
