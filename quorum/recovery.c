/* quorum/recovery.c — what every start of a member does before it serves
 * (DESIGN.md §3); see recovery.h for the contract.
 *
 * Phases: WAIT (2R) -> READ (snapshot chains from the other members, asked
 * again every R) -> RAISE (make the maxima durable locally) -> DONE; a
 * prepared member may go from WAIT or READ to COMMIT -> RAISE -> DONE.
 *
 * Why wait first: an ACCEPT this member ACKed before it stopped may still be
 * counted by a round that is younger than R. Had it read the others before
 * that round's deadline passed, the round could commit behind the read with
 * a quorum that includes this member's lost vote, and the value read would
 * be below it (the SPIN model, -DREAD_THEN_WAIT, finds that overlap). After
 * 2R no round that could count one of those ACKs is still running.
 *
 * Why N-Q+1 *other* members *with state*: a committed round (h,v) left
 * cur >= v durably on Q members, at most one of which is this one, so on
 * Q-1 others; any N-Q+1 of the N-1 others include one of those (2 of 3,
 * 3 of 5). A member without state (wiped, never initialized) may have been
 * one of the Q and lost v, so it never counts (model alloc5.pml,
 * -DEMPTY_COUNTS). A member counts only for a whole snapshot read through
 * one chain of requests (each chunk flagged with state), so what we adopt
 * covers its whole table at one sweep. Values from partial or abandoned
 * chains are merged too: every value a member holds was set by some ACCEPT,
 * and raising cur only makes later ranges start higher, so that is safe.
 *
 * Why a member never founds a cluster by itself: a member with an empty
 * directory cannot tell "new" from "lost its disk", and counting the
 * others that answer "no state" is unsafe: one wiped member plus one that
 * had been down since the start (or missed init's COMMIT) are N-Q+1
 * members without state for N = 3, and wave 1's rule let them found a
 * second cluster that handed out IDs 1.. again (kept as the mutation
 * recovery_set_relaxed_bootstrap; tests/test_sim.c shows it is caught).
 * Only `seqd init` founds one, and COMMIT of X happens only once every
 * member answered PREPARE(X) while empty — so no cluster existed anywhere
 * (within the fault model: fewer than N-Q+1 members lose their data at
 * once, and all N did). Hence:
 *  - a PREPARED member that meets a member initialized with X knows that
 *    COMMIT of X happened; it never voted (it is not ready before it is
 *    initialized), so its empty table is true to every ACK it gave and it
 *    may be initialized at once, with nothing to read;
 *  - a PREPARED member that meets a member initialized with another id Y
 *    was reached by a stray init after it lost its data: Y's cluster
 *    existed, so it recovers like an EMPTY member;
 *  - an EMPTY member recovers by the N-Q+1 rule above, counting only
 *    members of one id (the first it meets with state): a member of
 *    another cluster never vouches for this one's values.
 *
 * Why only *verified* members count (SNAP_HAS_STATE), and what a
 * rolled-back one does: quorum/incarnation.h. In short, a member restored
 * from a backup still holds a cluster id and a non-empty table, and two
 * such members vouched for each other with five members while the one
 * holding a committed round was down; a member's snapshot now counts only
 * once N-Q+1 others' records of it agree with its log, and one whose
 * records do not is marked rolled back, takes a new incarnation above the
 * recorded one, reads again as any member does, and never counts for
 * anyone until a completed recovery clears the mark. Every chunk is
 * checked, probes included; the read starts over after a mark, so its
 * sources record the new incarnation before they answer.
 *
 * A clean stop (DESIGN.md §3): a ready member that recorded "stopped at
 * (k, p)" for this member, where k is the incarnation this member held
 * last and its log reaches exactly p, vouches that the log holds every ACK
 * it gave: the member is done with no wait and no read.
 *
 * Lifetime: the raises' done callbacks point at the recovery, so free it
 * only once the store will not call them (after done, or after the log is
 * closed). done may call recovery_free: nothing touches r after done.
 */
