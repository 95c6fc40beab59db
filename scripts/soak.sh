#!/bin/bash
# soak.sh - many threads over many keys for a while, DNS and curl, with the
# shim preloaded; asserts that each process's resident memory and open file
# descriptors level off.  `make soak` runs it (needs root: private network
# and mount namespace, like the integration tests).
#
#   B=build SOAK_SECONDS=30 scripts/soak.sh
#
# Two load processes (tests/fixtures/sf_faultload in its -k/-s mode) run side
# by side: 16 threads looking up 32 names through the counting fake
# resolver, and 16 threads fetching 24 URLs of 300 KB (more than
# SFSHIM_SPILL, so the spill files come and go) from sf_httpd.  Every answer
# is checked byte for byte as in the fault suite.  RSS (VmRSS) and the
# number of entries in /proc/PID/fd are sampled twice a second; the verdict:
# the maximum over the last third of the run may exceed the maximum over the
# first third by at most SOAK_RSS_MARGIN_KB (default 8192) and
# SOAK_FD_MARGIN (default 4).  The samples are kept in $SOAK_OUT (default
# build/soak) for a look at the curve.
set -u
cd "$(dirname "$0")/.." || exit 2
. tests/integration/common.bash
. tests/integration/http.bash
SOAK_KEYS_DNS=32
HOSTS_EXTRA=$(for k in $(seq 0 $((SOAK_KEYS_DNS - 1))); do
	echo "192.0.2.$((k + 1)) soak.test-$k"
	echo "2001:db8::$((k + 1)) soak.test-$k"
done)
sf_private_world "$0" "$@"

SECS=${SOAK_SECONDS:-30}
if [ "$SECS" -gt 120 ]; then
	echo "soak: SOAK_SECONDS=$SECS is above the 120 s bound; using 120" >&2
	SECS=120
fi
RSS_MARGIN=${SOAK_RSS_MARGIN_KB:-8192}
FD_MARGIN=${SOAK_FD_MARGIN:-4}
OUT=${SOAK_OUT:-$SF_ROOT/$B/soak}
mkdir -p "$OUT"
export SFSHIM_SPILL=128k SFSHIM_LOG=error

sf_start_httpd "$SF_TMP/origin.log"
URL="$SF_HTTP/bytes/300000?chunk=16384&interval=1"
env -u LD_PRELOAD /usr/bin/curl -sf -o "$SF_TMP/body" "$URL" ||
	{ echo "soak: cannot fetch the reference body" >&2; exit 1; }

LOAD="$SF_ROOT/$B/tests/sf_faultload"
LD_PRELOAD="$(sf_preload "$B/libsfshim.so" "$B/tests/libsf_fakeres.so")" \
	"$LOAD" dns soak.test -t 16 -k "$SOAK_KEYS_DNS" -s "$SECS" >"$OUT/dns.out" 2>&1 &
dns_pid=$!
LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" \
	"$LOAD" curl "$URL" "$SF_TMP/body" -t 16 -k 24 -s "$SECS" >"$OUT/curl.out" 2>&1 &
curl_pid=$!

# sample PID FILE: "rss_kb fds" lines until the process is gone.
sample() {
	local pid=$1 file=$2 rss fds
	: >"$file"
	while kill -0 "$pid" 2>/dev/null; do
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		[ -n "$rss" ] && echo "$rss $fds" >>"$file"
		sleep 0.5
	done
}
sample "$dns_pid" "$OUT/dns.samples" &
s1=$!
sample "$curl_pid" "$OUT/curl.samples" &
s2=$!

# A hang is a failure too: the loads stop on their own after SECS.
rc=0
for p in dns curl; do
	pid_var=${p}_pid
	if ! timeout $((SECS + 120)) tail --pid="${!pid_var}" -f /dev/null; then
		echo "soak: $p load did not finish" >&2
		kill "${!pid_var}" 2>/dev/null
		rc=1
	fi
	wait "${!pid_var}" || { echo "soak: $p load failed (exit $?)" >&2; rc=1; }
	cat "$OUT/$p.out"
done
wait "$s1" "$s2"

# verdict NAME FILE: levels off?
verdict() {
	awk -v name="$1" -v rm="$RSS_MARGIN" -v fm="$FD_MARGIN" '
		{ rss[NR] = $1; fd[NR] = $2 }
		END {
			n = NR
			if (n < 6) { printf "soak: %s: only %d samples\n", name, n; exit 1 }
			t = int(n / 3)
			for (i = 1; i <= n; i++) {
				if (i <= t) { if (rss[i] > r1) r1 = rss[i]; if (fd[i] > f1) f1 = fd[i] }
				if (i > n - t) { if (rss[i] > r3) r3 = rss[i]; if (fd[i] > f3) f3 = fd[i] }
			}
			ok = (r3 <= r1 + rm) && (f3 <= f1 + fm)
			printf "soak: %s: %d samples; RSS max %d kB (first third) -> %d kB (last third); fds max %d -> %d: %s\n", name, n, r1, r3, f1, f3, ok ? "levels off" : "GROWS"
			exit !ok
		}' "$2"
}
verdict dns "$OUT/dns.samples" || rc=1
verdict curl "$OUT/curl.samples" || rc=1
[ "$rc" = 0 ] && echo "soak: ok" || echo "soak: FAILED"
exit "$rc"
