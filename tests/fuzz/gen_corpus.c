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
 * Usage: gen_corpus OUTDIR (OUTDIR/frame and OUTDIR/log must exist).
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
    m[MSG_STATUS_REPLY].u.status = (struct seqd_status){ STATE_READY, 1, 3, 7, 70, 8, 2, 1, 9, 9 };
    m[MSG_HELLO].u.hello.round_ms = 200;
    m[MSG_HELLO].u.hello.cluster_id = 0xfeedull;
    m[MSG_HELLO].u.hello.addr = "127.0.0.1:7001";
    m[MSG_HELLO].u.hello.addr_len = 14;
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

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    frame_corpus();
    log_corpus();
    return 0;
}
