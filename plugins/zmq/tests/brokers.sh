#!/bin/sh
# brokers.sh - two brokers, as processes, exchanging a file over the zmq
# plugin on loopback only:
#
#   1. tcp on 127.0.0.1: a reader broker (Netpipe:zmq:tcp://...:r -> a
#      file) and a writer broker (a file -> Netpipe:zmq:tcp://...:w), both
#      running exec:/bin/cat; both exit 0 and the copy equals the input;
#   2. the same over ipc, with etag = 1 on both channels (the END frame
#      carries the stream's digest and the reader checks it);
#   3. the writer broker is SIGKILLed mid-stream (its program has written
#      a first part and still runs): the reader broker must exit 3 (a
#      channel failed: -ECONNRESET, never EOF), and what it wrote must be a
#      prefix of the input;
#   4. bad input: a malformed URL is refused by broker --check (exit 2),
#      and a second reader on an ipc path a live reader holds fails with
#      a clear message while the first one still completes;
#   5. CURVE with keys from rift-keygen: the right server key carries the
#      file; a writer with another key, and one without CURVE, never get
#      in (connect_timeout: the writer broker fails with a clear message,
#      the reader gets nothing and logs the refusal once).
#   6. CURVE client keys (curve_clients, checked by the plugin's ZAP
#      handler): a writer whose key is not in the reader's list never gets
#      in (as in 5); then one whose key is listed carries the file to the
#      same reader; a malformed list, and curve_clients where it makes no
#      sense, are refused by broker --check with the file and line.
#
# Every wait is bounded (timeout(1), or a deadline on a condition); no
# sleep stands for synchronisation. Processes and files are cleaned up on
# every exit path.
#
# Environment (meson.build sets it): BROKER, RIFT_PLUGINS (build/plugins),
# KEYGEN (rift-keygen; cases 5 and 6 are skipped without it).
set -eu

fail() { echo "zmq-brokers: FAIL: $*" >&2; exit 1; }
say() { echo "zmq-brokers: $*"; }

: "${BROKER:?set by meson.build}" "${RIFT_PLUGINS:?}"
for tool in cmp head setsid mkfifo; do
	command -v "$tool" >/dev/null 2>&1 || { echo "zmq-brokers: SKIP: no $tool"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/rift-zmq-it.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do
		# Each broker runs in its own session: end it and its program.
		kill -KILL "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case $T in *[,\;:\ ]*) fail "temp dir $T has a character descriptors cannot hold" ;; esac
unset RIFT_PLUGIN_PATH RIFT_LOG

# A free loopback port: bind port 0 and release it (python3), else one at
# random in the dynamic range.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
	else
		echo $((49152 + $(od -An -N2 -tu2 /dev/urandom) % 16000))
	fi
}

manifest() { # manifest FILE PROGRAM STDIN-URI STDOUT-URI ETAG
	cat >"$1" <<MANIFEST
Version = 20130611
Program = $2
Memory = 67108864, 0
Timeout = 60
Channel = $3, /dev/stdin, 0, $5, 1000000, 1073741824, 0, 0
Channel = $4, /dev/stdout, 0, $5, 0, 0, 1000000, 1073741824
Channel = $(dirname "$1")/$(basename "$1" .manifest).stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
MANIFEST
}

# Start a broker in a session of its own (setsid does not fork here: a
# background job of a non-interactive shell leads no process group), so
# $LAST is the broker's pid and -$LAST its program too. The manifest's
# Timeout bounds each broker.
start_broker() { # start_broker NAME MANIFEST
	setsid "$BROKER" -m "$2" -P "$RIFT_PLUGINS" >"$T/$1.out" 2>"$T/$1.err" &
	LAST=$!
	PIDS="$PIDS $LAST"
}

head -c 3000000 /dev/urandom >"$T/in.bin"
echo "the end of the input" >>"$T/in.bin"

