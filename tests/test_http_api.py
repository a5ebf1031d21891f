#!/usr/bin/python3
"""tests/test_http_api.py — the HTTP/JSON API (DESIGN.md §5, issue 12)
against three real members, every ID checked.

- the README's Python and Node examples, extracted from README.md and run
  as written (SEQD_HTTP points them at a member), their IDs checked;
- mixed load on one sequence: HTTP keep-alive clients on every member and
  binary `seqd fetch` beside them; no ID twice, increasing per client,
  real-time order (a fetch invoked after another completed got higher IDs);
- every error status: 400 (bad name, bad UTF-8, bad count, bad timeout),
  401 (no or wrong token), 403 (advance from beyond loopback is not
  reachable here; the admin token is checked in test_auth), 404, 405,
  409 exhausted, 503 with Retry-After (no quorum), 507 (disks failing);
- a request sent byte by byte; 1,000 keep-alive connections at once;
- a member killed under HTTP load: clients move to another member's port.
`make test` runs it with SEQD_BIN set; exit 1 with the reason on failure.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pylib import SEQD, check, fail, free_ports  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": "Bearer " + TOKEN}





class Cluster:
    def __init__(self, root, name, env=None, token=True):
        ports = free_ports(6)
        self.addrs = ["127.0.0.1:%d" % p for p in ports[:3]]
        self.http = ports[3:]
        self.servers = ",".join(self.addrs)
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.tokfile = os.path.join(self.dir, "token")
        with open(self.tokfile, "w") as f:
            f.write(TOKEN + "\n")
        self.token = token
        self.env = dict(os.environ, **(env or {}))
        self.procs = [None] * 3

    def start(self, i):
        peers = ",".join(a for j, a in enumerate(self.addrs) if j != i)
        args = [SEQD, "serve", "--listen", self.addrs[i], "--peers", peers, "--data",
                os.path.join(self.dir, "d%d" % i), "--round-timeout", "200",
                "--http", "127.0.0.1:%d" % self.http[i]]
        if self.token:
            args += ["--client-token-file", self.tokfile]
        log = open(os.path.join(self.dir, "m%d.log" % i), "a")
        self.procs[i] = subprocess.Popen(args, stdout=log, stderr=log, env=self.env)

    def cli(self, *args, expect=0):
        env = dict(os.environ, SEQD_SERVERS=self.servers)
        if self.token:
            env["SEQD_TOKEN_FILE"] = self.tokfile
        r = subprocess.run([SEQD, *args], capture_output=True, text=True, timeout=30, env=env)
        if expect is not None:
            check(r.returncode == expect, "seqd %s: exit %d: %s%s" % (" ".join(args), r.returncode,
                                                                      r.stdout, r.stderr))
        return r

    def up(self):
        for i in range(3):
            self.start(i)
        # init needs every member listening: on a loaded machine that can
        # take longer than a moment, so ask again for a few seconds.
        for _ in range(50):
            time.sleep(0.2)
            r = self.cli("init", "--timeout", "10000", expect=None)
            if r.returncode == 0 or "down or unreachable" not in r.stderr:
                break
        check(r.returncode == 0, "seqd init: exit %d: %s%s" % (r.returncode, r.stdout, r.stderr))
        self.wait_ready()

    def wait_ready(self):
        for _ in range(300):
            if self.cli("status", expect=None).returncode == 0:
                return
            time.sleep(0.05)
        fail("cluster not ready: " + self.cli("status", expect=None).stdout)

    def kill(self, i):
        if self.procs[i]:
            self.procs[i].kill()
            self.procs[i].wait()
            self.procs[i] = None

    def stop(self):
        for p in self.procs:
            if p:
                p.terminate()
        for p in self.procs:
            if p:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


def request(port, method, path, headers=AUTH, conn=None, timeout=10):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, headers=headers)
    r = c.getresponse()
    body = r.read()
    if conn is None:
        c.close()
    return r.status, dict(r.getheaders()), body


def jbody(body):
    try:
        return json.loads(body)
    except ValueError:
        fail("not JSON: %r" % body)


# ---- the ID contract ----------------------------------------------------------

class History:
    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def add(self, client, t0, t1, first, last):
        with self.lock:
            self.ops.append((client, t0, t1, first, last))

    def check(self, what):
        ops = sorted(self.ops, key=lambda o: o[3])
        for a, b in zip(ops, ops[1:]):
            check(a[4] < b[3], "%s: ranges [%d,%d] and [%d,%d] overlap" % (what, a[3], a[4], b[3], b[4]))
        per = {}
        for o in sorted(self.ops, key=lambda o: o[1]):
            if o[0] in per:
                check(o[3] > per[o[0]], "%s: client %s went backwards" % (what, o[0]))
            per[o[0]] = o[4]
        # Real-time order: a fetch invoked after another completed got higher IDs.
        by_done = sorted(self.ops, key=lambda o: o[2])
        by_inv = sorted(self.ops, key=lambda o: o[1])
        best, d = 0, 0
        for o in by_inv:
            while d < len(by_done) and by_done[d][2] < o[1]:
                best = max(best, by_done[d][4])
                d += 1
            check(o[3] > best, "%s: fetch invoked at %.6f got %d, below %d completed before" %
                  (what, o[1], o[3], best))
        return len(self.ops)


def http_fetch_loop(h, name, ports, client, stop, count=3, errors=None):
    """Keep-alive fetches, moving to the next member's port on failure."""
    try:
        http_fetch_loop1(h, name, ports, client, stop, count, errors)
    except BaseException as e:   # a thread's failure must not pass silently
        THREAD_FAILURES.append("%s: %r" % (client, e))


