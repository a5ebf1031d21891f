#!/usr/bin/python3
"""tests/test_metrics.py — /metrics read by a real Prometheus parser.

Debian's python3-prometheus-client parses what three real members expose
(text format 0.0.4), and the counters are checked against what this test
did: fetches and IDs, advances, rounds by outcome, the fetch, round and
fsync histograms (cumulative buckets, +Inf = _count), and the exhaustion
alarm once a sequence is advanced past half of 2^64. `make test` runs it
with SEQD_BIN set; it exits non-zero with the reason on any mismatch.
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

from prometheus_client.parser import text_string_to_metric_families



def seqd(*args, expect=0):
    r = subprocess.run([SEQD, *args], capture_output=True, text=True, timeout=30)
    check(r.returncode == expect,
          "seqd %s: exit %d, want %d: %s%s" % (" ".join(args), r.returncode, expect, r.stdout, r.stderr))
    return r.stdout


def scrape(port):
    """Every sample as {(name, frozenset(labels)): value}, and the families' types."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        check(resp.status == 200, "/metrics answered %d" % resp.status)
        ctype = resp.headers.get("Content-Type", "")
        check(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %r" % ctype)
        text = resp.read().decode()
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        check(fam.name.startswith("seqd_"), "family %s without the seqd_ prefix" % fam.name)
        check(fam.documentation, "family %s without HELP" % fam.name)
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def val(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    check(key in samples, "no sample %s%s" % (name, labels or ""))
    return samples[key]


def check_histogram(samples, name):
    """Cumulative buckets, increasing le, +Inf equal to _count; returns _count."""
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                      if k[0] == name + "_bucket"), key=lambda b: b[0])
    check(len(buckets) >= 10, "%s: %d buckets" % (name, len(buckets)))
    check(buckets[0][0] == 5e-05 and buckets[-2][0] == 1.0 and buckets[-1][0] == float("inf"),
          "%s: buckets from 50 us to 1 s and +Inf, got %s" % (name, [b[0] for b in buckets]))
    for a, b in zip(buckets, buckets[1:]):
        check(a[1] <= b[1], "%s: buckets not cumulative: %s" % (name, buckets))
    count = val(samples, name + "_count")
    check(buckets[-1][1] == count, "%s: +Inf %s != _count %s" % (name, buckets[-1][1], count))
    check(val(samples, name + "_sum") >= 0, "%s_sum negative" % name)
    return count


