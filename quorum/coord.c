/* quorum/coord.c — the coordinator of DESIGN.md §2; see coord.h.
 *
 * Per sequence S a small state machine (enum cseq_phase) with a FIFO queue
 * of requests and at most one round in flight. A round serves a batch: the
 * queued requests in arrival order, up to SEQD_COUNT_MAX IDs.
 *
 *   IDLE --submit--> KICK --timer 0--> [READ --Q VALUEs-->] ACCEPT
 *   ACCEPT --Q fresh ACKs--> commit: slice [h, h+n), next batch or IDLE
 *   READ/ACCEPT --too many NACKs/errors, reply older than R, timer R-->
 *       failed: batch back to the queue front, h = the largest value seen,
 *       retry at once, or after a jittered BACKOFF from the second failure
 *       in a row; requests past their deadline end with ERR_TIMEOUT.
 *
 * Safety does not depend on how h is chosen (read quorum, the fast path's
 * learned value, the largest NACK): a commit of (h, h+n) needs Q members
 * that had cur <= h when they accepted; any earlier commit (h1,v1) left Q
 * members with cur >= v1; the two quorums intersect, so h >= v1 and the
 * ranges are disjoint. Real-time order follows from the same intersection:
 * if (h1,v1) committed before this round's ACCEPTs were sent, the common
 * member already had cur >= v1 when it accepted, so h >= v1. The choice of
 * h only decides how often a round is refused (a stale learned value costs
 * one NACKed round, after which h is the largest cur seen).
 *
 * What safety does depend on: counting only ACKs that answer this round
 * (fresh reqids per phase, ack.new_ checked) and only while the round is
 * younger than R by env->now_us at the moment of counting. A recovering
 * member waits 2R before it reads (recovery.c), which is sound only if no
 * round counts an ACK older than R — a timer alone would not ensure that,
 * because a stalled process may run its reply handlers before its timers.
 *
 * reqid layout: bit 63 clear (Q_REQID_RECOVERY belongs to recovery), bits
 * 32..62 the sequence's index, bits 0..31 the phase's id; a reply whose id
 * is not the sequence's current one is late and ignored.
 *
 * done callbacks may call coord_submit, never coord_fail_all / coord_free.
 */
#include "coord.h"

#include <stdlib.h>

#include "qmap.h"

#define COORD_BACKOFF_BASE_US 200u
#define COORD_BACKOFF_CAP_US 20000u

typedef struct creq {
    struct creq *next;
    uint32_t count;
    uint64_t deadline;
    coord_done_fn done;
    void *arg;
} creq;

typedef struct creq_list {
    creq *head, *tail;
} creq_list;

enum cseq_phase {
    CS_IDLE,      /* nothing queued, no timer but maybe the deadline's */
    CS_KICK,      /* a round starts from a 0 timer, after the submitter's turn */
    CS_READ,      /* READ sent to all, collecting the first Q VALUEs */
    CS_ACCEPT,    /* ACCEPT sent to all, counting ACKs */
    CS_BACKOFF,   /* sleeping after repeated failed rounds */
    CS_SETTLING   /* between phases, done callbacks may be running */
};

typedef struct cseq {
    struct coord *c;
    uint32_t idx;
    struct seqd_name name;
    enum cseq_phase phase;
    creq_list queue;        /* waiting, arrival order */
    creq_list batch;        /* served by the round in flight, arrival order */
    void *step_timer;       /* KICK, BACKOFF, or the round's R */
    void *deadline_timer;
    uint64_t deadline_at;   /* when deadline_timer fires */
    uint32_t rid;           /* id of the phase in flight */
    uint32_t answered;      /* members that replied in this phase */
    int oks, bad;
    uint64_t sent_us;
    uint64_t h, new_;       /* READ: max VALUE so far; ACCEPT: the round */
    uint64_t seen;          /* largest cur seen in this phase's replies */
    uint64_t learned;       /* h for the fast path, if learned_ok */
    bool learned_ok;
    int fails;              /* failed rounds in a row */
} cseq;

struct coord {
    q_env env;
    bool fast_path, coalescing;
    coord_stats st;
    qmap *names;            /* name -> index in seqs */
    cseq **seqs;
    size_t nseqs, cap;
    uint32_t next_rid;
};

static void seq_start_round(cseq *s);

coord *coord_new(const q_env *env)
{
    coord *c = q_xcalloc(1, sizeof *c);
    c->env = *env;
    c->fast_path = true;
    c->coalescing = true;
    c->names = qmap_new();
    /* Random first id: a restarted member does not reuse its old ids. */
    c->next_rid = (uint32_t)env->random(env->ctx);
    return c;
}

