/* bootstrap.pml: cluster bring-up by `seqd init` plus recovery
 * (shared/DESIGN.md §3, "A new cluster is created only by `seqd init`" and
 * "Every start is a recovery"; quorum/recovery.c's top comment).
 *
 * N = 3 members (Q = 2), one sequence. Every step below is one atomic
 * transition; any interleaving of them is explored:
 *   - start:   a member that is down starts (late, or never until late);
 *              a start is a recovery (ready = 0 until recovery completes);
 *   - crash:   a member goes down, keeping its data (bounded: MAXCRASH);
 *   - wipe:    a member loses its table, prepared record and identity
 *              (bounded: MAXWIPE), only within the fault model (FAULTS_OK);
 *   - init:    up to 2 runs of `seqd init` (ids 1 and 2, fresh per run: the
 *              second run is the retry of an interrupted init and, when it
 *              reaches a wiped member, the stray init). A run PREPAREs empty
 *              up members one by one, may check the answers (all N up and
 *              prepared for / initialized with one id x), then COMMITs x to
 *              prepared-for-x members one by one; it may stop at any point;
 *   - recovery of a member that is up and not ready:
 *       INITIALIZED with c: read each other member (one step each) that is
 *         up and initialized with c (recovering or not); after N-Q+1 = 2
 *         such reads adopt the maximum and become ready;
 *       EMPTY: the same, the id being taken from the first member with
 *         state it reads (members of another id are foreign and ignored);
 *       PREPARED for x: an up peer initialized with x -> initialized at
 *         once with its empty table; an up peer initialized with another id
 *         -> it was reached by a stray init: it becomes EMPTY and recovers;
 *     The 2R wait: rounds are atomic (below), so no round from before a
 *     restart is ever in flight at a restart and the wait is always over.
 *   - round: a coordinator on a ready member of cluster k sends
 *     ACCEPT(h, h+1), h any value in 1..HMAX (covers a read quorum's max as
 *     well as any stale learned value); each ready member of cluster k gets
 *     it or not (lost), and accepts iff cur <= h; Q ACKs commit [h, h+1).
 * Safety: a value is never committed twice (rounds are [h,h+1), so this is
 * "no two committed rounds overlap"), across all clusters that may exist
 * (a second cluster on the same members handing out 1.. again is the bug).
 *
 * -DRELAXED: wave 1's rule: an EMPTY or PREPARED member that sees
 *   max(N-Q,1) = 1 other up member without state founds a cluster by
 *   itself with an empty table (prepared: with its prepared id; empty: with
 *   an id learned from a peer's hello, or a fresh one, 3).
 * -DLATE_PREPARE: drop the assumption that no PREPARE(x) reaches a member
 *   after a COMMIT(x) was sent, or while a member is initialized with x (e.g. a first, hung init run still retrying
 *   its PREPARE while a second run committed the id the members held).
 * -DSTRICT: fault model counts a PREPARED member (missed COMMIT) as
 *   "without its data" too (default: only EMPTY members are without; a
 *   prepared member never voted, so its empty table holds every ACK it
 *   gave).
 */
#define N 3
#define Q 2
#ifndef HMAX
#define HMAX 2
#endif
#ifndef MAXWIPE
#define MAXWIPE 1
#endif
#ifndef MAXCRASH
#define MAXCRASH 1
#endif

#define EMPTY 0
#define PREPARED 1
#define INIT 2

bool up[N];            /* running */
byte mode[N];          /* durable: EMPTY / PREPARED / INIT */
byte cid[N];           /* PREPARED: x; INIT: cluster id; EMPTY: id learned in recovery (0: none) */
byte cur[N] = 1;       /* durable table, one sequence */
bool ready[N];         /* recovery complete: answers READ, votes, coordinates */
byte rd[N];            /* recovery: bit j = member j read with state of cid[i] */
byte mx[N] = 1;        /* recovery: maximum read so far */
byte phase[2];         /* init run r (id r+1): 0 not started, 1 PREPARE, 2 COMMIT, 3 over */
byte cx[2];            /* the id run r commits */
byte wipes, crashes;
byte everinit;         /* some member has been initialized (a cluster exists) */
byte committed;        /* bit h: [h, h+1) committed */
byte cmt;              /* bit x: some init run has begun to COMMIT id x */
bool learned, strayed; /* ghosts for -DPROBE: rprep took each branch */

