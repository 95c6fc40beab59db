#!/bin/bash
# run-unit.sh - runs each check binary given as an argument, prints its
# summary line, and exits 1 if any binary failed, crashed, or left a
# sanitizer report on stderr (a report in a forked test child does not
# always reach the exit status).
#
# B (the build directory) tells a sanitizer build: there check's per-test
# timeout (4 s) is raised to 60 s unless CK_DEFAULT_TIMEOUT is already set.
set -u

case "${B:-build}" in
*asan* | *tsan*) export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}" ;;
esac

if [ "$#" -eq 0 ]; then
	echo "run-unit.sh: no test binaries given" >&2
	exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

failed=0
for t in "$@"; do
	name=$(basename "$t")
	if [ ! -x "$t" ]; then
		echo "FAIL $name: not built"
		failed=1
		continue
	fi
	"$t" >"$log" 2>&1
	rc=$?
	summary=$(grep -E '^[0-9]+%: Checks: ' "$log")
	reports=$(grep -cE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$log")
	if [ "$rc" -eq 0 ] && [ -n "$summary" ] && [ "$reports" -eq 0 ]; then
		echo "ok   $name: $summary"
	else
		echo "FAIL $name: exit $rc, ${reports} sanitizer report(s): ${summary:-no summary}"
		sed 's/^/    /' "$log"
		failed=1
	fi
done
exit "$failed"
