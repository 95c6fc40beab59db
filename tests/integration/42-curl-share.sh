#!/bin/bash
# Share handles (issue 8, "the curl tool"): the shim interposes
# curl_share_init/setopt/cleanup and lets a handle attached to a harmless
# share coalesce (shim/curl/sf_curl_share.h).
#  - tests/preload/test_curl_share.c: threads on one share, cookies with the
#    engine off and on, a reset handle, HSTS in use, an unknown share,
#    libcurl's own answers to curl_share_*;
#  - the real curl tool in serial mode: its share no longer makes its
#    transfers pass through (the stats show leaders, no pass-through);
#  - python3's pycurl (the gnutls flavour, loaded RTLD_LOCAL) with a
#    CurlShare: threads coalesce.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

sf_run_preload_http test_curl_share

SHIM="$(sf_preload_host "$B/libsfshim.so")"
fail=0
LD_PRELOAD="$SHIM" SFSHIM_LOG=info SFSHIM_STATS=stderr /usr/bin/curl -s \
	-o /dev/null "$SF_HTTP/text?id=tool1" \
	-o /dev/null "$SF_HTTP/bytes/10?id=tool2" 2>"$SF_TMP/tool.err"
if ! grep -qF "curl: calls=2 leaders=2 followers=0 " "$SF_TMP/tool.err" ||
	! grep -qF " passthrough=0 " <(grep -F "curl: calls=" "$SF_TMP/tool.err") ||
	grep -qF "CURLOPT_SHARE" "$SF_TMP/tool.err"; then
	echo "FAIL: curl tool (serial): want two leaders and no pass-through"
	sed 's/^/    /' "$SF_TMP/tool.err"
	fail=1
else
	echo "ok: curl tool (serial): both transfers led a flight, none passed through"
fi

# python3's pycurl: the gnutls flavour (CURL_GNUTLS_3), loaded RTLD_LOCAL;
# N threads on one pycurl.CurlShare (DNS, SSL_SESSION, CONNECT) GET one
# gated URL: one request, identical bodies.
PY=/usr/bin/python3
N=8
cat >"$SF_TMP/share.py" <<'PYEOF'
import hashlib, io, sys, threading
import pycurl

url, n = sys.argv[1], int(sys.argv[2])
if "GnuTLS" not in pycurl.version:
    sys.exit("pycurl is not linked with libcurl-gnutls")
share = pycurl.CurlShare()
for what in (pycurl.LOCK_DATA_DNS, pycurl.LOCK_DATA_SSL_SESSION,
             pycurl.LOCK_DATA_CONNECT):
    share.setopt(pycurl.SH_SHARE, what)
start = threading.Barrier(n)
results = [None] * n

def fetch(i):
    buf = io.BytesIO()
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.SHARE, share)
    c.setopt(pycurl.WRITEDATA, buf)
    start.wait()
    try:
        c.perform()
        results[i] = (c.getinfo(pycurl.RESPONSE_CODE), buf.getvalue())
    finally:
        c.close()

threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
share.close()
digests = {hashlib.sha256(r[1]).hexdigest() for r in results if r}
print("ok=%d codes=%s bodies=%d" % (sum(1 for r in results if r),
      sorted({r[0] for r in results if r}), len(digests)))
PYEOF
path="/bytes/100000?gate=pyshare"
LD_PRELOAD="$SHIM" SFSHIM_LOG=debug timeout -s KILL 300 "$PY" "$SF_TMP/share.py" \
	"$SF_HTTP$path" "$N" >"$SF_TMP/py.out" 2>"$SF_TMP/py.err" &
pid=$!
ok=1
sf_wait_count 1 sf_grep_count "GET $path" "$SF_TMP/origin.log" || ok=0
[ $ok = 1 ] && { sf_wait_count $((N - 1)) sf_grep_count ": joined flight" "$SF_TMP/py.err" || ok=0; }
sf_open_gate pyshare
rc=0
wait "$pid" || rc=$?
got=$(sf_grep_count "GET $path" "$SF_TMP/origin.log")
if [ $ok = 1 ] && [ $rc = 0 ] && [ "$got" = 1 ] &&
	grep -qx "ok=$N codes=\[200\] bodies=1" "$SF_TMP/py.out"; then
	echo "ok: pycurl (gnutls, RTLD_LOCAL): $N threads on one CurlShare, 1 origin request, identical bodies"
else
	echo "FAIL: pycurl CurlShare: exit $rc, $got origin requests, want 1"
	sed 's/^/    /' "$SF_TMP/py.out"
	grep -v 'joined flight' "$SF_TMP/py.err" | head -20 | sed 's/^/    stderr: /'
	fail=1
fi
exit $fail
