# herd.py - a herd of threads making one identical call at once, for the
# trace, JSON stats and report tests (tests/integration/trace.bash).
#
#   herd.py dns NAME N LOG [EXTRA...]   N threads resolve NAME through the
#       fake resolver (libsf_fakeres.so, preloaded after the shim), which
#       holds the leader until LOG (this process's stderr, SFSHIM_LOG=debug)
#       shows N-1 "joined flight" lines; then each EXTRA name is resolved
#       once, alone (pass-throughs, for instance).
#   herd.py curl URL N                  N pycurl threads GET URL (the test
#       holds the origin with a gate); the bodies must be identical.
import ctypes
import hashlib
import io
import socket
import sys
import threading
import time


def dns(name, n, log, extra):
    fake = ctypes.CDLL(None)
    fake.sf_fake_gate_close()
    res = [None] * n

    def look(i):
        res[i] = socket.getaddrinfo(name, None)

    threads = [threading.Thread(target=look, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    if fake.sf_fake_wait_parked(1, 60000) != 1:
        sys.exit("herd: the leader never reached the resolver")
    deadline = time.monotonic() + 120
    while True:
        with open(log) as f:
            if f.read().count("joined flight") >= n - 1:
                break
        if time.monotonic() > deadline:
            sys.exit("herd: the followers did not join")
        time.sleep(0.01)  # polls a condition (the log), no timing assumed
    fake.sf_fake_gate_open()
    for t in threads:
        t.join()
    if any(r != res[0] for r in res) or not res[0]:
        sys.exit("herd: answers differ")
    for e in extra:
        socket.getaddrinfo(e, None)
    print("dns herd: threads=%d resolver_calls=%d" % (n, fake.sf_fake_calls()))


def curl(url, n):
    import pycurl

    start = threading.Barrier(n)
    bodies = [None] * n

    def fetch(i):
        buf = io.BytesIO()
        c = pycurl.Curl()
        c.setopt(pycurl.URL, url)
        c.setopt(pycurl.WRITEDATA, buf)
        start.wait()
        c.perform()
        bodies[i] = (c.getinfo(pycurl.RESPONSE_CODE), buf.getvalue())
        c.close()

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    digests = {hashlib.sha256(b[1]).hexdigest() for b in bodies if b}
    codes = {b[0] for b in bodies if b}
    if len(digests) != 1 or codes != {200} or None in bodies:
        sys.exit("herd: bodies differ or failed: %s" % sorted(codes))
    print("curl herd: threads=%d bodies=1 size=%d" % (n, len(bodies[0][1])))


if __name__ == "__main__":
    if sys.argv[1] == "dns":
        dns(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:])
    else:
        curl(sys.argv[2], int(sys.argv[3]))
