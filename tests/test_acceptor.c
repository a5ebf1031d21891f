/* tests/test_acceptor.c — the acceptor over a fake store whose durability
 * the test controls: ACK only once durable, NACK with cur, malformed
 * ACCEPTs, "recovering" replies, the rr_seq rule, and snapshot chunking.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/frame.h"
#include "../quorum/acceptor.h"
#include "../quorum/qmem.h"

#define FAKE_PENDING_MAX 64

typedef struct fake_store {
    map *t;
    struct { q_done_fn done; void *arg; } pend[FAKE_PENDING_MAX];
    int npend;
    int raise_rc;          /* returned by raise (0, or -errno) */
} fake_store;

/* A reply, copied: the acceptor's buffers live only during the call. */
typedef struct fake_reply {
    seqd_msg m;
    uint8_t *buf;
} fake_reply;

typedef struct fake_replies {
    fake_reply r[16];
    int n;
} fake_replies;

static uint64_t fake_get(void *ctx, const struct seqd_name *name)
{
    fake_store *f = ctx;
    long i = map_find(f->t, name->s, name->len);
    return i < 0 ? 1 : map_value(f->t, (size_t)i);
}

static int fake_raise(void *ctx, const struct seqd_name *name, uint64_t value, q_done_fn done,
                      void *arg)
{
    fake_store *f = ctx;
    if (f->raise_rc)
        return f->raise_rc;
    size_t i = q_map_insert(f->t, name->s, name->len, value);
    if (map_value(f->t, i) < value)
        map_set(f->t, i, value);
    cr_assert(f->npend < FAKE_PENDING_MAX);
    f->pend[f->npend].done = done;
    f->pend[f->npend].arg = arg;
    f->npend++;
    return 0;
}

static uint64_t fake_count(void *ctx)
{
    fake_store *f = ctx;
    return map_count(f->t);
}

static void fake_entry(void *ctx, uint64_t i, struct seqd_name *name, uint64_t *value)
{
    fake_store *f = ctx;
    uint8_t len;
    const char *s = map_name(f->t, (size_t)i, &len);
    seqd_name_set(name, s, len);
    *value = map_value(f->t, (size_t)i);
}

/* The log's fsync completes: every pending raise ends with err. */
static void fake_flush(fake_store *f, int err)
{
    int n = f->npend;
    f->npend = 0;
    for (int i = 0; i < n; i++)
        f->pend[i].done(f->pend[i].arg, err);
}

static void fake_on_reply(void *cookie, const seqd_msg *m)
{
    fake_replies *rs = cookie;
    cr_assert(rs->n < 16);
    fake_reply *r = &rs->r[rs->n++];
    r->m = *m;
    r->buf = NULL;
    if (m->type == MSG_SNAP_CHUNK) {
        r->buf = malloc(m->u.snap.entries_len ? m->u.snap.entries_len : 1);
        memcpy(r->buf, m->u.snap.entries, m->u.snap.entries_len);
        r->m.u.snap.entries = r->buf;
    } else if (m->type == MSG_REPLY_ERR) {
        r->m.u.err.text = NULL;   /* only the code is checked */
    }
}

static void replies_clear(fake_replies *rs)
{
    for (int i = 0; i < rs->n; i++)
        free(rs->r[i].buf);
    rs->n = 0;
}

static fake_store store_ctx;
static q_store store;
static fake_replies replies;
static acceptor *acc;

static void setup(void)
{
    memset(&store_ctx, 0, sizeof store_ctx);
    store_ctx.t = q_map_new();
    store = (q_store){.ctx = &store_ctx, .get = fake_get, .raise = fake_raise,
                      .count = fake_count, .entry = fake_entry};
    memset(&replies, 0, sizeof replies);
    acc = acc_new(&store);
}

static void teardown(void)
{
    acc_free(acc);
    map_free(store_ctx.t);
    replies_clear(&replies);
}

static seqd_msg msg_read(uint64_t reqid, const char *name)
{
    seqd_msg m = {.type = MSG_READ, .reqid = reqid};
    seqd_name_set(&m.u.read.name, name, strlen(name));
    return m;
}

