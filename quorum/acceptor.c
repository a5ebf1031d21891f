/* quorum/acceptor.c — a member's vote (DESIGN.md §2 step 2); see acceptor.h.
 *
 * The acceptor keeps no table of its own: cur[S] is store->get(S), which is
 * the live table (it may be ahead of the disk: DESIGN.md §3 "READ may see
 * non-durable values"). An accepted ACCEPT raises it at once, so the very
 * next ACCEPT for S already sees the new cur, and the ACK waits in
 * `pending` until the store says the raise is durable.
 *
 * Lifetime: acc_free drops the ACCEPTs still waiting for durability without
 * a reply. The store must not call their done callbacks afterwards, so a
 * caller closes (or flushes) the log first and frees the acceptor last.
 */
#include "acceptor.h"

#include <assert.h>
#include <stdlib.h>

#include "incarnation.h"
#include "qmem.h"

/* Snapshot entries per chunk: the whole frame (header + u8 flags + u32 next
 * + u16 n + entries) must fit in SEQD_MAX_FRAME. */
/* flags, cluster id, next, n */
#define ACC_SNAP_ENTRIES_MAX (SEQD_MAX_FRAME - SEQD_HDR_LEN - 7u - SEQD_CID_LEN - 2u * SEQD_INC_LEN)

/* An ACCEPT whose raise is not durable yet, or a snapshot request whose
 * reader's incarnation is being recorded (DESIGN.md §3: recorded before
 * the answer). */
typedef struct acc_pending {
    struct acc_pending *prev, *next;
    acceptor *a;
    q_reply_fn reply;
    void *cookie;
    uint64_t reqid, new_;
    bool snap;                  /* a snapshot request: answer with what follows */
    uint32_t start;
    struct seqd_inc you;
    bool stopped;
} acc_pending;

struct acceptor {
    q_store store;
    incarn *inc;                /* NULL: no incarnations (unit tests) */
    bool ready, has_state;
    struct seqd_cid cid;        /* sent with every snapshot chunk */
    enum acc_rule rule;
    acc_pending *pending;   /* doubly linked, so a completion unlinks in O(1) */
};

acceptor *acc_new(const q_store *store)
{
    acceptor *a = q_xcalloc(1, sizeof *a);
    a->store = *store;
    a->rule = ACC_RULE_SAFE;
    return a;
}

void acc_free(acceptor *a)
{
    if (!a)
        return;
    while (a->pending) {
        acc_pending *p = a->pending;
        a->pending = p->next;
        free(p);
    }
    free(a);
}

void acc_set_incarn(acceptor *a, incarn *inc) { a->inc = inc; }
void acc_set_ready(acceptor *a, bool ready) { a->ready = ready; }
void acc_set_has_state(acceptor *a, bool has_state) { a->has_state = has_state; }
void acc_set_cid(acceptor *a, const struct seqd_cid *cid) { a->cid = *cid; }
bool acc_ready(const acceptor *a) { return a->ready; }
void acc_set_rule(acceptor *a, enum acc_rule rule) { a->rule = rule; }

/* Request errors are normal replies (the connection stays open), with a
 * short text for whoever logs them. */
static struct seqd_inc acc_self(const acceptor *a)
{
    return a->inc ? inc_self(a->inc) : (struct seqd_inc){0, 0, 0};
}

static void acc_reply_err(uint64_t reqid, int code, const char *text, q_reply_fn reply,
                          void *cookie)
{
    seqd_msg r = {.type = MSG_REPLY_ERR, .reqid = reqid};
    r.u.err.code = (uint16_t)code;
    r.u.err.text = text;
    r.u.err.len = (uint16_t)strlen(text);
    reply(cookie, &r);
}

/* The member's check of a name a peer sent (a peer is a trust boundary as
 * much as a client: front_bin checks client fetches). */
static bool acc_name_ok(const seqd_msg *req, const struct seqd_name *name, q_reply_fn reply,
                        void *cookie)
{
    if (seqd_name_valid(name->s, name->len))
        return true;
    acc_reply_err(req->reqid, ERR_BAD_NAME, "bad sequence name", reply, cookie);
    return false;
}

/* A READ is answered from the live table: a value that is not durable yet
 * only makes the reader's range start higher, never overlap. */
static void acc_read(acceptor *a, const seqd_msg *req, q_reply_fn reply, void *cookie)
{
    const struct seqd_name *name = &req->u.read.name;
    if (!acc_name_ok(req, name, reply, cookie))
        return;
    if (!a->ready) {
        acc_reply_err(req->reqid, ERR_RECOVERING, "recovering", reply, cookie);
        return;
    }
    seqd_msg r = {.type = MSG_VALUE, .reqid = req->reqid};
    r.u.value.cur = a->store.get(a->store.ctx, name);
    r.u.value.inc = acc_self(a);
    reply(cookie, &r);
}