# 1, 2: a whole file over tcp, then over ipc with etag.
copy() { # copy NAME URL ETAG
	rm -f "$T/$1.copy"
	manifest "$T/$1-r.manifest" exec:/bin/cat "Netpipe:zmq:$2:r" "$T/$1.copy" "$3"
	manifest "$T/$1-w.manifest" exec:/bin/cat "$T/in.bin" "Netpipe:zmq:$2:w" "$3"
	# The writer first: it must wait for the reader (rule 1) by itself.
	start_broker "$1-w" "$T/$1-w.manifest"
	w=$LAST
	start_broker "$1-r" "$T/$1-r.manifest"
	r=$LAST
	rc=0; wait "$r" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/$1-r.err" "$T/$1-w.err" >&2; fail "$1: the reader broker exited $rc"; }
	rc=0; wait "$w" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/$1-w.err" >&2; fail "$1: the writer broker exited $rc"; }
	cmp "$T/in.bin" "$T/$1.copy" || fail "$1: the copy differs from the input"
	say "ok $1: $(wc -c <"$T/in.bin") bytes over $2"
}

copy tcp "tcp://127.0.0.1:$(free_port)" 0
copy ipc "ipc://$T/pipe.ipc" 1

# 3. The writer broker killed mid-stream.
url="tcp://127.0.0.1:$(free_port)"
head -c 1000000 "$T/in.bin" >"$T/part.bin"
# The program writes a first part, then waits for input that never comes
# (its stdin is a FIFO nobody opens for writing), so the stream stays open
# until the kill.
mkfifo "$T/never"
manifest "$T/kill-w.manifest" "exec:/bin/sh -c \"cat '$T/part.bin'; cat '$T/never'\"" \
	"$T/in.bin" "Netpipe:zmq:$url:w" 0
manifest "$T/kill-r.manifest" exec:/bin/cat "Netpipe:zmq:$url:r" "$T/kill.copy" 0
start_broker kill-r "$T/kill-r.manifest"
r=$LAST
start_broker kill-w "$T/kill-w.manifest"
w=$LAST
# Wait (bounded) until the reader broker wrote the whole first part.
want=$(wc -c <"$T/part.bin")
deadline=$(($(date +%s) + 30))
while :; do
	got=0
	[ ! -f "$T/kill.copy" ] || got=$(wc -c <"$T/kill.copy")
	[ "$got" -ge "$want" ] && break
	kill -0 "$r" 2>/dev/null || { cat "$T/kill-r.err" >&2; fail "kill: the reader broker ended early"; }
	[ "$(date +%s)" -lt "$deadline" ] || fail "kill: only $got of $want bytes arrived within 30 s"
	# Not synchronisation, only a poll interval for the condition above.
	sleep 0.02
done
kill -KILL "$w"
rc=0; wait "$r" || rc=$?
[ "$rc" -eq 3 ] || { cat "$T/kill-r.err" >&2; fail "kill: the reader broker exited $rc, expected 3 (a channel failed)"; }
grep -q "reset\|went away" "$T/kill-r.err" || { cat "$T/kill-r.err" >&2; fail "kill: the reader's log does not say the writer went away"; }
cmp "$T/part.bin" "$T/kill.copy" || fail "kill: what arrived is not the first part"
say "ok kill: the reader broker exited 3 after $(wc -c <"$T/kill.copy") bytes: $(grep -m1 error "$T/kill-r.err")"

# 4. Bad input.
manifest "$T/bad.manifest" exec:/bin/cat "Netpipe:zmq:tcp://127.0.0.1:99999:r" "$T/bad.copy" 0
rc=0; "$BROKER" --check -m "$T/bad.manifest" -P "$RIFT_PLUGINS" >"$T/bad.out" 2>"$T/bad.err" || rc=$?
[ "$rc" -eq 2 ] || { cat "$T/bad.err" >&2; fail "bad URL: broker --check exited $rc, expected 2"; }
grep -q "port '99999'" "$T/bad.err" || { cat "$T/bad.err" >&2; fail "bad URL: no clear message"; }
say "ok bad URL: $(grep -m1 error "$T/bad.err")"

