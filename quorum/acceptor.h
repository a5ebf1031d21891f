/* quorum/acceptor.h — a member's vote (DESIGN.md §2 step 2).
 *
 * Answers READ with the member's cur, ACCEPT(S, expect=h, new=h+n) with ACK
 * iff cur[S] <= h (after raising cur[S] to h+n and only once that is
 * durable), otherwise NACK(cur), and SNAP_REQ with a chunk of the live
 * table. While recovering it answers READ and ACCEPT with ERR_RECOVERING
 * (a normal reply) but still serves snapshots, flagged with whether it has
 * state, for the recovery of others.
 */
#ifndef SEQD_ACCEPTOR_H
#define SEQD_ACCEPTOR_H

#include "env.h"

typedef struct acceptor acceptor;

/* The acceptance rule. ACC_RULE_RRSEQ is rr_seq's (accept iff cur < new, no
 * expect): unsafe, kept only so the simulator can show it catches it. */
enum acc_rule { ACC_RULE_SAFE = 0, ACC_RULE_RRSEQ = 1 };

acceptor *acc_new(const q_store *store);
/* ACCEPTs still waiting for durability are dropped without a reply: close
 * (or flush) the log first, the store must not call back afterwards. */
void acc_free(acceptor *a);

/* Where the incarnation records live (quorum/incarnation.h); NULL keeps
 * snapshots and replies without them (unit tests). */
struct incarn;
void acc_set_incarn(acceptor *a, struct incarn *inc);
void acc_set_ready(acceptor *a, bool ready);       /* starts not ready */
/* has_state: initialized and not rolled back (DESIGN.md §3), what lets
 * this member's snapshots count in another member's recovery. */
void acc_set_has_state(acceptor *a, bool has_state);
/* The cluster id its snapshots carry (none until it has one). */
void acc_set_cid(acceptor *a, const struct seqd_cid *cid);
bool acc_ready(const acceptor *a);
void acc_set_rule(acceptor *a, enum acc_rule rule);

/* Handles MSG_READ, MSG_ACCEPT or MSG_SNAP_REQ from member `from` (-1:
 * unknown); calls reply(cookie, msg) exactly once, now or after the log is
 * durable. The reply's reqid is the request's. */
void acc_handle(acceptor *a, int from, const seqd_msg *req, q_reply_fn reply, void *cookie);

#endif
