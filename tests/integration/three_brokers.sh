#!/bin/sh
# three_brokers.sh - three brokers, each a process in a session of its own,
# over the zmq and nng plugins, on loopback and unix sockets only:
#
#   1. a relay chain A -> B -> C: A (a file of 8 MiB -> exec:/bin/cat ->
#      Netpipe:zmq:tcp://127.0.0.1:P:w), B (Netpipe:zmq:...:r -> cat ->
#      Netpipe:nng:ipc://$T/b.ipc:w), C (Netpipe:nng:...:r -> a file), with
#      etag = 1 on every network channel; the writers start first and wait
#      for their readers by themselves. All three exit 0 and C's file equals
#      the input (cmp);
#   2. the same chain with the transports the other way round (nng over tcp
#      on 127.0.0.1, then zmq over ipc), the readers started first;
#   3. B's whole session is SIGKILLed mid-stream (A's program has written a
#      first part and waits for the test's go, through a FIFO): C exits 3
#      (its channel failed: a reset, never a clean EOF) and what it wrote is
#      a prefix of the input; A's program, released after the kill, writes
#      the rest: its writes fail (EPIPE, the reader went away), it exits 0
#      and A exits 3 (docs/semantics.md: the broker's status when the
#      program succeeded but a channel failed). A learns that its reader
#      left only when its program writes again, as a FIFO's writer does: a
#      program that never writes again keeps A running until its Timeout;
#   4. zmq fan-out over tcp on 127.0.0.1: one writer broker
#      (?fanout=1&readers=2, it binds and waits for both readers), two
#      reader brokers (?fanout=1), etag = 1; both get the whole stream and
#      all three exit 0. Then one reader broker is SIGKILLed mid-stream: the other
#      still gets the whole stream and exits 0, and so does the writer (a
#      fan-out writer fails with EPIPE only when its last reader leaves).
#      Both are skipped, with one line, when broker --check refuses the
#      fan-out descriptor (a build without fan-out).
#
# Every wait is bounded (a deadline on a condition, polled) and says what it
# waited for when it gives up; no sleep stands for synchronisation.
# Processes and files are cleaned up on every exit path.
#
# Environment (meson.build sets it): BROKER, RIFT_PLUGINS (build/plugins).
# Exit 0 when every case passed, 1 on a failure, 77 (skipped) without a tool.
set -eu

ME=three-brokers # lib.sh: fail, say, started, name_of, alive, await
. "$(dirname "$0")/lib.sh"
since() { echo "$(($(date +%s) - T0)) s"; } # seconds since the case began
begin() { LOGS=""; T0=$(date +%s); }

: "${BROKER:?set by meson.build}" "${RIFT_PLUGINS:?set by meson.build}"
for tool in cmp head tail wc date sleep setsid mkfifo; do
	command -v "$tool" >/dev/null 2>&1 || { echo "three-brokers: SKIP: no $tool"; exit 77; }
done
[ -r /proc/self/stat ] || { echo "three-brokers: SKIP: no /proc"; exit 77; }

