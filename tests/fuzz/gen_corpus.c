/* tests/fuzz/gen_corpus.c — writes the seed corpora of the fuzz targets
 * (`make fuzz-corpus`): tests/fuzz/corpus/frame/ and tests/fuzz/corpus/log/.
 *
 * frame: one real frame of every message type, made with frame_pack, fed
 * whole; a stream of all of them fed byte by byte and in uneven chunks; and
 * a stream that ends in a framing error. Input layout: tests/fuzz/fuzz_frame.c.
 *
 * log: a real segment written by log_open/log_append/log_close (trailing
 * zero fill trimmed), as records after a generated header, split over two
 * segments, with an append, as a raw whole file, and with a torn tail.
 * Input layout: tests/fuzz/fuzz_log.c.
 *
 * auth: a stranger's streams (an AUTH_HELLO and a forged proof, a HELLO
 * without the exchange, client frames) and man-in-the-middle scripts (the
 * honest exchange and messages whole and byte by byte, then each tamper op
 * on a tagged ACCEPT, and one during the exchange). Input layout:
 * tests/fuzz/fuzz_auth.c.
 *
 * Usage: gen_corpus OUTDIR (OUTDIR/frame, OUTDIR/log and OUTDIR/auth must
 * exist).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../net/frame.h"
#include "../../storage/log.h"

static const char *outdir;

static void put(const char *sub, const char *name, const void *a, size_t alen, const void *b,
                size_t blen)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen) ||
        fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static struct seqd_name nm(const char *s)
{
    struct seqd_name n;
    seqd_name_set(&n, s, strlen(s));
    return n;
}

static size_t frames(uint8_t *stream)
{
    static uint8_t ents[64];
    size_t elen = snap_entry_put(ents, "orders", 6, 1001);
    elen += snap_entry_put(ents + elen, "users.eu", 8, 42);
    seqd_msg m[MSG_TYPE_MAX + 1];
    memset(m, 0, sizeof m);
    for (int t = 1; t <= MSG_TYPE_MAX; t++) {
        m[t].type = (uint8_t)t;
        m[t].reqid = 0x0102030405060700ull + (uint64_t)t;
    }
    m[MSG_FETCH].u.fetch.timeout_ms = 5000;
    m[MSG_FETCH].u.fetch.count = 10;
    m[MSG_FETCH].u.fetch.name = nm("orders");
    m[MSG_RANGE].u.range.first = 1001;
    m[MSG_RANGE].u.range.count = 10;
    m[MSG_REPLY_ERR].u.err.code = ERR_BAD_NAME;
    m[MSG_REPLY_ERR].u.err.text = "bad name";
    m[MSG_REPLY_ERR].u.err.len = 8;
    m[MSG_STATUS_REPLY].u.status = (struct seqd_status){ STATE_READY, 1, 3, 7, 70, 8, 2, 1, 9, 9, 1 };
    m[MSG_HELLO].u.hello.round_ms = 200;
    m[MSG_HELLO].u.hello.cluster_id = 0xfeedull;
    m[MSG_HELLO].u.hello.addr = "127.0.0.1:7001";
    m[MSG_HELLO].u.hello.addr_len = 14;
    m[MSG_HELLO].u.hello.epoch = 1;
    m[MSG_READ].u.read.epoch = 1;
    m[MSG_READ].u.read.digest = 0xfeedull;
    m[MSG_READ].u.read.name = nm("orders");
    m[MSG_VALUE].u.value.cur = 1011;
    m[MSG_ACCEPT].u.accept.expect = 1011;
    m[MSG_ACCEPT].u.accept.new_ = 1021;
    m[MSG_ACCEPT].u.accept.name = nm("orders");
    m[MSG_ACK].u.ack.new_ = 1021;
    m[MSG_NACK].u.value.cur = 2000;
    m[MSG_SNAP_REQ].u.snap_req.start = 0;
    m[MSG_SNAP_CHUNK].u.snap.flags = SNAP_HAS_STATE | SNAP_DONE;
    m[MSG_SNAP_CHUNK].u.snap.next = 2;
    m[MSG_SNAP_CHUNK].u.snap.n = 2;
    m[MSG_SNAP_CHUNK].u.snap.entries = ents;
    m[MSG_SNAP_CHUNK].u.snap.entries_len = (uint32_t)elen;
    m[MSG_ERROR].u.err.code = FERR_TYPE;
    m[MSG_ERROR].u.err.text = "unknown message type";
    m[MSG_ERROR].u.err.len = 20;
    m[MSG_ADVANCE].u.advance.timeout_ms = 5000;
    m[MSG_ADVANCE].u.advance.value = 48213378;
    m[MSG_ADVANCE].u.advance.name = nm("orders");
    m[MSG_ADVANCED].u.advanced.next = 48213378;
    m[MSG_TOKEN].u.token.token = "s3cr3t-t0ken-0123456789";
    m[MSG_TOKEN].u.token.len = 23;
    m[MSG_LIST].u.list.prefix = "ord";
    m[MSG_LIST].u.list.prefix_len = 3;
    m[MSG_LIST_CHUNK].u.list_chunk.flags = LIST_DONE;
    m[MSG_LIST_CHUNK].u.list_chunk.next = 2;
    m[MSG_LIST_CHUNK].u.list_chunk.n = 2;
    m[MSG_LIST_CHUNK].u.list_chunk.entries = ents;
    m[MSG_LIST_CHUNK].u.list_chunk.entries_len = (uint32_t)elen;
    m[MSG_SWITCH].u.sw.op = SWITCH_RECORD;
    m[MSG_SWITCH].u.sw.slot = 2;
    m[MSG_SWITCH].u.sw.old_inc = 3;
    m[MSG_SWITCH].u.sw.old_addr = "127.0.0.1:7003";
    m[MSG_SWITCH].u.sw.old_len = 14;
    m[MSG_SWITCH].u.sw.new_addr = "127.0.0.1:7004";
    m[MSG_SWITCH].u.sw.new_len = 14;
    m[MSG_SWITCH_REPLY].u.sw_reply.state = SWITCH_RECORDED;
    m[MSG_SWITCH_REPLY].u.sw_reply.epoch = 1;
    m[MSG_SWITCH_REPLY].u.sw_reply.slot = 2;
    m[MSG_SWITCH_REPLY].u.sw_reply.slots = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7004";
    m[MSG_SWITCH_REPLY].u.sw_reply.slots_len = 44;
    m[MSG_SWITCH_REPLY].u.sw_reply.last_slot = 2;
    m[MSG_SWITCH_REPLY].u.sw_reply.last_old = "127.0.0.1:7003";
    m[MSG_SWITCH_REPLY].u.sw_reply.last_old_len = 14;
    m[MSG_SWITCH_REPLY].u.sw_reply.last_new = "127.0.0.1:7004";
    m[MSG_SWITCH_REPLY].u.sw_reply.last_new_len = 14;

    size_t off = 0;
    uint8_t buf[SEQD_MAX_FRAME];
    for (int t = 1; t <= MSG_TYPE_MAX; t++) {
        size_t n = frame_pack(&m[t], buf);
        if (n == 0) {
            fprintf(stderr, "gen_corpus: cannot pack %s\n", msg_type_str(t));
            exit(1);
        }
        char name[64];
        snprintf(name, sizeof name, "%02d-%s", t, msg_type_str(t));
        static const uint8_t whole[] = { 0 };   /* k = 0: one chunk */
        put("frame", name, whole, sizeof whole, buf, n);
        memcpy(stream + off, buf, n);
        off += n;
    }
    return off;
}

