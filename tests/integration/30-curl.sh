#!/bin/bash
# The libcurl hook under threads: tests/preload/test_curl.c, preloaded with
# the shim, against tests/fixtures/sf_httpd on 127.0.0.1 in a private
# network namespace (so that a port nobody listens on stays closed, and no
# other test's origin is in the way).  The test reads the origin's port and
# log from SF_HTTP_PORT and SF_HTTPD_LOG; sf_cleanup (trap) stops sf_httpd.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

export SF_HTTPD_LOG="$SF_TMP/origin.log"
sf_start_httpd "$SF_HTTPD_LOG" # exports SF_HTTP_PORT

# Per test; the sanitizers slow the 10 MB and the 1 s progress tests down.
if [ -n "$SAN" ]; then
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-240}"
else
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}"
fi

LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" "$B/tests/test_curl"
