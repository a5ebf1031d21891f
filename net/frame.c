/* net/frame.c — the seqd frame codec (format: proto.h, contract: frame.h).
 *
 * One serializer and one parser. The serializer writes through a bounded
 * writer that can also run without a buffer, so frame_encode measures a
 * message first and then packs it straight into exactly that much evbuffer
 * space (no 64 KiB stack buffer, no 64 KiB reservation per tiny reply).
 * The parser reads through a bounded reader whose first error sticks, so
 * each message type is a flat list of fields with no error checks between
 * them. frame_decode peeks the header with the same check frame_parse uses
 * and then hands the whole frame to frame_parse: one set of rules.
 */
#include "frame.h"

#include <assert.h>
#include <event2/buffer.h>

/* ---- big-endian helpers ------------------------------------------------ */

/* Reads an n-byte big-endian integer; the wire has no other byte order. */
static uint64_t be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Writes an n-byte big-endian integer (the low n bytes of v). */
static void be_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* ---- writer ------------------------------------------------------------ */

/* A bounded output cursor. With buf == NULL it only counts, which lets
 * frame_encode learn a message's size without a scratch buffer. Once a
 * write does not fit, `bad` sticks and nothing more is written. */
struct wr {
    uint8_t *buf;
    size_t cap, off;
    bool bad;
};

/* Appends raw bytes, or marks the writer bad when they would overflow. */
static void wr_bytes(struct wr *w, const void *src, size_t n)
{
    if (w->bad || n > w->cap - w->off) {
        w->bad = true;
        return;
    }
    if (w->buf && n)
        memcpy(w->buf + w->off, src, n);
    w->off += n;
}

/* Appends an n-byte big-endian integer. */
static void wr_uint(struct wr *w, uint64_t v, int n)
{
    uint8_t b[8];
    be_put(b, v, n);
    wr_bytes(w, b, (size_t)n);
}

/* Names go as u8 len | bytes. A length over SEQD_NAME_MAX would not decode
 * into struct seqd_name on the other side, so it is refused here too. */
static void wr_name(struct wr *w, const struct seqd_name *name)
{
    if (name->len > SEQD_NAME_MAX) {
        w->bad = true;
        return;
    }
    wr_uint(w, name->len, 1);
    wr_bytes(w, name->s, name->len);
}

/* A length-prefixed byte string (err text, hello addr). A NULL pointer with
 * a non-zero length is a caller bug; refusing it beats reading address 0. */
static void wr_lenbytes(struct wr *w, const char *s, size_t len, int lenbytes, size_t max)
{
    if (len > max || (len && !s)) {
        w->bad = true;
        return;
    }
    wr_uint(w, len, lenbytes);
    wr_bytes(w, s, len);
}

static void wr_inc(struct wr *w, const struct seqd_inc *inc)
{
    wr_uint(w, inc->counter, 8);
    wr_uint(w, inc->nonce, 8);
    wr_uint(w, inc->pos, 8);
}

/* ---- snapshot entries (shared by pack and parse) ------------------------ */

/* Walks n entries (u8 name_len | name | u64) in p[0..avail) and returns 0
 * with the bytes they take in *used, or the framing error. The decoder
 * relies on this so that snap_entry_next (proto.h) can walk without checks;
 * the packer relies on it so that it never emits a chunk the peer refuses.
 * A name over SEQD_NAME_MAX would overflow struct seqd_name in
 * snap_entry_next, so it is an error even when the bytes are present. */
static int snap_entries_scan(const uint8_t *p, size_t avail, unsigned n, size_t *used)
{
    size_t off = 0;
    for (unsigned i = 0; i < n; i++) {
        if (off >= avail)
            return FERR_SHORT;
        size_t len = p[off];
        if (len > SEQD_NAME_MAX)
            return FERR_LONG;
        if (avail - off < 1 + len + 8)
            return FERR_SHORT;
        off += 1 + len + 8;
    }
    *used = off;
    return 0;
}

