#!/bin/bash
# The libcurl hook against the HTTP fixture: sf_httpd on 127.0.0.1 (an
# ephemeral port, announced through its ready file), the test binary under
# LD_PRELOAD with the shim.  See tests/preload/test_curl.c.
set -eu
. tests/integration/common.bash

SF_TMP=$(mktemp -d /tmp/sfshim-curl.XXXXXX)
export SF_TMP
trap 'sf_cleanup' EXIT # stops sf_httpd, removes SF_TMP

"$SF_ROOT/$B/tests/sf_httpd" -l "$SF_TMP/httpd.log" -a 127.0.0.1 \
	-r "$SF_TMP/httpd.ready" &
SF_PIDS+=($!)
for _ in $(seq 1 200); do
	[ -s "$SF_TMP/httpd.ready" ] && break
	kill -0 "${SF_PIDS[-1]}" 2>/dev/null || break
	sleep 0.05
done
if [ ! -s "$SF_TMP/httpd.ready" ]; then
	echo "30-curl: sf_httpd did not start" >&2
	exit 1
fi

export SF_HTTPD_PORT="$(cat "$SF_TMP/httpd.ready")"
export SF_HTTPD_LOG="$SF_TMP/httpd.log"
# Per test; sanitizers make the 10 MB and cancellation tests much slower.
if [ -n "$SAN" ]; then
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-240}"
else
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}"
fi

LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" "$B/tests/test_curl"
