/* client/stream.c — buffered stream of IDs (contract: client/stream.h).
 *
 * Two paths. The fast one (stream_claim) takes the next ID of the current
 * chunk with one compare-and-swap on `word`, no lock: 32 threads sharing a
 * stream no longer queue on a mutex for every ID. The slow one runs under
 * `mu`: swapping in the next chunk, waiting for the source, the refill
 * thread's bookkeeping, stats. The source is always called without the
 * mutex held: a cluster fetch can take seconds, and callers must still be
 * able to time out and stream_stats must still answer meanwhile. Timed
 * waits run on CLOCK_MONOTONIC so that a wall-clock jump cannot stretch or
 * cut a timeout.
 *
 * Callers that find nothing to take queue as waiters (struct
 * stream_waiter, on their own stack, each with its own condition variable
 * so that a hand-out wakes exactly the thread it is for) and are served
 * in arrival order straight from the next range, before the rest of it is
 * installed for the fast path: one source call serves every waiter
 * (coalescing), instead of each waiter fetching in turn.
 *
 * Why the IDs of one stream are unique and increase: ranges are accepted
 * only if they lie above every range accepted before (checked here, not
 * assumed of the source); a range is handed out only after the one before
 * it is used up; and within the current chunk each offset is claimed by
 * exactly one successful CAS, in increasing order (the argument is at
 * stream_claim).
 */
#include "stream.h"

#include "policy.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
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

/* `word` packs (generation, offset): the generation numbers the chunks
 * installed so far (mod 2^40), the offset is how many IDs of the current
 * chunk have been claimed. A chunk is at most STREAM_CHUNK_MAX IDs, so the
 * offset (which never passes the chunk's size: it only grows by a CAS that
 * checked it) never carries into the generation; a larger range is
 * installed as several chunks. */
#define STREAM_OFF_BITS 24
#define STREAM_OFF_MASK ((UINT64_C(1) << STREAM_OFF_BITS) - 1)
#define STREAM_GEN_MASK ((UINT64_C(1) << (64 - STREAM_OFF_BITS)) - 1)
#define STREAM_CHUNK_MAX (UINT64_C(1) << 23)
/* Chunk descriptions kept: a claimer that read a generation's word may
 * look its chunk up a little later; the slot is reused only STREAM_RING
 * chunks later, and a claimer that loses that race sees it (the tag) and
 * starts over. */
#define STREAM_RING 4
#define STREAM_NO_TRIGGER UINT64_MAX

/* One chunk, written under the mutex as a seqlock (tag 0 while being
 * written, generation + 1 once complete), read without it. Every field is
 * atomic so that a reader racing a rewrite reads stale values, never
 * torn ones, and then fails the tag check. */
struct stream_chunk {
    _Atomic uint64_t tag;
    _Atomic uint64_t base;      /* first ID of the chunk */
    _Atomic uint64_t size;      /* IDs in it (0: none, the initial state) */
    _Atomic uint64_t trigger;   /* the claimer of this offset wakes the
                                 * refill thread (STREAM_NO_TRIGGER: none) */
};

/* A stream_next caller queued for an ID (on its stack). */
typedef struct stream_waiter {
    struct stream_waiter *prev, *next;
    pthread_cond_t cv;          /* signalled when served or made the leader */
    bool served;                /* id holds its ID */
    bool in_batch;              /* buffer 0: counted in the fetch in flight */
    uint64_t id;
} stream_waiter;

struct stream {
    /* The fast path's two cache lines: `word` changes with every ID, the
     * chunk ring only once per chunk, so that readers of the ring keep
     * their copy while the word's line moves between cores. */
    alignas(64) _Atomic uint64_t word;
    alignas(64) struct stream_chunk ring[STREAM_RING];

    alignas(64) pthread_mutex_t mu;
    pthread_cond_t work;        /* refill wanted / stopping */
    pthread_condattr_t cattr;   /* CLOCK_MONOTONIC, for the waiters' cvs */
    pthread_t thread;
    bool has_thread;
    bool stopping;
    bool fetching;              /* buffer 0: a caller is in the source */

    stream_source_fn src;
    void *ctx;
    void (*ctx_free)(void *);   /* ctx owned by the stream, or NULL */
    uint32_t buffer;
    uint32_t size;              /* range size of the next refill (>= buffer) */
    uint32_t size_max;          /* stream_set_adaptive; 0: size == buffer */
    struct timespec last_refill;/* when the last refill started */

