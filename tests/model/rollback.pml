/* rollback.pml: restored backups against recovery with incarnations
 * (shared/DESIGN.md §3, "Incarnations and positions" and "Every start is a
 * recovery"; quorum/incarnation.h's argument for "verified" members;
 * quorum/recovery.c, rec_check_trust).
 *
 * N = 5 members (Q = 3), one sequence, a cluster that already exists: every
 * member starts up and ready in incarnation 1 with cur = 1, and every member
 * has recorded every other's incarnation 1. One process makes one atomic
 * step at a time; any interleaving of these steps is explored:
 *   - round:   ACCEPT(h, h+1), h any value 1..HMAX, accepted by Q ready
 *              members with cur <= h (then cur = h+1): [h, h+1) committed.
 *              Any h covers a read quorum's maximum as well as a stale
 *              learned value. Rounds that do not commit, and acceptors
 *              beyond Q, only raise some cur: every later step is monotone
 *              in cur (acceptance is cur <= h, recovery takes a maximum), so
 *              leaving them out hides no overlap;
 *   - crash:   a member goes down, keeping its disk (bounded: MAXCRASH);
 *   - start:   a down member starts: a new incarnation, durable first, with
 *              a counter one above the highest in its log and a fresh nonce
 *              (here: the member's start number, a ghost no restore rolls
 *              back). Then it recovers;
 *   - read(i, j): recovering member i gets one answer from up member j
 *              (any j != i, recovering or not; i may ask again until j
 *              counted). Before answering, j durably records i's incarnation
 *              if its counter is above the one recorded; the answer carries
 *              what j had recorded of i before. If that is an incarnation
 *              i's log does not hold, with a counter above the highest a
 *              verdict already named (incarnation.c's "rbk"), i is ROLLED
 *              BACK: it marks itself durably, takes a counter above the
 *              recorded one and reads again from scratch. Otherwise j is one
 *              of i's verifiers (any answer counts, see incarnation.h); i is
 *              *verified* once N-Q+1 = 3 verifiers answered in its current
 *              incarnation and it is not marked. j's snapshot COUNTS (has
 *              state) iff j is not marked and is ready or verified; then i
 *              takes max(mx, cur[j]). After 3 counted snapshots i adopts the
 *              maximum (its own value a floor), clears its mark and is ready;
 *   - backup(i): a copy of i's whole durable state (cur, its incarnations,
 *              its records of the others, mark, verdict floor), at any
 *              point, once per member;
 *   - restore(i): i goes down and its disk is replaced by its backup
 *              (MAXRESTORE = 2 = N-Q members: the fault model's limit).
 *              Only a backup from before a *ready* incarnation: i completed
 *              a recovery in an incarnation the backup does not hold
 *              (DESIGN.md §3 promises to catch those; a rollback within one
 *              incarnation needs positions, not modelled).
 * Symmetry: all five members are alike at the start, so any run restoring
 * members {x, y} is a run restoring {1, 3} with the members renamed: only
 * members 1 and 3 (B and D) take backups and are restored. Members 0, 2, 4
 * never lose anything, their logs hold every incarnation they had, and no
 * record of them can ever show a rollback: their incarnations and the
 * records of them are not modelled (only records of 1 and 3 are).
 * Rounds are atomic, so no round from before a restart is in flight at the
 * restart: the 2R wait always holds (shared/model/alloc.pml checks it).
 * Safety: no value is committed twice (rounds are [h, h+1), so this is "no
 * two committed rounds overlap").
 *
 * -DCOUNT_UNVERIFIED: the rule before incarnations (the simulator's
 *   mutation recovery_set_count_unverified): every snapshot counts (every
 *   member is initialized); verdicts still mark, but marks count for
 *   nothing.
 */
#define N 5
#define Q 3
#define NEED 3            /* N-Q+1 */
#define MAXID 10          /* start numbers (nonces) of members 1, 3: 1..MAXID-1 */
#ifndef HMAX
#define HMAX 1
#endif
#ifndef MAXCRASH
#define MAXCRASH 3
#endif
#ifndef MAXRESTORE
#define MAXRESTORE 2
#endif