def main():
    root = tempfile.mkdtemp(prefix="seqd-metrics-")
    ports = free_ports(6)
    addrs = ["127.0.0.1:%d" % p for p in ports[:3]]
    http = ports[3:]
    servers = ",".join(addrs)
    procs = []
    try:
        for i in range(3):
            peers = ",".join(a for j, a in enumerate(addrs) if j != i)
            log = open(os.path.join(root, "m%d.log" % i), "w")
            procs.append(subprocess.Popen(
                [SEQD, "serve", "--listen", addrs[i], "--peers", peers, "--data",
                 os.path.join(root, "d%d" % i), "--round-timeout", "200",
                 "--http", "127.0.0.1:%d" % http[i]], stdout=log, stderr=log))
        for _ in range(50):   # every member must listen first: ask again for a while
            time.sleep(0.2)
            r = subprocess.run([SEQD, "init", "--servers", servers, "--timeout", "10000"],
                               capture_output=True, text=True)
            if r.returncode == 0 or "down or unreachable" not in r.stderr:
                break
        check(r.returncode == 0, "seqd init: %s" % r.stderr)
        for _ in range(200):
            if subprocess.run([SEQD, "status", "--servers", servers],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        seqd("status", "--servers", servers)

        before, types = scrape(http[0])
        want_types = {
            "seqd_fetches": "counter", "seqd_ids": "counter", "seqd_rounds": "counter",
            "seqd_rounds_ended": "counter", "seqd_advances": "counter", "seqd_fsyncs": "counter",
            "seqd_member_ready": "gauge", "seqd_peers_up": "gauge", "seqd_sequences": "gauge",
            "seqd_sequences_past_alarm": "gauge", "seqd_headroom_min_ratio": "gauge",
            "seqd_fetch_duration_seconds": "histogram", "seqd_round_duration_seconds": "histogram",
            "seqd_fsync_duration_seconds": "histogram",
            "seqd_coord_sequences_held": "gauge", "seqd_coord_evictions": "counter",
        }
        for fam, t in want_types.items():
            check(types.get(fam) == t, "family %s is %r, want %s" % (fam, types.get(fam), t))
        check(val(before, "seqd_member_ready") == 1, "member 0 not ready")
        check(val(before, "seqd_sequences_past_alarm") == 0, "a sequence past the alarm already")

        # What this test does through member 0 as coordinator.
        for _ in range(5):
            seqd("fetch", "--servers", addrs[0], "--count", "10", "--range", "orders")
        out = seqd("advance", "--servers", addrs[0], "orders", "1000")
        check(out.split() == ["orders", "1000"], "advance printed %r" % out)

        after, _ = scrape(http[0])

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        check(delta("seqd_fetches_total") == 5, "fetches_total +%s, want +5" % delta("seqd_fetches_total"))
        check(delta("seqd_ids_total") == 50, "ids_total +%s, want +50" % delta("seqd_ids_total"))
        check(delta("seqd_advances_total") == 1, "advances_total +%s" % delta("seqd_advances_total"))
        committed = delta("seqd_rounds_ended_total", outcome="committed")
        check(committed >= 6, "rounds committed +%s, want >= 6 (5 fetches, 1 advance)" % committed)
        check(delta("seqd_rounds_total") >= committed, "rounds_total below rounds committed")
        fetch_before = check_histogram(before, "seqd_fetch_duration_seconds")
        fetch_after = check_histogram(after, "seqd_fetch_duration_seconds")
        check(fetch_after - fetch_before == 5, "fetch histogram +%s, want +5" % (fetch_after - fetch_before))
        rounds = check_histogram(after, "seqd_round_duration_seconds") - \
            check_histogram(before, "seqd_round_duration_seconds")
        ended = committed + delta("seqd_rounds_ended_total", outcome="failed")
        check(rounds == ended, "round histogram +%s, rounds ended +%s" % (rounds, ended))
        fsyncs = check_histogram(after, "seqd_fsync_duration_seconds")
        check(fsyncs >= 6, "fsync histogram count %s after 6 rounds with --fsync always" % fsyncs)
        check(delta("seqd_fsyncs_total") > 0, "fsyncs_total did not move")
        check(val(after, "seqd_sequences") >= 1, "no sequence held")
        # "orders" was in use a moment ago: well within the idle time (5 s).
        check(val(after, "seqd_coord_sequences_held") >= 1, "the coordinator holds no sequence")

        # Past the alarm (half of 2^64): counted, named, and the least headroom.
        big = 2**63 + 5
        seqd("advance", "--servers", addrs[0], "big", str(big))
        deadline = time.time() + 5
        while True:
            s, _ = scrape(http[0])
            if val(s, "seqd_sequences_past_alarm") == 1 or time.time() > deadline:
                break
            time.sleep(0.05)
        check(val(s, "seqd_sequences_past_alarm") == 1, "sequences_past_alarm %s, want 1" %
              val(s, "seqd_sequences_past_alarm"))
        left = val(s, "seqd_sequence_headroom_ids", sequence="big")
        check(abs(left - (2**64 - 1 - big)) < 2**20, "headroom of big %s, want %s" % (left, 2**64 - 1 - big))
        ratio = val(s, "seqd_headroom_min_ratio")
        check(0.49 < ratio < 0.51, "headroom_min_ratio %s, want about 0.5" % ratio)
        check(val(s, "seqd_exhaustion_alarm_ratio") == 0.5, "alarm ratio")
        check(not any(k[0] == "seqd_sequence_headroom_ids" and dict(k[1]).get("sequence") == "orders"
                      for k in s), "orders has a headroom series but is not past the alarm")
        print("test_metrics: ok (%d samples parsed; fetch +5, ids +50, %d rounds, %d fsyncs timed)"
              % (len(s), committed, fsyncs))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        if os.environ.get("SEQD_KEEP_TEST_DIRS"):
            print("test_metrics: kept " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
