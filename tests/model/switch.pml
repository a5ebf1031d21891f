/* switch.pml: member replacement (shared/DESIGN.md §6) with two switches
 * racing from the same epoch, members losing power halfway, and wipes.
 *
 * Written for issue 14 (item 4) beside replace.pml and replace5.pml (copied
 * here from shared/model/, see their heads). Those two model messages and
 * coordinators; this one is in the style of rollback.pml: one process, one
 * atomic step (d_step) at a time, rounds atomic, so that the races between
 * switches, crashes and recoveries can be searched exhaustively.
 *
 * N = 3 (Q = 2) or N = 5 (Q = 3): -DN=5. Hosts 0..N-1 are the members of
 * epoch E (epoch identity 0). Switch A (identity 1) replaces slot SA = N-1
 * by the new host NA = N; switch B (identity 2) is a second switch from the
 * same epoch E (-DRACE):
 *   RACE=0  no switch B (one switch, as in replace.pml);
 *   RACE=1  B replaces the same slot SB = N-1 by another new host NB = N+1
 *           (one slot twice, two different new hosts);
 *   RACE=2  B replaces another slot SB = N-2 by NB = N+1 (two slots at once).
 * The set of A is E's set with SA's host replaced by NA; B's likewise.
 * The old hosts stay alive and keep coordinating in their epoch (worst case;
 * they never learn anything), unless -DOLD_DIES (they may die for good).
 *
 * Steps, any interleaving:
 *   - round(e, h, quorum): ACCEPT(h, h+1) in epoch e, h in 1..HMAX, accepted
 *     by Q members of e's set that are up, ready, hold epoch e and have
 *     cur <= h (then cur = h+1): [h, h+1) committed. As in rollback.pml,
 *     rounds that do not commit are left out (they only raise some cur and
 *     every step is monotone in cur). Atomic rounds: no round is in flight
 *     at a switch or a restart, so the 2R waits always hold (replace.pml and
 *     alloc.pml check those waits with messages in flight);
 *   - record(s, i): member i of E other than s's slot, up and at exactly
 *     epoch E, durably records switch s (and from then on refuses E);
 *   - answer(s, i): i, holding s, tells s's new host so (a crash between
 *     record and answer is "after durable, before answering");
 *   - complete(s): s's new host has N-Q+1 answers: the switch completes.
 *     Asserted: the other switch never completed;
 *   - rread(i, j): a recovering i (a restarted or wiped member, or a new host
 *     whose switch completed) reads j, a member of i's epoch's set, up, with
 *     state (not empty; counts even while recovering). After N-Q+1 reads it
 *     adopts the maximum (its own value a floor) and is ready;
 *   - crash(i) (MAXCRASH in all): i loses power: down, not ready, and loses
 *     what was not durable (only under -DUNSYNCED is anything not durable);
 *     start(i): it comes back and recovers (§3: wait, then read N-Q+1);
 *   - learn(i, j): i, at epoch E and up, adopts the epoch E+1 of a peer j
 *     (an old member, or a ready new host) whose set holds i. This is how
 *     members that did not take part, and one that lost power halfway,
 *     learn the new set (§6);
 *   - wipe(i) (MAXWIPE, N=5 only by default 0): a member of E loses its disk
 *     after a first commit (cur = 1, empty until it recovered), keeping the
 *     epoch it learns again from its peers;
 *   - -DDROP=1 / 2: §6's drop rule. A member holding switch s that sees more
 *     than Q-2 of s's others hold a different switch drops s and returns to
 *     E; s's new host may then exit. DROP=1: what it saw is accumulated, one
 *     peer per step (a view that may be stale); DROP=2: the current state,
 *     atomically.
 *   - -DDROP=4: seqd's rule (client/replace.c, quorum/epoch.h): only a
 *     switch's new host drops it, and only after it gave up without having
 *     completed, so it never votes: giveup(s) may happen at any moment
 *     before s completes (an over-approximation of "the count says it can
 *     no longer complete"), and from then on any holder of s may drop it.
 *     Its mutation -DGIVEUP_LATE lets a host give up after s completed.
 * Safety: no value committed twice (assert at every commit), and at most
 * one of two switches from the same epoch completes.
 *
 * Mutations (each must be caught):
 *   -DEARLY_VOTE     a new host reads and votes once ONE member answered,
 *                    before N-Q+1 recorded the switch;
 *   -DANY_EPOCH      members accept rounds of any epoch;
 *   -DONE_SWITCH     a switch completes with one recorder, and its new host
 *                    reads one member;
 *   -DNO_ONE         a member records a switch while it holds another one of
 *                    the same epoch (records both, in turn);
 *   -DREAD_RECORDERS the new host reads the members that answered, empty or
 *                    not (§6 "as first written");
 *   -DUNSYNCED       a recorder answers before the record is durable; a
 *                    crash loses it (sync(i) makes it durable later).
 */
