#!/usr/bin/env bash
# demo.sh - three herds of unmodified programs, without and with sfshim:
#   dns:   N python3 threads resolve one name at once, against a slow local
#          DNS server that counts the queries it receives (sf_dnsd);
#   http:  N python3-pycurl threads GET one URL at once from a slow local
#          origin that counts the requests it receives (sf_httpd);
#   procs: PROCS curl tool processes (xargs -P) GET that URL at once, in
#          one scope (SFSHIM_SCOPE: coalescing across processes).
# Prints a before/after table: what reached the server, wall time, and that
# every thread got the same answer or body.
#
# Runs in a private network and mount namespace, so that its resolv.conf,
# its servers on 127.0.0.1 and everything else stay invisible to the host.
# It gets one by itself: as root directly, else through an unprivileged
# user namespace, else through sudo (only then).
#
#   scripts/demo.sh          (or make demo; THREADS=N, PROCS=N to change the herds)
set -euo pipefail

self=$(readlink -f -- "${BASH_SOURCE[0]}")
here=$(dirname -- "$self")
repo=$(dirname -- "$here")
B=${B:-build}
PY=/usr/bin/python3 # the system python, not a pyenv or venv wrapper
THREADS=${THREADS:-50}
PROCS=${PROCS:-16}
NAME=api.example.test
DNS_DELAY_MS=200
HTTP_DELAY_MS=300
HTTP_SIZE=200000

say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

if [[ ! $THREADS =~ ^[0-9]{1,3}$ ]] || ((THREADS < 2 || THREADS > 500)); then
	die "THREADS='$THREADS': a number from 2 to 500"
fi
if [[ ! $PROCS =~ ^[0-9]{1,3}$ ]] || ((PROCS < 2 || PROCS > 100)); then
	die "PROCS='$PROCS': a number from 2 to 100"
fi

in_private_ns()
{
	[[ -n ${SFSHIM_DEMO_NS:-} ]] &&
		[[ $(readlink /proc/self/ns/net) != "$(readlink /proc/1/ns/net 2>/dev/null)" ]] &&
		[[ $(readlink /proc/self/ns/mnt) != "$(readlink /proc/1/ns/mnt 2>/dev/null)" ]]
}

if ! in_private_ns; then
	command -v unshare >/dev/null || die "unshare not found (scripts/install-deps.sh)"
	[[ -x $PY ]] || die "$PY not found (scripts/install-deps.sh)"
	"$PY" -c 'import pycurl' 2>/dev/null ||
		die "$PY cannot import pycurl (scripts/install-deps.sh)"
	# Built as the calling user, before any elevation.
	make -s -C "$repo" B="$B" "$B/libsfshim.so" "$B/tests/sf_dnsd" "$B/tests/sf_httpd"
	ns=(unshare --net --mount --propagation private)
	if ((EUID == 0)); then
		exec env SFSHIM_DEMO_NS=1 B="$B" THREADS="$THREADS" "${ns[@]}" -- "$BASH" "$self" "$@"
	elif unshare --user --map-root-user --net --mount true 2>/dev/null; then
		exec env SFSHIM_DEMO_NS=1 B="$B" THREADS="$THREADS" \
			unshare --user --map-root-user --net --mount --propagation private \
			-- "$BASH" "$self" "$@"
	elif command -v sudo >/dev/null; then
		say "demo: no user namespaces here; using sudo for a private network namespace" >&2
		exec sudo -- env SFSHIM_DEMO_NS=1 B="$B" THREADS="$THREADS" "${ns[@]}" \
			-- "$BASH" "$self" "$@"
	fi
	die "needs root, unprivileged user namespaces or sudo for a private network namespace"
fi

# ---- inside the private namespaces --------------------------------------

cd "$repo"
lib=$repo/$B/libsfshim.so
tmp=$(mktemp -d /tmp/sfshim-demo.XXXXXX)
pids=()

