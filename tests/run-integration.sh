#!/bin/bash
# Runs every tests/integration/*.sh in name order from the repository root,
# each with B (build directory), SAN (sanitizer variant: "", asan, tsan) and
# SAN_RUNTIME (sanitizer runtime .so paths to put first in LD_PRELOAD) in
# its environment.  A script passes when it exits 0 and its output holds no
# sanitizer report.  Ends with "integration: N passed, M failed" and a
# non-zero status if anything failed.
#
#   B=build SAN= SAN_RUNTIME= tests/run-integration.sh [SCRIPT...]
set -u
cd "$(dirname "$0")/.." || exit 2
export B="${B:-build}" SAN="${SAN:-}" SAN_RUNTIME="${SAN_RUNTIME:-}"

# What sanitizer runtimes print when they find something; one of these in a
# script's output fails it even if some process swallowed the exit status.
san_report='^(==[0-9]+==ERROR: (Address|Leak|Memory)Sanitizer|WARNING: ThreadSanitizer|SUMMARY: (Address|Thread|Leak|UndefinedBehavior)Sanitizer)|: runtime error: '

if [ $# -gt 0 ]; then
	scripts=("$@")
else
	shopt -s nullglob
	scripts=(tests/integration/*.sh)
fi

passed=0 failed=0 failures=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in "${scripts[@]}"; do
	printf '\n==== %s (B=%s SAN=%s) ====\n' "$t" "$B" "${SAN:-none}"
	start=$(date +%s)
	bash "$t" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	secs=$(( $(date +%s) - start ))
	if [ "$rc" -eq 0 ] && grep -Eq "$san_report" "$out"; then
		echo "run-integration: sanitizer report in the output of $t"
		rc=99
	fi
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		printf '==== PASS %s (%ss)\n' "$t" "$secs"
	else
		failed=$((failed + 1))
		failures+=("$t")
		printf '==== FAIL %s (exit %s, %ss)\n' "$t" "$rc" "$secs"
	fi
done

echo
for t in "${failures[@]+"${failures[@]}"}"; do
	echo "failed: $t"
done
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