#ifndef N
#define N 3
#endif
#if N == 3
#define Q 2
#else
#define Q 3
#endif
#define NEED (N-Q+1)
#define H (N+2)
#ifndef RACE
#define RACE 1
#endif
#define SA (N-1)
#if RACE == 2
#define SB (N-2)
#else
#define SB (N-1)
#endif
#define NA N
#define NB (N+1)
#ifndef HMAX
#define HMAX 1
#endif
#ifndef MAXCRASH
#define MAXCRASH 1
#endif
#ifndef MAXWIPE
#define MAXWIPE 0
#endif
#ifndef DROP
#define DROP 0
#endif
#ifdef ONE_SWITCH
#define SWNEED 1
#else
#define SWNEED NEED
#endif
#if N == 3
#define ALLPAIRS(F) \
  :: F(0, 1) :: F(0, 2) :: F(0, 3) :: F(0, 4) :: F(1, 0) :: F(1, 2) :: F(1, 3) \
  :: F(1, 4) :: F(2, 0) :: F(2, 1) :: F(2, 3) :: F(2, 4) :: F(3, 0) :: F(3, 1) \
  :: F(3, 2) :: F(3, 4) :: F(4, 0) :: F(4, 1) :: F(4, 2) :: F(4, 3) \

#define ALLHOSTS(F) :: F(0) :: F(1) :: F(2) :: F(3) :: F(4)
#define ROUNDS(e, h) \
  :: RND2(e, h, 0, 1) :: RND2(e, h, 0, 2) :: RND2(e, h, 0, 3) :: RND2(e, h, 0, 4) \
  :: RND2(e, h, 1, 2) :: RND2(e, h, 1, 3) :: RND2(e, h, 1, 4) :: RND2(e, h, 2, 3) \
  :: RND2(e, h, 2, 4) :: RND2(e, h, 3, 4) \

#define COORD(e) (CO(e, 0) || CO(e, 1) || CO(e, 2) || CO(e, 3) || CO(e, 4))
#define PC(v) ((((v) >> 0) & 1) + (((v) >> 1) & 1) + (((v) >> 2) & 1) + (((v) >> 3) & 1) + (((v) >> 4) & 1))
#define MEMS(F, s) :: F(s, 0) :: F(s, 1) :: F(s, 2)
#endif
#if N == 5
#define ALLPAIRS(F) \
  :: F(0, 1) :: F(0, 2) :: F(0, 3) :: F(0, 4) :: F(0, 5) :: F(0, 6) :: F(1, 0) \
  :: F(1, 2) :: F(1, 3) :: F(1, 4) :: F(1, 5) :: F(1, 6) :: F(2, 0) :: F(2, 1) \
  :: F(2, 3) :: F(2, 4) :: F(2, 5) :: F(2, 6) :: F(3, 0) :: F(3, 1) :: F(3, 2) \
  :: F(3, 4) :: F(3, 5) :: F(3, 6) :: F(4, 0) :: F(4, 1) :: F(4, 2) :: F(4, 3) \
  :: F(4, 5) :: F(4, 6) :: F(5, 0) :: F(5, 1) :: F(5, 2) :: F(5, 3) :: F(5, 4) \
  :: F(5, 6) :: F(6, 0) :: F(6, 1) :: F(6, 2) :: F(6, 3) :: F(6, 4) :: F(6, 5) \

