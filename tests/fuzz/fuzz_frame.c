/* tests/fuzz/fuzz_frame.c — libFuzzer target: the frame decoder
 * (net/frame.h) fed a hostile byte stream in chunks, as a conn feeds it.
 *
 * Input layout:
 *   byte 0            k = (byte 0 & 15): number of chunk sizes that follow
 *   bytes 1..k        chunk sizes (1..255; 0 = the rest of the stream in one
 *                     chunk); the list is used cyclically until the stream
 *                     is all fed, so "k=1, size 1" is byte by byte
 *   the rest          the stream
 *
 * Each chunk is appended to an evbuffer and frame_decode is called until it
 * asks for more or fails. Checked, per frame.h:
 *   - the decoded sequence (messages and the final verdict) is the same
 *     whatever the chunking: it equals a reference walk over the whole
 *     stream with frame_parse;
 *   - FRAME_NEED_MORE and a framing error leave the evbuffer as it was;
 *     FRAME_OK removes exactly the frame's size (its prefix + 4), which is
 *     16..SEQD_MAX_FRAME;
 *   - a framing error stops decoding (the conn closes): nothing is fed or
 *     decoded after it, and calling again gives the same error;
 *   - every decoded message has its lengths in bounds (names <= NAME_MAX,
 *     text <= TEXT_MAX, snapshot entries walk exactly n entries over
 *     entries_len bytes inside the frame) and re-packs with frame_pack and
 *     frame_encode to exactly the bytes it was decoded from (same length,
 *     same type; the encoding has no freedom), which parse back the same;
 *   - no read past a buffer: the scratch buffer is exactly SEQD_MAX_FRAME
 *     bytes and frame_parse gets exact-size heap copies (ASan).
 */
#include <assert.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../net/frame.h"

#define CHECK(c)                                                            \
    do {                                                                    \
        if (!(c)) {                                                         \
            fprintf(stderr, "fuzz_frame: check failed: %s (%s:%d)\n", #c, \
                    __FILE__, __LINE__);                                    \
            abort();                                                        \
        }                                                                   \
    } while (0)

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Field-by-field equality of two decoded messages (pointers compared by
 * content: they point into different buffers). */
static int inc_eq(const struct seqd_inc *a, const struct seqd_inc *b)
{
    return a->counter == b->counter && a->nonce == b->nonce && a->pos == b->pos;
}

