#!/bin/bash
# Share handles (issue 8, "the curl tool"): the shim interposes
# curl_share_init/setopt/cleanup and lets a handle attached to a harmless
# share coalesce (shim/curl/sf_curl_share.h).
#  - tests/preload/test_curl_share.c: threads on one share, cookies with the
#    engine off and on, a reset handle, HSTS in use, an unknown share,
#    libcurl's own answers to curl_share_*;
#  - the real curl tool in serial mode: its share no longer makes its
#    transfers pass through (the stats show leaders, no pass-through).
set -eu
. tests/integration/common.bash
. tests/integration/http.bash
sf_private_world "$0" "$@"

sf_run_preload_http test_curl_share

SHIM="$(sf_preload_host "$B/libsfshim.so")"
fail=0
LD_PRELOAD="$SHIM" SFSHIM_LOG=info SFSHIM_STATS=stderr /usr/bin/curl -s \
	-o /dev/null "$SF_HTTP/text?id=tool1" \
	-o /dev/null "$SF_HTTP/bytes/10?id=tool2" 2>"$SF_TMP/tool.err"
if ! grep -qF "curl: calls=2 leaders=2 followers=0 " "$SF_TMP/tool.err" ||
	! grep -qF " passthrough=0 " <(grep -F "curl: calls=" "$SF_TMP/tool.err") ||
	grep -qF "CURLOPT_SHARE" "$SF_TMP/tool.err"; then
	echo "FAIL: curl tool (serial): want two leaders and no pass-through"
	sed 's/^/    /' "$SF_TMP/tool.err"
	fail=1
else
	echo "ok: curl tool (serial): both transfers led a flight, none passed through"
fi
exit $fail
