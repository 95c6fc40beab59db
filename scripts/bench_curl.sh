#!/bin/bash
# scripts/bench_curl.sh - what the curl hook does for a herd, side by side,
# from one run.
#
#   B=build scripts/bench_curl.sh
#
# Builds scripts/bench/bench_curl.c into $B/bench (cc -O2, -lcurl -lpthread)
# and $B/libsfshim.so + $B/tests/sf_httpd if missing, starts sf_httpd on
# 127.0.0.1, then runs bench_curl in a fresh process per row:
#  1. herd: THREADS (64) threads GET one 1 MiB URL from a slow origin
#     (64 KiB pieces every 20 ms, ~300 ms per transfer), without and with
#     the shim: requests that reached the origin, wall time, time to first
#     body byte of the transfer(s) that ran in libcurl ("leader"; every
#     thread without the shim) and of the replayed ones ("followers"),
#     median/max, and perform() return times.
#  2. memory: FOLLOWERS (100) threads GET one 10 MiB body (the origin waits
#     500 ms before answering, so every thread joins the flight before the
#     first byte) versus a single fetch of it: peak RSS (VmHWM) of the
#     process, its ratio to the single fetch (target <= 1.2 x), and a
#     breakdown of the largest /proc/self/smaps sample: mapped files
#     (libraries), malloc heap (main [heap] + per-thread arenas), thread
#     stacks, other anonymous.  Extra rows separate the causes: the same
#     without the shim, with MALLOC_ARENA_MAX=1, with SFSHIM_SPILL=64k,
#     100 distinct 900 KiB URLs from the slow origin (nothing to coalesce:
#     what lone leaders keep, a reply below SFSHIM_SPILL being stored whole),
#     and 100 threads that only exist (threads) or only hold an easy handle
#     (handles).  Each memory row is the median of RSS_RUNS (3) processes.
#  3. lone path: one thread, one reused handle, sequential GETs of 1 KiB,
#     256 KiB and 10 MiB from the loopback origin (nobody ever joins), in
#     LONE_RUNS (7) processes per size and side, alternating without/with
#     the shim: the median process's mean wall time and CPU time (user +
#     system of the client process) per request, and what the shim adds
#     (target: <= 3% at every size).  The CPU figure is less disturbed by
#     other load on the machine.
# A measurement, not a test: the exit status is 0 unless something failed.
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
THREADS=${THREADS:-64} FOLLOWERS=${FOLLOWERS:-100} RSS_RUNS=${RSS_RUNS:-3}
LONE_RUNS=${LONE_RUNS:-7} ONLY=${ONLY:-herd,memory,lone}
CC=${CC:-cc}
CFLAGS="-std=gnu11 -Wall -Wextra -Werror -O2 -g -pthread -D_GNU_SOURCE -DCURL_DISABLE_TYPECHECK -DCURL_DISABLE_DEPRECATION"

[ -f "$B/libsfshim.so" ] || make -s B="$B" "$B/libsfshim.so"
[ -x "$B/tests/sf_httpd" ] || make -s B="$B" "$B/tests/sf_httpd"
case $B in build) ;; *) echo "note: $B is a sanitizer build; figures are not representative" >&2 ;; esac
mkdir -p "$B/bench"
# $CFLAGS: flags, split on purpose.
# shellcheck disable=SC2086
$CC $CFLAGS -o "$B/bench/bench_curl" scripts/bench/bench_curl.c -lcurl -lpthread -ldl
# shellcheck disable=SC2086
$CC $CFLAGS -o "$B/bench/bench_lone" scripts/bench/bench_lone.c -lcurl

shim=$(realpath "$B/libsfshim.so")
bench=$(realpath "$B/bench/bench_curl")
unset SFSHIM_CURL SFSHIM_URL_INCLUDE SFSHIM_URL_EXCLUDE SFSHIM_LOG SFSHIM_STATS \
	SFSHIM_WAIT_MS SFSHIM_SPILL SFSHIM_RETRY_ERRORS MALLOC_ARENA_MAX LD_PRELOAD

