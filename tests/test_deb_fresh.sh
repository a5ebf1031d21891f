#!/usr/bin/env bash
# tests/test_deb_fresh.sh — the Debian packages on a fresh machine, for real
# (`make deb-fresh`; ~2 min, needs root, network to deb.debian.org,
# debootstrap and systemd-nspawn; not part of CI):
#
#  1. debootstrap a minimal Debian of this machine's release;
#  2. apt-get install ./seqd_*.deb ./libseqd0_*.deb ./libseqd-dev_*.deb
#     there (the seqd user must appear, seqd --version and man -w seqd work);
#  3. boot it (systemd-nspawn -b: systemd as PID 1) and, inside, start the
#     packaged unit with its shipped /etc/default/seqd: activating with a
#     STATUS= until `seqd init`, active (READY=1) after it, running as seqd
#     with no capabilities, NoNewPrivs and a seccomp filter; fetch; build
#     tests/install/prog.c against the installed -dev package and run it;
#     restart; then again with a secret in /etc/seqd/secret (the file
#     layout /etc/default/seqd describes); a usage error is not restarted;
#  4. prints the in-container log and says ok or FAIL.
#
# DEB_DIR (default build/deb) holds the .debs; SEQD_FRESH_ROOT keeps the
# tree (default: a temporary directory, removed afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
DEB_DIR=${DEB_DIR:-build/deb}
version=$(cat VERSION)
arch=$(dpkg --print-architecture)
for p in seqd libseqd0 libseqd-dev; do
    [ -f "$DEB_DIR/${p}_${version}_${arch}.deb" ] || { echo "test_deb_fresh: no $DEB_DIR/${p}_${version}_${arch}.deb (make deb)" >&2; exit 1; }
done
for tool in debootstrap systemd-nspawn; do
    command -v $tool >/dev/null || { echo "test_deb_fresh: skipped: no $tool (apt-get install debootstrap systemd-container)"; exit 0; }
done
codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
root=${SEQD_FRESH_ROOT:-$(mktemp -d /var/tmp/seqd-fresh-XXXXXX)}
mkdir -p "$root" && chmod 755 "$root"   # mktemp made it 0700: the container's / for every user
[ -n "${SEQD_FRESH_ROOT:-}" ] || trap 'rm -rf "$root"' EXIT
nspawn() { systemd-nspawn -q --register=no --keep-unit -D "$root" "$@"; }

