/* tests/test_frame.c — the frame codec (net/frame.c) and the proto.h
 * validators. Golden bytes pin the wire layout (a round trip alone cannot
 * catch a mistake made the same way on both sides); round trips cover every
 * type; each framing error is provoked on its own; the evbuffer decoder is
 * fed byte by byte and split at every boundary. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdlib.h>

#include "../net/frame.h"

/* ---- helpers ------------------------------------------------------------ */

/* A name from a C string, for building messages. */
static struct seqd_name tf_name(const char *s)
{
    struct seqd_name n;
    seqd_name_set(&n, s, strlen(s));
    return n;
}

/* Writes a raw header + payload with a correct length prefix, so tests can
 * then corrupt exactly one thing. Returns the frame's size. */
static size_t tf_raw(uint8_t *b, uint8_t type, uint64_t reqid, const void *payload, size_t plen)
{
    uint32_t len = (uint32_t)(12 + plen);
    b[0] = (uint8_t)(len >> 24);
    b[1] = (uint8_t)(len >> 16);
    b[2] = (uint8_t)(len >> 8);
    b[3] = (uint8_t)len;
    b[4] = SEQD_PROTO_VERSION;
    b[5] = type;
    b[6] = b[7] = 0;
    for (int i = 0; i < 8; i++)
        b[8 + i] = (uint8_t)(reqid >> (56 - 8 * i));
    if (plen)
        memcpy(b + 16, payload, plen);
    return 16 + plen;
}

/* Rewrites the length prefix, for frames whose payload was cut or grown. */
static void tf_set_len(uint8_t *b, size_t frame_size)
{
    uint32_t len = (uint32_t)(frame_size - 4);
    b[0] = (uint8_t)(len >> 24);
    b[1] = (uint8_t)(len >> 16);
    b[2] = (uint8_t)(len >> 8);
    b[3] = (uint8_t)len;
}

static void tf_name_eq(const struct seqd_name *a, const struct seqd_name *b)
{
    cr_assert_eq(a->len, b->len);
    cr_assert_eq(memcmp(a->s, b->s, a->len), 0);
    cr_assert_eq(b->s[b->len], '\0');
}

static void tf_bytes_eq(const void *a, const void *b, size_t n)
{
    if (n)
        cr_assert_eq(memcmp(a, b, n), 0);
}

/* Compares every field the type carries. */
static void tf_inc_eq(const struct seqd_inc *a, const struct seqd_inc *b)
{
    cr_assert_eq(a->counter, b->counter);
    cr_assert_eq(a->nonce, b->nonce);
    cr_assert_eq(a->pos, b->pos);
}

static void tf_msg_eq(const seqd_msg *a, const seqd_msg *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->reqid, b->reqid);
    switch (a->type) {
    case MSG_FETCH:
        cr_assert_eq(a->u.fetch.timeout_ms, b->u.fetch.timeout_ms);
        cr_assert_eq(a->u.fetch.count, b->u.fetch.count);
        cr_assert_eq(a->u.fetch.flags, b->u.fetch.flags);
        tf_name_eq(&a->u.fetch.name, &b->u.fetch.name);
        break;
    case MSG_RANGE:
        cr_assert_eq(a->u.range.first, b->u.range.first);
        cr_assert_eq(a->u.range.count, b->u.range.count);
        break;
    case MSG_REPLY_ERR:
    case MSG_ERROR:
        cr_assert_eq(a->u.err.code, b->u.err.code);
        cr_assert_eq(a->u.err.len, b->u.err.len);
        tf_bytes_eq(a->u.err.text, b->u.err.text, a->u.err.len);
        break;
    case MSG_STATUS_REPLY:
        cr_assert_eq(a->u.status.state, b->u.status.state);
        cr_assert_eq(a->u.status.self_index, b->u.status.self_index);
        cr_assert_eq(a->u.status.n_members, b->u.status.n_members);
        cr_assert_eq(a->u.status.fetches, b->u.status.fetches);
        cr_assert_eq(a->u.status.ids, b->u.status.ids);
        cr_assert_eq(a->u.status.rounds, b->u.status.rounds);
        cr_assert_eq(a->u.status.reads, b->u.status.reads);
        cr_assert_eq(a->u.status.nacks, b->u.status.nacks);
        cr_assert_eq(a->u.status.fsyncs, b->u.status.fsyncs);
        cr_assert_eq(a->u.status.records, b->u.status.records);
        cr_assert_eq(a->u.status.epoch, b->u.status.epoch);
        break;
    case MSG_HELLO:
        cr_assert_eq(a->u.hello.round_ms, b->u.hello.round_ms);
        cr_assert_eq(a->u.hello.cluster_id, b->u.hello.cluster_id);
        tf_inc_eq(&a->u.hello.inc, &b->u.hello.inc);
        cr_assert_eq(a->u.hello.addr_len, b->u.hello.addr_len);
        tf_bytes_eq(a->u.hello.addr, b->u.hello.addr, a->u.hello.addr_len);
        cr_assert_eq(a->u.hello.epoch, b->u.hello.epoch);
        break;
    case MSG_READ:
        cr_assert_eq(a->u.read.epoch, b->u.read.epoch);
        cr_assert_eq(a->u.read.digest, b->u.read.digest);
        tf_name_eq(&a->u.read.name, &b->u.read.name);
        break;
    case MSG_VALUE:
    case MSG_NACK:
        cr_assert_eq(a->u.value.cur, b->u.value.cur);
        tf_inc_eq(&a->u.value.inc, &b->u.value.inc);
        break;
    case MSG_ACCEPT:
        cr_assert_eq(a->u.accept.epoch, b->u.accept.epoch);
        cr_assert_eq(a->u.accept.digest, b->u.accept.digest);
        cr_assert_eq(a->u.accept.expect, b->u.accept.expect);
        cr_assert_eq(a->u.accept.new_, b->u.accept.new_);
        tf_name_eq(&a->u.accept.name, &b->u.accept.name);
        break;
    case MSG_ACK:
        cr_assert_eq(a->u.ack.new_, b->u.ack.new_);
        tf_inc_eq(&a->u.ack.inc, &b->u.ack.inc);
        break;
    case MSG_SNAP_REQ:
        cr_assert_eq(a->u.snap_req.epoch, b->u.snap_req.epoch);
        cr_assert_eq(a->u.snap_req.digest, b->u.snap_req.digest);
        cr_assert_eq(a->u.snap_req.start, b->u.snap_req.start);
        tf_inc_eq(&a->u.snap_req.inc, &b->u.snap_req.inc);
        break;
    case MSG_SNAP_CHUNK:
        cr_assert_eq(a->u.snap.flags, b->u.snap.flags);
        cr_assert(seqd_cid_eq(&a->u.snap.cid, &b->u.snap.cid));
        tf_inc_eq(&a->u.snap.inc, &b->u.snap.inc);
        tf_inc_eq(&a->u.snap.you, &b->u.snap.you);
        cr_assert_eq(a->u.snap.next, b->u.snap.next);
        cr_assert_eq(a->u.snap.n, b->u.snap.n);
        cr_assert_eq(a->u.snap.entries_len, b->u.snap.entries_len);
        tf_bytes_eq(a->u.snap.entries, b->u.snap.entries, a->u.snap.entries_len);
        break;
    case MSG_INIT:
        cr_assert_eq(a->u.init.op, b->u.init.op);
        cr_assert(seqd_cid_eq(&a->u.init.cid, &b->u.init.cid));
        cr_assert_eq(a->u.init.set_digest, b->u.init.set_digest);
        break;
    case MSG_AUTH:
        cr_assert_eq(a->u.auth.step, b->u.auth.step);
        tf_bytes_eq(a->u.auth.nonce, b->u.auth.nonce, SEQD_NONCE_LEN);
        tf_bytes_eq(a->u.auth.mac, b->u.auth.mac, SEQD_MAC_LEN);
        break;
    case MSG_STOPPED:
        tf_inc_eq(&a->u.stopped.inc, &b->u.stopped.inc);
        break;
    case MSG_INIT_REPLY:
        cr_assert_eq(a->u.init_reply.state, b->u.init_reply.state);
        cr_assert(seqd_cid_eq(&a->u.init_reply.cid, &b->u.init_reply.cid));
        break;
    case MSG_ADVANCE:
        cr_assert_eq(a->u.advance.timeout_ms, b->u.advance.timeout_ms);
        cr_assert_eq(a->u.advance.value, b->u.advance.value);
        tf_name_eq(&a->u.advance.name, &b->u.advance.name);
        break;
    case MSG_ADVANCED:
        cr_assert_eq(a->u.advanced.next, b->u.advanced.next);
        break;
    case MSG_LIST:
        cr_assert_eq(a->u.list.start, b->u.list.start);
        cr_assert_eq(a->u.list.prefix_len, b->u.list.prefix_len);
        tf_bytes_eq(a->u.list.prefix, b->u.list.prefix, a->u.list.prefix_len);
        break;
    case MSG_TOKEN:
        cr_assert_eq(a->u.token.len, b->u.token.len);
        tf_bytes_eq(a->u.token.token, b->u.token.token, a->u.token.len);
        break;
    case MSG_SWITCH:
        cr_assert_eq(a->u.sw.op, b->u.sw.op);
        cr_assert_eq(a->u.sw.flags, b->u.sw.flags);
        cr_assert_eq(a->u.sw.slot, b->u.sw.slot);
        cr_assert_eq(a->u.sw.epoch, b->u.sw.epoch);
        cr_assert_eq(a->u.sw.old_inc, b->u.sw.old_inc);
        cr_assert_eq(a->u.sw.old_len, b->u.sw.old_len);
        cr_assert_eq(a->u.sw.new_len, b->u.sw.new_len);
        tf_bytes_eq(a->u.sw.old_addr, b->u.sw.old_addr, a->u.sw.old_len);
        tf_bytes_eq(a->u.sw.new_addr, b->u.sw.new_addr, a->u.sw.new_len);
        break;
    case MSG_SWITCH_REPLY:
        cr_assert_eq(a->u.sw_reply.state, b->u.sw_reply.state);
        cr_assert_eq(a->u.sw_reply.slot, b->u.sw_reply.slot);
        cr_assert_eq(a->u.sw_reply.old_alive, b->u.sw_reply.old_alive);
        cr_assert_eq(a->u.sw_reply.epoch, b->u.sw_reply.epoch);
        cr_assert_eq(a->u.sw_reply.digest, b->u.sw_reply.digest);
        cr_assert_eq(a->u.sw_reply.old_inc, b->u.sw_reply.old_inc);
        cr_assert_eq(a->u.sw_reply.slots_len, b->u.sw_reply.slots_len);
        tf_bytes_eq(a->u.sw_reply.slots, b->u.sw_reply.slots, a->u.sw_reply.slots_len);
        cr_assert_eq(a->u.sw_reply.last_slot, b->u.sw_reply.last_slot);
        cr_assert_eq(a->u.sw_reply.last_old_inc, b->u.sw_reply.last_old_inc);
        cr_assert_eq(a->u.sw_reply.last_old_len, b->u.sw_reply.last_old_len);
        cr_assert_eq(a->u.sw_reply.last_new_len, b->u.sw_reply.last_new_len);
        tf_bytes_eq(a->u.sw_reply.last_old, b->u.sw_reply.last_old, a->u.sw_reply.last_old_len);
        tf_bytes_eq(a->u.sw_reply.last_new, b->u.sw_reply.last_new, a->u.sw_reply.last_new_len);
        break;
    case MSG_LIST_CHUNK:
        cr_assert_eq(a->u.list_chunk.next, b->u.list_chunk.next);
        cr_assert_eq(a->u.list_chunk.flags, b->u.list_chunk.flags);
        cr_assert_eq(a->u.list_chunk.n, b->u.list_chunk.n);
        cr_assert_eq(a->u.list_chunk.entries_len, b->u.list_chunk.entries_len);
        tf_bytes_eq(a->u.list_chunk.entries, b->u.list_chunk.entries, a->u.list_chunk.entries_len);
        break;
    default:
        break;  /* STATUS, HELLO_OK: header only */
    }
}