/* ---- serializer --------------------------------------------------------- */

/* Snapshot chunks carry pre-packed entries; they must be exactly n well-formed
 * entries, or the receiver would refuse the whole connection. */
static void pack_snap(struct wr *w, const seqd_msg *m)
{
    size_t used = 0;
    uint32_t elen = m->u.snap.entries_len;
    if ((elen && !m->u.snap.entries) ||
        snap_entries_scan(m->u.snap.entries, elen, m->u.snap.n, &used) != 0 || used != elen) {
        w->bad = true;
        return;
    }
    wr_uint(w, m->u.snap.flags, 1);
    wr_bytes(w, m->u.snap.cid.b, SEQD_CID_LEN);
    wr_inc(w, &m->u.snap.inc);
    wr_inc(w, &m->u.snap.you);
    wr_uint(w, m->u.snap.next, 4);
    wr_uint(w, m->u.snap.n, 2);
    wr_bytes(w, m->u.snap.entries, elen);
}

/* List chunks carry pre-packed entries too, under the same rule. */
static void pack_list_chunk(struct wr *w, const seqd_msg *m)
{
    size_t used = 0;
    uint32_t elen = m->u.list_chunk.entries_len;
    if ((elen && !m->u.list_chunk.entries) ||
        snap_entries_scan(m->u.list_chunk.entries, elen, m->u.list_chunk.n, &used) != 0 ||
        used != elen) {
        w->bad = true;
        return;
    }
    wr_uint(w, m->u.list_chunk.next, 4);
    wr_uint(w, m->u.list_chunk.flags, 1);
    wr_uint(w, m->u.list_chunk.n, 2);
    wr_bytes(w, m->u.list_chunk.entries, elen);
}

