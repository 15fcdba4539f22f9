#!/bin/sh
# run.sh - build a plugin out of the tree, as a third party would, and move
# bytes through it with the broker.
#
#   1. install the build's development files (header, .pc) into a staging
#      directory: meson install --destdir --tags devel, so a target of
#      someone else's that failed to build cannot fail this test;
#   2. compile mini.c with exactly
#        cc -shared -fPIC $(pkg-config --cflags netpipe-plugin) mini.c -o mini.so
#      finding netpipe-plugin.pc (and through it netpipe.h) in the stage;
#   3. list it (no refusal), then run two manifests with Program =
#      exec:/bin/cat: a file -> Netpipe:mini:out:w, then Netpipe:mini:out:r
#      -> a file; both copies must equal the input (cmp).
#
# Environment (meson.build sets it): BUILD_ROOT (the meson build dir),
# BROKER, RIFT_PLUGINS (build/plugins: exec and file), MINI_SRC (mini.c),
# MESON (the meson command). Exit 77 (skipped) without cc or pkg-config.
set -eu

fail() { echo "out-of-tree: FAIL: $*" >&2; exit 1; }
say() { echo "out-of-tree: $*"; }

: "${BUILD_ROOT:?set by meson.build}" "${BROKER:?}" "${RIFT_PLUGINS:?}" "${MINI_SRC:?}"
MESON=${MESON:-meson}
for tool in cc pkg-config cmp timeout; do
	command -v "$tool" >/dev/null 2>&1 || { echo "out-of-tree: SKIP: no $tool"; exit 77; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/rift-oot.XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
case $T in *[,\;:\ ]*) fail "temp dir $T has a character descriptors cannot hold" ;; esac

# 1. The staged install: what a plugin author gets from `meson install`.
"$MESON" install -C "$BUILD_ROOT" --destdir "$T/stage" --no-rebuild --quiet --tags devel \
	>"$T/install.log" 2>&1 || { cat "$T/install.log" >&2; fail "meson install --destdir failed"; }
pc=$(find "$T/stage" -name netpipe-plugin.pc | head -n 1)
[ -n "$pc" ] || fail "the install has no netpipe-plugin.pc"
PKG_CONFIG_PATH=$(dirname "$pc")
PKG_CONFIG_SYSROOT_DIR=$T/stage
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
say "pkg-config --cflags netpipe-plugin: $(pkg-config --cflags netpipe-plugin)"

# 2. The plugin's own tree: one source file, nothing of Rift's but the stage.
mkdir "$T/src" "$T/plugins"
cp "$MINI_SRC" "$T/src/mini.c"
(cd "$T/src" && cc -shared -fPIC $(pkg-config --cflags netpipe-plugin) mini.c -o mini.so) ||
	fail "cc -shared -fPIC \$(pkg-config --cflags netpipe-plugin) mini.c -o mini.so"
# The public header is C99 and warning-free for a strict third party too.
(cd "$T/src" && cc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only \
	$(pkg-config --cflags netpipe-plugin) mini.c) ||
	fail "mini.c with netpipe.h is not clean under -std=c99 -Wall -Wextra -Werror -pedantic"
cp "$T/src/mini.so" "$T/plugins/mini.so"

unset RIFT_PLUGIN_PATH RIFT_LOG
broker() { timeout 60 "$BROKER" "$@"; }

# 3a. The broker loads it.
broker --list-plugins -P "$T/plugins" -P "$RIFT_PLUGINS" >"$T/list.out" 2>"$T/list.err" ||
	{ cat "$T/list.err" >&2; fail "broker --list-plugins exited $?"; }
grep -q "^mini .* $T/plugins/mini.so\$" "$T/list.out" ||
	{ cat "$T/list.out" "$T/list.err" >&2; fail "mini is not listed"; }
! grep -q "refused" "$T/list.err" || { cat "$T/list.err" >&2; fail "a plugin was refused"; }

# 3b. Bytes through it, both ways: more than a pipe buffer, not text only.
head -c 300000 /dev/urandom >"$T/in.bin"
echo "the end of the input" >>"$T/in.bin"

manifest() { # manifest FILE STDIN-URI STDOUT-URI
	cat >"$1" <<MANIFEST
Version = 20130611
Program = exec:/bin/cat
Memory = 67108864, 0
Timeout = 30
Channel = $2, /dev/stdin, 0, 0, 1000000, 1073741824, 0, 0
Channel = $3, /dev/stdout, 0, 0, 0, 0, 1000000, 1073741824
Channel = $T/$(basename "$1" .manifest).stderr, /dev/stderr, 0, 0, 0, 0, 1000, 1048576
MANIFEST
}
manifest "$T/write.manifest" "$T/in.bin" "Netpipe:mini:$T/out.bin:w"
manifest "$T/read.manifest" "Netpipe:mini:$T/out.bin:r" "$T/back.bin"

for m in write read; do
	rc=0
	broker -m "$T/$m.manifest" -P "$T/plugins" -P "$RIFT_PLUGINS" >"$T/$m.out" 2>"$T/$m.err" || rc=$?
	[ "$rc" -eq 0 ] || { cat "$T/$m.err" >&2; fail "broker -m $m.manifest exited $rc"; }
done
cmp "$T/in.bin" "$T/out.bin" || fail "the bytes written through Netpipe:mini:...:w differ"
cmp "$T/in.bin" "$T/back.bin" || fail "the bytes read through Netpipe:mini:...:r differ"
say "ok: $(wc -c <"$T/in.bin") bytes out through mini.so and back"