/* pack -> parse -> compare, and the same through frame_encode /
 * frame_decode, whose bytes must equal frame_pack's. Returns the size. */
static size_t tf_roundtrip(const seqd_msg *m)
{
    uint8_t *buf = malloc(SEQD_MAX_FRAME), *scratch = malloc(SEQD_MAX_FRAME);
    cr_assert(buf && scratch);
    size_t n = frame_pack(m, buf);
    cr_assert_gt(n, 0, "pack %s", msg_type_str(m->type));
    cr_assert_geq(n, SEQD_HDR_LEN);
    seqd_msg out;
    memset(&out, 0xAB, sizeof out);
    cr_assert_eq(frame_parse(buf, n, &out), FRAME_OK);
    tf_msg_eq(m, &out);
    /* one byte short of the frame is never enough */
    cr_assert_eq(frame_parse(buf, n - 1, &out), FRAME_NEED_MORE);

    struct evbuffer *eb = evbuffer_new();
    cr_assert(eb);
    cr_assert_eq(frame_encode(eb, m), 0);
    cr_assert_eq(evbuffer_get_length(eb), n);
    uint8_t *flat = evbuffer_pullup(eb, -1);
    cr_assert_eq(memcmp(flat, buf, n), 0);
    memset(&out, 0xCD, sizeof out);
    cr_assert_eq(frame_decode(eb, &out, scratch), FRAME_OK);
    tf_msg_eq(m, &out);
    cr_assert_eq(evbuffer_get_length(eb), 0);
    cr_assert_eq(frame_decode(eb, &out, scratch), FRAME_NEED_MORE);
    evbuffer_free(eb);
    free(buf);
    free(scratch);
    return n;
}

/* Fills `entries` with k snapshot entries; returns their byte length. */
static size_t tf_entries(uint8_t *p, const char *const *names, const uint64_t *curs, int k)
{
    size_t off = 0;
    for (int i = 0; i < k; i++)
        off += snap_entry_put(p + off, names[i], (uint8_t)strlen(names[i]), curs[i]);
    return off;
}

/* One message of every type, with every field distinct, for the
 * "each type" loops. `pool` holds the snapshot entries. */