/* The payload layouts, one case per type, in proto.h order. */
static void pack_payload(struct wr *w, const seqd_msg *m)
{
    const struct seqd_status *st = &m->u.status;
    switch (m->type) {
    case MSG_FETCH:
        wr_uint(w, m->u.fetch.timeout_ms, 4);
        wr_uint(w, m->u.fetch.count, 4);
        wr_uint(w, m->u.fetch.flags, 1);
        wr_name(w, &m->u.fetch.name);
        break;
    case MSG_RANGE:
        wr_uint(w, m->u.range.first, 8);
        wr_uint(w, m->u.range.count, 4);
        break;
    case MSG_REPLY_ERR:
    case MSG_ERROR:
        wr_uint(w, m->u.err.code, 2);
        wr_lenbytes(w, m->u.err.text, m->u.err.len, 2, SEQD_TEXT_MAX);
        break;
    case MSG_STATUS:
    case MSG_HELLO_OK:
        break;
    case MSG_STATUS_REPLY:
        wr_uint(w, st->state, 1);
        wr_uint(w, st->self_index, 1);
        wr_uint(w, st->n_members, 1);
#define PUT_COUNT(name) +1
        wr_uint(w, 0 SEQD_STATUS_COUNTERS(PUT_COUNT), 1);
#undef PUT_COUNT
#define PUT_PAIR(name)                                                  \
        wr_lenbytes(w, #name, sizeof #name - 1, 1, SEQD_NAME_MAX);       \
        wr_uint(w, st->name, 8);
        SEQD_STATUS_COUNTERS(PUT_PAIR)
#undef PUT_PAIR
        break;
    case MSG_HELLO:
        wr_uint(w, m->u.hello.round_ms, 4);
        wr_uint(w, m->u.hello.cluster_id, 8);
        wr_inc(w, &m->u.hello.inc);
        wr_lenbytes(w, m->u.hello.addr, m->u.hello.addr_len, 1, SEQD_ADDR_MAX);
        wr_uint(w, m->u.hello.epoch, 8);
        break;
    case MSG_READ:
        wr_uint(w, m->u.read.epoch, 8);
        wr_uint(w, m->u.read.digest, 8);
        wr_name(w, &m->u.read.name);
        break;
    case MSG_VALUE:
    case MSG_NACK:
        wr_uint(w, m->u.value.cur, 8);
        wr_inc(w, &m->u.value.inc);
        break;
    case MSG_ACCEPT:
        wr_uint(w, m->u.accept.epoch, 8);
        wr_uint(w, m->u.accept.digest, 8);
        wr_uint(w, m->u.accept.expect, 8);
        wr_uint(w, m->u.accept.new_, 8);
        wr_name(w, &m->u.accept.name);
        break;
    case MSG_ACK:
        wr_uint(w, m->u.ack.new_, 8);
        wr_inc(w, &m->u.ack.inc);
        break;
    case MSG_SNAP_REQ:
        wr_uint(w, m->u.snap_req.epoch, 8);
        wr_uint(w, m->u.snap_req.digest, 8);
        wr_uint(w, m->u.snap_req.start, 4);
        wr_inc(w, &m->u.snap_req.inc);
        break;
    case MSG_STOPPED:
        wr_inc(w, &m->u.stopped.inc);
        break;
    case MSG_SNAP_CHUNK:
        pack_snap(w, m);
        break;
    case MSG_INIT:
        wr_uint(w, m->u.init.op, 1);
        wr_bytes(w, m->u.init.cid.b, SEQD_CID_LEN);
        wr_uint(w, m->u.init.set_digest, 8);
        break;
    case MSG_INIT_REPLY:
        wr_uint(w, m->u.init_reply.state, 1);
        wr_bytes(w, m->u.init_reply.cid.b, SEQD_CID_LEN);
        break;
    case MSG_AUTH:
        wr_uint(w, m->u.auth.step, 1);
        wr_bytes(w, m->u.auth.nonce, SEQD_NONCE_LEN);
        wr_bytes(w, m->u.auth.mac, SEQD_MAC_LEN);
        break;
    case MSG_ADVANCE:
        wr_uint(w, m->u.advance.timeout_ms, 4);
        wr_uint(w, m->u.advance.value, 8);
        wr_name(w, &m->u.advance.name);
        break;
    case MSG_ADVANCED:
        wr_uint(w, m->u.advanced.next, 8);
        break;
    case MSG_LIST:
        wr_uint(w, m->u.list.start, 4);
        wr_lenbytes(w, m->u.list.prefix, m->u.list.prefix_len, 1, SEQD_NAME_MAX);
        break;
    case MSG_LIST_CHUNK:
        pack_list_chunk(w, m);
        break;
    case MSG_SWITCH:
        wr_uint(w, m->u.sw.op, 1);
        wr_uint(w, m->u.sw.flags, 1);
        wr_uint(w, m->u.sw.slot, 1);
        wr_uint(w, m->u.sw.epoch, 8);
        wr_uint(w, m->u.sw.old_inc, 8);
        wr_lenbytes(w, m->u.sw.old_addr, m->u.sw.old_len, 1, SEQD_ADDR_MAX);
        wr_lenbytes(w, m->u.sw.new_addr, m->u.sw.new_len, 1, SEQD_ADDR_MAX);
        break;
    case MSG_SWITCH_REPLY:
        wr_uint(w, m->u.sw_reply.state, 1);
        wr_uint(w, m->u.sw_reply.slot, 1);
        wr_uint(w, m->u.sw_reply.old_alive, 1);
        wr_uint(w, m->u.sw_reply.epoch, 8);
        wr_uint(w, m->u.sw_reply.digest, 8);
        wr_uint(w, m->u.sw_reply.old_inc, 8);
        wr_lenbytes(w, m->u.sw_reply.slots, m->u.sw_reply.slots_len, 2, SEQD_SLOTS_MAX);
        wr_uint(w, m->u.sw_reply.last_slot, 1);
        wr_uint(w, m->u.sw_reply.last_old_inc, 8);
        wr_lenbytes(w, m->u.sw_reply.last_old, m->u.sw_reply.last_old_len, 1, SEQD_ADDR_MAX);
        wr_lenbytes(w, m->u.sw_reply.last_new, m->u.sw_reply.last_new_len, 1, SEQD_ADDR_MAX);
        break;
    case MSG_TOKEN:
        wr_lenbytes(w, m->u.token.token, m->u.token.len, 1, 255);
        break;
    default:
        w->bad = true;
        break;
    }
}

/* Serializes m into buf[0..cap), or only measures it when buf is NULL.
 * Returns the frame's size or 0. The length prefix is filled in last,
 * when the size is known. */
static size_t pack_msg(const seqd_msg *m, uint8_t *buf, size_t cap)
{
    struct wr w = { .buf = buf, .cap = cap };
    if (m->type < 1 || m->type > MSG_TYPE_MAX)
        return 0;
    wr_uint(&w, 0, 4);
    wr_uint(&w, SEQD_PROTO_VERSION, 1);
    wr_uint(&w, m->type, 1);
    wr_uint(&w, 0, 2);
    wr_uint(&w, m->reqid, 8);
    pack_payload(&w, m);
    if (w.bad)
        return 0;
    if (buf)
        be_put(buf, w.off - 4, 4);
    return w.off;
}

/* Public entry over a caller's SEQD_MAX_FRAME buffer. */
size_t frame_pack(const seqd_msg *m, uint8_t *buf)
{
    return pack_msg(m, buf, SEQD_MAX_FRAME);
}

size_t frame_size(const seqd_msg *m)
{
    return pack_msg(m, NULL, SEQD_MAX_FRAME);
}

/* Measures first so the frame is packed in place into exactly the space it
 * needs: one copy fewer, and no 64 KiB reservation for a 28-byte reply. */
int frame_encode(struct evbuffer *out, const seqd_msg *m)
{
    size_t n = pack_msg(m, NULL, SEQD_MAX_FRAME);
    if (n == 0)
        return -1;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)n, &v, 1) != 1 || v.iov_len < n)
        return -1;
    if (pack_msg(m, v.iov_base, n) != n)
        return -1;  /* cannot happen: same message, same size */
    v.iov_len = n;
    return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

