#!/usr/bin/env bash
# Makes a development CA, a server certificate (localhost, 127.0.0.1) and a client certificate,
# signed by that CA, for TLS tests and local trials. Never for production. Keys stay out of Git
# (certs/out/ is ignored).
#
#   ./certs/make-dev-certs.sh [OUT_DIR]      # default: certs/out
#
# Files: ca.pem ca.key server.pem server.key client.pem client.key (PEM; keys PKCS#8).
set -euo pipefail
out="${1:-$(dirname "$0")/out}"
mkdir -p "$out"
cd "$out"
days=825

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
  -subj "/CN=Medway Dev CA" -keyout ca.key -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() { # name subject extensions
  local name=$1 subject=$2 ext=$3
  openssl req -newkey rsa:2048 -nodes -sha256 -subj "$subject" \
    -keyout "$name.key.tmp" -out "$name.csr" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$name.key.tmp" -out "$name.key"
  rm -f "$name.key.tmp"
  printf '%s\n' "$ext" > "$name.ext"
  openssl x509 -req -sha256 -days "$days" -in "$name.csr" -CA ca.pem -CAkey ca.key \
    -CAcreateserial -out "$name.pem" -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

issue server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"

issue client "/CN=medway-test-client/O=Medway Dev" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

chmod 600 ./*.key
echo "dev certificates in $(pwd): ca.pem server.pem server.key client.pem client.key"
