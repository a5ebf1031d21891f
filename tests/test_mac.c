/* tests/test_mac.c — the MAC on every frame of an authenticated link
 * (DESIGN.md §3; wire format: proto.h "Authenticated links"; net/mac.h)
 * and the challenge-response it follows (net/auth.h's auth_step).
 *
 * In-process: the exchange completes only with the same secret and the
 * listener's slot the connector meant; out-of-order and reflected steps
 * are refused; a tag fails for another key, for every flipped bit of frame
 * and tag, for a frame replayed, reordered, reflected back to its sender or
 * taken from another link; a conn with tags on closes, without a reply, on
 * a frame injected into it.
 *
 * Real processes: a three-member cluster with a secret whose peer links
 * run through tests/tools/faultproxy, which alters one ACCEPT (its `new`
 * raised by 2^62), replays another and replays an ACK, each once, after
 * the auth exchange. The receiving members close those links and log it;
 * no ID is handed out twice and none comes near 2^62 (the altered ACCEPT
 * was never applied: with the third member stopped, the two left must
 * agree and still hand out small IDs); the links come back. And `seqd
 * fetch` against that cluster never loads libcrypto. The port slot is one
 * of 15..19, through the faults suite's lock files (as tests/test_stream.c).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "../client/client.h"
#include "../net/auth.h"
#include "../net/conn.h"
#include "../net/frame.h"
#include "../net/mac.h"
#include "nemesis.h"
#include "procs.h"

/* ---- in-process: the exchange ------------------------------------------ */

static auth_secret tm_k1, tm_k2;