/* ---- reader ------------------------------------------------------------- */

/* A bounded input cursor over one frame's payload. The first error sticks
 * (later reads return zeros), so the per-type parsers need no checks. */
struct rd {
    const uint8_t *p;
    size_t left;
    int err;  /* enum seqd_ferr, 0 while fine */
};

/* Takes n bytes, or records FERR_SHORT and returns NULL. */
static const uint8_t *rd_bytes(struct rd *r, size_t n)
{
    if (r->err)
        return NULL;
    if (n > r->left) {
        r->err = FERR_SHORT;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

/* Takes an n-byte big-endian integer (0 after an error). */
static uint64_t rd_uint(struct rd *r, int n)
{
    const uint8_t *p = rd_bytes(r, (size_t)n);
    return p ? be_get(p, n) : 0;
}

/* Copies a u8-length name into struct seqd_name. A length over
 * SEQD_NAME_MAX cannot be held there, so it is FERR_LONG (checked before
 * the bytes, so a 200-byte claim is "too long" even if the frame is short). */
static void rd_name(struct rd *r, struct seqd_name *name)
{
    size_t len = (size_t)rd_uint(r, 1);
    if (!r->err && len > SEQD_NAME_MAX)
        r->err = FERR_LONG;
    const uint8_t *s = rd_bytes(r, len);
    if (s)
        seqd_name_set(name, (const char *)s, len);
}

/* A length-prefixed string that stays in the frame buffer. Over `max` is
 * FERR_LONG, for the same reason as names: whatever decodes can be packed
 * again and copied into a buffer of the documented size. */
static const char *rd_lenbytes(struct rd *r, int lenbytes, size_t max, size_t *len)
{
    *len = (size_t)rd_uint(r, lenbytes);
    if (!r->err && *len > max)
        r->err = FERR_LONG;
    const uint8_t *s = rd_bytes(r, *len);
    if (!s)
        *len = 0;
    return (const char *)s;
}

/* ---- parser ------------------------------------------------------------- */

static void rd_cid(struct rd *r, struct seqd_cid *cid)
{
    const uint8_t *p = rd_bytes(r, SEQD_CID_LEN);
    if (p)
        memcpy(cid->b, p, SEQD_CID_LEN);
}

/* Snapshot entries are validated all at once so callers can walk them with
 * snap_entry_next and never see a truncated entry. */
static void rd_inc(struct rd *r, struct seqd_inc *inc)
{
    inc->counter = rd_uint(r, 8);
    inc->nonce = rd_uint(r, 8);
    inc->pos = rd_uint(r, 8);
}

static void parse_snap(struct rd *r, seqd_msg *m)
{
    m->u.snap.flags = (uint8_t)rd_uint(r, 1);
    rd_cid(r, &m->u.snap.cid);
    rd_inc(r, &m->u.snap.inc);
    rd_inc(r, &m->u.snap.you);
    m->u.snap.next = (uint32_t)rd_uint(r, 4);
    m->u.snap.n = (uint16_t)rd_uint(r, 2);
    if (r->err)
        return;
    size_t used = 0;
    int e = snap_entries_scan(r->p, r->left, m->u.snap.n, &used);
    if (e) {
        r->err = e;
        return;
    }
    m->u.snap.entries = rd_bytes(r, used);
    m->u.snap.entries_len = (uint32_t)used;
}

static void parse_list_chunk(struct rd *r, seqd_msg *m)
{
    m->u.list_chunk.next = (uint32_t)rd_uint(r, 4);
    m->u.list_chunk.flags = (uint8_t)rd_uint(r, 1);
    m->u.list_chunk.n = (uint16_t)rd_uint(r, 2);
    if (r->err)
        return;
    size_t used = 0;
    int e = snap_entries_scan(r->p, r->left, m->u.list_chunk.n, &used);
    if (e) {
        r->err = e;
        return;
    }
    m->u.list_chunk.entries = rd_bytes(r, used);
    m->u.list_chunk.entries_len = (uint32_t)used;
}

/* Counters by name; names this build does not know are skipped (a newer
 * member's), and counters it knows but did not get stay 0 (an older one's). */
static void parse_status(struct rd *r, struct seqd_status *st)
{
    memset(st, 0, sizeof *st);
    st->state = (uint8_t)rd_uint(r, 1);
    st->self_index = (uint8_t)rd_uint(r, 1);
    st->n_members = (uint8_t)rd_uint(r, 1);
    unsigned n = (unsigned)rd_uint(r, 1);
    for (unsigned i = 0; i < n && !r->err; i++) {
        size_t len = 0;
        const char *name = rd_lenbytes(r, 1, SEQD_NAME_MAX, &len);
        uint64_t v = rd_uint(r, 8);
        if (r->err)
            return;
#define GET_PAIR(field)                                                  \
        if (len == sizeof #field - 1 && memcmp(name, #field, len) == 0)  \
            st->field = v;
        SEQD_STATUS_COUNTERS(GET_PAIR)
#undef GET_PAIR
    }
}

/* The mirror of pack_payload. */
static void parse_payload(struct rd *r, seqd_msg *m)
{
    struct seqd_status *st = &m->u.status;
    size_t len = 0;
    switch (m->type) {
    case MSG_FETCH:
        m->u.fetch.timeout_ms = (uint32_t)rd_uint(r, 4);
        m->u.fetch.count = (uint32_t)rd_uint(r, 4);
        m->u.fetch.flags = (uint8_t)rd_uint(r, 1);
        rd_name(r, &m->u.fetch.name);
        break;
    case MSG_RANGE:
        m->u.range.first = rd_uint(r, 8);
        m->u.range.count = (uint32_t)rd_uint(r, 4);
        break;
    case MSG_REPLY_ERR:
    case MSG_ERROR:
        m->u.err.code = (uint16_t)rd_uint(r, 2);
        m->u.err.text = rd_lenbytes(r, 2, SEQD_TEXT_MAX, &len);
        m->u.err.len = (uint16_t)len;
        break;
    case MSG_STATUS:
    case MSG_HELLO_OK:
        break;
    case MSG_STATUS_REPLY:
        parse_status(r, st);
        break;
    case MSG_HELLO:
        m->u.hello.round_ms = (uint32_t)rd_uint(r, 4);
        m->u.hello.cluster_id = rd_uint(r, 8);
        rd_inc(r, &m->u.hello.inc);
        m->u.hello.addr = rd_lenbytes(r, 1, SEQD_ADDR_MAX, &len);
        m->u.hello.addr_len = (uint8_t)len;
        m->u.hello.epoch = rd_uint(r, 8);
        break;
    case MSG_READ:
        m->u.read.epoch = rd_uint(r, 8);
        m->u.read.digest = rd_uint(r, 8);
        rd_name(r, &m->u.read.name);
        break;
    case MSG_VALUE:
    case MSG_NACK:
        m->u.value.cur = rd_uint(r, 8);
        rd_inc(r, &m->u.value.inc);
        break;
    case MSG_ACCEPT:
        m->u.accept.epoch = rd_uint(r, 8);
        m->u.accept.digest = rd_uint(r, 8);
        m->u.accept.expect = rd_uint(r, 8);
        m->u.accept.new_ = rd_uint(r, 8);
        rd_name(r, &m->u.accept.name);
        break;
    case MSG_ACK:
        m->u.ack.new_ = rd_uint(r, 8);
        rd_inc(r, &m->u.ack.inc);
        break;
    case MSG_SNAP_REQ:
        m->u.snap_req.epoch = rd_uint(r, 8);
        m->u.snap_req.digest = rd_uint(r, 8);
        m->u.snap_req.start = (uint32_t)rd_uint(r, 4);
        rd_inc(r, &m->u.snap_req.inc);
        break;
    case MSG_STOPPED:
        rd_inc(r, &m->u.stopped.inc);
        break;
    case MSG_SNAP_CHUNK:
        parse_snap(r, m);
        break;
    case MSG_INIT:
        m->u.init.op = (uint8_t)rd_uint(r, 1);
        rd_cid(r, &m->u.init.cid);
        m->u.init.set_digest = rd_uint(r, 8);
        break;
    case MSG_INIT_REPLY:
        m->u.init_reply.state = (uint8_t)rd_uint(r, 1);
        rd_cid(r, &m->u.init_reply.cid);
        break;
    case MSG_ADVANCE:
        m->u.advance.timeout_ms = (uint32_t)rd_uint(r, 4);
        m->u.advance.value = rd_uint(r, 8);
        rd_name(r, &m->u.advance.name);
        break;
    case MSG_ADVANCED:
        m->u.advanced.next = rd_uint(r, 8);
        break;
    case MSG_LIST:
        m->u.list.start = (uint32_t)rd_uint(r, 4);
        m->u.list.prefix = rd_lenbytes(r, 1, SEQD_NAME_MAX, &len);
        m->u.list.prefix_len = (uint8_t)len;
        break;
    case MSG_LIST_CHUNK:
        parse_list_chunk(r, m);
        break;
    case MSG_SWITCH:
        m->u.sw.op = (uint8_t)rd_uint(r, 1);
        m->u.sw.flags = (uint8_t)rd_uint(r, 1);
        m->u.sw.slot = (uint8_t)rd_uint(r, 1);
        m->u.sw.epoch = rd_uint(r, 8);
        m->u.sw.old_inc = rd_uint(r, 8);
        m->u.sw.old_addr = rd_lenbytes(r, 1, SEQD_ADDR_MAX, &len);
        m->u.sw.old_len = (uint8_t)len;
        m->u.sw.new_addr = rd_lenbytes(r, 1, SEQD_ADDR_MAX, &len);
        m->u.sw.new_len = (uint8_t)len;
        break;
    case MSG_SWITCH_REPLY:
        m->u.sw_reply.state = (uint8_t)rd_uint(r, 1);
        m->u.sw_reply.slot = (uint8_t)rd_uint(r, 1);
        m->u.sw_reply.old_alive = (uint8_t)rd_uint(r, 1);
        m->u.sw_reply.epoch = rd_uint(r, 8);
        m->u.sw_reply.digest = rd_uint(r, 8);
        m->u.sw_reply.old_inc = rd_uint(r, 8);
        m->u.sw_reply.slots = rd_lenbytes(r, 2, SEQD_SLOTS_MAX, &len);
        m->u.sw_reply.slots_len = (uint16_t)len;
        m->u.sw_reply.last_slot = (uint8_t)rd_uint(r, 1);
        m->u.sw_reply.last_old_inc = rd_uint(r, 8);
        m->u.sw_reply.last_old = rd_lenbytes(r, 1, SEQD_ADDR_MAX, &len);
        m->u.sw_reply.last_old_len = (uint8_t)len;
        m->u.sw_reply.last_new = rd_lenbytes(r, 1, SEQD_ADDR_MAX, &len);
        m->u.sw_reply.last_new_len = (uint8_t)len;
        break;
    case MSG_TOKEN:
        m->u.token.token = rd_lenbytes(r, 1, 255, &len);
        m->u.token.len = (uint8_t)len;
        break;
    case MSG_AUTH: {
        m->u.auth.step = (uint8_t)rd_uint(r, 1);
        const uint8_t *n = rd_bytes(r, SEQD_NONCE_LEN), *mac = rd_bytes(r, SEQD_MAC_LEN);
        if (n && mac) {
            memcpy(m->u.auth.nonce, n, SEQD_NONCE_LEN);
            memcpy(m->u.auth.mac, mac, SEQD_MAC_LEN);
        }
        break;
    }
    default:
        r->err = FERR_TYPE;  /* head_check already refused it */
        break;
    }
}

/* Checks as much of the header as the `have` bytes at h show, in the
 * contract's order: length, version, type, flags. The length comes first so
 * that a hostile 4 GiB prefix is refused after 4 bytes, before anything is
 * buffered for it; the rest is checked as soon as its byte arrives so that
 * garbage is refused without waiting for a payload that may never come.
 * Returns FRAME_OK with the whole header valid, FRAME_NEED_MORE, or -ferr;
 * *frame_len is set once the length is known and acceptable. */
static int head_check(const uint8_t *h, size_t have, size_t *frame_len)
{
    if (have < 4)
        return FRAME_NEED_MORE;
    uint32_t len = (uint32_t)be_get(h, 4);
    if (len > SEQD_MAX_FRAME - 4)
        return -FERR_TOO_LONG;
    if (len < SEQD_HDR_LEN - 4)
        return -FERR_SHORT;
    *frame_len = (size_t)len + 4;
    if (have > 4 && h[4] != SEQD_PROTO_VERSION)
        return -FERR_VERSION;
    if (have > 5 && (h[5] == 0 || h[5] > MSG_TYPE_MAX))
        return -FERR_TYPE;
    if (have >= 8 && (h[6] | h[7]) != 0)
        return -FERR_FLAGS;
    return have < SEQD_HDR_LEN ? FRAME_NEED_MORE : FRAME_OK;
}

/* The single implementation of the frame rules; frame_decode calls it on
 * the copied frame. Bytes after the frame are not looked at. */
int frame_parse(const uint8_t *buf, size_t len, seqd_msg *out)
{
    size_t flen = 0;
    int rc = head_check(buf, len, &flen);
    if (rc != FRAME_OK)
        return rc;
    assert(flen >= SEQD_HDR_LEN && flen <= SEQD_MAX_FRAME);   /* head_check validated it */
    if (len < flen)
        return FRAME_NEED_MORE;
    memset(out, 0, sizeof *out);
    out->type = buf[5];
    out->reqid = be_get(buf + 8, 8);
    struct rd r = { .p = buf + SEQD_HDR_LEN, .left = flen - SEQD_HDR_LEN };
    parse_payload(&r, out);
    if (!r.err && r.left)
        r.err = FERR_LONG;
    return r.err ? -r.err : FRAME_OK;
}

/* Peek, check, wait, copy, parse, and only then drain: a frame that is not
 * whole or not valid leaves the evbuffer exactly as it was. */
int frame_decode(struct evbuffer *in, seqd_msg *out, uint8_t *scratch)
{
    uint8_t hdr[SEQD_HDR_LEN];
    size_t have = evbuffer_get_length(in);
    ev_ssize_t got = evbuffer_copyout(in, hdr, have < sizeof hdr ? have : sizeof hdr);
    if (got < 0)
        return FRAME_NEED_MORE;
    size_t flen = 0;
    int rc = head_check(hdr, (size_t)got, &flen);
    if (rc != FRAME_OK)
        return rc;
    if (have < flen)
        return FRAME_NEED_MORE;
    if (evbuffer_copyout(in, scratch, flen) != (ev_ssize_t)flen)
        return FRAME_NEED_MORE;
    rc = frame_parse(scratch, flen, out);
    if (rc == FRAME_OK)
        evbuffer_drain(in, flen);
    return rc;
}

/* frame_decode's peek and wait, for a frame with a trailer; the caller
 * checks the trailer before it parses. */
int frame_take(struct evbuffer *in, uint8_t *scratch, size_t trailer, size_t *flen)
{
    uint8_t hdr[SEQD_HDR_LEN];
    size_t have = evbuffer_get_length(in);
    ev_ssize_t got = evbuffer_copyout(in, hdr, have < sizeof hdr ? have : sizeof hdr);
    if (got < 0)
        return FRAME_NEED_MORE;
    int rc = head_check(hdr, (size_t)got, flen);
    if (rc != FRAME_OK)
        return rc;
    size_t unit = *flen + trailer;
    if (have < unit || evbuffer_remove(in, scratch, unit) != (int)unit)
        return FRAME_NEED_MORE;
    return FRAME_OK;
}

/* ---- names for logs ----------------------------------------------------- */

#define NAME_TEXT(name, num, text) [num] = text,
#define NAME_TYPE(name, num) [num] = #name,

/* Accepts the negative value frame_decode returns as well, since that is
 * what a caller has at hand. */
const char *frame_err_str(int ferr)
{
    static const char *const s[] = {SEQD_FERRS(NAME_TEXT)};
    if (ferr < 0)
        ferr = -ferr;
    return ferr >= 1 && ferr <= FERR_MAX ? s[ferr] : "unknown framing error";
}

/* Request error codes as a client prints them. */
const char *seqd_err_str(int err)
{
    static const char *const s[] = {SEQD_ERRS(NAME_TEXT)};
    return err >= 1 && err <= ERR_MAX ? s[err] : "unknown error";
}

/* Message type names for traces. */
const char *msg_type_str(int type)
{
    static const char *const s[] = {SEQD_MSG_TYPES(NAME_TYPE)};
    return type >= 1 && type <= MSG_TYPE_MAX ? s[type] : "UNKNOWN";
}
