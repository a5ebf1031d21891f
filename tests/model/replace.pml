/* Copied from shared/model/replace.pml (the design's model of DESIGN.md §6,
 * see shared/model/README.md) so that the project carries it, and extended
 * here for issue 14 (item 4); without -DRACE or -DEARLY_VOTE it is the
 * shared model unchanged. Results: tests/model/README.md.
 * Additions:
 *   -DRACE        two switches race from epoch 0 for slot 2 (one slot twice,
 *                 two new hosts): switch 1 by d (host 3, epoch 1 = {0,1,3})
 *                 and switch 2 by d' (host 4, epoch 2 = {0,1,4}). A member
 *                 records a switch only while it is at exactly epoch 0
 *                 (atomic test and set). Asserted besides disjointness: at
 *                 most one of the two switches completes. Coordinator 0 may
 *                 run on member 0 or on either new host once ready.
 *                 With -DNO_ONE (mutation) a member records a switch at any
 *                 epoch, so both may complete.
 *   -DEARLY_VOTE  mutation: d reads members 0 and 1 (after the 2R wait) and
 *                 becomes ready once member 0 recorded the switch, before
 *                 member 1 did (it votes before N-Q+1 recorded it).
 */
/* DESIGN.md §6: 3 slots (members 0,1,2; 2 = old host c, alive, maybe
 * partitioned: every message may be lost or delayed), replacement host 3 (d).
 * Epoch 0 = {0,1,2}, epoch 1 = {0,1,3}. Two coordinators: coord 0 on member 0
 * (epoch read from its host at round start), coord 1 on the OLD host 2,
 * which never learns the switch (worst case). Members answer only their own
 * epoch. Switch: members 0 and 1 (N-Q+1 = 2 others of d) record epoch 1 in
 * either order; then d waits out every round in flight (2R), reads 0 and 1,
 * adopts the max, and becomes ready (may then host coordinator 0's rounds).
 * Variants: -DREAD_FIRST (read before waiting), -DONE_SWITCH (only member 0
 * records, d reads only 0), -DNO_EPOCH (members ignore epochs).
 * Asserts disjoint committed ranges and real-time order. */
#ifdef RACE
#define M 5
#else
#define M 4
#endif
#define Q 2
#define C 2
#ifndef ROUNDS
#define ROUNDS 2
#endif
#ifdef RACE
#define INSET(e,i) ((e) == 0 && (i) <= 2 || (e) == 1 && ((i) <= 1 || (i) == 3) || (e) == 2 && ((i) <= 1 || (i) == 4))
#else
#define INSET(e,i) ((e) == 0 && (i) != 3 || (e) == 1 && (i) != 2)
#endif

byte cur[M] = 1;
bool recovering[M];
byte ep[M];
bool pend[C*M]; byte pexp[C*M]; byte pnew[C*M]; byte pround[C*M]; byte pep[C*M];
bool ack[C*M];
byte rnd[C];
bool inround[C];
bool old[C];
bool dready;
#ifdef RACE
bool d2ready;
bool swdone[3];
#endif
byte ch[C*ROUNDS]; byte cv[C*ROUNDS]; byte ncommit;

inline deliver(c, i) {
  atomic {
    pend[c*M+i] ->
    if
#ifdef NO_EPOCH
    :: !recovering[i] && cur[i] <= pexp[c*M+i] ->
#else
    :: !recovering[i] && ep[i] == pep[c*M+i] && cur[i] <= pexp[c*M+i] ->
#endif
       cur[i] = pnew[c*M+i];
       if :: pround[c*M+i] == rnd[c] && inround[c] -> ack[c*M+i] = 1 :: else -> skip fi
    :: else -> skip
    fi;
    pend[c*M+i] = 0
  }
}

active proctype net() {
end:
  do
  :: deliver(0,0) :: deliver(0,1) :: deliver(0,2) :: deliver(0,3)
  :: deliver(1,0) :: deliver(1,1) :: deliver(1,2) :: deliver(1,3)
#ifdef RACE
  :: deliver(0,4) :: deliver(1,4)
#endif
  od
}