static void frame_corpus(void)
{
    static uint8_t stream[8192];
    size_t n = frames(stream);
    static const uint8_t bytewise[] = { 1, 1 };
    static const uint8_t uneven[] = { 3, 5, 17, 2 };
    put("frame", "all-bytewise", bytewise, sizeof bytewise, stream, n);
    put("frame", "all-uneven", uneven, sizeof uneven, stream, n);
    /* Two good frames, then one with flags set: a framing error mid-stream. */
    size_t two = 0;
    for (int i = 0; i < 2; i++)
        two += 4 + ((size_t)stream[two] << 24 | (size_t)stream[two + 1] << 16 |
                    (size_t)stream[two + 2] << 8 | stream[two + 3]);
    uint8_t bad[1024];
    memcpy(bad, stream, two + 16);
    bad[two + 7] = 1;
    put("frame", "error-flags", uneven, sizeof uneven, bad, two + 16);
}

static void nop_done(void *arg, int err)
{
    (void)arg;
    (void)err;
}

static size_t make_segment(uint8_t *out, size_t cap)
{
    char dir[] = "/tmp/seqd-gen-corpus.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    log_opts o = { .fsync = 0, .segment_bytes = 4096 };
    char err[256];
    table *t = table_new();
    seqlog *l = log_open(dir, &o, t, err, sizeof err);
    if (!l) {
        fprintf(stderr, "gen_corpus: log_open: %s\n", err);
        exit(1);
    }
    static const char *names[] = { "orders", "users.eu", "a", "orders", "x-1_2.y" };
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++)
        log_append(l, names[i], (uint8_t)strlen(names[i]), 100 * (i + 1), nop_done, NULL);
    log_flush(l);
    log_close(l);
    table_free(t);
    char path[256];
    snprintf(path, sizeof path, "%s/log.0000000000000001", dir);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, out, cap) : -1;
    if (n < 32) {
        fprintf(stderr, "gen_corpus: cannot read %s\n", path);
        exit(1);
    }
    close(fd);
    unlink(path);
    rmdir(dir);
    while (n > 32 && out[n - 1] == 0)
        n--;
    return (size_t)n;
}