static int tf_samples(seqd_msg *ms, uint8_t *pool)
{
    static const char *const names[] = { "a", "seq.orders-2024_x", "Z9" };
    static const uint64_t curs[] = { 1, 0x0102030405060708ull, UINT64_MAX };
    int k = 0;
    memset(ms, 0, 16 * sizeof *ms);
    ms[k] = (seqd_msg){ .type = MSG_FETCH, .reqid = 1 };
    ms[k].u.fetch.timeout_ms = 4999;
    ms[k].u.fetch.count = 1000000;
    ms[k].u.fetch.flags = FETCH_NO_FORWARD;
    ms[k++].u.fetch.name = tf_name("orders");
    ms[k] = (seqd_msg){ .type = MSG_RANGE, .reqid = 2 };
    ms[k].u.range.first = 0xFEDCBA9876543210ull;
    ms[k++].u.range.count = 77;
    ms[k] = (seqd_msg){ .type = MSG_REPLY_ERR, .reqid = 3 };
    ms[k].u.err.code = ERR_RECOVERING;
    ms[k].u.err.text = "member is recovering";
    ms[k++].u.err.len = 20;
    ms[k++] = (seqd_msg){ .type = MSG_STATUS, .reqid = 4 };
    ms[k] = (seqd_msg){ .type = MSG_STATUS_REPLY, .reqid = 5 };
    ms[k].u.status = (struct seqd_status){ STATE_READY, 2, 5, 11, 22, 33, 44, 55, 66, UINT64_MAX, 3 };
    k++;
    ms[k] = (seqd_msg){ .type = MSG_HELLO, .reqid = 6 };
    ms[k].u.hello.round_ms = 1000;
    ms[k].u.hello.cluster_id = 0xC0FFEE0012345678ull;
    ms[k].u.hello.inc = (struct seqd_inc){ 9, 0x1122334455667788ull, 42 };
    ms[k].u.hello.addr = "127.0.0.1:7001";
    ms[k].u.hello.epoch = 2;
    ms[k++].u.hello.addr_len = 14;
    ms[k++] = (seqd_msg){ .type = MSG_HELLO_OK, .reqid = 7 };
    ms[k] = (seqd_msg){ .type = MSG_READ, .reqid = 8 };
    ms[k].u.read.epoch = 1;
    ms[k].u.read.digest = UINT64_C(0xfeedfacecafebeef);
    ms[k++].u.read.name = tf_name("r.e-a_d");
    ms[k] = (seqd_msg){ .type = MSG_VALUE, .reqid = 9 };
    ms[k].u.value.inc = (struct seqd_inc){ 7, UINT64_MAX, 1ull << 40 };
    ms[k++].u.value.cur = 123456789;
    ms[k] = (seqd_msg){ .type = MSG_ACCEPT, .reqid = 10 };
    ms[k].u.accept.epoch = UINT64_MAX;
    ms[k].u.accept.digest = 5;
    ms[k].u.accept.expect = 100;
    ms[k].u.accept.new_ = 150;
    ms[k++].u.accept.name = tf_name("acc");
    ms[k] = (seqd_msg){ .type = MSG_ACK, .reqid = 11 };
    ms[k].u.ack.inc = (struct seqd_inc){ 1, 2, 3 };
    ms[k++].u.ack.new_ = 150;
    ms[k] = (seqd_msg){ .type = MSG_NACK, .reqid = 12 };
    ms[k++].u.value.cur = 999;
    ms[k] = (seqd_msg){ .type = MSG_SNAP_REQ, .reqid = 13 };
    ms[k].u.snap_req.epoch = 4;
    ms[k].u.snap_req.digest = 9;
    ms[k++].u.snap_req.start = 40000;
    ms[k] = (seqd_msg){ .type = MSG_SNAP_CHUNK, .reqid = 14 };
    ms[k].u.snap.flags = SNAP_HAS_STATE;
    ms[k].u.snap.cid.b[2] = 0x42;
    ms[k].u.snap.next = 3;
    ms[k].u.snap.n = 3;
    ms[k].u.snap.entries = pool;
    ms[k++].u.snap.entries_len = (uint32_t)tf_entries(pool, names, curs, 3);
    ms[k] = (seqd_msg){ .type = MSG_ERROR, .reqid = UINT64_MAX };
    ms[k].u.err.code = FERR_HELLO;
    ms[k].u.err.text = "member set differs";
    ms[k++].u.err.len = 18;
    ms[k] = (seqd_msg){ .type = MSG_INIT, .reqid = 16 };
    ms[k].u.init.op = INIT_PREPARE;
    ms[k].u.init.cid.b[0] = 0x5e;
    ms[k].u.init.cid.b[15] = 0xd1;
    ms[k++].u.init.set_digest = UINT64_C(0x0123456789abcdef);
    ms[k] = (seqd_msg){ .type = MSG_INIT_REPLY, .reqid = 17 };
    ms[k].u.init_reply.state = INIT_PREPARED;
    ms[k++].u.init_reply.cid.b[7] = 0x77;
    ms[k] = (seqd_msg){ .type = MSG_AUTH, .reqid = 18 };
    ms[k].u.auth.step = AUTH_CHALLENGE;
    ms[k].u.auth.nonce[0] = 0xa5;
    ms[k++].u.auth.mac[31] = 0x5a;
    ms[k] = (seqd_msg){ .type = MSG_STOPPED, .reqid = 0 };
    ms[k++].u.stopped.inc = (struct seqd_inc){ 4, 0xfeed, 1234 };
    ms[k] = (seqd_msg){ .type = MSG_ADVANCE, .reqid = 20 };
    ms[k].u.advance.timeout_ms = 5000;
    ms[k].u.advance.value = UINT64_MAX;
    ms[k++].u.advance.name = tf_name("orders");
    ms[k] = (seqd_msg){ .type = MSG_ADVANCED, .reqid = 21 };
    ms[k++].u.advanced.next = UINT64_C(48213378);
    ms[k] = (seqd_msg){ .type = MSG_LIST, .reqid = 22 };
    ms[k].u.list.start = 6500;
    ms[k].u.list.prefix = "ord";
    ms[k++].u.list.prefix_len = 3;
    ms[k] = (seqd_msg){ .type = MSG_LIST_CHUNK, .reqid = 23 };
    ms[k].u.list_chunk.next = 3;
    ms[k].u.list_chunk.flags = LIST_DONE;
    ms[k].u.list_chunk.n = 3;
    ms[k].u.list_chunk.entries = pool;
    ms[k++].u.list_chunk.entries_len = (uint32_t)tf_entries(pool, names, curs, 3);
    ms[k] = (seqd_msg){ .type = MSG_TOKEN, .reqid = 0 };
    ms[k].u.token.token = "s3cr3t-t0ken-0123456789";
    ms[k++].u.token.len = 23;
    ms[k] = (seqd_msg){ .type = MSG_SWITCH, .reqid = 25 };
    ms[k].u.sw.op = SWITCH_RECORD;
    ms[k].u.sw.flags = SWITCH_FORCE;
    ms[k].u.sw.slot = 2;
    ms[k].u.sw.epoch = 7;
    ms[k].u.sw.old_inc = 12;
    ms[k].u.sw.old_addr = "10.0.0.3:7000";
    ms[k].u.sw.old_len = 13;
    ms[k].u.sw.new_addr = "10.0.0.4:7000";
    ms[k++].u.sw.new_len = 13;
    ms[k] = (seqd_msg){ .type = MSG_SWITCH_REPLY, .reqid = 26 };
    ms[k].u.sw_reply.state = SWITCH_RECORDED;
    ms[k].u.sw_reply.slot = 2;
    ms[k].u.sw_reply.old_alive = 1;
    ms[k].u.sw_reply.epoch = 8;
    ms[k].u.sw_reply.digest = UINT64_C(0x0123456789abcdef);
    ms[k].u.sw_reply.old_inc = 12;
    ms[k].u.sw_reply.slots = "a:1,b:2,10.0.0.4:7000";
    ms[k].u.sw_reply.slots_len = 21;
    ms[k].u.sw_reply.last_slot = 2;
    ms[k].u.sw_reply.last_old_inc = 12;
    ms[k].u.sw_reply.last_old = "10.0.0.3:7000";
    ms[k].u.sw_reply.last_old_len = 13;
    ms[k].u.sw_reply.last_new = "10.0.0.4:7000";
    ms[k++].u.sw_reply.last_new_len = 13;
    return k;
}