#ifdef STRICT
#define WITHOUT(j) (mode[j] != INIT)
#define FAULTS_OK(i) (!everinit || !WITHOUT((i+1)%N) && !WITHOUT((i+2)%N))
#else
#define WITHOUT(j) (mode[j] == EMPTY)
#define FAULTS_OK(i) (!WITHOUT((i+1)%N) && !WITHOUT((i+2)%N))
#endif

#define ISEMPTY(i) (mode[i] == EMPTY && cid[i] == 0 && rd[i] == 0)

inline reset_rec(i) { ready[i] = 0; rd[i] = 0; mx[i] = 1 }

inline start(i)  { atomic { !up[i] -> up[i] = 1; reset_rec(i) } }

inline crash(i)  {   /* an EMPTY member records a learned id only when its recovery completes */
  atomic { up[i] && crashes < MAXCRASH -> crashes++; up[i] = 0; reset_rec(i);
           if :: mode[i] == EMPTY -> cid[i] = 0 :: else -> skip fi }
}

inline wipe(i) {
  atomic { wipes < MAXWIPE && FAULTS_OK(i) ->
    wipes++; mode[i] = EMPTY; cid[i] = 0; cur[i] = 1; reset_rec(i) }
}

/* init run r: PREPARE(r+1) reaches member i */
inline prepare(r, i) {
  atomic { phase[r] == 1 && up[i] && ISEMPTY(i) &&
#ifndef LATE_PREPARE
           !(cmt & (1 << (r+1))) &&   /* no PREPARE(x) arrives once COMMIT(x) was sent */
           !(mode[0] == INIT && cid[0] == r+1) && !(mode[1] == INIT && cid[1] == r+1) &&
           !(mode[2] == INIT && cid[2] == r+1) &&   /* (the same, for RELAXED's foundings) */
#endif
           true -> mode[i] = PREPARED; cid[i] = r+1 }
}

/* init run r checks the answers: every member up and prepared for, or
 * initialized with, one id x (a retry commits the id the members hold) */
inline check(r) {
  atomic { phase[r] == 1 && up[0] && up[1] && up[2] &&
           mode[0] != EMPTY && mode[1] != EMPTY && mode[2] != EMPTY &&
           cid[0] == cid[1] && cid[1] == cid[2] ->
    phase[r] = 2; cx[r] = cid[0]; cmt = cmt | (1 << cid[0]) }
}

/* init run r: COMMIT(cx[r]) reaches member i */
inline commit(r, i) {
  atomic { phase[r] == 2 && up[i] && mode[i] == PREPARED && cid[i] == cx[r] ->
    assert(cur[i] == 1);
    mode[i] = INIT; ready[i] = 1; everinit = 1 }
}

/* recovery of i: read j (INIT and EMPTY modes) */
inline rread(i, j) {
  atomic { up[i] && !ready[i] && mode[i] != PREPARED && up[j] && mode[j] == INIT &&
           (cid[i] == 0 || cid[i] == cid[j]) && !(rd[i] & (1 << j)) ->
    assert(mode[i] == EMPTY || cid[i] != 0);
    cid[i] = cid[j]; rd[i] = rd[i] | (1 << j);
    if :: cur[j] > mx[i] -> mx[i] = cur[j] :: else -> skip fi;
    if
    :: rd[i] == (7 & ~(1 << i)) ->      /* N-Q+1 = 2 others with state */
       if :: mx[i] > cur[i] -> cur[i] = mx[i] :: else -> skip fi;
       mode[i] = INIT; ready[i] = 1; everinit = 1
    :: else -> skip
    fi }
}

/* recovery of a prepared i meeting an initialized j */
inline rprep(i, j) {
  atomic { up[i] && !ready[i] && mode[i] == PREPARED && up[j] && mode[j] == INIT ->
    if
    :: cid[j] == cid[i] -> assert(cur[i] == 1); mode[i] = INIT; ready[i] = 1; everinit = 1; learned = 1
    :: else -> mode[i] = EMPTY; cid[i] = 0; reset_rec(i); strayed = 1   /* stray init reached it */
    fi }
}

