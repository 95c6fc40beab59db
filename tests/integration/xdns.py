# xdns.py - getaddrinfo callers for the scope tests (80-scope-dns.sh).
#
#   xdns.py resolve NAME            one lookup; prints the answer
#   xdns.py threads NAME T          T threads look NAME up at once; prints
#                                   the answer once (all must be equal)
#   xdns.py prefork NAME N [FIRST]  a prefork master: resolves FIRST (if
#                                   given: the library attaches the scope's
#                                   table before the fork), then forks N
#                                   workers with os.fork, each looks NAME up
#                                   once; prints the answer once (all equal)
#
# The answer is printed as repr() of socket.getaddrinfo's list: families,
# types, protocols, names and addresses, in glibc's order.  Exit status 1
# when answers differ or a lookup fails.  Nothing here waits on time: the
# test holds the DNS server's gate until every caller has joined.
import os
import socket
import sys
import threading


def look(name):
    try:
        return repr(socket.getaddrinfo(name, None))
    except socket.gaierror as e:
        return "error %d" % e.errno


def threads(name, t):
    res = [None] * t

    def run(i):
        res[i] = look(name)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(t)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return res


def prefork(name, n, first):
    if first:
        look(first)
    pipes = []
    for _ in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            os.write(w, look(name).encode())
            os.close(w)
            # A normal exit, so that the library's exit summary runs.
            sys.exit(0)
        os.close(w)
        pipes.append((pid, r))
    res = []
    for pid, r in pipes:
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            sys.exit("worker %d exited with status %d" % (pid, status))
        res.append(b"".join(chunks).decode())
    return res


def main():
    mode, name = sys.argv[1], sys.argv[2]
    if mode == "resolve":
        res = [look(name)]
    elif mode == "threads":
        res = threads(name, int(sys.argv[3]))
    else:
        res = prefork(name, int(sys.argv[3]),
                      sys.argv[4] if len(sys.argv) > 4 else None)
    if len(set(res)) != 1:
        sys.exit("answers differ: %s" % sorted(set(res)))
    print(res[0])
    sys.exit(1 if res[0].startswith("error") else 0)


if __name__ == "__main__":
    main()
