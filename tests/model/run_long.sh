#!/bin/bash
# The long SPIN runs of member replacement (README.md, "SPIN models of member
# replacement"): too long for CI (run.sh has the quick ones). Each run is
# niced, limited to TIMEOUT seconds (default 1800) and to MEMLIM MB of pan
# memory (default 6000), and prints pan's own result lines. Full output:
# $OUT/<name>/pan.out (OUT defaults to a fresh temporary directory, kept).
#   tests/model/run_long.sh                # every run below, one at a time
#   tests/model/run_long.sh NAME...        # the named runs only
# Exits non-zero when a finished run contradicts its expectation.
set -u
here=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(mktemp -d /tmp/seqd-model-long.XXXXXX)}
TIMEOUT=${TIMEOUT:-1800}
MEMLIM=${MEMLIM:-6000}
status=0
echo "run_long: output in $OUT"

# run NAME EXPECT MODEL "GCC FLAGS" "PAN FLAGS" SPIN-FLAGS...
run() {
    name=$1 expect=$2 model=$3 cflags=$4 panflags=$5
    shift 5
    d="$OUT/$name"
    mkdir -p "$d" && cp "$here/$model" "$d/" || { status=1; return; }
    (cd "$d" && spin -a "$@" "$model" >spin.out 2>&1) || { echo "FAIL $name: spin -a"; status=1; return; }
    # shellcheck disable=SC2086
    (cd "$d" && gcc -O2 -w -DMEMLIM=$MEMLIM $cflags -o pan pan.c 2>gcc.out) || { echo "FAIL $name: gcc"; status=1; return; }
    t0=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$d" && nice -n 10 timeout "$TIMEOUT" ./pan $panflags >pan.out 2>&1)
    rc=$?
    secs=$(( $(date +%s) - t0 ))
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$d/pan.out" | head -1)
    stored=$(grep -m1 'states, stored' "$d/pan.out" | sed 's/^ *//')
    depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' "$d/pan.out" | head -1)
    mem=$(grep -m1 'total actual memory usage' "$d/pan.out" | sed 's/^ *//; s/\t/ /g')
    if [ $rc = 124 ]; then
        last=$(grep '^Depth=' "$d/pan.out" | tail -1)
        echo "TIME $name: stopped after $TIMEOUT s, no result; last progress: $last"; return
    fi
    done_="complete"
    grep -q 'Search not completed' "$d/pan.out" && done_="NOT complete"
    grep -q 'reached -DMEMLIM bound' "$d/pan.out" && done_="NOT complete (memory limit)"
    case "$cflags" in *BITSTATE*) [ "$done_" = complete ] && done_="bitstate (not exhaustive)";; esac
    line="$name [$*]: errors: ${errors:-?}; $stored; depth $depth; $done_; $mem; ${secs} s"
    [ -n "$errors" ] && [ "$errors" != 0 ] && line="$line; $(grep -m1 -o 'assertion violated.*' "$d/pan.out")"
    case $expect in
    hold) if [ "${errors:-x}" = 0 ]; then echo "ok   $line"; else echo "FAIL $line"; status=1; fi ;;
    fail) if [ -n "$errors" ] && [ "$errors" != 0 ]; then echo "ok   $line"
          else echo "FAIL (no counterexample) $line"; status=1; fi ;;
    esac
}

SW="-DSAFETY"
RP="-DSAFETY -DVECTORSZ=2048"
want() { [ $# = 0 ] && return 0; for w in $ARGS; do [ "$w" = "$1" ] && return 0; done; return 1; }
ARGS="$*"
one() { name=$1; [ -z "$ARGS" ] || want "$name" || return 0; run "$@"; }

# switch.pml, five members: wipes; two switches with wider bounds; the drop rules
one switch5-wipe        hold switch.pml "$SW" "-m100000 -w27" -DN=5 -DRACE=0 -DMAXWIPE=1
one switch5-slot-wide   hold switch.pml "$SW -DHC4" "-m100000 -w28" -DN=5 -DRACE=1 -DHMAX=2 -DMAXCRASH=2 -DMAXWIPE=1
one switch5-slots-wide  hold switch.pml "$SW -DHC4" "-m100000 -w28" -DN=5 -DRACE=2 -DHMAX=2 -DMAXCRASH=2 -DMAXWIPE=1
one switch5-drop-order  hold switch.pml "$SW -DHC4" "-m1000000 -w28" -DN=5 -DRACE=1 -DDROP=3
one switch5-drop-stale  fail switch.pml "$SW" "-m1000000 -w27" -DN=5 -DRACE=1 -DDROP=1 -DOLD_DEAD
# replace.pml (messages, two coordinators, the old host coordinating)
one replace-r1          hold replace.pml "$RP -DHC4" "-E -m400000 -w28" -DROUNDS=1
one replace-race-r1     hold replace.pml "$RP -DHC4" "-E -m400000 -w28" -DROUNDS=1 -DRACE
one replace-race-r1-bitstate hold replace.pml "$RP -DBITSTATE" "-E -m400000 -w34 -k3" -DROUNDS=1 -DRACE
one replace-no-epoch    fail replace.pml "$RP" "-E -m400000 -w26" -DROUNDS=1 -DNO_EPOCH
one replace-early-vote  fail replace.pml "$RP" "-E -m400000 -w26" -DROUNDS=1 -DEARLY_VOTE
# replace5.pml unfocused (no -DFOCUS, no -DSCRIPT), with the fix
one replace5-fix-hc4    hold replace5.pml "$RP -DHC4" "-E -m400000 -w28" -DFIX
one replace5-fix-bitstate hold replace5.pml "$RP -DBITSTATE" "-E -m1000000 -w34 -k3" -DFIX
# without -DFIX, unfocused: the read-from-recorders hole (found by the focused
# search in run.sh and by switch.pml -DN=5 -DMAXWIPE=1 -DREAD_RECORDERS)
one replace5-unfocused-bug fail replace5.pml "$RP -DHC4" "-E -m400000 -w28"
one replace5-unfocused-bug-bitstate fail replace5.pml "$RP -DBITSTATE" "-E -m1000000 -w34 -k3"
exit $status