static int msg_eq(const seqd_msg *a, const seqd_msg *b)
{
    if (a->type != b->type || a->reqid != b->reqid)
        return 0;
    switch (a->type) {
    case MSG_FETCH:
        return a->u.fetch.timeout_ms == b->u.fetch.timeout_ms &&
               a->u.fetch.count == b->u.fetch.count && a->u.fetch.flags == b->u.fetch.flags &&
               a->u.fetch.name.len == b->u.fetch.name.len &&
               memcmp(a->u.fetch.name.s, b->u.fetch.name.s, a->u.fetch.name.len) == 0;
    case MSG_RANGE:
        return a->u.range.first == b->u.range.first && a->u.range.count == b->u.range.count;
    case MSG_REPLY_ERR:
    case MSG_ERROR:
        return a->u.err.code == b->u.err.code && a->u.err.len == b->u.err.len &&
               (a->u.err.len == 0 || memcmp(a->u.err.text, b->u.err.text, a->u.err.len) == 0);
    case MSG_STATUS:
    case MSG_HELLO_OK:
        return 1;
    case MSG_STATUS_REPLY:
        return memcmp(&a->u.status, &b->u.status, sizeof a->u.status) == 0;
    case MSG_HELLO:
        return a->u.hello.round_ms == b->u.hello.round_ms &&
               a->u.hello.cluster_id == b->u.hello.cluster_id &&
               inc_eq(&a->u.hello.inc, &b->u.hello.inc) &&
               a->u.hello.addr_len == b->u.hello.addr_len && a->u.hello.epoch == b->u.hello.epoch &&
               (a->u.hello.addr_len == 0 ||
                memcmp(a->u.hello.addr, b->u.hello.addr, a->u.hello.addr_len) == 0);
    case MSG_READ:
        return a->u.read.epoch == b->u.read.epoch && a->u.read.digest == b->u.read.digest &&
               a->u.read.name.len == b->u.read.name.len &&
               memcmp(a->u.read.name.s, b->u.read.name.s, a->u.read.name.len) == 0;
    case MSG_VALUE:
    case MSG_NACK:
        return a->u.value.cur == b->u.value.cur && inc_eq(&a->u.value.inc, &b->u.value.inc);
    case MSG_ACCEPT:
        return a->u.accept.epoch == b->u.accept.epoch && a->u.accept.digest == b->u.accept.digest &&
               a->u.accept.expect == b->u.accept.expect && a->u.accept.new_ == b->u.accept.new_ &&
               a->u.accept.name.len == b->u.accept.name.len &&
               memcmp(a->u.accept.name.s, b->u.accept.name.s, a->u.accept.name.len) == 0;
    case MSG_ACK:
        return a->u.ack.new_ == b->u.ack.new_ && inc_eq(&a->u.ack.inc, &b->u.ack.inc);
    case MSG_SNAP_REQ:
        return a->u.snap_req.epoch == b->u.snap_req.epoch &&
               a->u.snap_req.digest == b->u.snap_req.digest &&
               a->u.snap_req.start == b->u.snap_req.start &&
               inc_eq(&a->u.snap_req.inc, &b->u.snap_req.inc);
    case MSG_STOPPED:
        return inc_eq(&a->u.stopped.inc, &b->u.stopped.inc);
    case MSG_INIT:
        return a->u.init.op == b->u.init.op && seqd_cid_eq(&a->u.init.cid, &b->u.init.cid) &&
               a->u.init.set_digest == b->u.init.set_digest;
    case MSG_INIT_REPLY:
        return a->u.init_reply.state == b->u.init_reply.state &&
               seqd_cid_eq(&a->u.init_reply.cid, &b->u.init_reply.cid);
    case MSG_AUTH:
        return a->u.auth.step == b->u.auth.step &&
               memcmp(a->u.auth.nonce, b->u.auth.nonce, SEQD_NONCE_LEN) == 0 &&
               memcmp(a->u.auth.mac, b->u.auth.mac, SEQD_MAC_LEN) == 0;
    case MSG_SNAP_CHUNK:
        return a->u.snap.flags == b->u.snap.flags && a->u.snap.next == b->u.snap.next &&
               seqd_cid_eq(&a->u.snap.cid, &b->u.snap.cid) &&
               inc_eq(&a->u.snap.inc, &b->u.snap.inc) && inc_eq(&a->u.snap.you, &b->u.snap.you) &&
               a->u.snap.n == b->u.snap.n && a->u.snap.entries_len == b->u.snap.entries_len &&
               (a->u.snap.entries_len == 0 ||
                memcmp(a->u.snap.entries, b->u.snap.entries, a->u.snap.entries_len) == 0);
    case MSG_ADVANCE:
        return a->u.advance.timeout_ms == b->u.advance.timeout_ms &&
               a->u.advance.value == b->u.advance.value &&
               a->u.advance.name.len == b->u.advance.name.len &&
               memcmp(a->u.advance.name.s, b->u.advance.name.s, a->u.advance.name.len) == 0;
    case MSG_ADVANCED:
        return a->u.advanced.next == b->u.advanced.next;
    case MSG_TOKEN:
        return a->u.token.len == b->u.token.len &&
               (a->u.token.len == 0 || memcmp(a->u.token.token, b->u.token.token, a->u.token.len) == 0);
    case MSG_LIST:
        return a->u.list.start == b->u.list.start && a->u.list.prefix_len == b->u.list.prefix_len &&
               (a->u.list.prefix_len == 0 ||
                memcmp(a->u.list.prefix, b->u.list.prefix, a->u.list.prefix_len) == 0);
    case MSG_SWITCH:
        return a->u.sw.op == b->u.sw.op && a->u.sw.flags == b->u.sw.flags &&
               a->u.sw.slot == b->u.sw.slot && a->u.sw.epoch == b->u.sw.epoch &&
               a->u.sw.old_inc == b->u.sw.old_inc && a->u.sw.old_len == b->u.sw.old_len &&
               a->u.sw.new_len == b->u.sw.new_len &&
               (a->u.sw.old_len == 0 || memcmp(a->u.sw.old_addr, b->u.sw.old_addr, a->u.sw.old_len) == 0) &&
               (a->u.sw.new_len == 0 || memcmp(a->u.sw.new_addr, b->u.sw.new_addr, a->u.sw.new_len) == 0);
    case MSG_SWITCH_REPLY:
        return a->u.sw_reply.state == b->u.sw_reply.state && a->u.sw_reply.slot == b->u.sw_reply.slot &&
               a->u.sw_reply.old_alive == b->u.sw_reply.old_alive &&
               a->u.sw_reply.epoch == b->u.sw_reply.epoch && a->u.sw_reply.digest == b->u.sw_reply.digest &&
               a->u.sw_reply.old_inc == b->u.sw_reply.old_inc &&
               a->u.sw_reply.slots_len == b->u.sw_reply.slots_len &&
               (a->u.sw_reply.slots_len == 0 ||
                memcmp(a->u.sw_reply.slots, b->u.sw_reply.slots, a->u.sw_reply.slots_len) == 0) &&
               a->u.sw_reply.last_slot == b->u.sw_reply.last_slot &&
               a->u.sw_reply.last_old_inc == b->u.sw_reply.last_old_inc &&
               a->u.sw_reply.last_old_len == b->u.sw_reply.last_old_len &&
               a->u.sw_reply.last_new_len == b->u.sw_reply.last_new_len &&
               (a->u.sw_reply.last_old_len == 0 ||
                memcmp(a->u.sw_reply.last_old, b->u.sw_reply.last_old, a->u.sw_reply.last_old_len) == 0) &&
               (a->u.sw_reply.last_new_len == 0 ||
                memcmp(a->u.sw_reply.last_new, b->u.sw_reply.last_new, a->u.sw_reply.last_new_len) == 0);
    case MSG_LIST_CHUNK:
        return a->u.list_chunk.next == b->u.list_chunk.next &&
               a->u.list_chunk.flags == b->u.list_chunk.flags &&
               a->u.list_chunk.n == b->u.list_chunk.n &&
               a->u.list_chunk.entries_len == b->u.list_chunk.entries_len &&
               (a->u.list_chunk.entries_len == 0 ||
                memcmp(a->u.list_chunk.entries, b->u.list_chunk.entries,
                       a->u.list_chunk.entries_len) == 0);
    default:
        return 0;
    }
}