static seqd_msg msg_accept(uint64_t reqid, const char *name, uint64_t expect, uint64_t new_)
{
    seqd_msg m = {.type = MSG_ACCEPT, .reqid = reqid};
    seqd_name_set(&m.u.accept.name, name, strlen(name));
    m.u.accept.expect = expect;
    m.u.accept.new_ = new_;
    return m;
}

static uint64_t cur_of(const char *name)
{
    struct seqd_name n;
    seqd_name_set(&n, name, strlen(name));
    return fake_get(&store_ctx, &n);
}

static void handle(const seqd_msg *m) { acc_handle(acc, 1, m, fake_on_reply, &replies); }

static void assert_err(int i, uint64_t reqid, int code)
{
    cr_assert(replies.n > i);
    cr_assert_eq(replies.r[i].m.type, MSG_REPLY_ERR);
    cr_assert_eq(replies.r[i].m.reqid, reqid);
    cr_assert_eq(replies.r[i].m.u.err.code, code, "code %d, want %d", replies.r[i].m.u.err.code,
                 code);
}

TestSuite(acceptor, .init = setup, .fini = teardown, .timeout = 10);

Test(acceptor, read_answers_cur_when_ready)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_read(41, "a");
    handle(&m);
    cr_assert_eq(replies.n, 1);
    cr_assert_eq(replies.r[0].m.type, MSG_VALUE);
    cr_assert_eq(replies.r[0].m.reqid, 41);
    cr_assert_eq(replies.r[0].m.u.value.cur, 1, "a fresh sequence starts at 1");
    m = msg_accept(42, "a", 1, 8);
    handle(&m);
    m = msg_read(43, "a");
    handle(&m);   /* not durable yet: READ may see it anyway */
    cr_assert_eq(replies.n, 2);
    cr_assert_eq(replies.r[1].m.type, MSG_VALUE);
    cr_assert_eq(replies.r[1].m.u.value.cur, 8);
}

Test(acceptor, ack_only_once_durable)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_accept(7, "seq", 1, 101);
    handle(&m);
    cr_assert_eq(replies.n, 0, "an ACK before the fsync would not survive a power loss");
    cr_assert_eq(cur_of("seq"), 101, "the live table is raised at once");
    fake_flush(&store_ctx, 0);
    cr_assert_eq(replies.n, 1);
    cr_assert_eq(replies.r[0].m.type, MSG_ACK);
    cr_assert_eq(replies.r[0].m.reqid, 7);
    cr_assert_eq(replies.r[0].m.u.ack.new_, 101);
}

Test(acceptor, nack_carries_cur)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_accept(1, "s", 1, 8);
    handle(&m);
    fake_flush(&store_ctx, 0);
    replies_clear(&replies);
    /* cur = 8 > expect = 5: refused even though new > cur (rr_seq would accept) */
    m = msg_accept(2, "s", 5, 10);
    handle(&m);
    cr_assert_eq(replies.n, 1);
    cr_assert_eq(replies.r[0].m.type, MSG_NACK);
    cr_assert_eq(replies.r[0].m.reqid, 2);
    cr_assert_eq(replies.r[0].m.u.value.cur, 8);
    cr_assert_eq(cur_of("s"), 8);
    /* cur = 8 <= expect = 8: accepted */
    m = msg_accept(3, "s", 8, 9);
    handle(&m);
    fake_flush(&store_ctx, 0);
    cr_assert_eq(replies.n, 2);
    cr_assert_eq(replies.r[1].m.type, MSG_ACK);
    cr_assert_eq(cur_of("s"), 9);
    /* expect above cur is accepted too (a gap, never an overlap) */
    m = msg_accept(4, "s", 20, 21);
    handle(&m);
    fake_flush(&store_ctx, 0);
    cr_assert_eq(replies.r[2].m.type, MSG_ACK);
    cr_assert_eq(cur_of("s"), 21);
}