    /* Under mu: */
    uint64_t gen;               /* generation of the current chunk */
    uint64_t cur_size;          /* its size (also in the ring) */
    uint64_t pend_first, pend_left; /* accepted, not yet installed (0: none) */
    bool have_hi;
    uint64_t hi;                /* last ID of the last range accepted */
    uint64_t ids_done;          /* IDs of retired chunks and served waiters */
    stream_waiter *q_head, *q_tail;
    uint32_t nwait;             /* waiters queued */
    uint32_t batch_n;           /* buffer 0: waiters counted in the fetch */

    struct stream_stats st;     /* st.ids is computed by stream_stats */
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

/* ---- the fast path ---- */

/* Reads the description of chunk `gen` into the out-parameters; false when
 * its slot holds another chunk (or is being rewritten). A seqlock reader
 * (Boehm, "Can seqlocks get along with programming language memory
 * models?", 2012), in the form without fences (ThreadSanitizer does not
 * model fences): the acquire load of the tag makes the fields written
 * before its release store visible; if a field load instead reads a later
 * rewrite's value, that store is a release and the load an acquire, so the
 * rewrite's earlier tag store of 0 happens before the second tag load,
 * which then cannot return the old tag. On x86 both are plain moves. */
static bool stream_chunk_read(stream *s, uint64_t gen, uint64_t *base, uint64_t *size,
                              uint64_t *trigger)
{
    struct stream_chunk *c = &s->ring[gen % STREAM_RING];
    uint64_t t = atomic_load_explicit(&c->tag, memory_order_acquire);
    if (t != gen + 1)
        return false;
    *base = atomic_load_explicit(&c->base, memory_order_acquire);
    *size = atomic_load_explicit(&c->size, memory_order_acquire);
    *trigger = atomic_load_explicit(&c->trigger, memory_order_acquire);
    return atomic_load_explicit(&c->tag, memory_order_relaxed) == t;
}

/* The writer's side, under the mutex (one writer at a time). */
static void stream_chunk_write(stream *s, uint64_t gen, uint64_t base, uint64_t size,
                               uint64_t trigger)
{
    struct stream_chunk *c = &s->ring[gen % STREAM_RING];
    atomic_store_explicit(&c->tag, 0, memory_order_relaxed);
    atomic_store_explicit(&c->base, base, memory_order_release);
    atomic_store_explicit(&c->size, size, memory_order_release);
    atomic_store_explicit(&c->trigger, trigger, memory_order_release);
    atomic_store_explicit(&c->tag, gen + 1, memory_order_release);
}

static void stream_kick(stream *s, bool locked);

/* Takes the next ID of the current chunk, lock-free; false when the chunk
 * is used up (or was swapped meanwhile: the caller takes the slow path).
 * `locked`: the caller holds the mutex (the slow path tries again under
 * it).
 *
 * At most once: a successful CAS replaces (g, off) by (g, off + 1), and the
 * word's values only ever move forward — the offset grows within a
 * generation, an install (under the mutex, only once the chunk is used up)
 * stores (g + 1, 0) — so no later CAS can expect (g, off) again, and each
 * (g, off) maps to one ID, base(g) + off, of chunks that are disjoint (each
 * range lies above the one before; the chunks of a range do not overlap).
 * The word could come back to a value only after 2^40 chunks: a thread
 * would have to sit between its load and its CAS while the stream installs
 * 2^40 chunks (days at any rate a source can deliver); that is the one
 * assumption.
 * Committed: the CAS only succeeds for an offset checked against the size
 * of chunk g, read from g's own description (the tag check of
 * stream_chunk_read); the chunk is part of a range the source returned.
 * Increasing: one thread's CASes come in its program order in the word's
 * modification order (coherence), and along that order (g, off) grows
 * lexicographically, and so does base(g) + off since chunk g + 1 lies
 * above chunk g. So each thread sees its IDs increase; more: a call that
 * starts after another returned gets a higher ID, whatever the threads.
 * Orders: the CAS needs none for the properties above (atomicity and
 * coherence give them). The acquire load pairs with the install's release
 * store of the word (and the CASes after it continue its release
 * sequence), so that a thread that sees generation g also sees g's
 * description complete instead of failing the tag check and falling into
 * the slow path for nothing; a failed CAS reloads the word, so it takes
 * acquire for the same reason (and the successful one too, since C11 does
 * not let the failure order be the stronger; free on x86, where every
 * locked instruction is a full barrier). */
static bool stream_claim(stream *s, uint64_t *id, bool locked)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
    uint64_t gen = UINT64_MAX, base = 0, size = 0, trigger = STREAM_NO_TRIGGER;
    for (;;) {
        uint64_t g = w >> STREAM_OFF_BITS, off = w & STREAM_OFF_MASK;
        if (g != gen) {
            if (!stream_chunk_read(s, g, &base, &size, &trigger))
                return false;
            gen = g;
        }
        if (off >= size)
            return false;
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w + 1, memory_order_acquire,
                                                  memory_order_acquire)) {
            *id = base + off;
            if (off == trigger)
                stream_kick(s, locked);
            return true;
        }
    }
}