cleanup()
{
	local p
	for p in "${pids[@]+"${pids[@]}"}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
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

# wait_ready FILE PID WHAT: the fixtures write FILE once they listen.
wait_ready()
{
	for _ in $(seq 100); do
		[[ -s $1 ]] && return 0
		kill -0 "$2" 2>/dev/null || die "$3 did not start"
		sleep 0.05
	done
	die "$3 not ready after 5 s"
}

cat >"$tmp/zone" <<EOF
$NAME A 192.0.2.10
$NAME AAAA 2001:db8::10
EOF
"$B/tests/sf_dnsd" -z "$tmp/zone" -l "$tmp/dns.log" -d "$DNS_DELAY_MS" -r "$tmp/dns.ready" &
pids+=($!)
wait_ready "$tmp/dns.ready" "${pids[-1]}" sf_dnsd
"$B/tests/sf_httpd" -l "$tmp/http.log" -a 127.0.0.1 -r "$tmp/http.ready" &
pids+=($!)
wait_ready "$tmp/http.ready" "${pids[-1]}" sf_httpd
url="http://127.0.0.1:$(cat "$tmp/http.ready")/bytes/$HTTP_SIZE?delay=$HTTP_DELAY_MS"
: >"$tmp/dns.log"
: >"$tmp/http.log"

# Each herd prints one line: "ms=... ok=... distinct=... answer=...".
cat >"$tmp/dns.py" <<'EOF'
import socket, sys, threading, time

name, n = sys.argv[1], int(sys.argv[2])
start = threading.Barrier(n + 1)
answers = [None] * n

def resolve(i):
    start.wait()  # all threads call getaddrinfo together
    infos = socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)
    answers[i] = tuple(ai[4][0] for ai in infos)

