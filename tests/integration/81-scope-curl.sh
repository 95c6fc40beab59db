#!/bin/bash
# libcurl easy GETs across the processes of one scope (SFSHIM_SCOPE):
# tests/fixtures/sf_curl_fetch (threads of one client, each writing body,
# header lines and getinfo/header API answers to files) against
# tests/fixtures/sf_httpd, whose gate= holds a response until this script
# saw everyone arrive (the shim's debug lines "leading flight across
# processes" and "joined flight across processes"), and whose hold= holds
# it in the middle of its body.  No sleeps: every step waits for a log
# line, a file size or the origin's log.
#
#  herd      16 processes, one URL: one origin request, every output
#            byte-identical to a lone run without the library;
#  mixed     4 processes x 4 threads: one request, identical outputs;
#  tool      12 curl tool processes, the leader killed mid-body: every
#            other prints exactly what curl alone prints, 2 requests;
#  kill      kill -9 of the leader process mid-body: every follower
#            completes with exact bytes, exactly one extra request;
#  changed   the same with a resource that changes between requests:
#            followers fail with CURLE_RECV_ERROR naming sfshim, never
#            success with spliced bytes;
#  timeout   a follower's own TIMEOUT_MS across processes: it alone fails
#            (CURLE_OPERATION_TIMEDOUT), the others complete;
#  handover  the leader process's own TIMEOUT_MS: one follower process asks
#            again for the others, exact bytes, 2 requests;
#  cancel    a thread of a follower process cancelled while it follows;
#  expired   a follower past its SFSHIM_WAIT_MS mid-body fetches alone, its
#            response compared with what its program has;
#  prefork   python3 + pycurl workers forked after the master used the
#            library: 1 request, exact bodies;
#  full      the scope directory fills up mid-body: followers fetch alone,
#            exact bytes;
#  files     no response file is left in the scope directory after any of
#            the above; leftovers of processes killed with kill -9 are
#            removed by the next process of the scope.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

sf_scope_dirs
ORIGIN="$SF_TMP/origin.log"
sf_start_httpd "$ORIGIN"
FETCH="$SF_ROOT/$B/tests/sf_curl_fetch"
SHIM="$(sf_preload "$B/libsfshim.so")"
SIZE=400000

fail() {
	echo "FAIL: $*"
	exit 1
}

requests() { sf_grep_count "GET $1" "$ORIGIN"; }
files_left() { find "$XDG_RUNTIME_DIR" -name 'b-*' | wc -l; }
# expect_requests NAME PATH N: the origin saw exactly N requests of PATH
expect_requests() {
	local n
	n=$(requests "$2")
	[ "$n" -eq "$3" ] || fail "$1: origin saw $n requests, expected $3"
}
# expect_no_files NAME: no response file is left in the scope directory
expect_no_files() {
	local n
	n=$(files_left)
	[ "$n" -eq 0 ] || fail "$1: $n response files left behind"
}
# lines matching PAT in every stderr file of run NAME
count_logs() { cat "$SF_TMP/$1".*.err 2>/dev/null | grep -cF -- "$2" || true; }
# expect_logs NAME PAT N WHAT: exactly N lines of run NAME say PAT
expect_logs() {
	local n
	n=$(count_logs "$1" "$2")
	[ "$n" -eq "$3" ] || fail "$1: $n $4, expected $3"
}
# how many of run NAME's body files hold at least N bytes
bodies_at_least() {
	local f n=0
	for f in "$SF_TMP/$1".*.[0-9]*; do
		case $f in *.hdr | *.info | *.err) continue ;; esac
		[ "$(stat -c %s "$f")" -ge "$2" ] && n=$((n + 1))
	done
	echo "$n"
}

# cross NAME FIELD: FIELD (led, answered, served, promoted, alone) of the
# curl "crossed processes" stats lines, summed over run NAME's processes.
cross() {
	cat "$SF_TMP/$1".*.err | grep -F 'curl: crossed processes' |
		sed -n "s/.* $2=\([0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'
}

# The reference: one fetch alone, without the library.
reference() {
	"$FETCH" -o "$SF_TMP/ref" "$SF_HTTP/bytes/$SIZE?chunk=16384" ||
		fail "reference fetch failed"
}

