#!/bin/sh
# expect-fail.sh KIT CASE REASON PLUGIN TEMPLATE
#
# The kit's own test: run one case on a plugin with a known bug
# (broken_pipe.c, the bug chosen by $RIFT_SAMPLE_BUG) and pass only if that
# case fails and its reason contains REASON.
kit=$1 case=$2 reason=$3
shift 3
out=$("$kit" --timeout-ms 5000 --case "$case" "$@" 2>&1)
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 1 ]; then
	echo "expect-fail: the kit exited $status, expected 1"
	exit 1
fi
if ! printf '%s\n' "$out" | grep -q "^FAIL $case: .*$reason"; then
	echo "expect-fail: expected a line 'FAIL $case: ...$reason...'"
	exit 1
fi
exit 0
