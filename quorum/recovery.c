/* quorum/recovery.c — what every start of a member does before it serves
 * (DESIGN.md §3); see recovery.h for the contract.
 *
 * Phases: WAIT (2R) -> READ (snapshot chains from the other members, asked
 * again every R) -> RAISE (make the maxima durable locally) -> DONE.
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
 * Lifetime: the raises' done callbacks point at the recovery, so free it
 * only once the store will not call them (after done, or after the log is
 * closed). done may call recovery_free: nothing touches r after done.
 */
#include "recovery.h"

#include <stdlib.h>

#include "qmem.h"

#include <assert.h>

enum rec_phase { REC_WAIT, REC_READ, REC_UNSAFE_WAIT, REC_RAISE, REC_DONE };

/* What we know of one other member in the current read. */
enum rec_mstate {
    RM_IDLE,        /* nothing outstanding: asked again at the next tick */
    RM_ASKED,       /* first chunk requested */
    RM_CHAIN,       /* a chain with state is under way */
    RM_STATELESS,   /* its latest answer said it has no state */
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
    bool has_state;
    recovery_done_fn done;
    void *arg;
    enum rec_phase phase;
    void *timer;
    map *seen;                     /* name -> max cur read */
    rec_member m[SEQD_MAX_MEMBERS];
    uint64_t next_reqid;
    int complete;                   /* members read completely, with state */
    int pending_raises;
    bool raise_failed, retry_all, new_cluster, unsafe_read_first;
};

static void rec_tick(void *arg);
static void rec_finish(recovery *r, bool new_cluster);

static int rec_need_with_state(const recovery *r)
{
    return r->env.n - q_quorum(r->env.n) + 1;
}

/* Members without state that, with this one, make N-Q+1 members without
 * state (at least one other, so that two members starting together form
 * a cluster of 2 or 3 and a lone member never decides alone). */
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
    assert(r->phase == REC_READ && i >= 0 && i < r->env.n && i != r->env.self);
    r->m[i].reqid = Q_REQID_RECOVERY | (r->next_reqid++ & ~Q_REQID_RECOVERY);
    r->m[i].start = start;
    seqd_msg q = {.type = MSG_SNAP_REQ, .reqid = r->m[i].reqid};
    q.u.snap_req.start = start;
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

static void rec_wait_over(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_begin_read(r);
}

/* Every R: a member whose chain made no progress, that answered with an
 * error, or that said it has no state, is asked again from the start. The
 * last rule keeps "no state" answers fresh: one counts for a new cluster
 * only until the next tick, so a member that has since recovered is not
 * remembered as empty (see rec_check_new_cluster). */
static void rec_tick(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    assert(r->phase == REC_READ);   /* rec_finish stops this timer */
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

/* A new cluster. If N-Q+1 members (self included) have no state at once,
 * either none of them ever had state — then at most Q-1 members were ever
 * ready, so no round ever committed and starting fresh is safe — or more
 * than N-Q members lost their data at once, which is outside the fault
 * model (DESIGN.md §3). DESIGN.md's literal rule, "every other member
 * empty", deadlocks when members start one after another: A initializes
 * with B, then C sees A initialized and B empty, B sees A initialized and C
 * empty, forever.
 * "At once" is approximated by freshness: a "no state" answer counts only
 * until the next tick (R), when that member is asked again, so answers
 * older than R are never added up (without that, B empty at t1 and C empty
 * at t2 could start a fresh cluster although B recovered in between and C
 * was wiped after: two members short of data at any one time, within the
 * fault model for N = 5, and unsafe). What is left is a window of about R
 * in which one member finishes its recovery and another loses its data; a
 * SNAP flag "I lost my data" (proto.h) would close it. Whatever complete or
 * partial snapshots with state we have are adopted too, which costs
 * nothing. */
static void rec_check_new_cluster(recovery *r)
{
    if (r->has_state || r->phase != REC_READ)
        return;
    int stateless = 0;
    for (int i = 0; i < r->env.n; i++)
        stateless += (i != r->env.self && r->m[i].st == RM_STATELESS);
    assert(stateless + r->complete <= r->env.n - 1);
    if (stateless >= rec_need_stateless(r))
        rec_finish(r, true);
}

static void rec_unsafe_wait_over(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    rec_finish(r, r->new_cluster);
}

static void rec_check_enough(recovery *r)
{
    if (r->phase != REC_READ || r->complete < rec_need_with_state(r))
        return;
    if (r->unsafe_read_first) {
        /* The broken order, for the simulator only: read, then wait. */
        r->phase = REC_UNSAFE_WAIT;
        r->new_cluster = false;
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
    if (!(c->u.snap.flags & SNAP_HAS_STATE)) {
        /* Never had state, or lost it mid-chain: either way it does not
         * count, and the chain so far is abandoned. */
        m->st = RM_STATELESS;
        m->reqid = 0;
        rec_check_new_cluster(r);
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

void recovery_on_reply(recovery *r, int member, const seqd_msg *reply)
{
    if (r->phase != REC_READ || member < 0 || member >= r->env.n || member == r->env.self)
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
           (r->phase == REC_WAIT && r->env.n <= 1));
    r->phase = REC_DONE;
    if (r->timer) {
        r->env.timer_stop(r->env.ctx, r->timer);
        r->timer = NULL;
    }
    r->done(r->arg, 0, r->new_cluster);   /* may free r */
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
    r->pending_raises--;
    rec_maybe_done(r);
}

static void rec_finish(recovery *r, bool new_cluster)
{
    assert(r->phase == REC_READ || r->phase == REC_UNSAFE_WAIT);
    r->phase = REC_RAISE;
    r->new_cluster = new_cluster;
    if (r->timer) {
        r->env.timer_stop(r->env.ctx, r->timer);
        r->timer = NULL;
    }
    rec_raise_all(r);
}

static void rec_single(void *arg)
{
    recovery *r = arg;
    r->timer = NULL;
    r->new_cluster = !r->has_state;
    rec_done_now(r);
}

recovery *recovery_start(const q_env *env, const q_store *store, bool has_state,
                         recovery_done_fn done, void *arg)
{
    recovery *r = q_xcalloc(1, sizeof *r);
    r->env = *env;
    r->store = *store;
    r->has_state = has_state;
    r->done = done;
    r->arg = arg;
    r->seen = q_map_new();
    r->next_reqid = env->random(env->ctx);
    r->phase = REC_WAIT;
    /* N = 1: nobody to ask and nothing to wait for. Done from a timer so
     * that the caller has r before done runs. */
    if (env->n <= 1)
        rec_timer(r, 0, rec_single);
    else
        rec_timer(r, 2 * env->round_us, rec_wait_over);
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

void recovery_set_unsafe_read_first(recovery *r, bool on)
{
    r->unsafe_read_first = on;
    if (on && r->phase == REC_WAIT && r->env.n > 1)
        rec_begin_read(r);
}
