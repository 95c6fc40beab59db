#!/bin/bash
# RTLD_DEEPBIND (shim/dl/): a host that loads plugins the way PHP loads its
# extensions reaches the shim anyway, and the shim's dlopen keeps every
# caller's identity.
#
# 1. The caller is preserved.  tests/fixtures/libsf_rpath_loader.c finds
#    its plugin by bare name only through its own RUNPATH ($ORIGIN/rpath);
#    glibc takes the caller from dlopen's return address.  Under the shim:
#    bare name, bare name with RTLD_DEEPBIND, $ORIGIN/... with
#    RTLD_DEEPBIND, and a full path with RTLD_DEEPBIND all load.  Control:
#    a naive C wrapper (tests/fixtures/libsf_naive_dlopen.c) breaks the
#    bare-name loads, so this part can fail.
# 2. In-process reach.  tests/fixtures/sf_deepbind_client.c (not linked with
#    libcurl) loads the curl binding fixture with PHP's flags
#    (RTLD_NOW|RTLD_GLOBAL|RTLD_DEEPBIND, and RTLD_LAZY), for each libcurl
#    flavour; LD_DEBUG=bindings shows that the binding's curl_easy_perform
#    binds to libcurl itself.  N threads GET one gated URL whose host name
#    is resolved through /etc/hosts: with the shim the origin sees one
#    request, N-1 threads join, and libcurl's own getaddrinfo reaches the
#    DNS hook (stats: dns calls=1); without it, N requests.  A binding
#    loaded with dlmopen(LM_ID_NEWLM) is left alone: its request is made,
#    no call seen, nothing routed.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
HOSTS_EXTRA="127.0.0.1 deep.sfshim.test"
export HOSTS_EXTRA
sf_private_world "$0" "$@"

T="$SF_ROOT/$B/tests"
N=8
SIZE=300000
export SF_WAIT_SECS=${SF_WAIT_SECS:-120}

sf_x86_64_only 84-dl-deepbind
if [ -n "$SAN" ]; then
	# Both runtimes interpose dlopen themselves (so the caller glibc sees
	# is the runtime, with or without the shim) and refuse RTLD_DEEPBIND
	# outright (sanitizer_common's CheckNoDeepBind: "incompatible with
	# sanitizer runtime").  What can be checked without them is checked
	# in the plain run.
	echo "84-dl-deepbind: SKIP under $SAN: the sanitizer runtime intercepts dlopen and rejects RTLD_DEEPBIND"
	exit 0
fi

fail() {
	echo "FAIL: $*"
	exit 1
}

for f in sf_deepbind_client libsf_rpath_loader.so rpath/libsf_rpath_plugin.so \
	libsf_naive_dlopen.so libsf_binding_openssl.so libsf_binding_gnutls.so; do
	[ -e "$T/$f" ] || fail "$T/$f missing: run make tests-build"
done
readelf -d "$T/sf_deepbind_client" | grep -q 'NEEDED.*libcurl' &&
	fail "sf_deepbind_client is linked with libcurl"
[ -e "$T/libsf_rpath_plugin.so" ] &&
	fail "$T/libsf_rpath_plugin.so exists: the plugin must be reachable through the RUNPATH only"

# ---- 1. the caller is preserved ----------------------------------------------
SHIM="$SF_ROOT/$B/libsfshim.so"
NAIVE="$T/libsf_naive_dlopen.so"
LOADER="$T/libsf_rpath_loader.so"
# load PRELOAD NAME [deep]: the client's one line
load() {
	local preload=$1
	shift
	env ${preload:+LD_PRELOAD="$preload"} "$T/sf_deepbind_client" load "$LOADER" "$@" 2>&1 || true
}
# shellcheck disable=SC2016 # $ORIGIN is for the dynamic linker
cases=("libsf_rpath_plugin.so" "libsf_rpath_plugin.so deep"
	'$ORIGIN/rpath/libsf_rpath_plugin.so deep' "$T/rpath/libsf_rpath_plugin.so deep"
	"$T/rpath/libsf_rpath_plugin.so")
for c in "${cases[@]}"; do
	# shellcheck disable=SC2086 # NAME [deep]
	set -- $c
	plain=$(load "" "$@")
	shim=$(load "$SHIM" "$@")
	echo "--- dlopen($c) from the RUNPATH loader: plain: $plain; shim: $shim"
	[ "$plain" = "loaded $1: 42" ] || fail "without the shim: $plain"
	[ "$shim" = "$plain" ] || fail "with the shim: '$shim', without: '$plain'"
done
for c in "libsf_rpath_plugin.so" "libsf_rpath_plugin.so deep"; do
	# shellcheck disable=SC2086
	set -- $c
	naive=$(load "$NAIVE" "$@")
	echo "--- control, a naive C dlopen wrapper: dlopen($c): $naive"
	case $naive in
	"not loaded "*) ;;
	*) fail "the naive wrapper did not break the RUNPATH load: the test cannot tell" ;;
	esac