static int in_frame(const void *p, size_t n, const uint8_t *frame, size_t flen)
{
    const uint8_t *q = p;
    return n == 0 || (q >= frame + SEQD_HDR_LEN && q + n <= frame + flen);
}

/* The bounds a decoded message must respect; frame/flen is what it was
 * decoded from (its variable parts must point inside it). */
static void check_bounds(const seqd_msg *m, const uint8_t *frame, size_t flen)
{
    CHECK(m->type >= 1 && m->type <= MSG_TYPE_MAX);
    CHECK(m->type == frame[5]);
    switch (m->type) {
    case MSG_FETCH:
        CHECK(m->u.fetch.name.len <= SEQD_NAME_MAX && m->u.fetch.name.s[m->u.fetch.name.len] == 0);
        break;
    case MSG_READ:
        CHECK(m->u.read.name.len <= SEQD_NAME_MAX && m->u.read.name.s[m->u.read.name.len] == 0);
        break;
    case MSG_ACCEPT:
        CHECK(m->u.accept.name.len <= SEQD_NAME_MAX && m->u.accept.name.s[m->u.accept.name.len] == 0);
        break;
    case MSG_REPLY_ERR:
    case MSG_ERROR:
        CHECK(m->u.err.len <= SEQD_TEXT_MAX);
        CHECK(in_frame(m->u.err.text, m->u.err.len, frame, flen));
        break;
    case MSG_HELLO:
        CHECK(in_frame(m->u.hello.addr, m->u.hello.addr_len, frame, flen));
        break;
    case MSG_ADVANCE:
        CHECK(m->u.advance.name.len <= SEQD_NAME_MAX &&
              m->u.advance.name.s[m->u.advance.name.len] == 0);
        break;
    case MSG_TOKEN:
        CHECK(in_frame(m->u.token.token, m->u.token.len, frame, flen));
        break;
    case MSG_SWITCH:
        CHECK(m->u.sw.old_len <= SEQD_ADDR_MAX && m->u.sw.new_len <= SEQD_ADDR_MAX);
        CHECK(in_frame(m->u.sw.old_addr, m->u.sw.old_len, frame, flen));
        CHECK(in_frame(m->u.sw.new_addr, m->u.sw.new_len, frame, flen));
        break;
    case MSG_SWITCH_REPLY:
        CHECK(m->u.sw_reply.slots_len <= SEQD_SLOTS_MAX);
        CHECK(in_frame(m->u.sw_reply.slots, m->u.sw_reply.slots_len, frame, flen));
        CHECK(in_frame(m->u.sw_reply.last_old, m->u.sw_reply.last_old_len, frame, flen));
        CHECK(in_frame(m->u.sw_reply.last_new, m->u.sw_reply.last_new_len, frame, flen));
        break;
    case MSG_LIST:
        CHECK(m->u.list.prefix_len <= SEQD_NAME_MAX);
        CHECK(in_frame(m->u.list.prefix, m->u.list.prefix_len, frame, flen));
        break;
    case MSG_LIST_CHUNK: {
        CHECK(in_frame(m->u.list_chunk.entries, m->u.list_chunk.entries_len, frame, flen));
        const uint8_t *p = m->u.list_chunk.entries, *end = p + m->u.list_chunk.entries_len;
        struct seqd_name name;
        uint64_t cur;
        unsigned n = 0;
        while (m->u.list_chunk.entries_len && snap_entry_next(&p, end, &name, &cur))
            n++;
        CHECK(n == m->u.list_chunk.n);
        CHECK(m->u.list_chunk.entries_len == 0 || p == end);
        break;
    }
    case MSG_SNAP_CHUNK: {
        CHECK(in_frame(m->u.snap.entries, m->u.snap.entries_len, frame, flen));
        const uint8_t *p = m->u.snap.entries, *end = p + m->u.snap.entries_len;
        struct seqd_name name;
        uint64_t cur;
        unsigned n = 0;
        while (m->u.snap.entries_len && snap_entry_next(&p, end, &name, &cur)) {
            CHECK(name.len <= SEQD_NAME_MAX);
            CHECK(p <= end);
            n++;
        }
        CHECK(n == m->u.snap.n);
        CHECK(m->u.snap.entries_len == 0 || p == end);
        break;
    }
    default:
        break;
    }
}

