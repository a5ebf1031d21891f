/* net/mac.c — per-frame tags of an authenticated link (contract: mac.h,
 * wire format: proto.h).
 *
 * One key (Ks) for both directions, the direction byte first in what is
 * hashed: a frame the listener sent cannot pass as one the connector sent,
 * whatever the sequence numbers. The sequence number is hashed, not sent:
 * both ends count, so the tag is all the overhead (16 bytes a frame).
 * The tag is checked before the frame is parsed, so a forged frame never
 * reaches the codec, and a framing error can only come from the peer that
 * holds the key.
 */
#include "mac.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "frame.h"

struct mac_link {
    auth_hkey *key;
    uint8_t tx_dir, rx_dir;       /* SEQD_DIR_*: ours, the other side's */
    uint64_t tx_seq, rx_seq;      /* the next frame's, each way */
};

mac_link *mac_new(const uint8_t ks[AUTH_KEY_LEN], enum auth_role self)
{
    mac_link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->key = auth_hkey_new(ks, AUTH_KEY_LEN);
    if (!l->key) {
        free(l);
        return NULL;
    }
    bool listener = self == AUTH_ROLE_LISTENER;
    l->tx_dir = listener ? SEQD_DIR_LISTENER : SEQD_DIR_CONNECTOR;
    l->rx_dir = listener ? SEQD_DIR_CONNECTOR : SEQD_DIR_LISTENER;
    return l;
}

void mac_free(mac_link *l)
{
    if (!l)
        return;
    auth_hkey_free(l->key);
    free(l);
}

/* HMAC(Ks, dir | u64 seq | frame), cut to the tag. */
static void mac_tag(mac_link *l, uint8_t dir, uint64_t seq, const uint8_t *frame, size_t len,
                    uint8_t tag[SEQD_TAG_LEN])
{
    uint8_t head[9];
    head[0] = dir;
    for (int i = 0; i < 8; i++)
        head[1 + i] = (uint8_t)(seq >> (56 - 8 * i));
    struct iovec parts[2] = {{head, sizeof head}, {(void *)frame, len}};
    uint8_t full[SEQD_MAC_LEN];
    auth_hkey_mac(l->key, parts, 2, full);
    memcpy(tag, full, SEQD_TAG_LEN);
}

void mac_seal(mac_link *l, const uint8_t *frame, size_t len, uint8_t tag[SEQD_TAG_LEN])
{
    mac_tag(l, l->tx_dir, l->tx_seq++, frame, len, tag);
}

bool mac_open(mac_link *l, const uint8_t *frame, size_t len, const uint8_t tag[SEQD_TAG_LEN])
{
    uint8_t want[SEQD_TAG_LEN];
    mac_tag(l, l->rx_dir, l->rx_seq, frame, len, want);
    uint8_t diff = 0;   /* constant time: how much matched says nothing */
    for (int i = 0; i < SEQD_TAG_LEN; i++)
        diff |= (uint8_t)(want[i] ^ tag[i]);
    if (diff)
        return false;
    l->rx_seq++;
    return true;
}

uint64_t mac_sent(const mac_link *l) { return l->tx_seq; }
uint64_t mac_received(const mac_link *l) { return l->rx_seq; }

/* Measures, packs into exactly that much of the evbuffer's own space (as
 * frame_encode does), tags what was packed, and commits frame and tag
 * together. */
int mac_encode(mac_link *l, struct evbuffer *out, const seqd_msg *m)
{
    size_t n = frame_size(m);
    if (n == 0)
        return -1;
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)(n + SEQD_TAG_LEN), &v, 1) != 1 ||
        v.iov_len < n + SEQD_TAG_LEN)
        return -1;
    if (frame_pack(m, v.iov_base) != n)
        return -1;   /* cannot happen: same message, same size */
    mac_seal(l, v.iov_base, n, (uint8_t *)v.iov_base + n);
    v.iov_len = n + SEQD_TAG_LEN;
    return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

int mac_decode(mac_link *l, struct evbuffer *in, seqd_msg *out, uint8_t *scratch)
{
    size_t flen = 0;
    int rc = frame_take(in, scratch, SEQD_TAG_LEN, &flen);
    if (rc != FRAME_OK)
        return rc;
    if (!mac_open(l, scratch, flen, scratch + flen))
        return MAC_FORGED;
    rc = frame_parse(scratch, flen, out);
    assert(rc != FRAME_NEED_MORE);   /* frame_take gave the whole frame */
    return rc;
}
