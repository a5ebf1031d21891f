/* quorum/coord.h — the coordinator of DESIGN.md §2: allocates ranges of a
 * sequence by READ (or the value learned last round: the 1-RTT fast path)
 * then ACCEPT to every member, committing with Q ACKs counted while the
 * round is younger than R by env->now_us. Retries with h = the largest
 * value seen and jittered backoff until the request's deadline.
 *
 * Requests for a sequence that arrive while its round is in flight are
 * coalesced: the next round serves them all (split if the sum passes
 * SEQD_COUNT_MAX) and slices the range in arrival order. Rounds are
 * pipelined: while up to `pipeline` rounds of a sequence are in ACCEPT,
 * the next one starts at once with h = the last one's new, so that the
 * members' group commit covers several rounds with one fsync (the safety
 * argument is at the top of coord.c).
 *
 * State kept: per sequence, while it is in use, its queue, its rounds in
 * flight (each allocated when it starts and freed when it ends) and the
 * value learned by its last round (the fast path's h). A sequence with no
 * round in flight and no queued request for longer than the idle time
 * (default max(5 s, 4R); coord_set_idle) is dropped entirely, by a sweep
 * that evicts a bounded slice per timer firing, so memory follows the
 * sequences in use, not every sequence ever fetched. Dropping is safe
 * because the learned value is only a hint: the next request for that
 * name reads a quorum first, as for a name never seen (any h is safe by
 * DESIGN.md §2: an ACCEPT with expect=h is refused by any member whose
 * cur > h). Replies are matched by reqid only, ids never reused, so a
 * reply to a round that ended or a sequence that was dropped is counted
 * as late and ignored (the argument is at seq_evict in coord.c).
 *
 * Every submitted request ends exactly once through its done callback:
 * err = 0 with [first, first+count), or an enum seqd_err (ERR_TIMEOUT at
 * the deadline, ERR_EXHAUSTED, ERR_SHUTDOWN from coord_fail_all).
 */
#ifndef SEQD_COORD_H
#define SEQD_COORD_H

#include "env.h"

typedef struct coord coord;

typedef void (*coord_done_fn)(void *arg, int err, uint64_t first, uint32_t count);

typedef struct coord_stats {
    uint64_t fetches, ids, rounds, reads, nacks, conflicts, timeouts;
    uint64_t floors;          /* floor requests committed (coord_submit_floor) */
    uint64_t held;            /* sequences with state now (a gauge) */
    uint64_t evictions;       /* idle sequences dropped */
    uint64_t late_replies;    /* replies to no phase in flight (ended, dropped) */
} coord_stats;

coord *coord_new(const q_env *env);
void coord_free(coord *c);   /* fails every pending request with ERR_SHUTDOWN */

/* name must be valid and count in 1..SEQD_COUNT_MAX (the caller checks).
 * deadline_us is in env->now_us time. done is never called from inside
 * coord_submit (the round starts from a 0 timer, which also lets requests
 * submitted in one loop turn share it); done may call coord_submit, but
 * not coord_fail_all or coord_free. */
void coord_submit(coord *c, const struct seqd_name *name, uint32_t count,
                  uint64_t deadline_us, coord_done_fn done, void *arg);

/* A floor (DESIGN.md §5, `seqd advance NAME V`): a round of its own that
 * commits [h, V), or [h, h+1) when h >= V already, so that once done
 * reports success Q members durably hold cur >= V and, by the same
 * intersection as every commit, each round started afterwards has h >= V:
 * no ID below V is handed out by a fetch that starts after it. A value
 * read or learned >= V is not enough: it may come from a round that never
 * reached a quorum, and the members that did not see it could still make
 * one below V. done gets err = 0 with first = the sequence's NEXT after
 * the round (>= V) and count = 0; errors as for fetches. Floor requests
 * queue with fetches in arrival order and never share a round. */
void coord_submit_floor(coord *c, const struct seqd_name *name, uint64_t floor,
                        uint64_t deadline_us, coord_done_fn done, void *arg);

/* The sequence's NEXT as a read quorum sees it (GET /v1/sequences/NAME):
 * a READ phase alone, done with err = 0, first = the largest value of Q
 * members, count = 0. It writes nothing and hands out nothing. */
void coord_submit_read(coord *c, const struct seqd_name *name, uint64_t deadline_us,
                       coord_done_fn done, void *arg);

/* A reply (VALUE, ACK, NACK, REPLY_ERR) from member i to a request this
 * coordinator sent. A reqid of no phase in flight (an ended round, a
 * dropped sequence) is ignored and counted in late_replies. */
void coord_on_reply(coord *c, int member, const seqd_msg *reply);

void coord_fail_all(coord *c, int err);

/* Called once per round that ends by commit or failure (not for rounds
 * dropped by coord_fail_all or found exhausted before sending), with its
 * time from start (READ or ACCEPT sent) to end, in env->now_us time. For
 * the round-latency histogram; it must not call back into the coordinator. */
typedef void (*coord_round_fn)(void *arg, bool committed, uint64_t us);
void coord_set_round_observer(coord *c, coord_round_fn fn, void *arg);
void coord_get_stats(const coord *c, coord_stats *s);

/* Mutation, for the simulator only: a floor request whose h (learned or
 * read) is already >= V ends at once with no round — the rule the comment
 * on coord_submit_floor says is not enough. */
void coord_set_floor_trusts_reads(coord *c, bool on);

/* How long a sequence stays held with nothing to do (see the top), in
 * env->now_us time; UINT64_MAX: never dropped. For tests and the
 * simulator; the default suits the server. */
void coord_set_idle(coord *c, uint64_t idle_us);

/* Disables the fast path (every round reads first); for measurements. */
void coord_set_fast_path(coord *c, bool on);

/* Disables coalescing (one request per round); for measurements. */
void coord_set_coalescing(coord *c, bool on);

/* Rounds in flight per sequence, 1..COORD_PIPELINE_MAX (default 4);
 * 1 = one round at a time. */
#define COORD_PIPELINE_MAX 8
void coord_set_pipeline(coord *c, int depth);

#endif
