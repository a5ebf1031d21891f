#!/usr/bin/env bash
# bench/scrape_cost.sh — what a Prometheus scrape of /metrics costs a member.
#
#   make build/bench/bench_cluster && bash bench/scrape_cost.sh [SECONDS] [CASE]
#
# Starts three members with --http (ports 19601-19603, HTTP 19611-19613,
# data under build/scrape-data, --fsync never so the disk does not drown the
# difference), runs bench_cluster --servers on them for one case (default
# 1:indep32, SECONDS default 10) twice: once with nothing scraping, once with
# a curl of every member's /metrics each second. Per run it prints the
# members' user+system CPU (from /proc/PID/stat) per ID handed out, the IDs
# counted with the members' own seqd_ids_total.
set -euo pipefail
secs=${1:-10}
case_=${2:-1:indep32}
seqd=./seqd
bench=build/bench/bench_cluster
dir=build/scrape-data
rm -rf "$dir" && mkdir -p "$dir"
servers=127.0.0.1:19601,127.0.0.1:19602,127.0.0.1:19603
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2 3; do
  peers=$(echo "$servers" | tr , '\n' | grep -v ":1960$i\$" | paste -sd,)
  "$seqd" serve --listen 127.0.0.1:1960$i --peers "$peers" --data "$dir/m$i" --fsync never \
    --http 127.0.0.1:1961$i 2>>"$dir/m$i.log" &
  pids+=($!)
done
sleep 0.5
"$seqd" init --servers "$servers" >/dev/null
for _ in $(seq 100); do "$seqd" status --servers "$servers" >/dev/null && break; sleep 0.1; done

cpu_ticks() { local t=0; for p in "${pids[@]}"; do read -r -a f < /proc/$p/stat; t=$((t + f[13] + f[14])); done; echo $t; }
ids_total() { local t=0; for i in 1 2 3; do
  v=$(curl -s 127.0.0.1:1961$i/metrics | awk '$1=="seqd_ids_total"{print $2}'); t=$((t + v)); done; echo $t; }
hz=$(getconf CLK_TCK)

run() {  # $1: label, $2: scrape or none
  local spid=
  if [ "$2" = scrape ]; then
    ( while :; do for i in 1 2 3; do curl -s -o /dev/null 127.0.0.1:1961$i/metrics; done; sleep 1; done ) &
    spid=$!
  fi
  local c0 i0 c1 i1
  c0=$(cpu_ticks); i0=$(ids_total)
  "$bench" --servers "$servers" --fsync never --cases "$case_" --seconds "$secs" --no-baseline --fetchproc 0 \
    | grep '^BENCH' || true
  c1=$(cpu_ticks); i1=$(ids_total)
  [ -n "$spid" ] && kill "$spid" && wait "$spid" 2>/dev/null || true
  awk -v l="$1" -v c=$((c1 - c0)) -v n=$((i1 - i0)) -v hz="$hz" \
    'BEGIN { printf "SCRAPE %s ids=%d member_cpu_s=%.2f member_cpu_ns_per_id=%.0f\n", l, n, c / hz, c / hz * 1e9 / n }'
}
run none none
run every_1s scrape
run none none
run every_1s scrape