#ifdef RELAXED
/* wave 1: an empty/prepared i sees max(N-Q,1) = 1 other member without state */
inline relaxed(i, j) {
  atomic { up[i] && !ready[i] && mode[i] != INIT && up[j] && mode[j] != INIT ->
    if
    :: mode[i] == PREPARED -> skip
    :: mode[i] == EMPTY && cid[i] != 0 -> skip
    :: mode[i] == EMPTY && cid[i] == 0 ->
       if
       :: cid[i] = 3
       :: mode[(i+1)%N] == INIT -> cid[i] = cid[(i+1)%N]
       :: mode[(i+2)%N] == INIT -> cid[i] = cid[(i+2)%N]
       fi
    :: else -> assert(0)
    fi;
    cur[i] = 1; mode[i] = INIT; ready[i] = 1; everinit = 1 }
}
#endif

/* a round of cluster k, ACCEPT(h, h+1) */
inline deliver(j) {
  if
  :: ready[j] && cid[j] == k && cur[j] <= h -> cur[j] = h + 1; acks++
  :: true -> skip                               /* lost, or NACK */
  fi
}

inline round() {
  atomic {
    (ready[0] || ready[1] || ready[2]) ->
    if :: ready[0] -> k = cid[0] :: ready[1] -> k = cid[1] :: ready[2] -> k = cid[2] fi;
    h = 1;
    do :: h < HMAX -> h++ :: break od;
    acks = 0;
    deliver(0); deliver(1); deliver(2);
    if
    :: acks >= Q ->
       assert(!(committed & (1 << h)));          /* never committed twice */
       committed = committed | (1 << h)
    :: else -> skip
    fi;
    k = 0; h = 0; acks = 0
  }
}

active proctype world() {
  byte k, h, acks;
end:
  do
  :: start(0) :: start(1) :: start(2)
  :: crash(0) :: crash(1) :: crash(2)
  :: wipe(0)  :: wipe(1)  :: wipe(2)
  :: atomic { phase[0] == 0 -> phase[0] = 1 }
  :: atomic { phase[0] != 0 && phase[1] == 0 -> phase[1] = 1 }
  :: prepare(0, 0) :: prepare(0, 1) :: prepare(0, 2)
  :: prepare(1, 0) :: prepare(1, 1) :: prepare(1, 2)
  :: check(0) :: check(1)
  :: commit(0, 0) :: commit(0, 1) :: commit(0, 2)
  :: commit(1, 0) :: commit(1, 1) :: commit(1, 2)
  :: atomic { phase[0] == 1 || phase[0] == 2 -> phase[0] = 3 }   /* init interrupted / done */
  :: atomic { phase[1] == 1 || phase[1] == 2 -> phase[1] = 3 }
  :: rread(0, 1) :: rread(0, 2) :: rread(1, 0) :: rread(1, 2) :: rread(2, 0) :: rread(2, 1)
  :: rprep(0, 1) :: rprep(0, 2) :: rprep(1, 0) :: rprep(1, 2) :: rprep(2, 0) :: rprep(2, 1)
#ifdef RELAXED
  :: relaxed(0, 1) :: relaxed(0, 2) :: relaxed(1, 0) :: relaxed(1, 2) :: relaxed(2, 0) :: relaxed(2, 1)
#endif
  :: round()
  od
}

#ifdef PROBE
/* Reachability probes: each -DPROBE=n asserts that situation n never
 * happens; pan must find it (so it is reachable). */
#define ALLREADY (ready[0] && ready[1] && ready[2])
active proctype probe() {
#if PROBE == 1   /* a prepared member learned COMMIT from a peer after a commit, then a wipe */
  assert(!(learned && committed != 0 && wipes == 1 && ALLREADY))
#elif PROBE == 2 /* a stray PREPARE(2) reached a wiped member after a commit, it recovered */
  assert(!(strayed && committed != 0 && wipes == 1 && ALLREADY && cid[0] == 1 && cid[1] == 1 && cid[2] == 1))
#elif PROBE == 3 /* the retry run commits the id the first run prepared */
  assert(!(phase[1] == 2 && cx[1] == 1 && committed != 0))
#elif PROBE == 4 /* every value committed, after a wipe and a crash, all ready again */
  assert(!(committed == 6 && wipes == 1 && crashes == 1 && ALLREADY))
#elif PROBE == 5 /* a member wiped after a commit recovered by reading 2 others */
  assert(!(wipes == 1 && committed == 2 && ALLREADY && cur[0] == 2 && cur[1] == 2 && cur[2] == 2 && phase[0] == 3 && phase[1] == 0))
#endif
}
#endif
