#!/bin/bash
# Why a call passed through is visible (issue 7, defect 12): at SFSHIM_LOG=info
# the shim names the option or argument once per distinct cause, and the
# stats summary lists the causes by name, never with a value (URL, host,
# credentials).  The curl tool with -b '' (the cookie engine on, which its
# share handle's jar would serve) stands for the curl hook; python3's
# getaddrinfo with a numeric host or AI_NUMERICHOST stands for the DNS hook.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

SHIM="$(sf_preload_host "$B/libsfshim.so")"
sf_start_httpd "$SF_TMP/origin.log"
fail=0
# expect COUNT PATTERN FILE WHAT: exactly COUNT lines of FILE hold PATTERN.
expect() {
	local n
	n=$(grep -cF -- "$2" "$3" || true)
	if [ "$n" != "$1" ]; then
		echo "FAIL: $4: $n lines with '$2', want $1"
		sed 's/^/    /' "$3"
		fail=1
	else
		echo "ok: $4"
	fi
}

# Three transfers in one curl process, with credentials and a token in the
# URLs: one cause line, three counted, no secret printed.
base="http://user:s3cretpw@127.0.0.1:$SF_HTTP_PORT"
LD_PRELOAD="$SHIM" SFSHIM_LOG=info SFSHIM_STATS=stderr /usr/bin/curl -s -b '' \
	-o /dev/null "$base/text?token=t0psecret" \
	-o /dev/null "$base/bytes/10?token=t0psecret" \
	-o /dev/null "$base/text?token=t0psecret" 2>"$SF_TMP/curl.err"
expect 1 "curl: CURLOPT_COOKIEFILE set: passing through" "$SF_TMP/curl.err" \
	"curl tool: the CURLOPT_COOKIEFILE cause is logged once"
expect 1 "curl: passthrough causes: CURLOPT_COOKIEFILE set=3" "$SF_TMP/curl.err" \
	"curl tool: the stats list CURLOPT_COOKIEFILE for all three transfers"
expect 0 "s3cretpw" <(grep -F "passing through" "$SF_TMP/curl.err"; grep -F "passthrough causes" "$SF_TMP/curl.err") \
	"curl tool: no credential in the cause lines"
expect 0 "t0psecret" <(grep -F "passing through" "$SF_TMP/curl.err"; grep -F "passthrough causes" "$SF_TMP/curl.err") \
	"curl tool: no token in the cause lines"

# The DNS hook: two numeric hosts, one AI_NUMERICHOST lookup of a name.
LD_PRELOAD="$SHIM" SFSHIM_LOG=info SFSHIM_STATS=stderr /usr/bin/python3 -c '
import socket
socket.getaddrinfo("127.0.0.1", 80)
socket.getaddrinfo("127.0.0.2", 80)
try:
    socket.getaddrinfo("localhost", 80, flags=socket.AI_NUMERICHOST)
except socket.gaierror:
    pass
' 2>"$SF_TMP/dns.err"
expect 1 "dns: numeric host: passing through" "$SF_TMP/dns.err" \
	"dns: the numeric-host cause is logged once"
expect 1 "dns: AI_NUMERICHOST set: passing through" "$SF_TMP/dns.err" \
	"dns: the AI_NUMERICHOST cause is logged once"
expect 1 "dns: passthrough causes: numeric host=2, AI_NUMERICHOST set=1" \
	"$SF_TMP/dns.err" "dns: the stats list both causes, busiest first"
expect 0 "127.0.0.2" <(grep -F "passing through" "$SF_TMP/dns.err") \
	"dns: no host in the cause lines"
exit "$fail"