/* ---- golden bytes ------------------------------------------------------- */

Test(frame_wire, fetch_golden_bytes, .timeout = 10)
{
    seqd_msg m = { .type = MSG_FETCH, .reqid = 0x0102030405060708ull };
    m.u.fetch.timeout_ms = 0x0A0B0C0D;
    m.u.fetch.count = 0x00010203;
    m.u.fetch.flags = 0x01;
    m.u.fetch.name = tf_name("ab");
    static const uint8_t want[] = {
        0, 0, 0, 24,                    /* len = 12 + 12 */
        SEQD_PROTO_VERSION, MSG_FETCH, 0, 0,
        1, 2, 3, 4, 5, 6, 7, 8,         /* reqid */
        0x0A, 0x0B, 0x0C, 0x0D,         /* timeout_ms */
        0x00, 0x01, 0x02, 0x03,         /* count */
        0x01,                           /* fetch_flags */
        2, 'a', 'b',                    /* name */
    };
    uint8_t buf[SEQD_MAX_FRAME];
    cr_assert_eq(frame_pack(&m, buf), sizeof want);
    cr_assert_eq(memcmp(buf, want, sizeof want), 0);
}

Test(frame_wire, range_and_snapshot_golden_bytes, .timeout = 10)
{
    seqd_msg m = { .type = MSG_RANGE, .reqid = 9 };
    m.u.range.first = 0x1122334455667788ull;
    m.u.range.count = 0x99AABBCC;
    static const uint8_t want[] = {
        0, 0, 0, 24, SEQD_PROTO_VERSION, MSG_RANGE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9,
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC,
    };
    uint8_t buf[SEQD_MAX_FRAME];
    cr_assert_eq(frame_pack(&m, buf), sizeof want);
    cr_assert_eq(memcmp(buf, want, sizeof want), 0);

    uint8_t ent[32];
    size_t el = snap_entry_put(ent, "x", 1, 0x0102);
    seqd_msg s = { .type = MSG_SNAP_CHUNK, .reqid = 1 };
    s.u.snap.flags = SNAP_DONE;
    s.u.snap.cid.b[0] = 0xc1;
    s.u.snap.cid.b[15] = 0x1d;
    s.u.snap.next = 0x01020304;
    s.u.snap.n = 1;
    s.u.snap.entries = ent;
    s.u.snap.entries_len = (uint32_t)el;
    s.u.snap.inc = (struct seqd_inc){3, 0x0a0b, 9};
    s.u.snap.you = (struct seqd_inc){2, 0x0c, 7};
    static const uint8_t want2[] = {
        0, 0, 0, 93, SEQD_PROTO_VERSION, MSG_SNAP_CHUNK, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        SNAP_DONE, 0xc1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1d,
        0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0x0a, 0x0b, 0, 0, 0, 0, 0, 0, 0, 9,
        0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0, 0, 7,
        1, 2, 3, 4, 0, 1, 1, 'x', 0, 0, 0, 0, 0, 0, 1, 2,
    };
    cr_assert_eq(frame_pack(&s, buf), sizeof want2);
    cr_assert_eq(memcmp(buf, want2, sizeof want2), 0);
}

/* ---- round trips -------------------------------------------------------- */

Test(frame_rt, every_type, .timeout = 10)
{
    seqd_msg ms[MSG_TYPE_MAX];
    uint8_t pool[512];
    int k = tf_samples(ms, pool);
    cr_assert_eq(k, MSG_TYPE_MAX);
    for (int i = 0; i < k; i++) {
        cr_assert_eq(ms[i].type, i + 1);  /* every type, once */
        tf_roundtrip(&ms[i]);
    }
}

Test(frame_rt, empty_payload_types_are_header_only, .timeout = 10)
{
    seqd_msg a = { .type = MSG_STATUS, .reqid = 42 };
    seqd_msg b = { .type = MSG_HELLO_OK, .reqid = 43 };
    cr_assert_eq(tf_roundtrip(&a), SEQD_HDR_LEN);
    cr_assert_eq(tf_roundtrip(&b), SEQD_HDR_LEN);
}

Test(frame_rt, names_edge_cases, .timeout = 10)
{
    char big[SEQD_NAME_MAX + 1];
    memset(big, 'n', sizeof big);
    seqd_msg m = { .type = MSG_FETCH, .reqid = 5 };
    m.u.fetch.count = 1;
    seqd_name_set(&m.u.fetch.name, big, SEQD_NAME_MAX);   /* 128: largest */
    tf_roundtrip(&m);
    m.u.fetch.name.len = 0;                               /* structurally fine */
    m.u.fetch.name.s[0] = '\0';
    tf_roundtrip(&m);
    m.u.fetch.name = tf_name("bad name/with chars");    /* meaning is not the codec's job */
    tf_roundtrip(&m);

    seqd_msg a = { .type = MSG_ACCEPT, .reqid = 6 };
    a.u.accept.expect = 0;
    a.u.accept.new_ = 0;                                  /* invalid meaning, valid frame */
    seqd_name_set(&a.u.accept.name, big, SEQD_NAME_MAX);
    tf_roundtrip(&a);
    seqd_msg r = { .type = MSG_READ, .reqid = 7 };
    r.u.read.name = tf_name("Q");
    cr_assert_eq(tf_roundtrip(&r), SEQD_HDR_LEN + 16 + 2);
}

Test(frame_rt, error_texts_and_hello_addr, .timeout = 10)
{
    char text[SEQD_TEXT_MAX + 1];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    seqd_msg m = { .type = MSG_REPLY_ERR, .reqid = 1, .u.err = { ERR_EXHAUSTED, 0, NULL } };
    cr_assert_eq(tf_roundtrip(&m), SEQD_HDR_LEN + 4);          /* no text */
    m.u.err.code = ERR_BAD_NAME;
    m.u.err.len = SEQD_TEXT_MAX;
    m.u.err.text = text;
    cr_assert_eq(tf_roundtrip(&m), SEQD_HDR_LEN + 4 + SEQD_TEXT_MAX);
    m.type = MSG_ERROR;
    m.u.err.code = FERR_TOO_LONG;
    tf_roundtrip(&m);
    /* the decoded text points into the frame, it is not copied */
    uint8_t buf[SEQD_MAX_FRAME];
    size_t n = frame_pack(&m, buf);
    seqd_msg out;
    cr_assert_eq(frame_parse(buf, n, &out), FRAME_OK);
    cr_assert_eq((const uint8_t *)out.u.err.text, buf + SEQD_HDR_LEN + 4);

    char addr[SEQD_ADDR_MAX];
    memset(addr, 'h', sizeof addr);
    seqd_msg h = { .type = MSG_HELLO, .reqid = 2 };
    h.u.hello.round_ms = 250;
    h.u.hello.cluster_id = 7;
    h.u.hello.addr_len = SEQD_ADDR_MAX;
    h.u.hello.addr = addr;
    cr_assert_eq(tf_roundtrip(&h), SEQD_HDR_LEN + 13 + SEQD_INC_LEN + SEQD_ADDR_MAX + 8);
    h.u.hello.addr_len = 0;
    h.u.hello.addr = NULL;
    tf_roundtrip(&h);
}