/* ---- waiters ---- */

static void stream_q_push(stream *s, stream_waiter *w)
{
    w->prev = s->q_tail;
    w->next = NULL;
    if (s->q_tail != NULL)
        s->q_tail->next = w;
    else
        s->q_head = w;
    s->q_tail = w;
    s->nwait++;
}

static void stream_q_unlink(stream *s, stream_waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->q_head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        s->q_tail = w->prev;
    w->prev = w->next = NULL;
    assert(s->nwait > 0);
    s->nwait--;
    if (w->in_batch) {
        assert(s->batch_n > 0);
        s->batch_n--;
        w->in_batch = false;
    }
}

/* Hands `id` to the first waiter and wakes it (only it). */
static void stream_serve_head(stream *s, uint64_t id)
{
    stream_waiter *w = s->q_head;
    stream_q_unlink(s, w);
    w->id = id;
    w->served = true;
    s->ids_done++;
    pthread_cond_signal(&w->cv);
}

static void stream_waiter_init(stream *s, stream_waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_cond_init(&w->cv, &s->cattr);
}

/* ---- ranges ---- */

/* The refill rule: fetch ahead once half of the current range is consumed
 * (and nothing is fetched ahead yet). Half, not empty, so that the next
 * range arrives while the rest of this one is being used. Under the mutex;
 * the offset may grow meanwhile, which only makes the answer "yes". */
static bool stream_wants_refill(const stream *s)
{
    if (s->buffer == 0 || s->pend_left > 0)
        return false;
    uint64_t off = atomic_load_explicit(&s->word, memory_order_relaxed) & STREAM_OFF_MASK;
    return (s->cur_size - off) * 2 <= s->size;
}

static bool stream_cur_used_up(const stream *s)
{
    uint64_t off = atomic_load_explicit(&s->word, memory_order_relaxed) & STREAM_OFF_MASK;
    return off >= s->cur_size;
}

/* Wakes the refill thread from the fast path, once per chunk (the claimer
 * of the trigger offset). Under the mutex, so that the wake-up cannot fall
 * between the refill thread's check of the rule and its wait. */
static void stream_kick(stream *s, bool locked)
{
    if (!locked)
        pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->work);
    if (!locked)
        pthread_mutex_unlock(&s->mu);
}

/* Makes the next chunk of the pending range current. Only once the current
 * chunk is used up, so that no ID of it is skipped, and only under the
 * mutex (the one writer of the ring and of the generation). The release
 * store publishes the chunk's description (see stream_claim); it also
 * drops nothing: with the chunk used up, the CASes racing it all fail. */
