#!/bin/bash
# Option semantics of the libcurl hook (setopt order, method, unknown ids):
# tests/preload/test_curl_opts.c, preloaded with the shim, against
# tests/fixtures/sf_httpd on 127.0.0.1 in a private network namespace.
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

sf_run_preload_http test_curl_opts