#define ALLHOSTS(F) :: F(0) :: F(1) :: F(2) :: F(3) :: F(4) :: F(5) :: F(6)
#define ROUNDS(e, h) \
  :: RND3(e, h, 0, 1, 2) :: RND3(e, h, 0, 1, 3) :: RND3(e, h, 0, 1, 4) :: RND3(e, h, 0, 1, 5) \
  :: RND3(e, h, 0, 1, 6) :: RND3(e, h, 0, 2, 3) :: RND3(e, h, 0, 2, 4) :: RND3(e, h, 0, 2, 5) \
  :: RND3(e, h, 0, 2, 6) :: RND3(e, h, 0, 3, 4) :: RND3(e, h, 0, 3, 5) :: RND3(e, h, 0, 3, 6) \
  :: RND3(e, h, 0, 4, 5) :: RND3(e, h, 0, 4, 6) :: RND3(e, h, 0, 5, 6) :: RND3(e, h, 1, 2, 3) \
  :: RND3(e, h, 1, 2, 4) :: RND3(e, h, 1, 2, 5) :: RND3(e, h, 1, 2, 6) :: RND3(e, h, 1, 3, 4) \
  :: RND3(e, h, 1, 3, 5) :: RND3(e, h, 1, 3, 6) :: RND3(e, h, 1, 4, 5) :: RND3(e, h, 1, 4, 6) \
  :: RND3(e, h, 1, 5, 6) :: RND3(e, h, 2, 3, 4) :: RND3(e, h, 2, 3, 5) :: RND3(e, h, 2, 3, 6) \
  :: RND3(e, h, 2, 4, 5) :: RND3(e, h, 2, 4, 6) :: RND3(e, h, 2, 5, 6) :: RND3(e, h, 3, 4, 5) \
  :: RND3(e, h, 3, 4, 6) :: RND3(e, h, 3, 5, 6) :: RND3(e, h, 4, 5, 6) \

#define COORD(e) (CO(e, 0) || CO(e, 1) || CO(e, 2) || CO(e, 3) || CO(e, 4) || CO(e, 5) || CO(e, 6))
#define PC(v) ((((v) >> 0) & 1) + (((v) >> 1) & 1) + (((v) >> 2) & 1) + (((v) >> 3) & 1) + (((v) >> 4) & 1) + (((v) >> 5) & 1) + (((v) >> 6) & 1))
#define MEMS(F, s) :: F(s, 0) :: F(s, 1) :: F(s, 2) :: F(s, 3) :: F(s, 4)
#endif

#define SLOT(s) ((s) == 1 -> SA : SB)
#define NEWH(s) ((s) == 1 -> NA : NB)
#define SWOF(i) ((i) == NA -> 1 : 2)          /* for a new host i */
#define INSET(e, i) ((e) == 0 && (i) < N || \
                     (e) == 1 && ((i) < N && (i) != SA || (i) == NA) || \
                     (e) == 2 && ((i) < N && (i) != SB || (i) == NB))
#define OTHER(s, i) ((i) < N && (i) != SLOT(s))   /* may record s */
#define BIT(j) (1 << (j))

