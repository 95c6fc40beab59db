#!/bin/bash
# getaddrinfo across processes (SFSHIM_SCOPE) against glibc's real stub
# resolver and the DNS fixture, in a private network and mount namespace
# with a private /dev/shm.
#
# sf_dnsd runs with its gate (-g): every query is logged when it arrives and
# answered only when the test opens the gate, after every caller of a burst
# has either joined a flight (the shim's "joined flight" debug lines) or
# reached the server.  So callers overlap for certain, and every count
# below is exact:
#   - 16 prefork workers (os.fork after the library is loaded and attached),
#     16 unrelated processes, 4 processes x 4 threads: one A and one AAAA
#     query each, every caller the same answer as a lookup without the
#     library; the JSON stats count what crossed processes;
#   - objects the scope must refuse (planted by another user, mode 0644,
#     wrong size, a symbolic link) and an invalid scope name: one line per
#     process, and each process makes its own query;
#   - two users with one scope name, two layout versions side by side: never
#     shared, one query each;
#   - the leader process killed (kill -9) while its query is held: one
#     follower takes over (one more query), the others get its answer;
#   - a follower in another process with a shorter SFSHIM_WAIT_MS gives up
#     and looks up alone (one more query), the rest is shared.
set -eu
. tests/integration/common.bash
HOSTS_EXTRA="192.0.2.80 first.test"
sf_private_world "$0" "$@"

fail() { echo "FAIL: $*"; exit 1; }

# Tables made here vanish with the namespace; glibc waits for the gate
# (30 s per try, no second try that would count as a query).
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
echo "options timeout:30 attempts:1" >>"$SF_TMP/resolv.conf"
unset XDG_RUNTIME_DIR SFSHIM_SCOPE SFSHIM_LOG SFSHIM_STATS
chmod 0755 "$SF_TMP"

