/* net/peer.h — this member's outgoing link to one other member.
 *
 * The link connects, authenticates when there is a cluster secret (the
 * other member must prove it holds it too), sends MSG_HELLO (version in
 * the header, R, the member set's digest, our --listen), and is "up" once
 * MSG_HELLO_OK arrives. Requests (READ,
 * ACCEPT, SNAP_REQ) are pipelined on it, many in flight, and their replies
 * are handed to on_reply for matching by reqid. Sending while the link is
 * down drops the message: the quorum code treats silence like a slow
 * member. A lost link reconnects with a capped backoff (25 ms doubling to
 * PEER_BACKOFF_MAX_MS), so a restarted member rejoins within a fraction of
 * a second.
 */
#ifndef SEQD_PEER_H
#define SEQD_PEER_H

#include <stdbool.h>
#include <stdint.h>

#include "../proto.h"

struct event_base;
struct sockaddr_storage;

#define PEER_BACKOFF_MAX_MS 250

typedef struct peer peer;

typedef void (*peer_reply_fn)(peer *p, int member, const seqd_msg *m, void *arg);
/* Link up or down; `why` explains a down (a refused hello says what differs). */
typedef void (*peer_state_fn)(peer *p, int member, bool up, const char *why, void *arg);

struct auth_secret;

typedef struct peer_hello {
    uint32_t round_ms;
    uint64_t cluster_id;      /* the member set's digest */
    const char *self_addr;
    /* With a secret (kept by the caller), the link first runs the
     * challenge-response of net/auth.h and says hello only inside it. */
    const struct auth_secret *secret;
    /* The incarnation the hello carries, asked for at each hello (it
     * changes when the member is told it was rolled back); may be NULL. */
    void (*inc_now)(void *arg, struct seqd_inc *out);
    /* The (epoch, digest) the hello carries, asked for at each hello (it
     * changes when the member records a switch, DESIGN.md §6); NULL: epoch
     * 0 and cluster_id. */
    void (*epoch_now)(void *arg, uint64_t *epoch, uint64_t *digest);
} peer_hello;

/* addr is HOST:PORT. NULL with a message if it cannot be resolved. */
peer *peer_new(struct event_base *base, int member, const char *addr, const peer_hello *hello,
               peer_reply_fn on_reply, peer_state_fn on_state, void *arg, char *err, size_t errlen);
void peer_free(peer *p);

/* Returns 0 if queued on an up link, -1 if dropped. */
int peer_send(peer *p, const seqd_msg *m);
/* Closes an up link (its state callback says why) and says hello again
 * after the usual backoff: e.g. when the peer answered "epoch E", to learn
 * its set from the hello's refusal. */
void peer_reset(peer *p, const char *why);
bool peer_up(const peer *p);
const char *peer_addr(const peer *p);


#endif
