/* client/stream.c — buffered stream of IDs (contract: client/stream.h).
 *
 * One mutex guards everything; two condition variables: `avail` wakes
 * stream_next callers when a range arrives (or a direct fetch ends), `work`
 * wakes the refill thread when the stream wants a range (or is stopping).
 * Both run on CLOCK_MONOTONIC so that a wall-clock jump cannot stretch or
 * cut a timeout.
 *
 * The source is always called without the mutex held: a cluster fetch can
 * take seconds, and stream_next callers must still be able to time out and
 * stream_stats must still answer meanwhile.
 *
 * Why the IDs of one stream increase: ranges are accepted only if they lie
 * above every range accepted before (checked here, not assumed of the
 * source), the range fetched ahead is consumed only after the current one,
 * and a range is consumed in order under the mutex.
 */
#include "stream.h"

#include "policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Retry pacing after a failed refill: short enough that a member restarting
 * is noticed within a fraction of a second, capped so that a dead cluster
 * is not hammered. */
#define STREAM_BACKOFF_MIN_MS 10
#define STREAM_BACKOFF_MAX_MS 250

struct stream {
    pthread_mutex_t mu;
    pthread_cond_t avail;       /* a range arrived / a direct fetch ended */
    pthread_cond_t work;        /* refill wanted / stopping */
    pthread_t thread;
    bool has_thread;
    bool stopping;
    bool fetching;              /* buffer 0: a caller is in the source */
    uint32_t nwait;             /* callers blocked on `avail` */

    stream_source_fn src;
    void *ctx;
    void (*ctx_free)(void *);   /* ctx owned by the stream, or NULL */
    uint32_t buffer;
    uint32_t size;              /* range size of the next refill (>= buffer) */
    uint32_t size_max;          /* stream_set_adaptive; 0: size == buffer */
    struct timespec last_refill;/* when the last refill started */

    uint64_t cur_next, cur_left;    /* the range being consumed */
    uint64_t pend_first, pend_left; /* the range fetched ahead (0 left: none) */
    bool have_hi;
    uint64_t hi;                /* last ID of the last range accepted */

    struct stream_stats st;
};