# (ipc, so that "the first reader is bound" is a file to wait for; libzmq
# would silently take the path over, the plugin refuses.)
url="ipc://$T/busy.ipc"
manifest "$T/first-r.manifest" exec:/bin/cat "Netpipe:zmq:$url:r" "$T/first.copy" 0
manifest "$T/second-r.manifest" exec:/bin/cat "Netpipe:zmq:$url:r" "$T/second.copy" 0
manifest "$T/first-w.manifest" exec:/bin/cat "$T/in.bin" "Netpipe:zmq:$url:w" 0
start_broker first-r "$T/first-r.manifest"
r=$LAST
deadline=$(($(date +%s) + 30))
until [ -S "$T/busy.ipc" ]; do
	kill -0 "$r" 2>/dev/null || { cat "$T/first-r.err" >&2; fail "path in use: the first reader ended early"; }
	[ "$(date +%s)" -lt "$deadline" ] || fail "path in use: the first reader did not bind within 30 s"
	sleep 0.02 # a poll interval for the condition above
done
rc2=0; "$BROKER" -m "$T/second-r.manifest" -P "$RIFT_PLUGINS" >"$T/second.out" 2>"$T/second.err" || rc2=$?
[ "$rc2" -ne 0 ] || fail "path in use: a second reader on $url exited 0"
grep -q "already in use\|another reader" "$T/second.err" || { cat "$T/second.err" >&2; fail "path in use: no clear message"; }
start_broker first-w "$T/first-w.manifest"
w=$LAST
rc=0; wait "$r" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/first-r.err" >&2; fail "path in use: the first reader exited $rc"; }
rc=0; wait "$w" || rc=$?
[ "$rc" -eq 0 ] || { cat "$T/first-w.err" >&2; fail "path in use: the writer exited $rc"; }
cmp "$T/in.bin" "$T/first.copy" || fail "path in use: the first reader's copy differs"
say "ok path in use: the second reader exited $rc2: $(grep -m1 error "$T/second.err"); the first completed"