#include "recovery.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "incarnation.h"
#include "qmem.h"

#include <assert.h>

enum rec_phase { REC_WAIT, REC_READ, REC_UNSAFE_WAIT, REC_COMMIT, REC_CLEAN, REC_RAISE, REC_DONE };

/* What we know of one other member in the current read. */
enum rec_mstate {
    RM_IDLE,        /* nothing outstanding: asked again at the next tick */
    RM_ASKED,       /* first chunk requested */
    RM_CHAIN,       /* a chain with state is under way */
    RM_STATELESS,   /* its latest answer said it has no state */
    RM_FOREIGN,     /* it has state, of another cluster id: never counts */
    RM_COMPLETE     /* its whole snapshot, with state, has been merged */
};

typedef struct rec_member {
    enum rec_mstate st;
    uint64_t reqid;     /* the only reply we accept from it now */
    uint32_t start;     /* the index that request asked for */
    bool progress;      /* a chunk arrived since the last tick */
} rec_member;

struct recovery {
    q_env env;
    q_store store;
    enum recovery_mode mode;
    struct seqd_cid cid;            /* INITIALIZED: ours; PREPARED: X; EMPTY: learned */
    bool have_cid;                  /* cid is meaningful */
    recovery_done_fn done;
    void *arg;
    enum rec_phase phase;
    void *timer;
    map *seen;                     /* name -> max cur read */
    rec_member m[SEQD_MAX_MEMBERS];
    uint64_t next_reqid;
    int complete;                   /* members read completely, with state */
    int pending_raises;
    bool raise_failed, retry_all, committed, unsafe_read_first, relaxed_bootstrap;
    /* What the probes of the other members said (any chunk counts): who
     * answered at all, and whether one of them is initialized. */
    bool heard[SEQD_MAX_MEMBERS];
    bool saw_initialized;
    uint64_t probe_reqid;           /* the reqid every probe carries */
    int wait_ticks;                 /* of R, in WAIT */
    /* incarnations (NULL: none, unit tests) */
    incarn *inc;
    recovery_hooks hooks;
    uint32_t verifiers;             /* bit per member whose records agreed */
    bool verified, marking, count_unverified, clean, must_clear;
    int mark_pending;
    bool mark_failed;               /* a write of the verdict failed: again at the next tick */
    uint64_t mark_named;            /* the counter the verdict named */
};

_Static_assert(SEQD_MAX_MEMBERS <= 32, "verifiers is a 32-bit mask");

static void rec_tick(void *arg);
static void rec_mark_retry(recovery *r);
static void rec_finish(recovery *r, bool committed);

static int rec_need_with_state(const recovery *r)
{
    return r->env.n - q_quorum(r->env.n) + 1;
}

/* The mutation's threshold: members without state that, with this one,
 * make N-Q+1 (at least one other). */
static int rec_need_stateless(const recovery *r)
{
    int k = r->env.n - q_quorum(r->env.n);
    return k > 1 ? k : 1;
}

static void rec_timer(recovery *r, uint64_t after_us, q_timer_fn fn)
{
    if (r->timer)
        r->env.timer_stop(r->env.ctx, r->timer);
    r->timer = r->env.timer_start(r->env.ctx, after_us, fn, r);
    if (!r->timer)
        q_oom();
}

/* Fresh reqids for every request: a reply to an abandoned chain (a member
 * asked again after a silent R) can then never be taken for the new one. */
static void rec_ask(recovery *r, int i, uint32_t start)
{
    if (r->marking)
        return;   /* asked again once the new incarnation is durable */
    assert(r->phase == REC_READ && i >= 0 && i < r->env.n && i != r->env.self);
    r->m[i].reqid = Q_REQID_RECOVERY | (r->next_reqid++ & ~Q_REQID_RECOVERY);
    r->m[i].start = start;
    seqd_msg q = {.type = MSG_SNAP_REQ, .reqid = r->m[i].reqid};
    q.u.snap_req.start = start;
    if (r->inc)
        q.u.snap_req.inc = inc_self(r->inc);
    r->env.send(r->env.ctx, i, &q);
}