Test(frame_rt, snap_chunk_entries_walk, .timeout = 10)
{
    static const char *const names[] = { "alpha", "b", "c.c-c_c", "dd" };
    static const uint64_t curs[] = { 1, 2, 0x8000000000000000ull, UINT64_MAX };
    uint8_t pool[4 * SNAP_ENTRY_MAX];
    seqd_msg m = { .type = MSG_SNAP_CHUNK, .reqid = 77 };
    m.u.snap.flags = SNAP_HAS_STATE | SNAP_DONE;
    m.u.snap.next = 4;
    m.u.snap.n = 4;
    m.u.snap.entries = pool;
    m.u.snap.entries_len = (uint32_t)tf_entries(pool, names, curs, 4);
    tf_roundtrip(&m);

    uint8_t buf[SEQD_MAX_FRAME];
    size_t n = frame_pack(&m, buf);
    seqd_msg out;
    cr_assert_eq(frame_parse(buf, n, &out), FRAME_OK);
    const uint8_t *p = out.u.snap.entries, *end = p + out.u.snap.entries_len;
    struct seqd_name nm;
    uint64_t cur;
    int i = 0;
    while (snap_entry_next(&p, end, &nm, &cur)) {
        cr_assert_lt(i, 4);
        cr_assert_str_eq(nm.s, names[i]);
        cr_assert_eq(nm.len, strlen(names[i]));
        cr_assert_eq(cur, curs[i]);
        i++;
    }
    cr_assert_eq(i, 4);
    cr_assert_eq(p, end);

    /* an empty chunk (the last one of an empty table) */
    seqd_msg e = { .type = MSG_SNAP_CHUNK, .reqid = 78 };
    e.u.snap.flags = SNAP_DONE;
    cr_assert_eq(tf_roundtrip(&e), SEQD_HDR_LEN + 7 + SEQD_CID_LEN + 2 * SEQD_INC_LEN);
}

/* ---- maximum size ------------------------------------------------------- */

/* Fills entries of total size `bytes` (>= 9, made of 128-byte names plus one
 * remainder entry); returns the entry count. */
static uint16_t tf_fill_snapshot(uint8_t *pool, size_t bytes)
{
    char name[SEQD_NAME_MAX];
    memset(name, 'm', sizeof name);
    size_t off = 0;
    uint16_t n = 0;
    while (bytes - off >= SNAP_ENTRY_MAX + 9) {
        off += snap_entry_put(pool + off, name, SEQD_NAME_MAX, n + 1u);
        n++;
    }
    size_t rest = bytes - off;
    if (rest > SNAP_ENTRY_MAX) {  /* too big for one entry: leave 9 for a last, empty-named one */
        off += snap_entry_put(pool + off, name, (uint8_t)(rest - 18), n + 1u);
        n++;
        rest = bytes - off;
    }
    off += snap_entry_put(pool + off, name, (uint8_t)(rest - 9), n + 1u);
    n++;
    cr_assert_eq(off, bytes);
    return n;
}

Test(frame_max, snap_chunk_exactly_fits, .timeout = 10)
{
    const size_t room = SEQD_MAX_FRAME - SEQD_HDR_LEN - 7 - SEQD_CID_LEN - 2 * SEQD_INC_LEN;  /* entry bytes that fit */
    uint8_t *pool = malloc(SEQD_MAX_FRAME + SNAP_ENTRY_MAX), *buf = malloc(SEQD_MAX_FRAME);
    uint8_t *scratch = malloc(SEQD_MAX_FRAME);
    cr_assert(pool && buf && scratch);
    seqd_msg m = { .type = MSG_SNAP_CHUNK, .reqid = 1, .u.snap = { .next = 9 } };
    m.u.snap.entries = pool;
    m.u.snap.entries_len = (uint32_t)room;
    m.u.snap.n = tf_fill_snapshot(pool, room);
    cr_assert_eq(frame_pack(&m, buf), SEQD_MAX_FRAME);
    seqd_msg out;
    cr_assert_eq(frame_parse(buf, SEQD_MAX_FRAME, &out), FRAME_OK);
    tf_msg_eq(&m, &out);
    const uint8_t *p = out.u.snap.entries, *end = p + out.u.snap.entries_len;
    struct seqd_name nm;
    uint64_t cur;
    unsigned cnt = 0;
    while (snap_entry_next(&p, end, &nm, &cur))
        cr_assert_eq(cur, ++cnt);
    cr_assert_eq(cnt, m.u.snap.n);

    struct evbuffer *eb = evbuffer_new();
    cr_assert_eq(frame_encode(eb, &m), 0);
    cr_assert_eq(frame_decode(eb, &out, scratch), FRAME_OK);
    cr_assert_eq(out.u.snap.n, m.u.snap.n);

    /* one byte more does not fit: refused, and nothing is queued */
    m.u.snap.entries_len = (uint32_t)room + 1;
    m.u.snap.n = tf_fill_snapshot(pool, room + 1);
    cr_assert_eq(frame_pack(&m, buf), 0);
    cr_assert_eq(frame_encode(eb, &m), -1);
    cr_assert_eq(evbuffer_get_length(eb), 0);
    evbuffer_free(eb);
    free(pool);
    free(buf);
    free(scratch);
}

Test(frame_max, length_prefix_boundary, .timeout = 10)
{
    uint8_t b[SEQD_MAX_FRAME];
    seqd_msg out;
    /* 65532 after the prefix is a whole frame of exactly 64 KiB: wait */
    tf_set_len(b, SEQD_MAX_FRAME);
    cr_assert_eq(frame_parse(b, 4, &out), FRAME_NEED_MORE);
    tf_set_len(b, SEQD_MAX_FRAME + 1);
    cr_assert_eq(frame_parse(b, 4, &out), -FERR_TOO_LONG);
    cr_assert_eq(frame_parse(b, 3, &out), FRAME_NEED_MORE);
}

/* ---- pack refusals ------------------------------------------------------ */

Test(frame_packer, refuses_what_would_not_decode, .timeout = 10)
{
    uint8_t buf[SEQD_MAX_FRAME];
    char text[SEQD_TEXT_MAX + 1];
    memset(text, 't', sizeof text);
    seqd_msg m = { .type = MSG_REPLY_ERR, .u.err = { ERR_TIMEOUT, SEQD_TEXT_MAX + 1, text } };
    cr_assert_eq(frame_pack(&m, buf), 0);
    m.u.err.len = 3;
    m.u.err.text = NULL;
    cr_assert_eq(frame_pack(&m, buf), 0);

    seqd_msg f = { .type = MSG_FETCH, .u.fetch = { .count = 1 } };
    f.u.fetch.name.len = SEQD_NAME_MAX + 1;
    memset(f.u.fetch.name.s, 'x', SEQD_NAME_MAX);
    cr_assert_eq(frame_pack(&f, buf), 0);
    f.u.fetch.name.len = SEQD_NAME_MAX;
    cr_assert_gt(frame_pack(&f, buf), 0);

    seqd_msg t = { .type = 0 };
    cr_assert_eq(frame_pack(&t, buf), 0);
    t.type = MSG_TYPE_MAX + 1;
    cr_assert_eq(frame_pack(&t, buf), 0);

    uint8_t pool[64];
    seqd_msg s = { .type = MSG_SNAP_CHUNK };
    s.u.snap.entries = pool;
    s.u.snap.entries_len = (uint32_t)snap_entry_put(pool, "ab", 2, 5);
    s.u.snap.n = 2;                         /* says two, holds one */
    cr_assert_eq(frame_pack(&s, buf), 0);
    s.u.snap.n = 0;                         /* says none, holds one */
    cr_assert_eq(frame_pack(&s, buf), 0);
    s.u.snap.n = 1;
    cr_assert_gt(frame_pack(&s, buf), 0);

    struct evbuffer *eb = evbuffer_new();
    cr_assert_eq(frame_encode(eb, &t), -1);
    cr_assert_eq(evbuffer_get_length(eb), 0);
    evbuffer_free(eb);
}

