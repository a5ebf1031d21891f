/* client/stream.h — a buffered stream of IDs of one sequence (rr_seq's RRSeq,
 * done properly).
 *
 * A stream keeps a local range of IDs and hands them out one at a time;
 * a background refill thread fetches the next range (`buffer` IDs) when
 * half of the current one is consumed, so that stream_next rarely waits.
 * It holds at most two ranges: the one being consumed and the one fetched
 * ahead.
 *
 * Guarantees: the IDs one stream hands out are unique, each from a range
 * the source committed, and increasing: each thread sees its own IDs
 * increase, and a stream_next that starts after another one returned
 * (whatever the threads) gets a higher ID; calls that overlap may return
 * in either order. Two streams of the same sequence interleave: they do
 * not follow real time between each other. IDs buffered in a stream that
 * is freed are lost (gaps are normal, duplicates never happen). A range
 * from the source that is not above every range it gave before is refused
 * (counted as a failure), so that a misbehaving source cannot make the
 * stream repeat or go back.
 *
 * Callers that find the stream empty wait together and are served by one
 * source call: it fetches one ID per waiter (plus, with buffer > 0, the
 * range that refills the buffer, when more wait than one range would
 * serve), and the range is split among them in arrival order. So 32
 * threads sharing a stream cost about one round trip per round of
 * waiters, not one each.
 *
 * buffer 0 means no buffering: every ID comes from a direct fetch made
 * after its stream_next was called (the first waiter makes it, for all
 * those waiting then; later callers wait for the next one), so real-time
 * order holds as for any direct fetch (an ID from a call that started
 * after another client's fetch returned is higher); the IDs of a waiter
 * that gave up while its fetch was in flight are dropped, never kept for
 * a later caller. With buffer > 0 the refill thread fetches ahead, and a
 * caller that finds the stream empty while no fetch is in flight fetches
 * for the waiters itself (instead of waking the refill thread and waiting
 * for it to be scheduled); a stream's IDs may then be older than another
 * client's later fetch: buffering trades real-time order for speed.
 *
 * When the source fails (cluster down), the refill thread keeps retrying
 * with a short capped backoff; stream_next waits up to its timeout and then
 * fails with the last error. stream_stats says whether the stream is
 * waiting for the source, so that a program can tell its user.
 *
 * Sizing: one stream delivers at most about `buffer` IDs per source round
 * trip (the refill starts at half, one range is fetched ahead), e.g. 1024
 * IDs per ~0.5 ms fetch is ~2M IDs/s; a consumer faster than that stalls
 * once per range (stream_stats.stalls). A refill ahead is a hand-off to
 * the refill thread (a wake-up, tens of µs on a small VM, more on a busy
 * one); a caller that stalls fetches itself instead.
 *
 * Thread-safe: any number of threads may call stream_next and stream_stats
 * on one stream. An ID of the current range is taken without a lock (one
 * compare-and-swap); the lock is only for swapping ranges and waiting.
 * stream_free must not race with the other calls.
 *
 *   char err[256];
 *   stream *s = stream_new_client("127.0.0.1:19001,127.0.0.1:19002,127.0.0.1:19003",
 *                                 "orders", 1024, 5000, err, sizeof err);
 *   if (s == NULL) { fprintf(stderr, "%s\n", err); exit(2); }
 *   uint64_t id;
 *   while (stream_next(s, &id, 5000, err, sizeof err) == 0)
 *       use(id);
 *   fprintf(stderr, "%s\n", err);
 *   stream_free(s);
 */
#ifndef SEQD_STREAM_H
#define SEQD_STREAM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"

typedef struct stream stream;

/* Where a stream gets its ranges: allocates `count` consecutive IDs and
 * stores the first in *first (IDs [*first, *first+count)). Returns 0, or
 * non-zero with a message in err. Called by one thread at a time per
 * stream (never concurrently for one ctx), not always the same thread
 * (the refill thread, or a caller waiting for IDs). */
typedef int (*stream_source_fn)(void *ctx, uint32_t count, uint64_t *first, char *err,
                                size_t errlen);

/* Counters of one stream (a consistent snapshot). */
struct stream_stats {
    uint64_t ids;        /* IDs handed out by stream_next */
    uint64_t refills;    /* successful source calls (buffer 0: one per round
                          * of waiters; one per ID for a lone caller) */
    uint64_t failures;   /* failed (or refused) source calls */
    uint64_t stalls;     /* stream_next calls that found no ID ready and had
                          * to wait for the source (buffer 0: every call) */
    uint64_t timeouts;   /* stream_next calls that failed */
    bool waiting;        /* the last source call failed and no range came
                          * since: the stream is waiting for the cluster */
    char last_err[256];  /* the last source error ("" if none yet) */
};

/* A stream over any source; ctx stays the caller's (it must outlive the
 * stream). With buffer > 0 the first range is fetched at once in the
 * background. NULL with a message on error (out of memory, no thread). */
stream *stream_new(stream_source_fn src, void *ctx, uint32_t buffer, char *err, size_t errlen);

/* A stream over a seqd cluster: owns a client (client/client.h) for `servers`
 * and fetches ranges of sequence `name`, each source call bounded by
 * timeout_ms. NULL with a message on a bad name, a bad server list or a
 * buffer over SEQD_COUNT_MAX. */
stream *stream_new_client(const char *servers, const char *name, uint32_t buffer,
                          uint32_t timeout_ms, char *err, size_t errlen);

/* A stream over an in-process atomic counter that starts at `start`: the
 * baseline benchmarks compare the cluster with (same API, no network, no
 * disk). */
stream *stream_new_local(uint64_t start, uint32_t buffer, char *err, size_t errlen);

/* The same counter as a source of its own, for several streams over one
 * counter (the baseline's "independent clients"): ctx is a stream_counter,
 * initialized with atomic_init(&ctr.next, start). */
typedef struct stream_counter {
    _Atomic uint64_t next;
} stream_counter;
int stream_counter_source(void *ctx, uint32_t count, uint64_t *first, char *err, size_t errlen);

/* The next ID into *id: CLIENT_OK, or CLIENT_EFAIL with a message in err
 * when none came within timeout_ms (the source failed or is slow). A source
 * call already in progress is not interrupted by the timeout. */
int stream_next(stream *s, uint64_t *id, uint32_t timeout_ms, char *err, size_t errlen);

void stream_stats(stream *s, struct stream_stats *out);

/* Adaptive ranges (off by default, where every range is `buffer` IDs):
 * with max_range > buffer, `buffer` becomes the minimum range. After a
 * stream_next that had to wait for a range (while the source is not
 * failing) the range size doubles, up to max_range (at most
 * SEQD_COUNT_MAX), and the refill starts at half the current size, so
 * earlier; when a range lasted over a second the size halves back toward
 * `buffer`. Costs: up to two ranges of the current size are lost (a gap)
 * when the stream is freed. 0 (or <= buffer) turns it off. Any thread,
 * any time. */
void stream_set_adaptive(stream *s, uint32_t max_range);

/* Stops the refill thread (waiting for a source call in progress, bounded
 * by the source's own timeout) and frees everything the stream owns. */
void stream_free(stream *s);

#endif
