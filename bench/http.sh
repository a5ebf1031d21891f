#!/usr/bin/env bash
# bench/http.sh — the HTTP API beside the binary protocol on one cluster,
# and what a Prometheus scrape a second costs; `make bench` runs it after
# bench_cluster's matrix.
#
# Starts three members (--fsync always, --http; ports 19701-19703, HTTP
# 19711-19713, data under BENCH_DIR/http), then, on that one cluster and in
# one invocation, HTTP_RUNS rounds (default 2) of:
#   - bench_cluster --servers, case 0:indep32 (the binary baseline);
#   - peer_driver --seqd-http with 1 and 32 keep-alive connections to one
#     member, count 1:
#       BENCH target=http fsync=always buf=0 clients=<single|indep32> ids_per_s=… p50_us=… p99_us=…
#   - the binary 0:indep32 again while a curl scrapes every member's
#     /metrics each second (SCRAPE line: members' CPU per ID either way).
# and prints RATIO http_indep32_vs_binary_indep32=<x> (aim >= 0.7) and
# RATIO scraped_vs_unscraped_cpu_per_id=<x>, each the median over the runs.
# Environment: HTTP_SECONDS (per case, default 5), HTTP_RUNS, BENCH_DIR,
# SEQD_BIN, BENCH_BIN, PEER_DRIVER.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
secs=${HTTP_SECONDS:-5}
runs=${HTTP_RUNS:-2}
seqd=${SEQD_BIN:-./seqd}
bench=${BENCH_BIN:-build/bench/bench_cluster}
driver=${PEER_DRIVER:-build/bench/peer_driver}
dir=${BENCH_DIR:-build/bench-data}/http
rm -rf "$dir" && mkdir -p "$dir"
servers=127.0.0.1:19701,127.0.0.1:19702,127.0.0.1:19703
# Every HTTP connection of the one sequence to one member, as the README
# says to (and as the binary clients do by hashing the name): spread over
# every member, one sequence's rounds collide (README, HTTP API).
http1=127.0.0.1:19711
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2 3; do
  peers=$(echo "$servers" | tr , '\n' | grep -v ":1970$i\$" | paste -sd,)
  "$seqd" serve --listen 127.0.0.1:1970$i --peers "$peers" --data "$dir/m$i" \
    --http 127.0.0.1:1971$i 2>>"$dir/m$i.log" &
  pids+=($!)
done
sleep 0.5
"$seqd" init --servers "$servers" >/dev/null
for _ in $(seq 200); do "$seqd" status --servers "$servers" >/dev/null && break; sleep 0.05; done
pidlist=$(IFS=,; echo "${pids[*]}")

cpu_ticks() { local t=0; for p in "${pids[@]}"; do read -r -a f < /proc/$p/stat; t=$((t + f[13] + f[14])); done; echo $t; }
ids_total() { local t=0; for i in 1 2 3; do
  v=$(curl -s 127.0.0.1:1971$i/metrics | awk '$1=="seqd_ids_total"{print $2}'); t=$((t + v)); done; echo $t; }
hz=$(getconf CLK_TCK)

binary() {  # $1: label for the SCRAPE line, $2: scrape or none
  local spid= c0 i0 c1 i1
  if [ "$2" = scrape ]; then
    ( while :; do for i in 1 2 3; do curl -s -o /dev/null 127.0.0.1:1971$i/metrics; done; sleep 1; done ) &
    spid=$!
  fi
  c0=$(cpu_ticks); i0=$(ids_total)
  "$bench" --servers "$servers" --fsync always --cases 0:indep32 --seconds "$secs" --no-baseline \
    --fetchproc 0 | grep '^BENCH' | sed 's/^BENCH target=cluster/BENCH target=binary/'
  c1=$(cpu_ticks); i1=$(ids_total)
  if [ -n "$spid" ]; then kill "$spid"; wait "$spid" 2>/dev/null || true; fi
  awk -v l="$1" -v c=$((c1 - c0)) -v n=$((i1 - i0)) -v hz="$hz" \
    'BEGIN { printf "SCRAPE %s ids=%d member_cpu_ns_per_id=%.0f\n", l, n, c / hz * 1e9 / n }'
}

out=$dir/results.txt
: > "$out"
for r in $(seq "$runs"); do
  binary unscraped none | tee -a "$out"
  "$driver" --seqd-http "$http1" --clients 1 --seconds "$secs" --key "h1r$r" --pids "$pidlist" \
    --bench-shape single | tee -a "$out"
  "$driver" --seqd-http "$http1" --clients 32 --seconds "$secs" --key "h32r$r" --pids "$pidlist" \
    --bench-shape indep32 | tee -a "$out"
  binary every_1s scrape | tee -a "$out"
done
med() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
bin=$(grep '^BENCH target=binary' "$out" | awk 'NR % 2 == 1' | field ids_per_s | med)
http=$(grep '^BENCH target=http .*clients=indep32' "$out" | field ids_per_s | med)
un=$(grep '^SCRAPE unscraped' "$out" | field member_cpu_ns_per_id | med)
sc=$(grep '^SCRAPE every_1s' "$out" | field member_cpu_ns_per_id | med)
awk -v h="$http" -v b="$bin" 'BEGIN { printf "RATIO http_indep32_vs_binary_indep32=%.2f (aim >= 0.7)\n", h / b }'
awk -v s="$sc" -v u="$un" 'BEGIN { printf "RATIO scraped_vs_unscraped_cpu_per_id=%.2f\n", s / u }'