/* ---- rejections --------------------------------------------------------- */

/* Decodes raw bytes both ways (memory and evbuffer) and checks that both
 * give `want` and that the evbuffer was not touched unless a frame (all of
 * the n bytes, in these tests) was decoded. */
static void tf_reject(const uint8_t *b, size_t n, int want)
{
    seqd_msg out;
    cr_assert_eq(frame_parse(b, n, &out), want, "parse got %d want %d", frame_parse(b, n, &out), want);
    uint8_t *scratch = malloc(SEQD_MAX_FRAME);
    struct evbuffer *eb = evbuffer_new();
    cr_assert(scratch && eb);
    evbuffer_add(eb, b, n);
    cr_assert_eq(frame_decode(eb, &out, scratch), want);
    if (want == FRAME_OK) {
        cr_assert_eq(evbuffer_get_length(eb), 0);
    } else {
        cr_assert_eq(evbuffer_get_length(eb), n);
        cr_assert_eq(memcmp(evbuffer_pullup(eb, -1), b, n), 0);
    }
    evbuffer_free(eb);
    free(scratch);
}

Test(frame_reject, too_long_with_only_the_prefix, .timeout = 10)
{
    static const uint8_t huge[4] = { 0xFF, 0xFF, 0xFF, 0xFF };
    tf_reject(huge, 4, -FERR_TOO_LONG);
    static const uint8_t just_over[4] = { 0x00, 0x00, 0xFF, 0xFD };  /* 65533 + 4 */
    tf_reject(just_over, 4, -FERR_TOO_LONG);
    static const uint8_t fits[4] = { 0x00, 0x00, 0xFF, 0xFC };
    tf_reject(fits, 4, FRAME_NEED_MORE);
    cr_assert_str_eq(frame_err_str(-FERR_TOO_LONG), "frame too long");
}

Test(frame_reject, shorter_than_header, .timeout = 10)
{
    uint8_t b[16] = { 0, 0, 0, 11, SEQD_PROTO_VERSION, MSG_STATUS };
    tf_reject(b, 4, -FERR_SHORT);
    tf_reject(b, 15, -FERR_SHORT);
    b[3] = 0;
    tf_reject(b, 4, -FERR_SHORT);
    b[3] = 12;
    tf_reject(b, 4, FRAME_NEED_MORE);
    tf_reject(b, 16, FRAME_OK);
}

Test(frame_reject, bad_version, .timeout = 10)
{
    uint8_t b[64];
    size_t n = tf_raw(b, MSG_STATUS, 1, NULL, 0);
    b[4] = 0;
    tf_reject(b, n, -FERR_VERSION);
    tf_reject(b, 5, -FERR_VERSION);      /* refused as soon as the byte is in */
    b[4] = SEQD_PROTO_VERSION + 1;
    tf_reject(b, n, -FERR_VERSION);
}

Test(frame_reject, unknown_type, .timeout = 10)
{
    uint8_t b[64];
    size_t n = tf_raw(b, 0, 1, NULL, 0);
    tf_reject(b, n, -FERR_TYPE);
    tf_reject(b, 6, -FERR_TYPE);
    b[5] = MSG_TYPE_MAX + 1;
    tf_reject(b, n, -FERR_TYPE);
    b[5] = 0xFF;
    tf_reject(b, n, -FERR_TYPE);
    b[5] = MSG_TYPE_MAX;                 /* ERROR needs a payload: now SHORT */
    tf_reject(b, n, -FERR_SHORT);
}

Test(frame_reject, flags_set, .timeout = 10)
{
    uint8_t b[64];
    size_t n = tf_raw(b, MSG_STATUS, 1, NULL, 0);
    b[7] = 0x01;
    tf_reject(b, n, -FERR_FLAGS);
    tf_reject(b, 8, -FERR_FLAGS);
    b[7] = 0;
    b[6] = 0x80;
    tf_reject(b, n, -FERR_FLAGS);
}

Test(frame_reject, checks_in_contract_order, .timeout = 10)
{
    uint8_t b[64];
    size_t n = tf_raw(b, 0, 1, "x", 1);  /* type 0, and STATUS-size mismatch */
    b[4] = 9;
    b[6] = 1;
    uint8_t big[16];
    memcpy(big, b, 16);
    big[0] = 0x7F;
    tf_reject(big, 16, -FERR_TOO_LONG);  /* length before version */
    tf_reject(b, n, -FERR_VERSION);      /* version before type */
    b[4] = SEQD_PROTO_VERSION;
    tf_reject(b, n, -FERR_TYPE);         /* type before flags */
    b[5] = MSG_STATUS;
    tf_reject(b, n, -FERR_FLAGS);        /* flags before payload */
    b[6] = 0;
    tf_reject(b, n, -FERR_LONG);
}

Test(frame_reject, every_type_one_byte_short_or_long, .timeout = 10)
{
    seqd_msg ms[MSG_TYPE_MAX];
    uint8_t pool[512];
    int k = tf_samples(ms, pool);
    uint8_t b[SEQD_MAX_FRAME];
    for (int i = 0; i < k; i++) {
        size_t n = frame_pack(&ms[i], b);
        cr_assert_gt(n, 0);
        /* one more byte after the fields */
        b[n] = 0;
        tf_set_len(b, n + 1);
        tf_reject(b, n + 1, -FERR_LONG);
        if (n == SEQD_HDR_LEN)
            continue;  /* STATUS / HELLO_OK cannot be shorter */
        /* the last field cut by one byte */
        tf_set_len(b, n - 1);
        tf_reject(b, n - 1, -FERR_SHORT);
    }
}

Test(frame_reject, short_fixed_payload, .timeout = 10)
{
    uint8_t b[96], p[48] = { 0 };
    tf_reject(b, tf_raw(b, MSG_RANGE, 1, p, 11), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_RANGE, 1, p, 0), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_RANGE, 1, p, 12), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_RANGE, 1, p, 13), -FERR_LONG);
    tf_reject(b, tf_raw(b, MSG_VALUE, 1, p, 7), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_VALUE, 1, p, 8 + SEQD_INC_LEN - 1), -FERR_SHORT);   /* inc cut */
    tf_reject(b, tf_raw(b, MSG_VALUE, 1, p, 8 + SEQD_INC_LEN), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_SNAP_REQ, 1, p, 16 + 4 + SEQD_INC_LEN + 1), -FERR_LONG);
    tf_reject(b, tf_raw(b, MSG_SNAP_REQ, 1, p, 16 + 4 + SEQD_INC_LEN), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_HELLO_OK, 1, p, 1), -FERR_LONG);
}