done

# ---- 2. in-process reach -------------------------------------------------------
sf_start_httpd "$SF_TMP/origin.log"
URL_BASE="http://deep.sfshim.test:$SF_HTTP_PORT"

for b in openssl gnutls; do
	LD_DEBUG=bindings LD_PRELOAD="$SHIM" "$T/sf_deepbind_client" fetch \
		"http://127.0.0.1:1/" 1 "$T/libsf_binding_$b.so" >/dev/null 2>"$SF_TMP/bind.$b" || true
	grep -Eq "binding file .*libsf_binding_$b.so .* to .*libcurl[^ ]*\.so\.4 .*curl_easy_perform" \
		"$SF_TMP/bind.$b" ||
		fail "$b: the binding's curl_easy_perform does not bind to libcurl directly (not the RTLD_DEEPBIND case)"
done
echo "--- LD_DEBUG=bindings: the bindings' curl_easy_perform binds to libcurl itself, past the preload"

# run NAME PRELOAD REQUESTS JOINS BINDING [lazy]
run() {
	local name=$1 preload=$2 requests=$3 joins=$4 binding=$5 mode=${6:-}
	local path="/bytes/$SIZE?gate=$name" out="$SF_TMP/$name.out" err="$SF_TMP/$name.err"
	local envs=(SFSHIM_LOG=debug SFSHIM_STATS=stderr) how="without the shim"
	# A second namespace has its own libc, whose pthread_create glibc does
	# not support (threads started there hang now and then, with or
	# without the library): one transfer on the calling thread.
	local n=$N
	[ "$mode" = newns ] && n=1
	if [ -n "$preload" ]; then
		envs+=(LD_PRELOAD="$preload")
		how="with the shim"
	fi
	env "${envs[@]}" timeout -s KILL 300 "$T/sf_deepbind_client" fetch \
		"$URL_BASE$path" "$n" "$T/$binding" ${mode:+"$mode"} >"$out" 2>"$err" &
	local pid=$! rc=0
	sf_wait_count "$requests" sf_grep_count "GET $path" "$SF_TMP/origin.log" ||
		{ cat "$out" "$err"; fail "$name: requests did not arrive"; }
	sf_wait_count "$joins" sf_grep_count ": joined flight" "$err" ||
		{ cat "$out" "$err"; fail "$name: followers did not join"; }
	sleep 0.2 # anyone not yet counted would show up now
	sf_open_gate "$name"
	wait "$pid" || rc=$?
	local got j
	got=$(sf_grep_count "GET $path" "$SF_TMP/origin.log")
	j=$(sf_grep_count ": joined flight" "$err")
	echo "--- $name: $how, $binding ${mode:-now}: $(cat "$out")"
	echo "    origin saw $got request(s), $j follower(s) joined"
	grep -E 'dl: |(dns|curl): calls' "$err" | sed 's/^/    /' || true
	[ "$rc" -eq 0 ] || { cat "$err"; fail "$name: client exited $rc"; }
	grep -qx "threads=$n ok=$n codes=200 bodies=1 size=$SIZE" "$out" ||
		fail "$name: unexpected result line"
	[ "$got" -eq "$requests" ] || fail "$name: origin saw $got requests, expected $requests"
	[ "$j" -eq "$joins" ] || fail "$name: $j followers joined, expected $joins"
	if [ -n "$preload" ] && [ "$mode" = newns ]; then
		grep -q "curl: calls=0 " "$err" ||
			fail "$name: the shim saw calls made in another namespace"
		if grep -q "dl: " "$err"; then fail "$name: something was routed"; fi
	elif [ -n "$preload" ]; then
		grep -q "curl: calls=$N leaders=1 followers=$((N - 1)) " "$err" ||
			fail "$name: the curl hook did not count $N calls"
		# libcurl resolves deep.sfshim.test itself (its own getaddrinfo,
		# inside the RTLD_DEEPBIND scope): once, by the leader.
		grep -q "dns: calls=1 leaders=1 " "$err" ||
			fail "$name: libcurl's getaddrinfo did not reach the DNS hook"
	fi
}

run deep-openssl "$SHIM" 1 $((N - 1)) libsf_binding_openssl.so
run deep-gnutls "$SHIM" 1 $((N - 1)) libsf_binding_gnutls.so
run deep-lazy "$SHIM" 1 $((N - 1)) libsf_binding_openssl.so lazy
run deep-plain "" "$N" 0 libsf_binding_openssl.so
# dlmopen is not interposed: a namespace of its own has its own libcurl,
# which the shim's wrappers must never be handed.  Untouched, as without it.
run deep-newns "$SHIM" 1 0 libsf_binding_openssl.so newns
echo "84-dl-deepbind: ok (callers kept; RTLD_DEEPBIND bindings reach the shim: 1 request with it, $N without)"