static void log_corpus(void)
{
    static uint8_t seg[8192];
    size_t n = make_segment(seg, sizeof seg);
    const uint8_t *recs = seg + 32;
    size_t rlen = n - 32;
    size_t half = 0;   /* a record boundary near the middle */
    while (half < rlen / 2) {
        uint32_t len = (uint32_t)recs[half] | (uint32_t)recs[half + 1] << 8 |
                       (uint32_t)recs[half + 2] << 16 | (uint32_t)recs[half + 3] << 24;
        half += 12 + len;
    }
    uint8_t mode[3];
    mode[0] = 0, mode[1] = 0, mode[2] = 0;
    put("log", "records", mode, 3, recs, rlen);
    mode[0] = 4;
    put("log", "records-append", mode, 3, recs, rlen);
    mode[0] = 2, mode[1] = (uint8_t)half, mode[2] = (uint8_t)(half >> 8);
    put("log", "two-segments", mode, 3, recs, rlen);
    mode[0] = 1, mode[1] = 0, mode[2] = 0;
    put("log", "raw-file", mode, 3, seg, n);
    mode[0] = 4;
    put("log", "torn-tail-append", mode, 3, recs, rlen - 5);
}

/* Appends frame_pack(m) to buf at *off. */
static void pack_at(uint8_t *buf, size_t *off, const seqd_msg *m)
{
    size_t n = frame_pack(m, buf + *off);
    if (n == 0) {
        fprintf(stderr, "gen_corpus: a seed frame does not pack\n");
        exit(1);
    }
    *off += n;
}

/* The honest exchange in fuzz_auth's script ops: HELLO to the listener,
 * CHALLENGE back, PROOF, AUTH_OK back. */
static size_t auth_script_exchange(uint8_t *s)
{
    static const uint8_t x[] = { 1, 255, 2, 255, 1, 255, 2, 255 };
    memcpy(s, x, sizeof x);
    return sizeof x;
}