/* every member */
byte cur[N];              /* durable */
bool up[N], ready[N];
byte ver[N];              /* bit j: j answered this incarnation without a verdict */
byte rd[N];               /* bit j: j's snapshot counted */
byte mx[N];               /* the maximum read (starts at its own cur) */

/* members 1 and 3, x = i/2 (0 for 1, 1 for 3); durable */
short held[2];            /* bit s: the log holds incarnation s (its s-th start) */
byte lastc[2];            /* the highest counter the log holds */
byte lostc[2];            /* "rbk": counters up to it are known lost */
bool marked[2];           /* rolled back, recovery not complete */
byte rec[N*2];            /* rec[j*2+x]: the incarnation of member 2x+1 that j recorded */
/* their backups (the rest of the durable state: cur and j = the other one's record) */
bool hasb[2], bused[2];
byte bcur[2]; short bheld[2]; byte blastc[2], blostc[2], brec[2];
bool bmarked[2];
/* ghosts */
byte nst[2];              /* starts and verdicts so far: the current nonce */
byte bst[2];              /* nst when the backup was taken */
bool bok[2];              /* a recovery completed in a later incarnation */
byte kc[2*MAXID];         /* kc[x*MAXID+s]: the counter of incarnation s */

byte crashes, restores;
byte committed;           /* bit h: [h, h+1) committed */

#define TR(i) ((i) == 1 || (i) == 3)
#define X(i) ((i) / 2)
#define M(x) (2*(x) + 1)              /* the member id of tracked x */
#define KC(x, s) kc[(x)*MAXID + (s)]
#define PC(v) (((v)&1) + (((v)>>1)&1) + (((v)>>2)&1) + (((v)>>3)&1) + (((v)>>4)&1))
#define MARKED(j) (TR(j) && marked[X(j)])
#define VERIFIED(j) (!MARKED(j) && PC(ver[j]) >= NEED)
#ifdef COUNT_UNVERIFIED
#define COUNTS(j) (true)
#else
#define COUNTS(j) (!MARKED(j) && (ready[j] || VERIFIED(j)))
#endif

/* a new incarnation of tracked x with counter c, durable before anything */
inline newinc(x, c) {
  nst[x]++; assert(nst[x] < MAXID);
  KC(x, nst[x]) = c; held[x] = held[x] | (1 << nst[x]); lastc[x] = c
}

inline clearrec(i) { ver[i] = 0; rd[i] = 0; mx[i] = 0 }

inline crash(i) {
  d_step { up[i] && crashes < MAXCRASH -> crashes++; up[i] = 0; ready[i] = 0; clearrec(i) }
}

inline start(i) {
  d_step { !up[i] ->
    up[i] = 1; ready[i] = 0; clearrec(i); mx[i] = cur[i];
    if :: TR(i) -> newinc(X(i), lastc[X(i)] + 1) :: else -> skip fi;
    c = 0 }
}

/* recovering i gets j's answer */
inline rread(i, j) {
  d_step { up[i] && !ready[i] && up[j] && !(rd[i] & (1 << j)) ->
    if
    :: TR(i) ->
       prev = rec[j*2+X(i)];
       if :: KC(X(i), nst[X(i)]) > KC(X(i), prev) -> rec[j*2+X(i)] = nst[X(i)] :: else -> skip fi
    :: else -> prev = 0
    fi;
    if
    :: prev != 0 && !(held[X(i)] & (1 << prev)) && KC(X(i), prev) > lostc[X(i)] ->
       /* rolled back: mark, a counter above the recorded one, read again */
       marked[X(i)] = 1; lostc[X(i)] = KC(X(i), prev);
       if :: lastc[X(i)] > KC(X(i), prev) -> c = lastc[X(i)] :: else -> c = KC(X(i), prev) fi;
       newinc(X(i), c + 1);
       clearrec(i); mx[i] = cur[i]
    :: else ->
       ver[i] = ver[i] | (1 << j);
       if
       :: COUNTS(j) ->
          rd[i] = rd[i] | (1 << j);
          if :: cur[j] > mx[i] -> mx[i] = cur[j] :: else -> skip fi;
          if
          :: PC(rd[i]) >= NEED ->       /* N-Q+1 others with state: done */
             cur[i] = mx[i]; ready[i] = 1; clearrec(i);
             if
             :: TR(i) -> marked[X(i)] = 0;
                if :: hasb[X(i)] && nst[X(i)] > bst[X(i)] -> bok[X(i)] = 1 :: else -> skip fi
             :: else -> skip
             fi
          :: else -> skip
          fi
       :: else -> skip
       fi
    fi;
    prev = 0; c = 0 }
}