Test(acceptor, concurrent_accepts_on_one_value_only_one_wins)
{
    acc_set_ready(acc, true);
    seqd_msg a = msg_accept(1, "x", 1, 8), b = msg_accept(2, "x", 1, 101);
    handle(&a);
    handle(&b);   /* sees cur = 8 already, before a is durable */
    cr_assert_eq(replies.n, 1);
    cr_assert_eq(replies.r[0].m.type, MSG_NACK);
    cr_assert_eq(replies.r[0].m.reqid, 2);
    cr_assert_eq(replies.r[0].m.u.value.cur, 8);
    fake_flush(&store_ctx, 0);
    cr_assert_eq(replies.r[1].m.type, MSG_ACK);
    cr_assert_eq(replies.r[1].m.reqid, 1);
}

Test(acceptor, rrseq_rule_accepts_any_growth)
{
    acc_set_ready(acc, true);
    acc_set_rule(acc, ACC_RULE_RRSEQ);
    seqd_msg a = msg_accept(1, "x", 1, 8), b = msg_accept(2, "x", 1, 101), c = msg_accept(3, "x", 1, 50);
    handle(&a);
    handle(&b);
    handle(&c);
    fake_flush(&store_ctx, 0);
    cr_assert_eq(replies.n, 3);
    cr_assert_eq(replies.r[0].m.type, MSG_NACK, "50 < cur 101");
    cr_assert_eq(replies.r[0].m.reqid, 3);
    cr_assert_eq(replies.r[1].m.type, MSG_ACK);
    cr_assert_eq(replies.r[2].m.type, MSG_ACK, "the overlap the safe rule prevents");
}

Test(acceptor, malformed_accept_is_refused)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_accept(1, "x", 0, 5);
    handle(&m);
    assert_err(0, 1, ERR_BAD_REQUEST);
    m = msg_accept(2, "x", 5, 5);
    handle(&m);
    assert_err(1, 2, ERR_BAD_REQUEST);
    m = msg_accept(3, "x", 6, 5);
    handle(&m);
    assert_err(2, 3, ERR_BAD_REQUEST);
    m = msg_accept(4, "bad name!", 1, 5);
    handle(&m);
    assert_err(3, 4, ERR_BAD_NAME);
    m = msg_read(5, "");
    handle(&m);
    assert_err(4, 5, ERR_BAD_NAME);
    seqd_msg f = {.type = MSG_FETCH, .reqid = 6};
    handle(&f);
    assert_err(5, 6, ERR_BAD_REQUEST);
    cr_assert_eq(store_ctx.npend, 0);
    cr_assert_eq(cur_of("x"), 1);
}

Test(acceptor, recovering_refuses_votes_but_serves_snapshots)
{
    cr_assert(!acc_ready(acc), "an acceptor starts recovering");
    seqd_msg m = msg_read(1, "x");
    handle(&m);
    assert_err(0, 1, ERR_RECOVERING);
    m = msg_accept(2, "x", 1, 5);
    handle(&m);
    assert_err(1, 2, ERR_RECOVERING);
    cr_assert_eq(cur_of("x"), 1, "a recovering member never votes");
    seqd_msg s = {.type = MSG_SNAP_REQ, .reqid = 3};
    handle(&s);
    cr_assert_eq(replies.r[2].m.type, MSG_SNAP_CHUNK);
    cr_assert_eq(replies.r[2].m.reqid, 3);
    cr_assert_eq(replies.r[2].m.u.snap.flags, SNAP_DONE, "no state, nothing in it");
    cr_assert_eq(replies.r[2].m.u.snap.n, 0);
    acc_set_has_state(acc, true);
    handle(&s);
    cr_assert_eq(replies.r[3].m.u.snap.flags, SNAP_DONE | SNAP_HAS_STATE);
    acc_set_ready(acc, true);
    cr_assert(acc_ready(acc));
    m = msg_read(4, "x");
    handle(&m);
    cr_assert_eq(replies.r[4].m.type, MSG_VALUE);
}

Test(acceptor, storage_errors_fail_the_accept)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_accept(1, "x", 1, 5);
    handle(&m);
    fake_flush(&store_ctx, EIO);
    assert_err(0, 1, ERR_STORAGE);
    store_ctx.raise_rc = -ENOSPC;
    m = msg_accept(2, "y", 1, 5);
    handle(&m);
    assert_err(1, 2, ERR_STORAGE);
}