Test(frame_reject, name_len_past_end_or_over_max, .timeout = 10)
{
    uint8_t b[512], q[320], *p = q + 16;            /* READ: epoch and digest, then the name */
    memset(q, 'n', sizeof q);
    enum { RE = 16 };
    p[0] = 10;                                      /* READ: name of 10, 5 there */
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE + 6), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE + 11), FRAME_OK);
    p[0] = SEQD_NAME_MAX + 1;                       /* 129 bytes, all present */
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE + 1 + SEQD_NAME_MAX + 1), -FERR_LONG);
    p[0] = 0xFF;                                    /* 255, not present: still LONG */
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE + 3), -FERR_LONG);
    p[0] = 0;                                       /* empty name: decodes */
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE + 1), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, RE), -FERR_SHORT);  /* no length byte */
    tf_reject(b, tf_raw(b, MSG_READ, 1, q, 7), -FERR_SHORT);   /* epoch cut */
    p = q;

    /* FETCH: 9 fixed bytes then the name */
    memset(p, 0, 9);
    p[9] = 4;
    memcpy(p + 10, "abc", 3);
    tf_reject(b, tf_raw(b, MSG_FETCH, 1, p, 13), -FERR_SHORT);
    /* ACCEPT: 32 fixed bytes (epoch, digest, expect, new) then the name */
    memset(p, 0, 32);
    p[32] = 2;
    tf_reject(b, tf_raw(b, MSG_ACCEPT, 1, p, 34), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_ACCEPT, 1, p, 35), FRAME_OK);
}

Test(frame_reject, text_and_addr_len_past_end, .timeout = 10)
{
    uint8_t b[1024], p[600];
    memset(p, 't', sizeof p);
    p[0] = 0, p[1] = ERR_BAD_NAME, p[2] = 0, p[3] = 20;   /* text of 20, 10 there */
    tf_reject(b, tf_raw(b, MSG_REPLY_ERR, 1, p, 14), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_ERROR, 1, p, 14), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_REPLY_ERR, 1, p, 24), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_REPLY_ERR, 1, p, 3), -FERR_SHORT);  /* half a length */
    p[2] = (SEQD_TEXT_MAX + 1) >> 8, p[3] = (SEQD_TEXT_MAX + 1) & 0xFF;
    tf_reject(b, tf_raw(b, MSG_ERROR, 1, p, 4 + SEQD_TEXT_MAX + 1), -FERR_LONG);

    enum { HA = 12 + SEQD_INC_LEN };                       /* round, cluster id, inc */
    memset(p, 0, HA);
    p[HA] = 14;                                            /* addr of 14, 3 there */
    memcpy(p + HA + 1, "1.2", 3);
    tf_reject(b, tf_raw(b, MSG_HELLO, 1, p, HA + 4), -FERR_SHORT);
    tf_reject(b, tf_raw(b, MSG_HELLO, 1, p, HA), -FERR_SHORT);  /* no addr_len */
}

/* Status counters travel as (name, value) pairs: a name this build does
 * not know (a newer member's) is skipped, the known ones are kept. */
Test(frame_rt, status_skips_unknown_counters, .timeout = 10)
{
    uint8_t b[256], p[128];
    size_t off = 0;
    p[off++] = STATE_READY;
    p[off++] = 1;
    p[off++] = 3;
    p[off++] = 2;                    /* two pairs */
    p[off++] = 6;
    memcpy(p + off, "future", 6);
    off += 6;
    for (int i = 0; i < 8; i++)
        p[off++] = 0xff;
    p[off++] = 3;
    memcpy(p + off, "ids", 3);
    off += 3;
    for (int i = 0; i < 8; i++)
        p[off++] = (uint8_t)(i == 7 ? 42 : 0);
    size_t n = tf_raw(b, MSG_STATUS_REPLY, 9, p, off);
    seqd_msg out;
    cr_assert_eq(frame_parse(b, n, &out), FRAME_OK);
    cr_assert_eq(out.u.status.state, STATE_READY);
    cr_assert_eq(out.u.status.n_members, 3);
    cr_assert_eq(out.u.status.ids, 42);
    cr_assert_eq(out.u.status.fetches, 0);
    n = tf_raw(b, MSG_STATUS_REPLY, 9, p, off - 1);   /* the last pair cut */
    cr_assert_eq(frame_parse(b, n, &out), -FERR_SHORT);
}

Test(frame_reject, snapshot_entries_malformed, .timeout = 10)
{
    uint8_t b[1024], p[512];
    size_t n;
    enum { H = 7 + SEQD_CID_LEN + 2 * SEQD_INC_LEN };  /* flags | cluster id | inc | you | next | n */
    p[0] = 0;                       /* snap_flags */
    memset(p + 1, 0, SEQD_CID_LEN + 2 * SEQD_INC_LEN + 4);   /* cluster id, incs, next */
    p[H - 2] = 0, p[H - 1] = 3;     /* n_entries = 3 */
    size_t off = H;
    off += snap_entry_put(p + off, "one", 3, 1);
    off += snap_entry_put(p + off, "two", 3, 2);
    size_t two = off;
    off += snap_entry_put(p + off, "three", 5, 3);
    size_t three = off;
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, three), FRAME_OK);
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, two), -FERR_SHORT);        /* 2 of 3 */
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, three - 1), -FERR_SHORT);  /* cur cut */
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, two + 3), -FERR_SHORT);    /* name cut */
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, H - 1), -FERR_SHORT);      /* no n */
    p[three] = 0;
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, three + 1), -FERR_LONG);   /* 4th not announced */
    p[H - 1] = 2;
    tf_reject(b, tf_raw(b, MSG_SNAP_CHUNK, 1, p, three), -FERR_LONG);       /* n says 2 */
    /* an entry name over SEQD_NAME_MAX would overflow struct seqd_name */
    p[H - 1] = 1;
    p[H] = SEQD_NAME_MAX + 1;
    memset(p + H + 1, 'z', SEQD_NAME_MAX + 1 + 8);
    n = tf_raw(b, MSG_SNAP_CHUNK, 1, p, H + 1 + SEQD_NAME_MAX + 1 + 8);
    tf_reject(b, n, -FERR_LONG);
}

/* ---- incremental decoding ----------------------------------------------- */

/* Three frames of different types back to back; ends[] are the offsets just
 * after each frame. */
struct tf_stream {
    seqd_msg m[3];
    uint8_t bytes[3 * 1024];
    size_t ends[3], len;
    uint8_t pool[256];
};

static void tf_stream_init(struct tf_stream *s)
{
    static const char *const names[] = { "s1", "s.two" };
    static const uint64_t curs[] = { 10, 20 };
    memset(s, 0, sizeof *s);
    s->m[0] = (seqd_msg){ .type = MSG_FETCH, .reqid = 100 };
    s->m[0].u.fetch.count = 3;
    s->m[0].u.fetch.timeout_ms = 250;
    s->m[0].u.fetch.name = tf_name("stream");
    s->m[1] = (seqd_msg){ .type = MSG_SNAP_CHUNK, .reqid = 101 };
    s->m[1].u.snap.n = 2;
    s->m[1].u.snap.next = 2;
    s->m[1].u.snap.entries = s->pool;
    s->m[1].u.snap.entries_len = (uint32_t)tf_entries(s->pool, names, curs, 2);
    s->m[2] = (seqd_msg){ .type = MSG_REPLY_ERR, .reqid = 102 };
    s->m[2].u.err.code = ERR_TIMEOUT;
    s->m[2].u.err.len = 7;
    s->m[2].u.err.text = "timeout";
    uint8_t tmp[SEQD_MAX_FRAME];
    for (int i = 0; i < 3; i++) {
        size_t n = frame_pack(&s->m[i], tmp);
        cr_assert_gt(n, 0);
        memcpy(s->bytes + s->len, tmp, n);
        s->len += n;
        s->ends[i] = s->len;
    }
}

