# http.bash - HTTP helpers for tests/integration/4x/5x-curl-*.sh (sourced
# after common.bash, inside sf_private_world; not a test itself).
#
#   sf_start_httpd LOG        starts tests/fixtures/sf_httpd on 127.0.0.1 and
#                             sets SF_HTTP_PORT and SF_HTTP (base URL)
#   sf_wait_count N CMD...    polls until CMD prints a number >= N (30 s, or
#                             SF_WAIT_SECS); fails with a message otherwise
#   sf_log_count LOG          lines in an origin log (0 if missing)
#   sf_grep_count PAT FILE    lines of FILE matching the fixed string PAT
#   sf_open_gate NAME         releases requests held by gate=NAME
#   sf_san_cflags             the compiler flags of the $SAN variant
#   sf_preload_host LIB...    like sf_preload, for an UNinstrumented host
#                             (/usr/bin/curl, python3): with a sanitizer,
#                             libsf_sanfix.so follows the runtime (see
#                             tests/fixtures/libsf_sanfix.c for why)
#   sf_run_preload_http TEST  runs $B/tests/TEST (a tests/preload/ check
#                             program) with the shim preloaded, against an
#                             sf_httpd of its own (SF_HTTPD_LOG,
#                             SF_HTTP_PORT)

sf_start_httpd() {
	local log=$1
	rm -f "$SF_TMP/httpd.ready"
	"$SF_ROOT/$B/tests/sf_httpd" -l "$log" -a 127.0.0.1 -r "$SF_TMP/httpd.ready" &
	SF_PIDS+=($!)
	for _ in $(seq 1 200); do
		if [ -s "$SF_TMP/httpd.ready" ]; then
			SF_HTTP_PORT=$(cat "$SF_TMP/httpd.ready")
			SF_HTTP="http://127.0.0.1:$SF_HTTP_PORT"
			export SF_HTTP_PORT SF_HTTP
			return 0
		fi
		kill -0 "${SF_PIDS[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "sf_httpd did not start" >&2
	return 1
}

sf_log_count() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

sf_grep_count() {
	if [ -f "$2" ]; then grep -cF -- "$1" "$2" || true; else echo 0; fi
}

sf_wait_count() {
	local want=$1 n
	shift
	for _ in $(seq 1 $(( ${SF_WAIT_SECS:-30} * 20 ))); do
		n=$("$@")
		[ "$n" -ge "$want" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $want from '$*' (last: $n)" >&2
	return 1
}

# The control request goes out without the shim (LD_PRELOAD is never
# exported by these scripts) and is not logged by the origin.
sf_open_gate() {
	env -u LD_PRELOAD /usr/bin/curl -sf -o /dev/null "$SF_HTTP/_open?gate=$1"
}

sf_san_cflags() {
	case $SAN in
	asan) echo "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" ;;
	tsan) echo "-fsanitize=thread -fno-omit-frame-pointer" ;;
	*) echo "" ;;
	esac
}

sf_preload_host() {
	if [ -n "$SAN_RUNTIME" ]; then
		sf_preload "$B/tests/libsf_sanfix.so" "$@"
	else
		sf_preload "$@"
	fi
}

# The check programs read the origin's port and log from SF_HTTP_PORT and
# SF_HTTPD_LOG; sf_cleanup (trap) stops sf_httpd.
sf_run_preload_http() {
	export SF_HTTPD_LOG="$SF_TMP/origin.log"
	sf_start_httpd "$SF_HTTPD_LOG" # exports SF_HTTP_PORT

	# Per test; the sanitizers slow the 10 MB and the 1 s progress tests
	# (test_curl) down.
	if [ -n "$SAN" ]; then
		export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-240}"
	else
		export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}"
	fi

	LD_PRELOAD="$(sf_preload "$B/libsfshim.so")" "$B/tests/$1"
}
