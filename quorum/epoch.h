/* quorum/epoch.h — the member set as a sequence of epochs, and the one
 * check that keeps a replaced member from being counted (DESIGN.md §6).
 *
 * A set is one address per *slot*. Epoch 0 is the set `seqd init` was
 * given, its slots in sorted order. A *switch* (epoch E, slot, OLD, NEW,
 * OLD's incarnation counter) leads to epoch E+1: the same slots with NEW in
 * OLD's. The digest of an epoch is xxh64(slots comma-joined in slot order,
 * seed E) — for epoch 0 exactly the set digest of wave 2 (sorted order,
 * seed 0), so data directories and hellos of before keep their meaning —
 * and it differs for two different switches of one epoch (their sets
 * differ), which is what lets "at most one of them completes" be decided by
 * each member recording only one.
 *
 * The rules this module states and the member and the simulator both run:
 * - a READ, ACCEPT or SNAP_REQ is answered only when its (epoch, digest) is
 *   the receiver's (epoch_admits); otherwise the reply says "epoch E" and
 *   nothing changes, so no round of one epoch ever counts a vote given
 *   under another;
 * - a member records a switch only while it is at exactly its epoch E and
 *   OLD holds the slot (epoch_apply), and from then on is at E+1: it
 *   refuses E. Why that suffices: once N-Q+1 of the N-1 others recorded,
 *   at most Q-1 members (OLD included) are still at E, so no round of E can
 *   reach a quorum again;
 * - the new member takes part only once N-Q+1 of the N-1 others recorded
 *   (epoch_switch_verdict), then waits 2R and reads N-Q+1 other members
 *   *with state* at E+1 (quorum/recovery.h): a round of E committed before
 *   had Q members, at least Q-1 of them others than OLD, and
 *   (Q-1) + (N-Q+1) = N > N-1, so its read meets one of them;
 * - of two switches of one epoch at most one completes: two sets of N-Q+1
 *   drawn from the N members share one (2(N-Q+1) = N+1 for odd N), and a
 *   member records one switch per epoch;
 * - a switch that cannot complete any more (more than (N-1)-(N-Q+1) of the
 *   others hold another set) is dropped — but only by its new host, which
 *   decides it from one count and then never votes: it asks its holders to
 *   go back to E (epoch_revert) and exits. Members never drop on their own
 *   view: that view goes stale (the holders of the other switch may have
 *   dropped it meanwhile), and tests/model/switch.pml -DDROP=1 finds IDs
 *   handed out twice with §6's rule read that way. Why the host's rule is
 *   safe: every vote ever given at E+1 of a dropped switch came from a
 *   member of both sets (its new host never voted), and any quorum of E
 *   has at least Q-1 such members; Q + (Q-1) = N > N-1 of them, so a round
 *   committed at E+1 and one at E after the drop share a member, whose cur
 *   (one table, whatever the epoch) made the later one start above the
 *   earlier (switch.pml -DDROP=4 holds; its mutation -DGIVEUP_LATE, a host
 *   giving up after it completed, is caught).
 * Pure: no I/O, no clock; the member makes the records durable.
 */
#ifndef SEQD_EPOCH_H
#define SEQD_EPOCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

typedef struct q_set {
    uint64_t epoch, digest;
    int n;
    char addr[SEQD_MAX_MEMBERS][SEQD_ADDR_MAX + 1];   /* by slot */
} q_set;

typedef struct q_switch {
    uint64_t epoch;     /* leads from epoch to epoch + 1 */
    int slot;
    uint64_t old_inc;   /* OLD's incarnation counter it replaces */
    char old_addr[SEQD_ADDR_MAX + 1], new_addr[SEQD_ADDR_MAX + 1];
} q_switch;

/* Epoch 0 of n sorted addresses. -1 if n or an address is out of bounds. */
int epoch_init(q_set *s, char *const *sorted, int n);

/* Recomputes s->digest from s->epoch and the slots. */
uint64_t epoch_digest(const q_set *s);

/* The slots comma-joined in slot order (what IDENTITY records). */
void epoch_join(const q_set *s, char *out, size_t outlen);

/* The slot of addr, or -1. */
int epoch_slot(const q_set *s, const char *addr, size_t len);

/* Whether a peer request of (epoch, digest) may be answered. */
bool epoch_admits(const q_set *s, uint64_t epoch, uint64_t digest);

/* The set after sw, if sw can be recorded at cur: sw->epoch == cur->epoch,
 * the slot exists and holds OLD, NEW is not a member yet. 0 with *next, or
 * -1 with the reason in why. */
int epoch_apply(const q_set *cur, const q_switch *sw, q_set *next, char *why, size_t whylen);

/* The set before sw, for a member at exactly sw->epoch + 1 whose slot holds
 * NEW (dropping an incomplete switch). 0 with *prev, or -1. */
int epoch_revert(const q_set *cur, const q_switch *sw, q_set *prev);

/* What the new member of a switch may do, from what the N-1 others said:
 * `recorded` hold exactly this switch, `other` hold another set of the
 * next epoch or a later one. */
enum epoch_verdict {
    EPOCH_SWITCH_COMPLETE,   /* N-Q+1 recorded: wait 2R, recover, serve */
    EPOCH_SWITCH_WAIT,       /* not yet, but it still can complete */
    EPOCH_SWITCH_LOST        /* too many hold another set: drop it */
};
enum epoch_verdict epoch_switch_verdict(int n, int recorded, int other);

/* Members of the N-1 others that must record a switch: N-Q+1. */
static inline int epoch_recorders_needed(int n) { return n - (n / 2 + 1) + 1; }

#endif