/* Decodes everything available, checking each frame against the next
 * expected one; returns the new count of decoded frames. The last call must
 * be NEED_MORE with exactly the undecoded bytes left in the buffer. */
static int tf_drain(struct tf_stream *s, struct evbuffer *eb, uint8_t *scratch, int done, size_t fed)
{
    seqd_msg out;
    int rc;
    while ((rc = frame_decode(eb, &out, scratch)) == FRAME_OK) {
        cr_assert_lt(done, 3);
        tf_msg_eq(&s->m[done], &out);
        done++;
    }
    cr_assert_eq(rc, FRAME_NEED_MORE);
    /* a frame is decoded exactly when its last byte is in, never before */
    int whole = 0;
    while (whole < 3 && s->ends[whole] <= fed)
        whole++;
    cr_assert_eq(done, whole, "fed %zu: decoded %d, whole %d", fed, done, whole);
    size_t consumed = done ? s->ends[done - 1] : 0;
    cr_assert_eq(evbuffer_get_length(eb), fed - consumed);
    return done;
}

Test(frame_incr, one_byte_at_a_time, .timeout = 20)
{
    struct tf_stream s;
    tf_stream_init(&s);
    uint8_t *scratch = malloc(SEQD_MAX_FRAME);
    struct evbuffer *eb = evbuffer_new();
    cr_assert(scratch && eb);
    int done = tf_drain(&s, eb, scratch, 0, 0);
    for (size_t i = 0; i < s.len; i++) {
        evbuffer_add(eb, s.bytes + i, 1);
        done = tf_drain(&s, eb, scratch, done, i + 1);
    }
    cr_assert_eq(done, 3);
    cr_assert_eq(evbuffer_get_length(eb), 0);
    evbuffer_free(eb);
    free(scratch);
}

Test(frame_incr, two_chunks_split_everywhere, .timeout = 20)
{
    struct tf_stream s;
    tf_stream_init(&s);
    uint8_t *scratch = malloc(SEQD_MAX_FRAME);
    cr_assert(scratch);
    for (size_t cut = 0; cut <= s.len; cut++) {
        struct evbuffer *eb = evbuffer_new();
        cr_assert(eb);
        evbuffer_add(eb, s.bytes, cut);
        int done = tf_drain(&s, eb, scratch, 0, cut);
        evbuffer_add(eb, s.bytes + cut, s.len - cut);
        done = tf_drain(&s, eb, scratch, done, s.len);
        cr_assert_eq(done, 3, "cut %zu", cut);
        cr_assert_eq(evbuffer_get_length(eb), 0);
        evbuffer_free(eb);
    }
    free(scratch);
}

Test(frame_incr, error_after_good_frames_keeps_the_bad_bytes, .timeout = 10)
{
    struct tf_stream s;
    tf_stream_init(&s);
    uint8_t *scratch = malloc(SEQD_MAX_FRAME);
    struct evbuffer *eb = evbuffer_new();
    cr_assert(scratch && eb);
    evbuffer_add(eb, s.bytes, s.ends[0]);
    static const uint8_t junk[] = { 0, 0, 0, 12, 7, 1, 0, 0 };  /* bad version */
    evbuffer_add(eb, junk, sizeof junk);
    seqd_msg out;
    cr_assert_eq(frame_decode(eb, &out, scratch), FRAME_OK);
    tf_msg_eq(&s.m[0], &out);
    cr_assert_eq(frame_decode(eb, &out, scratch), -FERR_VERSION);
    cr_assert_eq(frame_decode(eb, &out, scratch), -FERR_VERSION);  /* stable */
    cr_assert_eq(evbuffer_get_length(eb), sizeof junk);
    evbuffer_free(eb);
    free(scratch);
}

/* ---- validators (proto.h) ----------------------------------------------- */

Test(frame_valid, seqd_name_valid, .timeout = 10)
{
    char big[SEQD_NAME_MAX + 1];
    memset(big, 'a', sizeof big);
    cr_assert_not(seqd_name_valid("", 0));
    cr_assert(seqd_name_valid("a", 1));
    cr_assert(seqd_name_valid(big, SEQD_NAME_MAX));
    cr_assert_not(seqd_name_valid(big, SEQD_NAME_MAX + 1));
    cr_assert(seqd_name_valid("azAZ09._-", 9));
    /* each side of each allowed class, and the usual suspects */
    static const char bad[] = { '/', ' ', '\0', '\n', '+', ':', '@', '[', '`', '{',
                                ',', '~', '*', '\x7f', '\x80', '\xff', '\\', '\'' };
    for (size_t i = 0; i < sizeof bad; i++) {
        char s[3] = { 'x', bad[i], 'y' };
        cr_assert_not(seqd_name_valid(s, 3), "char 0x%02x accepted", (unsigned char)bad[i]);
        cr_assert_not(seqd_name_valid(s + 1, 1));
    }
    cr_assert_not(seqd_name_valid("a\0b", 3));  /* embedded NUL counts */
}

Test(frame_valid, seqd_count_and_accept_valid, .timeout = 10)
{
    cr_assert_not(seqd_count_valid(0));
    cr_assert(seqd_count_valid(1));
    cr_assert(seqd_count_valid(1000000));
    cr_assert_not(seqd_count_valid(1000001));
    cr_assert_not(seqd_count_valid(UINT64_MAX));

    cr_assert(seqd_accept_valid(1, 2));
    cr_assert_not(seqd_accept_valid(5, 5));         /* new == expect */
    cr_assert_not(seqd_accept_valid(6, 5));         /* new < expect */
    cr_assert_not(seqd_accept_valid(0, 10));        /* expect = 0 is never read */
    cr_assert(seqd_accept_valid(1, UINT64_MAX));
    cr_assert(seqd_accept_valid(UINT64_MAX - 1, UINT64_MAX));
    cr_assert_not(seqd_accept_valid(UINT64_MAX, UINT64_MAX));
}

/* ---- strings ------------------------------------------------------------ */

Test(frame_str, names_are_distinct_and_total, .timeout = 10)
{
    cr_assert_str_eq(frame_err_str(FERR_TOO_LONG), "frame too long");
    cr_assert_str_eq(frame_err_str(-FERR_VERSION), frame_err_str(FERR_VERSION));
    cr_assert_str_eq(seqd_err_str(ERR_BAD_NAME), "bad name");
    cr_assert_str_eq(msg_type_str(MSG_SNAP_CHUNK), "SNAP_CHUNK");
    for (int i = 1; i <= FERR_MAX; i++)
        for (int j = 1; j < i; j++)
            cr_assert_str_neq(frame_err_str(i), frame_err_str(j));
    for (int i = 1; i <= ERR_MAX; i++)
        for (int j = 1; j < i; j++)
            cr_assert_str_neq(seqd_err_str(i), seqd_err_str(j));
    for (int i = 1; i <= MSG_TYPE_MAX; i++)
        for (int j = 1; j < i; j++)
            cr_assert_str_neq(msg_type_str(i), msg_type_str(j));
    /* out of range still gives something printable */
    cr_assert_not_null(frame_err_str(0));
    cr_assert_not_null(frame_err_str(FERR_MAX + 1));
    cr_assert_not_null(seqd_err_str(-3));
    cr_assert_str_eq(msg_type_str(0), "UNKNOWN");
    cr_assert_str_eq(msg_type_str(MSG_TYPE_MAX + 1), "UNKNOWN");
}
