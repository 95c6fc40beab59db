#!/bin/bash
# scripts/sfshim, the launcher: its options reach the environment, the
# library is prepended to LD_PRELOAD keeping what was there, the command's
# exit status comes back, bad input gets one line on stderr and status 2,
# and the stats summary of a real program appears.
set -eu
. tests/integration/common.bash
lib=$(realpath "$B/libsfshim.so")
fail() { echo "FAIL: $*"; exit 1; }
export SFSHIM_LIB="$lib"
# An instrumented library needs its sanitizer runtime first in LD_PRELOAD;
# what was there must stay, in front of nothing else than the runtime.
# TSan's runtime cannot run bash itself (it crashes in the launcher before
# the exec); the TSan-built shim pulls its runtime in as a dependency.
# No library: just the sanitizer runtime.
# shellcheck disable=SC2119
base_preload=$(sf_preload)
[ "$SAN" != tsan ] || base_preload=
keep=$(realpath "$B/tests/libsf_fakeres.so")

# --help names every option.
help=$(scripts/sfshim --help)
for o in --no-dns --no-curl --dns-include --dns-exclude --url-include \
	--url-exclude --wait-ms --retry-errors --spill --log --stats --trace \
	--trace-events --scope; do
	grep -q -- "$o" <<<"$help" || fail "--help does not mention $o"
done
echo "ok   --help lists every option"

# Options map to the variables; LD_PRELOAD gains the shim and keeps the rest.
out=$(LD_PRELOAD="${base_preload:+$base_preload }$keep" scripts/sfshim \
	--no-dns --no-curl --dns-include='a.*' --dns-exclude='*.b' \
	--url-include='https://x/*' --url-exclude='*y*' --wait-ms=75 \
	--retry-errors --spill=64k --log=info --stats=/dev/null \
	--trace=/tmp/t-%p.json --trace-events 128 --scope=web.pool_1 -- env)
for kv in SFSHIM_DNS=0 SFSHIM_CURL=0 'SFSHIM_DNS_INCLUDE=a.*' \
	'SFSHIM_DNS_EXCLUDE=*.b' 'SFSHIM_URL_INCLUDE=https://x/*' \
	'SFSHIM_URL_EXCLUDE=*y*' SFSHIM_WAIT_MS=75 SFSHIM_RETRY_ERRORS=1 \
	SFSHIM_SPILL=64k SFSHIM_LOG=info SFSHIM_STATS=/dev/null \
	SFSHIM_TRACE=/tmp/t-%p.json SFSHIM_TRACE_EVENTS=128 \
	SFSHIM_SCOPE=web.pool_1; do
	grep -qxF -- "$kv" <<<"$out" || fail "env lacks $kv"
done
preload=$(sed -n 's/^LD_PRELOAD=//p' <<<"$out")
case " $preload " in
*" $lib "*) ;;
*) fail "LD_PRELOAD '$preload' lacks $lib" ;;
esac
case " $preload " in
*" $keep "*) ;;
*) fail "LD_PRELOAD '$preload' dropped $keep" ;;
esac
echo "ok   options reach the environment; LD_PRELOAD=$preload"

# The exit status is the command's.
set +e
LD_PRELOAD="$base_preload" scripts/sfshim -- sh -c 'exit 7'
rc=$?
set -e
[ "$rc" = 7 ] || fail "exit status $rc, expected 7"
echo "ok   exit status passed on (7)"

# Bad input: one line on stderr, status 2, nothing run.  (No sanitizer
# runtime preloaded here: the launcher's own bash would be leak-checked.)
for bad in "--wait-ms=soon -- true" "--bogus -- true" "--log=loud -- true" \
	"--trace-events=8 -- true" "--stats=json: -- true" "--scope=a/b -- true" \
	"--scope= -- true" "--scope=$(printf 'x%.0s' $(seq 65)) -- true" \
	"--scope=caf$(printf '\303\251') -- true" ""; do
	set +e
	# shellcheck disable=SC2086 # the cases are word lists on purpose
	err=$(LD_PRELOAD='' scripts/sfshim $bad 2>&1 >/dev/null)
	rc=$?
	set -e
	[ "$rc" = 2 ] || fail "'sfshim $bad' exited $rc, expected 2"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] ||
		fail "'sfshim $bad' printed more than one line: $err"
done
echo "ok   bad options: status 2, one line on stderr"

# A missing library is reported, not ignored.
set +e
err=$(LD_PRELOAD='' SFSHIM_LIB=/nonexistent/libsfshim.so scripts/sfshim -- true 2>&1)
rc=$?
set -e
{ [ "$rc" = 2 ] && [ -n "$err" ]; } || fail "missing library: rc=$rc '$err'"
echo "ok   missing library: status 2 ($err)"

# A real program under the launcher (getent ahosts calls getaddrinfo once)
# writes the stats summary at exit.
stats=$(LD_PRELOAD="$base_preload" scripts/sfshim --stats -- \
	getent ahosts localhost 2>&1 >/dev/null)
grep -q '^sfshim\[[0-9]*\]: dns: calls=1 leaders=1 ' <<<"$stats" ||
	fail "no stats summary with one call: $stats"
echo "ok   --stats: $(grep 'dns: calls' <<<"$stats")"

# Versions: one source (VERSION in the Makefile).  The launcher reports its
# own and the library's, the library says its version in one info line when
# it loads its configuration and in the stats summary.
# Outside any jobserver of the make that runs this test: a -j parent would
# make the inner make announce its directory.
version=$(MAKEFLAGS='' MAKELEVEL='' make -s --no-print-directory version)
[ -n "$version" ] || fail "make version printed nothing"
out=$(LD_PRELOAD='' scripts/sfshim --version)
[ "$(sed -n 1p <<<"$out")" = "sfshim $version" ] ||
	fail "--version first line is not 'sfshim $version': $out"
grep -qxF "library: $lib (libsfshim $version)" <<<"$out" ||
	fail "--version does not name the library and its version: $out"
echo "ok   --version: $(tr '\n' ' ' <<<"$out")"
log=$(LD_PRELOAD="$base_preload" scripts/sfshim --log=info --stats -- \
	getent ahosts localhost 2>&1 >/dev/null)
[ "$(grep -c "^sfshim\[[0-9]*\]: libsfshim $version loaded" <<<"$log")" = 1 ] ||
	fail "no single 'libsfshim $version loaded' info line: $log"
grep -q "^sfshim\[[0-9]*\]: libsfshim $version summary" <<<"$log" ||
	fail "the stats summary does not name version $version: $log"
echo "ok   version $version in the load line and the stats summary"

# The same program with JSON stats and a trace: one JSON line, one slice.
out=$(mktemp -d)
LD_PRELOAD="$base_preload" scripts/sfshim --stats="json:$out/s.jsonl" \
	--trace="$out/t.json" -- getent ahosts localhost >/dev/null
/usr/bin/python3 - "$out" <<'PYEOF' || fail "--stats=json:/--trace output"
import json, sys
d = sys.argv[1]
s = [json.loads(l) for l in open(d + "/s.jsonl")]
assert len(s) == 1 and s[0]["api"]["dns"]["calls"] == 1, s
assert s[0]["api"]["dns"]["leaders"] == 1, s
t = json.load(open(d + "/t.json"))
x = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert len(x) == 1 and x[0]["name"] == "getaddrinfo leader", x
assert x[0]["args"]["key"] == "localhost", x
PYEOF
rm -rf "$out"
echo "ok   --stats=json: and --trace: one JSON line, one leader slice"