# 5. CURVE.
if [ -n "${KEYGEN:-}" ]; then
	"$KEYGEN" "$T/srv" >/dev/null || fail "curve: rift-keygen failed"
	"$KEYGEN" "$T/other" >/dev/null || fail "curve: rift-keygen failed"
	[ "$(stat -c %a "$T/srv.key")" = 600 ] || fail "curve: the secret key file is not mode 0600"
	! "$KEYGEN" "$T/srv" 2>/dev/null || fail "curve: rift-keygen overwrote a key"

	# The right key: the file goes through.
	url="tcp://127.0.0.1:$(free_port)"
	manifest "$T/curve-r.manifest" exec:/bin/cat "Netpipe:zmq:$url?curve_secret=$T/srv.key:r" \
		"$T/curve.copy" 0
	manifest "$T/curve-w.manifest" exec:/bin/cat "$T/in.bin" \
		"Netpipe:zmq:$url?curve_server=$T/srv.pub:w" 0
	start_broker curve-r "$T/curve-r.manifest"
	r=$LAST
	start_broker curve-w "$T/curve-w.manifest"
	w=$LAST
	rc=0; wait "$r" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/curve-r.err" "$T/curve-w.err" >&2; fail "curve: the reader exited $rc"; }
	rc=0; wait "$w" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/curve-w.err" >&2; fail "curve: the writer exited $rc"; }
	cmp "$T/in.bin" "$T/curve.copy" || fail "curve: the copy differs"
	say "ok curve: $(wc -c <"$T/in.bin") bytes with the server's key"

	# Another key, and no CURVE at all: neither gets in.
	url="tcp://127.0.0.1:$(free_port)"
	manifest "$T/locked-r.manifest" exec:/bin/cat "Netpipe:zmq:$url?curve_secret=$T/srv.key:r" \
		"$T/locked.copy" 0
	start_broker locked-r "$T/locked-r.manifest"
	r=$LAST
	for how in "curve_server=$T/other.pub&" ""; do
		manifest "$T/bad-w.manifest" exec:/bin/cat "$T/in.bin" \
			"Netpipe:zmq:$url?${how}connect_timeout=1500:w" 0
		rc=0; "$BROKER" -m "$T/bad-w.manifest" -P "$RIFT_PLUGINS" >"$T/bad-w.out" 2>"$T/bad-w.err" || rc=$?
		# Non-zero: 3 (a channel failed), or cat's 1 when its write failed first.
		[ "$rc" -ne 0 ] || { cat "$T/bad-w.err" >&2; fail "curve: a writer with ${how:-no key} exited 0"; }
		grep -q "handshake failed" "$T/bad-w.err" || { cat "$T/bad-w.err" >&2; fail "curve: no clear message"; }
		kill -0 "$r" 2>/dev/null || { cat "$T/locked-r.err" >&2; fail "curve: the reader ended"; }
		say "ok curve: a writer with ${how:-no key} was kept out: $(grep -m1 error "$T/bad-w.err")"
	done
	[ ! -s "$T/locked.copy" ] || fail "curve: the reader got bytes from a writer without the key"
	grep -q "failed the ZMTP handshake" "$T/locked-r.err" || { cat "$T/locked-r.err" >&2; fail "curve: the reader did not log the refused peer"; }
	[ "$(grep -c "failed the ZMTP handshake" "$T/locked-r.err")" -eq 1 ] || fail "curve: the refusal is logged more than once"
fi

