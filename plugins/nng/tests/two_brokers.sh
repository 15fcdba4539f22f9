#!/bin/sh
# two_brokers.sh - two brokers, as processes, moving a file over nng.
#
#   1. tcp on 127.0.0.1: the writer broker starts first (it must wait for
#      the reader and connect by itself), Program = exec:/bin/cat on both
#      sides; the output must equal the input (cmp).
#   2. the same over ipc://, with the reader started first and etag = 1 on
#      both channels (the end-of-stream carries the digest).
#   3. the same over tcp with ?listen=writer (the writer listens), and
#      over tls+tcp (mutual TLS with the fixtures in tests/tls);
#   3b. a writer whose certificate the reader's CA did not sign never
#      connects: both brokers fail after connect_timeout, nothing arrives.
#   4. SIGKILL of the writer broker mid-stream, over tcp and over tls+tcp:
#      the reader broker must exit 3 (its channel failed: the writer
#      vanished, which is not EOF), and what it passed on must be a prefix
#      of what the writer sent.
#   5. bad input (a malformed URL, scheme or option, a missing TLS file, a
#      port in use): the broker exits 2 with a clear message.
#
# Only loopback. Every wait is bounded (timeout(1)); the one handshake (the
# reader's program has seen the first byte) goes through a FIFO, not a
# sleep. Processes and files are removed on every exit path.
#
# Environment (meson.build sets it): BROKER, RIFT_PLUGINS (the build's
# plugins directory). Exit 77 (skipped) without python3 (to find a free
# port), timeout, cmp or setsid.
set -eu

fail() { echo "nng-two-brokers: FAIL: $*" >&2; exit 1; }
say() { echo "nng-two-brokers: $*"; }

: "${BROKER:?set by meson.build}" "${RIFT_PLUGINS:?}" "${TLS_DIR:?}"
for tool in python3 timeout cmp setsid mkfifo; do
	command -v "$tool" >/dev/null 2>&1 || { echo "nng-two-brokers: SKIP: no $tool"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/rift-nng.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do
		kill -9 -- "-$p" 2>/dev/null || true
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case $T in *[,\;:\ ]*) fail "temp dir $T has a character descriptors cannot hold" ;; esac
unset RIFT_PLUGIN_PATH RIFT_LOG

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# manifest FILE PROGRAM STDIN-URI STDOUT-URI ETAG
manifest() {
	cat >"$1" <<MANIFEST
Version = 20130611
Program = $2
Memory = 67108864, 0
Timeout = 60
Channel = $3, /dev/stdin, 0, $5, 1000000, 1073741824, 0, 0
Channel = $4, /dev/stdout, 0, $5, 0, 0, 1000000, 1073741824
Channel = $1.stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
MANIFEST
}

# start NAME MANIFEST: the broker in a process group of its own, so that a
# kill reaches its program too; its pid in $LAST.
start() {
	setsid "$BROKER" -m "$2" -P "$RIFT_PLUGINS" >"$T/$1.out" 2>"$T/$1.err" &
	LAST=$!
	PIDS="$PIDS $LAST"
}

# finish PID NAME: wait for a broker (bounded: the manifests' Timeout is
# 60 s, and this waits for its exit), its status in $RC.
finish() {
	RC=0
	wait "$1" || RC=$?
}

head -c 3000000 /dev/urandom >"$T/in.bin"
echo "the end of the input" >>"$T/in.bin"

# copy NAME URL ETAG ORDER: a file through two brokers over URL.
copy() {
	manifest "$T/$1-w.manifest" "exec:/bin/cat" "$T/in.bin" "Netpipe:nng:$2:w" "$3"
	manifest "$T/$1-r.manifest" "exec:/bin/cat" "Netpipe:nng:$2:r" "$T/$1.bin" "$3"
	if [ "$4" = writer-first ]; then
		start "$1-w" "$T/$1-w.manifest"; w=$LAST
		start "$1-r" "$T/$1-r.manifest"; r=$LAST
	else
		start "$1-r" "$T/$1-r.manifest"; r=$LAST
		start "$1-w" "$T/$1-w.manifest"; w=$LAST
	fi
	finish "$w"; wrc=$RC
	finish "$r"; rrc=$RC
	[ "$wrc" -eq 0 ] || { cat "$T/$1-w.err" >&2; fail "$1: the writer broker exited $wrc"; }
	[ "$rrc" -eq 0 ] || { cat "$T/$1-r.err" >&2; fail "$1: the reader broker exited $rrc"; }
	cmp "$T/in.bin" "$T/$1.bin" || fail "$1: the bytes that arrived differ"
	say "ok: $1: $(wc -c <"$T/in.bin") bytes over $2"
}

copy tcp "tcp://127.0.0.1:$(free_port)" 0 writer-first
copy ipc "ipc://$T/nng.ipc" 1 reader-first
copy tcp-listen-writer "tcp://127.0.0.1:$(free_port)?listen=writer" 0 reader-first
copy tls "tls+tcp://127.0.0.1:$(free_port)?ca=$TLS_DIR/ca.pem&cert=$TLS_DIR/peer.pem" 1 writer-first

# 3b. A writer with a certificate the reader's CA never signed.
url="tls+tcp://127.0.0.1:$(free_port)"
opts="ca=$TLS_DIR/ca.pem&connect_timeout=1500"
manifest "$T/rogue-w.manifest" "exec:/bin/cat" "$T/in.bin" \
	"Netpipe:nng:$url?$opts&cert=$TLS_DIR/rogue.pem:w" 0
manifest "$T/rogue-r.manifest" "exec:/bin/cat" "Netpipe:nng:$url?$opts&cert=$TLS_DIR/peer.pem:r" \
	"$T/rogue.bin" 0
