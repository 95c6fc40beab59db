#!/bin/bash
# The real /usr/bin/curl under the shim behaves byte for byte like the tool
# without it: stdout, stderr, exit status and every file it writes, for a
# set of invocations against tests/fixtures/sf_httpd.  The shim's stats file
# proves that each run went through the shim's curl_easy_perform.
#
# (The curl tool always sets CURLOPT_SHARE; its share holds only what the
# shim judges harmless (shim/curl/sf_curl_share.h), so its transfers go
# through the shim's leader path: this is a transparency test of that path.)
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

CURL=/usr/bin/curl
SHIM="$(sf_preload_host "$B/libsfshim.so")"
sf_start_httpd "$SF_TMP/origin.log"
U=$SF_HTTP
REFUSED="http://127.0.0.1:9/text" # nothing listens in the private namespace

failures=0 checks=0

# run DIR ENV... -- ARGS...: one curl run in DIR (its working directory, so
# that -o/-O files land there), stdout/stderr/status kept in DIR.
run() {
	local dir=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	mkdir -p "$dir"
	local rc=0
	(cd "$dir" && env "${envs[@]+"${envs[@]}"}" "$CURL" "$@" \
		>"$dir/.stdout" 2>"$dir/.stderr") || rc=$?
	echo "$rc" >"$dir/.status"
}

# check NAME ARGS...: the same invocation without and with the shim.
check() {
	local name=$1
	shift
	local d="$SF_TMP/cmp/$name" nurls=0 a
	for a in "$@"; do
		case $a in http://127.0.0.1:*) nurls=$((nurls + 1)) ;; esac
	done
	run "$d/plain" -- "$@"
	run "$d/shim" LD_PRELOAD="$SHIM" SFSHIM_STATS="$d/stats" -- "$@"
	checks=$((checks + 1))

	local diffout
	if diffout=$(diff -r -u "$d/plain" "$d/shim" 2>&1); then
		:
	elif [[ $name == refused* ]] &&
		diff -r -u <(sed -E 's/after [0-9]+ ms/after N ms/' "$d/plain/.stderr") \
			<(sed -E 's/after [0-9]+ ms/after N ms/' "$d/shim/.stderr") >/dev/null &&
		diff -r -u -x .stderr "$d/plain" "$d/shim" >/dev/null; then
		# libcurl's own connect time ("after 0 ms") is not the shim's.
		echo "note: $name: only the connect time in the message differs"
	else
		echo "FAIL: $name: curl $*"
		echo "    ${diffout//$'\n'/$'\n'    }"
		failures=$((failures + 1))
		return 0
	fi
	# The shim must have seen every transfer (one perform per URL).
	local calls
	calls=$(sed -n 's/.* curl: calls=\([0-9]*\) .*/\1/p' "$d/stats" 2>/dev/null | head -n1)
	if [ "${calls:-missing}" != "$nurls" ]; then
		echo "FAIL: $name: shim stats say curl calls=${calls:-missing}, expected $nurls"
		[ -f "$d/stats" ] && sed 's/^/    /' "$d/stats"
		failures=$((failures + 1))
		return 0
	fi
	printf 'ok   %-16s exit=%s stdout=%sB stderr=%sB files=%s  curl %s\n' "$name" \
		"$(cat "$d/plain/.status")" "$(wc -c <"$d/plain/.stdout")" \
		"$(wc -c <"$d/plain/.stderr")" \
		"$(find "$d/plain" -type f ! -name '.*' | wc -l)" "$*"
}

W='%{http_code} %{size_download} %{content_type} %{url_effective} %{num_redirects}\n'

check get            -s "$U/text"
check get-big        -s "$U/bytes/200000"
check get-chunked    -s "$U/bytes/70000?te=chunked&chunk=5000"
check include        -s -i "$U/text"
check dump-header    -s -D - "$U/text"
check output-file    -s -o out.bin "$U/bytes/300000"
check output-remote  -s -O "$U/bytes/1000"
check post           -s -d 'a=1&b=two' "$U/echo"
check post-include   -s -i --data-binary @/etc/hostname "$U/echo"
check head           -s -I "$U/text"
check redirect       -s "$U/redirect/3"
check redirect-L     -s -L "$U/redirect/3"
check redirect-Li    -s -L -i "$U/redirect/2"
check redirect-max   -sS -L --max-redirs 1 "$U/redirect/3"
check 404            -s "$U/status/404"
check 404-i          -s -i "$U/status/404"
check 404-f          -sS -f "$U/status/404"
check 404-f-i        -sS -f -i "$U/status/404"
check 500-f          -sS --fail-with-body "$U/status/500"
check refused        -sS "$REFUSED"
check refused-w      -s -w "$W" "$REFUSED"
check write-out      -s -o /dev/null -w "$W" "$U/text"
check write-out-L    -s -o /dev/null -L -w "$W" "$U/redirect/2"
check write-out-404  -s -w "$W" "$U/status/404"
check write-header   -s -o /dev/null -w '%header{x-fixture}' "$U/text"
check write-headers  -s -o /dev/null -w '%header{content-type}|%header{content-length}|%header{nope}\n' "$U/bytes/10"
check many-urls      -s "$U/text" "$U/bytes/100" "$U/status/404" "$U/redirect/0"
check many-urls-o    -s -o a.txt "$U/text" -o b.bin "$U/bytes/5000" -w "$W" "$U/status/204"
check many-urls-fail -sS -f "$U/text" "$U/status/404" "$U/bytes/10"
check many-mixed     -s -w "$W" "$U/text" "$REFUSED" "$U/redirect/1"
check cookie         -s -b 'sid=xyz' "$U/cookie"
check cookie-jar     -s -c jar.txt "$U/cookie"
check trailer        -s -i "$U/trailer"
check headers-custom -s -H 'X-Test: 1' -A 'agent/1.0' -e 'http://ref/' "$U/echo"
check range          -s -r 10-19 "$U/bytes/100"

# What reached the origin: every request twice (once per run), in pairs.
echo "origin saw $(sf_log_count "$SF_TMP/origin.log") requests for $checks comparisons"
if [ "$failures" -ne 0 ]; then
	echo "40-curl-tool: $failures of $checks comparisons FAILED"
	exit 1
fi
echo "40-curl-tool: all $checks comparisons byte-identical (stdout, stderr, exit status, files)"
