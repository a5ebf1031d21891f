#!/bin/sh
# Runs the SPIN models (see README.md):
#   bootstrap.pml, the design's rule       must hold (exhaustive, 0 errors);
#   bootstrap.pml -DRELAXED (wave 1 rule)  must fail (an overlap is found);
#   rollback.pml, the verified rule, MAXCRASH=2  must hold (exhaustive,
#     about 35 s, 0.95 GB);
#   rollback.pml -DCOUNT_UNVERIFIED        must fail (the restored-backups
#     attack, under a second).
# With --all also: bootstrap -DLATE_PREPARE must fail, -DSTRICT -DRELAXED
# must hold (about 90 s, 0.8 GB); rollback with MAXCRASH=3 (bitstate, see
# README.md: not yet run to completion).
# Needs spin (Debian: apt-get install spin) and gcc. Works in a temporary
# directory; exits non-zero when any expectation is not met.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0

# check EXPECT NAME [spin -D flags...]; EXPECT is "hold" or "fail".
# MODEL (bootstrap.pml), CFLAGS_PAN (gcc -D flags) and PANFLAGS (-m100000)
# may be set for one call.
check() {
    expect=$1 name=$2
    shift 2
    model=${MODEL:-bootstrap.pml}
    d="$tmp/$name"
    mkdir -p "$d" && cp "$here/$model" "$d/" || { status=1; return; }
    if ! (cd "$d" && spin -a "$@" "$model" >spin.out 2>&1); then
        echo "FAIL $name: spin -a failed: $(head -1 "$d/spin.out")"; status=1; return
    fi
    # shellcheck disable=SC2086
    if ! (cd "$d" && gcc -O2 ${CFLAGS_PAN:-} -o pan pan.c 2>gcc.out); then
        echo "FAIL $name: gcc failed: $(head -1 "$d/gcc.out")"; status=1; return
    fi
    # shellcheck disable=SC2086
    (cd "$d" && ./pan ${PANFLAGS:--m100000} >pan.out 2>&1)
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$d/pan.out" | head -1)
    stored=$(sed -n 's/^ *\([0-9][0-9.e+]*\) states, stored.*/\1/p' "$d/pan.out" | head -1)
    depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' "$d/pan.out" | head -1)
    summary="errors: ${errors:-?}, states stored: ${stored:-?}, depth reached: ${depth:-?}"
    if [ -z "$errors" ]; then
        echo "FAIL $name: pan gave no result"; tail -5 "$d/pan.out"; status=1; return
    fi
    if grep -q 'max search depth too small' "$d/pan.out"; then
        echo "FAIL $name: search depth too small (raise -m)"; status=1; return
    fi
    case $expect in
    hold)
        if [ "$errors" = 0 ]; then echo "ok   $name holds ($summary)"
        else echo "FAIL $name: expected to hold ($summary)"
             grep -m1 'assertion violated' "$d/pan.out"; status=1; fi ;;
    fail)
        if [ "$errors" != 0 ]; then
            echo "ok   $name is caught ($summary; $(grep -m1 -o 'assertion violated.*' "$d/pan.out"))"
        else echo "FAIL $name: expected a counterexample, none found ($summary)"; status=1; fi ;;
    esac
}

check hold safe
check fail relaxed -DRELAXED
MODEL=rollback.pml CFLAGS_PAN="-DSAFETY -DCOLLAPSE" check hold rollback -DMAXCRASH=2
MODEL=rollback.pml CFLAGS_PAN="-DSAFETY" check fail rollback-count-unverified -DCOUNT_UNVERIFIED
if [ "${1:-}" = --all ]; then
    check fail late-prepare -DLATE_PREPARE
    check hold strict-relaxed -DSTRICT -DRELAXED
    MODEL=rollback.pml CFLAGS_PAN="-DSAFETY -DBITSTATE" PANFLAGS="-m100000 -w33" \
        check hold rollback-crash3-bitstate -DMAXCRASH=3
fi
exit $status