static void acc_unlink(acc_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->a->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* The ACK leaves only now that the raise is durable: a committed range must
 * survive a power loss of every member (DESIGN.md §3). */
static void acc_raise_done(void *arg, int err)
{
    acc_pending *p = arg;
    assert(p->a && (p->prev || p->a->pending == p));   /* still pending: done once */
    acc_unlink(p);
    if (err == 0) {
        seqd_msg r = {.type = MSG_ACK, .reqid = p->reqid};
        r.u.ack.new_ = p->new_;
        r.u.ack.inc = acc_self(p->a);
        p->reply(p->cookie, &r);
    } else {
        acc_reply_err(p->reqid, ERR_STORAGE, "the log could not be written", p->reply,
                      p->cookie);
    }
    free(p);
}

/* The acceptance rule, DESIGN.md §2:
 *
 *   accept ACCEPT(S, expect=h, new=v)  iff  cur[S] <= h,  then cur[S] = v.
 *
 * Why two committed rounds (h1,v1) and (h2,v2) hand out disjoint ranges
 * [h1,v1) and [h2,v2): each was accepted by a quorum of Q members, and two
 * quorums share at least one member m. m accepted one of them first, say
 * (h1,v1); from then on cur[m] >= v1, because cur only grows. m accepted
 * (h2,v2) later, which it does only while cur[m] <= h2; so v1 <= h2, and
 * [h1,v1) lies entirely below [h2,v2). The same argument gives real-time
 * order: a round that starts after (h1,v1) committed needs Q members with
 * cur <= h2, one of which is among the Q that hold cur >= v1, so h2 >= v1.
 *
 * ACC_RULE_RRSEQ is rr_seq's rule (accept iff cur < new, `expect` ignored).
 * It breaks the argument above: m can accept (h,h+7) and then (h,h+100)
 * because h+7 < h+100, so two coordinators that read the same h both
 * commit, with overlapping ranges. It exists only so that the simulator
 * can show that its checker finds that (tests/test_sim.c).
 */
static bool acc_rule_accepts(const acceptor *a, uint64_t cur, uint64_t expect, uint64_t new_)
{
    if (a->rule == ACC_RULE_RRSEQ)
        return cur < new_;
    return cur <= expect;
}

static void acc_accept(acceptor *a, const seqd_msg *req, q_reply_fn reply, void *cookie)
{
    const struct seqd_name *name = &req->u.accept.name;
    uint64_t expect = req->u.accept.expect, new_ = req->u.accept.new_;
    if (!acc_name_ok(req, name, reply, cookie))
        return;
    if (!seqd_accept_valid(expect, new_)) {
        acc_reply_err(req->reqid, ERR_BAD_REQUEST, "ACCEPT needs 1 <= expect < new", reply,
                      cookie);
        return;
    }
    if (!a->ready) {
        acc_reply_err(req->reqid, ERR_RECOVERING, "recovering", reply, cookie);
        return;
    }
    uint64_t cur = a->store.get(a->store.ctx, name);
    if (!acc_rule_accepts(a, cur, expect, new_)) {
        seqd_msg r = {.type = MSG_NACK, .reqid = req->reqid};
        r.u.value.cur = cur;
        r.u.value.inc = acc_self(a);
        reply(cookie, &r);
        return;
    }
    assert(cur < new_);   /* both rules only ever raise cur */
    acc_pending *p = q_xcalloc(1, sizeof *p);
    p->a = a;
    p->reply = reply;
    p->cookie = cookie;
    p->reqid = req->reqid;
    p->new_ = new_;
    p->next = a->pending;
    if (a->pending)
        a->pending->prev = p;
    a->pending = p;
    if (a->store.raise(a->store.ctx, name, new_, acc_raise_done, p) < 0) {
        acc_unlink(p);
        free(p);
        acc_reply_err(req->reqid, ERR_STORAGE, "the log could not be written", reply, cookie);
        return;
    }
    /* q_store.raise raises in memory at once: cur only grows, and a READ
     * from now on sees at least new (the ACK waits for durability). */
    assert(a->store.get(a->store.ctx, name) >= new_);
}

static uint8_t acc_snap_flags(const acceptor *a)
{
    bool initialized = !seqd_cid_none(&a->cid);
    bool marked = a->inc && inc_marked(a->inc);
    return (uint8_t)((a->has_state && !marked ? SNAP_HAS_STATE : 0) |
                     (initialized ? SNAP_INITIALIZED : 0) | (marked ? SNAP_MARKED : 0) |
                     (a->ready ? SNAP_READY : 0));
}

/* Snapshots are served in every state: a recovering member that has state
 * is exactly what another member's recovery may need (DESIGN.md §3, a
 * whole-cluster restart). Entries are packed from index `start` of the
 * live table while they fit one frame; the table only appends, so `next`
 * stays a valid cursor while it grows. Every chunk says where the sender
 * stands (acc_snap_flags), who it is (its incarnation) and what it had
 * recorded for the reader before this read (`you`). */
static void acc_snapshot_send(acceptor *a, uint64_t reqid, uint32_t start,
                              const struct seqd_inc *you, uint8_t extra, q_reply_fn reply,
                              void *cookie)
{
    uint8_t *buf = malloc(ACC_SNAP_ENTRIES_MAX);
    if (!buf)
        q_oom();
    uint64_t count = a->store.count(a->store.ctx);
    uint64_t i = (extra & SNAP_YOU_STALE) ? count : start;
    uint32_t used = 0;
    uint16_t n = 0;
    for (; i < count && n < UINT16_MAX; i++) {
        struct seqd_name name;
        uint64_t cur;
        a->store.entry(a->store.ctx, i, &name, &cur);
        if (used + 1u + name.len + 8u > ACC_SNAP_ENTRIES_MAX)
            break;
        used += (uint32_t)snap_entry_put(buf + used, name.s, name.len, cur);
        n++;
    }
    seqd_msg r = {.type = MSG_SNAP_CHUNK, .reqid = reqid};
    r.u.snap.flags = (uint8_t)(acc_snap_flags(a) | extra | (i >= count ? SNAP_DONE : 0));
    if (extra & SNAP_YOU_STALE)
        r.u.snap.flags &= (uint8_t)~SNAP_HAS_STATE;   /* nothing to count: a verdict */
    r.u.snap.cid = a->cid;
    r.u.snap.inc = acc_self(a);
    r.u.snap.you = *you;
    r.u.snap.next = (uint32_t)(i > UINT32_MAX ? UINT32_MAX : i);
    r.u.snap.n = n;
    r.u.snap.entries = buf;
    r.u.snap.entries_len = used;
    reply(cookie, &r);
    free(buf);
}

static void acc_snap_recorded(void *arg, int err)
{
    acc_pending *p = arg;
    assert(p->snap && p->a && (p->prev || p->a->pending == p));
    acc_unlink(p);
    if (err == 0)
        acc_snapshot_send(p->a, p->reqid, p->start, &p->you, p->stopped ? SNAP_YOU_STOPPED : 0,
                          p->reply, p->cookie);
    else
        acc_reply_err(p->reqid, ERR_STORAGE, "the log could not be written", p->reply,
                      p->cookie);
    free(p);
}

/* A reader whose incarnation this member recorded as superseded is told
 * so, and gets nothing else; a new incarnation is recorded durably before
 * the answer leaves, so that N-Q+1 members hold it before the reader can
 * count anyone's values (quorum/incarnation.h). */
static void acc_snapshot(acceptor *a, int from, const seqd_msg *req, q_reply_fn reply,
                         void *cookie)
{
    const struct seqd_inc *theirs = &req->u.snap_req.inc;
    struct seqd_inc you = {0, 0, 0};
    if (a->inc == NULL || from < 0 || theirs->counter == 0) {
        acc_snapshot_send(a, req->reqid, req->u.snap_req.start, &you, 0, reply, cookie);
        return;
    }
    if (inc_is_stale(a->inc, from, theirs, &you)) {
        acc_snapshot_send(a, req->reqid, req->u.snap_req.start, &you, SNAP_YOU_STALE, reply,
                          cookie);
        return;
    }
    bool stopped = false;
    inc_recorded_before(a->inc, from, theirs, &you, &stopped);
    acc_pending *p = q_xcalloc(1, sizeof *p);
    *p = (acc_pending){.a = a, .reply = reply, .cookie = cookie, .reqid = req->reqid,
                       .snap = true, .start = req->u.snap_req.start, .you = you,
                       .stopped = stopped, .next = a->pending};
    if (a->pending)
        a->pending->prev = p;
    a->pending = p;
    int rc = inc_record(a->inc, from, theirs, acc_snap_recorded, p);
    if (rc == 1)
        return;
    acc_unlink(p);
    free(p);
    if (rc < 0)
        acc_reply_err(req->reqid, ERR_STORAGE, "the log could not be written", reply, cookie);
    else
        acc_snapshot_send(a, req->reqid, req->u.snap_req.start, &you,
                          stopped ? SNAP_YOU_STOPPED : 0, reply, cookie);
}

void acc_handle(acceptor *a, int from, const seqd_msg *req, q_reply_fn reply, void *cookie)
{
    switch (req->type) {
    case MSG_READ:
        acc_read(a, req, reply, cookie);
        break;
    case MSG_ACCEPT:
        acc_accept(a, req, reply, cookie);
        break;
    case MSG_SNAP_REQ:
        acc_snapshot(a, from, req, reply, cookie);
        break;
    default:
        acc_reply_err(req->reqid, ERR_BAD_REQUEST, "not an acceptor request", reply, cookie);
        break;
    }
}
