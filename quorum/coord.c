/* quorum/coord.c — the coordinator of DESIGN.md §2; see coord.h.
 *
 * Per sequence S (struct cseq, held only while it is in use: see STATE AND
 * EVICTION below) a FIFO queue of requests and up to `pipeline` rounds in
 * flight (struct cround, allocated when the round starts and freed when it
 * ends, each with its own phase, reqid, batch and R timer). A round serves
 * a batch: queued requests in arrival order, up to SEQD_COUNT_MAX IDs.
 *
 *   queue --KICK (timer 0) or a round's end--> pump: start rounds
 *   round: [READ --Q VALUEs-->] ACCEPT --Q fresh ACKs--> commit: slice
 *       [h, h+n) in arrival order
 *   round: too many NACKs/errors, reply older than R, timer R --> failed:
 *       batch back into the queue (arrival order kept), h = the largest
 *       value seen; the sequence drains (starts nothing until every round
 *       in flight has ended), then retries at once, or after a jittered
 *       BACKOFF from the second failure in a row; requests past their
 *       deadline end with ERR_TIMEOUT.
 *
 * Safety does not depend on how h is chosen (read quorum, the fast path's
 * learned value, the `new` of the round started just before, the largest
 * NACK): a commit of (h, h+n) needs Q members that had cur <= h when they
 * accepted; any earlier commit (h1,v1) left Q members with cur >= v1; the
 * two quorums intersect, so h >= v1 and the ranges are disjoint. Real-time
 * order follows from the same intersection: if (h1,v1) committed before
 * this round's ACCEPTs were sent, the common member already had cur >= v1
 * when it accepted, so h >= v1. The choice of h only decides how often a
 * round is refused (a stale learned value costs one NACKed round, after
 * which h is the largest cur seen).
 *
 * PIPELINING (DESIGN.md §2: "a member may have several rounds in flight,
 * each safe on its own"). While rounds of S are in ACCEPT, the requests
 * queued since start another round at once, with h = the `new` of the
 * round started last (optimistic: the members that accept the earlier
 * round then hold exactly that cur, so they accept this one too, and their
 * log appends for both share one fsync). Why this keeps every guarantee:
 * - Disjointness: each round is a round of the rule, committed only by its
 *   own Q fresh ACKs (its own reqid and new_); the argument above holds
 *   for each pair of rounds, pipelined or not, from this coordinator or
 *   another. Nothing is learned from a round that did not commit except
 *   values used as h, and any h is safe.
 * - Real-time order: a request is put into a round only when that round
 *   starts (its ACCEPTs are sent after the request arrived), never into a
 *   round already sent. So if fetch A completed (its round committed
 *   (h1,v1)) before fetch B arrived, B's round was started after that
 *   commit, and by the intersection argument above B's h >= v1. That
 *   pairwise argument is all real-time order asks, and it does not care
 *   what other rounds are in flight. Rounds started earlier may commit
 *   later (round k+1's requests may complete before round k's), but their
 *   requests had arrived before B's round started, so they are concurrent
 *   with B, and concurrent fetches may complete in either order.
 * - A failed round (NACK, timeout): its requests go back into the queue by
 *   arrival number; later rounds in flight may still commit (the failed
 *   round's range, if some members accepted it, is then a gap: allowed).
 *   The sequence starts nothing new until every round in flight has ended
 *   (draining), then retries with h = the largest value seen (NACKed cur,
 *   every `new` it sent, what it learned), exactly as a lone round would.
 * - Near 2^64: a pipelined round is started only if its batch fits above
 *   its h; otherwise the batch waits for the pipeline to drain and the
 *   normal path (read first when it does not fit) decides exhaustion.
 * - A round in READ has no `new` to stack on: nothing pipelines behind it.
 *
 * What safety does depend on: counting only ACKs that answer this round
 * (fresh reqids per phase, ack.new_ checked) and only while the round is
 * younger than R by env->now_us at the moment of counting. A recovering
 * member waits 2R before it reads (recovery.c), which is sound only if no
 * round counts an ACK older than R — a timer alone would not ensure that,
 * because a stalled process may run its reply handlers before its timers.
 *
 * REQIDS. Every phase of every round gets the next value of one counter
 * per coordinator (bit 63 clear: Q_REQID_RECOVERY belongs to recovery;
 * a random start below 2^62, so that a restarted member does not begin
 * where its previous process was, and 2^62 phases before it could wrap).
 * An id is never given twice by one coordinator, so an index reqid ->
 * round in flight (c->inflight) is all a reply is matched by: a reply to a
 * phase that ended, to a round that was freed or to a sequence that was
 * evicted finds nothing there and is counted as late (st.late_replies),
 * never as a reply to a newer round of the same sequence.
 *
 * STATE AND EVICTION. A sequence's state (cseq: queue, rounds in flight,
 * the learned h of the fast path, the failure streak) is created when a
 * request for it arrives. When it has no round in flight, no queued
 * request and no timer of its own pending, it is idle: it goes to the
 * tail of the idle list (c->idle_head..tail, in the order it became idle,
 * so by idle_since), and leaves it at its next request. A sweep timer
 * drops the sequences that stayed idle for idle_us (default max(5 s, 4R)),
 * at most COORD_SWEEP_SLICE per firing, so that no firing is longer than
 * a bounded slice, however many sequences expire together (the next
 * slice runs from a 0 timer, after what the loop has queued meanwhile).
 * Why dropping a sequence is safe: see seq_evict.
 *
 * done callbacks may call coord_submit, never coord_fail_all / coord_free.
 * While they run (s->busy) a submit only queues; the code that ran them
 * pumps the queue afterwards.
 */
#include "coord.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "qmem.h"

#define COORD_BACKOFF_BASE_US 200u
#define COORD_BACKOFF_CAP_US 20000u
#ifndef COORD_PIPELINE_DEFAULT
#define COORD_PIPELINE_DEFAULT 4
#endif

typedef struct creq {
    struct creq *next;
    uint64_t arrival;       /* order of submission, kept when a batch returns */
    uint32_t count;         /* a fetch's IDs; 0 for a floor request */
    uint64_t floor;         /* a floor request (coord_submit_floor): its V; else 0 */
    bool read;              /* a read request (coord_submit_read) */
    uint64_t span;          /* IDs of the round it is in: count, or for a floor
                               request V - h (1 when h >= V), set at ACCEPT */
    uint64_t deadline;
    bool storage;           /* a round of it failed on members' disk errors */
    coord_done_fn done;
    void *arg;
} creq;