static void rec_begin_read(recovery *r)
{
    assert(r->phase == REC_WAIT && r->env.n > 1);
    r->phase = REC_READ;
    for (int i = 0; i < r->env.n; i++) {
        if (i == r->env.self)
            continue;
        r->m[i].st = RM_ASKED;
        r->m[i].progress = false;
        rec_ask(r, i, 0);
    }
    rec_timer(r, r->env.round_us, rec_tick);
}

/* A snapshot request past any table's end: the answer carries only the
 * sender's flags and id. Sent at start and every R while waiting, so that
 * an empty member learns whether a cluster exists before the 2R wait ends
 * (init may prepare it meanwhile). */
static void rec_probe(recovery *r)
{
    for (int i = 0; i < r->env.n && !r->marking; i++) {
        if (i == r->env.self || r->heard[i])
            continue;
        seqd_msg q = {.type = MSG_SNAP_REQ, .reqid = r->probe_reqid};
        q.u.snap_req.start = UINT32_MAX;
        if (r->inc)
            q.u.snap_req.inc = inc_self(r->inc);
        r->env.send(r->env.ctx, i, &q);
    }
}

/* The 2R wait, in two ticks of R, probing the members not heard yet. */
static void rec_wait_tick(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_mark_retry(r);
    if (++r->wait_ticks >= 2) {
        rec_begin_read(r);
        return;
    }
    rec_probe(r);
    rec_timer(r, r->env.round_us, rec_wait_tick);
}

/* Every R: a member whose chain made no progress, that answered with an
 * error, that said it has no state or belongs to another cluster, is asked
 * again from the start: it may have recovered, or been initialized, since
 * (a prepared member learns COMMIT that way). */
static void rec_tick(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    assert(r->phase == REC_READ);   /* rec_finish stops this timer */
    rec_mark_retry(r);
    for (int i = 0; i < r->env.n; i++) {
        rec_member *m = &r->m[i];
        if (i == r->env.self || m->st == RM_COMPLETE)
            continue;
        if (m->st == RM_CHAIN && m->progress) {
            m->progress = false;
            continue;
        }
        m->st = RM_ASKED;
        m->progress = false;
        rec_ask(r, i, 0);
    }
    rec_timer(r, r->env.round_us, rec_tick);
}

static void rec_merge(recovery *r, const seqd_msg *c)
{
    const uint8_t *p = c->u.snap.entries, *end = p + c->u.snap.entries_len;
    struct seqd_name name;
    uint64_t cur;
    while (snap_entry_next(&p, end, &name, &cur)) {
        size_t i = q_map_insert(r->seen, name.s, name.len, cur);
        if (map_value(r->seen, i) < cur)
            map_set(r->seen, i, cur);
        assert(map_value(r->seen, i) >= cur);   /* seen keeps the maximum */
    }
}

/* The mutation only (recovery_set_relaxed_bootstrap): wave 1's rule, a
 * member without state founding a cluster once max(N-Q, 1) others answered
 * "no state" within one tick. Unsafe: see the top of this file. */
static void rec_check_relaxed(recovery *r)
{
    if (!r->relaxed_bootstrap || r->mode == RECOVERY_INITIALIZED || r->phase != REC_READ)
        return;
    int stateless = 0;
    for (int i = 0; i < r->env.n; i++)
        stateless += (i != r->env.self && r->m[i].st == RM_STATELESS);
    assert(stateless + r->complete <= r->env.n - 1);
    if (stateless < rec_need_stateless(r))
        return;
    if (!r->have_cid) {
        uint64_t a = r->env.random(r->env.ctx), b = r->env.random(r->env.ctx);
        memcpy(r->cid.b, &a, 8);
        memcpy(r->cid.b + 8, &b, 8);
        r->have_cid = true;
    }
    rec_finish(r, true);
}

