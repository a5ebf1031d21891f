#!/usr/bin/env bash
# tests/test_install.sh — `make install` as a user of it sees it (run by
# `make test-install`, part of `make test`; ~10 s):
#
#  1. make install DESTDIR=$tmp PREFIX=/usr: exactly the expected files,
#     and no file holds the string $tmp (DESTDIR never leaks inside);
#  2. the installed seqd says the VERSION, and debian/changelog agrees;
#  3. libseqd exports exactly the public API: nm -D of libseqd.so, the
#     globals of libseqd.a, client/libseqd.map and the functions declared
#     by the installed headers are one set; the soname is libseqd.so.0;
#  4. tests/install/prog.c, built from the installed headers and library
#     only (`#include <seqd/client.h>`, pkg-config seqd; -Werror -pedantic
#     -DNDEBUG), shared and static, fetches from a one-member cluster run
#     by the installed binary under a stand-in notify socket — which must
#     see STATUS= first, READY=1 only after `seqd init`, STOPPING=1 at
#     SIGTERM;
#  5. seqd.1 describes every command and each command's options (as
#     `seqd CMD --help` lists them), and man finds nothing to warn about;
#  6. the unit passes systemd-analyze verify (when systemd-analyze exists);
#  7. make uninstall leaves nothing behind.
#
# Environment: MAKE, SEQD_SDNOTIFY_LISTEN (tests/tools/sdnotify_listen,
# built by `make tools`), SEQD_KEEP_TEST_DIRS=1 keeps $tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
LISTEN_TOOL=${SEQD_SDNOTIFY_LISTEN:-build/tools/sdnotify_listen}
tmp=$(mktemp -d /tmp/seqd-install-XXXXXX)
dest=$tmp/dest
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${SEQD_KEEP_TEST_DIRS:-}" ]; then echo "test_install: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
fail() { echo "test_install: FAIL: $*" >&2; exit 1; }
ok() { echo "test_install: ok: $*"; }

# ---- 1. the file list, and no DESTDIR inside ------------------------------
$MAKE -s install DESTDIR="$dest" PREFIX=/usr >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "make install"; }
version=$(cat VERSION)
expected="/etc/default/seqd
/usr/bin/seqd
/usr/include/seqd/client.h
/usr/include/seqd/client_async.h
/usr/include/seqd/proto.h
/usr/include/seqd/stream.h
/usr/lib/libseqd.a
/usr/lib/libseqd.so -> libseqd.so.0
/usr/lib/libseqd.so.0 -> libseqd.so.$version
/usr/lib/libseqd.so.$version
/usr/lib/pkgconfig/seqd.pc
/usr/lib/systemd/system/seqd.service
/usr/lib/sysusers.d/seqd.conf
/usr/share/man/man1/seqd.1"
listing() {
    (cd "$dest" && { find . -type f -printf '/%P\n'; find . -type l -printf '/%P -> %l\n'; } | sort)
}
got=$(listing)
[ "$got" = "$expected" ] || fail "installed files differ from the expected list:
$(diff <(echo "$expected") <(echo "$got") || true)"
ok "make install: $(echo "$got" | wc -l) files, as expected"
if leaks=$(grep -rlF -- "$dest" "$dest"); then fail "DESTDIR ($dest) written inside: $leaks"; fi
grep -q '^ExecStart=/usr/bin/seqd serve ' "$dest/usr/lib/systemd/system/seqd.service" ||
    fail "the unit's ExecStart is not the installed binary"
ok "no installed file holds DESTDIR; the unit runs /usr/bin/seqd"

# ---- 2. one version ------------------------------------------------------
seqd=$dest/usr/bin/seqd
[ "$("$seqd" --version)" = "seqd $version (protocol 1)" ] || fail "seqd --version: $("$seqd" --version)"
if [ -f debian/changelog ]; then
    deb=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
    [ "${deb%-*}" = "$version" ] || fail "debian/changelog says $deb, VERSION says $version"
fi
grep -q "^Version: $version\$" "$dest/usr/lib/pkgconfig/seqd.pc" || fail "seqd.pc's Version"
ok "version $version in seqd --version, seqd.pc${deb:+, debian/changelog ($deb)}"