typedef struct creq_list {
    creq *head, *tail;
} creq_list;

enum cround_phase {
    CR_READ,      /* READ sent to all, collecting the first Q VALUEs */
    CR_ACCEPT     /* ACCEPT sent to all, counting ACKs */
};

struct cseq;

/* A round in flight: allocated by round_new, freed by round_end, and not
 * reachable from anywhere (s->rounds, c->inflight, its timer) once freed. */
typedef struct cround {
    struct cseq *s;
    struct cround *next;    /* the sequence's rounds in flight, oldest first */
    enum cround_phase phase;
    creq_list batch;        /* served by this round, arrival order */
    void *timer;            /* the phase's R */
    uint64_t reqid;         /* id of the phase in flight (in c->inflight) */
    uint32_t answered;      /* members that replied in this phase */
    int oks, bad;
    int storage_errs;       /* members that could not write their log */
    uint64_t sent_us;
    uint64_t start_us;      /* when the round started: its latency */
    uint64_t h, new_;       /* READ: max VALUE so far; ACCEPT: the round */
    uint64_t seen;          /* largest cur seen in this phase's replies */
    uint64_t cur[SEQD_MAX_MEMBERS];  /* ACCEPT: each answering member's cur after it */
    uint32_t known;         /* members whose cur[] is set */
} cround;

_Static_assert(SEQD_MAX_MEMBERS <= sizeof(uint32_t) * 8,
               "cround.answered and cround.known hold one bit per member");

/* One sequence's state: about 150 bytes and its name, while held. */
typedef struct cseq {
    struct cseq *hnext;     /* chain of its bucket in c->seqs */
    struct cseq *iprev, *inext;  /* the idle list, while idle */
    struct coord *c;
    creq_list queue;        /* waiting, arrival order */
    cround *rounds;         /* in flight, oldest first (nflight of them) */
    void *step_timer;       /* KICK (0) or BACKOFF */
    void *deadline_timer;
    uint64_t deadline_at;   /* when deadline_timer fires */
    uint64_t learned;       /* h for the fast path, if learned_ok */
    uint64_t head;          /* new of the last ACCEPT sent, while nflight > 0 */
    uint64_t storage_fail_us;  /* when a round last failed on disk errors, 0 if never */
    uint64_t idle_since;    /* on the idle list: since when */
    int nflight;            /* rounds in flight */
    int busy;               /* done callbacks may be running: only queue */
    int fails;              /* failed rounds in a row */
    bool draining;          /* a round failed: start nothing until nflight == 0 */
    bool backoff;           /* step_timer is a BACKOFF, not a KICK */
    bool learned_ok;
    bool head_ok;
    bool idle;              /* on the idle list */
    uint8_t name_len;
    char name[];            /* name_len bytes and a NUL */
} cseq;

/* Sweeps drop at most this many idle sequences per timer firing. */
#define COORD_SWEEP_SLICE 256
#define COORD_IDLE_MIN_US 5000000u
#define COORD_MIN_BUCKETS 64u

struct coord {
    q_env env;
    bool fast_path, coalescing;
    bool floor_trusts_reads;    /* mutation (coord.h) */
    int pipeline;
    coord_stats st;
    coord_round_fn observe;     /* NULL: nobody measures rounds */
    void *observe_arg;
    /* Sequences held: chained hash by name (XXH3 with a random seed, so
     * that clients cannot choose colliding names), at most one per bucket
     * on average; resized by doubling / halving, O(held) at that moment,
     * amortized O(1) per insertion or eviction. */
    cseq **seqs;
    size_t nbuckets, nheld;
    uint64_t hash_seed;
    int frozen;                 /* > 0: no resize (an iteration is running) */
    /* Rounds in flight by reqid: open addressing, linear probing, at most
     * half full, deletion by backward shift (no tombstones). */
    cround **inflight;
    size_t inflight_cap, ninflight;
    uint64_t next_reqid;
    uint64_t next_arrival;
    /* Idle sequences, by idle_since, and the timer that evicts them. */
    cseq *idle_head, *idle_tail;
    uint64_t idle_us;
    void *sweep_timer;
};

static void seq_pump(cseq *s);
static void seq_settle(cseq *s);

coord *coord_new(const q_env *env)
{
    coord *c = q_xcalloc(1, sizeof *c);
    c->env = *env;
    c->fast_path = true;
    c->coalescing = true;
    c->pipeline = COORD_PIPELINE_DEFAULT;
    c->nbuckets = COORD_MIN_BUCKETS;
    c->seqs = q_xcalloc(c->nbuckets, sizeof *c->seqs);
    c->inflight_cap = COORD_MIN_BUCKETS;
    c->inflight = q_xcalloc(c->inflight_cap, sizeof *c->inflight);
    /* Random first id: a restarted member does not reuse its old ids. One
     * draw for both it and the hash seed (a splitmix64 step apart), so
     * that the simulator's seeds replay the schedules they always did. */
    uint64_t x = env->random(env->ctx);
    c->next_reqid = (x >> 2) | 1;
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    c->hash_seed = x ^ (x >> 31);
    c->idle_us = 4 * env->round_us > COORD_IDLE_MIN_US ? 4 * env->round_us : COORD_IDLE_MIN_US;
    return c;
}

void coord_set_fast_path(coord *c, bool on) { c->fast_path = on; }
void coord_set_coalescing(coord *c, bool on) { c->coalescing = on; }
void coord_get_stats(const coord *c, coord_stats *s)
{
    *s = c->st;
    s->held = c->nheld;
}

void coord_set_pipeline(coord *c, int depth)
{
    c->pipeline = depth < 1 ? 1 : depth > COORD_PIPELINE_MAX ? COORD_PIPELINE_MAX : depth;
}

static uint64_t coord_now(const coord *c) { return c->env.now_us(c->env.ctx); }

void coord_set_floor_trusts_reads(coord *c, bool on) { c->floor_trusts_reads = on; }

void coord_set_round_observer(coord *c, coord_round_fn fn, void *arg)
{
    c->observe = fn;
    c->observe_arg = arg;
}

static void round_observe(const cround *r, bool committed)
{
    coord *c = r->s->c;
    if (c->observe)
        c->observe(c->observe_arg, committed, coord_now(c) - r->start_us);
}