threads = [threading.Thread(target=resolve, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
start.wait()
t0 = time.monotonic()
for t in threads:
    t.join()
ms = (time.monotonic() - t0) * 1000
ok = [a for a in answers if a]
print("ms=%d ok=%d distinct=%d answer=%s" %
      (ms, len(ok), len(set(ok)), ", ".join(ok[0]) if ok else "-"))
EOF

cat >"$tmp/http.py" <<'EOF'
import hashlib, io, sys, threading, time
import pycurl

url, n = sys.argv[1], int(sys.argv[2])
start = threading.Barrier(n + 1)
bodies = [None] * n

def fetch(i):
    buf = io.BytesIO()
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.WRITEDATA, buf)
    start.wait()  # all threads call curl_easy_perform together
    try:
        c.perform()
        if c.getinfo(pycurl.RESPONSE_CODE) == 200:
            bodies[i] = buf.getvalue()
    except pycurl.error as e:
        print("error:", e, file=sys.stderr)
    finally:
        c.close()

threads = [threading.Thread(target=fetch, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
start.wait()
t0 = time.monotonic()
for t in threads:
    t.join()
ms = (time.monotonic() - t0) * 1000
ok = [b for b in bodies if b is not None]
digests = {hashlib.sha256(b).hexdigest() for b in ok}
print("ms=%d ok=%d distinct=%d answer=%s" %
      (ms, len(ok), len(digests),
       "%d bytes, sha256 %s..." % (len(ok[0]), min(digests)[:16]) if ok else "-"))
EOF

# The process herd: PROCS curl tool processes at once (xargs -P), each
# with the library preloaded when $1 names it (all in scope "demo"; only
# curl gets it, so both runs start the same programs), writing the sha256
# of the body it got; failed fetches write nothing.
cat >"$tmp/procs.sh" <<'EOF'
#!/bin/bash
set -eu
lib=$1 url=$2 n=$3 out=$4
# The scope's table and response directory go to a private 0700
# XDG_RUNTIME_DIR inside the demo's temporary directory, removed with it
# (a table otherwise stays in /dev/shm for the scope's next process).
XDG_RUNTIME_DIR=$(dirname "$out")/run
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
export lib url out XDG_RUNTIME_DIR
t0=$(date +%s%N)
# shellcheck disable=SC2016 # expanded by the inner bash
seq "$n" | xargs -P"$n" -I{} bash -c '
	body=$out.body.{}
	${lib:+env SFSHIM_SCOPE=demo LD_PRELOAD="$lib"} /usr/bin/curl -sf -o "$body" "$url" &&
		sha256sum <"$body" | cut -c1-64 >"$out.sum.{}"
	rm -f "$body"'
ms=$((($(date +%s%N) - t0) / 1000000))
sums=$(cat "$out".sum.* 2>/dev/null || true)
rm -f "$out".sum.*
ok=$(grep -c . <<<"$sums" || true)
distinct=$(sort -u <<<"$sums" | grep -c . || true)
printf 'ms=%d ok=%d distinct=%d answer=sha256 %s...\n' "$ms" "$ok" "$distinct" \
	"$(head -n1 <<<"$sums" | cut -c1-16)"
EOF

# run HERD with|without: one herd; keeps its line in result[] and what the
# server logged meanwhile in seen[].
declare -A result seen
run()
{
	local herd=$1 how=$2 before after
	local args=("$NAME")
	[[ $herd == http ]] && args=("$url")
	local log=$tmp/$herd.log
	[[ $herd == procs ]] && log=$tmp/http.log
	before=$(wc -l <"$log")
	if [[ $herd == procs ]]; then
		local preload=
		[[ $how == with ]] && preload=$lib
		result[$herd.$how]=$(bash "$tmp/procs.sh" \
			"$preload" "$url" "$PROCS" "$tmp/procs.$how")
	elif [[ $how == with ]]; then
		result[$herd.$how]=$(SFSHIM_LIB=$lib "$repo/scripts/sfshim" \
			--stats="$tmp/stats.$herd" -- "$PY" "$tmp/$herd.py" "${args[@]}" "$THREADS")
	else
		result[$herd.$how]=$("$PY" "$tmp/$herd.py" "${args[@]}" "$THREADS")
	fi
	after=$(wc -l <"$log")
	seen[$herd.$how]=$((after - before))
}

field() { sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"${result[$1]}"; }
row() { printf '%-32s %15s %12s\n' "$@"; }

run dns without
run dns with
run http without
run http with
run procs without
run procs with

say "Herds of $THREADS threads and $PROCS processes at once, without and with sfshim $(make -s --no-print-directory -C "$repo" version):"
say
row "" "without sfshim" "with sfshim"
say "dns: python3, getaddrinfo($NAME), server delay ${DNS_DELAY_MS} ms"
row "  queries at the DNS server" "${seen[dns.without]}" "${seen[dns.with]}"
row "  wall time" "$(field dns.without ms) ms" "$(field dns.with ms) ms"
row "  threads answered" "$(field dns.without ok)" "$(field dns.with ok)"
row "  distinct answers" "$(field dns.without distinct)" "$(field dns.with distinct)"
say "http: python3-pycurl, GET /bytes/$HTTP_SIZE, origin delay ${HTTP_DELAY_MS} ms"
row "  requests at the origin" "${seen[http.without]}" "${seen[http.with]}"
row "  wall time" "$(field http.without ms) ms" "$(field http.with ms) ms"
row "  threads answered" "$(field http.without ok)" "$(field http.with ok)"
row "  distinct bodies" "$(field http.without distinct)" "$(field http.with distinct)"
say "procs: $PROCS curl tool processes (xargs -P$PROCS), the same URL, scope 'demo'"
row "  requests at the origin" "${seen[procs.without]}" "${seen[procs.with]}"
row "  wall time" "$(field procs.without ms) ms" "$(field procs.with ms) ms"
row "  processes answered" "$(field procs.without ok)" "$(field procs.with ok)"
row "  distinct bodies" "$(field procs.without distinct)" "$(field procs.with distinct)"
say
say "answer: ${result[dns.with]#*answer=}"
say "body:   ${result[http.with]#*answer=}"
say "procs:  ${result[procs.with]#*answer=}"
say
say "the library's summary with sfshim (scripts/sfshim --stats):"
grep -h -e ' dns: ' "$tmp/stats.dns" || true
grep -h -e ' curl: ' "$tmp/stats.http" || true
grep -h -e ' busiest ' "$tmp/stats.dns" "$tmp/stats.http" || true
