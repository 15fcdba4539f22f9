#!/bin/sh
# The README's second command (and .ci/run's): install what is missing,
# build twice (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer),
# run the whole suite in both, and end with one line: "N passed, N failed".
# Test output stays in build*/meson-logs/testlog.txt.
set -u
cd "$(dirname "$0")/.."
scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
# A sanitizer report is a failure, not a line in a log.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}"
passed=0
failed=0
for spec in "build" "build-asan -Db_sanitize=address,undefined -Db_lundef=false"; do
	# shellcheck disable=SC2086
	set -- $spec
	dir=$1
	if ! scripts/build.sh "$@"; then
		echo "rift: $dir: build failed (see $dir.ninja.log)" >&2
		failed=$((failed + 1))
		continue
	fi
	meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 \
		>"$dir.test.log" 2>&1
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir.test.log" | tail -1)
	xf=$(sed -n 's/^Expected Fail: *\([0-9]*\).*/\1/p' "$dir.test.log" | tail -1)
	bad=0
	for k in "Fail" "Unexpected Pass" "Timeout"; do
		n=$(sed -n "s/^$k: *\([0-9]*\).*/\1/p" "$dir.test.log" | tail -1)
		bad=$((bad + ${n:-0}))
	done
	if [ -z "$ok" ]; then
		echo "rift: $dir: meson test did not run (see $dir.test.log)" >&2
		bad=$((bad + 1))
	fi
	grep -E '^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|UNEXPECTEDPASS)' "$dir.test.log" | sed "s|^|rift: $dir: |" >&2
	passed=$((passed + ${ok:-0} + ${xf:-0}))
	failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
