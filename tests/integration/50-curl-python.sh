#!/bin/bash
# /usr/bin/python3 with Debian's pycurl: an extension module that Python
# loads with RTLD_LOCAL and that links libcurl-gnutls.so.4 (symbols
# CURL_GNUTLS_3), so libcurl is not in the global scope.  20 threads
# perform the same GET: with the shim the origin sees 1 request and all 20
# bodies are identical; without it, 20 requests.
# The URL carries gate=NAME: the origin holds the requests until the script
# has seen the leader's request in its log and the 19 "joined flight" lines
# in the shim's debug log (no timing involved).
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

PY=/usr/bin/python3 # not whatever python3 is first in PATH (pyenv shims...)
N=20
SIZE=300000
export SF_WAIT_SECS=${SF_WAIT_SECS:-120}
SHIM="$(sf_preload_host "$B/libsfshim.so")"

if ! "$PY" -c 'import pycurl' 2>/dev/null; then
	echo "FAIL: $PY cannot import pycurl (apt-get install python3-pycurl)"
	exit 1
fi

cat >"$SF_TMP/threads.py" <<'EOF'
import ctypes, hashlib, io, sys, threading
import pycurl

url, n, must_be_local = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
print("pycurl:", pycurl.version)
if "GnuTLS" not in pycurl.version:
    sys.exit("pycurl is not linked with libcurl-gnutls")
if must_be_local and hasattr(ctypes.CDLL(None), "curl_version"):
    sys.exit("libcurl is in the global scope: not the RTLD_LOCAL case")

start = threading.Barrier(n)
results = [None] * n

def fetch(i):
    buf = io.BytesIO()
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.WRITEDATA, buf)
    start.wait()
    try:
        c.perform()
        results[i] = (c.getinfo(pycurl.RESPONSE_CODE), buf.getvalue(), None)
    except pycurl.error as e:
        results[i] = (None, b"", str(e))
    finally:
        c.close()

threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()

errors = [r[2] for r in results if r[2]]
codes = sorted({r[0] for r in results if not r[2]})
digests = {hashlib.sha256(r[1]).hexdigest() for r in results if not r[2]}
sizes = sorted({len(r[1]) for r in results if not r[2]})
print("threads=%d ok=%d codes=%s bodies=%d sizes=%s" %
      (n, n - len(errors), codes, len(digests), sizes))
for e in errors[:5]:
    print("error:", e)
sys.exit(1 if errors or len(digests) != 1 or codes != [200] else 0)
EOF

sf_start_httpd "$SF_TMP/origin.log"

fail() {
	echo "FAIL: $*"
	exit 1
}

# run NAME PRELOAD REQUESTS JOINS: python on a gated URL; see 45-curl-dlopen.sh.
run() {
	local name=$1 preload=$2 requests=$3 joins=$4
	local path="/bytes/$SIZE?gate=$name" out="$SF_TMP/$name.out" err="$SF_TMP/$name.err"
	local envs=(SFSHIM_LOG=debug) how="without the shim"
	if [ -n "$preload" ]; then
		envs+=(LD_PRELOAD="$preload")
		how="with the shim"
	fi
	# threads.py also checks that curl_version (which the shim does not
	# export) is not in the global scope: pycurl's libcurl is RTLD_LOCAL.
	env "${envs[@]}" timeout -s KILL 300 "$PY" "$SF_TMP/threads.py" \
		"$SF_HTTP$path" "$N" 1 >"$out" 2>"$err" &
	local pid=$! rc=0
	sf_wait_count "$requests" sf_grep_count "GET $path" "$SF_TMP/origin.log" ||
		{ cat "$out" "$err"; fail "$name: requests did not arrive"; }
	sf_wait_count "$joins" sf_grep_count ": joined flight" "$err" ||
		{ cat "$out" "$err"; fail "$name: followers did not join"; }
	sleep 0.2
	sf_open_gate "$name"
	wait "$pid" || rc=$?
	echo "--- $name: $how, $N python threads:"
	sed 's/^/    /' "$out"
	if [ "$rc" -ne 0 ]; then
		grep -v 'joined flight' "$err" | head -30 | sed 's/^/    stderr: /'
		fail "$name: python exited $rc"
	fi
	local got j
	got=$(sf_grep_count "GET $path" "$SF_TMP/origin.log")
	j=$(sf_grep_count ": joined flight" "$err")
	echo "    origin saw $got request(s), $j follower(s) joined"
	[ "$got" -eq "$requests" ] || fail "$name: origin saw $got requests, expected $requests"
	[ "$j" -eq "$joins" ] || fail "$name: $j followers joined, expected $joins"
	grep -q "threads=$N ok=$N codes=\[200\] bodies=1 sizes=\[$SIZE\]" "$out" ||
		fail "$name: unexpected result line"
}

run py-shim "$SHIM" 1 $((N - 1))
run py-plain "" "$N" 0
echo "50-curl-python: ok (1 request with the shim, $N without; identical bodies)"