inline backup(x) {
  d_step { !hasb[x] && !bused[x] ->
    hasb[x] = 1; bcur[x] = cur[M(x)]; bheld[x] = held[x]; blastc[x] = lastc[x];
    blostc[x] = lostc[x]; bmarked[x] = marked[x]; brec[x] = rec[M(x)*2 + (1-x)];
    bst[x] = nst[x]; bok[x] = 0 }
}

inline restore(x) {
  d_step { hasb[x] && bok[x] && restores < MAXRESTORE ->
    restores++; hasb[x] = 0; bused[x] = 1;
    up[M(x)] = 0; ready[M(x)] = 0; clearrec(M(x));
    cur[M(x)] = bcur[x]; held[x] = bheld[x]; lastc[x] = blastc[x]; lostc[x] = blostc[x];
    marked[x] = bmarked[x]; rec[M(x)*2 + (1-x)] = brec[x];
    bcur[x] = 0; bheld[x] = 0; blastc[x] = 0; blostc[x] = 0; bmarked[x] = 0; brec[x] = 0;
    bst[x] = 0; bok[x] = 0 }
}

/* a round that commits [h, h+1) on ready members a, b, d with cur <= h */
#define ACC(j, h) (ready[j] && cur[j] <= h)
#define RND(h, a, b, d) \
  d_step { ACC(a, h) && ACC(b, h) && ACC(d, h) -> \
    cur[a] = h + 1; cur[b] = h + 1; cur[d] = h + 1; \
    assert(!(committed & (1 << h)));          /* never committed twice */ \
    committed = committed | (1 << h) }
#define ROUNDS(h) \
  :: RND(h, 0, 1, 2) :: RND(h, 0, 1, 3) :: RND(h, 0, 1, 4) :: RND(h, 0, 2, 3) \
  :: RND(h, 0, 2, 4) :: RND(h, 0, 3, 4) :: RND(h, 1, 2, 3) :: RND(h, 1, 2, 4) \
  :: RND(h, 1, 3, 4) :: RND(h, 2, 3, 4)

active proctype world() {
  byte prev, c, t;
  atomic {
    for (t : 0 .. N-1) { cur[t] = 1; up[t] = 1; ready[t] = 1 }
    for (t : 0 .. 1) {
      nst[t] = 1; KC(t, 1) = 1; held[t] = 2; lastc[t] = 1;
      for (c : 0 .. N-1) { if :: c != M(t) -> rec[c*2+t] = 1 :: else -> skip fi }
    }
    t = 0; c = 0
  }
end:
  do
  :: backup(0) :: backup(1)      /* members 1 and 3 only: see the top */
  :: restore(0) :: restore(1)
  :: crash(0) :: crash(1) :: crash(2) :: crash(3) :: crash(4)
  :: start(0) :: start(1) :: start(2) :: start(3) :: start(4)
  :: rread(0, 1) :: rread(0, 2) :: rread(0, 3) :: rread(0, 4)
  :: rread(1, 0) :: rread(1, 2) :: rread(1, 3) :: rread(1, 4)
  :: rread(2, 0) :: rread(2, 1) :: rread(2, 3) :: rread(2, 4)
  :: rread(3, 0) :: rread(3, 1) :: rread(3, 2) :: rread(3, 4)
  :: rread(4, 0) :: rread(4, 1) :: rread(4, 2) :: rread(4, 3)
  ROUNDS(1)
#if HMAX >= 2
  ROUNDS(2)
#endif
#if HMAX >= 3
  ROUNDS(3)
#endif
  od
}
