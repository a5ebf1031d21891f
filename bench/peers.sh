#!/usr/bin/env bash
# bench/peers.sh — seqd beside what people use instead, on this machine, in
# one run (`make bench-peers`; `make deps-peers` installs the peers).
#
#   1. seqd's key cases (the cluster, --fsync always): buf 0 single, buf 0
#      indep32 (one thread drives 32 connections, like redis-benchmark -c 32),
#      buf 0 threads32 (a thread each), buf 1024 indep32, the in-process baseline of the same, and
#      `seqd fetch` as a process (bench_cluster, see bench/bench_cluster.c);
#   2. the disk's floor: 64-byte pwrite + fdatasync on a preallocated file;
#      and a quorum's floor: three such writers started together, time until
#      two are durable (FLOOR system=fdatasync-2of3 p50_us=<n> p99_us=<n>);
#   3. Redis, appendonly yes + appendfsync always, private server on a
#      loopback port: INCRBY from 1 and 32 clients (redis-benchmark), and
#      `redis-cli INCR` timed as a process like `seqd fetch`;
#   4. PostgreSQL, a private cluster (initdb/pg_ctl, unix socket under the
#      bench directory, run as user postgres when we are root): pgbench with
#      `SELECT nextval('s');` from 1 and 32 clients;
#   5. etcd v3 (Debian's etcd-server), three members on loopback, data
#      under the bench directory: a counter allocated by compare-and-swap
#      (Txn If(mod_revision==r) Then(Put v+1) Else(Range), retried on
#      conflict) over its HTTP/JSON gateway, from 1 and 32 clients
#      (bench/peer_driver.c: one thread, one request in flight on each
#      connection, client i on member i%3);
#   6. replicated Redis: a master and two replicas, appendonly yes +
#      appendfsync always on all three; each ID is INCR then WAIT 1 1000
#      (durable on the master and acknowledged by one replica, no
#      pipelining), from 1 and 32 clients (bench/peer_driver.c).
# Each peer prints one line:
#   PEER system=<redis-always|postgres|fdatasync|redis-cli|etcd3|redis-repl>
#        clients=<1|32> ids_per_s=<n> p50_us=<n> p99_us=<n> [cpu_us_per_id=<x>]
# cpu_us_per_id: user+system CPU of the server processes (/proc/PID/stat,
# every thread) during the case, per ID: redis-server for redis-always, the
# three etcd members for etcd3, the three redis-servers for redis-repl
# (driver_cpu_us_per_id beside it is the driver's own, to show that the
# figure is not client-bound). seqd's BENCH lines carry the same figure for
# its three members. Then RATIO lines put seqd's figures beside theirs. A
# peer that is missing or does not start is reported (SKIP ...) and
# skipped; no figure is made up. Everything started here is stopped on
# exit, also on failure or Ctrl-C.
#
# The whole set runs PEERS_RUNS times (default 3), the systems interleaved;
# the lines above are then the medians of the runs, figure by figure (the
# runs' own lines stay in run<k>.txt beside results.txt).
#
# Environment: PEERS_SECONDS (per measured case, default 5), BENCH_DIR
# (default build/bench-data; must be on the same disk as seqd's data, and
# not a tmpfs), SEQD_BIN (default ./seqd), PEER_DRIVER (default
# build/bench/peer_driver), PEERS_REDIS_PORT (19511; the replicated Redis
# takes the next three), PEERS_PG_PORT (19521), PEERS_ETCD_PORT (19531:
# client ports 19531-19533, peer ports 19541-19543), PEERS_SEQD_PORT (19501).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
SECS=${PEERS_SECONDS:-5}
BENCH=${BENCH_BIN:-$ROOT/build/bench/bench_cluster}
SEQD=${SEQD_BIN:-$ROOT/seqd}
DIR=${BENCH_DIR:-$ROOT/build/bench-data}
DIR=$(mkdir -p "$DIR" && cd "$DIR" && pwd)/peers
REDIS_PORT=${PEERS_REDIS_PORT:-19511}
PG_PORT=${PEERS_PG_PORT:-19521}
SEQD_PORT=${PEERS_SEQD_PORT:-19501}
ETCD_PORT=${PEERS_ETCD_PORT:-19531}
DRIVER=${PEER_DRIVER:-$ROOT/build/bench/peer_driver}
OUT=$DIR/results.txt

