#!/bin/bash
# The curl tool across processes (issue 8): `seq 16 | xargs -P16 curl -s URL`
# in one scope (SFSHIM_SCOPE) makes one origin request, and every process
# prints exactly what curl prints without the library.  The curl tool
# always attaches its transfers to a share handle (COOKIE, DNS,
# SSL_SESSION, CONNECT, PSL, HSTS); the shim knows that share holds nothing
# that changes a plain GET (shim/curl/sf_curl_share.h).
#
# No sleeps: the origin holds the response (gate=) until the shim's debug
# lines say that one process leads and the 15 others joined across
# processes; then the gate opens and all 16 finish.
#
# Needs the library's scope support (SFSHIM_SCOPE, curl across processes):
# without it the script says so and skips.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash

LIB="$SF_ROOT/$B/libsfshim.so"
if ! grep -qaF "SFSHIM_SCOPE" "$LIB" ||
	! grep -qaF "joined flight across processes" "$LIB"; then
	echo "41-curl-tool-scope: SKIPPED: $LIB has no SFSHIM_SCOPE support for curl across processes"
	exit 0
fi
sf_private_world "$0" "$@"

sf_scope_dirs
ORIGIN="$SF_TMP/origin.log"
sf_start_httpd "$ORIGIN"
SHIM="$(sf_preload_host "$LIB")"
PROCS=16
GATE=tool-herd
URL="$SF_HTTP/bytes/300000?chunk=16384&gate=$GATE"
OUT="$SF_TMP/out"
mkdir -p "$OUT"

XARGS=
fail() {
	echo "FAIL: $*"
	# let the held processes finish before the directory goes
	if [ -n "$XARGS" ]; then
		sf_open_gate "$GATE" || true
		wait "$XARGS" || true
	fi
	local f
	for f in "$OUT"/err.*; do
		[ -f "$f" ] && sed "s|^|    $(basename "$f"): |" "$f" | grep -v 'joined flight' | head -10
	done
	exit 1
}
count_logs() { cat "$OUT"/err.* 2>/dev/null | grep -cF -- "$1" || true; }
requests() { sf_grep_count "GET /bytes/300000?" "$ORIGIN"; }

# Each process's stdout, stderr and exit status in its own file; only curl
# runs with the library (xargs and sh are not what is tested).
# shellcheck disable=SC2016 # $1..$4 are the inner sh's arguments
SFSHIM_SCOPE=curl-tool SFSHIM_LOG=debug \
	xargs -P"$PROCS" -I{} sh -c 'LD_PRELOAD="$4" /usr/bin/curl -s "$1" >"$2/out.$3" 2>"$2/err.$3"; echo $? >"$2/rc.$3"' \
	sh "$URL" "$OUT" {} "$SHIM" < <(seq "$PROCS") &
XARGS=$!

sf_wait_count 1 count_logs "leading flight across processes" || fail "no leader"
sf_wait_count $((PROCS - 1)) count_logs "joined flight across processes" ||
	fail "the curl processes did not join one flight"
sf_wait_count 1 requests || fail "no request reached the origin"
sf_open_gate "$GATE"
rc=0
wait "$XARGS" || rc=$?
XARGS=
[ "$rc" -eq 0 ] || fail "xargs exited $rc"

n=$(requests)
[ "$n" -eq 1 ] || fail "origin saw $n requests, expected 1"
n=$(count_logs "CURLOPT_SHARE")
[ "$n" -eq 0 ] || fail "$n processes passed through because of CURLOPT_SHARE"

# The reference: the same command without the library (the gate is open).
/usr/bin/curl -s "$URL" >"$SF_TMP/ref.out" 2>"$SF_TMP/ref.err" && ref_rc=0 || ref_rc=$?
[ -s "$SF_TMP/ref.out" ] || fail "the reference run printed nothing"
for i in $(seq "$PROCS"); do
	cmp -s "$SF_TMP/ref.out" "$OUT/out.$i" || fail "process $i: stdout differs from curl alone"
	[ "$(cat "$OUT/rc.$i")" = "$ref_rc" ] || fail "process $i: exit $(cat "$OUT/rc.$i"), alone $ref_rc"
	# stderr: the shim's own debug lines only, as alone (curl -s: nothing)
	if grep -v '^sfshim\[' "$OUT/err.$i" | cmp -s - "$SF_TMP/ref.err"; then :; else
		fail "process $i: stderr differs from curl alone"
	fi
done
echo "ok: $PROCS curl processes in one scope: 1 origin request, output byte-identical to curl alone"