tmp=$(mktemp -d /tmp/sfshim-bench.XXXXXX)
httpd_pid=
cleanup() {
	[ -n "$httpd_pid" ] && kill "$httpd_pid" 2>/dev/null && wait "$httpd_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
"$B/tests/sf_httpd" -l "$tmp/origin.log" -a 127.0.0.1 -r "$tmp/ready" &
httpd_pid=$!
for _ in $(seq 1 200); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
[ -s "$tmp/ready" ] || { echo "bench_curl: sf_httpd did not start" >&2; exit 1; }
origin="http://127.0.0.1:$(cat "$tmp/ready")"

requests() { if [ -f "$tmp/origin.log" ]; then wc -l <"$tmp/origin.log"; else echo 0; fi; }

# run ENV... -- BENCH_ARGS...: one bench_curl process; prints its line with
# reqs=N (requests that reached the origin) appended.
run() {
	local envs=() before line
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	before=$(requests)
	line=$(env "${envs[@]+"${envs[@]}"}" "$bench" "$@") || {
		echo "bench_curl: run failed: ${envs[*]+"${envs[*]}"} $*: $line" >&2
		exit 1
	}
	echo "$line reqs=$(($(requests) - before))"
}
get() { # KEY LINE
	local kv
	for kv in $2; do
		[ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }
	done
	echo "?"
}

wanted() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

# ---- 1. herd -------------------------------------------------------------
if wanted herd; then
herd_url="$origin/bytes/1048576?chunk=65536&interval=20"
echo "== herd: $THREADS threads, GET $herd_url"
printf '%-12s %5s %5s %8s | %-22s | %-22s | %-17s\n' "" reqs ok wall_ms \
	"leader ttfb ms" "followers ttfb med/max" "done med/max ms"
for who in without with; do
	if [ $who = with ]; then
		line=$(run LD_PRELOAD="$shim" -- "$herd_url" "$THREADS")
	else
		line=$(run -- "$herd_url" "$THREADS")
	fi
	if [ "$(get replayed "$line")" -gt 0 ]; then
		lead="$(get ttfb_direct_med_ms "$line") ($(get direct "$line") thread)"
		fol="$(get ttfb_replay_med_ms "$line") / $(get ttfb_replay_max_ms "$line") ($(get replayed "$line"))"
	else
		lead="$(get ttfb_direct_med_ms "$line") / $(get ttfb_direct_max_ms "$line") (all $(get direct "$line"))"
		fol="-"
	fi
	printf '%-12s %5s %5s %8s | %-22s | %-22s | %-17s\n' "$who shim" \
		"$(get reqs "$line")" "$(get ok "$line")" "$(get wall_ms "$line")" \
		"$lead" "$fol" "$(get done_med_ms "$line") / $(get done_max_ms "$line")"
done
fi

# ---- 2. memory -------------------------------------------------------------
if wanted memory; then
big_url="$origin/bytes/10485760?delay=500"
echo
echo "== memory: 10 MiB body ($big_url), peak RSS, median of $RSS_RUNS processes"
kb2mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
median_run() { # like run, RSS_RUNS times; prints the line with the median hwm_kb
	local lines=()
	for _ in $(seq "$RSS_RUNS"); do lines+=("$(run "$@")"); done
	printf '%s\n' "${lines[@]}" | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^hwm_kb=/) { split($i, a, "="); print a[2] "\t" $0 } }' |
		sort -n | awk -v m=$(((RSS_RUNS + 1) / 2)) 'NR == m { sub(/^[^\t]*\t/, ""); print }'
}
base_hwm=
printf '%-40s %5s %5s %7s %6s | %6s %6s %6s %6s\n' "" reqs ok "hwm MB" ratio \
	files heap stacks other