echo "test_deb_fresh: debootstrap $codename into $root"
[ -x "$root/usr/bin/apt-get" ] ||
    debootstrap --variant=minbase "$codename" "$root" http://deb.debian.org/debian >"$root.debootstrap.log" 2>&1 ||
    { tail -n 20 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
mkdir -p "$root/root/debs" "$root/root/src"
cp "$DEB_DIR"/{seqd,libseqd0,libseqd-dev}_"${version}_${arch}".deb "$root/root/debs/"
cp tests/install/prog.c "$root/root/src/"
cp /etc/resolv.conf "$root/etc/resolv.conf"

echo "test_deb_fresh: apt-get install the packages (and gcc and pkg-config, for prog.c)"
nspawn --pipe sh -ec '
    # A kept tree (SEQD_FRESH_ROOT) starts over: no packages, no member state.
    dpkg --purge libseqd-dev libseqd0 seqd >/dev/null 2>&1 || true
    rm -rf /var/lib/seqd /etc/seqd
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./root/debs/*.deb gcc libc6-dev pkg-config >/root/apt.log 2>&1 ||
        { tail -n 30 /root/apt.log; exit 1; }
    id seqd
    seqd --version
    man -w seqd 2>/dev/null || test -f /usr/share/man/man1/seqd.1.gz
    dpkg -s seqd libseqd0 libseqd-dev | grep "^Status"
'

cat >"$root/root/selftest.sh" <<'EOF'
#!/bin/sh
# Runs inside the booted container; every check prints "check: ...".
exec >/root/selftest.log 2>&1
fail() { echo "check FAILED: $*"; echo FAIL >/root/selftest.result; systemctl poweroff; exit 1; }
prop() { systemctl show seqd -p "$1" --value; }
wait_state() {   # wait_state STATE: up to 10 s
    i=0; while [ "$(prop ActiveState)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    [ "$(prop ActiveState)" = "$1" ] || fail "seqd is $(prop ActiveState), want $1 ($(prop StatusText))"
}
set -x
systemctl start --no-block seqd
sleep 2
[ "$(prop ActiveState)" = activating ] || fail "before init: $(prop ActiveState)"
case "$(prop StatusText)" in recovering*) ;; *) fail "status before init: $(prop StatusText)";; esac
seqd init --servers 127.0.0.1:7000 || fail "seqd init"
wait_state active
case "$(prop StatusText)" in ready*) ;; *) fail "status after init: $(prop StatusText)";; esac
pid=$(prop MainPID)
grep -E '^(Uid|CapEff|NoNewPrivs|Seccomp):' /proc/$pid/status
[ "$(awk '/^Uid:/ {print $2}' /proc/$pid/status)" = "$(id -u seqd)" ] || fail "not running as seqd"
grep -q '^CapEff:.*0000000000000000$' /proc/$pid/status || fail "has capabilities"
grep -q '^NoNewPrivs:.*1$' /proc/$pid/status || fail "NoNewPrivs off"
grep -q '^Seccomp:.*2$' /proc/$pid/status || fail "no seccomp filter"
[ "$(stat -c %U /var/lib/seqd)" = seqd ] || fail "/var/lib/seqd not the seqd user's"
[ "$(seqd fetch --servers 127.0.0.1:7000 --count 3 x | tr '\n' ' ')" = "1 2 3 " ] || fail "fetch"
cc -std=c11 -Wall -Wextra -Werror -o /root/prog /root/src/prog.c $(pkg-config --cflags --libs seqd libevent) ||
    fail "prog.c against libseqd-dev"
/root/prog 127.0.0.1:7000 || fail "prog"
systemctl restart seqd || fail "restart"
wait_state active
[ "$(seqd fetch --servers 127.0.0.1:7000 --count 2 x | tr '\n' ' ')" = "4 5 " ] || fail "fetch after restart"
systemctl stop seqd
[ "$(prop Result)" = success ] && [ "$(prop ExecMainStatus)" = 0 ] || fail "stop: $(prop Result) $(prop ExecMainStatus)"
# With a secret, as /etc/default/seqd describes it (libcrypto is loaded
# with dlopen: under MemoryDenyWriteExecute and the seccomp filter).
rm -rf /var/lib/seqd
install -d -m 750 -o root -g seqd /etc/seqd
head -c 48 /dev/urandom | base64 >/etc/seqd/secret
chown seqd:seqd /etc/seqd/secret && chmod 600 /etc/seqd/secret
sed -i 's|^SEQD_OPTS=.*|SEQD_OPTS="--listen 127.0.0.1:7000 --data /var/lib/seqd --secret-file /etc/seqd/secret"|' /etc/default/seqd
systemctl start --no-block seqd
sleep 2
seqd init --servers 127.0.0.1:7000 --secret-file /etc/seqd/secret || fail "init with the secret"
wait_state active
[ "$(seqd fetch --servers 127.0.0.1:7000 y)" = 1 ] || fail "fetch with the secret"
systemctl stop seqd
# A usage error is not restarted (RestartPreventExitStatus=2).
sed -i 's|^SEQD_OPTS=.*|SEQD_OPTS="--bogus"|' /etc/default/seqd
systemctl start seqd && fail "started with --bogus"
sleep 3
[ "$(prop ExecMainStatus)" = 2 ] && [ "$(prop NRestarts)" = 0 ] || fail "usage error: $(prop ExecMainStatus), $(prop NRestarts) restarts"
journalctl -u seqd --no-pager -o short-monotonic | tail -n 25
echo ok >/root/selftest.result
systemctl poweroff
EOF
chmod +x "$root/root/selftest.sh"
cat >"$root/etc/systemd/system/seqd-selftest.service" <<'EOF'
[Unit]
Description=seqd package self-test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/root/selftest.sh
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/seqd-selftest.service "$root/etc/systemd/system/multi-user.target.wants/"
rm -f "$root/root/selftest.result"

echo "test_deb_fresh: boot it and run the unit"
timeout 180 systemd-nspawn -q --register=no --keep-unit -D "$root" -b >"$root/root/boot.log" 2>&1 || true
cat "$root/root/selftest.log"
result=$(cat "$root/root/selftest.result" 2>/dev/null || echo "no result (boot log: $(tail -n 5 "$root/root/boot.log"))")
[ "$result" = ok ] || { echo "test_deb_fresh: FAIL: $result" >&2; exit 1; }
echo "test_deb_fresh: ok: installed on a fresh $codename; the unit ran, hardened, as seqd; libseqd-dev built prog.c"