static void auth_corpus(void)
{
    static uint8_t b[4096];
    static const uint8_t mode0[2] = { 0, 63 }, mode0_bytewise[2] = { 0, 0 };
    size_t n = 0;
    seqd_msg m = { .type = MSG_AUTH, .reqid = 1 };
    m.u.auth.step = AUTH_HELLO;
    memset(m.u.auth.nonce, 0x11, SEQD_NONCE_LEN);
    pack_at(b, &n, &m);
    m.u.auth.step = AUTH_PROOF;
    memset(m.u.auth.mac, 0x22, SEQD_MAC_LEN);
    pack_at(b, &n, &m);
    seqd_msg h = { .type = MSG_HELLO, .reqid = 2 };
    h.u.hello.round_ms = 200;
    h.u.hello.addr = "127.0.0.1:7001";
    h.u.hello.addr_len = 14;
    pack_at(b, &n, &h);
    put("auth", "stranger-forged-proof", mode0, 2, b, n);
    put("auth", "stranger-forged-proof-bytewise", mode0_bytewise, 2, b, n);
    n = 0;
    pack_at(b, &n, &h);
    put("auth", "stranger-hello-unauthenticated", mode0, 2, b, n);
    n = 0;
    seqd_msg f = { .type = MSG_FETCH, .reqid = 3 };
    f.u.fetch.count = 1;
    f.u.fetch.name = nm("orders");
    pack_at(b, &n, &f);
    seqd_msg st = { .type = MSG_STATUS, .reqid = 4 };
    pack_at(b, &n, &st);
    m.u.auth.step = AUTH_HELLO;
    pack_at(b, &n, &m);
    put("auth", "stranger-client-then-auth", mode0, 2, b, n);

    /* man in the middle */
    static const uint8_t mode1[1] = { 1 };
    static const uint8_t msgs[] = { 0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 1, 255, 2, 255 };
    n = auth_script_exchange(b);
    memcpy(b + n, msgs, sizeof msgs);
    n += sizeof msgs;
    put("auth", "mitm-honest", mode1, 1, b, n);
    n = 0;
    for (int i = 0; i < 600; i++) {   /* the exchange byte by byte */
        b[n++] = (uint8_t)(i % 2 ? 2 : 1);
        b[n++] = 0;
    }
    memcpy(b + n, msgs, sizeof msgs - 4);
    n += sizeof msgs - 4;
    for (int i = 0; i < 400; i++) {
        b[n++] = (uint8_t)(i % 2 ? 2 : 1);
        b[n++] = 0;
    }
    put("auth", "mitm-honest-bytewise", mode1, 1, b, n);
    /* after the exchange, an ACCEPT and a SNAP_REQ on their way to the
     * listener, then one op on that queue: flip a bit of the ACCEPT's
     * `new`, replay it, drop it, inject before it, reflect both; or flip a
     * bit of the listener's reply; then deliver everything */
    static const uint8_t ops[][4] = {
        { 3, 0x00, 8 * 24 + 1, 0 },  /* flip bit 1 of byte 24 (op + 2 argument bytes) */
        { 4, 54, 0, 0 },             /* replay its 55 bytes (39 + tag) */
        { 5, 54, 0, 0 },             /* drop it: the SNAP_REQ after it must fail */
        { 6, 3, 0, 0 },              /* inject 4 bytes */
        { 7, 0, 0, 0 },              /* reflect toward the connector */
        { 3 | 8, 0x00, 8 * 10 + 1, 0 }, /* flip a bit of the reqid of the listener's first reply */
    };
    static const char *const names[] = { "mitm-flip-accept", "mitm-replay-accept",
                                         "mitm-drop-accept", "mitm-inject-before-accept",
                                         "mitm-reflect-accept", "mitm-flip-reply" };
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        n = auth_script_exchange(b);
        /* HELLO taken; ACCEPT and SNAP_REQ queued */
        static const uint8_t pre[] = { 0, 0, 1, 255, 2, 255, 0, 2, 0, 3 };
        memcpy(b + n, pre, sizeof pre);
        n += sizeof pre;
        if (ops[k][0] & 8) {   /* a reply to tamper with: deliver the ACCEPT first */
            b[n++] = 1;
            b[n++] = 255;
        }
        size_t oplen = ops[k][0] % 8 == 7 ? 1 : ops[k][0] % 8 == 3 ? 3 : 2;
        memcpy(b + n, ops[k], oplen);
        n += oplen;
        if (ops[k][0] == 6) {
            memcpy(b + n, "\0\0\0\x0c", 4);
            n += 4;
        }
        static const uint8_t post[] = { 1, 255, 2, 255, 1, 255, 2, 255 };
        memcpy(b + n, post, sizeof post);
        n += sizeof post;
        put("auth", names[k], mode1, 1, b, n);
    }
    /* a bit flipped in the challenge on its way back */
    static const uint8_t chal[] = { 1, 255, 3 | 8, 0, 200, 2, 255, 1, 255, 2, 255, 0, 0, 1, 255 };
    put("auth", "mitm-flip-challenge", mode1, 1, chal, sizeof chal);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    frame_corpus();
    log_corpus();
    auth_corpus();
    return 0;
}
