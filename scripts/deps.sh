#!/bin/sh
# Install, with apt-get, every Debian 12 package Rift builds and tests
# with that is not installed yet. Needs root (or sudo) only when something
# is missing.
set -eu
PKGS="meson ninja-build pkg-config gcc libc6-dev git
      libsodium-dev check libzmq3-dev libnng-dev libmsgpack-dev librocksdb-dev
      lua5.4 procps"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "rift: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