# start NAME PROCS THREADS URL [ARGS...]: PROCS processes in scope NAME.
PIDS=()
start() {
	local name=$1 procs=$2 threads=$3 url=$4 i
	shift 4
	PIDS=()
	for i in $(seq 1 "$procs"); do
		env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug SFSHIM_STATS=stderr \
			LD_PRELOAD="$SHIM" "$FETCH" -t "$threads" "$@" \
			-o "$SF_TMP/$name.$i" "$url" 2>"$SF_TMP/$name.$i.err" &
		PIDS+=($!)
	done
}

# all_exited_0 NAME WHO: every process of wait_all's RCS exited 0 (else
# its stderr is shown).
all_exited_0() {
	local rc
	for rc in "${RCS[@]}"; do
		[ "$rc" -eq 0 ] || { show_errs "$1"; fail "$1: $2 exited $rc"; }
	done
}
# wait_all: every started process; their exit codes in RCS.
RCS=()
wait_all() {
	local p rc
	RCS=()
	for p in "${PIDS[@]}"; do
		rc=0
		# (bash's "Killed" notice for the leader killed on purpose
		# is not wanted)
		{ wait "$p"; } 2>/dev/null || rc=$?
		RCS+=("$rc")
	done
}

# same NAME PROCS THREADS: every output of run NAME equals the reference.
same() {
	local name=$1 procs=$2 threads=$3 i t
	for i in $(seq 1 "$procs"); do
		for t in $(seq 0 $((threads - 1))); do
			cmp -s "$SF_TMP/ref.0" "$SF_TMP/$name.$i.$t" ||
				fail "$name: process $i thread $t: body differs"
			cmp -s "$SF_TMP/ref.0.hdr" "$SF_TMP/$name.$i.$t.hdr" ||
				fail "$name: process $i thread $t: headers differ"
			cmp -s "$SF_TMP/ref.0.info" "$SF_TMP/$name.$i.$t.info" || {
				diff "$SF_TMP/ref.0.info" "$SF_TMP/$name.$i.$t.info" || true
				fail "$name: process $i thread $t: answers differ"
			}
		done
	done
}

