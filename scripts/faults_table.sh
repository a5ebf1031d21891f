#!/usr/bin/env bash
# scripts/faults_table.sh — the fault campaign's summary table.
#
#   scripts/faults_table.sh [SUMMARY_FILE]   (default build/faults-summary.txt)
#
# Reads the one-line reports tests/test_faults.c appends to the file named
# by $SEQD_FAULTS_SUMMARY (`make faults` sets it), one per scenario:
#   scenario=NAME ops=N ok=N failed=N unknown=N availability=X gap_ratio=X
#   violations=N variant=V seed=N [key=value ...] [FAILED]
# or "scenario=NAME skipped: REASON", and prints them as a table: the
# standard columns, then avail_after_2T (the worst fault window, fetches
# invoked from 2T after a fault began until it ended; its fetch count in
# parentheses) and the scenario's other fields as notes.
set -u
f=${1:-build/faults-summary.txt}
if [ ! -s "$f" ]; then
    echo "faults_table: no summary lines in $f (did any scenario run?)" >&2
    exit 1
fi
awk '
function field(k,   i, kv) {
    for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) return substr($i, length(k) + 2)
    return "-"
}
BEGIN {
    printf "%-26s %-7s %7s %7s %6s %7s %7s %-15s %6s %5s  %s\n", "scenario", "variant", "ops", "ok",
           "failed", "unknown", "avail", "avail_after_2T", "gaps", "viol", "notes"
}
/ skipped: / {
    name = substr($1, 10); sub(/^[^:]*skipped: /, "", $0)
    printf "%-26s %-7s %s\n", name, "-", "skipped: " $0
    skipped++; next
}
/^scenario=/ {
    notes = ""
    for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] ~ /^(scenario|ops|ok|failed|unknown|availability|gap_ratio|violations|variant|seed|avail_after_2T)$/) continue
        notes = notes (notes == "" ? "" : " ") $i
    }
    notes = "seed=" field("seed") (notes == "" ? "" : " " notes)
    printf "%-26s %-7s %7s %7s %6s %7s %7s %-15s %6s %5s  %s\n", field("scenario"), field("variant"),
           field("ops"), field("ok"), field("failed"), field("unknown"), field("availability"),
           field("avail_after_2T"), field("gap_ratio"), field("violations"), notes
    n++; v += field("violations"); if ($0 ~ / FAILED$/) failed++
}
END {
    printf "%d scenarios ran, %d skipped, %d violations, %d failed\n", n, skipped, v, failed
}' "$f"