static void stream_install(stream *s)
{
    assert(s->pend_left > 0 && stream_cur_used_up(s));
    s->ids_done += s->cur_size;
    uint64_t n = s->pend_left < STREAM_CHUNK_MAX ? s->pend_left : STREAM_CHUNK_MAX;
    uint64_t base = s->pend_first;
    s->pend_first += n;
    s->pend_left -= n;
    /* The refill rule, made into the one offset whose claimer wakes the
     * refill thread: after it, n - off - 1 IDs are left, at most half a
     * range. Only the last chunk of a range has one. */
    uint64_t trigger = STREAM_NO_TRIGGER;
    if (s->pend_left == 0 && s->buffer > 0 && n - 1 >= s->size / 2)
        trigger = n - 1 - s->size / 2;
    s->gen = (s->gen + 1) & STREAM_GEN_MASK;
    s->cur_size = n;
    stream_chunk_write(s, s->gen, base, n, trigger);
    atomic_store_explicit(&s->word, s->gen << STREAM_OFF_BITS, memory_order_release);
    if (stream_wants_refill(s))
        pthread_cond_signal(&s->work);
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

/* How many IDs one refill asks for: a range of `size`, or, when more
 * callers wait than that would serve, one ID per waiter plus `size`, so
 * that one round trip serves them all and still refills the buffer. Capped
 * at what a cluster grants in one fetch (unless `size` is bigger: a local
 * source). */
static uint32_t stream_refill_count(const stream *s)
{
    uint64_t n = s->nwait > s->size ? (uint64_t)s->nwait + s->size : s->size;
    uint64_t cap = s->size > SEQD_COUNT_MAX ? s->size : SEQD_COUNT_MAX;
    return (uint32_t)(n < cap ? n : cap);
}

/* A range arrived (buffer > 0): the waiters, oldest first, get the first
 * IDs of it straight away; what is left becomes the pending range, and
 * current at once if the current chunk is used up. Waiters exist only
 * while the current chunk is used up and nothing is pending (they queue
 * only then, and every arrival serves them first), so their IDs lie above
 * every ID claimed so far, and every later claim is above theirs. */
static void stream_accept(stream *s, uint64_t first, uint64_t n)
{
    assert(s->q_head == NULL || (s->pend_left == 0 && stream_cur_used_up(s)));
    while (n > 0 && s->q_head != NULL) {
        stream_serve_head(s, first++);
        n--;
    }
    if (n == 0)
        return;
    assert(s->pend_left == 0);
    s->pend_first = first;
    s->pend_left = n;
    if (stream_cur_used_up(s))
        stream_install(s);
}

/* One refill (buffer > 0), by the refill thread or by a caller that found
 * the stream empty: fetches without the lock, hands the range out, and
 * returns whether it worked. The caller holds the mutex, no fetch is in
 * flight; `fetching` keeps the source to one call at a time. Afterwards
 * the refill thread is told (it may want to fetch ahead now), and, if
 * waiters are left and the source is not failing, the first of them, to
 * lead the next fetch. */
static bool stream_refill_once(stream *s)
{
    assert(!s->fetching && s->buffer > 0);
    s->fetching = true;
    if (s->size_max)
        stream_maybe_shrink(s);
    uint32_t n = stream_refill_count(s);
    pthread_mutex_unlock(&s->mu);
    uint64_t first = 0;
    char e[sizeof s->st.last_err] = "";
    int rc = s->src(s->ctx, n, &first, e, sizeof e);
    pthread_mutex_lock(&s->mu);
    bool ok = rc == 0 && stream_range_ok(s, first, n, e, sizeof e);
    if (ok) {
        stream_note_range(s, first, n);
        stream_accept(s, first, n);
    } else {
        stream_note_failure(s, e);
    }
    s->fetching = false;
    pthread_cond_signal(&s->work);
    if (s->q_head != NULL && !s->st.waiting)
        pthread_cond_signal(&s->q_head->cv);
    return ok;
}

/* The refill thread: sleeps until the stream wants a range (and no caller
 * is fetching one), fetches it, and on failure retries with a capped
 * backoff until it works or the stream stops. While the source fails,
 * callers leave the retries to it (see stream_next_wait). */
static void *stream_refill_main(void *arg)
{
    stream *s = arg;
    uint32_t backoff = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stopping && (s->fetching || !stream_wants_refill(s)))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->stopping)
            break;
        if (stream_refill_once(s)) {
            backoff = 0;
            continue;
        }
        backoff = backoff == 0 ? STREAM_BACKOFF_MIN_MS
                  : backoff * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : backoff * 2;
        struct timespec dl = stream_deadline(backoff);
        while (!s->stopping && !stream_passed(&dl))
            (void)pthread_cond_timedwait(&s->work, &s->mu, &dl);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- construction ---- */

/* Frees what stream_new allocated; shared by stream_free and the failure
 * paths of the constructors. */
static void stream_destroy(stream *s)
{
    assert(s->q_head == NULL);
    pthread_cond_destroy(&s->work);
    pthread_condattr_destroy(&s->cattr);
    pthread_mutex_destroy(&s->mu);
    if (s->ctx_free != NULL)
        s->ctx_free(s->ctx);
    free(s);
}