Test(acceptor, free_drops_pending_accepts)
{
    acc_set_ready(acc, true);
    seqd_msg m = msg_accept(1, "x", 1, 5);
    handle(&m);
    m = msg_accept(2, "y", 1, 5);
    handle(&m);
    cr_assert_eq(store_ctx.npend, 2);
    acc_free(acc);   /* the store will not call back (a crashed log) */
    acc = acc_new(&store);
    store_ctx.npend = 0;
    cr_assert_eq(replies.n, 0);
}

/* Follows a snapshot chain as recovery does: every entry exactly once, in
 * table order, each chunk within a frame, DONE on the last only. */
Test(acceptor, snapshot_chunks_cover_the_table)
{
    enum { NAMES = 3000 };
    char name[SEQD_NAME_MAX + 1];
    for (int i = 0; i < NAMES; i++) {
        int len = snprintf(name, sizeof name, "%05d-", i);
        memset(name + len, 'n', (size_t)(100 - len));   /* 100-byte names */
        q_map_insert(store_ctx.t, name, 100, 1000 + (uint64_t)i);
    }
    acc_set_has_state(acc, true);
    uint32_t start = 0;
    int chunks = 0, seen = 0;
    for (;;) {
        replies_clear(&replies);
        seqd_msg s = {.type = MSG_SNAP_REQ, .reqid = 100 + (uint64_t)chunks};
        s.u.snap_req.start = start;
        handle(&s);
        cr_assert_eq(replies.n, 1);
        const seqd_msg *c = &replies.r[0].m;
        cr_assert_eq(c->type, MSG_SNAP_CHUNK);
        cr_assert_eq(c->reqid, 100 + (uint64_t)chunks);
        cr_assert(c->u.snap.flags & SNAP_HAS_STATE);
        cr_assert_leq(SEQD_HDR_LEN + 7u + c->u.snap.entries_len, SEQD_MAX_FRAME,
                      "a chunk must fit one frame");
        static uint8_t frame[SEQD_MAX_FRAME];
        size_t flen = frame_pack(c, frame);
        cr_assert_gt(flen, 0, "the codec refuses the chunk");
        seqd_msg back;
        cr_assert_eq(frame_parse(frame, flen, &back), FRAME_OK);
        cr_assert_eq(back.u.snap.n, c->u.snap.n);
        cr_assert_eq(back.u.snap.next, c->u.snap.next);
        const uint8_t *p = c->u.snap.entries, *end = p + c->u.snap.entries_len;
        struct seqd_name n;
        uint64_t cur;
        int k = 0;
        while (snap_entry_next(&p, end, &n, &cur)) {
            snprintf(name, sizeof name, "%05d-", seen);
            cr_assert_eq(n.len, 100);
            cr_assert(memcmp(n.s, name, 6) == 0, "entry %d out of order", seen);
            cr_assert_eq(cur, 1000 + (uint64_t)seen);
            seen++;
            k++;
        }
        cr_assert_eq(k, c->u.snap.n);
        cr_assert_eq(c->u.snap.next, (uint32_t)seen);
        chunks++;
        if (c->u.snap.flags & SNAP_DONE)
            break;
        cr_assert_gt(c->u.snap.n, 0);
        cr_assert_lt(seen, NAMES, "not DONE although every entry was sent");
        start = c->u.snap.next;
    }
    cr_assert_eq(seen, NAMES);
    cr_assert_geq(chunks, 5, "3000 x 109 bytes cannot fit fewer than 5 frames");
    /* past the end: an empty, final chunk */
    replies_clear(&replies);
    seqd_msg s = {.type = MSG_SNAP_REQ, .reqid = 9};
    s.u.snap_req.start = NAMES + 10;
    handle(&s);
    cr_assert_eq(replies.r[0].m.u.snap.n, 0);
    cr_assert(replies.r[0].m.u.snap.flags & SNAP_DONE);
}