byte cur[H];
byte ep[H];               /* the epoch identity it holds: 0 = E, 1 = A, 2 = B */
byte epd[H];              /* ... durably (differs only under -DUNSYNCED) */
bool up[H], ready[H], nostate[H], gone[H];
byte rd[H];               /* bit j: j's snapshot read in this recovery */
byte mx[H];               /* the maximum read */
byte obs[H];              /* DROP=1: bit j: j seen holding another switch */
/* ghosts */
byte recd[3];             /* bit i: i answered "recorded s" to s's new host */
bool done[3];             /* s completed */
bool dropped[3];
bool gaveup[3];              /* DROP=4 */
byte crashes, wipes;
byte committed;           /* bit h: [h, h+1) committed */
/* ghosts of the probes only (PROBE=1, 2, 3) */
byte epc;                 /* bit e: a round of epoch e committed */
byte pl;                  /* bit i: i lost power holding a switch it had not answered */
byte crE;                 /* bit i: i lost power at epoch E */
#ifndef PROBE
#define PROBE 0
#endif

#ifdef ANY_EPOCH
#define EPOK(e, j) (true)
#else
#define EPOK(e, j) (ep[j] == (e))
#endif
#define ACC(e, j, h) (INSET(e, j) && up[j] && ready[j] && EPOK(e, j) && cur[j] <= (h))
/* a coordinator of epoch e: a ready member holding e (needed only when
 * members ignore epochs; otherwise each acceptor is one) */
#define CO(e, k) (up[k] && ready[k] && ep[k] == (e) && INSET(e, k))
#if PROBE == 1
#define PROBE1(e, k) assert(!((e) != 0 && (k) >= N && (epc & 1))); epc = epc | BIT(e)
#else
#define PROBE1(e, k) skip
#endif
#define COMMIT(e, h, k) assert(!(committed & BIT(h))); committed = committed | BIT(h); \
  PROBE1(e, k)
#define RND2(e, h, a, b) \
  d_step { ACC(e, a, h) && ACC(e, b, h) && COORD(e) -> \
    printf("round epoch %d [%d,%d) on %d %d\n", e, h, h + 1, a, b); \
    cur[a] = h + 1; cur[b] = h + 1; COMMIT(e, h, b) }
#define RND3(e, h, a, b, d) \
  d_step { ACC(e, a, h) && ACC(e, b, h) && ACC(e, d, h) && COORD(e) -> \
    printf("round epoch %d [%d,%d) on %d %d %d\n", e, h, h + 1, a, b, d); \
    cur[a] = h + 1; cur[b] = h + 1; cur[d] = h + 1; COMMIT(e, h, d) }

#ifdef NO_ONE
#define MAYRECORD(s, i) (ep[i] != (s) && !(recd[s] & BIT(i)))
#else
#define MAYRECORD(s, i) (ep[i] == 0)
#endif
#ifdef UNSYNCED
#define RECDUR(i)
#else
#define RECDUR(i) epd[i] = ep[i]
#endif

inline record(s, i) {
  d_step { OTHER(s, i) && up[i] && MAYRECORD(s, i) -> printf("%d records switch %d\n", i, s); ep[i] = s; RECDUR(i); obs[i] = 0 }
}
inline answer(s, i) {
  d_step { OTHER(s, i) && up[i] && ep[i] == s && !(recd[s] & BIT(i)) && up[NEWH(s)] ->
    printf("%d answers switch %d\n", i, s); recd[s] = recd[s] | BIT(i) }
}
inline complete(s) {
  d_step { !done[s] && up[NEWH(s)] && PC(recd[s]) >= SWNEED ->
    printf("switch %d completes\n", s); done[s] = 1;
    assert(!done[3 - s]);           /* of two switches, at most one completes */
#if PROBE == 2
    assert(!(recd[s] & pl));
#endif
#if PROBE == 4
    for (t : 0 .. N-1) { assert(ep[t] != 3 - s) }; t = 0;
#endif
    skip }
}
inline sync(i) {
  d_step { epd[i] != ep[i] && up[i] -> printf("%d syncs\n", i); epd[i] = ep[i] }
}

