# trace.bash - herds for the trace/JSON stats tests (75-trace.sh) and the
# report's browser test (tests/report/check-report.sh); sourced after
# common.bash and http.bash, inside sf_private_world.  Not a test itself.
#
#   sf_herd_dns DIR N NAME [EXTRA...]  N python3 threads resolve NAME with
#                   the fake resolver; EXTRA names are resolved alone after
#   sf_herd_curl DIR N PATH             N pycurl threads GET $SF_HTTP/PATH;
#                   PATH must carry gate=NAME: the origin holds the leader's
#                   request until N-1 followers have joined
# Both run with SFSHIM_STATS=json:DIR/stats.jsonl and SFSHIM_TRACE=
# DIR/<dns|curl>.trace.json plus whatever SFSHIM_* the caller exported.

SF_PY=/usr/bin/python3

sf_herd_dns() {
	local dir=$1 n=$2 name=$3
	shift 3
	: >"$dir/dns.err"
	# herd.py reads its own stderr file (the followers' log lines).
	# shellcheck disable=SC2094
	env SFSHIM_LOG=debug SFSHIM_STATS="json:$dir/stats.jsonl" \
		SFSHIM_TRACE="$dir/dns.trace.json" \
		LD_PRELOAD="$(sf_preload_host "$B/libsfshim.so" "$B/tests/libsf_fakeres.so")" \
		timeout -s KILL 300 "$SF_PY" "$SF_ROOT/tests/integration/herd.py" \
		dns "$name" "$n" "$dir/dns.err" "$@" 2>>"$dir/dns.err" || {
		grep -v 'joined flight' "$dir/dns.err" | head -20
		echo "FAIL: dns herd"
		return 1
	}
}

sf_herd_curl() {
	local dir=$1 n=$2 path=$3 gate
	gate=${path#*gate=}
	gate=${gate%%&*}
	: >"$dir/curl.err"
	env SFSHIM_LOG=debug SFSHIM_STATS="json:$dir/stats.jsonl" \
		SFSHIM_TRACE="$dir/curl.trace.json" \
		LD_PRELOAD="$(sf_preload_host "$B/libsfshim.so")" \
		timeout -s KILL 300 "$SF_PY" "$SF_ROOT/tests/integration/herd.py" \
		curl "$SF_HTTP$path" "$n" >"$dir/curl.out" 2>"$dir/curl.err" &
	local pid=$! rc=0
	sf_wait_count 1 sf_grep_count "gate=$gate" "$SF_TMP/origin.log" &&
		sf_wait_count $((n - 1)) sf_grep_count ": joined flight" "$dir/curl.err" ||
		rc=1
	sf_open_gate "$gate"
	wait "$pid" || rc=$?
	cat "$dir/curl.out"
	if [ "$rc" -ne 0 ]; then
		grep -v 'joined flight' "$dir/curl.err" | head -20
		echo "FAIL: curl herd"
		return 1
	fi
}