row() { # LABEL ENV... -- ARGS...
	local label=$1 line hwm heap
	shift
	line=$(median_run "$@")
	hwm=$(get hwm_kb "$line")
	[ -n "$base_hwm" ] || base_hwm=$hwm
	heap=$(($(get heap_kb "$line") + $(get arena_kb "$line")))
	printf '%-40s %5s %5s %7s %5sx | %6s %6s %6s %6s\n' "$label" \
		"$(get reqs "$line")" "$(get ok "$line")" "$(kb2mb "$hwm")" \
		"$(awk -v a="$hwm" -v b="$base_hwm" 'BEGIN { printf "%.2f", a / b }')" \
		"$(kb2mb "$(get file_kb "$line")")" "$(kb2mb "$heap")" \
		"$(kb2mb "$(get stack_kb "$line")")" "$(kb2mb "$(get other_kb "$line")")"
}
F=$FOLLOWERS
row "single fetch, without shim (baseline)" -- -m "$big_url" 1
row "single fetch, with shim" LD_PRELOAD="$shim" -- -m "$big_url" 1
row "$F threads, with shim  <- target <= 1.2x" LD_PRELOAD="$shim" -- -m "$big_url" "$F"
row "$F threads, without shim" -- -m "$big_url" "$F"
row "$F threads, with shim, MALLOC_ARENA_MAX=1" LD_PRELOAD="$shim" MALLOC_ARENA_MAX=1 -- -m "$big_url" "$F"
row "$F threads, without shim, ARENA_MAX=1" MALLOC_ARENA_MAX=1 -- -m "$big_url" "$F"
row "$F threads, with shim, SFSHIM_SPILL=64k" LD_PRELOAD="$shim" SFSHIM_SPILL=64k -- -m "$big_url" "$F"
mid_url="$origin/bytes/921600?chunk=65536&interval=20"
row "$F distinct 900K URLs, with shim" LD_PRELOAD="$shim" -- -m -u "$mid_url" "$F"
row "$F distinct 900K URLs, without shim" -- -m -u "$mid_url" "$F"
row "$F idle threads (no handle, no shim)" -- -m -x threads "$big_url" "$F"
row "$F threads + easy handles, no transfer" LD_PRELOAD="$shim" -- -m -x handles "$big_url" "$F"
echo "(MB = MiB; heap = main [heap] + per-thread malloc arenas; stacks = ~8 MiB"
echo " thread-stack mappings, resident part; the breakdown is the largest smaps"
echo " sample, which can trail VmHWM by a few hundred KB)"
fi

# ---- 3. lone path ------------------------------------------------------------
if wanted lone; then
lone=$(realpath "$B/bench/bench_lone")
echo
echo "== lone path: 1 thread, 1 reused handle, sequential GETs, us per request, median of $LONE_RUNS processes per side (alternating)"
printf '%-10s %6s | %9s %9s %7s | %9s %9s %7s\n' size reqs "wall w/o" "wall w/" added \
	"cpu w/o" "cpu w/" added
med() { printf '%s\n' "$@" | sort -g | awk -v m=$(((LONE_RUNS + 1) / 2)) 'NR == m'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }'; }
for spec in 1024:4000 262144:1000 10485760:40; do
	size=${spec%%:*} n=${spec#*:}
	url="$origin/bytes/$size"
	wo=() wi=() co=() ci=()
	for _ in $(seq "$LONE_RUNS"); do
		line=$("$lone" "$url" "$n")
		wo+=("$(get us_per_req "$line")") co+=("$(get cpu_us_per_req "$line")")
		line=$(LD_PRELOAD="$shim" "$lone" "$url" "$n")
		wi+=("$(get us_per_req "$line")") ci+=("$(get cpu_us_per_req "$line")")
	done
	a=$(med "${wo[@]}") b=$(med "${wi[@]}") c=$(med "${co[@]}") d=$(med "${ci[@]}")
	printf '%-10s %6s | %9s %9s %7s | %9s %9s %7s\n' "$size" "$n" "$a" "$b" "$(pct "$a" "$b")" \
		"$c" "$d" "$(pct "$c" "$d")"
done
fi
