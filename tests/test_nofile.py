#!/usr/bin/python3
"""tests/test_nofile.py — a member out of file descriptors survives.

One member runs under `prlimit --nofile=64` (soft = hard, so serve cannot
raise it). The test opens far more connections than that allows, to the
binary port and to the HTTP port, and holds them: the member must neither
die nor spin (accept failing with EMFILE on a level-triggered listener
would take a core: its CPU time over a second is checked), and must say so
in its log. Once the connections are closed, fetches over both ports work
again. `make test` runs it with SEQD_BIN set.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pylib import SEQD, check, fail, free_ports  # noqa: E402

LIMIT = 64
HOLD = 300           # connections per port, several times the limit


def seqd(*args, expect=0, timeout=30):
    r = subprocess.run([SEQD, *args], capture_output=True, text=True, timeout=timeout)
    check(r.returncode == expect,
          "seqd %s: exit %d, want %d: %s%s" % (" ".join(args), r.returncode, expect, r.stdout, r.stderr))
    return r.stdout


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect(("127.0.0.1", port))   # the kernel completes it (backlog) even unaccepted
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def http_fetch(port, name):
    req = urllib.request.Request("http://127.0.0.1:%d/v1/sequences/%s/ids?count=1" % (port, name),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


def main():
    root = tempfile.mkdtemp(prefix="seqd-nofile-")
    bport, hport = free_ports(2)
    addr = "127.0.0.1:%d" % bport
    log_path = os.path.join(root, "m.log")
    proc = None
    held = []
    try:
        log = open(log_path, "w")
        proc = subprocess.Popen(
            ["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), SEQD, "serve", "--listen", addr,
             "--data", os.path.join(root, "d"), "--round-timeout", "200",
             "--http", "127.0.0.1:%d" % hport], stdout=log, stderr=log)
        time.sleep(0.3)
        seqd("init", "--servers", addr, "--timeout", "10000")
        for _ in range(200):
            if subprocess.run([SEQD, "status", "--servers", addr], capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        seqd("fetch", "--servers", addr, "before")

        held = open_many(bport, HOLD) + open_many(hport, HOLD)
        time.sleep(0.5)              # let it accept what it can and hit EMFILE
        pid = proc.pid
        c0 = cpu_seconds(pid)
        time.sleep(1.0)
        used = cpu_seconds(pid) - c0
        check(proc.poll() is None, "the member exited (%s) with %d connections held" % (proc.returncode, len(held)))
        check(used < 0.5, "the member used %.2f s of CPU in 1 s while out of descriptors (spinning on accept?)" % used)
        for s in held:
            s.close()
        held = []
        # It serves again: binary and HTTP, within the accept pause.
        ok = False
        for _ in range(50):
            r = subprocess.run([SEQD, "fetch", "--servers", addr, "--timeout", "2000", "after"],
                               capture_output=True, text=True, timeout=10)
            if r.returncode == 0:
                ok = True
                break
            time.sleep(0.1)
        check(ok, "no fetch after the connections were closed: %s" % r.stderr)
        status = None
        for _ in range(50):
            try:
                status = http_fetch(hport, "after-http")
                break
            except OSError:
                time.sleep(0.1)
        check(status == 200, "no HTTP fetch after the connections were closed")
        with open(log_path) as f:
            text = f.read()
        check("open-file limit 64" in text, "no warning about the open-file limit in the log:\n" + text)
        print("test_nofile: ok (%d connections held per port under a limit of %d; %.2f s CPU in 1 s; "
              "binary and HTTP fetch again after)" % (HOLD, LIMIT, used))
    finally:
        for s in held:
            s.close()
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if os.environ.get("SEQD_KEEP_TEST_DIRS"):
            print("test_nofile: kept " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