static void tm_keys(void)
{
    char err[256];
    cr_assert_eq(auth_set_secret(&tm_k1, "0123456789abcdef0123456789abcdef-one", 36, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(auth_set_secret(&tm_k2, "0123456789abcdef0123456789abcdef-two", 36, err, sizeof err),
                 0, "%s", err);
}

static void tm_nonce(uint8_t n[SEQD_NONCE_LEN], uint8_t v)
{
    for (int i = 0; i < SEQD_NONCE_LEN; i++)
        n[i] = (uint8_t)(v + 7 * i);
}

/* Runs the exchange between a connector (secret kc, meaning slot cslot)
 * and a listener (kl, its slot lslot) to its end; returns the verdict at
 * which it stopped, with the keys each side got. */
static enum auth_verdict tm_exchange(const auth_secret *kc, int cslot, const auth_secret *kl,
                                     int lslot, uint8_t ksc[AUTH_KEY_LEN], uint8_t ksl[AUTH_KEY_LEN])
{
    auth_exchange c, l;
    uint8_t nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
    tm_nonce(nc, 1);
    tm_nonce(ns, 2);
    seqd_msg m1, m2, m3, m4;
    auth_connector_begin(&c, (uint8_t)cslot, nc, &m1);
    cr_assert_eq(m1.u.auth.step, AUTH_HELLO);
    auth_listener_begin(&l, (uint8_t)lslot, ns);
    cr_assert_eq(auth_step(&l, kl, &m1, &m2, ksl), AUTH_SEND);
    cr_assert_eq(m2.u.auth.step, AUTH_CHALLENGE);
    enum auth_verdict v = auth_step(&c, kc, &m2, &m3, ksc);
    if (v != AUTH_SEND)
        return v;
    cr_assert_eq(m3.u.auth.step, AUTH_PROOF);
    v = auth_step(&l, kl, &m3, &m4, ksl);
    if (v != AUTH_DONE)
        return v;
    cr_assert_eq(m4.type, MSG_AUTH);
    cr_assert_eq(m4.u.auth.step, AUTH_OK);
    cr_assert(auth_done(&l));
    return auth_step(&c, kc, &m4, &m1, ksc);
}

Test(mac, exchange_completes_with_one_secret_and_both_sides_share_the_key)
{
    tm_keys();
    uint8_t a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
    cr_assert_eq(tm_exchange(&tm_k1, 2, &tm_k1, 2, a, b), AUTH_DONE);
    cr_assert_eq(memcmp(a, b, AUTH_KEY_LEN), 0, "the two sides derived different keys");
}

Test(mac, exchange_refuses_another_secret)
{
    tm_keys();
    uint8_t a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
    cr_assert_eq(tm_exchange(&tm_k1, 0, &tm_k2, 0, a, b), AUTH_REFUSE,
                 "a connector took the challenge of another secret");
    /* the listener's side: a proof under another secret */
    auth_exchange l;
    uint8_t nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
    tm_nonce(nc, 3);
    tm_nonce(ns, 4);
    auth_listener_begin(&l, 1, ns);
    seqd_msg hello = { .type = MSG_AUTH }, out, proof = { .type = MSG_AUTH };
    hello.u.auth.step = AUTH_HELLO;
    memcpy(hello.u.auth.nonce, nc, SEQD_NONCE_LEN);
    cr_assert_eq(auth_step(&l, &tm_k1, &hello, &out, a), AUTH_SEND);
    proof.u.auth.step = AUTH_PROOF;
    auth_mac(&tm_k2, AUTH_ROLE_CONNECTOR, nc, ns, 1, proof.u.auth.mac);
    cr_assert_eq(auth_step(&l, &tm_k1, &proof, &out, a), AUTH_REFUSE);
    cr_assert(!auth_done(&l));
}

/* A relay that steers a link meant for member 2 to member 1 (both hold the
 * secret) is caught by the connector: counting 1's votes as 2's would make
 * quorums of too few members. */
Test(mac, exchange_is_bound_to_the_listener_slot)
{
    tm_keys();
    uint8_t a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
    cr_assert_eq(tm_exchange(&tm_k1, 2, &tm_k1, 1, a, b), AUTH_REFUSE);
}

Test(mac, exchange_refuses_out_of_order_reflected_and_late_steps)
{
    tm_keys();
    uint8_t ks[AUTH_KEY_LEN], nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
    tm_nonce(nc, 5);
    tm_nonce(ns, 6);
    seqd_msg in = { .type = MSG_AUTH }, out;
    auth_exchange l;
    /* a proof before any hello */
    auth_listener_begin(&l, 0, ns);
    in.u.auth.step = AUTH_PROOF;
    cr_assert_eq(auth_step(&l, &tm_k1, &in, &out, ks), AUTH_REFUSE);
    /* refused is sticky: a good hello after it is refused too */
    in.u.auth.step = AUTH_HELLO;
    memcpy(in.u.auth.nonce, nc, SEQD_NONCE_LEN);
    cr_assert_eq(auth_step(&l, &tm_k1, &in, &out, ks), AUTH_REFUSE);
    /* the listener's own challenge MAC reflected back as the proof */
    auth_listener_begin(&l, 0, ns);
    cr_assert_eq(auth_step(&l, &tm_k1, &in, &out, ks), AUTH_SEND);
    seqd_msg refl = out;
    refl.u.auth.step = AUTH_PROOF;
    cr_assert_eq(auth_step(&l, &tm_k1, &refl, &out, ks), AUTH_REFUSE);
    /* a second hello where a proof is due */
    auth_listener_begin(&l, 0, ns);
    cr_assert_eq(auth_step(&l, &tm_k1, &in, &out, ks), AUTH_SEND);
    cr_assert_eq(auth_step(&l, &tm_k1, &in, &out, ks), AUTH_REFUSE);
    /* a connector told AUTH_OK without a challenge */
    auth_exchange c;
    seqd_msg h;
    auth_connector_begin(&c, 0, nc, &h);
    in.u.auth.step = AUTH_OK;
    cr_assert_eq(auth_step(&c, &tm_k1, &in, &out, ks), AUTH_REFUSE);
    /* anything after the end */
    uint8_t a[AUTH_KEY_LEN], b[AUTH_KEY_LEN];
    auth_exchange x;
    auth_listener_begin(&x, 0, ns);
    in.u.auth.step = AUTH_HELLO;
    cr_assert_eq(auth_step(&x, &tm_k1, &in, &out, a), AUTH_SEND);
    seqd_msg pr = { .type = MSG_AUTH };
    pr.u.auth.step = AUTH_PROOF;
    auth_mac(&tm_k1, AUTH_ROLE_CONNECTOR, nc, ns, 0, pr.u.auth.mac);
    cr_assert_eq(auth_step(&x, &tm_k1, &pr, &out, a), AUTH_DONE);
    cr_assert_eq(auth_step(&x, &tm_k1, &pr, &out, b), AUTH_REFUSE);
    cr_assert(!auth_done(&x));
}

/* ---- in-process: the tags ----------------------------------------------- */

/* A session's two ends: c (the connector's view) and l (the listener's). */
typedef struct tm_link {
    mac_link *c, *l;
} tm_link;

static tm_link tm_link_new(uint8_t seed)
{
    tm_keys();
    uint8_t ks[AUTH_KEY_LEN], nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
    tm_nonce(nc, seed);
    tm_nonce(ns, (uint8_t)(seed + 100));
    auth_session_key(&tm_k1, nc, ns, 1, ks);
    tm_link t = { mac_new(ks, AUTH_ROLE_CONNECTOR), mac_new(ks, AUTH_ROLE_LISTENER) };
    cr_assert(t.c && t.l);
    return t;
}

static void tm_link_free(tm_link *t)
{
    mac_free(t->c);
    mac_free(t->l);
}

/* An ACCEPT frame, packed, with room for its tag after it. */
static size_t tm_accept(uint8_t *buf, uint64_t reqid, uint64_t expect)
{
    seqd_msg m = { .type = MSG_ACCEPT, .reqid = reqid };
    m.u.accept.expect = expect;
    m.u.accept.new_ = expect + 10;
    seqd_name_set(&m.u.accept.name, "orders", 6);
    size_t n = frame_pack(&m, buf);
    cr_assert_gt(n, 0);
    return n;
}

Test(mac, tags_pass_in_order_both_ways)
{
    tm_link t = tm_link_new(1);
    uint8_t f[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    for (uint64_t i = 0; i < 50; i++) {
        size_t n = tm_accept(f, i, 1 + i * 10);
        mac_seal(t.c, f, n, f + n);
        cr_assert(mac_open(t.l, f, n, f + n), "connector frame %llu refused", (unsigned long long)i);
        mac_seal(t.l, f, n, f + n);
        cr_assert(mac_open(t.c, f, n, f + n), "listener frame %llu refused", (unsigned long long)i);
    }
    cr_assert_eq(mac_sent(t.c), 50);
    cr_assert_eq(mac_received(t.l), 50);
    tm_link_free(&t);
}

Test(mac, tag_under_another_key_fails)
{
    tm_link a = tm_link_new(1), b = tm_link_new(2);   /* another session: other nonces */
    uint8_t f[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    size_t n = tm_accept(f, 1, 1);
    mac_seal(a.c, f, n, f + n);
    cr_assert(!mac_open(b.l, f, n, f + n), "a frame of another link passed");
    /* and under another secret, same nonces */
    uint8_t ks[AUTH_KEY_LEN], nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
    tm_nonce(nc, 1);
    tm_nonce(ns, 101);
    auth_session_key(&tm_k2, nc, ns, 1, ks);
    mac_link *other = mac_new(ks, AUTH_ROLE_LISTENER);
    cr_assert(!mac_open(other, f, n, f + n), "a frame under another secret passed");
    cr_assert(mac_open(a.l, f, n, f + n));
    mac_free(other);
    tm_link_free(&a);
    tm_link_free(&b);
}

Test(mac, every_flipped_bit_of_frame_or_tag_fails)
{
    tm_link t = tm_link_new(3);
    uint8_t f[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    size_t n = tm_accept(f, 7, 1000);
    mac_seal(t.c, f, n, f + n);
    for (size_t bit = 0; bit < 8 * (n + SEQD_TAG_LEN); bit++) {
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert(!mac_open(t.l, f, n, f + n), "bit %zu flipped and still passed", bit);
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* a refusal does not move the sequence: the true frame still passes */
    cr_assert(mac_open(t.l, f, n, f + n));
    /* a frame cut short (its tag then read from its last bytes) fails */
    size_t m = tm_accept(f, 8, 2000);
    mac_seal(t.c, f, m, f + m);
    cr_assert(!mac_open(t.l, f, m - 1, f + m - 1));
    tm_link_free(&t);
}

Test(mac, replayed_and_reordered_frames_fail)
{
    tm_link t = tm_link_new(4);
    uint8_t f[3][256];
    size_t n[3];
    for (int i = 0; i < 3; i++) {
        n[i] = tm_accept(f[i], (uint64_t)i, 1 + 10 * (uint64_t)i);
        mac_seal(t.c, f[i], n[i], f[i] + n[i]);
    }
    cr_assert(mac_open(t.l, f[0], n[0], f[0] + n[0]));
    cr_assert(!mac_open(t.l, f[0], n[0], f[0] + n[0]), "a replay passed");
    cr_assert(!mac_open(t.l, f[2], n[2], f[2] + n[2]), "frame 2 passed before frame 1");
    cr_assert(mac_open(t.l, f[1], n[1], f[1] + n[1]));
    cr_assert(mac_open(t.l, f[2], n[2], f[2] + n[2]));
    tm_link_free(&t);
}

/* A frame sent back to its sender (say an ACK the listener sent, bounced
 * to it as if the connector had sent it) fails: the direction is hashed. */
Test(mac, reflected_frames_fail)
{
    tm_link t = tm_link_new(5);
    uint8_t f[256];
    size_t n = tm_accept(f, 1, 1);
    mac_seal(t.l, f, n, f + n);
    cr_assert(!mac_open(t.l, f, n, f + n), "the listener took its own frame back");
    mac_seal(t.c, f, n, f + n);
    cr_assert(!mac_open(t.c, f, n, f + n), "the connector took its own frame back");
    tm_link_free(&t);
}

/* mac_encode / mac_decode over evbuffers: what conn.c runs. */
Test(mac, evbuffer_codec_decodes_tagged_frames_and_refuses_untagged_ones)
{
    tm_link t = tm_link_new(6);
    struct evbuffer *b = evbuffer_new();
    static uint8_t scratch[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    seqd_msg m = { .type = MSG_ACK, .reqid = 42 }, out;
    m.u.ack.new_ = 99;
    cr_assert_eq(mac_encode(t.l, b, &m), 0);
    cr_assert_eq(evbuffer_get_length(b), frame_size(&m) + SEQD_TAG_LEN);
    /* byte by byte: nothing until the tag is whole */
    struct evbuffer *in = evbuffer_new();
    size_t total = evbuffer_get_length(b);
    for (size_t i = 0; i + 1 < total; i++) {
        evbuffer_remove_buffer(b, in, 1);
        cr_assert_eq(mac_decode(t.c, in, &out, scratch), FRAME_NEED_MORE);
    }
    evbuffer_remove_buffer(b, in, 1);
    cr_assert_eq(mac_decode(t.c, in, &out, scratch), FRAME_OK);
    cr_assert(out.type == MSG_ACK && out.reqid == 42 && out.u.ack.new_ == 99);
    cr_assert_eq(evbuffer_get_length(in), 0);
    /* an untagged frame injected: its first 16 bytes after it are taken as
     * the tag (here: the next frame's) and fail */
    frame_encode(in, &m);
    frame_encode(in, &m);
    cr_assert_eq(mac_decode(t.c, in, &out, scratch), MAC_FORGED);
    evbuffer_drain(in, evbuffer_get_length(in));
    /* a header error is a framing error, before any tag */
    uint8_t bad[8] = { 0, 0, 0, 12, 9, MSG_ACK, 0, 0 };
    evbuffer_add(in, bad, sizeof bad);
    cr_assert_eq(mac_decode(t.c, in, &out, scratch), -FERR_VERSION);
    evbuffer_free(in);
    evbuffer_free(b);
    tm_link_free(&t);
}

/* ---- a conn with tags on, its far end driven by hand ---------------------- */

typedef struct tm_conn_state {
    int msgs, ends;
    char why[200];
} tm_conn_state;

static void tm_on_msg(conn *c, const seqd_msg *m, void *arg)
{
    (void)c;
    (void)m;
    ((tm_conn_state *)arg)->msgs++;
}

static void tm_on_end(conn *c, void *arg, const char *why)
{
    tm_conn_state *st = arg;
    (void)c;
    st->ends++;
    snprintf(st->why, sizeof st->why, "%s", why);
}

static void tm_pair(int *ours, int *far)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    *far = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(*far, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    *ours = accept(l, NULL, NULL);
    cr_assert_geq(*ours, 0);
    close(l);
}

static void tm_spin(struct event_base *base, const tm_conn_state *st, int msgs)
{
    for (int i = 0; i < 200 && st->ends == 0 && st->msgs < msgs; i++) {
        struct timeval tv = { 0, 5000 };
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void tm_write_tagged(int fd, mac_link *l, const seqd_msg *m)
{
    uint8_t f[SEQD_MAX_FRAME + SEQD_TAG_LEN];
    size_t n = frame_pack(m, f);
    mac_seal(l, f, n, f + n);
    cr_assert_eq(write(fd, f, n + SEQD_TAG_LEN), (ssize_t)(n + SEQD_TAG_LEN));
}

/* The listener's conn takes the connector's tagged frames, tags what it
 * sends, and closes at once, without a reply, when a frame is replayed or
 * an untagged one is injected. */
Test(mac, conn_closes_on_an_injected_or_replayed_frame, .timeout = 10)
{
    for (int mode = 0; mode < 2; mode++) {
        tm_link t = tm_link_new((uint8_t)(7 + mode));
        uint8_t ks[AUTH_KEY_LEN], nc[SEQD_NONCE_LEN], ns[SEQD_NONCE_LEN];
        tm_nonce(nc, (uint8_t)(7 + mode));
        tm_nonce(ns, (uint8_t)(107 + mode));
        auth_session_key(&tm_k1, nc, ns, 1, ks);
        struct event_base *base = event_base_new();
        int ours, far;
        tm_pair(&ours, &far);
        tm_conn_state st = { 0 };
        conn *c = conn_accept(base, ours, tm_on_msg, tm_on_end, &st);
        cr_assert_not_null(c);
        conn_ref(c);
        cr_assert_eq(conn_set_mac(c, ks, AUTH_ROLE_LISTENER), 0);
        cr_assert(conn_has_mac(c));
        seqd_msg acc = { .type = MSG_ACCEPT, .reqid = 1 };
        acc.u.accept.expect = 1;
        acc.u.accept.new_ = 11;
        seqd_name_set(&acc.u.accept.name, "x", 1);
        tm_write_tagged(far, t.c, &acc);
        tm_spin(base, &st, 1);
        cr_assert_eq(st.msgs, 1, "a tagged frame was not taken (%s)", st.why);
        /* the conn's reply carries a tag the connector accepts */
        seqd_msg ack = { .type = MSG_ACK, .reqid = 1 };
        ack.u.ack.new_ = 11;
        cr_assert_eq(conn_send(c, &ack), 0);
        event_base_loop(base, EVLOOP_NONBLOCK);
        uint8_t r[256];
        ssize_t got = 0;
        for (int i = 0; i < 100 && got < (ssize_t)(frame_size(&ack) + SEQD_TAG_LEN); i++) {
            ssize_t k = recv(far, r + got, sizeof r - (size_t)got, MSG_DONTWAIT);
            if (k > 0)
                got += k;
            else
                usleep(1000);
        }
        size_t an = frame_size(&ack);
        cr_assert_eq(got, (ssize_t)(an + SEQD_TAG_LEN));
        cr_assert(mac_open(t.c, r, an, r + an), "the conn's reply has a wrong tag");
        if (mode == 0) {
            uint8_t f[256];
            size_t n = frame_pack(&acc, f);   /* injected: no tag */
            cr_assert_eq(write(far, f, n), (ssize_t)n);
            cr_assert_eq(write(far, f, SEQD_TAG_LEN), SEQD_TAG_LEN);   /* bytes where a tag goes */
        } else {
            uint8_t f[256];
            size_t n = frame_pack(&acc, f);   /* the first frame again, with its tag */
            mac_link *again = mac_new(ks, AUTH_ROLE_CONNECTOR);
            mac_seal(again, f, n, f + n);
            mac_free(again);
            cr_assert_eq(write(far, f, n + SEQD_TAG_LEN), (ssize_t)(n + SEQD_TAG_LEN));
        }
        tm_spin(base, &st, 2);
        cr_assert_eq(st.msgs, 1, "mode %d: the forged frame reached the handler", mode);
        cr_assert_eq(st.ends, 1, "mode %d: the conn did not close", mode);
        cr_assert(strstr(st.why, "wrong MAC"), "why: %s", st.why);
        cr_assert(conn_mac_failed(c));
        /* closed without a reply: EOF with nothing before it */
        uint8_t b[64];
        ssize_t k = -1;
        for (int i = 0; i < 100 && (k = recv(far, b, sizeof b, MSG_DONTWAIT)) < 0 && errno == EAGAIN; i++)
            usleep(1000);
        cr_assert_eq(k, 0, "the conn answered a forged frame (%zd bytes)", k);
        close(far);
        conn_unref(c);
        event_base_free(base);
        tm_link_free(&t);
    }
}

/* ---- real processes: a man in the middle on the peer links ------------- */

#define TM_R 200u
#define TM_SEQS 8

static procs_cluster *tm_pc;
static nem_net *tm_net;
static history *tm_h;
static nem_load *tm_load;
static char tm_secret[PROCS_PATH];

static void tm_fini(void)
{
    nem_load_stop(tm_load);
    tm_load = NULL;
    procs_cluster_free(tm_pc);
    tm_pc = NULL;
    nem_net_free(tm_net);
    tm_net = NULL;
    history_free(tm_h);
    tm_h = NULL;
    unlink(tm_secret);
}

/* The first free slot of 15..19, held by an flock until this process ends. */
static int tm_slot(void)
{
    return procs_shared_slot(60000);
}

/* How many "tampered route" lines the proxy logged. */
static int tm_tampered(void)
{
    char path[PROCS_PATH + 16], line[512];
    snprintf(path, sizeof path, "%s/proxy.log", tm_pc->root);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, "tampered route") != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Fetches every test sequence through member i alone; returns the highest
 * first ID seen, 0 if a fetch failed (err says why). */
static uint64_t tm_fetch_through(int i, char *err, size_t errlen)
{
    client *c = client_new(tm_pc->m[i].addr, err, errlen);
    cr_assert_not_null(c, "%s", err);
    uint64_t top = 0;
    for (int s = 0; s < TM_SEQS; s++) {
        char name[16];
        snprintf(name, sizeof name, "mac%d", s);
        for (int k = 0; k < 3; k++) {   /* more than one round: the fast path reads again after a NACK */
            uint64_t first;
            if (procs_fetch(tm_h, c, 100 + (uint32_t)i, name, 10, 5000, &first, err, errlen) !=
                CLIENT_OK) {
                client_free(c);
                return 0;
            }
            top = first > top ? first : top;
        }
    }
    client_free(c);
    return top;
}

Test(mac, man_in_the_middle_cannot_alter_or_replay_peer_frames, .timeout = 150, .fini = tm_fini)
{
    snprintf(tm_secret, sizeof tm_secret, "/tmp/seqd-test-secret-mac-%d", (int)getpid());
    FILE *sf = fopen(tm_secret, "w");
    cr_assert_not_null(sf);
    fputs("0123456789abcdef0123456789abcdef-mac-secret\n", sf);
    fclose(sf);
    chmod(tm_secret, 0600);
    static const char *extra[3];
    extra[0] = "--secret-file";
    extra[1] = tm_secret;
    extra[2] = NULL;
    int slot = tm_slot();
    cr_assert_geq(slot, 0, "no free port slot in 60 s");
    static char why[16384];
    tm_pc = procs_cluster_new(3, slot, TM_R, extra, why, sizeof why);
    cr_assert_not_null(tm_pc, "%s", why);
    tm_pc->secret_file = tm_secret;
    tm_net = nem_net_new(tm_pc, NEM_NET_PROXY, slot, 1, why, sizeof why);
    cr_assert_not_null(tm_net, "%s", why);
    cr_assert_eq(nem_net_start_all(tm_net), 0);
    cr_assert(procs_wait_ready(tm_pc, 30000, why, sizeof why), "%s", why);
    tm_h = history_new();
    cr_assert_not_null(tm_h);
    nem_load_opts o = { .clients = 6, .call_ms = 1000, .think_ms = 2, .nseqs = TM_SEQS,
                        .prefix = "mac", .seed = 7 };
    tm_load = nem_load_start(tm_pc, tm_h, &o, why, sizeof why);
    cr_assert_not_null(tm_load, "%s", why);
    procs_sleep_ms(500);

    /* member 0 -> 1: an ACCEPT whose `new` gains 2^62 (byte 24 is its top
     * byte); 1 -> 2: an ACCEPT replayed; 0 answering 2: an ACK replayed. */
    cr_assert_eq(nem_net_tamper(tm_net, 0, 1, "up flip 10 24", why, sizeof why), 0, "%s", why);
    cr_assert_eq(nem_net_tamper(tm_net, 1, 2, "up dup 10", why, sizeof why), 0, "%s", why);
    cr_assert_eq(nem_net_tamper(tm_net, 2, 0, "down dup 11", why, sizeof why), 0, "%s", why);
    int64_t until = procs_now_ms() + 15000;
    while (tm_tampered() < 3 && procs_now_ms() < until)
        procs_sleep_ms(50);
    cr_assert_eq(tm_tampered(), 3, "the proxy tampered %d of 3 frames", tm_tampered());
    procs_sleep_ms(1000);   /* the links come back meanwhile */
    nem_load_stop(tm_load);
    tm_load = NULL;

    /* the receiving ends closed those links and said why */
    cr_assert(procs_log_has(tm_pc, 1, "wrong MAC"), "member 1 (altered ACCEPT) did not log it");
    cr_assert(procs_log_has(tm_pc, 2, "wrong MAC"), "member 2 (replays) did not log it");
    char line[160];
    snprintf(line, sizeof line, "peer link from %s closed: wrong MAC", tm_pc->m[0].addr);
    cr_assert(procs_log_has(tm_pc, 1, line), "member 1 did not name the link: want '%s'", line);
    snprintf(line, sizeof line, "peer %s down: wrong MAC", tm_pc->m[0].addr);
    cr_assert(procs_log_has(tm_pc, 2, line), "member 2 did not name its link to member 0");

    /* every ID once, none near 2^62; then the altered ACCEPT's target must
     * agree with member 0 alone (member 2 stopped): had member 1 applied
     * it, its cur would be above 2^62 and every round would be told so */
    char err[512];
    for (int i = 0; i < 3; i++)
        cr_assert_neq(tm_fetch_through(i, err, sizeof err), 0, "member %d: %s", i, err);
    cr_assert_eq(procs_stop(tm_pc, 2, 10000), 0);
    for (int i = 0; i < 2; i++) {
        uint64_t top = tm_fetch_through(i, err, sizeof err);
        cr_assert(top > 0 && top < (1ull << 32), "through member %d: top %llu (%s)", i,
                  (unsigned long long)top, err);
    }
    for (int s = 0; s < TM_SEQS; s++) {
        char name[16];
        snprintf(name, sizeof name, "mac%d", s);
        cr_assert_lt(procs_history_max(tm_h, name), 1ull << 32, "%s reached %llu", name,
                     (unsigned long long)procs_history_max(tm_h, name));
    }
    cr_assert(procs_history_check(tm_h, NULL, why, sizeof why), "%s", why);

    /* a client fetch never loads libcrypto, even from a cluster with a secret */
    char dbg[PROCS_PATH + 32], env1[PROCS_PATH + 48];
    snprintf(dbg, sizeof dbg, "%s/ld-debug", tm_pc->root);
    snprintf(env1, sizeof env1, "LD_DEBUG_OUTPUT=%s", dbg);
    const char *env[] = { "LD_DEBUG=files", env1, NULL };
    procs_result r;
    procs_run(&r, 10000, env, "fetch", "--servers", tm_pc->m[0].addr, "mac0", (char *)NULL);
    cr_assert_eq(r.status, 0, "fetch: %s", r.err);
    char cmd[PROCS_PATH * 3];
    snprintf(cmd, sizeof cmd, "cat %s.* | grep -c 'file=' >/dev/null && ! grep -q libcrypto %s.*",
             dbg, dbg);
    cr_assert_eq(system(cmd), 0, "seqd fetch loaded libcrypto (see %s.*)", dbg);
}