/* Forget what counted so far, when the mode changes under the read. */
static void rec_recount(recovery *r)
{
    r->complete = 0;
    for (int i = 0; i < r->env.n; i++)
        if (r->m[i].st == RM_COMPLETE)
            r->m[i].st = RM_IDLE;
}

/* What a snapshot with state from a member initialized with y means (see
 * the top of this file). */
enum rec_verdict {
    RV_COUNTS,      /* of our cluster: merge it and count it */
    RV_FOREIGN,     /* of another cluster: ignore it */
    RV_COMMITTED    /* we are prepared for y: COMMIT of y happened */
};

static enum rec_verdict rec_counts(recovery *r, const struct seqd_cid *y)
{
    switch (r->mode) {
    case RECOVERY_INITIALIZED:
        return seqd_cid_eq(y, &r->cid) ? RV_COUNTS : RV_FOREIGN;
    case RECOVERY_PREPARED:
        if (seqd_cid_eq(y, &r->cid))
            return RV_COMMITTED;
        /* A stray init reached this member after it lost its data. */
        r->mode = RECOVERY_EMPTY;
        r->have_cid = false;
        memset(&r->cid, 0, sizeof r->cid);
        rec_recount(r);
        break;
    case RECOVERY_EMPTY:
        break;
    }
    if (!r->have_cid) {
        r->cid = *y;
        r->have_cid = true;
    }
    return seqd_cid_eq(y, &r->cid) ? RV_COUNTS : RV_FOREIGN;
}

static void rec_unsafe_wait_over(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_finish(r, false);
}

static void rec_check_enough(recovery *r)
{
    if (r->phase != REC_READ || r->mode == RECOVERY_PREPARED ||
        r->complete < rec_need_with_state(r))
        return;
    assert(r->have_cid);   /* every member counted carried it */
    if (r->unsafe_read_first) {
        /* The broken order, for the simulator only: read, then wait. */
        r->phase = REC_UNSAFE_WAIT;
        rec_timer(r, 2 * r->env.round_us, rec_unsafe_wait_over);
        return;
    }
    rec_finish(r, false);
}

static void rec_on_chunk(recovery *r, int i, const seqd_msg *c)
{
    rec_member *m = &r->m[i];
    assert(r->phase == REC_READ && (m->st == RM_ASKED || m->st == RM_CHAIN));
    m->progress = true;
    if (r->mode == RECOVERY_PREPARED && (c->u.snap.flags & SNAP_INITIALIZED) &&
        rec_counts(r, &c->u.snap.cid) == RV_COMMITTED) {
        m->reqid = 0;
        m->st = RM_FOREIGN;
        rec_finish(r, true);   /* done may free r: nothing after this */
        return;
    }
    uint8_t counts = r->count_unverified ? SNAP_INITIALIZED : SNAP_HAS_STATE;
    if (!(c->u.snap.flags & counts)) {
        /* Never had state, or lost it mid-chain: either way it does not
         * count, and the chain so far is abandoned. */
        m->st = RM_STATELESS;
        m->reqid = 0;
        rec_check_relaxed(r);
        return;
    }
    enum rec_verdict v = rec_counts(r, &c->u.snap.cid);
    if (v != RV_COUNTS) {
        m->reqid = 0;
        m->st = RM_FOREIGN;
        if (v == RV_COMMITTED)
            rec_finish(r, true);   /* done may free r: nothing after this */
        return;
    }
    rec_merge(r, c);
    if (c->u.snap.flags & SNAP_DONE) {
        m->st = RM_COMPLETE;
        m->reqid = 0;
        r->complete++;
        assert(r->complete <= r->env.n - 1);   /* each other member once */
        rec_check_enough(r);
        return;
    }
    if (c->u.snap.next <= m->start) {
        /* `next` must move forward or the chain would never end: treat
         * it as an error, asked again from the start at the next tick. */
        m->st = RM_IDLE;
        m->reqid = 0;
        return;
    }
    m->st = RM_CHAIN;
    rec_ask(r, i, c->u.snap.next);
}