void coord_set_fast_path(coord *c, bool on) { c->fast_path = on; }
void coord_set_coalescing(coord *c, bool on) { c->coalescing = on; }
void coord_get_stats(const coord *c, coord_stats *s) { *s = c->st; }

static uint64_t coord_now(const coord *c) { return c->env.now_us(c->env.ctx); }

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

/* Puts `front` (older requests) before everything in l. */
static void list_prepend(creq_list *l, creq_list *front)
{
    if (!front->head)
        return;
    front->tail->next = l->head;
    if (!l->head)
        l->tail = front->tail;
    l->head = front->head;
    front->head = front->tail = NULL;
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
 * O(requests) per call: the queue of one sequence is short, because one
 * round serves all of it. */
static void seq_arm_deadline(cseq *s)
{
    coord *c = s->c;
    uint64_t m = list_min_deadline(&s->batch, list_min_deadline(&s->queue, UINT64_MAX));
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

/* Requests past their deadline end with ERR_TIMEOUT. Ones in the round in
 * flight are dropped from its batch: if the round commits, their part of
 * the range is a gap, which is allowed; duplicates are not. */
static void seq_expire(cseq *s)
{
    creq_list dead = {0};
    uint64_t now = coord_now(s->c);
    list_split_expired(&s->queue, now, &dead);
    list_split_expired(&s->batch, now, &dead);
    list_finish(s->c, dead, ERR_TIMEOUT);
    seq_arm_deadline(s);
}

static void seq_deadline_fire(void *arg)
{
    cseq *s = arg;
    s->deadline_timer = NULL;
    seq_expire(s);
}

/* ---- rounds ------------------------------------------------------------- */

static void seq_step_fire(void *arg);

static uint64_t seq_reqid(const cseq *s) { return ((uint64_t)s->idx << 32) | s->rid; }

/* A fresh id per phase, so replies to an earlier phase are recognized as
 * late by their reqid alone. */
static void seq_new_phase(cseq *s, enum cseq_phase phase)
{
    coord *c = s->c;
    if (++c->next_rid == 0)
        c->next_rid = 1;
    s->rid = c->next_rid;
    s->phase = phase;
    s->answered = 0;
    s->oks = s->bad = 0;
    s->seen = 0;
    s->sent_us = coord_now(c);
    coord_timer_stop(c, &s->step_timer);
    s->step_timer = coord_timer(c, c->env.round_us, seq_step_fire, s);
}

static void seq_send_read(cseq *s)
{
    coord *c = s->c;
    seq_new_phase(s, CS_READ);
    s->h = 0;
    c->st.reads++;
    seqd_msg m = {.type = MSG_READ, .reqid = seq_reqid(s)};
    m.u.read.name = s->name;
    for (int i = 0; i < c->env.n; i++)
        c->env.send(c->env.ctx, i, &m);
}

/* Takes the next batch off the queue: arrival order, at most
 * SEQD_COUNT_MAX IDs in all (one request alone always fits). */
static void seq_take_batch(cseq *s)
{
    uint64_t sum = 0;
    while (s->queue.head) {
        creq *r = s->queue.head;
        if (s->batch.head && (sum + r->count > SEQD_COUNT_MAX || !s->c->coalescing))
            break;
        s->queue.head = r->next;
        if (!s->queue.head)
            s->queue.tail = NULL;
        list_push(&s->batch, r);
        sum += r->count;
    }
}

static uint64_t seq_batch_sum(const cseq *s)
{
    uint64_t sum = 0;
    for (const creq *r = s->batch.head; r; r = r->next)
        sum += r->count;
    return sum;
}

/* ACCEPT(h, h+n) for the batch. h comes from a read here whenever the
 * batch does not fit (see seq_start_round), so it is a value some member
 * really holds: a request that cannot fit below 2^64-1 above it never will
 * (cur only grows) and gets ERR_EXHAUSTED. If the batch as a whole does not
 * fit, its tail waits for the next round. Returns false if nothing was
 * left to send. */
static bool seq_send_accept(cseq *s, uint64_t h)
{
    coord *c = s->c;
    uint64_t room = UINT64_MAX - h, sum = 0;
    creq_list all = list_take(&s->batch), rest = {0}, exhausted = {0};
    for (creq *r = all.head, *next; r; r = next) {
        next = r->next;
        if (r->count > room)
            list_push(&exhausted, r);
        else if (!rest.head && sum + r->count <= room) {
            list_push(&s->batch, r);
            sum += r->count;
        } else
            list_push(&rest, r);
    }
    list_prepend(&s->queue, &rest);
    if (exhausted.head) {
        s->phase = CS_SETTLING;
        list_finish(c, exhausted, ERR_EXHAUSTED);
    }
    if (!s->batch.head)
        return false;
    seq_new_phase(s, CS_ACCEPT);
    s->h = h;
    s->new_ = h + sum;
    c->st.rounds++;
    seqd_msg m = {.type = MSG_ACCEPT, .reqid = seq_reqid(s)};
    m.u.accept.expect = s->h;
    m.u.accept.new_ = s->new_;
    m.u.accept.name = s->name;
    for (int i = 0; i < c->env.n; i++)
        c->env.send(c->env.ctx, i, &m);
    return true;
}

/* Serves the queue: expired requests end, the next batch starts with the
 * fast path (learned h) or a read. The learned value may be above every
 * member's cur (the `new` of a round nobody accepted), so near 2^64 a
 * batch that does not fit above it reads first rather than calling the
 * sequence exhausted. Called in a non-idle phase, so requests submitted
 * from done callbacks meanwhile only queue. */
static void seq_start_round(cseq *s)
{
    coord *c = s->c;
    s->phase = CS_SETTLING;
    seq_expire(s);
    if (!s->queue.head) {
        s->phase = CS_IDLE;
        return;
    }
    seq_take_batch(s);
    if (c->fast_path && s->learned_ok && seq_batch_sum(s) <= UINT64_MAX - s->learned)
        seq_send_accept(s, s->learned);   /* fits: always sends */
    else
        seq_send_read(s);
}

/* Q ACKs counted in time: [h, h+n) is ours. Sliced in arrival order; a
 * request whose deadline has passed meanwhile gets ERR_TIMEOUT and leaves
 * a gap rather than a range its client no longer waits for. */
static void seq_commit(cseq *s)
{
    coord *c = s->c;
    coord_timer_stop(c, &s->step_timer);
    s->learned = s->new_;
    s->learned_ok = true;
    s->fails = 0;
    s->phase = CS_SETTLING;
    creq_list done = list_take(&s->batch);
    uint64_t first = s->h, now = coord_now(c);
    for (creq *r = done.head, *next; r; r = next) {
        next = r->next;
        if (r->deadline <= now) {
            c->st.timeouts++;
            r->done(r->arg, ERR_TIMEOUT, 0, 0);
        } else {
            c->st.fetches++;
            c->st.ids += r->count;
            r->done(r->arg, 0, first, r->count);
        }
        first += r->count;
        free(r);
    }
    seq_start_round(s);
}

static void seq_backoff_fire(void *arg)
{
    cseq *s = arg;
    s->step_timer = NULL;
    seq_start_round(s);
}

/* The phase failed: too many NACKs or errors, a reply older than R, or the
 * R timer. Next h = the largest value seen, including our own new (some
 * members may have accepted it): any h is safe, a higher one just avoids
 * being refused again. Two failures in a row mean another coordinator is
 * competing for S: sleep a random part of a growing window, so that one
 * of the two gets a quorum. */
static void seq_round_failed(cseq *s)
{
    coord *c = s->c;
    coord_timer_stop(c, &s->step_timer);
    uint64_t h = s->seen;
    if (s->phase == CS_ACCEPT) {
        c->st.conflicts++;
        if (s->new_ > h)
            h = s->new_;
    }
    if (s->learned_ok && s->learned > h)
        h = s->learned;
    if (h >= 1) {
        s->learned = h;
        s->learned_ok = true;
    }
    s->fails++;
    s->phase = CS_SETTLING;
    list_prepend(&s->queue, &s->batch);
    seq_expire(s);
    if (!s->queue.head) {
        s->phase = CS_IDLE;
        return;
    }
    if (s->fails < 2) {
        seq_start_round(s);
        return;
    }
    unsigned k = (unsigned)(s->fails - 2);
    uint64_t window = k >= 7 ? COORD_BACKOFF_CAP_US : (uint64_t)COORD_BACKOFF_BASE_US << k;
    if (window > COORD_BACKOFF_CAP_US)
        window = COORD_BACKOFF_CAP_US;
    s->phase = CS_BACKOFF;
    s->step_timer = coord_timer(c, c->env.random(c->env.ctx) % (window + 1), seq_backoff_fire, s);
}

static void seq_step_fire(void *arg)
{
    cseq *s = arg;
    s->step_timer = NULL;
    switch (s->phase) {
    case CS_READ:
    case CS_ACCEPT:
        seq_round_failed(s);   /* R passed without a quorum */
        break;
    default:
        seq_start_round(s);    /* KICK */
        break;
    }
}

/* Too many refusals: Q good replies can no longer arrive. */
static void seq_count_bad(cseq *s)
{
    int n = s->c->env.n;
    if (++s->bad > n - q_quorum(n))
        seq_round_failed(s);
}

static void seq_on_read_reply(cseq *s, const seqd_msg *m, bool fresh)
{
    if (m->type != MSG_VALUE) {
        seq_count_bad(s);   /* RECOVERING and the like do not count */
        return;
    }
    if (m->u.value.cur > s->seen)
        s->seen = m->u.value.cur;
    if (!fresh) {
        seq_round_failed(s);
        return;
    }
    if (m->u.value.cur > s->h)
        s->h = m->u.value.cur;
    if (++s->oks < q_quorum(s->c->env.n))
        return;
    coord_timer_stop(s->c, &s->step_timer);
    if (s->h < 1)
        s->h = 1;   /* a member never reports less than 1; be strict anyway */
    s->phase = CS_SETTLING;
    if (!seq_send_accept(s, s->h))
        seq_start_round(s);   /* all exhausted: next batch, if any */
}

static void seq_on_accept_reply(cseq *s, const seqd_msg *m, bool fresh)
{
    switch (m->type) {
    case MSG_ACK:
        if (m->u.ack.new_ != s->new_) {
            seq_count_bad(s);
            return;
        }
        if (!fresh) {
            seq_round_failed(s);   /* the round is over: never count it */
            return;
        }
        if (++s->oks >= q_quorum(s->c->env.n))
            seq_commit(s);
        return;
    case MSG_NACK:
        s->c->st.nacks++;
        if (m->u.value.cur > s->seen)
            s->seen = m->u.value.cur;
        seq_count_bad(s);
        return;
    default:
        seq_count_bad(s);
        return;
    }
}

void coord_on_reply(coord *c, int member, const seqd_msg *reply)
{
    uint64_t reqid = reply->reqid;
    if ((reqid & Q_REQID_RECOVERY) || member < 0 || member >= c->env.n)
        return;
    uint64_t idx = reqid >> 32;
    if (idx >= c->nseqs)
        return;
    cseq *s = c->seqs[idx];
    if ((uint32_t)reqid != s->rid || (s->phase != CS_READ && s->phase != CS_ACCEPT))
        return;
    uint32_t bit = UINT32_C(1) << member;
    if (s->answered & bit)
        return;
    s->answered |= bit;
    /* The round's age by the clock, now: see the top of this file. */
    bool fresh = coord_now(c) - s->sent_us < c->env.round_us;
    if (s->phase == CS_READ)
        seq_on_read_reply(s, reply, fresh);
    else
        seq_on_accept_reply(s, reply, fresh);
}

/* ---- submit, fail, free ------------------------------------------------- */

static cseq *coord_seq(coord *c, const struct seqd_name *name)
{
    size_t i = qmap_insert(c->names, name->s, name->len, c->nseqs);
    if (i < c->nseqs)
        return c->seqs[qmap_value(c->names, i)];
    if (c->nseqs >= (UINT64_C(1) << 31))
        q_oom();   /* 2^31 sequences: the reqid layout has no room */
    if (c->nseqs == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        cseq **a = realloc(c->seqs, cap * sizeof *a);
        if (!a)
            q_oom();
        c->seqs = a;
        c->cap = cap;
    }
    cseq *s = q_xcalloc(1, sizeof *s);
    s->c = c;
    s->idx = (uint32_t)c->nseqs;
    s->name = *name;
    c->seqs[c->nseqs++] = s;
    return s;
}

void coord_submit(coord *c, const struct seqd_name *name, uint32_t count, uint64_t deadline_us,
                  coord_done_fn done, void *arg)
{
    cseq *s = coord_seq(c, name);
    creq *r = q_xcalloc(1, sizeof *r);
    r->count = count;
    r->deadline = deadline_us;
    r->done = done;
    r->arg = arg;
    list_push(&s->queue, r);
    seq_arm_deadline(s);
    /* Never start the round here: the caller's turn ends first, so that
     * everything submitted in one turn shares the round and no done
     * callback runs inside coord_submit. */
    if (s->phase == CS_IDLE) {
        s->phase = CS_KICK;
        s->step_timer = coord_timer(c, 0, seq_step_fire, s);
    }
}

void coord_fail_all(coord *c, int err)
{
    for (size_t i = 0; i < c->nseqs; i++) {
        cseq *s = c->seqs[i];
        coord_timer_stop(c, &s->step_timer);
        coord_timer_stop(c, &s->deadline_timer);
        s->phase = CS_IDLE;
        s->rid = 0;
        list_prepend(&s->queue, &s->batch);
        list_finish(c, list_take(&s->queue), err);
    }
}

void coord_free(coord *c)
{
    if (!c)
        return;
    coord_fail_all(c, ERR_SHUTDOWN);
    for (size_t i = 0; i < c->nseqs; i++) {
        coord_timer_stop(c, &c->seqs[i]->step_timer);
        coord_timer_stop(c, &c->seqs[i]->deadline_timer);
        free(c->seqs[i]);
    }
    free(c->seqs);
    qmap_free(c->names);
    free(c);
}
