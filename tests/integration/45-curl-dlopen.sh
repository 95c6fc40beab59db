#!/bin/bash
# libcurl reached only through dlopen(RTLD_LOCAL), as language bindings do:
# tests/fixtures/sf_dlopen_client.c (not linked with libcurl) loads
#   binding:  tests/fixtures/libsf_binding.c built once per flavour
#             (libsf_binding_openssl.so -> libcurl.so.4,
#              libsf_binding_gnutls.so  -> libcurl-gnutls.so.4), whose curl
#             calls go through its PLT, hence through the shim;
#   lib:      libcurl itself, calling dlsym() on its handle: the library's
#             own functions, which the shim cannot see (and must not break).
# Every request carries gate=NAME, so the origin holds it until this script
# has seen everyone arrive: the leader's request in the origin log and the
# followers' "joined flight" lines in the shim's debug log on stderr.  No
# timing is involved.
#
# The client and the bindings are built here with cc (the Makefile's
# generic fixture rules would link the client with libcurl and the bindings
# without it); the client refuses to run if libcurl is loaded at start.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

N=8               # threads per group
SIZE=1500000      # body bytes: above the default SFSHIM_SPILL (256k)
T="$SF_ROOT/$B/tests"
SHIM="$(sf_preload "$B/libsfshim.so")"
export SF_WAIT_SECS=${SF_WAIT_SECS:-120}

# ---- built by the Makefile (tests-build) ------------------------------------
for f in sf_dlopen_client libsf_binding_openssl.so libsf_binding_gnutls.so; do
	[ -e "$T/$f" ] || { echo "FAIL: $T/$f missing: run make tests-build"; exit 1; }
done
if readelf -d "$T/sf_dlopen_client" | grep -q 'NEEDED.*libcurl'; then
	echo "FAIL: sf_dlopen_client is linked with libcurl"
	exit 1
fi
readelf -V "$T/libsf_binding_gnutls.so" | grep -q 'Name: CURL_GNUTLS_3' || {
	echo "FAIL: libsf_binding_gnutls.so does not bind CURL_GNUTLS_3 symbols"
	exit 1
}

sf_start_httpd "$SF_TMP/origin.log"
BO="binding:$T/libsf_binding_openssl.so"
BG="binding:$T/libsf_binding_gnutls.so"
LO="lib:libcurl.so.4"
LG="lib:libcurl-gnutls.so.4"

fail() {
	echo "FAIL: $*"
	exit 1
}

# run_gated NAME PRELOAD REQUESTS JOINS SPEC...: starts the client on a
# gated URL, waits until REQUESTS requests reached the origin and JOINS
# followers joined, checks that no more arrive, opens the gate, waits for
# the client.  Leaves $out (stdout) and $err (stderr) behind.
run_gated() {
	local name=$1 preload=$2 requests=$3 joins=$4
	shift 4
	local path="/bytes/$SIZE?gate=$name"
	out="$SF_TMP/$name.out" err="$SF_TMP/$name.err"
	local envs=(SFSHIM_LOG=debug) how="without the shim"
	if [ -n "$preload" ]; then
		envs+=(LD_PRELOAD="$preload")
		how="with the shim"
	fi
	env "${envs[@]}" timeout -s KILL 300 "$T/sf_dlopen_client" "$SF_HTTP$path" "$N" "$@" \
		>"$out" 2>"$err" &
	local pid=$!
	sf_wait_count "$requests" sf_grep_count "GET $path" "$SF_TMP/origin.log" ||
		{ cat "$out" "$err"; fail "$name: requests did not arrive"; }
	sf_wait_count "$joins" sf_grep_count ": joined flight" "$err" ||
		{ cat "$out" "$err"; fail "$name: followers did not join"; }
	sleep 0.2 # anyone not yet counted would show up now
	local got
	got=$(sf_grep_count "GET $path" "$SF_TMP/origin.log")
	local rc=0
	sf_open_gate "$name"
	wait "$pid" || rc=$?
	echo "--- $name: $how, $# group(s) of $N threads:"
	sed 's/^/    /' "$out"
	if [ "$rc" -ne 0 ]; then
		sed 's/^/    stderr: /' "$err" | grep -v 'joined flight' | head -20
		fail "$name: client exited $rc"
	fi
	got_after=$(sf_grep_count "GET $path" "$SF_TMP/origin.log")
	if [ "$got" -ne "$requests" ] || [ "$got_after" -ne "$requests" ]; then
		fail "$name: origin saw $got_after requests, expected $requests"
	fi
	local j
	j=$(sf_grep_count ": joined flight" "$err")
	[ "$j" -eq "$joins" ] || fail "$name: $j followers joined, expected $joins"
	echo "    origin saw $got_after request(s), $j follower(s) joined"
}

