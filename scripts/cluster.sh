#!/usr/bin/env bash
# scripts/cluster.sh — run a local three-member seqd cluster.
#
#   scripts/cluster.sh start    start 127.0.0.1:19001..19003; returns once all are ready
#   scripts/cluster.sh status   each member up/down (exit 0 when all are up and ready)
#   scripts/cluster.sh stop     graceful stop (SIGTERM, then SIGKILL after a bound)
#   scripts/cluster.sh demo     start, fetch IDs from each member in turn, show status
#
# Data, logs and pid files live under ${SEQD_DATA:-./.seqd-cluster}:
# node1/ (data directory), node1.log, node1.pid, ... The binary is ./seqd
# at the repository root (built with `make` if missing). Environment:
#   SEQD_DATA           where the cluster lives (default ./.seqd-cluster)
#   SEQD_START_TIMEOUT  seconds `start` waits for readiness (default 30)
#   SEQD_STOP_TIMEOUT   seconds `stop` waits before SIGKILL (default 10)
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEQD=$ROOT/seqd
DATA=${SEQD_DATA:-./.seqd-cluster}
START_TIMEOUT=${SEQD_START_TIMEOUT:-30}
STOP_TIMEOUT=${SEQD_STOP_TIMEOUT:-10}
ADDRS=(127.0.0.1:19001 127.0.0.1:19002 127.0.0.1:19003)
SERVERS=$(IFS=,; echo "${ADDRS[*]}")

die() { echo "cluster.sh: $*" >&2; exit 1; }

# The binary is built on demand so that `scripts/cluster.sh demo` works
# right after a clone.
need_binary() {
    if [ ! -x "$SEQD" ]; then
        echo "building $SEQD ..."
        make -C "$ROOT" >/dev/null || die "make failed; run 'make' in $ROOT to see why"
        [ -x "$SEQD" ] || die "make did not produce $SEQD"
    fi
}

# Absolute, so that pid files and --data stay valid whatever the cwd of a
# later call.
data_dir() {
    mkdir -p "$DATA" || die "cannot create $DATA"
    DATA=$(cd "$DATA" && pwd)
}

# Prints the pid of member i (1-based) if it is running, else nothing. A
# stale pid file (reboot, kill -9) or a reused pid is not a member.
member_pid() {
    local f="$DATA/node$1.pid" pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f" 2>/dev/null)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "serve --listen ${ADDRS[$(($1 - 1))]}" \
        || return 1
    echo "$pid"
}

peers_of() {
    local i=$1 k out=""
    for k in 0 1 2; do
        [ "$k" -eq $((i - 1)) ] && continue
        out="${out:+$out,}${ADDRS[$k]}"
    done
    echo "$out"
}

# On a failed start the members that did come up are left running for
# inspection; the last line says how to clean up.
print_logs() {
    local i
    for i in 1 2 3; do
        echo "--- node$i (${ADDRS[$((i - 1))]}) $DATA/node$i.log, last lines:" >&2
        if [ -f "$DATA/node$i.log" ]; then
            tail -n 15 "$DATA/node$i.log" >&2
        else
            echo "(no log)" >&2
        fi
    done
    echo "(members still running, if any: $0 stop)" >&2
}

all_ready() {
    "$SEQD" status --servers "$SERVERS" >/dev/null 2>&1
}

cmd_start() {
    need_binary
    data_dir
    local i pid started=0
    for i in 1 2 3; do
        if pid=$(member_pid "$i"); then
            echo "node$i ${ADDRS[$((i - 1))]} already running (pid $pid)"
            continue
        fi
        nohup "$SEQD" serve --listen "${ADDRS[$((i - 1))]}" --data "$DATA/node$i" \
            --peers "$(peers_of "$i")" >>"$DATA/node$i.log" 2>&1 </dev/null &
        echo $! >"$DATA/node$i.pid"
        echo "node$i ${ADDRS[$((i - 1))]} started (pid $!, log $DATA/node$i.log)"
        started=1
    done
    local deadline=$((SECONDS + START_TIMEOUT)) inited=0 out
    # A cluster is born only by `seqd init` (DESIGN.md §3); on a cluster
    # that exists already it says "already initialized" and changes nothing.
    while ! all_ready; do
        if [ "$inited" -eq 0 ] && out=$("$SEQD" init --servers "$SERVERS" --timeout 1000 2>&1); then
            echo "$out"
            inited=1
        fi
        for i in 1 2 3; do
            if ! member_pid "$i" >/dev/null; then
                echo "cluster.sh: node$i (${ADDRS[$((i - 1))]}) exited during start" >&2
                print_logs
                exit 1
            fi
        done
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "cluster.sh: cluster not ready after ${START_TIMEOUT}s:" >&2
            "$SEQD" status --servers "$SERVERS" >&2
            print_logs
            exit 1
        fi
        sleep 0.2
    done
    if [ "$started" -eq 0 ]; then
        echo "cluster already running and ready: $SERVERS"
    else
        echo "cluster ready: $SERVERS"
    fi
}

cmd_status() {
    need_binary
    data_dir
    local i pid line ok=0 out
    out=$("$SEQD" status --servers "$SERVERS" 2>&1)
    for i in 1 2 3; do
        local a=${ADDRS[$((i - 1))]}
        line=$(printf '%s\n' "$out" | grep -F "$a " | head -n 1)
        if pid=$(member_pid "$i"); then
            case "$line" in
            "$a ready "*) echo "node$i up   pid $pid  $line" ;;
            *) echo "node$i up   pid $pid  ${line:-$a (no status)}"; ok=1 ;;
            esac
        else
            echo "node$i down          ${line:-$a}"
            ok=1
        fi
    done
    return $ok
}

cmd_stop() {
    data_dir
    local i pid pids=() any=0
    for i in 1 2 3; do
        if pid=$(member_pid "$i"); then
            kill -CONT "$pid" 2>/dev/null
            kill -TERM "$pid" 2>/dev/null
            pids[i]=$pid
            any=1
        else
            rm -f "$DATA/node$i.pid"
        fi
    done
    if [ "$any" -eq 0 ]; then
        echo "cluster not running"
        return 0
    fi
    local deadline=$((SECONDS + STOP_TIMEOUT))
    for i in 1 2 3; do
        pid=${pids[$i]:-}
        [ -n "$pid" ] || continue
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "node$i (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        else
            echo "node$i stopped"
        fi
        rm -f "$DATA/node$i.pid"
    done
}

# Shows a command, then runs it.
show() {
    echo "\$ $*"
    "$@"
    echo
}

cmd_demo() {
    cmd_start || exit 1
    echo
    local i s=./seqd
    [ "$(pwd)" = "$ROOT" ] || s=$SEQD
    for i in 1 2 3; do
        show "$s" fetch --servers "${ADDRS[$((i - 1))]}" --count 3 demo
    done
    show "$s" fetch --servers "$SERVERS" --count 1000 --range demo
    show "$s" fetch --servers "${ADDRS[2]}" --range --count 1000000 demo
    show "$s" status --servers "$SERVERS"
    echo "Any member serves any client; IDs keep increasing across members."
    echo "Try: kill -9 \$(cat $DATA/node1.pid); $s fetch --servers $SERVERS demo"
    echo "Stop the cluster with: $0 stop"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
demo) cmd_demo ;;
*)
    echo "usage: $0 start|stop|status|demo" >&2
    exit 2
    ;;
esac