THREAD_FAILURES = []


def http_fetch_loop1(h, name, ports, client, stop, count=3, errors=None):
    k, conn = 0, None
    while not stop.is_set():
        port = ports[k % len(ports)]
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
            t0 = time.monotonic()
            st, _, body = request(port, "POST", "/v1/sequences/%s/ids?count=%d" % (name, count),
                                  conn=conn)
            t1 = time.monotonic()
            if st == 200:
                j = jbody(body)
                check(isinstance(j["first"], str) and isinstance(j["last"], str) and j["count"] == count,
                      "ids reply %r" % j)
                first, last = int(j["first"]), int(j["last"])
                check(last - first + 1 == count, "range %r" % j)
                h.add(client, t0, t1, first, last)
                continue
            if errors is not None:
                errors.append(st)
        except (OSError, http.client.HTTPException):
            if errors is not None:
                errors.append("conn")
        if conn:
            conn.close()
        conn = None
        k += 1   # fail over to the next member
        time.sleep(0.02)
    if conn:
        conn.close()


def binary_fetch_loop(cl, h, name, client, stop):
    while not stop.is_set():
        t0 = time.monotonic()
        r = cl.cli("fetch", "--range", "--count", "2", name, expect=None)
        t1 = time.monotonic()
        if r.returncode == 0:
            first, last = map(int, r.stdout.split())
            h.add(client, t0, t1, first, last)


# ---- the parts ------------------------------------------------------------------

def readme_examples(cl):
    text = open(os.path.join(ROOT, "README.md")).read()
    sect = text[text.index("## HTTP API"):]
    sect = sect[:sect.index("\n## ", 4)]
    blocks = re.findall(r"```(python|js)\n(.*?)```", sect, re.S)
    kinds = {k for k, _ in blocks}
    check({"python", "js"} <= kinds, "README's HTTP API section lacks python/js examples: %s" % kinds)
    env = dict(os.environ, SEQD_HTTP="http://127.0.0.1:%d" % cl.http[0], SEQD_TOKEN=TOKEN)
    ran = []
    for kind, code in blocks:
        if kind == "js" and not shutil.which("node"):
            print("test_http_api: SKIP the Node example: no node on PATH")
            continue
        cmd = ["/usr/bin/python3", "-c", code] if kind == "python" else ["node", "--input-type=module", "-e", code]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
        check(r.returncode == 0, "README %s example failed: %s%s" % (kind, r.stdout, r.stderr))
        ids = [int(x) for x in r.stdout.split()]
        check(len(ids) >= 10 and len(set(ids)) == len(ids) and ids == sorted(ids),
              "README %s example printed %r" % (kind, ids[:20]))
        ran.append((kind, len(ids)))
    return ran


