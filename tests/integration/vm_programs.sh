#!/bin/sh
# vm_programs.sh - the Rift VM's example programs (manifests/vm/*.rasm with
# manifests/vm-*.manifest), assembled with rift-asm and run by real broker
# processes over real channels (files, and unix netpipes in a temp dir):
#
#   1. cat:    1 MiB of random bytes on stdin; stdout is the same bytes;
#   2. filter: a known input (empty lines, '#' lines, a line longer than
#              the VM's 64 KiB read chunk, a last line without '\n'); the
#              output is exactly the expected lines;
#   3. wc:     "LINES WORDS BYTES" equals what wc(1) counts (LC_ALL=C) for
#              the same text (spaces, tabs, blank lines, words across the
#              64 KiB chunks, no final newline);
#   4. fanin:  two writer brokers (exec:/bin/cat from two files into two
#              unix netpipes) and the VM broker, which polls both and copies
#              whole lines to its stdout: its sorted output equals the
#              sorted union of the two inputs; all three exit 0;
#   5. square: a writer broker sends the requests 1..1000 into a unix
#              netpipe, the VM broker answers each with its square on
#              another, a reader broker writes the responses to a file:
#              they are the 1000 squares, in order; all three exit 0;
#   6. bad input: a program that divides by zero makes the broker exit
#              non-zero and log the trap (function, pc, instruction, the
#              source file and line, "division by zero"); a truncated .rbc
#              makes `broker --check -m` exit 2 with a message that names
#              the module, and `broker -m` refuse to run (exit 2, nothing
#              written).
#
# The manifests and sources are copied into a temp dir, each .rasm is
# assembled into vm/NAME.rbc there, and the manifests' /tmp/rift-vm/ paths
# are rewritten into the temp dir. Every wait is bounded (timeout(1), or a
# deadline on a condition, polled); no sleep stands for synchronisation.
# Processes and files are cleaned up on every exit path.
#
# Environment (meson.build sets it): BROKER, RIFT_PLUGINS (build/plugins),
# RIFT_ASM (build/vm/rift-asm); RIFT_SOURCE_ROOT optionally (default: two
# folders up from this script).
# Exit 0 when every case passed, 1 on a failure, 77 (skipped) without a tool.
set -eu

ME=vm-programs # lib.sh: fail, say, started, name_of, alive, await
. "$(dirname "$0")/lib.sh"
begin() { LOGS=""; }

: "${BROKER:?set by meson.build}" "${RIFT_PLUGINS:?set by meson.build}" "${RIFT_ASM:?set by meson.build}"
for tool in awk cmp cp cut grep head mkdir sed setsid sort tail timeout tr wc date sleep; do
	command -v "$tool" >/dev/null 2>&1 || { echo "vm-programs: SKIP: no $tool"; exit 77; }