#ifdef EARLY_VOTE
#define MAYREAD(i) ((i) < N || recd[SWOF(i)] != 0)
#else
#define MAYREAD(i) ((i) < N || done[SWOF(i)])
#endif
#ifdef READ_RECORDERS
#define SRC(i, j) ((i) < N -> !nostate[j] : ((recd[SWOF(i)] >> (j)) & 1))
#else
#define SRC(i, j) (!nostate[j])
#endif
#ifdef ONE_SWITCH
#define RNEED(i) ((i) < N -> NEED : 1)
#else
#define RNEED(i) NEED
#endif

inline rread(i, j) {
  d_step { up[i] && !ready[i] && MAYREAD(i) && INSET(ep[i], j) && up[j] && SRC(i, j) &&
           !(rd[i] & BIT(j)) ->
    printf("%d reads %d (cur %d)\n", i, j, cur[j]); rd[i] = rd[i] | BIT(j);
    if :: cur[j] > mx[i] -> mx[i] = cur[j] :: else -> skip fi;
    if
    :: PC(rd[i]) >= RNEED(i) ->
       if :: mx[i] > cur[i] -> cur[i] = mx[i] :: else -> skip fi;
       printf("%d ready, cur %d\n", i, cur[i]);
#if PROBE == 5
       assert(!(i >= N && cur[i] > 1));
#endif
       ready[i] = 1; nostate[i] = 0; rd[i] = 0; mx[i] = 0
    :: else -> skip
    fi }
}

inline crash(i) {
  d_step { up[i] && crashes < MAXCRASH ->
    printf("%d crashes\n", i);
#if PROBE == 2
    if :: ep[i] != 0 && !(recd[ep[i]] & BIT(i)) -> pl = pl | BIT(i) :: else -> skip fi;
#endif
#if PROBE == 3
    if :: ep[i] == 0 -> crE = crE | BIT(i) :: else -> skip fi;
#endif
    crashes++; up[i] = 0; ready[i] = 0; rd[i] = 0; mx[i] = 0; obs[i] = 0; ep[i] = epd[i] }
}
inline start(i) {
  d_step { !up[i] && !gone[i] -> printf("%d starts\n", i); up[i] = 1 }
}
inline wipe(i) {
  d_step { i < N && up[i] && wipes < MAXWIPE && committed != 0 ->
    printf("%d wiped\n", i); wipes++; cur[i] = 1; nostate[i] = 1; ready[i] = 0; rd[i] = 0; mx[i] = 0 }
}
inline learn(i, j) {
  d_step { i < N && up[i] && ep[i] == 0 && up[j] && ep[j] != 0 && INSET(ep[j], i) &&
           (j < N || ready[j]) ->
    printf("%d learns epoch %d from %d\n", i, ep[j], j);
#if PROBE == 3
    assert(!(crE & BIT(i)));
#endif
    ep[i] = ep[j]; epd[i] = ep[j]; obs[i] = 0 }
}
inline dies(i) {             /* -DOLD_DIES: an old host dies for good */
  d_step { !gone[i] -> printf("old host %d dies\n", i); gone[i] = 1; up[i] = 0; ready[i] = 0 }
}