/* Absolute CLOCK_MONOTONIC time `ms` from now, the form timed waits need. */
static struct timespec stream_deadline(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Whether the deadline has passed; compared by hand because timed waits may
 * wake spuriously before it. */
static bool stream_passed(const struct timespec *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > dl->tv_sec || (now.tv_sec == dl->tv_sec && now.tv_nsec >= dl->tv_nsec);
}

/* Blocks on `avail` until woken or the deadline; counts the waiter so that
 * wake-ups can be sized. */
static void stream_wait(stream *s, const struct timespec *dl)
{
    s->nwait++;
    (void)pthread_cond_timedwait(&s->avail, &s->mu, dl);
    s->nwait--;
}

/* Wakes as many waiters as there are IDs for (n): waking all 32 threads
 * of a shared stream for one ID costs more context switches than the ID
 * is worth on a small machine. A waiter that was woken but gives up (its
 * timeout) passes the wake-up on, see stream_pass_on. */
static void stream_wake(stream *s, uint64_t n)
{
    if (s->nwait == 0 || n == 0)
        return;
    if (n >= s->nwait) {
        pthread_cond_broadcast(&s->avail);
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        pthread_cond_signal(&s->avail);
}

/* A caller leaving on timeout may have consumed a wake-up meant for an ID
 * (or a turn) that is still there: hand it to another waiter. */
static void stream_pass_on(stream *s)
{
    bool left = s->buffer == 0 ? !s->fetching : s->cur_left + s->pend_left > 0;
    if (left)
        stream_wake(s, 1);
}

/* The refill rule: fetch ahead once half of the current range is consumed
 * (and nothing is fetched ahead yet). Half, not empty, so that the next
 * range arrives while the rest of this one is being used. */
static bool stream_wants_refill(const stream *s)
{
    return s->buffer > 0 && s->pend_left == 0 && s->cur_left * 2 <= s->size;
}

/* Adaptive ranges: a stall means one range did not last a source round
 * trip, so the next ones are twice as big (which also moves the refill
 * point earlier, at half the new size); a range that lasted over a second
 * means the consumer slowed down, so the size halves back toward `buffer`
 * (bounding what a freed stream loses). Under the mutex. */
static void stream_grow(stream *s)
{
    if (s->size_max > s->size)
        s->size = s->size * 2 > s->size_max ? s->size_max : s->size * 2;
}

static void stream_maybe_shrink(stream *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool slow = now.tv_sec - s->last_refill.tv_sec > 1 ||
                (now.tv_sec - s->last_refill.tv_sec == 1 && now.tv_nsec >= s->last_refill.tv_nsec);
    if (slow && s->size > s->buffer)
        s->size = s->size / 2 < s->buffer ? s->buffer : s->size / 2;
    s->last_refill = now;
}

/* Checks a range from the source before anything is handed out of it: a
 * source that repeats or goes back (a cluster that lost its disks, a buggy
 * fake) must not make this stream break its promise. */
static bool stream_range_ok(const stream *s, uint64_t first, uint64_t count, char *err,
                            size_t errlen)
{
    if (count == 0 || first == 0 || first - 1 > UINT64_MAX - count) {
        policy_seterr(err, errlen, "source returned an invalid range of %llu IDs at %llu",
                      (unsigned long long)count, (unsigned long long)first);
        return false;
    }
    if (s->have_hi && first <= s->hi) {
        policy_seterr(err, errlen,
                      "source returned IDs from %llu, not above %llu already received: refused",
                      (unsigned long long)first, (unsigned long long)s->hi);
        return false;
    }
    return true;
}

/* Bookkeeping of a failed source call, under the mutex. */
static void stream_note_failure(stream *s, const char *e)
{
    s->st.failures++;
    s->st.waiting = true;
    snprintf(s->st.last_err, sizeof s->st.last_err, "%s", e[0] ? e : "source failed");
}

/* Bookkeeping of an accepted range, under the mutex. */
static void stream_note_range(stream *s, uint64_t first, uint64_t count)
{
    s->have_hi = true;
    s->hi = first + (count - 1);
    s->st.refills++;
    s->st.waiting = false;
}

/* The refill thread: sleeps until the stream wants a range, fetches it
 * without the lock, installs it, and on failure retries with a capped
 * backoff until it works or the stream stops. */
static void *stream_refill_main(void *arg)
{
    stream *s = arg;
    uint32_t backoff = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && !stream_wants_refill(s))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->stopping)
            break;
        if (s->size_max)
            stream_maybe_shrink(s);
        uint32_t n = s->size;
        pthread_mutex_unlock(&s->mu);
        uint64_t first = 0;
        char e[sizeof s->st.last_err] = "";
        int rc = s->src(s->ctx, n, &first, e, sizeof e);
        pthread_mutex_lock(&s->mu);
        if (rc == 0 && stream_range_ok(s, first, n, e, sizeof e)) {
            stream_note_range(s, first, n);
            if (s->cur_left == 0) {
                s->cur_next = first;
                s->cur_left = n;
            } else {
                s->pend_first = first;
                s->pend_left = n;
            }
            backoff = 0;
            stream_wake(s, s->cur_left + s->pend_left);
            continue;
        }
        stream_note_failure(s, e);
        backoff = backoff == 0 ? STREAM_BACKOFF_MIN_MS
                  : backoff * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : backoff * 2;
        struct timespec dl = stream_deadline(backoff);
        while (!s->stopping && !stream_passed(&dl))
            (void)pthread_cond_timedwait(&s->work, &s->mu, &dl);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Frees what stream_new allocated; shared by stream_free and the failure
 * paths of the constructors. */
static void stream_destroy(stream *s)
{
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->avail);
    pthread_mutex_destroy(&s->mu);
    if (s->ctx_free != NULL)
        s->ctx_free(s->ctx);
    free(s);
}

/* Both constructors end here; ctx_free (may be NULL) frees ctx with the
 * stream, including when this fails. */
