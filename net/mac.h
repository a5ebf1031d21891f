/* net/mac.h — the tag on every frame of an authenticated link (DESIGN.md
 * §3: "every later peer frame carries a MAC under [a per-link session key]
 * with a per-direction sequence number, so nobody on the path can inject
 * or replay an ACK or an ACCEPT"). The wire format is proto.h's
 * ("Authenticated links"): frame | tag, tag = HMAC(Ks, dir | u64 seq |
 * frame) cut to SEQD_TAG_LEN bytes, seq counted per direction from 0.
 *
 * A mac_link is one side's view of one link: the key, which direction it
 * sends in, and the next sequence number each way. mac_seal tags the next
 * frame this side sends, mac_open checks the next frame that arrives; both
 * advance their counter, so a frame replayed, dropped from the middle or
 * reordered fails, and so does one reflected back (the other dir) or taken
 * from another link (another Ks). The first wrong tag ends the link (the
 * caller closes it): the receive counter is not meaningful after it.
 *
 * net/conn.c uses mac_encode / mac_decode on its evbuffers; the blocking
 * client (client/client.c) uses mac_seal / mac_open on its buffers; the
 * fuzz target drives both. Only links that authenticated have one, so a
 * `seqd fetch` never reaches libcrypto through here.
 */
#ifndef SEQD_MAC_H
#define SEQD_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"
#include "auth.h"

struct evbuffer;

typedef struct mac_link mac_link;

/* The link's state for this side (`self`: the role it played in the
 * exchange). NULL when out of memory. */
mac_link *mac_new(const uint8_t ks[AUTH_KEY_LEN], enum auth_role self);
void mac_free(mac_link *l);

/* The tag of the next frame this side sends: frame[0..len) is the whole
 * frame, length prefix included. Advances the send sequence. */
void mac_seal(mac_link *l, const uint8_t *frame, size_t len, uint8_t tag[SEQD_TAG_LEN]);
/* Whether tag is right for the next frame from the other side (constant
 * time); advances the receive sequence when it is. */
bool mac_open(mac_link *l, const uint8_t *frame, size_t len, const uint8_t tag[SEQD_TAG_LEN]);

/* Frames sent and received under the link so far. */
uint64_t mac_sent(const mac_link *l);
uint64_t mac_received(const mac_link *l);

/* frame_encode, then the frame's tag. 0, or -1 if m does not fit or on OOM
 * (nothing is added then, and the sequence does not move). */
int mac_encode(mac_link *l, struct evbuffer *out, const seqd_msg *m);

/* A wrong tag (mac_decode's verdict). */
#define MAC_FORGED (-64)

/* frame_decode for a tagged stream: FRAME_OK (the frame and its tag are
 * removed and the message is in *out, pointing into scratch, which holds
 * SEQD_MAX_FRAME + SEQD_TAG_LEN bytes), FRAME_NEED_MORE, MAC_FORGED, or
 * -ferr of a frame whose tag was right but whose header or payload is
 * not (a header error is reported before its tag has arrived). */
int mac_decode(mac_link *l, struct evbuffer *in, seqd_msg *out, uint8_t *scratch);

#endif