static void *coord_timer(coord *c, uint64_t after_us, q_timer_fn fn, void *arg)
{
    void *t = c->env.timer_start(c->env.ctx, after_us, fn, arg);
    if (!t)
        q_oom();
    return t;
}

static void coord_timer_stop(coord *c, void **t)
{
    if (*t) {
        c->env.timer_stop(c->env.ctx, *t);
        *t = NULL;
    }
}

/* ---- request lists ------------------------------------------------------ */

static void list_push(creq_list *l, creq *r)
{
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

/* Puts the requests of `back` (a batch returning from a round) into l by
 * arrival number, both lists being in arrival order: rounds may fail in
 * any order, and the queue stays first-come first-served. O(len). */
static void list_merge(creq_list *l, creq_list *back)
{
    creq_list out = {0};
    creq *a = l->head, *b = back->head;
    while (a || b) {
        creq *r;
        if (a && (!b || a->arrival < b->arrival)) {
            r = a;
            a = a->next;
        } else {
            r = b;
            b = b->next;
        }
        list_push(&out, r);
    }
    *l = out;
    back->head = back->tail = NULL;
}

static creq_list list_take(creq_list *l)
{
    creq_list out = *l;
    l->head = l->tail = NULL;
    return out;
}

/* Ends every request of a detached list; callbacks may queue new ones. */
static void list_finish(coord *c, creq_list l, int err)
{
    for (creq *r = l.head, *next; r; r = next) {
        next = r->next;
        if (err == ERR_TIMEOUT)
            c->st.timeouts++;
        r->done(r->arg, err, 0, 0);
        free(r);
    }
}

/* Runs done callbacks with the sequence marked busy, so that a submit
 * from inside them only queues (the caller pumps afterwards). */
static void seq_finish(cseq *s, creq_list l, int err)
{
    s->busy++;
    list_finish(s->c, l, err);
    s->busy--;
}

static uint64_t list_sum(const creq_list *l)
{
    uint64_t sum = 0;
    for (const creq *r = l->head; r; r = r->next)
        sum += r->span;
    return sum;
}

/* What a request needs of a round that starts at h. A floor request is
 * alone in its batch (seq_take_batch) and needs [h, V), or, when the
 * sequence is already at or past V, one ID: the floor holds once a
 * quorum durably holds cur >= V, and seeing h >= V (learned, or the
 * largest VALUE of a read) does not show that — the value read may be a
 * round that never reached a quorum. Committing [h, h+1) does show it. */
static uint64_t req_need(const creq *r, uint64_t h)
{
    if (!r->floor)
        return r->count;
    return r->floor > h ? r->floor - h : 1;
}

/* A batch's IDs if its round starts at h: the floor request's need, or
 * the fetches' counts. */
static uint64_t batch_need(const creq_list *l, uint64_t h)
{
    if (l->head && l->head->floor)
        return req_need(l->head, h);
    uint64_t sum = 0;
    for (const creq *r = l->head; r; r = r->next)
        sum += r->count;
    return sum;
}

/* ---- deadlines ---------------------------------------------------------- */

static void seq_deadline_fire(void *arg);

static uint64_t list_min_deadline(const creq_list *l, uint64_t m)
{
    for (const creq *r = l->head; r; r = r->next)
        if (r->deadline < m)
            m = r->deadline;
    return m;
}

/* One timer per sequence, at the earliest deadline of its requests, so a
 * request ends near its deadline even while its round waits for replies.
 * O(requests) per call: the queue and batches of one sequence are short,
 * because each round serves the whole queue. */
static void seq_arm_deadline(cseq *s)
{
    coord *c = s->c;
    uint64_t m = list_min_deadline(&s->queue, UINT64_MAX);
    for (const cround *r = s->rounds; r; r = r->next)
        m = list_min_deadline(&r->batch, m);
    if (m == UINT64_MAX) {
        coord_timer_stop(c, &s->deadline_timer);
        return;
    }
    if (s->deadline_timer && s->deadline_at == m)
        return;
    coord_timer_stop(c, &s->deadline_timer);
    uint64_t now = coord_now(c);
    s->deadline_at = m;
    s->deadline_timer = coord_timer(c, m > now ? m - now : 0, seq_deadline_fire, s);
}

static void list_split_expired(creq_list *l, uint64_t now, creq_list *out)
{
    creq_list keep = {0};
    for (creq *r = l->head, *next; r; r = next) {
        next = r->next;
        list_push(r->deadline <= now ? out : &keep, r);
    }
    *l = keep;
}

/* Requests past their deadline end with ERR_TIMEOUT. Ones in a round in
 * flight are dropped from its batch: if the round commits, their part of
 * the range is a gap, which is allowed; duplicates are not. */
static void seq_expire(cseq *s)
{
    creq_list dead = {0};
    uint64_t now = coord_now(s->c);
    list_split_expired(&s->queue, now, &dead);
    for (cround *r = s->rounds; r; r = r->next)
        list_split_expired(&r->batch, now, &dead);
    /* Requests that waited behind rounds lost to disk errors did not
     * time out for any other reason either: report the disk. */
    bool disk = s->storage_fail_us && now - s->storage_fail_us < 2 * s->c->env.round_us;
    creq_list storage = {0}, timeout = {0};
    for (creq *r = dead.head, *next; r; r = next) {
        next = r->next;
        list_push(r->storage || disk ? &storage : &timeout, r);
    }
    seq_finish(s, storage, ERR_STORAGE);
    seq_finish(s, timeout, ERR_TIMEOUT);
    seq_arm_deadline(s);
}

static void seq_deadline_fire(void *arg)
{
    cseq *s = arg;
    s->deadline_timer = NULL;
    seq_expire(s);
    seq_pump(s);   /* a callback may have submitted */
    seq_settle(s);
}

/* ---- rounds ------------------------------------------------------------- */

static void round_timer_fire(void *arg);

/* ---- the index reqid -> round in flight --------------------------------- */

static size_t inflight_slot(const coord *c, uint64_t reqid)
{
    return (size_t)((reqid * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (c->inflight_cap - 1);
}

static cround *inflight_find(const coord *c, uint64_t reqid)
{
    for (size_t i = inflight_slot(c, reqid);; i = (i + 1) & (c->inflight_cap - 1)) {
        cround *r = c->inflight[i];
        if (!r || r->reqid == reqid)
            return r;
    }
}

static void inflight_place(coord *c, cround *r)
{
    size_t i = inflight_slot(c, r->reqid);
    while (c->inflight[i]) {
        assert(c->inflight[i]->reqid != r->reqid);   /* never given twice */
        i = (i + 1) & (c->inflight_cap - 1);
    }
    c->inflight[i] = r;
}

/* O(cap) when it doubles or halves: amortized over the insertions or
 * removals since the last resize. */
static void inflight_resize(coord *c, size_t cap)
{
    cround **old = c->inflight;
    size_t oldcap = c->inflight_cap;
    c->inflight = q_xcalloc(cap, sizeof *c->inflight);
    c->inflight_cap = cap;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i])
            inflight_place(c, old[i]);
    free(old);
}

static void inflight_add(coord *c, cround *r)
{
    if (2 * (c->ninflight + 1) > c->inflight_cap)
        inflight_resize(c, 2 * c->inflight_cap);
    inflight_place(c, r);
    c->ninflight++;
}

/* Backward-shift deletion: the entries after the hole that probed past it
 * move up, so that every lookup still finds them and no tombstone stays. */
static void inflight_remove(coord *c, cround *r)
{
    size_t mask = c->inflight_cap - 1, i = inflight_slot(c, r->reqid);
    while (c->inflight[i] != r) {
        assert(c->inflight[i]);   /* r is in the index */
        i = (i + 1) & mask;
    }
    c->inflight[i] = NULL;
    for (size_t j = (i + 1) & mask; c->inflight[j]; j = (j + 1) & mask) {
        size_t home = inflight_slot(c, c->inflight[j]->reqid);
        /* j's entry may fill the hole at i unless its home lies in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            c->inflight[i] = c->inflight[j];
            c->inflight[j] = NULL;
            i = j;
        }
    }
    c->ninflight--;
    if (c->inflight_cap > COORD_MIN_BUCKETS && 8 * c->ninflight < c->inflight_cap)
        inflight_resize(c, c->inflight_cap / 2);
}

/* ---- rounds ------------------------------------------------------------- */

static void round_timer_fire(void *arg);

/* The next id of the coordinator's counter (see REQIDS at the top). */
static uint64_t coord_next_reqid(coord *c)
{
    uint64_t id = c->next_reqid++;
    assert(!(id & Q_REQID_RECOVERY) && id != 0);
    return id;
}

/* A fresh id per phase, so replies to an earlier phase (or another round)
 * are recognized as late by their reqid alone. */
static void round_new_phase(cround *r, enum cround_phase phase)
{
    coord *c = r->s->c;
    if (r->reqid)
        inflight_remove(c, r);
    r->reqid = coord_next_reqid(c);
    inflight_add(c, r);
    r->phase = phase;
    r->answered = 0;
    r->oks = r->bad = r->storage_errs = 0;
    r->seen = 0;
    r->known = 0;
    r->sent_us = coord_now(c);
    coord_timer_stop(c, &r->timer);
    r->timer = coord_timer(c, c->env.round_us, round_timer_fire, r);
}

/* A new round of s, in flight from now on (its phase is sent by
 * round_send_read / round_send_accept, or it ends at once by round_end). */
static cround *round_new(cseq *s)
{
    cround *r = q_xcalloc(1, sizeof *r);
    r->s = s;
    r->phase = CR_READ;
    r->start_us = coord_now(s->c);
    cround **tail = &s->rounds;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    s->nflight++;
    return r;
}

/* Ends the round and frees it: out of the sequence's list, out of the
 * index (so a reply to it is late from now on), its timer stopped. Its
 * batch must have been taken already. The caller must not touch r after
 * this: every caller reads what it needs (h, new_, s) first. */
static void round_end(cround *r)
{
    cseq *s = r->s;
    assert(!r->batch.head && !r->batch.tail);
    assert(s->nflight > 0);
    coord_timer_stop(s->c, &r->timer);
    if (r->reqid)
        inflight_remove(s->c, r);
    cround **p = &s->rounds;
    while (*p != r) {
        assert(*p);   /* r is one of s's rounds */
        p = &(*p)->next;
    }
    *p = r->next;
    s->nflight--;
    free(r);
}

static void seq_get_name(const cseq *s, struct seqd_name *n)
{
    n->len = s->name_len;
    memcpy(n->s, s->name, (size_t)s->name_len + 1);
}

/* A phase's request to every member, this one last. The transport carries
 * messages in the order they are sent, and the local vote has the shortest
 * way back (no network hop, no remote loop): sending it last lets the
 * peers' disk writes start first, so that the slowest votes of a quorum
 * start earliest. Order never matters for safety. */
static void coord_send_all(coord *c, const seqd_msg *m)
{
    int n = c->env.n, self = c->env.self;
    for (int k = 1; k <= n; k++)
        c->env.send(c->env.ctx, (self + k) % n, m);
}

static void round_send_read(cround *r)
{
    coord *c = r->s->c;
    round_new_phase(r, CR_READ);
    r->h = 0;
    c->st.reads++;
    seqd_msg m = {.type = MSG_READ, .reqid = r->reqid};
    seq_get_name(r->s, &m.u.read.name);
    coord_send_all(c, &m);
}

/* Takes the next batch off the queue: arrival order, at most
 * SEQD_COUNT_MAX IDs in all (one request alone always fits). */
static void seq_take_batch(cseq *s, creq_list *batch)
{
    uint64_t sum = 0;
    while (s->queue.head) {
        creq *r = s->queue.head;
        /* Floor and read requests round alone: a floor's span depends on
         * h, and a read ends after its READ phase. */
        if (batch->head && (sum + r->count > SEQD_COUNT_MAX || !s->c->coalescing || r->floor ||
                            r->read || batch->head->floor || batch->head->read))
            break;
        s->queue.head = r->next;
        if (!s->queue.head)
            s->queue.tail = NULL;
        list_push(batch, r);
        sum += r->count;
    }
}

/* ACCEPT(h, h+n) for the round's batch. When called with the learned or
 * pipelined h the batch always fits (checked by the caller); otherwise h
 * comes from a read, so it is a value some member really holds: a request
 * that cannot fit below 2^64-1 above it never will (cur only grows) and
 * gets ERR_EXHAUSTED. If the batch as a whole does not fit, its tail waits
 * for a later round. Returns false (slot freed) if nothing was left to
 * send. */
static bool round_send_accept(cround *r, uint64_t h)
{
    cseq *s = r->s;
    coord *c = s->c;
    uint64_t room = UINT64_MAX - h, sum = 0;
    creq_list all = list_take(&r->batch), rest = {0}, exhausted = {0};
    for (creq *q = all.head, *next; q; q = next) {
        next = q->next;
        uint64_t need = req_need(q, h);
        if (need > room)
            list_push(&exhausted, q);
        else if (!rest.head && sum + need <= room) {
            q->span = need;
            list_push(&r->batch, q);
            sum += need;
        } else
            list_push(&rest, q);
    }
    list_merge(&s->queue, &rest);
    if (c->floor_trusts_reads && r->batch.head && r->batch.head->floor &&
        h >= r->batch.head->floor) {   /* the mutation: no round */
        creq_list f = list_take(&r->batch);
        round_end(r);
        c->st.floors++;
        s->busy++;
        f.head->done(f.head->arg, 0, h, 0);
        free(f.head);
        s->busy--;
        seq_finish(s, exhausted, ERR_EXHAUSTED);
        return false;
    }
    if (!r->batch.head) {
        round_end(r);
        seq_finish(s, exhausted, ERR_EXHAUSTED);
        return false;
    }
    assert(sum >= 1 && sum <= room);
    round_new_phase(r, CR_ACCEPT);
    r->h = h;
    r->new_ = h + sum;
    assert(r->new_ > r->h);
    s->head = r->new_;
    s->head_ok = true;
    c->st.rounds++;
    seqd_msg m = {.type = MSG_ACCEPT, .reqid = r->reqid};
    m.u.accept.expect = r->h;
    m.u.accept.new_ = r->new_;
    seq_get_name(s, &m.u.accept.name);
    coord_send_all(c, &m);
    seq_finish(s, exhausted, ERR_EXHAUSTED);
    return true;
}

static bool seq_reading(const cseq *s)
{
    for (const cround *r = s->rounds; r; r = r->next)
        if (r->phase == CR_READ)
            return true;
    return false;
}

/* Starts one round for the head of the queue, if the pipeline allows.
 * With nothing in flight: the fast path (learned h, when the batch fits
 * above it: the learned value may be above every member's cur, the `new`
 * of a round nobody accepted, so near 2^64 a batch that does not fit reads
 * first rather than calling the sequence exhausted) or a read. With rounds
 * in ACCEPT: h = the last round's new (see PIPELINING at the top). Returns
 * false when nothing more can start now. */
static bool seq_start_one(cseq *s)
{
    coord *c = s->c;
    if (!s->queue.head || s->draining || s->backoff || s->nflight >= c->pipeline)
        return false;
    bool idle = s->nflight == 0;
    if (!idle && (!c->fast_path || !s->head_ok || seq_reading(s)))
        return false;
    creq_list batch = {0};
    seq_take_batch(s, &batch);
    bool read = batch.head && batch.head->read;
    if (!idle && (read || batch_need(&batch, s->head) > UINT64_MAX - s->head)) {
        list_merge(&s->queue, &batch);   /* waits for the pipeline to drain */
        return false;
    }
    cround *r = round_new(s);   /* CR_READ; round_send_* set the real phase */
    r->batch = batch;
    assert(s->nflight <= c->pipeline && c->pipeline <= COORD_PIPELINE_MAX);
    if (read)
        round_send_read(r);   /* a read is a READ phase, never the learned value */
    else if (!idle)
        round_send_accept(r, s->head);   /* fits: always sends */
    else if (c->fast_path && s->learned_ok &&
             batch_need(&r->batch, s->learned) <= UINT64_MAX - s->learned)
        round_send_accept(r, s->learned);
    else
        round_send_read(r);
    return true;
}

/* Serves the queue: expired requests end, then rounds start while the
 * pipeline has room. Never runs inside done callbacks (busy): their
 * caller pumps once they are over. */
static void seq_pump(cseq *s)
{
    if (s->busy)
        return;
    s->busy++;
    seq_expire(s);
    s->busy--;
    while (seq_start_one(s)) {
    }
    if (s->nflight == 0)
        s->head_ok = false;
}

static void seq_step_fire(void *arg)
{
    cseq *s = arg;
    s->step_timer = NULL;
    s->backoff = false;
    seq_pump(s);
    seq_settle(s);
}

/* After a round ended. A draining sequence waits for its last round, then
 * retries at once, or — from the second failure in a row, when another
 * coordinator is likely competing for S — sleeps a random part of a
 * growing window so that one of the two gets a quorum. */
static void seq_after_round(cseq *s)
{
    coord *c = s->c;
    if (s->nflight > 0) {
        if (!s->draining)
            seq_pump(s);
        return;
    }
    s->head_ok = false;
    s->draining = false;
    if (s->fails < 2 || s->backoff) {
        seq_pump(s);
        return;
    }
    s->busy++;
    seq_expire(s);
    s->busy--;
    if (!s->queue.head)
        return;
    unsigned k = (unsigned)(s->fails - 2);
    uint64_t window = k >= 7 ? COORD_BACKOFF_CAP_US : (uint64_t)COORD_BACKOFF_BASE_US << k;
    if (window > COORD_BACKOFF_CAP_US)
        window = COORD_BACKOFF_CAP_US;
    coord_timer_stop(c, &s->step_timer);
    s->backoff = true;
    s->step_timer = coord_timer(c, c->env.random(c->env.ctx) % (window + 1), seq_step_fire, s);
}

/* Q ACKs counted in time: [h, h+n) is ours. Sliced in arrival order; a
 * request whose deadline has passed meanwhile gets ERR_TIMEOUT and leaves
 * a gap rather than a range its client no longer waits for. */
static void round_commit(cround *r)
{
    cseq *s = r->s;
    coord *c = s->c;
    assert(r->phase == CR_ACCEPT);
    assert(r->oks >= q_quorum(c->env.n));
    /* Each ACK counted came from a distinct member of this round. */
    assert(r->oks + r->bad <= __builtin_popcount(r->answered));
    assert(r->h >= 1 && r->new_ > r->h && list_sum(&r->batch) <= r->new_ - r->h);
    /* (<: seq_expire may have taken expired requests out of the batch.) */
    if (!s->learned_ok || r->new_ > s->learned)
        s->learned = r->new_;   /* rounds may commit out of order */
    s->learned_ok = true;
    s->fails = 0;
    creq_list done = list_take(&r->batch);
    uint64_t h = r->h, first = r->h, end = r->new_, now = coord_now(c);
    round_observe(r, true);
    round_end(r);   /* r is gone: h, first and end hold what is needed */
    s->busy++;
    for (creq *q = done.head, *next; q; q = next) {
        next = q->next;
        assert(q->span >= 1 && first >= h && q->span <= end - first);   /* slice within */
        assert(q->floor ? q->span == req_need(q, h) : q->span == q->count);
        if (q->deadline <= now) {
            c->st.timeouts++;
            q->done(q->arg, ERR_TIMEOUT, 0, 0);
        } else if (q->floor) {
            /* Q members durably hold cur >= first + span >= V: every
             * round started from now on has h >= V (coord.h). */
            assert(first + q->span >= q->floor);
            c->st.floors++;
            q->done(q->arg, 0, first + q->span, 0);
        } else {
            c->st.fetches++;
            c->st.ids += q->count;
            q->done(q->arg, 0, first, q->count);
        }
        first += q->span;
        free(q);
    }
    /* The slices tile [h, first) within the committed range; any rest was
     * left by requests that expired in flight (seq_expire), a gap. */
    assert(first <= end);
    s->busy--;
    seq_after_round(s);
}

/* The cur a member reported when it refused this round's ACCEPT. Used only
 * to pick the next h (round_retry_h). */
static void round_note_cur(cround *r, int member, uint64_t cur)
{
    assert(member >= 0 && member < r->s->c->env.n);
    r->cur[member] = cur;
    r->known |= UINT32_C(1) << member;
}

/* The lowest h that a quorum of the members that refused would accept: the
 * Q-th smallest cur in their NACKs (members that ACKed now hold this
 * round's new and would refuse it; with N odd, a round refused by N-Q+1
 * members was refused by Q). Retrying at the largest value seen
 * instead would be just as safe (any h is) but would skip the whole range
 * that the refused round left on the members that accepted it: a stale
 * fast-path value that meets a 1,000,000-ID fetch would burn a million IDs.
 * Returns 0 when fewer than Q members refused (e.g. the round timed out). */
static uint64_t round_retry_h(const cround *r)
{
    int n = r->s->c->env.n, q = q_quorum(n), k = 0;
    uint64_t v[SEQD_MAX_MEMBERS];
    for (int i = 0; i < n; i++)
        if (r->known & (UINT32_C(1) << i))
            v[k++] = r->cur[i];
    assert(k <= n);
    if (k < q)
        return 0;
    for (int i = 1; i < k; i++)   /* insertion sort: k <= 15 */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[q - 1];
}

/* The round failed: too many NACKs or errors, a reply older than R, or the
 * R timer. Next h = the largest value seen, including every new this
 * sequence sent (some members may have accepted them): any h is safe, a
 * higher one just avoids being refused again. */
static void round_failed(cround *r)
{
    cseq *s = r->s;
    coord *c = s->c;
    uint64_t h = r->seen;
    if (r->phase == CR_ACCEPT) {
        c->st.conflicts++;
        if (r->new_ > h)
            h = r->new_;
    }
    if (s->head_ok && s->head > h)
        h = s->head;
    if (s->learned_ok && s->learned > h)
        h = s->learned;
    /* Alone in flight, a refused round retries at the lowest h a quorum
     * of its answers would accept (see round_retry_h); with other rounds
     * in flight their `new`s must stay below h, so keep the maximum. */
    uint64_t low = r->phase == CR_ACCEPT && s->nflight == 1 ? round_retry_h(r) : 0;
    if (low >= 1)
        h = low;
    if (h >= 1) {
        s->learned = h;
        s->learned_ok = true;
    }
    s->fails++;
    s->draining = true;
    /* A round lost to full or failing disks marks its requests: they keep
     * trying (the disk may come back), but if their deadline passes they
     * end with ERR_STORAGE, a clear reason, rather than ERR_TIMEOUT. */
    if (r->storage_errs > 0) {
        for (creq *q = r->batch.head; q; q = q->next)
            q->storage = true;
        s->storage_fail_us = coord_now(c);
    }
    list_merge(&s->queue, &r->batch);
    round_observe(r, false);
    round_end(r);
    seq_after_round(s);
}

static void round_timer_fire(void *arg)
{
    cround *r = arg;
    cseq *s = r->s;
    r->timer = NULL;
    round_failed(r);   /* R passed without a quorum; r is gone */
    seq_settle(s);
}

/* Too many refusals: Q good replies can no longer arrive. */
static void round_count_bad(cround *r)
{
    int n = r->s->c->env.n;
    if (++r->bad > n - q_quorum(n))
        round_failed(r);
}

/* A read request's round ends with its READ phase: h is the largest of Q
 * members' values, what the next round would start from. Nothing was
 * written, so nothing is learned beyond what a READ may teach (h as the
 * fast path's start is safe: any h is). */
static void round_read_done(cround *r)
{
    cseq *s = r->s;
    coord *c = s->c;
    assert(r->phase == CR_READ && r->oks >= q_quorum(c->env.n));
    creq_list done = list_take(&r->batch);
    assert(done.head && done.head == done.tail && done.head->read);
    uint64_t h = r->h, now = coord_now(c);
    round_observe(r, true);
    round_end(r);
    if (!s->learned_ok || h > s->learned) {
        s->learned = h;
        s->learned_ok = true;
    }
    creq *q = done.head;
    s->busy++;
    if (q->deadline <= now) {
        c->st.timeouts++;
        q->done(q->arg, ERR_TIMEOUT, 0, 0);
    } else {
        q->done(q->arg, 0, h, 0);
    }
    free(q);
    s->busy--;
    seq_after_round(s);
}

static void round_on_read_reply(cround *r, const seqd_msg *m, bool fresh)
{
    cseq *s = r->s;
    if (m->type != MSG_VALUE) {
        round_count_bad(r);   /* RECOVERING and the like do not count */
        return;
    }
    if (m->u.value.cur > r->seen)
        r->seen = m->u.value.cur;
    if (!fresh) {
        round_failed(r);
        return;
    }
    if (m->u.value.cur > r->h)
        r->h = m->u.value.cur;
    assert(r->phase == CR_READ && r->oks < q_quorum(s->c->env.n));
    if (++r->oks < q_quorum(s->c->env.n))
        return;
    if (r->h < 1)
        r->h = 1;   /* a member never reports less than 1; be strict anyway */
    if (r->batch.head && r->batch.head->read) {
        round_read_done(r);
        return;
    }
    if (!round_send_accept(r, r->h))
        seq_after_round(s);   /* all exhausted: next batch, if any */
    else
        seq_pump(s);          /* requests queued during the read may stack */
}

static void round_on_accept_reply(cround *r, int member, const seqd_msg *m, bool fresh)
{
    if (m->type == MSG_NACK)
        round_note_cur(r, member, m->u.value.cur);
    switch (m->type) {
    case MSG_ACK:
        if (m->u.ack.new_ != r->new_) {
            round_count_bad(r);
            return;
        }
        if (!fresh) {
            round_failed(r);   /* the round is over: never count it */
            return;
        }
        assert(r->phase == CR_ACCEPT && r->oks < q_quorum(r->s->c->env.n));
        if (++r->oks >= q_quorum(r->s->c->env.n))
            round_commit(r);
        return;
    case MSG_NACK:
        r->s->c->st.nacks++;
        if (m->u.value.cur > r->seen)
            r->seen = m->u.value.cur;
        round_count_bad(r);
        return;
    default:
        if (m->type == MSG_REPLY_ERR && m->u.err.code == ERR_STORAGE)
            r->storage_errs++;
        round_count_bad(r);
        return;
    }
}

void coord_on_reply(coord *c, int member, const seqd_msg *reply)
{
    uint64_t reqid = reply->reqid;
    if ((reqid & Q_REQID_RECOVERY) || member < 0 || member >= c->env.n)
        return;
    /* Only a phase in flight is in the index (see REQIDS at the top). */
    cround *r = inflight_find(c, reqid);
    if (!r) {
        c->st.late_replies++;
        return;
    }
    cseq *s = r->s;
    uint32_t bit = UINT32_C(1) << member;
    if (r->answered & bit)
        return;   /* a duplicate reply is never counted twice */
    r->answered |= bit;
    assert(r->oks + r->bad < __builtin_popcount(r->answered));
    /* The round's age by the clock, now: see the top of this file. */
    bool fresh = coord_now(c) - r->sent_us < c->env.round_us;
    if (r->phase == CR_READ)
        round_on_read_reply(r, reply, fresh);
    else
        round_on_accept_reply(r, member, reply, fresh);
    seq_settle(s);   /* r may be gone; s stays until a sweep */
}

/* ---- the sequences held, and their eviction ----------------------------- */

static size_t seqs_bucket(const coord *c, const char *name, uint8_t len)
{
    return (size_t)XXH3_64bits_withSeed(name, len, c->hash_seed) & (c->nbuckets - 1);
}

/* O(held): amortized over the insertions (doubling) or evictions
 * (halving) since the last resize. */
static void seqs_resize(coord *c, size_t nbuckets)
{
    cseq **old = c->seqs;
    size_t oldn = c->nbuckets;
    c->seqs = q_xcalloc(nbuckets, sizeof *c->seqs);
    c->nbuckets = nbuckets;
    for (size_t i = 0; i < oldn; i++)
        for (cseq *s = old[i], *next; s; s = next) {
            next = s->hnext;
            size_t b = seqs_bucket(c, s->name, s->name_len);
            s->hnext = c->seqs[b];
            c->seqs[b] = s;
        }
    free(old);
}

/* The state of name, created (empty: nothing learned) if it is not held. */
static cseq *coord_seq(coord *c, const struct seqd_name *name)
{
    size_t b = seqs_bucket(c, name->s, name->len);
    for (cseq *s = c->seqs[b]; s; s = s->hnext)
        if (s->name_len == name->len && memcmp(s->name, name->s, name->len) == 0)
            return s;
    cseq *s = q_xcalloc(1, sizeof *s + (size_t)name->len + 1);
    s->c = c;
    s->name_len = name->len;
    memcpy(s->name, name->s, name->len);
    s->name[name->len] = '\0';
    s->hnext = c->seqs[b];
    c->seqs[b] = s;
    c->nheld++;
    if (!c->frozen && c->nheld > c->nbuckets)
        seqs_resize(c, 2 * c->nbuckets);
    return s;
}

static void seqs_unlink(coord *c, cseq *s)
{
    cseq **p = &c->seqs[seqs_bucket(c, s->name, s->name_len)];
    while (*p != s) {
        assert(*p);   /* s is held */
        p = &(*p)->hnext;
    }
    *p = s->hnext;
    c->nheld--;
}

static bool seq_is_idle(const cseq *s)
{
    return !s->queue.head && !s->rounds && !s->step_timer && !s->busy;
}

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static void coord_sweep_fire(void *arg);

/* Due when the oldest idle sequence has been idle for idle_us, plus an
 * eighth of it, so that one firing takes the sequences that became idle
 * close together; at once when the last slice was full. */
static void coord_arm_sweep(coord *c, bool at_once)
{
    if (c->sweep_timer || !c->idle_head)
        return;
    uint64_t now = coord_now(c);
    uint64_t due = sat_add(sat_add(c->idle_head->idle_since, c->idle_us), c->idle_us / 8);
    if (due == UINT64_MAX)
        return;   /* never (coord_set_idle(c, UINT64_MAX)) */
    c->sweep_timer = coord_timer(c, at_once || due <= now ? 0 : due - now, coord_sweep_fire, c);
}

/* Called at the end of everything that may leave s with nothing to do (a
 * reply, a timer, coord_fail_all): an idle sequence joins the idle list. */
static void seq_settle(cseq *s)
{
    coord *c = s->c;
    if (s->idle || !seq_is_idle(s))
        return;
    coord_timer_stop(c, &s->deadline_timer);   /* nothing left to time */
    s->idle = true;
    s->idle_since = coord_now(c);
    assert(!c->idle_tail || c->idle_tail->idle_since <= s->idle_since);   /* kept by time */
    s->iprev = c->idle_tail;
    s->inext = NULL;
    if (c->idle_tail)
        c->idle_tail->inext = s;
    else
        c->idle_head = s;
    c->idle_tail = s;
    coord_arm_sweep(c, false);
}

/* A request for s arrived: it is in use again. */
static void seq_unidle(cseq *s)
{
    coord *c = s->c;
    if (!s->idle)
        return;
    if (s->iprev)
        s->iprev->inext = s->inext;
    else
        c->idle_head = s->inext;
    if (s->inext)
        s->inext->iprev = s->iprev;
    else
        c->idle_tail = s->iprev;
    s->iprev = s->inext = NULL;
    s->idle = false;
}

/* Drops an idle sequence's state entirely; the next request for its name
 * starts from a fresh cseq. Why that is safe:
 * - What is dropped is the learned h (and the head, the failure streak,
 *   the disk-error time): hints, not obligations. A fresh cseq has
 *   learned_ok = false, so its first round reads a quorum first, exactly
 *   as for a sequence this coordinator never saw, or after a restart.
 *   By DESIGN.md §2 any h is safe: an ACCEPT(expect=h) is refused by every
 *   member whose cur > h, so a stale or missing h costs a READ or a NACKed
 *   round, never a duplicate; and the read quorum meets every committed
 *   round's quorum, so the fresh state's h is at least every `new` that
 *   was committed before (real-time order is kept).
 * - Nothing is in flight: an idle sequence has no round (so no reqid in
 *   c->inflight, no R timer), no queued request and no step timer; its
 *   deadline timer was stopped when it became idle. No pointer to it is
 *   left once it is out of the hash and the idle list.
 * - A reply still on its way answers a reqid that was removed from
 *   c->inflight when its phase ended. Reqids come from one counter and are
 *   never given again, so the fresh cseq's rounds have other ids and the
 *   reply is counted as late and dropped: no round counts a vote that was
 *   not cast for exactly it (the same rule that makes a pipelined round's
 *   ACKs its own). The simulator's sim/eviction_with_late_replies runs
 *   this with sequences evicted as soon as they are idle and replies
 *   delayed and duplicated past it. */
static void seq_evict(cseq *s)
{
    coord *c = s->c;
    assert(s->idle && seq_is_idle(s) && s->nflight == 0 && !s->deadline_timer);
    seq_unidle(s);
    seqs_unlink(c, s);
    c->st.evictions++;
    free(s);
}

/* At most COORD_SWEEP_SLICE evictions per firing (each O(1)), then the
 * table shrinks by half if it is less than an eighth full. */
static void coord_sweep_fire(void *arg)
{
    coord *c = arg;
    c->sweep_timer = NULL;
    uint64_t now = coord_now(c);
    int k = 0;
    while (c->idle_head && k < COORD_SWEEP_SLICE && now - c->idle_head->idle_since >= c->idle_us) {
        seq_evict(c->idle_head);
        k++;
    }
    if (!c->frozen && c->nbuckets > COORD_MIN_BUCKETS && 8 * c->nheld < c->nbuckets)
        seqs_resize(c, c->nbuckets / 2);
    coord_arm_sweep(c, k == COORD_SWEEP_SLICE);
}

void coord_set_idle(coord *c, uint64_t idle_us)
{
    c->idle_us = idle_us;
    coord_timer_stop(c, &c->sweep_timer);
    coord_arm_sweep(c, false);
}

/* ---- submit, fail, free ------------------------------------------------- */

static void coord_enqueue(coord *c, const struct seqd_name *name, uint32_t count, uint64_t floor,
                          bool read, uint64_t deadline_us, coord_done_fn done, void *arg)
{
    cseq *s = coord_seq(c, name);
    seq_unidle(s);
    creq *r = q_xcalloc(1, sizeof *r);
    r->arrival = ++c->next_arrival;
    r->count = count;
    r->floor = floor;
    r->read = read;
    r->deadline = deadline_us;
    r->done = done;
    r->arg = arg;
    list_push(&s->queue, r);
    seq_arm_deadline(s);
    /* Never start a round here: the caller's turn ends first, so that
     * everything submitted in one turn shares the round and no done
     * callback runs inside coord_submit. Inside callbacks (busy), while
     * draining or with the pipeline full, the end of a round pumps. */
    if (!s->busy && !s->step_timer && !s->draining && s->nflight < c->pipeline)
        s->step_timer = coord_timer(c, 0, seq_step_fire, s);
}

void coord_submit(coord *c, const struct seqd_name *name, uint32_t count, uint64_t deadline_us,
                  coord_done_fn done, void *arg)
{
    assert(count >= 1 && count <= SEQD_COUNT_MAX);
    coord_enqueue(c, name, count, 0, false, deadline_us, done, arg);
}

void coord_submit_floor(coord *c, const struct seqd_name *name, uint64_t floor,
                        uint64_t deadline_us, coord_done_fn done, void *arg)
{
    assert(floor >= 1);
    coord_enqueue(c, name, 0, floor, false, deadline_us, done, arg);
}

void coord_submit_read(coord *c, const struct seqd_name *name, uint64_t deadline_us,
                       coord_done_fn done, void *arg)
{
    coord_enqueue(c, name, 0, 0, true, deadline_us, done, arg);
}

/* Every held sequence, whatever its state. Resizing waits (frozen), so a
 * done callback that submits (creating a sequence) cannot move the chains
 * under the walk; a sequence it creates in a bucket already passed is not
 * failed, as a request submitted after coord_fail_all would not be. */
void coord_fail_all(coord *c, int err)
{
    c->frozen++;
    for (size_t b = 0; b < c->nbuckets; b++)
        for (cseq *s = c->seqs[b], *next; s; s = next) {
            next = s->hnext;
            coord_timer_stop(c, &s->step_timer);
            coord_timer_stop(c, &s->deadline_timer);
            s->backoff = s->draining = s->head_ok = false;
            for (cround *r; (r = s->rounds);) {
                list_merge(&s->queue, &r->batch);
                round_end(r);
            }
            list_finish(c, list_take(&s->queue), err);
            seq_settle(s);
        }
    c->frozen--;
}

void coord_free(coord *c)
{
    if (!c)
        return;
    coord_fail_all(c, ERR_SHUTDOWN);
    for (size_t b = 0; b < c->nbuckets; b++)
        for (cseq *s = c->seqs[b], *next; s; s = next) {
            next = s->hnext;
            for (cround *r; (r = s->rounds);) {   /* from a submit inside fail_all */
                list_finish(c, list_take(&r->batch), ERR_SHUTDOWN);
                round_end(r);
            }
            list_finish(c, list_take(&s->queue), ERR_SHUTDOWN);
            coord_timer_stop(c, &s->step_timer);
            coord_timer_stop(c, &s->deadline_timer);
            free(s);
        }
    assert(c->ninflight == 0);
    coord_timer_stop(c, &c->sweep_timer);
    free(c->seqs);
    free(c->inflight);
    free(c);
}
