/* tests/fuzz/fuzz_auth.c — libFuzzer target: the challenge-response
 * (net/auth.h, auth_step) and the frame MAC (net/mac.h) as a listener and
 * a connector run them, without sockets: the same codec calls conn.c makes
 * (frame_decode before the tags, mac_decode / mac_encode after), the same
 * switch points (the listener tags after queueing AUTH_OK, the connector
 * after receiving it) and front_bin's rule that a HELLO or INIT needs a
 * finished exchange.
 *
 * Input layout: byte 0 picks the mode (bit 0); the rest is its input.
 *
 * Mode 0, a stranger: the rest is a byte stream sent to a listener, fed in
 * chunks of (byte 1 & 63) + 1 bytes. Checked: the listener never finishes
 * the exchange (nobody without the secret can prove it), so it never takes
 * a HELLO or INIT; it stops at the first framing error or refusal.
 *
 * Mode 1, a man in the middle: an honest connector and an honest listener
 * with the same secret, two byte queues between them, and the rest of the
 * input a script of one-byte ops (some followed by argument bytes):
 *   op & 7 = 0  the connector sends its next message (one byte: which of
 *               HELLO / READ / ACCEPT / SNAP_REQ / STATUS), once authenticated
 *            1  deliver (next byte) + 1 bytes of the queue to the listener
 *            2  deliver (next byte) + 1 bytes of the queue to the connector
 *            3  flip bit (next 2 bytes) of a queue
 *            4  replay: the first (next byte) + 1 bytes of a queue, twice
 *            5  drop the first (next byte) + 1 bytes of a queue
 *            6  inject (next byte & 31) + 1 bytes (the following ones) at
 *               the front of a queue
 *            7  reflect: everything queued one way is moved to the other
 *   op & 8 picks the queue of ops 3..6 (0: toward the listener).
 * Every message the listener takes after its exchange gets a reply (an ACK).
 * Checked: each side takes, after its exchange, exactly a prefix of what
 * the other sent after its own, in order and byte for byte (a tampered,
 * replayed, reordered, reflected or injected frame closes the link before
 * it is taken); if both finish, they hold the same key; and when the
 * script tampered with nothing, delivering everything at the end finishes
 * both exchanges and every message arrives (the honest path works however
 * the bytes were split).
 *
 * With FUZZ_AUTH_TRACE set, each run prints how a script went (replay a
 * corpus file to see what it reaches).
 *
 * Not here: the hello's own checks (member set, R, the address: core/member.c,
 * member_peer_hello), which need a member.
 */
#include <assert.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../net/auth.h"
#include "../../net/frame.h"
#include "../../net/mac.h"

#define CHECK(c)                                                           \
    do {                                                                   \
        if (!(c)) {                                                        \
            fprintf(stderr, "fuzz_auth: check failed: %s (%s:%d)\n", #c, \
                    __FILE__, __LINE__);                                   \
            abort();                                                       \
        }                                                                  \
    } while (0)

#define FA_MSGS 64          /* post-auth messages kept per side */
#define FA_FRAME 512        /* every message here packs into less */
#define FA_QUEUE (1u << 16) /* bytes a queue holds */
#define FA_SLOT 1

static auth_secret fa_key;

/* Packed frames, in order. */
typedef struct fa_log {
    int n;
    size_t len[FA_MSGS];
    uint8_t f[FA_MSGS][FA_FRAME];
} fa_log;

typedef struct fa_side {
    bool listener;
    auth_exchange ax;
    mac_link *mac;
    bool closed, helloed;
    struct evbuffer *in, *out;   /* bytes delivered, not decoded / encoded, not queued */
    fa_log sent, taken;          /* after this side's exchange */
    uint8_t ks[AUTH_KEY_LEN];
    uint64_t next_reqid;
} fa_side;

typedef struct fa_queue {
    uint8_t b[FA_QUEUE];
    size_t n;
} fa_queue;

static uint8_t fa_scratch[SEQD_MAX_FRAME + SEQD_TAG_LEN];
static bool fa_lost;   /* a queue overflowed: the honest-path check is off */
static bool fa_trace;  /* $FUZZ_AUTH_TRACE: one line per input on how it went */

