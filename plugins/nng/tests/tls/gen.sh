#!/bin/sh
# gen.sh - regenerate the TLS test fixtures (TEST ONLY: the keys are public).
#   ca.pem      the test CA's certificate (both ends trust it: ?ca=)
#   peer.pem    a certificate signed by that CA, for 127.0.0.1 and
#               localhost, with its key (one file: ?cert=)
#   rogue.pem   a self-signed certificate and key the CA never signed
set -eu
cd "$(dirname "$0")"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$T/ca.key" -out ca.pem -days $days -subj "/CN=Rift test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$T/peer.key" -out "$T/peer.csr" -subj "/CN=127.0.0.1" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$T/ext"
openssl x509 -req -in "$T/peer.csr" -CA ca.pem -CAkey "$T/ca.key" -CAcreateserial \
	-out "$T/peer.crt" -days $days -extfile "$T/ext" 2>/dev/null
cat "$T/peer.crt" "$T/peer.key" >peer.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout "$T/rogue.key" -out "$T/rogue.crt" -days $days -subj "/CN=127.0.0.1" \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
cat "$T/rogue.crt" "$T/rogue.key" >rogue.pem
rm -f ca.srl
