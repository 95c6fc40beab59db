#!/bin/bash
# Option semantics of the libcurl hook (setopt order, method, unknown ids):
# tests/preload/test_curl_opts.c, preloaded with the shim, against
# tests/fixtures/sf_httpd on 127.0.0.1 in a private network namespace.
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

LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" "$B/tests/test_curl_opts"