# 6. CURVE client keys. Needs case 5's server key pair.
check_refused() { # check_refused NAME URI PATTERN: broker --check exits 2 saying PATTERN
	manifest "$T/$1.manifest" exec:/bin/cat "$2" "$T/$1.copy" 0
	rc=0; "$BROKER" --check -m "$T/$1.manifest" -P "$RIFT_PLUGINS" >"$T/$1.out" 2>"$T/$1.err" || rc=$?
	[ "$rc" -eq 2 ] || { cat "$T/$1.err" >&2; fail "clients: $1: broker --check exited $rc, expected 2"; }
	grep -q -- "$3" "$T/$1.err" || { cat "$T/$1.err" >&2; fail "clients: $1: no clear message (expected '$3')"; }
	say "ok clients: $1 refused: $(grep -m1 -- "$3" "$T/$1.err")"
}
if [ -n "${KEYGEN:-}" ]; then
	for k in cla clb clc; do
		"$KEYGEN" "$T/$k" >/dev/null || fail "clients: rift-keygen failed"
	done
	# The list: comments, empty lines, another client's key, and client
	# A's whole NAME.pub (its comment line and its key).
	{ echo "# clients let in"; echo; grep -v '^#' "$T/clc.pub"; echo; cat "$T/cla.pub"; } \
		>"$T/clients.list"
	url="tcp://127.0.0.1:$(free_port)"
	manifest "$T/clients-r.manifest" exec:/bin/cat \
		"Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/clients.list:r" \
		"$T/clients.copy" 0
	start_broker clients-r "$T/clients-r.manifest"
	r=$LAST

	# Client B knows the server's key but is not listed: kept out.
	manifest "$T/clb-w.manifest" exec:/bin/cat "$T/in.bin" \
		"Netpipe:zmq:$url?curve_secret=$T/clb.key&curve_server=$T/srv.pub&connect_timeout=1500:w" 0
	rc=0; "$BROKER" -m "$T/clb-w.manifest" -P "$RIFT_PLUGINS" >"$T/clb-w.out" 2>"$T/clb-w.err" || rc=$?
	[ "$rc" -ne 0 ] || { cat "$T/clb-w.err" >&2; fail "clients: a writer with an unlisted key exited 0"; }
	grep -q "within connect_timeout.*handshake failed" "$T/clb-w.err" ||
		{ cat "$T/clb-w.err" >&2; fail "clients: the unlisted writer's broker gave no clear message"; }
	kill -0 "$r" 2>/dev/null || { cat "$T/clients-r.err" >&2; fail "clients: the reader ended"; }
	[ ! -s "$T/clients.copy" ] || fail "clients: the reader got bytes from an unlisted writer"
	say "ok clients: an unlisted key was kept out: $(grep -m1 error "$T/clb-w.err")"

	# Client A is listed: the file goes through, to the same reader.
	manifest "$T/cla-w.manifest" exec:/bin/cat "$T/in.bin" \
		"Netpipe:zmq:$url?curve_secret=$T/cla.key&curve_server=$T/srv.pub&connect_timeout=20000:w" 0
	start_broker cla-w "$T/cla-w.manifest"
	w=$LAST
	rc=0; wait "$r" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/clients-r.err" "$T/cla-w.err" >&2; fail "clients: the reader exited $rc"; }
	rc=0; wait "$w" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/cla-w.err" >&2; fail "clients: the listed writer exited $rc"; }
	cmp "$T/in.bin" "$T/clients.copy" || fail "clients: the copy differs"
	grep -q "failed the ZMTP handshake (authentication" "$T/clients-r.err" ||
		{ cat "$T/clients-r.err" >&2; fail "clients: the reader did not log the refused client"; }
	[ "$(grep -c "failed the ZMTP handshake" "$T/clients-r.err")" -eq 1 ] ||
		{ cat "$T/clients-r.err" >&2; fail "clients: the refusal is logged more than once"; }
	# When the line names the refused key, it is B's.
	! grep -q "its CURVE key" "$T/clients-r.err" || grep -qF -e "$(grep -v '^#' "$T/clb.pub")" "$T/clients-r.err" ||
		{ cat "$T/clients-r.err" >&2; fail "clients: the reader named another key than the refused one"; }
	say "ok clients: $(wc -c <"$T/in.bin") bytes from the listed key; the reader logged: $(grep -m1 "failed the ZMTP" "$T/clients-r.err")"

	# Checked without opening anything: one NAME.pub is a list.
	manifest "$T/onepub.manifest" exec:/bin/cat \
		"Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/cla.pub:r" "$T/onepub.copy" 0
	"$BROKER" --check -m "$T/onepub.manifest" -P "$RIFT_PLUGINS" >"$T/onepub.out" 2>"$T/onepub.err" ||
		{ cat "$T/onepub.err" >&2; fail "clients: broker --check refused a NAME.pub as curve_clients"; }
	{ echo "# clients"; echo; echo "not-a-key"; cat "$T/cla.pub"; } >"$T/bad.list"
	check_refused bad-list "Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/bad.list:r" \
		"$T/bad.list:3: malformed key"
	check_refused secret-list "Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/cla.key:r" \
		"$T/cla.key:1: a secret key file"
	{ echo "# nobody yet"; echo; } >"$T/empty.list"
	check_refused empty-list "Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/empty.list:r" \
		"$T/empty.list: no key in it"
	check_refused missing-list "Netpipe:zmq:$url?curve_secret=$T/srv.key&curve_clients=$T/none.list:r" \
		"$T/none.list: No such file"
	check_refused no-secret "Netpipe:zmq:$url?curve_clients=$T/cla.pub:r" "needs curve_secret"
	# listen=writer: this reader connects, so it is the CURVE client.
	check_refused connecting "Netpipe:zmq:$url?listen=writer&curve_server=$T/srv.pub&curve_clients=$T/cla.pub:r" \
		"for the binding end"
fi
