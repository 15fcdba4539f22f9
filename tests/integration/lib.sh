# lib.sh - what the integration scripts that start brokers as processes
# share. Sourced after the script sets ME (its name in messages) and T (its
# temp dir). Keeps $PIDS (brokers to kill on exit), $NAMES (pid=name, for
# messages) and $LOGS (files a failure shows).
# shellcheck shell=sh

LOGS=""
PIDS=""
NAMES=""

fail() {
	echo "$ME: FAIL: $*" >&2
	for f in $LOGS; do
		[ -s "$f" ] || continue
		echo "--- ${f##*/} (last lines):" >&2
		tail -n 20 "$f" >&2
	done
	exit 1
}
say() { echo "$ME: $*"; }

# started NAME: the broker just started in the background ($!) is NAME;
# sets $LAST. Its log $T/NAME.err and its program's $T/NAME.stderr join
# the logs a failure shows.
started() {
	LAST=$!
	PIDS="$PIDS $LAST"
	NAMES="$NAMES $LAST=$1"
	LOGS="$LOGS $T/$1.err $T/$1.stderr"
}

name_of() { # the broker's name, for messages
	for e in $NAMES; do
		case $e in "$1="*) echo "${e#*=}"; return ;; esac
	done
	echo "pid $1"
}

# alive PID: the process still runs (a zombie has exited, only nobody has
# reaped it yet: kill -0 would still succeed on it).
alive() {
	st=""
	read -r st 2>/dev/null <"/proc/$1/stat" || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# await PID SECONDS [WHY]: waits at most SECONDS for a broker to exit; its
# status in $RC.
await() {
	deadline=$(($(date +%s) + $2))
	while alive "$1"; do
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "broker $(name_of "$1") did not exit within $2 s${3:+ ($3)}"
		sleep 0.05 # a poll interval for the condition above
	done
	RC=0
	wait "$1" || RC=$?
	# Reaped: its pid may be reused, so the cleanup no longer kills it
	# (the cases that SIGKILL a broker end its session first).
	rest=""
	for q in $PIDS; do
		[ "$q" = "$1" ] || rest="$rest $q"
	done
	PIDS=$rest
}
