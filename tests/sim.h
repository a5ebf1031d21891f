/* tests/sim.h — a deterministic discrete-event simulator of a seqd cluster,
 * FoundationDB style: the quorum code (acceptor, coordinator, recovery) runs
 * unchanged over a simulated q_env / q_store, and one seed decides every
 * delay, loss, reorder, crash, wipe, stall and client request, so a failing
 * schedule replays exactly from its seed.
 *
 * The world: a virtual clock in µs; messages delayed 50-2000 µs (reordering
 * follows), optionally lost between members; a disk per member where a raise
 * is in memory at once and durable after an ordered random fsync delay
 * (50-500 µs), and a crash reverts memory to the disk (non-durable raises
 * lost, their done never called). Members are wired like the server: a
 * member starts recovering in the mode its disk says (initialized(id),
 * prepared(id) or empty: a durable bootstrap state that survives crashes,
 * not wipes), and when recovery is done it records initialized(id) and its
 * acceptor votes. A fresh cluster is founded only by a simulated `seqd
 * init` (DESIGN.md §3: PREPARE to every empty member, COMMIT once all are
 * prepared for one id), retried every R like an operator would. Faults (crash/restart, amnesia of up to N-Q
 * members at once, roll-back of a member's last durable records, a stalled
 * process whose timers run after its queued replies, whole-cluster restart,
 * failed log writes, lost / duplicated / held messages, a targeted
 * amnesia right after an ACK, members restored from backups across
 * restarts or within one incarnation, and the restored-backups
 * attack with a partition) follow the fault model of DESIGN.md §3: at
 * most N-Q members without their data (wiped, rolled back or restored) at
 * once. Members run the incarnation records of quorum/incarnation.h on a
 * simulated meta store that is restored with the rest of their disk.
 *
 * Clients submit fetches (counts from {1, 7, 100, 1000}) with deadlines to
 * random members. At the end the checker verifies: no two committed ranges
 * overlap, each has the count asked, real-time order between completed and
 * later-invoked fetches, every request ended (and by its deadline), every
 * member is ready again after the faults, and a final probe fetch on every
 * member succeeds. At the end of each recovery it checks, at once: a member
 * that lost its data never ends as committed, a committed member was
 * prepared for that id and its table is empty, an initialized member stays
 * in its cluster, and every member is initialized with the one id init
 * committed (a stray id is only ever prepared, never committed). When the
 * run has gone quiet, no coordinator still holds a sequence: each was idle
 * past its idle time and dropped (coord.h).
 */
#ifndef SEQD_TEST_SIM_H
#define SEQD_TEST_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../quorum/acceptor.h"

typedef struct sim_cfg {
    uint64_t seed;
    int n;                   /* members, 1..SEQD_MAX_MEMBERS */
    int clients;             /* concurrent clients */
    int names;               /* distinct sequence names they use */
    uint64_t round_us;       /* R */
    uint64_t duration_us;    /* clients start fetches until then */
    uint64_t deadline_us;    /* of each fetch, from its invocation */
    uint64_t think_us;       /* a client waits up to this between fetches */
    uint32_t loss_ppm;       /* member-to-member message loss, per million */
    uint32_t slow_ppm;       /* ... held R/4 to 5R, per million */
    uint32_t dup_ppm;        /* ... delivered twice, per million */
    int faults;              /* fault events, spread over the first 70% */
    bool fresh_start;        /* empty members starting at random times (0..5R),
                                then `seqd init` founds the cluster (DESIGN.md
                                §3); else all initialized (a restart) */
    uint64_t init_at_us;     /* fresh_start: init first tries then (0 = 6R);
                                it retries every R until every member is up */
    uint64_t late_us;        /* fresh_start: one member starts only then (0 =
                                none); later than init_at_us, it is a member
                                that has not started when init first tries */
    uint32_t init_interrupt_ppm; /* init killed after a random prefix of its
                                COMMITs, per million runs; it runs again */
    bool init_wipe;          /* a member is wiped between its PREPARE and its
                                COMMIT, or right after its COMMIT */
    bool stray_init;         /* a member wiped after the cluster was founded
                                gets PREPARE(stray id) from a stray init */
    bool bringup_attack;     /* the schedule: after init the last N-Q
                                members die at once (each with or without its
                                COMMIT), the others hand out IDs, member 0 is
                                wiped, the rest stalled 5R, and member 0 and
                                the dead ones start again together */
    bool relaxed_bootstrap;  /* mutation: wave 1's self-founding rule on every
                                recovery started after the cluster exists */
    bool no_incarnations;    /* run without incarnation records: the recovery
                                order alone (its mutation test) */
    bool count_unverified;   /* mutation: recoveries count every initialized
                                member, verified or rolled back (quorum/recovery.h) */
    int restores;            /* restored-backup events (see sim.c sim_restore) */
    bool restore_within;     /* ... some of them within the member's latest
                                incarnation (caught only if a member that is up
                                heard from it after the backup point) */
    bool restore_attack;     /* the restored-backups attack (n = 5) */
    bool storage_errors;     /* some log writes fail (ENOSPC) */
    bool probe;              /* end with one fetch per member and name */
    bool wipes_only;         /* faults are quick amnesias only, each right
                                after the member sent an ACK */
    enum acc_rule rule;      /* ACC_RULE_RRSEQ: the mutation check */
    bool fast_path, coalescing;
    int pipeline;            /* rounds in flight per sequence; 0 = default */
    bool one_coordinator;    /* every client asks member 0 (measurements) */
    bool unsafe_recovery;    /* recovery reads before it waits */
    uint64_t start_value;    /* > 1: every name starts there on every disk */
    uint32_t floor_ppm;      /* client ops that are floors (`seqd advance`), per
                                million; checked: every fetch invoked after a
                                floor completed got IDs >= it */
    uint32_t read_ppm;       /* client ops that are reads (GET /v1/sequences/NAME),
                                per million; checked: NEXT read is above every ID
                                of a fetch completed before the read started */
    bool floor_trusts_reads; /* mutation: a floor whose h (learned or read) is
                                already >= V ends at once, with no round
                                (coord_set_floor_trusts_reads) */
    /* ---- replacing a member (DESIGN.md §6, quorum/epoch.h; sim.c "epochs
     * and replacements"). Every process holds a q_set; READ, ACCEPT and
     * SNAP_REQ are stamped with the sender's (epoch, digest), a receiver of
     * another pair answers ERR_EPOCH, and slot s is routed per the SENDER's
     * set. Without `replace` every set is epoch 0 and nothing changes. */
    int replace;             /* 0: none; 1: one switch; 2: two racing switches of one epoch */
    bool replace_same_slot;  /* replace = 2: one slot, two new hosts (else two slots) */
    bool replace_old_alive;  /* OLD keeps running (else it dies for good at the switch) */
    bool replace_old_exits;  /* OLD stops once a member at E+1 refuses it */
    uint64_t replace_at_us;  /* the switch starts then (0: 30% of duration_us) */
    uint32_t replace_cut;    /* 1: OLD cut from a random subset of the others for a while;
                                2: {OLD, a} | {NEW, b} from the switch on (n = 3);
                                3: the same, once NEW is ready */
    bool replace_slow_records; /* recorders answer after random delays (0..10R) */
    bool replace_crash_recorder; /* a recorder crashes around its durable record */
    bool replace_second;     /* after the first switch completed, a second one (E+1 -> E+2) */
    bool early_vote;         /* mutation: NEW votes, empty, once 1 other recorded */
    bool ignore_epoch;       /* mutation: acceptors answer every epoch */
    uint64_t coord_idle_us;  /* coordinators drop a sequence idle this long
                                (coord_set_idle); 0 = their default */
} sim_cfg;