static void fa_log_add(fa_log *l, const seqd_msg *m)
{
    if (l->n == FA_MSGS)
        return;
    uint8_t buf[SEQD_MAX_FRAME];
    size_t n = frame_pack(m, buf);
    CHECK(n > 0 && n <= FA_FRAME);
    memcpy(l->f[l->n], buf, n);
    l->len[l->n++] = n;
}

/* Sends as conn_send does: tagged once this side switched tags on. */
static void fa_send(fa_side *s, const seqd_msg *m)
{
    if (s->closed)
        return;
    int rc = s->mac ? mac_encode(s->mac, s->out, m) : frame_encode(s->out, m);
    CHECK(rc == 0);
    if (auth_done(&s->ax) && s->mac)
        fa_log_add(&s->sent, m);
}

static void fa_close(fa_side *s) { s->closed = true; }

/* The listener's handling of one message: front_bin.c's front_auth and
 * its trust rule, with a reply for what it takes after the exchange. */
static void fa_listener_msg(fa_side *s, const seqd_msg *m)
{
    if (m->type == MSG_AUTH) {
        if (s->ax.state == AUTH_X_IDLE) {
            uint8_t ns[SEQD_NONCE_LEN];
            memset(ns, 0x5a, sizeof ns);
            auth_listener_begin(&s->ax, FA_SLOT, ns);
        }
        seqd_msg r;
        switch (auth_step(&s->ax, &fa_key, m, &r, s->ks)) {
        case AUTH_SEND:
            fa_send(s, &r);
            return;
        case AUTH_DONE:
            fa_send(s, &r);              /* AUTH_OK, untagged */
            s->mac = mac_new(s->ks, AUTH_ROLE_LISTENER);
            CHECK(s->mac);
            return;
        case AUTH_REFUSE:
            fa_close(s);
            return;
        }
    }
    if ((m->type == MSG_HELLO || m->type == MSG_INIT) && !auth_done(&s->ax)) {
        fa_close(s);                     /* "not authenticated" */
        return;
    }
    if (m->type == MSG_HELLO)
        s->helloed = true;
    if (!auth_done(&s->ax))
        return;                          /* a client's message: not ours to check */
    fa_log_add(&s->taken, m);
    seqd_msg ack = {.type = MSG_ACK, .reqid = m->reqid};
    ack.u.ack.new_ = (uint64_t)s->taken.n;
    fa_send(s, &ack);
}

/* peer.c's handling: the exchange (a MSG_AUTH after it refuses), then
 * replies. */
static void fa_connector_msg(fa_side *s, const seqd_msg *m)
{
    if (m->type == MSG_AUTH) {
        seqd_msg r;
        switch (auth_step(&s->ax, &fa_key, m, &r, s->ks)) {
        case AUTH_SEND:
            fa_send(s, &r);
            return;
        case AUTH_DONE:
            s->mac = mac_new(s->ks, AUTH_ROLE_CONNECTOR);
            CHECK(s->mac);
            return;
        case AUTH_REFUSE:
            fa_close(s);
            return;
        }
    }
    if (!auth_done(&s->ax)) {
        fa_close(s);
        return;
    }
    fa_log_add(&s->taken, m);
}

/* conn_read_cb: decode every whole frame, tagged once tags are on. */
static void fa_process(fa_side *s)
{
    while (!s->closed) {
        seqd_msg m;
        int rc = s->mac ? mac_decode(s->mac, s->in, &m, fa_scratch)
                        : frame_decode(s->in, &m, fa_scratch);
        if (rc == FRAME_NEED_MORE)
            return;
        if (rc < 0) {
            fa_close(s);
            return;
        }
        if (s->listener)
            fa_listener_msg(s, &m);
        else
            fa_connector_msg(s, &m);
    }
}

static void fa_side_init(fa_side *s, bool listener)
{
    memset(s, 0, sizeof *s);
    s->listener = listener;
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    CHECK(s->in && s->out);
    s->next_reqid = 1;
}

static void fa_side_free(fa_side *s)
{
    mac_free(s->mac);
    evbuffer_free(s->in);
    evbuffer_free(s->out);
}

/* Moves what a side encoded onto its queue (what does not fit is lost:
 * the check below compares prefixes only). */