# ---- 3. exported symbols = the public API --------------------------------
so=$dest/usr/lib/libseqd.so.$version
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libseqd.so.0 ] || fail "soname is '$soname'"
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVWi]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/syms.so"
nm -g --defined-only "$dest/usr/lib/libseqd.a" | awk 'NF == 3 {print $3}' | sort -u >"$tmp/syms.a"
sed -n 's/^ *\([a-z_][a-z_0-9]*\);$/\1/p' client/libseqd.map | sort -u >"$tmp/syms.map"
# Declarations at column 0 of the installed headers (proto.h holds only
# static inline helpers): "type name(" on a line that is not a typedef.
for h in client.h client_async.h stream.h; do
    grep -E '^[a-z][a-z_0-9 ]*[ *]+[a-z_][a-z_0-9]*\(' "$dest/usr/include/seqd/$h" | grep -v '^typedef'
done | sed -E 's/^[^(]*[ *]([a-z_][a-z_0-9]*)\(.*/\1/' | sort -u >"$tmp/syms.h"
for k in so a map; do
    cmp -s "$tmp/syms.h" "$tmp/syms.$k" ||
        fail "the headers' functions and libseqd ($k) differ:
$(diff "$tmp/syms.h" "$tmp/syms.$k" || true)"
done
ok "libseqd.so (soname $soname) and libseqd.a export the $(wc -l <"$tmp/syms.h") functions the headers declare, nothing else"

# ---- 4. a program built from what is installed, against the installed seqd
export PKG_CONFIG_PATH=$dest/usr/lib/pkgconfig
pc="pkg-config --define-variable=prefix=$dest/usr"
cflags="-std=c11 -Wall -Wextra -Werror -pedantic -DNDEBUG $($pc --cflags seqd)"
cc $cflags -o "$tmp/prog" tests/install/prog.c $($pc --libs seqd) $(pkg-config --libs libevent) ||
    fail "building against the installed headers and libseqd.so"
cc $cflags -o "$tmp/prog-static" tests/install/prog.c \
    $($pc --static --libs seqd | sed 's/-lseqd\b/-l:libseqd.a/') ||
    fail "building against the installed libseqd.a"
# ldd's output taken whole first: `ldd | grep -q` under pipefail fails when
# grep's early exit kills ldd with SIGPIPE (a flake seen in CI).
libs=$(LD_LIBRARY_PATH=$dest/usr/lib ldd "$tmp/prog")
grep -q "libseqd.so.0 => $dest/usr/lib/libseqd.so.0" <<<"$libs" ||
    fail "prog does not load the installed libseqd.so.0"
libs=$(ldd "$tmp/prog-static")
! grep -q libseqd <<<"$libs" || fail "prog-static still needs libseqd.so"
ok "prog.c builds from <seqd/client.h> + pkg-config seqd (shared and static, -pedantic -DNDEBUG)"

[ -x "$LISTEN_TOOL" ] || fail "$LISTEN_TOOL missing (make tools)"
"$LISTEN_TOOL" "$tmp/notify" 60 >"$tmp/notify.txt" & pids+=($!)
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
serve_pid=
for try in 1 2 3 4 5; do
    # Below the demo cluster's 19001..19003, the test harness's ports
    # (tests/procs.c: 20000..31999) and the kernel's ephemeral range.
    port=$((12000 + (RANDOM % 7000)))
    port_in_use "$port" && continue
    NOTIFY_SOCKET=$tmp/notify "$seqd" serve --listen "127.0.0.1:$port" --data "$tmp/data" \
        --round-timeout 100 >"$tmp/serve.log" 2>&1 &
    serve_pid=$!
    for _ in $(seq 50); do grep -q 'STATUS=' "$tmp/notify.txt" && break; sleep 0.1; done
    kill -0 "$serve_pid" 2>/dev/null && break
    serve_pid=
done
[ -n "$serve_pid" ] || fail "seqd serve did not start: $(cat "$tmp/serve.log")"
pids+=("$serve_pid")
servers=127.0.0.1:$port
sleep 0.5   # 2R and more: long enough to say READY=1 if it wrongly would
first=$(head -n 1 "$tmp/notify.txt")
case $first in STATUS=recovering*) ;; *) fail "first notification '$first', want STATUS=recovering";; esac
! grep -q READY=1 "$tmp/notify.txt" || fail "READY=1 before seqd init"
"$seqd" init --servers "$servers" >"$tmp/init.txt" || fail "seqd init: $(cat "$tmp/init.txt")"
for _ in $(seq 50); do grep -q READY=1 "$tmp/notify.txt" && break; sleep 0.1; done
grep -q '^READY=1 STATUS=ready' "$tmp/notify.txt" || fail "no READY=1 after init: $(cat "$tmp/notify.txt")"