T=$(mktemp -d "${TMPDIR:-/tmp}/rift-3b.XXXXXX")
# kill_session SID...: SIGKILL brokers' whole sessions: each broker (its
# process group; dash's kill takes "-PGID" but no "--"), then, in one pass
# over /proc, their programs (the exec runtime puts each in a process group
# of its own) and whatever those started.
kill_session() {
	for s; do
		kill -KILL "-$s" 2>/dev/null || kill -KILL "$s" 2>/dev/null || true
	done
	for f in /proc/[0-9]*/stat; do
		read -r st 2>/dev/null <"$f" || continue
		# After "pid (comm) ": state, ppid, pgrp, session.
		sid=${st##*) }
		sid=${sid#* * * }
		sid=${sid%% *}
		for s; do
			[ "$sid" != "$s" ] || kill -KILL "${st%% *}" 2>/dev/null || true
		done
	done
}
cleanup() {
	exec 8>&-
	# shellcheck disable=SC2086 # one argument per pid
	[ -z "$PIDS" ] || kill_session $PIDS
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case $T in *[,\;:\ ]*) fail "temp dir $T has a character descriptors cannot hold" ;; esac
unset RIFT_PLUGIN_PATH RIFT_LOG

# Each broker's manifest Timeout; every wait below has its own deadline too.
TIMEOUT=40

# A free loopback port: bind port 0 and release it (python3), else one at
# random in the dynamic range.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
	else
		echo $((49152 + $(od -An -N2 -tu2 /dev/urandom) % 16000))
	fi
}

# manifest NAME PROGRAM STDIN-URI STDIN-ETAG STDOUT-URI STDOUT-ETAG:
# writes $T/NAME.manifest; the program's stderr goes to $T/NAME.stderr.
manifest() {
	cat >"$T/$1.manifest" <<MANIFEST
Version = 20130611
Program = $2
Memory = 67108864, 0
Timeout = $TIMEOUT
Channel = $3, /dev/stdin, 0, $4, 1000000, 1073741824, 0, 0
Channel = $5, /dev/stdout, 0, $6, 0, 0, 1000000, 1073741824
Channel = $T/$1.stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
MANIFEST
}

# start_broker NAME: runs $T/NAME.manifest in a session of its own (setsid
# does not fork here: a background job of a non-interactive shell leads no
# process group), so $LAST is the broker's pid and -$LAST its program too.
# Its log is $T/NAME.err, and joins the logs a failure shows.
start_broker() {
	setsid "$BROKER" -m "$T/$1.manifest" -P "$RIFT_PLUGINS" >"$T/$1.out" 2>"$T/$1.err" &
	started "$1"
}

# expect PID SECONDS STATUS WHY: the broker exits within SECONDS with STATUS.
expect() {
	await "$1" "$2"
	[ "$RC" -eq "$3" ] ||
		fail "broker $(name_of "$1") exited $RC, expected $3 ($4)"
}

size() { if [ -f "$1" ]; then wc -c <"$1"; else echo 0; fi; }

# wait_size FILE BYTES SECONDS PID...: polls until FILE holds at least
# BYTES; each PID must keep running meanwhile.
wait_size() {
	f=$1 want=$2 secs=$3
	shift 3
	deadline=$(($(date +%s) + secs))
	while :; do
		got=$(size "$f")
		[ "$got" -lt "$want" ] || return 0
		for p; do
			alive "$p" || fail "broker $(name_of "$p") ended while waiting for $want bytes in ${f##*/} ($got so far)"
		done
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "only $got of $want bytes arrived in ${f##*/} within $secs s"
		sleep 0.02 # a poll interval for the condition above
	done
}

# The input: 8 MiB of random bytes and a last line; for the kill cases a
# first part (1 MiB) and the rest, which together are the input.
head -c 8388608 /dev/urandom >"$T/in.bin"
echo "the end of the input" >>"$T/in.bin"
IN_SIZE=$(size "$T/in.bin")
PART=1048576
head -c "$PART" "$T/in.bin" >"$T/part.bin"
tail -c +$((PART + 1)) "$T/in.bin" >"$T/rest.bin"
cat "$T/part.bin" "$T/rest.bin" | cmp -s - "$T/in.bin" || fail "cannot split the input"

# 1, 2. chain NAME LINK-AB LINK-BC ORDER: A -> LINK-AB -> B -> LINK-BC -> C,
# each link a Netpipe descriptor without its prefix and mode, etag 1.
chain() {
	n=$1
	begin
	manifest "$n-a" exec:/bin/cat "$T/in.bin" 0 "Netpipe:$2:w" 1
	manifest "$n-b" exec:/bin/cat "Netpipe:$2:r" 1 "Netpipe:$3:w" 1
	manifest "$n-c" exec:/bin/cat "Netpipe:$3:r" 1 "$T/$n.copy" 0
	if [ "$4" = writers-first ]; then
		start_broker "$n-a"; a=$LAST
		start_broker "$n-b"; b=$LAST
		start_broker "$n-c"; c=$LAST
	else
		start_broker "$n-c"; c=$LAST
		start_broker "$n-b"; b=$LAST
		start_broker "$n-a"; a=$LAST
	fi
	expect "$c" 45 0 "the reader at the end of the chain"
	expect "$b" 15 0 "the relay"
	expect "$a" 15 0 "the writer"
	cmp "$T/in.bin" "$T/$n.copy" || fail "$n: C's copy differs from the input"
	say "ok $n: $IN_SIZE bytes A -> $2 -> B -> $3 -> C, etag 1, $4, $(since)"
}

relay_chain() {
	chain chain "zmq:tcp://127.0.0.1:$(free_port)" "nng:ipc://$T/b.ipc" writers-first
}

reverse_chain() {
	chain reverse "nng:tcp://127.0.0.1:$(free_port)" "zmq:ipc://$T/b2.ipc" readers-first
}

# 3. The relay's session is SIGKILLed mid-stream.
kill_relay() {
	begin
	l1="zmq:tcp://127.0.0.1:$(free_port)"
	l2="nng:ipc://$T/kill.ipc"
	mkfifo "$T/kill.go"
	# A's program writes the first part, then waits for the test's go
	# (after the kill), then writes the rest: those writes fail (EPIPE), and
	# it exits 0 all the same, so that A's status is the channel's verdict.
	manifest kill-a "exec:/bin/sh -c \"cat '$T/part.bin'; read go <'$T/kill.go'; cat '$T/rest.bin'; exit 0\"" \
		"$T/in.bin" 0 "Netpipe:$l1:w" 1
	manifest kill-b exec:/bin/cat "Netpipe:$l1:r" 1 "Netpipe:$l2:w" 1
	manifest kill-c exec:/bin/cat "Netpipe:$l2:r" 1 "$T/kill.copy" 0
	start_broker kill-c; c=$LAST
	start_broker kill-b; b=$LAST
	start_broker kill-a; a=$LAST
	# Some bytes went all the way through: the stream is flowing.
	wait_size "$T/kill.copy" 1 30 "$a" "$b" "$c"
	kill_session "$b"
	await "$b" 10
	[ "$RC" -eq 137 ] || fail "kill: broker kill-b exited $RC, not by SIGKILL"

	expect "$c" 15 3 "a channel failed: its writer B vanished, which is not EOF"
	grep -q "error: channel /dev/stdin" "$T/kill-c.err" ||
		fail "kill: broker kill-c did not log its failed channel"
	grep -qi "reset\|went away" "$T/kill-c.err" ||
		fail "kill: broker kill-c's log does not say its writer went away (reset)"
	got=$(size "$T/kill.copy")
	if [ "$got" -lt 1 ] || [ "$got" -gt "$PART" ]; then
		fail "kill: C passed on $got bytes, expected 1 to $PART (A had written only the first part)"
	fi
	cmp -n "$got" "$T/in.bin" "$T/kill.copy" || fail "kill: what C passed on is not a prefix of the input"

	# Release A's program (fd 8 holds the FIFO open, so this never blocks;
	# it stays open until A ended, so the go is not lost).
	exec 8<>"$T/kill.go"
	echo go >&8
	expect "$a" 15 3 "its program exited 0 but its channel failed: the reader went away"
	exec 8>&-
	grep -q "error: channel /dev/stdout" "$T/kill-a.err" ||
		fail "kill: broker kill-a did not log its failed channel"
	say "ok kill: B SIGKILLed after $got bytes reached C; C exited 3 ($(grep -m1 'error: channel' "$T/kill-c.err")); A exited 3 ($(grep -m1 'error: channel' "$T/kill-a.err")), $(since)"
}

# 4. zmq fan-out. fanout_known: broker --check takes the writer's and the
# reader's descriptors.
fanout_known() {
	url="tcp://127.0.0.1:$(free_port)"
	manifest fo-check-w exec:/bin/cat "$T/in.bin" 0 "Netpipe:zmq:$url?fanout=1&readers=2:w" 0
	"$BROKER" --check -m "$T/fo-check-w.manifest" -P "$RIFT_PLUGINS" >"$T/fo-check-w.log" 2>&1 ||
		return 1
	manifest fo-check-r exec:/bin/cat "Netpipe:zmq:$url?fanout=1:r" 0 "$T/fo-check.copy" 0
	"$BROKER" --check -m "$T/fo-check-r.manifest" -P "$RIFT_PLUGINS" >"$T/fo-check-r.log" 2>&1 || {
		LOGS="$T/fo-check-r.log"
		fail "fan-out: broker --check takes the writer's descriptor but not the reader's"
	}
}

fanout() {
	begin
	url="tcp://127.0.0.1:$(free_port)"
	manifest fo-w exec:/bin/cat "$T/in.bin" 0 "Netpipe:zmq:$url?fanout=1&readers=2:w" 1
	manifest fo-r1 exec:/bin/cat "Netpipe:zmq:$url?fanout=1:r" 1 "$T/fo-r1.copy" 0
	manifest fo-r2 exec:/bin/cat "Netpipe:zmq:$url?fanout=1:r" 1 "$T/fo-r2.copy" 0
	# The writer first: it binds, and waits for both readers by itself.
	start_broker fo-w; w=$LAST
	start_broker fo-r1; r1=$LAST
	start_broker fo-r2; r2=$LAST
	expect "$r1" 45 0 "a fan-out reader"
	expect "$r2" 15 0 "a fan-out reader"
	expect "$w" 15 0 "the fan-out writer"
	cmp "$T/in.bin" "$T/fo-r1.copy" || fail "fan-out: the first reader's copy differs from the input"
	cmp "$T/in.bin" "$T/fo-r2.copy" || fail "fan-out: the second reader's copy differs from the input"
	say "ok fan-out: $IN_SIZE bytes from one writer to two readers over $url, etag 1, $(since)"
}

fanout_kill() {
	begin
	url="tcp://127.0.0.1:$(free_port)"
	mkfifo "$T/fo.go"
	# The writer's program: the first part, the test's go, the rest.
	manifest fk-w "exec:/bin/sh -c \"cat '$T/part.bin' && read go <'$T/fo.go' && cat '$T/rest.bin'\"" \
		"$T/in.bin" 0 "Netpipe:zmq:$url?fanout=1&readers=2:w" 0
	manifest fk-r1 exec:/bin/cat "Netpipe:zmq:$url?fanout=1:r" 0 "$T/fk-r1.copy" 0
	manifest fk-r2 exec:/bin/cat "Netpipe:zmq:$url?fanout=1:r" 0 "$T/fk-r2.copy" 0
	start_broker fk-r1; r1=$LAST
	start_broker fk-r2; r2=$LAST
	start_broker fk-w; w=$LAST
	wait_size "$T/fk-r2.copy" 1 30 "$w" "$r1" "$r2"
	kill_session "$r2"
	await "$r2" 10
	[ "$RC" -eq 137 ] || fail "fan-out kill: broker fk-r2 exited $RC, not by SIGKILL"
	got=$(size "$T/fk-r2.copy")
	cmp -n "$got" "$T/in.bin" "$T/fk-r2.copy" ||
		fail "fan-out kill: what the killed reader passed on is not a prefix of the input"
	exec 8<>"$T/fo.go"
	echo go >&8
	expect "$r1" 45 0 "the reader that stayed"
	expect "$w" 15 0 "a fan-out writer fails only when its last reader leaves"
	exec 8>&-
	cmp "$T/in.bin" "$T/fk-r1.copy" || fail "fan-out kill: the reader that stayed did not get the whole stream"
	say "ok fan-out kill: one reader SIGKILLed after $got bytes; the other got all $IN_SIZE bytes, the writer exited 0, $(since)"
}

relay_chain
reverse_chain
kill_relay
if fanout_known; then
	fanout
	fanout_kill
else
	say "fan-out: SKIP (not supported by this build)"
	say "  (broker --check: $(grep -m1 . "$T/fo-check-w.log" || true))"
fi