/* Re-encodes m (decoded from frame[0..flen)) and checks it is the same
 * frame, through both encoders, and that it parses back to m. */
static void check_reencode(const seqd_msg *m, const uint8_t *frame, size_t flen)
{
    static uint8_t *pack;
    if (!pack)
        pack = malloc(SEQD_MAX_FRAME);
    size_t n = frame_pack(m, pack);
    CHECK(n > 0);
    CHECK(pack[5] == frame[5]);
    /* Status counters are (name, value) pairs of which a receiver keeps
     * the names it knows (proto.h): a frame with unknown, repeated or
     * reordered names re-encodes to the canonical list, not byte for byte;
     * it must still parse back to the same counters (below). */
    bool exact = m->type != MSG_STATUS_REPLY;
    if (exact) {
        CHECK(n == flen);
        CHECK(memcmp(pack, frame, flen) == 0);
    }

    struct evbuffer *out = evbuffer_new();
    CHECK(out);
    CHECK(frame_encode(out, m) == 0);
    CHECK(evbuffer_get_length(out) == n);
    CHECK(memcmp(evbuffer_pullup(out, -1), pack, n) == 0);
    evbuffer_free(out);

    uint8_t *copy = malloc(n);
    memcpy(copy, pack, n);
    seqd_msg back;
    CHECK(frame_parse(copy, n, &back) == FRAME_OK);
    CHECK(msg_eq(m, &back));
    free(copy);
}

#define MAX_MSGS 4096

struct ref {
    seqd_msg msgs[MAX_MSGS];
    size_t off[MAX_MSGS], len[MAX_MSGS];
    size_t n;
    int verdict;   /* FRAME_NEED_MORE at the end of the stream, or -ferr */
};

/* The reference: frame_parse over the whole stream, frame after frame,
 * each time on an exact-size heap copy of what is left. */
