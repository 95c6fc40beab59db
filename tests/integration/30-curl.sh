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

sf_run_preload_http test_curl