REDIS_PID=
PG_DATA=
PG_BIN=
PG_AS=()
EXTRA_PIDS=()   # the etcd members and the replicated Redis servers

log() { echo "peers: $*" >&2; }

# Stops whatever this script started; runs on every exit path.
cleanup() {
    if [ -n "$REDIS_PID" ] && kill -0 "$REDIS_PID" 2>/dev/null; then
        kill "$REDIS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$REDIS_PID" 2>/dev/null
    fi
    REDIS_PID=
    if [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ]; then
        "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1 ||
            kill -9 "$(head -1 "$PG_DATA/postmaster.pid")" 2>/dev/null
    fi
    PG_DATA=
    stop_pids
}

# SIGTERM to each of EXTRA_PIDS, SIGKILL to what is left after 5 s.
stop_pids() {
    local p
    [ "${#EXTRA_PIDS[@]}" -gt 0 ] || return 0
    for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for _ in $(seq 50); do
        local alive=
        for p in "${EXTRA_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -n "$alive" ] || break
        sleep 0.1
    done
    for p in "${EXTRA_PIDS[@]}"; do
        kill -9 "$p" 2>/dev/null
        { wait "$p"; } 2>/dev/null   # reaped quietly, no "Killed" line
    done
    EXTRA_PIDS=()
}
# A cluster directory made under /tmp (pg_dir_for_postgres) goes at exit.
PG_TMP=
cleanup_all() {
    cleanup
    [ -z "$PG_TMP" ] || rm -rf "$PG_TMP"
}
trap cleanup_all EXIT
trap 'cleanup_all; exit 130' INT TERM

# awk does the arithmetic: bash has no floating point.
calc() { awk "BEGIN { v = $1; if (v != v) print \"-\"; else printf \"%.${2:-2}f\", v }"; }

# Field k=v of the first line of $OUT that matches a pattern.
field() { grep -E -- "$1" "$OUT" | head -1 | tr ' ' '\n' | sed -n "s/^$2=//p"; }