/* Every chunk says whether its sender is initialized: enough to know that
 * a cluster exists, which an empty member needs before it may be prepared
 * (recovery_is_empty). */
static void rec_note_probe(recovery *r, int member, const seqd_msg *reply)
{
    if (reply->type != MSG_SNAP_CHUNK)
        return;
    r->heard[member] = true;
    if (reply->u.snap.flags & SNAP_INITIALIZED)
        r->saw_initialized = true;
}

static int rec_popcount(uint32_t x)
{
    return __builtin_popcount(x);
}

static void rec_set_verified(recovery *r, bool v)
{
    if (r->verified == v)
        return;
    r->verified = v;
    if (r->hooks.trust)
        r->hooks.trust(r->arg, v);
}

static void rec_marked(void *arg, int err);
static void rec_mark_writes(recovery *r);

/* The verdict: this member's log is behind what a peer recorded of it. */
static void rec_rolled_back(recovery *r, const struct seqd_inc *rec, const char *why)
{
    if (r->marking)
        return;
    r->marking = true;
    rec_set_verified(r, false);
    if (r->hooks.rolled_back)
        r->hooks.rolled_back(r->arg, why);
    r->mark_named = rec->counter;
    rec_mark_writes(r);
}

static void rec_mark_writes(recovery *r)
{
    assert(r->marking && r->mark_pending == 0);
    r->mark_pending = 2;   /* the mark and the new incarnation, both durable */
    r->mark_failed = false;
    if (inc_mark(r->inc, r->mark_named, rec_marked, r) < 0)
        rec_marked(r, -1);
    if (inc_begin(r->inc, r->mark_named, rec_marked, r) < 0)
        rec_marked(r, -1);
}

/* The 2R wait's and the read's ticks: a verdict whose writes failed is
 * written again (every R, while the store fails). */
static void rec_mark_retry(recovery *r)
{
    if (r->marking && r->mark_failed && r->mark_pending == 0)
        rec_mark_writes(r);
}

/* Both durable: read again from the start, as the new incarnation (its
 * sources record it before they answer). A failed write (ENOSPC) keeps the
 * member marking, reading nothing, until a tick has written them all
 * again: the mark, rbk and the new incarnation are each needed durably
 * before it reads on. Going on without them, as this once did, (i) left a
 * lost rbk, so that after a restart a peer that still held the repaired
 * incarnation's record brought a second, false verdict — with one member
 * wiped beside it, a 3-member cluster waited for ever (simulator,
 * three_members_faults seed 7584326586); (ii) left a lost mark beside a
 * durable rbk, so that a crash before the recovery completed came back
 * unmarked: records up to rbk say nothing, those of its new incarnation
 * agree, and it was verified and counted with the table the verdict had
 * found behind. Safe: retrying only delays the read; while marking, this
 * member asks nobody (rec_ask, rec_probe) and is not verified. */
static void rec_marked(void *arg, int err)
{
    recovery *r = arg;
    assert(r->marking && r->mark_pending > 0);
    if (err)
        r->mark_failed = true;
    if (--r->mark_pending > 0)
        return;
    if (r->mark_failed)
        return;   /* rec_mark_retry, at the next tick */
    r->marking = false;
    r->verifiers = 0;
    /* Answers to what the old incarnation asked are not this one's. */
    r->probe_reqid = Q_REQID_RECOVERY | (r->next_reqid++ & ~Q_REQID_RECOVERY);
    memset(r->heard, 0, sizeof r->heard);
    if (r->phase == REC_READ)
        rec_recount(r);
    for (int i = 0; i < r->env.n; i++)
        if (r->m[i].st != RM_COMPLETE && r->m[i].st != RM_IDLE) {
            r->m[i].st = RM_IDLE;
            r->m[i].reqid = 0;
        }
}

static void rec_clean_stop(recovery *r);

