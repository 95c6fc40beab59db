#!/usr/bin/env bash
# demo.sh - 50 threads of an unmodified program resolve the same name at
# once, without and with sfshim, against a slow local DNS server that counts
# the queries it receives.
#
# Runs as root in a private network and mount namespace (it re-executes
# itself under `unshare --net --mount`), so that its resolv.conf, its DNS
# server on 127.0.0.1:53 and everything else stay invisible to the host.
set -euo pipefail

here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
repo=$(dirname -- "$here")
B=${B:-build}
PY=/usr/bin/python3 # the system python, not a pyenv or venv wrapper
THREADS=50
NAME=api.example.test
DELAY_MS=200

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

((EUID == 0)) || die "must run as root (try: sudo $0)"

in_private_ns()
{
	[[ -n ${SFSHIM_DEMO_NS:-} ]] &&
		[[ $(readlink /proc/self/ns/net) != "$(readlink /proc/1/ns/net)" ]] &&
		[[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]]
}

if ! in_private_ns; then
	command -v unshare >/dev/null || die "unshare not found (scripts/install-deps.sh)"
	[[ -x $PY ]] || die "$PY not found (scripts/install-deps.sh)"
	make -s -C "$repo" B="$B" "$B/libsfshim.so" "$B/tests/sf_dnsd"
	export SFSHIM_DEMO_NS=1
	exec unshare --net --mount --propagation private -- "$BASH" "$0" "$@"
fi

# ---- inside the private namespaces --------------------------------------

cd "$repo"
lib=$repo/$B/libsfshim.so
dnsd=$repo/$B/tests/sf_dnsd
tmp=$(mktemp -d /tmp/sfshim-demo.XXXXXX)
dnsd_pid=

cleanup()
{
	if [[ -n $dnsd_pid ]]; then
		kill "$dnsd_pid" 2>/dev/null || true
		wait "$dnsd_pid" 2>/dev/null || true
	fi
	rm -rf -- "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip link set lo up

# Only our server answers: resolv.conf names 127.0.0.1, host lookups go to
# files and dns only (no systemd-resolved, no mDNS), and no nscd cache.
printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:2\n' >"$tmp/resolv.conf"
printf 'hosts: files dns\n' >"$tmp/nsswitch.conf"
mount --bind "$tmp/resolv.conf" /etc/resolv.conf
mount --bind "$tmp/nsswitch.conf" /etc/nsswitch.conf
for d in /run/nscd /var/run/nscd; do
	if [[ -d $d ]]; then
		mount -t tmpfs none "$d"
	fi
done

cat >"$tmp/zone" <<EOF
$NAME A 192.0.2.10
$NAME AAAA 2001:db8::10
EOF
"$dnsd" -z "$tmp/zone" -l "$tmp/queries.log" -d "$DELAY_MS" -r "$tmp/ready" &
dnsd_pid=$!
for _ in $(seq 100); do
	[[ -e $tmp/ready ]] && break
	kill -0 "$dnsd_pid" 2>/dev/null || die "sf_dnsd did not start"
	sleep 0.05
done
[[ -e $tmp/ready ]] || die "sf_dnsd not ready after 5 s"
: >"$tmp/queries.log"

cat >"$tmp/resolve.py" <<'EOF'
import concurrent.futures, socket, sys, threading, time

name, n = sys.argv[1], int(sys.argv[2])
start = threading.Barrier(n)

def resolve(_):
    start.wait()  # all threads call getaddrinfo together
    infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    return tuple(ai[4][0] for ai in infos)

t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
    answers = list(pool.map(resolve, range(n)))
ms = (time.monotonic() - t0) * 1000
print(f"python3: {n} threads resolved {name} -> {', '.join(answers[0])} "
      f"({len(set(answers))} distinct answer(s), {ms:.0f} ms)", flush=True)
EOF

# Prints the number of queries logged since the last call, by type.
seen=0
queries()
{
	local lines total
	mapfile -t lines < <(tail -n "+$((seen + 1))" "$tmp/queries.log")
	total=${#lines[@]}
	seen=$((seen + total))
	local a=0 aaaa=0 other=0 l
	for l in "${lines[@]}"; do
		case ${l##* } in
		A) a=$((a + 1)) ;;
		AAAA) aaaa=$((aaaa + 1)) ;;
		*) other=$((other + 1)) ;;
		esac
	done
	last_total=$total
	printf 'DNS server saw %d queries (A=%d AAAA=%d other=%d)\n' \
		"$total" "$a" "$aaaa" "$other"
}

say "== without sfshim: $PY, $THREADS threads, $NAME (server delay ${DELAY_MS} ms)"
"$PY" "$tmp/resolve.py" "$NAME" "$THREADS"
queries
without=$last_total
say "shim stats: none (not loaded)"
say

say "== with sfshim: scripts/sfshim --stats $PY ..."
SFSHIM_LIB=$lib "$repo/scripts/sfshim" --stats -- "$PY" "$tmp/resolve.py" "$NAME" "$THREADS" 2>&1
queries
with=$last_total
say

say "queries: $without without sfshim, $with with (A+AAAA)"