# expect_group SPEC FIELD=VALUE...: fields of SPEC's line in $out.
expect_group() {
	local spec=$1 line kv
	shift
	line=$(grep -F "group=$spec " "$out") || fail "no line for $spec"
	for kv in "$@"; do
		case " $line " in
		*" $kv "*) ;;
		*) fail "$spec: expected $kv in: $line" ;;
		esac
	done
}

common=(threads="$N" ok="$N" codes=200 bodies=1 size="$SIZE")

# 1. Without the shim: every thread of every group makes its own request
#    and each transfer runs in the library its caller was built against.
run_gated plain "" $((4 * N)) 0 "$BO" "$BG" "$LO" "$LG"
expect_group "$BO" "${common[@]}" tls=OpenSSL ran_in=libcurl.so.4:$N backend=openssl:$N
expect_group "$BG" "${common[@]}" tls=GnuTLS ran_in=libcurl-gnutls.so.4:$N backend=gnutls:$N
expect_group "$LO" "${common[@]}" tls=OpenSSL ran_in=libcurl.so.4:$N backend=openssl:$N
expect_group "$LG" "${common[@]}" tls=GnuTLS ran_in=libcurl-gnutls.so.4:$N backend=gnutls:$N

# 2. One binding per flavour in ONE process, same URL: each flavour
#    coalesces on its own (the flavour is part of the key): 2 requests.
#    Each leader's transfer ran inside its own flavour's libcurl (its write
#    callback has that library on the stack; followers got replayed data),
#    and getinfo on every handle, followers' too, reached the library that
#    created it (TLS backend).
run_gated bindings "$SHIM" 2 $((2 * (N - 1))) "$BO" "$BG"
expect_group "$BO" "${common[@]}" tls=OpenSSL "ran_in=-:$((N - 1)),libcurl.so.4:1" backend=openssl:$N
expect_group "$BG" "${common[@]}" tls=GnuTLS "ran_in=-:$((N - 1)),libcurl-gnutls.so.4:1" backend=gnutls:$N

# 3. Only one flavour loaded at all (the gnutls binding alone).
run_gated gnutls-only "$SHIM" 1 $((N - 1)) "$BG"
expect_group "$BG" "${common[@]}" tls=GnuTLS "ran_in=-:$((N - 1)),libcurl-gnutls.so.4:1" backend=gnutls:$N

# 4. All four at once: the dlsym'd libraries bypass the shim (one request
#    per thread, nothing joins them) and still work next to the bindings
#    that use the same two libraries through it.
run_gated mixed "$SHIM" $((2 * N + 2)) $((2 * (N - 1))) "$BO" "$BG" "$LO" "$LG"
expect_group "$BO" "${common[@]}" "ran_in=-:$((N - 1)),libcurl.so.4:1" backend=openssl:$N
expect_group "$BG" "${common[@]}" "ran_in=-:$((N - 1)),libcurl-gnutls.so.4:1" backend=gnutls:$N
expect_group "$LO" "${common[@]}" ran_in=libcurl.so.4:$N backend=openssl:$N
expect_group "$LG" "${common[@]}" ran_in=libcurl-gnutls.so.4:$N backend=gnutls:$N

echo "45-curl-dlopen: ok (bindings coalesce per flavour in one process; dlsym'd libcurl passes untouched)"