/* Every chunk, probe or chain: what its sender recorded of this member. */
static void rec_check_trust(recovery *r, int member, const seqd_msg *c)
{
    if (!r->inc || c->type != MSG_SNAP_CHUNK)
        return;
    inc_observe(r->inc, member, &c->u.snap.inc);
    if (r->marking)
        return;
    char why[160];
    uint8_t f = c->u.snap.flags;
    if (f & SNAP_YOU_STALE) {
        snprintf(why, sizeof why, "rolled back: member %d recorded incarnation %llu of this "
                 "member, and this one is older", member, (unsigned long long)c->u.snap.you.counter);
        rec_rolled_back(r, &c->u.snap.you, why);
        return;
    }
    if (inc_shows_rollback(r->inc, &c->u.snap.you, why, sizeof why)) {
        rec_rolled_back(r, &c->u.snap.you, why);
        return;
    }
    /* Any member of this cluster that answered without showing a rollback
     * is a verifier, an empty one too: a member that lost its data is one
     * of the at most N-Q faulty members, like a rolled-back one, and the
     * count in quorum/incarnation.h already allows for N-Q-1 faulty others
     * besides this member. Requiring initialized verifiers would wait for
     * ever in a whole-cluster restart with one wiped member, which the
     * wiped one needs the others' snapshots to get through. */
    bool foreign = (f & SNAP_INITIALIZED) && r->have_cid && !seqd_cid_eq(&c->u.snap.cid, &r->cid);
    if (foreign)
        return;
    r->verifiers |= UINT32_C(1) << member;
    if (!inc_marked(r->inc) && rec_popcount(r->verifiers) >= rec_need_with_state(r) &&
        r->mode == RECOVERY_INITIALIZED)
        rec_set_verified(r, true);
    if ((f & SNAP_YOU_STOPPED) && (f & SNAP_READY) && (f & SNAP_HAS_STATE) &&
        r->mode == RECOVERY_INITIALIZED &&
        !inc_marked(r->inc) && inc_clean_stop_matches(r->inc, &c->u.snap.you))
        rec_clean_stop(r);
}

void recovery_on_reply(recovery *r, int member, const seqd_msg *reply)
{
    if (member < 0 || member >= r->env.n || member == r->env.self)
        return;
    if (r->phase == REC_WAIT || r->phase == REC_READ) {
        rec_note_probe(r, member, reply);
        /* Only answers to what this incarnation asked say anything of it. */
        if (reply->reqid == r->probe_reqid || (r->m[member].reqid != 0 &&
                                               reply->reqid == r->m[member].reqid))
            rec_check_trust(r, member, reply);   /* may finish (clean stop) */
    }
    if (r->phase != REC_READ || reply->reqid == r->probe_reqid || r->marking)
        return;
    rec_member *m = &r->m[member];
    if (reply->reqid != m->reqid || (m->st != RM_ASKED && m->st != RM_CHAIN))
        return;
    if (reply->type == MSG_SNAP_CHUNK)
        rec_on_chunk(r, member, reply);
    else {
        m->st = RM_IDLE;   /* an error reply: asked again at the next tick */
        m->reqid = 0;
    }
}

static void rec_done_now(recovery *r)
{
    assert((r->phase == REC_RAISE && r->pending_raises == 0 && !r->raise_failed) ||
           (r->phase == REC_WAIT && r->env.n <= 1 && r->mode == RECOVERY_INITIALIZED));
    r->phase = REC_DONE;
    if (r->timer) {
        r->env.timer_stop(r->env.ctx, r->timer);
        r->timer = NULL;
    }
    r->done(r->arg, 0, r->committed, &r->cid);   /* may free r */
}

static void rec_raise_all(recovery *r);

static void rec_retry_raises(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_raise_all(r);
}

/* All raises durable: done. A failed one (ENOSPC, EIO): try them all again
 * after R, without the "already high enough" filter, because a failed
 * raise may have left the value in memory but not on disk. */