# No sanitizer report in any process of run NAME (their exit codes alone
# would not tell a report from an expected failure).
san_clean() {
	local n
	n=$(cat "$SF_TMP/$1".*.err 2>/dev/null |
		grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:|WARNING: ThreadSanitizer' || true)
	[ "$n" -eq 0 ] || { show_errs "$1"; fail "$1: sanitizer reports"; }
}

show_errs() {
	local f
	for f in "$SF_TMP/$1".*.err; do
		grep -v 'joined flight' "$f" | sed "s|^|    $(basename "$f"): |" | head -20
	done
}

# herd NAME PROCS THREADS: one gated URL, everyone joins, one request.
herd() {
	local name=$1 procs=$2 threads=$3
	local path="/bytes/$SIZE?chunk=16384&gate=$name"
	start "$name" "$procs" "$threads" "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	sf_wait_count $((procs - 1)) count_logs "$name" "joined flight across processes" ||
		{ show_errs "$name"; fail "$name: processes did not join"; }
	sf_wait_count $((procs * threads - 1)) count_logs "$name" ": joined flight" ||
		{ show_errs "$name"; fail "$name: threads did not join"; }
	sf_wait_count 1 requests "$path" || fail "$name: no request"
	sf_open_gate "$name"
	wait_all
	all_exited_0 "$name" "a process"
	expect_requests "$name" "$path" 1
	expect_logs "$name" "leading flight across processes" 1 "leaders across processes"
	expect_logs "$name" "joined flight across processes" $((procs - 1)) "joined across processes"
	same "$name" "$procs" "$threads"
	san_clean "$name"
	local want="1 $((procs - 1)) $((procs - 1)) 0 0" got
	got="$(cross "$name" led) $(cross "$name" answered) $(cross "$name" served) $(cross "$name" promoted) $(cross "$name" alone)"
	[ "$got" = "$want" ] || fail "$name: crossed stats led/answered/served/promoted/alone: $got, expected $want"
	expect_no_files "$name"
	echo "ok: $name: $procs processes x $threads threads, 1 origin request, identical outputs, no files left"
}

reference
herd herd 16 1
herd mixed 4 4

# ---- the curl tool, its leader killed mid-body ---------------------------
# 12 curl processes (the curl tool's share handle holds nothing that changes
# a GET: shim/curl/sf_curl_share.h); the leader is killed after every
# process printed part of the body; each survivor prints exactly what curl
# alone prints; 2 requests.
tool() {
	local name=tool procs=12 i
	local path="/bytes/$SIZE?chunk=16384&gate=tool&hold=h-tool"
	local curl_shim
	curl_shim="$(sf_preload_host "$B/libsfshim.so")"
	PIDS=()
	for i in $(seq 1 "$procs"); do
		env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug LD_PRELOAD="$curl_shim" \
			/usr/bin/curl -s "$SF_HTTP$path" >"$SF_TMP/$name.$i.0" \
			2>"$SF_TMP/$name.$i.err" &
		PIDS+=($!)
	done
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	sf_wait_count $((procs - 1)) count_logs "$name" "joined flight across processes" ||
		{ show_errs "$name"; fail "$name: processes did not join"; }
	sf_wait_count 1 requests "$path" || fail "$name: no request"
	local leader
	leader=$(cat "$SF_TMP/$name".*.err | grep -F "leading flight across processes" |
		sed -n 's/^sfshim\[\([0-9]*\)\].*/\1/p')
	sf_open_gate "$name"
	sf_wait_count "$procs" bodies_at_least "$name" 8192 ||
		{ show_errs "$name"; fail "$name: not every curl printed the first piece"; }
	kill -9 "$leader"
	sf_wait_count 1 count_logs "$name" "took over across processes" ||
		{ show_errs "$name"; fail "$name: nobody took over"; }
	sf_wait_count 2 requests "$path" || fail "$name: no second request"
	sf_open_gate "h-$name"
	wait_all
	/usr/bin/curl -s "$SF_HTTP/bytes/$SIZE?chunk=16384" >"$SF_TMP/$name.ref" ||
		fail "$name: curl alone failed"
	local rc n ok=0
	for i in $(seq 1 "$procs"); do
		rc=${RCS[$((i - 1))]}
		[ "$rc" -eq 137 ] && continue
		[ "$rc" -eq 0 ] || { show_errs "$name"; fail "$name: curl $i exited $rc"; }
		cmp -s "$SF_TMP/$name.ref" "$SF_TMP/$name.$i.0" ||
			fail "$name: curl $i: output differs from curl alone"
		ok=$((ok + 1))
	done
	[ "$ok" -eq $((procs - 1)) ] || fail "$name: $ok curl processes completed"
	expect_requests "$name" "$path" 2
	san_clean "$name"
	expect_no_files "$name"
	echo "ok: $name: $procs curl tools, the leader killed mid-body: $ok outputs identical to curl alone, 2 requests"
}
tool

# ---- kill -9 of the leader process in the middle of the body ------------
# kill NAME VER: the leader gets its headers and first 16 KiB piece, every
# process has that piece, then the leader dies.  The follower that takes
# over asks the origin again (held after its first piece too, until every
# process switched to its file).
killed() {
	local name=$1 ver=$2 procs=8
	local path="/bytes/$SIZE?chunk=16384&gate=$name&hold=h-$name"
	[ -z "$ver" ] || path="$path&ver=$ver"
	start "$name" "$procs" 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	sf_wait_count $((procs - 1)) count_logs "$name" "joined flight across processes" ||
		{ show_errs "$name"; fail "$name: processes did not join"; }
	sf_wait_count 1 requests "$path" || fail "$name: no request"
	local leader
	leader=$(cat "$SF_TMP/$name".*.err | grep -F "leading flight across processes" |
		sed -n 's/^sfshim\[\([0-9]*\)\].*/\1/p')
	[ -n "$leader" ] || fail "$name: leader pid not found"
	sf_open_gate "$name"
	sf_wait_count "$procs" bodies_at_least "$name" 8192 ||
		{ show_errs "$name"; fail "$name: not every process got the first piece"; }
	kill -9 "$leader"
	sf_wait_count 1 count_logs "$name" "took over across processes" ||
		{ show_errs "$name"; fail "$name: nobody took over"; }
	sf_wait_count 2 requests "$path" || fail "$name: no second request"
	sf_open_gate "h-$name"
	wait_all
	local i p rc n ok=0 bad=0
	for i in $(seq 1 "$procs"); do
		p=${PIDS[$((i - 1))]} rc=${RCS[$((i - 1))]}
		if [ "$rc" -eq 137 ]; then
			continue # the leader: killed by this script via its pid
		fi
		if [ -n "$ver" ]; then
			# a changed response: never success, the error names sfshim
			grep -qx 'rc=56' "$SF_TMP/$name.$i.0.info" ||
				fail "$name: process $i: $(head -2 "$SF_TMP/$name.$i.0.info" | tr '\n' ' ')"
			grep -q '^err=sfshim: the response changed' "$SF_TMP/$name.$i.0.info" ||
				fail "$name: process $i: error does not name sfshim"
			[ "$rc" -eq 1 ] || fail "$name: process $i exited $rc"
			bad=$((bad + 1))
		else
			[ "$rc" -eq 0 ] || { show_errs "$name"; fail "$name: process $i exited $rc"; }
			cmp -s "$SF_TMP/ref.0" "$SF_TMP/$name.$i.0" ||
				fail "$name: process $i: body differs ($(sha256sum <"$SF_TMP/$name.$i.0"))"
			cmp -s "$SF_TMP/ref.0.hdr" "$SF_TMP/$name.$i.0.hdr" ||
				fail "$name: process $i: headers differ"
			cmp -s "$SF_TMP/ref.0.info" "$SF_TMP/$name.$i.0.info" ||
				fail "$name: process $i: answers differ"
			ok=$((ok + 1))
		fi
		: "$p"
	done
	san_clean "$name"
	n=$(requests "$path")
	if [ -n "$ver" ]; then
		# Followers take over in turn, each asking the origin once and
		# getting another version; the others fail on reading its file.
		local took
		took=$(count_logs "$name" "took over across processes")
		[ "$bad" -eq $((procs - 1)) ] || fail "$name: $bad failed, expected $((procs - 1))"
		[ "$took" -ge 1 ] || fail "$name: nobody took over"
		[ "$n" -eq $((took + 1)) ] || fail "$name: origin saw $n requests, expected $((took + 1))"
		echo "ok: $name: leader killed mid-body, the resource changed: $bad followers failed with CURLE_RECV_ERROR naming sfshim, none spliced ($took took over, $n requests)"
	else
		[ "$ok" -eq $((procs - 1)) ] || fail "$name: $ok completed"
		[ "$n" -eq 2 ] || fail "$name: origin saw $n requests, expected 2"
		expect_logs "$name" "took over across processes" 1 "took over"
		n=$(cross "$name" promoted)
		[ "$n" -eq 1 ] || fail "$name: crossed stats: promoted=$n, expected 1"
		echo "ok: $name: leader killed mid-body, $ok followers exact (sha256 $(sha256sum <"$SF_TMP/ref.0" | cut -c1-16)), 2 origin requests"
	fi
	expect_no_files "$name"
}

killed kill ""
killed changed 1

# ---- a follower's own deadline ------------------------------------------
timeout_case() {
	local name=timeout path="/bytes/$SIZE?chunk=16384&gate=timeout"
	start "$name" 3 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	sf_wait_count 2 count_logs "$name" "joined flight across processes" ||
		fail "$name: processes did not join"
	# one more process, whose own limit is 300 ms
	env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug LD_PRELOAD="$SHIM" \
		"$FETCH" -T 300 -o "$SF_TMP/$name.short" "$SF_HTTP$path" \
		2>"$SF_TMP/$name.short.err" && fail "$name: the short one succeeded"
	grep -qx 'rc=28' "$SF_TMP/$name.short.0.info" ||
		fail "$name: short: $(head -2 "$SF_TMP/$name.short.0.info" | tr '\n' ' ')"
	grep -q '^err=Operation timed out after' "$SF_TMP/$name.short.0.info" ||
		fail "$name: short: libcurl's text expected"
	grep -qF "joined flight across processes" "$SF_TMP/$name.short.err" ||
		fail "$name: the short one did not follow"
	sf_open_gate "$name"
	wait_all
	all_exited_0 "$name" "a process"
	same "$name" 3 1
	san_clean "$name"
	expect_requests "$name" "$path" 1
	expect_no_files "$name"
	echo "ok: $name: a follower's own 300 ms limit failed it alone (28); the others exact, 1 request"
}
timeout_case

# ---- the leader process fails on its own ---------------------------------
# Its own TIMEOUT_MS (300 ms) passes while the origin holds the response:
# that failure is not shared.  One follower process asks again on behalf of
# the others (the origin holds that request too, until this script saw the
# hand-over); every follower gets exact bytes; 2 requests.
handover() {
	local name=handover path="/bytes/$SIZE?chunk=16384&gate=handover"
	PIDS=()
	env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug LD_PRELOAD="$SHIM" \
		"$FETCH" -T 300 -o "$SF_TMP/$name.lead" "$SF_HTTP$path" \
		2>"$SF_TMP/$name.lead.err" &
	local lead=$!
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	start "$name" 4 1 "$SF_HTTP$path"
	sf_wait_count 4 count_logs "$name" "joined flight across processes" ||
		fail "$name: processes did not join"
	local rc=0
	wait "$lead" || rc=$?
	[ "$rc" -eq 1 ] || fail "$name: the leader exited $rc"
	grep -qx 'rc=28' "$SF_TMP/$name.lead.0.info" ||
		fail "$name: leader: $(head -2 "$SF_TMP/$name.lead.0.info" | tr '\n' ' ')"
	sf_wait_count 1 count_logs "$name" "took over across processes" ||
		fail "$name: nobody took over"
	sf_wait_count 2 requests "$path" || fail "$name: no second request"
	sf_open_gate "$name"
	wait_all
	all_exited_0 "$name" "a follower"
	same "$name" 4 1
	san_clean "$name"
	expect_requests "$name" "$path" 2
	expect_logs "$name" "took over across processes" 1 "took over"
	expect_no_files "$name"
	echo "ok: $name: the leader process's own timeout handed the flight to one follower process; 4 exact, 2 requests"
}
handover

# ---- a follower's thread cancelled -----------------------------------------
# Process 2 (4 threads) follows process 1; its thread 0 is cancelled while
# everyone waits (whether it was the thread that followed the other process
# or one of its in-process followers: if the former, one of the latter takes
# its place in the scope's flight).  The other 3 threads and process 1 get
# exact bytes; still one request; no file left.
cancel() {
	local name=cancel path="/bytes/$SIZE?chunk=16384&gate=cancel"
	start "$name" 1 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		fail "$name: no leader"
	local first=${PIDS[0]} p
	env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug LD_PRELOAD="$SHIM" \
		"$FETCH" -t 4 -k -o "$SF_TMP/$name.2" "$SF_HTTP$path" \
		2>"$SF_TMP/$name.2.err" &
	p=$!
	PIDS=("$first" "$p")
	sf_wait_count 1 count_logs "$name" "joined flight across processes" ||
		fail "$name: no follower process"
	sf_wait_count 4 count_logs "$name" ": joined flight" ||
		fail "$name: its threads did not join"
	kill -USR1 "$p"
	sf_wait_count 1 sf_grep_count "rc=cancelled" "$SF_TMP/$name.2.0.info" ||
		fail "$name: thread 0 was not cancelled"
	sf_open_gate "$name"
	wait_all
	local rc n t
	all_exited_0 "$name" "a process"
	cmp -s "$SF_TMP/ref.0" "$SF_TMP/$name.1.0" || fail "$name: leader: body differs"
	for t in 1 2 3; do
		cmp -s "$SF_TMP/ref.0" "$SF_TMP/$name.2.$t" || fail "$name: thread $t: body differs"
		cmp -s "$SF_TMP/ref.0.info" "$SF_TMP/$name.2.$t.info" ||
			fail "$name: thread $t: answers differ"
	done
	san_clean "$name"
	expect_requests "$name" "$path" 1
	expect_no_files "$name"
	echo "ok: $name: a follower process's thread cancelled while following ($(count_logs "$name" "joined flight across processes") joined across processes); its 3 other threads exact, 1 request, no file left"
}
cancel

# ---- a follower's SFSHIM_WAIT_MS mid-body ---------------------------------
# The leader holds after its first piece; one follower process (waiting at
# most 300 ms without progress) fetches alone: its own response is compared
# with the piece its program has, then goes on.  Everyone exact, 2 requests.
expired() {
	local name=expired path="/bytes/$SIZE?chunk=16384&gate=expired&hold=h-expired"
	start "$name" 2 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "joined flight across processes" ||
		fail "$name: no follower"
	sf_open_gate "$name"
	sf_wait_count 2 bodies_at_least "$name" 8192 || fail "$name: no first piece"
	local p
	env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug SFSHIM_WAIT_MS=300 LD_PRELOAD="$SHIM" \
		"$FETCH" -o "$SF_TMP/$name.3" "$SF_HTTP$path" 2>"$SF_TMP/$name.3.err" &
	p=$!
	PIDS+=("$p")
	sf_wait_count 1 count_logs "$name" "for another process, fetching alone" ||
		{ show_errs "$name"; fail "$name: the short waiter did not fetch alone"; }
	sf_wait_count 2 requests "$path" || fail "$name: no second request"
	sf_open_gate "h-$name"
	wait_all
	local rc n
	all_exited_0 "$name" "a process"
	same "$name" 3 1
	san_clean "$name"
	expect_requests "$name" "$path" 2
	expect_no_files "$name"
	echo "ok: $name: a follower past its SFSHIM_WAIT_MS fetched alone; exact bytes for all 3, 2 requests"
}
expired

# ---- the scope directory fills up mid-body -------------------------------
# A 4 MiB tmpfs holds the table and the start of a 4 MB response: the
# leader's file cannot grow (ENOSPC); the other processes, which have part
# of the body, fetch alone, each response compared with what its program
# has.  Every output exact; 1 + 3 requests; the file is gone.
full() {
	local name=full size=4000000
	local path="/bytes/$size?chunk=16384&gate=full" run="$SF_TMP/small"
	mkdir -m 0700 "$run"
	mount -t tmpfs -o size=4m,mode=0700 tmpfs "$run"
	"$FETCH" -o "$SF_TMP/full.ref" "$SF_HTTP/bytes/$size?chunk=16384" ||
		fail "$name: reference"
	# The table first (processes starting together would each build one
	# under a temporary name before one of them links it into place).
	XDG_RUNTIME_DIR="$run" SFSHIM_SCOPE="s-$name" LD_PRELOAD="$SHIM" \
		"$FETCH" -o "$SF_TMP/full.first" "$SF_HTTP/text" || fail "$name: first process"
	XDG_RUNTIME_DIR="$run" start "$name" 4 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		{ show_errs "$name"; fail "$name: no leader"; }
	sf_wait_count 3 count_logs "$name" "joined flight across processes" ||
		{ show_errs "$name"; fail "$name: processes did not join"; }
	sf_open_gate "$name"
	wait_all
	local rc i n
	all_exited_0 "$name" "a process"
	for i in 1 2 3 4; do
		cmp -s "$SF_TMP/full.ref.0" "$SF_TMP/$name.$i.0" || fail "$name: process $i: body differs"
	done
	san_clean "$name"
	expect_logs "$name" "cannot write the response" 1 "leaders said the file could not grow"
	expect_requests "$name" "$path" 4
	n=$(cross "$name" alone)
	[ "$n" -eq 3 ] || fail "$name: crossed stats: alone=$n, expected 3"
	n=$(find "$run" -name 'b-*' | wc -l)
	[ "$n" -eq 0 ] || fail "$name: $n response files left behind"
	umount "$run"
	echo "ok: $name: the scope directory filled up mid-body: the 3 followers fetched alone, all exact, 4 requests"
}
full

# ---- prefork workers: python3 + pycurl, os.fork after the library is in use
# The master fetches once (the scope's table is attached), then forks 8
# workers that fetch one gated URL each: 1 request, every body exact.
prefork() {
	local name=prefork path="/bytes/$SIZE?chunk=16384&gate=prefork"
	cat >"$SF_TMP/prefork.py" <<'PY'
import hashlib, io, os, sys
import pycurl

base, url, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def fetch(u):
    buf = io.BytesIO()
    c = pycurl.Curl()
    c.setopt(pycurl.URL, u)
    c.setopt(pycurl.WRITEDATA, buf)
    c.perform()
    code = c.getinfo(pycurl.RESPONSE_CODE)
    c.close()
    return code, buf.getvalue()

fetch(base + "/text")  # the master uses the library before forking
kids = []
for i in range(n):
    pid = os.fork()
    if pid == 0:
        code, body = fetch(url)
        with open("%s.%d" % (out, i), "wb") as f:
            f.write(body)
        os._exit(0 if code == 200 else 3)
    kids.append(pid)
bad = 0
for pid in kids:
    _, st = os.waitpid(pid, 0)
    bad |= st != 0
sys.exit(1 if bad else 0)
PY
	local shim_host p rc n i
	shim_host="$(sf_preload_host "$B/libsfshim.so")"
	env SFSHIM_SCOPE="s-$name" SFSHIM_LOG=debug LD_PRELOAD="$shim_host" \
		/usr/bin/python3 "$SF_TMP/prefork.py" "$SF_HTTP" "$SF_HTTP$path" \
		"$SF_TMP/$name.out" 8 2>"$SF_TMP/$name.1.err" &
	p=$!
	sf_wait_count 1 count_logs "$name" "leading flight across processes" ||
		{ show_errs "$name"; fail "$name: no leader"; }
	sf_wait_count 7 count_logs "$name" "joined flight across processes" ||
		{ show_errs "$name"; fail "$name: workers did not join"; }
	sf_wait_count 1 requests "$path" || fail "$name: no request"
	sf_open_gate "$name"
	rc=0
	wait "$p" || rc=$?
	[ "$rc" -eq 0 ] || { show_errs "$name"; fail "$name: python exited $rc"; }
	for i in $(seq 0 7); do
		cmp -s "$SF_TMP/ref.0" "$SF_TMP/$name.out.$i" || fail "$name: worker $i: body differs"
	done
	san_clean "$name"
	expect_requests "$name" "$path" 1
	expect_no_files "$name"
	echo "ok: $name: 8 pycurl workers forked after the library was in use: 1 request, exact bodies"
}
prefork

# ---- leftovers of killed processes ---------------------------------------
# Leader and follower both killed mid-body: the file stays; the next
# process of the scope removes it.  A planted name of a flight that never
# ran goes too; a file that is not a response file's name stays.
leftovers() {
	local name=left path="/bytes/$SIZE?chunk=16384&gate=left&hold=h-left"
	start "$name" 2 1 "$SF_HTTP$path"
	sf_wait_count 1 count_logs "$name" "joined flight across processes" ||
		fail "$name: no follower"
	sf_open_gate "$name"
	sf_wait_count 2 bodies_at_least "$name" 8192 || fail "$name: no first piece"
	kill -9 "${PIDS[@]}"
	wait_all
	local n dir
	n=$(files_left)
	[ "$n" -eq 1 ] || fail "$name: expected the killed leader's file, found $n"
	dir=$(dirname "$(find "$XDG_RUNTIME_DIR" -name 'b-*')")
	: >"$dir/b-127-99999"
	: >"$dir/keep-me"
	env SFSHIM_SCOPE="s-$name" LD_PRELOAD="$SHIM" \
		"$FETCH" -o "$SF_TMP/$name.next" "$SF_HTTP/text" || fail "$name: next process failed"
	n=$(files_left)
	[ "$n" -eq 0 ] || fail "$name: $n leftovers after the next process"
	[ -e "$dir/keep-me" ] || fail "$name: a file that is not the library's was removed"
	rm -f "$dir/keep-me"
	sf_open_gate "h-left"
	echo "ok: $name: a killed leader's file and a planted one removed by the next process"
}
leftovers