/* Both constructors end here; ctx_free (may be NULL) frees ctx with the
 * stream, including when this fails. Aligned: the fast path's fields sit
 * on cache lines of their own. */
static stream *stream_new_owned(stream_source_fn src, void *ctx, void (*ctx_free)(void *),
                                uint32_t buffer, char *err, size_t errlen)
{
    stream *s = aligned_alloc(alignof(stream), sizeof *s);
    if (s == NULL) {
        if (ctx_free != NULL)
            ctx_free(ctx);
        policy_seterr(err, errlen, "out of memory");
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->src = src;
    s->ctx = ctx;
    s->ctx_free = ctx_free;
    s->buffer = buffer;
    s->size = buffer;
    clock_gettime(CLOCK_MONOTONIC, &s->last_refill);
    /* Generation 0: an empty chunk, so that the first claim fails. */
    atomic_init(&s->word, 0);
    for (int i = 0; i < STREAM_RING; i++) {
        atomic_init(&s->ring[i].tag, i == 0 ? 1 : 0);
        atomic_init(&s->ring[i].base, 0);
        atomic_init(&s->ring[i].size, 0);
        atomic_init(&s->ring[i].trigger, STREAM_NO_TRIGGER);
    }
    pthread_condattr_init(&s->cattr);
    pthread_condattr_setclock(&s->cattr, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, &s->cattr);
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

/* buffer 0: the queue's head, when no fetch is in flight, leads: it fetches
 * one ID per waiter queued (itself included, SEQD_COUNT_MAX at most) and
 * serves them in order. Every waiter of a fetch queued before it started,
 * so each ID is as fresh as a plain client_fetch made by its caller (a call
 * that started after another client's fetch returned gets a higher ID):
 * real-time order holds, and IDs of a waiter that gave up meanwhile are
 * dropped (a gap), never kept for a later caller. On failure the batch
 * stays queued in front and the leader retries with backoff until its own
 * deadline, then hands the lead on. Entered and left with the mutex held;
 * `me` is the head. */
static int stream_lead(stream *s, stream_waiter *me, const struct timespec *dl,
                       uint32_t timeout_ms, char *err, size_t errlen)
{
    assert(s->q_head == me && !s->fetching && s->batch_n == 0);
    s->fetching = true;
    uint32_t backoff = STREAM_BACKOFF_MIN_MS;
    int rc;
    for (;;) {
        uint32_t n = 0;
        for (stream_waiter *w = s->q_head; w != NULL && n < SEQD_COUNT_MAX; w = w->next, n++)
            w->in_batch = true;
        s->batch_n = n;
        pthread_mutex_unlock(&s->mu);
        uint64_t first = 0;
        char e[sizeof s->st.last_err] = "";
        int src_rc = s->src(s->ctx, n, &first, e, sizeof e);
        pthread_mutex_lock(&s->mu);
        if (src_rc == 0 && stream_range_ok(s, first, n, e, sizeof e)) {
            stream_note_range(s, first, n);
            /* The batch is the queue's front (waiters only join at the back,
             * and only served ones leave from the front), shrunk by those
             * that timed out. */
            assert(s->q_head == me);
            for (uint64_t id = first; s->batch_n > 0; id++)
                stream_serve_head(s, id);
            rc = CLIENT_OK;
            break;
        }
        stream_note_failure(s, e);
        for (stream_waiter *w = s->q_head; w != NULL && s->batch_n > 0; w = w->next)
            if (w->in_batch) {
                w->in_batch = false;
                s->batch_n--;
            }
        if (stream_passed(dl)) {
            stream_q_unlink(s, me);
            stream_timeout_err(s, timeout_ms, err, errlen);
            rc = CLIENT_EFAIL;
            break;
        }
        /* Sleep the backoff, but no further than the deadline, so that the
         * last attempt is made right at it. */
        pthread_mutex_unlock(&s->mu);
        struct timespec wake = stream_deadline(backoff);
        if (wake.tv_sec > dl->tv_sec || (wake.tv_sec == dl->tv_sec && wake.tv_nsec > dl->tv_nsec))
            wake = *dl;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR)
            ;
        pthread_mutex_lock(&s->mu);
        backoff = backoff * 2 > STREAM_BACKOFF_MAX_MS ? STREAM_BACKOFF_MAX_MS : backoff * 2;
    }
    s->fetching = false;
    if (s->q_head != NULL)
        pthread_cond_signal(&s->q_head->cv);   /* the next leader */
    return rc;
}

/* buffer 0: queues, then waits to be served or to lead. Mutex held. */
static int stream_next_direct(stream *s, uint64_t *id, uint32_t timeout_ms, char *err,
                              size_t errlen)
{
    struct timespec dl = stream_deadline(timeout_ms);
    stream_waiter me;
    stream_waiter_init(s, &me);
    stream_q_push(s, &me);
    s->st.stalls++;
    int rc;
    for (;;) {
        if (me.served) {
            rc = CLIENT_OK;
            break;
        }
        if (!s->fetching && s->q_head == &me) {
            rc = stream_lead(s, &me, &dl, timeout_ms, err, errlen);
            break;
        }
        if (stream_passed(&dl)) {
            stream_q_unlink(s, &me);
            if (!s->fetching && s->q_head != NULL)
                pthread_cond_signal(&s->q_head->cv);
            stream_timeout_err(s, timeout_ms, err, errlen);
            rc = CLIENT_EFAIL;
            break;
        }
        (void)pthread_cond_timedwait(&me.cv, &s->mu, &dl);
    }
    if (rc == CLIENT_OK)
        *id = me.id;
    pthread_cond_destroy(&me.cv);
    return rc;
}

/* buffer > 0, nothing to claim: the pending range if there is one, else
 * queue and wait to be served. The first waiter fetches the range itself
 * when no fetch is in flight and the source is not failing: on a machine
 * busy with the consumers, waking the refill thread and waiting for it to
 * be scheduled costs far more than the fetch of a fast source, and every
 * thread that stalls meanwhile sleeps and must be woken. While the source
 * fails, the refill thread's backoff paces the retries. Mutex held. */
static int stream_next_wait(stream *s, uint64_t *id, uint32_t timeout_ms, char *err,
                            size_t errlen)
{
    for (;;) {
        if (stream_claim(s, id, true))
            return CLIENT_OK;
        if (s->pend_left == 0)
            break;
        stream_install(s);
    }
    /* Claims fail under the mutex only when the chunk is used up: no one
     * else installs meanwhile. */
    assert(stream_cur_used_up(s));
    s->st.stalls++;
    if (!s->st.waiting)
        stream_grow(s);   /* slow, not failing: bigger ranges */
    struct timespec dl = stream_deadline(timeout_ms);
    stream_waiter me;
    stream_waiter_init(s, &me);
    stream_q_push(s, &me);
    int rc;
    for (;;) {
        if (me.served) {
            *id = me.id;
            rc = CLIENT_OK;
            break;
        }
        if (!s->fetching && !s->st.waiting && s->q_head == &me) {
            (void)stream_refill_once(s);
            continue;
        }
        if (stream_passed(&dl)) {
            stream_q_unlink(s, &me);
            if (!s->fetching && !s->st.waiting && s->q_head != NULL)
                pthread_cond_signal(&s->q_head->cv);
            stream_timeout_err(s, timeout_ms, err, errlen);
            rc = CLIENT_EFAIL;
            break;
        }
        /* The refill thread retries a failing source; it must know that
         * someone waits even if it missed the chunk's trigger. */
        if (s->st.waiting)
            pthread_cond_signal(&s->work);
        (void)pthread_cond_timedwait(&me.cv, &s->mu, &dl);
    }
    pthread_cond_destroy(&me.cv);
    return rc;
}

int stream_next(stream *s, uint64_t *id, uint32_t timeout_ms, char *err, size_t errlen)
{
    /* buffer 0 never has a chunk to claim: straight to the queue. */
    if (s->buffer > 0 && stream_claim(s, id, false))
        return CLIENT_OK;
    pthread_mutex_lock(&s->mu);
    int rc = s->buffer == 0 ? stream_next_direct(s, id, timeout_ms, err, errlen)
                            : stream_next_wait(s, id, timeout_ms, err, errlen);
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

/* ids: what retired chunks and waiters got, plus the current chunk's
 * claimed offset (the generation cannot change under the mutex). */
void stream_stats(stream *s, struct stream_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->ids = s->ids_done +
               (atomic_load_explicit(&s->word, memory_order_relaxed) & STREAM_OFF_MASK);
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