static void reference(const uint8_t *s, size_t len, struct ref *r)
{
    size_t off = 0;
    r->n = 0;
    for (;;) {
        size_t left = len - off;
        uint8_t *copy = malloc(left ? left : 1);
        memcpy(copy, s + off, left);
        seqd_msg m;
        int rc = frame_parse(copy, left, &m);
        if (rc != FRAME_OK) {
            CHECK(rc == FRAME_NEED_MORE || (rc < 0 && -rc >= 1 && -rc <= FERR_MAX));
            r->verdict = rc;
            free(copy);
            return;
        }
        size_t flen = (size_t)be32(copy) + 4;
        CHECK(flen >= SEQD_HDR_LEN && flen <= SEQD_MAX_FRAME && flen <= left);
        check_bounds(&m, copy, flen);
        check_reencode(&m, copy, flen);
        /* Bytes past the frame are not looked at: the frame alone parses
         * the same. */
        uint8_t *alone = malloc(flen);
        memcpy(alone, copy, flen);
        seqd_msg m2;
        CHECK(frame_parse(alone, flen, &m2) == FRAME_OK && msg_eq(&m, &m2));
        /* A strict prefix of a valid frame is never an error. */
        CHECK(frame_parse(alone, flen - 1, &m2) == FRAME_NEED_MORE);
        free(alone);
        free(copy);
        if (r->n == MAX_MSGS) {
            r->verdict = FRAME_NEED_MORE;   /* stop comparing here */
            return;
        }
        /* Pointers in m refer into the freed copy: keep only what msg_eq
         * compares by value; variable parts are compared via offsets. */
        r->msgs[r->n] = m;
        r->off[r->n] = off;
        r->len[r->n] = flen;
        r->n++;
        off += flen;
    }
}

static uint8_t *scratch;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!scratch)
        scratch = malloc(SEQD_MAX_FRAME);
    if (size < 1)
        return 0;
    size_t k = data[0] & 15u;
    if (size < 1 + k)
        return 0;
    const uint8_t *sizes = data + 1;
    const uint8_t *s = data + 1 + k;
    size_t len = size - 1 - k;

    static struct ref r;
    reference(s, len, &r);

    struct evbuffer *in = evbuffer_new();
    CHECK(in);
    size_t fed = 0, consumed = 0, nmsg = 0, ci = 0;
    int verdict = FRAME_NEED_MORE;
    while (fed < len && verdict == FRAME_NEED_MORE) {
        size_t c = k ? sizes[ci++ % k] : 0;
        if (c == 0 || c > len - fed)
            c = len - fed;
        CHECK(evbuffer_add(in, s + fed, c) == 0);
        fed += c;
        for (;;) {
            size_t before = evbuffer_get_length(in);
            CHECK(before == fed - consumed);
            seqd_msg m;
            int rc = frame_decode(in, &m, scratch);
            if (rc == FRAME_OK) {
                size_t flen = before - evbuffer_get_length(in);
                CHECK(flen >= SEQD_HDR_LEN && flen <= SEQD_MAX_FRAME);
                CHECK(flen == (size_t)be32(scratch) + 4);
                CHECK(memcmp(scratch, s + consumed, flen) == 0);
                check_bounds(&m, scratch, flen);
                if (nmsg < r.n) {
                    CHECK(r.off[nmsg] == consumed && r.len[nmsg] == flen);
                    /* The reference's pointers are stale; compare the
                     * fixed fields, and the bytes, which fix the rest. */
                    seqd_msg ref = r.msgs[nmsg];
                    CHECK(ref.type == m.type && ref.reqid == m.reqid);
                }
                nmsg++;
                consumed += flen;
                continue;
            }
            CHECK(evbuffer_get_length(in) == before);   /* left as it was */
            if (rc == FRAME_NEED_MORE)
                break;
            CHECK(rc < 0 && -rc >= 1 && -rc <= FERR_MAX);
            verdict = rc;
            /* A framing error sticks: the same bytes give the same error. */
            CHECK(frame_decode(in, &m, scratch) == rc);
            CHECK(evbuffer_get_length(in) == before);
            break;
        }
    }
    /* Chunking does not change what is decoded, nor the verdict. */
    if (r.n < MAX_MSGS) {
        CHECK(nmsg == r.n);
        CHECK(verdict == r.verdict);
    }
    /* An error stopped the feeding; otherwise everything was fed. */
    CHECK(verdict != FRAME_NEED_MORE || fed == len);
    evbuffer_free(in);
    return 0;
}