static void rec_maybe_done(recovery *r)
{
    assert(r->phase == REC_RAISE && r->pending_raises >= 0);
    if (r->pending_raises > 0)
        return;
    if (r->raise_failed) {
        r->raise_failed = false;
        r->retry_all = true;
        rec_timer(r, r->env.round_us, rec_retry_raises);
        return;
    }
    rec_done_now(r);
}

static void rec_raise_done(void *arg, int err)
{
    recovery *r = arg;
    assert(r->phase == REC_RAISE && r->pending_raises > 0);   /* paired with raise */
    r->pending_raises--;
    if (err)
        r->raise_failed = true;
    rec_maybe_done(r);
}

/* One guard count keeps rec_maybe_done from finishing while raises are
 * still being queued (a store may complete some before raise returns). */
static void rec_raise_all(recovery *r)
{
    assert(r->phase == REC_RAISE && r->pending_raises == 0);
    r->pending_raises = 1;
    for (size_t i = 0; i < map_count(r->seen); i++) {
        struct seqd_name name;
        uint8_t len;
        const char *s = map_name(r->seen, i, &len);
        seqd_name_set(&name, s, len);
        uint64_t v = map_value(r->seen, i);
        if (!r->retry_all && v <= r->store.get(r->store.ctx, &name))
            continue;
        r->pending_raises++;
        if (r->store.raise(r->store.ctx, &name, v, rec_raise_done, r) < 0) {
            r->pending_raises--;
            r->raise_failed = true;
        }
    }
    /* Only a completed recovery clears the mark, with the values it read;
     * again on a retry (a failed write leaves it cleared in memory only). */
    if (r->inc && (r->must_clear || inc_marked(r->inc))) {
        r->must_clear = true;
        r->pending_raises++;
        if (inc_clear(r->inc, rec_raise_done, r) < 0) {
            r->pending_raises--;
            r->raise_failed = true;
        }
    }
    r->pending_raises--;
    rec_maybe_done(r);
}

static void rec_finish(recovery *r, bool committed)
{
    assert(r->phase == REC_READ || r->phase == REC_UNSAFE_WAIT || r->phase == REC_COMMIT ||
           r->phase == REC_CLEAN);
    assert(r->have_cid);
    /* Pair assertion: only a prepared member is committed (but for the
     * mutation, which founds clusters from EMPTY too). */
    assert(!committed || r->mode == RECOVERY_PREPARED || r->relaxed_bootstrap);
    r->phase = REC_RAISE;
    r->committed = committed;
    if (r->timer) {
        r->env.timer_stop(r->env.ctx, r->timer);
        r->timer = NULL;
    }
    rec_raise_all(r);
}

/* The 0 timer of a COMMIT or a confirmed clean stop: finished from the
 * loop, never under the caller that brought the news. */
static void rec_finish_cb(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    assert(r->phase == REC_COMMIT || r->phase == REC_CLEAN);
    rec_finish(r, r->phase == REC_COMMIT);
}

/* From a 0 timer, so that no reply handler finishes the recovery under
 * its caller. Values read so far are merged anyway (raising is safe). */
static void rec_clean_stop(recovery *r)
{
    assert(r->phase == REC_WAIT || r->phase == REC_READ);
    r->phase = REC_CLEAN;
    r->clean = true;
    rec_timer(r, 0, rec_finish_cb);
}

static void rec_single(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_done_now(r);
}

