#!/bin/bash
# What the library writes outside the process, run as root beneath real
# programs (issue 7, defects 1-4 and 11):
#  - the SFSHIM_STATS file is created 0600, never through a planted
#    symbolic link, never blocks the exit on a FIFO, and is written only if
#    it is a regular file; anything else gets one line and no write;
#  - configuration values are echoed escaped, on one line;
#  - SFSHIM_SPILL is bounded, with one line saying so;
#  - the settings are read when the library loads: PHP empties its
#    environment before it exits, and SFSHIM_STATS still works under php.
set -eu
. tests/integration/common.bash

T=$(mktemp -d /tmp/sfshim-safety.XXXXXX)
trap 'rm -rf "$T"' EXIT
PRE=$(sf_preload "$B/libsfshim.so")
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

# run ERRFILE VAR=VALUE... -- PROGRAM...: the program beneath the shim, its
# stderr in ERRFILE, bounded in time (a hang fails, it never blocks).
run() {
	local err=$1
	shift
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	local rc=0
	timeout 20 env LD_PRELOAD="$PRE" "${envs[@]}" "$@" >/dev/null 2>"$err" || rc=$?
	return $rc
}

lines() { wc -l <"$1" | tr -d ' '; }

# ---- the stats file -------------------------------------------------------

umask 022
run "$T/err" SFSHIM_STATS="$T/stats" -- true
mode=$(stat -c %a "$T/stats" 2>/dev/null || echo none)
if [ "$mode" = 600 ] && grep -q '^sfshim\[[0-9]*\]: dns: calls=' "$T/stats" &&
	[ "$(lines "$T/err")" = 0 ]; then
	ok "stats file created 0600 with the summary"
else
	fail "stats file mode $mode (want 600); stderr: $(cat "$T/err")"
fi

echo "keep" >"$T/target"
chmod 0644 "$T/target"
ln -s "$T/target" "$T/link"
run "$T/err" SFSHIM_STATS="$T/link" -- true
if [ "$(cat "$T/target")" = keep ] && [ "$(lines "$T/err")" = 1 ] &&
	grep -q 'SFSHIM_STATS=.*link.*not written' "$T/err"; then
	ok "planted symlink not followed, one line"
else
	fail "symlink: target now '$(cat "$T/target")'; stderr: $(cat "$T/err")"
fi

ln -s "$T/created-through-link" "$T/dangling"
run "$T/err" SFSHIM_STATS="$T/dangling" -- true
if [ ! -e "$T/created-through-link" ] && [ "$(lines "$T/err")" = 1 ]; then
	ok "dangling symlink: nothing created, one line"
else
	fail "dangling symlink created its target; stderr: $(cat "$T/err")"
fi

mkfifo "$T/fifo"
rc=0
run "$T/err" SFSHIM_STATS="$T/fifo" -- true || rc=$?
if [ "$rc" = 0 ] && [ "$(lines "$T/err")" = 1 ] &&
	grep -q 'SFSHIM_STATS=.*fifo.*not a regular file' "$T/err"; then
	ok "FIFO without a reader: prompt exit, one line"
else
	fail "FIFO: exit $rc (124: hung); stderr: $(cat "$T/err")"
fi

# A FIFO somebody reads: opening would succeed, but it is no regular file.
exec 3<>"$T/fifo"
rc=0
run "$T/err" SFSHIM_STATS="$T/fifo" -- true || rc=$?
got=$(timeout 1 dd if="$T/fifo" bs=4096 count=1 iflag=nonblock 2>/dev/null | wc -c || true)
exec 3>&-
if [ "$rc" = 0 ] && [ "$(lines "$T/err")" = 1 ] && [ "${got:-0}" = 0 ]; then
	ok "FIFO with a reader: nothing written, one line"
else
	fail "FIFO with reader: exit $rc, $got bytes written; stderr: $(cat "$T/err")"
fi

mkdir "$T/dir"
run "$T/err" SFSHIM_STATS="$T/dir" -- true
if [ "$(lines "$T/err")" = 1 ]; then
	ok "directory: one line"
else
	fail "directory: stderr: $(cat "$T/err")"
fi

# ---- echoed values --------------------------------------------------------

run "$T/err" SFSHIM_STATS=stderr SFSHIM_WAIT_MS=$'5\nsfshim[1]: forged line' -- true
if ! grep -q '^sfshim\[1\]: forged' "$T/err" &&
	grep -q "SFSHIM_WAIT_MS='5\\\\nsfshim\[1\]: forged line'" "$T/err"; then
	ok "a newline in a value is escaped"
else
	fail "forged line: $(cat "$T/err")"
fi

run "$T/err" SFSHIM_SPILL=8589934591G -- true
if [ "$(lines "$T/err")" = 1 ] &&
	grep -q "SFSHIM_SPILL='8589934591G' is more than the maximum 1G; assuming 1G" "$T/err"; then
	ok "SFSHIM_SPILL bounded, one line"
else
	fail "SFSHIM_SPILL=8589934591G: stderr: $(cat "$T/err")"
fi

# ---- settings read at load: PHP -------------------------------------------

if command -v php >/dev/null; then
	# PHP's own allocations at exit are not the shim's to judge.
	ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0" \
		run "$T/err" SFSHIM_STATS="$T/php.stats" -- \
		php -n -r 'echo gethostbyname("localhost");'
	if grep -q '^sfshim\[[0-9]*\]: dns: calls=' "$T/php.stats" 2>/dev/null; then
		ok "SFSHIM_STATS works under php"
	else
		fail "no stats under php; stderr: $(cat "$T/err")"
	fi
else
	fail "php is not installed (scripts/install-deps.sh installs php8.2-cli)"
fi

[ "$fails" = 0 ] || {
	echo "70-safety: $fails failed"
	exit 1
}
echo "70-safety: all passed"