LD_LIBRARY_PATH=$dest/usr/lib "$tmp/prog" "$servers" >"$tmp/prog.txt" || fail "prog: $(cat "$tmp/prog.txt")"
"$tmp/prog-static" "$servers" >"$tmp/prog-static.txt" || fail "prog-static"
want="fetch 1
stream 1 2 3 4 5
async 1"
[ "$(cat "$tmp/prog.txt")" = "$want" ] || fail "prog printed: $(cat "$tmp/prog.txt")"
# The second program's fetches come after the first's: higher IDs (its
# stream starts past whatever the first one's had buffered: a gap).
set -- $(sed -n 's/^stream //p' "$tmp/prog-static.txt")
[ "$#" = 5 ] && [ "$1" -gt 5 ] && [ "$2" -gt "$1" ] && [ "$3" -gt "$2" ] && [ "$4" -gt "$3" ] &&
    [ "$5" -gt "$4" ] && [ "$(sed -n 1p "$tmp/prog-static.txt")" = "fetch 4" ] &&
    [ "$(sed -n 3p "$tmp/prog-static.txt")" = "async 3" ] ||
    fail "prog-static printed: $(cat "$tmp/prog-static.txt")"
kill -TERM "$serve_pid"
rc=0; wait "$serve_pid" || rc=$?
[ "$rc" = 0 ] || fail "seqd serve exited $rc after SIGTERM"
for _ in $(seq 20); do grep -q STOPPING=1 "$tmp/notify.txt" && break; sleep 0.1; done
[ "$(sed -n '3p' "$tmp/notify.txt")" = "STOPPING=1 STATUS=stopping: finishing requests, making the log durable" ] ||
    fail "notifications: $(cat "$tmp/notify.txt")"
ok "the installed seqd says STATUS=, READY=1 after init, STOPPING=1; prog got IDs over the client, stream and async APIs"

# ---- 5. the man page -----------------------------------------------------
man1=$dest/usr/share/man/man1/seqd.1
commands=$("$seqd" --help | sed -n '/^commands:/,/^$/s/^  \([a-z]*\) .*/\1/p')
[ -n "$commands" ] || fail "no commands in seqd --help"
n=0
for cmd in $commands; do
    # This command's section of the page: from its .SS to the next .SS/.SH.
    section=$(awk -v h=".SS \"seqd $cmd\"" '$0 == h {on = 1; next} on && /^\.S[SH] / {exit} on' "$man1")
    [ -n "$section" ] || fail "seqd.1 has no section for '$cmd'"
    for opt in $("$seqd" "$cmd" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
        grep -qF -- "\\fB${opt//-/\\-}\\fR" <<<"$section" ||
            fail "seqd.1 does not describe $cmd $opt"
        n=$((n + 1))
    done
done
for opt in --help --version --man; do grep -qF -- "${opt//-/\\-}" "$man1" || fail "seqd.1 lacks $opt"; done
for sect in NAME SYNOPSIS DESCRIPTION COMMANDS '"EXIT STATUS"' ENVIRONMENT FILES EXAMPLES; do
    grep -q "^\.SH $sect\$" "$man1" || fail "seqd.1 lacks .SH $sect"
done
warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man1" 2>&1 >/dev/null || true)
[ -z "$warnings" ] || fail "man --warnings: $warnings"
ok "seqd.1: $(echo $commands | wc -w) commands, $n command options, exit status, files, examples; no man warnings"

# ---- 6. the unit ---------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart's binary and the man page exist on this
    # host: a copy pointing into DESTDIR, with MANPATH, checks the same unit.
    mkdir -p "$tmp/unit"
    sed "s|^ExecStart=/usr/bin/seqd|ExecStart=$seqd|" "$dest/usr/lib/systemd/system/seqd.service" \
        >"$tmp/unit/seqd.service"
    out=$(MANPATH=$dest/usr/share/man systemd-analyze verify "$tmp/unit/seqd.service" 2>&1) ||
        fail "systemd-analyze verify: $out"
    [ -z "$out" ] || fail "systemd-analyze verify: $out"
    ok "systemd-analyze verify seqd.service: clean"
else
    echo "test_install: skipped: systemd-analyze verify (no systemd-analyze here)"
fi

# ---- 7. uninstall --------------------------------------------------------
$MAKE -s uninstall DESTDIR="$dest" PREFIX=/usr >"$tmp/uninstall.log" 2>&1 || { cat "$tmp/uninstall.log"; fail "make uninstall"; }
left=$(listing)
[ -z "$left" ] || fail "make uninstall left: $left"
ok "make uninstall removed every file"
