"""tests/pylib.py — what the Python tests of real members share: free
loopback ports, and failing with the test's name and a reason."""
import os
import socket
import sys

SEQD = os.environ.get("SEQD_BIN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seqd"))
NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]


def free_ports(n):
    """n loopback ports free right now (bound together, so distinct)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def fail(msg):
    print("%s: FAIL: %s" % (NAME, msg), file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
