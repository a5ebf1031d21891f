/* quorum/recovery.h — what every start of a member does before it serves
 * (DESIGN.md §3), after the local log has been replayed:
 *   1. wait 2R, so that every round that could still count an ACK this
 *      member gave before it stopped has ended;
 *   2. read every sequence's cur, in snapshot chunks, from N-Q+1 *other*
 *      members that have state (initialized with this cluster's id; an
 *      empty or merely prepared member never counts), and raise the local
 *      value of each to the maximum read, durably.
 * A member never founds a cluster on its own: only `seqd init` does, by
 * PREPARE to every member and COMMIT once all are prepared for one id. So
 * a recovery runs in one of three modes, by what the data directory holds:
 *   INITIALIZED  it has a cluster id: steps 1-2, counting only snapshots
 *                that carry that id;
 *   EMPTY        no id, no prepared record, nothing in the table: it lost
 *                its data (or is new and waits for init); steps 1-2, taking
 *                the id from the first member with state, which it then
 *                records;
 *   PREPARED     prepared for X (sticky): it never voted, so its empty
 *                table is true; it waits for COMMIT of X (recovery_commit)
 *                or for a member initialized with X (init committed there)
 *                and is then initialized at once; a member with state of
 *                another id means a stray init reached it after it lost its
 *                data, and it recovers as EMPTY.
 * Members that do not answer are asked again every R until enough did.
 * With N = 1 an INITIALIZED member is done at once; others wait for init.
 * `done` is called once; committed says the member became initialized by
 * COMMIT (its table is empty and stays so), cid is the id to record. done
 * may call recovery_free. It is never called from inside recovery_start or
 * recovery_commit (both finish from a 0 timer). Free only once the store
 * will not call back (the raises' done points at the recovery).
 */
#ifndef SEQD_RECOVERY_H
#define SEQD_RECOVERY_H

#include "env.h"

typedef struct recovery recovery;

enum recovery_mode { RECOVERY_INITIALIZED, RECOVERY_PREPARED, RECOVERY_EMPTY };

typedef void (*recovery_done_fn)(void *arg, int err, bool committed, const struct seqd_cid *cid);

/* What the member hears of its own standing while it recovers (called with
 * the done arg; both may be NULL): trust(counts) when this member's
 * snapshots start or stop counting for others (verified, see
 * quorum/incarnation.h), rolled_back(why) when a peer's records show its
 * log was rolled back (it is then marked, durably, and reads again). */
typedef struct recovery_hooks {
    void (*trust)(void *arg, bool counts);
    void (*rolled_back)(void *arg, const char *why);
} recovery_hooks;

/* cid: the cluster id (INITIALIZED) or the prepared id (PREPARED); ignored
 * for EMPTY. inc: the member's incarnation records (NULL: none; unit tests),
 * begun (inc_begin durable) before this is called. */
struct incarn;
recovery *recovery_start(const q_env *env, const q_store *store, struct incarn *inc,
                         const recovery_hooks *hooks, enum recovery_mode mode,
                         const struct seqd_cid *cid, recovery_done_fn done, void *arg);
void recovery_free(recovery *r);

/* A SNAP_CHUNK or REPLY_ERR from member i (reqid has Q_REQID_RECOVERY). */
void recovery_on_reply(recovery *r, int member, const seqd_msg *reply);

/* For logs: members that have answered with state so far. */
int recovery_members_read(const recovery *r);

enum recovery_mode recovery_mode(const recovery *r);
/* The prepared id (PREPARED) or the id learned so far (EMPTY, maybe none). */
const struct seqd_cid *recovery_cid(const recovery *r);

/* Empty in DESIGN.md §3's sense — mode EMPTY, no id learned, nothing in
 * the table, nothing read — and every other member has answered this
 * member's probes without one of them being initialized: only then may the
 * member accept PREPARE (a member that lost its data must never be
 * prepared while its cluster exists). */
bool recovery_is_empty(const recovery *r);
/* The same, telling "not yet heard from everyone" apart. */
enum recovery_emptiness { RECOVERY_IS_EMPTY, RECOVERY_EMPTY_UNKNOWN, RECOVERY_NOT_EMPTY };
enum recovery_emptiness recovery_emptiness(const recovery *r);

/* The member durably recorded "prepared X" (it was empty): mode PREPARED. */
void recovery_prepared(recovery *r, const struct seqd_cid *x);

/* COMMIT of x from `seqd init`: true if this member is prepared for x, and
 * done(committed = true) follows from a 0 timer; false otherwise. */
bool recovery_commit(recovery *r, const struct seqd_cid *x);

/* Test-only mutation: wave 1's relaxed bootstrap rule, under which a member
 * without state that sees max(N-Q, 1) others without state founds a new
 * cluster by itself. Unsafe (one wiped member plus one that missed init's
 * COMMIT found a second cluster); kept so the simulator shows it is caught. */
void recovery_set_relaxed_bootstrap(recovery *r, bool on);

/* Test-only mutation: count every initialized member's snapshot, verified
 * or not, marked rolled back or not (the rule before incarnations): two
 * members restored from backups then vouch for each other. */
void recovery_set_count_unverified(recovery *r, bool on);

/* Whether N-Q+1 others' records of this member agreed with its log. */
bool recovery_verified(const recovery *r);
/* Whether it finished by a confirmed clean stop (no wait, no read). */
bool recovery_clean(const recovery *r);

/* Test-only: read the others first and wait 2R afterwards, the order that
 * DESIGN.md §3 forbids, so the simulator can show its checker catches it.
 * Call right after recovery_start. */
void recovery_set_unsafe_read_first(recovery *r, bool on);

#endif
