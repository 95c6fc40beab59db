#!/bin/bash
# The flight trace (SFSHIM_TRACE) and the JSON stats (SFSHIM_STATS=json:)
# from real runs: 20 python3 threads resolving one name (fake resolver
# holding the leader until all followers joined), 20 pycurl threads on one
# URL (the origin holds the leader), then a ring too small for the run,
# several processes appending to one stats file, and nothing at all when
# neither variable is set.  Every line and document must parse with
# python3's json module, and the counts must be exact.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
. tests/integration/trace.bash
HOSTS_EXTRA="192.0.2.10 herd.test
198.51.100.8 excl.test"
sf_private_world "$0" "$@"

N=20
export SF_WAIT_SECS=${SF_WAIT_SECS:-120}
fail() {
	echo "FAIL: $*"
	exit 1
}

# check.py MODE FILE... : asserts on the documents; prints what it checked.
cat >"$SF_TMP/check.py" <<'PYEOF'
import collections, json, sys

def lines(path):
    out = []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            assert raw.endswith(b"\n"), "%s:%d: not a whole line" % (path, i)
            out.append(json.loads(raw.decode("ascii")))
    return out

def trace(path):
    with open(path, "rb") as f:
        doc = json.loads(f.read().decode("ascii"))
    ev = doc["traceEvents"]
    assert all(isinstance(e["pid"], int) and isinstance(e["tid"], int) for e in ev)
    for e in ev:
        if e["ph"] == "X":
            assert e["dur"] >= 0 and e["ts"] > 0 and e["args"]["key"] is not None
    return doc, ev

def slices(ev, api):
    return [e for e in ev if e["ph"] == "X" and e["cat"] == api]

def herd(mode, tpath, spath, n, key, passes):
    api = "dns" if mode == "dns" else "curl"
    doc, ev = trace(tpath)
    pid = doc["otherData"]["pid"]
    s = [x for x in lines(spath) if x["pid"] == pid]
    assert len(s) == 1, "want one stats line for pid %d, got %d" % (pid, len(s))
    a = s[0]["api"][api]
    sl = slices(ev, api)
    by = collections.Counter(x["args"]["path"] for x in sl)
    lead = [x for x in sl if x["args"]["path"] == "leader"]
    fol = [x for x in sl if x["args"]["path"] == "follower"]
    assert len(lead) == 1 and len(fol) == n - 1, by
    assert a["leaders"] == 1 and a["followers"] == n - 1, a
    assert a["flights"] == 1 and a["flights_shared"] == 1, a
    assert a["saved_calls"] == n - 1 and a["promotions"] == 0, a
    flight = lead[0]["args"]["flight"]
    assert all(x["args"]["flight"] == flight for x in fol)
    assert all(x["args"]["key"] == key for x in lead + fol), key
    assert len({x["tid"] for x in lead + fol}) == n
    # A curl follower's replay: one nested slice on its thread, inside its
    # call's slice; a DNS follower takes a copy and replays nothing.
    rep = [e for e in ev if e["ph"] == "X" and e["cat"] == "replay"]
    if api == "curl":
        assert len(rep) == n - 1, len(rep)
        for x in fol:
            r = [e for e in rep if e["tid"] == x["tid"]]
            assert len(r) == 1 and r[0]["args"]["flight"] == flight, r
            assert x["ts"] <= r[0]["ts"] and \
                r[0]["ts"] + r[0]["dur"] <= x["ts"] + x["dur"] + 0.002, (x, r)
    else:
        assert not rep, rep
    # Flow arrows: one per follower, from the leader's slice to its own.
    s_ev = {e["id"]: e for e in ev if e["ph"] == "s"}
    f_ev = {e["id"]: e for e in ev if e["ph"] == "f"}
    assert len(s_ev) == n - 1 and set(s_ev) == set(f_ev), (len(s_ev), len(f_ev))
    assert doc["otherData"]["flows"] == n - 1
    L = lead[0]
    for i, fe in f_ev.items():
        se = s_ev[i]
        assert se["tid"] == L["tid"] and L["ts"] <= se["ts"] <= L["ts"] + L["dur"]
        owner = [x for x in fol if x["tid"] == fe["tid"]]
        assert len(owner) == 1 and fe["bp"] == "e"
        assert owner[0]["ts"] <= fe["ts"] <= owner[0]["ts"] + owner[0]["dur"]
        assert se["ts"] < fe["ts"], "a flow must start before it ends"
    # Time: every follower waited; each saved the leader's whole call.
    assert a["waited_ns"] > 0
    lead_ns = L["dur"] * 1000
    assert abs(a["saved_ns"] - (n - 1) * lead_ns) <= (n - 1) * 1000, \
        (a["saved_ns"], lead_ns)
    # Pass-throughs carry their cause, and match the counters.
    pt = [x for x in sl if x["args"]["path"] == "passthrough"]
    got = collections.Counter(x["args"]["cause"] for x in pt)
    want = collections.Counter(dict(p.split("=") for p in passes))
    want = collections.Counter({k: int(v) for k, v in want.items()})
    assert got == want, (got, want)
    for cause, k in want.items():
        assert a["passthrough"][cause] == k, (cause, a["passthrough"])
    assert a["passthrough"]["total"] == sum(want.values())
    # ...and by option or argument, in names only.
    assert sum(a["passthrough_causes"].values()) == a["passthrough"]["total"], \
        a["passthrough_causes"]
    assert a["calls"] == n + sum(want.values())
    busy = [b for b in s[0]["busiest"] if b["api"] == api]
    assert busy and busy[0]["key"] == key and busy[0]["followers"] == n - 1, busy
    print("%s: 1 leader, %d followers, %d arrows, pass-through %s %s, "
          "waited %.1f ms, saved %.1f ms" % (api, len(fol), len(f_ev),
          dict(got), a["passthrough_causes"], a["waited_ns"] / 1e6,
          a["saved_ns"] / 1e6))

