/* quorum/recovery.h — what every start of a member does before it serves
 * (DESIGN.md §3), after the local log has been replayed:
 *   1. wait 2R, so that every round that could still count an ACK this
 *      member gave before it stopped has ended;
 *   2. read every sequence's cur, in snapshot chunks, from N-Q+1 *other*
 *      members that have state (a member without state never counts), and
 *      raise the local value of each to the maximum read, durably;
 *   or initialize a new cluster when this member has no state and at least
 *   max(N-Q, 1) others answered that they have none either (DESIGN.md says
 *   "every other member"; recovery.c argues why N-Q+1 empty members, self
 *   included, suffice, and why the literal rule can deadlock a cluster
 *   whose members start one after another). With N = 1 there is nobody to
 *   ask: done at once.
 * Members that do not answer are asked again every R until enough did.
 * `done` is called once, with new_cluster = true for the initialization
 * case; the caller then records the identity and starts serving. done may
 * call recovery_free. It is never called from inside recovery_start (N = 1
 * finishes from a 0 timer). has_state must mean "initialized" (the identity
 * exists, written only after a completed recovery), not "the log replayed
 * records": a wiped member that crashed halfway through its recovery has
 * records but must still not count for others. Free only once the store
 * will not call back (the raises' done points at the recovery).
 */
#ifndef SEQD_RECOVERY_H
#define SEQD_RECOVERY_H

#include "env.h"

typedef struct recovery recovery;

typedef void (*recovery_done_fn)(void *arg, int err, bool new_cluster);

recovery *recovery_start(const q_env *env, const q_store *store, bool has_state,
                         recovery_done_fn done, void *arg);
void recovery_free(recovery *r);

/* A SNAP_CHUNK or REPLY_ERR from member i (reqid has Q_REQID_RECOVERY). */
void recovery_on_reply(recovery *r, int member, const seqd_msg *reply);

/* For logs: members that have answered with state so far. */
int recovery_members_read(const recovery *r);

/* Test-only: read the others first and wait 2R afterwards, the order that
 * DESIGN.md §3 forbids, so the simulator can show its checker catches it.
 * Call right after recovery_start. */
void recovery_set_unsafe_read_first(recovery *r, bool on);

#endif