start rogue-r "$T/rogue-r.manifest"; r=$LAST
start rogue-w "$T/rogue-w.manifest"; w=$LAST
finish "$w"; wrc=$RC
finish "$r"; rrc=$RC
[ "$wrc" -ne 0 ] || fail "rogue: the writer broker with a foreign certificate exited 0"
[ "$rrc" -ne 0 ] || fail "rogue: the reader broker exited 0 though no writer could connect"
grep -q "connect_timeout" "$T/rogue-w.err" ||
	{ cat "$T/rogue-w.err" >&2; fail "rogue: the writer broker did not say why it failed"; }
[ ! -s "$T/rogue.bin" ] || fail "rogue: bytes arrived from a writer the reader does not trust"
say "ok: rogue: a writer without a certificate from the CA cannot connect (writer $wrc, reader $rrc)"

# 4. The writer broker is SIGKILLed mid-stream, over tcp and over tls+tcp
# (where nng 1.5.2 does not report it by itself: the plugin probes).
cat >"$T/slow-writer.sh" <<'EOF'
#!/bin/sh
# 300 KB, then keep the channel open without closing it.
head -c 300000 "$1"
exec sleep 60
EOF
cat >"$T/reader.sh" <<'EOF'
#!/bin/sh
# Pass the first byte on, tell the test that the stream is flowing, then
# copy the rest.
dd bs=1 count=1 status=none
echo go >"$1"
exec cat
EOF
# killed NAME URL
killed() {
	mkfifo "$T/$1.fifo"
	manifest "$T/$1-w.manifest" "exec:/bin/sh $T/slow-writer.sh $T/in.bin" /dev/null \
		"Netpipe:nng:$2:w" 0
	manifest "$T/$1-r.manifest" "exec:/bin/sh $T/reader.sh $T/$1.fifo" "Netpipe:nng:$2:r" \
		"$T/$1.bin" 0
	start "$1-r" "$T/$1-r.manifest"; r=$LAST
	start "$1-w" "$T/$1-w.manifest"; w=$LAST
	timeout 30 cat "$T/$1.fifo" >/dev/null ||
		fail "$1: no byte reached the reader's program within 30 s"
	kill -9 "$w"
	finish "$w"
	[ "$RC" -eq 137 ] || fail "$1: the writer broker exited $RC, not by SIGKILL"
	kill -9 -- "-$w" 2>/dev/null || true # its program
	finish "$r"; rrc=$RC
	[ "$rrc" -eq 3 ] || { cat "$T/$1-r.err" >&2;
		fail "$1: the reader broker exited $rrc, expected 3 (a failed channel)"; }
	grep -q "error: channel /dev/stdin" "$T/$1-r.err" ||
		{ cat "$T/$1-r.err" >&2; fail "$1: the reader broker did not log the failed channel"; }
	n=$(wc -c <"$T/$1.bin")
	[ "$n" -ge 1 ] && [ "$n" -le 300000 ] || fail "$1: the reader passed on $n bytes"
	head -c "$n" "$T/in.bin" | cmp - "$T/$1.bin" ||
		fail "$1: what arrived is not a prefix of what was sent"
	say "ok: $1: the reader broker exited 3 after $n bytes: $(grep 'error: channel' "$T/$1-r.err" | head -n 1)"
}
killed kill "tcp://127.0.0.1:$(free_port)"
killed kill-tls "tls+tcp://127.0.0.1:$(free_port)?ca=$TLS_DIR/ca.pem&cert=$TLS_DIR/peer.pem"

# 5. Bad input: a clear error on that channel, exit 2, nothing left behind.
bad() { # bad DESCRIPTOR EXPECTED-TEXT [--check]
	manifest "$T/bad.manifest" "exec:/bin/cat" "$1" "$T/bad.out" 0
	RC=0
	timeout 30 "$BROKER" ${3:-} -m "$T/bad.manifest" -P "$RIFT_PLUGINS" >"$T/bad.log" 2>&1 || RC=$?
	[ "$RC" -eq 2 ] || { cat "$T/bad.log" >&2; fail "bad input $1: exit $RC, expected 2"; }
	grep -q "$2" "$T/bad.log" || { cat "$T/bad.log" >&2; fail "bad input $1: no '$2' in the log"; }
}
bad "Netpipe:nng:tcp://127.0.0.1:notaport:r" "a port of 1-65535" --check
bad "Netpipe:nng:udp://127.0.0.1:5555:r" "scheme 'udp' is not supported" --check
bad "Netpipe:nng:tcp://127.0.0.1:5555?listen=both:r" "expected listen=reader or listen=writer" --check
bad "Netpipe:nng:tls+tcp://127.0.0.1:5555?ca=$TLS_DIR/ca.pem:r" "needs ca=FILE" --check
bad "Netpipe:nng:tls+tcp://127.0.0.1:5555?ca=$T/none.pem&cert=$TLS_DIR/peer.pem:r" "No such file" --check
# A port someone else listens on: the reader's open fails at once. The
# holder prints its port through one FIFO and holds it until the other
# (its stdin) is closed.
mkfifo "$T/held.fifo" "$T/release.fifo"
python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1], "w").write("%d\n" % s.getsockname()[1])
sys.stdin.read()
' "$T/held.fifo" <"$T/release.fifo" &
holder=$!
PIDS="$PIDS $holder"
exec 9>"$T/release.fifo"
port=$(timeout 10 cat "$T/held.fifo") || fail "bad input: the port holder did not start"
bad "Netpipe:nng:tcp://127.0.0.1:$port:r" "Address in use"
exec 9>&-
wait "$holder" || true
say "ok: bad input: malformed URLs, options, TLS files and a port in use are refused (exit 2)"