typedef struct sim_result {
    int violations;
    char error[512];         /* the first violation, "" if none */
    /* workload */
    uint64_t ops, submitted, ok, ok_ids, exhausted, max_id, end_us, events;
    /* checker */
    uint64_t overlaps, order_violations, unfinished, late, not_ready, probe_failures;
    /* coordinators, summed over every incarnation */
    uint64_t rounds, reads, conflicts, nacks, timeouts, fetches, ids;
    uint64_t round_msgs;     /* READ/VALUE/ACCEPT/ACK/NACK/error messages */
    /* faults injected */
    uint64_t crashes, wipes, rollbacks, stalls, restarts_all;
    /* bring-up: clusters founded (ids init committed: 1 per fresh start, or
     * more under the mutation, which founds them without init), init runs
     * and refusals, members initialized as committed (by COMMIT or from an
     * initialized peer), stray PREPAREs taken, init-time wipes, attacks */
    uint64_t new_clusters, inits, init_refusals, commits, strays, init_wipes, attacks;
    uint64_t strays_refused;   /* stray PREPAREs a wiped member refused (a cluster exists) */
    uint64_t attack_uncommitted; /* attacked members killed before their COMMIT */
    char overlap[256];       /* the first overlap found, "" if none */
    /* Where the run stopped: the first commit that overlapped one already
     * committed, caught the moment the coordinator handed it out (the run
     * ends there), "" if none. */
    char broken[320];
    uint64_t rollbacks_caught, restores_caught, restores_done;
    uint64_t clean_stops, clean_restarts;   /* SIGTERMs; restarts that took the clean path */
    uint64_t broken_at_us;
    uint64_t floors, floors_ok, floor_violations;
    uint64_t reads_ok, read_violations;   /* floor ops seen ok by clients, by coordinators */
    /* replacements: switches started / completed / lost (dropped, their
     * recorders reverted), records made durable, reverts, members that
     * learned a set from a peer, ERR_EPOCH refusals, OLD hosts that exited,
     * recorder crashes, records lost to a crash */
    uint64_t switches, switches_done, switches_lost, sw_records, sw_reverts, sw_learned;
    uint64_t epoch_refusals, old_exits, sw_crashes, sw_records_lost, early_votes;
    /* coordinators' state: sequences dropped, replies that found no phase
     * in flight, and sequences still held once the run went quiet (every
     * sequence is idle then, and must have been dropped: 0) */
    uint64_t evictions, late_replies, held_end;
} sim_result;

/* Defaults: R = 10 ms, 300 ms of load from 6 clients on 2 names, deadline
 * 200 ms, no faults, no loss, the safe rule, fast path and coalescing on,
 * probe on, fresh start. */
void sim_cfg_default(sim_cfg *cfg, int n, uint64_t seed);

/* Runs one schedule and checks it. Returns res->violations (0 = passed). */
int sim_run(const sim_cfg *cfg, sim_result *res);

#endif
