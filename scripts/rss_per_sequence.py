#!/usr/bin/python3
"""scripts/rss_per_sequence.py — RSS per sequence of a member (issue 13).

Starts three local members (--fsync never, loopback), fetches one ID of
each of N distinct sequences through member 0 over its HTTP API (C
keep-alive connections, one per thread), and prints VmRSS of every member
before, right after, and again after waiting past the coordinator's idle
time (the coordinator's per-sequence state should then be gone; the
table's entries stay). Member 0 is the coordinator of every fetch; 1 and
2 hold only their tables.

    scripts/rss_per_sequence.py [--seqd ./seqd] [--n 200000] [--conns 4] [--wait 7]
"""
import argparse
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from pylib import free_ports  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def fetch_range(port, names, errors):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for name in names:
        c.request("POST", "/v1/sequences/%s/ids?count=1" % name, body=b"")
        r = c.getresponse()
        r.read()
        if r.status != 200:
            errors.append((name, r.status))
            return
    c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqd", default="./seqd")
    ap.add_argument("--n", type=int, default=200000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--wait", type=float, default=7.0)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="seqd-rss-")
    ports = free_ports(6)
    addrs = ["127.0.0.1:%d" % p for p in ports[:3]]
    http_ports = ports[3:]
    procs = []
    try:
        for i in range(3):
            peers = ",".join(x for j, x in enumerate(addrs) if j != i)
            log = open(os.path.join(root, "m%d.log" % i), "w")
            procs.append(subprocess.Popen(
                [a.seqd, "serve", "--listen", addrs[i], "--peers", peers, "--data",
                 os.path.join(root, "d%d" % i), "--fsync", "never", "--insecure",
                 "--http", "127.0.0.1:%d" % http_ports[i]], stdout=log, stderr=log))
        time.sleep(0.3)
        subprocess.run([a.seqd, "init", "--servers", ",".join(addrs), "--timeout", "10000"],
                       check=True, capture_output=True)
        for _ in range(200):
            if subprocess.run([a.seqd, "status", "--servers", ",".join(addrs)],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        # Warm-up: connections, buffers, the first rounds.
        fetch_range(http_ports[0], ["warm-%d" % i for i in range(100)], [])
        before = [rss_kb(p.pid) for p in procs]
        names = ["s%07d" % i for i in range(a.n)]
        errors = []
        t0 = time.time()
        threads = [threading.Thread(target=fetch_range, args=(http_ports[0], names[k::a.conns], errors))
                   for k in range(a.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs = time.time() - t0
        if errors:
            print("fetch failed: %s" % (errors[:3],), file=sys.stderr)
            return 1
        after = [rss_kb(p.pid) for p in procs]
        held = metric(http_ports[0], "seqd_coord_sequences_held")
        time.sleep(a.wait)
        # One more fetch, so that a sweep that waits for activity runs too.
        fetch_range(http_ports[0], ["late-probe"], [])
        idle = [rss_kb(p.pid) for p in procs]
        held_idle = metric(http_ports[0], "seqd_coord_sequences_held")
        ev = metric(http_ports[0], "seqd_coord_evictions_total")
        print("seqd %s: %d sequences, one fetch each through member 0, %.1f s (%.0f fetches/s)"
              % (a.seqd, a.n, secs, a.n / secs))
        for i in range(3):
            print("  member %d VmRSS: before %7d kB  after %7d kB  (+%6.1f B/seq)  "
                  "after %.0f s idle %7d kB  (+%6.1f B/seq)"
                  % (i, before[i], after[i], (after[i] - before[i]) * 1024.0 / a.n, a.wait,
                     idle[i], (idle[i] - before[i]) * 1024.0 / a.n))
        if held is not None:
            print("  member 0 seqd_coord_sequences_held: %d after the fetches, %d after idle; "
                  "seqd_coord_evictions_total %d" % (held, held_idle, ev))
        return 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
