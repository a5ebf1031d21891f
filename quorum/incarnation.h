/* quorum/incarnation.h — who a member is this run, what it has recorded of
 * the others, and whether its own disk was rolled back (DESIGN.md §3,
 * "Incarnations and positions").
 *
 * Every start of a member appends a new incarnation (a counter above every
 * one it had, and a fresh random nonce) durably, before it sends anything;
 * its *position* is the number of records it has made durable in that
 * incarnation (the store keeps it, compaction included). Peers record, per
 * slot, the highest (counter, nonce, position) they have seen of it:
 *   - durably *before* they answer its recovery reads (SNAP_REQ carries the
 *     reader's incarnation, the chunk says what the sender had recorded for
 *     it before: its latest earlier incarnation);
 *   - in memory from every VALUE, ACK, NACK and chunk, written with the
 *     member's next batch (inc_flush).
 * A member is *rolled back* when what a peer recorded for it is not in its
 * log as it is now: an incarnation it does not hold (a higher counter, or a
 * counter it holds with another nonce), or one it holds at a lower position
 * than recorded. A restored backup, a VM snapshot, a disk that lost synced
 * writes. Then it durably marks itself (inc_mark), takes an incarnation
 * above the recorded one, never counts as "has state" for anyone's
 * recovery, and recovers; only a completed recovery clears the mark.
 *
 * A member's snapshots count in another's recovery only once it is
 * *verified*: N-Q+1 other members of its cluster (or without one) answered
 * its reads and none of their records showed a rollback. Why that is
 * enough (the argument quorum/recovery.c relies on): the member's latest
 * incarnation k before the rollback was recorded durably by the N-Q+1
 * members it read from when k started (set S), and any N-Q+1 of the N-1
 * others (set V) share at least 2(N-Q+1)-(N-1) = 2 members with S for
 * N = 3 and 5. A member of V∩S lacks the true record only if it lost its
 * data or was rolled back itself; with this member rolled back, at most
 * N-Q-1 others are faulty (the fault model: N-Q+1 members without their
 * data at once is beyond any quorum system) — 0 for N = 3, 1 for N = 5 —
 * so at least one member of V∩S holds the record and its answer reveals
 * the rollback before this member's snapshot can count. For N >= 7 the
 * count holds with at most two members faulty at once (README, "Not
 * guaranteed"). Records held by a rolled-back or wiped peer are only older
 * than the truth or absent, never newer, so they can hide a rollback but
 * never invent one.
 *
 * Storage: small "meta" entries of the store (max semantics, durable, kept
 * through compaction), keyed as below; never visible as sequences.
 */
#ifndef SEQD_INCARNATION_H
#define SEQD_INCARNATION_H

#include "env.h"

typedef struct incarn incarn;

/* Reads this member's history and records from the store (after replay).
 * Writes nothing: inc_begin does. */
incarn *inc_new(const q_env *env, const q_store *store);
void inc_free(incarn *c);

/* A new incarnation: counter = max(every one held, above) + 1, a fresh
 * nonce; done(0) once durable. The member says nothing to a peer before. */
int inc_begin(incarn *c, uint64_t above, q_done_fn done, void *arg);

/* This member now (counter, nonce, durable position). */
struct seqd_inc inc_self(const incarn *c);

/* ---- the answering side ---- */

/* Whether `theirs` (a reader in slot `slot`) is an incarnation this member
 * recorded as superseded: a lower counter than recorded, or the recorded
 * counter with another nonce. Fills *recorded with the record. */
bool inc_is_stale(const incarn *c, int slot, const struct seqd_inc *theirs,
                  struct seqd_inc *recorded);

/* What this member had recorded for `slot` before `theirs`: its latest
 * incarnation below theirs.counter (counter 0: none); *stopped if that one
 * ended with a clean stop at ->pos. */
void inc_recorded_before(const incarn *c, int slot, const struct seqd_inc *theirs,
                         struct seqd_inc *out, bool *stopped);

/* Records `theirs` durably if it is a newer incarnation than recorded:
 * returns 1 and calls done once durable, 0 if there was nothing to write
 * (done is not called), -errno if the store cannot queue. */
int inc_record(incarn *c, int slot, const struct seqd_inc *theirs, q_done_fn done, void *arg);

/* A peer's (counter, nonce, position) from any reply: kept in memory, made
 * durable by the next inc_flush. Returns false for a reply from a sender
 * that is behind what was recorded of it — a lower counter, the recorded
 * counter with another nonce, or the recorded incarnation at a lower
 * position (its disk went back while it ran: a VM resumed from a snapshot)
 * — whose vote a coordinator must not count. */
bool inc_observe(incarn *c, int slot, const struct seqd_inc *theirs);

/* Writes what inc_observe learned since the last flush (no-op if nothing). */
void inc_flush(incarn *c);

/* A clean stop of `slot` at theirs.pos, told by that member: recorded. */
void inc_stopped(incarn *c, int slot, const struct seqd_inc *theirs);

/* ---- the reading side ---- */

/* Whether what a peer had recorded for this member shows a rollback (see
 * the top). *why says what, for the log. */
bool inc_shows_rollback(const incarn *c, const struct seqd_inc *recorded, char *why,
                        size_t whylen);

/* Whether the recorded clean stop matches this member's log exactly: the
 * incarnation it held last before this one, at exactly that position. */
bool inc_clean_stop_matches(const incarn *c, const struct seqd_inc *recorded);

/* The durable "rolled back" mark. */
bool inc_marked(const incarn *c);
/* Marks, durably; `named` is the recorded incarnation the verdict named:
 * records up to it are known lost from then on (see rbk in the .c). */
int inc_mark(incarn *c, uint64_t named, q_done_fn done, void *arg);
int inc_clear(incarn *c, q_done_fn done, void *arg);

/* The store key of this member's position in incarnation `counter`; the
 * store keeps it at the durable position (storage: once per batch). */
void inc_position_key(uint64_t counter, char *out, size_t outlen);

#endif
