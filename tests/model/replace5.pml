/* Copied unchanged from shared/model/replace5.pml (the design's models of DESIGN.md
 * §6, see shared/model/README.md) so that the project carries it; run by
 * run.sh / run_long.sh here. Results: tests/model/README.md. */
/* DESIGN.md §6 with N = 5: members 0..4 (4 = old host e, dead for good after
 * the switch starts), 5 = replacement f. Epoch 0 = {0..4}, epoch 1 =
 * {0,1,2,3,5}. Member 3 loses its disk after a first commit and recovers by
 * §3 step 3 (wait out rounds, then 3 OTHER members with state of its epoch).
 * The switch is recorded by 3 of {0,1,2,3} (any three, one at a time).
 * As written: f then reads "from those members". -DFIX: f reads 3 others
 * with state (step 3's rule), whichever they are. Two coordinators, each on a
 * ready member chosen at round start. Asserts disjointness + real time. */
#define M 6
#define Q 3
#define C 2
#define NEED 3
#ifndef ROUNDS
#define ROUNDS 1
#endif
#define INSET(e,i) ((e) == 0 && (i) != 5 || (e) == 1 && (i) != 4)

byte cur[M] = 1;
bool recovering[M];
bool nostate[M];
bool ep[M];
bool dead[M];
bool pend[C*M]; byte pexp[C*M]; byte pnew[C*M]; byte pround[C*M]; bool pep[C*M];
bool ack[C*M];
byte rnd[C];
bool inround[C];
bool old[C];
byte ch[C*ROUNDS]; byte cv[C*ROUNDS]; byte ncommit;

inline deliver(c, i) {
  atomic {
    pend[c*M+i] ->
    if
    :: !dead[i] && !recovering[i] && ep[i] == pep[c*M+i] && cur[i] <= pexp[c*M+i] ->
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
  :: deliver(0,0) :: deliver(0,1) :: deliver(0,2) :: deliver(0,3) :: deliver(0,4) :: deliver(0,5)
  :: deliver(1,0) :: deliver(1,1) :: deliver(1,2) :: deliver(1,3) :: deliver(1,4) :: deliver(1,5)
  od
}

proctype coord(byte c) {
  byte r, h, v, i, k, learned = 1, startt, host;
  bool e;
  do
  :: r < ROUNDS ->
     r++;
     atomic {
#ifdef FOCUS
       if
       :: c == 1 -> host = 4
       :: c == 0 && !dead[5] && !nostate[5] -> if :: host = 0 :: host = 5 fi
       fi;
#else
       if
       :: host = 0 :: host = 1 :: host = 2 :: host = 3 :: host = 4 :: host = 5
       fi;
#endif
       !dead[host] && !recovering[host];
       e = ep[host];
       rnd[c] = r; startt = ncommit;
       for (i : 0 .. M-1) { ack[c*M+i] = 0 }; i = 0 }
     if
     :: h = learned
#ifndef SCRIPT
     :: h = 0; k = 0;
        for (i : 0 .. M-1) {
          if
          :: INSET(e, i) && !dead[i] && !recovering[i] && ep[i] == e ->
             if :: cur[i] > h -> h = cur[i] :: else -> skip fi; k++
          :: true -> skip
          fi
        }
        if :: k < Q -> goto next :: else -> skip fi
#endif
     fi;
     if :: v = h + 1 :: v = h + 2 fi;
     inround[c] = 1;
     for (i : 0 .. M-1) {
#ifdef SCRIPT
       if
       :: INSET(e, i) && (c == 0 || i >= 2) -> atomic { pend[c*M+i] = 1; pexp[c*M+i] = h; pnew[c*M+i] = v; pround[c*M+i] = r; pep[c*M+i] = e }
       :: else -> skip
       fi
#else
       if
       :: INSET(e, i) -> atomic { pend[c*M+i] = 1; pexp[c*M+i] = h; pnew[c*M+i] = v; pround[c*M+i] = r; pep[c*M+i] = e }
       :: true -> skip
       fi
#endif
     }
     if
     :: atomic { (ack[c*M+0] + ack[c*M+1] + ack[c*M+2] + ack[c*M+3] + ack[c*M+4] + ack[c*M+5] >= Q) ->
          for (k : 0 .. ncommit-1) {
            assert(cv[k] <= h || v <= ch[k]);
            assert(k >= startt || cv[k] <= h)
          }
          ch[ncommit] = h; cv[ncommit] = v; ncommit++; k = 0;
          learned = v; inround[c] = 0; old[c] = 0 }
     :: atomic { inround[c] = 0; old[c] = 0 }
     fi;
next: h = 0; v = 0; i = 0; k = 0
  :: else -> break
  od
}

/* member 3 loses its disk after the first commit; step 3 recovery */
active proctype amnesia() {
  byte m = 1, j, got;
  bool rd[M];
  ncommit >= 1;
  atomic { cur[3] = 1; recovering[3] = 1; nostate[3] = 1;
           pend[0*M+3] = 0; pend[1*M+3] = 0;
           old[0] = old[0] || inround[0]; old[1] = old[1] || inround[1] }
  (old[0] == 0 && old[1] == 0);
  do
  :: got >= NEED -> break
  :: else ->
     for (j : 0 .. M-1) {
       if
       :: atomic { j != 3 && INSET(ep[3], j) && !dead[j] && !nostate[j] && !rd[j] && got < NEED ->
            if :: cur[j] > m -> m = cur[j] :: else -> skip fi; got++; rd[j] = 1 }
       :: true -> skip
       fi
     }
  od;
  atomic { cur[3] = m; recovering[3] = 0; nostate[3] = 0 }
}

active proctype repl() {
  byte m = 1, x, j, got;
  bool rd[M];
  ncommit >= 1;
  atomic { dead[4] = 1; dead[5] = 0; ep[5] = 1;
           
#ifdef SCRIPT
 x = 2 }
#else
 if :: x = 0 :: x = 1 :: x = 2 :: x = 3 fi }
#endif   /* x does not take part */
  for (j : 0 .. 3) { if :: j != x -> ep[j] = 1 :: else -> skip fi }
  atomic { old[0] = old[0] || inround[0]; old[1] = old[1] || inround[1] }
  (old[0] == 0 && old[1] == 0);
#ifndef FIX
  for (j : 0 .. 3) {                          /* "reading from those members" */
    if :: j != x -> if :: cur[j] > m -> m = cur[j] :: else -> skip fi
       :: else -> skip fi
  }
#else
  do                                          /* step 3: 3 others WITH STATE */
  :: got >= NEED -> break
  :: else ->
     for (j : 0 .. 3) {
       if
       :: atomic { !nostate[j] && !rd[j] && got < NEED ->
            if :: cur[j] > m -> m = cur[j] :: else -> skip fi; got++; rd[j] = 1 }
       :: true -> skip
       fi
     }
  od;
#endif
  atomic { cur[5] = m; recovering[5] = 0; nostate[5] = 0 }
}

init { atomic { recovering[5] = 1; nostate[5] = 1; dead[5] = 1; run coord(0); run coord(1) } }