static stream *stream_new_owned(stream_source_fn src, void *ctx, void (*ctx_free)(void *),
                                uint32_t buffer, char *err, size_t errlen)
{
    stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        if (ctx_free != NULL)
            ctx_free(ctx);
        policy_seterr(err, errlen, "out of memory");
        return NULL;
    }
    s->src = src;
    s->ctx = ctx;
    s->ctx_free = ctx_free;
    s->buffer = buffer;
    s->size = buffer;
    clock_gettime(CLOCK_MONOTONIC, &s->last_refill);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->avail, &ca);
    pthread_cond_init(&s->work, &ca);
    pthread_condattr_destroy(&ca);
    if (buffer > 0) {
        int e = pthread_create(&s->thread, NULL, stream_refill_main, s);
        if (e != 0) {
            policy_seterr(err, errlen, "cannot start the refill thread: %s", strerror(e));
            stream_destroy(s);
            return NULL;
        }
        s->has_thread = true;
    }
    return s;
}

stream *stream_new(stream_source_fn src, void *ctx, uint32_t buffer, char *err, size_t errlen)
{
    if (src == NULL) {
        policy_seterr(err, errlen, "no source");
        return NULL;
    }
    return stream_new_owned(src, ctx, NULL, buffer, err, errlen);
}

/* ---- the cluster source ---- */

struct stream_client_ctx {
    client *c;
    uint32_t timeout_ms;
    char name[SEQD_NAME_MAX + 1];
};

static int stream_client_source(void *ctx, uint32_t count, uint64_t *first, char *err,
                                size_t errlen)
{
    struct stream_client_ctx *cc = ctx;
    return client_fetch(cc->c, cc->name, count, cc->timeout_ms, first, err, errlen);
}

static void stream_client_free(void *ctx)
{
    struct stream_client_ctx *cc = ctx;
    client_free(cc->c);
    free(cc);
}

/* The name and the buffer are checked here, once: the refill thread would
 * otherwise retry a request the cluster can never accept, forever. */
stream *stream_new_client(const char *servers, const char *name, uint32_t buffer,
                          uint32_t timeout_ms, char *err, size_t errlen)
{
    if (policy_check_name(name, err, errlen) != CLIENT_OK)
        return NULL;
    if (buffer > SEQD_COUNT_MAX) {
        policy_seterr(err, errlen, "bad buffer %u: must be 0 to %u", buffer, SEQD_COUNT_MAX);
        return NULL;
    }
    struct stream_client_ctx *cc = calloc(1, sizeof *cc);
    if (cc == NULL) {
        policy_seterr(err, errlen, "out of memory");
        return NULL;
    }
    cc->c = client_new(servers, err, errlen);
    if (cc->c == NULL) {
        free(cc);
        return NULL;
    }
    cc->timeout_ms = timeout_ms;
    memcpy(cc->name, name, strlen(name) + 1);   /* fits: the name was checked */
    return stream_new_owned(stream_client_source, cc, stream_client_free, buffer, err, errlen);
}

/* ---- the local baseline source ---- */

/* One atomic add per range: the cheapest correct allocator there is, the
 * floor the cluster is measured against. */
int stream_counter_source(void *ctx, uint32_t count, uint64_t *first, char *err, size_t errlen)
{
    stream_counter *ctr = ctx;
    uint64_t f = atomic_fetch_add_explicit(&ctr->next, count, memory_order_relaxed);
    if (f == 0 || f - 1 > UINT64_MAX - count) {
        policy_seterr(err, errlen, "local counter exhausted");
        return 1;
    }
    *first = f;
    return 0;
}