static void fa_flush(fa_side *s, fa_queue *q)
{
    size_t n = evbuffer_get_length(s->out);
    size_t room = FA_QUEUE - q->n;
    if (n > room) {
        n = room;
        fa_lost = true;
    }
    evbuffer_remove(s->out, q->b + q->n, n);
    evbuffer_drain(s->out, evbuffer_get_length(s->out));
    q->n += n;
}

static void fa_deliver(fa_queue *q, fa_side *to, size_t n)
{
    if (n > q->n)
        n = q->n;
    if (n == 0 || to->closed)
        return;
    evbuffer_add(to->in, q->b, n);
    memmove(q->b, q->b + n, q->n - n);
    q->n -= n;
    fa_process(to);
}

/* What b took must be a prefix of what a sent, byte for byte. */
static void fa_check_prefix(const fa_log *sent, const fa_log *taken)
{
    CHECK(taken->n <= sent->n);
    for (int i = 0; i < taken->n; i++)
        CHECK(taken->len[i] == sent->len[i] && memcmp(taken->f[i], sent->f[i], sent->len[i]) == 0);
}

/* The connector's next message after its exchange. */
static void fa_connector_send(fa_side *c, uint8_t which)
{
    if (!auth_done(&c->ax) || c->closed)
        return;
    seqd_msg m = {.reqid = c->next_reqid++};
    switch (which % 5) {
    case 0:
        m.type = MSG_HELLO;
        m.u.hello.round_ms = 200;
        m.u.hello.cluster_id = 0x1122334455667788ull;
        m.u.hello.addr = "127.0.0.1:7001";
        m.u.hello.addr_len = 14;
        break;
    case 1:
        m.type = MSG_READ;
        seqd_name_set(&m.u.read.name, "orders", 6);
        break;
    case 2:
        m.type = MSG_ACCEPT;
        m.u.accept.expect = 1 + which;
        m.u.accept.new_ = 100 + which;
        seqd_name_set(&m.u.accept.name, "orders", 6);
        break;
    case 3:
        m.type = MSG_SNAP_REQ;
        m.u.snap_req.start = which;
        break;
    default:
        m.type = MSG_STATUS;
        break;
    }
    fa_send(c, &m);
}

static void fa_stranger(const uint8_t *d, size_t n)
{
    static fa_side l;
    fa_side_init(&l, true);
    size_t chunk = n ? (size_t)(d[0] & 63) + 1 : 1;
    for (size_t off = n ? 1 : 0; off < n && !l.closed; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk;
        evbuffer_add(l.in, d + off, k);
        fa_process(&l);
        CHECK(!auth_done(&l.ax));
        CHECK(!l.helloed);
    }
    fa_side_free(&l);
}

/* Reads the next script byte (0 past the end). */
static uint8_t fa_byte(const uint8_t *d, size_t n, size_t *i)
{
    return *i < n ? d[(*i)++] : 0;
}

static fa_side fa_c, fa_l;
static fa_queue fa_q[2];   /* [0] connector -> listener, [1] back */

/* Runs the script op at d[*i]; returns whether it tampered with a queue. */
static bool fa_op(const uint8_t *d, size_t n, size_t *i)
{
    uint8_t op = d[(*i)++];
    fa_queue *q = &fa_q[(op >> 3) & 1], *other = &fa_q[!((op >> 3) & 1)];
    size_t k;
    switch (op & 7) {
    case 0:
        fa_connector_send(&fa_c, fa_byte(d, n, i));
        return false;
    case 1:
        fa_deliver(&fa_q[0], &fa_l, (size_t)fa_byte(d, n, i) + 1);
        return false;
    case 2:
        fa_deliver(&fa_q[1], &fa_c, (size_t)fa_byte(d, n, i) + 1);
        return false;
    case 3:
        k = (size_t)fa_byte(d, n, i) << 8;
        k |= fa_byte(d, n, i);
        if (!q->n)
            return false;
        k %= 8 * q->n;
        q->b[k / 8] ^= (uint8_t)(1u << (k % 8));
        return true;
    case 4:   /* the first k bytes twice */
        k = (size_t)fa_byte(d, n, i) + 1;
        k = k < q->n ? k : q->n;
        if (!k || q->n + k > FA_QUEUE)
            return false;
        memmove(q->b + k, q->b, q->n);
        q->n += k;
        return true;
    case 5:
        k = (size_t)fa_byte(d, n, i) + 1;
        k = k < q->n ? k : q->n;
        memmove(q->b, q->b + k, q->n - k);
        q->n -= k;
        return k > 0;
    case 6:
        k = (size_t)(fa_byte(d, n, i) & 31) + 1;
        k = k < n - *i ? k : n - *i;
        if (k && q->n + k <= FA_QUEUE) {
            memmove(q->b + k, q->b, q->n);
            memcpy(q->b, d + *i, k);
            q->n += k;
        }
        *i += k;
        return k > 0;
    default:  /* 7: reflect */
        k = q->n <= FA_QUEUE - other->n ? q->n : FA_QUEUE - other->n;
        memcpy(other->b + other->n, q->b, k);
        other->n += k;
        memmove(q->b, q->b + k, q->n - k);
        q->n -= k;
        return k > 0;
    }
}

