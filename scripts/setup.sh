#!/bin/sh
# The README's first command: install what is missing, build, run the demo.
set -eu
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh build
echo "rift: built into ./build" >&2
exec scripts/demo.sh
