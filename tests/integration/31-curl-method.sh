#!/bin/bash
# The method the shim derives from the method options, against what the real
# libcurl sends (tests/unit/test_curl_method.c): every option pair in both
# orders and the tricky triples, through tests/fixtures/sf_httpd's /method
# route, in a private network namespace.  Not preloaded: the test links the
# shim's objects itself.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

sf_start_httpd "$SF_TMP/origin.log" # exports SF_HTTP_PORT
if [ -n "$SAN" ]; then
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-600}"
else
	export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-120}"
fi
"$B/tests/test_curl_method"
