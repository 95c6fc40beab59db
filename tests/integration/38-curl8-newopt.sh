#!/bin/bash
# A program built with libcurl 8.14's headers and run against 8.14 sets
# options added after 7.88 (SERVER_RESPONSE_TIMEOUT_MS, TCP_KEEPCNT) and
# still coalesces: N threads, exactly one request reaches the origin.
# Needs libcurl 8.14 in $B/curl8 (scripts/curl8.sh fetch, done by
# make check-curl8 / check-all); without it this script says so and passes.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash

C8="$SF_ROOT/$B/curl8"
if [ ! -f "$C8/usr/include/x86_64-linux-gnu/curl/curl.h" ]; then
	echo "38-curl8-newopt: SKIPPED: no libcurl 8.14 in $B/curl8 (scripts/curl8.sh fetch)"
	exit 0
fi
sf_private_world "$0" "$@"

N=8
LIB8="$C8/usr/lib/x86_64-linux-gnu"
prog="$SF_TMP/sf_newopt"
# shellcheck disable=SC2046 # word splitting of the flags is intended
cc -std=gnu11 -Wall -Wextra -Werror -O2 -pthread $(sf_san_cflags) \
	-I"$C8/usr/include/x86_64-linux-gnu" -o "$prog" \
	tests/fixtures/curl8/sf_newopt.c -L"$LIB8" -Wl,-rpath,"$LIB8" -lcurl

sf_start_httpd "$SF_TMP/origin.log"
id="newopt$$"
LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" SFSHIM_LOG=debug \
	"$prog" "$SF_HTTP/bytes/5000?id=$id&gate=$id" "$N" 5000 \
	>"$SF_TMP/out" 2>"$SF_TMP/err" &
pid=$!
# Every follower announces itself once it waits on the leader's flight.
if ! sf_wait_count $((N - 1)) sf_grep_count "joined flight" "$SF_TMP/err"; then
	echo "FAIL: the followers never joined the flight:"
	sed 's/^/    /' "$SF_TMP/err"
	sf_open_gate "$id"
	wait "$pid" || true
	exit 1
fi
sf_open_gate "$id"
rc=0
wait "$pid" || rc=$?
cat "$SF_TMP/out"
grep -v "joined flight" "$SF_TMP/err" || true
requests=$(sf_grep_count "id=$id" "$SF_TMP/origin.log")
if [ "$rc" != 0 ] || [ "$requests" != 1 ]; then
	echo "FAIL: exit $rc, $requests requests reached the origin (want 0 and 1)"
	exit 1
fi
grep -q "^libcurl 8\.14" "$SF_TMP/out" || { echo "FAIL: not run against 8.14"; exit 1; }
echo "ok: $N performs with 8.x options, one request"