stream *stream_new_local(uint64_t start, uint32_t buffer, char *err, size_t errlen)
{
    stream_counter *ctr = calloc(1, sizeof *ctr);
    if (ctr == NULL) {
        policy_seterr(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&ctr->next, start);
    return stream_new_owned(stream_counter_source, ctr, free, buffer, err, errlen);
}

/* ---- consuming ---- */

/* The message of a stream_next that gave up: the source's last error if it
 * is failing, else it is merely slow (or busy with other callers). */
static void stream_timeout_err(stream *s, uint32_t timeout_ms, char *err, size_t errlen)
{
    s->st.timeouts++;
    if (s->st.waiting)
        policy_seterr(err, errlen, "no ID within %u ms: waiting for the cluster: %s",
                      timeout_ms, s->st.last_err);
    else
        policy_seterr(err, errlen, "no ID within %u ms: the source has not answered yet",
                      timeout_ms);
}

/* buffer 0: one direct fetch per ID, made by the caller so that the ID is
 * as fresh as a plain client_fetch (real-time order holds). Callers take
 * turns through `fetching` rather than by holding the mutex across the
 * source call, so that a queued caller can still time out. Entered and
 * left with the mutex held. */
static int stream_next_direct(stream *s, uint64_t *id, uint32_t timeout_ms, char *err,
                              size_t errlen)
{
    struct timespec dl = stream_deadline(timeout_ms);
    s->st.stalls++;
    while (s->fetching) {
        if (stream_passed(&dl)) {
            stream_timeout_err(s, timeout_ms, err, errlen);
            stream_pass_on(s);
            return CLIENT_EFAIL;
        }
        stream_wait(s, &dl);
    }
    s->fetching = true;
    uint32_t backoff = STREAM_BACKOFF_MIN_MS;
    int rc;
    for (;;) {
        pthread_mutex_unlock(&s->mu);
        uint64_t first = 0;
        char e[sizeof s->st.last_err] = "";
        int src_rc = s->src(s->ctx, 1, &first, e, sizeof e);
        pthread_mutex_lock(&s->mu);
        if (src_rc == 0 && stream_range_ok(s, first, 1, e, sizeof e)) {
            stream_note_range(s, first, 1);
            s->st.ids++;
            *id = first;
            rc = CLIENT_OK;
            break;
        }
        stream_note_failure(s, e);
        if (stream_passed(&dl)) {
            stream_timeout_err(s, timeout_ms, err, errlen);
            rc = CLIENT_EFAIL;
            break;
        }
        /* Sleep the backoff, but no further than the deadline, so that the
         * last attempt is made right at it. */
        pthread_mutex_unlock(&s->mu);
        struct timespec wake = stream_deadline(backoff);
        if (wake.tv_sec > dl.tv_sec || (wake.tv_sec == dl.tv_sec && wake.tv_nsec > dl.tv_nsec))
            wake = dl;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR)
            ;
        pthread_mutex_lock(&s->mu);
        backoff = backoff * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : backoff * 2;
    }
    s->fetching = false;
    stream_wake(s, 1);
    return rc;
}

/* Takes the next ID of the buffered ranges, or nothing; wakes the refill
 * thread when this take crosses the half-way mark. Under the mutex. */
static bool stream_take(stream *s, uint64_t *id)
{
    if (s->cur_left == 0 && s->pend_left > 0) {
        s->cur_next = s->pend_first;
        s->cur_left = s->pend_left;
        s->pend_left = 0;
    }
    if (s->cur_left == 0)
        return false;
    *id = s->cur_next++;
    s->cur_left--;
    s->st.ids++;
    if (stream_wants_refill(s))
        pthread_cond_signal(&s->work);
    return true;
}

int stream_next(stream *s, uint64_t *id, uint32_t timeout_ms, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int rc;
    if (s->buffer == 0) {
        rc = stream_next_direct(s, id, timeout_ms, err, errlen);
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    if (stream_take(s, id)) {
        pthread_mutex_unlock(&s->mu);
        return CLIENT_OK;
    }
    s->st.stalls++;
    if (!s->st.waiting)
        stream_grow(s);   /* slow, not failing: bigger ranges */
    struct timespec dl = stream_deadline(timeout_ms);
    for (;;) {
        if (stream_take(s, id)) {
            rc = CLIENT_OK;
            break;
        }
        if (stream_passed(&dl)) {
            stream_timeout_err(s, timeout_ms, err, errlen);
            stream_pass_on(s);
            rc = CLIENT_EFAIL;
            break;
        }
        stream_wait(s, &dl);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void stream_set_adaptive(stream *s, uint32_t max_range)
{
    pthread_mutex_lock(&s->mu);
    if (s->buffer > 0 && max_range > s->buffer)
        s->size_max = max_range > SEQD_COUNT_MAX ? SEQD_COUNT_MAX : max_range;
    else
        s->size_max = 0;
    if (s->size_max == 0 || s->size > s->size_max)
        s->size = s->buffer;
    pthread_mutex_unlock(&s->mu);
}

void stream_stats(stream *s, struct stream_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}

void stream_free(stream *s)
{
    if (s == NULL)
        return;
    if (s->has_thread) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    stream_destroy(s);
}