def ring(tpath, cap, total):
    doc, ev = trace(tpath)
    x = [e for e in ev if e["ph"] == "X"]
    o = doc["otherData"]
    # A call that found its slot busy (the ring wrapped while another
    # thread wrote there) is counted as lost, not recorded.
    assert len(x) == o["events"] and o["capacity"] == cap, (len(x), o)
    assert cap - o["lost"] <= len(x) <= cap, (len(x), o)
    assert o["dropped"] == total - cap, o
    print("ring: %d of %d calls kept, %d dropped" % (len(x), total, o["dropped"]))

def many(spath, want):
    ls = lines(spath)
    pids = {x["pid"] for x in ls}
    assert len(ls) == want and len(pids) == want, (len(ls), len(pids))
    print("stats: %d lines from %d processes, all valid JSON" % (len(ls), len(pids)))

m = sys.argv[1]
if m in ("dns", "curl"):
    herd(m, sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6:])
elif m == "ring":
    ring(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
else:
    many(sys.argv[2], int(sys.argv[3]))
PYEOF
chk() { "$SF_PY" "$SF_TMP/check.py" "$@" || fail "check $1"; }

# 1. DNS: one flight of N, then a numeric host and an excluded one alone.
mkdir "$SF_TMP/dns"
SFSHIM_DNS_EXCLUDE=excl.test sf_herd_dns "$SF_TMP/dns" "$N" herd.test 127.0.0.1 excl.test ||
	fail "dns herd"
chk dns "$SF_TMP/dns/dns.trace.json" "$SF_TMP/dns/stats.jsonl" "$N" herd.test numeric=1 filtered=1

# 2. curl: one flight of N on a URL with credentials and a token: neither
# may reach the trace or the stats.
sf_start_httpd "$SF_TMP/origin.log"
mkdir "$SF_TMP/curl"
SECRET=s3cr3tT0k3n
sf_herd_curl "$SF_TMP/curl" "$N" "/bytes/20000?gate=g1&token=$SECRET" || fail "curl herd"
got=$(sf_grep_count "GET /bytes/20000?gate=g1" "$SF_TMP/origin.log")
[ "$got" -eq 1 ] || fail "origin saw $got requests, expected 1"
chk curl "$SF_TMP/curl/curl.trace.json" "$SF_TMP/curl/stats.jsonl" "$N" \
	"http://127.0.0.1:$SF_HTTP_PORT/bytes/20000?[redacted]"
SF_HTTP="http://user:$SECRET@127.0.0.1:$SF_HTTP_PORT" \
	sf_herd_curl "$SF_TMP/curl" "$N" "/bytes/10?gate=g3&token=$SECRET" || fail "curl creds"
if grep -l "$SECRET" "$SF_TMP/curl/curl.trace.json" "$SF_TMP/curl/stats.jsonl"; then
	fail "a secret reached the trace or the stats"
fi
grep -qF "\"key\":\"http://[redacted]@127.0.0.1:$SF_HTTP_PORT/bytes/10?[redacted]\"" \
	"$SF_TMP/curl/curl.trace.json" ||
	fail "the redacted key is not in the trace"
echo "curl: no credentials or query in the trace and stats"

# 3. A ring of 16 for N+2 calls keeps the last 16.
mkdir "$SF_TMP/ring"
SFSHIM_TRACE_EVENTS=16 SFSHIM_DNS_EXCLUDE=excl.test \
	sf_herd_dns "$SF_TMP/ring" "$N" herd.test 127.0.0.1 excl.test || fail "ring herd"
chk ring "$SF_TMP/ring/dns.trace.json" 16 $((N + 2))

# 4. Several processes append to one stats file at once: one whole line each.
mkdir "$SF_TMP/many"
pids=()
for _ in $(seq 1 8); do
	env SFSHIM_STATS="json:$SF_TMP/many/stats.jsonl" LD_PRELOAD="$(sf_preload_host "$B/libsfshim.so")" \
		"$SF_PY" -c 'import socket, sys; [socket.getaddrinfo("herd.test", None) for _ in range(50)]' &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "stats writer $p"; done
chk many "$SF_TMP/many/stats.jsonl" 8

# 5. fork: the child reports its own calls.  With "%p" in the name each
# process writes its own trace; without it only the parent writes.
mkdir "$SF_TMP/fork"
# The child outlives its parent (it waits for the end of a pipe that the
# parent holds until it exits, exit handlers included), so that a child
# writing where it should not would replace the parent's file.  $(...)
# returns when both have closed its output, i.e. both have exited.
cat >"$SF_TMP/fork.py" <<'PYEOF'
import os, socket, sys
socket.getaddrinfo("herd.test", None)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    socket.getaddrinfo("excl.test", None)
    socket.getaddrinfo("excl.test", None)
    os.read(r, 1)
    sys.exit(0)
os.close(r)
print(pid, flush=True)
PYEOF
for name in 't-%p.json' t.json; do
	child=$(env SFSHIM_STATS="json:$SF_TMP/fork/s-$name.jsonl" SFSHIM_TRACE="$SF_TMP/fork/$name" \
		LD_PRELOAD="$(sf_preload_host "$B/libsfshim.so")" "$SF_PY" "$SF_TMP/fork.py") ||
		fail "fork run"
	"$SF_PY" - "$SF_TMP/fork" "$name" "$child" <<'PYEOF' || fail "fork: $name"
import glob, json, os, sys
d, name, child = sys.argv[1], sys.argv[2], int(sys.argv[3])
stats = {l["pid"]: l["api"]["dns"] for l in map(json.loads, open("%s/s-%s.jsonl" % (d, name)))}
assert len(stats) == 2 and stats[child]["calls"] == 2, stats
parent = [p for p in stats if p != child][0]
assert stats[parent]["calls"] == 1, stats
def keys(path):
    t = json.load(open(path))
    return sorted(e["args"]["key"] for e in t["traceEvents"] if e["ph"] == "X")
if "%p" in name:
    assert keys("%s/t-%d.json" % (d, parent)) == ["herd.test"]
    assert keys("%s/t-%d.json" % (d, child)) == ["excl.test", "excl.test"]
else:
    assert keys("%s/t.json" % d) == ["herd.test"], keys("%s/t.json" % d)
print("fork (%s): parent and child each report their own calls" % name)
PYEOF
done

# 6. A program in a locale with a decimal comma still gets valid JSON.
mkdir "$SF_TMP/loc"
localedef -i de_DE -f UTF-8 "$SF_TMP/loc/de_DE.UTF-8" ||
	fail "localedef de_DE.UTF-8 (apt-get install locales)"
env LOCPATH="$SF_TMP/loc" SFSHIM_STATS="json:$SF_TMP/loc/s.jsonl" \
	LD_PRELOAD="$(sf_preload_host "$B/libsfshim.so")" "$SF_PY" -c '
import locale, socket
locale.setlocale(locale.LC_ALL, "de_DE.UTF-8")
assert locale.localeconv()["decimal_point"] == ","
socket.getaddrinfo("herd.test", None)' || fail "decimal comma run"
chk many "$SF_TMP/loc/s.jsonl" 1

# 7. Neither variable set: the library writes nothing anywhere.
mkdir "$SF_TMP/none"
(cd "$SF_TMP/none" && env -u SFSHIM_STATS -u SFSHIM_TRACE \
	LD_PRELOAD="$(sf_preload_host "$SF_ROOT/$B/libsfshim.so")" \
	"$SF_PY" -c 'import socket; socket.getaddrinfo("herd.test", None)')
[ -z "$(ls -A "$SF_TMP/none")" ] || fail "files appeared without SFSHIM_STATS/SFSHIM_TRACE: $(ls -A "$SF_TMP/none")"
echo "unset: nothing written"
# A process with no hooked call writes its stats line but no trace (a
# wrapper must not replace its child's trace with an empty one).
env SFSHIM_STATS="json:$SF_TMP/none/s.jsonl" SFSHIM_TRACE="$SF_TMP/none/t.json" \
	LD_PRELOAD="$(sf_preload_host "$SF_ROOT/$B/libsfshim.so")" /bin/true
if [ ! -s "$SF_TMP/none/s.jsonl" ] || [ -e "$SF_TMP/none/t.json" ]; then
	fail "a process without calls: $(ls -A "$SF_TMP/none")"
fi
echo "no calls: a stats line, no trace"
echo "75-trace: ok"