emit() { echo "$*" | tee -a "$OUT"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# User + system CPU seconds of the given processes so far (all threads;
# fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the
# command name); empty when one is gone.
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
proc_cpu() {
    local p t=0 f
    for p in "$@"; do
        f=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
        f=${f##*) }
        set -- $f
        t=$((t + ${12} + ${13}))
    done
    calc "$t / $TICK" 3
}

rm -rf "$DIR"
mkdir -p "$DIR" || exit 1
log "data under $DIR, $SECS s per case, ${PEERS_RUNS:-3} runs"

# ---- 1. seqd ----
[ -x "$BENCH" ] && [ -x "$SEQD" ] || { log "build first: make seqd $BENCH"; exit 1; }
SEQD_RC=0
run_seqd() {
    rm -rf "$DIR/seqd"
    "$BENCH" --seqd "$SEQD" --dir "$DIR/seqd" --port "$SEQD_PORT" --fsync always \
        --cases 0:single,0:indep32,0:threads32,1024:indep32 --seconds "$SECS" --base-seconds 2 \
        --fetchproc 200 | tee -a "$OUT" | grep -E '^(BENCH|FETCHPROC|WARNING)'
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { log "bench_cluster exited $rc (see above)"; SEQD_RC=$rc; }
}

# ---- 2. the disk ----
# Also the floor of a quorum here: three writers on this one disk, time
# until two are durable (flushes of one device do not overlap).
run_disk() {
    "$BENCH" --raw-fsync 3 --dir "$DIR" | tee -a "$OUT"
    "$BENCH" --raw-quorum 3 --dir "$DIR" | tee -a "$OUT"
}

# ---- 3. Redis ----
# One redis-benchmark line of CSV -> PEER line. Its latencies are in ms.
redis_case() {
    local clients=$1 n=$2 line c0 c1 cpu=-
    c0=$(proc_cpu "$REDIS_PID")
    line=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$clients" -n "$n" --csv \
        INCRBY peers.k 1 2>/dev/null | tail -1)
    c1=$(proc_cpu "$REDIS_PID")
    [ -z "$c0" ] || [ -z "$c1" ] || cpu=$(calc "($c1 - $c0) * 1e6 / $n" 1)
    IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$(echo "$line" | tr -d '"')"
    if [ -z "${rps:-}" ] || [ -z "${p99:-}" ]; then
        log "redis-benchmark -c $clients gave no result: $line"
        return 1
    fi
    emit "PEER system=redis-always clients=$clients ids_per_s=$(calc "$rps" 0)" \
        "p50_us=$(calc "$p50*1000" 0) p99_us=$(calc "$p99*1000" 0) cpu_us_per_id=$cpu"
    [ "$clients" = 1 ] || emit "NOTE redis: appendfsync always writes and fsyncs once per event-loop" \
        "turn for every command of that turn (group commit), on one node"
}

run_redis() {
    command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null &&
        command -v redis-cli >/dev/null || { emit "SKIP redis: not installed (make deps-peers)"; return; }
    port_busy "$REDIS_PORT" && { emit "SKIP redis: port $REDIS_PORT busy"; return; }
    rm -rf "$DIR/redis"
    mkdir -p "$DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$DIR/redis" \
        --appendonly yes --appendfsync always --save '' --daemonize no \
        --protected-mode no --logfile "$DIR/redis/redis.log" &
    REDIS_PID=$!
    local up=
    for _ in $(seq 100); do
        [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && { up=1; break; }
        kill -0 "$REDIS_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$up" ] || { emit "SKIP redis: did not start (see $DIR/redis/redis.log)"; cleanup; return; }
    log "redis $(redis-server --version | awk '{print $3}') on port $REDIS_PORT," \
        "appendfsync $(redis-cli -p "$REDIS_PORT" config get appendfsync | tail -1)"
    # Size the runs from a short one, so that each lasts about $SECS.
    local c rps n
    for c in 1 32; do
        rps=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$c" -n $((c * 100 + 500)) --csv \
            INCRBY peers.warm 1 2>/dev/null | tail -1 | tr -d '"' | cut -d, -f2)
        n=$(calc "(${rps:-1000}) * $SECS" 0)
        [ "$n" -ge 1000 ] 2>/dev/null || n=1000
        redis_case "$c" "$n"
    done
    local p
    p=$("$BENCH" --time-cmd 200 -- redis-cli -p "$REDIS_PORT" INCR peers.proc | grep '^PROC')
    if [ -n "$p" ]; then
        local med p99
        med=$(echo "$p" | tr ' ' '\n' | sed -n 's/^median_us=//p')
        p99=$(echo "$p" | tr ' ' '\n' | sed -n 's/^p99_us=//p')
        emit "PEER system=redis-cli clients=1 ids_per_s=$(calc "1e6/$med" 0) p50_us=$med p99_us=$p99"
        emit "REDISCLIPROC ${p#PROC }"
    else
        emit "SKIP redis-cli: could not be timed"
    fi
    cleanup
}

# ---- 4. PostgreSQL ----
# pgbench -l writes one line per transaction: client, number, latency in
# µs, ...; the percentiles come from there (its summary has only the mean).
pg_case() {
    local clients=$1 jobs=$(( $1 > 1 ? 2 : 1 )) outp tps
    rm -f "$DIR/pglog/pgb"*
    outp=$(pgbench -h "$PG_DIR" -p "$PG_PORT" -U postgres -n -f "$DIR/pglog/nextval.sql" \
        -c "$clients" -j "$jobs" -T "$SECS" -l --log-prefix="$DIR/pglog/pgb" postgres 2>&1)
    tps=$(echo "$outp" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    if [ -z "$tps" ]; then
        log "pgbench -c $clients failed: $outp"
        return 1
    fi
    local lat
    lat=$(cat "$DIR/pglog/pgb"* | awk '{print $3}' | sort -n | awk '
        { v[NR] = $1 }
        END { if (NR == 0) { print "- -"; exit }
              i50 = int(0.50 * NR + 0.999999); i99 = int(0.99 * NR + 0.999999);
              print v[i50], v[i99] }')
    emit "PEER system=postgres clients=$clients ids_per_s=$(calc "$tps" 0)" \
        "p50_us=${lat% *} p99_us=${lat#* }"
}

# PostgreSQL refuses to run as root, and user postgres must reach its data
# directory: a clone under /root (mode 700) is out of its reach. Then the
# cluster goes to a fresh directory under /tmp, if /tmp is on the same file
# system as the bench data (so the disk is the same); otherwise skip.
pg_dir_for_postgres() {
    chown postgres "$PG_DIR"
    runuser -u postgres -- test -w "$PG_DIR" 2>/dev/null && return 0
    if [ "$(stat -c %d /tmp)" != "$(stat -c %d "$DIR")" ]; then
        emit "SKIP postgres: user postgres cannot reach $DIR and /tmp is another file system" \
            "(set BENCH_DIR to a directory it can traverse)"
        return 1
    fi
    [ -n "$PG_TMP" ] || PG_TMP=$(mktemp -d /tmp/seqd-peers-pg.XXXXXX) || return 1
    chmod 755 "$PG_TMP"
    PG_DIR=$PG_TMP/pg
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR" && chown postgres "$PG_DIR"
    log "user postgres cannot reach $DIR; its cluster goes to $PG_DIR (same file system)"
}

run_postgres() {
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || ! command -v pgbench >/dev/null; then
        emit "SKIP postgres: not installed (make deps-peers)"
        return
    fi
    port_busy "$PG_PORT" && { emit "SKIP postgres: port $PG_PORT busy"; return; }
    PG_DIR=$DIR/pg
    rm -rf "$PG_DIR"
    mkdir -p "$PG_DIR" "$DIR/pglog"
    PG_AS=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { emit "SKIP postgres: running as root and no user postgres"; return; }
        pg_dir_for_postgres || return
        PG_AS=(runuser -u postgres --)
    fi
    if ! "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust \
        >"$DIR/pglog/initdb.log" 2>&1; then
        emit "SKIP postgres: initdb failed (see $DIR/pglog/initdb.log)"
        return
    fi
    PG_DATA=$PG_DIR/data
    if ! "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/server.log" -w -t 30 \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses='' -c fsync=on -c synchronous_commit=on -c max_connections=100" \
        start >/dev/null 2>&1; then
        emit "SKIP postgres: did not start (see $PG_DIR/server.log)"
        cleanup
        return
    fi
    log "postgres $("$PG_BIN/postgres" --version | awk '{print $3}') on $PG_DIR port $PG_PORT"
    psql -h "$PG_DIR" -p "$PG_PORT" -U postgres -qAt -c 'CREATE SEQUENCE s' postgres >/dev/null ||
        { emit "SKIP postgres: CREATE SEQUENCE failed"; cleanup; return; }
    echo "SELECT nextval('s');" >"$DIR/pglog/nextval.sql"
    pg_case 1
    pg_case 32
    emit "NOTE postgres: nextval() WAL-logs a sequence once per 32 values (SEQ_LOG_VALS)," \
        "so most calls commit without waiting for a flush: not one fsync per ID"
    cleanup
}

# ---- 5. etcd v3, three members ----
# Fresh members each run (data under $DIR/etcd, the bench's file system),
# then the CAS counter from 1 and 32 clients on fresh keys.
run_etcd() {
    command -v etcd >/dev/null || { emit "SKIP etcd3: not installed (make deps-peers)"; return; }
    [ -x "$DRIVER" ] || { emit "SKIP etcd3: no $DRIVER (make $DRIVER)"; return; }
    local i cp pp ic= eps= up= pids=
    for i in 0 1 2; do
        cp=$((ETCD_PORT + i)); pp=$((ETCD_PORT + 10 + i))
        port_busy "$cp" || port_busy "$pp" && { emit "SKIP etcd3: port $cp or $pp busy"; return; }
        ic+="${ic:+,}e$i=http://127.0.0.1:$pp"
        eps+="${eps:+,}127.0.0.1:$cp"
    done
    rm -rf "$DIR/etcd"
    mkdir -p "$DIR/etcd"
    for i in 0 1 2; do
        cp=$((ETCD_PORT + i)); pp=$((ETCD_PORT + 10 + i))
        etcd --name "e$i" --data-dir "$DIR/etcd/e$i" \
            --listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
            --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
            --initial-cluster "$ic" --initial-cluster-state new --initial-cluster-token seqd-peers \
            --logger zap --log-outputs stderr >"$DIR/etcd/e$i.log" 2>&1 &
        EXTRA_PIDS+=($!)
    done
    pids=$(IFS=,; echo "${EXTRA_PIDS[*]}")
    for _ in $(seq 150); do
        if command -v etcdctl >/dev/null; then
            ETCDCTL_API=3 etcdctl --endpoints "$eps" --command-timeout 1s endpoint health \
                >/dev/null 2>&1 && { up=1; break; }
        elif [ "$(curl -s "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null)" = '{"health":"true"}' ]; then
            up=1; break
        fi
        sleep 0.1
    done
    [ -n "$up" ] || { emit "SKIP etcd3: did not start (see $DIR/etcd/e*.log)"; stop_pids; return; }
    log "etcd $(etcd --version | awk '/^etcd Version/ {print $3}') on $eps"
    local c line
    for c in 1 32; do
        if line=$("$DRIVER" --system etcd3 --etcd "$eps" --clients "$c" --seconds "$SECS" \
            --key "peers.c$c" --pids "$pids"); then
            emit "$line"
        else
            emit "SKIP etcd3 clients=$c: the driver failed: $line"
        fi
    done
    emit "NOTE etcd3: one ID = one successful compare-and-swap Txn; with 32 clients on one key" \
        "most attempts conflict (attempts_per_id), each attempt a Raft write all the same"
    stop_pids
}

# ---- 6. Redis, a master and two replicas ----
run_redis_repl() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
        { emit "SKIP redis-repl: not installed (make deps-peers)"; return; }
    [ -x "$DRIVER" ] || { emit "SKIP redis-repl: no $DRIVER (make $DRIVER)"; return; }
    local m=$((REDIS_PORT + 1)) i p up= pids
    for p in $m $((m + 1)) $((m + 2)); do
        port_busy "$p" && { emit "SKIP redis-repl: port $p busy"; return; }
    done
    rm -rf "$DIR/redis-repl"
    for i in 0 1 2; do
        p=$((m + i))
        mkdir -p "$DIR/redis-repl/r$i"
        redis-server --port "$p" --bind 127.0.0.1 --dir "$DIR/redis-repl/r$i" \
            --appendonly yes --appendfsync always --save '' --daemonize no \
            --protected-mode no --logfile "$DIR/redis-repl/r$i.log" \
            $([ "$i" = 0 ] || echo --replicaof 127.0.0.1 "$m") &
        EXTRA_PIDS+=($!)
    done
    pids=$(IFS=,; echo "${EXTRA_PIDS[*]}")
    # Up when both replicas are online (synced): WAIT means something then.
    for _ in $(seq 150); do
        [ "$(redis-cli -p "$m" info replication 2>/dev/null | grep -c 'state=online')" = 2 ] &&
            { up=1; break; }
        sleep 0.1
    done
    [ -n "$up" ] || { emit "SKIP redis-repl: replicas not online (see $DIR/redis-repl/r*.log)"; stop_pids; return; }
    log "redis-repl: master on $m, replicas on $((m + 1)) and $((m + 2)), appendfsync always on all"
    local c line
    for c in 1 32; do
        if line=$("$DRIVER" --system redis-repl --redis "127.0.0.1:$m" --clients "$c" \
            --seconds "$SECS" --key "peers.c$c" --pids "$pids" --wait-replicas 1 --wait-timeout 1000); then
            emit "$line"
        else
            emit "SKIP redis-repl clients=$c: the driver failed: $line"
        fi
    done
    emit "NOTE redis-repl: INCR then WAIT 1 1000 per ID: durable on the master (appendfsync" \
        "always) and acknowledged by one replica, which fsyncs its AOF before it acks"
    stop_pids
}

# ---- the runs, then the median of each figure over them ----
# Runs interleave the systems (seqd, disk, Redis, PostgreSQL, etcd,
# replicated Redis, then again),
# so that a noisy minute on this shared machine hits all of them alike.
# Each run's lines are kept in run<k>.txt and shown prefixed "run<k>";
# results.txt gets one line per case with the median of every figure (and
# FETCHPROC's failures summed).
median_lines() {
    awk '
    BEGIN { split("target fsync buf clients system", w, " "); for (j in w) what[w[j]] = 1 }
    /^(BENCH|PEER|FETCHPROC|FLOOR) / {
        if ($0 ~ / check=FAILED/) next
        key = $1; nnum = 0
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (!(kv[1] in what) && kv[2] ~ /^[0-9.]+$/) continue
            key = key " " $i
        }
        if (!(key in seen)) { seen[key] = ++nkeys; order[nkeys] = key; line[key] = $0 }
        n[key]++
        for (i = 2; i <= NF; i++) {
            split($i, kv, "=")
            if (!(kv[1] in what) && kv[2] ~ /^[0-9.]+$/) {
                val[key, i, n[key]] = kv[2] + 0
                d = index(kv[2], ".") ? length(kv[2]) - index(kv[2], ".") : 0
                if (d > dec[key, i]) dec[key, i] = d   # a median keeps the decimals given
            }
        }
    }
    function total(key, i,    j, t) { for (j = 1; j <= n[key]; j++) t += val[key, i, j]; return t }
    function median(key, i,    m, a, j, k, t) {
        m = n[key]
        for (j = 1; j <= m; j++) a[j] = val[key, i, j]
        for (j = 2; j <= m; j++) { t = a[j]; for (k = j - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
        return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    END {
        for (o = 1; o <= nkeys; o++) {
            key = order[o]; nf = split(line[key], f, " "); out = f[1]
            for (i = 2; i <= nf; i++) {
                split(f[i], kv, "=")
                if (!(kv[1] in what) && kv[2] ~ /^[0-9.]+$/ && (key, i, 1) in val) out = out " " kv[1] "=" sprintf("%." (dec[key, i] + 0) "f", kv[1] == "failures" ? total(key, i) : median(key, i))
                else out = out " " f[i]
            }
            print out
        }
    }' "$@"
}

RUNS=${PEERS_RUNS:-3}
for k in $(seq "$RUNS"); do
    log "run $k of $RUNS"
    OUT=$DIR/run$k.txt
    : >"$OUT"
    # Not a pipeline: the runs must stay in this shell, where the exit
    # trap can see what they started. The prefixing sed's pid is taken at
    # once: the runs start servers in the background, which resets $!.
    exec 3> >(sed -u "s/^/run$k /")
    SED_PID=$!
    { run_seqd; run_disk; run_redis; run_postgres; run_etcd; run_redis_repl; } >&3 2>&3
    exec 3>&-
    wait "$SED_PID"
done
OUT=$DIR/results.txt
: >"$OUT"
echo
echo "Medians over $RUNS runs (each figure on its own):"
median_lines "$DIR"/run*.txt | tee -a "$OUT"
grep -h -E '^(SKIP|NOTE|REDISCLIPROC)' "$DIR"/run1.txt | sort -u | tee -a "$OUT"

# ---- 5. side by side ----
num() { local v; v=$(field "$1" "$2"); [ -n "$v" ] && [ "$v" != - ] && echo "$v" || echo nan; }
ratio() {  # name, numerator, denominator, what it means
    local r=-
    if [ "$2" != nan ] && [ "$3" != nan ] && [ "$(calc "$3 > 0" 0)" = 1 ]; then
        r=$(calc "$2 / $3" 2)
    fi
    emit "RATIO $1=$r  # $4"
}
S0=$(num 'target=cluster fsync=always buf=0 clients=single' ids_per_s)
S0P50=$(num 'target=cluster fsync=always buf=0 clients=single' p50_us)
SI=$(num 'target=cluster fsync=always buf=0 clients=indep32' ids_per_s)
ST=$(num 'target=cluster fsync=always buf=0 clients=threads32' ids_per_s)
SB=$(num 'target=cluster fsync=always buf=1024 clients=indep32' ids_per_s)
BB=$(num 'target=baseline fsync=- buf=1024 clients=indep32' ids_per_s)
FP=$(num '^FETCHPROC' median_us)
R32=$(num '^PEER system=redis-always clients=32' ids_per_s)
R1=$(num '^PEER system=redis-always clients=1 ' ids_per_s)
P32=$(num '^PEER system=postgres clients=32' ids_per_s)
FD=$(num '^PEER system=fdatasync' p50_us)
FQ=$(num '^FLOOR system=fdatasync-2of3' p50_us)
RC=$(num '^PEER system=redis-cli' p50_us)
E1=$(num '^PEER system=etcd3 clients=1 ' ids_per_s)
E32=$(num '^PEER system=etcd3 clients=32 ' ids_per_s)
RR1=$(num '^PEER system=redis-repl clients=1 ' ids_per_s)
RR32=$(num '^PEER system=redis-repl clients=32 ' ids_per_s)
SICPU=$(num 'target=cluster fsync=always buf=0 clients=indep32' cpu_us_per_id)
R32CPU=$(num '^PEER system=redis-always clients=32' cpu_us_per_id)
E32CPU=$(num '^PEER system=etcd3 clients=32 ' cpu_us_per_id)
RR32CPU=$(num '^PEER system=redis-repl clients=32 ' cpu_us_per_id)
echo
ratio seqd_buf0_indep32_vs_redis_always_32 "$SI" "$R32" "ids/s; above 1: seqd hands out more"
ratio seqd_buf0_threads32_vs_redis_always_32 "$ST" "$R32" "ids/s; a thread and a blocking client each"
ratio seqd_buf0_single_vs_redis_always_1 "$S0" "$R1" "ids/s"
ratio seqd_buf0_indep32_vs_postgres_32 "$SI" "$P32" "ids/s"
ratio seqd_buf0_single_p50_vs_fdatasync_p50 "$S0P50" "$FD" "latency; the disk's floor is 1"
ratio seqd_buf0_single_p50_vs_quorum_floor "$S0P50" "$FQ" "latency; 2 of 3 fdatasyncs on this one disk is 1"
ratio seqd_fetch_process_vs_redis_cli "$FP" "$RC" "median latency of one command run"
ratio seqd_buf1024_indep32_vs_baseline "$SB" "$BB" "ids/s; the in-process counter is 1"
ratio seqd_buf0_indep32_vs_etcd3_32 "$SI" "$E32" "ids/s; aim >= 10"
ratio seqd_buf0_single_vs_etcd3_1 "$S0" "$E1" "ids/s"
ratio seqd_buf0_indep32_vs_redis_repl_32 "$SI" "$RR32" "ids/s; aim >= 1.0"
ratio seqd_buf0_single_vs_redis_repl_1 "$S0" "$RR1" "ids/s"
ratio seqd_cpu_per_id_indep32_vs_redis_always_32 "$SICPU" "$R32CPU" \
    "server CPU per ID, three members vs one redis-server; aim <= 2.0"
ratio seqd_cpu_per_id_indep32_vs_redis_repl_32 "$SICPU" "$RR32CPU" "server CPU per ID, both three processes"
ratio etcd3_32_cpu_per_id_vs_seqd_indep32 "$E32CPU" "$SICPU" "server CPU per ID, both three processes: etcd's over seqd's"
# The data of the peers is big and useless once measured; logs stay.
rm -rf "$DIR/pg/data" "$DIR/redis/appendonlydir" "$DIR"/etcd/e*/ "$DIR"/redis-repl/r*/
log "all figures in $OUT"
exit "$SEQD_RC"
