#!/bin/sh
# The demo: two brokers, each a process of its own, move README.md through
# a unix netpipe; the reader's program prints the ten most frequent words.
#   manifests/demo-writer.manifest: README.md -> cat -> Netpipe:unix:... (etag)
#   manifests/demo-reader.manifest: Netpipe:unix:... -> word count -> stdout
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
export RIFT_PLUGIN_PATH="$PWD/$B/plugins"
mkdir -p /tmp/rift-demo
echo "rift demo: plugins"
"$B/broker/broker" --list-plugins
echo
echo "rift demo: starting the writer first; it waits for the reader"
"$B/broker/broker" -m manifests/demo-writer.manifest <README.md &
writer=$!
"$B/broker/broker" -m manifests/demo-reader.manifest
reader=$?
wait "$writer" && wstatus=0 || wstatus=$?
rmdir /tmp/rift-demo 2>/dev/null || true
echo
echo "rift demo: writer broker exit $wstatus, reader broker exit $reader"
[ "$wstatus" -eq 0 ] && [ "$reader" -eq 0 ]