zone=$SF_TMP/zone
for n in p1 u1 m1 pl wm ws sl us lv bad xd kl wl fu xc; do
	i=$((${#n} * 7 + $(printf '%d' "'$n")))
	printf '%s.test A 10.80.%d.1\n%s.test AAAA 2001:db8:80:%x::1\n' \
		"$n" "$i" "$n" "$i" >>"$zone"
done
sf_start_dnsd "$zone" "$SF_TMP/queries.log" -g
dnsd=${SF_PIDS[-1]}

PY=/usr/bin/python3
XDNS=$SF_ROOT/tests/integration/xdns.py
PRE=$(sf_preload "$B/libsfshim.so")
PRE2=$(sf_preload "$B/xlayout2/libsfshim.so")
[ -f "$B/xlayout2/libsfshim.so" ] || fail "$B/xlayout2/libsfshim.so not built"

count() { grep -cxF -- "$1" "$2" 2>/dev/null || true; }
queries() { count "$1.test $2" "$SF_TMP/queries.log"; }
gate_lines() { count "gate $1" "$SF_TMP/queries.log"; }

# wait_until WHAT CMD...: polls a condition (no timing assumed), 120 s at
# most; sanitizer builds start slowly.
wait_until() {
	local what=$1 _
	shift
	for _ in $(seq 1 2400); do
		"$@" && return 0
		sleep 0.05
	done
	fail "timed out waiting for $what"
}
at_least() { [ "$("$1" "$2" "$3")" -ge "$4" ]; }
# (The log file may not exist yet: 0.)
joined() {
	local n
	n=$(grep -c 'joined flight' "$1" 2>/dev/null) || true
	[ "${n:-0}" -ge "$2" ]
}

gates=0
open_gate() {
	kill -USR1 "$dnsd"
	gates=$((gates + 1))
	wait_until "the gate to open" at_least gate_lines open "" "$gates"
}
close_gate() {
	kill -USR2 "$dnsd"
	wait_until "the gate to close" at_least gate_lines closed "" "$gates"
}
# (gate_lines takes one argument; at_least passes "" as a second: ignored)

# The answer a process gets without the library, once the gate is open.
baseline() {
	LD_PRELOAD='' "$PY" "$XDNS" resolve "$1.test"
}

# finish NAME N: waits for the N background callers (pids in $procs),
# checks their exit status, and that each printed the same answer as a
# lookup without the library.  Leaves the gate closed again.
finish() {
	local name=$1 p rc=0 want
	for p in $procs; do
		wait "$p" || rc=$?
	done
	[ "$rc" = 0 ] || { cat "$SF_TMP/$name.err"; fail "$name: a caller exited $rc"; }
	want=$(baseline "$name")
	for f in "$SF_TMP/$name".out.*; do
		[ "$(cat "$f")" = "$want" ] ||
			fail "$name: $(basename "$f") got '$(cat "$f")', alone '$want'"
	done
	close_gate
}

# exact NAME A AAAA: the server saw exactly that many queries for NAME
# (before the baseline lookup).
exact() {
	local a aaaa
	a=$(queries "$1" A) aaaa=$(queries "$1" AAAA)
	if [ "$a" != "$2" ] || [ "$aaaa" != "$3" ]; then
		fail "$1: $a A and $aaaa AAAA queries, expected $2 and $3"
	fi
}

export SFSHIM_LOG=debug

# ---- 16 prefork workers ------------------------------------------------
# The master resolves first.test (/etc/hosts, no query) and so attaches the
# scope's table before it forks: the workers keep its mapping.
procs=
SFSHIM_SCOPE=pool SFSHIM_STATS="json:$SF_TMP/p1.jsonl" LD_PRELOAD="$PRE" \
	"$PY" "$XDNS" prefork p1.test 16 first.test \
	>"$SF_TMP/p1.out.0" 2>>"$SF_TMP/p1.err" &
procs=$!
wait_until "15 workers to join" joined "$SF_TMP/p1.err" 15
wait_until "the leader's query" at_least queries p1 A 1
open_gate
exact p1 1 1
finish p1
"$PY" - "$SF_TMP/p1.jsonl" <<'EOF' || fail "p1: crossed stats"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
x = [l["api"]["dns"]["crossed"] for l in lines]
assert len(lines) == 17, len(lines)           # master + 16 workers
assert all(l["scope"] == "pool" for l in lines)
tot = {k: sum(c[k] for c in x) for k in x[0]}
# led: the master's first.test and one worker; 15 answered by it.
assert tot == {"led": 2, "answered": 15, "served": 15, "promoted": 0,
               "alone": 0}, tot
assert max(c["served"] for c in x) == 15, x
EOF
echo "ok   16 prefork workers: 1 A + 1 AAAA query, one answer, 15 crossed"

# ---- 16 unrelated processes ------------------------------------------
procs=
for i in $(seq 16); do
	SFSHIM_SCOPE=herd LD_PRELOAD="$PRE" "$PY" "$XDNS" resolve u1.test \
		>"$SF_TMP/u1.out.$i" 2>>"$SF_TMP/u1.err" &
	procs="$procs $!"
done
wait_until "15 processes to join" joined "$SF_TMP/u1.err" 15
wait_until "the leader's query" at_least queries u1 A 1
open_gate
exact u1 1 1
finish u1
echo "ok   16 unrelated processes: 1 A + 1 AAAA query"

# ---- threads and processes mixed: 4 processes x 4 threads --------------
procs=
for i in 1 2 3 4; do
	SFSHIM_SCOPE=mixed LD_PRELOAD="$PRE" "$PY" "$XDNS" threads m1.test 4 \
		>"$SF_TMP/m1.out.$i" 2>>"$SF_TMP/m1.err" &
	procs="$procs $!"
done
# 3 in-process followers in each process, and 3 process leaders that
# joined the fourth's flight.
wait_until "15 callers to join" joined "$SF_TMP/m1.err" 15
wait_until "the leader's query" at_least queries m1 A 1
open_gate
exact m1 1 1
[ "$(grep -c 'joined flight of another process' "$SF_TMP/m1.err")" = 3 ] ||
	fail "m1: not 3 process leaders joined across processes"
finish m1
echo "ok   4 processes x 4 threads: 1 A + 1 AAAA query"

# ---- the leader process dies: a follower takes over --------------------
procs=
pids=()
for i in 1 2 3 4; do
	SFSHIM_SCOPE=killed LD_PRELOAD="$PRE" "$PY" "$XDNS" resolve kl.test \
		>"$SF_TMP/kl.out.$i" 2>>"$SF_TMP/kl.err" &
	pids+=($!)
done
wait_until "3 processes to join" joined "$SF_TMP/kl.err" 3
wait_until "the leader's query" at_least queries kl A 1
leader=
for p in "${pids[@]}"; do
	grep -q "^sfshim\[$p\]: .*joined flight" "$SF_TMP/kl.err" || leader=$p
done
[ -n "$leader" ] || fail "kl: no leader among ${pids[*]}"
kill -9 "$leader"
wait "$leader" 2>/dev/null || true
# A follower notices within milliseconds, and asks in its turn.
wait_until "a follower to take over" at_least queries kl A 2
open_gate
exact kl 2 2
[ "$(grep -c 'leader process gone, took over' "$SF_TMP/kl.err")" = 1 ] ||
	fail "kl: not exactly one follower took over"
procs=
for p in "${pids[@]}"; do
	[ "$p" = "$leader" ] || procs="$procs $p"
done
rm -f "$SF_TMP/kl.out.$(( $(printf '%s\n' "${pids[@]}" | grep -nx "$leader" | cut -d: -f1) ))"
finish kl
echo "ok   leader process killed: one follower took over (2 queries), 3 answers"

# ---- followers with a shorter wait limit look up alone ------------------
# The second process has two threads and SFSHIM_WAIT_MS=200: its leader
# thread follows the first process's flight, gives up after 200 ms and asks
# itself; its other thread follows that one in-process, gives up after its
# own 200 ms and asks too, without joining the first process's flight
# (its limit is spent): 3 queries, one join across processes.
procs=
SFSHIM_SCOPE=limit LD_PRELOAD="$PRE" "$PY" "$XDNS" resolve wl.test \
	>"$SF_TMP/wl.out.1" 2>>"$SF_TMP/wl.err" &
procs=$!
wait_until "the leader's query" at_least queries wl A 1
SFSHIM_SCOPE=limit SFSHIM_WAIT_MS=200 SFSHIM_STATS="json:$SF_TMP/wl.jsonl" \
	LD_PRELOAD="$PRE" "$PY" "$XDNS" threads wl.test 2 \
	>"$SF_TMP/wl.out.2" 2>>"$SF_TMP/wl.err" &
procs="$procs $!"
wait_until "the followers' own queries" at_least queries wl A 3
open_gate
exact wl 3 3
finish wl
[ "$(grep -c 'joined flight of another process' "$SF_TMP/wl.err")" = 1 ] ||
	fail "wl: not exactly one join across processes: $(cat "$SF_TMP/wl.err")"
"$PY" -c 'import json,sys; a=json.loads(open(sys.argv[1]).read())["api"]["dns"]; sys.exit(a["crossed"] != {"led":0,"answered":0,"served":0,"promoted":0,"alone":1} or a["expired"] != 1)' \
	"$SF_TMP/wl.jsonl" || fail "wl: stats $(cat "$SF_TMP/wl.jsonl")"
echo "ok   SFSHIM_WAIT_MS=200: both threads of a process looked up alone, one limit each (3 queries)"

# ---- a follower thread cancelled while it waits for another process ----
# (Under TSan cancellation is not tested, as in 70-faults.sh.)
if [ "$SAN" != tsan ]; then
	procs=
	SFSHIM_SCOPE=cancel LD_PRELOAD="$PRE" "$PY" "$XDNS" resolve xc.test \
		>"$SF_TMP/xc.out.1" 2>>"$SF_TMP/xc.err" &
	procs=$!
	wait_until "the leader's query" at_least queries xc A 1
	mkfifo "$SF_TMP/xc.fifo"
	SFSHIM_SCOPE=cancel SFSHIM_WAIT_MS=0 LD_PRELOAD="$PRE" \
		"$SF_ROOT/$B/tests/sf_xcancel" xc.test \
		<"$SF_TMP/xc.fifo" >"$SF_TMP/xc.cancel" 2>>"$SF_TMP/xc.err" &
	cpid=$!
	exec 7>"$SF_TMP/xc.fifo"
	wait_until "the thread to follow" joined "$SF_TMP/xc.err" 1
	echo cancel >&7
	exec 7>&-
	# Before the gate opens: a wait that ignored the cancellation would
	# last until then.
	gone() { grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null || [ ! -e "/proc/$1" ]; }
	wait_until "the cancelled thread's process to end" gone "$cpid"
	wait "$cpid" || fail "xc: sf_xcancel exited $?: $(cat "$SF_TMP/xc.cancel")"
	[ "$(cat "$SF_TMP/xc.cancel")" = cancelled ] || fail "xc: not cancelled"
	open_gate
	exact xc 1 1
	finish xc
	echo "ok   a follower thread cancelled while it waits for another process: gone at once"
fi

# ---- per-process mode: N processes, each its own query -----------------
# alone NAME N WHY [ENV...]: N processes that must not share; each says WHY
# once on stderr.
alone() {
	local name=$1 n=$2 why=$3 i
	shift 3
	procs=
	for i in $(seq "$n"); do
		env "$@" "$PY" "$XDNS" resolve "$name.test" \
			>"$SF_TMP/$name.out.$i" 2>>"$SF_TMP/$name.err" &
		procs="$procs $!"
	done
	wait_until "$n queries for $name" at_least queries "$name" A "$n"
	wait_until "$n queries for $name" at_least queries "$name" AAAA "$n"
	open_gate
	exact "$name" "$n" "$n"
	finish "$name"
	[ "$(grep -cF -- "$why" "$SF_TMP/$name.err")" = "$n" ] ||
		{ cat "$SF_TMP/$name.err"; fail "$name: not $n lines '$why'"; }
	! grep -q 'joined flight' "$SF_TMP/$name.err" || fail "$name: shared"
	[ "$(grep -c '^sfshim\[[0-9]*\]: SFSHIM_SCOPE' "$SF_TMP/$name.err")" = "$n" ] ||
		fail "$name: more than one scope line per process"
}

# Where the table of scope S lives: the library says so (info).
table_of() {
	SFSHIM_SCOPE=$1 SFSHIM_LOG=info LD_PRELOAD="${2:-$PRE}" \
		"$PY" "$XDNS" resolve first.test 2>&1 >/dev/null |
		sed -n 's/.*: shared table \(.*\)$/\1/p'
}

t=$(table_of planted)
case $t in
/dev/shm/sfshim-0-planted-[0-9]*-[0-9]*-[0-9]*-v1) ;;
*) fail "table name '$t'" ;;
esac
rm -f "$t"
# shellcheck disable=SC2016 # $1 is the inner shell's
setpriv --reuid=nobody --regid=nogroup --clear-groups \
	sh -c 'umask 077; : >"$1"' sh "$t"
[ "$(stat -c %U "$t")" = nobody ] || fail "nobody could not plant $t"
alone pl 4 "belongs to another user" SFSHIM_SCOPE=planted LD_PRELOAD="$PRE"
echo "ok   object planted by nobody: refused, one line and one query per process"

t=$(table_of wrongmode)
chmod 0644 "$t"
alone wm 4 "does not have mode 0600" SFSHIM_SCOPE=wrongmode LD_PRELOAD="$PRE"
echo "ok   object with mode 0644: refused"

t=$(table_of wrongsize)
truncate -s 4096 "$t"
alone ws 4 "has the wrong size" SFSHIM_SCOPE=wrongsize LD_PRELOAD="$PRE"
echo "ok   object of the wrong size: refused"

t=$(table_of symlink)
rm -f "$t"
ln -s "$SF_TMP/elsewhere" "$t"
alone sl 4 "is a symbolic link" SFSHIM_SCOPE=symlink LD_PRELOAD="$PRE"
[ ! -e "$SF_TMP/elsewhere" ] || fail "something was created through the link"
echo "ok   symbolic link: refused, nothing created through it"

alone bad 4 "SFSHIM_SCOPE is not a scope name" SFSHIM_SCOPE='no/such' LD_PRELOAD="$PRE"
echo "ok   invalid scope name: one line, per-process mode"

# ---- never shared: two users, two layouts ------------------------------
# One caller each; had they shared, the second would join the first's
# flight and never reach the server, and the wait would time out.
# apart SCOPE TAG PRE2 [CMD...]: one caller with $PRE and one with PRE2,
# run through CMD (e.g. setpriv), resolve TAG.test in scope SCOPE: one
# query each, nobody joined a flight.
apart() {
	local scope=$1 tag=$2 pre2=$3
	shift 3
	procs=
	SFSHIM_SCOPE=$scope LD_PRELOAD="$PRE" "$PY" "$XDNS" resolve "$tag.test" \
		>"$SF_TMP/$tag.out.1" 2>>"$SF_TMP/$tag.err" &
	procs=$!
	SFSHIM_SCOPE=$scope LD_PRELOAD="$pre2" "$@" "$PY" "$XDNS" resolve \
		"$tag.test" >"$SF_TMP/$tag.out.2" 2>>"$SF_TMP/$tag.err" &
	procs="$procs $!"
	wait_until "2 queries for $tag" at_least queries "$tag" A 2
	open_gate
	exact "$tag" 2 2
	finish "$tag"
	! grep -q 'joined flight' "$SF_TMP/$tag.err" || fail "$tag: shared"
}

apart same us "$PRE" setpriv --reuid=nobody --regid=nogroup --clear-groups
ls /dev/shm/sfshim-0-same-*-v1 >/dev/null || fail "no table of root"
ls /dev/shm/sfshim-65534-same-*-v1 >/dev/null || fail "no table of nobody"
echo "ok   two users, one scope name: two tables, one query each"

apart layouts lv "$PRE2"
ls /dev/shm/sfshim-0-layouts-*-v1 >/dev/null || fail "no layout 1 table"
ls /dev/shm/sfshim-0-layouts-*-v2 >/dev/null || fail "no layout 2 table"
echo "ok   two layout versions side by side: two tables, one query each"

# ---- $XDG_RUNTIME_DIR: used when it is this user's 0700 directory -------
mkdir -m 0700 "$SF_TMP/xdg"
t=$(XDG_RUNTIME_DIR=$SF_TMP/xdg table_of xdg)
case $t in "$SF_TMP/xdg/sfshim-0-xdg-"*) ;; *) fail "XDG table at '$t'" ;; esac
[ "$(stat -c %a "$t")" = 600 ] || fail "table mode $(stat -c %a "$t")"
chmod 0755 "$SF_TMP/xdg"
t=$(XDG_RUNTIME_DIR=$SF_TMP/xdg table_of xdg)
case $t in /dev/shm/sfshim-0-xdg-*) ;; *) fail "0755 XDG dir used: '$t'" ;; esac
echo "ok   XDG_RUNTIME_DIR used when private, else /dev/shm"

# ---- no room for the table: one line, per-process mode, no crash --------
# (A table made with ftruncate on a full tmpfs would be mapped fine and
# kill its process with SIGBUS at the first page it touched.)
mkdir -m 0700 "$SF_TMP/small"
mount -t tmpfs -o size=512k,mode=0700 tmpfs "$SF_TMP/small"
alone fu 2 "cannot be created" SFSHIM_SCOPE=full XDG_RUNTIME_DIR="$SF_TMP/small" \
	LD_PRELOAD="$PRE"
[ -z "$(ls -A "$SF_TMP/small")" ] || fail "left in the full tmpfs: $(ls -A "$SF_TMP/small")"
umount "$SF_TMP/small"
echo "ok   no room for the table: refused with one line, nothing left behind"

echo "queries seen by sf_dnsd:"
grep -v '^gate' "$SF_TMP/queries.log" | sort | uniq -c | sed 's/^/   /'
