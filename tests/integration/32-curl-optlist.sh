#!/bin/bash
# Every CURLOPT id of curl/curl.h has a row in the shim's option table
# (shim/curl/sf_curl_opts_table.c): an option the table lacks makes every
# handle that sets it pass through, so a new libcurl would quietly stop
# coalescing.  Checked against the installed header and, when
# scripts/curl8.sh has fetched it, libcurl 8.14's (or any header named in
# SF_CURL_HEADERS).  Ids are compared, not names: libcurl renames options
# (CURLOPT_MAIL_RCPT_ALLLOWFAILS became ..._ALLOWFAILS) and keeps the id.
set -eu
. tests/integration/common.bash

table=$(mktemp)
trap 'rm -f "$table"' EXIT
"$B/tests/sf_curl_optdump" >"$table"

headers=${SF_CURL_HEADERS:-}
if [ -z "$headers" ]; then
	for h in /usr/include/x86_64-linux-gnu/curl/curl.h /usr/include/curl/curl.h \
		"$B/curl8/usr/include/x86_64-linux-gnu/curl/curl.h"; do
		[ -f "$h" ] && headers="$headers $h"
	done
fi
[ -n "$headers" ] || { echo "32-curl-optlist: no curl/curl.h found" >&2; exit 1; }

fail=0
for h in $headers; do
	# CURLOPT(NAME, CURLOPTTYPE_X, N) and CURLOPTDEPRECATED(NAME, TYPE, N,
	# version, message), possibly over several lines: id = base(TYPE) + N.
	missing=$(tr '\n' ' ' <"$h" |
		grep -oE 'CURLOPT(DEPRECATED)?\( *CURLOPT_[A-Z0-9_]+ *, *CURLOPTTYPE_[A-Z_]+ *, *[0-9]+' |
		sed -E 's/CURLOPT(DEPRECATED)?\( *//; s/ *, */ /g' |
		awk -v table="$table" '
			BEGIN {
				base["LONG"] = 0; base["VALUES"] = 0
				base["OBJECTPOINT"] = 10000; base["STRINGPOINT"] = 10000
				base["SLISTPOINT"] = 10000; base["CBPOINT"] = 10000
				base["FUNCTIONPOINT"] = 20000; base["OFF_T"] = 30000
				base["BLOB"] = 40000
				while ((getline line < table) > 0) {
					split(line, f, " ")
					known[f[1]] = 1
				}
			}
			{
				t = $2; sub(/^CURLOPTTYPE_/, "", t)
				if (!(t in base)) { print $1 " (unknown type " $2 ")"; next }
				n++
				if (!((base[t] + $3) in known)) print $1 " = " base[t] + $3
			}
			END { if (n < 100) print "only " n " options parsed" }')
	if [ -n "$missing" ]; then
		echo "FAIL: $h has options the table lacks:"
		printf '    %s\n' "${missing//$'\n'/$'\n'    }"
		fail=1
	else
		echo "ok: every CURLOPT of $h is in the table ($(wc -l <"$table") rows)"
	fi
done
exit "$fail"