recovery *recovery_start(const q_env *env, const q_store *store, struct incarn *inc,
                         const recovery_hooks *hooks, enum recovery_mode mode,
                         const struct seqd_cid *cid, recovery_done_fn done, void *arg)
{
    recovery *r = q_xcalloc(1, sizeof *r);
    r->env = *env;
    r->store = *store;
    r->inc = inc;
    if (hooks)
        r->hooks = *hooks;
    r->mode = mode;
    if (mode != RECOVERY_EMPTY) {
        assert(cid && !seqd_cid_none(cid));
        r->cid = *cid;
        r->have_cid = true;
    }
    r->done = done;
    r->arg = arg;
    r->seen = q_map_new();
    r->next_reqid = env->random(env->ctx);
    r->phase = REC_WAIT;
    /* Without incarnation records (unit tests, the simulator's mutation
     * runs of the recovery order alone) there is nothing to verify. */
    if (!inc && mode == RECOVERY_INITIALIZED)
        rec_set_verified(r, true);
    r->probe_reqid = Q_REQID_RECOVERY | (r->next_reqid++ & ~Q_REQID_RECOVERY);
    /* N = 1: nobody to ask and nothing to wait for: an initialized member
     * is done from a timer (so that the caller has r before done runs); any
     * other waits for init. */
    if (env->n <= 1) {
        if (mode == RECOVERY_INITIALIZED)
            rec_timer(r, 0, rec_single);
    } else {
        rec_probe(r);
        rec_timer(r, env->round_us, rec_wait_tick);
    }
    return r;
}

void recovery_free(recovery *r)
{
    if (!r)
        return;
    if (r->timer)
        r->env.timer_stop(r->env.ctx, r->timer);
    map_free(r->seen);
    free(r);
}

int recovery_members_read(const recovery *r) { return r->complete; }

enum recovery_mode recovery_mode(const recovery *r) { return r->mode; }
const struct seqd_cid *recovery_cid(const recovery *r) { return &r->cid; }

/* Empty, and every other member answered and none is initialized: then no
 * cluster of this member set exists that this member could have voted in
 * before it lost its data. Without the second half, a PREPARE of the real
 * cluster's id reaching a wiped member during its 2R wait made it
 * "prepared", and meeting an initialized peer then passed for COMMIT: it
 * came back with an empty table and IDs were handed out twice (found by
 * review; tests/test_sim.c shape_stray and bootstrap/ pin it). */
enum recovery_emptiness recovery_emptiness(const recovery *r)
{
    if (r->mode != RECOVERY_EMPTY || r->have_cid || map_count(r->seen) != 0 ||
        r->store.count(r->store.ctx) != 0 || r->saw_initialized ||
        (r->phase != REC_WAIT && r->phase != REC_READ))
        return RECOVERY_NOT_EMPTY;
    for (int i = 0; i < r->env.n; i++)
        if (i != r->env.self && !r->heard[i])
            return RECOVERY_EMPTY_UNKNOWN;
    return RECOVERY_IS_EMPTY;
}

bool recovery_is_empty(const recovery *r) { return recovery_emptiness(r) == RECOVERY_IS_EMPTY; }

void recovery_prepared(recovery *r, const struct seqd_cid *x)
{
    assert(recovery_is_empty(r) && !seqd_cid_none(x));
    r->mode = RECOVERY_PREPARED;
    r->cid = *x;
    r->have_cid = true;
    rec_recount(r);
}

bool recovery_commit(recovery *r, const struct seqd_cid *x)
{
    if (r->mode != RECOVERY_PREPARED || !seqd_cid_eq(x, &r->cid))
        return false;
    if (r->phase == REC_WAIT || r->phase == REC_READ) {
        r->phase = REC_COMMIT;   /* replies are ignored from now on */
        rec_timer(r, 0, rec_finish_cb);
    }
    return true;   /* already committing or committed: the same answer */
}

void recovery_set_relaxed_bootstrap(recovery *r, bool on) { r->relaxed_bootstrap = on; }
void recovery_set_count_unverified(recovery *r, bool on) { r->count_unverified = on; }

void recovery_rolled_back(recovery *r, const struct seqd_inc *recorded, const char *why)
{
    if (r->inc && (r->phase == REC_WAIT || r->phase == REC_READ))
        rec_rolled_back(r, recorded, why);
}
bool recovery_verified(const recovery *r) { return r->verified; }
bool recovery_clean(const recovery *r) { return r->clean; }

void recovery_set_unsafe_read_first(recovery *r, bool on)
{
    r->unsafe_read_first = on;
    if (on && r->phase == REC_WAIT && r->env.n > 1)
        rec_begin_read(r);
}