/* The honest path: with nothing tampered, delivering everything finishes
 * both exchanges and every message arrives. */
static void fa_check_honest(void)
{
    for (int round = 0; round < 16 && (fa_q[0].n || fa_q[1].n); round++) {
        fa_deliver(&fa_q[0], &fa_l, FA_QUEUE);
        fa_flush(&fa_l, &fa_q[1]);
        fa_deliver(&fa_q[1], &fa_c, FA_QUEUE);
        fa_flush(&fa_c, &fa_q[0]);
    }
    CHECK(auth_done(&fa_c.ax) && auth_done(&fa_l.ax) && !fa_c.closed && !fa_l.closed);
    CHECK(fa_l.taken.n == fa_c.sent.n && fa_c.taken.n == fa_l.sent.n);
}

static void fa_mitm(const uint8_t *d, size_t n)
{
    fa_side_init(&fa_c, false);
    fa_side_init(&fa_l, true);
    fa_q[0].n = fa_q[1].n = 0;
    fa_lost = false;
    bool tampered = false;
    uint8_t nc[SEQD_NONCE_LEN];
    memset(nc, 0xc3, sizeof nc);
    seqd_msg hello;
    auth_connector_begin(&fa_c.ax, FA_SLOT, nc, &hello);
    fa_send(&fa_c, &hello);
    fa_flush(&fa_c, &fa_q[0]);
    for (size_t i = 0; i < n;) {
        tampered |= fa_op(d, n, &i);
        fa_flush(&fa_c, &fa_q[0]);
        fa_flush(&fa_l, &fa_q[1]);
        fa_check_prefix(&fa_c.sent, &fa_l.taken);
        fa_check_prefix(&fa_l.sent, &fa_c.taken);
    }
    if (!tampered && !fa_lost)
        fa_check_honest();
    fa_check_prefix(&fa_c.sent, &fa_l.taken);
    fa_check_prefix(&fa_l.sent, &fa_c.taken);
    if (auth_done(&fa_c.ax) && auth_done(&fa_l.ax))
        CHECK(memcmp(fa_c.ks, fa_l.ks, AUTH_KEY_LEN) == 0);
    if (fa_trace)
        fprintf(stderr, "fuzz_auth: mitm tampered=%d lost=%d connector %s%s sent %d took %d; "
                "listener %s%s sent %d took %d\n", tampered, fa_lost,
                auth_done(&fa_c.ax) ? "authenticated" : "not authenticated",
                fa_c.closed ? " closed" : "", fa_c.sent.n, fa_c.taken.n,
                auth_done(&fa_l.ax) ? "authenticated" : "not authenticated",
                fa_l.closed ? " closed" : "", fa_l.sent.n, fa_l.taken.n);
    fa_side_free(&fa_c);
    fa_side_free(&fa_l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        char err[256];
        static const char k[] = "0123456789abcdef0123456789abcdef-fuzz";
        if (auth_set_secret(&fa_key, k, sizeof k - 1, err, sizeof err) < 0) {
            fprintf(stderr, "fuzz_auth: %s\n", err);
            abort();
        }
        ready = true;
        fa_trace = getenv("FUZZ_AUTH_TRACE") != NULL;
    }
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fa_mitm(data + 1, size - 1);
    else
        fa_stranger(data + 1, size - 1);
    return 0;
}
