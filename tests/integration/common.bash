# common.bash - sourced by tests/integration/*.sh (not a test itself).
#
# Scripts run from the repository root with B, SAN and SAN_RUNTIME set by
# tests/run-integration.sh.  What they share:
#   sf_private_world  re-executes the calling script inside a private network
#                     and mount namespace (root, util-linux unshare): loopback
#                     up, /etc/hosts and /etc/resolv.conf replaced by files
#                     in $SF_TMP through bind mounts, so that tests control
#                     every name and no query can leave the machine;
#   sf_preload LIB... the LD_PRELOAD value for those libraries, with the
#                     sanitizer runtime first (ASan insists on coming first in
#                     the library list, even for instrumented programs).

: "${B:=build}" "${SAN:=}" "${SAN_RUNTIME:=}"
export B SAN SAN_RUNTIME
SF_ROOT=$(pwd)

# Sanitizer settings for every process of a test: fail hard, and leave
# python3's own leaks out of LSan's verdict.  detect_stack_use_after_return
# puts instrumented frames' locals on ASan's fake stack: besides catching
# use-after-return, that keeps thread cancellation (which unwinds without
# unpoisoning the real stack) from leaving stale redzones behind, which
# cleanup handlers then trip over (google/sanitizers#1010, #1399, #1669).
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:second_deadlock_stack=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$SF_ROOT/tests/lsan.supp:print_suppressions=0}"

sf_preload() {
	local v="$SAN_RUNTIME" lib
	for lib in "$@"; do
		case $lib in /*) ;; *) lib="$SF_ROOT/$lib" ;; esac
		v="$v $lib"
	done
	echo "${v# }"
}

# sf_private_world "$0" "$@"; HOSTS_EXTRA lines are appended to /etc/hosts.
sf_private_world() {
	if [ "${SF_PRIVATE_WORLD:-}" != 1 ]; then
		if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null; then
			echo "$1: needs root and unshare(1) for a private network namespace" >&2
			exit 1
		fi
		SF_PRIVATE_WORLD=1 exec unshare --net --mount bash "$@"
	fi
	SF_TMP=$(mktemp -d /tmp/sfshim-it.XXXXXX)
	trap 'sf_cleanup' EXIT
	ip link set lo up
	{
		echo "127.0.0.1 localhost"
		echo "::1 localhost ip6-localhost ip6-loopback"
		printf '%s\n' "${HOSTS_EXTRA:-}"
	} >"$SF_TMP/hosts"
	echo "nameserver 127.0.0.1" >"$SF_TMP/resolv.conf"
	mount --bind "$SF_TMP/hosts" /etc/hosts
	mount --bind "$SF_TMP/resolv.conf" /etc/resolv.conf
	export SF_TMP
}

# sf_scope_dirs: for tests across the processes of a scope: their wait
# limit, and a private 0700 $XDG_RUNTIME_DIR for the scope's table and
# response files (after sf_private_world).
sf_scope_dirs() {
	export SF_WAIT_SECS=${SF_WAIT_SECS:-120}
	export XDG_RUNTIME_DIR="$SF_TMP/run"
	mkdir -m 0700 "$XDG_RUNTIME_DIR"
}

# sf_x86_64_only NAME: the script skips (exit 0) where the shim has no
# dlopen entry.
sf_x86_64_only() {
	if [ "$(uname -m)" != x86_64 ]; then
		echo "$1: SKIP: the shim's dlopen entry exists on x86-64 only"
		exit 0
	fi
}

SF_PIDS=()
sf_cleanup() {
	local p
	for p in "${SF_PIDS[@]+"${SF_PIDS[@]}"}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	[ -n "${SF_TMP:-}" ] && rm -rf "$SF_TMP"
}

# sf_start_dnsd ZONE LOG [ARGS...]: starts the DNS fixture on 127.0.0.1:53
# and waits for its ready file.
sf_start_dnsd() {
	local zone=$1 log=$2
	shift 2
	rm -f "$SF_TMP/dnsd.ready"
	"$SF_ROOT/$B/tests/sf_dnsd" -z "$zone" -l "$log" -a 127.0.0.1 -p 53 \
		-r "$SF_TMP/dnsd.ready" "$@" &
	SF_PIDS+=($!)
	local _
	for _ in $(seq 1 200); do
		[ -s "$SF_TMP/dnsd.ready" ] && return 0
		kill -0 "${SF_PIDS[-1]}" 2>/dev/null || break
		sleep 0.05
	done
	echo "sf_dnsd did not start" >&2
	return 1
}