def errors(cl):
    p = cl.http[0]
    cases = [
        ("POST", "/v1/sequences/bad%20name/ids", 400, "bad_name"),
        ("POST", "/v1/sequences/%FF%FE/ids", 400, "bad_name"),
        ("POST", "/v1/sequences/" + "a" * 129 + "/ids", 400, "bad_name"),
        ("POST", "/v1/sequences/e/ids?count=0", 400, "bad_count"),
        ("POST", "/v1/sequences/e/ids?count=1000001", 400, "bad_count"),
        ("POST", "/v1/sequences/e/ids?count=-1", 400, "bad_count"),
        ("POST", "/v1/sequences/e/ids?count=1e3", 400, "bad_count"),
        ("POST", "/v1/sequences/e/ids?count=99999999999999999999999", 400, "bad_count"),
        ("POST", "/v1/sequences/e/ids?timeout_ms=0", 400, "bad_timeout"),
        ("POST", "/v1/sequences/e/ids?timeout_ms=60001", 400, "bad_timeout"),
        ("POST", "/v1/sequences/e/advance?to=0", 400, "bad_value"),
        ("POST", "/v1/sequences/e/advance?to=18446744073709551616", 400, "bad_value"),
        ("POST", "/v1/sequences/e/advance", 400, "bad_value"),
        ("GET", "/v1/sequences/e/ids", 405, "method_not_allowed"),
        ("DELETE", "/v1/sequences/e", 405, "method_not_allowed"),
        ("POST", "/v1/sequences/e/other", 404, "not_found"),
        ("POST", "/v1/sequences/", 404, "not_found"),
    ]
    for method, path, want, code in cases:
        st, hd, body = request(p, method, path)
        check(st == want and jbody(body).get("code") == code,
              "%s %s: %d %r, want %d %s" % (method, path, st, body, want, code))
    # Raw bytes beyond ASCII in the path (UTF-8 of "été", and a lone 0xff).
    for raw in ("été".encode("utf-8"), b"\xff\xfe"):
        so = socket.create_connection(("127.0.0.1", p))
        so.sendall(b"POST /v1/sequences/" + raw + b"/ids HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                   TOKEN.encode() + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        so.settimeout(5)
        data = b""
        while True:
            chunk = so.recv(4096)
            if not chunk:
                break
            data += chunk
        so.close()
        check(data.startswith(b"HTTP/1.1 400") and b'"bad_name"' in data, "raw bytes %r: %r" % (raw, data))
    for hdrs in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        st, hd, body = request(p, "POST", "/v1/sequences/e/ids", headers=hdrs)
        check(st == 401 and jbody(body)["code"] == "unauthorized" and "WWW-Authenticate" in hd,
              "no token: %d %r" % (st, body))
        check("e" not in cl.cli("list").stdout.split(), "an unauthenticated request created e")
    st, _, _ = request(p, "GET", "/healthz", headers={})
    check(st == 200, "healthz needs no token")
    # 409: at the top of the range.
    st, _, body = request(p, "POST", "/v1/sequences/top/advance?to=18446744073709551615")
    check(st == 200 and jbody(body)["next"] == "18446744073709551615", "advance to the top: %r" % body)
    st, _, body = request(p, "POST", "/v1/sequences/top/ids")
    check(st == 409 and jbody(body)["code"] == "exhausted", "exhausted: %d %r" % (st, body))
    st, _, body = request(p, "GET", "/v1/sequences/top")
    check(st == 200 and jbody(body) == {"name": "top", "next": "18446744073709551615"}, "read top %r" % body)
    return len(cases) + 6


def byte_by_byte(cl):
    s = socket.create_connection(("127.0.0.1", cl.http[1]))
    req = ("POST /v1/sequences/slow/ids?count=4 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: 0\r\n\r\n" % TOKEN).encode()
    for b in req:
        s.send(bytes([b]))
        time.sleep(0.002)
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    check(data.startswith(b"HTTP/1.1 200") and b'"count":4' in data, "byte by byte: %r" % data)


def many_connections(cl, n=1000):
    conns = []
    for i in range(n):
        c = http.client.HTTPConnection("127.0.0.1", cl.http[i % 3], timeout=20)
        c.connect()
        conns.append(c)
    h = History()
    for rnd in range(2):   # each connection twice: kept alive between
        for i, c in enumerate(conns):
            t0 = time.monotonic()
            st, _, body = request(cl.http[i % 3], "POST", "/v1/sequences/many/ids", conn=c)
            check(st == 200, "connection %d: %d %r" % (i, st, body))
            j = jbody(body)
            h.add(i, t0, time.monotonic(), int(j["first"]), int(j["last"]))
    for c in conns:
        c.close()
    return h.check("1000 keep-alive connections")


def preferred_member(cl, name):
    """The member `seqd fetch NAME` asks first (the client library hashes the
    name over the list): the one whose fetch counter moves."""
    def fetches():
        out = []
        for p in cl.http:
            _, _, body = request(p, "GET", "/metrics")
            out.append(int(re.search(rb"^seqd_fetches_total (\d+)$", body, re.M).group(1)))
        return out
    before = fetches()
    cl.cli("fetch", name)
    after = fetches()
    moved = [i for i in range(3) if after[i] != before[i]]
    check(len(moved) == 1, "one fetch moved %s" % moved)
    return moved[0]


def mixed_load_and_kill(cl):
    # Every client of the sequence asks the same member first, as the
    # README says to: the binary ones by the library's hash of the name,
    # the HTTP ones by their list's order; then that member is killed and
    # both move on to the next one. (Clients of one hot sequence spread
    # over every member make the members' rounds collide: see the README.)
    pref = preferred_member(cl, "mixed")
    order = cl.http[pref:] + cl.http[:pref]
    h, stop, errs = History(), threading.Event(), []
    threads = []
    for k in range(6):
        threads.append(threading.Thread(target=http_fetch_loop, args=(h, "mixed", order, "h%d" % k, stop, 3, errs)))
    for k in range(2):
        threads.append(threading.Thread(target=binary_fetch_loop, args=(cl, h, "mixed", "b%d" % k, stop)))
    for t in threads:
        t.start()
    time.sleep(2.0)
    before = len(h.ops)
    cl.kill(pref)       # under load: its clients move to the next member
    time.sleep(2.5)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    check(not THREAD_FAILURES, "client threads failed: %s" % THREAD_FAILURES[:5])
    after_kill = sum(1 for o in h.ops[before:] if o[0][0] == "h")
    after_bin = sum(1 for o in h.ops[before:] if o[0][0] == "b")
    n = h.check("mixed HTTP and binary load with a member killed")
    check(before > 50 and after_kill > 50 and after_bin > 5,
          "too little load: %d ops before the kill, %d HTTP and %d binary after; errors %s" %
          (before, after_kill, after_bin, errs[:20]))
    kinds = {o[0][0] for o in h.ops}
    check(kinds == {"h", "b"}, "both protocols took part: %s" % kinds)
    cl.start(pref)
    cl.wait_ready()
    return n, after_kill


def no_quorum_and_storage(root):
    # 503 with Retry-After: two of three members down.
    cl = Cluster(root, "noquorum", token=False)
    try:
        cl.up()
        cl.kill(1)
        cl.kill(2)
        st, hd, body = request(cl.http[0], "POST", "/v1/sequences/q/ids?timeout_ms=600", headers={})
        check(st == 503 and hd.get("Retry-After") == "1" and jbody(body)["code"] == "timeout",
              "no quorum: %d %r %r" % (st, hd, body))
    finally:
        cl.stop()
    # 507: every member's log writes fail (the fault campaign's hook).
    cl = Cluster(root, "storage", env={"SEQD_TEST_FAULTS": "write_fail_nth=40,write_fail_count=100000"},
                 token=False)
    try:
        cl.up()
        got = None
        for k in range(60):
            st, hd, body = request(cl.http[0], "POST", "/v1/sequences/s%d/ids?timeout_ms=800" % k, headers={})
            if st == 507:
                got = jbody(body)
                break
        check(got is not None and got["code"] == "storage", "no 507 with failing disks: last %d %r" % (st, body))
    finally:
        cl.stop()


def main():
    root = tempfile.mkdtemp(prefix="seqd-http-api-")
    cl = Cluster(root, "main")
    try:
        cl.up()
        ran = readme_examples(cl)
        ncases = errors(cl)
        byte_by_byte(cl)
        nmany = many_connections(cl)
        nmixed, after_kill = mixed_load_and_kill(cl)
        cl.stop()
        no_quorum_and_storage(root)
        print("test_http_api: ok: README examples %s; %d error cases; byte by byte; %d fetches on 1,000 "
              "keep-alive connections; %d mixed HTTP/binary fetches checked, %d after a member was killed; "
              "503 with Retry-After; 507" % (ran, ncases, nmany, nmixed, after_kill))
    finally:
        cl.stop()
        if os.environ.get("SEQD_KEEP_TEST_DIRS"):
            print("test_http_api: kept " + root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