done
[ -r /proc/self/stat ] || { echo "vm-programs: SKIP: no /proc"; exit 77; }
# rift-asm runs from the temp dir: make a relative path absolute.
case $RIFT_ASM in /*) ;; *) RIFT_ASM=$PWD/$RIFT_ASM ;; esac

SRC=${RIFT_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
[ -f "$SRC/manifests/vm-cat.manifest" ] || fail "no manifests/vm-cat.manifest under $SRC"

T=$(mktemp -d "${TMPDIR:-/tmp}/rift-vm-it.XXXXXX")
cleanup() {
	for p in $PIDS; do
		# Each broker runs in a session of its own: end it and its
		# program (dash's kill takes "-PGID" but no "--").
		kill -KILL "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
case $T in *[,\;:\ \|\&]*) fail "temp dir $T has a character descriptors or sed cannot hold" ;; esac
unset RIFT_PLUGIN_PATH RIFT_LOG

# Every broker's manifest Timeout is 60 s; every wait below has its own
# deadline too.
WAIT=90

# ---- the programs, assembled, and their manifests ----
mkdir "$T/vm"
# assemble NAME: $T/vm/NAME.rasm -> $T/vm/NAME.rbc, from the temp dir so
# that the module's source (in trap messages) is vm/NAME.rasm.
assemble() {
	(cd "$T" && "$RIFT_ASM" "vm/$1.rasm" -o "vm/$1.rbc") >"$T/asm-$1.log" 2>&1 || {
		LOGS="$T/asm-$1.log"
		fail "$1: rift-asm cannot assemble vm/$1.rasm"
	}
}

for n in cat filter wc fanin square; do
	[ -f "$SRC/manifests/vm/$n.rasm" ] || fail "no manifests/vm/$n.rasm"
	cp "$SRC/manifests/vm/$n.rasm" "$T/vm/$n.rasm"
	assemble "$n"
	sed "s|/tmp/rift-vm/|$T/|g" "$SRC/manifests/vm-$n.manifest" >"$T/vm-$n.manifest"
	"$BROKER" --check -m "$T/vm-$n.manifest" -P "$RIFT_PLUGINS" >"$T/check-$n.log" 2>&1 || {
		LOGS="$T/check-$n.log"
		fail "$n: broker --check refuses manifests/vm-$n.manifest"
	}
done
grep -q "$T/a.sock" "$T/vm-fanin.manifest" || fail "fanin: the netpipe paths were not rewritten"

# A helper manifest for the brokers around the VM: NAME PROGRAM STDIN-URI
# STDOUT-URI; the program's stderr goes to $T/NAME.stderr.
manifest() {
	cat >"$T/$1.manifest" <<MANIFEST
Version = 20130611
Program = $2
Memory = 67108864, 0
Timeout = 60
Channel = $3, /dev/stdin, 0, 0, 1000000, 1073741824, 0, 0
Channel = $4, /dev/stdout, 0, 0, 0, 0, 1000000, 1073741824
Channel = $T/$1.stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
MANIFEST
}

# run NAME MANIFEST IN OUT: one broker in the foreground, bounded by
# timeout(1); its log is $T/NAME.err, its status $RC.
run() {
	LOGS="$LOGS $T/$1.err"
	RC=0
	timeout -s KILL "$WAIT" "$BROKER" -m "$2" -P "$RIFT_PLUGINS" <"$3" >"$4" 2>"$T/$1.err" || RC=$?
	[ "$RC" -ne 137 ] || fail "$1: the broker did not exit within $WAIT s"
}

# start_broker NAME MANIFEST [STDOUT]: in the background, in a session of
# its own (setsid does not fork here: a background job of a
# non-interactive shell leads no process group), so $LAST is the broker's
# pid and -$LAST its program too. Its log is $T/NAME.err.
start_broker() {
	setsid "$BROKER" -m "$2" -P "$RIFT_PLUGINS" </dev/null >"${3:-$T/$1.out}" 2>"$T/$1.err" &
	started "$1"
}

# expect PID STATUS WHY: the broker exits within $WAIT s with STATUS.
expect() {
	await "$1" "$WAIT" "$3"
	[ "$RC" -eq "$2" ] || fail "broker $(name_of "$1") exited $RC, expected $2 ($3)"
}

# ---- 1. cat: 1 MiB of random bytes ----
begin
head -c 1048576 /dev/urandom >"$T/cat.in"
run cat "$T/vm-cat.manifest" "$T/cat.in" "$T/cat.out"
[ "$RC" -eq 0 ] || fail "cat: the broker exited $RC, expected 0"
cmp "$T/cat.in" "$T/cat.out" || fail "cat: stdout differs from stdin"
say "ok cat: $(wc -c <"$T/cat.out") random bytes copied unchanged"

# ---- 2. filter ----
begin
long=$(awk 'BEGIN { s = ""; for (i = 0; i < 9000; i++) s = s "long " i " "; print s }')
{
	printf '# a comment\n'
	printf 'first line\n'
	printf '\n'
	printf '\n'
	printf '#another comment\n'
	printf '  # indented: not a comment\n'
	printf 'a # in the middle\n'
	printf '   \n'
	printf '%s\n' "$long"
	printf '#\n'
	printf 'tab\there\n'
	printf '\n'
	printf 'the last line, without a newline'
} >"$T/filter.in"
{
	printf 'first line\n'
	printf '  # indented: not a comment\n'
	printf 'a # in the middle\n'
	printf '   \n'
	printf '%s\n' "$long"
	printf 'tab\there\n'
	printf 'the last line, without a newline'
} >"$T/filter.want"
run filter "$T/vm-filter.manifest" "$T/filter.in" "$T/filter.out"
[ "$RC" -eq 0 ] || fail "filter: the broker exited $RC, expected 0"
cmp "$T/filter.want" "$T/filter.out" || fail "filter: the output differs from the expected lines"
say "ok filter: $(wc -l <"$T/filter.in") lines in, $(wc -l <"$T/filter.out") out (one of $(printf '%s' "$long" | wc -c) bytes)"

# ---- 3. wc ----
begin
awk 'BEGIN {
	srand(7)
	for (l = 0; l < 12000; l++) {
		n = int(rand() * 12)
		for (w = 0; w < n; w++) {
			r = rand()
			printf "%s", (r < 0.6 ? " " : r < 0.8 ? "\t" : r < 0.9 ? "   " : " \t ")
			len = 1 + int(rand() * 9)
			for (c = 0; c < len; c++)
				printf "%c", 97 + int(rand() * 26)
		}
		if (rand() < 0.3)
			printf " \t"
		printf "\n"
	}
	for (c = 0; c < 70000; c++)   # one word over a 64 KiB chunk boundary
		printf "w"
	printf "\n\n\t trailing words, no newline"
}' >"$T/wc.in"
run wc "$T/vm-wc.manifest" "$T/wc.in" "$T/wc.out"
[ "$RC" -eq 0 ] || fail "wc: the broker exited $RC, expected 0"
# shellcheck disable=SC2046 # split wc's numbers
set -- $(LC_ALL=C wc <"$T/wc.in")
want="$1 $2 $3"
got=$(cat "$T/wc.out")
[ "$got" = "$want" ] || fail "wc: the program printed '$got', wc(1) counts '$want'"
[ "$(tail -c 1 "$T/wc.out" | od -An -c | tr -d ' ')" = '\n' ] || fail "wc: the output does not end with a newline"
say "ok wc: $got (lines words bytes), as wc(1) counts"

# ---- 4. fanin: two writer brokers, the VM broker in between ----
begin
awk 'BEGIN { for (i = 1; i <= 3000; i++) printf "a line %d of the first input\n", i }' >"$T/a.txt"
awk 'BEGIN {
	for (i = 1; i <= 2000; i++) {
		printf "b %d", i
		if (i % 500 == 0)   # a few long lines: they must stay whole
			for (c = 0; c < 20000; c++) printf " x%d", c
		printf "\n"
	}
}' >"$T/b.txt"
manifest fanin-wa exec:/bin/cat "$T/a.txt" "Netpipe:unix:$T/a.sock:w"
manifest fanin-wb exec:/bin/cat "$T/b.txt" "Netpipe:unix:$T/b.sock:w"
# The writers first: they wait for their reader, the VM broker.
start_broker fanin-wa "$T/fanin-wa.manifest"; wa=$LAST
start_broker fanin-wb "$T/fanin-wb.manifest"; wb=$LAST
start_broker fanin "$T/vm-fanin.manifest" "$T/fanin.out"; vm=$LAST
expect "$vm" 0 "the VM broker running fanin.rbc"
expect "$wa" 0 "the writer of /dev/in/a"
expect "$wb" 0 "the writer of /dev/in/b"
LC_ALL=C sort "$T/a.txt" "$T/b.txt" >"$T/fanin.want"
LC_ALL=C sort "$T/fanin.out" >"$T/fanin.got"
cmp "$T/fanin.want" "$T/fanin.got" ||
	fail "fanin: the output's lines are not the union of both inputs' lines ($(wc -l <"$T/fanin.out") lines, expected $(wc -l <"$T/fanin.want"))"
# Each input's lines keep their order.
grep '^a line ' "$T/fanin.out" | cmp -s - "$T/a.txt" || fail "fanin: the lines of /dev/in/a are out of order"
grep '^b ' "$T/fanin.out" | cmp -s - "$T/b.txt" || fail "fanin: the lines of /dev/in/b are out of order"
say "ok fanin: $(wc -l <"$T/a.txt") + $(wc -l <"$T/b.txt") lines from two netpipes, whole and in order per input; three brokers exited 0"

# ---- 5. square: requests -> the VM broker -> responses ----
begin
awk 'BEGIN { for (i = 1; i <= 1000; i++) print i }' >"$T/requests.txt"
awk 'BEGIN { for (i = 1; i <= 1000; i++) print i * i }' >"$T/responses.want"
manifest square-w exec:/bin/cat "$T/requests.txt" "Netpipe:unix:$T/requests.sock:w"
manifest square-r exec:/bin/cat "Netpipe:unix:$T/responses.sock:r" "$T/responses.txt"
start_broker square-w "$T/square-w.manifest"; w=$LAST
start_broker square "$T/vm-square.manifest"; vm=$LAST
start_broker square-r "$T/square-r.manifest"; r=$LAST
expect "$vm" 0 "the VM broker running square.rbc"
expect "$r" 0 "the reader of the responses"
expect "$w" 0 "the writer of the requests"
cmp "$T/responses.want" "$T/responses.txt" ||
	fail "square: the responses are not the squares of 1..1000 in order ($(wc -l <"$T/responses.txt") lines)"
say "ok square: 1000 requests answered with their squares, in order; three brokers exited 0"

# ---- 6. 10,000 fibers parked on I/O in one broker ----
# The VM broker reads a unix netpipe whose writer broker starts after it:
# every fiber's one-byte read finds nothing and parks; when the 10,000
# bytes come, each fiber takes one, and main, having joined them all,
# prints how many bytes they got.
begin
cat >"$T/vm/fibers.rasm" <<'RASM'
; fibers.rasm - 10000 fibers, each reading one byte of /dev/in/data.
module fibers

func reader 1
	io.open r1, "/dev/in/data"
	load.int r2, 1
	io.read r3, r1, r2	; parks until the writer sent something
	arith.len r3, r3
	ret r3, 1
end

func main 0
	closure r0, reader
	new.array r1, 0
	load.int r2, 0
	load.int r3, 10000
spawn:
	cont.spawn r4, r0, r5
	set.append r1, r4
	arith.addi r2, r2, 1
	jmp.lt r2, r3, spawn
	load.int r2, 0
	load.int r6, 0
join:
	get r4, r1, r2
	cont.join r4, r4
	arith.add r6, r6, r4
	arith.addi r2, r2, 1
	jmp.lt r2, r3, join
	arith.tobytes r6, r6
	load.k r7, "\n"
	arith.concat r6, r6, r7
	io.open r7, "/dev/stdout"
	io.write r8, r7, r6
	load.int r0, 0
	ret r0, 1
end
RASM
assemble fibers
cat >"$T/fibers.manifest" <<MANIFEST
Version = 20130611
Program = vm/fibers.rbc
Memory = 67108864, 0
Timeout = 60
Channel = /dev/null, /dev/stdin, 0, 0, 1000000, 1073741824, 0, 0
Channel = $T/fibers.out, /dev/stdout, 0, 0, 0, 0, 1000000, 1073741824
Channel = $T/fibers.stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
Channel = Netpipe:unix:$T/fibers.sock, /dev/in/data, 0, 0, 1000000, 1073741824, 0, 0
MANIFEST
head -c 10000 /dev/zero | tr '\0' 'x' >"$T/fibers.in"
manifest fibers-writer exec:/bin/cat "$T/fibers.in" "Netpipe:unix:$T/fibers.sock"
start_broker fibers "$T/fibers.manifest" "$T/fibers.log"
vm_pid=$LAST
deadline=$(($(date +%s) + WAIT))
until [ -S "$T/fibers.sock" ]; do
	alive "$vm_pid" || fail "fibers: the VM broker exited before it listened"
	[ "$(date +%s)" -lt "$deadline" ] || fail "fibers: no socket $T/fibers.sock within $WAIT s"
	sleep 0.05 # a poll interval for the condition above
done
start_broker fibers-writer "$T/fibers-writer.manifest"
writer_pid=$LAST
expect "$writer_pid" 0 "the writer of the 10000 bytes"
expect "$vm_pid" 0 "10000 fibers reading one byte each"
[ "$(cat "$T/fibers.out")" = 10000 ] ||
	fail "fibers: the fibers got $(cat "$T/fibers.out") bytes, expected 10000"
say "ok fibers: 10000 fibers parked on a netpipe read in one broker, each got its byte"

# ---- 7. bad input ----
# A program that divides by zero: the run traps, the broker exits
# non-zero and logs where.
begin
cat >"$T/vm/divzero.rasm" <<'RASM'
; divzero.rasm - 7 // 0 traps.
module divzero

func main 0
	load.int r0, 7
	load.int r1, 0
	arith.idiv r2, r0, r1	; pc 2
	ret r2, 1
end
RASM
assemble divzero
sed 's|^Program = .*|Program = vm/divzero.rbc|' "$T/vm-cat.manifest" >"$T/divzero.manifest"
run divzero "$T/divzero.manifest" /dev/null "$T/divzero.out"
[ "$RC" -ne 0 ] || fail "divzero: the broker exited 0 after a division by zero"
grep -q "trap in function" "$T/divzero.err" || fail "divzero: the log has no 'trap in function'"
grep -q "division by zero" "$T/divzero.err" || fail "divzero: the log does not say 'division by zero'"
line=$(grep -n 'arith.idiv' "$T/vm/divzero.rasm" | cut -d: -f1)
grep -q "trap in function 'main' at pc 2 (arith.idiv), vm/divzero.rasm:$line: integer division by zero" "$T/divzero.err" ||
	fail "divzero: the log does not name the function, pc, instruction and source line"
say "ok divzero: exit $RC: $(grep -m1 'trap in function' "$T/divzero.err")"

# An endless loop: the manifest's Timeout still stops it (the VM runs in
# slices, between which the broker's loop and its timers run).
begin
cat >"$T/vm/spin.rasm" <<'RASM'
; spin.rasm - never ends.
module spin

func main 0
again:
	jmp again
end
RASM
assemble spin
sed 's|^Program = .*|Program = vm/spin.rbc|; s|^Timeout = .*|Timeout = 1|' "$T/vm-cat.manifest" >"$T/spin.manifest"
run spin "$T/spin.manifest" /dev/null "$T/spin.out"
[ "$RC" -eq 124 ] || fail "spin: the broker exited $RC, expected 124 (the Timeout)"
grep -q "Timeout" "$T/spin.err" || fail "spin: the log does not mention the Timeout"
say "ok spin: an endless loop was stopped by the Timeout (exit 124)"

# A program that outgrows the manifest's Memory: a trap, not a crash.
begin
cat >"$T/vm/hog.rasm" <<'RASM'
; hog.rasm - appends to a buffer forever.
module hog

func main 0
	new.bytes r0, 0
	load.k r1, "0123456789abcdef0123456789abcdef"
again:
	set.append r0, r1
	jmp again
end
RASM
assemble hog
sed 's|^Program = .*|Program = vm/hog.rbc|; s|^Memory = .*|Memory = 4194304, 0|' "$T/vm-cat.manifest" >"$T/hog.manifest"
run hog "$T/hog.manifest" /dev/null "$T/hog.out"
[ "$RC" -eq 1 ] || fail "hog: the broker exited $RC, expected 1 (a trap)"
grep -q "trap in function 'main'.*out of memory" "$T/hog.err" ||
	fail "hog: the log does not say the program ran out of its Memory"
say "ok hog: past Memory = 4 MiB: $(grep -m1 'out of memory' "$T/hog.err")"

# The manifest's quotas hold for a VM program as for any other: cat with a
# put_size of 1000 bytes on /dev/stdout fails its write past it (EDQUOT).
begin
sed 's|^Channel = /dev/stdout, /dev/stdout, 0, 0, 0, 0, 1000000, 1073741824|Channel = /dev/stdout, /dev/stdout, 0, 0, 0, 0, 1000000, 1000|' \
	"$T/vm-cat.manifest" >"$T/quota.manifest"
grep -q ', 1000$' "$T/quota.manifest" || fail "quota: the put_size was not rewritten"
run quota "$T/quota.manifest" "$T/cat.in" "$T/quota.out"
[ "$RC" -ne 0 ] || fail "quota: the broker exited 0 though the program wrote past its quota"
grep -qi "quota" "$T/quota.err" || fail "quota: the log does not mention the quota"
[ "$(wc -c <"$T/quota.out")" -le 1000 ] ||
	fail "quota: $(wc -c <"$T/quota.out") bytes reached stdout, the quota is 1000"
say "ok quota: a write past put_size failed (exit $RC): $(grep -m1 -i quota "$T/quota.err")"

# A truncated module: refused before anything runs.
begin
size=$(wc -c <"$T/vm/cat.rbc")
head -c $((size / 2)) "$T/vm/cat.rbc" >"$T/vm/truncated.rbc"
sed 's|^Program = .*|Program = vm/truncated.rbc|' "$T/vm-cat.manifest" >"$T/truncated.manifest"
LOGS="$T/truncated-check.err"
RC=0
timeout -s KILL "$WAIT" "$BROKER" --check -m "$T/truncated.manifest" -P "$RIFT_PLUGINS" \
	>"$T/truncated-check.out" 2>"$T/truncated-check.err" || RC=$?
[ "$RC" -eq 2 ] || fail "truncated: broker --check exited $RC, expected 2"
grep -q "truncated.rbc" "$T/truncated-check.err" ||
	fail "truncated: broker --check's message does not name the module"
grep -qi "truncated\|corrupt\|ends early" "$T/truncated-check.err" ||
	fail "truncated: broker --check's message does not say what is wrong with the module"
msg=$(grep -m1 "truncated.rbc" "$T/truncated-check.err")
run truncated "$T/truncated.manifest" "$T/cat.in" "$T/truncated.out"
[ "$RC" -eq 2 ] || fail "truncated: broker -m exited $RC, expected 2 (refused before running)"
[ ! -s "$T/truncated.out" ] || fail "truncated: broker -m ran something: it wrote to stdout"
say "ok truncated: broker --check exited 2: $msg"

say "all cases passed"