proctype coord(byte c) {
  byte r, h, v, i, k, learned = 1, startt, host;
  byte e;
  do
  :: r < ROUNDS ->
     r++;
     atomic {
       if
       :: c == 1 -> host = 2
       :: c == 0 -> host = 0
       :: c == 0 && dready -> host = 3
#ifdef RACE
       :: c == 0 && d2ready -> host = 4
#endif
       fi;
       e = ep[host];
       rnd[c] = r; startt = ncommit;
       ack[c*M+0] = 0; ack[c*M+1] = 0; ack[c*M+2] = 0; ack[c*M+3] = 0;
#ifdef RACE
       ack[c*M+4] = 0;
#endif
     }
     if
     :: h = learned
     :: h = 0; k = 0;
        for (i : 0 .. M-1) {
          if
#ifdef NO_EPOCH
          :: INSET(e, i) && !recovering[i] ->
#else
          :: INSET(e, i) && !recovering[i] && ep[i] == e ->
#endif
             if :: cur[i] > h -> h = cur[i] :: else -> skip fi; k++
          :: true -> skip
          fi
        }
        if :: k < Q -> goto next :: else -> skip fi
     fi;
     if :: v = h + 1 :: v = h + 2 fi;
     inround[c] = 1;
     for (i : 0 .. M-1) {
       if
       :: INSET(e, i) -> atomic { pend[c*M+i] = 1; pexp[c*M+i] = h; pnew[c*M+i] = v; pround[c*M+i] = r; pep[c*M+i] = e }
       :: true -> skip
       fi
     }
     if
#ifdef RACE
     :: atomic { (ack[c*M+0] + ack[c*M+1] + ack[c*M+2] + ack[c*M+3] + ack[c*M+4] >= Q) ->
#else
     :: atomic { (ack[c*M+0] + ack[c*M+1] + ack[c*M+2] + ack[c*M+3] >= Q) ->
#endif
          for (k : 0 .. ncommit-1) {
            assert(cv[k] <= h || v <= ch[k]);
            assert(k >= startt || cv[k] <= h)
          }
          ch[ncommit] = h; cv[ncommit] = v; ncommit++; k = 0;
          learned = v; inround[c] = 0; old[c] = 0 }
     :: atomic { inround[c] = 0; old[c] = 0;
          if :: learned = cur[0] :: learned = cur[1] :: learned = cur[2] :: learned = cur[3]
#ifdef RACE
             :: learned = cur[4]
#endif
             :: skip fi }
     fi;
next: h = 0; v = 0; i = 0; k = 0
  :: else -> break
  od
}

#ifdef RACE
/* switch s by new host d: records on 0 and 1 (each only at exactly epoch 0;
 * -DNO_ONE: at any epoch, so a member records both switches in turn) */
#ifdef NO_ONE
#define FREE(i) (ep[i] != s)
#else
#define FREE(i) (ep[i] == 0)
#endif
proctype repl(byte s; byte d) {
  byte m = 1;
  atomic { recovering[d] = 1; ep[d] = s }
  if
  :: atomic { FREE(0) -> ep[0] = s }; atomic { FREE(1) -> ep[1] = s; old[0] = inround[0]; old[1] = inround[1] }
  :: atomic { FREE(1) -> ep[1] = s }; atomic { FREE(0) -> ep[0] = s; old[0] = inround[0]; old[1] = inround[1] }
  fi;
  atomic { assert(!swdone[3 - s]); swdone[s] = 1 }   /* at most one completes */
  (old[0] == 0 && old[1] == 0);
  if :: cur[0] > m -> m = cur[0] :: else -> skip fi;
  if :: cur[1] > m -> m = cur[1] :: else -> skip fi;
  atomic { if :: m > cur[d] -> cur[d] = m :: else -> skip fi; recovering[d] = 0;
           if :: s == 1 -> dready = 1 :: else -> d2ready = 1 fi }
}
#else
active proctype repl() {
  byte m = 1;
  atomic { recovering[3] = 1; ep[3] = 1 }
#ifdef ONE_SWITCH
  atomic { ep[0] = 1; old[0] = inround[0]; old[1] = inround[1] }
#elif defined(EARLY_VOTE)
  atomic { ep[0] = 1; old[0] = inround[0]; old[1] = inround[1] }
#else
  if
  :: ep[0] = 1; atomic { ep[1] = 1; old[0] = inround[0]; old[1] = inround[1] }
  :: ep[1] = 1; atomic { ep[0] = 1; old[0] = inround[0]; old[1] = inround[1] }
  fi;
#endif
#ifndef READ_FIRST
  (old[0] == 0 && old[1] == 0);
#endif
  if :: cur[0] > m -> m = cur[0] :: else -> skip fi;
#ifndef ONE_SWITCH
  if :: cur[1] > m -> m = cur[1] :: else -> skip fi;
#endif
#ifdef READ_FIRST
  (old[0] == 0 && old[1] == 0);
#endif
  atomic { if :: m > cur[3] -> cur[3] = m :: else -> skip fi; recovering[3] = 0; dready = 1 }
#ifdef EARLY_VOTE
  ep[1] = 1
#endif
}

#endif

#ifdef RACE
init { atomic { run coord(0); run coord(1); run repl(1, 3); run repl(2, 4) } }
#else
init { atomic { run coord(0); run coord(1) } }
#endif