#if DROP == 4
#define DROPOK(i) (gaveup[ep[i]])
#endif
#if DROP == 1 || DROP == 3
inline obsv(i, j) {
  d_step { i < N && up[i] && ep[i] != 0 && up[j] && ep[j] != 0 && ep[j] != ep[i] &&
           OTHER(ep[i], j) && !(obs[i] & BIT(j)) -> printf("%d sees %d hold switch %d\n", i, j, ep[j]); obs[i] = obs[i] | BIT(j) }
}
#if DROP == 3
#define DROPOK(i) (ep[i] == 2 && PC(obs[i]) > Q - 2)
#else
#define DROPOK(i) (PC(obs[i]) > Q - 2)
#endif
#elif DROP != 4
#define DROPOK(i) (cnt > Q - 2)
#endif
inline drop(i) {
  d_step { i < N && up[i] && ep[i] != 0 ->
#if DROP == 2
    cnt = 0;
    for (t : 0 .. N-1) {
      if :: OTHER(ep[i], t) && ep[t] != 0 && ep[t] != ep[i] -> cnt++ :: else -> skip fi
    }
    t = 0;
#endif
    if
    :: DROPOK(i) -> printf("%d drops switch %d\n", i, ep[i]); dropped[ep[i]] = 1; ep[i] = 0; epd[i] = 0; obs[i] = 0
    :: else -> skip
    fi;
    cnt = 0 }
}
#ifdef GIVEUP_LATE
#define GIVEUP_OK(s) 1           /* mutation: a host may give up (and its switch be dropped) after it completed */
#else
#define GIVEUP_OK(s) (!done[s])
#endif
inline giveup(s) {           /* DROP=4: s's new host gives up before s completed */
  d_step { GIVEUP_OK(s) && !gaveup[s] && !gone[NEWH(s)] -> printf("new host %d gives up\n", NEWH(s));
           gaveup[s] = 1; gone[NEWH(s)] = 1; up[NEWH(s)] = 0; ready[NEWH(s)] = 0 }
}
inline leave(s) {            /* a dropped switch's new host exits */
  d_step { dropped[s] && !gone[NEWH(s)] -> printf("new host %d exits\n", NEWH(s)); gone[NEWH(s)] = 1; up[NEWH(s)] = 0; ready[NEWH(s)] = 0 }
}

#define RSTEP(i, j) rread(i, j)
#define LSTEP(i, j) learn(i, j)
#define OSTEP(i, j) obsv(i, j)
#define WIPE(s, i) wipe(i)
#define DROPS(s, i) drop(i)

active proctype world() {
  byte t, cnt;
  d_step {
    for (t : 0 .. N-1) { cur[t] = 1; up[t] = 1; ready[t] = 1 }
    cur[NA] = 1; ep[NA] = 1; epd[NA] = 1; up[NA] = 1; nostate[NA] = 1;
    cur[NB] = 1; ep[NB] = 2; epd[NB] = 2; nostate[NB] = 1;
#if RACE
    up[NB] = 1;
#else
    gone[NB] = 1;
#endif
#ifdef OLD_DEAD
    gone[SA] = 1; up[SA] = 0; ready[SA] = 0;
#endif
    t = 0 }
end:
  do
  ROUNDS(0, 1)
  ROUNDS(1, 1)
#if RACE
  ROUNDS(2, 1)
#endif
#if HMAX >= 2
  ROUNDS(0, 2)
  ROUNDS(1, 2)
#if RACE
  ROUNDS(2, 2)
#endif
#endif
#if HMAX >= 3
  ROUNDS(0, 3)
  ROUNDS(1, 3)
#if RACE
  ROUNDS(2, 3)
#endif
#endif
  MEMS(record, 1) MEMS(answer, 1) :: complete(1)
#if RACE
  MEMS(record, 2) MEMS(answer, 2) :: complete(2)
#endif
  ALLPAIRS(RSTEP)
  ALLHOSTS(crash)
  ALLHOSTS(start)
  ALLPAIRS(LSTEP)
#if MAXWIPE > 0
  MEMS(WIPE, 0)
#endif
#ifdef UNSYNCED
  ALLHOSTS(sync)
#endif
#ifdef OLD_DIES
  :: dies(SA)
#if RACE == 2
  :: dies(SB)
#endif
#endif
#if DROP == 4
  MEMS(DROPS, 0)
  :: giveup(1) :: giveup(2)
#elif DROP
  MEMS(DROPS, 0)
  :: leave(1) :: leave(2)
#if DROP == 1 || DROP == 3
  ALLPAIRS(OSTEP)
#endif
#endif
  od
}
